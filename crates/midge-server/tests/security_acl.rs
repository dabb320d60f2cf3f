//! `acl_file` end to end: publish (write), every delivery (read, per subscriber), retained
//! messages on subscribe, `check_retain_source`, `%u` / `%c` patterns, the CVE-2017-7650
//! case, the empty file (CVE-2018-12550), `$SYS`, will messages, and queued messages of a
//! persistent session re-checked after a reload — each allowed and denied, in MQTT 3.1.1 and
//! 5.0 where the answers differ.
//!
//! Every expectation was run against Debian's mosquitto 2.0.11 with raw sockets:
//! - a write-denied PUBLISH is acknowledged and dropped: 3.1.1 gets `40 02 id` / `50 02 id`,
//!   MQTT 5 gets PUBACK / PUBREC with 0x87; QoS 0 gets nothing; subscribers get nothing;
//! - SUBSCRIBE is never refused by an ACL file (`b/#` by a user who may not read `b/`, `#`
//!   with an empty file: SUBACK grants the QoS); deliveries are filtered instead;
//! - `$SYS/...` cannot be published even without an ACL file (0x87 in MQTT 5);
//! - a will on a denied topic does not refuse the CONNECT, but is not published;
//! - queued messages are dropped on reconnect when the ACL no longer lets the client read
//!   them.

mod common;

use bytes::Bytes;
use common::*;
use midge_proto::{Connect, Properties, ProtocolVersion, Publish, QoS, Will};

const V311: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;
const VERSIONS: [ProtocolVersion; 2] = [V311, V5];

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A broker from a whole configuration (placeholder listener ports replaced by 0) that can
/// be reloaded in process, as SIGHUP does in the binary.
struct Broker {
    addr: std::net::SocketAddr,
    handle: midge_server::ServerHandle,
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

fn parse_conf(text: &str) -> midge_core::config::Config {
    let mut config = midge_core::config::parse(text, "test.conf").expect("test config parses");
    for l in &mut config.listeners {
        if l.unix_socket.is_none() {
            l.port = 0;
        }
    }
    config
}

impl Broker {
    async fn start(text: &str) -> Broker {
        let server = midge_server::Server::bind(&parse_conf(text))
            .await
            .expect("broker binds");
        let addr = server.local_addrs()[0];
        let handle = server.handle();
        tokio::spawn(server.run());
        Broker { addr, handle }
    }

