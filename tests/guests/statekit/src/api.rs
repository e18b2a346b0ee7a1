//! The rest of Python's API for shared state: `Lock.locked()`, a
//! `Barrier`'s `action` and default `timeout`, `ShareableList` negative
//! indices, `index` and `count`, deleting a `Namespace` attribute, and the
//! `SyncManager` makers of queues, locks, events, barriers, values and
//! arrays.

use std::time::{Duration, Instant};

use mpwasm_guest::{
    Array, Barrier, Error, Event, Item, Lock, Manager, Process, Queue, Result, ShareableList,
    SharedMemory, Value,
};

use crate::{ms, PATIENCE};

/// `lock_locked`: `Lock::locked` as this process and another one hold it.
pub fn locked() -> Result<()> {
    let lock = Lock::new()?;
    println!("free {}", lock.locked());
    let guard = lock.acquire()?;
    println!("held_here {}", lock.locked());
    drop(guard);
    println!("released {}", lock.locked());
    let (ready, done) = (Event::new()?, Event::new()?);
    let mut holder = Process::new("hold_until", (&lock, &ready, &done));
    holder.start()?;
    ready.wait_timeout(PATIENCE);
    println!("held_there {}", lock.locked());
    done.set();
    holder.join_timeout(PATIENCE)?;
    println!("holder_gone {}", lock.locked());
    Ok(())
}

/// The named block the barrier actions count in: runs, then a byte per
/// run saying whether every party was still waiting.
const TICKS: &str = "statekit-barrier-ticks";

/// A barrier's action: counts its runs in the `TICKS` block.
#[mpwasm_guest::task]
fn tick() -> Result<()> {
    let block = SharedMemory::attach(TICKS)?;
    let runs = block.read(0, 1)?[0];
    block.write(0, &[runs + 1])
}

/// A barrier's action that fails.
#[mpwasm_guest::task]
fn refuse() -> Result<()> {
    Err(Error::Other("no thanks".into()))
}

/// Passes `barrier` `rounds` times; after each pass, reports how many
/// times the action had run (it must have run before anyone passed).
#[mpwasm_guest::task]
fn pass_rounds(barrier: Barrier, rounds: u8, seen: Queue<u8>) -> Result<()> {
    let block = SharedMemory::attach(TICKS)?;
    for _ in 0..rounds {
        barrier.wait()?;
        seen.put(block.read(0, 1)?[0])?;
    }
    Ok(())
}

/// `barrier_action`: an action run once per pass by the last party, before
/// any passes; a failing action; a default timeout.
pub fn barrier_action() -> Result<()> {
    const ROUNDS: u8 = 5;
    let _block = SharedMemory::create(TICKS, 1)?;
    let barrier = Barrier::with_options(3, Some("tick"), None)?;
    let seen = Queue::<u8>::new()?;
    let mut parties: Vec<Process> = (0..2)
        .map(|_| Process::new("pass_rounds", (&barrier, ROUNDS, &seen)))
        .collect();
    for p in &mut parties {
        p.start()?;
    }
    let mut here = Vec::new();
    let block = SharedMemory::attach(TICKS)?;
    for _ in 0..ROUNDS {
        barrier.wait_timeout(PATIENCE)?;
        here.push(block.read(0, 1)?[0]);
    }
    let mut there: Vec<u8> = (0..2 * ROUNDS)
        .map(|_| seen.get_timeout(PATIENCE))
        .collect::<Result<_>>()?;
    there.sort_unstable();
    println!("runs {}", block.read(0, 1)?[0]);
    println!("seen_here {here:?}");
    println!("seen_there {there:?}");
    for mut p in parties {
        p.join_timeout(PATIENCE)?;
        println!("party_exitcode {:?}", p.exitcode());
    }

    let failing = Barrier::with_options(1, Some("refuse"), None)?;
    println!("failing_action {:?}", failing.wait_timeout(PATIENCE));
    println!("failing_broken {}", failing.broken());
    println!("failing_then {:?}", failing.wait_timeout(PATIENCE));
    println!(
        "unknown_action {:?}",
        Barrier::with_options(2, Some("nope"), None).err()
    );

    let timed = Barrier::with_options(2, None, Some(Duration::from_millis(200)))?;
    println!("default_timeout {:?}", timed.timeout());
    let t = Instant::now();
    let r = timed.wait();
    println!("timed_wait {r:?} {:.1}", ms(t));
    Ok(())
}

