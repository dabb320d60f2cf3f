//! The persistence writer under the broker's QoS 1 pattern: per message, `StoreMessage` +
//! `Enqueue` (the publisher's acknowledgement waits for them) and later `RemoveDelivery`
//! (the subscriber's PUBACK). Throughput is in messages per second (3 operations each).
//! Run with `cargo bench -p midge-server --bench store`.
//!
//! - `bulk`: everything submitted at once, then one wait: the writer's ceiling, batches
//!   of up to 10,000 operations.
//! - `publishers`: 100 tasks, each waiting for its message to be committed before the
//!   next, as connected publishers do: batches as big as the commits let them grow.
//! - `publishers_fast_acks`: the same, with each subscriber's PUBACK submitted before
//!   the publisher's commit, as a subscriber on the same host does: deliveries enqueued and
//!   acknowledged within one batch are never written.
//! - `fanout`: one message to 100 subscribers (1 store, 100 enqueues, 100 removals).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use midge_server::store::{Durability, Op, Store, StoredDelivery, StoredMessage};

fn main() {
    divan::main();
}

const MESSAGES: u64 = 20_000;

/// A fresh store in its own directory, removed at drop.
struct Bench {
    dir: PathBuf,
    store: Option<Store>,
    next: AtomicU64,
}

impl Bench {
    fn new(durability: Durability) -> Bench {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "midge-store-bench-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (store, _) = Store::open(&dir.join("bench.db"), durability).unwrap();
        let ticket = store.submit(Op::UpsertSession {
            client_id: "sub".into(),
            expiry_interval: u32::MAX,
            disconnected_unix: None,
            username: None,
            listener: 0,
            protocol: 5,
        });
        block_on(store.wait(ticket));
        Bench {
            dir,
            store: Some(store),
            next: AtomicU64::new(1),
        }
    }

    fn store(&self) -> &Store {
        self.store.as_ref().unwrap()
    }

    /// The ops of publishing one message, and of its acknowledgement.
    fn message(&self, client_id: &str) -> (Vec<Op>, Op) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let message = Arc::new(StoredMessage {
            id,
            topic: format!("sensors/{}/temperature", id % 1000),
            payload: Bytes::from_static(&[b'x'; 64]),
            qos: 1,
            retain: false,
            properties: Vec::new(),
            expiry_unix: None,
            publisher: Some(format!("pub-{}", id % 100)),
            publisher_username: None,
        });
        let publish = vec![
            Op::StoreMessage(message),
            Op::Enqueue {
                client_id: client_id.into(),
                delivery: delivery(id, id),
            },
        ];
        let ack = Op::RemoveDelivery {
            client_id: client_id.into(),
            seq: id,
        };
        (publish, ack)
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            store.close().unwrap();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn delivery(seq: u64, message_id: u64) -> StoredDelivery {
    StoredDelivery {
        seq,
        message_id,
        qos: 1,
        retain: false,
        packet_id: Some((seq % 65535) as u16 + 1),
        state: 1,
        subscription_ids: Vec::new(),
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn durability(name: &str) -> Durability {
    match name {
        "fsync" => Durability::Fsync,
        _ => Durability::Os,
    }
}

#[divan::bench(args = ["os", "fsync"], sample_count = 5, sample_size = 1)]
fn bulk(bencher: divan::Bencher, mode: &str) {
    let bench = Bench::new(durability(mode));
    bencher
        .counter(divan::counter::ItemsCount::new(MESSAGES))
        .bench_local(|| {
            let store = bench.store();
            let mut acks = Vec::with_capacity(MESSAGES as usize);
            for _ in 0..MESSAGES {
                let (publish, ack) = bench.message("sub");
                store.submit_all(publish);
                acks.push(ack);
            }
            let ticket = store.submit_all(acks);
            block_on(store.wait(ticket));
        });
}

#[divan::bench(args = ["os", "fsync"], sample_count = 5, sample_size = 1)]
fn publishers(bencher: divan::Bencher, mode: &str) {
    run_publishers(bencher, mode, false);
}

#[divan::bench(args = ["os", "fsync"], sample_count = 5, sample_size = 1)]
fn publishers_fast_acks(bencher: divan::Bencher, mode: &str) {
    run_publishers(bencher, mode, true);
}

/// `fast_acks`: the subscriber's PUBACK arrives before the publisher's message is
/// committed (the broker delivers before the commit), as it does with a subscriber on
/// the same host.
fn run_publishers(bencher: divan::Bencher, mode: &str, fast_acks: bool) {
    const PUBLISHERS: u64 = 100;
    let bench = Arc::new(Bench::new(durability(mode)));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let per_publisher = if mode == "fsync" { 20 } else { 200 };
    bencher
        .counter(divan::counter::ItemsCount::new(PUBLISHERS * per_publisher))
        .bench_local(|| {
            runtime.block_on(async {
                let mut tasks = Vec::new();
                for _ in 0..PUBLISHERS {
                    let bench = Arc::clone(&bench);
                    tasks.push(tokio::spawn(async move {
                        let store = bench.store().clone();
                        for _ in 0..per_publisher {
                            let (publish, ack) = bench.message("sub");
                            let ticket = store.submit_all(publish);
                            if fast_acks {
                                store.submit(ack);
                                store.wait(ticket).await;
                            } else {
                                store.wait(ticket).await;
                                // The subscriber's PUBACK: nobody waits for its commit.
                                store.submit(ack);
                            }
                        }
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
                let last = bench.store().submit_all(Vec::new());
                bench.store().wait(last).await;
            });
        });
}

#[divan::bench(args = ["os"], sample_count = 5, sample_size = 1)]
fn fanout(bencher: divan::Bencher, mode: &str) {
    const SUBSCRIBERS: u64 = 100;
    const FANOUT_MESSAGES: u64 = 200;
    let bench = Bench::new(durability(mode));
    let store = bench.store();
    let clients: Vec<String> = (0..SUBSCRIBERS).map(|i| format!("sub-{i}")).collect();
    store.submit_all(clients.iter().map(|c| Op::UpsertSession {
        client_id: c.clone(),
        expiry_interval: u32::MAX,
        disconnected_unix: None,
        username: None,
        listener: 0,
        protocol: 5,
    }));
    let seq = AtomicU64::new(1);
    bencher
        .counter(divan::counter::ItemsCount::new(
            FANOUT_MESSAGES * SUBSCRIBERS,
        ))
        .bench_local(|| {
            let mut acks = Vec::new();
            for _ in 0..FANOUT_MESSAGES {
                let (mut publish, _) = bench.message("unused");
                publish.truncate(1); // the StoreMessage
                let Op::StoreMessage(m) = &publish[0] else {
                    unreachable!()
                };
                let id = m.id;
                for c in &clients {
                    let s = seq.fetch_add(1, Ordering::Relaxed);
                    publish.push(Op::Enqueue {
                        client_id: c.clone(),
                        delivery: delivery(s, id),
                    });
                    acks.push(Op::RemoveDelivery {
                        client_id: c.clone(),
                        seq: s,
                    });
                }
                store.submit_all(publish);
            }
            let ticket = store.submit_all(acks);
            block_on(store.wait(ticket));
        });
}
