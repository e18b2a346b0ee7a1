"""`SharedMemory` and `ShareableList` over mpwasm's `shared` interface.

A region is reached only through bounds-checked copies, so `buf` is not a
real memoryview: it is a buffer proxy that indexes, slices, assigns and
converts (`bytes(shm.buf)`, `shm.buf[:4] = b"abcd"`) like one, each access
one copy into or out of the region."""

import pickle
import secrets
import struct

from . import _wit

__all__ = ["SharedMemory", "ShareableList"]


class SharedBuffer:
    """`SharedMemory.buf`: a memoryview-like window on the region."""

    def __init__(self, region, size):
        self._r = region
        self._size = size

    def __len__(self):
        return self._size

    @property
    def nbytes(self):
        return self._size

    def _range(self, index):
        start, stop, step = index.indices(self._size)
        if step != 1:
            raise NotImplementedError("shared memory slices with a step")
        return start, max(start, stop)

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop = self._range(index)
            return self._r.read(start, stop - start)
        i = index.__index__()
        if i < 0:
            i += self._size
        if not 0 <= i < self._size:
            raise IndexError("index out of bounds on dimension 1")
        return self._r.read(i, 1)[0]

    def __setitem__(self, index, value):
        if isinstance(index, slice):
            start, stop = self._range(index)
            data = bytes(value)
            if len(data) != stop - start:
                raise ValueError("memoryview assignment: lvalue and rvalue have different structures")
            self._r.write(start, data)
            return
        i = index.__index__()
        if i < 0:
            i += self._size
        if not 0 <= i < self._size:
            raise IndexError("index out of bounds on dimension 1")
        self._r.write(i, bytes([value]))

    def tobytes(self):
        return self._r.read(0, self._size)

    def tolist(self):
        return list(self.tobytes())

    def __bytes__(self):
        return self.tobytes()

    def __iter__(self):
        return iter(self.tobytes())

    def __eq__(self, other):
        return self.tobytes() == bytes(other)

    def release(self):
        pass

    def __repr__(self):
        return f"<shared memory buffer of {self._size} bytes>"


class SharedMemory:
    """Python's `SharedMemory(name=None, create=False, size=0)`."""

    def __init__(self, name=None, create=False, size=0, *, track=True, _region=None):
        if _region is None:
            if not size >= 0:
                raise ValueError("'size' must be a positive integer")
            try:
                if create:
                    if size == 0:
                        raise ValueError("'size' must be a positive number different from zero")
                    if name is None:
                        name = "wnsm_" + secrets.token_hex(4)
                    _region = _wit.shared.create(size, name)
                else:
                    if name is None:
                        raise ValueError("'name' can only be None if create=True")
                    _region = _wit.shared.attach(name)
            except _wit.Err as e:
                if not create and _wit.kind(e) in ("other", "invalid_handle"):
                    raise FileNotFoundError(2, "No such file or directory", name) from None
                if create and _wit.kind(e) == "other":
                    raise FileExistsError(17, "File exists", name) from None
                raise _wit.exception(e, "SharedMemory") from None
        self._r = _region
        self._size = _region.size()
        self._name = _region.name()
        self._buf = SharedBuffer(self._r, self._size)

    @property
    def buf(self):
        return self._buf

    @property
    def name(self):
        return self._name

    @property
    def size(self):
        return self._size

    def close(self):
        """Nothing to unmap here; kept for CPython's API."""

    def unlink(self):
        """Removes the name; the memory lives until its last holder is gone."""
        try:
            self._r.unlink()
        except _wit.Err as e:
            raise _wit.exception(e, "SharedMemory.unlink") from None

    def __reduce__(self):
        return (_adopt, (self._r.share(),))

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r}, size={self.size})"


def _adopt(cap):
    return SharedMemory(_region=_wit.shared.adopt(cap))


_HEAD = struct.Struct("<I")


class ShareableList:
    """Python's `ShareableList(sequence, name=None)`: a fixed-length list of
    values in shared memory; each item keeps the room its first value took
    (at least 8 bytes), as in CPython."""

    def __init__(self, sequence=None, *, name=None):
        if sequence is not None:
            blobs = [pickle.dumps(v) for v in sequence]
            slots = [max(8, (len(b) + 11) // 8 * 8) for b in blobs]
            size = _HEAD.size * (1 + len(slots)) + sum(slots)
            self.shm = SharedMemory(name, create=True, size=size)
            head = _HEAD.pack(len(slots)) + b"".join(_HEAD.pack(s) for s in slots)
            self.shm.buf[: len(head)] = head
            self._layout()
            for i, b in enumerate(blobs):
                self._put(i, b)
        else:
            self.shm = SharedMemory(name)
            self._layout()

    def _layout(self):
        raw = self.shm._r
        (n,) = _HEAD.unpack(raw.read(0, 4))
        slots = struct.unpack(f"<{n}I", raw.read(4, 4 * n))
        offset = 4 * (1 + n)
        self._slots = []
        for s in slots:
            self._slots.append((offset, s))
            offset += s

    def _put(self, i, blob):
        offset, room = self._slots[i]
        if len(blob) + 4 > room:
            raise ValueError("bytes/str item exceeds available storage")
        self.shm._r.write(offset, _HEAD.pack(len(blob)) + blob)

    def _index(self, i):
        i = i.__index__()
        if i < 0:
            i += len(self._slots)
        if not 0 <= i < len(self._slots):
            raise IndexError("index out of range")
        return i

    def __getitem__(self, i):
        offset, _ = self._slots[self._index(i)]
        (n,) = _HEAD.unpack(self.shm._r.read(offset, 4))
        return pickle.loads(self.shm._r.read(offset + 4, n))

    def __setitem__(self, i, value):
        self._put(self._index(i), pickle.dumps(value))

    def __len__(self):
        return len(self._slots)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def count(self, value):
        return sum(1 for v in self if v == value)

    def index(self, value):
        for i, v in enumerate(self):
            if v == value:
                return i
        raise ValueError(f"{value!r} not in this container")

    def __reduce__(self):
        return (_adopt_list, (self.shm,))

    def __repr__(self):
        return f"{type(self).__name__}({list(self)!r}, name={self.shm.name!r})"


def _adopt_list(shm):
    sl = ShareableList.__new__(ShareableList)
    sl.shm = shm
    sl._layout()
    return sl
