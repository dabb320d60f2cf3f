//! Shared helpers for Midge's integration tests: an in-process broker on `127.0.0.1:0`, a
//! raw-byte MQTT client that asserts exact answers, and thin rumqttc (v4 and v5) wrappers.
//!
//! Every wait is bounded: reads give up after [`WAIT`] and fail the test with what was
//! expected, so a broker that hangs makes a test fail, never stall.
#![allow(dead_code)]

/// Test certificate authorities.
pub mod certs;
/// A fake remote broker for bridge tests.
pub mod peer;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use midge_core::config::Config;
use midge_proto::{
    decode_packet, encode_packet, ConnAck, Connect, Packet, Properties, ProtocolVersion, PubResp,
    Publish, QoS, Sender, SubAck, Subscribe, SubscribeFilter, SubscriptionOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// How long any single expected answer may take.
pub const WAIT: Duration = Duration::from_secs(2);
/// How long to listen for something that must NOT arrive.
pub const QUIET: Duration = Duration::from_millis(400);

// ---------------------------------------------------------------------------------------
// The broker
// ---------------------------------------------------------------------------------------

/// A broker running in this test's runtime; shut down when dropped.
pub struct TestBroker {
    pub addr: SocketAddr,
    shutdown: midge_server::ShutdownHandle,
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.shutdown.shutdown();
    }
}

/// Starts a broker from `config_text` (mosquitto.conf syntax) plus a listener on an
/// ephemeral loopback port; `tweak` then adjusts the parsed configuration directly.
pub async fn start(config_text: &str, tweak: impl FnOnce(&mut Config)) -> TestBroker {
    // The listener line goes last so that options in `config_text` stay global; its port is
    // replaced by 0 (which the parser rightly refuses) after parsing.
    let text = format!("{config_text}\nlistener 1 127.0.0.1\n");
    let mut config = midge_core::config::parse(&text, "test.conf").expect("test config parses");
    if let Some(l) = config.listeners.last_mut() {
        l.port = 0;
    }
    tweak(&mut config);
    let server = midge_server::Server::bind(&config)
        .await
        .expect("broker binds 127.0.0.1:0");
    let addr = server.local_addrs()[0];
    let shutdown = server.shutdown_handle();
    tokio::spawn(server.run());
    TestBroker { addr, shutdown }
}

/// A broker with default settings that allows anonymous clients.
pub async fn start_default() -> TestBroker {
    start("allow_anonymous true", |_| {}).await
}

// ---------------------------------------------------------------------------------------
// Bytes
// ---------------------------------------------------------------------------------------

/// `"20 02 00 00"` → bytes. Spaces are ignored.
pub fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(
        digits.chunks_exact(2).remainder().is_empty(),
        "odd number of hex digits in {s:?}"
    );
    digits
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).expect("ascii");
            u8::from_str_radix(text, 16).unwrap_or_else(|_| panic!("bad hex {text:?} in {s:?}"))
        })
        .collect()
}

/// Bytes as `"20 02 00 00"`, for assertion messages.
pub fn to_hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A UTF-8 string or binary field: two-byte length, then the bytes.
pub fn str16(s: impl AsRef<[u8]>) -> Vec<u8> {
    let s = s.as_ref();
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s);
    out
}

/// A variable byte integer (remaining length, property length).
pub fn varint(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            return out;
        }
    }
}

/// A whole packet from its first byte and body, the remaining length computed here (not by
/// the codec under test).
pub fn frame(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first_byte];
    out.extend(varint(body.len()));
    out.extend_from_slice(body);
    out
}

