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
use midge_core::config::{BridgeAddress, BridgeProtocol, StartType};
use midge_proto::{
    decode_fixed_header, decode_packet, encode_packet, encode_publish, publish_len, Connect,
    OutgoingPublish, Packet, Properties, ProtocolVersion, PubResp, QoS, Sender, Subscribe,
    SubscribeFilter, SubscriptionOptions, Unsubscribe,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpSocket;
use tokio::sync::{mpsc, watch};

use super::{notifications, BridgeSpec};
use crate::broker::Broker;
use crate::message::Message;
use crate::session::{OutFlight, OutState, Session, SubEntry};
use crate::settings::MQTT_MAX_PACKET;

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
    Shutdown,
    /// `start_type lazy` and nothing crossed for `idle_timeout` seconds.
    Idle,
    Lost(String),
}

/// Runs one bridge until shutdown.
pub(crate) async fn run(
    spec: Arc<BridgeSpec>,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) {
    let cfg = &spec.config;
    let lazy = cfg.start_type == StartType::Lazy;
    let mut local = LocalSide::open(
        &broker,
        &spec,
        cfg.local_cleansession.unwrap_or(cfg.cleansession),
    );
    if !lazy {
        // Offline until the remote is there: QoS 0 is not queued meanwhile (unless
        // `queue_qos0_messages`), QoS 1 and 2 are, up to `max_queued_messages`.
        local.offline();
    }
    notifications::publish_local(&broker, &spec, false);
    let mut cycle = AddressCycle::new(cfg.addresses.len(), cfg.round_robin);
    let mut backoff = Backoff::new(cfg.restart_timeout);
    let mut private = cfg.try_private;
    loop {
        if lazy && !wait_threshold(&local, cfg.threshold, &mut shutdown).await {
            return;
        }
        let Some(address) = cfg.addresses.get(cycle.current()) else {
            return;
        };
        tracing::info!(
            "Connecting bridge {} ({}:{})",
            cfg.name,
            address.host,
            address.port
        );
        let attempt = tokio::select! {
            r = tokio::time::timeout(CONNECT_TIMEOUT, connect(&spec, &broker, address, private)) => {
                r.unwrap_or_else(|_| Err(Failure::Other("timed out".into())))
            }
            _ = shutdown.changed() => return,
        };
        let end = match attempt {
            Ok(remote) => {
                backoff.reset();
                let end = remote
                    .serve(&broker, &spec, &mut local, &mut shutdown)
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
        notifications::publish_local(&broker, &spec, false);
        match end {
            End::Shutdown => return,
            End::Idle => {
                tracing::info!("Bridge {} stopped: idle.", cfg.name);
                continue;
            }
            End::Lost(why) => tracing::info!("Bridge {} disconnected: {why}.", cfg.name),
        }
        if cfg.start_type == StartType::Once {
            tracing::info!("Bridge {}: start_type once, not restarting.", cfg.name);
            return;
        }
        let wait = backoff.next(random());
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(u64::from(wait))) => {}
            _ = shutdown.changed() => return,
        }
    }
}

fn random() -> u32 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    u32::from_le_bytes(b)
}

/// `start_type lazy`: waits until `threshold` messages are queued for the remote. False on
/// shutdown.
async fn wait_threshold(
    local: &LocalSide,
    threshold: u32,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let threshold = usize::try_from(threshold).unwrap_or(usize::MAX);
    loop {
        if local.session.state.lock().queue.len() >= threshold {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = shutdown.changed() => return false,
        }
    }
}

/// The bridge's session in the local broker.
struct LocalSide {
    broker: Arc<Broker>,
    spec: Arc<BridgeSpec>,
    session: Arc<Session>,
    generation: u64,
}

impl LocalSide {
    fn open(broker: &Arc<Broker>, spec: &Arc<BridgeSpec>, clean: bool) -> LocalSide {
        let mut side = LocalSide {
            broker: Arc::clone(broker),
            spec: Arc::clone(spec),
            session: Session::new(Arc::clone(&spec.local_id), u32::MAX),
            generation: 0,
        };
        side.attach(clean);
        side
    }

