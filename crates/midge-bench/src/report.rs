//! A run's result: the numbers, the human summary and the JSON line, and the verdict.
//! The README documents every field.

use std::fmt::Write;

use crate::cli::Scenario;
use crate::histogram::Summary;
use crate::json::JsonObject;
use crate::sequence::SeqCounts;

/// Tool CPU above this share of its threads means the numbers may measure the tool rather
/// than the broker.
pub const SATURATED_PERCENT: f64 = 90.0;

#[derive(Clone, Debug)]
pub enum Report {
    PubSub(PubSubReport),
    Connections(ConnectionsReport),
}

impl Report {
    /// What went wrong that makes the run fail (exit status 1). Empty = passed.
    pub fn failures(&self) -> Vec<String> {
        match self {
            Report::PubSub(r) => r.failures(),
            Report::Connections(r) => r.failures(),
        }
    }

    pub fn human(&self) -> String {
        match self {
            Report::PubSub(r) => r.human(),
            Report::Connections(r) => r.human(),
        }
    }

    pub fn json(&self) -> String {
        match self {
            Report::PubSub(r) => r.json(),
            Report::Connections(r) => r.json(),
        }
    }
}

/// The broker's CPU and memory over the measured window (`--broker-pid`).
#[derive(Clone, Debug, PartialEq)]
pub struct BrokerUsage {
    pub pid: u32,
    pub cpu_s: f64,
    /// Broker CPU per message delivered to a subscriber in the window, in µs.
    pub cpu_us_per_msg: Option<f64>,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
}

/// The tool's own CPU over the measured window, to tell whether it was the bottleneck.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolUsage {
    pub threads: usize,
    pub cpu_s: f64,
    /// Of one core: 100 = one core busy all the window.
    pub cpu_percent: f64,
}

impl ToolUsage {
    pub fn saturated(&self) -> bool {
        self.cpu_percent >= SATURATED_PERCENT * self.threads as f64
    }
}

#[derive(Clone, Debug)]
pub struct PubSubReport {
    pub scenario: Scenario,
    pub protocol: &'static str,
    pub qos: u8,
    pub payload: usize,
    pub publishers: usize,
    pub subscribers: usize,
    pub topics: usize,
    /// Asked total publish rate; None = unpaced.
    pub rate: Option<f64>,
    pub inflight: u16,
    /// `--backlog`: most messages in transit end to end; 0 = unlimited.
    pub backlog: u64,
    /// Times the backlog was written off because nothing moved.
    pub backlog_stalls: u64,
    pub warmup_s: f64,
    /// Length of the measured window.
    pub window_s: f64,
    /// Messages published in the window.
    pub sent: u64,
    /// Deliveries (one per message per subscriber) received in the window.
    pub received: u64,
    pub sent_total: u64,
    pub received_total: u64,
    /// Deliveries the whole run should have produced: messages sent × subscribers.
    pub expected_total: u64,
    pub seq: SeqCounts,
    /// Expected deliveries that never arrived, after the drain.
    pub lost: u64,
    pub acked: u64,
    pub unacked: u64,
    pub refused: u64,
    pub unwritten_bytes: u64,
    /// Latency of messages sent in the window, µs.
    pub latency: Summary,
    /// The first few (subscriber, publisher) pairs with losses, described.
    pub loss_examples: Vec<String>,
    /// How long the drain after the window took, and whether everything expected arrived.
    pub drain_s: f64,
    pub drained: bool,
    pub broker: Option<BrokerUsage>,
    pub tool: ToolUsage,
    pub notes: Vec<String>,
}

fn per_s(n: u64, s: f64) -> f64 {
    if s > 0.0 {
        n as f64 / s
    } else {
        0.0
    }
}

impl PubSubReport {
    pub fn sent_per_s(&self) -> f64 {
        per_s(self.sent, self.window_s)
    }

    pub fn received_per_s(&self) -> f64 {
        per_s(self.received, self.window_s)
    }

