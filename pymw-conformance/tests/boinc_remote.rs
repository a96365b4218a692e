//! Remote submission end to end on a real BOINC project, and the clean-up
//! after project-host masters that die.
//!
//! Needs the testbed, as root: `testbeds/boinc/up.sh`, then
//! `eval "$(testbeds/boinc/up.sh --print-env)"` and
//! `cargo test -p pymw-conformance --features boinc --test boinc_remote [-- NAME]`.
//! The harness itself runs `testbeds/boinc/remote-user.sh` with this binary
//! (a submitting user with a `user_submit` row, the app `pymw_remote`, this
//! binary installed as it with its validator and assimilator, the daemons
//! restarted when `config.xml` changed). Without the testbed it fails,
//! loudly; it never skips.
//!
//! The app has pymw's assimilator, so the remote cases also check that one
//! app serves both modes: outputs of a submitted batch are held until the
//! batch is retired, not deleted before `get_output.php` fetches them.

use pymw::blocking::Master;
use pymw::boinc::{BoincBackend, BoincConfig};
use pymw::{MasterConfig, TaskError};
use pymw_conformance::{CaseResult, ensure, tasks};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const HOW_TO_START: &str = "start the BOINC testbed first (as root): `testbeds/boinc/up.sh`, then \
     `eval \"$(testbeds/boinc/up.sh --print-env)\"`, and run this test as root";

/// Set in a child copy of this binary (run as the project's user) to make it
/// a project-host master: `hold` submits two long tasks and waits to be
/// killed; `noop` starts and ends at once.
const ROLE_ENV: &str = "PYMW_BOINC_TEST_ROLE";
/// The app the harness installs this binary as.
const APP: &str = "pymw_remote";
/// `result.file_delete_state` of an output the assimilator holds for a
/// remote submitter (`pymw_boinc::reaper::HELD`).
const HELD: u32 = 71;
/// The marker file of a run directory (`pymw_boinc::reaper::MARKER`).
const MARKER: &str = ".pymw-master";

/// What a run directory's marker says.
#[derive(Debug)]
struct Marker {
    pid: u32,
    watcher: u32,
}

impl Marker {
    /// `pid start_time resumable watcher`.
    fn read(dir: &Path) -> Option<Marker> {
        let text = std::fs::read_to_string(dir.join(MARKER)).ok()?;
        let words: Vec<&str> = text.split_whitespace().collect();
        Some(Marker {
            pid: words.first()?.parse().ok()?,
            watcher: words.get(3)?.parse().ok()?,
        })
    }
}

struct Env {
    project: PathBuf,
    project_user: String,
    url: String,
    authenticator: String,
    submitter: u64,
    /// `UNIX_TIMESTAMP()` of the server when the run started.
    started: u64,
}

static ENV: OnceLock<Env> = OnceLock::new();

fn env() -> &'static Env {
    ENV.get().expect("set in main")
}

fn fail(message: &str) -> ! {
    eprintln!(
        "\nerror: the BOINC remote end-to-end tests cannot run: {message}\n\n{HOW_TO_START}\n"
    );
    std::process::exit(2)
}

fn var(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => fail(&format!("{name} is not set")),
    }
}

