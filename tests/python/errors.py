"""A pool task raising reaches the caller with its type, message and the
remote traceback, as in CPython; the other inputs still run."""

import multiprocessing


class Custom(Exception):
    pass


def work(x):
    if x == 2:
        raise Custom(f"custom failure on {x}")
    return x + 100


def crash():
    raise KeyError("in a process")


if __name__ == "__main__":
    with multiprocessing.Pool(2) as pool:
        try:
            pool.map(work, range(4), chunksize=1)
        except Custom as e:
            print(f"caught {type(e).__name__}: {e}")
            print("remote traceback:", "in work" in str(e.__cause__))
        print(pool.map(work, [0, 1, 3]))
        r = pool.apply_async(work, (2,), error_callback=lambda e: print("error_callback", type(e).__name__))
        r.wait()
        print("successful:", r.successful())
        print(list(pool.imap(work, [5, 6])))
        print(pool.starmap(max, [(1, 2), (4, 3)]))
    p = multiprocessing.Process(target=crash)
    p.start()
    p.join()
    print("exitcode", p.exitcode)
