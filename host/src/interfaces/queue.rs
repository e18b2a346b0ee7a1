//! `mpwasm:runtime/queue`: Python's `Queue`, `JoinableQueue`, `SimpleQueue`.
//!
//! Hops of a `put` (design and reasoning: `docs/messaging.md`):
//! 1. the guest's `Queue::put` encodes the item and calls the host function
//!    [`HostQueue::put`](queue::HostQueue::put) in its worker process;
//! 2. a bounded queue reserves a slot in the shared [`Page`] (futex wait
//!    while full);
//! 3. the item goes out as one packet on the queue's packet-mode pipe
//!    ([`ipc::packet_pipe`]) — an item of [`QUEUE_INLINE_MAX`] bytes or
//!    more (a packet is at most a page) is first handed to the broker
//!    (`Call::QueueStore`, [`store`]), which keeps it under a key charged
//!    to the run's budget, and the packet carries only that key;
//! 4. if the pipe stays full (a few retries, then up to [`SPILL_GRACE`]),
//!    the packet goes to the broker instead
//!    (`Call::QueueSpill`, [`spill`]), whose feeder thread writes it in as
//!    readers make room;
//! 5. a consumer's `get` reads the packet (whole, and only it), frees the
//!    slot and wakes a blocked producer; for a key it then fetches the
//!    item from the broker (`Call::QueueFetch`, [`fetch`]).
//!
//! A pipe carries no descriptors: items are bytes or keys, never memfds,
//! whose descriptors in flight would count against the kernel's per-user
//! limit (`RLIMIT_NOFILE` of descriptors in flight, for users without
//! `CAP_SYS_RESOURCE`) and break every other run of the same user (issue
//! 10, item 1).
//!
//! `shutdown` (Python 3.13's `Queue.shutdown`) sets a word of the page that
//! puts check, wakes producers blocked on a full queue, and sends one
//! shut-down marker packet behind the items, which wakes the consumers
//! blocked in the read one after another (each sends it on).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use wasmtime::component::Resource;

use super::{io_error, unexpected, HostResult};
use crate::bindings::{queue, types};
use crate::broker::budget::Charge;
use crate::broker::{Answer, Broker, Object};
use crate::cluster::queue::{Queues, RemoteQueue};
use crate::limits::{MAX_FRAME_BYTES, QUEUE_INLINE_MAX, QUEUE_ITEM_COST, QUEUE_PIPE_BYTES};
use crate::sys::ipc::{self, Deadline, SharedMap};
use crate::wire::{Call, CallError, RemoteOp, Reply};
use crate::worker::child::WorkerState;

/// The longest a producer sleeps on a full queue before looking again: a
/// producer woken for a freed slot and killed before taking it leaves the
/// others asleep until the next `get` — or this long.
const RECHECK: std::time::Duration = std::time::Duration::from_millis(50);

/// The words of a queue's shared page, by cache line: what every `put` and
/// `get` changes (the count, and the producers' wake-up words) on the
/// first; words read on every operation but seldom written (spilling,
/// shut down, promoted) on a line of their own, which stays in every
/// CPU's cache; a joinable queue's words on a third; and the puts on
/// their way into the pipe ([`local_puts`](Self::local_puts)) in
/// [`STRIPES`] counters, one line each, so that producers in different
/// processes do not take one line from each other twice per put.
struct Page(SharedMap);

/// Words in a 64-byte cache line.
const LINE: usize = 16;
/// How many [`Page::local_puts`] counters the page has.
const STRIPES: usize = 16;

impl Page {
    /// Items put and not yet taken (`qsize`); the semaphore of a bounded queue.
    fn count(&self) -> &AtomicU32 {
        self.0.word(0)
    }
    /// Bumped when an item is taken while a producer may be asleep: what
    /// blocked producers sleep on.
    fn taken_seq(&self) -> &AtomicU32 {
        self.0.word(1)
    }
    /// Producers sleeping on `taken_seq`, or about to. A producer counts
    /// itself in before it sleeps; it counts itself out when its sleep
    /// ends other than by a wake-up (the word moved, its deadline, a
    /// signal), and whoever wakes it counts it out for it
    /// ([`wake_producers`](Self::wake_producers)).
    fn put_waiters(&self) -> &AtomicU32 {
        self.0.word(2)
    }
    /// Bumps `taken_seq` and wakes up to `n` producers sleeping on it,
    /// counting those it woke out of `put_waiters` at once. A woken
    /// producer may wait a long time for a CPU; while it counted itself
    /// out only once it ran, every `get` in between saw a sleeper and made
    /// a futex system call that woke nobody (0.95 wasted calls per message
    /// in W8, 4 × 4 processes on 2 CPUs).
    ///
    /// Called after the count went down. A producer about to sleep reads
    /// `taken_seq`, counts itself in, then reads the count (all
    /// sequentially consistent): either it sees the slot, or this sees it
    /// counted in and moves `taken_seq` past what it read. So `taken_seq`
    /// moves only for a sleeper: a `get` with nobody asleep changes no
    /// other word than the count.
    fn wake_producers(&self, n: u32) {
        if self.put_waiters().load(Ordering::SeqCst) == 0 {
            return;
        }
        self.taken_seq().fetch_add(1, Ordering::SeqCst);
        let woken = ipc::futex_wake(self.taken_seq(), n);
        if woken > 0 {
            let _ = self
                .put_waiters()
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                    Some(w.saturating_sub(woken))
                });
        }
    }
    /// Items put and not yet marked done (joinable queues).
    fn unfinished(&self) -> &AtomicU32 {
        self.0.word(2 * LINE)
    }
    /// Bumped when `unfinished` reaches zero: what `join` sleeps on.
    fn done_seq(&self) -> &AtomicU32 {
        self.0.word(2 * LINE + 1)
    }
    /// Non-zero while the broker holds spilled items: puts go there too.
    fn spilling(&self) -> &AtomicU32 {
        self.0.word(LINE)
    }
    /// [`SHUT`] or [`SHUT_NOW`] once the queue was shut down, else 0.
    fn shutdown(&self) -> &AtomicU32 {
        self.0.word(LINE + 1)
    }
    /// Non-zero once the queue lives in a JetStream stream (it was shared
    /// with a task on another host, `crate::cluster::queue`): every
    /// operation then goes to the broker.
    fn remote(&self) -> &AtomicU32 {
        self.0.word(LINE + 2)
    }
    /// Whether the queue lives in a stream now.
    fn is_remote(&self) -> bool {
        self.remote().load(Ordering::Acquire) != 0
    }
    /// Puts past their last look at [`remote`](Self::remote) that have not
    /// yet landed in the pipe: a promotion waits for them before it
    /// moves the pipe's items into the stream. Counted in one of
    /// [`STRIPES`] words, by the producer's pid.
    fn local_puts(&self, stripe: usize) -> &AtomicU32 {
        self.0.word((3 + stripe % STRIPES) * LINE)
    }
    /// All puts on their way in, over every stripe.
    fn all_local_puts(&self) -> u32 {
        (0..STRIPES)
            .map(|s| self.local_puts(s).load(Ordering::SeqCst))
            .sum()
    }
}

