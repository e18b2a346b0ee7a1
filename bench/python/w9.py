"""W9 of shared/BENCH.md: W1, W2 and S12 written in Python. The same file
runs under CPython (`python3 w9.py w1`) and as an mpwasm guest (`mpwasm run
w9.py w1`); it prints one JSON object."""

import json
import sys
import time
from multiprocessing import Lock, Pool, Process, Value


def square(x):
    return x * x


def count_primes(lo, hi):
    n = 0
    for k in range(max(lo, 2), hi):
        d = 2
        while d * d <= k:
            if k % d == 0:
                break
            d += 1
        else:
            n += 1
    return n


def add(counter, lock):
    for _ in range(10000):
        with lock:
            counter.value += 1


def w1():
    start = time.perf_counter()
    with Pool(2) as pool:
        out = pool.map(square, range(200_000))
    secs = time.perf_counter() - start
    assert out[199_999] == 199_999 * 199_999
    return {"tasks_per_s": 200_000 / secs, "secs": secs}


def w2():
    step = 2_000_000 // 64
    chunks = [(i * step, (i + 1) * step) for i in range(64)]
    start = time.perf_counter()
    with Pool(2) as pool:
        total = sum(pool.starmap(count_primes, chunks))
    secs = time.perf_counter() - start
    assert total == 148933, total
    return {"secs": secs}


def w2one():
    """W2's floor: its costliest task alone in one process, no pool (the
    interpreter's speed, without any of mpwasm's per-task work)."""
    step = 2_000_000 // 64
    start = time.perf_counter()
    count_primes(63 * step, 64 * step)
    return {"secs": time.perf_counter() - start}


def s12():
    start = time.perf_counter()
    counter = Value('i', 0, lock=False)
    lock = Lock()
    processes = [Process(target=add, args=(counter, lock)) for _ in range(4)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    secs = time.perf_counter() - start
    assert counter.value == 40000
    return {"secs": secs}


if __name__ == "__main__":
    print(json.dumps({"w1": w1, "w2": w2, "w2one": w2one, "s12": s12}[sys.argv[1]]()))
