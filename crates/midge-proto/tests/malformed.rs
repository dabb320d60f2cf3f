//! One test per receiver rule: each builds the smallest packet breaking it and checks the
//! exact error and the reason code the broker answers with.

mod common;

use common::*;
use midge_proto::{
    decode_fixed_header, decode_packet, peek_connect_level, DecodeError as E, Packet,
    ProtocolVersion::{self, V31, V311, V5},
    QoS,
    Sender::{Client, Server},
};

const MALFORMED: u8 = 0x81;
const PROTOCOL: u8 = 0x82;

mod fixed_header {
    use super::*;

    // [MQTT-2.2.3] / MQTT 5 1.5.5: the remaining length takes at most four bytes.
    #[test]
    fn mqtt_1_5_5_remaining_length_longer_than_four_bytes() {
        let err = decode_fixed_header(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF]).unwrap_err();
        assert_eq!(err, E::RemainingLengthTooLong);
        assert_eq!(err.reason_code(), MALFORMED);
        let err = decode_fixed_header(&[0x30, 0x80, 0x80, 0x80, 0x80, 0x01]).unwrap_err();
        assert_eq!(err, E::RemainingLengthTooLong);
    }

    #[test]
    fn four_byte_remaining_length_is_accepted() {
        let h = decode_fixed_header(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F])
            .unwrap()
            .unwrap();
        assert_eq!(h.remaining_length, 268_435_455);
        assert_eq!(h.header_len, 5);
        assert_eq!(h.packet_type(), 3);
        assert_eq!(h.packet_len(), 268_435_460);
    }

    #[test]
    fn incomplete_fixed_header_waits_for_more() {
        assert_eq!(decode_fixed_header(&[]), Ok(None));
        assert_eq!(decode_fixed_header(&[0x30]), Ok(None));
        assert_eq!(decode_fixed_header(&[0x30, 0x80, 0x80, 0x80]), Ok(None));
    }

    // MQTT 5 1.5.5: the spec does not require the minimal encoding.
    #[test]
    fn non_minimal_remaining_length_is_accepted() {
        let h = decode_fixed_header(&[0xC0, 0x80, 0x80, 0x00])
            .unwrap()
            .unwrap();
        assert_eq!((h.remaining_length, h.header_len), (0, 4));
        let packet = decode_packet(h.first_byte, Default::default(), V311, Client).unwrap();
        assert_eq!(packet, Packet::PingReq);
    }

    // MQTT 5 2.1.2: packet type 0 is reserved.
    #[test]
    fn mqtt_2_1_2_packet_type_0_is_reserved() {
        let err = decode_fixed_header(&[0x00, 0x00]).unwrap_err();
        assert_eq!(err, E::ReservedPacketType(0));
        assert_eq!(err.reason_code(), PROTOCOL);
        fails(0x00, &[], V5, Client, E::ReservedPacketType(0), PROTOCOL);
    }

    // AUTH (15) only exists in MQTT 5; 3.1.1 section 2.2.1 lists 15 as reserved.
    #[test]
    fn mqtt_2_1_2_auth_is_reserved_before_v5() {
        for v in [V31, V311] {
            fails(0xF0, &[], v, Client, E::ReservedPacketType(15), PROTOCOL);
        }
        assert!(decode(0xF0, &[], V5, Client).is_ok());
    }

    // [MQTT-2.2.2-1], [MQTT-2.2.2-2]: reserved flag bits must hold their fixed values.
    #[test]
    fn mqtt_2_2_2_2_invalid_fixed_header_flags() {
        let cases: &[(u8, &[u8], &str)] = &[
            (0x21, &[0, 0], "CONNACK"),
            (0x41, &[0, 1], "PUBACK"),
            (0x58, &[0, 1], "PUBREC"),
            (0x60, &[0, 1], "PUBREL"),
            (0x63, &[0, 1], "PUBREL"),
            (0x72, &[0, 1], "PUBCOMP"),
            (0x80, &[0, 1, 0, 1, b'a', 0], "SUBSCRIBE"),
            (0x92, &[0, 1, 0], "SUBACK"),
            (0xA0, &[0, 1, 0, 1, b'a'], "UNSUBSCRIBE"),
            (0xB1, &[0, 1], "UNSUBACK"),
            (0xC2, &[], "PINGREQ"),
            (0xD4, &[], "PINGRESP"),
            (0xE1, &[], "DISCONNECT"),
        ];
        for &(first, body, packet) in cases {
            let from = if matches!(first >> 4, 2 | 9 | 11 | 13) {
                Server
            } else {
                Client
            };
            let flags = first & 0x0F;
            fails(
                first,
                body,
                V311,
                from,
                E::InvalidHeaderFlags { packet, flags },
                MALFORMED,
            );
        }
        fails(
            0xF1,
            &[],
            V5,
            Client,
            E::InvalidHeaderFlags {
                packet: "AUTH",
                flags: 1,
            },
            MALFORMED,
        );
        let body = connect_v311(0x02, &s("id"));
        fails(
            0x12,
            &body,
            V311,
            Client,
            E::InvalidHeaderFlags {
                packet: "CONNECT",
                flags: 2,
            },
            MALFORMED,
        );
    }

    // MQTT 3.1 left the flags of these packets loose; Mosquitto accepts them from 3.1 clients.
    #[test]
    fn v31_does_not_check_non_publish_flags() {
        let sub = decode(0x80, &[0, 1, 0, 1, b'a', 0], V31, Client).unwrap();
        assert!(matches!(sub, Packet::Subscribe(_)));
        assert!(decode(0x60, &[0, 1], V31, Client).is_ok());
        assert!(decode(0xE2, &[], V31, Client).is_ok());
        let body = cat(&[&s("MQIsdp"), &[3, 0x02, 0, 60], &s("id")]);
        assert!(decode(0x12, &body, V31, Client).is_ok());
    }

    // [MQTT-3.3.1-4]: a PUBLISH with both QoS bits set is malformed.
    #[test]
    fn mqtt_3_3_1_4_publish_qos_3() {
        let body = cat(&[&s("a"), &[0, 1]]);
        for v in [V31, V311, V5] {
            fails(0x36, &body, v, Client, E::InvalidQoS, MALFORMED);
        }
    }

    // [MQTT-3.3.1-2]: DUP must be 0 for QoS 0.
    #[test]
    fn mqtt_3_3_1_2_dup_set_on_qos_0() {
        for v in [V31, V311, V5] {
            let body = if v == V5 {
                cat(&[&s("a"), &[0]])
            } else {
                s("a")
            };
            let expected = E::InvalidHeaderFlags {
                packet: "PUBLISH",
                flags: 0x08,
            };
            fails(0x38, &body, v, Client, expected, MALFORMED);
        }
    }

    // MQTT 5 2.1.2: each packet has one direction.
    #[test]
    fn mqtt_2_1_2_server_only_packets_from_a_client() {
        fails(
            0x20,
            &[0, 0],
            V311,
            Client,
            E::WrongDirection("CONNACK"),
            PROTOCOL,
        );
        fails(
            0x90,
            &[0, 1, 0],
            V311,
            Client,
            E::WrongDirection("SUBACK"),
            PROTOCOL,
        );
        fails(
            0xB0,
            &[0, 1],
            V311,
            Client,
            E::WrongDirection("UNSUBACK"),
            PROTOCOL,
        );
        fails(
            0xD0,
            &[],
            V311,
            Client,
            E::WrongDirection("PINGRESP"),
            PROTOCOL,
        );
    }

    #[test]
    fn mqtt_2_1_2_client_only_packets_from_a_server() {
        let connect = connect_v311(0x02, &s("id"));
        fails(
            0x10,
            &connect,
            V311,
            Server,
            E::WrongDirection("CONNECT"),
            PROTOCOL,
        );
        fails(
            0x82,
            &[0, 1, 0, 1, b'a', 0],
            V311,
            Server,
            E::WrongDirection("SUBSCRIBE"),
            PROTOCOL,
        );
        fails(
            0xA2,
            &[0, 1, 0, 1, b'a'],
            V311,
            Server,
            E::WrongDirection("UNSUBSCRIBE"),
            PROTOCOL,
        );
        fails(
            0xC0,
            &[],
            V311,
            Server,
            E::WrongDirection("PINGREQ"),
            PROTOCOL,
        );
    }

    // 3.12.1 / 3.13.1: PINGREQ and PINGRESP have no variable header or payload.
    #[test]
    fn mqtt_3_12_pings_have_no_body() {
        fails(
            0xC0,
            &[0],
            V311,
            Client,
            E::TrailingBytes("PINGREQ"),
            MALFORMED,
        );
        fails(
            0xD0,
            &[0],
            V5,
            Server,
            E::TrailingBytes("PINGRESP"),
            MALFORMED,
        );
        assert_eq!(decode(0xD0, &[], V5, Server), Ok(Packet::PingResp));
    }
}

