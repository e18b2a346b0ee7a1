//! `mpwasm:runtime/shared`: regions of shared memory (`Value`, `Array`,
//! `SharedMemory`).
//!
//! Hops of `counter.fetch_add(1)` on a `Value`:
//! 1. `Value::new` → `Call::RegionCreate`: the broker ([`create`]) makes a
//!    memfd and hands it over; the worker maps it ([`RegionHandle`]);
//! 2. the region travels to other processes as a token; each redeems it and
//!    maps the same memfd;
//! 3. `fetch_add` is a host function that does one atomic add on the
//!    mapping, in the worker process: no message, no broker.
//!
//! Every offset and length a guest passes is checked against the region;
//! atomics must be naturally aligned.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use wasmtime::component::Resource;

use super::{unexpected, HostResult};
use crate::bindings::{shared, types};
use crate::broker::budget::Charge;
use crate::broker::{Answer, Broker, Object};
use crate::limits::MAX_REGION_BYTES;
use crate::sys::ipc::SharedMap;
use crate::wire::{Call, CallError, Reply};
use crate::worker::child::WorkerState;

// ---------------------------------------------------------------------------
// The worker's side.

/// A region handle in a guest's resource table: the mapping.
pub struct RegionHandle {
    id: u64,
    map: SharedMap,
    name: Option<String>,
    /// The region in the guest's window, if it has one.
    window: Option<crate::sys::window::Mapping>,
}

impl RegionHandle {
    fn from_reply(reply: Reply, mut fds: Vec<OwnedFd>) -> wasmtime::Result<Self> {
        let Reply::Region { id, size, name } = reply else {
            return Err(unexpected(reply));
        };
        let (Some(fd), true) = (fds.pop(), fds.is_empty()) else {
            return Err(wasmtime::Error::msg(
                "a region arrived without its descriptor",
            ));
        };
        let size = usize::try_from(size.min(MAX_REGION_BYTES))?;
        Ok(RegionHandle {
            id,
            map: SharedMap::map(fd, size.max(1))?,
            name,
            window: None,
        })
    }

    /// `len` bytes at `offset`, if inside the region.
    fn span(&self, offset: u64, len: u64) -> Result<usize, types::Error> {
        match offset.checked_add(len) {
            Some(end) if end <= self.map.len() as u64 => Ok(offset as usize),
            _ => Err(types::Error::Other(format!(
                "{len} bytes at offset {offset} are outside the region of {} bytes",
                self.map.len()
            ))),
        }
    }

