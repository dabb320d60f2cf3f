//! MQTT 5 features: topic aliases in both directions, message expiry, receive maximum in
//! both directions, the client's maximum packet size, no local, subscription identifiers,
//! forwarded properties and reason codes on acknowledgements.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use midge_proto::{
    Packet, Properties, ProtocolVersion, PubResp, Publish, QoS, SubscribeFilter,
    SubscriptionOptions,
};

fn with_props(topic: &str, payload: &[u8], qos: QoS, properties: Properties) -> Publish {
    Publish {
        properties,
        ..publish_packet(topic, payload, qos, false)
    }
}

// ------------------------------------------------------------------------------------
// Topic aliases
// ------------------------------------------------------------------------------------

// [MQTT-3.3.2-12]: a client sets up alias 1 with topic + alias, then sends the alias alone:
// subscribers receive both messages on the full topic.
#[tokio::test]
async fn inbound_topic_alias_resolves_to_full_topic() {
    let b = start_default().await;
    let mut sub = Raw::connect(b.addr, ProtocolVersion::V311, "as").await;
    sub.subscribe("alias/#", QoS::AtLeastOnce).await;
    let mut publ = Raw::connect(b.addr, ProtocolVersion::V5, "ap").await;
    // Topic alias 1 (`23 00 01`).
    publ.send(&raw_publish(
        0x32,
        b"alias/t",
        Some(1),
        Some(&hex("23 00 01")),
        b"one",
    ))
    .await;
    publ.expect("40 02 00 01").await;
    publ.send(&raw_publish(
        0x32,
        b"",
        Some(2),
        Some(&hex("23 00 01")),
        b"two",
    ))
    .await;
    publ.expect("40 02 00 02").await;
    // Re-map alias 1 to another topic.
    publ.send(&raw_publish(
        0x32,
        b"alias/u",
        Some(3),
        Some(&hex("23 00 01")),
        b"three",
    ))
    .await;
    publ.expect("40 02 00 03").await;
    publ.send(&raw_publish(
        0x32,
        b"",
        Some(4),
        Some(&hex("23 00 01")),
        b"four",
    ))
    .await;
    publ.expect("40 02 00 04").await;
    for (topic, payload) in [
        ("alias/t", &b"one"[..]),
        ("alias/t", b"two"),
        ("alias/u", b"three"),
        ("alias/u", b"four"),
    ] {
        let p = sub.recv_publish_ack().await;
        assert_eq!((&p.topic[..], &p.payload[..]), (topic, payload));
    }
}

// [MQTT-3.3.2-9/10]: an alias above the announced maximum (10) or 0 is Topic Alias invalid.
// (Mosquitto 2.0.11 answers alias 0 with 0x81; the specification names 0x94 for both.)
#[tokio::test]
async fn inbound_topic_alias_out_of_range_disconnects_0x94() {
    let b = start_default().await;
    for alias in ["23 00 0b", "23 00 00", "23 ff ff"] {
        let mut publ = Raw::connect(b.addr, ProtocolVersion::V5, "ap").await;
        publ.send(&raw_publish(
            0x30,
            b"alias/t",
            None,
            Some(&hex(alias)),
            b"x",
        ))
        .await;
        publ.expect_disconnect(0x94).await;
    }
}

// An alias used alone before it was set up is a protocol error.
#[tokio::test]
async fn inbound_unknown_topic_alias_disconnects_0x82() {
    let b = start_default().await;
    let mut publ = Raw::connect(b.addr, ProtocolVersion::V5, "ap").await;
    publ.send(&raw_publish(0x30, b"", None, Some(&hex("23 00 02")), b"x"))
        .await;
    publ.expect_disconnect(0x82).await;
}

// [MQTT-3.3.2-11]: aliases belong to one connection: a new connection starts without them.
#[tokio::test]
async fn inbound_topic_alias_not_kept_across_connections() {
    let b = start_default().await;
    let mut c = persistent_v5("al", 60);
    let (mut publ, _) = Raw::connect_with(b.addr, c.clone()).await;
    publ.send(&raw_publish(
        0x30,
        b"alias/t",
        None,
        Some(&hex("23 00 01")),
        b"x",
    ))
    .await;
    publ.disconnect().await;
    c.clean_start = false;
    let (mut publ, _) = Raw::connect_with(b.addr, c).await;
    publ.send(&raw_publish(0x30, b"", None, Some(&hex("23 00 01")), b"x"))
        .await;
    publ.expect_disconnect(0x82).await;
}

