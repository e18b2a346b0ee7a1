//! Platform specifics, in one place: the rest of mpwasm names no OS call.
//!
//! Linux is the supported platform: parent-death signals are Linux-only.

pub(crate) mod fork;
pub(crate) mod ipc;
pub(crate) mod owner_lock;
pub(crate) mod robust;
pub(crate) mod waiters;
pub(crate) mod window;

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
    close_fds_except(&[]);
}

/// Closes every file descriptor above stderr but those in `keep`: a forked
/// worker keeps only its channel (on stdin) and the descriptors its
/// zygote's engine opened to map the artifact, which wasmtime maps again at
/// each instantiation.
pub(crate) fn close_fds_except(keep: &[i32]) {
    let mut kept: Vec<u32> = keep
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .filter(|&fd| fd > 2)
        .collect();
    kept.sort_unstable();
    kept.dedup();
    // The gaps between the kept descriptors, each closed by one call.
    let mut first = 3u32;
    let mut ranges = Vec::with_capacity(kept.len() + 1);
    for &fd in &kept {
        if fd > first {
            ranges.push((first, fd - 1));
        }
        first = fd + 1;
    }
    ranges.push((first, u32::MAX));
    // SAFETY: called first thing in a new worker process (or a forked one,
    // whose inherited objects are never dropped), before any Rust object it
    // uses owns a descriptor above 2 but `keep` (see the loop below);
    // `close_range` closes the open numbers in each range and no other.
    let closed = ranges
        .iter()
        .all(|&(a, b)| unsafe { libc::syscall(libc::SYS_close_range, a, b, 0) } == 0);
    if closed {
        return;
    }
    // Before Linux 5.9: one by one, as /proc lists them.
    for fd in open_fds()
        .into_iter()
        .filter(|fd| *fd > 2 && !keep.contains(fd))
    {
        // SAFETY: called first thing in a new worker process (or a forked
        // one, whose inherited objects are never dropped: it exits without
        // returning to them), before any Rust object it uses owns a
        // descriptor above 2 but `keep`; the one `read_dir` used is closed
        // already (EBADF is ignored). A failed `close_range` above closed
        // nothing it should not have either.
        unsafe {
            libc::close(fd);
        }
    }
}

/// The descriptors open in this process, in ascending order (empty if
/// `/proc` cannot be read). The one used to list them is closed before this
/// returns, and is not in the list when its number is free again.
pub(crate) fn open_fds() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut listed: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    // The directory's own descriptor was listed too; it is closed now.
    // SAFETY: F_GETFD only reads the descriptor's flags; a closed number
    // answers EBADF.
    listed.retain(|fd| unsafe { libc::fcntl(*fd, libc::F_GETFD) } >= 0);
    listed.sort_unstable();
    listed
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
/// - seccomp: `execve`, new processes (`fork`, `vfork`, `clone` without
///   `CLONE_THREAD`, `clone3`), new sockets, `ptrace`, namespace, mount,
///   module, BPF, keyring and `io_uring` calls fail.
///
/// The seccomp filters are `filters`, compiled beforehand (a zygote
/// compiles them once; each worker it forks only installs them, and only
/// those its zygote did not install already: see [`lock_down_zygote`]).
pub(crate) fn lock_down(grants: &[crate::wire::DirGrant], filters: &WorkerFilters) -> Lockdown {
    let landlock = landlock(grants);
    let seccomp = install_seccomp(filters);
    Lockdown { landlock, seccomp }
}

/// Installs a worker's seccomp filters (the zygote's and the process
/// rules) on this process; whether they are installed. For the benchmark's
/// native reference under the same filters (`mpwasm::benchmarking`).
pub(crate) fn install_worker_seccomp() -> bool {
    install_seccomp(&WorkerFilters::new())
}

/// Installs what `filters` this process does not have yet; whether all
/// are installed.
fn install_seccomp(filters: &WorkerFilters) -> bool {
    filters.programs.as_ref().is_ok_and(|(base, process)| {
        let base = (!filters.base_installed).then_some(base);
        base.into_iter()
            .chain(process)
            .all(|p| seccompiler::apply_filter(p).is_ok())
    })
}

/// A worker's seccomp filters, compiled to BPF (see [`lock_down`]): the
/// zygote's (every denied call but those that start processes) and, on
/// top, the process rules. Filters stack: every one installed runs on
/// each call and the strictest answer wins, so a worker forked from a
/// zygote that installed the first needs only the second.
pub(crate) struct WorkerFilters {
    /// The zygote's filter, and the process rules.
    programs: Result<(seccompiler::BpfProgram, Vec<seccompiler::BpfProgram>), String>,
    /// This process installed the zygote's filter: its forked children
    /// inherit it.
    base_installed: bool,
}

