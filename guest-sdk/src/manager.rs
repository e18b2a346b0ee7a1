//! Manager objects: lists, dicts and namespaces of serde values held by the
//! parent mpwasm process (Python's `multiprocessing.Manager()` and its
//! `list()`, `dict()` and `Namespace()` proxies).
//!
//! The containers live in the parent `mpwasm` process, not in any worker:
//! they outlive every process that uses them, including one killed in the
//! middle of an update. Each operation is one message to the parent, which
//! applies it whole, so two processes appending at once both get their item
//! in; a read followed by a write (`d.set(k, d.get(k)? + 1)`) is two
//! messages and races as in Python.
//!
//! Values, keys and indices travel bincode-encoded; equality (`contains`,
//! dict keys) is equality of encodings, which for values of one serde type
//! is equality of values.
//!
//! ```no_run
//! use mpwasm_guest::{ListProxy, Manager, Process};
//!
//! #[mpwasm_guest::task]
//! fn greet(list: ListProxy<String>) {
//!     list.append("hello").unwrap();
//! }
//!
//! #[mpwasm_guest::main]
//! fn main() -> mpwasm_guest::Result<()> {
//!     let manager = Manager::new()?;
//!     let list: ListProxy<String> = manager.list()?;
//!     let mut p = Process::new("greet", list.clone());
//!     p.start()?;
//!     p.join()?;
//!     assert_eq!(list.to_vec()?, ["hello"]);
//!     Ok(())
//! }
//! ```

use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use std::time::Duration;

use crate::array::Array;
use crate::bindings::manager as wit;
use crate::capability::Handle;
use crate::codec;
use crate::error::{Error, Result};
use crate::queue::{JoinableQueue, Queue};
use crate::sync::{Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore};
use crate::value::{Scalar, Value};

/// Where shared containers come from (Python's `multiprocessing.Manager()`).
///
/// Creating one costs nothing: there is no manager process to start, as the
/// parent `mpwasm` process already holds every container. Any process may
/// make one and create containers with it.
///
/// Python's `SyncManager` also makes queues, locks, semaphores, events,
/// conditions, barriers, values and arrays, as proxies to objects living
/// in its server process. Here [`queue`](Self::queue),
/// [`lock`](Self::lock) and the rest return the very same handles as
/// [`Queue::new`], [`Lock::new`], ... : every such object is already held
/// by the parent `mpwasm` process (or lives in shared memory it created),
/// lives as long as any process holds a handle to it, and travels to other
/// processes as a handle. What differs from CPython's proxies: there is no
/// separate server process (nothing to `shutdown`, nothing lost when one
/// dies), and the objects are the fast, robust ones, not slower remote
/// copies (e.g. a manager lock is robust against its holder dying).
///
/// # Examples
///
/// ```no_run
/// use mpwasm_guest::{DictProxy, Manager};
///
/// let manager = Manager::new()?;
/// let scores: DictProxy<String, u32> = manager.dict()?;
/// scores.set("ada", &36)?;
/// assert_eq!(scores.get("ada")?, Some(36));
/// # Ok::<(), mpwasm_guest::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename = "mpwasm::Manager")]
pub struct Manager(());

