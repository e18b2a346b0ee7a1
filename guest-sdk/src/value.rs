//! Shared scalars (Python's `multiprocessing.Value` and `RawValue`), and
//! the cells of shared memory they and [`Array`](crate::Array) are made of.
//!
//! A value lives in a region of shared memory the host maps into every
//! process holding it, and into the guest's window: each `get`, `set` or
//! `fetch_add` is one instruction on that memory (atomic, but for `set`'s
//! plain store, as CPython's `ctypes` stores), in a helper the
//! loader generated (a core call, no host call, no message to another
//! process).
//!
//! ```no_run
//! use mpwasm_guest::{Process, Value};
//!
//! #[mpwasm_guest::task]
//! fn count(counter: Value<i32>) {
//!     for _ in 0..1000 {
//!         counter.fetch_add(1); // atomic: never loses an update
//!     }
//! }
//!
//! #[mpwasm_guest::main]
//! fn main() -> mpwasm_guest::Result<()> {
//!     let counter = Value::new(0_i32)?;
//!     let mut workers: Vec<Process> =
//!         (0..4).map(|_| Process::new("count", counter.clone())).collect();
//!     for w in &mut workers {
//!         w.start()?;
//!     }
//!     for w in &mut workers {
//!         w.join()?;
//!     }
//!     assert_eq!(counter.get(), 4000);
//!     Ok(())
//! }
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

use crate::bindings::shared as wit;
use crate::capability::Handle;
use crate::error::{Error, Result};
use crate::sync::Lock;
use crate::window;

mod sealed {
    /// Keeps [`Scalar`](super::Scalar) to the types the SDK implements it
    /// for: the host's atomics only know 1-, 2-, 4- and 8-byte integers.
    pub trait Sealed {}
}

/// A type a shared [`Value`] or [`Array`](crate::Array) can hold: a fixed-width
/// number or `bool`, stored little-endian and naturally aligned.
///
/// Each type stands for a CPython `ctypes` typecode (what `Value(typecode,
/// ...)` and `Array(typecode, ...)` take):
///
/// | Rust  | typecode | C type               |
/// |-------|----------|----------------------|
/// | `i8`  | `'b'`    | `signed char`        |
/// | `u8`  | `'B'`    | `unsigned char` (and `'c'`, see [`ByteArray`](crate::ByteArray)) |
/// | `i16` | `'h'`    | `short`              |
/// | `u16` | `'H'`    | `unsigned short`     |
/// | `i32` | `'i'`    | `int` (32-bit)       |
/// | `u32` | `'I'`    | `unsigned int`       |
/// | `i64` | `'q'`    | `long long` (CPython's `'l'` is the same 64 bits on Linux) |
/// | `u64` | `'Q'`    | `unsigned long long` (`'L'` on Linux) |
/// | `f32` | `'f'`    | `float`              |
/// | `f64` | `'d'`    | `double`             |
/// | `bool`| `'?'`    | `_Bool`              |
///
/// The trait is sealed: these are the only implementations.
///
/// # Examples
///
/// ```
/// use mpwasm_guest::Scalar;
///
/// assert_eq!(i32::TYPECODE, 'i');
/// assert_eq!(<f64 as Scalar>::WIDTH, 8);
/// assert_eq!(i8::from_bits((-3_i8).to_bits()), -3);
/// ```
pub trait Scalar: Copy + fmt::Debug + sealed::Sealed + 'static {
    /// Size in bytes (1, 2, 4 or 8).
    const WIDTH: u8;
    /// The CPython typecode for this type (see the table above).
    const TYPECODE: char;
    /// The value's bits as the host carries them: the `WIDTH` low bytes of
    /// an `i64` (a float's IEEE bits, a `bool` as 0 or 1).
    fn to_bits(self) -> i64;
    /// The value whose bits are the `WIDTH` low bytes of `bits` (higher
    /// bytes are ignored; any nonzero byte is `true`).
    fn from_bits(bits: i64) -> Self;
}

/// The integer [`Scalar`]s: those with atomic `fetch_add`, `fetch_sub`,
/// `swap` and `compare_exchange` ([`RawValue::fetch_add`], ...). Sealed, as
/// `Scalar`.
///
/// # Examples
///
/// ```no_run
/// use mpwasm_guest::{AtomicInt, Value};
///
/// fn bump<T: AtomicInt>(v: &Value<T>, by: T) -> T {
///     v.fetch_add(by)
/// }
/// ```
pub trait AtomicInt: Scalar {}

