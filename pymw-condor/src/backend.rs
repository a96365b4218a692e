//! The HTCondor backend: batches of attempts become clusters of jobs, and the
//! run's job event log tells what happened to them.
//!
//! # A run on disk
//!
//! ```text
//! DIR/RUN/                 the run directory (RUN: binary name, UTC time, pid)
//!   BINARY                 this binary, copied (checked with `__pymw list`)
//!   BINARY.OPSYS.ARCH      ... instead, one per platform when other binaries are given
//!   events.log             the job event log of every job of the run
//!   submit/N.sub           the submit description of each cluster
//!   placeholder/out        an empty output every job starts with (see below)
//!   tasks/KEY/in           one directory per attempt: the input envelope,
//!   tasks/KEY/out          the output envelope (empty if the worker died before writing it),
//!   tasks/KEY/stdout       and what the job printed
//!   tasks/KEY/stderr
//!   master                 the master's host name (a resumable run's later masters read it)
//! ```
//!
//! # A resumable run (`--run NAME`)
//!
//! Every master of the run has a directory of its own, `NAME-TIME-PID`, and
//! its jobs stay when it dies, for the next master to follow through that
//! directory's event log. The master that ends normally (the run's last one)
//! removes the run's stray jobs and the directories of every earlier master
//! on this host that is no longer alive, also of those that only followed
//! jobs.
//!
//! # Threads
//!
//! [`Backend::submit`] only queues: a submitter thread gathers what arrives
//! within [`CondorConfig::coalesce`] and submits it as one cluster (one per
//! distinct set of resources) with one `condor_submit -terse`. A follower
//! thread reads the event log as it grows and turns job events into
//! [`Event`]s (see the private `tracker` module). A command thread runs
//! `condor_rm` and `condor_release`, each once for everything that is
//! waiting.

use crate::eventlog::{EventLogError, EventLogFollower};
use crate::submit::{SubmitDescription, SubmitTask, check_item};
use crate::submit_output::parse_submit_output;
use crate::tracker::{JobId, Step, Tracker};
use pymw_core::backend::{
    AttemptKey, Backend, BackendError, Dispatch, Event, EventSink, Resources,
};
use pymw_core::job_env::job_environment;
use pymw_core::registry::Registry;
use pymw_core::wire;
use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::str::FromStr;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const BACKEND: &str = "condor";

fn error(message: impl Into<String>) -> BackendError {
    BackendError {
        backend: BACKEND,
        message: message.into(),
    }
}

/// What a task without resources of its own asks for.
static NO_RESOURCES: std::sync::LazyLock<Resources> = std::sync::LazyLock::new(Resources::default);

fn resources_of(dispatch: &Dispatch) -> &Resources {
    dispatch.resources.as_deref().unwrap_or(&NO_RESOURCES)
}

/// Most jobs in one cluster; a larger batch becomes several clusters.
const MAX_CLUSTER_JOBS: usize = 5000;
/// Most job ids on one `condor_rm` or `condor_release` command line.
const MAX_IDS_PER_COMMAND: usize = 1000;
/// How long shutdown waits for removed jobs to leave the queue before it
/// deletes their directories.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// A platform as HTCondor's machine ads name it: `OpSys` and `Arch`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Platform {
    opsys: String,
    arch: String,
}

impl Platform {
    /// The platform this binary was built for, in HTCondor's words.
    fn host() -> Platform {
        Platform {
            opsys: condor_opsys(std::env::consts::OS).to_owned(),
            arch: condor_arch(std::env::consts::ARCH).to_owned(),
        }
    }

    /// `(OpSys == "LINUX" && Arch == "X86_64")`.
    fn clause(&self) -> String {
        format!("(OpSys == \"{}\" && Arch == \"{}\")", self.opsys, self.arch)
    }

    /// `LINUX.X86_64`: what `$$(OpSys).$$(Arch)` expands to on such a machine.
    fn suffix(&self) -> String {
        format!("{}.{}", self.opsys, self.arch)
    }
}

/// HTCondor's `OpSys` for a Rust `target_os` (or the OS part of a target triple).
fn condor_opsys(os: &str) -> &str {
    match os {
        "linux" => "LINUX",
        "macos" | "darwin" => "OSX",
        "windows" => "WINDOWS",
        "freebsd" => "FREEBSD",
        other => other,
    }
}

/// HTCondor's `Arch` for a Rust `target_arch` (or the first part of a target
/// triple): HTCondor renames a few and keeps `uname -m` for the rest.
fn condor_arch(arch: &str) -> &str {
    match arch {
        "x86_64" | "amd64" => "X86_64",
        "x86" | "i386" | "i586" | "i686" => "INTEL",
        "powerpc64" => "PPC64",
        "powerpc64le" => "ppc64le",
        other => other,
    }
}

fn valid_platform_word(word: &str) -> bool {
    !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A worker binary built for another platform of a heterogeneous pool
/// (`cargo build --release --target aarch64-unknown-linux-gnu`).
///
/// The master copies it into the run directory next to its own binary and
/// checks, before anything is submitted, that its `__pymw list` shows exactly
/// the master's tasks and fingerprints (so it must be runnable on the master's
/// machine; for other Linux architectures, `qemu-user-binfmt` makes it so).
/// Every cluster then runs `BINARY.$$(OpSys).$$(Arch)`, which HTCondor
/// expands on the machine a job lands on, with `requirements` that admit
/// exactly the platforms that have a binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraExecutable {
    /// The binary.
    pub path: PathBuf,
    /// HTCondor's `OpSys` of the machines it runs on, such as `LINUX`.
    pub opsys: String,
    /// HTCondor's `Arch` of the machines it runs on, such as `aarch64` or `X86_64`.
    pub arch: String,
}

impl ExtraExecutable {
    /// A binary for machines whose ads say `OpSys == opsys && Arch == arch`.
    pub fn new(
        path: impl Into<PathBuf>,
        opsys: impl Into<String>,
        arch: impl Into<String>,
    ) -> Self {
        ExtraExecutable {
            path: path.into(),
            opsys: opsys.into(),
            arch: arch.into(),
        }
    }

    /// A binary built for a Rust target triple, such as
    /// `aarch64-unknown-linux-gnu` (`OpSys` `LINUX`, `Arch` `aarch64`).
    pub fn for_target(target: &str, path: impl Into<PathBuf>) -> Result<Self, String> {
        let mut parts = target.split('-');
        let arch = parts.next().unwrap_or_default();
        let os = parts
            .find_map(|part| match part {
                "linux" => Some("linux"),
                "darwin" => Some("macos"),
                "windows" => Some("windows"),
                "freebsd" => Some("freebsd"),
                _ => None,
            })
            .ok_or_else(|| {
                format!("cannot tell the operating system of target `{target}`: give OPSYS/ARCH instead, such as LINUX/aarch64")
            })?;
        Ok(ExtraExecutable::new(
            path,
            condor_opsys(os),
            condor_arch(arch),
        ))
    }

    fn platform(&self) -> Result<Platform, String> {
        if !valid_platform_word(&self.opsys) || !valid_platform_word(&self.arch) {
            return Err(format!(
                "executable {}: OpSys {:?} and Arch {:?} must be words of letters, digits and _",
                self.path.display(),
                self.opsys,
                self.arch
            ));
        }
        Ok(Platform {
            opsys: self.opsys.clone(),
            arch: self.arch.clone(),
        })
    }
}

impl FromStr for ExtraExecutable {
    type Err = String;

    /// `TARGET=PATH`, where TARGET is a Rust target triple
    /// (`aarch64-unknown-linux-gnu`) or `OPSYS/ARCH` (`LINUX/aarch64`).
    fn from_str(text: &str) -> Result<Self, String> {
        let (target, path) = text.split_once('=').ok_or_else(|| {
            format!("`{text}`: expected TARGET=PATH, such as aarch64-unknown-linux-gnu=target/aarch64-unknown-linux-gnu/release/app")
        })?;
        if path.is_empty() {
            return Err(format!("`{text}`: the path is empty"));
        }
        match target.split_once('/') {
            Some((opsys, arch)) => Ok(ExtraExecutable::new(path, opsys, arch)),
            None => ExtraExecutable::for_target(target, path),
        }
    }
}

