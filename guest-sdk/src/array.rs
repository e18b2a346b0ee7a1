//! Shared arrays (Python's `multiprocessing.Array` and `RawArray`).
//!
//! An array is a fixed number of [`Scalar`] cells in a region of shared
//! memory every holder maps. Indices are checked in the guest before any
//! host call ([`Error::IndexOutOfRange`](crate::Error::IndexOutOfRange)); [`RawArray::get`] and
//! [`RawArray::set`] are one atomic load or one plain store (as CPython's
//! `ctypes` array stores: no fence), [`RawArray::read`] and
//! [`RawArray::write`] copy a whole range at once — through the guest's
//! window, with no host call, for every guest built with this SDK.
//!
//! ```no_run
//! use mpwasm_guest::{Array, Process};
//!
//! #[mpwasm_guest::task]
//! fn square_in_place(a: Array<f64>) {
//!     let _guard = a.get_lock().acquire().unwrap();
//!     let squares: Vec<f64> = a.to_vec().iter().map(|x| x * x).collect();
//!     a.write(0, &squares).unwrap();
//! }
//!
//! #[mpwasm_guest::main]
//! fn main() -> mpwasm_guest::Result<()> {
//!     let a = Array::from_slice(&[1.0, 2.0, 3.0])?; // Array('d', [1.0, 2.0, 3.0])
//!     let mut p = mpwasm_guest::Process::new("square_in_place", a.clone());
//!     p.start()?;
//!     p.join()?;
//!     assert_eq!(a.to_vec(), [1.0, 4.0, 9.0]);
//!     Ok(())
//! }
//! ```

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::sync::Lock;
use crate::value::{checked, AtomicInt, Cells, Scalar};

/// A fixed-length array of `T` in shared memory, with a lock of its own
/// (Python's `multiprocessing.Array(typecode, size_or_initializer)` with
/// the default `lock=True`): a [`RawArray`] and a [`Lock`].
///
/// Every element operation is [`RawArray`]'s (an `Array` dereferences to
/// one), each atomic on its own; a read-modify-write of an element is not,
/// except [`fetch_add`](RawArray::fetch_add). Hold
/// [`get_lock`](Self::get_lock) to make several operations one, as in
/// Python (the lock is a [`Lock`], not CPython's default `RLock`).
///
/// Clones are handles to the same array; sending one to another process
/// gives the receiver a handle to the same array and lock.
///
/// # Examples
///
/// ```no_run
/// use mpwasm_guest::{Array, Error};
///
/// let a: Array<i32> = Array::new(10)?; // Array('i', 10): ten zeros
/// a.set(3, 42)?;
/// assert_eq!(a.get(3)?, 42);
/// assert_eq!(a.get(10), Err(Error::IndexOutOfRange { index: 10, len: 10 }));
/// # Ok::<(), Error>(())
/// ```
#[derive(Serialize, Deserialize)]
#[serde(rename = "mpwasm::Array", bound = "")]
pub struct Array<T: Scalar> {
    raw: RawArray<T>,
    lock: Lock,
}

/// Python's `Array('c', ...)`: an array of bytes, with
/// [`value`](RawArray::value) / [`set_value`](RawArray::set_value) for its
/// NUL-terminated contents and [`raw`](RawArray::raw) for all of them (a
/// `RawArray<u8>` has them too: Python's `RawArray('c', ...)`).
///
/// # Examples
///
/// ```no_run
/// let name = mpwasm_guest::ByteArray::new(16)?;
/// name.set_value(b"worker-1")?;
/// assert_eq!(name.value(), b"worker-1");
/// # Ok::<(), mpwasm_guest::Error>(())
/// ```
pub type ByteArray = Array<u8>;

