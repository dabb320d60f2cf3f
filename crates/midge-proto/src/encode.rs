//! Packets to bytes. Every encoder first computes the exact remaining length arithmetically,
//! so one reservation covers the packet and `packet_len` is available for maximum packet size
//! checks without encoding.
//!
//! Encoding trusts its input: values that came from the decoder or from the broker's own
//! logic. It writes MQTT 3.x packets without what 3.x cannot carry (properties, most reason
//! codes) and writes only the properties the packet may carry in MQTT 5.

use bytes::{BufMut, BytesMut};

use crate::packet::packet_type as pt;
use crate::packet::*;
use crate::properties::{id, Properties};
use crate::property_codec::{
    self as rules, properties_len, put_data, put_properties, walk_properties, PropRules, PutSink,
};
use crate::varint::{put_varint, varint_len};

/// The broker's hot path: one stored message sent to one subscriber, with per-subscriber
/// fields given separately so nothing is cloned.
#[derive(Clone, Copy, Debug)]
pub struct OutgoingPublish<'a> {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Empty when only a topic alias is sent (v5).
    pub topic: &'a str,
    /// Ignored for QoS 0.
    pub packet_id: u16,
    pub payload: &'a [u8],
    /// The message's own properties. Its topic_alias, subscription_identifiers and
    /// message_expiry_interval are ignored in favour of the three fields below, and properties
    /// a PUBLISH may not carry (a will's Will Delay Interval) are left out.
    pub properties: &'a Properties,
    pub topic_alias: Option<u16>,
    pub subscription_identifiers: &'a [u32],
    /// What is left of the expiry interval when the message is sent, not the original.
    pub message_expiry_interval: Option<u32>,
}

