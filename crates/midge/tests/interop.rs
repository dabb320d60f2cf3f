//! Interop with Debian's `mosquitto_pub` / `mosquitto_sub` (package mosquitto-clients), run
//! as subprocesses against an in-process broker: MQTT 3.1, 3.1.1 and 5.0 at QoS 0, 1 and 2,
//! retained messages and will messages.
//!
//! These tests never skip: without the clients they fail and say how to install them.

mod common;

use common::{line_channel, INSTALL};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const VERSIONS: [&str; 3] = ["31", "311", "5"];

/// The broker on its own runtime threads, so the test thread can block on subprocesses.
struct Broker {
    port: u16,
    shutdown: midge_server::ShutdownHandle,
    _runtime: tokio::runtime::Runtime,
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.shutdown.shutdown();
    }
}

fn start_broker() -> Broker {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut config =
        midge_core::config::parse("allow_anonymous true\nlistener 1 127.0.0.1\n", "test.conf")
            .expect("config");
    if let Some(l) = config.listeners.last_mut() {
        l.port = 0;
    }
    let server = runtime
        .block_on(midge_server::Server::bind(&config))
        .expect("bind");
    let port = server.local_addrs()[0].port();
    let shutdown = server.shutdown_handle();
    runtime.spawn(server.run());
    Broker {
        port,
        shutdown,
        _runtime: runtime,
    }
}

/// Fails (never skips) when the Mosquitto clients are missing.
fn require_clients() {
    for bin in ["mosquitto_pub", "mosquitto_sub", "stdbuf"] {
        match Command::new(bin)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if bin == "stdbuf" {
                    panic!("stdbuf (coreutils) not found on PATH");
                }
                panic!("{bin} not found on PATH: {INSTALL}");
            }
            Err(e) => panic!("cannot run {bin}: {e}: {INSTALL}"),
        }
    }
}

/// A running `mosquitto_sub -d` whose stdout lines arrive as they are printed (line
/// buffered through `stdbuf -oL`, so the SUBACK can be seen before publishing).
struct Sub {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sub {
    fn spawn(port: u16, args: &[&str]) -> Sub {
        let port = port.to_string();
        let mut child = Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub", "-d", "-h", "127.0.0.1", "-p", &port])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start mosquitto_sub: {e}: {INSTALL}"));
        let lines = line_channel(child.stdout.take().expect("stdout"));
        Sub {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `needle`.
    fn wait_for(&mut self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    self.seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!(
                    "mosquitto_sub: no line with {needle:?} within {within:?}; output:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the process to exit (killing it after `within`) and returns every line.
    fn finish(mut self, within: Duration) -> (Option<ExitStatus>, Vec<String>) {
        let deadline = Instant::now() + within;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => break None,
            }
        };
        // The reader thread ends at EOF, once the process is gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(line);
        }
        let seen = std::mem::take(&mut self.seen);
        (status, seen)
    }
}

