//! Shared state across processes: `Value`, `Array`, locks, barriers, events,
//! conditions, shared memory and manager containers, under contention and
//! when a process is killed holding them.
//!
//! Each test runs one scenario of the guest `tests/guests/statekit` with
//! `mpwasm run statekit.wasm <scenario>` and checks the facts it prints
//! (`name value…`, one a line). A run that outlives [`HANG`] is killed and
//! the test fails: a hang is a failure, never a stuck test run. Timings the
//! guest measures are printed (`cargo test -- --nocapture` shows them) and
//! checked only against generous guards; benchmarks live in `bench/`.

mod common;
use common::*;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a scenario may run before it counts as hung.
const HANG: Duration = Duration::from_secs(120);

/// What a scenario printed.
struct Facts {
    lines: Vec<String>,
    stderr: String,
}

impl Facts {
    /// The rest of the line `name …`; fails the test if there is none.
    fn get(&self, name: &str) -> &str {
        let prefix = format!("{name} ");
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no fact {name:?} in {self}"))
    }

    /// The number a fact starts with.
    fn number(&self, name: &str) -> f64 {
        let value = self.get(name);
        value
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("fact {name:?} is not a number: {value:?}"))
    }
}

impl std::fmt::Display for Facts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "stdout:")?;
        for line in &self.lines {
            writeln!(f, "  {line}")?;
        }
        write!(f, "stderr:\n{}", self.stderr)
    }
}

/// Runs `mpwasm run statekit.wasm <args…>`; it must exit 0 within [`HANG`].
fn statekit(args: &[&str]) -> Facts {
    statekit_with(&[], args)
}

/// [`statekit`] with `mpwasm run` options before the guest.
fn statekit_with(options: &[&str], args: &[&str]) -> Facts {
    let mut child = Command::new(mpwasm_bin())
        .arg("run")
        .args(options)
        .arg(guest("statekit"))
        .args(args)
        .env("MPWASM_CACHE_DIR", shared_cache())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mpwasm");
    let collect = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let out = collect(Box::new(child.stdout.take().expect("stdout")));
    let err = collect(Box::new(child.stderr.take().expect("stderr")));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait mpwasm") {
            break Some(status);
        }
        if start.elapsed() > HANG {
            // The workers die with their parent (the death signal).
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let facts = Facts {
        lines: out.join().unwrap().lines().map(str::to_string).collect(),
        stderr: err.join().unwrap(),
    };
    match status {
        None => panic!("statekit {args:?} hung for {HANG:?}; killed\n{facts}"),
        Some(s) if !s.success() => panic!("statekit {args:?} exited with {s}\n{facts}"),
        Some(_) => facts,
    }
}

/// The milliseconds a fact reports, shown in the test's output; at most the
/// 2 s guard (what they should be is for `bench/`, not for a test).
fn millis(facts: &Facts, name: &str) -> f64 {
    let ms = facts.number(name);
    println!("{name}: {ms:.3} ms");
    assert!(ms < 2000.0, "{name} took {ms} ms\n{facts}");
    ms
}

/// Python's `test_value` / `test_lock` with four processes: no locked
/// increment is lost.
#[test]
fn locked_increments_from_four_processes_are_exact() {
    let facts = statekit(&["locked", "4", "100000"]);
    assert_eq!(facts.get("final"), "400000", "{facts}");
    assert_eq!(
        facts.get("exitcodes"),
        "[Some(0), Some(0), Some(0), Some(0)]"
    );
}

/// A guest's window (4 GiB of address space, where its regions and locks
/// are mapped) is not its memory: `--memory` caps the guest's own memory
/// and the window guest still runs, its atomics exact.
#[test]
fn window_guests_run_under_a_memory_cap() {
    let facts = statekit_with(&["--memory", "64MiB"], &["atomics", "2", "5000"]);
    assert_eq!(facts.get("exitcodes"), "[Some(0), Some(0)]", "{facts}");
    assert_eq!(facts.get("sum"), "20000 expected 20000", "{facts}");
    assert_eq!(facts.get("swap_each_once"), "true", "{facts}");
}

