//! Tiny tasks that all fail (`Err`), against the same tasks succeeding, in
//! the same run (issue 9, section 5: a failure must not stall its worker or
//! the master).
//!
//! ```text
//! cargo run --release -p pymw-bench -- failures [--quick] [--tasks N] [--rounds R]
//! ```
//!
//! One master (local backend, `--workers` workers) runs N tasks that
//! succeed, then N that fail, alternating for a few rounds. The same task
//! runs both ways (`fail_if(x, fail)`); a failing one returns `Err("no")`
//! and writes nothing to stderr. Every result is checked. Target: failing
//! / succeeding >= 0.50 (median of the rounds).

use crate::median;
use anyhow::ensure;
use std::time::Instant;

/// `x + 1`, or `Err` when `fail`.
#[pymw::task]
fn fail_if(x: u64, fail: bool) -> Result<u64, String> {
    if fail {
        Err("no".to_owned())
    } else {
        Ok(x.wrapping_add(1))
    }
}

/// Options of `pymw-bench failures`.
#[derive(clap::Args, Debug)]
pub(crate) struct FailuresBench {
    /// Tasks per round and outcome (default 200,000; 20,000 with --quick).
    #[arg(long)]
    tasks: Option<u64>,
    /// Rounds of (succeeding, failing).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

impl Default for FailuresBench {
    fn default() -> Self {
        FailuresBench {
            tasks: None,
            rounds: 5,
        }
    }
}

/// Runs `n` tasks that all succeed or all fail; returns tasks per second.
fn round(master: &pymw::blocking::Master, n: u64, fail: bool) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut checked = 0u64;
    for (i, result) in master
        .map(fail_if::task(), (0..n).map(|x| (x, fail)))
        .enumerate()
    {
        match (fail, result) {
            (false, Ok(value)) => ensure!(value == i as u64 + 1, "task {i} gave {value}"),
            (true, Err(pymw::TaskError::Failed { .. })) => {}
            (_, other) => anyhow::bail!("task {i} (fail: {fail}) gave {other:?}"),
        }
        checked += 1;
    }
    ensure!(checked == n, "{checked} results for {n} tasks");
    Ok(crate::rate(n, started.elapsed()))
}

pub(crate) fn run(opts: &FailuresBench, quick: bool, workers: usize) -> anyhow::Result<()> {
    let n = opts.tasks.unwrap_or(if quick { 20_000 } else { 200_000 });
    ensure!(
        n > 0 && opts.rounds > 0,
        "--tasks and --rounds must be at least 1"
    );
    let config = pymw::MasterConfig {
        progress: false,
        max_retries: 0,
        ..pymw::MasterConfig::default()
    };
    let master = pymw::blocking::Master::start_with(
        Box::new(pymw::local::LocalBackend::new(
            pymw::local::LocalConfig::default().workers(workers),
        )),
        config,
    )?;
    // Warm up: workers started, windows grown.
    round(&master, n / 10, false)?;
    round(&master, n / 10, true)?;
    println!(
        "\ntiny tasks that fail (Err) vs the same tasks succeeding ({n} tasks per round, {workers} workers):"
    );
    let (mut oks, mut fails, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for r in 1..=opts.rounds {
        let ok = round(&master, n, false)?;
        println!("  round {r}  succeeding         {ok:>14.0} tasks/s");
        let failing = round(&master, n, true)?;
        let ratio = failing / ok;
        println!(
            "  round {r}  failing            {failing:>14.0} tasks/s  failing/succeeding {ratio:.3}"
        );
        oks.push(ok);
        fails.push(failing);
        ratios.push(ratio);
    }
    let ratio = median(&mut ratios);
    println!(
        "  succeeding, median          {:>14.0} tasks/s",
        median(&mut oks)
    );
    println!(
        "  failing, median             {:>14.0} tasks/s  failing/succeeding {ratio:.3} (median of rounds; target >= 0.50: {})",
        median(&mut fails),
        if ratio >= 0.50 { "met" } else { "NOT met" }
    );
    Ok(())
}