/// Settings of the HTCondor backend.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CondorConfig {
    /// Where run directories are made. It must be on a file system the schedd
    /// can write to as the job's owner (the event log and the jobs' output
    /// files are written there). Default: `$PYMW_CONDOR_SHARED_DIR`, else
    /// `./pymw-condor`.
    pub dir: PathBuf,
    /// The run's name: its directory and every job's `JobBatchName`. Default:
    /// the binary's file name, the UTC start time and the master's pid.
    pub run_name: Option<String>,
    /// Another schedd (`-name` of every `condor_*` command). Default: the
    /// local one.
    pub schedd_name: Option<String>,
    /// Another pool's central manager (`-pool` of every `condor_*` command).
    pub pool: Option<String>,
    /// On shutdown, leave queued and running jobs (and the run directory) in
    /// place instead of removing them.
    pub leave_running: bool,
    /// How often a job held for a file transfer failure (hold codes 12 and
    /// 13) is released before its attempt counts as lost. Default 2.
    pub max_releases: u32,
    /// A ClassAd expression every job's `requirements` must also satisfy.
    pub requirements: Option<String>,
    /// `request_memory` in MiB of tasks that do not ask for their own.
    pub request_memory_mib: Option<u64>,
    /// `request_disk` in MiB of tasks that do not ask for their own.
    pub request_disk_mib: Option<u64>,
    /// More submit commands for every job, such as
    /// `("+AccountingGroup", "\"group_physics.alice\"")`; values are written
    /// verbatim (quote ClassAd strings yourself). The variables of an
    /// `environment` command (`"A=x B='y z'"`, HTCondor's new syntax) are
    /// merged with those pymw passes itself (see
    /// [`pymw_core::job_env::job_environment`]) into one command.
    pub submit_commands: Vec<(String, String)>,
    /// Binaries for other platforms of a heterogeneous pool.
    pub executables: Vec<ExtraExecutable>,
    /// The execute machines see the run directory at the same path (a
    /// shared file system, as on pymw's testbed): jobs run the binary from
    /// there instead of receiving a copy each. Inputs and outputs are still
    /// transferred. Worth it for big binaries: a 40 MB debug build costs
    /// about 0.3 s of transfer per job on a small machine.
    pub shared_filesystem: bool,
    /// Keep every task directory and the run directory (for debugging).
    pub keep_files: bool,
    /// How long the submitter waits for more attempts after the first one of
    /// a cluster arrives. Default 100 ms.
    pub coalesce: Duration,
    /// How often the event log is read. Default 50 ms.
    pub poll_interval: Duration,
    /// How many attempts may be in flight; `map`'s window follows it.
    /// Default 4096.
    pub max_in_flight: usize,
    /// How much of a failed job's stderr is reported. Default 8 KiB.
    pub stderr_tail_bytes: usize,
    /// Mode of the directories the master makes. Default: `0o777` when the
    /// master runs as root (root cannot own jobs, so they run as another user
    /// who must write there), else `0o755`.
    pub dir_mode: Option<u32>,
    /// Where the `condor_*` tools are. Default: found on `PATH`.
    pub tool_dir: Option<PathBuf>,
    /// Longest a `condor_*` command may take. Default 120 s.
    pub command_timeout: Duration,
}

/// The default run directory base: `$PYMW_CONDOR_SHARED_DIR`, else `./pymw-condor`.
fn default_dir() -> PathBuf {
    std::env::var_os("PYMW_CONDOR_SHARED_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("pymw-condor"), PathBuf::from)
}

impl Default for CondorConfig {
    fn default() -> Self {
        CondorConfig {
            dir: default_dir(),
            run_name: None,
            schedd_name: None,
            pool: None,
            leave_running: false,
            max_releases: 2,
            requirements: None,
            request_memory_mib: None,
            request_disk_mib: None,
            submit_commands: Vec::new(),
            executables: Vec::new(),
            shared_filesystem: false,
            keep_files: false,
            coalesce: Duration::from_millis(100),
            poll_interval: Duration::from_millis(50),
            max_in_flight: 4096,
            stderr_tail_bytes: 8192,
            dir_mode: None,
            tool_dir: None,
            command_timeout: Duration::from_secs(120),
        }
    }
}

impl CondorConfig {
    /// The defaults, with run directories under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CondorConfig {
            dir: dir.into(),
            ..CondorConfig::default()
        }
    }

    /// Sets the run's name.
    pub fn run_name(mut self, name: impl Into<String>) -> Self {
        self.run_name = Some(name.into());
        self
    }

    /// Sets how often transfer-failure holds are released.
    pub fn max_releases(mut self, releases: u32) -> Self {
        self.max_releases = releases;
        self
    }

    /// Adds a binary for another platform.
    pub fn executable(mut self, executable: ExtraExecutable) -> Self {
        self.executables.push(executable);
        self
    }

    /// Adds a submit command for every job.
    pub fn submit_command(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.submit_commands.push((key.into(), value.into()));
        self
    }

    /// Sets whether execute machines see the run directory at the same path.
    pub fn shared_filesystem(mut self, shared: bool) -> Self {
        self.shared_filesystem = shared;
        self
    }

    /// Sets whether jobs are left running on shutdown.
    pub fn leave_running(mut self, leave: bool) -> Self {
        self.leave_running = leave;
        self
    }
}

/// Command-line options of the HTCondor backend; `pymw::Args` flattens them.
#[derive(Debug, Clone, clap::Args)]
#[non_exhaustive]
pub struct CondorArgs {
    /// HTCondor: directory for run directories [default: $PYMW_CONDOR_SHARED_DIR, else ./pymw-condor]
    #[arg(long, value_name = "DIR")]
    pub condor_dir: Option<PathBuf>,
    /// HTCondor: the schedd to use (`-name`) [default: the local one]
    #[arg(long, value_name = "SCHEDD")]
    pub condor_name: Option<String>,
    /// HTCondor: the pool's central manager (`-pool HOST[:PORT]`)
    #[arg(long, value_name = "HOST")]
    pub condor_pool: Option<String>,
    /// HTCondor: leave jobs queued or running when the master ends
    #[arg(long)]
    pub condor_leave_running: bool,
    /// HTCondor: releases of a job held for a file transfer failure before its attempt is lost
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub condor_max_releases: u32,
    /// HTCondor: a ClassAd expression every job's requirements must also satisfy
    #[arg(long, value_name = "EXPR")]
    pub condor_requirements: Option<String>,
    /// HTCondor: request_memory of each job (MiB, or with a unit: 512M, 2G)
    #[arg(long, value_name = "SIZE", value_parser = parse_mib)]
    pub condor_request_memory: Option<u64>,
    /// HTCondor: request_disk of each job (MiB, or with a unit: 512M, 2G)
    #[arg(long, value_name = "SIZE", value_parser = parse_mib)]
    pub condor_request_disk: Option<u64>,
    /// HTCondor: one more submit command for every job, KEY=VALUE (repeatable); environment="A=x B='y z'" is merged with pymw's own variables
    #[arg(long = "condor-submit-command", value_name = "KEY=VALUE", value_parser = parse_submit_command)]
    pub condor_submit_commands: Vec<(String, String)>,
    /// HTCondor: a binary for another platform, TARGET=PATH with TARGET a target triple or OPSYS/ARCH (repeatable)
    #[arg(long = "condor-executable", value_name = "TARGET=PATH", value_parser = ExtraExecutable::from_str)]
    pub condor_executables: Vec<ExtraExecutable>,
    /// HTCondor: execute machines see --condor-dir at the same path; run the binary from there instead of transferring it with each job
    #[arg(long)]
    pub condor_shared_fs: bool,
    /// HTCondor: keep the run directory and every task's files
    #[arg(long)]
    pub condor_keep_files: bool,
}

impl Default for CondorArgs {
    fn default() -> Self {
        CondorArgs {
            condor_dir: None,
            condor_name: None,
            condor_pool: None,
            condor_leave_running: false,
            condor_max_releases: 2,
            condor_requirements: None,
            condor_request_memory: None,
            condor_request_disk: None,
            condor_submit_commands: Vec::new(),
            condor_executables: Vec::new(),
            condor_shared_fs: false,
            condor_keep_files: false,
        }
    }
}

impl CondorArgs {
    /// The backend settings these options ask for.
    pub fn config(&self) -> CondorConfig {
        CondorConfig {
            dir: self.condor_dir.clone().unwrap_or_else(default_dir),
            schedd_name: self.condor_name.clone(),
            pool: self.condor_pool.clone(),
            leave_running: self.condor_leave_running,
            max_releases: self.condor_max_releases,
            requirements: self.condor_requirements.clone(),
            request_memory_mib: self.condor_request_memory,
            request_disk_mib: self.condor_request_disk,
            submit_commands: self.condor_submit_commands.clone(),
            executables: self.condor_executables.clone(),
            shared_filesystem: self.condor_shared_fs,
            keep_files: self.condor_keep_files,
            ..CondorConfig::default()
        }
    }
}

/// Parses `512` (MiB), `512M`, `2G`, `1T`, `4096K` into MiB (rounded up).
pub fn parse_mib(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size: write e.g. 512, 512M, 2G"))?;
    let kib = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" | "M" => number.checked_mul(1024),
        "K" => Some(number),
        "G" => number.checked_mul(1 << 20),
        "T" => number.checked_mul(1 << 30),
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use K, M, G or T"
            ));
        }
    }
    .ok_or_else(|| format!("`{text}` is too large"))?;
    Ok(kib.div_ceil(1024))
}

/// Parses `KEY=VALUE` (the value may contain `=`).
pub fn parse_submit_command(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| {
        format!("`{text}`: expected KEY=VALUE, such as +AccountingGroup=\"group.alice\"")
    })?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("`{text}`: the key is empty"));
    }
    Ok((key.to_owned(), value.trim().to_owned()))
}

/// The HTCondor backend. See the [module](self) documentation.
#[derive(Debug)]
pub struct CondorBackend {
    config: CondorConfig,
    shared: Option<Arc<Shared>>,
    threads: Vec<JoinHandle<()>>,
    /// Resources already checked to render.
    validated: Vec<Resources>,
    /// Removes the run's jobs if this process dies without shutting down.
    reaper: Option<Reaper>,
    /// The run store's name, when the master keeps one: jobs outlive a
    /// master that dies, for the next one to follow.
    resumable: Option<String>,
}

