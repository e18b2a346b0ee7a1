//! CPython's multiprocessing test suite, ported: the guest behind
//! `tests/conformance.rs`.
//!
//! Each `#[task]` named `<Class>__<method>` is one test method of CPython's
//! `Lib/test/_test_multiprocessing.py` (the class without its leading
//! underscore), asserting what the CPython method asserts, adapted to Rust
//! types; its doc comment names the method and says where the port had to
//! differ. The other tasks are the targets of the processes and pools the
//! tests start (CPython's `_test_*` class methods), named after them.
//!
//! `mpwasm run conform.wasm TestQueue__test_put` runs one method as the
//! main process, where CPython runs it: in the test process itself. It
//! exits with 0 if every check held; otherwise it prints `Error: …` with
//! the failed check's file, line and values, and exits with 1.
//!
//! Ported from CPython (`Lib/test/_test_multiprocessing.py`), Copyright ©
//! 2001 Python Software Foundation; used under the PSF License Agreement
//! version 2.

// The task names are CPython's `Class.method`, joined by `__`.
#![allow(
    non_snake_case,
    reason = "tasks are named after CPython's test methods"
)]

mod check;

mod barrier;
mod condition;
mod connection;
mod containers;
mod lock;
mod pool;
mod process;
mod queue;
mod queue_shutdown;
mod shared;

use mpwasm_guest::{Error, Result};

/// A ported test method.
type Method = fn() -> Result<()>;

/// Lists the ported methods, module by module, as `(name, method)` pairs.
macro_rules! ported {
    ($($module:ident => [$($method:ident),* $(,)?]),* $(,)?) => {
        /// Every ported method, by its task name.
        const PORTED: &[(&str, Method)] = &[
            $($((stringify!($method), $module::$method as Method),)*)*
        ];
    };
}

