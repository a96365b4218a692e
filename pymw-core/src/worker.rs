//! The worker roles of the binary, selected by the reserved first argument
//! `__pymw`:
//!
//! ```text
//! BIN __pymw worker --task NAME --input IN --output OUT   run one task from files
//! BIN __pymw serve                                        run tasks from stdin, replies on stdout
//! BIN __pymw list                                         every task with its fingerprint
//! ```
//!
//! In `worker` and `serve` a task runs as a normal program would: stdin at
//! end-of-file (`/dev/null`; `serve`'s request and reply pipes live on
//! close-on-exec descriptors no task or child sees), on a thread named
//! `pymw-task` whose stack is bounded by `PYMW_TASK_STACK` (see
//! [`task_stack_size`]; default 8 MiB).
//!
//! Backends add roles of their own (BOINC's app, validator and assimilator)
//! through [`init_with`], which the `pymw` facade's `init` calls.
//!
//! Exit codes of `worker` (see [`WorkerExit`]): 0 the task returned and its
//! value is in OUT; 1 the task failed (error or panic) and the failure is in
//! OUT; 2 usage error; 3 unknown task; 4 input unreadable; 5 input corrupt;
//! 6 version skew; 7 output not writable. For 3, 5 and 6 a failure envelope is
//! still written to OUT when possible, so a master learns the reason.

use crate::invoke::install_panic_hook;
use crate::registry::{Registry, TaskEntry};
use crate::sys;
use crate::wire::{self, Failure, InputBody, Outcome, OutputBody, WireError, WorkerStats, frame};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The reserved first argument that selects a worker role.
pub const ROLE_ARG: &str = "__pymw";

static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// Whether [`init`] ran in this process.
pub fn is_initialized() -> bool {
    INITIALIZED.load(Ordering::Relaxed)
}

/// An extra role a backend adds to the binary (`BIN __pymw NAME ...`).
#[derive(Debug)]
pub struct RoleEntry {
    /// The role's name, the word after `__pymw`.
    pub name: &'static str,
    /// One line for `__pymw help`.
    pub about: &'static str,
    /// Runs the role with the arguments after its name; returns the exit code.
    pub run: fn(args: Vec<String>) -> i32,
}

static EXTRA_ROLES: std::sync::OnceLock<&'static [RoleEntry]> = std::sync::OnceLock::new();

fn extra_roles() -> &'static [RoleEntry] {
    EXTRA_ROLES.get().copied().unwrap_or(&[])
}

/// [`init`], with roles that backends add to the binary. The roles are
/// named here, rather than registered from their crates, so that the linker
/// cannot leave them out.
pub fn init_with(roles: &'static [RoleEntry]) {
    let _ = EXTRA_ROLES.set(roles);
    init();
}

/// Exit codes of the `worker` role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum WorkerExit {
    /// The task returned; its value is in the output file.
    Ok = 0,
    /// The task returned an error or panicked; the failure is in the output file.
    TaskFailed = 1,
    /// The command line is wrong.
    Usage = 2,
    /// The binary holds no task of that name.
    UnknownTask = 3,
    /// The input file is missing or unreadable.
    InputUnreadable = 4,
    /// The input file is truncated, corrupt or oversized.
    InputCorrupt = 5,
    /// The input was made by another build or a newer format.
    VersionSkew = 6,
    /// The output file could not be written.
    OutputUnwritable = 7,
}

/// Takes a worker role if the process was invoked as one, and then exits;
/// otherwise returns and the caller goes on as the master. Call it first in
/// `main` (`#[pymw::main]` does).
///
/// Also checks that no two tasks share a name, and exits with an error
/// naming them if they do.
pub fn init() {
    INITIALIZED.store(true, Ordering::Relaxed);
    if let Err(duplicate) = Registry::check() {
        eprintln!("pymw: {duplicate}");
        std::process::exit(WorkerExit::Usage as i32);
    }
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(std::ffi::OsStr::new(ROLE_ARG)) {
        return;
    }
    let args: Vec<String> = match args.map(|a| a.into_string()).collect() {
        Ok(args) => args,
        Err(bad) => {
            eprintln!("pymw: argument {bad:?} is not valid UTF-8");
            std::process::exit(WorkerExit::Usage as i32);
        }
    };
    std::process::exit(run_role(args));
}

