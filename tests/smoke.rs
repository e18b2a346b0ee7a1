//! Smoke test: seed S2 (`pool.map(square, [1, 2, 3, 4, 5])`) through the CLI.

mod common;
use common::*;

#[test]
fn pool_square_prints_the_squares() {
    let sq = guest("pool_square");
    let out = run_mpwasm(
        &["pool", sq.to_str().unwrap(), "--task", "square", "-j", "4"],
        "1\n2\n3\n4\n5\n",
    );
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "1\n4\n9\n16\n25\n");
}
