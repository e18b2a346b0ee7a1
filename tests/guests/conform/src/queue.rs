//! `_TestQueue` and `TestSimpleQueue`.

use std::time::Duration;

use mpwasm_guest::{Error, Event, JoinableQueue, Queue, Result, SimpleQueue};
use serde::{Deserialize, Serialize};

use crate::check::*;

/// `_TestQueue._test_put`: once allowed, takes six items.
#[mpwasm_guest::task]
fn queue_take_six(
    queue: Queue<i64>,
    child_can_start: Event,
    parent_can_continue: Event,
) -> Result<()> {
    child_can_start.wait();
    for _ in 0..6 {
        queue.get()?;
    }
    parent_can_continue.set();
    Ok(())
}

/// `_TestQueue.test_put`: a bounded queue fills up; every non-blocking or
/// timed put on a full queue fails with `Full`; a consumer empties it.
#[mpwasm_guest::task]
pub(crate) fn TestQueue__test_put() -> Result<()> {
    const MAXSIZE: usize = 6;
    let queue = Queue::<i64>::with_maxsize(MAXSIZE)?;
    let child_can_start = Event::new()?;
    let parent_can_continue = Event::new()?;
    let mut proc = start(
        "queue_take_six",
        (&queue, &child_can_start, &parent_can_continue),
        true,
    )?;
    check_eq!(queue.empty(), true);
    check_eq!(queue.full(), false);

    queue.put(1)?; // put(1)
    queue.put(2)?; // put(2, True)
    queue.put(3)?; // put(3, True, None)
    queue.put_nowait(4)?; // put(4, False)
    queue.put_nowait(5)?; // put(5, False, None)
    queue.put_nowait(6)?;
    sleep_ms(100);
    check_eq!(queue.empty(), false);
    check_eq!(queue.full(), true);

    check_err!(queue.put_nowait(7), Error::Full); // put(7, False)
    check_err!(queue.put_nowait(7), Error::Full); // put(7, False, None)
    check_err!(queue.put_nowait(7), Error::Full); // put_nowait(7)
    let (r, took) = timed(|| queue.put_timeout(7, TIMEOUT)); // put(7, True, TIMEOUT1)
    check_err!(r, Error::Full);
    check!(took + CLOCK_RES >= TIMEOUT, "{took:?}");
    check_err!(queue.put_nowait(7), Error::Full); // put(7, False, TIMEOUT2)
    check_err!(queue.put_timeout(7, TIMEOUT), Error::Full); // put(7, True, timeout=TIMEOUT3)

    child_can_start.set();
    check!(parent_can_continue.wait_timeout(PATIENCE));
    check_eq!(queue.empty(), true);
    check_eq!(queue.full(), false);
    join_ok(&mut proc)
}

/// `_TestQueue._test_get`: once allowed, puts 2, 3, 4, 5.
#[mpwasm_guest::task]
fn queue_put_four(
    queue: Queue<i64>,
    child_can_start: Event,
    parent_can_continue: Event,
) -> Result<()> {
    child_can_start.wait();
    for i in 2..=5 {
        queue.put(i)?;
    }
    parent_can_continue.set();
    Ok(())
}

