//! Property tests: any valid packet survives encode then decode in every version (3.x losing
//! exactly what 3.x cannot carry), the computed lengths match the bytes written, and no input
//! whatsoever makes the decoder panic.

mod common;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use common::*;
use midge_proto::properties::id;
use midge_proto::topic::{valid_topic_filter, valid_topic_name};
use midge_proto::*;
use proptest::collection::vec;
use proptest::option::of as opt;
use proptest::prelude::*;

const MAX_SUB_ID: u32 = 268_435_455;

fn text() -> impl Strategy<Value = String> {
    "[a-z0-9 é漢/_-]{0,8}"
}

fn bin() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..12).prop_map(Bytes::from)
}

fn topic_name() -> impl Strategy<Value = String> {
    "[a-z0-9é$ ]{0,4}(/[a-zé0-9]{0,3}){0,3}".prop_filter("valid name", |t| valid_topic_name(t))
}

fn topic_filter() -> impl Strategy<Value = String> {
    let level = prop_oneof!["[a-zé0-9]{0,3}", Just("+".to_string())];
    (vec(level, 1..4), any::<bool>(), opt("[a-z0-9]{1,3}"))
        .prop_map(|(levels, hash, share)| {
            let mut f = levels.join("/");
            if hash {
                f.push_str("/#");
            }
            match share {
                Some(group) => format!("$share/{group}/{f}"),
                None => f,
            }
        })
        .prop_filter("valid filter", |f| valid_topic_filter(f))
}

fn flag() -> impl Strategy<Value = Option<u8>> {
    opt(0..=1u8)
}

fn all_properties() -> impl Strategy<Value = Properties> {
    let a = (
        flag(),
        opt(any::<u32>()),
        opt(text()),
        opt(topic_name()),
        opt(bin()),
        vec(1..=MAX_SUB_ID, 0..3),
        opt(any::<u32>()),
        opt(text()),
        opt(any::<u16>()),
    );
    let b = (
        opt(text()),
        opt(bin()),
        flag(),
        opt(any::<u32>()),
        flag(),
        opt(text()),
        opt(text()),
        opt(text()),
        opt(1..=u16::MAX),
    );
    let c = (
        opt(any::<u16>()),
        opt(1..=u16::MAX),
        flag(),
        flag(),
        vec((text(), text()), 0..3),
        opt(1..=u32::MAX),
        flag(),
        flag(),
        flag(),
    );
    (a, b, c).prop_map(|(a, b, c)| Properties {
        payload_format_indicator: a.0,
        message_expiry_interval: a.1,
        content_type: a.2,
        response_topic: a.3,
        correlation_data: a.4,
        subscription_identifiers: a.5,
        session_expiry_interval: a.6,
        assigned_client_identifier: a.7,
        server_keep_alive: a.8,
        authentication_method: b.0,
        authentication_data: b.1,
        request_problem_information: b.2,
        will_delay_interval: b.3,
        request_response_information: b.4,
        response_information: b.5,
        server_reference: b.6,
        reason_string: b.7,
        receive_maximum: b.8,
        topic_alias_maximum: c.0,
        topic_alias: c.1,
        maximum_qos: c.2,
        retain_available: c.3,
        user_properties: c.4,
        maximum_packet_size: c.5,
        wildcard_subscription_available: c.6,
        subscription_identifier_available: c.7,
        shared_subscription_available: c.8,
    })
}

