//! `_TestProcess`, `_TestSubclassingProcess`, `TestStartMethod` and
//! `TestStdinBadfiledescriptor`.

use std::time::Duration;

use mpwasm_guest::{
    active_children, cpu_count, current_process, parent_process, pipe, wait, Connection, Event,
    Pool, Process, Queue, Result,
};
use serde::{Deserialize, Serialize};

use crate::check::*;

/// What `_TestProcess._test` tells its parent, one item at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Said {
    Args(Vec<i64>),
    Kwargs(Vec<(String, f64)>),
    Name(String),
    Pid(u32),
}

/// `_TestProcess._test`: puts its arguments, keyword arguments, name and
/// pid on the queue.
#[mpwasm_guest::task]
fn process_report(q: Queue<Said>, args: Vec<i64>, kwargs: Vec<(String, f64)>) -> Result<()> {
    let me = current_process();
    q.put(Said::Args(args))?;
    q.put(Said::Kwargs(kwargs))?;
    q.put(Said::Name(me.name))?;
    q.put(Said::Pid(me.pid))
}

/// `_TestProcess.test_process`: a process's name, daemon flag, liveness,
/// membership of `active_children()`, exit code and pid before, during and
/// after its run; it gets its arguments and keyword arguments.
#[mpwasm_guest::task]
pub(crate) fn TestProcess__test_process() -> Result<()> {
    let q = Queue::<Said>::with_maxsize(1)?;
    let args = vec![1, 2];
    let kwargs = vec![("hello".to_string(), 23.0), ("bye".to_string(), 2.54)];
    let name = "SomeProcess";
    let mut p = Process::new("process_report", (q.clone(), args.clone(), kwargs.clone()))
        .with_name(name)
        .with_daemon(true);
    check_eq!(p.is_alive(), false);
    check_eq!(p.daemon(), true);
    check!(!holds(&active_children(), &p));
    check_eq!(p.exitcode(), None);

    p.start()?;
    check_eq!(p.exitcode(), None);
    check_eq!(p.is_alive(), true);
    check!(holds(&active_children(), &p));

    check_eq!(q.get()?, Said::Args(args));
    check_eq!(q.get()?, Said::Kwargs(kwargs));
    check_eq!(q.get()?, Said::Name(p.name()));
    check_eq!(q.get()?, Said::Pid(p.pid().unwrap_or(0)));
    p.join()?;
    check_eq!(p.exitcode(), Some(0));
    check_eq!(p.is_alive(), false);
    check!(!holds(&active_children(), &p));
    Ok(())
}

/// One of `test_args_argument`'s argument cases (1, "str", [1], (1,)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Arg {
    Int(i64),
    Str(String),
    List(Vec<i64>),
    Tuple((i64,)),
}

/// `_TestProcess._test_args`: puts its argument on the queue.
#[mpwasm_guest::task]
fn process_args(q: Queue<Arg>, arg: Arg) -> Result<()> {
    q.put(arg)
}

/// `_TestProcess.test_args_argument` (bpo-45735): each kind of argument
/// arrives in the child as it was given. (Python's list-or-tuple `args`
/// is one Rust tuple.)
#[mpwasm_guest::task]
pub(crate) fn TestProcess__test_args_argument() -> Result<()> {
    let cases = [
        Arg::Int(1),
        Arg::Str("str".into()),
        Arg::List(vec![1]),
        Arg::Tuple((1,)),
    ];
    for arg in cases {
        let q = Queue::<Arg>::with_maxsize(1)?;
        let mut p = start("process_args", (q.clone(), arg.clone()), true)?;
        check_eq!(q.get_timeout(PATIENCE)?, arg);
        p.join()?;
    }
    Ok(())
}

/// `_TestProcess.test_daemon_argument`: a process is not a daemon unless
/// made one, and is one when asked.
#[mpwasm_guest::task]
pub(crate) fn TestProcess__test_daemon_argument() -> Result<()> {
    let proc0 = Process::new("process_nothing", ());
    check_eq!(proc0.daemon(), false); // the main process is not a daemon
    let proc1 = Process::new("process_nothing", ()).with_daemon(true);
    check!(proc1.daemon());
    let proc2 = Process::new("process_nothing", ()).with_daemon(false);
    check!(!proc2.daemon());
    Ok(())
}

/// Returns at once.
#[mpwasm_guest::task]
fn process_nothing() {}

/// `_TestProcess._test_send_parent_process`.
#[mpwasm_guest::task]
fn process_send_parent(w: Connection) -> Result<()> {
    let parent = parent_process().ok_or(mpwasm_guest::Error::Other("no parent".into()))?;
    w.send(&(parent.pid, parent.name))
}

