//! Builders for hand-written packets: tests spell out bodies field by field, and these add the
//! length prefixes and the fixed header.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use midge_proto::{
    decode_fixed_header, decode_packet, encode_packet, packet_len, DecodeError, Packet,
    ProtocolVersion, Sender,
};

/// A UTF-8 string or binary field: two-byte length, then the bytes.
pub fn s(v: impl AsRef<[u8]>) -> Vec<u8> {
    let v = v.as_ref();
    let mut out = (v.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(v);
    out
}

pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

pub fn varint(mut v: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut byte = (v & 0x7F) as u8;
        v >>= 7;
        if v > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if v == 0 {
            return out;
        }
    }
}

/// A property section: the length, then the raw properties.
pub fn props(raw: &[u8]) -> Vec<u8> {
    cat(&[&varint(raw.len()), raw])
}

/// Fixed header plus body.
pub fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    cat(&[&[first], &varint(body.len()), body])
}

/// Decodes a whole packet the way a connection does: fixed header first, then the body.
pub fn decode_frame(
    bytes: &[u8],
    version: ProtocolVersion,
    from: Sender,
) -> Result<Packet, DecodeError> {
    let header = decode_fixed_header(bytes)?.expect("complete fixed header");
    assert_eq!(header.packet_len(), bytes.len(), "test frame length");
    let body = Bytes::copy_from_slice(&bytes[header.header_len..]);
    decode_packet(header.first_byte, body, version, from)
}

pub fn decode(
    first: u8,
    body: &[u8],
    version: ProtocolVersion,
    from: Sender,
) -> Result<Packet, DecodeError> {
    decode_frame(&frame(first, body), version, from)
}

/// Asserts the exact error and the reason code the broker would send for it.
#[track_caller]
pub fn fails(
    first: u8,
    body: &[u8],
    version: ProtocolVersion,
    from: Sender,
    expected: DecodeError,
    reason: u8,
) {
    let err = decode(first, body, version, from).expect_err("packet must be refused");
    assert_eq!(err, expected);
    assert_eq!(err.reason_code(), reason, "reason code of {err:?}");
}

pub fn encode(packet: &Packet, version: ProtocolVersion) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode_packet(packet, version, &mut buf);
    assert_eq!(
        packet_len(packet, version),
        buf.len(),
        "packet_len of {packet:?}"
    );
    buf.to_vec()
}

/// CONNECT body for MQTT 3.1.1 with keep alive 60; `rest` is everything after keep alive.
pub fn connect_v311(flags: u8, rest: &[u8]) -> Vec<u8> {
    cat(&[&s("MQTT"), &[4, flags, 0, 60], rest])
}

/// CONNECT body for MQTT 5 with keep alive 60 and the given raw connect properties.
pub fn connect_v5(flags: u8, raw_props: &[u8], rest: &[u8]) -> Vec<u8> {
    cat(&[&s("MQTT"), &[5, flags, 0, 60], &props(raw_props), rest])
}
