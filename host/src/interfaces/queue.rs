//! `mpwasm:runtime/queue`: Python's `Queue`, `JoinableQueue`, `SimpleQueue`.
//!
//! Hops of a `put` (design and reasoning: `docs/messaging.md`):
//! 1. the guest's `Queue::put` encodes the item and calls the host function
//!    [`HostQueue::put`](queue::HostQueue::put) in its worker process;
//! 2. a bounded queue reserves a slot in the shared [`Page`] (futex wait
//!    while full);
//! 3. the item goes out as one datagram on the queue's `SOCK_SEQPACKET`
//!    socket — an item of [`QUEUE_INLINE_MAX`] bytes or more is first
//!    handed to the broker (`Call::QueueStore`, [`store`]), which keeps it
//!    under a key charged to the run's budget, and the datagram carries
//!    only that key;
//! 4. if the socket is full, the datagram goes to the broker instead
//!    (`Call::QueueSpill`, [`spill`]), whose feeder thread writes it in as
//!    readers make room;
//! 5. a consumer's `get` receives the datagram (whole, and only it), frees
//!    the slot and wakes a blocked producer; for a key it then fetches the
//!    item from the broker (`Call::QueueFetch`, [`fetch`]).
//!
//! No datagram carries a descriptor: descriptors in flight in a socket
//! count against the kernel's per-user limit (`RLIMIT_NOFILE` of
//! descriptors in flight, for users without `CAP_SYS_RESOURCE`), which
//! unread items would otherwise use up for every other run of the same
//! user (issue 10, item 1).
//!
//! `shutdown` (Python 3.13's `Queue.shutdown`) sets a word of the page that
//! puts check, wakes producers blocked on a full queue, and sends one
//! shut-down marker datagram behind the items, which wakes the consumers
//! blocked in the receive one after another (each sends it on).

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
use crate::limits::{MAX_FRAME_BYTES, QUEUE_INLINE_MAX, QUEUE_ITEM_COST, QUEUE_SOCKET_BUFFER};
use crate::sys::ipc::{self, Deadline, SharedMap};
use crate::wire::{Call, CallError, RemoteOp, Reply};
use crate::worker::child::WorkerState;

/// The longest a producer sleeps on a full queue before looking again: a
/// producer woken for a freed slot and killed before taking it leaves the
/// others asleep until the next `get` — or this long.
const RECHECK: std::time::Duration = std::time::Duration::from_millis(50);

/// The words of a queue's shared page.
struct Page(SharedMap);

impl Page {
    /// Items put and not yet taken (`qsize`); the semaphore of a bounded queue.
    fn count(&self) -> &AtomicU32 {
        self.0.word(0)
    }
    /// Bumped whenever an item is taken: what blocked producers sleep on.
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
    fn wake_producers(&self, n: u32) {
        self.taken_seq().fetch_add(1, Ordering::SeqCst);
        if self.put_waiters().load(Ordering::SeqCst) == 0 {
            return;
        }
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
        self.0.word(3)
    }
    /// Bumped when `unfinished` reaches zero: what `join` sleeps on.
    fn done_seq(&self) -> &AtomicU32 {
        self.0.word(4)
    }
    /// Non-zero while the broker holds spilled items: puts go there too.
    fn spilling(&self) -> &AtomicU32 {
        self.0.word(5)
    }
    /// [`SHUT`] or [`SHUT_NOW`] once the queue was shut down, else 0.
    fn shutdown(&self) -> &AtomicU32 {
        self.0.word(6)
    }
    /// Non-zero once the queue lives in a JetStream stream (it was shared
    /// with a task on another host, `crate::cluster::queue`): every
    /// operation then goes to the broker.
    fn remote(&self) -> &AtomicU32 {
        self.0.word(7)
    }
    /// Whether the queue lives in a stream now.
    fn is_remote(&self) -> bool {
        self.remote().load(Ordering::Acquire) != 0
    }
    /// Puts past their last look at [`remote`](Self::remote) that have not
    /// yet landed in the socket: a promotion waits for them before it
    /// moves the socket's items into the stream.
    fn local_puts(&self) -> &AtomicU32 {
        self.0.word(8)
    }
}

/// A put counted in [`Page::local_puts`] until it is dropped.
struct LocalPut<'a>(&'a Page);

impl<'a> LocalPut<'a> {
    /// Counts a put, then takes the last look at `remote`: `None` if the
    /// queue was promoted (the put must go to the stream). Sequentially
    /// consistent with [`promote`]'s store and load, so either this put
    /// sees the promotion or the promotion sees this put.
    fn begin(page: &'a Page) -> Option<Self> {
        page.local_puts().fetch_add(1, Ordering::SeqCst);
        let put = LocalPut(page);
        (page.remote().load(Ordering::SeqCst) == 0).then_some(put)
    }
}

