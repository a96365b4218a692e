//! The `boinc-run` role: what runs when the BOINC client starts the app.
//!
//! A work unit's command line is `__pymw boinc-run --task NAME`; the client
//! starts the app version's file (this binary) in a slot directory with it
//! (recorded: `slot-direct/argv.txt`). The role:
//!
//! 1. resolves the logical files `in` and `out` through their soft-link
//!    files, or takes them as plain files in the slot under `<copy_file/>`
//!    (an absent `out` is created in the slot) ([`crate::slot`]);
//! 2. reads `init_data.xml` (result name, checkpoint period, CPU time of
//!    earlier runs, shared-memory key);
//! 3. runs the task exactly as the `worker` role does, in a child process
//!    `BIN __pymw worker --task NAME --input IN --output OUT` (an armored
//!    input, see [`crate::armor`], is decoded to a file in the slot first);
//! 4. meanwhile talks to the client through the shared memory
//!    ([`crate::shmem`]): every second it reports CPU time (earlier runs
//!    included), the CPU time of the last checkpoint ([`crate::checkpoint`])
//!    and the fraction done if the task reports one; it honours
//!    `<suspend/>`/`<resume/>` (SIGSTOP/SIGCONT of the child), `<quit/>`
//!    (kill the child and exit 0 without the finish file: the client
//!    restarts the task later, from its checkpoint) and `<abort/>` (kill
//!    the child, exit at once), and quits like the BOINC API when the
//!    client's heartbeats stop for 30 s;
//! 5. when the task succeeded, writes `boinc_finish_called` and exits 0;
//!    when the task itself failed (it returned `Err` or panicked: the
//!    worker wrote the failure envelope as the output), does the same: the
//!    failure is the task's result, uploaded, validated and delivered once
//!    like a value, and the client counts no error; when the worker could
//!    not run the task, exits with the `worker` role's code (3
//!    unknown task, 4 input unreadable, 5 input corrupt, 6 version skew,
//!    7 output not writable); either way it prints the failure and one line
//!    `pymw-boinc-failure: <base64 postcard Failure>` on stderr, which the
//!    client returns in `stderr_out` and the master decodes; when the child
//!    was killed by a signal, the role dies of the same signal, so that the
//!    client treats it as an error with that signal; except SIGKILL,
//!    SIGTERM, SIGINT, SIGQUIT, SIGHUP, which the client would take for
//!    "killed from outside" and restart the task after, forever if it dies
//!    so every time: the role, alive, knows the client did not kill the
//!    task, and exits 128 + the signal (an error).
//!
//! Running the task in a child process is what makes suspend, quit and
//! abort possible without linking the BOINC library: the role stays
//! responsive whatever the task does, and a task that crashes or aborts
//! (`panic = "abort"`) is still reported. The child dies with the role
//! (`PR_SET_PDEATHSIG`), and the client kills both when it kills a task
//! (it kills the app's descendants).

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pymw_core::wire::{self, Failure, Outcome};
use pymw_core::worker::{ROLE_ARG, WorkerExit};

use crate::checkpoint;
use crate::shmem::{AppStatus, ControlRequest, SharedMem};
use crate::slot::{EntryKind, InitData, SlotDir};

/// The role's name after `__pymw`.
pub const ROLE: &str = "boinc-run";
/// The stderr line that carries a structured task failure.
pub const FAILURE_MARKER: &str = "pymw-boinc-failure: ";
/// The decoded input, when the input was armored.
pub const DECODED_INPUT_FILE: &str = "pymw_input";
/// Signals that the client, seeing the app die of them, takes for "killed
/// from outside" and restarts the app after.
const RESTART_SIGNALS: [i32; 5] = [
    libc::SIGKILL,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGHUP,
];
/// Exit code after an `<abort/>` (BOINC's `EXIT_ABORTED_BY_CLIENT`).
pub const EXIT_ABORTED: i32 = 194;
/// Seconds without a heartbeat after which the client is taken to be gone.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// Arguments of the role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunArgs {
    /// The task's registered name.
    pub task: String,
    /// Logical name of the input (`in`).
    pub input: String,
    /// Logical name of the output (`out`).
    pub output: String,
}

