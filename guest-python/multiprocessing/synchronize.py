"""Locks and the other primitives over mpwasm's `sync` interface: robust
futex primitives in shared pages. A lock whose holder died is handed to the
next acquirer (mpwasm's `owner-died`), which gets it instead of hanging."""

import threading
import warnings

from . import _wit

__all__ = ["Lock", "RLock", "Semaphore", "BoundedSemaphore", "Event", "Condition", "Barrier"]


class _Sync:
    def __init__(self, *, ctx=None, _handle=None):
        if _handle is None:
            try:
                _handle = _wit.sync.create(self._kind())
            except _wit.Err as e:
                raise _wit.exception(e, type(self).__name__) from None
        self._s = _handle

    def __reduce__(self):
        return (_adopt, (type(self), self._s.share(), self._state()))

    def _state(self):
        return None


def _adopt(cls, cap, state):
    obj = cls.__new__(cls)
    obj._s = _wit.sync.adopt(cap)
    obj._restore(state)
    return obj


class _Lockish(_Sync):
    # Blocking acquire and release go through `acquire-status` and
    # `release-status`: componentize-py's bindings spend about a microsecond
    # lifting a `result`, as much as the rest of the host call.
    def acquire(self, block=True, timeout=None):
        """Takes the lock; False if `timeout` passed (or busy, unblocking)."""
        if not block:
            ms = 0
        elif timeout is None or timeout < 0:
            return self.__enter__()
        else:
            ms = _wit.timeout_ms(timeout)
        try:
            self._s.acquire(ms)
        except _wit.Err as e:
            return self._acquire_failed(e)
        return True

    def _acquire_failed(self, e):
        k = _wit.kind(e)
        if k == "timeout":
            return False
        if k == "owner_died":
            return self._owner_died()
        raise _wit.exception(e, "acquire") from None

    def _owner_died(self):
        # Acquired: its previous holder died holding it (CPython would hang).
        warnings.warn(f"{type(self).__name__}: the previous holder died holding it", RuntimeWarning)
        return True

    def release(self):
        if not self._s.release_status():
            raise self._release_error()

    def _release_error(self):
        return ValueError("semaphore or lock released too many times")

    def _restore(self, state):
        pass

    def __enter__(self):
        status = self._s.acquire_status()
        if status == 0:
            return True
        if status == 1:
            return self._owner_died()
        try:  # refused: the same call with a `result` says why
            self._s.acquire(None)
        except _wit.Err as e:
            return self._acquire_failed(e)
        return True

    def __exit__(self, *exc):
        if not self._s.release_status():
            raise self._release_error()


class Lock(_Lockish):
    """Python's `multiprocessing.Lock`."""

    def _kind(self):
        return _wit.sync.Kind_Lock()

    def __repr__(self):
        return f"<Lock(owner={'SomeOtherProcess' if self._s.value() else 'None'})>"


class RLock(_Lockish):
    """Python's `multiprocessing.RLock`."""

    def _kind(self):
        return _wit.sync.Kind_Rlock()

    def _release_error(self):
        return AssertionError("attempt to release recursive lock not owned by thread")


class Semaphore(_Lockish):
    """Python's `multiprocessing.Semaphore(value)`."""

    _bounded = False

    def __init__(self, value=1, *, ctx=None, _handle=None):
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._value0 = value
        super().__init__(_handle=_handle)

    def _kind(self):
        return _wit.sync.Kind_Semaphore((self._value0, self._bounded))

    def get_value(self):
        return self._s.value()

    def __repr__(self):
        return f"<{type(self).__name__}(value={self.get_value()})>"


class BoundedSemaphore(Semaphore):
    """Python's `multiprocessing.BoundedSemaphore(value)`."""

    _bounded = True


class Event(_Sync):
    """Python's `multiprocessing.Event`."""

    def _kind(self):
        return _wit.sync.Kind_Event()

    def _restore(self, state):
        pass

    def is_set(self):
        return self._s.is_set()

    def set(self):
        self._s.set()

    def clear(self):
        self._s.clear()

    def wait(self, timeout=None):
        try:
            return self._s.wait(_wit.timeout_ms(timeout)) == 1
        except _wit.Err as e:
            raise _wit.exception(e, "Event.wait") from None


class Condition(_Lockish):
    """Python's `multiprocessing.Condition` (with its own RLock; a lock
    passed in is not used)."""

    def __init__(self, lock=None, *, ctx=None, _handle=None):
        super().__init__(_handle=_handle)

    def _kind(self):
        return _wit.sync.Kind_Condition()

    def _release_error(self):
        return RuntimeError("cannot release un-acquired lock")

    def wait(self, timeout=None):
        try:
            return self._s.wait(_wit.timeout_ms(timeout)) == 1
        except _wit.Err as e:
            if _wit.kind(e) == "other":
                raise RuntimeError("cannot wait on un-acquired lock") from None
            raise _wit.exception(e, "Condition.wait") from None

    def wait_for(self, predicate, timeout=None):
        import time
        result = predicate()
        end = None if timeout is None else time.monotonic() + timeout
        while not result:
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                break
            self.wait(left)
            result = predicate()
        return result

    def notify(self, n=1):
        try:
            self._s.notify(n)
        except _wit.Err:
            raise RuntimeError("cannot notify on un-acquired lock") from None

    def notify_all(self):
        self.notify(2**31 - 1)


class Barrier(_Sync):
    """Python's `multiprocessing.Barrier(parties)`."""

    def __init__(self, parties, action=None, timeout=None, *, ctx=None, _handle=None):
        self._parties = parties
        self._action = action
        self._timeout = timeout
        super().__init__(_handle=_handle)

    def _kind(self):
        return _wit.sync.Kind_Barrier(self._parties)

    def _state(self):
        return (self._parties, self._action, self._timeout)

    def _restore(self, state):
        self._parties, self._action, self._timeout = state

    def wait(self, timeout=None):
        if timeout is None:
            timeout = self._timeout
        try:
            index = self._s.wait(_wit.timeout_ms(timeout))
        except _wit.Err as e:
            raise _wit.exception(e, "Barrier.wait") from None
        if index == 0 and self._action is not None:
            self._action()
        return index

    def abort(self):
        self._s.abort()

    def reset(self):
        self._s.reset()

    @property
    def parties(self):
        return self._parties

    @property
    def n_waiting(self):
        return self._s.value()

    @property
    def broken(self):
        return self._s.is_set()


BrokenBarrierError = threading.BrokenBarrierError
