//! Estimates pi by Monte Carlo over many tasks (PyMW's `monte_pi.py`).
//!
//! ```text
//! cargo run -p pymw-examples --bin monte_pi -- --tasks 100 --samples 1000000
//! cargo run -p pymw-examples --bin monte_pi -- --backend condor
//! ```

use clap::Parser;

/// Counts how many of `samples` random points in the unit square fall inside
/// the quarter circle, with a random stream seeded by `seed`.
#[pymw::task]
fn throw_darts(seed: u64, samples: u64) -> u64 {
    let mut rng = pymw_examples::SplitMix64::new(seed);
    let mut inside = 0;
    for _ in 0..samples {
        let x = rng.next_f64();
        let y = rng.next_f64();
        if x * x + y * y <= 1.0 {
            inside += 1;
        }
    }
    inside
}

#[derive(Parser)]
#[command(about = "Estimate pi with Monte Carlo tasks")]
struct Cli {
    #[command(flatten)]
    pymw: pymw::Args,
    /// Number of tasks.
    #[arg(long, default_value_t = 100)]
    tasks: u64,
    /// Random points per task.
    #[arg(long, default_value_t = 1_000_000)]
    samples: u64,
}

#[pymw::main]
fn main() -> anyhow::Result<()> {
    pymw_examples::init_logging();
    let cli = Cli::parse();
    let master = cli.pymw.start_blocking()?;
    let started = std::time::Instant::now();
    let inputs = (0..cli.tasks).map(|i| (i, cli.samples));
    let mut inside = 0u64;
    for result in master.map(throw_darts::task(), inputs) {
        inside += result?;
    }
    let total = cli.tasks * cli.samples;
    let estimate = 4.0 * inside as f64 / total as f64;
    println!(
        "pi ~= {estimate:.8} (error {:.2e}) from {total} samples in {} tasks on the {} backend, {:.2}s",
        (estimate - std::f64::consts::PI).abs(),
        cli.tasks,
        master.backend_name(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
