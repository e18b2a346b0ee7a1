//! `close` + `join` keeping submitted work, Python's pool options, and
//! errors at the call (issue 9, items 2, 6 and 7).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mpwasm_guest::{Error, Event, Pool, Result};

/// Six 300 ms `apply_async` on a pool of three, then `close`, `join`,
/// `get`: every one answers (five rounds).
pub(crate) fn close_join() -> Result<()> {
    for round in 0..5 {
        let pool = Pool::new(3)?;
        let mut pending = Vec::new();
        for _ in 0..6 {
            pending.push(pool.apply_async::<_, u32>("sleep_pid", 300_u64)?);
        }
        pool.close();
        pool.join()?;
        let got = pending
            .iter_mut()
            .filter_map(|r| r.get(Some(Duration::ZERO)).ok())
            .count();
        println!("round {round} results {got}");
    }
    Ok(())
}

/// `imap` over 200 inputs, `close` 100 ms later: all 200 arrive.
pub(crate) fn imap_close() -> Result<()> {
    let pool = Pool::new(2)?;
    let results = pool
        .chunked(1)
        .imap::<_, u32>("sleep_pid", (0..200).map(|_| 2_u64))?;
    std::thread::sleep(Duration::from_millis(100));
    pool.close();
    let got = results.filter(|r| r.is_ok()).count();
    pool.join()?;
    println!("imap results {got}");
    Ok(())
}

/// Distinct worker pids over 100 one-input chunks; with an argument, the
/// pool's own `maxtasksperchild`.
pub(crate) fn pids(args: &[String]) -> Result<()> {
    let mut builder = Pool::builder().processes(2);
    if let Some(n) = args.first().and_then(|a| a.parse().ok()) {
        builder = builder.maxtasksperchild(n);
    }
    let pool = builder.build()?;
    let pids: Vec<u32> = pool.chunked(1).map("pid", 0..100_u64)?;
    let distinct: BTreeSet<u32> = pids.into_iter().collect();
    println!("distinct {}", distinct.len());
    Ok(())
}

/// The initializer runs in every worker, again after a panic resets an
/// instance; a failing initializer fails the tasks with its error.
pub(crate) fn initializer() -> Result<()> {
    let pool = Pool::builder()
        .processes(2)
        .initializer("remember", 42_u64)
        .build()?;
    let values: Vec<u64> = pool.chunked(1).map("init_value", 0..10_u64)?;
    println!("values {values:?}");
    let after: Vec<Result<u64>> = pool
        .chunked(1)
        .imap::<_, u64>("init_value", 10..20_u64)?
        .collect();
    let after: Vec<String> = after
        .iter()
        .map(|r| match r {
            Ok(v) => v.to_string(),
            Err(Error::Task { kind, .. }) => kind.clone(),
            Err(e) => format!("{e}"),
        })
        .collect();
    println!("after_panic {}", after.join(" "));
    drop(pool);
    let failing = Pool::builder()
        .processes(1)
        .initializer("refuse", 0_u64)
        .build()?;
    match failing.apply::<_, u64>("square", 3_u64) {
        Ok(v) => println!("failing_init ok {v}"),
        Err(Error::Task { message, .. }) => println!("failing_init error {message}"),
        Err(e) => println!("failing_init other {e}"),
    }
    Ok(())
}

/// `chunked(7)`: each run of 7 inputs goes to one worker.
pub(crate) fn chunksize() -> Result<()> {
    let pool = Pool::new(2)?;
    let pids: Vec<u32> = pool.chunked(7).map("sleep_pid", (0..70).map(|_| 1_u64))?;
    let whole = pids
        .chunks(7)
        .all(|chunk| chunk.iter().all(|p| *p == chunk[0]));
    println!("chunks_whole {whole}");
    Ok(())
}

/// `callback` and `error_callback` run by `join` after `close`.
pub(crate) fn callbacks() -> Result<()> {
    let pool = Pool::new(2)?;
    let seen = Rc::new(RefCell::new(Vec::new()));
    let errors = Rc::new(RefCell::new(Vec::new()));
    for x in 0..6_u64 {
        let seen = seen.clone();
        let errors = errors.clone();
        pool.apply_async::<_, u64>("even_only", x)?
            .callback(move |v| seen.borrow_mut().push(*v))
            .error_callback(move |e| errors.borrow_mut().push(e.to_string()));
    }
    let seen_map = Rc::new(RefCell::new(0));
    let s = seen_map.clone();
    pool.map_async::<_, u64>("square", 0..10_u64)?
        .callback(move |v| *s.borrow_mut() = v.iter().sum());
    pool.close();
    pool.join()?;
    let mut seen = seen.borrow().clone();
    seen.sort();
    println!("callbacks {seen:?}");
    println!("error_callbacks {}", errors.borrow().len());
    println!("map_callback {}", seen_map.borrow());
    Ok(())
}

/// `map` over many small inputs (default 50,000): the sum and the time.
pub(crate) fn big_map(args: &[String]) -> Result<()> {
    let n: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let pool = Pool::new(2)?;
    let start = Instant::now();
    let squares: Vec<u64> = pool.map("square", 0..n)?;
    let ms = start.elapsed().as_millis();
    println!("sum {}", squares.iter().sum::<u64>());
    println!("count {}", squares.len());
    eprintln!("big_map {n} inputs in {ms} ms");
    Ok(())
}

