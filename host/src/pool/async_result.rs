//! [`AsyncResult`]: the handle `map_async` and `apply_async` return.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// A result that is being computed by the pool (Python's
/// `multiprocessing.pool.AsyncResult`).
///
/// # Examples
///
/// ```no_run
/// # fn main() -> mpwasm::Result<()> {
/// use std::time::Duration;
/// let pool = mpwasm::Pool::new("pool_square.wasm")?;
/// let pending = pool.map_async::<i64, i64>("square", vec![1, 2, 3])?;
/// let squares = pending.get(Some(Duration::from_secs(5)))?;
/// assert_eq!(squares, [1, 4, 9]);
/// # Ok(()) }
/// ```
pub struct AsyncResult<T> {
    slot: Arc<Slot<T>>,
}

struct Slot<T> {
    value: Mutex<State<T>>,
    ready: Condvar,
}

enum State<T> {
    Pending,
    Ready(Result<T>),
    Taken { successful: bool },
}

/// The producing side of an [`AsyncResult`].
pub(crate) struct Promise<T> {
    slot: Arc<Slot<T>>,
}

impl<T> Promise<T> {
    /// Stores the result and wakes every waiter.
    pub(crate) fn fulfil(self, result: Result<T>) {
        *self.slot.value.lock().unwrap_or_else(|e| e.into_inner()) = State::Ready(result);
        self.slot.ready.notify_all();
    }
}

/// A connected promise and result.
pub(crate) fn pair<T>() -> (Promise<T>, AsyncResult<T>) {
    let slot = Arc::new(Slot {
        value: Mutex::new(State::Pending),
        ready: Condvar::new(),
    });
    (Promise { slot: slot.clone() }, AsyncResult { slot })
}

impl<T> AsyncResult<T> {
    /// Waits up to `timeout` (forever if `None`) for the result, then
    /// returns it. The value can be taken once; later calls return
    /// [`Error::Taken`].
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if it is not ready in time (the work carries on;
    /// call `get` again), the job's own error (e.g. [`Error::Task`] for the
    /// first failed input), or [`Error::Taken`].
    pub fn get(&self, timeout: Option<Duration>) -> Result<T> {
        let mut state = self.wait_locked(timeout);
        match std::mem::replace(&mut *state, State::Pending) {
            State::Pending => Err(Error::Timeout),
            State::Ready(result) => {
                *state = State::Taken {
                    successful: result.is_ok(),
                };
                result
            }
            taken @ State::Taken { .. } => {
                *state = taken;
                Err(Error::Taken)
            }
        }
    }

    /// Waits up to `timeout` (forever if `None`); returns whether the result
    /// is ready.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        !matches!(*self.wait_locked(timeout), State::Pending)
    }

    /// Whether the result is ready.
    pub fn ready(&self) -> bool {
        self.wait(Some(Duration::ZERO))
    }

    /// Whether the job succeeded: `None` while it is running (Python raises
    /// `ValueError` there).
    pub fn successful(&self) -> Option<bool> {
        match &*self.lock() {
            State::Pending => None,
            State::Ready(r) => Some(r.is_ok()),
            State::Taken { successful } => Some(*successful),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.slot.value.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait_locked(&self, timeout: Option<Duration>) -> std::sync::MutexGuard<'_, State<T>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = self.lock();
        while matches!(*state, State::Pending) {
            state = match deadline {
                None => self
                    .slot
                    .ready
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    self.slot
                        .ready
                        .wait_timeout(state, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        state
    }
}