impl RunArgs {
    /// The work unit command line for `task`, as a list of arguments.
    pub fn command_line(task: &str) -> Vec<String> {
        vec![
            ROLE_ARG.to_owned(),
            ROLE.to_owned(),
            "--task".to_owned(),
            task.to_owned(),
        ]
    }

    /// Parses the arguments after the role's name.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let pymw_core::worker::TaskFlags {
            task,
            input,
            output,
        } = pymw_core::worker::parse_task_flags(args)?;
        Ok(RunArgs {
            task: task.ok_or("missing `--task NAME`")?,
            input: input.unwrap_or_else(|| "in".to_owned()),
            output: output.unwrap_or_else(|| "out".to_owned()),
        })
    }
}

/// Runs the role with the arguments after its name; returns the exit code
/// (or does not return, when it dies of the task's signal).
pub fn run_role(args: Vec<String>) -> i32 {
    let args = match RunArgs::parse(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pymw {ROLE}: {e}");
            eprintln!("usage: BIN {ROLE_ARG} {ROLE} --task NAME [--input in] [--output out]");
            return WorkerExit::Usage as i32;
        }
    };
    match SlotDir::current() {
        Ok(slot) => run_in_slot(&slot, &args),
        Err(e) => {
            eprintln!("pymw {ROLE}: no working directory: {e}");
            WorkerExit::InputUnreadable as i32
        }
    }
}

/// Runs the task in `slot` (see the module docs).
pub fn run_in_slot(slot: &SlotDir, args: &RunArgs) -> i32 {
    let init = match slot.init_data() {
        Ok(init) => Some(init),
        Err(e) => {
            eprintln!("pymw {ROLE}: running without init_data.xml ({e})");
            None
        }
    };
    let input = match resolve_input(slot, &args.input) {
        Ok(p) => p,
        Err((code, message)) => {
            eprintln!("pymw {ROLE}: {message}");
            return code as i32;
        }
    };
    let output = match resolve_output(slot, &args.output) {
        Ok(p) => p,
        Err(message) => {
            eprintln!("pymw {ROLE}: {message}");
            return WorkerExit::OutputUnwritable as i32;
        }
    };
    let shmem = init
        .as_ref()
        .and_then(|init| match SharedMem::for_slot(slot, init) {
            Ok(mem) => mem,
            Err(e) => {
                eprintln!(
                    "pymw {ROLE}: no shared memory with the client ({e}); progress is not reported"
                );
                None
            }
        });
    let child = match spawn_worker(slot, init.as_ref(), &args.task, &input, &output) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pymw {ROLE}: cannot start the task: {e}");
            return WorkerExit::Usage as i32;
        }
    };
    let mut monitor = Monitor::new(slot, init.as_ref(), shmem, child);
    let end = monitor.run();
    match end {
        End::Exited(0) => {
            monitor.report();
            if let Err(e) = slot.write_finish_called() {
                eprintln!("pymw {ROLE}: {e}");
                return WorkerExit::OutputUnwritable as i32;
            }
            0
        }
        End::Exited(code) => {
            let failure = report_failure(&output);
            monitor.report();
            if code == WorkerExit::TaskFailed as i32
                && failure.as_ref().is_some_and(is_task_failure)
            {
                // The task's own failure is its result: it is the same
                // wherever it runs, so it goes back like a value (and is
                // validated like one). Exiting non-zero would make BOINC
                // take it for a broken volunteer: replicas sent again, the
                // client backing off for minutes.
                if let Err(e) = slot.write_finish_called() {
                    eprintln!("pymw {ROLE}: {e}");
                    return WorkerExit::OutputUnwritable as i32;
                }
                return 0;
            }
            code
        }
        End::Signaled(signal) => {
            let name = pymw_core::sys::signal_name(signal);
            eprintln!("pymw {ROLE}: the task process was killed by signal {signal} ({name})");
            monitor.report();
            if RESTART_SIGNALS.contains(&signal) {
                // The client takes an app dying of these for "killed from
                // outside" and starts it again, forever if the task dies
                // so each time (a task that kills itself, the OOM killer).
                // This role is alive, so the client did not kill the task:
                // an error, which BOINC retries elsewhere.
                return 128 + signal;
            }
            die_of(signal)
        }
        End::Quit(why) => {
            eprintln!("pymw {ROLE}: {why}; the task stops and will be restarted by the client");
            0
        }
        End::Aborted => {
            eprintln!("pymw {ROLE}: aborted by the client");
            EXIT_ABORTED
        }
    }
}

