//! The state every connection shares: the session registry, the subscription trie and the
//! retained store, and the routing of one message to its subscribers.
//!
//! Routing runs on the publisher's own task under a read lock of the trie, so publishers on
//! different cores route in parallel; only SUBSCRIBE/UNSUBSCRIBE take the write lock.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use midge_core::retained::RetainedStore;
use midge_core::trie::{Match, SubscriptionTrie};
use midge_proto::QoS;
use parking_lot::{Mutex, RwLock};

use crate::message::Message;
use crate::metrics::Counter;
use crate::session::{Delivery, Session, SubEntry};
use crate::settings::Settings;

/// A session as the trie's key: identity is the `Arc`'s address, so a discarded session and
/// its successor with the same client id never alias.
#[derive(Clone, Debug)]
pub struct SessionKey(pub Arc<Session>);

impl PartialEq for SessionKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for SessionKey {}
impl Hash for SessionKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.0) as usize).hash(state);
    }
}

/// A will message waiting for its connection to end. The message is built only when it is
/// published, so that its expiry interval starts then and not at CONNECT.
#[derive(Clone, Debug)]
pub struct PendingWill {
    pub will: midge_proto::Will,
    pub publisher: Arc<str>,
    pub username: Option<Arc<str>>,
    /// The listener the client connected through: its policy decides whether the will may
    /// be published when the time comes (the ACL may have been reloaded since CONNECT).
    pub listener: Option<Arc<crate::listener_ctx::ListenerCtx>>,
    /// Remote address of the connection that set the will, for the security log.
    pub peer: String,
    /// MQTT 5 will delay interval in seconds (0 for 3.x).
    pub delay: u32,
}

impl PendingWill {
    pub fn message(self, now: Instant) -> Arc<Message> {
        let mut properties = self.will.properties;
        properties.will_delay_interval = None;
        Arc::new(Message::new(
            self.will.topic,
            self.will.payload,
            self.will.qos,
            self.will.retain,
            properties,
            now,
            Some(self.publisher),
        ))
    }
}

/// The outcome of attaching a new connection to a session.
pub struct Attached {
    pub session: Arc<Session>,
    pub generation: u64,
    pub session_present: bool,
    /// Another connection held the session and has been told to close.
    pub took_over: bool,
    /// A session of this client id was in the persistence store before this CONNECT (the
    /// one resumed, or the one a clean start discarded).
    pub was_persisted: bool,
}

pub struct Broker {
    pub settings: Settings,
    sessions: Mutex<HashMap<Arc<str>, Arc<Session>>>,
    subs: RwLock<SubscriptionTrie<SessionKey, SubEntry>>,
    retained: RwLock<RetainedStore<Arc<Message>>>,
    /// Source of connection generations; 0 is reserved for "offline".
    next_generation: AtomicU64,
    /// Open client connections (CONNECT pending or done), so shutdown can wait for them
    /// to say goodbye.
    connections: AtomicUsize,
    /// Password checks running at once (PBKDF2 and argon2id are CPU and memory heavy):
    /// one per core, so a flood of CONNECTs queues here instead of starving the I/O threads.
    pub hashing: tokio::sync::Semaphore,
    /// The general options Mosquitto re-reads on SIGHUP; the others in `settings` keep
    /// their start-up values.
    reloadable: Reloadable,
    /// Dynamic security instances, by file.
    pub dynsec: crate::dynsec::Registry,
    /// What `$SYS` and `/metrics` report.
    pub metrics: crate::metrics::Counters,
    /// When the broker started, for `$SYS/broker/uptime`.
    pub started: Instant,
    /// What `$SYS` last published and the load averages, shared with the HTTP API.
    pub systree: Mutex<midge_core::systree::SysTree>,
    /// The persistence store, with `persistence true`.
    pub persist: Option<crate::persist::Persist>,
    /// Failed logins by address and username, slowing down guessing.
    pub throttle: Mutex<midge_core::throttle::AuthThrottle>,
    /// `audit_log`: security events as JSON lines.
    pub audit: Option<crate::audit::Audit>,
}

#[derive(Debug)]
struct Reloadable {
    retain_available: AtomicBool,
    upgrade_outgoing_qos: AtomicBool,
}

