//! Helpers shared by the tests that run the `midge` binary against Debian's Mosquitto
//! command-line clients: a temporary directory, a free port, the broker process with its
//! log, and a bounded run of a client tool.
#![allow(dead_code)]

pub mod dynsec;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const INSTALL: &str = "install mosquitto-clients (apt-get install mosquitto-clients)";

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "midge-interop-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn write(&self, name: &str, text: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Midge {
    pub child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Midge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Midge {
    pub fn start(conf: &str, port: u16) -> Midge {
        let mut child = Command::new(env!("CARGO_BIN_EXE_midge"))
            .args(["-c", conf])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start midge");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                sink.lock().unwrap().push(line);
            }
        });
        let mut m = Midge { child, log };
        let ready = format!("listen socket on port {port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !m.log_text().contains(&ready) {
            if let Ok(Some(status)) = m.child.try_wait() {
                thread::sleep(Duration::from_millis(100));
                panic!("midge exited ({status}):\n{}", m.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "midge not ready:\n{}",
                m.log_text()
            );
            thread::sleep(Duration::from_millis(20));
        }
        m
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Sends SIGHUP and waits until the reload (and whatever it logs) is done.
    pub fn hup(&self) {
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
                thread::sleep(Duration::from_millis(300));
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("no reload logged:\n{}", self.log_text());
    }
}

/// Runs a Mosquitto client tool, killed after 10 s.
pub fn tool(program: &str, args: &[String]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args);
    tool_output(cmd)
}

/// Runs `cmd` with its output captured, killed after 10 s.
pub fn tool_output(mut cmd: Command) -> Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = match cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
        Ok(c) => c,
        Err(e) => panic!("{program} not found ({e}): {INSTALL}"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}