/// fetch_add, fetch_sub, swap, compare_exchange and an array's fetch_add
/// from four processes at once: every operation counted once.
#[test]
fn atomics_are_exact_across_processes() {
    let facts = statekit(&["atomics", "4", "20000"]);
    assert_eq!(
        facts.get("exitcodes"),
        "[Some(0), Some(0), Some(0), Some(0)]",
        "{facts}"
    );
    assert_eq!(facts.get("sum"), "160000 expected 160000", "{facts}");
    assert_eq!(facts.get("cas"), "80000 expected 80000", "{facts}");
    assert_eq!(
        facts.get("slots"),
        "[10000, 10000, 10000, 10000, 10000, 10000, 10000, 10000] expected 10000 each"
    );
    assert_eq!(facts.get("byte"), "128 expected 128", "{facts}");
    assert_eq!(facts.get("swap_each_once"), "true", "{facts}");
    println!("compare_exchange retries: {}", facts.get("cas_retries"));
    // What each returns, in one process.
    assert_eq!(facts.get("cx_wrong"), "Err(5)");
    assert_eq!(facts.get("cx_right"), "Ok(5)");
    assert_eq!(facts.get("swap"), "9 now 1");
    assert_eq!(facts.get("fetch_add"), "1 now 11");
    assert_eq!(facts.get("fetch_sub"), "11 now -9");
    assert_eq!(facts.get("wrapping"), "2147483647 now -2147483648");
}

/// A process SIGKILLed holding a lock: the next acquirer gets it, told that
/// the owner died, whether it asks after the kill or was already blocked;
/// then the lock works as before.
#[test]
fn a_killed_lock_holder_hands_over_the_lock_as_owner_died() {
    let facts = statekit(&["owner_died"]);
    assert_eq!(facts.get("ready"), "true", "{facts}");
    assert_eq!(facts.get("busy"), "Some(Timeout)", "{facts}");
    assert_eq!(facts.get("owner_died"), "true", "{facts}");
    millis(&facts, "kill_to_acquire_ms");
    assert_eq!(facts.get("holder_exitcode"), "Some(-9)", "{facts}");
    assert_eq!(facts.get("reacquire_owner_died"), "Ok(false)", "{facts}");
    assert_eq!(facts.get("blocked_waiter"), "owner_died=true", "{facts}");
    millis(&facts, "blocked_kill_to_acquire_ms");
    assert_eq!(
        facts.get("blocked_exitcodes"),
        "Some(-9) Some(0)",
        "{facts}"
    );
}

/// Kill-at-every-step for Lock and RLock (taken and released in guest code,
/// the host only waiting and waking): two processes hammer them and are
/// SIGKILLed at a moment that varies over 40 rounds — inside and outside
/// the critical section, in the fast path and asleep in the host. No lock
/// hangs, a clean handover always guards consistent state, and the locks
/// work afterwards.
#[test]
fn locks_survive_holders_killed_at_every_step() {
    let facts = statekit(&["lock_kill_steps", "40"]);
    assert_eq!(facts.get("rounds"), "40", "{facts}");
    assert_eq!(facts.get("hung"), "0", "{facts}");
    assert_eq!(facts.get("inconsistent"), "0", "{facts}");
    assert_eq!(facts.get("reacquire"), "Ok(false)", "{facts}");
    println!(
        "owner-died handovers: {} of 40 rounds, {} increments",
        facts.get("owner_died_rounds"),
        facts.get("increments")
    );
}

/// Python's `test_semaphore`, `test_bounded_semaphore` and `test_event`
/// across processes, with the uncontended operations in guest code: a
/// 2000-round semaphore ping-pong (each side asleep in turn, woken by a
/// unit the other gives back in its own code) loses no wake-up; an event
/// set, read and cleared in one process is seen so in another; a bounded
/// semaphore refuses to pass its bound in any process.
#[test]
fn semaphores_and_events_work_across_processes() {
    let facts = statekit(&["sem_event", "2000"]);
    assert_eq!(facts.get("pingpong"), "2000", "{facts}");
    assert_eq!(facts.get("pingpong_values"), "0 0", "{facts}");
    assert_eq!(facts.get("ponger_exitcode"), "Some(0)", "{facts}");
    assert_eq!(facts.get("unset_wait"), "false", "{facts}");
    assert_eq!(facts.get("set_wait"), "true", "{facts}");
    assert_eq!(facts.get("peer_cleared"), "true", "{facts}");
    // Set seen, bound refused, clear seen after main's wait.
    assert_eq!(facts.get("peer_seen"), "7", "{facts}");
    assert_eq!(facts.get("peer_exitcode"), "Some(0)", "{facts}");
    assert_eq!(facts.get("bounded_take"), "Ok(()) 0", "{facts}");
    assert_eq!(facts.get("bounded_empty"), "Err(Timeout)", "{facts}");
    assert_eq!(
        facts.get("bounded_back"),
        r#"Ok(()) Err(Other("semaphore released too many times"))"#,
        "{facts}"
    );
}

