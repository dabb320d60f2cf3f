//! The `$SYS/broker/...` tree: Mosquitto's topics and formats, retained, published only when
//! a value changed, and following clients as they come and go. Driven by rumqttc clients.

mod common;

use std::time::Duration;

use common::*;
use rumqttc::QoS;

/// Waits (bounded) until `topic` is published with `want`; returns every value seen.
async fn until_value(c: &mut V4, topic: &str, want: &str) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while tokio::time::Instant::now() < deadline {
        let p = c.next_publish().await;
        if p.topic == topic {
            let v = String::from_utf8_lossy(&p.payload).into_owned();
            let done = v == want;
            seen.push(v);
            if done {
                return seen;
            }
        }
    }
    panic!("{topic} never became {want}; saw {seen:?}");
}

#[tokio::test]
async fn sys_tree_follows_clients_and_is_retained() {
    let b = start("allow_anonymous true\nsys_interval 1", |_| {}).await;
    let mut watcher = V4::simple(b.addr, "watcher").await;
    watcher.subscribe("$SYS/broker/#", QoS::AtMostOnce).await;
    until_value(&mut watcher, "$SYS/broker/clients/connected", "1").await;

    let other = V4::simple(b.addr, "other").await;
    until_value(&mut watcher, "$SYS/broker/clients/connected", "2").await;
    until_value(&mut watcher, "$SYS/broker/clients/maximum", "2").await;
    drop(other);
    until_value(&mut watcher, "$SYS/broker/clients/connected", "1").await;

    // Retained: a late subscriber gets the current values at once, version included.
    let mut late = V4::simple(b.addr, "late").await;
    late.subscribe("$SYS/broker/version", QoS::AtMostOnce).await;
    let p = late.next_publish().await;
    assert!(p.retain);
    assert_eq!(
        String::from_utf8_lossy(&p.payload),
        format!("midge version {}", env!("CARGO_PKG_VERSION"))
    );
    late.subscribe("$SYS/broker/uptime", QoS::AtMostOnce).await;
    let p = late.next_publish().await;
    let uptime = String::from_utf8_lossy(&p.payload).into_owned();
    assert!(uptime.ends_with(" seconds"), "{uptime}");
}

#[tokio::test]
async fn publish_counters_count_messages_and_bytes() {
    let b = start("allow_anonymous true\nsys_interval 1", |_| {}).await;
    let mut watcher = V4::simple(b.addr, "watcher").await;
    watcher
        .subscribe("$SYS/broker/publish/#", QoS::AtMostOnce)
        .await;
    let mut sub = V4::simple(b.addr, "sub").await;
    sub.subscribe("data/#", QoS::AtLeastOnce).await;
    let mut publ = V4::simple(b.addr, "pub").await;
    for _ in 0..5 {
        publ.publish("data/x", b"0123456789", QoS::AtLeastOnce, false)
            .await;
    }
    for _ in 0..5 {
        sub.next_publish().await;
    }
    until_value(&mut watcher, "$SYS/broker/publish/messages/received", "5").await;
    until_value(&mut watcher, "$SYS/broker/publish/bytes/received", "50").await;
    // Sent counts the $SYS messages delivered to the watcher too: at least the five.
    let sent = watcher
        .wait_for("publish/messages/sent", |p| match p {
            rumqttc::Packet::Publish(p) if p.topic == "$SYS/broker/publish/messages/sent" => {
                String::from_utf8_lossy(&p.payload).parse::<u64>().ok()
            }
            _ => None,
        })
        .await;
    assert!(sent >= 5, "{sent}");
}

#[tokio::test]
async fn unchanged_values_are_not_published_again_and_sys_interval_0_turns_it_off() {
    let b = start("allow_anonymous true\nsys_interval 1", |_| {}).await;
    let mut watcher = V4::simple(b.addr, "watcher").await;
    watcher
        .subscribe("$SYS/broker/version", QoS::AtMostOnce)
        .await;
    // The retained copy once, then nothing: the version never changes.
    watcher.next_publish().await;
    watcher.expect_no_publish(Duration::from_millis(2500)).await;

    let off = start("allow_anonymous true\nsys_interval 0", |_| {}).await;
    let mut c = V4::simple(off.addr, "c").await;
    c.subscribe("$SYS/#", QoS::AtMostOnce).await;
    c.expect_no_publish(Duration::from_millis(1500)).await;
}