/// Clears every property not in `allowed`: the test's own copy of the table of MQTT 5
/// section 2.2.2.2, so that a mistake in the codec's table shows up here.
fn keep_only(mut p: Properties, allowed: &[u8]) -> Properties {
    macro_rules! keep {
        ($($field:ident: $pid:expr),* $(,)?) => {
            $(if !allowed.contains(&$pid) {
                p.$field = Default::default();
            })*
        };
    }
    keep!(
        payload_format_indicator: id::PAYLOAD_FORMAT_INDICATOR,
        message_expiry_interval: id::MESSAGE_EXPIRY_INTERVAL,
        content_type: id::CONTENT_TYPE,
        response_topic: id::RESPONSE_TOPIC,
        correlation_data: id::CORRELATION_DATA,
        subscription_identifiers: id::SUBSCRIPTION_IDENTIFIER,
        session_expiry_interval: id::SESSION_EXPIRY_INTERVAL,
        assigned_client_identifier: id::ASSIGNED_CLIENT_IDENTIFIER,
        server_keep_alive: id::SERVER_KEEP_ALIVE,
        authentication_method: id::AUTHENTICATION_METHOD,
        authentication_data: id::AUTHENTICATION_DATA,
        request_problem_information: id::REQUEST_PROBLEM_INFORMATION,
        will_delay_interval: id::WILL_DELAY_INTERVAL,
        request_response_information: id::REQUEST_RESPONSE_INFORMATION,
        response_information: id::RESPONSE_INFORMATION,
        server_reference: id::SERVER_REFERENCE,
        reason_string: id::REASON_STRING,
        receive_maximum: id::RECEIVE_MAXIMUM,
        topic_alias_maximum: id::TOPIC_ALIAS_MAXIMUM,
        topic_alias: id::TOPIC_ALIAS,
        maximum_qos: id::MAXIMUM_QOS,
        retain_available: id::RETAIN_AVAILABLE,
        user_properties: id::USER_PROPERTY,
        maximum_packet_size: id::MAXIMUM_PACKET_SIZE,
        wildcard_subscription_available: id::WILDCARD_SUBSCRIPTION_AVAILABLE,
        subscription_identifier_available: id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        shared_subscription_available: id::SHARED_SUBSCRIPTION_AVAILABLE,
    );
    p
}

fn props_for(allowed: &'static [u8]) -> impl Strategy<Value = Properties> {
    all_properties().prop_map(move |p| keep_only(p, allowed))
}

use id::*;
const CONNECT_P: &[u8] = &[
    SESSION_EXPIRY_INTERVAL,
    RECEIVE_MAXIMUM,
    MAXIMUM_PACKET_SIZE,
    TOPIC_ALIAS_MAXIMUM,
    REQUEST_RESPONSE_INFORMATION,
    REQUEST_PROBLEM_INFORMATION,
    USER_PROPERTY,
    AUTHENTICATION_METHOD,
    AUTHENTICATION_DATA,
];
const WILL_P: &[u8] = &[
    WILL_DELAY_INTERVAL,
    PAYLOAD_FORMAT_INDICATOR,
    MESSAGE_EXPIRY_INTERVAL,
    CONTENT_TYPE,
    RESPONSE_TOPIC,
    CORRELATION_DATA,
    USER_PROPERTY,
];
const CONNACK_P: &[u8] = &[
    SESSION_EXPIRY_INTERVAL,
    RECEIVE_MAXIMUM,
    MAXIMUM_QOS,
    RETAIN_AVAILABLE,
    MAXIMUM_PACKET_SIZE,
    ASSIGNED_CLIENT_IDENTIFIER,
    TOPIC_ALIAS_MAXIMUM,
    REASON_STRING,
    USER_PROPERTY,
    WILDCARD_SUBSCRIPTION_AVAILABLE,
    SUBSCRIPTION_IDENTIFIER_AVAILABLE,
    SHARED_SUBSCRIPTION_AVAILABLE,
    SERVER_KEEP_ALIVE,
    RESPONSE_INFORMATION,
    SERVER_REFERENCE,
    AUTHENTICATION_METHOD,
    AUTHENTICATION_DATA,
];
const PUBLISH_P: &[u8] = &[
    PAYLOAD_FORMAT_INDICATOR,
    MESSAGE_EXPIRY_INTERVAL,
    TOPIC_ALIAS,
    RESPONSE_TOPIC,
    CORRELATION_DATA,
    USER_PROPERTY,
    SUBSCRIPTION_IDENTIFIER,
    CONTENT_TYPE,
];
const ACK_P: &[u8] = &[REASON_STRING, USER_PROPERTY];
const SUBSCRIBE_P: &[u8] = &[SUBSCRIPTION_IDENTIFIER, USER_PROPERTY];
const UNSUBSCRIBE_P: &[u8] = &[USER_PROPERTY];
const DISCONNECT_P: &[u8] = &[
    SESSION_EXPIRY_INTERVAL,
    REASON_STRING,
    USER_PROPERTY,
    SERVER_REFERENCE,
];
const AUTH_P: &[u8] = &[
    AUTHENTICATION_METHOD,
    AUTHENTICATION_DATA,
    REASON_STRING,
    USER_PROPERTY,
];

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![
        Just(ProtocolVersion::V31),
        Just(ProtocolVersion::V311),
        Just(ProtocolVersion::V5)
    ]
}

