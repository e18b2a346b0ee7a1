//! Platform specifics, in one place: the rest of mpwasm names no OS call.
//!
//! Linux is the supported platform: parent-death signals are Linux-only.

use rustix::process::{getppid, set_parent_process_death_signal, Signal};

/// Makes the kernel SIGKILL this process when its parent exits, then checks
/// the parent did not already exit before the request took effect.
///
/// # Errors
///
/// Fails if the kernel refuses, or if the parent (`expected_parent`) is
/// already gone.
pub(crate) fn die_with_parent(expected_parent: u32) -> std::io::Result<()> {
    set_parent_process_death_signal(Some(Signal::KILL))?;
    let parent = getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32);
    if parent != expected_parent {
        return Err(std::io::Error::other("parent process already exited"));
    }
    Ok(())
}

/// OS process id of the parent of this process.
pub(crate) fn parent_pid() -> u32 {
    getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32)
}
