//! `mpwasm:runtime/queue`: Python's `Queue`, `JoinableQueue`, `SimpleQueue`.
//!
//! Hops of a `put` (design and reasoning: `docs/messaging.md`):
//! 1. the guest's `Queue::put` encodes the item and calls the host function
//!    [`HostQueue::put`](queue::HostQueue::put) in its worker process;
//! 2. a bounded queue reserves a slot in the shared [`Page`] (futex wait
//!    while full);
//! 3. the item goes out as one datagram on the queue's `SOCK_SEQPACKET`
//!    socket — items over [`QUEUE_INLINE_MAX`] ride in a sealed memfd
//!    attached to it;
//! 4. if the socket is full, the datagram goes to the broker instead
//!    (`Call::QueueSpill`, [`spill`]), whose feeder thread writes it in as
//!    readers make room;
//! 5. a consumer's `get` receives the datagram (whole, and only it), frees
//!    the slot and wakes a blocked producer.
//!
//! `shutdown` (Python 3.13's `Queue.shutdown`) sets a word of the page that
//! puts check, wakes producers blocked on a full queue, and sends one
//! shut-down marker datagram behind the items, which wakes the consumers
//! blocked in the receive one after another (each sends it on).

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use wasmtime::component::Resource;

use super::{io_error, unexpected, HostResult};
use crate::bindings::{queue, types};
use crate::broker::{Answer, Broker, Object};
use crate::limits::QUEUE_INLINE_MAX;
use crate::sys::ipc::{self, Deadline, SharedMap};
use crate::wire::{Call, CallError, Reply};
use crate::worker::child::WorkerState;

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
    /// Producers sleeping on `taken_seq`.
    fn put_waiters(&self) -> &AtomicU32 {
        self.0.word(2)
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
}

/// `shutdown()`: puts fail; gets fail once the queue is empty.
const SHUT: u32 = 1;
/// `shutdown(immediate=True)`: the queue is emptied and gets fail at once.
const SHUT_NOW: u32 = 2;

/// How long a `put` waits for room in a full socket before it spills the
/// item to the broker.
const SPILL_GRACE: std::time::Duration = std::time::Duration::from_millis(2);