/// Runs the role named by `args[0]`; returns the process exit code.
pub fn run_role(args: Vec<String>) -> i32 {
    let Some((role, rest)) = args.split_first() else {
        eprintln!(
            "pymw: `{ROLE_ARG}` needs a role: {}",
            role_names().join(", ")
        );
        return WorkerExit::Usage as i32;
    };
    match role.as_str() {
        "worker" => match parse_worker_args(rest) {
            Ok(args) => run_worker(&args) as i32,
            Err(message) => {
                eprintln!("pymw: {message}");
                eprintln!("usage: BIN {ROLE_ARG} worker --task NAME --input IN --output OUT");
                WorkerExit::Usage as i32
            }
        },
        "serve" => match serve() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("pymw serve: {e}");
                1
            }
        },
        "list" => {
            print!("{}", render_listing(Registry::global()));
            0
        }
        "help" | "--help" | "-h" => {
            println!("{}", role_help());
            0
        }
        other => match extra_roles().iter().find(|r| r.name == other) {
            Some(entry) => (entry.run)(rest.to_vec()),
            None => {
                eprintln!(
                    "pymw: unknown role `{other}`; this binary has: {}",
                    role_names().join(", ")
                );
                WorkerExit::Usage as i32
            }
        },
    }
}

fn role_names() -> Vec<&'static str> {
    let mut names = vec!["worker", "serve", "list", "help"];
    names.extend(extra_roles().iter().map(|r| r.name));
    names
}

fn role_help() -> String {
    let mut help = format!(
        "Worker roles of this binary (the first argument `{ROLE_ARG}` selects them):\n  \
         worker --task NAME --input IN --output OUT   run one task from an input envelope file\n  \
         serve                                        run tasks from stdin (used by the local backend)\n  \
         list                                         print every task and its fingerprint\n"
    );
    for role in extra_roles() {
        help.push_str(&format!("  {:<45}{}\n", role.name, role.about));
    }
    help
}

/// The `list` output: a header line, then `FINGERPRINT<TAB>NAME` per task,
/// sorted by name. The fingerprint is 16 hex digits.
pub fn render_listing(registry: &Registry) -> String {
    let mut out = format!("# pymw tasks, format {}\n", wire::FORMAT_VERSION);
    for (name, fingerprint) in registry.listing() {
        out.push_str(&format!("{fingerprint:016x}\t{name}\n"));
    }
    out
}

/// Parses the output of `BIN __pymw list`.
pub fn parse_listing(text: &str) -> Result<Vec<(String, u64)>, String> {
    let mut lines = text.lines();
    match lines.next() {
        Some(header) if header.starts_with("# pymw tasks, format ") => {}
        _ => return Err("not a pymw task listing (missing header line)".to_owned()),
    }
    lines
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (fingerprint, name) = line
                .split_once('\t')
                .ok_or_else(|| format!("malformed listing line {line:?}"))?;
            let fingerprint = u64::from_str_radix(fingerprint, 16)
                .map_err(|_| format!("malformed fingerprint in {line:?}"))?;
            Ok((name.to_owned(), fingerprint))
        })
        .collect()
}

/// Arguments of the `worker` role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerArgs {
    /// The task's registered name.
    pub task: String,
    /// The input envelope file.
    pub input: PathBuf,
    /// Where to write the output envelope.
    pub output: PathBuf,
}

/// The `--task NAME --input IN --output OUT` options of a role that runs
/// one task (`worker`, and BOINC's `boinc-run`), as given: which are
/// required is the role's business.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFlags {
    /// `--task`.
    pub task: Option<String>,
    /// `--input`.
    pub input: Option<String>,
    /// `--output`.
    pub output: Option<String>,
}

