"""`Process` and the process-identity functions, over mpwasm's `process`
interface: each process is another sandboxed worker process running this
same program as `__mp_main__`, its target and arguments pickled (as
CPython's spawn start method does)."""

import os
import pickle

from . import _wit

__all__ = ["BaseProcess", "Process", "current_process", "parent_process", "active_children"]


class BaseProcess:
    """A process: `Process(target=f, args=(…))` then `start()`/`join()`."""

    def __init__(self, group=None, target=None, name=None, args=(), kwargs=None, *, daemon=None):
        assert group is None, "group argument must be None for now"
        self._target = target
        self._args = tuple(args)
        self._kwargs = dict(kwargs or {})
        self._name = None if name is None else str(name)
        self._daemon = bool(daemon) if daemon is not None else current_process().daemon
        self._handle = None
        self._closed = False
        self._exitcode = None

    def run(self):
        """What the process runs: the target, on its arguments."""
        if self._target:
            self._target(*self._args, **self._kwargs)

    def start(self):
        """Starts the process (a new sandboxed worker process)."""
        self._check_closed()
        if self._handle is not None:
            raise AssertionError("cannot start a process twice")
        if type(self).run is not BaseProcess.run:
            call = (_run_method, (self,), {})
        else:
            call = (self._target, self._args, self._kwargs)
        payload = pickle.dumps(call, protocol=pickle.HIGHEST_PROTOCOL)
        handle = _wit.process.Process("__mp_process__", payload, self._name, self._daemon)
        try:
            handle.start()
        except _wit.Err as e:
            raise _wit.exception(e, "Process.start") from None
        self._handle = handle

    def join(self, timeout=None):
        """Waits for the process to end, at most `timeout` seconds."""
        self._check_closed()
        if self._handle is None:
            raise AssertionError("can only join a started process")
        try:
            code = self._handle.join(_wit.timeout_ms(timeout))
        except _wit.Err as e:
            raise _wit.exception(e, "Process.join") from None
        if code is not None:
            self._exitcode = code

    def is_alive(self):
        self._check_closed()
        return self._handle is not None and self._handle.is_alive()

    def terminate(self):
        """Sends SIGTERM."""
        self._check_closed()
        if self._handle is not None:
            self._signal(self._handle.terminate)

    def kill(self):
        """Sends SIGKILL."""
        self._check_closed()
        if self._handle is not None:
            self._signal(self._handle.kill)

    def _signal(self, send):
        try:
            send()
        except _wit.Err:
            pass  # already gone

    def close(self):
        """Releases the process's resources; a running process is an error."""
        if self._closed:
            return
        if self._handle is not None:
            try:
                self._handle.close()
            except _wit.Err:
                raise ValueError("Cannot close a process while it is still running. "
                                 "You should first call join() or terminate().") from None
            self._exitcode = self.exitcode
        self._closed = True

    def _check_closed(self):
        if self._closed:
            raise ValueError("process object is closed")

    @property
    def name(self):
        if self._handle is not None:
            return self._handle.name()
        return self._name if self._name is not None else "Process-?"

    @name.setter
    def name(self, value):
        self._name = str(value)

    @property
    def daemon(self):
        return self._daemon

    @daemon.setter
    def daemon(self, value):
        if self._handle is not None:
            raise AssertionError("process has already started")
        self._daemon = bool(value)

    @property
    def pid(self):
        return None if self._handle is None else self._handle.pid()

    ident = pid

    @property
    def exitcode(self):
        if self._handle is None or self._closed:
            return self._exitcode
        return self._handle.exitcode()

    @property
    def sentinel(self):
        """What `multiprocessing.connection.wait` waits on (this process)."""
        self._check_closed()
        if self._handle is None:
            raise ValueError("process not started")
        return self

    @property
    def authkey(self):
        return b""

    def __repr__(self):
        if self._handle is None:
            status = "initial"
        elif self.exitcode is None:
            status = "started"
        else:
            status = f"stopped exitcode={self.exitcode}"
        return f"<{type(self).__name__} name={self.name!r} {status}{' daemon' if self._daemon else ''}>"

    def __reduce__(self):
        if self._handle is None:
            raise TypeError("Pickling an unstarted Process is not supported")
        return (_adopt, (self._handle.share(),))


class Process(BaseProcess):
    """Python's `multiprocessing.Process`."""


def _run_method(process):
    process.run()


def _adopt(cap):
    return _wrap(_wit.process.adopt(cap))


def _wrap(handle):
    p = Process.__new__(Process)
    p._target, p._args, p._kwargs, p._name = None, (), {}, None
    p._closed, p._exitcode = False, None
    p._handle = handle
    p._daemon = handle.daemon()
    return p


class _Current:
    """What `current_process()` returns: this worker process."""

    def __init__(self):
        info = _wit.runtime.worker()
        self.name = info.name
        self.pid = info.pid
        self.ident = info.pid
        self.daemon = False
        self.exitcode = None
        self.authkey = b""

    def is_alive(self):
        return True

    def __repr__(self):
        return f"<_MainProcess name={self.name!r} parent=None started>" if self.name == "MainProcess" \
            else f"<Process name={self.name!r} started>"


class _Parent:
    def __init__(self, info):
        self.name = info.name
        self.pid = info.pid
        self.ident = info.pid

    def __repr__(self):
        return f"<_ParentProcess name={self.name!r} parent=None>"


_current = None


def current_process():
    """This process: its `name` and `pid`."""
    global _current
    if _current is None:
        _current = _Current()
    return _current


def parent_process():
    """The process that started this one; None in the main process or a pool worker."""
    info = _wit.process.parent()
    return None if info is None else _Parent(info)


def active_children():
    """This process's children that are still running."""
    return [_wrap(h) for h in _wit.process.active_children()]


def _getpid():
    return current_process().pid


os.getpid = _getpid
