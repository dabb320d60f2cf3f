//! The packets a run sends and receives per message, encoded and parsed by hand.
//!
//! midge-proto builds a `Packet` (owned topic, `Bytes` payload, properties struct) for every
//! packet, which is right for a broker but would make the load tool spend more per message
//! than the broker it measures. Here a publisher encodes each topic's PUBLISH once into a
//! template and then only copies it and patches the packet id and the payload header; a
//! subscriber looks at the few bytes it needs in place (fixed header, topic length, packet id,
//! MQTT 5 property length, payload) without copying or validating the rest. Everything else
//! (CONNECT, SUBSCRIBE and their answers) goes through midge-proto, see `client`.
//!
//! The unit tests hold these against midge-proto's encoder and decoder byte for byte.

use bytes::{BufMut, BytesMut};
use midge_proto::packet_type as pt;
use midge_proto::varint::{put_varint, read_varint, VarIntError};

use crate::payload::{Header, HEADER_LEN};

/// A PUBLISH for one topic, QoS and payload size, ready to be stamped.
#[derive(Clone, Debug)]
pub struct PublishTemplate {
    bytes: Vec<u8>,
    /// Where the packet id goes; None for QoS 0, which has none.
    id_at: Option<usize>,
    payload_at: usize,
}

impl PublishTemplate {
    /// `payload` is the padding the header is written over; at least [`HEADER_LEN`] bytes.
    pub fn new(topic: &str, qos: u8, payload: &[u8], v5: bool) -> PublishTemplate {
        assert!(
            payload.len() >= HEADER_LEN,
            "payload shorter than its header"
        );
        let id_len = if qos > 0 { 2 } else { 0 };
        // MQTT 5 has a property length (0: no properties) between packet id and payload.
        let props_len = usize::from(v5);
        let remaining = 2 + topic.len() + id_len + props_len + payload.len();
        let mut b = BytesMut::with_capacity(remaining + 5);
        b.put_u8((pt::PUBLISH << 4) | (qos << 1));
        put_varint(&mut b, remaining);
        b.put_u16(topic.len() as u16);
        b.put_slice(topic.as_bytes());
        let id_at = (qos > 0).then_some(b.len());
        if qos > 0 {
            b.put_u16(0);
        }
        if v5 {
            b.put_u8(0);
        }
        let payload_at = b.len();
        b.put_slice(payload);
        PublishTemplate {
            bytes: b.to_vec(),
            id_at,
            payload_at,
        }
    }

    /// Bytes one packet takes on the wire.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Appends one PUBLISH with this packet id (ignored for QoS 0) and payload header.
    pub fn put(&self, buf: &mut BytesMut, packet_id: u16, header: &Header) {
        let start = buf.len();
        buf.extend_from_slice(&self.bytes);
        let pkt = &mut buf[start..];
        if let Some(at) = self.id_at {
            pkt[at..at + 2].copy_from_slice(&packet_id.to_be_bytes());
        }
        header.write(&mut pkt[self.payload_at..]);
    }
}

/// The four acknowledgement packets of the QoS 1 and 2 flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckKind {
    PubAck,
    PubRec,
    PubRel,
    PubComp,
}

impl AckKind {
    fn first_byte(self) -> u8 {
        match self {
            AckKind::PubAck => pt::PUBACK << 4,
            AckKind::PubRec => pt::PUBREC << 4,
            // PUBREL's reserved flags are 0b0010 [MQTT-3.6.1-1].
            AckKind::PubRel => (pt::PUBREL << 4) | 0b0010,
            AckKind::PubComp => pt::PUBCOMP << 4,
        }
    }

    fn from_type(ptype: u8) -> Option<AckKind> {
        match ptype {
            pt::PUBACK => Some(AckKind::PubAck),
            pt::PUBREC => Some(AckKind::PubRec),
            pt::PUBREL => Some(AckKind::PubRel),
            pt::PUBCOMP => Some(AckKind::PubComp),
            _ => None,
        }
    }
}

/// Appends an acknowledgement with success. The 4-byte form is the same in 3.1.1 and 5: MQTT
/// 5 lets a success reason code without properties be left out.
pub fn put_ack(buf: &mut BytesMut, kind: AckKind, packet_id: u16) {
    let id = packet_id.to_be_bytes();
    buf.extend_from_slice(&[kind.first_byte(), 2, id[0], id[1]]);
}

/// One packet as a run needs to see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    Publish {
        qos: u8,
        /// 0 for QoS 0.
        packet_id: u16,
        payload: &'a [u8],
    },
    Ack {
        kind: AckKind,
        packet_id: u16,
        /// MQTT 5 reason code; 0 when absent (always for 3.1.1).
        reason: u8,
    },
    /// Anything else (PINGRESP, DISCONNECT, SUBACK …): its first byte and body.
    Other { first_byte: u8, body: &'a [u8] },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    RemainingLengthTooLong,
    /// A PUBLISH or acknowledgement too short for its own fields.
    Malformed(&'static str),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::RemainingLengthTooLong => write!(f, "remaining length over 4 bytes"),
            ParseError::Malformed(what) => write!(f, "malformed {what}"),
        }
    }
}

