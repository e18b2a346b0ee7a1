//! Benchmark W2's CPU-bound task: count the primes in `[lo, hi)` by trial
//! division up to the square root, the same loop CPython runs in `bench/`.
//!
//! `echo '[0, 2000000]' | mpwasm pool primes.wasm --task count_primes` prints `148933`.

/// Whether `n` is prime, by trial division by odd numbers up to `√n`.
///
/// Numbers that fit in 32 bits are tested with 32-bit division, which is
/// several times cheaper than 64-bit division on x86. Native LLVM builds do
/// this narrowing by themselves (x86's "divq to divl" bypass); Cranelift,
/// which compiles the guest, does not, so the guest spells it out.
fn is_prime(n: u64) -> bool {
    match u32::try_from(n) {
        Ok(n) => is_prime_by::<u32>(n),
        Err(_) => is_prime_by::<u64>(n),
    }
}

fn is_prime_by<T>(n: T) -> bool
where
    T: Copy
        + PartialOrd
        + From<u8>
        + std::ops::Rem<Output = T>
        + std::ops::Mul<Output = T>
        + std::ops::AddAssign,
{
    let (zero, two) = (T::from(0), T::from(2));
    if n < two {
        return false;
    }
    if n % two == zero {
        return n == two;
    }
    let mut d = T::from(3);
    while d * d <= n {
        if n % d == zero {
            return false;
        }
        d += two;
    }
    true
}

/// Number of primes `p` with `lo <= p < hi`.
#[mpwasm_guest::task]
fn count_primes(lo: u64, hi: u64) -> u64 {
    (lo..hi).filter(|&n| is_prime(n)).count() as u64
}
