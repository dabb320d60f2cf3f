//! Bridges (issue 8): each `connection` block runs inside the broker as a client of a remote
//! broker, with the broker's own codec and session machinery.
//!
//! The bridge's local side is an ordinary [`crate::session::Session`] (client id
//! `local_clientid`) subscribed to the `out`/`both` filters: routing fills its mailbox like
//! any subscriber's, under `max_queued_messages`, while the remote is down too. The remote
//! side ([`client`]) drains that mailbox into PUBLISH packets with packet ids inside the
//! inflight window, and publishes what the remote sends on the `in`/`both` filters into the
//! local broker. Topic mapping is pure ([`midge_core::bridge_topics`]), and so are the
//! address rotation and the reconnect backoff ([`midge_core::bridge_reconnect`]).

mod client;
mod notifications;
mod tls;

use std::sync::Arc;

use midge_core::bridge_topics::TopicMaps;
use midge_core::config::{BridgeConfig, Config};
use tokio::sync::watch;

use crate::broker::Broker;

/// One bridge, ready to run: its configuration and what start-up worked out from it.
pub(crate) struct BridgeSpec {
    pub config: BridgeConfig,
    pub maps: TopicMaps,
    /// Client id on the remote: `remote_clientid`, or `<hostname>.<connection name>`.
    pub remote_id: String,
    /// Client id of the local session: `local_clientid`, or `local.<remote client id>`.
    pub local_id: Arc<str>,
    /// `notification_topic`, or `$SYS/broker/connection/<remote client id>/state`.
    pub notification_topic: String,
    pub tls: Option<tls::BridgeTlsContext>,
}

/// Every bridge of a configuration, checked and ready to start.
pub(crate) struct Bridges(Vec<Arc<BridgeSpec>>);

impl Bridges {
    /// Works out every bridge of `config`: client ids, topics, TLS contexts. A TLS file that
    /// cannot be used is an error here, at start-up.
    pub(crate) fn prepare(config: &Config) -> Result<Bridges, String> {
        let host = hostname();
        let mut specs = Vec::new();
        for b in &config.bridges {
            let remote_id = b
                .remote_clientid
                .clone()
                .unwrap_or_else(|| format!("{host}.{}", b.name));
            let local_id = b
                .local_clientid
                .clone()
                .unwrap_or_else(|| format!("local.{remote_id}"));
            let notification_topic = b
                .notification_topic
                .clone()
                .unwrap_or_else(|| format!("$SYS/broker/connection/{remote_id}/state"));
            let tls = tls::build(b).map_err(|e| format!("{}:{}: {e}", b.file, b.line))?;
            specs.push(Arc::new(BridgeSpec {
                maps: TopicMaps::new(&b.topics),
                config: b.clone(),
                remote_id,
                local_id: Arc::from(local_id),
                notification_topic,
                tls,
            }));
        }
        Ok(Bridges(specs))
    }

    /// Starts every bridge; each runs until `shutdown` turns true.
    pub(crate) fn spawn(
        self,
        broker: &Arc<Broker>,
        shutdown: &watch::Sender<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        self.0
            .into_iter()
            .map(|spec| tokio::spawn(client::run(spec, Arc::clone(broker), shutdown.subscribe())))
            .collect()
    }
}

/// The host name, for the default client id (Mosquitto uses `gethostname`).
fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| {
            let text = std::fs::read_to_string(p).ok()?;
            let name = text.trim();
            (!name.is_empty()).then(|| name.to_owned())
        })
        .unwrap_or_else(|| "localhost".to_owned())
}
