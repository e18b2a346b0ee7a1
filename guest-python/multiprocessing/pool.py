"""`Pool` over mpwasm's `pool` interface: the parent mpwasm process runs the
workers with the host crate's scheduler. Like CPython, `map` cuts its
inputs into chunks; each chunk travels as one pickle and is run by one
call in a worker (one host call per chunk, not per item). There are no
threads here: `*_async` callbacks run when results are collected — in
`get`, `wait`, `ready`, `successful`, `close`/`join`, or another call."""

import itertools
import pickle
import struct
import time
import weakref

from . import _wit

__all__ = ["Pool", "ThreadPool", "AsyncResult", "ApplyResult", "MapResult", "IMapIterator"]

RUN, CLOSE, TERMINATE = 0, 1, 2
_MODE_ONE, _MODE_STAR, _MODE_APPLY = 0, 1, 2
_live = weakref.WeakSet()


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker (its `__cause__`)."""

    def __init__(self, tb):
        self.tb = tb

    def __str__(self):
        return self.tb


class MaybeEncodingError(Exception):
    """A worker's result or exception could not be pickled."""

    def __init__(self, exc, value):
        self.exc = repr(exc)
        self.value = repr(value)
        super().__init__(self.exc, self.value)

    def __str__(self):
        return f"Error sending result: '{self.value}'. Reason: '{self.exc}'"


class WorkerError(Exception):
    """A task stopped by mpwasm, not by Python: a trap, a sandbox limit
    (`--memory`, `--fuel`), a deadline, or its worker process dying.
    `kind` is the host's name for it (`resource_limit`, `timeout`, …)."""

    def __init__(self, kind, message):
        self.kind = kind
        super().__init__(f"{kind}: {message}")


def _result_of(payload_result):
    """A chunk's results, or the exception it raised (with the remote traceback)."""
    if isinstance(payload_result, _wit.Err):
        f = payload_result.value
        return None, WorkerError(f.kind, f.message)
    ok, *rest = pickle.loads(payload_result.value)
    if ok:
        return rest[0], None
    exc, tb = rest
    exc.__cause__ = RemoteTraceback('\n"""\n' + tb + '"""')
    return None, exc


def _batch(payloads):
    return b"".join(struct.pack("<I", len(p)) + p for p in payloads)


class _Job:
    """One `submit`: the chunks' results as they arrive."""

    def __init__(self, pool, func, chunks, mode, ordered):
        payloads = [pickle.dumps((func, c, mode), protocol=pickle.HIGHEST_PROTOCOL) for c in chunks]
        self.total = len(payloads)
        self.arrived = {}
        self.order = []
        if not payloads:
            self.job = None
            return
        # Each payload is already a chunk: one per call.
        try:
            self.job = pool._pool.submit("__mp_chunk__", _batch(payloads), ordered, 1)
        except _wit.Err as e:
            raise _wit.exception(e, "Pool.submit") from None

    def done(self):
        return len(self.arrived) == self.total

    def pump(self, timeout):
        """Collects what arrives within `timeout` s (None: until one batch
        arrives). False if nothing arrived in time."""
        if self.done():
            return True
        try:
            got = self.job.next(_wit.timeout_ms(timeout))
        except _wit.Err as e:
            if _wit.kind(e) == "timeout":
                return False
            raise _wit.exception(e, "Pool") from None
        for pos, res in got:
            self.arrived[pos] = _result_of(res)
            self.order.append(pos)
        return True


