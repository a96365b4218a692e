//! Project-host mode: the master runs on the BOINC server, in the project
//! directory's file system, as the project's user.
//!
//! At start:
//! 1. this binary is installed as an app version of the app: copied to
//!    `apps/APP/VERSION/x86_64-pc-linux-gnu/APP_VERSION_HASH_PLATFORM`
//!    (content-hashed name, next major version when the content is new), and
//!    `bin/update_versions` is run with `y` answers; then `reread_db` is
//!    touched so the feeder reloads versions ([`crate::app_version`]);
//! 2. the shim scripts that run this binary as the app's assimilator and
//!    validator are written to `bin/` ([`crate::daemons::PymwDaemons`]), and
//!    `config.xml` is checked for the matching `<daemon>` entries (their
//!    exact text is in the error when they are missing);
//! 3. the result template is written, and the run directory
//!    `pymw_runs/<run>/` is created.
//!
//! Each submitted batch: every attempt's input envelope is staged at its
//! place in the download hierarchy with its `.md5` companion, as
//! `bin/stage_file --copy` does ([`ProjectConfig::download_path`]); the
//! attempts are grouped by their work unit parameters (one input template
//! per set of parameters, since template values override `create_work`
//! options), and each group becomes one `bin/create_work --stdin` run.
//!
//! Once `create_work` has accepted a group, each attempt is reported
//! `Queued` with the job id `boinc-host <wu name> <run dir>`
//! ([`crate::job_id`]), then `Started`.
//!
//! A follower thread watches the run directory, where the assimilator role
//! ([`crate::assimilate`]) puts each finished work unit's output or failure
//! record, and turns them into events. Cancelling sets the work units'
//! `error_mask` in the database ([`crate::db`]).
//!
//! # Runs that outlive their master
//!
//! When the master keeps a run store ([`ProjectSettings::run_name`]), the
//! work units are the run's, not this master's:
//!
//! - The run id in work unit names starts with the run's name (each master
//!   life still has its own id: attempt keys start again in every life).
//! - At shutdown the work units still pending are **not** cancelled and
//!   the run directory is kept, so that the assimilator goes on delivering
//!   into it and the next master of the run finds the outputs; the
//!   directory is removed only when nothing is left pending (and
//!   `keep_files` is off). Attempts the master cancelled were cancelled in
//!   the database when it asked, and shutdown waits for those updates. A
//!   master that is killed leaves everything as it is, whichever mode.
//! - An attempt dispatched with `reattach` = `boinc-host WU DIR` is
//!   followed, not created again, when the project still knows the work
//!   unit ([`Db::workunits`]) and it was not cancelled: its output or
//!   failure record is awaited in `DIR` (the directory is created again if
//!   an earlier master removed it, before asking the database, so that an
//!   assimilation after the question still lands there), or taken from
//!   there when it was assimilated while no master was alive. It is
//!   reported `Queued` (same id) and `Started` under the dispatch's new
//!   key. Files of work units that this master does not follow are left
//!   alone in directories of earlier lives: a later dispatch may follow
//!   them.
//! - An attempt whose work unit cannot be followed (the id is not of this
//!   mode or of another project; the database does not know the work unit;
//!   it was cancelled; it was assimilated but its file is no longer in the
//!   directory, taken by a master that died before the run store recorded
//!   the result) is logged and created again as a new work unit. In each of
//!   those cases the old work unit cannot produce a result any more; its
//!   late failure record, if any, is dropped, never reported.
//! - Without database access, a work unit is followed when its run
//!   directory still exists (the output may then never come, if it was
//!   taken by a master that died); otherwise it is created again.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use pymw_core::backend::{AttemptKey, Dispatch, Event, EventSink};
use pymw_core::registry::TaskEntry;
use pymw_core::wire::{self, InputBody};

use crate::app_version::{self, UpdateVersionsReport, VersionOutcome, VersionPlan};
use crate::create_work::{self, CreateWorkCommand, JobLine};
use crate::daemons::{PymwDaemons, Role};
use crate::db::Db;
use crate::job_id::JobId;
use crate::project_config::ProjectConfig;
use crate::spool;
use crate::templates::{InputFile, InputTemplate, OutputFile, OutputTemplate, WorkunitParams};

/// Most jobs given to one `create_work --stdin` run.
const MAX_JOBS_PER_CREATE_WORK: usize = 1000;
/// `y` answers fed to `update_versions` (two questions per new version).
const UPDATE_VERSIONS_ANSWERS: usize = 200;

/// Settings of project-host mode.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProjectSettings {
    /// The project directory.
    pub project_dir: PathBuf,
    /// The app's short name.
    pub app: String,
    /// The platform of the installed app version.
    pub platform: String,
    /// The `mysql` client program.
    pub mysql: PathBuf,
    /// How often the run directory is looked at.
    pub poll: Duration,
    /// Install this binary as an app version at start.
    pub install: bool,
    /// Check `config.xml` for the assimilator and validator entries.
    pub check_daemons: bool,
    /// Leave work units running (not cancelled) when the master ends.
    pub leave_running: bool,
    /// Keep the run directory and the files the assimilator put there.
    pub keep_files: bool,
    /// Largest output a result may upload, in bytes.
    pub max_output_bytes: u64,
    /// The name of the master's run store, when it keeps one: work units
    /// then outlive the master (see the module docs).
    pub run_name: Option<String>,
}

/// What [`install`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The app version holding this binary.
    pub version: app_version::VersionNumber,
    /// The installed file (the daemons' shim scripts run it).
    pub binary: PathBuf,
    /// Whether the version was new (and `update_versions` ran).
    pub new: bool,
}

