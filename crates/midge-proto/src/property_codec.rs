//! MQTT 5 properties on the wire (section 2.2.2): a Variable Byte Integer length, then
//! identifier/value pairs. One table says which packet may carry which property; decoding
//! enforces it and encoding follows it, so a Properties value filled for one purpose (a will's
//! properties republished as a PUBLISH) never leaks a property the receiver must refuse.

use bytes::BufMut;

use crate::error::DecodeError;
use crate::properties::{id, Properties};
use crate::reader::Reader;
use crate::topic::valid_topic_name;
use crate::varint::{put_varint, varint_len};

const fn bits(ids: &[u8]) -> u64 {
    let mut mask = 0u64;
    let mut i = 0;
    while i < ids.len() {
        mask |= 1u64 << ids[i];
        i += 1;
    }
    mask
}

/// Which properties a packet may carry, and which of those may appear more than once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PropRules {
    /// Printed in [`DecodeError::PropertyNotAllowed`].
    pub(crate) name: &'static str,
    pub(crate) allowed: u64,
    pub(crate) repeatable: u64,
}

impl PropRules {
    const fn new(name: &'static str, allowed: &[u8]) -> PropRules {
        PropRules {
            name,
            allowed: bits(allowed),
            repeatable: bits(&[id::USER_PROPERTY]),
        }
    }

    /// The same rules without the properties in `ids`.
    pub(crate) const fn without(self, ids: &[u8]) -> PropRules {
        PropRules {
            allowed: self.allowed & !bits(ids),
            ..self
        }
    }
}

const KNOWN: u64 = bits(&[
    id::PAYLOAD_FORMAT_INDICATOR,
    id::MESSAGE_EXPIRY_INTERVAL,
    id::CONTENT_TYPE,
    id::RESPONSE_TOPIC,
    id::CORRELATION_DATA,
    id::SUBSCRIPTION_IDENTIFIER,
    id::SESSION_EXPIRY_INTERVAL,
    id::ASSIGNED_CLIENT_IDENTIFIER,
    id::SERVER_KEEP_ALIVE,
    id::AUTHENTICATION_METHOD,
    id::AUTHENTICATION_DATA,
    id::REQUEST_PROBLEM_INFORMATION,
    id::WILL_DELAY_INTERVAL,
    id::REQUEST_RESPONSE_INFORMATION,
    id::RESPONSE_INFORMATION,
    id::SERVER_REFERENCE,
    id::REASON_STRING,
    id::RECEIVE_MAXIMUM,
    id::TOPIC_ALIAS_MAXIMUM,
    id::TOPIC_ALIAS,
    id::MAXIMUM_QOS,
    id::RETAIN_AVAILABLE,
    id::USER_PROPERTY,
    id::MAXIMUM_PACKET_SIZE,
    id::WILDCARD_SUBSCRIPTION_AVAILABLE,
    id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
    id::SHARED_SUBSCRIPTION_AVAILABLE,
]);

