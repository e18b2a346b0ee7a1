//! Host implementations of the WIT interfaces a guest imports, one file per
//! interface. Each file holds every hop of its interface: the `Host` traits
//! `bindgen!` generated, implemented on
//! [`WorkerState`](crate::worker::child::WorkerState) (in the worker
//! process), and the broker's side of that interface's upcalls (in the
//! parent).
//!

pub(crate) mod manager;
pub(crate) mod pipe;
pub(crate) mod pool;
pub(crate) mod process;
pub(crate) mod queue;
mod runtime;
pub(crate) mod shared;
pub(crate) mod sync;

use std::os::fd::{BorrowedFd, OwnedFd};

use crate::bindings::types;
use crate::wire::{Call, CallError, Reply};
use crate::worker::child::WorkerState;

/// What a host function returns: a trap (the outer error: the channel to
/// the parent broke) or the guest-visible result.
pub(crate) type HostResult<T> = wasmtime::Result<Result<T, types::Error>>;

impl From<CallError> for types::Error {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Closed => types::Error::Closed,
            CallError::Timeout => types::Error::Timeout,
            CallError::InvalidHandle => types::Error::InvalidHandle,
            CallError::Limit(m) => types::Error::Limit(m),
            CallError::Other(m) => types::Error::Other(m),
        }
    }
}

impl WorkerState {
    /// Makes an upcall; a refusal becomes the guest-visible error.
    pub(crate) fn upcall(
        &self,
        call: Call,
        fds: &[BorrowedFd<'_>],
    ) -> wasmtime::Result<Result<(Reply, Vec<OwnedFd>), types::Error>> {
        Ok(match self.upcalls.call(call, fds)? {
            (Reply::Err(e), _) => Err(e.into()),
            answer => Ok(answer),
        })
    }
}

impl WorkerState {
    /// A token redeemed as the wrong kind of handle (a queue's token given
    /// to `Lock`'s adopt): the broker recorded this process as a holder, so
    /// let go of it again, and tell the guest the handle is invalid.
    pub(crate) fn refuse(&self, reply: Reply) -> wasmtime::Result<types::Error> {
        let id = match reply {
            Reply::Process(d) => Some(d.id),
            Reply::Queue { id, .. }
            | Reply::Region { id, .. }
            | Reply::Sync { id, .. }
            | Reply::Proxy { id, .. } => Some(id),
            _ => None,
        };
        if let Some(id) = id {
            self.upcall(Call::Release { id }, &[])?.ok();
        }
        Ok(types::Error::InvalidHandle)
    }
}

/// A reply the protocol does not allow for the call made: the parent is
/// broken, and the instance traps.
pub(crate) fn unexpected(reply: Reply) -> wasmtime::Error {
    wasmtime::Error::msg(format!("unexpected reply from the parent: {reply:?}"))
}

/// An OS error as the guest sees it.
pub(crate) fn io_error(e: std::io::Error) -> types::Error {
    types::Error::Other(e.to_string())
}

/// The token in a `Share` reply.
pub(crate) fn token(answer: Result<(Reply, Vec<OwnedFd>), types::Error>) -> HostResult<u64> {
    Ok(match answer {
        Ok((Reply::Token(token), _)) => Ok(token),
        Ok((other, _)) => return Err(unexpected(other)),
        Err(e) => Err(e),
    })
}
