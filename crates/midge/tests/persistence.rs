//! Persistence with the real `midge` binary: `kill -9` and clean stops with persistent
//! sessions (MQTT 3.1.1 clean session 0 and MQTT 5 session expiry), queued and in-flight
//! QoS 1/2 messages, retained messages, will delay and session expiry across a restart,
//! torn and foreign store files, file modes, and `persistence_fsync`.
//!
//! Clients speak raw MQTT (midge-proto's codec) over std TCP sockets with bounded reads, so
//! that the test controls exactly what is acknowledged and when, and keeps the client side
//! of a QoS 2 exchange (packet ids awaiting PUBREL) across reconnections the way a correct
//! client must: a QoS 2 PUBLISH is delivered once, when first received, and a resend of its
//! packet id before the PUBREL is a duplicate.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

mod common;

use bytes::{Bytes, BytesMut};
use common::{broker, free_port, tool_output_within, TempDir};
use midge_proto::{
    decode_fixed_header, decode_packet, encode_packet, ConnAck, Connect, Disconnect, Packet,
    Properties, ProtocolVersion, PubResp, Publish, QoS, Sender, Subscribe, SubscribeFilter,
    SubscriptionOptions, Will,
};

const V3: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;

// ---------------------------------------------------------------------------------------
// Temp dirs and the broker process
// ---------------------------------------------------------------------------------------

/// A fresh temporary directory, removed on drop.
fn temp_dir() -> TempDir {
    TempDir::with_prefix("midge-persist")
}

/// The store files in `dir`.
fn db(dir: &TempDir) -> PathBuf {
    dir.join("midge.db")
}

fn wal(dir: &TempDir) -> PathBuf {
    dir.join("midge.db-wal")
}

/// The configuration of a broker with persistence in `dir` (on a new free port).
fn write_config(dir: &TempDir, extra: &str) -> (PathBuf, u16) {
    let port = free_port();
    let conf = dir.join("midge.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\n{extra}",
            dir.0.display()
        ),
    )
    .expect("write config");
    (conf, port)
}

fn spawn(conf: &Path) -> (Child, broker::Log) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_midge"))
        .arg("-c")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start midge");
    let log = broker::stderr_log(&mut child);
    (child, log)
}

/// A running broker; SIGKILLed on drop.
struct Midge {
    child: Child,
    log: broker::Log,
    port: u16,
}

impl Drop for Midge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Midge {
    /// Starts a broker with persistence in `dir` and waits for its listener.
    fn start(dir: &TempDir, extra: &str) -> Midge {
        let (conf, port) = write_config(dir, extra);
        let (child, log) = spawn(&conf);
        let mut m = Midge { child, log, port };
        broker::wait_listening(
            &mut m.child,
            &m.log,
            port,
            Duration::from_secs(15),
            "midge exited",
            "midge not ready",
        );
        m
    }

    fn log_text(&self) -> String {
        broker::log_text(&self.log)
    }

    /// `kill -9`.
    fn kill9(mut self) {
        self.child.kill().expect("SIGKILL midge");
        let status = self.child.wait().expect("wait for midge");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "{status}"
        );
    }

    /// SIGTERM, and waits (bounded) for a clean exit.
    fn stop(mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on the pid of a child this process started and has not reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = wait_bounded(&mut self.child, Duration::from_secs(15))
            .unwrap_or_else(|| panic!("midge did not stop on SIGTERM:\n{}", self.log_text()));
        thread::sleep(Duration::from_millis(50));
        assert!(
            status.success(),
            "midge exited with {status} on SIGTERM:\n{}",
            self.log_text()
        );
        assert!(!self.log_text().contains("panicked"), "{}", self.log_text());
    }
}

fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// What a start-up that does not reach its listener did.
enum Start {
    Running(Midge),
    Failed { log: String },
}

/// Starts a broker on `dir`'s store that may refuse to start. A refusal must be a normal
/// exit with a non-zero status, never a panic or a signal.
fn try_start(dir: &TempDir, extra: &str) -> Start {
    let (conf, port) = write_config(dir, extra);
    let (child, log) = spawn(&conf);
    let mut m = Midge { child, log, port };
    let ready = format!("listen socket on port {port}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if m.log_text().contains(&ready) {
            return Start::Running(m);
        }
        if let Ok(Some(status)) = m.child.try_wait() {
            thread::sleep(Duration::from_millis(100));
            let log = m.log_text();
            assert!(!log.contains("panicked"), "midge panicked:\n{log}");
            assert!(
                status.code().is_some_and(|c| c != 0),
                "midge ended with {status}:\n{log}"
            );
            return Start::Failed { log };
        }
        assert!(Instant::now() < deadline, "midge hung:\n{}", m.log_text());
        thread::sleep(Duration::from_millis(20));
    }
}

/// Starts a broker that must refuse the store; returns its log.
fn start_refused(dir: &TempDir, extra: &str) -> String {
    match try_start(dir, extra) {
        Start::Running(m) => panic!("midge started:\n{}", m.log_text()),
        Start::Failed { log, .. } => log,
    }
}

// ---------------------------------------------------------------------------------------
// A raw MQTT client
// ---------------------------------------------------------------------------------------

struct Client {
    stream: TcpStream,
    version: ProtocolVersion,
    rbuf: BytesMut,
    next_id: u16,
}

struct ConnectOpts {
    version: ProtocolVersion,
    clean: bool,
    session_expiry: Option<u32>,
    will: Option<Will>,
}

impl ConnectOpts {
    /// 3.1.1 clean session 0.
    fn v3_persistent() -> ConnectOpts {
        ConnectOpts {
            version: V3,
            clean: false,
            session_expiry: None,
            will: None,
        }
    }

    /// 5.0 clean start 0, session expiry `expiry` s.
    fn v5_persistent(expiry: u32) -> ConnectOpts {
        ConnectOpts {
            version: V5,
            clean: false,
            session_expiry: Some(expiry),
            will: None,
        }
    }

    fn clean(version: ProtocolVersion) -> ConnectOpts {
        ConnectOpts {
            version,
            clean: true,
            session_expiry: None,
            will: None,
        }
    }
}

