//! Embedding mpwasm in a Rust program: Python's
//!
//! ```python
//! with Pool(processes=4) as pool:
//!     print(pool.map(square, [1, 2, 3, 4, 5]))
//! ```
//!
//! Run with `cargo run --release --example host_map -- target/guests/pool_square.wasm`.

use std::time::Duration;

fn main() -> mpwasm::Result<()> {
    // Worker processes are this program started again; `init` serves them.
    mpwasm::init();

    let guest = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/guests/pool_square.wasm".to_string());
    let pool = mpwasm::Pool::builder(&guest).processes(4).build()?;

    let squares: Vec<i64> = pool.map("square", [1i64, 2, 3, 4, 5])?;
    println!("{squares:?}");

    // Streaming, in completion order, over an input that is never collected.
    let total: i64 = pool
        .imap_unordered::<i64, i64, _>("square", 1..=100_000)
        .map(|r| r.expect("square does not fail"))
        .fold(0i64, i64::wrapping_add);
    println!("sum of squares 1..=100000: {total}");

    // The async form, with a deadline on the wait.
    let pending = pool.map_async::<i64, i64>("square", vec![6, 7])?;
    println!("{:?}", pending.get(Some(Duration::from_secs(5)))?);
    Ok(())
}
