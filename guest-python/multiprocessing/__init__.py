"""Python's `multiprocessing` for mpwasm guests.

Every `Process` and every pool worker is another sandboxed worker process
running the same program as `__mp_main__`; objects travel pickled, handles
(queues, pipes, locks, shared memory, manager containers) as capabilities
the host redeems. There are no threads in a guest: what CPython does in
helper threads (queue feeding, pool result handling) the host does.
"""

from . import context as _context
from .connection import Pipe
from .context import (allow_connection_pickling, freeze_support, get_all_start_methods,
                      get_context, get_start_method, set_executable, set_forkserver_preload,
                      set_start_method)
from .managers import Manager
from .pool import Pool
from .process import Process, active_children, current_process, parent_process
from .queues import JoinableQueue, Queue, SimpleQueue
from .sharedctypes import Array, RawArray, RawValue, Value
from .synchronize import Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore

from . import _wit


class ProcessError(Exception):
    pass


class BufferTooShort(ProcessError):
    pass


class TimeoutError(ProcessError):
    pass


class AuthenticationError(ProcessError):
    pass


SUBDEBUG = 5
SUBWARNING = 25


def cpu_count():
    """Number of CPUs the host offers."""
    return _wit.runtime.cpu_count()


def get_logger():
    import logging
    return logging.getLogger("multiprocessing")


def log_to_stderr(level=None):
    import logging
    logger = get_logger()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(levelname)s/%(processName)s] %(message)s"))
    logger.addHandler(handler)
    if level:
        logger.setLevel(level)
    return logger


__all__ = [
    "Array", "AuthenticationError", "Barrier", "BoundedSemaphore", "BufferTooShort", "Condition",
    "Event", "JoinableQueue", "Lock", "Manager", "Pipe", "Pool", "Process", "ProcessError", "Queue",
    "RLock", "RawArray", "RawValue", "Semaphore", "SimpleQueue", "TimeoutError", "Value",
    "active_children", "allow_connection_pickling", "cpu_count", "current_process", "freeze_support",
    "get_all_start_methods", "get_context", "get_logger", "get_start_method", "log_to_stderr",
    "parent_process", "set_executable", "set_forkserver_preload", "set_start_method",
]
del _context
