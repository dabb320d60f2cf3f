//! What the coordinator and the client tasks of a pub/sub run share: the phase of the run,
//! and per-task counters the coordinator reads for the progress line and the window's rates.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The run's phase, sent to every task over a watch channel (which wakes tasks waiting on
/// their socket, unlike a flag).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Publishers publish, subscribers read.
    Run,
    /// Publishers stop sending and wait for their outstanding acknowledgements; subscribers
    /// keep reading (the drain).
    StopPublishing,
    /// Everyone returns what they have.
    Stop,
}

/// Counters one task writes (once per batch or read, not per message) and the coordinator
/// reads. Aligned to a cache line so tasks on different threads (`--threads` > 1) do not
/// slow each other down by writing next to each other.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Counters {
    /// Publisher: messages written. Subscriber: PUBLISH packets received.
    pub messages: AtomicU64,
    /// Subscriber: distinct messages (what the drain waits for). Publisher: acknowledged.
    pub unique_or_acked: AtomicU64,
    /// Subscriber: messages received or skipped over (see `SequenceChecker::progress`).
    pub progress: AtomicU64,
    /// Publisher: its count bound is reached and it will send nothing more.
    pub done: AtomicBool,
}

impl Counters {
    pub fn messages(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    pub fn unique_or_acked(&self) -> u64 {
        self.unique_or_acked.load(Ordering::Relaxed)
    }

    pub fn progress(&self) -> u64 {
        self.progress.load(Ordering::SeqCst)
    }

    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Relaxed)
    }
}

/// Sum of `messages` over tasks.
pub fn total(counters: &[std::sync::Arc<Counters>]) -> u64 {
    counters.iter().map(|c| c.messages()).sum()
}
