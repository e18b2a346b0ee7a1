//! The zygote process: map and link the guest once, then fork workers.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;

use super::{FromZygote, ToZygote, ZYGOTE_ENV};
use crate::engine::Checks;
use crate::sys::fork::{fork_to_parent, Forked, ThreadRecord};
use crate::wire::Channel;
use crate::worker::child::{self, Prepared};

/// If this process was started as a zygote, serves its parent until the
/// parent closes the control socket and returns the exit code; otherwise
/// returns `None` at once. A worker it forks returns from here too, with
/// the worker's exit code.
pub(crate) fn run_if_zygote() -> Option<ExitCode> {
    let parent: u32 = std::env::var(ZYGOTE_ENV).ok()?.parse().ok()?;
    Some(match serve(parent) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mpwasm zygote {}: {e}", std::process::id());
            ExitCode::FAILURE
        }
    })
}

/// What a forked child needs from the zygote.
struct Inheritance {
    prepared: Prepared,
    /// The descriptors of the mapped artifact, which the child keeps.
    keep: Vec<i32>,
    me: ThreadRecord,
    parent: u32,
}

fn serve(parent: u32) -> std::io::Result<()> {
    crate::sys::die_with_parent(parent)?;
    crate::sys::close_inherited_fds();
    crate::sys::set_process_name("mpwasm-zygote");
    crate::init_logging();
    // The control socket moves off stdin, which each forked worker's
    // channel takes; stdin becomes /dev/null.
    let control = std::io::stdin().as_fd().try_clone_to_owned()?;
    let null = std::fs::File::open("/dev/null")?;
    // SAFETY: both descriptors are open; fd 0 is replaced atomically.
    if unsafe { libc::dup2(null.as_raw_fd(), 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    drop(null);
    let mut control = Channel::new(UnixStream::from(control))?;
    let Some((
        ToZygote::Load {
            artifact,
            checks,
            window,
        },
        _,
    )) = control.recv()?
    else {
        return Err(std::io::Error::other("expected a Load frame first"));
    };
    let mut inheritance = match prepare(&artifact, checks, window, parent) {
        Ok(inheritance) => inheritance,
        Err(why) => {
            control.send(&FromZygote::Failed(why.clone()), &[])?;
            return Err(std::io::Error::other(why));
        }
    };
    let seccomp = crate::sys::lock_down_zygote(inheritance.prepared.filters_mut());
    tracing::debug!(seccomp, "zygote locked down");
    control.send(&FromZygote::Ready, &[])?;
    while let Some((request, mut fds)) = control.recv::<ToZygote>()? {
        if !matches!(request, ToZygote::Fork) {
            return Err(std::io::Error::other("unexpected frame from the parent"));
        }
        let Some(socket) = fds.pop().filter(|_| fds.is_empty()) else {
            let why = "a fork request carries exactly one socket".to_string();
            control.send(&FromZygote::Refused(why), &[])?;
            continue;
        };
        match fork_to_parent(&inheritance.me) {
            Ok(Forked::Child) => become_worker(socket, &inheritance),
            Ok(Forked::Parent { pid, pidfd }) => {
                drop(socket);
                control.send(&FromZygote::Forked { pid }, &[pidfd.as_fd()])?;
            }
            Err(e) => control.send(&FromZygote::Refused(e.to_string()), &[])?,
        }
    }
    Ok(())
}

/// Makes the engine, maps and links the artifact, and finds what a child
/// must keep.
fn prepare(
    artifact: &Path,
    checks: Checks,
    window: bool,
    parent: u32,
) -> Result<Inheritance, String> {
    let me = ThreadRecord::current().map_err(|e| format!("cannot fork workers here: {e}"))?;
    // A program that started a thread before `mpwasm::init()` can never
    // fork safely: say so now, not at the first fork.
    match crate::sys::fork::thread_count() {
        Ok(1) => {}
        Ok(n) => {
            return Err(format!(
                "the zygote has {n} threads; it forks only with one"
            ))
        }
        Err(e) => return Err(format!("cannot count the zygote's threads: {e}")),
    }
    // What loading opens (the artifact, which wasmtime maps again at each
    // instantiation) the children keep. Found by what is new, not by the
    // path: another process sharing the cache may rename a fresh copy over
    // the path at any time, and a child that lost its engine's descriptor
    // could start no instance.
    let before = crate::sys::open_fds();
    let prepared = Prepared::load(artifact, checks, window).map_err(|e| format!("{e:#}"))?;
    let keep = opened_since(&before, &crate::sys::open_fds());
    Ok(Inheritance {
        prepared,
        keep,
        me,
        parent,
    })
}

/// The descriptors in `now` that were not open in `before`.
fn opened_since(before: &[i32], now: &[i32]) -> Vec<i32> {
    now.iter()
        .copied()
        .filter(|fd| !before.contains(fd))
        .collect()
}

/// The forked child: becomes an ordinary worker on `socket` and exits; it
/// never returns into the zygote's loop (whose objects hold descriptors it
/// closed).
fn become_worker(socket: OwnedFd, inheritance: &Inheritance) -> ! {
    let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        child::exit_code(serve_as_worker(socket, inheritance))
    }));
    let code = match served {
        Ok(code) if code == ExitCode::SUCCESS => 0,
        _ => 1,
    };
    std::process::exit(code)
}

fn serve_as_worker(socket: OwnedFd, inheritance: &Inheritance) -> std::io::Result<()> {
    crate::sys::die_with_parent(inheritance.parent)?;
    crate::sys::set_process_name("mpwasm-worker");
    // SAFETY: both descriptors are open; fd 0 (/dev/null) is replaced.
    if unsafe { libc::dup2(socket.as_raw_fd(), 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    drop(socket);
    crate::sys::close_fds_except(&inheritance.keep);
    child::serve_stdin(Some(&inheritance.prepared))
}
