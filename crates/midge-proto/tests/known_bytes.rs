//! Packets as real clients and brokers put them on the wire, byte for byte.

mod common;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use common::*;
use midge_proto::{
    encode_publish, publish_len, ConnAck, Connect, Disconnect, OutgoingPublish, Packet, Properties,
    ProtocolVersion::{V31, V311, V5},
    PubResp, QoS,
    Sender::{Client, Server},
    SubAck, Subscribe, SubscribeFilter, SubscriptionOptions, UnsubAck,
};

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

#[test]
fn mosquitto_sub_v311_connect() {
    // mosquitto_sub -t test: clean session, keep alive 60, a generated client id.
    let bytes = hex(
        "10 21 00 04 4d 51 54 54 04 02 00 3c 00 15 6d 6f 73 71 2d 71 54 52 44 31 52 79 4f 64 6d \
         32 76 50 63 61 79",
    );
    let packet = decode_frame(&bytes, V311, Client).unwrap();
    let expected = Packet::Connect(Box::new(Connect {
        protocol: V311,
        clean_start: true,
        keep_alive: 60,
        client_id: "mosq-qTRD1RyOdm2vPcay".into(),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    }));
    assert_eq!(packet, expected);
    assert_eq!(encode(&expected, V311), bytes);
}

#[test]
fn v5_connect_with_properties_and_credentials() {
    // Session Expiry 3600, Receive Maximum 20, Topic Alias Maximum 10; user "u", password "p".
    let bytes = hex(
        "10 20 00 04 4d 51 54 54 05 c2 00 3c 0b 11 00 00 0e 10 21 00 14 22 00 0a \
         00 02 63 31 00 01 75 00 01 70",
    );
    let Packet::Connect(c) = decode_frame(&bytes, V5, Client).unwrap() else {
        panic!()
    };
    assert_eq!(c.protocol, V5);
    assert!(c.clean_start);
    assert_eq!(c.client_id, "c1");
    assert_eq!(c.username.as_deref(), Some("u"));
    assert_eq!(c.password.as_deref(), Some(&b"p"[..]));
    assert_eq!(c.properties.session_expiry_interval, Some(3600));
    assert_eq!(c.properties.receive_maximum, Some(20));
    assert_eq!(c.properties.topic_alias_maximum, Some(10));
    // Re-encoded with the limits in Midge's fixed (Mosquitto's CONNACK) order.
    let reencoded = hex(
        "10 20 00 04 4d 51 54 54 05 c2 00 3c 0b 11 00 00 0e 10 22 00 0a 21 00 14 \
         00 02 63 31 00 01 75 00 01 70",
    );
    assert_eq!(encode(&Packet::Connect(c), V5), reencoded);
}

#[test]
fn v31_connect_with_will() {
    // MQIsdp, level 3, will QoS 1 retained on "w" with payload "bye".
    let bytes = hex("10 17 00 06 4d 51 49 73 64 70 03 2e 00 0a 00 01 61 00 01 77 00 03 62 79 65");
    let Packet::Connect(c) = decode_frame(&bytes, V31, Client).unwrap() else {
        panic!()
    };
    assert_eq!(c.protocol, V31);
    let will = c.will.as_ref().unwrap();
    assert_eq!(
        (&*will.topic, &will.payload[..], will.qos, will.retain),
        ("w", &b"bye"[..], QoS::AtLeastOnce, true)
    );
    assert_eq!(encode(&Packet::Connect(c), V31), bytes);
}

#[test]
fn connack_v311() {
    let accepted = Packet::ConnAck(ConnAck::default());
    assert_eq!(encode(&accepted, V311), hex("20 02 00 00"));
    let resumed = Packet::ConnAck(ConnAck {
        session_present: true,
        ..ConnAck::default()
    });
    assert_eq!(encode(&resumed, V311), hex("20 02 01 00"));
    // 3.1 has no session present flag.
    assert_eq!(encode(&resumed, V31), hex("20 02 00 00"));
    let refused = Packet::ConnAck(ConnAck {
        code: 5,
        ..ConnAck::default()
    });
    assert_eq!(encode(&refused, V311), hex("20 02 00 05"));
    assert_eq!(decode_frame(&hex("20 02 00 05"), V311, Server), Ok(refused));
}