/// Installs `exe` as an app version (see the module docs).
pub fn install(settings: &ProjectSettings, exe: &Path) -> Result<Installed, String> {
    let project = &settings.project_dir;
    let shippable = Shippable::of(exe, &spool::spool_dir(project));
    let exe = shippable.path();
    let bytes = std::fs::read(exe).map_err(|e| format!("cannot read {}: {e}", exe.display()))?;
    let hash = app_version::content_hash(&bytes);
    drop(bytes);
    let plan = app_version::plan_version(
        project,
        &settings.app,
        &settings.platform,
        &settings.app,
        &hash,
    )
    .map_err(|e| e.to_string())?;
    let version = match plan {
        VersionPlan::Existing(v) | VersionPlan::New(v) => v,
    };
    let physical = app_version::physical_name(&settings.app, version, &hash, &settings.platform);
    let dir = app_version::version_dir(project, &settings.app, version, &settings.platform);
    let marker = spool::spool_dir(project).join(format!(".registered_{physical}"));
    let new = matches!(plan, VersionPlan::New(_)) || !marker.exists();
    let binary = if matches!(plan, VersionPlan::New(_)) {
        let binary =
            app_version::install_file(&dir, exe, &physical, true).map_err(|e| e.to_string())?;
        // Every volunteer downloads it: served gzip-compressed.
        app_version::write_version_xml(
            &dir,
            &app_version::VersionXml {
                files: vec![app_version::VersionFile {
                    physical_name: physical.clone(),
                    logical_name: None,
                    main_program: true,
                    gzip: true,
                }],
                ..app_version::VersionXml::default()
            },
        )
        .map_err(|e| e.to_string())?;
        binary
    } else {
        dir.join(&physical)
    };
    drop(shippable);
    if new {
        let output = run_update_versions(project)?;
        let report = UpdateVersionsReport::parse(&output);
        let version_text = version.to_string();
        match report.outcome(&settings.app, &version_text, &settings.platform) {
            Some(VersionOutcome::Added { id }) => {
                tracing::info!(app = %settings.app, version = %version_text, id, "app version added");
            }
            Some(VersionOutcome::AlreadyExists) => {}
            other => {
                return Err(format!(
                    "bin/update_versions did not add {} {version_text} {} ({}); its output:\n{}",
                    settings.app,
                    settings.platform,
                    match other {
                        Some(VersionOutcome::Unknown(_)) => "no success line",
                        _ =>
                            "the version directory is not in its output: is the app in project.xml and added with bin/xadd?",
                    },
                    crate::xml::excerpt(&output, 4000)
                ));
            }
        }
        std::fs::create_dir_all(spool::spool_dir(project))
            .and_then(|()| std::fs::write(&marker, b""))
            .map_err(|e| format!("{}: {e}", marker.display()))?;
        let reread = project.join(app_version::REREAD_DB_FILE);
        std::fs::write(&reread, b"").map_err(|e| format!("{}: {e}", reread.display()))?;
    }
    Ok(Installed {
        version,
        binary,
        new,
    })
}

/// The binary to install: a copy without symbols and debug information
/// (`strip`, from binutils; a release build shrinks from about 62 MB to
/// 9.5 MB), when `strip` is there and the copy lists exactly the tasks and
/// fingerprints of `exe` (`__pymw list`); else `exe` itself.
struct Shippable {
    stripped: Option<PathBuf>,
    exe: PathBuf,
}

impl Shippable {
    fn of(exe: &Path, scratch: &Path) -> Shippable {
        let plain = Shippable {
            stripped: None,
            exe: exe.to_owned(),
        };
        if std::fs::create_dir_all(scratch).is_err() {
            return plain;
        }
        let copy = scratch.join(format!(".stripped-{}", std::process::id()));
        let stripped = std::process::Command::new("strip")
            .arg("-o")
            .arg(&copy)
            .arg(exe)
            .stdin(std::process::Stdio::null())
            .output();
        match stripped {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                tracing::warn!(
                    "strip failed, installing the binary as it is: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                let _ = std::fs::remove_file(&copy);
                return plain;
            }
            Err(e) => {
                tracing::info!("no strip ({e}): installing the binary as it is");
                return plain;
            }
        }
        let list = |bin: &Path| {
            std::process::Command::new(bin)
                .args(["__pymw", "list"])
                .stdin(std::process::Stdio::null())
                .env_remove("RUST_LOG")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| o.stdout)
        };
        match (list(exe), list(&copy)) {
            (Some(a), Some(b)) if a == b => Shippable {
                stripped: Some(copy),
                exe: exe.to_owned(),
            },
            _ => {
                tracing::warn!(
                    "the stripped binary does not list the same tasks and fingerprints: installing the binary as it is"
                );
                let _ = std::fs::remove_file(&copy);
                plain
            }
        }
    }

    fn path(&self) -> &Path {
        self.stripped.as_deref().unwrap_or(&self.exe)
    }
}

impl Drop for Shippable {
    fn drop(&mut self) {
        if let Some(copy) = &self.stripped {
            let _ = std::fs::remove_file(copy);
        }
    }
}

/// Runs `bin/update_versions` fed `y` answers; returns its stdout and
/// stderr, interleaved as written.
fn run_update_versions(project: &Path) -> Result<String, String> {
    let program = project.join("bin/update_versions");
    let fail = |e: std::io::Error| format!("cannot run {}: {e}", program.display());
    let (mut reader, writer) = std::io::pipe().map_err(fail)?;
    let mut child = {
        let mut cmd = Command::new(&program);
        cmd.current_dir(project)
            .stdin(Stdio::piped())
            .stdout(writer.try_clone().map_err(fail)?)
            .stderr(writer);
        cmd.spawn().map_err(fail)?
        // `cmd` (and its copies of the pipe's writing end) is dropped here.
    };
    let stdin = child.stdin.take();
    let answers = std::thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            for _ in 0..UPDATE_VERSIONS_ANSWERS {
                if stdin.write_all(b"y\n").is_err() {
                    break;
                }
            }
        }
    });
    let mut output = Vec::new();
    let read = reader.read_to_end(&mut output);
    let status = child.wait().map_err(fail)?;
    let _ = answers.join();
    read.map_err(fail)?;
    let output = String::from_utf8_lossy(&output).into_owned();
    if !status.success() {
        return Err(format!(
            "{} failed ({status}):\n{}",
            program.display(),
            crate::xml::excerpt(&output, 4000)
        ));
    }
    Ok(output)
}