mod connect {
    use super::*;

    fn connect(body: &[u8]) -> Result<Packet, E> {
        decode(0x10, body, V311, Client)
    }

    #[track_caller]
    fn connect_fails(body: &[u8], expected: E, reason: u8) {
        // The version argument is ignored for CONNECT; any value must give the same answer.
        for v in [V31, V311, V5] {
            fails(0x10, body, v, Client, expected.clone(), reason);
        }
    }

    // [MQTT-3.1.2-1]: an unknown protocol name.
    #[test]
    fn mqtt_3_1_2_1_invalid_protocol_name() {
        for name in ["MQTX", "mqtt", "MQIsdP", ""] {
            let body = cat(&[&s(name), &[4, 0x02, 0, 60], &s("id")]);
            connect_fails(&body, E::InvalidProtocolName, 0x84);
        }
        connect_fails(&[0, 4, b'M', b'Q'], E::Truncated, MALFORMED);
    }

    // [MQTT-3.1.2-2]: a known name with a level this server does not speak.
    #[test]
    fn mqtt_3_1_2_2_unsupported_protocol_level() {
        for (name, level) in [
            ("MQTT", 3),
            ("MQTT", 6),
            ("MQTT", 0),
            ("MQIsdp", 4),
            ("MQIsdp", 5),
        ] {
            let body = cat(&[&s(name), &[level, 0x02, 0, 60], &s("id")]);
            connect_fails(&body, E::UnsupportedProtocolVersion(level), 0x84);
        }
    }

    #[test]
    fn protocol_names_and_levels() {
        for (name, level, version) in [("MQIsdp", 3, V31), ("MQTT", 4, V311), ("MQTT", 5, V5)] {
            let mut body = cat(&[&s(name), &[level, 0x02, 0, 60]]);
            if version == V5 {
                body.push(0);
            }
            body.extend(s("id"));
            let Packet::Connect(c) = connect(&body).unwrap() else {
                panic!()
            };
            assert_eq!(c.protocol, version);
            let peeked = peek_connect_level(&body).unwrap();
            assert_eq!((peeked.version, peeked.bridge), (version, false));
        }
        assert_eq!(peek_connect_level(&[0, 4, b'M']), None);
    }

    // Mosquitto bridges (try_private) set bit 7 of the level; Mosquitto accepts it.
    #[test]
    fn bridge_bit_on_the_protocol_level_is_accepted() {
        let body = cat(&[&s("MQTT"), &[0x84, 0x02, 0, 60], &s("bridge")]);
        let Packet::Connect(c) = connect(&body).unwrap() else {
            panic!()
        };
        assert_eq!(c.protocol, V311);
        assert!(peek_connect_level(&body).unwrap().bridge);
    }

    // [MQTT-3.1.2-3]: the reserved connect flag must be 0.
    #[test]
    fn mqtt_3_1_2_3_reserved_connect_flag() {
        connect_fails(
            &connect_v311(0x03, &s("id")),
            E::ConnectReservedFlag,
            MALFORMED,
        );
        connect_fails(
            &connect_v5(0x01, &[], &s("id")),
            E::ConnectReservedFlag,
            MALFORMED,
        );
    }

