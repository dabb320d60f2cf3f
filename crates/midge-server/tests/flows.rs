//! Message flows end to end: QoS 0/1/2 in both protocol versions (driven by rumqttc, an
//! independent client), retained messages, wildcards, `$` topics, shared and overlapping
//! subscriptions.

mod common;

use std::collections::HashSet;

use common::v5::{Filter, RetainForwardRule, V5};
use common::*;
use midge_proto::{Packet, Properties, ProtocolVersion, QoS, SubscribeFilter, SubscriptionOptions};

fn v4_qos(n: u8) -> rumqttc::QoS {
    match n {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

fn v5_qos(n: u8) -> common::v5::QoS {
    match n {
        0 => common::v5::QoS::AtMostOnce,
        1 => common::v5::QoS::AtLeastOnce,
        _ => common::v5::QoS::ExactlyOnce,
    }
}

fn qos(n: u8) -> QoS {
    QoS::from_u8(n).expect("qos")
}

// ------------------------------------------------------------------------------------
// QoS 0, 1, 2
// ------------------------------------------------------------------------------------

// [MQTT-4.3.1] .. [MQTT-4.3.3]: each QoS delivered once, with its payload, at the QoS
// granted (the subscription is QoS 2, so the publisher's QoS is kept).
#[tokio::test]
async fn v311_qos_0_1_2_publish_to_subscriber() {
    let b = start_default().await;
    let mut sub = V4::simple(b.addr, "sub4").await;
    sub.subscribe("flow/4/#", rumqttc::QoS::ExactlyOnce).await;
    let mut publ = V4::simple(b.addr, "pub4").await;
    for n in 0..=2u8 {
        let topic = format!("flow/4/q{n}");
        let payload = format!("payload at qos {n}").into_bytes();
        publ.publish(&topic, &payload, v4_qos(n), false).await;
        let got = sub.next_publish().await;
        assert_eq!(got.topic, topic);
        assert_eq!(&got.payload[..], &payload[..]);
        assert_eq!(got.qos, v4_qos(n));
        assert!(!got.retain);
        assert!(!got.dup);
    }
    sub.expect_no_publish(QUIET).await;
}

#[tokio::test]
async fn v5_qos_0_1_2_publish_to_subscriber() {
    let b = start_default().await;
    let mut sub = V5::simple(b.addr, "sub5").await;
    sub.subscribe("flow/5/#", v5_qos(2)).await;
    let mut publ = V5::simple(b.addr, "pub5").await;
    for n in 0..=2u8 {
        let topic = format!("flow/5/q{n}");
        let payload = format!("payload at qos {n}").into_bytes();
        publ.publish(&topic, &payload, v5_qos(n), false).await;
        let got = sub.next_publish().await;
        assert_eq!(&got.topic[..], topic.as_bytes());
        assert_eq!(&got.payload[..], &payload[..]);
        assert_eq!(got.qos, v5_qos(n));
        assert!(!got.retain);
    }
    sub.expect_no_publish(QUIET).await;
}

// [MQTT-3.8.4-8]: delivered at the lower of the published and the granted QoS.
#[tokio::test]
async fn delivery_qos_is_the_minimum_of_publish_and_subscription_qos() {
    let b = start_default().await;
    let mut sub0 = Raw::connect(b.addr, ProtocolVersion::V311, "s0").await;
    let mut sub1 = Raw::connect(b.addr, ProtocolVersion::V311, "s1").await;
    assert_eq!(sub0.subscribe("min/t", QoS::AtMostOnce).await, vec![0]);
    assert_eq!(sub1.subscribe("min/t", QoS::AtLeastOnce).await, vec![1]);
    let mut publ = Raw::connect(b.addr, ProtocolVersion::V311, "p").await;
    for n in 0..=2u8 {
        publ.publish("min/t", b"m", qos(n), false).await;
        assert_eq!(sub0.recv_publish_ack().await.qos, QoS::AtMostOnce);
        assert_eq!(sub1.recv_publish_ack().await.qos, qos(n.min(1)));
    }
}

// Every protocol version talks to every other: 3.1, 3.1.1 and 5.0 publishers and subscribers.
#[tokio::test]
async fn all_protocol_versions_interoperate() {
    let b = start_default().await;
    let versions = [
        ProtocolVersion::V31,
        ProtocolVersion::V311,
        ProtocolVersion::V5,
    ];
    let mut subs = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let mut s = Raw::connect(b.addr, *v, &format!("sub-{i}")).await;
        s.subscribe("ver/#", QoS::ExactlyOnce).await;
        subs.push(s);
    }
    for (i, v) in versions.iter().enumerate() {
        let mut p = Raw::connect(b.addr, *v, &format!("pub-{i}")).await;
        for n in 0..=2u8 {
            let topic = format!("ver/{i}/{n}");
            p.publish(&topic, topic.as_bytes(), qos(n), false).await;
            for s in subs.iter_mut() {
                let got = s.recv_publish_ack().await;
                assert_eq!(&got.topic[..], topic);
                assert_eq!(&got.payload[..], topic.as_bytes());
                assert_eq!(got.qos, qos(n));
            }
        }
    }
}

// Exact bytes of a QoS 1 delivery to a 3.1.1 subscriber, and the SUBACK.
#[tokio::test]
async fn v311_subscribe_and_delivery_exact_bytes() {
    let b = start_default().await;
    let mut sub = Raw::tcp(b.addr).await;
    sub.send(&hex("10 0f 00 04 4d 51 54 54 04 02 00 3c 00 03 73 75 62"))
        .await;
    sub.expect("20 02 00 00").await;
    // SUBSCRIBE id 1, "a/b" QoS 1.
    sub.send(&hex("82 08 00 01 00 03 61 2f 62 01")).await;
    sub.expect("90 03 00 01 01").await;

    let mut publ = Raw::connect(b.addr, ProtocolVersion::V311, "pub").await;
    // QoS 1 PUBLISH id 9 "a/b" "hi".
    publ.send(&hex("32 09 00 03 61 2f 62 00 09 68 69")).await;
    publ.expect("40 02 00 09").await;
    // First packet id the broker uses towards this client is 1.
    sub.expect("32 09 00 03 61 2f 62 00 01 68 69").await;
    sub.send(&hex("40 02 00 01")).await;
    sub.ping().await;
}

// [MQTT-3.10.4]: after UNSUBSCRIBE nothing more arrives; MQTT 5 UNSUBACK says 0x00 for an
// existing subscription and 0x11 for one that did not exist.
#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let b = start_default().await;
    let mut sub = Raw::connect(b.addr, ProtocolVersion::V5, "unsub").await;
    sub.subscribe("u/t", QoS::AtLeastOnce).await;
    let mut publ = Raw::connect(b.addr, ProtocolVersion::V5, "p").await;
    publ.publish("u/t", b"1", QoS::AtLeastOnce, false).await;
    sub.recv_publish_ack().await;

    sub.send(&{
        let mut body = vec![0x00, 0x07, 0x00];
        body.extend(str16("u/t"));
        body.extend(str16("never/subscribed"));
        frame(0xa2, &body)
    })
    .await;
    sub.expect("b0 05 00 07 00 00 11").await;
    assert_eq!(
        publ.publish("u/t", b"2", QoS::AtLeastOnce, false).await,
        0x10
    );
    sub.expect_silence(QUIET).await;

    // 3.1.1 UNSUBACK has no payload.
    let mut s4 = Raw::connect(b.addr, ProtocolVersion::V311, "unsub4").await;
    s4.subscribe("u/t", QoS::AtLeastOnce).await;
    s4.send(&{
        let mut body = vec![0x00, 0x03];
        body.extend(str16("u/t"));
        frame(0xa2, &body)
    })
    .await;
    s4.expect("b0 02 00 03").await;
}