/// Kill-at-every-step for Semaphore, BoundedSemaphore and Event (taken,
/// given back, set and cleared in guest code): two processes using them
/// are SIGKILLed at a moment that varies over 40 rounds, while two others
/// sleep on them throughout. A bounded semaphore never passes its bound,
/// guards consistent state unless its holder died (then, as in CPython,
/// its unit is gone), and can be acquired; no sleeper is left asleep
/// beside a free unit or a set flag (the broker wakes the sleepers of a
/// dead process's semaphores and events).
#[test]
fn semaphores_and_events_survive_users_killed_at_every_step() {
    let facts = statekit(&["sem_kill_steps", "40"]);
    assert_eq!(facts.get("rounds"), "40", "{facts}");
    assert_eq!(facts.get("over"), "0", "{facts}");
    assert_eq!(facts.get("inconsistent"), "0", "{facts}");
    assert_eq!(facts.get("hung"), "0", "{facts}");
    assert_eq!(facts.get("stuck"), "0", "{facts}");
    println!(
        "units lost with their holder: {} of 40 rounds, {} increments",
        facts.get("lost_rounds"),
        facts.get("increments")
    );
}

/// A condition waiter SIGKILLed while waiting does not swallow a notify:
/// whether the notify comes before the parent reaps the dead waiter or
/// after, it reaches the live waiter at once (the live waiter's own wait
/// would time out after 4 s).
#[test]
fn a_killed_condition_waiter_does_not_swallow_a_notify() {
    let facts = statekit(&["condition_kill"]);
    for case in ["unreaped", "reaped"] {
        let (woken, ms) = timed(&facts, &format!("{case}_live_woken"));
        assert_eq!(woken, "1", "{case}\n{facts}");
        assert!(ms < 2000.0, "{case}: {ms} ms\n{facts}");
        assert_eq!(
            facts.get(&format!("{case}_exitcodes")),
            "Some(-9) Some(0)",
            "{facts}"
        );
    }
}

/// Python's `_TestCondition` across processes, with the lock taken and
/// released in guest code (as an RLock's) and a notify with nobody waiting
/// done there: a 2000-item producer–consumer hand-off loses and doubles
/// nothing and no wake-up is lost; a notify needs the lock; `notify(2)` of
/// four waiters wakes two and `notify_all` the other two; a holder killed
/// holding the lock twice hands it on `owner_died`, after which it is
/// re-entrant and clean.
#[test]
fn conditions_work_across_processes() {
    let facts = statekit(&["condition", "2000"]);
    let sum = 2000 * 2001 / 2;
    assert_eq!(facts.get("handoff"), format!("{sum} {sum}"), "{facts}");
    assert_eq!(facts.get("handoff_stuck"), "0", "{facts}");
    assert_eq!(facts.get("consumer_exitcode"), "Some(0)", "{facts}");
    assert_eq!(facts.get("notify_unheld"), "true", "{facts}");
    assert_eq!(facts.get("notify_nobody"), "Ok(())", "{facts}");
    assert_eq!(facts.get("notify_n"), "true 2 4", "{facts}");
    assert_eq!(facts.get("locked_by_holder"), "true", "{facts}");
    assert_eq!(
        facts.get("after_holder_died"),
        "Ok(true) Ok(false)",
        "{facts}"
    );
    assert_eq!(facts.get("after_repair"), "Ok(false)", "{facts}");
}

/// Python's `_TestBarrier` across processes, with the last arrival passing
/// in guest code: three processes pass a barrier 500 times, nobody before
/// all three arrived, every index handed out once per generation; an abort
/// wakes a waiting party with `Broken`, and after a reset it passes again.
#[test]
fn barriers_pass_many_generations_exactly() {
    let facts = statekit(&["barrier", "500"]);
    assert_eq!(facts.get("party_exitcode"), "Some(0)", "{facts}");
    // Arrivals, early passes, the sum of indices and what it must be.
    assert_eq!(facts.get("generations"), "1500 0 1500 1500", "{facts}");
    assert_eq!(facts.get("n_waiting_after"), "0", "{facts}");
    assert_eq!(facts.get("abort"), "1 true Err(Broken)", "{facts}");
    assert_eq!(facts.get("after_reset"), "0 Ok(true) false 0", "{facts}");
}

