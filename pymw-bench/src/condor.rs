//! `pymw-bench condor`: tiny tasks through `--backend condor` against the same
//! tasks as one hand-written `condor_submit` cluster, in one run on one pool.
//!
//! ```text
//! testbeds/condor/up.sh && eval "$(testbeds/condor/up.sh --print-env)"
//! cargo run --release -p pymw-bench -- condor [--tasks 500] [--rounds 3]
//! ```
//!
//! Each round runs the raw cluster, then pymw (raw, pymw, raw, pymw, ...),
//! after waiting until the pool is idle (no job queued, no dynamic slot left
//! claimed), so that both start from the same state.
//!
//! - **raw**: what a user writes by hand. The input envelopes `in.N` are
//!   written beforehand (not timed); then one `condor_submit` of `queue N`
//!   running this binary as `__pymw worker --task NAME --input in.$(Process)
//!   --output out.$(Process)`, with `should_transfer_files = YES`, explicit
//!   `transfer_input_files`/`transfer_output_files`, stdout/stderr per job and
//!   one event log, which this process reads (every 10 ms) until it holds N
//!   terminations. Makespan: just before `condor_submit` to the N-th `005`
//!   seen.
//! - **pymw**: a master on the HTCondor backend (started beforehand, not
//!   timed), `map` over the same N inputs. Makespan: just before `map` to the
//!   last result in hand. The master's CPU time is `getrusage` (user + sys)
//!   of this process over that span, minus the CPU time of the thread that
//!   watches the run's event log for the timeline below.
//!
//! Both sides transfer the binary with every job (pymw's default), or both
//! run it from the shared directory (`--shared-fs`).
//!
//! The timeline of each run (when the first job was queued, first ran, when
//! the last termination was seen) comes from following the event log from
//! this process every 10 ms: it shows where pymw spends time the raw
//! cluster does not (submit coalescing, log polling, result delivery).

use crate::{add_one, median};
use anyhow::{Context, bail, ensure};
use pymw::blocking::Master;
use pymw::condor::{CondorBackend, CondorConfig};
use pymw_condor::eventlog::{EventLogFollower, JobEventKind, JobExit};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Options of `pymw-bench condor`.
#[derive(clap::Args, Debug)]
pub(crate) struct CondorBench {
    /// Tiny tasks per run.
    #[arg(long, default_value_t = 500)]
    tasks: u64,
    /// Rounds; each runs the raw cluster, then pymw.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Where run directories go; must be seen by the pool at the same path [default: $PYMW_CONDOR_SHARED_DIR]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Run the binary from DIR on both sides instead of transferring it with every job.
    #[arg(long)]
    shared_fs: bool,
    /// Only the pymw runs, no raw cluster (for profiling the master).
    #[arg(long)]
    only_pymw: bool,
    /// Longest a run may take, in seconds, before the benchmark gives up.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
}

/// How often this process reads an event log (the raw waiter and the
/// timeline watcher of pymw's runs).
const WATCH_EVERY: Duration = Duration::from_millis(10);

/// One run, times from its start.
#[derive(Debug, Default, Clone)]
struct Run {
    makespan: Duration,
    /// `condor_submit` returned (raw only).
    submit_returned: Option<Duration>,
    /// The first `000` was seen in the event log.
    first_queued: Option<Duration>,
    /// The N-th `000` was seen.
    all_queued: Option<Duration>,
    /// The first `001` was seen.
    first_started: Option<Duration>,
    /// The N-th `005` was seen.
    last_terminated: Option<Duration>,
    /// The first result was in hand (pymw only).
    first_result: Option<Duration>,
    /// The master's CPU time over the run (pymw only).
    cpu: Option<Duration>,
    /// Clusters the run's jobs came in.
    clusters: usize,
    /// How long the pool took to become idle before the run.
    settle: Duration,
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{:.2}", d.as_secs_f64()))
}

