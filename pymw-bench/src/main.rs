//! `pymw-bench`: how much pymw costs, measured against peers in the same run.
//!
//! ```text
//! cargo run --release -p pymw-bench -- [--quick]
//! cargo run --release -p pymw-bench -- store [--quick]   # only the run store's figures
//! cargo run --release -p pymw-bench -- failures [--quick]   # only failing vs succeeding tiny tasks
//! cargo run --release -p pymw-bench -- condor     # needs an HTCondor pool (testbeds/condor)
//! ```
//!
//! Each figure is printed next to its peer and as a ratio:
//! - tiny tasks through the local backend (2 workers) vs one process spawned
//!   per task (what PyMW's generic interface does) vs rayon in one process
//!   (the ceiling);
//! - 10 ms CPU-bound tasks: parallel efficiency against the same work run
//!   serially in this process;
//! - 1 MB inputs and outputs: bytes per second through the workers against a
//!   plain in-process copy of the same bytes;
//! - a map over 1,000,000 tiny inputs: the master's peak RSS (bounded memory);
//! - tiny tasks that all fail (`Err`) against the same tasks succeeding,
//!   alternating rounds (see the `failures` module; target: failing /
//!   succeeding >= 0.50);
//! - the run store (see the `store` module): 1,000,000 tiny tasks with the
//!   store as the master's journal vs without (target: on/off >= 0.50), then
//!   a resume of that finished run by a new master, against the run's first
//!   life (target: under 10 s; no task may run), and the master's peak RSS
//!   during the resume.
//!
//! `--quick` runs a tenth of each (100,000 tasks for the store's figures).
//! `store` runs only the run store's figures. `condor` runs tiny tasks
//! through `--backend condor` against the same tasks as one hand-written
//! `condor_submit` cluster (see the `condor` module).

mod condor;
mod failures;
mod store;

use clap::Parser;
use pymw::blocking::Master;
use pymw::local::{LocalBackend, LocalConfig};
use std::time::{Duration, Instant};

/// The tiny task: as little work as a task can do.
#[pymw::task]
fn add_one(x: u64) -> u64 {
    x.wrapping_add(1)
}

/// Burns `micros` microseconds of this thread's CPU time; returns a checksum
/// so the work cannot be optimised away. Bounded by CPU time rather than by
/// an iteration count, so that it is the same work wherever it runs.
#[pymw::task]
fn spin(micros: u64) -> u64 {
    spin_work(micros)
}

fn spin_work(micros: u64) -> u64 {
    let end = thread_cpu_ns() + micros * 1000;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut i = 0u64;
    loop {
        for _ in 0..1000 {
            x = x.rotate_left(5) ^ i.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            i += 1;
        }
        if thread_cpu_ns() >= end {
            return std::hint::black_box(x);
        }
    }
}

fn thread_cpu_ns() -> u64 {
    // SAFETY: clock_gettime writes into the zeroed struct we pass.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
        ts
    };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Echoes its bytes, changed, so both directions carry the full payload.
#[pymw::task]
fn flip(mut bytes: pymw::Bytes) -> pymw::Bytes {
    for b in bytes.iter_mut().step_by(4096) {
        *b = !*b;
    }
    bytes
}

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Smaller runs (for CI smoke checks); the figures are noisier.
    #[arg(long, global = true)]
    quick: bool,
    /// Only the tiny-task throughput (for profiling).
    #[arg(long)]
    only_tiny: bool,
    /// Worker processes.
    #[arg(long, default_value_t = 2, global = true)]
    workers: usize,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Tiny tasks through `--backend condor` vs one raw `condor_submit` cluster (needs a pool)
    Condor(condor::CondorBench),
    /// Only the run store's figures: tiny tasks with the store on vs off, and a resume
    Store(store::StoreBench),
    /// Only tiny tasks that all fail vs the same tasks succeeding
    Failures(failures::FailuresBench),
}

fn master(workers: usize) -> anyhow::Result<Master> {
    let config = pymw::MasterConfig {
        progress: false,
        ..pymw::MasterConfig::default()
    };
    Ok(Master::start_with(
        Box::new(LocalBackend::new(LocalConfig::default().workers(workers))),
        config,
    )?)
}

