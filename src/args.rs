//! Choosing the backend from the command line, like PyMW's `-i interface`.

use crate::{Error, MasterConfig};
use pymw_core::Backend;
pub use pymw_core::parse_duration;
use std::time::Duration;

/// The engines this build of pymw can run tasks on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[non_exhaustive]
pub enum BackendKind {
    /// Persistent worker processes on this machine's cores.
    #[cfg(feature = "local")]
    Local,
    /// Jobs of an HTCondor pool, submitted from this machine.
    #[cfg(feature = "condor")]
    Condor,
    /// Work units of a BOINC project, from its server or remotely.
    #[cfg(feature = "boinc")]
    Boinc,
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
#[derive(Debug, Clone, clap::Args)]
#[non_exhaustive]
pub struct Args {
    /// Where tasks run.
    #[arg(long, value_enum, default_value = "local", env = "PYMW_BACKEND")]
    pub backend: BackendKind,
    /// Worker processes of the local backend [default: the available cores].
    #[arg(long, env = "PYMW_WORKERS")]
    pub workers: Option<usize>,
    /// How many times a lost attempt (crashed worker, held job) is retried.
    #[arg(long, default_value_t = 3, env = "PYMW_MAX_RETRIES")]
    pub max_retries: u32,
    /// Stop and fail any task that runs longer than this (e.g. 30s, 5m, 2h).
    #[arg(long, value_parser = parse_duration, env = "PYMW_TASK_TIMEOUT")]
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
            #[cfg(feature = "local")]
            backend: BackendKind::Local,
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

    /// The backend these options ask for.
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
