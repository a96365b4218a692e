//! Choosing the backend from the command line, like PyMW's `-i interface`.

use crate::{Error, MasterConfig};
use pymw_core::Backend;
pub use pymw_core::parse_duration;
use std::time::Duration;

/// The engines pymw can run tasks on. Those whose feature is off in this
/// build are refused by the parser with the feature to enable
/// ([`BackendKind::is_built`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[non_exhaustive]
pub enum BackendKind {
    /// Persistent worker processes on this machine's cores.
    Local,
    /// Jobs of an HTCondor pool, submitted from this machine.
    Condor,
    /// Work units of a BOINC project, from its server or remotely.
    Boinc,
}

impl BackendKind {
    /// The backend's name, which is also the name of its feature.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Local => "local",
            BackendKind::Condor => "condor",
            BackendKind::Boinc => "boinc",
        }
    }

    /// Whether this build holds the backend (its feature is on).
    pub fn is_built(self) -> bool {
        match self {
            BackendKind::Local => cfg!(feature = "local"),
            BackendKind::Condor => cfg!(feature = "condor"),
            BackendKind::Boinc => cfg!(feature = "boinc"),
        }
    }

    /// Whether this build holds any backend.
    pub fn any_built() -> bool {
        cfg!(any(
            feature = "local",
            feature = "condor",
            feature = "boinc"
        ))
    }

    /// The default: the first of local, condor and boinc in this build
    /// (local when there is none, which [`Args::backend`] then refuses).
    pub fn default_for_build() -> BackendKind {
        [BackendKind::Local, BackendKind::Condor, BackendKind::Boinc]
            .into_iter()
            .find(|kind| kind.is_built())
            .unwrap_or(BackendKind::Local)
    }
}

/// `--backend`'s parser: the names of every backend, refusing one that is
/// not in this build with the feature to enable; `--help` lists only those
/// that are.
#[derive(Debug, Clone, Copy)]
struct BackendParser;

impl clap::builder::TypedValueParser for BackendParser {
    type Value = BackendKind;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<BackendKind, clap::Error> {
        let kind =
            clap::builder::EnumValueParser::<BackendKind>::new().parse_ref(cmd, arg, value)?;
        // In a build without any backend there is nothing better to pick:
        // the default is kept, and `Args::backend` refuses it at start.
        if kind.is_built() || !BackendKind::any_built() {
            return Ok(kind);
        }
        let arg = arg.map_or_else(|| "--backend".to_owned(), |a| a.to_string());
        let why = Error::BackendNotBuilt {
            backend: kind.name(),
        };
        Err(clap::Error::raw(
            clap::error::ErrorKind::InvalidValue,
            format!("invalid value '{}' for '{arg}': {why}\n", kind.name()),
        )
        .with_cmd(cmd))
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        use clap::ValueEnum;
        Some(Box::new(
            BackendKind::value_variants()
                .iter()
                .filter(|kind| kind.is_built())
                .filter_map(|kind| kind.to_possible_value()),
        ))
    }
}

/// The name of [`BackendKind::default_for_build`], for clap.
const DEFAULT_BACKEND: &str = if cfg!(feature = "local") {
    "local"
} else if cfg!(feature = "condor") {
    "condor"
} else if cfg!(feature = "boinc") {
    "boinc"
} else {
    "local"
};