impl WorkerFilters {
    /// Compiles them.
    pub(crate) fn new() -> Self {
        let programs = compile(Role::Zygote).and_then(|mut base| {
            let base = base.pop().ok_or("no zygote filter")?;
            Ok((base, compile(Role::Worker)?))
        });
        WorkerFilters {
            programs,
            base_installed: false,
        }
    }
}

/// The zygote's lockdown: [`lock_down`]'s seccomp filter, except that
/// `fork`, `clone` and `clone3` stay allowed (the zygote forks workers);
/// no Landlock, since each forked worker restricts itself to its own grants
/// (Landlock only ever narrows). The workers it forks inherit the filter
/// and add the process rules of `filters` on top. Returns whether the
/// filter is installed.
pub(crate) fn lock_down_zygote(filters: &mut WorkerFilters) -> bool {
    let installed = filters
        .programs
        .as_ref()
        .is_ok_and(|(base, _)| seccompiler::apply_filter(base).is_ok());
    filters.base_installed = installed;
    installed
}

/// Tunes a worker's malloc. Every thread allocates from the one arena of
/// the main thread: a worker's threads (the deadline ticker, the runtime
/// WASI starts for a guest's first sleep or I/O) allocate little, and each
/// arena of its own costs a 64 MiB reservation and page faults as it
/// grows, in every worker that starts one. And a chunk's buffers (its frame
/// in, its results out: hundreds of KiB for a chunk of tiny tasks) come
/// from the heap and stay there for the next chunk, instead of being
/// mapped and unmapped each time: every first touch of a page is a page
/// fault (about 3 µs on the development VM), and a pool of tiny tasks
/// spends more on them than on its tasks. A worker keeps at most
/// [`MALLOC_KEEP`] of freed heap; larger blocks are still mapped and
/// unmapped.
///
/// Call it before starting a thread.
pub(crate) fn tune_worker_malloc() {
    let keep = libc::c_int::try_from(MALLOC_KEEP).expect("fits an int");
    // SAFETY: mallopt only sets parameters of glibc's allocator; no
    // other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, keep);
        libc::mallopt(libc::M_TRIM_THRESHOLD, keep);
    }
}

/// How much freed heap a worker keeps for reuse ([`tune_worker_malloc`]):
/// allocations below it come from the heap.
const MALLOC_KEEP: usize = 8 << 20;

/// Names the calling thread (and a single-threaded process) in `ps`, `top`
/// and `/proc/PID/comm`; at most 15 bytes are kept.
pub(crate) fn set_process_name(name: &str) {
    if let Ok(name) = std::ffi::CString::new(name) {
        let _ = rustix::thread::set_name(&name);
    }
}

/// Whose seccomp filter.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Worker,
    Zygote,
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

/// System calls a worker never makes: they fail with `EPERM`.
const DENIED_SYSCALLS: &[i64] = &[
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
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
];

/// Compiles a role's seccomp filters (see [`lock_down`]):
///
/// - the zygote's: the calls in [`DENIED_SYSCALLS`] but `fork` and `vfork`
///   fail with `EPERM`;
/// - a worker's process rules, installed on top of it: `fork` and `vfork`
///   fail with `EPERM`, and so does `clone` unless it starts a thread
///   (`CLONE_THREAD`): wasmtime and WASI start threads (the deadline
///   ticker), a worker never starts a process; `clone3` fails with
///   `ENOSYS`: its flags are behind a pointer the filter cannot read, and
///   `ENOSYS` makes glibc's `pthread_create` fall back to `clone`, which
///   the filter can check.
fn compile(role: Role) -> Result<Vec<seccompiler::BpfProgram>, String> {
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };
    let arch = if cfg!(target_arch = "x86_64") {
        TargetArch::x86_64
    } else if cfg!(target_arch = "aarch64") {
        TargetArch::aarch64
    } else {
        return Err("unsupported architecture".into());
    };
    let errno = |e: i32| SeccompAction::Errno(e as u32);
    let not_a_thread = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
        0,
    )
    .and_then(|c| SeccompRule::new(vec![c]))
    .map_err(|e| e.to_string())?;
    if role == Role::Zygote {
        let rules = DENIED_SYSCALLS
            .iter()
            .filter(|&&nr| nr != libc::SYS_fork && nr != libc::SYS_vfork)
            .map(|&nr| (nr, Vec::new()))
            .collect();
        let filter = SeccompFilter::new(rules, SeccompAction::Allow, errno(libc::EPERM), arch);
        return Ok(vec![to_bpf(filter)?]);
    }
    let process = [
        (libc::SYS_fork, Vec::new()),
        (libc::SYS_vfork, Vec::new()),
        (libc::SYS_clone, vec![not_a_thread]),
    ];
    let filters = [
        SeccompFilter::new(
            process.into_iter().collect(),
            SeccompAction::Allow,
            errno(libc::EPERM),
            arch,
        ),
        SeccompFilter::new(
            [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
            SeccompAction::Allow,
            errno(libc::ENOSYS),
            arch,
        ),
    ];
    filters.into_iter().map(to_bpf).collect()
}

