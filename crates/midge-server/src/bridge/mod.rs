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
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::policy::PolicyHandle;

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
}

/// What a running bridge is told by a reload.
#[derive(Clone)]
pub(crate) enum Control {
    Run,
    /// The bridge's configuration changed: apply it now (`bridge_reload_type immediate`, or
    /// when not connected) or at the next reconnection (`lazy`).
    Replace(Arc<BridgeSpec>),
    /// The bridge is no longer configured.
    Stop,
}

/// Why a bridge's run ended.
pub(crate) enum Exit {
    Shutdown,
    Removed,
    /// The configuration changed (the new one is in the control channel).
    Replaced,
}

struct Running {
    spec: Arc<BridgeSpec>,
    control: watch::Sender<Control>,
}

/// The bridges of a broker: started with it, changed by reloads.
pub(crate) struct BridgeSet {
    broker: Arc<Broker>,
    /// The ACLs `local_username` is checked against (the broker-wide security; none with
    /// `per_listener_settings true`, where no listener's ACLs apply to a bridge).
    acl: Option<Arc<PolicyHandle>>,
    shutdown: watch::Receiver<bool>,
    running: Mutex<Vec<Running>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl BridgeSet {
    pub(crate) fn new(
        broker: &Arc<Broker>,
        acl: Option<Arc<PolicyHandle>>,
        shutdown: watch::Receiver<bool>,
    ) -> BridgeSet {
        BridgeSet {
            broker: Arc::clone(broker),
            acl,
            shutdown,
            running: Mutex::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Starts `bridges` (at start-up).
    pub(crate) fn start(&self, bridges: Bridges) {
        for spec in bridges.0 {
            self.spawn(spec);
        }
    }

    /// The tasks to wait for at shutdown.
    pub(crate) fn take_tasks(&self) -> Vec<tokio::task::JoinHandle<()>> {
        std::mem::take(&mut *self.tasks.lock())
    }

    fn spawn(&self, spec: Arc<BridgeSpec>) {
        if spec.config.local_username.is_some() && self.acl.is_none() {
            tracing::warn!(
                "Bridge {}: local_username is not checked against any ACL with per_listener_settings true.",
                spec.config.name
            );
        }
        let (control, rx) = watch::channel(Control::Run);
        let task = tokio::spawn(supervise(
            Arc::clone(&spec),
            Arc::clone(&self.broker),
            self.acl.clone(),
            rx,
            self.shutdown.clone(),
        ));
        self.tasks.lock().push(task);
        self.running.lock().push(Running { spec, control });
    }

    /// Applies the bridges of a re-read configuration: new ones start, removed ones stop,
    /// changed ones restart with their new settings (`bridge_reload_type`). A configuration
    /// whose bridges cannot be prepared (a TLS file, say) changes nothing.
    pub(crate) fn reload(&self, config: &Config) -> Vec<String> {
        let new = match Bridges::prepare(config) {
            Ok(b) => b,
            Err(e) => return vec![format!("{e} (keeping the previous bridges)")],
        };
        let mut running = self.running.lock();
        running.retain(|r| {
            let kept = new.0.iter().any(|s| s.config.name == r.spec.config.name);
            if !kept {
                tracing::info!("Bridge {} removed by the reload.", r.spec.config.name);
                let _ = r.control.send(Control::Stop);
            }
            kept
        });
        let mut added = Vec::new();
        for spec in new.0 {
            match running
                .iter_mut()
                .find(|r| r.spec.config.name == spec.config.name)
            {
                Some(r) if r.spec.config == spec.config => {}
                Some(r) => {
                    tracing::info!("Bridge {} changed by the reload.", spec.config.name);
                    r.spec = Arc::clone(&spec);
                    let _ = r.control.send(Control::Replace(spec));
                }
                None => added.push(spec),
            }
        }
        drop(running);
        for spec in added {
            tracing::info!("Bridge {} added by the reload.", spec.config.name);
            self.spawn(spec);
        }
        Vec::new()
    }
}

/// Runs one bridge through its configurations until it is removed or the broker stops.
async fn supervise(
    mut spec: Arc<BridgeSpec>,
    broker: Arc<Broker>,
    acl: Option<Arc<PolicyHandle>>,
    mut control: watch::Receiver<Control>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        // What a reload sent since the last look (it may have come while the previous run
        // was ending) decides what runs now.
        let latest = control.borrow_and_update().clone();
        match latest {
            Control::Stop => {
                client::forget_local_session(&broker, &spec);
                return;
            }
            Control::Replace(new) if !Arc::ptr_eq(&new, &spec) => {
                if new.local_id != spec.local_id {
                    client::forget_local_session(&broker, &spec);
                }
                spec = new;
            }
            Control::Replace(_) | Control::Run => {}
        }
        let mut signals = client::Signals::new(&mut control, &mut shutdown);
        match client::run(Arc::clone(&spec), &broker, acl.clone(), &mut signals).await {
            Exit::Shutdown => return,
            // The control value that ended the run is read again at the top of the loop.
            Exit::Removed | Exit::Replaced => {}
        }
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
