//! Bridges (issue 8) in-process, against a fake remote broker that speaks raw MQTT: what the
//! bridge sends (CONNECT with the bridge marker and its will, the notification, SUBSCRIBE
//! options), and what it does with a hostile remote: crafted topics under a remote prefix
//! (CVE-2024-3935), a SUBACK without reason codes (CVE-2024-10525), a duplicate QoS 2
//! PUBLISH.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::peer::Peer;
use common::{start, Raw, QUIET, WAIT};
use midge_proto::{Packet, ProtocolVersion, PubResp, Publish, QoS};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::time::timeout;

async fn fake_remote() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

fn bridge_conf(port: u16, rest: &str) -> String {
    format!(
        "allow_anonymous true\nconnection fake\naddress 127.0.0.1:{port}\n\
         remote_clientid fake-bridge\nrestart_timeout 1\n{rest}"
    )
}

#[tokio::test]
async fn connect_marks_a_bridge_and_leaves_the_notification_will() {
    let (listener, port) = fake_remote().await;
    let _broker = start(&bridge_conf(port, "topic a/# both 1\n"), |_| {}).await;
    let mut peer = Peer::accept(&listener).await;
    let (level, connect) = peer.handshake().await;
    assert_eq!(level, 0x84, "MQTT 3.1.1 with the bridge bit (try_private)");
    assert_eq!(connect.client_id, "fake-bridge");
    assert!(!connect.clean_start, "cleansession false by default");
    assert_eq!(connect.keep_alive, 60);
    let will = connect.will.expect("the notification will");
    assert_eq!(&*will.topic, "$SYS/broker/connection/fake-bridge/state");
    assert_eq!(&will.payload[..], b"0");
    assert!(will.retain);
    assert_eq!(will.qos, QoS::AtLeastOnce);
    match peer.recv().await {
        Packet::Publish(p) => {
            assert_eq!(&*p.topic, "$SYS/broker/connection/fake-bridge/state");
            assert_eq!(&p.payload[..], b"1");
            assert!(p.retain);
            peer.send(&Packet::PubAck(PubResp::new(p.packet_id))).await;
        }
        other => panic!("expected the notification, got {other:?}"),
    }
    let subs = peer.settle(1).await;
    assert_eq!(subs[0].filters[0].filter, "a/#");
    assert_eq!(subs[0].filters[0].options.qos, QoS::AtLeastOnce);
}

#[tokio::test]
async fn mqtt5_bridge_subscribes_no_local_and_retain_as_published() {
    let (listener, port) = fake_remote().await;
    let conf = bridge_conf(
        port,
        "bridge_protocol_version mqttv50\nnotifications false\ntopic a/# in 2\n",
    );
    let _broker = start(&conf, |_| {}).await;
    let mut peer = Peer::accept(&listener).await;
    let (level, connect) = peer.handshake().await;
    assert_eq!(level, 5, "no bridge bit in MQTT 5");
    assert!(connect.will.is_none(), "notifications false: no will");
    let subs = peer.settle(1).await;
    let options = subs[0].filters[0].options;
    assert!(
        options.no_local && options.retain_as_published,
        "{options:?}"
    );
    assert_eq!(options.qos, QoS::ExactlyOnce);
}

/// CVE-2024-3935: topics from the remote equal to or shorter than the remote prefix, or
/// outside it, are dropped (still acknowledged); mapped ones arrive with the local prefix.
#[tokio::test]
async fn crafted_remote_topics_are_dropped_safely() {
    let (listener, port) = fake_remote().await;
    let broker = start(&bridge_conf(port, "topic # in 1 local/ remote/\n"), |_| {}).await;
    let mut peer = Peer::accept(&listener).await;
    peer.handshake().await;
    peer.settle(1).await;
    let mut sub = Raw::connect(broker.addr, ProtocolVersion::V311, "local-sub").await;
    sub.subscribe("#", QoS::AtLeastOnce).await;
    for (id, topic) in [(1, "remote"), (2, "remot"), (3, "other/x"), (4, "r")] {
        peer.publish(topic, QoS::AtLeastOnce, id, b"crafted").await;
        peer.expect_ack(id).await;
    }
    peer.publish("remote/a/b", QoS::AtLeastOnce, 5, b"fine")
        .await;
    peer.expect_ack(5).await;
    let p = sub.recv_publish().await;
    assert_eq!(&*p.topic, "local/a/b");
    assert_eq!(&p.payload[..], b"fine");
    sub.expect_silence(QUIET).await;
}