/// A CONNECT written byte by byte: protocol name, level, flags, keep alive, (v5) properties,
/// client id, then `tail` (will, username, password fields as the flags announce).
pub fn raw_connect(
    name: &str,
    level: u8,
    flags: u8,
    keep_alive: u16,
    props: Option<&[u8]>,
    client_id: &str,
    tail: &[u8],
) -> Vec<u8> {
    let mut body = str16(name);
    body.push(level);
    body.push(flags);
    body.extend(keep_alive.to_be_bytes());
    if let Some(p) = props {
        body.extend(varint(p.len()));
        body.extend_from_slice(p);
    }
    body.extend(str16(client_id));
    body.extend_from_slice(tail);
    frame(0x10, &body)
}

/// A PUBLISH written byte by byte. `props` is `Some` for MQTT 5 (property bytes without
/// their length), `None` for 3.x.
pub fn raw_publish(
    first_byte: u8,
    topic: &[u8],
    packet_id: Option<u16>,
    props: Option<&[u8]>,
    payload: &[u8],
) -> Vec<u8> {
    let mut body = str16(topic);
    if let Some(id) = packet_id {
        body.extend(id.to_be_bytes());
    }
    if let Some(p) = props {
        body.extend(varint(p.len()));
        body.extend_from_slice(p);
    }
    body.extend_from_slice(payload);
    frame(first_byte, &body)
}

// ---------------------------------------------------------------------------------------
// Packets built with the codec
// ---------------------------------------------------------------------------------------

pub fn connect_packet(version: ProtocolVersion, client_id: &str) -> Connect {
    Connect {
        protocol: version,
        clean_start: true,
        keep_alive: 60,
        client_id: client_id.to_owned(),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    }
}

pub fn publish_packet(topic: &str, payload: &[u8], qos: QoS, retain: bool) -> Publish {
    Publish {
        dup: false,
        qos,
        retain,
        topic: topic.into(),
        packet_id: 0,
        payload: Bytes::copy_from_slice(payload),
        properties: Properties::default(),
    }
}

pub fn filter(filter: &str, qos: QoS) -> SubscribeFilter {
    SubscribeFilter {
        filter: filter.to_owned(),
        options: SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        },
    }
}

pub fn encode(packet: &Packet, version: ProtocolVersion) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode_packet(packet, version, &mut buf);
    buf.to_vec()
}

// ---------------------------------------------------------------------------------------
// The raw client
// ---------------------------------------------------------------------------------------

/// What ended a read that did not produce a packet.
#[derive(Debug)]
pub enum Ended {
    /// Nothing arrived in time; the connection is still open.
    Timeout,
    /// The broker closed the connection (EOF or reset).
    Closed,
}

/// A TCP connection speaking MQTT byte by byte. Packets that arrive while a helper waits
/// for a specific answer (an ack) are kept, in order, for the next [`Raw::recv`].
pub struct Raw {
    pub stream: TcpStream,
    /// Bytes read but not yet cut into packets.
    buf: Vec<u8>,
    /// Whole packets (raw bytes) set aside by helpers waiting for something else.
    pending: VecDeque<Vec<u8>>,
    /// Version used to encode and decode packets on this connection.
    pub version: ProtocolVersion,
    next_id: u16,
}

impl Raw {
    /// Opens a TCP connection; nothing is sent.
    pub async fn tcp(addr: SocketAddr) -> Raw {
        let stream = timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("TCP connect in time")
            .expect("TCP connect");
        stream.set_nodelay(true).expect("nodelay");
        Raw {
            stream,
            buf: Vec::new(),
            pending: VecDeque::new(),
            version: ProtocolVersion::V311,
            next_id: 0,
        }
    }

    /// Connects with `c` and expects a successful CONNACK, which is returned.
    pub async fn connect_with(addr: SocketAddr, c: Connect) -> (Raw, ConnAck) {
        let mut raw = Raw::tcp(addr).await;
        raw.version = c.protocol;
        let id = c.client_id.clone();
        raw.send_packet(&Packet::Connect(Box::new(c))).await;
        match raw.recv().await {
            Packet::ConnAck(ack) => {
                assert_eq!(ack.code, 0, "CONNACK refused client {id:?}: {ack:?}");
                (raw, ack)
            }
            other => panic!("expected CONNACK for {id:?}, got {other:?}"),
        }
    }

