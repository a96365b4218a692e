//! The BOINC backend: command-line options, settings, and the
//! [`Backend`] that runs attempts as BOINC jobs in project-host or remote
//! mode.
//! Re-attaching to the work units of an earlier master: see
//! [`BoincBackend`]; the details of each mode are in the docs of
//! `project.rs` and `remote_engine.rs`.

use std::path::PathBuf;
use std::time::Duration;

use pymw_core::backend::{AttemptKey, Backend, BackendError, Dispatch, EventSink};
pub use pymw_core::parse_duration;
use pymw_core::units::parse_size;

use crate::app_version::PLATFORM_X86_64_LINUX;
use crate::project::{ProjectEngine, ProjectSettings};
use crate::remote_engine::{RemoteEngine, RemoteSettings};
use crate::templates::WorkunitParams;

/// Command-line options of the BOINC backend; flatten them into a parser
/// (the `pymw` facade does, for `--backend boinc`).
#[derive(Debug, Clone, clap::Args)]
#[non_exhaustive]
pub struct BoincArgs {
    /// BOINC: the project directory, for a master on the project's server
    #[arg(
        long,
        value_name = "DIR",
        env = "PYMW_BOINC_PROJECT",
        conflicts_with = "boinc_url"
    )]
    pub boinc_project: Option<PathBuf>,
    /// BOINC: the project URL, for a master anywhere (remote job submission)
    #[arg(long, value_name = "URL", env = "PYMW_BOINC_URL")]
    pub boinc_url: Option<String>,
    /// BOINC: the submitting user's authenticator (account key), with --boinc-url
    #[arg(
        long,
        value_name = "KEY",
        env = "PYMW_BOINC_AUTHENTICATOR",
        hide_env_values = true
    )]
    pub boinc_authenticator: Option<String>,
    /// BOINC: the app's short name
    #[arg(long, value_name = "NAME", default_value = "pymw")]
    pub boinc_app: String,
    /// BOINC: agreeing results needed per job (2 or more: results are checked against each other)
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub boinc_min_quorum: u32,
    /// BOINC: results created at first per job [default: the quorum]
    #[arg(long, value_name = "N")]
    pub boinc_target_nresults: Option<u32>,
    /// BOINC: errors (crashes, lost outputs) tolerated per job: the job fails at the (N+1)th (at least 1; a task's own error or panic is a result, not an error)
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub boinc_max_error_results: u32,
    /// BOINC: results created per job, after which it fails [default: the success bound + 1 + the error bound]
    #[arg(long, value_name = "N")]
    pub boinc_max_total_results: Option<u32>,
    /// BOINC: valid results without agreement tolerated per job: it fails at the (N+1)th [default: the quorum, so one more replica breaks a tie]
    #[arg(long, value_name = "N")]
    pub boinc_max_success_results: Option<u32>,
    /// BOINC: estimated floating-point operations of a job
    #[arg(long, value_name = "FLOPS", default_value_t = 1e12)]
    pub boinc_fpops_est: f64,
    /// BOINC: floating-point operations after which a job is aborted [default: 1000 x the estimate]
    #[arg(long, value_name = "FLOPS")]
    pub boinc_fpops_bound: Option<f64>,
    /// BOINC: memory bound of a job (bytes, or 512M, 2G)
    #[arg(long, value_name = "SIZE", default_value = "512M", value_parser = parse_size)]
    pub boinc_memory_bound: u64,
    /// BOINC: disk bound of a job (bytes, or 512M, 2G)
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = parse_size)]
    pub boinc_disk_bound: u64,
    /// BOINC: time a volunteer has to return a result (e.g. 12h, 7d)
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = parse_duration)]
    pub boinc_delay_bound: Duration,
    /// BOINC: largest output a job may upload (bytes, or 64M, 1G)
    #[arg(long, value_name = "SIZE", default_value = "256M", value_parser = parse_size)]
    pub boinc_max_output: u64,
    /// BOINC: how often to look for finished jobs [default: 1s on the project host, 10s remote]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub boinc_poll: Option<Duration>,
    /// BOINC: the mysql client program, used to read failed jobs and cancel jobs (project host)
    #[arg(long, value_name = "PROGRAM", default_value = crate::db::DEFAULT_MYSQL)]
    pub boinc_mysql: PathBuf,
    /// BOINC: do not install this binary as an app version (project host)
    #[arg(long)]
    pub boinc_no_install: bool,
    /// BOINC: do not check config.xml for this binary's assimilator and validator (project host)
    #[arg(long)]
    pub boinc_no_daemon_check: bool,
    /// BOINC: leave unfinished jobs running when the master ends
    #[arg(long)]
    pub boinc_leave_running: bool,
    /// BOINC: keep the run directory and the files returned (project host)
    #[arg(long)]
    pub boinc_keep_files: bool,
    /// BOINC: server-side input template for remote jobs (a file in the project's templates/)
    #[arg(long, value_name = "NAME")]
    pub boinc_input_template: Option<String>,
    /// BOINC: server-side output template for remote jobs
    #[arg(long, value_name = "NAME")]
    pub boinc_output_template: Option<String>,
    /// BOINC: most jobs in flight (the master's window)
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub boinc_max_in_flight: usize,
}

