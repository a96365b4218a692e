//! One behaviour suite for every pymw backend (object_store's
//! `integration.rs`, OpenDAL's behavior tests): the same cases run against
//! local workers, an HTCondor pool and BOINC, each from a test binary whose
//! `main` calls `pymw::init()` first and then [`run`].
//!
//! Cases test behaviour a user relies on (results, failures with their
//! causes, retries, timeouts, cancellation, exactly-once results), not the
//! mechanics of one engine.

use pymw::blocking::Master;
use pymw::{MasterConfig, TaskError, TaskOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub mod tasks;

/// How a suite run makes masters.
pub struct Harness {
    /// Starts a blocking master with the given settings.
    pub start: Box<dyn Fn(MasterConfig) -> Master>,
    /// A directory that workers can reach at the same path (side channels).
    pub shared_dir: PathBuf,
    /// Scale of the larger cases (1.0 locally; smaller on slow engines,
    /// such as BOINC, where one job takes seconds of a volunteer's client).
    pub scale: f64,
    /// Longest a single case may take before it counts as hung.
    pub case_timeout: Duration,
}

impl Harness {
    /// `n` at this harness's scale (at least `min`).
    fn sized(&self, n: u64, min: u64) -> u64 {
        ((n as f64 * self.scale).round() as u64).max(min)
    }

    fn master(&self) -> Master {
        (self.start)(quiet())
    }

    fn master_with(&self, config: MasterConfig) -> Master {
        (self.start)(config)
    }

    /// A fresh directory for one case's side channel.
    fn case_dir(&self, case: &str) -> PathBuf {
        let dir = self
            .shared_dir
            .join(format!("{case}-{}-{}", std::process::id(), nanos()));
        std::fs::create_dir_all(&dir).expect("create a case directory");
        // Workers may run as another user (HTCondor's job user).
        set_mode(&dir, 0o777);
        dir
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Makes a child process meet Ctrl-C as a program a person runs in a
/// terminal does: with SIGINT's default disposition. A test run in the
/// background (as CI may be) inherits SIGINT ignored.
pub fn as_in_a_terminal(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: signal() is async-signal-safe and only touches the child.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
}

/// Master settings for cases: no progress output.
pub fn quiet() -> MasterConfig {
    MasterConfig {
        progress: false,
        ..MasterConfig::default()
    }
}

/// What a case returns: `Err` with what went wrong.
pub type CaseResult = Result<(), String>;

/// Returns `Err(format!(..))` from the case unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// A named case of the suite.
pub struct Case {
    /// The case's name.
    pub name: &'static str,
    /// Runs it.
    pub run: fn(&Harness) -> CaseResult,
}

/// Every case, in the order they run.
pub fn cases() -> Vec<Case> {
    macro_rules! cases {
        ($($name:ident),* $(,)?) => { vec![$(Case { name: stringify!($name), run: $name }),*] };
    }
    cases![
        submit_and_wait,
        map_in_input_order,
        map_unordered_each_once,
        task_set_in_completion_order,
        async_master_submit_and_map,
        zero_and_many_arguments,
        task_error_is_typed,
        panic_has_message_location_and_stderr,
        exit_is_lost_with_exit_code,
        segfault_is_lost_with_signal,
        abort_is_lost_with_signal,
        sigkill_is_lost_with_signal,
        crash_then_success_on_retry,
        crash_charges_only_the_culprit,
        stdout_does_not_corrupt_results,
        timeout_stops_the_task,
        cancel_stops_the_task,
        status_counts,
        large_payloads_round_trip,
        map_of_200_results_exactly_once,
        stdin_is_at_end_of_file,
        stack_overflow_is_reported,
        panic_hook_of_a_task_is_not_kept,
        crash_leaving_a_grandchild_is_reported_promptly,
        failure_tail_holds_the_task_stderr,
    ]
}

/// Runs the cases whose names contain one of `filters` (all when empty), and
/// prints a libtest-style report. Returns the process exit code.
pub fn run(harness: &Harness, extra: Vec<Case>, filters: &[String]) -> i32 {
    let cases: Vec<Case> = cases()
        .into_iter()
        .chain(extra)
        .filter(|c| filters.is_empty() || filters.iter().any(|f| c.name.contains(f.as_str())))
        .collect();
    println!("\nrunning {} tests", cases.len());
    let started = Instant::now();
    let mut failed = Vec::new();
    for case in &cases {
        let t0 = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (case.run)(harness)))
            .unwrap_or_else(|_| Err("the case panicked".to_owned()));
        let elapsed = t0.elapsed();
        let result = match result {
            Ok(()) if elapsed > harness.case_timeout => Err(format!(
                "took {elapsed:?}, over the {:?} limit",
                harness.case_timeout
            )),
            other => other,
        };
        match result {
            Ok(()) => println!("test {} ... ok ({:.2}s)", case.name, elapsed.as_secs_f64()),
            Err(message) => {
                println!(
                    "test {} ... FAILED ({:.2}s)",
                    case.name,
                    elapsed.as_secs_f64()
                );
                failed.push((case.name, message));
            }
        }
    }
    report(cases.len(), &failed, started)
}

/// Prints the failures and the libtest-style result line of a run of
/// `total` cases; returns the exit code (1 when any failed).
pub fn report(total: usize, failed: &[(&str, String)], started: std::time::Instant) -> i32 {
    if !failed.is_empty() {
        println!("\nfailures:");
        for (name, message) in failed {
            println!("---- {name} ----\n{message}\n");
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; 0 ignored; 0 measured; 0 filtered out; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        total - failed.len(),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    i32::from(!failed.is_empty())
}

fn submit_and_wait(h: &Harness) -> CaseResult {
    let master = h.master();
    let value = master
        .submit(tasks::square::task(), 12)
        .wait()
        .map_err(|e| e.to_string())?;
    ensure!(value == 144, "square(12) gave {value}");
    Ok(())
}

fn map_in_input_order(h: &Harness) -> CaseResult {
    let master = h.master();
    let n = h.sized(1000, 1);
    let values: Vec<u64> = master
        .map(tasks::square::task(), 0..n)
        .collect_values()
        .map_err(|e| e.to_string())?;
    ensure!(
        values.len() as u64 == n,
        "{} results for {n} inputs",
        values.len()
    );
    for (i, v) in values.iter().enumerate() {
        ensure!(*v == (i as u64) * (i as u64), "result {i} is {v}");
    }
    Ok(())
}

fn map_unordered_each_once(h: &Harness) -> CaseResult {
    let master = h.master();
    let n = h.sized(500, 1);
    let mut seen = vec![false; n as usize];
    let mut map = master
        .map(tasks::square::task(), 0..n)
        .unordered()
        .window(37);
    while let Some((index, result)) = map.next_indexed() {
        let value = result.map_err(|e| e.to_string())?;
        ensure!(value == index * index, "input {index} gave {value}");
        ensure!(!seen[index as usize], "input {index} answered twice");
        seen[index as usize] = true;
    }
    ensure!(seen.iter().all(|s| *s), "some inputs were never answered");
    Ok(())
}

fn task_set_in_completion_order(h: &Harness) -> CaseResult {
    let master = h.master_with(quiet());
    let mut set = master.task_set();
    // Slower on slow engines, whose own delays vary by seconds (BOINC: 30 s).
    let slow_ms = (1500.0 / h.scale.clamp(0.05, 1.0)) as u64;
    let slow = set.submit(tasks::sleep_ms::task(), slow_ms);
    let fast = set.submit(tasks::sleep_ms::task(), 10);
    let (first, value) = set.next_finished().ok_or("empty set")?;
    value.map_err(|e| e.to_string())?;
    ensure!(first == fast, "the slow task finished first");
    let (second, _) = set.next_finished().ok_or("missing second result")?;
    ensure!(second == slow, "unexpected second task");
    ensure!(set.next_finished().is_none(), "a third result appeared");
    Ok(())
}

fn async_master_submit_and_map(h: &Harness) -> CaseResult {
    let master = h.master();
    let asynchronous = master.as_async().clone();
    // Drive the async API from a runtime of our own, as an async user would.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let one = asynchronous.submit(tasks::square::task(), 9).await;
        ensure!(one == Ok(81), "submit gave {one:?}");
        let mut map = asynchronous.map(tasks::square::task(), 0..50u64);
        let mut i = 0;
        while let Some(value) = map.next().await {
            ensure!(value == Ok(i * i), "map item {i} gave {value:?}");
            i += 1;
        }
        ensure!(i == 50, "{i} results");
        Ok(())
    })
}

fn zero_and_many_arguments(h: &Harness) -> CaseResult {
    let master = h.master();
    let answer = master.submit(tasks::answer::task(), ()).wait();
    ensure!(answer == Ok(42), "answer() gave {answer:?}");
    let joined = master
        .submit(tasks::join3::task(), ("a".into(), 7, vec![1.5, 2.5]))
        .wait();
    ensure!(joined == Ok("a-7-4".to_owned()), "join3 gave {joined:?}");
    Ok(())
}

fn task_error_is_typed(h: &Harness) -> CaseResult {
    let master = h.master();
    let result = master.submit(tasks::checked_div::task(), (1, 0)).wait();
    match result {
        Err(TaskError::Failed {
            failure: pymw::Failure::TaskError { message },
            ..
        }) => ensure!(message == "division by zero", "message {message:?}"),
        other => return Err(format!("expected a task error, got {other:?}")),
    }
    let ok = master.submit(tasks::checked_div::task(), (9, 3)).wait();
    ensure!(ok == Ok(3), "9/3 gave {ok:?}");
    Ok(())
}

fn panic_has_message_location_and_stderr(h: &Harness) -> CaseResult {
    let master = h.master();
    let error = master
        .submit(tasks::panics::task(), "kaboom".into())
        .wait()
        .err()
        .ok_or("a panicking task succeeded")?;
    ensure!(
        error.panic_message() == Some("kaboom"),
        "message: {error:?}"
    );
    let location = error.panic_location().ok_or("no location")?;
    ensure!(location.contains("tasks.rs"), "location {location}");
    let tail = error.stderr_tail().unwrap_or_default();
    ensure!(
        tail.contains("stderr before the panic"),
        "stderr tail: {tail:?}"
    );
    // The worker survives a caught panic.
    let after = master.submit(tasks::square::task(), 3).wait();
    ensure!(after == Ok(9), "after the panic: {after:?}");
    Ok(())
}

fn expect_lost(result: Result<u64, TaskError>, cause: &str, attempts: u32) -> CaseResult {
    match result {
        Err(TaskError::WorkerLost {
            cause: got,
            attempts: made,
            ..
        }) => {
            ensure!(
                got.contains(cause),
                "cause {got:?} does not mention {cause:?}"
            );
            ensure!(made == attempts, "{made} attempts, expected {attempts}");
            Ok(())
        }
        other => Err(format!("expected a lost worker, got {other:?}")),
    }
}

fn retries(n: u32) -> MasterConfig {
    MasterConfig {
        max_retries: n,
        ..quiet()
    }
}

fn exit_is_lost_with_exit_code(h: &Harness) -> CaseResult {
    let master = h.master_with(retries(1));
    expect_lost(
        master.submit(tasks::exits::task(), 3).wait(),
        "exit code 3",
        2,
    )?;
    let after = master.submit(tasks::square::task(), 4).wait();
    ensure!(after == Ok(16), "a replaced worker gave {after:?}");
    Ok(())
}

fn segfault_is_lost_with_signal(h: &Harness) -> CaseResult {
    let master = h.master_with(retries(0));
    expect_lost(
        master.submit(tasks::segfaults::task(), ()).wait(),
        "SIGSEGV",
        1,
    )
}

fn abort_is_lost_with_signal(h: &Harness) -> CaseResult {
    let master = h.master_with(retries(0));
    expect_lost(
        master.submit(tasks::aborts::task(), ()).wait(),
        "SIGABRT",
        1,
    )
}

fn sigkill_is_lost_with_signal(h: &Harness) -> CaseResult {
    let master = h.master_with(retries(0));
    expect_lost(
        master.submit(tasks::killed::task(), ()).wait(),
        "SIGKILL",
        1,
    )
}

fn crash_then_success_on_retry(h: &Harness) -> CaseResult {
    let dir = h.case_dir("flaky");
    let master = h.master_with(retries(2));
    let value = master
        .submit(tasks::crash_once::task(), (dir.display().to_string(), 5))
        .wait();
    ensure!(value == Ok(5), "a task that crashes once gave {value:?}");
    let runs = count_files(&dir, "run-5-");
    ensure!(runs == 2, "it ran {runs} times, expected 2");
    Ok(())
}

fn count_files(dir: &Path, prefix: &str) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .count()
    })
}

