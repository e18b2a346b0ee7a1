//! Test guest: tasks whose behaviour the integration tests check from outside.

use serde::{Deserialize, Serialize};

/// Returns its input unchanged.
#[mpwasm_guest::task]
fn echo(v: String) -> String {
    v
}

/// Panics on 13, doubles everything else.
#[mpwasm_guest::task]
fn unlucky(x: i64) -> i64 {
    if x == 13 {
        panic!("unlucky number {x}");
    }
    x * 2
}

/// Sleeps 20 s on 0, panics on 13, doubles everything else.
#[mpwasm_guest::task]
fn slow_or_unlucky(x: i64) -> i64 {
    if x == 0 {
        std::thread::sleep(std::time::Duration::from_secs(20));
    }
    unlucky(x)
}

/// Fails (without panicking) on negative numbers.
#[mpwasm_guest::task]
fn checked_sqrt(x: f64) -> Result<f64, String> {
    if x < 0.0 {
        Err(format!("cannot take the square root of {x}"))
    } else {
        Ok(x.sqrt())
    }
}

/// Traps with a wasm `unreachable` that is not a Rust panic.
#[mpwasm_guest::task]
fn trap_on_zero(x: i64) -> i64 {
    if x == 0 {
        std::process::abort();
    }
    x
}

/// Who ran this input.
#[derive(Serialize, Deserialize)]
struct Identity {
    pid: u32,
    parent_pid: u32,
    worker: u32,
    name: String,
    task: String,
    index: u64,
}

/// Reports the worker process and the task position that handled `_x`.
#[mpwasm_guest::task]
fn whoami(_x: i64) -> Identity {
    let p = mpwasm_guest::current_process();
    let t = mpwasm_guest::current_task().expect("inside a task");
    mpwasm_guest::log(mpwasm_guest::Level::Info, &format!("whoami {}", t.index));
    Identity {
        pid: p.pid,
        parent_pid: p.parent_pid,
        worker: p.id,
        name: p.name,
        task: t.name,
        index: t.index,
    }
}

/// Adds two numbers (a two-argument task, for `starmap`).
#[mpwasm_guest::task]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

/// Sleeps `ms` milliseconds, then returns it.
#[mpwasm_guest::task]
fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    ms
}

/// Tries to read a host file; the sandbox must refuse.
#[mpwasm_guest::task]
fn read_file(path: String) -> Result<String, String> {
    std::fs::read_to_string(&path).map_err(|e| e.to_string())
}

/// Tries to read an environment variable; the sandbox has none.
#[mpwasm_guest::task]
fn env_var(name: String) -> Option<String> {
    std::env::var(&name).ok()
}

/// Prints to stdout and stderr from inside a task.
#[mpwasm_guest::task]
fn shout(s: String) -> usize {
    println!("out: {s}");
    eprintln!("err: {s}");
    s.len()
}

/// `whoami`, after a pause long enough that every worker of a small pool
/// gets some of the inputs.
#[mpwasm_guest::task]
fn whoami_slow(x: i64) -> Identity {
    std::thread::sleep(std::time::Duration::from_millis(60));
    whoami(x)
}

/// Never returns: a busy loop for deadline tests.
#[mpwasm_guest::task]
fn spin(_x: i64) -> i64 {
    let mut i: u64 = 0;
    loop {
        i = std::hint::black_box(i.wrapping_add(1));
    }
}

/// Allocates and touches `mib` MiB; returns a checksum.
#[mpwasm_guest::task]
fn alloc_mib(mib: usize) -> usize {
    let v = vec![1u8; mib << 20];
    v.iter().step_by(4096).map(|&b| b as usize).sum()
}

/// Counts to `n` the slow way: a loop for fuel tests.
#[mpwasm_guest::task]
fn busy(n: u64) -> u64 {
    let mut x = 0u64;
    for i in 0..n {
        x = std::hint::black_box(x ^ i);
    }
    x
}

/// Writes `text` to `path`; the sandbox must allow it only under a grant.
#[mpwasm_guest::task]
fn write_file(path: String, text: String) -> Result<usize, String> {
    std::fs::write(&path, &text)
        .map(|()| text.len())
        .map_err(|e| e.to_string())
}

/// Tries to open a TCP connection; the sandbox has no network.
#[mpwasm_guest::task]
fn connect(addr: String) -> Result<String, String> {
    std::net::TcpStream::connect(&addr)
        .map(|_| "connected".to_string())
        .map_err(|e| e.to_string())
}

/// Calls `exit(code)`: not a pool task's to do.
#[mpwasm_guest::task]
fn exits(code: i32) -> i32 {
    std::process::exit(code)
}

/// What a failed pool task reported, as one line.
fn outcome<R: std::fmt::Debug>(r: mpwasm_guest::Result<R>) -> String {
    match r {
        Err(mpwasm_guest::Error::Task { kind, message, .. }) => format!("{kind} {message}"),
        other => format!("not a task failure: {other:?}"),
    }
}

/// `kinds`: the SDK's names of task failures, then what a guest pool
/// reports for a failure of each kind it can cause at will.
fn kinds() -> mpwasm_guest::Result<()> {
    println!("sdk kinds {}", mpwasm_guest::task_kind::ALL.join(" "));
    let pool = mpwasm_guest::Pool::new(1)?;
    let cases = [
        ("panic", outcome(pool.apply::<i64, i64>("unlucky", 13))),
        (
            "failed",
            outcome(pool.apply::<f64, f64>("checked_sqrt", -1.0)),
        ),
        ("trap", outcome(pool.apply::<i64, i64>("trap_on_zero", 0))),
        ("exit", outcome(pool.apply::<i32, i32>("exits", 4))),
        ("bad_input", outcome(pool.apply::<i64, String>("echo", 5))),
        ("unknown_task", outcome(pool.apply::<i64, i64>("nope", 1))),
    ];
    for (case, line) in cases {
        println!("case {case}: {line}");
    }
    Ok(())
}

/// `mpwasm run testkit.wasm [code N | exit N | panic | kinds | args…]`:
/// exercises main.
#[mpwasm_guest::main]
fn main() -> i32 {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("kinds") => match kinds() {
            Ok(()) => 0,
            Err(e) => {
                println!("kinds failed: {e}");
                1
            }
        },
        Some("code") => args.get(2).and_then(|n| n.parse().ok()).unwrap_or(0),
        Some("exit") => std::process::exit(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(0)),
        Some("panic") => panic!("main gave up"),
        _ => {
            let me = mpwasm_guest::current_process();
            println!(
                "main in pid {} (parent {}) args {:?}",
                me.pid,
                me.parent_pid,
                &args[1..]
            );
            0
        }
    }
}