impl Default for BoincArgs {
    fn default() -> Self {
        BoincArgs {
            boinc_project: None,
            boinc_url: None,
            boinc_authenticator: None,
            boinc_app: "pymw".to_owned(),
            boinc_min_quorum: 1,
            boinc_target_nresults: None,
            boinc_max_error_results: 3,
            boinc_max_total_results: None,
            boinc_max_success_results: None,
            boinc_fpops_est: 1e12,
            boinc_fpops_bound: None,
            boinc_memory_bound: 512 << 20,
            boinc_disk_bound: 1 << 30,
            boinc_delay_bound: Duration::from_secs(7 * 86400),
            boinc_max_output: 256 << 20,
            boinc_poll: None,
            boinc_mysql: PathBuf::from(crate::db::DEFAULT_MYSQL),
            boinc_no_install: false,
            boinc_no_daemon_check: false,
            boinc_leave_running: false,
            boinc_keep_files: false,
            boinc_input_template: None,
            boinc_output_template: None,
            boinc_max_in_flight: 1000,
        }
    }
}

impl BoincArgs {
    /// The backend settings these options ask for.
    pub fn config(&self) -> BoincConfig {
        let mode = match (&self.boinc_project, &self.boinc_url) {
            (Some(dir), _) => BoincMode::ProjectHost { dir: dir.clone() },
            (None, Some(url)) => BoincMode::Remote {
                url: url.clone(),
                authenticator: self.boinc_authenticator.clone().unwrap_or_default(),
            },
            (None, None) => BoincMode::Unset,
        };
        let target = self.boinc_target_nresults.unwrap_or(self.boinc_min_quorum);
        let workunit = crate::project::consistent(WorkunitParams {
            target_nresults: target,
            min_quorum: self.boinc_min_quorum,
            max_error_results: Some(self.boinc_max_error_results.max(1)),
            max_total_results: self.boinc_max_total_results,
            max_success_results: self.boinc_max_success_results,
            rsc_fpops_est: self.boinc_fpops_est,
            rsc_fpops_bound: self
                .boinc_fpops_bound
                .unwrap_or(self.boinc_fpops_est * 1000.0),
            rsc_memory_bound: self.boinc_memory_bound,
            rsc_disk_bound: self.boinc_disk_bound,
            delay_bound: self.boinc_delay_bound.as_secs().max(1),
        });
        BoincConfig {
            mode,
            app: self.boinc_app.clone(),
            workunit,
            max_output_bytes: self.boinc_max_output,
            poll: self.boinc_poll,
            mysql: self.boinc_mysql.clone(),
            install: !self.boinc_no_install,
            check_daemons: !self.boinc_no_daemon_check,
            leave_running: self.boinc_leave_running,
            keep_files: self.boinc_keep_files,
            input_template: self.boinc_input_template.clone(),
            output_template: self.boinc_output_template.clone(),
            max_in_flight: self.boinc_max_in_flight.max(1),
        }
    }
}