    // [MQTT-3.1.2-11]: will QoS must be 0 without a will.
    #[test]
    fn mqtt_3_1_2_11_will_qos_without_will_flag() {
        connect_fails(&connect_v311(0x0A, &s("id")), E::InvalidWillFlags, PROTOCOL);
        connect_fails(&connect_v311(0x12, &s("id")), E::InvalidWillFlags, PROTOCOL);
    }

    // [MQTT-3.1.2-13]: will retain must be 0 without a will.
    #[test]
    fn mqtt_3_1_2_13_will_retain_without_will_flag() {
        connect_fails(&connect_v311(0x22, &s("id")), E::InvalidWillFlags, PROTOCOL);
    }

    // [MQTT-3.1.2-12]: will QoS 3 is malformed.
    #[test]
    fn mqtt_3_1_2_12_will_qos_3() {
        let rest = cat(&[&s("id"), &s("will"), &s("bye")]);
        connect_fails(&connect_v311(0x1E, &rest), E::InvalidQoS, MALFORMED);
    }

    // [MQTT-3.1.2-22]: 3.1 and 3.1.1 need a user name for a password; MQTT 5 does not.
    #[test]
    fn mqtt_3_1_2_22_password_without_username() {
        let rest = cat(&[&s("id"), &s("secret")]);
        connect_fails(
            &connect_v311(0x42, &rest),
            E::PasswordWithoutUsername,
            MALFORMED,
        );
        let v31 = cat(&[&s("MQIsdp"), &[3, 0x42, 0, 60], &rest]);
        connect_fails(&v31, E::PasswordWithoutUsername, MALFORMED);
        let Packet::Connect(c) = connect(&connect_v5(0x42, &[], &rest)).unwrap() else {
            panic!()
        };
        assert_eq!(
            (c.username, c.password.as_deref()),
            (None, Some(&b"secret"[..]))
        );
    }

    // [MQTT-3.1.3-11] and the topic name rules: the will topic is a topic name.
    #[test]
    fn mqtt_3_1_3_11_will_topic_must_be_a_valid_topic_name() {
        for topic in ["a/+", "#", "", "a\u{1}"] {
            let rest = cat(&[&s("id"), &s(topic), &s("bye")]);
            connect_fails(&connect_v311(0x06, &rest), E::InvalidTopicName, 0x90);
        }
        let rest = cat(&[&s("id"), &s("a\0"), &s("bye")]);
        connect_fails(
            &connect_v311(0x06, &rest),
            E::DisallowedCodePoint,
            MALFORMED,
        );
    }

    // [MQTT-1.5.4-1], [MQTT-1.5.4-2] on the client identifier and user name.
    #[test]
    fn mqtt_1_5_4_strings_in_connect() {
        connect_fails(
            &connect_v311(0x02, &s([0xC3, 0x28])),
            E::InvalidUtf8,
            MALFORMED,
        );
        connect_fails(
            &connect_v311(0x02, &s("a\0")),
            E::DisallowedCodePoint,
            MALFORMED,
        );
        let rest = cat(&[&s("id"), &s([0xFF])]);
        connect_fails(&connect_v311(0x82, &rest), E::InvalidUtf8, MALFORMED);
    }

    #[test]
    fn empty_client_id_is_left_to_the_broker() {
        let Packet::Connect(c) = connect(&connect_v311(0x02, &s(""))).unwrap() else {
            panic!()
        };
        assert_eq!(c.client_id, "");
    }

    // MQTT 5 3.1.4: a field the flags announce but the packet lacks, or bytes after the last.
    #[test]
    fn mqtt_3_1_4_1_connect_fields_must_match_the_flags() {
        connect_fails(
            &connect_v311(0xC2, &cat(&[&s("id"), &s("user")])),
            E::Truncated,
            MALFORMED,
        );
        connect_fails(&connect_v311(0x06, &s("id")), E::Truncated, MALFORMED);
        let extra = cat(&[&s("id"), &[0]]);
        connect_fails(
            &connect_v311(0x02, &extra),
            E::TrailingBytes("CONNECT"),
            MALFORMED,
        );
        connect_fails(&connect_v311(0x82, &s("id")), E::Truncated, MALFORMED);
        connect_fails(&s("MQTT"), E::Truncated, MALFORMED);
    }

    // 3.1.2.11: the CONNECT property table.
    #[test]
    fn mqtt_3_1_2_11_properties_not_allowed_on_connect() {
        let body = connect_v5(0x02, &[0x23, 0, 1], &s("id"));
        connect_fails(&body, E::PropertyNotAllowed(0x23, "CONNECT"), MALFORMED);
        let body = connect_v5(0x02, &[0x01, 0], &s("id"));
        connect_fails(&body, E::PropertyNotAllowed(0x01, "CONNECT"), MALFORMED);
    }

    // 3.1.2.11.2, 3.1.2.11.3, 3.1.2.11.4: zero receive maximum or maximum packet size.
    #[test]
    fn mqtt_3_1_2_11_zero_receive_maximum_and_packet_size() {
        let body = connect_v5(0x02, &[0x21, 0, 0], &s("id"));
        connect_fails(&body, E::InvalidPropertyValue(0x21), PROTOCOL);
        let body = connect_v5(0x02, &[0x27, 0, 0, 0, 0], &s("id"));
        connect_fails(&body, E::InvalidPropertyValue(0x27), PROTOCOL);
        // Topic Alias Maximum 0 just means no aliases.
        let body = connect_v5(0x02, &[0x22, 0, 0], &s("id"));
        let Packet::Connect(c) = connect(&body).unwrap() else {
            panic!()
        };
        assert_eq!(c.properties.topic_alias_maximum, Some(0));
    }

    // 3.1.2.11.6, 3.1.2.11.7: request response/problem information are 0 or 1.
    #[test]
    fn mqtt_3_1_2_11_request_information_flags() {
        let body = connect_v5(0x02, &[0x19, 2], &s("id"));
        connect_fails(&body, E::InvalidPropertyValue(0x19), PROTOCOL);
        let body = connect_v5(0x02, &[0x17, 2], &s("id"));
        connect_fails(&body, E::InvalidPropertyValue(0x17), PROTOCOL);
    }