/// Implements `Scalar` (and `AtomicInt`) for an integer type.
macro_rules! int_scalar {
    ($($ty:ty => $code:literal),* $(,)?) => {$(
        impl sealed::Sealed for $ty {}

        impl Scalar for $ty {
            const WIDTH: u8 = std::mem::size_of::<$ty>() as u8;
            const TYPECODE: char = $code;

            fn to_bits(self) -> i64 {
                self as i64
            }

            fn from_bits(bits: i64) -> Self {
                // Truncates to the low bytes: the host zero-extends.
                bits as $ty
            }
        }

        impl AtomicInt for $ty {}
    )*};
}

int_scalar! {
    i8 => 'b', u8 => 'B', i16 => 'h', u16 => 'H',
    i32 => 'i', u32 => 'I', i64 => 'q', u64 => 'Q',
}

impl sealed::Sealed for f32 {}

impl Scalar for f32 {
    const WIDTH: u8 = 4;
    const TYPECODE: char = 'f';

    fn to_bits(self) -> i64 {
        i64::from(f32::to_bits(self))
    }

    fn from_bits(bits: i64) -> Self {
        f32::from_bits(bits as u32)
    }
}

impl sealed::Sealed for f64 {}

impl Scalar for f64 {
    const WIDTH: u8 = 8;
    const TYPECODE: char = 'd';

    fn to_bits(self) -> i64 {
        f64::to_bits(self) as i64
    }

    fn from_bits(bits: i64) -> Self {
        f64::from_bits(bits as u64)
    }
}

impl sealed::Sealed for bool {}

impl Scalar for bool {
    const WIDTH: u8 = 1;
    const TYPECODE: char = '?';

    fn to_bits(self) -> i64 {
        i64::from(self)
    }

    fn from_bits(bits: i64) -> Self {
        bits as u8 != 0
    }
}

/// `values` as the region stores them: each value's `WIDTH` bytes,
/// little-endian, back to back.
pub(crate) fn encode<T: Scalar>(values: &[T]) -> Vec<u8> {
    let width = usize::from(T::WIDTH);
    let mut bytes = Vec::with_capacity(values.len() * width);
    for v in values {
        bytes.extend_from_slice(&v.to_bits().to_le_bytes()[..width]);
    }
    bytes
}

/// The values stored in `bytes` (a whole number of `WIDTH`-byte cells).
pub(crate) fn decode<T: Scalar>(bytes: &[u8]) -> Vec<T> {
    bytes
        .chunks_exact(usize::from(T::WIDTH))
        .map(|cell| {
            let mut bits = [0; 8];
            bits[..cell.len()].copy_from_slice(cell);
            T::from_bits(i64::from_le_bytes(bits))
        })
        .collect()
}

/// For accesses the SDK bounds-checked before the call: the host refuses
/// only out-of-range or misaligned ones, so a refusal is a bug.
pub(crate) fn checked<T>(result: Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("the host refused a checked shared-memory access: {e}"))
}

/// Checks `range` against `len`: `Err` names the first index out of range.
/// A range that ends before it starts is empty (as a Python slice).
pub(crate) fn check_range(range: &Range<usize>, len: usize) -> Result<Range<usize>> {
    let end = range.end.max(range.start);
    if end > len {
        return Err(Error::IndexOutOfRange {
            index: range.start.max(len),
            len,
        });
    }
    Ok(range.start..end)
}

/// `len` cells of `T` in a region of their own: what `Value`, `RawValue`,
/// `Array` and `RawArray` hold. Indices are checked here; each operation is
/// one helper call on the guest's window, or one host call where the
/// guest has none.
pub(crate) struct Cells<T> {
    region: Handle<wit::Region>,
    /// Where the region is in this guest's window: if it is, each access is
    /// an atomic helper call instead of a host call.
    window: Option<u32>,
    len: usize,
    /// `fn(T) -> T`: the cells both take and give `T`s, and own none.
    ty: PhantomData<fn(T) -> T>,
}