    /// QoS 1 and 2 promise delivery: anything lost, duplicated or left unacknowledged fails
    /// the run. QoS 0 promises nothing, so its loss is reported, never a failure.
    pub fn failures(&self) -> Vec<String> {
        let mut f = vec![];
        if self.qos == 0 {
            return f;
        }
        if self.lost > 0 {
            f.push(format!("{} messages lost at QoS {}", self.lost, self.qos));
        }
        if self.seq.duplicates > 0 {
            f.push(format!(
                "{} messages duplicated at QoS {}",
                self.seq.duplicates, self.qos
            ));
        }
        if self.seq.unverifiable > 0 {
            f.push(format!(
                "{} messages arrived too far out of order to verify",
                self.seq.unverifiable
            ));
        }
        if self.unacked > 0 {
            f.push(format!(
                "{} messages never acknowledged to their publisher",
                self.unacked
            ));
        }
        if self.refused > 0 {
            f.push(format!("{} messages refused by the broker", self.refused));
        }
        f
    }

    pub fn human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "midge-bench {}: {} publisher(s) -> {} subscriber(s), {} topic(s), QoS {}, MQTT {}, \
             {}-byte payload{}{}{}",
            self.scenario.name(),
            self.publishers,
            self.subscribers,
            self.topics,
            self.qos,
            self.protocol,
            self.payload,
            match self.qos {
                0 => String::new(),
                _ => format!(", inflight {}", self.inflight),
            },
            match self.rate {
                Some(r) => format!(", paced at {r} msg/s"),
                None => String::new(),
            },
            match self.backlog {
                0 => ", no backlog limit".to_string(),
                b => format!(", backlog {b}"),
            }
        );
        let _ = writeln!(
            s,
            "  window       {:.2} s (after {:.1} s warm-up)",
            self.window_s, self.warmup_s
        );
        let _ = writeln!(
            s,
            "  sent         {:>12.0} msg/s  ({} in window, {} in all)",
            self.sent_per_s(),
            self.sent,
            self.sent_total
        );
        let _ = writeln!(
            s,
            "  received     {:>12.0} msg/s  ({} deliveries in window, {} in all)",
            self.received_per_s(),
            self.received,
            self.received_total
        );
        let l = &self.latency;
        let _ = writeln!(
            s,
            "  latency      p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  ({} samples)",
            us(l.p50),
            us(l.p90),
            us(l.p99),
            us(l.p999),
            us(l.max),
            l.count
        );
        let verdict = if self.qos == 0 {
            "(QoS 0: loss is reported, not a failure)"
        } else if self.failures().is_empty() {
            "OK"
        } else {
            "FAILED"
        };
        let _ = writeln!(
            s,
            "  delivery     expected {}, lost {}, duplicated {}, reordered {}{}{}  {}",
            self.expected_total,
            self.lost,
            self.seq.duplicates,
            self.seq.reordered,
            if self.seq.unverifiable > 0 {
                format!(", unverifiable {}", self.seq.unverifiable)
            } else {
                String::new()
            },
            if self.seq.foreign > 0 {
                format!(", foreign {}", self.seq.foreign)
            } else {
                String::new()
            },
            verdict
        );
        for e in &self.loss_examples {
            let _ = writeln!(s, "               {e}");
        }
        if self.qos > 0 {
            let _ = writeln!(
                s,
                "  publish acks {} completed, {} unacknowledged, {} refused",
                self.acked, self.unacked, self.refused
            );
        }
        let _ = writeln!(
            s,
            "  drain        {:.2} s, {}",
            self.drain_s,
            if self.drained {
                "everything expected arrived"
            } else {
                "gave up waiting"
            }
        );
        if let Some(b) = &self.broker {
            let _ = writeln!(
                s,
                "  broker       pid {}: {:.2} s CPU ({:.0}% of a core), {} per delivered msg; \
                 RSS {} -> {}",
                b.pid,
                b.cpu_s,
                per_s_pct(b.cpu_s, self.window_s),
                b.cpu_us_per_msg
                    .map_or("-".to_string(), |v| format!("{v:.2} µs")),
                kib(b.rss_before_kib),
                kib(b.rss_after_kib)
            );
        }
        tool_line(&mut s, &self.tool);
        for n in &self.notes {
            let _ = writeln!(s, "  note: {n}");
        }
        for f in self.failures() {
            let _ = writeln!(s, "  FAILED: {f}");
        }
        s
    }

    pub fn json(&self) -> String {
        let mut j = JsonObject::new();
        j.str("scenario", self.scenario.name())
            .str("protocol", self.protocol)
            .u64("qos", u64::from(self.qos))
            .u64("payload_bytes", self.payload as u64)
            .u64("publishers", self.publishers as u64)
            .u64("subscribers", self.subscribers as u64)
            .u64("topics", self.topics as u64)
            .opt_f64("rate", self.rate)
            .u64("inflight", u64::from(self.inflight))
            .u64("backlog", self.backlog)
            .u64("backlog_stalls", self.backlog_stalls)
            .f64("warmup_s", self.warmup_s)
            .f64("window_s", self.window_s)
            .u64("sent", self.sent)
            .u64("received", self.received)
            .f64("sent_per_s", self.sent_per_s())
            .f64("received_per_s", self.received_per_s())
            .u64("sent_total", self.sent_total)
            .u64("received_total", self.received_total)
            .u64("expected_total", self.expected_total)
            .u64("lost", self.lost)
            .u64("duplicates", self.seq.duplicates)
            .u64("reordered", self.seq.reordered)
            .u64("unverifiable", self.seq.unverifiable)
            .u64("foreign", self.seq.foreign)
            .strings("loss_examples", &self.loss_examples)
            .u64("acked", self.acked)
            .u64("unacked", self.unacked)
            .u64("refused", self.refused)
            .f64("drain_s", self.drain_s)
            .bool("drained", self.drained);
        latency_json(&mut j, "latency_us", &self.latency);
        match &self.broker {
            Some(b) => {
                j.begin("broker")
                    .u64("pid", u64::from(b.pid))
                    .f64("cpu_s", b.cpu_s)
                    .opt_f64("cpu_us_per_msg", b.cpu_us_per_msg)
                    .u64("rss_before_kib", b.rss_before_kib)
                    .u64("rss_after_kib", b.rss_after_kib)
                    .end();
            }
            None => {
                j.null("broker");
            }
        }
        tool_json(&mut j, &self.tool);
        j.bool("ok", self.failures().is_empty())
            .strings("failures", &self.failures())
            .strings("notes", &self.notes);
        j.finish()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionsBroker {
    pub pid: u32,
    pub rss_before_kib: u64,
    /// Right after the last client connected.
    pub rss_connected_kib: u64,
    /// At the end of the hold, the clients still connected.
    pub rss_end_kib: u64,
    /// (RSS at the end of the hold − RSS before) / clients connected.
    pub bytes_per_connection: Option<f64>,
    /// Broker CPU while the clients connected.
    pub connect_cpu_s: f64,
}

#[derive(Clone, Debug)]
pub struct ConnectionsReport {
    pub protocol: &'static str,
    pub requested: usize,
    pub connected: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub rate: f64,
    /// From the first attempt to the last CONNACK.
    pub connect_s: f64,
    /// Connect to CONNACK, per client, µs.
    pub connect_latency: Summary,
    pub hold_s: f64,
    pub broker: Option<ConnectionsBroker>,
    pub tool: ToolUsage,
    pub notes: Vec<String>,
}

impl ConnectionsReport {
    pub fn connect_per_s(&self) -> f64 {
        per_s(self.connected as u64, self.connect_s)
    }

    pub fn failures(&self) -> Vec<String> {
        let mut f = vec![];
        if self.failed > 0 {
            f.push(format!(
                "{} of {} clients could not connect{}",
                self.failed,
                self.requested,
                self.first_error
                    .as_ref()
                    .map_or(String::new(), |e| format!(" (first: {e})"))
            ));
        }
        f
    }

    pub fn human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "midge-bench connections: {} idle MQTT {} clients at {} connections/s, held {:.1} s",
            self.requested, self.protocol, self.rate, self.hold_s
        );
        let _ = writeln!(
            s,
            "  connected    {} in {:.2} s ({:.0} connections/s), {} failed",
            self.connected,
            self.connect_s,
            self.connect_per_s(),
            self.failed
        );
        let l = &self.connect_latency;
        let _ = writeln!(
            s,
            "  CONNACK in   p50 {}  p99 {}  max {}",
            us(l.p50),
            us(l.p99),
            us(l.max)
        );
        if let Some(b) = &self.broker {
            let _ = writeln!(
                s,
                "  broker       pid {}: RSS {} before, {} connected, {} after the hold; {} per \
                 connection; {:.2} s CPU to connect",
                b.pid,
                kib(b.rss_before_kib),
                kib(b.rss_connected_kib),
                kib(b.rss_end_kib),
                b.bytes_per_connection
                    .map_or("-".to_string(), |v| format!("{v:.0} bytes")),
                b.connect_cpu_s
            );
        }
        tool_line(&mut s, &self.tool);
        for n in &self.notes {
            let _ = writeln!(s, "  note: {n}");
        }
        for f in self.failures() {
            let _ = writeln!(s, "  FAILED: {f}");
        }
        s
    }

    pub fn json(&self) -> String {
        let mut j = JsonObject::new();
        j.str("scenario", "connections")
            .str("protocol", self.protocol)
            .u64("requested", self.requested as u64)
            .u64("connected", self.connected as u64)
            .u64("failed", self.failed as u64)
            .f64("rate", self.rate)
            .f64("connect_s", self.connect_s)
            .f64("connect_per_s", self.connect_per_s())
            .f64("hold_s", self.hold_s);
        latency_json(&mut j, "connect_latency_us", &self.connect_latency);
        match &self.broker {
            Some(b) => {
                j.begin("broker")
                    .u64("pid", u64::from(b.pid))
                    .u64("rss_before_kib", b.rss_before_kib)
                    .u64("rss_connected_kib", b.rss_connected_kib)
                    .u64("rss_end_kib", b.rss_end_kib)
                    .opt_f64("bytes_per_connection", b.bytes_per_connection)
                    .f64("connect_cpu_s", b.connect_cpu_s)
                    .end();
            }
            None => {
                j.null("broker");
            }
        }
        tool_json(&mut j, &self.tool);
        j.bool("ok", self.failures().is_empty())
            .strings("failures", &self.failures())
            .strings("notes", &self.notes);
        j.finish()
    }
}

