//! Every row of the Mosquitto CVE / security-bug table (`mosquitto-compat.md` §5) as an
//! integration test against the real `midge` binary: the triggering input is sent (raw
//! MQTT bytes over TCP, or Debian's tools where a real client is needed), then
//!
//! 1. the broker process is still alive,
//! 2. a fresh client can still connect, subscribe and receive a publish,
//! 3. the attacker got the expected answer (close, CONNACK code, reason code, SUBACK code),
//! 4. the broker's `VmHWM` / `VmRSS` (from `/proc/<pid>/status`) are printed before and
//!    after (`cargo test --test cve -- --nocapture`), and only a generous ceiling on RSS
//!    growth is asserted.
//!
//! No test asserts timing: waits are upper bounds on something that must happen, never
//! measurements. Loops are bounded in count. Rows about bridges (a client role Midge does not
//! play here: CVE-2017-7655, 2.0.9 `bridge_cafile`, CVE-2024-3935, CVE-2024-10525, 2.0.22
//! bridged `$CONTROL`) are not here; PROXY protocol is not implemented, and the test pins
//! that Midge refuses to start with `enable_proxy_protocol`. Not covered yet: non-UTF-8
//! usernames from certificates or PSK identities (2.0.16) and certificates with missing or
//! empty fields (2.0.23).
//!
//! Tests that need Debian's tools fail (never skip) when they are missing.

mod common;

use common::dynsec::{dynsec_conf, Ctrl, ADMIN, ADMIN_PW, PLUGIN};
use common::proc::{cpu_seconds, mem_of, Mem};
use common::raw::{assert_silence, frame, hex, str16, varint, Ended, Wire};
use common::{free_port, tls, Midge, TempDir};

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Longest wait for something that must happen.
const WAIT: Duration = Duration::from_secs(5);
/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(500);
/// The ceiling on broker RSS growth over one test.
const RSS_CEILING_KIB: u64 = 64 * 1024;

/// alice / s3cret (`$7$`, Debian's mosquitto_passwd 2.0.11).
const ALICE: &str = "alice:$7$101$fmqt2++sRIF8iKr1$fN5FkA4yxCoA6HLir0QnVVwDYlNq/JL6oacva5ZcLKtCGLWJreky3N6/BeFymhCsv1jLDHMhimqi+u+ZP95Haw==";
/// bob / hunter2 (`$6$`).
const BOB: &str = "bob:$6$QO6n4MiGao+ua12u$MWQQXEgNW+sU/kybxta+Pet5iHXXT1pebC0EUt1ECkqSPFTXSuEorAwg3wtC1i6AzL3vlO9y+0FThYtFgOZqTw==";

// =======================================================================================
// The broker process and its memory
// =======================================================================================

/// How the health check logs in.
#[derive(Clone, Copy)]
enum Health<'a> {
    /// Anonymous: connect, subscribe, publish, receive.
    Anonymous,
    /// With a username and password.
    User(&'a str, &'a str),
    /// Connect and PINGREQ only (the broker denies every topic by design).
    PingOnly,
}

/// A `midge` binary on a free loopback port with a temp directory, killed on drop.
struct Broker {
    dir: TempDir,
    port: u16,
    midge: Midge,
    start: Mem,
}

impl Broker {
    /// Runs `listener <port> 127.0.0.1` followed by `config` (`{dir}` replaced by the temp
    /// directory).
    fn start(config: &str) -> Broker {
        let dir = TempDir::new();
        Broker::start_in(dir, config)
    }

    fn start_in(dir: TempDir, config: &str) -> Broker {
        let port = free_port();
        let text = format!(
            "listener {port} 127.0.0.1\n{}",
            config.replace("{dir}", &dir.0.display().to_string())
        );
        Broker::start_raw(dir, &text, port)
    }

    /// Runs `config` as given; waits for `port`.
    fn start_raw(dir: TempDir, config: &str, port: u16) -> Broker {
        let conf = dir.write("midge.conf", config);
        let midge = Midge::start(&conf, port);
        let start = mem_of(midge.child.id());
        Broker {
            dir,
            port,
            midge,
            start,
        }
    }

    fn pid(&self) -> u32 {
        self.midge.child.id()
    }

    fn mem(&self) -> Mem {
        mem_of(self.pid())
    }

    fn path(&self, name: &str) -> String {
        self.dir.0.join(name).display().to_string()
    }

    fn assert_alive(&mut self, what: &str) {
        if let Ok(Some(status)) = self.midge.child.try_wait() {
            panic!(
                "{what}: midge exited ({status}):\n{}",
                self.midge.log_text()
            );
        }
    }

    /// Prints the memory now against `before` and asserts only the generous ceiling.
    fn print_mem(&self, what: &str, before: Mem) {
        let now = self.mem();
        println!(
            "[{what}] broker VmRSS {} KiB -> {} KiB (growth {} KiB), VmHWM {} KiB -> {} KiB",
            before.rss_kib,
            now.rss_kib,
            now.rss_kib as i64 - before.rss_kib as i64,
            before.hwm_kib,
            now.hwm_kib
        );
        assert!(
            now.rss_kib < before.rss_kib + RSS_CEILING_KIB,
            "{what}: broker RSS grew from {} KiB to {} KiB",
            before.rss_kib,
            now.rss_kib
        );
    }

    /// After an attack: alive, a fresh client works, memory printed and bounded.
    fn after(&mut self, what: &str, health: Health<'_>) {
        self.assert_alive(what);
        health_check(self.port, health, what);
        self.assert_alive(what);
        let start = self.start;
        self.print_mem(what, start);
    }
}

static HEALTH_N: AtomicUsize = AtomicUsize::new(0);

/// A fresh client connects, subscribes to `health/<n>`, publishes there and receives it.
fn health_check(port: u16, health: Health<'_>, what: &str) {
    let n = HEALTH_N.fetch_add(1, Ordering::Relaxed);
    let id = format!("health-{}-{n}", std::process::id());
    let mut conn = Conn::v311(&id);
    if let Health::User(u, p) = health {
        conn = conn.user(u, p);
    }
    let mut c = Raw::open(port, false);
    c.send(&conn.bytes());
    let ack = c
        .recv()
        .unwrap_or_else(|e| panic!("{what}: health client got no CONNACK: {e:?}"));
    assert_eq!(hex(&ack), "20 02 00 00", "{what}: health client refused");
    c.ping();
    if matches!(health, Health::PingOnly) {
        c.disconnect();
        return;
    }
    let topic = format!("health/{n}");
    assert_eq!(
        c.subscribe(&[(topic.as_bytes(), 1)], &[]),
        vec![1],
        "{what}: health subscription not granted"
    );
    c.publish(topic.as_bytes(), b"ok", 1, &[]);
    let (t, p) = c.expect_publish();
    assert_eq!((t.as_slice(), p.as_slice()), (topic.as_bytes(), &b"ok"[..]));
    c.disconnect();
}

/// Runs the `midge` binary with `config` expecting it to refuse to start: returns stderr.
fn start_fails(dir: &TempDir, config: &str) -> String {
    let conf = dir.write("bad.conf", config);
    let mut child = Command::new(env!("CARGO_BIN_EXE_midge"))
        .args(["-c", &conf])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start midge");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "midge started with a configuration it must refuse:\n{config}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.code().is_some_and(|c| c != 0),
        "midge must exit with an error code (not a signal): {:?}\n{err}",
        out.status
    );
    err
}

fn require_dynsec() {
    assert!(
        std::path::Path::new(PLUGIN).exists(),
        "{PLUGIN} is missing: install Debian package mosquitto (apt-get install mosquitto)"
    );
}

// =======================================================================================
// Hand-built MQTT packets
// =======================================================================================

/// A property block: varint length, then the properties.
fn props(p: &[u8]) -> Vec<u8> {
    let mut out = varint(p.len());
    out.extend_from_slice(p);
    out
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[derive(Clone)]
struct Will {
    props: Vec<u8>,
    topic: Vec<u8>,
    payload: Vec<u8>,
    qos: u8,
}

/// A CONNECT, built field by field so any one can be made wrong.
#[derive(Clone)]
struct Conn {
    v5: bool,
    id: Vec<u8>,
    keepalive: u16,
    props: Vec<u8>,
    clean: bool,
    will: Option<Will>,
    user: Option<Vec<u8>>,
    pass: Option<Vec<u8>>,
    /// OR-ed into the connect flags after they are computed.
    extra_flags: u8,
}

impl Conn {
    fn v311(id: &str) -> Conn {
        Conn {
            v5: false,
            id: id.as_bytes().to_vec(),
            keepalive: 60,
            props: Vec::new(),
            clean: true,
            will: None,
            user: None,
            pass: None,
            extra_flags: 0,
        }
    }

    fn v5(id: &str) -> Conn {
        Conn {
            v5: true,
            ..Conn::v311(id)
        }
    }

    fn user(mut self, u: &str, p: &str) -> Conn {
        self.user = Some(u.as_bytes().to_vec());
        self.pass = Some(p.as_bytes().to_vec());
        self
    }

    fn props(mut self, p: &[u8]) -> Conn {
        self.props = p.to_vec();
        self
    }

    fn will(mut self, props: &[u8], topic: &str, payload: &[u8]) -> Conn {
        self.will = Some(Will {
            props: props.to_vec(),
            topic: topic.as_bytes().to_vec(),
            payload: payload.to_vec(),
            qos: 0,
        });
        self
    }

    /// Session expiry one hour, clean start off.
    fn persistent(mut self) -> Conn {
        self.clean = false;
        if self.v5 {
            self.props.extend([0x11, 0, 0, 0x0e, 0x10]);
        }
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut flags = 0u8;
        if self.clean {
            flags |= 0x02;
        }
        if let Some(w) = &self.will {
            flags |= 0x04 | (w.qos << 3);
        }
        if self.pass.is_some() {
            flags |= 0x40;
        }
        if self.user.is_some() {
            flags |= 0x80;
        }
        flags |= self.extra_flags;
        let mut body = str16(b"MQTT");
        body.push(if self.v5 { 5 } else { 4 });
        body.push(flags);
        body.extend(self.keepalive.to_be_bytes());
        if self.v5 {
            body.extend(props(&self.props));
        }
        body.extend(str16(&self.id));
        if let Some(w) = &self.will {
            if self.v5 {
                body.extend(props(&w.props));
            }
            body.extend(str16(&w.topic));
            body.extend(str16(&w.payload));
        }
        if let Some(u) = &self.user {
            body.extend(str16(u));
        }
        if let Some(p) = &self.pass {
            body.extend(str16(p));
        }
        frame(0x10, &body)
    }
}

fn publish_bytes(v5: bool, topic: &[u8], payload: &[u8], qos: u8, id: u16, p: &[u8]) -> Vec<u8> {
    let mut body = str16(topic);
    if qos > 0 {
        body.extend(id.to_be_bytes());
    }
    if v5 {
        body.extend(props(p));
    }
    body.extend_from_slice(payload);
    frame(0x30 | (qos << 1), &body)
}

fn subscribe_bytes(v5: bool, id: u16, filters: &[(&[u8], u8)], p: &[u8]) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    if v5 {
        body.extend(props(p));
    }
    for (f, o) in filters {
        body.extend(str16(f));
        body.push(*o);
    }
    frame(0x82, &body)
}

fn unsubscribe_bytes(v5: bool, id: u16, filters: &[&[u8]]) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    if v5 {
        body.push(0);
    }
    for f in filters {
        body.extend(str16(f));
    }
    frame(0xa2, &body)
}

/// The body of a packet (after the fixed header).
fn body_of(p: &[u8]) -> &[u8] {
    let mut i = 1;
    while p[i] & 0x80 != 0 {
        i += 1;
    }
    &p[i + 1..]
}

/// Reads a varint at `at`; returns (value, bytes used).
fn read_varint(b: &[u8], at: usize) -> (usize, usize) {
    let mut n = 0usize;
    let mut shift = 0;
    let mut i = at;
    loop {
        let byte = b[i];
        n |= usize::from(byte & 0x7f) << shift;
        i += 1;
        if byte & 0x80 == 0 {
            return (n, i - at);
        }
        shift += 7;
    }
}

// =======================================================================================
// A raw MQTT client over std TCP with bounded reads
// =======================================================================================

/// How a connection ended after bad input.
#[derive(Debug, PartialEq)]
enum End {
    /// Closed with no packet first.
    Closed,
    /// An MQTT 5 DISCONNECT with this reason, then the close.
    Disconnect(u8),
    /// A CONNACK with this code (3.1.1 return code or MQTT 5 reason), then the close.
    Connack(u8),
}

struct Raw {
    w: Wire,
    pending: VecDeque<Vec<u8>>,
    v5: bool,
    next_id: u16,
}

impl Raw {
    fn open(port: u16, v5: bool) -> Raw {
        Raw {
            w: Wire::open(port),
            pending: VecDeque::new(),
            v5,
            next_id: 0,
        }
    }

    /// Connects with `conn`; returns the client and its CONNACK.
    fn login(port: u16, conn: &Conn) -> (Raw, Vec<u8>) {
        let mut c = Raw::open(port, conn.v5);
        c.send(&conn.bytes());
        let ack = c.recv().unwrap_or_else(|e| panic!("no CONNACK: {e:?}"));
        assert_eq!(ack[0], 0x20, "expected CONNACK, got {}", hex(&ack));
        (c, ack)
    }

    /// Connects and expects success.
    fn ok(port: u16, conn: &Conn) -> Raw {
        let (c, ack) = Raw::login(port, conn);
        assert_eq!(ack[3], 0, "CONNACK {}", hex(&ack));
        c
    }

    fn send(&mut self, b: &[u8]) {
        self.w.send(b);
    }

    fn recv_within(&mut self, within: Duration) -> Result<Vec<u8>, Ended> {
        if let Some(p) = self.pending.pop_front() {
            return Ok(p);
        }
        self.w.recv_within(within)
    }

    fn recv(&mut self) -> Result<Vec<u8>, Ended> {
        self.recv_within(WAIT)
    }

