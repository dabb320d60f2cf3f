//! `connections`: opens N idle clients (CONNECT with keep-alive 600, so none needs to ping
//! during a hold of at most 600 s) at `--rate` per second, holds them for `--hold` seconds,
//! and reads the broker's RSS before, once all are connected, and at the end of the hold:
//! the broker's memory per idle connection and how fast it accepts clients.
//!
//! A failed connect does not end the run (it is counted and fails it at the end), but after
//! [`MAX_FAILURES`] failures no further client is tried: the broker is down or full.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::cli::Options;
use crate::client;
use crate::engine::KEEP_ALIVE;
use crate::error::BenchError;
use crate::histogram::Histogram;
use crate::procstat;
use crate::progress::Progress;
use crate::report::{ConnectionsBroker, ConnectionsReport, ToolUsage};

/// Connects in progress at once: enough for any rate, few enough that a broker that stops
/// answering does not pile up thousands of pending sockets.
const MAX_PENDING: usize = 512;
/// Failures after which no more clients are tried.
const MAX_FAILURES: usize = 100;
/// Pause after the last CONNACK before reading the broker's RSS, so it has finished
/// whatever it does after answering (registering the session, logging).
const SETTLE: Duration = Duration::from_millis(200);

type Attempt = (usize, Result<TcpStream, String>, Duration);

/// The clients connected so far and what the others ran into.
struct Tally {
    streams: Vec<TcpStream>,
    /// Connect to CONNACK, µs.
    latency: Histogram,
    failed: usize,
    first_error: Option<String>,
    last_done: Instant,
}

impl Tally {
    fn collect(&mut self, done: Result<Attempt, tokio::task::JoinError>) -> Result<(), BenchError> {
        let (i, r, took) =
            done.map_err(|e| BenchError::new(format!("connect task failed: {e}")))?;
        match r {
            Ok(s) => {
                self.streams.push(s);
                self.latency
                    .record(took.as_micros().min(u128::from(u32::MAX)) as u32);
            }
            Err(e) => {
                self.failed += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(format!("client {i}: {e}"));
                }
            }
        }
        self.last_done = Instant::now();
        Ok(())
    }
}

pub async fn run(o: &Options, target: SocketAddr) -> Result<ConnectionsReport, BenchError> {
    let read_rss = |pid: u32| {
        procstat::rss_kib(Some(pid))
            .map_err(|e| BenchError::new(format!("cannot read /proc/{pid} (--broker-pid): {e}")))
    };
    let read_cpu = |pid: u32| {
        procstat::cpu_time(Some(pid))
            .map_err(|e| BenchError::new(format!("cannot read /proc/{pid} (--broker-pid): {e}")))
    };
    let rss_before = o.broker_pid.map(read_rss).transpose()?;
    let cpu_before = o.broker_pid.map(read_cpu).transpose()?;
    let tool_before = procstat::cpu_time(None).unwrap_or_default();
    let rate = o.rate.unwrap_or(1000.0);
    let planned = Duration::from_secs_f64(o.clients as f64 / rate) + o.hold;
    let mut progress = Progress::new(planned);

    let id = format!("mb{}-{}-c", std::process::id(), crate::engine::run_id());
    let pending = Arc::new(Semaphore::new(MAX_PENDING));
    let mut set: JoinSet<Attempt> = JoinSet::new();
    let start = tokio::time::Instant::now();
    let mut tally = Tally {
        streams: Vec::with_capacity(o.clients),
        latency: Histogram::new(),
        failed: 0,
        first_error: None,
        last_done: Instant::now(),
    };
    let mut tried = 0;
    for i in 0..o.clients {
        // Client i is due i / rate seconds after the start.
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
        while let Some(done) = set.try_join_next() {
            tally.collect(done)?;
        }
        if tally.failed >= MAX_FAILURES {
            break;
        }
        let permit = Arc::clone(&pending)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let version = o.protocol;
        let client_id = format!("{id}{i}");
        set.spawn(async move {
            let t = Instant::now();
            let r = client::connect(target, version, &client_id, KEEP_ALIVE).await;
            drop(permit);
            // Only the socket is kept: an idle client needs no buffers.
            (i, r.map(|c| c.stream), t.elapsed())
        });
        tried += 1;
        progress.tick(
            "connecting",
            ("tried", "connected"),
            tried as u64,
            tally.streams.len() as u64,
        );
    }
    while let Some(done) = set.join_next().await {
        tally.collect(done)?;
    }
    let connect_s = tally
        .last_done
        .duration_since(start.into_std())
        .as_secs_f64();
    let connected = tally.streams.len();
    let cpu_connected = o.broker_pid.map(read_cpu).transpose()?;

    tokio::time::sleep(SETTLE).await;
    let rss_connected = o.broker_pid.map(read_rss).transpose()?;
    let hold_end = tokio::time::Instant::now() + o.hold;
    let mut progress = Progress::new(o.hold);
    while tokio::time::Instant::now() < hold_end {
        let next = tokio::time::Instant::now() + Duration::from_secs(1);
        tokio::time::sleep_until(hold_end.min(next)).await;
        progress.tick(
            "holding",
            ("clients", "failed"),
            connected as u64,
            tally.failed as u64,
        );
    }
    let rss_end = o.broker_pid.map(read_rss).transpose()?;
    let tool_cpu_s = procstat::cpu_time(None).unwrap_or_default().total_s() - tool_before.total_s();
    let wall = start.elapsed().as_secs_f64();
    let Tally {
        streams,
        latency,
        failed,
        first_error,
        ..
    } = tally;
    drop(streams);

    let mut notes = vec![];
    if tried < o.clients {
        notes.push(format!(
            "stopped trying after {MAX_FAILURES} failures: {} clients never attempted",
            o.clients - tried
        ));
    }
    let broker = match (o.broker_pid, rss_before, rss_connected, rss_end) {
        (Some(pid), Some(before), Some(conn), Some(end)) => Some(ConnectionsBroker {
            pid,
            rss_before_kib: before,
            rss_connected_kib: conn,
            rss_end_kib: end,
            bytes_per_connection: (connected > 0)
                .then(|| (end as f64 - before as f64) * 1024.0 / connected as f64),
            connect_cpu_s: match (cpu_before, cpu_connected) {
                (Some(a), Some(b)) => b.total_s() - a.total_s(),
                _ => 0.0,
            },
        }),
        _ => None,
    };
    Ok(ConnectionsReport {
        protocol: o.protocol_name(),
        requested: o.clients,
        connected,
        failed: failed + (o.clients - tried),
        first_error,
        rate,
        connect_s,
        connect_latency: latency.summary(),
        hold_s: o.hold.as_secs_f64(),
        broker,
        tool: ToolUsage {
            threads: o.threads,
            cpu_s: tool_cpu_s,
            cpu_percent: if wall > 0.0 {
                tool_cpu_s / wall * 100.0
            } else {
                0.0
            },
        },
        notes,
    })
}
