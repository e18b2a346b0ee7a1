//! Seed S13 (`map_async_timeout`): `Pool.map_async` with a timeout and
//! worker errors handled, Python's
//!
//! ```python
//! def work(x):
//!     if x == 3: raise ValueError("bad input 3")
//!     if x == 5: time.sleep(10)
//!     return x * 10
//! def safe_work(x):
//!     try: return work(x)
//!     except Exception as e: return f"error: {e}"
//! with Pool(2) as pool:
//!     r = pool.map_async(safe_work, range(5)); print(r.get(timeout=5))
//!     r = pool.map_async(work, [5]);
//!     try: r.get(timeout=1)
//!     except TimeoutError: print("timed out")
//! ```
//!
//! Prints `[0, 10, 20, 'error: bad input 3', 40]`, then `timed out` a second
//! later, and exits at once: terminating the pool kills the worker still
//! sleeping in `work(5)`.

use std::fmt;
use std::time::Duration;

use mpwasm_guest::{AsyncResult, Error, Pool};
use serde::{Deserialize, Serialize};

/// Python's `ValueError`.
#[derive(Debug)]
struct ValueError(String);

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Ten times `x`; fails on 3 and takes ten seconds on 5.
#[mpwasm_guest::task]
fn work(x: i64) -> Result<i64, ValueError> {
    if x == 3 {
        return Err(ValueError(format!("bad input {x}")));
    }
    if x == 5 {
        std::thread::sleep(Duration::from_secs(10));
    }
    Ok(x * 10)
}

/// What `safe_work` returns: `work`'s value, or the error's text (Python
/// returns an `int` or a `str`).
#[derive(Serialize, Deserialize)]
enum Outcome {
    Value(i64),
    Error(String),
}

/// Python's `repr`: the number, or the quoted message.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Value(v) => write!(f, "{v}"),
            Outcome::Error(message) => write!(f, "'{message}'"),
        }
    }
}

/// `work`, with its error turned into a value.
#[mpwasm_guest::task]
fn safe_work(x: i64) -> Outcome {
    match work(x) {
        Ok(v) => Outcome::Value(v),
        Err(e) => Outcome::Error(format!("error: {e}")),
    }
}

/// Python's `print(list)`: `[a, b, c]` with each item's repr.
fn python_list(items: &[Outcome]) -> String {
    let items: Vec<String> = items.iter().map(Outcome::to_string).collect();
    format!("[{}]", items.join(", "))
}

#[mpwasm_guest::main]
fn main() -> mpwasm_guest::Result<()> {
    let pool = Pool::new(2)?;

    let mut r: AsyncResult<Vec<Outcome>> = pool.map_async("safe_work", 0..5_i64)?;
    println!("{}", python_list(&r.get(Some(Duration::from_secs(5)))?));

    let mut r: AsyncResult<Vec<i64>> = pool.map_async("work", [5_i64])?;
    match r.get(Some(Duration::from_secs(1))) {
        Err(Error::Timeout) => println!("timed out"),
        other => {
            other?;
        }
    }

    // Leaving `with Pool(...)`: stop the worker still sleeping in work(5).
    pool.terminate();
    Ok(())
}