/// Parses [`TaskFlags`]; unknown, repeated or valueless options are errors.
pub fn parse_task_flags(args: &[String]) -> Result<TaskFlags, String> {
    let (mut task, mut input, mut output) = (None, None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let slot = match flag.as_str() {
            "--task" => &mut task,
            "--input" => &mut input,
            "--output" => &mut output,
            other => return Err(format!("unknown option `{other}`")),
        };
        let value = it.next().ok_or_else(|| format!("`{flag}` needs a value"))?;
        if slot.replace(value.clone()).is_some() {
            return Err(format!("`{flag}` given twice"));
        }
    }
    Ok(TaskFlags {
        task,
        input,
        output,
    })
}

fn parse_worker_args(args: &[String]) -> Result<WorkerArgs, String> {
    let TaskFlags {
        task,
        input,
        output,
    } = parse_task_flags(args)?;
    Ok(WorkerArgs {
        task: task.ok_or("missing `--task NAME`")?,
        input: input.ok_or("missing `--input IN`")?.into(),
        output: output.ok_or("missing `--output OUT`")?.into(),
    })
}

/// Runs one task from an input envelope file and writes the output envelope.
pub fn run_worker(args: &WorkerArgs) -> WorkerExit {
    install_panic_hook();
    let started = Instant::now();
    // A task reads stdin at end-of-file wherever it runs, whatever the
    // engine left on descriptor 0.
    if let Err(e) = sys::stdin_from_dev_null() {
        eprintln!("pymw worker: cannot point stdin at /dev/null: {e}");
    }
    let registry = Registry::global();
    let fail = |exit: WorkerExit, failure: Failure, stats: WorkerStats| {
        eprintln!("pymw worker: {failure}");
        let body = OutputBody {
            task: &args.task,
            fingerprint: registry.get(&args.task).map_or(0, |e| (e.fingerprint)()),
            outcome: Outcome::Failed(failure),
            stats,
        };
        match write_output(&args.output, &body) {
            Ok(()) => exit,
            Err(e) => {
                eprintln!("pymw worker: cannot write {}: {e}", args.output.display());
                WorkerExit::OutputUnwritable
            }
        }
    };
    let Some(entry) = registry.get(&args.task) else {
        return fail(
            WorkerExit::UnknownTask,
            Failure::UnknownTask {
                name: args.task.clone(),
            },
            stats_since(started),
        );
    };
    let bytes = match wire::read_envelope_file(&args.input) {
        Ok(bytes) => bytes,
        Err(e) => {
            // The output is written even now: an engine such as HTCondor
            // holds a job whose declared output file is missing.
            let exit = if e.kind() == std::io::ErrorKind::InvalidData {
                WorkerExit::InputCorrupt
            } else {
                WorkerExit::InputUnreadable
            };
            let failure = Failure::Decode {
                message: format!("cannot read input {}: {e}", args.input.display()),
            };
            return fail(exit, failure, stats_since(started));
        }
    };
    let input = match wire::decode_input(&bytes) {
        Ok(input) => input,
        Err(e) => {
            let (exit, failure) = input_failure(&args.input, e);
            return fail(exit, failure, stats_since(started));
        }
    };
    if let Err(failure) = check_input(entry, &input) {
        return fail(WorkerExit::VersionSkew, failure, stats_since(started));
    }
    let stack = match task_stack_size() {
        Ok(stack) => stack,
        Err(message) => {
            let failure = Failure::TaskError { message };
            return fail(WorkerExit::Usage, failure, stats_since(started));
        }
    };
    let mut value = Vec::new();
    let result = match on_task_thread(stack, || (entry.invoke)(input.payload, &mut value)) {
        Ok(result) => {
            result.and_then(|()| value_fits(entry.name, &value, wire::max_message_bytes()))
        }
        Err(e) => Err(Failure::TaskError {
            message: format!("cannot start the task thread with a {stack}-byte stack: {e}"),
        }),
    };
    let stats = stats_since(started);
    let (exit, outcome) = match result {
        Ok(()) => (WorkerExit::Ok, Outcome::Ok(&value)),
        Err(failure) => {
            eprintln!("pymw worker: {failure}");
            (WorkerExit::TaskFailed, Outcome::Failed(failure))
        }
    };
    let body = OutputBody {
        task: entry.name,
        fingerprint: (entry.fingerprint)(),
        outcome,
        stats,
    };
    match write_output(&args.output, &body) {
        Ok(()) => exit,
        Err(e) => {
            eprintln!(
                "pymw worker: cannot write output {}: {e}",
                args.output.display()
            );
            WorkerExit::OutputUnwritable
        }
    }
}

