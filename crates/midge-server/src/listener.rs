//! Binding the configured listeners and accepting connections until shutdown.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use midge_core::config::{Config, ListenerConfig, Protocol as ListenerProtocol, SocketDomain};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

use crate::admission::Admission;
use crate::broker::Broker;
use crate::connection::{self, Transport};
use crate::http_api::{self, ApiState, ListenerInfo};
use crate::listener_ctx::ListenerCtx;
use crate::metrics::Counter;
use crate::persist::Persist;
use crate::policy::Policy;
use crate::settings::Settings;
use crate::stream::Stream;
use crate::tls;
use crate::websocket::{self, WsOptions};

/// How long shutdown waits for connections to close.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Port of the local-only listeners used when the configuration defines none.
pub const DEFAULT_PORT: u16 = 1883;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot resolve listener address '{address}': {source}")]
    Resolve {
        address: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Policy(String),
    #[error("{0}")]
    Tls(String),
    /// The persistence store cannot be opened (corrupt, newer format, in use, …).
    #[error("{0}")]
    Persistence(String),
    /// A listener option that cannot be honoured (e.g. `http_dir` missing).
    #[error("{0}")]
    Listener(String),
    #[error("no listener could be opened")]
    NoListener,
    /// A bridge that cannot start (its TLS files).
    #[error("{0}")]
    Bridge(String),
}

enum Socketish {
    Tcp(TcpListener),
    Unix(UnixListener, String),
}

struct Bound {
    socket: Socketish,
    ctx: Arc<ListenerCtx>,
}

/// A bound broker, ready to run.
pub struct Server {
    broker: Arc<Broker>,
    bound: Vec<Bound>,
    handle: ServerHandle,
    /// What `protocol http_api` listeners serve.
    api: Arc<ApiState>,
    /// The `connection` blocks, started by `run` (issue 8).
    bridges: crate::bridge::Bridges,
}

/// Controls a running server from outside: shutdown and reload.
#[derive(Clone)]
pub struct ServerHandle {
    shutdown: watch::Sender<bool>,
    broker: Arc<Broker>,
    listeners: Arc<Vec<Arc<ListenerCtx>>>,
    bridges: Arc<crate::bridge::BridgeSet>,
}

/// Kept for callers that only stop the server.
pub type ShutdownHandle = ServerHandle;

impl ServerHandle {
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Publishes a message of the broker's own (QoS 0, not retained) to the clients
    /// subscribed to `topic`, under their ACLs: `log_dest topic` uses it for
    /// `$SYS/broker/log/...`.
    pub fn publish(&self, topic: &str, payload: &[u8]) {
        let now = std::time::Instant::now();
        let msg = crate::message::Message::new(
            topic.into(),
            bytes::Bytes::copy_from_slice(payload),
            midge_proto::QoS::AtMostOnce,
            false,
            midge_proto::Properties::default(),
            now,
            None,
        );
        self.broker.publish(&Arc::new(msg), now);
    }

    /// Applies a re-read configuration: the password and ACL files (and the other security
    /// options) of each listener, and the general options Mosquitto reloads
    /// (`retain_available`, `upgrade_outgoing_qos`). A listener
    /// whose files cannot be read or parsed keeps its previous policy; the errors are
    /// returned for the log. Listeners themselves are not re-bound, as with Mosquitto.
    pub fn reload(&self, config: &Config) -> Vec<String> {
        let mut errors = Vec::new();
        self.broker.reload(config);
        let wanted = effective_listeners(config);
        for ctx in self.listeners.iter() {
            let Some(lc) = wanted.get(ctx.index) else {
                errors.push(format!(
                    "listener on port {} no longer configured; restart to remove it",
                    ctx.port
                ));
                continue;
            };
            match Policy::load(&config.security_for(lc), &self.broker) {
                Ok(policy) => ctx.policy.replace(policy),
                Err(e) => errors.push(format!("{e} (keeping the previous settings)")),
            }
            // New handshakes use the re-read certificate, key, CAs and CRL; connected
            // clients keep their sessions. A context that cannot be built keeps the old one.
            match (&ctx.tls, tls::build(lc, &ctx.policy)) {
                (Some(handle), Ok(Some(new))) => handle.store(Some(Arc::new(new))),
                (Some(_), Err(e)) => errors.push(format!(
                    "{e} (keeping the previous TLS settings of port {})",
                    ctx.port
                )),
                (Some(_), Ok(None)) | (None, Ok(Some(_))) => errors.push(format!(
                    "listener on port {}: TLS switched on or off; restart to apply",
                    ctx.port
                )),
                (None, Err(e)) => errors.push(e),
                (None, Ok(None)) => {}
            }
        }
        errors.extend(self.bridges.reload(config));
        errors
    }
}

