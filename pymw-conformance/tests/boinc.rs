//! The conformance suite on a live BOINC project in project-host mode, plus
//! what only BOINC shows: a task's own error or panic comes back once and
//! fast (a result, not a broken volunteer); a crash is a BOINC error,
//! reported as lost with its reason; with a quorum of 2 a wrong replica is
//! outvoted; replicas that never agree fail once, plainly; a refused job
//! fails once with the whole reason; a cancelled task's work unit is
//! cancelled in the project's database; and a master killed with `kill -9`
//! and started again with the same run finishes with nothing lost and
//! nothing run twice.
//!
//! It needs the testbed: `testbeds/boinc/up.sh` (as root) and
//! `eval "$(testbeds/boinc/up.sh --print-env)"`, then
//! `cargo test -p pymw-conformance --features boinc --test boinc [-- NAME]`.
//! Without the testbed's environment it fails, loudly; it never skips.
//!
//! # Who runs what
//!
//! A project-host master must run as the project's user (`boincadm`): it
//! writes into the project's download hierarchy, `apps/`, `templates/` and
//! `pymw_runs/`, runs `bin/create_work` and `bin/update_versions` (which
//! sign with the project's key, readable by that user only), and reads
//! the database with the credentials of `config.xml`. CI starts this binary
//! as root, so it registers the app first (`testbeds/boinc/register-app.sh`:
//! project.xml + `bin/xadd`, `boinc-install`, the `<daemon>` entries in
//! `config.xml`, daemons restarted only when the config changed, the client
//! told to update) and then runs itself again as the project user with
//! `runuser -u USER --`, which keeps the environment (`/work` is readable by
//! every user). The app runs as the client's user (`boinc`): the cases'
//! side channels are directories under `/tmp` that every user may write.
//!
//! # Concurrency
//!
//! One job takes about 20 s from `create_work` to its assimilated output,
//! and the client runs 8 at once: each case runs in a child process of its
//! own (the same binary, `PYMW_BOINC_TEST_CASE=NAME`), several at a time.
//! While they run, the client is told to update every 10 s: a compute error
//! makes it defer the project for minutes, and a daemon restart (by this
//! suite or anyone else working on the project) makes the scheduler ask
//! for an hour's delay.

use pymw::blocking::Master;
use pymw::boinc::{BoincArgs, BoincBackend};
use pymw::{MasterConfig, Resources, TaskError, TaskOptions};
use pymw_conformance::{Case, CaseResult, Harness, ensure, tasks};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const HOW_TO_START: &str = "start the BOINC testbed first (as root): `testbeds/boinc/up.sh`, then \
     `eval \"$(testbeds/boinc/up.sh --print-env)\"` (sets PYMW_BOINC_PROJECT, PYMW_BOINC_PROJECT_USER, \
     PYMW_BOINC_URL, PYMW_BOINC_CLIENT, PYMW_BOINC_CLIENT_PASSWD)";

/// The app this suite registers (the test binary is its app version).
const APP: &str = "pymw_conformance";
/// Set in a child copy of this binary to run one case.
const CASE_ENV: &str = "PYMW_BOINC_TEST_CASE";
/// The suite's directory (side channels, run stores), set for children.
const ROOT_ENV: &str = "PYMW_BOINC_TEST_ROOT";
/// Set in a child copy of this binary to make it a master of a named run
/// (`ROOT RUN DIR`, see [`resumable_master`]).
const RESUMABLE_ENV: &str = "PYMW_BOINC_TEST_RESUMABLE";
/// Set when this process was started again as the project user.
const AS_USER_ENV: &str = "PYMW_BOINC_TEST_AS_USER";
/// Cases running at once.
const CONCURRENCY: usize = 10;
/// Longest a case may take. One BOINC job is ~20 s, but the one client
/// runs about one job a second for all the cases at once: the whole suite
/// is about 300 jobs, and a case's jobs wait behind the others' in the
/// feeder's queue.
const CASE_TIMEOUT: Duration = Duration::from_secs(900);

/// The testbed's environment.
struct Testbed {
    project: PathBuf,
    user: String,
    url: String,
    client: String,
    passwd: String,
}