fn input_failure(path: &Path, error: WireError) -> (WorkerExit, Failure) {
    let message = format!("input {}: {error}", path.display());
    match error {
        WireError::UnsupportedVersion { .. } => {
            (WorkerExit::VersionSkew, Failure::VersionSkew { message })
        }
        _ => (WorkerExit::InputCorrupt, Failure::Decode { message }),
    }
}

/// Checks that an input was made for this task in a build with the same
/// fingerprint.
pub fn check_input(entry: &TaskEntry, input: &InputBody<'_>) -> Result<(), Failure> {
    if input.task != entry.name {
        return Err(Failure::VersionSkew {
            message: format!(
                "the input is for task `{}`, not `{}`",
                input.task, entry.name
            ),
        });
    }
    let ours = (entry.fingerprint)();
    if input.fingerprint != ours {
        return Err(Failure::VersionSkew {
            message: format!(
                "the input was made by a different build of task `{}` (fingerprint {:016x}, this binary has {ours:016x}): \
                 ship the binary the master was built from",
                entry.name, input.fingerprint
            ),
        });
    }
    Ok(())
}

fn stats_since(started: Instant) -> WorkerStats {
    let (cpu, peak_rss_kib) = sys::process_usage();
    WorkerStats {
        wall_ns: started.elapsed().as_nanos() as u64,
        cpu_ns: Some(cpu.as_nanos() as u64),
        peak_rss_kib,
        host: sys::host_name(),
    }
}

