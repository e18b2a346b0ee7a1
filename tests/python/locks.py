"""What mpwasm does where CPython hangs or says nothing: a Lock taken twice
by one process is refused with the reason, a Lock whose holder died is
handed on with a warning, a value out of its type's range is refused
(tests/python.rs checks the lines; CPython is not run)."""

import os
import warnings

import multiprocessing as mp


def take_and_die(lock):
    lock.acquire()
    os._exit(0)


if __name__ == "__main__":
    lock = mp.Lock()
    with lock:
        try:
            with lock:
                pass
        except OSError as e:
            print("refused:", e)
    p = mp.Process(target=take_and_die, args=(lock,))
    p.start()
    p.join()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with lock:
            print("handed on:", [str(w.message) for w in seen])
    try:
        mp.RawValue("b", 0).value = 300
    except Exception as e:
        print("out of range:", type(e).__name__)