impl Client {
    fn connect(port: u16, id: &str, opts: ConnectOpts) -> (Client, ConnAck) {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to midge");
        stream.set_nodelay(true).unwrap();
        let mut c = Client {
            stream,
            version: opts.version,
            rbuf: BytesMut::new(),
            next_id: 0,
        };
        c.send(&Packet::Connect(Box::new(Connect {
            protocol: opts.version,
            clean_start: opts.clean,
            keep_alive: 60,
            client_id: id.into(),
            will: opts.will,
            username: None,
            password: None,
            properties: Properties {
                session_expiry_interval: opts.session_expiry,
                ..Properties::default()
            },
        })));
        match c.recv(Duration::from_secs(5)) {
            Some(Packet::ConnAck(ack)) => {
                assert_eq!(ack.code, 0, "{id}: CONNACK {ack:?}");
                (c, ack)
            }
            other => panic!("{id}: expected CONNACK, got {other:?}"),
        }
    }

    fn send(&mut self, p: &Packet) {
        let mut out = BytesMut::new();
        encode_packet(p, self.version, &mut out);
        self.stream.write_all(&out).expect("write to midge");
    }

    /// Sends, ignoring a connection the broker (or its death) already closed.
    fn try_send(&mut self, p: &Packet) -> bool {
        let mut out = BytesMut::new();
        encode_packet(p, self.version, &mut out);
        self.stream.write_all(&out).is_ok()
    }

