"""CPython multiprocessing side of mpwasm's benchmarks (see shared BENCH.md).

Usage: python3 cpython_bench.py w1|w2|w2serial|w3|w4|w5|w5racy|w5barrier|w5condition|w6|w7|w8|pool16
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


def pool16():
    # mpwasm-bench's pool16: Pool(16) until each of 16 one-input chunks has
    # slept 50 ms in its own worker, the sleep subtracted; median of 5.
    times = []
    for _ in range(5):
        t = time.perf_counter()
        with mp.Pool(16) as pool:
            pool.map(time.sleep, [0.05] * 16, chunksize=1)
            times.append((time.perf_counter() - t) * 1000 - 50)
    return {"ms": sorted(times)[len(times) // 2]}


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


# W3, W4 and W8 (messaging) time from after their processes have started, as
# the mpwasm guest examples/bench_msg does: a first round trip or a ready
# message comes before the clock.
FORK = mp.get_context("fork")
ROUND_TRIPS = 20_000
MESSAGES, MESSAGE_BYTES = 1024, 1 << 20
PRODUCERS, CONSUMERS, PER_PRODUCER, MAXSIZE = 4, 4, 50_000, 1000
TOTAL = PRODUCERS * PER_PRODUCER


def echo(ping, pong):
    while True:
        x = ping.get()
        if x < 0:
            return
        pong.put(x)


def w3():
    ping, pong = FORK.Queue(), FORK.Queue()
    p = FORK.Process(target=echo, args=(ping, pong))
    p.start()
    ping.put(0)
    assert pong.get() == 0
    t = time.perf_counter()
    for i in range(ROUND_TRIPS):
        ping.put(i)
        assert pong.get() == i
    secs = time.perf_counter() - t
    ping.put(-1)
    p.join()
    return {"us_per_round_trip": secs * 1e6 / ROUND_TRIPS}


def send_mib(writer):
    buf = bytes([7]) * MESSAGE_BYTES
    writer.send_bytes(b"r")
    for _ in range(MESSAGES):
        writer.send_bytes(buf)
    writer.close()


def w4():
    reader, writer = FORK.Pipe(duplex=False)
    p = FORK.Process(target=send_mib, args=(writer,))
    p.start()
    writer.close()
    assert reader.recv_bytes() == b"r"
    t = time.perf_counter()
    for _ in range(MESSAGES):
        assert len(reader.recv_bytes()) == MESSAGE_BYTES
    secs = time.perf_counter() - t
    p.join()
    return {"gb_per_s": MESSAGES * MESSAGE_BYTES / secs / 1e9}


def produce(items, reports, go, first):
    reports.put(("ready",))
    go.get()
    for msg in range(first, first + PER_PRODUCER):
        items.put(msg)
    # A put only hands the item to this process's feeder thread: flush it
    # before reporting, or main's sentinels could overtake the last items.
    items.close()
    items.join_thread()
    reports.put(("produced",))


def consume(items, reports):
    seen = bytearray(TOTAL)
    count = 0
    reports.put(("ready",))
    while (msg := items.get()) is not None:
        seen[msg] = min(seen[msg] + 1, 255)
        count += 1
    reports.put(("consumed", count, bytes(seen)))


def w8():
    items, reports, go = FORK.Queue(MAXSIZE), FORK.Queue(), FORK.Queue()
    procs = [FORK.Process(target=produce, args=(items, reports, go, i * PER_PRODUCER))
             for i in range(PRODUCERS)]
    procs += [FORK.Process(target=consume, args=(items, reports)) for _ in range(CONSUMERS)]
    for p in procs:
        p.start()
    for _ in procs:
        assert reports.get() == ("ready",)
    t = time.perf_counter()
    for _ in range(PRODUCERS):
        go.put(None)
    produced, consumed = 0, []
    while len(consumed) < CONSUMERS:
        report = reports.get()
        if report[0] == "produced":
            produced += 1
            if produced == PRODUCERS:
                for _ in range(CONSUMERS):
                    items.put(None)
        else:
            consumed.append(report[1:])
    secs = time.perf_counter() - t
    for p in procs:
        p.join()
    once = (sum(c for c, _ in consumed) == TOTAL
            and all(sum(col) == 1 for col in zip(*(s for _, s in consumed))))
    assert once, "W8: some message was lost or received twice"
    return {"msgs_per_s": TOTAL / secs, "exactly_once": once}


# W5 (locked counter): two processes each add one to Value('i', 0) 100_000
# times, timed from a barrier all three processes pass once the workers have
# started to one they pass when both are done, as examples/bench_state does.
W5_PROCESSES, W5_INCREMENTS = 2, 100_000


def w5_add(counter, locked, index, times, start, finish):
    start.wait()
    began = time.time_ns()
    if locked:
        for _ in range(W5_INCREMENTS):
            with counter.get_lock():
                counter.value += 1
    else:
        for _ in range(W5_INCREMENTS):
            counter.value += 1
    times[2 * index], times[2 * index + 1] = began, time.time_ns()
    finish.wait()


def w5_run(locked):
    counter = FORK.Value("i", 0)
    start, finish = FORK.Barrier(W5_PROCESSES + 1), FORK.Barrier(W5_PROCESSES + 1)
    # Timed by the workers on the wall clock, from the first start to the
    # last end, as examples/bench_state does.
    times = FORK.RawArray("Q", 2 * W5_PROCESSES)
    procs = [FORK.Process(target=w5_add, args=(counter, locked, i, times, start, finish))
             for i in range(W5_PROCESSES)]
    for p in procs:
        p.start()
    start.wait()
    finish.wait()
    for p in procs:
        p.join()
    secs = (max(times[1::2]) - min(times[0::2])) / 1e9
    return {"ops_per_s": W5_PROCESSES * W5_INCREMENTS / secs, "final": counter.value}


def w5():
    out = w5_run(locked=True)
    assert out["final"] == W5_PROCESSES * W5_INCREMENTS, out
    return out


def w5racy():
    return w5_run(locked=False)


# W5 sync rounds: main and one process pass a Barrier(2) ROUNDS times, or
# hand a turn back and forth ROUNDS times under a Condition, as
# examples/bench_state does (`barrier`, `condition`).
SYNC_ROUNDS = 20_000


def sync_partner(how, barrier, cond, turn):
    barrier.wait()
    for _ in range(SYNC_ROUNDS):
        if how == "barrier":
            barrier.wait()
        else:
            with cond:
                cond.wait_for(lambda: turn.value == 1)
                turn.value = 0
                cond.notify()


def sync_rounds(how):
    barrier, cond = FORK.Barrier(2), FORK.Condition()
    turn = FORK.Value("i", 0, lock=False)
    p = FORK.Process(target=sync_partner, args=(how, barrier, cond, turn))
    p.start()
    barrier.wait()
    t = time.perf_counter()
    done = 0
    for _ in range(SYNC_ROUNDS):
        if how == "barrier":
            barrier.wait()
        else:
            with cond:
                turn.value = 1
                cond.notify()
                cond.wait_for(lambda: turn.value == 0)
        done += 1
    secs = time.perf_counter() - t
    p.join()
    return {"rounds_per_s": done / secs, "final": done}


def w5barrier():
    return sync_rounds("barrier")


def w5condition():
    return sync_rounds("condition")


if __name__ == "__main__":
    print(json.dumps(globals()[sys.argv[1]]()))