fn code(codes: &'static [u8]) -> impl Strategy<Value = u8> {
    proptest::sample::select(codes)
}

fn will() -> impl Strategy<Value = Will> {
    (topic_name(), bin(), qos(), any::<bool>(), props_for(WILL_P)).prop_map(
        |(topic, payload, qos, retain, properties)| Will {
            topic: ByteString::from(topic),
            payload,
            qos,
            retain,
            properties,
        },
    )
}

fn connect(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        any::<bool>(),
        any::<u16>(),
        text(),
        opt(will()),
        opt(text()),
        opt(bin()),
        props_for(CONNECT_P),
    )
        .prop_map(
            move |(
                clean_start,
                keep_alive,
                client_id,
                will,
                mut username,
                password,
                mut properties,
            )| {
                // 3.x cannot send a password alone ([MQTT-3.1.2-22]).
                if password.is_some() && !v.is_v5() && username.is_none() {
                    username = Some("user".into());
                }
                // Authentication Data needs a method.
                if properties.authentication_data.is_some()
                    && properties.authentication_method.is_none()
                {
                    properties.authentication_method = Some("m".into());
                }
                Packet::Connect(Box::new(Connect {
                    protocol: v,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                }))
            },
        )
}

fn publish(v: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic_name(),
        any::<bool>(),
        1..=u16::MAX,
        bin(),
        props_for(PUBLISH_P),
    )
        .prop_map(
            move |(qos, dup, retain, topic, alias_only, pid, payload, properties)| {
                let alias_only = alias_only && v.is_v5() && properties.topic_alias.is_some();
                Packet::Publish(Publish {
                    dup: dup && qos != QoS::AtMostOnce,
                    qos,
                    retain,
                    topic: if alias_only {
                        ByteString::new()
                    } else {
                        ByteString::from(topic)
                    },
                    packet_id: if qos == QoS::AtMostOnce { 0 } else { pid },
                    payload,
                    properties,
                })
            },
        )
}

fn pub_resp(codes: &'static [u8]) -> impl Strategy<Value = PubResp> {
    (1..=u16::MAX, code(codes), props_for(ACK_P)).prop_map(|(packet_id, reason, properties)| {
        PubResp {
            packet_id,
            reason,
            properties,
        }
    })
}

const PUBACK_CODES: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const PUBREL_CODES: &[u8] = &[0x00, 0x92];
const CONNACK_CODES: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];
const SUBACK_CODES: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
const UNSUBACK_CODES: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
const DISCONNECT_CODES: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
const AUTH_CODES: &[u8] = &[0x00, 0x18, 0x19];

fn subscribe() -> impl Strategy<Value = Packet> {
    let entry = (topic_filter(), qos(), any::<bool>(), any::<bool>(), 0..=2u8).prop_map(
        |(filter, qos, no_local, retain_as_published, retain_handling)| {
            let shared = filter.starts_with("$share/");
            SubscribeFilter {
                filter,
                options: SubscriptionOptions {
                    qos,
                    no_local: no_local && !shared,
                    retain_as_published,
                    retain_handling,
                },
            }
        },
    );
    (1..=u16::MAX, vec(entry, 1..4), props_for(SUBSCRIBE_P)).prop_map(
        |(packet_id, filters, mut properties)| {
            properties.subscription_identifiers.truncate(1);
            Packet::Subscribe(Subscribe {
                packet_id,
                filters,
                properties,
            })
        },
    )
}