/// Where the master submits.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BoincMode {
    /// On the project's server, in this project directory.
    ProjectHost {
        /// The project directory.
        dir: PathBuf,
    },
    /// Anywhere, through the project's remote job submission.
    Remote {
        /// The project's master URL.
        url: String,
        /// The submitting user's authenticator.
        authenticator: String,
    },
    /// Neither was given (an error at start).
    Unset,
}

/// Settings of the BOINC backend.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BoincConfig {
    /// Where to submit.
    pub mode: BoincMode,
    /// The app's short name.
    pub app: String,
    /// Work unit parameters of every job; a task's resources override them
    /// (`memory_mib`, `disk_mib`, and `extra` keys `boinc.min_quorum`,
    /// `boinc.target_nresults`, `boinc.max_error_results`,
    /// `boinc.max_total_results`, `boinc.max_success_results`,
    /// `boinc.rsc_fpops_est`, `boinc.rsc_fpops_bound`,
    /// `boinc.rsc_memory_bound`, `boinc.rsc_disk_bound` (bytes),
    /// `boinc.delay_bound` (seconds)); project-host mode only.
    pub workunit: WorkunitParams,
    /// Largest output a job may upload.
    pub max_output_bytes: u64,
    /// How often to look for finished jobs (`None`: 1 s on the project
    /// host, 10 s remote).
    pub poll: Option<Duration>,
    /// The `mysql` client program.
    pub mysql: PathBuf,
    /// Install this binary as an app version at start (project host).
    pub install: bool,
    /// Check `config.xml` for the daemons (project host).
    pub check_daemons: bool,
    /// Leave unfinished jobs running when the master ends.
    pub leave_running: bool,
    /// Keep the run directory and returned files (project host).
    pub keep_files: bool,
    /// Server-side input template of remote jobs.
    pub input_template: Option<String>,
    /// Server-side output template of remote jobs.
    pub output_template: Option<String>,
    /// Most jobs in flight.
    pub max_in_flight: usize,
}

impl BoincConfig {
    /// Settings for a master on the server of the project in `dir`, with
    /// the defaults of [`BoincArgs`].
    pub fn project_host(dir: impl Into<PathBuf>, app: impl Into<String>) -> Self {
        let mut config = BoincArgs::default().config();
        config.mode = BoincMode::ProjectHost { dir: dir.into() };
        config.app = app.into();
        config
    }

    /// The project-host settings for the project in `dir`.
    pub(crate) fn project_settings(&self, dir: &std::path::Path) -> ProjectSettings {
        ProjectSettings {
            project_dir: dir.to_owned(),
            app: self.app.clone(),
            platform: this_platform().to_owned(),
            mysql: self.mysql.clone(),
            poll: self.poll.unwrap_or(Duration::from_secs(1)),
            install: self.install,
            check_daemons: self.check_daemons,
            leave_running: self.leave_running,
            keep_files: self.keep_files,
            max_output_bytes: self.max_output_bytes,
            run_name: None,
        }
    }

    /// Settings for a remote master, with the defaults of [`BoincArgs`].
    pub fn remote(
        url: impl Into<String>,
        authenticator: impl Into<String>,
        app: impl Into<String>,
    ) -> Self {
        let mut config = BoincArgs::default().config();
        config.mode = BoincMode::Remote {
            url: url.into(),
            authenticator: authenticator.into(),
        };
        config.app = app.into();
        config
    }
}

#[derive(Debug)]
enum Engine {
    Project(ProjectEngine),
    Remote(RemoteEngine),
}