// ------------------------------------------------------------------------------------
// Retained messages
// ------------------------------------------------------------------------------------

// [MQTT-3.3.1-5], [MQTT-3.3.1-6], [MQTT-3.3.1-10]: a retained message replaces the previous
// one and is sent on subscribe with the retain flag; an empty retained payload clears it.
#[tokio::test]
async fn retained_set_replace_and_clear() {
    let b = start_default().await;
    let mut publ = V4::simple(b.addr, "rpub").await;
    publ.publish("ret/a", b"one", rumqttc::QoS::AtLeastOnce, true)
        .await;
    publ.publish("ret/a", b"two", rumqttc::QoS::AtLeastOnce, true)
        .await;

    let mut sub = V4::simple(b.addr, "rsub1").await;
    sub.subscribe("ret/a", rumqttc::QoS::AtLeastOnce).await;
    let got = sub.next_publish().await;
    assert_eq!(&got.payload[..], b"two");
    assert!(
        got.retain,
        "retained message sent on subscribe has the retain flag"
    );
    assert_eq!(got.qos, rumqttc::QoS::AtLeastOnce);
    sub.expect_no_publish(QUIET).await;

    // Clearing: an empty retained payload. The current subscriber still receives it.
    publ.publish("ret/a", b"", rumqttc::QoS::AtLeastOnce, true)
        .await;
    let cleared = sub.next_publish().await;
    assert!(cleared.payload.is_empty());

    let mut sub2 = V4::simple(b.addr, "rsub2").await;
    sub2.subscribe("ret/#", rumqttc::QoS::AtLeastOnce).await;
    sub2.expect_no_publish(QUIET).await;
}