// The table of MQTT 5 section 2.2.2.2, one row per packet.
pub(crate) const CONNECT: PropRules = PropRules::new(
    "CONNECT",
    &[
        id::SESSION_EXPIRY_INTERVAL,
        id::AUTHENTICATION_METHOD,
        id::AUTHENTICATION_DATA,
        id::REQUEST_PROBLEM_INFORMATION,
        id::REQUEST_RESPONSE_INFORMATION,
        id::RECEIVE_MAXIMUM,
        id::TOPIC_ALIAS_MAXIMUM,
        id::USER_PROPERTY,
        id::MAXIMUM_PACKET_SIZE,
    ],
);
pub(crate) const WILL: PropRules = PropRules::new(
    "CONNECT will",
    &[
        id::PAYLOAD_FORMAT_INDICATOR,
        id::MESSAGE_EXPIRY_INTERVAL,
        id::CONTENT_TYPE,
        id::RESPONSE_TOPIC,
        id::CORRELATION_DATA,
        id::WILL_DELAY_INTERVAL,
        id::USER_PROPERTY,
    ],
);
pub(crate) const CONNACK: PropRules = PropRules::new(
    "CONNACK",
    &[
        id::SESSION_EXPIRY_INTERVAL,
        id::ASSIGNED_CLIENT_IDENTIFIER,
        id::SERVER_KEEP_ALIVE,
        id::AUTHENTICATION_METHOD,
        id::AUTHENTICATION_DATA,
        id::RESPONSE_INFORMATION,
        id::SERVER_REFERENCE,
        id::REASON_STRING,
        id::RECEIVE_MAXIMUM,
        id::TOPIC_ALIAS_MAXIMUM,
        id::MAXIMUM_QOS,
        id::RETAIN_AVAILABLE,
        id::USER_PROPERTY,
        id::MAXIMUM_PACKET_SIZE,
        id::WILDCARD_SUBSCRIPTION_AVAILABLE,
        id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        id::SHARED_SUBSCRIPTION_AVAILABLE,
    ],
);
/// A server's PUBLISH: one Subscription Identifier per matching subscription.
pub(crate) const PUBLISH_FROM_SERVER: PropRules = PropRules {
    repeatable: bits(&[id::USER_PROPERTY, id::SUBSCRIPTION_IDENTIFIER]),
    ..PropRules::new(
        "PUBLISH",
        &[
            id::PAYLOAD_FORMAT_INDICATOR,
            id::MESSAGE_EXPIRY_INTERVAL,
            id::CONTENT_TYPE,
            id::RESPONSE_TOPIC,
            id::CORRELATION_DATA,
            id::SUBSCRIPTION_IDENTIFIER,
            id::TOPIC_ALIAS,
            id::USER_PROPERTY,
        ],
    )
};
/// [MQTT-3.3.4-6]: a client's PUBLISH carries no Subscription Identifier.
pub(crate) const PUBLISH_FROM_CLIENT: PropRules =
    PUBLISH_FROM_SERVER.without(&[id::SUBSCRIPTION_IDENTIFIER]);
pub(crate) const PUBACK: PropRules = pub_resp("PUBACK");
pub(crate) const PUBREC: PropRules = pub_resp("PUBREC");
pub(crate) const PUBREL: PropRules = pub_resp("PUBREL");
pub(crate) const PUBCOMP: PropRules = pub_resp("PUBCOMP");
pub(crate) const SUBSCRIBE: PropRules = PropRules::new(
    "SUBSCRIBE",
    &[id::SUBSCRIPTION_IDENTIFIER, id::USER_PROPERTY],
);
pub(crate) const SUBACK: PropRules =
    PropRules::new("SUBACK", &[id::REASON_STRING, id::USER_PROPERTY]);
pub(crate) const UNSUBSCRIBE: PropRules = PropRules::new("UNSUBSCRIBE", &[id::USER_PROPERTY]);
pub(crate) const UNSUBACK: PropRules =
    PropRules::new("UNSUBACK", &[id::REASON_STRING, id::USER_PROPERTY]);
pub(crate) const DISCONNECT: PropRules = PropRules::new(
    "DISCONNECT",
    &[
        id::SESSION_EXPIRY_INTERVAL,
        id::SERVER_REFERENCE,
        id::REASON_STRING,
        id::USER_PROPERTY,
    ],
);
pub(crate) const AUTH: PropRules = PropRules::new(
    "AUTH",
    &[
        id::AUTHENTICATION_METHOD,
        id::AUTHENTICATION_DATA,
        id::REASON_STRING,
        id::USER_PROPERTY,
    ],
);

const fn pub_resp(name: &'static str) -> PropRules {
    PropRules::new(name, &[id::REASON_STRING, id::USER_PROPERTY])
}

/// Reads the property length and the properties it covers. A length running past the packet
/// is [`DecodeError::Truncated`]; values the spec restricts are checked here so that every
/// packet gets the same checks.
pub(crate) fn decode_properties(
    r: &mut Reader,
    rules: &PropRules,
) -> Result<Properties, DecodeError> {
    let len = r.varint()? as usize;
    let mut r = Reader::new(r.take(len)?);
    let mut p = Properties::default();
    let mut seen = 0u64;
    while !r.is_empty() {
        // The identifier is formally a Variable Byte Integer, but every identifier MQTT 5
        // defines fits in one byte; a first byte with the high bit set is unknown either way.
        let pid = r.u8()?;
        let bit = 1u64.checked_shl(u32::from(pid)).unwrap_or(0);
        if bit & KNOWN == 0 {
            return Err(DecodeError::UnknownProperty(pid));
        }
        if bit & rules.allowed == 0 {
            return Err(DecodeError::PropertyNotAllowed(pid, rules.name));
        }
        if seen & bit != 0 && rules.repeatable & bit == 0 {
            return Err(DecodeError::DuplicateProperty(pid));
        }
        seen |= bit;
        read_one(&mut r, pid, &mut p)?;
    }
    Ok(p)
}