/// Writes `content` to `path` unless it already holds exactly that.
fn write_if_changed(path: &Path, content: &str) -> Result<(), String> {
    if std::fs::read(path).is_ok_and(|old| old == content.as_bytes()) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let partial = path.with_extension("pymw-partial");
    std::fs::write(&partial, content)
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The result template of this mode: one output, `out`, through a soft link.
pub fn output_template(max_output_bytes: u64) -> OutputTemplate {
    OutputTemplate {
        files: vec![OutputFile {
            max_nbytes: max_output_bytes,
            ..OutputFile::new("out")
        }],
    }
}

/// The input template for these parameters: one input, `in`.
pub fn input_template(params: &WorkunitParams) -> InputTemplate {
    InputTemplate {
        files: vec![InputFile::new("in")],
        workunit: params.clone(),
    }
}

/// `templates/pymw_<app>_<kind>_<hash of the content>`, relative to the project.
fn template_name(app: &str, kind: &str, content: &str) -> String {
    format!(
        "templates/pymw_{app}_{kind}_{}",
        app_version::content_hash(content.as_bytes())
    )
}

#[derive(Debug)]
struct Pending {
    key: AttemptKey,
    task: &'static TaskEntry,
}

#[derive(Debug, Default)]
struct State {
    /// Work units created (or being created) or followed, by name.
    pending: HashMap<String, Pending>,
    /// Work units cancelled by the master, or given up; their files are
    /// dropped.
    cancelled: HashSet<String>,
    /// Work units of earlier masters of the run that this one follows, by
    /// the key of the attempt that follows them.
    followed: HashMap<AttemptKey, String>,
    /// Run directories of earlier masters that hold followed work units.
    earlier_dirs: BTreeSet<PathBuf>,
}

impl State {
    /// The work unit of attempt `key`.
    fn wu_of(&self, run: &str, key: AttemptKey) -> String {
        self.followed
            .get(&key)
            .cloned()
            .unwrap_or_else(|| spool::wu_name(run, key))
    }
}

#[derive(Debug)]
struct Shared {
    events: EventSink,
    run: String,
    run_dir: PathBuf,
    config: ProjectConfig,
    settings: ProjectSettings,
    defaults: WorkunitParams,
    result_template: String,
    db: Option<Db>,
    state: Mutex<State>,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The project-host engine.
#[derive(Debug)]
pub(crate) struct ProjectEngine {
    shared: Arc<Shared>,
    submit_tx: Option<mpsc::Sender<Vec<Dispatch>>>,
    threads: Vec<JoinHandle<()>>,
    /// Database updates of cancels, awaited at shutdown.
    cancels: Vec<JoinHandle<()>>,
    /// Cancels the run's work units and removes its directory if this
    /// process dies without shutting down ([`crate::reaper`]).
    watcher: Option<crate::reaper::Watcher>,
}

impl ProjectEngine {
    /// Installs, checks and starts (see the module docs).
    pub(crate) fn start(
        settings: ProjectSettings,
        defaults: WorkunitParams,
        events: EventSink,
    ) -> Result<Self, String> {
        let project = std::path::absolute(&settings.project_dir)
            .map_err(|e| format!("{}: {e}", settings.project_dir.display()))?;
        let settings = ProjectSettings {
            project_dir: project.clone(),
            ..settings
        };
        let config = ProjectConfig::load(&project)
            .map_err(|e| format!("{e} (--boinc-project must name a BOINC project directory)"))?;
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
        let binary = if settings.install {
            let installed = install(&settings, &exe)?;
            tracing::info!(version = %installed.version, binary = %installed.binary.display(), "app version");
            installed.binary
        } else {
            exe
        };
        let daemons = PymwDaemons::new(settings.app.clone(), binary);
        daemons.install_shims(&project).map_err(|e| e.to_string())?;
        if settings.check_daemons {
            check_daemons(&config, &daemons)?;
        }
        let template = output_template(settings.max_output_bytes).render();
        let result_template = template_name(&settings.app, "out", &template);
        write_if_changed(&project.join(&result_template), &template)?;
        let run = spool::new_run_id_for(settings.run_name.as_deref());
        let run_dir = spool::spool_dir(&project).join(&run);
        let db = match Db::new(&config, &settings.mysql) {
            Ok(db) => Some(db),
            Err(e) => {
                tracing::warn!(
                    "no database access ({e}): cancelled work units will run to the end"
                );
                None
            }
        };
        // Masters that died without cleaning up (see crate::reaper).
        crate::reaper::reap_dead(&project, db.as_ref());
        std::fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
        let resumable = settings.run_name.is_some();
        // A master that dies leaves no work unit running and no directory,
        // unless the run is resumable or its work units are to be left.
        let watcher = if resumable || settings.leave_running {
            None
        } else {
            let exe =
                std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
            match crate::reaper::Watcher::spawn(
                &exe,
                &project,
                &run,
                settings.keep_files,
                &settings.mysql,
            ) {
                Ok(w) => Some(w),
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&run_dir);
                    return Err(format!("cannot start the work unit reaper (/bin/sh): {e}"));
                }
            }
        };
        if let Some(marker) = crate::reaper::Marker::this_process(
            // Work units meant to outlive the master are never reaped.
            resumable || settings.leave_running,
            watcher.as_ref().map_or(0, |w| w.id()),
        ) && let Err(e) = marker.write(&run_dir)
        {
            tracing::warn!(
                "cannot write {}: {e}",
                run_dir.join(crate::reaper::MARKER).display()
            );
        }
        let shared = Arc::new(Shared {
            events,
            run,
            run_dir,
            config,
            settings,
            defaults,
            result_template,
            db,
            state: Mutex::new(State::default()),
            stop: AtomicBool::new(false),
        });
        let (submit_tx, submit_rx) = mpsc::channel::<Vec<Dispatch>>();
        let mut threads = Vec::new();
        let s = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("pymw-boinc-submit".into())
                .spawn(move || {
                    while let Ok(batch) = submit_rx.recv() {
                        submit_batch(&s, batch);
                    }
                })
                .map_err(|e| format!("cannot start a thread: {e}"))?,
        );
        let s = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("pymw-boinc-follow".into())
                .spawn(move || follow(&s))
                .map_err(|e| format!("cannot start a thread: {e}"))?,
        );
        tracing::info!(run = %shared.run, dir = %shared.run_dir.display(), "BOINC project-host run started");
        Ok(ProjectEngine {
            shared,
            submit_tx: Some(submit_tx),
            threads,
            cancels: Vec::new(),
            watcher,
        })
    }

    /// The run directory.
    pub(crate) fn run_dir(&self) -> &Path {
        &self.shared.run_dir
    }

    pub(crate) fn submit(&mut self, batch: Vec<Dispatch>) -> Result<(), String> {
        match &self.submit_tx {
            Some(tx) => tx
                .send(batch)
                .map_err(|_| "the submit thread stopped".to_owned()),
            None => Err("the backend was shut down".to_owned()),
        }
    }

    pub(crate) fn cancel(&mut self, keys: &[AttemptKey]) {
        let mut names = Vec::new();
        {
            let mut state = self.shared.lock();
            for &key in keys {
                let wu = state.wu_of(&self.shared.run, key);
                state.followed.remove(&key);
                if state.pending.remove(&wu).is_some() {
                    names.push(wu.clone());
                }
                // Also what is cancelled before the submit thread gets to it.
                state
                    .cancelled
                    .insert(spool::wu_name(&self.shared.run, key));
                state.cancelled.insert(wu);
            }
        }
        if names.is_empty() {
            return;
        }
        self.cancels.retain(|t| !t.is_finished());
        if let Some(db) = self.shared.db.clone() {
            let spawned = std::thread::Builder::new()
                .name("pymw-boinc-cancel".into())
                .spawn(move || {
                    if let Err(e) = db.cancel(&names) {
                        tracing::warn!("cannot cancel {} BOINC work units: {e}", names.len());
                    }
                });
            match spawned {
                Ok(t) => self.cancels.push(t),
                Err(e) => tracing::warn!("cannot cancel BOINC work units: no thread: {e}"),
            }
        }
    }

    pub(crate) fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.submit_tx = None;
        for t in self.threads.drain(..).chain(self.cancels.drain(..)) {
            let _ = t.join();
        }
        let (pending, earlier_dirs) = {
            let mut state = self.shared.lock();
            let pending: Vec<String> = state.pending.drain().map(|(wu, _)| wu).collect();
            (pending, std::mem::take(&mut state.earlier_dirs))
        };
        let settings = &self.shared.settings;
        if let Some(run) = &settings.run_name {
            // The run store records these attempts as in flight: the next
            // master of the run follows them (see the module docs).
            if !pending.is_empty() {
                tracing::info!(
                    run = %run,
                    dir = %self.shared.run_dir.display(),
                    "{} BOINC work units left for the next master of the run",
                    pending.len()
                );
            } else if !settings.keep_files {
                let _ = std::fs::remove_dir_all(&self.shared.run_dir);
                for dir in earlier_dirs {
                    // Only when empty: other work units of that master may
                    // still deliver there for a later master to follow.
                    // (The marker of a resumable run is never acted on.)
                    let _ = std::fs::remove_file(dir.join(crate::reaper::MARKER));
                    let _ = std::fs::remove_dir(dir);
                }
            }
            return;
        }
        if !settings.leave_running
            && !pending.is_empty()
            && let Some(db) = &self.shared.db
            && let Err(e) = db.cancel(&pending)
        {
            tracing::warn!(
                "cannot cancel {} unfinished BOINC work units: {e}",
                pending.len()
            );
        }
        if !settings.keep_files && !settings.leave_running {
            let _ = std::fs::remove_dir_all(&self.shared.run_dir);
        }
        if settings.keep_files {
            // A kept directory is the user's, not a dead master's to reap.
            let _ = std::fs::remove_file(self.shared.run_dir.join(crate::reaper::MARKER));
        }
        if let Some(watcher) = self.watcher.take() {
            watcher.dismiss();
        }
    }
}