/// Kill-at-every-step for Condition and Barrier: two processes hammering a
/// condition (acquire, notify, a short wait) and a 2-party barrier between
/// them are SIGKILLed at a moment that varies over 40 rounds — inside the
/// guest's lock, asleep in the host's wait, in the barrier. The condition's
/// lock never hangs and guards consistent state unless handed on
/// `owner_died`; the barrier is broken by its dead parties and passes again
/// once reset.
#[test]
fn conditions_and_barriers_survive_users_killed_at_every_step() {
    let facts = statekit(&["cond_barrier_kill_steps", "40"]);
    assert_eq!(facts.get("rounds"), "40", "{facts}");
    assert_eq!(facts.get("hung"), "0", "{facts}");
    assert_eq!(facts.get("inconsistent"), "0", "{facts}");
    assert_eq!(facts.get("unbroken"), "0", "{facts}");
    assert_eq!(facts.get("stuck_after_reset"), "0", "{facts}");
    assert_eq!(facts.get("hammer_errors"), "0", "{facts}");
    assert_eq!(facts.get("reacquire"), "Ok(false)", "{facts}");
    println!(
        "owner-died handovers: {} of 40 rounds to main, {} to the other hammer, {} increments",
        facts.get("owner_died_rounds"),
        facts.get("hammer_repairs"),
        facts.get("increments")
    );
}

/// Python's `test_barrier` family: a party killed while waiting breaks the
/// barrier for the others (no hang), and `reset` mends it.
#[test]
fn a_barrier_breaks_when_a_party_is_killed() {
    let facts = statekit(&["barrier_kill"]);
    assert_eq!(facts.get("n_waiting"), "2", "{facts}");
    assert_eq!(facts.get("survivor"), "Err(Broken)", "{facts}");
    millis(&facts, "kill_to_broken_ms");
    assert_eq!(facts.get("broken"), "true", "{facts}");
    let (late, ms) = timed(&facts, "late_wait");
    assert_eq!(late, "Err(Broken)", "{facts}");
    assert!(ms < 2000.0, "a later wait fails at once, not after {ms} ms");
    assert_eq!(facts.get("exitcodes"), "Some(0) Some(-9)", "{facts}");
    assert_eq!(facts.get("reset_broken"), "false", "{facts}");
    assert_eq!(
        facts.get("after_reset"),
        r#"["Ok(0)", "Ok(1)", "Ok(2)"]"#,
        "{facts}"
    );
}

/// Result and milliseconds of a `timed` fact (`name result ms`).
fn timed(facts: &Facts, name: &str) -> (String, f64) {
    let value = facts.get(name);
    let (result, ms) = value.rsplit_once(' ').expect(value);
    let ms: f64 = ms.parse().unwrap_or_else(|_| panic!("{name}: {value:?}"));
    println!("{name}: {result} after {ms:.1} ms");
    (result.to_string(), ms)
}

/// Python's `test_event` / `test_waitfor_timeout` / `test_timeout`: waits
/// nobody ends give up after their timeout (200 ms), not before, and not
/// long after.
#[test]
fn timed_waits_give_up_after_their_timeout() {
    let facts = statekit(&["timeouts"]);
    for (name, expected) in [
        ("event", "false"),
        ("condition", "Ok(false)"),
        ("condition_wait_for", "Ok(false)"),
        ("semaphore", "Err(Timeout)"),
        ("lock", "Err(Timeout)"),
        ("barrier", "Err(Broken)"),
    ] {
        let (result, ms) = timed(&facts, name);
        assert_eq!(result, expected, "{name}\n{facts}");
        assert!((199.0..2000.0).contains(&ms), "{name}: {ms} ms\n{facts}");
    }
    assert_eq!(facts.get("holder_exitcode"), "Some(0)", "{facts}");
    // The timed-out wait broke the barrier: the next wait fails at once.
    assert_eq!(facts.get("barrier_broken"), "true", "{facts}");
    let (result, ms) = timed(&facts, "barrier_after");
    assert_eq!(result, "Err(Broken)", "{facts}");
    assert!(
        ms < 2000.0,
        "a broken barrier fails at once, not after {ms} ms"
    );
}