// [MQTT-3.3.1-9]: a live message is forwarded with the retain flag cleared (3.1.1, and 5.0
// without retain-as-published), even when it was published retained.
#[tokio::test]
async fn live_retained_message_forwarded_without_retain_flag() {
    let b = start_default().await;
    let mut sub = V4::simple(b.addr, "live").await;
    sub.subscribe("ret/live", rumqttc::QoS::AtLeastOnce).await;
    let mut publ = V4::simple(b.addr, "lp").await;
    publ.publish("ret/live", b"x", rumqttc::QoS::AtLeastOnce, true)
        .await;
    let got = sub.next_publish().await;
    assert!(!got.retain);
    assert_eq!(&got.payload[..], b"x");
}

// Retained messages of every topic a wildcard filter matches, at min(stored, granted) QoS.
#[tokio::test]
async fn retained_messages_delivered_on_wildcard_subscribe() {
    let b = start_default().await;
    let mut publ = Raw::connect(b.addr, ProtocolVersion::V311, "rp").await;
    publ.publish("rw/a", b"a", QoS::AtMostOnce, true).await;
    publ.publish("rw/b", b"b", QoS::AtLeastOnce, true).await;
    publ.publish("rw/b/c", b"c", QoS::ExactlyOnce, true).await;
    publ.publish("other", b"o", QoS::AtLeastOnce, true).await;
    publ.ping().await;

    let mut sub = Raw::connect(b.addr, ProtocolVersion::V311, "rs").await;
    assert_eq!(sub.subscribe("rw/#", QoS::AtLeastOnce).await, vec![1]);
    let mut got = Vec::new();
    for _ in 0..3 {
        let p = sub.recv_publish_ack().await;
        assert!(p.retain);
        got.push((p.topic.to_string(), p.payload.to_vec(), p.qos));
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            ("rw/a".to_owned(), b"a".to_vec(), QoS::AtMostOnce),
            ("rw/b".to_owned(), b"b".to_vec(), QoS::AtLeastOnce),
            ("rw/b/c".to_owned(), b"c".to_vec(), QoS::AtLeastOnce),
        ]
    );
    sub.expect_silence(QUIET).await;
}

fn v5_filter(topic: &str, options: SubscriptionOptions) -> SubscribeFilter {
    SubscribeFilter {
        filter: topic.to_owned(),
        options,
    }
}

