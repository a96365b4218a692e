//! The run store's crash test (issue 4, item 6): a master that dies, or whose
//! disk fills up or turns read-only, loses nothing it finished and runs
//! nothing twice.
//!
//! - `killed_master_resumes_exactly_once`: a 1,000-task local run whose
//!   master is SIGKILLed six times (once while it creates the store, once
//!   at a random moment of a restart, four times at random counts of
//!   finished tasks) and restarted each time with the same `--run`. At the
//!   end every task has exactly one correct result, no task the store held
//!   as finished ran again in a later life, and the store is intact after
//!   every kill (`PRAGMA integrity_check`, every task and value file
//!   readable; a store killed while being created holds nothing and is
//!   created again by the next master).
//! - `disk_full_stops_with_a_clear_error`: the run store's file system fills
//!   up mid-run; the master stops with an error that names the problem and
//!   the fix, and once there is room again the same run resumes without
//!   running anything the store had kept.
//! - `read_only_store_stops_before_running`: the store's file system is
//!   read-only when a run resumes; the master refuses before any task runs,
//!   with an error naming the fix, and resumes once writable.
//!
//! Executions are counted through a side channel the test owns (a ledger
//! file that every task appends to), never through the store under test.
//! The two file-system cases mount a tmpfs, so they need root: a plain
//! `cargo test --workspace` leaves them out (reported as ignored, like
//! libtest's `#[ignore]`); the CI test command runs them with
//! `-- --include-ignored`, and without root they fail, saying so.
//!
//! `harness = false`: this binary is also its own worker and, with
//! `PYMW_CRASH_ROLE=master`, its own child master, so `main` must call
//! `pymw::init()` before anything else. Filter cases by name with
//! `cargo test -p pymw-conformance --test crash -- NAME`; replay a run of
//! kills with `PYMW_CRASH_SEED=<seed printed by the case>`.

