//! Slowing down password guessing: every failed login makes the next attempt from the same
//! address, and with the same username, wait longer (doubling from [`BASE`] up to a cap),
//! until a quiet period forgets it. Mosquitto has nothing of the kind.
//!
//! Memory is bounded whatever an attacker does: failures are counted in two fixed tables
//! of [`SLOTS`] slots, indexed by a hash of the address or username. Two keys sharing a
//! slot share its count — the worst a collision does is slow an innocent client down as
//! if it had failed too; it never lets a guesser go faster.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Slots per table (addresses, usernames).
pub const SLOTS: usize = 4096;
/// Delay after the first failure; each further failure doubles it.
pub const BASE: Duration = Duration::from_millis(100);
/// Failures are forgotten after this long without another.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    failures: u32,
    last: Option<Instant>,
}

impl Slot {
    fn failures(&self, now: Instant) -> u32 {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < FORGET_AFTER => self.failures,
            _ => 0,
        }
    }
}

/// The failure counts and the delay they impose.
#[derive(Debug)]
pub struct AuthThrottle {
    max: Duration,
    hasher: RandomState,
    addresses: Box<[Slot]>,
    usernames: Box<[Slot]>,
}

impl AuthThrottle {
    /// `max` caps the delay; `Duration::ZERO` turns throttling off.
    pub fn new(max: Duration) -> AuthThrottle {
        AuthThrottle {
            max,
            // Random keys, so an attacker cannot aim at a victim's slot.
            hasher: RandomState::new(),
            addresses: vec![Slot::default(); SLOTS].into_boxed_slice(),
            usernames: vec![Slot::default(); SLOTS].into_boxed_slice(),
        }
    }

    fn index(&self, key: impl Hash) -> usize {
        (self.hasher.hash_one(key) as usize) % SLOTS
    }

    /// How long a login attempt from `addr` as `username` waits before it is checked.
    /// `addr` is `None` when the address says nothing about who is connecting (a Unix
    /// socket, or loopback behind a proxy).
    pub fn delay(&self, addr: Option<IpAddr>, username: Option<&str>, now: Instant) -> Duration {
        if self.max.is_zero() {
            return Duration::ZERO;
        }
        let by_addr = addr.map_or(0, |a| self.addresses[self.index(a)].failures(now));
        let by_user = username.map_or(0, |u| self.usernames[self.index(u)].failures(now));
        self.delay_for(by_addr.max(by_user))
    }

    fn delay_for(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let doubling = failures.saturating_sub(1).min(30);
        BASE.saturating_mul(1u32 << doubling).min(self.max)
    }

    /// A login failed.
    pub fn failed(&mut self, addr: Option<IpAddr>, username: Option<&str>, now: Instant) {
        if self.max.is_zero() {
            return;
        }
        if let Some(a) = addr {
            let i = self.index(a);
            bump(&mut self.addresses[i], now);
        }
        if let Some(u) = username {
            let i = self.index(u);
            bump(&mut self.usernames[i], now);
        }
    }

    /// A login succeeded: the username's count starts again. The address keeps its
    /// count, so one valid account does not reset the clock for guesses at others.
    pub fn succeeded(&mut self, username: Option<&str>) {
        if let Some(u) = username {
            let i = self.index(u);
            self.usernames[i] = Slot::default();
        }
    }
}

fn bump(slot: &mut Slot, now: Instant) {
    slot.failures = slot.failures(now).saturating_add(1);
    slot.last = Some(now);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn each_failure_doubles_the_delay_up_to_the_cap() {
        let mut t = AuthThrottle::new(Duration::from_secs(2));
        let now = Instant::now();
        let a = ip("192.0.2.1");
        assert_eq!(t.delay(a, Some("u"), now), Duration::ZERO);
        let mut seen = Vec::new();
        for _ in 0..7 {
            t.failed(a, Some("u"), now);
            seen.push(t.delay(a, Some("u"), now).as_millis());
        }
        assert_eq!(seen, [100, 200, 400, 800, 1600, 2000, 2000]);
    }

    #[test]
    fn the_address_and_the_username_are_both_tracked() {
        let mut t = AuthThrottle::new(Duration::from_secs(10));
        let now = Instant::now();
        for _ in 0..3 {
            t.failed(ip("192.0.2.1"), Some("admin"), now);
        }
        // Same username from elsewhere: slowed (a distributed guess at one account).
        assert_eq!(
            t.delay(ip("198.51.100.7"), Some("admin"), now),
            Duration::from_millis(400)
        );
        // Same address, another username: slowed (one source guessing many accounts).
        assert_eq!(
            t.delay(ip("192.0.2.1"), Some("bob"), now),
            Duration::from_millis(400)
        );
        // Neither: not slowed (unless a slot is shared, which the random hash makes rare).
        let other = t.delay(ip("203.0.113.9"), Some("carol"), now);
        assert!(other <= Duration::from_millis(400));
    }

    #[test]
    fn success_clears_the_username_and_quiet_clears_everything() {
        let mut t = AuthThrottle::new(Duration::from_secs(10));
        let now = Instant::now();
        let a = ip("2001:db8::1");
        t.failed(a, Some("u"), now);
        t.failed(a, Some("u"), now);
        t.succeeded(Some("u"));
        assert_eq!(t.delay(ip("2001:db8::2"), Some("u"), now), Duration::ZERO);
        assert_eq!(t.delay(a, None, now), Duration::from_millis(200));
        let later = now + FORGET_AFTER + Duration::from_secs(1);
        assert_eq!(t.delay(a, None, later), Duration::ZERO);
        // Counting starts again after the quiet period.
        t.failed(a, None, later);
        assert_eq!(t.delay(a, None, later), Duration::from_millis(100));
    }

    #[test]
    fn zero_turns_it_off_and_memory_never_grows() {
        let mut off = AuthThrottle::new(Duration::ZERO);
        let now = Instant::now();
        off.failed(ip("192.0.2.1"), Some("u"), now);
        assert_eq!(off.delay(ip("192.0.2.1"), Some("u"), now), Duration::ZERO);
        let mut t = AuthThrottle::new(Duration::from_secs(1));
        for i in 0..100_000u32 {
            let addr = Some(IpAddr::from(i.to_be_bytes()));
            t.failed(addr, Some(&i.to_string()), now);
        }
        assert_eq!(t.addresses.len() + t.usernames.len(), 2 * SLOTS);
    }
}