/// `_TestQueue.test_get`: every form of get takes items in order; every
/// non-blocking or timed get on an empty queue fails with `Empty`.
#[mpwasm_guest::task]
pub(crate) fn TestQueue__test_get() -> Result<()> {
    let queue = Queue::<i64>::new()?;
    let child_can_start = Event::new()?;
    let parent_can_continue = Event::new()?;
    let mut proc = start(
        "queue_put_four",
        (&queue, &child_can_start, &parent_can_continue),
        true,
    )?;
    check_eq!(queue.empty(), true);
    child_can_start.set();
    check!(parent_can_continue.wait_timeout(PATIENCE));
    sleep_ms(100);
    check_eq!(queue.empty(), false);

    check_eq!(queue.get()?, 2); // get(True, None)
    check_eq!(queue.get()?, 3); // get(True)
    check_eq!(queue.get_timeout(Duration::from_secs(1))?, 4);
    check_eq!(queue.get_nowait()?, 5);
    check_eq!(queue.empty(), true);

    check_err!(queue.get_nowait(), Error::Empty); // get(False)
    check_err!(queue.get_nowait(), Error::Empty); // get(False, None)
    check_err!(queue.get_nowait(), Error::Empty); // get_nowait()
    let (r, took) = timed(|| queue.get_timeout(TIMEOUT)); // get(True, TIMEOUT1)
    check_err!(r, Error::Empty);
    check!(took + CLOCK_RES >= TIMEOUT, "{took:?}");
    check_err!(queue.get_nowait(), Error::Empty); // get(False, TIMEOUT2)
    check_err!(queue.get_timeout(TIMEOUT), Error::Empty); // get(timeout=TIMEOUT3)
    join_ok(&mut proc)
}

/// `_TestQueue._test_fork`: puts 10 to 19.
#[mpwasm_guest::task]
fn queue_put_ten_more(queue: Queue<i64>) -> Result<()> {
    (10..20).try_for_each(|i| queue.put(i))
}

/// `_TestQueue.test_fork`: items put before and after a child starts
/// (the child putting too) all arrive, in order.
#[mpwasm_guest::task]
pub(crate) fn TestQueue__test_fork() -> Result<()> {
    let queue = Queue::<i64>::new()?;
    for i in 0..10 {
        queue.put(i)?;
    }
    sleep_ms(100);
    let mut p = start("queue_put_ten_more", &queue, true)?;
    for i in 0..20 {
        check_eq!(queue.get_timeout(PATIENCE)?, i);
    }
    check_err!(queue.get_nowait(), Error::Empty);
    join_ok(&mut p)
}

/// `_TestQueue.test_qsize`: `qsize` follows puts and gets.
#[mpwasm_guest::task]
pub(crate) fn TestQueue__test_qsize() -> Result<()> {
    let q = Queue::<i32>::new()?;
    check_eq!(q.qsize(), 0);
    q.put(1)?;
    check_eq!(q.qsize(), 1);
    q.put(5)?;
    check_eq!(q.qsize(), 2);
    q.get()?;
    check_eq!(q.qsize(), 1);
    q.get()?;
    check_eq!(q.qsize(), 0);
    Ok(())
}

/// `_TestQueue._test_task_done`: takes items until `None`, marking each
/// done after a pause.
#[mpwasm_guest::task]
fn queue_task_done(q: JoinableQueue<Option<i64>>) -> Result<()> {
    while q.get()?.is_some() {
        sleep_ms(100);
        q.task_done()?;
    }
    Ok(())
}

/// `_TestQueue.test_task_done`: `join` returns once four workers marked
/// every item done.
#[mpwasm_guest::task]
pub(crate) fn TestQueue__test_task_done() -> Result<()> {
    let queue = JoinableQueue::<Option<i64>>::new()?;
    let mut workers = Vec::new();
    for _ in 0..4 {
        workers.push(start("queue_task_done", &queue, true)?);
    }
    for i in 0..10 {
        queue.put(Some(i))?;
    }
    queue.join_timeout(PATIENCE)?;
    for _ in &workers {
        queue.put(None)?;
    }
    for p in &mut workers {
        join_ok(p)?;
    }
    Ok(())
}

/// `_TestQueue.test_timeout` (bpo-30317): a 200 ms get on an empty queue
/// fails with `Empty` after at least 100 ms.
#[mpwasm_guest::task]
pub(crate) fn TestQueue__test_timeout() -> Result<()> {
    let q = Queue::<i32>::new()?;
    let (r, took) = timed(|| q.get_timeout(Duration::from_millis(200)));
    check_err!(r, Error::Empty);
    check!(took >= Duration::from_millis(100), "{took:?}");
    Ok(())
}

