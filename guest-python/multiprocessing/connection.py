"""`Pipe`, `Connection` and `wait` over mpwasm's `pipe` interface."""

import pickle

from . import _wit

__all__ = ["Pipe", "Connection", "wait"]


class Connection:
    """One end of a pipe: `send`/`recv` pickled objects, or bytes."""

    def __init__(self, handle):
        self._c = handle

    def send(self, obj):
        self.send_bytes(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))

    def recv(self):
        return pickle.loads(self.recv_bytes())

    def send_bytes(self, buf, offset=0, size=None):
        data = bytes(memoryview(buf).cast("B"))
        if offset < 0 or offset > len(data):
            raise ValueError("offset out of bounds")
        end = len(data) if size is None else offset + size
        if size is not None and (size < 0 or end > len(data)):
            raise ValueError("size out of bounds")
        try:
            self._c.send(data[offset:end])
        except _wit.Err as e:
            if _wit.kind(e) in ("eof", "closed"):
                raise BrokenPipeError(32, "Broken pipe") from None
            raise _wit.exception(e, "Connection.send") from None

    def recv_bytes(self, maxlength=None):
        try:
            return self._c.recv(maxlength)
        except _wit.Err as e:
            if _wit.kind(e) == "limit":
                raise OSError("bad message length") from None
            raise _wit.exception(e, "Connection.recv") from None

    def recv_bytes_into(self, buf, offset=0):
        data = self.recv_bytes()
        view = memoryview(buf).cast("B")
        if offset + len(data) > len(view):
            from . import BufferTooShort
            raise BufferTooShort(data)
        view[offset:offset + len(data)] = data
        return len(data)

    def poll(self, timeout=0.0):
        try:
            return self._c.poll(_wit.timeout_ms(timeout))
        except _wit.Err as e:
            raise _wit.exception(e, "Connection.poll") from None

    def close(self):
        self._c.close()

    @property
    def closed(self):
        return self._c.closed()

    @property
    def readable(self):
        return self._c.readable()

    @property
    def writable(self):
        return self._c.writable()

    def fileno(self):
        raise OSError("mpwasm connections have no file descriptor")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __reduce__(self):
        return (_adopt, (self._c.share(),))


def _adopt(cap):
    return Connection(_wit.pipe.adopt(cap))


def Pipe(duplex=True):
    """A pair of connected `Connection`s; with `duplex=False` the first only
    receives and the second only sends."""
    try:
        a, b = _wit.pipe.pipe(duplex)
    except _wit.Err as e:
        raise _wit.exception(e, "Pipe") from None
    return Connection(a), Connection(b)


def wait(object_list, timeout=None):
    """The objects of `object_list` (connections, queues, process sentinels)
    that are ready within `timeout` seconds."""
    from .process import BaseProcess
    from .queues import Queue
    conns, queues, procs = [], [], []
    for obj in object_list:
        if isinstance(obj, Connection):
            conns.append(obj)
        elif isinstance(obj, Queue):
            queues.append(obj)
        elif isinstance(obj, BaseProcess):
            procs.append(obj)
        else:
            raise TypeError(f"cannot wait on {obj!r}")
    order = conns + queues + procs
    try:
        ready = _wit.pipe.wait([c._c for c in conns], [q._q for q in queues],
                               [p._handle for p in procs], _wit.timeout_ms(timeout))
    except _wit.Err as e:
        raise _wit.exception(e, "wait") from None
    return [order[i] for i in ready]
