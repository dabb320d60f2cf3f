//! Sessions: clean session 0 (3.1.1) and session expiry (5.0) keep subscriptions and queue
//! QoS 1/2 messages while offline; unacknowledged messages are resent with DUP; inbound
//! QoS 2 is exactly once; a second connection takes the session over; keep alive is
//! enforced at one and a half times its value.

mod common;

use std::time::{Duration, Instant};

use common::*;
use midge_proto::{Connect, Packet, ProtocolVersion, PubResp, QoS};

fn persistent(version: ProtocolVersion, id: &str, expiry: Option<u32>) -> Connect {
    let mut c = connect_packet(version, id);
    c.clean_start = false;
    c.properties.session_expiry_interval = expiry;
    c
}

// [MQTT-3.1.2-4], [MQTT-3.1.2-5], [MQTT-3.2.2-2]: clean session 0 keeps the subscription and
// queues QoS 1 and 2 messages while the client is offline (QoS 0 is not queued, as with
// Mosquitto's default queue_qos0_messages false); they arrive on reconnect, in order, with
// session present set.
#[tokio::test]
async fn v311_persistent_session_queues_messages_while_offline() {
    let b = start_default().await;
    let (mut sub, ack) =
        Raw::connect_with(b.addr, persistent(ProtocolVersion::V311, "ps", None)).await;
    assert!(!ack.session_present);
    sub.subscribe("ps/t", QoS::ExactlyOnce).await;
    sub.disconnect().await;

    let mut publ = Raw::connect(b.addr, ProtocolVersion::V311, "pp").await;
    publ.publish("ps/t", b"q1", QoS::AtLeastOnce, false).await;
    publ.publish("ps/t", b"q0", QoS::AtMostOnce, false).await;
    publ.publish("ps/t", b"q2", QoS::ExactlyOnce, false).await;
    publ.publish("ps/t", b"q1b", QoS::AtLeastOnce, false).await;
    publ.ping().await;

    let mut sub = Raw::tcp(b.addr).await;
    sub.send(&raw_connect("MQTT", 4, 0x00, 60, None, "ps", &[]))
        .await;
    sub.expect("20 02 01 00").await;
    for (payload, q) in [
        (&b"q1"[..], QoS::AtLeastOnce),
        (b"q2", QoS::ExactlyOnce),
        (b"q1b", QoS::AtLeastOnce),
    ] {
        let p = sub.recv_publish_ack().await;
        assert_eq!((&p.payload[..], p.qos), (payload, q));
    }
    sub.expect_silence(QUIET).await;

    // The subscription is still there.
    publ.publish("ps/t", b"live", QoS::AtLeastOnce, false).await;
    assert_eq!(&sub.recv_publish_ack().await.payload[..], b"live");
}

// The same with rumqttc: session present, and the queued message arrives.
#[tokio::test]
async fn v311_persistent_session_with_rumqttc() {
    let b = start_default().await;
    let mut o = v4_options(b.addr, "rps");
    o.set_clean_session(false);
    let (mut sub, _) = V4::connect(o.clone()).await;
    sub.subscribe("rps/t", rumqttc::QoS::AtLeastOnce).await;
    sub.client.disconnect().await.expect("disconnect");
    settle().await;
    drop(sub);

    let mut publ = V4::simple(b.addr, "rpp").await;
    publ.publish("rps/t", b"while away", rumqttc::QoS::AtLeastOnce, false)
        .await;

    let (mut sub, ack) = V4::connect(o).await;
    assert!(ack.session_present);
    let p = sub.next_publish().await;
    assert_eq!(&p.payload[..], b"while away");
}

// [MQTT-3.1.2-6]: clean session 1 discards the previous session: no subscription, no queue.
#[tokio::test]
async fn v311_clean_session_discards_previous_session() {
    let b = start_default().await;
    let (mut sub, _) =
        Raw::connect_with(b.addr, persistent(ProtocolVersion::V311, "cs", None)).await;
    sub.subscribe("cs/t", QoS::AtLeastOnce).await;
    sub.disconnect().await;
    let mut publ = Raw::connect(b.addr, ProtocolVersion::V311, "csp").await;
    publ.publish("cs/t", b"lost", QoS::AtLeastOnce, false).await;

    let mut sub = Raw::tcp(b.addr).await;
    sub.send(&raw_connect("MQTT", 4, 0x02, 60, None, "cs", &[]))
        .await;
    sub.expect("20 02 00 00").await;
    sub.expect_silence(QUIET).await;
    publ.publish("cs/t", b"after", QoS::AtLeastOnce, false)
        .await;
    sub.expect_silence(QUIET).await;

    // And with clean session 0 afterwards there is nothing to resume either.
    sub.disconnect().await;
    let mut again = Raw::tcp(b.addr).await;
    again
        .send(&raw_connect("MQTT", 4, 0x00, 60, None, "cs", &[]))
        .await;
    again.expect("20 02 00 00").await;
}

