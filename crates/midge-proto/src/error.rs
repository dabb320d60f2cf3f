//! Why bytes could not be decoded. Each error knows the MQTT 5 reason code the server puts in
//! the DISCONNECT (or CONNACK) it sends before closing the connection.

use crate::reason;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("remaining length longer than 4 bytes")]
    RemainingLengthTooLong,
    #[error("variable byte integer longer than 4 bytes")]
    InvalidVarInt,
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
    #[error("PUBLISH without topic name or topic alias")]
    MissingTopic,
    #[error("invalid topic filter")]
    InvalidTopicFilter,
    #[error("SUBSCRIBE or UNSUBSCRIBE without topic filters")]
    EmptySubscription,
    #[error("reserved subscription option bits set")]
    InvalidSubscriptionOptions,
    #[error("maximum QoS 3 in subscription options")]
    InvalidSubscriptionQoS,
    #[error("retain handling 3 in subscription options")]
    InvalidRetainHandling,
    #[error("no local set on a shared subscription")]
    NoLocalOnSharedSubscription,
    #[error("reserved CONNACK acknowledge flags set")]
    ConnAckReservedFlags,
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
    ///
    /// MQTT 5 splits receiver errors into Malformed Packet (the bytes cannot be parsed as the
    /// spec describes) and Protocol Error (they parse but break a rule); the spec names the
    /// class case by case, which is why a few variants look at what they carry.
    pub fn reason_code(&self) -> u8 {
        use crate::properties::id;
        match self {
            DecodeError::UnsupportedProtocolVersion(_) | DecodeError::InvalidProtocolName => {
                reason::UNSUPPORTED_PROTOCOL_VERSION
            }
            DecodeError::PacketTooLarge { .. } => reason::PACKET_TOO_LARGE,
            DecodeError::InvalidTopicName => reason::TOPIC_NAME_INVALID,
            DecodeError::InvalidClientId => reason::CLIENT_IDENTIFIER_NOT_VALID,
            // [MQTT-3.3.2-8]: Mosquitto answers alias 0 with Topic Alias invalid, as for one
            // above the maximum.
            DecodeError::InvalidPropertyValue(id::TOPIC_ALIAS) => reason::TOPIC_ALIAS_INVALID,
            // 2.2.2.2: an identifier not valid for its packet type is a Malformed Packet, but
            // [MQTT-3.3.4-6] (Subscription Identifier from a client) is a rule, not syntax.
            DecodeError::PropertyNotAllowed(id::SUBSCRIPTION_IDENTIFIER, "PUBLISH") => {
                reason::PROTOCOL_ERROR
            }
            DecodeError::WrongDirection(_)
            | DecodeError::ZeroPacketId
            | DecodeError::MissingTopic
            | DecodeError::DuplicateProperty(_)
            | DecodeError::InvalidPropertyValue(_)
            | DecodeError::InvalidWillFlags
            | DecodeError::EmptySubscription
            | DecodeError::InvalidSubscriptionQoS
            | DecodeError::InvalidRetainHandling
            | DecodeError::NoLocalOnSharedSubscription
            | DecodeError::ReservedPacketType(_) => reason::PROTOCOL_ERROR,
            _ => reason::MALFORMED_PACKET,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DecodeError as E;
    use crate::properties::id;

    #[test]
    fn reason_codes_follow_the_spec() {
        let cases = [
            (E::RemainingLengthTooLong, 0x81),
            (E::InvalidVarInt, 0x81),
            (E::ReservedPacketType(0), 0x82),
            (
                E::InvalidHeaderFlags {
                    packet: "PUBREL",
                    flags: 0,
                },
                0x81,
            ),
            (E::WrongDirection("CONNACK"), 0x82),
            (E::Truncated, 0x81),
            (E::TrailingBytes("CONNECT"), 0x81),
            (E::InvalidUtf8, 0x81),
            (E::DisallowedCodePoint, 0x81),
            (E::InvalidProtocolName, 0x84),
            (E::UnsupportedProtocolVersion(6), 0x84),
            (E::ConnectReservedFlag, 0x81),
            (E::InvalidWillFlags, 0x82),
            (E::PasswordWithoutUsername, 0x81),
            (E::InvalidQoS, 0x81),
            (E::ZeroPacketId, 0x82),
            (E::InvalidTopicName, 0x90),
            (E::InvalidTopicFilter, 0x81),
            (E::EmptySubscription, 0x82),
            (E::InvalidSubscriptionOptions, 0x81),
            (E::InvalidSubscriptionQoS, 0x82),
            (E::InvalidRetainHandling, 0x82),
            (E::NoLocalOnSharedSubscription, 0x82),
            (E::ConnAckReservedFlags, 0x81),
            (E::UnknownProperty(0x05), 0x81),
            (E::PropertyNotAllowed(id::TOPIC_ALIAS, "CONNECT"), 0x81),
            (
                E::PropertyNotAllowed(id::SUBSCRIPTION_IDENTIFIER, "PUBLISH"),
                0x82,
            ),
            (E::DuplicateProperty(id::CONTENT_TYPE), 0x82),
            (E::InvalidPropertyValue(id::RECEIVE_MAXIMUM), 0x82),
            (E::InvalidPropertyValue(id::TOPIC_ALIAS), 0x94),
            (E::InvalidReasonCode(0x05), 0x81),
            (E::InvalidClientId, 0x85),
            (E::PacketTooLarge { size: 10, max: 5 }, 0x95),
        ];
        for (err, code) in cases {
            assert_eq!(err.reason_code(), code, "{err:?}");
        }
    }
}
