//! Bad input closes only the offending connection. MQTT 5 clients are told why with a
//! DISCONNECT reason code before the close (0x81 malformed packet, 0x82 protocol error,
//! 0x90 topic name invalid, 0x95 packet too large); MQTT 3.1.1 clients are just closed.
//! Every bad packet here is written byte by byte, so the codec under test never builds
//! its own input.

mod common;

use common::*;
use midge_proto::{Packet, ProtocolVersion, QoS};

/// v5: DISCONNECT reason codes.
const MALFORMED: u8 = 0x81;
const PROTOCOL_ERROR: u8 = 0x82;
const TOPIC_NAME_INVALID: u8 = 0x90;
const PACKET_TOO_LARGE: u8 = 0x95;

/// A bad packet sent after a successful CONNECT: the bytes for 3.1.1 (`None` when the case
/// only exists in MQTT 5), the bytes for 5.0 and the DISCONNECT reason 5.0 gets.
struct Case {
    name: &'static str,
    v311: Option<Vec<u8>>,
    v5: Vec<u8>,
    reason: u8,
}

fn publish_with_topic(topic: &[u8], v5: bool) -> Vec<u8> {
    raw_publish(0x30, topic, None, v5.then_some(&[][..]), b"x")
}

fn cases() -> Vec<Case> {
    let sub_flags_0 = |v5: bool| {
        let mut body = vec![0x00, 0x01];
        if v5 {
            body.push(0x00);
        }
        body.extend(str16("a"));
        body.push(0x00);
        frame(0x80, &body)
    };
    vec![
        // [MQTT-1.5.5]: a variable byte integer uses at most 4 bytes.
        Case {
            name: "remaining length of 5 bytes",
            v311: Some(hex("30 ff ff ff ff 01")),
            v5: hex("30 ff ff ff ff 01"),
            reason: MALFORMED,
        },
        // [MQTT-2.1.2]: packet type 0 is reserved (Mosquitto: 0x82).
        Case {
            name: "reserved packet type 0",
            v311: Some(hex("00 00")),
            v5: hex("00 00"),
            reason: PROTOCOL_ERROR,
        },
        // [MQTT-3.3.1-4]: QoS 3 is malformed.
        Case {
            name: "PUBLISH with QoS 3",
            v311: Some(raw_publish(0x36, b"a", Some(1), None, b"x")),
            v5: raw_publish(0x36, b"a", Some(1), Some(&[]), b"x"),
            reason: MALFORMED,
        },
        // [MQTT-3.8.1-1]: SUBSCRIBE fixed header flags must be 0010.
        Case {
            name: "SUBSCRIBE with flags 0000",
            v311: Some(sub_flags_0(false)),
            v5: sub_flags_0(true),
            reason: MALFORMED,
        },
        // [MQTT-2.2.1-3]: QoS > 0 needs a non-zero packet identifier.
        Case {
            name: "QoS 1 PUBLISH with packet id 0",
            v311: Some(raw_publish(0x32, b"a", Some(0), None, b"x")),
            v5: raw_publish(0x32, b"a", Some(0), Some(&[]), b"x"),
            reason: PROTOCOL_ERROR,
        },
        // [MQTT-3.3.2-2]: no wildcards in a topic name. (Mosquitto 2.0.11 sends 0x82; Midge
        // uses the more specific Topic Name invalid.)
        Case {
            name: "PUBLISH topic with '+'",
            v311: Some(publish_with_topic(b"a/+", false)),
            v5: publish_with_topic(b"a/+", true),
            reason: TOPIC_NAME_INVALID,
        },
        Case {
            name: "PUBLISH topic with '#'",
            v311: Some(publish_with_topic(b"a/#", false)),
            v5: publish_with_topic(b"a/#", true),
            reason: TOPIC_NAME_INVALID,
        },
        // [MQTT-1.5.4-1]: ill-formed UTF-8 is malformed.
        Case {
            name: "PUBLISH topic with invalid UTF-8",
            v311: Some(publish_with_topic(&[0xc3, 0x28], false)),
            v5: publish_with_topic(&[0xc3, 0x28], true),
            reason: MALFORMED,
        },
        // [MQTT-1.5.4-1]: UTF-16 surrogates encoded in UTF-8 are not allowed either.
        Case {
            name: "PUBLISH topic with an encoded surrogate",
            v311: Some(publish_with_topic(&[0x61, 0xed, 0xa0, 0x80], false)),
            v5: publish_with_topic(&[0x61, 0xed, 0xa0, 0x80], true),
            reason: MALFORMED,
        },
        // [MQTT-1.5.4-2]: U+0000 in a string is malformed.
        Case {
            name: "PUBLISH topic with U+0000",
            v311: Some(publish_with_topic(b"a\0b", false)),
            v5: publish_with_topic(b"a\0b", true),
            reason: MALFORMED,
        },
        // [MQTT-3.2.0-?]/[MQTT-3.9]/[MQTT-3.11]/[MQTT-3.13]: packets only a server sends.
        Case {
            name: "client sends CONNACK",
            v311: Some(hex("20 02 00 00")),
            v5: hex("20 03 00 00 00"),
            reason: PROTOCOL_ERROR,
        },
        Case {
            name: "client sends SUBACK",
            v311: Some(hex("90 03 00 01 00")),
            v5: hex("90 04 00 01 00 00"),
            reason: PROTOCOL_ERROR,
        },
        Case {
            name: "client sends UNSUBACK",
            v311: Some(hex("b0 02 00 01")),
            v5: hex("b0 04 00 01 00 00"),
            reason: PROTOCOL_ERROR,
        },
        Case {
            name: "client sends PINGRESP",
            v311: Some(hex("d0 00")),
            v5: hex("d0 00"),
            reason: PROTOCOL_ERROR,
        },
        // [MQTT-3.1.0-2]: a second CONNECT is a protocol error.
        Case {
            name: "second CONNECT",
            v311: Some(hex("10 10 00 04 4d 51 54 54 04 02 00 3c 00 04 74 65 73 74")),
            v5: hex("10 11 00 04 4d 51 54 54 05 02 00 3c 00 00 04 74 65 73 74"),
            reason: PROTOCOL_ERROR,
        },
        // [MQTT-2.2.2]: a property that may appear once, twice (payload format indicator).
        Case {
            name: "duplicate property",
            v311: None,
            v5: raw_publish(0x30, b"a", None, Some(&[0x01, 0x00, 0x01, 0x00]), b"x"),
            reason: PROTOCOL_ERROR,
        },
        // [MQTT-3.3.4-6]: a PUBLISH from a client must not carry a subscription identifier.
        Case {
            name: "PUBLISH with subscription identifier",
            v311: None,
            v5: raw_publish(0x30, b"a", None, Some(&[0x0b, 0x01]), b"x"),
            reason: PROTOCOL_ERROR,
        },
        // [MQTT-3.3.2-7]: an empty topic without a topic alias.
        Case {
            name: "PUBLISH with empty topic and no alias",
            v311: Some(publish_with_topic(b"", false)),
            v5: publish_with_topic(b"", true),
            reason: PROTOCOL_ERROR,
        },
        // [MQTT-3.6.1-1]: PUBREL flags must be 0010.
        Case {
            name: "PUBREL with flags 0000",
            v311: Some(hex("60 02 00 01")),
            v5: hex("60 02 00 01"),
            reason: MALFORMED,
        },
        // AUTH without an authentication method negotiated at CONNECT.
        Case {
            name: "AUTH without authentication method",
            v311: None,
            v5: hex("f0 02 18 00"),
            reason: PROTOCOL_ERROR,
        },
        // [MQTT-3.8.3-5] / 3.8.3.1: reserved subscription option bits set.
        Case {
            name: "SUBSCRIBE with reserved option bits",
            v311: Some({
                let mut b = vec![0x00, 0x01];
                b.extend(str16("a"));
                b.push(0xc0);
                frame(0x82, &b)
            }),
            v5: {
                let mut b = vec![0x00, 0x01, 0x00];
                b.extend(str16("a"));
                b.push(0xc0);
                frame(0x82, &b)
            },
            reason: MALFORMED,
        },
        // [MQTT-3.10.3-2]: UNSUBSCRIBE without any filter.
        Case {
            name: "UNSUBSCRIBE without filters",
            v311: Some(hex("a2 02 00 01")),
            v5: hex("a2 03 00 01 00"),
            reason: PROTOCOL_ERROR,
        },
    ]
}