/// Compiles one seccomp filter to BPF.
fn to_bpf(
    filter: Result<seccompiler::SeccompFilter, seccompiler::BackendError>,
) -> Result<seccompiler::BpfProgram, String> {
    filter
        .map_err(|e| e.to_string())?
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())
}

#[cfg(test)]
mod test {
    //! The worker's seccomp filter, installed in a fresh process: this test
    //! binary run again with [`PROBE_ENV`] set, which runs only the probe.

    use std::process::Command;

    /// Set in the probe process.
    const PROBE_ENV: &str = "MPWASM_SECCOMP_PROBE";

    /// The name of the test, to run it again in the probe process.
    const NAME: &str = "sys::test::seccomp_denies_new_processes_and_io_uring_not_threads";

    /// Both ways a worker gets its filters: all at once (an exec'd
    /// worker), or the zygote's first and the process rules on top (a
    /// worker forked from a zygote, which inherits the zygote's).
    #[test]
    fn seccomp_denies_new_processes_and_io_uring_not_threads() {
        if let Some(how) = std::env::var_os(PROBE_ENV) {
            return probe(how == "forked");
        }
        for how in ["exec", "forked"] {
            let out = Command::new(std::env::current_exe().expect("test binary"))
                .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
                .env(PROBE_ENV, how)
                .output()
                .expect("run the probe");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{how} probe failed: {text}");
            for line in [
                "fork EPERM",
                "clone EPERM",
                "clone3 ENOSYS",
                "io_uring_setup EPERM",
                "thread 7",
            ] {
                assert!(
                    text.contains(&format!("probe {line}\n")),
                    "{how}: {line}: {text}"
                );
            }
        }
    }

    /// The errno of a raw system call that is expected to fail; a call that
    /// made a new process ends that process at once.
    fn errno(result: libc::c_long) -> String {
        if result == 0 {
            // SAFETY: in a child that a denied clone/fork made by mistake:
            // leave without running anything of the parent's.
            unsafe { libc::_exit(0) }
        }
        if result > 0 {
            return format!("succeeded ({result})");
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EPERM) => "EPERM".into(),
            Some(libc::ENOSYS) => "ENOSYS".into(),
            other => format!("errno {other:?}"),
        }
    }

    fn probe(forked: bool) {
        let mut filters = super::WorkerFilters::new();
        if forked {
            assert!(super::lock_down_zygote(&mut filters), "the zygote's filter");
        }
        assert!(super::install_seccomp(&filters), "the worker's filters");
        let sigchld = libc::SIGCHLD as libc::c_ulong;
        // SAFETY: each call is expected to fail; one that starts a process
        // is ended in that process by `errno`.
        let fork = unsafe { libc::syscall(libc::SYS_fork) };
        println!("probe fork {}", errno(fork));
        // SAFETY: as above; a new process with no new stack (fork-like).
        let clone = unsafe { libc::syscall(libc::SYS_clone, sigchld, 0, 0, 0, 0) };
        println!("probe clone {}", errno(clone));
        // clone3's `struct clone_args`: flags, pidfd, child_tid, parent_tid,
        // exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup.
        let mut args = [0u64; 11];
        args[4] = sigchld;
        // SAFETY: `args` is a valid clone_args of the size passed.
        let clone3 = unsafe { libc::syscall(libc::SYS_clone3, args.as_mut_ptr(), 88) };
        println!("probe clone3 {}", errno(clone3));
        // `struct io_uring_params` is 120 bytes; all zeros asks for defaults.
        let mut params = [0u8; 120];
        // SAFETY: `params` is a valid io_uring_params; a descriptor returned
        // by mistake is left to the process's exit.
        let ring = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1, params.as_mut_ptr()) };
        println!("probe io_uring_setup {}", errno(ring));
        let thread = std::thread::spawn(|| 7).join().expect("thread");
        println!("probe thread {thread}");
    }
}

#[cfg(test)]
mod fd_test {
    use super::open_fds;

    /// A held descriptor is listed, a closed one is not (a zygote compares
    /// two listings to find what loading opened: the number the first
    /// listing's directory used is often the one loading opens next).
    #[test]
    fn open_fds_lists_what_is_open_and_not_its_own_descriptor() {
        // Other tests of this binary open and close files concurrently, so
        // the check is on one descriptor held across both listings.
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        let listed = open_fds();
        assert!(listed.contains(&fd), "{fd} missing from {listed:?}");
        assert!(listed.windows(2).all(|w| w[0] < w[1]), "{listed:?}");
        drop(file);
        assert!(!open_fds().contains(&fd) || fd_reused(fd));
    }

    fn fd_reused(fd: i32) -> bool {
        // SAFETY: F_GETFD only reads flags.
        unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
    }
}