fn main() {
    pymw::init();
    if let Ok(role) = std::env::var(ROLE_ENV) {
        project_host_child(&role);
        return;
    }
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if std::env::args().any(|a| a == "--list") {
        for (name, _) in cases() {
            println!("{name}: test");
        }
        return;
    }
    let project = PathBuf::from(var("PYMW_BOINC_PROJECT"));
    let project_user = var("PYMW_BOINC_PROJECT_USER");
    let url = var("PYMW_BOINC_URL");
    if !project.join("config.xml").is_file() {
        fail(&format!("{} is not a BOINC project", project.display()));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        fail("it must run as root (it sets the project up and reads its database)");
    }
    let exe = std::env::current_exe().expect("this binary");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testbeds/boinc/remote-user.sh");
    let t0 = Instant::now();
    let out = Command::new(&script)
        .arg(&exe)
        .arg(APP)
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run {}: {e}", script.display())));
    if !out.status.success() {
        fail(&format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("export {key}=")))
            .map(str::to_owned)
            .unwrap_or_else(|| fail(&format!("remote-user.sh printed no {key}")))
    };
    let authenticator = get("PYMW_BOINC_AUTHENTICATOR");
    let submitter = get("PYMW_BOINC_SUBMITTER_ID")
        .parse()
        .unwrap_or_else(|_| fail("bad PYMW_BOINC_SUBMITTER_ID"));
    eprintln!("set-up (remote-user.sh): {:.1?}", t0.elapsed());
    let started = sql("SELECT UNIX_TIMESTAMP()")
        .ok()
        .and_then(|rows| rows.first()?.first()?.parse().ok())
        .unwrap_or_else(|| fail("cannot query the project database with `mysql pymw`"));
    let _ = ENV.set(Env {
        project,
        project_user,
        url,
        authenticator,
        submitter,
        started,
    });
    let cases: Vec<_> = cases()
        .into_iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!("\nrunning {} tests", cases.len());
    let t0 = Instant::now();
    let mut failed = Vec::new();
    for (name, case) in &cases {
        let t = Instant::now();
        let result =
            std::panic::catch_unwind(case).unwrap_or_else(|_| Err("the case panicked".into()));
        match result {
            Ok(()) => println!("test {name} ... ok ({:.1?})", t.elapsed()),
            Err(e) => {
                println!("test {name} ... FAILED ({:.1?})\n    {e}", t.elapsed());
                failed.push(*name);
            }
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; finished in {:.1?}",
        if failed.is_empty() { "ok" } else { "FAILED" },
        cases.len() - failed.len(),
        failed.len(),
        t0.elapsed()
    );
    std::process::exit(i32::from(!failed.is_empty()));
}

type CaseFn = fn() -> CaseResult;

fn cases() -> Vec<(&'static str, CaseFn)> {
    vec![
        (
            "remote_values_come_back_and_outputs_are_held_until_retired",
            values_come_back as CaseFn,
        ),
        (
            "app_version_is_stripped_and_gzipped",
            app_version_is_stripped_and_gzipped,
        ),
        ("remote_task_error_comes_back", task_error_comes_back),
        ("remote_cancel_aborts_the_jobs", cancel_aborts_the_jobs),
        (
            "remote_unwritable_download_is_a_configuration_error",
            unwritable_download_is_a_configuration_error,
        ),
        ("remote_batches_are_retired_at_the_end", batches_are_retired),
        (
            "project_host_killed_master_is_reaped_by_the_next",
            killed_master_is_reaped_by_the_next,
        ),
        (
            "project_host_interrupted_master_cancels_its_work",
            interrupted_master_cancels_its_work,
        ),
    ]
}

