//! A memory budget for a script run, counted by the allocator itself.
//!
//! rhai's size limits count strings, arrays and maps where it checks them, but not what a
//! closure or a curried function pointer captures, so a script could hold gigabytes through
//! them. Instead, every byte a thread of a run allocates (and frees) is charged to the run's
//! [`Budget`]; the engine's progress hook, called between operations, stops the run once
//! the budget is spent. One operation allocates at most about a string's size limit, so a
//! run overshoots its budget by little.
//!
//! What it does not do: count memory a run's threads did not allocate (the runtime's worker
//! threads, the engine built before the run), or refuse an allocation (a failed allocation
//! aborts a Rust process; stopping the script between operations does not).

use std::alloc::{GlobalAlloc, Layout};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use mimalloc::MiMalloc;

/// The bytes one run may hold at once: every script thread of it, `parallel` branches
/// included.
pub const SCRIPT_MAX_BYTES: usize = 256 << 20;
/// The bytes one plugin rule's handlers may hold (they answer anonymous `/ask` questions).
pub const RULE_MAX_BYTES: usize = 16 << 20;

/// What a run has allocated and not freed, against its bound.
pub struct Budget {
    used: AtomicIsize,
    max: isize,
}

impl Budget {
    pub fn new(max: usize) -> Arc<Budget> {
        Arc::new(Budget {
            used: AtomicIsize::new(0),
            max: isize::try_from(max).unwrap_or(isize::MAX),
        })
    }

    pub fn max(&self) -> usize {
        self.max.unsigned_abs()
    }

    /// Bytes allocated and not yet freed by the threads charged to it (negative when they
    /// freed more than they allocated under it).
    pub fn used(&self) -> isize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn spent(&self) -> bool {
        self.used.load(Ordering::Relaxed) > self.max
    }
}

thread_local! {
    // Read inside the allocator: a const initializer and no destructor, so touching it never
    // allocates.
    static CHARGED: Cell<*const Budget> = const { Cell::new(std::ptr::null()) };
    // Keeps the budget alive while CHARGED points at it.
    static HELD: RefCell<Option<Arc<Budget>>> = const { RefCell::new(None) };
}

/// The process's allocator: mimalloc, charging the calling thread's budget if it has one.
/// (glibc's malloc took a third of the leader's CPU under batch load: see the README's
/// Performance section.)
pub struct CountingAllocator;

fn charge(bytes: isize) {
    let _ = CHARGED.try_with(|budget| {
        let budget = budget.get();
        if !budget.is_null() {
            // SAFETY: CHARGED points into the Arc that HELD keeps alive on this thread, and
            // is cleared before HELD lets go of it.
            unsafe { &*budget }.used.fetch_add(bytes, Ordering::Relaxed);
        }
    });
}

// SAFETY: every call goes to mimalloc unchanged; the charge is bookkeeping.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { MiMalloc.alloc(layout) };
        if !p.is_null() {
            charge(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { MiMalloc.alloc_zeroed(layout) };
        if !p.is_null() {
            charge(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { MiMalloc.dealloc(ptr, layout) };
        charge(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { MiMalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            charge(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Charges this thread's allocations to `budget` until the guard drops.
pub fn enter(budget: Arc<Budget>) -> Charging {
    let pointer = Arc::as_ptr(&budget);
    HELD.with(|held| *held.borrow_mut() = Some(budget));
    CHARGED.with(|charged| charged.set(pointer));
    Charging
}

/// The budget this thread is charged to, for a thread it starts (a `parallel` branch).
pub fn current() -> Option<Arc<Budget>> {
    HELD.with(|held| held.borrow().clone())
}

/// Whether this thread's run has spent its budget; the message to stop it with if so.
/// Cheap enough for every operation: a thread-local read and an atomic load.
pub fn over_budget() -> Option<String> {
    CHARGED.with(|charged| {
        let budget = charged.get();
        if budget.is_null() {
            return None;
        }
        // SAFETY: as in `charge`.
        let budget = unsafe { &*budget };
        budget.spent().then(|| {
            format!(
                "the script used more than {} MiB of memory",
                budget.max() >> 20
            )
        })
    })
}

pub struct Charging;

impl Drop for Charging {
    fn drop(&mut self) {
        CHARGED.with(|charged| charged.set(std::ptr::null()));
        let _ = HELD.try_with(|held| held.borrow_mut().take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a thread allocates is charged to its budget, and what it frees is given back.
    #[test]
    fn a_threads_allocations_are_charged_to_its_budget() {
        let budget = Budget::new(1 << 20);
        std::thread::spawn({
            let budget = budget.clone();
            move || {
                let _charging = enter(budget.clone());
                // black_box: an allocation nothing reads may be optimized away in a release
                // build, and then nothing is charged.
                let big = std::hint::black_box(vec![1u8; 2 << 20]);
                assert!(budget.spent(), "2 MiB is over a 1 MiB budget");
                assert!(over_budget().is_some());
                drop(big);
                assert!(!budget.spent(), "freed memory is given back");
            }
        })
        .join()
        .expect("thread");
    }
}
