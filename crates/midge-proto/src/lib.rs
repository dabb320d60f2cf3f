//! Pure MQTT codec: bytes in, packets out, and back. No I/O, no clock.
//!
//! Validation is strict and server-side: whatever the spec says a receiver must treat as a
//! malformed packet or protocol error comes back as a [`DecodeError`] with its reason code.

pub mod decode;
pub mod encode;
pub mod error;
#[doc(hidden)]
pub mod fuzz_check;
pub mod packet;
pub mod properties;
mod property_codec;
mod reader;
pub mod reason;
pub mod strings;
pub mod topic;
pub mod varint;

pub use decode::{
    decode_fixed_header, decode_packet, peek_connect_level, ConnectLevel, FixedHeader,
};
pub use encode::{encode_packet, encode_publish, packet_len, publish_len, OutgoingPublish};
pub use error::DecodeError;
pub use packet::*;
pub use properties::Properties;
pub use property_codec::{decode_publish_properties, encode_publish_properties};