/// CVE-2024-10525: a SUBACK without reason codes ends the connection (no read past the
/// packet), and the bridge connects again.
#[tokio::test]
async fn suback_without_reason_codes_is_a_protocol_error() {
    let (listener, port) = fake_remote().await;
    let _broker = start(
        &bridge_conf(port, "notifications false\ntopic a/# in 0\n"),
        |_| {},
    )
    .await;
    let mut peer = Peer::accept(&listener).await;
    peer.handshake().await;
    let Packet::Subscribe(s) = peer.recv().await else {
        panic!("expected SUBSCRIBE");
    };
    // Packet id only: no reason code at all.
    let id = s.packet_id.to_be_bytes();
    peer.stream
        .write_all(&[0x90, 0x02, id[0], id[1]])
        .await
        .unwrap();
    assert!(
        peer.recv_raw().await.is_none(),
        "the bridge closes the connection"
    );
    let mut again = Peer::accept(&listener).await;
    again.handshake().await;
    again.settle(1).await;
}

/// A QoS 2 PUBLISH repeated before PUBREL is routed once.
#[tokio::test]
async fn qos2_from_the_remote_is_delivered_once() {
    let (listener, port) = fake_remote().await;
    let broker = start(
        &bridge_conf(port, "notifications false\ntopic q/# in 2\n"),
        |_| {},
    )
    .await;
    let mut peer = Peer::accept(&listener).await;
    peer.handshake().await;
    peer.settle(1).await;
    let mut sub = Raw::connect(broker.addr, ProtocolVersion::V311, "local-sub").await;
    sub.subscribe("q/#", QoS::AtMostOnce).await;
    peer.publish("q/1", QoS::ExactlyOnce, 9, b"once").await;
    assert!(matches!(peer.expect_ack(9).await, Packet::PubRec(_)));
    peer.send(&Packet::Publish(Publish {
        dup: true,
        qos: QoS::ExactlyOnce,
        topic: "q/1".into(),
        packet_id: 9,
        payload: Bytes::from_static(b"once"),
        ..Publish::default()
    }))
    .await;
    assert!(matches!(peer.expect_ack(9).await, Packet::PubRec(_)));
    peer.send(&Packet::PubRel(PubResp::new(9))).await;
    assert!(matches!(peer.expect_ack(9).await, Packet::PubComp(_)));
    let p = sub.recv_publish().await;
    assert_eq!(&*p.topic, "q/1");
    sub.expect_silence(QUIET).await;
}

