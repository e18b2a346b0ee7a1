//! [`PoolBuilder`]: a pool's options, and starting its workers.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use super::driver::Driver;
use super::{Inner, Pool, Shared};
use crate::broker::budget::Places;
use crate::broker::{Broker, Launch, PoolDefaults};
#[cfg(doc)]
use crate::error::TaskErrorKind;
use crate::error::{Error, Result};
use crate::load::{Cache, CompiledGuest};
use crate::wire::{DirGrant, Sandbox};

/// Options for a [`Pool`]; made by [`Pool::builder`].
#[derive(Debug, Clone)]
pub struct PoolBuilder {
    guest: PathBuf,
    processes: Option<usize>,
    chunksize: Option<usize>,
    program: Option<PathBuf>,
    cache: Option<Cache>,
    stdout_to_stderr: bool,
    sandbox: Sandbox,
    inherit_env: bool,
    retries: u32,
    maxtasksperchild: Option<u64>,
    /// The task each worker runs first, and its argument (bincode).
    initializer: Option<(String, Result<Vec<u8>, String>)>,
    /// A guest pool: the broker of the run it belongs to (its guest is
    /// compiled already), and the places its workers take among the run's
    /// processes.
    broker: Option<(Arc<Broker>, Arc<Places>)>,
    /// Send the chunks to this cluster instead of local workers.
    cluster: Option<crate::cluster::ClusterOptions>,
    /// Send the chunks of the pools the run's guests create to this
    /// cluster.
    guest_pools_cluster: Option<crate::cluster::ClusterOptions>,
}

impl Pool {
    /// A pool started by a guest of `broker`'s run: same guest, program and
    /// sandbox; its workers' upcalls go to the same broker.
    pub(crate) fn for_broker(
        broker: Arc<Broker>,
        processes: usize,
        options: crate::interfaces::pool::Options,
    ) -> Result<Pool> {
        let launch = broker.launch().clone();
        let mut builder = PoolBuilder::new(launch.guest.source().to_path_buf());
        builder.processes = Some(processes);
        builder.program = Some(launch.program);
        builder.stdout_to_stderr = launch.stdout_to_stderr;
        builder.sandbox = launch.sandbox;
        builder.retries = launch.pools.retries;
        builder.maxtasksperchild = options.maxtasksperchild.or(launch.pools.maxtasksperchild);
        builder.cluster = launch.pools.cluster;
        builder.initializer = options.initializer.map(|(task, args)| (task, Ok(args)));
        if let Some(cluster) = &builder.cluster {
            // Queues the pool's tasks receive may be used from other hosts.
            let weak = Arc::downgrade(&broker);
            broker.queues_or_init(|| crate::cluster::queue::Queues::caller(cluster, weak))?;
        }
        let places = broker
            .process_count()
            .reserve(processes, "a pool")
            .map_err(|e| Error::Limit(e.to_string()))?;
        builder.broker = Some((broker, Arc::new(places)));
        builder.build()
    }
}

impl PoolBuilder {
    pub(super) fn new(guest: PathBuf) -> Self {
        PoolBuilder {
            guest,
            processes: None,
            chunksize: None,
            program: None,
            cache: None,
            stdout_to_stderr: false,
            sandbox: Sandbox::default(),
            inherit_env: false,
            retries: 0,
            maxtasksperchild: None,
            initializer: None,
            broker: None,
            cluster: None,
            guest_pools_cluster: None,
        }
    }

    /// Runs the pool's tasks on the worker hosts of a NATS JetStream
    /// cluster (`mpwasm serve --cluster URL`) instead of local worker
    /// processes: every method gives the same results and errors as a
    /// local pool. `processes` then counts the chunks kept in flight
    /// (CPython's default chunk size is cut for it). The guest is published
    /// to the cluster under its hash; the hosts' sandbox options are a
    /// ceiling for this pool's memory cap, deadline and fuel, and only the
    /// hosts grant directories or environment.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> mpwasm::Result<()> {
    /// let pool = mpwasm::Pool::builder("pool_square.wasm")
    ///     .cluster("nats://127.0.0.1:4222")
    ///     .processes(8)
    ///     .build()?;
    /// let squares: Vec<i64> = pool.map("square", 0i64..1000)?;
    /// # Ok(()) }
    /// ```
    pub fn cluster(self, url: impl Into<String>) -> Self {
        self.cluster_options(crate::cluster::ClusterOptions::new(url))
    }