/// The longest a `get` looks for an item before it sleeps
/// ([`QueueHandle::look`]), and a `put` retries a full pipe before it
/// waits for room.
const SPIN_FOR: std::time::Duration = std::time::Duration::from_micros(50);

/// Waiting without sleeping: a few tries, the CPU given to any other
/// process that wants it between them, for at most [`SPIN_FOR`] (and not
/// past `cap`), and only with spare CPUs. The clock is read at the first
/// yield, so a first try that succeeds costs none.
struct Spin {
    cap: Deadline,
    until: Option<Deadline>,
}

impl Spin {
    fn new(cap: Deadline) -> Self {
        Spin { cap, until: None }
    }

    /// Gives the CPU away once and says whether to try again: false once
    /// the time is up, or at once without a spare CPU.
    fn yielded(&mut self) -> bool {
        if !spare_cpus() {
            return false;
        }
        let cap = self.cap;
        let until = self
            .until
            .get_or_insert_with(|| Deadline::after(Some(SPIN_FOR)).earlier(cap));
        if until.passed() {
            return false;
        }
        std::thread::yield_now();
        true
    }
}

/// Whether this process may use more than one CPU (read once: workers are
/// forked before any queue operation).
fn spare_cpus() -> bool {
    static SPARE: OnceLock<bool> = OnceLock::new();
    *SPARE.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}

/// [`Page::wake_producers`]'s `n` that wakes every sleeper.
const EVERY_PRODUCER: u32 = i32::MAX as u32;

/// This process's [`Page::local_puts`] stripe.
fn my_stripe() -> usize {
    // Read once: `getpid` is a system call.
    static STRIPE: OnceLock<usize> = OnceLock::new();
    *STRIPE.get_or_init(|| std::process::id() as usize % STRIPES)
}

/// A put counted in [`Page::local_puts`] (in this stripe) until it is
/// dropped.
struct LocalPut<'a>(&'a Page, usize);

impl<'a> LocalPut<'a> {
    /// Counts a put, then takes the last look at `remote`: `None` if the
    /// queue was promoted (the put must go to the stream). Sequentially
    /// consistent with [`promote`]'s store and load, so either this put
    /// sees the promotion or the promotion sees this put.
    fn begin(page: &'a Page) -> Option<Self> {
        let stripe = my_stripe();
        page.local_puts(stripe).fetch_add(1, Ordering::SeqCst);
        let put = LocalPut(page, stripe);
        (page.remote().load(Ordering::SeqCst) == 0).then_some(put)
    }
}

impl Drop for LocalPut<'_> {
    fn drop(&mut self) {
        self.0.local_puts(self.1).fetch_sub(1, Ordering::SeqCst);
    }
}

/// `shutdown()`: puts fail; gets fail once the queue is empty.
const SHUT: u32 = 1;
/// `shutdown(immediate=True)`: the queue is emptied and gets fail at once.
const SHUT_NOW: u32 = 2;

/// How long a `put` waits for room in a full pipe before it spills the
/// item to the broker.
const SPILL_GRACE: std::time::Duration = std::time::Duration::from_millis(2);

/// The largest item a queue carries, whatever `--max-message` says: a
/// stored item goes to the broker in one frame, with room for the call's
/// other fields. (Wasmtime's own cap on bytes copied in one host call,
/// about 128 MiB by default, usually refuses such an item first.)
const MAX_ITEM_BYTES: u64 = MAX_FRAME_BYTES as u64 - 4096;

/// Packet tags.
const INLINE: u8 = 0;
/// The item is kept by the broker: the packet is the tag and its key
/// (8 bytes, little-endian).
const STORED: u8 = 1;
/// Not an item: the queue was shut down. Sent once by `shutdown` to wake
/// consumers blocked in the receive; each consumer that gets it sends it on
/// for the next one, so it stays in the pipe for good.
const SHUT_DOWN: u8 = 2;
/// Not an item: the queue moved into a stream. Sent once by the promotion
/// to wake consumers blocked in the receive; each one sends it on, as with
/// [`SHUT_DOWN`], and goes to the broker.
const PROMOTED: u8 = 3;

// ---------------------------------------------------------------------------
// The worker's side.

/// A queue handle in a guest's resource table.
pub struct QueueHandle {
    id: u64,
    send: OwnedFd,
    recv: OwnedFd,
    page: Page,
    maxsize: u32,
    joinable: bool,
    closed: bool,
    /// Where packets are received (allocated at the first `get`).
    scratch: Vec<u8>,
}

impl QueueHandle {
    fn from_reply(reply: Reply, fds: Vec<OwnedFd>) -> wasmtime::Result<Self> {
        let Reply::Queue {
            id,
            maxsize,
            joinable,
        } = reply
        else {
            return Err(unexpected(reply));
        };
        let [send, recv, page]: [OwnedFd; 3] = fds
            .try_into()
            .map_err(|_| wasmtime::Error::msg("a queue arrived without its descriptors"))?;
        let page = Page(SharedMap::map(page, SharedMap::PAGE_WORDS * 4)?);
        Ok(QueueHandle {
            id,
            send,
            recv,
            page,
            maxsize,
            joinable,
            closed: false,
            scratch: Vec::new(),
        })
    }