/// Writes an output envelope atomically: to a temporary name, then renamed,
/// so that a worker killed mid-write never leaves a torn file under the real
/// name.
fn write_output(path: &Path, body: &OutputBody<'_>) -> std::io::Result<()> {
    let mut bytes = Vec::new();
    wire::encode_output(body, &mut bytes);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Tasks whose wall time (moving average) is above this get their CPU time
/// measured; below it the two system calls would cost more than the task.
const MEASURE_CPU_ABOVE_NS: u64 = 100_000;
/// Replies are flushed at least this often while tasks run.
const FLUSH_EVERY_NS: u128 = 2_000_000;
/// Replies are flushed when this many bytes are waiting.
const FLUSH_BYTES: usize = 256 * 1024;

/// A value over the message size limit is a failure of the task, decided
/// on the worker: the master would refuse the reply, and running the task
/// again would give the same value.
fn value_fits(task: &str, value: &[u8], limit: u64) -> Result<(), Failure> {
    // 256: room for any host name, without asking for it per task.
    let size = wire::output_body_bound(task, "", value.len()) + 256;
    if size <= limit {
        return Ok(());
    }
    Err(Failure::TaskError {
        message: format!(
            "the task's value is {} bytes, over the limit of {limit} bytes \
             (PYMW_MAX_MESSAGE_BYTES): return less (e.g. write it to a file the master can \
             read), or raise PYMW_MAX_MESSAGE_BYTES (e.g. 2G) for the master and its workers",
            value.len()
        ),
    })
}

/// The `serve` role: a handshake on stdout, then request frames from stdin
/// answered in order by reply frames on stdout, until stdin closes.
///
/// Replies are batched: they are written when the requests read so far are
/// all answered, when 256 KiB are waiting, or every 2 ms, so tiny tasks cost
/// about one write per batch and long tasks still report promptly.
///
/// Tasks run on one long-lived task thread with a bounded stack
/// ([`task_stack_size`]); the whole loop runs there, so a tiny task costs no
/// hand-over between threads.
pub fn serve() -> std::io::Result<()> {
    install_panic_hook();
    let stack = task_stack_size()
        .map_err(|message| std::io::Error::new(std::io::ErrorKind::InvalidInput, message))?;
    let pipes = sys::take_stdio_for_protocol()?;
    sys::kill_group_on_master_death()?;
    on_task_thread(stack, move || serve_on(pipes))?
}

fn serve_on(pipes: sys::ProtocolPipes) -> std::io::Result<()> {
    let sys::ProtocolPipes {
        requests: mut stdin,
        replies: mut protocol_out,
        marks: mut stderr_marks,
    } = pipes;
    let registry = Registry::global();
    let host = sys::host_name();
    let hello = frame::Hello {
        format_version: wire::FORMAT_VERSION,
        pid: std::process::id(),
        host,
        tasks: registry.listing(),
    };
    protocol_out.write_all(&frame::encode_hello(&hello))?;
    let tasks = registry.tasks();
    let limit = wire::max_message_bytes();
    let mut input = frame::FrameReader::new(1 << 16);
    // Replies answered so far: the sequence number of failure marks.
    let mut seq: u64 = 0;
    let mut outbuf: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut value = Vec::new();
    let mut last_flush = Instant::now();
    let mut avg_wall_ns: u64 = 0;
    let mut peak_rss_kib = sys::process_usage().1;
    loop {
        // Answer every whole request already buffered.
        while let Some((bytes, used)) = frame::split_frame(input.data(), limit, frame::REQUEST_HEAD)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
        {
            let request = frame::parse_request(bytes);
            let measure_cpu = avg_wall_ns > MEASURE_CPU_ABOVE_NS;
            let cpu_start = if measure_cpu { sys::thread_cpu_ns() } else { 0 };
            let t0 = Instant::now();
            value.clear();
            let result = match tasks.get(request.task_index as usize) {
                Some(entry) => (entry.invoke)(request.payload, &mut value)
                    .and_then(|()| value_fits(entry.name, &value, limit)),
                None => Err(Failure::UnknownTask {
                    name: format!("#{}", request.task_index),
                }),
            };
            let now = Instant::now();
            let wall_ns = (now - t0).as_nanos() as u64;
            avg_wall_ns = avg_wall_ns - avg_wall_ns / 8 + wall_ns / 8;
            let cpu_ns = measure_cpu.then(|| sys::thread_cpu_ns().saturating_sub(cpu_start));
            let status = if result.is_ok() {
                frame::STATUS_OK
            } else {
                frame::STATUS_FAILED
            };
            let at = frame::begin_reply(
                &mut outbuf,
                request.key,
                status,
                wall_ns,
                cpu_ns,
                peak_rss_kib,
            );
            match result {
                Ok(()) => outbuf.extend_from_slice(&value),
                Err(failure) => {
                    let taken = std::mem::take(&mut outbuf);
                    outbuf = postcard::to_extend(&failure, taken)
                        .expect("postcard into Vec is infallible");
                }
            }
            frame::finish_reply(&mut outbuf, at);
            // Everything the task wrote to stderr is in the pipe before the
            // mark, and the mark before the reply: the backend knows that a
            // failure's stderr tail is complete when it has read the mark,
            // without waiting for quiet. Decided on the finished reply, so
            // that every failed reply has its mark, whatever made it fail.
            if frame::parse_reply(&outbuf[at + 4..]).status == frame::STATUS_FAILED {
                let _ = stderr_marks.write_all(&failure_mark(seq));
            }
            seq += 1;
            input.consume(used);
            if outbuf.len() >= FLUSH_BYTES || (now - last_flush).as_nanos() >= FLUSH_EVERY_NS {
                peak_rss_kib = sys::process_usage().1;
                protocol_out.write_all(&outbuf)?;
                outbuf.clear();
                last_flush = now;
            }
        }
        if !outbuf.is_empty() {
            peak_rss_kib = sys::process_usage().1;
            protocol_out.write_all(&outbuf)?;
            outbuf.clear();
            last_flush = Instant::now();
        }
        if input.fill(&mut stdin)? == 0 {
            if input.data().is_empty() {
                return Ok(());
            }
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "stdin closed in the middle of a request",
            ));
        }
    }
}

/// The first half of a failure mark: the `serve` role writes
/// `FAILURE_MARK_MAGIC` and the failed reply's sequence number (replies
/// counted from 0, little-endian `u64`) to stderr right after a task fails,
/// in one write (atomic on a pipe). The local backend strips marks from the
/// stderr it keeps and forwards.
pub const FAILURE_MARK_MAGIC: [u8; 8] = *b"\0PYMW-F\0";
/// The length of a failure mark.
pub const FAILURE_MARK_LEN: usize = 16;