/// The role's name after `__pymw`.
pub const INSTALL_ROLE: &str = "boinc-install";

/// The `boinc-install` role, for a project administrator:
/// `BIN __pymw boinc-install --boinc-project DIR [--boinc-app NAME]
/// [work unit options of the BOINC backend]`. It installs this binary as an
/// app version (as a project-host master does at start), writes the
/// daemons' shim scripts, writes the app's default templates
/// `templates/APP_in` and `templates/APP_out` when they do not exist (they
/// are what remote submissions and `create_work --appname APP` use), and
/// prints the `config.xml` daemon entries, saying whether they are there.
pub fn install_role(args: Vec<String>) -> i32 {
    use clap::Parser as _;
    /// Installs this binary as a BOINC app (see the `boinc-install` role).
    #[derive(clap::Parser)]
    #[command(name = "BIN __pymw boinc-install")]
    struct Cli {
        #[command(flatten)]
        boinc: crate::BoincArgs,
    }
    let cli = match Cli::try_parse_from(std::iter::once(INSTALL_ROLE.to_owned()).chain(args)) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let config = cli.boinc.config();
    let crate::BoincMode::ProjectHost { dir } = &config.mode else {
        eprintln!("pymw {INSTALL_ROLE}: give the project directory with --boinc-project DIR");
        return 2;
    };
    match install_app(&config.project_settings(dir), &config.workunit) {
        Ok(report) => {
            println!("{report}");
            0
        }
        Err(e) => {
            eprintln!("pymw {INSTALL_ROLE}: {e}");
            1
        }
    }
}

/// What the `boinc-install` role does; returns its report.
pub fn install_app(
    settings: &ProjectSettings,
    workunit: &WorkunitParams,
) -> Result<String, String> {
    let project = std::path::absolute(&settings.project_dir)
        .map_err(|e| format!("{}: {e}", settings.project_dir.display()))?;
    let settings = ProjectSettings {
        project_dir: project.clone(),
        ..settings.clone()
    };
    let config = ProjectConfig::load(&project).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let installed = install(&settings, &exe)?;
    let db = Db::new(&config, &settings.mysql).ok();
    if let Some(db) = &db
        && let Err(e) = crate::reaper::release_outputs(db)
    {
        tracing::warn!("cannot release the held outputs of retired batches: {e}");
    }
    let reaped = crate::reaper::reap_dead(&project, db.as_ref());
    let mut report = format!(
        "app `{}` version {} for {}: {} ({})
",
        settings.app,
        installed.version,
        settings.platform,
        installed.binary.display(),
        if installed.new {
            "added"
        } else {
            "already installed"
        }
    );
    for run in reaped {
        report.push_str(&format!("reaped the run {run} of a master that is gone\n"));
    }
    let daemons = PymwDaemons::new(settings.app.clone(), installed.binary.clone());
    for path in daemons.install_shims(&project).map_err(|e| e.to_string())? {
        report.push_str(&format!("shim script: {}\n", path.display()));
    }
    let (input, output) = crate::templates::default_template_paths(&settings.app);
    for (rel, content) in [
        (input, input_template(workunit).render()),
        (output, output_template(settings.max_output_bytes).render()),
    ] {
        let path = project.join(&rel);
        if path.exists() {
            report.push_str(&format!("template {rel}: exists, left as it is\n"));
        } else {
            write_if_changed(&path, &content)?;
            report.push_str(&format!("template {rel}: written\n"));
        }
    }
    match check_daemons(&config, &daemons) {
        Ok(()) => {
            report.push_str("config.xml runs this binary as the app's assimilator and validator\n")
        }
        Err(e) => report.push_str(&e),
    }
    Ok(report)
}