// [MQTT-3.3.1-9..11]: retain handling 0 sends retained messages on every SUBSCRIBE, 1 only
// when the subscription is new, 2 never.
#[tokio::test]
async fn v5_retain_handling_0_1_2() {
    let b = start_default().await;
    let mut publ = Raw::connect(b.addr, ProtocolVersion::V5, "rhp").await;
    publ.publish("rh/t", b"kept", QoS::AtLeastOnce, true).await;

    for (rh, first, second) in [(0u8, true, true), (1, true, false), (2, false, false)] {
        let mut sub = Raw::connect(b.addr, ProtocolVersion::V5, &format!("rh{rh}")).await;
        let opts = SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            retain_handling: rh,
            ..SubscriptionOptions::default()
        };
        for (round, expected) in [first, second].into_iter().enumerate() {
            let ack = sub
                .subscribe_with(vec![v5_filter("rh/t", opts)], Properties::default())
                .await;
            assert_eq!(ack.codes, vec![1]);
            if expected {
                let p = sub.recv_publish_ack().await;
                assert_eq!(&p.payload[..], b"kept", "rh {rh} round {round}");
                assert!(p.retain);
            } else {
                sub.expect_silence(QUIET).await;
            }
        }
    }
}

// [MQTT-3.3.1-12], [MQTT-3.3.1-13]: retain-as-published keeps the retain flag of a live
// message; without it the flag is cleared.
#[tokio::test]
async fn v5_retain_as_published() {
    let b = start_default().await;
    let mut rap = Raw::connect(b.addr, ProtocolVersion::V5, "rap1").await;
    let mut plain = Raw::connect(b.addr, ProtocolVersion::V5, "rap0").await;
    let with = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        retain_as_published: true,
        ..SubscriptionOptions::default()
    };
    rap.subscribe_with(vec![v5_filter("rap/t", with)], Properties::default())
        .await;
    plain.subscribe("rap/t", QoS::AtLeastOnce).await;

    let mut publ = Raw::connect(b.addr, ProtocolVersion::V5, "rapp").await;
    publ.publish("rap/t", b"r", QoS::AtLeastOnce, true).await;
    publ.publish("rap/t", b"n", QoS::AtLeastOnce, false).await;

    let a = rap.recv_publish_ack().await;
    let c = rap.recv_publish_ack().await;
    assert_eq!((&a.payload[..], a.retain), (&b"r"[..], true));
    assert_eq!((&c.payload[..], c.retain), (&b"n"[..], false));
    let a = plain.recv_publish_ack().await;
    let c = plain.recv_publish_ack().await;
    assert_eq!((&a.payload[..], a.retain), (&b"r"[..], false));
    assert_eq!((&c.payload[..], c.retain), (&b"n"[..], false));
}

// rumqttc's own view of retain handling "never": no retained message.
#[tokio::test]
async fn v5_retain_handling_never_with_rumqttc() {
    let b = start_default().await;
    let mut publ = V5::simple(b.addr, "rp5").await;
    publ.publish("rh5/t", b"kept", v5_qos(1), true).await;
    let mut sub = V5::simple(b.addr, "rs5").await;
    let mut f = Filter::new("rh5/t", v5_qos(1));
    f.retain_forward_rule = RetainForwardRule::Never;
    sub.subscribe_filter(f).await;
    sub.expect_no_publish(QUIET).await;
    let mut sub2 = V5::simple(b.addr, "rs5b").await;
    sub2.subscribe("rh5/t", v5_qos(1)).await;
    let got = sub2.next_publish().await;
    assert!(got.retain);
    assert_eq!(&got.payload[..], b"kept");
}

// ------------------------------------------------------------------------------------
// Wildcards and `$` topics
// ------------------------------------------------------------------------------------