/// A `/bin/sh` child, in its own process group, that reads one line from a
/// pipe whose other end only this process holds. A master that shuts down
/// writes `done`; a master that dies any other way (Ctrl-C, SIGKILL, a
/// panic with `panic = "abort"`) closes the pipe, and the reaper then runs
/// `condor_rm -constraint 'JobBatchName == "RUN"'` and deletes the run
/// directory. Not started when jobs are to be left running.
#[derive(Debug)]
struct Reaper {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
}

/// The reaper's script: `$1` the run directory to delete ("" to keep it),
/// the rest the `condor_rm` command line.
const REAPER_SCRIPT: &str = r#"dir=$1; shift
IFS= read -r line
[ "$line" = done ] && exit 0
"$@" >/dev/null 2>&1
if [ -n "$dir" ]; then sleep 5; rm -rf -- "$dir"; fi
exit 0"#;

fn spawn_reaper(shared: &Shared) -> std::io::Result<Reaper> {
    use std::os::unix::process::CommandExt;
    let tools = &shared.tools;
    let condor_rm = tools
        .dir
        .as_ref()
        .map_or_else(|| PathBuf::from("condor_rm"), |d| d.join("condor_rm"));
    let mut command = Command::new("/bin/sh");
    command
        .args(["-c", REAPER_SCRIPT, "pymw-condor-reaper"])
        .arg(if shared.config.keep_files {
            PathBuf::new()
        } else {
            shared.paths.dir.clone()
        })
        .arg(condor_rm);
    if let Some(name) = &tools.name {
        command.args(["-name", name]);
    }
    if let Some(pool) = &tools.pool {
        command.args(["-pool", pool]);
    }
    command
        .args(["-constraint", &batch_constraint(&shared.paths.name)])
        .current_dir(&shared.paths.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Not in the terminal's process group: Ctrl-C must reach only the
        // master, whose death the reaper is waiting for.
        .process_group(0);
    let mut child = command.spawn()?;
    let stdin = child.stdin.take();
    Ok(Reaper { child, stdin })
}

/// Every job of the run: `JobBatchName == "RUN"`.
fn batch_constraint(run: &str) -> String {
    format!("JobBatchName == \"{run}\"")
}

impl CondorBackend {
    /// A backend with these settings; the run directory is made when the
    /// master starts.
    pub fn new(config: CondorConfig) -> Self {
        CondorBackend {
            config,
            shared: None,
            threads: Vec::new(),
            validated: Vec::new(),
            reaper: None,
            resumable: None,
        }
    }

    /// The run directory, once started.
    pub fn run_dir(&self) -> Option<&Path> {
        self.shared.as_ref().map(|s| s.paths.dir.as_path())
    }

    /// The run's name (`JobBatchName` of its jobs), once started.
    pub fn run_name(&self) -> Option<&str> {
        self.shared.as_ref().map(|s| s.paths.name.as_str())
    }
}

impl Default for CondorBackend {
    fn default() -> Self {
        CondorBackend::new(CondorConfig::default())
    }
}

/// Runs `condor_*` tools the same way every time.
#[derive(Debug, Clone)]
struct Tools {
    dir: Option<PathBuf>,
    name: Option<String>,
    pool: Option<String>,
    timeout: Duration,
    /// Commands run here (the testbed's wrappers need a directory the pool
    /// can see).
    cwd: PathBuf,
}

impl Tools {
    fn run(&self, tool: &str, args: &[&str]) -> Result<Output, String> {
        let program = self
            .dir
            .as_ref()
            .map_or_else(|| PathBuf::from(tool), |d| d.join(tool));
        let mut command = Command::new(&program);
        command.current_dir(&self.cwd);
        if let Some(name) = &self.name {
            command.args(["-name", name]);
        }
        if let Some(pool) = &self.pool {
            command.args(["-pool", pool]);
        }
        command.args(args);
        run_with_timeout(command, self.timeout).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "{tool} not found{}: run the master on an HTCondor submit host (access point) or put the condor_* \
                     tools on PATH (for pymw's testbed: eval \"$(testbeds/condor/up.sh --print-env)\")",
                    self.dir.as_ref().map(|d| format!(" in {}", d.display())).unwrap_or_default()
                )
            } else {
                format!("running {tool}: {e}")
            }
        })
    }
}

/// Runs a command to its end, killing it after `timeout`.
///
/// The child is waited for only here, through its [`std::process::Child`]:
/// until this function reaps it, its pid cannot be reused, and
/// [`Child::kill`](std::process::Child::kill) does nothing once it is reaped,
/// so the kill can never reach another process. Its output is read by two
/// threads; a grandchild that keeps a pipe open past the timeout is not
/// waited for.
fn run_with_timeout(mut command: Command, timeout: Duration) -> std::io::Result<Output> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let deadline = Instant::now() + timeout;
    let readers = read_to_end(child.stdout.take())
        .and_then(|out| Ok((out, read_to_end(child.stderr.take())?)));
    let (stdout, stderr) = match readers {
        Ok(readers) => readers,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    let timed_out = || {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {timeout:?}; killed"),
        )
    };
    // Polled: condor_* tools take tens of milliseconds at least.
    let mut pause = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        let now = Instant::now();
        if now >= deadline {
            // Not reaped yet (only try_wait above reaps it): still our child.
            let _ = child.kill();
            let _ = child.wait();
            return Err(timed_out());
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    let rest = |rx: &mpsc::Receiver<Vec<u8>>| {
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("it ended ({status}), but its output was still open after {timeout:?}"),
                )
            })
    };
    Ok(Output {
        status,
        stdout: rest(&stdout)?,
        stderr: rest(&stderr)?,
    })
}

/// Reads a pipe to its end on a thread of its own; the bytes arrive on the
/// channel (none for no pipe).
fn read_to_end(
    pipe: Option<impl Read + Send + 'static>,
) -> std::io::Result<mpsc::Receiver<Vec<u8>>> {
    let (tx, rx) = mpsc::channel();
    match pipe {
        Some(mut pipe) => {
            std::thread::Builder::new()
                .name("pymw-condor-cmd".into())
                .spawn(move || {
                    let mut bytes = Vec::new();
                    let _ = pipe.read_to_end(&mut bytes);
                    let _ = tx.send(bytes);
                })?;
        }
        None => {
            let _ = tx.send(Vec::new());
        }
    }
    Ok(rx)
}

fn text_of(output: &Output) -> String {
    let mut text = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if text.is_empty() {
        text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    }
    text
}

#[derive(Debug)]
struct RunPaths {
    name: String,
    dir: PathBuf,
    tasks: PathBuf,
    submits: PathBuf,
    event_log: PathBuf,
    /// `placeholder/out`: the empty output every job starts with.
    placeholder: PathBuf,
    /// The executable of every job (without the platform suffix when there
    /// is one per platform).
    executable: PathBuf,
}

#[derive(Debug)]
struct Shared {
    config: CondorConfig,
    tools: Tools,
    paths: RunPaths,
    /// Platforms with a checked binary, the master's own first.
    platforms: Vec<Platform>,
    /// The master's settings every job gets (see [`job_environment`]).
    environment: Vec<(String, String)>,
    dir_mode: u32,
    state: Mutex<State>,
    wake: Condvar,
    events: EventSink,
    commands: mpsc::Sender<JobCommand>,
}

#[derive(Debug)]
struct State {
    pending: VecDeque<Dispatch>,
    /// When the oldest pending attempt arrived.
    pending_since: Option<Instant>,
    tracker: Tracker,
    shutdown: bool,
    stop_follower: bool,
    /// Clusters submitted so far (names the submit files).
    clusters: u64,
    /// Event logs of earlier masters of the run whose jobs are followed.
    earlier_logs: Vec<EarlierLog>,
    /// Run directories of earlier masters whose jobs were followed: removed
    /// with this one's.
    earlier_dirs: Vec<PathBuf>,
}

/// The event log of an earlier master of the run, and the jobs followed
/// through it.
#[derive(Debug)]
struct EarlierLog {
    path: PathBuf,
    jobs: Vec<JobId>,
    /// Jobs that were not in the queue when they were taken over: their end
    /// must be in the log already, or it will never be.
    vanished: Vec<JobId>,
}

#[derive(Debug)]
enum JobCommand {
    Release(Vec<JobId>),
    Remove(Vec<JobId>),
    Stop,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicked thread leaves whole updates behind; carry on.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn task_dir(&self, key: AttemptKey) -> PathBuf {
        self.paths.tasks.join(key.to_string())
    }