    // 3.1.2.11.10: Authentication Data without Authentication Method.
    #[test]
    fn mqtt_3_1_2_11_10_authentication_data_without_method() {
        let body = connect_v5(0x02, &cat(&[&[0x16], &s("data")]), &s("id"));
        connect_fails(&body, E::InvalidPropertyValue(0x16), PROTOCOL);
    }

    #[test]
    fn mqtt_2_2_2_2_duplicate_connect_property() {
        let body = connect_v5(0x02, &[0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2], &s("id"));
        connect_fails(&body, E::DuplicateProperty(0x11), PROTOCOL);
    }

    // 3.1.3.2: the will property table.
    #[test]
    fn mqtt_3_1_3_2_will_properties() {
        let will = |raw: &[u8]| {
            let rest = cat(&[&s("id"), &props(raw), &s("w"), &s("bye")]);
            connect_v5(0x06, &[], &rest)
        };
        let Packet::Connect(c) = connect(&will(&[0x18, 0, 0, 0, 9, 0x01, 1])).unwrap() else {
            panic!()
        };
        let w = c.will.unwrap();
        assert_eq!(w.properties.will_delay_interval, Some(9));
        assert_eq!(w.properties.payload_format_indicator, Some(1));
        assert_eq!((&*w.topic, &w.payload[..]), ("w", &b"bye"[..]));
        connect_fails(
            &will(&[0x11, 0, 0, 0, 1]),
            E::PropertyNotAllowed(0x11, "CONNECT will"),
            MALFORMED,
        );
        connect_fails(&will(&[0x01, 2]), E::InvalidPropertyValue(0x01), PROTOCOL);
        let bad_response_topic = cat(&[&[0x08], &s("reply/#")]);
        connect_fails(
            &will(&bad_response_topic),
            E::InvalidPropertyValue(0x08),
            PROTOCOL,
        );
    }
}

mod publish {
    use super::*;

    fn publish_v5(topic: &str, pid: Option<u16>, raw_props: &[u8]) -> Vec<u8> {
        let pid = pid.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default();
        cat(&[&s(topic), &pid, &props(raw_props), b"payload"])
    }

    // [MQTT-3.3.2-2]: no wildcards in a PUBLISH topic name.
    #[test]
    fn mqtt_3_3_2_2_wildcards_in_topic_name() {
        for topic in ["a/+", "#", "a/#", "+"] {
            fails(0x30, &s(topic), V311, Client, E::InvalidTopicName, 0x90);
            fails(
                0x30,
                &publish_v5(topic, None, &[]),
                V5,
                Client,
                E::InvalidTopicName,
                0x90,
            );
        }
    }

    // [MQTT-4.7.3-1]: the topic name is at least one character; in MQTT 5 an empty name
    // without a topic alias is a protocol error (3.3.2.3.4).
    #[test]
    fn mqtt_4_7_3_1_empty_topic_name() {
        fails(0x30, &s(""), V311, Client, E::InvalidTopicName, 0x90);
        fails(0x30, &s(""), V31, Client, E::InvalidTopicName, 0x90);
        fails(
            0x30,
            &publish_v5("", None, &[]),
            V5,
            Client,
            E::MissingTopic,
            0x82,
        );
    }

    // MQTT 5 3.3.2.3.4: an empty topic name is how a sender uses an established alias.
    #[test]
    fn mqtt_3_3_2_3_4_empty_topic_with_topic_alias() {
        let body = publish_v5("", None, &[0x23, 0, 7]);
        let Packet::Publish(p) = decode(0x30, &body, V5, Client).unwrap() else {
            panic!()
        };
        assert_eq!((&*p.topic, p.properties.topic_alias), ("", Some(7)));
    }

    // [MQTT-3.3.2-8]: Topic Alias 0 is not permitted.
    #[test]
    fn mqtt_3_3_2_8_topic_alias_zero() {
        let body = publish_v5("a", None, &[0x23, 0, 0]);
        fails(0x30, &body, V5, Client, E::InvalidPropertyValue(0x23), 0x94);
    }

    #[test]
    fn topic_with_control_or_non_characters() {
        for topic in ["a\u{1}b", "a\u{7F}", "a/\u{9F}", "\u{FFFE}", "\u{FDD0}"] {
            fails(0x30, &s(topic), V311, Client, E::InvalidTopicName, 0x90);
        }
        fails(
            0x30,
            &s("a\0"),
            V311,
            Client,
            E::DisallowedCodePoint,
            MALFORMED,
        );
        fails(
            0x30,
            &s([b'a', 0xFF]),
            V311,
            Client,
            E::InvalidUtf8,
            MALFORMED,
        );
    }

    // [MQTT-2.2.1-3]: QoS > 0 carries a non-zero packet identifier.
    #[test]
    fn mqtt_2_2_1_3_publish_packet_id_zero() {
        let body = cat(&[&s("a"), &[0, 0]]);
        fails(0x32, &body, V311, Client, E::ZeroPacketId, PROTOCOL);
        fails(0x34, &body, V311, Client, E::ZeroPacketId, PROTOCOL);
        fails(0x32, &s("a"), V311, Client, E::Truncated, MALFORMED);
    }

    // [MQTT-3.3.4-6]: a client's PUBLISH carries no Subscription Identifier.
    #[test]
    fn mqtt_3_3_4_6_subscription_identifier_from_client() {
        let body = publish_v5("a", None, &[0x0B, 5]);
        fails(
            0x30,
            &body,
            V5,
            Client,
            E::PropertyNotAllowed(0x0B, "PUBLISH"),
            PROTOCOL,
        );
    }

    // MQTT 5 3.3.2.3.8: a server's PUBLISH has one per matching subscription.
    #[test]
    fn mqtt_3_3_2_3_8_repeated_subscription_identifiers_from_server() {
        let body = publish_v5("a", None, &[0x0B, 5, 0x0B, 0xFF, 0xFF, 0xFF, 0x7F]);
        let Packet::Publish(p) = decode(0x30, &body, V5, Server).unwrap() else {
            panic!()
        };
        assert_eq!(p.properties.subscription_identifiers, [5, 268_435_455]);
        let body = publish_v5("a", None, &[0x0B, 0]);
        fails(
            0x30,
            &body,
            V5,
            Server,
            E::InvalidPropertyValue(0x0B),
            PROTOCOL,
        );
    }

