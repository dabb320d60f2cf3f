//! Mosquitto's logging and process options with the real `midge` binary: `log_dest file`
//! (Mosquitto's `<epoch>: message` lines, re-opened on SIGHUP for logrotate),
//! `log_type`, `log_timestamp`, `log_timestamp_format`, `log_dest topic`
//! (`$SYS/broker/log/...`), `pid_file` and `user`.
//!
//! Clients speak raw MQTT 3.1.1 over std TCP sockets with bounded reads; every broker runs
//! on a free loopback port and is killed when its test ends.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::raw::frame;
use common::{free_port, TempDir};

const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// The broker process
// ---------------------------------------------------------------------------------------

struct Broker {
    child: Child,
    port: u16,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

/// Collects what `pipe` prints, line by line, from a thread.
fn collect(pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    text
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `listener <free port> 127.0.0.1`, `allow_anonymous true` and `extra` to a
/// configuration file in `dir` and starts `midge -c` on it, stdout and stderr collected.
fn spawn(dir: &TempDir, extra: &str) -> Broker {
    let port = free_port();
    let conf = dir.write(
        "midge.conf",
        &format!("listener {port} 127.0.0.1\nallow_anonymous true\n{extra}\n"),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_midge"))
        .args(["-c", &conf])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start midge");
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    Broker {
        child,
        port,
        stdout,
        stderr,
    }
}

/// Starts the broker and waits until its port accepts connections.
fn start(dir: &TempDir, extra: &str) -> Broker {
    let mut b = spawn(dir, extra);
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", b.port)).is_err() {
        if let Ok(Some(status)) = b.child.try_wait() {
            thread::sleep(Duration::from_millis(100));
            panic!("midge exited ({status}):\n{}", b.stderr());
        }
        assert!(
            Instant::now() < deadline,
            "midge not listening:\n{}",
            b.stderr()
        );
        thread::sleep(Duration::from_millis(20));
    }
    b
}

impl Broker {
    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to end by itself within the bounded wait.
    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread take the last lines.
                thread::sleep(Duration::from_millis(100));
                return status;
            }
            assert!(Instant::now() < deadline, "midge did not exit");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status.
    fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit()
    }
}

/// Waits until the file at `path` holds `needle`; its text.
fn wait_for_text(path: &str, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} not in {path}:\n{text}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The seconds of a `<epoch>: message` line, if it is one.
fn epoch_of(line: &str) -> Option<u64> {
    let (stamp, _) = line.split_once(": ")?;
    stamp.parse().ok()
}

// ---------------------------------------------------------------------------------------
// A raw MQTT 3.1.1 client
// ---------------------------------------------------------------------------------------

struct Client(TcpStream);

fn string(s: &str) -> Vec<u8> {
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s.as_bytes());
    out
}

impl Client {
    /// Connects as `id` (clean session, keep alive 60) and reads the CONNACK.
    fn connect(port: u16, id: &str) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut body = string("MQTT");
        body.extend_from_slice(&[0x04, 0x02, 0x00, 0x3c]);
        body.extend_from_slice(&string(id));
        let mut c = Client(s);
        c.0.write_all(&frame(0x10, &body)).unwrap();
        let mut ack = [0u8; 4];
        c.0.read_exact(&mut ack).unwrap();
        assert_eq!(ack, [0x20, 0x02, 0x00, 0x00], "CONNACK");
        c
    }

    /// SUBSCRIBE at QoS 0 and its SUBACK.
    fn subscribe(&mut self, filter: &str) {
        let mut body = vec![0x00, 0x01];
        body.extend_from_slice(&string(filter));
        body.push(0);
        self.0.write_all(&frame(0x82, &body)).unwrap();
        let mut ack = [0u8; 5];
        self.0.read_exact(&mut ack).unwrap();
        assert_eq!(ack, [0x90, 0x03, 0x00, 0x01, 0x00], "SUBACK");
    }

    /// UNSUBSCRIBE; its UNSUBACK is read by `next_publish` (skipped).
    fn unsubscribe(&mut self, filter: &str) {
        let mut body = vec![0x00, 0x02];
        body.extend_from_slice(&string(filter));
        self.0.write_all(&frame(0xa2, &body)).unwrap();
    }

    fn disconnect(mut self) {
        let _ = self.0.write_all(&[0xe0, 0x00]);
    }

    /// The next PUBLISH (topic, payload); other packets are skipped.
    fn next_publish(&mut self) -> (String, String) {
        loop {
            let mut first = [0u8; 1];
            self.0
                .read_exact(&mut first)
                .expect("a packet before the timeout");
            let mut len = 0usize;
            let mut shift = 0;
            loop {
                let mut b = [0u8; 1];
                self.0.read_exact(&mut b).unwrap();
                len |= usize::from(b[0] & 0x7f) << shift;
                shift += 7;
                if b[0] & 0x80 == 0 {
                    break;
                }
            }
            let mut body = vec![0u8; len];
            self.0.read_exact(&mut body).unwrap();
            if first[0] >> 4 != 3 {
                continue;
            }
            let tlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
            let topic = String::from_utf8_lossy(&body[2..2 + tlen]).into_owned();
            let mut at = 2 + tlen;
            if first[0] & 0x06 != 0 {
                at += 2;
            }
            return (topic, String::from_utf8_lossy(&body[at..]).into_owned());
        }
    }

    /// Reads PUBLISH packets until one on `topic` whose payload contains `needle`.
    fn wait_publish(&mut self, topic: &str, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            let (t, payload) = self.next_publish();
            if t == topic && payload.contains(needle) {
                return payload;
            }
            seen.push(format!("{t} {payload}"));
        }
        panic!("no {needle:?} on {topic}; saw:\n{}", seen.join("\n"));
    }
}

