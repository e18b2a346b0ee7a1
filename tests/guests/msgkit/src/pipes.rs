//! Pipe scenarios (and the ones that mix pipes with queues and processes):
//! big messages, end of file from a dead or finished peer, forged
//! capability tokens, `wait`.

use std::time::{Duration, Instant};

use mpwasm_guest::{pipe, wait, Connection, Error, JoinableQueue, Process, Queue, Result};

use crate::{ms, sleep_ms, PATIENCE};

/// 5 MiB: well above a socket buffer and a queue's inline item size.
const BIG: usize = 5 << 20;

/// `BIG` bytes that differ with `seed` and along the buffer.
fn pattern(seed: u32) -> Vec<u8> {
    (0..BIG as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
        .collect()
}

/// Sends `pattern(1)` three ways, then checks `pattern(2)` from main.
#[mpwasm_guest::task]
fn big_sender(q: Queue<Vec<u8>>, conn: Connection) -> Result<()> {
    let data = pattern(1);
    q.put(data.clone())?;
    conn.send(&data)?;
    conn.send_bytes(&data)?;
    let back = conn.recv_bytes()?;
    conn.send(&(back == pattern(2)))
}

/// `big`: a 5 MiB item through a queue, and 5 MiB messages both ways
/// through a pipe (encoded and raw), byte-exact.
pub fn big() -> Result<()> {
    let q = Queue::<Vec<u8>>::new()?;
    let (here, there) = pipe(true)?;
    let mut p = Process::new("big_sender", (&q, &there));
    p.start()?;
    there.close();
    let want = pattern(1);
    let got = q.get_timeout(PATIENCE)?;
    println!("queue len {} exact {}", got.len(), got == want);
    let got: Vec<u8> = here.recv()?;
    println!("pipe len {} exact {}", got.len(), got == want);
    let got = here.recv_bytes()?;
    println!("pipe_bytes len {} exact {}", got.len(), got == want);
    here.send_bytes(&pattern(2))?;
    println!("child_got exact {}", here.recv::<bool>()?);
    p.join()?;
    println!("exitcode {:?}", p.exitcode());
    Ok(())
}

/// Says it holds its end, then sleeps until killed.
#[mpwasm_guest::task]
fn hold_end(conn: Connection) -> Result<()> {
    conn.send("ready")?;
    loop {
        sleep_ms(3_600_000);
    }
}

/// Says goodbye and returns, dropping its end.
#[mpwasm_guest::task]
fn say_bye(conn: Connection) -> Result<()> {
    conn.send("bye")
}

/// `eof_kill` / `eof_return`: the only other holder of a pipe's end is
/// killed with SIGKILL, or returns; main's `recv` then fails with `Eof`.
pub fn eof(kill: bool) -> Result<()> {
    let (here, there) = pipe(true)?;
    let target = if kill { "hold_end" } else { "say_bye" };
    let mut p = Process::new(target, &there);
    p.start()?;
    there.close();
    println!("first {:?}", here.recv::<String>());
    let t = Instant::now();
    if kill {
        p.kill()?;
    }
    let ready = here.poll(Some(PATIENCE))?;
    println!("poll {ready:?} after_ms {}", ms(t));
    if ready {
        println!("recv {:?}", here.recv::<String>());
        println!("again {:?}", here.recv::<String>());
    }
    p.join_timeout(PATIENCE)?;
    println!("exitcode {:?}", p.exitcode());
    Ok(())
}

/// Whether `token` is refused as a handle of each kind, as printed lines.
fn try_forged(label: &str, token: u64) -> Result<()> {
    let (a, b) = pipe(true)?;
    let mut lines = Vec::new();
    a.send(&token)?;
    lines.push(format!(
        "queue {:?}",
        b.recv::<Queue<i32>>().map(|_| "adopted")
    ));
    a.send(&token)?;
    lines.push(format!(
        "joinable {:?}",
        b.recv::<JoinableQueue<i32>>().map(|_| "adopted")
    ));
    a.send(&token)?;
    lines.push(format!(
        "connection {:?}",
        b.recv::<Connection>().map(|_| "adopted")
    ));
    a.send(&token)?;
    lines.push(format!(
        "process {:?}",
        b.recv::<Process>().map(|_| "adopted")
    ));
    for line in lines {
        println!("forged {label} {line}");
    }
    Ok(())
}

/// The target for forged process arguments: never runs.
#[mpwasm_guest::task]
fn takes_queue(q: Queue<i32>) -> Result<()> {
    println!("takes_queue ran with {q:?}");
    q.put(1)
}

/// `forged`: made-up capability tokens (and neighbours of a real one) are
/// refused as queue, connection and process handles, in a pipe message and
/// as process arguments; the real token still works and the run stays
/// healthy.
pub fn forged() -> Result<()> {
    for token in [0, 1, 12345, u64::MAX] {
        try_forged(&token.to_string(), token)?;
    }
    // A real token, read as the plain u64 it is encoded as.
    let real = Queue::<i32>::new()?;
    let (a, b) = pipe(true)?;
    a.send(&real)?;
    let token: u64 = b.recv()?;
    try_forged("real+1", token.wrapping_add(1))?;
    try_forged("real-1", token.wrapping_sub(1))?;
    try_forged("real^1<<63", token ^ 1 << 63)?;
    a.send(&token)?;
    let adopted = b.recv::<Queue<i32>>()?;
    adopted.put(42)?;
    println!("real token adopted get {:?}", real.get_timeout(PATIENCE));

    let mut p = Process::new("takes_queue", 12345_u64);
    p.start()?;
    p.join_timeout(PATIENCE)?;
    println!("forged args exitcode {:?}", p.exitcode());

    let q = Queue::<String>::new()?;
    q.put("still fine".into())?;
    println!("healthy {:?}", q.get_timeout(PATIENCE));
    Ok(())
}

/// Receives one message (or end of file), then returns.
#[mpwasm_guest::task]
fn recv_then_return(conn: Connection) {
    let _ = conn.recv_bytes();
}

/// `wait`: `wait` over two connections, a queue and a process sentinel
/// returns the ready positions (none on timeout).
pub fn wait_ready() -> Result<()> {
    let (a1, b1) = pipe(true)?;
    let (a2, b2) = pipe(true)?;
    let q = Queue::<u8>::new()?;
    let (a3, b3) = pipe(true)?;
    let mut p = Process::new("recv_then_return", &b3);
    p.start()?;
    b3.close();
    let ready = |label: &str, timeout: Duration| -> Result<()> {
        let t = Instant::now();
        let r = wait(&[&a1, &a2, &q, p.sentinel()], Some(timeout))?;
        println!("wait {label} {r:?} after_ms {}", ms(t));
        Ok(())
    };
    ready("none", Duration::from_millis(200))?;
    b2.send(&1_u8)?;
    ready("conn2", PATIENCE)?;
    a2.recv::<u8>()?;
    q.put(7)?;
    ready("queue", PATIENCE)?;
    q.get()?;
    a3.send(&0_u8)?;
    ready("process", PATIENCE)?;
    b1.send(&1_u8)?;
    q.put(8)?;
    ready("all_but_conn2", PATIENCE)?;
    a1.recv::<u8>()?;
    q.get()?;
    b1.close();
    ready("eof_and_process", PATIENCE)?;
    println!("recv_after_eof {:?}", a1.recv::<u8>());
    // Waiting on nothing ready with zero timeout just checks.
    let t = Instant::now();
    println!(
        "zero {:?} after_ms {}",
        wait(&[&a2, &q], Some(Duration::ZERO))?,
        ms(t)
    );
    p.join()?;
    println!("exitcode {:?}", p.exitcode());
    match q.get_nowait() {
        Err(Error::Empty) => println!("then empty"),
        other => println!("then {other:?}"),
    }
    Ok(())
}
