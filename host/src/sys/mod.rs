//! Platform specifics, in one place: the rest of mpwasm names no OS call.
//!
//! Linux is the supported platform: parent-death signals are Linux-only.

pub(crate) mod ipc;
pub(crate) mod robust;
pub(crate) mod waiters;

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

/// Closes every file descriptor above stderr: a worker keeps only what it
/// opens itself (its channel is a duplicate of stdin, made afterwards).
pub(crate) fn close_inherited_fds() {
    let fds: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|&fd| fd > 2)
            .collect(),
        Err(_) => return,
    };
    for fd in fds {
        // SAFETY: called first thing in a new worker process, before any
        // Rust object owns a descriptor above 2; the one `read_dir` used is
        // closed already (EBADF is ignored).
        unsafe {
            libc::close(fd);
        }
    }
}

/// What [`lock_down`] managed to enforce on this kernel.
#[expect(dead_code, reason = "read through Debug, in the worker's debug log")]
#[derive(Debug)]
pub(crate) struct Lockdown {
    /// Landlock's status (filesystem, TCP, signals, abstract sockets).
    pub(crate) landlock: String,
    /// Whether the seccomp filter is installed.
    pub(crate) seccomp: bool,
}

/// Drops what a worker does not need, for the rest of its life and every
/// thread it starts afterwards (call it before starting any thread):
///
/// - Landlock: no filesystem access except the granted directories, no TCP
///   bind or connect, no signals to or abstract sockets of processes outside
///   the worker (best effort: what the kernel supports).
/// - seccomp: `execve`, new sockets, `ptrace`, namespace, mount, module,
///   BPF and keyring calls fail with `EPERM`.
pub(crate) fn lock_down(grants: &[crate::wire::DirGrant]) -> Lockdown {
    Lockdown {
        landlock: landlock(grants),
        seccomp: seccomp().is_ok(),
    }
}

fn landlock(grants: &[crate::wire::DirGrant]) -> String {
    use landlock::{
        path_beneath_rules, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreatedAttr,
        Scope, ABI,
    };
    let abi = ABI::V6;
    let read_only: Vec<_> = grants
        .iter()
        .filter(|g| g.read_only)
        .map(|g| g.host.clone())
        .collect();
    let read_write: Vec<_> = grants
        .iter()
        .filter(|g| !g.read_only)
        .map(|g| g.host.clone())
        .collect();
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.handle_access(AccessNet::from_all(abi)))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(&read_only, AccessFs::from_read(abi))))
        .and_then(|r| r.add_rules(path_beneath_rules(&read_write, AccessFs::from_all(abi))))
        .and_then(|r| r.restrict_self());
    match status {
        Ok(s) => format!("{:?}", s.ruleset),
        Err(e) => format!("not enforced: {e}"),
    }
}

fn seccomp() -> Result<(), String> {
    use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
    let denied = [
        libc::SYS_execve,
        libc::SYS_execveat,
        libc::SYS_fork,
        libc::SYS_vfork,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_socket,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_kexec_load,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_keyctl,
        libc::SYS_userfaultfd,
    ];
    let arch = if cfg!(target_arch = "x86_64") {
        TargetArch::x86_64
    } else if cfg!(target_arch = "aarch64") {
        TargetArch::aarch64
    } else {
        return Err("unsupported architecture".into());
    };
    let rules = denied.iter().map(|&nr| (nr, Vec::new())).collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    let program: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())?;
    seccompiler::apply_filter(&program).map_err(|e| e.to_string())
}
