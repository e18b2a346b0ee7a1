"""The rest of the multiprocessing surface, printing what CPython prints
(tests/python.rs runs it under both and compares)."""

import multiprocessing as mp
import queue
import time
from multiprocessing import shared_memory
from multiprocessing.connection import wait


def init(prefix):
    global PREFIX
    PREFIX = prefix


def tagged(x):
    return f"{PREFIX}{x}"


def fill(arr, ns, d, shm_name, sl):
    for i in range(len(arr)):
        arr[i] = arr[i] * 2
    ns.seen = True
    d["child"] = [1, 2]
    shm = shared_memory.SharedMemory(name=shm_name)
    shm.buf[:5] = b"child"
    sl[0] = "changed"


def waiter(event, barrier, sem, results):
    event.wait()
    barrier.wait()
    with sem:
        results.put(mp.current_process().name)


def consume(q):
    while True:
        item = q.get()
        q.task_done()
        if item is None:
            break


def talk(conn):
    conn.send(mp.parent_process() is not None)
    conn.send_bytes(b"raw bytes")
    conn.close()


def sleeper():
    time.sleep(30)


def fails(x):
    if x:
        raise ZeroDivisionError("no")
    return x


if __name__ == "__main__":
    print("cpu_count", mp.cpu_count() >= 1)
    ctx = mp.get_context()

    # Shared ctypes, managers, shared memory, ShareableList.
    arr = mp.Array("i", [1, 2, 3])
    m = mp.Manager()
    ns, d = m.Namespace(), m.dict()
    shm = shared_memory.SharedMemory(create=True, size=16)
    sl = shared_memory.ShareableList(["abcdefghij", 2, 3.5, None, True])
    p = ctx.Process(target=fill, args=(arr, ns, d, shm.name, sl))
    p.start()
    p.join()
    print("array", arr[:], len(arr), arr[-1])
    print("namespace", ns.seen, "dict", d["child"], d.get("missing", "default"), len(d))
    print("shm", bytes(shm.buf[:5]), shm.size >= 16)
    print("shareable", list(sl))
    v = mp.Value("d", 1.5)
    with v.get_lock():
        v.value += 1
    print("value", v.value, mp.RawValue("b", -3).value, mp.RawArray("c", b"hi")[:])
    shm.close()
    shm.unlink()
    # Integer values at their bounds, and locks taken and given back.
    for code, lo, hi in [("b", -128, 127), ("B", 0, 255), ("h", -2**15, 2**15 - 1), ("H", 0, 2**16 - 1),
                         ("i", -2**31, 2**31 - 1), ("I", 0, 2**32 - 1), ("q", -2**63, 2**63 - 1), ("Q", 0, 2**64 - 1)]:
        v = mp.RawValue(code, lo)
        got = [v.value]
        v.value = hi
        got.append(v.value)
        v.value = True
        got.append(v.value)
        print("bounds", code, got == [lo, hi, 1])
    lock, rlock, sem = mp.Lock(), mp.RLock(), mp.Semaphore(2)
    with lock as entered:
        print("entered", entered)
    print("acquire", lock.acquire())
    lock.release()
    try:
        lock.release()
    except ValueError as e:
        print("released twice", e)
    print("rlock", rlock.acquire(), rlock.acquire())
    rlock.release()
    rlock.release()
    try:
        rlock.release()
    except AssertionError as e:
        print("rlock released twice", type(e).__name__)
    with sem:
        print("semaphore", sem.get_value(), sem.acquire(), sem.acquire(False))
    sem.release()

    # Event, Barrier, Semaphore, JoinableQueue.
    event, barrier, sem, results = mp.Event(), mp.Barrier(2), mp.BoundedSemaphore(1), mp.Queue()
    procs = [mp.Process(target=waiter, args=(event, barrier, sem, results), name=f"W{i}") for i in range(2)]
    for p in procs:
        p.start()
    print("event set", event.is_set())
    event.set()
    print("names", sorted(results.get(timeout=20) for _ in procs))
    for p in procs:
        p.join()
    print("exitcodes", [p.exitcode for p in procs])
    try:
        sem.release()
    except ValueError as e:
        print("bounded", type(e).__name__)
    jq = mp.JoinableQueue()
    c = mp.Process(target=consume, args=(jq,))
    c.start()
    for item in [1, 2, None]:
        jq.put(item)
    jq.join()
    c.join()
    print("joinable done", c.exitcode)
    try:
        mp.Queue().get(timeout=0.1)
    except queue.Empty:
        print("empty")
    full = mp.Queue(1)
    full.put(1)
    try:
        full.put(2, block=False)
    except queue.Full:
        print("full")

    # Pipes and wait.
    a, b = mp.Pipe()
    p = mp.Process(target=talk, args=(b,))
    p.start()
    ready = wait([a], timeout=20)
    print("ready", ready == [a], a.recv(), a.recv_bytes())
    p.join()
    print("sentinel", len(wait([p.sentinel], timeout=5)))

    # terminate, kill, is_alive, active_children, close.
    p = mp.Process(target=sleeper, daemon=True)
    p.start()
    print("alive", p.is_alive(), len(mp.active_children()) >= 1)
    p.terminate()
    p.join()
    print("terminated", p.exitcode, p.is_alive())
    p.close()
    try:
        p.is_alive()
    except ValueError:
        print("closed")
    p = mp.Process(target=sleeper)
    p.start()
    p.kill()
    p.join()
    print("killed", p.exitcode)
    p = mp.Process(target=sleeper)
    p.start()
    p.join(timeout=0.2)
    print("join timeout", p.exitcode)
    p.terminate()
    p.join()

    # Pool: initializer, apply, callbacks, imap_unordered, maxtasksperchild.
    got = []
    with mp.Pool(2, initializer=init, initargs=("x-",), maxtasksperchild=2) as pool:
        print(pool.apply(tagged, (1,)))
        print(pool.map(tagged, range(3)))
        print(sorted(pool.imap_unordered(tagged, range(4), chunksize=2)))
        r = pool.map_async(tagged, [7], callback=got.append)
        r.wait(20)
        print("callback", got, r.ready(), r.successful())
        r = pool.apply_async(fails, (1,), error_callback=lambda e: got.append(type(e).__name__))
        try:
            r.get(20)
        except ZeroDivisionError as e:
            print("raised", e, got[-1])
        print(pool.starmap(pow, [(2, 3), (3, 2)]))
        # Ranges, lists and tuples are cut into chunks without a copy.
        print(pool.map(abs, range(-7, 8, 3), chunksize=2), sum(pool.map(abs, range(-50_000, 50_000))))
        print(pool.map(abs, (-1, -2, -3)), pool.map(abs, [-4, -5], 1), pool.starmap(pow, ((2, 5), (5, 2))))
    pool = mp.Pool(1)
    pool.close()
    pool.join()
    try:
        pool.map(tagged, [1])
    except ValueError as e:
        print("closed pool", e)
    m.shutdown()
    print("done")