fn check_daemons(config: &ProjectConfig, daemons: &PymwDaemons) -> Result<(), String> {
    let has = |role: Role| {
        let shim = daemons.shim_name(role);
        config.daemon_cmds.iter().any(|cmd| cmd.contains(&shim))
    };
    if has(Role::Assimilate) && has(Role::ValidateInit) && has(Role::ValidateCompare) {
        return Ok(());
    }
    let entries = daemons
        .assimilator_entry()
        .and_then(|a| Ok(a.render() + &daemons.validator_entry()?.render()))
        .map_err(|e| e.to_string())?;
    Err(format!(
        "the project's config.xml does not run this binary as the assimilator and validator of app `{}`: \
         add these entries inside <daemons>, remove any other validator or assimilator of the app, \
         and run bin/stop and bin/start (or pass --boinc-no-daemon-check):\n{entries}",
        daemons.app
    ))
}

/// Applies a dispatch's resources to the defaults.
pub(crate) fn params_for(
    defaults: &WorkunitParams,
    dispatch: &Dispatch,
) -> Result<WorkunitParams, String> {
    let mut p = defaults.clone();
    let Some(res) = dispatch.resources.as_deref() else {
        return Ok(p);
    };
    if let Some(m) = res.memory_mib {
        p.rsc_memory_bound = m.saturating_mul(1 << 20);
    }
    if let Some(d) = res.disk_mib {
        p.rsc_disk_bound = d.saturating_mul(1 << 20);
    }
    let mut fpops_bound_set = false;
    for (k, v) in &res.extra {
        let Some(name) = k.strip_prefix("boinc.") else {
            continue;
        };
        let bad = || format!("resource `{k}` = {v:?} is not a valid value");
        let int = || v.trim().parse::<u32>().map_err(|_| bad());
        let big = || v.trim().parse::<u64>().map_err(|_| bad());
        let float = || {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x > 0.0)
                .ok_or_else(bad)
        };
        match name {
            "min_quorum" => p.min_quorum = int()?.max(1),
            "target_nresults" => p.target_nresults = int()?.max(1),
            "max_error_results" => {
                let n = int()?;
                if n == 0 {
                    return Err(format!(
                        "resource `{k}` = {v:?}: BOINC needs at least 1 (create_work refuses 0; \
                         a job fails at the (N+1)th error)"
                    ));
                }
                p.max_error_results = Some(n);
            }
            "max_total_results" => p.max_total_results = Some(int()?),
            "max_success_results" => p.max_success_results = Some(int()?),
            "rsc_fpops_est" => p.rsc_fpops_est = float()?,
            "rsc_fpops_bound" => {
                p.rsc_fpops_bound = float()?;
                fpops_bound_set = true;
            }
            "rsc_memory_bound" => p.rsc_memory_bound = big()?,
            "rsc_disk_bound" => p.rsc_disk_bound = big()?,
            "delay_bound" => p.delay_bound = big()?,
            other => return Err(format!("unknown BOINC resource `boinc.{other}`")),
        }
    }
    if p.min_quorum > defaults.min_quorum {
        // Sized again from the task's quorum, unless the task set them.
        let set = |key: &str| res.extra.iter().any(|(k, _)| k == key);
        if !set("boinc.max_success_results") {
            p.max_success_results = None;
        }
        if !set("boinc.max_total_results") {
            p.max_total_results = None;
        }
    }
    if !fpops_bound_set && p.rsc_fpops_bound < p.rsc_fpops_est {
        p.rsc_fpops_bound = p.rsc_fpops_est * 1000.0;
    }
    Ok(consistent(p))
}

/// Makes redundancy settings consistent: at least `min_quorum` results
/// created, room in the totals for them, and the bounds BOINC leaves to the
/// template sized from the quorum.
///
/// BOINC fails a job when more than `max_error_results` results erred
/// (`sched/transitioner.cpp`: `nerrors > max_error_results`), when more than
/// `max_success_results` valid results found no agreement
/// (`sched/validator.cpp`), or when it needs a result beyond
/// `max_total_results`. Unset, the success bound is the quorum (replicas
/// that disagree get one more to break the tie, and a job whose replicas
/// never agree fails after `quorum + 1` of them), and the total is the
/// success bound + 1 + the error bound: room for every tolerated error and
/// the tie breaker, no more. `max_error_results` is at least 1
/// (`create_work` refuses 0).
pub(crate) fn consistent(mut p: WorkunitParams) -> WorkunitParams {
    p.min_quorum = p.min_quorum.max(1);
    p.target_nresults = p.target_nresults.max(p.min_quorum);
    let errors = p
        .max_error_results
        .unwrap_or(DEFAULT_MAX_ERROR_RESULTS)
        .max(1);
    p.max_error_results = Some(errors);
    let success = p
        .max_success_results
        .unwrap_or(p.min_quorum)
        .max(p.min_quorum);
    p.max_success_results = Some(success);
    let total = p
        .max_total_results
        .unwrap_or_else(|| success.saturating_add(1).saturating_add(errors))
        .max(p.target_nresults);
    p.max_total_results = Some(total);
    p
}

/// `max_error_results` when neither the options nor a resource set it.
pub const DEFAULT_MAX_ERROR_RESULTS: u32 = 3;

fn lost(key: AttemptKey, cause: String) -> Event {
    Event::Lost {
        key,
        cause,
        stderr_tail: String::new(),
    }
}

/// Why a job could not be prepared: its resources (the same every time)
/// or the file system (perhaps not next time).
enum Prepare {
    Params(String),
    Io(String),
}

