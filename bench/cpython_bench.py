"""CPython multiprocessing side of mpwasm's benchmarks (see shared BENCH.md).

Usage: python3 cpython_bench.py w1|w2|w2serial|w6|w7
Prints one JSON object with the measured figures.
"""
import json
import multiprocessing as mp
import os
import sys
import time


def square(x):
    return x * x


def is_prime(n):
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    d = 3
    while d * d <= n:
        if n % d == 0:
            return False
        d += 2
    return True


def count_primes(lo, hi):
    return sum(1 for n in range(lo, hi) if is_prime(n))


def chunks():
    step = 2_000_000 // 64
    return [(i * step, (i + 1) * step) for i in range(64)]


def noop():
    pass


def w1():
    t = time.perf_counter()
    with mp.Pool(2) as pool:
        out = pool.map(square, range(200_000))
    secs = time.perf_counter() - t
    assert out[-1] == 199_999 * 199_999
    return {"secs": secs, "tasks_per_s": 200_000 / secs}


def w2():
    t = time.perf_counter()
    with mp.Pool(2) as pool:
        total = sum(pool.starmap(count_primes, chunks()))
    assert total == 148933, total
    return {"secs": time.perf_counter() - t}


def w2serial():
    t = time.perf_counter()
    total = sum(count_primes(lo, hi) for lo, hi in chunks())
    assert total == 148933, total
    return {"secs": time.perf_counter() - t}


def w6():
    t = time.perf_counter()
    for _ in range(50):
        p = mp.Process(target=noop)
        p.start()
        p.join()
    return {"ms_per_process": (time.perf_counter() - t) * 1000 / 50}


def memory(pid):
    rss = pss = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss, pss


def w7():
    with mp.Pool(1) as pool:
        pool.map(square, range(10))
        time.sleep(0.2)
        rss, pss = memory(pool._pool[0].pid)
    return {"rss_mib": rss, "pss_mib": pss}


if __name__ == "__main__":
    print(json.dumps(globals()[sys.argv[1]]()))