fn parse_workers(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("a master needs at least 1 worker: give 1 or more, \
                      or leave --workers out for one per core"
            .into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{text}` is not a number of workers")),
    }
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let timeout = parse_duration(text)?;
    if timeout.is_zero() {
        return Err("a timeout of zero would stop every task at once: \
                    leave --task-timeout out for no timeout"
            .into());
    }
    Ok(timeout)
}

fn parse_retries(text: &str) -> Result<u32, String> {
    let max = pymw_core::MAX_RETRIES;
    match text.trim().parse::<u32>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!("give a number of retries from 0 to {max}")),
    }
}

/// Command-line options that pick and configure the backend. Flatten it into
/// your own parser:
///
/// ```
/// #[derive(clap::Parser)]
/// struct Cli {
///     #[command(flatten)]
///     pymw: pymw::Args,
///     /// How many tasks to run.
///     #[arg(long, default_value_t = 100)]
///     tasks: u64,
/// }
/// ```
///
/// Your parser's own description stays its own: this struct sets no
/// `about` or `long_about` (its rustdoc would otherwise become your
/// program's `--help` text).
#[derive(Debug, Clone, clap::Args)]
#[command(about = None, long_about = None)]
#[non_exhaustive]
pub struct Args {
    /// Where tasks run.
    #[arg(long, value_parser = BackendParser, default_value = DEFAULT_BACKEND, env = "PYMW_BACKEND")]
    pub backend: BackendKind,
    /// Worker processes of the local backend, at least 1 [default: the
    /// available cores].
    #[arg(long, env = "PYMW_WORKERS", value_parser = parse_workers)]
    pub workers: Option<usize>,
    /// How many times a lost attempt (crashed worker, held job) is retried
    /// (at most 255).
    #[arg(long, default_value_t = 3, env = "PYMW_MAX_RETRIES", value_parser = parse_retries)]
    pub max_retries: u32,
    /// Stop and fail any task that runs longer than this (e.g. 30s, 5m, 2h).
    #[arg(long, value_parser = parse_timeout, env = "PYMW_TASK_TIMEOUT")]
    pub task_timeout: Option<Duration>,
    /// No progress bar or progress lines.
    #[arg(long)]
    pub no_progress: bool,
    /// Record the run under this name in the run store; started again with
    /// the same name, the run resumes: finished tasks are not run again.
    #[cfg(feature = "store")]
    #[arg(long, env = "PYMW_RUN")]
    pub run: Option<String>,
    /// Where run stores live.
    #[cfg(feature = "store")]
    #[arg(long, default_value = "pymw-runs", env = "PYMW_RUNS_DIR")]
    pub runs_dir: std::path::PathBuf,
    /// Take results of identical tasks (same task, same input) from earlier
    /// runs in --runs-dir, and add this run's (needs --run).
    #[cfg(feature = "store")]
    #[arg(long, requires = "run")]
    pub cache: bool,
    /// Options of the HTCondor backend.
    #[cfg(feature = "condor")]
    #[command(flatten)]
    pub condor: pymw_condor::CondorArgs,
    /// Options of the BOINC backend.
    #[cfg(feature = "boinc")]
    #[command(flatten)]
    pub boinc: pymw_boinc::BoincArgs,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            backend: BackendKind::default_for_build(),
            workers: None,
            max_retries: 3,
            task_timeout: None,
            no_progress: false,
            #[cfg(feature = "store")]
            run: None,
            #[cfg(feature = "store")]
            runs_dir: "pymw-runs".into(),
            #[cfg(feature = "store")]
            cache: false,
            #[cfg(feature = "condor")]
            condor: pymw_condor::CondorArgs::default(),
            #[cfg(feature = "boinc")]
            boinc: pymw_boinc::BoincArgs::default(),
        }
    }
}

impl Args {
    /// The master settings these options ask for.
    pub fn config(&self) -> MasterConfig {
        let mut config = MasterConfig {
            max_retries: self.max_retries,
            timeout: self.task_timeout,
            ..MasterConfig::default()
        };
        if self.no_progress {
            config.progress = false;
        }
        config
    }

    /// The backend these options ask for; [`Error::BackendNotBuilt`] for
    /// one whose feature is off in this build.
    pub fn backend(&self) -> Result<Box<dyn Backend>, Error> {
        match self.backend {
            #[cfg(feature = "local")]
            BackendKind::Local => {
                let mut config = pymw_local::LocalConfig::default();
                if let Some(workers) = self.workers {
                    config.workers = workers.max(1);
                }
                Ok(Box::new(pymw_local::LocalBackend::new(config)))
            }
            #[cfg(feature = "condor")]
            BackendKind::Condor => Ok(Box::new(pymw_condor::CondorBackend::new(
                self.condor.config(),
            ))),
            #[cfg(feature = "boinc")]
            BackendKind::Boinc => Ok(Box::new(pymw_boinc::BoincBackend::new(self.boinc.config()))),
            #[allow(unreachable_patterns)]
            other => Err(Error::BackendNotBuilt {
                backend: other.name(),
            }),
        }
    }

