//! What a guest does on a primitive's page in its own window, without a
//! host call: the fast paths of Lock, RLock, Semaphore, BoundedSemaphore,
//! Event, Condition and Barrier. Each has a slow path in the host
//! (`host/src/interfaces/sync.rs`), which sleeps, wakes and reports errors,
//! on the same words; the byte offsets here are the host's `Word`s.
//!
//! Waiting is a host call (a futex wait on the shared page); a guest that
//! changes a word some process may sleep on asks the host to wake it, and
//! the page keeps a count of sleepers so that it asks only when one may
//! sleep. A process killed between the change and the wake-up it owed
//! leaves no sleeper behind: the broker, reaping it, wakes every sleeper on
//! the pages it held.

use super::Tag;
use crate::window;

/// The page's words after its first 64 bytes (the host's `MUTEX_BYTES`;
/// a lock word and its count at the start, for Lock, RLock and Condition).
const FIRST: u32 = 64;
/// Semaphore: the units left, the bound plus one (0: unbounded), and the
/// processes that may be asleep waiting for a unit.
const SEM_VALUE: u32 = FIRST;
const SEM_MAX: u32 = FIRST + 4;
const SEM_WAITERS: u32 = FIRST + 8;
/// Event: the flag, the sequence number sleepers wait on, and the
/// processes that may be asleep on it.
const EVENT_FLAG: u32 = FIRST;
const EVENT_SEQ: u32 = FIRST + 4;
const EVENT_WAITERS: u32 = FIRST + 8;
/// Condition: after the waiter list's ticket counter, the count of
/// processes that may be waiting (the host's `Waiters`).
const COND_WAITING: u32 = FIRST + 4;
/// Barrier: the parties, the processes that may be asleep, and the 64-bit
/// state (the low half the generation and the broken flag, the high half
/// the parties that arrived).
const BAR_PARTIES: u32 = FIRST;
const BAR_SLEEPERS: u32 = FIRST + 4;
const BAR_STATE: u32 = FIRST + 8;
/// The broken flag and the generation's bits of the state's low half.
const BAR_BROKEN: u64 = 1 << 31;
const BAR_GENERATION: u64 = BAR_BROKEN - 1;

/// A primitive's fast paths, by kind; `None` without a window.
#[derive(Clone, Copy)]
pub(super) enum Fast {
    None,
    Lock(FastLock),
    Semaphore(FastSemaphore),
    Event(FastEvent),
    Condition(FastCondition),
    Barrier(FastBarrier),
}

impl Fast {
    /// The fast paths of a `tag` primitive whose page is at `at` in the
    /// window.
    pub(super) fn new(tag: Tag, at: u32) -> Fast {
        match tag {
            Tag::Lock => Fast::Lock(FastLock {
                at,
                recursive: false,
            }),
            Tag::RLock => Fast::Lock(FastLock {
                at,
                recursive: true,
            }),
            Tag::Semaphore | Tag::BoundedSemaphore => Fast::Semaphore(FastSemaphore { at }),
            Tag::Event => Fast::Event(FastEvent { at }),
            Tag::Condition => Fast::Condition(FastCondition {
                lock: FastLock {
                    at,
                    recursive: true,
                },
            }),
            Tag::Barrier => Fast::Barrier(FastBarrier { at }),
        }
    }

    /// The lock of a Lock, RLock or Condition.
    pub(super) fn lock(self) -> Option<FastLock> {
        match self {
            Fast::Lock(lock) | Fast::Condition(FastCondition { lock }) => Some(lock),
            _ => None,
        }
    }
}

/// The guest's side of the host's owner lock (`host/src/sys/owner_lock.rs`):
/// the lock word holds the owner's pid (plus a waiters flag, or an
/// owner-died mark), the next word an RLock's re-entry count. Only the
/// uncontended cases are done here, each with one compare-and-swap on the
/// window; anything else (a holder, waiters, an owner that died, a
/// release by a non-holder) goes to the host, which sleeps, wakes and
/// reports errors.
#[derive(Clone, Copy)]
pub(super) struct FastLock {
    /// The lock word's window address; the count is at `at + 4`.
    at: u32,
    recursive: bool,
}

impl FastLock {
    /// Takes the lock if it is free and clean, or (RLock) held by this
    /// process; with spare CPUs, first watches a lock another process holds
    /// for a while ([`spins`]).
    pub(super) fn try_acquire(self) -> bool {
        let me = my_pid();
        if self.recursive && window::load(self.at, 4) as u32 & OWNER == me {
            let count = window::load(self.at + 4, 4);
            window::put(self.at + 4, 4, count + 1);
            return true;
        }
        let mut seen = match window::compare_exchange(self.at, 4, 0, i64::from(me)) {
            Ok(_) => return self.took(),
            Err(v) => v as u32,
        };
        // A holder in another process usually leaves within a few hundred
        // nanoseconds (critical sections are short): watching the word that
        // long is far cheaper than sleeping and being woken, as glibc's
        // adaptive mutex and parking_lot do. Watching is loads only, so the
        // holder keeps the word's cache line until it lets go; waiters
        // asleep in the host do not stop it (one of them is awake and marks
        // the word again if this process wins). Bounded, and only with a
        // CPU to spare, so a process sharing its CPU with the holder soon
        // asks the host to sleep instead.
        let mut pause = FIRST_PAUSE;
        for _ in 0..spins() {
            if seen == 0 {
                match window::compare_exchange(self.at, 4, 0, i64::from(me)) {
                    Ok(_) => return self.took(),
                    Err(v) => seen = v as u32,
                }
                continue;
            }
            // An owner that died, flags without an owner, or this very
            // process (a Lock is not re-entrant): the host decides.
            let owner = seen & OWNER;
            if seen & !(OWNER | WAITERS) != 0 || owner == 0 || owner == me {
                return false;
            }
            backoff(&mut pause);
            seen = window::load(self.at, 4) as u32;
        }
        false
    }

