//! One client connection: a single task that owns the socket, reads and answers packets,
//! and drains the session's mailbox into one write buffer.
//!
//! The socket is driven with readiness (`readable`/`writable` + `try_read`/`try_write`) so one
//! task can read and write without either side blocking the other: a client that stops
//! reading only stops its own deliveries, and every packet ready to go leaves in one write.

mod close;
mod connect;
mod frame;
mod inbound;
mod outbound;
mod subscribe;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use bytestring::ByteString;
use midge_proto::{encode_packet, Packet, ProtocolVersion};
#[cfg(test)]
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::broker::{Broker, PendingWill};
use crate::listener_ctx::{ListenerCtx, Slot};
use crate::metrics::Counter;
use crate::session::Session;
use crate::stream::Stream;

pub use close::Close;
pub(crate) use connect::CertUsername;

/// Stop pulling deliveries into the write buffer beyond this; the rest waits in the
/// session queue where the queue limits apply.
const WRITE_HIGH_WATER: usize = 64 * 1024;
/// Stop reading while this much is waiting to be written: a client that does not read its
/// acknowledgements cannot make the broker buffer without bound.
const WRITE_BACKPRESSURE: usize = 1024 * 1024;
/// Bytes asked of the kernel per read; many packets arrive per read under load.
const READ_CHUNK: usize = 16 * 1024;
/// Time a closing connection gets to flush its last packets.
const CLOSE_FLUSH: Duration = Duration::from_secs(1);

/// Limits the client announced in its MQTT 5 CONNECT.
#[derive(Clone, Copy, Debug)]
struct ClientLimits {
    receive_maximum: u16,
    maximum_packet_size: u32,
    topic_alias_maximum: u16,
}

pub(crate) struct Connection {
    broker: Arc<Broker>,
    listener: Arc<ListenerCtx>,
    /// This connection's place in its listener's `max_connections`, released on drop.
    _slot: Slot,
    stream: Stream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    version: ProtocolVersion,
    client_id: Arc<str>,
    username: Option<Arc<str>>,
    /// Remote address, for the security log.
    peer: Arc<str>,
    session: Arc<Session>,
    /// Our claim on the session; a different value in the session means we were replaced.
    generation: u64,
    /// `max_publish_rate` / `max_publish_bytes_rate`: boxed, since most brokers set none.
    rate: Option<Box<RateLimit>>,
    /// The persistence ticket behind what the write buffer holds: the buffer goes out only
    /// once the store has committed it (see `crate::persist`). 0 = nothing to wait for.
    wbuf_ticket: u64,
    /// Seconds; 0 disables the keepalive check.
    keep_alive: u16,
    last_activity: Instant,
    /// Boxed: most clients have no will, and a will's properties are large.
    will: Option<Box<PendingWill>>,
    /// Session expiry requested at CONNECT, checked against a DISCONNECT that changes it.
    connect_expiry: u32,
    limits: ClientLimits,
    /// Topic aliases the client set up towards us (MQTT 5), per connection.
    in_aliases: HashMap<u16, ByteString>,
    /// Topic aliases we set up towards the client, and the next free one.
    out_aliases: HashMap<ByteString, u16>,
    next_out_alias: u16,
    /// An MQTT 3.x bridge (bit 7 of the CONNECT protocol level, Mosquitto's `try_private`):
    /// its subscriptions are no-local and retain-as-published, so what it sends never comes
    /// back to it (as Mosquitto treats bridges).
    bridge: bool,
}

/// A client's publish limits and, when it went over, until when it is not read from.
struct RateLimit {
    limiter: midge_core::rate::PublishLimiter,
    paused_until: Option<tokio::time::Instant>,
}

/// Resolves once the store has committed `ticket`.
async fn wait_store(broker: Arc<Broker>, ticket: u64) {
    if let Some(p) = &broker.persist {
        p.wait(ticket).await;
    }
}

/// Serves one accepted TCP connection until it closes.
/// A connection accepted at the transport level (TCP, Unix socket, or TLS after its
/// handshake), before any MQTT has been read.
pub struct Transport {
    pub stream: Stream,
    /// Remote address (or the Unix socket's path), for logs.
    pub peer: String,
    pub listener: Arc<ListenerCtx>,
    /// Its place in the listener's `max_connections`.
    pub slot: Slot,
    /// The username the client certificate gives, on listeners that take it from there.
    pub cert_username: CertUsername,
}