// [MQTT-3.1.2-23]: MQTT 5 session expiry interval > 0 keeps the session after the connection
// ends; clean start 0 resumes it with session present.
#[tokio::test]
async fn v5_session_expiry_keeps_session_while_offline() {
    let b = start_default().await;
    let (mut sub, _) =
        Raw::connect_with(b.addr, persistent(ProtocolVersion::V5, "se", Some(60))).await;
    sub.subscribe("se/t", QoS::AtLeastOnce).await;
    sub.disconnect().await;

    let mut publ = Raw::connect(b.addr, ProtocolVersion::V5, "sep").await;
    assert_eq!(
        publ.publish("se/t", b"kept", QoS::AtLeastOnce, false).await,
        0
    );

    let (mut sub, ack) =
        Raw::connect_with(b.addr, persistent(ProtocolVersion::V5, "se", Some(60))).await;
    assert!(ack.session_present);
    assert_eq!(&sub.recv_publish_ack().await.payload[..], b"kept");
}

// rumqttc v5 flavour of the same.
#[tokio::test]
async fn v5_session_expiry_with_rumqttc() {
    let b = start_default().await;
    let mut o = common::v5::options(b.addr, "rse");
    o.set_clean_start(false);
    o.set_connect_properties(rumqttc::v5::mqttbytes::v5::ConnectProperties {
        session_expiry_interval: Some(60),
        ..rumqttc::v5::mqttbytes::v5::ConnectProperties::new()
    });
    let (mut sub, _) = common::v5::V5::connect(o.clone()).await;
    sub.subscribe("rse/t", common::v5::QoS::AtLeastOnce).await;
    sub.client.disconnect().await.expect("disconnect");
    settle().await;
    drop(sub);

    let mut publ = common::v5::V5::simple(b.addr, "rsep").await;
    publ.publish("rse/t", b"queued", common::v5::QoS::AtLeastOnce, false)
        .await;
    let (mut sub, ack) = common::v5::V5::connect(o).await;
    assert!(ack.session_present);
    assert_eq!(&sub.next_publish().await.payload[..], b"queued");
}

// [MQTT-3.1.2-23]: session expiry 0 (the default) ends the session with the connection.
#[tokio::test]
async fn v5_session_expiry_0_ends_session_with_connection() {
    let b = start_default().await;
    let (mut sub, _) = Raw::connect_with(b.addr, persistent(ProtocolVersion::V5, "s0", None)).await;
    sub.subscribe("s0/t", QoS::AtLeastOnce).await;
    sub.disconnect().await;
    let mut publ = Raw::connect(b.addr, ProtocolVersion::V5, "s0p").await;
    // Nobody subscribed any more: PUBACK 0x10.
    assert_eq!(
        publ.publish("s0/t", b"x", QoS::AtLeastOnce, false).await,
        0x10
    );
    let (mut sub, ack) =
        Raw::connect_with(b.addr, persistent(ProtocolVersion::V5, "s0", None)).await;
    assert!(!ack.session_present);
    sub.expect_silence(QUIET).await;
}

// The session is gone once its expiry interval has passed.
#[tokio::test]
async fn v5_session_expires_after_its_interval() {
    let b = start_default().await;
    let (mut sub, _) =
        Raw::connect_with(b.addr, persistent(ProtocolVersion::V5, "sx", Some(1))).await;
    sub.subscribe("sx/t", QoS::AtLeastOnce).await;
    sub.disconnect().await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (_sub, ack) =
        Raw::connect_with(b.addr, persistent(ProtocolVersion::V5, "sx", Some(1))).await;
    assert!(!ack.session_present);
}

