//! Bytes to packets, in two steps so the connection can size its reads: the fixed header says
//! how long the packet is, then the complete body is decoded at once.
//!
//! Validation is the receiver's side of the spec: whatever a receiver must treat as a
//! malformed packet or protocol error is a [`DecodeError`]. Rules that need connection state
//! (topic alias mappings, receive maximum, a second CONNECT) are the broker's.

use bytes::Bytes;
use bytestring::ByteString;

use crate::error::DecodeError;
use crate::packet::packet_type as pt;
use crate::packet::*;
use crate::properties::{id, Properties};
use crate::property_codec::{self as rules, decode_properties, PropRules};
use crate::reader::Reader;
use crate::reason::allowed;
use crate::topic::{parse_shared, valid_topic_filter, valid_topic_name};
use crate::varint::{read_varint, VarIntError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedHeader {
    pub first_byte: u8,
    pub remaining_length: usize,
    /// The first byte plus the 1 to 4 bytes of the remaining length.
    pub header_len: usize,
}

impl FixedHeader {
    pub fn packet_type(&self) -> u8 {
        self.first_byte >> 4
    }

    /// Bytes the whole packet takes on the wire.
    pub fn packet_len(&self) -> usize {
        self.header_len + self.remaining_length
    }
}

/// Ok(None) when buf does not yet hold the whole fixed header. Err when the remaining length
/// uses more than 4 bytes or the packet type is 0. Flags are checked by [`decode_packet`],
/// because which ones MQTT 3.1 enforces depends on the connection's version.
pub fn decode_fixed_header(buf: &[u8]) -> Result<Option<FixedHeader>, DecodeError> {
    let Some((&first_byte, rest)) = buf.split_first() else {
        return Ok(None);
    };
    if first_byte >> 4 == 0 {
        return Err(DecodeError::ReservedPacketType(0));
    }
    match read_varint(rest) {
        Ok((len, n)) => Ok(Some(FixedHeader {
            first_byte,
            remaining_length: len as usize,
            header_len: 1 + n,
        })),
        Err(VarIntError::Incomplete) => Ok(None),
        Err(VarIntError::TooLong) => Err(DecodeError::RemainingLengthTooLong),
    }
}

/// What a CONNECT body announces before anything that could be invalid: enough for the broker
/// to answer a CONNECT that fails to decode in the client's own CONNACK format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectLevel {
    pub version: ProtocolVersion,
    /// Mosquitto bridges set bit 7 of the protocol level (`try_private`) to say they are one.
    pub bridge: bool,
}

/// Reads protocol name and level from a CONNECT body. None when they are missing or unknown.
pub fn peek_connect_level(body: &[u8]) -> Option<ConnectLevel> {
    let name_len = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
    let name = body.get(2..2 + name_len)?;
    let level = *body.get(2 + name_len)?;
    let version = match (name, level & 0x7F) {
        (b"MQTT", 4) => ProtocolVersion::V311,
        (b"MQTT", 5) => ProtocolVersion::V5,
        (b"MQIsdp", 3) => ProtocolVersion::V31,
        _ => return None,
    };
    Some(ConnectLevel {
        version,
        bridge: level & 0x80 != 0,
    })
}