// ---------------------------------------------------------------------------------------
// log_dest file, log_type, log_timestamp, log_timestamp_format
// ---------------------------------------------------------------------------------------

#[test]
fn file_gets_mosquitto_lines_and_is_created_0600() {
    let dir = TempDir::new();
    let log = dir.0.join("midge.log").display().to_string();
    let mut b = start(&dir, &format!("log_dest file {log}"));
    Client::connect(b.port, "file-probe").disconnect();
    let text = wait_for_text(&log, "Client file-probe disconnected.");
    assert!(b.terminate().success());

    let connected = text
        .lines()
        .find(|l| l.contains("New client connected from 127.0.0.1 as file-probe (p2, c1, k60)."))
        .unwrap_or_else(|| panic!("no connection line:\n{text}"));
    let stamp = epoch_of(connected).unwrap_or_else(|| panic!("not <epoch>: {connected}"));
    assert!(stamp.abs_diff(now_epoch()) < 120, "{connected}");
    for line in text.lines() {
        assert!(epoch_of(line).is_some(), "not Mosquitto's format: {line:?}");
    }
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & !0o600, 0, "log file mode {mode:o}");
    // Only the file: nothing went to stderr.
    assert!(
        !b.stderr().contains("New client connected"),
        "stderr:\n{}",
        b.stderr()
    );
}

#[test]
fn file_is_appended_to() {
    let dir = TempDir::new();
    let log = dir.write("midge.log", "an earlier line\n");
    let mut b = start(&dir, &format!("log_dest file {log}"));
    Client::connect(b.port, "append-probe").disconnect();
    wait_for_text(&log, "Client append-probe disconnected.");
    assert!(b.terminate().success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.starts_with("an earlier line\n"), "{text}");
}

#[test]
fn log_type_error_only_leaves_out_connection_lines() {
    let dir = TempDir::new();
    let log = dir.0.join("midge.log").display().to_string();
    let mut b = start(&dir, &format!("log_dest file {log}\nlog_type error"));
    Client::connect(b.port, "quiet-probe").disconnect();
    thread::sleep(Duration::from_millis(300));
    // Every line is written when the process has exited.
    assert!(b.terminate().success());
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!text.contains("quiet-probe"), "{text}");
    assert!(!text.contains("listen socket"), "{text}");
    assert!(!text.contains("terminating"), "{text}");
}

#[test]
fn log_timestamp_false_writes_the_message_alone() {
    let dir = TempDir::new();
    let log = dir.0.join("midge.log").display().to_string();
    let mut b = start(&dir, &format!("log_dest file {log}\nlog_timestamp false"));
    Client::connect(b.port, "plain-probe").disconnect();
    let text = wait_for_text(&log, "Client plain-probe disconnected.");
    assert!(b.terminate().success());
    assert!(
        text.lines()
            .any(|l| l == "New client connected from 127.0.0.1 as plain-probe (p2, c1, k60)."),
        "{text}"
    );
    assert!(text.lines().all(|l| epoch_of(l).is_none()), "{text}");
}

/// `YYYY-MM-DDTHH:MM:SS: ` at the start of the line.
fn has_iso_stamp(line: &str) -> bool {
    let b = line.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    b.len() > 21
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && &line[19..21] == ": "
}

