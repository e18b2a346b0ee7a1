//! Blocks of shared memory (Python's `multiprocessing.shared_memory`:
//! `SharedMemory` and `ShareableList`).
//!
//! A [`SharedMemory`] is a region of bytes the host maps into every process
//! holding it. A guest cannot point into it (its own memory is the wasm
//! instance's), so it copies bytes in and out with [`SharedMemory::read`]
//! and [`SharedMemory::write`], one copy each, bounds-checked in the guest
//! first: a helper call on the guest's window where the loader gave it one
//! (mpwasm does for every SDK guest), else a host call. A block created with a name can be attached by that name
//! from any process of the run, as in Python; one without a name travels
//! as a handle.
//!
//! ```no_run
//! use mpwasm_guest::{Process, SharedMemory};
//!
//! #[mpwasm_guest::task]
//! fn fill(name: String) {
//!     let shm = SharedMemory::attach(&name).unwrap();
//!     shm.write(0, b"hello").unwrap();
//! }
//!
//! #[mpwasm_guest::main]
//! fn main() -> mpwasm_guest::Result<()> {
//!     let shm = SharedMemory::create("greeting", 64)?;
//!     let mut p = Process::new("fill", "greeting".to_string());
//!     p.start()?;
//!     p.join()?;
//!     assert_eq!(shm.read(0, 5)?, b"hello");
//!     shm.unlink()?; // the name goes; the memory once every holder is done
//!     Ok(())
//! }
//! ```

use std::fmt;
use std::rc::Rc;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use crate::bindings::shared as wit;
use crate::capability::Handle;
use crate::error::{Error, Result};
use crate::value::{check_range, checked};

/// A block of shared memory (Python's
/// `multiprocessing.shared_memory.SharedMemory`).
///
/// Clones are handles to the same block; sending one to another process
/// gives the receiver a handle to the same block.
///
/// # Examples
///
/// ```no_run
/// let shm = mpwasm_guest::SharedMemory::new(16)?;
/// shm.write(4, &[1, 2, 3])?;
/// assert_eq!(shm.read(3, 5)?, [0, 1, 2, 3, 0]);
/// # Ok::<(), mpwasm_guest::Error>(())
/// ```
#[derive(Clone)]
pub struct SharedMemory {
    region: Handle<wit::Region>,
    size: usize,
    /// Where the block is in this guest's window: reads and writes are
    /// then copies by a helper call instead of host calls.
    window: Option<u32>,
}