/// The input path to give the worker: the resolved file, or its decoded
/// copy when it is armored.
fn resolve_input(slot: &SlotDir, logical: &str) -> Result<PathBuf, (WorkerExit, String)> {
    let resolved = slot
        .resolve(logical)
        .map_err(|e| (WorkerExit::InputUnreadable, e.to_string()))?;
    if resolved.kind == EntryKind::Absent {
        return Err((
            WorkerExit::InputUnreadable,
            format!(
                "the input `{logical}` is not in the slot {}",
                slot.path().display()
            ),
        ));
    }
    let mut head = [0u8; 32];
    let n = {
        use std::io::Read as _;
        let mut f = std::fs::File::open(&resolved.path).map_err(|e| {
            (
                WorkerExit::InputUnreadable,
                format!("{}: {e}", resolved.path.display()),
            )
        })?;
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => {
                    return Err((
                        WorkerExit::InputUnreadable,
                        format!("{}: {e}", resolved.path.display()),
                    ));
                }
            }
        }
        n
    };
    if !crate::armor::is_armored(&head[..n]) {
        return Ok(resolved.path);
    }
    let limit = wire::max_message_bytes() + wire::HEADER_LEN as u64;
    let text_limit = limit / 3 * 4 + limit / 38 + 256;
    let text = read_bounded(&resolved.path, text_limit).map_err(|e| {
        (
            WorkerExit::InputCorrupt,
            format!("{}: {e}", resolved.path.display()),
        )
    })?;
    let bytes = crate::armor::dearmor(&text, limit).map_err(|e| {
        (
            WorkerExit::InputCorrupt,
            format!("{}: {e}", resolved.path.display()),
        )
    })?;
    let decoded = slot.path().join(DECODED_INPUT_FILE);
    std::fs::write(&decoded, bytes).map_err(|e| {
        (
            WorkerExit::InputUnreadable,
            format!("{}: {e}", decoded.display()),
        )
    })?;
    Ok(decoded)
}

fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(bytes)
}

/// Where to write the output: the soft link's target, or the slot entry
/// (created when absent, as `<copy_file/>` requires).
fn resolve_output(slot: &SlotDir, logical: &str) -> Result<PathBuf, String> {
    let resolved = slot.resolve(logical).map_err(|e| e.to_string())?;
    if resolved.kind == EntryKind::Plain {
        // A symbolic link in the slot: write where it points, so that the
        // atomic rename does not replace the link itself.
        if let Ok(target) = std::fs::read_link(&resolved.path) {
            return Ok(slot.path().join(target));
        }
    }
    Ok(resolved.path)
}

fn spawn_worker(
    slot: &SlotDir,
    init: Option<&InitData>,
    task: &str,
    input: &Path,
    output: &Path,
) -> std::io::Result<Child> {
    let exe = std::env::current_exe()?;
    let slot_dir = std::path::absolute(slot.path())?;
    let mut cmd = Command::new(exe);
    cmd.arg(ROLE_ARG)
        .arg("worker")
        .arg("--task")
        .arg(task)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .current_dir(slot.path())
        .stdin(Stdio::null())
        .env(checkpoint::SLOT_ENV, &slot_dir);
    if let Some(init) = init {
        cmd.env(checkpoint::RESULT_ENV, &init.result_name)
            .env(checkpoint::PERIOD_ENV, init.checkpoint_period.to_string());
    }
    #[cfg(target_os = "linux")]
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// How the monitored task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// The child exited with this code.
    Exited(i32),
    /// The child was killed by this signal.
    Signaled(i32),
    /// The client asked to quit (or is gone): restart later.
    Quit(String),
    /// The client aborted the task.
    Aborted,
}

