//! Setting a client up: TCP connect, CONNECT/CONNACK and SUBSCRIBE/SUBACK, with midge-proto's
//! full encoder and strict decoder (these happen once per client, so correctness beats speed).
//! Every step has a deadline, and every refusal becomes a message that says who refused what.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use midge_proto::{
    decode_fixed_header, decode_packet, encode_packet, ConnAck, Connect, Disconnect, Packet,
    Properties, ProtocolVersion, QoS, Sender, Subscribe, SubscribeFilter, SubscriptionOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// How long connecting or subscribing may take before the run is abandoned.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Filters per SUBSCRIBE packet: many topics are split over several packets so that none
/// comes near a broker's packet size limit.
const FILTERS_PER_SUBSCRIBE: usize = 100;

/// A connected client: its socket, whatever arrived after the last answer we read, and what
/// the broker said in CONNACK.
pub struct Conn {
    pub stream: TcpStream,
    pub rbuf: BytesMut,
    pub connack: ConnAck,
    pub version: ProtocolVersion,
}

impl Conn {
    /// How many QoS 1/2 messages this client may have unacknowledged towards the broker:
    /// `wanted`, lowered to the broker's Receive Maximum (MQTT 5 only).
    pub fn send_window(&self, wanted: u16) -> u16 {
        match self.connack.properties.receive_maximum {
            Some(m) if self.version.is_v5() => wanted.min(m.max(1)),
            _ => wanted,
        }
    }

    /// Largest packet the broker accepts (MQTT 5 Maximum Packet Size), if it said.
    pub fn max_packet(&self) -> Option<u32> {
        self.connack
            .properties
            .maximum_packet_size
            .filter(|_| self.version.is_v5())
    }
}

/// Opens a clean session called `client_id` with the given keep-alive (seconds).
pub async fn connect(
    addr: SocketAddr,
    version: ProtocolVersion,
    client_id: &str,
    keep_alive: u16,
) -> Result<Conn, String> {
    connect_session(addr, version, client_id, keep_alive, false).await
}

/// As [`connect`]; with `persistent`, a session the broker keeps (and, with persistence,
/// stores): clean session 0, and in MQTT 5 a session expiry of 300 s.
pub async fn connect_session(
    addr: SocketAddr,
    version: ProtocolVersion,
    client_id: &str,
    keep_alive: u16,
    persistent: bool,
) -> Result<Conn, String> {
    let what = format!("client {client_id}");
    timeout(
        HANDSHAKE_TIMEOUT,
        connect_inner(addr, version, client_id, keep_alive, persistent),
    )
    .await
    .map_err(|_| format!("{what}: no CONNACK from {addr} within {HANDSHAKE_TIMEOUT:?}"))?
    .map_err(|e| format!("{what}: {e}"))
}

async fn connect_inner(
    addr: SocketAddr,
    version: ProtocolVersion,
    client_id: &str,
    keep_alive: u16,
    persistent: bool,
) -> Result<Conn, String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    // Latency runs send one small packet at a time; Nagle would hold them back.
    stream
        .set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let connect = Connect {
        protocol: version,
        clean_start: !persistent,
        keep_alive,
        client_id: client_id.to_string(),
        will: None,
        username: None,
        password: None,
        properties: Properties {
            session_expiry_interval: (persistent && version.is_v5()).then_some(300),
            ..Properties::default()
        },
    };
    let mut out = BytesMut::new();
    encode_packet(&Packet::Connect(Box::new(connect)), version, &mut out);
    stream
        .write_all(&out)
        .await
        .map_err(|e| format!("sending CONNECT: {e}"))?;
    // Small: idle clients of a `connections` run keep nothing, and the pub/sub tasks grow
    // it to their read size themselves.
    let mut rbuf = BytesMut::with_capacity(64);
    match read_packet(&mut stream, &mut rbuf, version).await? {
        Packet::ConnAck(c) if c.code == 0 => Ok(Conn {
            stream,
            rbuf,
            connack: c,
            version,
        }),
        Packet::ConnAck(c) => Err(format!(
            "broker refused CONNECT with code {:#04x}{}",
            c.code,
            refusal_hint(c.code, version)
        )),
        other => Err(format!("expected CONNACK, got {}", other.name())),
    }
}