/// Rows of a query on the project database (as root, through the socket).
fn sql(query: &str) -> Result<Vec<Vec<String>>, String> {
    let out = Command::new("mysql")
        .args(["-N", "--batch", "pymw", "-e", query])
        .output()
        .map_err(|e| format!("cannot run mysql: {e}"))?;
    ensure!(
        out.status.success(),
        "mysql {query:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect())
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) -> CaseResult {
    let deadline = Instant::now() + within;
    while !done() {
        ensure!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

/// Tells the client to ask the scheduler now (it may be deferring).
fn kick_client() {
    let _ = Command::new("boinccmd")
        .args([
            "--host",
            &var("PYMW_BOINC_CLIENT"),
            "--passwd",
            &var("PYMW_BOINC_CLIENT_PASSWD"),
            "--project",
            &env().url,
            "update",
        ])
        .output();
}

fn remote_master(poll: Duration) -> Master {
    let e = env();
    let mut config = BoincConfig::remote(&e.url, &e.authenticator, APP);
    config.poll = Some(poll);
    Master::start_with(
        Box::new(BoincBackend::new(config)),
        MasterConfig {
            max_retries: 0,
            ..pymw_conformance::quiet()
        },
    )
    .expect("start a remote master")
}

/// Batches of the submitter made since `since` that hold jobs: (id,
/// state). (A `submit_batch` that failed may leave an empty batch behind.)
fn batches_since(since: u64) -> Result<Vec<(u64, u32)>, String> {
    Ok(sql(&format!(
        "SELECT id, state FROM batch WHERE user_id = {} AND create_time >= {since} \
         AND EXISTS (SELECT 1 FROM workunit w WHERE w.batch = batch.id)",
        env().submitter
    ))?
    .iter()
    .filter_map(|r| Some((r.first()?.parse().ok()?, r.get(1)?.parse().ok()?)))
    .collect())
}

fn now() -> u64 {
    sql("SELECT UNIX_TIMESTAMP()")
        .ok()
        .and_then(|rows| rows.first()?.first()?.parse().ok())
        .unwrap_or(0)
}

fn values_come_back() -> CaseResult {
    let since = now();
    // Polled every 30 s, the master fetches the outputs well after the
    // assimilator has seen the jobs (about 20 s after submission), and
    // after the ~2 s in which file_deleter would have deleted them had the
    // assimilator not held them.
    let master = remote_master(Duration::from_secs(30));
    kick_client();
    let t = Instant::now();
    let values: Vec<u64> = master
        .map(tasks::square::task(), 0..4u64)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("a task failed: {e}"))?;
    eprintln!(
        "  4 squares through submit_batch/query_batch/get_output: {:.1?}",
        t.elapsed()
    );
    ensure!(values == [0, 1, 4, 9], "values {values:?}");
    let batches = batches_since(since)?;
    ensure!(batches.len() == 1, "batches {batches:?}");
    let batch = batches[0].0;
    // Every job ran once: a job whose output was deleted before the fetch
    // would have been submitted again (in another batch).
    let wus = sql(&format!(
        "SELECT COUNT(*) FROM workunit WHERE batch = {batch}"
    ))?;
    ensure!(wus[0][0] == "4", "work units of batch {batch}: {wus:?}");
    // They ran the stripped binary, downloaded gzip-compressed.
    let gz = sql(&format!(
        "SELECT COUNT(*) FROM result r JOIN workunit w ON r.workunitid = w.id \
         JOIN app_version av ON av.id = r.app_version_id \
         WHERE w.batch = {batch} AND r.outcome = 1 AND av.xml_doc LIKE '%<gzipped_url>%'"
    ))?;
    ensure!(
        gz[0][0] == "4",
        "results run by a gzip-served app version: {gz:?}"
    );
    drop(master);
    // Retired at the end, and then the held outputs are released (by the
    // next assimilation, boinc-install, or boinc-reap).
    wait_until("the batch to be retired", Duration::from_secs(30), || {
        batches_since(since).is_ok_and(|b| b.iter().all(|&(_, s)| s == 4))
    })?;
    let held = format!(
        "SELECT COUNT(*) FROM result r JOIN workunit w ON r.workunitid = w.id \
         WHERE w.batch = {batch} AND r.file_delete_state = {}",
        HELD
    );
    let before = sql(&held)?;
    ensure!(
        before[0][0] == "4",
        "outputs held by the assimilator before the release: {before:?}"
    );
    reap_as_project_user(&[])?;
    let after = sql(&held)?;
    ensure!(
        after[0][0] == "0",
        "outputs still held after the release: {after:?}"
    );
    Ok(())
}

/// Kicks the client every 10 s while alive: after each compute error it
/// would otherwise wait minutes before asking for work again.
struct Kicker(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Kicker {
    fn start() -> Kicker {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                kick_client();
                std::thread::sleep(Duration::from_secs(10));
            }
        });
        Kicker(stop)
    }
}