/// Stages a batch and creates its work units; follows those of earlier
/// masters that can be followed.
fn submit_batch(shared: &Shared, batch: Vec<Dispatch>) {
    let (earlier, mut fresh): (Vec<Dispatch>, Vec<Dispatch>) =
        batch.into_iter().partition(|d| d.reattach.is_some());
    if !earlier.is_empty() {
        fresh.extend(follow_earlier(shared, earlier));
    }
    let mut events = Vec::new();
    let mut groups: BTreeMap<String, Vec<(Dispatch, String)>> = BTreeMap::new();
    let project = &shared.settings.project_dir;
    for dispatch in fresh {
        let wu = spool::wu_name(&shared.run, dispatch.key);
        if shared.lock().cancelled.contains(&wu) {
            continue;
        }
        let prepared = params_for(&shared.defaults, &dispatch)
            .map_err(Prepare::Params)
            .and_then(|params| {
                let template = input_template(&params).render();
                let name = template_name(&shared.settings.app, "in", &template);
                write_if_changed(&project.join(&name), &template).map_err(Prepare::Io)?;
                stage_input(&shared.config, &wu, &dispatch).map_err(Prepare::Io)?;
                Ok(name)
            });
        match prepared {
            Ok(template) => groups.entry(template).or_default().push((dispatch, wu)),
            Err(Prepare::Params(e)) => events.push(Event::Failed {
                key: dispatch.key,
                message: format!("BOINC work unit {wu} not created: {e}"),
            }),
            Err(Prepare::Io(e)) => events.push(lost(
                dispatch.key,
                format!("BOINC work unit {wu} not created: {e}"),
            )),
        }
    }
    for (template, jobs) in groups {
        for chunk in jobs.chunks(MAX_JOBS_PER_CREATE_WORK) {
            create_jobs(shared, &template, chunk, &mut events);
        }
    }
    shared.events.send(events);
}

/// Sorts dispatches that carry the job id of an earlier master: those whose
/// work unit can be followed are reported `Queued` and `Started` and
/// followed; the others are returned, to be created as new work units (see
/// the module docs).
fn follow_earlier(shared: &Shared, dispatches: Vec<Dispatch>) -> Vec<Dispatch> {
    struct Candidate {
        dispatch: Dispatch,
        id: String,
        wu: String,
        dir: PathBuf,
        existed: bool,
    }
    let spool_dir = spool::spool_dir(&shared.settings.project_dir);
    let mut fresh = Vec::new();
    let mut candidates = Vec::new();
    // Work units of attempts the master cancelled before this thread got
    // to them.
    let mut to_cancel = Vec::new();
    for dispatch in dispatches {
        let id = dispatch.reattach.clone().unwrap_or_default();
        let parsed = JobId::parse(&id);
        let own = spool::wu_name(&shared.run, dispatch.key);
        if shared.lock().cancelled.contains(&own) {
            if let Some(JobId::Host { wu, .. }) = parsed {
                to_cancel.push(wu);
            }
            continue;
        }
        let checked = match parsed {
            Some(JobId::Host { wu, run_dir }) => {
                earlier_run_dir(&spool_dir, &shared.run, &wu, &run_dir).map(|dir| (wu, dir))
            }
            Some(_) => Err("it is not a work unit of project-host mode".to_owned()),
            None => Err("it is not a BOINC job id".to_owned()),
        };
        match checked {
            Ok((wu, dir)) => candidates.push(Candidate {
                existed: dir.is_dir(),
                dispatch,
                id,
                wu,
                dir,
            }),
            Err(why) => {
                not_followed(&id, &why);
                fresh.push(dispatch);
            }
        }
    }
    let known = match (&shared.db, candidates.is_empty()) {
        (Some(db), false) => {
            // The directories first: an assimilation after the question
            // below then delivers into them.
            for c in candidates.iter().filter(|c| !c.existed) {
                if let Err(e) = std::fs::create_dir_all(&c.dir) {
                    tracing::warn!(dir = %c.dir.display(), "cannot create a run directory again: {e}");
                }
            }
            let names: Vec<String> = candidates.iter().map(|c| c.wu.clone()).collect();
            match db.workunits(&names) {
                Ok(known) => Some(known),
                Err(e) => {
                    tracing::warn!(
                        "cannot ask the database about {} BOINC work units of an earlier master: {e}",
                        names.len()
                    );
                    None
                }
            }
        }
        _ => None,
    };
    let mut events = Vec::new();
    let mut follow = Vec::new();
    for c in candidates {
        let delivered = || has_record(&c.dir, &c.wu);
        let verdict = match known.as_ref().map(|k| k.get(&c.wu)) {
            Some(None) => Err("the project does not know the work unit"),
            Some(Some(w)) if w.error_mask.contains(crate::WuErrorReason::Cancelled) => {
                Err("the work unit was cancelled")
            }
            Some(Some(w)) if w.assimilated() && !delivered() => Err(
                "the work unit was assimilated, but its output is no longer in its run directory",
            ),
            Some(Some(_)) => Ok(()),
            None if c.existed || delivered() => Ok(()),
            None => Err(
                "its run directory is gone, and without the database it cannot be told whether \
                 its output was delivered",
            ),
        };
        let verdict = verdict.and_then(|()| {
            if shared.lock().pending.contains_key(&c.wu) {
                Err("another attempt follows it already")
            } else {
                Ok(())
            }
        });
        match verdict {
            Ok(()) => {
                events.push(Event::Queued {
                    key: c.dispatch.key,
                    job_id: c.id.clone(),
                });
                events.push(Event::Started {
                    key: c.dispatch.key,
                });
                follow.push(c);
            }
            Err(why) => {
                not_followed(&c.id, why);
                if !c.existed {
                    // Recreated for nothing: removed again if still empty.
                    let _ = std::fs::remove_dir(&c.dir);
                }
                if known.as_ref().is_some_and(|k| k.contains_key(&c.wu)) {
                    // A late failure record of it is dropped.
                    shared.lock().cancelled.insert(c.wu);
                }
                fresh.push(c.dispatch);
            }
        }
    }
    // Reported before the follower can see them: a finished work unit's
    // event comes after them.
    shared.events.send(events);
    {
        let mut state = shared.lock();
        for c in follow {
            let key = c.dispatch.key;
            if state.cancelled.contains(&spool::wu_name(&shared.run, key)) {
                // Cancelled while it was being looked at.
                to_cancel.push(c.wu);
                continue;
            }
            tracing::debug!(job = %c.id, key, "following a BOINC work unit of an earlier master");
            state.pending.insert(
                c.wu.clone(),
                Pending {
                    key,
                    task: c.dispatch.task,
                },
            );
            state.followed.insert(key, c.wu);
            state.earlier_dirs.insert(c.dir);
        }
        state.cancelled.extend(to_cancel.iter().cloned());
    }
    if !to_cancel.is_empty()
        && let Some(db) = &shared.db
        && let Err(e) = db.cancel(&to_cancel)
    {
        tracing::warn!("cannot cancel {} BOINC work units: {e}", to_cancel.len());
    }
    fresh
}