    /// The pipe's read end, for `wait`.
    pub(crate) fn readable_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.recv.as_fd()
    }

    /// Takes a slot for one item, waiting while the queue is full.
    ///
    /// Each freed slot wakes one sleeping producer ([`free_slot`]), which
    /// the waker counts out of [`Page::put_waiters`]: a woken producer does
    /// not count itself out again. A
    /// producer that was woken and then gives up (its timeout passed, or
    /// the queue was shut down) passes the wake-up on if a slot is free, so
    /// that no other sleeper misses it; and no sleep lasts more than
    /// [`RECHECK`], in case the producer woken for a slot was killed before
    /// taking it.
    ///
    /// [`free_slot`]: Self::free_slot
    fn reserve(&self, deadline: Deadline) -> Result<(), types::Error> {
        let count = self.page.count();
        if self.maxsize == 0 {
            count.fetch_add(1, Ordering::AcqRel);
            return Ok(());
        }
        let mut slept = false;
        loop {
            let n = count.load(Ordering::Acquire);
            if n < self.maxsize {
                if count
                    .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return Ok(());
                }
                continue;
            }
            let gave_up = if self.page.shutdown().load(Ordering::Acquire) != 0 {
                Some(types::Error::ShutDown)
            } else if deadline.passed() {
                Some(types::Error::Full)
            } else {
                None
            };
            if let Some(e) = gave_up {
                if slept {
                    self.pass_wake_on();
                }
                return Err(e);
            }
            let seq = self.page.taken_seq().load(Ordering::SeqCst);
            self.page.put_waiters().fetch_add(1, Ordering::SeqCst);
            // Sequentially consistent with `wake_producers`: either this
            // look sees the slot freed (or the bumped `taken_seq`), or the
            // waker sees this producer counted in.
            let mut woken = false;
            if count.load(Ordering::SeqCst) >= self.maxsize
                && self.page.taken_seq().load(Ordering::SeqCst) == seq
            {
                let nap = Deadline::after(Some(RECHECK));
                let until = match (deadline.remaining(), nap.remaining()) {
                    (Some(left), Some(recheck)) if left < recheck => deadline,
                    _ => nap,
                };
                woken = ipc::futex_wait(self.page.taken_seq(), seq, until);
                slept = true;
            }
            if !woken {
                self.page.put_waiters().fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Wakes one sleeping producer if a slot is free: a wake-up this
    /// process took and did not use.
    fn pass_wake_on(&self) {
        if self.page.count().load(Ordering::Acquire) < self.maxsize {
            self.page.wake_producers(1);
        }
    }

    /// Gives back a slot: an item was taken, or a put failed after
    /// reserving. Wakes one sleeping producer — one slot is room for one
    /// item (waking them all made every `get` of a full queue wake every
    /// producer, and all but one go back to sleep).
    fn free_slot(&self) {
        let _ = self
            .page
            .count()
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if self.maxsize > 0 {
            self.page.wake_producers(1);
        }
    }

    /// Whether a `get` must fail with `shut-down` without receiving: the
    /// queue was shut down and is empty, or shut down at once.
    fn shut_for_gets(&self) -> bool {
        match self.page.shutdown().load(Ordering::Acquire) {
            0 => false,
            SHUT_NOW => true,
            _ => self.page.count().load(Ordering::Acquire) == 0,
        }
    }

    /// Takes every item there is now, without waiting, and forgets them as
    /// if each had been got and marked done (`shutdown(immediate=True)`).
    /// Returns the keys of the items the broker keeps, to be let go.
    fn drain(&mut self) -> Vec<u64> {
        if self.scratch.is_empty() {
            self.scratch = vec![0u8; ipc::PACKET_MAX];
        }
        let mut stored = Vec::new();
        // 0 is end of file (never while the broker holds the write end).
        while let Ok(len @ 1..) = ipc::read_packet(self.recv.as_fd(), &mut self.scratch, false) {
            if self.scratch[0] == SHUT_DOWN || self.scratch[0] == PROMOTED {
                continue;
            }
            if (self.scratch[0], len) == (STORED, 9) {
                stored.push(u64::from_le_bytes(
                    self.scratch[1..9].try_into().expect("8 bytes"),
                ));
            }
            self.free_slot();
            if self.joinable {
                self.mark_done();
            }
        }
        stored
    }

    /// One item marked done: `task_done` without its checks.
    fn mark_done(&self) -> bool {
        let before =
            self.page
                .unfinished()
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if before == Ok(1) {
            self.page.done_seq().fetch_add(1, Ordering::AcqRel);
            ipc::futex_wake_all(self.page.done_seq());
        }
        before.is_ok()
    }

    /// Looks for a packet without sleeping, giving the CPU to any other
    /// process that wants it between looks, for at most [`SPIN_FOR`] (and
    /// not past the deadline), with spare CPUs only; its length if one came.
    ///
    /// A consumer that sleeps in the read is woken by the next put: on
    /// this VM a wake-up on another CPU costs ~20 µs, and on a busy one
    /// each item costs a sleep and a context switch. Looking a little
    /// longer takes the item as it lands (W3 ping-pong: 44 µs → 2.5 µs a
    /// round trip; W8: 4 × 4 processes, +30%). A process alone on its CPU
    /// does not look: the item's producer may be waiting for that very
    /// CPU.
    fn look(&self, buf: &mut [u8], deadline: Deadline) -> Option<io::Result<usize>> {
        if !spare_cpus() {
            return None;
        }
        let mut spin = Spin::new(deadline);
        loop {
            // The count says whether an item may be there without a system
            // call, or the pipe's lock, which every producer's write takes
            // too. (A marker is not counted: the read after the look finds
            // it.)
            if self.page.count().load(Ordering::Acquire) > 0 {
                match ipc::read_packet(self.recv.as_fd(), buf, false) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    got => return Some(got),
                }
            }
            if !spin.yielded() {
                return None;
            }
        }
    }

    /// Receives one packet into `buf` (of [`ipc::PACKET_MAX`] bytes),
    /// waiting until the deadline.
    fn receive(&self, buf: &mut [u8], deadline: Deadline) -> Result<Packet, types::Error> {
        debug_assert_eq!(buf.len(), ipc::PACKET_MAX);
        // Without a deadline, block in the read itself: the kernel then
        // wakes one waiting consumer per packet, where `poll` would wake
        // them all.
        let block = deadline.remaining().is_none();
        let len = loop {
            let got = match self.look(buf, deadline) {
                Some(got) => got,
                None => ipc::read_packet(self.recv.as_fd(), buf, block),
            };
            match got {
                Ok(len) => break len,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if deadline.passed() {
                        return Err(types::Error::Empty);
                    }
                    ipc::poll_readable(&[self.recv.as_fd()], deadline).map_err(io_error)?;
                }
                Err(e) => return Err(io_error(e)),
            }
        };
        if len == 0 {
            // End of file: the broker, which holds the write end, is gone.
            return Err(types::Error::Closed);
        }
        // Another process wrote this packet: check it.
        match (buf[0], len) {
            (SHUT_DOWN, 1) => return Ok(Packet::ShutDown),
            (PROMOTED, 1) => return Ok(Packet::Promoted),
            _ => {}
        }
        self.free_slot();
        match (buf[0], len) {
            (INLINE, _) => Ok(Packet::Item(len - 1)),
            (STORED, 9) => {
                let key = u64::from_le_bytes(buf[1..9].try_into().expect("8 bytes"));
                Ok(Packet::Stored(key))
            }
            _ => Err(types::Error::Other(
                "malformed queue item (a writer is broken)".into(),
            )),
        }
    }
}

/// A `put`'s item.
#[derive(Clone, Copy)]
enum Outgoing<'a> {
    /// Its bytes.
    Bare(&'a [u8]),
    /// Its packet: [`INLINE`], then its bytes (as staged, with the tag
    /// written in front), sent with no copy.
    Framed(&'a [u8]),
}

impl<'a> Outgoing<'a> {
    /// The item's bytes.
    fn item(self) -> &'a [u8] {
        match self {
            Outgoing::Bare(item) => item,
            Outgoing::Framed(packet) => &packet[1..],
        }
    }
}

/// What a `get` took.
enum Got {
    /// An item of this many bytes, at byte 1 of the buffer it was
    /// received into.
    Staged(usize),
    /// An item that came whole (the broker kept it, or the queue lives in
    /// a stream).
    Whole(Vec<u8>),
}

/// `get-staged`'s answer when it staged nothing: see `take-outcome`.
const NOT_STAGED: u32 = u32::MAX;

/// A process's staging page (`queue.stage`), and what the last staged call
/// that did not finish on its own left for `take-outcome`.
pub(crate) struct Stage {
    page: crate::sys::window::Mapping,
    outcome: Option<Result<Vec<u8>, types::Error>>,
}

/// What one packet of a queue holds.
enum Packet {
    /// An item of this many bytes, inline: at byte 1 of the buffer it was
    /// received into.
    Item(usize),
    /// The key of an item the broker keeps.
    Stored(u64),
    /// The shut-down marker.
    ShutDown,
    /// The promotion marker.
    Promoted,
}

impl WorkerState {
    fn queue(
        &self,
        handle: &Resource<QueueHandle>,
    ) -> wasmtime::Result<Result<&QueueHandle, types::Error>> {
        let q = self.table.get(handle)?;
        Ok(if q.closed {
            Err(types::Error::Closed)
        } else {
            Ok(q)
        })
    }