/// The same waits return true (or succeed) when another process wakes them.
#[test]
fn waits_woken_by_another_process_succeed() {
    let facts = statekit(&["wakeups"]);
    for (name, expected) in [
        ("event", "true"),
        ("condition", "Ok(true)"),
        ("semaphore", "Ok(())"),
    ] {
        let (result, ms) = timed(&facts, name);
        assert_eq!(result, expected, "{name}\n{facts}");
        assert!(ms < 2000.0, "{name}: {ms} ms\n{facts}");
    }
    let (barrier, _) = timed(&facts, "barrier");
    assert!(["Ok(0)", "Ok(1)"].contains(&barrier.as_str()), "{facts}");
    assert_eq!(facts.get("waker_exitcode"), "Some(0)", "{facts}");
}

/// Python's `test_notify`: with two processes waiting, `notify()` wakes
/// exactly one, round after round — also when it lands while the second
/// waiter has released the lock but is not asleep yet.
#[test]
fn notify_wakes_exactly_one_of_two_waiters() {
    let facts = statekit(&["notify_one", "25"]);
    assert_eq!(
        facts.get("woken_per_round"),
        format!("{:?}", [1; 25]),
        "{facts}"
    );
    assert_eq!(facts.get("waiter_exitcode"), "Some(0)", "{facts}");
}

/// `Lock.locked()` (CPython: `_TestLock.test_lock`'s `locked` checks): true
/// while this process or another holds the lock, false once released or
/// its holder is gone.
#[test]
fn lock_locked_reports_a_holder_in_any_process() {
    let facts = statekit(&["lock_locked"]);
    for (name, expected) in [
        ("free", "false"),
        ("held_here", "true"),
        ("released", "false"),
        ("held_there", "true"),
        ("holder_gone", "false"),
    ] {
        assert_eq!(facts.get(name), expected, "{name}\n{facts}");
    }
}

/// A barrier's `action` and default `timeout` (CPython:
/// `_TestBarrier.test_action`, `test_abort_and_reset`'s failing action,
/// `test_default_timeout`): the action runs once per pass, in one party,
/// before any party passes, also when the barrier travelled to other
/// processes; a failing action breaks the barrier (its error goes to the
/// party that ran it); `wait()` gives up after the default timeout.
#[test]
fn barrier_action_runs_once_before_anyone_passes_and_timeout_applies() {
    let facts = statekit(&["barrier_action"]);
    assert_eq!(facts.get("runs"), "5", "{facts}");
    assert_eq!(facts.get("seen_here"), "[1, 2, 3, 4, 5]", "{facts}");
    assert_eq!(
        facts.get("seen_there"),
        "[1, 1, 2, 2, 3, 3, 4, 4, 5, 5]",
        "{facts}"
    );
    assert_eq!(facts.get("party_exitcode"), "Some(0)", "{facts}");
    assert!(facts.get("failing_action").contains("no thanks"), "{facts}");
    assert_eq!(facts.get("failing_broken"), "true", "{facts}");
    assert_eq!(facts.get("failing_then"), "Err(Broken)", "{facts}");
    assert!(
        facts.get("unknown_action").starts_with("Some(Other("),
        "{facts}"
    );
    assert_eq!(facts.get("default_timeout"), "Some(200ms)", "{facts}");
    let (result, ms) = timed(&facts, "timed_wait");
    assert_eq!(result, "Err(Broken)", "{facts}");
    assert!((199.0..2000.0).contains(&ms), "{ms} ms\n{facts}");
}