    /// Finishes an acquire whose compare-and-swap put this process's pid
    /// in a free lock word.
    fn took(self) -> bool {
        // Only an RLock keeps a count (a Lock's is never read).
        if self.recursive {
            window::put(self.at + 4, 4, 1);
        }
        true
    }

    /// Releases the lock if this process holds it and nobody waits.
    pub(super) fn try_release(self) -> bool {
        let me = i64::from(my_pid());
        if !self.recursive {
            return window::compare_exchange(self.at, 4, me, 0).is_ok();
        }
        if window::load(self.at, 4) != me {
            return false;
        }
        let count = window::load(self.at + 4, 4);
        if count > 1 {
            window::put(self.at + 4, 4, count - 1);
            return true;
        }
        window::put(self.at + 4, 4, 0);
        if window::compare_exchange(self.at, 4, me, 0).is_ok() {
            return true;
        }
        // A waiter came: the host releases and wakes it.
        window::put(self.at + 4, 4, count);
        false
    }
}

/// The pid bits of a lock word.
const OWNER: u32 = (1 << 30) - 1;
/// The lock word's flag: a process may be asleep on it (the host's
/// `WAITERS`).
const WAITERS: u32 = 1 << 31;

/// Looks at a busy lock word at most this many times before asking the
/// host to wait, with spare CPUs: with [`backoff`] between looks (from
/// [`FIRST_PAUSE`], about 28,000 rounds in all), this is some 25–50 µs,
/// about what sleeping and being woken costs on a busy machine.
const SPINS: u32 = 30;

/// Waits `pause` rounds without touching shared memory, and doubles
/// `pause` up to [`MAX_PAUSE`]. Looking less and less often leaves the
/// holder its cache line: a holder that takes the lock again right after
/// releasing it does so without a transfer between CPUs, as a thread does
/// with a native mutex (parking_lot's `SpinWait`).
fn backoff(pause: &mut u32) {
    for i in 0..*pause {
        // Kept, not optimized away: wasm has no pause instruction.
        std::hint::black_box(i);
    }
    *pause = (*pause * 2).min(MAX_PAUSE);
}

/// The first [`backoff`] of a process that found the lock busy, in rounds:
/// a waiter that looked again at once, and again and again, would take the
/// word's cache line from a holder that retakes the lock right after each
/// release, and catch it free within a few looks: the lock would change
/// hands every few operations, each time moving its line and the data's
/// between CPUs. Two processes × 100k locked increments, 12 alternating
/// runs each: median 22.7 M ops/s starting at 1 round, 31.0 M at 128.
const FIRST_PAUSE: u32 = 128;

/// The longest [`backoff`], in rounds of a nanosecond or so: a microsecond
/// between looks lets a holder that takes the lock again and again do so
/// many times without a transfer (two processes × 100k locked increments:
/// about 15 M ops/s with 64 rounds, 25–30 M with 1024), and costs a waiter
/// at most that microsecond after the lock is let go.
const MAX_PAUSE: u32 = 1024;

/// How many times to look at a busy word before sleeping: [`SPINS`] with a
/// CPU to spare, else none (the holder may be waiting for this very CPU).
/// The host's CPU count is read once per process.
fn spins() -> u32 {
    thread_local! {
        static SPARE: bool = crate::bindings::runtime::cpu_count() > 1;
    }
    if SPARE.with(|s| *s) {
        SPINS
    } else {
        0
    }
}

/// This process's pid, as lock words hold it.
fn my_pid() -> u32 {
    thread_local! {
        static PID: u32 = crate::bindings::runtime::worker().pid & OWNER;
    }
    PID.with(|p| *p)
}

/// A Semaphore's or BoundedSemaphore's page in the window: taking a unit
/// that is there and giving one back within the bound are one
/// compare-and-swap each; waiting for a unit, and refusing one over the
/// bound, are the host's.
#[derive(Clone, Copy)]
pub(super) struct FastSemaphore {
    at: u32,
}

impl FastSemaphore {
    /// Takes a unit if one is left.
    pub(super) fn try_acquire(self) -> bool {
        let mut v = window::load(self.at + SEM_VALUE, 4);
        while v > 0 {
            match window::compare_exchange(self.at + SEM_VALUE, 4, v, v - 1) {
                Ok(_) => return true,
                Err(now) => v = now,
            }
        }
        false
    }

