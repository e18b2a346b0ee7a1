//! Seed S2 (`pool_square`): Python's
//!
//! ```python
//! def square(x): return x * x
//! with Pool(processes=4) as pool:
//!     print(pool.map(square, [1, 2, 3, 4, 5]))
//! ```
//!
//! `mpwasm run pool_square.wasm` prints `[1, 4, 9, 16, 25]`; the `square`
//! task also runs on its own: `seq 5 | mpwasm pool pool_square.wasm --task
//! square -j 4` prints the squares.

use mpwasm_guest::Pool;

/// `x * x`, the task every pool tutorial starts with.
#[mpwasm_guest::task]
fn square(x: i64) -> i64 {
    x.wrapping_mul(x)
}

#[mpwasm_guest::main]
fn main() -> mpwasm_guest::Result<()> {
    // Dropping the pool at the end of main terminates it, as leaving
    // `with Pool(...)` does.
    let pool = Pool::new(4)?;
    let squares: Vec<i64> = pool.map("square", [1_i64, 2, 3, 4, 5])?;
    println!("{squares:?}");
    Ok(())
}