// [MQTT-4.7.1-1..3]: `#` matches the parent and any number of levels, `+` exactly one.
#[tokio::test]
async fn wildcards_plus_and_hash() {
    let b = start_default().await;
    let table: &[(&str, &[&str], &[&str])] = &[
        (
            "sport/tennis/+",
            &["sport/tennis/player1", "sport/tennis/"],
            &[
                "sport/tennis/player1/ranking",
                "sport/tennis",
                "sport/tennisx/p",
            ],
        ),
        (
            "sport/#",
            &[
                "sport",
                "sport/tennis",
                "sport/tennis/player1/ranking",
                "sport/",
            ],
            &["sports", "other/sport"],
        ),
        ("+/+", &["/finance", "a/b"], &["a", "a/b/c"]),
        ("/+", &["/finance"], &["finance", "a/b"]),
        ("+", &["finance", ""], &["/finance", "a/b"]),
        ("#", &["a", "a/b/c", "/x"], &[]),
        (
            "a/+/c/#",
            &["a/b/c", "a/b/c/d/e", "a//c"],
            &["a/b/d", "a/c"],
        ),
    ];
    let mut publ = Raw::connect(b.addr, ProtocolVersion::V311, "wpub").await;
    for (i, (filter, matches, misses)) in table.iter().enumerate() {
        let mut sub = Raw::connect(b.addr, ProtocolVersion::V311, &format!("w{i}")).await;
        assert_eq!(sub.subscribe(filter, QoS::AtLeastOnce).await, vec![1]);
        for topic in matches.iter().chain(misses.iter()) {
            if topic.is_empty() {
                // An empty topic name cannot be published; "" stands for "+" matching an
                // empty level, covered by "sport/tennis/".
                continue;
            }
            publ.publish(topic, topic.as_bytes(), QoS::AtLeastOnce, false)
                .await;
            if matches.contains(topic) {
                let p = sub.recv_publish_ack().await;
                assert_eq!(&p.topic[..], *topic, "filter {filter}");
            } else {
                sub.expect_silence(QUIET).await;
            }
        }
    }
}

// [MQTT-4.7.2-1]: filters starting with a wildcard do not match topics starting with `$`;
// an explicit `$foo/...` filter does.
#[tokio::test]
async fn dollar_topics_not_matched_by_leading_wildcards() {
    let b = start_default().await;
    let mut wild = Raw::connect(b.addr, ProtocolVersion::V5, "wild").await;
    wild.subscribe_with(
        vec![
            filter("#", QoS::AtLeastOnce),
            filter("+/x", QoS::AtLeastOnce),
            filter("+/+", QoS::AtLeastOnce),
            filter("+", QoS::AtLeastOnce),
        ],
        Properties::default(),
    )
    .await;
    let mut explicit = Raw::connect(b.addr, ProtocolVersion::V5, "explicit").await;
    explicit.subscribe("$foo/#", QoS::AtLeastOnce).await;

    let mut publ = Raw::connect(b.addr, ProtocolVersion::V5, "dp").await;
    assert_eq!(
        publ.publish("$foo/x", b"d", QoS::AtLeastOnce, false).await,
        0
    );
    let got = explicit.recv_publish_ack().await;
    assert_eq!(&got.topic[..], "$foo/x");
    wild.expect_silence(QUIET).await;
    publ.publish("$foo", b"d", QoS::AtLeastOnce, false).await;
    let got = explicit.recv_publish_ack().await;
    assert_eq!(&got.topic[..], "$foo");
    wild.expect_silence(QUIET).await;

    // A normal topic still reaches the wildcard subscriber.
    publ.publish("n/x", b"n", QoS::AtLeastOnce, false).await;
    assert_eq!(&wild.recv_publish_ack().await.topic[..], "n/x");
}

