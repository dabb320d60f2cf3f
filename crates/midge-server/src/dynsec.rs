//! The dynamic security plugin's I/O side: one instance per `dynamic-security.json`, its
//! file written atomically after every change, and the `$CONTROL/dynamic-security/v1`
//! requests run one at a time on a thread of their own.
//!
//! The model, its ACL evaluation and the command handling are pure and live in
//! `midge_core::dynsec`. Checks read an immutable snapshot (swapped after each change), so
//! the per-delivery ACL check never waits for an administrator.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Weak};
use std::time::Instant;

use arc_swap::ArcSwap;
use midge_core::dynsec::{Admin, DynSec};
use parking_lot::Mutex;

use crate::broker::Broker;
use crate::message::Message;

/// How many requests may wait for the worker. Requests come only from clients the ACLs let
/// publish to `$CONTROL/dynamic-security/v1`; beyond this they are dropped and logged.
const QUEUE: usize = 1024;

/// One request, as received.
struct Request {
    client_id: Arc<str>,
    username: Option<Arc<str>>,
    payload: bytes::Bytes,
}

/// One loaded `dynamic-security.json` and the worker that applies changes to it.
#[derive(Debug)]
pub struct DynSecInstance {
    path: PathBuf,
    state: ArcSwap<DynSec>,
    /// Counts applied changes, so a login checked against one state can tell that another
    /// replaced it before the client was attached (and its kicks could not see it).
    changes: std::sync::atomic::AtomicU64,
    requests: Mutex<Option<mpsc::SyncSender<Request>>>,
}

impl DynSecInstance {
    /// Reads and checks the file. The error names the file.
    fn load(path: &Path) -> Result<DynSecInstance, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "dynamic security file '{}': {e} (create one with `midge ctrl dynsec init {} <admin-username>`)",
                path.display(),
                path.display()
            )
        })?;
        let mut dynsec = DynSec::from_json(&text)
            .map_err(|e| format!("dynamic security file '{}': {e}", path.display()))?;
        dynsec.set_salt_source(os_salt);
        Ok(DynSecInstance {
            path: path.to_owned(),
            state: ArcSwap::from_pointee(dynsec),
            changes: std::sync::atomic::AtomicU64::new(0),
            requests: Mutex::new(None),
        })
    }

    /// How many changes have been applied so far.
    pub fn changes(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The current state, for authentication and ACL checks.
    pub fn state(&self) -> arc_swap::Guard<Arc<DynSec>> {
        self.state.load()
    }

    /// Queues a request published to `$CONTROL/dynamic-security/v1` by an authorised
    /// client. The answer is published later, after the acknowledgement of the request.
    pub fn submit(&self, client_id: &Arc<str>, username: Option<&Arc<str>>, payload: bytes::Bytes) {
        let request = Request {
            client_id: Arc::clone(client_id),
            username: username.cloned(),
            payload,
        };
        let sender = self.requests.lock();
        let sent = sender.as_ref().map(|tx| tx.try_send(request));
        if !matches!(sent, Some(Ok(()))) {
            tracing::warn!("dynsec: request from {client_id} dropped: too many requests waiting");
        }
    }

    /// Applies one request: the new state replaces the old one only once it is on disk, so
    /// a change is never visible without being durable (and a failed write changes nothing).
    fn apply(&self, broker: &Broker, request: &Request) {
        let current = self.state.load_full();
        let mut next = (*current).clone();
        let admin = Admin {
            client_id: &request.client_id,
            username: request.username.as_deref(),
        };
        let outcome = next.handle(&admin, &request.payload);
        for line in &outcome.log {
            tracing::info!("{line}");
            let who = crate::audit::Who {
                client_id: &request.client_id,
                username: request.username.as_deref(),
                address: "",
            };
            let details = serde_json::json!({ "command": line });
            broker.audit("dynsec_command", who, details);
        }
        if outcome.changed {
            if let Err(e) = write_atomically(&self.path, next.to_json().as_bytes()) {
                tracing::error!(
                    "dynsec: cannot save '{}': {e}; the change is not applied.",
                    self.path.display()
                );
                return;
            }
            self.state.store(Arc::new(next));
            self.changes
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        if outcome.changed {
            for username in &outcome.kick {
                broker.kick_username(username);
            }
            if outcome.kick_anonymous {
                // Clients without a username on listeners this file governs.
                broker.kick_where(|s| {
                    s.username().is_none()
                        && s.listener().is_some_and(|l| {
                            l.policy
                                .get()
                                .dynsec
                                .as_ref()
                                .is_some_and(|d| std::ptr::eq(Arc::as_ptr(d), self))
                        })
                });
            }
            // CVE-2021-34434: a subscription allowed when it was made must not outlive the
            // right to make it, online or offline.
            broker.recheck_subscriptions();
        }
        // The answer goes out once the change is in force (kicks done), so whoever acts on
        // it sees the new rules.
        let now = Instant::now();
        let response = Message::new(
            midge_core::dynsec::RESPONSE_TOPIC.into(),
            outcome.response.into(),
            midge_proto::QoS::AtMostOnce,
            false,
            midge_proto::Properties::default(),
            now,
            None,
        );
        broker.publish(&Arc::new(response), now);
    }
}

/// Salts for new password hashes, from the operating system's generator.
fn os_salt() -> [u8; 12] {
    let mut salt = [0u8; 12];
    getrandom::fill(&mut salt).expect("the operating system's random generator works");
    salt
}

/// Replaces `path` with `bytes` so that a crash leaves either the old file or the new one:
/// write a temporary file beside it (mode 0600: it holds password hashes), flush it to
/// disk, rename it over the old one, then flush the directory so the rename is durable.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.new"));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Every dynamic security instance of the broker, by file, so that listeners naming the
/// same file share one state (and a reload keeps it: Mosquitto does not reload plugins on
/// SIGHUP either).
#[derive(Debug, Default)]
pub struct Registry {
    instances: Mutex<HashMap<PathBuf, Arc<DynSecInstance>>>,
}

impl Registry {
    /// The instance for `file`, loading it (and starting its worker) the first time.
    pub fn get_or_load(
        &self,
        file: &str,
        broker: &Arc<Broker>,
    ) -> Result<Arc<DynSecInstance>, String> {
        let key = std::fs::canonicalize(file).unwrap_or_else(|_| PathBuf::from(file));
        let mut instances = self.instances.lock();
        if let Some(found) = instances.get(&key) {
            return Ok(Arc::clone(found));
        }
        let instance = Arc::new(DynSecInstance::load(&key)?);
        let (tx, rx) = mpsc::sync_channel::<Request>(QUEUE);
        *instance.requests.lock() = Some(tx);
        let worker = Arc::downgrade(&instance);
        let broker = Arc::downgrade(broker);
        std::thread::Builder::new()
            .name("midge-dynsec".to_owned())
            .spawn(move || run(&worker, &broker, &rx))
            .map_err(|e| format!("cannot start the dynamic security worker: {e}"))?;
        instances.insert(key, Arc::clone(&instance));
        Ok(instance)
    }
}

/// The worker: requests one at a time, in arrival order, until the broker goes away.
fn run(instance: &Weak<DynSecInstance>, broker: &Weak<Broker>, rx: &mpsc::Receiver<Request>) {
    while let Ok(request) = rx.recv() {
        let (Some(instance), Some(broker)) = (instance.upgrade(), broker.upgrade()) else {
            return;
        };
        instance.apply(&broker, &request);
    }
}