async fn check_v5(b: &TestBroker, case: &Case, id: &str) {
    let mut c = Raw::connect(b.addr, ProtocolVersion::V5, id).await;
    c.send(&case.v5).await;
    let got = c.recv_raw_within(WAIT).await;
    match got {
        Ok(bytes) => assert_eq!(
            to_hex(&bytes),
            to_hex(&[0xe0, 0x01, case.reason]),
            "v5 {:?}: expected DISCONNECT {:#04x}",
            case.name,
            case.reason
        ),
        Err(e) => panic!(
            "v5 {:?}: expected DISCONNECT {:#04x}, got {e:?}",
            case.name, case.reason
        ),
    }
    c.expect_close().await;
}

async fn check_v311(b: &TestBroker, case: &Case, id: &str) {
    let Some(bytes) = &case.v311 else { return };
    let mut c = Raw::connect(b.addr, ProtocolVersion::V311, id).await;
    c.send(bytes).await;
    match c.recv_raw_within(WAIT).await {
        Err(Ended::Closed) => {}
        Err(Ended::Timeout) => panic!("3.1.1 {:?}: connection still open", case.name),
        Ok(p) => panic!("3.1.1 {:?}: expected close, got {}", case.name, to_hex(&p)),
    }
}

/// One test per case and version, so that a failure names the rule.
macro_rules! case_tests {
    ($($fn_name:ident => $case_name:expr;)*) => {$(
        #[tokio::test]
        async fn $fn_name() {
            let b = start_default().await;
            let case = cases().into_iter().find(|c| c.name == $case_name).expect("case exists");
            check_v5(&b, &case, "bad5").await;
            check_v311(&b, &case, "bad4").await;
        }
    )*};
}