    /// A submit description for attempts with these resources, without tasks.
    fn description(&self, resources: &Resources) -> SubmitDescription {
        let config = &self.config;
        let mut d = SubmitDescription::new(
            &self.paths.executable,
            &self.paths.event_log,
            &self.paths.name,
        );
        d.executable_per_platform = self.platforms.len() > 1;
        d.transfer_executable = !config.shared_filesystem;
        d.input_file = "in".into();
        d.output_file = "out".into();
        d.output_placeholder = Some(self.paths.placeholder.clone());
        d.stdout_file = "stdout".into();
        d.stderr_file = "stderr".into();
        d.request_cpus = Some(resources.cpus.unwrap_or(1));
        d.request_memory_mib = resources.memory_mib.or(config.request_memory_mib);
        d.request_disk_mib = resources.disk_mib.or(config.request_disk_mib);
        let mut requirements = Vec::new();
        if d.executable_per_platform {
            let any: Vec<String> = self.platforms.iter().map(Platform::clause).collect();
            requirements.push(format!("({})", any.join(" || ")));
        }
        if let Some(r) = &config.requirements {
            requirements.push(format!("({})", r.trim()));
        }
        d.environment = self.environment.clone();
        d.extra_commands = config.submit_commands.clone();
        for (key, value) in &resources.extra {
            if key.eq_ignore_ascii_case("requirements") {
                requirements.push(format!("({})", value.trim()));
            } else {
                d.extra_commands.push((key.clone(), value.clone()));
            }
        }
        d.requirements = (!requirements.is_empty()).then(|| requirements.join(" && "));
        d
    }
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn default_dir_mode() -> u32 {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        0o777
    } else {
        0o755
    }
}

/// Letters, digits, `_`, `-` and `.`: safe as a file name, in submit item
/// data and in a ClassAd string.
fn sanitize(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches('.').to_owned();
    if cleaned.is_empty() {
        "pymw".to_owned()
    } else {
        cleaned
    }
}

fn binary_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .map_or_else(|| "pymw-worker".to_owned(), |n| sanitize(&n))
}

/// `PREFIX-YYYYMMDDTHHMMSSZ-PID`, then `...-PID-2`, `...-PID-3` for more
/// masters of one process (they may start within the same second).
fn life_name(prefix: &str) -> String {
    static MASTERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = MASTERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let mut name = format!(
        "{}-{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z-{}",
        sanitize(prefix),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        std::process::id()
    );
    if n > 1 {
        name.push_str(&format!("-{n}"));
    }
    name
}

/// The file in a run directory that names the master's host.
const MASTER_FILE: &str = "master";

/// The run directories of the masters of resumable run `run` under `base`
/// ([`life_name`]s `RUN-YYYYMMDDTHHMMSSZ-PID[-N]` holding a `submit`
/// directory), except those of masters that are alive in another process,
/// and those of masters on another host (whose pids mean nothing here).
fn master_dirs(base: &Path, run: &str) -> Vec<PathBuf> {
    let prefix = format!("{}-", sanitize(run));
    let Ok(entries) = std::fs::read_dir(base) else {
        return Vec::new();
    };
    let host = pymw_core::sys::host_name();
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let pid = life_pid(name.to_str()?.strip_prefix(&prefix)?)?;
            let path = entry.path();
            if !path.join("submit").is_dir() {
                return None;
            }
            // Missing: a master killed while making its directory.
            if let Ok(text) = std::fs::read_to_string(path.join(MASTER_FILE))
                && text.trim() != host
            {
                return None;
            }
            (pid == std::process::id() || !process_alive(pid)).then_some(path)
        })
        .collect()
}

/// The pid of a [`life_name`] without its prefix: `YYYYMMDDTHHMMSSZ-PID[-N]`.
fn life_pid(rest: &str) -> Option<u32> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (time, rest) = rest.split_at_checked(16)?;
    let (date, clock) = time.split_once('T')?;
    let clock = clock.strip_suffix('Z')?;
    if date.len() != 8 || clock.len() != 6 || !digits(date) || !digits(clock) {
        return None;
    }
    let mut parts = rest.strip_prefix('-')?.split('-');
    let pid = parts.next().filter(|p| digits(p))?.parse().ok()?;
    match (parts.next(), parts.next()) {
        (None, _) => Some(pid),
        (Some(n), None) if digits(n) => Some(pid),
        _ => None,
    }
}

/// Whether a process with this pid exists (signal 0 sends nothing).
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks that the process exists.
    let found = unsafe { libc::kill(pid, 0) } == 0;
    found || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// At most a few names, then how many more.
fn some_names(names: &[&str]) -> String {
    const SHOWN: usize = 4;
    match names.len() {
        0 => "none".to_owned(),
        n if n <= SHOWN => names.join(", "),
        n => format!("{} and {} more", names[..SHOWN].join(", "), n - SHOWN),
    }
}

/// Runs `BINARY __pymw list` (the copy at `path` of the binary at `shown`)
/// and checks it against this master's tasks.
fn check_listing(path: &Path, shown: &Path, cwd: &Path) -> Result<(), String> {
    let mut command = Command::new(path);
    command
        .args([pymw_core::worker::ROLE_ARG, "list"])
        .current_dir(cwd);
    let output = run_with_timeout(command, Duration::from_secs(60)).map_err(|e| {
        if e.raw_os_error() == Some(libc::ENOEXEC) {
            format!(
                "cannot run {} on this machine to check its tasks ({e}). pymw checks every binary's `__pymw list` \
                 before shipping it: run the master where the binary can run (for other Linux architectures, \
                 install qemu-user-binfmt)",
                shown.display()
            )
        } else {
            format!("cannot run {} to check its tasks: {e}", shown.display())
        }
    })?;
    let text = String::from_utf8_lossy(&output.stdout);
    let listing = pymw_core::worker::parse_listing(&text).map_err(|e| {
        format!(
            "{} did not answer `__pymw list` with a task listing ({e}; {}): is it a pymw binary whose main calls \
             pymw::init() (or has #[pymw::main])?",
            shown.display(),
            pymw_core::sys::describe_exit(output.status)
        )
    })?;
    let ours = Registry::global().listing();
    if listing == ours {
        return Ok(());
    }
    let missing: Vec<&str> = ours
        .iter()
        .filter(|t| !listing.contains(t))
        .map(|(n, _)| n.as_str())
        .collect();
    let extra: Vec<&str> = listing
        .iter()
        .filter(|t| !ours.contains(t))
        .map(|(n, _)| n.as_str())
        .collect();
    Err(format!(
        "{} holds other tasks than this master (missing or different here: {}; only there: {}): build it from the \
         same source and pymw version as the master (`cargo build --release --target TARGET`) and pass the new binary",
        shown.display(),
        some_names(&missing),
        some_names(&extra),
    ))
}

fn copy_executable(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::copy(from, to)
        .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))?;
    set_mode(to, 0o755).map_err(|e| format!("cannot make {} executable: {e}", to.display()))
}