    /// Gives a unit back unless that would pass the bound (then the host
    /// refuses it, with its error). The caller then asks the host to wake a
    /// sleeper if [`may_sleep`](Self::may_sleep).
    pub(super) fn try_release(self) -> bool {
        let max = window::load(self.at + SEM_MAX, 4);
        let mut v = window::load(self.at + SEM_VALUE, 4);
        loop {
            if max != 0 && v + 1 >= max || v >= i64::from(u32::MAX) {
                return false;
            }
            match window::compare_exchange(self.at + SEM_VALUE, 4, v, v + 1) {
                Ok(_) => return true,
                Err(now) => v = now,
            }
        }
    }

    /// Whether a process may be asleep waiting for a unit. Read after the
    /// unit was given back: a waiter counts itself before its futex wait
    /// compares the value, so either it is counted here or its wait sees
    /// the unit (the window's atomics are sequentially consistent).
    pub(super) fn may_sleep(self) -> bool {
        window::load(self.at + SEM_WAITERS, 4) != 0
    }

    /// The units left (Python's `get_value()`).
    pub(super) fn value(self) -> u32 {
        window::load(self.at + SEM_VALUE, 4) as u32
    }
}

/// An Event's page in the window: reading, clearing, and setting it with
/// nobody asleep on it are done here; a `set` that may have sleepers is
/// the host's, which wakes them all.
#[derive(Clone, Copy)]
pub(super) struct FastEvent {
    at: u32,
}

impl FastEvent {
    /// Whether the flag is set.
    pub(super) fn is_set(self) -> bool {
        window::load(self.at + EVENT_FLAG, 4) != 0
    }

    /// Sets the flag and moves the sequence on (a sleeper about to wait
    /// then does not); `false` if some process may be asleep on it, and
    /// the host must wake them.
    pub(super) fn try_set(self) -> bool {
        window::store(self.at + EVENT_FLAG, 4, 1);
        window::fetch_add(self.at + EVENT_SEQ, 4, 1);
        window::load(self.at + EVENT_WAITERS, 4) == 0
    }

    /// Clears the flag (nobody sleeps on a clear).
    pub(super) fn clear(self) {
        window::store(self.at + EVENT_FLAG, 4, 0);
    }
}

/// A Condition's page in the window: its lock is an RLock's
/// ([`FastLock`]), and a `notify` by the holder with no waiter counted is
/// done here (it wakes nobody); waiting, and notifying waiters, are the
/// host's.
#[derive(Clone, Copy)]
pub(super) struct FastCondition {
    lock: FastLock,
}

impl FastCondition {
    /// Whether this process holds the lock and nobody waits, so that a
    /// notify has nothing to do. Waiters count themselves while holding the
    /// lock, before they release it, so the holder's read sees every
    /// process that waited before its notify.
    pub(super) fn nobody_to_notify(self) -> bool {
        window::load(self.lock.at, 4) as u32 & OWNER == my_pid()
            && window::load(self.lock.at + COND_WAITING, 4) == 0
    }
}

/// A Barrier's page in the window: the last party to arrive moves the
/// barrier to the next generation here, with one compare-and-swap of the
/// state word, and asks the host to wake the others only if one may be
/// asleep; `broken` and `n_waiting` are reads. The other parties arrive
/// and sleep in the host, on the same word.
#[derive(Clone, Copy)]
pub(super) struct FastBarrier {
    at: u32,
}

/// What [`FastBarrier::try_pass`] did.
pub(super) enum Pass {
    /// Arrived last, with this index; `true` if the host must wake the
    /// others.
    Last(u32, bool),
    /// The barrier is broken.
    Broken,
    /// Not the last to arrive: the host's `wait` arrives and sleeps.
    NotLast,
}

impl FastBarrier {
    fn state(self) -> u64 {
        window::load(self.at + BAR_STATE, 8) as u64
    }

    /// Arrives if this party is the last one of the generation (as the
    /// host's `barrier_wait` does).
    pub(super) fn try_pass(self) -> Pass {
        let parties = window::load(self.at + BAR_PARTIES, 4) as u32;
        let mut now = self.state();
        loop {
            if now & BAR_BROKEN != 0 {
                return Pass::Broken;
            }
            let index = (now >> 32) as u32;
            if index.saturating_add(1) < parties {
                return Pass::NotLast;
            }
            let next = (now & BAR_GENERATION).wrapping_add(1) & BAR_GENERATION;
            match window::compare_exchange(self.at + BAR_STATE, 8, now as i64, next as i64) {
                // Read after the state changed: a sleeper counts itself
                // before its wait compares the state, so either it is
                // counted here or its wait returns at once.
                Ok(_) => return Pass::Last(index, window::load(self.at + BAR_SLEEPERS, 4) != 0),
                Err(seen) => now = seen as u64,
            }
        }
    }

    /// Whether the barrier is broken.
    pub(super) fn broken(self) -> bool {
        self.state() & BAR_BROKEN != 0
    }

    /// The parties waiting now.
    pub(super) fn arrived(self) -> u32 {
        (self.state() >> 32) as u32
    }
}