fn latency_json(j: &mut JsonObject, key: &str, l: &Summary) {
    j.begin(key)
        .u64("count", l.count)
        .u64("min", u64::from(l.min))
        .u64("p50", u64::from(l.p50))
        .u64("p90", u64::from(l.p90))
        .u64("p99", u64::from(l.p99))
        .u64("p999", u64::from(l.p999))
        .u64("max", u64::from(l.max))
        .f64("mean", l.mean)
        .end();
}

fn tool_json(j: &mut JsonObject, t: &ToolUsage) {
    j.begin("tool")
        .u64("threads", t.threads as u64)
        .f64("cpu_s", t.cpu_s)
        .f64("cpu_percent", t.cpu_percent)
        .bool("saturated", t.saturated())
        .end();
}

fn tool_line(s: &mut String, t: &ToolUsage) {
    let _ = writeln!(
        s,
        "  tool         {:.2} s CPU ({:.0}% of a core, {} thread(s)){}",
        t.cpu_s,
        t.cpu_percent,
        t.threads,
        if t.saturated() {
            " — the tool was (nearly) saturated: these figures may measure the tool, not the \
             broker"
        } else {
            ""
        }
    );
}

fn per_s_pct(cpu_s: f64, window_s: f64) -> f64 {
    if window_s > 0.0 {
        cpu_s / window_s * 100.0
    } else {
        0.0
    }
}