/// `ShareableList` negative indices, `index` and `count` (CPython:
/// `_TestSharedMemory.test_shared_memory_ShareableList_basics`).
#[test]
fn shareable_list_takes_negative_indices_and_has_index_and_count() {
    let facts = statekit(&["shareable_list"]);
    for (name, expected) in [
        ("get_minus_1", r#"Ok(Some(Str("x")))"#),
        ("get_minus_4", "Ok(Some(Int(7)))"),
        ("get_minus_5", "true"),
        (
            "after_set",
            r#"[Some(Int(7)), None, Some(Int(8)), Some(Str("x"))]"#,
        ),
        ("index_7", "Ok(Some(0))"),
        ("index_8", "Ok(Some(2))"),
        ("index_9", "Ok(None)"),
        ("count_7", "Ok(1)"),
        ("count_none", "Ok(1)"),
    ] {
        assert_eq!(facts.get(name), expected, "{name}\n{facts}");
    }
}

/// `del ns.x` on a manager namespace (CPython: `_TestNamespace`), and the
/// `SyncManager` makers: their objects work from another process.
#[test]
fn manager_namespace_deletes_and_makes_sync_objects() {
    let facts = statekit(&["manager"]);
    for (name, expected) in [
        ("contains_before", "Ok(true)"),
        ("delete", "Ok(())"),
        ("after_delete", "Ok(None) Ok(false)"),
        ("delete_again_is_err", "true"),
        ("managed_queue", r#"Ok("from child")"#),
        ("managed_event", "true"),
        ("managed_barrier", "true"),
        ("managed_value", "6"),
        ("managed_array", "[1, 20, 3]"),
        ("managed_child", "Some(0)"),
        ("other_makers", "2 true true 1 0"),
    ] {
        assert_eq!(facts.get(name), expected, "{name}\n{facts}");
    }
}

/// An index past an array is an error the guest gets back, from main or a
/// child; the host carries on and the run exits 0.
#[test]
fn out_of_bounds_array_indices_are_guest_errors() {
    let facts = statekit(&["array_bounds"]);
    for name in [
        "get",
        "get_max",
        "set",
        "read",
        "write",
        "write_max",
        "fetch_add",
        "child_get",
        "child_set",
        "shm_read",
        "shm_read_max",
        "shm_write",
    ] {
        assert!(facts.get(name).starts_with("Err("), "{name}\n{facts}");
    }
    assert_eq!(
        facts.get("get"),
        "Err(IndexOutOfRange { index: 10, len: 10 })"
    );
    // Python's a[6:5]: empty, not an error.
    assert_eq!(facts.get("read_reversed"), "Ok([])", "{facts}");
    assert_eq!(facts.get("child_exitcode"), "Some(0)", "{facts}");
    assert_eq!(facts.get("in_range"), "Ok(7) Ok([1, 2, 0])", "{facts}");
    assert_eq!(facts.get("shm_in_range"), "Ok([1, 2])", "{facts}");
}

/// A process holds a region only through a handle the host gave it: a
/// forged token, another kind's token or a name never created gets nothing.
#[test]
fn a_region_without_a_handle_is_out_of_reach() {
    let facts = statekit(&["forged"]);
    for name in [
        "forged 0",
        "forged 1",
        "forged 12345",
        "forged 18446744073709551615",
    ] {
        let value = facts.get(name);
        assert!(value.starts_with("Err("), "{name}: {value}\n{facts}");
        assert!(
            value.contains("not valid in this process"),
            "{name} is refused as an invalid handle: {value}"
        );
    }
    assert_eq!(facts.get("real_token"), "Ok(41)", "{facts}");
    for name in ["real_near", "real_longer", "lock_token"] {
        assert!(facts.get(name).starts_with("Err("), "{name}\n{facts}");
    }
    assert_eq!(facts.get("forged_args_exitcode"), "Some(1)", "{facts}");
    assert_eq!(facts.get("real_after"), "42", "{facts}");
    assert!(facts.get("attach_unknown").starts_with("Err("), "{facts}");
    assert_eq!(facts.get("attach_named"), "Ok([104, 105])", "{facts}");
    assert!(facts.get("attach_unlinked").starts_with("Err("), "{facts}");
}

/// Python's managers keep their containers in the manager process: a user
/// killed mid-update takes nothing with it.
#[test]
fn a_manager_dict_outlives_a_killed_user() {
    let facts = statekit(&["manager_kill"]);
    assert_eq!(facts.get("filler_exitcode"), "Some(-9)", "{facts}");
    assert_eq!(facts.get("enough"), "true", "{facts}");
    assert_eq!(facts.get("consistent"), "true", "{facts}");
    assert_eq!(facts.get("len_matches"), "true", "{facts}");
    assert_eq!(
        facts.get("main_entry"),
        r#"Ok(Some("from main"))"#,
        "{facts}"
    );
    assert_eq!(facts.get("after"), r#"Ok(Some("changed"))"#, "{facts}");
}