    /// The next packet within `limit`; `None` on timeout or when the connection closed.
    fn recv(&mut self, limit: Duration) -> Option<Packet> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(h) = decode_fixed_header(&self.rbuf).expect("fixed header") {
                let total = h.header_len + h.remaining_length;
                if self.rbuf.len() >= total {
                    let mut frame = self.rbuf.split_to(total);
                    let body = frame.split_off(h.header_len).freeze();
                    return Some(
                        decode_packet(h.first_byte, body, self.version, Sender::Server)
                            .expect("decode packet"),
                    );
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut buf = [0u8; 16384];
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.rbuf.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(_) => return None,
            }
        }
    }

    fn packet_id(&mut self) -> u16 {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.next_id
    }

    fn subscribe(&mut self, filters: &[(&str, QoS)]) {
        let packet_id = self.packet_id();
        self.send(&Packet::Subscribe(Subscribe {
            packet_id,
            filters: filters
                .iter()
                .map(|(f, qos)| SubscribeFilter {
                    filter: (*f).into(),
                    options: SubscriptionOptions {
                        qos: *qos,
                        ..SubscriptionOptions::default()
                    },
                })
                .collect(),
            properties: Properties::default(),
        }));
        match self.recv(Duration::from_secs(5)) {
            Some(Packet::SubAck(a)) => {
                assert_eq!(a.packet_id, packet_id);
                for (code, (_, qos)) in a.codes.iter().zip(filters) {
                    assert_eq!(*code, *qos as u8, "SUBACK {a:?}");
                }
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Publishes and waits for PUBACK (QoS 1) or PUBREC, PUBREL, PUBCOMP (QoS 2).
    fn publish(&mut self, topic: &str, payload: &[u8], qos: QoS, retain: bool) {
        let packet_id = if qos == QoS::AtMostOnce {
            0
        } else {
            self.packet_id()
        };
        self.send(&Packet::Publish(Publish {
            dup: false,
            qos,
            retain,
            topic: topic.into(),
            packet_id,
            payload: Bytes::copy_from_slice(payload),
            properties: Properties::default(),
        }));
        let limit = Duration::from_secs(10);
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => match self.recv(limit) {
                Some(Packet::PubAck(a)) if a.packet_id == packet_id => {
                    assert!(a.reason < 0x80, "PUBACK {a:?}")
                }
                other => panic!("expected PUBACK {packet_id}, got {other:?}"),
            },
            QoS::ExactlyOnce => {
                match self.recv(limit) {
                    Some(Packet::PubRec(a)) if a.packet_id == packet_id => {
                        assert!(a.reason < 0x80, "PUBREC {a:?}")
                    }
                    other => panic!("expected PUBREC {packet_id}, got {other:?}"),
                }
                self.send(&Packet::PubRel(PubResp::new(packet_id)));
                match self.recv(limit) {
                    Some(Packet::PubComp(a)) if a.packet_id == packet_id => {}
                    other => panic!("expected PUBCOMP {packet_id}, got {other:?}"),
                }
            }
        }
    }

    fn disconnect(mut self) {
        self.send(&Packet::Disconnect(Disconnect::default()));
        let _ = self.stream.shutdown(Shutdown::Write);
        // Wait for the broker to close its side: the session is handed back by then.
        let _ = self.recv(Duration::from_secs(2));
    }

    /// Drops the TCP connection without DISCONNECT (the will is due).
    fn drop_connection(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// The receiving side of a persistent subscriber: what it got per topic, in arrival order,
/// and its QoS 2 packet ids awaiting PUBREL (the client's session state, kept across its
/// connections).
#[derive(Default)]
struct Inbox {
    /// Payloads as numbers, per topic, as delivered to the application.
    got: BTreeMap<String, Vec<u32>>,
    /// QoS 2 packet ids delivered, PUBREC sent, no PUBREL yet.
    awaiting_rel: HashSet<u16>,
    /// QoS 2 PUBLISH resends (same packet id before the PUBREL) not delivered again.
    qos2_resends: usize,
    /// PUBLISH packets with the DUP flag.
    dup_flags: usize,
}

impl Inbox {
    fn total(&self) -> usize {
        self.got.values().map(Vec::len).sum()
    }

    /// Handles one packet from the broker, answering it. False when the connection is
    /// gone (the answer could not be written).
    fn handle(&mut self, c: &mut Client, p: Packet) -> bool {
        match p {
            Packet::Publish(p) => {
                if p.dup {
                    self.dup_flags += 1;
                }
                let n: u32 = std::str::from_utf8(&p.payload)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("payload {:?}", p.payload));
                match p.qos {
                    QoS::AtMostOnce => {
                        self.got.entry(p.topic.to_string()).or_default().push(n);
                        true
                    }
                    QoS::AtLeastOnce => {
                        self.got.entry(p.topic.to_string()).or_default().push(n);
                        c.try_send(&Packet::PubAck(PubResp::new(p.packet_id)))
                    }
                    QoS::ExactlyOnce => {
                        if self.awaiting_rel.insert(p.packet_id) {
                            self.got.entry(p.topic.to_string()).or_default().push(n);
                        } else {
                            assert!(
                                p.dup,
                                "QoS 2 packet id {} reused before PUBREL",
                                p.packet_id
                            );
                            self.qos2_resends += 1;
                        }
                        c.try_send(&Packet::PubRec(PubResp::new(p.packet_id)))
                    }
                }
            }
            Packet::PubRel(r) => {
                self.awaiting_rel.remove(&r.packet_id);
                c.try_send(&Packet::PubComp(PubResp::new(r.packet_id)))
            }
            Packet::Disconnect(_) => false,
            other => panic!("subscriber got {other:?}"),
        }
    }

    /// Receives until `want` messages were delivered in all, or `quiet` passes without a
    /// packet (or the connection closes). Bounded by `limit` overall.
    fn receive(&mut self, c: &mut Client, want: usize, quiet: Duration, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            // Once everything is here, a short wait for stray resends.
            let wait = if self.total() >= want && self.awaiting_rel.is_empty() {
                Duration::from_millis(300)
            } else {
                quiet
            };
            match c.recv(wait) {
                Some(p) => {
                    if !self.handle(c, p) {
                        return;
                    }
                }
                None => return,
            }
        }
    }

    /// Checks that `topic` got exactly 0..n (QoS 2: exactly once; QoS 1: at least once, the
    /// first arrivals in order). Returns the number of duplicates.
    fn check(&self, who: &str, topic: &str, n: u32, exactly_once: bool) -> usize {
        let got = self.got.get(topic).map(Vec::as_slice).unwrap_or(&[]);
        let mut seen = HashSet::new();
        let mut firsts = Vec::new();
        for &x in got {
            if seen.insert(x) {
                firsts.push(x);
            }
        }
        let dups = got.len() - firsts.len();
        let missing: Vec<u32> = (0..n).filter(|x| !seen.contains(x)).collect();
        assert!(
            missing.is_empty(),
            "{who} {topic}: {} of {n} missing, first {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        assert!(
            firsts.windows(2).all(|w| w[0] < w[1]),
            "{who} {topic}: out of order: {firsts:?}"
        );
        assert_eq!(
            firsts.len(),
            n as usize,
            "{who} {topic}: unexpected payloads"
        );
        if exactly_once {
            assert_eq!(dups, 0, "{who} {topic}: {dups} duplicate(s) at QoS 2");
        }
        dups
    }
}

fn publish_numbered(port: u16, id: &str, topic: &str, qos: QoS, range: std::ops::Range<u32>) {
    let (mut p, _) = Client::connect(port, id, ConnectOpts::clean(V3));
    for i in range {
        p.publish(topic, i.to_string().as_bytes(), qos, false);
    }
    p.disconnect();
}

// ---------------------------------------------------------------------------------------
// a. kill -9: offline subscribers, then a subscriber mid-stream
// ---------------------------------------------------------------------------------------

/// Persistent subscribers (3.1.1 clean session 0, MQTT 5 session expiry) are offline while
/// N QoS 1 and N QoS 2 messages are published and acknowledged; the broker is killed with
/// SIGKILL and restarted on the same store; each subscriber gets every message, QoS 2
/// exactly once, in order.
fn crash_with_offline_subscribers(extra: &str, n: u32) {
    let dir = temp_dir();
    let m = Midge::start(&dir, extra);
    let subs = [
        ("sub-v3", ConnectOpts::v3_persistent as fn() -> ConnectOpts),
        ("sub-v5", || ConnectOpts::v5_persistent(300)),
    ];
    for (id, opts) in &subs {
        let (mut c, ack) = Client::connect(m.port, id, opts());
        assert!(!ack.session_present);
        c.subscribe(&[
            ("crash/q1", QoS::AtLeastOnce),
            ("crash/q2", QoS::ExactlyOnce),
        ]);
        c.disconnect();
    }
    let port = m.port;
    let q1 =
        thread::spawn(move || publish_numbered(port, "pub-q1", "crash/q1", QoS::AtLeastOnce, 0..n));
    let q2 =
        thread::spawn(move || publish_numbered(port, "pub-q2", "crash/q2", QoS::ExactlyOnce, 0..n));
    q1.join().expect("QoS 1 publisher");
    q2.join().expect("QoS 2 publisher");
    m.kill9();

    let m = Midge::start(&dir, extra);
    assert!(
        m.log_text().contains("Restored 2 session(s)"),
        "{}",
        m.log_text()
    );
    for (id, opts) in &subs {
        let (mut c, ack) = Client::connect(m.port, id, opts());
        assert!(ack.session_present, "{id}: no session after kill -9");
        let mut inbox = Inbox::default();
        inbox.receive(
            &mut c,
            2 * n as usize,
            Duration::from_secs(3),
            Duration::from_secs(60),
        );
        let dups = inbox.check(id, "crash/q1", n, false);
        inbox.check(id, "crash/q2", n, true);
        eprintln!(
            "{id}: {} QoS 1 + {} QoS 2 received after kill -9; QoS 1 duplicates: {dups}",
            n, n
        );
        c.disconnect();
    }
    m.stop();
}

#[test]
fn kill9_offline_persistent_subscribers_get_every_acknowledged_message() {
    crash_with_offline_subscribers("", 200);
}

#[test]
fn kill9_with_fsync_offline_persistent_subscribers_get_every_acknowledged_message() {
    crash_with_offline_subscribers("persistence_fsync true\n", 50);
}

/// A subscriber is connected and receiving (slowly) when the broker is killed mid-stream;
/// after the restart it gets the rest: every message, QoS 2 exactly once (resends of
/// packet ids awaiting PUBREL are the client's to drop), in order.
fn crash_mid_stream(version: ProtocolVersion) {
    const N: u32 = 200;
    let dir = temp_dir();
    let m = Midge::start(&dir, "");
    let opts = move || match version {
        ProtocolVersion::V5 => ConnectOpts::v5_persistent(300),
        _ => ConnectOpts::v3_persistent(),
    };
    let id = format!("midstream-v{}", version as u8);
    let (mut c, _) = Client::connect(m.port, &id, opts());
    c.subscribe(&[("mid/q1", QoS::AtLeastOnce), ("mid/q2", QoS::ExactlyOnce)]);

    // The subscriber: 5 ms per packet, so that it lags far behind the publishers; should
    // the publishers be slower than that, it stops reading at 150 messages (with its
    // inflight window sent and unacknowledged), so the kill always comes mid-stream.
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    let received = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let inbox = Arc::clone(&inbox);
        let received = Arc::clone(&received);
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                if received.load(Ordering::Relaxed) >= 150 {
                    thread::sleep(Duration::from_millis(5));
                    continue;
                }
                let Some(p) = c.recv(Duration::from_secs(5)) else {
                    return; // the broker died
                };
                thread::sleep(Duration::from_millis(5));
                let mut inbox = inbox.lock().unwrap();
                if !inbox.handle(&mut c, p) {
                    return;
                }
                received.store(inbox.total(), Ordering::Relaxed);
            }
        })
    };
    let port = m.port;
    let q1 =
        thread::spawn(move || publish_numbered(port, "pub-q1", "mid/q1", QoS::AtLeastOnce, 0..N));
    let q2 =
        thread::spawn(move || publish_numbered(port, "pub-q2", "mid/q2", QoS::ExactlyOnce, 0..N));
    q1.join().expect("QoS 1 publisher");
    q2.join().expect("QoS 2 publisher");
    // Everything is acknowledged to the publishers; kill while the subscriber is halfway.
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.load(Ordering::Relaxed) < 60 {
        assert!(Instant::now() < deadline, "subscriber got nothing");
        thread::sleep(Duration::from_millis(5));
    }
    let before = received.load(Ordering::Relaxed);
    m.kill9();
    done.store(true, Ordering::Relaxed);
    reader.join().expect("reader");
    assert!(
        before < 2 * N as usize,
        "the subscriber was not mid-stream ({before})"
    );

    let m = Midge::start(&dir, "");
    let (mut c, ack) = Client::connect(m.port, &id, opts());
    assert!(ack.session_present, "{id}: no session after kill -9");
    let mut inbox = Arc::try_unwrap(inbox).ok().unwrap().into_inner().unwrap();
    let at_crash = inbox.total();
    inbox.receive(
        &mut c,
        2 * N as usize,
        Duration::from_secs(3),
        Duration::from_secs(60),
    );
    let dups = inbox.check(&id, "mid/q1", N, false);
    inbox.check(&id, "mid/q2", N, true);
    assert!(
        inbox.awaiting_rel.is_empty(),
        "PUBREL missing for {:?}",
        inbox.awaiting_rel
    );
    eprintln!(
        "{id}: {at_crash} received before kill -9, {} after; QoS 1 duplicates {dups}, \
         QoS 2 resends dropped by the client {}, DUP flags {}",
        inbox.total() - at_crash,
        inbox.qos2_resends,
        inbox.dup_flags
    );
    c.disconnect();
    m.stop();
}

