//! The command line, and the options a run uses once every default that depends on the
//! scenario has been filled in and every bound checked.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use midge_proto::ProtocolVersion;

use crate::error::BenchError;
use crate::payload::HEADER_LEN;

/// Longest run the tool agrees to: warm-up plus measured window, and the hold of a
/// `connections` run. Every loop of the tool is bounded by these and by the drain limits.
pub const MAX_RUN: Duration = Duration::from_secs(600);
/// Largest payload: big enough for any sensible benchmark, small enough that a buffer of a
/// few packets never becomes a memory problem.
pub const MAX_PAYLOAD: usize = 16 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// P publishers, S subscribers, T topics; rates, latency, loss and duplicates.
    Throughput,
    /// One publisher, N subscribers on one topic.
    Fanout,
    /// N publishers on `fanin/<i>`, one subscriber on `fanin/+`.
    Fanin,
    /// One publisher at a fixed rate, one subscriber; latency percentiles.
    Latency,
    /// N idle clients opened at a fixed rate and held; connect rate and broker memory.
    Connections,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Throughput => "throughput",
            Scenario::Fanout => "fanout",
            Scenario::Fanin => "fanin",
            Scenario::Latency => "latency",
            Scenario::Connections => "connections",
        }
    }
}

/// Drives an MQTT broker over TCP and measures it. See crates/midge-bench/README.md.
#[derive(Parser, Debug)]
#[command(name = "midge-bench", version, about)]
pub struct Cli {
    /// What to measure.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Broker host. Only loopback addresses unless --allow-remote is given.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 1883)]
    pub port: u16,
    /// Allow a host that is not a loopback address (you must own the broker there).
    #[arg(long)]
    pub allow_remote: bool,
    /// MQTT version: 3.1.1 or 5.
    #[arg(long, default_value = "3.1.1", value_parser = parse_protocol)]
    pub protocol: ProtocolVersion,
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Payload size in bytes (at least 16: publisher id, sequence number, send time).
    #[arg(long, default_value_t = HEADER_LEN)]
    pub payload: usize,
    /// Measured window in seconds, after the warm-up [default: 10].
    #[arg(long)]
    pub duration: Option<f64>,
    /// Messages per publisher, warm-up included; the run ends at whichever bound comes first.
    #[arg(long)]
    pub count: Option<u64>,
    /// Seconds of publishing before the measured window [default: 1, or 0 with --count].
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Also print the result as one JSON line (the last line of the output).
    #[arg(long)]
    pub json: bool,
    /// Broker process to read CPU time and RSS of, from /proc.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// QoS 1/2 messages a publisher keeps unacknowledged (Mosquitto's max_inflight_messages).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..))]
    pub inflight: u16,
    /// Most messages published but not yet received by every subscriber; publishers wait
    /// beyond it (0 = no limit: overload the broker). Keep it at or below the broker's
    /// max_queued_messages (1000 by default) or the broker drops what exceeds its queue.
    #[arg(long, default_value_t = 1000)]
    pub backlog: u64,
    /// Messages per second over all publishers (latency: default 10000; others: as fast as the
    /// broker takes them), or connections per second (connections: default 1000).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Topics for throughput [default: 1].
    #[arg(long)]
    pub topics: Option<usize>,
    /// Publishers (throughput: default 1; fanin: default 100).
    #[arg(long)]
    pub publishers: Option<usize>,
    /// Subscribers (throughput: default 1; fanout: default 100).
    #[arg(long)]
    pub subscribers: Option<usize>,
    /// Idle clients for connections.
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Seconds the idle clients are held open (connections).
    #[arg(long, default_value_t = 5.0)]
    pub hold: f64,
    /// Runtime threads for the tool itself (1 = everything on one core, for `taskset -c`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: u16,
    /// After publishing stops, how long without any new message before giving up on the rest.
    #[arg(long, default_value_t = 1.0)]
    pub drain: f64,
    /// First topic level [default: the scenario's name, "bench" for throughput].
    #[arg(long)]
    pub topic_prefix: Option<String>,
    /// Subscribers open persistent sessions (3.1.1: clean session 0; 5: clean start 0 and
    /// session expiry 300 s), so a broker with persistence stores every delivery.
    #[arg(long)]
    pub persistent_subscribers: bool,
}

