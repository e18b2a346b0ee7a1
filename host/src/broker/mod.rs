//! The broker: the parent's side of every upcall.
//!
//! Each worker process of a run (the main process, the processes guests
//! start, pool workers) is a *caller* here, served by the host thread that
//! drives it ([`crate::worker::spawn::WorkerProcess`] hands each upcall to
//! [`Broker::handle`]). The broker keeps the run's objects — processes,
//! queues, pools, jobs — under ids, remembers which caller holds which, and
//! mints the tokens handles travel as. What each call does lives in the
//! interface module it belongs to (`crate::interfaces::*`); this module is
//! the registry and the dispatcher.
//!
//! Ids and tokens from a worker are untrusted: an id the caller does not
//! hold, or a token never minted, is `InvalidHandle`, whoever asks.
//!
//! # Tokens
//!
//! A token is a *bearer* capability within one run: 64 random bits naming
//! an object, which any process of the run that presents it may redeem (a
//! handle in a queue item or a manager dict may reach any process). Each
//! object has one token, minted on its first `share`. Every `share` counts
//! one reference *in transit*, which keeps the object alive until a
//! redemption takes it (so a handle sent and then dropped by a sender that
//! exits still arrives), and costs [`TOKEN_COST`] of the run's budget. A
//! manager container that stores a value holding handles *keeps* their
//! objects (`keep`: the container is their holder, as a process is), so
//! they can be read back any number of times until the container is
//! cleared or gone — CPython's nested proxies. A
//! connection end's token is good once and holds the end's descriptor
//! until then: each process may have at most
//! [`MAX_CONNECTIONS_IN_TRANSIT`] of them, and they are let go when it
//! ends or its instance is reset (as CPython can unpickle a `Connection`
//! only while its sender lives).
//!
//! # Budgets
//!
//! Every object costs [`OBJECT_COST`] of the run's memory budget
//! ([`budget::Budget`], `--host-memory`) while the broker keeps it; the
//! interfaces charge what they store (spilled items, manager entries, pool
//! inputs and results, process arguments) against the same budget. Worker
//! processes are counted against `--max-processes`
//! ([`budget::ProcessCount`]). What the kernel holds for guests outside
//! any process's heap has budgets of its own: regions and queues' socket
//! buffers take bytes of `--shared-memory`, and every queue, region,
//! primitive is one of `--max-objects` (each holds descriptors in the
//! parent; manager containers, only memory, are paid for by the budget); each object
//! keeps its charges and gives them back when it goes.

pub(crate) mod budget;

use std::collections::{HashMap, HashSet};

use crate::limits::{MAX_CONNECTIONS_IN_TRANSIT, OBJECT_COST, TOKEN_COST};
use budget::{Budget, Charge, Of, ProcessCount};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::interfaces::{manager, pipe, pool, process, queue, shared, sync};
use crate::load::CompiledGuest;
use crate::wire::{Call, CallError, Init, Reply, Sandbox};

/// What every worker process of a run is started with.
#[derive(Clone)]
pub(crate) struct Launch {
    /// The program started in worker mode.
    pub(crate) program: PathBuf,
    /// The guest, compiled.
    pub(crate) guest: CompiledGuest,
    /// Limits and grants.
    pub(crate) sandbox: Sandbox,
    /// Guests' stdout goes to stderr.
    pub(crate) stdout_to_stderr: bool,
    /// Pool options of the run, which the pools its guests create inherit
    /// (`--retries`, `--maxtasksperchild`, `--cluster`).
    pub(crate) pools: PoolDefaults,
    /// The run's zygote, which forks its worker processes.
    pub(crate) zygote: crate::zygote::Lease,
}

/// The options of a run that its guests' pools inherit.
#[derive(Debug, Clone, Default)]
pub(crate) struct PoolDefaults {
    /// Re-runs of an input whose worker died.
    pub(crate) retries: u32,
    /// Inputs a worker runs before it is replaced.
    pub(crate) maxtasksperchild: Option<u64>,
    /// The cluster the guests' pools send their chunks to, if any
    /// (`mpwasm run --cluster URL`).
    pub(crate) cluster: Option<crate::cluster::ClusterOptions>,
}