/// Makes the run directory and checks everything before the first submit.
/// Makes the run directory and checks the schedd and the binaries.
/// `resumable`: the run store's name, which is then the jobs'
/// `JobBatchName` for every master of the run, each with a directory of its
/// own (`NAME-TIME-PID`).
fn prepare(
    config: &CondorConfig,
    dir_mode: u32,
    resumable: Option<&str>,
) -> Result<(RunPaths, Tools, Vec<Platform>), String> {
    let base = if config.dir.is_absolute() {
        config.dir.clone()
    } else {
        std::env::current_dir()
            .map_err(|e| format!("cannot read the current directory: {e}"))?
            .join(&config.dir)
    };
    if !base.is_dir() {
        std::fs::create_dir_all(&base)
            .map_err(|e| format!("cannot create {}: {e}", base.display()))?;
        let _ = set_mode(&base, dir_mode);
    }
    let (name, dir_name) = match (config.run_name.as_deref(), resumable) {
        (Some(name), None) => (name.to_owned(), name.to_owned()),
        (None, None) => {
            let name = life_name(&binary_name());
            (name.clone(), name)
        }
        (Some(name), Some(_)) | (None, Some(name)) => (name.to_owned(), life_name(name)),
    };
    check_item("run name", &name).map_err(|e| e.to_string())?;
    if name.contains('/') {
        return Err(format!("run name {name:?} must not contain '/'"));
    }
    let dir = base.join(&dir_name);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(format!(
                "run directory {} already exists: choose another run name",
                dir.display()
            ));
        }
        Err(e) => {
            return Err(format!(
                "cannot create the run directory {}: {e}",
                dir.display()
            ));
        }
    }
    let result = (|| {
        set_mode(&dir, dir_mode)
            .map_err(|e| format!("cannot set the mode of {}: {e}", dir.display()))?;
        let tasks = dir.join("tasks");
        let submits = dir.join("submit");
        let placeholder_dir = dir.join("placeholder");
        for sub in [&tasks, &submits, &placeholder_dir] {
            std::fs::create_dir(sub)
                .map_err(|e| format!("cannot create {}: {e}", sub.display()))?;
            set_mode(sub, dir_mode)
                .map_err(|e| format!("cannot set the mode of {}: {e}", sub.display()))?;
        }
        let placeholder = placeholder_dir.join("out");
        std::fs::write(&placeholder, b"")
            .map_err(|e| format!("cannot create {}: {e}", placeholder.display()))?;
        let master = dir.join(MASTER_FILE);
        std::fs::write(&master, format!("{}\n", pymw_core::sys::host_name()))
            .map_err(|e| format!("cannot create {}: {e}", master.display()))?;
        let tools = Tools {
            dir: config.tool_dir.clone(),
            name: config.schedd_name.clone(),
            pool: config.pool.clone(),
            timeout: config.command_timeout,
            cwd: dir.clone(),
        };
        // The schedd must answer before anything is queued for it.
        let output = tools.run("condor_q", &["-totals"])?;
        if !output.status.success() {
            return Err(format!(
                "cannot reach the HTCondor schedd: condor_q -totals failed ({}): {}",
                pymw_core::sys::describe_exit(output.status),
                text_of(&output)
            ));
        }
        let host = Platform::host();
        let mut platforms = vec![host.clone()];
        let executable = dir.join(binary_name());
        let own_source = Path::new("/proc/self/exe");
        let own_source = if own_source.exists() {
            own_source.to_path_buf()
        } else {
            std::env::current_exe()
                .map_err(|e| format!("cannot find the running executable: {e}"))?
        };
        let per_platform = !config.executables.is_empty();
        let with_suffix = |p: &Platform| {
            let mut path = executable.clone().into_os_string();
            path.push(format!(".{}", p.suffix()));
            PathBuf::from(path)
        };
        let own = if per_platform {
            with_suffix(&host)
        } else {
            executable.clone()
        };
        copy_executable(&own_source, &own)?;
        check_listing(&own, &own, &dir)?;
        for extra in &config.executables {
            let platform = extra.platform()?;
            if platforms.contains(&platform) {
                return Err(format!(
                    "two binaries for {}/{} ({}): give one per platform (the master's own binary serves {}/{})",
                    platform.opsys,
                    platform.arch,
                    extra.path.display(),
                    host.opsys,
                    host.arch
                ));
            }
            let copy = with_suffix(&platform);
            copy_executable(&extra.path, &copy)?;
            check_listing(&copy, &extra.path, &dir)?;
            platforms.push(platform);
        }
        let paths = RunPaths {
            name: name.clone(),
            event_log: dir.join("events.log"),
            placeholder,
            dir: dir.clone(),
            tasks,
            submits,
            executable,
        };
        Ok((paths, tools, platforms))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

impl Backend for CondorBackend {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn start(&mut self, events: EventSink) -> Result<(), BackendError> {
        let dir_mode = self.config.dir_mode.unwrap_or_else(default_dir_mode);
        let (paths, tools, platforms) =
            prepare(&self.config, dir_mode, self.resumable.as_deref()).map_err(error)?;
        let (commands, command_rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            config: self.config.clone(),
            tools,
            paths,
            platforms,
            environment: job_environment(),
            dir_mode,
            state: Mutex::new(State {
                pending: VecDeque::new(),
                pending_since: None,
                tracker: Tracker::new(self.config.max_releases),
                shutdown: false,
                stop_follower: false,
                clusters: 0,
                earlier_logs: Vec::new(),
                earlier_dirs: Vec::new(),
            }),
            wake: Condvar::new(),
            events,
            commands,
        });
        // Pass-through commands and requirements are checked once, now.
        if let Err(message) = validate(&shared, &Resources::default(), "pymw::check") {
            let _ = std::fs::remove_dir_all(&shared.paths.dir);
            return Err(error(message));
        }
        // A resumable run's jobs stay for the next master to follow.
        if !self.config.leave_running && self.resumable.is_none() {
            match spawn_reaper(&shared) {
                Ok(reaper) => self.reaper = Some(reaper),
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&shared.paths.dir);
                    return Err(error(format!("cannot start the job reaper (/bin/sh): {e}")));
                }
            }
        }
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(f)
                .map_err(|e| error(format!("cannot start a thread: {e}")))
        };
        let s = shared.clone();
        self.threads.push(spawn(
            "pymw-condor-submit",
            Box::new(move || submitter(&s)),
        )?);
        let s = shared.clone();
        self.threads
            .push(spawn("pymw-condor-follow", Box::new(move || follower(&s)))?);
        let s = shared.clone();
        self.threads.push(spawn(
            "pymw-condor-commands",
            Box::new(move || run_commands(&s, &command_rx)),
        )?);
        tracing::info!(
            run = %shared.paths.name,
            dir = %shared.paths.dir.display(),
            platforms = ?shared.platforms.iter().map(Platform::suffix).collect::<Vec<_>>(),
            "HTCondor backend started"
        );
        self.shared = Some(shared);
        Ok(())
    }

    fn submit(&mut self, batch: Vec<Dispatch>) -> Result<(), BackendError> {
        let Some(shared) = self.shared.clone() else {
            return Err(error("submit before start"));
        };
        for dispatch in &batch {
            let resources = resources_of(dispatch);
            if !self.validated.iter().any(|r| r == resources) {
                validate(&shared, resources, dispatch.task.name).map_err(error)?;
                if self.validated.len() >= 256 {
                    self.validated.clear();
                }
                self.validated.push(resources.clone());
            }
            check_item("task name", dispatch.task.name).map_err(|e| error(e.to_string()))?;
        }
        let mut state = shared.lock();
        if state.pending.is_empty() {
            state.pending_since = Some(Instant::now());
        }
        state.pending.extend(batch);
        drop(state);
        shared.wake.notify_all();
        Ok(())
    }

    fn cancel(&mut self, keys: &[AttemptKey]) {
        let Some(shared) = &self.shared else { return };
        let mut remove = Vec::new();
        {
            let mut state = shared.lock();
            state.pending.retain(|d| !keys.contains(&d.key));
            if state.pending.is_empty() {
                state.pending_since = None;
            }
            for &key in keys {
                if let Some(job) = state.tracker.cancel(key) {
                    remove.push(job);
                }
            }
        }
        if !remove.is_empty() {
            let _ = shared.commands.send(JobCommand::Remove(remove));
        }
    }

    fn resumable(&mut self, run: &str) {
        self.resumable = Some(run.to_owned());
    }

    fn capacity_hint(&self) -> usize {
        self.config.max_in_flight.max(1)
    }

    fn shutdown(&mut self) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        let mut threads = std::mem::take(&mut self.threads).into_iter();
        // The submitter finishes the condor_submit it may be in, then stops.
        {
            let mut state = shared.lock();
            state.shutdown = true;
            state.pending.clear();
        }
        shared.wake.notify_all();
        if let Some(submitter) = threads.next() {
            let _ = submitter.join();
        }
        let (unsettled, in_queue) = {
            let state = shared.lock();
            (state.tracker.attempts(), state.tracker.jobs_in_queue())
        };
        let leave = shared.config.leave_running && unsettled > 0;
        if leave {
            tracing::warn!(
                run = %shared.paths.name,
                dir = %shared.paths.dir.display(),
                jobs = unsettled,
                "leaving this run's jobs in HTCondor (JobBatchName == \"{}\"); remove them with condor_rm -constraint 'JobBatchName == \"{}\"'",
                shared.paths.name,
                shared.paths.name
            );
        } else if unsettled > 0 || in_queue > 0 {
            // Everything of this run, also jobs whose id never reached us.
            let constraint = batch_constraint(&shared.paths.name);
            match shared.tools.run("condor_rm", &["-constraint", &constraint]) {
                Ok(output) if output.status.success() => {}
                Ok(output) => tracing::debug!(output = %text_of(&output), "condor_rm at shutdown"),
                Err(e) => tracing::warn!(error = %e, "cannot remove this run's jobs"),
            }
            // Let removed jobs leave before their directories go.
            let deadline = Instant::now() + SHUTDOWN_WAIT;
            let mut state = shared.lock();
            while state.tracker.jobs_in_queue() > 0 && Instant::now() < deadline {
                state = shared
                    .wake
                    .wait_timeout(state, deadline - Instant::now())
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        // The directories of every earlier master of a resumable run: also of
        // those that only followed jobs (nobody follows theirs), or that died
        // before anything they submitted was recorded.
        let mut earlier = std::mem::take(&mut shared.lock().earlier_dirs);
        if let Some(run) = &self.resumable
            && !leave
            && let Some(base) = shared.paths.dir.parent()
        {
            let others: Vec<PathBuf> = master_dirs(base, run)
                .into_iter()
                .filter(|dir| *dir != shared.paths.dir)
                .collect();
            if !others.is_empty() {
                // Jobs of the run still queued now are of no use: their
                // earlier masters' records were lost with them.
                let constraint = batch_constraint(&shared.paths.name);
                if let Err(e) = shared.tools.run("condor_rm", &["-constraint", &constraint]) {
                    tracing::warn!(error = %e, "cannot remove this run's jobs");
                }
            }
            for dir in others {
                if !earlier.contains(&dir) {
                    earlier.push(dir);
                }
            }
        }
        shared.lock().stop_follower = true;
        let _ = shared.commands.send(JobCommand::Stop);
        for thread in threads {
            let _ = thread.join();
        }
        if !leave && !shared.config.keep_files {
            for dir in earlier.iter().chain([&shared.paths.dir]) {
                if let Err(e) = std::fs::remove_dir_all(dir) {
                    tracing::debug!(dir = %dir.display(), error = %e, "cannot remove a run directory");
                }
            }
        }
        if let Some(mut reaper) = self.reaper.take() {
            // Everything is cleaned up: the reaper may go without doing anything.
            if let Some(mut stdin) = reaper.stdin.take() {
                let _ = stdin.write_all(b"done\n");
            }
            let _ = reaper.child.wait();
        }
        tracing::debug!(run = %shared.paths.name, "HTCondor backend stopped");
    }
}

