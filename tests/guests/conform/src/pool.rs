//! `_TestPool`, `_TestPoolWorkerErrors`, `_TestPoolWorkerLifetime`,
//! `TestInitializers.test_pool_initializer` and
//! `MiscTestCase.test_large_pool`.
//!
//! CPython's `_TestPool` shares one `Pool(4)` between its methods; each
//! port makes its own, since each runs in its own `mpwasm run`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mpwasm_guest::{Error, Manager, Namespace, Pool, Result};
use serde::{Deserialize, Serialize};

use crate::check::*;

/// CPython's `sqr(x)`.
#[mpwasm_guest::task]
fn sqr(x: i64) -> i64 {
    x * x
}

/// CPython's `sqr(x, wait)`: sleeps `wait_ms` first.
#[mpwasm_guest::task]
fn sqr_wait(x: i64, wait_ms: u64) -> i64 {
    sleep_ms(wait_ms);
    x * x
}

/// CPython's `mul(x, y)`.
#[mpwasm_guest::task]
fn mul(x: i64, y: i64) -> i64 {
    x * y
}

/// `time.sleep(seconds)`.
#[mpwasm_guest::task]
fn pool_sleep(seconds: u64) {
    std::thread::sleep(Duration::from_secs(seconds));
}

/// `sqr` of each of `range`, locally.
fn squares(range: std::ops::Range<i64>) -> Vec<i64> {
    range.map(|x| x * x).collect()
}

/// `_TestPool.test_apply`.
#[mpwasm_guest::task]
pub(crate) fn TestPool__test_apply() -> Result<()> {
    let pool = Pool::new(4)?;
    check_eq!(pool.apply::<_, i64>("sqr", 5_i64)?, 25);
    check_eq!(pool.apply::<_, i64>("sqr", 3_i64)?, 9); // sqr(x=3)
    Ok(())
}

/// `_TestPool.test_map`: results in input order, with the default chunk
/// size and with `chunksize=20`.
#[mpwasm_guest::task]
pub(crate) fn TestPool__test_map() -> Result<()> {
    let pool = Pool::new(4)?;
    check_eq!(pool.map::<_, i64>("sqr", 0..10_i64)?, squares(0..10));
    check_eq!(
        pool.chunked(20).map::<_, i64>("sqr", 0..100_i64)?,
        squares(0..100)
    );
    Ok(())
}

/// `zip(range(n), range(n - 1, -1, -1))` and its products.
fn tuples(n: i64) -> (Vec<(i64, i64)>, Vec<i64>) {
    let t: Vec<(i64, i64)> = (0..n).zip((0..n).rev()).collect();
    let products = t.iter().map(|(a, b)| a * b).collect();
    (t, products)
}

/// `_TestPool.test_starmap`.
#[mpwasm_guest::task]
pub(crate) fn TestPool__test_starmap() -> Result<()> {
    let pool = Pool::new(4)?;
    let (t, expected) = tuples(10);
    check_eq!(pool.starmap::<_, i64>("mul", t)?, expected);
    let (t, expected) = tuples(100);
    check_eq!(pool.chunked(20).starmap::<_, i64>("mul", t)?, expected);
    Ok(())
}

/// `_TestPool.test_starmap_async`.
#[mpwasm_guest::task]
pub(crate) fn TestPool__test_starmap_async() -> Result<()> {
    let pool = Pool::new(4)?;
    let (t, expected) = tuples(100);
    check_eq!(pool.starmap_async::<_, i64>("mul", t)?.get(None)?, expected);
    Ok(())
}

/// `_TestPool.test_map_async`.
#[mpwasm_guest::task]
pub(crate) fn TestPool__test_map_async() -> Result<()> {
    let pool = Pool::new(4)?;
    check_eq!(
        pool.map_async::<_, i64>("sqr", 0..10_i64)?.get(None)?,
        squares(0..10)
    );
    Ok(())
}