/// Parses the packet at the start of `buf`: [`Parsed::Incomplete`] until all of it is there,
/// with its total length once the fixed header says (so the reader can make room for a packet
/// larger than its buffer), then the packet and the bytes it took.
pub fn parse(buf: &[u8], v5: bool) -> Result<Parsed<'_>, ParseError> {
    let Some(&first) = buf.first() else {
        return Ok(Parsed::Incomplete(None));
    };
    let (remaining, n) = match read_varint(&buf[1..]) {
        Ok(v) => v,
        Err(VarIntError::Incomplete) => return Ok(Parsed::Incomplete(None)),
        Err(VarIntError::TooLong) => return Err(ParseError::RemainingLengthTooLong),
    };
    let total = 1 + n + remaining as usize;
    if buf.len() < total {
        return Ok(Parsed::Incomplete(Some(total)));
    }
    let body = &buf[1 + n..total];
    let ptype = first >> 4;
    let packet = if ptype == pt::PUBLISH {
        parse_publish(first, body, v5)?
    } else if let Some(kind) = AckKind::from_type(ptype) {
        if body.len() < 2 {
            return Err(ParseError::Malformed("acknowledgement"));
        }
        Incoming::Ack {
            kind,
            packet_id: u16::from_be_bytes([body[0], body[1]]),
            reason: if v5 {
                body.get(2).copied().unwrap_or(0)
            } else {
                0
            },
        }
    } else {
        Incoming::Other {
            first_byte: first,
            body,
        }
    };
    Ok(Parsed::Packet(packet, total))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// Not enough bytes; the packet's total length once its fixed header is complete.
    Incomplete(Option<usize>),
    /// A packet and the number of bytes it took.
    Packet(Incoming<'a>, usize),
}

