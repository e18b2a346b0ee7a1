//! `_TestValue`, `_TestArray`, `_TestSharedCTypes` and `_TestSharedMemory`.
//!
//! Python's typecodes are Rust types here: `'i'` is `i32`, `'d'` `f64`,
//! `'h'` `i16`, `'q'` `i64`, and `'c'` (one byte) `u8`.

use mpwasm_guest::{
    Array, Error, Item, RawArray, RawValue, Result, ShareableList, SharedMemory, Value,
};

use crate::check::*;

/// `_TestValue.codes_values`: each typecode's initial and later value.
const I: (i32, i32) = (4343, 24234);
const D: (f64, f64) = (3.625, -4.25);
const H: (i16, i16) = (-232, 234);
const Q: (i64, i64) = (1 << 33, 1 << 34);
const C: (u8, u8) = (b'x', b'y');

/// One value of each typecode.
type Values = (Value<i32>, Value<f64>, Value<i16>, Value<i64>, Value<u8>);

/// One raw value of each typecode.
type RawValues = (
    RawValue<i32>,
    RawValue<f64>,
    RawValue<i16>,
    RawValue<i64>,
    RawValue<u8>,
);

/// `_TestValue._test`: sets every value to its later one.
#[mpwasm_guest::task]
fn value_set(values: Values) {
    values.0.set(I.1);
    values.1.set(D.1);
    values.2.set(H.1);
    values.3.set(Q.1);
    values.4.set(C.1);
}

/// `_TestValue._test`, for raw values.
#[mpwasm_guest::task]
fn raw_value_set(values: RawValues) {
    values.0.set(I.1);
    values.1.set(D.1);
    values.2.set(H.1);
    values.3.set(Q.1);
    values.4.set(C.1);
}

/// `_TestValue.test_value`: values of each typecode start as given and
/// show what a child set.
#[mpwasm_guest::task]
pub(crate) fn TestValue__test_value() -> Result<()> {
    let values = (
        Value::new(I.0)?,
        Value::new(D.0)?,
        Value::new(H.0)?,
        Value::new(Q.0)?,
        Value::new(C.0)?,
    );
    check_eq!(
        (
            values.0.get(),
            values.1.get(),
            values.2.get(),
            values.3.get(),
            values.4.get()
        ),
        (I.0, D.0, H.0, Q.0, C.0)
    );
    let mut proc = start("value_set", &values, true)?;
    join_ok(&mut proc)?;
    check_eq!(
        (
            values.0.get(),
            values.1.get(),
            values.2.get(),
            values.3.get(),
            values.4.get()
        ),
        (I.1, D.1, H.1, Q.1, C.1)
    );
    Ok(())
}

/// `_TestValue.test_rawvalue`: as `test_value`, for raw values.
#[mpwasm_guest::task]
pub(crate) fn TestValue__test_rawvalue() -> Result<()> {
    let values = (
        RawValue::new(I.0)?,
        RawValue::new(D.0)?,
        RawValue::new(H.0)?,
        RawValue::new(Q.0)?,
        RawValue::new(C.0)?,
    );
    check_eq!(
        (
            values.0.get(),
            values.1.get(),
            values.2.get(),
            values.3.get(),
            values.4.get()
        ),
        (I.0, D.0, H.0, Q.0, C.0)
    );
    let mut proc = start("raw_value_set", &values, true)?;
    join_ok(&mut proc)?;
    check_eq!(
        (
            values.0.get(),
            values.1.get(),
            values.2.get(),
            values.3.get(),
            values.4.get()
        ),
        (I.1, D.1, H.1, Q.1, C.1)
    );
    Ok(())
}

/// `_TestArray.seq`.
const SEQ: [i32; 10] = [680, 626, 934, 821, 150, 233, 548, 982, 714, 831];

/// `_TestArray.f`: running sums, in place.
fn running_sums(seq: &mut [i32]) {
    for i in 1..seq.len() {
        seq[i] += seq[i - 1];
    }
}

/// `_TestArray.f` in a child, on a shared array.
#[mpwasm_guest::task]
fn array_running_sums(arr: Array<i32>) -> Result<()> {
    for i in 1..arr.len() {
        arr.set(i, arr.get(i)? + arr.get(i - 1)?)?;
    }
    Ok(())
}

/// `_TestArray.f` in a child, on a raw shared array.
#[mpwasm_guest::task]
fn raw_array_running_sums(arr: RawArray<i32>) -> Result<()> {
    for i in 1..arr.len() {
        arr.set(i, arr.get(i)? + arr.get(i - 1)?)?;
    }
    Ok(())
}