impl Launch {
    /// What a new worker process is told first: worker `id` of its pool,
    /// called `name`, started by `parent` (pid and name) if a guest started
    /// it.
    pub(crate) fn init(&self, id: u32, name: String, parent: Option<(u32, String)>) -> Init {
        Init {
            artifact: self.guest.artifact().to_path_buf(),
            id,
            name,
            parent,
            stdout_to_stderr: self.stdout_to_stderr,
            sandbox: self.sandbox.clone(),
            window: self.guest.has_window(),
        }
    }
}

/// An object a caller may hold.
#[derive(Clone)]
pub(crate) enum Object {
    /// A worker process: main, a guest-started process, or a pool worker.
    Process(Arc<process::Entry>),
    /// A queue.
    Queue(Arc<queue::Hub>),
    /// A guest pool.
    Pool(Arc<pool::Entry>),
    /// A job running on a guest pool.
    Job(Arc<pool::Job>),
    /// A shared memory region.
    Region(Arc<shared::Hub>),
    /// A lock, semaphore, event, condition or barrier.
    Sync(Arc<sync::Hub>),
    /// A manager list, dict or namespace.
    Proxy(Arc<manager::Proxy>),
}

/// What a token stands for.
enum Grant {
    /// An object; the token may be redeemed any number of times while the
    /// object lives.
    Object(u64),
    /// A connection end, kept only until the token is redeemed, once; and
    /// the process that sent it.
    Connection(pipe::End, u64),
}

/// The registry.
#[derive(Default)]
struct State {
    next_id: u64,
    objects: HashMap<u64, Object>,
    /// Per caller, the ids it holds and how many handles on each.
    held: HashMap<u64, HashMap<u64, u32>>,
    /// Per object, how many callers hold it (so letting go is O(1)).
    holders: HashMap<u64, u32>,
    tokens: HashMap<u64, Grant>,
    /// Per object, its token (minted on the first `share`).
    token_of: HashMap<u64, u64>,
    /// Per object, references shared and not yet redeemed: they keep it.
    in_transit: HashMap<u64, u32>,
    /// Per process, the connection ends it shared that wait to be redeemed.
    connections: HashMap<u64, HashSet<u64>>,
    /// Named regions: kept until unlinked.
    names: HashMap<String, u64>,
    /// The ids that have a name.
    named: HashSet<u64>,
    /// Every process entry, by id (a subset of `objects`).
    processes: HashMap<u64, Arc<process::Entry>>,
}

/// The parent's side of the upcalls of one run.
pub(crate) struct Broker {
    launch: Launch,
    state: Mutex<State>,
    /// What the parent may hold for the run (`--host-memory`).
    budget: Arc<Budget>,
    /// The run's worker processes (`--max-processes`).
    process_count: Arc<ProcessCount>,
    /// The run's shared memory (`--shared-memory`).
    shared_memory: Arc<Budget>,
    /// The run's live queues, regions and primitives (`--max-objects`).
    objects: Arc<Budget>,
    /// Per caller, the shared memory its enlarged pipe ends are charged.
    pipe_buffers: Mutex<HashMap<u64, Vec<Charge>>>,
    /// The cluster link for queues shared across hosts: a `--cluster`
    /// caller's, or a worker host's for its caller's run.
    queues: OnceLock<Arc<crate::cluster::queue::Queues>>,
}

/// The reply to a call, with the descriptors it carries.
pub(crate) type Answer = Result<(Reply, Vec<OwnedFd>), CallError>;

impl Broker {
    /// A broker for a run started with `launch`.
    pub(crate) fn new(launch: Launch) -> Arc<Self> {
        let budget = Budget::new(launch.sandbox.host_memory_bytes());
        let process_count = ProcessCount::new(launch.sandbox.max_live_processes() as usize);
        let shared_memory = Budget::of(Of::SharedMemory, launch.sandbox.shared_memory_bytes());
        let objects = Budget::of(Of::Objects, u64::from(launch.sandbox.max_live_objects()));
        Arc::new(Broker {
            launch,
            state: Mutex::new(State {
                next_id: 1,
                ..State::default()
            }),
            budget,
            process_count,
            shared_memory,
            objects,
            pipe_buffers: Mutex::default(),
            queues: OnceLock::new(),
        })
    }

