//! The run store's figures (issue 4): what recording a run costs, and what
//! resuming a finished one takes.
//!
//! ```text
//! cargo run --release -p pymw-bench -- store [--quick] [--tasks N] [--rounds R] [--runs-dir DIR]
//! ```
//!
//! (Also part of the default run.)
//!
//! - **Store on vs off.** The same N tiny tasks (`add_one`) through a fresh
//!   local master each run, without a journal, then with a new run of the run
//!   store as its journal (opened as `--run NAME` opens it:
//!   [`pymw::Args::journal`]), alternating for a few rounds. A run is timed
//!   from before the store is opened (off: before the master starts) to after
//!   the master is dropped and the store closed, so everything recorded is
//!   committed inside the time: a run is not done until its results are
//!   durable. After each stored run (not timed) the store is read back and
//!   must hold N done tasks. Target: on/off >= 0.50 (median of the rounds).
//! - **Resume.** The last stored run (N finished tasks) is resumed as a user
//!   restarting the program would: a new master, the same run name, the same
//!   task, the same inputs in the same order. Timed from before the store is
//!   opened to the last result in hand; the peer is that run's first life.
//!   The backend is wrapped to count the attempts handed to it, which must be
//!   zero (the benchmark fails otherwise), and the store must still hold N
//!   done tasks afterwards. Target: under 10 s for N = 1,000,000. The
//!   master's peak RSS during the resume is the kernel's high-water mark,
//!   reset just before (`/proc/self/clear_refs`).
//!
//! Each run also prints where the CPU time went: this process's, by thread
//! (the driver `pymw-master`, the store's writer `pymw-store`, the caller
//! `pymw-bench`, the local backend's I/O threads `pymw-local`), the
//! workers', and that of every other process on the machine (`/proc/stat`),
//! which tells a run disturbed by other work from a slow one. Recording
//! costs the master CPU time (the writer thread and the journaling in the
//! driver), so on a machine with no core to spare the ratio is mostly the
//! ratio of the master's CPU time.

use crate::{add_one, median};
use anyhow::{Context, ensure};
use pymw::blocking::Master;
use pymw::core::backend::{AttemptKey, Backend, Dispatch, EventSink};
use pymw::local::{LocalBackend, LocalConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Options of `pymw-bench store`.
#[derive(clap::Args, Debug)]
pub(crate) struct StoreBench {
    /// Tiny tasks per run [default: 1,000,000; 100,000 with --quick].
    #[arg(long)]
    tasks: Option<u64>,
    /// Rounds of store off, then store on.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Where the runs go (a fresh directory inside it, removed afterwards) [default: the temp dir].
    #[arg(long, value_name = "DIR")]
    runs_dir: Option<PathBuf>,
}

impl Default for StoreBench {
    /// What the default run of `pymw-bench` measures.
    fn default() -> Self {
        StoreBench {
            tasks: None,
            rounds: 5,
            runs_dir: None,
        }
    }
}

/// One timed run.
struct Run {
    elapsed: Duration,
    /// Opening the store (stored runs only).
    open: Duration,
    /// From the master's start to the last result.
    map: Duration,
    /// Dropping the master and closing the store.
    close: Duration,
    /// CPU time over the run.
    cpu: Usage,
    /// The CPU time of the threads alive at the last result, by kind.
    threads: Vec<(String, Duration)>,
}

impl Run {
    /// "master CPU 1.23 s (threads: pymw-master 0.80, ...); workers ...".
    fn cpu_line(&self) -> String {
        let threads: Vec<String> = self
            .threads
            .iter()
            .map(|(name, cpu)| format!("{name} {:.2}", cpu.as_secs_f64()))
            .collect();
        let mut line = format!(
            "master CPU {:.2} s (by thread, to the last result: {}); workers {:.2} s",
            self.cpu.master.as_secs_f64(),
            threads.join(", "),
            self.cpu.workers.as_secs_f64(),
        );
        if let Some(busy) = self.cpu.machine {
            let others = busy.saturating_sub(self.cpu.master + self.cpu.workers);
            line.push_str(&format!("; other processes {:.2} s", others.as_secs_f64()));
        }
        line
    }
}

/// CPU time so far: this process, its reaped children (the workers of
/// masters already dropped), and every CPU of the machine (`/proc/stat`).
#[derive(Clone, Copy)]
struct Usage {
    master: Duration,
    workers: Duration,
    machine: Option<Duration>,
}

impl Usage {
    fn now() -> Usage {
        // SAFETY: getrusage only writes into the zeroed struct we pass.
        let children = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
            usage
        };
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        Usage {
            master: pymw::core::sys_usage().0,
            workers: tv(children.ru_utime) + tv(children.ru_stime),
            machine: machine_busy(),
        }
    }

    fn since(self, before: Usage) -> Usage {
        Usage {
            master: self.master.saturating_sub(before.master),
            workers: self.workers.saturating_sub(before.workers),
            machine: self
                .machine
                .zip(before.machine)
                .map(|(now, then)| now.saturating_sub(then)),
        }
    }
}