// [MQTT-3.14.2-2 / 3.14.2.2.2]: the expiry can be changed at DISCONNECT, from non-zero.
#[tokio::test]
async fn v5_session_expiry_set_on_disconnect() {
    let b = start_default().await;
    let (mut sub, _) =
        Raw::connect_with(b.addr, persistent(ProtocolVersion::V5, "sd", Some(60))).await;
    sub.subscribe("sd/t", QoS::AtLeastOnce).await;
    // DISCONNECT reason 0 with session expiry 0: the session ends now.
    sub.send(&hex("e0 07 00 05 11 00 00 00 00")).await;
    sub.expect_close().await;
    settle().await;
    let (_s, ack) =
        Raw::connect_with(b.addr, persistent(ProtocolVersion::V5, "sd", Some(60))).await;
    assert!(!ack.session_present);
}

// A session that had expiry 0 at CONNECT cannot be given one at DISCONNECT: protocol error.
#[tokio::test]
async fn v5_session_expiry_on_disconnect_after_zero_is_a_protocol_error() {
    let b = start_default().await;
    let mut c = Raw::connect(b.addr, ProtocolVersion::V5, "sz").await;
    c.send(&hex("e0 07 00 05 11 00 00 00 3c")).await;
    c.expect_disconnect(0x82).await;
}

// [MQTT-4.4.0-1], [MQTT-3.3.1-1]: an unacknowledged outgoing QoS 1 message is resent with
// DUP set and the same packet id when the session resumes on a new connection.
#[tokio::test]
async fn unacked_qos1_resent_with_dup_on_reconnect() {
    let b = start_default().await;
    let (mut sub, _) =
        Raw::connect_with(b.addr, persistent(ProtocolVersion::V311, "dup", None)).await;
    sub.subscribe("dup/t", QoS::AtLeastOnce).await;
    let mut publ = Raw::connect(b.addr, ProtocolVersion::V311, "dupp").await;
    publ.publish("dup/t", b"unacked", QoS::AtLeastOnce, false)
        .await;

    let first = sub.recv_raw().await;
    let p = sub.decode(&first);
    let Packet::Publish(p) = p else {
        panic!("expected PUBLISH, got {}", to_hex(&first))
    };
    assert!(!p.dup);
    assert_eq!(first[0], 0x32, "QoS 1, DUP 0");
    // No PUBACK: the connection just drops.
    drop(sub);
    settle().await;

    let mut sub = Raw::tcp(b.addr).await;
    sub.send(&raw_connect("MQTT", 4, 0x00, 60, None, "dup", &[]))
        .await;
    sub.expect("20 02 01 00").await;
    let again = sub.recv_raw().await;
    // Same bytes but for the DUP bit (0x08) of the first byte.
    let mut expected = first.clone();
    expected[0] |= 0x08;
    assert_eq!(to_hex(&again), to_hex(&expected));
    sub.send(&frame(0x40, &p.packet_id.to_be_bytes())).await;
    sub.ping().await;
    sub.disconnect().await;

    // Acknowledged now: a third connection gets nothing.
    let mut sub = Raw::tcp(b.addr).await;
    sub.send(&raw_connect("MQTT", 4, 0x00, 60, None, "dup", &[]))
        .await;
    sub.expect("20 02 01 00").await;
    sub.expect_silence(QUIET).await;
}