#[test]
fn kill9_mid_stream_v311_subscriber_gets_the_rest() {
    crash_mid_stream(V3);
}

#[test]
fn kill9_mid_stream_v5_subscriber_gets_the_rest() {
    crash_mid_stream(V5);
}

/// A persistent publisher's QoS 2 flows cut by `kill -9` after the PUBREC: after the restart
/// its resent PUBLISH (DUP) and PUBREL complete them, and the subscriber gets each message
/// once (the QoS 2 packet ids awaiting PUBREL are stored).
#[test]
fn kill9_between_pubrec_and_pubrel_keeps_qos2_exactly_once() {
    const N: u16 = 20;
    let dir = temp_dir();
    let m = Midge::start(&dir, "");
    let (mut s, _) = Client::connect(m.port, "q2-sub", ConnectOpts::v5_persistent(300));
    s.subscribe(&[("q2/t", QoS::ExactlyOnce)]);
    s.disconnect();
    let (mut p, _) = Client::connect(m.port, "q2-pub", ConnectOpts::v3_persistent());
    for id in 1..=N {
        p.send(&Packet::Publish(Publish {
            qos: QoS::ExactlyOnce,
            topic: "q2/t".into(),
            packet_id: id,
            payload: Bytes::from(id.to_string()),
            ..Publish::default()
        }));
        match p.recv(Duration::from_secs(10)) {
            Some(Packet::PubRec(r)) if r.packet_id == id => {}
            other => panic!("expected PUBREC {id}, got {other:?}"),
        }
    }
    m.kill9();

    let m = Midge::start(&dir, "");
    let (mut p, ack) = Client::connect(m.port, "q2-pub", ConnectOpts::v3_persistent());
    assert!(ack.session_present);
    // As a client that did not see the PUBRECs would: PUBLISH again with DUP (the first
    // half), then PUBREL for all.
    for id in 1..=N / 2 {
        p.send(&Packet::Publish(Publish {
            dup: true,
            qos: QoS::ExactlyOnce,
            topic: "q2/t".into(),
            packet_id: id,
            payload: Bytes::from(id.to_string()),
            ..Publish::default()
        }));
        match p.recv(Duration::from_secs(10)) {
            Some(Packet::PubRec(r)) if r.packet_id == id => {}
            other => panic!("expected PUBREC {id}, got {other:?}"),
        }
    }
    for id in 1..=N {
        p.send(&Packet::PubRel(PubResp::new(id)));
        match p.recv(Duration::from_secs(10)) {
            Some(Packet::PubComp(r)) if r.packet_id == id => {}
            other => panic!("expected PUBCOMP {id}, got {other:?}"),
        }
    }
    p.disconnect();
    let (mut s, ack) = Client::connect(m.port, "q2-sub", ConnectOpts::v5_persistent(300));
    assert!(ack.session_present);
    let mut inbox = Inbox::default();
    inbox.receive(
        &mut s,
        N as usize,
        Duration::from_secs(3),
        Duration::from_secs(20),
    );
    let got = inbox.got.get("q2/t").cloned().unwrap_or_default();
    assert_eq!(
        got,
        (1..=u32::from(N)).collect::<Vec<_>>(),
        "QoS 2 not exactly once"
    );
    s.disconnect();
    m.stop();
}