static TESTBED: OnceLock<Testbed> = OnceLock::new();
static ROOT: OnceLock<PathBuf> = OnceLock::new();

fn fail(message: &str) -> ! {
    eprintln!("\nerror: the BOINC end-to-end tests cannot run: {message}\n\n{HOW_TO_START}\n");
    std::process::exit(2)
}

fn testbed() -> &'static Testbed {
    TESTBED.get_or_init(|| {
        let var = |name: &str| match std::env::var(name) {
            Ok(v) if !v.is_empty() => v,
            _ => fail(&format!("{name} is not set")),
        };
        let project = PathBuf::from(var("PYMW_BOINC_PROJECT"));
        if !project.join("config.xml").is_file() {
            fail(&format!(
                "PYMW_BOINC_PROJECT={} is not a BOINC project directory (no config.xml)",
                project.display()
            ));
        }
        Testbed {
            project,
            user: var("PYMW_BOINC_PROJECT_USER"),
            url: var("PYMW_BOINC_URL"),
            client: var("PYMW_BOINC_CLIENT"),
            passwd: var("PYMW_BOINC_CLIENT_PASSWD"),
        }
    })
}

fn root() -> &'static Path {
    ROOT.get_or_init(|| match std::env::var_os(ROOT_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => fail(&format!("{ROOT_ENV} is not set in a case's process")),
    })
}

fn main() {
    pymw::init();
    if let Ok(role) = std::env::var(RESUMABLE_ENV) {
        resumable_master(&role);
        return;
    }
    let testbed = testbed();
    if let Ok(case) = std::env::var(CASE_ENV) {
        std::process::exit(run_one(&case));
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filters: Vec<String> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .cloned()
        .collect();
    if args.iter().any(|a| a == "--list") {
        for case in all_cases() {
            println!("{}: test", case.name);
        }
        return;
    }
    if std::env::var_os(AS_USER_ENV).is_none() {
        register(testbed);
    }
    // SAFETY: plain query.
    let euid = unsafe { libc::geteuid() };
    let me = user_name(euid);
    if me.as_deref() != Some(testbed.user.as_str()) {
        if euid != 0 {
            fail(&format!(
                "a project-host master runs as the project's user {}; this is {}: run the suite as root \
                 (it runs itself again as {}) or as {}",
                testbed.user,
                me.unwrap_or_else(|| euid.to_string()),
                testbed.user,
                testbed.user
            ));
        }
        let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("no executable: {e}")));
        let status = Command::new("runuser")
            .args(["-u", &testbed.user, "--"])
            .arg(&exe)
            .args(&args)
            .env(AS_USER_ENV, "1")
            .status()
            .unwrap_or_else(|e| fail(&format!("cannot run runuser: {e}")));
        std::process::exit(status.code().unwrap_or(1));
    }
    std::process::exit(run_all(testbed, &filters));
}

fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.get(2) == Some(&uid.to_string().as_str())).then(|| fields[0].to_owned())
    })
}

