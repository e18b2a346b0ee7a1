//! What a run may make its parent hold: a memory budget in bytes
//! (`--host-memory`) and a count of live worker processes
//! (`--max-processes`); and what it may make the kernel hold outside any
//! process's heap: shared memory (`--shared-memory`: regions and queues'
//! socket buffers) and live objects (`--max-objects`: queues, regions,
//! locks and other primitives — what holds descriptors in the parent;
//! manager containers hold only memory, which `--host-memory` pays for).
//!
//! Everything the broker keeps for guests — spilled queue items, manager
//! containers and their entries, pool inputs and results waiting to be
//! read, process names and arguments, handles in transit, the objects
//! themselves — takes its bytes from one [`Budget`] before it is stored and
//! gives them back when it is let go. A request that would go past the
//! budget is refused with a `limit` error in the guest; the parent never
//! grows past it for guests' sake.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::wire::CallError;

/// A run's budget of something: bytes the parent holds on its guests'
/// behalf (`--host-memory`), bytes of shared memory (`--shared-memory`),
/// live objects (`--max-objects`).
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u64,
    used: AtomicU64,
    of: Of,
}

/// What a [`Budget`] counts, for its refusals.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Of {
    /// Bytes the parent holds (`--host-memory`).
    HostMemory,
    /// Bytes of shared memory and socket buffers (`--shared-memory`).
    SharedMemory,
    /// Live queues, regions and primitives (`--max-objects`).
    Objects,
}

impl Budget {
    /// A budget of `limit` bytes of the parent's memory.
    pub(crate) fn new(limit: u64) -> Arc<Budget> {
        Budget::of(Of::HostMemory, limit)
    }

    /// A budget of `limit` of `of`.
    pub(crate) fn of(of: Of, limit: u64) -> Arc<Budget> {
        Arc::new(Budget {
            limit,
            used: AtomicU64::new(0),
            of,
        })
    }

    /// Why `what` asking for `n` more is refused, with `used` taken.
    fn refusal(&self, what: &str, n: u64, used: u64) -> CallError {
        let left = self.limit.saturating_sub(used);
        let limit = self.limit;
        CallError::Limit(match self.of {
            Of::HostMemory => format!(
                "{what} needs {n} bytes and the run's host memory budget of {limit} has {left} \
                 left (--host-memory)"
            ),
            Of::SharedMemory => format!(
                "{what} needs {n} bytes of shared memory and the run's cap of {limit} has {left} \
                 left (--shared-memory)"
            ),
            Of::Objects => format!(
                "{what}: this run may have at most {limit} queues, regions, locks and other \
                 primitives alive at once ({used} are; --max-objects)"
            ),
        })
    }

    /// Takes `bytes` from the budget, or refuses with a `limit` error
    /// saying what (`what`) asked for them.
    pub(crate) fn take(&self, bytes: u64, what: &str) -> Result<(), CallError> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let next = used.saturating_add(bytes);
            if next > self.limit {
                return Err(self.refusal(what, bytes, used));
            }
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(now) => used = now,
            }
        }
    }

    /// Gives back `bytes` taken before.
    pub(crate) fn give_back(&self, bytes: u64) {
        let before = self.used.fetch_sub(bytes, Ordering::AcqRel);
        debug_assert!(before >= bytes, "gave back more than was taken");
    }

    /// Takes `bytes`, to be given back when the returned [`Charge`] drops.
    pub(crate) fn charge(self: &Arc<Self>, bytes: u64, what: &str) -> Result<Charge, CallError> {
        self.take(bytes, what)?;
        Ok(Charge {
            budget: self.clone(),
            bytes,
        })
    }

    /// Bytes in use now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

/// Bytes taken from a [`Budget`], given back on drop.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

/// The run's live worker processes, against `--max-processes`.
#[derive(Debug)]
pub(crate) struct ProcessCount {
    limit: usize,
    live: AtomicUsize,
}

impl ProcessCount {
    /// A count capped at `limit`.
    pub(crate) fn new(limit: usize) -> Arc<ProcessCount> {
        Arc::new(ProcessCount {
            limit,
            live: AtomicUsize::new(0),
        })
    }

    /// Places for `n` more processes, held until the returned [`Places`]
    /// drops; a `limit` error if the run has no room for them.
    pub(crate) fn reserve(self: &Arc<Self>, n: usize, what: &str) -> Result<Places, CallError> {
        let mut live = self.live.load(Ordering::Relaxed);
        loop {
            let next = live.saturating_add(n);
            if next > self.limit {
                return Err(CallError::Limit(format!(
                    "{what} needs {n} more processes and this run may have at most {} alive at \
                     once ({live} are; --max-processes)",
                    self.limit
                )));
            }
            match self
                .live
                .compare_exchange_weak(live, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    return Ok(Places {
                        count: self.clone(),
                        n,
                    })
                }
                Err(now) => live = now,
            }
        }
    }

    /// Processes alive (or reserved) now.
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

/// Places among a run's processes, given back on drop.
#[derive(Debug)]
pub(crate) struct Places {
    count: Arc<ProcessCount>,
    n: usize,
}

impl Drop for Places {
    fn drop(&mut self) {
        self.count.live.fetch_sub(self.n, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_refuses_past_its_limit_and_takes_back_what_drops() {
        let budget = Budget::new(100);
        let a = budget.charge(60, "a").unwrap();
        assert!(matches!(budget.charge(41, "b"), Err(CallError::Limit(_))));
        let b = budget.charge(40, "b").unwrap();
        assert_eq!(budget.used(), 100);
        drop(a);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn each_budget_names_its_own_flag() {
        let objects = Budget::of(Of::Objects, 1);
        let _one = objects.charge(1, "a queue").unwrap();
        let Err(CallError::Limit(why)) = objects.charge(1, "a lock") else {
            panic!("over the cap")
        };
        assert!(
            why.contains("--max-objects") && why.contains("at most 1"),
            "{why}"
        );
        let shared = Budget::of(Of::SharedMemory, 10);
        let Err(CallError::Limit(why)) = shared.charge(11, "a region") else {
            panic!("over the cap")
        };
        assert!(why.contains("--shared-memory"), "{why}");
    }

    #[test]
    fn places_are_counted_until_dropped() {
        let count = ProcessCount::new(4);
        let three = count.reserve(3, "a pool").unwrap();
        let Err(CallError::Limit(why)) = count.reserve(2, "another pool") else {
            panic!("over the cap")
        };
        assert!(why.contains("at most 4"), "{why}");
        let one = count.reserve(1, "a process").unwrap();
        drop(three);
        assert_eq!(count.live(), 1);
        drop(one);
        assert_eq!(count.live(), 0);
    }
}