pub(crate) fn run(opts: &CondorBench) -> anyhow::Result<()> {
    ensure!(
        opts.tasks > 0 && opts.rounds > 0,
        "--tasks and --rounds must be at least 1"
    );
    let base = match &opts.dir {
        Some(dir) => dir.clone(),
        None => std::env::var_os("PYMW_CONDOR_SHARED_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .context(
                "PYMW_CONDOR_SHARED_DIR is not set and no --dir was given: bring the testbed up with \
                 `testbeds/condor/up.sh && eval \"$(testbeds/condor/up.sh --print-env)\"`",
            )?,
    };
    let base = std::fs::canonicalize(&base)
        .with_context(|| format!("{} does not exist", base.display()))?;
    let slots = check_pool(&base)?;
    let exe = std::env::current_exe()?;
    let exe_mib = std::fs::metadata(&exe)?.len() as f64 / (1 << 20) as f64;
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let transfer = if opts.shared_fs {
        "binary run from the shared directory on both sides (--shared-fs), not transferred"
    } else {
        "binary transferred with every job on both sides (pymw's default)"
    };
    println!(
        "pymw-bench condor: {} tiny tasks (add_one) per run, {} round(s) of raw then pymw, {slots} slots, {} cores",
        opts.tasks,
        opts.rounds,
        std::thread::available_parallelism()?.get()
    );
    println!("  {transfer}; {profile} build, {exe_mib:.1} MiB");
    println!("  run directories under {}", base.display());

    let mut raws = Vec::new();
    let mut pymws = Vec::new();
    for round in 1..=opts.rounds {
        if opts.only_pymw {
            let idle = settle(&base)?;
            let mut pymw = pymw_run(opts, &base, round)?;
            pymw.settle = idle;
            print_run(round, "pymw --backend condor", &pymw, None);
            continue;
        }
        let idle = settle(&base)?;
        let mut raw = raw_run(opts, &base, &exe, round)?;
        raw.settle = idle;
        print_run(round, "raw condor_submit", &raw, None);
        let idle = settle(&base)?;
        let mut pymw = pymw_run(opts, &base, round)?;
        pymw.settle = idle;
        print_run(round, "pymw --backend condor", &pymw, Some(&raw));
        raws.push(raw);
        pymws.push(pymw);
    }

    if opts.only_pymw {
        return Ok(());
    }
    let mut ratios: Vec<f64> = raws
        .iter()
        .zip(&pymws)
        .map(|(r, p)| p.makespan.as_secs_f64() / r.makespan.as_secs_f64())
        .collect();
    let mut raw_s: Vec<f64> = raws.iter().map(|r| r.makespan.as_secs_f64()).collect();
    let mut pymw_s: Vec<f64> = pymws.iter().map(|r| r.makespan.as_secs_f64()).collect();
    let mut cpu_per_k: Vec<f64> = pymws
        .iter()
        .filter_map(|r| r.cpu)
        .map(|c| c.as_secs_f64() * 1000.0 / opts.tasks as f64)
        .collect();
    let all_cpu: Vec<String> = cpu_per_k.iter().map(|c| format!("{c:.3}")).collect();
    let ratio = median(&mut ratios);
    println!("\nsummary ({} rounds):", opts.rounds);
    println!(
        "  makespan, median             raw {:.2} s   pymw {:.2} s",
        median(&mut raw_s),
        median(&mut pymw_s)
    );
    println!(
        "  pymw/raw, median of rounds   {ratio:.3}   (target <= 1.05: {})",
        if ratio <= 1.05 { "met" } else { "NOT met" }
    );
    println!(
        "  master CPU per 1,000 tasks   {:.3} s (median; rounds: {} s)",
        median(&mut cpu_per_k),
        all_cpu.join(", ")
    );
    Ok(())
}

