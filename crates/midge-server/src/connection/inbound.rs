//! PUBLISH from the client and the acknowledgements of messages we sent it.

use std::sync::Arc;
use std::time::Instant;

use midge_core::acl::Access;
use midge_proto::{reason, Packet, PubResp, Publish, QoS};

use super::{Close, Connection};
use crate::message::Message;
use crate::metrics::Counter;
use crate::session::OutState;
use crate::store::Op;

impl Connection {
    pub(super) fn on_publish(&mut self, p: Publish) -> Result<(), Close> {
        let metrics = &self.broker.metrics;
        metrics.add(Counter::PublishReceived, 1);
        metrics.add(Counter::PublishBytesReceived, p.payload.len() as u64);
        if let Some(rate) = self.rate.as_mut() {
            let now = tokio::time::Instant::now();
            let wait = rate.limiter.publish(p.payload.len(), now.into_std());
            if !wait.is_zero() {
                rate.paused_until = Some(now + wait);
            }
        }
        let settings = &self.broker.settings;
        let mut topic = p.topic;
        if let Some(alias) = p.properties.topic_alias {
            if alias == 0 || alias > self.listener.max_topic_alias {
                return Err(Close::Violation {
                    reason: reason::TOPIC_ALIAS_INVALID,
                    why: format!("topic alias {alias} out of range"),
                });
            }
            if topic.is_empty() {
                topic = self
                    .in_aliases
                    .get(&alias)
                    .cloned()
                    .ok_or_else(|| Close::protocol(format!("unknown topic alias {alias}")))?;
            } else {
                self.in_aliases.insert(alias, topic.clone());
            }
        }
        if p.qos > self.listener.max_qos {
            return Err(Close::Violation {
                reason: reason::QOS_NOT_SUPPORTED,
                why: format!("QoS {} above maximum", p.qos as u8),
            });
        }
        if p.retain && !self.broker.retain_available() {
            return Err(Close::Violation {
                reason: reason::RETAIN_NOT_SUPPORTED,
                why: "retain not available".into(),
            });
        }
        if p.qos == QoS::ExactlyOnce {
            let st = self.session.state.lock();
            if st.inbound_qos2.contains(&p.packet_id) {
                drop(st);
                // A resent QoS 2 message already routed: acknowledge, do not deliver twice.
                self.send(&Packet::PubRec(PubResp::new(p.packet_id)));
                return Ok(());
            }
            if st.inbound_qos2.len() >= usize::from(settings.max_inflight) && self.version.is_v5() {
                return Err(Close::Violation {
                    reason: reason::RECEIVE_MAXIMUM_EXCEEDED,
                    why: "receive maximum exceeded".into(),
                });
            }
        }

        if let Some(mp) = &self.listener.mount_point {
            topic = format!("{mp}{}", &*topic).into();
        }
        let code = if settings
            .max_payload
            .is_some_and(|max| p.payload.len() > max as usize)
        {
            // `max_payload_size` / `message_size_limit`: dropped, the client told (MQTT 5).
            tracing::info!(
                "Dropped PUBLISH from {} on '{}': payload of {} bytes over the limit.",
                self.who(),
                &*topic,
                p.payload.len()
            );
            reason::PACKET_TOO_LARGE
        } else if !p.payload.is_empty() && crate::heap::over(settings.memory_limit) {
            // `memory_limit`: nothing new is taken in (removing a retained message, an
            // empty payload, still is). MQTT 5 clients are told and stay connected; 3.1.1
            // clients are disconnected without an acknowledgement, as Mosquitto does, so
            // that they send the message again later rather than lose it.
            if !self.version.is_v5() {
                return Err(Close::OverMemory);
            }
            tracing::info!(
                "Refused PUBLISH from {} on '{}': memory_limit reached.",
                self.who(),
                &*topic
            );
            metrics.add(Counter::PublishDropped, 1);
            reason::QUOTA_EXCEEDED
        } else {
            // Exactly once across a crash: the packet id is stored before the message is
            // routed, so it is committed before any subscriber can have received it.
            if p.qos == QoS::ExactlyOnce {
                self.store_op(|client_id| Op::AddInboundQos2 {
                    client_id,
                    packet_id: p.packet_id,
                });
            }
            self.route_publish(topic, p.payload, p.qos, p.retain, p.properties)
        };
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                let reason = if self.version.is_v5() { code } else { 0 };
                self.send(&Packet::PubAck(PubResp {
                    reason,
                    ..PubResp::new(p.packet_id)
                }));
            }
            QoS::ExactlyOnce => {
                if code < 0x80 {
                    self.session.state.lock().inbound_qos2.insert(p.packet_id);
                } else {
                    self.store_op(|client_id| Op::RemoveInboundQos2 {
                        client_id,
                        packet_id: p.packet_id,
                    });
                }
                // Mosquitto answers PUBREC 0x00 even without subscribers (it routes on
                // PUBREL); both are valid, and clients written against it expect 0x00.
                let reason = match code {
                    _ if !self.version.is_v5() => 0,
                    reason::NO_MATCHING_SUBSCRIBERS => reason::SUCCESS,
                    c => c,
                };
                self.send(&Packet::PubRec(PubResp {
                    reason,
                    ..PubResp::new(p.packet_id)
                }));
            }
        }
        Ok(())
    }

    /// Applies the publish policy and routes; returns the MQTT 5 reason code for the ack.
    fn route_publish(
        &mut self,
        topic: bytestring::ByteString,
        payload: bytes::Bytes,
        qos: QoS,
        retain: bool,
        properties: midge_proto::Properties,
    ) -> u8 {
        let allowed = self.listener.policy.with(|policy| {
            policy.may(
                self.username.as_deref(),
                &self.client_id,
                &topic,
                Access::Write,
            )
        });
        if !allowed {
            self.broker.metrics.add(Counter::AclDenials, 1);
            let details = serde_json::json!({"action": "publish", "topic": &*topic});
            self.audit("acl_denied", details);
            tracing::info!("Denied PUBLISH from {} on '{}'.", self.who(), &*topic);
            return reason::NOT_AUTHORIZED;
        }
        if properties.payload_format_indicator == Some(1) && std::str::from_utf8(&payload).is_err()
        {
            return reason::PAYLOAD_FORMAT_INVALID;
        }
        if topic.starts_with("$CONTROL/") {
            // Requests to the broker's control endpoints are consumed, never routed, as
            // in Mosquitto; the answer comes on the endpoint's response topic.
            if &*topic == midge_core::dynsec::CONTROL_TOPIC {
                if let Some(dynsec) = &self.listener.policy.get().dynsec {
                    dynsec.submit(&self.client_id, self.username.as_ref(), payload);
                }
            }
            return reason::SUCCESS;
        }
        let now = Instant::now();
        let mut msg = Message::new(
            topic,
            payload,
            qos,
            retain,
            properties,
            now,
            Some(Arc::clone(&self.client_id)),
        );
        msg.publisher_username = self.username.clone();
        let msg = Arc::new(msg);
        let (delivered, ticket) = self.broker.publish_stored(&msg, now);
        self.after_store(ticket);
        if delivered == 0 {
            reason::NO_MATCHING_SUBSCRIBERS
        } else {
            reason::SUCCESS
        }
    }

    pub(super) fn on_pubrel(&mut self, packet_id: u16) {
        let known = self.session.state.lock().inbound_qos2.remove(&packet_id);
        if known {
            self.store_op(|client_id| Op::RemoveInboundQos2 {
                client_id,
                packet_id,
            });
        }
        let reason = if known || !self.version.is_v5() {
            reason::SUCCESS
        } else {
            reason::PACKET_IDENTIFIER_NOT_FOUND
        };
        self.send(&Packet::PubComp(PubResp {
            reason,
            ..PubResp::new(packet_id)
        }));
    }

    pub(super) fn on_puback(&mut self, packet_id: u16) {
        let mut st = self.session.state.lock();
        if st
            .inflight
            .get(&packet_id)
            .is_some_and(|f| f.state == OutState::AwaitPubAck)
        {
            let done = st.remove_inflight(packet_id);
            drop(st);
            self.delivery_done(done.map_or(0, |f| f.delivery.seq));
        }
    }

    /// Submits a change of this session to the store when the session is stored there;
    /// what is written afterwards waits for it.
    pub(super) fn store_op(&mut self, op: impl FnOnce(String) -> Op) {
        let Some(p) = &self.broker.persist else {
            return;
        };
        if !self.session.state.lock().persisted {
            return;
        }
        let ticket = p.submit(op(self.client_id.to_string()));
        self.after_store(ticket);
    }

    /// A stored delivery is complete (acknowledged, refused or dropped).
    pub(super) fn delivery_done(&mut self, seq: u64) {
        if seq != 0 {
            self.store_op(|client_id| Op::RemoveDelivery { client_id, seq });
        }
    }

    pub(super) fn on_pubrec(&mut self, r: PubResp) {
        let mut st = self.session.state.lock();
        let known = match st.inflight.get_mut(&r.packet_id) {
            Some(f) if f.state == OutState::AwaitPubRec || f.state == OutState::AwaitPubComp => {
                f.state = OutState::AwaitPubComp;
                true
            }
            _ => false,
        };
        if known && r.reason >= 0x80 {
            // The client refused the message: the flow ends here [MQTT-4.3.3-5 note].
            let done = st.remove_inflight(r.packet_id);
            drop(st);
            self.delivery_done(done.map_or(0, |f| f.delivery.seq));
            return;
        }
        let seq = st.inflight.get(&r.packet_id).map_or(0, |f| f.delivery.seq);
        drop(st);
        if known && seq != 0 {
            // The PUBREL that follows must survive a restart as PUBREL, not as the message.
            let packet_id = r.packet_id;
            self.store_op(|client_id| Op::UpdateDelivery {
                client_id,
                seq,
                packet_id: Some(packet_id),
                state: 2,
            });
        }
        let reason = if known || !self.version.is_v5() {
            reason::SUCCESS
        } else {
            reason::PACKET_IDENTIFIER_NOT_FOUND
        };
        self.send(&Packet::PubRel(PubResp {
            reason,
            ..PubResp::new(r.packet_id)
        }));
    }

    pub(super) fn on_pubcomp(&mut self, packet_id: u16) {
        let mut st = self.session.state.lock();
        if st
            .inflight
            .get(&packet_id)
            .is_some_and(|f| f.state == OutState::AwaitPubComp)
        {
            let done = st.remove_inflight(packet_id);
            drop(st);
            self.delivery_done(done.map_or(0, |f| f.delivery.seq));
        }
    }
}