class ApplyResult:
    """Python's `AsyncResult`: `get(timeout)`, `wait`, `ready`, `successful`."""

    def __init__(self, pool, job, callback, error_callback):
        self._pool = pool
        self._job = job
        self._callback = callback
        self._error_callback = error_callback
        self._value = None
        self._error = None
        self._finished = False
        pool._pending.append(self)
        self._settle()

    def _wait(self, timeout):
        end = None if timeout is None else time.monotonic() + timeout
        while not self._finished:
            left = None if end is None else max(0.0, end - time.monotonic())
            if not self._job.pump(left) and left is not None:
                break
            self._settle()
            if end is not None and time.monotonic() >= end:
                break
        return self._finished

    def _settle(self):
        if self._finished or not self._job.done():
            return
        self._finished = True
        results = []
        for pos in range(self._job.total):
            value, exc = self._job.arrived[pos]
            if exc is not None:
                self._error = exc
                break
            results.extend(value)
        if self._error is None:
            self._value = self._collect(results)
        if self in self._pool._pending:
            self._pool._pending.remove(self)
        if self._error is None and self._callback is not None:
            self._callback(self._value)
        if self._error is not None and self._error_callback is not None:
            self._error_callback(self._error)

    def _collect(self, results):
        return results[0]

    def ready(self):
        self._wait(0)
        return self._finished

    def successful(self):
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return self._error is None

    def wait(self, timeout=None):
        self._wait(timeout)

    def get(self, timeout=None):
        if not self._wait(timeout):
            from . import TimeoutError
            raise TimeoutError
        if self._error is not None:
            raise self._error
        return self._value


AsyncResult = ApplyResult


class MapResult(ApplyResult):
    """The `AsyncResult` of `map_async`/`starmap_async`: a list."""

    def _collect(self, results):
        return results


class IMapIterator:
    """The iterator `imap` and `imap_unordered` return (`next(timeout)`)."""

    def __init__(self, pool, job, ordered):
        self._pool = pool
        self._job = job
        self._ordered = ordered
        self._next_pos = 0
        self._ready = []

    def __iter__(self):
        return self

    def next(self, timeout=None):
        end = None if timeout is None else time.monotonic() + timeout
        while not self._ready:
            if self._next_pos >= self._job.total:
                raise StopIteration
            pos = self._take()
            if pos is not None:
                value, exc = self._job.arrived[pos]
                self._next_pos += 1
                if exc is not None:
                    raise exc
                self._ready.extend(value)
                continue
            left = None if end is None else max(0.0, end - time.monotonic())
            if not self._job.pump(left) and left is not None:
                from . import TimeoutError
                raise TimeoutError
        return self._ready.pop(0)

    __next__ = next

    def _take(self):
        if self._ordered:
            return self._next_pos if self._next_pos in self._job.arrived else None
        if self._next_pos < len(self._job.order):
            return self._job.order[self._next_pos]
        return None


