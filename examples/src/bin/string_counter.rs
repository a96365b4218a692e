//! Tasks that share one data file (PyMW's `string_counter.py`): the master
//! writes a text file (or takes `--file`), then each task gets the file's
//! PATH and a range of lines, counts the words in it, and returns the counts;
//! the master merges them, prints the top 10 words, and checks everything
//! against its own count of the whole file.
//!
//! The path travels, not the text, so it must name the same file on the
//! workers: always absolute here. The local backend's workers share this
//! machine's filesystem. On a grid backend (HTCondor, BOINC) a job sees only
//! what reaches its execute machine: a shared filesystem, or the file sent
//! with the job (HTCondor transfers each task's input; whether a shared file
//! is transferred too is up to the backend and its settings).
//!
//! ```text
//! cargo run -p pymw-examples --bin string_counter
//! cargo run -p pymw-examples --bin string_counter -- --lines 100000 --tasks 20
//! cargo run -p pymw-examples --bin string_counter -- --file /usr/share/common-licenses/GPL-3
//! ```

use anyhow::Context;
use clap::Parser;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// Counts the words of lines `[first, end)` of the file at `path`.
#[pymw::task]
fn count_words(path: String, first: u64, end: u64) -> std::io::Result<BTreeMap<String, u64>> {
    let reader = std::io::BufReader::new(std::fs::File::open(&path)?);
    let mut counts = BTreeMap::new();
    for line in reader
        .lines()
        .skip(first as usize)
        .take((end - first) as usize)
    {
        count_line(&mut counts, &line?);
    }
    Ok(counts)
}

/// Adds the words of `line` (letters and digits, lower-cased) to `counts`.
fn count_line(counts: &mut BTreeMap<String, u64>, line: &str) {
    for word in line
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        *counts.entry(word.to_lowercase()).or_default() += 1;
    }
}

/// Writes `lines` lines of random text from a small vocabulary, common words
/// more often than rare ones, with some capitals and punctuation.
fn write_text(path: &std::path::Path, lines: u64, seed: u64) -> std::io::Result<()> {
    const WORDS: [&str; 24] = [
        "the", "of", "and", "to", "a", "in", "worker", "master", "task", "is", "grid", "that",
        "for", "it", "result", "python", "rust", "condor", "boinc", "file", "count", "word",
        "queue", "job",
    ];
    let mut rng = pymw_examples::SplitMix64::new(seed);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for _ in 0..lines {
        let words = 4 + rng.next_u64() % 12;
        for i in 0..words {
            let word = WORDS[(WORDS.len() as f64 * rng.next_f64().powi(2)) as usize];
            match rng.next_u64() % 10 {
                0 => write!(out, "{}", word.to_uppercase())?,
                1 => write!(out, "{word},")?,
                _ => write!(out, "{word}")?,
            }
            out.write_all(if i + 1 == words { b".\n" } else { b" " })?;
        }
    }
    out.flush()
}

/// Removes the generated file however `main` ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[derive(Parser)]
#[command(about = "Count words in a shared file, one task per range of lines")]
struct Cli {
    #[command(flatten)]
    pymw: pymw::Args,
    /// Count this file instead of a generated one.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Lines of the generated file.
    #[arg(long, default_value_t = 20_000)]
    lines: u64,
    /// Number of tasks (ranges of lines).
    #[arg(long, default_value_t = 8)]
    tasks: u64,
    /// Seed of the generated text.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[pymw::main]
fn main() -> anyhow::Result<()> {
    pymw_examples::init_logging();
    let cli = Cli::parse();
    anyhow::ensure!(cli.tasks > 0, "--tasks must be at least 1");
    let (path, _remove) = match &cli.file {
        Some(file) => (std::path::absolute(file)?, None),
        None => {
            let dir = std::path::absolute(std::env::temp_dir())?;
            let path = dir.join(format!("pymw-string-counter-{}.txt", std::process::id()));
            write_text(&path, cli.lines, cli.seed)
                .with_context(|| format!("writing {}", path.display()))?;
            (path.clone(), Some(RemoveOnDrop(path)))
        }
    };
    // The master's own count: the check, and the number of lines to split.
    let mut expected = BTreeMap::new();
    let mut lines = 0u64;
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    for line in std::io::BufReader::new(file).lines() {
        count_line(&mut expected, &line?);
        lines += 1;
    }
    let master = cli.pymw.start_blocking()?;
    let started = std::time::Instant::now();
    let name = path
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("{} is not UTF-8", path.display()))?;
    let bound = |i: u64| lines * i / cli.tasks;
    let inputs = (0..cli.tasks).map(|i| (name.to_string(), bound(i), bound(i + 1)));
    let mut counts = BTreeMap::<String, u64>::new();
    for partial in master.map(count_words::task(), inputs) {
        for (word, n) in partial? {
            *counts.entry(word).or_default() += n;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut top: Vec<(&String, &u64)> = counts.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (word, n) in top.iter().take(10) {
        println!("{n:>10} {word}");
    }
    let total: u64 = counts.values().sum();
    let ok = counts == expected;
    println!(
        "string_counter: {total} words ({} distinct) in {lines} lines from {} tasks on the {} backend, {elapsed:.2}s: {}",
        counts.len(),
        cli.tasks,
        master.backend_name(),
        if ok {
            "OK, matches the master's count"
        } else {
            "WRONG, differs from the master's count"
        }
    );
    anyhow::ensure!(ok, "the tasks' word counts differ from the master's");
    Ok(())
}