/// Local messages go out under the remote prefix with packet ids; an unacknowledged one is
/// sent again with DUP after a reconnect.
#[tokio::test]
async fn outgoing_messages_are_resent_after_a_reconnect() {
    let (listener, port) = fake_remote().await;
    let broker = start(
        &bridge_conf(port, "notifications false\ntopic o/# out 1 \"\" remote/\n"),
        |_| {},
    )
    .await;
    let mut peer = Peer::accept(&listener).await;
    peer.handshake().await;
    // Nothing to subscribe on the remote: `out` only (an UNSUBSCRIBE may come).
    let mut publisher = Raw::connect(broker.addr, ProtocolVersion::V311, "local-pub").await;
    publisher
        .publish("o/1", b"first", QoS::AtLeastOnce, false)
        .await;
    let first = loop {
        match peer.recv().await {
            Packet::Publish(p) => break p,
            Packet::Unsubscribe(_) | Packet::PingReq => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(&*first.topic, "remote/o/1");
    assert_eq!(first.qos, QoS::AtLeastOnce);
    assert!(!first.dup);
    // No PUBACK: the connection drops.
    drop(peer);
    let mut peer = Peer::accept(&listener).await;
    peer.handshake().await;
    let again = loop {
        match peer.recv().await {
            Packet::Publish(p) => break p,
            Packet::Unsubscribe(_) | Packet::PingReq => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(&*again.topic, "remote/o/1");
    assert_eq!(again.packet_id, first.packet_id);
    assert!(again.dup, "resent with DUP");
    peer.send(&Packet::PubAck(PubResp::new(again.packet_id)))
        .await;
    publisher
        .publish("o/2", b"second", QoS::AtLeastOnce, false)
        .await;
    let next = loop {
        match peer.recv().await {
            Packet::Publish(p) => break p,
            Packet::PingReq => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(&*next.topic, "remote/o/2");
    assert!(!next.dup);
}

/// `start_type lazy`: no connection until `threshold` messages wait for the remote; then
/// they go out.
#[tokio::test]
async fn lazy_bridge_connects_at_the_threshold() {
    let (listener, port) = fake_remote().await;
    let broker = start(
        &bridge_conf(
            port,
            "start_type lazy\nthreshold 2\nnotifications false\ntopic l/# out 1\n",
        ),
        |_| {},
    )
    .await;
    let mut publisher = Raw::connect(broker.addr, ProtocolVersion::V311, "local-pub").await;
    publisher
        .publish("l/1", b"one", QoS::AtLeastOnce, false)
        .await;
    assert!(
        timeout(Duration::from_millis(800), listener.accept())
            .await
            .is_err(),
        "connected below the threshold"
    );
    publisher
        .publish("l/2", b"two", QoS::AtLeastOnce, false)
        .await;
    let mut peer = Peer::accept(&listener).await;
    peer.handshake().await;
    let mut topics = Vec::new();
    while topics.len() < 2 {
        match peer.recv().await {
            Packet::Publish(p) => {
                peer.send(&Packet::PubAck(PubResp::new(p.packet_id))).await;
                topics.push(p.topic.to_string());
            }
            Packet::Unsubscribe(_) | Packet::PingReq => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(topics, ["l/1", "l/2"]);
}

/// `start_type once`: a lost connection is not restarted.
#[tokio::test]
async fn once_bridge_does_not_restart() {
    let (listener, port) = fake_remote().await;
    let _broker = start(
        &bridge_conf(
            port,
            "start_type once\nnotifications false\ntopic a/# in 0\n",
        ),
        |_| {},
    )
    .await;
    let mut peer = Peer::accept(&listener).await;
    peer.handshake().await;
    peer.settle(1).await;
    drop(peer);
    assert!(
        timeout(Duration::from_millis(2500), listener.accept())
            .await
            .is_err(),
        "reconnected although start_type once"
    );
}

/// A clean shutdown sends the `0` notification (the will would not fire), then DISCONNECT.
#[tokio::test]
async fn shutdown_says_zero_then_disconnects() {
    let (listener, port) = fake_remote().await;
    let broker = start(&bridge_conf(port, "topic a/# in 0\n"), |_| {}).await;
    let mut peer = Peer::accept(&listener).await;
    peer.handshake().await;
    peer.settle(1).await;
    drop(broker);
    let last = loop {
        match peer.recv().await {
            Packet::Publish(p) => break p,
            Packet::PingReq => {}
            other => panic!("expected the 0 notification, got {other:?}"),
        }
    };
    assert_eq!(&*last.topic, "$SYS/broker/connection/fake-bridge/state");
    assert_eq!(&last.payload[..], b"0");
    assert!(last.retain);
    assert!(matches!(peer.recv().await, Packet::Disconnect(_)));
}

/// The next PUBLISH from the bridge, acknowledged; UNSUBSCRIBE and PINGREQ are skipped.
async fn next_publish(peer: &mut Peer, unsubscribed: &mut Vec<String>) -> Publish {
    loop {
        match peer.recv().await {
            Packet::Publish(p) => {
                if p.qos == QoS::AtLeastOnce {
                    peer.send(&Packet::PubAck(PubResp::new(p.packet_id))).await;
                }
                return p;
            }
            Packet::Unsubscribe(u) => unsubscribed.extend(u.filters),
            Packet::PingReq => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// `bridge_outgoing_retain false` clears the retain flag; `bridge_max_packet_size` keeps
/// larger messages back; `bridge_attempt_unsubscribe` unsubscribes `out`-only patterns.
#[tokio::test]
async fn outgoing_retain_packet_size_and_unsubscribe() {
    let (listener, port) = fake_remote().await;
    let broker = start(
        &bridge_conf(
            port,
            "notifications false\nbridge_outgoing_retain false\nbridge_max_packet_size 100\n\
             topic r/# out 1\n",
        ),
        |_| {},
    )
    .await;
    let mut peer = Peer::accept(&listener).await;
    peer.handshake().await;
    let mut publisher = Raw::connect(broker.addr, ProtocolVersion::V311, "local-pub").await;
    let mut unsubscribed = Vec::new();
    publisher
        .publish("r/1", b"kept", QoS::AtLeastOnce, true)
        .await;
    let p = next_publish(&mut peer, &mut unsubscribed).await;
    assert_eq!(&*p.topic, "r/1");
    assert!(!p.retain, "bridge_outgoing_retain false");
    publisher
        .publish("r/big", &[b'x'; 200], QoS::AtLeastOnce, false)
        .await;
    publisher
        .publish("r/small", b"fits", QoS::AtLeastOnce, false)
        .await;
    let p = next_publish(&mut peer, &mut unsubscribed).await;
    assert_eq!(&*p.topic, "r/small", "the large message is not sent");
    assert_eq!(unsubscribed, ["r/#"]);

    // The defaults: the retain flag crosses as published.
    let (listener, port) = fake_remote().await;
    let broker = start(
        &bridge_conf(port, "notifications false\ntopic r/# out 1\n"),
        |_| {},
    )
    .await;
    let mut peer = Peer::accept(&listener).await;
    peer.handshake().await;
    let mut publisher = Raw::connect(broker.addr, ProtocolVersion::V311, "local-pub").await;
    publisher
        .publish("r/1", b"kept", QoS::AtLeastOnce, true)
        .await;
    let p = next_publish(&mut peer, &mut unsubscribed).await;
    assert!(p.retain, "retain as published");
}

/// Mosquitto 2.1's MQTT 5 bridge options reach the CONNECT: topic alias maximum (default
/// 10), receive maximum (default `max_inflight_messages`) and session expiry (default:
/// never expiring without `cleansession true`).
#[tokio::test]
async fn mqtt5_connect_carries_the_bridge_session_options() {
    let (listener, port) = fake_remote().await;
    let conf = bridge_conf(
        port,
        "bridge_protocol_version mqttv50\nnotifications false\ntopic a/# in 1\n",
    );
    let broker = start(&conf, |_| {}).await;
    let mut peer = Peer::accept(&listener).await;
    let (_, connect) = peer.handshake().await;
    let p = &connect.properties;
    assert_eq!(p.topic_alias_maximum, Some(10));
    // max_inflight_messages' default.
    assert_eq!(p.receive_maximum, Some(20));
    assert_eq!(p.session_expiry_interval, Some(u32::MAX));
    drop((peer, broker));

    let (listener, port) = fake_remote().await;
    let conf = bridge_conf(
        port,
        "bridge_protocol_version mqttv50\nnotifications false\ntopic a/# in 1\n\
         bridge_max_topic_alias 3\nbridge_receive_maximum 7\nbridge_session_expiry_interval 60\n",
    );
    let _broker = start(&conf, |_| {}).await;
    let mut peer = Peer::accept(&listener).await;
    let (_, connect) = peer.handshake().await;
    let p = &connect.properties;
    assert_eq!(p.topic_alias_maximum, Some(3));
    assert_eq!(p.receive_maximum, Some(7));
    assert_eq!(p.session_expiry_interval, Some(60));
}

/// Topic aliases the remote sets up are resolved; one above `bridge_max_topic_alias` is a
/// protocol error that ends the connection (and the bridge connects again).
#[tokio::test]
async fn topic_aliases_from_the_remote_are_resolved_within_the_maximum() {
    let (listener, port) = fake_remote().await;
    let conf = bridge_conf(
        port,
        "bridge_protocol_version mqttv50\nnotifications false\ntopic a/# in 1\n\
         bridge_max_topic_alias 2\n",
    );
    let broker = start(&conf, |_| {}).await;
    let mut peer = Peer::accept(&listener).await;
    peer.handshake().await;
    peer.settle(1).await;
    let mut sub = Raw::connect(broker.addr, ProtocolVersion::V311, "local-sub").await;
    sub.subscribe("a/#", QoS::AtLeastOnce).await;
    let aliased = |topic: &str, alias: u16, id: u16, payload: &'static [u8]| {
        let mut p = Publish {
            qos: QoS::AtLeastOnce,
            topic: topic.into(),
            packet_id: id,
            payload: Bytes::from_static(payload),
            ..Publish::default()
        };
        p.properties.topic_alias = Some(alias);
        Packet::Publish(p)
    };
    peer.send(&aliased("a/long/topic", 2, 1, b"one")).await;
    peer.expect_ack(1).await;
    peer.send(&aliased("", 2, 2, b"two")).await;
    peer.expect_ack(2).await;
    for want in [&b"one"[..], b"two"] {
        let p = sub.recv_publish().await;
        assert_eq!(&*p.topic, "a/long/topic");
        assert_eq!(&p.payload[..], want);
    }
    peer.send(&aliased("a/x", 3, 3, b"three")).await;
    assert_eq!(
        peer.next_within(WAIT).await.err(),
        Some(true),
        "alias 3 > 2 closes the connection"
    );
    sub.expect_silence(QUIET).await;
    let mut again = Peer::accept(&listener).await;
    again.handshake().await;
}