    /// [`cluster`](Self::cluster) with credentials, TLS and storage options.
    pub fn cluster_options(mut self, options: crate::cluster::ClusterOptions) -> Self {
        self.cluster = Some(options);
        self
    }

    /// Sends the chunks of the pools this run's guests create (a guest's
    /// `Pool::new` or `Pool::builder`) to the worker hosts of a NATS
    /// JetStream cluster, as [`cluster_options`](Self::cluster_options)
    /// does for this pool; this pool's own workers, the guest's `Process`es,
    /// queues and pipes stay local. `mpwasm run --cluster URL` sets it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn main() -> mpwasm::Result<()> {
    /// let cluster = mpwasm::ClusterOptions::new("nats://127.0.0.1:4222");
    /// let code = mpwasm::Pool::builder("poolkit.wasm")
    ///     .processes(1)
    ///     .guest_pools_cluster(cluster)
    ///     .build()?
    ///     .run_main()?;
    /// # Ok(()) }
    /// ```
    pub fn guest_pools_cluster(mut self, options: crate::cluster::ClusterOptions) -> Self {
        self.guest_pools_cluster = Some(options);
        self
    }

    /// A worker host's pool for a cluster caller's chunks: this builder's
    /// sandbox, lowered to what the caller asked (never raised), for the
    /// guest at `guest`.
    pub(crate) fn for_cluster_chunk(
        mut self,
        guest: PathBuf,
        processes: usize,
        asked: &crate::cluster::Limits,
    ) -> Self {
        fn lower<T: Ord>(ceiling: Option<T>, asked: Option<T>) -> Option<T> {
            match (ceiling, asked) {
                (Some(c), Some(a)) => Some(c.min(a)),
                (c, a) => c.or(a),
            }
        }
        self.guest = guest;
        self.processes = Some(processes);
        self.sandbox.memory = lower(self.sandbox.memory, asked.memory);
        self.sandbox.timeout = lower(
            self.sandbox.timeout,
            asked.timeout_ms.map(std::time::Duration::from_millis),
        );
        self.sandbox.fuel = lower(self.sandbox.fuel, asked.fuel);
        self.retries = asked.retries.min(crate::cluster::MAX_RETRIES);
        // The host's chunk is one unit: its deadline and fuel scale with it.
        self.chunksize = None;
        self.initializer = None;
        self.cluster = None;
        self.guest_pools_cluster = None;
        self
    }

    /// Number of worker processes. Default: the machine's available
    /// parallelism (Python's `os.cpu_count()`).
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// Inputs per chunk sent to a worker. Default: CPython's
    /// `ceil(len / (4 * processes))` when the input length is known; for
    /// streaming input, chunks start at 1 and double up to 4096.
    pub fn chunksize(mut self, n: usize) -> Self {
        self.chunksize = Some(n);
        self
    }

    /// The program to start as a worker process. Default: the current
    /// executable, which must call [`crate::init`] first thing in `main`.
    /// Point it at the `mpwasm` binary to embed without that, or at the
    /// runtime-only `mpwasm-worker` (`scripts/build-worker.sh`) for workers
    /// that carry no compiler. For the default and for a program named
    /// `mpwasm`, an `mpwasm-worker` of the same build in the same directory
    /// is started instead when there is one.
    pub fn worker_program(mut self, path: impl Into<PathBuf>) -> Self {
        self.program = Some(path.into());
        self
    }