/// Datagram tags.
const INLINE: u8 = 0;
const IN_MEMFD: u8 = 1;
/// Not an item: the queue was shut down. Sent once by `shutdown` to wake
/// consumers blocked in the receive; each consumer that gets it sends it on
/// for the next one, so it stays in the socket for good.
const SHUT_DOWN: u8 = 2;

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
    fn reserve(&self, deadline: Deadline) -> Result<(), types::Error> {
        let count = self.page.count();
        if self.maxsize == 0 {
            count.fetch_add(1, Ordering::AcqRel);
            return Ok(());
        }
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
            if self.page.shutdown().load(Ordering::Acquire) != 0 {
                return Err(types::Error::ShutDown);
            }
            if deadline.passed() {
                return Err(types::Error::Full);
            }
            let seq = self.page.taken_seq().load(Ordering::Acquire);
            self.page.put_waiters().fetch_add(1, Ordering::AcqRel);
            if count.load(Ordering::Acquire) >= self.maxsize {
                ipc::futex_wait(self.page.taken_seq(), seq, deadline);
            }
            self.page.put_waiters().fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Gives back a slot: an item was taken, or a put failed after reserving.
    fn free_slot(&self) {
        let _ = self
            .page
            .count()
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if self.maxsize > 0 {
            self.page.taken_seq().fetch_add(1, Ordering::AcqRel);
            if self.page.put_waiters().load(Ordering::Acquire) > 0 {
                ipc::futex_wake_all(self.page.taken_seq());
            }
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
    fn drain(&mut self) {
        if self.scratch.is_empty() {
            self.scratch = vec![0u8; QUEUE_INLINE_MAX + 1];
        }
        let mut fds = Vec::new();
        while let Ok(got) = ipc::recv(self.recv.as_fd(), &mut self.scratch, &mut fds, false) {
            fds.clear();
            if got.len == 0 || self.scratch[0] == SHUT_DOWN {
                continue;
            }
            self.free_slot();
            if self.joinable {
                self.mark_done();
            }
        }
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

    /// Receives one datagram, waiting until the deadline; `None` for the
    /// shut-down marker.
    fn receive(&mut self, deadline: Deadline, max: u64) -> Result<Option<Vec<u8>>, types::Error> {
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
            return Ok(None);
        }
        self.free_slot();
        match (self.scratch[0], fds.len()) {
            (INLINE, 0) => Ok(Some(self.scratch[1..got.len].to_vec())),
            (IN_MEMFD, 1) => ipc::memfd_read(fds.pop().expect("one"), max)
                .map(Some)
                .map_err(|e| {
                    if e.kind() == io::ErrorKind::InvalidData {
                        types::Error::Limit(e.to_string())
                    } else {
                        io_error(e)
                    }
                }),
            _ => Err(malformed()),
        }
    }
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
    fn send_item(&self, q: &QueueHandle, parts: &[&[u8]], fd: Option<&OwnedFd>) -> HostResult<()> {
        let fds: Vec<_> = fd.iter().map(|f| f.as_fd()).collect();
        // A full socket usually drains within moments (consumers are
        // reading): wait that long before paying for a trip to the broker.
        let mut grace = true;
        while q.page.spilling().load(Ordering::Acquire) == 0 {
            match ipc::send(q.send.as_fd(), parts, &fds, false) {
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
            with_fd: fd.is_some(),
        };
        Ok(self.upcall(call, &fds)?.map(|_| ()))
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
        if q.page.shutdown().load(Ordering::Acquire) != 0 {
            return Ok(Err(types::Error::ShutDown));
        }
        if item.len() as u64 > self.max_message {
            return Ok(Err(types::Error::Limit(format!(
                "an item of {} bytes exceeds the message limit of {}",
                item.len(),
                self.max_message
            ))));
        }
        if let Err(e) = q.reserve(Deadline::after_ms(timeout_ms)) {
            return Ok(Err(e));
        }
        if q.joinable {
            q.page.unfinished().fetch_add(1, Ordering::AcqRel);
        }
        let sent = if item.len() < QUEUE_INLINE_MAX {
            self.send_item(q, &[&[INLINE], &item], None)?
        } else {
            match ipc::memfd_with(&item) {
                Ok(fd) => self.send_item(q, &[&[IN_MEMFD]], Some(&fd))?,
                Err(e) => Err(io_error(e)),
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
        let max = self.max_message;
        let deadline = Deadline::after_ms(timeout_ms);
        loop {
            let q = self.table.get_mut(&handle)?;
            if q.closed {
                return Ok(Err(types::Error::Closed));
            }
            if q.shut_for_gets() {
                if q.page.shutdown().load(Ordering::Acquire) == SHUT_NOW {
                    // Items the broker fed in after the shutdown's drain.
                    q.drain();
                }
                return Ok(Err(types::Error::ShutDown));
            }
            match q.receive(deadline, max) {
                Ok(Some(item)) => return Ok(Ok(item)),
                Err(e) => return Ok(Err(e)),
                // The shut-down marker: pass it on to the next consumer,
                // then fail, unless items are still on their way in.
                Ok(None) => {
                    let q = self.table.get(&handle)?;
                    if let Err(e) = self.send_item(q, &[&[SHUT_DOWN]], None)? {
                        return Ok(Err(e));
                    }
                }
            }
        }
    }

    fn shutdown(&mut self, handle: Resource<QueueHandle>, immediate: bool) -> HostResult<()> {
        let q = self.table.get_mut(&handle)?;
        if q.closed {
            return Ok(Err(types::Error::Closed));
        }
        let level = if immediate { SHUT_NOW } else { SHUT };
        let before = q.page.shutdown().fetch_max(level, Ordering::AcqRel);
        // Producers blocked on a full queue re-check and fail.
        q.page.taken_seq().fetch_add(1, Ordering::AcqRel);
        ipc::futex_wake_all(q.page.taken_seq());
        if immediate {
            q.drain();
        }
        if before != 0 {
            return Ok(Ok(())); // the marker is in already
        }
        let q = self.table.get(&handle)?;
        self.send_item(q, &[&[SHUT_DOWN]], None)
    }

    fn qsize(&mut self, handle: Resource<QueueHandle>) -> wasmtime::Result<u32> {
        Ok(self
            .table
            .get(&handle)?
            .page
            .count()
            .load(Ordering::Acquire))
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

/// A spilled datagram and its descriptor.
type Spilled = (Vec<u8>, Option<OwnedFd>);

/// A queue as the broker keeps it: its descriptors, to hand to every
/// holder, and the spill of items that did not fit in the socket.
pub(crate) struct Hub {
    send: OwnedFd,
    recv: OwnedFd,
    page: Page,
    maxsize: u32,
    joinable: bool,
    /// Items waiting for room in the socket, and whether a feeder runs.
    spill: Mutex<(VecDeque<Spilled>, bool)>,
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
            let fds: Vec<_> = next.1.iter().map(|f| f.as_fd()).collect();
            if let Err(e) = ipc::send(self.send.as_fd(), &[&next.0], &fds, true) {
                tracing::warn!("queue feeder stopped: {e}");
                return;
            }
        }
    }
}

fn other(e: io::Error) -> CallError {
    CallError::Other(e.to_string())
}

/// `Call::QueueCreate`.
pub(crate) fn create(broker: &Broker, caller: u64, maxsize: u32, joinable: bool) -> Answer {
    let (send, recv) = ipc::socketpair(ipc::Kind::SeqPacket).map_err(other)?;
    let hub = Arc::new(Hub {
        send,
        recv,
        page: Page(SharedMap::page("mpwasm-queue").map_err(other)?),
        maxsize,
        joinable,
        spill: Mutex::new((VecDeque::new(), false)),
    });
    let id = broker.register(Object::Queue(hub.clone()), Some(caller))?;
    hub.hand_out(id)
}

/// `Call::QueueSpill`: keeps the datagram and makes sure a feeder runs.
pub(crate) fn spill(
    broker: &Broker,
    caller: u64,
    id: u64,
    datagram: Vec<u8>,
    with_fd: bool,
    mut fds: Vec<OwnedFd>,
) -> Answer {
    let Object::Queue(hub) = broker.get(caller, id)? else {
        return Err(CallError::InvalidHandle);
    };
    // The worker is untrusted: the datagram must be one it could have sent.
    if datagram.is_empty()
        || datagram.len() > QUEUE_INLINE_MAX + 1
        || fds.len() != usize::from(with_fd)
    {
        return Err(CallError::Other("malformed spilled item".into()));
    }
    let fd = fds.pop();
    let mut spill = hub.spill.lock().unwrap_or_else(|e| e.into_inner());
    spill.0.push_back((datagram, fd));
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