impl<T: Scalar> Array<T> {
    /// An array of `len` zeros (Python's `Array(typecode, len)`).
    ///
    /// # Errors
    ///
    /// [`Error::Limit`](crate::Error::Limit) if the array is larger than the host allows; the
    /// host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let hist: mpwasm_guest::Array<u64> = mpwasm_guest::Array::new(256)?;
    /// assert_eq!(hist.len(), 256);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn new(len: usize) -> Result<Array<T>> {
        Ok(Array {
            raw: RawArray::new(len)?,
            lock: Lock::new()?,
        })
    }

    /// An array holding a copy of `values` (Python's `Array(typecode,
    /// [..])`).
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let a = mpwasm_guest::Array::from_slice(&[1_i16, 2, 3])?;
    /// assert_eq!(a.to_vec(), [1, 2, 3]);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn from_slice(values: &[T]) -> Result<Array<T>> {
        let array = Array::new(values.len())?;
        array.write(0, values)?;
        Ok(array)
    }

    /// The lock that comes with the array (Python's `get_lock()`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let a = mpwasm_guest::Array::from_slice(&[1_u8, 2])?;
    /// let _guard = a.get_lock().acquire()?;
    /// a.write(0, &[a.get(1)?, a.get(0)?])?; // swap, with nobody in between
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn get_lock(&self) -> &Lock {
        &self.lock
    }
}

impl<T: Scalar> std::ops::Deref for Array<T> {
    type Target = RawArray<T>;

    /// The array without its lock: every operation of the array.
    fn deref(&self) -> &RawArray<T> {
        &self.raw
    }
}

impl<T: Scalar> Clone for Array<T> {
    /// Another handle to the same array and lock.
    fn clone(&self) -> Self {
        Array {
            raw: self.raw.clone(),
            lock: self.lock.clone(),
        }
    }
}

impl<T: Scalar> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array")
            .field("typecode", &T::TYPECODE)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// A fixed-length array of `T` in shared memory without a lock (Python's
/// `multiprocessing.RawArray`, or `Array(..., lock=False)`), and every
/// element operation of an [`Array`], which is one of these and a lock.
///
/// # Examples
///
/// ```no_run
/// let buf: mpwasm_guest::RawArray<f64> = mpwasm_guest::RawArray::new(1024)?;
/// buf.write(0, &[0.5; 16])?;
/// # Ok::<(), mpwasm_guest::Error>(())
/// ```
#[derive(Serialize, Deserialize)]
#[serde(rename = "mpwasm::RawArray", bound = "")]
pub struct RawArray<T: Scalar> {
    cells: Cells<T>,
}