/// The BOINC backend.
///
/// # Runs that outlive their master
///
/// Every attempt is reported `Queued` once the project has its work unit
/// (after `create_work`, or `submit_batch` in remote mode), with a job id
/// that a later master can follow ([`crate::job_id`]):
/// `boinc-host <wu name> <run dir>` or `boinc-remote <batch id> <job name>`.
///
/// When the master keeps a run store ([`Backend::resumable`]), the work
/// units are the run's: work unit names start with the run's name, and a
/// master that shuts down with work outstanding neither cancels it nor
/// removes the run directory it is delivered to (one that is killed never
/// could). Attempts the master cancelled are still cancelled in BOINC.
/// The next master of the run gets those attempts back with their job ids
/// (`Dispatch::reattach`) and follows each work unit by name instead of
/// creating it again, under the attempt's new key, whether it is queued,
/// running, or finished while no master was alive:
///
/// - on the project host ([`crate::project`]), it asks the database whether
///   the work unit is still known, not cancelled, and, if assimilated,
///   whether its output or failure record is in the run directory, and
///   then awaits or takes it there;
/// - remotely, it checks with `query_batch` that the batch still lists the
///   job and is neither retired nor aborted, and polls the job like its
///   own.
///
/// A work unit that cannot be followed is logged and its attempt runs as
/// a new work unit; in each such case the old one can no longer produce a
/// result that would be counted.
#[derive(Debug)]
pub struct BoincBackend {
    config: BoincConfig,
    engine: Option<Engine>,
    /// The master's run store, when it keeps one.
    run_name: Option<String>,
}

impl BoincBackend {
    /// A BOINC backend with these settings; it connects when the master
    /// starts it.
    pub fn new(config: BoincConfig) -> Self {
        BoincBackend {
            config,
            engine: None,
            run_name: None,
        }
    }

    /// The run directory under the project (project-host mode, once started).
    pub fn run_dir(&self) -> Option<&std::path::Path> {
        match &self.engine {
            Some(Engine::Project(p)) => Some(p.run_dir()),
            _ => None,
        }
    }
}

/// The BOINC platform name of this build: the binary is installed as an
/// app version for it.
pub fn this_platform() -> &'static str {
    match (std::env::consts::ARCH, std::env::consts::OS) {
        ("x86", "linux") => "i686-pc-linux-gnu",
        ("aarch64", "linux") => "aarch64-unknown-linux-gnu",
        ("arm", "linux") => "arm-unknown-linux-gnueabihf",
        ("x86_64", "macos") => "x86_64-apple-darwin",
        ("aarch64", "macos") => "arm64-apple-darwin",
        _ => PLATFORM_X86_64_LINUX,
    }
}

fn error(message: impl Into<String>) -> BackendError {
    BackendError {
        backend: "boinc",
        message: message.into(),
    }
}