/// `shareable_list`: negative indices, `index` and `count`.
pub fn shareable_list() -> Result<()> {
    let sl = ShareableList::new(vec![
        Some(Item::Int(7)),
        None,
        Some(Item::Int(7)),
        Some("x".into()),
    ])?;
    println!("get_minus_1 {:?}", sl.get(-1));
    println!("get_minus_4 {:?}", sl.get(-4));
    println!("get_minus_5 {:?}", sl.get(-5).is_err());
    sl.set(-2, Some(Item::Int(8)))?;
    println!("after_set {:?}", sl.to_vec()?);
    println!("index_7 {:?}", sl.index(&Some(Item::Int(7))));
    println!("index_8 {:?}", sl.index(&Some(Item::Int(8))));
    println!("index_9 {:?}", sl.index(&Some(Item::Int(9))));
    println!("count_7 {:?}", sl.count(&Some(Item::Int(7))));
    println!("count_none {:?}", sl.count(&None));
    Ok(())
}

/// Uses the manager-made objects from another process.
#[mpwasm_guest::task]
fn use_managed(
    objects: (Queue<String>, Lock, Event, Barrier, Value<i64>, Array<i32>),
) -> Result<()> {
    let (queue, lock, event, barrier, value, array) = objects;
    let _held = lock.acquire()?;
    queue.put("from child".into())?;
    value.fetch_add(5);
    array.set(1, 20)?;
    event.set();
    drop(_held);
    barrier.wait_timeout(PATIENCE)?;
    Ok(())
}

/// `manager`: a namespace attribute deleted; the `SyncManager` makers give
/// objects another process can use.
pub fn manager() -> Result<()> {
    let m = Manager::new()?;
    let ns = m.namespace()?;
    ns.set("x", &1)?;
    println!("contains_before {:?}", ns.contains("x"));
    println!("delete {:?}", ns.delete("x"));
    println!(
        "after_delete {:?} {:?}",
        ns.get::<i32>("x"),
        ns.contains("x")
    );
    println!("delete_again_is_err {}", ns.delete("x").is_err());

    let objects = (
        m.queue::<String>()?,
        m.lock()?,
        m.event()?,
        m.barrier(2, None, None)?,
        m.value(1_i64)?,
        m.array(&[1_i32, 2, 3])?,
    );
    let mut child = Process::new("use_managed", &objects);
    child.start()?;
    let (queue, _, event, barrier, value, array) = &objects;
    println!("managed_queue {:?}", queue.get_timeout(PATIENCE));
    println!("managed_event {}", event.wait_timeout(PATIENCE));
    println!(
        "managed_barrier {:?}",
        barrier.wait_timeout(PATIENCE).is_ok()
    );
    child.join_timeout(PATIENCE)?;
    println!("managed_value {}", value.get());
    println!("managed_array {:?}", array.to_vec());
    println!("managed_child {:?}", child.exitcode());
    let (sem, cond, rlock, bsem, jq) = (
        m.semaphore(2)?,
        m.condition()?,
        m.rlock()?,
        m.bounded_semaphore(1)?,
        m.joinable_queue::<u8>()?,
    );
    println!(
        "other_makers {} {} {} {} {}",
        sem.get_value(),
        cond.acquire().is_ok(),
        rlock.acquire().is_ok(),
        bsem.get_value(),
        jq.qsize()
    );
    Ok(())
}