impl SharedMemory {
    /// A zeroed block of `size` bytes without a name: other processes
    /// reach it through a handle sent to them.
    ///
    /// # Errors
    ///
    /// [`Error::Limit`] if `size` is 0 or above the host's largest block.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let shm = mpwasm_guest::SharedMemory::new(4096)?;
    /// assert_eq!(shm.name(), None);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn new(size: usize) -> Result<SharedMemory> {
        SharedMemory::make(size, None)
    }

    /// A zeroed block of `size` bytes named `name`, which any process of
    /// the run can [`attach`](Self::attach) (Python's
    /// `SharedMemory(name, create=True, size=size)`).
    ///
    /// # Errors
    ///
    /// [`Error::Other`] if a block of that name exists, or the name is
    /// empty or longer than 255 bytes; [`Error::Limit`] as
    /// [`new`](Self::new).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let shm = mpwasm_guest::SharedMemory::create("frames", 1 << 20)?;
    /// assert_eq!(shm.name().as_deref(), Some("frames"));
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn create(name: &str, size: usize) -> Result<SharedMemory> {
        SharedMemory::make(size, Some(name))
    }

    fn make(size: usize, name: Option<&str>) -> Result<SharedMemory> {
        let region = wit::create(size as u64, name)?;
        Ok(SharedMemory::wrap(region))
    }

    fn wrap(region: wit::Region) -> SharedMemory {
        let size = usize::try_from(region.size()).unwrap_or(usize::MAX);
        SharedMemory {
            window: region.window(),
            region: Handle::new(region),
            size,
        }
    }

    /// The block another process of the run created with `name` (Python's
    /// `SharedMemory(name)`).
    ///
    /// # Errors
    ///
    /// [`Error::Other`] if there is no block of that name (never created,
    /// or unlinked).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let shm = mpwasm_guest::SharedMemory::attach("frames")?;
    /// println!("{} bytes", shm.size());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn attach(name: &str) -> Result<SharedMemory> {
        Ok(SharedMemory::wrap(wit::attach(name)?))
    }

    /// The block's name, if it was created with one (as this handle got it:
    /// an [`unlink`](Self::unlink) elsewhere does not change it).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let shm = mpwasm_guest::SharedMemory::create("cfg", 8)?;
    /// assert_eq!(shm.name(), Some("cfg".to_string()));
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn name(&self) -> Option<String> {
        self.region.name()
    }

    /// The size in bytes, fixed at creation.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let shm = mpwasm_guest::SharedMemory::new(100)?;
    /// assert_eq!(shm.size(), 100);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn size(&self) -> usize {
        self.size
    }

    /// A copy of the `len` bytes at `offset` (Python's
    /// `bytes(shm.buf[offset:offset + len])`), in one copy. Not atomic:
    /// bytes other processes write meanwhile may be half old, half new.
    ///
    /// # Errors
    ///
    /// [`Error::IndexOutOfRange`] if the bytes go past [`size`](Self::size),
    /// before anything is copied.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let shm = mpwasm_guest::SharedMemory::new(8)?;
    /// assert_eq!(shm.read(0, 8)?, [0; 8]);
    /// assert!(shm.read(4, 5).is_err());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn read(&self, offset: usize, len: usize) -> Result<Vec<u8>> {
        check_range(&(offset..offset.saturating_add(len)), self.size)?;
        if len == 0 {
            return Ok(Vec::new());
        }
        if let Some(at) = self.window {
            // Inside the block (checked above), which is below 4 GiB.
            let mut out = vec![0; len];
            crate::window::read(at + offset as u32, &mut out);
            return Ok(out);
        }
        Ok(self.region.read(offset as u64, len as u64)?)
    }

    /// Copies `data` into the block at `offset` (Python's
    /// `shm.buf[offset:offset + len(data)] = data`), in one copy.
    ///
    /// # Errors
    ///
    /// [`Error::IndexOutOfRange`] if the bytes would go past
    /// [`size`](Self::size), before anything is copied (nothing is written).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let shm = mpwasm_guest::SharedMemory::new(8)?;
    /// shm.write(6, b"ok")?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<()> {
        check_range(&(offset..offset.saturating_add(data.len())), self.size)?;
        if data.is_empty() {
            return Ok(());
        }
        if let Some(at) = self.window {
            crate::window::write(at + offset as u32, data);
            return Ok(());
        }
        Ok(self.region.write(offset as u64, data)?)
    }

    /// A copy of the whole block (Python's `bytes(shm.buf)`), in one host
    /// call.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let shm = mpwasm_guest::SharedMemory::new(4)?;
    /// assert_eq!(shm.buf(), [0; 4]);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn buf(&self) -> Vec<u8> {
        checked(self.read(0, self.size))
    }

    /// Ends this handle's use of the block (Python's `close()`): the memory
    /// stays for other handles and processes, and for
    /// [`attach`](Self::attach) while it has a name.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let shm = mpwasm_guest::SharedMemory::create("tmp", 8)?;
    /// let again = shm.clone();
    /// shm.close();
    /// again.write(0, b"still ok")?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn close(self) {}

    /// Removes the block's name (Python's `unlink()`): later
    /// [`attach`](Self::attach)es fail; the memory lives on until its last
    /// holder lets go.
    ///
    /// # Errors
    ///
    /// [`Error::Other`] if the block has no name (never had one, or was
    /// unlinked already).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let shm = mpwasm_guest::SharedMemory::create("once", 8)?;
    /// shm.unlink()?;
    /// assert!(mpwasm_guest::SharedMemory::attach("once").is_err());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn unlink(&self) -> Result<()> {
        Ok(self.region.unlink()?)
    }
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("handle", &self.region.handle())
            .field("size", &self.size)
            .finish()
    }
}

impl Serialize for SharedMemory {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.region.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SharedMemory {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let region = Handle::<wit::Region>::deserialize(deserializer)?;
        let size = usize::try_from(region.size()).unwrap_or(usize::MAX);
        Ok(SharedMemory {
            window: region.window(),
            region,
            size,
        })
    }
}