/// A value whose encoding fails (CPython's `NotSerializable`, whose
/// `__reduce__` raises).
#[derive(Debug, Deserialize)]
struct NotSerializable;

impl Serialize for NotSerializable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> std::result::Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "NotSerializable cannot be encoded",
        ))
    }
}

/// A queue item: one that cannot be encoded, or a flag.
#[derive(Debug, Serialize, Deserialize)]
enum Maybe {
    Bad(NotSerializable),
    Good(bool),
}

/// `_TestQueue.test_queue_feeder_donot_stop_onexc` (bpo-30414, bpo-33078):
/// an item that cannot be encoded does not stop the queue, nor count in
/// its size. (CPython's feeder thread reports the error on stderr; here
/// `put` returns it.)
#[mpwasm_guest::task]
pub(crate) fn TestQueue__test_queue_feeder_donot_stop_onexc() -> Result<()> {
    let q = Queue::new()?;
    check_err!(q.put(Maybe::Bad(NotSerializable)), Error::Codec(_));
    q.put(Maybe::Good(true))?;
    check!(matches!(q.get_timeout(PATIENCE)?, Maybe::Good(true)));

    let q = Queue::with_maxsize(1)?;
    check_err!(q.put(Maybe::Bad(NotSerializable)), Error::Codec(_));
    q.put(Maybe::Good(true))?;
    check_eq!(q.qsize(), 1);
    check!(matches!(q.get_timeout(PATIENCE)?, Maybe::Good(true)));
    check!(q.empty());
    Ok(())
}

/// `_TestQueue.test_closed_queue_put_get_exceptions`: `put` and `get` on
/// a closed queue fail (`ValueError: ... is closed`).
#[mpwasm_guest::task]
pub(crate) fn TestQueue__test_closed_queue_put_get_exceptions() -> Result<()> {
    let q = Queue::<String>::new()?;
    q.close();
    check_err!(q.put("foo".into()), Error::Closed);
    check_err!(q.get(), Error::Closed);
    let q = JoinableQueue::<String>::new()?;
    q.close();
    check_err!(q.put("foo".into()), Error::Closed);
    check_err!(q.get(), Error::Closed);
    Ok(())
}

/// `TestSimpleQueue._test_empty`: puts what `empty()` says, twice.
#[mpwasm_guest::task]
fn queue_simple_empty(
    queue: SimpleQueue<bool>,
    child_can_start: Event,
    parent_can_continue: Event,
) -> Result<()> {
    child_can_start.wait();
    let first = queue.put(queue.empty());
    let second = queue.put(queue.empty());
    parent_can_continue.set();
    first.and(second)
}

/// `TestSimpleQueue.test_empty` (issue 30301): `empty()` in the parent
/// and in a child.
#[mpwasm_guest::task]
pub(crate) fn TestSimpleQueue__test_empty() -> Result<()> {
    let queue = SimpleQueue::<bool>::new()?;
    let child_can_start = Event::new()?;
    let parent_can_continue = Event::new()?;
    let mut proc = start(
        "queue_simple_empty",
        (&queue, &child_can_start, &parent_can_continue),
        true,
    )?;
    check!(queue.empty());
    child_can_start.set();
    check!(parent_can_continue.wait_timeout(PATIENCE));
    check!(!queue.empty());
    check_eq!(queue.get()?, true);
    check_eq!(queue.get()?, false);
    check!(queue.empty());
    join_ok(&mut proc)
}

/// `TestSimpleQueue.test_close`: closing a queue twice does not fail;
/// and (`test_closed`, which reads private attributes in CPython) the
/// queue is closed then.
#[mpwasm_guest::task]
pub(crate) fn TestSimpleQueue__test_close() -> Result<()> {
    let queue = SimpleQueue::<u8>::new()?;
    queue.close();
    queue.close();
    check_err!(queue.put(1), Error::Closed);
    Ok(())
}
