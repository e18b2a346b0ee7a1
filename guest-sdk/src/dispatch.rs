//! The guest's side of the `tasks` and `program` exports.
//!
//! `#[task]` functions register a [`Task`] with `inventory` (static
//! constructors run once, from the component's start function). The host
//! calls `call(name, codec, first-index, inputs)` with a whole chunk of
//! inputs in one batch buffer; the dispatcher runs the task once per input
//! and appends each result to one output batch. While a chunk runs, its
//! finished results live in [`BATCH`] so the panic hook can hand them to the
//! host before the instance traps.

use std::cell::RefCell;

use crate::bindings::{program, tasks, types::Codec, types::Outcome, types::TaskError, Guest};
use crate::panic;

/// Decodes one input, runs a task, appends its encoded result.
#[doc(hidden)]
pub type RunFn = fn(Codec, &[u8], &mut Vec<u8>) -> Result<(), TaskError>;

/// One exported task, as registered by `#[mpwasm_guest::task]`.
#[doc(hidden)]
pub struct Task {
    /// The name callers use: the Rust function's name.
    pub name: &'static str,
    /// Decodes one input, runs the function, appends its encoded result.
    pub run: RunFn,
}

inventory::collect!(Task);

/// The guest's `main`, as registered by `#[mpwasm_guest::main]`.
#[doc(hidden)]
pub struct Main {
    /// Runs main; returns the process exit code.
    pub run: fn() -> i32,
}

inventory::collect!(Main);

/// What the running chunk has produced so far.
pub(crate) struct Batch {
    /// Task name.
    pub(crate) name: String,
    /// Job-wide index of the first input of the chunk.
    pub(crate) first_index: u64,
    /// Number of inputs finished.
    pub(crate) done: u32,
    /// The results of the finished inputs.
    pub(crate) out: Outcome,
}

thread_local! {
    /// The chunk being run, if any (wasm guests are single-threaded).
    pub(crate) static BATCH: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

fn find(name: &str) -> Option<&'static Task> {
    inventory::iter::<Task>.into_iter().find(|t| t.name == name)
}

/// Whether this guest exports a task called `name`.
pub(crate) fn has_task(name: &str) -> bool {
    find(name).is_some()
}

impl tasks::Guest for Guest {
    fn names() -> Vec<String> {
        let mut names: Vec<String> = inventory::iter::<Task>
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        names.sort();
        names
    }

    fn call(
        name: String,
        codec: Codec,
        first_index: u64,
        inputs: Vec<u8>,
    ) -> Result<Outcome, TaskError> {
        let task = find(&name).ok_or_else(|| TaskError::UnknownTask(name.clone()))?;
        let items = crate::codec::batch_items(&inputs).map_err(TaskError::BadInput)?;
        panic::install_hook();
        let out = Outcome {
            results: Vec::with_capacity(inputs.len() + 4 * items.len()),
            failures: Vec::new(),
        };
        set_batch(Some(Batch {
            name,
            first_index,
            done: 0,
            out,
        }));
        // Each result is encoded into `scratch` and then appended, so that no
        // borrow of BATCH is held while user code runs (it may call
        // `current_task`, or panic).
        let mut scratch = Vec::new();
        for item in items {
            scratch.clear();
            let ran = (task.run)(codec, item, &mut scratch);
            BATCH.with(|b| {
                let mut b = b.borrow_mut();
                let batch = b.as_mut().expect("batch set above");
                let results = &mut batch.out.results;
                match ran {
                    Ok(()) => {
                        results.extend_from_slice(&(scratch.len() as u32).to_le_bytes());
                        results.extend_from_slice(&scratch);
                    }
                    Err(e) => {
                        results.extend_from_slice(&[0; 4]);
                        batch.out.failures.push((batch.done, e));
                    }
                }
                batch.done += 1;
            });
        }
        Ok(set_batch(None).expect("batch set above").out)
    }
}

/// Runs this guest's task `name` here, in this process, on the unit input
/// (a task of no parameters): how a barrier runs its action.
pub(crate) fn run_here(name: &str) -> crate::Result<()> {
    let task = find(name).ok_or_else(|| crate::Error::Other(format!("no task named {name:?}")))?;
    let input = crate::codec::to_bytes(&())?;
    let mut out = Vec::new();
    (task.run)(Codec::Bincode, &input, &mut out).map_err(|e| match e {
        // The task's own `Err`, as the caller would have got it.
        TaskError::Failed(message) => crate::Error::Other(message),
        other => crate::Error::Other(format!("task {name:?}: {other:?}")),
    })
}

/// Replaces the current batch, returning the previous one.
fn set_batch(batch: Option<Batch>) -> Option<Batch> {
    BATCH.with(|b| std::mem::replace(&mut *b.borrow_mut(), batch))
}

impl program::Guest for Guest {
    fn main(_args: Vec<String>) -> i32 {
        panic::install_hook();
        match inventory::iter::<Main>.into_iter().next() {
            Some(main) => (main.run)(),
            None => {
                // The host passes the guest file as the program name.
                let file = std::env::args().next().unwrap_or_default();
                eprintln!(
                    "mpwasm: {file}: this guest has no #[mpwasm_guest::main] function \
                     (`mpwasm run` needs one; `mpwasm pool` runs its tasks)"
                );
                2
            }
        }
    }
}

/// Decodes an argument, runs `f`, appends its encoded output: the body of
/// every `#[task]` wrapper.
#[doc(hidden)]
pub fn run_task<A, R, E, F>(
    codec: Codec,
    input: &[u8],
    out: &mut Vec<u8>,
    f: F,
) -> Result<(), TaskError>
where
    A: serde::de::DeserializeOwned,
    R: serde::Serialize,
    E: std::fmt::Display,
    F: FnOnce(A) -> Result<R, E>,
{
    let arg = crate::codec::decode::<A>(codec, input)
        .map_err(|why| TaskError::BadInput(bad_input::<A>(codec, &why)))?;
    let value = f(arg).map_err(|e| TaskError::Failed(e.to_string()))?;
    crate::codec::encode_into(codec, &value, out).map_err(TaskError::BadOutput)
}

/// A `bad_input` message a user can act on: which task, the type it takes,
/// and what was wrong with the input.
fn bad_input<A>(codec: Codec, why: &str) -> String {
    let task = current_task().map(|t| t.name).unwrap_or_default();
    let format = match codec {
        Codec::Bincode => "bincode",
        Codec::Json => "JSON",
    };
    format!(
        "task `{task}` takes `{}`, and this {format} input is not one: {why}",
        std::any::type_name::<A>()
    )
}

/// The input currently being processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    /// The task's name.
    pub name: String,
    /// Position of this input in the whole job (0 for the first input of a
    /// `map`), whatever chunk it arrived in.
    pub index: u64,
}

/// Describes the input being processed, or `None` outside a task (in `main`).
///
/// ```no_run
/// #[mpwasm_guest::task]
/// fn work(x: u32) -> u32 {
///     let me = mpwasm_guest::current_task().expect("inside a task");
///     println!("input {} of {}", me.index, me.name);
///     x
/// }
/// ```
pub fn current_task() -> Option<TaskInfo> {
    BATCH.with(|b| {
        b.borrow().as_ref().map(|batch| TaskInfo {
            name: batch.name.clone(),
            index: batch.first_index + u64::from(batch.done),
        })
    })
}

/// Reports an `Err` returned by `#[main]` as Rust's own `main` does, and
/// gives the exit code 1.
#[doc(hidden)]
pub fn main_failed<E: std::fmt::Debug>(e: E) -> i32 {
    eprintln!("Error: {e:?}");
    1
}
