//! End-to-end flow control: publishers stop while more than `--backlog` messages are
//! published but not yet received by every subscriber.
//!
//! A broker acknowledges a QoS 1/2 PUBLISH once it has queued the message, not once the
//! subscriber has it, so publishers (100 of them in `fanin`, each with 20 in flight) can
//! outrun a subscriber without limit. Brokers then drop what exceeds their per-client queue
//! (Mosquitto's and Midge's `max_queued_messages`, 1000 by default), and the run measures
//! how fast the broker drops, with "CPU per delivered message" inflated by the drops. Kept
//! below that queue size, the backlog makes the run measure what the broker can deliver.
//! `--backlog 0` turns it off (overload runs).
//!
//! A subscriber's progress is how far it got in each publisher's sequence, gaps included:
//! brokers keep each publisher's order, so a message skipped over is lost and must not hold
//! its place in the backlog (or one broker drop would shrink the backlog for good). A message
//! lost with nothing after it is only seen as missing at the end; when no subscriber has made
//! progress for [`STALL`] while publishers wait, what is outstanding is written off (and
//! counted) so the run goes on. Whether anything was really lost is for the sequence check
//! to say at the end.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::engine::shared::Counters;

/// How long publishers wait on a backlog that does not move before writing it off.
pub const STALL: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub struct Backlog {
    /// 0 = no limit.
    limit: u64,
    /// Messages published by all publishers.
    sent: AtomicU64,
    /// Messages given up on (see the module doc).
    written_off: AtomicU64,
    /// A publisher is waiting for subscribers to make progress.
    waiting: AtomicBool,
    notify: Notify,
    subscribers: Vec<Arc<Counters>>,
    stalls: AtomicU64,
}

impl Backlog {
    pub fn new(limit: u64, subscribers: Vec<Arc<Counters>>) -> Backlog {
        Backlog {
            limit,
            sent: AtomicU64::new(0),
            written_off: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
            notify: Notify::new(),
            subscribers,
            stalls: AtomicU64::new(0),
        }
    }

    pub fn limited(&self) -> bool {
        self.limit > 0
    }

    /// Progress of the subscriber furthest behind.
    pub fn slowest_progress(&self) -> u64 {
        self.subscribers
            .iter()
            .map(|c| c.progress())
            .min()
            .unwrap_or(0)
    }

    /// Messages that may be published now.
    pub fn credit(&self) -> u64 {
        if self.limit == 0 {
            return u64::MAX;
        }
        let in_transit = self
            .sent
            .load(Ordering::SeqCst)
            .saturating_sub(self.slowest_progress())
            .saturating_sub(self.written_off.load(Ordering::Relaxed));
        self.limit.saturating_sub(in_transit)
    }

    pub fn add_sent(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::SeqCst);
    }

    /// Called by a publisher about to wait: after this, either its next `credit()` sees
    /// the progress a subscriber made, or that subscriber's `progressed()` sees the flag
    /// and wakes it (both sides use SeqCst, so one of the two always happens).
    pub fn announce_waiting(&self) {
        self.waiting.store(true, Ordering::SeqCst);
    }

    /// Called by a subscriber after storing its new progress.
    pub fn progressed(&self) {
        if self.waiting.load(Ordering::SeqCst) && self.waiting.swap(false, Ordering::SeqCst) {
            self.notify.notify_waiters();
        }
    }

    pub fn notify(&self) -> &Notify {
        &self.notify
    }

    /// Gives up on everything outstanding: no subscriber moved for [`STALL`].
    pub fn write_off(&self) {
        let outstanding = self
            .sent
            .load(Ordering::SeqCst)
            .saturating_sub(self.slowest_progress());
        self.written_off.store(outstanding, Ordering::Relaxed);
        self.stalls.fetch_add(1, Ordering::Relaxed);
    }

    /// Times the backlog was written off.
    pub fn stalls(&self) -> u64 {
        self.stalls.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(n: usize) -> Vec<Arc<Counters>> {
        (0..n).map(|_| Arc::new(Counters::default())).collect()
    }

    #[test]
    fn credit_follows_the_slowest_subscriber() {
        let s = subs(2);
        let b = Backlog::new(100, s.clone());
        assert_eq!(b.credit(), 100);
        b.add_sent(80);
        assert_eq!(b.credit(), 20);
        s[0].progress.store(80, Ordering::Relaxed);
        assert_eq!(b.credit(), 20, "the other subscriber has nothing yet");
        s[1].progress.store(50, Ordering::Relaxed);
        assert_eq!(b.credit(), 70);
        b.add_sent(100);
        assert_eq!(b.credit(), 0);
    }

    #[test]
    fn write_off_frees_a_stuck_backlog() {
        let s = subs(1);
        let b = Backlog::new(10, s.clone());
        b.add_sent(10);
        s[0].progress.store(7, Ordering::Relaxed);
        assert_eq!(b.credit(), 7);
        // Three were lost: they will never arrive.
        b.write_off();
        assert_eq!(b.credit(), 10);
        assert_eq!(b.stalls(), 1);
        b.add_sent(5);
        s[0].progress.store(10, Ordering::Relaxed);
        assert_eq!(b.credit(), 8);
    }

    #[test]
    fn unlimited() {
        let b = Backlog::new(0, subs(1));
        b.add_sent(1_000_000);
        assert!(!b.limited());
        assert_eq!(b.credit(), u64::MAX);
    }
}