/// One item of a [`ShareableList`]: the types Python's `ShareableList`
/// stores (`int`, `float`, `bool`, `str`, `bytes`; `None` is the `Option`
/// around it).
///
/// # Examples
///
/// ```
/// use mpwasm_guest::Item;
///
/// assert_eq!(Item::from(3_i64), Item::Int(3));
/// assert_eq!(Item::from("hi"), Item::Str("hi".to_string()));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// Python's `int`, as a 64-bit integer.
    Int(i64),
    /// Python's `float`.
    Float(f64),
    /// Python's `bool`.
    Bool(bool),
    /// Python's `str`, stored as UTF-8.
    Str(String),
    /// Python's `bytes`.
    Bytes(Vec<u8>),
}

impl From<i64> for Item {
    fn from(v: i64) -> Item {
        Item::Int(v)
    }
}

impl From<f64> for Item {
    fn from(v: f64) -> Item {
        Item::Float(v)
    }
}

impl From<bool> for Item {
    fn from(v: bool) -> Item {
        Item::Bool(v)
    }
}

impl From<String> for Item {
    fn from(v: String) -> Item {
        Item::Str(v)
    }
}

impl From<&str> for Item {
    fn from(v: &str) -> Item {
        Item::Str(v.to_string())
    }
}

impl From<Vec<u8>> for Item {
    fn from(v: Vec<u8>) -> Item {
        Item::Bytes(v)
    }
}

/// How a [`ShareableList`] lays out its block. All integers little-endian.
///
/// ```text
/// "MPSL" | n: u32 | capacity of each item: n × u32 | n slots
/// slot:  tag: u8 | length: u32 | payload (capacity bytes)
/// ```
///
/// Tags: 0 `None`, 1 int (`i64`), 2 float (`f64` bits), 3 bool (one
/// byte), 4 str (UTF-8), 5 bytes. Capacities are fixed at creation: each
/// item's initial encoding rounded up to 8 bytes, at least 8 (as Python
/// sizes its slots); any later item that fits its slot may replace it.
pub(crate) mod layout {
    use super::Item;
    use crate::error::{Error, Result};

    pub(crate) const MAGIC: &[u8; 4] = b"MPSL";
    /// Magic and item count.
    pub(crate) const HEADER: usize = 8;
    /// A slot's tag and length.
    pub(crate) const SLOT_HEADER: usize = 5;

