//! Heap accounting, for `memory_limit` and `$SYS/broker/heap/{current,maximum}`.
//!
//! The `midge` binary installs [`CountingAlloc`] as its global allocator: every allocation
//! and release adjusts one relaxed atomic counter (Mosquitto's memory-tracking builds do the
//! same under a lock). A process that does not install it (the in-process tests, other
//! embedders) reports no heap figures, and `memory_limit` cannot apply there.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static MAXIMUM: AtomicUsize = AtomicUsize::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

/// The system allocator, counting the bytes in use.
pub struct CountingAlloc;

fn grew(size: usize) {
    let now = CURRENT.fetch_add(size, Ordering::Relaxed) + size;
    // A plain load first: the shared maximum is written only on a new high.
    if now > MAXIMUM.load(Ordering::Relaxed) {
        MAXIMUM.fetch_max(now, Ordering::Relaxed);
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
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as the caller's contract for `GlobalAlloc::realloc`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

/// Called by a program that installed [`CountingAlloc`]: from now on the figures are real.
pub fn counting_installed() {
    COUNTING.store(true, Ordering::Relaxed);
}

/// Bytes of heap in use, and the most ever in use; `None` without [`CountingAlloc`].
pub fn usage() -> Option<(usize, usize)> {
    COUNTING.load(Ordering::Relaxed).then(|| {
        (
            CURRENT.load(Ordering::Relaxed),
            MAXIMUM.load(Ordering::Relaxed),
        )
    })
}

/// Whether `memory_limit` (bytes, 0 = none) is exceeded now.
pub fn over(limit: u64) -> bool {
    limit != 0 && COUNTING.load(Ordering::Relaxed) && CURRENT.load(Ordering::Relaxed) as u64 > limit
}
