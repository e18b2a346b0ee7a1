//! `mpwasm:runtime/sync`: Lock, RLock, Semaphore, BoundedSemaphore, Event,
//! Condition, Barrier — across processes, robust against dying holders.
//!
//! Hops of `lock.acquire()`:
//! 1. `Lock::new` → `Call::SyncCreate`: the broker ([`create`]) makes a
//!    shared page and hands it over; the worker maps it ([`SyncHandle`]),
//!    and for a guest with a window also into the window;
//! 2. a guest with a window takes a free Lock or RLock itself: one
//!    compare-and-swap of its pid into the lock word ([`OwnerLock`]). Only a
//!    busy lock is a host function here, which waits on the word's futex;
//!    no message, no broker either way;
//! 3. if the holder died, the broker, reaping it, marks the words it owned
//!    owner-died and wakes the waiters ([`repair_locks`]): the next
//!    acquirer gets the lock and the `owner-died` error (it holds the lock).
//!    A Condition's lock is the same [`OwnerLock`] (re-entrant, as an
//!    RLock). A party that dies breaks its barriers: the broker sets the
//!    broken flag when it reaps the process ([`break_barriers`]).
//!
//! The page: an [`OwnerLock`] (Lock, RLock, Condition) in its first
//! [`MUTEX_BYTES`], then the kind's words (see [`Word`]). Semaphore and
//! Event waits are futex waits on a sequence word: a waiter keeps no state
//! in the page, so a dead waiter cannot wedge anyone. A Condition keeps its
//! waiters in a FIFO of per-waiter slots ([`Waiters`]), so that `notify(n)`
//! wakes at most `n` of them, and counts them, so that a guest holding the
//! lock notifies nobody without a host call; the broker frees the slot of a
//! waiter that died and passes a notify it was given on
//! ([`forget_waiters`]). A Barrier is one 64-bit state word — the
//! generation and the broken flag in its low half, which sleepers futex-wait
//! on, the arrivals in its high half — so that an arrival, and the last
//! arrival's move to the next generation, is one compare-and-swap, which a
//! guest's last arrival does in its own code; only the others sleep in the
//! host.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use wasmtime::component::Resource;

use super::{unexpected, HostResult};
use crate::bindings::{sync, types};
use crate::broker::{Answer, Broker, Object};
use crate::sys::ipc::{self, Deadline, SharedMap};
use crate::sys::owner_lock::{OwnerLock, OWNER};
use crate::sys::robust::{Acquired, LockError, MUTEX_BYTES};
use crate::sys::waiters::{Waiters, SIGNALED};
use crate::wire::{Call, CallError, Reply, SyncKind};
use crate::worker::child::WorkerState;

/// Word indices after the first [`MUTEX_BYTES`], by kind.
struct Word;

impl Word {
    const FIRST: usize = MUTEX_BYTES / 4;
    // Semaphore.
    const SEM_VALUE: usize = Self::FIRST;
    const SEM_MAX: usize = Self::FIRST + 1;
    const SEM_WAITERS: usize = Self::FIRST + 2;
    // Event.
    const EVENT_FLAG: usize = Self::FIRST;
    const EVENT_SEQ: usize = Self::FIRST + 1;
    /// Processes in (or about to enter) a futex wait on `EVENT_SEQ`: a
    /// guest that sets the event in its own code asks the host to wake
    /// only when this is not zero.
    const EVENT_WAITERS: usize = Self::FIRST + 2;
    // Condition: its waiter list fills the rest of the page (the ticket
    // counter, the count of waiters the guest reads, then the slots).
    const COND_WAITERS: usize = Self::FIRST;
    // Barrier.
    const BAR_PARTIES: usize = Self::FIRST;
    /// Processes in (or about to enter) a futex wait on the state's low
    /// half: the last arrival asks for a wake-up only when this is not 0.
    const BAR_SLEEPERS: usize = Self::FIRST + 1;
    /// The state ([`BarState`]), 64 bits: 8-aligned.
    const BAR_STATE: usize = Self::FIRST + 2;
    /// The generation a `reset` started: waiters of the one before it are
    /// released as broken, not as passed.
    const BAR_RESET_GEN: usize = Self::FIRST + 4;
}