/// Counts one open connection for as long as it lives.
pub struct ConnectionGuard(Arc<Broker>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One subscriber chosen for a message, before duplicates of the same client are merged.
struct Target {
    session: Arc<Session>,
    qos: QoS,
    retain_as_published: bool,
    sub_id: Option<u32>,
    /// Shared-subscription deliveries are never merged with the client's other matches.
    shared: bool,
}

thread_local! {
    /// Reused per routing call so that fan-out does not allocate a target list per message.
    static TARGETS: RefCell<Vec<Target>> = const { RefCell::new(Vec::new()) };
}

impl Broker {
    pub fn new(settings: Settings) -> Arc<Broker> {
        Broker::with_persistence(settings, None, None)
    }

    /// Records a security event in the audit log, when there is one.
    pub fn audit(&self, event: &str, who: crate::audit::Who<'_>, details: serde_json::Value) {
        if let Some(a) = &self.audit {
            a.record(event, who, details);
        }
    }

    /// A broker whose persistent state is written to `persist` (see `crate::persist`).
    /// … and its security events to `audit`.
    pub fn with_persistence(
        settings: Settings,
        persist: Option<crate::persist::Persist>,
        audit: Option<crate::audit::Audit>,
    ) -> Arc<Broker> {
        let reloadable = Reloadable {
            retain_available: AtomicBool::new(settings.retain_available),
            upgrade_outgoing_qos: AtomicBool::new(settings.upgrade_outgoing_qos),
        };
        let throttle = Mutex::new(midge_core::throttle::AuthThrottle::new(
            settings.auth_failure_delay,
        ));
        Arc::new(Broker {
            settings,
            sessions: Mutex::new(HashMap::new()),
            subs: RwLock::new(SubscriptionTrie::new()),
            retained: RwLock::new(RetainedStore::new()),
            next_generation: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            reloadable,
            dynsec: crate::dynsec::Registry::default(),
            metrics: crate::metrics::Counters::default(),
            started: Instant::now(),
            systree: Mutex::new(midge_core::systree::SysTree::new(crate::systree::version())),
            throttle,
            audit,
            persist,
            hashing: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
        })
    }

    pub fn retain_available(&self) -> bool {
        self.reloadable.retain_available.load(Ordering::Relaxed)
    }

    /// Applies the reloadable general options of a re-read configuration.
    pub fn reload(&self, config: &midge_core::config::Config) {
        self.reloadable
            .retain_available
            .store(config.retain_available, Ordering::Relaxed);
        self.reloadable
            .upgrade_outgoing_qos
            .store(config.upgrade_outgoing_qos, Ordering::Relaxed);
    }

    pub fn connection_opened(self: &Arc<Self>) -> ConnectionGuard {
        self.connections.fetch_add(1, Ordering::AcqRel);
        ConnectionGuard(Arc::clone(self))
    }

    pub fn open_connections(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    /// Attaches a new connection to the session of `client_id`: resumes it, or replaces it
    /// when `clean_start` is set. An existing owner is told to go (session takeover).
    pub fn attach(&self, client_id: &Arc<str>, clean_start: bool, expiry: u32) -> Attached {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let mut sessions = self.sessions.lock();
        let mut took_over = false;
        let mut was_persisted = false;
        if let Some(old) = sessions.get(client_id).cloned() {
            let mut st = old.state.lock();
            took_over = st.generation != 0;
            was_persisted = st.persisted;
            if !clean_start && !st.ended {
                st.generation = generation;
                st.last_generation = generation;
                st.expiry_interval = expiry;
                drop(st);
                old.set_online(true);
                old.wake.notify_waiters();
                return Attached {
                    session: old,
                    generation,
                    session_present: true,
                    took_over,
                    was_persisted,
                };
            }
            st.persisted = false;
            st.ended = true;
            st.generation = 0;
            let filters: Vec<String> = st.subscriptions.drain().map(|(f, _)| f).collect();
            drop(st);
            old.set_online(false);
            self.unsubscribe_all(&old, &filters);
            old.wake.notify_waiters();
        }
        let session = Session::new(client_id.clone(), expiry);
        {
            let mut st = session.state.lock();
            st.generation = generation;
            st.last_generation = generation;
        }
        session.set_online(true);
        sessions.insert(client_id.clone(), session.clone());
        Attached {
            session,
            generation,
            session_present: false,
            took_over,
            was_persisted,
        }
    }

    /// Called when the connection with `generation` ends. Sends or schedules the will and
    /// ends the session or schedules its expiry. Does nothing to a session another
    /// connection has taken over, except sending the will of the connection that lost it.
    pub fn detach(
        self: &Arc<Self>,
        session: &Arc<Session>,
        generation: u64,
        will: Option<PendingWill>,
    ) {
        let mut st = session.state.lock();
        if st.generation != generation {
            drop(st);
            // Taken over (or discarded): the session lives on elsewhere, so a delayed will
            // is cancelled [MQTT-3.1.3-9]; an immediate one is the old connection's.
            if let Some(w) = will.filter(|w| w.delay == 0) {
                self.publish_will_now(w);
            }
            return;
        }
        st.generation = 0;
        let expiry = st.expiry_interval;
        if st.persisted && expiry != 0 {
            if let Some(p) = &self.persist {
                self.store_disconnect(p, session, &st, will.as_ref());
            }
        }
        drop(st);
        session.set_online(false);

        if expiry == 0 {
            self.end_session(session);
            if let Some(w) = will {
                self.publish_will_now(w);
            }
            return;
        }
        if expiry != u32::MAX {
            let broker = Arc::clone(self);
            let session = Arc::clone(session);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(u64::from(expiry))).await;
                broker.expire_if_idle(&session, generation);
            });
        }
        if let Some(w) = will {
            let delay = w.delay.min(expiry);
            if delay == 0 {
                self.publish_will_now(w);
            } else {
                let broker = Arc::clone(self);
                let session = Arc::clone(session);
                let since = generation;
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(u64::from(delay))).await;
                    // Not sent if any connection resumed the session in the meantime.
                    if !broker.resumed_since(&session, since) {
                        broker.publish_will_now(w);
                        broker.forget_stored_will(&session);
                    }
                });
            }
        }
    }

    /// The store learns that the client left: when, and whether a will still waits (one
    /// published now, or none, is cleared).
    fn store_disconnect(
        &self,
        p: &crate::persist::Persist,
        session: &Session,
        st: &crate::session::SessionState,
        will: Option<&PendingWill>,
    ) {
        let client_id = session.client_id.to_string();
        let listener = session
            .listener()
            .map_or(0, |l| u32::try_from(l.index).unwrap_or(u32::MAX));
        p.submit(crate::store::Op::UpsertSession {
            client_id: client_id.clone(),
            expiry_interval: st.expiry_interval,
            disconnected_unix: Some(crate::persist::unix_now()),
            username: session.username().as_deref().map(str::to_owned),
            listener,
            protocol: st.protocol,
        });
        if will.is_none_or(|w| w.delay.min(st.expiry_interval) == 0) {
            p.submit(crate::store::Op::SetWill {
                client_id,
                will: None,
            });
        }
    }

    /// Ends the session when its expiry comes and no connection has attached since the one
    /// with `generation` left (0: since start-up).
    pub(crate) fn expire_if_idle(&self, session: &Arc<Session>, generation: u64) {
        let idle = {
            let st = session.state.lock();
            st.generation == 0 && st.last_generation == generation
        };
        if idle && !self.is_replaced(session) {
            self.end_session(session);
            self.metrics.add(Counter::SessionsExpired, 1);
        }
    }

    /// Registers a session rebuilt from the store.
    /// The session of `client_id`, online or not.
    pub(crate) fn session(&self, client_id: &str) -> Option<Arc<Session>> {
        self.sessions.lock().get(client_id).cloned()
    }

    pub(crate) fn insert_session(&self, session: Arc<Session>) {
        self.sessions
            .lock()
            .insert(Arc::clone(&session.client_id), session);
    }

    pub(crate) fn retained_store(
        &self,
    ) -> parking_lot::RwLockWriteGuard<'_, RetainedStore<Arc<Message>>> {
        self.retained.write()
    }

    /// Where the persistence store is, for the log.
    pub(crate) fn persist_path(&self) -> String {
        self.persist
            .as_ref()
            .map(|p| p.path().display().to_string())
            .unwrap_or_default()
    }

    /// A stored will has been published (or is no longer wanted).
    pub(crate) fn forget_stored_will(&self, session: &Session) {
        let Some(p) = &self.persist else {
            return;
        };
        if session.state.lock().persisted {
            p.submit(crate::store::Op::SetWill {
                client_id: session.client_id.to_string(),
                will: None,
            });
        }
    }

    fn is_replaced(&self, session: &Arc<Session>) -> bool {
        self.sessions
            .lock()
            .get(&session.client_id)
            .is_none_or(|s| !Arc::ptr_eq(s, session))
    }

    /// True when a connection newer than `generation` has attached to this session.
    fn resumed_since(&self, session: &Arc<Session>, generation: u64) -> bool {
        session.state.lock().last_generation != generation
    }

    /// Removes a session for good: its subscriptions leave the trie and its queue is freed.
    pub fn end_session(&self, session: &Arc<Session>) {
        let filters: Vec<String> = {
            let mut st = session.state.lock();
            if std::mem::take(&mut st.persisted) {
                if let Some(p) = &self.persist {
                    p.submit(crate::store::Op::DeleteSession {
                        client_id: session.client_id.to_string(),
                    });
                }
            }
            st.ended = true;
            st.queue.clear();
            st.inflight.clear();
            st.inflight_bytes = 0;
            st.subscriptions.drain().map(|(f, _)| f).collect()
        };
        self.unsubscribe_all(session, &filters);
        let mut sessions = self.sessions.lock();
        if sessions
            .get(&session.client_id)
            .is_some_and(|s| Arc::ptr_eq(s, session))
        {
            sessions.remove(&session.client_id);
        }
    }

    fn unsubscribe_all(&self, session: &Arc<Session>, filters: &[String]) {
        if filters.is_empty() {
            return;
        }
        let key = SessionKey(session.clone());
        let mut trie = self.subs.write();
        for f in filters {
            trie.remove(f, &key);
        }
    }

    /// The counters and gauges `$SYS` and `/metrics` report. Walks every session: called
    /// every `sys_interval` seconds or per scrape, not per message.
    pub fn sample(&self) -> midge_core::systree::Sample {
        let m = &self.metrics;
        let mut s = midge_core::systree::Sample {
            uptime: self.started.elapsed().as_secs(),
            connected: m.connected(),
            maximum: m.maximum(),
            expired: m.get(Counter::SessionsExpired),
            sockets: m.get(Counter::Sockets),
            connections: m.get(Counter::Connections),
            packets_received: m.get(Counter::PacketsReceived),
            packets_sent: m.get(Counter::PacketsSent),
            bytes_received: m.get(Counter::BytesReceived),
            bytes_sent: m.get(Counter::BytesSent),
            publish_received: m.get(Counter::PublishReceived),
            publish_sent: m.get(Counter::PublishSent),
            publish_dropped: m.get(Counter::PublishDropped),
            publish_bytes_received: m.get(Counter::PublishBytesReceived),
            publish_bytes_sent: m.get(Counter::PublishBytesSent),
            auth_failures: m.get(Counter::AuthFailures),
            acl_denials: m.get(Counter::AclDenials),
            tls_handshake_failures: m.get(Counter::TlsHandshakeFailures),
            heap: crate::heap::usage().map(|(c, m)| (c as u64, m as u64)),
            ..Default::default()
        };
        let sessions: Vec<Arc<Session>> = self.sessions.lock().values().cloned().collect();
        for session in sessions {
            let st = session.state.lock();
            if st.ended {
                continue;
            }
            if st.generation == 0 {
                s.disconnected += 1;
            }
            s.subscriptions += st.subscriptions.len() as u64;
            s.shared_subscriptions += st
                .subscriptions
                .keys()
                .filter(|f| f.starts_with("$share/"))
                .count() as u64;
            s.messages_stored += (st.queue.len() + st.inflight.len()) as u64;
            s.messages_stored_bytes += (st.queued_bytes + st.inflight_bytes) as u64;
        }
        let retained = self.retained.read();
        s.retained = retained.len() as u64;
        let mut retained_bytes = 0;
        retained.for_each_match("#", |_, m| retained_bytes += m.payload.len() as u64);
        retained.for_each_match("$SYS/#", |_, m| retained_bytes += m.payload.len() as u64);
        s.messages_stored += s.retained;
        s.messages_stored_bytes += retained_bytes;
        s
    }

    /// Closes the connections of clients logged in as `username` (dynamic security: the
    /// client was deleted or disabled, or its password, roles or groups changed).
    pub fn kick_username(&self, username: &str) {
        self.kick_where(|s| s.username().as_deref() == Some(username));
    }

    /// Closes the connections of every session `which` selects.
    pub fn kick_where(&self, which: impl Fn(&Session) -> bool) {
        let sessions: Vec<Arc<Session>> = self.sessions.lock().values().cloned().collect();
        for session in sessions {
            if !which(&session) {
                continue;
            }
            let mut st = session.state.lock();
            if st.generation != 0 {
                st.kicked = st.generation;
                drop(st);
                // A stored permit: the connection may be between its check and its wait.
                session.wake.notify_one();
            }
        }
    }

    /// Drops every subscription, of online and offline sessions, that its client may no
    /// longer make (CVE-2021-34434: revoked rights must not live on in old subscriptions).
    pub fn recheck_subscriptions(&self) {
        let sessions: Vec<Arc<Session>> = self.sessions.lock().values().cloned().collect();
        for session in sessions {
            let filters: Vec<String> = session.state.lock().subscriptions.keys().cloned().collect();
            let denied: Vec<String> = filters
                .into_iter()
                .filter(|f| !session.may(f, midge_core::acl::Access::Subscribe))
                .collect();
            if denied.is_empty() {
                continue;
            }
            {
                let mut st = session.state.lock();
                for f in &denied {
                    st.subscriptions.remove(f);
                }
            }
            self.unsubscribe_all(&session, &denied);
            tracing::info!(
                "Client {}: subscriptions no longer allowed removed: {}.",
                session.client_id,
                denied.join(", ")
            );
        }
    }

    /// Adds or replaces a subscription; returns true when it is new (retain handling 1).
    pub fn subscribe(&self, session: &Arc<Session>, filter: &str, entry: SubEntry) -> bool {
        let key = SessionKey(session.clone());
        self.subs.write().insert(filter, key, entry).is_none()
    }

    /// Removes a subscription; returns true when it existed.
    pub fn unsubscribe(&self, session: &Arc<Session>, filter: &str) -> bool {
        let key = SessionKey(session.clone());
        self.subs.write().remove(filter, &key).is_some()
    }

    /// Stores or clears a retained message (an empty payload clears).
    /// Returns the persistence ticket (0 when nothing was stored).
    pub fn retain(&self, msg: &Arc<Message>) -> u64 {
        {
            let mut store = self.retained.write();
            if msg.payload.is_empty() {
                store.remove(&msg.topic);
            } else {
                store.set(&msg.topic, Arc::clone(msg));
            }
        }
        // The broker's own `$SYS` values are rebuilt at start-up, not restored.
        match &self.persist {
            Some(p) if !msg.topic.starts_with("$SYS") => p.retain(msg),
            _ => 0,
        }
    }

    /// Retained messages matching `filter` that have not expired.
    pub fn retained_matching(&self, filter: &str, now: Instant, out: &mut Vec<Arc<Message>>) {
        let store = self.retained.read();
        store.for_each_match(filter, |_, m| {
            if !m.is_expired(now) {
                out.push(Arc::clone(m));
            }
        });
    }

    pub(crate) fn publish_will_now(&self, will: PendingWill) {
        // Control requests are never taken from a will (Mosquitto 2.0.16): a will is
        // published after the client is gone, with nobody to answer to.
        let control = will.will.topic.starts_with("$CONTROL/");
        let allowed = !control
            && will.listener.as_ref().is_none_or(|l| {
                l.policy.with(|p| {
                    p.may(
                        will.username.as_deref(),
                        &will.publisher,
                        &will.will.topic,
                        midge_core::acl::Access::Write,
                    )
                })
            });
        if !allowed {
            let who = crate::audit::Who {
                client_id: &will.publisher,
                username: will.username.as_deref(),
                address: &will.peer,
            };
            let details = serde_json::json!({"action": "will", "topic": &*will.will.topic});
            self.audit("acl_denied", who, details);
            tracing::info!(
                "Denied will of {} on '{}'.",
                crate::connection::describe_client(
                    &will.publisher,
                    will.username.as_deref(),
                    &will.peer
                ),
                &*will.will.topic
            );
            return;
        }
        let now = Instant::now();
        self.publish(&will.message(now), now);
    }

    /// Stores (if retained) and routes a message; the full publish path after the
    /// publisher's own checks. Returns the number of subscribers it was queued for.
    pub fn publish(&self, msg: &Arc<Message>, now: Instant) -> usize {
        self.publish_stored(msg, now).0
    }

    /// As [`Broker::publish`], also returning the persistence ticket the publisher's
    /// acknowledgement must wait for (0 when nothing was stored).
    pub fn publish_stored(&self, msg: &Arc<Message>, now: Instant) -> (usize, u64) {
        let mut ticket = 0;
        let mut msg = Arc::clone(msg);
        if msg.retain && self.retain_available() {
            if !msg.payload.is_empty() {
                // Retained for long: its own bytes, not the read buffer's (and the live
                // deliveries share that copy, so the store numbers one message).
                msg = msg.kept();
            }
            ticket = self.retain(&msg);
        }
        let (delivered, routed) = self.route_stored(&msg, now);
        (delivered, ticket.max(routed))
    }

    /// Delivers a message to every matching subscription: one delivery per client at the
    /// highest matching QoS with every subscription identifier, plus one per shared group.
    pub fn route(&self, msg: &Arc<Message>, now: Instant) -> usize {
        self.route_stored(msg, now).0
    }

    fn route_stored(&self, msg: &Arc<Message>, now: Instant) -> (usize, u64) {
        TARGETS.with(|cell| {
            let Ok(mut targets) = cell.try_borrow_mut() else {
                // Re-entered from a delivery on this thread; cannot happen today, but never panic.
                return self.route_into(msg, now, &mut Vec::new());
            };
            let n = self.route_into(msg, now, &mut targets);
            targets.clear();
            n
        })
    }

    fn delivery_qos(&self, subscribed: QoS, published: QoS) -> QoS {
        if self.reloadable.upgrade_outgoing_qos.load(Ordering::Relaxed) {
            subscribed
        } else {
            subscribed.min(published)
        }
    }

    fn route_into(
        &self,
        msg: &Arc<Message>,
        now: Instant,
        targets: &mut Vec<Target>,
    ) -> (usize, u64) {
        let publisher = msg.publisher.as_deref();
        {
            let trie = self.subs.read();
            trie.for_each_match(&msg.topic, |m| match m {
                Match::Single { client, value } => {
                    if value.options.no_local && publisher == Some(&*client.0.client_id) {
                        return;
                    }
                    targets.push(Target {
                        session: Arc::clone(&client.0),
                        qos: self.delivery_qos(value.options.qos, msg.qos),
                        retain_as_published: value.options.retain_as_published,
                        sub_id: value.id,
                        shared: false,
                    });
                }
                Match::Shared(group) => {
                    let chosen = group
                        .pick(|k, _| k.0.is_online())
                        .or_else(|| group.pick(|_, _| true));
                    if let Some((client, value)) = chosen {
                        targets.push(Target {
                            session: Arc::clone(&client.0),
                            qos: self.delivery_qos(value.options.qos, msg.qos),
                            retain_as_published: value.options.retain_as_published,
                            sub_id: value.id,
                            shared: true,
                        });
                    }
                }
            });
        }
        if targets.len() > 1 {
            targets.sort_unstable_by_key(|t| (t.shared, Arc::as_ptr(&t.session) as usize));
        }
        // Queued for a client that is offline, the message may wait for long: its own bytes,
        // not the read buffer's (one copy, shared by every delivery of it).
        let kept;
        let msg = if !msg.compact && targets.iter().any(|t| !t.session.is_online()) {
            kept = msg.kept();
            &kept
        } else {
            msg
        };
        let mut delivered = 0;
        let mut ticket = 0;
        let mut i = 0;
        while i < targets.len() {
            let first = &targets[i];
            let mut j = i + 1;
            if !first.shared {
                while j < targets.len()
                    && !targets[j].shared
                    && Arc::ptr_eq(&targets[j].session, &first.session)
                {
                    j += 1;
                }
            }
            // ACL read check per subscriber, per message, as Mosquitto makes it.
            if !first.session.may(&msg.topic, midge_core::acl::Access::Read) {
                self.metrics.add(Counter::AclDenials, 1);
                i = j;
                continue;
            }
            let mut qos = first.qos;
            let mut rap = first.retain_as_published;
            let mut sub_ids = Vec::new();
            sub_ids.extend(first.sub_id);
            for t in &targets[i + 1..j] {
                qos = qos.max(t.qos);
                rap |= t.retain_as_published;
                sub_ids.extend(t.sub_id);
            }
            let delivery = Delivery {
                msg: Arc::clone(msg),
                qos,
                retain: rap && msg.retain,
                sub_ids,
                seq: 0,
            };
            let persist = self.persist.as_ref();
            match first
                .session
                .push(delivery, self.settings.queue, now, persist)
            {
                Some(t) => {
                    delivered += 1;
                    ticket = ticket.max(t);
                }
                None => self.metrics.add(Counter::PublishDropped, 1),
            }
            i = j;
        }
        (delivered, ticket)
    }
}
