//! `check` runs for every delivered message: it must not allocate, with or without
//! patterns. Counted per thread so parallel tests do not interfere.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use midge_core::acl::{parse, Access};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; the thread-locals
// are const-initialised `Cell`s, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations<T>(f: impl FnOnce() -> T) -> (usize, T) {
    ALLOCATIONS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    let out = f();
    COUNTING.with(|c| c.set(false));
    (ALLOCATIONS.with(Cell::get), out)
}

#[test]
fn the_counter_counts() {
    let (count, v) = allocations(|| vec![1u8; 10]);
    assert_eq!((count, v.len()), (1, 10));
}

#[test]
fn check_does_not_allocate() {
    let acl = parse(
        "topic read anon/#\nuser alice\ntopic readwrite a/#\ntopic deny a/secret\n\
         pattern readwrite dev/%c/#\npattern deny usr/%u/secret\npattern read usr/%u/#\n",
        "acl",
    )
    .expect("valid");
    let no_patterns = parse(
        "topic read anon/#\nuser alice\ntopic readwrite a/#\n",
        "acl",
    )
    .expect("valid");
    let (count, answers) = allocations(|| {
        [
            no_patterns.check(Some("alice"), "c", "a/b", Access::Write),
            no_patterns.check(None, "c", "anon/x", Access::Read),
            no_patterns.check(Some("bob"), "c", "anon/x", Access::Read),
            acl.check(Some("alice"), "c", "a/secret", Access::Write),
            acl.check(Some("bob"), "dev1", "dev/dev1/t", Access::Write),
            acl.check(Some("bob"), "c", "usr/bob/t", Access::Read),
            acl.check(Some("bob"), "c", "usr/bob/secret", Access::Read),
            acl.check(Some("b+b"), "c", "usr/b+b/t", Access::Read),
            acl.check(None, "c", "$SYS/x", Access::Write),
            acl.check(None, "c", "#", Access::Subscribe),
        ]
    });
    assert_eq!(count, 0);
    assert_eq!(
        answers,
        [true, true, false, false, true, true, false, false, false, true]
    );
}