impl Manager {
    /// A manager (Python's `Manager()`, already started).
    ///
    /// # Errors
    ///
    /// None today; a `Result` as in Python, where starting the manager
    /// process can fail.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let manager = mpwasm_guest::Manager::new()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn new() -> Result<Manager> {
        Ok(Manager(()))
    }

    /// A new, empty shared list of `T` (Python's `manager.list()`).
    ///
    /// # Errors
    ///
    /// The host's error, e.g. [`Error::Limit`] over a sandbox limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let results: mpwasm_guest::ListProxy<f64> = mpwasm_guest::Manager::new()?.list()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn list<T: Serialize + DeserializeOwned>(&self) -> Result<ListProxy<T>> {
        Ok(ListProxy {
            proxy: Proxy::create(Tag::List)?,
            items: PhantomData,
        })
    }

    /// A new, empty shared dict from `K` to `V` (Python's
    /// `manager.dict()`), keeping insertion order.
    ///
    /// # Errors
    ///
    /// The host's error, e.g. [`Error::Limit`] over a sandbox limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let seen: mpwasm_guest::DictProxy<u64, bool> = mpwasm_guest::Manager::new()?.dict()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn dict<K, V>(&self) -> Result<DictProxy<K, V>>
    where
        K: Serialize + DeserializeOwned,
        V: Serialize + DeserializeOwned,
    {
        Ok(DictProxy {
            proxy: Proxy::create(Tag::Dict)?,
            items: PhantomData,
        })
    }

    /// A new, empty namespace (Python's `manager.Namespace()`).
    ///
    /// # Errors
    ///
    /// The host's error, e.g. [`Error::Limit`] over a sandbox limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let ns = mpwasm_guest::Manager::new()?.namespace()?;
    /// ns.set("x", &1)?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn namespace(&self) -> Result<Namespace> {
        Ok(Namespace {
            proxy: Proxy::create(Tag::Namespace)?,
        })
    }

    /// A new queue (Python's `manager.Queue()`): the same [`Queue`] as
    /// [`Queue::new`], see [`Manager`] on why.
    ///
    /// # Errors
    ///
    /// As [`Queue::new`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q = mpwasm_guest::Manager::new()?.queue::<String>()?;
    /// q.put("hi".to_string())?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn queue<T: Serialize + DeserializeOwned>(&self) -> Result<Queue<T>> {
        Queue::new()
    }

    /// A new joinable queue (Python's `manager.JoinableQueue()`), as
    /// [`JoinableQueue::new`].
    ///
    /// # Errors
    ///
    /// As [`JoinableQueue::new`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let q = mpwasm_guest::Manager::new()?.joinable_queue::<u32>()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn joinable_queue<T: Serialize + DeserializeOwned>(&self) -> Result<JoinableQueue<T>> {
        JoinableQueue::new()
    }

    /// A new lock (Python's `manager.Lock()`), as [`Lock::new`].
    ///
    /// # Errors
    ///
    /// As [`Lock::new`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let lock = mpwasm_guest::Manager::new()?.lock()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn lock(&self) -> Result<Lock> {
        Lock::new()
    }

    /// A new re-entrant lock (Python's `manager.RLock()`), as
    /// [`RLock::new`].
    ///
    /// # Errors
    ///
    /// As [`RLock::new`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let lock = mpwasm_guest::Manager::new()?.rlock()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn rlock(&self) -> Result<RLock> {
        RLock::new()
    }

    /// A new semaphore (Python's `manager.Semaphore(value)`), as
    /// [`Semaphore::new`].
    ///
    /// # Errors
    ///
    /// As [`Semaphore::new`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let slots = mpwasm_guest::Manager::new()?.semaphore(2)?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn semaphore(&self, value: u32) -> Result<Semaphore> {
        Semaphore::new(value)
    }

    /// A new bounded semaphore (Python's `manager.BoundedSemaphore(value)`),
    /// as [`BoundedSemaphore::new`].
    ///
    /// # Errors
    ///
    /// As [`BoundedSemaphore::new`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let slots = mpwasm_guest::Manager::new()?.bounded_semaphore(2)?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn bounded_semaphore(&self, value: u32) -> Result<BoundedSemaphore> {
        BoundedSemaphore::new(value)
    }

    /// A new event (Python's `manager.Event()`), as [`Event::new`].
    ///
    /// # Errors
    ///
    /// As [`Event::new`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let done = mpwasm_guest::Manager::new()?.event()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn event(&self) -> Result<Event> {
        Event::new()
    }

    /// A new condition (Python's `manager.Condition()`), as
    /// [`Condition::new`].
    ///
    /// # Errors
    ///
    /// As [`Condition::new`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let ready = mpwasm_guest::Manager::new()?.condition()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn condition(&self) -> Result<Condition> {
        Condition::new()
    }

    /// A new barrier (Python's `manager.Barrier(parties, action,
    /// timeout)`), as [`Barrier::with_options`].
    ///
    /// # Errors
    ///
    /// As [`Barrier::with_options`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let b = mpwasm_guest::Manager::new()?.barrier(2, None, None)?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn barrier(
        &self,
        parties: u32,
        action: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<Barrier> {
        Barrier::with_options(parties, action, timeout)
    }

    /// A new shared value (Python's `manager.Value(typecode, value)`), as
    /// [`Value::new`]: shared memory with a lock, where CPython's proxy
    /// has no lock at all.
    ///
    /// # Errors
    ///
    /// As [`Value::new`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let hits = mpwasm_guest::Manager::new()?.value(0_u64)?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn value<T: Scalar>(&self, initial: T) -> Result<Value<T>> {
        Value::new(initial)
    }

    /// A new shared array holding a copy of `values` (Python's
    /// `manager.Array(typecode, sequence)`), as [`Array::from_slice`].
    ///
    /// # Errors
    ///
    /// As [`Array::from_slice`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let a = mpwasm_guest::Manager::new()?.array(&[1.0_f64, 2.0])?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn array<T: Scalar>(&self, values: &[T]) -> Result<Array<T>> {
        Array::from_slice(values)
    }
}

