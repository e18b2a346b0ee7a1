//! `_TestConnection`, `_TestPoll`, `_TestPicklingConnections` and
//! `TestWait`.

use std::time::{Duration, Instant};

use mpwasm_guest::{current_process, pipe, wait, Connection, Error, Result, Semaphore, Waitable};

use crate::check::*;

/// `_TestConnection._echo`: sends back every message until an empty one.
#[mpwasm_guest::task]
fn connection_echo(conn: Connection) -> Result<()> {
    loop {
        let msg = conn.recv_bytes()?;
        if msg.is_empty() {
            break;
        }
        conn.send_bytes(&msg)?;
    }
    conn.close();
    Ok(())
}

/// `array.array('i', range(4))` as bytes.
fn int_array(values: &[i32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

/// `_TestConnection.test_connection`: objects and bytes through an echoing
/// child; receiving into a buffer (at an offset, and one too short);
/// `poll` with and without a timeout; a 16 MiB message; end of file once
/// the child is gone. (Python's `recv_bytes_into(buf, offset)` is a
/// receive into `buf[offset..]`.)
#[mpwasm_guest::task]
pub(crate) fn TestConnection__test_connection() -> Result<()> {
    let (conn, child_conn) = pipe(true)?;
    let mut p = start("connection_echo", &child_conn, true)?;

    let seq = (1_i64, 2.25_f64, None::<i64>); // [1, 2.25, None]
    let msg = b"hello world".to_vec();
    let longmsg = msg.repeat(10);
    let arr = int_array(&[0, 1, 2, 3]);

    check_eq!(conn.send(&seq), Ok(()));
    check_eq!(conn.recv::<(i64, f64, Option<i64>)>()?, seq);
    check_eq!(conn.send_bytes(&msg), Ok(()));
    check_eq!(conn.recv_bytes()?, msg);

    let mut buffer = vec![0_u8; 40]; // array('i', [0]*10)
    check_eq!(conn.send_bytes(&arr), Ok(()));
    check_eq!(conn.recv_bytes_into(&mut buffer)?, arr.len());
    check_eq!(buffer, int_array(&[0, 1, 2, 3, 0, 0, 0, 0, 0, 0]));

    let mut buffer = vec![0_u8; 40];
    check_eq!(conn.send_bytes(&arr), Ok(()));
    check_eq!(conn.recv_bytes_into(&mut buffer[12..])?, arr.len());
    check_eq!(buffer, int_array(&[0, 0, 0, 0, 1, 2, 3, 0, 0, 0]));

    let mut buffer = vec![b' '; 40];
    check_eq!(conn.send_bytes(&longmsg), Ok(()));
    match conn.recv_bytes_into(&mut buffer) {
        Err(Error::BufferTooShort(got)) => check_eq!(got, longmsg),
        other => check!(false, "expected BufferTooShort, got {other:?}"),
    }

    check_eq!(conn.poll(Some(Duration::ZERO))?, false); // poll()
    check_eq!(conn.poll(Some(Duration::ZERO))?, false); // poll(-1)
    let (r, took) = timed(|| conn.poll(Some(TIMEOUT)));
    check_eq!(r?, false);
    check!(took + CLOCK_RES >= TIMEOUT, "{took:?}");
    conn.send(&None::<i64>)?;
    sleep_ms(100);
    check_eq!(conn.poll(Some(TIMEOUT))?, true);
    check_eq!(conn.recv::<Option<i64>>()?, None);

    let really_big_msg = vec![b'X'; 16 * 1024 * 1024];
    conn.send_bytes(&really_big_msg)?;
    check!(conn.recv_bytes()? == really_big_msg);

    conn.send_bytes(b"")?; // tell the child to quit
    child_conn.close();
    check_eq!(conn.readable(), true);
    check_eq!(conn.writable(), true);
    check_err!(conn.recv::<i64>(), Error::Eof);
    check_err!(conn.recv_bytes(), Error::Eof);
    join_ok(&mut p)
}

/// `_TestConnection.test_duplex_false`: a one-way pipe's ends can each do
/// only their own half.
#[mpwasm_guest::task]
pub(crate) fn TestConnection__test_duplex_false() -> Result<()> {
    let (reader, writer) = pipe(false)?;
    check_eq!(writer.send(&1), Ok(()));
    check_eq!(reader.recv::<i32>()?, 1);
    check_eq!(reader.readable(), true);
    check_eq!(reader.writable(), false);
    check_eq!(writer.readable(), false);
    check_eq!(writer.writable(), true);
    check!(reader.send(&2).is_err());
    check!(writer.recv::<i32>().is_err());
    check!(writer.poll(Some(Duration::ZERO)).is_err());
    Ok(())
}

/// `_TestConnection.test_spawn_close`: the parent may close the child's
/// end right after starting it.
#[mpwasm_guest::task]
pub(crate) fn TestConnection__test_spawn_close() -> Result<()> {
    let (conn, child_conn) = pipe(true)?;
    let mut p = start("connection_echo", &child_conn, true)?;
    child_conn.close();
    conn.send_bytes(b"hello")?;
    check_eq!(conn.recv_bytes()?, b"hello");
    conn.send_bytes(b"")?;
    conn.close();
    join_ok(&mut p)
}

/// `_TestConnection.test_context`: ends work until closed, are closed
/// after, and refuse to receive then.
#[mpwasm_guest::task]
pub(crate) fn TestConnection__test_context() -> Result<()> {
    let (a, b) = pipe(true)?;
    a.send(&1729)?;
    check_eq!(b.recv::<i32>()?, 1729);
    check!(!a.closed());
    check!(!b.closed());
    a.close(); // leaving `with a, b:`
    b.close();
    check!(a.closed());
    check!(b.closed());
    check!(a.recv::<i32>().is_err());
    check!(b.recv::<i32>().is_err());
    Ok(())
}

/// `_TestPoll.test_empty_string`: an empty message makes `poll` true, and
/// polling does not take it.
#[mpwasm_guest::task]
pub(crate) fn TestPoll__test_empty_string() -> Result<()> {
    let (a, b) = pipe(true)?;
    check_eq!(a.poll(Some(Duration::ZERO))?, false);
    b.send_bytes(b"")?;
    check_eq!(a.poll(Some(Duration::ZERO))?, true);
    check_eq!(a.poll(Some(Duration::ZERO))?, true);
    Ok(())
}

/// `_TestPoll.test_strings`'s strings.
const STRINGS: [&[u8]; 8] = [b"hello", b"", b"a", b"b", b"", b"bye", b"", b"lop"];

/// `_TestPoll._child_strings`: sends each string after a pause (CPython's
/// 0.1 s, scaled to 20 ms: it only paces the test).
#[mpwasm_guest::task]
fn poll_child_strings(conn: Connection) -> Result<()> {
    for s in STRINGS {
        sleep_ms(20);
        conn.send_bytes(s)?;
    }
    conn.close();
    Ok(())
}

/// `_TestPoll.test_strings`: messages, empty ones included, arrive whole
/// and in order while polled for.
#[mpwasm_guest::task]
pub(crate) fn TestPoll__test_strings() -> Result<()> {
    let (a, b) = pipe(true)?;
    let mut p = start("poll_child_strings", &b, false)?;
    for s in STRINGS {
        for _ in 0..200 {
            if a.poll(Some(Duration::from_millis(10)))? {
                break;
            }
        }
        check_eq!(a.recv_bytes()?, s);
    }
    join_ok(&mut p)
}

/// `_TestPoll._child_boundaries`: polls, which must not take part of a
/// message.
#[mpwasm_guest::task]
fn poll_child_boundaries(r: Connection) -> Result<()> {
    r.poll(Some(Duration::from_secs(5))).map(drop)
}

/// `_TestPoll.test_boundaries`: another process's `poll` leaves a whole
/// message to read. (CPython's 2 s pause, scaled to 200 ms, lets the child
/// start polling.)
#[mpwasm_guest::task]
pub(crate) fn TestPoll__test_boundaries() -> Result<()> {
    let (r, w) = pipe(false)?;
    let mut p = start("poll_child_boundaries", &r, false)?;
    sleep_ms(200);
    let l: [&[u8]; 2] = [b"first", b"second"];
    for obj in l {
        w.send_bytes(obj)?;
    }
    w.close();
    join_ok(&mut p)?;
    let got = r.recv_bytes()?;
    check!(l.contains(&got.as_slice()), "{got:?}");
    Ok(())
}

/// `_TestPoll._child_dont_merge`.
#[mpwasm_guest::task]
fn poll_child_dont_merge(b: Connection) -> Result<()> {
    b.send_bytes(b"a")?;
    b.send_bytes(b"b")?;
    b.send_bytes(b"cd")
}

/// `_TestPoll.test_dont_merge`: messages sent back to back stay apart.
#[mpwasm_guest::task]
pub(crate) fn TestPoll__test_dont_merge() -> Result<()> {
    let (a, b) = pipe(true)?;
    check_eq!(a.poll(Some(Duration::ZERO))?, false);
    check_eq!(a.poll(Some(TIMEOUT))?, false);
    let mut p = start("poll_child_dont_merge", &b, false)?;
    let second = Some(Duration::from_secs(1));
    check_eq!(a.recv_bytes()?, b"a");
    check_eq!(a.poll(second)?, true);
    check_eq!(a.poll(second)?, true);
    check_eq!(a.recv_bytes()?, b"b");
    check_eq!(a.poll(second)?, true);
    check_eq!(a.poll(second)?, true);
    check_eq!(a.poll(Some(Duration::ZERO))?, true);
    check_eq!(a.recv_bytes()?, b"cd");
    join_ok(&mut p)
}

/// `_TestPicklingConnections.child_access`: writes on a connection it
/// was sent, then reads one it was sent.
#[mpwasm_guest::task]
fn connection_child_access(conn: Connection) -> Result<()> {
    let w: Connection = conn.recv()?;
    w.send("all is well")?;
    w.close();
    let r: Connection = conn.recv()?;
    let msg: String = r.recv()?;
    conn.send(&msg.repeat(2))?;
    conn.close();
    Ok(())
}

/// `_TestPicklingConnections.test_access`: either end of a one-way pipe
/// can be sent to another process and used there.
#[mpwasm_guest::task]
pub(crate) fn TestPicklingConnections__test_access() -> Result<()> {
    let (conn, child_conn) = pipe(true)?;
    let mut p = start("connection_child_access", &child_conn, true)?;
    child_conn.close();

    let (r, w) = pipe(false)?;
    conn.send(&w)?;
    w.close();
    check_eq!(r.recv::<String>()?, "all is well");
    r.close();

    let (r, w) = pipe(false)?;
    conn.send(&r)?;
    r.close();
    w.send("foobar")?;
    w.close();
    check_eq!(conn.recv::<String>()?, "foobar".repeat(2));
    join_ok(&mut p)
}

/// A small pseudo-random number generator (guests have no `random`):
/// xorshift seeded by the pid.
fn jitter_ms(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state % 100
}

/// `TestWait._child_test_wait`: sends `(i, pid)` ten times, after a
/// random pause of up to 100 ms each if `slow`.
#[mpwasm_guest::task]
fn wait_child(w: Connection, slow: bool) -> Result<()> {
    let pid = current_process().pid;
    let mut state = u64::from(pid) | 1;
    for i in 0..10_u32 {
        if slow {
            sleep_ms(jitter_ms(&mut state));
        }
        w.send(&(i, pid))?;
    }
    w.close();
    Ok(())
}

/// `TestWait.test_wait(slow)`: `wait` over four readers hands out every
/// message, and each reader's end of file.
fn test_wait(slow: bool) -> Result<()> {
    let mut readers = Vec::new();
    let mut procs = Vec::new();
    for _ in 0..4 {
        let (r, w) = pipe(false)?;
        procs.push(start("wait_child", (&w, slow), true)?);
        w.close();
        readers.push(r);
    }
    let mut messages: Vec<(u32, u32)> = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while !readers.is_empty() && Instant::now() < deadline {
        let waitables: Vec<&dyn Waitable> = readers.iter().map(|r| r as &dyn Waitable).collect();
        let mut ready = wait(&waitables, Some(PATIENCE))?;
        ready.sort_unstable_by(|a, b| b.cmp(a)); // remove from the back first
        for i in ready {
            match readers[i].recv() {
                Ok(msg) => messages.push(msg),
                Err(Error::Eof) => {
                    readers.remove(i).close();
                }
                Err(e) => return Err(e),
            }
        }
    }
    messages.sort();
    let mut expected: Vec<(u32, u32)> = (0..10)
        .flat_map(|i| procs.iter().map(move |p| (i, p.pid().unwrap_or(0))))
        .collect();
    expected.sort();
    check_eq!(messages, expected);
    for p in &mut procs {
        join_ok(p)?;
    }
    Ok(())
}

/// `TestWait.test_wait`.
#[mpwasm_guest::task]
pub(crate) fn TestWait__test_wait() -> Result<()> {
    test_wait(false)
}

/// `TestWait.test_wait_slow`.
#[mpwasm_guest::task]
pub(crate) fn TestWait__test_wait_slow() -> Result<()> {
    test_wait(true)
}

/// `TestWait.test_wait_timeout`: `wait` on nothing ready returns nothing
/// after its timeout (CPython's 5 s, scaled to 0.5 s), then the one ready
/// end.
#[mpwasm_guest::task]
pub(crate) fn TestWait__test_wait_timeout() -> Result<()> {
    let timeout = Duration::from_millis(500);
    let (a, b) = pipe(true)?;
    let (res, delta) = timed(|| wait(&[&a, &b], Some(timeout)));
    check_eq!(res?, Vec::<usize>::new());
    check!(delta + CLOCK_RES > timeout, "{delta:?}");
    b.send(&())?;
    check_eq!(wait(&[&a, &b], Some(Duration::from_secs(20)))?, [0]);
    Ok(())
}

/// `TestWait.signal_and_sleep`.
#[mpwasm_guest::task]
fn wait_signal_and_sleep(sem: Semaphore, period_ms: u64) -> Result<()> {
    sem.release()?;
    sleep_ms(period_ms);
    Ok(())
}

/// `TestWait.test_wait_integer`: `wait` over pipes and a process's
/// sentinel reports each as it becomes ready.
#[mpwasm_guest::task]
pub(crate) fn TestWait__test_wait_integer() -> Result<()> {
    let expected = Duration::from_secs(3);
    let sem = Semaphore::new(0)?;
    let (a, b) = pipe(true)?;
    let mut p = start(
        "wait_signal_and_sleep",
        (&sem, expected.as_millis() as u64),
        false,
    )?;
    check!(sem
        .acquire_timeout(Duration::from_secs(20))
        .map(std::mem::forget)
        .is_ok());

    let twenty = Some(Duration::from_secs(20));
    let (res, delta) = timed(|| {
        wait(
            &[&a, p.sentinel(), &b],
            Some(expected + Duration::from_secs(20)),
        )
    });
    check_eq!(res?, [1]);
    check!(delta < expected + Duration::from_secs(2), "{delta:?}");
    check!(delta + Duration::from_secs(2) > expected, "{delta:?}");

    a.send(&())?;
    let (res, delta) = timed(|| wait(&[&a, p.sentinel(), &b], twenty));
    check_eq!(res?, [1, 2]);
    check!(delta < Duration::from_millis(400), "{delta:?}");

    b.send(&())?;
    let (res, delta) = timed(|| wait(&[&a, p.sentinel(), &b], twenty));
    check_eq!(res?, [0, 1, 2]);
    check!(delta < Duration::from_millis(400), "{delta:?}");
    p.terminate()?;
    p.join()
}

/// `TestWait.test_neg_timeout`: a negative timeout (here: none) returns
/// at once with nothing.
#[mpwasm_guest::task]
pub(crate) fn TestWait__test_neg_timeout() -> Result<()> {
    let (a, b) = pipe(true)?;
    let (res, t) = timed(|| wait(&[&a], Some(Duration::ZERO)));
    check_eq!(res?, Vec::<usize>::new());
    check!(t < Duration::from_secs(1));
    a.close();
    b.close();
    Ok(())
}

/// `_TestConnection.test_sendbytes`: `send_bytes(buf, offset, size)` sends
/// that slice; an offset or size past the end is refused (`ValueError`).
/// (Negative offsets and sizes are not a `usize`.)
#[mpwasm_guest::task]
pub(crate) fn TestConnection__test_sendbytes() -> Result<()> {
    let msg = b"abcdefghijklmnopqrstuvwxyz";
    let (a, b) = pipe(true)?;
    a.send_bytes(msg)?;
    check_eq!(b.recv_bytes()?, msg);
    a.send_bytes_range(msg, 5, None)?;
    check_eq!(b.recv_bytes()?, msg[5..]);
    a.send_bytes_range(msg, 7, Some(8))?;
    check_eq!(b.recv_bytes()?, msg[7..7 + 8]);
    a.send_bytes_range(msg, 26, None)?;
    check_eq!(b.recv_bytes()?, b"");
    a.send_bytes_range(msg, 26, Some(0))?;
    check_eq!(b.recv_bytes()?, b"");
    check!(a.send_bytes_range(msg, 27, None).is_err());
    check!(a.send_bytes_range(msg, 22, Some(5)).is_err());
    check!(a.send_bytes_range(msg, 26, Some(1)).is_err());
    Ok(())
}
