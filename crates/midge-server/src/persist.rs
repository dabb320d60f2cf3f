//! The broker's side of persistence: numbering messages and deliveries, turning the
//! broker's types into the store's plain records, and the write barrier connections use so
//! that nothing is acknowledged before it is stored.
//!
//! What is stored: persistent sessions (session expiry above 0, or clean session 0 in MQTT
//! 3.x) with their subscriptions, wills, queued and in-flight QoS 1/2 deliveries and QoS 2
//! packet ids received; and every retained message. Clean sessions are not stored: they end
//! with their connection anyway.
//!
//! The write barrier: every change returns a ticket; a connection does not write its
//! buffer to the socket until the store has committed the highest ticket behind what the
//! buffer holds. A PUBACK therefore leaves only once the message it acknowledges is stored
//! for every persistent subscriber, and a delivery only once its packet id is stored, so a
//! QoS 2 message resent after a crash carries the same packet id (exactly once holds).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use midge_proto::QoS;

use crate::message::Message;
use crate::session::{Delivery, SubEntry};
use crate::store::{
    Durability, Op, Snapshot, Store, StoredDelivery, StoredMessage, StoredSubscription, StoredWill,
};

/// The open store and the counters new records are numbered from.
pub struct Persist {
    store: Store,
    next_message_id: AtomicU64,
    next_seq: AtomicU64,
}

impl std::fmt::Debug for Persist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persist")
            .field("path", &self.store.path())
            .finish_non_exhaustive()
    }
}

/// Seconds since the Unix epoch now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Persist {
    /// Opens the store at `path` and reads it back.
    pub fn open(path: &std::path::Path, fsync: bool) -> Result<(Persist, Snapshot), String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(format!(
                    "persistence_location {}: no such directory",
                    dir.display()
                ));
            }
        }
        let durability = if fsync {
            Durability::Fsync
        } else {
            Durability::Os
        };
        let (store, snapshot) = Store::open(path, durability).map_err(|e| e.to_string())?;
        let persist = Persist {
            store,
            next_message_id: AtomicU64::new(snapshot.next_message_id.max(1)),
            next_seq: AtomicU64::new(snapshot.next_seq.max(1)),
        };
        Ok((persist, snapshot))
    }

    /// The store's file.
    pub fn path(&self) -> &std::path::Path {
        self.store.path()
    }

    pub fn submit(&self, op: Op) -> u64 {
        self.store.submit(op)
    }

    /// Highest ticket the store has committed (durably, per its setting).
    pub fn committed(&self) -> u64 {
        self.store.committed()
    }

    /// Resolves once `ticket` is committed.
    pub async fn wait(&self, ticket: u64) {
        self.store.wait(ticket).await;
    }

    /// A delivery of `client_id` is done (acknowledged, refused, expired or dropped).
    pub fn remove_delivery(&self, client_id: &str, seq: u64) -> u64 {
        self.submit(Op::RemoveDelivery {
            client_id: client_id.to_owned(),
            seq,
        })
    }

    /// A delivery of `client_id` went out with `packet_id`: state 1 awaits PUBACK/PUBREC,
    /// 2 awaits PUBCOMP (a restart resends PUBREL, not the message).
    pub fn sent_delivery(&self, client_id: &str, seq: u64, packet_id: u16, state: u8) -> u64 {
        self.submit(Op::UpdateDelivery {
            client_id: client_id.to_owned(),
            seq,
            packet_id: Some(packet_id),
            state,
        })
    }

    /// Stores one subscription of `client_id`; returns the ticket.
    pub fn add_subscription(&self, client_id: &str, filter: &str, entry: &SubEntry) -> u64 {
        self.submit(Op::AddSubscription {
            client_id: client_id.to_owned(),
            sub: StoredSubscription {
                filter: filter.to_owned(),
                options: options_byte(&entry.options),
                identifier: entry.id,
            },
        })
    }

    /// A handle on the same store, for closing it off the async threads.
    pub fn clone_handle(&self) -> Store {
        self.store.clone()
    }

    /// The stored form of `msg`, made (and numbered) once however many deliveries,
    /// retained entries or restarts refer to it.
    fn stored(&self, msg: &Message) -> Arc<StoredMessage> {
        Arc::clone(msg.stored.get_or_init(|| {
            let id = self.next_message_id.fetch_add(1, Ordering::Relaxed);
            Arc::new(stored_message(msg, id))
        }))
    }

    /// Numbers a delivery to a persistent session and stores it. Returns the ticket.
    pub fn enqueue(&self, client_id: &str, delivery: &mut Delivery) -> u64 {
        let stored = self.stored(&delivery.msg);
        let message_id = stored.id;
        delivery.seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        // The message goes with every delivery (a no-op once stored): an earlier
        // subscriber's acknowledgement may already have removed the row.
        self.store.submit_all([
            Op::StoreMessage(stored),
            Op::Enqueue {
                client_id: client_id.to_owned(),
                delivery: StoredDelivery {
                    seq: delivery.seq,
                    message_id,
                    qos: delivery.qos as u8,
                    retain: delivery.retain,
                    packet_id: None,
                    state: 0,
                    subscription_ids: delivery.sub_ids.clone(),
                },
            },
        ])
    }

    /// The retained message of a topic was set (or cleared, with an empty payload).
    /// Returns the ticket.
    pub fn retain(&self, msg: &Message) -> u64 {
        if msg.payload.is_empty() {
            return self.store.submit(Op::ClearRetained {
                topic: msg.topic.to_string(),
            });
        }
        self.store.submit(Op::SetRetained(self.stored(msg)))
    }

    /// A will as stored: its message gets an id of its own.
    pub fn will(&self, msg: &Message, delay: u32) -> StoredWill {
        let id = self.next_message_id.fetch_add(1, Ordering::Relaxed);
        StoredWill {
            message: stored_message(msg, id),
            delay,
        }
    }
}