/// Debian's `mosquitto_sub` as the persistent subscriber (3.1.1 `-c`, and MQTT 5 `-c -x`):
/// subscribed, offline while QoS 1 and 2 messages are acknowledged, broker killed,
/// restarted; it prints each message once, in order.
#[test]
fn kill9_mosquitto_sub_persistent_clients_get_every_message() {
    const N: u32 = 100;
    let dir = temp_dir();
    let m = Midge::start(&dir, "");
    let clients: [(&str, &[&str]); 2] = [
        ("msub-v3", &["-V", "311"]),
        ("msub-v5", &["-V", "5", "-x", "300"]),
    ];
    for (id, extra) in clients {
        let mut cmd = Command::new("mosquitto_sub");
        cmd.args(["-h", "127.0.0.1", "-p", &m.port.to_string(), "-c", "-i", id])
            .args(extra)
            .args(["-q", "1", "-t", "msub/q1", "-q", "2", "-t", "msub/q2", "-E"]);
        let out = tool_output_within(cmd, Duration::from_secs(15));
        assert!(out.status.success(), "{id}: {out:?}");
    }
    publish_numbered(m.port, "msub-pub1", "msub/q1", QoS::AtLeastOnce, 0..N);
    publish_numbered(m.port, "msub-pub2", "msub/q2", QoS::ExactlyOnce, 0..N);
    m.kill9();

    let m = Midge::start(&dir, "");
    for (id, extra) in clients {
        let mut cmd = Command::new("mosquitto_sub");
        cmd.args(["-h", "127.0.0.1", "-p", &m.port.to_string(), "-c", "-i", id])
            .args(extra)
            .args([
                "-q",
                "2",
                "-t",
                "msub/#",
                "-v",
                "-C",
                &(2 * N).to_string(),
                "-W",
                "8",
            ]);
        let out = tool_output_within(cmd, Duration::from_secs(15));
        let text = String::from_utf8_lossy(&out.stdout);
        let mut per_topic: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for line in text.lines() {
            let (topic, n) = line.split_once(' ').expect("topic payload");
            per_topic.entry(topic).or_default().push(n.parse().unwrap());
        }
        let want: Vec<u32> = (0..N).collect();
        assert_eq!(per_topic.get("msub/q1"), Some(&want), "{id} QoS 1:\n{text}");
        assert_eq!(per_topic.get("msub/q2"), Some(&want), "{id} QoS 2:\n{text}");
        assert!(out.status.success(), "{id}: {out:?}");
    }
    m.stop();
}

// ---------------------------------------------------------------------------------------
// b. Retained messages
// ---------------------------------------------------------------------------------------

fn retained_snapshot(port: u16) -> BTreeMap<String, Vec<u8>> {
    let (mut c, _) = Client::connect(port, "retained-reader", ConnectOpts::clean(V5));
    c.subscribe(&[("ret/#", QoS::AtLeastOnce)]);
    let mut out = BTreeMap::new();
    while let Some(p) = c.recv(Duration::from_millis(700)) {
        match p {
            Packet::Publish(p) => {
                assert!(p.retain, "{p:?}");
                if p.qos != QoS::AtMostOnce {
                    c.send(&Packet::PubAck(PubResp::new(p.packet_id)));
                }
                assert!(out
                    .insert(p.topic.to_string(), p.payload.to_vec())
                    .is_none());
            }
            other => panic!("{other:?}"),
        }
    }
    c.disconnect();
    out
}

#[test]
fn retained_messages_survive_kill9_and_a_clean_stop() {
    let dir = temp_dir();
    let m = Midge::start(&dir, "");
    let (mut p, _) = Client::connect(m.port, "retainer", ConnectOpts::clean(V5));
    let mut want = BTreeMap::new();
    for i in 0..50u32 {
        let topic = format!("ret/{i}");
        let payload = format!("retained payload {i} {}", "x".repeat(i as usize * 7));
        let qos = if i % 2 == 0 {
            QoS::AtLeastOnce
        } else {
            QoS::ExactlyOnce
        };
        p.publish(&topic, payload.as_bytes(), qos, true);
        want.insert(topic, payload.into_bytes());
    }
    // Replaced, then cleared ones.
    p.publish("ret/3", b"replaced", QoS::AtLeastOnce, true);
    want.insert("ret/3".into(), b"replaced".to_vec());
    for i in [5u32, 6] {
        p.publish(&format!("ret/{i}"), b"", QoS::AtLeastOnce, true);
        want.remove(&format!("ret/{i}"));
    }
    p.disconnect();
    assert_eq!(retained_snapshot(m.port), want);
    m.kill9();

    let m = Midge::start(&dir, "");
    assert_eq!(retained_snapshot(m.port), want, "after kill -9");
    // QoS 0 retained changes, then a clean stop: those are kept too.
    let (mut p, _) = Client::connect(m.port, "retainer", ConnectOpts::clean(V3));
    p.publish("ret/qos0", b"at most once", QoS::AtMostOnce, true);
    p.publish("ret/7", b"", QoS::AtMostOnce, true);
    p.disconnect();
    want.insert("ret/qos0".into(), b"at most once".to_vec());
    want.remove("ret/7");
    thread::sleep(Duration::from_millis(200));
    m.stop();

    let m = Midge::start(&dir, "");
    assert_eq!(retained_snapshot(m.port), want, "after a clean stop");
    assert!(m
        .log_text()
        .contains(&format!("{} retained message(s)", want.len())));
    m.stop();
}

// ---------------------------------------------------------------------------------------
// c. Clean restart
// ---------------------------------------------------------------------------------------

