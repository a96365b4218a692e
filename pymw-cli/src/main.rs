//! `pymw`: reads the run stores that pymw masters write (also while they
//! run): lists runs, shows a run's status, its errors and any task, writes a
//! self-contained HTML report with plots, and cleans up.
//!
//! ```text
//! pymw runs                         the runs of ./pymw-runs (or --root DIR)
//! pymw status RUN [--watch]         counts by state, throughput, ETA
//! pymw errors RUN                   each failed task: reason and stderr tail
//! pymw show RUN TASK                one task (position or identity prefix)
//! pymw report RUN -o report.html    timeline, run times, throughput, failures
//! pymw clean RUN | --all | --older-than 7d
//! ```
//!
//! Every command takes `--json` for scripts.

mod commands;
mod report;
mod text;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Reads pymw run stores: status, errors, tasks, HTML reports.
#[derive(Debug, Parser)]
#[command(name = "pymw", version, about, long_about = None)]
struct Cli {
    /// The runs directory.
    #[arg(long, global = true, env = "PYMW_RUNS_DIR", value_name = "DIR")]
    root: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the runs, newest first.
    Runs,
    /// Counts by state, throughput and ETA of a run.
    Status {
        /// The run's name.
        run: String,
        /// Refresh every second until the run ends (or Ctrl-C).
        #[arg(long, short)]
        watch: bool,
    },
    /// Each failed task of a run, with its reason and stderr tail.
    Errors {
        /// The run's name.
        run: String,
        /// Lines of stderr tail to show per task.
        #[arg(long, default_value_t = 6)]
        lines: usize,
        /// Show at most this many tasks.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Everything about one task: its attempts, hosts, timings, value or failure.
    Show {
        /// The run's name.
        run: String,
        /// The task: its position (digits) or a prefix of its identity (hex, 4+ digits).
        task: String,
    },
    /// Write a self-contained HTML report with plots.
    Report {
        /// The run's name.
        run: String,
        /// Where to write it.
        #[arg(short, long, default_value = "report.html")]
        output: PathBuf,
    },
    /// Remove runs.
    Clean {
        /// Runs to remove.
        runs: Vec<String>,
        /// Remove every run (not the ones a master has open, unless --force).
        #[arg(long)]
        all: bool,
        /// Remove runs not updated for this long: 30m, 12h, 7d, 2w.
        #[arg(long, value_name = "AGE")]
        older_than: Option<String>,
        /// Also remove the result cache.
        #[arg(long)]
        cache: bool,
        /// Also remove runs a master has open.
        #[arg(long)]
        force: bool,
        /// Say what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = cli.root.clone().unwrap_or_else(pymw_store::default_root);
    let json = cli.json;
    let result = match cli.command {
        Command::Runs => commands::runs(&root, json),
        Command::Status { run, watch } => commands::status(&root, &run, watch, json),
        Command::Errors { run, lines, limit } => commands::errors(&root, &run, lines, limit, json),
        Command::Show { run, task } => commands::show(&root, &run, &task, json),
        Command::Report { run, output } => commands::report(&root, &run, &output, json),
        Command::Clean {
            runs,
            all,
            older_than,
            cache,
            force,
            dry_run,
        } => commands::clean(
            &root,
            &commands::CleanArgs {
                runs,
                all,
                older_than,
                cache,
                force,
                dry_run,
            },
            json,
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // A closed pipe (`pymw status --json | head`) is not an error.
            if is_broken_pipe(&error) {
                return ExitCode::SUCCESS;
            }
            eprintln!("pymw: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether the error is stdout's reader having gone, wherever it sits in
/// the chain: an `io::Error`, or one inside serde_json's error (`--json`).
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        let kind = if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            Some(io.kind())
        } else {
            cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
        };
        kind == Some(std::io::ErrorKind::BrokenPipe)
    })
}
