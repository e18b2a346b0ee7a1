//! Queues between processes (Python's `multiprocessing.Queue`,
//! `JoinableQueue` and `SimpleQueue`).
//!
//! Items are serde values, encoded with bincode; they go from the putting
//! process straight to the getting one over an OS pipe the host created
//! (see `docs/messaging.md`). Unlike CPython's there is no feeder thread: a
//! `put` has handed the item over by the time it returns, so a producer may
//! exit, or be joined, with items still queued.
//!
//! ```no_run
//! use mpwasm_guest::{Process, Queue};
//!
//! #[mpwasm_guest::task]
//! fn square_all(io: (Queue<u64>, Queue<u64>)) {
//!     let (inbox, outbox) = io;
//!     loop {
//!         let n = inbox.get().unwrap();
//!         if n == 0 {
//!             break;
//!         }
//!         outbox.put(n * n).unwrap();
//!     }
//! }
//!
//! #[mpwasm_guest::main]
//! fn main() -> mpwasm_guest::Result<()> {
//!     let inbox: Queue<u64> = Queue::new()?;
//!     let outbox: Queue<u64> = Queue::new()?;
//!     let mut p = Process::new("square_all", (inbox.clone(), outbox.clone()));
//!     p.start()?;
//!     for n in [1, 2, 3, 0] {
//!         inbox.put(n)?;
//!     }
//!     for _ in 0..3 {
//!         println!("{}", outbox.get()?);
//!     }
//!     p.join()
//! }
//! ```
//!
//! The three types share one implementation: `put` and `get` each have one
//! internal form taking a timeout (`None` blocks, zero does not), behind
//! `put`/`put_timeout`/`put_nowait` and `get`/`get_timeout`/`get_nowait`.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::bindings::queue as wit;
use crate::error::{Error, Result};
use crate::pipe::sealed::{Sealed, Target};
use crate::{capability, codec, time, Waitable};

/// One host queue of `T` items, shared by every clone of a handle in this
/// process: what `Queue`, `JoinableQueue` and `SimpleQueue` wrap.
struct Inner<T> {
    host: Rc<wit::Queue>,
    /// The handle's key for the staged calls, once asked for.
    key: Cell<Option<u32>>,
    /// Whether `close` was called on this process's handle.
    closed: Rc<Cell<bool>>,
    /// `fn(T) -> T`: the queue both takes and gives `T`s, and owns none.
    items: PhantomData<fn(T) -> T>,
}

impl<T> Inner<T> {
    fn create(maxsize: usize, joinable: bool) -> Result<Inner<T>> {
        let maxsize = u32::try_from(maxsize)
            .map_err(|_| Error::Limit(format!("queue maxsize {maxsize} is above {}", u32::MAX)))?;
        Ok(Inner::wrap(wit::create(maxsize, joinable)?))
    }

    fn wrap(host: wit::Queue) -> Inner<T> {
        Inner {
            host: Rc::new(host),
            key: Cell::new(None),
            closed: Rc::new(Cell::new(false)),
            items: PhantomData,
        }
    }

    fn qsize(&self) -> usize {
        self.host.qsize() as usize
    }

    fn maxsize(&self) -> usize {
        self.host.maxsize() as usize
    }

    fn empty(&self) -> bool {
        self.qsize() == 0
    }

    fn full(&self) -> bool {
        let maxsize = self.maxsize();
        maxsize > 0 && self.qsize() >= maxsize
    }

    fn close(&self) {
        self.closed.set(true);
        self.host.close();
    }

    fn join_thread(&self) -> Result<()> {
        if self.closed.get() {
            Ok(())
        } else {
            Err(Error::Other(
                "join_thread() needs the queue closed first".into(),
            ))
        }
    }

    fn shutdown(&self, immediate: bool) -> Result<()> {
        Ok(self.host.shutdown(immediate)?)
    }

    fn task_done(&self) -> Result<()> {
        Ok(self.host.task_done()?)
    }

