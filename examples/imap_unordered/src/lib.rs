//! Seed S3 (`imap_unordered`): streaming results, Python's
//!
//! ```python
//! with Pool(4) as pool:
//!     for r in pool.imap(square, range(10)): print(r)            # 0 1 4 ... 81 in order
//!     for r in pool.imap_unordered(square, range(10)): print(r)  # same ten numbers, any order
//! ```

use mpwasm_guest::Pool;

/// `x * x`.
#[mpwasm_guest::task]
fn square(x: i64) -> i64 {
    x * x
}

#[mpwasm_guest::main]
fn main() -> mpwasm_guest::Result<()> {
    let pool = Pool::new(4)?;
    for r in pool.imap("square", 0..10_i64)? {
        let r: i64 = r?;
        println!("{r}");
    }
    for r in pool.imap_unordered("square", 0..10_i64)? {
        let r: i64 = r?;
        println!("{r}");
    }
    Ok(())
}
