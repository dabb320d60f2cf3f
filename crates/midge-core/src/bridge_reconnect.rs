//! When and where a bridge reconnects (issue 8): the address to try next among `address`
//! lines, and the wait before trying (`restart_timeout`). Pure: the random number comes in
//! as an argument.

use crate::config::RestartTimeout;

/// Which remote address a bridge tries next.
///
/// Without `round_robin` the first address is the primary and the others are backups: every
/// new connection attempt after a working connection ends starts at the primary again, and
/// a failed attempt fails over to the next address. With `round_robin` the addresses are
/// equals: every attempt, failed or after a drop, moves on to the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressCycle {
    count: usize,
    round_robin: bool,
    current: usize,
}

impl AddressCycle {
    /// `count` addresses (at least one is expected; zero behaves as one).
    pub fn new(count: usize, round_robin: bool) -> AddressCycle {
        AddressCycle {
            count: count.max(1),
            round_robin,
            current: 0,
        }
    }

    /// The index of the address to try now.
    pub fn current(&self) -> usize {
        self.current
    }

    /// The attempt on the current address failed: the next one is tried.
    pub fn failed(&mut self) {
        self.current = (self.current + 1) % self.count;
    }

    /// A working connection to the current address has ended.
    pub fn dropped(&mut self) {
        if self.round_robin {
            self.current = (self.current + 1) % self.count;
        } else {
            self.current = 0;
        }
    }
}

/// The wait before the next connection attempt, in seconds.
///
/// `restart_timeout <n>` waits `n` seconds every time. `restart_timeout <base> <cap>` is
/// Mosquitto's "decorrelated jitter": each wait is random between `base` and three times the
/// previous wait, never above `cap`; a connection that worked resets it to `base`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    timeout: RestartTimeout,
    previous: u32,
}

impl Backoff {
    pub fn new(timeout: RestartTimeout) -> Backoff {
        let previous = match timeout {
            RestartTimeout::Constant(n) => n,
            RestartTimeout::Backoff { base, .. } => base,
        };
        Backoff { timeout, previous }
    }

    /// The next wait; `random` is any uniformly random number.
    pub fn next(&mut self, random: u32) -> u32 {
        match self.timeout {
            RestartTimeout::Constant(n) => n,
            RestartTimeout::Backoff { base, cap } => {
                let high = self.previous.saturating_mul(3).max(base);
                let span = high - base;
                let wait = if span == 0 {
                    base
                } else {
                    base + random % (span + 1)
                };
                let wait = wait.min(cap).max(base.min(cap));
                self.previous = wait;
                wait
            }
        }
    }

    /// A connection worked: the next wait starts from the base again.
    pub fn reset(&mut self) {
        *self = Backoff::new(self.timeout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_and_backups() {
        let mut c = AddressCycle::new(3, false);
        assert_eq!(c.current(), 0);
        c.failed();
        assert_eq!(c.current(), 1);
        c.failed();
        c.failed();
        assert_eq!(c.current(), 0, "wraps round");
        c.failed();
        c.dropped();
        assert_eq!(c.current(), 0, "back to the primary after a drop");
    }

    #[test]
    fn round_robin_moves_on() {
        let mut c = AddressCycle::new(2, true);
        c.dropped();
        assert_eq!(c.current(), 1);
        c.dropped();
        assert_eq!(c.current(), 0);
        c.failed();
        assert_eq!(c.current(), 1);
        let mut one = AddressCycle::new(0, true);
        one.failed();
        assert_eq!(one.current(), 0);
    }

    #[test]
    fn constant_timeout() {
        let mut b = Backoff::new(RestartTimeout::Constant(7));
        assert_eq!(b.next(0), 7);
        assert_eq!(b.next(u32::MAX), 7);
    }

    #[test]
    fn decorrelated_jitter_stays_between_base_and_cap() {
        let mut b = Backoff::new(RestartTimeout::Backoff { base: 5, cap: 30 });
        for random in [0, 1, 17, 999, u32::MAX, 12345, 3, u32::MAX - 1] {
            let w = b.next(random);
            assert!((5..=30).contains(&w), "{w}");
        }
        // Always the largest random: grows by three until the cap.
        let mut b = Backoff::new(RestartTimeout::Backoff { base: 2, cap: 30 });
        let waits: Vec<u32> = (0..5).map(|_| b.next(u32::MAX - 1)).collect();
        assert!(waits.iter().all(|w| (2..=30).contains(w)), "{waits:?}");
        let mut grow = Backoff::new(RestartTimeout::Backoff { base: 2, cap: 30 });
        // random % (span + 1) == span when random == span.
        assert_eq!(grow.next(4), 6);
        assert_eq!(grow.next(16), 18);
        assert_eq!(grow.next(52), 30, "capped");
        grow.reset();
        assert_eq!(grow.next(0), 2);
    }

    #[test]
    fn equal_base_and_cap() {
        let mut b = Backoff::new(RestartTimeout::Backoff { base: 1, cap: 1 });
        assert_eq!(b.next(u32::MAX), 1);
        assert_eq!(b.next(5), 1);
    }
}