fn refusal_hint(code: u8, version: ProtocolVersion) -> &'static str {
    match (version.is_v5(), code) {
        (false, 5) | (true, 0x87) | (true, 0x86) | (false, 4) => {
            " (not authorised: does the broker allow anonymous clients?)"
        }
        _ => "",
    }
}

/// Subscribes to every filter at `qos` and checks that the broker granted exactly that.
pub async fn subscribe(conn: &mut Conn, filters: &[String], qos: u8) -> Result<(), String> {
    timeout(HANDSHAKE_TIMEOUT, subscribe_inner(conn, filters, qos))
        .await
        .map_err(|_| format!("no SUBACK within {HANDSHAKE_TIMEOUT:?}"))?
}

async fn subscribe_inner(conn: &mut Conn, filters: &[String], qos: u8) -> Result<(), String> {
    let qos = QoS::from_u8(qos).ok_or("QoS must be 0..=2")?;
    for (n, chunk) in filters.chunks(FILTERS_PER_SUBSCRIBE).enumerate() {
        let packet_id = n as u16 % u16::MAX + 1;
        let sub = Subscribe {
            packet_id,
            filters: chunk
                .iter()
                .map(|f| SubscribeFilter {
                    filter: f.clone(),
                    options: SubscriptionOptions {
                        qos,
                        ..SubscriptionOptions::default()
                    },
                })
                .collect(),
            properties: Properties::default(),
        };
        let mut out = BytesMut::new();
        encode_packet(&Packet::Subscribe(sub), conn.version, &mut out);
        conn.stream
            .write_all(&out)
            .await
            .map_err(|e| format!("sending SUBSCRIBE: {e}"))?;
        let ack = match read_packet(&mut conn.stream, &mut conn.rbuf, conn.version).await? {
            Packet::SubAck(a) if a.packet_id == packet_id => a,
            other => return Err(format!("expected SUBACK {packet_id}, got {}", other.name())),
        };
        if ack.codes.len() != chunk.len() {
            return Err(format!(
                "SUBACK has {} codes for {} filters",
                ack.codes.len(),
                chunk.len()
            ));
        }
        for (f, &code) in chunk.iter().zip(&ack.codes) {
            if code != qos as u8 {
                return Err(format!(
                    "broker answered SUBSCRIBE to {f:?} at QoS {} with {code:#04x} \
                     (refused, or a lower QoS granted)",
                    qos as u8
                ));
            }
        }
    }
    Ok(())
}

/// Reads one whole packet from the broker, keeping any bytes after it in `rbuf`.
pub async fn read_packet(
    stream: &mut TcpStream,
    rbuf: &mut BytesMut,
    version: ProtocolVersion,
) -> Result<Packet, String> {
    loop {
        if let Some(fh) = decode_fixed_header(rbuf).map_err(|e| format!("from broker: {e}"))? {
            if rbuf.len() >= fh.packet_len() {
                let packet = rbuf.split_to(fh.packet_len());
                let body = Bytes::copy_from_slice(&packet[fh.header_len..]);
                return decode_packet(fh.first_byte, body, version, Sender::Server)
                    .map_err(|e| format!("malformed packet from broker: {e}"));
            }
            rbuf.reserve(fh.packet_len() - rbuf.len());
        } else {
            rbuf.reserve(64);
        }
        match stream.read_buf(rbuf).await {
            Ok(0) => return Err("broker closed the connection".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("reading from broker: {e}")),
        }
    }
}

/// A DISCONNECT packet, sent when a client is done so the broker logs a clean close.
pub fn disconnect_packet(version: ProtocolVersion) -> BytesMut {
    let mut out = BytesMut::new();
    encode_packet(
        &Packet::Disconnect(Disconnect::default()),
        version,
        &mut out,
    );
    out
}
