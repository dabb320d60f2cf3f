//! The remote side of one bridge: connect (TCP, optionally TLS), CONNECT with the bridge
//! marker, subscribe to the `in` filters, then move messages both ways until the
//! connection ends; wait (`restart_timeout`) and try again, on the next address if the
//! attempt failed.
//!
//! The local side is a session of the broker's own (see the module above): deliveries are
//! taken from its mailbox with packet ids from its state, kept in its inflight map until the
//! remote acknowledges them, and resent with DUP after a reconnect.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use midge_core::bridge_reconnect::{AddressCycle, Backoff};
use midge_core::config::{BridgeAddress, BridgeProtocol, ReloadType, StartType};
use midge_proto::{
    decode_fixed_header, decode_packet, encode_packet, encode_publish, publish_len, Connect,
    OutgoingPublish, Packet, Properties, ProtocolVersion, PubResp, QoS, Sender, Subscribe,
    SubscribeFilter, SubscriptionOptions, Unsubscribe,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpSocket;
use tokio::sync::{mpsc, watch};

use super::{notifications, BridgeSpec, Control, Exit};
use crate::broker::Broker;
use crate::message::Message;
use crate::policy::PolicyHandle;
use crate::session::{OutFlight, OutState, Session, SubEntry};
use crate::settings::MQTT_MAX_PACKET;
use crate::store::Op;
use midge_core::acl::Access;

/// Time allowed for TCP + TLS + CONNACK.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a write to the remote may take before the connection counts as lost.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Stop taking deliveries from the mailbox beyond this many bytes per write.
const WRITE_HIGH_WATER: usize = 64 * 1024;
/// Packets decoded ahead of the bridge task.
const READ_AHEAD: usize = 64;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Why a connection to the remote ended.
enum End {
    /// Shutdown, removal or an immediate reload.
    Exit(Exit),
    /// `start_type lazy` and nothing crossed for `idle_timeout` seconds.
    Idle,
    Lost(String),
}

/// What can interrupt a bridge: the broker stopping, and reloads.
pub(crate) struct Signals<'a> {
    control: &'a mut watch::Receiver<Control>,
    shutdown: &'a mut watch::Receiver<bool>,
    /// A lazy reload that waits for the current connection to end.
    pending: bool,
}

impl<'a> Signals<'a> {
    pub(crate) fn new(
        control: &'a mut watch::Receiver<Control>,
        shutdown: &'a mut watch::Receiver<bool>,
    ) -> Signals<'a> {
        // What was already there when this run started is handled by the caller.
        Signals {
            control,
            shutdown,
            pending: false,
        }
    }

    /// Resolves when the bridge must stop what it is doing. `connected`: a lazy reload
    /// then waits for the connection to end (see [`Signals::take_pending`]).
    async fn next(&mut self, connected: bool) -> Exit {
        if *self.shutdown.borrow() {
            return Exit::Shutdown;
        }
        if !connected && std::mem::take(&mut self.pending) {
            return Exit::Replaced;
        }
        loop {
            tokio::select! {
                r = self.shutdown.changed() => {
                    if r.is_err() || *self.shutdown.borrow() {
                        return Exit::Shutdown;
                    }
                }
                r = self.control.changed() => {
                    if r.is_err() {
                        return Exit::Shutdown;
                    }
                    let control = self.control.borrow_and_update().clone();
                    match control {
                        Control::Run => {}
                        Control::Stop => return Exit::Removed,
                        Control::Replace(spec) => {
                            if !connected || spec.config.reload_type == ReloadType::Immediate {
                                return Exit::Replaced;
                            }
                            tracing::info!(
                                "Bridge {}: new settings apply at the next reconnection (bridge_reload_type lazy).",
                                spec.config.name
                            );
                            self.pending = true;
                        }
                    }
                }
            }
        }
    }

    /// A lazy reload that arrived during the connection that just ended.
    fn take_pending(&mut self) -> bool {
        std::mem::take(&mut self.pending)
    }
}

/// Ends the bridge's local session (removed bridge, or a new local client id): its
/// subscriptions and queue go, in memory and in the store.
pub(crate) fn forget_local_session(broker: &Broker, spec: &BridgeSpec) {
    if let Some(session) = broker.session(&spec.local_id) {
        broker.end_session(&session);
    }
}