fn print_run(round: usize, what: &str, run: &Run, raw: Option<&Run>) {
    let mut line = format!(
        "  round {round}  {what:<22} {:>7.2} s",
        run.makespan.as_secs_f64()
    );
    if let Some(raw) = raw {
        line.push_str(&format!(
            "   pymw/raw {:.3}",
            run.makespan.as_secs_f64() / raw.makespan.as_secs_f64()
        ));
    }
    println!("{line}");
    let mut detail = format!(
        "             pool idle after {:.1} s; {} cluster(s);",
        run.settle.as_secs_f64(),
        run.clusters
    );
    if run.submit_returned.is_some() {
        detail.push_str(&format!(
            " condor_submit returned {} s;",
            secs(run.submit_returned)
        ));
    }
    detail.push_str(&format!(
        " 000 seen first {} s, all {} s; first 001 {} s; last 005 {} s",
        secs(run.first_queued),
        secs(run.all_queued),
        secs(run.first_started),
        secs(run.last_terminated)
    ));
    if run.first_result.is_some() {
        detail.push_str(&format!(
            "; first result {} s, last {:.2} s",
            secs(run.first_result),
            run.makespan.as_secs_f64()
        ));
    }
    if let Some(cpu) = run.cpu {
        detail.push_str(&format!("; master CPU {:.3} s", cpu.as_secs_f64()));
    }
    println!("{detail}");
}

/// Runs a `condor_*` tool in `dir` (the testbed's wrappers need a directory
/// the pool sees).
fn tool(dir: &Path, name: &str, args: &[&str]) -> anyhow::Result<std::process::Output> {
    Command::new(name)
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| {
            format!(
                "cannot run {name}: put the condor_* tools on PATH (pymw's testbed: \
                 `testbeds/condor/up.sh && eval \"$(testbeds/condor/up.sh --print-env)\"`)"
            )
        })
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    )
}

/// Fails unless the schedd answers and the pool advertises slots; returns
/// the CPUs the pool offers.
fn check_pool(dir: &Path) -> anyhow::Result<u64> {
    let hint =
        "is the pool up? `testbeds/condor/up.sh && eval \"$(testbeds/condor/up.sh --print-env)\"`";
    let out = tool(dir, "condor_q", &["-totals"])?;
    if !out.status.success() {
        bail!(
            "HTCondor pool not reachable: condor_q -totals failed ({}): {}; {hint}",
            out.status,
            text(&out)
        );
    }
    let out = tool(dir, "condor_status", &["-af", "TotalSlotCpus"])?;
    let cpus: u64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    if !out.status.success() || cpus == 0 {
        bail!(
            "HTCondor pool not reachable: condor_status shows no slots ({}): {}; {hint}",
            out.status,
            text(&out)
        );
    }
    Ok(cpus)
}

