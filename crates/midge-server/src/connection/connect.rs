//! The first packet: read CONNECT within the connect timeout, validate and authenticate it,
//! attach the session and answer CONNACK. Nothing a client sends before this succeeds can
//! make the broker hold more than one capped packet.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use midge_core::acl::Access;
use midge_proto::reason::{self, v3};
use midge_proto::{
    encode_packet, ConnAck, Connect, DecodeError, Packet, Properties, ProtocolVersion, Sender,
};
use serde_json::json;
use tokio::sync::watch;

use super::close::REFUSE_FLUSH;
use super::{frame, ClientLimits, Connection, Transport};
use crate::audit::Who;
use crate::broker::{Broker, PendingWill};
use crate::listener_ctx::ListenerCtx;
use crate::metrics::Counter;
use crate::policy::Policy;
use crate::session::Identity;
use crate::settings::{MQTT_MAX_PACKET, PRE_CONNECT_MAX_PACKET};
use crate::store::Op;
use crate::stream::Stream;

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
    transport: Transport,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Connection> {
    let Transport {
        mut stream,
        peer,
        listener,
        slot,
        cert_username,
    } = transport;
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
    let peeked = midge_proto::decode::peek_connect_level(&body);
    let level = peeked.map(|l| l.version);
    let bridge = peeked.is_some_and(|l| l.bridge && !l.version.is_v5());
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
    let transport = Transport {
        stream,
        peer,
        listener,
        slot,
        cert_username,
    };
    let mut conn = handle_connect(broker, transport, rbuf, *connect).await?;
    conn.bridge = bridge;
    Some(conn)
}

/// The username a TLS listener takes from the client certificate
/// (`use_identity_as_username` / `use_subject_as_username`): `None` when the listener does
/// not, `Some(Err(why))` when it does but the client has no usable certificate.
pub(crate) type CertUsername = Option<Result<String, &'static str>>;