    /// Takes `bytes` of the run's shared memory (`--shared-memory`) for
    /// `what`, given back when the charge drops.
    pub(crate) fn charge_shared(&self, bytes: u64, what: &str) -> Result<Charge, CallError> {
        self.shared_memory.charge(bytes, what)
    }

    /// The shared memory charged per caller for its enlarged pipe ends.
    pub(crate) fn pipe_buffers(&self) -> MutexGuard<'_, HashMap<u64, Vec<Charge>>> {
        self.pipe_buffers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one of the run's live objects (`--max-objects`) for `what`,
    /// given back when the charge drops (keep it in the object).
    pub(crate) fn charge_object(&self, what: &str) -> Result<Charge, CallError> {
        self.objects.charge(1, what)
    }

    /// The run's memory budget.
    pub(crate) fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// The run's count of worker processes.
    pub(crate) fn process_count(&self) -> &Arc<ProcessCount> {
        &self.process_count
    }

    /// How the run's worker processes are started.
    pub(crate) fn launch(&self) -> &Launch {
        &self.launch
    }

    /// The run's cluster link for queues shared across hosts, if it has
    /// one.
    pub(crate) fn queues(&self) -> Option<&Arc<crate::cluster::queue::Queues>> {
        self.queues.get()
    }

    /// Gives the run its cluster link for queues, made by `make` unless it
    /// has one already.
    ///
    /// # Errors
    ///
    /// What `make` fails with.
    pub(crate) fn queues_or_init(
        &self,
        make: impl FnOnce() -> crate::error::Result<Arc<crate::cluster::queue::Queues>>,
    ) -> crate::error::Result<()> {
        if self.queues.get().is_none() {
            let _ = self.queues.set(make()?);
        }
        Ok(())
    }

    /// The object behind `token`, whoever holds it (a worker host asking
    /// about one of this run's queues).
    pub(crate) fn object_of_token(&self, token: u64) -> Option<Object> {
        let state = self.state();
        match state.tokens.get(&token) {
            Some(Grant::Object(id)) => state.objects.get(id).cloned(),
            _ => None,
        }
    }