/// The stored form of a message. Expiry moves from the monotonic clock to the wall clock,
/// the only one that means something after a restart.
pub fn stored_message(msg: &Message, id: u64) -> StoredMessage {
    let now = Instant::now();
    let mut properties = Vec::new();
    if !msg.properties.is_empty() {
        midge_proto::encode_publish_properties(&msg.properties, &mut properties);
    }
    StoredMessage {
        id,
        topic: msg.topic.to_string(),
        payload: msg.payload.clone(),
        qos: msg.qos as u8,
        retain: msg.retain,
        properties,
        expiry_unix: msg
            .expires_at
            .map(|at| unix_now() + at.saturating_duration_since(now).as_secs()),
        publisher: msg.publisher.as_deref().map(str::to_owned),
        publisher_username: msg.publisher_username.as_deref().map(str::to_owned),
    }
}

/// The broker's message back from its stored form; `None` when it expired while the broker
/// was down or its properties do not decode (a damaged record is skipped, not fatal).
pub fn restored_message(m: &StoredMessage, now: Instant) -> Option<Message> {
    let properties = if m.properties.is_empty() {
        midge_proto::Properties::default()
    } else {
        match midge_proto::decode_publish_properties(&m.properties) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(
                    "persistence: message on '{}' skipped: bad properties ({e})",
                    m.topic
                );
                return None;
            }
        }
    };
    let expires_at = match m.expiry_unix {
        None => None,
        Some(at) => {
            let left = at.checked_sub(unix_now()).filter(|left| *left > 0)?;
            Some(now + Duration::from_secs(left))
        }
    };
    let mut msg = Message::new(
        m.topic.as_str().into(),
        m.payload.clone(),
        QoS::from_u8(m.qos).unwrap_or(QoS::AtMostOnce),
        m.retain,
        properties,
        now,
        m.publisher.as_deref().map(Arc::from),
    );
    msg.expires_at = expires_at;
    msg.publisher_username = m.publisher_username.as_deref().map(Arc::from);
    let _ = msg.stored.set(Arc::new(m.clone()));
    Some(msg)
}

/// The MQTT 5 subscription options byte (what the store keeps).
pub fn options_byte(o: &midge_proto::SubscriptionOptions) -> u8 {
    o.qos as u8
        | (u8::from(o.no_local) << 2)
        | (u8::from(o.retain_as_published) << 3)
        | ((o.retain_handling & 0x03) << 4)
}

/// The options back from their byte.
pub fn options_from_byte(byte: u8) -> midge_proto::SubscriptionOptions {
    midge_proto::SubscriptionOptions {
        qos: QoS::from_u8(byte & 0x03).unwrap_or(QoS::AtMostOnce),
        no_local: byte & 0x04 != 0,
        retain_as_published: byte & 0x08 != 0,
        retain_handling: (byte >> 4) & 0x03,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_survive_their_byte() {
        for byte in 0u8..0x30 {
            if byte & 0x03 == 3 {
                continue;
            }
            assert_eq!(options_byte(&options_from_byte(byte)), byte);
        }
    }

    #[test]
    fn messages_survive_their_stored_form() {
        let now = Instant::now();
        let props = midge_proto::Properties {
            content_type: Some("text/plain".into()),
            user_properties: vec![("a".into(), "b".into())],
            message_expiry_interval: Some(3600),
            ..Default::default()
        };
        let mut msg = Message::new(
            "a/b".into(),
            bytes::Bytes::from_static(b"payload"),
            QoS::ExactlyOnce,
            true,
            props,
            now,
            Some(Arc::from("publisher")),
        );
        msg.publisher_username = Some(Arc::from("alice"));
        let stored = stored_message(&msg, 7);
        let back = restored_message(&stored, now).expect("restored");
        assert_eq!(&*back.topic, "a/b");
        assert_eq!(&back.payload[..], b"payload");
        assert_eq!(back.qos, QoS::ExactlyOnce);
        assert!(back.retain);
        assert_eq!(back.properties, msg.properties);
        assert_eq!(back.publisher.as_deref(), Some("publisher"));
        assert_eq!(back.publisher_username.as_deref(), Some("alice"));
        assert_eq!(back.stored.get().map(|s| s.id), Some(7));
        let left = back.remaining_expiry(now).unwrap();
        assert!((3598..=3600).contains(&left), "{left}");

        let expired = StoredMessage {
            expiry_unix: Some(unix_now() - 1),
            ..stored
        };
        assert!(restored_message(&expired, now).is_none());
    }
}