    /// Takes the session online (resuming it), with the bridge's local subscriptions.
    fn attach(&mut self, clean: bool) {
        let attached = self.broker.attach(&self.spec.local_id, clean, u32::MAX);
        for (filter, qos) in self.spec.maps.local_subscriptions() {
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
            attached
                .session
                .state
                .lock()
                .subscriptions
                .insert(filter, entry);
        }
        self.session = attached.session;
        self.generation = attached.generation;
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
                return Ok(s);
            }
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(last)
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
    let ssl = config
        .into_ssl(&address.host)
        .map_err(|e| format!("TLS: {e}"))?;
    let mut stream = tokio_openssl::SslStream::new(ssl, tcp).map_err(|e| format!("TLS: {e}"))?;
    std::pin::Pin::new(&mut stream)
        .connect()
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
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
        // A persistent bridge session outlives the connection, as 3.1.1's clean session 0.
        properties.session_expiry_interval = (!cfg.cleansession).then_some(u32::MAX);
        properties.receive_maximum = Some(broker.settings.max_inflight.max(1));
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

    async fn flush(&mut self) -> Result<(), String> {
        if self.wbuf.is_empty() {
            return Ok(());
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
            if delivery.msg.is_expired(now) {
                continue;
            }
            let Some(topic) = spec.maps.to_remote(&delivery.msg.topic) else {
                continue;
            };
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
                        st.remove_inflight(r.packet_id);
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
                            true
                        }
                        Some(f) if f.state == OutState::AwaitPubRec => {
                            st.remove_inflight(r.packet_id);
                            false
                        }
                        _ => false,
                    }
                };
                if release {
                    self.send(&Packet::PubRel(PubResp::new(r.packet_id)));
                }
                Ok(())
            }
            Packet::PubComp(r) => {
                let mut st = local.session.state.lock();
                if st.inflight.get(&r.packet_id).map(|f| f.state) == Some(OutState::AwaitPubComp) {
                    st.remove_inflight(r.packet_id);
                }
                Ok(())
            }
            Packet::PubRel(r) => {
                local.session.state.lock().inbound_qos2.remove(&r.packet_id);
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
        let duplicate = p.qos == QoS::ExactlyOnce
            && !local.session.state.lock().inbound_qos2.insert(p.packet_id);
        let mut ticket = 0;
        match spec.maps.to_local(&p.topic) {
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
                ticket = broker.publish_stored(&Arc::new(msg), now).1;
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
    async fn goodbye(&mut self, spec: &BridgeSpec) {
        if notifications::on_remote(spec) {
            self.send(&Packet::Publish(notifications::remote_down(spec)));
        }
        self.send(&Packet::Disconnect(Default::default()));
        let _ = tokio::time::timeout(Duration::from_secs(1), self.flush()).await;
    }

    /// Moves messages both ways until the connection ends.
    async fn serve(
        mut self,
        broker: &Arc<Broker>,
        spec: &Arc<BridgeSpec>,
        local: &mut LocalSide,
        shutdown: &mut watch::Receiver<bool>,
    ) -> End {
        let cfg = &spec.config;
        tracing::info!("Bridge {} connected.", cfg.name);
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
                r = tokio::time::timeout(WRITE_TIMEOUT, self.flush()) => {
                    r.unwrap_or_else(|_| Err("write timed out".into()))
                }
                _ = shutdown.changed() => break End::Shutdown,
            };
            if let Err(e) = flushed {
                break End::Lost(e);
            }
            let now = Instant::now();
            if now.duration_since(self.last_received) > keep_alive + keep_alive / 2 {
                break End::Lost("keepalive timeout".into());
            }
            if let Some(idle) = idle {
                let empty = {
                    let st = local.session.state.lock();
                    st.queue.is_empty() && st.inflight.is_empty()
                };
                if empty && now.duration_since(self.last_traffic) >= idle {
                    self.goodbye(spec).await;
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
                _ = tokio::time::sleep_until(ping_at.into()) => {
                    self.send(&Packet::PingReq);
                    self.last_ping = Instant::now();
                }
                _ = tokio::time::sleep(Duration::from_secs(1)), if idle.is_some() => {}
                _ = shutdown.changed() => {
                    self.goodbye(spec).await;
                    break End::Shutdown;
                }
            }
        };
        end
    }
}
