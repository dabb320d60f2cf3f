//! The one monotonic clock every client of a run reads. All clients live in this process, so
//! a timestamp written by a publisher and read back by a subscriber needs no clock sync.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            base: Instant::now(),
        }
    }

    /// Microseconds since the clock was made, wrapping at 2^32 (see `payload`).
    pub fn now_us(&self) -> u32 {
        self.base.elapsed().as_micros() as u32
    }

    pub fn elapsed(&self) -> Duration {
        self.base.elapsed()
    }
}
