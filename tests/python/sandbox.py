"""What a Python guest can reach: prints one line per probe."""

import os
import sys


def probe(what, fn):
    try:
        print(f"{what}: ok {fn()!r}")
    except Exception as e:
        print(f"{what}: {type(e).__name__}")


if __name__ == "__main__":
    probe("environ", lambda: sorted(os.environ))
    probe("argv", lambda: sys.argv[1:])
    probe("read /etc/passwd", lambda: len(open("/etc/passwd").read()) > 0)
    probe("listdir /", lambda: len(os.listdir("/")) > 0)
    probe("write /tmp", lambda: open("/tmp/mpwasm-python-probe", "w").write("x"))
    probe("read granted", lambda: open("/data/hello.txt").read())