fn parse_protocol(s: &str) -> Result<ProtocolVersion, String> {
    match s {
        "3.1.1" | "311" | "4" => Ok(ProtocolVersion::V311),
        "5" | "5.0" => Ok(ProtocolVersion::V5),
        _ => Err(format!("unknown protocol {s:?}: use 3.1.1 or 5")),
    }
}

/// A run's options with every default resolved and every bound checked.
#[derive(Clone, Debug)]
pub struct Options {
    pub scenario: Scenario,
    pub host: String,
    pub port: u16,
    pub allow_remote: bool,
    pub protocol: ProtocolVersion,
    pub qos: u8,
    pub payload: usize,
    pub duration: Duration,
    pub count: Option<u64>,
    pub warmup: Duration,
    pub json: bool,
    pub broker_pid: Option<u32>,
    pub inflight: u16,
    /// End-to-end flow control limit (see `engine::backlog`); 0 = none.
    pub backlog: u64,
    /// Total messages/s, or connections/s; None = unpaced.
    pub rate: Option<f64>,
    pub topics: usize,
    pub publishers: usize,
    pub subscribers: usize,
    pub clients: usize,
    pub hold: Duration,
    pub threads: usize,
    pub drain: Duration,
    pub topic_prefix: String,
    pub persistent_subscribers: bool,
}

