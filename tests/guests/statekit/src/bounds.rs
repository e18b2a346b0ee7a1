//! What a guest cannot reach: indices past an array, regions it holds no
//! handle to.

use mpwasm_guest::{pipe, Array, Lock, Process, RawArray, RawValue, Result, SharedMemory};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::PATIENCE;

/// Indices past the end of an array, from a child process; then the array
/// as usual.
#[mpwasm_guest::task]
fn out_of_bounds(a: Array<i32>) {
    println!("child_get {:?}", a.get(a.len()));
    println!("child_set {:?}", a.set(usize::MAX, 1));
}

/// `array_bounds`: every out-of-range index is an error in the guest; the
/// host carries on and the run exits 0.
pub fn array_bounds() -> Result<()> {
    let a = Array::<i32>::new(10)?;
    println!("get {:?}", a.get(10));
    println!("get_max {:?}", a.get(usize::MAX));
    println!("set {:?}", a.set(10, 1));
    println!("read {:?}", a.read(5..11));
    // Python's a[6:5]: empty. (A variable keeps clippy from flagging the
    // deliberately reversed range.)
    let (from, to) = (6, 5);
    println!("read_reversed {:?}", a.read(from..to));
    println!("write {:?}", a.write(8, &[1, 2, 3]));
    println!("write_max {:?}", a.write(usize::MAX, &[1]));
    println!("fetch_add {:?}", a.fetch_add(10, 1));
    let mut child = Process::new("out_of_bounds", &a);
    child.start()?;
    child.join_timeout(PATIENCE)?;
    println!("child_exitcode {:?}", child.exitcode());

    // The region itself checks too (SharedMemory offsets are bytes).
    let shm = SharedMemory::new(64)?;
    println!("shm_read {:?}", shm.read(60, 8));
    println!("shm_read_max {:?}", shm.read(usize::MAX, 2));
    println!("shm_write {:?}", shm.write(63, &[1, 2]));

    a.set(9, 7)?;
    a.write(0, &[1, 2])?;
    println!("in_range {:?} {:?}", a.get(9), a.read(0..3));
    println!(
        "shm_in_range {:?}",
        shm.write(62, &[1, 2]).and_then(|()| shm.read(62, 2))
    );
    Ok(())
}

/// Decodes its argument as a value handle and writes to it.
#[mpwasm_guest::task]
fn touch_value(v: RawValue<i32>) {
    v.set(666);
}

/// On the wire a `RawValue<i32>` or `RawArray<i32>` is its region's token,
/// its typecode and its length; a lock is its token, kind and a parameter.
type RegionWire = (u64, char, u64);
type SyncWire = (u64, u8, u32);

/// Sends `wire` through a pipe and receives it as a `T`.
fn receive_as<T: DeserializeOwned>(wire: &impl Serialize) -> Result<T> {
    let (a, b) = pipe(true)?;
    a.send(wire)?;
    b.recv::<T>()
}

/// `forged`: a token the host never minted, or one for another kind of
/// object, does not become a region handle; nor does a name never created;
/// nor does a real token claim more than its region.
pub fn forged() -> Result<()> {
    for token in [0, 1, 12345, u64::MAX] {
        let got = receive_as::<RawValue<i32>>(&(token, 'i', 1_u64));
        println!("forged {token} {:?}", got.map(|v| v.get()));
    }
    let real = RawValue::new(41_i32)?;
    let (real_token, _, _): RegionWire = receive_as(&real)?;
    let adopted = receive_as::<RawValue<i32>>(&(real_token, 'i', 1_u64));
    println!("real_token {:?}", adopted.map(|v| v.fetch_add(1)));
    let near = receive_as::<RawValue<i32>>(&(real_token ^ 1, 'i', 1_u64));
    println!("real_near {:?}", near.map(|v| v.get()));
    let longer = receive_as::<RawArray<i32>>(&(real_token, 'i', 1000_u64));
    println!("real_longer {:?}", longer.map(|a| a.len()));
    // A real lock's token, offered as a region.
    let lock = Lock::new()?;
    let (lock_token, _, _): SyncWire = receive_as(&lock)?;
    let as_region = receive_as::<RawValue<i32>>(&(lock_token, 'i', 1_u64));
    println!("lock_token {:?}", as_region.map(|v| v.get()));

    let mut child = Process::new("touch_value", (12345_u64, 'i', 1_u64));
    child.start()?;
    child.join_timeout(PATIENCE)?;
    println!("forged_args_exitcode {:?}", child.exitcode());
    println!("real_after {}", real.get());

    let unknown = SharedMemory::attach("statekit-never-created");
    println!("attach_unknown {:?}", unknown.map(|s| s.size()));
    let named = SharedMemory::create("statekit-named", 64)?;
    named.write(0, b"hi")?;
    let attached = SharedMemory::attach("statekit-named")?;
    println!("attach_named {:?}", attached.read(0, 2));
    named.unlink()?;
    let unlinked = SharedMemory::attach("statekit-named");
    println!("attach_unlinked {:?}", unlinked.map(|s| s.size()));
    Ok(())
}