fn not_followed(id: &str, why: &str) {
    tracing::info!(
        job = %id,
        "not following a BOINC work unit of an earlier master ({why}): running the attempt as a new one"
    );
}

/// Whether the output or failure record of `wu` is in `dir`.
fn has_record(dir: &Path, wu: &str) -> bool {
    [spool::OUT_SUFFIX, spool::ERR_SUFFIX]
        .iter()
        .any(|suffix| dir.join(format!("{wu}{suffix}")).is_file())
}

/// The run directory of this project where work unit `wu` delivers, when
/// `run_dir` (from its job id) is that directory.
fn earlier_run_dir(
    spool_dir: &Path,
    own_run: &str,
    wu: &str,
    run_dir: &Path,
) -> Result<PathBuf, String> {
    let Some((run, _)) = spool::parse_wu_name(wu) else {
        return Err(format!("`{wu}` is not the name of a pymw work unit"));
    };
    if run == own_run {
        return Err("it is a work unit of this master".to_owned());
    }
    if run_dir.file_name().and_then(|n| n.to_str()) != Some(run) {
        return Err(format!(
            "its run directory {} is not that of run id `{run}`",
            run_dir.display()
        ));
    }
    let parent = run_dir.parent().unwrap_or(run_dir);
    let same = parent == spool_dir
        || matches!(
            (parent.canonicalize(), spool_dir.canonicalize()),
            (Ok(a), Ok(b)) if a == b
        );
    if !same {
        return Err(format!(
            "it belongs to another project (its run directory is {})",
            run_dir.display()
        ));
    }
    Ok(spool_dir.join(run))
}

/// Gives a new directory of the download hierarchy the group write and
/// setgid bits of `download/` itself, whatever this process's umask: remote
/// submission (`submit_rpc_handler.php`, run by the web server's user in
/// the project's group) writes its inputs into the same directories, and
/// answers "can't write to file" for a directory a master made 0755.
fn share_like(dir: &Path, download_dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let shared = std::fs::metadata(download_dir).map_or(0, |m| m.permissions().mode() & 0o2070);
    if shared != 0
        && let Ok(m) = std::fs::metadata(dir)
    {
        let mode = m.permissions().mode() & 0o7777;
        if mode & shared != shared {
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | shared));
        }
    }
}

/// Writes a dispatch's input envelope where `bin/stage_file --copy` would.
fn stage_input(config: &ProjectConfig, wu: &str, dispatch: &Dispatch) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut bytes = Vec::with_capacity(dispatch.input.len() + 64);
    wire::encode_input(
        &InputBody {
            task: dispatch.task.name,
            fingerprint: (dispatch.task.fingerprint)(),
            payload: &dispatch.input,
        },
        &mut bytes,
    );
    let name = spool::input_name(wu);
    let path = config.download_path(&name);
    let md5_path = path.with_file_name(format!("{name}.md5"));
    let dir = path.parent().unwrap_or(&config.download_dir);
    let io = |p: &Path| {
        let p = p.to_owned();
        move |e: std::io::Error| format!("cannot stage {}: {e}", p.display())
    };
    if !dir.is_dir() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        share_like(dir, &config.download_dir);
    }
    let partial = dir.join(format!(".{name}.partial"));
    std::fs::write(&partial, &bytes)
        .and_then(|()| std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o644)))
        .and_then(|()| std::fs::rename(&partial, &path))
        .map_err(io(&path))?;
    std::fs::write(&md5_path, create_work::md5_companion(&bytes))
        .and_then(|()| std::fs::set_permissions(&md5_path, std::fs::Permissions::from_mode(0o644)))
        .map_err(io(&md5_path))?;
    Ok(())
}

/// Runs one `create_work --stdin` for jobs sharing an input template.
fn create_jobs(
    shared: &Shared,
    template: &str,
    jobs: &[(Dispatch, String)],
    events: &mut Vec<Event>,
) {
    let lines: Result<Vec<JobLine>, String> = jobs
        .iter()
        .map(|(d, wu)| {
            let args = crate::app::RunArgs::command_line(d.task.name);
            Ok(JobLine {
                wu_name: wu.clone(),
                command_line: Some(
                    create_work::command_line_from_args(&args).map_err(|e| e.to_string())?,
                ),
                input_files: vec![spool::input_name(wu)],
            })
        })
        .collect();
    let stdin = lines.and_then(|l| create_work::render_stdin(&l).map_err(|e| e.to_string()));
    let stdin = match stdin {
        Ok(s) => s,
        Err(e) => {
            events.extend(
                jobs.iter()
                    .map(|(d, wu)| lost(d.key, format!("BOINC work unit {wu} not created: {e}"))),
            );
            return;
        }
    };
    {
        let mut state = shared.lock();
        for (d, wu) in jobs {
            state.pending.insert(
                wu.clone(),
                Pending {
                    key: d.key,
                    task: d.task,
                },
            );
        }
    }
    let command = CreateWorkCommand {
        wu_template: Some(template.to_owned()),
        result_template: Some(shared.result_template.clone()),
        ..CreateWorkCommand::new(shared.settings.app.clone())
    };
    match run_create_work(&shared.settings.project_dir, &command, &stdin) {
        Ok(()) => {
            tracing::debug!(jobs = jobs.len(), "BOINC work units created");
            for (d, wu) in jobs {
                let job_id = JobId::Host {
                    wu: wu.clone(),
                    run_dir: shared.run_dir.clone(),
                };
                events.push(Event::Queued {
                    key: d.key,
                    job_id: job_id.to_string(),
                });
                events.push(Event::Started { key: d.key });
            }
        }
        Err(e) => {
            let mut state = shared.lock();
            let message = format!(
                "bin/create_work refused {} work unit(s): {}",
                jobs.len(),
                e.message
            );
            tracing::warn!(%message, deterministic = e.deterministic, "create_work failed");
            for (d, wu) in jobs {
                state.pending.remove(wu);
                events.push(if e.deterministic {
                    // It would refuse them again: fail the tasks once,
                    // with the whole reason, instead of retrying.
                    Event::Failed {
                        key: d.key,
                        message: message.clone(),
                    }
                } else {
                    lost(d.key, message.clone())
                });
            }
        }
    }
}

