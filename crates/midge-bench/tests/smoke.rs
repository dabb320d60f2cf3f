//! End-to-end smoke runs of every scenario against a Midge broker started in this process,
//! with small counts so the whole file takes a few seconds. They check that the tool works
//! and verifies what it should (nothing lost at QoS 1/2 against a correct broker), never how
//! fast anything is.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::OnceLock;

use midge_bench::report::{ConnectionsReport, PubSubReport};
use midge_bench::{Options, Report};

/// One broker for the whole file, on its own thread and runtime (as a real broker would be
/// a separate process), listening on an ephemeral loopback port.
fn broker() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("broker runtime");
            rt.block_on(async move {
                // The listener comes from the configuration text (then gets port 0, which the
                // parser rightly refuses) rather than a struct literal, so this test keeps
                // compiling as listeners gain options.
                let mut config = midge_core::config::parse(
                    "allow_anonymous true\nlistener 1 127.0.0.1\n",
                    "bench.conf",
                )
                .unwrap();
                config.listeners.last_mut().expect("one listener").port = 0;
                let server = midge_server::Server::bind(&config).await.unwrap();
                tx.send(server.local_addrs()[0]).unwrap();
                server.run().await;
            });
        });
        rx.recv().expect("broker started")
    })
}

/// Runs the tool in-process against the test broker. `prefix` keeps the topics of tests
/// that run at the same time apart.
fn bench(prefix: &str, args: &[&str]) -> Report {
    let addr = broker();
    let port = addr.port().to_string();
    let mut argv = vec!["midge-bench"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--port", &port]);
    if !args.contains(&"connections") {
        argv.extend_from_slice(&["--topic-prefix", prefix]);
    }
    let options = match Options::from_args(&argv) {
        Ok(o) => o,
        Err(e) => panic!("{argv:?}: {e:?}"),
    };
    let rt = midge_bench::runtime(1).unwrap();
    match rt.block_on(midge_bench::run(&options)) {
        Ok(r) => r,
        Err(e) => panic!("{argv:?}: {e}"),
    }
}

fn pubsub(r: Report) -> PubSubReport {
    match r {
        Report::PubSub(r) => r,
        Report::Connections(_) => panic!("not a pub/sub report"),
    }
}

/// What must hold for every pub/sub run with QoS ≥ 1 against a correct broker.
fn assert_lossless(r: &PubSubReport, sent: u64) {
    let text = r.human();
    assert_eq!(r.sent_total, sent, "{text}");
    assert_eq!(r.expected_total, sent * r.subscribers as u64, "{text}");
    assert_eq!(r.received_total, r.expected_total, "{text}");
    assert_eq!(r.lost, 0, "{text}");
    assert_eq!(r.seq.duplicates, 0, "{text}");
    assert_eq!(r.seq.unverifiable, 0, "{text}");
    assert_eq!(r.seq.foreign, 0, "{text}");
    assert_eq!(r.unacked, 0, "{text}");
    assert_eq!(r.acked, sent, "{text}");
    assert!(r.drained, "{text}");
    assert!(r.failures().is_empty(), "{text}");
    assert!(r.latency.count > 0, "{text}");
    assert!(
        r.latency.p50 <= r.latency.p99 && r.latency.p99 <= r.latency.max,
        "{text}"
    );
    let json = Report::PubSub(r.clone()).json();
    assert!(json.contains(r#""lost":0,"duplicates":0"#), "{json}");
    assert!(json.contains(r#""ok":true"#), "{json}");
}

#[test]
fn throughput_qos0() {
    let r = pubsub(bench(
        "smoke-q0",
        &[
            "throughput",
            "--qos",
            "0",
            "--publishers",
            "2",
            "--subscribers",
            "2",
            "--topics",
            "2",
            "--count",
            "400",
            "--duration",
            "1",
            // Flat out, no end-to-end flow control: the overload path.
            "--backlog",
            "0",
        ],
    ));
    let text = r.human();
    assert_eq!(r.backlog, 0, "{text}");
    assert_eq!(r.sent_total, 800, "{text}");
    // QoS 0 may lose, never invent or repeat.
    assert!(r.received_total > 0 && r.received_total <= 1600, "{text}");
    assert_eq!(r.received_total, r.expected_total - r.lost, "{text}");
    assert_eq!(r.seq.duplicates, 0, "{text}");
    assert!(r.failures().is_empty(), "QoS 0 never fails: {text}");
}

#[test]
fn throughput_paced_qos0() {
    let r = pubsub(bench(
        "smoke-paced",
        &[
            "throughput",
            "--qos",
            "0",
            "--rate",
            "2000",
            "--warmup",
            "0",
            "--duration",
            "0.5",
        ],
    ));
    let text = r.human();
    let expected = 2000.0 * r.window_s;
    assert!(
        (r.sent_total as f64 - expected).abs() <= expected * 0.1 + 20.0,
        "paced publisher sent {} in {:.3} s: {text}",
        r.sent_total,
        r.window_s
    );
    assert_eq!(r.seq.duplicates, 0, "{text}");
    assert!(r.latency.count > 0, "{text}");
}

#[test]
fn throughput_qos1_with_broker_stats() {
    // The broker runs in this process, so this process is the one to read from /proc.
    let pid = std::process::id().to_string();
    let r = pubsub(bench(
        "smoke-q1",
        &[
            "throughput",
            "--qos",
            "1",
            "--publishers",
            "2",
            "--subscribers",
            "2",
            "--count",
            "400",
            "--duration",
            "1",
            "--broker-pid",
            &pid,
        ],
    ));
    assert_lossless(&r, 800);
    let b = r.broker.as_ref().expect("broker usage");
    assert!(b.rss_before_kib > 0 && b.rss_after_kib > 0);
    assert!(b.cpu_s >= 0.0);
}

#[test]
fn throughput_qos2_mqtt5() {
    let r = pubsub(bench(
        "smoke-q2",
        &[
            "throughput",
            "--qos",
            "2",
            "--protocol",
            "5",
            "--publishers",
            "2",
            "--subscribers",
            "2",
            "--count",
            "300",
            "--payload",
            "100",
            "--duration",
            "1",
        ],
    ));
    assert_lossless(&r, 600);
}

#[test]
fn fanout_1_to_10() {
    let r = pubsub(bench(
        "smoke-fanout",
        &[
            "fanout",
            "--qos",
            "1",
            "--subscribers",
            "10",
            "--count",
            "500",
            "--duration",
            "1",
        ],
    ));
    assert_eq!((r.publishers, r.subscribers), (1, 10));
    assert_lossless(&r, 500);
}

#[test]
fn fanin_10_to_1() {
    let r = pubsub(bench(
        "smoke-fanin",
        &[
            "fanin",
            "--qos",
            "1",
            "--publishers",
            "10",
            "--count",
            "100",
            "--duration",
            "1",
        ],
    ));
    assert_eq!((r.publishers, r.subscribers, r.topics), (10, 1, 10));
    assert_lossless(&r, 1000);
}

#[test]
fn latency_at_1000_per_second() {
    let r = pubsub(bench(
        "smoke-latency",
        &[
            "latency",
            "--qos",
            "1",
            "--rate",
            "1000",
            "--warmup",
            "0",
            "--duration",
            "1",
        ],
    ));
    let text = r.human();
    // Paced: 1000 per second of window (no warm-up), whatever the machine; the window may
    // run a little long on a busy one, so compare with its real length.
    let expected = 1000.0 * r.window_s;
    assert!(
        (r.sent_total as f64 - expected).abs() <= expected * 0.1 + 20.0,
        "paced publisher sent {} in {:.3} s: {text}",
        r.sent_total,
        r.window_s
    );
    assert_lossless(&r, r.sent_total);
    assert_eq!(r.latency.count, r.sent_total, "{text}");
}

#[test]
fn connections_50() {
    let pid = std::process::id().to_string();
    let r = match bench(
        "",
        &[
            "connections",
            "--clients",
            "50",
            "--rate",
            "500",
            "--hold",
            "0.2",
            "--broker-pid",
            &pid,
        ],
    ) {
        Report::Connections(r) => r,
        Report::PubSub(_) => panic!("not a connections report"),
    };
    check_connections(&r);
}

fn check_connections(r: &ConnectionsReport) {
    let text = r.human();
    assert_eq!((r.connected, r.failed), (50, 0), "{text}");
    assert!(r.connect_s > 0.0 && r.connect_per_s() > 0.0, "{text}");
    assert_eq!(r.connect_latency.count, 50, "{text}");
    let b = r.broker.as_ref().expect("broker memory");
    assert!(b.rss_before_kib > 0 && b.rss_end_kib > 0, "{text}");
    assert!(b.bytes_per_connection.is_some(), "{text}");
    assert!(r.failures().is_empty(), "{text}");
}

#[test]
fn no_broker_is_a_clear_error() {
    // A port nobody listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let o = Options::from_args(["midge-bench", "throughput", "--port", &port]).unwrap();
    let rt = midge_bench::runtime(1).unwrap();
    let e = rt.block_on(midge_bench::run(&o)).unwrap_err();
    assert!(e.to_string().contains("cannot connect"), "{e}");
}

#[test]
fn binary_prints_summary_and_json() {
    let addr = broker();
    let out = Command::new(env!("CARGO_BIN_EXE_midge-bench"))
        .args(["throughput", "--qos", "1", "--count", "200", "--json"])
        .args(["--port", &addr.port().to_string()])
        .args(["--topic-prefix", "smoke-bin"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("midge-bench throughput:"), "{stdout}");
    let json = stdout.lines().last().unwrap();
    assert!(json.starts_with('{') && json.ends_with('}'), "{json}");
    for field in [
        r#""scenario":"throughput""#,
        r#""sent_total":200"#,
        r#""expected_total":200"#,
        r#""received_total":200"#,
        r#""lost":0"#,
        r#""duplicates":0"#,
        r#""ok":true"#,
    ] {
        assert!(json.contains(field), "{field} in {json}");
    }
}

#[test]
fn binary_refuses_bad_options() {
    let out = Command::new(env!("CARGO_BIN_EXE_midge-bench"))
        .args(["throughput", "--payload", "8"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--payload"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_midge-bench"))
        .args(["throughput", "--host", "192.0.2.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--allow-remote"), "{stderr}");
}