/// Waits until no job is queued and no dynamic slot is left, so that every
/// run starts from an idle pool (no claim to reuse). Says so if other users'
/// jobs keep the pool busy.
fn settle(dir: &Path) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(180);
    loop {
        let q = tool(dir, "condor_q", &["-allusers", "-af", "ClusterId"])?;
        ensure!(q.status.success(), "condor_q failed: {}", text(&q));
        let queued = String::from_utf8_lossy(&q.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count();
        let s = tool(dir, "condor_status", &["-af", "SlotType"])?;
        ensure!(s.status.success(), "condor_status failed: {}", text(&s));
        let dynamic = String::from_utf8_lossy(&s.stdout)
            .lines()
            .filter(|l| l.trim() == "Dynamic")
            .count();
        if queued == 0 && dynamic == 0 {
            return Ok(t0.elapsed());
        }
        if Instant::now() >= deadline {
            eprintln!(
                "pymw-bench: warning: the pool is not idle after {:.0} s ({queued} job(s) queued, {dynamic} dynamic slot(s)); \
                 someone else is using it and the figures will be noisy",
                t0.elapsed().as_secs_f64()
            );
            return Ok(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// What the event-log reader has seen so far, times from `t0`.
#[derive(Debug)]
struct Watch {
    t0: Instant,
    log: EventLogFollower,
    clusters: HashSet<u64>,
    terminated: HashSet<(u64, u64)>,
    first_queued: Option<Duration>,
    queued: u64,
    all_queued: Option<Duration>,
    first_started: Option<Duration>,
    last_terminated: Option<Duration>,
}

impl Watch {
    fn new(t0: Instant, log: PathBuf) -> Self {
        Watch {
            t0,
            log: EventLogFollower::new(log),
            clusters: HashSet::new(),
            terminated: HashSet::new(),
            first_queued: None,
            queued: 0,
            all_queued: None,
            first_started: None,
            last_terminated: None,
        }
    }

    /// Reads what was appended; fails on a hold, a removal or a job that did
    /// not exit 0.
    fn poll(&mut self, want: u64) -> anyhow::Result<()> {
        let events = self.log.poll().context("reading the event log")?;
        let now = self.t0.elapsed();
        for event in events {
            let job = (event.cluster, event.proc);
            self.clusters.insert(event.cluster);
            match &event.kind {
                JobEventKind::Submitted { .. } => {
                    self.first_queued.get_or_insert(now);
                    self.queued += 1;
                    if self.queued == want {
                        self.all_queued = Some(now);
                    }
                }
                JobEventKind::Executing { .. } => {
                    self.first_started.get_or_insert(now);
                }
                JobEventKind::Terminated { exit, .. } => {
                    ensure!(
                        matches!(exit, JobExit::Normal { exit_code: 0 }),
                        "job {}.{} ended with {exit:?}",
                        job.0,
                        job.1
                    );
                    self.terminated.insert(job);
                    if self.terminated.len() as u64 == want {
                        self.last_terminated = Some(now);
                    }
                }
                JobEventKind::Held { reason, code, .. } => {
                    bail!("job {}.{} held: {reason} (code {code:?})", job.0, job.1)
                }
                JobEventKind::Aborted { reason } => {
                    bail!("job {}.{} removed: {reason:?}", job.0, job.1)
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The raw cluster: one hand-written `condor_submit`, waited for on its
/// event log.
fn raw_run(opts: &CondorBench, base: &Path, exe: &Path, round: usize) -> anyhow::Result<Run> {
    let n = opts.tasks;
    let dir = base.join(format!("pymw-bench-raw-{}-{round}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir(&dir)?;
    // The jobs' owner (not root) writes the event log and the outputs here.
    set_mode(&dir, 0o777)?;
    let result = (|| {
        let binary = dir.join("pymw-bench");
        std::fs::copy(exe, &binary)?;
        set_mode(&binary, 0o755)?;
        for i in 0..n {
            std::fs::write(
                dir.join(format!("in.{i}")),
                add_one::task().input_envelope(&i),
            )?;
        }
        let log = dir.join("events.log");
        let task = add_one::task().name();
        let submit = format!(
            "universe                = vanilla\n\
             executable              = {exe}\n\
             transfer_executable     = {transfer}\n\
             arguments               = \"__pymw worker --task {task} --input in.$(Process) --output out.$(Process)\"\n\
             initialdir              = {dir}\n\
             should_transfer_files   = YES\n\
             when_to_transfer_output = ON_EXIT\n\
             transfer_input_files    = in.$(Process)\n\
             transfer_output_files   = out.$(Process)\n\
             output                  = stdout.$(Process)\n\
             error                   = stderr.$(Process)\n\
             log                     = {log}\n\
             request_cpus            = 1\n\
             queue {n}\n",
            exe = binary.display(),
            transfer = if opts.shared_fs { "False" } else { "True" },
            dir = dir.display(),
            log = log.display(),
        );
        let file = dir.join("raw.sub");
        std::fs::write(&file, submit)?;

        let t0 = Instant::now();
        let out = tool(&dir, "condor_submit", &["-terse", &file.to_string_lossy()])?;
        let submit_returned = t0.elapsed();
        ensure!(out.status.success(), "condor_submit failed: {}", text(&out));
        // `-terse` prints `CLUSTER.0 - CLUSTER.N`.
        let cluster = String::from_utf8_lossy(&out.stdout)
            .split('.')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        let mut watch = Watch::new(t0, log);
        let deadline = t0 + Duration::from_secs(opts.timeout);
        while watch.last_terminated.is_none() {
            if let Err(e) = watch.poll(n) {
                let _ = tool(&dir, "condor_rm", &[&cluster]);
                return Err(e);
            }
            if watch.last_terminated.is_some() {
                break;
            }
            if Instant::now() >= deadline {
                let _ = tool(&dir, "condor_rm", &[&cluster]);
                bail!(
                    "raw cluster: {} of {n} jobs ended after {} s",
                    watch.terminated.len(),
                    opts.timeout
                );
            }
            std::thread::sleep(WATCH_EVERY);
        }
        let makespan = t0.elapsed();
        // Not timed: the outputs are right.
        for i in 0..n {
            let bytes = std::fs::read(dir.join(format!("out.{i}")))?;
            let body = pymw::core::wire::decode_output(&bytes)?;
            let pymw::core::wire::Outcome::Ok(value) = body.outcome else {
                bail!("raw task {i} failed: {:?}", body.outcome);
            };
            let value: u64 = pymw::core::wire::decode_payload(value)?;
            ensure!(value == i + 1, "raw task {i} returned {value}");
        }
        Ok(Run {
            makespan,
            submit_returned: Some(submit_returned),
            first_queued: watch.first_queued,
            all_queued: watch.all_queued,
            first_started: watch.first_started,
            last_terminated: watch.last_terminated,
            clusters: watch.clusters.len(),
            ..Run::default()
        })
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The same tasks through a master on the HTCondor backend.
fn pymw_run(opts: &CondorBench, base: &Path, round: usize) -> anyhow::Result<Run> {
    let n = opts.tasks;
    let name = format!("pymw-bench-pymw-{}-{round}", std::process::id());
    let config = CondorConfig::new(base)
        .run_name(&name)
        .shared_filesystem(opts.shared_fs);
    let master = Master::start_with(
        Box::new(CondorBackend::new(config)),
        pymw::MasterConfig {
            progress: false,
            ..pymw::MasterConfig::default()
        },
    )
    .context("starting a master on the HTCondor backend")?;

    // Watches the run's event log for the timeline; its own CPU time is
    // taken off the master's.
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let watcher = {
        let stop = stop.clone();
        let log = base.join(&name).join("events.log");
        std::thread::spawn(move || {
            let mut watch = Watch::new(t0, log);
            let mut error = None;
            while !stop.load(Ordering::Relaxed) {
                if let Err(e) = watch.poll(n) {
                    error.get_or_insert(e);
                }
                std::thread::sleep(WATCH_EVERY);
            }
            let cpu = watcher_cpu();
            let _ = watch.poll(n);
            (watch, error, cpu)
        })
    };
    let cpu0 = pymw::core::sys_usage().0;
    let mut first_result = None;
    let mut count = 0u64;
    for (i, value) in master.map(add_one::task(), 0..n).enumerate() {
        let value = value?;
        first_result.get_or_insert_with(|| t0.elapsed());
        ensure!(value == i as u64 + 1, "pymw task {i} returned {value}");
        count += 1;
    }
    let makespan = t0.elapsed();
    let cpu1 = pymw::core::sys_usage().0;
    stop.store(true, Ordering::Relaxed);
    let (watch, error, watcher_cpu) = watcher.join().expect("watcher panicked");
    ensure!(count == n, "{count} results for {n} tasks");
    drop(master);
    if let Some(e) = error {
        eprintln!("pymw-bench: warning: the timeline watcher: {e:#}");
    }
    Ok(Run {
        makespan,
        first_queued: watch.first_queued,
        all_queued: watch.all_queued,
        first_started: watch.first_started,
        last_terminated: watch.last_terminated,
        first_result,
        cpu: Some((cpu1 - cpu0).saturating_sub(watcher_cpu)),
        clusters: watch.clusters.len(),
        ..Run::default()
    })
}

/// CPU time of the calling thread.
fn watcher_cpu() -> Duration {
    Duration::from_nanos(crate::thread_cpu_ns())
}
