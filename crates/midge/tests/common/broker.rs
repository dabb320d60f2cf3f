//! Broker processes under test: their output collected line by line, and a bounded wait
//! until they are ready.

use std::io::{BufRead, BufReader, Read};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The lines a process wrote, shared with the threads that read them.
pub type Log = Arc<Mutex<Vec<String>>>;

/// Appends the lines of `pipe` to `log`, on a thread of its own.
pub fn collect(pipe: impl Read + Send + 'static, log: &Log) {
    let sink = Arc::clone(log);
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            sink.lock().unwrap().push(line);
        }
    });
}

/// Takes the child's piped stderr and collects it into a new log.
pub fn stderr_log(child: &mut Child) -> Log {
    let log = Log::default();
    collect(child.stderr.take().expect("stderr"), &log);
    log
}

/// The log as one text.
pub fn log_text(log: &Log) -> String {
    log.lock().unwrap().join("\n")
}

/// Waits (at most `limit`) until `ready()`; panics with `exited` if the process stops
/// first and with `not_ready` at the deadline, followed by the log.
pub fn wait_ready(
    child: &mut Child,
    log: &Log,
    mut ready: impl FnMut() -> bool,
    limit: Duration,
    exited: &str,
    not_ready: &str,
) {
    let deadline = Instant::now() + limit;
    while !ready() {
        if let Ok(Some(status)) = child.try_wait() {
            thread::sleep(Duration::from_millis(100));
            panic!("{exited} ({status}):\n{}", log_text(log));
        }
        assert!(Instant::now() < deadline, "{not_ready}:\n{}", log_text(log));
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (at most `limit`) until the log says the broker listens on `port`.
pub fn wait_listening(
    child: &mut Child,
    log: &Log,
    port: u16,
    limit: Duration,
    exited: &str,
    not_ready: &str,
) {
    let ready = format!("listen socket on port {port}");
    let probe = Arc::clone(log);
    wait_ready(
        child,
        log,
        || log_text(&probe).contains(&ready),
        limit,
        exited,
        not_ready,
    );
}