fn persistent_v5(id: &str, expiry: u32) -> midge_proto::Connect {
    let mut c = connect_packet(ProtocolVersion::V5, id);
    c.properties.session_expiry_interval = Some(expiry);
    c
}

// [MQTT-3.3.2-12 / 3.1.2.11.5]: a subscriber that announces topic alias maximum 5 gets the
// topic and an alias the first time, then the alias with an empty topic.
#[tokio::test]
async fn outbound_topic_alias_used_when_client_allows() {
    let b = start_default().await;
    let mut c = connect_packet(ProtocolVersion::V5, "oa");
    c.properties.topic_alias_maximum = Some(5);
    let (mut sub, _) = Raw::connect_with(b.addr, c).await;
    sub.subscribe("oa/#", QoS::AtLeastOnce).await;
    let mut publ = Raw::connect(b.addr, ProtocolVersion::V5, "oap").await;
    publ.publish("oa/t", b"first", QoS::AtLeastOnce, false)
        .await;
    publ.publish("oa/t", b"second", QoS::AtLeastOnce, false)
        .await;
    publ.publish("oa/u", b"third", QoS::AtLeastOnce, false)
        .await;
    publ.publish("oa/u", b"fourth", QoS::AtLeastOnce, false)
        .await;

    let p1 = sub.recv_publish_ack().await;
    let p2 = sub.recv_publish_ack().await;
    let p3 = sub.recv_publish_ack().await;
    let p4 = sub.recv_publish_ack().await;
    let a = p1
        .properties
        .topic_alias
        .expect("first message sets up an alias");
    assert!((1..=5).contains(&a));
    assert_eq!((&p1.topic[..], &p1.payload[..]), ("oa/t", &b"first"[..]));
    assert_eq!(p2.properties.topic_alias, Some(a));
    assert_eq!((&p2.topic[..], &p2.payload[..]), ("", &b"second"[..]));
    let a2 = p3
        .properties
        .topic_alias
        .expect("second topic gets its own alias");
    assert_ne!(a2, a);
    assert!((1..=5).contains(&a2));
    assert_eq!(&p3.topic[..], "oa/u");
    assert_eq!((&p4.topic[..], p4.properties.topic_alias), ("", Some(a2)));
}

// [MQTT-3.3.2-?]: a client that announced no topic alias maximum never receives an alias;
// nor more aliases than it allows.
#[tokio::test]
async fn outbound_topic_alias_respects_client_maximum() {
    let b = start_default().await;
    let mut none = Raw::connect(b.addr, ProtocolVersion::V5, "none").await;
    none.subscribe("ob/#", QoS::AtMostOnce).await;
    let mut c = connect_packet(ProtocolVersion::V5, "one");
    c.properties.topic_alias_maximum = Some(1);
    let (mut one, _) = Raw::connect_with(b.addr, c).await;
    one.subscribe("ob/#", QoS::AtMostOnce).await;

    let mut publ = Raw::connect(b.addr, ProtocolVersion::V5, "obp").await;
    for t in ["ob/a", "ob/b", "ob/a", "ob/b"] {
        publ.publish(t, b"x", QoS::AtMostOnce, false).await;
    }
    for t in ["ob/a", "ob/b", "ob/a", "ob/b"] {
        let p = none.recv_publish().await;
        assert_eq!(&p.topic[..], t);
        assert_eq!(p.properties.topic_alias, None);
        let p = one.recv_publish().await;
        if let Some(a) = p.properties.topic_alias {
            assert_eq!(a, 1, "alias above the client's maximum of 1");
        }
        if p.topic.is_empty() {
            assert_eq!(t, "ob/a", "alias 1 can only stand for the first topic");
        } else {
            assert_eq!(&p.topic[..], t);
        }
    }
}

// ------------------------------------------------------------------------------------
// Message expiry
// ------------------------------------------------------------------------------------