impl<'a> OutgoingPublish<'a> {
    /// A decoded PUBLISH sent on unchanged, its per-subscriber fields taken from its own
    /// properties.
    pub fn from_publish(p: &'a Publish) -> OutgoingPublish<'a> {
        OutgoingPublish {
            dup: p.dup,
            qos: p.qos,
            retain: p.retain,
            topic: &p.topic,
            packet_id: p.packet_id,
            payload: &p.payload,
            properties: &p.properties,
            topic_alias: p.properties.topic_alias,
            subscription_identifiers: &p.properties.subscription_identifiers,
            message_expiry_interval: p.properties.message_expiry_interval,
        }
    }
}

/// The message's own PUBLISH properties, less those [`OutgoingPublish`] gives per subscriber.
const PUBLISH_BASE: PropRules = rules::PUBLISH_FROM_SERVER.without(&[
    id::TOPIC_ALIAS,
    id::SUBSCRIPTION_IDENTIFIER,
    id::MESSAGE_EXPIRY_INTERVAL,
]);

struct PublishSizes {
    remaining: usize,
    properties: usize,
}

fn publish_sizes(p: &OutgoingPublish<'_>, version: ProtocolVersion) -> PublishSizes {
    let mut remaining = 2 + p.topic.len() + p.payload.len();
    if p.qos != QoS::AtMostOnce {
        remaining += 2;
    }
    let mut properties = 0;
    if version.is_v5() {
        properties = properties_len(p.properties, &PUBLISH_BASE);
        if p.message_expiry_interval.is_some() {
            properties += 5;
        }
        if p.topic_alias.is_some() {
            properties += 3;
        }
        for &sid in p.subscription_identifiers {
            properties += 1 + varint_len(sid as usize);
        }
        remaining += varint_len(properties) + properties;
    }
    PublishSizes {
        remaining,
        properties,
    }
}

/// Exact total bytes [`encode_publish`] writes.
pub fn publish_len(p: &OutgoingPublish<'_>, version: ProtocolVersion) -> usize {
    let remaining = publish_sizes(p, version).remaining;
    1 + varint_len(remaining) + remaining
}

pub fn encode_publish(p: &OutgoingPublish<'_>, version: ProtocolVersion, buf: &mut BytesMut) {
    let sizes = publish_sizes(p, version);
    buf.reserve(1 + varint_len(sizes.remaining) + sizes.remaining);
    let first =
        (pt::PUBLISH << 4) | (u8::from(p.dup) << 3) | ((p.qos as u8) << 1) | u8::from(p.retain);
    buf.put_u8(first);
    put_varint(buf, sizes.remaining);
    put_data(buf, p.topic.as_bytes());
    if p.qos != QoS::AtMostOnce {
        buf.put_u16(p.packet_id);
    }
    if version.is_v5() {
        put_varint(buf, sizes.properties);
        if let Some(v) = p.message_expiry_interval {
            buf.put_u8(id::MESSAGE_EXPIRY_INTERVAL);
            buf.put_u32(v);
        }
        if let Some(v) = p.topic_alias {
            buf.put_u8(id::TOPIC_ALIAS);
            buf.put_u16(v);
        }
        for &sid in p.subscription_identifiers {
            buf.put_u8(id::SUBSCRIPTION_IDENTIFIER);
            put_varint(buf, sid as usize);
        }
        walk_properties(p.properties, &PUBLISH_BASE, &mut PutSink(buf));
    }
    buf.put_slice(p.payload);
}

/// Exact encoded size of a packet, for maximum packet size checks.
pub fn packet_len(packet: &Packet, version: ProtocolVersion) -> usize {
    if let Packet::Publish(p) = packet {
        return publish_len(&OutgoingPublish::from_publish(p), version);
    }
    let remaining = remaining_len(packet, version);
    1 + varint_len(remaining) + remaining
}

/// Appends the full packet (fixed header included) to buf, in the wire format of `version`.
/// CONNECT is written in the version it names itself, as decoding reads it. AUTH has no 3.x
/// form and is always written as MQTT 5.
pub fn encode_packet(packet: &Packet, version: ProtocolVersion, buf: &mut BytesMut) {
    if let Packet::Publish(p) = packet {
        return encode_publish(&OutgoingPublish::from_publish(p), version, buf);
    }
    let remaining = remaining_len(packet, version);
    buf.reserve(1 + varint_len(remaining) + remaining);
    buf.put_u8(first_byte(packet));
    put_varint(buf, remaining);
    let v5 = version.is_v5();
    match packet {
        Packet::Connect(c) => put_connect(c, buf),
        Packet::ConnAck(c) => {
            // 3.1 has no session present flag: the byte is reserved there.
            let session_present = c.session_present && version != ProtocolVersion::V31;
            buf.put_u8(u8::from(session_present));
            buf.put_u8(c.code);
            if v5 {
                put_props(buf, &c.properties, &rules::CONNACK);
            }
        }
        // Written by encode_publish above.
        Packet::Publish(_) => {}
        Packet::PubAck(r) => put_pub_resp(r, v5, &rules::PUBACK, buf),
        Packet::PubRec(r) => put_pub_resp(r, v5, &rules::PUBREC, buf),
        Packet::PubRel(r) => put_pub_resp(r, v5, &rules::PUBREL, buf),
        Packet::PubComp(r) => put_pub_resp(r, v5, &rules::PUBCOMP, buf),
        Packet::Subscribe(s) => {
            buf.put_u16(s.packet_id);
            if v5 {
                put_props(buf, &s.properties, &rules::SUBSCRIBE);
            }
            for f in &s.filters {
                put_data(buf, f.filter.as_bytes());
                buf.put_u8(options_byte(&f.options, v5));
            }
        }
        Packet::SubAck(s) => {
            buf.put_u16(s.packet_id);
            if v5 {
                put_props(buf, &s.properties, &rules::SUBACK);
            }
            buf.put_slice(&s.codes);
        }
        Packet::Unsubscribe(u) => {
            buf.put_u16(u.packet_id);
            if v5 {
                put_props(buf, &u.properties, &rules::UNSUBSCRIBE);
            }
            for f in &u.filters {
                put_data(buf, f.as_bytes());
            }
        }
        Packet::UnsubAck(u) => {
            buf.put_u16(u.packet_id);
            if v5 {
                put_props(buf, &u.properties, &rules::UNSUBACK);
                buf.put_slice(&u.codes);
            }
        }
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(d) => {
            if v5 {
                put_reason_tail(d.reason, &d.properties, &rules::DISCONNECT, buf);
            }
        }
        Packet::Auth(a) => put_reason_tail(a.reason, &a.properties, &rules::AUTH, buf),
    }
}

fn first_byte(packet: &Packet) -> u8 {
    let (ptype, flags) = match packet {
        Packet::Connect(_) => (pt::CONNECT, 0),
        Packet::ConnAck(_) => (pt::CONNACK, 0),
        Packet::Publish(_) => (pt::PUBLISH, 0),
        Packet::PubAck(_) => (pt::PUBACK, 0),
        Packet::PubRec(_) => (pt::PUBREC, 0),
        Packet::PubRel(_) => (pt::PUBREL, 0b0010),
        Packet::PubComp(_) => (pt::PUBCOMP, 0),
        Packet::Subscribe(_) => (pt::SUBSCRIBE, 0b0010),
        Packet::SubAck(_) => (pt::SUBACK, 0),
        Packet::Unsubscribe(_) => (pt::UNSUBSCRIBE, 0b0010),
        Packet::UnsubAck(_) => (pt::UNSUBACK, 0),
        Packet::PingReq => (pt::PINGREQ, 0),
        Packet::PingResp => (pt::PINGRESP, 0),
        Packet::Disconnect(_) => (pt::DISCONNECT, 0),
        Packet::Auth(_) => (pt::AUTH, 0),
    };
    (ptype << 4) | flags
}

/// Property length field plus properties.
fn props_field_len(p: &Properties, rules: &PropRules) -> usize {
    let len = properties_len(p, rules);
    varint_len(len) + len
}

fn put_props(buf: &mut BytesMut, p: &Properties, rules: &PropRules) {
    put_properties(buf, p, rules, properties_len(p, rules));
}

/// MQTT 5 acknowledgements, DISCONNECT and AUTH leave out a success code without properties,
/// and the property length when there are none.
fn reason_tail_len(reason: u8, p: &Properties, rules: &PropRules) -> usize {
    match properties_len(p, rules) {
        0 if reason == 0 => 0,
        0 => 1,
        len => 1 + varint_len(len) + len,
    }
}

fn put_reason_tail(reason: u8, p: &Properties, rules: &PropRules, buf: &mut BytesMut) {
    match properties_len(p, rules) {
        0 if reason == 0 => {}
        0 => buf.put_u8(reason),
        len => {
            buf.put_u8(reason);
            put_properties(buf, p, rules, len);
        }
    }
}

fn put_pub_resp(r: &PubResp, v5: bool, rules: &PropRules, buf: &mut BytesMut) {
    buf.put_u16(r.packet_id);
    if v5 {
        put_reason_tail(r.reason, &r.properties, rules, buf);
    }
}

fn options_byte(o: &SubscriptionOptions, v5: bool) -> u8 {
    let qos = o.qos as u8;
    if !v5 {
        return qos;
    }
    qos | (u8::from(o.no_local) << 2)
        | (u8::from(o.retain_as_published) << 3)
        | ((o.retain_handling & 0x03) << 4)
}

fn protocol_name(version: ProtocolVersion) -> &'static [u8] {
    match version {
        ProtocolVersion::V31 => b"MQIsdp",
        ProtocolVersion::V311 | ProtocolVersion::V5 => b"MQTT",
    }
}