// [MQTT-4.4.0-1]: QoS 2: an unacknowledged PUBLISH is resent with DUP; once PUBREC was sent,
// the PUBREL is resent instead.
#[tokio::test]
async fn unacked_qos2_resent_then_pubrel_resent_on_reconnect() {
    let b = start_default().await;
    let (mut sub, _) =
        Raw::connect_with(b.addr, persistent(ProtocolVersion::V5, "dup2", Some(60))).await;
    sub.subscribe("dup2/t", QoS::ExactlyOnce).await;
    let mut publ = Raw::connect(b.addr, ProtocolVersion::V5, "dup2p").await;
    publ.publish("dup2/t", b"two", QoS::ExactlyOnce, false)
        .await;

    let p = sub.recv_publish().await;
    assert_eq!(p.qos, QoS::ExactlyOnce);
    assert!(!p.dup);
    drop(sub);
    settle().await;

    let (mut sub, ack) =
        Raw::connect_with(b.addr, persistent(ProtocolVersion::V5, "dup2", Some(60))).await;
    assert!(ack.session_present);
    let again = sub.recv_publish().await;
    assert!(again.dup);
    assert_eq!(again.packet_id, p.packet_id);
    assert_eq!(&again.payload[..], b"two");
    // PUBREC, then drop before PUBCOMP.
    sub.send_packet(&Packet::PubRec(PubResp::new(p.packet_id)))
        .await;
    match sub.recv().await {
        Packet::PubRel(r) => assert_eq!(r.packet_id, p.packet_id),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    drop(sub);
    settle().await;

    let (mut sub, _) =
        Raw::connect_with(b.addr, persistent(ProtocolVersion::V5, "dup2", Some(60))).await;
    match sub.recv().await {
        Packet::PubRel(r) => assert_eq!(r.packet_id, p.packet_id),
        other => panic!("expected the PUBREL to be resent, got {other:?}"),
    }
    sub.send_packet(&Packet::PubComp(PubResp::new(p.packet_id)))
        .await;
    sub.expect_silence(QUIET).await;
}

// [MQTT-4.3.3-?] exactly once: a QoS 2 PUBLISH sent again (DUP) before PUBREL is
// acknowledged again but delivered only once; after PUBREL the packet id is free again.
#[tokio::test]
async fn qos2_inbound_duplicate_delivered_once() {
    let b = start_default().await;
    let mut sub = Raw::connect(b.addr, ProtocolVersion::V311, "eo").await;
    sub.subscribe("eo/t", QoS::ExactlyOnce).await;

    let mut publ = Raw::connect(b.addr, ProtocolVersion::V311, "eop").await;
    publ.send(&raw_publish(0x34, b"eo/t", Some(7), None, b"once"))
        .await;
    publ.expect("50 02 00 07").await;
    // The same message again, DUP set.
    publ.send(&raw_publish(0x3c, b"eo/t", Some(7), None, b"once"))
        .await;
    publ.expect("50 02 00 07").await;
    publ.send(&hex("62 02 00 07")).await;
    publ.expect("70 02 00 07").await;

    let p = sub.recv_publish_ack().await;
    assert_eq!(&p.payload[..], b"once");
    sub.expect_silence(QUIET).await;

    // Packet id 7 reused after the flow completed: a new message.
    publ.send(&raw_publish(0x34, b"eo/t", Some(7), None, b"again"))
        .await;
    publ.expect("50 02 00 07").await;
    publ.send(&hex("62 02 00 07")).await;
    publ.expect("70 02 00 07").await;
    assert_eq!(&sub.recv_publish_ack().await.payload[..], b"again");
}

// The same across a reconnect: a persistent publisher resends its QoS 2 PUBLISH after
// reconnecting; the broker remembers the packet id and does not deliver twice.
#[tokio::test]
async fn qos2_inbound_duplicate_after_reconnect_delivered_once() {
    let b = start_default().await;
    let mut sub = Raw::connect(b.addr, ProtocolVersion::V311, "eo2").await;
    sub.subscribe("eo2/t", QoS::ExactlyOnce).await;

    let mut publ = Raw::tcp(b.addr).await;
    publ.send(&raw_connect("MQTT", 4, 0x00, 60, None, "eo2p", &[]))
        .await;
    publ.expect("20 02 00 00").await;
    publ.send(&raw_publish(0x34, b"eo2/t", Some(3), None, b"once"))
        .await;
    publ.expect("50 02 00 03").await;
    drop(publ);
    settle().await;

    let mut publ = Raw::tcp(b.addr).await;
    publ.send(&raw_connect("MQTT", 4, 0x00, 60, None, "eo2p", &[]))
        .await;
    publ.expect("20 02 01 00").await;
    publ.send(&raw_publish(0x3c, b"eo2/t", Some(3), None, b"once"))
        .await;
    publ.expect("50 02 00 03").await;
    publ.send(&hex("62 02 00 03")).await;
    publ.expect("70 02 00 03").await;

    assert_eq!(&sub.recv_publish_ack().await.payload[..], b"once");
    sub.expect_silence(QUIET).await;
}

// [MQTT-3.1.4-3]: a second CONNECT with the same client id ends the first connection: MQTT 5
// gets DISCONNECT 0x8E (session taken over), 3.1.1 is just closed. The new one works.
#[tokio::test]
async fn session_takeover_closes_the_first_connection() {
    let b = start_default().await;
    let mut first = Raw::connect(b.addr, ProtocolVersion::V5, "same").await;
    let mut second = Raw::connect(b.addr, ProtocolVersion::V5, "same").await;
    first.expect_disconnect(0x8e).await;
    second.ping().await;

    let mut first = Raw::connect(b.addr, ProtocolVersion::V311, "same4").await;
    let mut second = Raw::connect(b.addr, ProtocolVersion::V311, "same4").await;
    first.expect_close().await;
    second.ping().await;
}

// Takeover of a persistent session keeps it: subscriptions move to the new connection.
#[tokio::test]
async fn session_takeover_keeps_persistent_session() {
    let b = start_default().await;
    let (mut first, _) =
        Raw::connect_with(b.addr, persistent(ProtocolVersion::V311, "keep", None)).await;
    first.subscribe("keep/t", QoS::AtLeastOnce).await;
    let (mut second, ack) =
        Raw::connect_with(b.addr, persistent(ProtocolVersion::V311, "keep", None)).await;
    assert!(ack.session_present);
    first.expect_close().await;
    let mut publ = Raw::connect(b.addr, ProtocolVersion::V311, "keepp").await;
    publ.publish("keep/t", b"moved", QoS::AtLeastOnce, false)
        .await;
    assert_eq!(&second.recv_publish_ack().await.payload[..], b"moved");
}

// [MQTT-3.1.2-24]: no packet within 1.5 × keep alive closes the connection: keep alive 1 s →
// closed after about 1.5 s, not before 1 s. MQTT 5 is told DISCONNECT 0x8D first.
#[tokio::test]
async fn keepalive_enforced_at_one_and_a_half_times() {
    let b = start_default().await;
    for v in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let mut c = connect_packet(v, "ka");
        c.keep_alive = 1;
        let (mut raw, _) = Raw::connect_with(b.addr, c).await;
        let started = Instant::now();
        raw.expect_silence(Duration::from_millis(1000)).await;
        let res = raw.recv_raw_within(Duration::from_secs(2)).await;
        let took = started.elapsed();
        if v.is_v5() {
            match res {
                Ok(bytes) => assert_eq!(to_hex(&bytes), "e0 01 8d"),
                Err(e) => panic!("v5: expected DISCONNECT 0x8d, got {e:?} after {took:?}"),
            }
            raw.expect_close().await;
        } else {
            assert!(
                matches!(res, Err(Ended::Closed)),
                "3.1.1: {res:?} after {took:?}"
            );
        }
        assert!(
            took >= Duration::from_millis(1300) && took <= Duration::from_millis(2600),
            "{v:?}: closed after {took:?}, expected about 1.5 s"
        );
    }
}