    /// A worker host's broker redeems a token it never minted: a queue of
    /// its caller's run, opened in the caller's stream and registered
    /// under that token (so the run's other tasks adopt the same one).
    fn adopt_remote(&self, caller: u64, token: u64) -> Answer {
        let Some(queues) = self.queues.get().filter(|q| q.is_host()) else {
            return Err(CallError::InvalidHandle);
        };
        let hub = queue::remote_hub(self, queues.open(token)?)?;
        let id = self.register(Object::Queue(hub.clone()), Some(caller))?;
        let mut state = self.state();
        if let std::collections::hash_map::Entry::Vacant(e) = state.tokens.entry(token) {
            e.insert(Grant::Object(id));
            state.token_of.insert(id, token);
        }
        drop(state);
        hub.hand_out(id)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers the object `make` builds from its new id, held by
    /// `holder` (if any); returns the id.
    fn register_with(
        &self,
        make: impl FnOnce(u64) -> Object,
        holder: Option<u64>,
    ) -> Result<u64, CallError> {
        self.budget.take(OBJECT_COST, "a new object")?;
        let mut state = self.state();
        let id = state.next_id;
        state.next_id += 1;
        let object = make(id);
        if let Object::Process(p) = &object {
            state.processes.insert(id, p.clone());
        }
        state.objects.insert(id, object);
        if let Some(holder) = holder {
            hold(&mut state, holder, id);
        }
        Ok(id)
    }

    /// Registers `object`, held by `holder` (if any); returns its id.
    ///
    /// # Errors
    ///
    /// A `limit` error if the run's budget has no room for another object.
    pub(crate) fn register(&self, object: Object, holder: Option<u64>) -> Result<u64, CallError> {
        self.register_with(|_| object, holder)
    }

    /// Registers a new process entry made by `make` from its id.
    pub(crate) fn register_process(
        &self,
        make: impl FnOnce(u64) -> process::Entry,
        holder: Option<u64>,
    ) -> Result<Arc<process::Entry>, CallError> {
        let mut entry = None;
        self.register_with(
            |id| {
                let e = Arc::new(make(id));
                entry = Some(e.clone());
                Object::Process(e)
            },
            holder,
        )?;
        Ok(entry.expect("made by register_with"))
    }

    /// `caller` now holds `id` too.
    pub(crate) fn hold(&self, caller: u64, id: u64) {
        hold(&mut self.state(), caller, id);
    }

    /// The object `id`, if `caller` holds it.
    pub(crate) fn get(&self, caller: u64, id: u64) -> Result<Object, CallError> {
        let state = self.state();
        if !state.held.get(&caller).is_some_and(|h| h.contains_key(&id)) {
            return Err(CallError::InvalidHandle);
        }
        state
            .objects
            .get(&id)
            .cloned()
            .ok_or(CallError::InvalidHandle)
    }

    /// The process entry of a caller (every caller has one).
    pub(crate) fn caller(&self, caller: u64) -> Option<Arc<process::Entry>> {
        self.state().processes.get(&caller).cloned()
    }

    /// Every process entry (for the children of a process).
    pub(crate) fn processes(&self) -> Vec<Arc<process::Entry>> {
        self.state().processes.values().cloned().collect()
    }

    /// Shares object `id`, which `caller` must hold: its token, with one
    /// more reference in transit.
    fn share(&self, caller: u64, id: u64) -> Answer {
        self.get(caller, id)?;
        self.budget.take(TOKEN_COST, "a handle in transit")?;
        let mut state = self.state();
        if !state.objects.contains_key(&id) {
            drop(state);
            self.budget.give_back(TOKEN_COST);
            return Err(CallError::InvalidHandle);
        }
        let token = match state.token_of.get(&id) {
            Some(token) => *token,
            None => {
                let token = mint(&state.tokens);
                state.tokens.insert(token, Grant::Object(id));
                state.token_of.insert(id, token);
                token
            }
        };
        *state.in_transit.entry(id).or_insert(0) += 1;
        Ok((Reply::Token(token), Vec::new()))
    }

    /// Manager container `container` keeps the objects behind `tokens`
    /// (handles in a value stored in it), as a holder, until it is cleared
    /// or gone. Connection tokens are single-use and are not kept.
    ///
    /// # Errors
    ///
    /// `InvalidHandle` for a token that names no live object.
    pub(crate) fn keep(&self, container: u64, tokens: &[u64]) -> Result<(), CallError> {
        let mut state = self.state();
        let mut ids = Vec::with_capacity(tokens.len());
        for token in tokens {
            match state.tokens.get(token) {
                Some(Grant::Object(id)) if state.objects.contains_key(id) => ids.push(*id),
                Some(Grant::Connection(..)) => {}
                _ => return Err(CallError::InvalidHandle),
            }
        }
        for id in ids {
            hold(&mut state, container, id);
            // The container now holds what the value's `share` sent.
            if let Some(n) = state.in_transit.get_mut(&id) {
                *n -= 1;
                if *n == 0 {
                    state.in_transit.remove(&id);
                }
                self.budget.give_back(TOKEN_COST);
            }
        }
        Ok(())
    }

    /// Mints a single-use token for a connection end `caller` sends.
    ///
    /// # Errors
    ///
    /// A `limit` error if `caller` has [`MAX_CONNECTIONS_IN_TRANSIT`] ends
    /// waiting to be redeemed already.
    pub(crate) fn share_connection(&self, caller: u64, end: pipe::End) -> Result<u64, CallError> {
        let mut state = self.state();
        let pending = state.connections.entry(caller).or_default();
        if pending.len() >= MAX_CONNECTIONS_IN_TRANSIT {
            if let Some(p) = state.processes.get(&caller) {
                p.exhausted();
            }
            return Err(CallError::Limit(format!(
                "a process may have at most {MAX_CONNECTIONS_IN_TRANSIT} connection ends in \
                 transit (shared and not yet redeemed)"
            )));
        }
        let token = mint(&state.tokens);
        state.tokens.insert(token, Grant::Connection(end, caller));
        state.connections.entry(caller).or_default().insert(token);
        Ok(token)
    }

    /// Redeems a token for `caller`.
    fn adopt(&self, caller: u64, token: u64) -> Answer {
        let mut state = self.state();
        let object = match state.tokens.get(&token) {
            None => {
                drop(state);
                return self.adopt_remote(caller, token);
            }
            Some(Grant::Object(id)) => *id,
            Some(Grant::Connection(..)) => {
                let Some(Grant::Connection(end, sender)) = state.tokens.remove(&token) else {
                    unreachable!("just matched")
                };
                if let Some(pending) = state.connections.get_mut(&sender) {
                    pending.remove(&token);
                }
                return Ok(pipe::adopted(end));
            }
        };
        let found = state.objects.get(&object).cloned();
        // Pools and jobs never travel: a token for one is refused before
        // the caller is made a holder.
        if matches!(found, None | Some(Object::Pool(_) | Object::Job(_))) {
            return Err(CallError::InvalidHandle);
        }
        hold(&mut state, caller, object);
        if let Some(n) = state.in_transit.get_mut(&object) {
            *n -= 1;
            if *n == 0 {
                state.in_transit.remove(&object);
            }
            self.budget.give_back(TOKEN_COST);
        }
        drop(state);
        match found {
            Some(Object::Process(p)) => Ok((Reply::Process(p.describe()), Vec::new())),
            Some(Object::Queue(q)) => q.hand_out(object),
            Some(Object::Region(r)) => r.hand_out(object),
            Some(Object::Sync(s)) => s.hand_out(object),
            Some(Object::Proxy(p)) => p.hand_out(object),
            Some(Object::Pool(_) | Object::Job(_)) | None => Err(CallError::InvalidHandle),
        }
    }

    /// Gives object `id` the region name `name`; false if taken.
    pub(crate) fn name(&self, name: &str, id: u64) -> bool {
        let mut state = self.state();
        if state.names.contains_key(name) {
            return false;
        }
        state.names.insert(name.to_string(), id);
        state.named.insert(id);
        true
    }

    /// The object named `name`.
    pub(crate) fn named(&self, name: &str) -> Option<u64> {
        self.state().names.get(name).copied()
    }

    /// Removes a name; the object goes once nobody holds it.
    pub(crate) fn unname(&self, name: &str) {
        let mut state = self.state();
        let gone = match state.names.remove(name) {
            Some(id) => {
                state.named.remove(&id);
                drop_if_unused(&mut state, id, &self.budget)
            }
            None => Vec::new(),
        };
        drop(state);
        let_go(gone);
    }

    /// The objects `caller` holds now.
    pub(crate) fn held_by(&self, caller: u64) -> Vec<Object> {
        let state = self.state();
        state
            .held
            .get(&caller)
            .map(|ids| {
                ids.keys()
                    .filter_map(|id| state.objects.get(id).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `caller` dropped its handle on `id`.
    pub(crate) fn release(&self, caller: u64, id: u64) {
        let mut state = self.state();
        let mut last = false;
        if let Some(held) = state.held.get_mut(&caller) {
            if let Some(handles) = held.get_mut(&id) {
                *handles -= 1;
                if *handles == 0 {
                    held.remove(&id);
                    last = true;
                }
            }
        }
        if last {
            unhold(&mut state, id);
        }
        let gone = drop_if_unused(&mut state, id, &self.budget);
        drop(state);
        let_go(gone);
    }

    /// Lets go of object `id` if nobody holds it any more.
    pub(crate) fn drop_unused(&self, id: u64) {
        let gone = drop_if_unused(&mut self.state(), id, &self.budget);
        let_go(gone);
    }

    /// Everything `caller` held, dropped (its process ended, or its
    /// instance was reset and lost its handles).
    pub(crate) fn release_all(&self, caller: u64) {
        pipe::forget_buffers(self, caller);
        let mut state = self.state();
        let held = state.held.remove(&caller).unwrap_or_default();
        // Its connection ends still in transit go with it (their peers get
        // EOF), as CPython's resource sharer dies with its process.
        for token in state.connections.remove(&caller).unwrap_or_default() {
            state.tokens.remove(&token);
        }
        let mut gone = Vec::new();
        for id in held.into_keys() {
            unhold(&mut state, id);
            gone.extend(drop_if_unused(&mut state, id, &self.budget));
        }
        drop(state);
        let_go(gone);
    }

    /// Answers one upcall of process `caller`; `fds` came with it.
    pub(crate) fn handle(
        self: &Arc<Self>,
        caller: u64,
        call: Call,
        fds: Vec<OwnedFd>,
    ) -> (Reply, Vec<OwnedFd>) {
        let answer = match call {
            Call::ProcessStart {
                target,
                args,
                name,
                daemon,
            } => process::start(self, caller, target, args, name, daemon),
            Call::ProcessJoin { id, timeout_ms } => process::join(self, caller, id, timeout_ms),
            Call::ProcessStatus { id } => process::status(self, caller, id),
            Call::ProcessSignal { id, kill } => process::signal(self, caller, id, kill),
            Call::Parent => process::parent(self, caller),
            Call::ActiveChildren => process::active_children(self, caller),
            Call::Release { id } => {
                self.release(caller, id);
                Ok((Reply::Ok, Vec::new()))
            }
            Call::Share { id } => self.share(caller, id),
            Call::ShareConnection { readable, writable } => {
                pipe::share(self, caller, fds, readable, writable)
            }
            Call::Adopt { token } => self.adopt(caller, token),
            Call::PipeBuffer { grow } => pipe::buffer(self, caller, grow),
            Call::QueueCreate { maxsize, joinable } => {
                queue::create(self, caller, maxsize, joinable)
            }
            Call::QueueSpill { id, datagram } => queue::spill(self, caller, id, datagram, fds),
            Call::QueueStore { id, item } => queue::store(self, caller, id, item),
            Call::QueueFetch { id, key } => queue::fetch(self, caller, id, key),
            Call::QueueRemote { id, op } => queue::remote(self, caller, id, op),
            Call::PoolCreate {
                processes,
                initializer,
                maxtasksperchild,
            } => pool::create(
                self,
                caller,
                pool::Options {
                    processes,
                    initializer: initializer.map(|(task, args)| (task, args.into_vec())),
                    maxtasksperchild,
                },
            ),
            Call::PoolSubmit {
                pool,
                task,
                inputs,
                ordered,
                chunksize,
            } => pool::submit(self, caller, pool, task, inputs, ordered, chunksize),
            Call::JobNext { job, timeout_ms } => pool::next(self, caller, job, timeout_ms),
            Call::PoolStop { pool, terminate } => pool::stop(self, caller, pool, terminate),
            Call::PoolJoin { pool } => pool::join(self, caller, pool),
            Call::RegionCreate { size, name } => shared::create(self, caller, size, name),
            Call::RegionAttach { name } => shared::attach(self, caller, &name),
            Call::RegionUnlink { id } => shared::unlink(self, caller, id),
            Call::SyncCreate { kind } => sync::create(self, caller, kind),
            Call::ManagerCreate { container } => manager::create(self, caller, container),
            Call::Manager { id, op } => manager::apply(self, caller, id, op),
        };
        answer.unwrap_or_else(|e| (Reply::Err(e), Vec::new()))
    }
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Broker")
    }
}

/// Takes object `id` out of the registry if nobody holds it and no token
/// or name refers to it, and hands it back: the caller lets go of it with
/// [`let_go`] *after* releasing the state lock. (Letting go of a pool joins
/// its driver threads, which take that lock themselves; doing it under the
/// lock deadlocked the run.) A process's entry stays until the process has
/// ended: its thread still reports the end there.
///
/// A manager container taken out lets go of what it kept, and so on: all
/// of it comes back.
#[must_use = "let go of what is taken out, outside the state lock"]
fn drop_if_unused(state: &mut State, id: u64, budget: &Budget) -> Vec<Object> {
    let mut gone = Vec::new();
    let mut next = vec![id];
    while let Some(id) = next.pop() {
        let Some(object) = take_if_unused(state, id, budget) else {
            continue;
        };
        if let Object::Proxy(_) = object {
            for (kept, _) in state.held.remove(&id).unwrap_or_default() {
                unhold(state, kept);
                next.push(kept);
            }
        }
        gone.push(object);
    }
    gone
}

/// [`drop_if_unused`] for one object.
fn take_if_unused(state: &mut State, id: u64, budget: &Budget) -> Option<Object> {
    if state.in_transit.contains_key(&id)
        || state.holders.contains_key(&id)
        || state.named.contains(&id)
    {
        return None;
    }
    if let Some(Object::Process(p)) = state.objects.get(&id) {
        if !p.ended() {
            return None;
        }
    }
    let object = state.objects.remove(&id)?;
    budget.give_back(OBJECT_COST);
    state.processes.remove(&id);
    if let Some(token) = state.token_of.remove(&id) {
        state.tokens.remove(&token);
    }
    Some(object)
}

/// Lets go of objects taken out of the registry; a pool is terminated and
/// its workers reaped (its drivers may call into the broker meanwhile, so
/// no broker lock may be held here).
fn let_go(objects: impl IntoIterator<Item = Object>) {
    for object in objects {
        if let Object::Pool(pool) = &object {
            pool.pool.terminate();
        }
        drop(object);
    }
}

/// One more handle of `caller` on `id`.
fn hold(state: &mut State, caller: u64, id: u64) {
    let handles = state.held.entry(caller).or_default().entry(id).or_insert(0);
    if *handles == 0 {
        *state.holders.entry(id).or_insert(0) += 1;
    }
    *handles += 1;
}

/// One caller fewer holds `id`.
fn unhold(state: &mut State, id: u64) {
    if let Some(n) = state.holders.get_mut(&id) {
        *n -= 1;
        if *n == 0 {
            state.holders.remove(&id);
        }
    }
}

/// An OS error making or handing out an object, as the guest sees it: the
/// parent out of descriptors (`EMFILE`, `ENFILE`: `ulimit -n` is below what
/// the run's objects need, 3 descriptors per queue, 1 per region or
/// primitive) is a `limit` error, anything else an `other` error.
pub(crate) fn os_error(e: std::io::Error) -> CallError {
    match e.raw_os_error() {
        Some(code)
            if code == rustix::io::Errno::MFILE.raw_os_error()
                || code == rustix::io::Errno::NFILE.raw_os_error() =>
        {
            CallError::Limit(format!(
                "the parent is out of descriptors ({e}): raise `ulimit -n` or lower \
                 --max-objects"
            ))
        }
        _ => CallError::Other(e.to_string()),
    }
}

/// The answer to upcalls from a worker no broker serves.
pub(crate) fn unsupported() -> (Reply, Vec<OwnedFd>) {
    (
        Reply::Err(CallError::Other("this host does not serve upcalls".into())),
        Vec::new(),
    )
}

/// A fresh random token not in use: 64 bits from the OS.
fn mint<V>(tokens: &HashMap<u64, V>) -> u64 {
    loop {
        let mut bytes = [0u8; 8];
        // getrandom(2) does not fail for 8 bytes once the pool is ready;
        // should it, the clock and a counter still make distinct tokens.
        if rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty()).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            bytes = (nanos ^ (tokens.len() as u64).rotate_left(32)).to_le_bytes();
        }
        let token = u64::from_le_bytes(bytes);
        if token != 0 && !tokens.contains_key(&token) {
            return token;
        }
    }
}