    fn join(&self, timeout: Option<Duration>) -> Result<()> {
        Ok(self.host.join(time::millis(timeout))?)
    }

    fn serialize<S: Serializer>(
        &self,
        serializer: S,
        name: &'static str,
    ) -> Result<S::Ok, S::Error> {
        capability::serialize(serializer, name, self.host.share())
    }

    fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
        name: &'static str,
    ) -> Result<Inner<T>, D::Error> {
        capability::deserialize(deserializer, name, wit::adopt).map(Inner::wrap)
    }

    fn debug(&self, f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
        f.debug_struct(name)
            .field("handle", &self.host.handle())
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> Inner<T> {
    /// Puts `item`, waiting at most `timeout` for room (`None`: forever).
    ///
    /// An item that fits goes through the staging page when the guest has
    /// a window ([`stage`]): no list crosses the call, and no handle is
    /// lent.
    fn put(&self, item: &T, timeout: Option<Duration>) -> Result<()> {
        let timeout = time::millis(timeout);
        Ok(codec::with_bytes(item, |bytes| match stage() {
            Some(at) if bytes.len() < STAGE_BYTES => {
                crate::window::write(at + 1, bytes);
                if wit::put_staged(self.key(), bytes.len() as u32, timeout) {
                    return Ok(());
                }
                // The host left the put's error (never an item).
                match wit::take_outcome() {
                    Err(e) => Err(e),
                    Ok(_) => Err(crate::bindings::types::Error::Other(
                        "a staged put failed and left no error".into(),
                    )),
                }
            }
            _ => self.host.put(bytes, timeout),
        })??)
    }

    /// Gets an item, waiting at most `timeout` for one (`None`: forever);
    /// through the staging page when the guest has a window.
    fn get(&self, timeout: Option<Duration>) -> Result<T> {
        let timeout = time::millis(timeout);
        let Some(at) = stage() else {
            return codec::from_bytes(&self.host.get(timeout)?);
        };
        match wit::get_staged(self.key(), timeout) {
            NOT_STAGED => codec::from_bytes(&wit::take_outcome()?),
            len => codec::from_filled(len as usize, |buf| {
                crate::window::read(at + 1, buf);
            }),
        }
    }

    /// The handle's key for the staged calls.
    fn key(&self) -> u32 {
        if let Some(key) = self.key.get() {
            return key;
        }
        let key = self.host.key();
        self.key.set(Some(key));
        key
    }
}

/// The staging page's length (`queue.stage` in the WIT): a staged item is
/// at most one byte shorter.
const STAGE_BYTES: usize = 4096;

/// `get-staged`'s answer when it staged nothing (see `take-outcome`).
const NOT_STAGED: u32 = u32::MAX;

/// Where this process's staging page is in its window (`queue.stage`),
/// asked once; `None` without a window.
#[cfg(target_arch = "wasm32")]
fn stage() -> Option<u32> {
    std::thread_local! {
        static STAGE: std::cell::OnceCell<Option<u32>> = const { std::cell::OnceCell::new() };
    }
    STAGE.with(|s| *s.get_or_init(wit::stage))
}

/// No window off wasm (the SDK's own unit tests).
#[cfg(not(target_arch = "wasm32"))]
fn stage() -> Option<u32> {
    None
}

impl<T> Clone for Inner<T> {
    fn clone(&self) -> Self {
        Inner {
            host: Rc::clone(&self.host),
            key: self.key.clone(),
            closed: Rc::clone(&self.closed),
            items: PhantomData,
        }
    }
}

/// Stamps out what `Queue`, `JoinableQueue` and `SimpleQueue` share beside
/// their methods: `Clone`, `Debug`, the capability `Serialize` /
/// `Deserialize`, and `Waitable`.
macro_rules! handle_impls {
    ($ty:ident, $name:literal) => {
        impl<T> Clone for $ty<T> {
            /// Another handle to the same queue, in this process. Closing
            /// one closes them all.
            fn clone(&self) -> Self {
                $ty(self.0.clone())
            }
        }

        impl<T> fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.debug(f, stringify!($ty))
            }
        }

        impl<T> Serialize for $ty<T> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(serializer, $name)
            }
        }

        impl<'de, T> Deserialize<'de> for $ty<T> {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                Inner::deserialize(deserializer, $name).map($ty)
            }
        }

        impl<T> Sealed for $ty<T> {
            fn target(&self) -> Target<'_> {
                Target::Queue(&self.0.host)
            }
        }

        impl<T> Waitable for $ty<T> {}
    };
}

