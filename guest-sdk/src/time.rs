//! Timeouts as the WIT takes them: `option<u64>` milliseconds, where `none`
//! waits forever and `some(0)` does not block at all.

use std::time::{Duration, Instant};

/// The WIT `timeout-ms` for `timeout`: rounded up to whole milliseconds, so
/// that only an exact zero means "do not block" (a 1 µs timeout waits 1 ms);
/// `None` waits forever.
pub(crate) fn millis(timeout: Option<Duration>) -> Option<u64> {
    timeout.map(|t| u64::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX))
}

/// The instant `timeout` from now; `None` (forever) for `None` or a timeout
/// too long to represent.
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// What is left until `deadline` (zero once it passed); `None` for no
/// deadline.
pub(crate) fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}
