//! The tasks the suite runs: ordinary functions that square, fail, panic,
//! crash in every way a process can, print, sleep and count their runs.

use std::path::Path;

/// x².
#[pymw::task]
pub fn square(x: u64) -> u64 {
    x * x
}

/// No arguments.
#[pymw::task]
pub fn answer() -> u64 {
    42
}

/// Three arguments of different types.
#[pymw::task]
pub fn join3(name: String, n: u32, xs: Vec<f64>) -> String {
    format!("{name}-{n}-{}", xs.iter().sum::<f64>())
}

/// `Err` on division by zero.
#[pymw::task]
pub fn checked_div(a: u64, b: u64) -> Result<u64, String> {
    a.checked_div(b)
        .ok_or_else(|| "division by zero".to_owned())
}

/// Writes to stderr, then panics with `message`.
#[pymw::task]
pub fn panics(message: String) -> u64 {
    eprintln!("stderr before the panic");
    panic!("{message}")
}

/// Ends the worker process with `code`.
#[pymw::task]
pub fn exits(code: i32) -> u64 {
    std::process::exit(code)
}

/// Dies of SIGSEGV.
#[pymw::task]
pub fn segfaults() -> u64 {
    raise(libc::SIGSEGV)
}

/// Dies of SIGABRT, as `panic = "abort"` does.
#[pymw::task]
pub fn aborts() -> u64 {
    std::process::abort()
}

/// Dies of SIGKILL, as under the OOM killer.
#[pymw::task]
pub fn killed() -> u64 {
    raise(libc::SIGKILL)
}

fn raise(signal: i32) -> ! {
    // SAFETY: raising a signal at ourselves; the default action ends the process.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
    unreachable!("signal {signal} did not end the process")
}

/// Returns `i`, except that input `crash` dies of SIGSEGV.
#[pymw::task]
pub fn crash_if(i: u64, crash: u64) -> u64 {
    if i == crash {
        raise(libc::SIGSEGV);
    }
    i
}

/// Records each run in `dir`; crashes on the first run of `i`, returns `i` after.
#[pymw::task]
pub fn crash_once(dir: String, i: u64) -> u64 {
    let first = record_run(&dir, i) == 0;
    if first {
        raise(libc::SIGKILL);
    }
    i
}

/// Records each run in `dir` and returns `i`.
#[pymw::task]
pub fn counted(dir: String, i: u64) -> u64 {
    record_run(&dir, i);
    i
}

/// Writes a file `run-I-PID-NANOS` and returns how many runs of `i` there were before.
fn record_run(dir: &str, i: u64) -> usize {
    let dir = Path::new(dir);
    let prefix = format!("run-{i}-");
    let before = std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .count()
    });
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let path = dir.join(format!("{prefix}{}-{nanos}", std::process::id()));
    std::fs::write(&path, b"").expect("write the run record");
    before
}

/// Prints to stdout (which must not reach the result channel) and returns `i`.
#[pymw::task]
pub fn chatty(i: u64) -> u64 {
    println!("chatty task {i} says hello on stdout");
    print!("PYMWSRV1 and other lookalike bytes \0\0\0\0");
    i
}

/// Sleeps `ms` milliseconds.
#[pymw::task]
pub fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    ms
}

/// The bytes reversed.
#[pymw::task]
pub fn reverse_bytes(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.reverse();
    bytes
}

/// The worker's process id.
#[pymw::task]
pub fn worker_pid() -> u32 {
    std::process::id()
}

/// The mean, whose replicas agree when within 1e-9 (floating point on
/// volunteers' machines need not be bit-identical).
#[pymw::task(validate = means_agree)]
pub fn mean(xs: Vec<f64>) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

/// Whether two replicas' means agree.
pub fn means_agree(a: &f64, b: &f64) -> bool {
    (a - b).abs() <= 1e-9
}

/// Reads stdin to its end, then runs a child that inherits stdin (`cat`).
/// Returns the bytes read and whether the child succeeded: `(0, true)` when
/// stdin is at end-of-file, as for a program run with `< /dev/null`.
#[pymw::task]
pub fn reads_stdin() -> (u64, bool) {
    use std::io::Read;
    let mut bytes = Vec::new();
    let read = std::io::stdin().read_to_end(&mut bytes).map_or(0, |n| n);
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg("cat")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (read as u64, child)
}

/// Starts `sleep SECS` in the background (holding the worker's stderr, as a
/// daemon started by a task may) and returns the sleep's pid.
#[pymw::task]
pub fn background_sleep(secs: u64) -> u32 {
    start_background_sleep(secs)
}