fn connect_len(c: &Connect) -> usize {
    let v5 = c.protocol.is_v5();
    // Protocol name, level, connect flags, keep alive.
    let mut len = 2 + protocol_name(c.protocol).len() + 1 + 1 + 2;
    if v5 {
        len += props_field_len(&c.properties, &rules::CONNECT);
    }
    len += 2 + c.client_id.len();
    if let Some(w) = &c.will {
        if v5 {
            len += props_field_len(&w.properties, &rules::WILL);
        }
        len += 2 + w.topic.len() + 2 + w.payload.len();
    }
    if let Some(u) = &c.username {
        len += 2 + u.len();
    }
    if let Some(p) = &c.password {
        len += 2 + p.len();
    }
    len
}

fn put_connect(c: &Connect, buf: &mut BytesMut) {
    let v5 = c.protocol.is_v5();
    put_data(buf, protocol_name(c.protocol));
    buf.put_u8(c.protocol.level());
    let mut flags = 0u8;
    if c.clean_start {
        flags |= 0x02;
    }
    if let Some(w) = &c.will {
        flags |= 0x04 | ((w.qos as u8) << 3);
        if w.retain {
            flags |= 0x20;
        }
    }
    if c.password.is_some() {
        flags |= 0x40;
    }
    if c.username.is_some() {
        flags |= 0x80;
    }
    buf.put_u8(flags);
    buf.put_u16(c.keep_alive);
    if v5 {
        put_props(buf, &c.properties, &rules::CONNECT);
    }
    put_data(buf, c.client_id.as_bytes());
    if let Some(w) = &c.will {
        if v5 {
            put_props(buf, &w.properties, &rules::WILL);
        }
        put_data(buf, w.topic.as_bytes());
        put_data(buf, &w.payload);
    }
    if let Some(u) = &c.username {
        put_data(buf, u.as_bytes());
    }
    if let Some(p) = &c.password {
        put_data(buf, p);
    }
}

