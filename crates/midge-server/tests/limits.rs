//! Every limit at the limit and one past it, per protocol version: `max_packet_size`,
//! `max_payload_size` (the seeds' option), `message_size_limit`, `max_inflight_messages`,
//! `max_queued_messages`, `max_queued_bytes`, `queue_qos0_messages`, `retain_available`,
//! `max_qos`, `max_keepalive` and `max_topic_alias`.
//!
//! Expectations were checked against Debian's mosquitto 2.0.11 with raw sockets; where Midge
//! is meant to differ the comment says so.

mod common;

use std::time::Duration;

use common::*;
use midge_proto::{Connect, Packet, ProtocolVersion, PubResp, QoS};

const V311: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;
const VERSIONS: [ProtocolVersion; 2] = [V311, V5];

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A broker from a whole configuration whose `listener` lines use placeholder ports
/// (replaced by 0), so per-listener options can sit in their block.
struct Broker {
    addrs: Vec<std::net::SocketAddr>,
    handle: midge_server::ServerHandle,
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

async fn start_conf(text: &str) -> Broker {
    let mut config = midge_core::config::parse(text, "test.conf").expect("test config parses");
    for l in &mut config.listeners {
        l.port = 0;
    }
    let server = midge_server::Server::bind(&config)
        .await
        .expect("broker binds");
    let addrs = server.local_addrs();
    let handle = server.handle();
    tokio::spawn(server.run());
    Broker { addrs, handle }
}

fn props_for(v: ProtocolVersion) -> Option<&'static [u8]> {
    if v.is_v5() {
        Some(&[])
    } else {
        None
    }
}

/// A QoS 0 PUBLISH on `t` whose whole packet (fixed header included) is `total` bytes.
fn publish_of_total_size(v: ProtocolVersion, total: usize) -> Vec<u8> {
    for n in 0..total {
        let p = raw_publish(0x30, b"t", None, props_for(v), &vec![b'x'; n]);
        if p.len() == total {
            return p;
        }
        assert!(p.len() < total, "no packet of exactly {total} bytes");
    }
    unreachable!()
}

/// Every packet that arrives within `QUIET` of each other.
async fn drain(raw: &mut Raw) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    while let Ok(p) = raw.recv_raw_within(QUIET).await {
        got.push(p);
    }
    got
}

/// Payloads of the PUBLISH packets among `packets`.
fn payloads(raw: &Raw, packets: &[Vec<u8>]) -> Vec<String> {
    packets
        .iter()
        .map(|b| match raw.decode(b) {
            Packet::Publish(p) => String::from_utf8_lossy(&p.payload).into_owned(),
            other => panic!("expected PUBLISH, got {other:?}"),
        })
        .collect()
}

fn persistent(v: ProtocolVersion, id: &str) -> Connect {
    let mut c = connect_packet(v, id);
    c.clean_start = false;
    if v.is_v5() {
        c.properties.session_expiry_interval = Some(600);
    }
    c
}

/// Subscribes a persistent session to `q/b` at `qos`, goes offline, lets `publish` run,
/// comes back and returns the payloads delivered on resumption.
async fn offline_then_back(
    addr: std::net::SocketAddr,
    v: ProtocolVersion,
    qos: QoS,
    messages: &[(QoS, String)],
) -> Vec<String> {
    let (mut sub, _) = Raw::connect_with(addr, persistent(v, "offline-sub")).await;
    sub.subscribe("q/b", qos).await;
    sub.disconnect().await;
    let mut p = Raw::connect(addr, V311, "offline-pub").await;
    for (q, payload) in messages {
        p.publish("q/b", payload.as_bytes(), *q, false).await;
    }
    p.ping().await;
    p.disconnect().await;
    settle().await;
    let (mut sub, ack) = Raw::connect_with(addr, persistent(v, "offline-sub")).await;
    assert!(ack.session_present, "session kept while offline");
    let got = drain(&mut sub).await;
    let out = payloads(&sub, &got);
    // Acknowledge so the session ends clean (and clear it for the next round).
    for b in &got {
        if let Packet::Publish(pp) = sub.decode(b) {
            sub.ack(&pp).await;
        }
    }
    sub.disconnect().await;
    let (clear, _) = Raw::connect_with(addr, connect_packet(v, "offline-sub")).await;
    clear.disconnect().await;
    out
}

