//! Moving deliveries from the session mailbox into the write buffer: packet ids within the
//! inflight window, outbound topic aliases, the client's maximum packet size and message
//! expiry are applied here, per subscriber.

use std::sync::Arc;
use std::time::Instant;

use bytestring::ByteString;
use midge_proto::{encode_publish, publish_len, OutgoingPublish, Packet, PubResp, QoS};

use super::{Close, Connection, WRITE_HIGH_WATER};
use crate::metrics::Counter;
use crate::session::{Delivery, OutFlight, OutState};

impl Connection {
    /// Encodes every delivery the window allows into the write buffer. Returns whether it
    /// stopped at the write buffer's high-water mark with deliveries still queued: nothing
    /// will wake the connection for those, so it must come back for them once the buffer
    /// has gone out.
    pub(super) fn fill(&mut self) -> Result<bool, Close> {
        let session = Arc::clone(&self.session);
        let mut st = session.state.lock();
        if st.ended || st.generation != self.generation {
            // The wake-up that told us may have been meant for the new owner: pass it on.
            session.wake.notify_one();
            return Err(Close::TakenOver);
        }
        if st.kicked == self.generation {
            return Err(Close::Kicked);
        }
        let window = usize::from(
            self.broker
                .settings
                .max_inflight
                .min(self.limits.receive_maximum),
        );
        let now = Instant::now();
        let (mut sent, mut sent_bytes) = (0u64, 0u64);
        let mut stored = 0;
        while self.wbuf.len() < WRITE_HIGH_WATER {
            let Some(front) = st.queue.front() else {
                break;
            };
            // Order is kept: a QoS 0 message behind a blocked QoS 1 one waits too.
            if front.qos != QoS::AtMostOnce {
                let max_bytes = self.broker.settings.max_inflight_bytes;
                // `max_inflight_bytes`: more goes out while the total in flight is below
                // the limit (so one message always can, however large), as Mosquitto counts.
                let over_bytes = max_bytes != 0 && st.inflight_bytes >= max_bytes;
                if st.inflight.len() >= window || over_bytes {
                    break;
                }
            }
            let Some(delivery) = st.pop_delivery() else {
                break;
            };
            let persist = self.broker.persist.as_ref().filter(|_| delivery.seq != 0);
            let forget = |persist: Option<&crate::persist::Persist>| {
                persist.map_or(0, |p| p.remove_delivery(&self.client_id, delivery.seq))
            };
            if delivery.msg.is_expired(now) {
                stored = stored.max(forget(persist));
                continue;
            }
            let full = self.outgoing(&delivery, None, 1, false, now);
            if publish_len(&full, self.version) > self.limits.maximum_packet_size as usize {
                // [MQTT-3.1.2-25]: too large for this client; others still get it.
                tracing::debug!(
                    "Dropped message on '{}' for {}: larger than its maximum packet size.",
                    &*delivery.msg.topic,
                    self.client_id
                );
                stored = stored.max(forget(persist));
                continue;
            }
            let packet_id = if delivery.qos == QoS::AtMostOnce {
                0
            } else {
                match st.next_packet_id() {
                    Some(id) => id,
                    None => break,
                }
            };
            if let Some(p) = persist.filter(|_| packet_id != 0) {
                // The packet id is stored before the PUBLISH leaves (the write barrier), so
                // a resend after a restart carries the same id.
                stored = stored.max(p.sent_delivery(&self.client_id, delivery.seq, packet_id, 1));
            }
            let alias = self.out_alias(&delivery.msg.topic);
            let out = self.outgoing(&delivery, alias, packet_id, false, now);
            encode_publish(&out, self.version, &mut self.wbuf);
            sent += 1;
            sent_bytes += delivery.msg.payload.len() as u64;
            if packet_id != 0 {
                let state = if delivery.qos == QoS::AtLeastOnce {
                    OutState::AwaitPubAck
                } else {
                    OutState::AwaitPubRec
                };
                st.add_inflight(packet_id, OutFlight { delivery, state });
            }
        }
        let more = self.wbuf.len() >= WRITE_HIGH_WATER && !st.queue.is_empty();
        drop(st);
        self.after_store(stored);
        if sent != 0 {
            let metrics = &self.broker.metrics;
            metrics.add(Counter::PacketsSent, sent);
            metrics.add(Counter::PublishSent, sent);
            metrics.add(Counter::PublishBytesSent, sent_bytes);
        }
        Ok(more)
    }

    /// On session resumption, resends every unacknowledged message with DUP set, and PUBREL
    /// for those already received by the client [MQTT-4.4.0-1].
    pub(super) fn resend_inflight(&mut self) {
        let session = Arc::clone(&self.session);
        let st = session.state.lock();
        let mut ids: Vec<u16> = st.inflight.keys().copied().collect();
        ids.sort_unstable();
        let now = Instant::now();
        for id in ids {
            let Some(f) = st.inflight.get(&id) else {
                continue;
            };
            match f.state {
                OutState::AwaitPubComp => {
                    midge_proto::encode_packet(
                        &Packet::PubRel(PubResp::new(id)),
                        self.version,
                        &mut self.wbuf,
                    );
                }
                OutState::AwaitPubAck | OutState::AwaitPubRec => {
                    let out = self.outgoing(&f.delivery, None, id, true, now);
                    encode_publish(&out, self.version, &mut self.wbuf);
                }
            }
        }
    }

    fn outgoing<'a>(
        &self,
        d: &'a Delivery,
        alias: Option<(u16, bool)>,
        packet_id: u16,
        dup: bool,
        now: Instant,
    ) -> OutgoingPublish<'a> {
        // Clients behind a mount point see topics without it.
        let full: &'a str = &d.msg.topic;
        let own = match &self.listener.mount_point {
            Some(mp) => full.strip_prefix(mp.as_str()).unwrap_or(full),
            None => full,
        };
        let (topic_alias, topic): (Option<u16>, &'a str) = match alias {
            Some((a, true)) => (Some(a), own),
            Some((a, false)) => (Some(a), ""),
            None => (None, own),
        };
        OutgoingPublish {
            dup,
            qos: d.qos,
            retain: d.retain,
            topic,
            packet_id,
            payload: &d.msg.payload,
            properties: &d.msg.properties,
            topic_alias,
            subscription_identifiers: &d.sub_ids,
            message_expiry_interval: d.msg.remaining_expiry(now),
        }
    }

    /// The alias to use for `topic` towards an MQTT 5 client that accepts aliases:
    /// `(alias, true)` the first time (topic and alias both sent, which sets it up), then
    /// `(alias, false)` (alias alone). Aliases are handed out until the client's maximum
    /// and never reassigned, so a mapping the client holds is never wrong.
    fn out_alias(&mut self, topic: &ByteString) -> Option<(u16, bool)> {
        if self.limits.topic_alias_maximum == 0 {
            return None;
        }
        if let Some(&a) = self.out_aliases.get(topic) {
            return Some((a, false));
        }
        if self.next_out_alias > self.limits.topic_alias_maximum {
            return None;
        }
        let a = self.next_out_alias;
        self.next_out_alias += 1;
        self.out_aliases.insert(topic.clone(), a);
        Some((a, true))
    }
}
