//! W3f, W3's floor: what the wasm↔host boundary alone costs a queue round
//! trip.
//!
//! Two processes ping-pong 4 bytes over two pipes, as W3's native
//! reference does, but each side's `write` and `read` are host calls made
//! by a wasm loop, and nothing else happens: no queue, no encoding. Both
//! processes run under a worker's seccomp filters. The calls are made two
//! ways in the same run:
//!
//! - as **component-model host functions** taking and returning scalars,
//!   the way a guest reaches the WIT `queue` interface (`put-staged` and
//!   `get-staged` carry scalars only, like these): what a queue on the
//!   component model pays before any work of its own (in a program of this
//!   bench's size: the floor grows with the code and memory a process runs
//!   between two switches);
//! - as **core-module imports**, the way a guest reaches its window
//!   helpers: what the boundary would cost without the component model.

use std::os::fd::AsFd;
use std::time::Instant;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Module, Store};

use crate::messaging::{filtered_ping_pong, native_ping_pong, on_one_cpu, ROUND_TRIPS};
use crate::{median, REPS};

/// The loop both ways run: `n` round trips (a write, then a read) for the
/// pinging side; for the echoing side a read, then a write, until a read
/// finds the pipe closed. Returns the round trips made.
const LOOP: &str = r#"
    (import "host" "write" (func $write (result i32)))
    (import "host" "read" (func $read (result i32)))
    (func (export "run") (param $n i32) (param $ping i32) (result i32)
      (local $i i32)
      (block $done
        (loop $next
          (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
          (if (local.get $ping)
            (then
              (drop (call $write))
              (br_if $done (i32.eqz (call $read))))
            (else
              (br_if $done (i32.eqz (call $read)))
              (drop (call $write))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $next)))
      (local.get $i))
"#;

/// [`LOOP`] as a core module.
fn core_module() -> String {
    format!("(module {LOOP})")
}

/// [`LOOP`] inside a component whose `write` and `read` are
/// component-model imports, lowered into the core module.
fn component() -> String {
    format!(
        r#"(component
          (import "write" (func $write (result u32)))
          (import "read" (func $read (result u32)))
          (core func $write (canon lower (func $write)))
          (core func $read (canon lower (func $read)))
          (core module $loop {LOOP})
          (core instance $host (export "write" (func $write)) (export "read" (func $read)))
          (core instance $loop (instantiate $loop (with "host" (instance $host))))
          (func (export "run") (param "n" u32) (param "ping" u32) (result u32)
            (canon lift (core func $loop "run"))))"#
    )
}

/// The host side of `write`: 4 bytes to stdout; how many went (0: none).
fn write() -> u32 {
    let sent = rustix::io::write(std::io::stdout().as_fd(), &[7; 4]);
    sent.map_or(0, |n| n as u32)
}

/// The host side of `read`: up to 4 bytes from stdin; how many came (0:
/// end of file or an error).
fn read() -> u32 {
    let mut buf = [0; 4];
    let got = rustix::io::read(std::io::stdin().as_fd(), &mut buf);
    got.map_or(0, |n| n as u32)
}

/// An engine configured as a worker's is where it matters to a host call
/// (no component-model async, no backtrace details).
fn engine() -> Engine {
    let mut config = Config::new();
    config.concurrency_support(false);
    config.wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Disable);
    Engine::new(&config).expect("engine")
}

/// A compiled loop, ready to run `n` round trips.
type Run = Box<dyn FnMut(&mut Store<()>, u32) -> u32>;

/// A helper process's side of the ping-pong, `kind` (`component-ping`,
/// `core-echo`, …): compiles its loop, locks itself down like a worker,
/// runs. The pinging side prints µs per round trip on stderr.
pub fn helper(kind: &str) {
    let (way, side) = kind.split_once('-').expect("boundary helper kind");
    let ping = side == "ping";
    let engine = engine();
    let mut store = Store::new(&engine, ());
    let mut run: Run = match way {
        "component" => {
            let wasm = wat::parse_str(component()).expect("component text");
            let component = Component::new(&engine, wasm).expect("compile");
            let mut linker = Linker::new(&engine);
            let mut root = linker.root();
            root.func_wrap("write", |_, (): ()| Ok((write(),)))
                .expect("write");
            root.func_wrap("read", |_, (): ()| Ok((read(),)))
                .expect("read");
            let instance = linker
                .instantiate(&mut store, &component)
                .expect("instantiate");
            let f = instance
                .get_typed_func::<(u32, u32), (u32,)>(&mut store, "run")
                .expect("run");
            Box::new(move |store, n| f.call(&mut *store, (n, ping.into())).expect("run").0)
        }
        "core" => {
            let wasm = wat::parse_str(core_module()).expect("core module text");
            let module = Module::new(&engine, wasm).expect("compile");
            let mut linker = wasmtime::Linker::new(&engine);
            linker.func_wrap("host", "write", write).expect("write");
            linker.func_wrap("host", "read", read).expect("read");
            let instance = linker
                .instantiate(&mut store, &module)
                .expect("instantiate");
            let f = instance
                .get_typed_func::<(u32, u32), u32>(&mut store, "run")
                .expect("run");
            Box::new(move |store, n| f.call(&mut *store, (n, ping.into())).expect("run"))
        }
        other => panic!("no boundary way {other}"),
    };
    assert!(mpwasm::benchmarking::lock_down_like_a_worker());
    if !ping {
        run(&mut store, u32::MAX);
        return;
    }
    // The first round trip waits for the other side to start: not timed.
    assert_eq!(run(&mut store, 1), 1);
    let t = Instant::now();
    assert_eq!(run(&mut store, ROUND_TRIPS), ROUND_TRIPS);
    eprintln!(
        "{}",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(ROUND_TRIPS)
    );
}

/// W3f: the floor, with every process on one CPU (across CPUs, a round
/// trip is the kernel's wake-ups, which W3's queue avoids by looking for
/// the item before it sleeps), beside W3's native reference in the same
/// repetitions.
pub fn w3_floor() {
    // Component-model calls, core calls, native (no filters).
    let samples: Vec<[f64; 3]> = on_one_cpu(|| {
        (0..REPS)
            .map(|_| {
                let component =
                    filtered_ping_pong("boundary-component-echo", "boundary-component-ping");
                let core = filtered_ping_pong("boundary-core-echo", "boundary-core-ping");
                [component, core, native_ping_pong()]
            })
            .collect()
    });
    let side = |i: usize| median(samples.iter().map(|s| s[i]).collect());
    let ratio = |i: usize| median(samples.iter().map(|s| s[i] / s[2]).collect());
    println!(
        "| W3f | W3's floor, all on one CPU: its round trips with each side's write and read made as host calls by a wasm loop, nothing else, both processes under a worker's seccomp filters | component-model host calls {:.1} µs ({:.2}× native); core-module imports {:.1} µs ({:.2}× native) | – | – | {:.1} µs (pipe ping-pong) | – (a queue on the component model pays the first before any work of its own) |",
        side(0),
        ratio(0),
        side(1),
        ratio(1),
        side(2),
    );
}