fn crash_charges_only_the_culprit(h: &Harness) -> CaseResult {
    // No retries: if an innocent task sharing a worker with the crasher were
    // charged for the crash, it would fail.
    let master = h.master_with(retries(0));
    let n = 300u64;
    let results: Vec<Result<u64, TaskError>> = master
        .map(tasks::crash_if::task(), (0..n).map(|i| (i, 123)))
        .collect();
    for (i, result) in results.iter().enumerate() {
        if i == 123 {
            expect_lost(result.clone(), "SIGSEGV", 1)?;
        } else {
            ensure!(*result == Ok(i as u64), "innocent task {i} gave {result:?}");
        }
    }
    Ok(())
}

fn stdout_does_not_corrupt_results(h: &Harness) -> CaseResult {
    let master = h.master();
    let n = h.sized(200, 8);
    let values: Vec<u64> = master
        .map(tasks::chatty::task(), 0..n)
        .collect_values()
        .map_err(|e| e.to_string())?;
    ensure!(values == (0..n).collect::<Vec<u64>>(), "results differ");
    Ok(())
}

fn timeout_stops_the_task(h: &Harness) -> CaseResult {
    let master = h.master();
    let started = Instant::now();
    let result = master
        .submit_with(
            tasks::sleep_ms::task(),
            60_000,
            TaskOptions::default().timeout(Duration::from_millis(500)),
        )
        .wait();
    ensure!(
        matches!(result, Err(TaskError::TimedOut { .. })),
        "expected a timeout, got {result:?}"
    );
    ensure!(
        started.elapsed() < Duration::from_secs(30),
        "the timeout took {:?}",
        started.elapsed()
    );
    let after = master.submit(tasks::square::task(), 5).wait();
    ensure!(after == Ok(25), "after a timeout: {after:?}");
    Ok(())
}

