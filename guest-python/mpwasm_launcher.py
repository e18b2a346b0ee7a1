"""The app module of mpwasm's Python guest: the exports mpwasm calls.

One component serves every Python program: componentize-py snapshots the
interpreter with this module, the `multiprocessing` package beside it and
the standard library modules of `_preload` already imported. The program's
source reaches each instance at run time in the environment variable
`MPWASM_PY_SOURCE` (its file name in `MPWASM_PY_FILE`), which the host sets
and this module removes before the program can see it. A component built
by `mpwasm build` carries the source in `mpwasm_program` instead.

- `program.main(args)` runs the source as `__main__`.
- `tasks.call(name, …)` runs the source as `__mp_main__` (aliased to
  `__main__`, as CPython's spawn does), then the task: a module-level
  function by name (JSON in and out: `mpwasm pool prog.py --task f`), or one
  of the shim's internal tasks (`__mp_process__`, `__mp_chunk__`,
  `__mp_init__`), whose payloads are pickles.
"""

import os
import sys

# The standard library's directory comes first in componentize-py's path:
# put this package's first, so `multiprocessing` is this one.
sys.path.insert(0, os.path.dirname(__file__))

import multiprocessing  # noqa: E402,F401
import multiprocessing.managers  # noqa: E402,F401
import multiprocessing.shared_memory  # noqa: E402,F401
from multiprocessing import _runner  # noqa: E402

import _preload  # noqa: E402,F401  (the standard library, imported at build time)

try:  # a program baked in by `mpwasm build`
    import mpwasm_program  # noqa: F401
except ImportError:
    pass

from wit_world import exports
from wit_world.imports import types
from componentize_py_types import Err


class Tasks(exports.Tasks):
    def names(self):
        return _runner.task_names()

    def call(self, name, codec, first_index, inputs):
        try:
            results, failures = _runner.call(name, codec == types.Codec.JSON, first_index, inputs)
        except _runner.UnknownTask as e:
            raise Err(types.TaskError_UnknownTask(str(e)))
        except _runner.BadBatch as e:
            raise Err(types.TaskError_BadInput(str(e)))
        return types.Outcome(results, [(i, types.TaskError_Failed(m)) for i, m in failures])


class Program(exports.Program):
    def main(self, args):
        return _runner.main(args)
