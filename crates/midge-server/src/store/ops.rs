//! What the store holds, as plain data independent of the broker's types, and the
//! operations the broker submits to change it.
//!
//! Every value here is what a restarted broker needs to rebuild one piece of state;
//! the broker converts to and from its own types at the edge.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

/// A published message, stored once however many deliveries, retained entries or wills
/// refer to it (by `id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Broker-assigned identity, unique among the messages the store holds. Storing a
    /// message whose id is already stored does nothing (the first version wins).
    pub id: u64,
    pub topic: String,
    pub payload: Bytes,
    /// QoS the publisher used (0, 1 or 2).
    pub qos: u8,
    /// Retain flag as published (for retain-as-published).
    pub retain: bool,
    /// Opaque to the store: the broker's encoding of the MQTT 5 properties that travel
    /// with the message. Empty when there are none.
    pub properties: Vec<u8>,
    /// When the message expires, in seconds since the Unix epoch (wall clock, since
    /// `Instant`s do not survive a restart).
    pub expiry_unix: Option<u64>,
    /// Client id of the publisher, for no-local.
    pub publisher: Option<String>,
    /// Username of the publisher, for `check_retain_source`.
    pub publisher_username: Option<String>,
}

/// One subscription of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubscription {
    pub filter: String,
    /// The MQTT 5 subscription options byte (QoS, no-local, retain-as-published,
    /// retain handling).
    pub options: u8,
    /// MQTT 5 subscription identifier.
    pub identifier: Option<u32>,
}

/// One message waiting for, or in flight to, a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDelivery {
    /// Order within the session; the snapshot lists a session's queue by ascending `seq`.
    /// `(client id, seq)` identifies the delivery in later operations.
    pub seq: u64,
    /// The [`StoredMessage`] delivered.
    pub message_id: u64,
    /// QoS of this delivery (the message's, downgraded to the subscription's).
    pub qos: u8,
    /// Retain flag as sent to this subscriber.
    pub retain: bool,
    /// Packet id, once one is assigned.
    pub packet_id: Option<u16>,
    /// 0 queued, 1 sent and awaiting PUBACK/PUBREC, 2 awaiting PUBCOMP.
    pub state: u8,
    /// MQTT 5 subscription identifiers of the matching subscriptions.
    pub subscription_ids: Vec<u32>,
}

/// A will message and its MQTT 5 will delay interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWill {
    pub message: StoredMessage,
    /// Will delay interval, seconds.
    pub delay: u32,
}

/// Everything the store knows about one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub client_id: String,
    /// Session expiry interval, seconds (`u32::MAX`: never).
    pub expiry_interval: u32,
    /// When the client disconnected, seconds since the Unix epoch; `None` when it was
    /// connected when the broker stopped (it then counts as disconnected at start-up).
    pub disconnected_unix: Option<u64>,
    pub username: Option<String>,
    /// Which listener the session was attached through (the broker's numbering).
    pub listener: u32,
    /// Protocol level of the last connection (3, 4 or 5).
    pub protocol: u8,
    pub will: Option<StoredWill>,
    pub subscriptions: Vec<StoredSubscription>,
    /// Queued and in-flight deliveries, ascending by `seq`.
    pub queue: Vec<StoredDelivery>,
    /// Packet ids of QoS 2 messages received from the client, PUBREC sent, PUBREL not
    /// yet received (ascending).
    pub inbound_qos2: Vec<u16>,
}

/// The whole store as read at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Sessions, ascending by client id.
    pub sessions: Vec<StoredSession>,
    /// Every message referenced by a session's queue, by id.
    pub messages: HashMap<u64, StoredMessage>,
    /// Retained messages, ascending by topic.
    pub retained: Vec<StoredMessage>,
    /// One more than the highest message id stored (1 for an empty store): the broker
    /// numbers new messages from here so that no id is reused while still referenced.
    pub next_message_id: u64,
    /// One more than the highest delivery `seq` stored (1 for an empty store).
    pub next_seq: u64,
}

/// One change to the store. Operations are applied in submission order; each is
/// idempotent-safe for the cases the broker may repeat (see the variants).
#[derive(Debug, Clone)]
pub enum Op {
    /// Creates the session or updates these fields of it, keeping its will,
    /// subscriptions, queue and QoS 2 state.
    UpsertSession {
        client_id: String,
        expiry_interval: u32,
        disconnected_unix: Option<u64>,
        username: Option<String>,
        listener: u32,
        protocol: u8,
    },
    /// Sets (stores the message too) or clears the session's will.
    SetWill {
        client_id: String,
        will: Option<StoredWill>,
    },
    /// Removes the session and everything of it: will, subscriptions, queue, QoS 2
    /// state. Messages nothing else refers to any more go too.
    DeleteSession {
        client_id: String,
    },
    /// Adds a subscription, replacing one with the same filter.
    AddSubscription {
        client_id: String,
        sub: StoredSubscription,
    },
    RemoveSubscription {
        client_id: String,
        filter: String,
    },
    /// Stores a message for later `Enqueue`s; does nothing when the id is stored already.
    /// A message that nothing refers to by the next start-up is dropped then.
    StoreMessage(Arc<StoredMessage>),
    /// Adds a delivery to the session's queue (replacing one with the same `seq`). Its
    /// message must have been stored by an earlier `StoreMessage`, `SetRetained` or
    /// `SetWill`.
    Enqueue {
        client_id: String,
        delivery: StoredDelivery,
    },
    /// A delivery got its packet id or moved on (sent, PUBREC received).
    UpdateDelivery {
        client_id: String,
        seq: u64,
        packet_id: Option<u16>,
        state: u8,
    },
    /// A delivery is complete (or dropped); its message goes when nothing else refers to it.
    RemoveDelivery {
        client_id: String,
        seq: u64,
    },
    AddInboundQos2 {
        client_id: String,
        packet_id: u16,
    },
    RemoveInboundQos2 {
        client_id: String,
        packet_id: u16,
    },
    /// Sets the retained message of the message's topic, replacing the previous one.
    SetRetained(Arc<StoredMessage>),
    ClearRetained {
        topic: String,
    },
}
