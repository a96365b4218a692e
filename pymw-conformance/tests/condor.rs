//! The conformance suite on a real HTCondor pool, plus what only HTCondor
//! shows: a job held for an unreadable input (reported with its hold reason),
//! a job removed from outside with `condor_rm`, an output corrupted before the
//! master reads it, one cluster per batch, resources and names on the job ad,
//! binaries for other platforms, a killed master of a named run whose
//! jobs the next master follows instead of submitting them again, a timed-out
//! job that ignores SIGTERM and still leaves its slot at once, and the
//! master's settings and the user's `environment` in the job.
//!
//! It needs a pool: `testbeds/condor/up.sh` (as root) and
//! `eval "$(testbeds/condor/up.sh --print-env)"`, then
//! `cargo test -p pymw-conformance --features condor --test condor [-- NAME]`.
//! Without a reachable pool it fails, loudly; it never skips.

use pymw::blocking::Master;
use pymw::condor::{CondorBackend, CondorConfig, ExtraExecutable};
use pymw::{MasterConfig, Resources, TaskError, TaskOptions};
use pymw_conformance::{Case, CaseResult, Harness, ensure, tasks};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const HOW_TO_START: &str = "start the HTCondor testbed first (as root): `testbeds/condor/up.sh`, then \
     `eval \"$(testbeds/condor/up.sh --print-env)\"` (puts the condor_* wrappers on PATH and sets \
     PYMW_CONDOR_SHARED_DIR); on a real submit host, set PYMW_CONDOR_SHARED_DIR to a directory the schedd \
     can write to";

/// Where this run's masters make their run directories.
static RUNS: OnceLock<PathBuf> = OnceLock::new();
/// The shared directory of the pool (commands run from there).
static SHARED: OnceLock<PathBuf> = OnceLock::new();

fn fail(message: &str) -> ! {
    eprintln!("\nerror: the HTCondor end-to-end tests cannot run: {message}\n\n{HOW_TO_START}\n");
    std::process::exit(2)
}

/// Set in a child copy of this binary to make it a master that starts jobs,
/// says so, and waits to be killed.
const ROLE_ENV: &str = "PYMW_CONDOR_TEST_ROLE";
/// Set in a child copy of this binary to make it a master of a named run
/// (`RUNS_DIR STORE_ROOT RUN`, see [`resumable_master`]).
const RESUMABLE_ENV: &str = "PYMW_CONDOR_TEST_RESUMABLE";
/// Set in a child copy of this binary to make it a master (run directories
/// under the value) that reports what its jobs see of its settings, see
/// [`settings_master`].
const SETTINGS_ENV: &str = "PYMW_CONDOR_TEST_SETTINGS";