// [MQTT-3.3.2-5]: a message queued for an offline session longer than its expiry interval is
// not delivered; [MQTT-3.3.2-6]: the one delivered carries the interval reduced by the time
// it waited. A message without expiry has none.
#[tokio::test]
async fn message_expiry_drops_expired_and_reduces_remaining() {
    let b = start_default().await;
    let (mut sub, _) = Raw::connect_with(b.addr, persistent_v5("mx", 60)).await;
    sub.subscribe("mx/t", QoS::AtLeastOnce).await;
    sub.disconnect().await;

    let mut publ = Raw::connect(b.addr, ProtocolVersion::V5, "mxp").await;
    let expiring = |secs| Properties {
        message_expiry_interval: Some(secs),
        ..Properties::default()
    };
    publ.publish_packet(with_props("mx/t", b"short", QoS::AtLeastOnce, expiring(1)))
        .await;
    publ.publish_packet(with_props("mx/t", b"long", QoS::AtLeastOnce, expiring(60)))
        .await;
    publ.publish("mx/t", b"forever", QoS::AtLeastOnce, false)
        .await;
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let mut c = persistent_v5("mx", 60);
    c.clean_start = false;
    let (mut sub, ack) = Raw::connect_with(b.addr, c).await;
    assert!(ack.session_present);
    let p = sub.recv_publish_ack().await;
    assert_eq!(&p.payload[..], b"long");
    let left = p
        .properties
        .message_expiry_interval
        .expect("expiry forwarded");
    assert!(
        (55..=58).contains(&left),
        "remaining expiry {left}, expected 60 - 2"
    );
    let p = sub.recv_publish_ack().await;
    assert_eq!(&p.payload[..], b"forever");
    assert_eq!(p.properties.message_expiry_interval, None);
    sub.expect_silence(QUIET).await;
}

// A retained message expires too: not sent on subscribe after its interval.
#[tokio::test]
async fn retained_message_expires() {
    let b = start_default().await;
    let mut publ = Raw::connect(b.addr, ProtocolVersion::V5, "rxp").await;
    let props = Properties {
        message_expiry_interval: Some(1),
        ..Properties::default()
    };
    let mut p = with_props("rx/t", b"soon gone", QoS::AtLeastOnce, props);
    p.retain = true;
    publ.publish_packet(p).await;

    let mut early = Raw::connect(b.addr, ProtocolVersion::V5, "rx1").await;
    early.subscribe("rx/t", QoS::AtLeastOnce).await;
    let got = early.recv_publish_ack().await;
    assert!(got.retain);
    assert_eq!(got.properties.message_expiry_interval, Some(1));

    tokio::time::sleep(Duration::from_millis(1600)).await;
    let mut late = Raw::connect(b.addr, ProtocolVersion::V5, "rx2").await;
    late.subscribe("rx/t", QoS::AtLeastOnce).await;
    late.expect_silence(QUIET).await;
}

// ------------------------------------------------------------------------------------
// Receive maximum and maximum packet size
// ------------------------------------------------------------------------------------

// [MQTT-3.3.4-7]: the broker sends no more unacknowledged QoS 1/2 messages than the client's
// receive maximum (2 here); acknowledging one releases the next.
#[tokio::test]
async fn client_receive_maximum_limits_unacknowledged_messages() {
    let b = start_default().await;
    let mut c = connect_packet(ProtocolVersion::V5, "rm");
    c.properties.receive_maximum = Some(2);
    let (mut sub, _) = Raw::connect_with(b.addr, c).await;
    sub.subscribe("rm/t", QoS::AtLeastOnce).await;
    let mut publ = Raw::connect(b.addr, ProtocolVersion::V5, "rmp").await;
    for i in 0..5u8 {
        publ.publish("rm/t", &[b'0' + i], QoS::AtLeastOnce, false)
            .await;
    }
    let p0 = sub.recv_publish().await;
    let p1 = sub.recv_publish().await;
    assert_eq!((&p0.payload[..], &p1.payload[..]), (&b"0"[..], &b"1"[..]));
    sub.expect_silence(QUIET).await;

    sub.ack(&p0).await;
    let p2 = sub.recv_publish().await;
    assert_eq!(&p2.payload[..], b"2");
    sub.expect_silence(QUIET).await;

    sub.ack(&p1).await;
    sub.ack(&p2).await;
    let p3 = sub.recv_publish_ack().await;
    let p4 = sub.recv_publish_ack().await;
    assert_eq!((&p3.payload[..], &p4.payload[..]), (&b"3"[..], &b"4"[..]));
}