ported! {
    process => [
        TestProcess__test_process,
        TestProcess__test_args_argument,
        TestProcess__test_daemon_argument,
        TestProcess__test_parent_process_attributes,
        TestProcess__test_terminate,
        TestProcess__test_kill,
        TestProcess__test_cpu_count,
        TestProcess__test_active_children,
        TestProcess__test_recursion,
        TestProcess__test_sentinel,
        TestProcess__test_close,
        TestProcess__test_many_processes,
        TestProcess__test_sys_exit,
        TestSubclassingProcess__test_subclassing,
        TestStartMethod__test_nested_startmethod,
        TestStdinBadfiledescriptor__test_queue_in_process,
        TestStdinBadfiledescriptor__test_pool_in_process,
    ],
    queue_shutdown => [
        TestQueue__test_shutdown_empty,
        TestQueue__test_shutdown_nonempty,
        TestQueue__test_shutdown_immediate,
        TestQueue__test_shutdown_immediate_with_unfinished,
    ],
    queue => [
        TestQueue__test_put,
        TestQueue__test_get,
        TestQueue__test_fork,
        TestQueue__test_qsize,
        TestQueue__test_task_done,
        TestQueue__test_timeout,
        TestQueue__test_queue_feeder_donot_stop_onexc,
        TestQueue__test_closed_queue_put_get_exceptions,
        TestSimpleQueue__test_empty,
        TestSimpleQueue__test_close,
    ],
    lock => [
        TestLock__test_lock_locked_2processes,
        TestLock__test_lock,
        TestLock__test_rlock,
        TestLock__test_lock_context,
        TestLock__test_rlock_context,
        TestSemaphore__test_semaphore,
        TestSemaphore__test_bounded_semaphore,
        TestSemaphore__test_timeout,
    ],
    condition => [
        TestCondition__test_notify,
        TestCondition__test_notify_all,
        TestCondition__test_notify_n,
        TestCondition__test_timeout,
        TestCondition__test_waitfor,
        TestCondition__test_waitfor_timeout,
        TestCondition__test_wait_result,
        TestEvent__test_event,
    ],
    barrier => [
        TestBarrier__test_action,
        TestBarrier__test_default_timeout,
        TestBarrier__test_barrier,
        TestBarrier__test_barrier_10,
        TestBarrier__test_wait_return,
        TestBarrier__test_abort,
        TestBarrier__test_reset,
        TestBarrier__test_abort_and_reset,
        TestBarrier__test_timeout,
        TestBarrier__test_single_thread,
        TestBarrier__test_thousand,
    ],
    shared => [
        TestValue__test_value,
        TestValue__test_rawvalue,
        TestArray__test_array,
        TestArray__test_rawarray,
        TestArray__test_array_from_size,
        TestSharedCTypes__test_sharedctypes,
        TestSharedCTypes__test_synchronize,
        TestSharedMemory__test_shared_memory_basics,
        TestSharedMemory__test_shared_memory_across_processes,
        TestSharedMemory__test_shared_memory_pickle_unpickle,
        TestSharedMemory__test_shared_memory_pickle_unpickle_dead_object,
        TestSharedMemory__test_invalid_shared_memory_creation,
        TestSharedMemory__test_shared_memory_name_with_embedded_null,
        TestSharedMemory__test_shared_memory_ShareableList_basics,
        TestSharedMemory__test_shared_memory_ShareableList_pickling,
    ],
    containers => [
        TestContainers__test_namespace,
        TestSyncManagerTypes__test_event,
        TestSyncManagerTypes__test_lock,
        TestSyncManagerTypes__test_rlock,
        TestSyncManagerTypes__test_semaphore,
        TestSyncManagerTypes__test_bounded_semaphore,
        TestSyncManagerTypes__test_condition,
        TestSyncManagerTypes__test_barrier,
        TestSyncManagerTypes__test_queue,
        TestSyncManagerTypes__test_joinable_queue,
        TestSyncManagerTypes__test_value,
        TestSyncManagerTypes__test_array,
        TestContainers__test_list,
        TestContainers__test_list_proxy_in_list,
        TestContainers__test_dict,
        TestContainers__test_dict_proxy_nested,
        TestContainers__test_nested_queue,
        TestSyncManagerTypes__test_list,
        TestSyncManagerTypes__test_dict,
        TestSyncManagerTypes__test_namespace,
    ],
    pool => [
        TestPool__test_apply,
        TestPool__test_map,
        TestPool__test_starmap,
        TestPool__test_starmap_async,
        TestPool__test_map_async,
        TestPool__test_map_chunksize,
        TestPool__test_async,
        TestPool__test_async_timeout,
        TestPool__test_imap,
        TestPool__test_imap_unordered,
        TestPool__test_make_pool,
        TestPool__test_terminate,
        TestPool__test_empty_iterable,
        TestPool__test_context,
        TestPool__test_traceback,
        TestPool__test_wrapped_exception,
        TestPool__test_map_no_failfast,
        TestPool__test_map_unplicklable,
        TestPoolWorkerErrors__test_unpickleable_result,
        MiscTestCase__test_large_pool,
        TestPool__test_map_async_callbacks,
        TestPoolWorkerErrors__test_async_error_callback,
        TestPoolWorkerLifetime__test_pool_worker_lifetime,
        TestPoolWorkerLifetime__test_pool_worker_lifetime_early_close,
        TestPoolWorkerLifetime__test_pool_maxtasksperchild_invalid,
        TestInitializers__test_pool_initializer,
    ],
    connection => [
        TestConnection__test_sendbytes,
        TestConnection__test_connection,
        TestConnection__test_duplex_false,
        TestConnection__test_spawn_close,
        TestConnection__test_context,
        TestPoll__test_empty_string,
        TestPoll__test_strings,
        TestPoll__test_boundaries,
        TestPoll__test_dont_merge,
        TestPicklingConnections__test_access,
        TestWait__test_wait,
        TestWait__test_wait_slow,
        TestWait__test_wait_timeout,
        TestWait__test_wait_integer,
        TestWait__test_neg_timeout,
    ],
}

#[mpwasm_guest::main]
fn main() -> Result<()> {
    let name = std::env::args().nth(1).unwrap_or_default();
    let Some((_, method)) = PORTED.iter().find(|(n, _)| *n == name) else {
        return Err(Error::Other(format!(
            "usage: conform.wasm <Class__method>; no ported method {name:?}"
        )));
    };
    let outcome = method();
    if outcome.is_err() {
        // A failed check can leave children blocked (on an event never
        // set, a queue never fed); the run would join them forever.
        for child in mpwasm_guest::active_children() {
            let _ = child.kill();
        }
    }
    outcome
}
