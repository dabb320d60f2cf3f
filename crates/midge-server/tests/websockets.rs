//! MQTT over WebSockets (`protocol websockets`): a real WebSocket MQTT client (rumqttc's
//! `websocket` feature) and raw WebSocket clients (tokio-tungstenite).
//!
//! Like Mosquitto, Midge answers the `mqtt` (and legacy `mqttv3.1`) subprotocol and refuses
//! a handshake offering neither.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use rumqttc::QoS;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// A broker from a configuration whose `listener` lines use placeholder ports (0 after
/// parsing); `addrs` are the bound addresses in listener order.
struct Broker {
    addrs: Vec<SocketAddr>,
    handle: midge_server::ServerHandle,
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

async fn start_conf(text: &str) -> Broker {
    let mut config = midge_core::config::parse(text, "test.conf").expect("test config parses");
    for l in &mut config.listeners {
        l.port = 0;
    }
    let server = midge_server::Server::bind(&config)
        .await
        .expect("broker binds");
    let addrs = server.local_addrs();
    let handle = server.handle();
    tokio::spawn(server.run());
    Broker { addrs, handle }
}

/// Listener 0: WebSockets; listener 1: plain MQTT.
async fn ws_and_tcp() -> Broker {
    start_conf(
        "listener 1 127.0.0.1\nprotocol websockets\nallow_anonymous true\n\
         listener 2 127.0.0.1\nallow_anonymous true\n",
    )
    .await
}

fn ws_options(addr: SocketAddr, id: &str) -> rumqttc::MqttOptions {
    let url = format!("ws://{addr}/mqtt");
    let mut o = rumqttc::MqttOptions::new(id, url, addr.port());
    o.set_transport(rumqttc::Transport::Ws);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(1 << 20, 1 << 20);
    o
}

async fn ws_client(addr: SocketAddr, id: &str) -> V4 {
    let (c, ack) = V4::connect(ws_options(addr, id)).await;
    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
    c
}

type RawWs = tokio_tungstenite::WebSocketStream<TcpStream>;

/// A raw WebSocket handshake offering `protocols` (none when empty).
async fn raw_ws(addr: SocketAddr, protocols: &str) -> Result<RawWs, String> {
    let mut req = format!("ws://{addr}/mqtt")
        .into_client_request()
        .expect("request");
    if !protocols.is_empty() {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", protocols.parse().expect("header"));
    }
    let tcp = TcpStream::connect(addr).await.expect("tcp connect");
    let (ws, resp) = timeout(WAIT, tokio_tungstenite::client_async(req, tcp))
        .await
        .expect("handshake answered in time")
        .map_err(|e| e.to_string())?;
    if !protocols.is_empty() {
        let chosen = resp
            .headers()
            .get("Sec-WebSocket-Protocol")
            .expect("a subprotocol is chosen");
        assert!(protocols.contains(chosen.to_str().expect("ascii")));
    }
    Ok(ws)
}

/// The next binary message's bytes, or `None` once the connection is closed.
async fn next_binary(ws: &mut RawWs) -> Option<Vec<u8>> {
    loop {
        match timeout(WAIT, ws.next()).await.expect("answer in time") {
            Some(Ok(Message::Binary(b))) => return Some(b),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

fn connect_v311(id: &str) -> Vec<u8> {
    raw_connect("MQTT", 4, 0x02, 30, None, id, &[])
}

#[tokio::test]
async fn ws_client_subscribes_and_publishes_at_every_qos() {
    let b = ws_and_tcp().await;
    let mut sub = ws_client(b.addrs[0], "ws-sub").await;
    let mut publisher = ws_client(b.addrs[0], "ws-pub").await;
    sub.subscribe("ws/#", QoS::ExactlyOnce).await;
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let payload = format!("payload at {qos:?}");
        publisher
            .publish("ws/t", payload.as_bytes(), qos, false)
            .await;
        let p = sub.next_publish().await;
        assert_eq!(p.topic, "ws/t");
        assert_eq!(&p.payload[..], payload.as_bytes());
        assert_eq!(p.qos, qos);
    }
    // A packet larger than one 64 KiB pump batch crosses intact.
    let big = vec![0x5a; 200_000];
    publisher
        .publish("ws/big", &big, QoS::AtLeastOnce, false)
        .await;
    let p = sub.next_publish().await;
    assert_eq!(p.payload.len(), big.len());
    assert!(p.payload.iter().all(|&b| b == 0x5a));
}

#[tokio::test]
async fn ws_and_tcp_clients_exchange_messages_across_listeners() {
    let b = ws_and_tcp().await;
    let mut ws = ws_client(b.addrs[0], "ws").await;
    let mut tcp = V4::simple(b.addrs[1], "tcp").await;
    ws.subscribe("to/ws", QoS::AtLeastOnce).await;
    tcp.subscribe("to/tcp", QoS::AtLeastOnce).await;
    tcp.publish("to/ws", b"from tcp", QoS::AtLeastOnce, false)
        .await;
    assert_eq!(&ws.next_publish().await.payload[..], b"from tcp");
    ws.publish("to/tcp", b"from ws", QoS::ExactlyOnce, false)
        .await;
    let p = tcp.next_publish().await;
    assert_eq!(&p.payload[..], b"from ws");
    assert_eq!(p.qos, QoS::AtLeastOnce);
}

#[tokio::test]
async fn mqtt_and_mqttv31_subprotocols_are_answered_and_none_is_refused() {
    let b = ws_and_tcp().await;
    for offered in ["mqtt", "mqttv3.1", "chat, mqtt"] {
        let mut ws = raw_ws(b.addrs[0], offered).await.expect("handshake");
        ws.send(Message::Binary(connect_v311(offered)))
            .await
            .expect("send CONNECT");
        assert_eq!(
            next_binary(&mut ws).await.expect("CONNACK"),
            [0x20, 2, 0, 0]
        );
    }
    // Mosquitto only serves MQTT to clients asking for it.
    for offered in ["", "chat"] {
        let r = raw_ws(b.addrs[0], offered).await;
        assert!(r.is_err(), "handshake offering {offered:?} was accepted");
    }
}

#[tokio::test]
async fn mqtt_split_across_and_batched_in_messages_is_reassembled() {
    let b = ws_and_tcp().await;
    let mut ws = raw_ws(b.addrs[0], "mqtt").await.expect("handshake");
    let connect = connect_v311("split");
    let (a, c) = connect.split_at(5);
    ws.send(Message::Binary(a.to_vec())).await.expect("send");
    ws.send(Message::Binary(c.to_vec())).await.expect("send");
    assert_eq!(
        next_binary(&mut ws).await.expect("CONNACK"),
        [0x20, 2, 0, 0]
    );
    // Two PINGREQs in one message, answered by two PINGRESPs.
    ws.send(Message::Binary(vec![0xc0, 0, 0xc0, 0]))
        .await
        .expect("send");
    let mut got = Vec::new();
    while got.len() < 4 {
        got.extend(next_binary(&mut ws).await.expect("PINGRESP"));
    }
    assert_eq!(got, [0xd0, 0, 0xd0, 0]);
    // WebSocket pings are answered too.
    ws.send(Message::Ping(b"hi".to_vec())).await.expect("ping");
    loop {
        match timeout(WAIT, ws.next()).await.expect("pong in time") {
            Some(Ok(Message::Pong(p))) => {
                assert_eq!(p, b"hi");
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("no pong: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_malformed_packet_closes_only_that_connection() {
    let b = ws_and_tcp().await;
    let mut other = ws_client(b.addrs[0], "bystander").await;
    other.subscribe("still/#", QoS::AtLeastOnce).await;
    let mut ws = raw_ws(b.addrs[0], "mqtt").await.expect("handshake");
    ws.send(Message::Binary(connect_v311("bad")))
        .await
        .expect("send");
    assert_eq!(
        next_binary(&mut ws).await.expect("CONNACK"),
        [0x20, 2, 0, 0]
    );
    // Packet type 0 is reserved.
    ws.send(Message::Binary(vec![0x00, 0x00]))
        .await
        .expect("send");
    assert!(
        next_binary(&mut ws).await.is_none(),
        "connection stays open"
    );
    // The other WebSocket client still works.
    let mut publisher = ws_client(b.addrs[0], "pub").await;
    publisher
        .publish("still/here", b"yes", QoS::AtLeastOnce, false)
        .await;
    assert_eq!(&other.next_publish().await.payload[..], b"yes");
}

#[tokio::test]
async fn closing_the_websocket_ends_the_session_and_fires_the_will() {
    let b = ws_and_tcp().await;
    let mut watcher = V4::simple(b.addrs[1], "watcher").await;
    watcher.subscribe("wills/#", QoS::AtLeastOnce).await;
    let mut ws = raw_ws(b.addrs[0], "mqtt").await.expect("handshake");
    // Will flag, will QoS 0: topic "wills/ws", payload "gone".
    let mut tail = str16("wills/ws");
    tail.extend(str16("gone"));
    let connect = raw_connect("MQTT", 4, 0x06, 30, None, "willer", &tail);
    ws.send(Message::Binary(connect)).await.expect("send");
    assert_eq!(
        next_binary(&mut ws).await.expect("CONNACK"),
        [0x20, 2, 0, 0]
    );
    drop(ws);
    let p = watcher.next_publish().await;
    assert_eq!(p.topic, "wills/ws");
    assert_eq!(&p.payload[..], b"gone");
}

#[tokio::test]
async fn a_unix_socket_listener_can_speak_websockets() {
    let dir = TempDir::new();
    let sock = dir.path("ws.sock");
    let b = start_conf(&format!(
        "listener 0 {sock}\nprotocol websockets\nallow_anonymous true\n\
         listener 2 127.0.0.1\nallow_anonymous true\n"
    ))
    .await;
    let mut tcp = V4::simple(b.addrs[0], "tcp").await;
    tcp.subscribe("unix/#", QoS::AtMostOnce).await;
    let unix = tokio::net::UnixStream::connect(&sock)
        .await
        .expect("connect");
    let mut req = "ws://localhost/mqtt"
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "mqtt".parse().expect("header"));
    let (mut ws, _) = timeout(WAIT, tokio_tungstenite::client_async(req, unix))
        .await
        .expect("handshake in time")
        .expect("handshake");
    ws.send(Message::Binary(connect_v311("unix-ws")))
        .await
        .expect("send");
    let connack = loop {
        match timeout(WAIT, ws.next()).await.expect("CONNACK in time") {
            Some(Ok(Message::Binary(b))) => break b,
            Some(Ok(_)) => {}
            other => panic!("no CONNACK: {other:?}"),
        }
    };
    assert_eq!(connack, [0x20, 2, 0, 0]);
    ws.send(Message::Binary(raw_publish(
        0x30, b"unix/t", None, None, b"hi",
    )))
    .await
    .expect("send");
    assert_eq!(&tcp.next_publish().await.payload[..], b"hi");
}

// ---------------------------------------------------------------------------------------
// Secure WebSockets: the listener's TLS options apply beneath the WebSocket handshake.
// ---------------------------------------------------------------------------------------

mod wss {
    use super::*;
    use rcgen::{
        CertificateParams, CertificateRevocationListParams, DnType, KeyIdMethod, KeyPair,
        RevokedCertParams, SanType, SerialNumber,
    };

    use crate::common::certs::{ca, Ca};

    /// (certificate PEM, key PEM)
    fn leaf(ca: &Ca, serial: u64, cn: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        p.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.serial_number = Some(SerialNumber::from(serial));
        let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn crl(ca: &Ca, revoked: u64) -> String {
        CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2020, 1, 1),
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(2u64),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from(revoked),
                revocation_time: rcgen::date_time_ymd(2021, 1, 1),
                reason_code: None,
                invalidity_date: None,
            }],
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&ca.cert, &ca.key)
        .unwrap()
        .pem()
        .unwrap()
    }

    struct Setup {
        _dir: TempDir,
        broker: Broker,
        ca_pem: Vec<u8>,
        good: (String, String),
        revoked: (String, String),
    }

    /// A secure WebSockets listener requiring a client certificate checked against a CRL,
    /// the certificate's CN as the username, and an ACL allowing that user one topic tree.
    async fn setup() -> Setup {
        let dir = TempDir::new();
        let ca = ca("Midge WSS CA");
        let (sc, sk) = leaf(&ca, 2, "localhost");
        let conf = format!(
            "per_listener_settings true\n\
             listener 1 127.0.0.1\nprotocol websockets\n\
             certfile {}\nkeyfile {}\ncafile {}\ncrlfile {}\n\
             require_certificate true\nuse_identity_as_username true\n\
             allow_anonymous false\nacl_file {}\n",
            dir.write("server.crt", &sc),
            dir.write("server.key", &sk),
            dir.write("ca.crt", &ca.cert.pem()),
            dir.write("ca.crl", &crl(&ca, 101)),
            dir.write("acl", "user wss client\ntopic readwrite secure/#\n"),
        );
        let broker = start_conf(&conf).await;
        Setup {
            _dir: dir,
            broker,
            ca_pem: ca.cert.pem().into_bytes(),
            good: leaf(&ca, 100, "wss client"),
            revoked: leaf(&ca, 101, "revoked"),
        }
    }

    fn options(s: &Setup, id: &str, cert: Option<&(String, String)>) -> rumqttc::MqttOptions {
        let addr = s.broker.addrs[0];
        let mut o = rumqttc::MqttOptions::new(id, format!("wss://{addr}/mqtt"), addr.port());
        o.set_keep_alive(Duration::from_secs(30));
        o.set_transport(rumqttc::Transport::Wss(rumqttc::TlsConfiguration::Simple {
            ca: s.ca_pem.clone(),
            alpn: None,
            client_auth: cert.map(|(c, k)| (c.clone().into_bytes(), k.clone().into_bytes())),
        }));
        o
    }

    /// Connects and reports the CONNACK or why the connection failed.
    async fn try_connect(o: rumqttc::MqttOptions) -> Result<(), String> {
        let (_client, mut eventloop) = rumqttc::AsyncClient::new(o, 10);
        let attempt = async {
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(a))) => {
                        return match a.code {
                            rumqttc::ConnectReturnCode::Success => Ok(()),
                            code => Err(format!("CONNACK {code:?}")),
                        }
                    }
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        };
        timeout(WAIT, attempt)
            .await
            .unwrap_or_else(|_| Err("no answer".to_owned()))
    }

    #[tokio::test]
    async fn mutual_tls_websockets_client_exchanges_messages_under_its_acl() {
        let s = setup().await;
        let (mut c, ack) = V4::connect(options(&s, "wss-good", Some(&s.good))).await;
        assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
        c.subscribe("#", QoS::AtLeastOnce).await;
        c.publish("secure/a", b"allowed", QoS::AtLeastOnce, false)
            .await;
        c.publish("elsewhere", b"denied", QoS::AtLeastOnce, false)
            .await;
        let p = c.next_publish().await;
        assert_eq!(
            (p.topic.as_str(), &p.payload[..]),
            ("secure/a", &b"allowed"[..])
        );
        c.expect_no_publish(QUIET).await;
    }

    #[tokio::test]
    async fn secure_websockets_refuse_missing_and_revoked_certificates() {
        let s = setup().await;
        let none = try_connect(options(&s, "wss-none", None)).await;
        assert!(none.is_err(), "no certificate was accepted");
        let revoked = try_connect(options(&s, "wss-revoked", Some(&s.revoked))).await;
        assert!(revoked.is_err(), "a revoked certificate was accepted");
        try_connect(options(&s, "wss-good", Some(&s.good)))
            .await
            .expect("the good certificate connects");
    }
}

/// Sends a raw HTTP request and returns the whole answer (the broker closes after it).
async fn http(addr: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(addr).await.expect("tcp connect");
    tcp.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    timeout(WAIT, tcp.read_to_end(&mut answer))
        .await
        .expect("answered and closed in time")
        .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

#[tokio::test]
async fn http_dir_serves_files_on_the_websockets_port_and_nothing_outside_it() {
    let dir = TempDir::new();
    let www = dir.path("www");
    std::fs::create_dir_all(format!("{www}/js")).expect("mkdir");
    std::fs::write(format!("{www}/index.html"), "<h1>dashboard</h1>").expect("write");
    std::fs::write(format!("{www}/js/app.js"), "console.log(1)").expect("write");
    std::fs::write(dir.path("secret.txt"), "password").expect("write");
    let b = start_conf(&format!(
        "listener 1 127.0.0.1\nprotocol websockets\nhttp_dir {www}\nallow_anonymous true\n"
    ))
    .await;
    let addr = b.addrs[0];

    let index = http(addr, &get("/")).await;
    assert!(index.starts_with("HTTP/1.1 200 OK\r\n"), "{index}");
    assert!(index.contains("Content-Type: text/html"), "{index}");
    assert!(index.contains("Content-Length: 18\r\n"), "{index}");
    assert!(index.ends_with("\r\n\r\n<h1>dashboard</h1>"), "{index}");

    let js = http(addr, &get("/js/app.js?v=2")).await;
    assert!(js.contains("Content-Type: text/javascript"), "{js}");
    assert!(js.ends_with("console.log(1)"), "{js}");

    let head = http(addr, "HEAD /index.html HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"),
        "{head}"
    );

    for (path, status) in [
        ("/missing.html", "404"),
        ("/../secret.txt", "403"),
        ("/%2e%2e/secret.txt", "403"),
        ("/js", "403"),
    ] {
        let answer = http(addr, &get(path)).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{path}: {answer}"
        );
        assert!(
            !answer.contains("password"),
            "{path} leaked a file outside http_dir"
        );
    }
    let post = http(
        addr,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert!(post.starts_with("HTTP/1.1 405 "), "{post}");

    // MQTT over WebSockets still works on the same port.
    let mut c = ws_client(addr, "beside-files").await;
    c.subscribe("files/t", QoS::AtLeastOnce).await;
    c.publish("files/t", b"x", QoS::AtLeastOnce, false).await;
    assert_eq!(&c.next_publish().await.payload[..], b"x");
}

#[tokio::test]
async fn without_http_dir_plain_http_gets_404() {
    let b = ws_and_tcp().await;
    let answer = http(b.addrs[0], &get("/index.html")).await;
    assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
}

#[tokio::test]
async fn a_missing_http_dir_stops_start_up_with_the_line() {
    let text = "listener 1 127.0.0.1\nprotocol websockets\nhttp_dir /nonexistent/midge-www\n";
    let mut config = midge_core::config::parse(text, "test.conf").expect("parses");
    config.listeners[0].port = 0;
    let err = midge_server::Server::bind(&config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.starts_with("test.conf:1: http_dir '/nonexistent/midge-www': "),
        "{err}"
    );
}

/// A WebSocket handshake offering `mqtt`, with `origin` when given.
async fn ws_with_origin(addr: SocketAddr, origin: Option<&str>) -> Result<RawWs, String> {
    let mut req = format!("ws://{addr}/mqtt")
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "mqtt".parse().expect("header"));
    if let Some(origin) = origin {
        req.headers_mut()
            .insert("Origin", origin.parse().expect("header"));
    }
    let tcp = TcpStream::connect(addr).await.expect("tcp connect");
    timeout(WAIT, tokio_tungstenite::client_async(req, tcp))
        .await
        .expect("handshake answered in time")
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn websockets_origin_admits_only_the_listed_origins() {
    let b = start_conf(
        "listener 1 127.0.0.1\nprotocol websockets\nallow_anonymous true\n\
         websockets_origin https://dashboard.example\n\
         websockets_origin http://localhost:8080\n",
    )
    .await;
    let addr = b.addrs[0];
    for origin in ["https://dashboard.example", "http://localhost:8080"] {
        let mut ws = ws_with_origin(addr, Some(origin))
            .await
            .unwrap_or_else(|e| panic!("{origin} refused: {e}"));
        ws.send(Message::Binary(connect_v311("origin-ok")))
            .await
            .expect("send");
        assert_eq!(next_binary(&mut ws).await, Some(vec![0x20, 2, 0, 0]));
    }
    for origin in [Some("https://evil.example"), None] {
        let err = ws_with_origin(addr, origin)
            .await
            .err()
            .unwrap_or_else(|| panic!("{origin:?} was admitted"));
        assert!(err.contains("403"), "{origin:?}: {err}");
    }
}

#[tokio::test]
async fn without_websockets_origin_any_origin_is_admitted() {
    let b = ws_and_tcp().await;
    let mut ws = ws_with_origin(b.addrs[0], Some("https://anywhere.example"))
        .await
        .expect("admitted");
    ws.send(Message::Binary(connect_v311("any-origin")))
        .await
        .expect("send");
    assert_eq!(next_binary(&mut ws).await, Some(vec![0x20, 2, 0, 0]));
}