// [MQTT-3.3.4-9]: a client sending more QoS 2 PUBLISHes than the broker's receive maximum
// without completing them gets DISCONNECT 0x93. max_inflight_messages 2 → receive maximum 2.
#[tokio::test]
async fn inbound_qos2_beyond_receive_maximum_disconnects_0x93() {
    let b = start("allow_anonymous true\nmax_inflight_messages 2", |_| {}).await;
    let (mut publ, ack) =
        Raw::connect_with(b.addr, connect_packet(ProtocolVersion::V5, "rmi")).await;
    assert_eq!(ack.properties.receive_maximum, Some(2));
    for id in 1..=2u16 {
        publ.send(&raw_publish(0x34, b"rmi/t", Some(id), Some(&[]), b"x"))
            .await;
        match publ.recv().await {
            Packet::PubRec(r) => assert_eq!(r.packet_id, id),
            other => panic!("expected PUBREC, got {other:?}"),
        }
    }
    publ.send(&raw_publish(0x34, b"rmi/t", Some(3), Some(&[]), b"x"))
        .await;
    publ.expect_disconnect(0x93).await;
}

// [MQTT-3.1.2-25]: a message larger than a subscriber's maximum packet size is not sent to
// that subscriber (and not queued for later); other subscribers still get it.
#[tokio::test]
async fn message_too_big_for_one_subscriber_dropped_for_that_subscriber_only() {
    let b = start_default().await;
    let mut c = connect_packet(ProtocolVersion::V5, "small");
    c.properties.maximum_packet_size = Some(100);
    let (mut small, _) = Raw::connect_with(b.addr, c).await;
    small.subscribe("mps/t", QoS::AtLeastOnce).await;
    let mut big = Raw::connect(b.addr, ProtocolVersion::V5, "big").await;
    big.subscribe("mps/t", QoS::AtLeastOnce).await;

    let mut publ = Raw::connect(b.addr, ProtocolVersion::V5, "mpsp").await;
    publ.publish("mps/t", &[b'x'; 200], QoS::AtLeastOnce, false)
        .await;
    publ.publish("mps/t", b"small", QoS::AtLeastOnce, false)
        .await;

    assert_eq!(big.recv_publish_ack().await.payload.len(), 200);
    assert_eq!(&big.recv_publish_ack().await.payload[..], b"small");
    let raw = small.recv_raw().await;
    assert!(
        raw.len() <= 100,
        "packet of {} bytes sent to a 100-byte client",
        raw.len()
    );
    match small.decode(&raw) {
        Packet::Publish(p) => {
            assert_eq!(&p.payload[..], b"small");
            small.ack(&p).await;
        }
        other => panic!("expected PUBLISH, got {other:?}"),
    }
    small.expect_silence(QUIET).await;
}

// ------------------------------------------------------------------------------------
// Subscription options, identifiers, properties, reason codes
// ------------------------------------------------------------------------------------

// [MQTT-3.8.3-3]: no local: a client does not receive its own messages on that subscription.
#[tokio::test]
async fn no_local_suppresses_own_messages() {
    let b = start_default().await;
    let mut me = Raw::connect(b.addr, ProtocolVersion::V5, "nl").await;
    let opts = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        ..SubscriptionOptions::default()
    };
    me.subscribe_with(
        vec![SubscribeFilter {
            filter: "nl/t".into(),
            options: opts,
        }],
        Properties::default(),
    )
    .await;
    let mut other = Raw::connect(b.addr, ProtocolVersion::V5, "nlo").await;
    other.subscribe("nl/t", QoS::AtLeastOnce).await;

    // No other subscriber would take it for "me" only: "other" does.
    assert_eq!(
        me.publish("nl/t", b"mine", QoS::AtLeastOnce, false).await,
        0
    );
    assert_eq!(&other.recv_publish_ack().await.payload[..], b"mine");
    me.expect_silence(QUIET).await;

    // Messages from others still arrive.
    other
        .publish("nl/t", b"theirs", QoS::AtLeastOnce, false)
        .await;
    assert_eq!(&me.recv_publish_ack().await.payload[..], b"theirs");
    assert_eq!(&other.recv_publish_ack().await.payload[..], b"theirs");

    // Without no local a client gets its own messages.
    let mut echo = Raw::connect(b.addr, ProtocolVersion::V5, "echo").await;
    echo.subscribe("echo/t", QoS::AtLeastOnce).await;
    echo.publish("echo/t", b"back", QoS::AtLeastOnce, false)
        .await;
    assert_eq!(&echo.recv_publish_ack().await.payload[..], b"back");
}