struct Monitor {
    child: Child,
    shmem: Option<SharedMem>,
    slot: PathBuf,
    init: Option<InitData>,
    /// CPU seconds of earlier runs.
    base_cpu: f64,
    /// CPU seconds at the last checkpoint.
    checkpoint_cpu: f64,
    checkpoint_mtime: Option<std::time::SystemTime>,
    child_cpu: f64,
    last_heartbeat: Option<Instant>,
    suspended: bool,
}

impl Monitor {
    fn new(
        slot: &SlotDir,
        init: Option<&InitData>,
        shmem: Option<SharedMem>,
        child: Child,
    ) -> Self {
        let base_cpu = init.map_or(0.0, |i| i.wu_cpu_time.max(0.0));
        let slot = slot.path().to_owned();
        let checkpoint_mtime = mtime(&slot.join(checkpoint::CHECKPOINT_FILE));
        Monitor {
            child,
            shmem,
            slot,
            init: init.cloned(),
            base_cpu,
            checkpoint_cpu: base_cpu,
            checkpoint_mtime,
            child_cpu: 0.0,
            last_heartbeat: None,
            suspended: false,
        }
    }

    fn run(&mut self) -> End {
        let mut next_status = Instant::now();
        // Read what the client sent before the task started (its first
        // heartbeat, a quit) even if the task ends before the first poll.
        if let Some(end) = self.poll_client() {
            self.kill();
            return end;
        }
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.child_cpu = children_cpu_seconds().max(self.child_cpu);
                    use std::os::unix::process::ExitStatusExt as _;
                    return match (status.code(), status.signal()) {
                        (Some(code), _) => End::Exited(code),
                        (None, Some(signal)) => End::Signaled(signal),
                        (None, None) => End::Exited(WorkerExit::TaskFailed as i32),
                    };
                }
                Ok(None) => {}
                Err(e) => {
                    eprintln!("pymw {ROLE}: cannot wait for the task process: {e}");
                    self.kill();
                    return End::Exited(WorkerExit::TaskFailed as i32);
                }
            }
            if let Some(end) = self.poll_client() {
                self.kill();
                return end;
            }
            if Instant::now() >= next_status {
                next_status = Instant::now() + STATUS_EVERY;
                self.report();
            }
            std::thread::sleep(POLL);
        }
    }

    /// Handles the client's messages; `Some` when the task must stop.
    fn poll_client(&mut self) -> Option<End> {
        let shmem = self.shmem.as_ref()?;
        if shmem.poll_heartbeat().is_some() {
            self.last_heartbeat = Some(Instant::now());
        }
        for request in shmem.poll_control() {
            match request {
                ControlRequest::Suspend if !self.suspended => {
                    self.signal_child(libc::SIGSTOP);
                    self.suspended = true;
                }
                ControlRequest::Resume if self.suspended => {
                    self.signal_child(libc::SIGCONT);
                    self.suspended = false;
                }
                ControlRequest::Quit => {
                    return Some(End::Quit("the client asked the task to quit".to_owned()));
                }
                ControlRequest::Abort => return Some(End::Aborted),
                _ => {}
            }
        }
        if self
            .last_heartbeat
            .is_some_and(|t| t.elapsed() > HEARTBEAT_TIMEOUT)
        {
            return Some(End::Quit(format!(
                "no heartbeat from the client for {} s",
                HEARTBEAT_TIMEOUT.as_secs()
            )));
        }
        None
    }

    fn signal_child(&self, signal: libc::c_int) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: plain system call on our own child.
            unsafe { libc::kill(pid, signal) };
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        if self.suspended {
            self.signal_child(libc::SIGCONT);
        }
        let _ = self.child.wait();
    }

    /// Sends the status message (CPU time, checkpoint, fraction done).
    fn report(&mut self) {
        if let Some(cpu) = process_cpu_seconds(self.child.id()) {
            self.child_cpu = self.child_cpu.max(cpu);
        }
        let current = self.base_cpu + self.child_cpu + own_cpu_seconds();
        let mtime = mtime(&self.slot.join(checkpoint::CHECKPOINT_FILE));
        if mtime.is_some() && mtime != self.checkpoint_mtime {
            self.checkpoint_mtime = mtime;
            self.checkpoint_cpu = current;
        }
        let Some(shmem) = &self.shmem else { return };
        let fraction = checkpoint::read_fraction(&self.slot).map(|f| match &self.init {
            Some(init) => AppStatus::scale_fraction(f, init),
            None => f,
        });
        let status = AppStatus {
            current_cpu_time: current,
            checkpoint_cpu_time: self.checkpoint_cpu,
            fraction_done: fraction,
            ..AppStatus::default()
        };
        if let Err(e) = shmem.send_status(&status) {
            eprintln!("pymw {ROLE}: cannot report status: {e}");
        }
    }
}

