"""`Value`, `Array`, `RawValue` and `RawArray` over mpwasm's `shared`
interface: a shared memory region every holder maps, read and written
through bounds-checked copies. Type codes are `array`/`struct`'s ('i', 'd',
'c', …; 'l' and 'L' are 8 bytes, as on 64-bit Linux) or ctypes type names."""

import operator
import struct

from . import _wit
from .synchronize import RLock

__all__ = ["RawValue", "RawArray", "Value", "Array", "synchronized"]

_CTYPES = {
    "c_bool": "?", "c_char": "c", "c_wchar": "u", "c_byte": "b", "c_ubyte": "B",
    "c_short": "h", "c_ushort": "H", "c_int": "i", "c_uint": "I", "c_long": "q",
    "c_ulong": "Q", "c_longlong": "q", "c_ulonglong": "Q", "c_float": "f",
    "c_double": "d", "c_int8": "b", "c_uint8": "B", "c_int16": "h", "c_uint16": "H",
    "c_int32": "i", "c_uint32": "I", "c_int64": "q", "c_uint64": "Q", "c_size_t": "Q",
    "c_ssize_t": "q",
}
_NAMES = {"?": "c_bool", "c": "c_char", "u": "c_wchar", "b": "c_byte", "B": "c_ubyte",
          "h": "c_short", "H": "c_ushort", "i": "c_int", "I": "c_uint", "l": "c_long",
          "L": "c_ulong", "q": "c_longlong", "Q": "c_ulonglong", "f": "c_float", "d": "c_double"}


_INTS = frozenset("bBhHiIlLqQ")
_SIGNED = frozenset("bhilq")
_MASK = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFF_FFFF, 8: 0xFFFF_FFFF_FFFF_FFFF}
_HALF = {1: 1 << 7, 2: 1 << 15, 4: 1 << 31, 8: 1 << 63}


def _code(typecode_or_type):
    if isinstance(typecode_or_type, str):
        code = typecode_or_type
    else:
        code = _CTYPES.get(getattr(typecode_or_type, "__name__", ""), None)
        if code is None:
            raise TypeError(f"unsupported shared type {typecode_or_type!r}")
    if code == "l":
        return "l", "<q"
    if code == "L":
        return "L", "<Q"
    if code == "u":
        return "u", "<I"
    fmt = "<" + code
    struct.calcsize(fmt)  # raises struct.error for an unknown code
    return code, fmt


def _to_raw(code, value):
    if code == "u":
        return ord(value)
    if code == "c" and isinstance(value, int):
        return bytes([value])  # an item of a bytes initializer
    return value


def _from_raw(code, value):
    if code == "u":
        return chr(value)
    return value


def _region(size):
    try:
        return _wit.shared.create(max(size, 1), None)
    except _wit.Err as e:
        raise _wit.exception(e, "shared memory") from None


class RawValue:
    """A single shared value: `.value`."""

    def __init__(self, typecode_or_type, *args, _region=None):
        self._code, self._fmt = _code(typecode_or_type)
        self._size = struct.calcsize(self._fmt)
        # An integer is one atomic load or store (`*-or-trap`: the offset
        # and width are always valid here), cheaper than a copy and
        # `struct`. These bound and fold it to and from the stored word.
        self._int = self._code in _INTS
        if self._int:
            self._mask = _MASK[self._size]
            signed = self._code in _SIGNED
            self._half = _HALF[self._size] if signed else self._mask + 1
            self._lo = -_HALF[self._size] if signed else 0
            self._hi = self._half - 1 if signed else self._mask
        if _region is None:
            self._r = _region_of(self._size)
            if args:
                self.value = args[0]
        else:
            self._r = _region

    @property
    def value(self):
        if self._int:
            v = self._r.load_or_trap(0, self._size) & self._mask
            return v - self._mask - 1 if v >= self._half else v
        return _from_raw(self._code, struct.unpack(self._fmt, self._r.read(0, self._size))[0])

    @value.setter
    def value(self, v):
        if self._int:
            if type(v) is not int or not self._lo <= v <= self._hi:
                struct.pack(self._fmt, v)  # the range check CPython's ctypes would not do
                v = operator.index(v)
            v &= self._mask
            self._r.store_or_trap(0, self._size, v - (1 << 64) if v >= 1 << 63 else v)
            return
        self._r.write(0, struct.pack(self._fmt, _to_raw(self._code, v)))

    def __repr__(self):
        return f"{_NAMES.get(self._code, self._code)}({self.value!r})"

    def __reduce__(self):
        return (_adopt_value, (type(self), self._code, self._r.share()))


def _adopt_value(cls, code, cap):
    return RawValue(code, _region=_wit.shared.adopt(cap))