#[test]
fn clean_restart_keeps_persistent_sessions_not_clean_ones() {
    let dir = temp_dir();
    let m = Midge::start(&dir, "");
    // Offline persistent sessions with queued messages.
    for (id, opts) in [
        ("keep-v3", ConnectOpts::v3_persistent()),
        ("keep-v5", ConnectOpts::v5_persistent(600)),
    ] {
        let (mut c, _) = Client::connect(m.port, id, opts);
        c.subscribe(&[("clean/t", QoS::ExactlyOnce)]);
        c.disconnect();
    }
    // Clean sessions, still connected at the stop, and a v5 one with expiry 0.
    let (mut c3, _) = Client::connect(m.port, "gone-v3", ConnectOpts::clean(V3));
    c3.subscribe(&[("clean/t", QoS::AtLeastOnce)]);
    let (mut c5, _) = Client::connect(
        m.port,
        "gone-v5",
        ConnectOpts {
            version: V5,
            clean: false,
            session_expiry: Some(0),
            will: None,
        },
    );
    c5.subscribe(&[("clean/t", QoS::AtLeastOnce)]);
    // A persistent one connected at the stop keeps its session too.
    let (mut on, _) = Client::connect(m.port, "keep-online", ConnectOpts::v5_persistent(600));
    on.subscribe(&[("clean/t", QoS::AtLeastOnce)]);
    publish_numbered(m.port, "pub", "clean/t", QoS::ExactlyOnce, 0..20);
    // The connected ones drain what they got (and acknowledge it).
    for c in [&mut c3, &mut c5, &mut on] {
        let mut inbox = Inbox::default();
        inbox.receive(c, 20, Duration::from_secs(2), Duration::from_secs(10));
        assert_eq!(inbox.total(), 20);
    }
    m.stop();
    drop((c3, c5, on));

    let m = Midge::start(&dir, "");
    for id in ["keep-v3", "keep-v5"] {
        let opts = if id == "keep-v3" {
            ConnectOpts::v3_persistent()
        } else {
            ConnectOpts::v5_persistent(600)
        };
        let (mut c, ack) = Client::connect(m.port, id, opts);
        assert!(ack.session_present, "{id}");
        let mut inbox = Inbox::default();
        inbox.receive(&mut c, 20, Duration::from_secs(2), Duration::from_secs(20));
        inbox.check(id, "clean/t", 20, true);
        c.disconnect();
    }
    // The online persistent one: session kept, nothing left to deliver, subscription kept.
    let (mut on, ack) = Client::connect(m.port, "keep-online", ConnectOpts::v5_persistent(600));
    assert!(ack.session_present);
    assert!(on.recv(Duration::from_millis(500)).is_none());
    publish_numbered(m.port, "pub", "clean/t", QoS::AtLeastOnce, 100..101);
    let mut inbox = Inbox::default();
    inbox.receive(&mut on, 1, Duration::from_secs(2), Duration::from_secs(5));
    assert_eq!(inbox.got.get("clean/t"), Some(&vec![100]));
    on.disconnect();
    // The clean ones are gone: no session, no subscription.
    for (id, version) in [("gone-v3", V3), ("gone-v5", V5)] {
        let (c, ack) = Client::connect(
            m.port,
            id,
            ConnectOpts {
                version,
                clean: false,
                session_expiry: Some(60).filter(|_| version == V5),
                will: None,
            },
        );
        assert!(!ack.session_present, "{id} kept");
        let mut c = c;
        assert!(c.recv(Duration::from_millis(300)).is_none());
        c.disconnect();
    }
    m.stop();
}

// ---------------------------------------------------------------------------------------
// d. Will delay across a crash
// ---------------------------------------------------------------------------------------

#[test]
fn delayed_will_is_published_once_after_a_kill9_restart() {
    let dir = temp_dir();
    let m = Midge::start(&dir, "");
    let (c, _) = Client::connect(
        m.port,
        "testament",
        ConnectOpts {
            version: V5,
            clean: true,
            session_expiry: Some(60),
            will: Some(Will {
                topic: "will/testament".into(),
                payload: Bytes::from_static(b"7"),
                qos: QoS::AtLeastOnce,
                retain: false,
                properties: Properties {
                    will_delay_interval: Some(5),
                    ..Properties::default()
                },
            }),
        },
    );
    let dropped = Instant::now();
    c.drop_connection();
    thread::sleep(Duration::from_millis(1200));
    m.kill9();

    let m = Midge::start(&dir, "");
    let (mut w, _) = Client::connect(m.port, "watcher", ConnectOpts::clean(V5));
    w.subscribe(&[("will/#", QoS::AtLeastOnce)]);
    let mut inbox = Inbox::default();
    inbox.receive(&mut w, 1, Duration::from_secs(10), Duration::from_secs(12));
    let at = dropped.elapsed();
    assert_eq!(inbox.got.get("will/testament"), Some(&vec![7]), "no will");
    // Due 5 s after the drop; whole seconds are stored, so allow one either side.
    assert!(
        at >= Duration::from_millis(3900) && at <= Duration::from_secs(8),
        "will published {at:?} after the drop"
    );
    // And only once.
    assert!(
        w.recv(Duration::from_secs(2)).is_none(),
        "will published twice"
    );
    // The session was kept (expiry 60 s) but its will is spent: a restart does not
    // publish it again.
    w.disconnect();
    m.stop();
    let m = Midge::start(&dir, "");
    let (mut w, _) = Client::connect(m.port, "watcher", ConnectOpts::clean(V5));
    w.subscribe(&[("will/#", QoS::AtLeastOnce)]);
    assert!(
        w.recv(Duration::from_secs(6)).is_none(),
        "will published again"
    );
    w.disconnect();
    m.stop();
}

// ---------------------------------------------------------------------------------------
// e. Session expiry across a restart
// ---------------------------------------------------------------------------------------