/// `_TestArray.test_array`: length, indexing, slices and slice
/// assignment, and a child's changes.
#[mpwasm_guest::task]
pub(crate) fn TestArray__test_array() -> Result<()> {
    let mut seq = SEQ.to_vec();
    let arr = Array::from_slice(&seq)?;
    check_eq!(arr.len(), seq.len());
    check_eq!(arr.get(3)?, seq[3]);
    check_eq!(arr.read(2..7)?, seq[2..7]);
    arr.write(4, &[1, 2, 3, 4])?;
    seq[4..8].copy_from_slice(&[1, 2, 3, 4]);
    check_eq!(arr.to_vec(), seq);
    running_sums(&mut seq);
    let mut p = start("array_running_sums", &arr, true)?;
    join_ok(&mut p)?;
    check_eq!(arr.to_vec(), seq);
    Ok(())
}

/// `_TestArray.test_rawarray`: as `test_array`, for a raw array.
#[mpwasm_guest::task]
pub(crate) fn TestArray__test_rawarray() -> Result<()> {
    let mut seq = SEQ.to_vec();
    let arr = RawArray::from_slice(&seq)?;
    check_eq!(arr.len(), seq.len());
    check_eq!(arr.get(3)?, seq[3]);
    check_eq!(arr.read(2..7)?, seq[2..7]);
    arr.write(4, &[1, 2, 3, 4])?;
    seq[4..8].copy_from_slice(&[1, 2, 3, 4]);
    check_eq!(arr.to_vec(), seq);
    running_sums(&mut seq);
    let mut p = start("raw_array_running_sums", &arr, true)?;
    join_ok(&mut p)?;
    check_eq!(arr.to_vec(), seq);
    Ok(())
}

/// `_TestArray.test_array_from_size` (issue 11675): a new array is zeroed,
/// however often one is made.
#[mpwasm_guest::task]
pub(crate) fn TestArray__test_array_from_size() -> Result<()> {
    let size = 10;
    for _ in 0..3 {
        let arr = Array::<i32>::new(size)?;
        check_eq!(arr.len(), size);
        check_eq!(arr.to_vec(), vec![0; size]);
        let range: Vec<i32> = (0..10).collect();
        arr.write(0, &range)?;
        check_eq!(arr.to_vec(), range);
    }
    Ok(())
}

/// `_TestSharedCTypes._double`, on synchronized values (each doubled under
/// its lock).
#[mpwasm_guest::task]
fn double_synchronized(
    x: Value<i32>,
    y: Value<f64>,
    z: Value<i64>,
    arr: Array<f64>,
    string: Array<u8>,
) -> Result<()> {
    {
        let _g = x.get_lock().acquire()?;
        x.set(x.get() * 2);
    }
    {
        let _g = y.get_lock().acquire()?;
        y.set(y.get() * 2.0);
    }
    {
        let _g = z.get_lock().acquire()?;
        z.set(z.get() * 2);
    }
    {
        let _g = string.get_lock().acquire()?;
        let value = string.value();
        string.set_value(&[value.clone(), value].concat())?;
    }
    let _g = arr.get_lock().acquire()?;
    for i in 0..arr.len() {
        arr.set(i, arr.get(i)? * 2.0)?;
    }
    Ok(())
}

/// `_TestSharedCTypes._double`, on raw values.
#[mpwasm_guest::task]
fn double_raw(
    x: RawValue<i32>,
    y: RawValue<f64>,
    z: RawValue<i64>,
    arr: RawArray<f64>,
    string: RawArray<u8>,
) -> Result<()> {
    x.set(x.get() * 2);
    y.set(y.get() * 2.0);
    z.set(z.get() * 2);
    for i in 0..arr.len() {
        arr.set(i, arr.get(i)? * 2.0)?;
    }
    let len = string
        .to_vec()
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(string.len());
    let value = string.read(0..len)?;
    string.write(len, &value)?;
    Ok(())
}

/// The bytes of a C string (up to the first NUL), as ctypes' `.value`.
fn c_string(bytes: &[u8]) -> &[u8] {
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..len]
}