fn rate(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

fn peak_rss_kib() -> u64 {
    pymw::core::sys_usage().1
}

#[pymw::main]
fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Condor(opts)) = &cli.command {
        return condor::run(opts);
    }
    let scale = if cli.quick { 10 } else { 1 };
    println!(
        "pymw-bench: {} workers, {} cores",
        cli.workers,
        std::thread::available_parallelism()?.get()
    );
    if let Some(Command::Store(opts)) = &cli.command {
        return store::run(opts, cli.quick, cli.workers);
    }
    if let Some(Command::Failures(opts)) = &cli.command {
        return failures::run(opts, cli.quick, cli.workers);
    }

    // 0. A million tiny inputs: the master's memory stays bounded.
    let small = self::master(cli.workers)?;
    let _ = small.map(add_one::task(), 0..10_000u64).collect_values()?;
    let before = peak_rss_kib();
    let n = 1_000_000 / scale as u64;
    let mut count = 0u64;
    for value in small.map(add_one::task(), 0..n) {
        value?;
        count += 1;
    }
    anyhow::ensure!(count == n, "missing results");
    let after = peak_rss_kib();
    println!("\nmap over {n} tiny inputs:");
    println!(
        "  master peak RSS             {:>10.1} MiB (was {:.1} MiB before; {:.1} bytes per task if it grew with the map)",
        after as f64 / 1024.0,
        before as f64 / 1024.0,
        (after.saturating_sub(before) * 1024) as f64 / n as f64
    );
    drop(small);

    // 1. Tiny tasks.
    let master = master(cli.workers)?;

    // Warm up: workers started, windows grown.
    let _ = master
        .map(add_one::task(), 0..100_000u64)
        .collect_values()?;
    let n = 2_000_000 / scale as u64;
    let t0 = Instant::now();
    let mut sum = 0u64;
    for value in master.map(add_one::task(), 0..n) {
        sum = sum.wrapping_add(value?);
    }
    let pymw_rate = rate(n, t0.elapsed());
    anyhow::ensure!(sum == n * (n + 1) / 2, "wrong sum");
    if cli.only_tiny {
        println!("pymw local: {pymw_rate:.0} tasks/s");
        return Ok(());
    }

    let spawn_n = 300 / scale as u64;
    let spawn_rate = process_per_task(spawn_n)?;

    let rayon_n = 20_000_000 / scale as u64;
    let t0 = Instant::now();
    let rayon_sum: u64 = {
        use rayon::prelude::*;
        (0..rayon_n)
            .into_par_iter()
            .map(|x| std::hint::black_box(x).wrapping_add(1))
            .sum()
    };
    let rayon_rate = rate(rayon_n, t0.elapsed());
    anyhow::ensure!(rayon_sum == rayon_n * (rayon_n + 1) / 2, "wrong rayon sum");
    println!("\ntiny tasks (x + 1):");
    println!(
        "  pymw local, {} workers      {:>14.0} tasks/s  ({n} tasks)",
        cli.workers, pymw_rate
    );
    println!(
        "  process per task            {:>14.0} tasks/s  ({spawn_n} tasks)  pymw is {:.0}x faster",
        spawn_rate,
        pymw_rate / spawn_rate
    );
    println!(
        "  rayon, one process          {:>14.0} tasks/s  ({rayon_n} tasks)  pymw reaches {:.3} of it",
        rayon_rate,
        pymw_rate / rayon_rate
    );
    println!(
        "  per-task overhead           {:>14.2} us",
        1e6 / pymw_rate * cli.workers as f64
    );

    // 2. 10 ms CPU-bound tasks.
    let tasks = 200 / scale as u64;
    let serial = std::time::Duration::from_millis(10) * tasks as u32;
    let t0 = Instant::now();
    let _ = master
        .map(spin::task(), std::iter::repeat_n(10_000u64, tasks as usize))
        .collect_values()?;
    let parallel = t0.elapsed();
    let efficiency = serial.as_secs_f64() / (parallel.as_secs_f64() * cli.workers as f64);
    println!("\n10 ms CPU-bound tasks ({tasks} tasks, each 10 ms of worker CPU time):");
    println!(
        "  the work, serially          {:>10.3} s",
        serial.as_secs_f64()
    );
    println!(
        "  pymw local, {} workers      {:>10.3} s   parallel efficiency {:.3}",
        cli.workers,
        parallel.as_secs_f64(),
        efficiency
    );

    // 3. 1 MB inputs and outputs.
    let mb = 1 << 20;
    let payload = pymw::Bytes((0..mb).map(|i| (i % 251) as u8).collect());
    let count = 400 / scale;
    let _ = master
        .map(flip::task(), std::iter::repeat_n(payload.clone(), 8))
        .collect_values()?;
    let t0 = Instant::now();
    for value in master
        .map(flip::task(), std::iter::repeat_n(payload.clone(), count))
        .window(8)
    {
        anyhow::ensure!(value?.len() == mb, "short output");
    }
    let elapsed = t0.elapsed();
    let bytes = (2 * mb * count) as f64;
    let t0 = Instant::now();
    for _ in 0..count {
        let copy = std::hint::black_box(payload.clone());
        std::hint::black_box(copy.clone());
    }
    let memcpy = t0.elapsed();
    println!("\n1 MB in, 1 MB out as pymw::Bytes ({count} tasks):");
    println!(
        "  pymw local                  {:>10.2} GB/s",
        bytes / elapsed.as_secs_f64() / 1e9
    );
    println!(
        "  in-process copies           {:>10.2} GB/s  pymw reaches {:.3} of it",
        bytes / memcpy.as_secs_f64() / 1e9,
        memcpy.as_secs_f64() / elapsed.as_secs_f64()
    );
    drop(master);

    // 4. Tiny tasks that fail.
    failures::run(&failures::FailuresBench::default(), cli.quick, cli.workers)?;

    // 5. The run store.
    store::run(&store::StoreBench::default(), cli.quick, cli.workers)
}

/// Tasks per second when each task is a new process of this binary reading
/// an input file and writing an output file (`__pymw worker`).
fn process_per_task(n: u64) -> anyhow::Result<f64> {
    let dir = std::env::temp_dir().join(format!("pymw-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let task = add_one::task();
    let exe = std::env::current_exe()?;
    let t0 = Instant::now();
    for i in 0..n {
        let input = dir.join(format!("in-{i}"));
        let output = dir.join(format!("out-{i}"));
        let bytes = task.input_envelope(&i);
        std::fs::write(&input, bytes)?;
        let status = std::process::Command::new(&exe)
            .args(["__pymw", "worker", "--task", task.name(), "--input"])
            .arg(&input)
            .arg("--output")
            .arg(&output)
            .status()?;
        anyhow::ensure!(status.success(), "worker failed: {status}");
        let out = std::fs::read(&output)?;
        let body = pymw::core::wire::decode_output(&out)?;
        anyhow::ensure!(
            matches!(body.outcome, pymw::core::wire::Outcome::Ok(_)),
            "task failed"
        );
    }
    let r = rate(n, t0.elapsed());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(r)
}

/// The median of `values` (sorted in place).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}