class RawArray:
    """A shared array of `size` values: indexing, slices, `len`."""

    def __init__(self, typecode_or_type, size_or_initializer, _region=None, _len=None):
        self._code, self._fmt = _code(typecode_or_type)
        self._item = struct.calcsize(self._fmt)
        if _region is not None:
            self._r, self._len = _region, _len
            return
        if isinstance(size_or_initializer, int):
            self._len = size_or_initializer
            init = None
        else:
            init = list(size_or_initializer)
            self._len = len(init)
        self._r = _region_of(self._item * self._len)
        if init:
            self[:] = init

    def __len__(self):
        return self._len

    def _all(self):
        data = self._r.read(0, self._item * self._len)
        return [_from_raw(self._code, v[0]) for v in struct.iter_unpack(self._fmt, data)]

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self._all()[index] if self._code != "c" else b"".join(self._all()[index])
        i = self._index(index)
        v = struct.unpack(self._fmt, self._r.read(i * self._item, self._item))[0]
        return _from_raw(self._code, v)

    def __setitem__(self, index, value):
        if isinstance(index, slice):
            start, stop, step = index.indices(self._len)
            values = list(value)
            if step == 1:
                if len(values) != stop - start:
                    raise ValueError("Can only assign sequence of same size")
                data = b"".join(struct.pack(self._fmt, _to_raw(self._code, v)) for v in values)
                self._r.write(start * self._item, data)
                return
            positions = range(start, stop, step)
            if len(values) != len(positions):
                raise ValueError("Can only assign sequence of same size")
            for i, v in zip(positions, values):
                self[i] = v
            return
        i = self._index(index)
        self._r.write(i * self._item, struct.pack(self._fmt, _to_raw(self._code, value)))

    def _index(self, index):
        index = index.__index__()
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError("invalid index")
        return index

    def __iter__(self):
        return iter(self._all())

    @property
    def value(self):
        """For a 'c' array: the bytes up to the first NUL."""
        return b"".join(self._all()).split(b"\0", 1)[0]

    @value.setter
    def value(self, data):
        self.raw = bytes(data) + b"\0" if len(data) < self._len else bytes(data)

    @property
    def raw(self):
        return self._r.read(0, self._item * self._len)

    @raw.setter
    def raw(self, data):
        if len(data) > self._item * self._len:
            raise ValueError("byte string too long")
        self._r.write(0, bytes(data))

    def __repr__(self):
        return f"<{_NAMES.get(self._code, self._code)}_Array_{self._len} {self._all()!r}>"

    def __reduce__(self):
        return (_adopt_array, (self._code, self._r.share(), self._len))


def _region_of(size):
    return _region(size)


def _adopt_array(code, cap, length):
    return RawArray(code, 0, _region=_wit.shared.adopt(cap), _len=length)


class _Synchronized:
    """A shared object with a lock (`get_lock()`), as `Value(…, lock=True)`."""

    def __init__(self, obj, lock=None):
        self._obj = obj
        self._lock = lock if lock is not None else RLock()
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def get_lock(self):
        return self._lock

    def get_obj(self):
        return self._obj

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)

    def __reduce__(self):
        return (type(self), (self._obj, self._lock))

    @property
    def value(self):
        return self._obj.value

    @value.setter
    def value(self, v):
        self._obj.value = v


class Synchronized(_Synchronized):
    """`Value(…)` with a lock: `.value`, `get_lock()`."""

    def __repr__(self):
        return f"<Synchronized wrapper for {self._obj!r}>"


class SynchronizedArray(_Synchronized):
    """`Array(…)` with a lock."""

    def __len__(self):
        return len(self._obj)

    def __getitem__(self, i):
        with self:
            return self._obj[i]

    def __setitem__(self, i, v):
        with self:
            self._obj[i] = v

    def __iter__(self):
        return iter(self._obj)

    @property
    def raw(self):
        return self._obj.raw

    @raw.setter
    def raw(self, v):
        self._obj.raw = v

    def __repr__(self):
        return f"<SynchronizedArray wrapper for {self._obj!r}>"


def synchronized(obj, lock=None):
    """`obj` with a lock."""
    cls = SynchronizedArray if isinstance(obj, RawArray) else Synchronized
    return cls(obj, lock)


def _with_lock(obj, lock):
    if lock is False:
        return obj
    if lock in (True, None):
        lock = RLock()
    if not hasattr(lock, "acquire"):
        raise AttributeError(f"{lock!r} has no method 'acquire'")
    return synchronized(obj, lock)


def Value(typecode_or_type, *args, lock=True, ctx=None):
    """A shared value, with a lock unless `lock=False`."""
    return _with_lock(RawValue(typecode_or_type, *args), lock)


def Array(typecode_or_type, size_or_initializer, *, lock=True, ctx=None):
    """A shared array, with a lock unless `lock=False`."""
    return _with_lock(RawArray(typecode_or_type, size_or_initializer), lock)