    /// Runs `op` on the naturally aligned integer of `width` bytes at
    /// `offset`, with values carried in 64 bits.
    fn atomic(
        &self,
        offset: u64,
        width: u8,
        op: impl FnOnce(Atomic<'_>) -> Result<i64, i64>,
    ) -> Result<Result<i64, i64>, types::Error> {
        if !matches!(width, 1 | 2 | 4 | 8) {
            return Err(types::Error::Other(format!(
                "no atomic integer is {width} bytes wide"
            )));
        }
        let at = self.span(offset, u64::from(width))?;
        if at % usize::from(width) != 0 {
            return Err(types::Error::Other(format!(
                "offset {offset} is not aligned for a {width}-byte integer"
            )));
        }
        // SAFETY: in bounds and aligned (checked above); the mapping lives
        // as long as `self`; the atomic types have their integers' layout.
        let atomic = unsafe {
            let p = self.map.as_ptr().add(at);
            match width {
                1 => Atomic::W1(&*(p as *const AtomicU8)),
                2 => Atomic::W2(&*(p as *const AtomicU16)),
                4 => Atomic::W4(&*(p as *const AtomicU32)),
                _ => Atomic::W8(&*(p as *const AtomicU64)),
            }
        };
        Ok(op(atomic))
    }
}

/// An integer of some width in shared memory.
enum Atomic<'a> {
    W1(&'a AtomicU8),
    W2(&'a AtomicU16),
    W4(&'a AtomicU32),
    W8(&'a AtomicU64),
}

/// Applies the same operation to whichever width: `$v` is the value cast to
/// the width's unsigned type, the result is cast back to `i64` bits.
macro_rules! on_width {
    ($atomic:expr, |$a:ident, $t:ident| $body:expr) => {
        match $atomic {
            Atomic::W1($a) => {
                type $t = u8;
                $body.map(|v| v as i64).map_err(|v| v as i64)
            }
            Atomic::W2($a) => {
                type $t = u16;
                $body.map(|v| v as i64).map_err(|v| v as i64)
            }
            Atomic::W4($a) => {
                type $t = u32;
                $body.map(|v| v as i64).map_err(|v| v as i64)
            }
            Atomic::W8($a) => {
                type $t = u64;
                $body.map(|v| v as i64).map_err(|v| v as i64)
            }
        }
    };
}

impl WorkerState {
    fn region(&self, handle: &Resource<RegionHandle>) -> wasmtime::Result<&RegionHandle> {
        Ok(self.table.get(handle)?)
    }
}

impl shared::HostRegion for WorkerState {
    fn size(&mut self, handle: Resource<RegionHandle>) -> wasmtime::Result<u64> {
        Ok(self.region(&handle)?.map.len() as u64)
    }

    fn read(
        &mut self,
        handle: Resource<RegionHandle>,
        offset: u64,
        len: u64,
    ) -> HostResult<Vec<u8>> {
        let r = self.region(&handle)?;
        let at = match r.span(offset, len) {
            Ok(at) => at,
            Err(e) => return Ok(Err(e)),
        };
        let mut out = vec![0u8; len as usize];
        // SAFETY: `at..at+len` is inside the mapping (checked). Other
        // processes may write it meanwhile: a torn value is possible (as in
        // Python's shared memory), a fault is not.
        unsafe {
            std::ptr::copy_nonoverlapping(r.map.as_ptr().add(at), out.as_mut_ptr(), out.len())
        };
        Ok(Ok(out))
    }

    fn write(
        &mut self,
        handle: Resource<RegionHandle>,
        offset: u64,
        data: Vec<u8>,
    ) -> HostResult<()> {
        let r = self.region(&handle)?;
        let at = match r.span(offset, data.len() as u64) {
            Ok(at) => at,
            Err(e) => return Ok(Err(e)),
        };
        // SAFETY: as in `read`.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), r.map.as_ptr().add(at), data.len()) };
        Ok(Ok(()))
    }

    fn load(&mut self, handle: Resource<RegionHandle>, offset: u64, width: u8) -> HostResult<i64> {
        let r = self.region(&handle)?;
        Ok(r.atomic(offset, width, |a| {
            on_width!(a, |a, T| Ok::<T, T>(a.load(Ordering::SeqCst)))
        })
        .map(|v| v.unwrap_or_else(|v| v)))
    }

    fn store(
        &mut self,
        handle: Resource<RegionHandle>,
        offset: u64,
        width: u8,
        value: i64,
    ) -> HostResult<()> {
        let r = self.region(&handle)?;
        Ok(r.atomic(offset, width, |a| {
            on_width!(a, |a, T| {
                a.store(value as T, Ordering::SeqCst);
                Ok::<T, T>(0)
            })
        })
        .map(|_| ()))
    }

    fn fetch_add(
        &mut self,
        handle: Resource<RegionHandle>,
        offset: u64,
        width: u8,
        delta: i64,
    ) -> HostResult<i64> {
        let r = self.region(&handle)?;
        Ok(r.atomic(offset, width, |a| {
            on_width!(a, |a, T| Ok::<T, T>(
                a.fetch_add(delta as T, Ordering::SeqCst)
            ))
        })
        .map(|v| v.unwrap_or_else(|v| v)))
    }

    fn swap(
        &mut self,
        handle: Resource<RegionHandle>,
        offset: u64,
        width: u8,
        value: i64,
    ) -> HostResult<i64> {
        let r = self.region(&handle)?;
        Ok(r.atomic(offset, width, |a| {
            on_width!(a, |a, T| Ok::<T, T>(a.swap(value as T, Ordering::SeqCst)))
        })
        .map(|v| v.unwrap_or_else(|v| v)))
    }

    fn compare_exchange(
        &mut self,
        handle: Resource<RegionHandle>,
        offset: u64,
        width: u8,
        current: i64,
        new: i64,
    ) -> HostResult<Result<i64, i64>> {
        let r = self.region(&handle)?;
        Ok(r.atomic(offset, width, |a| {
            on_width!(a, |a, T| a.compare_exchange(
                current as T,
                new as T,
                Ordering::SeqCst,
                Ordering::SeqCst
            ))
        }))
    }

    fn name(&mut self, handle: Resource<RegionHandle>) -> wasmtime::Result<Option<String>> {
        Ok(self.region(&handle)?.name.clone())
    }

    fn unlink(&mut self, handle: Resource<RegionHandle>) -> HostResult<()> {
        let id = self.region(&handle)?.id;
        Ok(self.upcall(Call::RegionUnlink { id }, &[])?.map(|_| ()))
    }

    fn share(&mut self, handle: Resource<RegionHandle>) -> HostResult<u64> {
        let id = self.region(&handle)?.id;
        super::token(self.upcall(Call::Share { id }, &[])?)
    }

    fn window(&mut self, handle: Resource<RegionHandle>) -> wasmtime::Result<Option<u32>> {
        Ok(self.region(&handle)?.window.as_ref().map(|w| w.offset()))
    }

    fn load_or_trap(
        &mut self,
        handle: Resource<RegionHandle>,
        offset: u64,
        width: u8,
    ) -> wasmtime::Result<i64> {
        self.load(handle, offset, width)?.map_err(trap)
    }

    fn store_or_trap(
        &mut self,
        handle: Resource<RegionHandle>,
        offset: u64,
        width: u8,
        value: i64,
    ) -> wasmtime::Result<()> {
        self.store(handle, offset, width, value)?.map_err(trap)
    }

    fn drop(&mut self, handle: Resource<RegionHandle>) -> wasmtime::Result<()> {
        let r = self.table.delete(handle)?;
        self.upcall(Call::Release { id: r.id }, &[])?.ok();
        Ok(())
    }
}

/// The trap of a `*-or-trap` call that `load`/`store` would refuse.
fn trap(e: types::Error) -> wasmtime::Error {
    wasmtime::Error::msg(format!("shared region: {e:?}"))
}

impl WorkerState {
    fn region_reply(&mut self, call: Call) -> HostResult<Resource<RegionHandle>> {
        Ok(match self.upcall(call, &[])? {
            Ok((reply @ Reply::Region { .. }, fds)) => {
                let mut region = RegionHandle::from_reply(reply, fds)?;
                if let Some(window) = &self.window {
                    // A full window leaves the region to the host calls.
                    region.window = window.map(region.map.fd(), region.map.len()).ok();
                }
                Ok(self.table.push(region)?)
            }
            Ok((other, _)) => Err(self.refuse(other)?),
            Err(e) => Err(e),
        })
    }
}

impl shared::Host for WorkerState {
    fn create(&mut self, size: u64, name: Option<String>) -> HostResult<Resource<RegionHandle>> {
        self.region_reply(Call::RegionCreate { size, name })
    }

    fn attach(&mut self, name: String) -> HostResult<Resource<RegionHandle>> {
        self.region_reply(Call::RegionAttach { name })
    }

    fn adopt(&mut self, cap: u64) -> HostResult<Resource<RegionHandle>> {
        self.region_reply(Call::Adopt { token: cap })
    }
}

// ---------------------------------------------------------------------------
// The broker's side.

/// A region as the broker keeps it: the memfd, to hand to every holder.
pub(crate) struct Hub {
    map: SharedMap,
    name: std::sync::Mutex<Option<String>>,
    /// One of the run's objects, and its bytes of the run's shared memory.
    _charges: [Charge; 2],
}

impl Hub {
    /// The reply that gives a process this region (id `id`).
    pub(crate) fn hand_out(&self, id: u64) -> Answer {
        let fd = self
            .map
            .fd()
            .try_clone_to_owned()
            .map_err(crate::broker::os_error)?;
        let reply = Reply::Region {
            id,
            size: self.map.len() as u64,
            name: self.name.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        };
        Ok((reply, vec![fd]))
    }
}

/// Longest region name.
const MAX_NAME_BYTES: usize = 255;

/// `Call::RegionCreate`.
pub(crate) fn create(broker: &Broker, caller: u64, size: u64, name: Option<String>) -> Answer {
    if size == 0 || size > MAX_REGION_BYTES {
        return Err(CallError::Limit(format!(
            "a region must be 1 to {MAX_REGION_BYTES} bytes, not {size}"
        )));
    }
    if name
        .as_ref()
        .is_some_and(|n| n.is_empty() || n.len() > MAX_NAME_BYTES)
    {
        return Err(CallError::Other(format!(
            "a region name must be 1 to {MAX_NAME_BYTES} bytes"
        )));
    }
    let object = broker.charge_object("a new region")?;
    // The kernel gives shared memory in pages.
    let pages = size.div_ceil(4096) * 4096;
    let bytes = broker.charge_shared(pages, &format!("a region of {size} bytes"))?;
    let map = SharedMap::create("mpwasm-region", size as usize).map_err(crate::broker::os_error)?;
    let hub = Arc::new(Hub {
        map,
        name: std::sync::Mutex::new(name.clone()),
        _charges: [object, bytes],
    });
    let id = broker.register(Object::Region(hub.clone()), Some(caller))?;
    if let Some(name) = name {
        if !broker.name(&name, id) {
            broker.release(caller, id);
            return Err(CallError::Other(format!(
                "a region named {name:?} already exists"
            )));
        }
    }
    hub.hand_out(id)
}

/// `Call::RegionAttach`.
pub(crate) fn attach(broker: &Broker, caller: u64, name: &str) -> Answer {
    let id = broker
        .named(name)
        .ok_or_else(|| CallError::Other(format!("no region named {name:?}")))?;
    broker.hold(caller, id);
    match broker.get(caller, id)? {
        Object::Region(hub) => hub.hand_out(id),
        _ => Err(CallError::InvalidHandle),
    }
}

/// `Call::RegionUnlink`.
pub(crate) fn unlink(broker: &Broker, caller: u64, id: u64) -> Answer {
    let Object::Region(hub) = broker.get(caller, id)? else {
        return Err(CallError::InvalidHandle);
    };
    let name = hub.name.lock().unwrap_or_else(|e| e.into_inner()).take();
    match name {
        Some(name) => {
            broker.unname(&name);
            Ok((Reply::Ok, Vec::new()))
        }
        None => Err(CallError::Other(
            "the region has no name (unlinked already?)".into(),
        )),
    }
}