fn secs(what: &str, v: f64) -> Result<Duration, BenchError> {
    if !v.is_finite() || v < 0.0 {
        return Err(BenchError::new(format!(
            "--{what} must be a number of seconds ≥ 0"
        )));
    }
    if v > MAX_RUN.as_secs_f64() {
        return Err(BenchError::new(format!(
            "--{what} {v} is over the limit of {} s",
            MAX_RUN.as_secs()
        )));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Refuses an option that the scenario fixes.
fn fixed(
    scenario: Scenario,
    what: &str,
    given: Option<usize>,
    value: usize,
) -> Result<usize, BenchError> {
    match given {
        Some(v) if v != value => Err(BenchError::new(format!(
            "{} uses {value} {what}; --{what} cannot change that",
            scenario.name()
        ))),
        _ => Ok(value),
    }
}

impl Options {
    /// Parses a full command line (program name first). Usage errors come back as clap's
    /// error so the binary can print them the usual way.
    pub fn from_args<I, T>(args: I) -> Result<Options, OptionsError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args).map_err(OptionsError::Usage)?;
        Options::from_cli(cli).map_err(OptionsError::Invalid)
    }

    pub fn from_cli(cli: Cli) -> Result<Options, BenchError> {
        let s = cli.scenario;
        if cli.payload < HEADER_LEN || cli.payload > MAX_PAYLOAD {
            return Err(BenchError::new(format!(
                "--payload must be {HEADER_LEN}..={MAX_PAYLOAD} bytes (the first {HEADER_LEN} \
                 carry publisher id, sequence number and send time)"
            )));
        }
        let duration = secs("duration", cli.duration.unwrap_or(10.0))?;
        let warmup = secs(
            "warmup",
            cli.warmup
                .unwrap_or(if cli.count.is_some() { 0.0 } else { 1.0 }),
        )?;
        if duration + warmup > MAX_RUN {
            return Err(BenchError::new(format!(
                "--warmup plus --duration is over the limit of {} s",
                MAX_RUN.as_secs()
            )));
        }
        if duration.is_zero() && s != Scenario::Connections {
            return Err(BenchError::new("--duration must be above 0"));
        }
        if cli.count == Some(0) {
            return Err(BenchError::new("--count must be at least 1"));
        }
        let (publishers, subscribers, topics) = match s {
            Scenario::Throughput => (
                cli.publishers.unwrap_or(1),
                cli.subscribers.unwrap_or(1),
                cli.topics.unwrap_or(1),
            ),
            Scenario::Fanout => (
                fixed(s, "publishers", cli.publishers, 1)?,
                cli.subscribers.unwrap_or(100),
                fixed(s, "topics", cli.topics, 1)?,
            ),
            Scenario::Fanin => {
                let p = cli.publishers.unwrap_or(100);
                (
                    p,
                    fixed(s, "subscribers", cli.subscribers, 1)?,
                    fixed(s, "topics", cli.topics, p)?,
                )
            }
            Scenario::Latency => (
                fixed(s, "publishers", cli.publishers, 1)?,
                fixed(s, "subscribers", cli.subscribers, 1)?,
                fixed(s, "topics", cli.topics, 1)?,
            ),
            Scenario::Connections => (0, 0, 0),
        };
        if s != Scenario::Connections && (publishers == 0 || subscribers == 0 || topics == 0) {
            return Err(BenchError::new(
                "--publishers, --subscribers and --topics must be at least 1",
            ));
        }
        let rate = match (s, cli.rate) {
            (_, Some(r)) if !r.is_finite() || r <= 0.0 => {
                return Err(BenchError::new("--rate must be above 0"));
            }
            (_, Some(r)) => Some(r),
            (Scenario::Latency, None) => Some(10_000.0),
            (Scenario::Connections, None) => Some(1000.0),
            (_, None) => None,
        };
        if s == Scenario::Connections && cli.clients == 0 {
            return Err(BenchError::new("--clients must be at least 1"));
        }
        let hold = secs("hold", cli.hold)?;
        let drain = secs("drain", cli.drain)?;
        let topic_prefix = cli.topic_prefix.unwrap_or_else(|| {
            match s {
                Scenario::Throughput => "bench",
                other => other.name(),
            }
            .to_string()
        });
        if topic_prefix.is_empty() || topic_prefix.contains(['+', '#', '\0']) {
            return Err(BenchError::new(
                "--topic-prefix must be a non-empty topic without wildcards",
            ));
        }
        Ok(Options {
            scenario: s,
            host: cli.host,
            port: cli.port,
            allow_remote: cli.allow_remote,
            protocol: cli.protocol,
            qos: cli.qos,
            payload: cli.payload,
            duration,
            count: cli.count,
            warmup,
            json: cli.json,
            broker_pid: cli.broker_pid,
            inflight: cli.inflight,
            backlog: cli.backlog,
            rate,
            topics,
            publishers,
            subscribers,
            clients: cli.clients,
            hold,
            threads: usize::from(cli.threads),
            drain,
            topic_prefix,
            persistent_subscribers: cli.persistent_subscribers,
        })
    }

    /// The broker's address. Every address the host resolves to must be a loopback one unless
    /// --allow-remote was given: the tool floods whatever it points at.
    pub fn target(&self) -> Result<SocketAddr, BenchError> {
        resolve_target(&self.host, self.port, self.allow_remote)
    }

    pub fn protocol_name(&self) -> &'static str {
        protocol_name(self.protocol)
    }
}

pub fn protocol_name(p: ProtocolVersion) -> &'static str {
    match p {
        ProtocolVersion::V31 => "3.1",
        ProtocolVersion::V311 => "3.1.1",
        ProtocolVersion::V5 => "5",
    }
}

#[derive(Debug)]
pub enum OptionsError {
    /// Bad command line syntax (clap prints and exits with its usual code).
    Usage(clap::Error),
    /// Valid syntax, values out of bounds or contradicting the scenario.
    Invalid(BenchError),
}