impl Drop for Kicker {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn task_error_comes_back() -> CaseResult {
    let master = remote_master(Duration::from_secs(1));
    let _kicker = Kicker::start();
    let t = Instant::now();
    let result = master.submit(tasks::checked_div::task(), (1, 0)).wait();
    eprintln!("  task error back: {:.1?}", t.elapsed());
    match result {
        Err(TaskError::Failed {
            failure: pymw::Failure::TaskError { message },
            ..
        }) => ensure!(message == "division by zero", "message {message:?}"),
        other => return Err(format!("expected a task error, got {other:?}")),
    }
    Ok(())
}

fn cancel_aborts_the_jobs() -> CaseResult {
    let since = now();
    let master = remote_master(Duration::from_secs(1));
    let handles: Vec<_> = (0..2)
        .map(|_| master.submit(tasks::sleep_ms::task(), 60_000))
        .collect();
    // The two submits may travel as one batch or as two.
    let jobs = |condition: &str| {
        format!(
            "SELECT COUNT(*) FROM workunit w JOIN batch b ON w.batch = b.id \
             WHERE b.user_id = {} AND b.create_time >= {since}{condition}",
            env().submitter
        )
    };
    let (submitted, cancelled) = (jobs(""), jobs(" AND w.error_mask & 16 <> 0"));
    wait_until("both jobs to be submitted", Duration::from_secs(30), || {
        sql(&submitted).is_ok_and(|r| r[0][0] == "2")
    })?;
    for h in &handles {
        h.cancel();
    }
    wait_until(
        "abort_jobs to cancel both jobs",
        Duration::from_secs(30),
        || sql(&cancelled).is_ok_and(|r| r[0][0] == "2"),
    )?;
    for h in handles {
        match h.wait() {
            Err(TaskError::Cancelled { .. }) => {}
            other => return Err(format!("a cancelled task gave {other:?}")),
        }
    }
    drop(master);
    kick_client();
    Ok(())
}

fn batches_are_retired() -> CaseResult {
    let batches = batches_since(env().started)?;
    ensure!(!batches.is_empty(), "no batch since the start");
    wait_until(
        "every batch of the run to be retired",
        Duration::from_secs(30),
        || batches_since(env().started).is_ok_and(|b| b.iter().all(|&(_, s)| s == 4)),
    )
    .map_err(|e| format!("{e}: {:?}", batches_since(env().started)))
}

/// `BIN __pymw boinc-reap --boinc-project DIR ARGS` as the project's user.
fn reap_as_project_user(args: &[&str]) -> CaseResult {
    let e = env();
    let out = as_project_user(&mut Command::new("runuser"), None)
        .args(["__pymw", "boinc-reap", "--boinc-project"])
        .arg(&e.project)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    ensure!(
        out.status.success(),
        "boinc-reap: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// `runuser -u USER -- env ... THIS_BINARY`, as a child master of `role`.
fn as_project_user<'c>(command: &'c mut Command, role: Option<&str>) -> &'c mut Command {
    let e = env();
    // The umask stays 022: new directories of the download hierarchy must
    // still be writable by the web server's group (remote submission).
    command
        .args(["-u", &e.project_user, "--", "env"])
        .arg(format!("PYMW_BOINC_PROJECT={}", e.project.display()));
    if let Some(role) = role {
        command.arg(format!("{ROLE_ENV}={role}"));
    }
    command
        .arg(std::env::current_exe().expect("this binary"))
        .current_dir(&e.project)
}

/// The child's side: a project-host master of [`APP`].
fn project_host_child(role: &str) {
    let project = std::env::var("PYMW_BOINC_PROJECT").expect("PYMW_BOINC_PROJECT");
    let backend = BoincBackend::new(BoincConfig::project_host(project, APP));
    let master = Master::start_with(Box::new(backend), pymw_conformance::quiet())
        .expect("start a project-host master");
    if role == "hold" {
        let _handles: Vec<_> = (0..2)
            .map(|_| master.submit(tasks::sleep_ms::task(), 60_000))
            .collect();
        std::thread::sleep(Duration::from_secs(600));
    }
    drop(master);
}

/// The run directories under `pymw_runs/` with their markers.
fn runs() -> Vec<(String, Marker)> {
    let spool = env().project.join("pymw_runs");
    let Ok(entries) = std::fs::read_dir(spool) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let marker = Marker::read(&e.path())?;
            Some((e.file_name().to_str()?.to_owned(), marker))
        })
        .collect()
}

fn run_wus(run: &str, condition: &str) -> Result<usize, String> {
    let rows = sql(&format!(
        "SELECT COUNT(*) FROM workunit WHERE name LIKE 'pymw\\_{run}\\_%' AND {condition}"
    ))?;
    rows[0][0].parse().map_err(|e| format!("{e}"))
}

/// Starts a `hold` child and waits for its two work units: (child, run,
/// marker).
fn held_master() -> Result<(std::process::Child, String, Marker), String> {
    let before: Vec<String> = runs().into_iter().map(|(r, _)| r).collect();
    let mut command = Command::new("runuser");
    as_project_user(&mut command, Some("hold"));
    let child = command
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut found = None;
    wait_until(
        "the child's run and its 2 work units",
        Duration::from_secs(60),
        || {
            found = runs().into_iter().find(|(r, _)| !before.contains(r));
            found
                .as_ref()
                .is_some_and(|(run, _)| run_wus(run, "1").is_ok_and(|n| n == 2))
        },
    )?;
    let (run, marker) = found.expect("found");
    ensure!(marker.watcher != 0, "no watcher in the marker {marker:?}");
    Ok((child, run, marker))
}