/// `_TestPool.test_map_chunksize`: `map_async` of nothing does not stall.
#[mpwasm_guest::task]
pub(crate) fn TestPool__test_map_chunksize() -> Result<()> {
    let pool = Pool::new(4)?;
    let r = pool
        .chunked(1)
        .map_async::<i64, i64>("sqr", Vec::new())?
        .get(Some(TIMEOUT));
    check!(
        r.is_ok(),
        "map_async with chunksize stalled on null list: {r:?}"
    );
    Ok(())
}

/// `_TestPool.test_async`: `apply_async(...).get()` waits for the task.
#[mpwasm_guest::task]
pub(crate) fn TestPool__test_async() -> Result<()> {
    let pool = Pool::new(4)?;
    let mut res = pool.apply_async::<_, i64>("sqr_wait", (7_i64, 100_u64))?;
    check_eq!(res.get(None)?, 49);
    Ok(())
}

/// `_TestPool.test_async_timeout`: a `get` shorter than the task fails
/// with `TimeoutError`.
#[mpwasm_guest::task]
pub(crate) fn TestPool__test_async_timeout() -> Result<()> {
    let p = Pool::new(3)?;
    let mut res = p.apply_async::<_, i64>("sqr_wait", (6_i64, 100 + 30_000_u64))?;
    let (r, took) = timed(|| res.get(Some(TIMEOUT)));
    p.terminate();
    p.join()?;
    check_err!(r, Error::Timeout);
    check!(took + CLOCK_RES >= TIMEOUT, "{took:?}");
    Ok(())
}

/// `_TestPool.test_imap`: results in order, and the iterator ends.
#[mpwasm_guest::task]
pub(crate) fn TestPool__test_imap() -> Result<()> {
    let pool = Pool::new(4)?;
    let it = pool.imap::<_, i64>("sqr", 0..10_i64)?;
    check_eq!(it.collect::<Result<Vec<_>>>()?, squares(0..10));

    let mut it = pool.imap::<_, i64>("sqr", 0..10_i64)?;
    for i in 0..10 {
        check_eq!(it.next().transpose()?, Some(i * i));
    }
    check!(it.next().is_none()); // StopIteration

    let mut it = pool.chunked(100).imap::<_, i64>("sqr", 0..1000_i64)?;
    for i in 0..1000 {
        check_eq!(it.next().transpose()?, Some(i * i));
    }
    check!(it.next().is_none());
    Ok(())
}

/// `_TestPool.test_imap_unordered`: every result, in some order.
#[mpwasm_guest::task]
pub(crate) fn TestPool__test_imap_unordered() -> Result<()> {
    let pool = Pool::new(4)?;
    let mut got = pool
        .imap_unordered::<_, i64>("sqr", 0..10_i64)?
        .collect::<Result<Vec<_>>>()?;
    got.sort();
    check_eq!(got, squares(0..10));
    let mut got = pool
        .chunked(100)
        .imap_unordered::<_, i64>("sqr", 0..1000_i64)?
        .collect::<Result<Vec<_>>>()?;
    got.sort();
    check_eq!(got, squares(0..1000));
    Ok(())
}

/// `_TestPool.test_make_pool`: a pool of no processes is refused; a pool
/// of three works. (`-1` is not a `usize`; `len(p._pool)` is private.)
#[mpwasm_guest::task]
pub(crate) fn TestPool__test_make_pool() -> Result<()> {
    check!(Pool::new(0).is_err());
    let p = Pool::new(3)?;
    p.close();
    p.join()
}

/// `_TestPool.test_terminate`: terminating a pool busy with endless
/// tasks (and thousands waiting) returns.
#[mpwasm_guest::task]
pub(crate) fn TestPool__test_terminate() -> Result<()> {
    let p = Pool::new(3)?;
    let _result = p
        .chunked(1)
        .map_async::<_, ()>("pool_sleep", vec![300_u64; 10_000])?;
    sleep_ms(200);
    p.terminate();
    p.join()
}

