//! The progress line a long run prints on stderr once a second, so a person watching a 60 s
//! run sees it move (or stall) without waiting for the summary.

use std::time::{Duration, Instant};

/// Runs planned longer than this print progress.
pub const PROGRESS_AFTER: Duration = Duration::from_secs(3);

pub struct Progress {
    enabled: bool,
    start: Instant,
    next: Instant,
    last_at: Instant,
    last: (u64, u64),
}

impl Progress {
    /// `planned` is how long the run is meant to take; short runs stay quiet.
    pub fn new(planned: Duration) -> Progress {
        let now = Instant::now();
        Progress {
            enabled: planned > PROGRESS_AFTER,
            start: now,
            next: now + Duration::from_secs(1),
            last_at: now,
            last: (0, 0),
        }
    }

    /// Prints one line if a second has passed: `what` is the phase, `a` and `b` two running
    /// totals (named by `names`) whose rates over the last second are shown too.
    pub fn tick(&mut self, what: &str, names: (&str, &str), a: u64, b: u64) {
        let now = Instant::now();
        if !self.enabled || now < self.next {
            return;
        }
        let dt = now.duration_since(self.last_at).as_secs_f64().max(1e-9);
        let ra = a.saturating_sub(self.last.0) as f64 / dt;
        let rb = b.saturating_sub(self.last.1) as f64 / dt;
        eprintln!(
            "[{:>6.1} s] {what:<10} {} {a} ({ra:.0}/s)  {} {b} ({rb:.0}/s)",
            now.duration_since(self.start).as_secs_f64(),
            names.0,
            names.1
        );
        self.last = (a, b);
        self.last_at = now;
        while self.next <= now {
            self.next += Duration::from_secs(1);
        }
    }
}
