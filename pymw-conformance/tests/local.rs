//! The conformance suite against the local backend, plus what only the local
//! backend and the binary's roles can show: no worker outlives its master,
//! the `worker` role run by hand, and its answers to bad input.
//!
//! `harness = false`: this binary is also its own worker, so `main` must call
//! `pymw::init()` before anything else. Filter cases by name with
//! `cargo test -p pymw-conformance --test local -- NAME`.

use pymw::MasterConfig;
use pymw::core::wire;
use pymw::local::{LocalBackend, LocalConfig};
use pymw_conformance::{Case, CaseResult, ensure, tasks};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set in a child copy of this binary to make it a master that prints its
/// workers' pids and waits to be killed, or one that never called init.
const ROLE_ENV: &str = "PYMW_CONFORMANCE_ROLE";

fn local(workers: usize) -> LocalBackend {
    LocalBackend::new(
        LocalConfig::default()
            .workers(workers)
            .forward_stderr(false),
    )
}

fn main() {
    if std::env::var(ROLE_ENV).as_deref() == Ok("no-init") {
        // Deliberately before pymw::init(): the master must refuse to start.
        match pymw::blocking::Master::start(local(1)) {
            Ok(_) => println!("started without init"),
            Err(e) => println!("{e}"),
        }
        return;
    }
    if std::env::var(ROLE_ENV).as_deref() == Ok("late-init") {
        // A user's argument parser before pymw::init(): in a worker it
        // rejects `__pymw serve` and exits, as clap does.
        let _ = clap::Command::new("late-init").get_matches();
        pymw::init();
        late_init_master();
        return;
    }
    pymw::init();
    if std::env::var(ROLE_ENV).as_deref() == Ok("orphan-master") {
        orphan_master();
        return;
    }
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let shared_dir = std::env::temp_dir().join("pymw-conformance-local");
    std::fs::create_dir_all(&shared_dir).expect("create the shared directory");
    let harness = pymw_conformance::Harness {
        start: Box::new(|config| {
            pymw::blocking::Master::start_with(Box::new(local(2)), config)
                .expect("start a local master")
        }),
        shared_dir,
        scale: 1.0,
        case_timeout: Duration::from_secs(60),
    };
    let extra = vec![
        Case {
            name: "dropping_the_master_stops_its_workers",
            run: dropping_the_master_stops_its_workers,
        },
        Case {
            name: "killed_master_leaves_no_worker",
            run: killed_master_leaves_no_worker,
        },
        Case {
            name: "interrupted_master_leaves_no_worker",
            run: interrupted_master_leaves_no_worker,
        },
        Case {
            name: "master_without_init_names_the_fix",
            run: master_without_init_names_the_fix,
        },
        Case {
            name: "worker_role_runs_a_task_by_hand",
            run: worker_role_runs_a_task_by_hand,
        },
        Case {
            name: "worker_role_rejects_bad_input",
            run: worker_role_rejects_bad_input,
        },
        Case {
            name: "list_role_prints_fingerprints",
            run: list_role_prints_fingerprints,
        },
        Case {
            name: "replicas_are_compared_by_the_task_validator",
            run: replicas_are_compared_by_the_task_validator,
        },
        Case {
            name: "dropping_the_master_kills_what_tasks_started",
            run: dropping_the_master_kills_what_tasks_started,
        },
        Case {
            name: "timeout_kills_what_the_task_started",
            run: timeout_kills_what_the_task_started,
        },
        Case {
            name: "init_after_argument_parsing_names_the_fix",
            run: init_after_argument_parsing_names_the_fix,
        },
        Case {
            name: "task_stack_is_bounded_and_configurable",
            run: task_stack_is_bounded_and_configurable,
        },
        Case {
            name: "failing_tasks_run_at_full_speed",
            run: failing_tasks_run_at_full_speed,
        },
    ];
    std::process::exit(pymw_conformance::run(&harness, extra, &filters));
}

