//! A first-in first-out list of waiting processes in a shared page: what a
//! `Condition` is made of (CPython's `Condition` keeps one waiter lock per
//! waiter in a deque; this is the same design across processes).
//!
//! Each waiter takes a *slot* of two words: its state (the waiter's tag — its
//! pid — or 0 when free, with [`SIGNALED`] set once a notify picked it) and
//! its arrival ticket, for the order. A waiter sleeps on its own state word,
//! so a notify wakes exactly the waiters it picks: one that has not fallen
//! asleep yet sees the signal in the word and returns at once, and nobody
//! else is woken. A waiter whose wait ends without a signal takes its slot
//! back with a compare-and-swap that a concurrent notify cannot also win, so
//! `notify(n)` wakes at most `n`.
//!
//! The list also counts its taken slots (the word after the ticket
//! counter): a process that holds the condition's lock and reads 0 there
//! knows nobody waits, and a guest's `notify` then needs no host call. A
//! waiter counts itself before it takes a slot, and whoever frees a slot
//! (the waiter, or the broker for a dead one) uncounts it after; so the
//! count may be high for a moment, never low. A waiter killed between
//! freeing its slot and uncounting it leaves the count one too high for
//! good, which costs a notifier a host call that finds nobody, no more.
//!
//! A waiter that dies leaves its slot behind; the broker, reaping it, frees
//! the slot with [`Waiters::forget`] and hands a signal it had been given to
//! the next waiter, so a dead waiter never swallows a notify.

use std::sync::atomic::{AtomicU32, Ordering};

use super::ipc::{self, Deadline, SharedMap};

/// The bit of a slot's state word that says a notify picked its waiter.
pub(crate) const SIGNALED: u32 = 1 << 31;

/// The waiter list of a page, from word `first` to the page's end.
pub(crate) struct Waiters<'a> {
    page: &'a SharedMap,
    first: usize,
}

/// A slot a waiter holds between [`Waiters::enlist`] and [`Waiters::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot(usize);

impl<'a> Waiters<'a> {
    /// The list in `page` from word `first` on (a ticket counter, the
    /// count of taken slots, then the slots).
    pub(crate) fn new(page: &'a SharedMap, first: usize) -> Self {
        Waiters { page, first }
    }

    /// How many processes can wait at once.
    pub(crate) fn capacity(&self) -> usize {
        (self.page.len() / 4 - self.first - 2) / 2
    }

    fn next_ticket(&self) -> &AtomicU32 {
        self.page.word(self.first)
    }

    /// Slots taken, or about to be (see the module's head).
    fn taken(&self) -> &AtomicU32 {
        self.page.word(self.first + 1)
    }

    fn state(&self, slot: usize) -> &AtomicU32 {
        self.page.word(self.first + 2 + 2 * slot)
    }

    fn ticket(&self, slot: usize) -> &AtomicU32 {
        self.page.word(self.first + 3 + 2 * slot)
    }

    /// Whether a process may be waiting (for one holding the lock that
    /// orders enlisting against notifying).
    pub(crate) fn anyone(&self) -> bool {
        self.taken().load(Ordering::SeqCst) != 0
    }

    /// Uncounts a slot this caller freed.
    fn freed(&self) {
        // Never below zero, even on a page an adversary wrote.
        let _ = self
            .taken()
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// Puts the waiter `tag` (non-zero, below [`SIGNALED`]) at the end of
    /// the list; `None` when every slot is taken. Callers hold the lock
    /// that orders enlisting against notifying.
    pub(crate) fn enlist(&self, tag: u32) -> Option<Slot> {
        debug_assert!(tag != 0 && tag & SIGNALED == 0);
        self.taken().fetch_add(1, Ordering::SeqCst);
        let ticket = self.next_ticket().fetch_add(1, Ordering::AcqRel);
        let slot = (0..self.capacity()).find_map(|i| {
            if self.state(i).load(Ordering::Acquire) != 0 {
                return None;
            }
            self.ticket(i).store(ticket, Ordering::Release);
            self.state(i)
                .compare_exchange(0, tag, Ordering::AcqRel, Ordering::Acquire)
                .ok()
                .map(|_| Slot(i))
        });
        if slot.is_none() {
            self.freed();
        }
        slot
    }

    /// Sleeps until a notify picks `slot` or the deadline passes, then
    /// frees the slot; whether it was picked.
    pub(crate) fn wait(&self, slot: Slot, tag: u32, deadline: Deadline) -> bool {
        let state = self.state(slot.0);
        while state.load(Ordering::Acquire) == tag && !deadline.passed() {
            ipc::futex_wait(state, tag, deadline);
        }
        match state.compare_exchange(tag, 0, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                self.freed();
                false
            }
            Err(s) if s == tag | SIGNALED => {
                state.store(0, Ordering::Release);
                self.freed();
                true
            }
            // Freed by someone else (the broker forgot a reused pid).
            Err(_) => false,
        }
    }

