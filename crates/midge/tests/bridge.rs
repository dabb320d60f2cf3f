//! Bridges (issue 8) with real processes: seed 004's two brokers (a front broker bridged to
//! a remote one that only lets the bridge's account see `mqtt/#`), Midge to Midge and Midge
//! to Debian's Mosquitto 2.0, both ways; reconnection with queued QoS 1 messages; TLS with
//! certificates made at test time and a wrong CA; PSK to Mosquitto; prefix remapping; state
//! notifications; Mosquitto bridging to Midge (the bridge marker stops loops).
//!
//! Mosquitto (`mosquitto`, `mosquitto_pub`, `mosquitto_sub`) must be installed: the tests
//! fail saying so otherwise.

mod common;

use common::tls::{self, make_ca};
use common::{broker, free_port, tool, Midge, TempDir, INSTALL};

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const PASSWD_FORWARD: &str = "forward";
const PASSWORD: &str = "forward123";
/// A second account on the remote that may write anywhere: what it publishes outside
/// `mqtt/#` must not reach the front broker (the bridge's account cannot read it).
const ADMIN: &str = "admin";
const ADMIN_PASSWORD: &str = "admin123";
const REMOTE_ID: &str = "bridge-test";
const STATE: &str = "$SYS/broker/connection/bridge-test/state";

// ---------------------------------------------------------------------------------------
// Brokers
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Midge,
    Mosquitto,
}

/// A Mosquitto broker process with its log.
struct Mosquitto {
    child: Child,
    log: broker::Log,
}

