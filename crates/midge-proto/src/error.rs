//! Why bytes could not be decoded. Each error knows the MQTT 5 reason code the server puts in
//! the DISCONNECT (or CONNACK) it sends before closing the connection.

use crate::reason;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("remaining length longer than 4 bytes")]
    RemainingLengthTooLong,
    #[error("packet type {0} is reserved")]
    ReservedPacketType(u8),
    #[error("invalid fixed header flags {flags:#x} for {packet}")]
    InvalidHeaderFlags { packet: &'static str, flags: u8 },
    #[error("{0} may not be sent by this side")]
    WrongDirection(&'static str),
    #[error("packet shorter than its fields")]
    Truncated,
    #[error("bytes left over after the last field of {0}")]
    TrailingBytes(&'static str),
    #[error("string is not well-formed UTF-8")]
    InvalidUtf8,
    #[error("string contains a disallowed code point")]
    DisallowedCodePoint,
    #[error("invalid protocol name")]
    InvalidProtocolName,
    #[error("unsupported protocol version {0}")]
    UnsupportedProtocolVersion(u8),
    #[error("reserved flag set in CONNECT")]
    ConnectReservedFlag,
    #[error("inconsistent will flags")]
    InvalidWillFlags,
    #[error("password flag without username flag")]
    PasswordWithoutUsername,
    #[error("invalid QoS 3")]
    InvalidQoS,
    #[error("packet identifier 0")]
    ZeroPacketId,
    #[error("invalid topic name")]
    InvalidTopicName,
    #[error("invalid topic filter")]
    InvalidTopicFilter,
    #[error("SUBSCRIBE or UNSUBSCRIBE without topic filters")]
    EmptySubscription,
    #[error("reserved subscription option bits set")]
    InvalidSubscriptionOptions,
    #[error("unknown property {0:#x}")]
    UnknownProperty(u8),
    #[error("property {0:#x} not allowed on {1}")]
    PropertyNotAllowed(u8, &'static str),
    #[error("property {0:#x} appears more than once")]
    DuplicateProperty(u8),
    #[error("invalid value for property {0:#x}")]
    InvalidPropertyValue(u8),
    #[error("invalid reason code {0:#x}")]
    InvalidReasonCode(u8),
    #[error("client identifier not valid")]
    InvalidClientId,
    #[error("packet of {size} bytes exceeds the maximum of {max}")]
    PacketTooLarge { size: usize, max: usize },
}

impl DecodeError {
    /// The MQTT 5 reason code for the DISCONNECT (or CONNACK) that answers this error.
    pub fn reason_code(&self) -> u8 {
        match self {
            DecodeError::UnsupportedProtocolVersion(_) | DecodeError::InvalidProtocolName => {
                reason::UNSUPPORTED_PROTOCOL_VERSION
            }
            DecodeError::PacketTooLarge { .. } => reason::PACKET_TOO_LARGE,
            DecodeError::InvalidTopicName => reason::TOPIC_NAME_INVALID,
            DecodeError::InvalidClientId => reason::CLIENT_IDENTIFIER_NOT_VALID,
            DecodeError::WrongDirection(_)
            | DecodeError::ZeroPacketId
            | DecodeError::DuplicateProperty(_)
            | DecodeError::PropertyNotAllowed(..)
            | DecodeError::InvalidPropertyValue(_)
            | DecodeError::InvalidQoS
            | DecodeError::InvalidWillFlags
            | DecodeError::EmptySubscription
            | DecodeError::ReservedPacketType(_) => reason::PROTOCOL_ERROR,
            _ => reason::MALFORMED_PACKET,
        }
    }
}