impl Drop for LocalPut<'_> {
    fn drop(&mut self) {
        self.0.local_puts().fetch_sub(1, Ordering::SeqCst);
    }
}

/// `shutdown()`: puts fail; gets fail once the queue is empty.
const SHUT: u32 = 1;
/// `shutdown(immediate=True)`: the queue is emptied and gets fail at once.
const SHUT_NOW: u32 = 2;

/// How long a `put` waits for room in a full socket before it spills the
/// item to the broker.
const SPILL_GRACE: std::time::Duration = std::time::Duration::from_millis(2);

/// The largest item a queue carries, whatever `--max-message` says: a
/// stored item goes to the broker in one frame, with room for the call's
/// other fields. (Wasmtime's own cap on bytes copied in one host call,
/// about 128 MiB by default, usually refuses such an item first.)
const MAX_ITEM_BYTES: u64 = MAX_FRAME_BYTES as u64 - 4096;

/// Datagram tags.
const INLINE: u8 = 0;
/// The item is kept by the broker: the datagram is the tag and its key
/// (8 bytes, little-endian).
const STORED: u8 = 1;
/// Not an item: the queue was shut down. Sent once by `shutdown` to wake
/// consumers blocked in the receive; each consumer that gets it sends it on
/// for the next one, so it stays in the socket for good.
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
    /// Where datagrams are received (allocated at the first `get`).
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

    /// The receiving socket, for `wait`.
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
            self.scratch = vec![0u8; QUEUE_INLINE_MAX + 1];
        }
        let mut fds = Vec::new();
        let mut stored = Vec::new();
        while let Ok(got) = ipc::recv(self.recv.as_fd(), &mut self.scratch, &mut fds, false) {
            fds.clear();
            if got.len == 0 || self.scratch[0] == SHUT_DOWN || self.scratch[0] == PROMOTED {
                continue;
            }
            if (self.scratch[0], got.len) == (STORED, 9) {
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

    /// Receives one datagram, waiting until the deadline.
    fn receive(&mut self, deadline: Deadline) -> Result<Datagram, types::Error> {
        if self.scratch.is_empty() {
            self.scratch = vec![0u8; QUEUE_INLINE_MAX + 1];
        }
        let mut fds = Vec::new();
        // Without a deadline, block in the receive itself: the kernel then
        // wakes one waiting consumer per datagram, where `poll` would wake
        // them all.
        let block = deadline.remaining().is_none();
        let got = loop {
            match ipc::recv(self.recv.as_fd(), &mut self.scratch, &mut fds, block) {
                Ok(got) => break got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if deadline.passed() {
                        return Err(types::Error::Empty);
                    }
                    ipc::poll_readable(&[self.recv.as_fd()], deadline).map_err(io_error)?;
                }
                Err(e) => return Err(io_error(e)),
            }
        };
        // Another process wrote this datagram: check it.
        let malformed = || types::Error::Other("malformed queue item (a writer is broken)".into());
        if got.truncated || got.len == 0 {
            self.free_slot();
            return Err(malformed());
        }
        if (self.scratch[0], fds.len(), got.len) == (SHUT_DOWN, 0, 1) {
            return Ok(Datagram::ShutDown);
        }
        if (self.scratch[0], fds.len(), got.len) == (PROMOTED, 0, 1) {
            return Ok(Datagram::Promoted);
        }
        self.free_slot();
        match (self.scratch[0], fds.len(), got.len) {
            (INLINE, 0, _) => Ok(Datagram::Item(self.scratch[1..got.len].to_vec())),
            (STORED, 0, 9) => {
                let key = u64::from_le_bytes(self.scratch[1..9].try_into().expect("8 bytes"));
                Ok(Datagram::Stored(key))
            }
            // Descriptors that came with a malformed datagram are closed
            // here, with `fds`.
            _ => Err(malformed()),
        }
    }
}

/// What one datagram of a queue holds.
enum Datagram {
    /// An item, inline.
    Item(Vec<u8>),
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