/// Decodes one complete packet. `body` is exactly the remaining_length bytes after the fixed
/// header. `version` is the connection's negotiated version (ignored for CONNECT, which
/// carries its own). `from` says who sent it, so each side refuses the packets only it may
/// send ([`DecodeError::WrongDirection`]).
pub fn decode_packet(
    first_byte: u8,
    body: Bytes,
    version: ProtocolVersion,
    from: Sender,
) -> Result<Packet, DecodeError> {
    let ptype = first_byte >> 4;
    let flags = first_byte & 0x0F;
    if ptype == 0 || (ptype == pt::AUTH && !version.is_v5()) {
        return Err(DecodeError::ReservedPacketType(ptype));
    }
    check_direction(ptype, from)?;
    if ptype == pt::CONNECT {
        return decode_connect(flags, body).map(|c| Packet::Connect(Box::new(c)));
    }
    check_flags(ptype, flags, version)?;
    let mut r = Reader::new(body);
    let v5 = version.is_v5();
    let ack =
        |r: &mut Reader, rules: &PropRules, codes: &[u8]| decode_pub_resp(r, v5, rules, codes);
    let packet = match ptype {
        pt::CONNACK => Packet::ConnAck(decode_connack(&mut r, v5)?),
        pt::PUBLISH => Packet::Publish(decode_publish(flags, &mut r, v5, from)?),
        pt::PUBACK => Packet::PubAck(ack(&mut r, &rules::PUBACK, allowed::PUBACK)?),
        pt::PUBREC => Packet::PubRec(ack(&mut r, &rules::PUBREC, allowed::PUBACK)?),
        pt::PUBREL => Packet::PubRel(ack(&mut r, &rules::PUBREL, allowed::PUBREL)?),
        pt::PUBCOMP => Packet::PubComp(ack(&mut r, &rules::PUBCOMP, allowed::PUBREL)?),
        pt::SUBSCRIBE => Packet::Subscribe(decode_subscribe(&mut r, v5)?),
        pt::SUBACK => Packet::SubAck(decode_suback(&mut r, v5)?),
        pt::UNSUBSCRIBE => Packet::Unsubscribe(decode_unsubscribe(&mut r, v5)?),
        pt::UNSUBACK => Packet::UnsubAck(decode_unsuback(&mut r, v5)?),
        pt::PINGREQ => Packet::PingReq,
        pt::PINGRESP => Packet::PingResp,
        pt::DISCONNECT => {
            let (reason, properties) = if v5 {
                decode_reason_and_properties(&mut r, &rules::DISCONNECT, allowed::DISCONNECT)?
            } else {
                (0, Properties::default())
            };
            Packet::Disconnect(Disconnect { reason, properties })
        }
        // AUTH: every other type was handled above or refused before.
        _ => {
            let (reason, properties) =
                decode_reason_and_properties(&mut r, &rules::AUTH, allowed::AUTH)?;
            Packet::Auth(Auth { reason, properties })
        }
    };
    end(&r, ptype)?;
    Ok(packet)
}

fn end(r: &Reader, ptype: u8) -> Result<(), DecodeError> {
    if r.is_empty() {
        Ok(())
    } else {
        Err(DecodeError::TrailingBytes(pt::name(ptype)))
    }
}

fn check_direction(ptype: u8, from: Sender) -> Result<(), DecodeError> {
    let server_only = matches!(
        ptype,
        pt::CONNACK | pt::SUBACK | pt::UNSUBACK | pt::PINGRESP
    );
    let client_only = matches!(
        ptype,
        pt::CONNECT | pt::SUBSCRIBE | pt::UNSUBSCRIBE | pt::PINGREQ
    );
    match from {
        Sender::Client if server_only => Err(DecodeError::WrongDirection(pt::name(ptype))),
        Sender::Server if client_only => Err(DecodeError::WrongDirection(pt::name(ptype))),
        _ => Ok(()),
    }
}

/// [MQTT-2.2.2-1], [MQTT-2.2.2-2], [MQTT-3.3.1-2], [MQTT-3.3.1-4].
fn check_flags(ptype: u8, flags: u8, version: ProtocolVersion) -> Result<(), DecodeError> {
    let invalid = || {
        Err(DecodeError::InvalidHeaderFlags {
            packet: pt::name(ptype),
            flags,
        })
    };
    match ptype {
        pt::PUBLISH => {
            let qos = (flags >> 1) & 0x03;
            if qos == 3 {
                Err(DecodeError::InvalidQoS)
            } else if flags & 0x08 != 0 && qos == 0 {
                invalid()
            } else {
                Ok(())
            }
        }
        // MQTT 3.1 left these bits unspecified and clients of that era set them loosely;
        // Mosquitto ignores them for 3.1, and so does a drop-in replacement.
        _ if version == ProtocolVersion::V31 => Ok(()),
        pt::PUBREL | pt::SUBSCRIBE | pt::UNSUBSCRIBE if flags != 0b0010 => invalid(),
        pt::PUBREL | pt::SUBSCRIBE | pt::UNSUBSCRIBE => Ok(()),
        _ if flags != 0 => invalid(),
        _ => Ok(()),
    }
}