/// Serves one accepted connection until it closes.
pub async fn serve(broker: Arc<Broker>, transport: Transport, mut shutdown: watch::Receiver<bool>) {
    let _open = broker.connection_opened();
    // The CONNECT phase and the goodbye are boxed: their state is large and short-lived,
    // and an idle connection should not carry it for hours inside its task.
    let accept = Box::pin(connect::accept(broker, transport, &mut shutdown));
    let Some(mut conn) = accept.await else {
        return;
    };
    let close = conn.run(&mut shutdown).await;
    Box::pin(conn.finish(close)).await;
}

impl Connection {
    /// The client as security log lines name it: id, username and remote address.
    fn who(&self) -> String {
        describe_client(&self.client_id, self.username.as_deref(), &self.peer)
    }

    async fn run(&mut self, shutdown: &mut watch::Receiver<bool>) -> Close {
        // One timer for the connection's life: it is re-armed only when it fires early
        // (traffic moved the deadline), not on every packet.
        let keepalive = tokio::time::sleep_until(self.keepalive_deadline());
        tokio::pin!(keepalive);
        // Packets that arrived in the same read as CONNECT are already buffered: the socket
        // may never turn readable for them again (CVE-2021-28166's PoC sends CONNECT, a
        // CONNACK and DISCONNECT in one segment and then waits).
        if let Err(close) = self.handle_buffered() {
            return close;
        }
        loop {
            let more = match self.fill() {
                Ok(more) => more,
                Err(close) => return close,
            };
            if let Err(close) = self.try_flush() {
                return close;
            }
            // The buffer stopped at its high-water mark with deliveries left in the queue
            // and the socket took all of it: fill again. No wake-up would come for them (a
            // burst pushed at once, such as the retained messages of one SUBSCRIBE, wakes
            // the task once), so waiting here would stall them until the next packet.
            let refill = more && self.wbuf.is_empty();
            // Over its publish rate: not read from until the pause ends (TCP pushes back).
            let paused = self.rate.as_ref().and_then(|r| r.paused_until);
            let mut pause = paused.map(|until| Box::pin(tokio::time::sleep_until(until)));
            let can_read = self.wbuf.len() < WRITE_BACKPRESSURE && pause.is_none();
            // Held back for the store: wait for its commit, not for the socket. Boxed, and
            // only then, so that idle connections do not carry the wait's state.
            let mut store_wait = self
                .store_pending()
                .then(|| Box::pin(wait_store(Arc::clone(&self.broker), self.wbuf_ticket)));
            let want_write = !self.wbuf.is_empty() && store_wait.is_none();
            let session = Arc::clone(&self.session);
            let event = tokio::select! {
                r = self.stream.readable(), if can_read => match r {
                    Ok(()) => Event::Readable,
                    Err(e) => return Close::Io(e),
                },
                r = self.stream.writable(), if want_write => match r {
                    Ok(()) => Event::Writable,
                    Err(e) => return Close::Io(e),
                },
                _ = session.wake.notified() => Event::Wake,
                () = std::future::ready(()), if refill => Event::Refill,
                () = async {
                    if let Some(p) = pause.as_mut() {
                        p.await;
                    }
                }, if pause.is_some() => {
                    if let Some(r) = self.rate.as_mut() {
                        r.paused_until = None;
                    }
                    Event::Resume
                }
                () = async {
                    if let Some(wait) = store_wait.as_mut() {
                        wait.await;
                    }
                }, if store_wait.is_some() => Event::Writable,
                _ = &mut keepalive, if self.keep_alive != 0 => Event::KeepAlive,
                _ = shutdown.changed() => Event::Shutdown,
            };
            let result = match event {
                Event::Readable => match self.read_and_handle() {
                    // A client that keeps the socket full would otherwise keep this worker
                    // to itself (readiness does not count against tokio's budget), starving
                    // the subscribers it publishes to on the same thread.
                    Ok(n) if n >= READ_CHUNK / 4 => {
                        tokio::task::yield_now().await;
                        Ok(())
                    }
                    Ok(_) => {
                        tokio::task::consume_budget().await;
                        Ok(())
                    }
                    Err(close) => Err(close),
                },
                Event::Writable => self.try_flush(),
                Event::Wake => Ok(()),
                Event::Refill => {
                    // Always ready: spend budget so that a long queue does not keep this
                    // worker from the other connections.
                    tokio::task::consume_budget().await;
                    Ok(())
                }
                Event::Resume => self.handle_buffered(),
                Event::KeepAlive => {
                    let deadline = self.keepalive_deadline();
                    if tokio::time::Instant::now() >= deadline {
                        Err(Close::KeepAlive)
                    } else {
                        keepalive.as_mut().reset(deadline);
                        Ok(())
                    }
                }
                Event::Shutdown => Err(Close::Shutdown),
            };
            if let Err(close) = result {
                return close;
            }
        }
    }

