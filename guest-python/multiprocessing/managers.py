"""`Manager()` over mpwasm's `manager` interface: lists, dicts and
namespaces held by the parent mpwasm process, outliving any worker. Values
are pickled; list indices travel as bincode `i64`s, as the host reads them.
Dict keys are pickled after folding `True`/`1.0` into `1`, so keys Python
finds equal are one key."""

import pickle

from . import _wit

__all__ = ["Manager", "SyncManager", "BaseManager", "ListProxy", "DictProxy", "Namespace"]

_P = pickle.HIGHEST_PROTOCOL


def _index(n):
    """`n` as bincode 2's varint (zigzag) `i64`."""
    n = n.__index__()
    if not -(2**63) <= n < 2**63:
        raise IndexError("list index out of range")
    z = (n << 1) ^ (n >> 63)
    if z < 251:
        return bytes([z])
    if z < 2**16:
        return b"\xfb" + z.to_bytes(2, "little")
    if z < 2**32:
        return b"\xfc" + z.to_bytes(4, "little")
    return b"\xfd" + z.to_bytes(8, "little")


def _key(k):
    if isinstance(k, (bool, float)) and k == int(k):
        k = int(k)
    return pickle.dumps(k, protocol=_P)


def _call(fn, *args, what="manager"):
    try:
        return fn(*args)
    except _wit.Err as e:
        if _wit.kind(e) == "other" and "range" in str(e.value.value):
            raise IndexError(f"{what} index out of range") from None
        raise _wit.exception(e, what) from None


class BaseProxy:
    _container = None

    def __init__(self, _handle=None):
        if _handle is None:
            _handle = _call(_wit.manager.create, self._container)
        self._p = _handle

    def __reduce__(self):
        return (_adopt, (type(self), self._p.share()))

    def _getvalue(self):
        raise NotImplementedError

    def __str__(self):
        return str(self._getvalue())

    def __repr__(self):
        return f"<{type(self).__name__} object, typeid {self._typeid!r}>"


def _adopt(cls, cap):
    obj = cls.__new__(cls)
    obj._p = _call(_wit.manager.adopt, cap)
    return obj


class ListProxy(BaseProxy):
    """`manager.list()`: a list in the parent."""

    _container = _wit.manager.Container.LIST
    _typeid = "list"

    def _getvalue(self):
        return [pickle.loads(v) for _, v in _call(self._p.items)]

    def __len__(self):
        return _call(self._p.len)

    def append(self, value):
        _call(self._p.append, pickle.dumps(value, protocol=_P))

    def extend(self, values):
        _call(self._p.extend, [pickle.dumps(v, protocol=_P) for v in values])

    def insert(self, index, value):
        _call(self._p.insert, index, pickle.dumps(value, protocol=_P))

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self._getvalue()[index]
        data = _call(self._p.get, _index(index), what="list")
        if data is None:
            raise IndexError("list index out of range")
        return pickle.loads(data)

    def __setitem__(self, index, value):
        if isinstance(index, slice):
            items = self._getvalue()
            items[index] = value
            _call(self._p.clear)
            self.extend(items)
            return
        _call(self._p.set, _index(index), pickle.dumps(value, protocol=_P), what="list assignment")

    def pop(self, index=-1):
        if len(self) == 0:
            raise IndexError("pop from empty list")
        return pickle.loads(_call(self._p.pop, _index(index), what="pop"))

    def __contains__(self, value):
        return value in self._getvalue()

    def __iter__(self):
        return iter(self._getvalue())

    def index(self, value, *args):
        return self._getvalue().index(value, *args)

    def count(self, value):
        return self._getvalue().count(value)

    def remove(self, value):
        self.pop(self.index(value))

    def clear(self):
        _call(self._p.clear)

    def __eq__(self, other):
        return self._getvalue() == (other._getvalue() if isinstance(other, ListProxy) else other)

    def __iadd__(self, values):
        self.extend(values)
        return self


