//! Per-subscriber verification of what arrived: for every publisher, which sequence numbers
//! were seen, so that at the end of a run the tool can say how many messages were lost and
//! how many came twice.
//!
//! Memory is bounded whatever the loss rate: each publisher gets a ring bitmap of the last
//! `window` sequence numbers below the highest one seen. A message above the highest opens a
//! gap (possibly filled later by a reordered message); one inside the window is either a
//! late arrival (its bit was clear) or a duplicate (its bit was set); one below the window
//! cannot be told apart and is counted as `unverifiable`. Brokers keep each publisher's order
//! towards a subscriber, so reordering is rare and deep reordering never happens in practice.
//! Loss is not tracked message by message: it is what was sent minus the distinct messages
//! seen, computed once the run has drained.

/// Counts for one subscriber (or the sum over all of them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqCounts {
    /// Distinct messages received.
    pub unique: u64,
    /// Messages received again while their sequence number was still in the window.
    pub duplicates: u64,
    /// Messages that arrived after a later message of the same publisher.
    pub reordered: u64,
    /// Messages so far below the window that the checker cannot tell a duplicate from a very
    /// late arrival.
    pub unverifiable: u64,
    /// Payloads that are not ours: too short, or from a publisher id outside this run.
    pub foreign: u64,
}

impl SeqCounts {
    pub fn add(&mut self, o: &SeqCounts) {
        self.unique += o.unique;
        self.duplicates += o.duplicates;
        self.reordered += o.reordered;
        self.unverifiable += o.unverifiable;
        self.foreign += o.foreign;
    }
}

/// One publisher as seen by one subscriber.
#[derive(Clone, Debug, Default)]
struct Track {
    /// One past the highest sequence number seen.
    high: u64,
    /// Bit `s % window` says whether `s` was seen, for `s` in `[high - window, high)`.
    /// Empty until the first message, so publishers a subscriber never hears from cost
    /// nothing.
    bits: Vec<u64>,
    unique: u64,
}

/// The checker of one subscriber.
#[derive(Clone, Debug)]
pub struct SequenceChecker {
    tracks: Vec<Track>,
    /// Window size in bits, a multiple of 64.
    window: u64,
    counts: SeqCounts,
    /// Sum over publishers of one past the highest sequence number seen: messages either
    /// received or skipped over. Brokers keep each publisher's order, so a skipped message
    /// is almost certainly lost, and this is how far the subscriber has got (see
    /// `engine::backlog`).
    progress: u64,
}

/// Bits per publisher per subscriber unless that would make the run's checkers too big.
pub const DEFAULT_WINDOW: u64 = 4096;
/// Total bitmap memory a run may spend on checkers.
const BITMAP_BUDGET_BYTES: u64 = 64 << 20;

/// The window to use when `pairs` (publisher, subscriber) pairs each need one: the default,
/// shrunk so the bitmaps stay within budget, never below 64 bits.
pub fn window_for(pairs: u64) -> u64 {
    let per_pair_bits = BITMAP_BUDGET_BYTES * 8 / pairs.max(1);
    (per_pair_bits.min(DEFAULT_WINDOW) / 64).max(1) * 64
}

impl SequenceChecker {
    /// A checker for publisher ids `0..publishers`. `window` is rounded up to a multiple of
    /// 64 bits.
    pub fn new(publishers: usize, window: u64) -> SequenceChecker {
        SequenceChecker {
            tracks: vec![Track::default(); publishers],
            window: window.div_ceil(64).max(1) * 64,
            counts: SeqCounts::default(),
            progress: 0,
        }
    }

    /// A message that could not be read as one of ours.
    pub fn foreign(&mut self) {
        self.counts.foreign += 1;
    }

    /// Records message `seq` of `publisher`.
    pub fn record(&mut self, publisher: u32, seq: u64) {
        let window = self.window;
        let Some(t) = self.tracks.get_mut(publisher as usize) else {
            self.counts.foreign += 1;
            return;
        };
        if t.bits.is_empty() {
            t.bits = vec![0; (window / 64) as usize];
        }
        let c = &mut self.counts;
        if seq >= t.high {
            // Positions [high, seq) were never seen: clear what they held for seq - window.
            let gap = seq - t.high;
            if gap >= window {
                t.bits.fill(0);
            } else {
                for s in t.high..seq {
                    clear(&mut t.bits, s % window);
                }
            }
            set(&mut t.bits, seq % window);
            self.progress += seq + 1 - t.high;
            t.high = seq + 1;
            t.unique += 1;
            c.unique += 1;
        } else if t.high - seq > window {
            c.unverifiable += 1;
        } else if get(&t.bits, seq % window) {
            c.duplicates += 1;
        } else {
            set(&mut t.bits, seq % window);
            t.unique += 1;
            c.unique += 1;
            c.reordered += 1;
        }
    }

    /// Messages received or skipped over, over all publishers.
    pub fn progress(&self) -> u64 {
        self.progress
    }

    pub fn counts(&self) -> SeqCounts {
        self.counts
    }

    /// Distinct messages of `publisher` seen.
    pub fn unique_from(&self, publisher: u32) -> u64 {
        self.tracks.get(publisher as usize).map_or(0, |t| t.unique)
    }

    /// One past the highest sequence number of `publisher` seen (0: none seen).
    pub fn high_from(&self, publisher: u32) -> u64 {
        self.tracks.get(publisher as usize).map_or(0, |t| t.high)
    }

    /// Messages missing at this subscriber, given how many each publisher sent (indexed by
    /// publisher id). A publisher that seems to have delivered more than it sent cannot lose
    /// anything: that excess shows up as foreign or duplicate elsewhere.
    pub fn lost(&self, sent: &[u64]) -> u64 {
        sent.iter()
            .enumerate()
            .map(|(p, &n)| n.saturating_sub(self.unique_from(p as u32)))
            .sum()
    }
}