    /// Reads packets until one whose type is `ty`; others are kept for later.
    fn next_of(&mut self, ty: u8) -> Vec<u8> {
        let mut other = Vec::new();
        let found = loop {
            match self.recv() {
                Ok(p) if p[0] >> 4 == ty => break p,
                Ok(p) => other.push(p),
                Err(e) => panic!(
                    "expected packet type {ty}, got {e:?} after {:?}",
                    other.iter().map(|p| hex(p)).collect::<Vec<_>>()
                ),
            }
        };
        self.pending.extend(other);
        found
    }

    /// How the connection ends (it must, within `WAIT`).
    fn end(&mut self) -> End {
        let mut first: Option<Vec<u8>> = None;
        loop {
            match self.recv() {
                Ok(p) => {
                    if first.is_none() {
                        first = Some(p);
                    }
                }
                Err(Ended::Closed) => break,
                Err(Ended::Timeout) => panic!(
                    "expected the connection to close; it stayed open (first packet: {:?})",
                    first.as_deref().map(hex)
                ),
            }
        }
        match first {
            None => End::Closed,
            Some(p) if p[0] == 0xe0 => End::Disconnect(body_of(&p).first().copied().unwrap_or(0)),
            Some(p) if p[0] == 0x20 => End::Connack(p[3]),
            Some(p) => panic!("unexpected packet before the close: {}", hex(&p)),
        }
    }

    fn ping(&mut self) {
        self.send(&[0xc0, 0x00]);
        let p = self.next_of(13);
        assert_eq!(p, [0xd0, 0x00]);
    }

    fn packet_id(&mut self) -> u16 {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.next_id
    }

    /// SUBSCRIBE; returns the SUBACK's codes.
    fn subscribe(&mut self, filters: &[(&[u8], u8)], p: &[u8]) -> Vec<u8> {
        let id = self.packet_id();
        let v5 = self.v5;
        self.send(&subscribe_bytes(v5, id, filters, p));
        let ack = self.next_of(9);
        let b = body_of(&ack);
        assert_eq!(b[..2], id.to_be_bytes(), "SUBACK id");
        let mut at = 2;
        if v5 {
            let (n, used) = read_varint(b, at);
            at += used + n;
        }
        b[at..].to_vec()
    }

    /// UNSUBSCRIBE; returns the UNSUBACK's codes (empty for 3.1.1).
    fn unsubscribe(&mut self, filters: &[&[u8]]) -> Vec<u8> {
        let id = self.packet_id();
        let v5 = self.v5;
        self.send(&unsubscribe_bytes(v5, id, filters));
        let ack = self.next_of(11);
        let b = body_of(&ack);
        assert_eq!(b[..2], id.to_be_bytes(), "UNSUBACK id");
        if v5 {
            let (n, used) = read_varint(b, 2);
            b[2 + used + n..].to_vec()
        } else {
            Vec::new()
        }
    }

    /// PUBLISH; for QoS 1 returns the PUBACK reason (0 when absent).
    fn publish(&mut self, topic: &[u8], payload: &[u8], qos: u8, p: &[u8]) -> u8 {
        let id = if qos > 0 { self.packet_id() } else { 0 };
        let v5 = self.v5;
        self.send(&publish_bytes(v5, topic, payload, qos, id, p));
        if qos == 0 {
            return 0;
        }
        assert_eq!(qos, 1);
        let ack = self.next_of(4);
        let b = body_of(&ack);
        assert_eq!(b[..2], id.to_be_bytes(), "PUBACK id");
        b.get(2).copied().unwrap_or(0)
    }

    /// PUBLISH at QoS 1 that must be accepted (0x00, or 0x10 "no matching subscribers").
    fn publish_ok(&mut self, topic: &[u8], payload: &[u8], p: &[u8]) {
        let code = self.publish(topic, payload, 1, p);
        assert!(
            code < 0x80,
            "publish to {} refused: {code:#04x}",
            String::from_utf8_lossy(topic)
        );
    }

    /// The next PUBLISH (acknowledged): (topic, payload).
    fn expect_publish(&mut self) -> (Vec<u8>, Vec<u8>) {
        let p = self.next_of(3);
        self.parse_publish(&p)
    }

    fn parse_publish(&mut self, p: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let qos = (p[0] >> 1) & 3;
        let b = body_of(p);
        let tl = usize::from(u16::from_be_bytes([b[0], b[1]]));
        let topic = b[2..2 + tl].to_vec();
        let mut at = 2 + tl;
        if qos > 0 {
            let id = [b[at], b[at + 1]];
            at += 2;
            if qos == 1 {
                self.send(&[0x40, 0x02, id[0], id[1]]);
            } else {
                self.send(&[0x50, 0x02, id[0], id[1]]);
            }
        }
        if self.v5 {
            let (n, used) = read_varint(b, at);
            at += used + n;
        }
        (topic, b[at..].to_vec())
    }

    /// Nothing arrives within `QUIET` and the connection stays open.
    fn expect_silence(&mut self) {
        assert_silence(self.recv_within(QUIET));
    }

    fn disconnect(mut self) {
        self.send(&[0xe0, 0x00]);
        let _ = self.recv_within(Duration::from_millis(300));
    }

    /// Drops the TCP connection without DISCONNECT (the will is due).
    fn drop_abruptly(self) {
        let _ = self.w.s.shutdown(Shutdown::Both);
    }
}

/// Sends `bytes` on a new connection and returns how it ended.
fn attack(port: u16, bytes: &[u8]) -> End {
    let mut c = Raw::open(port, false);
    c.send(bytes);
    c.end()
}

/// Connects with `conn`, sends `bytes`, returns how it ended.
fn attack_after(port: u16, conn: &Conn, bytes: &[u8]) -> End {
    let mut c = Raw::ok(port, conn);
    c.send(bytes);
    c.end()
}

fn assert_v5_error(end: End, allowed: &[u8], what: &str) -> u8 {
    match end {
        End::Disconnect(r) | End::Connack(r) if allowed.contains(&r) => r,
        other => panic!("{what}: expected a reason in {allowed:02x?}, got {other:?}"),
    }
}

// =======================================================================================
// CVE-2017-7650: `%u` / `%c` substitution must never bring in a wildcard
// =======================================================================================

#[test]
fn cve_2017_7650_wildcard_username_cannot_widen_pattern_acls() {
    let dir = TempDir::new();
    let acl = dir.write(
        "acl",
        "pattern readwrite health/#\npattern readwrite dev/%u/#\npattern readwrite cid/%c/#\n",
    );
    let mut b = Broker::start_in(dir, &format!("allow_anonymous true\nacl_file {acl}\n"));

    // With `acl_file`, SUBSCRIBE is always granted (Mosquitto 2.0: subscription strings
    // are not checked) and the read right is checked on every delivery; so the attacker's
    // subscriptions are granted but nothing of the victims' ever reaches them.
    let mut alice = Raw::ok(b.port, &Conn::v5("alice-id").user("alice", "x"));
    assert_eq!(alice.subscribe(&[(b"dev/alice/#", 1)], &[]), vec![1]);
    let mut carol = Raw::ok(b.port, &Conn::v5("carol"));
    assert_eq!(carol.subscribe(&[(b"cid/carol/#", 1)], &[]), vec![1]);
    let mut evils = Vec::new();
    for (user, id) in [
        ("#", "attacker-1"),
        ("+", "attacker-2"),
        ("a/#", "attacker-3"),
    ] {
        let mut evil = Raw::ok(b.port, &Conn::v5(id).user(user, "x"));
        for filter in ["dev/#", "dev/+/#", "dev/alice/#", "#"] {
            evil.subscribe(&[(filter.as_bytes(), 1)], &[]);
        }
        let code = evil.publish(b"dev/alice/secret", b"forged", 1, &[]);
        assert_eq!(code, 0x87, "user {user:?} publishing to dev/alice/secret");
        evils.push((format!("user {user:?}"), evil));
    }
    for id in ["#", "+"] {
        let mut evil = Raw::ok(b.port, &Conn::v5(id));
        for filter in ["cid/#", "cid/+/#", "cid/carol/#", "#"] {
            evil.subscribe(&[(filter.as_bytes(), 1)], &[]);
        }
        let code = evil.publish(b"cid/carol/secret", b"forged", 1, &[]);
        assert_eq!(
            code, 0x87,
            "client id {id:?} publishing to cid/carol/secret"
        );
        evils.push((format!("client id {id:?}"), evil));
    }
    alice.expect_silence();
    carol.expect_silence();
    // The victims publish on their own topics: only they receive it.
    alice.publish_ok(b"dev/alice/secret", b"mine", &[]);
    let (t, _) = alice.expect_publish();
    assert_eq!(t, b"dev/alice/secret");
    carol.publish_ok(b"cid/carol/secret", b"mine", &[]);
    let (t, _) = carol.expect_publish();
    assert_eq!(t, b"cid/carol/secret");
    for (who, evil) in &mut evils {
        match evil.recv_within(QUIET) {
            Err(Ended::Timeout) => {}
            other => panic!("{who} got {other:?}"),
        }
    }
    b.after("CVE-2017-7650", Health::Anonymous);
    // The rule still works for an ordinary name.
    let mut bob = Raw::ok(b.port, &Conn::v5("bob-id").user("bob", "x"));
    bob.publish_ok(b"dev/bob/x", b"ok", &[]);
    bob.disconnect();
}

// =======================================================================================
// CVE-2017-7651 / CVE-2023-0809: nothing big is allocated before CONNECT
// =======================================================================================

#[test]
fn cve_2017_7651_huge_remaining_length_before_connect_is_closed_without_allocating() {
    let mut b = Broker::start("allow_anonymous true\n");
    let before = b.mem();
    // CONNECT announcing 268,435,455 bytes (the largest remaining length), 200 times at once.
    let mut open = Vec::new();
    for _ in 0..200 {
        let mut c = Raw::open(b.port, false);
        c.send(&[
            0x10, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x04, b'M', b'Q', b'T', b'T',
        ]);
        open.push(c);
    }
    for c in &mut open {
        assert_eq!(
            c.end(),
            End::Closed,
            "huge CONNECT must be closed unanswered"
        );
    }
    b.print_mem("CVE-2017-7651 huge remaining length", before);

    // Half-open flood: 300 connections each announcing a 200 KiB CONNECT (under the
    // pre-CONNECT cap) and sending only 16 KiB of it. The broker holds what arrived, not
    // what was announced.
    let mut flood = Vec::new();
    let mut head = vec![0x10];
    head.extend(varint(200 * 1024));
    head.extend(vec![0u8; 16 * 1024]);
    for _ in 0..300 {
        let mut c = Raw::open(b.port, false);
        c.send(&head);
        flood.push(c);
    }
    thread::sleep(Duration::from_millis(500));
    b.assert_alive("half-open flood");
    b.print_mem("CVE-2017-7651 300 half-open 200 KiB CONNECTs", before);
    drop(flood);
    b.after("CVE-2017-7651", Health::Anonymous);
}

#[test]
fn cve_2023_0809_first_packet_not_connect_closed_before_its_body() {
    let mut b = Broker::start("allow_anonymous true\n");
    let before = b.mem();
    let big = [0xff, 0xff, 0xff, 0x7f];
    for first in [0x30u8, 0x32, 0x82, 0xa2, 0xc0, 0xe0, 0xf0] {
        for _ in 0..50 {
            let mut bytes = vec![first];
            bytes.extend(big);
            bytes.extend([0u8; 64]);
            assert_eq!(
                attack(b.port, &bytes),
                End::Closed,
                "first packet {first:#04x} with a huge length"
            );
        }
    }
    // Small non-CONNECT first packets: closed too, unanswered.
    for bytes in [
        publish_bytes(false, b"a/b", b"x", 0, 0, &[]),
        subscribe_bytes(false, 1, &[(b"#", 0)], &[]),
        vec![0xc0, 0x00],
        vec![0x20, 0x02, 0x00, 0x00],
    ] {
        assert_eq!(attack(b.port, &bytes), End::Closed, "{}", hex(&bytes));
    }
    b.print_mem(
        "CVE-2023-0809 after 350 huge non-CONNECT first packets",
        before,
    );
    b.after("CVE-2023-0809", Health::Anonymous);
}

// =======================================================================================
// CVE-2017-7652: a reload that cannot read the security files keeps the old ones
// =======================================================================================

#[test]
fn cve_2017_7652_reload_with_unreadable_password_and_acl_files_keeps_old_settings() {
    let dir = TempDir::new();
    let pw = dir.write("passwd", &format!("{ALICE}\n"));
    let acl = dir.write(
        "acl",
        "user alice\ntopic readwrite health/#\ntopic readwrite a/#\n",
    );
    let mut b = Broker::start_in(
        dir,
        &format!("allow_anonymous false\npassword_file {pw}\nacl_file {acl}\n"),
    );
    let check = |b: &mut Broker, what: &str| {
        let (mut c, ack) = Raw::login(b.port, &Conn::v311("wrong").user("alice", "nope"));
        assert_eq!(hex(&ack), "20 02 00 05", "{what}: wrong password");
        assert_eq!(c.end(), End::Closed);
        let (mut c, ack) = Raw::login(b.port, &Conn::v311("anon"));
        assert_eq!(hex(&ack), "20 02 00 05", "{what}: anonymous");
        assert_eq!(c.end(), End::Closed);
        let mut c = Raw::ok(b.port, &Conn::v5("right").user("alice", "s3cret"));
        assert_eq!(c.publish(b"b/x", b"x", 1, &[]), 0x87, "{what}: ACL");
        c.publish_ok(b"a/x", b"x", &[]);
        c.disconnect();
        b.after(what, Health::User("alice", "s3cret"));
    };
    check(&mut b, "CVE-2017-7652 before");

    // Deleted files (as root, chmod 000 would not stop the read).
    let (pw_path, acl_path) = (b.path("passwd"), b.path("acl"));
    std::fs::remove_file(&pw_path).unwrap();
    std::fs::remove_file(&acl_path).unwrap();
    b.midge.hup();
    check(&mut b, "CVE-2017-7652 after deleting both files");

    // Paths that are directories: open succeeds, read fails.
    std::fs::create_dir(&pw_path).unwrap();
    std::fs::create_dir(&acl_path).unwrap();
    b.midge.hup();
    check(
        &mut b,
        "CVE-2017-7652 after replacing both with directories",
    );

    // Unreadable by mode, when not root.
    std::fs::remove_dir(&pw_path).unwrap();
    std::fs::remove_dir(&acl_path).unwrap();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&pw_path, "").unwrap();
        std::fs::write(&acl_path, "").unwrap();
        for p in [&pw_path, &acl_path] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o000)).unwrap();
        }
        b.midge.hup();
        check(&mut b, "CVE-2017-7652 after chmod 000");
    }
    let log = b.midge.log_text();
    assert!(
        log.contains(&pw_path),
        "the reload error names the password file:\n{log}"
    );
}

