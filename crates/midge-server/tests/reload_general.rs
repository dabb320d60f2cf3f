//! SIGHUP reloads the general options Mosquitto reloads (`retain_available`,
//! `upgrade_outgoing_qos`) for clients already connected, without dropping them.

mod common;

use common::*;
use midge_proto::{ProtocolVersion, QoS};

fn parse_conf(text: &str) -> midge_core::config::Config {
    let mut config = midge_core::config::parse(text, "test.conf").expect("test config parses");
    for l in &mut config.listeners {
        l.port = 0;
    }
    config
}

#[tokio::test]
async fn retain_available_and_upgrade_outgoing_qos_follow_a_reload() {
    let base = "listener 1 127.0.0.1\nallow_anonymous true\n";
    let server = midge_server::Server::bind(&parse_conf(base)).await.unwrap();
    let addr = server.local_addrs()[0];
    let handle = server.handle();
    tokio::spawn(server.run());

    let mut sub = Raw::connect(addr, ProtocolVersion::V311, "rg-sub").await;
    sub.subscribe("rg/t", QoS::ExactlyOnce).await;
    let mut publisher = Raw::connect(addr, ProtocolVersion::V5, "rg-pub").await;
    publisher
        .publish("rg/t", b"a", QoS::AtMostOnce, false)
        .await;
    assert_eq!(sub.recv_publish().await.qos, QoS::AtMostOnce);

    let reloaded = format!("{base}upgrade_outgoing_qos true\nretain_available false\n");
    assert!(handle.reload(&parse_conf(&reloaded)).is_empty());

    // The same connections, now under the new options.
    publisher
        .publish("rg/t", b"b", QoS::AtMostOnce, false)
        .await;
    let p = sub.recv_publish_ack().await;
    assert_eq!((&p.payload[..], p.qos), (&b"b"[..], QoS::ExactlyOnce));
    publisher
        .send_packet(&midge_proto::Packet::Publish(publish_packet(
            "rg/t",
            b"r",
            QoS::AtMostOnce,
            true,
        )))
        .await;
    publisher
        .expect_disconnect(midge_proto::reason::RETAIN_NOT_SUPPORTED)
        .await;
    handle.shutdown();
}
