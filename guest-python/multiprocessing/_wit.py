"""The WIT imports, and their errors as the exceptions CPython raises."""

import queue as _queue
import threading as _threading

from componentize_py_types import Err  # noqa: F401  (re-exported)
from wit_world.imports import manager, pipe, pool, process, runtime, shared, sync  # noqa: F401
from wit_world.imports import queue as wqueue  # noqa: F401
from wit_world.imports import types


class LimitError(OSError):
    """A sandbox limit of the run refused the operation (mpwasm's `limit`)."""


def kind(err):
    """The WIT error variant's name: 'empty', 'timeout', 'owner_died', …"""
    return type(err.value).__name__.split("_", 1)[1].lower()


def exception(err, what="operation"):
    """The Python exception for a WIT error `err` (an `Err`)."""
    value = err.value
    if isinstance(value, types.Error_Empty):
        return _queue.Empty()
    if isinstance(value, types.Error_Full):
        return _queue.Full()
    if isinstance(value, types.Error_Eof):
        return EOFError()
    if isinstance(value, types.Error_Closed):
        return OSError(f"{what}: handle is closed")
    if isinstance(value, types.Error_Timeout):
        return TimeoutError(f"{what} timed out")
    if isinstance(value, types.Error_InvalidHandle):
        return ValueError(f"{what}: invalid handle")
    if isinstance(value, types.Error_Limit):
        return LimitError(f"{what}: {value.value}")
    if isinstance(value, types.Error_Broken):
        return _threading.BrokenBarrierError()
    if isinstance(value, types.Error_ShutDown):
        return getattr(_queue, "ShutDown", OSError)()
    if isinstance(value, types.Error_Other):
        return OSError(f"{what}: {value.value}")
    return OSError(f"{what}: {value!r}")


def timeout_ms(timeout):
    """A Python timeout in seconds (None: forever) as WIT milliseconds."""
    if timeout is None:
        return None
    return max(0, int(timeout * 1000))
