"""`Queue`, `JoinableQueue` and `SimpleQueue` over mpwasm's `queue`
interface: items are pickled and go straight from the putting worker
process to the getting one through an OS socket."""

import pickle

from . import _wit

__all__ = ["Queue", "JoinableQueue", "SimpleQueue"]


class Queue:
    """Python's `multiprocessing.Queue(maxsize)`: `queue.Empty`/`queue.Full`
    on timeouts, as in CPython."""

    _joinable = False

    def __init__(self, maxsize=0, *, ctx=None, _handle=None):
        if _handle is None:
            if maxsize < 0:
                maxsize = 0
            try:
                _handle = _wit.wqueue.create(maxsize, self._joinable)
            except _wit.Err as e:
                raise _wit.exception(e, "Queue") from None
        self._q = _handle
        self._closed = False

    def put(self, obj, block=True, timeout=None):
        """Puts `obj`; waits for room (at most `timeout` s) unless not `block`."""
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self._q.put(data, _deadline(block, timeout))
        except _wit.Err as e:
            raise _wit.exception(e, "Queue.put") from None

    def get(self, block=True, timeout=None):
        """Takes the oldest item; waits (at most `timeout` s) unless not `block`."""
        try:
            data = self._q.get(_deadline(block, timeout))
        except _wit.Err as e:
            raise _wit.exception(e, "Queue.get") from None
        return pickle.loads(data)

    def put_nowait(self, obj):
        return self.put(obj, False)

    def get_nowait(self):
        return self.get(False)

    def qsize(self):
        return self._q.qsize()

    def empty(self):
        return self._q.qsize() == 0

    def full(self):
        maxsize = self._q.maxsize()
        return maxsize > 0 and self._q.qsize() >= maxsize

    def close(self):
        """This process is done with the queue."""
        if not self._closed:
            self._closed = True
            self._q.close()

    def join_thread(self):
        """A no-op: mpwasm has no feeder thread, so nothing waits at exit."""

    def cancel_join_thread(self):
        """A no-op (see `join_thread`)."""

    def shutdown(self, immediate=False):
        """Shuts the queue down for every process (Python 3.13)."""
        try:
            self._q.shutdown(immediate)
        except _wit.Err as e:
            raise _wit.exception(e, "Queue.shutdown") from None

    def __reduce__(self):
        return (_adopt, (type(self), self._q.share()))


class JoinableQueue(Queue):
    """A `Queue` with `task_done()` and `join()`."""

    _joinable = True

    def task_done(self):
        try:
            self._q.task_done()
        except _wit.Err:
            raise ValueError("task_done() called too many times") from None

    def join(self):
        try:
            self._q.join(None)
        except _wit.Err as e:
            raise _wit.exception(e, "JoinableQueue.join") from None


class SimpleQueue(Queue):
    """Python's `SimpleQueue`: `put`, `get`, `empty`, `close`."""

    def __init__(self, *, ctx=None, _handle=None):
        super().__init__(0, _handle=_handle)


def _deadline(block, timeout):
    if not block:
        return 0
    return _wit.timeout_ms(timeout)


def _adopt(cls, cap):
    q = cls.__new__(cls)
    q._q = _wit.wqueue.adopt(cap)
    q._closed = False
    return q