/// Which container a proxy is, written after its token so that a receiver
/// expecting another fails to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Tag {
    List,
    Dict,
    Namespace,
}

/// One host container, shared by every clone of a proxy in this process.
#[derive(Clone)]
struct Proxy {
    host: Handle<wit::Proxy>,
}

impl Proxy {
    fn create(tag: Tag) -> Result<Proxy> {
        let container = match tag {
            Tag::List => wit::Container::List,
            Tag::Dict => wit::Container::Dict,
            Tag::Namespace => wit::Container::Namespace,
        };
        Ok(Proxy {
            host: Handle::new(wit::create(container)?),
        })
    }

    fn len(&self) -> Result<usize> {
        Ok(self.host.len()? as usize)
    }

    fn get<V: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<V>> {
        match self.host.get(key)? {
            Some(bytes) => codec::from_bytes(&bytes).map(Some),
            None => Ok(None),
        }
    }

    fn pop<V: DeserializeOwned>(&self, key: Option<&[u8]>) -> Result<V> {
        codec::from_bytes(&self.host.pop(key)?)
    }

    fn items(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(self.host.items()?)
    }

    fn clear(&self) -> Result<()> {
        Ok(self.host.clear()?)
    }

    /// Encodes a value with `encode`, stores it with `put`, and makes the
    /// container keep the objects of any handles inside it (so they can be
    /// read back any number of times, as CPython's nested proxies).
    fn store<V>(
        &self,
        encode: impl FnOnce() -> Result<V>,
        put: impl FnOnce(&V) -> std::result::Result<(), crate::bindings::types::Error>,
    ) -> Result<()> {
        let (value, tokens) = crate::capability::collecting(encode);
        put(&value?)?;
        if !tokens.is_empty() {
            self.host.keep(&tokens)?;
        }
        Ok(())
    }

    fn serialize<S: Serializer>(&self, s: S, tag: Tag) -> Result<S::Ok, S::Error> {
        (&self.host, tag as u8).serialize(s)
    }

    fn deserialize<'de, D: Deserializer<'de>>(d: D, tag: Tag) -> Result<Proxy, D::Error> {
        let (host, got) = <(Handle<wit::Proxy>, u8)>::deserialize(d)?;
        if got != tag as u8 {
            return Err(de::Error::custom(format_args!(
                "a manager container of kind {got} cannot be received as a {tag:?}"
            )));
        }
        Ok(Proxy { host })
    }

    fn debug(&self, f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
        f.debug_struct(name)
            .field("handle", &self.host.handle())
            .finish()
    }
}

/// A list index as the host takes it: a bincode `i64`.
fn index(i: i64) -> Result<Vec<u8>> {
    codec::to_bytes(&i)
}

/// A shared list of `T` held by the parent process (Python's
/// `manager.list()` proxy).
///
/// Indices are `i64`, negative counting from the end, as in Python. Every
/// method is one message to the parent and returns what it answered.
///
/// Clones are handles to the same list; sending one to another process
/// gives the receiver a handle to the same list.
///
/// # Examples
///
/// ```no_run
/// let list = mpwasm_guest::Manager::new()?.list::<i32>()?;
/// list.extend([1, 2, 3])?;
/// assert_eq!(list.get(-1)?, 3);
/// assert_eq!(list.pop()?, 3);
/// assert_eq!(list.to_vec()?, [1, 2]);
/// # Ok::<(), mpwasm_guest::Error>(())
/// ```
pub struct ListProxy<T> {
    proxy: Proxy,
    /// `fn(T) -> T`: the list both takes and gives `T`s, and owns none.
    items: PhantomData<fn(T) -> T>,
}