/// `_TestPool.test_empty_iterable` (issue 12157): every kind of map of
/// nothing gives nothing.
#[mpwasm_guest::task]
pub(crate) fn TestPool__test_empty_iterable() -> Result<()> {
    let p = Pool::new(1)?;
    let none = Vec::<i64>::new;
    check_eq!(p.map::<_, i64>("sqr", none())?, none());
    check_eq!(
        p.imap::<_, i64>("sqr", none())?
            .collect::<Result<Vec<_>>>()?,
        none()
    );
    check_eq!(
        p.imap_unordered::<_, i64>("sqr", none())?
            .collect::<Result<Vec<_>>>()?,
        none()
    );
    check_eq!(p.map_async::<_, i64>("sqr", none())?.get(None)?, none());
    p.close();
    p.join()
}

/// `_TestPool.test_context`: a pool works until it is terminated (as
/// leaving `with Pool() as p:` does), and refuses work after.
#[mpwasm_guest::task]
pub(crate) fn TestPool__test_context() -> Result<()> {
    let p = Pool::new(2)?;
    check_eq!(
        p.map_async::<_, i64>("sqr", 0..10_i64)?.get(None)?,
        squares(0..10)
    );
    p.terminate();
    p.join()?;
    check!(p.map_async::<_, i64>("sqr", 0..10_i64).is_err());
    Ok(())
}

/// `_TestPool._test_traceback`: raises `RuntimeError(123)`.
#[mpwasm_guest::task]
fn pool_runtime_error() {
    panic!("RuntimeError(123)"); // some comment
}

/// `_TestPool.test_traceback`: the error a pool reports carries the
/// worker's own error and where it was raised.
#[mpwasm_guest::task]
pub(crate) fn TestPool__test_traceback() -> Result<()> {
    let p = Pool::new(1)?;
    let r = p.apply::<_, ()>("pool_runtime_error", ());
    p.terminate();
    match r {
        Err(Error::Task { message, .. }) => {
            check!(message.contains("RuntimeError(123)"), "{message}");
            check!(message.contains("pool.rs"), "{message}");
        }
        other => check!(false, "expected a task error, got {other:?}"),
    }
    Ok(())
}

/// `_TestPool.test_wrapped_exception` (issue 20980): `apply` raises the
/// task's error.
#[mpwasm_guest::task]
pub(crate) fn TestPool__test_wrapped_exception() -> Result<()> {
    let p = Pool::new(1)?;
    let r = p.apply::<_, ()>("pool_runtime_error", ());
    p.terminate();
    check_err!(r, Error::Task { .. });
    Ok(())
}

/// CPython's `raise_large_valuerror(wait)`: fails with a 1 MiB message
/// after `wait_ms`.
#[mpwasm_guest::task]
fn raise_large_valuerror(wait_ms: u64) -> std::result::Result<(), String> {
    sleep_ms(wait_ms);
    Err("x".repeat(1024 * 1024))
}

/// `_TestPool.test_map_no_failfast` (issue 23992): a `map` with a failing
/// input still runs the others, and `close` + `join` return.
#[mpwasm_guest::task]
pub(crate) fn TestPool__test_map_no_failfast() -> Result<()> {
    let t_start = Instant::now();
    let p = Pool::new(2)?;
    let r = p.map::<_, ()>("raise_large_valuerror", [0_u64, 1000]);
    sleep_ms(500);
    p.close();
    p.join()?;
    check_err!(r, Error::Task { .. });
    check!(t_start.elapsed() > Duration::from_millis(900));
    Ok(())
}

/// A value whose encoding fails (CPython's `A` with a raising
/// `__reduce__`).
#[derive(Debug, Clone, Deserialize)]
struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> std::result::Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("cannot pickle"))
    }
}

/// Takes an [`Unencodable`] (never called: its input cannot be sent).
#[mpwasm_guest::task]
fn pool_take_unencodable(_a: Unencodable) {}

/// `_TestPool.test_map_unplicklable` (issue 19425): inputs that cannot be
/// encoded fail the map instead of hanging it.
#[mpwasm_guest::task]
pub(crate) fn TestPool__test_map_unplicklable() -> Result<()> {
    let pool = Pool::new(4)?;
    let r = pool.map::<_, ()>("pool_take_unencodable", vec![Unencodable; 10]);
    check!(r.is_err());
    Ok(())
}

