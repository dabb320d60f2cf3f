//! Publishes the `$SYS/broker/...` tree every `sys_interval` seconds: retained, QoS 0, and
//! only the values that changed (the model is `midge_core::systree`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::broker::Broker;
use crate::message::Message;

/// `$SYS/broker/version`.
pub fn version() -> String {
    format!("midge version {}", env!("CARGO_PKG_VERSION"))
}

/// Runs until shutdown; returns at once when `interval` is 0 (`sys_interval 0`).
pub async fn run(broker: Arc<Broker>, interval: u16, mut shutdown: watch::Receiver<bool>) {
    if interval == 0 {
        return;
    }
    let mut ticker = tokio::time::interval(Duration::from_secs(u64::from(interval)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let sample = broker.sample();
        let elapsed = broker.started.elapsed().as_secs_f64();
        let changed = broker.systree.lock().update(elapsed, &sample);
        for (topic, text) in changed {
            let now = Instant::now();
            let msg = Message::new(
                topic.into(),
                text.into_bytes().into(),
                midge_proto::QoS::AtMostOnce,
                true,
                midge_proto::Properties::default(),
                now,
                None,
            );
            broker.publish(&Arc::new(msg), now);
        }
    }
}