use clap::Parser;
use pymw_store::{RunReader, RunState, StoreError, TaskState};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Set to `master` in a child copy of this binary: it runs a master (see
/// [`MasterCli`]) instead of the cases.
const ROLE_ENV: &str = "PYMW_CRASH_ROLE";
/// The ledger file every task execution appends to; the child master sets
/// it and its workers inherit it.
const LEDGER_ENV: &str = "PYMW_CRASH_LEDGER";
/// Which life of the run (0 first) a worker belongs to, for the ledger.
const LIFE_ENV: &str = "PYMW_CRASH_LIFE";
/// Replays the kill points of an earlier run.
const SEED_ENV: &str = "PYMW_CRASH_SEED";

/// Tasks of the crash run.
const CRASH_TASKS: u64 = 1000;
/// Lives killed before the one that runs to the end.
const KILLS: usize = 6;
/// Longest a life may take before the test calls it hung.
const LIFE_LIMIT: Duration = Duration::from_secs(60);
/// How often the parent looks at the store while it waits for a kill point.
const POLL: Duration = Duration::from_millis(4);

fn main() {
    pymw::init();
    if std::env::var(ROLE_ENV).as_deref() == Ok("master") {
        std::process::exit(child_master());
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let include_ignored = args
        .iter()
        .any(|a| a == "--include-ignored" || a == "--ignored");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    // (name, case, needs root): cases that mount a tmpfs are left out of a
    // plain `cargo test --workspace`, like libtest's #[ignore], and run by
    // the CI test command with --include-ignored (or by name), where they
    // fail without root rather than skip.
    let cases: [(&str, Case, bool); 3] = [
        (
            "killed_master_resumes_exactly_once",
            killed_master_resumes_exactly_once,
            false,
        ),
        (
            "disk_full_stops_with_a_clear_error",
            disk_full_stops_with_a_clear_error,
            true,
        ),
        (
            "read_only_store_stops_before_running",
            read_only_store_stops_before_running,
            true,
        ),
    ];
    let named = |name: &str| filters.iter().any(|f| name.contains(f.as_str()));
    let mut ignored = 0;
    let selected: Vec<(&str, Case)> = cases
        .iter()
        .filter(|(name, _, root)| {
            let wanted = filters.is_empty() || named(name);
            let run = wanted && (!root || include_ignored || named(name));
            if wanted && !run {
                println!("test {name} ... ignored (mounts a tmpfs: needs root; run with -- --include-ignored)");
                ignored += 1;
            }
            run
        })
        .map(|(name, case, _)| (*name, *case))
        .collect();
    println!("\nrunning {} tests", selected.len());
    let started = Instant::now();
    let mut failed = Vec::new();
    for &(name, case) in &selected {
        let t0 = Instant::now();
        let result =
            std::panic::catch_unwind(case).unwrap_or_else(|_| Err("the case panicked".to_owned()));
        let elapsed = t0.elapsed().as_secs_f64();
        match result {
            Ok(figures) => println!("test {name} ... ok ({elapsed:.2}s): {figures}"),
            Err(message) => {
                println!("test {name} ... FAILED ({elapsed:.2}s)");
                failed.push((name, message));
            }
        }
    }
    for (name, message) in &failed {
        println!("\n---- {name} ----\n{message}");
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; {ignored} ignored; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failed.len(),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    std::process::exit(i32::from(!failed.is_empty()));
}

/// A case: `Ok` with its figures, or `Err` with what went wrong.
type Case = fn() -> Result<String, String>;

// ---------------------------------------------------------------------------
// The tasks, and what they must return.

/// One task of the crash run: its position and how long it takes, so that a
/// life lasts long enough to be killed at a chosen point.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SquareInput {
    position: u64,
    sleep_us: u64,
}

fn square_input(position: u64) -> SquareInput {
    SquareInput {
        position,
        // 2-4 ms: a whole run is a couple of seconds on two workers.
        sleep_us: 2000 + (position % 3) * 1000,
    }
}

fn expected_square(position: u64) -> u64 {
    position * position + 1
}

#[pymw::task]
fn crash_square(input: SquareInput) -> u64 {
    ledger_note('S', input.position);
    std::thread::sleep(Duration::from_micros(input.sleep_us));
    ledger_note('E', input.position);
    expected_square(input.position)
}

/// A value of 48,000 bytes (kept inside the database) or 80,000 (in a file
/// of its own, past the store's 64 KiB inline limit): a disk fills up on
/// both paths.
fn expected_blob(position: u64) -> Vec<u8> {
    let len = if position.is_multiple_of(2) {
        48_000
    } else {
        80_000
    };
    (0..len)
        .map(|i: u64| (position.wrapping_mul(31).wrapping_add(i * 7) % 251) as u8)
        .collect()
}

#[pymw::task]
fn crash_blob(position: u64) -> Vec<u8> {
    ledger_note('S', position);
    std::thread::sleep(Duration::from_millis(2));
    ledger_note('E', position);
    expected_blob(position)
}

/// Appends "KIND POSITION LIFE PID" to the ledger: `S` when a task starts,
/// `E` when it is about to return. One `write` on an `O_APPEND` file, so
/// lines of concurrent workers never interleave.
fn ledger_note(kind: char, position: u64) {
    let Ok(path) = std::env::var(LEDGER_ENV) else {
        return;
    };
    let life = std::env::var(LIFE_ENV).unwrap_or_default();
    let line = format!("{kind} {position} {life} {}\n", std::process::id());
    let written = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .and_then(|mut file| file.write(line.as_bytes()));
    assert_eq!(
        written.ok(),
        Some(line.len()),
        "appending to the ledger {path}"
    );
}

// ---------------------------------------------------------------------------
// The child master: the program a user would write, started with `--run`.

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Kind {
    /// `crash_square` over `--tasks` inputs.
    Square,
    /// `crash_blob` over `--tasks` inputs.
    Blob,
}

/// The child master's command line: pymw's own options, as a user's program
/// flattens them, plus what to run.
#[derive(Debug, clap::Parser)]
struct MasterCli {
    #[command(flatten)]
    pymw: pymw::Args,
    /// How many tasks to map over.
    #[arg(long)]
    tasks: u64,
    /// Which task.
    #[arg(long, value_enum)]
    kind: Kind,
}

/// Maps the task over its inputs and prints "POSITION ok" (or "POSITION
/// wrong") per result, then "finished"; on the first error, "error: ..."
/// and exit status 2.
fn child_master() -> i32 {
    let cli = MasterCli::parse();
    let master = match cli.pymw.start_blocking() {
        Ok(master) => master,
        Err(error) => {
            println!("error: {error}");
            return 2;
        }
    };
    let code = match cli.kind {
        Kind::Square => print_results(
            master.map(crash_square::task(), (0..cli.tasks).map(square_input)),
            |position, value| *value == expected_square(position),
        ),
        Kind::Blob => print_results(
            master.map(crash_blob::task(), 0..cli.tasks),
            |position, value| *value == expected_blob(position),
        ),
    };
    // Dropping the master closes the store; what it says on failure goes
    // to stderr, where the parent looks for it too.
    drop(master);
    code
}

fn print_results<A, R, I>(
    mut results: pymw::blocking::Map<A, R, I>,
    correct: impl Fn(u64, &R) -> bool,
) -> i32
where
    A: Serialize,
    R: serde::de::DeserializeOwned,
    I: Iterator<Item = A>,
{
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut code = 0;
    while let Some((position, result)) = results.next_indexed() {
        let line = match result {
            Ok(value) if correct(position, &value) => format!("{position} ok"),
            Ok(_) => format!("{position} wrong"),
            Err(error) => {
                code = 2;
                format!("error: {error}")
            }
        };
        let _ = writeln!(out, "{line}");
        if code != 0 {
            break;
        }
    }
    if code == 0 {
        let _ = writeln!(out, "finished");
    }
    let _ = out.flush();
    code
}

// ---------------------------------------------------------------------------
// The parent's side: lives of the run, the ledger, the store.

/// A case's files: the runs directory (possibly a mount point), the ledger
/// and each life's output, all removed at the end.
struct Scratch {
    dir: tempfile::TempDir,
    runs: PathBuf,
    ledger: PathBuf,
}

impl Scratch {
    fn new() -> Result<Scratch, String> {
        let dir = tempfile::Builder::new()
            .prefix("pymw-crash-")
            .tempdir()
            .map_err(|e| format!("creating a scratch directory: {e}"))?;
        let runs = dir.path().join("runs");
        std::fs::create_dir(&runs).map_err(|e| format!("creating {}: {e}", runs.display()))?;
        let ledger = dir.path().join("ledger");
        Ok(Scratch { runs, ledger, dir })
    }

    fn output(&self, life: usize, stream: &str) -> PathBuf {
        self.dir.path().join(format!("life-{life}.{stream}"))
    }
}

/// A child master, started as `life` of run `run`.
struct Life {
    child: Child,
    number: usize,
    stdout: PathBuf,
    stderr: PathBuf,
}

fn start_life(
    scratch: &Scratch,
    run: &str,
    life: usize,
    kind: &str,
    tasks: u64,
) -> Result<Life, String> {
    let stdout = scratch.output(life, "out");
    let stderr = scratch.output(life, "err");
    let file = |path: &Path| {
        std::fs::File::create(path).map_err(|e| format!("creating {}: {e}", path.display()))
    };
    let exe = std::env::current_exe().map_err(|e| format!("finding this test binary: {e}"))?;
    let child = Command::new(exe)
        .args(["--backend", "local", "--workers", "2", "--no-progress"])
        .args(["--run", run, "--runs-dir"])
        .arg(&scratch.runs)
        .args(["--kind", kind, "--tasks", &tasks.to_string()])
        .env(ROLE_ENV, "master")
        .env(LEDGER_ENV, &scratch.ledger)
        .env(LIFE_ENV, life.to_string())
        .env_remove("PYMW_RUN")
        .env_remove("PYMW_RUNS_DIR")
        .stdin(Stdio::null())
        .stdout(file(&stdout)?)
        .stderr(file(&stderr)?)
        .spawn()
        .map_err(|e| format!("starting life {life}'s master: {e}"))?;
    Ok(Life {
        child,
        number: life,
        stdout,
        stderr,
    })
}

impl Life {
    /// What the master printed, for failure messages.
    fn output(&self) -> String {
        let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
        let stdout = read(&self.stdout);
        let tail: Vec<&str> = stdout.lines().rev().take(5).collect();
        format!(
            "life {} stdout (last lines): {:?}\nstderr:\n{}",
            self.number,
            tail.into_iter().rev().collect::<Vec<_>>(),
            read(&self.stderr)
        )
    }

    fn exited(&mut self) -> Result<Option<ExitStatus>, String> {
        self.child
            .try_wait()
            .map_err(|e| format!("waiting for life {}: {e}", self.number))
    }

    fn kill(&mut self) -> Result<(), String> {
        // SAFETY: signalling our own child, which has not been reaped yet.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGKILL);
        }
        self.child
            .wait()
            .map(drop)
            .map_err(|e| format!("reaping life {}: {e}", self.number))
    }

    /// Waits for the master to end by itself.
    fn wait(&mut self) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + LIFE_LIMIT;
        loop {
            if let Some(status) = self.exited()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                self.kill()?;
                return Err(format!(
                    "life {} did not end within {LIFE_LIMIT:?}\n{}",
                    self.number,
                    self.output()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Checks that `what` stopped the master with an error line (`error: `
    /// on stdout) that says each of `needles`; returns that line.
    fn expect_refusal(&mut self, what: &str, needles: &[&str]) -> Result<String, String> {
        let status = self.wait()?;
        let stdout = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        let error = stdout
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_default()
            .to_owned();
        ensure(!status.success() && !error.is_empty(), || {
            format!(
                "{what} did not stop the master ({status})\n{}",
                self.output()
            )
        })?;
        for needle in needles {
            ensure(error.contains(needle), || {
                format!(
                    "the error does not say {needle:?}: {error}\n{}",
                    self.output()
                )
            })?;
        }
        Ok(error)
    }

    /// Checks that the master ran every one of `tasks` to a correct result,
    /// each position once.
    fn expect_all_correct(&mut self, tasks: u64) -> Result<(), String> {
        let status = self.wait()?;
        let stdout = std::fs::read_to_string(&self.stdout)
            .map_err(|e| format!("reading life {}'s results: {e}", self.number))?;
        if !status.success() || stdout.lines().last() != Some("finished") {
            return Err(format!(
                "life {} ({status}) did not finish the run\n{}",
                self.number,
                self.output()
            ));
        }
        let mut seen = BTreeMap::new();
        for line in stdout.lines().filter(|l| *l != "finished") {
            let (position, verdict) = line
                .split_once(' ')
                .and_then(|(p, v)| Some((p.parse::<u64>().ok()?, v)))
                .ok_or_else(|| format!("life {}: unexpected line {line:?}", self.number))?;
            if verdict != "ok" {
                return Err(format!("result of task {position}: {verdict}"));
            }
            *seen.entry(position).or_insert(0u32) += 1;
        }
        let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        let missing: Vec<u64> = (0..tasks).filter(|p| !seen.contains_key(p)).collect();
        if !repeated.is_empty() || !missing.is_empty() || seen.len() as u64 != tasks {
            return Err(format!(
                "life {}: {} results for {tasks} tasks; repeated (position, times): {repeated:?}; missing: {missing:?}",
                self.number,
                seen.len()
            ));
        }
        Ok(())
    }
}

/// One line of the ledger.
#[derive(Debug, Clone, Copy)]
struct Execution {
    /// `true` for the end of an execution, `false` for its start.
    end: bool,
    position: u64,
    life: usize,
    pid: u32,
}

fn read_ledger(path: &Path) -> Result<Vec<Execution>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("reading the ledger: {e}")),
    };
    let parse = |line: &str| -> Option<Execution> {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields[..] {
            [kind @ ("S" | "E"), position, life, pid] => Some(Execution {
                end: kind == "E",
                position: position.parse().ok()?,
                life: life.parse().ok()?,
                pid: pid.parse().ok()?,
            }),
            _ => None,
        }
    };
    text.lines()
        .map(|line| parse(line).ok_or_else(|| format!("a garbled ledger line: {line:?}")))
        .collect()
}

/// What the store says about a run, read the way `pymw status` reads it.
#[derive(Debug)]
struct StoreView {
    /// Positions of the tasks it holds as done.
    done: BTreeSet<u64>,
    /// Tasks it holds, in any state.
    tasks: u64,
    failed: u64,
    unfinished: u64,
    sessions: u64,
    state: RunState,
}

/// Reads the run's store and checks it is intact: SQLite's own integrity
/// check, every task readable (blocks decode), one task per position, and
/// every value file present at its recorded length. `None` when the run has
/// no store yet.
fn inspect_store(runs: &Path, run: &str) -> Result<Option<StoreView>, String> {
    let reader = match RunReader::open(runs, run) {
        Ok(reader) => reader,
        // Killed while it created the store: it holds nothing, and the next
        // master creates it again.
        Err(StoreError::NotFound { .. } | StoreError::Unborn { .. }) => return Ok(None),
        Err(e) => return Err(format!("the store cannot be read: {e}")),
    };
    integrity_check(&reader.dir().join(pymw_store::DB_FILE))?;
    let mut done = BTreeSet::new();
    let mut positions = BTreeMap::new();
    let mut problems = Vec::new();
    reader
        .scan(|task, attempts| {
            *positions.entry(task.position).or_insert(0u32) += 1;
            if task.state == TaskState::Done {
                done.insert(task.position);
            }
            for attempt in attempts {
                if let (Some(file), Some(len)) = (&attempt.value_file, attempt.value_len) {
                    let on_disk = std::fs::metadata(reader.dir().join(file)).map(|m| m.len());
                    if on_disk.as_ref().ok() != Some(&len) {
                        problems.push(format!(
                            "task {}: value file {file} of {len} bytes: {on_disk:?}",
                            task.position
                        ));
                    }
                }
            }
        })
        .map_err(|e| format!("scanning the store: {e}"))?;
    let twice: Vec<_> = positions.iter().filter(|(_, n)| **n > 1).collect();
    if !twice.is_empty() {
        problems.push(format!(
            "positions held more than once (position, times): {twice:?}"
        ));
    }
    let counts = reader
        .counts()
        .map_err(|e| format!("counting the store's tasks: {e}"))?;
    if counts.done != done.len() as u64 {
        problems.push(format!(
            "counts say {} done, the scan finds {}",
            counts.done,
            done.len()
        ));
    }
    let info = reader
        .info()
        .map_err(|e| format!("reading the run's metadata: {e}"))?;
    if !problems.is_empty() {
        return Err(format!("the store is damaged: {}", problems.join("; ")));
    }
    Ok(Some(StoreView {
        done,
        tasks: positions.len() as u64,
        failed: counts.failed + counts.cancelled,
        unfinished: counts.queued + counts.running,
        sessions: info.sessions,
        state: info.state,
    }))
}

fn integrity_check(db: &Path) -> Result<(), String> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("opening {} for an integrity check: {e}", db.display()))?;
    let mut stmt = conn
        .prepare("PRAGMA integrity_check")
        .map_err(|e| format!("integrity check of {}: {e}", db.display()))?;
    let verdict = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
        .map_err(|e| format!("integrity check of {}: {e}", db.display()))?;
    if verdict != ["ok"] {
        return Err(format!("integrity check of {}: {verdict:?}", db.display()));
    }
    Ok(())
}