    /// Sends a packet made of `parts` (tag, then item), or hands it to
    /// the broker when the pipe is full or the broker already holds
    /// earlier items.
    fn send_item(&self, q: &QueueHandle, parts: &[&[u8]]) -> HostResult<()> {
        // A full pipe usually drains within moments (consumers are
        // reading): wait that long before paying for a trip to the broker.
        // With spare CPUs, first retry for up to `SPIN_FOR`, yielding
        // between tries: a `poll` for room wakes every producer waiting in
        // it at once (W8 slept 15 k times a run in it without the retries,
        // and lost ~15%).
        let mut grace = true;
        let mut spin = Spin::new(Deadline::after(None));
        while q.page.spilling().load(Ordering::Acquire) == 0 {
            match ipc::write_packet(q.send.as_fd(), parts, false) {
                Ok(()) => return Ok(Ok(())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if spin.yielded() {
                        continue;
                    }
                    if !grace {
                        break;
                    }
                    grace = false;
                    let _ = ipc::poll_writable(q.send.as_fd(), Deadline::after(Some(SPILL_GRACE)));
                }
                Err(e) => return Ok(Err(io_error(e))),
            }
        }
        let call = Call::QueueSpill {
            id: q.id,
            datagram: parts.concat(),
        };
        Ok(self.upcall(call, &[])?.map(|_| ()))
    }

    /// Hands a large item to the broker to keep; its key.
    fn store_item(&self, q: &QueueHandle, item: Vec<u8>) -> HostResult<u64> {
        Ok(
            match self.upcall(Call::QueueStore { id: q.id, item }, &[])? {
                Ok((Reply::Object(key), _)) => Ok(key),
                Ok((other, _)) => return Err(unexpected(other)),
                Err(e) => Err(e),
            },
        )
    }

    /// An item from the broker, refused if it is over this process's
    /// message limit.
    fn within_limit(&self, item: Vec<u8>) -> Result<Vec<u8>, types::Error> {
        if item.len() as u64 > self.max_message {
            Err(types::Error::Limit(format!(
                "an item of {} bytes exceeds the message limit of {}",
                item.len(),
                self.max_message
            )))
        } else {
            Ok(item)
        }
    }

    /// Takes the item kept under `key` from the broker.
    fn fetch_item(&self, id: u64, key: u64) -> HostResult<Vec<u8>> {
        Ok(match self.upcall(Call::QueueFetch { id, key }, &[])? {
            Ok((Reply::Value(Some(item)), _)) => self.within_limit(item.into_vec()),
            Ok((Reply::Value(None), _)) => Err(types::Error::Other(
                "a stored queue item is gone (a holder of the queue took it out of turn)".into(),
            )),
            Ok((other, _)) => return Err(unexpected(other)),
            Err(e) => Err(e),
        })
    }

    /// `put` on a queue that lives in a stream.
    fn remote_put(&self, id: u64, item: &[u8], timeout_ms: Option<u64>) -> HostResult<()> {
        let item = serde_bytes::ByteBuf::from(item);
        let call = Call::QueueRemote {
            id,
            op: RemoteOp::Put { item, timeout_ms },
        };
        Ok(match self.upcall(call, &[])? {
            Ok((Reply::Bool(true), _)) => Ok(()),
            Ok((Reply::Bool(false), _)) => Err(types::Error::Full),
            Ok((other, _)) => return Err(unexpected(other)),
            Err(e) => Err(e),
        })
    }

    /// `get` on a queue that lives in a stream: an item a producer of
    /// this host sent into the pipe as the queue was promoted comes
    /// first, then the stream's.
    fn remote_get(
        &mut self,
        handle: &Resource<QueueHandle>,
        buf: &mut [u8],
        timeout_ms: Option<u64>,
    ) -> HostResult<Got> {
        let q = self.table.get(handle)?;
        let id = q.id;
        match q.receive(buf, Deadline::after_ms(Some(0))) {
            Ok(Packet::Item(len)) => return Ok(Ok(Got::Staged(len))),
            Ok(Packet::Stored(key)) => return Ok(self.fetch_item(id, key)?.map(Got::Whole)),
            Ok(Packet::ShutDown | Packet::Promoted) => {
                let marker = if matches!(q.page.shutdown().load(Ordering::Acquire), 0) {
                    PROMOTED
                } else {
                    SHUT_DOWN
                };
                let q = self.table.get(handle)?;
                self.send_item(q, &[&[marker]])?.ok();
            }
            Err(_) => {}
        }
        let call = Call::QueueRemote {
            id,
            op: RemoteOp::Get { timeout_ms },
        };
        Ok(match self.upcall(call, &[])? {
            Ok((Reply::Value(Some(item)), _)) => self.within_limit(item.into_vec()).map(Got::Whole),
            Ok((Reply::Value(None), _)) => Err(types::Error::Empty),
            Ok((other, _)) => return Err(unexpected(other)),
            Err(e) => Err(e),
        })
    }

    /// `put` of an item: the list of `queue.put`, or the staging page's
    /// bytes for `queue.put-staged`.
    fn put_bytes(
        &mut self,
        handle: &Resource<QueueHandle>,
        outgoing: Outgoing<'_>,
        timeout_ms: Option<u64>,
    ) -> HostResult<()> {
        let item = outgoing.item();
        let q = match self.queue(handle)? {
            Ok(q) => q,
            Err(e) => return Ok(Err(e)),
        };
        if q.page.is_remote() {
            return self.remote_put(q.id, item, timeout_ms);
        }
        if q.page.shutdown().load(Ordering::Acquire) != 0 {
            return Ok(Err(types::Error::ShutDown));
        }
        // A large item travels to the broker in one frame, whatever
        // `--max-message` allows.
        let max = self.max_message.min(MAX_ITEM_BYTES);
        if item.len() as u64 > max {
            return Ok(Err(types::Error::Limit(format!(
                "an item of {} bytes exceeds the message limit of {max}",
                item.len(),
            ))));
        }
        if let Err(e) = q.reserve(Deadline::after_ms(timeout_ms)) {
            return Ok(Err(e));
        }
        let Some(_landing) = LocalPut::begin(&q.page) else {
            // Promoted while this put waited for room.
            q.free_slot();
            return self.remote_put(q.id, item, timeout_ms);
        };
        if q.joinable {
            q.page.unfinished().fetch_add(1, Ordering::AcqRel);
        }
        let sent = if item.len() < QUEUE_INLINE_MAX {
            match outgoing {
                Outgoing::Framed(packet) => self.send_item(q, &[packet])?,
                Outgoing::Bare(item) => self.send_item(q, &[&[INLINE], item])?,
            }
        } else {
            match self.store_item(q, item.to_vec())? {
                Ok(key) => {
                    let sent = self.send_item(q, &[&[STORED], &key.to_le_bytes()])?;
                    if sent.is_err() {
                        self.discard_items(q.id, vec![key])?;
                    }
                    sent
                }
                Err(e) => Err(e),
            }
        };
        if sent.is_err() {
            if q.joinable {
                q.page.unfinished().fetch_sub(1, Ordering::AcqRel);
            }
            q.free_slot();
        }
        Ok(sent)
    }