fn set(bits: &mut [u64], i: u64) {
    bits[(i / 64) as usize] |= 1 << (i % 64);
}

fn clear(bits: &mut [u64], i: u64) {
    bits[(i / 64) as usize] &= !(1 << (i % 64));
}

fn get(bits: &[u64], i: u64) -> bool {
    bits[(i / 64) as usize] & (1 << (i % 64)) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_nothing_lost() {
        let mut c = SequenceChecker::new(1, 64);
        for s in 0..1000 {
            c.record(0, s);
        }
        assert_eq!(
            c.counts(),
            SeqCounts {
                unique: 1000,
                ..SeqCounts::default()
            }
        );
        assert_eq!(c.lost(&[1000]), 0);
    }

    #[test]
    fn gaps_are_lost() {
        let mut c = SequenceChecker::new(1, 64);
        for s in (0..100).filter(|s| s % 10 != 3) {
            c.record(0, s);
        }
        assert_eq!(c.counts().unique, 90);
        assert_eq!(c.lost(&[100]), 10);
        assert_eq!(c.progress(), 100, "gaps count as progress");
        assert_eq!(c.counts().duplicates, 0);
    }

    #[test]
    fn missing_tail_is_lost() {
        let mut c = SequenceChecker::new(1, 64);
        for s in 0..50 {
            c.record(0, s);
        }
        assert_eq!(c.lost(&[60]), 10);
    }

    #[test]
    fn a_gap_wider_than_the_window() {
        let mut c = SequenceChecker::new(1, 64);
        c.record(0, 0);
        c.record(0, 1000);
        c.record(0, 1001);
        assert_eq!(c.lost(&[1002]), 999);
        // 999 is inside the window of 1001 and was never seen: a late arrival, not a duplicate,
        // even though its bit position held seq 999 - 64 * k before the gap.
        c.record(0, 999);
        assert_eq!(c.counts().reordered, 1);
        assert_eq!(c.counts().duplicates, 0);
        assert_eq!(c.lost(&[1002]), 998);
    }

    #[test]
    fn duplicates_detected() {
        let mut c = SequenceChecker::new(1, 64);
        for s in 0..10 {
            c.record(0, s);
        }
        c.record(0, 9);
        c.record(0, 3);
        c.record(0, 3);
        let k = c.counts();
        assert_eq!(k.unique, 10);
        assert_eq!(k.duplicates, 3);
        assert_eq!(c.lost(&[10]), 0);
    }

    #[test]
    fn reordering_within_the_window() {
        let mut c = SequenceChecker::new(1, 64);
        for s in [0, 2, 1, 5, 4, 3, 6] {
            c.record(0, s);
        }
        let k = c.counts();
        assert_eq!(k.unique, 7);
        assert_eq!(k.reordered, 3);
        assert_eq!(k.duplicates, 0);
        assert_eq!(c.progress(), 7, "late arrivals do not count twice");
        assert_eq!(c.lost(&[7]), 0);
        // A duplicate of a message that itself arrived late.
        c.record(0, 1);
        assert_eq!(c.counts().duplicates, 1);
    }

    #[test]
    fn interleaved_publishers_are_independent() {
        let mut c = SequenceChecker::new(3, 64);
        // Each publisher in order, their messages interleaved arbitrarily.
        let order = [
            (0, 0),
            (1, 0),
            (0, 1),
            (2, 0),
            (2, 1),
            (1, 1),
            (0, 2),
            (2, 2),
            (1, 2),
        ];
        for (p, s) in order {
            c.record(p, s);
        }
        let k = c.counts();
        assert_eq!(k.unique, 9);
        assert_eq!(k.reordered, 0);
        assert_eq!(k.duplicates, 0);
        assert_eq!(c.lost(&[3, 3, 3]), 0);
        assert_eq!(c.progress(), 9);
        // The same sequence number from another publisher is not a duplicate.
        c.record(1, 3);
        assert_eq!(c.counts().duplicates, 0);
        assert_eq!(c.lost(&[3, 4, 5]), 2);
        assert_eq!(c.unique_from(1), 4);
        assert_eq!(c.high_from(1), 4);
        assert_eq!(c.high_from(9), 0);
    }

    #[test]
    fn far_below_the_window_is_unverifiable() {
        let mut c = SequenceChecker::new(1, 64);
        for s in 0..200 {
            c.record(0, s);
        }
        c.record(0, 10);
        let k = c.counts();
        assert_eq!(k.unverifiable, 1);
        assert_eq!(k.duplicates, 0);
        assert_eq!(k.unique, 200);
    }

    #[test]
    fn window_edges() {
        let mut c = SequenceChecker::new(1, 64);
        for s in 0..64 {
            c.record(0, s);
        }
        // high = 64: seq 0 is exactly the oldest in the window.
        c.record(0, 0);
        assert_eq!(c.counts().duplicates, 1);
        c.record(0, 64);
        // high = 65: seq 0 has left the window.
        c.record(0, 0);
        assert_eq!(c.counts().unverifiable, 1);
    }

    #[test]
    fn foreign_publishers() {
        let mut c = SequenceChecker::new(2, 64);
        c.record(2, 0);
        c.foreign();
        assert_eq!(c.counts().foreign, 2);
        assert_eq!(c.counts().unique, 0);
    }

    #[test]
    fn window_budget() {
        assert_eq!(window_for(1), DEFAULT_WINDOW);
        assert_eq!(window_for(10_000), 4096);
        assert_eq!(window_for(1_000_000), 512);
        assert_eq!(window_for(u64::MAX), 64);
        assert_eq!(SequenceChecker::new(1, 65).window, 128);
    }
}