    /// Sends a datagram made of `parts` (tag, then item), or hands it to
    /// the broker when the socket is full or the broker already holds
    /// earlier items.
    fn send_item(&self, q: &QueueHandle, parts: &[&[u8]]) -> HostResult<()> {
        // A full socket usually drains within moments (consumers are
        // reading): wait that long before paying for a trip to the broker.
        let mut grace = true;
        while q.page.spilling().load(Ordering::Acquire) == 0 {
            match ipc::send(q.send.as_fd(), parts, &[], false) {
                Ok(_) => return Ok(Ok(())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && grace => {
                    grace = false;
                    let _ = ipc::poll_writable(q.send.as_fd(), Deadline::after(Some(SPILL_GRACE)));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
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
    fn remote_put(&self, id: u64, item: Vec<u8>, timeout_ms: Option<u64>) -> HostResult<()> {
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
    /// this host sent into the socket as the queue was promoted comes
    /// first, then the stream's.
    fn remote_get(
        &mut self,
        handle: &Resource<QueueHandle>,
        timeout_ms: Option<u64>,
    ) -> HostResult<Vec<u8>> {
        let q = self.table.get_mut(handle)?;
        let id = q.id;
        match q.receive(Deadline::after_ms(Some(0))) {
            Ok(Datagram::Item(item)) => return Ok(Ok(item)),
            Ok(Datagram::Stored(key)) => return self.fetch_item(id, key),
            Ok(Datagram::ShutDown | Datagram::Promoted) => {
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
            Ok((Reply::Value(Some(item)), _)) => self.within_limit(item.into_vec()),
            Ok((Reply::Value(None), _)) => Err(types::Error::Empty),
            Ok((other, _)) => return Err(unexpected(other)),
            Err(e) => Err(e),
        })
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
        let q = match self.queue(&handle)? {
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
            self.send_item(q, &[&[INLINE], &item])?
        } else {
            match self.store_item(q, item)? {
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

    fn get(
        &mut self,
        handle: Resource<QueueHandle>,
        timeout_ms: Option<u64>,
    ) -> HostResult<Vec<u8>> {
        let deadline = Deadline::after_ms(timeout_ms);
        loop {
            let q = self.table.get_mut(&handle)?;
            if q.closed {
                return Ok(Err(types::Error::Closed));
            }
            let id = q.id;
            if q.page.is_remote() {
                return self.remote_get(&handle, timeout_ms);
            }
            if q.shut_for_gets() {
                if q.page.shutdown().load(Ordering::Acquire) == SHUT_NOW {
                    // Items the broker fed in after the shutdown's drain.
                    let stored = q.drain();
                    self.discard_items(id, stored)?;
                }
                return Ok(Err(types::Error::ShutDown));
            }
            match q.receive(deadline) {
                Ok(Datagram::Item(item)) => return Ok(Ok(item)),
                Ok(Datagram::Stored(key)) => return self.fetch_item(id, key),
                Err(e) => return Ok(Err(e)),
                // The shut-down marker: pass it on to the next consumer,
                // then fail, unless items are still on their way in.
                Ok(Datagram::ShutDown) => {
                    let q = self.table.get(&handle)?;
                    if let Err(e) = self.send_item(q, &[&[SHUT_DOWN]])? {
                        return Ok(Err(e));
                    }
                }
                // The queue moved into a stream: wake the next consumer,
                // then go to the broker (at the top of the loop).
                Ok(Datagram::Promoted) => {
                    let q = self.table.get(&handle)?;
                    self.send_item(q, &[&[PROMOTED]])?.ok();
                }
            }
        }
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
        q.page.wake_producers(i32::MAX as u32);
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
}

// ---------------------------------------------------------------------------
// The broker's side.

/// A spilled datagram, and its bytes taken from the run's budget.
type Spilled = (Vec<u8>, Charge);

/// A queue as the broker keeps it: its descriptors, to hand to every
/// holder, the spill of items that did not fit in the socket, and the large
/// items whose keys travel in the socket.
pub(crate) struct Hub {
    send: OwnedFd,
    recv: OwnedFd,
    page: Page,
    maxsize: u32,
    joinable: bool,
    /// Items waiting for room in the socket, and whether a feeder runs.
    spill: Mutex<(VecDeque<Spilled>, bool)>,
    /// Large items, by key, until a consumer fetches them.
    stored: Mutex<HashMap<u64, (Vec<u8>, Charge)>>,
    /// The next key.
    next_key: AtomicU64,
    /// The stream the queue lives in once it was shared with another
    /// host.
    remote: OnceLock<Arc<RemoteQueue>>,
    /// One of the run's objects, and its socket's buffer of shared memory.
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

    /// Writes spilled items into the socket, in order, until none are left.
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
            // the datagram is the kernel's.
            if let Err(e) = ipc::send(self.send.as_fd(), &[&next.0], &[], true) {
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
    let (send, recv) =
        ipc::socketpair(ipc::Kind::SeqPacket, Some(QUEUE_SOCKET_BUFFER)).map_err(other)?;
    // Unread datagrams take the kernel's memory up to the send buffer.
    let buffer = ipc::send_buffer(send.as_fd()).map_err(other)?;
    let buffer = broker.charge_shared(buffer as u64, "a new queue's socket buffer")?;
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

/// `Call::QueueSpill`: keeps the datagram, charged to the run's budget, and
/// makes sure a feeder runs.
pub(crate) fn spill(
    broker: &Broker,
    caller: u64,
    id: u64,
    datagram: Vec<u8>,
    fds: Vec<OwnedFd>,
) -> Answer {
    let hub = hub(broker, caller, id)?;
    // The worker is untrusted: the datagram must be one it could have sent.
    if datagram.is_empty() || datagram.len() > QUEUE_INLINE_MAX + 1 || !fds.is_empty() {
        return Err(CallError::Other("malformed spilled item".into()));
    }
    let charge = broker.budget().charge(
        datagram.len() as u64 + QUEUE_ITEM_COST,
        "a queue item waiting for room in its socket",
    )?;
    let mut spill = hub.spill.lock().unwrap_or_else(|e| e.into_inner());
    spill.0.push_back((datagram, charge));
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
    // The socket carries only the promotion marker: the smallest buffer.
    let (send, recv) = ipc::socketpair(ipc::Kind::SeqPacket, None).map_err(other)?;
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
/// the items already in the socket and the spill then go into the stream
/// in their order, while puts through the broker wait; last, a marker wakes
/// the consumers blocked in the socket's receive.
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
    // into the socket: let it land first, or it would stay there unseen.
    // Bounded: a producer killed in between never lands.
    let landing = std::time::Instant::now();
    while hub.page.local_puts().load(Ordering::SeqCst) != 0
        && landing.elapsed() < std::time::Duration::from_secs(1)
    {
        tokio::time::sleep(std::time::Duration::from_micros(200)).await;
    }
    for item in hub.take_all() {
        if let Err(e) = queue.publish(bytes::Bytes::from(item), None).await {
            tracing::warn!("cluster: an item lost moving a queue into its stream: {e}");
        }
    }
    drop(puts_wait);
    if let Err(e) = ipc::send(hub.send.as_fd(), &[&[PROMOTED]], &[], false) {
        tracing::debug!("cluster: waking a promoted queue's consumers: {e}");
    }
    Ok(queue.shape())
}

impl Hub {
    /// Every item queued now, in order (socket, then spill), taken out for
    /// the stream; producers waiting for room are woken (they find the
    /// queue promoted).
    fn take_all(&self) -> Vec<Vec<u8>> {
        let mut items = Vec::new();
        let mut scratch = vec![0u8; QUEUE_INLINE_MAX + 1];
        let mut fds = Vec::new();
        let mut datagrams = Vec::new();
        while let Ok(got) = ipc::recv(self.recv.as_fd(), &mut scratch, &mut fds, false) {
            fds.clear();
            if !got.truncated {
                datagrams.push(scratch[..got.len].to_vec());
            }
        }
        let spilled = std::mem::take(&mut self.spill.lock().unwrap_or_else(|e| e.into_inner()).0);
        datagrams.extend(spilled.into_iter().map(|(datagram, _charge)| datagram));
        for datagram in datagrams {
            let item = match datagram.first() {
                Some(&INLINE) => Some(datagram[1..].to_vec()),
                Some(&STORED) if datagram.len() == 9 => {
                    let key = u64::from_le_bytes(datagram[1..9].try_into().expect("8 bytes"));
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
        self.page.wake_producers(i32::MAX as u32);
        items
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// A handle of its own on the queue made of `socket` and `page`, as
    /// each process holding the queue has.
    fn handle(socket: &(OwnedFd, OwnedFd), page: &SharedMap, maxsize: u32) -> QueueHandle {
        let page = SharedMap::map(
            page.fd().try_clone_to_owned().unwrap(),
            SharedMap::PAGE_WORDS * 4,
        )
        .unwrap();
        QueueHandle {
            id: 1,
            send: socket.0.try_clone().unwrap(),
            recv: socket.1.try_clone().unwrap(),
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
        let socket = ipc::socketpair(ipc::Kind::SeqPacket, None).unwrap();
        let page = SharedMap::page("test-queue").unwrap();
        std::thread::scope(|s| {
            for p in 0..PRODUCERS {
                let q = handle(&socket, &page, 2);
                s.spawn(move || {
                    for i in 0..EACH {
                        q.reserve(Deadline::after(None)).unwrap();
                        let item = [&[INLINE, p][..], &i.to_le_bytes()].concat();
                        ipc::send(q.send.as_fd(), &[&item], &[], true).unwrap();
                    }
                });
            }
            let mut q = handle(&socket, &page, 2);
            let mut next = [0u32; PRODUCERS as usize];
            for _ in 0..u32::from(PRODUCERS) * EACH {
                let Ok(Datagram::Item(item)) = q.receive(Deadline::after(None)) else {
                    panic!("not an item");
                };
                let (p, i) = (
                    item[0] as usize,
                    u32::from_le_bytes(item[1..].try_into().unwrap()),
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
