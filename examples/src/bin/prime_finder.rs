//! A parameter sweep: counts the primes in `[start, end)` by splitting the
//! range into sub-ranges, one task each, and adding up the counts (PyMW's
//! `prime_finder.py`). The total is checked against pi(10^k) when the range
//! is `[0, 10^k)`, else against a sieve run in the master.
//!
//! ```text
//! cargo run -p pymw-examples --bin prime_finder
//! cargo run -p pymw-examples --bin prime_finder -- --end 10000000 --tasks 40
//! cargo run -p pymw-examples --bin prime_finder -- --backend local --workers 1
//! ```

use clap::Parser;

/// Counts the primes in `[start, end)` by trial division.
#[pymw::task]
fn count_primes(start: u64, end: u64) -> u64 {
    (start..end).filter(|&n| is_prime(n)).count() as u64
}

fn is_prime(n: u64) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n.is_multiple_of(2) || n.is_multiple_of(3) {
        return false;
    }
    let mut d = 5;
    while d * d <= n {
        if n.is_multiple_of(d) || n.is_multiple_of(d + 2) {
            return false;
        }
        d += 6;
    }
    true
}

/// pi(10^k) for k = 0..=10: the number of primes below 10^k.
const PI_OF_POWERS_OF_TEN: [u64; 11] = [
    0, 4, 25, 168, 1229, 9592, 78498, 664579, 5761455, 50847534, 455052511,
];

/// The expected count: known for `[0 or 1 or 2, 10^k)`, else sieved in the
/// master when `end` is small enough, else unknown.
fn expected(start: u64, end: u64) -> Option<u64> {
    if start <= 2 {
        let mut power = 1u64;
        for &count in &PI_OF_POWERS_OF_TEN {
            if power == end {
                return Some(count);
            }
            power = power.saturating_mul(10);
        }
    }
    if end > 100_000_000 {
        return None;
    }
    let end = end as usize;
    let mut composite = vec![false; end];
    let mut i = 2;
    while i * i < end {
        if !composite[i] {
            (i * i..end).step_by(i).for_each(|j| composite[j] = true);
        }
        i += 1;
    }
    Some(
        (start.max(2) as usize..end)
            .filter(|&n| !composite[n])
            .count() as u64,
    )
}

#[derive(Parser)]
#[command(about = "Count primes in a range with one task per sub-range")]
struct Cli {
    #[command(flatten)]
    pymw: pymw::Args,
    /// First number of the range.
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// One past the last number of the range.
    #[arg(long, default_value_t = 1_000_000)]
    end: u64,
    /// Number of tasks (sub-ranges).
    #[arg(long, default_value_t = 20)]
    tasks: u64,
}

#[pymw::main]
fn main() -> anyhow::Result<()> {
    pymw_examples::init_logging();
    let cli = Cli::parse();
    anyhow::ensure!(cli.start <= cli.end, "--start must not exceed --end");
    anyhow::ensure!(cli.tasks > 0, "--tasks must be at least 1");
    let master = cli.pymw.start_blocking()?;
    let started = std::time::Instant::now();
    // Sub-range i is [start + len*i/tasks, start + len*(i+1)/tasks): every
    // number in exactly one task, sizes differing by at most one.
    let len = cli.end - cli.start;
    let bound = |i: u64| cli.start + (len as u128 * i as u128 / cli.tasks as u128) as u64;
    let inputs = (0..cli.tasks).map(|i| (bound(i), bound(i + 1)));
    let mut total = 0u64;
    for count in master.map(count_primes::task(), inputs) {
        total += count?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (verdict, ok) = match expected(cli.start, cli.end) {
        Some(want) if want == total => (format!("OK, expected {want}"), true),
        Some(want) => (format!("WRONG, expected {want}"), false),
        None => ("not checked".to_string(), true),
    };
    println!(
        "prime_finder: {total} primes in [{}, {}) from {} tasks on the {} backend, {elapsed:.2}s: {verdict}",
        cli.start,
        cli.end,
        cli.tasks,
        master.backend_name(),
    );
    anyhow::ensure!(ok, "prime count {total} is wrong");
    Ok(())
}
