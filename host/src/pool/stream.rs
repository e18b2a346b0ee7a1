//! The pool's one scheduling loop: cut inputs into chunks, keep a bounded
//! number in flight, hand results back in input order or as they complete.
//!
//! Every pool operation (`map`, `imap`, `imap_unordered`, `apply`, the
//! `*_async` forms and the CLI) is a [`Stream`] underneath. Inputs are pulled
//! from the caller's iterator only as chunks are submitted, and at most
//! `max_in_flight` chunks are outstanding, so a huge or endless input never
//! sits in memory; ordered results wait only for the chunks before them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crossbeam_channel::{select, Receiver, Sender};

use super::driver::{Chunk, ChunkDone, Job};
use super::Inner;
use crate::error::{Error, TaskError};
use crate::limits::{MAX_AUTO_CHUNK, MAX_CHUNK_BYTES};
use crate::wire::{Codec, Outcome};

/// How many inputs go into each chunk.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Chunking {
    /// Always this many (the last chunk may be shorter).
    Fixed(usize),
    /// Unknown input length: start at 1 for a quick first answer and double
    /// up to [`MAX_AUTO_CHUNK`].
    Growing(usize),
}

impl Chunking {
    /// CPython's default for a known length: `ceil(n / (4 * workers))`.
    pub(crate) fn for_len(n: usize, workers: usize) -> Self {
        Chunking::Fixed(n.div_ceil(4 * workers.max(1)).max(1))
    }

    fn take(&mut self) -> usize {
        match self {
            Chunking::Fixed(n) => *n,
            Chunking::Growing(n) => {
                let now = *n;
                *n = (now * 2).min(MAX_AUTO_CHUNK);
                now
            }
        }
    }
}

/// A running job: an iterator of `(index, result bytes)` in input order, or
/// in completion order when unordered.
pub struct Stream<I> {
    inner: Arc<Inner>,
    task: Arc<str>,
    codec: Codec,
    inputs: I,
    chunking: Chunking,
    ordered: bool,
    next_index: u64,
    next_emit: u64,
    in_flight: usize,
    max_in_flight: usize,
    exhausted: bool,
    reply_tx: Sender<ChunkDone>,
    reply_rx: Receiver<ChunkDone>,
    waiting: BTreeMap<u64, Vec<Outcome>>,
    ready: VecDeque<(u64, Outcome)>,
    broken: bool,
}

impl<I: Iterator<Item = Vec<u8>>> Stream<I> {
    pub(crate) fn new(
        inner: Arc<Inner>,
        task: &str,
        codec: Codec,
        inputs: I,
        chunking: Chunking,
        ordered: bool,
    ) -> Self {
        let (reply_tx, reply_rx) = crossbeam_channel::unbounded();
        let max_in_flight = 2 * inner.processes + 1;
        Stream {
            inner,
            task: task.into(),
            codec,
            inputs,
            chunking,
            ordered,
            next_index: 0,
            next_emit: 0,
            in_flight: 0,
            max_in_flight,
            exhausted: false,
            reply_tx,
            reply_rx,
            waiting: BTreeMap::new(),
            ready: VecDeque::new(),
            broken: false,
        }
    }

    /// Lifts the bound on chunks in flight: for `map`, whose inputs are all
    /// in memory already, every chunk is queued at once (as Python's
    /// `map_async` queues them before returning).
    pub(crate) fn unbounded(mut self) -> Self {
        self.max_in_flight = usize::MAX;
        self
    }

    /// Submits chunks until `max_in_flight` are out or the input ends.
    pub(crate) fn fill(&mut self) -> Result<(), Error> {
        while !self.exhausted && self.in_flight < self.max_in_flight {
            let want = self.chunking.take();
            let mut inputs = Vec::with_capacity(want.min(MAX_AUTO_CHUNK));
            let mut bytes = 0;
            while inputs.len() < want && bytes < MAX_CHUNK_BYTES {
                match self.inputs.next() {
                    Some(input) => {
                        bytes += input.len();
                        inputs.push(input);
                    }
                    None => {
                        self.exhausted = true;
                        break;
                    }
                }
            }
            if inputs.is_empty() {
                break;
            }
            let first_index = self.next_index;
            self.next_index += inputs.len() as u64;
            self.inner.submit(Job::Run(Chunk {
                task: self.task.clone(),
                codec: self.codec,
                first_index,
                inputs,
                reply: self.reply_tx.clone(),
            }))?;
            self.in_flight += 1;
        }
        Ok(())
    }

    /// Waits for one chunk and files its outcomes.
    fn receive(&mut self) -> Result<(), Error> {
        let done = select! {
            recv(self.reply_rx) -> done => done.map_err(|_| Error::Terminated)?,
            recv(self.inner.terminated) -> _ => return Err(Error::Terminated),
        };
        self.in_flight -= 1;
        if self.ordered {
            self.waiting.insert(done.first_index, done.outcomes);
            while let Some(outcomes) = self.waiting.remove(&self.next_emit) {
                let first = self.next_emit;
                self.next_emit += outcomes.len() as u64;
                self.ready.extend((first..).zip(outcomes));
            }
        } else {
            self.ready.extend((done.first_index..).zip(done.outcomes));
        }
        Ok(())
    }
}

impl<I: Iterator<Item = Vec<u8>>> Iterator for Stream<I> {
    /// The input's index and its encoded result, or why it failed.
    type Item = Result<(u64, Vec<u8>), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((index, outcome)) = self.ready.pop_front() {
                return Some(match outcome {
                    Ok(bytes) => Ok((index, bytes)),
                    Err(f) => Err(Error::Task(TaskError {
                        index,
                        kind: f.kind,
                        message: f.message,
                        backtrace: f.backtrace,
                    })),
                });
            }
            if self.broken {
                return None;
            }
            let step = self.fill().and_then(|()| {
                if self.in_flight == 0 {
                    Ok(false)
                } else {
                    self.receive().map(|()| true)
                }
            });
            match step {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.broken = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