/// Reads until the first complete packet; `Ok(None)` when the peer closed first.
async fn read_connect(
    stream: &mut Stream,
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

async fn refuse_raw(stream: &mut Stream, bytes: &[u8]) {
    let _ = tokio::time::timeout(REFUSE_FLUSH, stream.write_all(bytes)).await;
    let _ = stream.shutdown().await;
}

async fn refuse(stream: &mut Stream, version: ProtocolVersion, refusal: &Refusal, who: &str) {
    tracing::info!("Client {who} refused: {}.", refusal.why);
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

const BAD_CREDENTIALS: Refusal = Refusal {
    v3: v3::BAD_USERNAME_OR_PASSWORD,
    v5: reason::BAD_USER_NAME_OR_PASSWORD,
    why: "no usable client certificate for the username",
};

const NOT_AUTHORISED: Refusal = Refusal {
    v3: v3::NOT_AUTHORIZED,
    v5: reason::NOT_AUTHORIZED,
    why: "not authorised",
};

// The connection's parts are moved in one by one; bundling them would only rename them.
async fn handle_connect(
    broker: Arc<Broker>,
    transport: Transport,
    rbuf: BytesMut,
    mut connect: Connect,
) -> Option<Connection> {
    let Transport {
        mut stream,
        peer,
        listener,
        slot,
        cert_username,
    } = transport;
    let settings = &broker.settings;
    let version = connect.protocol;
    let props = &connect.properties;
    let policy = listener.policy.get();
    let who = describe(&connect, &peer);

    if crate::heap::over(settings.memory_limit) {
        let r = Refusal {
            v3: v3::SERVER_UNAVAILABLE,
            v5: reason::QUOTA_EXCEEDED,
            why: "memory_limit reached",
        };
        refuse(&mut stream, version, &r, &who).await;
        return None;
    }
    if props.authentication_method.is_some() {
        let r = Refusal {
            v3: v3::NOT_AUTHORIZED,
            v5: reason::BAD_AUTHENTICATION_METHOD,
            why: "unsupported authentication method",
        };
        refuse(&mut stream, version, &r, &who).await;
        return None;
    }

    // With `use_identity_as_username` / `use_subject_as_username` the certificate gives the
    // username; the CONNECT username and password are ignored, as in Mosquitto.
    let from_cert = match cert_username {
        None => None,
        Some(Ok(name)) => Some(name),
        Some(Err(why)) => {
            tracing::info!("Client {who}: {why}.");
            broker.metrics.add(Counter::AuthFailures, 1);
            let subject = Who {
                client_id: &connect.client_id,
                username: None,
                address: &peer,
            };
            broker.audit("auth_failure", subject, json!({ "reason": why }));
            refuse(&mut stream, version, &BAD_CREDENTIALS, &who).await;
            return None;
        }
    };
    let username: Option<Arc<str>> = match &from_cert {
        Some(name) => Some(Arc::from(name.as_str())),
        None => connect.username.as_deref().map(Arc::from),
    };

    let mut assigned = None;
    let client_id: Arc<str> = if listener.use_username_as_clientid {
        // The username is the client id, so one user cannot take another's session;
        // without a username there is nothing to use (Mosquitto refuses too).
        match &username {
            Some(u) => Arc::clone(u),
            None => {
                refuse(&mut stream, version, &NOT_AUTHORISED, &who).await;
                return None;
            }
        }
    } else if connect.client_id.is_empty() {
        // MQTT 3.1 requires an id; 3.1.1 allows an empty one only with a clean session
        // [MQTT-3.1.3-8]; MQTT 5 gets one assigned whatever the session kind, as Mosquitto does.
        let refused = version == ProtocolVersion::V31
            || (version == ProtocolVersion::V311 && !connect.clean_start)
            || !policy.allow_zero_length_clientid;
        if refused {
            refuse(&mut stream, version, &BAD_ID, &who).await;
            return None;
        }
        let id = format!("{}{}", policy.auto_id_prefix, random_uuid());
        assigned = Some(id.clone());
        Arc::from(id)
    } else {
        Arc::from(connect.client_id.as_str())
    };

    if let Some(prefix) = &policy.clientid_prefix {
        if !client_id.starts_with(prefix.as_str()) {
            refuse(&mut stream, version, &NOT_AUTHORISED, &who).await;
            return None;
        }
    }

    // Dynamic security changes applied while this login is checked: see after `attach`.
    let dynsec_changes = policy.dynsec.as_ref().map(|d| d.changes());
    if from_cert.is_none() && !authenticate(&broker, &policy, &connect, &client_id, &peer).await {
        broker.metrics.add(Counter::AuthFailures, 1);
        let subject = Who {
            client_id: &client_id,
            username: connect.username.as_deref(),
            address: &peer,
        };
        let reason = if connect.username.is_some() {
            "bad username or password"
        } else {
            "anonymous clients not allowed"
        };
        broker.audit("auth_failure", subject, json!({ "reason": reason }));
        // Mosquitto answers "not authorised" whether or not a username was given, so that
        // the answer does not tell which usernames exist.
        refuse(&mut stream, version, &NOT_AUTHORISED, &who).await;
        return None;
    }

    // Keep alive: MQTT 5 clients are told the server's value when theirs exceeds the limit
    // (or is 0 while a limit is set). 3.x cannot be told, so a 3.x client asking for more
    // than a configured limit is refused with 0x02, as Mosquitto 2.0.12+ does against
    // CVE-2020-13849 (sockets held open for 1.5 × 65535 s).
    if !version.is_v5()
        && settings.max_keepalive < u16::MAX
        && connect.keep_alive > settings.max_keepalive
    {
        let r = Refusal {
            v3: v3::IDENTIFIER_REJECTED,
            v5: reason::CLIENT_IDENTIFIER_NOT_VALID,
            why: "keep alive above max_keepalive",
        };
        refuse(&mut stream, version, &r, &who).await;
        return None;
    }
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

    let will = connect.will.take().map(|mut w| {
        if let Some(mp) = &listener.mount_point {
            w.topic = format!("{mp}{}", &*w.topic).into();
        }
        Box::new(PendingWill {
            delay: w.properties.will_delay_interval.unwrap_or(0),
            will: w,
            publisher: Arc::clone(&client_id),
            username: username.clone(),
            listener: Some(Arc::clone(&listener)),
            peer: peer.clone(),
        })
    });

    let attached = broker.attach(&client_id, connect.clean_start, expiry);
    if attached.took_over {
        tracing::info!("Client {client_id} already connected, closing old connection.");
    }
    // A dynamic security change (client disabled, deleted, new password) applied between
    // the check above and the attach could not kick this connection: check again.
    let changed = policy
        .dynsec
        .as_ref()
        .is_some_and(|d| Some(d.changes()) != dynsec_changes);
    if changed
        && from_cert.is_none()
        && connect.username.is_some()
        && !authenticate(&broker, &policy, &connect, &client_id, &peer).await
    {
        broker.metrics.add(Counter::AuthFailures, 1);
        let subject = Who {
            client_id: &client_id,
            username: connect.username.as_deref(),
            address: &peer,
        };
        let reason = "credentials changed by dynamic security during the login";
        broker.audit("auth_failure", subject, json!({ "reason": reason }));
        broker.detach(&attached.session, attached.generation, None);
        refuse(&mut stream, version, &NOT_AUTHORISED, &who).await;
        return None;
    }
    attached.session.set_identity(Identity {
        username: username.clone(),
        listener: Arc::clone(&listener),
    });
    if attached.session_present {
        // Messages queued while the client was away are re-checked against the ACL now in
        // force: a reload may have taken rights away.
        let session = &attached.session;
        let mut st = session.state.lock();
        let before = st.queue.len();
        let mut forgotten = Vec::new();
        st.queue.retain(|d| {
            let keep = policy.may(username.as_deref(), &client_id, &d.msg.topic, Access::Read);
            if !keep && d.seq != 0 {
                forgotten.push(d.seq);
            }
            keep
        });
        st.queued_bytes = st.queue.iter().map(|d| d.msg.size()).sum();
        if st.queue.len() < before {
            tracing::info!(
                "Dropped {} queued message(s) for {client_id}: no longer authorised.",
                before - st.queue.len()
            );
        }
        if let Some(p) = &broker.persist {
            for seq in forgotten {
                p.submit(Op::RemoveDelivery {
                    client_id: client_id.to_string(),
                    seq,
                });
            }
        }
    }
    let stored = store_session(
        &broker,
        &attached,
        expiry,
        username.as_deref(),
        &listener,
        mosquitto_protocol_number(version),
        will.as_deref(),
    );

    let limits = ClientLimits {
        receive_maximum: props.receive_maximum.unwrap_or(u16::MAX),
        maximum_packet_size: props.maximum_packet_size.unwrap_or(MQTT_MAX_PACKET),
        topic_alias_maximum: props.topic_alias_maximum.unwrap_or(0),
    };

    let mut conn = Connection {
        broker: Arc::clone(&broker),
        listener: Arc::clone(&listener),
        _slot: slot,
        stream,
        rbuf,
        wbuf: BytesMut::new(),
        version,
        client_id: Arc::clone(&client_id),
        username: username.clone(),
        peer: Arc::from(peer.as_str()),
        session: attached.session,
        generation: attached.generation,
        // The CONNACK (and what follows) waits for the session to be stored.
        wbuf_ticket: stored,
        rate: midge_core::rate::PublishLimiter::new(
            settings.max_publish_rate,
            settings.max_publish_bytes_rate,
            Instant::now(),
        )
        .map(|limiter| {
            Box::new(super::RateLimit {
                limiter,
                paused_until: None,
            })
        }),
        keep_alive,
        last_activity: Instant::now(),
        will,
        connect_expiry: expiry,
        limits,
        in_aliases: HashMap::new(),
        out_aliases: HashMap::new(),
        next_out_alias: 1,
        bridge: false,
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
        if listener.max_topic_alias > 0 {
            p.topic_alias_maximum = Some(listener.max_topic_alias);
        }
        if settings.max_inflight < u16::MAX {
            p.receive_maximum = Some(settings.max_inflight);
        }
        if listener.max_qos < midge_proto::QoS::ExactlyOnce {
            p.maximum_qos = Some(listener.max_qos as u8);
        }
        if !broker.retain_available() {
            p.retain_available = Some(0);
        }
        if settings.max_packet_size < MQTT_MAX_PACKET {
            p.maximum_packet_size = Some(settings.max_packet_size);
        }
    }
    conn.send(&Packet::ConnAck(ack));
    conn.resend_inflight();
    broker.metrics.add(Counter::Connections, 1);
    // Paired with `client_disconnected` in `Connection::finish`.
    broker.metrics.client_connected();

    let user = username
        .as_deref()
        .map(|u| format!(", u'{u}'"))
        .unwrap_or_default();
    if !settings.connection_messages {
        return Some(conn);
    }
    tracing::info!(
        "New client connected from {} as {} (p{}, c{}, k{}{}).",
        peer_host(&peer),
        client_id,
        mosquitto_protocol_number(version),
        u8::from(connect.clean_start),
        keep_alive,
        user
    );
    Some(conn)
}

/// Writes the session as this CONNECT leaves it to the persistence store: a persistent
/// session (expiry above 0) is stored with its will; one a clean start discarded, or that
/// is no longer persistent, is removed. Returns the ticket the CONNACK waits for.
fn store_session(
    broker: &Broker,
    attached: &crate::broker::Attached,
    expiry: u32,
    username: Option<&str>,
    listener: &ListenerCtx,
    protocol: u8,
    will: Option<&PendingWill>,
) -> u64 {
    let Some(p) = &broker.persist else {
        return 0;
    };
    let session = &attached.session;
    let client_id = session.client_id.to_string();
    let mut st = session.state.lock();
    st.protocol = protocol;
    let mut ticket = 0;
    if attached.was_persisted && (!attached.session_present || expiry == 0) {
        ticket = p.submit(Op::DeleteSession {
            client_id: client_id.clone(),
        });
        st.persisted = false;
    }
    if expiry == 0 {
        return ticket;
    }
    p.submit(Op::UpsertSession {
        client_id: client_id.clone(),
        expiry_interval: expiry,
        disconnected_unix: None,
        username: username.map(str::to_owned),
        listener: u32::try_from(listener.index).unwrap_or(u32::MAX),
        protocol,
    });
    if !st.persisted {
        // A session resumed from memory that was not stored before: its subscriptions too.
        for (filter, entry) in &st.subscriptions {
            p.add_subscription(&client_id, filter, entry);
        }
    }
    let now = Instant::now();
    let will = will.map(|w| p.will(&w.clone().message(now), w.delay));
    ticket = p.submit(Op::SetWill { client_id, will });
    st.persisted = true;
    ticket
}

/// The client as refusal logs name it: id, username (never the password) and address.
fn describe(connect: &Connect, peer: &str) -> String {
    let id = if connect.client_id.is_empty() {
        "<empty id>"
    } else {
        &connect.client_id
    };
    super::describe_client(id, connect.username.as_deref(), peer)
}

/// The address part of `ip:port` (Mosquitto's log shows the address only).
fn peer_host(peer: &str) -> &str {
    match peer.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => {
            host.trim_start_matches('[').trim_end_matches(']')
        }
        _ => peer,
    }
}

/// Mosquitto's log numbers its protocols 1 (3.1), 2 (3.1.1) and 5.
fn mosquitto_protocol_number(v: ProtocolVersion) -> u8 {
    match v {
        ProtocolVersion::V31 => 1,
        ProtocolVersion::V311 => 2,
        ProtocolVersion::V5 => 5,
    }
}

/// Mosquitto's rules: a client with a username must be vouched for by the password file or
/// dynamic security when either is configured; without them a username is accepted only
/// where anonymous clients are; a client without a username needs `allow_anonymous`.
/// Hashing (PBKDF2, argon2id) runs off the I/O threads behind a limit, and unknown users
/// cost the same as known ones.
async fn authenticate(
    broker: &Broker,
    policy: &Arc<Policy>,
    connect: &Connect,
    client_id: &Arc<str>,
    peer: &str,
) -> bool {
    let Some(username) = connect.username.clone() else {
        return policy.allow_anonymous;
    };
    if !policy.checks_passwords() {
        return policy.allow_anonymous;
    }
    // Guessing slows down: failed logins from this address or for this username make
    // this one wait. A loopback address is usually a proxy speaking for many clients, so
    // only the username counts there.
    let addr = peer
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_loopback());
    let delay = broker
        .throttle
        .lock()
        .delay(addr, Some(&username), Instant::now());
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let password = connect.password.clone();
    let verified = {
        let policy = Arc::clone(policy);
        let client_id = Arc::clone(client_id);
        let username = username.clone();
        let Ok(_permit) = broker.hashing.acquire().await else {
            return false;
        };
        tokio::task::spawn_blocking(move || {
            policy.verify_login(&username, password.as_deref(), &client_id)
        })
        .await
        .unwrap_or(false)
    };
    let mut throttle = broker.throttle.lock();
    if verified {
        throttle.succeeded(Some(&username));
    } else {
        throttle.failed(addr, Some(&username), Instant::now());
    }
    verified
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