/// A multi-producer, multi-consumer FIFO queue of `T` between processes
/// (Python's `multiprocessing.Queue`).
///
/// Clones are handles to the same queue. Sending a handle to another
/// process (in [`Process`](crate::Process) arguments, a queue item or a pipe
/// message) gives the receiver a handle to the same queue.
pub struct Queue<T>(Inner<T>);

handle_impls!(Queue, "mpwasm::Queue");

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// An unbounded queue (Python's `Queue()`).
    ///
    /// # Errors
    ///
    /// The host's error, e.g. [`Error::Limit`] over a sandbox limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q: mpwasm_guest::Queue<String> = mpwasm_guest::Queue::new()?;
    /// q.put("hello".to_string())?;
    /// assert_eq!(q.get()?, "hello");
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn new() -> Result<Queue<T>> {
        Queue::with_maxsize(0)
    }

    /// A queue holding at most `maxsize` items; 0 is unbounded (Python's
    /// `Queue(maxsize)`).
    ///
    /// # Errors
    ///
    /// [`Error::Limit`] if `maxsize` does not fit in a `u32`; the host's
    /// error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use mpwasm_guest::{Error, Queue};
    ///
    /// let q = Queue::with_maxsize(1)?;
    /// q.put(1)?;
    /// assert_eq!(q.put_nowait(2), Err(Error::Full));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn with_maxsize(maxsize: usize) -> Result<Queue<T>> {
        Inner::create(maxsize, false).map(Queue)
    }

    /// Puts `item`, waiting as long as the queue is full.
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] if `item` cannot be encoded; [`Error::Closed`] after
    /// [`close`](Self::close); [`Error::Limit`] if the item is too large.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q = mpwasm_guest::Queue::new()?;
    /// q.put(vec![1, 2, 3])?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn put(&self, item: T) -> Result<()> {
        self.0.put(&item, None)
    }

    /// Puts `item`, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`Error::Full`] if there was no room in time; otherwise as
    /// [`put`](Self::put).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let q = mpwasm_guest::Queue::with_maxsize(1)?;
    /// q.put_timeout('a', Duration::from_millis(50))?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<()> {
        self.0.put(&item, Some(timeout))
    }

    /// Puts `item` only if there is room now (Python's `put_nowait`).
    ///
    /// # Errors
    ///
    /// [`Error::Full`] if there is no room; otherwise as [`put`](Self::put).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q = mpwasm_guest::Queue::with_maxsize(8)?;
    /// q.put_nowait(1_u8)?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn put_nowait(&self, item: T) -> Result<()> {
        self.0.put(&item, Some(Duration::ZERO))
    }

    /// Takes the oldest item, waiting as long as the queue is empty.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`close`](Self::close); [`Error::Codec`] if
    /// the item does not decode as a `T`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q = mpwasm_guest::Queue::new()?;
    /// q.put(42)?;
    /// assert_eq!(q.get()?, 42);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn get(&self) -> Result<T> {
        self.0.get(None)
    }

    /// Takes the oldest item, waiting at most `timeout` for one.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] if no item came in time; otherwise as
    /// [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use mpwasm_guest::{Error, Queue};
    ///
    /// let q: Queue<i32> = Queue::new()?;
    /// assert_eq!(q.get_timeout(Duration::from_millis(10)), Err(Error::Empty));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.0.get(Some(timeout))
    }

    /// Takes the oldest item if there is one now (Python's `get_nowait`).
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] if the queue is empty; otherwise as
    /// [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use mpwasm_guest::{Error, Queue};
    ///
    /// let q: Queue<i32> = Queue::new()?;
    /// assert_eq!(q.get_nowait(), Err(Error::Empty));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn get_nowait(&self) -> Result<T> {
        self.0.get(Some(Duration::ZERO))
    }

    /// The approximate number of items in the queue (other processes may
    /// put and get at the same time).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q = mpwasm_guest::Queue::new()?;
    /// q.put(())?;
    /// assert_eq!(q.qsize(), 1);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn qsize(&self) -> usize {
        self.0.qsize()
    }

    /// Whether the queue is empty (approximately, as
    /// [`qsize`](Self::qsize)).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q: mpwasm_guest::Queue<u8> = mpwasm_guest::Queue::new()?;
    /// assert!(q.empty());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn empty(&self) -> bool {
        self.0.empty()
    }

    /// Whether the queue is full (approximately, as
    /// [`qsize`](Self::qsize)); never for an unbounded queue.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q = mpwasm_guest::Queue::with_maxsize(1)?;
    /// q.put(0)?;
    /// assert!(q.full());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn full(&self) -> bool {
        self.0.full()
    }

    /// The bound given at creation; 0 for unbounded.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q: mpwasm_guest::Queue<u8> = mpwasm_guest::Queue::with_maxsize(4)?;
    /// assert_eq!(q.maxsize(), 4);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn maxsize(&self) -> usize {
        self.0.maxsize()
    }

    /// Ends this process's use of the queue: later calls through any clone
    /// of this handle fail with [`Error::Closed`]. Other processes' handles
    /// are unaffected, and items already put stay queued.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use mpwasm_guest::{Error, Queue};
    ///
    /// let q = Queue::new()?;
    /// q.close();
    /// assert_eq!(q.put(1), Err(Error::Closed));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn close(&self) {
        self.0.close();
    }

    /// Waits for this process's buffered items to reach the queue
    /// (Python's `join_thread()`), which here they already have: there is
    /// no feeder thread, a `put` hands its item over before it returns, and
    /// items the parent holds for a full socket are not lost when this
    /// process exits. So this returns at once once the queue is
    /// [`close`](Self::close)d.
    ///
    /// # Errors
    ///
    /// [`Error::Other`] if the queue is not closed (CPython's
    /// `AssertionError`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q: mpwasm_guest::Queue<u8> = mpwasm_guest::Queue::new()?;
    /// q.put(1)?;
    /// q.close();
    /// q.join_thread()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn join_thread(&self) -> Result<()> {
        self.0.join_thread()
    }

    /// Python's `cancel_join_thread()`: there, a process would otherwise
    /// wait at exit until its buffered items are flushed. Here an exiting
    /// process never waits for that (see [`join_thread`](Self::join_thread)),
    /// and no item is lost: this does nothing.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q: mpwasm_guest::Queue<u8> = mpwasm_guest::Queue::new()?;
    /// q.cancel_join_thread();
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn cancel_join_thread(&self) {}

    /// Shuts the queue down, for every process (Python 3.13's
    /// `Queue.shutdown(immediate)`). Later puts fail with
    /// [`Error::ShutDown`]; gets take what is left and then fail with
    /// [`Error::ShutDown`]; puts and gets blocked now wake up and fail.
    /// With `immediate`, the items left are dropped (and marked done, in a
    /// joinable queue, so that `join` returns), and gets fail at once.
    ///
    /// Python's `multiprocessing` queues have no `shutdown` (only
    /// `queue.Queue` has, since 3.13); this is that method's behaviour
    /// across processes.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] if this process closed the queue; the host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use mpwasm_guest::Error;
    ///
    /// let q: mpwasm_guest::Queue<u8> = mpwasm_guest::Queue::new()?;
    /// q.put(1)?;
    /// q.shutdown(false)?;
    /// assert_eq!(q.put(2), Err(Error::ShutDown));
    /// assert_eq!(q.get()?, 1);
    /// assert_eq!(q.get(), Err(Error::ShutDown));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn shutdown(&self, immediate: bool) -> Result<()> {
        self.0.shutdown(immediate)
    }
}