// =======================================================================================
// CVE-2017-7653: strings that are not well-formed UTF-8 (or contain U+0000)
// =======================================================================================

const BAD_UTF8: [(&str, &[u8]); 6] = [
    ("invalid byte", b"a/\xff/b"),
    ("overlong '/'", b"a\xc0\xafb"),
    ("overlong NUL", b"a\xc0\x80b"),
    ("surrogate U+D800", b"a/\xed\xa0\x80"),
    ("U+0000", b"a/\x00/b"),
    ("truncated sequence", b"a/\xe2\x82"),
];

#[test]
fn cve_2017_7653_invalid_utf8_disconnects_only_the_sender() {
    let mut b = Broker::start("allow_anonymous true\n");
    let before = b.mem();
    // A bystander subscribed to everything must never see the bad bytes nor be dropped.
    let mut watcher = Raw::ok(b.port, &Conn::v5("watcher"));
    assert_eq!(watcher.subscribe(&[(b"#", 0)], &[]), vec![0]);

    for (what, bad) in BAD_UTF8 {
        // PUBLISH topic.
        let e = attack_after(
            b.port,
            &Conn::v311("p3"),
            &publish_bytes(false, bad, b"x", 0, 0, &[]),
        );
        assert_eq!(e, End::Closed, "3.1.1 PUBLISH topic with {what}");
        let e = attack_after(
            b.port,
            &Conn::v5("p5"),
            &publish_bytes(true, bad, b"x", 0, 0, &[]),
        );
        assert_v5_error(e, &[0x81, 0x82], &format!("v5 PUBLISH topic with {what}"));
        // SUBSCRIBE filter.
        let e = attack_after(
            b.port,
            &Conn::v311("s3"),
            &subscribe_bytes(false, 1, &[(bad, 0)], &[]),
        );
        assert_eq!(e, End::Closed, "3.1.1 SUBSCRIBE filter with {what}");
        let e = attack_after(
            b.port,
            &Conn::v5("s5"),
            &subscribe_bytes(true, 1, &[(bad, 0)], &[]),
        );
        assert_v5_error(
            e,
            &[0x81, 0x82],
            &format!("v5 SUBSCRIBE filter with {what}"),
        );
        // CONNECT client id, username, will topic.
        let mut id3 = Conn::v311("");
        id3.id = bad.to_vec();
        assert_eq!(
            attack(b.port, &id3.bytes()),
            End::Closed,
            "3.1.1 client id {what}"
        );
        let mut id5 = Conn::v5("");
        id5.id = bad.to_vec();
        let e = attack(b.port, &id5.bytes());
        assert_v5_error(e, &[0x81, 0x82], &format!("v5 client id with {what}"));
        let mut user = Conn::v5("u5");
        user.user = Some(bad.to_vec());
        let e = attack(b.port, &user.bytes());
        assert_v5_error(e, &[0x81, 0x82], &format!("v5 username with {what}"));
        let mut will = Conn::v311("w3").will(&[], "w", b"x");
        will.will.as_mut().unwrap().topic = bad.to_vec();
        assert_eq!(
            attack(b.port, &will.bytes()),
            End::Closed,
            "will topic {what}"
        );
        // A user property (a UTF-8 string pair) in PUBLISH.
        let mut up = vec![0x26];
        up.extend(str16(bad));
        up.extend(str16(b"v"));
        let e = attack_after(
            b.port,
            &Conn::v5("up5"),
            &publish_bytes(true, b"ok/topic", b"x", 0, 0, &up),
        );
        assert_v5_error(e, &[0x81, 0x82], &format!("v5 user property with {what}"));
    }
    // The bystander saw nothing and is still connected.
    watcher.expect_silence();
    watcher.ping();
    b.print_mem("CVE-2017-7653", before);
    b.after("CVE-2017-7653", Health::Anonymous);
}

// =======================================================================================
// CVE-2017-7654 / #3448: malformed CONNECTs in a loop
// =======================================================================================

/// CONNECTs that must each be refused.
fn malformed_connects() -> Vec<(&'static str, Vec<u8>)> {
    let mut v = Vec::new();
    let mut c = Conn::v311("r");
    c.extra_flags = 0x01;
    v.push(("reserved flag bit", c.bytes()));
    let mut c = Conn::v5("r");
    c.extra_flags = 0x01;
    v.push(("v5 reserved flag bit", c.bytes()));
    let mut c = Conn::v311("w");
    c.extra_flags = 0x08;
    v.push(("will QoS without will flag", c.bytes()));
    let mut c = Conn::v311("w");
    c.extra_flags = 0x20;
    v.push(("will retain without will flag", c.bytes()));
    let mut c = Conn::v311("w").will(&[], "w", b"x");
    c.will.as_mut().unwrap().qos = 3;
    v.push(("will QoS 3", c.bytes()));
    let mut c = Conn::v311("p");
    c.pass = Some(b"pw".to_vec());
    v.push(("3.1.1 password without username", c.bytes()));
    v.push(("bad protocol name", {
        let mut b = str16(b"MQTX");
        b.extend([4, 2, 0, 60]);
        b.extend(str16(b"x"));
        frame(0x10, &b)
    }));
    v.push(("CONNECT with flags in the fixed header", {
        let mut b = Conn::v311("f").bytes();
        b[0] = 0x11;
        b
    }));
    // #3448: string lengths that run past the packet.
    v.push(("client id length 0xffff", {
        let mut b = str16(b"MQTT");
        b.extend([4, 2, 0, 60, 0xff, 0xff, b'a', b'b']);
        frame(0x10, &b)
    }));
    v.push(("protocol name length 0xffff", {
        let mut b = vec![0xff, 0xff];
        b.extend(b"MQTT\x04\x02\x00\x3c");
        frame(0x10, &b)
    }));
    v.push(("username length 0xfff0", {
        let mut b = str16(b"MQTT");
        b.extend([4, 0x82, 0, 60]);
        b.extend(str16(b"u"));
        b.extend([0xff, 0xf0, b'x']);
        frame(0x10, &b)
    }));
    v.push(("will payload length 0xffff", {
        let mut b = str16(b"MQTT");
        b.extend([4, 0x06, 0, 60]);
        b.extend(str16(b"u"));
        b.extend(str16(b"w/t"));
        b.extend([0xff, 0xff, 1, 2, 3]);
        frame(0x10, &b)
    }));
    v.push(("v5 property length 0x0fffffff", {
        let mut b = str16(b"MQTT");
        b.extend([5, 2, 0, 60, 0xff, 0xff, 0xff, 0x7f]);
        b.extend(str16(b"x"));
        frame(0x10, &b)
    }));
    v.push(("v5 will property length past the end", {
        let mut b = str16(b"MQTT");
        b.extend([5, 0x06, 0, 60, 0]);
        b.extend(str16(b"x"));
        b.extend([0xf0, 0xff, 0x03]);
        frame(0x10, &b)
    }));
    v.push(("truncated after the protocol level", {
        let mut b = str16(b"MQTT");
        b.push(4);
        frame(0x10, &b)
    }));
    v.push((
        "5-byte remaining length",
        vec![0x10, 0xff, 0xff, 0xff, 0xff, 0x01],
    ));
    v
}

#[test]
fn cve_2017_7654_loop_of_malformed_connects_keeps_rss_flat() {
    let mut b = Broker::start("allow_anonymous true\n");
    let cases = malformed_connects();
    // Warm up once (first-use allocations), then measure over the loop.
    for (what, bytes) in &cases {
        let e = attack(b.port, bytes);
        assert!(matches!(e, End::Closed | End::Connack(_)), "{what}: {e:?}");
        if let End::Connack(code) = e {
            assert_ne!(code, 0, "{what} accepted");
        }
    }
    let before = b.mem();
    for round in 0..100 {
        for (what, bytes) in &cases {
            match attack(b.port, bytes) {
                End::Closed => {}
                End::Connack(code) if code != 0 => {}
                other => panic!("round {round}, {what}: {other:?}"),
            }
        }
    }
    println!(
        "CVE-2017-7654: {} malformed CONNECTs sent",
        cases.len() * 100
    );
    b.print_mem("CVE-2017-7654 after the loop (vs after warm-up)", before);
    let grown = b.mem().rss_kib.saturating_sub(before.rss_kib);
    assert!(grown < 16 * 1024, "RSS grew {grown} KiB over the loop");
    b.after("CVE-2017-7654", Health::Anonymous);
}

#[test]
fn issue_3448_connect_with_bogus_string_lengths_closes_without_big_allocation() {
    let mut b = Broker::start("allow_anonymous true\n");
    let before = b.mem();
    for (what, bytes) in malformed_connects() {
        let e = attack(b.port, &bytes);
        match e {
            End::Closed => {}
            End::Connack(code) if code >= 0x80 || (1..=5).contains(&code) => {}
            other => panic!("{what}: {other:?}"),
        }
        println!("#3448 {what}: {e:?}");
    }
    b.print_mem("#3448", before);
    b.after("#3448", Health::Anonymous);
}

// =======================================================================================
// CVE-2017-9868: files with messages or credentials are private
// =======================================================================================

#[test]
fn cve_2017_9868_persistence_dynsec_and_log_files_are_not_world_readable() {
    use std::os::unix::fs::PermissionsExt;
    require_dynsec();
    let dir = TempDir::new();
    let dynsec = Ctrl::Midge.init(&dir, "dynsec.json");
    let port = free_port();
    let conf = dynsec_conf(
        &dynsec,
        true,
        &format!(
            "persistence true\npersistence_location {}/\nautosave_interval 1\n\
             log_dest file {}/midge.log\nlog_dest stderr\nlistener {port} 127.0.0.1\n",
            dir.0.display(),
            dir.0.display()
        ),
    );
    let mut b = Broker::start_raw(dir, &conf, port);
    dynsec_health_user(&b);
    let mode = |p: &str| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(
        mode(&b.path("dynsec.json")),
        0o600,
        "dynsec file written by init"
    );
    // A change rewrites the dynsec file; a retained message and a session reach the store.
    let r = Ctrl::Midge.dynsec(b.port, "createClient someone -p pw", &b.dir.0);
    assert_eq!(r.code, Some(0), "{r:?}");
    let mut c = Raw::ok(b.port, &Conn::v5("persisted").persistent());
    c.publish(b"secret/topic", b"secret", 1, &[]);
    let _ = c.publish(b"secret/retained", b"secret", 1, &[]);
    c.send(&publish_bytes(true, b"secret/r", b"kept", 1, 99, &[]));
    c.disconnect();
    thread::sleep(Duration::from_millis(1500));

    assert_eq!(
        mode(&b.path("dynsec.json")),
        0o600,
        "dynsec file after a change"
    );
    let mut db_files = Vec::new();
    for entry in std::fs::read_dir(&b.dir.0).unwrap() {
        let p = entry.unwrap().path().display().to_string();
        if p.contains(".db") || p.ends_with("-wal") || p.ends_with("-shm") {
            db_files.push(p);
        }
    }
    assert!(
        !db_files.is_empty(),
        "no persistence file in {}",
        b.dir.0.display()
    );
    for p in &db_files {
        assert_eq!(mode(p), 0o600, "persistence file {p}");
    }
    let log = b.path("midge.log");
    assert_eq!(mode(&log), 0o600, "log file {log}, as Mosquitto creates it");
    println!("CVE-2017-9868: dynsec, persistence {db_files:?} and log all 600");
    b.after("CVE-2017-9868", Health::User("health", "healthpw"));
}

// =======================================================================================
// CVE-2018-12543: topics starting with `$`
// =======================================================================================

#[test]
fn cve_2018_12543_publish_to_dollar_topics_is_handled_and_sys_is_denied() {
    let mut b = Broker::start("allow_anonymous true\nsys_interval 1\n");
    let mut sub = Raw::ok(b.port, &Conn::v5("dollar-sub"));
    assert_eq!(sub.subscribe(&[(b"$foo/#", 1)], &[]), vec![1]);
    for v5 in [false, true] {
        let conn = if v5 {
            Conn::v5("dollar-pub5")
        } else {
            Conn::v311("dollar-pub3")
        };
        let mut c = Raw::ok(b.port, &conn);
        for topic in ["$foo/bar", "$", "$/", "$$", "$foo"] {
            c.publish_ok(topic.as_bytes(), b"x", &[]);
            let _ = c.publish(topic.as_bytes(), b"x", 0, &[]);
        }
        for topic in ["$SYS", "$SYS/x", "$SYS/broker/uptime"] {
            let code = c.publish(topic.as_bytes(), b"forged", 1, &[]);
            let want = if v5 { 0x87 } else { 0 };
            assert_eq!(code, want, "publish to {topic:?}");
        }
        c.ping();
        c.disconnect();
    }
    // `$foo/bar` and `$foo` went to the `$foo/#` subscriber (QoS 1 and 0, both clients).
    for _ in 0..8 {
        let (t, _) = sub.expect_publish();
        assert!(
            t == b"$foo/bar" || t == b"$foo",
            "{}",
            String::from_utf8_lossy(&t)
        );
    }
    // Nobody can read forged $SYS values.
    let mut sys = Raw::ok(b.port, &Conn::v5("sys-reader"));
    assert_eq!(sys.subscribe(&[(b"$SYS/x", 0)], &[]), vec![0]);
    sys.expect_silence();
    b.after("CVE-2018-12543", Health::Anonymous);
}