fn main() {
    pymw::init();
    if let Ok(role) = std::env::var(ROLE_ENV) {
        doomed_master(&role);
        return;
    }
    if let Ok(role) = std::env::var(RESUMABLE_ENV) {
        resumable_master(&role);
        return;
    }
    if let Ok(runs) = std::env::var(SETTINGS_ENV) {
        settings_master(&runs);
        return;
    }
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let shared = match std::env::var_os("PYMW_CONDOR_SHARED_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => fail("PYMW_CONDOR_SHARED_DIR is not set"),
    };
    if !shared.is_dir() {
        fail(&format!(
            "PYMW_CONDOR_SHARED_DIR={} is not a directory",
            shared.display()
        ));
    }
    SHARED.set(shared.clone()).expect("set once");
    match condor("condor_q", &["-totals"]) {
        Ok((true, _)) => {}
        Ok((false, text)) => fail(&format!("condor_q -totals failed: {text}")),
        Err(e) => fail(&format!("cannot run condor_q: {e}")),
    }
    let root = shared.join(format!("pymw-conformance-{}", std::process::id()));
    let runs = root.join("runs");
    let cases = root.join("cases");
    for dir in [&root, &runs, &cases] {
        std::fs::create_dir_all(dir).expect("create a test directory");
        // Jobs run as another user than a root master.
        set_mode(dir, 0o777);
    }
    RUNS.set(runs).expect("set once");
    let harness = Harness {
        // The generic cases run the binary from the shared directory (as a
        // pool with a shared file system does): a 40 MB debug binary sent
        // with each of their ~3,000 jobs would triple the suite's time on
        // this 2-core machine. Every HTCondor case below transfers it, as
        // the default does.
        start: Box::new(|config| {
            let backend = CondorBackend::new(condor_config().shared_filesystem(true));
            Master::start_with(Box::new(backend), config)
                .unwrap_or_else(|e| panic!("cannot start an HTCondor master: {e}"))
        }),
        shared_dir: cases,
        scale: 1.0,
        // Every job waits for a negotiation cycle, a shadow and a starter.
        case_timeout: Duration::from_secs(300),
    };
    let extra = vec![
        Case {
            name: "held_for_unreadable_input_reports_the_hold_reason",
            run: held_for_unreadable_input_reports_the_hold_reason,
        },
        Case {
            name: "removed_from_outside_is_lost_as_removed",
            run: removed_from_outside_is_lost_as_removed,
        },
        Case {
            name: "corrupt_output_is_lost_and_retried_never_a_value",
            run: corrupt_output_is_lost_and_retried_never_a_value,
        },
        Case {
            name: "one_cluster_per_batch",
            run: one_cluster_per_batch,
        },
        Case {
            name: "resources_and_names_reach_the_job_ad",
            run: resources_and_names_reach_the_job_ad,
        },
        Case {
            name: "binaries_for_other_platforms",
            run: binaries_for_other_platforms,
        },
        Case {
            name: "unchecked_binaries_are_refused",
            run: unchecked_binaries_are_refused,
        },
        Case {
            name: "dropping_the_master_removes_its_jobs",
            run: dropping_the_master_removes_its_jobs,
        },
        Case {
            name: "killed_master_leaves_no_job",
            run: killed_master_leaves_no_job,
        },
        Case {
            name: "interrupted_master_leaves_no_job",
            run: interrupted_master_leaves_no_job,
        },
        Case {
            name: "killed_master_of_a_run_is_followed_not_resubmitted",
            run: killed_master_of_a_run_is_followed_not_resubmitted,
        },
        Case {
            name: "timed_out_job_that_ignores_sigterm_leaves_at_once",
            run: timed_out_job_that_ignores_sigterm_leaves_at_once,
        },
        Case {
            name: "master_settings_reach_the_job",
            run: master_settings_reach_the_job,
        },
        Case {
            name: "submitted_environment_reaches_the_job",
            run: submitted_environment_reaches_the_job,
        },
    ];
    let code = pymw_conformance::run(&harness, extra, &filters);
    if code == 0 {
        let _ = std::fs::remove_dir_all(&root);
    }
    std::process::exit(code);
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

/// Runs an HTCondor tool from the shared directory; (success, stdout + stderr).
fn condor(tool: &str, args: &[&str]) -> std::io::Result<(bool, String)> {
    let output = Command::new(tool)
        .args(args)
        .current_dir(SHARED.get().expect("set in main"))
        .output()?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok((output.status.success(), text.trim().to_owned()))
}

fn condor_config() -> CondorConfig {
    CondorConfig::new(RUNS.get().expect("set in main"))
}

fn unique(case: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{case}-{}-{nanos}", std::process::id())
}

fn retries(n: u32) -> MasterConfig {
    MasterConfig {
        max_retries: n,
        ..pymw_conformance::quiet()
    }
}

/// A master on a backend with a known run name, and its run directory.
fn named_master(
    case: &str,
    config: CondorConfig,
    master: MasterConfig,
) -> Result<(Master, String, PathBuf), String> {
    let name = unique(case);
    let dir = RUNS.get().expect("set in main").join(&name);
    let master = Master::start_with(Box::new(CondorBackend::new(config.run_name(&name))), master)
        .map_err(|e| format!("cannot start an HTCondor master: {e}"))?;
    Ok((master, name, dir))
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) -> CaseResult {
    let deadline = Instant::now() + within;
    while !done() {
        ensure!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Lines of the run's event log that start with event `code` (`"013"`).
fn count_events(run_dir: &Path, code: &str) -> usize {
    std::fs::read_to_string(run_dir.join("events.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(&format!("{code} (")))
        .count()
}

fn clusters_in_log(run_dir: &Path) -> Vec<String> {
    let mut clusters: Vec<String> = std::fs::read_to_string(run_dir.join("events.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("000 ("))
        .filter_map(|rest| rest.split('.').next())
        .map(str::to_owned)
        .collect();
    clusters.dedup();
    clusters.sort();
    clusters.dedup();
    clusters
}

fn held_for_unreadable_input_reports_the_hold_reason(_: &Harness) -> CaseResult {
    let (master, _, dir) = named_master("held", condor_config(), retries(0))?;
    let handle = master.submit(tasks::square::task(), 6);
    // Take the input away from the job's owner as soon as it is written,
    // long before a job can be matched.
    let tasks_dir = dir.join("tasks");
    let mut input = None;
    wait_until("the task's input file", Duration::from_secs(20), || {
        input = std::fs::read_dir(&tasks_dir)
            .ok()
            .and_then(|mut entries| entries.next())
            .and_then(Result::ok)
            .map(|e| e.path().join("in"))
            .filter(|p| p.exists());
        input.is_some()
    })?;
    set_mode(input.as_deref().expect("found"), 0o000);
    let result = handle.wait();
    match &result {
        Err(TaskError::WorkerLost {
            cause, attempts, ..
        }) => {
            ensure!(*attempts == 1, "{attempts} attempts");
            ensure!(cause.starts_with("held: "), "cause {cause:?}");
            ensure!(
                cause.contains("Transfer input files failure"),
                "cause {cause:?}"
            );
            ensure!(cause.contains("(code 13 subcode 13)"), "cause {cause:?}");
            ensure!(cause.contains("after 2 release(s)"), "cause {cause:?}");
        }
        other => {
            return Err(format!(
                "expected a lost attempt with the hold reason, got {other:?}"
            ));
        }
    }
    let releases = count_events(&dir, "013");
    ensure!(
        releases == 2,
        "{releases} releases in the event log, expected 2"
    );
    Ok(())
}

fn removed_from_outside_is_lost_as_removed(_: &Harness) -> CaseResult {
    let (master, name, _) = named_master("removed", condor_config(), retries(0))?;
    let handle = master.submit(tasks::sleep_ms::task(), 120_000);
    wait_until("the job to start", Duration::from_secs(120), || {
        master.status().running == 1
    })?;
    let id = only_job(&name)?;
    let (ok, text) = condor("condor_rm", &[&id]).map_err(|e| e.to_string())?;
    ensure!(ok, "condor_rm {id}: {text}");
    match handle.wait() {
        Err(TaskError::WorkerLost { cause, .. }) => {
            ensure!(
                cause.starts_with("removed: via condor_rm"),
                "cause {cause:?}"
            );
            ensure!(
                cause.contains(&id),
                "cause {cause:?} does not name job {id}"
            );
        }
        other => return Err(format!("expected a lost attempt (removed), got {other:?}")),
    }
    Ok(())
}

/// Returns `i`; its first `corrupt_runs` runs garble their output file after
/// the worker wrote it (at process exit), as a bad disk or network would.
#[pymw::task]
fn corrupts_output(dir: String, i: u64, corrupt_runs: usize) -> u64 {
    let runs = std::fs::read_dir(&dir).map_or(0, |e| e.count());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::fs::write(Path::new(&dir).join(format!("run-{nanos}")), b"").expect("record the run");
    if runs < corrupt_runs {
        // SAFETY: registering a plain function to run at exit.
        unsafe {
            libc::atexit(garble_output);
        }
    }
    i
}

extern "C" fn garble_output() {
    let args: Vec<String> = std::env::args().collect();
    let output = args
        .iter()
        .position(|a| a == "--output")
        .and_then(|i| args.get(i + 1));
    if let Some(path) = output
        && let Ok(mut bytes) = std::fs::read(path)
        && let Some(last) = bytes.last_mut()
    {
        *last ^= 0x5a;
        let _ = std::fs::write(path, bytes);
    }
}

fn runs_dir(h: &Harness, case: &str) -> Result<String, String> {
    let dir = h.shared_dir.join(unique(case));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    set_mode(&dir, 0o777);
    Ok(dir.display().to_string())
}

fn corrupt_output_is_lost_and_retried_never_a_value(h: &Harness) -> CaseResult {
    // Without retries: lost, with the reason.
    let master = (h.start)(retries(0));
    let dir = runs_dir(h, "corrupt-always")?;
    match master
        .submit(corrupts_output::task(), (dir, 7, usize::MAX))
        .wait()
    {
        Err(TaskError::WorkerLost { cause, .. }) => {
            ensure!(
                cause.contains("exit code 0; output corrupt: checksum mismatch"),
                "cause {cause:?}"
            );
        }
        other => return Err(format!("a corrupt output gave {other:?}")),
    }
    // With a retry: the second run's clean output is the value.
    let master = (h.start)(retries(2));
    let dir = runs_dir(h, "corrupt-once")?;
    let value = master
        .submit(corrupts_output::task(), (dir.clone(), 8, 1))
        .wait();
    ensure!(value == Ok(8), "corrupt once, then retried: {value:?}");
    let runs = std::fs::read_dir(&dir).map_or(0, |e| e.count());
    ensure!(runs == 2, "{runs} runs, expected 2");
    Ok(())
}

fn one_cluster_per_batch(_: &Harness) -> CaseResult {
    let (master, _, dir) = named_master("clusters", condor_config(), pymw_conformance::quiet())?;
    let values: Vec<u64> = master
        .map(tasks::square::task(), 0..40u64)
        .collect_values()
        .map_err(|e| e.to_string())?;
    ensure!(
        values == (0..40).map(|i| i * i).collect::<Vec<_>>(),
        "map results differ"
    );
    ensure!(
        clusters_in_log(&dir).len() == 1,
        "a map of 40 made clusters {:?}",
        clusters_in_log(&dir)
    );
    // Separate submits within the coalescing window share a cluster too.
    let handles: Vec<_> = (0..10u64)
        .map(|i| master.submit(tasks::square::task(), i))
        .collect();
    for (i, handle) in handles.into_iter().enumerate() {
        let value = handle.wait().map_err(|e| e.to_string())?;
        ensure!(value == (i * i) as u64, "submit {i} gave {value}");
    }
    let clusters = clusters_in_log(&dir);
    ensure!(
        clusters.len() == 2,
        "40 + 10 tasks made clusters {clusters:?}, expected 2"
    );
    let submits = std::fs::read_dir(dir.join("submit")).map_or(0, |e| e.count());
    ensure!(submits == 2, "{submits} condor_submit calls, expected 2");
    Ok(())
}

/// The named attributes of this job's ad (`$_CONDOR_JOB_AD`), `name = value` lines.
#[pymw::task]
fn job_ad(names: Vec<String>) -> Vec<String> {
    let path = std::env::var("_CONDOR_JOB_AD").expect("_CONDOR_JOB_AD is set in an HTCondor job");
    let ad = std::fs::read_to_string(path).expect("the job ad is readable");
    ad.lines()
        .filter(|line| {
            names
                .iter()
                .any(|n| line.split(" = ").next() == Some(n.as_str()))
        })
        .map(str::to_owned)
        .collect()
}

fn resources_and_names_reach_the_job_ad(_: &Harness) -> CaseResult {
    let config = condor_config().submit_command("+PymwConfigTag", "\"from the config\"");
    let (master, name, _) = named_master("resources", config, pymw_conformance::quiet())?;
    let mut resources = Resources::default();
    resources.memory_mib = Some(300);
    resources.disk_mib = Some(50);
    resources.extra = vec![
        ("+PymwTaskTag".into(), "\"from the task\"".into()),
        ("requirements".into(), "TARGET.Memory >= 300".into()),
    ];
    let names = [
        "RequestMemory",
        "RequestDisk",
        "RequestCpus",
        "PymwTaskTag",
        "PymwConfigTag",
        "JobBatchName",
        "PymwTaskId",
        "Requirements",
        "JobMaxRetries",
    ];
    let lines = master
        .submit_with(
            job_ad::task(),
            names.iter().map(|n| n.to_string()).collect(),
            TaskOptions::default().resources(resources),
        )
        .wait()
        .map_err(|e| e.to_string())?;
    let get = |attr: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{attr} = ")))
            .unwrap_or("")
            .to_owned()
    };
    ensure!(get("RequestMemory") == "300", "ad: {lines:?}");
    ensure!(get("RequestDisk") == "51200", "ad: {lines:?}");
    ensure!(get("RequestCpus") == "1", "ad: {lines:?}");
    ensure!(get("PymwTaskTag") == "\"from the task\"", "ad: {lines:?}");
    ensure!(
        get("PymwConfigTag") == "\"from the config\"",
        "ad: {lines:?}"
    );
    ensure!(
        get("JobBatchName") == format!("\"{name}\""),
        "ad: {lines:?}"
    );
    ensure!(
        get("PymwTaskId").trim_matches('"').parse::<u64>().is_ok(),
        "ad: {lines:?}"
    );
    ensure!(
        get("Requirements").contains("TARGET.Memory >= 300"),
        "ad: {lines:?}"
    );
    // The master owns retries; HTCondor's own are never set.
    ensure!(get("JobMaxRetries").is_empty(), "ad: {lines:?}");
    Ok(())
}

fn binaries_for_other_platforms(_: &Harness) -> CaseResult {
    // A second binary for a platform the pool does not have: the cluster
    // must still run everywhere a binary exists (here, the host's platform),
    // through BINARY.$$(OpSys).$$(Arch).
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let config = condor_config().executable(ExtraExecutable::new(&exe, "LINUX", "PYMW_TEST_ARCH"));
    let (master, _, dir) = named_master("platforms", config, pymw_conformance::quiet())?;
    let value = master.submit(tasks::square::task(), 11).wait();
    ensure!(value == Ok(121), "square(11) gave {value:?}");
    let submit = std::fs::read_dir(dir.join("submit"))
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .find_map(|e| std::fs::read_to_string(e.path()).ok())
        .ok_or("no submit file")?;
    ensure!(
        submit.contains(".$$(OpSys).$$(Arch)"),
        "submit file:\n{submit}"
    );
    ensure!(
        submit.contains("(OpSys == \"LINUX\" && Arch == \"X86_64\") || (OpSys == \"LINUX\" && Arch == \"PYMW_TEST_ARCH\")"),
        "submit file:\n{submit}"
    );
    Ok(())
}

fn unchecked_binaries_are_refused(h: &Harness) -> CaseResult {
    let dir = PathBuf::from(runs_dir(h, "fake-binaries")?);
    let script = |name: &str, body: &str| -> Result<PathBuf, String> {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).map_err(|e| e.to_string())?;
        set_mode(&path, 0o755);
        Ok(path)
    };
    let other_tasks = script(
        "other-build",
        "printf '# pymw tasks, format 1\\n00000000000000ff\\tsomeone::else\\n'",
    )?;
    let not_pymw = script("not-pymw", "echo hello")?;
    for (path, expected) in [
        (other_tasks, "holds other tasks than this master"),
        (not_pymw, "did not answer `__pymw list` with a task listing"),
    ] {
        let config = condor_config().executable(ExtraExecutable::new(&path, "LINUX", "aarch64"));
        match Master::start_with(
            Box::new(CondorBackend::new(config)),
            pymw_conformance::quiet(),
        ) {
            Ok(_) => return Err(format!("{} was accepted", path.display())),
            Err(e) => {
                let message = e.to_string();
                ensure!(message.contains(expected), "message: {message}");
                ensure!(
                    message.contains(&path.display().to_string()),
                    "message: {message}"
                );
            }
        }
    }
    Ok(())
}

fn dropping_the_master_removes_its_jobs(_: &Harness) -> CaseResult {
    let (master, name, dir) = named_master("dropped", condor_config(), pymw_conformance::quiet())?;
    let handles: Vec<_> = (0..3)
        .map(|_| master.submit(tasks::sleep_ms::task(), 120_000))
        .collect();
    wait_until("the jobs to start", Duration::from_secs(120), || {
        master.status().running == 3
    })?;
    drop(handles);
    drop(master);
    let constraint = format!("JobBatchName == \"{name}\"");
    let (ok, left) = condor(
        "condor_q",
        &[
            "-constraint",
            &constraint,
            "-af",
            "ClusterId",
            "ProcId",
            "JobStatus",
        ],
    )
    .map_err(|e| e.to_string())?;
    ensure!(ok, "condor_q: {left}");
    // JobStatus 3: removed, on its way out.
    let live: Vec<&str> = left.lines().filter(|l| !l.ends_with(" 3")).collect();
    ensure!(
        live.is_empty(),
        "jobs left in the queue after the master was dropped: {live:?}"
    );
    ensure!(
        !dir.exists(),
        "the run directory {} is still there",
        dir.display()
    );
    Ok(())
}

/// The child's side of [`master_then_signal`]: a master (run directories
/// under `role`) with two running jobs, which prints its run name and waits.
fn doomed_master(runs: &str) {
    RUNS.set(PathBuf::from(runs)).expect("set once");
    let (master, name, _) =
        named_master("doomed", condor_config(), pymw_conformance::quiet()).expect("start a master");
    let _handles: Vec<_> = (0..2)
        .map(|_| master.submit(tasks::sleep_ms::task(), 300_000))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while master.status().running < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("{name}");
    std::thread::sleep(Duration::from_secs(600));
}

/// Jobs of the run that are neither gone nor on their way out.
fn live_jobs(name: &str) -> Result<Vec<String>, String> {
    let constraint = format!("JobBatchName == \"{name}\" && JobStatus != 3");
    let (ok, text) = condor(
        "condor_q",
        &["-constraint", &constraint, "-af", "ClusterId", "ProcId"],
    )
    .map_err(|e| e.to_string())?;
    ensure!(ok, "condor_q: {text}");
    Ok(text.lines().map(str::to_owned).collect())
}

fn master_then_signal(signal: i32) -> CaseResult {
    use std::io::BufRead;
    let mut command = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    command
        .env(ROLE_ENV, RUNS.get().expect("set in main"))
        .stdout(std::process::Stdio::piped());
    pymw_conformance::as_in_a_terminal(&mut command);
    let mut child = command.spawn().map_err(|e| e.to_string())?;
    let mut name = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut name)
        .map_err(|e| e.to_string())?;
    let name = name.trim().to_owned();
    ensure!(!name.is_empty(), "the child master printed no run name");
    let before = live_jobs(&name)?;
    ensure!(
        before.len() == 2,
        "jobs of the child's run before the signal: {before:?}"
    );
    pymw_conformance::signal_master(&mut child, signal)?;
    let mut left = Vec::new();
    wait_until(
        "the jobs of a dead master to be removed",
        Duration::from_secs(60),
        || {
            left = live_jobs(&name).unwrap_or_default();
            left.is_empty()
        },
    )
    .map_err(|e| format!("{e}: {left:?}"))?;
    let dir = RUNS.get().expect("set in main").join(&name);
    wait_until(
        "the run directory to be deleted",
        Duration::from_secs(30),
        || !dir.exists(),
    )
}

fn killed_master_leaves_no_job(_: &Harness) -> CaseResult {
    master_then_signal(libc::SIGKILL)
}

fn interrupted_master_leaves_no_job(_: &Harness) -> CaseResult {
    master_then_signal(libc::SIGINT)
}

/// How long each task of [`resumable_master`] sleeps: two end while no
/// master is alive, two are still running when the second and the third
/// master start. The short ones are long enough for the first master to be
/// killed before they end: a master killed after it read a job's end but
/// before it recorded the result leaves a task whose files are gone, which
/// the next master rightly runs again.
const RESUMED_SLEEPS: [u64; 4] = [5_000, 5_000, 30_000, 30_000];

/// The child's side of [`killed_master_of_a_run_is_followed_not_resubmitted`]:
/// a master of the named run `RUN` (run store under `STORE_ROOT`, run
/// directories under `RUNS_DIR`) maps `sleep_ms` over [`RESUMED_SLEEPS`],
/// prints `running N` whenever the number of running tasks changes, and at
/// the end prints the results.
fn resumable_master(role: &str) {
    let words: Vec<&str> = role.split(' ').collect();
    let [runs, store_root, run] = words[..] else {
        panic!("{RESUMABLE_ENV}={role}: expected RUNS_DIR STORE_ROOT RUN");
    };
    let store = pymw::store::RunStore::open(
        store_root,
        run,
        pymw::store::OpenOptions::new().create(true).resume(true),
    )
    .expect("open the run store");
    let config = MasterConfig {
        journal: Some(pymw::JournalHandle(std::sync::Arc::new(
            pymw::store::StoreJournal::new(store, false),
        ))),
        ..pymw_conformance::quiet()
    };
    let backend = CondorBackend::new(CondorConfig::new(runs).shared_filesystem(true));
    let master = Master::start_with(Box::new(backend), config).expect("start a master");
    let done = std::sync::atomic::AtomicBool::new(false);
    let values: Vec<String> = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut shown = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let running = master.status().running;
                if running != shown {
                    println!("running {running}");
                    shown = running;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let values = master
            .map(tasks::sleep_ms::task(), RESUMED_SLEEPS)
            .map(|r| r.map_or_else(|e| format!("error: {e}"), |v| v.to_string()))
            .collect();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        values
    });
    println!("results {}", values.join(" "));
    // Dropped before exit: the backend cleans up what the run left.
    drop(master);
}

/// Every job HTCondor ever had for the run: `cluster.proc`, queue and history.
fn jobs_ever(name: &str) -> Result<Vec<String>, String> {
    let constraint = format!("JobBatchName == \"{name}\"");
    let mut jobs = Vec::new();
    for tool in ["condor_q", "condor_history"] {
        let (ok, text) = condor(
            tool,
            &["-constraint", &constraint, "-af", "ClusterId", "ProcId"],
        )
        .map_err(|e| e.to_string())?;
        ensure!(ok, "{tool}: {text}");
        jobs.extend(text.lines().map(|l| l.trim().replace(' ', ".")));
    }
    jobs.sort();
    jobs.dedup();
    Ok(jobs)
}

fn killed_master_of_a_run_is_followed_not_resubmitted(_: &Harness) -> CaseResult {
    use std::io::BufRead;
    let runs = RUNS.get().expect("set in main");
    let store_root = runs.join("stores");
    std::fs::create_dir_all(&store_root).map_err(|e| e.to_string())?;
    let run = unique("resumed");
    let role = format!("{} {} {run}", runs.display(), store_root.display());
    let start = || -> Result<std::process::Child, String> {
        let mut command = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
        command
            .env(RESUMABLE_ENV, &role)
            .stdout(std::process::Stdio::piped());
        command.spawn().map_err(|e| e.to_string())
    };
    // Starts a master and kills it `grace` after it says `running N`.
    let start_and_kill = |which: &str, running: usize, grace: Duration| -> CaseResult {
        let mut child = start()?;
        let stdout = std::io::BufReader::new(child.stdout.take().expect("piped"));
        let wanted = format!("running {running}");
        let mut said = Vec::new();
        for line in stdout.lines() {
            let line = line.map_err(|e| e.to_string())?;
            let found = line == wanted;
            said.push(line);
            if found {
                std::thread::sleep(grace);
                child.kill().map_err(|e| e.to_string())?;
                let _ = child.wait();
                return Ok(());
            }
        }
        let _ = child.wait();
        Err(format!(
            "the {which} master ended without saying {wanted:?}: {said:?}"
        ))
    };
    // The first master: killed once every job runs.
    start_and_kill("first", RESUMED_SLEEPS.len(), Duration::ZERO)?;
    let submitted = jobs_ever(&run)?;
    ensure!(
        submitted.len() == RESUMED_SLEEPS.len(),
        "jobs of the run before the kill: {submitted:?}"
    );
    // Its jobs stay, and the short ones end while no master is alive.
    let mut live = Vec::new();
    wait_until(
        "the short jobs to end without a master",
        Duration::from_secs(60),
        || {
            live = live_jobs(&run).unwrap_or_default();
            live.len() == 2
        },
    )
    .map_err(|e| format!("{e}: live jobs {live:?}"))?;

    // The second master follows the long ones, and is killed too (once the
    // short ones' results are surely recorded): its directory holds nothing
    // a later master follows.
    start_and_kill("second", 2, Duration::from_secs(2))?;
    // The third master follows them (through the first master's event log):
    // no job is submitted again, and no master's directory is left.
    let began = Instant::now();
    let third = start()?;
    let output = third.wait_with_output().map_err(|e| e.to_string())?;
    let took = began.elapsed();
    let text = String::from_utf8_lossy(&output.stdout);
    ensure!(output.status.success(), "the third master failed: {text}");
    let expected: Vec<String> = RESUMED_SLEEPS.iter().map(u64::to_string).collect();
    let results = text
        .lines()
        .find_map(|l| l.strip_prefix("results "))
        .unwrap_or_default();
    ensure!(
        results == expected.join(" "),
        "the third master returned {results:?}, expected {:?}",
        expected.join(" ")
    );
    let jobs = jobs_ever(&run)?;
    ensure!(
        jobs == submitted,
        "jobs of the run: {jobs:?}; the first master had submitted {submitted:?}: a later one submitted again"
    );
    ensure!(live_jobs(&run)?.is_empty(), "jobs left after the run ended");
    let left: Vec<_> = std::fs::read_dir(runs)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&run))
        .map(|e| e.path())
        .collect();
    ensure!(
        left.is_empty(),
        "run directories left after the run ended: {left:?}"
    );
    println!(
        "    {} jobs, each submitted once over three masters; the third took {took:.1?}",
        jobs.len()
    );
    Ok(())
}

/// The id (`cluster.proc`) of the one job of run `name` in the queue.
fn only_job(name: &str) -> Result<String, String> {
    let constraint = format!("JobBatchName == \"{name}\"");
    let (ok, ids) = condor(
        "condor_q",
        &["-constraint", &constraint, "-af", "ClusterId", "ProcId"],
    )
    .map_err(|e| e.to_string())?;
    ensure!(ok, "condor_q: {ids}");
    let id = ids.split_whitespace().collect::<Vec<_>>().join(".");
    ensure!(id.split('.').count() == 2, "the job of run {name}: {ids:?}");
    Ok(id)
}

/// Longest a removed job may take to leave the queue and free its slot
/// after the master's timeout (measured: about 1 s). With HTCondor's default
/// SIGTERM, a job that ignores it keeps its slot until it ends or the
/// machine's vacate time (10 minutes by default) runs out: here, the 120 s
/// of its sleep.
const REMOVAL_BOUND: Duration = Duration::from_secs(20);

fn timed_out_job_that_ignores_sigterm_leaves_at_once(_: &Harness) -> CaseResult {
    let (master, name, _) = named_master("sigterm", condor_config(), retries(0))?;
    let handle = master.submit_with(
        tasks::ignores_sigterm::task(),
        120_000,
        TaskOptions::default().timeout(Duration::from_secs(3)),
    );
    wait_until("the job to start", Duration::from_secs(120), || {
        master.status().running == 1
    })?;
    let job = only_job(&name)?;
    match handle.wait() {
        Err(TaskError::TimedOut { .. }) => {}
        other => return Err(format!("expected a timeout, got {other:?}")),
    }
    let timed_out = Instant::now();
    let (mut queued, mut slots) = (String::new(), String::new());
    wait_until("the job to leave the queue", REMOVAL_BOUND, || {
        queued = condor(
            "condor_q",
            &[&job, "-af", "ClusterId", "ProcId", "JobStatus"],
        )
        .map_or_else(|e| e.to_string(), |(_, text)| text);
        queued.is_empty()
    })
    .map_err(|e| format!("{e}: condor_q {job} says {queued:?}"))?;
    let left_queue = timed_out.elapsed();
    // A busy slot names its job; the dynamic slot goes when it is free.
    wait_until("its slot to be free", REMOVAL_BOUND, || {
        slots = condor(
            "condor_status",
            &["-af", "Name", "State", "Activity", "JobId"],
        )
        .map_or_else(|e| e.to_string(), |(_, text)| text);
        !slots
            .lines()
            .any(|l| l.ends_with(&format!(" {job}")) || l.ends_with(&format!(" \"{job}\"")))
    })
    .map_err(|e| format!("{e}: slots {slots:?}"))?;
    println!(
        "    job {job} left the queue {left_queue:.1?} and its slot {:.1?} after the timeout",
        timed_out.elapsed()
    );
    Ok(())
}

/// The settings [`settings_master`] runs with.
const SMALL_LIMIT: &str = "65536";
const CHILD_RUST_LOG: &str = "warn,pymw=info";

/// The child's side of [`master_settings_reach_the_job`]: a master whose
/// environment sets a small message size limit and RUST_LOG. It prints what
/// its job sees of the forwarded variables (`env NAME=VALUE` or `env NAME`
/// when unset) and what became of an input larger than the limit
/// (`big OUTCOME`).
fn settings_master(runs: &str) {
    RUNS.set(PathBuf::from(runs)).expect("set once");
    let (master, _, _) =
        named_master("settings", condor_config(), retries(0)).expect("start a master");
    let names = ["PYMW_MAX_MESSAGE_BYTES", "RUST_LOG", "RUST_BACKTRACE"];
    let seen = master
        .submit(
            tasks::env_vars::task(),
            names.iter().map(|n| n.to_string()).collect(),
        )
        .wait()
        .expect("the environment task");
    for (name, value) in names.iter().zip(seen) {
        match value {
            Some(value) => println!("env {name}={value}"),
            None => println!("env {name}"),
        }
    }
    let big = master.submit(tasks::zeros::task(), 100_000).wait();
    println!("big {big:?}");
}

fn master_settings_reach_the_job(_: &Harness) -> CaseResult {
    let mut command = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    command
        .env(SETTINGS_ENV, RUNS.get().expect("set in main"))
        .env("PYMW_MAX_MESSAGE_BYTES", SMALL_LIMIT)
        .env("RUST_LOG", CHILD_RUST_LOG)
        .env_remove("RUST_BACKTRACE");
    let output = command.output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "the child master failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        format!("env PYMW_MAX_MESSAGE_BYTES={SMALL_LIMIT}"),
        format!("env RUST_LOG={CHILD_RUST_LOG}"),
        "env RUST_BACKTRACE".to_owned(),
    ] {
        ensure!(
            text.lines().any(|l| l == expected),
            "the job did not see `{expected}`: {text}"
        );
    }
    // A value over the master's limit fails in the job, as it would on a
    // local worker (a job that applied the default 1 GiB returned it).
    let big = text
        .lines()
        .find_map(|l| l.strip_prefix("big "))
        .unwrap_or_default();
    ensure!(
        big.starts_with("Err(") && big.contains("over the limit"),
        "a value of 100,000 bytes with a limit of {SMALL_LIMIT}: {big}"
    );
    Ok(())
}

fn submitted_environment_reaches_the_job(_: &Harness) -> CaseResult {
    // What `--condor-submit-command 'environment="A=x B=y C='1 2'"'` gives.
    let config = condor_config().submit_command("environment", "\"A=x B=y C='1 2'\"");
    let (master, _, dir) = named_master("environment", config, pymw_conformance::quiet())?;
    let names = ["A", "B", "C", "PYMW_MAX_MESSAGE_BYTES"];
    let seen = master
        .submit(
            tasks::env_vars::task(),
            names.iter().map(|n| n.to_string()).collect(),
        )
        .wait()
        .map_err(|e| e.to_string())?;
    let submit = std::fs::read_dir(dir.join("submit"))
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .find_map(|e| std::fs::read_to_string(e.path()).ok())
        .unwrap_or_default();
    let environment: Vec<&str> = submit
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("environment"))
        .collect();
    ensure!(
        seen[..3] == [Some("x".into()), Some("y".into()), Some("1 2".into())],
        "the job saw A, B, C = {:?}; environment commands {environment:?}",
        &seen[..3]
    );
    // Merged with pymw's own variables into one command, not replaced.
    ensure!(
        seen[3].as_deref().is_some_and(|v| v.parse::<u64>().is_ok()),
        "the job saw PYMW_MAX_MESSAGE_BYTES = {:?}; environment commands {environment:?}",
        seen[3]
    );
    ensure!(
        environment.len() == 1,
        "environment commands: {environment:?}"
    );
    Ok(())
}