case_tests! {
    remaining_length_of_5_bytes_is_malformed => "remaining length of 5 bytes";
    reserved_packet_type_0_is_refused => "reserved packet type 0";
    publish_qos_3_is_malformed => "PUBLISH with QoS 3";
    subscribe_with_flags_0000_is_malformed => "SUBSCRIBE with flags 0000";
    qos1_publish_with_packet_id_0_is_refused => "QoS 1 PUBLISH with packet id 0";
    publish_topic_with_plus_is_invalid => "PUBLISH topic with '+'";
    publish_topic_with_hash_is_invalid => "PUBLISH topic with '#'";
    publish_topic_with_invalid_utf8_is_malformed => "PUBLISH topic with invalid UTF-8";
    publish_topic_with_surrogate_is_malformed => "PUBLISH topic with an encoded surrogate";
    publish_topic_with_nul_is_malformed => "PUBLISH topic with U+0000";
    client_sending_connack_is_refused => "client sends CONNACK";
    client_sending_suback_is_refused => "client sends SUBACK";
    client_sending_unsuback_is_refused => "client sends UNSUBACK";
    client_sending_pingresp_is_refused => "client sends PINGRESP";
    second_connect_is_a_protocol_error => "second CONNECT";
    duplicate_property_is_a_protocol_error => "duplicate property";
    publish_with_subscription_identifier_is_a_protocol_error => "PUBLISH with subscription identifier";
    publish_with_empty_topic_and_no_alias_is_refused => "PUBLISH with empty topic and no alias";
    pubrel_with_flags_0000_is_malformed => "PUBREL with flags 0000";
    auth_without_authentication_method_is_a_protocol_error => "AUTH without authentication method";
    subscribe_with_reserved_option_bits_is_malformed => "SUBSCRIBE with reserved option bits";
    unsubscribe_without_filters_is_a_protocol_error => "UNSUBSCRIBE without filters";
}

