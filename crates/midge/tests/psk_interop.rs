//! TLS-PSK with Debian's Mosquitto command-line clients (`--psk`, `--psk-identity`) against
//! the `midge` binary: the right key connects, a wrong key or an unknown identity is refused,
//! the identity is the username for the ACL (`use_identity_as_username`), and SIGHUP
//! re-reads the `psk_file` while connected clients carry on.

mod common;

use common::{free_port, line_channel, tool, Midge, TempDir, INSTALL};

use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

const KEY: &str = "6d69646765207073";
const NEW_KEY: &str = "00112233445566778899aabbccddeeff";

fn args(port: u16, identity: &str, key: &str, extra: &[&str]) -> Vec<String> {
    let port = port.to_string();
    let mut v: Vec<String> = [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "--psk",
        key,
        "--psk-identity",
        identity,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// Publishes a retained QoS 1 message; the tool's output.
fn publish(port: u16, identity: &str, key: &str, topic: &str, msg: &str) -> Output {
    tool(
        "mosquitto_pub",
        &args(
            port,
            identity,
            key,
            &["-t", topic, "-m", msg, "-r", "-q", "1"],
        ),
    )
}

/// Reads one (retained) message within 3 s; `None` when none comes.
fn receive(port: u16, identity: &str, key: &str, topic: &str) -> Option<String> {
    let out = tool(
        "mosquitto_sub",
        &args(port, identity, key, &["-t", topic, "-C", "1", "-W", "3"]),
    );
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn ok(out: &Output, what: &str, m: &Midge) {
    assert!(
        out.status.success(),
        "{what}: {}\n{}\nbroker log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        m.log_text()
    );
}

/// A `mosquitto_sub` that stays connected; its lines arrive on the channel.
struct Subscriber {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Subscriber {
    fn start(port: u16, identity: &str, key: &str, topic: &str) -> Subscriber {
        let mut child = Command::new("mosquitto_sub")
            .args(args(port, identity, key, &["-t", topic, "-q", "1"]))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("mosquitto_sub not found ({e}): {INSTALL}"));
        let lines = line_channel(child.stdout.take().unwrap());
        Subscriber { child, lines }
    }

    fn next(&self) -> Option<String> {
        self.lines.recv_timeout(Duration::from_secs(5)).ok()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PSK-only listener with `use_identity_as_username`, an ACL by identity, and a password
/// file that PSK clients never see.
fn setup(dir: &TempDir, port: u16, psk_text: &str) -> (String, String) {
    let psk = dir.write("psk.txt", psk_text);
    let acl = dir.write(
        "acl",
        "user sensor-1\ntopic readwrite sensors/#\ntopic read commands/#\n\
         user sensor-2\ntopic readwrite sensors/#\n",
    );
    let passwd = dir.write(
        "passwd",
        "somebody:$7$101$p5mQmR1gl580j3Zx$+QY9ZdJ8kAZtWqG6GW7yJdOu1WyNXD3BYXnFPDa3y6jtjG2tnEbQAG17Jx22vHoUfQzork53J3suOhGX8VZ67g==\n",
    );
    let conf = dir.write(
        "midge.conf",
        &format!(
            "allow_anonymous false\npassword_file {passwd}\nacl_file {acl}\npsk_file {psk}\n\
             listener {port} 127.0.0.1\npsk_hint midge-tests\nuse_identity_as_username true\n"
        ),
    );
    (conf, psk)
}

#[test]
fn psk_right_key_wrong_key_unknown_identity_and_acl() {
    let dir = TempDir::new();
    let port = free_port();
    let (conf, _) = setup(&dir, port, &format!("# devices\nsensor-1:{KEY}\n"));
    let m = Midge::start(&conf, port);

    // Right key: connects (no MQTT username, the password file is not consulted) and the
    // message goes through.
    ok(
        &publish(port, "sensor-1", KEY, "sensors/temp", "21.5"),
        "publish with the right key",
        &m,
    );
    assert_eq!(
        receive(port, "sensor-1", KEY, "sensors/temp").as_deref(),
        Some("21.5")
    );
    // TLS 1.2 PSK suites work too (Mosquitto's clients negotiate TLS 1.3 by default).
    ok(
        &tool(
            "mosquitto_pub",
            &args(
                port,
                "sensor-1",
                KEY,
                &["--tls-version", "tlsv1.2", "-t", "sensors/v12", "-m", "x"],
            ),
        ),
        "publish over TLS 1.2",
        &m,
    );

    // ACL by identity: `commands/#` is read-only for sensor-1; the denied publish is
    // acknowledged and dropped, as Mosquitto does.
    let _ = publish(port, "sensor-1", KEY, "commands/reboot", "now");
    assert_eq!(receive(port, "sensor-1", KEY, "commands/reboot"), None);

    // Wrong key and unknown identity: refused in the handshake.
    let wrong = "6d69646765207074";
    assert!(!publish(port, "sensor-1", wrong, "sensors/x", "x")
        .status
        .success());
    assert!(!publish(port, "sensor-9", KEY, "sensors/x", "x")
        .status
        .success());
    let log = m.log_text();
    assert!(
        log.contains("unknown PSK identity 'sensor-9'"),
        "unknown identity logged:\n{log}"
    );
    assert!(!log.contains(KEY), "a key in the log:\n{log}");
    // The retained value is still the one the right client published.
    assert_eq!(
        receive(port, "sensor-1", KEY, "sensors/temp").as_deref(),
        Some("21.5")
    );
}

#[test]
fn psk_file_reload_keeps_connected_clients_and_survives_a_broken_file() {
    let dir = TempDir::new();
    let port = free_port();
    let (conf, psk) = setup(&dir, port, &format!("sensor-1:{KEY}\nsensor-2:{KEY}\n"));
    let m = Midge::start(&conf, port);
    // sensor-2 stays connected across the reloads with the old key.
    let sub = Subscriber::start(port, "sensor-2", KEY, "sensors/live");
    thread::sleep(Duration::from_millis(500));
    ok(
        &publish(port, "sensor-1", KEY, "sensors/live", "before"),
        "publish before reload",
        &m,
    );
    assert_eq!(sub.next().as_deref(), Some("before"));

    // sensor-1 gets a new key, sensor-2 is removed from the file.
    std::fs::write(&psk, format!("sensor-1:{NEW_KEY}\n")).unwrap();
    m.hup();
    assert!(
        !publish(port, "sensor-1", KEY, "sensors/x", "old key")
            .status
            .success(),
        "old key accepted after reload:\n{}",
        m.log_text()
    );
    assert!(!publish(port, "sensor-2", KEY, "sensors/x", "removed")
        .status
        .success());
    ok(
        &publish(port, "sensor-1", NEW_KEY, "sensors/live", "after"),
        "publish with the new key",
        &m,
    );
    // The client connected with the old key keeps working.
    assert_eq!(sub.next().as_deref(), Some("after"));

    // A broken psk_file on reload keeps the previous keys.
    std::fs::write(&psk, format!("sensor-1:{NEW_KEY}\nsensor-3:0xff\n")).unwrap();
    m.hup();
    let log = m.log_text();
    assert!(
        log.contains(&format!("{psk}:2:")),
        "reload error names file and line:\n{log}"
    );
    ok(
        &publish(port, "sensor-1", NEW_KEY, "sensors/live", "still"),
        "publish after a broken reload",
        &m,
    );
    assert_eq!(sub.next().as_deref(), Some("still"));
}

#[test]
fn broken_psk_file_stops_startup_with_file_and_line() {
    let dir = TempDir::new();
    let port = free_port();
    let (conf, psk) = setup(&dir, port, "sensor-1:00\nsensor-1:11\n");
    let out = Command::new(env!("CARGO_BIN_EXE_midge"))
        .args(["-c", &conf])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{psk}:2: identity 'sensor-1' appears twice")),
        "{err}"
    );
}