/// A [`Queue`] that also counts unfinished items, so a producer can
/// [`join`](Self::join) until consumers called
/// [`task_done`](Self::task_done) for every item (Python's
/// `multiprocessing.JoinableQueue`).
///
/// ```no_run
/// use mpwasm_guest::{JoinableQueue, Process};
///
/// #[mpwasm_guest::task]
/// fn consume(q: JoinableQueue<String>) {
///     loop {
///         let item = q.get().unwrap();
///         println!("{item}");
///         q.task_done().unwrap();
///     }
/// }
///
/// #[mpwasm_guest::main]
/// fn main() -> mpwasm_guest::Result<()> {
///     let q = JoinableQueue::new()?;
///     Process::new("consume", q.clone()).with_daemon(true).start()?;
///     for word in ["a", "b", "c"] {
///         q.put(word.to_string())?;
///     }
///     q.join() // every item processed
/// }
/// ```
pub struct JoinableQueue<T>(Inner<T>);

handle_impls!(JoinableQueue, "mpwasm::JoinableQueue");

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// An unbounded joinable queue (Python's `JoinableQueue()`).
    ///
    /// # Errors
    ///
    /// The host's error, e.g. [`Error::Limit`] over a sandbox limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q: mpwasm_guest::JoinableQueue<u32> = mpwasm_guest::JoinableQueue::new()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn new() -> Result<JoinableQueue<T>> {
        JoinableQueue::with_maxsize(0)
    }

    /// A joinable queue holding at most `maxsize` items; 0 is unbounded.
    ///
    /// # Errors
    ///
    /// [`Error::Limit`] if `maxsize` does not fit in a `u32`; the host's
    /// error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q: mpwasm_guest::JoinableQueue<u32> = mpwasm_guest::JoinableQueue::with_maxsize(16)?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn with_maxsize(maxsize: usize) -> Result<JoinableQueue<T>> {
        Inner::create(maxsize, true).map(JoinableQueue)
    }

    /// Puts `item`, waiting as long as the queue is full; one more
    /// unfinished item.
    ///
    /// # Errors
    ///
    /// As [`Queue::put`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q = mpwasm_guest::JoinableQueue::new()?;
    /// q.put(1)?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn put(&self, item: T) -> Result<()> {
        self.0.put(&item, None)
    }

    /// Puts `item`, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// As [`Queue::put_timeout`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q = mpwasm_guest::JoinableQueue::new()?;
    /// q.put_timeout(1, std::time::Duration::from_secs(1))?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<()> {
        self.0.put(&item, Some(timeout))
    }

    /// Puts `item` only if there is room now.
    ///
    /// # Errors
    ///
    /// As [`Queue::put_nowait`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q = mpwasm_guest::JoinableQueue::new()?;
    /// q.put_nowait(1)?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn put_nowait(&self, item: T) -> Result<()> {
        self.0.put(&item, Some(Duration::ZERO))
    }

    /// Takes the oldest item, waiting as long as the queue is empty. Call
    /// [`task_done`](Self::task_done) once it is processed.
    ///
    /// # Errors
    ///
    /// As [`Queue::get`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q = mpwasm_guest::JoinableQueue::new()?;
    /// q.put(1)?;
    /// let item: i32 = q.get()?;
    /// q.task_done()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn get(&self) -> Result<T> {
        self.0.get(None)
    }

    /// Takes the oldest item, waiting at most `timeout` for one.
    ///
    /// # Errors
    ///
    /// As [`Queue::get_timeout`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q: mpwasm_guest::JoinableQueue<i32> = mpwasm_guest::JoinableQueue::new()?;
    /// let _ = q.get_timeout(std::time::Duration::from_millis(10));
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.0.get(Some(timeout))
    }

    /// Takes the oldest item if there is one now.
    ///
    /// # Errors
    ///
    /// As [`Queue::get_nowait`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q: mpwasm_guest::JoinableQueue<i32> = mpwasm_guest::JoinableQueue::new()?;
    /// assert_eq!(q.get_nowait(), Err(mpwasm_guest::Error::Empty));
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn get_nowait(&self) -> Result<T> {
        self.0.get(Some(Duration::ZERO))
    }

    /// Marks one item taken with `get` as processed (Python's
    /// `task_done`).
    ///
    /// # Errors
    ///
    /// The host's error if called more times than there were items
    /// (Python's `ValueError`), or after [`close`](Self::close).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q = mpwasm_guest::JoinableQueue::new()?;
    /// q.put("job".to_string())?;
    /// let _job = q.get()?;
    /// q.task_done()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn task_done(&self) -> Result<()> {
        self.0.task_done()
    }

    /// Waits until every item put has been marked done with
    /// [`task_done`](Self::task_done).
    ///
    /// # Errors
    ///
    /// The host's error, e.g. [`Error::Closed`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q: mpwasm_guest::JoinableQueue<u8> = mpwasm_guest::JoinableQueue::new()?;
    /// q.join()?; // nothing put: returns at once
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn join(&self) -> Result<()> {
        self.0.join(None)
    }

    /// Waits at most `timeout` until every item put has been marked done.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if items are still unfinished when it passes;
    /// otherwise as [`join`](Self::join).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use mpwasm_guest::{Error, JoinableQueue};
    ///
    /// let q = JoinableQueue::new()?;
    /// q.put(1)?;
    /// assert_eq!(q.join_timeout(Duration::from_millis(10)), Err(Error::Timeout));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        self.0.join(Some(timeout))
    }

    /// The approximate number of items in the queue.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q: mpwasm_guest::JoinableQueue<u8> = mpwasm_guest::JoinableQueue::new()?;
    /// assert_eq!(q.qsize(), 0);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn qsize(&self) -> usize {
        self.0.qsize()
    }

    /// Whether the queue is empty (approximately).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q: mpwasm_guest::JoinableQueue<u8> = mpwasm_guest::JoinableQueue::new()?;
    /// assert!(q.empty());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn empty(&self) -> bool {
        self.0.empty()
    }

    /// Whether the queue is full (approximately); never for an unbounded
    /// queue.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q: mpwasm_guest::JoinableQueue<u8> = mpwasm_guest::JoinableQueue::new()?;
    /// assert!(!q.full());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn full(&self) -> bool {
        self.0.full()
    }

    /// The bound given at creation; 0 for unbounded.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q: mpwasm_guest::JoinableQueue<u8> = mpwasm_guest::JoinableQueue::new()?;
    /// assert_eq!(q.maxsize(), 0);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn maxsize(&self) -> usize {
        self.0.maxsize()
    }

    /// Ends this process's use of the queue, as [`Queue::close`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q: mpwasm_guest::JoinableQueue<u8> = mpwasm_guest::JoinableQueue::new()?;
    /// q.close();
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn close(&self) {
        self.0.close();
    }

    /// Waits for this process's buffered items to reach the queue
    /// (Python's `join_thread()`), which here they already have: there is
    /// no feeder thread, a `put` hands its item over before it returns, and
    /// items the parent holds for a full socket are not lost when this
    /// process exits. So this returns at once once the queue is
    /// [`close`](Self::close)d.
    ///
    /// # Errors
    ///
    /// [`Error::Other`] if the queue is not closed (CPython's
    /// `AssertionError`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q: mpwasm_guest::JoinableQueue<u8> = mpwasm_guest::JoinableQueue::new()?;
    /// q.put(1)?;
    /// q.close();
    /// q.join_thread()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn join_thread(&self) -> Result<()> {
        self.0.join_thread()
    }

    /// Python's `cancel_join_thread()`: there, a process would otherwise
    /// wait at exit until its buffered items are flushed. Here an exiting
    /// process never waits for that (see [`join_thread`](Self::join_thread)),
    /// and no item is lost: this does nothing.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q: mpwasm_guest::JoinableQueue<u8> = mpwasm_guest::JoinableQueue::new()?;
    /// q.cancel_join_thread();
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn cancel_join_thread(&self) {}

    /// Shuts the queue down, for every process (Python 3.13's
    /// `Queue.shutdown(immediate)`). Later puts fail with
    /// [`Error::ShutDown`]; gets take what is left and then fail with
    /// [`Error::ShutDown`]; puts and gets blocked now wake up and fail.
    /// With `immediate`, the items left are dropped (and marked done, in a
    /// joinable queue, so that `join` returns), and gets fail at once.
    ///
    /// Python's `multiprocessing` queues have no `shutdown` (only
    /// `queue.Queue` has, since 3.13); this is that method's behaviour
    /// across processes.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] if this process closed the queue; the host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use mpwasm_guest::Error;
    ///
    /// let q: mpwasm_guest::JoinableQueue<u8> = mpwasm_guest::JoinableQueue::new()?;
    /// q.put(1)?;
    /// q.shutdown(false)?;
    /// assert_eq!(q.put(2), Err(Error::ShutDown));
    /// assert_eq!(q.get()?, 1);
    /// assert_eq!(q.get(), Err(Error::ShutDown));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn shutdown(&self, immediate: bool) -> Result<()> {
        self.0.shutdown(immediate)
    }
}