fn packet(v: ProtocolVersion) -> BoxedStrategy<Packet> {
    let v5 = v.is_v5();
    let connack_codes: &'static [u8] = if v5 {
        CONNACK_CODES
    } else {
        &[0, 1, 2, 3, 4, 5]
    };
    let suback_codes: &'static [u8] = if v5 { SUBACK_CODES } else { &[0, 1, 2, 0x80] };
    let mut choices = vec![
        connect(v).boxed(),
        (any::<bool>(), code(connack_codes), props_for(CONNACK_P))
            .prop_map(|(session_present, code, properties)| {
                Packet::ConnAck(ConnAck {
                    session_present,
                    code,
                    properties,
                })
            })
            .boxed(),
        publish(v).boxed(),
        pub_resp(PUBACK_CODES).prop_map(Packet::PubAck).boxed(),
        pub_resp(PUBACK_CODES).prop_map(Packet::PubRec).boxed(),
        pub_resp(PUBREL_CODES).prop_map(Packet::PubRel).boxed(),
        pub_resp(PUBREL_CODES).prop_map(Packet::PubComp).boxed(),
        subscribe().boxed(),
        (
            1..=u16::MAX,
            vec(code(suback_codes), 1..5),
            props_for(ACK_P),
        )
            .prop_map(|(packet_id, codes, properties)| {
                Packet::SubAck(SubAck {
                    packet_id,
                    codes,
                    properties,
                })
            })
            .boxed(),
        (
            1..=u16::MAX,
            vec(topic_filter(), 1..4),
            props_for(UNSUBSCRIBE_P),
        )
            .prop_map(|(packet_id, filters, properties)| {
                Packet::Unsubscribe(Unsubscribe {
                    packet_id,
                    filters,
                    properties,
                })
            })
            .boxed(),
        (
            1..=u16::MAX,
            vec(code(UNSUBACK_CODES), 1..5),
            props_for(ACK_P),
        )
            .prop_map(|(packet_id, codes, properties)| {
                Packet::UnsubAck(UnsubAck {
                    packet_id,
                    codes,
                    properties,
                })
            })
            .boxed(),
        Just(Packet::PingReq).boxed(),
        Just(Packet::PingResp).boxed(),
        (code(DISCONNECT_CODES), props_for(DISCONNECT_P))
            .prop_map(|(reason, properties)| Packet::Disconnect(Disconnect { reason, properties }))
            .boxed(),
    ];
    if v5 {
        choices.push(
            (code(AUTH_CODES), props_for(AUTH_P))
                .prop_map(|(reason, properties)| Packet::Auth(Auth { reason, properties }))
                .boxed(),
        );
    }
    proptest::strategy::Union::new(choices).boxed()
}

/// What a receiver of the given version gets back: 3.x drops properties, reason codes other
/// than the CONNACK and SUBACK ones, UNSUBACK codes, the v5 subscription options, and (3.1) the
/// session present flag.
fn as_received(p: &Packet, v: ProtocolVersion) -> Packet {
    let mut p = p.clone();
    if v.is_v5() {
        return p;
    }
    let strip = |r: &mut PubResp| {
        r.reason = 0;
        r.properties = Properties::default();
    };
    match &mut p {
        Packet::Connect(c) => {
            c.properties = Properties::default();
            if let Some(w) = &mut c.will {
                w.properties = Properties::default();
            }
        }
        Packet::ConnAck(c) => {
            c.properties = Properties::default();
            if v == ProtocolVersion::V31 {
                c.session_present = false;
            }
        }
        Packet::Publish(p) => p.properties = Properties::default(),
        Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => strip(r),
        Packet::Subscribe(s) => {
            s.properties = Properties::default();
            for f in &mut s.filters {
                f.options = SubscriptionOptions {
                    qos: f.options.qos,
                    ..SubscriptionOptions::default()
                };
            }
        }
        Packet::SubAck(s) => s.properties = Properties::default(),
        Packet::Unsubscribe(u) => u.properties = Properties::default(),
        Packet::UnsubAck(u) => {
            u.properties = Properties::default();
            u.codes.clear();
        }
        Packet::Disconnect(d) => *d = Disconnect::default(),
        Packet::PingReq | Packet::PingResp | Packet::Auth(_) => {}
    }
    p
}

