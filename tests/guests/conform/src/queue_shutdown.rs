//! `_TestQueue.test_shutdown_*` (Python 3.13's `Queue.shutdown`).
//!
//! CPython runs `q.put`, `q.get` and `q.join` in other processes with
//! `ProcessFuture`, which sends back the result or the exception; here a
//! task does the operation and sends back an [`Outcome`].

use mpwasm_guest::{pipe, Connection, Error, JoinableQueue, Process, Queue, Result};
use serde::{Deserialize, Serialize};

use crate::check::*;

/// What an operation in another process gave.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Outcome {
    /// It returned (with the item, for a get).
    Done(Option<String>),
    /// It raised `ShutDown`.
    ShutDown,
    /// It failed otherwise.
    Failed(String),
}

impl Outcome {
    fn of(r: Result<Option<String>>) -> Outcome {
        match r {
            Ok(item) => Outcome::Done(item),
            Err(Error::ShutDown) => Outcome::ShutDown,
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }
}

/// `q.put("data")` in a child.
#[mpwasm_guest::task]
fn shutdown_put(q: Queue<String>, reply: Connection) -> Result<()> {
    reply.send(&Outcome::of(q.put("data".into()).map(|()| None)))
}

/// `q.get()` in a child.
#[mpwasm_guest::task]
fn shutdown_get(q: Queue<String>, reply: Connection) -> Result<()> {
    reply.send(&Outcome::of(q.get().map(Some)))
}

/// `q.put("data")` on a joinable queue, in a child.
#[mpwasm_guest::task]
fn shutdown_jput(q: JoinableQueue<String>, reply: Connection) -> Result<()> {
    reply.send(&Outcome::of(q.put("data".into()).map(|()| None)))
}

/// `q.get()` on a joinable queue, in a child.
#[mpwasm_guest::task]
fn shutdown_jget(q: JoinableQueue<String>, reply: Connection) -> Result<()> {
    reply.send(&Outcome::of(q.get().map(Some)))
}

/// `_TestQueue._join_worker`: `q.join()` in a child.
#[mpwasm_guest::task]
fn shutdown_join(q: JoinableQueue<String>, reply: Connection) -> Result<()> {
    reply.send(&Outcome::of(q.join().map(|()| None)))
}

/// `ProcessFuture.start(target, (q,))`: a child running `target` and the
/// end its outcome comes back on.
struct Future {
    process: Process,
    reply: Connection,
}

impl Future {
    fn start(target: &str, q: &impl Serialize) -> Result<Future> {
        let (reply, w) = pipe(false)?;
        let process = start(target, (q, &w), true)?;
        w.close();
        Ok(Future { process, reply })
    }

    /// `ProcessFuture.result()`.
    fn result(mut self) -> Result<Outcome> {
        self.process.join_timeout(PATIENCE)?;
        self.reply.recv()
    }

    /// `ProcessFuture.run(target, (q,))`.
    fn run(target: &str, q: &impl Serialize) -> Result<Outcome> {
        Future::start(target, q)?.result()
    }
}

/// The queue under test: a `Queue` or a `JoinableQueue`.
enum Q {
    Plain(Queue<String>),
    Joinable(JoinableQueue<String>),
}

impl Q {
    fn both(maxsize: usize) -> Result<[Q; 2]> {
        Ok([
            Q::Plain(Queue::with_maxsize(maxsize)?),
            Q::Joinable(JoinableQueue::with_maxsize(maxsize)?),
        ])
    }

    fn put(&self, item: &str) -> Result<()> {
        match self {
            Q::Plain(q) => q.put(item.into()),
            Q::Joinable(q) => q.put(item.into()),
        }
    }

    fn put_nowait(&self, item: &str) -> Result<()> {
        match self {
            Q::Plain(q) => q.put_nowait(item.into()),
            Q::Joinable(q) => q.put_nowait(item.into()),
        }
    }

    fn get_nowait(&self) -> Result<String> {
        match self {
            Q::Plain(q) => q.get_nowait(),
            Q::Joinable(q) => q.get_nowait(),
        }
    }

    fn qsize(&self) -> usize {
        match self {
            Q::Plain(q) => q.qsize(),
            Q::Joinable(q) => q.qsize(),
        }
    }

    fn shutdown(&self, immediate: bool) -> Result<()> {
        match self {
            Q::Plain(q) => q.shutdown(immediate),
            Q::Joinable(q) => q.shutdown(immediate),
        }
    }

    /// `ProcessFuture.run(q.put, "data")`.
    fn run_put(&self) -> Result<Outcome> {
        match self {
            Q::Plain(q) => Future::run("shutdown_put", q),
            Q::Joinable(q) => Future::run("shutdown_jput", q),
        }
    }