/// `_TestProcess.test_parent_process_attributes`: main has no parent; a
/// child's `parent_process()` is main, by pid and name.
#[mpwasm_guest::task]
pub(crate) fn TestProcess__test_parent_process_attributes() -> Result<()> {
    check!(parent_process().is_none());
    let (r, w) = pipe(false)?;
    let mut p = start("process_send_parent", &w, false)?;
    p.join()?;
    let (pid, name): (u32, String) = r.recv()?;
    check_eq!(pid, current_process().pid);
    check_eq!(name, current_process().name);
    Ok(())
}

/// `_TestProcess._sleep_some_event`: sets the event and sleeps.
#[mpwasm_guest::task]
fn process_sleep_some_event(event: Event) {
    event.set();
    sleep_ms(100_000);
}

/// `_TestProcess._kill_process`: the facts before and after stopping a
/// daemon child with `stop`; returns its exit code.
fn kill_process(stop: fn(&Process) -> Result<()>) -> Result<Option<i32>> {
    let event = Event::new()?;
    let mut p = start("process_sleep_some_event", &event, true)?;
    check_eq!(p.is_alive(), true);
    check!(holds(&active_children(), &p));
    check_eq!(p.exitcode(), None);

    // join(0) and join(-1): a timeout of nothing returns at once.
    p.join_timeout(Duration::ZERO)?;
    check_eq!(p.is_alive(), true);
    p.join_timeout(Duration::ZERO)?;
    check_eq!(p.is_alive(), true);

    check!(event.wait_timeout(PATIENCE), "event not signaled");
    stop(&p)?;
    p.join_timeout(PATIENCE)?;
    check_eq!(p.is_alive(), false);
    check!(!holds(&active_children(), &p));
    p.join()?;
    Ok(p.exitcode())
}

/// `_TestProcess.test_terminate`: a terminated child exits with
/// `-SIGTERM`.
#[mpwasm_guest::task]
pub(crate) fn TestProcess__test_terminate() -> Result<()> {
    check_eq!(kill_process(Process::terminate)?, Some(-15));
    Ok(())
}

/// `_TestProcess.test_kill`: a killed child exits with `-SIGKILL`.
#[mpwasm_guest::task]
pub(crate) fn TestProcess__test_kill() -> Result<()> {
    check_eq!(kill_process(Process::kill)?, Some(-9));
    Ok(())
}

/// `_TestProcess.test_cpu_count`: at least one CPU.
#[mpwasm_guest::task]
pub(crate) fn TestProcess__test_cpu_count() -> Result<()> {
    check!(cpu_count() >= 1);
    Ok(())
}

/// Waits for the event (CPython's `target=event.wait`).
#[mpwasm_guest::task]
fn process_event_wait(event: Event) {
    event.wait();
}

/// `_TestProcess.test_active_children`: a process is among
/// `active_children()` only while it runs.
#[mpwasm_guest::task]
pub(crate) fn TestProcess__test_active_children() -> Result<()> {
    let event = Event::new()?;
    let mut p = Process::new("process_event_wait", &event).with_daemon(true);
    check!(!holds(&active_children(), &p));
    p.start()?;
    let present = holds(&active_children(), &p);
    event.set(); // CPython's `finally`: the child ends either way
    check!(present);
    p.join()?;
    check!(!holds(&active_children(), &p));
    Ok(())
}

/// `_TestProcess._test_recursion`, as a process target.
#[mpwasm_guest::task]
fn process_recursion(wconn: Connection, id: Vec<u32>) -> Result<()> {
    recursion(&wconn, id)
}

/// `_TestProcess._test_recursion`: sends its id, then runs two children
/// one after the other, two levels deep.
fn recursion(wconn: &Connection, id: Vec<u32>) -> Result<()> {
    wconn.send(&id)?;
    if id.len() < 2 {
        for i in 0..2 {
            let mut child_id = id.clone();
            child_id.push(i);
            let mut p = Process::new("process_recursion", (wconn, child_id));
            p.start()?;
            p.join()?;
        }
    }
    Ok(())
}

/// `_TestProcess.test_recursion`: processes starting processes, depth
/// first.
#[mpwasm_guest::task]
pub(crate) fn TestProcess__test_recursion() -> Result<()> {
    let (rconn, wconn) = pipe(false)?;
    recursion(&wconn, Vec::new())?;
    sleep_ms(100);
    let mut result: Vec<Vec<u32>> = Vec::new();
    while rconn.poll(Some(Duration::ZERO))? {
        result.push(rconn.recv()?);
    }
    let expected: Vec<Vec<u32>> = vec![
        vec![],
        vec![0],
        vec![0, 0],
        vec![0, 1],
        vec![1],
        vec![1, 0],
        vec![1, 1],
    ];
    check_eq!(result, expected);
    Ok(())
}

