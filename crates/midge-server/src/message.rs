//! A published message as the broker holds it: one `Arc<Message>` shared by every subscriber
//! it is delivered to and by the retained store, so fan-out never copies the payload.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use bytestring::ByteString;
use midge_proto::{Properties, QoS};

#[derive(Debug)]
pub struct Message {
    pub topic: ByteString,
    pub payload: Bytes,
    /// QoS the publisher used; each delivery is downgraded to the subscription's QoS.
    pub qos: QoS,
    /// Retain flag as published, kept for retain-as-published subscriptions.
    pub retain: bool,
    /// Only the properties that travel with the message (payload format, content type,
    /// response topic, correlation data, user properties). Per-hop ones (topic alias,
    /// subscription identifiers, expiry) are computed per delivery.
    pub properties: Properties,
    /// When the message expires (MQTT 5 message expiry interval), so that each delivery can
    /// send the remaining time and drop what has expired while queued.
    pub expires_at: Option<Instant>,
    /// Client id of the publisher, for the MQTT 5 no-local option.
    pub publisher: Option<Arc<str>>,
    /// Username of the publisher, for `check_retain_source` when the message is retained.
    pub publisher_username: Option<Arc<str>>,
    /// Its stored form (with its identity in the persistence store), made once when a
    /// persistent delivery or the retained store first needs it.
    pub stored: std::sync::OnceLock<Arc<crate::store::StoredMessage>>,
    /// Its topic, payload and correlation data own their allocations (see
    /// [`Message::compacted`]).
    pub compact: bool,
}

impl Message {
    /// Builds the stored message from an inbound PUBLISH, keeping only what is forwarded.
    pub fn new(
        topic: ByteString,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        mut properties: Properties,
        now: Instant,
        publisher: Option<Arc<str>>,
    ) -> Message {
        let expires_at = properties
            .message_expiry_interval
            .take()
            .map(|secs| now + Duration::from_secs(u64::from(secs)));
        properties.topic_alias = None;
        properties.subscription_identifiers = Vec::new();
        Message {
            topic,
            payload,
            qos,
            retain,
            properties,
            expires_at,
            publisher,
            publisher_username: None,
            stored: std::sync::OnceLock::new(),
            compact: false,
        }
    }

    /// A copy whose topic, payload and correlation data have allocations of their own.
    ///
    /// The decoder hands out slices of the connection's read buffer, and a slice keeps the
    /// whole buffer (16 KiB) alive: a 16-byte retained message published on its own read
    /// would hold a buffer for as long as it is retained. A message that outlives the read
    /// (retained, or queued for an offline client) is therefore copied once, so that it
    /// holds only its own bytes.
    pub fn compacted(&self) -> Message {
        let mut properties = self.properties.clone();
        if let Some(data) = properties.correlation_data.as_mut() {
            *data = Bytes::copy_from_slice(data);
        }
        let stored = std::sync::OnceLock::new();
        if let Some(s) = self.stored.get() {
            let _ = stored.set(Arc::clone(s));
        }
        Message {
            topic: ByteString::from(&*self.topic),
            payload: Bytes::copy_from_slice(&self.payload),
            qos: self.qos,
            retain: self.retain,
            properties,
            expires_at: self.expires_at,
            publisher: self.publisher.clone(),
            publisher_username: self.publisher_username.clone(),
            stored,
            compact: true,
        }
    }

    /// This message, compacted unless it already is (see [`Message::compacted`]).
    pub fn kept(self: &Arc<Self>) -> Arc<Message> {
        if self.compact {
            Arc::clone(self)
        } else {
            Arc::new(self.compacted())
        }
    }

    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Seconds left of the message expiry interval, rounded up so that a message that has
    /// not expired never goes out with 0 (which would mean "no expiry" to nobody, but looks
    /// like a lie to the client).
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|at| {
            let left = at.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
        })
    }

    /// Bytes this message accounts for in `max_queued_bytes` and `max_inflight_bytes`:
    /// the payload, as Mosquitto counts them.
    pub fn size(&self) -> usize {
        self.payload.len()
    }
}
