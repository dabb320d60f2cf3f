//! What a connection needs to know about the listener it arrived on: its security policy
//! (swapped on reload) and its per-listener options.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use midge_core::config::{Config, ListenerConfig};
use midge_proto::QoS;

use crate::admission::Admission;
use crate::policy::{Policy, PolicyHandle};
use crate::tls::TlsHandle;
use crate::websocket::WsOptions;

#[derive(Debug)]
pub struct ListenerCtx {
    /// Position in the configuration's listener list, to match listeners on reload.
    pub index: usize,
    pub port: u16,
    /// Shared with the TLS-PSK callback, which looks keys up in the current policy.
    pub policy: Arc<PolicyHandle>,
    pub max_qos: QoS,
    /// Topic aliases a client may set up towards the broker (0 = none).
    pub max_topic_alias: u16,
    /// Prefix added to this listener's clients' topics, removed from what they receive.
    pub mount_point: Option<String>,
    pub use_username_as_clientid: bool,
    /// `max_connections`; `None` = unlimited.
    max_connections: Option<u32>,
    /// `max_connection_rate`: new connections per second.
    connection_rate: Option<parking_lot::Mutex<midge_core::rate::TokenBucket>>,
    /// Connections open on this listener now.
    open: Arc<AtomicUsize>,
    /// Per-address connection rate limit, shared by every listener.
    pub admission: Arc<Admission>,
    /// The TLS context of a TLS listener (swapped on reload); `None` for plain ones.
    pub tls: Option<TlsHandle>,
    /// `protocol http_api`: the read-only HTTP API instead of MQTT.
    pub http_api: bool,
    /// `require_certificate`: a TLS handshake that succeeded verified a client certificate.
    pub require_certificate: bool,
    /// `protocol websockets`: MQTT inside WebSocket binary messages (over TLS when `tls`),
    /// with the listener's HTTP options. Set by `Server::bind`, which checks `http_dir`.
    pub websockets: Option<WsOptions>,
}

/// Holds one of a listener's `max_connections` places until dropped.
#[derive(Debug)]
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ListenerCtx {
    pub fn new(
        index: usize,
        lc: &ListenerConfig,
        config: &Config,
        policy: Policy,
        admission: Arc<Admission>,
    ) -> ListenerCtx {
        ListenerCtx {
            index,
            port: lc.port,
            policy: Arc::new(PolicyHandle::new(policy)),
            max_qos: QoS::from_u8(config.listener_max_qos(lc)).unwrap_or(QoS::ExactlyOnce),
            max_topic_alias: lc.max_topic_alias,
            mount_point: lc.mount_point.clone().filter(|m| !m.is_empty()),
            use_username_as_clientid: lc.use_username_as_clientid,
            max_connections: lc.max_connections,
            connection_rate: lc.max_connection_rate.map(|r| {
                let now = std::time::Instant::now();
                parking_lot::Mutex::new(midge_core::rate::TokenBucket::new(
                    u64::from(r),
                    u64::from(r),
                    now,
                ))
            }),
            open: Arc::new(AtomicUsize::new(0)),
            admission,
            tls: None,
            websockets: None,
            http_api: lc.protocol == midge_core::config::Protocol::HttpApi,
            require_certificate: lc.tls.require_certificate,
        }
    }

    /// Whether `max_connection_rate` lets one more connection in now.
    pub fn rate_allows(&self) -> bool {
        match &self.connection_rate {
            None => true,
            Some(bucket) => bucket.lock().try_take(1, std::time::Instant::now()),
        }
    }

    /// Takes a connection place, or `None` when the listener is full.
    pub fn try_open(&self) -> Option<Slot> {
        let n = self.open.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(Arc::clone(&self.open));
        match self.max_connections {
            Some(max) if n >= max as usize => None,
            _ => Some(slot),
        }
    }
}