    /// The run store these options ask for (`--run NAME`), opened or
    /// resumed, as the master's journal.
    #[cfg(feature = "store")]
    pub fn journal(&self, backend: &str) -> Result<Option<crate::JournalHandle>, Error> {
        let Some(name) = &self.run else {
            return Ok(None);
        };
        let mut options = pymw_store::OpenOptions::new()
            .create(true)
            .resume(true)
            .cache(self.cache)
            .backend(backend);
        if let Ok(exe) = std::env::current_exe() {
            options = options.binary(exe, pymw_core::registry::Registry::global().listing());
        }
        let store = pymw_store::RunStore::open(&self.runs_dir, name, options)
            .map_err(|e| Error::Journal(e.to_string()))?;
        if store.resumed() {
            eprintln!("pymw: resuming run `{name}`: finished tasks are not run again");
        }
        let journal = pymw_store::StoreJournal::new(store, self.cache);
        Ok(Some(crate::JournalHandle(std::sync::Arc::new(journal))))
    }

    fn config_for(&self, backend: &dyn Backend) -> Result<MasterConfig, Error> {
        #[allow(unused_mut)]
        let mut config = self.config();
        #[cfg(feature = "store")]
        {
            config.journal = self.journal(backend.name())?;
        }
        let _ = backend;
        Ok(config)
    }

    /// Starts an async master as asked (inside a tokio runtime).
    pub fn start(&self) -> Result<crate::Master, Error> {
        let backend = self.backend()?;
        let config = self.config_for(&*backend)?;
        crate::Master::start_with(backend, config)
    }

    /// Starts a blocking master as asked.
    pub fn start_blocking(&self) -> Result<crate::blocking::Master, Error> {
        let backend = self.backend()?;
        let config = self.config_for(&*backend)?;
        crate::blocking::Master::start_with(backend, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    /// A program as users write one: its own description, pymw's options
    /// flattened in.
    #[derive(Debug, Parser)]
    #[command(about = "Counts the stars")]
    struct Cli {
        #[command(flatten)]
        pymw: Args,
    }

    /// Counts the stars, documented.
    ///
    /// Longer words about the counting.
    #[derive(Debug, Parser)]
    struct Documented {
        #[command(flatten)]
        pymw: Args,
    }

    fn refusal(args: &[&str]) -> String {
        let error = Cli::try_parse_from(["stars"].iter().chain(args)).unwrap_err();
        assert_eq!(
            error.kind(),
            clap::error::ErrorKind::ValueValidation,
            "{error}"
        );
        error.to_string()
    }

    #[test]
    fn the_program_keeps_its_own_description() {
        let long = Cli::command().render_long_help().to_string();
        assert!(long.starts_with("Counts the stars"), "{long}");
        assert!(!long.contains("```"), "{long}");
        assert!(!long.contains("Flatten it into"), "{long}");
        let long = Documented::command().render_long_help().to_string();
        assert!(long.contains("Longer words about the counting"), "{long}");
        assert!(!long.contains("Flatten it into"), "{long}");
    }

    #[test]
    fn zero_workers_zero_timeout_and_too_many_retries_are_refused() {
        let message = refusal(&["--workers", "0"]);
        assert!(message.contains("at least 1 worker"), "{message}");
        let message = refusal(&["--task-timeout", "0"]);
        assert!(message.contains("timeout of zero"), "{message}");
        let message = refusal(&["--task-timeout", "0s"]);
        assert!(message.contains("timeout of zero"), "{message}");
        let message = refusal(&["--max-retries", "256"]);
        assert!(message.contains("from 0 to 255"), "{message}");
        let cli = Cli::try_parse_from(["stars", "--max-retries", "255", "--workers", "2"]).unwrap();
        assert_eq!(cli.pymw.max_retries, 255);
        assert_eq!(cli.pymw.workers, Some(2));
    }

    #[test]
    fn a_backend_not_in_this_build_names_its_feature() {
        for kind in [BackendKind::Local, BackendKind::Condor, BackendKind::Boinc] {
            if kind.is_built() {
                let cli = Cli::try_parse_from(["stars", "--backend", kind.name()]).unwrap();
                assert_eq!(cli.pymw.backend, kind);
                continue;
            }
            if BackendKind::any_built() {
                let error = Cli::try_parse_from(["stars", "--backend", kind.name()]).unwrap_err();
                let message = error.to_string();
                assert!(
                    message.contains(&format!("enable the `{}` feature", kind.name())),
                    "{message}"
                );
            }
            let args = Args {
                backend: kind,
                ..Args::default()
            };
            assert!(matches!(
                args.backend(),
                Err(Error::BackendNotBuilt { backend }) if backend == kind.name()
            ));
        }
        assert!(Args::default().backend.is_built() || !BackendKind::any_built());
    }
}
