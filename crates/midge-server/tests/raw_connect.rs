//! CONNECT and CONNACK, byte for byte, for MQTT 3.1, 3.1.1 and 5.0. Expected answers are
//! those of Mosquitto 2.0 (checked against Debian's 2.0.11) unless a comment says otherwise.

mod common;

use std::time::{Duration, Instant};

use common::*;
use midge_proto::{ConnAck, Packet, ProtocolVersion};

/// 3.1.1 CONNECT, clean session, keep alive 60, client id "test".
const CONNECT_311: &str = "10 10 00 04 4d 51 54 54 04 02 00 3c 00 04 74 65 73 74";
/// 3.1 CONNECT (MQIsdp, level 3), clean session, keep alive 60, client id "test".
const CONNECT_31: &str = "10 12 00 06 4d 51 49 73 64 70 03 02 00 3c 00 04 74 65 73 74";
/// 5.0 CONNECT, clean start, keep alive 60, no properties, client id "test".
const CONNECT_5: &str = "10 11 00 04 4d 51 54 54 05 02 00 3c 00 00 04 74 65 73 74";

async fn connack_v5(raw: &mut Raw) -> ConnAck {
    raw.version = ProtocolVersion::V5;
    match raw.recv().await {
        Packet::ConnAck(a) => a,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[tokio::test]
async fn v311_connect_accepted() {
    let b = start_default().await;
    let mut c = Raw::tcp(b.addr).await;
    c.send(&hex(CONNECT_311)).await;
    c.expect("20 02 00 00").await;
    // The connection stays up and answers PINGREQ.
    c.send(&hex("c0 00")).await;
    c.expect("d0 00").await;
}

#[tokio::test]
async fn v31_connect_accepted() {
    let b = start_default().await;
    let mut c = Raw::tcp(b.addr).await;
    c.send(&hex(CONNECT_31)).await;
    c.expect("20 02 00 00").await;
    c.send(&hex("c0 00")).await;
    c.expect("d0 00").await;
}

// Mosquitto answers `20 09 00 00 06 22 00 0a 21 00 14`: topic alias maximum 10 and receive
// maximum 20 (max_inflight_messages). Checked by decoding, not by property order.
#[tokio::test]
async fn v5_connack_announces_topic_alias_maximum_10_and_receive_maximum_20() {
    let b = start_default().await;
    let mut c = Raw::tcp(b.addr).await;
    c.send(&hex(CONNECT_5)).await;
    let raw = c.recv_raw().await;
    assert_eq!(raw[0], 0x20, "CONNACK expected, got {}", to_hex(&raw));
    let ack = match c.decode_v5(&raw) {
        Packet::ConnAck(a) => a,
        other => panic!("expected CONNACK, got {other:?}"),
    };
    assert_eq!(ack.code, 0);
    assert!(!ack.session_present);
    assert_eq!(ack.properties.topic_alias_maximum, Some(10));
    assert_eq!(ack.properties.receive_maximum, Some(20));
    assert_eq!(ack.properties.assigned_client_identifier, None);
    assert_eq!(ack.properties.server_keep_alive, None);
    // Both properties are 3 bytes each: 0x22 00 0a and 0x21 00 14.
    let props = &raw[5..];
    assert_eq!(raw[4] as usize, props.len(), "property length");
    assert!(props.windows(3).any(|w| w == [0x22, 0x00, 0x0a]));
    assert!(props.windows(3).any(|w| w == [0x21, 0x00, 0x14]));
}

trait DecodeV5 {
    fn decode_v5(&mut self, bytes: &[u8]) -> Packet;
}

impl DecodeV5 for Raw {
    fn decode_v5(&mut self, bytes: &[u8]) -> Packet {
        self.version = ProtocolVersion::V5;
        self.decode(bytes)
    }
}

// [MQTT-3.1.2-2]: an unsupported protocol level is answered with return code 0x01 in the
// 3.1.1 form, whatever the level, then the connection closes.
#[tokio::test]
async fn unsupported_protocol_level_gets_connack_0x01_then_close() {
    let b = start_default().await;
    for (name, level) in [("MQTT", 6u8), ("MQTT", 3), ("MQIsdp", 4), ("MQTT", 0)] {
        let mut c = Raw::tcp(b.addr).await;
        c.send(&raw_connect(name, level, 0x02, 60, None, "test", &[]))
            .await;
        c.expect("20 02 00 01").await;
        c.expect_close().await;
    }
}

// [MQTT-3.1.2-1]: a protocol name other than MQTT (or MQIsdp for 3.1) closes without CONNACK.
#[tokio::test]
async fn bad_protocol_name_closes_without_connack() {
    let b = start_default().await;
    for name in ["MQTX", "mqtt", "", "MQIsdpX"] {
        let mut c = Raw::tcp(b.addr).await;
        c.send(&raw_connect(name, 4, 0x02, 60, None, "test", &[]))
            .await;
        c.expect_close().await;
    }
}

// MQTT 3.1 requires a client id of 1 to 23 characters; Mosquitto refuses an empty one.
#[tokio::test]
async fn v31_empty_client_id_refused_with_0x02() {
    let b = start_default().await;
    let mut c = Raw::tcp(b.addr).await;
    c.send(&raw_connect("MQIsdp", 3, 0x02, 60, None, "", &[]))
        .await;
    c.expect("20 02 00 02").await;
    c.expect_close().await;
}

// [MQTT-3.1.3-8]: an empty client id with clean session 0 is refused with 0x02.
#[tokio::test]
async fn v311_empty_client_id_with_persistent_session_refused_with_0x02() {
    let b = start_default().await;
    let mut c = Raw::tcp(b.addr).await;
    c.send(&raw_connect("MQTT", 4, 0x00, 60, None, "", &[]))
        .await;
    c.expect("20 02 00 02").await;
    c.expect_close().await;
}

// [MQTT-3.1.3-6]: an empty client id with clean session 1 is accepted (an id is assigned).
#[tokio::test]
async fn v311_empty_client_id_with_clean_session_accepted() {
    let b = start_default().await;
    let mut c = Raw::tcp(b.addr).await;
    c.send(&raw_connect("MQTT", 4, 0x02, 60, None, "", &[]))
        .await;
    c.expect("20 02 00 00").await;
    c.send(&hex("c0 00")).await;
    c.expect("d0 00").await;
}

// [MQTT-3.2.2-16]: MQTT 5 clients with an empty id get an Assigned Client Identifier; like
// Mosquitto, Midge assigns one with clean start 0 too. Mosquitto's form: "auto-" + UUID.
#[tokio::test]
async fn v5_empty_client_id_gets_assigned_identifier() {
    let b = start_default().await;
    let mut seen = Vec::new();
    for flags in [0x02u8, 0x00] {
        let mut c = Raw::tcp(b.addr).await;
        c.send(&raw_connect("MQTT", 5, flags, 60, Some(&[]), "", &[]))
            .await;
        let ack = connack_v5(&mut c).await;
        assert_eq!(ack.code, 0, "flags {flags:#x}: {ack:?}");
        let id = ack
            .properties
            .assigned_client_identifier
            .expect("assigned client identifier");
        assert!(id.starts_with("auto-"), "assigned id {id:?}");
        assert_eq!(id.len(), "auto-".len() + 36, "auto- + UUID: {id:?}");
        seen.push(id);
    }
    assert_ne!(seen[0], seen[1], "assigned ids must be unique");
}

// `allow_zero_length_clientid false`: empty ids are refused whatever the session kind.
#[tokio::test]
async fn empty_client_id_refused_when_zero_length_ids_disallowed() {
    let b = start(
        "allow_anonymous true\nallow_zero_length_clientid false",
        |_| {},
    )
    .await;
    let mut c = Raw::tcp(b.addr).await;
    c.send(&raw_connect("MQTT", 4, 0x02, 60, None, "", &[]))
        .await;
    c.expect("20 02 00 02").await;
    c.expect_close().await;

    let mut c = Raw::tcp(b.addr).await;
    c.send(&raw_connect("MQTT", 5, 0x02, 60, Some(&[]), "", &[]))
        .await;
    c.expect("20 03 00 85 00").await;
    c.expect_close().await;
}

// MQTT 5 extended authentication: a method the broker does not support gets 0x8C
// (Mosquitto: `20 03 00 8c 00`), then the close.
#[tokio::test]
async fn v5_unsupported_authentication_method_refused_with_0x8c() {
    let b = start_default().await;
    let mut props = vec![0x15];
    props.extend(str16("SCRAM-SHA-1"));
    let mut c = Raw::tcp(b.addr).await;
    c.send(&raw_connect("MQTT", 5, 0x02, 60, Some(&props), "test", &[]))
        .await;
    c.expect("20 03 00 8c 00").await;
    c.expect_close().await;
}

#[tokio::test]
async fn anonymous_refused_with_not_authorised_when_not_allowed() {
    let b = start("allow_anonymous false", |_| {}).await;
    let mut c = Raw::tcp(b.addr).await;
    c.send(&hex(CONNECT_311)).await;
    c.expect("20 02 00 05").await;
    c.expect_close().await;

    let mut c = Raw::tcp(b.addr).await;
    c.send(&hex(CONNECT_31)).await;
    c.expect("20 02 00 05").await;
    c.expect_close().await;

    let mut c = Raw::tcp(b.addr).await;
    c.send(&hex(CONNECT_5)).await;
    c.expect("20 03 00 87 00").await;
    c.expect_close().await;
}

// Mosquitto 2.0.11 answers a client that gives a username with "not authorised" too (0x05 /
// 0x87), with or without a password file and whether the password is wrong or missing: it
// never sends 0x04 / 0x86 (checked against Debian's 2.0.11). Without a password file every
// username is refused, so Midge must do the same.
#[tokio::test]
async fn username_refused_with_not_authorised_like_mosquitto() {
    let b = start("allow_anonymous false", |_| {}).await;
    let mut user_pass = str16("alice");
    user_pass.extend(str16("secret"));

    let mut c = Raw::tcp(b.addr).await;
    c.send(&raw_connect("MQTT", 4, 0xc2, 60, None, "test", &user_pass))
        .await;
    c.expect("20 02 00 05").await;
    c.expect_close().await;

    let mut c = Raw::tcp(b.addr).await;
    c.send(&raw_connect(
        "MQTT",
        5,
        0xc2,
        60,
        Some(&[]),
        "test",
        &user_pass,
    ))
    .await;
    c.expect("20 03 00 87 00").await;
    c.expect_close().await;
}

// [MQTT-3.1.0-1]: the first packet must be CONNECT.
#[tokio::test]
async fn first_packet_not_connect_closes() {
    let b = start_default().await;
    for first in [
        "c0 00",
        "e0 00",
        "30 05 00 01 61 68 69",
        "82 06 00 01 00 01 61 00",
    ] {
        let mut c = Raw::tcp(b.addr).await;
        c.send(&hex(first)).await;
        c.expect_close().await;
    }
}

// A connection that sends no CONNECT is closed after the connect timeout (10 s, as
// Mosquitto's default): this test takes about 10 seconds.
#[tokio::test]
async fn no_connect_within_connect_timeout_closes() {
    let b = start_default().await;
    let mut c = Raw::tcp(b.addr).await;
    let started = Instant::now();
    // Half a CONNECT, then nothing.
    c.send(&hex("10 10 00 04 4d 51")).await;
    match c.recv_raw_within(Duration::from_secs(8)).await {
        Err(Ended::Timeout) => {}
        other => panic!("closed too early ({other:?}) after {:?}", started.elapsed()),
    }
    match c.recv_raw_within(Duration::from_secs(5)).await {
        Err(Ended::Closed) => {}
        other => panic!("not closed after {:?}: {other:?}", started.elapsed()),
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(9) && took <= Duration::from_secs(12),
        "closed after {took:?}, expected about 10 s"
    );
}

// [MQTT-3.2.2-21]: with max_keepalive 100, an MQTT 5 client asking for more (or for 0) is told
// Server Keep Alive 100 (`13 00 64`), as Mosquitto does.
#[tokio::test]
async fn v5_keepalive_above_max_keepalive_gets_server_keep_alive() {
    let b = start("allow_anonymous true\nmax_keepalive 100", |_| {}).await;
    for ka in [200u16, 0, 101] {
        let mut c = Raw::tcp(b.addr).await;
        c.send(&raw_connect("MQTT", 5, 0x02, ka, Some(&[]), "ka", &[]))
            .await;
        let raw = c.recv_raw().await;
        let ack = match c.decode_v5(&raw) {
            Packet::ConnAck(a) => a,
            other => panic!("expected CONNACK, got {other:?}"),
        };
        assert_eq!(ack.code, 0);
        assert_eq!(
            ack.properties.server_keep_alive,
            Some(100),
            "keep alive {ka}"
        );
        assert!(
            raw.windows(3).any(|w| w == [0x13, 0x00, 0x64]),
            "13 00 64 in {}",
            to_hex(&raw)
        );
    }
    // Within the limit: no Server Keep Alive.
    let mut c = Raw::tcp(b.addr).await;
    c.send(&raw_connect("MQTT", 5, 0x02, 100, Some(&[]), "ka", &[]))
        .await;
    let ack = connack_v5(&mut c).await;
    assert_eq!(ack.properties.server_keep_alive, None);
}

// 3.1.1 has no way to tell the client another keep alive: above the limit it is refused
// with 0x02 (Mosquitto 2.0.12+, CVE-2020-13849); 0 (no keep alive) and values within the
// limit are accepted.
#[tokio::test]
async fn v311_keepalive_above_max_keepalive_refused() {
    let b = start("allow_anonymous true\nmax_keepalive 100", |_| {}).await;
    for (ka, answer) in [
        (200u16, "20 02 00 02"),
        (101, "20 02 00 02"),
        (100, "20 02 00 00"),
        (0, "20 02 00 00"),
    ] {
        let mut c = Raw::tcp(b.addr).await;
        c.send(&raw_connect("MQTT", 4, 0x02, ka, None, "ka", &[]))
            .await;
        c.expect(answer).await;
    }
}

// [MQTT-3.2.2-1..3]: session present is 0 for a clean session, and for a persistent
// session that did not exist; 1 when a persistent session is resumed.
#[tokio::test]
async fn session_present_flag() {
    let b = start_default().await;
    let mut c = Raw::tcp(b.addr).await;
    c.send(&raw_connect("MQTT", 4, 0x00, 60, None, "persist", &[]))
        .await;
    c.expect("20 02 00 00").await;
    c.send(&hex("e0 00")).await;
    c.expect_close().await;

    let mut c = Raw::tcp(b.addr).await;
    c.send(&raw_connect("MQTT", 4, 0x00, 60, None, "persist", &[]))
        .await;
    c.expect("20 02 01 00").await;
    c.send(&hex("e0 00")).await;
    c.expect_close().await;

    // Clean session discards it: session present 0.
    let mut c = Raw::tcp(b.addr).await;
    c.send(&raw_connect("MQTT", 4, 0x02, 60, None, "persist", &[]))
        .await;
    c.expect("20 02 00 00").await;
}

// MQTT 3.1 CONNACK has no session present flag: the byte is reserved and stays 0.
#[tokio::test]
async fn v31_connack_never_sets_session_present() {
    let b = start_default().await;
    for _ in 0..2 {
        let mut c = Raw::tcp(b.addr).await;
        c.send(&raw_connect("MQIsdp", 3, 0x00, 60, None, "persist31", &[]))
            .await;
        c.expect("20 02 00 00").await;
        c.send(&hex("e0 00")).await;
        c.expect_close().await;
    }
}