// Clients may not publish into `$SYS`: MQTT 5 gets PUBACK 0x87 (not authorised), 3.1.1 its
// normal PUBACK, and nobody receives the message (Mosquitto's behaviour).
#[tokio::test]
async fn publish_to_sys_is_not_delivered() {
    let b = start_default().await;
    // Subscribed to the two topics used here only, not "$SYS/#", where the broker's own
    // statistics appear.
    let mut sub = Raw::connect(b.addr, ProtocolVersion::V311, "syssub").await;
    sub.subscribe("$SYS/x", QoS::AtLeastOnce).await;
    sub.subscribe("$SYS/retained", QoS::AtLeastOnce).await;

    let mut p5 = Raw::connect(b.addr, ProtocolVersion::V5, "sys5").await;
    p5.send(&raw_publish(0x32, b"$SYS/x", Some(1), Some(&[]), b"fake"))
        .await;
    p5.expect("40 03 00 01 87").await;

    let mut p4 = Raw::connect(b.addr, ProtocolVersion::V311, "sys4").await;
    p4.send(&raw_publish(0x32, b"$SYS/x", Some(1), None, b"fake"))
        .await;
    p4.expect("40 02 00 01").await;

    // Retained into $SYS is refused too.
    p4.send(&raw_publish(0x33, b"$SYS/retained", Some(2), None, b"fake"))
        .await;
    p4.expect("40 02 00 02").await;
    sub.expect_silence(QUIET).await;
    let mut late = Raw::connect(b.addr, ProtocolVersion::V311, "late").await;
    late.subscribe("$SYS/retained", QoS::AtLeastOnce).await;
    late.expect_silence(QUIET).await;
}

// ------------------------------------------------------------------------------------
// Shared subscriptions
// ------------------------------------------------------------------------------------

async fn check_shared(version: ProtocolVersion) {
    let b = start_default().await;
    let tag = version.level();
    let mut m1 = Raw::connect(b.addr, version, &format!("m1-{tag}")).await;
    let mut m2 = Raw::connect(b.addr, version, &format!("m2-{tag}")).await;
    let mut other_group = Raw::connect(b.addr, version, &format!("g2-{tag}")).await;
    let mut plain = Raw::connect(b.addr, version, &format!("plain-{tag}")).await;
    assert_eq!(
        m1.subscribe("$share/g/sh/t", QoS::AtLeastOnce).await,
        vec![1]
    );
    assert_eq!(
        m2.subscribe("$share/g/sh/t", QoS::AtLeastOnce).await,
        vec![1]
    );
    assert_eq!(
        other_group
            .subscribe("$share/h/sh/+", QoS::AtLeastOnce)
            .await,
        vec![1]
    );
    plain.subscribe("sh/t", QoS::AtLeastOnce).await;

    let mut publ = Raw::connect(b.addr, version, &format!("sp-{tag}")).await;
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    for i in 0..6 {
        let payload = format!("m{i}");
        publ.publish("sh/t", payload.as_bytes(), QoS::AtLeastOnce, false)
            .await;
        // Exactly one member of group g receives it.
        let a = m1.try_recv(QUIET).await;
        let c = m2.try_recv(QUIET).await;
        let (who, p) = match (a, c) {
            (Some(Packet::Publish(p)), None) => (1, p),
            (None, Some(Packet::Publish(p))) => (2, p),
            other => panic!("message {i}: expected exactly one group member, got {other:?}"),
        };
        assert_eq!(&p.payload[..], payload.as_bytes());
        assert!(seen.insert(p.payload.clone()));
        if who == 1 {
            m1.ack(&p).await;
        } else {
            m2.ack(&p).await;
        }
        order.push(who);
        // The other group and the plain subscriber each get every message.
        assert_eq!(
            &other_group.recv_publish_ack().await.payload[..],
            payload.as_bytes()
        );
        assert_eq!(
            &plain.recv_publish_ack().await.payload[..],
            payload.as_bytes()
        );
    }
    // Rotation among online members: they alternate.
    for w in order.windows(2) {
        assert_ne!(w[0], w[1], "members must alternate, got {order:?}");
    }
}

// [MQTT-4.8.2]: one delivery per group, rotating among its members.
#[tokio::test]
async fn v5_shared_subscription_delivers_once_per_group_alternately() {
    check_shared(ProtocolVersion::V5).await;
}

// Mosquitto accepts `$share/` from 3.1.1 clients as well.
#[tokio::test]
async fn v311_shared_subscription_delivers_once_per_group_alternately() {
    check_shared(ProtocolVersion::V311).await;
}