/// Busy time of all the machine's CPUs (user, nice, system, irq, softirq,
/// steal) from the first line of `/proc/stat`.
fn machine_busy() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .map(|t| t.parse().unwrap_or(0))
        .collect();
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| ticks.get(i))
        .sum();
    Some(Duration::from_nanos(busy * 1_000_000_000 / clock_ticks()))
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64
}

pub(crate) fn run(opts: &StoreBench, quick: bool, workers: usize) -> anyhow::Result<()> {
    let n = opts
        .tasks
        .unwrap_or(if quick { 100_000 } else { 1_000_000 });
    let rounds = opts.rounds;
    ensure!(
        n > 0 && rounds > 0,
        "--tasks and --rounds must be at least 1"
    );
    let parent = opts.runs_dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let root = RunsDir::new(&parent)?;

    println!(
        "\ntiny tasks (x + 1), run store on vs off ({n} tasks per run, a fresh master with {workers} workers each, runs in {}):",
        root.0.display()
    );
    let mut ratios = Vec::new();
    let mut offs = Vec::new();
    let mut ons = Vec::new();
    let mut last = None;
    for round in 1..=rounds {
        let off = run_once(n, workers, None)?;
        println!(
            "  round {round}  store off          {:>14.0} tasks/s  ({:.3} s)",
            crate::rate(n, off.elapsed),
            off.elapsed.as_secs_f64()
        );
        println!("                                     {}", off.cpu_line());
        let name = format!("on-{round}");
        let on = run_once(n, workers, Some((&root.0, &name)))?;
        let done = stored_done(&root.0, &name)?;
        ensure!(
            done == n,
            "the store of run {name} holds {done} done tasks, not {n}"
        );
        let ratio = off.elapsed.as_secs_f64() / on.elapsed.as_secs_f64();
        println!(
            "  round {round}  store on           {:>14.0} tasks/s  ({:.3} s: open {:.1} ms, start + map {:.3} s, drop + close {:.1} ms)  on/off {ratio:.3}",
            crate::rate(n, on.elapsed),
            on.elapsed.as_secs_f64(),
            ms(on.open),
            on.map.as_secs_f64(),
            ms(on.close)
        );
        println!("                                     {}", on.cpu_line());
        ratios.push(ratio);
        offs.push(crate::rate(n, off.elapsed));
        ons.push(crate::rate(n, on.elapsed));
        // Only the last run is kept, for the resume.
        if let Some((previous, _)) = last.replace((name, on)) {
            std::fs::remove_dir_all(root.0.join(previous))?;
        }
    }
    let ratio = median(&mut ratios);
    println!(
        "  store off, median           {:>14.0} tasks/s",
        median(&mut offs)
    );
    println!(
        "  store on, median            {:>14.0} tasks/s  on/off {ratio:.3} (median of rounds; target >= 0.50: {})",
        median(&mut ons),
        if ratio >= 0.50 { "met" } else { "NOT met" }
    );

    let (name, original) = last.context("no stored run to resume")?;
    resume(&root.0, &name, n, workers, &original)
}

/// A fresh runs directory, removed when dropped.
struct RunsDir(PathBuf);