fn kill(pid: u32, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

fn killed_master_is_reaped_by_the_next() -> CaseResult {
    let (mut child, run, marker) = held_master()?;
    // The watcher goes first, so that only the next master can clean up.
    kill(marker.watcher, libc::SIGKILL);
    kill(marker.pid, libc::SIGKILL);
    let _ = child.wait();
    let dir = env().project.join("pymw_runs").join(&run);
    ensure!(
        dir.exists(),
        "the killed master's directory is already gone"
    );
    ensure!(
        run_wus(&run, "error_mask & 16 = 0")? == 2,
        "work units cancelled before the next master started"
    );
    let t = Instant::now();
    let mut next = Command::new("runuser");
    as_project_user(&mut next, Some("noop"));
    let status = next.status().map_err(|e| e.to_string())?;
    ensure!(status.success(), "the next master: {status}");
    eprintln!("  next master start and end: {:.1?}", t.elapsed());
    ensure!(!dir.exists(), "{} was not reaped", dir.display());
    let cancelled = run_wus(&run, "error_mask & 16 <> 0 AND transition_time > 0")?;
    ensure!(cancelled == 2, "{cancelled} of 2 work units cancelled");
    Ok(())
}

fn interrupted_master_cancels_its_work() -> CaseResult {
    let (mut child, run, marker) = held_master()?;
    kill(marker.pid, libc::SIGINT);
    let _ = child.wait();
    let dir = env().project.join("pymw_runs").join(&run);
    wait_until(
        "the watcher to cancel the work units and remove the directory",
        Duration::from_secs(30),
        || !dir.exists() && run_wus(&run, "error_mask & 16 <> 0").is_ok_and(|n| n == 2),
    )
}

/// Sets or clears group write on `download/` and every directory under it.
fn download_group_write(on: bool) -> CaseResult {
    let status = Command::new("find")
        .arg(env().project.join("download"))
        .args([
            "-type",
            "d",
            "-exec",
            "chmod",
            if on { "g+w" } else { "g-w" },
            "{}",
            "+",
        ])
        .status()
        .map_err(|e| e.to_string())?;
    ensure!(status.success(), "find -exec chmod: {status}");
    Ok(())
}

fn unwritable_download_is_a_configuration_error() -> CaseResult {
    download_group_write(false)?;
    let result = std::panic::catch_unwind(|| {
        let master = remote_master(Duration::from_secs(1));
        // An input no earlier job had: its file must be written.
        let x = u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
                % 1_000_000_000,
        )
        .unwrap_or(7);
        master.submit(tasks::square::task(), x).wait()
    });
    download_group_write(true)?;
    let message = format!("{:?}", result.map_err(|_| "the case panicked".to_owned())?);
    ensure!(
        message.contains("can't write to file")
            && message.contains("umask 002")
            && message.contains("download/"),
        "not reported as the configuration error with its fix: {message}"
    );
    Ok(())
}

fn app_version_is_stripped_and_gzipped() -> CaseResult {
    let app_dir = env().project.join("apps").join(APP);
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    for version in std::fs::read_dir(&app_dir)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        let Ok(files) = std::fs::read_dir(version.path().join("x86_64-pc-linux-gnu")) else {
            continue;
        };
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            if name.starts_with(APP) {
                let modified = file
                    .metadata()
                    .and_then(|m| m.modified())
                    .map_err(|e| e.to_string())?;
                if newest.as_ref().is_none_or(|(t, _)| modified > *t) {
                    newest = Some((modified, file.path()));
                }
            }
        }
    }
    let (_, installed) = newest.ok_or("no installed app version")?;
    let size = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.len())
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let exe = size(&std::env::current_exe().map_err(|e| e.to_string())?)?;
    let stripped = size(&installed)?;
    let name = installed
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let download = env().project.join("download");
    let gz = std::fs::read_dir(&download)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|d| d.path().join(format!("{name}.gz")))
        .chain([download.join(format!("{name}.gz"))])
        .find(|p| p.is_file())
        .ok_or(format!("no {name}.gz in download/"))?;
    let gzipped = size(&gz)?;
    eprintln!(
        "  this binary {exe} bytes; installed (stripped) {stripped}; served gzipped {gzipped}"
    );
    ensure!(
        stripped < exe && gzipped < stripped,
        "sizes {exe} / {stripped} / {gzipped}"
    );
    Ok(())
}
