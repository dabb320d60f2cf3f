//! The pub/sub engine behind throughput, fanout, fanin and latency: connects and subscribes
//! every client, runs publishers and subscribers as tasks, and times the run from a
//! coordinator loop:
//!
//! 1. warm-up: everyone runs, nothing is measured;
//! 2. measured window: counters, broker CPU/RSS and the tool's own CPU are read at its start
//!    and end; it ends after `--duration`, or when every publisher reached `--count`;
//! 3. drain: publishers stop and collect their last acknowledgements, subscribers read until
//!    every message sent has arrived at each of them, or nothing arrived for `--drain`;
//! 4. verification: per-publisher sequence numbers at every subscriber give lost and
//!    duplicated messages.
//!
//! Every phase is bounded in time; a client task that fails (the broker closed its
//! connection, sent garbage) ends the run with its error.

pub mod backlog;
pub mod publisher;
pub mod shared;
pub mod subscriber;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::Options;
use crate::client;
use crate::clock::Clock;
use crate::error::BenchError;
use crate::histogram::Histogram;
use crate::procstat::{self, CpuTime, Sample};
use crate::progress::Progress;
use crate::report::{BrokerUsage, PubSubReport, ToolUsage};
use crate::sequence::{self, SeqCounts};
use backlog::Backlog;
use publisher::{PublisherResult, PublisherSpec};
use shared::{total, Counters, Phase};
use subscriber::{SubscriberResult, SubscriberSpec};

/// Keep-alive every client announces: longer than any run (at most 600 s), so no client has
/// to send PINGREQ — a QoS 0 subscriber never sends anything else.
pub const KEEP_ALIVE: u16 = 600;
/// How often the coordinator looks at the clock and the tasks.
const TICK: Duration = Duration::from_millis(10);
/// Losses described one by one in the report, at most.
const MAX_LOSS_EXAMPLES: usize = 5;
/// The drain never takes longer than this, however slowly messages trickle in.
const MAX_DRAIN: Duration = Duration::from_secs(60);

/// What a pub/sub scenario asks of the engine. Every subscriber subscribes to every filter
/// and is expected to receive every message of every publisher.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Topic of each publisher; the index is the publisher id in the payload.
    pub publisher_topics: Vec<String>,
    pub filters: Vec<String>,
    pub subscribers: usize,
    /// Distinct topics, for the report.
    pub topics: usize,
}

/// A run-unique part of client ids, so runs in one process (the tests) never take over each
/// other's sessions.
pub(crate) fn run_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Counters, broker and tool usage at one instant.
struct Snapshot {
    at: Instant,
    sent: u64,
    received: u64,
    broker: Option<Sample>,
    tool: CpuTime,
}

struct Tasks {
    /// None once joined; its result is then in `pub_results`.
    pubs: Vec<Option<JoinHandle<Result<PublisherResult, String>>>>,
    pub_results: Vec<Option<PublisherResult>>,
    subs: Vec<JoinHandle<Result<SubscriberResult, String>>>,
    pub_counters: Vec<Arc<Counters>>,
    sub_counters: Vec<Arc<Counters>>,
    phase: watch::Sender<Phase>,
}

impl Tasks {
    fn snapshot(&self, broker_pid: Option<u32>) -> Result<Snapshot, BenchError> {
        let broker = match broker_pid {
            Some(pid) => Some(procstat::sample(pid).map_err(|e| {
                BenchError::new(format!("cannot read /proc/{pid} (--broker-pid): {e}"))
            })?),
            None => None,
        };
        Ok(Snapshot {
            at: Instant::now(),
            sent: total(&self.pub_counters),
            received: total(&self.sub_counters),
            broker,
            tool: procstat::cpu_time(None).unwrap_or_default(),
        })
    }

    /// The error of any task that has ended with one, or of a subscriber that ended at all
    /// (they only end when told to). Publishers that ended well (their count reached, their
    /// acks in) are joined and their results kept.
    async fn failed(&mut self) -> Option<BenchError> {
        for (h, result) in self.pubs.iter_mut().zip(&mut self.pub_results) {
            if h.as_ref().is_some_and(|h| h.is_finished()) {
                match join(h.take().expect("checked")).await {
                    Ok(r) => *result = Some(r),
                    Err(e) => return Some(e),
                }
            }
        }
        for h in &mut self.subs {
            if h.is_finished() {
                return Some(match join(h).await {
                    Err(e) => e,
                    Ok(_) => BenchError::new("a subscriber ended early"),
                });
            }
        }
        None
    }