impl<T: Serialize + DeserializeOwned> ListProxy<T> {
    /// The number of items (Python's `len(l)`).
    ///
    /// # Errors
    ///
    /// The host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let list = mpwasm_guest::Manager::new()?.list::<u8>()?;
    /// assert_eq!(list.len()?, 0);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn len(&self) -> Result<usize> {
        self.proxy.len()
    }

    /// Whether the list is empty.
    ///
    /// # Errors
    ///
    /// The host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let list = mpwasm_guest::Manager::new()?.list::<u8>()?;
    /// assert!(list.is_empty()?);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Appends `value` (Python's `l.append(value)`). Takes anything `T`
    /// borrows as, e.g. a `&str` for a list of `String`.
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] if `value` cannot be encoded; [`Error::Limit`] if
    /// the list would grow past the host's limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let list = mpwasm_guest::Manager::new()?.list::<String>()?;
    /// list.append("hello")?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn append<Q>(&self, value: &Q) -> Result<()>
    where
        T: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.proxy
            .store(|| codec::to_bytes(value), |v| self.proxy.host.append(v))
    }

    /// Appends every item of `values`, in one message (Python's
    /// `l.extend(values)`).
    ///
    /// # Errors
    ///
    /// As [`append`](Self::append); nothing is appended if one item cannot
    /// be encoded.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let list = mpwasm_guest::Manager::new()?.list::<u32>()?;
    /// list.extend(0..10)?;
    /// list.extend(&[10, 11])?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn extend<I>(&self, values: I) -> Result<()>
    where
        I: IntoIterator,
        I::Item: Borrow<T>,
    {
        self.proxy.store(
            || {
                values
                    .into_iter()
                    .map(|v| codec::to_bytes(v.borrow()))
                    .collect::<Result<Vec<_>>>()
            },
            |values| self.proxy.host.extend(values),
        )
    }

    /// Inserts `value` before `index` (Python's `l.insert(index, value)`:
    /// an index past either end inserts at that end).
    ///
    /// # Errors
    ///
    /// As [`append`](Self::append).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let list = mpwasm_guest::Manager::new()?.list::<char>()?;
    /// list.extend(['b', 'c'])?;
    /// list.insert(0, &'a')?;
    /// assert_eq!(list.to_vec()?, ['a', 'b', 'c']);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn insert<Q>(&self, index: i64, value: &Q) -> Result<()>
    where
        T: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.proxy.store(
            || codec::to_bytes(value),
            |v| self.proxy.host.insert(index, v),
        )
    }

    /// The item at `index` (Python's `l[index]`; negative counts from the
    /// end).
    ///
    /// # Errors
    ///
    /// [`Error::Other`] if `index` is out of range (Python's `IndexError`);
    /// [`Error::Codec`] if the item does not decode as a `T`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let list = mpwasm_guest::Manager::new()?.list::<i32>()?;
    /// list.extend([5, 6])?;
    /// assert_eq!(list.get(0)?, 5);
    /// assert_eq!(list.get(-1)?, 6);
    /// assert!(list.get(2).is_err());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn get(&self, index: i64) -> Result<T> {
        self.proxy
            .get(&self::index(index)?)?
            .ok_or_else(|| Error::Other("list index out of range".into()))
    }

    /// Replaces the item at `index` (Python's `l[index] = value`).
    ///
    /// # Errors
    ///
    /// [`Error::Other`] if `index` is out of range; as
    /// [`append`](Self::append).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let list = mpwasm_guest::Manager::new()?.list::<i32>()?;
    /// list.append(&1)?;
    /// list.set(0, &2)?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn set<Q>(&self, index: i64, value: &Q) -> Result<()>
    where
        T: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let at = self::index(index)?;
        self.proxy
            .store(|| codec::to_bytes(value), |v| self.proxy.host.set(&at, v))
    }

    /// Removes and returns the last item (Python's `l.pop()`).
    ///
    /// # Errors
    ///
    /// [`Error::Other`] if the list is empty; [`Error::Codec`] if the item
    /// does not decode as a `T` (it is removed all the same).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let list = mpwasm_guest::Manager::new()?.list::<i32>()?;
    /// list.extend([1, 2])?;
    /// assert_eq!(list.pop()?, 2);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn pop(&self) -> Result<T> {
        self.proxy.pop(None)
    }

    /// Removes and returns the item at `index` (Python's `l.pop(index)`).
    ///
    /// # Errors
    ///
    /// [`Error::Other`] if `index` is out of range; as [`pop`](Self::pop).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let list = mpwasm_guest::Manager::new()?.list::<i32>()?;
    /// list.extend([1, 2, 3])?;
    /// assert_eq!(list.pop_at(0)?, 1);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn pop_at(&self, index: i64) -> Result<T> {
        self.proxy.pop(Some(&self::index(index)?))
    }

    /// Whether an item equals `value` (Python's `value in l`).
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] if `value` cannot be encoded; the host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let list = mpwasm_guest::Manager::new()?.list::<String>()?;
    /// list.append("x")?;
    /// assert!(list.contains("x")?);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn contains<Q>(&self, value: &Q) -> Result<bool>
    where
        T: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        Ok(self.proxy.host.contains(&codec::to_bytes(value)?)?)
    }

    /// A copy of every item, in order (Python's `l[:]` or `list(l)`), in
    /// one message.
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] if an item does not decode as a `T`; the host's
    /// error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let list = mpwasm_guest::Manager::new()?.list::<String>()?;
    /// list.append("hello")?;
    /// assert_eq!(list.to_vec()?, ["hello"]);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn to_vec(&self) -> Result<Vec<T>> {
        self.proxy
            .items()?
            .iter()
            .map(|(_, v)| codec::from_bytes(v))
            .collect()
    }

    /// Removes every item (Python's `l.clear()`).
    ///
    /// # Errors
    ///
    /// The host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let list = mpwasm_guest::Manager::new()?.list::<u8>()?;
    /// list.append(&1)?;
    /// list.clear()?;
    /// assert!(list.is_empty()?);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn clear(&self) -> Result<()> {
        self.proxy.clear()
    }
}