// =======================================================================================
// CVE-2018-12546: retained messages of a publisher whose access was revoked
// =======================================================================================

#[test]
fn cve_2018_12546_revoked_publisher_retained_message_not_delivered() {
    let dir = TempDir::new();
    let pw = dir.write("passwd", &format!("{ALICE}\n{BOB}\n"));
    let acl = dir.write(
        "acl",
        "pattern readwrite health/#\nuser alice\ntopic readwrite r/#\nuser bob\ntopic read r/#\n",
    );
    let mut b = Broker::start_in(
        dir,
        &format!(
            "allow_anonymous false\ncheck_retain_source true\npassword_file {pw}\nacl_file {acl}\n"
        ),
    );
    let mut alice = Raw::ok(b.port, &Conn::v5("alice").user("alice", "s3cret"));
    alice.publish_ok(b"r/x", b"old", &[]);
    alice.send(&{
        let mut p = publish_bytes(true, b"r/kept", b"old", 1, 500, &[]);
        p[0] |= 0x01;
        p
    });
    let _ = alice.next_of(4);
    alice.disconnect();

    // Before the revocation bob gets the retained message.
    let mut bob = Raw::ok(b.port, &Conn::v5("bob1").user("bob", "hunter2"));
    assert_eq!(bob.subscribe(&[(b"r/#", 1)], &[]), vec![1]);
    let (t, p) = bob.expect_publish();
    assert_eq!((t.as_slice(), p.as_slice()), (&b"r/kept"[..], &b"old"[..]));
    bob.disconnect();

    // Revoke alice's write access, reload.
    b.dir.write(
        "acl.new",
        "pattern readwrite health/#\nuser alice\ntopic read r/#\nuser bob\ntopic read r/#\n",
    );
    std::fs::rename(b.path("acl.new"), b.path("acl")).unwrap();
    b.midge.hup();
    let mut bob = Raw::ok(b.port, &Conn::v5("bob2").user("bob", "hunter2"));
    assert_eq!(bob.subscribe(&[(b"r/#", 1)], &[]), vec![1]);
    bob.expect_silence();
    bob.disconnect();
    b.after("CVE-2018-12546", Health::User("alice", "s3cret"));
}

// =======================================================================================
// 2.0.12: incoming QoS 2 re-checked against the ACL when a session resumes
// =======================================================================================

#[test]
fn mosquitto_2_0_12_incoming_qos2_rechecked_against_acl_on_session_resume() {
    let dir = TempDir::new();
    let pw = dir.write("passwd", &format!("{ALICE}\n{BOB}\n"));
    let rules = |alice: &str| {
        format!(
            "pattern readwrite health/#\nuser alice\ntopic {alice} q/#\nuser bob\ntopic read q/#\n"
        )
    };
    let acl = dir.write("acl", &rules("readwrite"));
    let mut b = Broker::start_in(
        dir,
        &format!("allow_anonymous false\npassword_file {pw}\nacl_file {acl}\n"),
    );
    let mut bob = Raw::ok(b.port, &Conn::v5("bob").user("bob", "hunter2"));
    assert_eq!(bob.subscribe(&[(b"q/#", 2)], &[]), vec![2]);
    // alice: QoS 2 PUBLISH, PUBREC, then gone before PUBREL.
    let alice_conn = Conn::v5("alice-q2").user("alice", "s3cret").persistent();
    let mut alice = Raw::ok(b.port, &alice_conn);
    alice.send(&publish_bytes(true, b"q/x", b"held", 2, 7, &[]));
    let rec = alice.next_of(5);
    assert_eq!(rec[..4], [0x50, 0x02, 0x00, 0x07]);
    alice.drop_abruptly();
    // Delivered already (method A) or held until PUBREL (method B)?
    let early = bob.recv_within(QUIET).ok();
    println!("2.0.12: delivered on PUBLISH: {}", early.is_some());
    // Revoke alice's write access, then she resumes and releases.
    b.dir.write("acl.new", &rules("read"));
    std::fs::rename(b.path("acl.new"), b.path("acl")).unwrap();
    b.midge.hup();
    let mut alice = Raw::ok(b.port, &alice_conn);
    alice.send(&[0x62, 0x02, 0x00, 0x07]);
    let comp = alice.next_of(7);
    assert_eq!(comp[..4], [0x70, 0x02, 0x00, 0x07]);
    // Method A (Midge delivers on PUBLISH): never a second copy. Method B: never after the
    // revocation.
    bob.expect_silence();
    alice.disconnect();
    b.after("2.0.12 QoS 2 resume", Health::User("bob", "hunter2"));
}

// =======================================================================================
// CVE-2018-12550: an ACL file with no rules denies everything
// =======================================================================================

#[test]
fn cve_2018_12550_empty_acl_file_denies_all() {
    let dir = TempDir::new();
    let acl = dir.write("acl", "# only comments\n\n   \n# and blank lines\n");
    let mut b = Broker::start_in(dir, &format!("allow_anonymous true\nacl_file {acl}\n"));
    // Subscriptions are granted (Mosquitto 2.0 does not check subscription strings), every
    // publish is refused and nothing is ever delivered.
    let mut watcher = Raw::ok(b.port, &Conn::v5("watcher"));
    watcher.subscribe(&[(b"#", 1), (b"a/b", 0)], &[]);
    let mut c3 = Raw::ok(b.port, &Conn::v311("sub3"));
    c3.subscribe(&[(b"a/b", 1)], &[]);
    let mut c = Raw::ok(b.port, &Conn::v5("pub").user("someone", "x"));
    for topic in ["a/b", "x", "$SYS/x", "health/1"] {
        assert_eq!(c.publish(topic.as_bytes(), b"x", 1, &[]), 0x87, "{topic}");
    }
    let mut p3 = Raw::ok(b.port, &Conn::v311("pub3"));
    assert_eq!(p3.publish(b"a/b", b"x", 1, &[]), 0);
    watcher.expect_silence();
    c3.expect_silence();
    b.after("CVE-2018-12550", Health::PingOnly);
}

// =======================================================================================
// CVE-2018-12551: malformed password-file lines never become empty-password users
// =======================================================================================

#[test]
fn cve_2018_12551_malformed_password_lines_never_make_an_empty_password_user() {
    // Blank lines and lines without ':' are skipped (as Mosquitto does).
    let dir = TempDir::new();
    let pw = dir.write(
        "passwd",
        &format!("\n\n{ALICE}\nmallory\n   \n#comment\neve\n\n"),
    );
    let mut b = Broker::start_in(dir, &format!("allow_anonymous false\npassword_file {pw}\n"));
    for (user, pass) in [
        ("mallory", ""),
        ("eve", ""),
        ("", ""),
        ("mallory", "mallory"),
        ("", "s3cret"),
    ] {
        let (mut c, ack) = Raw::login(b.port, &Conn::v311("x").user(user, pass));
        assert_eq!(
            hex(&ack),
            "20 02 00 05",
            "{user:?} / {pass:?} must be refused"
        );
        assert_eq!(c.end(), End::Closed);
    }
    let mut no_pw = Conn::v311("x");
    no_pw.user = Some(b"mallory".to_vec());
    let (mut c, ack) = Raw::login(b.port, &no_pw);
    assert_eq!(hex(&ack), "20 02 00 05", "mallory without password");
    assert_eq!(c.end(), End::Closed);
    b.after(
        "CVE-2018-12551 skipped lines",
        Health::User("alice", "s3cret"),
    );

    // An empty username, an empty hash, a garbage hash: start-up errors naming file:line.
    for (text, line) in [
        (format!("{ALICE}\n:{}\n", &ALICE[6..]), 2),
        (format!("\n{ALICE}\neve:\n"), 3),
        (format!("eve:garbage\n{ALICE}\n"), 1),
        (format!("{ALICE}\neve:$7$101$$\n"), 2),
    ] {
        let dir = TempDir::new();
        let pw = dir.write("passwd", &text);
        let port = free_port();
        let err = start_fails(
            &dir,
            &format!("listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {pw}\n"),
        );
        assert!(
            err.contains(&format!("passwd:{line}")),
            "start-up error must name passwd:{line} for {text:?}:\n{err}"
        );
    }
}

// =======================================================================================
// CVE-2018-20145: per_listener_settings applies acl_file on every listener
// =======================================================================================

#[test]
fn cve_2018_20145_per_listener_acl_applies_on_every_listener_including_the_default() {
    let dir = TempDir::new();
    let acl1 = dir.write(
        "acl1",
        "pattern readwrite health/#\ntopic readwrite one/#\n",
    );
    let acl2 = dir.write("acl2", "topic readwrite two/#\n");
    let (p1, p2) = (free_port(), free_port());
    // The default listener (`port`) takes the security options before any `listener`.
    let conf = format!(
        "per_listener_settings true\nport {p1}\nbind_address 127.0.0.1\n\
         allow_anonymous true\nacl_file {acl1}\n\
         listener {p2} 127.0.0.1\nallow_anonymous true\nacl_file {acl2}\n"
    );
    let mut b = Broker::start_raw(dir, &conf, p1);
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", p2)).is_err() {
        assert!(Instant::now() < deadline, "second listener not up");
        thread::sleep(Duration::from_millis(20));
    }
    for (port, mine, theirs) in [(p1, "one/x", "two/x"), (p2, "two/x", "one/x")] {
        for v5 in [false, true] {
            let conn = if v5 { Conn::v5("l") } else { Conn::v311("l") };
            let mut c = Raw::ok(port, &conn);
            // Granted (subscription strings are not checked), read checked on delivery.
            assert_eq!(c.subscribe(&[(b"#", 1)], &[]), vec![1]);
            c.publish(mine.as_bytes(), b"m", 1, &[]);
            let (t, _) = c.expect_publish();
            assert_eq!(t, mine.as_bytes(), "port {port}");
            let code = c.publish(theirs.as_bytes(), b"t", 1, &[]);
            assert_eq!(code, if v5 { 0x87 } else { 0 }, "port {port}: {theirs}");
            c.expect_silence();
            c.disconnect();
        }
    }
    b.after("CVE-2018-20145", Health::Anonymous);
}

// =======================================================================================
// 1.5.4: WebSockets over TLS with require_certificate
// =======================================================================================

