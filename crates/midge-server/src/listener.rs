//! Binding the configured listeners and accepting connections until shutdown.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use midge_core::config::Config;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::connection;
use crate::settings::Settings;

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
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no listener could be opened")]
    NoListener,
}

/// A bound broker, ready to run.
pub struct Server {
    broker: Arc<Broker>,
    listeners: Vec<TcpListener>,
    shutdown_tx: watch::Sender<bool>,
}

/// Asks a running server to stop: listeners close, clients are disconnected.
#[derive(Clone)]
pub struct ShutdownHandle(watch::Sender<bool>);

impl ShutdownHandle {
    pub fn shutdown(&self) {
        let _ = self.0.send(true);
    }
}

impl Server {
    /// Binds every listener of `config`. With none configured, listens on the loopback
    /// addresses only, port 1883, and allows anonymous clients unless the configuration
    /// says otherwise (Mosquitto 2's local-only mode).
    pub async fn bind(config: &Config) -> Result<Server, ServerError> {
        let local_only = config.listeners.is_empty();
        let settings = Settings::from_config(config, local_only);
        let mut listeners = Vec::new();
        if local_only {
            for ip in [
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ] {
                let addr = SocketAddr::new(ip, DEFAULT_PORT);
                match bind_tcp(addr) {
                    Ok(l) => listeners.push(l),
                    // A host without IPv6 still serves IPv4, as Mosquitto does.
                    Err(e) if ip.is_ipv6() => tracing::warn!("{e}"),
                    Err(e) => return Err(e),
                }
            }
        } else {
            for l in &config.listeners {
                for addr in resolve(l.port, l.bind_address.as_deref()).await? {
                    match bind_tcp(addr) {
                        Ok(listener) => listeners.push(listener),
                        Err(e)
                            if addr.is_ipv6()
                                && (l.bind_address.is_none()
                                    || addr.ip() == IpAddr::V6(Ipv6Addr::LOCALHOST)) =>
                        {
                            tracing::warn!("{e}")
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        if listeners.is_empty() {
            return Err(ServerError::NoListener);
        }
        let (shutdown_tx, _) = watch::channel(false);
        Ok(Server {
            broker: Broker::new(settings),
            listeners,
            shutdown_tx,
        })
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.shutdown_tx.clone())
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Accepts connections on every listener until shutdown is requested.
    pub async fn run(self) {
        let mut tasks = Vec::new();
        for listener in self.listeners {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(
                    "Opening ipv{} listen socket on port {}.",
                    if addr.is_ipv4() { 4 } else { 6 },
                    addr.port()
                );
            }
            let broker = Arc::clone(&self.broker);
            let shutdown = self.shutdown_tx.subscribe();
            tasks.push(tokio::spawn(accept_loop(listener, broker, shutdown)));
        }
        let mut shutdown = self.shutdown_tx.subscribe();
        while !*shutdown.borrow_and_update() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
        for t in tasks {
            let _ = t.await;
        }
        // Connections see the same signal and close (MQTT 5 clients get DISCONNECT 0x8B);
        // give them a moment to flush before the runtime goes away.
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while self.broker.open_connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tracing::info!(
                    "New connection from {}:{} on port {}.",
                    peer.ip(),
                    peer.port(),
                    port
                );
                tokio::spawn(connection::serve(
                    Arc::clone(&broker),
                    stream,
                    peer,
                    shutdown.clone(),
                ));
            }
            Err(e) => {
                // Out of file descriptors and the like: keep serving existing clients.
                tracing::warn!("accept failed on port {port}: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Addresses for a listener: the given host's, or every interface (IPv4 and IPv6).
async fn resolve(port: u16, host: Option<&str>) -> Result<Vec<SocketAddr>, ServerError> {
    match host {
        None => Ok(vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
        ]),
        Some(h) => {
            if let Ok(ip) = h.parse::<IpAddr>() {
                return Ok(vec![SocketAddr::new(ip, port)]);
            }
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((h, port))
                .await
                .map_err(|source| ServerError::Resolve {
                    address: h.to_string(),
                    source,
                })?
                .collect();
            Ok(addrs.into_iter().take(1).collect())
        }
    }
}

fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    let err = |source| ServerError::Bind { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
    if addr.is_ipv6() {
        // IPv4 is bound separately; keep the two sockets from colliding on dual-stack hosts.
        socket.set_only_v6(true).map_err(err)?;
    }
    socket.set_reuse_address(true).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(1024).map_err(err)?;
    TcpListener::from_std(socket.into()).map_err(err)
}
