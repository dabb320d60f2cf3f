//! `protocol http_api` listeners: `/api/v1/systree`, `/api/v1/listeners`, `/api/v1/version`
//! and `/metrics` (parsed as Prometheus would), with and without credentials. MQTT traffic
//! comes from rumqttc clients; HTTP requests are written by hand on a TCP socket.

mod common;

use std::net::SocketAddr;

use common::*;
use rumqttc::QoS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// alice / s3cret (`$7$`, from the compatibility reference's test vectors).
const ALICE: &str = "alice:$7$101$fmqt2++sRIF8iKr1$fN5FkA4yxCoA6HLir0QnVVwDYlNq/JL6oacva5ZcLKtCGLWJreky3N6/BeFymhCsv1jLDHMhimqi+u+ZP95Haw==";

struct Broker {
    mqtt: SocketAddr,
    http: SocketAddr,
    handle: midge_server::ServerHandle,
    _dir: TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// An MQTT listener, then an `http_api` listener with `http` options.
async fn start(http: &str) -> Broker {
    let dir = TempDir::new();
    let passwords = dir.write("passwords", &format!("{ALICE}\n"));
    let text = format!(
        "per_listener_settings true\nsys_interval 1\n\
         listener 1 127.0.0.1\nallow_anonymous true\n\
         listener 2 127.0.0.1\nprotocol http_api\n{}\n",
        http.replace("PASSWORDS", &passwords)
    );
    let mut config = midge_core::config::parse(&text, "test.conf").expect("config parses");
    for l in &mut config.listeners {
        l.port = 0;
    }
    let server = midge_server::Server::bind(&config).await.expect("binds");
    let addrs = server.local_addrs();
    let handle = server.handle();
    tokio::spawn(server.run());
    Broker {
        mqtt: addrs[0],
        http: addrs[1],
        handle,
        _dir: dir,
    }
}

/// Status code, headers and body of one request.
async fn request(addr: SocketAddr, method: &str, path: &str, extra: &str) -> (u16, String, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n");
    tcp.write_all(req.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer))
        .await
        .expect("answered in time")
        .expect("read");
    let answer = String::from_utf8(answer).expect("utf-8");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
    let status = head[9..12].parse().expect("status");
    (status, head.to_owned(), body.to_owned())
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = request(addr, "GET", path, "").await;
    (status, body)
}

fn metric(scrape: &prometheus_parse::Scrape, name: &str) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name)
        .unwrap_or_else(|| panic!("no {name} in the scrape"));
    match sample.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{name}: {other:?}"),
    }
}

async fn scrape(addr: SocketAddr) -> prometheus_parse::Scrape {
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("Prometheus text format")
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_agree_with_sys() {
    let b = start("allow_anonymous true").await;
    let mut sub = V4::simple(b.mqtt, "sub").await;
    sub.subscribe("m/#", QoS::AtLeastOnce).await;
    let mut publ = V4::simple(b.mqtt, "pub").await;
    for _ in 0..3 {
        publ.publish("m/1", b"abcd", QoS::AtLeastOnce, false).await;
    }
    for _ in 0..3 {
        sub.next_publish().await;
    }
    let s = scrape(b.http).await;
    assert_eq!(metric(&s, "midge_clients_connected"), 2.0);
    assert_eq!(metric(&s, "midge_publish_received_total"), 3.0);
    assert_eq!(metric(&s, "midge_publish_bytes_received_total"), 12.0);
    assert_eq!(metric(&s, "midge_subscriptions"), 1.0);
    assert!(metric(&s, "midge_publish_sent_total") >= 3.0);
    assert_eq!(metric(&s, "midge_auth_failures_total"), 0.0);

    // The systree route reports the same counters, under Mosquitto's topic names.
    let (status, body) = get(b.http, "/api/v1/systree").await;
    assert_eq!(status, 200);
    let tree: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(tree["$SYS/broker/publish/messages/received"], 3);
    assert_eq!(tree["$SYS/broker/clients/connected"], 2);
    assert_eq!(tree["$SYS/broker/subscriptions/count"], 1);
    assert!(tree["$SYS/broker/uptime"]
        .as_str()
        .is_some_and(|u| u.ends_with(" seconds")));

    drop(sub);
    drop(publ);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = scrape(b.http).await;
        if metric(&s, "midge_clients_connected") == 0.0 {
            assert_eq!(metric(&s, "midge_clients_maximum"), 2.0);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "clients never left");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn listeners_and_version_routes() {
    let b = start("allow_anonymous true").await;
    let (status, body) = get(b.http, "/api/v1/listeners").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let list = v["listeners"].as_array().expect("a list");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["port"], b.mqtt.port());
    assert_eq!(list[0]["protocol"], "mqtt");
    assert_eq!(list[0]["bind-address"], "127.0.0.1");
    assert_eq!(list[0]["tls"], false);
    assert_eq!(list[1]["port"], b.http.port());
    assert_eq!(list[1]["protocol"], "http_api");

    let (status, body) = get(b.http, "/api/v1/version").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["name"], "midge");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));

    assert_eq!(get(b.http, "/nowhere").await.0, 404);
    let (status, head, _) = request(b.http, "POST", "/metrics", "Content-Length: 0\r\n").await;
    assert_eq!(status, 405);
    assert!(
        head.to_ascii_lowercase().contains("allow: get, head"),
        "{head}"
    );
}

#[tokio::test]
async fn credentials_are_required_when_the_listener_says_so() {
    let b = start("allow_anonymous false\npassword_file PASSWORDS").await;
    let (status, head, _) = request(b.http, "GET", "/metrics", "").await;
    assert_eq!(status, 401);
    assert!(head.contains("WWW-Authenticate: Basic") || head.contains("www-authenticate: Basic"));
    // alice:wrong, then alice:s3cret (base64 of "user:password").
    let wrong = "Authorization: Basic YWxpY2U6d3Jvbmc=\r\n";
    assert_eq!(request(b.http, "GET", "/metrics", wrong).await.0, 401);
    let nobody = "Authorization: Basic bm9ib2R5OnMzY3JldA==\r\n";
    assert_eq!(request(b.http, "GET", "/metrics", nobody).await.0, 401);
    let right = "Authorization: Basic YWxpY2U6czNjcmV0\r\n";
    let (status, _, body) = request(b.http, "GET", "/api/v1/systree", right).await;
    assert_eq!(status, 200, "{body}");
    // The MQTT listener's own settings are untouched: anonymous clients still connect.
    V4::simple(b.mqtt, "anon").await;
}