/// Opens TLS to `port` (optionally with a client certificate) and asks for a WebSocket
/// upgrade; returns the response head, or `Err` when the handshake or the read failed.
fn wss_upgrade(port: u16, ca_file: &str, client: Option<(&str, &str)>) -> Result<String, String> {
    use openssl::ssl::{SslConnector, SslFiletype, SslMethod};
    let mut builder = SslConnector::builder(SslMethod::tls()).unwrap();
    builder.set_ca_file(ca_file).unwrap();
    if let Some((cert, key)) = client {
        builder
            .set_certificate_file(cert, SslFiletype::PEM)
            .unwrap();
        builder.set_private_key_file(key, SslFiletype::PEM).unwrap();
    }
    let connector = builder.build();
    let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let mut tls = connector
        .connect("localhost", tcp)
        .map_err(|e| format!("handshake: {e}"))?;
    let req = format!(
        "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
    );
    tls.write_all(req.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tls.read(&mut byte) {
            Ok(0) => return Err(format!("closed after {:?}", String::from_utf8_lossy(&head))),
            Ok(_) => head.push(byte[0]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    // CONNECT in one masked binary frame; expect the CONNACK frame.
    let connect = Conn::v311("wss-client").bytes();
    let mask = [1u8, 2, 3, 4];
    let mut f = vec![0x82, 0x80 | connect.len() as u8];
    f.extend(mask);
    f.extend(connect.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    tls.write_all(&f).map_err(|e| format!("write: {e}"))?;
    let mut ack = [0u8; 6];
    tls.read_exact(&mut ack)
        .map_err(|e| format!("read CONNACK: {e}"))?;
    Ok(format!(
        "{} | {}",
        String::from_utf8_lossy(&head).lines().next().unwrap_or(""),
        hex(&ack)
    ))
}

#[test]
fn mosquitto_1_5_4_wss_require_certificate_refuses_certless_clients() {
    let dir = TempDir::new();
    let ca = tls::make_ca("Midge CVE CA");
    let other = tls::make_ca("Other CA");
    let ca_file = dir.write("ca.pem", &ca.cert.pem());
    let (sc, sk) = tls::leaf(&ca, "localhost");
    let (cc, ck) = tls::leaf(&ca, "client");
    let (oc, ok) = tls::leaf(&other, "intruder");
    let server_cert = dir.write("server.pem", &sc);
    let server_key = dir.write("server.key", &sk);
    let client_cert = dir.write("client.pem", &cc);
    let client_key = dir.write("client.key", &ck);
    let other_cert = dir.write("other.pem", &oc);
    let other_key = dir.write("other.key", &ok);
    let wss = free_port();
    let conf = format!(
        "allow_anonymous true\nlistener {wss} 127.0.0.1\nprotocol websockets\n\
         cafile {ca_file}\ncertfile {server_cert}\nkeyfile {server_key}\nrequire_certificate true\n"
    );
    let mut b = Broker::start_in(dir, &conf);
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", wss)).is_err() {
        assert!(Instant::now() < deadline, "wss listener not up");
        thread::sleep(Duration::from_millis(20));
    }
    let before = b.mem();
    for _ in 0..20 {
        let r = wss_upgrade(wss, &ca_file, None);
        assert!(
            r.is_err(),
            "a client without a certificate got through: {r:?}"
        );
        let r = wss_upgrade(wss, &ca_file, Some((&other_cert, &other_key)));
        assert!(
            r.is_err(),
            "a client with an untrusted certificate got through: {r:?}"
        );
    }
    println!(
        "1.5.4 certless: {:?}",
        wss_upgrade(wss, &ca_file, None).unwrap_err()
    );
    let good = wss_upgrade(wss, &ca_file, Some((&client_cert, &client_key)))
        .unwrap_or_else(|e| panic!("a client with a trusted certificate was refused: {e}"));
    assert!(good.starts_with("HTTP/1.1 101"), "{good}");
    assert!(good.ends_with("82 04 20 02 00 00"), "{good}");
    b.print_mem("1.5.4 WSS", before);
    b.after("1.5.4 WSS", Health::Anonymous);
}

// =======================================================================================
// 1.6.2 and CVE-2019-11778: wills with every property first; will delay > session expiry
// =======================================================================================

#[test]
fn mosquitto_1_6_2_will_with_each_property_first_then_abrupt_disconnect() {
    let mut b = Broker::start("allow_anonymous true\n");
    let mut sub = Raw::ok(b.port, &Conn::v5("will-watcher"));
    assert_eq!(sub.subscribe(&[(b"will/#", 0)], &[]), vec![0]);
    let mut user_prop = vec![0x26];
    user_prop.extend(str16(b"k"));
    user_prop.extend(str16(b"v"));
    let firsts: Vec<(&str, Vec<u8>)> = vec![
        ("content type", [vec![0x03], str16(b"text/plain")].concat()),
        (
            "correlation data",
            [vec![0x09], str16(b"\x01\x02")].concat(),
        ),
        ("payload format", vec![0x01, 0x01]),
        ("response topic", [vec![0x08], str16(b"resp/t")].concat()),
        ("message expiry", vec![0x02, 0, 0, 0, 60]),
        ("will delay 0", vec![0x18, 0, 0, 0, 0]),
        ("user property", user_prop.clone()),
    ];
    for (i, (what, first)) in firsts.iter().enumerate() {
        // The property first, then the others.
        let mut p = first.clone();
        for (j, (_, other)) in firsts.iter().enumerate() {
            if j != i && !(what == &"user property" && j == 6) {
                p.extend(other);
            }
        }
        let topic = format!("will/{i}");
        let c = Raw::ok(
            b.port,
            &Conn::v5(&format!("will-{i}")).will(&p, &topic, what.as_bytes()),
        );
        c.drop_abruptly();
        let (t, payload) = sub.expect_publish();
        assert_eq!(t, topic.as_bytes(), "will with {what} first");
        assert_eq!(payload, what.as_bytes());
        // Alone, too.
        let c = Raw::ok(
            b.port,
            &Conn::v5(&format!("will-only-{i}")).will(first, &topic, b"alone"),
        );
        c.drop_abruptly();
        let (t, _) = sub.expect_publish();
        assert_eq!(t, topic.as_bytes(), "will with only {what}");
    }
    b.after("1.6.2", Health::Anonymous);
}

#[test]
fn cve_2019_11778_will_delay_longer_than_session_expiry_sends_will_at_expiry() {
    let mut b = Broker::start("allow_anonymous true\n");
    let mut sub = Raw::ok(b.port, &Conn::v5("delay-watcher"));
    assert_eq!(sub.subscribe(&[(b"delayed/#", 0)], &[]), vec![0]);
    for round in 0..3 {
        // Session expiry 1 s, will delay 100,000 s.
        let conn = Conn::v5(&format!("delayed-{round}"))
            .props(&[0x11, 0, 0, 0, 1])
            .will(&[0x18, 0, 1, 0x86, 0xa0], "delayed/will", b"gone");
        let c = Raw::ok(b.port, &conn);
        c.drop_abruptly();
        // The will comes when the session ends, not after the will delay.
        let p = sub
            .recv_within(Duration::from_secs(15))
            .expect("will at session expiry");
        let (t, payload) = sub.parse_publish(&p);
        assert_eq!(
            (t.as_slice(), payload.as_slice()),
            (&b"delayed/will"[..], &b"gone"[..])
        );
        // The same client id again (a new session) is accepted and clean.
        let c = Raw::ok(b.port, &Conn::v5(&format!("delayed-{round}")));
        c.disconnect();
    }
    // Reconnecting before expiry cancels the will (takeover of the expiring session).
    let conn = Conn::v5("delayed-resume").props(&[0x11, 0, 0, 0, 30]).will(
        &[0x18, 0, 1, 0x86, 0xa0],
        "delayed/will",
        b"gone",
    );
    let mut conn2 = conn.clone();
    conn2.clean = false;
    let c = Raw::ok(b.port, &conn);
    c.drop_abruptly();
    let c = Raw::ok(b.port, &conn2);
    c.disconnect();
    sub.expect_silence();
    b.after("CVE-2019-11778", Health::Anonymous);
}

// =======================================================================================
// CVE-2019-11779: filters and topics of ~65,535 levels
// =======================================================================================

#[test]
fn cve_2019_11779_deep_filters_and_topics_are_refused_above_200_levels() {
    let mut b = Broker::start("allow_anonymous true\n");
    let before = b.mem();
    // Mosquitto's TOPIC_HIERARCHY_LIMIT: at most 200 '/' in a topic or filter (checked
    // against Debian's 2.0.11: 201 refused, SUBSCRIBE 0x81, PUBLISH 0x82, will: closed).
    // Without it every level is a trie node: a 65,535-byte filter of '/' cost Midge 40 MiB.
    let name = |n: usize| ("a/".repeat(n) + "a").into_bytes();
    let deep: Vec<(&str, Vec<u8>)> = vec![
        ("65,535 '/'", vec![b'/'; 65_535]),
        (
            "32,768 '+' levels",
            ("+/".repeat(32_767) + "+").into_bytes(),
        ),
        ("32,768 'a' levels", name(32_767)),
        ("201 '/'", name(201)),
        (
            "$share/g/ and 199 '/'",
            [b"$share/g/".to_vec(), name(199)].concat(),
        ),
    ];
    for (what, f) in &deep {
        let e = attack_after(
            b.port,
            &Conn::v5("deep5"),
            &subscribe_bytes(true, 1, &[(f, 0)], &[]),
        );
        assert_eq!(e, End::Disconnect(0x81), "v5 SUBSCRIBE {what}");
        let e = attack_after(
            b.port,
            &Conn::v311("deep3"),
            &subscribe_bytes(false, 1, &[(f, 0)], &[]),
        );
        assert_eq!(e, End::Closed, "3.1.1 SUBSCRIBE {what}");
        let e = attack_after(
            b.port,
            &Conn::v5("deepu"),
            &unsubscribe_bytes(true, 1, &[f]),
        );
        assert_eq!(e, End::Disconnect(0x81), "v5 UNSUBSCRIBE {what}");
        if !f.contains(&b'+') && !f.starts_with(b"$share") {
            let e = attack_after(
                b.port,
                &Conn::v5("deepp"),
                &publish_bytes(true, f, b"x", 1, 1, &[]),
            );
            assert_v5_error(e, &[0x82, 0x90], &format!("v5 PUBLISH {what}"));
            let e = attack_after(
                b.port,
                &Conn::v311("deepp3"),
                &publish_bytes(false, f, b"x", 1, 1, &[]),
            );
            assert_eq!(e, End::Closed, "3.1.1 PUBLISH {what}");
            let mut will = Conn::v311("deepw").will(&[], "w", b"x");
            will.will.as_mut().unwrap().topic = f.clone();
            let e = attack(b.port, &will.bytes());
            assert!(
                matches!(e, End::Closed | End::Connack(0x80..)),
                "will topic {what}: {e:?}"
            );
        }
    }
    // 200 '/' is still fine: granted, matched, retained.
    let mut sub = Raw::ok(b.port, &Conn::v5("deep-sub"));
    let plus200 = ("+/".repeat(200) + "+").into_bytes();
    assert_eq!(
        sub.subscribe(&[(plus200.as_slice(), 0), (&name(200), 0)], &[]),
        vec![0, 0]
    );
    let mut p = Raw::ok(b.port, &Conn::v5("deep-pub"));
    p.publish_ok(&name(200), b"deep", &[]);
    let (t, payload) = sub.expect_publish();
    assert_eq!((t, payload.as_slice()), (name(200), &b"deep"[..]));
    sub.disconnect();
    p.disconnect();
    b.print_mem("CVE-2019-11779", before);
    b.after("CVE-2019-11779", Health::Anonymous);
}

// =======================================================================================
// CVE-2020-13849: keep alive limits and idle sockets before CONNECT
// =======================================================================================

#[test]
fn cve_2020_13849_keepalive_above_max_is_refused_and_idle_sockets_time_out() {
    let mut b = Broker::start("allow_anonymous true\nmax_keepalive 60\n");
    // 3.1.1: above the limit → CONNACK 0x02 and the close.
    let mut c = Conn::v311("ka3");
    c.keepalive = 65_535;
    let (mut raw, ack) = Raw::login(b.port, &c);
    assert_eq!(hex(&ack), "20 02 00 02");
    assert_eq!(raw.end(), End::Closed);
    c.keepalive = 61;
    let (mut raw, ack) = Raw::login(b.port, &c);
    assert_eq!(hex(&ack), "20 02 00 02");
    assert_eq!(raw.end(), End::Closed);
    c.keepalive = 60;
    Raw::ok(b.port, &c).disconnect();
    // MQTT 5: accepted with Server Keep Alive 60 (for 65,535 and for 0).
    for ka in [65_535u16, 0] {
        let mut c = Conn::v5("ka5");
        c.keepalive = ka;
        let (raw, ack) = Raw::login(b.port, &c);
        assert_eq!(ack[3], 0, "{}", hex(&ack));
        let has_server_keep_alive = ack.windows(3).any(|w| w == [0x13, 0x00, 0x3c]);
        assert!(
            has_server_keep_alive,
            "no Server Keep Alive 60 in {}",
            hex(&ack)
        );
        raw.disconnect();
    }

    // Sockets that never send CONNECT, and one that sent half of it, are closed after the
    // connect timeout (10 s).
    let mut idle: Vec<Raw> = (0..50).map(|_| Raw::open(b.port, false)).collect();
    let mut half = Raw::open(b.port, false);
    half.send(&Conn::v311("half").bytes()[..8]);
    idle.push(half);
    let deadline = Instant::now() + Duration::from_secs(25);
    for c in &mut idle {
        let left = deadline.saturating_duration_since(Instant::now());
        assert_eq!(
            c.recv_within(left),
            Err(Ended::Closed),
            "idle pre-CONNECT socket not closed"
        );
    }
    b.after("CVE-2020-13849", Health::Anonymous);
}

// =======================================================================================
// 2.0.3: `passwd -b` stores a hash of the password, not of the username
// =======================================================================================

#[test]
fn mosquitto_2_0_3_passwd_batch_mode_hashes_the_given_password() {
    let dir = TempDir::new();
    let file = dir.0.join("passwd").display().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_midge"))
        .args(["passwd", "-c", "-b", &file, "dave", "correct horse"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_midge"))
        .args(["passwd", "-b", &file, "erin", "erinpw"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains("correct horse") && !text.contains("erinpw"),
        "{text}"
    );
    let mut b = Broker::start_in(
        dir,
        &format!("allow_anonymous false\npassword_file {file}\n"),
    );
    for (user, pass, ok) in [
        ("dave", "correct horse", true),
        ("dave", "dave", false),
        ("dave", "", false),
        ("dave", "correct", false),
        ("erin", "erinpw", true),
        ("erin", "erin", false),
    ] {
        let (mut c, ack) = Raw::login(b.port, &Conn::v311("pw").user(user, pass));
        if ok {
            assert_eq!(hex(&ack), "20 02 00 00", "{user} / {pass}");
            c.disconnect();
        } else {
            assert_eq!(hex(&ack), "20 02 00 05", "{user} / {pass}");
            assert_eq!(c.end(), End::Closed);
        }
    }
    b.after("2.0.3 passwd -b", Health::User("dave", "correct horse"));
}

// =======================================================================================
// CVE-2021-28166: packets only a server sends, sent by a client
// =======================================================================================

#[test]
fn cve_2021_28166_server_to_client_packets_from_a_client_disconnect_it() {
    let mut b = Broker::start("allow_anonymous true\n");
    let before = b.mem();
    // The PoC of #2163: a v5 CONNECT (empty client id, Receive Maximum 20), then a CONNACK
    // with bad flags (0x29) and a DISCONNECT.
    let poc = unhex("101000044d5154540502003c03210014000029020001e000");
    let mut c = Raw::open(b.port, true);
    c.send(&poc);
    let ack = c.recv().expect("CONNACK to the PoC's CONNECT");
    assert_eq!((ack[0], ack[3]), (0x20, 0), "{}", hex(&ack));
    let e = c.end();
    let r = assert_v5_error(e, &[0x81, 0x82], "PoC CONNACK");
    println!("CVE-2021-28166 PoC: DISCONNECT {r:#04x}");
    // The PoC only works if packets arriving in the same segment as CONNECT are handled
    // at once (they once waited for the next read): CONNECT + PINGREQ in one write.
    for conn in [Conn::v311("pipelined"), Conn::v5("pipelined5")] {
        let mut c = Raw::open(b.port, conn.v5);
        c.send(&[conn.bytes(), vec![0xc0, 0x00]].concat());
        let ack = c.recv().expect("CONNACK");
        assert_eq!((ack[0], ack[3]), (0x20, 0), "{}", hex(&ack));
        assert_eq!(
            c.recv_within(Duration::from_secs(2)),
            Ok(vec![0xd0, 0x00]),
            "PINGREQ sent with CONNECT"
        );
        c.disconnect();
    }

    let server_only: [(&str, Vec<u8>, Vec<u8>); 5] = [
        (
            "CONNACK",
            vec![0x20, 0x03, 0x00, 0x00, 0x00],
            vec![0x20, 0x02, 0x00, 0x00],
        ),
        (
            "SUBACK",
            vec![0x90, 0x04, 0x00, 0x01, 0x00, 0x00],
            vec![0x90, 0x03, 0x00, 0x01, 0x00],
        ),
        (
            "UNSUBACK",
            vec![0xb0, 0x04, 0x00, 0x01, 0x00, 0x00],
            vec![0xb0, 0x02, 0x00, 0x01],
        ),
        ("PINGRESP", vec![0xd0, 0x00], vec![0xd0, 0x00]),
        (
            "bad-flag CONNACK",
            vec![0x29, 0x02, 0x00, 0x01],
            vec![0x29, 0x02, 0x00, 0x01],
        ),
    ];
    for _ in 0..50 {
        for (what, v5_bytes, v3_bytes) in &server_only {
            let e = attack_after(b.port, &Conn::v5("s2c"), v5_bytes);
            assert_v5_error(e, &[0x81, 0x82], what);
            let e = attack_after(b.port, &Conn::v311("s2c"), v3_bytes);
            assert_eq!(e, End::Closed, "3.1.1 {what}");
        }
    }
    b.print_mem("CVE-2021-28166", before);
    b.after("CVE-2021-28166", Health::Anonymous);
}

// =======================================================================================
// CVE-2021-34431: a second CONNECT, duplicate properties
// =======================================================================================

#[test]
fn cve_2021_34431_second_connect_and_duplicate_properties_are_protocol_errors() {
    let mut b = Broker::start("allow_anonymous true\n");
    let run = |b: &Broker| {
        let e = attack_after(b.port, &Conn::v5("twice"), &Conn::v5("twice").bytes());
        assert_eq!(e, End::Disconnect(0x82), "v5 second CONNECT");
        let e = attack_after(b.port, &Conn::v311("twice3"), &Conn::v311("twice3").bytes());
        assert_eq!(e, End::Closed, "3.1.1 second CONNECT");
        // Two Session Expiry Intervals in CONNECT.
        let c = Conn::v5("dup").props(&[0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2]);
        assert_eq!(
            attack(b.port, &c.bytes()),
            End::Connack(0x82),
            "duplicate CONNECT property"
        );
        // Two Payload Format Indicators in the will.
        let c = Conn::v5("dupw").will(&[0x01, 0, 0x01, 1], "w", b"x");
        assert_eq!(
            attack(b.port, &c.bytes()),
            End::Connack(0x82),
            "duplicate will property"
        );
        // Two Message Expiry Intervals in PUBLISH; two subscription identifiers in SUBSCRIBE.
        let e = attack_after(
            b.port,
            &Conn::v5("dupp"),
            &publish_bytes(
                true,
                b"t",
                b"x",
                0,
                0,
                &[0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 1],
            ),
        );
        assert_eq!(e, End::Disconnect(0x82), "duplicate PUBLISH property");
        let e = attack_after(
            b.port,
            &Conn::v5("dups"),
            &subscribe_bytes(true, 1, &[(b"t", 0)], &[0x0b, 1, 0x0b, 2]),
        );
        assert_eq!(e, End::Disconnect(0x82), "duplicate SUBSCRIBE property");
    };
    run(&b);
    let before = b.mem();
    for _ in 0..200 {
        run(&b);
    }
    b.print_mem("CVE-2021-34431 after 200 rounds", before);
    let grown = b.mem().rss_kib.saturating_sub(before.rss_kib);
    assert!(grown < 16 * 1024, "RSS grew {grown} KiB");
    b.after("CVE-2021-34431", Health::Anonymous);
}

// =======================================================================================
// CVE-2021-34432: zero-length topics and topic aliases
// =======================================================================================

#[test]
fn cve_2021_34432_zero_length_topic_and_bad_topic_aliases() {
    let mut b = Broker::start("allow_anonymous true\n");
    let before = b.mem();
    let mut watcher = Raw::ok(b.port, &Conn::v5("alias-watcher"));
    assert_eq!(watcher.subscribe(&[(b"#", 0)], &[]), vec![0]);
    for qos in [0u8, 1, 2] {
        let e = attack_after(
            b.port,
            &Conn::v311("z3"),
            &publish_bytes(false, b"", b"x", qos, 1, &[]),
        );
        assert_eq!(e, End::Closed, "3.1.1 empty topic QoS {qos}");
        let e = attack_after(
            b.port,
            &Conn::v5("z5"),
            &publish_bytes(true, b"", b"x", qos, 1, &[]),
        );
        assert_eq!(
            e,
            End::Disconnect(0x82),
            "v5 empty topic without alias, QoS {qos}"
        );
        // Topic alias 0, and above the maximum the broker announced.
        let e = attack_after(
            b.port,
            &Conn::v5("a0"),
            &publish_bytes(true, b"t", b"x", qos, 1, &[0x23, 0, 0]),
        );
        assert_eq!(e, End::Disconnect(0x94), "topic alias 0, QoS {qos}");
        let (mut c, ack) = Raw::login(b.port, &Conn::v5("amax"));
        let max = ack
            .windows(3)
            .find(|w| w[0] == 0x22)
            .map_or(0, |w| u16::from_be_bytes([w[1], w[2]]));
        println!("CVE-2021-34432: topic alias maximum {max}");
        let over = max.wrapping_add(1).max(1);
        c.send(&publish_bytes(
            true,
            b"t",
            b"x",
            qos,
            1,
            &[0x23, (over >> 8) as u8, over as u8],
        ));
        assert_eq!(c.end(), End::Disconnect(0x94), "topic alias {over} > {max}");
        // An empty topic with an alias never set.
        if max > 0 {
            let e = attack_after(
                b.port,
                &Conn::v5("unset"),
                &publish_bytes(true, b"", b"x", qos, 1, &[0x23, 0, 1]),
            );
            assert_eq!(e, End::Disconnect(0x82), "empty topic, alias 1 never set");
        }
    }
    // A proper alias works: set it, then use it with an empty topic.
    let mut c = Raw::ok(b.port, &Conn::v5("alias-ok"));
    c.publish_ok(b"alias/t", b"one", &[0x23, 0, 1]);
    c.publish_ok(b"", b"two", &[0x23, 0, 1]);
    for want in [&b"one"[..], b"two"] {
        let (t, p) = watcher.expect_publish();
        assert_eq!((t.as_slice(), p.as_slice()), (&b"alias/t"[..], want));
    }
    watcher.expect_silence();
    b.print_mem("CVE-2021-34432", before);
    b.after("CVE-2021-34432", Health::Anonymous);
}

// =======================================================================================
// CVE-2021-34434 and 2.0.15, 2.0.16: dynamic security
// =======================================================================================

/// A `midge` with the dynsec plugin (admin / adminpw), anonymous clients refused.
fn dynsec_broker() -> Broker {
    require_dynsec();
    let dir = TempDir::new();
    let file = Ctrl::Midge.init(&dir, "dynsec.json");
    let port = free_port();
    let conf = dynsec_conf(&file, false, &format!("listener {port} 127.0.0.1\n"));
    let b = Broker::start_raw(dir, &conf, port);
    dynsec_health_user(&b);
    b
}

/// A dynsec client `health` / `healthpw` that may publish and subscribe under `health/`.
fn dynsec_health_user(b: &Broker) {
    for cmd in [
        "createClient health -p healthpw",
        "createRole health",
        "addRoleACL health publishClientSend health/# allow",
        "addRoleACL health subscribePattern health/# allow",
        "addClientRole health health",
    ] {
        ctrl_ok(b, cmd);
    }
}

fn ctrl(b: &Broker, cmd: &str) -> common::dynsec::Run {
    Ctrl::Midge.dynsec(b.port, cmd, &b.dir.0)
}

fn ctrl_ok(b: &Broker, cmd: &str) {
    let r = ctrl(b, cmd);
    assert_eq!(r.code, Some(0), "midge ctrl dynsec {cmd}: {r:?}");
}

#[test]
fn cve_2021_34434_dynsec_subscribe_right_revoked_while_offline() {
    let mut b = dynsec_broker();
    for cmd in [
        "createClient dev -p devpw",
        "createRole sub",
        "addRoleACL sub subscribePattern t/# allow",
        "addClientRole dev sub",
        "createClient pub -p pubpw",
        "createRole pub",
        "addRoleACL pub publishClientSend t/# allow",
        "addClientRole pub pub",
    ] {
        ctrl_ok(&b, cmd);
    }
    let durable = Conn::v5("dev-durable").user("dev", "devpw").persistent();
    let mut dev = Raw::ok(b.port, &durable);
    assert_eq!(dev.subscribe(&[(b"t/#", 1)], &[]), vec![1]);
    let mut publisher = Raw::ok(b.port, &Conn::v5("pub").user("pub", "pubpw"));
    publisher.publish_ok(b"t/before", b"1", &[]);
    let (t, _) = dev.expect_publish();
    assert_eq!(t, b"t/before");
    dev.disconnect();

    // Revoke the subscribe right while dev is offline.
    ctrl_ok(&b, "removeRoleACL sub subscribePattern t/#");
    publisher.publish_ok(b"t/offline", b"2", &[]);
    let mut dev = Raw::ok(b.port, &durable);
    dev.expect_silence();
    publisher.publish_ok(b"t/after", b"3", &[]);
    dev.expect_silence();
    // Subscribing again is refused.
    assert_eq!(dev.subscribe(&[(b"t/#", 1)], &[]), vec![0x87]);
    dev.disconnect();
    b.after("CVE-2021-34434", Health::User("health", "healthpw"));
}

#[test]
fn mosquitto_2_0_15_dynsec_delete_anonymous_group_is_forbidden() {
    let mut b = dynsec_broker();
    ctrl_ok(&b, "createGroup visitors");
    ctrl_ok(&b, "setAnonymousGroup visitors");
    let r = ctrl(&b, "deleteGroup visitors");
    let out = format!("{}{}", r.stdout, r.stderr);
    assert!(
        out.contains("Deleting the anonymous group is forbidden"),
        "deleteGroup on the anonymous group: {r:?}"
    );
    let r = ctrl(&b, "getAnonymousGroup");
    assert!(r.stdout.contains("visitors"), "{r:?}");
    // Once another group is the anonymous group it can go.
    ctrl_ok(&b, "createGroup other");
    ctrl_ok(&b, "setAnonymousGroup other");
    ctrl_ok(&b, "deleteGroup visitors");
    b.after("2.0.15", Health::User("health", "healthpw"));
}

#[test]
fn mosquitto_2_0_16_will_to_control_topic_is_not_acted_on() {
    let mut b = dynsec_broker();
    let cmd = |name: &str| {
        format!(
            r#"{{"commands":[{{"command":"createClient","username":"{name}","password":"x"}}]}}"#
        )
    };
    // The admin's own publish is acted on (the payload is a valid command).
    let mut admin = Raw::ok(b.port, &Conn::v311("admin-pub").user(ADMIN, ADMIN_PW));
    admin.publish(
        b"$CONTROL/dynamic-security/v1",
        cmd("good").as_bytes(),
        1,
        &[],
    );
    admin.disconnect();
    let deadline = Instant::now() + WAIT;
    while !ctrl(&b, "getClient good").stdout.contains("good") {
        assert!(
            Instant::now() < deadline,
            "admin publish to $CONTROL not acted on"
        );
        thread::sleep(Duration::from_millis(50));
    }
    // The same command as the admin's will, v3 and v5: never acted on.
    for (i, v5) in [false, true].into_iter().enumerate() {
        let base = if v5 { Conn::v5("w") } else { Conn::v311("w") };
        let mut conn = base.user(ADMIN, ADMIN_PW).will(
            &[],
            "$CONTROL/dynamic-security/v1",
            cmd(&format!("evil{i}")).as_bytes(),
        );
        conn.id = format!("admin-will-{i}").into_bytes();
        let c = Raw::ok(b.port, &conn);
        c.drop_abruptly();
    }
    thread::sleep(Duration::from_secs(1));
    for i in 0..2 {
        let r = ctrl(&b, &format!("getClient evil{i}"));
        assert!(
            r.stderr.contains("Client not found") && !r.stdout.contains("evil"),
            "a will created client evil{i}: {r:?}"
        );
    }
    b.after(
        "2.0.16 will to $CONTROL",
        Health::User("health", "healthpw"),
    );
}

// =======================================================================================
// CVE-2021-41039: very many user properties
// =======================================================================================

fn user_props(n: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(n * 7);
    for _ in 0..n {
        p.extend([0x26, 0, 1, b'k', 0, 1, b'v']);
    }
    p
}

#[test]
fn cve_2021_41039_many_user_properties_are_handled() {
    let mut b = Broker::start("allow_anonymous true\n");
    let before = b.mem();
    let mut sub = Raw::ok(b.port, &Conn::v5("up-sub"));
    assert_eq!(sub.subscribe(&[(b"up/#", 0)], &[]), vec![0]);
    // A CONNECT with 35,000 user properties (245 KB, under the 256 KiB pre-CONNECT cap).
    let started = Instant::now();
    let (c, ack) = Raw::login(b.port, &Conn::v5("up-conn").props(&user_props(35_000)));
    println!(
        "CVE-2021-41039: CONNECT with 35,000 user properties answered in {:?}: {}",
        started.elapsed(),
        hex(&ack[..4])
    );
    assert_eq!(ack[3], 0);
    c.disconnect();
    // 100,000 in a CONNECT (700 KB) is over the pre-CONNECT cap: closed.
    assert_eq!(
        attack(
            b.port,
            &Conn::v5("up-big").props(&user_props(100_000)).bytes()
        ),
        End::Closed
    );
    // 100,000 in a PUBLISH (within the maximum packet size): relayed.
    let mut p = Raw::ok(b.port, &Conn::v5("up-pub"));
    let started = Instant::now();
    p.publish_ok(b"up/x", b"many", &user_props(100_000));
    let (t, payload) = sub.expect_publish();
    println!(
        "CVE-2021-41039: PUBLISH with 100,000 user properties relayed in {:?}",
        started.elapsed()
    );
    assert_eq!(
        (t.as_slice(), payload.as_slice()),
        (&b"up/x"[..], &b"many"[..])
    );
    // And again, with the will.
    let c = Raw::ok(
        b.port,
        &Conn::v5("up-will").will(&user_props(30_000), "up/will", b"w"),
    );
    c.drop_abruptly();
    let (t, _) = sub.expect_publish();
    assert_eq!(t, b"up/will");
    b.print_mem("CVE-2021-41039", before);
    b.after("CVE-2021-41039", Health::Anonymous);
}

// =======================================================================================
// 2.0.12 (#2283): no `listener` line means loopback only
// =======================================================================================

/// Listening TCP sockets on `port` from /proc/net/tcp{,6}: local address in hex.
fn listening_on(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 3 && cols[3] == "0A" {
                if let Some((addr, p)) = cols[1].split_once(':') {
                    if u16::from_str_radix(p, 16) == Ok(port) {
                        out.push(addr.to_owned());
                    }
                }
            }
        }
    }
    out
}

#[test]
fn mosquitto_2_0_12_issue_2283_tls_options_without_listener_bind_loopback_only() {
    assert!(
        listening_on(1883).is_empty(),
        "port 1883 is in use; this test needs it free (Mosquitto 2's default listener)"
    );
    let dir = TempDir::new();
    let ca = tls::make_ca("Midge CVE CA");
    let (sc, sk) = tls::leaf(&ca, "localhost");
    let ca_file = dir.write("ca.pem", &ca.cert.pem());
    let cert = dir.write("server.pem", &sc);
    let key = dir.write("server.key", &sk);
    // TLS options before any listener and no listener at all.
    let conf = format!("cafile {ca_file}\ncertfile {cert}\nkeyfile {key}\nallow_anonymous true\n");
    let conf_path = dir.write("midge.conf", &conf);
    let mut midge = Midge::start(&conf_path, 1883);
    let start = mem_of(midge.child.id());
    let addrs = listening_on(1883);
    println!("2.0.12 #2283: listening on 1883 at {addrs:?}");
    assert!(!addrs.is_empty());
    for a in &addrs {
        assert!(
            a == "0100007F" || a == "00000000000000000000000001000000",
            "bound a non-loopback address: {a}"
        );
    }
    // The TLS options apply to that loopback listener: plain MQTT gets no CONNACK, TLS
    // clients trusting the CA connect.
    let mut plain = Raw::open(1883, false);
    plain.send(&Conn::v311("plain").bytes());
    assert!(
        !matches!(plain.recv_within(Duration::from_secs(2)), Ok(ref p) if p[0] == 0x20),
        "plain MQTT accepted on the TLS listener"
    );
    let ack = tls_mqtt_connect(1883, &ca_file).expect("TLS client");
    assert_eq!(hex(&ack), "20 02 00 00");
    assert!(midge.child.try_wait().unwrap().is_none(), "midge exited");
    let now = mem_of(midge.child.id());
    println!(
        "[2.0.12 #2283] broker VmRSS {} KiB -> {} KiB, VmHWM {} KiB -> {} KiB",
        start.rss_kib, now.rss_kib, start.hwm_kib, now.hwm_kib
    );
}

/// TLS to `port` trusting `ca_file`, then a 3.1.1 CONNECT: the CONNACK's bytes.
fn tls_mqtt_connect(port: u16, ca_file: &str) -> Result<Vec<u8>, String> {
    use openssl::ssl::{SslConnector, SslMethod};
    let mut builder = SslConnector::builder(SslMethod::tls()).unwrap();
    builder.set_ca_file(ca_file).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let mut tls = builder
        .build()
        .connect("localhost", tcp)
        .map_err(|e| format!("handshake: {e}"))?;
    tls.write_all(&Conn::v311("tls-client").bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut ack = [0u8; 4];
    tls.read_exact(&mut ack).map_err(|e| format!("read: {e}"))?;
    Ok(ack.to_vec())
}

// =======================================================================================
// CVE-2023-3592: invalid property types in the will
// =======================================================================================

#[test]
fn cve_2023_3592_will_with_invalid_property_types_is_refused() {
    let mut b = Broker::start("allow_anonymous true\n");
    let invalid: [(&str, Vec<u8>); 8] = [
        ("topic alias", vec![0x23, 0, 1]),
        ("subscription identifier", vec![0x0b, 1]),
        ("session expiry", vec![0x11, 0, 0, 0, 1]),
        ("receive maximum", vec![0x21, 0, 1]),
        ("maximum packet size", vec![0x27, 0, 0, 1, 0]),
        ("authentication method", [vec![0x15], str16(b"x")].concat()),
        ("reason string", [vec![0x1f], str16(b"x")].concat()),
        ("server keep alive", vec![0x13, 0, 1]),
    ];
    let run = |b: &Broker| {
        for (what, p) in &invalid {
            // Alone, and after a valid property (the leak was on the error path).
            for props in [p.clone(), [vec![0x03], str16(b"text"), p.clone()].concat()] {
                let c = Conn::v5("w").will(&props, "w/t", b"x");
                let e = attack(b.port, &c.bytes());
                assert_v5_error(e, &[0x81, 0x82], &format!("will with {what}"));
            }
        }
        // An identifier that does not exist at all: malformed.
        let c = Conn::v5("w").will(&[0x7f, 0], "w/t", b"x");
        let e = attack(b.port, &c.bytes());
        assert_v5_error(e, &[0x81, 0x82], "unknown will property");
    };
    run(&b);
    let before = b.mem();
    for _ in 0..100 {
        run(&b);
    }
    b.print_mem("CVE-2023-3592 after 1,700 refused wills", before);
    let grown = b.mem().rss_kib.saturating_sub(before.rss_kib);
    assert!(grown < 16 * 1024, "RSS grew {grown} KiB");
    b.after("CVE-2023-3592", Health::Anonymous);
}

// =======================================================================================
// CVE-2023-28366: QoS 2 with one packet id, never released; receive maximum
// =======================================================================================

#[test]
fn cve_2023_28366_qos2_same_packet_id_without_pubrel_keeps_memory_bounded() {
    let mut b = Broker::start("allow_anonymous true\n");
    let mut sub = Raw::ok(b.port, &Conn::v5("q2-sub"));
    assert_eq!(sub.subscribe(&[(b"q2/#", 2)], &[]), vec![2]);
    let before = b.mem();
    let payload = vec![b'x'; 1024];
    let mut c = Raw::ok(b.port, &Conn::v5("q2-same"));
    let mut pubrecs = 0;
    for i in 0..10_000 {
        c.send(&{
            let mut p = publish_bytes(true, b"q2/same", &payload, 2, 1, &[]);
            if i > 0 && i % 2 == 0 {
                p[0] |= 0x08; // DUP on some
            }
            p
        });
        if i % 500 == 499 {
            while let Ok(p) = c.recv_within(Duration::from_millis(1)) {
                assert_eq!(p[0], 0x50, "expected PUBREC, got {}", hex(&p));
                pubrecs += 1;
            }
        }
    }
    c.ping();
    while let Some(p) = c.pending.pop_front() {
        if p[0] == 0x50 {
            pubrecs += 1;
        }
    }
    println!("CVE-2023-28366: 10,000 QoS 2 PUBLISH with id 1: {pubrecs} PUBRECs seen");
    b.print_mem("CVE-2023-28366 same id", before);
    // The message is delivered at most once.
    let mut delivered = 0;
    while let Ok(p) = sub.recv_within(QUIET) {
        if p[0] >> 4 == 3 {
            sub.parse_publish(&p);
            delivered += 1;
        }
    }
    assert!(delivered <= 1, "one message id delivered {delivered} times");
    // Released: now delivered (method A or B: exactly one copy overall).
    c.send(&[0x62, 0x02, 0x00, 0x01]);
    let comp = c.next_of(7);
    assert_eq!(comp[..4], [0x70, 0x02, 0x00, 0x01]);
    while let Ok(p) = sub.recv_within(QUIET) {
        if p[0] >> 4 == 3 {
            sub.parse_publish(&p);
            delivered += 1;
        }
    }
    assert_eq!(delivered, 1, "exactly once");
    c.disconnect();

    // Distinct ids, never released: beyond the announced Receive Maximum the client is
    // disconnected with 0x93.
    let (mut c, ack) = Raw::login(b.port, &Conn::v5("q2-many"));
    let rm = ack
        .windows(3)
        .find(|w| w[0] == 0x21)
        .map_or(65_535, |w| u16::from_be_bytes([w[1], w[2]]));
    println!("CVE-2023-28366: broker Receive Maximum {rm}");
    for id in 1..=rm.saturating_add(1) {
        c.send(&publish_bytes(true, b"q2/many", &payload, 2, id, &[]));
    }
    let mut end = None;
    loop {
        match c.recv() {
            Ok(p) if p[0] == 0x50 => {}
            Ok(p) if p[0] == 0xe0 => {
                end = Some(body_of(&p)[0]);
            }
            Ok(p) => panic!("unexpected {}", hex(&p)),
            Err(Ended::Closed) => break,
            Err(Ended::Timeout) => break,
        }
    }
    assert_eq!(end, Some(0x93), "Receive Maximum {rm} exceeded");
    drop(sub);
    b.print_mem("CVE-2023-28366", before);
    b.after("CVE-2023-28366", Health::Anonymous);
}

// =======================================================================================
// CVE-2023-5632: thousands of idle TCP connections cost no CPU
// =======================================================================================

#[test]
fn cve_2023_5632_idle_connections_use_no_cpu_and_time_out() {
    let mut b = Broker::start("allow_anonymous true\n");
    let before = b.mem();
    let n = 5_000;
    let mut idle = Vec::with_capacity(n);
    for _ in 0..n {
        idle.push(TcpStream::connect(("127.0.0.1", b.port)).expect("idle connect"));
    }
    thread::sleep(Duration::from_millis(500));
    let cpu0 = cpu_seconds(b.pid());
    let wall = Instant::now();
    thread::sleep(Duration::from_secs(3));
    let cpu = cpu_seconds(b.pid()) - cpu0;
    println!(
        "CVE-2023-5632: {n} idle connections, broker CPU {cpu:.3} s over {:?}",
        wall.elapsed()
    );
    b.print_mem("CVE-2023-5632 with 5,000 idle sockets", before);
    assert!(
        cpu < 1.0,
        "broker used {cpu:.3} s CPU over 3 s with idle sockets"
    );
    // All closed after the connect timeout.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut open: Vec<TcpStream> = idle;
    while !open.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} idle sockets still open after 30 s",
            open.len()
        );
        thread::sleep(Duration::from_millis(500));
        open.retain(|s| {
            s.set_nonblocking(true).unwrap();
            let mut byte = [0u8; 1];
            match (&*s).read(&mut byte) {
                Ok(0) => false,
                Ok(_) => true,
                Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
            }
        });
    }
    b.after("CVE-2023-5632", Health::Anonymous);
}

// =======================================================================================
// CVE-2024-8376: shared and non-shared subscriptions to the same filter
// =======================================================================================

#[test]
fn cve_2024_8376_shared_and_plain_subscriptions_mixed() {
    let mut b = Broker::start("allow_anonymous true\n");
    let before = b.mem();
    let mut a = Raw::ok(b.port, &Conn::v5("mix-a"));
    let mut p = Raw::ok(b.port, &Conn::v5("mix-p"));
    assert_eq!(
        a.subscribe(&[(b"$share/g/a/b", 1), (b"a/b", 1)], &[]),
        vec![1, 1]
    );
    p.publish_ok(b"a/b", b"1", &[]);
    let mut got = 0;
    while let Ok(pk) = a.recv_within(QUIET) {
        a.parse_publish(&pk);
        got += 1;
    }
    assert_eq!(got, 2, "one copy per subscription");
    // Unsubscribing a/b leaves $share/g/a/b.
    assert_eq!(a.unsubscribe(&[b"a/b"]), vec![0]);
    p.publish_ok(b"a/b", b"2", &[]);
    let (t, pl) = a.expect_publish();
    assert_eq!((t.as_slice(), pl.as_slice()), (&b"a/b"[..], &b"2"[..]));
    a.expect_silence();
    assert_eq!(a.unsubscribe(&[b"a/b"]), vec![0x11]);
    assert_eq!(a.unsubscribe(&[b"$share/g/a/b"]), vec![0]);
    p.publish_ok(b"a/b", b"3", &[]);
    a.expect_silence();
    a.disconnect();

    // A bounded deterministic mix over several clients and sessions.
    let filters: [&[u8]; 5] = [
        b"$share/g/a/b",
        b"a/b",
        b"$share/h/a/+",
        b"a/#",
        b"$share/g/#",
    ];
    let mut seed = 0x2545_f491_u32;
    let mut rand = move |n: u32| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed % n
    };
    let mut clients: Vec<Option<Raw>> = (0..4).map(|_| None).collect();
    for step in 0..1_500 {
        let i = rand(4) as usize;
        let id = format!("mix-{i}");
        match (rand(7), clients[i].is_some()) {
            (_, false) => {
                let conn = if rand(2) == 0 {
                    Conn::v5(&id).persistent()
                } else {
                    Conn::v5(&id)
                };
                clients[i] = Some(Raw::ok(b.port, &conn));
            }
            (0 | 1, true) => {
                let f = filters[rand(5) as usize];
                let c = clients[i].as_mut().unwrap();
                let codes = c.subscribe(&[(f, rand(3) as u8)], &[]);
                assert!(codes[0] <= 2, "step {step}: SUBACK {codes:?}");
            }
            (2 | 3, true) => {
                let f = filters[rand(5) as usize];
                let c = clients[i].as_mut().unwrap();
                let codes = c.unsubscribe(&[f]);
                assert!(codes[0] == 0 || codes[0] == 0x11, "step {step}: {codes:?}");
            }
            (4, true) => {
                let c = clients[i].as_mut().unwrap();
                c.publish(b"a/b", b"m", 1, &[]);
            }
            (5, true) => clients[i].take().unwrap().disconnect(),
            (_, true) => clients[i].take().unwrap().drop_abruptly(),
        }
        // Drain what arrived so no socket fills.
        for c in clients.iter_mut().flatten() {
            while let Ok(pk) = c.recv_within(Duration::ZERO) {
                if pk[0] >> 4 == 3 {
                    c.parse_publish(&pk);
                }
            }
        }
    }
    drop(clients);
    b.print_mem("CVE-2024-8376", before);
    b.after("CVE-2024-8376", Health::Anonymous);
}

// =======================================================================================
// 2.0.21: malicious SUBSCRIBE from an authenticated client
// =======================================================================================

#[test]
fn mosquitto_2_0_21_malicious_subscribe_is_refused_and_does_not_leak() {
    let mut b = Broker::start("allow_anonymous true\n");
    let run = |b: &Broker| {
        // 500 filters, many duplicates, one packet: one code each.
        let mut c = Raw::ok(b.port, &Conn::v5("many"));
        let names: Vec<Vec<u8>> = (0..500)
            .map(|i| format!("m/{}", i % 50).into_bytes())
            .collect();
        let filters: Vec<(&[u8], u8)> = names.iter().map(|n| (n.as_slice(), 1)).collect();
        let codes = c.subscribe(&filters, &[]);
        assert_eq!(codes, vec![1; 500]);
        c.disconnect();
        // Bad option bits (reserved 6-7, QoS 3, retain handling 3).
        for opts in [0x40u8, 0x80, 0x03, 0x30] {
            let e = attack_after(
                b.port,
                &Conn::v5("opts"),
                &subscribe_bytes(true, 1, &[(b"a", 0), (b"b", opts)], &[]),
            );
            assert_v5_error(e, &[0x81, 0x82], &format!("options {opts:#04x}"));
        }
        let e = attack_after(
            b.port,
            &Conn::v311("opts3"),
            &subscribe_bytes(false, 1, &[(b"a", 0x04)], &[]),
        );
        assert_eq!(e, End::Closed, "3.1.1 reserved option bits");
        // Subscription identifier 0.
        let e = attack_after(
            b.port,
            &Conn::v5("sid0"),
            &subscribe_bytes(true, 1, &[(b"a", 0)], &[0x0b, 0]),
        );
        assert_eq!(e, End::Disconnect(0x82), "subscription identifier 0");
        // No filters at all; packet id 0.
        let e = attack_after(
            b.port,
            &Conn::v5("none"),
            &subscribe_bytes(true, 1, &[], &[]),
        );
        assert_v5_error(e, &[0x81, 0x82], "SUBSCRIBE without filters");
        let e = attack_after(
            b.port,
            &Conn::v5("id0"),
            &subscribe_bytes(true, 0, &[(b"a", 0)], &[]),
        );
        assert_v5_error(e, &[0x81, 0x82], "SUBSCRIBE packet id 0");
        // Wrong fixed-header flags.
        let mut s = subscribe_bytes(true, 1, &[(b"a", 0)], &[]);
        s[0] = 0x80;
        let e = attack_after(b.port, &Conn::v5("flags"), &s);
        assert_v5_error(e, &[0x81, 0x82], "SUBSCRIBE flags 0");
    };
    run(&b);
    let before = b.mem();
    for _ in 0..40 {
        run(&b);
    }
    b.print_mem("2.0.21 after 40 rounds", before);
    let grown = b.mem().rss_kib.saturating_sub(before.rss_kib);
    assert!(grown < 16 * 1024, "RSS grew {grown} KiB");
    b.after("2.0.21", Health::Anonymous);
}

// =======================================================================================
// 2.0.23 (#3440): auto_id_prefix length
// =======================================================================================

#[test]
fn mosquitto_2_0_23_long_auto_id_prefix_is_a_start_up_error() {
    let dir = TempDir::new();
    let port = free_port();
    let long = "p".repeat(100);
    let err = start_fails(
        &dir,
        &format!("auto_id_prefix {long}\nlistener {port} 127.0.0.1\nallow_anonymous true\n"),
    );
    assert!(
        err.contains("auto_id_prefix") && err.contains("bad.conf:1"),
        "{err}"
    );
    // 50 characters is accepted, and the assigned id uses it.
    let prefix = "q".repeat(50);
    let mut b = Broker::start(&format!("allow_anonymous true\nauto_id_prefix {prefix}\n"));
    let (c, ack) = Raw::login(b.port, &Conn::v5(""));
    assert_eq!(ack[3], 0);
    assert!(
        ack.windows(prefix.len()).any(|w| w == prefix.as_bytes()),
        "assigned client id uses the prefix: {}",
        hex(&ack)
    );
    c.disconnect();
    b.after("2.0.23", Health::Anonymous);
}

// =======================================================================================
// 2.0.16: a corrupt persistence file is an error, not a crash
// =======================================================================================

#[test]
fn mosquitto_2_0_16_corrupt_persistence_file_is_a_start_up_error() {
    let dir = TempDir::new();
    let mut junk = Vec::new();
    let mut x = 7u32;
    for _ in 0..8192 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        junk.push((x >> 16) as u8);
    }
    std::fs::write(dir.0.join("midge.db"), &junk).unwrap();
    let port = free_port();
    let err = start_fails(
        &dir,
        &format!(
            "persistence true\npersistence_location {}/\nlistener {port} 127.0.0.1\n\
             allow_anonymous true\n",
            dir.0.display()
        ),
    );
    println!("2.0.16 corrupt persistence: {}", err.trim());
    assert!(
        err.contains("midge.db") && err.contains("corrupt"),
        "the error names the file: {err}"
    );
}

