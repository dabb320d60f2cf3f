//! A client session: what survives between connections of a persistent client (subscriptions,
//! queued and unacknowledged messages, QoS 2 state) and the mailbox publishers push into.
//!
//! The state sits behind one mutex per session. Publishers lock it only to push a delivery;
//! the owning connection locks it to move deliveries into its write buffer. A connection owns
//! the session while `generation` equals its own: a takeover bumps the generation, and the old
//! connection, seeing the change, closes without touching the session again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwapOption;
use midge_core::acl::Access;
use midge_proto::{QoS, SubscriptionOptions};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::listener_ctx::ListenerCtx;
use crate::message::Message;
use crate::persist::Persist;

/// One message on its way to one subscriber.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub msg: Arc<Message>,
    /// Publisher QoS downgraded to the granted subscription QoS.
    pub qos: QoS,
    /// Retain flag as it goes out: set for retained messages sent on subscribe, or with
    /// retain-as-published; cleared for live messages otherwise.
    pub retain: bool,
    /// MQTT 5 subscription identifiers of every matching subscription of this client.
    pub sub_ids: Vec<u32>,
    /// Its number in the persistence store; 0 when it is not stored (persistence off, a
    /// clean session, or QoS 0).
    pub seq: u64,
}

/// Where an outgoing QoS 1 or 2 message stands in its acknowledgement flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutState {
    AwaitPubAck,
    AwaitPubRec,
    AwaitPubComp,
}

#[derive(Debug)]
pub struct OutFlight {
    pub delivery: Delivery,
    pub state: OutState,
}

/// A subscription as the session remembers it (the trie holds the routing copy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubEntry {
    pub options: SubscriptionOptions,
    pub id: Option<u32>,
}

/// Queue limits from the configuration, applied when a delivery is pushed.
#[derive(Clone, Copy, Debug)]
pub struct QueueLimits {
    /// 0 = unlimited.
    pub max_messages: usize,
    /// 0 = unlimited.
    pub max_bytes: usize,
    /// `queue_qos0_messages`: keep QoS 0 messages for offline persistent sessions too.
    pub queue_qos0: bool,
}

#[derive(Debug, Default)]
pub struct SessionState {
    /// Which connection owns the session; 0 while offline.
    pub generation: u64,
    /// The generation that attached last, so that timers started at a disconnect (session
    /// expiry, delayed will) can tell whether the client has been back since.
    pub last_generation: u64,
    /// Set when the session has been discarded (clean-start takeover, expiry): its owner
    /// must close and nobody may reuse it.
    pub ended: bool,
    /// Deliveries not yet written to the client, oldest first.
    pub queue: VecDeque<Delivery>,
    /// Sum of `Message::size` over `queue`, for `max_queued_bytes`.
    pub queued_bytes: usize,
    /// Sent QoS 1/2 messages awaiting acknowledgement, by packet id; resent with DUP when the
    /// session resumes on a new connection.
    pub inflight: HashMap<u16, OutFlight>,
    /// Sum of `Message::size` over `inflight`, for `max_inflight_bytes`.
    pub inflight_bytes: usize,
    /// Inbound QoS 2 packet ids received but not yet released: a repeated PUBLISH with one of
    /// these ids is a duplicate and is not routed again (exactly once).
    pub inbound_qos2: HashSet<u16>,
    /// The client's subscriptions by full filter, to restore routing and answer UNSUBSCRIBE.
    pub subscriptions: HashMap<String, SubEntry>,
    /// Session expiry in seconds after disconnect; `u32::MAX` never expires.
    pub expiry_interval: u32,
    /// Last packet id handed out; ids are allocated upwards, skipping those in flight.
    pub last_packet_id: u16,
    /// Messages dropped since the queue was last empty: the first drop of an episode is
    /// logged (as Mosquitto does), not every one.
    pub dropped: u64,
    /// The generation of a connection dynamic security has told to close (0 = none).
    pub kicked: u64,
    /// The session is in the persistence store: its changes are written there.
    pub persisted: bool,
    /// Protocol level of the last connection (3, 4 or 5), for the store.
    pub protocol: u8,
}

impl SessionState {
    /// Allocates a packet id not in use by an unacknowledged outgoing message.
    pub fn next_packet_id(&mut self) -> Option<u16> {
        if self.inflight.len() >= usize::from(u16::MAX) {
            return None;
        }
        loop {
            self.last_packet_id = self.last_packet_id.wrapping_add(1);
            if self.last_packet_id == 0 {
                continue;
            }
            if !self.inflight.contains_key(&self.last_packet_id) {
                return Some(self.last_packet_id);
            }
        }
    }