/// `_TestSharedCTypes.test_sharedctypes` (`lock=False`): raw values, an
/// array and a string doubled by a child. (The ctypes `Structure` case has
/// no counterpart: shared values hold numbers.)
#[mpwasm_guest::task]
pub(crate) fn TestSharedCTypes__test_sharedctypes() -> Result<()> {
    let x = RawValue::new(7_i32)?;
    let y = RawValue::new(1.0_f64 / 3.0)?;
    let z = RawValue::new(1_i64 << 33)?;
    let arr = RawArray::from_slice(&(0..10).map(f64::from).collect::<Vec<_>>())?;
    let string = RawArray::<u8>::new(20)?;
    string.write(0, b"hello")?;
    let mut p = start("double_raw", (&x, &y, &z, &arr, &string), true)?;
    join_ok(&mut p)?;
    check_eq!(x.get(), 14);
    check!((y.get() - 2.0 / 3.0).abs() < 1e-7);
    check_eq!(z.get(), 1_i64 << 34);
    for i in 0..10 {
        check!((arr.get(i)? - f64::from(i as u8) * 2.0).abs() < 1e-7);
    }
    check_eq!(c_string(&string.to_vec()), b"hellohello");
    Ok(())
}

/// `_TestSharedCTypes.test_synchronize` (`lock=True`): as
/// `test_sharedctypes`, with synchronized values.
#[mpwasm_guest::task]
pub(crate) fn TestSharedCTypes__test_synchronize() -> Result<()> {
    let x = Value::new(7_i32)?;
    let y = Value::new(1.0_f64 / 3.0)?;
    let z = Value::new(1_i64 << 33)?;
    let arr = Array::from_slice(&(0..10).map(f64::from).collect::<Vec<_>>())?;
    let string = Array::<u8>::new(20)?;
    string.set_value(b"hello")?;
    let mut p = start("double_synchronized", (&x, &y, &z, &arr, &string), true)?;
    join_ok(&mut p)?;
    check_eq!(x.get(), 14);
    check!((y.get() - 2.0 / 3.0).abs() < 1e-7);
    check_eq!(z.get(), 1_i64 << 34);
    for i in 0..10 {
        check!((arr.get(i)? - f64::from(i as u8) * 2.0).abs() < 1e-7);
    }
    check_eq!(string.value(), b"hellohello");
    Ok(())
}

/// A name for this run's blocks (CPython's `_new_shm_name` adds the pid so
/// parallel runs do not collide; each `mpwasm run` has its own names).
fn shm_name(prefix: &str) -> String {
    format!("{prefix}{}", mpwasm_guest::current_process().pid)
}

/// `_TestSharedMemory.test_shared_memory_basics` (the parts with a
/// counterpart): name and size, writes seen through a second attachment,
/// unlinking twice, creating a taken name, attaching a missing one.
#[mpwasm_guest::task]
pub(crate) fn TestSharedMemory__test_shared_memory_basics() -> Result<()> {
    let name = shm_name("test01_tsmb");
    let sms = SharedMemory::create(&name, 512)?;
    check_eq!(sms.name(), Some(name.clone()));
    check!(sms.size() >= 512);
    check!(sms.buf().len() >= sms.size());
    check!(format!("{sms:?}").contains(&sms.size().to_string()));

    sms.write(0, &[42])?;
    check_eq!(sms.read(0, 1)?, [42]);
    let also_sms = SharedMemory::attach(&name)?;
    check_eq!(also_sms.read(0, 1)?, [42]);
    also_sms.close();

    let dblunlink = shm_name("test01_dblunlink");
    let sms_uno = SharedMemory::create(&dblunlink, 5000)?;
    check!(sms_uno.size() >= 5000);
    let sms_duo = SharedMemory::attach(&dblunlink)?;
    sms_duo.unlink()?; // the first unlink
    sms_duo.close();
    check!(sms_uno.unlink().is_err()); // a second one is refused

    // FileExistsError, then FileNotFoundError.
    check!(SharedMemory::create(&name, 512).is_err());
    check!(SharedMemory::attach("test01_notthere").is_err());
    sms.unlink()?;
    Ok(())
}

/// `_TestSharedMemory._attach_existing_shmem_then_write`, by name.
#[mpwasm_guest::task]
fn shm_attach_then_write(name: String, data: Vec<u8>) -> Result<()> {
    SharedMemory::attach(&name)?.write(0, &data)
}

/// `_TestSharedMemory._attach_existing_shmem_then_write`, by handle.
#[mpwasm_guest::task]
fn shm_write(shm: SharedMemory, data: Vec<u8>) -> Result<()> {
    shm.write(0, &data)
}