/// Waits for the workers of a killed life (the pids its ledger lines name)
/// to be gone: they die with their master.
fn workers_gone(ledger: &[Execution], life: usize) -> Result<(), String> {
    let pids: BTreeSet<u32> = ledger
        .iter()
        .filter(|e| e.life == life)
        .map(|e| e.pid)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|&p| pymw_conformance::process_alive(p))
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "workers of killed life {life} still alive: {left:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// xorshift64*: enough randomness for kill points, and replayable.
struct Rng(u64);

impl Rng {
    fn seeded() -> (Rng, u64) {
        let seed = std::env::var(SEED_ENV)
            .ok()
            .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
            .unwrap_or_else(|| {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                nanos ^ (u64::from(std::process::id()) << 32)
            })
            | 1;
        (Rng(seed), seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `low..=high`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// When a life is killed.
#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// As soon as the store's database file appears: while the master
    /// creates the store. A user's `kill -9` (or a crash) can land there as
    /// well as anywhere else; aiming at it makes the test see it every time.
    StoreCreated,
    /// This long after the master was started: while it reopens the store,
    /// loads what is finished and starts its workers, or early in the run.
    After(Duration),
    /// As soon as the store holds this many finished tasks, plus a random
    /// moment of up to one commit interval, so that kills land anywhere in
    /// the writer's cycle.
    AtDone(u64, Duration),
}

fn done_count(runs: &Path, run: &str) -> u64 {
    // Before the store exists, or while it is being created, nothing is done.
    RunReader::open(runs, run)
        .and_then(|reader| reader.counts())
        .map_or(0, |counts| counts.done)
}

/// Waits for the kill point, then kills the life. `Err` if the master ended
/// on its own first.
fn kill_at(life: &mut Life, point: KillPoint, runs: &Path, run: &str) -> Result<(), String> {
    let deadline = Instant::now() + LIFE_LIMIT;
    let started = Instant::now();
    let db = runs.join(run).join(pymw_store::DB_FILE);
    loop {
        if let Some(status) = life.exited()? {
            return Err(format!(
                "life {} ended ({status}) before its kill point {point:?}\n{}",
                life.number,
                life.output()
            ));
        }
        let (due, poll) = match point {
            // The file exists for a few milliseconds before the store is
            // usable: look often.
            KillPoint::StoreCreated => (db.exists(), Duration::from_micros(100)),
            KillPoint::After(delay) => (
                started.elapsed() >= delay,
                delay.saturating_sub(started.elapsed()).min(POLL),
            ),
            KillPoint::AtDone(threshold, _) => (done_count(runs, run) >= threshold, POLL),
        };
        if due {
            if let KillPoint::AtDone(_, extra) = point {
                std::thread::sleep(extra);
            }
            return life.kill();
        }
        if Instant::now() > deadline {
            life.kill()?;
            return Err(format!(
                "life {} never reached its kill point {point:?}\n{}",
                life.number,
                life.output()
            ));
        }
        std::thread::sleep(poll);
    }
}

// ---------------------------------------------------------------------------
// The cases.

fn killed_master_resumes_exactly_once() -> Result<String, String> {
    const RUN: &str = "crash";
    let started = Instant::now();
    let scratch = Scratch::new()?;
    let (mut rng, seed) = Rng::seeded();
    // What the store looked like after each kill.
    let mut done_after_kill: Vec<BTreeSet<u64>> = Vec::new();
    let mut kill_points = Vec::new();
    let mut sessions = Vec::new();
    // A store that cannot be read after a kill fails the case, but only
    // after the next life has shown whether the master itself copes.
    let mut damage: Vec<String> = Vec::new();
    let with_damage = |damage: &[String], error: String| {
        if damage.is_empty() {
            error
        } else {
            format!("{}\nthen: {error}", damage.join("\n"))
        }
    };
    for life in 0..KILLS {
        let done_before = done_after_kill.last().map_or(0, BTreeSet::len) as u64;
        // Life 0 dies while it creates the store, life 2 while it resumes
        // (in its first 100 ms); the others at random counts of finished
        // tasks, one in each slice of what is left, so that they land
        // mid-run.
        let point = match life {
            0 => KillPoint::StoreCreated,
            2 => KillPoint::After(Duration::from_millis(rng.between(0, 100))),
            _ => {
                // Slices end at 900: room to spare (some 150 ms of work)
                // before the run ends on its own between two looks at the
                // store, also on a busy machine.
                let left = (KILLS - life) as u64;
                let slice = (900 - done_before.min(850)) / left;
                KillPoint::AtDone(
                    rng.between(done_before + 1, done_before + slice.max(1)),
                    Duration::from_micros(rng.between(0, 10_000)),
                )
            }
        };
        let startup_kill = !matches!(point, KillPoint::AtDone(..));
        let mut master = start_life(&scratch, RUN, life, "square", CRASH_TASKS)?;
        kill_at(&mut master, point, &scratch.runs, RUN).map_err(|e| with_damage(&damage, e))?;
        let ledger = read_ledger(&scratch.ledger)?;
        workers_gone(&ledger, life)?;
        let previous_sessions = sessions.last().copied().unwrap_or(0);
        let view = match inspect_store(&scratch.runs, RUN) {
            Ok(Some(view)) => view,
            // Killed before it created the store.
            Ok(None) => {
                done_after_kill.push(BTreeSet::new());
                kill_points.push(0);
                sessions.push(previous_sessions);
                continue;
            }
            Err(error) => {
                damage.push(format!("after killing life {life} ({point:?}): {error}"));
                done_after_kill.push(done_after_kill.last().cloned().unwrap_or_default());
                kill_points.push(done_before);
                sessions.push(previous_sessions);
                continue;
            }
        };
        ensure(view.state == RunState::Interrupted, || {
            format!(
                "after killing life {life}, the run is {:?}, not interrupted (is its lock still held?)",
                view.state
            )
        })?;
        let before = done_after_kill.last().cloned().unwrap_or_default();
        let lost: Vec<u64> = before.difference(&view.done).copied().collect();
        ensure(lost.is_empty(), || {
            format!("life {life} lost tasks an earlier life had finished: {lost:?}")
        })?;
        ensure(
            view.sessions == previous_sessions + 1
                || (startup_kill && view.sessions == previous_sessions),
            || {
                format!(
                    "after life {life}, the store counts {} sessions; before it, {previous_sessions}",
                    view.sessions
                )
            },
        )?;
        kill_points.push(view.done.len() as u64);
        sessions.push(view.sessions);
        done_after_kill.push(view.done);
    }

    let last_life = KILLS;
    let mut master = start_life(&scratch, RUN, last_life, "square", CRASH_TASKS)?;
    master
        .expect_all_correct(CRASH_TASKS)
        .map_err(|e| with_damage(&damage, e))?;
    ensure(damage.is_empty(), || damage.join("\n"))?;
    let ledger = read_ledger(&scratch.ledger)?;
    let view = inspect_store(&scratch.runs, RUN)
        .map_err(|e| format!("after the last life: {e}"))?
        .ok_or("the run left no store")?;
    ensure(
        view.done.len() as u64 == CRASH_TASKS
            && view.tasks == CRASH_TASKS
            && view.failed == 0
            && view.unfinished == 0
            && view.state == RunState::Finished,
        || format!("at the end the store holds {view:?}"),
    )?;
    let opened = sessions.last().copied().unwrap_or(0) + 1;
    ensure(view.sessions == opened, || {
        format!(
            "the store counts {} sessions, expected {opened}",
            view.sessions
        )
    })?;

    // The heart of it: a task the store held as done after a kill never
    // started again in a later life.
    let mut reruns = Vec::new();
    for execution in ledger.iter().filter(|e| !e.end) {
        if let Some(killed) = (0..execution.life.min(KILLS))
            .find(|&k| done_after_kill[k].contains(&execution.position))
        {
            reruns.push((execution.position, killed, execution.life));
        }
    }
    ensure(reruns.is_empty(), || {
        format!(
            "tasks finished in the store ran again, as (position, finished by the kill of life, ran in life): {:?}",
            &reruns[..reruns.len().min(20)]
        )
    })?;
    // A task the store holds as done ran to its end in that life or before.
    let mut ended_by_life: BTreeMap<u64, usize> = BTreeMap::new();
    let mut ends_per_life_and_task: BTreeMap<(usize, u64), u32> = BTreeMap::new();
    for execution in ledger.iter().filter(|e| e.end) {
        let first = ended_by_life
            .entry(execution.position)
            .or_insert(execution.life);
        *first = (*first).min(execution.life);
        *ends_per_life_and_task
            .entry((execution.life, execution.position))
            .or_insert(0) += 1;
    }
    for (life, done) in done_after_kill.iter().enumerate() {
        let unexplained: Vec<u64> = done
            .iter()
            .copied()
            .filter(|p| ended_by_life.get(p).is_none_or(|&first| first > life))
            .collect();
        ensure(unexplained.is_empty(), || {
            format!(
                "after life {life} the store holds tasks as done that no worker finished: {unexplained:?}"
            )
        })?;
    }
    let never: Vec<u64> = (0..CRASH_TASKS)
        .filter(|p| !ended_by_life.contains_key(p))
        .collect();
    ensure(never.is_empty(), || {
        format!("tasks that never ran: {never:?}")
    })?;
    let twice_in_a_life: Vec<_> = ends_per_life_and_task
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|((life, position), n)| (*life, *position, *n))
        .collect();
    ensure(twice_in_a_life.is_empty(), || {
        format!(
            "tasks that ran to the end more than once in one life (life, position, times): {twice_in_a_life:?}"
        )
    })?;
    let mid_run = kill_points
        .iter()
        .filter(|&&d| d > 0 && d < CRASH_TASKS)
        .count();
    ensure(mid_run >= 2, || {
        format!("only {mid_run} kills landed mid-run (done counts {kill_points:?})")
    })?;

    // Work a kill threw away: ended in a worker of the killed life, not yet
    // committed, so run again later.
    let redone = ledger
        .iter()
        .filter(|e| e.end && e.life < KILLS && !done_after_kill[e.life].contains(&e.position))
        .count();
    let interrupted = ledger
        .iter()
        .filter(|e| !e.end)
        .count()
        .saturating_sub(ledger.iter().filter(|e| e.end).count());
    let ends_per_life: Vec<usize> = (0..=KILLS)
        .map(|life| ledger.iter().filter(|e| e.end && e.life == life).count())
        .collect();
    Ok(format!(
        "seed {seed:#x}; {KILLS} kills at done counts {kill_points:?}; executions per life {ends_per_life:?} \
         (total {}); finished in a worker but lost with their master, run again: {redone}; \
         cut off mid-task: {interrupted}; store: {} done, {} sessions, intact after every kill; {:.1}s",
        ends_per_life.iter().sum::<usize>(),
        view.done.len(),
        view.sessions,
        started.elapsed().as_secs_f64()
    ))
}

fn disk_full_stops_with_a_clear_error() -> Result<String, String> {
    const RUN: &str = "full";
    const TASKS: u64 = 120;
    let started = Instant::now();
    let scratch = Scratch::new()?;
    // 3 MiB hold some 50 of the 120 values (48 or 80 kB each).
    let mount = Tmpfs::mount(&scratch.runs, "3m")?;
    let mut master = start_life(&scratch, RUN, 0, "blob", TASKS)?;
    let error = master.expect_refusal(
        "a full disk",
        &["disk is full", "free some space", "same run name"],
    )?;
    let stderr = std::fs::read_to_string(&master.stderr).unwrap_or_default();
    mount.remount("size=64m")?;
    let kept = inspect_store(&scratch.runs, RUN)
        .map_err(|e| format!("after the disk filled up: {e}"))?
        .ok_or("the run left no store")?;
    ensure(
        !kept.done.is_empty() && (kept.done.len() as u64) < TASKS,
        || {
            format!(
                "the disk filled up after {} of {TASKS} tasks were kept: the case no longer fills it mid-run",
                kept.done.len()
            )
        },
    )?;

    let ledger = resume_to_the_end(
        &scratch,
        (RUN, 1, "blob", TASKS),
        |p| kept.done.contains(&p),
        "kept before the disk filled up",
    )?;
    let ran = |life| ledger.iter().filter(|e| e.end && e.life == life).count();
    let closing = stderr.lines().filter(|l| l.starts_with("pymw:")).count();
    Ok(format!(
        "{} of {TASKS} kept when the 3 MiB disk filled up, {} executions before it, {} after resuming, none of them kept ones; \
         error: {error:?}; {closing} more pymw line(s) on stderr; {:.1}s",
        kept.done.len(),
        ran(0),
        ran(1),
        started.elapsed().as_secs_f64()
    ))
}

fn read_only_store_stops_before_running() -> Result<String, String> {
    const RUN: &str = "readonly";
    const TASKS: u64 = 200;
    const FIRST: u64 = 100;
    let started = Instant::now();
    let scratch = Scratch::new()?;
    let mount = Tmpfs::mount(&scratch.runs, "16m")?;
    // Life 0 finishes the first half of the run.
    start_life(&scratch, RUN, 0, "square", FIRST)?.expect_all_correct(FIRST)?;
    mount.remount("ro")?;
    let error = start_life(&scratch, RUN, 1, "square", TASKS)?
        .expect_refusal("a read-only store", &["read-only", "mount read-write"])?;
    let ledger = read_ledger(&scratch.ledger)?;
    let ran = |ledger: &[Execution], life| ledger.iter().filter(|e| e.life == life).count();
    ensure(ran(&ledger, 1) == 0, || {
        format!(
            "{} task executions began although the store was read-only",
            ran(&ledger, 1)
        )
    })?;
    // Still readable, as `pymw status` would read it.
    let counts = RunReader::open(&scratch.runs, RUN)
        .and_then(|reader| reader.counts())
        .map_err(|e| format!("reading the read-only store: {e}"))?;
    ensure(counts.done == FIRST, || {
        format!("the read-only store shows {counts:?}")
    })?;

    mount.remount("rw")?;
    let ledger = resume_to_the_end(
        &scratch,
        (RUN, 2, "square", TASKS),
        |p| p < FIRST,
        "finished before the store turned read-only",
    )?;
    Ok(format!(
        "{FIRST} tasks kept; read-only: refused before any task ran: {error:?}; resumed read-write: {} executions, \
         none of the kept ones; {:.1}s",
        ledger.iter().filter(|e| e.end && e.life == 2).count(),
        started.elapsed().as_secs_f64()
    ))
}

/// Runs life `life` of `run` (task `task` over `tasks` inputs) to the end with
/// every result correct, and checks that no task `kept` by the store ran
/// again and that the store now holds every task done. Returns the ledger.
fn resume_to_the_end(
    scratch: &Scratch,
    (run, life, task, tasks): (&str, usize, &str, u64),
    kept: impl Fn(u64) -> bool,
    kept_how: &str,
) -> Result<Vec<Execution>, String> {
    start_life(scratch, run, life, task, tasks)?.expect_all_correct(tasks)?;
    let ledger = read_ledger(&scratch.ledger)?;
    let reruns: Vec<u64> = ledger
        .iter()
        .filter(|e| e.life == life && kept(e.position))
        .map(|e| e.position)
        .collect();
    ensure(reruns.is_empty(), || {
        format!("tasks {kept_how} ran again: {reruns:?}")
    })?;
    let view = inspect_store(&scratch.runs, run)?.ok_or("the run left no store")?;
    ensure(
        view.done.len() as u64 == tasks && view.failed == 0 && view.unfinished == 0,
        || format!("after resuming, the store holds {view:?}"),
    )?;
    Ok(ledger)
}

fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(message()) }
}

/// A tmpfs mounted over a directory, unmounted on drop: a file system the
/// test can fill up or make read-only. Needs root.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        // SAFETY: no arguments, no side effects.
        if unsafe { libc::geteuid() } != 0 {
            return Err(
                "this case needs root: it mounts a small tmpfs to fill up and to make read-only \
                 (run the tests as root, as CI does)"
                    .to_owned(),
            );
        }
        mount_command(
            &["-t", "tmpfs", "-o", &format!("size={size}"), "pymw-crash"],
            at,
        )?;
        Ok(Tmpfs(at.to_path_buf()))
    }

    fn remount(&self, options: &str) -> Result<(), String> {
        mount_command(&["-o", &format!("remount,{options}")], &self.0)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount_command(args: &[&str], at: &Path) -> Result<(), String> {
    let output = Command::new("mount")
        .args(args)
        .arg(at)
        .output()
        .map_err(|e| format!("running mount: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "mount {args:?} {} failed: {}",
            at.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(())
}
