//! Scenarios that try to make the parent hold more than the run allows
//! (issue 10, items 2, 4, 5, 7 and 8): `mpwasm run hostile.wasm SCENARIO
//! ARGS…`, each printing one `key value…` line per fact for
//! `tests/hostile.rs` to read. A refusal is printed, never returned: the
//! run must go on and exit 0 after a `Limit` error.

use std::time::{Duration, Instant};

use mpwasm_guest::{pipe, Connection, Error, Manager, Pool, Process, Queue, RawValue, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Milliseconds since `t`, with a fraction.
fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Argument `i` of the scenario (after its name), as a number.
fn arg(args: &[String], i: usize, default: u64) -> u64 {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

/// Whether `e` is the refusal the host promises: a `Limit` error, or a
/// serde error carrying one (a handle that could not be shared).
fn is_limit(e: &Error) -> bool {
    match e {
        Error::Limit(_) => true,
        Error::Codec(why) => why.contains("limit"),
        _ => false,
    }
}

/// Prints how the loop of `what` ended: `limit WHAT AT MS` after a
/// refusal at step `at`, or `done WHAT N` when nothing refused `n` steps.
fn report(what: &str, n: u64, t: Instant, ended: Option<(u64, Error)>) {
    match ended {
        Some((at, e)) if is_limit(&e) => {
            println!("limit {what} {at} {:.1}", ms(t));
            eprintln!("{what}: refused at step {at}: {e}");
        }
        Some((at, e)) => println!("error {what} {at} {e:?}"),
        None => println!("done {what} {n} {:.1}", ms(t)),
    }
}

/// Runs `step(i)` for `i` in `0..n`, stopping at the first error.
fn until_refused(n: u64, mut step: impl FnMut(u64) -> Result<()>) -> Option<(u64, Error)> {
    (0..n).find_map(|i| step(i).err().map(|e| (i, e)))
}

/// Dispatches `mpwasm run hostile.wasm SCENARIO ARGS…`; `false` if
/// `what` is no scenario of this module.
pub fn run(what: &str, args: &[String]) -> Result<bool> {
    match what {
        "spill" => spill(arg(args, 0, 130_000), arg(args, 1, 4000)),
        "lists" => lists(arg(args, 0, 16), arg(args, 1, 250)),
        "dict_values" => dict_values(arg(args, 0, 1_000_000)),
        "submit" => submit(arg(args, 0, 5), arg(args, 1, 48)),
        "names" => names(arg(args, 0, 30), arg(args, 1, 100)),
        "pools" => pools(arg(args, 0, 3), arg(args, 1, 64)),
        "pool_and_processes" => pool_and_processes(),
        "share_connections" => share_connections(arg(args, 0, 25_000)).map(|_| ()),
        "share_regions" => share_regions(arg(args, 0, 25_000)),
        "share_one" => share_one(arg(args, 0, 200_000)),
        "dicts_dropped" => dicts_dropped(arg(args, 0, 100_000)),
        "latency" => latency(arg(args, 0, 100_000), arg(args, 1, 2000)),
        "bearer" => bearer(),
        _ => return Ok(false),
    }?;
    Ok(true)
}

/// Item 2: `n` items of `size` bytes into an unbounded queue nobody
/// reads: all but the pipe's 256 are spilled to the parent (or, of 4 KiB and
/// more, kept by it).
fn spill(n: u64, size: u64) -> Result<()> {
    let q = Queue::<Vec<u8>>::new()?;
    let item = vec![7_u8; size as usize];
    let t = Instant::now();
    let ended = until_refused(n, |_| q.put(item.clone()));
    report("spill", n, t, ended);
    Ok(())
}

/// Item 2: `n` manager lists, each filled with `mib` MiB in 1 MiB
/// items, all kept alive.
fn lists(n: u64, mib: u64) -> Result<()> {
    let m = Manager::new()?;
    let item = vec![1_u8; 1 << 20];
    let mut kept = Vec::new();
    let t = Instant::now();
    let ended = until_refused(n * mib, |i| {
        if i % mib == 0 {
            kept.push(m.list::<Vec<u8>>()?);
        }
        kept.last().expect("pushed").append(&item)
    });
    report("lists", n * mib, t, ended);
    Ok(())
}

/// Item 2: `n` entries with an empty value in one manager dict.
fn dict_values(n: u64) -> Result<()> {
    let d = Manager::new()?.dict::<u64, ()>()?;
    let t = Instant::now();
    let ended = until_refused(n, |i| d.set(&i, &()));
    report("dict_values", n, t, ended);
    Ok(())
}

/// A pool input that keeps its worker busy for 50 ms, so the inputs
/// behind it stay queued in the parent.
#[mpwasm_guest::task]
fn slow_len(v: Vec<u8>) -> u64 {
    std::thread::sleep(Duration::from_millis(50));
    v.len() as u64
}

/// Item 2: `n` jobs of `mib` 1 MiB inputs submitted to a one-worker pool
/// at once (each job's inputs cross in one upcall).
fn submit(n: u64, mib: u64) -> Result<()> {
    let pool = Pool::new(1)?;
    let input = vec![3_u8; 1 << 20];
    let mut jobs = Vec::new();
    let t = Instant::now();
    let ended = until_refused(n, |_| {
        let inputs = (0..mib).map(|_| input.clone());
        jobs.push(pool.map_async::<_, u64>("slow_len", inputs)?);
        Ok(())
    });
    report("submit", n, t, ended);
    pool.terminate();
    Ok(())
}

/// A process target that does nothing.
#[mpwasm_guest::task]
fn idle() {}

/// Item 2: `n` processes named with `mib` MiB names.
fn names(n: u64, mib: u64) -> Result<()> {
    let name = "n".repeat((mib << 20) as usize);
    let t = Instant::now();
    let mut refused = 0;
    for _ in 0..n {
        let mut p = Process::new("idle", ()).with_name(name.clone());
        match p.start() {
            Ok(()) => p.join()?,
            Err(e) if is_limit(&e) => refused += 1,
            Err(e) => println!("error names {e:?}"),
        }
    }
    println!("refused names {refused} {:.1}", ms(t));
    Ok(())
}

/// Item 4: `n` pools of `size` workers, all kept.
fn pools(n: u64, size: u64) -> Result<()> {
    let mut kept = Vec::new();
    let t = Instant::now();
    for i in 0..n {
        match Pool::new(size as usize) {
            Ok(pool) => {
                println!("pool {i} ok {:.1}", ms(t));
                kept.push(pool);
            }
            Err(e) if is_limit(&e) => println!("pool {i} limit {:.1}", ms(t)),
            Err(e) => println!("pool {i} error {e:?}"),
        }
    }
    // Let the parent be sampled with whatever was made.
    std::thread::sleep(Duration::from_millis(300));
    Ok(())
}

/// A process target that sleeps for `ms` milliseconds.
#[mpwasm_guest::task]
fn nap(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Item 4: a pool of 2, then processes until refused, then pools of 1
/// until refused; everything kept alive while the parent is sampled.
fn pool_and_processes() -> Result<()> {
    let pool = Pool::new(2)?;
    let mut started = Vec::new();
    let mut refused = None;
    for i in 0..10 {
        let mut p = Process::new("nap", 500_u64);
        match p.start() {
            Ok(()) => started.push(p),
            Err(e) => {
                refused = Some((i, e));
                break;
            }
        }
    }
    match refused {
        Some((i, e)) if is_limit(&e) => println!("processes limit {i}"),
        other => println!("processes {other:?}"),
    }
    let more = Pool::new(1);
    println!(
        "another_pool {}",
        match &more {
            Ok(_) => "ok",
            Err(e) if is_limit(e) => "limit",
            Err(_) => "error",
        }
    );
    for p in &mut started {
        p.join()?;
    }
    // A joined process has ended: its place is free again at once. One
    // place left, taken and given back 20 times in a row.
    let mut ok = 0;
    for _ in 0..20 {
        let mut p = Process::new("nap", 0_u64);
        match p.start() {
            Ok(()) => {
                p.join()?;
                ok += 1;
            }
            Err(e) => eprintln!("after join: {e}"),
        }
    }
    println!("after_join {ok}");
    drop(pool);
    Ok(())
}

/// Item 5: makes pipes and sends one end of each through a pipe nobody
/// redeems from, until refused; the number of ends sent.
fn share_connections(n: u64) -> Result<u64> {
    let (carrier, _far) = pipe(true)?;
    let mut kept = Vec::new();
    let t = Instant::now();
    let ended = until_refused(n, |_| {
        let (here, there) = pipe(true)?;
        carrier.send(&there)?;
        kept.push(here);
        Ok(())
    });
    let sent = ended.as_ref().map_or(n, |(at, _)| *at);
    report("share_connections", n, t, ended);
    Ok(sent)
}

/// Item 5, under `mpwasm pool`: input `-1` shares connection ends until
/// refused and returns how many went; any other input `x` makes a pipe,
/// sends one end through another pipe, redeems it and sends `x` back
/// through the redeemed end.
#[mpwasm_guest::task]
fn connections(x: i64) -> std::result::Result<i64, Error> {
    if x < 0 {
        return share_connections(100_000).map(|n| n as i64);
    }
    let (a, b) = pipe(true)?;
    let (here, there) = pipe(true)?;
    a.send(&there)?;
    let adopted: Connection = b.recv()?;
    adopted.send(&x)?;
    here.recv()
}

/// Item 5: `n` regions, each shared once into a pipe nobody redeems from
/// and dropped: every one is kept alive by its reference in transit.
fn share_regions(n: u64) -> Result<()> {
    let (carrier, far) = pipe(true)?;
    // Made before the flood: the objects the run already has keep working.
    let q = Queue::<u8>::new()?;
    let t = Instant::now();
    let ended = until_refused(n, |_| {
        let v = RawValue::new(0_i32)?;
        carrier.send(&v)?;
        // Read the token as a plain number: nothing is redeemed.
        far.recv::<(u64, char, u64)>()?;
        Ok(())
    });
    report("share_regions", n, t, ended);
    // The run is still healthy.
    q.put(1)?;
    println!("healthy {:?}", q.get_timeout(Duration::from_secs(5)));
    Ok(())
}

/// Item 7: `n` shares of one queue, each token read back as a number
/// (never redeemed). `ready` is printed after the first tenth, so the
/// parent's memory is compared from there on.
fn share_one(n: u64) -> Result<()> {
    let q = Queue::<u8>::new()?;
    let (a, b) = pipe(true)?;
    let t = Instant::now();
    let ended = until_refused(n, |i| {
        if i == n / 10 {
            println!("ready {:.1}", ms(t));
        }
        a.send(&q)?;
        b.recv::<u64>().map(drop)
    });
    report("share_one", n, t, ended);
    Ok(())
}

/// Item 7: `n` manager dicts, each shared, redeemed and dropped.
fn dicts_dropped(n: u64) -> Result<()> {
    let m = Manager::new()?;
    let (a, b) = pipe(true)?;
    let t = Instant::now();
    let ended = until_refused(n, |i| {
        if i == n / 10 {
            println!("ready {:.1}", ms(t));
        }
        let d = m.dict::<u8, u8>()?;
        a.send(&d)?;
        let adopted: mpwasm_guest::DictProxy<u8, u8> = b.recv()?;
        drop((d, adopted));
        Ok(())
    });
    report("dicts_dropped", n, t, ended);
    Ok(())
}

/// Prints `latency LABEL P50 P99` (microseconds) of `calls` runs of
/// `call`.
fn percentiles(label: &str, calls: u32, mut call: impl FnMut() -> Result<()>) -> Result<()> {
    let mut us: Vec<f64> = (0..calls)
        .map(|_| {
            let t = Instant::now();
            call().map(|()| t.elapsed().as_secs_f64() * 1e6)
        })
        .collect::<Result<_>>()?;
    us.sort_by(f64::total_cmp);
    let at = |q: f64| us[((us.len() - 1) as f64 * q) as usize];
    println!("latency {label} {:.1} {:.1}", at(0.5), at(0.99));
    Ok(())
}

/// Measures, in a process of its own, `calls` manager `len()` calls on
/// `dict` (an object lookup) and `calls` `active_children()` calls (a
/// process lookup), labelled `label`.
#[mpwasm_guest::task]
fn measure(args: (mpwasm_guest::DictProxy<u8, u8>, u32, String)) -> Result<()> {
    let (dict, calls, label) = args;
    percentiles(&format!("len_{label}"), calls, || dict.len().map(drop))?;
    percentiles(&format!("children_{label}"), calls, || {
        mpwasm_guest::active_children();
        Ok(())
    })
}

/// Runs [`measure`] in a new process and waits for it.
fn measure_in_child(dict: &mpwasm_guest::DictProxy<u8, u8>, calls: u64, label: &str) -> Result<()> {
    let mut p = Process::new("measure", (dict.clone(), calls as u32, label.to_string()));
    p.start()?;
    p.join()
}

/// Item 7: another process's upcall latency with few objects, then with
/// `n` more live manager dicts.
fn latency(n: u64, calls: u64) -> Result<()> {
    let m = Manager::new()?;
    let small = m.dict::<u8, u8>()?;
    measure_in_child(&small, calls, "few")?;
    let t = Instant::now();
    let mut kept = Vec::with_capacity(n as usize);
    let ended = until_refused(n, |_| {
        kept.push(m.dict::<u8, u8>()?);
        Ok(())
    });
    report("objects", n, t, ended);
    measure_in_child(&small, calls, "many")
}

/// Sends `wire` through a pipe and receives it as a `T`: how a token,
/// however it was learned, is offered for redemption.
fn receive_as<T: DeserializeOwned>(wire: &impl Serialize) -> Result<T> {
    let (a, b) = pipe(true)?;
    a.send(wire)?;
    b.recv::<T>()
}

/// A process that reads a queue's token out of shared memory, where it
/// was never "sent", redeems it and puts 42 on the queue.
#[mpwasm_guest::task]
fn redeem_from_memory(cell: RawValue<u64>) -> Result<()> {
    let q: Queue<i32> = receive_as(&cell.get())?;
    q.put(42)
}

/// Item 8: tokens are bearer capabilities within a run. A token learned
/// any way at all works for whoever presents it while its object lives;
/// once the object is gone (no handles, no references in transit) its
/// token is `InvalidHandle`, as is a made-up one.
fn bearer() -> Result<()> {
    let q = Queue::<i32>::new()?;
    let token: u64 = receive_as(&q)?; // shared once, read as a number
    let cell = RawValue::new(token)?;
    let mut p = Process::new("redeem_from_memory", cell.clone());
    p.start()?;
    p.join()?;
    println!("from_memory exitcode {:?}", p.exitcode());
    println!(
        "from_memory got {:?}",
        q.get_timeout(Duration::from_secs(5))
    );

    let region = RawValue::new(5_i32)?;
    let (token, _, _): (u64, char, u64) = receive_as(&region)?;
    // Its reference in transit keeps the region after its last handle.
    drop(region);
    let again: Result<RawValue<i32>> = receive_as(&(token, 'i', 1_u64));
    println!("in_transit {:?}", again.as_ref().map(|v| v.get()));
    drop(again);
    // Now nothing holds it and nothing is in transit: it is gone.
    let gone: Result<RawValue<i32>> = receive_as(&(token, 'i', 1_u64));
    println!("gone {:?}", gone.map(|v| v.get()));

    let forged: Result<Queue<i32>> = receive_as(&0x5eed_f00d_dead_beef_u64);
    println!("forged {:?}", forged.map(|_| "adopted"));
    Ok(())
}
