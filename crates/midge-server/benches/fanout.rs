//! Routing one message to 1,000 subscribers of the same topic: trie lookup, per-client
//! merge, and one mailbox push per subscriber (the payload is shared, never copied).
//! Run with `cargo bench -p midge-server`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use midge_proto::{Properties, QoS, SubscriptionOptions};
use midge_server::broker::Broker;
use midge_server::message::Message;
use midge_server::session::{Session, SubEntry};
use midge_server::settings::Settings;

fn main() {
    divan::main();
}

fn broker_with_subscribers(n: usize) -> (Arc<Broker>, Vec<Arc<Session>>) {
    let config = midge_core::config::parse("max_queued_messages 0\n", "bench.conf").unwrap();
    let broker = Broker::new(Settings::from_config(&config, true));
    let mut sessions = Vec::with_capacity(n);
    for i in 0..n {
        let id: Arc<str> = Arc::from(format!("sub-{i}"));
        let attached = broker.attach(&id, true, 0);
        let entry = SubEntry {
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                ..SubscriptionOptions::default()
            },
            id: None,
        };
        broker.subscribe(&attached.session, "fanout/topic", entry);
        sessions.push(attached.session);
    }
    (broker, sessions)
}

#[divan::bench(args = [1, 100, 1000])]
fn route_to_subscribers(bencher: divan::Bencher, n: usize) {
    let (broker, sessions) = broker_with_subscribers(n);
    let msg = Arc::new(Message::new(
        "fanout/topic".into(),
        Bytes::from_static(&[0u8; 64]),
        QoS::AtLeastOnce,
        false,
        Properties::default(),
        Instant::now(),
        None,
    ));
    bencher.bench_local(|| {
        let delivered = broker.route(divan::black_box(&msg), Instant::now());
        // Empty the mailboxes so every iteration does the same work.
        for s in &sessions {
            s.state.lock().queue.clear();
        }
        delivered
    });
}