const _: () = assert!(Word::BAR_STATE % 2 == 0);

/// A barrier's state word: the low half (a futex word) is the broken flag
/// and the generation, the high half the parties that arrived in it.
#[derive(Clone, Copy)]
struct BarState(u64);

impl BarState {
    /// The broken flag, in the low half.
    const BROKEN: u32 = 1 << 31;
    /// The generation's bits, in the low half.
    const GENERATION: u32 = Self::BROKEN - 1;

    fn low(self) -> u32 {
        self.0 as u32
    }
    fn generation(self) -> u32 {
        self.low() & Self::GENERATION
    }
    fn broken(self) -> bool {
        self.low() & Self::BROKEN != 0
    }
    fn arrived(self) -> u32 {
        (self.0 >> 32) as u32
    }
    /// The first state of the generation after this one: nobody arrived.
    fn next(self) -> BarState {
        BarState(u64::from(
            self.generation().wrapping_add(1) & Self::GENERATION,
        ))
    }
}

/// Lock, RLock and Condition: an [`OwnerLock`] in the page's first two
/// words, which guests with a window take and release in their own code.
fn is_owner_lock(kind: SyncKind) -> bool {
    matches!(kind, SyncKind::Lock | SyncKind::RLock | SyncKind::Condition)
}

/// Kinds whose page is also mapped into a guest's window, where the guest
/// SDK does the operations that need no sleep: Lock, RLock and Condition
/// (the [`OwnerLock`]; a Condition's `notify` with no waiter counted),
/// Semaphore (take a unit if one is left, give one back, asking the host to
/// wake a waiter only if `SEM_WAITERS` says one may sleep), Event
/// (`is_set`, `clear`, a `wait` on a set event, a `set` nobody waits for,
/// by `EVENT_WAITERS`) and Barrier (the last arrival, `broken`,
/// `n_waiting`). The guest's offsets are the [`Word`]s here, in bytes.
fn in_window(kind: SyncKind) -> bool {
    is_owner_lock(kind)
        || matches!(
            kind,
            SyncKind::Semaphore { .. } | SyncKind::Event | SyncKind::Barrier { .. }
        )
}

/// The [`OwnerLock`] of a Lock, RLock or Condition page, for process `me`.
fn owner_lock(kind: SyncKind, page: &SharedMap, me: u32) -> Option<OwnerLock<'_>> {
    is_owner_lock(kind).then(|| OwnerLock {
        word: page.word(0),
        count: page.word(1),
        recursive: kind != SyncKind::Lock,
        me,
    })
}

// ---------------------------------------------------------------------------
// The worker's side.

/// A primitive in a guest's resource table.
pub struct SyncHandle {
    id: u64,
    kind: SyncKind,
    page: SharedMap,
    /// The page in the guest's window, if it has one and the kind is used
    /// there ([`in_window`]).
    window: Option<crate::sys::window::Mapping>,
    /// This worker process, as a lock word names its owner (the handle
    /// never leaves the process that made it).
    me: u32,
}

impl SyncHandle {
    fn from_reply(reply: Reply, mut fds: Vec<OwnedFd>) -> wasmtime::Result<Self> {
        let Reply::Sync { id, kind } = reply else {
            return Err(unexpected(reply));
        };
        let (Some(fd), true) = (fds.pop(), fds.is_empty()) else {
            return Err(wasmtime::Error::msg("a primitive arrived without its page"));
        };
        let page = SharedMap::map(fd, SharedMap::PAGE_WORDS * 4)?;
        Ok(SyncHandle {
            id,
            kind,
            page,
            window: None,
            me: crate::sys::owner_lock::me(),
        })
    }

    fn word(&self, i: usize) -> &AtomicU32 {
        self.page.word(i)
    }

    fn lock(&self, deadline: Deadline) -> Result<(), types::Error> {
        let Some(lock) = owner_lock(self.kind, &self.page, self.me) else {
            return Err(not_for(self.kind, "acquire"));
        };
        match lock.lock(deadline) {
            Ok(Acquired::Clean) => Ok(()),
            Ok(Acquired::OwnerDied) => Err(types::Error::OwnerDied),
            Err(LockError::Timeout) => Err(types::Error::Timeout),
            Err(LockError::Os(libc::EDEADLK)) => Err(types::Error::Other(
                "this process already holds the lock (it is not re-entrant: use RLock)".into(),
            )),
            Err(LockError::Os(e)) => Err(types::Error::Other(
                std::io::Error::from_raw_os_error(e).to_string(),
            )),
        }
    }