    // 3.3.2.3.2: Payload Format Indicator is 0 or 1.
    #[test]
    fn mqtt_3_3_2_3_2_payload_format_indicator() {
        let body = publish_v5("a", None, &[0x01, 2]);
        fails(
            0x30,
            &body,
            V5,
            Client,
            E::InvalidPropertyValue(0x01),
            PROTOCOL,
        );
    }

    // [MQTT-3.3.2-14]: the Response Topic is a topic name.
    #[test]
    fn mqtt_3_3_2_14_response_topic_without_wildcards() {
        let raw = cat(&[&[0x08], &s("reply/+")]);
        let body = publish_v5("a", None, &raw);
        fails(
            0x30,
            &body,
            V5,
            Client,
            E::InvalidPropertyValue(0x08),
            PROTOCOL,
        );
    }

    #[test]
    fn mqtt_2_2_2_2_publish_property_table() {
        let body = publish_v5("a", None, &[0x11, 0, 0, 0, 1]);
        fails(
            0x30,
            &body,
            V5,
            Client,
            E::PropertyNotAllowed(0x11, "PUBLISH"),
            MALFORMED,
        );
        let raw = cat(&[&[0x03], &s("text"), &[0x03], &s("text")]);
        let body = publish_v5("a", None, &raw);
        fails(
            0x30,
            &body,
            V5,
            Client,
            E::DuplicateProperty(0x03),
            PROTOCOL,
        );
    }

    #[test]
    fn user_properties_repeat_in_order() {
        let raw = cat(&[
            &[0x26],
            &s("k"),
            &s("1"),
            &[0x26],
            &s("k"),
            &s("2"),
            &[0x26],
            &s("a"),
            &s(""),
        ]);
        let Packet::Publish(p) = decode(0x32, &publish_v5("a", Some(9), &raw), V5, Client).unwrap()
        else {
            panic!()
        };
        let pairs: Vec<(&str, &str)> = p
            .properties
            .user_properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(pairs, [("k", "1"), ("k", "2"), ("a", "")]);
        assert_eq!(
            (p.packet_id, p.qos, &p.payload[..]),
            (9, QoS::AtLeastOnce, &b"payload"[..])
        );
    }

    // The hot path: topic and payload are views into the received buffer.
    #[test]
    fn publish_decoding_does_not_copy() {
        let frame = frame(0x3B, &cat(&[&s("t/1"), &[0, 5], b"data"]));
        let h = decode_fixed_header(&frame).unwrap().unwrap();
        let body = bytes::Bytes::copy_from_slice(&frame[h.header_len..]);
        let base = body.as_ptr() as usize;
        let Packet::Publish(p) = decode_packet(h.first_byte, body, V311, Client).unwrap() else {
            panic!()
        };
        assert!(p.dup && p.retain && p.qos == QoS::AtLeastOnce);
        assert_eq!(p.topic.as_bytes().as_ptr() as usize, base + 2);
        assert_eq!(p.payload.as_ptr() as usize, base + 7);
    }

    #[test]
    fn empty_payload_is_allowed() {
        let Packet::Publish(p) = decode(0x31, &s("a"), V311, Client).unwrap() else {
            panic!()
        };
        assert!(p.payload.is_empty() && p.retain);
    }
}

mod pub_resp {
    use super::*;

    const TYPES: [(u8, &str); 4] = [
        (0x40, "PUBACK"),
        (0x50, "PUBREC"),
        (0x62, "PUBREL"),
        (0x70, "PUBCOMP"),
    ];

    // [MQTT-2.2.1-3]
    #[test]
    fn mqtt_2_2_1_3_acknowledgement_packet_id_zero() {
        for (first, _) in TYPES {
            for v in [V311, V5] {
                fails(first, &[0, 0], v, Client, E::ZeroPacketId, PROTOCOL);
            }
            fails(first, &[0], V311, Client, E::Truncated, MALFORMED);
        }
    }

    // 3.1.1 section 3.4.1: remaining length is exactly 2.
    #[test]
    fn mqtt_3_4_1_v311_acknowledgement_is_two_bytes() {
        for (first, name) in TYPES {
            fails(
                first,
                &[0, 1, 0],
                V311,
                Client,
                E::TrailingBytes(name),
                MALFORMED,
            );
        }
    }

    // MQTT 5 3.4.2.1: reason code and properties may be left out.
    #[test]
    fn mqtt_3_4_2_1_short_forms() {
        for (first, _) in TYPES {
            let reason = if first == 0x62 || first == 0x70 {
                0x92
            } else {
                0x10
            };
            let short = decode(first, &[0, 1], V5, Client).unwrap();
            let only_reason = decode(first, &[0, 1, reason], V5, Client).unwrap();
            let full = decode(
                first,
                &cat(&[&[0, 1, reason], &props(&cat(&[&[0x1F], &s("why")]))]),
                V5,
                Client,
            )
            .unwrap();
            let get = |p: Packet| match p {
                Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => r,
                other => panic!("{other:?}"),
            };
            assert_eq!((get(short.clone()).packet_id, get(short).reason), (1, 0));
            assert_eq!(get(only_reason).reason, reason);
            let full = get(full);
            assert_eq!(
                (full.reason, full.properties.reason_string.as_deref()),
                (reason, Some("why"))
            );
        }
    }

    // MQTT 5 3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1: the reason codes of each acknowledgement.
    #[test]
    fn mqtt_3_4_2_1_invalid_reason_codes() {
        fails(
            0x40,
            &[0, 1, 0x92],
            V5,
            Client,
            E::InvalidReasonCode(0x92),
            MALFORMED,
        );
        fails(
            0x50,
            &[0, 1, 0x01],
            V5,
            Client,
            E::InvalidReasonCode(0x01),
            MALFORMED,
        );
        fails(
            0x62,
            &[0, 1, 0x10],
            V5,
            Client,
            E::InvalidReasonCode(0x10),
            MALFORMED,
        );
        fails(
            0x70,
            &[0, 1, 0x80],
            V5,
            Client,
            E::InvalidReasonCode(0x80),
            MALFORMED,
        );
    }