// ---------------------------------------------------------------------------------------
// Packet and payload size
// ---------------------------------------------------------------------------------------

// `max_packet_size 100` counts the whole packet, fixed header included (the MQTT 5 Maximum
// Packet Size, which MQTT 5 clients are told in CONNACK): a 100-byte PUBLISH is accepted, a
// 101-byte one ends the connection — MQTT 5 with DISCONNECT 0x95, 3.1.1 with a close.
// (Mosquitto 2.0.11 checks remaining length + 1, so it still accepts 101 bytes and refuses
// from 102: it forgets the length bytes. Midge follows the MQTT 5 definition.)
#[tokio::test]
async fn max_packet_size_at_the_limit_and_one_over() {
    let b = start("allow_anonymous true\nmax_packet_size 100", |_| {}).await;
    for v in VERSIONS {
        let (mut raw, ack) = Raw::connect_with(b.addr, connect_packet(v, "mp")).await;
        if v.is_v5() {
            assert_eq!(ack.properties.maximum_packet_size, Some(100));
        }
        raw.send(&publish_of_total_size(v, 100)).await;
        raw.ping().await;
        raw.send(&publish_of_total_size(v, 101)).await;
        if v.is_v5() {
            raw.expect_disconnect(0x95).await;
        } else {
            raw.expect_close().await;
        }
    }
}

// Without `max_packet_size`, MQTT 5 clients are not told a maximum.
#[tokio::test]
async fn no_maximum_packet_size_announced_by_default() {
    let b = start_default().await;
    let (_raw, ack) = Raw::connect_with(b.addr, connect_packet(V5, "nomp")).await;
    assert_eq!(ack.properties.maximum_packet_size, None);
}

/// Checks a payload limit of 10 bytes: 10 accepted and delivered, 11 dropped — MQTT 5 QoS 1
/// and 2 get 0x95 in PUBACK / PUBREC, 3.1.1 a plain acknowledgement, QoS 0 nothing; the
/// subscriber only ever sees the messages within the limit.
async fn check_payload_limit_10(addr: std::net::SocketAddr) {
    let mut sub = Raw::connect(addr, V311, "pl-sub").await;
    sub.subscribe("t", QoS::AtLeastOnce).await;
    for v in VERSIONS {
        let mut p = Raw::connect(addr, v, &format!("pl-{v:?}")).await;
        let props = props_for(v);
        // At the limit: accepted (MQTT 5 success with a subscriber: the reason code 0x00
        // may be left out, and both Mosquitto and Midge do).
        p.send(&raw_publish(0x32, b"t", Some(1), props, b"0123456789"))
            .await;
        p.expect("40 02 00 01").await;
        let got = sub.recv_publish_ack().await;
        assert_eq!(&got.payload[..], b"0123456789");
        // One over, QoS 1.
        p.send(&raw_publish(0x32, b"t", Some(2), props, b"0123456789A"))
            .await;
        p.expect(if v.is_v5() {
            "40 03 00 02 95"
        } else {
            "40 02 00 02"
        })
        .await;
        // One over, QoS 2.
        p.send(&raw_publish(0x34, b"t", Some(3), props, b"0123456789B"))
            .await;
        if v.is_v5() {
            p.expect("50 03 00 03 95").await;
        } else {
            p.expect("50 02 00 03").await;
            p.send(&hex("62 02 00 03")).await;
            p.expect("70 02 00 03").await;
        }
        // One over, QoS 0.
        p.send(&raw_publish(0x30, b"t", None, props, b"0123456789C"))
            .await;
        // The next delivery is the sentinel: nothing over the limit got through.
        p.publish("t", b"sentinel", QoS::AtLeastOnce, false).await;
        let got = sub.recv_publish_ack().await;
        assert_eq!(&got.payload[..], b"sentinel", "{v:?}");
        sub.expect_silence(QUIET).await;
        p.disconnect().await;
    }
}

