//! Will messages: sent when a connection ends without a normal DISCONNECT, not after one,
//! sent after MQTT 5 DISCONNECT 0x04, delayed by the MQTT 5 will delay interval and
//! cancelled when the session is resumed in time.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use midge_proto::{Connect, Packet, Properties, ProtocolVersion, QoS, Will};

fn with_will(version: ProtocolVersion, id: &str, topic: &str, payload: &[u8]) -> Connect {
    let mut c = connect_packet(version, id);
    c.will = Some(Will {
        topic: topic.into(),
        payload: Bytes::copy_from_slice(payload),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Properties::default(),
    });
    c
}

async fn will_watcher(b: &TestBroker, id: &str) -> Raw {
    let mut w = Raw::connect(b.addr, ProtocolVersion::V311, id).await;
    assert_eq!(w.subscribe("will/#", QoS::AtLeastOnce).await, vec![1]);
    w
}

// [MQTT-3.1.2-8]: the will is published when the network connection closes without
// DISCONNECT. The will-holder here is written byte by byte and its socket just dropped.
#[tokio::test]
async fn will_sent_on_abnormal_close() {
    let b = start_default().await;
    let mut watcher = will_watcher(&b, "watch").await;

    let mut holder = Raw::tcp(b.addr).await;
    // 3.1.1, will flag + will QoS 1 + clean session, client id "wh", will "will/a" = "gone".
    let mut tail = str16("will/a");
    tail.extend(str16("gone"));
    holder
        .send(&raw_connect("MQTT", 4, 0x0e, 60, None, "wh", &tail))
        .await;
    holder.expect("20 02 00 00").await;
    drop(holder);

    let p = watcher.recv_publish_ack().await;
    assert_eq!(&p.topic[..], "will/a");
    assert_eq!(&p.payload[..], b"gone");
    assert_eq!(p.qos, QoS::AtLeastOnce);
    assert!(!p.retain);
}

// Same for MQTT 3.1 and MQTT 5 will-holders.
#[tokio::test]
async fn will_sent_on_abnormal_close_v31_and_v5() {
    let b = start_default().await;
    let mut watcher = will_watcher(&b, "watch").await;
    for v in [ProtocolVersion::V31, ProtocolVersion::V5] {
        let topic = format!("will/v{}", v.level());
        let (holder, _) = Raw::connect_with(b.addr, with_will(v, "wh", &topic, b"bye")).await;
        drop(holder);
        let p = watcher.recv_publish_ack().await;
        assert_eq!(&p.topic[..], topic);
        assert_eq!(&p.payload[..], b"bye");
    }
}

// [MQTT-3.1.2-10] / [MQTT-3.14.4-3]: a normal DISCONNECT discards the will.
#[tokio::test]
async fn will_not_sent_after_normal_disconnect() {
    let b = start_default().await;
    let mut watcher = will_watcher(&b, "watch").await;
    for v in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let (mut holder, _) = Raw::connect_with(b.addr, with_will(v, "wh", "will/n", b"no")).await;
        // DISCONNECT, reason 0 (v5 may omit it): `e0 00`.
        holder.send(&hex("e0 00")).await;
        holder.expect_close().await;
    }
    watcher.expect_silence(Duration::from_millis(600)).await;
}

// MQTT 5 DISCONNECT with reason 0x04 (disconnect with will message) publishes the will.
#[tokio::test]
async fn will_sent_after_v5_disconnect_with_will_0x04() {
    let b = start_default().await;
    let mut watcher = will_watcher(&b, "watch").await;
    let (mut holder, _) = Raw::connect_with(
        b.addr,
        with_will(ProtocolVersion::V5, "wh", "will/4", b"asked"),
    )
    .await;
    holder.send(&hex("e0 01 04")).await;
    holder.expect_close().await;
    let p = watcher.recv_publish_ack().await;
    assert_eq!(&p.topic[..], "will/4");
    assert_eq!(&p.payload[..], b"asked");
}

// A 3.1.1 session taken over by a new connection: the old connection's will is published,
// as Mosquitto does.
#[tokio::test]
async fn will_sent_when_connection_is_taken_over() {
    let b = start_default().await;
    let mut watcher = will_watcher(&b, "watch").await;
    let (mut old, _) = Raw::connect_with(
        b.addr,
        with_will(ProtocolVersion::V311, "tk", "will/tk", b"old"),
    )
    .await;
    let _new = Raw::connect(b.addr, ProtocolVersion::V311, "tk").await;
    old.expect_close().await;
    let p = watcher.recv_publish_ack().await;
    assert_eq!(&p.payload[..], b"old");
}

// The will's retain flag: a retained will is stored like any retained message.
#[tokio::test]
async fn retained_will_is_stored() {
    let b = start_default().await;
    let mut c = with_will(ProtocolVersion::V311, "wr", "will/ret", b"last");
    if let Some(w) = c.will.as_mut() {
        w.retain = true;
    }
    let (holder, _) = Raw::connect_with(b.addr, c).await;
    drop(holder);
    settle().await;
    let mut late = Raw::connect(b.addr, ProtocolVersion::V311, "late").await;
    late.subscribe("will/ret", QoS::AtLeastOnce).await;
    let p = late.recv_publish_ack().await;
    assert!(p.retain);
    assert_eq!(&p.payload[..], b"last");
}