    #[test]
    fn mqtt_3_4_2_2_acknowledgement_property_table() {
        for (first, name) in TYPES {
            let body = cat(&[&[0, 1, 0], &props(&cat(&[&[0x03], &s("x")]))]);
            fails(
                first,
                &body,
                V5,
                Client,
                E::PropertyNotAllowed(0x03, name),
                MALFORMED,
            );
            let body = cat(&[&[0, 1, 0], &props(&[]), &[0]]);
            fails(first, &body, V5, Client, E::TrailingBytes(name), MALFORMED);
        }
    }
}

mod subscribe {
    use super::*;

    fn sub_v311(entries: &[(&str, u8)]) -> Vec<u8> {
        let mut body = vec![0, 1];
        for (f, o) in entries {
            body.extend(s(f));
            body.push(*o);
        }
        body
    }

    fn sub_v5(raw_props: &[u8], entries: &[(&str, u8)]) -> Vec<u8> {
        let mut body = cat(&[&[0, 1], &props(raw_props)]);
        body.extend(&sub_v311(entries)[2..]);
        body
    }

    // [MQTT-2.2.1-3]
    #[test]
    fn mqtt_2_2_1_3_subscribe_packet_id_zero() {
        fails(
            0x82,
            &[0, 0, 0, 1, b'a', 0],
            V311,
            Client,
            E::ZeroPacketId,
            PROTOCOL,
        );
    }

    // [MQTT-3.8.3-3]: at least one filter.
    #[test]
    fn mqtt_3_8_3_3_subscribe_without_filters() {
        fails(0x82, &[0, 1], V311, Client, E::EmptySubscription, PROTOCOL);
        fails(0x82, &[0, 1, 0], V5, Client, E::EmptySubscription, PROTOCOL);
    }

    // [MQTT-4.7.1-1], [MQTT-4.7.1-2], [MQTT-4.7.3-1]
    #[test]
    fn mqtt_4_7_1_invalid_topic_filters() {
        for f in [
            "a/#/b",
            "a+",
            "#a",
            "",
            "$share/g",
            "$share//a",
            "$share/g+/a",
            "a\u{1}",
        ] {
            fails(
                0x82,
                &sub_v311(&[("ok", 0), (f, 0)]),
                V311,
                Client,
                E::InvalidTopicFilter,
                MALFORMED,
            );
            fails(
                0x82,
                &sub_v5(&[], &[(f, 0)]),
                V5,
                Client,
                E::InvalidTopicFilter,
                MALFORMED,
            );
        }
        fails(
            0x82,
            &sub_v311(&[("a\0", 0)]),
            V311,
            Client,
            E::DisallowedCodePoint,
            MALFORMED,
        );
    }

    // [MQTT-3.8.3-4] (3.1.1): reserved option bits must be 0.
    #[test]
    fn mqtt_3_8_3_4_v311_reserved_option_bits() {
        for o in [0x04, 0x08, 0x10, 0x80] {
            fails(
                0x82,
                &sub_v311(&[("a", o)]),
                V311,
                Client,
                E::InvalidSubscriptionOptions,
                MALFORMED,
            );
        }
        fails(
            0x82,
            &sub_v311(&[("a", 3)]),
            V311,
            Client,
            E::InvalidSubscriptionQoS,
            PROTOCOL,
        );
    }

    // [MQTT-3.8.3-5]: MQTT 5 reserved option bits 6 and 7.
    #[test]
    fn mqtt_3_8_3_5_v5_reserved_option_bits() {
        for o in [0x40, 0x80] {
            fails(
                0x82,
                &sub_v5(&[], &[("a", o)]),
                V5,
                Client,
                E::InvalidSubscriptionOptions,
                MALFORMED,
            );
        }
    }

    // MQTT 5 3.8.3.1: Maximum QoS 3 is a protocol error.
    #[test]
    fn mqtt_3_8_3_1_maximum_qos_3() {
        fails(
            0x82,
            &sub_v5(&[], &[("a", 3)]),
            V5,
            Client,
            E::InvalidSubscriptionQoS,
            PROTOCOL,
        );
    }

    // MQTT 5 3.8.3.1: Retain Handling 3 is a protocol error.
    #[test]
    fn mqtt_3_8_3_1_retain_handling_3() {
        fails(
            0x82,
            &sub_v5(&[], &[("a", 0x30)]),
            V5,
            Client,
            E::InvalidRetainHandling,
            PROTOCOL,
        );
    }

    // [MQTT-3.8.3-4] (MQTT 5): No Local on a shared subscription.
    #[test]
    fn mqtt_3_8_3_4_no_local_on_shared_subscription() {
        let body = sub_v5(&[], &[("$share/g/a", 0x04)]);
        fails(
            0x82,
            &body,
            V5,
            Client,
            E::NoLocalOnSharedSubscription,
            PROTOCOL,
        );
    }

    #[test]
    fn v5_options_decode() {
        let body = sub_v5(&[0x0B, 0x80, 0x01], &[("a/+", 0x2E), ("$share/g/#", 0x01)]);
        let Packet::Subscribe(s) = decode(0x82, &body, V5, Client).unwrap() else {
            panic!()
        };
        assert_eq!(s.properties.subscription_identifiers, [128]);
        let o = s.filters[0].options;
        assert_eq!(
            (o.qos, o.no_local, o.retain_as_published, o.retain_handling),
            (QoS::ExactlyOnce, true, true, 2)
        );
        assert_eq!(s.filters[1].filter, "$share/g/#");
    }