    /// `get` of one item into `buf` (of [`ipc::PACKET_MAX`] bytes: the
    /// handle's buffer for `queue.get`, the staging page for
    /// `queue.get-staged`), unless it comes whole from the broker.
    fn get_into(
        &mut self,
        handle: &Resource<QueueHandle>,
        buf: &mut [u8],
        timeout_ms: Option<u64>,
    ) -> HostResult<Got> {
        let deadline = Deadline::after_ms(timeout_ms);
        loop {
            let q = self.table.get_mut(handle)?;
            if q.closed {
                return Ok(Err(types::Error::Closed));
            }
            let id = q.id;
            if q.page.is_remote() {
                return self.remote_get(handle, buf, timeout_ms);
            }
            if q.shut_for_gets() {
                if q.page.shutdown().load(Ordering::Acquire) == SHUT_NOW {
                    // Items the broker fed in after the shutdown's drain.
                    let stored = q.drain();
                    self.discard_items(id, stored)?;
                }
                return Ok(Err(types::Error::ShutDown));
            }
            match q.receive(buf, deadline) {
                Ok(Packet::Item(len)) => return Ok(Ok(Got::Staged(len))),
                Ok(Packet::Stored(key)) => return Ok(self.fetch_item(id, key)?.map(Got::Whole)),
                Err(e) => return Ok(Err(e)),
                // The shut-down marker: pass it on to the next consumer,
                // then fail, unless items are still on their way in.
                Ok(Packet::ShutDown) => {
                    let q = self.table.get(handle)?;
                    if let Err(e) = self.send_item(q, &[&[SHUT_DOWN]])? {
                        return Ok(Err(e));
                    }
                }
                // The queue moved into a stream: wake the next consumer,
                // then go to the broker (at the top of the loop).
                Ok(Packet::Promoted) => {
                    let q = self.table.get(handle)?;
                    self.send_item(q, &[&[PROMOTED]])?.ok();
                }
            }
        }
    }

    /// The staging page's bytes, for a staged call to work on.
    ///
    /// The page is mapped, readable and writable, for as long as
    /// `self.stage` holds it, which is the store's life (it is never
    /// replaced once set); it is this process's own (private), and only
    /// the guest's code touches it otherwise, which does not run while a
    /// host call does (the single-threaded guest is inside the call).
    ///
    /// # Safety
    ///
    /// At most one slice from this lives at a time, and none past the
    /// host call it was taken in.
    ///
    /// # Errors
    ///
    /// The guest never asked for the page (`stage`): it has nothing staged.
    unsafe fn staging_page<'a>(&self) -> wasmtime::Result<&'a mut [u8]> {
        let page = &self
            .stage
            .as_ref()
            .ok_or_else(|| wasmtime::Error::msg("a staged call before `queue.stage`"))?
            .page;
        // SAFETY: see above; the caller keeps the slice unique and short.
        Ok(unsafe { std::slice::from_raw_parts_mut(page.as_ptr(), page.len()) })
    }

    /// The queue a staged call names by `key` (`queue.key`: its entry in
    /// this process's table, which holds only what its guest holds).
    ///
    /// # Errors
    ///
    /// No queue of this process has that key (none at all, or another
    /// kind of object): the guest forged it.
    fn staged_queue(&self, key: u32) -> wasmtime::Result<Resource<QueueHandle>> {
        let handle = Resource::new_borrow(key);
        match self.table.get(&handle) {
            Ok(_) => Ok(handle),
            Err(e) => Err(wasmtime::Error::msg(format!(
                "queue key {key} names no queue of this process ({e})"
            ))),
        }
    }

    /// Keeps what a staged call leaves for `take-outcome`.
    fn leave_outcome(&mut self, outcome: Result<Vec<u8>, types::Error>) {
        if let Some(stage) = &mut self.stage {
            stage.outcome = Some(outcome);
        }
    }

    /// Lets go of the items the broker keeps under `keys` (drained by an
    /// immediate shutdown).
    fn discard_items(&self, id: u64, keys: Vec<u64>) -> wasmtime::Result<()> {
        for key in keys {
            self.fetch_item(id, key)?.ok();
        }
        Ok(())
    }
}

impl queue::HostQueue for WorkerState {
    fn put(
        &mut self,
        handle: Resource<QueueHandle>,
        item: Vec<u8>,
        timeout_ms: Option<u64>,
    ) -> HostResult<()> {
        self.put_bytes(&handle, Outgoing::Bare(&item), timeout_ms)
    }

    fn get(
        &mut self,
        handle: Resource<QueueHandle>,
        timeout_ms: Option<u64>,
    ) -> HostResult<Vec<u8>> {
        // The handle's buffer, lent out for the call.
        let mut buf = std::mem::take(&mut self.table.get_mut(&handle)?.scratch);
        buf.resize(ipc::PACKET_MAX, 0);
        let got = self.get_into(&handle, &mut buf, timeout_ms);
        let item = got.map(|got| {
            got.map(|got| match got {
                Got::Staged(len) => buf[1..=len].to_vec(),
                Got::Whole(item) => item,
            })
        });
        if let Ok(q) = self.table.get_mut(&handle) {
            q.scratch = buf;
        }
        item
    }

    fn shutdown(&mut self, handle: Resource<QueueHandle>, immediate: bool) -> HostResult<()> {
        let q = self.table.get_mut(&handle)?;
        if q.closed {
            return Ok(Err(types::Error::Closed));
        }
        if q.page.is_remote() {
            return Ok(Err(types::Error::Other(
                "shutdown() is not supported on a queue shared across hosts".into(),
            )));
        }
        let level = if immediate { SHUT_NOW } else { SHUT };
        let before = q.page.shutdown().fetch_max(level, Ordering::AcqRel);
        // Producers blocked on a full queue re-check and fail.
        q.page.wake_producers(EVERY_PRODUCER);
        if immediate {
            let (id, stored) = (q.id, q.drain());
            self.discard_items(id, stored)?;
        }
        if before != 0 {
            return Ok(Ok(())); // the marker is in already
        }
        let q = self.table.get(&handle)?;
        self.send_item(q, &[&[SHUT_DOWN]])
    }

    fn qsize(&mut self, handle: Resource<QueueHandle>) -> wasmtime::Result<u32> {
        let q = self.table.get(&handle)?;
        if q.page.is_remote() {
            let n = match self.upcall(
                Call::QueueRemote {
                    id: q.id,
                    op: RemoteOp::Qsize,
                },
                &[],
            )? {
                Ok((Reply::Len(n), _)) => n,
                _ => 0,
            };
            return Ok(u32::try_from(n).unwrap_or(u32::MAX));
        }
        Ok(q.page.count().load(Ordering::Acquire))
    }