/// Every bad input, one after the other, while a subscriber and a publisher on their own
/// connections go on exchanging messages: after each bad client is closed, a message still
/// goes through, and neither good connection has been disturbed. Both bad clients (5.0 and
/// 3.1.1) are connected before either sends its bad bytes.
#[tokio::test]
async fn bad_input_closes_only_the_offending_connection() {
    let b = start_default().await;
    let mut sub = Raw::connect(b.addr, ProtocolVersion::V5, "good-sub").await;
    assert_eq!(sub.subscribe("iso/t", QoS::AtLeastOnce).await, vec![1]);
    let mut publ = Raw::connect(b.addr, ProtocolVersion::V311, "good-pub").await;

    for (i, case) in cases().iter().enumerate() {
        // A bad client connects while the good ones are online, and stays open until the
        // bad bytes arrive.
        let mut bad5 = Raw::connect(b.addr, ProtocolVersion::V5, &format!("bad5-{i}")).await;
        let mut bad4 = match &case.v311 {
            Some(_) => {
                Some(Raw::connect(b.addr, ProtocolVersion::V311, &format!("bad4-{i}")).await)
            }
            None => None,
        };
        bad5.send(&case.v5).await;
        if let (Some(c), Some(bytes)) = (bad4.as_mut(), &case.v311) {
            c.send(bytes).await;
        }
        // The exact reason code is each case's own test; here any error DISCONNECT will
        // do, so that one wrong code does not hide the isolation checks of later cases.
        let d = bad5.recv_raw().await;
        assert!(
            d.len() == 3 && d[0] == 0xe0 && d[1] == 0x01 && d[2] >= 0x80,
            "v5 {:?}: expected an error DISCONNECT, got {}",
            case.name,
            to_hex(&d)
        );
        bad5.expect_close().await;
        if let Some(c) = bad4.as_mut() {
            c.expect_close().await;
        }

        let payload = format!("after {}", case.name);
        assert_eq!(
            publ.publish("iso/t", payload.as_bytes(), QoS::AtLeastOnce, false)
                .await,
            0
        );
        let got = sub.recv_publish_ack().await;
        assert_eq!(&got.topic[..], "iso/t");
        assert_eq!(
            &got.payload[..],
            payload.as_bytes(),
            "after {:?}",
            case.name
        );
    }
    sub.ping().await;
    publ.ping().await;
}

// [MQTT-3.1.2-3]: the reserved CONNECT flag must be 0; MQTT 5 may get CONNACK 0x81 first.
#[tokio::test]
async fn connect_reserved_flag_closes() {
    let b = start_default().await;
    let mut c = Raw::tcp(b.addr).await;
    c.send(&raw_connect("MQTT", 4, 0x03, 60, None, "rsv", &[]))
        .await;
    c.expect_close().await;

    let mut c = Raw::tcp(b.addr).await;
    c.send(&raw_connect("MQTT", 5, 0x03, 60, Some(&[]), "rsv", &[]))
        .await;
    c.expect("20 03 00 81 00").await;
    c.expect_close().await;
}

// [MQTT-3.1.2-11], [MQTT-3.1.2-13]: will QoS or will retain without the will flag.
#[tokio::test]
async fn will_qos_without_will_flag_closes() {
    let b = start_default().await;
    for flags in [0x0a_u8, 0x12, 0x22] {
        let mut c = Raw::tcp(b.addr).await;
        c.send(&raw_connect("MQTT", 4, flags, 60, None, "wq", &[]))
            .await;
        c.expect_close().await;

        let mut c = Raw::tcp(b.addr).await;
        c.send(&raw_connect("MQTT", 5, flags, 60, Some(&[]), "wq", &[]))
            .await;
        // A CONNACK with an error code (0x81 or 0x82) may come first; never success.
        match c.recv_raw_within(WAIT).await {
            Err(Ended::Closed) => {}
            Err(Ended::Timeout) => panic!("flags {flags:#x}: still open"),
            Ok(p) => {
                let code = p.get(3).copied();
                assert!(
                    p.len() >= 4 && p[0] == 0x20 && matches!(code, Some(0x81 | 0x82)),
                    "flags {flags:#x}: expected CONNACK 0x81/0x82, got {}",
                    to_hex(&p)
                );
                c.expect_close().await;
            }
        }
    }
}