// [MQTT-3.3.4-3]: the subscription identifier of the matching subscription comes with each
// message; a subscription without one gets none.
#[tokio::test]
async fn subscription_identifier_sent_with_matching_messages() {
    let b = start_default().await;
    let mut sub = Raw::connect(b.addr, ProtocolVersion::V5, "sid").await;
    let props = Properties {
        subscription_identifiers: vec![268_435_455],
        ..Properties::default()
    };
    sub.subscribe_with(vec![filter("sid/a", QoS::AtLeastOnce)], props)
        .await;
    sub.subscribe("sid/b", QoS::AtLeastOnce).await;
    let mut publ = Raw::connect(b.addr, ProtocolVersion::V5, "sidp").await;
    publ.publish("sid/a", b"a", QoS::AtLeastOnce, false).await;
    publ.publish("sid/b", b"b", QoS::AtLeastOnce, false).await;
    let a = sub.recv_publish_ack().await;
    assert_eq!(a.properties.subscription_identifiers, vec![268_435_455]);
    let c = sub.recv_publish_ack().await;
    assert!(c.properties.subscription_identifiers.is_empty());
}

// [MQTT-3.3.2-15..20], [MQTT-3.3.2-4]: response topic, correlation data, user properties (in
// order, duplicates kept), payload format indicator and content type reach the subscriber
// unchanged.
#[tokio::test]
async fn publish_properties_forwarded_unchanged() {
    let b = start_default().await;
    let mut sub = Raw::connect(b.addr, ProtocolVersion::V5, "pf").await;
    sub.subscribe("pf/t", QoS::AtLeastOnce).await;
    let mut sub4 = Raw::connect(b.addr, ProtocolVersion::V311, "pf4").await;
    sub4.subscribe("pf/t", QoS::AtLeastOnce).await;

    let props = Properties {
        payload_format_indicator: Some(1),
        content_type: Some("application/json".into()),
        response_topic: Some("pf/reply".into()),
        correlation_data: Some(Bytes::from_static(&[0, 1, 2, 255])),
        user_properties: vec![
            ("z".into(), "last-first".into()),
            ("a".into(), "1".into()),
            ("z".into(), "again".into()),
            ("".into(), "".into()),
        ],
        ..Properties::default()
    };
    let mut publ = Raw::connect(b.addr, ProtocolVersion::V5, "pfp").await;
    publ.publish_packet(with_props(
        "pf/t",
        br#"{"k":1}"#,
        QoS::AtLeastOnce,
        props.clone(),
    ))
    .await;

    let p = sub.recv_publish_ack().await;
    assert_eq!(&p.payload[..], br#"{"k":1}"#);
    assert_eq!(p.properties.payload_format_indicator, Some(1));
    assert_eq!(p.properties.content_type, props.content_type);
    assert_eq!(p.properties.response_topic, props.response_topic);
    assert_eq!(p.properties.correlation_data, props.correlation_data);
    assert_eq!(p.properties.user_properties, props.user_properties);
    assert_eq!(p.properties.topic_alias, None);
    // The 3.1.1 subscriber gets the payload (3.1.1 has no properties).
    assert_eq!(&sub4.recv_publish_ack().await.payload[..], br#"{"k":1}"#);
}

// The same properties as rumqttc sees them.
#[tokio::test]
async fn publish_properties_forwarded_to_rumqttc() {
    use common::v5::{PublishProperties, V5};
    let b = start_default().await;
    let mut sub = V5::simple(b.addr, "rpf").await;
    sub.subscribe("rpf/t", common::v5::QoS::AtLeastOnce).await;
    let publ = V5::simple(b.addr, "rpfp").await;
    let props = PublishProperties {
        payload_format_indicator: Some(1),
        content_type: Some("text/plain".into()),
        response_topic: Some("rpf/reply".into()),
        correlation_data: Some(Bytes::from_static(b"corr")),
        user_properties: vec![("b".into(), "2".into()), ("a".into(), "1".into())],
        ..PublishProperties::default()
    };
    publ.client
        .publish_with_properties("rpf/t", common::v5::QoS::AtLeastOnce, false, "hello", props)
        .await
        .expect("publish");
    let p = sub.next_publish().await;
    assert_eq!(&p.payload[..], b"hello");
    let got = p.properties.expect("properties");
    assert_eq!(got.payload_format_indicator, Some(1));
    assert_eq!(got.content_type.as_deref(), Some("text/plain"));
    assert_eq!(got.response_topic.as_deref(), Some("rpf/reply"));
    assert_eq!(got.correlation_data.as_deref(), Some(&b"corr"[..]));
    assert_eq!(
        got.user_properties,
        vec![
            ("b".to_owned(), "2".to_owned()),
            ("a".to_owned(), "1".to_owned())
        ]
    );
}

// MQTT 5 PUBACK 0x10 (no matching subscribers), as Mosquitto: `40 03 00 01 10`; a QoS 2
// flow still completes (PUBREC reason 0x00 or 0x10, then PUBCOMP).
#[tokio::test]
async fn puback_no_matching_subscribers_0x10() {
    let b = start_default().await;
    let mut publ = Raw::connect(b.addr, ProtocolVersion::V5, "nms").await;
    publ.send(&raw_publish(0x32, b"nobody/here", Some(1), Some(&[]), b"x"))
        .await;
    publ.expect("40 03 00 01 10").await;
    publ.send(&raw_publish(0x34, b"nobody/here", Some(2), Some(&[]), b"x"))
        .await;
    let rec = publ.recv_raw().await;
    assert!(
        rec == hex("50 02 00 02") || rec == hex("50 03 00 02 10"),
        "PUBREC: {}",
        to_hex(&rec)
    );
    publ.send(&hex("62 02 00 02")).await;
    publ.expect("70 02 00 02").await;

    // With a subscriber: PUBACK success, written without reason code (`40 02 00 03`).
    let mut sub = Raw::connect(b.addr, ProtocolVersion::V5, "nmss").await;
    sub.subscribe("nobody/here", QoS::AtMostOnce).await;
    publ.send(&raw_publish(0x32, b"nobody/here", Some(3), Some(&[]), b"x"))
        .await;
    publ.expect("40 02 00 03").await;
}

// [MQTT-4.3.3-11]: a PUBREL is always answered with PUBCOMP, even for an unknown packet id:
// MQTT 5 may say 0x92 (packet identifier not found); Mosquitto 2.0.11 answers success.
#[tokio::test]
async fn pubrel_for_unknown_packet_id_answered_with_pubcomp() {
    let b = start_default().await;
    let mut c = Raw::connect(b.addr, ProtocolVersion::V5, "pr").await;
    c.send(&hex("62 02 00 09")).await;
    let got = c.recv_raw().await;
    assert!(
        got == hex("70 03 00 09 92") || got == hex("70 02 00 09"),
        "PUBCOMP: {}",
        to_hex(&got)
    );
    c.ping().await;
    let mut c4 = Raw::connect(b.addr, ProtocolVersion::V311, "pr4").await;
    c4.send(&hex("62 02 00 09")).await;
    c4.expect("70 02 00 09").await;
}

// Subscribing MQTT 5 with `max_qos 1`: the granted QoS is capped and announced in CONNACK.
#[tokio::test]
async fn max_qos_caps_granted_qos() {
    let b = start("allow_anonymous true\nmax_qos 1", |_| {}).await;
    let (mut c, ack) = Raw::connect_with(b.addr, connect_packet(ProtocolVersion::V5, "mq")).await;
    assert_eq!(ack.properties.maximum_qos, Some(1));
    assert_eq!(c.subscribe("mq/t", QoS::ExactlyOnce).await, vec![1]);
    // QoS 2 PUBLISH above the maximum: DISCONNECT 0x9B (QoS not supported).
    c.send(&raw_publish(0x34, b"mq/t", Some(1), Some(&[]), b"x"))
        .await;
    c.expect_disconnect(0x9b).await;
}

// Acknowledgements from the subscriber side with a failure reason end the flow.
#[tokio::test]
async fn pubrec_with_error_reason_ends_qos2_flow() {
    let b = start_default().await;
    let mut sub = Raw::connect(b.addr, ProtocolVersion::V5, "prr").await;
    sub.subscribe("prr/t", QoS::ExactlyOnce).await;
    let mut publ = Raw::connect(b.addr, ProtocolVersion::V5, "prrp").await;
    publ.publish("prr/t", b"x", QoS::ExactlyOnce, false).await;
    let p = sub.recv_publish().await;
    sub.send_packet(&Packet::PubRec(PubResp {
        reason: 0x80,
        ..PubResp::new(p.packet_id)
    }))
    .await;
    // No PUBREL follows a refused PUBREC.
    sub.expect_silence(QUIET).await;
}
