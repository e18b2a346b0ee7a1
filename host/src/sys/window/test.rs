#![cfg(test)]
//! The memory layout wasmtime gives a window guest, which the SDK's fast
//! paths rely on: run on every wasmtime bump.

use std::sync::atomic::Ordering;

use wasmtime::{Instance, Linker, Module, Store};

use super::{take_created, Window, WINDOW_BYTES};
use crate::load::window::test::{guest_module, one_page, ALL};
use crate::sys::ipc::SharedMap;

fn instantiate() -> (Store<()>, Instance, std::sync::Arc<Window>) {
    let engine = crate::engine::engine(crate::engine::Checks::default(), true).unwrap();
    let bytes = crate::load::window::rewrite(&guest_module(&[one_page()], ALL)).unwrap();
    let module = Module::new(&engine, &bytes).unwrap();
    let mut linker = Linker::new(&engine);
    linker.func_wrap("env", "f", || {}).unwrap();
    let mut store = Store::new(&engine, ());
    // The engine interrupts at epoch deadlines; nothing advances it here.
    store.set_epoch_deadline(u64::MAX);
    drop(take_created());
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let window = take_created().expect("instantiation created a window");
    (store, instance, window)
}

#[test]
fn the_window_is_a_second_reservation_that_traps_until_a_region_is_mapped() {
    let (mut store, instance, window) = instantiate();
    let own = instance.get_memory(&mut store, "memory").unwrap();
    assert_eq!(own.data_size(&store), 65536, "memory 0 keeps its size");
    let base = own.data_ptr(&store) as usize;
    let window_base = window.reservation.base as usize;
    assert!(
        window_base >= base + window.capacity || base >= window_base + window.capacity,
        "memory 0 and the window overlap"
    );
    let peek = instance
        .get_typed_func::<u32, u32>(&mut store, "peek")
        .unwrap();
    // Nothing mapped: a clean trap, not a crash.
    let trap = peek.call(&mut store, 0).unwrap_err();
    assert_eq!(
        trap.downcast_ref::<wasmtime::Trap>(),
        Some(&wasmtime::Trap::MemoryOutOfBounds),
        "{trap:?}"
    );
    // Past the window's size too.
    assert!(peek.call(&mut store, WINDOW_BYTES as u32).is_err());
}

#[test]
fn a_mapped_region_is_shared_with_the_host_and_atomic() {
    let (mut store, instance, window) = instantiate();
    let region = SharedMap::create("mpwasm-test", 8192).unwrap();
    let mapping = window.map(region.fd(), region.len()).unwrap();
    let at = mapping.offset();
    assert_eq!(at % 4096, 0);
    let bump = instance
        .get_typed_func::<(u32, u32), u32>(&mut store, "bump")
        .unwrap();
    let peek = instance
        .get_typed_func::<u32, u32>(&mut store, "peek")
        .unwrap();
    let cas = instance
        .get_typed_func::<(u32, u32, u32), u32>(&mut store, "cas")
        .unwrap();
    let out = instance
        .get_typed_func::<(u32, u32, u32), ()>(&mut store, "out")
        .unwrap();
    let own = instance
        .get_typed_func::<u32, u32>(&mut store, "own")
        .unwrap();
    let poke = instance
        .get_typed_func::<(u32, u32), ()>(&mut store, "poke")
        .unwrap();
    assert_eq!(bump.call(&mut store, (at + 4, 5)).unwrap(), 0);
    assert_eq!(bump.call(&mut store, (at + 4, 5)).unwrap(), 5);
    assert_eq!(
        region.word(1).load(Ordering::SeqCst),
        10,
        "the host sees it"
    );
    region.word(2).store(7, Ordering::SeqCst);
    assert_eq!(
        peek.call(&mut store, at + 8).unwrap(),
        7,
        "the guest sees it"
    );
    assert_eq!(cas.call(&mut store, (at + 4, 10, 42)).unwrap(), 10);
    assert_eq!(cas.call(&mut store, (at + 4, 10, 43)).unwrap(), 42);
    // A plain store (`put`) lands in the region too.
    poke.call(&mut store, (at + 12, 9)).unwrap();
    assert_eq!(
        region.word(3).load(Ordering::SeqCst),
        9,
        "the host sees a put"
    );
    out.call(&mut store, (100, at + 4, 4)).unwrap();
    assert_eq!(own.call(&mut store, 100).unwrap(), 42, "copied out");
    // A misaligned atomic traps.
    assert!(peek.call(&mut store, at + 2).is_err());
    // Past the region's pages: not mapped.
    assert!(peek.call(&mut store, at + 8192).is_err());
    drop(mapping);
    assert!(peek.call(&mut store, at + 8).is_err(), "unmapped again");
    assert_eq!(
        region.word(1).load(Ordering::SeqCst),
        42,
        "the region lives on"
    );
}

#[test]
fn freed_ranges_are_merged_and_reused() {
    let (_store, _instance, window) = instantiate();
    let region = SharedMap::create("mpwasm-test", 4096).unwrap();
    let a = window.map(region.fd(), 4096).unwrap();
    let b = window.map(region.fd(), 4096).unwrap();
    let c = window.map(region.fd(), 4096).unwrap();
    let (a_at, b_at) = (a.offset(), b.offset());
    assert_eq!(b_at, a_at + 4096);
    drop(a);
    drop(b);
    let big = window.map(region.fd(), 8192).unwrap();
    assert_eq!(big.offset(), a_at, "a and b merged into one range");
    drop((big, c));
    let free = window.free.lock().unwrap();
    assert_eq!(*free, [(0, WINDOW_BYTES)]);
}

/// The staging page (`queue.stage`): zeroes, private, in the window; what
/// the host writes through [`Mapping::as_ptr`](super::Mapping::as_ptr) the
/// guest reads there, and the other way round; a guest access past it
/// traps, and so does one after it is dropped.
#[test]
fn a_private_page_is_shared_by_the_guest_and_its_host_only() {
    let (mut store, instance, window) = instantiate();
    let page = window.map_private(4096).unwrap();
    assert_eq!(page.len(), 4096);
    let at = page.offset();
    let peek = instance
        .get_typed_func::<u32, u32>(&mut store, "peek")
        .unwrap();
    let poke = instance
        .get_typed_func::<(u32, u32), ()>(&mut store, "poke")
        .unwrap();
    assert_eq!(peek.call(&mut store, at + 16).unwrap(), 0, "zeroes");
    // SAFETY: the page is mapped, 4096 bytes, and no guest code runs.
    let host = unsafe { std::slice::from_raw_parts_mut(page.as_ptr(), page.len()) };
    host[16..20].copy_from_slice(&7u32.to_le_bytes());
    assert_eq!(
        peek.call(&mut store, at + 16).unwrap(),
        7,
        "the guest sees it"
    );
    poke.call(&mut store, (at + 4092, 9)).unwrap();
    assert_eq!(
        host[4092..].to_vec(),
        9u32.to_le_bytes(),
        "the host sees it"
    );
    assert!(peek.call(&mut store, at + 4096).is_err(), "past the page");
    drop(page);
    assert!(peek.call(&mut store, at + 16).is_err(), "unmapped again");
}