    // MQTT 5 3.8.2.1.2: one Subscription Identifier, 1 to 268,435,455.
    #[test]
    fn mqtt_3_8_2_1_2_subscription_identifier() {
        fails(
            0x82,
            &sub_v5(&[0x0B, 0], &[("a", 0)]),
            V5,
            Client,
            E::InvalidPropertyValue(0x0B),
            PROTOCOL,
        );
        fails(
            0x82,
            &sub_v5(&[0x0B, 1, 0x0B, 2], &[("a", 0)]),
            V5,
            Client,
            E::DuplicateProperty(0x0B),
            PROTOCOL,
        );
        let too_long = [0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];
        fails(
            0x82,
            &sub_v5(&too_long, &[("a", 0)]),
            V5,
            Client,
            E::InvalidVarInt,
            MALFORMED,
        );
        let raw = cat(&[&[0x1F], &s("x")]);
        fails(
            0x82,
            &sub_v5(&raw, &[("a", 0)]),
            V5,
            Client,
            E::PropertyNotAllowed(0x1F, "SUBSCRIBE"),
            MALFORMED,
        );
    }

    #[test]
    fn missing_options_byte_is_truncated() {
        let mut body = sub_v311(&[("a", 0)]);
        body.pop();
        fails(0x82, &body, V311, Client, E::Truncated, MALFORMED);
    }
}

mod unsubscribe {
    use super::*;

    #[test]
    fn mqtt_2_2_1_3_unsubscribe_packet_id_zero() {
        fails(
            0xA2,
            &cat(&[&[0, 0], &s("a")]),
            V311,
            Client,
            E::ZeroPacketId,
            PROTOCOL,
        );
    }

    // [MQTT-3.10.3-2]: at least one filter.
    #[test]
    fn mqtt_3_10_3_2_unsubscribe_without_filters() {
        fails(0xA2, &[0, 1], V311, Client, E::EmptySubscription, PROTOCOL);
        fails(0xA2, &[0, 1, 0], V5, Client, E::EmptySubscription, PROTOCOL);
    }

    #[test]
    fn mqtt_4_7_1_unsubscribe_invalid_filter() {
        fails(
            0xA2,
            &cat(&[&[0, 1], &s("a/#/b")]),
            V311,
            Client,
            E::InvalidTopicFilter,
            MALFORMED,
        );
    }

    // MQTT 5 3.10.2.1: only user properties.
    #[test]
    fn mqtt_3_10_2_1_unsubscribe_property_table() {
        let body = cat(&[&[0, 1], &props(&[0x0B, 1]), &s("a")]);
        fails(
            0xA2,
            &body,
            V5,
            Client,
            E::PropertyNotAllowed(0x0B, "UNSUBSCRIBE"),
            MALFORMED,
        );
        let body = cat(&[
            &[0, 1],
            &props(&cat(&[&[0x26], &s("k"), &s("v")])),
            &s("a"),
            &s("b/#"),
        ]);
        let Packet::Unsubscribe(u) = decode(0xA2, &body, V5, Client).unwrap() else {
            panic!()
        };
        assert_eq!(u.filters, ["a", "b/#"]);
    }
}

mod acks_from_server {
    use super::*;

    // [MQTT-3.2.2-1]: bits 7-1 of the acknowledge flags are reserved.
    #[test]
    fn mqtt_3_2_2_1_connack_reserved_flags() {
        fails(
            0x20,
            &[0x02, 0],
            V311,
            Server,
            E::ConnAckReservedFlags,
            MALFORMED,
        );
        fails(
            0x20,
            &[0x80, 0, 0],
            V5,
            Server,
            E::ConnAckReservedFlags,
            MALFORMED,
        );
    }

    #[test]
    fn mqtt_3_2_2_3_connack_codes() {
        fails(
            0x20,
            &[0, 6],
            V311,
            Server,
            E::InvalidReasonCode(6),
            MALFORMED,
        );
        fails(
            0x20,
            &[0, 0x04, 0],
            V5,
            Server,
            E::InvalidReasonCode(0x04),
            MALFORMED,
        );
        fails(
            0x20,
            &[0, 0, 0],
            V311,
            Server,
            E::TrailingBytes("CONNACK"),
            MALFORMED,
        );
        fails(0x20, &[0, 0], V5, Server, E::Truncated, MALFORMED);
    }

    // MQTT 5 3.2.2.3: CONNACK properties and their values.
    #[test]
    fn mqtt_3_2_2_3_connack_property_values() {
        for (raw, pid) in [
            (&[0x24u8, 2][..], 0x24),
            (&[0x25, 2], 0x25),
            (&[0x28, 2], 0x28),
            (&[0x29, 2], 0x29),
            (&[0x2A, 2], 0x2A),
            (&[0x21, 0, 0], 0x21),
            (&[0x27, 0, 0, 0, 0], 0x27),
        ] {
            let body = cat(&[&[0, 0], &props(raw)]);
            fails(
                0x20,
                &body,
                V5,
                Server,
                E::InvalidPropertyValue(pid),
                PROTOCOL,
            );
        }
        let body = cat(&[&[0, 0], &props(&[0x23, 0, 1])]);
        fails(
            0x20,
            &body,
            V5,
            Server,
            E::PropertyNotAllowed(0x23, "CONNACK"),
            MALFORMED,
        );
        let body = cat(&[&[1, 0], &props(&[0x24, 1, 0x22, 0, 10, 0x13, 0, 30])]);
        let Packet::ConnAck(c) = decode(0x20, &body, V5, Server).unwrap() else {
            panic!()
        };
        assert!(c.session_present);
        assert_eq!(c.properties.maximum_qos, Some(1));
        assert_eq!(c.properties.topic_alias_maximum, Some(10));
        assert_eq!(c.properties.server_keep_alive, Some(30));
    }

    #[test]
    fn mqtt_3_9_3_suback_codes() {
        fails(
            0x90,
            &[0, 1, 3],
            V311,
            Server,
            E::InvalidReasonCode(3),
            MALFORMED,
        );
        fails(0x90, &[0, 1], V311, Server, E::Truncated, MALFORMED);
        fails(
            0x90,
            &[0, 1, 0, 0x11],
            V5,
            Server,
            E::InvalidReasonCode(0x11),
            MALFORMED,
        );
        fails(0x90, &[0, 0, 0], V311, Server, E::ZeroPacketId, PROTOCOL);
        let Packet::SubAck(s) = decode(0x90, &[0, 1, 0, 1, 0x80, 0x97], V5, Server).unwrap() else {
            panic!()
        };
        assert_eq!(s.codes, [1, 0x80, 0x97]);
    }