    /// Where a slot is and how much payload it holds.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct Slot {
        pub(crate) offset: usize,
        pub(crate) capacity: usize,
    }

    /// The tag and payload of an item.
    pub(crate) fn encode(item: &Option<Item>) -> (u8, Vec<u8>) {
        match item {
            None => (0, Vec::new()),
            Some(Item::Int(v)) => (1, v.to_le_bytes().to_vec()),
            Some(Item::Float(v)) => (2, v.to_bits().to_le_bytes().to_vec()),
            Some(Item::Bool(v)) => (3, vec![u8::from(*v)]),
            Some(Item::Str(v)) => (4, v.as_bytes().to_vec()),
            Some(Item::Bytes(v)) => (5, v.clone()),
        }
    }

    /// The item a slot's tag and payload stand for.
    pub(crate) fn decode(tag: u8, payload: &[u8]) -> Result<Option<Item>> {
        let eight = || -> Result<[u8; 8]> {
            payload
                .try_into()
                .map_err(|_| Error::Codec(format!("a {}-byte number", payload.len())))
        };
        Ok(match tag {
            0 => None,
            1 => Some(Item::Int(i64::from_le_bytes(eight()?))),
            2 => Some(Item::Float(f64::from_bits(u64::from_le_bytes(eight()?)))),
            3 => Some(Item::Bool(payload.first().is_some_and(|&b| b != 0))),
            4 => Some(Item::Str(
                String::from_utf8(payload.to_vec()).map_err(|e| Error::Codec(e.to_string()))?,
            )),
            5 => Some(Item::Bytes(payload.to_vec())),
            _ => return Err(Error::Codec(format!("unknown shareable list tag {tag}"))),
        })
    }

    /// The slot size creation gives an item.
    pub(crate) fn capacity(item: &Option<Item>) -> usize {
        encode(item).1.len().div_ceil(8).max(1) * 8
    }

    /// The slots of a list with these capacities, and the block size.
    pub(crate) fn slots(capacities: &[usize]) -> (Vec<Slot>, usize) {
        let mut offset = HEADER + 4 * capacities.len();
        let slots = capacities
            .iter()
            .map(|&capacity| {
                let slot = Slot { offset, capacity };
                offset += SLOT_HEADER + capacity;
                slot
            })
            .collect();
        (slots, offset)
    }

    /// The bytes of slot `slot` holding `item`: tag, length, payload.
    pub(crate) fn slot_bytes(item: &Option<Item>, slot: Slot) -> Result<Vec<u8>> {
        let (tag, payload) = encode(item);
        if payload.len() > slot.capacity {
            return Err(Error::Other(format!(
                "a {}-byte item exceeds its shareable list slot of {} bytes (ValueError)",
                payload.len(),
                slot.capacity
            )));
        }
        let mut bytes = Vec::with_capacity(SLOT_HEADER + payload.len());
        bytes.push(tag);
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&payload);
        Ok(bytes)
    }

    /// The item in `bytes`, a slot read whole.
    pub(crate) fn read_slot(bytes: &[u8]) -> Result<Option<Item>> {
        let corrupt = || Error::Codec("a corrupt shareable list slot".into());
        let (&tag, rest) = bytes.split_first().ok_or_else(corrupt)?;
        let (len, payload) = rest.split_first_chunk::<4>().ok_or_else(corrupt)?;
        let len = u32::from_le_bytes(*len) as usize;
        decode(tag, payload.get(..len).ok_or_else(corrupt)?)
    }

    /// The whole block of a new list of `items`: header, capacities,
    /// slots.
    pub(crate) fn block(items: &[Option<Item>]) -> Result<(Vec<Slot>, Vec<u8>)> {
        let capacities: Vec<usize> = items.iter().map(capacity).collect();
        let (slots, size) = slots(&capacities);
        let mut bytes = Vec::with_capacity(size);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&count(items.len())?.to_le_bytes());
        for &c in &capacities {
            bytes.extend_from_slice(&count(c)?.to_le_bytes());
        }
        for (item, &slot) in items.iter().zip(&slots) {
            let mut slot_bytes = slot_bytes(item, slot)?;
            slot_bytes.resize(SLOT_HEADER + slot.capacity, 0);
            bytes.extend_from_slice(&slot_bytes);
        }
        Ok((slots, bytes))
    }

    /// The item count in a block's first [`HEADER`] bytes.
    pub(crate) fn read_count(header: &[u8]) -> Result<usize> {
        match header.split_first_chunk::<4>() {
            Some((magic, rest)) if magic == MAGIC && rest.len() >= 4 => {
                Ok(u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize)
            }
            _ => Err(Error::Other(
                "the shared memory block is not a shareable list".into(),
            )),
        }
    }

    /// The capacities after the header.
    pub(crate) fn read_capacities(bytes: &[u8]) -> Vec<usize> {
        bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize)
            .collect()
    }

    fn count(n: usize) -> Result<u32> {
        u32::try_from(n).map_err(|_| Error::Limit(format!("{n} is too large for a shareable list")))
    }
}

/// A fixed-length list of `int`, `float`, `bool`, `str`, `bytes` or `None`
/// items in a [`SharedMemory`] block (Python's
/// `multiprocessing.shared_memory.ShareableList`).
///
/// The length is fixed at creation, and so is the room for each item: an
/// item's slot is its initial value's size rounded up to 8 bytes (at least
/// 8), as in Python. Any item that fits may replace it, of any type; a
/// longer `str` or `bytes` is refused. Each [`get`](Self::get) and
/// [`set`](Self::set) is one copy.
///
/// Clones are handles to the same list; sending one to another process
/// gives the receiver a handle to the same list.
///
/// # Examples
///
/// ```no_run
/// use mpwasm_guest::{Item, ShareableList};
///
/// let sl = ShareableList::new(vec![Some(Item::Int(1)), Some("name".into()), None])?;
/// sl.set(0, Some(Item::Float(2.5)))?; // another type, same 8 bytes
/// assert_eq!(sl.get(0)?, Some(Item::Float(2.5)));
/// assert!(sl.set(1, Some("a much longer name".into())).is_err()); // its slot holds 8 bytes
/// # Ok::<(), mpwasm_guest::Error>(())
/// ```
#[derive(Clone)]
pub struct ShareableList {
    shm: SharedMemory,
    slots: Rc<[layout::Slot]>,
}