/// `_TestProcess._test_sentinel`: waits at most 10 s for the event.
#[mpwasm_guest::task]
fn process_sentinel(event: Event) {
    event.wait_timeout(Duration::from_secs(10));
}

/// `_TestProcess.test_sentinel`: an unstarted process has no sentinel to
/// wait on (`ValueError`); a running process's is not ready; an ended
/// one's is.
#[mpwasm_guest::task]
pub(crate) fn TestProcess__test_sentinel() -> Result<()> {
    let event = Event::new()?;
    let mut p = Process::new("process_sentinel", &event);
    check!(wait(&[p.sentinel()], Some(Duration::ZERO)).is_err());
    p.start()?;
    let ready = wait(&[p.sentinel()], Some(Duration::ZERO));
    event.set();
    check_eq!(ready?, Vec::<usize>::new());
    p.join()?;
    check_eq!(wait(&[p.sentinel()], Some(Duration::from_secs(1)))?, [0]);
    Ok(())
}

/// `_TestProcess._test_close`: waits for an item, then exits with 0.
#[mpwasm_guest::task]
fn process_close(q: Queue<Option<u8>>) -> Result<()> {
    q.get().map(drop)
}

/// `_TestProcess.test_close`: a running process cannot be closed; an
/// ended one can. (Rust's `close(self)` takes the handle, so the uses of a
/// closed process that CPython checks raise do not compile; a second handle
/// from `active_children()` stands in for the one a failed close took.)
#[mpwasm_guest::task]
pub(crate) fn TestProcess__test_close() -> Result<()> {
    let q = Queue::<Option<u8>>::new()?;
    let p = start("process_close", &q, true)?;
    check_eq!(p.is_alive(), true);
    let pid = p.pid();
    let mut again = active_children()
        .into_iter()
        .find(|c| c.pid() == pid)
        .ok_or(mpwasm_guest::Error::Other("child not active".into()))?;
    let closed = p.close();
    q.put(None)?;
    check!(closed.is_err(), "closing a running process: {closed:?}");
    again.join_timeout(PATIENCE)?;
    check_eq!(again.is_alive(), false);
    check_eq!(again.exitcode(), Some(0));
    again.close()?;
    Ok(())
}

/// `_TestProcess._test_sleep`.
#[mpwasm_guest::task]
fn process_sleep(ms: u64) {
    sleep_ms(ms);
}

/// `_TestProcess.test_many_processes` (N = 5, as under spawn): five short
/// children all exit with 0; five terminated right after start all exit
/// with `-SIGTERM`.
#[mpwasm_guest::task]
pub(crate) fn TestProcess__test_many_processes() -> Result<()> {
    const N: usize = 5;
    let mut procs: Vec<Process> = (0..N)
        .map(|_| Process::new("process_sleep", 10_u64))
        .collect();
    for p in &mut procs {
        p.start()?;
    }
    for p in &mut procs {
        p.join_timeout(PATIENCE)?;
    }
    for p in &procs {
        check_eq!(p.exitcode(), Some(0));
    }

    let mut procs: Vec<Process> = (0..N)
        .map(|_| Process::new("process_sleep", 100_000_u64))
        .collect();
    for p in &mut procs {
        p.start()?;
    }
    sleep_ms(1);
    for p in &procs {
        p.terminate()?;
    }
    for p in &mut procs {
        p.join_timeout(PATIENCE)?;
    }
    for p in &procs {
        check_eq!(p.exitcode(), Some(-15));
    }
    Ok(())
}

/// `sys.exit(code)` in a child.
#[mpwasm_guest::task]
fn process_exit(code: i32) {
    std::process::exit(code);
}

/// Fails as `sys.exit("ignore this")` does: a message and exit code 1.
#[mpwasm_guest::task]
fn process_exit_reason() -> std::result::Result<(), String> {
    Err("ignore this".into())
}