    fn maxsize(&mut self, handle: Resource<QueueHandle>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&handle)?.maxsize)
    }

    fn task_done(&mut self, handle: Resource<QueueHandle>) -> HostResult<()> {
        let q = match self.queue(&handle)? {
            Ok(q) if q.joinable => q,
            Ok(_) => {
                return Ok(Err(types::Error::Other(
                    "task_done() needs a JoinableQueue".into(),
                )))
            }
            Err(e) => return Ok(Err(e)),
        };
        if q.page.is_remote() {
            let call = Call::QueueRemote {
                id: q.id,
                op: RemoteOp::TaskDone,
            };
            return Ok(match self.upcall(call, &[])? {
                Ok((Reply::Bool(true), _)) => Ok(()),
                Ok((Reply::Bool(false), _)) => Err(types::Error::Other(
                    "task_done() called more times than items were taken on this host".into(),
                )),
                Ok((other, _)) => return Err(unexpected(other)),
                Err(e) => Err(e),
            });
        }
        Ok(if q.mark_done() {
            Ok(())
        } else {
            Err(types::Error::Other(
                "task_done() called too many times".into(),
            ))
        })
    }

    fn join(&mut self, handle: Resource<QueueHandle>, timeout_ms: Option<u64>) -> HostResult<()> {
        let q = match self.queue(&handle)? {
            Ok(q) if q.joinable => q,
            Ok(_) => {
                return Ok(Err(types::Error::Other(
                    "join() needs a JoinableQueue".into(),
                )))
            }
            Err(e) => return Ok(Err(e)),
        };
        if q.page.is_remote() {
            let call = Call::QueueRemote {
                id: q.id,
                op: RemoteOp::Join { timeout_ms },
            };
            return Ok(match self.upcall(call, &[])? {
                Ok((Reply::Bool(true), _)) => Ok(()),
                Ok((Reply::Bool(false), _)) => Err(types::Error::Timeout),
                Ok((other, _)) => return Err(unexpected(other)),
                Err(e) => Err(e),
            });
        }
        let deadline = Deadline::after_ms(timeout_ms);
        loop {
            let seq = q.page.done_seq().load(Ordering::Acquire);
            if q.page.unfinished().load(Ordering::Acquire) == 0 {
                return Ok(Ok(()));
            }
            if deadline.passed() {
                return Ok(Err(types::Error::Timeout));
            }
            ipc::futex_wait(q.page.done_seq(), seq, deadline);
        }
    }

    fn close(&mut self, handle: Resource<QueueHandle>) -> wasmtime::Result<()> {
        self.table.get_mut(&handle)?.closed = true;
        Ok(())
    }

    fn share(&mut self, handle: Resource<QueueHandle>) -> HostResult<u64> {
        let id = match self.queue(&handle)? {
            Ok(q) => q.id,
            Err(e) => return Ok(Err(e)),
        };
        super::token(self.upcall(Call::Share { id }, &[])?)
    }

    fn key(&mut self, handle: Resource<QueueHandle>) -> wasmtime::Result<u32> {
        self.table.get(&handle)?;
        Ok(handle.rep())
    }

    fn drop(&mut self, handle: Resource<QueueHandle>) -> wasmtime::Result<()> {
        let q = self.table.delete(handle)?;
        self.upcall(Call::Release { id: q.id }, &[])?.ok();
        Ok(())
    }
}

impl queue::Host for WorkerState {
    fn create(&mut self, maxsize: u32, joinable: bool) -> HostResult<Resource<QueueHandle>> {
        Ok(
            match self.upcall(Call::QueueCreate { maxsize, joinable }, &[])? {
                Ok((reply, fds)) => Ok(self.table.push(QueueHandle::from_reply(reply, fds)?)?),
                Err(e) => Err(e),
            },
        )
    }

    fn adopt(&mut self, cap: u64) -> HostResult<Resource<QueueHandle>> {
        Ok(match self.upcall(Call::Adopt { token: cap }, &[])? {
            Ok((reply @ Reply::Queue { .. }, fds)) => {
                Ok(self.table.push(QueueHandle::from_reply(reply, fds)?)?)
            }
            Ok((other, _)) => Err(self.refuse(other)?),
            Err(e) => Err(e),
        })
    }

    fn stage(&mut self) -> wasmtime::Result<Option<u32>> {
        if let (None, Some(window)) = (&self.stage, &self.window) {
            // A full window leaves the queues to `put` and `get`.
            self.stage = window.map_private(ipc::PACKET_MAX).ok().map(|page| Stage {
                page,
                outcome: None,
            });
        }
        Ok(self.stage.as_ref().map(|stage| stage.page.offset()))
    }

    fn put_staged(
        &mut self,
        key: u32,
        len: u32,
        timeout_ms: Option<u64>,
    ) -> wasmtime::Result<bool> {
        // SAFETY: the one slice of the page, dropped when this call returns.
        let page = unsafe { self.staging_page()? };
        let packet = page.get_mut(..=len as usize).ok_or_else(|| {
            wasmtime::Error::msg(format!(
                "a staged item of {len} bytes does not fit the staging page"
            ))
        })?;
        packet[0] = INLINE;
        let handle = self.staged_queue(key)?;
        match self.put_bytes(&handle, Outgoing::Framed(packet), timeout_ms)? {
            Ok(()) => Ok(true),
            Err(e) => {
                self.leave_outcome(Err(e));
                Ok(false)
            }
        }
    }

    fn get_staged(&mut self, key: u32, timeout_ms: Option<u64>) -> wasmtime::Result<u32> {
        // SAFETY: the one slice of the page, dropped when this call returns.
        let page = unsafe { self.staging_page()? };
        let handle = self.staged_queue(key)?;
        let outcome = match self.get_into(&handle, page, timeout_ms)? {
            // A packet is at most a page.
            Ok(Got::Staged(len)) => return Ok(len as u32),
            Ok(Got::Whole(item)) => Ok(item),
            Err(e) => Err(e),
        };
        self.leave_outcome(outcome);
        Ok(NOT_STAGED)
    }

    fn take_outcome(&mut self) -> HostResult<Vec<u8>> {
        Ok(self
            .stage
            .as_mut()
            .and_then(|stage| stage.outcome.take())
            .unwrap_or_else(|| {
                Err(types::Error::Other(
                    "no staged call left an outcome to take".into(),
                ))
            }))
    }
}

// ---------------------------------------------------------------------------
// The broker's side.

/// A spilled packet, and its bytes taken from the run's budget.
type Spilled = (Vec<u8>, Charge);

/// A queue as the broker keeps it: its descriptors, to hand to every
/// holder, the spill of items that did not fit in the pipe, and the large
/// items whose keys travel in the pipe.
pub(crate) struct Hub {
    send: OwnedFd,
    recv: OwnedFd,
    page: Page,
    maxsize: u32,
    joinable: bool,
    /// Items waiting for room in the pipe, and whether a feeder runs.
    spill: Mutex<(VecDeque<Spilled>, bool)>,
    /// Large items, by key, until a consumer fetches them.
    stored: Mutex<HashMap<u64, (Vec<u8>, Charge)>>,
    /// The next key.
    next_key: AtomicU64,
    /// The stream the queue lives in once it was shared with another
    /// host.
    remote: OnceLock<Arc<RemoteQueue>>,
    /// One of the run's objects, and its pipe's pages of shared memory.
    _charges: [Charge; 2],
}

impl Hub {
    /// The reply that gives a process this queue (id `id`).
    pub(crate) fn hand_out(&self, id: u64) -> Answer {
        let fds = vec![
            self.send.try_clone().map_err(other)?,
            self.recv.try_clone().map_err(other)?,
            self.page.0.fd().try_clone_to_owned().map_err(other)?,
        ];
        let reply = Reply::Queue {
            id,
            maxsize: self.maxsize,
            joinable: self.joinable,
        };
        Ok((reply, fds))
    }