fn read_one(r: &mut Reader, pid: u8, p: &mut Properties) -> Result<(), DecodeError> {
    let invalid = DecodeError::InvalidPropertyValue(pid);
    // Every one-byte property MQTT 5 defines is a 0/1 flag (Maximum QoS included: 2 is
    // expressed by leaving it out).
    let flag = |r: &mut Reader| match r.u8()? {
        v @ (0 | 1) => Ok(Some(v)),
        _ => Err(DecodeError::InvalidPropertyValue(pid)),
    };
    let non_zero_u16 = |r: &mut Reader| match r.u16()? {
        0 => Err(DecodeError::InvalidPropertyValue(pid)),
        v => Ok(Some(v)),
    };
    match pid {
        id::PAYLOAD_FORMAT_INDICATOR => p.payload_format_indicator = flag(r)?,
        id::MESSAGE_EXPIRY_INTERVAL => p.message_expiry_interval = Some(r.u32()?),
        id::CONTENT_TYPE => p.content_type = Some(r.string()?),
        id::RESPONSE_TOPIC => {
            // [MQTT-3.3.2-14]: a topic name, so no wildcards.
            let topic = r.string()?;
            if !valid_topic_name(&topic) {
                return Err(invalid);
            }
            p.response_topic = Some(topic);
        }
        id::CORRELATION_DATA => p.correlation_data = Some(r.binary()?),
        id::SUBSCRIPTION_IDENTIFIER => match r.varint()? {
            0 => return Err(invalid),
            v => p.subscription_identifiers.push(v),
        },
        id::SESSION_EXPIRY_INTERVAL => p.session_expiry_interval = Some(r.u32()?),
        id::ASSIGNED_CLIENT_IDENTIFIER => p.assigned_client_identifier = Some(r.string()?),
        id::SERVER_KEEP_ALIVE => p.server_keep_alive = Some(r.u16()?),
        id::AUTHENTICATION_METHOD => p.authentication_method = Some(r.string()?),
        id::AUTHENTICATION_DATA => p.authentication_data = Some(r.binary()?),
        id::REQUEST_PROBLEM_INFORMATION => p.request_problem_information = flag(r)?,
        id::WILL_DELAY_INTERVAL => p.will_delay_interval = Some(r.u32()?),
        id::REQUEST_RESPONSE_INFORMATION => p.request_response_information = flag(r)?,
        id::RESPONSE_INFORMATION => p.response_information = Some(r.string()?),
        id::SERVER_REFERENCE => p.server_reference = Some(r.string()?),
        id::REASON_STRING => p.reason_string = Some(r.string()?),
        id::RECEIVE_MAXIMUM => p.receive_maximum = non_zero_u16(r)?,
        id::TOPIC_ALIAS_MAXIMUM => p.topic_alias_maximum = Some(r.u16()?),
        id::TOPIC_ALIAS => p.topic_alias = non_zero_u16(r)?,
        id::MAXIMUM_QOS => p.maximum_qos = flag(r)?,
        id::RETAIN_AVAILABLE => p.retain_available = flag(r)?,
        id::USER_PROPERTY => {
            let key = r.string()?;
            let value = r.string()?;
            p.user_properties.push((key, value));
        }
        id::MAXIMUM_PACKET_SIZE => match r.u32()? {
            0 => return Err(invalid),
            v => p.maximum_packet_size = Some(v),
        },
        id::WILDCARD_SUBSCRIPTION_AVAILABLE => p.wildcard_subscription_available = flag(r)?,
        id::SUBSCRIPTION_IDENTIFIER_AVAILABLE => p.subscription_identifier_available = flag(r)?,
        id::SHARED_SUBSCRIPTION_AVAILABLE => p.shared_subscription_available = flag(r)?,
        _ => return Err(DecodeError::UnknownProperty(pid)),
    }
    Ok(())
}

/// Receives each property the encoder emits. Counting and writing walk the same code, so
/// the length written before the properties always matches the bytes that follow.
pub(crate) trait PropSink {
    fn byte(&mut self, pid: u8, v: u8);
    fn two(&mut self, pid: u8, v: u16);
    fn four(&mut self, pid: u8, v: u32);
    fn varint(&mut self, pid: u8, v: u32);
    /// A UTF-8 string or binary data: both are a two-byte length and the bytes.
    fn data(&mut self, pid: u8, v: &[u8]);
    fn pair(&mut self, pid: u8, key: &str, value: &str);
}