    fn abort(&self) {
        let _ = self.phase.send(Phase::Stop);
        for h in self.pubs.iter().flatten() {
            h.abort();
        }
        for h in &self.subs {
            h.abort();
        }
    }
}

/// Awaits a task that is known to be finished (or about to be).
async fn join<T>(
    h: impl std::future::Future<Output = Result<Result<T, String>, tokio::task::JoinError>>,
) -> Result<T, BenchError> {
    match h.await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(BenchError::new(e)),
        Err(e) => Err(BenchError::new(format!("a client task failed: {e}"))),
    }
}

pub async fn run(
    opts: &Options,
    plan: Plan,
    target: SocketAddr,
) -> Result<PubSubReport, BenchError> {
    let clock = Clock::new();
    let id = format!("mb{}-{}", std::process::id(), run_id());
    let version = opts.protocol;
    let n_pubs = plan.publisher_topics.len();
    let mut notes = vec![];

    // Subscribers first, so nothing published is missed.
    let mut sub_conns = Vec::with_capacity(plan.subscribers);
    for i in 0..plan.subscribers {
        let mut c = client::connect_session(
            target,
            version,
            &format!("{id}-s{i}"),
            KEEP_ALIVE,
            opts.persistent_subscribers,
        )
        .await?;
        client::subscribe(&mut c, &plan.filters, opts.qos)
            .await
            .map_err(|e| BenchError::new(format!("subscriber {i}: {e}")))?;
        sub_conns.push(c);
    }
    let mut pub_conns = Vec::with_capacity(n_pubs);
    let mut window = opts.inflight;
    for i in 0..n_pubs {
        let c = client::connect(target, version, &format!("{id}-p{i}"), KEEP_ALIVE).await?;
        let packet = crate::hot_packets::PublishTemplate::new(
            &plan.publisher_topics[i],
            opts.qos,
            &crate::payload::template(opts.payload),
            version.is_v5(),
        )
        .len();
        if let Some(max) = c.max_packet() {
            if packet > max as usize {
                return Err(BenchError::new(format!(
                    "the broker accepts packets up to {max} bytes; a PUBLISH here takes {packet}"
                )));
            }
        }
        window = window.min(c.send_window(opts.inflight));
        pub_conns.push(c);
    }
    if opts.qos > 0 && window < opts.inflight {
        notes.push(format!(
            "the broker's Receive Maximum lowered the inflight window from {} to {window}",
            opts.inflight
        ));
    }

    let (phase_tx, phase_rx) = watch::channel(Phase::Run);
    let warmup_us = opts.warmup.as_micros() as u32;
    let window_start_us = Arc::new(AtomicU32::new(clock.now_us().wrapping_add(warmup_us)));
    let seq_window = sequence::window_for((n_pubs * plan.subscribers) as u64);
    let mut tasks = Tasks {
        pubs: vec![],
        pub_results: vec![],
        subs: vec![],
        pub_counters: vec![],
        sub_counters: vec![],
        phase: phase_tx,
    };
    tasks.sub_counters = (0..sub_conns.len())
        .map(|_| Arc::new(Counters::default()))
        .collect();
    let backlog = Arc::new(Backlog::new(opts.backlog, tasks.sub_counters.clone()));
    let start = tasks.snapshot(opts.broker_pid)?;
    for (index, conn) in sub_conns.into_iter().enumerate() {
        let counters = Arc::clone(&tasks.sub_counters[index]);
        let spec = SubscriberSpec {
            index,
            publishers: n_pubs,
            window: seq_window,
            clock,
            window_start_us: Arc::clone(&window_start_us),
            backlog: Arc::clone(&backlog),
        };
        tasks.subs.push(tokio::spawn(subscriber::run(
            conn,
            spec,
            counters,
            phase_rx.clone(),
        )));
    }
    let started = Instant::now();
    for (i, conn) in pub_conns.into_iter().enumerate() {
        let counters = Arc::new(Counters::default());
        let spec = PublisherSpec {
            id: i as u32,
            topic: plan.publisher_topics[i].clone(),
            qos: opts.qos,
            payload: opts.payload,
            window,
            count: opts.count,
            rate: opts.rate.map(|r| r / n_pubs as f64),
            drain: opts.drain,
            clock,
            backlog: Arc::clone(&backlog),
        };
        tasks.pubs.push(Some(tokio::spawn(publisher::run(
            conn,
            spec,
            Arc::clone(&counters),
            phase_rx.clone(),
        ))));
        tasks.pub_results.push(None);
        tasks.pub_counters.push(counters);
    }
    drop(phase_rx);

    let result = measure(opts, &plan, &mut tasks, start, started).await;
    let stalls = backlog.stalls();
    if result.is_err() {
        tasks.abort();
    }
    let mut report = result?;
    if stalls > 0 {
        notes.push(format!(
            "publishers waited on a backlog that did not move for {:?} {stalls} time(s) and \
             wrote it off (messages lost, or a broker stall)",
            backlog::STALL
        ));
    }
    report.backlog_stalls = stalls;
    report.notes.splice(0..0, notes);
    Ok(report)
}

