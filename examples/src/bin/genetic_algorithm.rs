//! A genetic algorithm in rounds of `map` (PyMW's `genetic_algorithm.py`):
//! each round maps the fitness function over the population on the workers,
//! then the master does selection (tournaments), crossover (one point) and
//! mutation (bit flips), keeping the best individual (elitism). The problem
//! is OneMax: maximise the number of 1 bits in a bit string.
//!
//! All randomness is in the master, from the seeded SplitMix64, and results
//! come back in input order, so the same seed prints the same rounds on every
//! backend and any number of workers.
//!
//! ```text
//! cargo run -p pymw-examples --bin genetic_algorithm
//! cargo run -p pymw-examples --bin genetic_algorithm -- --bits 400 --population 100 --rounds 60 --seed 7
//! ```

use clap::Parser;
use pymw_examples::SplitMix64;

/// OneMax: the number of 1 bits.
#[pymw::task]
fn fitness(genome: Vec<bool>) -> u64 {
    genome.iter().filter(|&&bit| bit).count() as u64
}

/// The index of the fittest of `size` individuals drawn at random.
fn tournament(rng: &mut SplitMix64, scores: &[u64], size: usize) -> usize {
    let mut best = (rng.next_u64() % scores.len() as u64) as usize;
    for _ in 1..size {
        let other = (rng.next_u64() % scores.len() as u64) as usize;
        if scores[other] > scores[best] {
            best = other;
        }
    }
    best
}

/// The next generation: the best individual unchanged, then children of
/// tournament winners, crossed at one point and mutated bit by bit.
fn breed(
    rng: &mut SplitMix64,
    population: &[Vec<bool>],
    scores: &[u64],
    mutation: f64,
) -> Vec<Vec<bool>> {
    let elite = (0..scores.len())
        .max_by_key(|&i| (scores[i], std::cmp::Reverse(i)))
        .unwrap_or(0);
    let mut next = vec![population[elite].clone()];
    while next.len() < population.len() {
        let mother = &population[tournament(rng, scores, 3)];
        let father = &population[tournament(rng, scores, 3)];
        let cut = (rng.next_u64() % (mother.len() as u64 + 1)) as usize;
        let mut child: Vec<bool> = mother[..cut]
            .iter()
            .chain(&father[cut..])
            .copied()
            .collect();
        for bit in &mut child {
            if rng.next_f64() < mutation {
                *bit = !*bit;
            }
        }
        next.push(child);
    }
    next
}

#[derive(Parser)]
#[command(about = "Evolve bit strings toward all ones, one fitness task per individual")]
struct Cli {
    #[command(flatten)]
    pymw: pymw::Args,
    /// Bits per genome (the best possible fitness).
    #[arg(long, default_value_t = 64)]
    bits: usize,
    /// Individuals per generation.
    #[arg(long, default_value_t = 40)]
    population: usize,
    /// Rounds (generations).
    #[arg(long, default_value_t = 40)]
    rounds: u64,
    /// Seed of the master's random stream.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[pymw::main]
fn main() -> anyhow::Result<()> {
    pymw_examples::init_logging();
    let cli = Cli::parse();
    anyhow::ensure!(
        cli.bits > 0 && cli.population > 1 && cli.rounds > 0,
        "need --bits > 0, --population > 1, --rounds > 0"
    );
    let master = cli.pymw.start_blocking()?;
    let started = std::time::Instant::now();
    let mut rng = SplitMix64::new(cli.seed);
    let mut population: Vec<Vec<bool>> = (0..cli.population)
        .map(|_| (0..cli.bits).map(|_| rng.next_u64() & 1 == 1).collect())
        .collect();
    let mutation = 1.0 / cli.bits as f64;
    let mut history = Vec::new();
    let mut scores = Vec::new();
    for round in 1..=cli.rounds {
        if round > 1 {
            population = breed(&mut rng, &population, &scores, mutation);
        }
        // One task per individual; each round's line is its progress.
        scores = master
            .map(fitness::task(), population.iter().cloned())
            .progress(false)
            .collect_values()?;
        let best = scores.iter().copied().max().unwrap_or(0);
        let mean = scores.iter().sum::<u64>() as f64 / scores.len() as f64;
        println!("round {round:>3}: best {best}/{}, mean {mean:.2}", cli.bits);
        history.push(best);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let best = *history.last().unwrap_or(&0);
    // Checks: the workers' scores are the master's own, and with elitism the
    // best never gets worse and ends better than it started.
    let scores_ok = population
        .iter()
        .zip(&scores)
        .all(|(genome, &score)| fitness(genome.clone()) == score);
    let monotone = history.windows(2).all(|pair| pair[0] <= pair[1]);
    let improved = best > history[0] || best == cli.bits as u64;
    let ok = scores_ok && monotone && improved;
    let reached = history.iter().position(|&b| b == cli.bits as u64);
    println!(
        "genetic_algorithm: best {best}/{} after {} rounds of {} ({}), {} tasks on the {} backend, {elapsed:.2}s: {}",
        cli.bits,
        cli.rounds,
        cli.population,
        reached.map_or("optimum not reached".to_string(), |r| format!(
            "optimum in round {}",
            r + 1
        )),
        cli.rounds * cli.population as u64,
        master.backend_name(),
        if ok { "OK" } else { "WRONG" },
    );
    anyhow::ensure!(scores_ok, "a worker's fitness differs from the master's");
    anyhow::ensure!(
        monotone && improved,
        "the best fitness got worse or never improved"
    );
    Ok(())
}
