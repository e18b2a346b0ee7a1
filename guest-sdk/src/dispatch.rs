//! The guest's side of the `tasks` and `program` exports.
//!
//! `#[task]` functions register a [`Task`] with `inventory` (static
//! constructors run once, from the component's start function). The host
//! calls `call(name, codec, first-index, inputs)` with a whole chunk of
//! inputs; the dispatcher runs the task once per input and returns one result
//! per input. While a chunk runs, its finished results live in [`BATCH`] so
//! the panic hook can hand them to the host before the instance traps.

use std::cell::RefCell;

use crate::bindings::{program, tasks, types::Codec, types::TaskError, Guest};
use crate::panic;

/// One exported task, as registered by `#[mpwasm_guest::task]`.
#[doc(hidden)]
pub struct Task {
    /// The name callers use: the Rust function's name.
    pub name: &'static str,
    /// Decodes one input, runs the function, encodes its result.
    pub run: fn(Codec, &[u8]) -> Result<Vec<u8>, TaskError>,
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
    /// Results of the inputs that finished, in order.
    pub(crate) done: Vec<Result<Vec<u8>, TaskError>>,
}

thread_local! {
    /// The chunk being run, if any (wasm guests are single-threaded).
    pub(crate) static BATCH: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

fn find(name: &str) -> Option<&'static Task> {
    inventory::iter::<Task>.into_iter().find(|t| t.name == name)
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
        inputs: Vec<Vec<u8>>,
    ) -> Result<Vec<Result<Vec<u8>, TaskError>>, TaskError> {
        let task = find(&name).ok_or_else(|| TaskError::UnknownTask(name.clone()))?;
        panic::install_hook();
        let done = Vec::with_capacity(inputs.len());
        BATCH.with(|b| {
            *b.borrow_mut() = Some(Batch {
                name,
                first_index,
                done,
            })
        });
        for input in &inputs {
            let result = (task.run)(codec, input);
            BATCH.with(|b| {
                b.borrow_mut()
                    .as_mut()
                    .expect("batch set above")
                    .done
                    .push(result)
            });
        }
        let batch = BATCH
            .with(|b| b.borrow_mut().take())
            .expect("batch set above");
        Ok(batch.done)
    }
}

impl program::Guest for Guest {
    fn main(_args: Vec<String>) -> i32 {
        panic::install_hook();
        match inventory::iter::<Main>.into_iter().next() {
            Some(main) => (main.run)(),
            None => {
                eprintln!("this guest has no #[mpwasm_guest::main] function");
                2
            }
        }
    }
}

/// Decodes an argument, runs `f`, encodes its output: the body of every
/// `#[task]` wrapper.
#[doc(hidden)]
pub fn run_task<A, R, E, F>(codec: Codec, input: &[u8], f: F) -> Result<Vec<u8>, TaskError>
where
    A: serde::de::DeserializeOwned,
    R: serde::Serialize,
    E: std::fmt::Display,
    F: FnOnce(A) -> Result<R, E>,
{
    let arg = crate::codec::decode::<A>(codec, input).map_err(TaskError::BadInput)?;
    let out = f(arg).map_err(|e| TaskError::Failed(e.to_string()))?;
    crate::codec::encode(codec, &out).map_err(TaskError::BadOutput)
}