    pub fn add_inflight(&mut self, packet_id: u16, flight: OutFlight) {
        self.inflight_bytes += flight.delivery.msg.size();
        if let Some(old) = self.inflight.insert(packet_id, flight) {
            self.inflight_bytes = self.inflight_bytes.saturating_sub(old.delivery.msg.size());
        }
    }

    pub fn remove_inflight(&mut self, packet_id: u16) -> Option<OutFlight> {
        let f = self.inflight.remove(&packet_id)?;
        self.inflight_bytes = self.inflight_bytes.saturating_sub(f.delivery.msg.size());
        Some(f)
    }

    pub fn pop_delivery(&mut self) -> Option<Delivery> {
        let d = self.queue.pop_front()?;
        self.queued_bytes = self.queued_bytes.saturating_sub(d.msg.size());
        if self.queue.is_empty() {
            self.dropped = 0;
        }
        Some(d)
    }
}

/// Who the session's client is, for the ACL checks made on its behalf: set by each
/// connection that attaches, kept while the session is offline.
#[derive(Debug)]
pub struct Identity {
    pub username: Option<Arc<str>>,
    /// The listener the client came through, whose policy applies to it.
    pub listener: Arc<ListenerCtx>,
}

#[derive(Debug)]
pub struct Session {
    pub client_id: Arc<str>,
    /// `None` only for sessions made outside a connection (benchmarks, tests).
    identity: ArcSwapOption<Identity>,
    pub state: Mutex<SessionState>,
    /// Wakes the owning connection: new deliveries, takeover, or the session ending.
    pub wake: Notify,
    /// Mirrors `generation != 0` for lock-free checks (shared subscription member choice).
    online: AtomicBool,
}

impl Session {
    pub fn new(client_id: Arc<str>, expiry_interval: u32) -> Arc<Session> {
        Arc::new(Session {
            client_id,
            state: Mutex::new(SessionState {
                expiry_interval,
                ..SessionState::default()
            }),
            wake: Notify::new(),
            online: AtomicBool::new(false),
            identity: ArcSwapOption::empty(),
        })
    }

    pub fn set_identity(&self, identity: Identity) {
        self.identity.store(Some(Arc::new(identity)));
    }

    /// The listener the session's client came through.
    pub fn listener(&self) -> Option<Arc<ListenerCtx>> {
        self.identity
            .load()
            .as_ref()
            .map(|id| Arc::clone(&id.listener))
    }

    /// The username the session's client logged in with.
    pub fn username(&self) -> Option<Arc<str>> {
        self.identity
            .load()
            .as_ref()
            .and_then(|id| id.username.clone())
    }

    /// Whether this session's client may do `access` on `topic` under its listener's
    /// current policy (re-read on every call, so a reload applies at once).
    pub fn may(&self, topic: &str, access: Access) -> bool {
        let identity = self.identity.load();
        match identity.as_ref() {
            Some(id) => id
                .listener
                .policy
                .with(|p| p.may(id.username.as_deref(), &self.client_id, topic, access)),
            None => true,
        }
    }

    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Acquire)
    }

    pub fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::Release);
    }

    /// Queues a delivery, applying the queue limits; QoS 0 messages are not queued for an
    /// offline session unless `queue_qos0_messages` is set (as in Mosquitto). A QoS 1/2
    /// delivery to a persistent session is also stored. Returns `None` when the delivery
    /// was dropped, otherwise the store ticket behind it (0 when nothing was stored).
    pub fn push(
        &self,
        mut delivery: Delivery,
        limits: QueueLimits,
        now: Instant,
        persist: Option<&Persist>,
    ) -> Option<u64> {
        let mut st = self.state.lock();
        if st.ended {
            return None;
        }
        let online = st.generation != 0;
        if !online && delivery.qos == QoS::AtMostOnce && !limits.queue_qos0 {
            return None;
        }
        if delivery.msg.is_expired(now) {
            return None;
        }
        let full_count = limits.max_messages != 0 && st.queue.len() >= limits.max_messages;
        // As Mosquitto: a message is queued while the total is still below the limit.
        let full_bytes = limits.max_bytes != 0 && st.queued_bytes >= limits.max_bytes;
        if full_count || full_bytes {
            if st.dropped == 0 {
                tracing::warn!(
                    "Outgoing messages are being dropped for client {}.",
                    self.client_id
                );
            }
            st.dropped += 1;
            return None;
        }
        let mut ticket = 0;
        if let Some(persist) = persist.filter(|_| st.persisted) {
            if delivery.qos != QoS::AtMostOnce {
                ticket = persist.enqueue(&self.client_id, &mut delivery);
            }
        }
        st.queued_bytes += delivery.msg.size();
        st.queue.push_back(delivery);
        drop(st);
        if online {
            self.wake.notify_one();
        }
        Some(ticket)
    }
}