impl Mosquitto {
    fn start(conf: &str, port: u16) -> Mosquitto {
        let mut child = Command::new("mosquitto")
            .args(["-c", conf, "-v"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("mosquitto not found ({e}): install mosquitto (apt-get install mosquitto mosquitto-clients)"));
        let log = broker::Log::default();
        broker::collect(child.stdout.take().unwrap(), &log);
        broker::collect(child.stderr.take().unwrap(), &log);
        let mut m = Mosquitto { child, log };
        broker::wait_ready(
            &mut m.child,
            &m.log,
            || TcpStream::connect(("127.0.0.1", port)).is_ok(),
            Duration::from_secs(10),
            "mosquitto exited",
            "mosquitto not ready",
        );
        m
    }

    fn log_text(&self) -> String {
        broker::log_text(&self.log)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A remote broker of either kind.
enum Remote {
    Midge(Midge),
    Mosquitto(Mosquitto),
}

impl Remote {
    /// Starts a broker of `kind` with `body` as its configuration (plus `user root` for
    /// Mosquitto run as root, so that it can read the test's files).
    fn start(kind: Kind, dir: &TempDir, name: &str, port: u16, body: &str) -> Remote {
        match kind {
            Kind::Midge => Remote::Midge(Midge::start(&dir.write(name, body), port)),
            Kind::Mosquitto => {
                let user = if is_root() { "user root\n" } else { "" };
                let conf = dir.write(name, &format!("{user}{body}"));
                Remote::Mosquitto(Mosquitto::start(&conf, port))
            }
        }
    }

    fn log_text(&self) -> String {
        match self {
            Remote::Midge(m) => m.log_text(),
            Remote::Mosquitto(m) => m.log_text(),
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Fails with a clear message when Mosquitto is not installed.
fn require_mosquitto() {
    for program in ["mosquitto", "mosquitto_pub", "mosquitto_sub"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "{program} is missing: install mosquitto and mosquitto-clients (apt-get install mosquitto mosquitto-clients); {INSTALL}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------

fn client_args(port: u16, extra: &[&str]) -> Vec<String> {
    let port = port.to_string();
    let mut v: Vec<String> = ["-h", "127.0.0.1", "-p", &port]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn publish(port: u16, extra: &[&str], topic: &str, msg: &str) -> Output {
    let out = tool(
        "mosquitto_pub",
        &client_args(
            port,
            &[extra, &["-t", topic, "-m", msg, "-q", "1"]].concat(),
        ),
    );
    assert!(
        out.status.success(),
        "mosquitto_pub -t {topic}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A `mosquitto_sub -v -d` that stays connected; message lines (`topic payload`) arrive on
/// the channel once the SUBACK is in.
struct Subscriber {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Subscriber {
    fn start(port: u16, extra: &[&str], topics: &[&str]) -> Subscriber {
        let mut args = client_args(port, extra);
        for t in topics {
            args.push("-t".into());
            args.push((*t).into());
        }
        args.extend(["-v", "-d", "-q", "1"].map(String::from));
        // Line-buffered: the debug lines (SUBACK) are not flushed otherwise.
        let mut child = Command::new("stdbuf")
            .arg("-oL")
            .arg("mosquitto_sub")
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("mosquitto_sub not found ({e}): {INSTALL}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let (subscribed_tx, subscribed) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if line.starts_with("Subscribed (mid") {
                    let _ = subscribed_tx.send(());
                    continue;
                }
                if line.starts_with("Client ") {
                    continue;
                }
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let sub = Subscriber { child, lines };
        // On failure `sub` is dropped, which kills the process.
        if subscribed.recv_timeout(Duration::from_secs(5)).is_err() {
            panic!("mosquitto_sub on port {port} did not subscribe to {topics:?}");
        }
        sub
    }

    /// The next message line within `secs` seconds.
    fn next_within(&self, secs: u64) -> Option<String> {
        self.lines.recv_timeout(Duration::from_secs(secs)).ok()
    }

    /// The next message line is `want`, within `secs` seconds (anything else first fails).
    fn expect(&self, want: &str, secs: u64, context: &dyn Fn() -> String) {
        match self.lines.recv_timeout(Duration::from_secs(secs)) {
            Ok(line) if line == want => {}
            Ok(line) => panic!("expected '{want}', got '{line}'\n{}", context()),
            Err(_) => panic!("expected '{want}', got nothing\n{}", context()),
        }
    }

    /// Everything that arrives within `secs` seconds.
    fn drain(&self, secs: u64) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        seen
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the retained bridge state on `topic` at `port` is `want`.
fn wait_state(port: u16, extra: &[&str], topic: &str, want: &str, context: &dyn Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = String::new();
    while Instant::now() < deadline {
        let out = tool(
            "mosquitto_sub",
            &client_args(
                port,
                &[extra, &["-t", topic, "-C", "1", "-W", "2"]].concat(),
            ),
        );
        last = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if last == want {
            return;
        }
        thread::sleep(Duration::from_millis(200));
    }
    panic!("state on {topic} is '{last}', not '{want}'\n{}", context());
}

// ---------------------------------------------------------------------------------------
// Seed 004
// ---------------------------------------------------------------------------------------

/// The remote broker of seed 004: a password file and an ACL giving `forward` `mqtt/#` only.
fn seed_remote(kind: Kind, dir: &TempDir, port: u16, with_credentials: bool) -> Remote {
    if with_credentials {
        let passwd = dir.0.join("passwd");
        for (user, pw, create) in [
            (PASSWD_FORWARD, PASSWORD, true),
            (ADMIN, ADMIN_PASSWORD, false),
        ] {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_midge"));
            cmd.arg("passwd");
            if create {
                cmd.arg("-c");
            }
            let status = cmd
                .args(["-b", passwd.to_str().unwrap(), user, pw])
                .status()
                .expect("midge passwd");
            assert!(status.success());
        }
        let acl = dir.write(
            "acl",
            "user forward\ntopic readwrite mqtt/#\n\nuser admin\ntopic readwrite #\n",
        );
        Remote::start(
            kind,
            dir,
            "remote.conf",
            port,
            &format!(
                "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {acl}\n",
                passwd.display()
            ),
        )
    } else {
        // Since Mosquitto 2.0 a configured listener refuses anonymous clients unless told.
        let acl = dir.write("acl", "topic readwrite mqtt/#\n");
        Remote::start(
            kind,
            dir,
            "remote.conf",
            port,
            &format!("listener {port} 127.0.0.1\nallow_anonymous true\nacl_file {acl}\n"),
        )
    }
}

fn front_conf(dir: &TempDir, port: u16, remote_port: u16, bridge: &str) -> String {
    dir.write(
        "front.conf",
        &format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\n\n\
             connection bridge-01\naddress 127.0.0.1:{remote_port}\nremote_clientid {REMOTE_ID}\n\
             restart_timeout 1\n{bridge}"
        ),
    )
}

fn seed_004(kind: Kind, with_credentials: bool) {
    require_mosquitto();
    let dir = TempDir::new();
    let (remote_port, front_port) = (free_port(), free_port());
    let remote = seed_remote(kind, &dir, remote_port, with_credentials);
    let credentials = if with_credentials {
        format!("remote_username {PASSWD_FORWARD}\nremote_password {PASSWORD}\n")
    } else {
        String::new()
    };
    let conf = front_conf(
        &dir,
        front_port,
        remote_port,
        &format!("{credentials}\ntopic # out 0\ntopic # in 0\n"),
    );
    let front = Midge::start(&conf, front_port);
    let logs = || {
        format!(
            "front log:\n{}\nremote log:\n{}",
            front.log_text(),
            remote.log_text()
        )
    };
    wait_state(front_port, &[], STATE, "1", &logs);

    let publisher: Vec<&str> = if with_credentials {
        vec!["-u", PASSWD_FORWARD, "-P", PASSWORD]
    } else {
        vec![]
    };
    let admin: Vec<&str> = if with_credentials {
        vec!["-u", ADMIN, "-P", ADMIN_PASSWORD]
    } else {
        vec![]
    };

    // In: the subscriber on the front broker gets mqtt/test, and nothing outside mqtt/#.
    let sub = Subscriber::start(front_port, &[], &["#"]);
    publish(remote_port, &admin, "secret/x", "not for the bridge");
    publish(remote_port, &publisher, "other/topic", "refused");
    publish(remote_port, &publisher, "mqtt/test", "Hello mqtt");
    sub.expect("mqtt/test Hello mqtt", 10, &logs);

    // Out: what is published on the front reaches the remote, and comes back to nobody.
    let remote_sub = Subscriber::start(remote_port, &publisher, &["mqtt/#"]);
    publish(front_port, &[], "mqtt/out", "from the front");
    remote_sub.expect("mqtt/out from the front", 10, &logs);
    sub.expect("mqtt/out from the front", 5, &logs);
    let rest = sub.drain(2);
    assert!(
        rest.is_empty(),
        "the front subscriber got more (a loop, or topics outside mqtt/#): {rest:?}\n{}",
        logs()
    );
    assert!(remote_sub.drain(1).is_empty());
}

#[test]
fn seed_004_credentials_midge_to_midge() {
    seed_004(Kind::Midge, true);
}

#[test]
fn seed_004_credentials_midge_to_mosquitto() {
    seed_004(Kind::Mosquitto, true);
}

#[test]
fn seed_004_anonymous_acl_midge_to_midge() {
    seed_004(Kind::Midge, false);
}

#[test]
fn seed_004_anonymous_acl_midge_to_mosquitto() {
    seed_004(Kind::Mosquitto, false);
}

/// A bridge with wrong credentials never connects and never delivers.
#[test]
fn wrong_password_does_not_connect() {
    require_mosquitto();
    let dir = TempDir::new();
    let (remote_port, front_port) = (free_port(), free_port());
    let remote = seed_remote(Kind::Midge, &dir, remote_port, true);
    let conf = front_conf(
        &dir,
        front_port,
        remote_port,
        "remote_username forward\nremote_password wrong\ntopic # both 0\n",
    );
    let front = Midge::start(&conf, front_port);
    let sub = Subscriber::start(front_port, &[], &["mqtt/#"]);
    publish(
        remote_port,
        &["-u", PASSWD_FORWARD, "-P", PASSWORD],
        "mqtt/test",
        "x",
    );
    assert_eq!(sub.next_within(3), None);
    let log = front.log_text();
    assert!(
        log.contains("refused"),
        "front log:\n{log}\nremote:\n{}",
        remote.log_text()
    );
}

// ---------------------------------------------------------------------------------------
// Reconnection
// ---------------------------------------------------------------------------------------

fn remote_persistent(kind: Kind, dir: &TempDir, port: u16) -> Remote {
    let store = dir.0.join(format!("store-{port}"));
    std::fs::create_dir_all(&store).unwrap();
    Remote::start(
        kind,
        dir,
        "remote.conf",
        port,
        &format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n",
            store.display()
        ),
    )
}

/// Stops a remote gracefully (SIGTERM), so that Mosquitto writes its store too.
fn stop(remote: Remote) {
    let child_id = match &remote {
        Remote::Midge(m) => m.child.id(),
        Remote::Mosquitto(m) => m.child.id(),
    };
    let _ = Command::new("kill")
        .args(["-TERM", &child_id.to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut remote = remote;
    loop {
        let done = match &mut remote {
            Remote::Midge(m) => m.child.try_wait().ok().flatten().is_some(),
            Remote::Mosquitto(m) => m.child.try_wait().ok().flatten().is_some(),
        };
        if done || Instant::now() > deadline {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn queued_while_remote_down(kind: Kind) {
    require_mosquitto();
    let dir = TempDir::new();
    let (remote_port, front_port) = (free_port(), free_port());
    let remote = remote_persistent(kind, &dir, remote_port);
    let conf = front_conf(&dir, front_port, remote_port, "topic mqtt/# out 1\n");
    let front = Midge::start(&conf, front_port);
    let logs = || front.log_text();
    wait_state(front_port, &[], STATE, "1", &logs);
    // A persistent subscriber on the remote, offline while the remote restarts.
    let sub_args = ["-i", "remote-sub", "-c"];
    drop(Subscriber::start(remote_port, &sub_args, &["mqtt/#"]));

    stop(remote);
    wait_state(front_port, &[], STATE, "0", &logs);
    for i in 1..=3 {
        publish(
            front_port,
            &[],
            &format!("mqtt/q/{i}"),
            &format!("queued {i}"),
        );
    }
    let remote = remote_persistent(kind, &dir, remote_port);
    wait_state(front_port, &[], STATE, "1", &|| {
        format!("{}\nremote:\n{}", front.log_text(), remote.log_text())
    });
    let sub = Subscriber::start(remote_port, &sub_args, &["mqtt/#"]);
    let mut got = sub.drain(3);
    got.sort();
    assert_eq!(
        got,
        [
            "mqtt/q/1 queued 1",
            "mqtt/q/2 queued 2",
            "mqtt/q/3 queued 3"
        ],
        "each queued message once\nfront:\n{}\nremote:\n{}",
        front.log_text(),
        remote.log_text()
    );
}

#[test]
fn queued_qos1_delivered_once_after_midge_remote_restarts() {
    queued_while_remote_down(Kind::Midge);
}

#[test]
fn queued_qos1_delivered_once_after_mosquitto_remote_restarts() {
    queued_while_remote_down(Kind::Mosquitto);
}

/// Two addresses, the first one dead: the bridge fails over to the second.
#[test]
fn fails_over_to_the_next_address() {
    require_mosquitto();
    let dir = TempDir::new();
    let (dead, remote_port, front_port) = (free_port(), free_port(), free_port());
    let remote = seed_remote(Kind::Midge, &dir, remote_port, false);
    let conf = dir.write(
        "front.conf",
        &format!(
            "listener {front_port} 127.0.0.1\nallow_anonymous true\n\
             connection b\naddresses 127.0.0.1:{dead} 127.0.0.1:{remote_port}\n\
             remote_clientid {REMOTE_ID}\nrestart_timeout 1\ntopic mqtt/# in 0\n"
        ),
    );
    let front = Midge::start(&conf, front_port);
    wait_state(front_port, &[], STATE, "1", &|| {
        format!("{}\n{}", front.log_text(), remote.log_text())
    });
}

// ---------------------------------------------------------------------------------------
// Topics, notifications, loops
// ---------------------------------------------------------------------------------------

fn prefixes(kind: Kind) {
    require_mosquitto();
    let dir = TempDir::new();
    let (remote_port, front_port) = (free_port(), free_port());
    let remote = Remote::start(
        kind,
        &dir,
        "remote.conf",
        remote_port,
        &format!("listener {remote_port} 127.0.0.1\nallow_anonymous true\n"),
    );
    let conf = front_conf(
        &dir,
        front_port,
        remote_port,
        "topic sensors/# both 1 local/ remote/\n",
    );
    let front = Midge::start(&conf, front_port);
    let logs = || format!("{}\nremote:\n{}", front.log_text(), remote.log_text());
    wait_state(front_port, &[], STATE, "1", &logs);
    let front_sub = Subscriber::start(front_port, &[], &["#"]);
    let remote_sub = Subscriber::start(remote_port, &[], &["#"]);
    publish(front_port, &[], "local/sensors/a", "out");
    remote_sub.expect("remote/sensors/a out", 10, &logs);
    front_sub.expect("local/sensors/a out", 5, &logs);
    publish(remote_port, &[], "remote/sensors/b", "in");
    front_sub.expect("local/sensors/b in", 10, &logs);
    remote_sub.expect("remote/sensors/b in", 5, &logs);
    // Outside the mapping: nothing crosses, and nothing comes back.
    publish(front_port, &[], "sensors/c", "unmapped");
    publish(remote_port, &[], "local/sensors/d", "unmapped");
    let mut front_rest = front_sub.drain(2);
    front_rest.retain(|l| !l.starts_with("sensors/c"));
    assert!(front_rest.is_empty(), "{front_rest:?}\n{}", logs());
    let mut remote_rest = remote_sub.drain(1);
    remote_rest.retain(|l| !l.starts_with("local/sensors/d") && !l.starts_with("$SYS"));
    assert!(remote_rest.is_empty(), "{remote_rest:?}\n{}", logs());
}

#[test]
fn prefix_remapping_both_directions_midge() {
    prefixes(Kind::Midge);
}

#[test]
fn prefix_remapping_both_directions_mosquitto() {
    prefixes(Kind::Mosquitto);
}

/// `1` on both sides when connected; `0` locally when the remote goes, and `0` on the
/// remote (the will) when the bridge's broker dies.
#[test]
fn notifications_on_both_sides() {
    require_mosquitto();
    let dir = TempDir::new();
    let (remote_port, front_port) = (free_port(), free_port());
    let remote = Remote::start(
        Kind::Mosquitto,
        &dir,
        "remote.conf",
        remote_port,
        &format!("listener {remote_port} 127.0.0.1\nallow_anonymous true\n"),
    );
    let conf = front_conf(&dir, front_port, remote_port, "topic a/# both 0\n");
    let front = Midge::start(&conf, front_port);
    let logs = || format!("{}\nremote:\n{}", front.log_text(), remote.log_text());
    wait_state(front_port, &[], STATE, "1", &logs);
    wait_state(remote_port, &[], STATE, "1", &logs);
    drop(front);
    wait_state(remote_port, &[], STATE, "0", &|| remote.log_text());

    // A custom topic, local only: the remote hears nothing.
    let conf = front_conf(
        &dir,
        front_port,
        remote_port,
        "notification_topic bridges/b1\nnotifications_local_only true\ntopic a/# both 0\n",
    );
    let front = Midge::start(&conf, front_port);
    wait_state(front_port, &[], "bridges/b1", "1", &|| front.log_text());
    let out = tool(
        "mosquitto_sub",
        &client_args(remote_port, &["-t", "bridges/b1", "-C", "1", "-W", "2"]),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "");
}

/// Mosquitto bridging to Midge with `topic # both`: Midge honours the bridge marker, so what
/// the Mosquitto side publishes does not come back to it.
#[test]
fn mosquitto_bridge_to_midge_does_not_loop() {
    require_mosquitto();
    let dir = TempDir::new();
    let (midge_port, mosq_port) = (free_port(), free_port());
    let midge = Midge::start(
        &dir.write(
            "midge.conf",
            &format!("listener {midge_port} 127.0.0.1\nallow_anonymous true\n"),
        ),
        midge_port,
    );
    let mosq = Remote::start(
        Kind::Mosquitto,
        &dir,
        "mosq.conf",
        mosq_port,
        &format!(
            "listener {mosq_port} 127.0.0.1\nallow_anonymous true\n\
             connection to-midge\naddress 127.0.0.1:{midge_port}\nremote_clientid {REMOTE_ID}\n\
             topic # both 1\n"
        ),
    );
    let logs = || {
        format!(
            "midge:\n{}\nmosquitto:\n{}",
            midge.log_text(),
            mosq.log_text()
        )
    };
    wait_state(mosq_port, &[], STATE, "1", &logs);
    let mosq_sub = Subscriber::start(mosq_port, &[], &["loop/#"]);
    let midge_sub = Subscriber::start(midge_port, &[], &["loop/#"]);
    publish(mosq_port, &[], "loop/a", "once");
    midge_sub.expect("loop/a once", 10, &logs);
    mosq_sub.expect("loop/a once", 5, &logs);
    let again = mosq_sub.drain(2);
    assert!(again.is_empty(), "looped back: {again:?}\n{}", logs());
    publish(midge_port, &[], "loop/b", "once");
    mosq_sub.expect("loop/b once", 10, &logs);
    midge_sub.expect("loop/b once", 5, &logs);
    let again = mosq_sub.drain(2);
    assert!(again.is_empty(), "looped back: {again:?}\n{}", logs());
    assert!(midge_sub.drain(1).is_empty());
}

// ---------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------

fn tls_bridge(kind: Kind) {
    require_mosquitto();
    let dir = TempDir::new();
    let ca = make_ca("Bridge Test CA");
    let other = make_ca("Other CA");
    let (cert, key) = tls::leaf(&ca, "localhost");
    let ca_file = dir.write("ca.crt", &ca.cert.pem());
    let other_file = dir.write("other.crt", &other.cert.pem());
    let cert_file = dir.write("server.crt", &cert);
    let key_file = dir.write("server.key", &key);
    let (remote_port, front_port, wrong_port) = (free_port(), free_port(), free_port());
    let remote = Remote::start(
        kind,
        &dir,
        "remote.conf",
        remote_port,
        &format!(
            "listener {remote_port} 127.0.0.1\nallow_anonymous true\n\
             cafile {ca_file}\ncertfile {cert_file}\nkeyfile {key_file}\n"
        ),
    );
    let tls = ["--cafile", ca_file.as_str()];
    let conf = front_conf(
        &dir,
        front_port,
        remote_port,
        &format!("bridge_cafile {ca_file}\ntopic mqtt/# both 1\n"),
    );
    let front = Midge::start(&conf, front_port);
    let logs = || format!("{}\nremote:\n{}", front.log_text(), remote.log_text());
    wait_state(front_port, &[], STATE, "1", &logs);
    let sub = Subscriber::start(front_port, &[], &["mqtt/#"]);
    publish(remote_port, &tls, "mqtt/tls", "secure");
    sub.expect("mqtt/tls secure", 10, &logs);

    // The wrong CA: the remote's certificate is refused, nothing crosses.
    let wrong_dir = TempDir::new();
    let conf = wrong_dir.write(
        "wrong.conf",
        &format!(
            "listener {wrong_port} 127.0.0.1\nallow_anonymous true\n\
             connection wrong\naddress 127.0.0.1:{remote_port}\nremote_clientid wrong-ca\n\
             restart_timeout 1\nbridge_cafile {other_file}\ntopic mqtt/# in 1\n"
        ),
    );
    let wrong = Midge::start(&conf, wrong_port);
    let wrong_sub = Subscriber::start(wrong_port, &[], &["mqtt/#"]);
    publish(remote_port, &tls, "mqtt/tls", "must not cross");
    assert_eq!(wrong_sub.next_within(3), None, "{}", wrong.log_text());
    let log = wrong.log_text();
    assert!(
        log.contains("TLS handshake") && log.contains("certificate verify failed"),
        "{log}"
    );
    let out = tool(
        "mosquitto_sub",
        &client_args(
            wrong_port,
            &[
                "-t",
                "$SYS/broker/connection/wrong-ca/state",
                "-C",
                "1",
                "-W",
                "2",
            ],
        ),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
}

#[test]
fn tls_bridge_to_midge_and_wrong_ca_refused() {
    tls_bridge(Kind::Midge);
}

#[test]
fn tls_bridge_to_mosquitto_and_wrong_ca_refused() {
    tls_bridge(Kind::Mosquitto);
}

/// An empty or missing `bridge_cafile` stops start-up: never an unverified connection.
#[test]
fn bad_bridge_cafile_is_a_startup_error() {
    let dir = TempDir::new();
    let empty = dir.write("empty.crt", "");
    for ca in [empty.as_str(), "/nonexistent/ca.crt"] {
        let port = free_port();
        let conf = dir.write(
            "bad.conf",
            &format!(
                "listener {port} 127.0.0.1\nconnection b\naddress 127.0.0.1:1\n\
                 bridge_cafile {ca}\ntopic # both 0\n"
            ),
        );
        let out = Command::new(env!("CARGO_BIN_EXE_midge"))
            .args(["-c", &conf])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{ca}: started anyway\n{stderr}");
        assert!(stderr.contains("bridge_cafile"), "{ca}: {stderr}");
    }
}

/// PSK to Mosquitto: the right key connects and messages cross; a wrong key does not.
#[test]
fn psk_bridge_to_mosquitto() {
    require_mosquitto();
    let dir = TempDir::new();
    let key = "6d69646765206272696467652070736b";
    let psk_file = dir.write("psk.txt", &format!("bridge-1:{key}\n"));
    let (remote_port, front_port) = (free_port(), free_port());
    let remote = Remote::start(
        Kind::Mosquitto,
        &dir,
        "remote.conf",
        remote_port,
        &format!(
            "listener {remote_port} 127.0.0.1\nallow_anonymous true\n\
             psk_hint bridge-tests\npsk_file {psk_file}\n"
        ),
    );
    let conf = front_conf(
        &dir,
        front_port,
        remote_port,
        &format!("bridge_identity bridge-1\nbridge_psk {key}\ntopic mqtt/# both 1\n"),
    );
    let front = Midge::start(&conf, front_port);
    let logs = || format!("{}\nremote:\n{}", front.log_text(), remote.log_text());
    wait_state(front_port, &[], STATE, "1", &logs);
    let psk = ["--psk", key, "--psk-identity", "bridge-1"];
    let remote_sub = Subscriber::start(remote_port, &psk, &["mqtt/#"]);
    publish(front_port, &[], "mqtt/psk", "shared secret");
    remote_sub.expect("mqtt/psk shared secret", 10, &logs);
    drop(front);

    let wrong_port = free_port();
    let conf = dir.write(
        "wrong.conf",
        &format!(
            "listener {wrong_port} 127.0.0.1\nallow_anonymous true\n\
             connection wrong\naddress 127.0.0.1:{remote_port}\nremote_clientid wrong-psk\n\
             restart_timeout 1\nbridge_identity bridge-1\nbridge_psk 00112233\ntopic mqtt/# in 1\n"
        ),
    );
    let wrong = Midge::start(&conf, wrong_port);
    thread::sleep(Duration::from_secs(2));
    let out = tool(
        "mosquitto_sub",
        &client_args(
            wrong_port,
            &[
                "-t",
                "$SYS/broker/connection/wrong-psk/state",
                "-C",
                "1",
                "-W",
                "2",
            ],
        ),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "{}",
        wrong.log_text()
    );
}

// ---------------------------------------------------------------------------------------
// Reload, local ACLs, persistence of the bridge's queue
// ---------------------------------------------------------------------------------------

/// A remote that lets anyone read and write everything.
fn open_remote(dir: &TempDir, port: u16) -> Remote {
    Remote::start(
        Kind::Midge,
        dir,
        "remote.conf",
        port,
        &format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
    )
}

/// Rewrites the front broker's configuration with `bridges` and sends SIGHUP.
fn reload_front(front: &Midge, dir: &TempDir, port: u16, bridges: &str) {
    dir.replace(
        "front.conf",
        &format!("listener {port} 127.0.0.1\nallow_anonymous true\n\n{bridges}"),
    );
    front.hup_settle(Duration::from_millis(500));
}

/// Waits until bridge `name`'s retained state (`$SYS/broker/connection/<name>/state`) on
/// the broker at `port` is `want`.
fn wait_bridge(port: u16, name: &str, want: &str, context: &dyn Fn() -> String) {
    let topic = format!("$SYS/broker/connection/{name}/state");
    wait_state(port, &[], &topic, want, context);
}

fn bridge_block(name: &str, remote_port: u16, rest: &str) -> String {
    format!(
        "connection {name}\naddress 127.0.0.1:{remote_port}\nremote_clientid {name}\n\
         restart_timeout 1\n{rest}\n"
    )
}

/// Publishes `topics` on the front broker and returns, sorted, what the remote subscriber
/// saw within a few seconds.
fn crossing(front_port: u16, sub: &Subscriber, topics: &[&str]) -> Vec<String> {
    for t in topics {
        publish(front_port, &[], t, "x");
    }
    let mut got = sub.drain(2);
    got.sort();
    got
}

#[test]
fn sighup_adds_changes_and_removes_bridges() {
    require_mosquitto();
    let dir = TempDir::new();
    let (remote_port, front_port) = (free_port(), free_port());
    let remote = open_remote(&dir, remote_port);
    let first = bridge_block(
        "b1",
        remote_port,
        "topic a/# out 1\nbridge_reload_type immediate",
    );
    reload_front_conf(&dir, front_port, &first);
    let front = Midge::start(&dir.path("front.conf"), front_port);
    let logs = || {
        format!(
            "front:\n{}\nremote:\n{}",
            front.log_text(),
            remote.log_text()
        )
    };
    wait_bridge(front_port, "b1", "1", &logs);
    let sub = Subscriber::start(remote_port, &[], &["a/#", "b/#", "c/#"]);
    assert_eq!(
        crossing(front_port, &sub, &["a/1", "b/1"]),
        ["a/1 x"],
        "{}",
        logs()
    );

    // Changed, applied at once: the bridge reconnects with its new topics.
    let changed = bridge_block(
        "b1",
        remote_port,
        "topic b/# out 1\nbridge_reload_type immediate",
    );
    reload_front(&front, &dir, front_port, &changed);
    wait_bridge(front_port, "b1", "1", &logs);
    assert_eq!(
        crossing(front_port, &sub, &["a/2", "b/2"]),
        ["b/2 x"],
        "{}",
        logs()
    );

    // b1 removed, b2 added.
    let other = bridge_block("b2", remote_port, "topic c/# out 1");
    reload_front(&front, &dir, front_port, &other);
    wait_bridge(front_port, "b2", "1", &logs);
    assert_eq!(
        crossing(front_port, &sub, &["a/3", "b/3", "c/3"]),
        ["c/3 x"],
        "{}",
        logs()
    );
    assert!(front.log_text().contains("Bridge b1 removed"), "{}", logs());
}

fn reload_front_conf(dir: &TempDir, port: u16, bridges: &str) {
    dir.write(
        "front.conf",
        &format!("listener {port} 127.0.0.1\nallow_anonymous true\n\n{bridges}"),
    );
}

#[test]
fn lazy_reload_applies_at_the_next_reconnection() {
    require_mosquitto();
    let dir = TempDir::new();
    let (remote_port, front_port) = (free_port(), free_port());
    let remote = open_remote(&dir, remote_port);
    reload_front_conf(
        &dir,
        front_port,
        &bridge_block("b1", remote_port, "topic a/# out 1"),
    );
    let front = Midge::start(&dir.path("front.conf"), front_port);
    let logs = || format!("front:\n{}", front.log_text());
    wait_bridge(front_port, "b1", "1", &logs);

    // bridge_reload_type lazy (the default): the running connection keeps the old topics.
    reload_front(
        &front,
        &dir,
        front_port,
        &bridge_block("b1", remote_port, "topic b/# out 1"),
    );
    {
        let sub = Subscriber::start(remote_port, &[], &["a/#", "b/#"]);
        assert_eq!(
            crossing(front_port, &sub, &["a/1", "b/1"]),
            ["a/1 x"],
            "{}",
            logs()
        );
    }
    // The remote restarts: the bridge reconnects with the new topics.
    stop(remote);
    wait_bridge(front_port, "b1", "0", &logs);
    let _remote = open_remote(&dir, remote_port);
    wait_bridge(front_port, "b1", "1", &logs);
    let sub = Subscriber::start(remote_port, &[], &["a/#", "b/#"]);
    assert_eq!(
        crossing(front_port, &sub, &["a/2", "b/2"]),
        ["b/2 x"],
        "{}",
        logs()
    );
}

#[test]
fn local_username_applies_the_local_acls_both_ways() {
    require_mosquitto();
    let dir = TempDir::new();
    let (remote_port, front_port) = (free_port(), free_port());
    let remote = open_remote(&dir, remote_port);
    let passwd = dir.0.join("passwd");
    let status = Command::new(env!("CARGO_BIN_EXE_midge"))
        .args([
            "passwd",
            "-c",
            "-b",
            passwd.to_str().unwrap(),
            "bridge",
            "bridge-pw",
        ])
        .status()
        .expect("midge passwd");
    assert!(status.success());
    // Anonymous test clients may do anything; the bridge's account reads `out/#` and
    // writes `in/#` only.
    let acl = dir.write(
        "acl",
        "topic readwrite #\ntopic read $SYS/#\n\nuser bridge\ntopic read out/#\ntopic write in/#\n",
    );
    let conf = dir.write(
        "front.conf",
        &format!(
            "listener {front_port} 127.0.0.1\nallow_anonymous true\npassword_file {}\nacl_file {acl}\n\n{}",
            passwd.display(),
            bridge_block(
                "b1",
                remote_port,
                "local_username bridge\nlocal_password bridge-pw\n\
                 topic out/# out 1\ntopic x/# out 1\ntopic in/# in 1\ntopic y/# in 1"
            )
        ),
    );
    let front = Midge::start(&conf, front_port);
    let logs = || {
        format!(
            "front:\n{}\nremote:\n{}",
            front.log_text(),
            remote.log_text()
        )
    };
    wait_bridge(front_port, "b1", "1", &logs);

    // Out: only what the bridge's account may read leaves.
    let remote_sub = Subscriber::start(remote_port, &[], &["out/#", "x/#"]);
    assert_eq!(
        crossing(front_port, &remote_sub, &["out/1", "x/1"]),
        ["out/1 x"],
        "{}",
        logs()
    );
    // In: only what it may write arrives.
    let front_sub = Subscriber::start(front_port, &[], &["in/#", "y/#"]);
    for t in ["in/1", "y/1"] {
        publish(remote_port, &[], t, "x");
    }
    let mut got = front_sub.drain(2);
    got.sort();
    assert_eq!(got, ["in/1 x"], "{}", logs());
    assert!(
        !front.log_text().contains("do not match"),
        "right local password accepted\n{}",
        logs()
    );
}

#[test]
fn bridge_queue_survives_a_crash_of_the_local_broker() {
    require_mosquitto();
    let dir = TempDir::new();
    let (remote_port, front_port) = (free_port(), free_port());
    let remote = remote_persistent(Kind::Midge, &dir, remote_port);
    let store = dir.0.join("front-store");
    std::fs::create_dir_all(&store).unwrap();
    let conf = dir.write(
        "front.conf",
        &format!(
            "listener {front_port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\n\n{}",
            store.display(),
            bridge_block("b1", remote_port, "topic q/# out 1")
        ),
    );
    let mut front = Midge::start(&conf, front_port);
    wait_bridge(front_port, "b1", "1", &|| front.log_text());
    let sub_args = ["-i", "remote-sub", "-c"];
    drop(Subscriber::start(remote_port, &sub_args, &["q/#"]));
    stop(remote);
    wait_bridge(front_port, "b1", "0", &|| front.log_text());
    for i in 1..=3 {
        publish(front_port, &[], &format!("q/{i}"), &format!("m{i}"));
    }
    // kill -9: only what the store committed survives; the PUBACKs above came after it.
    front.child.kill().unwrap();
    front.child.wait().unwrap();
    drop(front);
    let front = Midge::start(&conf, front_port);
    let remote = remote_persistent(Kind::Midge, &dir, remote_port);
    wait_bridge(front_port, "b1", "1", &|| {
        format!("{}\nremote:\n{}", front.log_text(), remote.log_text())
    });
    let sub = Subscriber::start(remote_port, &sub_args, &["q/#"]);
    let mut got = sub.drain(3);
    got.sort();
    assert_eq!(
        got,
        ["q/1 m1", "q/2 m2", "q/3 m3"],
        "each queued message once after the crash\nfront:\n{}\nremote:\n{}",
        front.log_text(),
        remote.log_text()
    );
}