/// Serves the HTTP API on one accepted connection, under TLS when the listener has it.
async fn serve_api<S>(
    stream: S,
    tls: Option<Arc<tls::TlsContext>>,
    ctx: Arc<ListenerCtx>,
    api: Arc<ApiState>,
    slot: crate::listener_ctx::Slot,
    peer: String,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let _slot = slot;
    let timeout = api.broker.settings.connect_timeout;
    match tls {
        None => http_api::serve(stream, api, ctx, false, timeout).await,
        Some(tls) => match tls::handshake(&tls, stream, timeout).await {
            Ok(accepted) => {
                let certified = ctx.require_certificate;
                http_api::serve(accepted.stream, api, ctx, certified, timeout).await;
            }
            Err(why) => {
                api.broker.metrics.add(Counter::TlsHandshakeFailures, 1);
                tracing::info!("TLS handshake with {peer} failed: {why}.");
            }
        },
    }
}

/// How `/api/v1/listeners` shows a bound listener.
fn listener_info(b: &Bound) -> ListenerInfo {
    let protocol = if b.ctx.http_api {
        "http_api"
    } else if b.ctx.websockets.is_some() {
        "websockets"
    } else {
        "mqtt"
    };
    let tls = b.ctx.tls.is_some();
    match &b.socket {
        Socketish::Tcp(l) => {
            let addr = l.local_addr().ok();
            ListenerInfo {
                port: addr.map_or(b.ctx.port, |a| a.port()),
                protocol,
                bind_address: addr.map(|a| a.ip().to_string()),
                socket_path: None,
                tls,
            }
        }
        Socketish::Unix(_, path) => ListenerInfo {
            port: 0,
            protocol,
            bind_address: None,
            socket_path: Some(path.clone()),
            tls,
        },
    }
}

/// The listeners a configuration opens: its own, or Mosquitto 2's local-only pair.
fn effective_listeners(config: &Config) -> Vec<ListenerConfig> {
    if !config.listeners.is_empty() {
        return config.listeners.clone();
    }
    ["127.0.0.1", "::1"]
        .iter()
        .map(|host| ListenerConfig {
            port: DEFAULT_PORT,
            bind_address: Some((*host).to_string()),
            ..config.listener_defaults.clone()
        })
        .collect()
}