/// Counts the bytes the properties take, property length excluded.
pub(crate) struct LenSink(pub(crate) usize);

impl PropSink for LenSink {
    fn byte(&mut self, _: u8, _: u8) {
        self.0 += 2;
    }
    fn two(&mut self, _: u8, _: u16) {
        self.0 += 3;
    }
    fn four(&mut self, _: u8, _: u32) {
        self.0 += 5;
    }
    fn varint(&mut self, _: u8, v: u32) {
        self.0 += 1 + varint_len(v as usize);
    }
    fn data(&mut self, _: u8, v: &[u8]) {
        self.0 += 3 + v.len();
    }
    fn pair(&mut self, _: u8, key: &str, value: &str) {
        self.0 += 5 + key.len() + value.len();
    }
}

/// Writes the properties into a buffer.
pub(crate) struct PutSink<'a, B: BufMut>(pub(crate) &'a mut B);

impl<B: BufMut> PropSink for PutSink<'_, B> {
    fn byte(&mut self, pid: u8, v: u8) {
        self.0.put_u8(pid);
        self.0.put_u8(v);
    }
    fn two(&mut self, pid: u8, v: u16) {
        self.0.put_u8(pid);
        self.0.put_u16(v);
    }
    fn four(&mut self, pid: u8, v: u32) {
        self.0.put_u8(pid);
        self.0.put_u32(v);
    }
    fn varint(&mut self, pid: u8, v: u32) {
        self.0.put_u8(pid);
        put_varint(self.0, v as usize);
    }
    fn data(&mut self, pid: u8, v: &[u8]) {
        self.0.put_u8(pid);
        put_data(self.0, v);
    }
    fn pair(&mut self, pid: u8, key: &str, value: &str) {
        self.0.put_u8(pid);
        put_data(self.0, key.as_bytes());
        put_data(self.0, value.as_bytes());
    }
}

/// Two-byte length and bytes: the shape of strings and binary data. Longer input than 65,535
/// bytes cannot be represented; decoded values never are, and the broker limits its own.
pub(crate) fn put_data(buf: &mut impl BufMut, v: &[u8]) {
    debug_assert!(
        v.len() <= usize::from(u16::MAX),
        "field of {} bytes",
        v.len()
    );
    buf.put_u16(v.len() as u16);
    buf.put_slice(v);
}

/// Hands every property of `p` that `rules` allows to `sink`, in a fixed order.
pub(crate) fn walk_properties(p: &Properties, rules: &PropRules, sink: &mut impl PropSink) {
    let on = |pid: u8| rules.allowed & (1u64 << pid) != 0;
    macro_rules! emit {
        ($field:ident, $pid:expr, $kind:ident) => {
            if let Some(v) = p.$field {
                if on($pid) {
                    sink.$kind($pid, v);
                }
            }
        };
    }
    emit!(payload_format_indicator, id::PAYLOAD_FORMAT_INDICATOR, byte);
    emit!(message_expiry_interval, id::MESSAGE_EXPIRY_INTERVAL, four);
    emit_data(p.content_type.as_deref(), id::CONTENT_TYPE, &on, sink);
    emit_data(p.response_topic.as_deref(), id::RESPONSE_TOPIC, &on, sink);
    emit_bytes(
        p.correlation_data.as_deref(),
        id::CORRELATION_DATA,
        &on,
        sink,
    );
    if on(id::SUBSCRIPTION_IDENTIFIER) {
        for &v in &p.subscription_identifiers {
            sink.varint(id::SUBSCRIPTION_IDENTIFIER, v);
        }
    }
    emit!(session_expiry_interval, id::SESSION_EXPIRY_INTERVAL, four);
    // The limits below come in the order Mosquitto writes them in CONNACK, so that byte-exact
    // expectations written against Mosquitto hold; the spec leaves the order free.
    emit!(topic_alias_maximum, id::TOPIC_ALIAS_MAXIMUM, two);
    emit!(server_keep_alive, id::SERVER_KEEP_ALIVE, two);
    emit_data(
        p.assigned_client_identifier.as_deref(),
        id::ASSIGNED_CLIENT_IDENTIFIER,
        &on,
        sink,
    );
    emit_data(
        p.authentication_method.as_deref(),
        id::AUTHENTICATION_METHOD,
        &on,
        sink,
    );
    emit_bytes(
        p.authentication_data.as_deref(),
        id::AUTHENTICATION_DATA,
        &on,
        sink,
    );
    emit!(
        request_problem_information,
        id::REQUEST_PROBLEM_INFORMATION,
        byte
    );
    emit!(will_delay_interval, id::WILL_DELAY_INTERVAL, four);
    emit!(
        request_response_information,
        id::REQUEST_RESPONSE_INFORMATION,
        byte
    );
    emit_data(
        p.response_information.as_deref(),
        id::RESPONSE_INFORMATION,
        &on,
        sink,
    );
    emit_data(
        p.server_reference.as_deref(),
        id::SERVER_REFERENCE,
        &on,
        sink,
    );
    emit_data(p.reason_string.as_deref(), id::REASON_STRING, &on, sink);
    emit!(retain_available, id::RETAIN_AVAILABLE, byte);
    emit!(maximum_packet_size, id::MAXIMUM_PACKET_SIZE, four);
    emit!(receive_maximum, id::RECEIVE_MAXIMUM, two);
    emit!(maximum_qos, id::MAXIMUM_QOS, byte);
    emit!(topic_alias, id::TOPIC_ALIAS, two);
    if on(id::USER_PROPERTY) {
        for (key, value) in &p.user_properties {
            sink.pair(id::USER_PROPERTY, key, value);
        }
    }
    emit!(
        wildcard_subscription_available,
        id::WILDCARD_SUBSCRIPTION_AVAILABLE,
        byte
    );
    emit!(
        subscription_identifier_available,
        id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        byte
    );
    emit!(
        shared_subscription_available,
        id::SHARED_SUBSCRIPTION_AVAILABLE,
        byte
    );
}