/// The failure mark of reply `seq`.
pub fn failure_mark(seq: u64) -> [u8; FAILURE_MARK_LEN] {
    let mut mark = [0u8; FAILURE_MARK_LEN];
    mark[..8].copy_from_slice(&FAILURE_MARK_MAGIC);
    mark[8..].copy_from_slice(&seq.to_le_bytes());
    mark
}

/// The environment variable that sets the task thread's stack size.
pub const TASK_STACK_ENV: &str = "PYMW_TASK_STACK";
/// The task thread's stack size unless [`TASK_STACK_ENV`] says otherwise.
pub const DEFAULT_TASK_STACK: usize = 8 << 20;

/// The stack size of the thread tasks run on: `PYMW_TASK_STACK` (bytes, or
/// a whole number with a binary suffix `K`, `M` or `G`: `64M`), from 64 KiB
/// to 64 GiB; 8 MiB when unset. A task that overflows it ends its worker
/// with SIGABRT and "thread 'pymw-task' has overflowed its stack" on
/// stderr, on every backend, instead of growing with whatever stack limit
/// the engine gives the main thread (unlimited on some HTCondor pools).
pub fn task_stack_size() -> Result<usize, String> {
    match std::env::var(TASK_STACK_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(DEFAULT_TASK_STACK),
        Err(std::env::VarError::NotUnicode(value)) => Err(format!(
            "{TASK_STACK_ENV}={value:?} is not a size: write e.g. 64M"
        )),
        Ok(value) => {
            parse_stack_size(&value).map_err(|e| format!("{TASK_STACK_ENV}={value:?}: {e}"))
        }
    }
}

fn parse_stack_size(text: &str) -> Result<usize, String> {
    let bytes = crate::units::parse_size(text)?;
    if !(64 << 10..=64 << 30).contains(&bytes) {
        return Err("the stack must be between 64K and 64G".into());
    }
    usize::try_from(bytes).map_err(|_| "too large for this machine".to_owned())
}

/// Runs `f` on a thread named `pymw-task` with a stack of `stack` bytes and
/// waits for it. A panic that escapes `f` goes on in the caller.
fn on_task_thread<T: Send>(stack: usize, f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("pymw-task".into())
            .stack_size(stack)
            .spawn_scoped(scope, f)?;
        Ok(handle
            .join()
            .unwrap_or_else(|payload| std::panic::resume_unwind(payload)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_over_the_limit_is_a_task_failure() {
        assert_eq!(value_fits("t", &[0; 100], 4096), Ok(()));
        match value_fits("t", &[0; 5000], 4096) {
            Err(Failure::TaskError { message }) => {
                assert!(
                    message.contains("5000 bytes, over the limit of 4096"),
                    "{message}"
                )
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn stack_sizes_parse_strictly() {
        assert_eq!(parse_stack_size("64M"), Ok(64 << 20));
        assert_eq!(parse_stack_size("65536"), Ok(65536));
        assert_eq!(parse_stack_size("1G"), Ok(1 << 30));
        for bad in ["", "M", "8MB", "-8M", "1K", "65G", "99999999999999999999"] {
            assert!(parse_stack_size(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn worker_args_parse_and_complain() {
        let args: Vec<String> = ["--task", "t", "--input", "i", "--output", "o"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let parsed = parse_worker_args(&args).unwrap();
        assert_eq!(parsed.task, "t");
        assert!(
            parse_worker_args(&args[..4])
                .unwrap_err()
                .contains("--output")
        );
        assert!(
            parse_worker_args(&["--bogus".into()])
                .unwrap_err()
                .contains("--bogus")
        );
    }

    #[test]
    fn listing_round_trip() {
        let text = "# pymw tasks, format 1\n00000000000000ff\ta::b\n";
        assert_eq!(parse_listing(text).unwrap(), vec![("a::b".to_owned(), 255)]);
        assert!(parse_listing("garbage").is_err());
    }
}