    /// When the client's silence exceeds one and a half keep alive periods
    /// [MQTT-3.1.2-24]. Far in the future when keep alive is off.
    fn keepalive_deadline(&self) -> tokio::time::Instant {
        let grace = if self.keep_alive == 0 {
            Duration::from_secs(86_400 * 365)
        } else {
            Duration::from_millis(u64::from(self.keep_alive) * 1500)
        };
        tokio::time::Instant::from_std(self.last_activity + grace)
    }

    /// One read syscall, then every complete packet in the buffer. Returns the bytes read.
    fn read_and_handle(&mut self) -> Result<usize, Close> {
        self.rbuf.reserve(READ_CHUNK);
        let read = match self.stream.try_read_buf(&mut self.rbuf) {
            Ok(0) => return Err(Close::PeerClosed),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // Readiness can be spurious (a new socket starts out "ready"): do not
                // keep a read buffer for a connection that had nothing to say.
                if self.rbuf.is_empty() {
                    self.rbuf = BytesMut::new();
                }
                return Ok(0);
            }
            Err(e) => return Err(Close::Io(e)),
        };
        self.last_activity = Instant::now();
        self.broker.metrics.add(Counter::BytesReceived, read as u64);
        self.handle_buffered()?;
        // A light reader gives its buffer back, so that idle connections cost little
        // memory; a busy one keeps it for the next read.
        if self.rbuf.is_empty() && read < READ_CHUNK / 4 {
            self.rbuf = BytesMut::new();
        }
        Ok(read)
    }

    /// Handles every complete packet in the read buffer, or up to the one that put the
    /// client over its publish rate (the rest waits in the buffer for the pause to end).
    fn handle_buffered(&mut self) -> Result<(), Close> {
        let max = self.broker.settings.max_packet_size;
        while self.rate.as_ref().is_none_or(|r| r.paused_until.is_none()) {
            let Some((first_byte, body)) =
                frame::take(&mut self.rbuf, max).map_err(Close::from_decode)?
            else {
                break;
            };
            let packet = midge_proto::decode_packet(
                first_byte,
                body,
                self.version,
                midge_proto::Sender::Client,
            )
            .map_err(Close::from_decode)?;
            self.broker.metrics.add(Counter::PacketsReceived, 1);
            self.handle(packet)?;
        }
        Ok(())
    }

    fn try_flush(&mut self) -> Result<(), Close> {
        if self.store_pending() {
            return Ok(());
        }
        self.wbuf_ticket = 0;
        while !self.wbuf.is_empty() {
            match self.stream.try_write(&self.wbuf) {
                Ok(n) => {
                    self.wbuf.advance(n);
                    self.broker.metrics.add(Counter::BytesSent, n as u64);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(Close::Io(e)),
            }
        }
        // Give back a buffer that grew for a burst, so idle connections stay small.
        if self.wbuf.capacity() > WRITE_HIGH_WATER * 2 {
            self.wbuf = BytesMut::new();
        }
        Ok(())
    }

    /// Records a security event about this client in the audit log.
    fn audit(&self, event: &str, details: serde_json::Value) {
        let who = crate::audit::Who {
            client_id: &self.client_id,
            username: self.username.as_deref(),
            address: &self.peer,
        };
        self.broker.audit(event, who, details);
    }

    /// What is written from now on waits for `ticket` to be stored.
    fn after_store(&mut self, ticket: u64) {
        self.wbuf_ticket = self.wbuf_ticket.max(ticket);
    }

    /// Whether the write buffer must wait for the store before it may go out.
    fn store_pending(&self) -> bool {
        self.wbuf_ticket != 0
            && self
                .broker
                .persist
                .as_ref()
                .is_some_and(|p| p.committed() < self.wbuf_ticket)
    }

    fn send(&mut self, packet: &Packet) {
        encode_packet(packet, self.version, &mut self.wbuf);
        self.broker.metrics.add(Counter::PacketsSent, 1);
    }

    fn handle(&mut self, packet: Packet) -> Result<(), Close> {
        match packet {
            Packet::Publish(p) => self.on_publish(p),
            Packet::PubAck(r) => {
                self.on_puback(r.packet_id);
                Ok(())
            }
            Packet::PubRec(r) => {
                self.on_pubrec(r);
                Ok(())
            }
            Packet::PubRel(r) => {
                self.on_pubrel(r.packet_id);
                Ok(())
            }
            Packet::PubComp(r) => {
                self.on_pubcomp(r.packet_id);
                Ok(())
            }
            Packet::Subscribe(s) => {
                self.on_subscribe(s);
                Ok(())
            }
            Packet::Unsubscribe(u) => {
                self.on_unsubscribe(u);
                Ok(())
            }
            Packet::PingReq => {
                self.send(&Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(d) => self.on_disconnect(d),
            Packet::Connect(_) => Err(Close::protocol("second CONNECT")),
            // No extended authentication method was accepted at CONNECT, so AUTH is out of place.
            Packet::Auth(_) => Err(Close::protocol("AUTH without an authentication method")),
            other => Err(Close::protocol(other.name())),
        }
    }

    fn on_disconnect(&mut self, d: midge_proto::Disconnect) -> Result<(), Close> {
        if let Some(expiry) = d.properties.session_expiry_interval {
            // [MQTT-3.14.2-2]: a session that was to end at disconnect cannot be revived here.
            if self.connect_expiry == 0 && expiry != 0 {
                return Err(Close::protocol("session expiry set on DISCONNECT after 0"));
            }
            self.session.state.lock().expiry_interval = expiry;
        }
        Err(Close::Disconnected { reason: d.reason })
    }
}

/// `id (username 'u') from addr`, the form every security log line uses.
pub(crate) fn describe_client(id: &str, username: Option<&str>, peer: &str) -> String {
    match username {
        Some(u) => format!("{id} (username '{u}') from {peer}"),
        None => format!("{id} from {peer}"),
    }
}

enum Event {
    Readable,
    Writable,
    Wake,
    /// Deliveries are left in the queue after the write buffer went out: fill it again.
    Refill,
    /// A publish-rate pause ended: handle what waited in the read buffer.
    Resume,
    KeepAlive,
    Shutdown,
}

#[cfg(test)]
/// The task of an idle connection is resident for hours: its size is a memory budget.
mod size_probe {
    use super::*;

    #[tokio::test]
    async fn idle_connection_task_stays_small() {
        let config = midge_core::config::parse("", "t").unwrap();
        let broker = Broker::new(crate::settings::Settings::from_config(&config, true));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let lc = midge_core::config::ListenerConfig::default();
        let ctx = Arc::new(ListenerCtx::new(
            0,
            &lc,
            &config,
            crate::policy::Policy::load(&config.security_for(&lc), &broker).unwrap(),
            Arc::new(crate::admission::Admission::new(None)),
        ));
        let slot = ctx.try_open().unwrap();
        let (_tx, rx) = watch::channel(false);
        let transport = Transport {
            stream: Stream::Tcp(c),
            peer: String::new(),
            listener: ctx,
            slot,
            cert_username: None,
        };
        let f = serve(broker, transport, rx);
        // The CONNECT phase and the will are boxed so that they do not count here.
        assert!(
            std::mem::size_of::<Connection>() <= 512,
            "{}",
            std::mem::size_of::<Connection>()
        );
        assert!(
            std::mem::size_of_val(&f) <= 1536,
            "{}",
            std::mem::size_of_val(&f)
        );
    }
}
