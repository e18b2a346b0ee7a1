"""Tasks for tests/python.rs: `mpwasm pool tasks.py --task NAME`."""

import os


def square(x):
    return x * x


def add(a, b):
    return a + b


def fails_on_three(x):
    if x == 3:
        raise ValueError(f"bad input {x}")
    return x * 10


def exits(x):
    raise SystemExit(x)


def spin(x):
    while True:
        x += 1


def grow(mib):
    return len(bytearray(mib << 20))


def late_import(x):
    import fractions
    import decimal
    return str(fractions.Fraction(x, 4) + fractions.Fraction(decimal.Decimal("0.5")))


def pid(_):
    return os.getpid()