pub fn resolve_target(host: &str, port: u16, allow_remote: bool) -> Result<SocketAddr, BenchError> {
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => (host, port)
            .to_socket_addrs()
            .map_err(|e| BenchError::new(format!("cannot resolve host {host:?}: {e}")))?
            .collect(),
    };
    let Some(&first) = addrs.first() else {
        return Err(BenchError::new(format!("host {host:?} has no address")));
    };
    if !allow_remote {
        if let Some(a) = addrs.iter().find(|a| !a.ip().is_loopback()) {
            return Err(BenchError::new(format!(
                "refusing to load {host} ({}): not a loopback address. Pass --allow-remote \
                 to benchmark a broker you run on another machine",
                a.ip()
            )));
        }
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Result<Options, String> {
        let mut v = vec!["midge-bench"];
        v.extend_from_slice(args);
        Options::from_args(v).map_err(|e| match e {
            OptionsError::Usage(e) => e.to_string(),
            OptionsError::Invalid(e) => e.to_string(),
        })
    }

    #[test]
    fn defaults() {
        let o = opts(&["throughput"]).unwrap();
        assert_eq!((o.publishers, o.subscribers, o.topics), (1, 1, 1));
        assert_eq!(o.qos, 0);
        assert_eq!(o.payload, 16);
        assert_eq!(o.duration, Duration::from_secs(10));
        assert_eq!(o.warmup, Duration::from_secs(1));
        assert_eq!(o.inflight, 20);
        assert_eq!(o.backlog, 1000);
        assert_eq!(o.rate, None);
        assert_eq!(o.protocol, ProtocolVersion::V311);
        assert_eq!(o.topic_prefix, "bench");
        assert_eq!(o.threads, 1);

        let o = opts(&["latency"]).unwrap();
        assert_eq!(o.rate, Some(10_000.0));
        let o = opts(&["fanout"]).unwrap();
        assert_eq!((o.publishers, o.subscribers), (1, 100));
        let o = opts(&["fanin", "--publishers", "10"]).unwrap();
        assert_eq!((o.publishers, o.subscribers, o.topics), (10, 1, 10));
        assert_eq!(o.topic_prefix, "fanin");
        let o = opts(&["connections"]).unwrap();
        assert_eq!((o.clients, o.rate), (1000, Some(1000.0)));
        // --count alone means no warm-up, so a short counted run still has a window.
        let o = opts(&["throughput", "--count", "10"]).unwrap();
        assert_eq!(o.warmup, Duration::ZERO);
    }

    #[test]
    fn bounds() {
        assert!(opts(&["throughput", "--payload", "15"]).is_err());
        assert!(opts(&["throughput", "--qos", "3"]).is_err());
        assert!(opts(&["throughput", "--duration", "601"]).is_err());
        assert!(opts(&["throughput", "--duration", "599", "--warmup", "2"]).is_err());
        assert!(opts(&["throughput", "--duration", "0"]).is_err());
        assert!(opts(&["throughput", "--count", "0"]).is_err());
        assert!(opts(&["throughput", "--inflight", "0"]).is_err());
        assert!(opts(&["throughput", "--rate", "0"]).is_err());
        assert!(opts(&["throughput", "--protocol", "3.1"]).is_err());
        assert!(opts(&["throughput", "--topic-prefix", "a/#"]).is_err());
        assert!(opts(&["connections", "--hold", "700"]).is_err());
        assert!(opts(&["fanout", "--publishers", "2"]).is_err());
        assert!(opts(&["fanin", "--subscribers", "2"]).is_err());
        assert!(opts(&["latency", "--subscribers", "2"]).is_err());
        assert!(opts(&["fanout", "--publishers", "1"]).is_ok());
        assert_eq!(
            opts(&["throughput", "--protocol", "5"]).unwrap().protocol,
            ProtocolVersion::V5
        );
    }

    #[test]
    fn only_loopback_without_allow_remote() {
        // IP literals only: nothing here is resolved or contacted.
        assert!(resolve_target("127.0.0.1", 1, false).is_ok());
        assert!(resolve_target("127.4.5.6", 1, false).is_ok());
        assert!(resolve_target("::1", 1, false).is_ok());
        let e = resolve_target("10.0.0.1", 1, false).unwrap_err();
        assert!(e.to_string().contains("--allow-remote"), "{e}");
        assert!(resolve_target("192.168.1.1", 1, false).is_err());
        assert_eq!(
            resolve_target("10.0.0.1", 1883, true).unwrap(),
            "10.0.0.1:1883".parse().unwrap()
        );
    }
}