/// `_TestSharedMemory.test_shared_memory_across_processes` (bpo-40135):
/// a child writes a block it attached by name, and one it was sent.
#[mpwasm_guest::task]
pub(crate) fn TestSharedMemory__test_shared_memory_across_processes() -> Result<()> {
    let name = shm_name("across");
    let sms = SharedMemory::create(&name, 512)?;
    let mut p = start("shm_attach_then_write", (&name, b"howdy".to_vec()), true)?;
    join_ok(&mut p)?;
    check_eq!(sms.read(0, 5)?, b"howdy");
    let mut p = start("shm_write", (&sms, b"HELLO".to_vec()), true)?;
    join_ok(&mut p)?;
    check_eq!(sms.read(0, 5)?, b"HELLO");
    sms.unlink()
}

/// Encodes `value` and decodes it again, as `pickle.loads(pickle.dumps(x))`
/// does: through a pipe to this same process.
fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> Result<T> {
    let (a, b) = mpwasm_guest::pipe(true)?;
    a.send(value)?;
    b.recv()
}

/// `_TestSharedMemory.test_shared_memory_pickle_unpickle`: a decoded copy
/// of a block's handle is the same block.
#[mpwasm_guest::task]
pub(crate) fn TestSharedMemory__test_shared_memory_pickle_unpickle() -> Result<()> {
    let name = shm_name("pickle");
    let sms = SharedMemory::create(&name, 512)?;
    sms.write(0, b"pickle")?;
    let sms2: SharedMemory = round_trip(&sms)?;
    check_eq!(sms.name(), sms2.name());
    check_eq!(sms.read(0, 6)?, b"pickle");
    check_eq!(sms2.read(0, 6)?, b"pickle");
    sms.write(0, b"newval")?;
    check_eq!(sms.read(0, 6)?, b"newval");
    check_eq!(sms2.read(0, 6)?, b"newval");
    sms2.write(0, b"oldval")?;
    check_eq!(sms.read(0, 6)?, b"oldval");
    check_eq!(sms2.read(0, 6)?, b"oldval");
    sms.unlink()
}

/// `_TestSharedMemory.test_shared_memory_pickle_unpickle_dead_object`: a
/// handle decoded after the block was closed and unlinked fails.
#[mpwasm_guest::task]
pub(crate) fn TestSharedMemory__test_shared_memory_pickle_unpickle_dead_object() -> Result<()> {
    let name = shm_name("dead");
    let sms = SharedMemory::create(&name, 512)?;
    sms.write(0, b"pickle")?;
    let (a, b) = mpwasm_guest::pipe(true)?;
    a.send(&sms)?; // pickle.dumps
    sms.unlink()?;
    sms.close();
    check!(b.recv::<SharedMemory>().is_err()); // pickle.loads
    Ok(())
}

/// `_TestSharedMemory.test_invalid_shared_memory_creation`: a block of 0
/// bytes is refused. (Python's negative and missing sizes do not type-check
/// as `usize`.)
#[mpwasm_guest::task]
pub(crate) fn TestSharedMemory__test_invalid_shared_memory_creation() -> Result<()> {
    check!(SharedMemory::new(0).is_err());
    check!(SharedMemory::create(&shm_name("zero"), 0).is_err());
    Ok(())
}

/// `_TestSharedMemory.test_shared_memory_name_with_embedded_null`: a name
/// with a NUL in it does not attach to the block named by its prefix.
#[mpwasm_guest::task]
pub(crate) fn TestSharedMemory__test_shared_memory_name_with_embedded_null() -> Result<()> {
    let name = shm_name("test01_null");
    let sms = SharedMemory::create(&name, 512)?;
    check!(SharedMemory::attach(&format!("{name}\0a")).is_err());
    sms.unlink()
}

/// `ShareableList(['howdy', b'HoWdY', -273.154, 100, None, True, 42])`'s
/// items.
fn howdy() -> Vec<Option<Item>> {
    vec![
        Some("howdy".into()),
        Some(b"HoWdY".to_vec().into()),
        Some((-273.154).into()),
        Some(100_i64.into()),
        None,
        Some(true.into()),
        Some(42_i64.into()),
    ]
}