// MQTT 5 will properties travel with the will: user properties (in order), content type,
// response topic, correlation data, payload format indicator; message expiry as remaining.
#[tokio::test]
async fn v5_will_properties_forwarded() {
    let b = start_default().await;
    let mut watcher = Raw::connect(b.addr, ProtocolVersion::V5, "watch5").await;
    watcher.subscribe("will/#", QoS::AtLeastOnce).await;
    let mut c = with_will(ProtocolVersion::V5, "wp", "will/props", b"text");
    if let Some(w) = c.will.as_mut() {
        w.properties = Properties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(100),
            content_type: Some("text/plain".into()),
            response_topic: Some("reply/here".into()),
            correlation_data: Some(Bytes::from_static(b"\x01\x02")),
            user_properties: vec![
                ("k".into(), "2".into()),
                ("a".into(), "1".into()),
                ("k".into(), "3".into()),
            ],
            ..Properties::default()
        };
    }
    let (holder, _) = Raw::connect_with(b.addr, c).await;
    drop(holder);
    let p = watcher.recv_publish_ack().await;
    let pr = &p.properties;
    assert_eq!(pr.payload_format_indicator, Some(1));
    assert_eq!(pr.content_type.as_deref(), Some("text/plain"));
    assert_eq!(pr.response_topic.as_deref(), Some("reply/here"));
    assert_eq!(pr.correlation_data.as_deref(), Some(&b"\x01\x02"[..]));
    assert_eq!(
        pr.user_properties,
        vec![
            ("k".to_owned(), "2".to_owned()),
            ("a".to_owned(), "1".to_owned()),
            ("k".to_owned(), "3".to_owned()),
        ]
    );
    let left = pr.message_expiry_interval.expect("expiry forwarded");
    assert!((98..=100).contains(&left), "expiry {left}");
    assert_eq!(pr.will_delay_interval, None);
}

fn delayed_will(id: &str, delay: u32, session_expiry: u32, payload: &[u8]) -> Connect {
    let mut c = with_will(ProtocolVersion::V5, id, "will/delay", payload);
    c.properties.session_expiry_interval = Some(session_expiry);
    if let Some(w) = c.will.as_mut() {
        w.properties.will_delay_interval = Some(delay);
    }
    c
}

// [MQTT-3.1.3-9]: with a will delay interval the will waits that long after the connection
// ends (here 1 s; the session outlives it).
#[tokio::test]
async fn v5_will_delay_interval_delays_the_will() {
    let b = start_default().await;
    let mut watcher = will_watcher(&b, "watch").await;
    let (holder, _) = Raw::connect_with(b.addr, delayed_will("wd", 1, 60, b"late")).await;
    let dropped = Instant::now();
    drop(holder);
    watcher.expect_silence(Duration::from_millis(700)).await;
    let p = watcher.recv_publish_ack().await;
    let after = dropped.elapsed();
    assert_eq!(&p.payload[..], b"late");
    assert!(
        after >= Duration::from_millis(900) && after <= Duration::from_millis(2500),
        "will after {after:?}, expected about 1 s"
    );
}

// [MQTT-3.1.3-9]: the delayed will is not sent if the client resumes the session in time.
#[tokio::test]
async fn v5_will_delay_cancelled_when_session_resumed_in_time() {
    let b = start_default().await;
    let mut watcher = will_watcher(&b, "watch").await;
    let (holder, _) = Raw::connect_with(b.addr, delayed_will("wd", 1, 60, b"never")).await;
    drop(holder);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect_packet(ProtocolVersion::V5, "wd");
    again.clean_start = false;
    again.properties.session_expiry_interval = Some(60);
    let (_back, ack) = Raw::connect_with(b.addr, again).await;
    assert!(ack.session_present);
    watcher.expect_silence(Duration::from_millis(1800)).await;
}

// 3.1.2.5: the will is sent when the session ends, if that comes before the will delay:
// will delay 30 s but session expiry 1 s → the will goes out after about 1 s.
#[tokio::test]
async fn v5_will_sent_when_session_expires_before_will_delay() {
    let b = start_default().await;
    let mut watcher = will_watcher(&b, "watch").await;
    let (holder, _) = Raw::connect_with(b.addr, delayed_will("we", 30, 1, b"ended")).await;
    let dropped = Instant::now();
    drop(holder);
    let deadline = Duration::from_secs(3);
    let p = match watcher.recv_raw_within(deadline).await {
        Ok(bytes) => match watcher.decode(&bytes) {
            Packet::Publish(p) => p,
            other => panic!("expected the will, got {other:?}"),
        },
        Err(e) => panic!("no will within {deadline:?} after the session expired: {e:?}"),
    };
    assert_eq!(&p.payload[..], b"ended");
    assert!(dropped.elapsed() >= Duration::from_millis(900));
}

// A will addressed to `$CONTROL/...` is never published (Mosquitto 2.0.16): it would reach
// a control endpoint after its client is gone. An ordinary will of the same broker still is.
#[tokio::test]
async fn a_will_to_control_topics_is_not_published() {
    let b = start_default().await;
    let mut watcher = Raw::connect(b.addr, ProtocolVersion::V311, "watch").await;
    assert_eq!(
        watcher.subscribe("$CONTROL/#", QoS::AtLeastOnce).await,
        vec![1]
    );
    assert_eq!(watcher.subscribe("will/#", QoS::AtLeastOnce).await, vec![1]);
    let c = with_will(
        ProtocolVersion::V311,
        "ctl",
        "$CONTROL/dynamic-security/v1",
        br#"{"commands":[{"command":"listClients"}]}"#,
    );
    let (holder, _) = Raw::connect_with(b.addr, c).await;
    drop(holder);
    let c = with_will(ProtocolVersion::V311, "plain", "will/x", b"gone");
    let (holder, _) = Raw::connect_with(b.addr, c).await;
    drop(holder);
    let p = watcher.recv_publish_ack().await;
    assert_eq!(&p.topic[..], "will/x", "only the ordinary will arrives");
    watcher.expect_silence(QUIET).await;
}