/// CPython's `unpickleable_result()`: a result that cannot be encoded.
#[mpwasm_guest::task]
fn unpickleable_result() -> Unencodable {
    Unencodable
}

/// `_TestPoolWorkerErrors.test_unpickleable_result`: a result that cannot
/// be encoded fails its task (`MaybeEncodingError`), twenty times over,
/// without losing the pool.
#[mpwasm_guest::task]
pub(crate) fn TestPoolWorkerErrors__test_unpickleable_result() -> Result<()> {
    let p = Pool::new(2)?;
    for _ in 0..20 {
        let mut res = p.apply_async::<_, ()>("unpickleable_result", ())?;
        let r = res.get(Some(PATIENCE));
        check!(
            matches!(r, Err(Error::Task { .. }) | Err(Error::Codec(_))),
            "{r:?}"
        );
    }
    p.close();
    p.join()
}

/// `f(x)` of `MiscTestCase.test_large_pool`.
#[mpwasm_guest::task]
fn large_pool_f(x: i64) -> i64 {
    x * x
}

/// `MiscTestCase.test_large_pool` (gh-89240): a pool of 200 processes
/// works.
#[mpwasm_guest::task]
pub(crate) fn MiscTestCase__test_large_pool() -> Result<()> {
    let p = Pool::new(200)?;
    let squares: Vec<i64> = p.map("large_pool_f", 0..1000_i64)?;
    check_eq!(squares.iter().sum::<i64>(), 332_833_500);
    p.terminate();
    p.join()
}

/// `int(s)`: fails (Python's `ValueError`) on anything but an integer.
#[mpwasm_guest::task]
fn int_of(s: String) -> std::result::Result<i64, String> {
    s.parse()
        .map_err(|e| format!("invalid literal for int(): {s:?}: {e}"))
}

/// What a callback or error callback was called with.
type Called = Rc<RefCell<Vec<std::result::Result<Vec<i64>, Error>>>>;

/// `map_async(int, [s])` with both callbacks appending to `call_args`,
/// then `wait()`.
fn map_int_with_callbacks(pool: &Pool, s: &str, call_args: &Called) -> Result<()> {
    let (ok, err) = (call_args.clone(), call_args.clone());
    pool.map_async::<_, i64>("int_of", [s.to_string()])?
        .callback(move |v| ok.borrow_mut().push(Ok(v.clone())))
        .error_callback(move |e| err.borrow_mut().push(Err(e.clone())))
        .wait(Some(PATIENCE));
    Ok(())
}

/// `_TestPool.test_map_async_callbacks`: a job calls its callback with
/// the results, or its error callback with the error, once.
#[mpwasm_guest::task]
pub(crate) fn TestPool__test_map_async_callbacks() -> Result<()> {
    let pool = Pool::new(4)?;
    let call_args: Called = Rc::default();
    map_int_with_callbacks(&pool, "1", &call_args)?;
    check_eq!(call_args.borrow().len(), 1);
    check_eq!(call_args.borrow()[0], Ok(vec![1]));
    map_int_with_callbacks(&pool, "a", &call_args)?;
    check_eq!(call_args.borrow().len(), 2);
    check!(matches!(call_args.borrow()[1], Err(Error::Task { .. })));
    Ok(())
}

/// CPython's `raising()`: raises `KeyError("key")`.
#[mpwasm_guest::task]
fn raising() -> std::result::Result<(), String> {
    Err("KeyError: 'key'".into())
}