class Pool:
    """Python's `multiprocessing.Pool(processes, initializer, initargs,
    maxtasksperchild)`: worker processes running this program's functions."""

    def __init__(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None, context=None):
        if processes is None:
            processes = _wit.runtime.cpu_count() or 1
        if processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if maxtasksperchild is not None and (not isinstance(maxtasksperchild, int) or maxtasksperchild <= 0):
            raise ValueError("maxtasksperchild must be a positive int or None")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        init, args = None, b""
        if initializer is not None:
            init = "__mp_init__"
            args = pickle.dumps((initializer, tuple(initargs)), protocol=pickle.HIGHEST_PROTOCOL)
        options = _wit.pool.PoolOptions(processes, init, args, maxtasksperchild)
        try:
            self._pool = _wit.pool.create(options)
        except _wit.Err as e:
            raise _wit.exception(e, "Pool") from None
        self._processes = processes
        self._state = RUN
        self._pending = []
        self._joined = False
        _live.add(self)

    def _check_running(self):
        if self._state != RUN:
            raise ValueError("Pool not running")

    def _chunks(self, iterable, chunksize, per_worker=4):
        # A range, list or tuple is sliced as it is: a range's chunks are
        # ranges (a pickle of a few bytes, not one item per number), and no
        # copy of the whole input is made first. Anything else is read into
        # a list, as CPython's `Pool` does.
        items = iterable if type(iterable) in (range, list, tuple) else list(iterable)
        if chunksize is None:
            chunksize, extra = divmod(len(items), self._processes * per_worker)
            if extra:
                chunksize += 1
        if chunksize < 1:
            chunksize = 1
        return [items[i:i + chunksize] for i in range(0, len(items), chunksize)]

    def apply(self, func, args=(), kwds={}):
        """`func(*args, **kwds)` in a worker; its value."""
        return self.apply_async(func, args, kwds).get()

    def apply_async(self, func, args=(), kwds={}, callback=None, error_callback=None):
        self._check_running()
        job = _Job(self, func, [[(tuple(args), dict(kwds))]], _MODE_APPLY, True)
        return ApplyResult(self, job, callback, error_callback)

    def map(self, func, iterable, chunksize=None):
        """`[func(x) for x in iterable]`, in the workers."""
        return self._map_async(func, iterable, _MODE_ONE, chunksize).get()

    def starmap(self, func, iterable, chunksize=None):
        """`[func(*args) for args in iterable]`, in the workers."""
        return self._map_async(func, iterable, _MODE_STAR, chunksize).get()

    def map_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        return self._map_async(func, iterable, _MODE_ONE, chunksize, callback, error_callback)

    def starmap_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        return self._map_async(func, iterable, _MODE_STAR, chunksize, callback, error_callback)

    def _map_async(self, func, iterable, mode, chunksize, callback=None, error_callback=None):
        self._check_running()
        if not hasattr(iterable, "__len__"):
            iterable = list(iterable)
        job = _Job(self, func, self._chunks(iterable, chunksize), mode, True)
        return MapResult(self, job, callback, error_callback)

    def imap(self, func, iterable, chunksize=1):
        """Results in order, as they become available."""
        return self._imap(func, iterable, chunksize, True)

    def imap_unordered(self, func, iterable, chunksize=1):
        """Results as they complete."""
        return self._imap(func, iterable, chunksize, False)

    def _imap(self, func, iterable, chunksize, ordered):
        self._check_running()
        if chunksize < 1:
            raise ValueError(f"Chunksize must be 1+, not {chunksize:n}")
        job = _Job(self, func, self._chunks(iterable, chunksize), _MODE_ONE, ordered)
        return IMapIterator(self, job, ordered)

    def close(self):
        """No more work: the workers end once the submitted work is done."""
        if self._state == RUN:
            self._state = CLOSE
            self._pool.close()

    def terminate(self):
        """Stops the workers now; running tasks are killed."""
        self._state = TERMINATE
        self._pending = []
        self._pool.terminate()

    def join(self):
        """Waits for the workers to end, after `close` or `terminate`."""
        if self._state == RUN:
            raise ValueError("Pool is still running")
        for result in list(self._pending):
            result.wait()
        if not self._joined:
            self._joined = True
            try:
                self._pool.join()
            except _wit.Err as e:
                raise _wit.exception(e, "Pool.join") from None

    def __enter__(self):
        self._check_running()
        return self

    def __exit__(self, *exc):
        self.terminate()
        self.join()

    def __repr__(self):
        state = ("RUN", "CLOSE", "TERMINATE")[self._state]
        return f"<multiprocessing.pool.Pool state={state} pool_size={self._processes}>"

    def __reduce__(self):
        raise NotImplementedError("pool objects cannot be passed between processes or pickled")


ThreadPool = Pool


def _shutdown_all():
    """Ends every pool still alive when main returns (CPython's finalizer)."""
    for pool in list(_live):
        try:
            pool.terminate()
            pool.join()
        except Exception:
            pass


def run_chunk(payload):
    """A worker's side of one chunk: its results (or exception) pickled."""
    import traceback
    try:
        func, chunk, mode = pickle.loads(payload)
        if mode == _MODE_ONE:
            out = list(map(func, chunk))
        elif mode == _MODE_STAR:
            out = list(itertools.starmap(func, chunk))
        else:
            out = [func(*a, **k) for a, k in chunk]
        try:
            return pickle.dumps((True, out), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:
            return pickle.dumps((False, MaybeEncodingError(e, out), traceback.format_exc()))
    except Exception as e:
        tb = traceback.format_exc()
        try:
            return pickle.dumps((False, e, tb), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as pe:
            return pickle.dumps((False, MaybeEncodingError(pe, e), tb))