impl Drop for CondorBackend {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Renders a one-job description with these resources, to refuse bad
/// settings when they are given instead of when a cluster is submitted.
fn validate(shared: &Shared, resources: &Resources, task: &str) -> Result<(), String> {
    let mut d = shared.description(resources);
    d.tasks.push(SubmitTask {
        task_id: "0".into(),
        task_name: task.into(),
        task_dir: shared.paths.tasks.join("0"),
    });
    d.render()
        .map(drop)
        .map_err(|e| format!("invalid HTCondor settings: {e}"))
}

/// Gathers pending attempts into clusters and submits them.
fn submitter(shared: &Shared) {
    loop {
        let (batch, seq) = {
            let mut state = shared.lock();
            loop {
                if state.shutdown {
                    return;
                }
                match state.pending_since {
                    Some(since) => {
                        let due = since + shared.config.coalesce;
                        let now = Instant::now();
                        if now >= due || state.pending.len() >= MAX_CLUSTER_JOBS {
                            break;
                        }
                        state = shared
                            .wake
                            .wait_timeout(state, due - now)
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                    }
                    None => {
                        state = shared.wake.wait(state).unwrap_or_else(|p| p.into_inner());
                    }
                }
            }
            let n = state.pending.len().min(MAX_CLUSTER_JOBS);
            let batch: Vec<Dispatch> = state.pending.drain(..n).collect();
            // What is left over is due at once.
            state.pending_since =
                (!state.pending.is_empty()).then(|| Instant::now() - shared.config.coalesce);
            // Registered at once, so that a cancel finds each of them; a job
            // of an earlier master that is followed instead takes its place.
            for d in &batch {
                state.tracker.add(d.key, d.task, shared.task_dir(d.key));
            }
            let seq = state.clusters;
            state.clusters += 1;
            (batch, seq)
        };
        let (earlier, mut batch): (Vec<Dispatch>, Vec<Dispatch>) =
            batch.into_iter().partition(|d| d.reattach.is_some());
        if !earlier.is_empty() {
            batch.extend(take_over(shared, earlier));
        }
        if !batch.is_empty() {
            submit_batch(shared, batch, seq);
        }
    }
}

/// The job id a master records for an attempt (see [`Event::Queued`]):
/// `CLUSTER.PROC@TASK_DIR`, enough for a later master to follow the job
/// through the event log next to the task directory
/// (`RUN_DIR/tasks/KEY` → `RUN_DIR/events.log`).
fn job_ref(job: JobId, task_dir: &Path) -> String {
    format!("{job}@{}", task_dir.display())
}

/// A [`job_ref`] read back: the job, its task directory and its event log.
fn parse_job_ref(text: &str) -> Option<(JobId, PathBuf, PathBuf)> {
    let (job, dir) = text.split_once('@')?;
    let job = job.parse().ok()?;
    let dir = PathBuf::from(dir);
    let log = dir.parent()?.parent()?.join("events.log");
    dir.is_absolute().then_some((job, dir, log))
}

/// Takes over the jobs earlier masters of the run left in HTCondor: each
/// attempt follows its job through that master's event log, when the job's
/// directory and log are still there. Returns the attempts that must be
/// submitted anew instead (their old jobs, if any, are removed first, so a
/// task never runs twice at once).
fn take_over(shared: &Shared, earlier: Vec<Dispatch>) -> Vec<Dispatch> {
    let mut fresh = Vec::new();
    let mut follow = Vec::new();
    let mut remove = Vec::new();
    for mut dispatch in earlier {
        let job_ref = dispatch.reattach.take().unwrap_or_default();
        match parse_job_ref(&job_ref) {
            Some((job, dir, log)) if dir.join("in").is_file() && log.is_file() => {
                follow.push((dispatch, job, dir, log));
            }
            parsed => {
                tracing::warn!(job = %job_ref, "cannot follow a job of an earlier master (its files are gone): submitting the task again");
                if let Some((job, ..)) = parsed {
                    remove.push(job);
                }
                fresh.push(dispatch);
            }
        }
    }
    if !remove.is_empty() {
        let ids: Vec<String> = remove.iter().map(JobId::to_string).collect();
        let args: Vec<&str> = ids.iter().map(String::as_str).collect();
        // Gone already, most likely; a failure here only means that.
        let _ = shared.tools.run("condor_rm", &args);
    }
    if follow.is_empty() {
        return fresh;
    }
    // Which jobs are still queued, asked before their logs are read: a job
    // that is not has its end in its log already, or never will.
    let queued = queued_jobs(shared, follow.iter().map(|(_, job, ..)| job.cluster));
    let mut state = shared.lock();
    let mut cancelled = Vec::new();
    let mut followed = 0;
    for (dispatch, job, dir, log) in follow {
        if state.tracker.is_cancelled(dispatch.key) {
            state.tracker.forget(dispatch.key);
            cancelled.push(job);
            continue;
        }
        // Takes the place of the attempt registered for a new submission.
        state.tracker.follow(dispatch.key, dispatch.task, dir, job);
        followed += 1;
        let run_dir = log.parent().map(Path::to_path_buf);
        if let Some(run_dir) = run_dir
            && !state.earlier_dirs.contains(&run_dir)
        {
            state.earlier_dirs.push(run_dir);
        }
        let vanished = queued.as_ref().is_some_and(|q| !q.contains(&job));
        match state.earlier_logs.iter_mut().find(|l| l.path == log) {
            Some(entry) => {
                entry.jobs.push(job);
                if vanished {
                    entry.vanished.push(job);
                }
            }
            None => state.earlier_logs.push(EarlierLog {
                path: log,
                jobs: vec![job],
                vanished: if vanished { vec![job] } else { Vec::new() },
            }),
        }
    }
    tracing::info!(
        jobs = followed,
        logs = state.earlier_logs.len(),
        "following the jobs of earlier masters of this run"
    );
    drop(state);
    if !cancelled.is_empty() {
        let _ = shared.commands.send(JobCommand::Remove(cancelled));
    }
    fresh
}

/// The jobs of these clusters that are in the queue; `None` when the schedd
/// does not answer (then every job counts as queued, and is waited for).
fn queued_jobs(
    shared: &Shared,
    clusters: impl Iterator<Item = u64>,
) -> Option<std::collections::HashSet<JobId>> {
    let mut clusters: Vec<String> = clusters.map(|c| c.to_string()).collect();
    clusters.sort();
    clusters.dedup();
    let mut queued = std::collections::HashSet::new();
    for chunk in clusters.chunks(MAX_IDS_PER_COMMAND) {
        let mut args = vec!["-af", "ClusterId", "ProcId"];
        args.extend(chunk.iter().map(String::as_str));
        let output = match shared.tools.run("condor_q", &args) {
            Ok(output) if output.status.success() => output,
            Ok(output) => {
                tracing::warn!(output = %text_of(&output), "condor_q failed: waiting for every followed job");
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "condor_q failed: waiting for every followed job");
                return None;
            }
        };
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let mut words = line.split_whitespace();
            if let (Some(c), Some(p)) = (words.next(), words.next())
                && let (Ok(cluster), Ok(proc)) = (c.parse(), p.parse())
            {
                queued.insert(JobId { cluster, proc });
            }
        }
    }
    Some(queued)
}

/// Writes an attempt's input envelope into its own directory.
fn write_task_files(shared: &Shared, dispatch: &Dispatch) -> std::io::Result<PathBuf> {
    let dir = shared.task_dir(dispatch.key);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    set_mode(&dir, shared.dir_mode)?;
    let mut bytes = Vec::with_capacity(dispatch.input.len() + 64);
    wire::encode_input(
        &wire::InputBody {
            task: dispatch.task.name,
            fingerprint: (dispatch.task.fingerprint)(),
            payload: &dispatch.input,
        },
        &mut bytes,
    );
    std::fs::write(dir.join("in"), &bytes)?;
    Ok(dir)
}