/// An unbounded queue with only `put`, `get`, `empty` and `close` (Python's
/// `multiprocessing.SimpleQueue`).
///
/// ```no_run
/// let q = mpwasm_guest::SimpleQueue::new()?;
/// q.put((1, "one".to_string()))?;
/// let (n, word): (i32, String) = q.get()?;
/// # Ok::<(), mpwasm_guest::Error>(())
/// ```
pub struct SimpleQueue<T>(Inner<T>);

handle_impls!(SimpleQueue, "mpwasm::SimpleQueue");

impl<T: Serialize + DeserializeOwned> SimpleQueue<T> {
    /// A new, empty queue.
    ///
    /// # Errors
    ///
    /// The host's error, e.g. [`Error::Limit`] over a sandbox limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q: mpwasm_guest::SimpleQueue<String> = mpwasm_guest::SimpleQueue::new()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn new() -> Result<SimpleQueue<T>> {
        Inner::create(0, false).map(SimpleQueue)
    }

    /// Puts `item`.
    ///
    /// # Errors
    ///
    /// As [`Queue::put`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q = mpwasm_guest::SimpleQueue::new()?;
    /// q.put(3.5)?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn put(&self, item: T) -> Result<()> {
        self.0.put(&item, None)
    }

    /// Takes the oldest item, waiting as long as the queue is empty.
    ///
    /// # Errors
    ///
    /// As [`Queue::get`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q = mpwasm_guest::SimpleQueue::new()?;
    /// q.put('x')?;
    /// assert_eq!(q.get()?, 'x');
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn get(&self) -> Result<T> {
        self.0.get(None)
    }

    /// Whether the queue is empty (approximately).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q: mpwasm_guest::SimpleQueue<u8> = mpwasm_guest::SimpleQueue::new()?;
    /// assert!(q.empty());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn empty(&self) -> bool {
        self.0.empty()
    }

    /// Ends this process's use of the queue, as [`Queue::close`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q: mpwasm_guest::SimpleQueue<u8> = mpwasm_guest::SimpleQueue::new()?;
    /// q.close();
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn close(&self) {
        self.0.close();
    }
}
