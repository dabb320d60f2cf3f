//! `audit_log`: refused logins, ACL denials and protocol violations each leave one JSON line
//! with who, from where and why. Driven by raw MQTT clients. (Dynamic security commands and
//! denied subscriptions are audited through the same call; see tests/dynsec.rs for them.)

mod common;

use bytes::Bytes;
use common::*;
use midge_proto::{Connect, Packet, ProtocolVersion, QoS};

/// alice / s3cret (`$7$`, from the compatibility reference's test vectors).
const ALICE: &str = "alice:$7$101$fmqt2++sRIF8iKr1$fN5FkA4yxCoA6HLir0QnVVwDYlNq/JL6oacva5ZcLKtCGLWJreky3N6/BeFymhCsv1jLDHMhimqi+u+ZP95Haw==";

fn login(id: &str, user: &str, password: &str) -> Connect {
    Connect {
        username: Some(user.into()),
        password: Some(Bytes::copy_from_slice(password.as_bytes())),
        ..connect_packet(ProtocolVersion::V5, id)
    }
}

/// The audit file's events, once at least `n` are there (bounded wait).
async fn events(path: &str, n: usize) -> Vec<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
            .collect();
        if lines.len() >= n || tokio::time::Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn security_events_are_recorded_as_json_lines() {
    let dir = TempDir::new();
    let passwords = dir.write("passwd", &format!("{ALICE}\n"));
    let acl = dir.write("acl", "user alice\ntopic readwrite alice/#\n");
    let audit = dir.path("audit.jsonl");
    let b = start(
        &format!(
            "allow_anonymous false\npassword_file {passwords}\nacl_file {acl}\n\
             audit_log {audit}\nauth_failure_delay 0"
        ),
        |_| {},
    )
    .await;

    // A refused login.
    let mut guesser = Raw::tcp(b.addr).await;
    guesser.version = ProtocolVersion::V5;
    guesser
        .send_packet(&Packet::Connect(Box::new(login(
            "guesser", "alice", "wrong",
        ))))
        .await;
    match guesser.recv().await {
        Packet::ConnAck(a) => assert_eq!(a.code, 0x87),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    // Denied publish and subscribe, then a protocol violation.
    let (mut alice, ack) = Raw::connect_with(b.addr, login("alice-1", "alice", "s3cret")).await;
    assert_eq!(ack.code, 0);
    assert_eq!(
        alice.publish("bob/x", b"no", QoS::AtLeastOnce, false).await,
        0x87
    );
    // An ACL file never refuses SUBSCRIBE (as in Mosquitto): nothing to audit there.
    assert_eq!(alice.subscribe("bob/#", QoS::AtLeastOnce).await, vec![1]);
    alice.send(&hex("30 03 00 00 00")).await; // PUBLISH with an empty topic and no alias
    alice.expect_disconnect(0x82).await;

    let all = events(&audit, 3).await;
    let find = |event: &str| {
        all.iter()
            .filter(|e| e["event"] == event)
            .cloned()
            .collect::<Vec<_>>()
    };
    let auth = find("auth_failure");
    assert_eq!(auth.len(), 1, "{all:?}");
    assert_eq!(auth[0]["client_id"], "guesser");
    assert_eq!(auth[0]["username"], "alice");
    assert!(auth[0]["address"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_eq!(auth[0]["reason"], "bad username or password");
    let acl = find("acl_denied");
    assert_eq!(acl.len(), 1, "{all:?}");
    assert_eq!(acl[0]["action"], "publish");
    assert_eq!(acl[0]["topic"], "bob/x");
    assert_eq!(acl[0]["username"], "alice");
    let violation = find("protocol_violation");
    assert_eq!(violation.len(), 1, "{all:?}");
    assert_eq!(violation[0]["client_id"], "alice-1");
    assert_eq!(violation[0]["reason_code"], 0x82);
    assert!(all.iter().all(|e| e["time"].as_f64().unwrap() > 1.6e9));

    // Passwords never reach the file.
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(!text.contains("wrong") && !text.contains("s3cret"));
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&audit).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
}
