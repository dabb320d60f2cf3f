//! The first packet: read CONNECT within the connect timeout, validate and authenticate it,
//! attach the session and answer CONNACK. Nothing a client sends before this succeeds can
//! make the broker hold more than one capped packet.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use midge_proto::reason::{self, v3};
use midge_proto::{
    encode_packet, ConnAck, Connect, DecodeError, Packet, Properties, ProtocolVersion, Sender,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::close::REFUSE_FLUSH;
use super::{frame, ClientLimits, Connection};
use crate::broker::{Broker, PendingWill};
use crate::settings::{MQTT_MAX_PACKET, PRE_CONNECT_MAX_PACKET};

/// Bytes asked of the kernel per read before CONNECT has arrived.
const CONNECT_READ: usize = 512;

/// Why a CONNECT is refused, in both protocol generations' codes.
struct Refusal {
    v3: u8,
    v5: u8,
    why: &'static str,
}

const BAD_ID: Refusal = Refusal {
    v3: v3::IDENTIFIER_REJECTED,
    v5: reason::CLIENT_IDENTIFIER_NOT_VALID,
    why: "client identifier not valid",
};

/// Reads and handles CONNECT. `None` when the connection was refused or went away.
pub(super) async fn accept(
    broker: Arc<Broker>,
    mut stream: TcpStream,
    peer: SocketAddr,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Connection> {
    let mut rbuf = BytesMut::new();
    let cap = broker.settings.max_packet_size.min(PRE_CONNECT_MAX_PACKET);
    let read = read_connect(&mut stream, &mut rbuf, cap);
    let frame = tokio::select! {
        r = tokio::time::timeout(broker.settings.connect_timeout, read) => match r {
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => return None,
            Ok(Err(e)) => {
                tracing::info!("Client <unknown> from {peer} disconnected: {e}.");
                return None;
            }
            Err(_) => {
                tracing::info!("Client <unknown> from {peer} sent no CONNECT in time, closing.");
                return None;
            }
        },
        _ = shutdown.changed() => return None,
    };
    let (first_byte, body) = frame;
    if first_byte >> 4 != 1 {
        tracing::info!("Client <unknown> from {peer} sent a packet before CONNECT, closing.");
        return None;
    }
    let level = midge_proto::decode::peek_connect_level(&body).map(|l| l.version);
    let connect =
        match midge_proto::decode_packet(first_byte, body, ProtocolVersion::V311, Sender::Client) {
            Ok(Packet::Connect(c)) => c,
            Ok(_) => return None,
            Err(DecodeError::UnsupportedProtocolVersion(v)) => {
                // [MQTT-3.1.2-2]: answer in the only form every version understands.
                tracing::info!(
                    "Client <unknown> from {peer} used unsupported protocol version {v}."
                );
                refuse_raw(
                    &mut stream,
                    &[0x20, 0x02, 0x00, v3::UNACCEPTABLE_PROTOCOL_VERSION],
                )
                .await;
                return None;
            }
            Err(e) => {
                tracing::info!("Client <unknown> from {peer} sent a bad CONNECT: {e}.");
                if level == Some(ProtocolVersion::V5) {
                    let mut out = BytesMut::new();
                    encode_packet(
                        &Packet::ConnAck(ConnAck {
                            session_present: false,
                            code: e.reason_code(),
                            properties: Properties::default(),
                        }),
                        ProtocolVersion::V5,
                        &mut out,
                    );
                    refuse_raw(&mut stream, &out).await;
                }
                return None;
            }
        };
    // Whatever followed CONNECT stays; the rest of the read reservation is given back.
    let rbuf = if rbuf.is_empty() {
        BytesMut::new()
    } else {
        rbuf
    };
    handle_connect(broker, stream, peer, rbuf, *connect).await
}

/// Reads until the first complete packet; `Ok(None)` when the peer closed first.
async fn read_connect(
    stream: &mut TcpStream,
    rbuf: &mut BytesMut,
    cap: u32,
) -> Result<Option<(u8, bytes::Bytes)>, String> {
    loop {
        if let Some(frame) = frame::take(rbuf, cap).map_err(|e| e.to_string())? {
            return Ok(Some(frame));
        }
        // Small first: most CONNECTs fit, and `frame::take` reserves what a larger one announces.
        rbuf.reserve(CONNECT_READ);
        stream.readable().await.map_err(|e| e.to_string())?;
        match stream.try_read_buf(rbuf) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

async fn refuse_raw(stream: &mut TcpStream, bytes: &[u8]) {
    let _ = tokio::time::timeout(REFUSE_FLUSH, stream.write_all(bytes)).await;
    let _ = stream.shutdown().await;
}

async fn refuse(
    stream: &mut TcpStream,
    version: ProtocolVersion,
    refusal: &Refusal,
    peer: SocketAddr,
) {
    tracing::info!("Client <unknown> from {peer} refused: {}.", refusal.why);
    let code = if version.is_v5() {
        refusal.v5
    } else {
        refusal.v3
    };
    let mut out = BytesMut::new();
    encode_packet(
        &Packet::ConnAck(ConnAck {
            session_present: false,
            code,
            properties: Properties::default(),
        }),
        version,
        &mut out,
    );
    refuse_raw(stream, &out).await;
}

async fn handle_connect(
    broker: Arc<Broker>,
    mut stream: TcpStream,
    peer: SocketAddr,
    rbuf: BytesMut,
    connect: Connect,
) -> Option<Connection> {
    let settings = &broker.settings;
    let version = connect.protocol;
    let props = &connect.properties;

    if props.authentication_method.is_some() {
        let r = Refusal {
            v3: v3::NOT_AUTHORIZED,
            v5: reason::BAD_AUTHENTICATION_METHOD,
            why: "unsupported authentication method",
        };
        refuse(&mut stream, version, &r, peer).await;
        return None;
    }

    let mut assigned = None;
    let client_id: Arc<str> = if connect.client_id.is_empty() {
        // MQTT 3.1 requires an id; 3.1.1 allows an empty one only with a clean session
        // [MQTT-3.1.3-8]; MQTT 5 gets one assigned whatever the session kind, as Mosquitto does.
        let refused = version == ProtocolVersion::V31
            || (version == ProtocolVersion::V311 && !connect.clean_start)
            || !settings.allow_zero_length_clientid;
        if refused {
            refuse(&mut stream, version, &BAD_ID, peer).await;
            return None;
        }
        let id = format!("{}{}", settings.auto_id_prefix, random_uuid());
        assigned = Some(id.clone());
        Arc::from(id)
    } else {
        Arc::from(connect.client_id.as_str())
    };

    if !authenticate(&broker, &connect) {
        // Mosquitto answers "not authorised" whether or not a username was given, so that
        // the answer does not tell which usernames exist.
        let r = Refusal {
            v3: v3::NOT_AUTHORIZED,
            v5: reason::NOT_AUTHORIZED,
            why: "not authorised",
        };
        refuse(&mut stream, version, &r, peer).await;
        return None;
    }

    // Keep alive: MQTT 5 clients are told the server's value when theirs exceeds the limit
    // (or is 0 while a limit is set); 3.x clients keep theirs, as with Mosquitto.
    let mut keep_alive = connect.keep_alive;
    let mut server_keep_alive = None;
    if version.is_v5()
        && settings.max_keepalive < u16::MAX
        && (keep_alive > settings.max_keepalive || keep_alive == 0)
    {
        keep_alive = settings.max_keepalive;
        server_keep_alive = Some(keep_alive);
    }

    let expiry = if version.is_v5() {
        props.session_expiry_interval.unwrap_or(0)
    } else if connect.clean_start {
        0
    } else {
        settings.persistent_client_expiration.unwrap_or(u32::MAX)
    };

    let will = connect.will.map(|w| PendingWill {
        delay: w.properties.will_delay_interval.unwrap_or(0),
        will: w,
        publisher: Arc::clone(&client_id),
    });

    let attached = broker.attach(&client_id, connect.clean_start, expiry);
    if attached.took_over {
        tracing::info!("Client {client_id} already connected, closing old connection.");
    }

    let limits = ClientLimits {
        receive_maximum: props.receive_maximum.unwrap_or(u16::MAX),
        maximum_packet_size: props.maximum_packet_size.unwrap_or(MQTT_MAX_PACKET),
        topic_alias_maximum: props.topic_alias_maximum.unwrap_or(0),
    };

    let mut conn = Connection {
        broker: Arc::clone(&broker),
        stream,
        rbuf,
        wbuf: BytesMut::new(),
        version,
        client_id: Arc::clone(&client_id),
        session: attached.session,
        generation: attached.generation,
        keep_alive,
        last_activity: Instant::now(),
        will,
        connect_expiry: expiry,
        limits,
        in_aliases: HashMap::new(),
        out_aliases: HashMap::new(),
        next_out_alias: 1,
    };

    let mut ack = ConnAck {
        session_present: attached.session_present && !connect.clean_start,
        code: reason::SUCCESS,
        properties: Properties::default(),
    };
    if version.is_v5() {
        let p = &mut ack.properties;
        p.assigned_client_identifier = assigned;
        p.server_keep_alive = server_keep_alive;
        if settings.max_topic_alias > 0 {
            p.topic_alias_maximum = Some(settings.max_topic_alias);
        }
        if settings.max_inflight < u16::MAX {
            p.receive_maximum = Some(settings.max_inflight);
        }
        if settings.max_qos < midge_proto::QoS::ExactlyOnce {
            p.maximum_qos = Some(settings.max_qos as u8);
        }
        if !settings.retain_available {
            p.retain_available = Some(0);
        }
        if settings.max_packet_size < MQTT_MAX_PACKET {
            p.maximum_packet_size = Some(settings.max_packet_size);
        }
    }
    conn.send(&Packet::ConnAck(ack));
    conn.resend_inflight();

    let user = connect
        .username
        .as_deref()
        .map(|u| format!(", u'{u}'"))
        .unwrap_or_default();
    tracing::info!(
        "New client connected from {} as {} (p{}, c{}, k{}{}).",
        peer.ip(),
        client_id,
        mosquitto_protocol_number(version),
        u8::from(connect.clean_start),
        keep_alive,
        user
    );
    Some(conn)
}

/// Mosquitto's log numbers its protocols 1 (3.1), 2 (3.1.1) and 5.
fn mosquitto_protocol_number(v: ProtocolVersion) -> u8 {
    match v {
        ProtocolVersion::V31 => 1,
        ProtocolVersion::V311 => 2,
        ProtocolVersion::V5 => 5,
    }
}

/// Anonymous clients are let in when allowed. Password files arrive with the security
/// configuration; until then a client presenting credentials cannot be verified and is
/// refused unless anonymous access is allowed, as Mosquitto does without a password file.
fn authenticate(broker: &Broker, _connect: &Connect) -> bool {
    broker.settings.allow_anonymous
}

/// A random RFC 4122 version 4 UUID in Mosquitto's upper-case form, for assigned client ids.
fn random_uuid() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // No entropy source: fall back to the clock, still unique per connection in practice.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b = t.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