impl RunsDir {
    fn new(parent: &Path) -> anyhow::Result<RunsDir> {
        let dir = parent.join(format!("pymw-bench-store-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        Ok(RunsDir(dir))
    }
}

impl Drop for RunsDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The options a user's `--run NAME --runs-dir ROOT --workers N` gives.
fn args(root: &Path, name: &str, workers: usize) -> pymw::Args {
    let mut args = pymw::Args::default();
    args.run = Some(name.to_owned());
    args.runs_dir = root.to_path_buf();
    args.workers = Some(workers);
    args.no_progress = true;
    args
}

fn backend(workers: usize) -> LocalBackend {
    LocalBackend::new(LocalConfig::default().workers(workers))
}

/// `n` tiny tasks through a fresh master, with the run `name` of `root` as
/// its journal or without one; timed up to the store closed.
fn run_once(n: u64, workers: usize, store: Option<(&Path, &str)>) -> anyhow::Result<Run> {
    let threads_before = thread_cpu();
    let cpu_before = Usage::now();
    let t0 = Instant::now();
    let mut config = pymw::MasterConfig {
        progress: false,
        ..pymw::MasterConfig::default()
    };
    if let Some((root, name)) = store {
        config.journal = args(root, name, workers).journal("local")?;
        ensure!(config.journal.is_some(), "no journal for run {name}");
    }
    let journal = config.journal.clone();
    let open = t0.elapsed();
    let master = Master::start_with(Box::new(backend(workers)), config)?;
    let mut sum = 0u64;
    for value in master.map(add_one::task(), 0..n) {
        sum = sum.wrapping_add(value?);
    }
    let map = t0.elapsed() - open;
    let threads = thread_cpu_since(&threads_before);
    // Dropping the master stops the workers and closes the journal; closing
    // it again is a no-op then, and makes sure everything is committed.
    drop(master);
    if let Some(journal) = journal {
        journal
            .0
            .close()
            .map_err(|e| anyhow::anyhow!("closing the run store: {e}"))?;
    }
    let elapsed = t0.elapsed();
    let cpu = Usage::now().since(cpu_before);
    ensure!(sum == n * (n + 1) / 2, "wrong sum");
    Ok(Run {
        elapsed,
        open,
        map,
        close: elapsed - open - map,
        cpu,
        threads,
    })
}

/// Done tasks in the (closed) store of run `name`.
fn stored_done(root: &Path, name: &str) -> anyhow::Result<u64> {
    let reader = pymw_store::RunReader::open(root, name)?;
    let info = reader.info()?;
    ensure!(
        info.state == pymw_store::RunState::Finished,
        "run {name} is {}, not finished",
        info.state.as_str()
    );
    Ok(reader.counts()?.done)
}

/// Resumes the finished run `name` of `n` tasks with a new master, as a
/// restarted program would; no task may run.
fn resume(root: &Path, name: &str, n: u64, workers: usize, original: &Run) -> anyhow::Result<()> {
    let dispatched = Arc::new(AtomicU64::new(0));
    let rss_reset = reset_peak_rss();
    let rss_start = status_kib("VmRSS:");

    let threads_before = thread_cpu();
    let cpu_before = Usage::now();
    let t0 = Instant::now();
    let args = args(root, name, workers);
    let mut config = args.config();
    config.journal = args.journal("local")?;
    let journal = config.journal.clone().context("no journal")?;
    let open = t0.elapsed();
    let master = Master::start_with(
        Box::new(Counting {
            inner: backend(workers),
            dispatched: dispatched.clone(),
        }),
        config,
    )?;
    let started = t0.elapsed();
    let mut first = None;
    let mut sum = 0u64;
    let mut count = 0u64;
    for value in master.map(add_one::task(), 0..n) {
        sum = sum.wrapping_add(value?);
        count += 1;
        if first.is_none() {
            first = Some(t0.elapsed());
        }
    }
    let elapsed = t0.elapsed();
    let peak = if rss_reset {
        status_kib("VmHWM:")
    } else {
        None
    };
    let threads = thread_cpu_since(&threads_before);
    let status = master.status();
    drop(master);
    journal
        .0
        .close()
        .map_err(|e| anyhow::anyhow!("closing the run store: {e}"))?;
    let closed = t0.elapsed();
    let usage = Run {
        elapsed: closed,
        open,
        map: elapsed - open,
        close: closed - elapsed,
        cpu: Usage::now().since(cpu_before),
        threads,
    };

    let ran = dispatched.load(Ordering::Relaxed);
    ensure!(
        ran == 0,
        "the resumed run handed {ran} attempts to the workers: finished tasks ran again"
    );
    ensure!(count == n, "the resumed run gave {count} results, not {n}");
    ensure!(sum == n * (n + 1) / 2, "the resumed run gave a wrong sum");
    let done = stored_done(root, name)?;
    ensure!(
        done == n,
        "after the resume the store holds {done} done tasks, not {n}"
    );
    let sessions = pymw_store::RunReader::open(root, name)?.info()?.sessions;
    ensure!(sessions == 2, "the run has {sessions} sessions, not 2");

    let secs = elapsed.as_secs_f64();
    let target = if n == 1_000_000 {
        format!(
            "target < 10 s: {}",
            if secs < 10.0 { "met" } else { "NOT met" }
        )
    } else {
        format!(
            "target < 10 s is for 1000000 tasks: {:.2} s per million here",
            secs * 1e6 / n as f64
        )
    };
    println!("\nresume of {n} finished tasks (a new master, the same run name, inputs and order):");
    println!(
        "  the original run            {:>10.3} s   (store on, its last round; the store is {:.1} MiB)",
        original.elapsed.as_secs_f64(),
        pymw_store::dir_size(&root.join(name)) as f64 / (1 << 20) as f64
    );
    println!(
        "  resume, to the last result  {:>10.3} s   resume/original {:.3} ({target})",
        secs,
        secs / original.elapsed.as_secs_f64(),
    );
    println!(
        "    open the store {:.1} ms; start the master (loads the finished tasks) {:.3} s; first result {:.3} s; drop + close {:.1} ms",
        ms(open),
        (started - open).as_secs_f64(),
        first.unwrap_or_default().as_secs_f64(),
        ms(usage.close)
    );
    println!("    {}", usage.cpu_line());
    println!(
        "    attempts handed to the workers: {ran}; master status: {} done, {} failed; the store: {done} done, {sessions} sessions",
        status.done, status.failed
    );
    match (peak, rss_start) {
        (Some(peak), Some(start)) => println!(
            "  master peak RSS during it   {:>10.1} MiB (RSS {:.1} MiB before; {:.1} bytes per finished task)",
            peak as f64 / 1024.0,
            start as f64 / 1024.0,
            (peak.saturating_sub(start) * 1024) as f64 / n as f64
        ),
        _ => println!(
            "  master peak RSS, whole process {:>7.1} MiB (the high-water mark could not be reset)",
            crate::peak_rss_kib() as f64 / 1024.0
        ),
    }
    Ok(())
}

/// CPU time (user + sys) of each live thread of this process: tid → (kind,
/// time), the kind being the thread's name up to its first digit or space
/// (`pymw-local-1-stderr` → `pymw-local`).
fn thread_cpu() -> std::collections::HashMap<u64, (String, Duration)> {
    let ticks = clock_ticks();
    let mut out = std::collections::HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<u64>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "tid (comm) state ppid ...": utime and stime are fields 14 and 15.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        let (Some(utime), Some(stime)) = (tick(11), tick(12)) else {
            continue;
        };
        let kind = comm
            .split(|c: char| c.is_ascii_digit() || c == ' ')
            .next()
            .unwrap_or(comm)
            .trim_end_matches('-');
        let cpu = Duration::from_nanos((utime + stime) * 1_000_000_000 / ticks);
        out.insert(tid, (kind.to_owned(), cpu));
    }
    out
}

/// The CPU time each kind of thread used since `before`, most first.
fn thread_cpu_since(
    before: &std::collections::HashMap<u64, (String, Duration)>,
) -> Vec<(String, Duration)> {
    let mut kinds: Vec<(String, Duration)> = Vec::new();
    for (tid, (kind, cpu)) in thread_cpu() {
        let used = cpu.saturating_sub(before.get(&tid).map_or(Duration::ZERO, |b| b.1));
        match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, total)) => *total += used,
            None => kinds.push((kind, used)),
        }
    }
    kinds.retain(|(_, cpu)| !cpu.is_zero());
    kinds.sort_by_key(|(_, cpu)| std::cmp::Reverse(*cpu));
    kinds
}

/// Resets the kernel's high-water mark of this process's RSS (`VmHWM`).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A `kB` field of `/proc/self/status`.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// A backend that counts the attempts the master hands it.
struct Counting {
    inner: LocalBackend,
    dispatched: Arc<AtomicU64>,
}

impl Backend for Counting {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn start(&mut self, events: EventSink) -> Result<(), pymw::BackendError> {
        self.inner.start(events)
    }
    fn submit(&mut self, batch: Vec<Dispatch>) -> Result<(), pymw::BackendError> {
        self.dispatched
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.inner.submit(batch)
    }
    fn cancel(&mut self, keys: &[AttemptKey]) {
        self.inner.cancel(keys);
    }
    fn capacity_hint(&self) -> usize {
        self.inner.capacity_hint()
    }
    fn shutdown(&mut self) {
        self.inner.shutdown();
    }
}
