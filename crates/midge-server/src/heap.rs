//! Heap accounting, for `memory_limit` and `$SYS/broker/heap/{current,maximum}`.
//!
//! The `midge` binary installs [`CountingAlloc`] as its global allocator and switches the
//! counting on ([`enable`]) when `memory_limit` is set: every allocation and release then
//! adjusts one relaxed atomic counter (Mosquitto's memory-tracking builds do the same under
//! a lock). Counting costs about 5% more CPU per delivered message (measured with the load
//! tool, docs/performance.md), so without `memory_limit` the allocator only tests a flag.
//! A process that does not install it (the in-process tests, other embedders) reports no
//! heap figures, and `memory_limit` cannot apply there.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

/// Bytes allocated minus bytes released since counting began. Memory allocated before and
/// released after can take it a little below the truth (never below zero as reported).
static CURRENT: AtomicIsize = AtomicIsize::new(0);
static MAXIMUM: AtomicIsize = AtomicIsize::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

/// The system allocator, counting the bytes in use.
pub struct CountingAlloc;

fn grew(size: usize) {
    if !COUNTING.load(Ordering::Relaxed) {
        return;
    }
    let size = size as isize;
    let now = CURRENT.fetch_add(size, Ordering::Relaxed) + size;
    // A plain load first: the shared maximum is written only on a new high.
    if now > MAXIMUM.load(Ordering::Relaxed) {
        MAXIMUM.fetch_max(now, Ordering::Relaxed);
    }
}

fn shrank(size: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        CURRENT.fetch_sub(size as isize, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to `System` with the caller's arguments unchanged; the
// counters are bookkeeping only.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as the caller's contract for `GlobalAlloc::alloc`.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as the caller's contract for `GlobalAlloc::alloc_zeroed`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator (hence `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as the caller's contract for `GlobalAlloc::realloc`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

/// Starts counting; only for a program that installed [`CountingAlloc`], as early as it
/// can (what was allocated before is not counted).
pub fn enable() {
    COUNTING.store(true, Ordering::Relaxed);
}

/// Bytes of heap in use, and the most ever in use; `None` when not counting.
pub fn usage() -> Option<(usize, usize)> {
    let bytes = |a: &AtomicIsize| usize::try_from(a.load(Ordering::Relaxed)).unwrap_or(0);
    COUNTING
        .load(Ordering::Relaxed)
        .then(|| (bytes(&CURRENT), bytes(&MAXIMUM)))
}

/// Whether `memory_limit` (bytes, 0 = none) is exceeded now.
pub fn over(limit: u64) -> bool {
    limit != 0
        && COUNTING.load(Ordering::Relaxed)
        && u64::try_from(CURRENT.load(Ordering::Relaxed)).unwrap_or(0) > limit
}