    // 3.1.1 3.11: UNSUBACK is a packet identifier only; MQTT 5 adds a code per filter.
    #[test]
    fn mqtt_3_11_unsuback() {
        fails(
            0xB0,
            &[0, 1, 0],
            V311,
            Server,
            E::TrailingBytes("UNSUBACK"),
            MALFORMED,
        );
        fails(
            0xB0,
            &[0, 1, 0, 0x01],
            V5,
            Server,
            E::InvalidReasonCode(1),
            MALFORMED,
        );
        fails(0xB0, &[0, 1, 0], V5, Server, E::Truncated, MALFORMED);
        let Packet::UnsubAck(u) = decode(0xB0, &[0, 1, 0, 0x11, 0], V5, Server).unwrap() else {
            panic!()
        };
        assert_eq!(u.codes, [0x11, 0]);
        let Packet::UnsubAck(u) = decode(0xB0, &[0, 1], V311, Server).unwrap() else {
            panic!()
        };
        assert!(u.codes.is_empty());
    }
}

mod disconnect_and_auth {
    use super::*;

    // 3.1.1 3.14: DISCONNECT has no variable header.
    #[test]
    fn mqtt_3_14_v311_disconnect_is_empty() {
        for v in [V31, V311] {
            fails(
                0xE0,
                &[0],
                v,
                Client,
                E::TrailingBytes("DISCONNECT"),
                MALFORMED,
            );
        }
    }

    // MQTT 5 3.14.2.1: reason code and properties may be left out.
    #[test]
    fn mqtt_3_14_2_1_disconnect_forms() {
        let get = |body: &[u8]| match decode(0xE0, body, V5, Client).unwrap() {
            Packet::Disconnect(d) => d,
            other => panic!("{other:?}"),
        };
        assert_eq!(get(&[]).reason, 0);
        assert_eq!(get(&[0x04]).reason, 0x04);
        let d = get(&[0x00, 5, 0x11, 0, 0, 0, 60]);
        assert_eq!(d.properties.session_expiry_interval, Some(60));
        fails(
            0xE0,
            &[0x05],
            V5,
            Client,
            E::InvalidReasonCode(0x05),
            MALFORMED,
        );
        fails(
            0xE0,
            &[0, 3, 0x23, 0, 1],
            V5,
            Client,
            E::PropertyNotAllowed(0x23, "DISCONNECT"),
            MALFORMED,
        );
        fails(0xE0, &[0, 1, 0x11], V5, Client, E::Truncated, MALFORMED);
    }

    // MQTT 5 3.15.2.1: AUTH reason codes.
    #[test]
    fn mqtt_3_15_2_1_auth_reason_codes() {
        let Packet::Auth(a) = decode(0xF0, &[], V5, Client).unwrap() else {
            panic!()
        };
        assert_eq!(a.reason, 0);
        fails(
            0xF0,
            &[0x01],
            V5,
            Client,
            E::InvalidReasonCode(0x01),
            MALFORMED,
        );
        let body = cat(&[
            &[0x18],
            &props(&cat(&[&[0x15], &s("SCRAM"), &[0x16], &s("xyz")])),
        ]);
        let Packet::Auth(a) = decode(0xF0, &body, V5, Client).unwrap() else {
            panic!()
        };
        assert_eq!(a.reason, 0x18);
        assert_eq!(a.properties.authentication_method.as_deref(), Some("SCRAM"));
        assert_eq!(
            a.properties.authentication_data.as_deref(),
            Some(&b"xyz"[..])
        );
        fails(
            0xF0,
            &[0x19, 5, 0x11, 0, 0, 0, 1],
            V5,
            Client,
            E::PropertyNotAllowed(0x11, "AUTH"),
            MALFORMED,
        );
    }
}

mod properties {
    use super::*;

    fn disconnect_with(raw_section: &[u8]) -> Result<Packet, E> {
        decode(0xE0, &cat(&[&[0], raw_section]), V5, Client)
    }

    // MQTT 5 2.2.2.2: an identifier the spec does not define.
    #[test]
    fn mqtt_2_2_2_2_unknown_property() {
        for pid in [0x00, 0x04, 0x7F, 0x80, 0xFF] {
            let err = disconnect_with(&props(&[pid, 0])).unwrap_err();
            assert_eq!(err, E::UnknownProperty(pid));
            assert_eq!(err.reason_code(), MALFORMED);
        }
    }

    #[test]
    fn property_length_past_the_packet_is_truncated() {
        assert_eq!(disconnect_with(&[10, 0x11, 0, 0, 0, 1]), Err(E::Truncated));
        // A value cut off by the property length.
        assert_eq!(disconnect_with(&[3, 0x11, 0, 0, 0, 1]), Err(E::Truncated));
        assert_eq!(
            disconnect_with(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
            Err(E::InvalidVarInt)
        );
    }

    #[test]
    fn mqtt_1_5_4_strings_in_properties() {
        let raw = cat(&[&[0x26], &s("k"), &s([0xED, 0xA0, 0x80])]);
        let err = disconnect_with(&props(&raw)).unwrap_err();
        assert_eq!(
            (err.clone(), err.reason_code()),
            (E::InvalidUtf8, MALFORMED)
        );
        let raw = cat(&[&[0x1F], &s("a\0")]);
        assert_eq!(disconnect_with(&props(&raw)), Err(E::DisallowedCodePoint));
    }

    #[test]
    fn mqtt_2_2_2_2_duplicate_property() {
        let raw = cat(&[&[0x1F], &s("a"), &[0x1F], &s("b")]);
        let err = disconnect_with(&props(&raw)).unwrap_err();
        assert_eq!(
            (err.clone(), err.reason_code()),
            (E::DuplicateProperty(0x1F), PROTOCOL)
        );
    }

    #[test]
    fn every_version_decodes_the_same_packet_types() {
        // Sanity: the helpers agree with decode_packet on an ordinary v3 packet.
        let versions: [ProtocolVersion; 2] = [V31, V311];
        for v in versions {
            assert_eq!(decode(0xC0, &[], v, Client), Ok(Packet::PingReq));
        }
    }
}