fn emit_data(v: Option<&str>, pid: u8, on: &impl Fn(u8) -> bool, sink: &mut impl PropSink) {
    emit_bytes(v.map(str::as_bytes), pid, on, sink);
}

fn emit_bytes(v: Option<&[u8]>, pid: u8, on: &impl Fn(u8) -> bool, sink: &mut impl PropSink) {
    if let Some(v) = v {
        if on(pid) {
            sink.data(pid, v);
        }
    }
}

/// Bytes the properties take, property length excluded.
pub(crate) fn properties_len(p: &Properties, rules: &PropRules) -> usize {
    let mut len = LenSink(0);
    walk_properties(p, rules, &mut len);
    len.0
}

/// Writes the property length `len` (from [`properties_len`]) and the properties.
pub(crate) fn put_properties(buf: &mut impl BufMut, p: &Properties, rules: &PropRules, len: usize) {
    put_varint(buf, len);
    walk_properties(p, rules, &mut PutSink(buf));
}

/// Writes the properties a PUBLISH carries from the server (length first), for a store that
/// keeps messages across restarts: the same bytes a PUBLISH would hold.
pub fn encode_publish_properties(p: &Properties, buf: &mut impl BufMut) {
    let len = properties_len(p, &PUBLISH_FROM_SERVER);
    put_properties(buf, p, &PUBLISH_FROM_SERVER, len);
}

/// Reads back what [`encode_publish_properties`] wrote, with the codec's checks.
pub fn decode_publish_properties(bytes: &[u8]) -> Result<Properties, DecodeError> {
    let mut r = Reader::new(bytes::Bytes::copy_from_slice(bytes));
    let p = decode_properties(&mut r, &PUBLISH_FROM_SERVER)?;
    if !r.is_empty() {
        return Err(DecodeError::Truncated);
    }
    Ok(p)
}

#[cfg(test)]
mod stored_tests {
    use super::*;

    #[test]
    fn publish_properties_round_trip() {
        let p = Properties {
            payload_format_indicator: Some(1),
            content_type: Some("text/plain".into()),
            response_topic: Some("r/t".into()),
            correlation_data: Some(bytes::Bytes::from_static(b"\x00\x01")),
            user_properties: vec![("k".into(), "v".into()), ("k".into(), "w".into())],
            ..Properties::default()
        };
        let mut buf = Vec::new();
        encode_publish_properties(&p, &mut buf);
        assert_eq!(decode_publish_properties(&buf).unwrap(), p);
        let mut empty = Vec::new();
        encode_publish_properties(&Properties::default(), &mut empty);
        assert_eq!(empty, [0]);
        assert!(decode_publish_properties(&[5, 1]).is_err());
    }
}