impl ShareableList {
    /// A list of `values` in a new block without a name: other processes
    /// reach it through a handle sent to them (Python's
    /// `ShareableList(sequence)`).
    ///
    /// # Errors
    ///
    /// [`Error::Limit`] if the block would be too large; the host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use mpwasm_guest::{Item, ShareableList};
    ///
    /// let sl = ShareableList::new(vec![Some(Item::Bool(true)), None])?;
    /// assert_eq!(sl.len(), 2);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn new(values: Vec<Option<Item>>) -> Result<ShareableList> {
        ShareableList::make(values, None)
    }

    /// A list of `values` in a new block named `name`, which any process
    /// of the run can [`attach`](Self::attach) (Python's
    /// `ShareableList(sequence, name=name)`).
    ///
    /// # Errors
    ///
    /// As [`SharedMemory::create`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use mpwasm_guest::ShareableList;
    ///
    /// let sl = ShareableList::create("settings", vec![Some(8_i64.into()), Some("fast".into())])?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn create(name: &str, values: Vec<Option<Item>>) -> Result<ShareableList> {
        ShareableList::make(values, Some(name))
    }

    fn make(values: Vec<Option<Item>>, name: Option<&str>) -> Result<ShareableList> {
        let (slots, bytes) = layout::block(&values)?;
        let shm = SharedMemory::make(bytes.len(), name)?;
        shm.write(0, &bytes)?;
        Ok(ShareableList {
            shm,
            slots: slots.into(),
        })
    }

    /// The list in the block another process of the run created with
    /// `name` (Python's `ShareableList(name=name)`).
    ///
    /// # Errors
    ///
    /// As [`SharedMemory::attach`]; [`Error::Other`] if the block does not
    /// hold a shareable list.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let sl = mpwasm_guest::ShareableList::attach("settings")?;
    /// println!("{:?}", sl.get(0)?);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn attach(name: &str) -> Result<ShareableList> {
        ShareableList::open(SharedMemory::attach(name)?)
    }

    /// Reads the layout of the list in `shm` (two copies).
    fn open(shm: SharedMemory) -> Result<ShareableList> {
        let n = layout::read_count(&shm.read(0, layout::HEADER)?)?;
        let table = n
            .checked_mul(4)
            .filter(|t| layout::HEADER + t <= shm.size())
            .ok_or_else(|| Error::Other("a truncated shareable list".into()))?;
        let capacities = layout::read_capacities(&shm.read(layout::HEADER, table)?);
        let (slots, size) = layout::slots(&capacities);
        if size > shm.size() {
            return Err(Error::Other("a truncated shareable list".into()));
        }
        Ok(ShareableList {
            shm,
            slots: slots.into(),
        })
    }

    /// The number of items, fixed at creation.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let sl = mpwasm_guest::ShareableList::new(vec![None; 3])?;
    /// assert_eq!(sl.len(), 3);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the list has no items.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let sl = mpwasm_guest::ShareableList::new(Vec::new())?;
    /// assert!(sl.is_empty());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The slot of index `i`; a negative `i` counts from the end, as in
    /// Python (`-1` is the last item).
    fn slot(&self, i: i64) -> Result<layout::Slot> {
        let len = self.len();
        let at = if i < 0 {
            usize::try_from(i.unsigned_abs())
                .ok()
                .and_then(|back| len.checked_sub(back))
                .ok_or_else(|| {
                    Error::Other(format!(
                        "index {i} out of range for length {len} (IndexError)"
                    ))
                })?
        } else {
            usize::try_from(i).unwrap_or(usize::MAX)
        };
        self.slots
            .get(at)
            .copied()
            .ok_or(Error::IndexOutOfRange { index: at, len })
    }

    /// Item `i` (Python's `sl[i]`), in one copy; a negative `i` counts
    /// from the end (`-1` is the last item).
    ///
    /// # Errors
    ///
    /// [`Error::IndexOutOfRange`] if `i >= len()` ([`Error::Other`] if a
    /// negative `i` is below `-len()`), before anything is copied;
    /// [`Error::Codec`] if the slot is corrupt.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use mpwasm_guest::{Item, ShareableList};
    ///
    /// let sl = ShareableList::new(vec![Some(Item::Bytes(b"ab".to_vec()))])?;
    /// assert_eq!(sl.get(0)?, Some(Item::Bytes(b"ab".to_vec())));
    /// assert_eq!(sl.get(-1)?, sl.get(0)?);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn get(&self, i: i64) -> Result<Option<Item>> {
        let slot = self.slot(i)?;
        let bytes = self
            .shm
            .read(slot.offset, layout::SLOT_HEADER + slot.capacity)?;
        layout::read_slot(&bytes)
    }

    /// Replaces item `i` (Python's `sl[i] = value`), in one copy; a
    /// negative `i` counts from the end.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get) for the index; [`Error::Other`] if the value
    /// does not fit item `i`'s slot (Python's `ValueError`); all before any
    /// host call.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use mpwasm_guest::{Item, ShareableList};
    ///
    /// let sl = ShareableList::new(vec![Some(Item::Int(0))])?;
    /// sl.set(0, Some(Item::Int(42)))?;
    /// sl.set(-1, None)?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn set(&self, i: i64, value: Option<Item>) -> Result<()> {
        let slot = self.slot(i)?;
        self.shm
            .write(slot.offset, &layout::slot_bytes(&value, slot)?)
    }

    /// Every item, read in one copy.
    ///
    /// # Errors
    ///
    /// [`Error::Codec`] if a slot is corrupt.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use mpwasm_guest::{Item, ShareableList};
    ///
    /// let sl = ShareableList::new(vec![Some(Item::Int(1)), None])?;
    /// assert_eq!(sl.to_vec()?, [Some(Item::Int(1)), None]);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn to_vec(&self) -> Result<Vec<Option<Item>>> {
        let block = self.shm.buf();
        self.slots
            .iter()
            .map(|s| {
                layout::read_slot(&block[s.offset..s.offset + layout::SLOT_HEADER + s.capacity])
            })
            .collect()
    }

    /// The position of the first item equal to `value` (Python's
    /// `sl.index(value)`), reading the list in one copy; `None` where
    /// Python raises `ValueError`.
    ///
    /// # Errors
    ///
    /// As [`to_vec`](Self::to_vec).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use mpwasm_guest::{Item, ShareableList};
    ///
    /// let sl = ShareableList::new(vec![Some(Item::Int(7)), None, Some(Item::Int(7))])?;
    /// assert_eq!(sl.index(&Some(Item::Int(7)))?, Some(0));
    /// assert_eq!(sl.index(&Some(Item::Int(8)))?, None);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn index(&self, value: &Option<Item>) -> Result<Option<usize>> {
        Ok(self.to_vec()?.iter().position(|v| v == value))
    }

    /// How many items equal `value` (Python's `sl.count(value)`), reading
    /// the list in one copy.
    ///
    /// # Errors
    ///
    /// As [`to_vec`](Self::to_vec).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use mpwasm_guest::{Item, ShareableList};
    ///
    /// let sl = ShareableList::new(vec![Some(Item::Int(7)), None, Some(Item::Int(7))])?;
    /// assert_eq!(sl.count(&Some(Item::Int(7)))?, 2);
    /// assert_eq!(sl.count(&None)?, 1);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn count(&self, value: &Option<Item>) -> Result<usize> {
        Ok(self.to_vec()?.iter().filter(|v| *v == value).count())
    }

    /// The block holding the list (Python's `sl.shm`): its
    /// [`name`](SharedMemory::name) is what [`attach`](Self::attach)
    /// takes, its [`unlink`](SharedMemory::unlink) removes that name.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let sl = mpwasm_guest::ShareableList::create("nums", vec![None; 4])?;
    /// assert_eq!(sl.shm().name().as_deref(), Some("nums"));
    /// sl.shm().unlink()?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn shm(&self) -> &SharedMemory {
        &self.shm
    }
}

impl fmt::Debug for ShareableList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShareableList")
            .field("shm", &self.shm)
            .field("len", &self.len())
            .finish()
    }
}

/// On the wire: the block's token; the receiver reads the layout from the
/// block.
impl Serialize for ShareableList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.shm.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ShareableList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let shm = SharedMemory::deserialize(deserializer)?;
        ShareableList::open(shm).map_err(de::Error::custom)
    }
}