impl<T: Scalar> Cells<T> {
    /// `len` zeroed cells.
    pub(crate) fn create(len: usize) -> Result<Cells<T>> {
        let bytes = len
            .checked_mul(usize::from(T::WIDTH))
            .ok_or_else(|| Error::Limit(format!("an array of {len} values is too large")))?;
        // A region has at least one byte, even for an empty array.
        let region = wit::create(bytes.max(1) as u64, None)?;
        Ok(Cells {
            window: region.window(),
            region: Handle::new(region),
            len,
            ty: PhantomData,
        })
    }

    /// One cell holding `initial`.
    pub(crate) fn with(initial: T) -> Result<Cells<T>> {
        let cell = Cells::create(1)?;
        // A new region is zeroed: storing zero bits would change nothing.
        if initial.to_bits() != 0 {
            cell.store(0, initial)?;
        }
        Ok(cell)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The byte offset of cell `i`, if there is one.
    fn offset(&self, i: usize) -> Result<u64> {
        if i >= self.len {
            return Err(Error::IndexOutOfRange {
                index: i,
                len: self.len,
            });
        }
        Ok((i * usize::from(T::WIDTH)) as u64)
    }

    /// The window address of byte `at` of the region, if it has one (`at`
    /// is inside the region, which is below 4 GiB).
    fn windowed(&self, at: u64) -> Option<u32> {
        self.window.map(|base| base + at as u32)
    }

    pub(crate) fn load(&self, i: usize) -> Result<T> {
        let at = self.offset(i)?;
        let bits = match self.windowed(at) {
            Some(w) => window::load(w, T::WIDTH),
            None => self.region.load(at, T::WIDTH)?,
        };
        Ok(T::from_bits(bits))
    }

    pub(crate) fn store(&self, i: usize, value: T) -> Result<()> {
        let at = self.offset(i)?;
        match self.windowed(at) {
            Some(w) => window::put(w, T::WIDTH, value.to_bits()),
            None => self.region.store(at, T::WIDTH, value.to_bits())?,
        }
        Ok(())
    }

    /// Adds `delta` bits (wrapping); the previous value.
    pub(crate) fn fetch_add(&self, i: usize, delta: i64) -> Result<T> {
        let at = self.offset(i)?;
        let bits = match self.windowed(at) {
            Some(w) => window::fetch_add(w, T::WIDTH, delta),
            None => self.region.fetch_add(at, T::WIDTH, delta)?,
        };
        Ok(T::from_bits(bits))
    }

    pub(crate) fn swap(&self, i: usize, value: T) -> Result<T> {
        let at = self.offset(i)?;
        let bits = match self.windowed(at) {
            Some(w) => window::swap(w, T::WIDTH, value.to_bits()),
            None => self.region.swap(at, T::WIDTH, value.to_bits())?,
        };
        Ok(T::from_bits(bits))
    }

    pub(crate) fn compare_exchange(&self, i: usize, current: T, new: T) -> Result<Result<T, T>> {
        let at = self.offset(i)?;
        let (current, new) = (current.to_bits(), new.to_bits());
        let swapped = match self.windowed(at) {
            Some(w) => window::compare_exchange(w, T::WIDTH, current, new),
            None => self.region.compare_exchange(at, T::WIDTH, current, new)?,
        };
        Ok(swapped.map(T::from_bits).map_err(T::from_bits))
    }

    /// Copies the cells of `range` out, in one copy.
    pub(crate) fn read(&self, range: Range<usize>) -> Result<Vec<T>> {
        let range = check_range(&range, self.len)?;
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let width = usize::from(T::WIDTH);
        let (at, len) = ((range.start * width) as u64, range.len() * width);
        let bytes = match self.windowed(at) {
            Some(w) => {
                let mut bytes = vec![0; len];
                window::read(w, &mut bytes);
                bytes
            }
            None => self.region.read(at, len as u64)?,
        };
        Ok(decode(&bytes))
    }

    /// Copies `values` into the cells from `offset` on, in one copy.
    pub(crate) fn write(&self, offset: usize, values: &[T]) -> Result<()> {
        let range = offset..offset.saturating_add(values.len());
        check_range(&range, self.len)?;
        if values.is_empty() {
            return Ok(());
        }
        let at = (offset * usize::from(T::WIDTH)) as u64;
        match self.windowed(at) {
            Some(w) => window::write(w, &encode(values)),
            None => self.region.write(at, &encode(values))?,
        }
        Ok(())
    }
}

impl<T> Clone for Cells<T> {
    fn clone(&self) -> Self {
        Cells {
            region: self.region.clone(),
            window: self.window,
            len: self.len,
            ty: PhantomData,
        }
    }
}

/// On the wire: the region's token, the typecode and the length, so that a
/// receiver expecting another type or a longer array fails to decode.
impl<T: Scalar> Serialize for Cells<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (&self.region, T::TYPECODE, self.len as u64).serialize(serializer)
    }
}