// `max_payload_size 10` (the seeds' spelling, a Midge option): payload of 10 bytes
// accepted, 11 dropped, MQTT 5 told 0x95 (packet too large).
#[tokio::test]
async fn max_payload_size_at_the_limit_and_one_over() {
    let b = start("allow_anonymous true\nmax_payload_size 10", |_| {}).await;
    check_payload_limit_10(b.addr).await;
}

// `message_size_limit 10`: the same answers. Mosquitto 2.0.11 sent exactly these (PUBACK and
// PUBREC 0x95 to MQTT 5, plain acknowledgements to 3.1.1, message not forwarded).
#[tokio::test]
async fn message_size_limit_at_the_limit_and_one_over() {
    let b = start("allow_anonymous true\nmessage_size_limit 10", |_| {}).await;
    check_payload_limit_10(b.addr).await;
}

// ---------------------------------------------------------------------------------------
// In flight and queued
// ---------------------------------------------------------------------------------------

// `max_inflight_messages 3`: a subscriber that does not acknowledge gets 3 QoS 1 messages,
// the 4th only after it acknowledges one (Mosquitto 2.0.11: 3 of 6, and Receive Maximum 3
// in the MQTT 5 CONNACK).
#[tokio::test]
async fn max_inflight_messages_window() {
    let b = start("allow_anonymous true\nmax_inflight_messages 3", |_| {}).await;
    for v in VERSIONS {
        let (mut sub, ack) = Raw::connect_with(b.addr, connect_packet(v, "inf-sub")).await;
        if v.is_v5() {
            assert_eq!(ack.properties.receive_maximum, Some(3));
        }
        sub.subscribe("t", QoS::AtLeastOnce).await;
        let mut p = Raw::connect(b.addr, V311, "inf-pub").await;
        for i in 0..6 {
            p.publish("t", format!("m{i}").as_bytes(), QoS::AtLeastOnce, false)
                .await;
        }
        let first = drain(&mut sub).await;
        assert_eq!(payloads(&sub, &first), ["m0", "m1", "m2"], "{v:?}");
        let Packet::Publish(m0) = sub.decode(&first[0]) else {
            unreachable!()
        };
        sub.send_packet(&Packet::PubAck(PubResp::new(m0.packet_id)))
            .await;
        let next = drain(&mut sub).await;
        assert_eq!(
            payloads(&sub, &next),
            ["m3"],
            "{v:?}: one ack frees one place"
        );
        p.disconnect().await;
        sub.disconnect().await;
    }
}

// `max_queued_messages 3`: an offline persistent session keeps 3 QoS 1 messages, the
// oldest; later ones are dropped (Mosquitto 2.0.11: m00, m01, m02 of ten).
#[tokio::test]
async fn max_queued_messages_for_an_offline_session() {
    let b = start("allow_anonymous true\nmax_queued_messages 3", |_| {}).await;
    let ten: Vec<(QoS, String)> = (0..10)
        .map(|i| (QoS::AtLeastOnce, format!("m{i:02}")))
        .collect();
    for v in VERSIONS {
        let got = offline_then_back(b.addr, v, QoS::AtLeastOnce, &ten).await;
        assert_eq!(got, ["m00", "m01", "m02"], "{v:?}");
    }
}

// `max_queued_bytes`: Mosquitto 2.0.11 counts queued *payload* bytes and queues a message
// while the count is below the limit. With 30-byte payloads: limit 90 keeps 3 messages (90
// bytes, then full), limit 91 keeps 4 (90 < 91, so a fourth goes in).
#[tokio::test]
async fn max_queued_bytes_for_an_offline_session() {
    let ten: Vec<(QoS, String)> = (0..10)
        .map(|i| (QoS::AtLeastOnce, format!("{}{i:03}", "x".repeat(27))))
        .collect();
    for (limit, kept) in [(90, 3), (91, 4)] {
        let b = start(
            &format!("allow_anonymous true\nmax_queued_bytes {limit}"),
            |_| {},
        )
        .await;
        let got = offline_then_back(b.addr, V311, QoS::AtLeastOnce, &ten).await;
        let want: Vec<String> = ten[..kept].iter().map(|(_, s)| s.clone()).collect();
        assert_eq!(got, want, "max_queued_bytes {limit}");
    }
}