// =======================================================================================
// #3702 (open in Mosquitto): persisted QoS 1/2 messages with expiry and takeovers
// =======================================================================================

#[test]
fn issue_3702_persisted_qos_messages_with_expiry_and_takeover_survive_kill_and_restart() {
    let dir = TempDir::new();
    let port = free_port();
    let conf = format!(
        "persistence true\npersistence_location {}/\nlistener {port} 127.0.0.1\n\
         allow_anonymous true\n",
        dir.0.display()
    );
    let b = Broker::start_raw(dir, &conf, port);
    let before = b.mem();
    // Durable subscribers (some expiring in 1 s), then offline.
    let ids = ["p-0", "p-1", "p-2", "p-3", "p-4", "p-5"];
    for (i, id) in ids.iter().enumerate() {
        let mut conn = Conn::v5(id).persistent();
        if i % 2 == 1 {
            conn.props = vec![0x11, 0, 0, 0, 1];
        }
        let mut c = Raw::ok(b.port, &conn);
        assert_eq!(c.subscribe(&[(b"p/#", 2)], &[]), vec![2]);
        c.drop_abruptly();
    }
    let mut publisher = Raw::ok(b.port, &Conn::v5("p-pub"));
    let mut seed = 0x1234_5678_u32;
    let mut rand = move |n: u32| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed % n
    };
    for step in 0..600 {
        match rand(6) {
            0..=2 => {
                // QoS 1 or 2 (message expiry on some) to the offline sessions.
                let qos = 1 + rand(2) as u8;
                let id = publisher.packet_id();
                let props: &[u8] = if rand(2) == 0 {
                    &[0x02, 0, 0, 0, 1]
                } else {
                    &[]
                };
                publisher.send(&publish_bytes(true, b"p/x", b"m", qos, id, props));
                if qos == 2 {
                    let rec = publisher.next_of(5);
                    publisher.send(&[0x62, 0x02, rec[2], rec[3]]);
                    let _ = publisher.next_of(7);
                } else {
                    let _ = publisher.next_of(4);
                }
            }
            3 => {
                // Takeover: the same id twice, the first dropped without reading.
                let id = ids[rand(6) as usize];
                let first = Raw::ok(b.port, &Conn::v5(id).persistent());
                let mut second = Raw::ok(b.port, &Conn::v5(id).persistent());
                drop(first);
                // Read part of the backlog, acknowledging it, then vanish.
                for _ in 0..rand(5) {
                    match second.recv_within(Duration::from_millis(50)) {
                        Ok(p) if p[0] >> 4 == 3 => {
                            second.parse_publish(&p);
                        }
                        _ => break,
                    }
                }
                second.drop_abruptly();
            }
            4 => {
                // A clean start throws a session away.
                let id = ids[rand(6) as usize];
                Raw::ok(b.port, &Conn::v5(id)).disconnect();
                let mut c = Raw::ok(b.port, &Conn::v5(id).persistent());
                c.subscribe(&[(b"p/#", 2)], &[]);
                c.drop_abruptly();
            }
            _ => {
                if step % 100 == 0 {
                    thread::sleep(Duration::from_millis(1100)); // let some expire
                }
            }
        }
    }
    publisher.disconnect();
    b.print_mem("#3702 before kill -9", before);
    // kill -9, restart on the same store.
    let Broker { dir, midge, .. } = b;
    drop(midge);
    let mut b = Broker::start_raw(dir, &conf, port);
    println!("#3702 restart log:\n{}", b.midge.log_text());
    // Every session resumes and drains what it has.
    for id in ids {
        let (mut c, ack) = Raw::login(b.port, &Conn::v5(id).persistent());
        assert_eq!(ack[3], 0, "{id}: {}", hex(&ack));
        let mut n = 0;
        while let Ok(p) = c.recv_within(Duration::from_millis(300)) {
            if p[0] >> 4 == 3 {
                c.parse_publish(&p);
                n += 1;
            } else if p[0] >> 4 == 6 {
                c.send(&[0x70, 0x02, p[2], p[3]]);
            }
        }
        println!("#3702 {id}: {n} messages after restart");
        c.disconnect();
    }
    b.after("#3702", Health::Anonymous);
}

