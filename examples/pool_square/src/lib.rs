//! Seed S2 (`pool_square`): the task behind Python's
//!
//! ```python
//! def square(x): return x * x
//! with Pool(processes=4) as pool:
//!     print(pool.map(square, [1, 2, 3, 4, 5]))
//! ```
//!
//! `seq 5 | mpwasm pool pool_square.wasm --task square -j 4` prints the squares.

/// `x * x`, the task every pool tutorial starts with.
#[mpwasm_guest::task]
fn square(x: i64) -> i64 {
    x.wrapping_mul(x)
}