// QoS 0 messages are not queued for an offline session by default; with
// `queue_qos0_messages true` they are (Mosquitto 2.0.11: 0 and 3 of 3).
#[tokio::test]
async fn queue_qos0_messages_for_an_offline_session() {
    let three: Vec<(QoS, String)> = (0..3).map(|i| (QoS::AtMostOnce, format!("z{i}"))).collect();
    let b = start_default().await;
    for v in VERSIONS {
        let got = offline_then_back(b.addr, v, QoS::AtLeastOnce, &three).await;
        assert!(got.is_empty(), "{v:?}: QoS 0 queued by default: {got:?}");
    }
    let b = start("allow_anonymous true\nqueue_qos0_messages true", |_| {}).await;
    for v in VERSIONS {
        let got = offline_then_back(b.addr, v, QoS::AtLeastOnce, &three).await;
        assert_eq!(got, ["z0", "z1", "z2"], "{v:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Retain, QoS, keep alive, topic aliases
// ---------------------------------------------------------------------------------------

// `retain_available false`: MQTT 5 CONNACK says Retain Available 0; a retained PUBLISH
// ends the connection with DISCONNECT 0x9A (MQTT 5) or a close (3.1.1), as Mosquitto 2.0.11
// does; a non-retained one is fine.
#[tokio::test]
async fn retain_available_false() {
    let b = start("allow_anonymous true\nretain_available false", |_| {}).await;
    for v in VERSIONS {
        for qos_byte in [0x31u8, 0x33] {
            let (mut raw, ack) = Raw::connect_with(b.addr, connect_packet(v, "ra")).await;
            if v.is_v5() {
                assert_eq!(ack.properties.retain_available, Some(0));
            }
            raw.publish("plain", b"ok", QoS::AtLeastOnce, false).await;
            let id = (qos_byte & 0x06 != 0).then_some(9);
            raw.send(&raw_publish(qos_byte, b"kept", id, props_for(v), b"r"))
                .await;
            if v.is_v5() {
                raw.expect_disconnect(0x9a).await;
            } else {
                raw.expect_close().await;
            }
        }
    }
}

// By default retained messages are available: MQTT 5 CONNACK does not say otherwise.
#[tokio::test]
async fn retain_available_by_default() {
    let b = start_default().await;
    let (_raw, ack) = Raw::connect_with(b.addr, connect_packet(V5, "rd")).await;
    assert_eq!(ack.properties.retain_available, None);
}

// `max_qos 1`: SUBSCRIBE at QoS 2 is granted 1; MQTT 5 CONNACK says Maximum QoS 1; a QoS 2
// PUBLISH ends the connection (DISCONNECT 0x9B in MQTT 5, close in 3.1.1), as Mosquitto
// 2.0.11 does. QoS 1 is fine.
#[tokio::test]
async fn max_qos_1() {
    let b = start_conf("listener 1 127.0.0.1\nallow_anonymous true\nmax_qos 1\n").await;
    let addr = b.addrs[0];
    for v in VERSIONS {
        let (mut raw, ack) = Raw::connect_with(addr, connect_packet(v, "mq")).await;
        if v.is_v5() {
            assert_eq!(ack.properties.maximum_qos, Some(1));
        }
        assert_eq!(raw.subscribe("t", QoS::ExactlyOnce).await, vec![1]);
        assert_eq!(raw.subscribe("u", QoS::AtLeastOnce).await, vec![1]);
        assert!(raw.publish("t", b"q1", QoS::AtLeastOnce, false).await < 0x80);
        let got = raw.recv_publish_ack().await;
        assert_eq!(got.qos, QoS::AtLeastOnce);
        raw.send(&raw_publish(0x34, b"t", Some(5), props_for(v), b"q2"))
            .await;
        if v.is_v5() {
            raw.expect_disconnect(0x9b).await;
        } else {
            raw.expect_close().await;
        }
    }
}

// `max_qos 0`: subscriptions are granted QoS 0 and QoS 1 publishes are refused.
#[tokio::test]
async fn max_qos_0() {
    let b = start_conf("listener 1 127.0.0.1\nallow_anonymous true\nmax_qos 0\n").await;
    let addr = b.addrs[0];
    for v in VERSIONS {
        let (mut raw, ack) = Raw::connect_with(addr, connect_packet(v, "mq0")).await;
        if v.is_v5() {
            assert_eq!(ack.properties.maximum_qos, Some(0));
        }
        assert_eq!(raw.subscribe("t", QoS::ExactlyOnce).await, vec![0]);
        raw.publish("t", b"q0", QoS::AtMostOnce, false).await;
        let got = raw.recv_publish().await;
        assert_eq!(got.qos, QoS::AtMostOnce);
        raw.send(&raw_publish(0x32, b"t", Some(5), props_for(v), b"q1"))
            .await;
        if v.is_v5() {
            raw.expect_disconnect(0x9b).await;
        } else {
            raw.expect_close().await;
        }
    }
}

// `max_keepalive 30`: an MQTT 5 client asking for 31 (or 0, no keep alive) is told Server
// Keep Alive 30; one asking for 30 is told nothing. A 3.1.1 client asking for more is
// refused with 0x02, as Mosquitto 2.0.12+ does to mitigate CVE-2020-13849 (2.0.11 let it in).
#[tokio::test]
async fn max_keepalive() {
    let b = start("allow_anonymous true\nmax_keepalive 30", |_| {}).await;
    for (asked, told) in [(30, None), (31, Some(30)), (0, Some(30)), (10, None)] {
        let mut c = connect_packet(V5, "ka");
        c.keep_alive = asked;
        let (raw, ack) = Raw::connect_with(b.addr, c).await;
        assert_eq!(ack.properties.server_keep_alive, told, "keep alive {asked}");
        raw.disconnect().await;
    }
    let mut c = connect_packet(V311, "ka3");
    c.keep_alive = 30;
    let (mut raw, ack) = Raw::connect_with(b.addr, c).await;
    assert_eq!(ack.code, 0);
    raw.ping().await;
    let mut refused = Raw::tcp(b.addr).await;
    refused
        .send(&raw_connect("MQTT", 4, 0x02, 31, None, "ka4", &[]))
        .await;
    refused.expect("20 02 00 02").await;
    refused.expect_close().await;
}

// The keep alive the server imposes is enforced: a client told 1 s that stays silent is
// disconnected after 1.5 s (MQTT 5: DISCONNECT 0x8D).
#[tokio::test]
async fn max_keepalive_is_enforced() {
    let b = start("allow_anonymous true\nmax_keepalive 1", |_| {}).await;
    let mut c = connect_packet(V5, "kae");
    c.keep_alive = 60;
    let (mut raw, ack) = Raw::connect_with(b.addr, c).await;
    assert_eq!(ack.properties.server_keep_alive, Some(1));
    match raw.recv_raw_within(Duration::from_secs(4)).await {
        Ok(p) => assert_eq!(to_hex(&p), "e0 01 8d"),
        Err(e) => panic!("expected DISCONNECT 0x8D, got {e:?}"),
    }
    raw.expect_close().await;
}

// `max_topic_alias` is per listener: CONNACK Topic Alias Maximum equals it; an alias at the
// maximum works, one above ends the connection with DISCONNECT 0x94 (Mosquitto 2.0.11
// exactly). `max_topic_alias 0` announces nothing and refuses every alias. The default is 10.
#[tokio::test]
async fn max_topic_alias_per_listener() {
    let b = start_conf(
        "listener 1 127.0.0.1\nallow_anonymous true\nmax_topic_alias 3\n\
         listener 2 127.0.0.1\nallow_anonymous true\nmax_topic_alias 0\n\
         listener 3 127.0.0.1\nallow_anonymous true\n",
    )
    .await;
    let (three, zero, default) = (b.addrs[0], b.addrs[1], b.addrs[2]);

    let (mut raw, ack) = Raw::connect_with(three, connect_packet(V5, "ta3")).await;
    assert_eq!(ack.properties.topic_alias_maximum, Some(3));
    raw.send(&raw_publish(
        0x32,
        b"t",
        Some(1),
        Some(&hex("23 00 03")),
        b"x",
    ))
    .await;
    let reply = raw.recv_raw().await;
    assert!(
        to_hex(&reply) == "40 03 00 01 10" || to_hex(&reply) == "40 02 00 01",
        "alias 3 accepted: {}",
        to_hex(&reply)
    );
    raw.send(&raw_publish(
        0x32,
        b"t",
        Some(2),
        Some(&hex("23 00 04")),
        b"x",
    ))
    .await;
    raw.expect_disconnect(0x94).await;

    let (mut raw, ack) = Raw::connect_with(zero, connect_packet(V5, "ta0")).await;
    assert_eq!(ack.properties.topic_alias_maximum, None);
    raw.send(&raw_publish(
        0x32,
        b"t",
        Some(1),
        Some(&hex("23 00 01")),
        b"x",
    ))
    .await;
    raw.expect_disconnect(0x94).await;

    let (mut raw, ack) = Raw::connect_with(default, connect_packet(V5, "ta10")).await;
    assert_eq!(ack.properties.topic_alias_maximum, Some(10));
    raw.send(&raw_publish(
        0x32,
        b"t",
        Some(1),
        Some(&hex("23 00 0a")),
        b"x",
    ))
    .await;
    raw.recv_raw().await;
    raw.send(&raw_publish(
        0x32,
        b"t",
        Some(2),
        Some(&hex("23 00 0b")),
        b"x",
    ))
    .await;
    raw.expect_disconnect(0x94).await;
}

// `max_publish_rate` (beyond Mosquitto): a client publishing faster is read more slowly,
// and nothing it sent is lost. 30 QoS 1 publishes at 10 per second (burst 10) cannot all be
// acknowledged in under 1.5 s; all 30 arrive. Only a lower bound on time is checked.
#[tokio::test]
async fn max_publish_rate_slows_a_fast_publisher_without_loss() {
    let b = start("allow_anonymous true\nmax_publish_rate 10", |_| {}).await;
    let mut sub = Raw::connect(b.addr, ProtocolVersion::V311, "sub").await;
    sub.subscribe("rate/#", QoS::AtLeastOnce).await;
    let mut publ = Raw::connect(b.addr, ProtocolVersion::V311, "fast").await;
    let started = std::time::Instant::now();
    // All 30 are written at once; the broker paces reading them.
    let mut burst = Vec::new();
    for i in 0..30u16 {
        let mut p = publish_packet("rate/t", &i.to_be_bytes(), QoS::AtLeastOnce, false);
        p.packet_id = i + 1;
        burst.extend(encode(&Packet::Publish(p), ProtocolVersion::V311));
    }
    publ.send(&burst).await;
    for i in 0..30u16 {
        let p = tokio::time::timeout(std::time::Duration::from_secs(20), sub.recv_publish_ack())
            .await
            .expect("delivered in time");
        assert_eq!(&p.payload[..], &i.to_be_bytes(), "in order, none lost");
    }
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1500),
        "took {:?}",
        started.elapsed()
    );
}

// `max_connection_rate` (beyond Mosquitto): at 2 per second (burst 2), 20 connections
// opened one after the other are not all served (that would take the broker 9 s to
// allow); the refused ones are closed before any MQTT.
#[tokio::test]
async fn max_connection_rate_closes_the_excess_at_accept() {
    let b = start("allow_anonymous true", |c| {
        if let Some(l) = c.listeners.last_mut() {
            l.max_connection_rate = Some(2);
        }
    })
    .await;
    let mut served = 0;
    for i in 0..20 {
        let mut raw = Raw::tcp(b.addr).await;
        raw.send(&raw_connect(
            "MQTT",
            4,
            0x02,
            30,
            None,
            &format!("r{i}"),
            &[],
        ))
        .await;
        if raw.recv_raw_within(Duration::from_secs(2)).await.is_ok() {
            served += 1;
        }
    }
    assert!(served >= 2, "the burst is served: {served}");
    assert!(served < 20, "the excess is refused: {served}");
}