fn packet_id(r: &mut Reader) -> Result<u16, DecodeError> {
    match r.u16()? {
        0 => Err(DecodeError::ZeroPacketId),
        id => Ok(id),
    }
}

fn check_code(code: u8, allowed: &[u8]) -> Result<u8, DecodeError> {
    if allowed.contains(&code) {
        Ok(code)
    } else {
        Err(DecodeError::InvalidReasonCode(code))
    }
}

fn decode_connect(flags: u8, body: Bytes) -> Result<Connect, DecodeError> {
    let mut r = Reader::new(body);
    let name = r.binary()?;
    let level = r.u8()?;
    // [MQTT-3.1.2-1], [MQTT-3.1.2-2]. Bit 7 of the level is Mosquitto's bridge marker.
    let protocol = match (&name[..], level & 0x7F) {
        (b"MQTT", 4) => ProtocolVersion::V311,
        (b"MQTT", 5) => ProtocolVersion::V5,
        (b"MQIsdp", 3) => ProtocolVersion::V31,
        (b"MQTT" | b"MQIsdp", _) => return Err(DecodeError::UnsupportedProtocolVersion(level)),
        _ => return Err(DecodeError::InvalidProtocolName),
    };
    check_flags(pt::CONNECT, flags, protocol)?;
    let v5 = protocol.is_v5();

    let connect_flags = r.u8()?;
    // [MQTT-3.1.2-3]; unspecified in 3.1, where Mosquitto does not check it.
    if connect_flags & 0x01 != 0 && protocol != ProtocolVersion::V31 {
        return Err(DecodeError::ConnectReservedFlag);
    }
    let clean_start = connect_flags & 0x02 != 0;
    let will_flag = connect_flags & 0x04 != 0;
    let will_qos = (connect_flags >> 3) & 0x03;
    let will_retain = connect_flags & 0x20 != 0;
    let password_flag = connect_flags & 0x40 != 0;
    let username_flag = connect_flags & 0x80 != 0;
    // [MQTT-3.1.2-11], [MQTT-3.1.2-13]
    if !will_flag && (will_qos != 0 || will_retain) {
        return Err(DecodeError::InvalidWillFlags);
    }
    // [MQTT-3.1.2-12]
    let Some(will_qos) = QoS::from_u8(will_qos) else {
        return Err(DecodeError::InvalidQoS);
    };
    // [MQTT-3.1.2-22]: dropped in MQTT 5, where a password alone is allowed.
    if password_flag && !username_flag && !v5 {
        return Err(DecodeError::PasswordWithoutUsername);
    }
    let keep_alive = r.u16()?;
    let properties = if v5 {
        let p = decode_properties(&mut r, &rules::CONNECT)?;
        // 3.1.2.11.10: Authentication Data only makes sense for a method.
        if p.authentication_data.is_some() && p.authentication_method.is_none() {
            return Err(DecodeError::InvalidPropertyValue(id::AUTHENTICATION_DATA));
        }
        p
    } else {
        Properties::default()
    };
    let client_id = r.string()?;
    let will = if will_flag {
        let properties = if v5 {
            decode_properties(&mut r, &rules::WILL)?
        } else {
            Properties::default()
        };
        let topic = topic_name(&mut r)?;
        if topic.is_empty() {
            return Err(DecodeError::InvalidTopicName);
        }
        let payload = r.binary()?;
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if username_flag {
        Some(r.string()?)
    } else {
        None
    };
    let password = if password_flag {
        Some(r.binary()?)
    } else {
        None
    };
    end(&r, pt::CONNECT)?;
    Ok(Connect {
        protocol,
        clean_start,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

fn decode_connack(r: &mut Reader, v5: bool) -> Result<ConnAck, DecodeError> {
    let ack_flags = r.u8()?;
    // [MQTT-3.2.2-1]
    if ack_flags & 0xFE != 0 {
        return Err(DecodeError::ConnAckReservedFlags);
    }
    let code = r.u8()?;
    let (code, properties) = if v5 {
        let code = check_code(code, allowed::CONNACK)?;
        (code, decode_properties(r, &rules::CONNACK)?)
    } else {
        (
            check_code(code, allowed::V3_CONNACK)?,
            Properties::default(),
        )
    };
    Ok(ConnAck {
        session_present: ack_flags & 0x01 != 0,
        code,
        properties,
    })
}

fn decode_publish(
    flags: u8,
    r: &mut Reader,
    v5: bool,
    from: Sender,
) -> Result<Publish, DecodeError> {
    // check_flags already refused QoS 3.
    let qos = QoS::from_u8((flags >> 1) & 0x03).ok_or(DecodeError::InvalidQoS)?;
    // An empty name waits for the properties, which may hold a Topic Alias.
    let topic = topic_name(r)?;
    // [MQTT-2.2.1-2]: no packet identifier at QoS 0.
    let packet_id = if qos == QoS::AtMostOnce {
        0
    } else {
        packet_id(r)?
    };
    let properties = if v5 {
        let rules = match from {
            Sender::Server => &rules::PUBLISH_FROM_SERVER,
            Sender::Client => &rules::PUBLISH_FROM_CLIENT,
        };
        decode_properties(r, rules)?
    } else {
        Properties::default()
    };
    // [MQTT-3.3.2-1], [MQTT-4.7.3-1]; MQTT 5 3.3.2.3.4 lets an alias stand in for the name.
    if topic.is_empty() && properties.topic_alias.is_none() {
        return Err(if v5 {
            // MQTT 5 3.3.2.3.4: a protocol error, not a bad name.
            DecodeError::MissingTopic
        } else {
            DecodeError::InvalidTopicName
        });
    }
    Ok(Publish {
        dup: flags & 0x08 != 0,
        qos,
        retain: flags & 0x01 != 0,
        topic,
        packet_id,
        payload: r.rest(),
        properties,
    })
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP. In MQTT 5 the reason code and the properties may each be
/// left out (remaining length 2 or 3).
fn decode_pub_resp(
    r: &mut Reader,
    v5: bool,
    rules: &PropRules,
    codes: &[u8],
) -> Result<PubResp, DecodeError> {
    let packet_id = packet_id(r)?;
    let (reason, properties) = if v5 {
        decode_reason_and_properties(r, rules, codes)?
    } else {
        (0, Properties::default())
    };
    Ok(PubResp {
        packet_id,
        reason,
        properties,
    })
}

/// The optional tail shared by MQTT 5 acknowledgements, DISCONNECT and AUTH: nothing left
/// means success without properties, one byte means a reason code alone.
fn decode_reason_and_properties(
    r: &mut Reader,
    rules: &PropRules,
    codes: &[u8],
) -> Result<(u8, Properties), DecodeError> {
    if r.is_empty() {
        return Ok((0, Properties::default()));
    }
    let reason = check_code(r.u8()?, codes)?;
    if r.is_empty() {
        return Ok((reason, Properties::default()));
    }
    Ok((reason, decode_properties(r, rules)?))
}

/// A topic name, or an empty string for the caller to judge. [MQTT-1.5.4-2] (U+0000) stays a
/// malformed string; other characters and wildcards make an invalid topic name
/// ([MQTT-3.3.2-2]).
fn topic_name(r: &mut Reader) -> Result<ByteString, DecodeError> {
    let topic = r.utf8()?;
    if topic.is_empty() || valid_topic_name(&topic) {
        Ok(topic)
    } else if topic.as_bytes().contains(&0) {
        Err(DecodeError::DisallowedCodePoint)
    } else {
        Err(DecodeError::InvalidTopicName)
    }
}

fn topic_filter(r: &mut Reader) -> Result<String, DecodeError> {
    let filter = r.string()?;
    if valid_topic_filter(&filter) {
        Ok(filter)
    } else {
        Err(DecodeError::InvalidTopicFilter)
    }
}

fn decode_subscribe(r: &mut Reader, v5: bool) -> Result<Subscribe, DecodeError> {
    let packet_id = packet_id(r)?;
    let properties = if v5 {
        decode_properties(r, &rules::SUBSCRIBE)?
    } else {
        Properties::default()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = topic_filter(r)?;
        let options = subscription_options(r.u8()?, v5, &filter)?;
        filters.push(SubscribeFilter { filter, options });
    }
    // [MQTT-3.8.3-3]
    if filters.is_empty() {
        return Err(DecodeError::EmptySubscription);
    }
    Ok(Subscribe {
        packet_id,
        filters,
        properties,
    })
}

/// [MQTT-3.8.3-4] (3.1.1 reserved bits and QoS), [MQTT-3.8.3-5] (MQTT 5 reserved bits).
fn subscription_options(
    byte: u8,
    v5: bool,
    filter: &str,
) -> Result<SubscriptionOptions, DecodeError> {
    let reserved = if v5 { 0xC0 } else { 0xFC };
    if byte & reserved != 0 {
        return Err(DecodeError::InvalidSubscriptionOptions);
    }
    let qos = QoS::from_u8(byte & 0x03).ok_or(DecodeError::InvalidSubscriptionQoS)?;
    let options = SubscriptionOptions {
        qos,
        no_local: byte & 0x04 != 0,
        retain_as_published: byte & 0x08 != 0,
        retain_handling: (byte >> 4) & 0x03,
    };
    if options.retain_handling == 3 {
        return Err(DecodeError::InvalidRetainHandling);
    }
    // [MQTT-3.8.3-4] in MQTT 5: a shared subscriber would never get its own messages anyway.
    if options.no_local && parse_shared(filter).is_some() {
        return Err(DecodeError::NoLocalOnSharedSubscription);
    }
    Ok(options)
}

fn decode_unsubscribe(r: &mut Reader, v5: bool) -> Result<Unsubscribe, DecodeError> {
    let packet_id = packet_id(r)?;
    let properties = if v5 {
        decode_properties(r, &rules::UNSUBSCRIBE)?
    } else {
        Properties::default()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(topic_filter(r)?);
    }
    // [MQTT-3.10.3-2]
    if filters.is_empty() {
        return Err(DecodeError::EmptySubscription);
    }
    Ok(Unsubscribe {
        packet_id,
        filters,
        properties,
    })
}

/// One code per filter; since a SUBSCRIBE or UNSUBSCRIBE has at least one filter, an
/// acknowledgement without codes is cut short.
fn ack_codes(r: &mut Reader, allowed: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let codes = r.rest();
    if codes.is_empty() {
        return Err(DecodeError::Truncated);
    }
    for &code in codes.iter() {
        check_code(code, allowed)?;
    }
    Ok(codes.to_vec())
}

fn decode_suback(r: &mut Reader, v5: bool) -> Result<SubAck, DecodeError> {
    let packet_id = packet_id(r)?;
    let (properties, codes) = if v5 {
        let properties = decode_properties(r, &rules::SUBACK)?;
        (properties, ack_codes(r, allowed::SUBACK)?)
    } else {
        (Properties::default(), ack_codes(r, allowed::V3_SUBACK)?)
    };
    Ok(SubAck {
        packet_id,
        codes,
        properties,
    })
}

fn decode_unsuback(r: &mut Reader, v5: bool) -> Result<UnsubAck, DecodeError> {
    let packet_id = packet_id(r)?;
    let (properties, codes) = if v5 {
        let properties = decode_properties(r, &rules::UNSUBACK)?;
        (properties, ack_codes(r, allowed::UNSUBACK)?)
    } else {
        (Properties::default(), Vec::new())
    };
    Ok(UnsubAck {
        packet_id,
        codes,
        properties,
    })
}