/// `_TestPoolWorkerErrors.test_async_error_callback`: a failing
/// `apply_async` raises at `get` and calls its error callback with the
/// error.
#[mpwasm_guest::task]
pub(crate) fn TestPoolWorkerErrors__test_async_error_callback() -> Result<()> {
    let p = Pool::new(2)?;
    let scratchpad: Rc<RefCell<Option<Error>>> = Rc::default();
    let errback = scratchpad.clone();
    let mut res = p
        .apply_async::<_, ()>("raising", ())?
        .error_callback(move |e| *errback.borrow_mut() = Some(e.clone()));
    let r = res.get(Some(PATIENCE));
    check!(
        matches!(&r, Err(Error::Task { message, .. }) if message.contains("KeyError")),
        "{r:?}"
    );
    check!(matches!(*scratchpad.borrow(), Some(Error::Task { .. })));
    p.close();
    p.join()
}

/// `sqr`, and the pid of the worker that ran it.
#[mpwasm_guest::task]
fn sqr_pid(x: i64) -> (i64, u32) {
    (x * x, mpwasm_guest::current_process().pid)
}

/// `_TestPoolWorkerLifetime.test_pool_worker_lifetime`: with
/// `maxtasksperchild=10`, a hundred tasks on three workers all give the
/// right answer, and the workers are replaced (more than three pids ran
/// them; CPython compares `p._pool`'s pids before and after).
#[mpwasm_guest::task]
pub(crate) fn TestPoolWorkerLifetime__test_pool_worker_lifetime() -> Result<()> {
    let p = Pool::builder().processes(3).maxtasksperchild(10).build()?;
    let mut results = Vec::new();
    for i in 0..100_i64 {
        results.push(p.apply_async::<_, (i64, u32)>("sqr_pid", i)?);
    }
    let mut pids = std::collections::BTreeSet::new();
    for (j, res) in results.iter_mut().enumerate() {
        let (square, pid) = res.get(Some(PATIENCE))?;
        check_eq!(square, (j * j) as i64);
        check!(pid != 0);
        pids.insert(pid);
    }
    check!(pids.len() > 3, "worker pids {pids:?}");
    p.close();
    p.join()
}

/// `_TestPoolWorkerLifetime.test_pool_worker_lifetime_early_close` (issue
/// 10332): closing a pool whose workers live one task each, before its
/// tasks are done, does not hang `join`; every result arrives.
#[mpwasm_guest::task]
pub(crate) fn TestPoolWorkerLifetime__test_pool_worker_lifetime_early_close() -> Result<()> {
    let p = Pool::builder().processes(3).maxtasksperchild(1).build()?;
    let mut results = Vec::new();
    for i in 0..6_i64 {
        results.push(p.apply_async::<_, i64>("sqr_wait", (i, 300_u64))?);
    }
    p.close();
    p.join()?;
    for (j, res) in results.iter_mut().enumerate() {
        check_eq!(res.get(Some(PATIENCE))?, (j * j) as i64);
    }
    Ok(())
}

/// `_TestPoolWorkerLifetime.test_pool_maxtasksperchild_invalid`: a
/// `maxtasksperchild` of 0 is refused. (`-1`, `0.5` and `"12"` are not a
/// `u64`.)
#[mpwasm_guest::task]
pub(crate) fn TestPoolWorkerLifetime__test_pool_maxtasksperchild_invalid() -> Result<()> {
    check!(Pool::builder()
        .processes(3)
        .maxtasksperchild(0)
        .build()
        .is_err());
    Ok(())
}

/// CPython's `initializer(ns)`: `ns.test += 1`.
#[mpwasm_guest::task]
fn initializer(ns: Namespace) -> Result<()> {
    let test: i64 = ns.get("test")?.unwrap_or(0);
    ns.set("test", &(test + 1))
}

/// `TestInitializers.test_pool_initializer` (issue 5585): a pool's one
/// worker runs the initializer once, even with no task to run.
#[mpwasm_guest::task]
pub(crate) fn TestInitializers__test_pool_initializer() -> Result<()> {
    let ns = Manager::new()?.namespace()?;
    ns.set("test", &0_i64)?;
    let p = Pool::builder()
        .processes(1)
        .initializer("initializer", &ns)
        .build()?;
    p.close();
    p.join()?;
    check_eq!(ns.get::<i64>("test")?, Some(1));
    Ok(())
}