impl<'de, T: Scalar> Deserialize<'de> for Cells<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (region, typecode, len) =
            <(Handle<wit::Region>, char, u64)>::deserialize(deserializer)?;
        if typecode != T::TYPECODE {
            return Err(de::Error::custom(format_args!(
                "shared values of typecode {typecode:?} cannot be received as {:?} ({})",
                T::TYPECODE,
                std::any::type_name::<T>()
            )));
        }
        let fits = len
            .checked_mul(u64::from(T::WIDTH))
            .is_some_and(|bytes| bytes <= region.size());
        let len = usize::try_from(len).ok().filter(|_| fits).ok_or_else(|| {
            de::Error::custom(format_args!("{len} shared values do not fit their region"))
        })?;
        Ok(Cells {
            window: region.window(),
            region,
            len,
            ty: PhantomData,
        })
    }
}

/// A `T` in shared memory with a lock of its own (Python's
/// `multiprocessing.Value(typecode, initial)`, with the default
/// `lock=True`): a [`RawValue`] and a [`Lock`].
///
/// Every operation of the value is [`RawValue`]'s (a `Value` dereferences
/// to one): [`get`](RawValue::get) and [`set`](RawValue::set) are Python's
/// `.value` read and write, each one instruction, but
/// `counter.set(counter.get() + 1)` is two operations, and races exactly
/// like CPython's `counter.value += 1` (two processes read 5, both write
/// 6). Either hold [`get_lock`](Self::get_lock) around the pair, as in
/// Python, or use [`fetch_add`](RawValue::fetch_add), one atomic
/// read-modify-write that never loses an update.
///
/// Clones are handles to the same value; sending one to another process (in
/// [`Process`](crate::Process) arguments, a queue item or a pipe message)
/// gives the receiver a handle to the same value and the same lock.
///
/// Unlike CPython, whose default lock is an `RLock`, the lock is a
/// [`Lock`]: acquiring it twice in one process fails instead of nesting.
///
/// # Examples
///
/// ```no_run
/// use mpwasm_guest::Value;
///
/// let total = Value::new(0.0_f64)?; // Python: Value('d', 0.0)
/// {
///     let _guard = total.get_lock().acquire()?;
///     total.set(total.get() + 2.5); // safe: every writer holds the lock
/// }
/// assert_eq!(total.get(), 2.5);
/// # Ok::<(), mpwasm_guest::Error>(())
/// ```
#[derive(Serialize, Deserialize)]
#[serde(rename = "mpwasm::Value", bound = "")]
pub struct Value<T: Scalar> {
    raw: RawValue<T>,
    lock: Lock,
}

impl<T: Scalar> Value<T> {
    /// A shared `T` holding `initial`, with a new [`Lock`] (Python's
    /// `Value(typecode, initial)`; the typecode comes from `T`, see
    /// [`Scalar`]).
    ///
    /// # Errors
    ///
    /// The host's error, e.g. [`Error::Limit`] over a sandbox limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let counter = mpwasm_guest::Value::new(0_i32)?; // Value('i', 0)
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn new(initial: T) -> Result<Value<T>> {
        Ok(Value {
            raw: RawValue::new(initial)?,
            lock: Lock::new()?,
        })
    }

    /// The lock that comes with the value (Python's `get_lock()`), to make
    /// several operations one.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let v = mpwasm_guest::Value::new(1_i64)?;
    /// let _guard = v.get_lock().acquire()?;
    /// v.set(v.get() * 2);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn get_lock(&self) -> &Lock {
        &self.lock
    }
}

impl<T: Scalar> std::ops::Deref for Value<T> {
    type Target = RawValue<T>;

    /// The value without its lock: every operation of the value.
    fn deref(&self) -> &RawValue<T> {
        &self.raw
    }
}

impl<T: Scalar> Clone for Value<T> {
    /// Another handle to the same value and lock.
    fn clone(&self) -> Self {
        Value {
            raw: self.raw.clone(),
            lock: self.lock.clone(),
        }
    }
}