fn sender_of(p: &Packet) -> Sender {
    match p {
        Packet::Connect(_) | Packet::Subscribe(_) | Packet::Unsubscribe(_) | Packet::PingReq => {
            Sender::Client
        }
        // PUBLISH from the server may carry subscription identifiers.
        _ => Sender::Server,
    }
}

fn versioned_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    version().prop_flat_map(|v| packet(v).prop_map(move |p| (v, p)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn encode_then_decode_gives_the_packet_back((v, p) in versioned_packet()) {
        let bytes = encode(&p, v);
        let decoded = decode_frame(&bytes, v, sender_of(&p));
        prop_assert_eq!(decoded, Ok(as_received(&p, v)));
    }

    #[test]
    fn outgoing_publish_round_trips(
        v in version(),
        p in publish(ProtocolVersion::V5),
        alias in opt(1..=u16::MAX),
        sub_ids in vec(1..=MAX_SUB_ID, 0..3),
        expiry in opt(any::<u32>()),
        extra in all_properties(),
    ) {
        let Packet::Publish(p) = p else { unreachable!() };
        // The message's stored properties may hold anything (a will's, say); only PUBLISH
        // properties may reach the wire.
        let mut stored = extra;
        stored.user_properties = p.properties.user_properties.clone();
        let topic = if p.topic.is_empty() && (!v.is_v5() || alias.is_none()) { "t" } else { &p.topic };
        let out = OutgoingPublish {
            dup: p.dup,
            qos: p.qos,
            retain: p.retain,
            topic,
            packet_id: p.packet_id,
            payload: &p.payload,
            properties: &stored,
            topic_alias: alias,
            subscription_identifiers: &sub_ids,
            message_expiry_interval: expiry,
        };
        let mut buf = BytesMut::new();
        encode_publish(&out, v, &mut buf);
        prop_assert_eq!(publish_len(&out, v), buf.len());
        let Ok(Packet::Publish(got)) = decode_frame(&buf, v, Sender::Server) else {
            return Err(TestCaseError::fail("PUBLISH did not decode"));
        };
        prop_assert_eq!(&*got.topic, topic);
        prop_assert_eq!((got.dup, got.qos, got.retain, got.packet_id), (p.dup, p.qos, p.retain, p.packet_id));
        prop_assert_eq!(&got.payload, &p.payload);
        let expected = if v.is_v5() {
            let mut e = keep_only(stored.clone(), PUBLISH_P);
            e.topic_alias = alias;
            e.subscription_identifiers = sub_ids.clone();
            e.message_expiry_interval = expiry;
            e
        } else {
            Properties::default()
        };
        prop_assert_eq!(got.properties, expected);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(
        first in any::<u8>(),
        body in vec(any::<u8>(), 0..64),
        v in version(),
        client in any::<bool>(),
    ) {
        let from = if client { Sender::Client } else { Sender::Server };
        let _ = decode_packet(first, Bytes::from(body), v, from);
    }

    #[test]
    fn decoding_a_damaged_packet_never_panics(
        (v, p) in versioned_packet(),
        damage in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let bytes = encode(&p, v);
        let header = decode_fixed_header(&bytes).unwrap().unwrap();
        let mut body = bytes[header.header_len..].to_vec();
        if !body.is_empty() {
            for (at, byte) in damage {
                let i = at.index(body.len());
                body[i] = byte;
            }
            if truncate {
                body.truncate(cut.index(body.len()));
            }
        }
        let _ = decode_packet(header.first_byte, Bytes::from(body), v, sender_of(&p));
    }

    #[test]
    fn fixed_header_of_arbitrary_bytes(buf in vec(any::<u8>(), 0..8)) {
        if let Ok(Some(h)) = decode_fixed_header(&buf) {
            prop_assert!(h.header_len >= 2 && h.header_len <= 5 && h.header_len <= buf.len());
            prop_assert!(h.remaining_length <= MAX_SUB_ID as usize);
        }
    }
}