impl<T: Scalar> RawArray<T> {
    /// An array of `len` zeros (Python's `RawArray(typecode, len)`).
    ///
    /// # Errors
    ///
    /// [`Error::Limit`](crate::Error::Limit) if the array is larger than the host allows; the
    /// host's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let a: mpwasm_guest::RawArray<i32> = mpwasm_guest::RawArray::new(8)?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn new(len: usize) -> Result<RawArray<T>> {
        Ok(RawArray {
            cells: Cells::create(len)?,
        })
    }

    /// An array holding a copy of `values`.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let a = mpwasm_guest::RawArray::from_slice(&[1_u8, 2])?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn from_slice(values: &[T]) -> Result<RawArray<T>> {
        let array = RawArray::new(values.len())?;
        array.write(0, values)?;
        Ok(array)
    }

    /// The number of elements, fixed at creation (Python's `len(a)`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let a: mpwasm_guest::Array<f32> = mpwasm_guest::Array::new(4)?;
    /// assert_eq!(a.len(), 4);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether the array has no elements.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let a: mpwasm_guest::Array<u8> = mpwasm_guest::Array::new(0)?;
    /// assert!(a.is_empty());
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` (Python's `a[i]`): one atomic load.
    ///
    /// # Errors
    ///
    /// [`Error::IndexOutOfRange`](crate::Error::IndexOutOfRange) if `i >= len()`, before any host call.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let a = mpwasm_guest::Array::from_slice(&[7_u32, 8])?;
    /// assert_eq!(a.get(1)?, 8);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn get(&self, i: usize) -> Result<T> {
        self.cells.load(i)
    }

    /// Sets element `i` (Python's `a[i] = v`): one store, never seen
    /// half-written, without a fence (as CPython's; a lock's release or any
    /// other primitive orders it for other processes).
    ///
    /// # Errors
    ///
    /// [`Error::IndexOutOfRange`](crate::Error::IndexOutOfRange) if `i >= len()`, before any host call.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let a: mpwasm_guest::Array<bool> = mpwasm_guest::Array::new(3)?;
    /// a.set(2, true)?;
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn set(&self, i: usize, value: T) -> Result<()> {
        self.cells.store(i, value)
    }

    /// A copy of the elements in `range` (Python's `a[start:end]`), in one
    /// host call. Not atomic as a whole: hold [`get_lock`](Array::get_lock)
    /// for a consistent snapshot while others write.
    ///
    /// A range that ends before it starts is empty, as a Python slice.
    ///
    /// # Errors
    ///
    /// [`Error::IndexOutOfRange`](crate::Error::IndexOutOfRange) if the range goes past `len()`, before
    /// any host call.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let a = mpwasm_guest::Array::from_slice(&[1_i64, 2, 3, 4])?;
    /// assert_eq!(a.read(1..3)?, [2, 3]);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn read(&self, range: Range<usize>) -> Result<Vec<T>> {
        self.cells.read(range)
    }

    /// Copies `values` into the array from index `offset` on (Python's
    /// `a[offset:offset + len(values)] = values`), in one host call.
    ///
    /// # Errors
    ///
    /// [`Error::IndexOutOfRange`](crate::Error::IndexOutOfRange) if the values would go past `len()`,
    /// before any host call (nothing is written).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let a: mpwasm_guest::Array<u16> = mpwasm_guest::Array::new(4)?;
    /// a.write(2, &[5, 6])?;
    /// assert_eq!(a.to_vec(), [0, 0, 5, 6]);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn write(&self, offset: usize, values: &[T]) -> Result<()> {
        self.cells.write(offset, values)
    }

    /// A copy of every element (Python's `a[:]`), in one host call.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let a: mpwasm_guest::Array<i8> = mpwasm_guest::Array::new(2)?;
    /// assert_eq!(a.to_vec(), [0, 0]);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        checked(self.cells.read(0..self.len()))
    }
}

impl<T: AtomicInt> RawArray<T> {
    /// Adds `delta` to element `i` (wrapping) and returns its previous
    /// value, in one atomic operation.
    ///
    /// # Errors
    ///
    /// [`Error::IndexOutOfRange`](crate::Error::IndexOutOfRange) if `i >= len()`, before any host call.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let hist: mpwasm_guest::Array<u32> = mpwasm_guest::Array::new(10)?;
    /// hist.fetch_add(3, 1)?;
    /// assert_eq!(hist.get(3)?, 1);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn fetch_add(&self, i: usize, delta: T) -> Result<T> {
        self.cells.fetch_add(i, delta.to_bits())
    }
}

impl RawArray<u8> {
    /// The bytes up to the first NUL, or all of them (Python's `.value` of
    /// an `Array('c', ...)`), read in one host call.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let s = mpwasm_guest::ByteArray::from_slice(b"hi\0there")?;
    /// assert_eq!(s.value(), b"hi");
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn value(&self) -> Vec<u8> {
        let mut bytes = self.to_vec();
        if let Some(nul) = bytes.iter().position(|&b| b == 0) {
            bytes.truncate(nul);
        }
        bytes
    }

    /// Stores `bytes` from the start, followed by a NUL if there is room
    /// (Python's `.value = b"..."`), in one host call.
    ///
    /// # Errors
    ///
    /// [`Error::IndexOutOfRange`](crate::Error::IndexOutOfRange) if `bytes` is longer than the array
    /// (Python's `ValueError: byte string too long`); nothing is written.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let s = mpwasm_guest::ByteArray::new(8)?;
    /// s.set_value(b"abc")?;
    /// assert_eq!(s.raw()[..4], *b"abc\0");
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn set_value(&self, bytes: &[u8]) -> Result<()> {
        if bytes.len() < self.len() {
            let mut terminated = bytes.to_vec();
            terminated.push(0);
            self.write(0, &terminated)
        } else {
            self.write(0, bytes)
        }
    }

    /// Every byte, NULs included (Python's `.raw`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let s = mpwasm_guest::ByteArray::new(2)?;
    /// assert_eq!(s.raw(), [0, 0]);
    /// # Ok::<(), mpwasm_guest::Error>(())
    /// ```
    pub fn raw(&self) -> Vec<u8> {
        self.to_vec()
    }
}

impl<T: Scalar> Clone for RawArray<T> {
    /// Another handle to the same array.
    fn clone(&self) -> Self {
        RawArray {
            cells: self.cells.clone(),
        }
    }
}

impl<T: Scalar> fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawArray")
            .field("typecode", &T::TYPECODE)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}
