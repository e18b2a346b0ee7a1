//! The guest's window: shared regions mapped into a second memory, reached
//! through atomic helper functions instead of host calls.
//!
//! Rust on `wasm32-wasip1` cannot emit atomic instructions, so these are
//! imports from the reserved module `mpwasm:window`, which the mpwasm loader
//! replaces with generated functions doing one real atomic instruction on
//! the second memory (a core call, a few ns; a host call is ~165 ns). An
//! address is an offset in that memory: a region's offset
//! ([`Region::window`](crate::bindings::shared::Region::window)) plus the
//! byte inside it. Every access the SDK makes is inside the region and
//! naturally aligned; anything else traps.
//!
//! Off wasm (the SDK's own unit tests), there is no window: every region
//! reports none and these functions are never called.

/// Values travel in 64 bits, as the host's atomics carry them; `width` is
/// 1, 2, 4 or 8 bytes.
#[cfg(target_arch = "wasm32")]
mod imp {
    #[link(wasm_import_module = "mpwasm:window")]
    extern "C" {
        fn load8(at: u32) -> u32;
        fn load16(at: u32) -> u32;
        fn load32(at: u32) -> u32;
        fn load64(at: u32) -> u64;
        fn store8(at: u32, v: u32);
        fn store16(at: u32, v: u32);
        fn store32(at: u32, v: u32);
        fn store64(at: u32, v: u64);
        fn put8(at: u32, v: u32);
        fn put16(at: u32, v: u32);
        fn put32(at: u32, v: u32);
        fn put64(at: u32, v: u64);
        fn add8(at: u32, v: u32) -> u32;
        fn add16(at: u32, v: u32) -> u32;
        fn add32(at: u32, v: u32) -> u32;
        fn add64(at: u32, v: u64) -> u64;
        fn xchg8(at: u32, v: u32) -> u32;
        fn xchg16(at: u32, v: u32) -> u32;
        fn xchg32(at: u32, v: u32) -> u32;
        fn xchg64(at: u32, v: u64) -> u64;
        fn cmpxchg8(at: u32, expected: u32, new: u32) -> u32;
        fn cmpxchg16(at: u32, expected: u32, new: u32) -> u32;
        fn cmpxchg32(at: u32, expected: u32, new: u32) -> u32;
        fn cmpxchg64(at: u32, expected: u64, new: u64) -> u64;
        fn copy_in(at: u32, from: *const u8, len: usize);
        fn copy_out(to: *mut u8, at: u32, len: usize);
    }

    /// The low `width` bytes of `v`.
    fn narrow(v: i64, width: u8) -> u32 {
        match width {
            1 => v as u8 as u32,
            2 => v as u16 as u32,
            _ => v as u32,
        }
    }

    // SAFETY (all functions below): the imports are the loader's generated
    // helpers; each only touches the window, and an access the window does
    // not allow traps instead of touching anything else.

    pub(crate) fn load(at: u32, width: u8) -> i64 {
        unsafe {
            match width {
                1 => i64::from(load8(at)),
                2 => i64::from(load16(at)),
                4 => i64::from(load32(at)),
                _ => load64(at) as i64,
            }
        }
    }

    /// Calls the 8-, 16-, 32- or 64-bit one of four storing helpers, by
    /// `width`, with `v` narrowed to it.
    macro_rules! store_by_width {
        ($at:expr, $width:expr, $v:expr, $f8:ident, $f16:ident, $f32:ident, $f64:ident) => {
            unsafe {
                match $width {
                    1 => $f8($at, narrow($v, 1)),
                    2 => $f16($at, narrow($v, 2)),
                    4 => $f32($at, narrow($v, 4)),
                    _ => $f64($at, $v as u64),
                }
            }
        };
    }

    /// A sequentially consistent store.
    pub(crate) fn store(at: u32, width: u8, v: i64) {
        store_by_width!(at, width, v, store8, store16, store32, store64)
    }

    /// A plain store: no fence, as CPython's `ctypes` stores a shared
    /// value; the next atomic operation (a lock's release) orders it.
    pub(crate) fn put(at: u32, width: u8, v: i64) {
        store_by_width!(at, width, v, put8, put16, put32, put64)
    }

    pub(crate) fn fetch_add(at: u32, width: u8, v: i64) -> i64 {
        unsafe {
            match width {
                1 => i64::from(add8(at, narrow(v, 1))),
                2 => i64::from(add16(at, narrow(v, 2))),
                4 => i64::from(add32(at, narrow(v, 4))),
                _ => add64(at, v as u64) as i64,
            }
        }
    }

    pub(crate) fn swap(at: u32, width: u8, v: i64) -> i64 {
        unsafe {
            match width {
                1 => i64::from(xchg8(at, narrow(v, 1))),
                2 => i64::from(xchg16(at, narrow(v, 2))),
                4 => i64::from(xchg32(at, narrow(v, 4))),
                _ => xchg64(at, v as u64) as i64,
            }
        }
    }

    /// `Ok(previous)` if the value was `current` (compared on `width`
    /// bytes) and is now `new`, else `Err(actual)`.
    pub(crate) fn compare_exchange(at: u32, width: u8, current: i64, new: i64) -> Result<i64, i64> {
        let (seen, wanted) = unsafe {
            match width {
                1 | 2 | 4 => (
                    i64::from(match width {
                        1 => cmpxchg8(at, narrow(current, 1), narrow(new, 1)),
                        2 => cmpxchg16(at, narrow(current, 2), narrow(new, 2)),
                        _ => cmpxchg32(at, narrow(current, 4), narrow(new, 4)),
                    }),
                    i64::from(narrow(current, width)),
                ),
                _ => (cmpxchg64(at, current as u64, new as u64) as i64, current),
            }
        };
        if seen == wanted {
            Ok(seen)
        } else {
            Err(seen)
        }
    }

    pub(crate) fn read(at: u32, out: &mut [u8]) {
        unsafe { copy_out(out.as_mut_ptr(), at, out.len()) }
    }

    pub(crate) fn write(at: u32, data: &[u8]) {
        unsafe { copy_in(at, data.as_ptr(), data.len()) }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    //! No window off wasm: regions report none, so nothing calls these.

    fn none() -> ! {
        unreachable!("no window outside wasm")
    }
    pub(crate) fn load(_: u32, _: u8) -> i64 {
        none()
    }
    pub(crate) fn store(_: u32, _: u8, _: i64) {
        none()
    }
    pub(crate) fn put(_: u32, _: u8, _: i64) {
        none()
    }
    pub(crate) fn fetch_add(_: u32, _: u8, _: i64) -> i64 {
        none()
    }
    pub(crate) fn swap(_: u32, _: u8, _: i64) -> i64 {
        none()
    }
    pub(crate) fn compare_exchange(_: u32, _: u8, _: i64, _: i64) -> Result<i64, i64> {
        none()
    }
    pub(crate) fn read(_: u32, _: &mut [u8]) {
        none()
    }
    pub(crate) fn write(_: u32, _: &[u8]) {
        none()
    }
}

pub(crate) use imp::*;