impl<T> Clone for ListProxy<T> {
    /// Another handle to the same list.
    fn clone(&self) -> Self {
        ListProxy {
            proxy: self.proxy.clone(),
            items: PhantomData,
        }
    }
}

impl<T> fmt::Debug for ListProxy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.proxy.debug(f, "ListProxy")
    }
}

impl<T> Serialize for ListProxy<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.proxy.serialize(serializer, Tag::List)
    }
}

impl<'de, T> Deserialize<'de> for ListProxy<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(ListProxy {
            proxy: Proxy::deserialize(deserializer, Tag::List)?,
            items: PhantomData,
        })
    }
}

/// A shared dict from `K` to `V` held by the parent process, in insertion
/// order (Python's `manager.dict()` proxy).
///
/// Every method is one message to the parent.
///
/// Clones are handles to the same dict; sending one to another process
/// gives the receiver a handle to the same dict.
///
/// # Examples
///
/// ```no_run
/// let d = mpwasm_guest::Manager::new()?.dict::<String, i64>()?;
/// d.set("a", &1)?;
/// d.set("b", &2)?;
/// assert_eq!(d.get("a")?, Some(1));
/// assert_eq!(d.keys()?, ["a", "b"]);
/// # Ok::<(), mpwasm_guest::Error>(())
/// ```
pub struct DictProxy<K, V> {
    proxy: Proxy,
    items: PhantomData<Entries<K, V>>,
}

/// The dict both takes and gives `K`s and `V`s, and owns none.
type Entries<K, V> = fn(K, V) -> (K, V);

