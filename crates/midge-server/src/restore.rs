//! Start-up with persistence: rebuilding sessions, subscriptions, queues, in-flight
//! messages, QoS 2 state, retained messages and pending wills from the store, and
//! restarting the timers (session expiry, will delay) with the time already spent.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use midge_proto::QoS;

use crate::broker::{Broker, PendingWill};
use crate::listener_ctx::ListenerCtx;
use crate::message::Message;
use crate::persist::{options_from_byte, restored_message, unix_now, Persist};
use crate::session::{Delivery, Identity, OutFlight, OutState, Session, SubEntry};
use crate::store::{Op, Snapshot, StoredSession};

impl Broker {
    /// Rebuilds the broker's state from `snapshot`. `listeners` are the listeners by their
    /// configuration index, so that a restored session is checked against the policy of
    /// the listener its client used.
    pub fn restore(self: &Arc<Self>, snapshot: Snapshot, listeners: &[Arc<ListenerCtx>]) {
        let Some(p) = &self.persist else {
            return;
        };
        let now = Instant::now();
        let messages: HashMap<u64, Arc<Message>> = snapshot
            .messages
            .iter()
            .filter_map(|(id, m)| restored_message(m, now).map(|msg| (*id, Arc::new(msg))))
            .collect();
        let mut retained = 0;
        for m in &snapshot.retained {
            match restored_message(m, now) {
                Some(msg) => {
                    let msg = Arc::new(msg);
                    let topic = msg.topic.clone();
                    self.retained_store().set(&topic, msg);
                    retained += 1;
                }
                None => {
                    p.submit(Op::ClearRetained {
                        topic: m.topic.clone(),
                    });
                }
            }
        }
        let mut sessions = 0;
        for stored in snapshot.sessions {
            if self.restore_session(p, stored, &messages, listeners, now) {
                sessions += 1;
            }
        }
        tracing::info!(
            "Restored {sessions} session(s) and {retained} retained message(s) from {}.",
            self.persist_path()
        );
    }

    /// One session; false when it had expired while the broker was down.
    fn restore_session(
        self: &Arc<Self>,
        p: &Persist,
        stored: StoredSession,
        messages: &HashMap<u64, Arc<Message>>,
        listeners: &[Arc<ListenerCtx>],
        now: Instant,
    ) -> bool {
        let client_id: Arc<str> = Arc::from(stored.client_id.as_str());
        // Time already spent offline counts against the session expiry and the will delay;
        // a session connected when the broker stopped counts as disconnected now.
        let away = stored
            .disconnected_unix
            .map_or(0, |t| unix_now().saturating_sub(t));
        let away = u32::try_from(away).unwrap_or(u32::MAX);
        let expiry = stored.expiry_interval;
        let listener = listeners.get(stored.listener as usize).cloned();
        let username: Option<Arc<str>> = stored.username.as_deref().map(Arc::from);
        let will = stored.will.as_ref().and_then(|w| {
            let msg = restored_message(&w.message, now)?;
            Some(PendingWill {
                will: midge_proto::Will {
                    topic: msg.topic.clone(),
                    payload: msg.payload.clone(),
                    qos: msg.qos,
                    retain: msg.retain,
                    properties: msg.properties.clone(),
                },
                publisher: Arc::clone(&client_id),
                username: username.clone(),
                listener: listener.clone(),
                peer: String::new(),
                delay: w.delay,
            })
        });
        if expiry != u32::MAX && away >= expiry {
            // Expired while the broker was down: its will is due, late rather than lost.
            p.submit(Op::DeleteSession {
                client_id: stored.client_id,
            });
            if let Some(w) = will {
                self.publish_will_now(w);
            }
            return false;
        }
        let session = Session::new(Arc::clone(&client_id), expiry);
        if let Some(listener) = listener {
            session.set_identity(Identity {
                username: username.clone(),
                listener,
            });
        }
        {
            let mut st = session.state.lock();
            st.persisted = true;
            st.protocol = stored.protocol;
            for sub in &stored.subscriptions {
                let entry = SubEntry {
                    options: options_from_byte(sub.options),
                    id: sub.identifier,
                };
                self.subscribe(&session, &sub.filter, entry);
                st.subscriptions.insert(sub.filter.clone(), entry);
            }
            for d in stored.queue {
                let Some(msg) = messages.get(&d.message_id) else {
                    // Expired while the broker was down, or unreadable.
                    p.submit(Op::RemoveDelivery {
                        client_id: stored.client_id.clone(),
                        seq: d.seq,
                    });
                    continue;
                };
                let qos = QoS::from_u8(d.qos).unwrap_or(QoS::AtLeastOnce);
                let delivery = Delivery {
                    msg: Arc::clone(msg),
                    qos,
                    retain: d.retain,
                    sub_ids: d.subscription_ids,
                    seq: d.seq,
                };
                let state = match (d.state, d.packet_id) {
                    (1, Some(_)) if qos == QoS::ExactlyOnce => Some(OutState::AwaitPubRec),
                    (1, Some(_)) => Some(OutState::AwaitPubAck),
                    (2, Some(_)) => Some(OutState::AwaitPubComp),
                    _ => None,
                };
                match (state, d.packet_id) {
                    (Some(state), Some(id)) => {
                        st.last_packet_id = st.last_packet_id.max(id);
                        st.add_inflight(id, OutFlight { delivery, state });
                    }
                    _ => {
                        st.queued_bytes += delivery.msg.size();
                        st.queue.push_back(delivery);
                    }
                }
            }
            st.inbound_qos2.extend(stored.inbound_qos2);
        }
        self.insert_session(Arc::clone(&session));
        let left = if expiry == u32::MAX {
            None
        } else {
            Some(expiry - away)
        };
        if let Some(left) = left {
            let broker = Arc::clone(self);
            let session = Arc::clone(&session);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(u64::from(left))).await;
                broker.expire_if_idle(&session, 0);
            });
        }
        if let Some(w) = will {
            let delay = w.delay.saturating_sub(away).min(left.unwrap_or(u32::MAX));
            let broker = Arc::clone(self);
            let session = Arc::clone(&session);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(u64::from(delay))).await;
                // Not sent if the client came back in time.
                if session.state.lock().last_generation == 0 {
                    broker.publish_will_now(w);
                    broker.forget_stored_will(&session);
                }
            });
        }
        true
    }
}