    /// Re-reads the configuration and its files; returns the errors the broker would log.
    fn reload(&self, text: &str) -> Vec<String> {
        self.handle.reload(&parse_conf(text))
    }
}

/// A broker with `acl` as its ACL file, anonymous clients allowed and no password file, so
/// any username is accepted (as in the Mosquitto probes).
async fn acl_broker(dir: &TempDir, acl: &str, extra: &str) -> (Broker, String) {
    let path = dir.write("acl", acl);
    let conf = format!("listener 1 127.0.0.1\nallow_anonymous true\nacl_file {path}\n{extra}");
    (Broker::start(&conf).await, conf)
}

fn as_user(v: ProtocolVersion, id: &str, user: Option<&str>) -> Connect {
    Connect {
        username: user.map(str::to_owned),
        ..connect_packet(v, id)
    }
}

async fn client(
    addr: std::net::SocketAddr,
    v: ProtocolVersion,
    id: &str,
    user: Option<&str>,
) -> Raw {
    Raw::connect_with(addr, as_user(v, id, user)).await.0
}

/// A persistent session: clean session 0 (3.1.1) or a session expiry (5.0).
fn persistent(v: ProtocolVersion, id: &str, user: Option<&str>) -> Connect {
    let mut c = as_user(v, id, user);
    c.clean_start = false;
    if v.is_v5() {
        c.properties.session_expiry_interval = Some(600);
    }
    c
}

/// Sends a QoS 1 PUBLISH with packet id `id` and expects exactly `ack` (hex).
async fn publish_expect(raw: &mut Raw, topic: &str, payload: &[u8], id: u16, ack: &str) {
    let props: Option<&[u8]> = if raw.version.is_v5() { Some(&[]) } else { None };
    raw.send(&raw_publish(
        0x32,
        topic.as_bytes(),
        Some(id),
        props,
        payload,
    ))
    .await;
    raw.expect(ack).await;
}

/// The PUBACK for a publish the ACL denies, per version: plain success for 3.1.1 (Mosquitto
/// acknowledges and drops), reason 0x87 for MQTT 5.
fn denied_puback(v: ProtocolVersion, id: u16) -> String {
    let [hi, lo] = id.to_be_bytes();
    if v.is_v5() {
        format!("40 03 {hi:02x} {lo:02x} 87")
    } else {
        format!("40 02 {hi:02x} {lo:02x}")
    }
}

/// Publishes at QoS 1 and expects it to be accepted (PUBACK reason below 0x80).
async fn publish_ok(raw: &mut Raw, topic: &str, payload: &[u8]) {
    let code = raw.publish(topic, payload, QoS::AtLeastOnce, false).await;
    assert!(code < 0x80, "publish to {topic} refused with {code:#04x}");
}

/// Publishes at QoS 1 and expects the ACL refusal (0x87 for MQTT 5, a plain PUBACK for
/// 3.1.1).
async fn publish_denied(raw: &mut Raw, topic: &str, payload: &[u8]) {
    let code = raw.publish(topic, payload, QoS::AtLeastOnce, false).await;
    let want = if raw.version.is_v5() { 0x87 } else { 0x00 };
    assert_eq!(code, want, "publish to {topic}: PUBACK reason");
}

/// The next PUBLISH must be on `topic` with `payload` (acknowledged).
async fn expect_message(raw: &mut Raw, topic: &str, payload: &[u8]) {
    let p = raw.recv_publish_ack().await;
    assert_eq!(
        (&*p.topic, &p.payload[..]),
        (topic, payload),
        "expected {topic} {:?}",
        String::from_utf8_lossy(payload)
    );
}

async fn subscribe_all(raw: &mut Raw, filter: &str) {
    let codes = raw.subscribe(filter, QoS::AtLeastOnce).await;
    assert_eq!(
        codes,
        vec![1],
        "SUBACK for {filter}: subscriptions are never refused"
    );
}

/// Alice and bob have their blocks, the anonymous section has its own rules, and two
/// patterns apply to everyone.
const ACL: &str = "\
# anonymous clients
topic read anon/r
topic write anon/w
topic anon/rw

user alice
topic readwrite a/#
topic deny a/secret
topic read shared/#

user bob
topic readwrite b/#
topic readwrite shared/#
topic write sensors/+/temp

user reader
topic read #

user feeder
topic write cli/#
topic write dev/#

pattern readwrite dev/%u/#
pattern read cli/%c/in
pattern write cli/%c/out
";

// ---------------------------------------------------------------------------------------
// Publish (write)
// ---------------------------------------------------------------------------------------

// A write-denied publish is acknowledged and dropped: 3.1.1 gets PUBACK / PUBREC as if it
// had worked, MQTT 5 gets 0x87; QoS 0 gets nothing; a subscriber that may read the topic
// receives nothing (the next message it gets is the allowed one published after).
#[tokio::test]
async fn write_denied_publish_is_acked_and_dropped() {
    let dir = TempDir::new();
    let (b, _) = acl_broker(&dir, ACL, "").await;
    let mut reader = client(b.addr, V311, "rd", Some("reader")).await;
    subscribe_all(&mut reader, "#").await;
    for v in VERSIONS {
        let mut alice = client(b.addr, v, &format!("al{v:?}"), Some("alice")).await;
        let props: Option<&[u8]> = if v.is_v5() { Some(&[]) } else { None };
        // QoS 0: no answer.
        alice
            .send(&raw_publish(0x30, b"b/x", None, props, b"denied0"))
            .await;
        // QoS 1: PUBACK.
        publish_expect(&mut alice, "b/x", b"denied1", 7, &denied_puback(v, 7)).await;
        // QoS 2: PUBREC (0x87 in MQTT 5, and then the flow ends; 3.1.1 completes it).
        alice
            .send(&raw_publish(0x34, b"b/x", Some(8), props, b"denied2"))
            .await;
        if v.is_v5() {
            alice.expect("50 03 00 08 87").await;
        } else {
            alice.expect("50 02 00 08").await;
            alice.send(&hex("62 02 00 08")).await;
            alice.expect("70 02 00 08").await;
        }
        // Deny wins over the grant on a/#.
        publish_expect(&mut alice, "a/secret", b"denied3", 9, &denied_puback(v, 9)).await;
        // Read-only is not write.
        publish_expect(
            &mut alice,
            "shared/x",
            b"denied4",
            10,
            &denied_puback(v, 10),
        )
        .await;
        // The allowed one afterwards is the first (and only) thing the subscriber sees.
        publish_ok(&mut alice, "a/ok", b"allowed").await;
        expect_message(&mut reader, "a/ok", b"allowed").await;
        reader.expect_silence(QUIET).await;
        alice.disconnect().await;
    }
}

// The anonymous section applies to clients without a username only; a username without a
// block gets nothing (not the anonymous rules).
#[tokio::test]
async fn anonymous_section_and_users_without_a_block() {
    let dir = TempDir::new();
    let (b, _) = acl_broker(&dir, ACL, "").await;
    for v in VERSIONS {
        let mut anon = client(b.addr, v, "anon", None).await;
        publish_ok(&mut anon, "anon/w", b"1").await;
        publish_ok(&mut anon, "anon/rw", b"2").await;
        publish_denied(&mut anon, "anon/r", b"3").await;
        publish_denied(&mut anon, "a/x", b"4").await;
        let mut nobody = client(b.addr, v, "nob", Some("nobody")).await;
        publish_denied(&mut nobody, "anon/w", b"5").await;
        publish_denied(&mut nobody, "anon/rw", b"6").await;
        // Reading: anon/rw is delivered to anonymous subscribers, write-only anon/w is not.
        subscribe_all(&mut anon, "anon/#").await;
        let mut anon2 = client(b.addr, V311, "anon2", None).await;
        publish_ok(&mut anon2, "anon/w", b"not for readers").await;
        publish_ok(&mut anon2, "anon/rw", b"rw").await;
        expect_message(&mut anon, "anon/rw", b"rw").await;
        anon.expect_silence(QUIET).await;
        anon.disconnect().await;
        anon2.disconnect().await;
        nobody.disconnect().await;
    }
}

// `topic write sensors/+/temp`: wildcards in grants match one level (`+`) as in
// subscriptions; `sensors/a/b/temp` is not granted.
#[tokio::test]
async fn wildcard_grants_match_like_subscriptions() {
    let dir = TempDir::new();
    let (b, _) = acl_broker(&dir, ACL, "").await;
    for v in VERSIONS {
        let mut bob = client(b.addr, v, "bobw", Some("bob")).await;
        publish_ok(&mut bob, "sensors/kitchen/temp", b"21").await;
        publish_denied(&mut bob, "sensors/a/b/temp", b"x").await;
        publish_denied(&mut bob, "sensors/kitchen/hum", b"x").await;
        publish_ok(&mut bob, "b", b"parent of b/# is granted").await;
        publish_ok(&mut bob, "b/1/2/3", b"deep").await;
        bob.disconnect().await;
    }
}

// ---------------------------------------------------------------------------------------
// Subscribe and deliveries (read)
// ---------------------------------------------------------------------------------------

// SUBSCRIBE is never refused by an ACL file (Mosquitto 2.0.11 grants `b/#` to alice, who may
// not read it); what arrives is filtered per message.
#[tokio::test]
async fn subscribe_is_granted_and_deliveries_are_filtered() {
    let dir = TempDir::new();
    let (b, _) = acl_broker(&dir, ACL, "").await;
    for v in VERSIONS {
        let mut alice = client(b.addr, v, "alsub", Some("alice")).await;
        let codes = alice.subscribe("b/#", QoS::ExactlyOnce).await;
        assert_eq!(codes, vec![2], "SUBACK for b/# ({v:?})");
        let codes = alice.subscribe("$SYS/#", QoS::AtLeastOnce).await;
        assert_eq!(codes, vec![1], "SUBACK for $SYS/# ({v:?})");
        let mut bob = client(b.addr, V311, "bobp", Some("bob")).await;
        publish_ok(&mut bob, "b/secret", b"bob only").await;
        alice.expect_silence(QUIET).await;
        alice.disconnect().await;
        bob.disconnect().await;
    }
}

// Two subscribers on `#` with different users: each receives only what it may read.
#[tokio::test]
async fn deliveries_are_checked_per_subscriber() {
    let dir = TempDir::new();
    let (b, _) = acl_broker(&dir, ACL, "").await;
    for v in VERSIONS {
        let mut alice = client(b.addr, v, "sa", Some("alice")).await;
        let mut bob = client(b.addr, v, "sb", Some("bob")).await;
        subscribe_all(&mut alice, "#").await;
        subscribe_all(&mut bob, "#").await;
        let mut bp = client(b.addr, v, "bp", Some("bob")).await;
        let mut ap = client(b.addr, v, "ap", Some("alice")).await;
        publish_ok(&mut bp, "b/private", b"b1").await; // bob reads, alice does not
        publish_ok(&mut bp, "shared/news", b"s1").await; // both read
        publish_ok(&mut ap, "a/private", b"a1").await; // alice reads, bob does not
        publish_ok(&mut ap, "a/secret2", b"a2").await;
        expect_message(&mut alice, "shared/news", b"s1").await;
        expect_message(&mut alice, "a/private", b"a1").await;
        expect_message(&mut alice, "a/secret2", b"a2").await;
        alice.expect_silence(QUIET).await;
        expect_message(&mut bob, "b/private", b"b1").await;
        expect_message(&mut bob, "shared/news", b"s1").await;
        bob.expect_silence(QUIET).await;
        for r in [alice, bob, bp, ap] {
            r.disconnect().await;
        }
    }
}

// `topic deny a/secret` also denies reading it, even with `topic readwrite a/#` granted.
#[tokio::test]
async fn deny_wins_for_reading_too() {
    let dir = TempDir::new();
    let (b, _) = acl_broker(
        &dir,
        "user alice\ntopic readwrite a/#\ntopic deny a/secret\nuser w\ntopic write a/#\n",
        "",
    )
    .await;
    for v in VERSIONS {
        let mut alice = client(b.addr, v, "ds", Some("alice")).await;
        subscribe_all(&mut alice, "a/#").await;
        let mut w = client(b.addr, V311, "dw", Some("w")).await;
        publish_ok(&mut w, "a/secret", b"hidden").await;
        publish_ok(&mut w, "a/open", b"visible").await;
        expect_message(&mut alice, "a/open", b"visible").await;
        alice.expect_silence(QUIET).await;
        alice.disconnect().await;
        w.disconnect().await;
    }
}

// Retained messages sent on subscribe are filtered by the subscriber's read rights.
#[tokio::test]
async fn retained_messages_on_subscribe_are_filtered() {
    let dir = TempDir::new();
    let (b, _) = acl_broker(&dir, ACL, "").await;
    let mut bob = client(b.addr, V311, "rp", Some("bob")).await;
    assert_eq!(
        bob.publish("b/r", b"bob's", QoS::AtLeastOnce, true).await,
        0
    );
    assert_eq!(
        bob.publish("shared/r", b"everyone's", QoS::AtLeastOnce, true)
            .await,
        0
    );
    for v in VERSIONS {
        let mut alice = client(b.addr, v, "ra", Some("alice")).await;
        subscribe_all(&mut alice, "#").await;
        let p = alice.recv_publish_ack().await;
        assert_eq!(
            (&*p.topic, &p.payload[..]),
            ("shared/r", &b"everyone's"[..])
        );
        assert!(p.retain, "retained flag on subscribe");
        alice.expect_silence(QUIET).await;
        let mut bob2 = client(b.addr, v, "rb", Some("bob")).await;
        subscribe_all(&mut bob2, "#").await;
        let mut got = vec![
            bob2.recv_publish_ack().await.topic.to_string(),
            bob2.recv_publish_ack().await.topic.to_string(),
        ];
        got.sort();
        assert_eq!(got, ["b/r", "shared/r"]);
        bob2.expect_silence(QUIET).await;
        alice.disconnect().await;
        bob2.disconnect().await;
    }
}

// `check_retain_source true`: a retained message is sent on subscribe only while its
// publisher may still write its topic. Bob publishes a retained message, a reload takes his
// write right away: a new subscriber does not get it. With `check_retain_source false` it
// does. (Mosquitto 2.0.11 behaves exactly so with the option written explicitly; when the
// option is left out it delivered the message, Midge's default is true.)
#[tokio::test]
async fn check_retain_source_rechecks_the_publisher() {
    let before = "user bob\ntopic readwrite r/#\nuser carol\ntopic read r/#\n";
    let after = "user bob\ntopic read r/#\nuser carol\ntopic read r/#\n";
    for (option, delivered) in [("true", false), ("false", true)] {
        let dir = TempDir::new();
        let (b, conf) = acl_broker(&dir, before, &format!("check_retain_source {option}\n")).await;
        let mut bob = client(b.addr, V5, "rs-bob", Some("bob")).await;
        assert!(bob.publish("r/x", b"kept", QoS::AtLeastOnce, true).await < 0x80);
        // Before the change carol gets it.
        let mut carol = client(b.addr, V311, "rs-c1", Some("carol")).await;
        subscribe_all(&mut carol, "r/#").await;
        expect_message(&mut carol, "r/x", b"kept").await;
        carol.disconnect().await;

        dir.write("acl", after);
        assert_eq!(b.reload(&conf), Vec::<String>::new(), "reload errors");
        publish_denied(&mut bob, "r/z", b"no longer").await;
        let mut carol = client(b.addr, V311, "rs-c2", Some("carol")).await;
        subscribe_all(&mut carol, "r/#").await;
        if delivered {
            expect_message(&mut carol, "r/x", b"kept").await;
        } else {
            carol.expect_silence(QUIET).await;
        }
        carol.disconnect().await;
        bob.disconnect().await;
    }
}

// ---------------------------------------------------------------------------------------
// Patterns and CVE-2017-7650
// ---------------------------------------------------------------------------------------

// `pattern readwrite dev/%u/#`: each user writes and reads its own subtree only; anonymous
// clients get no `%u` pattern. `pattern read cli/%c/in` / `pattern write cli/%c/out`: by
// client id, for anonymous clients too.
#[tokio::test]
async fn patterns_substitute_username_and_client_id() {
    let dir = TempDir::new();
    let (b, _) = acl_broker(&dir, ACL, "").await;
    for v in VERSIONS {
        let mut carol = client(b.addr, v, "zz", Some("carol")).await;
        publish_ok(&mut carol, "dev/carol/1", b"own").await;
        publish_denied(&mut carol, "dev/dave/1", b"other's").await;
        publish_ok(&mut carol, "cli/zz/out", b"own id").await;
        publish_denied(&mut carol, "cli/yy/out", b"other id").await;
        publish_denied(&mut carol, "cli/zz/in", b"read only").await;

        let mut anon = client(b.addr, v, "anonpat", None).await;
        publish_ok(&mut anon, "cli/anonpat/out", b"by client id").await;
        publish_denied(&mut anon, "dev/anonpat/1", b"no %u for anonymous").await;

        // Reading: carol (client id zz) receives cli/zz/in and dev/carol/..., not another
        // id's or user's.
        subscribe_all(&mut carol, "#").await;
        let mut feeder = client(b.addr, V311, "feeder", Some("feeder")).await;
        let mut dave = client(b.addr, V311, "yy", Some("dave")).await;
        publish_ok(&mut dave, "dev/dave/2", b"dave's").await;
        publish_ok(&mut dave, "cli/yy/out", b"yy's").await;
        publish_ok(&mut feeder, "cli/yy/in", b"for yy").await;
        publish_ok(&mut feeder, "cli/zz/in", b"for zz").await;
        let mut zz_writer = client(b.addr, V311, "writer", Some("carol")).await;
        publish_ok(&mut zz_writer, "dev/carol/2", b"carol's").await;
        expect_message(&mut carol, "cli/zz/in", b"for zz").await;
        expect_message(&mut carol, "dev/carol/2", b"carol's").await;
        carol.expect_silence(QUIET).await;
        for r in [carol, anon, feeder, dave, zz_writer] {
            r.disconnect().await;
        }
    }
}

// CVE-2017-7650: a client id or username containing `+` or `#` must never match a `%c` /
// `%u` pattern (it would turn into a wildcard and open everyone's topics). Mosquitto
// 2.0.11: every pattern check is denied for such a client, while its own `user` block still
// applies (client id `+` with user bob may still write b/q).
#[tokio::test]
async fn wildcard_client_id_or_username_never_matches_patterns() {
    let dir = TempDir::new();
    let (b, _) = acl_broker(&dir, ACL, "").await;
    for v in VERSIONS {
        let mut plus = client(b.addr, v, "+", Some("bob")).await;
        publish_denied(&mut plus, "cli/zz/out", b"x").await;
        publish_denied(&mut plus, "dev/bob/1", b"x").await;
        publish_ok(&mut plus, "b/q", b"own user block still applies").await;
        plus.disconnect().await;

        let mut hash = client(b.addr, v, "#", None).await;
        publish_denied(&mut hash, "cli/zz/out", b"x").await;
        hash.disconnect().await;

        let mut user_hash = client(b.addr, v, "uh", Some("#")).await;
        publish_denied(&mut user_hash, "dev/alice/1", b"x").await;
        publish_denied(&mut user_hash, "dev/carol/x", b"x").await;
        publish_denied(&mut user_hash, "cli/uh/out", b"x").await;
        user_hash.disconnect().await;

        let mut user_plus = client(b.addr, v, "up", Some("+")).await;
        publish_denied(&mut user_plus, "dev/alice/1", b"x").await;
        user_plus.disconnect().await;
    }
    // Reading: a client with id `+` (or username `#`) subscribed to `#` must not receive
    // other clients' `cli/<id>/in` (or `dev/<user>/...`) messages, which its `%c` (`%u`)
    // would otherwise match as a wildcard; a normal reader receives them.
    let mut spy = client(b.addr, V311, "+", None).await;
    subscribe_all(&mut spy, "#").await;
    let mut spy_user = client(b.addr, V5, "spy2", Some("#")).await;
    subscribe_all(&mut spy_user, "#").await;
    let mut reader = client(b.addr, V311, "rd", Some("reader")).await;
    subscribe_all(&mut reader, "#").await;
    let mut feeder = client(b.addr, V311, "feeder", Some("feeder")).await;
    publish_ok(&mut feeder, "cli/zz/in", b"for zz").await;
    publish_ok(&mut feeder, "dev/alice/cmd", b"for alice").await;
    expect_message(&mut reader, "cli/zz/in", b"for zz").await;
    expect_message(&mut reader, "dev/alice/cmd", b"for alice").await;
    spy.expect_silence(QUIET).await;
    spy_user.expect_silence(QUIET).await;
}

// ---------------------------------------------------------------------------------------
// Empty file, $SYS, wills
// ---------------------------------------------------------------------------------------

// CVE-2018-12550: an ACL file with only comments and blank lines denies every publish and
// every delivery (Mosquitto 2.0.11: 0x87 / plain PUBACK, nothing delivered, SUBACK granted).
#[tokio::test]
async fn empty_acl_file_denies_everything() {
    let dir = TempDir::new();
    let (b, _) = acl_broker(&dir, "# nothing here\n\n# really nothing\n", "").await;
    for v in VERSIONS {
        let mut sub = client(b.addr, v, "es", None).await;
        subscribe_all(&mut sub, "#").await;
        let mut user_sub = client(b.addr, v, "eus", Some("alice")).await;
        subscribe_all(&mut user_sub, "#").await;
        let mut anon = client(b.addr, v, "ep", None).await;
        publish_denied(&mut anon, "x", b"1").await;
        let mut alice = client(b.addr, v, "ea", Some("alice")).await;
        publish_denied(&mut alice, "a/b", b"2").await;
        publish_denied(&mut alice, "$SYS/x", b"3").await;
        sub.expect_silence(QUIET).await;
        user_sub.expect_silence(QUIET).await;
        for r in [sub, user_sub, anon, alice] {
            r.disconnect().await;
        }
    }
}

// Even without an ACL file, clients cannot publish into `$SYS` (Mosquitto 2.0.11: 0x87 for
// MQTT 5, a plain PUBACK for 3.1.1, and nothing delivered); other `$` topics work.
#[tokio::test]
async fn sys_publish_denied_without_acl_file() {
    // No $SYS tree of the broker's own, so that any $SYS message seen came from a client.
    let b = start("allow_anonymous true\nsys_interval 0", |_| {}).await;
    for v in VERSIONS {
        let mut sub = Raw::connect(b.addr, v, "sys-sub").await;
        subscribe_all(&mut sub, "$SYS/#").await;
        let mut p = Raw::connect(b.addr, v, "sys-pub").await;
        publish_expect(
            &mut p,
            "$SYS/broker/version",
            b"fake",
            3,
            &denied_puback(v, 3),
        )
        .await;
        publish_denied(&mut p, "$SYS/x", b"y").await;
        sub.expect_silence(QUIET).await;
        // A normal topic still goes through.
        subscribe_all(&mut sub, "ok/#").await;
        publish_ok(&mut p, "ok/1", b"fine").await;
        expect_message(&mut sub, "ok/1", b"fine").await;
        sub.disconnect().await;
        p.disconnect().await;
    }
}

fn with_will(v: ProtocolVersion, id: &str, user: &str, topic: &str) -> Connect {
    Connect {
        will: Some(Will {
            topic: topic.into(),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Properties::default(),
        }),
        ..as_user(v, id, Some(user))
    }
}

// A will on a topic the ACL denies: the CONNECT is still accepted (as with Mosquitto
// 2.0.11), but the will is not published when the connection drops. A will the ACL allows
// is published.
#[tokio::test]
async fn will_not_published_when_acl_denies_its_topic() {
    let dir = TempDir::new();
    let acl =
        "user alice\ntopic readwrite a/#\ntopic read will/#\nuser bob\ntopic readwrite will/#\n";
    let (b, _) = acl_broker(&dir, acl, "").await;
    for v in VERSIONS {
        let mut sub = client(b.addr, V311, "wsub", Some("bob")).await;
        subscribe_all(&mut sub, "will/#").await;
        let (alice, ack) =
            Raw::connect_with(b.addr, with_will(v, "wa", "alice", "will/alice")).await;
        assert_eq!(ack.code, 0);
        drop(alice); // abnormal end: the will is due
        settle().await;
        sub.expect_silence(QUIET).await;
        let (bob, _) = Raw::connect_with(b.addr, with_will(v, "wb", "bob", "will/bob")).await;
        drop(bob);
        expect_message(&mut sub, "will/bob", b"gone").await;
        sub.disconnect().await;
    }
}

// ---------------------------------------------------------------------------------------
// Reload while clients are connected (in process; the binary's SIGHUP is in
// crates/midge/tests/reload.rs)
// ---------------------------------------------------------------------------------------

// Queued messages of a persistent session are checked against the ACL in force when the
// client comes back: carol's read right is removed while she is offline, so the message
// queued for her is dropped (Mosquitto 2.0.11: nothing delivered after the reload).
#[tokio::test]
async fn queued_messages_rechecked_on_reconnect_after_acl_change() {
    let before = "user bob\ntopic readwrite r/#\nuser carol\ntopic read r/#\ntopic read keep/#\nuser w\ntopic write keep/#\n";
    let after = "user bob\ntopic readwrite r/#\nuser carol\ntopic read keep/#\nuser w\ntopic write keep/#\n";
    for v in VERSIONS {
        let dir = TempDir::new();
        let (b, conf) = acl_broker(&dir, before, "").await;
        let (mut carol, _) = Raw::connect_with(b.addr, persistent(v, "qc", Some("carol"))).await;
        subscribe_all(&mut carol, "r/#").await;
        subscribe_all(&mut carol, "keep/#").await;
        carol.disconnect().await;

        let mut bob = client(b.addr, V311, "qb", Some("bob")).await;
        publish_ok(&mut bob, "r/y", b"queued").await;
        let mut w = client(b.addr, V311, "qw", Some("w")).await;
        publish_ok(&mut w, "keep/1", b"still readable").await;

        dir.write("acl", after);
        assert_eq!(b.reload(&conf), Vec::<String>::new());

        let (mut carol, ack) = Raw::connect_with(b.addr, persistent(v, "qc", Some("carol"))).await;
        assert!(ack.session_present, "session kept");
        expect_message(&mut carol, "keep/1", b"still readable").await;
        carol.expect_silence(QUIET).await;
        // And live deliveries follow the new rules too.
        publish_ok(&mut bob, "r/z", b"live").await;
        carol.expect_silence(QUIET).await;
        for r in [carol, bob, w] {
            r.disconnect().await;
        }
    }
}

// A reload applies at once to connected clients, for publishing and for receiving, on
// subscriptions made before it; the connections stay open.
#[tokio::test]
async fn reload_applies_to_connected_clients_at_once() {
    let before = "user alice\ntopic readwrite a/#\nuser bob\ntopic readwrite a/#\n";
    let after = "user alice\ntopic read a/#\ntopic readwrite new/#\nuser bob\ntopic write a/#\ntopic readwrite new/#\n";
    let dir = TempDir::new();
    let (b, conf) = acl_broker(&dir, before, "").await;
    let mut alice = client(b.addr, V5, "ra", Some("alice")).await;
    let mut bob = client(b.addr, V5, "rb", Some("bob")).await;
    subscribe_all(&mut alice, "#").await;
    subscribe_all(&mut bob, "#").await;
    publish_ok(&mut alice, "a/1", b"before").await;
    expect_message(&mut alice, "a/1", b"before").await;
    expect_message(&mut bob, "a/1", b"before").await;

    dir.write("acl", after);
    assert_eq!(b.reload(&conf), Vec::<String>::new());

    publish_denied(&mut alice, "a/2", b"alice can no longer write").await;
    publish_ok(&mut bob, "a/3", b"bob writes").await;
    expect_message(&mut alice, "a/3", b"bob writes").await;
    publish_ok(&mut alice, "new/1", b"new grant").await;
    expect_message(&mut alice, "new/1", b"new grant").await;
    expect_message(&mut bob, "new/1", b"new grant").await;
    // bob may no longer read a/#: the a/3 message never reached him.
    bob.expect_silence(QUIET).await;
    alice.ping().await;
    bob.ping().await;
}

// A reload whose ACL file has a bad line keeps the previous ACL and reports `file:line:`.
#[tokio::test]
async fn broken_acl_file_on_reload_keeps_previous_rules() {
    let dir = TempDir::new();
    let (b, conf) = acl_broker(&dir, "user alice\ntopic readwrite a/#\n", "").await;
    let mut alice = client(b.addr, V5, "ba", Some("alice")).await;
    subscribe_all(&mut alice, "a/#").await;
    let path = dir.write(
        "acl",
        "user alice\ntopic readwrite everything/#\nbogus line here\n",
    );
    let errors = b.reload(&conf);
    assert_eq!(errors.len(), 1, "errors: {errors:?}");
    assert!(
        errors[0].contains(&format!("{path}:3:")),
        "error names the file and line: {errors:?}"
    );
    publish_ok(&mut alice, "a/still", b"old rules").await;
    expect_message(&mut alice, "a/still", b"old rules").await;
    publish_denied(&mut alice, "everything/x", b"new rules not applied").await;
}

// Without a message to deliver, nothing is sent: a denied publish leaves no trace in the
// retained store either (a later subscriber gets nothing).
#[tokio::test]
async fn denied_retained_publish_is_not_stored() {
    let dir = TempDir::new();
    let (b, _) = acl_broker(&dir, ACL, "").await;
    for v in VERSIONS {
        let mut alice = client(b.addr, v, "dr", Some("alice")).await;
        let p = Publish {
            packet_id: 0,
            ..publish_packet("b/retained", b"must not stay", QoS::AtLeastOnce, true)
        };
        let code = alice.publish_packet(p).await;
        assert_eq!(code, if v.is_v5() { 0x87 } else { 0 });
        let mut reader = client(b.addr, v, "drr", Some("reader")).await;
        subscribe_all(&mut reader, "b/#").await;
        reader.expect_silence(QUIET).await;
        reader.disconnect().await;
        alice.disconnect().await;
    }
}
