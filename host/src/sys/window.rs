//! Guest memories for engines whose guests have a window (see
//! [`crate::load::window`]): wasmtime asks [`Creator`] for every linear
//! memory, and the creator tells the window from the guest's own memory by
//! its reserved type.
//!
//! - The guest's own memory is a plain reservation (`PROT_NONE`), made
//!   readable and writable as it grows ([`Plain`]).
//! - The window is a reservation left `PROT_NONE` ([`Window`]): a shared
//!   region held by the process is `mmap(MAP_SHARED | MAP_FIXED)`ed at a
//!   free offset of it ([`Window::map`]) and mapped back to `PROT_NONE` when
//!   the process lets go of it. wasmtime turns a fault anywhere in a
//!   memory's reservation into a trap, so an access outside the regions
//!   mapped traps cleanly.
//!
//! Copy-on-write memory images must be off with a custom creator
//! (bytecodealliance/wasmtime#10740), and memories must not move
//! ([`crate::engine`]). The worker instantiates on one thread: the window a
//! creation made is handed to it through a thread-local
//! ([`take_created`]).

use std::cell::RefCell;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex};

use rustix::mm::{self, MapFlags, MprotectFlags, ProtFlags};
use wasmtime::{LinearMemory, MemoryCreator, MemoryType};

use crate::load::window::WINDOW_PAGES;

/// Bytes of the window a guest can address.
pub(crate) const WINDOW_BYTES: usize = WINDOW_PAGES as usize * 65536;

/// The granule regions are mapped at: the kernel's page.
const PAGE: usize = 4096;

thread_local! {
    /// The window the last instantiation on this thread created.
    static CREATED: RefCell<Option<Arc<Window>>> = const { RefCell::new(None) };
}

/// The window the last instantiation on this thread created, if any.
pub(crate) fn take_created() -> Option<Arc<Window>> {
    CREATED.with(|c| c.borrow_mut().take())
}

/// An address range reserved `PROT_NONE`, unmapped when dropped.
struct Reservation {
    base: *mut u8,
    len: usize,
}

// SAFETY: the range is owned by this value; the pointer is never used to
// form references, only handed to the kernel and to wasmtime.
unsafe impl Send for Reservation {}
// SAFETY: as above.
unsafe impl Sync for Reservation {}

impl Reservation {
    fn new(len: usize) -> io::Result<Self> {
        // SAFETY: a fresh anonymous mapping at an address the kernel picks
        // aliases nothing.
        let base = unsafe {
            mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )?
        };
        Ok(Reservation {
            base: base.cast(),
            len,
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // SAFETY: the range was mapped by `new` and nothing refers to it
        // any more (its memory and window are gone).
        unsafe {
            let _ = mm::munmap(self.base.cast(), self.len);
        }
    }
}

/// The memory creator of window engines.
#[derive(Debug, Default)]
pub(crate) struct Creator;

// SAFETY: every memory returned reserves `reserved + guard` bytes up front
// and never moves; pages a guest may access are zero-filled anonymous
// memory or shared regions (see `Window`).
unsafe impl MemoryCreator for Creator {
    fn new_memory(
        &self,
        ty: MemoryType,
        minimum: usize,
        maximum: Option<usize>,
        reserved: Option<usize>,
        guard: usize,
    ) -> Result<Box<dyn LinearMemory>, String> {
        let is_window = !ty.is_shared()
            && !ty.is_64()
            && ty.minimum() == WINDOW_PAGES
            && ty.maximum() == Some(WINDOW_PAGES);
        let capacity = reserved.unwrap_or_else(|| maximum.unwrap_or(minimum));
        let capacity = capacity.max(minimum).next_multiple_of(PAGE);
        let total = capacity
            .checked_add(guard)
            .ok_or("memory reservation overflows")?;
        let reservation = Reservation::new(total).map_err(|e| e.to_string())?;
        if is_window {
            let window = Arc::new(Window {
                reservation,
                capacity,
                free: Mutex::new(vec![(0, WINDOW_BYTES)]),
            });
            CREATED.with(|c| *c.borrow_mut() = Some(window.clone()));
            return Ok(Box::new(WindowMemory(window)));
        }
        let mut plain = Plain {
            reservation,
            capacity,
            size: 0,
        };
        plain.grow_to(minimum).map_err(|e| format!("{e:#}"))?;
        Ok(Box::new(plain))
    }
}

/// A guest's own memory.
struct Plain {
    reservation: Reservation,
    capacity: usize,
    size: usize,
}

// SAFETY: `[base, base + size)` is readable and writable, the rest of the
// reservation (including the guard) is `PROT_NONE`; the base never moves.
unsafe impl LinearMemory for Plain {
    fn byte_size(&self) -> usize {
        self.size
    }

    fn byte_capacity(&self) -> usize {
        self.capacity
    }

    fn grow_to(&mut self, new_size: usize) -> wasmtime::Result<()> {
        if new_size > self.capacity {
            return Err(wasmtime::Error::msg(
                "memory cannot grow past its reservation",
            ));
        }
        let from = self.size.next_multiple_of(PAGE);
        let to = new_size.next_multiple_of(PAGE);
        if to > from {
            // SAFETY: `[from, to)` lies inside the reservation.
            unsafe {
                mm::mprotect(
                    self.reservation.base.add(from).cast(),
                    to - from,
                    MprotectFlags::READ | MprotectFlags::WRITE,
                )?;
            }
        }
        self.size = new_size;
        Ok(())
    }

