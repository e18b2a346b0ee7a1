//! A guest that forges the queue's staged calls (issue 12): `mpwasm run
//! hostile.wasm staged-CASE`. Each case calls the host function itself,
//! bypassing the SDK, with what the SDK never sends; the host must trap
//! the instance with one clear message, and nothing else.

use mpwasm_guest::{Error, Queue, Result};

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "mpwasm:runtime/queue@0.1.0")]
extern "C" {
    /// `put-staged: func(key: u32, len: u32, timeout-ms: option<u64>) -> bool`.
    #[link_name = "put-staged"]
    fn put_staged(key: i32, len: i32, has_timeout: i32, timeout: i64) -> i32;
    /// `get-staged: func(key: u32, timeout-ms: option<u64>) -> u32`.
    #[link_name = "get-staged"]
    fn get_staged(key: i32, has_timeout: i32, timeout: i64) -> i32;
}

/// Runs case `what`; returns only if the host let the forgery through.
pub fn run(what: &str) -> Result<()> {
    // A queue used once through the SDK: this process has its staging
    // page (a window guest asks for it at its first staged call).
    let q = Queue::<u32>::new()?;
    q.put(7)?;
    assert_eq!(q.get()?, 7);
    #[cfg(target_arch = "wasm32")]
    // SAFETY: plain scalar calls into the host; the point is what the host
    // does with them.
    let answer = unsafe {
        match what {
            // No queue has this key.
            "bad-key" => put_staged(0x7fff_0000, 1, 1, 0),
            // More than the staging page holds.
            "too-long" => put_staged(0, 5000, 1, 0),
            // A get with no key a queue of this process could have.
            "bad-get" => get_staged(-1, 1, 0),
            other => return Err(Error::Other(format!("no case {other}"))),
        }
    };
    #[cfg(not(target_arch = "wasm32"))]
    let answer = 0;
    println!("the host answered {answer}");
    Ok(())
}