#[test]
fn session_expiry_counts_the_time_the_broker_was_down() {
    let dir = temp_dir();
    let m = Midge::start(&dir, "");
    for (id, expiry) in [("short", 3), ("long", 600)] {
        let (mut c, _) = Client::connect(m.port, id, ConnectOpts::v5_persistent(expiry));
        c.subscribe(&[("exp/t", QoS::AtLeastOnce)]);
        c.disconnect();
    }
    m.stop();
    thread::sleep(Duration::from_secs(4));
    let m = Midge::start(&dir, "");
    let (c, ack) = Client::connect(m.port, "short", ConnectOpts::v5_persistent(3));
    assert!(!ack.session_present, "expired session restored");
    c.disconnect();
    let (c, ack) = Client::connect(m.port, "long", ConnectOpts::v5_persistent(600));
    assert!(ack.session_present, "live session lost");
    c.disconnect();
    m.stop();

    // Sessions that expire after the restart, with what is left of their interval.
    let m = Midge::start(&dir, "");
    for id in ["later-a", "later-b"] {
        let (mut c, _) = Client::connect(m.port, id, ConnectOpts::v5_persistent(4));
        c.subscribe(&[("exp/t", QoS::AtLeastOnce)]);
        c.disconnect();
    }
    let gone = Instant::now();
    m.kill9();
    thread::sleep(Duration::from_secs(1));
    let m = Midge::start(&dir, "");
    let (c, ack) = Client::connect(m.port, "later-a", ConnectOpts::v5_persistent(4));
    assert!(ack.session_present, "session lost before its expiry");
    c.disconnect();
    // later-b was not touched since: it expires 4 s after its disconnect (whole seconds
    // stored), not 4 s after the restart.
    thread::sleep(Duration::from_millis(5500).saturating_sub(gone.elapsed()));
    let (c, ack) = Client::connect(m.port, "later-b", ConnectOpts::v5_persistent(4));
    assert!(!ack.session_present, "session outlived its expiry");
    c.disconnect();
    m.stop();
}

// ---------------------------------------------------------------------------------------
// f. Torn writes
// ---------------------------------------------------------------------------------------

fn copy_dir(from: &TempDir, to: &TempDir) {
    for e in std::fs::read_dir(&from.0).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name.to_string_lossy().starts_with("midge.db") {
            std::fs::copy(e.path(), to.0.join(&name)).unwrap();
        }
    }
}

fn truncate(path: &Path, len: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len).unwrap();
}

/// A store with a persistent session, queued QoS 1/2 messages and retained messages.
fn populated_store(dir: &TempDir, how_to_stop: fn(Midge)) {
    let m = Midge::start(dir, "");
    let (mut c, _) = Client::connect(m.port, "torn", ConnectOpts::v3_persistent());
    c.subscribe(&[("torn/q1", QoS::AtLeastOnce), ("torn/q2", QoS::ExactlyOnce)]);
    c.disconnect();
    let (mut p, _) = Client::connect(m.port, "torn-pub", ConnectOpts::clean(V3));
    for i in 0..300u32 {
        p.publish("torn/q1", i.to_string().as_bytes(), QoS::AtLeastOnce, false);
        p.publish("torn/q2", i.to_string().as_bytes(), QoS::ExactlyOnce, false);
        if i % 10 == 0 {
            p.publish(&format!("torn/r/{i}"), &[b'r'; 300], QoS::AtLeastOnce, true);
        }
    }
    p.disconnect();
    how_to_stop(m);
}

/// After a cut: a refusal naming the file, or a broker whose state is consistent (the
/// session's queue a prefix-free, in-order, duplicate-free set of what was published).
fn check_after_cut(dir: &TempDir, what: &str) -> &'static str {
    match try_start(dir, "") {
        Start::Failed { log, .. } => {
            assert!(
                log.contains(&db(dir).display().to_string()),
                "{what}: the error does not name the file:\n{log}"
            );
            "refused"
        }
        Start::Running(m) => {
            let (mut c, _) = Client::connect(m.port, "torn", ConnectOpts::v3_persistent());
            let mut inbox = Inbox::default();
            inbox.receive(&mut c, 600, Duration::from_secs(2), Duration::from_secs(30));
            for topic in ["torn/q1", "torn/q2"] {
                let got = inbox.got.get(topic).cloned().unwrap_or_default();
                assert!(
                    got.windows(2).all(|w| w[0] < w[1]),
                    "{what}: {topic} out of order or duplicated: {got:?}"
                );
                assert!(got.iter().all(|&x| x < 300), "{what}: {got:?}");
            }
            c.disconnect();
            let log = m.log_text();
            m.stop();
            assert!(!log.contains("panicked"), "{what}:\n{log}");
            "started"
        }
    }
}

#[test]
fn torn_wal_after_kill9_recovers_or_is_refused() {
    let pristine = temp_dir();
    populated_store(&pristine, Midge::kill9);
    let wal_len = std::fs::metadata(wal(&pristine))
        .expect("a WAL after kill -9")
        .len();
    assert!(wal_len > 32 * 1024, "WAL of {wal_len} bytes");
    let mut outcomes = Vec::new();
    for cut in [
        wal_len - 1,
        wal_len - 100,
        wal_len - 4096 - 10,
        wal_len / 2 + 13,
        wal_len / 3,
        4096 + 24 + 7,
        100,
        31,
        0,
    ] {
        let dir = temp_dir();
        copy_dir(&pristine, &dir);
        truncate(&wal(&dir), cut);
        outcomes.push((cut, check_after_cut(&dir, &format!("WAL cut at {cut}"))));
    }
    eprintln!("WAL of {wal_len} bytes cut at: {outcomes:?}");
}

#[test]
fn torn_database_file_recovers_or_is_refused() {
    let pristine = temp_dir();
    populated_store(&pristine, Midge::stop);
    assert!(
        std::fs::metadata(wal(&pristine)).map_or(true, |m| m.len() == 0),
        "WAL left after a clean stop"
    );
    let db_len = std::fs::metadata(db(&pristine)).unwrap().len();
    let mut outcomes = Vec::new();
    for cut in [
        db_len - 1,
        db_len - 4096,
        db_len / 2,
        8192,
        4096,
        600,
        100,
        1,
    ] {
        let dir = temp_dir();
        copy_dir(&pristine, &dir);
        truncate(&db(&dir), cut);
        let outcome = check_after_cut(&dir, &format!("database cut at {cut}"));
        // Every cut loses pages the file's header counts: never silently accepted.
        assert_eq!(
            outcome, "refused",
            "database cut at {cut} of {db_len} accepted"
        );
        outcomes.push((cut, outcome));
    }
    eprintln!("database of {db_len} bytes cut at: {outcomes:?}");
}

