//! SUBSCRIBE and UNSUBSCRIBE: the trie, the session's own list, and retained messages sent
//! on subscribe.

use std::time::Instant;

use midge_core::acl::Access;
use midge_proto::topic::parse_shared;
use midge_proto::{
    reason, Packet, Properties, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};

use super::Connection;
use crate::metrics::Counter;
use crate::session::{Delivery, SubEntry};
use crate::store::Op;

impl Connection {
    /// The filter as the broker stores it: under the listener's mount point, if any
    /// (`$share/group/` stays in front).
    fn mounted(&self, filter: &str) -> String {
        match &self.listener.mount_point {
            None => filter.to_owned(),
            Some(mp) => match parse_shared(filter) {
                Some((group, f)) => format!("$share/{group}/{mp}{f}"),
                None => format!("{mp}{filter}"),
            },
        }
    }

    pub(super) fn on_subscribe(&mut self, s: Subscribe) {
        let now = Instant::now();
        let max_qos = self.listener.max_qos;
        let sub_id = s.properties.subscription_identifiers.first().copied();
        let policy = self.listener.policy.get();
        let mut codes = Vec::with_capacity(s.filters.len());
        let mut retained = Vec::new();
        let mut deliveries = Vec::new();
        let mut stored = 0;
        for f in &s.filters {
            let filter = self.mounted(&f.filter);
            let user = self.username.as_deref();
            if !policy.may(user, &self.client_id, &filter, Access::Subscribe) {
                self.broker.metrics.add(Counter::AclDenials, 1);
                let details = serde_json::json!({"action": "subscribe", "topic": &filter});
                self.audit("acl_denied", details);
                tracing::info!("Denied SUBSCRIBE from {} to '{}'.", self.who(), filter);
                codes.push(if self.version.is_v5() {
                    reason::NOT_AUTHORIZED
                } else {
                    reason::UNSPECIFIED_ERROR
                });
                continue;
            }
            let granted = f.options.qos.min(max_qos);
            let entry = SubEntry {
                options: SubscriptionOptions {
                    qos: granted,
                    no_local: f.options.no_local || self.bridge,
                    retain_as_published: f.options.retain_as_published || self.bridge,
                    ..f.options
                },
                id: sub_id,
            };
            let is_new = self.broker.subscribe(&self.session, &filter, entry);
            let persisted = {
                let mut st = self.session.state.lock();
                st.subscriptions.insert(filter.clone(), entry);
                st.persisted
            };
            if let Some(p) = self.broker.persist.as_ref().filter(|_| persisted) {
                let ticket = p.add_subscription(&self.client_id, &filter, &entry);
                stored = stored.max(ticket);
            }
            codes.push(granted as u8);
            // `log_type subscribe` (midge/src/logging).
            tracing::debug!(
                target: "midge::subscribe",
                "{} subscribed to '{}' (QoS {}).",
                self.client_id,
                filter,
                granted as u8
            );

            // Retained messages are not sent for shared subscriptions [MQTT-4.8.2]; retain
            // handling 1 sends them only for a new subscription, 2 never.
            let wanted = match f.options.retain_handling {
                0 => true,
                1 => is_new,
                _ => false,
            };
            if wanted && parse_shared(&filter).is_none() {
                self.broker.retained_matching(&filter, now, &mut retained);
                for msg in retained.drain(..) {
                    if !policy.may(user, &self.client_id, &msg.topic, Access::Read) {
                        continue;
                    }
                    // `check_retain_source`: the publisher must still be allowed to write it.
                    // Messages the broker published itself (`$SYS`) have no publisher.
                    if self.broker.settings.check_retain_source
                        && msg.publisher.is_some()
                        && !policy.may(
                            msg.publisher_username.as_deref(),
                            msg.publisher.as_deref().unwrap_or(""),
                            &msg.topic,
                            Access::Write,
                        )
                    {
                        continue;
                    }
                    deliveries.push(Delivery {
                        qos: msg.qos.min(granted),
                        msg,
                        retain: true,
                        sub_ids: sub_id.into_iter().collect(),
                        seq: 0,
                    });
                }
            }
        }
        self.after_store(stored);
        // SUBACK goes out before any retained message it released.
        self.send(&Packet::SubAck(SubAck {
            packet_id: s.packet_id,
            codes,
            properties: Properties::default(),
        }));
        for d in deliveries {
            let persist = self.broker.persist.as_ref();
            if let Some(ticket) = self
                .session
                .push(d, self.broker.settings.queue, now, persist)
            {
                self.after_store(ticket);
            }
        }
    }

    pub(super) fn on_unsubscribe(&mut self, u: Unsubscribe) {
        let mut codes = Vec::with_capacity(u.filters.len());
        let policy = self.listener.policy.get();
        for f in &u.filters {
            let filter = self.mounted(f);
            // Dynamic security roles can deny unsubscribing (the subscription stays).
            let user = self.username.as_deref();
            if !policy.may(user, &self.client_id, &filter, Access::Unsubscribe) {
                self.broker.metrics.add(Counter::AclDenials, 1);
                let details = serde_json::json!({"action": "unsubscribe", "topic": &filter});
                self.audit("acl_denied", details);
                tracing::info!("Denied UNSUBSCRIBE from {} on '{filter}'.", self.who());
                codes.push(reason::NOT_AUTHORIZED);
                continue;
            }
            let existed = self.broker.unsubscribe(&self.session, &filter);
            // `log_type unsubscribe` (midge/src/logging).
            tracing::debug!(
                target: "midge::unsubscribe",
                "{} unsubscribed from '{filter}'.",
                self.client_id
            );
            let persisted = {
                let mut st = self.session.state.lock();
                st.subscriptions.remove(&filter);
                st.persisted
            };
            if let Some(p) = self.broker.persist.as_ref().filter(|_| persisted) {
                let ticket = p.submit(Op::RemoveSubscription {
                    client_id: self.client_id.to_string(),
                    filter: filter.clone(),
                });
                self.after_store(ticket);
            }
            codes.push(if existed {
                reason::SUCCESS
            } else {
                reason::NO_SUBSCRIPTION_EXISTED
            });
        }
        if !self.version.is_v5() {
            codes.clear();
        }
        self.send(&Packet::UnsubAck(UnsubAck {
            packet_id: u.packet_id,
            codes,
            properties: Properties::default(),
        }));
    }
}