/// Runs one bridge until shutdown, removal or a reload that changes it.
pub(crate) async fn run(
    spec: Arc<BridgeSpec>,
    broker: &Arc<Broker>,
    acl: Option<Arc<PolicyHandle>>,
    signals: &mut Signals<'_>,
) -> Exit {
    let cfg = &spec.config;
    let lazy = cfg.start_type == StartType::Lazy;
    let mut local = LocalSide::open(
        broker,
        &spec,
        cfg.local_cleansession.unwrap_or(cfg.cleansession),
        acl,
    );
    if let (Some(user), Some(policy)) = (&cfg.local_username, &local.acl) {
        check_local_password(&spec, user, policy).await;
    }
    if !lazy {
        // Offline until the remote is there: QoS 0 is not queued meanwhile (unless
        // `queue_qos0_messages`), QoS 1 and 2 are, up to `max_queued_messages`.
        local.offline();
    }
    notifications::publish_local(broker, &spec, false);
    let mut cycle = AddressCycle::new(cfg.addresses.len(), cfg.round_robin);
    let mut backoff = Backoff::new(cfg.restart_timeout);
    let mut private = cfg.try_private;
    loop {
        if lazy {
            tokio::select! {
                _ = wait_threshold(&local, cfg.threshold) => {}
                e = signals.next(false) => return e,
            }
        }
        let Some(address) = cfg.addresses.get(cycle.current()) else {
            return signals.next(false).await;
        };
        tracing::info!(
            "Connecting bridge {} ({}:{})",
            cfg.name,
            address.host,
            address.port
        );
        let attempt = tokio::select! {
            r = tokio::time::timeout(CONNECT_TIMEOUT, connect(&spec, broker, address, private)) => {
                r.unwrap_or_else(|_| Err(Failure::Other("timed out".into())))
            }
            e = signals.next(false) => return e,
        };
        let end = match attempt {
            Ok(remote) => {
                backoff.reset();
                // On a backup address without round_robin, watch for the primary's return.
                let primary = cfg
                    .addresses
                    .first()
                    .filter(|_| !cfg.round_robin && cycle.current() != 0);
                let end = remote
                    .serve(broker, &spec, &mut local, signals, primary)
                    .await;
                cycle.dropped();
                end
            }
            Err(Failure::PrivateRefused) => {
                tracing::info!(
                    "Bridge {}: the remote refused the bridge protocol marker; trying without it.",
                    cfg.name
                );
                private = false;
                cycle.failed();
                End::Lost("protocol marker refused".into())
            }
            Err(Failure::Other(why)) => {
                cycle.failed();
                End::Lost(why)
            }
        };
        if !lazy {
            local.offline();
        }
        notifications::publish_local(broker, &spec, false);
        match end {
            End::Exit(e) => return e,
            End::Idle => tracing::info!("Bridge {} stopped: idle.", cfg.name),
            End::Lost(ref why) => tracing::info!("Bridge {} disconnected: {why}.", cfg.name),
        }
        if signals.take_pending() {
            return Exit::Replaced;
        }
        if matches!(end, End::Idle) {
            continue;
        }
        if cfg.start_type == StartType::Once {
            tracing::info!("Bridge {}: start_type once, not restarting.", cfg.name);
            // Stays stopped until the broker stops or a reload changes it.
            return signals.next(false).await;
        }
        let wait = backoff.next(random());
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(u64::from(wait))) => {}
            e = signals.next(false) => return e,
        }
    }
}

/// `local_password` is checked once, against the broker's own passwords: a mismatch is
/// logged (Mosquitto never checks it; the bridge still runs under `local_username`'s ACLs).
async fn check_local_password(spec: &BridgeSpec, user: &str, policy: &Arc<PolicyHandle>) {
    let policy = policy.get();
    if !policy.checks_passwords() {
        return;
    }
    let user = user.to_owned();
    let password = spec.config.local_password.clone();
    let id = spec.local_id.to_string();
    let ok = tokio::task::spawn_blocking(move || {
        policy.verify_login(&user, password.as_deref().map(str::as_bytes), &id)
    })
    .await
    .unwrap_or(false);
    if !ok {
        tracing::warn!(
            "Bridge {}: local_username/local_password do not match the broker's passwords.",
            spec.config.name
        );
    }
}

fn random() -> u32 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    u32::from_le_bytes(b)
}