// Any packet resets the keep alive timer: PINGREQ every 0.6 s keeps a 1 s connection up.
#[tokio::test]
async fn keepalive_reset_by_pingreq() {
    let b = start_default().await;
    let mut c = connect_packet(ProtocolVersion::V311, "kp");
    c.keep_alive = 1;
    let (mut raw, _) = Raw::connect_with(b.addr, c).await;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        raw.send(&hex("c0 00")).await;
        raw.expect("d0 00").await;
    }
}

// A will is published when the keep alive expires (the connection ended without DISCONNECT).
#[tokio::test]
async fn will_sent_when_keepalive_expires() {
    let b = start_default().await;
    let mut watcher = Raw::connect(b.addr, ProtocolVersion::V311, "kw").await;
    watcher.subscribe("will/ka", QoS::AtLeastOnce).await;
    let mut c = connect_packet(ProtocolVersion::V311, "kh");
    c.keep_alive = 1;
    c.will = Some(midge_proto::Will {
        topic: "will/ka".into(),
        payload: bytes::Bytes::from_static(b"timeout"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Default::default(),
    });
    let (_holder, _) = Raw::connect_with(b.addr, c).await;
    let p = match watcher.recv_raw_within(Duration::from_secs(3)).await {
        Ok(bytes) => match watcher.decode(&bytes) {
            Packet::Publish(p) => p,
            other => panic!("expected will, got {other:?}"),
        },
        Err(e) => panic!("no will after keep alive expiry: {e:?}"),
    };
    assert_eq!(&p.payload[..], b"timeout");
}
