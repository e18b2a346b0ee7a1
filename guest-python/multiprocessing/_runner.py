"""How an instance runs the program: as `__main__` for `mpwasm run`, as
`__mp_main__` (aliased to `__main__`, as CPython's spawn does) for process
targets, pool chunks and `mpwasm pool` tasks."""

import builtins
import inspect
import json
import os
import pickle
import struct
import sys
import traceback
import types

SOURCE_VAR = "MPWASM_PY_SOURCE"
FILE_VAR = "MPWASM_PY_FILE"
INTERNAL = ("__mp_process__", "__mp_chunk__", "__mp_init__")
_LEN = struct.Struct("<I")

_program = None
_module = None


class UnknownTask(Exception):
    pass


class BadBatch(Exception):
    pass


def _take_program():
    """The program's (source, file name): from the environment the host set
    (removed, so the program never sees it), or baked in by `mpwasm build`."""
    global _program
    source = os.environ.pop(SOURCE_VAR, None)
    filename = os.environ.pop(FILE_VAR, None)
    if _program is None:
        if source is not None:
            _program = (source, filename or "<program>")
        else:
            try:
                import mpwasm_program
                _program = (mpwasm_program.SOURCE, mpwasm_program.FILE)
            except ImportError:
                pass
    return _program


def _load(name):
    """Runs the program once in this instance as module `name`."""
    global _module
    if _module is not None:
        return _module
    program = _take_program()
    if program is None:
        raise UnknownTask("no Python program was given to this guest")
    source, filename = program
    module = types.ModuleType(name)
    module.__file__ = filename
    module.__builtins__ = builtins
    # Both names, in every process, as CPython's spawn and its
    # `multiprocessing/__init__.py` do: what a child pickles as
    # `__mp_main__.X` unpickles in the main process, and the other way.
    sys.modules["__mp_main__"] = module
    sys.modules["__main__"] = module
    _module = module
    exec(compile(source, filename, "exec"), module.__dict__)
    return module


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def _exit_code(code):
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def main(args):
    """`mpwasm run prog.py`: the program as `__main__`; its exit status."""
    _take_program()
    try:
        _load("__main__")
        code = 0
    except SystemExit as e:
        code = _exit_code(e.code)
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        from . import pool
        pool._shutdown_all()
    except BaseException:
        traceback.print_exc()
    _flush()
    return code


def task_names():
    """The program's public module-level functions."""
    try:
        module = _load("__mp_main__")
    except BaseException:
        traceback.print_exc()
        _flush()
        return []
    return [n for n, v in vars(module).items()
            if inspect.isfunction(v) and v.__module__ == module.__name__ and not n.startswith("_")]


def _split(inputs):
    items, pos = [], 0
    while pos < len(inputs):
        if pos + 4 > len(inputs):
            raise BadBatch("truncated batch")
        (n,) = _LEN.unpack_from(inputs, pos)
        pos += 4
        if pos + n > len(inputs):
            raise BadBatch("truncated batch")
        items.append(inputs[pos:pos + n])
        pos += n
    return items


def call(name, json_codec, first_index, inputs):
    """Runs task `name` on each input of the batch: (results batch, failures)."""
    items = _split(inputs)
    _take_program()
    if name == "__mp_process__":
        return _process(items[0] if items else b"")
    try:
        module = _load("__mp_main__")
    except BaseException as e:
        traceback.print_exc()
        _flush()
        message = f"the program failed to load: {type(e).__name__}: {e}"
        return _LEN.pack(0) * len(items), [(i, message) for i in range(len(items))]
    if name == "__mp_chunk__":
        from .pool import run_chunk
        out = b"".join(_LEN.pack(len(r)) + r for r in map(run_chunk, items))
        _flush()
        return out, []
    if name == "__mp_init__":
        return _initializer(items)
    fn = getattr(module, name, None)
    if name.startswith("_") or not inspect.isfunction(fn):
        raise UnknownTask(name)
    if not json_codec:
        raise BadBatch(f"Python task `{name}` reads JSON inputs (codec json), not bincode")
    return _json_task(fn, items)


def _process(payload):
    """A `Process` target, then this instance's exit (a process is one call)."""
    from .process import current_process
    code = 0
    try:
        _load("__mp_main__")
        target, args, kwargs = pickle.loads(payload)
        target(*args, **kwargs)
    except SystemExit as e:
        code = _exit_code(e.code)
    except BaseException:
        sys.stderr.write(f"Process {current_process().name}:\n")
        traceback.print_exc()
        code = 1
    _flush()
    if code != 0:
        os._exit(code)
    return _LEN.pack(0), []


def _initializer(items):
    failures = []
    for i, payload in enumerate(items):
        try:
            fn, args = pickle.loads(payload)
            fn(*args)
        except BaseException as e:
            traceback.print_exc()
            failures.append((i, f"{type(e).__name__}: {e}"))
    _flush()
    return _LEN.pack(0) * len(items), failures


def _json_task(fn, items):
    try:
        params = inspect.signature(fn).parameters.values()
        several = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params) > 1
    except (TypeError, ValueError):
        several = False
    out, failures = [], []
    for i, item in enumerate(items):
        try:
            arg = json.loads(item)
            result = fn(*arg) if several and isinstance(arg, list) else fn(arg)
            data = json.dumps(result).encode()
        except BaseException as e:
            failures.append((i, f"{type(e).__name__}: {e}"))
            data = b""
        out.append(_LEN.pack(len(data)) + data)
    _flush()
    return b"".join(out), failures