/// `start_type lazy`: returns once `threshold` messages are queued for the remote.
async fn wait_threshold(local: &LocalSide, threshold: u32) {
    let threshold = usize::try_from(threshold).unwrap_or(usize::MAX);
    loop {
        if local.session.state.lock().queue.len() >= threshold {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The bridge's session in the local broker.
struct LocalSide {
    broker: Arc<Broker>,
    spec: Arc<BridgeSpec>,
    session: Arc<Session>,
    generation: u64,
    /// `local_username`: the local ACLs the bridge's traffic is checked against.
    acl: Option<Arc<PolicyHandle>>,
}

impl LocalSide {
    fn open(
        broker: &Arc<Broker>,
        spec: &Arc<BridgeSpec>,
        clean: bool,
        acl: Option<Arc<PolicyHandle>>,
    ) -> LocalSide {
        let mut side = LocalSide {
            broker: Arc::clone(broker),
            spec: Arc::clone(spec),
            session: Session::new(Arc::clone(&spec.local_id), u32::MAX),
            generation: 0,
            acl: acl.filter(|_| spec.config.local_username.is_some()),
        };
        side.attach(clean);
        side
    }

    /// Whether the local ACLs let the bridge publish (`Write`) or receive (`Read`) `topic`:
    /// checked as `local_username` when set; without it the bridge is trusted, as in
    /// Mosquitto.
    fn may(&self, topic: &str, access: Access) -> bool {
        let Some(policy) = &self.acl else {
            return true;
        };
        let allowed = policy.get().may(
            self.spec.config.local_username.as_deref(),
            &self.spec.local_id,
            topic,
            access,
        );
        if !allowed {
            tracing::debug!(
                "Bridge {}: local ACL denies {} '{}' to {}.",
                self.spec.config.name,
                if access == Access::Write {
                    "publishing to"
                } else {
                    "receiving"
                },
                topic.escape_debug(),
                self.spec
                    .config
                    .local_username
                    .as_deref()
                    .unwrap_or_default(),
            );
        }
        allowed
    }

    /// Writes `op` to the store when the session is persisted; the ticket, or 0.
    fn store(&self, op: impl FnOnce(String) -> Op) -> u64 {
        match &self.broker.persist {
            Some(p) if self.session.state.lock().persisted => {
                p.submit(op(self.spec.local_id.to_string()))
            }
            _ => 0,
        }
    }

    /// Takes the session online (resuming it), with the bridge's local subscriptions.
    fn attach(&mut self, clean: bool) {
        let attached = self.broker.attach(&self.spec.local_id, clean, u32::MAX);
        let wanted = self.spec.maps.local_subscriptions();
        // Filters of an earlier configuration that no `topic` line asks for any more.
        let stale: Vec<String> = {
            let st = attached.session.state.lock();
            st.subscriptions
                .keys()
                .filter(|f| !wanted.iter().any(|(w, _)| w == *f))
                .cloned()
                .collect()
        };
        for filter in stale {
            self.broker.unsubscribe(&attached.session, &filter);
            attached.session.state.lock().subscriptions.remove(&filter);
            if let Some(p) = &self.broker.persist {
                p.submit(Op::RemoveSubscription {
                    client_id: self.spec.local_id.to_string(),
                    filter,
                });
            }
        }
        self.persist_session(&attached, clean);
        for (filter, qos) in wanted {
            let entry = SubEntry {
                options: SubscriptionOptions {
                    qos: QoS::from_u8(qos).unwrap_or_default(),
                    // What the bridge publishes locally never goes back (no loops), and
                    // the retain flag crosses as published, as Mosquitto's bridges do.
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: 2,
                },
                id: None,
            };
            self.broker.subscribe(&attached.session, &filter, entry);
            let mut st = attached.session.state.lock();
            let new = st.subscriptions.insert(filter.clone(), entry) != Some(entry);
            if let Some(p) = self.broker.persist.as_ref().filter(|_| st.persisted && new) {
                p.add_subscription(&self.spec.local_id, &filter, &entry);
            }
        }
        self.session = attached.session;
        self.generation = attached.generation;
    }

    /// With persistence, a bridge whose local side is not clean keeps its queue across a
    /// restart of the broker, as any persistent session does (and as Mosquitto does).
    fn persist_session(&self, attached: &crate::broker::Attached, clean: bool) {
        let Some(p) = &self.broker.persist else {
            return;
        };
        let client_id = self.spec.local_id.to_string();
        let mut st = attached.session.state.lock();
        if clean {
            if attached.was_persisted || st.persisted {
                p.submit(Op::DeleteSession { client_id });
            }
            st.persisted = false;
            return;
        }
        if st.persisted {
            return;
        }
        p.submit(Op::UpsertSession {
            client_id: client_id.clone(),
            expiry_interval: u32::MAX,
            disconnected_unix: None,
            username: self.spec.config.local_username.clone(),
            listener: u32::MAX,
            protocol: 4,
        });
        for (filter, entry) in &st.subscriptions {
            p.add_subscription(&client_id, filter, entry);
        }
        st.persisted = true;
    }

    /// A delivery the remote acknowledged (or refused) leaves the store.
    fn delivery_done(&self, done: Option<OutFlight>) {
        let Some(seq) = done.map(|f| f.delivery.seq).filter(|&s| s != 0) else {
            return;
        };
        if let Some(p) = &self.broker.persist {
            p.remove_delivery(&self.spec.local_id, seq);
        }
    }

    /// Whether a client with the bridge's local id has taken the session.
    fn lost(&self) -> bool {
        let st = self.session.state.lock();
        st.ended || st.generation != self.generation
    }

    fn online(&mut self) {
        if self.lost() || self.generation == 0 {
            self.attach(false);
        }
    }

    fn offline(&mut self) {
        let mut st = self.session.state.lock();
        if st.generation == self.generation && !st.ended {
            st.generation = 0;
            drop(st);
            self.session.set_online(false);
        }
        self.generation = 0;
    }
}

enum Failure {
    /// CONNACK "unacceptable protocol version" to a CONNECT with the bridge marker.
    PrivateRefused,
    Other(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Failure {
        Failure::Other(s)
    }
}

/// A connected remote broker.
struct Remote {
    writer: WriteHalf<Box<dyn Io>>,
    packets: mpsc::Receiver<Result<Packet, String>>,
    reader: tokio::task::JoinHandle<()>,
    version: ProtocolVersion,
    wbuf: BytesMut,
    session_present: bool,
    /// The remote's receive maximum (MQTT 5), else 65535.
    receive_maximum: u16,
    /// The largest packet the remote takes, and `bridge_max_packet_size`.
    max_packet: usize,
    max_qos: QoS,
    retain_available: bool,
    keep_alive: u16,
    /// Packet id of the `1` notification published on the remote, until acknowledged.
    notify_id: Option<u16>,
    /// SUBSCRIBE packet ids awaiting SUBACK, with how many filters each carried.
    pending_subs: Vec<(u16, usize)>,
    /// The highest store ticket the write buffer depends on (0: none).
    ticket: u64,
    /// Topic aliases the remote set up (MQTT 5, at most `bridge_max_topic_alias`).
    in_aliases: std::collections::HashMap<u16, bytestring::ByteString>,
    last_received: Instant,
    last_sent: Instant,
    /// When the last PINGREQ went out: one per keepalive period at most.
    last_ping: Instant,
    last_traffic: Instant,
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn protocol(p: BridgeProtocol) -> ProtocolVersion {
    match p {
        BridgeProtocol::Mqtt31 => ProtocolVersion::V31,
        BridgeProtocol::Mqtt311 => ProtocolVersion::V311,
        BridgeProtocol::Mqtt5 => ProtocolVersion::V5,
    }
}

async fn tcp(spec: &BridgeSpec, address: &BridgeAddress) -> Result<tokio::net::TcpStream, String> {
    let addrs = tokio::net::lookup_host((address.host.as_str(), address.port))
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", address.host))?;
    let bind = match &spec.config.bind_address {
        Some(b) => Some(
            tokio::net::lookup_host((b.as_str(), 0))
                .await
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| format!("cannot resolve bridge_bind_address {b}"))?,
        ),
        None => None,
    };
    let mut last = format!("no address for {}", address.host);
    for addr in addrs {
        if bind.is_some_and(|b| b.is_ipv4() != addr.is_ipv4()) {
            continue;
        }
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| e.to_string())?;
        if let Some(b) = bind {
            socket
                .bind(b)
                .map_err(|e| format!("bridge_bind_address {b}: {e}"))?;
        }
        match socket.connect(addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                socket_options(&s, &spec.config)?;
                return Ok(s);
            }
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(last)
}

/// `bridge_tcp_keepalive` and `bridge_tcp_user_timeout`: the kernel notices a dead remote
/// before the MQTT keepalive would.
fn socket_options(
    stream: &tokio::net::TcpStream,
    cfg: &midge_core::config::BridgeConfig,
) -> Result<(), String> {
    let sock = socket2::SockRef::from(stream);
    if let Some((idle, interval, count)) = cfg.tcp_keepalive {
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(u64::from(idle)))
            .with_interval(Duration::from_secs(u64::from(interval)))
            .with_retries(count);
        sock.set_tcp_keepalive(&keepalive)
            .map_err(|e| format!("bridge_tcp_keepalive: {e}"))?;
    }
    if let Some(ms) = cfg.tcp_user_timeout {
        sock.set_tcp_user_timeout(Some(Duration::from_millis(u64::from(ms))))
            .map_err(|e| format!("bridge_tcp_user_timeout: {e}"))?;
    }
    Ok(())
}

async fn transport(spec: &BridgeSpec, address: &BridgeAddress) -> Result<Box<dyn Io>, String> {
    let tcp = tcp(spec, address).await?;
    let Some(tls) = &spec.tls else {
        return Ok(Box::new(tcp));
    };
    let mut config = tls.connector.configure().map_err(|e| e.to_string())?;
    if tls.skip_hostname {
        config.set_verify_hostname(false);
    }
    tls.prepare(&mut config)?;
    let ssl = config
        .into_ssl(&address.host)
        .map_err(|e| format!("TLS: {e}"))?;
    let mut stream = tokio_openssl::SslStream::new(ssl, tcp).map_err(|e| format!("TLS: {e}"))?;
    let handshake = std::pin::Pin::new(&mut stream).connect().await;
    handshake.map_err(|e| tls.handshake_error(stream.ssl(), &e))?;
    Ok(Box::new(stream))
}

/// Encodes CONNECT; with `try_private` on MQTT 3.x, bit 7 of the protocol level says "I am a
/// bridge" so the remote does not send the bridge's own messages back (Mosquitto's marker).
fn encode_connect(connect: &Connect, private: bool, buf: &mut BytesMut) {
    let start = buf.len();
    encode_packet(
        &Packet::Connect(Box::new(connect.clone())),
        connect.protocol,
        buf,
    );
    if !private || connect.protocol.is_v5() {
        return;
    }
    let Ok(Some(header)) = decode_fixed_header(&buf[start..]) else {
        return;
    };
    let name_at = start + header.header_len;
    if let (Some(&hi), Some(&lo)) = (buf.get(name_at), buf.get(name_at + 1)) {
        let level_at = name_at + 2 + usize::from(u16::from_be_bytes([hi, lo]));
        if let Some(level) = buf.get_mut(level_at) {
            *level |= 0x80;
        }
    }
}

async fn connect(
    spec: &BridgeSpec,
    broker: &Broker,
    address: &BridgeAddress,
    private: bool,
) -> Result<Remote, Failure> {
    let cfg = &spec.config;
    let version = protocol(cfg.protocol_version);
    let io = transport(spec, address).await?;
    let (mut rd, mut writer) = tokio::io::split(io);
    let mut properties = Properties::default();
    if version.is_v5() {
        // Without bridge_session_expiry_interval, a persistent bridge session outlives the
        // connection, as 3.1.1's clean session 0 does.
        properties.session_expiry_interval = cfg
            .session_expiry_interval
            .or((!cfg.cleansession).then_some(u32::MAX))
            .filter(|&s| s != 0);
        properties.receive_maximum = Some(
            cfg.receive_maximum
                .unwrap_or(broker.settings.max_inflight)
                .max(1),
        );
        properties.topic_alias_maximum = Some(cfg.max_topic_alias).filter(|&n| n != 0);
        if broker.settings.max_packet_size < MQTT_MAX_PACKET {
            properties.maximum_packet_size = Some(broker.settings.max_packet_size);
        }
    }
    let connect = Connect {
        protocol: version,
        clean_start: cfg.cleansession,
        keep_alive: cfg.keepalive_interval,
        client_id: spec.remote_id.clone(),
        will: notifications::remote_will(spec),
        username: cfg.remote_username.clone(),
        password: cfg
            .remote_password
            .as_ref()
            .filter(|_| cfg.remote_username.is_some())
            .map(|p| bytes::Bytes::copy_from_slice(p.as_bytes())),
        properties,
    };
    let mut buf = BytesMut::new();
    encode_connect(&connect, private, &mut buf);
    writer
        .write_all(&buf)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let cap = usize::try_from(broker.settings.max_packet_size).unwrap_or(usize::MAX);
    let mut rbuf = BytesMut::new();
    let ack = loop {
        if let Some(packet) = take_packet(&mut rbuf, cap, version)? {
            break packet;
        }
        match rd.read_buf(&mut rbuf).await {
            Ok(0) => return Err(Failure::Other("connection closed before CONNACK".into())),
            Ok(_) => {}
            Err(e) => return Err(Failure::Other(format!("read: {e}"))),
        }
    };
    let Packet::ConnAck(ack) = ack else {
        return Err(Failure::Other(format!(
            "expected CONNACK, got {}",
            ack.name()
        )));
    };
    if ack.code != 0 {
        if private
            && !version.is_v5()
            && ack.code == midge_proto::reason::v3::UNACCEPTABLE_PROTOCOL_VERSION
        {
            return Err(Failure::PrivateRefused);
        }
        return Err(Failure::Other(format!(
            "connection refused by the remote (code {})",
            ack.code
        )));
    }
    let p = &ack.properties;
    let mut max_packet = p.maximum_packet_size.map_or(usize::MAX, |m| m as usize);
    if let Some(m) = cfg.max_packet_size {
        max_packet = max_packet.min(m as usize);
    }
    let (tx, packets) = mpsc::channel(READ_AHEAD);
    let reader = tokio::spawn(read_loop(rd, rbuf, cap, version, tx));
    let now = Instant::now();
    Ok(Remote {
        writer,
        packets,
        reader,
        version,
        wbuf: BytesMut::new(),
        session_present: ack.session_present,
        receive_maximum: p.receive_maximum.unwrap_or(u16::MAX),
        max_packet,
        max_qos: p
            .maximum_qos
            .and_then(QoS::from_u8)
            .unwrap_or(QoS::ExactlyOnce),
        retain_available: p.retain_available != Some(0),
        keep_alive: p.server_keep_alive.unwrap_or(cfg.keepalive_interval),
        notify_id: None,
        pending_subs: Vec::new(),
        ticket: 0,
        in_aliases: std::collections::HashMap::new(),
        last_received: now,
        last_sent: now,
        last_ping: now,
        last_traffic: now,
    })
}

/// Cuts one packet out of `rbuf`; the remote is a server, so client-only packets are errors.
fn take_packet(
    rbuf: &mut BytesMut,
    cap: usize,
    version: ProtocolVersion,
) -> Result<Option<Packet>, String> {
    let Some(header) = decode_fixed_header(rbuf).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    if header.packet_len() > cap {
        return Err(format!(
            "packet of {} bytes from the remote is over the limit",
            header.packet_len()
        ));
    }
    if rbuf.len() < header.packet_len() {
        rbuf.reserve(header.packet_len() - rbuf.len());
        return Ok(None);
    }
    let first = header.first_byte;
    rbuf.advance(header.header_len);
    let body = rbuf.split_to(header.remaining_length).freeze();
    decode_packet(first, body, version, Sender::Server)
        .map(Some)
        .map_err(|e| format!("bad packet from the remote: {e}"))
}

async fn read_loop(
    mut rd: ReadHalf<Box<dyn Io>>,
    mut rbuf: BytesMut,
    cap: usize,
    version: ProtocolVersion,
    tx: mpsc::Sender<Result<Packet, String>>,
) {
    loop {
        loop {
            match take_packet(&mut rbuf, cap, version) {
                Ok(Some(p)) => {
                    if tx.send(Ok(p)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
        rbuf.reserve(16 * 1024);
        match rd.read_buf(&mut rbuf).await {
            Ok(0) => {
                let _ = tx.send(Err("connection closed by the remote".into())).await;
                return;
            }
            Ok(_) => {}
            Err(e) => {
                let _ = tx.send(Err(format!("read: {e}"))).await;
                return;
            }
        }
    }
}

impl Remote {
    fn send(&mut self, packet: &Packet) {
        encode_packet(packet, self.version, &mut self.wbuf);
    }

    async fn flush(&mut self, broker: &Broker) -> Result<(), String> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        // The write barrier: nothing leaves before what it depends on is stored.
        if let Some(p) = broker.persist.as_ref().filter(|_| self.ticket != 0) {
            p.wait(std::mem::take(&mut self.ticket)).await;
        }
        self.writer
            .write_all(&self.wbuf)
            .await
            .map_err(|e| format!("write: {e}"))?;
        self.wbuf.clear();
        self.last_sent = Instant::now();
        Ok(())
    }

    /// After CONNACK: the notification, the subscriptions, what is still in flight.
    fn start(&mut self, spec: &BridgeSpec, local: &LocalSide) {
        let cfg = &spec.config;
        if notifications::on_remote(spec) {
            let id = local.session.state.lock().next_packet_id().unwrap_or(1);
            self.notify_id = Some(id);
            self.send(&Packet::Publish(notifications::remote_up(spec, id)));
        }
        for (filter, qos) in spec.maps.remote_subscriptions() {
            let id = local.session.state.lock().next_packet_id().unwrap_or(1);
            let v5 = self.version.is_v5();
            self.pending_subs.push((id, 1));
            self.send(&Packet::Subscribe(Subscribe {
                packet_id: id,
                filters: vec![SubscribeFilter {
                    filter,
                    options: SubscriptionOptions {
                        qos: QoS::from_u8(qos).unwrap_or_default(),
                        // MQTT 5 has no bridge marker: no-local keeps our own messages from
                        // coming back, retain-as-published keeps the retain flag.
                        no_local: v5,
                        retain_as_published: v5,
                        retain_handling: 0,
                    },
                }],
                properties: Properties::default(),
            }));
        }
        if cfg.attempt_unsubscribe {
            for filter in spec.maps.out_only_remote_filters() {
                let id = local.session.state.lock().next_packet_id().unwrap_or(1);
                self.send(&Packet::Unsubscribe(Unsubscribe {
                    packet_id: id,
                    filters: vec![filter],
                    properties: Properties::default(),
                }));
            }
        }
        self.resend_inflight(spec, local);
    }

    /// Unacknowledged messages go again with DUP; a QoS 2 message the remote already has
    /// gets its PUBREL again (or is forgotten when the remote kept no session).
    fn resend_inflight(&mut self, spec: &BridgeSpec, local: &LocalSide) {
        let mut st = local.session.state.lock();
        let mut ids: Vec<u16> = st.inflight.keys().copied().collect();
        ids.sort_unstable();
        let now = Instant::now();
        for id in ids {
            let Some(state) = st.inflight.get(&id).map(|f| f.state) else {
                continue;
            };
            if state == OutState::AwaitPubComp {
                if self.session_present {
                    self.send(&Packet::PubRel(PubResp::new(id)));
                } else {
                    st.remove_inflight(id);
                }
                continue;
            }
            let topic = st
                .inflight
                .get(&id)
                .and_then(|f| spec.maps.to_remote(&f.delivery.msg.topic));
            let Some(topic) = topic else {
                st.remove_inflight(id);
                continue;
            };
            let Some(flight) = st.inflight.get(&id) else {
                continue;
            };
            let d = &flight.delivery;
            let out = OutgoingPublish {
                dup: true,
                qos: d.qos,
                retain: d.retain,
                topic: &topic,
                packet_id: id,
                payload: &d.msg.payload,
                properties: &d.msg.properties,
                topic_alias: None,
                subscription_identifiers: &[],
                message_expiry_interval: d.msg.remaining_expiry(now),
            };
            encode_publish(&out, self.version, &mut self.wbuf);
        }
    }

    /// Moves deliveries from the local mailbox into the write buffer, within the window.
    fn fill(
        &mut self,
        broker: &Broker,
        spec: &BridgeSpec,
        local: &LocalSide,
    ) -> Result<(), String> {
        let mut st = local.session.state.lock();
        if st.ended || st.generation != local.generation {
            return Err("the local session was taken over".into());
        }
        let window = usize::from(
            broker
                .settings
                .max_inflight
                .min(self.receive_maximum)
                .max(1),
        );
        let now = Instant::now();
        while self.wbuf.len() < WRITE_HIGH_WATER {
            let Some(front) = st.queue.front() else {
                break;
            };
            if front.qos != QoS::AtMostOnce {
                let max_bytes = broker.settings.max_inflight_bytes;
                let over_bytes = max_bytes != 0 && st.inflight_bytes >= max_bytes;
                if st.inflight.len() >= window || over_bytes {
                    break;
                }
            }
            let Some(mut delivery) = st.pop_delivery() else {
                break;
            };
            let persist = broker.persist.as_ref().filter(|_| delivery.seq != 0);
            let forget = |persist: Option<&crate::persist::Persist>, seq: u64| {
                persist.map_or(0, |p| p.remove_delivery(&spec.local_id, seq))
            };
            if delivery.msg.is_expired(now) {
                self.ticket = self.ticket.max(forget(persist, delivery.seq));
                continue;
            }
            let own_state = delivery.msg.publisher.is_none()
                && spec.config.notifications
                && *delivery.msg.topic == *spec.notification_topic;
            let Some(topic) = spec
                .maps
                .to_remote(&delivery.msg.topic)
                .filter(|_| !own_state)
            else {
                self.ticket = self.ticket.max(forget(persist, delivery.seq));
                continue;
            };
            if local.acl.is_some() && !local.may(&delivery.msg.topic, Access::Read) {
                self.ticket = self.ticket.max(forget(persist, delivery.seq));
                continue;
            }
            delivery.qos = delivery.qos.min(self.max_qos);
            delivery.retain =
                delivery.retain && spec.config.outgoing_retain && self.retain_available;
            let mut out = OutgoingPublish {
                dup: false,
                qos: delivery.qos,
                retain: delivery.retain,
                topic: &topic,
                packet_id: 1,
                payload: &delivery.msg.payload,
                properties: &delivery.msg.properties,
                topic_alias: None,
                subscription_identifiers: &[],
                message_expiry_interval: delivery.msg.remaining_expiry(now),
            };
            if publish_len(&out, self.version) > self.max_packet {
                tracing::debug!(
                    "Bridge {}: dropped message on '{topic}': larger than the maximum packet size.",
                    spec.config.name
                );
                self.ticket = self.ticket.max(forget(persist, delivery.seq));
                continue;
            }
            if delivery.qos == QoS::AtMostOnce {
                out.packet_id = 0;
                encode_publish(&out, self.version, &mut self.wbuf);
                continue;
            }
            let Some(id) = st.next_packet_id() else {
                break;
            };
            if let Some(p) = persist {
                // Stored before the PUBLISH leaves (see `flush`): a resend after a restart
                // of the broker carries the same packet id.
                self.ticket = self
                    .ticket
                    .max(p.sent_delivery(&spec.local_id, delivery.seq, id, 1));
            }
            out.packet_id = id;
            encode_publish(&out, self.version, &mut self.wbuf);
            let state = if delivery.qos == QoS::AtLeastOnce {
                OutState::AwaitPubAck
            } else {
                OutState::AwaitPubRec
            };
            st.add_inflight(id, OutFlight { delivery, state });
            self.last_traffic = now;
        }
        Ok(())
    }

    /// One packet from the remote.
    async fn handle(
        &mut self,
        broker: &Broker,
        spec: &BridgeSpec,
        local: &LocalSide,
        packet: Packet,
    ) -> Result<(), String> {
        self.last_received = Instant::now();
        match packet {
            Packet::Publish(p) => self.incoming(broker, spec, local, p).await,
            Packet::PubAck(r) => {
                if self.notify_id == Some(r.packet_id) {
                    self.notify_id = None;
                } else {
                    let mut st = local.session.state.lock();
                    if st.inflight.get(&r.packet_id).map(|f| f.state) == Some(OutState::AwaitPubAck)
                    {
                        let done = st.remove_inflight(r.packet_id);
                        drop(st);
                        local.delivery_done(done);
                    }
                }
                Ok(())
            }
            Packet::PubRec(r) => {
                let release = {
                    let mut st = local.session.state.lock();
                    match st.inflight.get_mut(&r.packet_id) {
                        Some(f) if f.state == OutState::AwaitPubRec && r.reason < 0x80 => {
                            f.state = OutState::AwaitPubComp;
                            Some(f.delivery.seq)
                        }
                        Some(f) if f.state == OutState::AwaitPubRec => {
                            let done = st.remove_inflight(r.packet_id);
                            drop(st);
                            local.delivery_done(done);
                            None
                        }
                        _ => None,
                    }
                };
                if let Some(seq) = release {
                    // A restart resends PUBREL, not the message.
                    if seq != 0 {
                        let packet_id = r.packet_id;
                        self.ticket =
                            self.ticket.max(local.store(|client_id| Op::UpdateDelivery {
                                client_id,
                                seq,
                                packet_id: Some(packet_id),
                                state: 2,
                            }));
                    }
                    self.send(&Packet::PubRel(PubResp::new(r.packet_id)));
                }
                Ok(())
            }
            Packet::PubComp(r) => {
                let mut st = local.session.state.lock();
                if st.inflight.get(&r.packet_id).map(|f| f.state) == Some(OutState::AwaitPubComp) {
                    let done = st.remove_inflight(r.packet_id);
                    drop(st);
                    local.delivery_done(done);
                }
                Ok(())
            }
            Packet::PubRel(r) => {
                if local.session.state.lock().inbound_qos2.remove(&r.packet_id) {
                    let packet_id = r.packet_id;
                    local.store(|client_id| Op::RemoveInboundQos2 {
                        client_id,
                        packet_id,
                    });
                }
                self.send(&Packet::PubComp(PubResp::new(r.packet_id)));
                Ok(())
            }
            Packet::SubAck(ack) => {
                let Some(at) = self
                    .pending_subs
                    .iter()
                    .position(|(id, _)| *id == ack.packet_id)
                else {
                    return Err(format!("SUBACK for unknown packet id {}", ack.packet_id));
                };
                let (_, count) = self.pending_subs.swap_remove(at);
                // CVE-2024-10525: a SUBACK must answer every filter, no fewer, no more.
                if ack.codes.len() != count {
                    return Err(format!(
                        "SUBACK with {} reason codes for {count} filters",
                        ack.codes.len()
                    ));
                }
                if let Some(code) = ack.codes.iter().find(|c| **c >= 0x80) {
                    tracing::warn!(
                        "Bridge {}: the remote refused a subscription (code {code:#04x}).",
                        spec.config.name
                    );
                }
                Ok(())
            }
            Packet::UnsubAck(_) | Packet::PingResp => Ok(()),
            Packet::Disconnect(d) => Err(format!(
                "the remote sent DISCONNECT (reason {:#04x})",
                d.reason
            )),
            other => Err(format!("unexpected {} from the remote", other.name())),
        }
    }

    /// A PUBLISH from the remote: mapped into the local topic space and routed, then
    /// acknowledged (after the store has it, with persistence).
    async fn incoming(
        &mut self,
        broker: &Broker,
        spec: &BridgeSpec,
        local: &LocalSide,
        p: midge_proto::Publish,
    ) -> Result<(), String> {
        let now = Instant::now();
        self.last_traffic = now;
        if !p.payload.is_empty() && crate::heap::over(broker.settings.memory_limit) {
            // Not acknowledged: the remote sends it again once the connection is back.
            return Err("memory_limit reached".into());
        }
        let mut p = p;
        if let Some(alias) = p.properties.topic_alias.take() {
            if alias == 0 || alias > spec.config.max_topic_alias {
                return Err(format!("topic alias {alias} out of range"));
            }
            if p.topic.is_empty() {
                p.topic = self
                    .in_aliases
                    .get(&alias)
                    .cloned()
                    .ok_or_else(|| format!("unknown topic alias {alias}"))?;
            } else {
                self.in_aliases.insert(alias, p.topic.clone());
            }
        }
        let duplicate = p.qos == QoS::ExactlyOnce
            && !local.session.state.lock().inbound_qos2.insert(p.packet_id);
        let mut ticket = 0;
        if p.qos == QoS::ExactlyOnce && !duplicate {
            // Exactly once across a restart: the id is stored before the message is routed.
            let packet_id = p.packet_id;
            ticket = local.store(|client_id| Op::AddInboundQos2 {
                client_id,
                packet_id,
            });
        }
        match spec.maps.to_local(&p.topic) {
            Some(topic) if !duplicate && !local.may(&topic, Access::Write) => {}
            Some(topic) if !duplicate => {
                let msg = Message::new(
                    topic.into(),
                    p.payload,
                    p.qos,
                    p.retain,
                    p.properties,
                    now,
                    Some(Arc::clone(&spec.local_id)),
                );
                ticket = ticket.max(broker.publish_stored(&Arc::new(msg), now).1);
            }
            Some(_) => {}
            None => tracing::debug!(
                "Bridge {}: dropped message from the remote on '{}': no topic maps it.",
                spec.config.name,
                p.topic.escape_debug()
            ),
        }
        if ticket != 0 {
            if let Some(persist) = &broker.persist {
                persist.wait(ticket).await;
            }
        }
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.send(&Packet::PubAck(PubResp::new(p.packet_id))),
            QoS::ExactlyOnce => self.send(&Packet::PubRec(PubResp::new(p.packet_id))),
        }
        Ok(())
    }

    /// A clean end: the will is not published after DISCONNECT, so the `0` goes first.
    async fn goodbye(&mut self, broker: &Broker, spec: &BridgeSpec) {
        if notifications::on_remote(spec) {
            self.send(&Packet::Publish(notifications::remote_down(spec)));
        }
        self.send(&Packet::Disconnect(Default::default()));
        let _ = tokio::time::timeout(Duration::from_secs(1), self.flush(broker)).await;
    }

    /// Moves messages both ways until the connection ends.
    async fn serve(
        mut self,
        broker: &Arc<Broker>,
        spec: &Arc<BridgeSpec>,
        local: &mut LocalSide,
        signals: &mut Signals<'_>,
        primary: Option<&BridgeAddress>,
    ) -> End {
        let cfg = &spec.config;
        tracing::info!("Bridge {} connected.", cfg.name);
        let mut primary_back = PrimaryProbe::start(spec, primary);
        local.online();
        if !self.session_present {
            local.session.state.lock().inbound_qos2.clear();
        }
        self.start(spec, local);
        notifications::publish_local(broker, spec, true);
        let keep_alive = Duration::from_secs(u64::from(self.keep_alive.max(1)));
        let idle = (cfg.start_type == StartType::Lazy)
            .then(|| Duration::from_secs(u64::from(cfg.idle_timeout)));
        let end = loop {
            if let Err(e) = self.fill(broker, spec, local) {
                break End::Lost(e);
            }
            // A remote that stops reading is lost after WRITE_TIMEOUT; shutdown does not wait.
            let flushed = tokio::select! {
                r = tokio::time::timeout(WRITE_TIMEOUT, self.flush(broker)) => {
                    r.unwrap_or_else(|_| Err("write timed out".into()))
                }
                e = signals.next(true) => break End::Exit(e),
            };
            if let Err(e) = flushed {
                break End::Lost(e);
            }
            let now = Instant::now();
            let silent_limit = keep_alive + keep_alive / 2;
            if now.duration_since(self.last_received) >= silent_limit {
                break End::Lost("keepalive timeout".into());
            }
            if let Some(idle) = idle {
                let empty = {
                    let st = local.session.state.lock();
                    st.queue.is_empty() && st.inflight.is_empty()
                };
                if empty && now.duration_since(self.last_traffic) >= idle {
                    self.goodbye(broker, spec).await;
                    break End::Idle;
                }
            }
            // Quiet in either direction for a keepalive period: PINGREQ (whose answer
            // proves the remote is alive), at most once per period.
            let ping_at = self.last_sent.min(self.last_received).max(self.last_ping) + keep_alive;
            tokio::select! {
                p = self.packets.recv() => match p {
                    Some(Ok(packet)) => {
                        if let Err(e) = self.handle(broker, spec, local, packet).await {
                            break End::Lost(e);
                        }
                    }
                    Some(Err(e)) => break End::Lost(e),
                    None => break End::Lost("connection closed".into()),
                },
                _ = local.session.wake.notified() => {}
                _ = primary_back.returned() => {
                    self.goodbye(broker, spec).await;
                    break End::Lost("the primary address is reachable again".into());
                }
                // Wakes the check above when the remote has been silent too long.
                _ = tokio::time::sleep_until((self.last_received + silent_limit).into()) => {}
                _ = tokio::time::sleep_until(ping_at.into()) => {
                    self.send(&Packet::PingReq);
                    self.last_ping = Instant::now();
                }
                _ = tokio::time::sleep(Duration::from_secs(1)), if idle.is_some() => {}
                e = signals.next(true) => {
                    self.goodbye(broker, spec).await;
                    break End::Exit(e);
                }
            }
        };
        end
    }
}

/// Mosquitto's primary check: while a bridge without `round_robin` is on a backup address,
/// a TCP connection to the primary is tried every few seconds; once one succeeds the bridge
/// leaves the backup and reconnects to the primary.
struct PrimaryProbe(
    Option<(
        tokio::task::JoinHandle<()>,
        tokio::sync::oneshot::Receiver<()>,
    )>,
);

/// Time between two attempts on the primary (Mosquitto: 5 seconds).
const PRIMARY_PROBE_EVERY: Duration = Duration::from_secs(5);

impl PrimaryProbe {
    fn start(spec: &Arc<BridgeSpec>, primary: Option<&BridgeAddress>) -> PrimaryProbe {
        let Some(primary) = primary.cloned() else {
            return PrimaryProbe(None);
        };
        let spec = Arc::clone(spec);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(PRIMARY_PROBE_EVERY).await;
                let attempt = tokio::time::timeout(PRIMARY_PROBE_EVERY, tcp(&spec, &primary));
                if let Ok(Ok(_)) = attempt.await {
                    let _ = tx.send(());
                    return;
                }
            }
        });
        PrimaryProbe(Some((task, rx)))
    }

    /// Resolves once the primary accepted a connection; never without a probe.
    async fn returned(&mut self) {
        let Some((_, rx)) = &mut self.0 else {
            return std::future::pending().await;
        };
        let reached = rx.await.is_ok();
        // A finished receiver must not be polled again.
        if let Some((task, _)) = self.0.take() {
            task.abort();
        }
        if !reached {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for PrimaryProbe {
    fn drop(&mut self) {
        if let Some((task, _)) = &self.0 {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use midge_core::config::BridgeConfig;

    #[tokio::test]
    async fn tcp_keepalive_and_user_timeout_reach_the_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let sock = socket2::SockRef::from(&stream);
        assert!(!sock.keepalive().unwrap());
        let cfg = BridgeConfig {
            tcp_keepalive: Some((30, 7, 4)),
            tcp_user_timeout: Some(12_000),
            ..BridgeConfig::new("t", 1, "test.conf")
        };
        socket_options(&stream, &cfg).unwrap();
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.keepalive_time().unwrap(), Duration::from_secs(30));
        assert_eq!(sock.keepalive_interval().unwrap(), Duration::from_secs(7));
        assert_eq!(sock.keepalive_retries().unwrap(), 4);
        assert_eq!(
            sock.tcp_user_timeout().unwrap(),
            Some(Duration::from_millis(12_000))
        );
    }

    #[tokio::test]
    async fn without_the_options_the_socket_keeps_the_system_defaults() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        socket_options(&stream, &BridgeConfig::new("t", 1, "test.conf")).unwrap();
        let sock = socket2::SockRef::from(&stream);
        assert!(!sock.keepalive().unwrap());
        assert_eq!(sock.tcp_user_timeout().unwrap(), None);
    }
}
