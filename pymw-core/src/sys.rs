//! Thin, safe wrappers over the few operating-system calls pymw needs.

use std::time::Duration;

/// CPU time (user + system) and peak RSS of this process so far.
pub fn process_usage() -> (Duration, u64) {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    // ru_maxrss is in KiB on Linux.
    (
        tv(usage.ru_utime) + tv(usage.ru_stime),
        usage.ru_maxrss.max(0) as u64,
    )
}

/// CPU time of the calling thread, in nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    // SAFETY: clock_gettime only writes into the zeroed struct we pass.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
        ts
    };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// This machine's host name (empty if it cannot be read).
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The descriptors of the `serve` role's protocol, moved off the standard
/// ones, close-on-exec, so that no task and no process a task starts can read
/// requests or write replies.
#[derive(Debug)]
pub struct ProtocolPipes {
    /// The request pipe (the original stdin).
    pub requests: std::fs::File,
    /// The reply pipe (the original stdout).
    pub replies: std::fs::File,
    /// A private copy of stderr, for the markers that tell the local backend
    /// where a failed task's stderr ends. Tasks that redirect descriptor 2
    /// do not move it.
    pub marks: std::fs::File,
}

/// Moves stdin and stdout to new close-on-exec descriptors for the protocol,
/// points descriptor 0 at `/dev/null` (a task reading stdin sees end-of-file,
/// as a program run with `< /dev/null` does) and descriptor 1 at stderr (what
/// a task prints cannot corrupt the replies).
pub fn take_stdio_for_protocol() -> std::io::Result<ProtocolPipes> {
    let requests = dup_cloexec(0)?;
    let replies = dup_cloexec(1)?;
    let marks = dup_cloexec(2)?;
    stdin_from_dev_null()?;
    // SAFETY: dup2 of one standard descriptor onto another.
    if unsafe { libc::dup2(2, 1) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(ProtocolPipes {
        requests,
        replies,
        marks,
    })
}

/// A close-on-exec duplicate of `fd`, numbered 3 or above.
fn dup_cloexec(fd: i32) -> std::io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    // SAFETY: F_DUPFD_CLOEXEC makes a fresh descriptor that we own from here on.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `new` is open and owned by nobody else.
    Ok(unsafe { std::fs::File::from_raw_fd(new) })
}

/// Points descriptor 0 at `/dev/null`.
pub fn stdin_from_dev_null() -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let null = std::fs::File::open("/dev/null")?;
    // SAFETY: dup2 onto descriptor 0; `null` stays owned by the File.
    if unsafe { libc::dup2(null.as_raw_fd(), 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The signal the local backend asks the kernel to send a worker when its
/// master goes (`PR_SET_PDEATHSIG`): a real-time signal that tasks have no
/// reason to use, whose default action still ends the process.
pub fn master_death_signal() -> i32 {
    libc::SIGRTMAX() - 2
}

/// When this process leads its own process group (the local backend starts
/// each worker so), makes [`master_death_signal`] kill the whole group:
/// the worker and everything its tasks started that stayed in the group.
/// Without it, a master killed by SIGKILL would take its workers (SIGKILL
/// cannot be caught) but leave their tasks' children running.
pub fn kill_group_on_master_death() -> std::io::Result<()> {
    extern "C" fn kill_group(_: libc::c_int) {
        // SAFETY: kill(2) is async-signal-safe; 0 is our own process group.
        unsafe {
            libc::kill(0, libc::SIGKILL);
        }
    }
    // SAFETY: getpgrp and getpid cannot fail.
    if unsafe { libc::getpgrp() != libc::getpid() } {
        return Ok(());
    }
    // SAFETY: a handler that only calls kill(2), installed with a zeroed
    // (empty) mask.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = kill_group as extern "C" fn(libc::c_int) as usize;
        action.sa_flags = libc::SA_RESTART;
        if libc::sigaction(master_death_signal(), &action, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sends SIGKILL to process group `pgid`: a worker and what its tasks
/// started. The caller must know that `pgid`'s leader is not yet reaped,
/// so that the number cannot name another group.
pub fn kill_group(pgid: u32) {
    // SAFETY: kill(2) of a process group; see above for why it is ours.
    unsafe {
        libc::kill(-(pgid as libc::pid_t), libc::SIGKILL);
    }
}

/// Waits until child `pid` has ended, without reaping it: until it is
/// reaped its pid (and so its process group's number) cannot be reused.
pub fn wait_exited_unreaped(pid: u32) -> std::io::Result<()> {
    loop {
        // SAFETY: waitid only writes into the zeroed struct we pass.
        let rc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Describes how a child process ended: "exit code 3" or "signal 9 (SIGKILL)".
pub fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        format!("exit code {code}")
    } else if let Some(signal) = status.signal() {
        format!("signal {signal} ({})", signal_name(signal))
    } else {
        format!("{status}")
    }
}

/// The conventional name of a signal number.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => "unknown signal",
    }
}