fn start_background_sleep(secs: u64) -> u32 {
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("sleep {secs} >/dev/null & echo $!"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run sh");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("the background sleep's pid")
}

/// Starts `sleep SECS` in the background, then aborts its worker.
#[pymw::task]
pub fn aborts_leaving_a_grandchild(secs: u64) -> u64 {
    start_background_sleep(secs);
    std::process::abort()
}

/// Recurses `depth` times, each frame holding a KiB that the optimiser
/// cannot remove (`u64::MAX`: until the stack overflows).
#[pymw::task]
pub fn recurses(depth: u64) -> u64 {
    recurse(0, depth)
}

fn recurse(at: u64, depth: u64) -> u64 {
    let frame = std::hint::black_box([at; 128]);
    if std::hint::black_box(at) >= depth {
        return frame[0];
    }
    recurse(at + 1, depth).wrapping_add(frame[127])
}

/// Installs a panic hook of its own (as some libraries do), then panics or
/// returns.
#[pymw::task]
pub fn sets_panic_hook(panic: bool) -> u64 {
    std::panic::set_hook(Box::new(|_| eprintln!("the user's panic hook ran")));
    if panic {
        panic!("panic under the user's hook");
    }
    std::thread::sleep(std::time::Duration::from_millis(5));
    7
}

/// Even `i`: writes a line naming `i` to stderr, then fails with `Err`.
/// Odd `i`: writes 16 KiB of filler to stderr (more than a stderr tail
/// holds) and returns `i`.
#[pymw::task]
pub fn fails_after_stderr(i: u64) -> Result<u64, String> {
    if i % 2 == 1 {
        eprint!(
            "{}",
            "filler line of a chatty task that succeeds\n".repeat(400)
        );
        return Ok(i);
    }
    eprintln!("failing task {i} says goodbye");
    Err(format!("task {i} failed"))
}

/// Starts `sleep SECS` in a session of its own (`setsid()`, as a daemon
/// does), holding the worker's stderr, and returns its pid.
#[pymw::task]
pub fn escaped_sleep(secs: u64) -> u32 {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new("sleep");
    command
        .arg(secs.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    // SAFETY: setsid() is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    command.spawn().expect("run sleep").id()
}

/// Starts `sleep SECS` in the background, writes its pid to `DIR/pid`,
/// then sleeps `SECS` itself.
#[pymw::task]
pub fn starts_sleep_and_waits(dir: String, secs: u64) -> u64 {
    let pid = start_background_sleep(secs);
    let path = Path::new(&dir);
    std::fs::write(path.join("pid.partial"), pid.to_string()).expect("write the pid");
    std::fs::rename(path.join("pid.partial"), path.join("pid")).expect("publish the pid");
    std::thread::sleep(std::time::Duration::from_secs(secs));
    secs
}

/// Ignores SIGTERM, then sleeps `ms` milliseconds: only SIGKILL ends it early.
#[pymw::task]
pub fn ignores_sigterm(ms: u64) -> u64 {
    // SAFETY: setting a signal's disposition to "ignore".
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
    }
    std::thread::sleep(std::time::Duration::from_millis(ms));
    ms
}

/// The worker's environment variables of these names (`None`: not set).
#[pymw::task]
pub fn env_vars(names: Vec<String>) -> Vec<Option<String>> {
    names.iter().map(|name| std::env::var(name).ok()).collect()
}

/// `n` zero bytes: a small input with a large value.
#[pymw::task]
pub fn zeros(n: u64) -> pymw::Bytes {
    pymw::Bytes::from(vec![0u8; n as usize])
}

/// Records its run in `dir` (a file named after the BOINC result it runs
/// as, from `PYMW_BOINC_RESULT`, or `local`), then fails: with `Err` or,
/// when `panic`, by panicking. A task's own failure, the same everywhere.
#[pymw::task]
pub fn fails_recording_result(dir: String, panic: bool) -> Result<u64, String> {
    record_result(&dir);
    if panic {
        panic!("deliberate panic");
    }
    Err("deliberate failure".to_owned())
}

/// Records its run in `dir` as [`fails_recording_result`] does, then
/// sleeps `secs` seconds and returns them.
#[pymw::task]
pub fn sleeps_recording_result(dir: String, secs: u64) -> u64 {
    record_result(&dir);
    std::thread::sleep(std::time::Duration::from_secs(secs));
    secs
}

/// x², except on the first replica to run (the first to claim `dir/claimed`),
/// which returns x² + 1: one wrong volunteer among honest ones.
#[pymw::task]
pub fn wrong_on_first_replica(dir: String, x: u64) -> u64 {
    record_result(&dir);
    let first = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(Path::new(&dir).join("claimed"))
        .is_ok();
    if first { x * x + 1 } else { x * x }
}

/// A different value on every run (the clock): replicas never agree.
#[pymw::task]
pub fn nondeterministic(dir: String) -> u128 {
    record_result(&dir);
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Records a run in `dir`, then sleeps `ms` and returns `i`.
#[pymw::task]
pub fn counted_sleep(dir: String, i: u64, ms: u64) -> u64 {
    record_run(&dir, i);
    std::thread::sleep(std::time::Duration::from_millis(ms));
    i
}

/// Writes `dir/result-NAME-NANOS`, NAME being the BOINC result this runs
/// as (`PYMW_BOINC_RESULT`, set by the `boinc-run` role) or `local`.
fn record_result(dir: &str) {
    let name = std::env::var("PYMW_BOINC_RESULT").unwrap_or_else(|_| "local".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let path = Path::new(dir).join(format!("result-{name}-{nanos}"));
    std::fs::write(&path, b"").expect("write the run record");
}