/// Runs `mosquitto_pub` to completion (at most 10 s) and asserts it succeeded.
fn publish(port: u16, args: &[&str]) {
    let port = port.to_string();
    let mut child = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start mosquitto_pub: {e}: {INSTALL}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                panic!("mosquitto_pub {args:?} did not finish within 10 s");
            }
        }
    }
    let out = child.wait_with_output().expect("mosquitto_pub output");
    assert!(
        out.status.success(),
        "mosquitto_pub {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const SUBACK: &str = "received SUBACK";
const WAIT: Duration = Duration::from_secs(5);

/// `-F '%r %q %t %p'`: retain flag, QoS, topic, payload.
const FORMAT: &str = "%r %q %t %p";

#[test]
fn mosquitto_clients_publish_and_subscribe_every_version_and_qos() {
    require_clients();
    let b = start_broker();
    for v in VERSIONS {
        for q in ["0", "1", "2"] {
            let topic = format!("interop/{v}/{q}");
            let payload = format!("hello v{v} q{q}");
            let mut sub = Sub::spawn(
                b.port,
                &[
                    "-V",
                    v,
                    "-q",
                    q,
                    "-t",
                    &topic,
                    "-C",
                    "1",
                    "-W",
                    "5",
                    "-F",
                    FORMAT,
                    "-i",
                    &format!("sub-{v}-{q}"),
                ],
            );
            sub.wait_for(SUBACK, WAIT);
            publish(
                b.port,
                &[
                    "-V",
                    v,
                    "-q",
                    q,
                    "-t",
                    &topic,
                    "-m",
                    &payload,
                    "-i",
                    &format!("pub-{v}-{q}"),
                ],
            );
            let (status, lines) = sub.finish(WAIT);
            let expected = format!("0 {q} {topic} {payload}");
            assert!(
                lines.contains(&expected),
                "-V {v} -q {q}: expected {expected:?} in:\n{}",
                lines.join("\n")
            );
            assert!(
                status.is_some_and(|s| s.success()),
                "-V {v} -q {q}: mosquitto_sub exit {status:?}:\n{}",
                lines.join("\n")
            );
        }
    }
}

#[test]
fn mosquitto_clients_across_versions() {
    require_clients();
    let b = start_broker();
    for (sv, pv) in [("31", "5"), ("5", "31"), ("311", "5"), ("5", "311")] {
        let topic = format!("interop/x/{sv}/{pv}");
        let mut sub = Sub::spawn(
            b.port,
            &[
                "-V", sv, "-q", "2", "-t", &topic, "-C", "1", "-W", "5", "-F", FORMAT,
            ],
        );
        sub.wait_for(SUBACK, WAIT);
        publish(b.port, &["-V", pv, "-q", "2", "-t", &topic, "-m", "cross"]);
        let (_, lines) = sub.finish(WAIT);
        let expected = format!("0 2 {topic} cross");
        assert!(
            lines.contains(&expected),
            "sub -V {sv} / pub -V {pv}: expected {expected:?} in:\n{}",
            lines.join("\n")
        );
    }
}

#[test]
fn mosquitto_clients_retained_set_and_cleared() {
    require_clients();
    let b = start_broker();
    for v in VERSIONS {
        let topic = format!("interop/retained/{v}");
        let payload = format!("kept v{v}");
        publish(
            b.port,
            &["-V", v, "-q", "1", "-r", "-t", &topic, "-m", &payload],
        );
        let sub = Sub::spawn(
            b.port,
            &[
                "-V", v, "-q", "1", "-t", &topic, "-C", "1", "-W", "5", "-F", FORMAT,
            ],
        );
        let (_, lines) = sub.finish(WAIT);
        let expected = format!("1 1 {topic} {payload}");
        assert!(
            lines.contains(&expected),
            "-V {v}: expected retained {expected:?} in:\n{}",
            lines.join("\n")
        );

        // `-r -n`: an empty retained message clears it.
        publish(b.port, &["-V", v, "-q", "1", "-r", "-t", &topic, "-n"]);
        let sub = Sub::spawn(
            b.port,
            &[
                "-V", v, "-q", "1", "-t", &topic, "-C", "1", "-W", "1", "-F", FORMAT,
            ],
        );
        let (_, lines) = sub.finish(WAIT);
        assert!(
            !lines.iter().any(|l| l.contains(&payload)),
            "-V {v}: retained message not cleared:\n{}",
            lines.join("\n")
        );
    }
}

#[test]
fn mosquitto_clients_will_sent_when_client_is_killed() {
    require_clients();
    let b = start_broker();
    for v in VERSIONS {
        let will_topic = format!("interop/will/{v}");
        let will_payload = format!("gone v{v}");
        let mut watcher = Sub::spawn(
            b.port,
            &[
                "-V",
                v,
                "-q",
                "1",
                "-t",
                &will_topic,
                "-C",
                "1",
                "-W",
                "8",
                "-F",
                FORMAT,
            ],
        );
        watcher.wait_for(SUBACK, WAIT);

        let mut holder = Sub::spawn(
            b.port,
            &[
                "-V",
                v,
                "-t",
                "interop/unused",
                "-i",
                &format!("will-holder-{v}"),
                "--will-topic",
                &will_topic,
                "--will-payload",
                &will_payload,
                "--will-qos",
                "1",
            ],
        );
        holder.wait_for(SUBACK, WAIT);
        // SIGKILL: no DISCONNECT is sent, the socket just closes.
        holder.child.kill().expect("kill");
        let _ = holder.child.wait();

        let (_, lines) = watcher.finish(WAIT);
        let expected = format!("0 1 {will_topic} {will_payload}");
        assert!(
            lines.contains(&expected),
            "-V {v}: expected will {expected:?} in:\n{}",
            lines.join("\n")
        );
    }
}

#[test]
fn mosquitto_clients_no_will_after_clean_disconnect() {
    require_clients();
    let b = start_broker();
    let mut watcher = Sub::spawn(
        b.port,
        &[
            "-q",
            "1",
            "-t",
            "interop/nowill",
            "-C",
            "1",
            "-W",
            "2",
            "-F",
            FORMAT,
        ],
    );
    watcher.wait_for(SUBACK, WAIT);
    // mosquitto_pub disconnects normally: its will must not be published.
    publish(
        b.port,
        &[
            "-t",
            "interop/other",
            "-m",
            "x",
            "--will-topic",
            "interop/nowill",
            "--will-payload",
            "should not appear",
        ],
    );
    let (_, lines) = watcher.finish(WAIT);
    assert!(
        !lines.iter().any(|l| l.contains("should not appear")),
        "will published after a normal DISCONNECT:\n{}",
        lines.join("\n")
    );
}