impl Backend for BoincBackend {
    fn name(&self) -> &'static str {
        "boinc"
    }

    fn start(&mut self, events: EventSink) -> Result<(), BackendError> {
        let c = &self.config;
        let engine = match &c.mode {
            BoincMode::ProjectHost { dir } => {
                let mut settings = c.project_settings(dir);
                settings.run_name = self.run_name.clone();
                Engine::Project(
                    ProjectEngine::start(settings, c.workunit.clone(), events).map_err(error)?,
                )
            }
            BoincMode::Remote { url, authenticator } => {
                if authenticator.is_empty() {
                    return Err(error(
                        "remote submission needs the user's authenticator: --boinc-authenticator KEY \
                         (or $PYMW_BOINC_AUTHENTICATOR); it is on the project's web site, account page",
                    ));
                }
                let settings = RemoteSettings {
                    url: url.clone(),
                    authenticator: authenticator.clone(),
                    app: c.app.clone(),
                    input_template: c.input_template.clone(),
                    output_template: c.output_template.clone(),
                    poll: c.poll.unwrap_or(Duration::from_secs(10)),
                    leave_running: c.leave_running,
                    max_output_bytes: c.max_output_bytes,
                    run_name: self.run_name.clone(),
                };
                Engine::Remote(RemoteEngine::start(settings, events).map_err(error)?)
            }
            BoincMode::Unset => {
                return Err(error(
                    "say where to submit: --boinc-project DIR for a master on the BOINC server, \
                     or --boinc-url URL --boinc-authenticator KEY for remote submission",
                ));
            }
        };
        self.engine = Some(engine);
        Ok(())
    }

    fn submit(&mut self, batch: Vec<Dispatch>) -> Result<(), BackendError> {
        match &mut self.engine {
            Some(Engine::Project(p)) => p.submit(batch).map_err(error),
            Some(Engine::Remote(r)) => r.submit(batch).map_err(error),
            None => Err(error("the backend is not started")),
        }
    }

    fn cancel(&mut self, keys: &[AttemptKey]) {
        match &mut self.engine {
            Some(Engine::Project(p)) => p.cancel(keys),
            Some(Engine::Remote(r)) => r.cancel(keys),
            None => {}
        }
    }

    /// Work units then outlive this master: at shutdown the unfinished
    /// ones are left (not cancelled) for the next master of the run, and
    /// their names start with the run's name (see the module docs).
    fn resumable(&mut self, run: &str) {
        self.run_name = Some(run.to_owned());
    }

    fn capacity_hint(&self) -> usize {
        self.config.max_in_flight
    }

    fn shutdown(&mut self) {
        match self.engine.take() {
            Some(Engine::Project(mut p)) => p.shutdown(),
            Some(Engine::Remote(mut r)) => r.shutdown(),
            None => {}
        }
    }
}

impl Drop for BoincBackend {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn args_to_config() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            boinc: BoincArgs,
        }
        let cli =
            Cli::try_parse_from(["x", "--boinc-project", "/p", "--boinc-min-quorum", "2"]).unwrap();
        let c = cli.boinc.config();
        assert_eq!(c.mode, BoincMode::ProjectHost { dir: "/p".into() });
        assert_eq!((c.workunit.min_quorum, c.workunit.target_nresults), (2, 2));
        assert_eq!(c.workunit.rsc_fpops_bound, 1e15);
        assert!(
            Cli::try_parse_from(["x", "--boinc-project", "/p", "--boinc-url", "http://h/"])
                .is_err()
        );
        let d = BoincArgs::default().config();
        let parsed = Cli::try_parse_from(["x"]).unwrap().boinc.config();
        assert_eq!(d.workunit, parsed.workunit);
        assert_eq!(d.mode, BoincMode::Unset);
    }

    #[test]
    fn redundancy_bounds() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            boinc: BoincArgs,
        }
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
                .map(|c| c.boinc.config().workunit)
        };
        // create_work refuses 0 ("no max_error_results given"): refused here.
        let e = parse(&["--boinc-max-error-results", "0"]).err().unwrap();
        assert!(e.to_string().contains("--boinc-max-error-results"), "{e}");
        assert_eq!(
            parse(&["--boinc-max-error-results", "1"])
                .unwrap()
                .max_error_results,
            Some(1)
        );
        // Sized from the quorum: one tie breaker, room for every error.
        let w = parse(&[]).unwrap();
        let bounds = |w: &WorkunitParams| {
            (
                w.max_error_results,
                w.max_success_results,
                w.max_total_results,
            )
        };
        assert_eq!(bounds(&w), (Some(3), Some(1), Some(5)));
        let w = parse(&["--boinc-min-quorum", "2"]).unwrap();
        assert_eq!(bounds(&w), (Some(3), Some(2), Some(6)));
        let w = parse(&[
            "--boinc-min-quorum",
            "2",
            "--boinc-max-total-results",
            "9",
            "--boinc-max-success-results",
            "4",
        ])
        .unwrap();
        assert_eq!(bounds(&w), (Some(3), Some(4), Some(9)));
    }
}