fn cancel_stops_the_task(h: &Harness) -> CaseResult {
    let master = h.master();
    let handle = master.submit(tasks::sleep_ms::task(), 60_000);
    std::thread::sleep(Duration::from_millis(300));
    handle.cancel();
    let started = Instant::now();
    let result = handle.wait();
    ensure!(
        matches!(result, Err(TaskError::Cancelled { .. })),
        "expected cancelled, got {result:?}"
    );
    ensure!(
        started.elapsed() < Duration::from_secs(10),
        "cancel took {:?}",
        started.elapsed()
    );
    let counts = master.status();
    ensure!(counts.cancelled == 1, "status after cancel: {counts:?}");
    Ok(())
}

fn status_counts(h: &Harness) -> CaseResult {
    let master = h.master();
    let results: Vec<_> = master
        .map(tasks::checked_div::task(), (0..20).map(|i| (100, i % 5)))
        .collect();
    let failures = results.iter().filter(|r| r.is_err()).count();
    ensure!(failures == 4, "{failures} failures");
    let counts = master.status();
    ensure!(
        counts.done == 16 && counts.failed == 4 && counts.queued == 0 && counts.running == 0,
        "status {counts:?}"
    );
    Ok(())
}

fn large_payloads_round_trip(h: &Harness) -> CaseResult {
    let master = h.master();
    let input: Vec<u8> = (0..(1 << 20)).map(|i| (i * 7 % 251) as u8).collect();
    let output = master
        .submit(tasks::reverse_bytes::task(), input.clone())
        .wait()
        .map_err(|e| e.to_string())?;
    let mut expected = input;
    expected.reverse();
    ensure!(output == expected, "1 MiB payload came back different");
    Ok(())
}