/// Registers this binary as the app (see the module docs).
fn register(testbed: &Testbed) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testbeds/boinc/register-app.sh");
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("no executable: {e}")));
    let started = Instant::now();
    let output = Command::new("bash")
        .arg(&script)
        .arg(&exe)
        .arg(APP)
        .current_dir(&testbed.project)
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run {}: {e}", script.display())));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        fail(&format!(
            "{} {} {APP} failed ({}):\n{text}",
            script.display(),
            exe.display(),
            output.status
        ));
    }
    print!("{text}");
    println!(
        "registered app {APP} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// Tells the client to contact the project now.
fn kick_client(testbed: &Testbed) {
    let _ = Command::new("boinccmd")
        .args([
            "--host",
            &testbed.client,
            "--passwd",
            &testbed.passwd,
            "--project",
            &testbed.url,
            "update",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn all_cases() -> Vec<Case> {
    macro_rules! cases {
        ($($name:ident),* $(,)?) => { vec![$(Case { name: stringify!($name), run: $name }),*] };
    }
    let mut all = pymw_conformance::cases();
    all.extend(cases![
        boinc_task_error_comes_back_once_and_fast,
        boinc_panic_comes_back_once_and_fast,
        boinc_crash_is_lost_with_boinc_reason,
        boinc_quorum_outvotes_a_wrong_replica,
        boinc_replicas_that_never_agree_fail_once,
        boinc_refused_job_fails_once_with_the_reason,
        boinc_cancel_cancels_the_work_unit,
        boinc_killed_master_resumes_nothing_lost_or_twice,
    ]);
    all
}

/// Runs the cases, [`CONCURRENCY`] at a time, each in a child process;
/// prints a libtest-style report; returns the exit code.
fn run_all(testbed: &Testbed, filters: &[String]) -> i32 {
    let cases: Vec<&'static str> = all_cases()
        .into_iter()
        .map(|c| c.name)
        .filter(|name| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    let root = std::env::temp_dir().join(format!("pymw-boinc-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap_or_else(|e| fail(&format!("{}: {e}", root.display())));
    set_mode(&root, 0o777);
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("no executable: {e}")));
    println!("\nrunning {} tests, {CONCURRENCY} at a time", cases.len());
    let started = Instant::now();
    let stop = AtomicBool::new(false);
    let mut failed = Vec::new();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                kick_client(testbed);
                for _ in 0..100 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        });
        let mut queue = cases.iter();
        let mut running: Vec<(&str, std::process::Child, Instant, PathBuf)> = Vec::new();
        loop {
            while running.len() < CONCURRENCY {
                let Some(name) = queue.next() else { break };
                let log = root.join(format!("{name}.log"));
                let file = std::fs::File::create(&log)
                    .unwrap_or_else(|e| fail(&format!("{}: {e}", log.display())));
                let mut command = Command::new(&exe);
                command
                    .env(CASE_ENV, name)
                    .env(ROOT_ENV, &root)
                    .stdin(Stdio::null())
                    .stdout(file.try_clone().expect("clone a file handle"))
                    .stderr(file);
                {
                    use std::os::unix::process::CommandExt;
                    command.process_group(0);
                }
                let child = command
                    .spawn()
                    .unwrap_or_else(|e| fail(&format!("cannot run {}: {e}", exe.display())));
                running.push((name, child, Instant::now(), log));
            }
            if running.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
            let mut i = 0;
            while i < running.len() {
                let (name, child, t0, log) = &mut running[i];
                let overdue = t0.elapsed() > CASE_TIMEOUT + Duration::from_secs(60);
                if overdue {
                    // SAFETY: signalling the case's own process group.
                    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                }
                match child.try_wait() {
                    Ok(Some(status)) => {
                        let elapsed = t0.elapsed().as_secs_f64();
                        let text = std::fs::read_to_string(&*log).unwrap_or_default();
                        if status.success() {
                            println!("test {name} ... ok ({elapsed:.2}s)");
                            for line in text.lines().filter(|l| l.starts_with("    ")) {
                                println!("{line}");
                            }
                        } else {
                            println!("test {name} ... FAILED ({elapsed:.2}s)");
                            let why = if overdue {
                                format!("killed after {elapsed:.0}s\n{text}")
                            } else {
                                text
                            };
                            failed.push((name.to_string(), why));
                        }
                        running.swap_remove(i);
                    }
                    _ => i += 1,
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    let failed: Vec<(&str, String)> = failed
        .iter()
        .map(|(name, message)| (&name[..], tail(message, 6000).to_owned()))
        .collect();
    let code = pymw_conformance::report(cases.len(), &failed, started);
    if failed.is_empty() {
        let _ = std::fs::remove_dir_all(&root);
    } else {
        println!("case logs are in {}", root.display());
    }
    code
}

fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

fn harness() -> Harness {
    let cases = root().join("cases");
    std::fs::create_dir_all(&cases).expect("create the cases directory");
    set_mode(&cases, 0o777);
    Harness {
        start: Box::new(start_master),
        shared_dir: cases,
        // A job is seconds of the one client's time (it takes about one
        // per second with 8 slots): the larger maps run 20 and 10 tasks,
        // not 1,000 and 500.
        scale: 0.02,
        case_timeout: CASE_TIMEOUT,
    }
}

/// Runs case `name` in this process; returns the exit code.
fn run_one(name: &str) -> i32 {
    let Some(case) = all_cases().into_iter().find(|c| c.name == name) else {
        eprintln!("no case named {name}");
        return 2;
    };
    let harness = harness();
    let t0 = Instant::now();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (case.run)(&harness)))
        .unwrap_or_else(|_| Err("the case panicked".to_owned()));
    let result = match result {
        Ok(()) if t0.elapsed() > CASE_TIMEOUT => Err(format!(
            "took {:?}, over the {CASE_TIMEOUT:?} limit",
            t0.elapsed()
        )),
        other => other,
    };
    match result {
        Ok(()) => 0,
        Err(message) => {
            println!("{message}");
            1
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

/// The backend's options: the project, the app, and a crash retried by
/// BOINC once (`max_error_results` 1: each crash makes the client back
/// off). Built as a struct, not parsed: the testbed's environment has
/// `PYMW_BOINC_URL`, which the `--boinc-url` option reads, and which
/// conflicts with `--boinc-project`.
fn boinc_args() -> BoincArgs {
    let mut args = BoincArgs::default();
    args.boinc_project = Some(testbed().project.clone());
    args.boinc_app = APP.to_owned();
    args.boinc_max_error_results = 1;
    args
}

fn start_master(config: MasterConfig) -> Master {
    let backend = BoincBackend::new(boinc_args().config());
    Master::start_with(Box::new(backend), config)
        .unwrap_or_else(|e| panic!("cannot start a BOINC master: {e}"))
}

fn retries(n: u32) -> MasterConfig {
    MasterConfig {
        max_retries: n,
        ..pymw_conformance::quiet()
    }
}

fn case_dir(case: &str) -> Result<PathBuf, String> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = root().join("cases").join(format!("{case}-{nanos}"));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    set_mode(&dir, 0o777);
    Ok(dir)
}

/// The BOINC result names recorded by the tasks in `dir`, oldest first.
fn results_in(dir: &Path) -> Vec<String> {
    let mut found: Vec<(u128, String)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let rest = name.strip_prefix("result-")?;
                    let (result, nanos) = rest.rsplit_once('-')?;
                    Some((nanos.parse().ok()?, result.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.into_iter().map(|(_, r)| r).collect()
}

/// The work unit of a result (`WU_N_rRANDOM` or `WU_N`).
fn wu_of(result: &str) -> String {
    let mut parts: Vec<&str> = result.rsplitn(3, '_').collect();
    parts.reverse();
    match parts.as_slice() {
        [wu, n, r] if r.starts_with('r') && n.bytes().all(|b| b.is_ascii_digit()) => {
            (*wu).to_owned()
        }
        _ => result
            .rsplit_once('_')
            .map_or(result, |(wu, _)| wu)
            .to_owned(),
    }
}

/// Runs a query in the project's database; its rows, tab-separated.
fn sql(query: &str) -> Result<Vec<Vec<String>>, String> {
    let config =
        std::fs::read_to_string(testbed().project.join("config.xml")).map_err(|e| e.to_string())?;
    let tag = |name: &str| {
        config
            .split(&format!("<{name}>"))
            .nth(1)
            .and_then(|rest| rest.split(&format!("</{name}>")).next())
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    let output = Command::new("mysql")
        .arg(format!("--user={}", tag("db_user")))
        .arg(format!("--password={}", tag("db_passwd")))
        .arg(format!("--host={}", tag("db_host")))
        .args(["--batch", "--skip-column-names", &tag("db_name")])
        .arg("-e")
        .arg(query)
        .output()
        .map_err(|e| format!("cannot run mysql: {e}"))?;
    ensure!(
        output.status.success(),
        "mysql: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect())
}

fn quote(s: &str) -> Result<String, String> {
    ensure!(
        s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "unexpected name {s:?}"
    );
    Ok(format!("'{s}'"))
}

/// (results, their outcomes) of work unit `wu`.
fn results_of_wu(wu: &str) -> Result<Vec<String>, String> {
    Ok(sql(&format!(
        "SELECT r.outcome FROM result r JOIN workunit w ON r.workunitid = w.id WHERE w.name = {} ORDER BY r.id",
        quote(wu)?
    ))?
    .into_iter()
    .map(|row| row.join(" "))
    .collect())
}

fn one_run_result(dir: &Path) -> Result<String, String> {
    let results = results_in(dir);
    ensure!(
        results.len() == 1,
        "the task ran as {results:?}: expected exactly one run"
    );
    Ok(results[0].clone())
}

fn own_failure_comes_back_once(panic: bool) -> CaseResult {
    let master = start_master(retries(3));
    let dir = case_dir(if panic { "panic" } else { "error" })?;
    let t0 = Instant::now();
    let result = master
        .submit(
            tasks::fails_recording_result::task(),
            (dir.display().to_string(), panic),
        )
        .wait();
    let took = t0.elapsed();
    match &result {
        Err(TaskError::Failed { failure, .. }) => {
            let text = failure.to_string();
            let expected = if panic {
                "deliberate panic"
            } else {
                "deliberate failure"
            };
            ensure!(text.contains(expected), "failure {text:?}");
        }
        other => return Err(format!("expected the task's own failure, got {other:?}")),
    }
    // Fast: one job's time (20-40 s alone; up to about 100 s when the crash
    // case's client error shares the client), not the replicas and the
    // 1-4 minute client back-offs after each error that a failure treated
    // as a crash cost (4 runs, 11 minutes). "Once" is checked just below.
    ensure!(
        took < Duration::from_secs(240),
        "the failure took {took:?} to come back"
    );
    let result = one_run_result(&dir)?;
    let wu = wu_of(&result);
    let outcomes = results_of_wu(&wu)?;
    // outcome 1: success. A client error would be 3, and a replica more.
    ensure!(
        outcomes == ["1"],
        "work unit {wu} has results with outcomes {outcomes:?}, expected one success"
    );
    println!("    came back in {took:.1?}; work unit {wu}: one result, a success");
    Ok(())
}

fn boinc_task_error_comes_back_once_and_fast(_: &Harness) -> CaseResult {
    own_failure_comes_back_once(false)
}

fn boinc_panic_comes_back_once_and_fast(_: &Harness) -> CaseResult {
    own_failure_comes_back_once(true)
}

fn boinc_crash_is_lost_with_boinc_reason(_: &Harness) -> CaseResult {
    let master = start_master(retries(0));
    let t0 = Instant::now();
    let result = master.submit(tasks::segfaults::task(), ()).wait();
    match &result {
        Err(TaskError::WorkerLost {
            cause,
            attempts,
            stderr_tail,
            ..
        }) => {
            ensure!(*attempts == 1, "{attempts} attempts");
            ensure!(cause.contains("error_mask"), "cause {cause:?}");
            ensure!(
                cause.contains("signal 11") || cause.contains("SIGSEGV"),
                "cause {cause:?} does not give the signal"
            );
            ensure!(
                stderr_tail.contains("signal 11") || stderr_tail.contains("SIGSEGV"),
                "stderr {stderr_tail:?}"
            );
        }
        other => return Err(format!("expected a lost attempt, got {other:?}")),
    }
    println!("    lost after {:.1?}", t0.elapsed());
    Ok(())
}

fn quorum(n: u32) -> TaskOptions {
    let mut resources = Resources::default();
    resources.extra = vec![("boinc.min_quorum".to_owned(), n.to_string())];
    TaskOptions::default().resources(resources)
}

fn boinc_quorum_outvotes_a_wrong_replica(_: &Harness) -> CaseResult {
    let master = start_master(retries(0));
    let dir = case_dir("quorum")?;
    let t0 = Instant::now();
    let value = master
        .submit_with(
            tasks::wrong_on_first_replica::task(),
            (dir.display().to_string(), 7),
            quorum(2),
        )
        .wait();
    ensure!(
        value == Ok(49),
        "quorum 2 with one wrong replica gave {value:?}"
    );
    let results = results_in(&dir);
    ensure!(
        results.len() == 3,
        "replicas run: {results:?}, expected 3 (two disagree, a third decides)"
    );
    let wu = wu_of(&results[0]);
    ensure!(
        results.iter().all(|r| wu_of(r) == wu),
        "replicas of several work units: {results:?}"
    );
    println!(
        "    3 replicas, the wrong one outvoted, in {:.1?}",
        t0.elapsed()
    );
    Ok(())
}

fn boinc_replicas_that_never_agree_fail_once(_: &Harness) -> CaseResult {
    let master = start_master(retries(3));
    let dir = case_dir("nondeterministic")?;
    let t0 = Instant::now();
    let result = master
        .submit_with(
            tasks::nondeterministic::task(),
            dir.display().to_string(),
            quorum(2),
        )
        .wait();
    match &result {
        Err(TaskError::Backend { message, .. }) => {
            ensure!(
                message.contains("3 replicas, none agreed: the task is not deterministic")
                    && message.contains("`validate` function"),
                "message {message:?}"
            );
        }
        other => return Err(format!("expected a failure, got {other:?}")),
    }
    let results = results_in(&dir);
    ensure!(
        results.len() == 3,
        "replicas run: {results:?}, expected 3 (quorum 2, one tie breaker, not retried)"
    );
    println!(
        "    failed after 3 replicas in {:.1?}, not retried",
        t0.elapsed()
    );
    Ok(())
}

fn boinc_refused_job_fails_once_with_the_reason(_: &Harness) -> CaseResult {
    let master = start_master(retries(5));
    let mut resources = Resources::default();
    resources.extra = vec![("boinc.max_error_results".to_owned(), "0".to_owned())];
    let t0 = Instant::now();
    let result = master
        .submit_with(
            tasks::square::task(),
            3,
            TaskOptions::default().resources(resources),
        )
        .wait();
    match &result {
        Err(TaskError::Backend { message, .. }) => {
            ensure!(
                message.contains("boinc.max_error_results") && message.contains("at least 1"),
                "message {message:?}"
            );
        }
        other => return Err(format!("expected a refusal, got {other:?}")),
    }
    let refused = t0.elapsed();
    ensure!(refused < Duration::from_secs(10), "took {refused:?}");
    // Not retried: the next task of the master still runs.
    let after = master.submit(tasks::square::task(), 4).wait();
    ensure!(after == Ok(16), "after a refusal: {after:?}");
    println!("    refused in {refused:.1?}, once; the next task ran");
    Ok(())
}

fn boinc_cancel_cancels_the_work_unit(_: &Harness) -> CaseResult {
    let master = start_master(retries(0));
    let dir = case_dir("cancel")?;
    let handle = master.submit(
        tasks::sleeps_recording_result::task(),
        (dir.display().to_string(), 600),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let result = loop {
        if let Some(r) = results_in(&dir).into_iter().next() {
            break r;
        }
        ensure!(
            Instant::now() < deadline,
            "the task did not start on the client"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    handle.cancel();
    let outcome = handle.wait();
    ensure!(
        matches!(outcome, Err(TaskError::Cancelled { .. })),
        "expected cancelled, got {outcome:?}"
    );
    let wu = wu_of(&result);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = sql(&format!(
            "SELECT error_mask FROM workunit WHERE name = {}",
            quote(&wu)?
        ))?;
        let mask: u32 = rows
            .first()
            .and_then(|r| r.first())
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        if mask & 16 != 0 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "work unit {wu}: error_mask {mask}, not cancelled (16)"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("    work unit {wu} cancelled in the database (error_mask has 16)");
    Ok(())
}

/// Sleeps of the resumed run, in ms: two end while no master is alive.
const RESUMED_SLEEPS: [u64; 4] = [1_000, 1_000, 30_000, 30_000];

/// A master of a named run (`ROOT RUN DIR`): maps [`tasks::counted_sleep`]
/// over [`RESUMED_SLEEPS`], prints `running` once every task is running and
/// `results ...` at the end.
fn resumable_master(role: &str) {
    let words: Vec<&str> = role.split(' ').collect();
    let [root, run, dir] = words[..] else {
        panic!("{RESUMABLE_ENV}={role}: expected ROOT RUN DIR");
    };
    let store = pymw::store::RunStore::open(
        Path::new(root).join("stores"),
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
    let master = start_master(config);
    let done = AtomicBool::new(false);
    let inputs: Vec<(String, u64, u64)> = RESUMED_SLEEPS
        .iter()
        .enumerate()
        .map(|(i, &ms)| (dir.to_owned(), i as u64, ms))
        .collect();
    let values: Vec<String> = std::thread::scope(|scope| {
        scope.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                if master.status().running == RESUMED_SLEEPS.len() as u64 {
                    println!("running");
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let values = master
            .map(tasks::counted_sleep::task(), inputs)
            .map(|r| r.map_or_else(|e| format!("error: {e}"), |v| v.to_string()))
            .collect();
        done.store(true, Ordering::Relaxed);
        values
    });
    println!("results {}", values.join(" "));
    drop(master);
}

fn runs_of(dir: &Path, i: usize) -> usize {
    let prefix = format!("run-{i}-");
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .count()
    })
}

fn boinc_killed_master_resumes_nothing_lost_or_twice(_: &Harness) -> CaseResult {
    use std::io::BufRead;
    let stores = root().join("stores");
    std::fs::create_dir_all(&stores).map_err(|e| e.to_string())?;
    // Work unit names start with the run's name (letters and digits).
    let run = format!("kill{}", std::process::id());
    let dir = case_dir("resumed")?;
    let role = format!("{} {run} {}", root().display(), dir.display());
    let start = || -> Result<std::process::Child, String> {
        let mut command = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
        command.env(RESUMABLE_ENV, &role).stdout(Stdio::piped());
        command.spawn().map_err(|e| e.to_string())
    };
    let mut first = start()?;
    let mut stdout = std::io::BufReader::new(first.stdout.take().expect("piped"));
    let mut line = String::new();
    stdout.read_line(&mut line).map_err(|e| e.to_string())?;
    ensure!(line.trim() == "running", "the first master said {line:?}");
    // kill -9 once every task has started on the client.
    let deadline = Instant::now() + Duration::from_secs(120);
    while (0..RESUMED_SLEEPS.len()).any(|i| runs_of(&dir, i) == 0) {
        ensure!(Instant::now() < deadline, "the tasks did not all start");
        std::thread::sleep(Duration::from_millis(200));
    }
    first.kill().map_err(|e| e.to_string())?;
    let _ = first.wait();
    let wus = || -> Result<usize, String> {
        Ok(sql(&format!(
            "SELECT COUNT(*) FROM workunit WHERE name LIKE 'pymw\\_{}%'",
            run.to_ascii_lowercase()
        ))?
        .first()
        .and_then(|r| r.first())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
    };
    let before = wus()?;
    ensure!(
        before == RESUMED_SLEEPS.len(),
        "{before} work units of the run before the kill"
    );
    // The short ones end while no master is alive.
    std::thread::sleep(Duration::from_secs(10));
    let began = Instant::now();
    let second = start()?;
    let output = second.wait_with_output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&output.stdout);
    ensure!(output.status.success(), "the second master failed: {text}");
    let expected: Vec<String> = (0..RESUMED_SLEEPS.len()).map(|i| i.to_string()).collect();
    let results = text
        .lines()
        .find_map(|l| l.strip_prefix("results "))
        .unwrap_or_default();
    ensure!(
        results == expected.join(" "),
        "the second master returned {results:?}"
    );
    for i in 0..RESUMED_SLEEPS.len() {
        let runs = runs_of(&dir, i);
        ensure!(runs == 1, "task {i} ran {runs} times");
    }
    let after = wus()?;
    ensure!(
        after == before,
        "{after} work units of the run after the restart, {before} before: created again"
    );
    println!(
        "    {before} work units over two masters, each task run once; the second took {:.1?}",
        began.elapsed()
    );
    Ok(())
}