impl<K, V> DictProxy<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// The number of entries (Python's `len(d)`).
    ///
    /// # Errors
    ///
    /// The host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let d = mpwasm_guest::Manager::new()?.dict::<u8, u8>()?;
    /// assert_eq!(d.len()?, 0);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn len(&self) -> Result<usize> {
        self.proxy.len()
    }

    /// Whether the dict is empty.
    ///
    /// # Errors
    ///
    /// The host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let d = mpwasm_guest::Manager::new()?.dict::<u8, u8>()?;
    /// assert!(d.is_empty()?);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The value of `key`, if present (Python's `d.get(key)`). Takes
    /// anything `K` borrows as, e.g. a `&str` for `String` keys.
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] if `key` cannot be encoded or the value does not
    /// decode as a `V`; the host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let d = mpwasm_guest::Manager::new()?.dict::<String, u32>()?;
    /// assert_eq!(d.get("missing")?, None);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Result<Option<V>>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.proxy.get(&codec::to_bytes(key)?)
    }

    /// Sets the value of `key`, adding the key at the end if it is new
    /// (Python's `d[key] = value`).
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] if `key` or `value` cannot be encoded;
    /// [`Error::Limit`] if the dict would grow past the host's limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let d = mpwasm_guest::Manager::new()?.dict::<String, Vec<u8>>()?;
    /// d.set("blob", &vec![1, 2, 3])?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn set<Q, R>(&self, key: &Q, value: &R) -> Result<()>
    where
        K: Borrow<Q>,
        V: Borrow<R>,
        Q: Serialize + ?Sized,
        R: Serialize + ?Sized,
    {
        let key = codec::to_bytes(key)?;
        self.proxy
            .store(|| codec::to_bytes(value), |v| self.proxy.host.set(&key, v))
    }

    /// The same as [`set`](Self::set), under `HashMap`'s name.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let d = mpwasm_guest::Manager::new()?.dict::<u32, String>()?;
    /// d.insert(&1, "one")?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn insert<Q, R>(&self, key: &Q, value: &R) -> Result<()>
    where
        K: Borrow<Q>,
        V: Borrow<R>,
        Q: Serialize + ?Sized,
        R: Serialize + ?Sized,
    {
        self.set(key, value)
    }

    /// Removes `key` and returns its value (Python's `d.pop(key)`).
    ///
    /// # Errors
    ///
    /// [`Error::Other`] if the key is absent (Python's `KeyError`);
    /// [`Error::Codec`] as [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let d = mpwasm_guest::Manager::new()?.dict::<String, u32>()?;
    /// d.set("k", &7)?;
    /// assert_eq!(d.pop("k")?, 7);
    /// assert!(d.pop("k").is_err());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn pop<Q>(&self, key: &Q) -> Result<V>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        self.proxy.pop(Some(&codec::to_bytes(key)?))
    }

    /// Whether `key` is present (Python's `key in d`).
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] if `key` cannot be encoded; the host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let d = mpwasm_guest::Manager::new()?.dict::<String, u32>()?;
    /// assert!(!d.contains_key("k")?);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn contains_key<Q>(&self, key: &Q) -> Result<bool>
    where
        K: Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        Ok(self.proxy.host.contains(&codec::to_bytes(key)?)?)
    }

    /// The keys, in insertion order (Python's `list(d.keys())`), in one
    /// message.
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] if a key does not decode as a `K`; the host's
    /// error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let d = mpwasm_guest::Manager::new()?.dict::<u8, ()>()?;
    /// d.set(&2, &())?;
    /// assert_eq!(d.keys()?, [2]);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn keys(&self) -> Result<Vec<K>> {
        self.proxy
            .items()?
            .iter()
            .map(|(k, _)| codec::from_bytes(k))
            .collect()
    }

    /// The values, in insertion order of their keys (Python's
    /// `list(d.values())`), in one message.
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] if a value does not decode as a `V`; the host's
    /// error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let d = mpwasm_guest::Manager::new()?.dict::<u8, char>()?;
    /// d.set(&1, &'x')?;
    /// assert_eq!(d.values()?, ['x']);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn values(&self) -> Result<Vec<V>> {
        self.proxy
            .items()?
            .iter()
            .map(|(_, v)| codec::from_bytes(v))
            .collect()
    }

    /// The entries, in insertion order (Python's `list(d.items())`), in one
    /// message.
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] if an entry does not decode; the host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let d = mpwasm_guest::Manager::new()?.dict::<String, i32>()?;
    /// d.set("a", &1)?;
    /// assert_eq!(d.items()?, [("a".to_string(), 1)]);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn items(&self) -> Result<Vec<(K, V)>> {
        self.proxy
            .items()?
            .iter()
            .map(|(k, v)| Ok((codec::from_bytes(k)?, codec::from_bytes(v)?)))
            .collect()
    }

    /// Removes every entry (Python's `d.clear()`).
    ///
    /// # Errors
    ///
    /// The host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let d = mpwasm_guest::Manager::new()?.dict::<u8, u8>()?;
    /// d.clear()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn clear(&self) -> Result<()> {
        self.proxy.clear()
    }
}