// [MQTT 5 section 4.8.2]: retained messages are not sent for a shared subscription.
// (Mosquitto 2.0.11 sends them anyway; Midge follows the specification.)
#[tokio::test]
async fn shared_subscription_gets_no_retained_messages() {
    let b = start_default().await;
    let mut publ = Raw::connect(b.addr, ProtocolVersion::V5, "srp").await;
    publ.publish("shr/t", b"kept", QoS::AtLeastOnce, true).await;
    let mut m = Raw::connect(b.addr, ProtocolVersion::V5, "srm").await;
    m.subscribe("$share/g/shr/t", QoS::AtLeastOnce).await;
    m.expect_silence(QUIET).await;
}

// ------------------------------------------------------------------------------------
// Overlapping subscriptions
// ------------------------------------------------------------------------------------

// [MQTT-3.3.4-2] (5.0) and 3.1.1's option: one client with overlapping subscriptions gets
// one copy at the highest granted QoS. (Mosquitto 2.0 sends one copy per subscription to
// MQTT 5 clients; Midge sends one, as the issue asks.)
#[tokio::test]
async fn v311_overlapping_subscriptions_deliver_once_at_highest_qos() {
    let b = start_default().await;
    let mut sub = Raw::connect(b.addr, ProtocolVersion::V311, "ov4").await;
    assert_eq!(sub.subscribe("ov/+", QoS::AtLeastOnce).await, vec![1]);
    assert_eq!(sub.subscribe("ov/#", QoS::ExactlyOnce).await, vec![2]);
    let mut publ = Raw::connect(b.addr, ProtocolVersion::V311, "ovp").await;
    publ.publish("ov/b", b"once", QoS::ExactlyOnce, false).await;
    let p = sub.recv_publish_ack().await;
    assert_eq!(p.qos, QoS::ExactlyOnce);
    assert_eq!(&p.payload[..], b"once");
    sub.expect_silence(QUIET).await;
}

// [MQTT-3.3.4-3]: MQTT 5: the one copy carries every matching subscription identifier.
#[tokio::test]
async fn v5_overlapping_subscriptions_deliver_once_with_all_subscription_identifiers() {
    let b = start_default().await;
    let mut sub = Raw::connect(b.addr, ProtocolVersion::V5, "ov5").await;
    for (f, q, id) in [
        ("ov/+", QoS::AtLeastOnce, 1u32),
        ("ov/#", QoS::ExactlyOnce, 2),
    ] {
        let props = Properties {
            subscription_identifiers: vec![id],
            ..Properties::default()
        };
        let ack = sub.subscribe_with(vec![filter(f, q)], props).await;
        assert_eq!(ack.codes, vec![q as u8]);
    }
    // A third subscription without identifier that does not match.
    sub.subscribe("nomatch/#", QoS::AtLeastOnce).await;

    let mut publ = Raw::connect(b.addr, ProtocolVersion::V5, "ovp5").await;
    publ.publish("ov/b", b"once", QoS::ExactlyOnce, false).await;
    let p = sub.recv_publish_ack().await;
    assert_eq!(p.qos, QoS::ExactlyOnce);
    let mut ids = p.properties.subscription_identifiers.clone();
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2]);
    sub.expect_silence(QUIET).await;

    // A single match carries only its own identifier.
    publ.publish("ov/b/c", b"deep", QoS::AtLeastOnce, false)
        .await;
    let p = sub.recv_publish_ack().await;
    assert_eq!(p.properties.subscription_identifiers, vec![2]);
}

// [MQTT-3.8.4-3]: a SUBSCRIBE for an existing filter replaces the subscription (its QoS):
// still one delivery.
#[tokio::test]
async fn resubscribe_replaces_subscription() {
    let b = start_default().await;
    let mut sub = Raw::connect(b.addr, ProtocolVersion::V311, "re").await;
    sub.subscribe("re/t", QoS::ExactlyOnce).await;
    sub.subscribe("re/t", QoS::AtMostOnce).await;
    let mut publ = Raw::connect(b.addr, ProtocolVersion::V311, "rep").await;
    publ.publish("re/t", b"x", QoS::ExactlyOnce, false).await;
    let p = sub.recv_publish_ack().await;
    assert_eq!(p.qos, QoS::AtMostOnce);
    sub.expect_silence(QUIET).await;
}