// =======================================================================================
// PROXY protocol (2.1, #3435): not implemented, refused at start-up
// =======================================================================================

#[test]
fn proxy_protocol_issue_3435_enable_proxy_protocol_is_refused_at_start_up() {
    for v in [1, 2] {
        let dir = TempDir::new();
        let port = free_port();
        let err = start_fails(
            &dir,
            &format!(
                "listener {port} 127.0.0.1\nenable_proxy_protocol {v}\nallow_anonymous true\n"
            ),
        );
        assert!(err.contains("enable_proxy_protocol"), "{err}");
    }
}

// =======================================================================================
// The protocol-level inputs of the same class
// =======================================================================================

#[test]
fn protocol_extras_reserved_types_varints_flags_and_options() {
    let mut b = Broker::start("allow_anonymous true\n");
    let before = b.mem();
    // Reserved packet types 0 and 15 (v5 15 is AUTH: without a method, a protocol error).
    for first in [0x00u8, 0x0f] {
        let e = attack_after(b.port, &Conn::v311("r3"), &[first, 0x00]);
        assert_eq!(e, End::Closed, "3.1.1 type {first:#04x}");
        let e = attack_after(b.port, &Conn::v5("r5"), &[first, 0x00]);
        assert_v5_error(e, &[0x81, 0x82], &format!("v5 type {first:#04x}"));
    }
    assert_eq!(attack(b.port, &[0x00, 0x00]), End::Closed);
    assert_eq!(attack(b.port, &[0xf0, 0x00]), End::Closed);
    let e = attack_after(b.port, &Conn::v311("auth3"), &[0xf0, 0x00]);
    assert_eq!(e, End::Closed, "AUTH from a 3.1.1 client");
    // A 5-byte variable byte integer.
    let e = attack_after(
        b.port,
        &Conn::v5("v5b"),
        &[0x30, 0x80, 0x80, 0x80, 0x80, 0x01],
    );
    assert_v5_error(e, &[0x81], "5-byte remaining length");
    let e = attack_after(
        b.port,
        &Conn::v311("v3b"),
        &[0x30, 0x80, 0x80, 0x80, 0x80, 0x01],
    );
    assert_eq!(e, End::Closed);
    // A 5-byte property length.
    let mut body = str16(b"t");
    body.extend([0x80, 0x80, 0x80, 0x80, 0x01]);
    let e = attack_after(b.port, &Conn::v5("v5p"), &frame(0x30, &body));
    assert_v5_error(e, &[0x81], "5-byte property length");
    // CONNECT: reserved flag, will flags without will, password without username (3.1.1).
    let mut c = Conn::v311("rf");
    c.extra_flags = 0x01;
    assert_eq!(
        attack(b.port, &c.bytes()),
        End::Closed,
        "CONNECT reserved flag"
    );
    let mut c = Conn::v5("rf5");
    c.extra_flags = 0x01;
    assert_v5_error(
        attack(b.port, &c.bytes()),
        &[0x81],
        "v5 CONNECT reserved flag",
    );
    for f in [0x08u8, 0x10, 0x20] {
        let mut c = Conn::v311("wf");
        c.extra_flags = f;
        assert_eq!(
            attack(b.port, &c.bytes()),
            End::Closed,
            "will bits {f:#04x} without will"
        );
    }
    let mut c = Conn::v311("pw");
    c.pass = Some(b"secret".to_vec());
    assert_eq!(
        attack(b.port, &c.bytes()),
        End::Closed,
        "3.1.1 password without username"
    );
    // Subscription options reserved bits: see 2.0.21. Shared subscription with No Local.
    let e = attack_after(
        b.port,
        &Conn::v5("nl"),
        &subscribe_bytes(true, 1, &[(b"$share/g/t", 0x04)], &[]),
    );
    assert_eq!(
        e,
        End::Disconnect(0x82),
        "shared subscription with No Local"
    );
    // PUBLISH flags: QoS 3, DUP on QoS 0.
    let e = attack_after(b.port, &Conn::v5("q3"), &[0x36, 0x05, 0, 1, b't', 0, 1]);
    assert_v5_error(e, &[0x81], "PUBLISH QoS 3");
    let e = attack_after(b.port, &Conn::v5("d0"), &[0x38, 0x04, 0, 1, b't', 0]);
    assert_v5_error(e, &[0x81, 0x82], "PUBLISH DUP with QoS 0");
    // Topic names with wildcards.
    let e = attack_after(
        b.port,
        &Conn::v5("wild"),
        &publish_bytes(true, b"a/+", b"x", 0, 0, &[]),
    );
    assert_v5_error(e, &[0x81, 0x82, 0x90], "PUBLISH to a wildcard topic");
    // Keep alive 0: accepted, never timed out.
    let mut c = Conn::v311("ka0");
    c.keepalive = 0;
    let mut raw = Raw::ok(b.port, &c);
    raw.expect_silence();
    thread::sleep(Duration::from_secs(2));
    raw.ping();
    raw.disconnect();
    b.print_mem("protocol extras", before);
    b.after("protocol extras", Health::Anonymous);
}