    /// Connects with a clean session and keep alive 60.
    pub async fn connect(addr: SocketAddr, version: ProtocolVersion, client_id: &str) -> Raw {
        Raw::connect_with(addr, connect_packet(version, client_id))
            .await
            .0
    }

    pub fn next_packet_id(&mut self) -> u16 {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.next_id
    }

    /// Writes bytes. A broker that has already closed may make this fail; that is ignored
    /// so the test goes on to assert the close itself.
    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = timeout(WAIT, self.stream.write_all(bytes)).await;
    }

    pub async fn send_packet(&mut self, packet: &Packet) {
        let bytes = encode(packet, self.version);
        self.send(&bytes).await;
    }

    /// Cuts one whole packet off `buf`, with a hand-written remaining length reader.
    fn take_frame(&mut self) -> Option<Vec<u8>> {
        let mut len: usize = 0;
        let mut shift = 0;
        let mut i = 1;
        loop {
            let b = *self.buf.get(i)?;
            len |= usize::from(b & 0x7f) << shift;
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            assert!(
                shift <= 21,
                "broker sent a remaining length longer than 4 bytes"
            );
        }
        if self.buf.len() < i + len {
            return None;
        }
        let rest = self.buf.split_off(i + len);
        Some(std::mem::replace(&mut self.buf, rest))
    }

    /// The next packet's raw bytes, within `within`.
    pub async fn recv_raw_within(&mut self, within: Duration) -> Result<Vec<u8>, Ended> {
        if let Some(p) = self.pending.pop_front() {
            return Ok(p);
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(f) = self.take_frame() {
                return Ok(f);
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return Err(Ended::Timeout),
                Ok(Ok(0)) | Ok(Err(_)) => return Err(Ended::Closed),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next packet's raw bytes; fails the test after [`WAIT`] or on close.
    pub async fn recv_raw(&mut self) -> Vec<u8> {
        match self.recv_raw_within(WAIT).await {
            Ok(p) => p,
            Err(e) => panic!("expected a packet from the broker, got {e:?}"),
        }
    }

    pub fn decode(&self, bytes: &[u8]) -> Packet {
        let (first, body) = split_header(bytes);
        decode_packet(
            first,
            Bytes::copy_from_slice(body),
            self.version,
            Sender::Server,
        )
        .unwrap_or_else(|e| panic!("broker sent an undecodable packet {}: {e}", to_hex(bytes)))
    }

    /// The next packet, decoded.
    pub async fn recv(&mut self) -> Packet {
        let bytes = self.recv_raw().await;
        self.decode(&bytes)
    }

    /// The next packet within `within`, or None when nothing arrived (closed or not).
    pub async fn try_recv(&mut self, within: Duration) -> Option<Packet> {
        let bytes = self.recv_raw_within(within).await.ok()?;
        Some(self.decode(&bytes))
    }

    /// The next packet must be exactly `expected` (hex).
    pub async fn expect(&mut self, expected: &str) {
        let got = self.recv_raw().await;
        assert_eq!(
            to_hex(&got),
            to_hex(&hex(expected)),
            "unexpected bytes from the broker"
        );
    }

    /// The broker must close the connection within [`WAIT`] without sending anything more.
    pub async fn expect_close(&mut self) {
        match self.recv_raw_within(WAIT).await {
            Err(Ended::Closed) => {}
            Err(Ended::Timeout) => panic!("connection still open after {WAIT:?}"),
            Ok(p) => panic!("expected the connection to close, got {}", to_hex(&p)),
        }
    }

    /// MQTT 5: DISCONNECT with `reason` (exactly `e0 01 rc`), then the close.
    pub async fn expect_disconnect(&mut self, reason: u8) {
        let got = self.recv_raw().await;
        assert_eq!(
            to_hex(&got),
            to_hex(&[0xe0, 0x01, reason]),
            "expected DISCONNECT {reason:#04x}"
        );
        self.expect_close().await;
    }

    /// Nothing may arrive for `within`, and the connection must stay open.
    pub async fn expect_silence(&mut self, within: Duration) {
        match self.recv_raw_within(within).await {
            Err(Ended::Timeout) => {}
            Err(Ended::Closed) => panic!("connection closed while expecting silence"),
            Ok(p) => panic!("expected nothing, got {}", to_hex(&p)),
        }
    }

    /// The next packet must be a PUBLISH.
    pub async fn recv_publish(&mut self) -> Publish {
        match self.recv().await {
            Packet::Publish(p) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Waits for a packet `pick` accepts, setting aside the others for later `recv`s.
    pub async fn wait_for<T>(&mut self, what: &str, pick: impl Fn(&Packet) -> Option<T>) -> T {
        let mut skipped = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        let found = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let bytes = match self.recv_raw_within(left).await {
                Ok(b) => b,
                Err(e) => panic!("waiting for {what}: {e:?}"),
            };
            if let Some(t) = pick(&self.decode(&bytes)) {
                break t;
            }
            skipped.push(bytes);
        };
        for s in skipped.into_iter().rev() {
            self.pending.push_front(s);
        }
        found
    }

    /// SUBSCRIBE to one filter; returns the SUBACK codes.
    pub async fn subscribe(&mut self, topic: &str, qos: QoS) -> Vec<u8> {
        self.subscribe_with(vec![filter(topic, qos)], Properties::default())
            .await
            .codes
    }

    pub async fn subscribe_with(
        &mut self,
        filters: Vec<SubscribeFilter>,
        properties: Properties,
    ) -> SubAck {
        let id = self.next_packet_id();
        self.send_packet(&Packet::Subscribe(Subscribe {
            packet_id: id,
            filters,
            properties,
        }))
        .await;
        self.wait_for("SUBACK", |p| match p {
            Packet::SubAck(s) if s.packet_id == id => Some(s.clone()),
            _ => None,
        })
        .await
    }

    /// UNSUBSCRIBE from `filters`; returns the UNSUBACK (its reason codes are empty for 3.x).
    pub async fn unsubscribe(&mut self, filters: &[&str]) -> midge_proto::UnsubAck {
        let id = self.next_packet_id();
        self.send_packet(&Packet::Unsubscribe(midge_proto::Unsubscribe {
            packet_id: id,
            filters: filters.iter().map(|f| f.to_string()).collect(),
            properties: Properties::default(),
        }))
        .await;
        self.wait_for("UNSUBACK", |p| match p {
            Packet::UnsubAck(a) if a.packet_id == id => Some(a.clone()),
            _ => None,
        })
        .await
    }

    /// Publishes and completes the QoS flow; returns the MQTT 5 reason code of the PUBACK or
    /// PUBREC (0 for QoS 0 and 3.x).
    pub async fn publish(&mut self, topic: &str, payload: &[u8], qos: QoS, retain: bool) -> u8 {
        self.publish_packet(publish_packet(topic, payload, qos, retain))
            .await
    }

    /// Publishes `p` (a packet id is assigned for QoS 1/2) and completes its flow.
    pub async fn publish_packet(&mut self, mut p: Publish) -> u8 {
        if p.qos != QoS::AtMostOnce && p.packet_id == 0 {
            p.packet_id = self.next_packet_id();
        }
        let id = p.packet_id;
        let qos = p.qos;
        self.send_packet(&Packet::Publish(p)).await;
        match qos {
            QoS::AtMostOnce => 0,
            QoS::AtLeastOnce => {
                self.wait_for("PUBACK", |p| match p {
                    Packet::PubAck(r) if r.packet_id == id => Some(r.reason),
                    _ => None,
                })
                .await
            }
            QoS::ExactlyOnce => {
                let code = self
                    .wait_for("PUBREC", |p| match p {
                        Packet::PubRec(r) if r.packet_id == id => Some(r.reason),
                        _ => None,
                    })
                    .await;
                if code < 0x80 {
                    self.send_packet(&Packet::PubRel(PubResp::new(id))).await;
                    self.wait_for("PUBCOMP", |p| match p {
                        Packet::PubComp(r) if r.packet_id == id => Some(()),
                        _ => None,
                    })
                    .await;
                }
                code
            }
        }
    }

    /// Acknowledges a received PUBLISH: PUBACK, or PUBREC / PUBREL / PUBCOMP.
    pub async fn ack(&mut self, p: &Publish) {
        let id = p.packet_id;
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.send_packet(&Packet::PubAck(PubResp::new(id))).await,
            QoS::ExactlyOnce => {
                self.send_packet(&Packet::PubRec(PubResp::new(id))).await;
                self.wait_for("PUBREL", |p| match p {
                    Packet::PubRel(r) if r.packet_id == id => Some(()),
                    _ => None,
                })
                .await;
                self.send_packet(&Packet::PubComp(PubResp::new(id))).await;
            }
        }
    }

    /// Receives a PUBLISH and acknowledges it.
    pub async fn recv_publish_ack(&mut self) -> Publish {
        let p = self.recv_publish().await;
        self.ack(&p).await;
        p
    }

    /// Sends PINGREQ and waits for PINGRESP: everything sent before has been handled.
    pub async fn ping(&mut self) {
        self.send_packet(&Packet::PingReq).await;
        self.wait_for("PINGRESP", |p| matches!(p, Packet::PingResp).then_some(()))
            .await;
    }

    /// Normal DISCONNECT (reason 0), then waits for the broker to close.
    pub async fn disconnect(mut self) {
        self.send_packet(&Packet::Disconnect(midge_proto::Disconnect::default()))
            .await;
        let _ = self.recv_raw_within(WAIT).await;
    }
}

/// (first byte, body) of one whole packet, with a hand-written remaining length reader.
pub fn split_header(bytes: &[u8]) -> (u8, &[u8]) {
    let mut i = 1;
    while bytes[i] & 0x80 != 0 {
        i += 1;
    }
    (bytes[0], &bytes[i + 1..])
}

/// Sleeps a little so that work the broker does after an answer (routing on another task,
/// detaching a closed connection) has happened.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(150)).await;
}

// ---------------------------------------------------------------------------------------
// rumqttc
// ---------------------------------------------------------------------------------------

/// An rumqttc MQTT 3.1.1 client whose event loop runs on its own task and forwards every
/// incoming packet (or the error that ended it).
pub struct V4 {
    pub client: rumqttc::AsyncClient,
    rx: mpsc::UnboundedReceiver<Result<rumqttc::Packet, String>>,
    pending: VecDeque<rumqttc::Packet>,
    task: JoinHandle<()>,
}

impl Drop for V4 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn v4_options(addr: SocketAddr, id: &str) -> rumqttc::MqttOptions {
    let mut o = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o
}

impl V4 {
    /// Connects and waits for CONNACK, which is returned.
    pub async fn connect(options: rumqttc::MqttOptions) -> (V4, rumqttc::ConnAck) {
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 100);
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(p)) => {
                        if tx.send(Ok(p)).is_err() {
                            return;
                        }
                    }
                    Ok(rumqttc::Event::Outgoing(_)) => {}
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                }
            }
        });
        let mut c = V4 {
            client,
            rx,
            pending: VecDeque::new(),
            task,
        };
        let ack = c
            .wait_for("CONNACK", |p| match p {
                rumqttc::Packet::ConnAck(a) => Some(a.clone()),
                _ => None,
            })
            .await;
        (c, ack)
    }

    pub async fn simple(addr: SocketAddr, id: &str) -> V4 {
        V4::connect(v4_options(addr, id)).await.0
    }

    async fn next_within(&mut self, within: Duration) -> Option<rumqttc::Packet> {
        if let Some(p) = self.pending.pop_front() {
            return Some(p);
        }
        match timeout(within, self.rx.recv()).await {
            Ok(Some(Ok(p))) => Some(p),
            Ok(Some(Err(e))) => panic!("rumqttc v4 connection ended: {e}"),
            Ok(None) => panic!("rumqttc v4 event loop gone"),
            Err(_) => None,
        }
    }

    pub async fn wait_for<T>(
        &mut self,
        what: &str,
        pick: impl Fn(&rumqttc::Packet) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut skipped = Vec::new();
        let found = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(p) = self.next_within(left).await else {
                panic!("rumqttc v4: no {what} within {WAIT:?}");
            };
            if let Some(t) = pick(&p) {
                break t;
            }
            skipped.push(p);
        };
        for s in skipped.into_iter().rev() {
            self.pending.push_front(s);
        }
        found
    }

    /// The next incoming PUBLISH (other packets are skipped).
    pub async fn next_publish(&mut self) -> rumqttc::Publish {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Some(rumqttc::Packet::Publish(p)) => return p,
                Some(_) => {}
                None => panic!("rumqttc v4: no PUBLISH within {WAIT:?}"),
            }
        }
    }

    /// No PUBLISH may arrive within `within`.
    pub async fn expect_no_publish(&mut self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return;
            }
            if let Some(rumqttc::Packet::Publish(p)) = self.next_within(left).await {
                panic!("unexpected PUBLISH on {:?}: {:?}", p.topic, p.payload);
            }
        }
    }

    /// SUBSCRIBE and wait for the SUBACK; returns its return codes.
    pub async fn subscribe(
        &mut self,
        topic: &str,
        qos: rumqttc::QoS,
    ) -> Vec<rumqttc::SubscribeReasonCode> {
        self.client
            .subscribe(topic, qos)
            .await
            .expect("subscribe request");
        self.wait_for("SUBACK", |p| match p {
            rumqttc::Packet::SubAck(s) => Some(s.return_codes.clone()),
            _ => None,
        })
        .await
    }

    /// Publishes and, for QoS 1/2, waits until the broker acknowledged it.
    pub async fn publish(&mut self, topic: &str, payload: &[u8], qos: rumqttc::QoS, retain: bool) {
        self.client
            .publish(topic, qos, retain, payload.to_vec())
            .await
            .expect("publish request");
        match qos {
            rumqttc::QoS::AtMostOnce => {}
            rumqttc::QoS::AtLeastOnce => {
                self.wait_for("PUBACK", |p| {
                    matches!(p, rumqttc::Packet::PubAck(_)).then_some(())
                })
                .await
            }
            rumqttc::QoS::ExactlyOnce => {
                self.wait_for("PUBCOMP", |p| {
                    matches!(p, rumqttc::Packet::PubComp(_)).then_some(())
                })
                .await
            }
        }
    }
}