/// Microseconds in the unit a person reads best.
pub fn us(v: u32) -> String {
    if v >= 10_000_000 {
        format!("{:.1} s", f64::from(v) / 1e6)
    } else if v >= 10_000 {
        format!("{:.1} ms", f64::from(v) / 1e3)
    } else {
        format!("{v} µs")
    }
}

fn kib(v: u64) -> String {
    if v >= 10 * 1024 {
        format!("{:.1} MiB", v as f64 / 1024.0)
    } else {
        format!("{v} KiB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PubSubReport {
        PubSubReport {
            scenario: Scenario::Throughput,
            protocol: "3.1.1",
            qos: 1,
            payload: 16,
            publishers: 1,
            subscribers: 2,
            topics: 1,
            rate: None,
            inflight: 20,
            backlog: 1000,
            backlog_stalls: 0,
            warmup_s: 1.0,
            window_s: 2.0,
            sent: 1000,
            received: 2000,
            sent_total: 1500,
            received_total: 3000,
            expected_total: 3000,
            seq: SeqCounts {
                unique: 3000,
                ..SeqCounts::default()
            },
            lost: 0,
            acked: 1500,
            unacked: 0,
            refused: 0,
            unwritten_bytes: 0,
            latency: Summary::default(),
            loss_examples: vec![],
            drain_s: 0.01,
            drained: true,
            broker: Some(BrokerUsage {
                pid: 42,
                cpu_s: 0.5,
                cpu_us_per_msg: Some(250.0),
                rss_before_kib: 1000,
                rss_after_kib: 2000,
            }),
            tool: ToolUsage {
                threads: 1,
                cpu_s: 1.9,
                cpu_percent: 95.0,
            },
            notes: vec![],
        }
    }

    #[test]
    fn rates_and_verdict() {
        let mut r = sample();
        assert_eq!(r.sent_per_s(), 500.0);
        assert_eq!(r.received_per_s(), 1000.0);
        assert!(r.failures().is_empty());
        assert!(r.tool.saturated());
        let j = r.json();
        assert!(j.contains(r#""lost":0"#), "{j}");
        assert!(j.contains(r#""ok":true"#), "{j}");
        assert!(j.contains(r#""cpu_us_per_msg":250"#), "{j}");
        assert!(r.human().contains("OK"));

        r.lost = 3;
        r.seq.duplicates = 1;
        assert_eq!(r.failures().len(), 2);
        assert!(r.json().contains(r#""ok":false"#));
        assert!(r.human().contains("FAILED: 3 messages lost"));

        // QoS 0 reports loss without failing.
        r.qos = 0;
        assert!(r.failures().is_empty());
    }

    #[test]
    fn connection_failures() {
        let mut r = ConnectionsReport {
            protocol: "5",
            requested: 10,
            connected: 10,
            failed: 0,
            first_error: None,
            rate: 100.0,
            connect_s: 0.5,
            connect_latency: Summary::default(),
            hold_s: 1.0,
            broker: None,
            tool: ToolUsage {
                threads: 1,
                cpu_s: 0.0,
                cpu_percent: 1.0,
            },
            notes: vec![],
        };
        assert_eq!(r.connect_per_s(), 20.0);
        assert!(r.failures().is_empty());
        assert!(r.json().contains(r#""broker":null"#));
        r.failed = 2;
        r.first_error = Some("refused".into());
        assert!(r.failures()[0].contains("first: refused"));
    }

    #[test]
    fn units() {
        assert_eq!(us(999), "999 µs");
        assert_eq!(us(12_345), "12.3 ms");
        assert_eq!(us(12_345_678), "12.3 s");
        assert_eq!(kib(100), "100 KiB");
        assert_eq!(kib(20 * 1024), "20.0 MiB");
    }
}