    /// Writes spilled items into the pipe, in order, until none are left.
    fn feed(self: Arc<Self>) {
        loop {
            let next = {
                let mut spill = self.spill.lock().unwrap_or_else(|e| e.into_inner());
                match spill.0.pop_front() {
                    Some(item) => item,
                    None => {
                        // Cleared under the lock that `spill` sets it under:
                        // a put that saw it set is already in the deque.
                        self.page.spilling().store(0, Ordering::Release);
                        spill.1 = false;
                        return;
                    }
                }
            };
            // Blocks until readers make room; the charge is given back once
            // the packet is the kernel's.
            if let Err(e) = ipc::write_packet(self.send.as_fd(), &[&next.0], true) {
                tracing::warn!("queue feeder stopped: {e}");
                return;
            }
        }
    }
}

fn other(e: io::Error) -> CallError {
    crate::broker::os_error(e)
}

/// `Call::QueueCreate`.
pub(crate) fn create(broker: &Broker, caller: u64, maxsize: u32, joinable: bool) -> Answer {
    let object = broker.charge_object("a new queue")?;
    let (recv, send) = ipc::packet_pipe(QUEUE_PIPE_BYTES).map_err(other)?;
    // Unread packets take the kernel's memory up to the pipe's size.
    let buffer = ipc::pipe_size(send.as_fd()).map_err(other)?;
    let buffer = broker.charge_shared(buffer as u64, "a new queue's pipe")?;
    let hub = Arc::new(Hub {
        send,
        recv,
        page: Page(SharedMap::page("mpwasm-queue").map_err(other)?),
        maxsize,
        joinable,
        spill: Mutex::new((VecDeque::new(), false)),
        stored: Mutex::new(HashMap::new()),
        next_key: AtomicU64::new(0),
        remote: OnceLock::new(),
        _charges: [object, buffer],
    });
    let id = broker.register(Object::Queue(hub.clone()), Some(caller))?;
    hub.hand_out(id)
}

/// The queue `id`, if `caller` holds it.
fn hub(broker: &Broker, caller: u64, id: u64) -> Result<Arc<Hub>, CallError> {
    match broker.get(caller, id)? {
        Object::Queue(hub) => Ok(hub),
        _ => Err(CallError::InvalidHandle),
    }
}

/// `Call::QueueStore`: keeps a large item, charged to the run's budget,
/// until a consumer fetches it; its key.
pub(crate) fn store(broker: &Broker, caller: u64, id: u64, item: Vec<u8>) -> Answer {
    let hub = hub(broker, caller, id)?;
    let max = broker.launch().sandbox.max_message_bytes();
    if item.len() as u64 > max {
        return Err(CallError::Limit(format!(
            "an item of {} bytes exceeds the message limit of {max}",
            item.len()
        )));
    }
    let charge = broker
        .budget()
        .charge(item.len() as u64 + QUEUE_ITEM_COST, "a queued item")?;
    let key = hub.next_key.fetch_add(1, Ordering::Relaxed);
    let mut stored = hub.stored.lock().unwrap_or_else(|e| e.into_inner());
    stored.insert(key, (item, charge));
    Ok((Reply::Object(key), Vec::new()))
}

/// `Call::QueueFetch`: hands over (and forgets) the item kept under `key`;
/// `Value(None)` if there is none.
pub(crate) fn fetch(broker: &Broker, caller: u64, id: u64, key: u64) -> Answer {
    let hub = hub(broker, caller, id)?;
    let item = hub
        .stored
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&key);
    // The charge goes back with the item, which the reply frame now holds.
    let item = item.map(|(bytes, _charge)| serde_bytes::ByteBuf::from(bytes));
    Ok((Reply::Value(item), Vec::new()))
}

/// `Call::QueueSpill`: keeps the packet, charged to the run's budget, and
/// makes sure a feeder runs.
pub(crate) fn spill(
    broker: &Broker,
    caller: u64,
    id: u64,
    packet: Vec<u8>,
    fds: Vec<OwnedFd>,
) -> Answer {
    let hub = hub(broker, caller, id)?;
    // The worker is untrusted: the packet must be one it could have sent.
    if packet.is_empty() || packet.len() > ipc::PACKET_MAX || !fds.is_empty() {
        return Err(CallError::Other("malformed spilled item".into()));
    }
    let charge = broker.budget().charge(
        packet.len() as u64 + QUEUE_ITEM_COST,
        "a queue item waiting for room in its pipe",
    )?;
    let mut spill = hub.spill.lock().unwrap_or_else(|e| e.into_inner());
    spill.0.push_back((packet, charge));
    hub.page.spilling().store(1, Ordering::Release);
    if !spill.1 {
        spill.1 = true;
        let feeder = hub.clone();
        std::thread::Builder::new()
            .name("mpwasm-queue-feeder".into())
            .spawn(move || feeder.feed())
            .map_err(other)?;
    }
    Ok((Reply::Ok, Vec::new()))
}

// ---------------------------------------------------------------------------
// Queues in a JetStream stream (`crate::cluster::queue`).

/// A new queue of this broker's run, for the caller's queue `remote` (a
/// worker host adopting a token it never minted): a hub like any other,
/// its `remote` word set, so every operation goes to the stream.
pub(crate) fn remote_hub(broker: &Broker, remote: RemoteQueue) -> Result<Arc<Hub>, CallError> {
    let object = broker.charge_object("a queue shared across hosts")?;
    // The pipe carries only the promotion marker: the smallest size.
    let (recv, send) = ipc::packet_pipe(ipc::PACKET_MAX).map_err(other)?;
    let buffer = broker.charge_shared(0, "a queue shared across hosts")?;
    let (maxsize, joinable) = remote.shape();
    let hub = Arc::new(Hub {
        send,
        recv,
        page: Page(SharedMap::page("mpwasm-queue").map_err(other)?),
        maxsize,
        joinable,
        spill: Mutex::new((VecDeque::new(), false)),
        stored: Mutex::new(HashMap::new()),
        next_key: AtomicU64::new(0),
        remote: OnceLock::from(Arc::new(remote)),
        _charges: [object, buffer],
    });
    hub.page.remote().store(1, Ordering::Release);
    Ok(hub)
}