/// `_TestProcess.test_sys_exit` (issue 13854): a child that exits with a
/// reason ends with 1; `sys.exit(True)` 1, `sys.exit(False)` 0,
/// `sys.exit(8)` 8, and returning normally 0.
#[mpwasm_guest::task]
pub(crate) fn TestProcess__test_sys_exit() -> Result<()> {
    let mut p = start("process_exit_reason", (), true)?;
    p.join_timeout(PATIENCE)?;
    check_eq!(p.exitcode(), Some(1));
    for (code, expected) in [(1, 1), (0, 0), (8, 8)] {
        let mut p = start("process_exit", code, true)?;
        p.join_timeout(PATIENCE)?;
        check_eq!(p.exitcode(), Some(expected));
    }
    let mut p = start("process_nothing", (), true)?;
    p.join_timeout(PATIENCE)?;
    check_eq!(p.exitcode(), Some(0));
    Ok(())
}

/// `_UpperCaser.run`: answers each string with its upper case until
/// `None`.
#[mpwasm_guest::task]
fn process_uppercaser(child_conn: Connection) -> Result<()> {
    while let Some(s) = child_conn.recv::<Option<String>>()? {
        child_conn.send(&s.to_uppercase())?;
    }
    child_conn.close();
    Ok(())
}

/// `_TestSubclassingProcess.test_subclassing`: a process object with its
/// own pipe, serving requests (a task stands for the subclass's `run`).
#[mpwasm_guest::task]
pub(crate) fn TestSubclassingProcess__test_subclassing() -> Result<()> {
    let (child_conn, parent_conn) = pipe(true)?;
    let mut uppercaser = start("process_uppercaser", &child_conn, true)?;
    let submit = |s: &str| -> Result<String> {
        parent_conn.send(&Some(s))?;
        parent_conn.recv()
    };
    check_eq!(submit("hello")?, "HELLO");
    check_eq!(submit("world")?, "WORLD");
    parent_conn.send(&None::<String>)?;
    parent_conn.close();
    child_conn.close();
    uppercaser.join_timeout(PATIENCE)?;
    check_eq!(uppercaser.exitcode(), Some(0));
    Ok(())
}

/// `TestStartMethod._put_one_in_queue`.
#[mpwasm_guest::task]
fn process_put_one(q: Queue<i32>) -> Result<()> {
    q.put(1)
}

/// `TestStartMethod._put_two_and_nest_once`.
#[mpwasm_guest::task]
fn process_put_two_and_nest(q: Queue<i32>) -> Result<()> {
    q.put(2)?;
    let mut p = start("process_put_one", &q, false)?;
    p.join()
}

/// `TestStartMethod.test_nested_startmethod` (gh-108520): a child passes
/// its own argument on to a grandchild.
#[mpwasm_guest::task]
pub(crate) fn TestStartMethod__test_nested_startmethod() -> Result<()> {
    let q = Queue::<i32>::new()?;
    let mut p = start("process_put_two_and_nest", &q, false)?;
    p.join()?;
    let mut results = Vec::new();
    while !q.empty() {
        results.push(q.get()?);
    }
    results.sort();
    check_eq!(results, [1, 2]);
    Ok(())
}

/// `_this_sub_process`: a get that finds the queue empty.
#[mpwasm_guest::task]
fn process_get_nowait(q: Queue<i32>) {
    let _ = q.get_nowait();
}

/// `_test_process`: a queue and a daemon grandchild made inside a child.
#[mpwasm_guest::task]
fn process_queue_in_process() -> Result<()> {
    let q = Queue::<i32>::new()?;
    let mut sub = start("process_get_nowait", &q, true)?;
    sub.join()
}

/// `TestStdinBadfiledescriptor.test_queue_in_process` (issues 5155, 5313,
/// 5331): a process can make a queue and a process of its own.
#[mpwasm_guest::task]
pub(crate) fn TestStdinBadfiledescriptor__test_queue_in_process() -> Result<()> {
    let mut p = start("process_queue_in_process", (), false)?;
    join_ok(&mut p)
}

/// `_afunc`.
#[mpwasm_guest::task]
fn process_afunc(x: i64) -> i64 {
    x * x
}

/// `pool_in_process`: a pool of four made inside a child.
#[mpwasm_guest::task]
fn process_pool_in_process() -> Result<()> {
    let pool = Pool::new(4)?;
    let x: Vec<i64> = pool.map("process_afunc", 1..=7_i64)?;
    pool.close();
    pool.join()?;
    if x != [1, 4, 9, 16, 25, 36, 49] {
        return Err(mpwasm_guest::Error::Other(format!("map gave {x:?}")));
    }
    Ok(())
}

/// `TestStdinBadfiledescriptor.test_pool_in_process`: a process can run a
/// pool of its own.
#[mpwasm_guest::task]
pub(crate) fn TestStdinBadfiledescriptor__test_pool_in_process() -> Result<()> {
    let mut p = start("process_pool_in_process", (), false)?;
    join_ok(&mut p)
}