/// Why a `create_work` run failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateWorkFailure {
    /// Running it again with the same jobs would fail the same way
    /// ([`create_work::CreateWorkError::is_deterministic`]).
    pub deterministic: bool,
    /// The whole reason.
    pub message: String,
}

/// Runs `bin/create_work ARGS --stdin` fed `stdin`.
pub fn run_create_work(
    project: &Path,
    command: &CreateWorkCommand,
    stdin: &str,
) -> Result<(), CreateWorkFailure> {
    let program = project.join(create_work::CREATE_WORK);
    let fail = |e: std::io::Error| CreateWorkFailure {
        deterministic: false,
        message: format!("cannot run {}: {e}", program.display()),
    };
    let mut child = Command::new(&program)
        .args(command.args())
        .current_dir(project)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(fail)?;
    let input = child.stdin.take();
    let text = stdin.to_owned();
    let writer = std::thread::spawn(move || {
        if let Some(mut input) = input {
            let _ = input.write_all(text.as_bytes());
        }
    });
    let output = child.wait_with_output().map_err(fail)?;
    let _ = writer.join();
    create_work::check_output(
        output.status.code(),
        &String::from_utf8_lossy(&output.stdout),
        &String::from_utf8_lossy(&output.stderr),
    )
    .map_err(|e| CreateWorkFailure {
        deterministic: e.is_deterministic(),
        message: e.reason(),
    })
}

/// The follower: turns files in the run directory into events.
fn follow(shared: &Shared) {
    loop {
        let stopping = shared.stop.load(Ordering::Relaxed);
        let events = scan_run_dir(shared);
        if !shared.events.send(events) || stopping {
            return;
        }
        let mut slept = Duration::ZERO;
        while slept < shared.settings.poll && !shared.stop.load(Ordering::Relaxed) {
            let step = Duration::from_millis(50).min(shared.settings.poll - slept);
            std::thread::sleep(step);
            slept += step;
        }
    }
}

fn scan_run_dir(shared: &Shared) -> Vec<Event> {
    let mut events = Vec::new();
    scan_dir(shared, &shared.run_dir, true, &mut events);
    let earlier: Vec<PathBuf> = shared.lock().earlier_dirs.iter().cloned().collect();
    for dir in earlier {
        scan_dir(shared, &dir, false, &mut events);
    }
    events
}

/// Turns the files of pending work units in `dir` into events. Files of
/// no pending work unit are removed from this master's own directory
/// (`own`), but left in an earlier master's: a later dispatch may follow
/// them.
fn scan_dir(shared: &Shared, dir: &Path, own: bool, events: &mut Vec<Event>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            continue;
        };
        let (wu, is_output) = if let Some(wu) = name.strip_suffix(spool::OUT_SUFFIX) {
            (wu, true)
        } else if let Some(wu) = name.strip_suffix(spool::ERR_SUFFIX) {
            (wu, false)
        } else {
            continue;
        };
        let path = entry.path();
        let pending = {
            let mut state = shared.lock();
            match state.pending.remove(wu) {
                Some(p) => {
                    state.followed.remove(&p.key);
                    Some(p)
                }
                None if state.cancelled.remove(wu) => None,
                None if own => {
                    tracing::warn!(file = %path.display(), "a file for no work unit of this run; removed");
                    None
                }
                None => continue,
            }
        };
        let stderr_path = dir.join(format!("{wu}{}", crate::assimilate::STDERR_SUFFIX));
        if let Some(Pending { key, task }) = pending {
            events.push(if is_output {
                match wire::read_envelope_file(&path) {
                    Ok(bytes) => {
                        let mut event = crate::events::output_event(key, task, &bytes);
                        if let Event::Finished {
                            outcome: Err(_),
                            stderr_tail,
                            ..
                        } = &mut event
                        {
                            *stderr_tail = read_stderr_tail(&stderr_path);
                        }
                        event
                    }
                    Err(e) => lost(
                        key,
                        format!("the output of BOINC work unit {wu} is unreadable: {e}"),
                    ),
                }
            } else {
                read_failure(key, wu, &path)
            });
        }
        if shared.settings.keep_files {
            let seen = dir.join("seen");
            let _ = std::fs::create_dir_all(&seen);
            let _ = std::fs::rename(&path, seen.join(name));
        } else {
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_file(&stderr_path);
        }
    }
}

/// The tail of the stderr the assimilator wrote next to an output carrying
/// the task's own failure (empty when there is none).
fn read_stderr_tail(path: &Path) -> String {
    const TAIL: u64 = 32 * 1024;
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let _ = std::io::Seek::seek(
        &mut file,
        std::io::SeekFrom::Start(len.saturating_sub(TAIL)),
    );
    let mut bytes = Vec::new();
    let _ = file.take(TAIL).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Most bytes of a failure record read.
const RECORD_MAX: u64 = 16 * 1024 * 1024;

fn read_failure(key: AttemptKey, wu: &str, path: &Path) -> Event {
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| f.take(RECORD_MAX).read_to_end(&mut bytes));
    let record = read.map_err(|e| e.to_string()).and_then(|_| {
        serde_json::from_slice::<spool::FailureRecord>(&bytes).map_err(|e| e.to_string())
    });
    match record {
        Ok(record) => crate::events::failure_event(key, &record),
        Err(e) => lost(
            key,
            format!("BOINC work unit {wu} failed, and its failure record is unreadable: {e}"),
        ),
    }
}