// [MQTT-3.1.2-12]: will QoS 3 is malformed.
#[tokio::test]
async fn will_qos_3_closes() {
    let b = start_default().await;
    let mut tail = str16("will/t");
    tail.extend(str16("bye"));
    let mut c = Raw::tcp(b.addr).await;
    c.send(&raw_connect("MQTT", 4, 0x1e, 60, None, "wq3", &tail))
        .await;
    c.expect_close().await;
}

// [MQTT-3.1.2-22]: 3.1.1 forbids a password without a username (so does 3.1).
#[tokio::test]
async fn v311_password_without_username_closes() {
    let b = start_default().await;
    let mut c = Raw::tcp(b.addr).await;
    c.send(&raw_connect(
        "MQTT",
        4,
        0x42,
        60,
        None,
        "pw",
        &str16("secret"),
    ))
    .await;
    c.expect_close().await;

    let mut c = Raw::tcp(b.addr).await;
    c.send(&raw_connect(
        "MQIsdp",
        3,
        0x42,
        60,
        None,
        "pw",
        &str16("secret"),
    ))
    .await;
    c.expect_close().await;
}

// MQTT 5 dropped that rule (3.1.2.9): a password alone is accepted, as by Mosquitto.
#[tokio::test]
async fn v5_password_without_username_accepted() {
    let b = start_default().await;
    let mut c = Raw::tcp(b.addr).await;
    c.send(&raw_connect(
        "MQTT",
        5,
        0x42,
        60,
        Some(&[]),
        "pw",
        &str16("secret"),
    ))
    .await;
    c.version = ProtocolVersion::V5;
    match c.recv().await {
        Packet::ConnAck(a) => assert_eq!(a.code, 0),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

// A duplicate property in CONNECT: protocol error, the connection does not go through.
#[tokio::test]
async fn v5_connect_with_duplicate_property_refused() {
    let b = start_default().await;
    let props = hex("11 00 00 00 01 11 00 00 00 01");
    let mut c = Raw::tcp(b.addr).await;
    c.send(&raw_connect("MQTT", 5, 0x02, 60, Some(&props), "dup", &[]))
        .await;
    c.expect("20 03 00 82 00").await;
    c.expect_close().await;
}

// A CONNECT with bytes missing at the end (the client id is cut short) closes.
#[tokio::test]
async fn truncated_connect_closes() {
    let b = start_default().await;
    let mut c = Raw::tcp(b.addr).await;
    // Remaining length 14 claims "test" but only "te" follows.
    c.send(&hex("10 0e 00 04 4d 51 54 54 04 02 00 3c 00 04 74 65"))
        .await;
    c.expect_close().await;
}

// [MQTT-3.1.2-24 / 3.2.2.3.6]: max_packet_size 1024: an MQTT 5 client is told in CONNACK; a
// larger packet gets DISCONNECT 0x95 (packet too large), judged from the fixed header alone.
#[tokio::test]
async fn packet_larger_than_max_packet_size_is_refused() {
    let b = start("allow_anonymous true\nmax_packet_size 1024", |_| {}).await;

    let (mut c, ack) = Raw::connect_with(b.addr, connect_packet(ProtocolVersion::V5, "big5")).await;
    assert_eq!(ack.properties.maximum_packet_size, Some(1024));
    // Just under the limit goes through.
    let ok = raw_publish(0x32, b"big", Some(1), Some(&[]), &[b'x'; 1000]);
    assert!(ok.len() <= 1024);
    c.send(&ok).await;
    match c.recv().await {
        Packet::PubAck(r) => assert_eq!(r.packet_id, 1),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    let big = raw_publish(0x30, b"big", None, Some(&[]), &[b'x'; 2000]);
    c.send(&big).await;
    c.expect_disconnect(PACKET_TOO_LARGE).await;

    // Only the header of a huge packet is sent: refused without waiting for the body.
    let mut c = Raw::connect(b.addr, ProtocolVersion::V5, "huge5").await;
    c.send(&hex("30 ff ff ff 7f")).await;
    c.expect_disconnect(PACKET_TOO_LARGE).await;

    let mut c = Raw::connect(b.addr, ProtocolVersion::V311, "big4").await;
    c.send(&raw_publish(0x30, b"big", None, None, &[b'x'; 2000]))
        .await;
    c.expect_close().await;
}