pub mod v5 {
    //! The same wrapper for rumqttc's MQTT 5 client.
    use super::*;
    #[allow(unused_imports)]
    pub use rumqttc::v5::mqttbytes::v5::{
        ConnAck, Filter, Packet, Publish, PublishProperties, RetainForwardRule, SubscribeProperties,
    };
    pub use rumqttc::v5::mqttbytes::QoS;
    pub use rumqttc::v5::{AsyncClient, Event, MqttOptions};

    pub struct V5 {
        pub client: AsyncClient,
        rx: mpsc::UnboundedReceiver<Result<Packet, String>>,
        pending: VecDeque<Packet>,
        task: JoinHandle<()>,
    }

    impl Drop for V5 {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    pub fn options(addr: SocketAddr, id: &str) -> MqttOptions {
        let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
        o.set_keep_alive(Duration::from_secs(30));
        o
    }

    impl V5 {
        pub async fn connect(options: MqttOptions) -> (V5, ConnAck) {
            let (client, mut eventloop) = AsyncClient::new(options, 100);
            let (tx, rx) = mpsc::unbounded_channel();
            let task = tokio::spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(p)) => {
                            if tx.send(Ok(p)).is_err() {
                                return;
                            }
                        }
                        Ok(Event::Outgoing(_)) => {}
                        Err(e) => {
                            let _ = tx.send(Err(e.to_string()));
                            return;
                        }
                    }
                }
            });
            let mut c = V5 {
                client,
                rx,
                pending: VecDeque::new(),
                task,
            };
            let ack = c
                .wait_for("CONNACK", |p| match p {
                    Packet::ConnAck(a) => Some(a.clone()),
                    _ => None,
                })
                .await;
            (c, ack)
        }

        pub async fn simple(addr: SocketAddr, id: &str) -> V5 {
            V5::connect(options(addr, id)).await.0
        }

        async fn next_within(&mut self, within: Duration) -> Option<Packet> {
            if let Some(p) = self.pending.pop_front() {
                return Some(p);
            }
            match timeout(within, self.rx.recv()).await {
                Ok(Some(Ok(p))) => Some(p),
                Ok(Some(Err(e))) => panic!("rumqttc v5 connection ended: {e}"),
                Ok(None) => panic!("rumqttc v5 event loop gone"),
                Err(_) => None,
            }
        }

        pub async fn wait_for<T>(&mut self, what: &str, pick: impl Fn(&Packet) -> Option<T>) -> T {
            let deadline = tokio::time::Instant::now() + WAIT;
            let mut skipped = Vec::new();
            let found = loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let Some(p) = self.next_within(left).await else {
                    panic!("rumqttc v5: no {what} within {WAIT:?}");
                };
                if let Some(t) = pick(&p) {
                    break t;
                }
                skipped.push(p);
            };
            for s in skipped.into_iter().rev() {
                self.pending.push_front(s);
            }
            found
        }

        pub async fn next_publish(&mut self) -> Publish {
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match self.next_within(left).await {
                    Some(Packet::Publish(p)) => return p,
                    Some(_) => {}
                    None => panic!("rumqttc v5: no PUBLISH within {WAIT:?}"),
                }
            }
        }

        pub async fn expect_no_publish(&mut self, within: Duration) {
            let deadline = tokio::time::Instant::now() + within;
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() {
                    return;
                }
                if let Some(Packet::Publish(p)) = self.next_within(left).await {
                    panic!("unexpected PUBLISH on {:?}: {:?}", p.topic, p.payload);
                }
            }
        }

        pub async fn subscribe_filter(&mut self, f: Filter) {
            self.client
                .subscribe_many([f])
                .await
                .expect("subscribe request");
            self.wait_for("SUBACK", |p| matches!(p, Packet::SubAck(_)).then_some(()))
                .await;
        }

        pub async fn subscribe(&mut self, topic: &str, qos: QoS) {
            self.subscribe_filter(Filter::new(topic, qos)).await;
        }

        pub async fn publish(&mut self, topic: &str, payload: &[u8], qos: QoS, retain: bool) {
            self.client
                .publish(topic, qos, retain, payload.to_vec())
                .await
                .expect("publish request");
            match qos {
                QoS::AtMostOnce => {}
                QoS::AtLeastOnce => {
                    self.wait_for("PUBACK", |p| matches!(p, Packet::PubAck(_)).then_some(()))
                        .await
                }
                QoS::ExactlyOnce => {
                    self.wait_for("PUBCOMP", |p| matches!(p, Packet::PubComp(_)).then_some(()))
                        .await
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------

/// A directory of test files (configurations, password and ACL files, certificates,
/// Unix sockets), removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        // Short: a Unix socket path must fit in 108 bytes.
        let path = std::env::temp_dir().join(format!(
            "midge-t-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }

    /// Writes `text` to `name` in the directory and returns the file's path.
    pub fn write(&self, name: &str, text: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write fixture");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