async fn measure(
    opts: &Options,
    plan: &Plan,
    tasks: &mut Tasks,
    start: Snapshot,
    started: Instant,
) -> Result<PubSubReport, BenchError> {
    let mut notes = vec![];
    let warmup_end = started + opts.warmup;
    let run_end = warmup_end + opts.duration;
    let mut progress = Progress::new(opts.warmup + opts.duration);
    let mut window_start: Option<Snapshot> = None;
    loop {
        tokio::time::sleep(TICK).await;
        if let Some(e) = tasks.failed().await {
            return Err(e);
        }
        let now = Instant::now();
        if window_start.is_none() && now >= warmup_end {
            window_start = Some(tasks.snapshot(opts.broker_pid)?);
        }
        let all_done = tasks.pub_counters.iter().all(|c| c.is_done());
        if now >= run_end || all_done {
            break;
        }
        progress.tick(
            if window_start.is_some() {
                "measuring"
            } else {
                "warm-up"
            },
            ("sent", "received"),
            total(&tasks.pub_counters),
            total(&tasks.sub_counters),
        );
    }
    let end = tasks.snapshot(opts.broker_pid)?;
    let _ = tasks.phase.send(Phase::StopPublishing);
    let cut_in_warmup = window_start.is_none();
    let window_start = match window_start {
        Some(w) => w,
        None => {
            // Every publisher reached --count before the warm-up ended: measure from the start
            // (the warm-up latencies are merged in below).
            notes.push(
                "every publisher reached --count during the warm-up: the window covers the \
                 whole run (lower --warmup)"
                    .to_string(),
            );
            start
        }
    };

    // Drain, part 1: publishers finish their QoS 1/2 flows.
    let drain_started = Instant::now();
    let hard_end = drain_started + MAX_DRAIN;
    for (h, result) in tasks.pubs.iter_mut().zip(&mut tasks.pub_results) {
        let Some(h) = h.take() else {
            continue;
        };
        match tokio::time::timeout_at(hard_end.into(), join(h)).await {
            Ok(r) => *result = Some(r?),
            Err(_) => {
                return Err(BenchError::new(format!(
                    "publishers still busy {MAX_DRAIN:?} after the window ended"
                )))
            }
        }
    }
    let pub_results: Vec<PublisherResult> = tasks.pub_results.iter().flatten().copied().collect();
    let sent: Vec<u64> = pub_results.iter().map(|r| r.sent).collect();
    let sent_total: u64 = sent.iter().sum();

    // Drain, part 2: subscribers receive what is still on its way.
    let mut last_total = total(&tasks.sub_counters);
    let mut last_change = Instant::now();
    let drained = loop {
        if tasks
            .sub_counters
            .iter()
            .all(|c| c.unique_or_acked() >= sent_total)
        {
            break true;
        }
        tokio::time::sleep(TICK).await;
        if let Some(e) = tasks.failed().await {
            return Err(e);
        }
        let now = Instant::now();
        let t = total(&tasks.sub_counters);
        if t != last_total {
            last_total = t;
            last_change = now;
        }
        if now.duration_since(last_change) >= opts.drain || now >= hard_end {
            break false;
        }
        progress.tick(
            "drain",
            ("sent", "received"),
            sent_total,
            total(&tasks.sub_counters),
        );
    };
    let drain_s = drain_started.elapsed().as_secs_f64();
    let _ = tasks.phase.send(Phase::Stop);
    let mut sub_results = Vec::with_capacity(tasks.subs.len());
    for h in &mut tasks.subs {
        match tokio::time::timeout(Duration::from_secs(10), join(h)).await {
            Ok(r) => sub_results.push(r?),
            Err(_) => return Err(BenchError::new("a subscriber did not stop")),
        }
    }

    // Verification and the numbers.
    let mut seq = SeqCounts::default();
    let mut lost = 0;
    let mut latency = Histogram::new();
    let mut received_total = 0;
    for r in &sub_results {
        seq.add(&r.checker.counts());
        lost += r.checker.lost(&sent);
        latency.merge(&r.measured);
        if cut_in_warmup {
            latency.merge(&r.warmup);
        }
        received_total += r.received;
    }
    // Where the losses are, for a person chasing a broker bug: a missing tail (the last
    // messages never came) and holes in the middle point at different causes.
    let mut loss_examples = vec![];
    'examples: for (si, r) in sub_results.iter().enumerate() {
        for (p, &n) in sent.iter().enumerate() {
            let got = r.checker.unique_from(p as u32);
            if got < n {
                let high = r.checker.high_from(p as u32);
                loss_examples.push(format!(
                    "subscriber {si} missed {} of publisher {p}'s {n} messages (highest seen: \
                     {})",
                    n - got,
                    high.checked_sub(1)
                        .map_or("none".to_string(), |h| h.to_string())
                ));
                if loss_examples.len() == MAX_LOSS_EXAMPLES {
                    break 'examples;
                }
            }
        }
    }
    let window_s = end.at.duration_since(window_start.at).as_secs_f64();
    let received = end.received - window_start.received;
    let broker = match (opts.broker_pid, &window_start.broker, &end.broker) {
        (Some(pid), Some(a), Some(b)) => {
            let cpu_s = b.cpu.total_s() - a.cpu.total_s();
            Some(BrokerUsage {
                pid,
                cpu_s,
                cpu_us_per_msg: (received > 0).then(|| cpu_s * 1e6 / received as f64),
                rss_before_kib: a.rss_kib,
                rss_after_kib: b.rss_kib,
            })
        }
        _ => None,
    };
    let tool_cpu_s = end.tool.total_s() - window_start.tool.total_s();
    let tool = ToolUsage {
        threads: opts.threads,
        cpu_s: tool_cpu_s,
        cpu_percent: if window_s > 0.0 {
            tool_cpu_s / window_s * 100.0
        } else {
            0.0
        },
    };
    let sum = |f: fn(&PublisherResult) -> u64| pub_results.iter().map(f).sum::<u64>();
    let unwritten = sum(|r| r.unwritten_bytes);
    if unwritten > 0 {
        notes.push(format!(
            "{unwritten} bytes of PUBLISH were never written: the broker stopped reading"
        ));
    }
    if !drained {
        notes.push(format!(
            "the drain gave up after {drain_s:.1} s with deliveries missing (nothing new for \
             {:.1} s)",
            opts.drain.as_secs_f64()
        ));
    }
    if seq.foreign > 0 {
        notes.push(format!(
            "{} messages on the benchmark topics were not from this run (another client \
             publishing there? use --topic-prefix)",
            seq.foreign
        ));
    }
    if opts.qos == 0 && lost > 0 {
        notes.push(format!(
            "QoS 0: {lost} deliveries dropped ({:.2}%), e.g. the broker's queue for a subscriber \
             that fell behind was full",
            lost as f64 * 100.0 / (sent_total * plan.subscribers as u64).max(1) as f64
        ));
    }
    Ok(PubSubReport {
        scenario: opts.scenario,
        protocol: opts.protocol_name(),
        qos: opts.qos,
        payload: opts.payload,
        publishers: plan.publisher_topics.len(),
        subscribers: plan.subscribers,
        topics: plan.topics,
        rate: opts.rate,
        inflight: opts.inflight,
        backlog: opts.backlog,
        backlog_stalls: 0,
        warmup_s: if cut_in_warmup {
            0.0
        } else {
            opts.warmup.as_secs_f64()
        },
        window_s,
        sent: end.sent - window_start.sent,
        received,
        sent_total,
        received_total,
        expected_total: sent_total * plan.subscribers as u64,
        seq,
        lost,
        acked: sum(|r| r.acked),
        unacked: sum(|r| r.unacked),
        refused: sum(|r| r.refused),
        unwritten_bytes: unwritten,
        latency: latency.summary(),
        loss_examples,
        drain_s,
        drained,
        broker,
        tool,
        notes,
    })
}
