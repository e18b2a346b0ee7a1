"""Start methods and contexts: mpwasm has one way to start a process (a
fresh sandboxed instance of the program, like CPython's spawn), so these
are harmless no-ops that keep programs written for CPython running."""

import sys

__all__ = ["get_context", "set_start_method", "get_start_method", "get_all_start_methods",
           "freeze_support", "set_executable", "set_forkserver_preload", "allow_connection_pickling"]


def get_context(method=None):
    """The `multiprocessing` module itself, whatever `method` names."""
    if method not in (None, "spawn", "fork", "forkserver"):
        raise ValueError(f"cannot find context for {method!r}")
    return sys.modules["multiprocessing"]


def set_start_method(method, force=False):
    """Accepted and ignored: every process starts as a fresh instance."""
    if method not in (None, "spawn", "fork", "forkserver"):
        raise ValueError(f"cannot find context for {method!r}")


def get_start_method(allow_none=False):
    return "spawn"


def get_all_start_methods():
    return ["spawn"]


def freeze_support():
    """A no-op, as on every platform but frozen Windows programs."""


def set_executable(executable):
    """A no-op: workers run the same component."""


def set_forkserver_preload(module_names):
    """A no-op."""


def allow_connection_pickling():
    """A no-op: connections always pickle."""