fn map_of_200_results_exactly_once(h: &Harness) -> CaseResult {
    let dir = h.case_dir("once");
    let master = h.master();
    let path = dir.display().to_string();
    let mut seen = std::collections::HashSet::new();
    let mut map = master
        .map(
            tasks::counted::task(),
            (0..200u64).map(|i| (path.clone(), i)),
        )
        .unordered();
    while let Some((index, result)) = map.next_indexed() {
        let value = result.map_err(|e| e.to_string())?;
        ensure!(value == index, "input {index} gave {value}");
        ensure!(seen.insert(index), "input {index} answered twice");
    }
    ensure!(seen.len() == 200, "{} of 200 answered", seen.len());
    let runs = count_files(&dir, "run-");
    ensure!(runs == 200, "{runs} executions for 200 tasks");
    Ok(())
}

fn stdin_is_at_end_of_file(h: &Harness) -> CaseResult {
    let master = h.master();
    // A worker whose stdin is its request pipe would block here (or read
    // the next requests): the timeout turns that hang into a failure.
    let result = master
        .submit_with(
            tasks::reads_stdin::task(),
            (),
            TaskOptions::default().timeout(h.case_timeout / 2),
        )
        .wait();
    ensure!(
        result == Ok((0, true)),
        "a task reading stdin gave {result:?}, expected (0 bytes, child ok)"
    );
    let after = master.submit(tasks::square::task(), 6).wait();
    ensure!(after == Ok(36), "after reading stdin: {after:?}");
    Ok(())
}

