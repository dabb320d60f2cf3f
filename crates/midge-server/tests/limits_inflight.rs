//! `max_inflight_bytes` and `upgrade_outgoing_qos`: delivery limits and options applied per
//! subscriber on the way out.

mod common;

use std::time::Duration;

use common::*;
use midge_proto::{ProtocolVersion, QoS};

/// With `max_inflight_bytes 100`, a subscriber that does not acknowledge gets messages while
/// the payload bytes in flight are below 100, as Mosquitto counts: two of 60 bytes.
#[tokio::test]
async fn max_inflight_bytes_limits_unacknowledged_messages() {
    let broker = start(
        "allow_anonymous true\nmax_inflight_bytes 100\nmax_inflight_messages 20\n",
        |_| {},
    )
    .await;
    let mut sub = Raw::connect(broker.addr, ProtocolVersion::V311, "ib-sub").await;
    sub.subscribe("ib/t", QoS::AtLeastOnce).await;
    let mut publisher = Raw::connect(broker.addr, ProtocolVersion::V311, "ib-pub").await;
    for _ in 0..5 {
        publisher
            .publish("ib/t", &[b'x'; 60], QoS::AtLeastOnce, false)
            .await;
    }
    let first = sub.recv_publish().await;
    let second = sub.recv_publish().await;
    // 0 and 60 are below 100; at 120 nothing more goes out.
    sub.expect_silence(Duration::from_millis(300)).await;
    sub.ack(&first).await;
    let third = sub.recv_publish().await;
    assert_ne!(third.packet_id, second.packet_id);
    sub.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn one_message_larger_than_max_inflight_bytes_still_goes_out() {
    let broker = start("allow_anonymous true\nmax_inflight_bytes 10\n", |_| {}).await;
    let mut sub = Raw::connect(broker.addr, ProtocolVersion::V311, "ib-big-sub").await;
    sub.subscribe("ib/big", QoS::AtLeastOnce).await;
    let mut publisher = Raw::connect(broker.addr, ProtocolVersion::V311, "ib-big-pub").await;
    publisher
        .publish("ib/big", &[b'y'; 100], QoS::AtLeastOnce, false)
        .await;
    publisher
        .publish("ib/big", &[b'z'; 100], QoS::AtLeastOnce, false)
        .await;
    let first = sub.recv_publish().await;
    assert_eq!(first.payload.len(), 100);
    sub.expect_silence(Duration::from_millis(300)).await;
    sub.ack(&first).await;
    assert_eq!(&sub.recv_publish().await.payload[..1], b"z");
}

#[tokio::test]
async fn upgrade_outgoing_qos_delivers_at_the_subscription_qos() {
    for (upgrade, expected) in [(false, QoS::AtMostOnce), (true, QoS::ExactlyOnce)] {
        let conf = format!("allow_anonymous true\nupgrade_outgoing_qos {upgrade}\n");
        let broker = start(&conf, |_| {}).await;
        let mut sub = Raw::connect(broker.addr, ProtocolVersion::V311, "up-sub").await;
        sub.subscribe("up/t", QoS::ExactlyOnce).await;
        let mut publisher = Raw::connect(broker.addr, ProtocolVersion::V311, "up-pub").await;
        publisher
            .publish("up/t", b"m", QoS::AtMostOnce, false)
            .await;
        let p = sub.recv_publish().await;
        assert_eq!(p.qos, expected, "upgrade_outgoing_qos {upgrade}");
    }
}