    /// Where compiled guests are cached. Default: [`Cache::default_location`].
    pub fn cache(mut self, cache: Cache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Sends the guests' stdout to stderr (what `mpwasm pool` does, so its
    /// stdout carries only results). Default: guests' stdout is inherited.
    pub fn guest_stdout_to_stderr(mut self, yes: bool) -> Self {
        self.stdout_to_stderr = yes;
        self
    }

    /// Caps each worker's guest memory at `bytes` (a guest's linear memory
    /// cannot grow past it). A task that needs more fails with
    /// [`TaskErrorKind::ResourceLimit`]; its worker starts a fresh instance.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.sandbox.memory = Some(bytes);
        self
    }

    /// Stops any input that runs longer than `timeout`: it fails with
    /// [`TaskErrorKind::Timeout`] and its worker starts a fresh instance
    /// (or is replaced, if it does not stop within 100 ms).
    ///
    /// Deadlines apply per chunk (`timeout` times its length), so with a
    /// deadline the chunk size defaults to 1: each input has its own.
    pub fn task_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.sandbox.timeout = Some(timeout);
        self
    }

    /// Gives each input a budget of `fuel` units (roughly, wasm
    /// instructions): a deterministic limit, unlike a deadline. An input
    /// that runs out fails with [`TaskErrorKind::ResourceLimit`]. Metering
    /// slows guest code down and compiles a separate artifact. Per chunk,
    /// like [`task_timeout`](PoolBuilder::task_timeout).
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.sandbox.fuel = Some(fuel);
        self
    }

    /// Lets guests open the host directory `host` as `guest` (read-only if
    /// `read_only`). Guests see no filesystem otherwise.
    pub fn preopen_dir(
        mut self,
        host: impl Into<PathBuf>,
        guest: impl Into<String>,
        read_only: bool,
    ) -> Self {
        self.sandbox.dirs.push(DirGrant {
            host: host.into(),
            guest: guest.into(),
            read_only,
        });
        self
    }

    /// Sets an environment variable for guests. Guests see no environment
    /// otherwise.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.sandbox.env.push((key.into(), value.into()));
        self
    }

    /// Gives guests this process's whole environment (read when the pool is
    /// built), in addition to variables set with [`env`](PoolBuilder::env).
    pub fn inherit_env(mut self) -> Self {
        self.inherit_env = true;
        self
    }

    /// Program arguments for [`Pool::run_main`] (the guest's
    /// `std::env::args()`); the first is the program's name.
    pub fn args(mut self, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.sandbox.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Re-runs inputs whose worker process died (was killed, ran out of
    /// memory) up to `n` more times before failing them with
    /// [`TaskErrorKind::WorkerLost`]. Default 0. Panics, traps and deadlines
    /// are the task's own failures and are never retried.
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// Replaces each worker process after it has run `n` inputs (Python's
    /// `maxtasksperchild`), bounding what a leaky guest can accumulate.
    pub fn maxtasksperchild(mut self, n: u64) -> Self {
        self.maxtasksperchild = Some(n);
        self
    }

    /// Runs `task` on `args` in each worker process before its first input,
    /// and again whenever its instance is reset after a trap (Python's
    /// `initializer` and `initargs`): the place to set up per-worker state.
    /// If it fails, the inputs that worker was given fail with the
    /// initializer's error (kind and message) and the worker is replaced;
    /// unlike CPython, whose pool restarts a failing initializer forever.
    pub fn initializer(mut self, task: impl Into<String>, args: impl serde::Serialize) -> Self {
        let args = bincode::serde::encode_to_vec(&args, bincode::config::standard())
            .map_err(|e| e.to_string());
        self.initializer = Some((task.into(), args));
        self
    }

    /// Most bytes the parent may hold on behalf of the run's guests
    /// (`--host-memory`): spilled queue items, manager containers and
    /// their entries, guest pools' inputs and unread results, process names
    /// and arguments, handles in transit and the objects themselves. A
    /// guest request past it fails with a `limit` error in the guest and
    /// the parent stays within it. Default
    /// [`MAX_HOST_MEMORY`](crate::limits::MAX_HOST_MEMORY) (1 GiB). It does
    /// not cover guests' own linear memory ([`memory_limit`]) nor shared
    /// memory regions.
    ///
    /// [`memory_limit`]: PoolBuilder::memory_limit
    pub fn host_memory(mut self, bytes: u64) -> Self {
        self.sandbox.host_memory = Some(bytes);
        self
    }

    /// Most bytes of shared memory the run's guests may have at once
    /// (`--shared-memory`): every region (`Value`, `Array`,
    /// `SharedMemory`) counts its size until its last holder lets go, and
    /// every queue the kernel's send buffer of its socket (about 2 MiB),
    /// which unread items fill, and every pipe end enlarged for messages
    /// over 64 KiB 8 MiB. Past it, creating one fails with a `limit`
    /// error in the guest. Default
    /// [`MAX_SHARED_MEMORY`](crate::limits::MAX_SHARED_MEMORY) (1 GiB).
    /// Neither guests' linear memory ([`memory_limit`]) nor what the parent
    /// holds ([`host_memory`]) counts here.
    ///
    /// [`memory_limit`]: PoolBuilder::memory_limit
    /// [`host_memory`]: PoolBuilder::host_memory
    pub fn shared_memory(mut self, bytes: u64) -> Self {
        self.sandbox.shared_memory = Some(bytes);
        self
    }

    /// Most queues, regions, locks and other primitives alive at once in
    /// one run (`--max-objects`), each of which holds descriptors in the
    /// parent: creating one more fails with a `limit` error in the guest.
    /// (Manager containers hold only the parent's memory: [`host_memory`]
    /// pays for them.) Default
    /// [`MAX_OBJECTS`](crate::limits::MAX_OBJECTS).
    ///
    /// [`host_memory`]: PoolBuilder::host_memory
    pub fn max_objects(mut self, n: u32) -> Self {
        self.sandbox.max_objects = Some(n);
        self
    }

    /// Most worker processes alive at once in one run (`--max-processes`):
    /// this pool's workers, the main process, every process a guest starts
    /// and every worker of the pools guests create. A guest's start or pool
    /// past it fails with a `limit` error in the guest; a pool built with
    /// more processes than this is an [`Error::Config`]. Default
    /// [`MAX_PROCESSES`](crate::limits::MAX_PROCESSES).
    pub fn max_processes(mut self, n: u32) -> Self {
        self.sandbox.max_processes = Some(n);
        self
    }

    /// Largest task input, queue item, pipe message or process argument,
    /// in bytes (`--max-message`): a larger task input ends its job with
    /// [`Error::Encode`]; a larger message fails with a `limit` error in the
    /// guest. Default
    /// [`MAX_MESSAGE_BYTES`](crate::limits::MAX_MESSAGE_BYTES).
    pub fn max_message(mut self, bytes: u64) -> Self {
        self.sandbox.max_message = Some(bytes);
        self
    }

    /// Loads (compiling once into the cache) the guest and starts the
    /// worker processes.
    ///
    /// # Errors
    ///
    /// [`Error::Load`] for a guest that cannot be used, [`Error::Config`] for
    /// zero processes or chunk size, [`Error::Spawn`] if the worker program
    /// cannot be found or this process is itself a worker.
    pub fn build(self) -> Result<Pool> {
        if std::env::var_os(crate::worker::WORKER_ENV).is_some() {
            return Err(Error::Spawn(
                "this process was started as an mpwasm worker: call mpwasm::init() first thing in main".into(),
            ));
        }
        let processes = match self.processes {
            Some(0) => return Err(Error::Config("processes must be at least 1".into())),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        if self.chunksize == Some(0) {
            return Err(Error::Config("chunksize must be at least 1".into()));
        }
        if self.maxtasksperchild == Some(0) {
            return Err(Error::Config("maxtasksperchild must be at least 1".into()));
        }
        let initializer = match self.initializer {
            Some((task, Ok(args))) => {
                let mut batch = crate::batch::Batch::new();
                batch.push(&args);
                Some((Arc::<str>::from(task), batch))
            }
            Some((task, Err(e))) => {
                return Err(Error::Encode(format!("initargs of `{task}`: {e}")))
            }
            None => None,
        };
        if self.sandbox.timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::Config("task timeout must be positive".into()));
        }
        let mut sandbox = self.sandbox;
        if self.inherit_env {
            let set: Vec<String> = sandbox.env.iter().map(|(k, _)| k.clone()).collect();
            sandbox.env.extend(
                std::env::vars()
                    .filter(|(k, _)| !set.contains(k) && k != crate::worker::WORKER_ENV),
            );
        }
        // Per-input limits need one input per chunk unless told otherwise.
        let chunksize = match self.chunksize {
            None if sandbox.timeout.is_some() || sandbox.fuel.is_some() => Some(1),
            other => other,
        };
        let program = match self.program {
            Some(p) => crate::worker::program::resolve(&p, false),
            None => crate::worker::program::resolve(
                &std::env::current_exe().map_err(|e| {
                    Error::Spawn(format!("cannot find the current executable: {e}"))
                })?,
                true,
            ),
        };
        let cache = self.cache.clone();
        if self.broker.is_none() && crate::python::is_program(&self.guest) {
            sandbox.env.extend(crate::python::program_env(&self.guest)?);
        }
        let (broker, places) = match self.broker {
            Some(run) => run,
            None => {
                let cache = self.cache.unwrap_or_else(Cache::default_location);
                let guest: CompiledGuest =
                    cache.load_for(&self.guest, crate::engine::Checks::of(&sandbox))?;
                let broker = Broker::new(Launch {
                    program,
                    guest,
                    sandbox,
                    stdout_to_stderr: self.stdout_to_stderr,
                    pools: PoolDefaults {
                        retries: self.retries,
                        maxtasksperchild: self.maxtasksperchild,
                        cluster: self.guest_pools_cluster,
                    },
                    zygote: crate::zygote::Lease::new(),
                });
                let places = broker
                    .process_count()
                    .reserve(processes, "the pool")
                    .map_err(|e| Error::Config(e.to_string()))?;
                (broker, Arc::new(places))
            }
        };
        let shared = Arc::new(Shared {
            broker,
            retries: self.retries,
            maxtasksperchild: self.maxtasksperchild,
            initializer,
            _places: places,
            terminated: AtomicBool::new(false),
            workers: Mutex::new((0..processes).map(|_| None).collect()),
        });
        let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded();
        let (terminate_tx, terminated) = crossbeam_channel::bounded(0);
        let mut drivers = Vec::with_capacity(processes);
        let local_workers = if self.cluster.is_some() { 0 } else { processes };
        if let Some(options) = self.cluster {
            let cache = cache.unwrap_or_else(Cache::default_location);
            drivers.push(crate::cluster::start_caller(
                options,
                shared.clone(),
                cache,
                jobs_rx.clone(),
                terminated.clone(),
            )?);
        }
        for id in 0..local_workers {
            let driver = Driver::new(id as u32, shared.clone());
            let jobs = jobs_rx.clone();
            let stop = terminated.clone();
            let handle = std::thread::Builder::new()
                .name(format!("mpwasm-worker-{id}"))
                .spawn(move || driver.run(jobs, stop))
                .map_err(|e| Error::Spawn(format!("cannot start a driver thread: {e}")))?;
            drivers.push(handle);
        }
        Ok(Pool {
            inner: Arc::new(Inner {
                shared,
                processes,
                chunksize,
                jobs: Mutex::new(Some(jobs_tx)),
                terminated,
                terminate_tx: Mutex::new(Some(terminate_tx)),
                drivers: Mutex::new(drivers),
                collectors: Mutex::new(Vec::new()),
            }),
        })
    }
}
