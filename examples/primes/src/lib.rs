//! Benchmark W2's CPU-bound task: count the primes in `[lo, hi)` by trial
//! division up to the square root, the same loop CPython runs in `bench/`.
//!
//! `echo '[0, 2000000]' | mpwasm pool primes.wasm --task count_primes` prints `148933`.

/// Whether `n` is prime, by trial division by odd numbers up to `√n`.
fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n % 2 == 0 {
        return n == 2;
    }
    let mut d = 3;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

/// Number of primes `p` with `lo <= p < hi`.
#[mpwasm_guest::task]
fn count_primes(lo: u64, hi: u64) -> u64 {
    (lo..hi).filter(|&n| is_prime(n)).count() as u64
}