impl Server {
    /// Binds every listener of `config`. With none configured, listens on the loopback
    /// addresses only, port 1883, and allows anonymous clients unless the configuration
    /// says otherwise (Mosquitto 2's local-only mode).
    pub async fn bind(config: &Config) -> Result<Server, ServerError> {
        let local_only = config.listeners.is_empty();
        let settings = Settings::from_config(config, local_only);
        let (persist, snapshot) = if config.persistence.enabled {
            let path = config.persistence.path();
            let (p, s) =
                Persist::open(&path, config.persistence.fsync).map_err(ServerError::Persistence)?;
            (Some(p), Some(s))
        } else {
            (None, None)
        };
        let bridges = crate::bridge::Bridges::prepare(config).map_err(ServerError::Bridge)?;
        if config.memory_limit != 0 && crate::heap::usage().is_none() {
            tracing::warn!(
                "memory_limit is set but this process does not count its heap (the midge binary does): it does not apply."
            );
        }
        let audit = match &config.audit_log {
            Some(path) => Some(
                crate::audit::Audit::open(std::path::Path::new(path))
                    .map_err(ServerError::Listener)?,
            ),
            None => None,
        };
        let broker = Broker::with_persistence(settings, persist, audit);
        let admission = Arc::new(Admission::new(config.max_connections_per_ip));
        let mut bound = Vec::new();
        let mut contexts = Vec::new();
        for (index, lc) in effective_listeners(config).into_iter().enumerate() {
            let policy =
                Policy::load(&config.security_for(&lc), &broker).map_err(ServerError::Policy)?;
            let mut ctx = ListenerCtx::new(index, &lc, config, policy, Arc::clone(&admission));
            ctx.tls = tls::build(&lc, &ctx.policy)
                .map_err(ServerError::Tls)?
                .map(arc_swap::ArcSwapOption::from_pointee);
            if lc.protocol == ListenerProtocol::Websockets {
                let opts = WsOptions::new(lc.http_dir.as_deref(), &lc.websockets_origins)
                    .map_err(|why| ServerError::Listener(format!("{}: {why}", lc.at())))?;
                ctx.websockets = Some(opts);
            }
            let ctx = Arc::new(ctx);
            contexts.push(Arc::clone(&ctx));
            if let Some(path) = &lc.unix_socket {
                // A socket file left by a previous run would make bind fail.
                let _ = std::fs::remove_file(path);
                let l = UnixListener::bind(path).map_err(|source| ServerError::Bind {
                    addr: path.clone(),
                    source,
                })?;
                bound.push(Bound {
                    socket: Socketish::Unix(l, path.clone()),
                    ctx,
                });
                continue;
            }
            let optional_v6 = local_only || lc.bind_address.is_none();
            for addr in resolve(&lc).await? {
                match bind_tcp(addr, lc.bind_interface.as_deref()) {
                    Ok(l) => bound.push(Bound {
                        socket: Socketish::Tcp(l),
                        ctx: Arc::clone(&ctx),
                    }),
                    // A host without IPv6 still serves IPv4, as Mosquitto does.
                    Err(e) if addr.is_ipv6() && optional_v6 => tracing::warn!("{e}"),
                    Err(e) => return Err(e),
                }
            }
        }
        if bound.is_empty() {
            return Err(ServerError::NoListener);
        }
        if let Some(snapshot) = snapshot {
            broker.restore(snapshot, &contexts);
        }
        let (shutdown, _) = watch::channel(false);
        // Bridges check `local_username` against the broker-wide security, which every
        // listener shares unless `per_listener_settings` is on.
        let bridge_acl = contexts
            .first()
            .filter(|_| !config.per_listener_settings)
            .map(|c| Arc::clone(&c.policy));
        let bridge_set = Arc::new(crate::bridge::BridgeSet::new(
            &broker,
            bridge_acl,
            shutdown.subscribe(),
        ));
        let api = Arc::new(ApiState {
            broker: Arc::clone(&broker),
            listeners: bound.iter().map(listener_info).collect(),
        });
        Ok(Server {
            bridges,
            api,
            broker: Arc::clone(&broker),
            bound,
            handle: ServerHandle {
                shutdown,
                broker,
                listeners: Arc::new(contexts),
                bridges: bridge_set,
            },
        })
    }

    /// TCP addresses actually bound (port 0 resolved), in configuration order.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.bound
            .iter()
            .filter_map(|b| match &b.socket {
                Socketish::Tcp(l) => l.local_addr().ok(),
                Socketish::Unix(..) => None,
            })
            .collect()
    }

    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Accepts connections on every listener until shutdown is requested.
    pub async fn run(self) {
        let mut tasks = Vec::new();
        for b in self.bound {
            let broker = Arc::clone(&self.broker);
            let shutdown = self.handle.shutdown.subscribe();
            match b.socket {
                Socketish::Tcp(l) => {
                    if let Ok(addr) = l.local_addr() {
                        tracing::info!(
                            "Opening ipv{} listen socket on port {}.",
                            if addr.is_ipv4() { 4 } else { 6 },
                            addr.port()
                        );
                    }
                    let api = Arc::clone(&self.api);
                    tasks.push(tokio::spawn(accept_tcp(l, b.ctx, broker, api, shutdown)));
                }
                Socketish::Unix(l, path) => {
                    tracing::info!("Opening unix listen socket on path {path}.");
                    let api = Arc::clone(&self.api);
                    tasks.push(tokio::spawn(accept_unix(
                        l, path, b.ctx, broker, api, shutdown,
                    )));
                }
            }
        }
        self.handle.bridges.start(self.bridges);
        tasks.push(tokio::spawn(crate::systree::run(
            Arc::clone(&self.broker),
            self.broker.settings.sys_interval,
            self.handle.shutdown.subscribe(),
        )));
        let mut shutdown = self.handle.shutdown.subscribe();
        while !*shutdown.borrow_and_update() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
        for t in tasks.into_iter().chain(self.handle.bridges.take_tasks()) {
            let _ = t.await;
        }
        // Connections see the same signal and close (MQTT 5 clients get DISCONNECT 0x8B);
        // give them a moment to flush before the runtime goes away.
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while self.broker.open_connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // What the departing connections changed is written before the process ends.
        if let Some(p) = &self.broker.persist {
            let p = p.clone_handle();
            let closed = tokio::task::spawn_blocking(move || p.close()).await;
            if let Ok(Err(e)) = closed {
                tracing::error!("{e}");
            }
        }
    }
}