fn wait_gone(pids: &[u32], within: Duration) -> CaseResult {
    let deadline = Instant::now() + within;
    while pids.iter().any(|&p| pymw_conformance::process_alive(p)) {
        ensure!(
            Instant::now() < deadline,
            "workers still alive: {:?}",
            pids.iter()
                .filter(|&&p| pymw_conformance::process_alive(p))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn worker_pids(master: &pymw::blocking::Master) -> Result<Vec<u32>, String> {
    let mut pids: Vec<u32> = master
        .map(tasks::worker_pid::task(), std::iter::repeat_n((), 64))
        .collect_values()
        .map_err(|e| e.to_string())?;
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

fn dropping_the_master_stops_its_workers(_: &pymw_conformance::Harness) -> CaseResult {
    let master = pymw::blocking::Master::start_with(Box::new(local(2)), pymw_conformance::quiet())
        .map_err(|e| e.to_string())?;
    let pids = worker_pids(&master)?;
    ensure!(!pids.is_empty(), "no worker pids");
    ensure!(
        pids.iter().all(|&p| pymw_conformance::process_alive(p)),
        "workers not running"
    );
    drop(master);
    wait_gone(&pids, Duration::from_secs(5))
}

/// A master in a child process that prints its workers' pids, and the pid
/// of a process a task left running, and sleeps.
fn orphan_master() {
    let master = pymw::blocking::Master::start_with(Box::new(local(2)), pymw_conformance::quiet())
        .expect("start");
    let mut pids = worker_pids(&master).expect("pids");
    pids.push(
        master
            .submit(tasks::background_sleep::task(), 120)
            .wait()
            .expect("a background sleep"),
    );
    println!(
        "{}",
        pids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    std::thread::sleep(Duration::from_secs(120));
}

fn master_then_signal(signal: i32) -> CaseResult {
    use std::io::BufRead;
    let mut command = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    command
        .env(ROLE_ENV, "orphan-master")
        .stdout(Stdio::piped());
    pymw_conformance::as_in_a_terminal(&mut command);
    let mut child = command.spawn().map_err(|e| e.to_string())?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let pids: Vec<u32> = line
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    ensure!(
        !pids.is_empty(),
        "the child master printed no pids: {line:?}"
    );
    pymw_conformance::signal_master(&mut child, signal)?;
    wait_gone(&pids, Duration::from_secs(5))
}

fn killed_master_leaves_no_worker(_: &pymw_conformance::Harness) -> CaseResult {
    master_then_signal(libc::SIGKILL)
}

fn interrupted_master_leaves_no_worker(_: &pymw_conformance::Harness) -> CaseResult {
    master_then_signal(libc::SIGINT)
}

fn master_without_init_names_the_fix(_: &pymw_conformance::Harness) -> CaseResult {
    let output = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .env(ROLE_ENV, "no-init")
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&output.stdout);
    ensure!(
        text.contains("pymw::init() was not called") && text.contains("#[pymw::main]"),
        "message: {text:?}"
    );
    Ok(())
}

fn scratch(case: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pymw-by-hand-{case}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn write_input(path: &Path, task: &str, fingerprint: u64, args: &impl serde::Serialize) {
    let payload = postcard_bytes(args);
    let mut bytes = Vec::new();
    wire::encode_input(
        &wire::InputBody {
            task,
            fingerprint,
            payload: &payload,
        },
        &mut bytes,
    );
    std::fs::write(path, bytes).expect("write input");
}

fn postcard_bytes(args: &impl serde::Serialize) -> Vec<u8> {
    // The same encoding the master uses: the wire format's payload.
    pymw::core::wire::encode_payload(args)
}

fn run_worker(task: &str, input: &Path, output: &Path) -> Result<(i32, String), String> {
    let out = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .args(["__pymw", "worker", "--task", task, "--input"])
        .arg(input)
        .arg("--output")
        .arg(output)
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure!(
        !stderr.contains("RUST_BACKTRACE"),
        "a panic backtrace hint: {stderr}"
    );
    Ok((out.status.code().unwrap_or(-1), stderr))
}

fn worker_role_runs_a_task_by_hand(_: &pymw_conformance::Harness) -> CaseResult {
    let dir = scratch("ok");
    let task = tasks::square::task();
    let (input, output) = (dir.join("in"), dir.join("out"));
    write_input(&input, task.name(), (task.entry().fingerprint)(), &7u64);
    let (code, stderr) = run_worker(task.name(), &input, &output)?;
    ensure!(code == 0, "exit {code}: {stderr}");
    let bytes = std::fs::read(&output).map_err(|e| e.to_string())?;
    let body = wire::decode_output(&bytes).map_err(|e| e.to_string())?;
    match body.outcome {
        wire::Outcome::Ok(value) => {
            let value: u64 = wire::decode_payload(value).map_err(|e| e.to_string())?;
            ensure!(value == 49, "value {value}");
        }
        wire::Outcome::Failed(f) => return Err(format!("failed: {f}")),
    }
    ensure!(
        body.stats.wall_ns > 0 && !body.stats.host.is_empty(),
        "stats {:?}",
        body.stats
    );
    // A failing task: exit 1, the failure in the output file and on stderr.
    let div = tasks::checked_div::task();
    write_input(
        &input,
        div.name(),
        (div.entry().fingerprint)(),
        &(1u64, 0u64),
    );
    let (code, stderr) = run_worker(div.name(), &input, &output)?;
    ensure!(
        code == 1 && stderr.contains("division by zero"),
        "exit {code}: {stderr}"
    );
    Ok(())
}

fn worker_role_rejects_bad_input(_: &pymw_conformance::Harness) -> CaseResult {
    let dir = scratch("bad");
    let task = tasks::square::task();
    let fingerprint = (task.entry().fingerprint)();
    let (input, output) = (dir.join("in"), dir.join("out"));
    write_input(&input, task.name(), fingerprint, &7u64);
    let good = std::fs::read(&input).map_err(|e| e.to_string())?;

    let expect = |name: &str,
                  code: i32,
                  needle: &str,
                  result: Result<(i32, String), String>|
     -> CaseResult {
        let (got, stderr) = result?;
        ensure!(
            got == code,
            "{name}: exit {got}, expected {code}; stderr: {stderr}"
        );
        ensure!(
            stderr.contains(needle),
            "{name}: stderr lacks {needle:?}: {stderr}"
        );
        ensure!(
            stderr.lines().count() <= 3,
            "{name}: more than a short message: {stderr}"
        );
        Ok(())
    };
    expect(
        "unknown task",
        3,
        "no task named `nope`",
        run_worker("nope", &input, &output),
    )?;
    expect(
        "missing input",
        4,
        "cannot read input",
        run_worker(task.name(), &dir.join("missing"), &output),
    )?;
    std::fs::write(&input, &good[..good.len() - 3]).map_err(|e| e.to_string())?;
    expect(
        "truncated",
        5,
        "truncated",
        run_worker(task.name(), &input, &output),
    )?;
    let mut corrupt = good.clone();
    *corrupt.last_mut().expect("bytes") ^= 0x40;
    std::fs::write(&input, &corrupt).map_err(|e| e.to_string())?;
    expect(
        "corrupt",
        5,
        "checksum",
        run_worker(task.name(), &input, &output),
    )?;
    let mut oversized = good.clone();
    oversized[10..18].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    std::fs::write(&input, &oversized).map_err(|e| e.to_string())?;
    expect(
        "oversized",
        5,
        "exceeds the limit",
        run_worker(task.name(), &input, &output),
    )?;
    std::fs::write(&input, b"hello, not an envelope").map_err(|e| e.to_string())?;
    expect(
        "garbage",
        5,
        "bad magic",
        run_worker(task.name(), &input, &output),
    )?;
    write_input(&input, task.name(), fingerprint ^ 1, &7u64);
    expect(
        "other build",
        6,
        "different build",
        run_worker(task.name(), &input, &output),
    )?;
    // The failure is also in the output file, for a master to read.
    let bytes = std::fs::read(&output).map_err(|e| e.to_string())?;
    let body = wire::decode_output(&bytes).map_err(|e| e.to_string())?;
    ensure!(
        matches!(
            body.outcome,
            wire::Outcome::Failed(pymw::Failure::VersionSkew { .. })
        ),
        "output file holds {:?}",
        body.outcome
    );
    Ok(())
}

fn list_role_prints_fingerprints(_: &pymw_conformance::Harness) -> CaseResult {
    let out = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .args(["__pymw", "list"])
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let listing = pymw::core::worker::parse_listing(&text)?;
    let square = tasks::square::task();
    ensure!(
        listing.contains(&(square.name().to_owned(), (square.entry().fingerprint)())),
        "listing lacks square: {text}"
    );
    let names: Vec<&String> = listing.iter().map(|(n, _)| n).collect();
    ensure!(names.windows(2).all(|w| w[0] < w[1]), "listing not sorted");
    Ok(())
}

fn replicas_are_compared_by_the_task_validator(_: &pymw_conformance::Harness) -> CaseResult {
    let mean = tasks::mean::task().entry();
    let a = wire::encode_payload(&0.5f64);
    let near = wire::encode_payload(&(0.5f64 + 1e-12));
    let far = wire::encode_payload(&0.6f64);
    ensure!(
        mean.replicas_agree(&a, &near) == Ok(true),
        "near values disagree"
    );
    ensure!(
        mean.replicas_agree(&a, &far) == Ok(false),
        "far values agree"
    );
    ensure!(
        mean.replicas_agree(&a, &[0xff]).is_err(),
        "a malformed replica was accepted"
    );
    // Without a validator, replicas must be bitwise equal.
    let square = tasks::square::task().entry();
    ensure!(
        square.replicas_agree(&a, &a) == Ok(true),
        "identical bytes disagree"
    );
    ensure!(
        square.replicas_agree(&a, &near) == Ok(false),
        "different bytes agree"
    );
    Ok(())
}

fn dropping_the_master_kills_what_tasks_started(_: &pymw_conformance::Harness) -> CaseResult {
    let master = pymw::blocking::Master::start_with(Box::new(local(2)), pymw_conformance::quiet())
        .map_err(|e| e.to_string())?;
    let sleep = master
        .submit(tasks::background_sleep::task(), 25)
        .wait()
        .map_err(|e| e.to_string())?;
    ensure!(
        pymw_conformance::process_alive(sleep),
        "the background sleep {sleep} is not running"
    );
    // A process that left the worker's group (setsid) is not killed, but
    // nothing waits for it either, though it holds the worker's stderr.
    let escaped = master
        .submit(tasks::escaped_sleep::task(), 25)
        .wait()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    drop(master);
    let took = started.elapsed();
    // SAFETY: signalling the sleep the task started; it sleeps for 25 s,
    // so its pid still names it.
    unsafe {
        libc::kill(escaped as i32, libc::SIGKILL);
    }
    ensure!(
        took < Duration::from_secs(1),
        "dropping the master took {took:?}"
    );
    wait_gone(&[sleep], Duration::from_secs(2))
}

fn timeout_kills_what_the_task_started(_: &pymw_conformance::Harness) -> CaseResult {
    let dir = scratch("timeout-children");
    let master = pymw::blocking::Master::start_with(
        Box::new(local(1)),
        MasterConfig {
            max_retries: 0,
            ..pymw_conformance::quiet()
        },
    )
    .map_err(|e| e.to_string())?;
    let result = master
        .submit_with(
            tasks::starts_sleep_and_waits::task(),
            (dir.display().to_string(), 60),
            pymw::TaskOptions::default().timeout(Duration::from_millis(500)),
        )
        .wait();
    ensure!(
        matches!(result, Err(pymw::TaskError::TimedOut { .. })),
        "expected a timeout, got {result:?}"
    );
    let pid: u32 = std::fs::read_to_string(dir.join("pid"))
        .map_err(|e| format!("the task wrote no pid: {e}"))?
        .trim()
        .parse()
        .map_err(|e| format!("a bad pid: {e}"))?;
    // The master is still running: the group was killed with the worker.
    wait_gone(&[pid], Duration::from_secs(2))
}

/// The master of `init_after_argument_parsing_names_the_fix`: prints what
/// starting and running a task gave, and how long it took.
fn late_init_master() {
    let started = Instant::now();
    let outcome =
        match pymw::blocking::Master::start_with(Box::new(local(1)), pymw_conformance::quiet()) {
            Ok(master) => match master.submit(tasks::square::task(), 3).wait() {
                Ok(value) => format!("the task gave {value}"),
                Err(e) => format!("the task failed: {e}"),
            },
            Err(e) => format!("the master did not start: {e}"),
        };
    println!("{} ms: {outcome}", started.elapsed().as_millis());
}

fn init_after_argument_parsing_names_the_fix(_: &pymw_conformance::Harness) -> CaseResult {
    let started = Instant::now();
    let output = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .env(ROLE_ENV, "late-init")
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&output.stdout);
    ensure!(
        text.contains("pymw::init()") && text.contains("first"),
        "message: {text:?}"
    );
    ensure!(
        text.contains("__pymw"),
        "the worker's words are missing: {text:?}"
    );
    ensure!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}: {text}",
        started.elapsed()
    );
    Ok(())
}

fn run_worker_with_stack(
    stack: &str,
    depth: u64,
    dir: &Path,
) -> Result<(i32, String, Option<i32>), String> {
    use std::os::unix::process::ExitStatusExt;
    let task = tasks::recurses::task();
    let (input, output) = (dir.join("in"), dir.join("out"));
    write_input(&input, task.name(), (task.entry().fingerprint)(), &depth);
    let out = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .args(["__pymw", "worker", "--task", task.name(), "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .env("PYMW_TASK_STACK", stack)
        .output()
        .map_err(|e| e.to_string())?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.signal(),
    ))
}

fn task_stack_is_bounded_and_configurable(_: &pymw_conformance::Harness) -> CaseResult {
    let dir = scratch("stack");
    // 20,000 frames of a KiB: more than a main thread's usual 8 MiB, within 64 MiB.
    let (code, stderr, _) = run_worker_with_stack("64M", 20_000, &dir)?;
    ensure!(code == 0, "with 64M: exit {code}: {stderr}");
    let (_, stderr, signal) = run_worker_with_stack("1M", 20_000, &dir)?;
    ensure!(
        signal == Some(libc::SIGABRT) && stderr.contains("has overflowed its stack"),
        "with 1M: signal {signal:?}: {stderr}"
    );
    let (code, stderr, _) = run_worker_with_stack("lots", 1, &dir)?;
    ensure!(
        code == 2 && stderr.contains("PYMW_TASK_STACK"),
        "with a bad value: exit {code}: {stderr}"
    );
    Ok(())
}

fn failing_tasks_run_at_full_speed(_: &pymw_conformance::Harness) -> CaseResult {
    let master = pymw::blocking::Master::start_with(
        Box::new(local(2)),
        MasterConfig {
            max_retries: 0,
            ..pymw_conformance::quiet()
        },
    )
    .map_err(|e| e.to_string())?;
    let n = 20_000u64;
    let started = Instant::now();
    let failed = master
        .map(tasks::checked_div::task(), (0..n).map(|i| (i, 0)))
        .filter(Result::is_err)
        .count();
    let took = started.elapsed();
    ensure!(failed as u64 == n, "{failed} of {n} failed");
    ensure!(
        took < Duration::from_secs(5),
        "{n} failing tasks took {took:?}"
    );
    Ok(())
}