fn parse_publish(first: u8, body: &[u8], v5: bool) -> Result<Incoming<'_>, ParseError> {
    const WHAT: &str = "PUBLISH";
    let qos = (first >> 1) & 0x03;
    let topic_len = usize::from(u16::from_be_bytes([
        *body.first().ok_or(ParseError::Malformed(WHAT))?,
        *body.get(1).ok_or(ParseError::Malformed(WHAT))?,
    ]));
    let mut at = 2 + topic_len;
    let mut packet_id = 0;
    if qos > 0 {
        let id = body.get(at..at + 2).ok_or(ParseError::Malformed(WHAT))?;
        packet_id = u16::from_be_bytes([id[0], id[1]]);
        at += 2;
    }
    if v5 {
        let rest = body.get(at..).ok_or(ParseError::Malformed(WHAT))?;
        let (props, n) = read_varint(rest).map_err(|_| ParseError::Malformed(WHAT))?;
        at += n + props as usize;
    }
    let payload = body.get(at..).ok_or(ParseError::Malformed(WHAT))?;
    Ok(Incoming::Publish {
        qos,
        packet_id,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use midge_proto::{
        decode_fixed_header, decode_packet, encode_packet, Packet, Properties, ProtocolVersion,
        PubResp, Publish, QoS, Sender,
    };

    fn versions() -> [(ProtocolVersion, bool); 2] {
        [(ProtocolVersion::V311, false), (ProtocolVersion::V5, true)]
    }

    fn header() -> Header {
        Header {
            publisher: 7,
            seq: 123_456_789,
            sent_us: 42,
        }
    }

    fn stamped(len: usize) -> Vec<u8> {
        let mut p = crate::payload::template(len);
        header().write(&mut p);
        p
    }

    #[test]
    fn publish_matches_midge_proto() {
        for (version, v5) in versions() {
            for qos in 0..=2u8 {
                for len in [16, 100, 200, 20_000] {
                    let topic = "bench/17";
                    let t = PublishTemplate::new(topic, qos, &crate::payload::template(len), v5);
                    let mut ours = BytesMut::new();
                    let id = if qos == 0 { 0 } else { 0xBEEF };
                    t.put(&mut ours, id, &header());
                    assert_eq!(ours.len(), t.len());

                    let mut theirs = BytesMut::new();
                    let p = Publish {
                        qos: QoS::from_u8(qos).unwrap(),
                        topic: topic.into(),
                        packet_id: id,
                        payload: Bytes::from(stamped(len)),
                        ..Publish::default()
                    };
                    encode_packet(&Packet::Publish(p.clone()), version, &mut theirs);
                    assert_eq!(ours, theirs, "{version:?} QoS {qos} len {len}");

                    // And midge-proto reads ours back as the same packet.
                    let fh = decode_fixed_header(&ours).unwrap().unwrap();
                    let body = Bytes::copy_from_slice(&ours[fh.header_len..]);
                    let back = decode_packet(fh.first_byte, body, version, Sender::Client);
                    assert_eq!(back, Ok(Packet::Publish(p)));
                }
            }
        }
    }

    #[test]
    fn acks_match_midge_proto() {
        for (version, _) in versions() {
            for (kind, packet) in [
                (AckKind::PubAck, Packet::PubAck(PubResp::new(0x1234))),
                (AckKind::PubRec, Packet::PubRec(PubResp::new(0x1234))),
                (AckKind::PubRel, Packet::PubRel(PubResp::new(0x1234))),
                (AckKind::PubComp, Packet::PubComp(PubResp::new(0x1234))),
            ] {
                let mut ours = BytesMut::new();
                put_ack(&mut ours, kind, 0x1234);
                let mut theirs = BytesMut::new();
                encode_packet(&packet, version, &mut theirs);
                assert_eq!(ours, theirs, "{kind:?} {version:?}");
            }
        }
    }

    #[test]
    fn parses_what_a_broker_sends() {
        for (version, v5) in versions() {
            for qos in 0..=2u8 {
                let mut properties = Properties::default();
                if v5 {
                    // A server may add properties; the parser must skip them.
                    properties.subscription_identifiers = vec![5];
                    properties.user_properties = vec![("k".into(), "v".into())];
                }
                let p = Publish {
                    qos: QoS::from_u8(qos).unwrap(),
                    topic: "a/b".into(),
                    packet_id: if qos == 0 { 0 } else { 9 },
                    payload: Bytes::from(stamped(40)),
                    properties,
                    ..Publish::default()
                };
                let mut buf = BytesMut::new();
                encode_packet(&Packet::Publish(p), version, &mut buf);
                let total = buf.len();
                match parse(&buf, v5).unwrap() {
                    Parsed::Packet(
                        Incoming::Publish {
                            qos: q,
                            packet_id,
                            payload,
                        },
                        n,
                    ) => {
                        assert_eq!(n, total);
                        assert_eq!(q, qos);
                        assert_eq!(packet_id, if qos == 0 { 0 } else { 9 });
                        assert_eq!(Header::read(payload), Some(header()));
                        assert_eq!(payload.len(), 40);
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
    }

    #[test]
    fn parses_acks_with_reason_codes() {
        let mut buf = BytesMut::new();
        let r = PubResp {
            reason: 0x10,
            ..PubResp::new(77)
        };
        encode_packet(&Packet::PubAck(r), ProtocolVersion::V5, &mut buf);
        assert_eq!(
            parse(&buf, true).unwrap(),
            Parsed::Packet(
                Incoming::Ack {
                    kind: AckKind::PubAck,
                    packet_id: 77,
                    reason: 0x10
                },
                buf.len()
            )
        );
        let mut buf = BytesMut::new();
        put_ack(&mut buf, AckKind::PubRel, 3);
        assert_eq!(
            parse(&buf, false).unwrap(),
            Parsed::Packet(
                Incoming::Ack {
                    kind: AckKind::PubRel,
                    packet_id: 3,
                    reason: 0
                },
                4
            )
        );
    }

    #[test]
    fn many_packets_in_one_buffer_and_a_partial_one() {
        let t = PublishTemplate::new("t", 1, &crate::payload::template(16), false);
        let mut buf = BytesMut::new();
        for id in 1..=3 {
            t.put(&mut buf, id, &header());
        }
        put_ack(&mut buf, AckKind::PubAck, 4);
        t.put(&mut buf, 5, &header());
        let cut = buf.len() - 3;
        let buf = &buf[..cut];
        let mut at = 0;
        let mut ids = vec![];
        loop {
            match parse(&buf[at..], false).unwrap() {
                Parsed::Packet(Incoming::Publish { packet_id, .. }, n) => {
                    ids.push(packet_id);
                    at += n;
                }
                Parsed::Packet(Incoming::Ack { packet_id, .. }, n) => {
                    ids.push(packet_id + 100);
                    at += n;
                }
                Parsed::Packet(other, _) => panic!("{other:?}"),
                Parsed::Incomplete(need) => {
                    assert_eq!(need, Some(t.len()));
                    break;
                }
            }
        }
        assert_eq!(ids, [1, 2, 3, 104]);
        assert_eq!(parse(&[0x30], false).unwrap(), Parsed::Incomplete(None));
        assert_eq!(parse(&[], false).unwrap(), Parsed::Incomplete(None));
    }

    #[test]
    fn other_packets_pass_through() {
        let mut buf = BytesMut::new();
        encode_packet(&Packet::PingResp, ProtocolVersion::V311, &mut buf);
        assert_eq!(
            parse(&buf, false).unwrap(),
            Parsed::Packet(
                Incoming::Other {
                    first_byte: 0xD0,
                    body: &[]
                },
                2
            )
        );
    }

    #[test]
    fn malformed() {
        assert_eq!(
            parse(&[0x30, 0x01, 0x00], false),
            Err(ParseError::Malformed("PUBLISH"))
        );
        // Topic length says 5, body has 2 bytes after it.
        assert_eq!(
            parse(&[0x32, 0x04, 0x00, 0x05, b'a', b'b'], false),
            Err(ParseError::Malformed("PUBLISH"))
        );
        assert_eq!(
            parse(&[0x40, 0x01, 0x00], false),
            Err(ParseError::Malformed("acknowledgement"))
        );
        assert_eq!(
            parse(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], false),
            Err(ParseError::RemainingLengthTooLong)
        );
    }
}