    fn unlock(&self) -> Result<(), types::Error> {
        let Some(lock) = owner_lock(self.kind, &self.page, self.me) else {
            return Err(not_for(self.kind, "release"));
        };
        lock.unlock()
            .map_err(|_| types::Error::Other("release of a lock this process does not hold".into()))
    }

    /// How many times this process holds a Condition's lock (0: not at
    /// all). The count is the page's, which the guest's own acquires and
    /// releases keep too.
    fn depth(&self) -> u32 {
        match owner_lock(self.kind, &self.page, self.me) {
            Some(lock) if lock.word.load(Ordering::Acquire) & OWNER == self.me => {
                lock.count.load(Ordering::Acquire)
            }
            _ => 0,
        }
    }

    fn acquire(&self, deadline: Deadline) -> Result<(), types::Error> {
        match self.kind {
            SyncKind::Semaphore { .. } => self.sem_acquire(deadline),
            SyncKind::Lock | SyncKind::RLock | SyncKind::Condition => self.lock(deadline),
            kind => Err(not_for(kind, "acquire")),
        }
    }

    fn release(&self) -> Result<(), types::Error> {
        match self.kind {
            SyncKind::Semaphore { .. } => self.sem_release(),
            SyncKind::Lock | SyncKind::RLock | SyncKind::Condition => self.unlock(),
            kind => Err(not_for(kind, "release")),
        }
    }