#[test]
fn torn_database_file_with_a_wal_after_kill9_recovers_or_is_refused() {
    let pristine = temp_dir();
    populated_store(&pristine, Midge::kill9);
    let db_len = std::fs::metadata(db(&pristine)).unwrap().len();
    let mut outcomes = Vec::new();
    for cut in [db_len - 1, db_len / 2, 4096, 100] {
        let dir = temp_dir();
        copy_dir(&pristine, &dir);
        truncate(&db(&dir), cut);
        outcomes.push((
            cut,
            check_after_cut(&dir, &format!("database cut at {cut}")),
        ));
    }
    eprintln!("database of {db_len} bytes (with a WAL) cut at: {outcomes:?}");
}

// ---------------------------------------------------------------------------------------
// g. File modes, newer and foreign files, a second broker
// ---------------------------------------------------------------------------------------

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn store_files_are_mode_0600() {
    let dir = temp_dir();
    let m = Midge::start(&dir, "");
    let (mut c, _) = Client::connect(m.port, "modes", ConnectOpts::v3_persistent());
    c.subscribe(&[("modes/t", QoS::AtLeastOnce)]);
    c.disconnect();
    assert_eq!(mode(&db(&dir)), 0o600);
    assert_eq!(mode(&wal(&dir)), 0o600);
    assert!(!dir.join("midge.db-shm").exists(), "a -shm file");
    m.kill9();
    // Widened by someone else: narrowed again at start.
    std::fs::set_permissions(db(&dir), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(wal(&dir), std::fs::Permissions::from_mode(0o666)).unwrap();
    let m = Midge::start(&dir, "");
    assert_eq!(mode(&db(&dir)), 0o600);
    assert_eq!(mode(&wal(&dir)), 0o600);
    m.stop();
    assert_eq!(mode(&db(&dir)), 0o600);
}

#[test]
fn a_store_of_a_newer_format_is_refused() {
    let dir = temp_dir();
    let m = Midge::start(&dir, "");
    m.stop();
    {
        let conn = rusqlite::Connection::open(db(&dir)).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let log = start_refused(&dir, "");
    let path = db(&dir).display().to_string();
    assert!(
        log.contains(&path) && log.contains("newer") && log.contains("99"),
        "{log}"
    );
}

#[test]
fn foreign_files_are_refused() {
    let dir = temp_dir();
    let path = db(&dir);
    // Random bytes.
    let mut junk = vec![0u8; 8192];
    let mut x: u32 = 0x1234_5678;
    for b in junk.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    std::fs::write(&path, &junk).unwrap();
    let log = start_refused(&dir, "");
    assert!(log.contains(&path.display().to_string()), "{log}");
    assert_eq!(std::fs::read(&path).unwrap(), junk, "the file was changed");

    // A Mosquitto persistence file (its 15-byte magic, then a header and chunks).
    let mut mosq = vec![
        0x00, 0xB5, 0x00, b'm', b'o', b's', b'q', b'u', b'i', b't', b't', b'o', b' ', b'd', b'b',
    ];
    mosq.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 6]);
    mosq.extend(junk.iter().take(2000));
    let mpath = dir.join("mosquitto.db");
    std::fs::write(&mpath, &mosq).unwrap();
    let log = start_refused(&dir, "persistence_file mosquitto.db\n");
    assert!(log.contains(&mpath.display().to_string()), "{log}");
    assert_eq!(std::fs::read(&mpath).unwrap(), mosq, "the file was changed");

    // Some other application's SQLite database.
    std::fs::remove_file(&path).unwrap();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine');")
            .unwrap();
    }
    let log = start_refused(&dir, "");
    assert!(
        log.contains(&path.display().to_string()) && log.contains("not a Midge"),
        "{log}"
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    let body: String = conn
        .query_row("SELECT body FROM notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(body, "mine");
}

#[test]
fn a_real_mosquitto_db_is_refused() {
    let Ok(status) = Command::new("mosquitto")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    else {
        eprintln!("mosquitto not installed: skipped");
        return;
    };
    let _ = status;
    let dir = temp_dir();
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\nuser root\n",
            dir.0.display()
        ),
    )
    .unwrap();
    let mut mosq = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        thread::sleep(Duration::from_millis(50));
    }
    let (mut c, _) = Client::connect(port, "mosq-sub", ConnectOpts::v3_persistent());
    c.subscribe(&[("m/t", QoS::AtLeastOnce)]);
    c.disconnect();
    publish_numbered(port, "mosq-pub", "m/t", QoS::AtLeastOnce, 0..5);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(mosq.id() as libc::pid_t, libc::SIGTERM) };
    assert!(wait_bounded(&mut mosq, Duration::from_secs(10)).is_some());
    let mpath = dir.join("mosquitto.db");
    let before = std::fs::read(&mpath).expect("mosquitto.db written");
    let log = start_refused(&dir, "persistence_file mosquitto.db\n");
    assert!(log.contains(&mpath.display().to_string()), "{log}");
    assert_eq!(
        std::fs::read(&mpath).unwrap(),
        before,
        "mosquitto.db was changed"
    );
}

#[test]
fn a_second_broker_on_the_same_store_is_refused() {
    let dir = temp_dir();
    let first = Midge::start(&dir, "");
    let log = start_refused(&dir, "");
    assert!(
        log.contains(&db(&dir).display().to_string()) && log.contains("in use"),
        "{log}"
    );
    // The first one is unharmed.
    let (mut c, _) = Client::connect(first.port, "still", ConnectOpts::v3_persistent());
    c.subscribe(&[("still/t", QoS::AtLeastOnce)]);
    c.disconnect();
    first.stop();
}

#[test]
fn a_missing_persistence_location_is_a_clear_error() {
    let dir = temp_dir();
    let port = free_port();
    let conf = dir.join("midge.conf");
    let missing = dir.join("no/such/dir");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\npersistence true\npersistence_location {}/\n",
            missing.display()
        ),
    )
    .unwrap();
    let (mut child, log) = spawn(&conf);
    let status = wait_bounded(&mut child, Duration::from_secs(10)).expect("midge hung");
    thread::sleep(Duration::from_millis(100));
    let log = log.lock().unwrap().join("\n");
    assert!(status.code().is_some_and(|c| c != 0), "{status}\n{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(log.contains("no/such/dir"), "{log}");
}
