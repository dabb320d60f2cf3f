//! The broker's counters: what `$SYS` and `/metrics` report.
//!
//! Counting happens on the hot path (every read, every publish), on every core at once. A
//! single atomic per counter would bounce its cache line between cores; each thread instead
//! adds to one of [`SHARDS`] cache-line-sized shards, and a reading sums them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// What is counted. The discriminant indexes a shard's slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// MQTT packets read from clients.
    PacketsReceived,
    /// MQTT packets written to clients.
    PacketsSent,
    BytesReceived,
    BytesSent,
    PublishReceived,
    PublishSent,
    /// Deliveries dropped by queue limits.
    PublishDropped,
    PublishBytesReceived,
    PublishBytesSent,
    /// Sockets accepted.
    Sockets,
    /// CONNECTs accepted.
    Connections,
    /// CONNECTs refused for their credentials.
    AuthFailures,
    /// Publishes, deliveries, subscriptions and unsubscriptions denied by ACLs.
    AclDenials,
    TlsHandshakeFailures,
    /// Sessions that expired.
    SessionsExpired,
}

/// Number of [`Counter`]s.
const COUNT: usize = 15;

/// Shards per counter set: more than the cores a broker usually runs on, so threads rarely
/// share one.
const SHARDS: usize = 16;

#[repr(align(128))]
#[derive(Default)]
struct Shard([AtomicU64; COUNT]);

/// A thread's shard index, handed out round-robin.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    INDEX.with(|i| *i)
}

pub struct Counters {
    shards: Box<[Shard]>,
    /// Clients connected now, and the most at once (gauges, changed per connection).
    connected: AtomicU64,
    maximum: AtomicU64,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters").finish_non_exhaustive()
    }
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            connected: AtomicU64::new(0),
            maximum: AtomicU64::new(0),
        }
    }
}

impl Counters {
    #[inline]
    pub fn add(&self, counter: Counter, n: u64) {
        self.shards[shard_index()].0[counter as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self, counter: Counter) -> u64 {
        self.shards
            .iter()
            .map(|s| s.0[counter as usize].load(Ordering::Relaxed))
            .sum()
    }

    /// A client connected: also raises the maximum.
    pub fn client_connected(&self) {
        let now = self.connected.fetch_add(1, Ordering::Relaxed) + 1;
        self.maximum.fetch_max(now, Ordering::Relaxed);
    }

    pub fn client_disconnected(&self) {
        self.connected.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn connected(&self) -> u64 {
        self.connected.load(Ordering::Relaxed)
    }

    pub fn maximum(&self) -> u64 {
        self.maximum.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_has_its_own_slot() {
        let all = [
            Counter::PacketsReceived,
            Counter::PacketsSent,
            Counter::BytesReceived,
            Counter::BytesSent,
            Counter::PublishReceived,
            Counter::PublishSent,
            Counter::PublishDropped,
            Counter::PublishBytesReceived,
            Counter::PublishBytesSent,
            Counter::Sockets,
            Counter::Connections,
            Counter::AuthFailures,
            Counter::AclDenials,
            Counter::TlsHandshakeFailures,
            Counter::SessionsExpired,
        ];
        assert_eq!(all.len(), COUNT);
        let c = Counters::default();
        for (i, counter) in all.iter().enumerate() {
            c.add(*counter, i as u64 + 1);
        }
        for (i, counter) in all.iter().enumerate() {
            assert_eq!(c.get(*counter), i as u64 + 1, "{counter:?}");
        }
    }

    #[test]
    fn sums_the_counts_of_every_thread() {
        let c = std::sync::Arc::new(Counters::default());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let c = std::sync::Arc::clone(&c);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.add(Counter::PublishReceived, 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.get(Counter::PublishReceived), 8000);
    }

    #[test]
    fn maximum_follows_the_peak() {
        let c = Counters::default();
        c.client_connected();
        c.client_connected();
        c.client_disconnected();
        c.client_connected();
        c.client_connected();
        assert_eq!((c.connected(), c.maximum()), (3, 3));
        c.client_disconnected();
        assert_eq!((c.connected(), c.maximum()), (2, 3));
    }
}