fn mtime(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// CPU seconds (user + system) of a running process, from `/proc`.
fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: plain query.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) / ticks as f64)
}

fn rusage_seconds(who: libc::c_int) -> f64 {
    // SAFETY: `rusage` is plain data and getrusage only writes into it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// CPU seconds of the waited-for children (the task process, once reaped).
fn children_cpu_seconds() -> f64 {
    rusage_seconds(libc::RUSAGE_CHILDREN)
}

/// CPU seconds of this process (the monitor itself; tiny).
fn own_cpu_seconds() -> f64 {
    rusage_seconds(libc::RUSAGE_SELF)
}

/// Prints the failure in the output envelope, if there is one, as a
/// [`FAILURE_MARKER`] line, and returns it.
fn report_failure(output: &Path) -> Option<Failure> {
    let bytes = wire::read_envelope_file(output).ok()?;
    let body = wire::decode_output(&bytes).ok()?;
    match body.outcome {
        Outcome::Failed(failure) => {
            eprintln!("{}", failure_line(&failure));
            Some(failure)
        }
        Outcome::Ok(_) => None,
    }
}

/// Whether a failure is the task's own (it returned `Err` or panicked): a
/// result, the same on every volunteer, rather than a problem of the
/// volunteer's copy of the input or of the binary.
pub fn is_task_failure(failure: &Failure) -> bool {
    matches!(failure, Failure::TaskError { .. } | Failure::Panic { .. })
}

/// The [`FAILURE_MARKER`] line for a failure.
pub fn failure_line(failure: &Failure) -> String {
    format!(
        "{FAILURE_MARKER}{}",
        crate::armor::encode(&wire::encode_payload(failure))
    )
}

/// The failure of the last [`FAILURE_MARKER`] line in `stderr`, if any
/// decodes (bounded: the line is at most 64 KiB).
pub fn parse_failure_line(stderr: &str) -> Option<Failure> {
    stderr.lines().rev().find_map(|line| {
        let at = line.find(FAILURE_MARKER)?;
        let coded = line[at + FAILURE_MARKER.len()..].trim();
        if coded.len() > 64 * 1024 {
            return None;
        }
        let bytes = crate::armor::decode(coded.as_bytes()).ok()?;
        wire::decode_payload::<Failure>(&bytes).ok()
    })
}

/// Dies of `signal` with its default action (or exits 128 + signal).
fn die_of(signal: i32) -> i32 {
    // SAFETY: resetting a handler to the default and raising a signal.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(signal);
    }
    128 + signal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let a = RunArgs::parse(&s(&["--task", "m::t"])).unwrap();
        assert_eq!((a.input.as_str(), a.output.as_str()), ("in", "out"));
        assert!(RunArgs::parse(&s(&[])).is_err());
        assert!(RunArgs::parse(&s(&["--task"])).is_err());
        assert!(RunArgs::parse(&s(&["--task", "a", "--task", "b"])).is_err());
        assert_eq!(
            RunArgs::command_line("m::t"),
            s(&["__pymw", "boinc-run", "--task", "m::t"])
        );
    }

    #[test]
    fn failure_lines_round_trip() {
        let f = Failure::Panic {
            message: "boom\nwith newline".into(),
            location: Some("a.rs:1:2".into()),
        };
        let stderr = format!("noise\n{}\nmore noise\n", failure_line(&f));
        assert_eq!(parse_failure_line(&stderr), Some(f));
        assert_eq!(parse_failure_line("pymw-boinc-failure: !!!"), None);
        assert_eq!(parse_failure_line(""), None);
    }
}