#[test]
fn log_timestamp_format_is_strftime() {
    let dir = TempDir::new();
    let log = dir.0.join("midge.log").display().to_string();
    let mut b = start(
        &dir,
        &format!("log_dest file {log}\nlog_timestamp_format %Y-%m-%dT%H:%M:%S"),
    );
    Client::connect(b.port, "iso-probe").disconnect();
    let text = wait_for_text(&log, "Client iso-probe disconnected.");
    assert!(b.terminate().success());
    for line in text.lines() {
        assert!(has_iso_stamp(line), "not %Y-%m-%dT%H:%M:%S: {line:?}");
    }
    assert!(text.contains(": New client connected from 127.0.0.1 as iso-probe"));
}

#[test]
fn stdout_destination_instead_of_stderr() {
    let dir = TempDir::new();
    // `none` clears the `stderr` before it.
    let mut b = start(&dir, "log_dest stderr\nlog_dest none\nlog_dest stdout");
    Client::connect(b.port, "stdout-probe").disconnect();
    let deadline = Instant::now() + WAIT;
    while !b.stdout().contains("Client stdout-probe disconnected.") {
        assert!(Instant::now() < deadline, "stdout:\n{}", b.stdout());
        thread::sleep(Duration::from_millis(20));
    }
    let stdout = b.stdout();
    let line = stdout
        .lines()
        .find(|l| l.contains("as stdout-probe"))
        .unwrap();
    assert!(epoch_of(line).is_some(), "{line}");
    assert!(b.terminate().success());
    assert_eq!(b.stderr(), "");
}

#[test]
fn log_dest_none_logs_nothing() {
    let dir = TempDir::new();
    let mut b = start(&dir, "log_dest none");
    Client::connect(b.port, "none-probe").disconnect();
    thread::sleep(Duration::from_millis(300));
    assert!(b.terminate().success());
    assert_eq!(b.stderr(), "");
}

#[test]
fn unopenable_log_file_stops_startup() {
    let dir = TempDir::new();
    let log = dir.0.join("no/such/dir/midge.log").display().to_string();
    let mut b = spawn(&dir, &format!("log_dest file {log}"));
    let status = b.wait_exit();
    assert!(!status.success());
    let err = b.stderr();
    assert!(
        err.contains("cannot open log file") && err.contains(&log),
        "{err}"
    );
}

