//! The overhead benchmark (PyMW's `null_test.py`): tasks that do nothing but
//! take `--kb` KB in and give `--kb` KB back (the input with every byte
//! inverted), so the time measured is the framework's: encoding, transfer,
//! scheduling. Prints tasks/s and MB/s (in + out); every output is checked.
//!
//! ```text
//! cargo run -p pymw-examples --bin null_test
//! cargo run -p pymw-examples --bin null_test -- --tasks 10000 --kb 0
//! cargo run -p pymw-examples --release --bin null_test -- --tasks 100 --kb 10000
//! ```

use clap::Parser;

/// Gives back `data` with every byte inverted: as much out as in, and an
/// answer the master can check.
#[pymw::task]
fn invert(data: Vec<u8>) -> Vec<u8> {
    data.into_iter().map(|b| !b).collect()
}

/// The `bytes` input bytes of task `index`, from its own random stream.
fn input(index: u64, bytes: usize) -> Vec<u8> {
    let mut rng = pymw_examples::SplitMix64::new(index);
    let mut data = Vec::with_capacity(bytes + 8);
    while data.len() < bytes {
        data.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    data.truncate(bytes);
    data
}

#[derive(Parser)]
#[command(about = "Measure the per-task overhead and throughput")]
struct Cli {
    #[command(flatten)]
    pymw: pymw::Args,
    /// Number of tasks.
    #[arg(long, default_value_t = 1000)]
    tasks: u64,
    /// KB (1024 bytes) in and KB out per task.
    #[arg(long, default_value_t = 4)]
    kb: usize,
}

#[pymw::main]
fn main() -> anyhow::Result<()> {
    pymw_examples::init_logging();
    let cli = Cli::parse();
    let bytes = cli.kb * 1024;
    let master = cli.pymw.start_blocking()?;
    let started = std::time::Instant::now();
    let inputs = (0..cli.tasks).map(|i| input(i, bytes));
    let mut wrong = 0u64;
    for (index, output) in master.map(invert::task(), inputs).enumerate() {
        let output = output?;
        let expected = input(index as u64, bytes);
        if output.len() != bytes || output.iter().zip(&expected).any(|(o, i)| *o != !*i) {
            wrong += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let megabytes = 2.0 * (cli.tasks as f64) * (bytes as f64) / 1e6;
    let verdict = if wrong == 0 {
        "all outputs OK".to_string()
    } else {
        format!("{wrong} outputs WRONG")
    };
    println!(
        "null_test: {} tasks of {} KB on the {} backend in {elapsed:.2}s: {:.0} tasks/s, {:.1} MB/s in + out, {verdict}",
        cli.tasks,
        cli.kb,
        master.backend_name(),
        cli.tasks as f64 / elapsed,
        megabytes / elapsed,
    );
    anyhow::ensure!(wrong == 0, "{wrong} of {} outputs are wrong", cli.tasks);
    Ok(())
}