    fn sem_acquire(&self, deadline: Deadline) -> Result<(), types::Error> {
        let value = self.word(Word::SEM_VALUE);
        loop {
            let v = value.load(Ordering::Acquire);
            if v > 0 {
                if value
                    .compare_exchange(v, v - 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return Ok(());
                }
                continue;
            }
            if deadline.passed() {
                return Err(types::Error::Timeout);
            }
            // Counted before the wait compares the value (sequentially
            // consistent, as the guest's window atomics are): a releaser
            // that misses the count has already made the value non-zero,
            // so the wait returns at once.
            self.word(Word::SEM_WAITERS).fetch_add(1, Ordering::SeqCst);
            ipc::futex_wait(value, 0, deadline);
            self.word(Word::SEM_WAITERS).fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn sem_release(&self) -> Result<(), types::Error> {
        let value = self.word(Word::SEM_VALUE);
        let max = self.word(Word::SEM_MAX).load(Ordering::Acquire);
        let released = value.fetch_update(Ordering::SeqCst, Ordering::Acquire, |v| {
            (max == 0 || v.saturating_add(1) < max).then_some(v + 1)
        });
        if released.is_err() {
            return Err(types::Error::Other(
                "semaphore released too many times".into(),
            ));
        }
        if self.word(Word::SEM_WAITERS).load(Ordering::SeqCst) > 0 {
            ipc::futex_wake(value, 1);
        }
        Ok(())
    }

    fn event_wait(&self, deadline: Deadline) -> u32 {
        loop {
            let seq = self.word(Word::EVENT_SEQ).load(Ordering::Acquire);
            if self.word(Word::EVENT_FLAG).load(Ordering::Acquire) != 0 {
                return 1;
            }
            if deadline.passed() {
                return 0;
            }
            // Counted before the wait compares the sequence word: a setter
            // that misses the count has already moved the sequence on, so
            // the wait returns at once.
            let waiters = self.word(Word::EVENT_WAITERS);
            waiters.fetch_add(1, Ordering::SeqCst);
            ipc::futex_wait(self.word(Word::EVENT_SEQ), seq, deadline);
            waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Releases the condition's lock however deep it is held, waits for a
    /// notify, and takes the lock back as deep. `1` if notified, `0` on
    /// timeout.
    fn condition_wait(&self, deadline: Deadline) -> Result<u32, types::Error> {
        let depth = self.depth();
        if depth == 0 {
            return Err(types::Error::Other(
                "cannot wait on an un-acquired condition".into(),
            ));
        }
        let tag = waiter_tag()?;
        // Enlisted under the lock, so a notify after our release sees us.
        let slot = self.waiters().enlist(tag).ok_or_else(|| {
            types::Error::Limit(format!(
                "more than {} processes waiting on one condition",
                self.waiters().capacity()
            ))
        })?;
        // Released however deep it is held: one release of depth 1.
        self.word(1).store(1, Ordering::Release);
        self.unlock()?;
        let notified = self.waiters().wait(slot, tag, deadline);
        let relocked = self.lock(Deadline::after(None));
        if matches!(relocked, Ok(()) | Err(types::Error::OwnerDied)) {
            self.word(1).store(depth, Ordering::Release);
        }
        relocked.map(|()| u32::from(notified))
    }

    fn waiters(&self) -> Waiters<'_> {
        Waiters::new(&self.page, Word::COND_WAITERS)
    }

    fn bar_state(&self) -> &AtomicU64 {
        self.page.word64(Word::BAR_STATE)
    }

    /// Arrives at the barrier; if last, moves it to the next generation and
    /// wakes the others; else sleeps until that happens (or the barrier
    /// breaks, or `deadline` passes, which breaks it). This party's arrival
    /// index. A guest's last arrival does the same compare-and-swap in its
    /// own code (the SDK's `FastBarrier`).
    fn barrier_wait(&self, deadline: Deadline) -> Result<u32, types::Error> {
        let parties = self.word(Word::BAR_PARTIES).load(Ordering::Acquire);
        let state = self.bar_state();
        let mut now = BarState(state.load(Ordering::SeqCst));
        let (index, mine) = loop {
            if now.broken() {
                return Err(types::Error::Broken);
            }
            let index = now.arrived();
            let last = index.saturating_add(1) >= parties;
            let next = if last {
                now.next()
            } else {
                BarState(now.0 + (1 << 32))
            };
            match state.compare_exchange(now.0, next.0, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) if last => {
                    self.bar_wake(false);
                    return Ok(index);
                }
                Ok(_) => break (index, now.generation()),
                Err(seen) => now = BarState(seen),
            }
        };
        let sleepers = self.word(Word::BAR_SLEEPERS);
        // Counted before the state is read for the wait: a last arrival
        // that misses the count has already moved the generation on, so
        // the wait returns at once.
        sleepers.fetch_add(1, Ordering::SeqCst);
        let passed = loop {
            let now = BarState(state.load(Ordering::SeqCst));
            if now.generation() != mine {
                let reset = self.word(Word::BAR_RESET_GEN).load(Ordering::Acquire);
                // A reset while we waited breaks our wait (Python's rule);
                // a normal release passes it.
                break reset != mine.wrapping_add(1) & BarState::GENERATION;
            }
            if now.broken() {
                break false;
            }
            if deadline.passed() {
                // Python: a timed-out wait breaks the barrier for everyone.
                break_page(&self.page);
                break false;
            }
            ipc::futex_wait(self.word(Word::BAR_STATE), now.low(), deadline);
        };
        // Saturating: a page an adversary zeroed does not wrap it.
        let _ = sleepers.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if passed {
            Ok(index)
        } else {
            Err(types::Error::Broken)
        }
    }

    /// Wakes every process asleep on the barrier (`always`, or when one may
    /// be: `BAR_SLEEPERS`, read after the state changed).
    fn bar_wake(&self, always: bool) {
        if always || self.word(Word::BAR_SLEEPERS).load(Ordering::SeqCst) != 0 {
            ipc::futex_wake_all(self.word(Word::BAR_STATE));
        }
    }

    /// Back to the initial state, in a new generation whose waiters of the
    /// one before are released as broken. The barrier is broken first, so
    /// that no pass completes meanwhile: an arrival during a reset gets
    /// `broken`.
    fn barrier_reset(&self) {
        let state = self.bar_state();
        loop {
            let now = BarState(state.fetch_or(u64::from(BarState::BROKEN), Ordering::SeqCst));
            let broken = BarState(now.0 | u64::from(BarState::BROKEN));
            let next = now.next();
            self.word(Word::BAR_RESET_GEN)
                .store(next.generation(), Ordering::SeqCst);
            // Fails only if another reset finished meanwhile: do ours after.
            if state
                .compare_exchange(broken.0, next.0, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                break;
            }
        }
        self.bar_wake(true);
    }
}

/// Sets a barrier page's broken flag and wakes its waiters.
fn break_page(page: &SharedMap) {
    page.word64(Word::BAR_STATE)
        .fetch_or(u64::from(BarState::BROKEN), Ordering::SeqCst);
    ipc::futex_wake_all(page.word(Word::BAR_STATE));
}

/// This process's tag in a condition's waiter list: its pid, which the
/// broker knows too (to forget the waiter if it dies).
fn waiter_tag() -> Result<u32, types::Error> {
    let pid = std::process::id();
    if pid == 0 || pid & SIGNALED != 0 {
        return Err(types::Error::Other(format!(
            "pid {pid} cannot tag a condition waiter"
        )));
    }
    Ok(pid)
}

fn not_for(kind: SyncKind, what: &str) -> types::Error {
    types::Error::Other(format!("{what} is not an operation of {kind:?}"))
}

impl WorkerState {
    fn sync_object(&mut self, handle: &Resource<SyncHandle>) -> wasmtime::Result<&SyncHandle> {
        Ok(self.table.get(handle)?)
    }
}

impl sync::HostSyncObject for WorkerState {
    fn acquire(&mut self, handle: Resource<SyncHandle>, timeout_ms: Option<u64>) -> HostResult<()> {
        Ok(self
            .sync_object(&handle)?
            .acquire(Deadline::after_ms(timeout_ms)))
    }

    fn release(&mut self, handle: Resource<SyncHandle>) -> HostResult<()> {
        Ok(self.sync_object(&handle)?.release())
    }

    fn set(&mut self, handle: Resource<SyncHandle>) -> HostResult<()> {
        let s = self.sync_object(&handle)?;
        if s.kind != SyncKind::Event {
            return Ok(Err(not_for(s.kind, "set")));
        }
        s.word(Word::EVENT_FLAG).store(1, Ordering::Release);
        s.word(Word::EVENT_SEQ).fetch_add(1, Ordering::AcqRel);
        ipc::futex_wake_all(s.word(Word::EVENT_SEQ));
        Ok(Ok(()))
    }

    fn clear(&mut self, handle: Resource<SyncHandle>) -> HostResult<()> {
        let s = self.sync_object(&handle)?;
        if s.kind != SyncKind::Event {
            return Ok(Err(not_for(s.kind, "clear")));
        }
        s.word(Word::EVENT_FLAG).store(0, Ordering::Release);
        Ok(Ok(()))
    }

    fn is_set(&mut self, handle: Resource<SyncHandle>) -> wasmtime::Result<bool> {
        let s = self.sync_object(&handle)?;
        Ok(match s.kind {
            SyncKind::Event => s.word(Word::EVENT_FLAG).load(Ordering::Acquire) != 0,
            // A barrier "is set" when it is broken.
            SyncKind::Barrier { .. } => BarState(s.bar_state().load(Ordering::SeqCst)).broken(),
            _ => false,
        })
    }

    fn wait(&mut self, handle: Resource<SyncHandle>, timeout_ms: Option<u64>) -> HostResult<u32> {
        let s = self.sync_object(&handle)?;
        let deadline = Deadline::after_ms(timeout_ms);
        Ok(match s.kind {
            SyncKind::Event => Ok(s.event_wait(deadline)),
            SyncKind::Condition => s.condition_wait(deadline),
            SyncKind::Barrier { .. } => s.barrier_wait(deadline),
            kind => Err(not_for(kind, "wait")),
        })
    }

    fn notify(&mut self, handle: Resource<SyncHandle>, n: u32) -> HostResult<()> {
        let s = self.sync_object(&handle)?;
        if let SyncKind::Semaphore { .. } = s.kind {
            // A guest gave a unit back in its own code and saw a waiter:
            // wake up to `n` sleepers, which take the unit if it is left.
            ipc::futex_wake(s.word(Word::SEM_VALUE), n.min(i32::MAX as u32));
            return Ok(Ok(()));
        }
        if let SyncKind::Barrier { .. } = s.kind {
            // A guest's last arrival moved the generation on in its own
            // code and saw a sleeper: wake them all.
            s.bar_wake(true);
            return Ok(Ok(()));
        }
        if s.kind != SyncKind::Condition {
            return Ok(Err(not_for(s.kind, "notify")));
        }
        if s.depth() == 0 {
            return Ok(Err(types::Error::Other(
                "cannot notify on an un-acquired condition".into(),
            )));
        }
        // Nobody counted: no slot to look through.
        if s.waiters().anyone() {
            s.waiters().signal(n);
        }
        Ok(Ok(()))
    }

    fn abort(&mut self, handle: Resource<SyncHandle>) -> HostResult<()> {
        let s = self.sync_object(&handle)?;
        if !matches!(s.kind, SyncKind::Barrier { .. }) {
            return Ok(Err(not_for(s.kind, "abort")));
        }
        break_page(&s.page);
        Ok(Ok(()))
    }

    fn reset(&mut self, handle: Resource<SyncHandle>) -> HostResult<()> {
        let s = self.sync_object(&handle)?;
        if !matches!(s.kind, SyncKind::Barrier { .. }) {
            return Ok(Err(not_for(s.kind, "reset")));
        }
        s.barrier_reset();
        Ok(Ok(()))
    }

    fn value(&mut self, handle: Resource<SyncHandle>) -> wasmtime::Result<u32> {
        let s = self.sync_object(&handle)?;
        Ok(match s.kind {
            SyncKind::Semaphore { .. } => s.word(Word::SEM_VALUE).load(Ordering::Acquire),
            SyncKind::Barrier { .. } => BarState(s.bar_state().load(Ordering::SeqCst)).arrived(),
            SyncKind::Lock | SyncKind::RLock | SyncKind::Condition => {
                u32::from(owner_lock(s.kind, &s.page, s.me).is_some_and(|l| l.is_locked()))
            }
            _ => 0,
        })
    }

    fn window(&mut self, handle: Resource<SyncHandle>) -> wasmtime::Result<Option<u32>> {
        Ok(self
            .sync_object(&handle)?
            .window
            .as_ref()
            .map(|w| w.offset()))
    }

    fn acquire_status(&mut self, handle: Resource<SyncHandle>) -> wasmtime::Result<u8> {
        Ok(
            match self.sync_object(&handle)?.acquire(Deadline::after_ms(None)) {
                Ok(()) => 0,
                Err(types::Error::OwnerDied) => 1,
                Err(_) => 2,
            },
        )
    }

    fn release_status(&mut self, handle: Resource<SyncHandle>) -> wasmtime::Result<bool> {
        Ok(self.sync_object(&handle)?.release().is_ok())
    }

    fn share(&mut self, handle: Resource<SyncHandle>) -> HostResult<u64> {
        let id = self.sync_object(&handle)?.id;
        super::token(self.upcall(Call::Share { id }, &[])?)
    }

    fn drop(&mut self, handle: Resource<SyncHandle>) -> wasmtime::Result<()> {
        // A lock still held stays held, as in Python; should this process
        // die holding it, the next acquirer gets `owner-died`.
        let s = self.table.delete(handle)?;
        self.upcall(Call::Release { id: s.id }, &[])?.ok();
        Ok(())
    }
}

impl WorkerState {
    fn sync_reply(&mut self, call: Call) -> HostResult<Resource<SyncHandle>> {
        Ok(match self.upcall(call, &[])? {
            Ok((reply @ Reply::Sync { .. }, fds)) => {
                let mut object = SyncHandle::from_reply(reply, fds)?;
                if let (Some(window), true) = (&self.window, in_window(object.kind)) {
                    // A full window leaves the primitive to the host calls.
                    object.window = window.map(object.page.fd(), object.page.len()).ok();
                }
                Ok(self.table.push(object)?)
            }
            Ok((other, _)) => Err(self.refuse(other)?),
            Err(e) => Err(e),
        })
    }
}

impl sync::Host for WorkerState {
    fn create(&mut self, kind: sync::Kind) -> HostResult<Resource<SyncHandle>> {
        let kind = match kind {
            sync::Kind::Lock => SyncKind::Lock,
            sync::Kind::Rlock => SyncKind::RLock,
            sync::Kind::Semaphore((value, bounded)) => SyncKind::Semaphore { value, bounded },
            sync::Kind::Event => SyncKind::Event,
            sync::Kind::Condition => SyncKind::Condition,
            sync::Kind::Barrier(parties) => SyncKind::Barrier { parties },
        };
        self.sync_reply(Call::SyncCreate { kind })
    }

    fn adopt(&mut self, cap: u64) -> HostResult<Resource<SyncHandle>> {
        self.sync_reply(Call::Adopt { token: cap })
    }
}

// ---------------------------------------------------------------------------
// The broker's side.

/// A primitive as the broker keeps it: its page, to hand to every holder.
pub(crate) struct Hub {
    kind: SyncKind,
    page: SharedMap,
    /// One of the run's objects (`--max-objects`).
    _object: crate::broker::budget::Charge,
}

impl Hub {
    /// The reply that gives a process this primitive (id `id`).
    pub(crate) fn hand_out(&self, id: u64) -> Answer {
        let fd = self
            .page
            .fd()
            .try_clone_to_owned()
            .map_err(crate::broker::os_error)?;
        Ok((
            Reply::Sync {
                id,
                kind: self.kind,
            },
            vec![fd],
        ))
    }
}

/// `Call::SyncCreate`: a page with the kind's initial state.
pub(crate) fn create(broker: &Broker, caller: u64, kind: SyncKind) -> Answer {
    let other = crate::broker::os_error;
    let object = broker.charge_object("a new lock or primitive")?;
    let page = SharedMap::page("mpwasm-sync").map_err(other)?;
    match kind {
        SyncKind::Semaphore { value, bounded } => {
            page.word(Word::SEM_VALUE).store(value, Ordering::Release);
            // The bound plus one; 0 means unbounded.
            let max = if bounded { value.saturating_add(1) } else { 0 };
            page.word(Word::SEM_MAX).store(max, Ordering::Release);
        }
        SyncKind::Barrier { parties } => {
            if parties == 0 {
                return Err(CallError::Other(
                    "a barrier needs at least one party".into(),
                ));
            }
            page.word(Word::BAR_PARTIES)
                .store(parties, Ordering::Release);
        }
        _ => {}
    }
    let hub = Arc::new(Hub {
        kind,
        page,
        _object: object,
    });
    let id = broker.register(Object::Sync(hub.clone()), Some(caller))?;
    hub.hand_out(id)
}

/// Breaks every barrier in `objects` (what a process that died held).
pub(crate) fn break_barriers(objects: &[Object]) {
    for o in objects {
        if let Object::Sync(hub) = o {
            if matches!(hub.kind, SyncKind::Barrier { .. }) {
                break_page(&hub.page);
            }
        }
    }
}

/// Hands the Locks and RLocks in `objects` (what the process `pid` held)
/// that `pid` owns to their next acquirer as owner-died, waking their
/// waiters. The broker calls it right after reaping `pid`: for `pid` to
/// name another process of the run by then, the kernel, which hands pids
/// out in sequence up to `pid_max` (4,194,304), would have had to go round
/// all of them in between.
///
/// It also wakes every sleeper on the Semaphores and Events `pid` held: a
/// process killed between giving a unit back (or setting the event) and
/// the wake-up it then owed would otherwise leave a waiter asleep beside
/// a free unit. A woken waiter that finds nothing goes back to sleep.
pub(crate) fn repair_locks(objects: &[Object], pid: u32) {
    for o in objects {
        if let Object::Sync(hub) = o {
            match hub.kind {
                SyncKind::Lock | SyncKind::RLock | SyncKind::Condition => {
                    crate::sys::owner_lock::repair(hub.page.word(0), pid);
                }
                SyncKind::Semaphore { .. } => ipc::futex_wake_all(hub.page.word(Word::SEM_VALUE)),
                SyncKind::Event => ipc::futex_wake_all(hub.page.word(Word::EVENT_SEQ)),
                _ => {}
            }
        }
    }
}

/// Frees the condition waiter slots of the dead process `pid` in `objects`
/// (what it held), passing on any notify it was given but never took.
pub(crate) fn forget_waiters(objects: &[Object], pid: u32) {
    for o in objects {
        if let Object::Sync(hub) = o {
            if hub.kind == SyncKind::Condition {
                Waiters::new(&hub.page, Word::COND_WAITERS).forget(pid);
            }
        }
    }
}
