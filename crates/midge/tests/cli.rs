//! The `midge` binary as a user runs it: configuration errors, Mosquitto-like log lines,
//! and a clean exit on SIGTERM / SIGINT.

mod common;

use common::free_port;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn midge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_midge"))
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("midge-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts the broker on a free loopback port and waits until it accepts connections.
fn start(extra_config: &str) -> (Child, u16) {
    let port = free_port();
    let conf = temp_file(
        &format!("broker-{port}.conf"),
        &format!("listener {port} 127.0.0.1\nallow_anonymous true\n{extra_config}"),
    );
    let child = midge()
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "broker did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, port)
}

/// Waits for the process to exit; kills it and fails if it does not within `limit`.
fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("midge did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    child.stderr.take().unwrap().read_to_string(&mut s).unwrap();
    s
}

#[test]
fn unknown_option_stops_startup_with_file_and_line() {
    let conf = temp_file("bad.conf", "listener 1883\n\nno_such_option 1\n");
    let out = midge().arg("-c").arg(&conf).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let expected = format!("{}:3: unknown option 'no_such_option'", conf.display());
    assert!(err.contains(&expected), "stderr was: {err}");
}

#[test]
fn bad_value_stops_startup_with_file_and_line() {
    let conf = temp_file("badvalue.conf", "max_keepalive 70000\n");
    let out = midge().arg("-c").arg(&conf).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:1: max_keepalive", conf.display())),
        "stderr was: {err}"
    );
}

#[test]
fn test_config_checks_and_exits() {
    let good = temp_file("good.conf", "listener 1883\nallow_anonymous true\n");
    let out = midge()
        .arg("--test-config")
        .arg("-c")
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn missing_config_file_is_an_error() {
    let out = midge()
        .arg("-c")
        .arg("/nonexistent/midge.conf")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/midge.conf"));
}

/// A 3.1.1 CONNECT for client id "cli-test", clean session, keep alive 60.
const CONNECT: &[u8] = &[
    0x10, 0x14, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x08, b'c', b'l',
    b'i', b'-', b't', b'e', b's', b't',
];

#[test]
fn logs_connections_like_mosquitto_and_exits_cleanly_on_sigterm() {
    let (mut child, port) = start("");
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(CONNECT).unwrap();
    let mut ack = [0u8; 4];
    c.read_exact(&mut ack).unwrap();
    assert_eq!(ack, [0x20, 0x02, 0x00, 0x00]);
    c.write_all(&[0xe0, 0x00]).unwrap();
    drop(c);
    std::thread::sleep(Duration::from_millis(200));

    nix_kill(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(5));
    assert!(status.success(), "exit status {status:?}");
    let log = stderr_of(&mut child);
    assert!(
        log.contains("New client connected from 127.0.0.1 as cli-test (p2, c1, k60)."),
        "log was: {log}"
    );
    assert!(
        log.contains("Client cli-test disconnected."),
        "log was: {log}"
    );
}

#[test]
fn exits_cleanly_on_sigint_with_clients_connected() {
    let (mut child, port) = start("");
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(CONNECT).unwrap();
    let mut ack = [0u8; 4];
    c.read_exact(&mut ack).unwrap();
    nix_kill(&child, "INT");
    let status = wait_exit(&mut child, Duration::from_secs(5));
    assert!(status.success(), "exit status {status:?}");
    // The client sees its connection end.
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
}

fn nix_kill(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}