class DictProxy(BaseProxy):
    """`manager.dict()`: a dict in the parent."""

    _container = _wit.manager.Container.DICT
    _typeid = "dict"

    def _getvalue(self):
        return {pickle.loads(k): pickle.loads(v) for k, v in _call(self._p.items)}

    def __len__(self):
        return _call(self._p.len)

    def __getitem__(self, key):
        data = _call(self._p.get, _key(key))
        if data is None:
            raise KeyError(key)
        return pickle.loads(data)

    def __setitem__(self, key, value):
        _call(self._p.set, _key(key), pickle.dumps(value, protocol=_P))

    def __delitem__(self, key):
        if key not in self:
            raise KeyError(key)
        _call(self._p.pop, _key(key))

    def __contains__(self, key):
        return _call(self._p.contains, _key(key))

    def get(self, key, default=None):
        data = _call(self._p.get, _key(key))
        return default if data is None else pickle.loads(data)

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def pop(self, key, *default):
        if key not in self:
            if default:
                return default[0]
            raise KeyError(key)
        return pickle.loads(_call(self._p.pop, _key(key)))

    def update(self, other=(), **kw):
        for k, v in dict(other, **kw).items():
            self[k] = v

    def keys(self):
        return list(self._getvalue().keys())

    def values(self):
        return list(self._getvalue().values())

    def items(self):
        return list(self._getvalue().items())

    def __iter__(self):
        return iter(self.keys())

    def clear(self):
        _call(self._p.clear)

    def copy(self):
        return self._getvalue()

    def __eq__(self, other):
        return self._getvalue() == (other._getvalue() if isinstance(other, DictProxy) else other)


class Namespace(BaseProxy):
    """`manager.Namespace()`: attributes held in the parent."""

    _container = _wit.manager.Container.NAMESPACE
    _typeid = "Namespace"

    def __init__(self, _handle=None, **kwds):
        object.__setattr__(self, "_p", None)
        BaseProxy.__init__(self, _handle)
        for k, v in kwds.items():
            setattr(self, k, v)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        data = _call(self._p.get, _key(name))
        if data is None:
            raise AttributeError(name)
        return pickle.loads(data)

    def __setattr__(self, name, value):
        if name.startswith("_"):
            return object.__setattr__(self, name, value)
        _call(self._p.set, _key(name), pickle.dumps(value, protocol=_P))

    def __delattr__(self, name):
        _call(self._p.pop, _key(name))

    def __repr__(self):
        items = {pickle.loads(k): pickle.loads(v) for k, v in _call(self._p.items)}
        return "Namespace(" + ", ".join(f"{k}={v!r}" for k, v in items.items()) + ")"


class SyncManager:
    """What `Manager()` returns: makes shared containers and primitives."""

    def __init__(self, address=None, authkey=None, serializer="pickle", ctx=None):
        self._state = "started"

    def start(self, initializer=None, initargs=()):
        return None

    def connect(self):
        return None

    def shutdown(self):
        self._state = "shutdown"

    def join(self, timeout=None):
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()

    def list(self, sequence=()):
        proxy = ListProxy()
        if sequence:
            proxy.extend(sequence)
        return proxy

    def dict(self, *args, **kwds):
        proxy = DictProxy()
        proxy.update(dict(*args, **kwds))
        return proxy

    def Namespace(self, **kwds):
        return Namespace(**kwds)

    def Value(self, typecode, value, lock=True):
        from .sharedctypes import Value
        return Value(typecode, value, lock=lock)

    def Array(self, typecode, sequence, lock=True):
        from .sharedctypes import Array
        return Array(typecode, sequence, lock=lock)

    def Queue(self, maxsize=0):
        from .queues import Queue
        return Queue(maxsize)

    def JoinableQueue(self, maxsize=0):
        from .queues import JoinableQueue
        return JoinableQueue(maxsize)

    def Lock(self):
        from .synchronize import Lock
        return Lock()

    def RLock(self):
        from .synchronize import RLock
        return RLock()

    def Semaphore(self, value=1):
        from .synchronize import Semaphore
        return Semaphore(value)

    def BoundedSemaphore(self, value=1):
        from .synchronize import BoundedSemaphore
        return BoundedSemaphore(value)

    def Event(self):
        from .synchronize import Event
        return Event()

    def Condition(self, lock=None):
        from .synchronize import Condition
        return Condition(lock)

    def Barrier(self, parties, action=None, timeout=None):
        from .synchronize import Barrier
        return Barrier(parties, action, timeout)

    def Pool(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None):
        from .pool import Pool
        return Pool(processes, initializer, initargs, maxtasksperchild)


BaseManager = SyncManager


def Manager(*, ctx=None):
    """A manager: `with Manager() as m: lst = m.list()`."""
    return SyncManager()
