//! The MQTT control packets as plain data. Decoding fills these from bytes; encoding turns them
//! back. Fields that only exist in MQTT 5 (reason codes, properties) hold their neutral value
//! (`0`, empty) for 3.1 and 3.1.1 so the broker handles every version with one type.

use bytes::Bytes;
use bytestring::ByteString;

use crate::properties::Properties;

/// Protocol level from CONNECT: 3 = MQTT 3.1 (`MQIsdp`), 4 = 3.1.1, 5 = 5.0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolVersion {
    V31 = 3,
    V311 = 4,
    V5 = 5,
}

impl ProtocolVersion {
    pub fn is_v5(self) -> bool {
        self == ProtocolVersion::V5
    }

    /// The short form Mosquitto prints in its connection log line (`p2`, `p4`, `p5` …).
    pub fn level(self) -> u8 {
        self as u8
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum QoS {
    #[default]
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// Which side sent the bytes being decoded: a server refuses packets only a server may send
/// (CONNACK, SUBACK, UNSUBACK, PINGRESP) and a client refuses the client-only ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    Client,
    Server,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Packet {
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(PubResp),
    PubRec(PubResp),
    PubRel(PubResp),
    PubComp(PubResp),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    Auth(Auth),
}

impl Packet {
    /// The packet's name as logs and errors print it.
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::ConnAck(_) => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::PubAck(_) => "PUBACK",
            Packet::PubRec(_) => "PUBREC",
            Packet::PubRel(_) => "PUBREL",
            Packet::PubComp(_) => "PUBCOMP",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::SubAck(_) => "SUBACK",
            Packet::Unsubscribe(_) => "UNSUBSCRIBE",
            Packet::UnsubAck(_) => "UNSUBACK",
            Packet::PingReq => "PINGREQ",
            Packet::PingResp => "PINGRESP",
            Packet::Disconnect(_) => "DISCONNECT",
            Packet::Auth(_) => "AUTH",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Connect {
    pub protocol: ProtocolVersion,
    /// Clean session (3.x) or clean start (5.0).
    pub clean_start: bool,
    pub keep_alive: u16,
    /// May be empty: the broker then assigns one or refuses, depending on the session kind.
    pub client_id: String,
    pub will: Option<Will>,
    pub username: Option<String>,
    pub password: Option<Bytes>,
    pub properties: Properties,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Will {
    pub topic: ByteString,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// MQTT 5 will properties (will delay, expiry, content type, user properties …).
    pub properties: Properties,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct ConnAck {
    pub session_present: bool,
    /// 3.x return code (0..=5) or MQTT 5 reason code.
    pub code: u8,
    pub properties: Properties,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// May be empty in MQTT 5 when a topic alias stands in for it.
    pub topic: ByteString,
    /// 0 for QoS 0 (no packet id on the wire); never 0 otherwise.
    pub packet_id: u16,
    pub payload: Bytes,
    pub properties: Properties,
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP share one shape.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PubResp {
    pub packet_id: u16,
    /// MQTT 5 reason code; 0 (success) for 3.x.
    pub reason: u8,
    pub properties: Properties,
}

impl PubResp {
    pub fn new(packet_id: u16) -> PubResp {
        PubResp {
            packet_id,
            ..PubResp::default()
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SubscriptionOptions {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    /// 0: send retained on subscribe, 1: only if the subscription is new, 2: never.
    pub retain_handling: u8,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SubscribeFilter {
    pub filter: String,
    pub options: SubscriptionOptions,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Subscribe {
    pub packet_id: u16,
    /// Never empty after a successful decode.
    pub filters: Vec<SubscribeFilter>,
    pub properties: Properties,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct SubAck {
    pub packet_id: u16,
    /// One per filter: granted QoS or failure (0x80 for 3.1.1, MQTT 5 reason codes).
    pub codes: Vec<u8>,
    pub properties: Properties,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Unsubscribe {
    pub packet_id: u16,
    pub filters: Vec<String>,
    pub properties: Properties,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct UnsubAck {
    pub packet_id: u16,
    /// MQTT 5 only: one reason code per filter. Empty (not encoded) for 3.x.
    pub codes: Vec<u8>,
    pub properties: Properties,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Disconnect {
    pub reason: u8,
    pub properties: Properties,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Auth {
    pub reason: u8,
    pub properties: Properties,
}

/// Control packet type numbers, the high nibble of the fixed header's first byte.
pub mod packet_type {
    pub const CONNECT: u8 = 1;
    pub const CONNACK: u8 = 2;
    pub const PUBLISH: u8 = 3;
    pub const PUBACK: u8 = 4;
    pub const PUBREC: u8 = 5;
    pub const PUBREL: u8 = 6;
    pub const PUBCOMP: u8 = 7;
    pub const SUBSCRIBE: u8 = 8;
    pub const SUBACK: u8 = 9;
    pub const UNSUBSCRIBE: u8 = 10;
    pub const UNSUBACK: u8 = 11;
    pub const PINGREQ: u8 = 12;
    pub const PINGRESP: u8 = 13;
    pub const DISCONNECT: u8 = 14;
    pub const AUTH: u8 = 15;

    /// The name logs and errors print for a packet type number.
    pub fn name(packet_type: u8) -> &'static str {
        match packet_type {
            CONNECT => "CONNECT",
            CONNACK => "CONNACK",
            PUBLISH => "PUBLISH",
            PUBACK => "PUBACK",
            PUBREC => "PUBREC",
            PUBREL => "PUBREL",
            PUBCOMP => "PUBCOMP",
            SUBSCRIBE => "SUBSCRIBE",
            SUBACK => "SUBACK",
            UNSUBSCRIBE => "UNSUBSCRIBE",
            UNSUBACK => "UNSUBACK",
            PINGREQ => "PINGREQ",
            PINGRESP => "PINGRESP",
            DISCONNECT => "DISCONNECT",
            AUTH => "AUTH",
            _ => "reserved",
        }
    }
}