#[test]
fn dlt_is_a_warning_and_syslog_runs() {
    let dir = TempDir::new();
    let mut b = start(
        &dir,
        "log_dest dlt\nlog_dest syslog\nlog_facility 3\nlog_dest stderr",
    );
    Client::connect(b.port, "syslog-probe").disconnect();
    assert!(b.terminate().success());
    let err = b.stderr();
    assert!(
        err.contains("Warning: log_dest dlt is not available in Midge; ignored"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// SIGHUP re-opens the log file (logrotate)
// ---------------------------------------------------------------------------------------

#[test]
fn sighup_reopens_the_log_file_for_logrotate() {
    let dir = TempDir::new();
    let log = dir.0.join("midge.log").display().to_string();
    let rotated = format!("{log}.1");
    let b = start(&dir, &format!("log_dest file {log}\nlog_dest stderr"));
    Client::connect(b.port, "before-rotate").disconnect();
    wait_for_text(&log, "Client before-rotate disconnected.");

    std::fs::rename(&log, &rotated).unwrap();
    b.signal("HUP");
    // The re-opened file appears at the original path.
    let deadline = Instant::now() + WAIT;
    while !std::path::Path::new(&log).exists() {
        assert!(
            Instant::now() < deadline,
            "no new log file:\n{}",
            b.stderr()
        );
        thread::sleep(Duration::from_millis(20));
    }
    Client::connect(b.port, "after-rotate").disconnect();
    let new = wait_for_text(&log, "Client after-rotate disconnected.");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("before-rotate"), "{old}");
    assert!(!old.contains("after-rotate"), "{old}");
    assert!(!new.contains("before-rotate"), "{new}");
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & !0o600, 0, "re-opened log file mode {mode:o}");
}

#[test]
fn sighup_with_an_unopenable_file_keeps_the_old_one() {
    let dir = TempDir::new();
    let log = dir.0.join("midge.log").display().to_string();
    let b = start(&dir, &format!("log_dest file {log}\nlog_dest stderr"));
    // The same configuration, now naming a file that cannot be created.
    let port = b.port;
    let bad = dir.0.join("gone/midge.log").display().to_string();
    dir.write(
        "midge.conf",
        &format!("listener {port} 127.0.0.1\nallow_anonymous true\nlog_dest file {bad}\nlog_dest stderr\n"),
    );
    b.signal("HUP");
    let deadline = Instant::now() + WAIT;
    while !b.stderr().contains("cannot open log file") {
        assert!(Instant::now() < deadline, "no error:\n{}", b.stderr());
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        b.stderr().contains(&format!("previous {log}")),
        "{}",
        b.stderr()
    );
    Client::connect(port, "kept-file").disconnect();
    wait_for_text(&log, "Client kept-file disconnected.");
}

// ---------------------------------------------------------------------------------------
// log_dest topic
// ---------------------------------------------------------------------------------------

#[test]
fn topic_destination_publishes_lines_on_sys_broker_log() {
    let dir = TempDir::new();
    let b = start(
        &dir,
        "log_dest topic\nlog_dest stderr\nlog_type notice\nlog_type subscribe\nlog_type unsubscribe",
    );
    let mut watcher = Client::connect(b.port, "log-watcher");
    watcher.subscribe("$SYS/broker/log/#");

    Client::connect(b.port, "topic-probe").disconnect();
    let line = watcher.wait_publish(
        "$SYS/broker/log/N",
        "New client connected from 127.0.0.1 as topic-probe",
    );
    assert!(epoch_of(&line).is_some(), "{line}");

    let mut sub = Client::connect(b.port, "sub-probe");
    sub.subscribe("some/topic");
    watcher.wait_publish("$SYS/broker/log/M/subscribe", "sub-probe");
    sub.unsubscribe("some/topic");
    watcher.wait_publish("$SYS/broker/log/M/unsubscribe", "sub-probe");
    sub.disconnect();
    // The broker keeps serving (no feedback loop through its own log topic).
    Client::connect(b.port, "still-alive").disconnect();
    watcher.wait_publish("$SYS/broker/log/N", "as still-alive");
}

// ---------------------------------------------------------------------------------------
// pid_file and user
// ---------------------------------------------------------------------------------------

#[test]
fn pid_file_is_written_and_removed_on_sigterm() {
    let dir = TempDir::new();
    let pid = dir.0.join("midge.pid").display().to_string();
    let mut b = start(&dir, &format!("pid_file {pid}"));
    let text = wait_for_text(&pid, "\n");
    assert_eq!(text, format!("{}\n", b.child.id()));
    assert!(b.terminate().success());
    assert!(!std::path::Path::new(&pid).exists(), "pid file left behind");
}

#[test]
fn unwritable_pid_file_stops_startup() {
    let dir = TempDir::new();
    let pid = dir.0.join("no/such/dir/midge.pid").display().to_string();
    let mut b = spawn(&dir, &format!("pid_file {pid}"));
    assert!(!b.wait_exit().success());
    assert!(
        b.stderr().contains("Unable to write pid file"),
        "{}",
        b.stderr()
    );
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

#[test]
fn unknown_user_stops_startup_as_root() {
    let dir = TempDir::new();
    let pid = dir.0.join("midge.pid").display().to_string();
    let conf = format!("user no-such-user-midge\npid_file {pid}");
    if !is_root() {
        // Not root: `user` changes nothing, as in Mosquitto.
        let mut b = start(&dir, &conf);
        assert!(b.terminate().success());
        return;
    }
    let mut b = spawn(&dir, &conf);
    assert!(!b.wait_exit().success());
    assert!(
        b.stderr().contains(
            "Unable to drop privileges to 'no-such-user-midge' because this user does not exist."
        ),
        "{}",
        b.stderr()
    );
    assert!(!std::path::Path::new(&pid).exists(), "pid file left behind");
}

#[test]
fn user_root_runs_as_root() {
    let dir = TempDir::new();
    let mut b = start(&dir, "user root");
    Client::connect(b.port, "root-probe").disconnect();
    assert!(b.terminate().success());
}

/// The real and effective uids of every thread of `pid`.
fn thread_uids(pid: u32) -> Vec<String> {
    let mut uids = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        uids.push(line.to_owned());
    }
    uids
}

#[test]
fn user_drops_root_privileges_on_every_thread() {
    if !is_root() {
        return;
    }
    let Ok(Some(nobody)) = nix::unistd::User::from_name("nobody") else {
        return;
    };
    let dir = TempDir::new();
    let b = start(&dir, "user nobody");
    let deadline = Instant::now() + WAIT;
    while !b.stderr().contains("Dropped privileges to user 'nobody'") {
        assert!(Instant::now() < deadline, "{}", b.stderr());
        thread::sleep(Duration::from_millis(20));
    }
    // Still serving after the switch.
    Client::connect(b.port, "nobody-probe").disconnect();
    let uid = nobody.uid.to_string();
    for line in thread_uids(b.child.id()) {
        let fields: Vec<&str> = line.split_whitespace().skip(1).collect();
        assert!(fields.iter().all(|f| *f == uid), "{line} (nobody is {uid})");
    }
}