fn stack_overflow_is_reported(h: &Harness) -> CaseResult {
    let master = h.master_with(retries(0));
    let result = master
        .submit_with(
            tasks::recurses::task(),
            u64::MAX,
            TaskOptions::default().timeout(h.case_timeout / 2),
        )
        .wait();
    let Err(TaskError::WorkerLost {
        cause, stderr_tail, ..
    }) = &result
    else {
        return Err(format!("expected a lost worker, got {result:?}"));
    };
    ensure!(cause.contains("SIGABRT"), "cause {cause:?}");
    // On the task thread, whose stack pymw bounds, not on whatever stack
    // the engine's limits give the main thread.
    ensure!(
        stderr_tail.contains("thread 'pymw-task'")
            && stderr_tail.contains("has overflowed its stack"),
        "stderr tail: {stderr_tail:?}"
    );
    Ok(())
}

fn panic_hook_of_a_task_is_not_kept(h: &Harness) -> CaseResult {
    let master = h.master_with(retries(0));
    // Every worker likely runs a task that installs its own hook.
    let set: Vec<_> = master
        .map(tasks::sets_panic_hook::task(), (0..8).map(|i| i % 4 == 0))
        .collect();
    ensure!(
        set.iter().filter(|r| r.is_ok()).count() == 6,
        "tasks that set a hook gave {set:?}"
    );
    let panics: Vec<_> = master
        .map(
            tasks::panics::task(),
            (0..8).map(|i| format!("later panic {i}")),
        )
        .collect();
    for (i, result) in panics.iter().enumerate() {
        let error = result.as_ref().err().ok_or("a panicking task succeeded")?;
        let expected = format!("later panic {i}");
        ensure!(
            error.panic_message() == Some(expected.as_str()),
            "task {i}: {error:?}"
        );
        let location = error.panic_location().unwrap_or_default();
        ensure!(
            location.contains("tasks.rs"),
            "task {i} lost its panic location: {error:?}"
        );
    }
    Ok(())
}

fn crash_leaving_a_grandchild_is_reported_promptly(h: &Harness) -> CaseResult {
    let master = h.master_with(retries(0));
    // The grandchild outlives the case; its worker's loss must not wait
    // for it.
    let lifetime = h.case_timeout.as_secs() * 2;
    let started = Instant::now();
    let result = master
        .submit(tasks::aborts_leaving_a_grandchild::task(), lifetime)
        .wait();
    expect_lost(result, "SIGABRT", 1)?;
    ensure!(
        started.elapsed() < h.case_timeout / 2,
        "the loss took {:?}",
        started.elapsed()
    );
    Ok(())
}

fn failure_tail_holds_the_task_stderr(h: &Harness) -> CaseResult {
    let master = h.master_with(retries(0));
    let n = h.sized(100, 2);
    let results: Vec<_> = master
        .map(tasks::fails_after_stderr::task(), 0..n)
        .collect();
    // A failure's tail ends with its own output, however much the tasks
    // after it on the same worker write.
    for (i, result) in results.iter().enumerate() {
        if i % 2 == 1 {
            ensure!(*result == Ok(i as u64), "chatty task {i} gave {result:?}");
            continue;
        }
        match result {
            Err(TaskError::Failed {
                failure: pymw::Failure::TaskError { message },
                stderr_tail,
                ..
            }) => {
                ensure!(
                    *message == format!("task {i} failed"),
                    "message {message:?}"
                );
                let line = format!("failing task {i} says goodbye");
                ensure!(
                    stderr_tail.contains(&line),
                    "task {i}: the stderr tail lacks {line:?}: {stderr_tail:?}"
                );
            }
            other => return Err(format!("task {i}: expected a task error, got {other:?}")),
        }
    }
    Ok(())
}

/// Whether process `pid` is alive (a zombie, dead but not yet reaped, is
/// not).
pub fn process_alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; look at its state.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}

/// Sends `signal` to a child master and reaps it; a master that exits
/// cleanly anyway is an error.
pub fn signal_master(child: &mut std::process::Child, signal: i32) -> CaseResult {
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    ensure!(
        !status.success(),
        "the master exited cleanly after signal {signal}"
    );
    Ok(())
}