impl<K, V> Clone for DictProxy<K, V> {
    /// Another handle to the same dict.
    fn clone(&self) -> Self {
        DictProxy {
            proxy: self.proxy.clone(),
            items: PhantomData,
        }
    }
}

impl<K, V> fmt::Debug for DictProxy<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.proxy.debug(f, "DictProxy")
    }
}

impl<K, V> Serialize for DictProxy<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.proxy.serialize(serializer, Tag::Dict)
    }
}

impl<'de, K, V> Deserialize<'de> for DictProxy<K, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(DictProxy {
            proxy: Proxy::deserialize(deserializer, Tag::Dict)?,
            items: PhantomData,
        })
    }
}

/// Named values of any serde types, held by the parent process (Python's
/// `manager.Namespace()`: `ns.x = 1` is `ns.set("x", &1)`).
///
/// Each name holds a value of whatever type it was last set with; read it
/// back as that type.
///
/// # Examples
///
/// ```no_run
/// let ns = mpwasm_guest::Manager::new()?.namespace()?;
/// ns.set("done", &false)?;
/// ns.set("label", "run 1")?;
/// assert_eq!(ns.get::<bool>("done")?, Some(false));
/// assert_eq!(ns.get::<String>("label")?.as_deref(), Some("run 1"));
/// assert_eq!(ns.get::<u8>("nothing")?, None);
/// # Ok::<(), mpwasm_guest::Error>(())
/// ```
#[derive(Clone)]
pub struct Namespace {
    proxy: Proxy,
}

impl Namespace {
    /// The value named `name`, if set (Python's `getattr(ns, name, None)`).
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] if the value does not decode as a `T`; the host's
    /// error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let ns = mpwasm_guest::Manager::new()?.namespace()?;
    /// let x: Option<i32> = ns.get("x")?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        self.proxy.get(&codec::to_bytes(name)?)
    }

    /// Sets the value named `name` (Python's `setattr(ns, name, value)`).
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] if `value` cannot be encoded; [`Error::Limit`] if
    /// the namespace would grow past the host's limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let ns = mpwasm_guest::Manager::new()?.namespace()?;
    /// ns.set("x", &42_i32)?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn set<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<()> {
        let name = codec::to_bytes(name)?;
        self.proxy
            .store(|| codec::to_bytes(value), |v| self.proxy.host.set(&name, v))
    }

    /// Whether a value is named `name` (Python's `hasattr(ns, name)`).
    ///
    /// # Errors
    ///
    /// The host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let ns = mpwasm_guest::Manager::new()?.namespace()?;
    /// assert!(!ns.contains("x")?);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn contains(&self, name: &str) -> Result<bool> {
        Ok(self.proxy.host.contains(&codec::to_bytes(name)?)?)
    }

    /// Removes the value named `name` (Python's `del ns.name`), in one
    /// message to the parent.
    ///
    /// # Errors
    ///
    /// [`Error::Other`] if no value is named `name` (Python's
    /// `AttributeError`); the host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let ns = mpwasm_guest::Manager::new()?.namespace()?;
    /// ns.set("x", &1)?;
    /// ns.delete("x")?;
    /// assert_eq!(ns.get::<i32>("x")?, None);
    /// assert!(ns.delete("x").is_err());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn delete(&self, name: &str) -> Result<()> {
        match self.proxy.host.pop(Some(&codec::to_bytes(name)?)) {
            Ok(_) => Ok(()),
            Err(crate::bindings::types::Error::Other(_)) => Err(Error::Other(format!(
                "the namespace has no attribute {name:?} (AttributeError)"
            ))),
            Err(e) => Err(e.into()),
        }
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.proxy.debug(f, "Namespace")
    }
}

impl Serialize for Namespace {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.proxy.serialize(serializer, Tag::Namespace)
    }
}

impl<'de> Deserialize<'de> for Namespace {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Namespace {
            proxy: Proxy::deserialize(deserializer, Tag::Namespace)?,
        })
    }
}