/// `Call::QueueRemote`: one operation on a queue that lives in a stream.
pub(crate) fn remote(broker: &Broker, caller: u64, id: u64, op: RemoteOp) -> Answer {
    let hub = hub(broker, caller, id)?;
    let Some(queue) = hub.remote.get().cloned() else {
        return Err(CallError::Other(
            "the queue is not shared across hosts".into(),
        ));
    };
    let ms = |t: Option<u64>| t.map(std::time::Duration::from_millis);
    let reply = match op {
        RemoteOp::Put { item, timeout_ms } => {
            let max = broker.launch().sandbox.max_message_bytes();
            if item.len() as u64 > max {
                return Err(CallError::Limit(format!(
                    "an item of {} bytes exceeds the message limit of {max}",
                    item.len()
                )));
            }
            let item = bytes::Bytes::from(item.into_vec());
            Reply::Bool(queue.block_on(queue.put(item, ms(timeout_ms)))?)
        }
        RemoteOp::Get { timeout_ms } => {
            let item = queue.block_on(queue.get(ms(timeout_ms)))?;
            // From another machine: bounded before it goes into a frame.
            let max = broker
                .launch()
                .sandbox
                .max_message_bytes()
                .min(MAX_ITEM_BYTES);
            if let Some(item) = item.as_ref().filter(|i| i.len() as u64 > max) {
                return Err(CallError::Limit(format!(
                    "an item of {} bytes from another host exceeds the message limit of {max}",
                    item.len()
                )));
            }
            Reply::Value(item.map(serde_bytes::ByteBuf::from))
        }
        RemoteOp::Qsize => Reply::Len(queue.block_on(queue.qsize())),
        RemoteOp::TaskDone if hub.joinable => Reply::Bool(queue.block_on(queue.task_done())),
        RemoteOp::Join { timeout_ms } if hub.joinable => {
            Reply::Bool(queue.block_on(queue.join(ms(timeout_ms))))
        }
        RemoteOp::TaskDone | RemoteOp::Join { .. } => {
            return Err(CallError::Other("needs a JoinableQueue".into()))
        }
    };
    Ok((reply, Vec::new()))
}

/// The caller's side of a host's question about queue `token`: moves the
/// queue into a stream (once) and describes it (`maxsize`, `joinable`).
///
/// The `remote` word is set first, so later operations go to the broker;
/// the items already in the pipe and the spill then go into the stream
/// in their order, while puts through the broker wait; last, a marker wakes
/// the consumers blocked in the pipe's read.
pub(crate) async fn promote(
    broker: &Broker,
    queues: &Arc<Queues>,
    token: u64,
) -> Result<(u32, bool), String> {
    let Some(Object::Queue(hub)) = broker.object_of_token(token) else {
        return Err(format!("no queue has token {token:#x}"));
    };
    let _one_at_a_time = queues.promoting().await;
    if let Some(queue) = hub.remote.get() {
        return Ok(queue.shape());
    }
    let queue = RemoteQueue::open(queues, token, hub.maxsize, hub.joinable, true)
        .await
        .map_err(|e| e.to_string())?;
    let queue = Arc::new(queue);
    let puts_wait = queue.hold_puts().await;
    let _ = hub.remote.set(queue.clone());
    hub.page.remote().store(1, Ordering::SeqCst);
    // A put that took its last look before the store is still on its way
    // into the pipe: let it land first, or it would stay there unseen.
    // Bounded: a producer killed in between never lands.
    let landing = std::time::Instant::now();
    while hub.page.all_local_puts() != 0 && landing.elapsed() < std::time::Duration::from_secs(1) {
        tokio::time::sleep(std::time::Duration::from_micros(200)).await;
    }
    for item in hub.take_all() {
        if let Err(e) = queue.publish(bytes::Bytes::from(item), None).await {
            tracing::warn!("cluster: an item lost moving a queue into its stream: {e}");
        }
    }
    drop(puts_wait);
    if let Err(e) = ipc::write_packet(hub.send.as_fd(), &[&[PROMOTED]], false) {
        tracing::debug!("cluster: waking a promoted queue's consumers: {e}");
    }
    Ok(queue.shape())
}

impl Hub {
    /// Every item queued now, in order (pipe, then spill), taken out for
    /// the stream; producers waiting for room are woken (they find the
    /// queue promoted).
    fn take_all(&self) -> Vec<Vec<u8>> {
        let mut items = Vec::new();
        let mut scratch = vec![0u8; ipc::PACKET_MAX];
        let mut packets = Vec::new();
        while let Ok(len @ 1..) = ipc::read_packet(self.recv.as_fd(), &mut scratch, false) {
            packets.push(scratch[..len].to_vec());
        }
        let spilled = std::mem::take(&mut self.spill.lock().unwrap_or_else(|e| e.into_inner()).0);
        packets.extend(spilled.into_iter().map(|(packet, _charge)| packet));
        for packet in packets {
            let item = match packet.first() {
                Some(&INLINE) => Some(packet[1..].to_vec()),
                Some(&STORED) if packet.len() == 9 => {
                    let key = u64::from_le_bytes(packet[1..9].try_into().expect("8 bytes"));
                    let mut stored = self.stored.lock().unwrap_or_else(|e| e.into_inner());
                    stored.remove(&key).map(|(bytes, _charge)| bytes)
                }
                _ => None,
            };
            if let Some(item) = item {
                items.push(item);
                let _ = self
                    .page
                    .count()
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
            }
        }
        self.page.wake_producers(EVERY_PRODUCER);
        items
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// A handle of its own on the queue made of `pipe` and `page`, as
    /// each process holding the queue has.
    fn handle(pipe: &(OwnedFd, OwnedFd), page: &SharedMap, maxsize: u32) -> QueueHandle {
        let page = SharedMap::map(
            page.fd().try_clone_to_owned().unwrap(),
            SharedMap::PAGE_WORDS * 4,
        )
        .unwrap();
        QueueHandle {
            id: 1,
            recv: pipe.0.try_clone().unwrap(),
            send: pipe.1.try_clone().unwrap(),
            page: Page(page),
            maxsize,
            joinable: false,
            closed: false,
            scratch: Vec::new(),
        }
    }

    /// Six producers on a queue of two slots sleep on it most of the time;
    /// one consumer takes every item, once, in each producer's order. The
    /// count of sleeping producers, which wakers now take down for those
    /// they wake, ends at zero: it neither drifts up (every later `get`
    /// would make a futex call for nobody) nor loses anyone on the way (a
    /// producer left asleep would stall the run for `RECHECK` at a time).
    #[test]
    fn wakers_count_out_the_producers_they_wake() {
        const PRODUCERS: u8 = 6;
        const EACH: u32 = 2_000;
        let pipe = ipc::packet_pipe(ipc::PACKET_MAX).unwrap();
        let page = SharedMap::page("test-queue").unwrap();
        std::thread::scope(|s| {
            for p in 0..PRODUCERS {
                let q = handle(&pipe, &page, 2);
                s.spawn(move || {
                    for i in 0..EACH {
                        q.reserve(Deadline::after(None)).unwrap();
                        let item = [&[INLINE, p][..], &i.to_le_bytes()].concat();
                        ipc::write_packet(q.send.as_fd(), &[&item], true).unwrap();
                    }
                });
            }
            let q = handle(&pipe, &page, 2);
            let mut buf = vec![0; ipc::PACKET_MAX];
            let mut next = [0u32; PRODUCERS as usize];
            for _ in 0..u32::from(PRODUCERS) * EACH {
                let Ok(Packet::Item(5)) = q.receive(&mut buf, Deadline::after(None)) else {
                    panic!("not an item of 5 bytes");
                };
                let (p, i) = (
                    buf[1] as usize,
                    u32::from_le_bytes(buf[2..6].try_into().unwrap()),
                );
                assert_eq!(i, next[p], "producer {p}'s items out of order or repeated");
                next[p] += 1;
            }
            assert!(next.iter().all(|&n| n == EACH));
        });
        let page = Page(page);
        assert_eq!(page.count().load(Ordering::SeqCst), 0);
        assert_eq!(page.put_waiters().load(Ordering::SeqCst), 0);
    }
}