    /// Picks up to `n` waiters, oldest first, and wakes each; how many.
    pub(crate) fn signal(&self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        let now = self.next_ticket().load(Ordering::Acquire);
        let mut waiting: Vec<(u32, usize, u32)> = (0..self.capacity())
            .filter_map(|i| {
                let s = self.state(i).load(Ordering::Acquire);
                let age = now.wrapping_sub(self.ticket(i).load(Ordering::Acquire));
                (s != 0 && s & SIGNALED == 0).then_some((age, i, s))
            })
            .collect();
        // Oldest (largest age) first.
        waiting.sort_unstable_by_key(|w| std::cmp::Reverse(w.0));
        let mut woken = 0;
        for (_, i, s) in waiting {
            if woken == n {
                break;
            }
            // Fails only if the waiter gave up (or was forgotten) meanwhile.
            if self
                .state(i)
                .compare_exchange(s, s | SIGNALED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                ipc::futex_wake(self.state(i), 1);
                woken += 1;
            }
        }
        woken
    }

    /// Frees the slots of the dead waiter `tag`, passing a signal it was
    /// given on to the oldest other waiter.
    pub(crate) fn forget(&self, tag: u32) {
        for i in 0..self.capacity() {
            let s = self.state(i).load(Ordering::Acquire);
            if s == 0 || s & !SIGNALED != tag {
                continue;
            }
            let freed = self
                .state(i)
                .compare_exchange(s, 0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            if freed {
                self.freed();
            }
            if freed && s & SIGNALED != 0 {
                self.signal(1);
            }
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn page() -> Arc<SharedMap> {
        Arc::new(SharedMap::page("waiters-test").unwrap())
    }

    #[test]
    fn a_signal_before_the_sleep_is_kept_and_wakes_only_its_waiter() {
        let page = page();
        let list = Waiters::new(&page, 16);
        let a = list.enlist(1).unwrap();
        let b = list.enlist(2).unwrap();
        // Neither sleeps yet: the signal lands in the oldest one's word.
        assert_eq!(list.signal(1), 1);
        assert!(list.wait(a, 1, Deadline::after(Some(Duration::ZERO))));
        assert!(!list.wait(b, 2, Deadline::after(Some(Duration::from_millis(20)))));
        // Both slots are free again, and uncounted.
        assert_eq!(list.signal(5), 0);
        assert!(!list.anyone());
    }

    #[test]
    fn signal_wakes_at_most_n_sleepers_oldest_first() {
        let page = page();
        let list = Waiters::new(&page, 16);
        let slots: Vec<Slot> = (1..=3).map(|t| list.enlist(t).unwrap()).collect();
        let sleepers: Vec<_> = slots
            .into_iter()
            .zip(1u32..)
            .map(|(slot, tag)| {
                let page = page.clone();
                std::thread::spawn(move || {
                    let list = Waiters::new(&page, 16);
                    list.wait(slot, tag, Deadline::after(Some(Duration::from_millis(300))))
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(list.signal(2), 2);
        let woken: Vec<bool> = sleepers.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(woken, [true, true, false]);
    }

    #[test]
    fn a_forgotten_waiter_passes_its_signal_on() {
        let page = page();
        let list = Waiters::new(&page, 16);
        let _dead = list.enlist(7).unwrap();
        let live = list.enlist(8).unwrap();
        assert_eq!(list.signal(1), 1); // picks the dead, older one
        list.forget(7);
        assert!(list.anyone());
        assert!(list.wait(live, 8, Deadline::after(Some(Duration::ZERO))));
        assert!(!list.anyone());
    }

    #[test]
    fn enlist_refuses_past_capacity() {
        let page = page();
        let list = Waiters::new(&page, 16);
        let cap = list.capacity();
        for t in 1..=cap as u32 {
            assert!(list.enlist(t).is_some());
        }
        assert_eq!(list.enlist(cap as u32 + 1), None);
        // The refused one is not counted.
        assert_eq!(list.taken().load(Ordering::SeqCst), cap as u32);
    }
}
