//! Per-client publish rate limits (`max_publish_rate`, `max_publish_bytes_rate`, beyond
//! Mosquitto): token buckets that say how long to stop reading from a client that went
//! over. The broker never drops a message for this: it reads more slowly, and TCP's own
//! flow control slows the client down (lossless back-pressure).

use std::time::{Duration, Instant};

/// A bucket of `burst` tokens refilled at `rate` per second. Taking more than is there
/// is allowed once (the debt), and answered with how long until the debt is paid.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. `rate` and `burst` must be above 0.
    pub fn new(rate: u64, burst: u64, now: Instant) -> TokenBucket {
        let burst = burst.max(1) as f64;
        TokenBucket {
            rate: rate.max(1) as f64,
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// Takes `n` tokens; returns how long the caller must wait before taking more.
    pub fn take(&mut self, n: u64, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= n as f64;
        self.wait()
    }

    /// Takes `n` tokens if they are there; refused attempts cost nothing, so a flood of
    /// them does not keep the bucket empty for ever.
    pub fn try_take(&mut self, n: u64, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= n as f64 {
            self.tokens -= n as f64;
            true
        } else {
            false
        }
    }

    /// How long until the bucket is out of debt.
    fn wait(&self) -> Duration {
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// The limits of one client: messages and payload bytes per second.
#[derive(Debug, Clone)]
pub struct PublishLimiter {
    messages: Option<TokenBucket>,
    bytes: Option<TokenBucket>,
}

impl PublishLimiter {
    /// `None` when neither limit is set (the common case costs nothing).
    pub fn new(messages: Option<u64>, bytes: Option<u64>, now: Instant) -> Option<PublishLimiter> {
        if messages.is_none() && bytes.is_none() {
            return None;
        }
        // A burst of one second's worth: short spikes pass, sustained excess waits.
        Some(PublishLimiter {
            messages: messages.map(|r| TokenBucket::new(r, r, now)),
            bytes: bytes.map(|r| TokenBucket::new(r, r, now)),
        })
    }

    /// Counts one PUBLISH of `payload` bytes; returns how long to stop reading.
    pub fn publish(&mut self, payload: usize, now: Instant) -> Duration {
        let by_count = self
            .messages
            .as_mut()
            .map_or(Duration::ZERO, |b| b.take(1, now));
        let by_bytes = self
            .bytes
            .as_mut()
            .map_or(Duration::ZERO, |b| b.take(payload as u64, now));
        by_count.max(by_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let now = Instant::now();
        let mut b = TokenBucket::new(10, 10, now);
        for _ in 0..10 {
            assert_eq!(b.take(1, now), Duration::ZERO);
        }
        // The 11th is a debt of one token: 0.1 s at 10 per second.
        assert_eq!(b.take(1, now), Duration::from_millis(100));
        // After the wait the debt is paid and one more token has come.
        let later = now + Duration::from_millis(200);
        assert_eq!(b.take(1, later), Duration::ZERO);
    }

    #[test]
    fn refused_attempts_cost_nothing() {
        let now = Instant::now();
        let mut b = TokenBucket::new(2, 2, now);
        assert!(b.try_take(1, now) && b.try_take(1, now));
        for _ in 0..1000 {
            assert!(!b.try_take(1, now));
        }
        assert!(b.try_take(1, now + Duration::from_millis(500)));
    }

    #[test]
    fn the_bucket_never_holds_more_than_its_burst() {
        let now = Instant::now();
        let mut b = TokenBucket::new(100, 5, now);
        let much_later = now + Duration::from_secs(3600);
        for _ in 0..5 {
            assert_eq!(b.take(1, much_later), Duration::ZERO);
        }
        assert!(b.take(1, much_later) > Duration::ZERO);
    }

    #[test]
    fn the_stricter_limit_decides() {
        let now = Instant::now();
        assert!(PublishLimiter::new(None, None, now).is_none());
        let mut l = PublishLimiter::new(Some(1000), Some(100), now).unwrap();
        // 250 bytes against 100 bytes per second (burst 100): 1.5 s of debt.
        assert_eq!(l.publish(250, now), Duration::from_millis(1500));
        let mut m = PublishLimiter::new(Some(2), None, now).unwrap();
        assert_eq!(m.publish(1_000_000, now), Duration::ZERO);
        assert_eq!(m.publish(1_000_000, now), Duration::ZERO);
        assert_eq!(m.publish(1_000_000, now), Duration::from_millis(500));
    }
}