#[test]
fn connack_v5() {
    assert_eq!(
        encode(&Packet::ConnAck(ConnAck::default()), V5),
        hex("20 03 00 00 00")
    );
    let connack = Packet::ConnAck(ConnAck {
        session_present: false,
        code: 0,
        properties: Properties {
            assigned_client_identifier: Some("auto-1".into()),
            topic_alias_maximum: Some(10),
            ..Properties::default()
        },
    });
    // Topic Alias Maximum first, as Mosquitto writes it.
    let bytes = hex("20 0f 00 00 0c 22 00 0a 12 00 06 61 75 74 6f 2d 31");
    assert_eq!(encode(&connack, V5), bytes);
    assert_eq!(decode_frame(&bytes, V5, Server), Ok(connack));
    let refused = Packet::ConnAck(ConnAck {
        code: 0x87,
        ..ConnAck::default()
    });
    assert_eq!(encode(&refused, V5), hex("20 03 00 87 00"));
}

#[test]
fn publish_v311_qos1() {
    let bytes = hex("32 0a 00 03 61 2f 62 00 07 68 69 21");
    let Packet::Publish(p) = decode_frame(&bytes, V311, Client).unwrap() else {
        panic!()
    };
    assert_eq!(
        (&*p.topic, p.packet_id, &p.payload[..]),
        ("a/b", 7, &b"hi!"[..])
    );
    assert_eq!(encode(&Packet::Publish(p), V311), bytes);
}

#[test]
fn outgoing_publish_v5_uses_per_subscriber_fields() {
    let stored = Properties {
        // Replaced by the per-subscriber fields.
        topic_alias: Some(99),
        subscription_identifiers: vec![42],
        message_expiry_interval: Some(1000),
        // Not a PUBLISH property: a will's, left out.
        will_delay_interval: Some(5),
        content_type: Some("t".into()),
        ..Properties::default()
    };
    let out = OutgoingPublish {
        dup: true,
        qos: QoS::ExactlyOnce,
        retain: true,
        topic: "a",
        packet_id: 0x0102,
        payload: b"x",
        properties: &stored,
        topic_alias: Some(3),
        subscription_identifiers: &[1, 200],
        message_expiry_interval: Some(10),
    };
    let mut buf = BytesMut::new();
    encode_publish(&out, V5, &mut buf);
    let bytes =
        hex("3d 18 00 01 61 01 02 11 02 00 00 00 0a 23 00 03 0b 01 0b c8 01 03 00 01 74 78");
    assert_eq!(buf.to_vec(), bytes);
    assert_eq!(publish_len(&out, V5), bytes.len());

    // 3.1.1 drops the properties.
    let mut buf = BytesMut::new();
    encode_publish(&out, V311, &mut buf);
    assert_eq!(buf.to_vec(), hex("3d 06 00 01 61 01 02 78"));
    assert_eq!(publish_len(&out, V311), 8);

    // QoS 0 has no packet identifier; an alias-only PUBLISH has an empty topic.
    let qos0 = OutgoingPublish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: "",
        subscription_identifiers: &[],
        message_expiry_interval: None,
        properties: &Properties::default(),
        ..out
    };
    let mut buf = BytesMut::new();
    encode_publish(&qos0, V5, &mut buf);
    assert_eq!(buf.to_vec(), hex("30 07 00 00 03 23 00 03 78"));
}

#[test]
fn mosquitto_sub_v311_subscribe_and_suback() {
    let bytes = hex("82 09 00 01 00 04 74 65 73 74 00");
    let subscribe = Packet::Subscribe(Subscribe {
        packet_id: 1,
        filters: vec![SubscribeFilter {
            filter: "test".into(),
            options: SubscriptionOptions::default(),
        }],
        properties: Properties::default(),
    });
    assert_eq!(decode_frame(&bytes, V311, Client), Ok(subscribe.clone()));
    assert_eq!(encode(&subscribe, V311), bytes);

    let suback = Packet::SubAck(SubAck {
        packet_id: 1,
        codes: vec![0],
        ..SubAck::default()
    });
    assert_eq!(encode(&suback, V311), hex("90 03 00 01 00"));
    assert_eq!(encode(&suback, V5), hex("90 04 00 01 00 00"));
}