async fn accept_tcp(
    listener: TcpListener,
    ctx: Arc<ListenerCtx>,
    broker: Arc<Broker>,
    api: Arc<ApiState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let port = ctx.port;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Refused before any MQTT work: over the per-IP rate, or the listener full.
                if !ctx.admission.admit(peer.ip()) {
                    tracing::info!(
                        "Connection from {} refused: max_connections_per_IP exceeded.",
                        peer.ip()
                    );
                    continue;
                }
                if !ctx.rate_allows() {
                    tracing::info!(
                        "Connection from {} refused: max_connection_rate reached on port {port}.",
                        peer.ip()
                    );
                    continue;
                }
                let Some(slot) = ctx.try_open() else {
                    tracing::info!(
                        "Connection from {} refused: max_connections reached on port {port}.",
                        peer.ip()
                    );
                    continue;
                };
                broker.metrics.add(Counter::Sockets, 1);
                // Midge batches its writes itself; Nagle would only add delay.
                let _ = stream.set_nodelay(true);
                if broker.settings.connection_messages {
                    tracing::info!(
                        "New connection from {}:{} on port {}.",
                        peer.ip(),
                        peer.port(),
                        port
                    );
                }
                let tls = ctx.tls.as_ref().and_then(|h| h.load_full());
                if ctx.http_api {
                    tokio::spawn(serve_api(
                        stream,
                        tls,
                        Arc::clone(&ctx),
                        Arc::clone(&api),
                        slot,
                        peer.to_string(),
                    ));
                    continue;
                }
                if tls.is_none() && ctx.websockets.is_none() {
                    let transport = Transport {
                        stream: Stream::Tcp(stream),
                        peer: peer.to_string(),
                        listener: Arc::clone(&ctx),
                        slot,
                        cert_username: None,
                    };
                    tokio::spawn(connection::serve(
                        Arc::clone(&broker),
                        transport,
                        shutdown.clone(),
                    ));
                    continue;
                }
                let (broker, ctx, shutdown) =
                    (Arc::clone(&broker), Arc::clone(&ctx), shutdown.clone());
                tokio::spawn(async move {
                    let timeout = broker.settings.connect_timeout;
                    let mut cert_username = None;
                    // TLS first when configured, then the WebSocket handshake on top of it.
                    let stream = match tls {
                        Some(tls) => match tls::handshake(&tls, stream, timeout).await {
                            Ok(accepted) => {
                                cert_username = accepted.username;
                                match &ctx.websockets {
                                    Some(ws) => {
                                        websocket::accept(Box::new(accepted.stream), timeout, ws)
                                            .await
                                            .map(|s| s.map(Stream::Unix))
                                    }
                                    None => Ok(Some(Stream::Tls(Box::new(accepted.stream)))),
                                }
                            }
                            Err(why) => {
                                broker.metrics.add(Counter::TlsHandshakeFailures, 1);
                                tracing::info!("TLS handshake with {peer} failed: {why}.");
                                return;
                            }
                        },
                        None => {
                            let ws = ctx
                                .websockets
                                .as_ref()
                                .expect("plain listeners return above");
                            websocket::accept(stream, timeout, ws)
                                .await
                                .map(|s| s.map(Stream::Unix))
                        }
                    };
                    match stream {
                        // A plain HTTP request, answered from http_dir.
                        Ok(None) => {}
                        Ok(Some(stream)) => {
                            let transport = Transport {
                                stream,
                                peer: peer.to_string(),
                                listener: ctx,
                                slot,
                                cert_username,
                            };
                            connection::serve(broker, transport, shutdown).await;
                        }
                        Err(why) => tracing::info!("Client {peer}: {why}."),
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: keep serving existing clients.
                tracing::warn!("accept failed on port {port}: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn accept_unix(
    listener: UnixListener,
    path: String,
    ctx: Arc<ListenerCtx>,
    broker: Arc<Broker>,
    api: Arc<ApiState>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => {
                let _ = std::fs::remove_file(&path);
                return;
            }
        };
        match accepted {
            Ok((stream, _)) => {
                if !ctx.rate_allows() {
                    tracing::info!("Connection refused: max_connection_rate reached on {path}.");
                    continue;
                }
                let Some(slot) = ctx.try_open() else {
                    tracing::info!("Connection refused: max_connections reached on {path}.");
                    continue;
                };
                broker.metrics.add(Counter::Sockets, 1);
                if ctx.http_api {
                    let tls = ctx.tls.as_ref().and_then(|h| h.load_full());
                    tokio::spawn(serve_api(
                        stream,
                        tls,
                        Arc::clone(&ctx),
                        Arc::clone(&api),
                        slot,
                        path.clone(),
                    ));
                    continue;
                }
                if broker.settings.connection_messages {
                    tracing::info!("New connection from {path} on port 0.");
                }
                let (broker, ctx, shutdown, path) = (
                    Arc::clone(&broker),
                    Arc::clone(&ctx),
                    shutdown.clone(),
                    path.clone(),
                );
                tokio::spawn(async move {
                    let timeout = broker.settings.connect_timeout;
                    let mut cert_username = None;
                    let tls = ctx.tls.as_ref().and_then(|h| h.load_full());
                    // TLS first when configured, then the WebSocket handshake on top of it.
                    let stream = match (tls, &ctx.websockets) {
                        (None, None) => Ok(Some(Stream::Unix(stream))),
                        (None, Some(ws)) => websocket::accept(stream, timeout, ws)
                            .await
                            .map(|s| s.map(Stream::Unix)),
                        (Some(tls), ws) => match tls::handshake(&tls, stream, timeout).await {
                            Err(why) => {
                                broker.metrics.add(Counter::TlsHandshakeFailures, 1);
                                tracing::info!("TLS handshake on {path} failed: {why}.");
                                return;
                            }
                            Ok(accepted) => {
                                cert_username = accepted.username;
                                match ws {
                                    Some(ws) => {
                                        websocket::accept(Box::new(accepted.stream), timeout, ws)
                                            .await
                                            .map(|s| s.map(Stream::Unix))
                                    }
                                    None => Ok(Some(Stream::UnixTls(Box::new(accepted.stream)))),
                                }
                            }
                        },
                    };
                    let stream = match stream {
                        Ok(Some(stream)) => stream,
                        // A plain HTTP request, answered from http_dir.
                        Ok(None) => return,
                        Err(why) => {
                            tracing::info!("Client on {path}: {why}.");
                            return;
                        }
                    };
                    let transport = Transport {
                        stream,
                        peer: path,
                        listener: ctx,
                        slot,
                        cert_username,
                    };
                    connection::serve(broker, transport, shutdown).await;
                });
            }
            Err(e) => {
                tracing::warn!("accept failed on {path}: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Addresses for a listener: the given host's, or every interface (IPv4 and IPv6), limited
/// by `socket_domain`.
async fn resolve(lc: &ListenerConfig) -> Result<Vec<SocketAddr>, ServerError> {
    let port = lc.port;
    let mut addrs = match lc.bind_address.as_deref() {
        None => vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
        ],
        Some(h) => {
            if let Ok(ip) = h.parse::<IpAddr>() {
                vec![SocketAddr::new(ip, port)]
            } else {
                let found: Vec<SocketAddr> = tokio::net::lookup_host((h, port))
                    .await
                    .map_err(|source| ServerError::Resolve {
                        address: h.to_string(),
                        source,
                    })?
                    .collect();
                found.into_iter().take(1).collect()
            }
        }
    };
    match lc.socket_domain {
        Some(SocketDomain::Ipv4) => addrs.retain(SocketAddr::is_ipv4),
        Some(SocketDomain::Ipv6) => addrs.retain(SocketAddr::is_ipv6),
        None => {}
    }
    Ok(addrs)
}

fn bind_tcp(addr: SocketAddr, interface: Option<&str>) -> Result<TcpListener, ServerError> {
    let err = |source| ServerError::Bind {
        addr: addr.to_string(),
        source,
    };
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
    if addr.is_ipv6() {
        // IPv4 is bound separately; keep the two sockets from colliding on dual-stack hosts.
        socket.set_only_v6(true).map_err(err)?;
    }
    if let Some(dev) = interface {
        socket.bind_device(Some(dev.as_bytes())).map_err(err)?;
    }
    socket.set_reuse_address(true).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(1024).map_err(err)?;
    TcpListener::from_std(socket.into()).map_err(err)
}