    /// `ProcessFuture.run(q.get)`.
    fn run_get(&self) -> Result<Outcome> {
        match self {
            Q::Plain(q) => Future::run("shutdown_get", q),
            Q::Joinable(q) => Future::run("shutdown_jget", q),
        }
    }

    /// `ProcessFuture.start(self._join_worker, (q,))`, for a joinable queue.
    fn start_join(&self) -> Result<Option<Future>> {
        match self {
            Q::Plain(_) => Ok(None),
            Q::Joinable(q) => Future::start("shutdown_join", q).map(Some),
        }
    }
}

/// CPython's `_wait()`: a crude 10 ms pause.
fn pause() {
    sleep_ms(10);
}

/// The four refusals every shut-down queue gives: put and get, in a child
/// and here.
fn refuses_all(q: &Q) -> Result<()> {
    check_eq!(q.run_put()?, Outcome::ShutDown);
    check_err!(q.put_nowait("data"), Error::ShutDown);
    check_eq!(q.run_get()?, Outcome::ShutDown);
    check_err!(q.get_nowait(), Error::ShutDown);
    Ok(())
}

/// Whether the join worker has ended (waiting for it a while: CPython
/// checks after its 10 ms pause, too short on a loaded machine).
fn ended(join: &Future) -> bool {
    !eventually(false, || join.process.is_alive())
}

/// `_TestQueue.test_shutdown_empty`: an empty queue shut down refuses puts
/// and gets; a joiner returns.
#[mpwasm_guest::task]
pub(crate) fn TestQueue__test_shutdown_empty() -> Result<()> {
    for q in Q::both(0)? {
        let join = q.start_join()?;
        q.shutdown(false)?; // unfinished tasks: 0 -> 0
        pause();
        check_eq!(q.qsize(), 0);
        if let Some(join) = join {
            check!(ended(&join));
            check_eq!(join.result()?, Outcome::Done(None));
        }
        refuses_all(&q)?;
    }
    Ok(())
}

/// `_TestQueue.test_shutdown_nonempty`: a queue shut down (not
/// immediately) still gives the items it holds, then refuses; a joiner
/// waits for the last `task_done`.
#[mpwasm_guest::task]
pub(crate) fn TestQueue__test_shutdown_nonempty() -> Result<()> {
    for q in Q::both(1)? {
        q.put("data")?;
        let join = q.start_join()?;
        q.shutdown(false)?; // unfinished tasks: 1 -> 1
        pause();
        check_eq!(q.qsize(), 1);
        check_eq!(q.run_get()?, Outcome::Done(Some("data".into())));
        if let Some(join) = &join {
            check!(join.process.is_alive());
        }
        refuses_all(&q)?;
        if let Q::Joinable(jq) = &q {
            jq.task_done()?;
        }
        if let Some(join) = join {
            check!(ended(&join));
            check_eq!(join.result()?, Outcome::Done(None));
        }
    }
    Ok(())
}

/// `_TestQueue.test_shutdown_immediate`: an immediate shutdown drops the
/// items (a joiner returns) and refuses; `task_done` has nothing left to
/// mark.
#[mpwasm_guest::task]
pub(crate) fn TestQueue__test_shutdown_immediate() -> Result<()> {
    for q in Q::both(0)? {
        q.put("data")?;
        let join = q.start_join()?;
        q.shutdown(true)?;
        pause();
        check_eq!(q.qsize(), 0);
        if let Some(join) = join {
            check!(ended(&join));
            check_eq!(join.result()?, Outcome::Done(None));
        }
        refuses_all(&q)?;
        if let Q::Joinable(jq) = &q {
            check!(
                jq.task_done().is_err(),
                "didn't appear to mark all tasks done"
            );
        }
    }
    Ok(())
}

/// `_TestQueue.test_shutdown_immediate_with_unfinished`: an item taken
/// before an immediate shutdown still needs its `task_done` before a
/// joiner returns.
#[mpwasm_guest::task]
pub(crate) fn TestQueue__test_shutdown_immediate_with_unfinished() -> Result<()> {
    let jq = JoinableQueue::<String>::new()?;
    jq.put("data".into())?;
    jq.put("data".into())?;
    let q = Q::Joinable(jq.clone());
    let join = q.start_join()?.ok_or(Error::Other("no joiner".into()))?;
    check_eq!(q.run_get()?, Outcome::Done(Some("data".into())));
    q.shutdown(true)?;
    pause();
    check_eq!(q.qsize(), 0);
    check!(join.process.is_alive());
    refuses_all(&q)?;
    jq.task_done()?;
    check!(
        jq.task_done().is_err(),
        "didn't appear to mark all tasks done"
    );
    check!(ended(&join));
    check_eq!(join.result()?, Outcome::Done(None));
    Ok(())
}