#[test]
fn v5_subscribe_options_byte() {
    let subscribe = Packet::Subscribe(Subscribe {
        packet_id: 10,
        filters: vec![SubscribeFilter {
            filter: "a/#".into(),
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: 2,
            },
        }],
        properties: Properties {
            subscription_identifiers: vec![7],
            ..Properties::default()
        },
    });
    let bytes = hex("82 0b 00 0a 02 0b 07 00 03 61 2f 23 2d");
    assert_eq!(encode(&subscribe, V5), bytes);
    assert_eq!(decode_frame(&bytes, V5, Client), Ok(subscribe.clone()));
    // 3.1.1 keeps only the QoS and drops the properties.
    assert_eq!(
        encode(&subscribe, V311),
        hex("82 08 00 0a 00 03 61 2f 23 01")
    );
}

#[test]
fn acknowledgement_short_forms() {
    let ok = Packet::PubAck(PubResp::new(1));
    assert_eq!(encode(&ok, V5), hex("40 02 00 01"));
    assert_eq!(encode(&ok, V311), hex("40 02 00 01"));
    let no_subscribers = Packet::PubAck(PubResp {
        reason: 0x10,
        ..PubResp::new(1)
    });
    assert_eq!(encode(&no_subscribers, V5), hex("40 03 00 01 10"));
    assert_eq!(encode(&no_subscribers, V311), hex("40 02 00 01"));
    assert_eq!(
        encode(&Packet::PubRel(PubResp::new(0x1234)), V311),
        hex("62 02 12 34")
    );
    let with_reason_string = Packet::PubComp(PubResp {
        reason: 0x92,
        properties: Properties {
            reason_string: Some("gone".into()),
            ..Properties::default()
        },
        ..PubResp::new(2)
    });
    let bytes = hex("70 0b 00 02 92 07 1f 00 04 67 6f 6e 65");
    assert_eq!(encode(&with_reason_string, V5), bytes);
    assert_eq!(decode_frame(&bytes, V5, Client), Ok(with_reason_string));
}

#[test]
fn unsuback_v311_has_no_payload() {
    let unsuback = Packet::UnsubAck(UnsubAck {
        packet_id: 1,
        codes: vec![0],
        ..UnsubAck::default()
    });
    assert_eq!(encode(&unsuback, V311), hex("b0 02 00 01"));
    assert_eq!(encode(&unsuback, V5), hex("b0 04 00 01 00 00"));
}

#[test]
fn disconnect_and_pings() {
    let normal = Packet::Disconnect(Disconnect::default());
    assert_eq!(encode(&normal, V311), hex("e0 00"));
    assert_eq!(encode(&normal, V5), hex("e0 00"));
    let taken_over = Packet::Disconnect(Disconnect {
        reason: 0x8E,
        ..Disconnect::default()
    });
    assert_eq!(encode(&taken_over, V5), hex("e0 01 8e"));
    assert_eq!(encode(&taken_over, V311), hex("e0 00"));
    assert_eq!(encode(&Packet::PingReq, V311), hex("c0 00"));
    assert_eq!(encode(&Packet::PingResp, V5), hex("d0 00"));
}

#[test]
fn will_topic_is_shared_with_the_buffer_too() {
    let body = connect_v311(0x06, &cat(&[&s("id"), &s("w/t"), &s("x")]));
    let Packet::Connect(c) = decode(0x10, &body, V311, Client).unwrap() else {
        panic!()
    };
    let topic: &ByteString = &c.will.as_ref().unwrap().topic;
    assert_eq!(&**topic, "w/t");
    let _: &Bytes = topic.as_bytes();
}