/// `_TestSharedMemory.test_shared_memory_ShareableList_basics` (but the
/// `format` string): bounds, `index` and `count`, negative indices, types
/// changing within a slot's size, slots too small, a duplicate list and a
/// second handle on the same one. (`index` of an absent value is `None`
/// where Python raises `ValueError`.)
#[mpwasm_guest::task]
pub(crate) fn TestSharedMemory__test_shared_memory_ShareableList_basics() -> Result<()> {
    let name = shm_name("test03_sl");
    let sl = ShareableList::create(&name, howdy())?;
    check!(format!("{sl:?}").contains(&sl.len().to_string()));

    check_err!(sl.get(7), Error::IndexOutOfRange { .. });
    check_err!(sl.set(7, Some(2_i64.into())), Error::IndexOutOfRange { .. });
    sl.set(0, Some("howdy".into()))?;
    check_eq!(sl.len(), 7);
    check_eq!(sl.index(&Some("100".into()))?, None);
    check_eq!(sl.index(&Some(100_i64.into()))?, Some(3));
    check_eq!(sl.get(0)?, Some(Item::Str("howdy".into())));
    check_eq!(sl.get(-2)?, Some(Item::Bool(true)));
    check_eq!(sl.to_vec()?, howdy());

    sl.set(3, Some(42_i64.into()))?;
    check_eq!(sl.get(3)?, Some(Item::Int(42)));
    sl.set(4, Some("some".into()))?; // a new type at this position
    check_eq!(sl.get(4)?, Some(Item::Str("some".into())));
    check!(sl.set(4, Some("far too many".into())).is_err()); // exceeds available storage
    check_eq!(sl.get(4)?, Some(Item::Str("some".into())));
    sl.set(0, Some("encodés".into()))?; // exactly 8 bytes of UTF-8
    check_eq!(sl.get(0)?, Some(Item::Str("encodés".into())));
    check_eq!(sl.get(1)?, Some(Item::Bytes(b"HoWdY".to_vec()))); // no spillage
    check!(sl.set(0, Some("encodées".into())).is_err()); // 9 bytes
    check_eq!(sl.get(1)?, Some(Item::Bytes(b"HoWdY".to_vec())));
    check!(sl.set(1, Some(b"123456789".to_vec().into())).is_err());
    check_eq!(sl.get(1)?, Some(Item::Bytes(b"HoWdY".to_vec())));

    check_eq!(sl.count(&Some(42_i64.into()))?, 2);
    check_eq!(sl.count(&Some(b"HoWdY".to_vec().into()))?, 1);
    check_eq!(sl.count(&Some(b"adios".to_vec().into()))?, 0);

    let name_duplicate = shm_name("test03_duplicate");
    let sl_copy = ShareableList::create(&name_duplicate, sl.to_vec()?)?;
    check!(sl.shm().name() != sl_copy.shm().name());
    check_eq!(sl_copy.shm().name(), Some(name_duplicate));
    check_eq!(sl.to_vec()?, sl_copy.to_vec()?);
    sl_copy.set(-1, Some(77_i64.into()))?;
    check_eq!(sl_copy.get(-1)?, Some(Item::Int(77)));
    check!(sl.get(-1)? != Some(Item::Int(77)));
    sl_copy.shm().unlink()?;

    let sl_tethered = ShareableList::attach(&name)?;
    check_eq!(sl.shm().name(), sl_tethered.shm().name());
    sl_tethered.set(-1, Some(880_i64.into()))?;
    check_eq!(sl.get(-1)?, Some(Item::Int(880)));

    let empty_sl = ShareableList::new(Vec::new())?;
    check_eq!(empty_sl.len(), 0);
    check_eq!(empty_sl.count(&Some("any".into()))?, 0);
    check_eq!(empty_sl.index(&None)?, None);
    sl.shm().unlink()
}

/// `_TestSharedMemory.test_shared_memory_ShareableList_pickling`: a
/// decoded copy of a list's handle is the same list, both ways.
#[mpwasm_guest::task]
pub(crate) fn TestSharedMemory__test_shared_memory_ShareableList_pickling() -> Result<()> {
    let sl = ShareableList::new((0..10_i64).map(|i| Some(i.into())).collect())?;
    let deserialized_sl: ShareableList = round_trip(&sl)?;
    check_eq!(deserialized_sl.get(-1)?, Some(Item::Int(9)));
    deserialized_sl.set(4, Some("changed".into()))?;
    check_eq!(sl.get(4)?, Some(Item::Str("changed".into())));
    sl.set(3, Some("newvalue".into()))?;
    check_eq!(deserialized_sl.get(3)?, Some(Item::Str("newvalue".into())));
    Ok(())
}