/// Work offered to a closed or terminated pool fails at the call.
pub(crate) fn closed_calls() -> Result<()> {
    let pool = Pool::new(1)?;
    pool.close();
    println!(
        "closed_map_async {}",
        pool.map_async::<_, u64>("square", [1_u64]).is_err()
    );
    println!(
        "closed_apply_async {}",
        pool.apply_async::<_, u64>("square", 1_u64).is_err()
    );
    println!(
        "closed_imap {}",
        pool.imap::<_, u64>("square", [1_u64]).is_err()
    );
    pool.join()?;
    let pool = Pool::new(1)?;
    pool.terminate();
    println!(
        "terminated_apply_async {}",
        pool.apply_async::<_, u64>("square", 1_u64).is_err()
    );
    Ok(())
}

/// `map` returns the first failure as soon as it is known, while another
/// input still runs (it waits on an event set only afterwards).
pub(crate) fn first_failure() -> Result<()> {
    let pool = Pool::new(2)?;
    let event = Event::new()?;
    let start = Instant::now();
    let inputs = vec![(Some(event.clone()), 0_u64), (None, 1)];
    // Task "blocks_or_fails": waits for the event, or fails at once.
    let outcome: Result<Vec<bool>> = pool.chunked(1).map("blocks_or_fails", inputs);
    let early = start.elapsed() < Duration::from_secs(10);
    event.set();
    match outcome {
        Err(Error::Task { index, .. }) => println!("first_failure index {index} early {early}"),
        other => println!("first_failure unexpected {other:?}"),
    }
    Ok(())
}

/// Waits for the event (at most 20 s) when given one, else fails.
#[mpwasm_guest::task]
fn blocks_or_fails(input: (Option<Event>, u64)) -> std::result::Result<bool, String> {
    match input.0 {
        Some(event) => Ok(event.wait_timeout(Duration::from_secs(20))),
        None => Err(format!("input {} fails", input.1)),
    }
}

/// `Pool::scope`: closes and joins on success (callbacks ran), terminates
/// on error.
pub(crate) fn scope() -> Result<()> {
    let total = Rc::new(RefCell::new(0_u64));
    let t = total.clone();
    let sum = Pool::new(2)?.scope(|pool| {
        pool.map_async::<_, u64>("square", 0..4_u64)?
            .callback(move |v| *t.borrow_mut() = v.iter().sum());
        let v: Vec<u64> = pool.map("square", 0..4_u64)?;
        Ok(v.iter().sum::<u64>())
    })?;
    println!("scope {sum} callback {}", total.borrow());
    let failed = Pool::new(2)?.scope(|pool| {
        let _: Vec<u64> = pool.map("boom", [1_u64])?;
        Ok(())
    });
    println!("scope_error {}", failed.is_err());
    Ok(())
}

/// Process and connection mistakes fail at the call (issue 9, item 7):
/// an unknown target at `start`, waiting on an unstarted process or on the
/// sending end of a one-way pipe.
pub(crate) fn call_errors() -> Result<()> {
    let mut p = mpwasm_guest::Process::new("no_such_task", ());
    let started = p.start();
    println!("unknown_target {}", started.is_err());
    if let Err(e) = started {
        println!("unknown_target_message {e}");
    }
    let unstarted = mpwasm_guest::Process::new("pid", 1_u64);
    let waited = mpwasm_guest::wait(&[&unstarted], Some(Duration::from_millis(10)));
    println!("wait_unstarted {}", waited.is_err());
    let (reader, writer) = mpwasm_guest::pipe(false)?;
    let waited = mpwasm_guest::wait(&[&writer], Some(Duration::from_millis(10)));
    println!("wait_write_only {}", waited.is_err());
    println!(
        "poll_write_only {}",
        writer.poll(Some(Duration::ZERO)).is_err()
    );
    println!("poll_read_end {:?}", reader.poll(Some(Duration::ZERO)));
    Ok(())
}

/// A map, per-input errors and where the chunks ran, for `mpwasm run
/// --cluster` (issue 14): the sum of `n` squares (default 20,000), the
/// kinds of `even_only`'s outcomes over 0..6, and the distinct values of
/// `MPWASM_TEST_HOST` the pool's tasks saw (`local` where it is unset).
pub(crate) fn cluster_map(args: &[String]) -> Result<()> {
    let n: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let pool = Pool::new(2)?;
    let squares: Vec<u64> = pool.map("square", 0..n)?;
    println!("sum {}", squares.iter().sum::<u64>());
    println!("count {}", squares.len());
    let outcomes: Vec<String> = pool
        .imap::<_, u64>("even_only", 0..6_u64)?
        .map(|r| match r {
            Ok(v) => v.to_string(),
            Err(Error::Task { kind, .. }) => kind,
            Err(e) => format!("{e}"),
        })
        .collect();
    println!("even_only {}", outcomes.join(" "));
    let hosts: BTreeSet<String> = pool.chunked(1).map("host_env", 0..40_u64)?.into_iter().collect();
    println!("hosts {}", hosts.into_iter().collect::<Vec<_>>().join(" "));
    Ok(())
}