    fn as_ptr(&self) -> *mut u8 {
        self.reservation.base
    }
}

/// The window's memory as wasmtime sees it: fixed size, never grown.
struct WindowMemory(Arc<Window>);

// SAFETY: as `Plain`, except that pages are `PROT_NONE` unless a region is
// mapped there (see `Window`); wasmtime traps on faults in the reservation.
unsafe impl LinearMemory for WindowMemory {
    fn byte_size(&self) -> usize {
        WINDOW_BYTES
    }

    fn byte_capacity(&self) -> usize {
        self.0.capacity
    }

    fn grow_to(&mut self, new_size: usize) -> wasmtime::Result<()> {
        if new_size == WINDOW_BYTES {
            return Ok(());
        }
        Err(wasmtime::Error::msg("the window has a fixed size"))
    }

    fn as_ptr(&self) -> *mut u8 {
        self.0.reservation.base
    }
}

/// A guest's window: where the regions its process holds are mapped.
pub(crate) struct Window {
    reservation: Reservation,
    capacity: usize,
    /// Free ranges `(offset, len)`, page-aligned, in offset order.
    free: Mutex<Vec<(usize, usize)>>,
}

impl Window {
    /// Maps the first `len` bytes of the shared memory `fd` at a free
    /// offset of the window.
    ///
    /// # Errors
    ///
    /// No free range is large enough, or the kernel refuses the mapping.
    pub(crate) fn map(self: &Arc<Self>, fd: BorrowedFd<'_>, len: usize) -> io::Result<Mapping> {
        // SAFETY: `at` is a free range of our own reservation (`map_at`):
        // replacing its pages changes no other mapping.
        self.map_at(len, |at, len| unsafe {
            mm::mmap(
                at,
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED | MapFlags::FIXED,
                fd,
                0,
            )
        })
    }

    /// Maps `len` bytes of zeroes, private to this process, at a free
    /// offset of the window: the staging page of
    /// `mpwasm:runtime/queue.stage`.
    ///
    /// # Errors
    ///
    /// As [`map`](Self::map).
    pub(crate) fn map_private(self: &Arc<Self>, len: usize) -> io::Result<Mapping> {
        // SAFETY: as in `map`.
        self.map_at(len, |at, len| unsafe {
            mm::mmap_anonymous(
                at,
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::FIXED,
            )
        })
    }

    /// Maps `len` bytes (rounded up to pages) with `mmap` at a free range
    /// of the reservation, which it is given.
    fn map_at(
        self: &Arc<Self>,
        len: usize,
        mmap: impl FnOnce(*mut std::ffi::c_void, usize) -> rustix::io::Result<*mut std::ffi::c_void>,
    ) -> io::Result<Mapping> {
        let len = len.max(1).next_multiple_of(PAGE);
        let offset = self.allocate(len).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::OutOfMemory,
                "the regions this process holds fill its window",
            )
        })?;
        // SAFETY: `offset + len` is inside the reservation (`allocate`).
        let mapped = mmap(unsafe { self.reservation.base.add(offset).cast() }, len);
        if let Err(e) = mapped {
            self.release(offset, len);
            return Err(e.into());
        }
        Ok(Mapping {
            window: self.clone(),
            offset,
            len,
        })
    }

    fn allocate(&self, len: usize) -> Option<usize> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let i = free.iter().position(|&(_, l)| l >= len)?;
        let (offset, l) = free[i];
        if l == len {
            free.remove(i);
        } else {
            free[i] = (offset + len, l - len);
        }
        Some(offset)
    }

    fn release(&self, offset: usize, len: usize) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let i = free.partition_point(|&(o, _)| o < offset);
        free.insert(i, (offset, len));
        // Merge with the neighbours.
        if i + 1 < free.len() && free[i].0 + free[i].1 == free[i + 1].0 {
            free[i].1 += free[i + 1].1;
            free.remove(i + 1);
        }
        if i > 0 && free[i - 1].0 + free[i - 1].1 == free[i].0 {
            free[i - 1].1 += free[i].1;
            free.remove(i);
        }
    }
}

/// A region mapped into a window; mapped back to `PROT_NONE` when dropped.
pub(crate) struct Mapping {
    window: Arc<Window>,
    offset: usize,
    len: usize,
}

impl Mapping {
    /// Where the region starts in the window (what the guest's helpers
    /// take as addresses).
    pub(crate) fn offset(&self) -> u32 {
        // The window is below 4 GiB.
        self.offset as u32
    }

    /// The mapping's bytes as the host sees them: [`len`](Self::len)
    /// bytes, readable and writable, which the guest may change whenever
    /// it runs.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        // SAFETY: the offset is inside the reservation.
        unsafe { self.window.reservation.base.add(self.offset) }
    }

    /// The mapping's length: whole pages.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the range is this mapping's, inside the reservation.
        let unmapped = unsafe {
            mm::mmap_anonymous(
                self.as_ptr().cast(),
                self.len,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::FIXED | MapFlags::NORESERVE,
            )
        };
        // Reuse the range only if the region is really gone from it.
        if unmapped.is_ok() {
            self.window.release(self.offset, self.len);
        }
    }
}

#[cfg(test)]
mod test;