fn submit_batch(shared: &Shared, batch: Vec<Dispatch>, seq: u64) {
    let mut events = Vec::new();
    let mut groups: Vec<(Resources, Vec<(Dispatch, PathBuf)>)> = Vec::new();
    let cancelled: Vec<AttemptKey> = {
        let state = shared.lock();
        batch
            .iter()
            .filter(|d| state.tracker.is_cancelled(d.key))
            .map(|d| d.key)
            .collect()
    };
    for dispatch in batch {
        if cancelled.contains(&dispatch.key) {
            shared.lock().tracker.forget(dispatch.key);
            continue;
        }
        match write_task_files(shared, &dispatch) {
            Ok(dir) => match groups
                .iter_mut()
                .find(|(r, _)| r == resources_of(&dispatch))
            {
                Some((_, group)) => group.push((dispatch, dir)),
                None => groups.push((resources_of(&dispatch).clone(), vec![(dispatch, dir)])),
            },
            Err(e) => {
                shared.lock().tracker.forget(dispatch.key);
                events.push(Event::Lost {
                    key: dispatch.key,
                    cause: format!(
                        "cannot write the task's files under {}: {e}",
                        shared.paths.tasks.display()
                    ),
                    stderr_tail: String::new(),
                });
            }
        }
    }
    for (index, (resources, group)) in groups.into_iter().enumerate() {
        let keys: Vec<AttemptKey> = group.iter().map(|(d, _)| d.key).collect();
        let started = Instant::now();
        match submit_cluster(shared, &resources, &group, &format!("{seq}-{index}")) {
            Ok(jobs) => {
                tracing::debug!(
                    cluster = jobs.cluster,
                    jobs = jobs.job_count(),
                    took = ?started.elapsed(),
                    "submitted a cluster"
                );
                // Recorded by the master at once: a master killed from now
                // on leaves jobs the next one can follow.
                let queued: Vec<Event> = group
                    .iter()
                    .zip(jobs.procs())
                    .map(|((d, dir), proc)| Event::Queued {
                        key: d.key,
                        job_id: job_ref(
                            JobId {
                                cluster: jobs.cluster,
                                proc,
                            },
                            dir,
                        ),
                    })
                    .collect();
                shared.events.send(queued);
                let remove = shared.lock().tracker.submitted(&keys, jobs);
                if !remove.is_empty() {
                    let _ = shared.commands.send(JobCommand::Remove(remove));
                }
            }
            Err(message) => {
                tracing::warn!(%message, tasks = keys.len(), "condor_submit failed");
                let mut state = shared.lock();
                for key in keys {
                    if let Some(dir) = state.tracker.forget(key) {
                        let _ = std::fs::remove_dir_all(dir);
                        events.push(Event::Lost {
                            key,
                            cause: message.clone(),
                            stderr_tail: String::new(),
                        });
                    }
                }
            }
        }
    }
    shared.events.send(events);
}

fn submit_cluster(
    shared: &Shared,
    resources: &Resources,
    group: &[(Dispatch, PathBuf)],
    seq: &str,
) -> Result<crate::submit_output::SubmittedJobs, String> {
    let mut description = shared.description(resources);
    description.tasks = group
        .iter()
        .map(|(d, dir)| SubmitTask {
            task_id: d.key.to_string(),
            task_name: d.task.name.to_owned(),
            task_dir: dir.clone(),
        })
        .collect();
    let text = description
        .render()
        .map_err(|e| format!("cannot write the submit description: {e}"))?;
    let file = shared.paths.submits.join(format!("{seq}.sub"));
    std::fs::write(&file, text).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    let file_arg = file.to_string_lossy();
    let output = shared.tools.run("condor_submit", &["-terse", &file_arg])?;
    let jobs = parse_submit_output(output.status.code(), &output.stdout, &output.stderr)
        .map_err(|e| e.to_string())?;
    if jobs.job_count() != group.len() as u64 {
        // Cannot map procs to tasks: take them back.
        let cluster = jobs.cluster.to_string();
        let _ = shared.tools.run("condor_rm", &[&cluster]);
        return Err(format!(
            "condor_submit queued {} job(s) for {} task(s) (cluster {}); removed them",
            jobs.job_count(),
            group.len(),
            jobs.cluster
        ));
    }
    Ok(jobs)
}

/// An earlier master's event log being read.
struct EarlierFollower {
    log: EventLogFollower,
    path: PathBuf,
    /// Read to its end once: jobs that had vanished can be settled.
    caught_up: bool,
}

/// Reads the event logs of earlier masters of the run, for the jobs taken
/// over from them; stops reading a log when none of its jobs matters.
fn follow_earlier(shared: &Shared, followers: &mut Vec<EarlierFollower>) {
    {
        let state = shared.lock();
        for entry in &state.earlier_logs {
            if !followers.iter().any(|f| f.path == entry.path) {
                followers.push(EarlierFollower {
                    log: EventLogFollower::new(&entry.path),
                    path: entry.path.clone(),
                    caught_up: false,
                });
            }
        }
    }
    let mut steps = Vec::new();
    followers.retain_mut(|follower| {
        let events = match follower.log.poll() {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(log = %follower.path.display(), error = %e, "cannot read an earlier master's event log");
                Vec::new()
            }
        };
        let mut state = shared.lock();
        for event in &events {
            state.tracker.handle_earlier(event, &mut steps);
        }
        if !follower.caught_up && follower.log.caught_up() {
            follower.caught_up = true;
            let Some(entry) = state.earlier_logs.iter_mut().find(|l| l.path == follower.path)
            else {
                return false;
            };
            let vanished = std::mem::take(&mut entry.vanished);
            for job in vanished {
                steps.extend(state.tracker.vanished(job));
            }
        }
        let state = &mut *state;
        let Some(index) = state.earlier_logs.iter().position(|l| l.path == follower.path) else {
            return false;
        };
        let tracker = &state.tracker;
        state.earlier_logs[index].jobs.retain(|job| tracker.is_tracked(*job));
        if state.earlier_logs[index].jobs.is_empty() && follower.caught_up {
            state.earlier_logs.remove(index);
            return false;
        }
        true
    });
    if !steps.is_empty() {
        carry_out(shared, steps);
        shared.wake.notify_all();
    }
}

/// Reads the run's event log as it grows and reports what it says.
fn follower(shared: &Shared) {
    let mut log = EventLogFollower::new(&shared.paths.event_log);
    let mut earlier = Vec::new();
    let mut failing = false;
    loop {
        if shared.lock().stop_follower {
            return;
        }
        follow_earlier(shared, &mut earlier);
        let events = match log.poll() {
            Ok(events) => {
                failing = false;
                events
            }
            Err(EventLogError::Truncated { .. }) => {
                // Reading it again from the start repeats nothing that
                // matters: settled jobs are forgotten.
                tracing::error!(log = %shared.paths.event_log.display(), "the event log was truncated or replaced; reading it again");
                log = EventLogFollower::new(&shared.paths.event_log);
                continue;
            }
            Err(e @ (EventLogError::Io { .. } | EventLogError::UnknownFormat { .. })) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(error = %e, "cannot read the event log");
                }
                std::thread::sleep(shared.config.poll_interval);
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "skipped a malformed event");
                continue;
            }
        };
        if !events.is_empty() {
            let mut steps = Vec::new();
            {
                let mut state = shared.lock();
                for event in &events {
                    state.tracker.handle(event, &mut steps);
                }
            }
            carry_out(shared, steps);
            shared.wake.notify_all();
        }
        std::thread::sleep(shared.config.poll_interval);
    }
}