impl<T: Scalar> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value").field("value", &self.get()).finish()
    }
}

/// A `T` in shared memory without a lock (Python's
/// `multiprocessing.RawValue(typecode, initial)`, or `Value(..., lock=False)`),
/// and every operation of a [`Value`], which is one of these and a lock.
///
/// Each operation is atomic on its own; a read followed by a write is not,
/// and nothing here makes it so: use [`fetch_add`](Self::fetch_add), a
/// [`Value`]'s lock, or a separate [`Lock`].
///
/// # Examples
///
/// ```no_run
/// let seen = mpwasm_guest::RawValue::new(0_u32)?; // RawValue('I', 0)
/// seen.fetch_add(1);
/// assert_eq!(seen.get(), 1);
/// # Ok::<(), mpwasm_guest::Error>(())
/// ```
#[derive(Serialize, Deserialize)]
#[serde(rename = "mpwasm::RawValue", bound = "")]
pub struct RawValue<T: Scalar> {
    cell: Cells<T>,
}

impl<T: Scalar> RawValue<T> {
    /// A shared `T` holding `initial`, without a lock.
    ///
    /// # Errors
    ///
    /// The host's error, e.g. [`Error::Limit`] over a sandbox limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let ratio = mpwasm_guest::RawValue::new(0.5_f32)?; // RawValue('f', 0.5)
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn new(initial: T) -> Result<RawValue<T>> {
        Ok(RawValue {
            cell: Cells::with(initial)?,
        })
    }

    /// The current value (Python's `.value`): one atomic load.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let flag = mpwasm_guest::Value::new(true)?;
    /// assert!(flag.get());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn get(&self) -> T {
        checked(self.cell.load(0))
    }

    /// Replaces the value (Python's `.value = v`): one store, never seen
    /// half-written. Like CPython's, it is a plain store without a fence: a
    /// lock's release (or any other primitive) orders it for other
    /// processes, and a value read and written without one races.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let level = mpwasm_guest::RawValue::new(0_u8)?;
    /// level.set(3);
    /// assert_eq!(level.get(), 3);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn set(&self, value: T) {
        checked(self.cell.store(0, value));
    }
}

impl<T: AtomicInt> RawValue<T> {
    /// Adds `delta` (wrapping on overflow) and returns the previous value,
    /// in one atomic operation: mpwasm's answer to `counter.value += 1`
    /// racing. No lock needed.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let hits = mpwasm_guest::Value::new(0_u64)?;
    /// assert_eq!(hits.fetch_add(1), 0);
    /// assert_eq!(hits.get(), 1);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn fetch_add(&self, delta: T) -> T {
        checked(self.cell.fetch_add(0, delta.to_bits()))
    }

    /// Subtracts `delta` (wrapping) and returns the previous value, in one
    /// atomic operation.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let slots = mpwasm_guest::RawValue::new(3_i32)?;
    /// assert_eq!(slots.fetch_sub(1), 3);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn fetch_sub(&self, delta: T) -> T {
        checked(self.cell.fetch_add(0, delta.to_bits().wrapping_neg()))
    }

    /// Stores `value` and returns the previous one, in one atomic
    /// operation.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let state = mpwasm_guest::RawValue::new(1_u8)?;
    /// assert_eq!(state.swap(2), 1);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn swap(&self, value: T) -> T {
        checked(self.cell.swap(0, value))
    }

    /// Stores `new` if the value is `current`, in one atomic operation:
    /// `Ok(previous)` if it did, `Err(actual)` if the value was something
    /// else.
    ///
    /// # Errors
    ///
    /// `Err(actual)` when the value was not `current` (nothing stored).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let owner = mpwasm_guest::Value::new(0_u32)?;
    /// assert_eq!(owner.compare_exchange(0, 7), Ok(0));
    /// assert_eq!(owner.compare_exchange(0, 9), Err(7));
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn compare_exchange(&self, current: T, new: T) -> Result<T, T> {
        checked(self.cell.compare_exchange(0, current, new))
    }
}

impl<T: Scalar> Clone for RawValue<T> {
    /// Another handle to the same value.
    fn clone(&self) -> Self {
        RawValue {
            cell: self.cell.clone(),
        }
    }
}

impl<T: Scalar> fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawValue")
            .field("value", &self.get())
            .finish()
    }
}