fn remaining_len(packet: &Packet, version: ProtocolVersion) -> usize {
    let v5 = version.is_v5();
    match packet {
        Packet::Connect(c) => connect_len(c),
        Packet::ConnAck(c) => {
            2 + if v5 {
                props_field_len(&c.properties, &rules::CONNACK)
            } else {
                0
            }
        }
        Packet::Publish(p) => publish_sizes(&OutgoingPublish::from_publish(p), version).remaining,
        Packet::PubAck(r) => pub_resp_len(r, v5, &rules::PUBACK),
        Packet::PubRec(r) => pub_resp_len(r, v5, &rules::PUBREC),
        Packet::PubRel(r) => pub_resp_len(r, v5, &rules::PUBREL),
        Packet::PubComp(r) => pub_resp_len(r, v5, &rules::PUBCOMP),
        Packet::Subscribe(s) => {
            let filters: usize = s.filters.iter().map(|f| 2 + f.filter.len() + 1).sum();
            2 + filters
                + if v5 {
                    props_field_len(&s.properties, &rules::SUBSCRIBE)
                } else {
                    0
                }
        }
        Packet::SubAck(s) => {
            2 + s.codes.len()
                + if v5 {
                    props_field_len(&s.properties, &rules::SUBACK)
                } else {
                    0
                }
        }
        Packet::Unsubscribe(u) => {
            let filters: usize = u.filters.iter().map(|f| 2 + f.len()).sum();
            2 + filters
                + if v5 {
                    props_field_len(&u.properties, &rules::UNSUBSCRIBE)
                } else {
                    0
                }
        }
        Packet::UnsubAck(u) => {
            2 + if v5 {
                props_field_len(&u.properties, &rules::UNSUBACK) + u.codes.len()
            } else {
                0
            }
        }
        Packet::PingReq | Packet::PingResp => 0,
        Packet::Disconnect(d) => {
            if v5 {
                reason_tail_len(d.reason, &d.properties, &rules::DISCONNECT)
            } else {
                0
            }
        }
        Packet::Auth(a) => reason_tail_len(a.reason, &a.properties, &rules::AUTH),
    }
}

fn pub_resp_len(r: &PubResp, v5: bool, rules: &PropRules) -> usize {
    2 + if v5 {
        reason_tail_len(r.reason, &r.properties, rules)
    } else {
        0
    }
}