/// Sends events, queues commands and reads ended jobs' files, in order.
fn carry_out(shared: &Shared, steps: Vec<Step>) {
    let mut events = Vec::new();
    let mut release = Vec::new();
    let mut remove = Vec::new();
    let keep = shared.config.keep_files;
    for step in steps {
        match step {
            Step::Event(event) => events.push(event),
            Step::Release(job) => release.push(job),
            Step::Remove(job) => remove.push(job),
            Step::Ended(ended) => {
                let output = if ended.wants_output() {
                    read_output(&ended.dir.join("out"))
                } else {
                    Ok(None)
                };
                let tail =
                    || stderr_tail(&ended.dir.join("stderr"), shared.config.stderr_tail_bytes);
                let event = match &output {
                    Ok(bytes) => ended.event(Ok(bytes.as_deref()), tail),
                    Err(message) => ended.event(Err(message.clone()), tail),
                };
                events.push(event);
                if ended.discard && !keep {
                    let _ = std::fs::remove_dir_all(&ended.dir);
                }
            }
            Step::Discard(dir) => {
                if !keep {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
        }
    }
    if !remove.is_empty() {
        let _ = shared.commands.send(JobCommand::Remove(remove));
    }
    if !release.is_empty() {
        let _ = shared.commands.send(JobCommand::Release(release));
    }
    shared.events.send(events);
}

/// The output file's bytes (`None` when it is missing), bounded by the
/// message size limit.
fn read_output(path: &Path) -> Result<Option<Vec<u8>>, String> {
    match wire::read_envelope_file(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            Err(format!("output corrupt: {e}"))
        }
        Err(e) => Err(format!("output unreadable: {e}")),
    }
}

/// The last `limit` bytes of a file, as text.
fn stderr_tail(path: &Path, limit: usize) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let start = len.saturating_sub(limit as u64);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut bytes = Vec::with_capacity((len - start) as usize);
    let _ = file.take(limit as u64).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Runs `condor_rm` and `condor_release` for everything waiting, until told to stop.
fn run_commands(shared: &Shared, commands: &mpsc::Receiver<JobCommand>) {
    loop {
        let Ok(first) = commands.recv() else { return };
        let mut stop = false;
        let mut release = Vec::new();
        let mut remove = Vec::new();
        let mut absorb = |command| match command {
            JobCommand::Release(jobs) => release.extend(jobs),
            JobCommand::Remove(jobs) => remove.extend(jobs),
            JobCommand::Stop => stop = true,
        };
        absorb(first);
        while let Ok(command) = commands.try_recv() {
            absorb(command);
        }
        release.retain(|job| !remove.contains(job));
        for (tool, jobs) in [("condor_rm", &remove), ("condor_release", &release)] {
            for chunk in jobs.chunks(MAX_IDS_PER_COMMAND) {
                let ids: Vec<String> = chunk.iter().map(JobId::to_string).collect();
                let args: Vec<&str> = ids.iter().map(String::as_str).collect();
                match shared.tools.run(tool, &args) {
                    Ok(output) if output.status.success() => {
                        tracing::debug!(tool, jobs = ids.len(), "done");
                    }
                    // A job that left meanwhile: "Job N.M not found".
                    Ok(output) => {
                        tracing::debug!(tool, output = %text_of(&output), "not every job was found")
                    }
                    Err(e) => tracing::warn!(tool, error = %e, "failed"),
                }
            }
        }
        if stop {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_refs_find_the_job_its_directory_and_its_log() {
        let job = JobId {
            cluster: 46,
            proc: 3,
        };
        let text = job_ref(job, Path::new("/shared/run-1/tasks/17"));
        assert_eq!(text, "46.3@/shared/run-1/tasks/17");
        assert_eq!(
            parse_job_ref(&text),
            Some((
                job,
                PathBuf::from("/shared/run-1/tasks/17"),
                PathBuf::from("/shared/run-1/events.log")
            ))
        );
        for bad in ["46.3", "46.3@tasks/17", "x@/a/b/c", "46.3@/"] {
            assert_eq!(parse_job_ref(bad), None, "{bad}");
        }
    }

    fn sh(script: &str) -> Command {
        let mut command = Command::new("/bin/sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn commands_run_to_their_end() {
        let output = run_with_timeout(
            sh("echo out; echo err >&2; exit 3"),
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(output.status.code(), Some(3));
        assert_eq!(output.stdout, b"out\n");
        assert_eq!(output.stderr, b"err\n");
        // More than a pipe holds, on both pipes at once: no deadlock.
        let output = run_with_timeout(
            sh("head -c 300000 /dev/zero; head -c 300000 /dev/zero >&2"),
            Duration::from_secs(30),
        )
        .unwrap();
        assert!(output.status.success());
        assert_eq!(
            (output.stdout.len(), output.stderr.len()),
            (300_000, 300_000)
        );
        let e = run_with_timeout(Command::new("/nonexistent/tool"), Duration::from_secs(1))
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn commands_are_killed_after_the_timeout() {
        let dir = std::env::temp_dir().join(format!("pymw-condor-timeout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("pid");
        let began = Instant::now();
        let e = run_with_timeout(
            sh(&format!("echo $$ > {}; exec sleep 30", pid_file.display())),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "{:?}",
            began.elapsed()
        );
        // Killed and reaped: the process is gone, not a zombie.
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        assert!(
            !Path::new(&format!("/proc/{}", pid.trim())).exists(),
            "process {pid} is still there"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_grandchild_holding_the_output_open_is_not_waited_for() {
        // The shell ends at once, its background sleep keeps stdout open for
        // 4 s: the answer comes at the timeout, not when the sleep ends.
        let began = Instant::now();
        let e =
            run_with_timeout(sh("sleep 4 & echo started"), Duration::from_millis(300)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
        assert!(e.to_string().contains("output was still open"), "{e}");
        assert!(
            began.elapsed() < Duration::from_secs(3),
            "{:?}",
            began.elapsed()
        );
    }

    #[test]
    fn sizes_parse_to_mib() {
        assert_eq!(parse_mib("512"), Ok(512));
        assert_eq!(parse_mib("512M"), Ok(512));
        assert_eq!(parse_mib("2G"), Ok(2048));
        assert_eq!(parse_mib("2GiB"), Ok(2048));
        assert_eq!(parse_mib("1t"), Ok(1 << 20));
        assert_eq!(parse_mib("1500K"), Ok(2));
        assert!(parse_mib("lots").unwrap_err().contains("not a size"));
        assert!(parse_mib("5Q").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn submit_commands_parse() {
        assert_eq!(
            parse_submit_command("+AccountingGroup=\"g.alice\""),
            Ok(("+AccountingGroup".into(), "\"g.alice\"".into()))
        );
        assert_eq!(
            parse_submit_command("periodic_hold = a == b"),
            Ok(("periodic_hold".into(), "a == b".into()))
        );
        // --condor-submit-command 'environment="A=x B=y"': two variables,
        // merged with pymw's own into one command.
        let (key, value) = parse_submit_command("environment=\"A=x B=y\"").unwrap();
        let mut d = SubmitDescription::new("/r/bin", "/r/events.log", "run");
        d.tasks.push(SubmitTask {
            task_id: "1".into(),
            task_name: "t".into(),
            task_dir: "/r/tasks/1".into(),
        });
        d.environment = vec![("PYMW_MAX_MESSAGE_BYTES".into(), "4096".into())];
        d.extra_commands.push((key, value));
        let text = d.render().unwrap();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("environment"))
            .collect();
        assert_eq!(
            lines,
            ["environment             = \"PYMW_MAX_MESSAGE_BYTES=4096 A=x B=y\""]
        );
        assert!(parse_submit_command("novalue").is_err());
        assert!(parse_submit_command("=x").is_err());
    }

    #[test]
    fn extra_executables_name_their_platform() {
        let e: ExtraExecutable = "aarch64-unknown-linux-gnu=/b/app".parse().unwrap();
        assert_eq!(e, ExtraExecutable::new("/b/app", "LINUX", "aarch64"));
        let e: ExtraExecutable = "x86_64-unknown-linux-musl=/b/app".parse().unwrap();
        assert_eq!((e.opsys.as_str(), e.arch.as_str()), ("LINUX", "X86_64"));
        let e: ExtraExecutable = "LINUX/ppc64le=/b/app".parse().unwrap();
        assert_eq!(
            e.platform().unwrap().clause(),
            "(OpSys == \"LINUX\" && Arch == \"ppc64le\")"
        );
        assert!(
            "x86_64-pc-windows-msvc=/b/app.exe"
                .parse::<ExtraExecutable>()
                .unwrap()
                .opsys
                == "WINDOWS"
        );
        assert!(
            "wasm32-unknown-unknown=/b/x"
                .parse::<ExtraExecutable>()
                .is_err()
        );
        assert!("/b/app".parse::<ExtraExecutable>().is_err());
        assert!(
            ExtraExecutable::new("/b", "LINUX", "a rm")
                .platform()
                .is_err()
        );
    }

    #[test]
    fn host_platform_is_named_like_htcondor() {
        let host = Platform::host();
        if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            assert_eq!(host.suffix(), "LINUX.X86_64");
        }
        assert!(valid_platform_word(&host.opsys) && valid_platform_word(&host.arch));
    }

    #[test]
    fn the_masters_of_a_run_are_found_by_their_directories() {
        let name = life_name("my run");
        let rest = name.strip_prefix("my_run-").unwrap();
        assert_eq!(life_pid(rest), Some(std::process::id()));
        assert_eq!(life_pid("20261204T162327Z-4242"), Some(4242));
        assert_eq!(life_pid("20261204T162327Z-4242-3"), Some(4242));
        for bad in [
            "20261204T162327Z",
            "20261204T162327Z-",
            "20261204T162327-4242",
            "2026124T162327Z-4242",
            "20261204T162327Z-42x",
            "20261204T162327Z-4242-3-1",
            // A run named like a master of another: `run-2026...-5`.
            "20261204T162327Z-5-20261204T162328Z-6",
        ] {
            assert_eq!(life_pid(bad), None, "{bad}");
        }

        let base = std::env::temp_dir().join(format!("pymw-condor-masters-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let make = |name: &str, run_dir: bool| {
            let dir = base.join(name);
            std::fs::create_dir_all(if run_dir {
                dir.join("submit")
            } else {
                dir.clone()
            })
            .unwrap();
            dir
        };
        // A pid no process has (above the kernel's pid_max).
        let dead = 99_999_999;
        let alive = std::process::id();
        let parent = std::os::unix::process::parent_id();
        let mut expected = vec![
            make(&format!("run-20261204T162327Z-{dead}"), true),
            make(&format!("run-20261204T162327Z-{alive}-2"), true),
        ];
        // Another live process's master, a master on another host, another
        // run, a look-alike without a run's layout, and a run whose name
        // extends this one's.
        make(&format!("run-20261204T162327Z-{parent}"), true);
        let elsewhere = make(&format!("run-20261204T162327Z-{}", dead + 2), true);
        std::fs::write(elsewhere.join(MASTER_FILE), "some-other-host\n").unwrap();
        std::fs::write(
            expected[0].join(MASTER_FILE),
            format!("{}\n", pymw_core::sys::host_name()),
        )
        .unwrap();
        make(&format!("other-20261204T162327Z-{dead}"), true);
        make(&format!("run-20261204T162327Z-{}", dead + 1), false);
        make(&format!("run-x-20261204T162327Z-{dead}"), true);
        let mut found = master_dirs(&base, "run");
        found.sort();
        expected.sort();
        assert_eq!(found, expected);
        assert!(master_dirs(&base.join("missing"), "run").is_empty());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn run_names_are_safe() {
        assert_eq!(sanitize("my app (v2)"), "my_app__v2_");
        assert_eq!(sanitize("..x"), "x");
        assert_eq!(sanitize(""), "pymw");
        let name = life_name(&binary_name());
        assert!(check_item("run name", &name).is_ok(), "{name}");
        assert!(name.contains(&format!("-{}", std::process::id())));
        assert_ne!(life_name("run"), life_name("run"));
        assert!(life_name("my run").starts_with("my_run-"));
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_781), (2026, 11, 24));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
