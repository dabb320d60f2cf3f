//! Helpers shared by the tests that run the `midge` binary against Debian's Mosquitto
//! command-line clients: a temporary directory, a free port, the broker process with its
//! log, and a bounded run of a client tool.
#![allow(dead_code)]

pub mod broker;
pub mod dynsec;
pub mod proc;
pub mod raw;
pub mod tls;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

pub const INSTALL: &str = "install mosquitto-clients (apt-get install mosquitto-clients)";

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        TempDir::with_prefix("midge-interop")
    }

    /// A fresh directory `<temp>/<prefix>-<pid>-<n>`.
    pub fn with_prefix(prefix: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn path(&self, name: &str) -> String {
        self.join(name).display().to_string()
    }

    /// Writes `name` (creating its parent directories) and returns its path.
    pub fn write(&self, name: &str, text: &str) -> String {
        let p = self.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(&p, text).expect("write fixture");
        p.to_string_lossy().into_owned()
    }

    /// Replaces `name` as editors and mosquitto_passwd do (write, then rename); returns its
    /// path.
    pub fn replace(&self, name: &str, text: &str) -> String {
        let path = self.path(name);
        let tmp = self.path(&format!(".{name}.tmp"));
        std::fs::write(&tmp, text).expect("write fixture");
        std::fs::rename(&tmp, &path).expect("rename fixture");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port nothing listens on now, never the same twice in this process: tests
/// run in parallel, and the kernel may hand a port just released to the next `bind(0)`
/// before the first test's broker has bound it (the second broker then fails to start and
/// the second test talks to the first one's).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub struct Midge {
    pub child: Child,
    log: broker::Log,
}

impl Drop for Midge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Midge {
    pub fn start(conf: &str, port: u16) -> Midge {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_midge"));
        cmd.args(["-c", conf]);
        Midge::spawn(cmd, port, "midge exited", "midge not ready")
    }

    /// Starts `cmd` (the midge binary), its stderr collected, and waits (at most 10 s) until
    /// it logs that it listens on `port`; panics with `exited` or `not_ready` otherwise.
    pub fn spawn(mut cmd: Command, port: u16, exited: &str, not_ready: &str) -> Midge {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start midge");
        let log = broker::stderr_log(&mut child);
        let mut m = Midge { child, log };
        broker::wait_listening(
            &mut m.child,
            &m.log,
            port,
            Duration::from_secs(10),
            exited,
            not_ready,
        );
        m
    }

    pub fn log_text(&self) -> String {
        broker::log_text(&self.log)
    }

    /// Sends SIGHUP and waits until the reload (and whatever it logs) is done.
    pub fn hup(&self) {
        self.hup_settle(Duration::from_millis(300));
    }

    /// Sends SIGHUP, waits until the reload is logged, then `settle` for the reload work
    /// that follows the log line.
    pub fn hup_settle(&self, settle: Duration) {
        let before = self.log.lock().unwrap().len();
        let status = Command::new("kill")
            .arg("-HUP")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.log.lock().unwrap()[before..]
                .iter()
                .any(|l| l.contains("Reloading"))
            {
                thread::sleep(settle);
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("no reload logged:\n{}", self.log_text());
    }
}

/// The lines of `pipe` as they are printed, read on a thread of its own; the channel ends
/// at EOF.
pub fn line_channel(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    lines
}

/// Runs a Mosquitto client tool, killed after 10 s.
pub fn tool(program: &str, args: &[String]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args);
    tool_output(cmd)
}

/// Runs `cmd` with its output captured, killed after 10 s.
pub fn tool_output(cmd: Command) -> Output {
    tool_output_within(cmd, Duration::from_secs(10))
}

/// Runs `cmd` with its output captured, killed after `limit`.
pub fn tool_output_within(mut cmd: Command, limit: Duration) -> Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = match cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
        Ok(c) => c,
        Err(e) => panic!("{program} not found ({e}): {INSTALL}"),
    };
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}
