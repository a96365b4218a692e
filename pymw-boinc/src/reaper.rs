//! Cleaning up after masters, on the project host.
//!
//! # Masters that died
//!
//! A project-host master that ends normally cancels its unfinished work
//! units and removes its run directory (`pymw_runs/<run>/`). One that dies
//! (Ctrl-C, SIGTERM, SIGKILL, a panic with `panic = "abort"`) cannot, so
//! two things do it instead, the same way the HTCondor backend does:
//!
//! - **A watcher child.** At start the master spawns a `/bin/sh` child in
//!   its own process group that reads one line from a pipe whose other end
//!   only the master holds ([`Watcher`]). A master that shuts down writes
//!   `done`; a master that dies any other way closes the pipe, and the
//!   child then runs `BIN __pymw boinc-reap --boinc-project DIR RUN`, which
//!   cancels the run's unfinished work units and removes its directory.
//! - **A marker.** Every run directory holds [`MARKER`]: the master's pid,
//!   its start time (field 22 of `/proc/PID/stat`, so a reused pid is not
//!   taken for the master), whether its work units are meant to outlive it
//!   (`--run`, `--boinc-leave-running`), and the watcher's pid. A later master, `boinc-install` and `boinc-reap`
//!   without a run ([`reap_dead`]) reap every run directory whose master is
//!   gone and that is not resumable: when the watcher was killed too, or
//!   the machine rebooted.
//!
//! Resumable runs (`--run NAME`) are never reaped: their work units are for
//! the next master of the run to follow; nor are runs whose work units were
//! left running on purpose (`--boinc-leave-running`).
//!
//! # Outputs of remote submitters
//!
//! An app whose assimilator is this binary serves remote submitters too.
//! BOINC deletes a job's outputs about 2 s after it is assimilated, while a
//! remote master fetches them later with `get_output.php`, and BOINC's own
//! design for remote batches is that they are not assimilated at all until
//! `retire_batch`. `script_assimilator` cannot defer a work unit (its exit
//! status is a `system()` status, never `DEFER_ASSIMILATION`), so the
//! assimilator role holds the outputs instead: for a work unit of a
//! submitted batch (`workunit.batch` names a `batch` row that is not
//! retired) it sets the `file_delete_state` of the work unit's successful
//! results to [`HELD`] ([`hold_query`]), a value neither the transitioner
//! (which marks only state 0 for deletion) nor `file_deleter` (states 1 and
//! 3) touches. Once the batch is retired (or expired), [`release_query`]
//! sets them to 1 (ready) and `file_deleter` removes the files. The release
//! runs whenever the assimilator meets a work unit of no project-host
//! master, at `boinc-install`, and at `boinc-reap` without a run.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::db::Db;
use crate::spool;

/// `result.file_delete_state` of an output held for a remote submitter.
pub const HELD: u32 = 71;

/// The marker file in every run directory.
pub const MARKER: &str = ".pymw-master";

/// The role's name after `__pymw`.
pub const ROLE: &str = "boinc-reap";

/// The update that holds the outputs of work unit `wu_id` when it belongs to
/// a submitted batch that is not retired, followed by a select that returns
/// one row when it does.
pub fn hold_query(wu_id: u64) -> String {
    format!(
        "UPDATE result r JOIN workunit w ON r.workunitid = w.id JOIN batch b ON b.id = w.batch \
         SET r.file_delete_state = {HELD} \
         WHERE w.id = {wu_id} AND w.batch > 0 AND b.state < 4 AND r.outcome = 1 \
         AND r.file_delete_state = 0;\n\
         SELECT w.batch FROM workunit w JOIN batch b ON b.id = w.batch \
         WHERE w.id = {wu_id} AND w.batch > 0 AND b.state < 4;\n"
    )
}

/// The update that lets `file_deleter` remove held outputs whose batch is
/// retired, expired or gone.
pub fn release_query() -> String {
    format!(
        "UPDATE result r JOIN workunit w ON r.workunitid = w.id LEFT JOIN batch b ON b.id = w.batch \
         SET r.file_delete_state = 1 \
         WHERE r.file_delete_state = {HELD} AND (b.id IS NULL OR b.state >= 4);\n"
    )
}

/// Holds the outputs of `wu_id` if it belongs to a live submitted batch;
/// returns whether it does.
pub fn hold_outputs(db: &Db, wu_id: u64) -> Result<bool, crate::db::DbError> {
    Ok(!db.query(&hold_query(wu_id))?.is_empty())
}

/// Releases held outputs whose batch is over (see the module docs).
pub fn release_outputs(db: &Db) -> Result<(), crate::db::DbError> {
    db.query(&release_query()).map(|_| ())
}

/// The updates that cancel every unfinished work unit of run `run`, as
/// [`Db::cancel`] does for named ones.
pub fn cancel_run_query(run: &str) -> Option<String> {
    if !spool::is_run_id(run) {
        return None;
    }
    let like = format!("{}{run}\\_%", spool::WU_PREFIX.replace('_', "\\_"));
    Some(format!(
        "UPDATE result r JOIN workunit w ON r.workunitid = w.id SET r.server_state = 5, r.outcome = 5 \
         WHERE r.server_state = 2 AND w.name LIKE '{like}' AND w.assimilate_state < 2;\n\
         UPDATE workunit SET error_mask = error_mask | 16, transition_time = UNIX_TIMESTAMP() \
         WHERE name LIKE '{like}' AND assimilate_state < 2 AND error_mask & 16 = 0;\n"
    ))
}

/// What [`MARKER`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// The master's pid.
    pub pid: u32,
    /// Its start time in clock ticks since boot (`/proc/PID/stat` field 22).
    pub start_time: u64,
    /// Whether the run's work units are meant to outlive the master
    /// (`--run`, `--boinc-leave-running`): never reaped.
    pub resumable: bool,
    /// The watcher's pid, 0 for none.
    pub watcher: u32,
}

impl Marker {
    /// This process's marker.
    pub fn this_process(resumable: bool, watcher: u32) -> Option<Marker> {
        let pid = std::process::id();
        Some(Marker {
            pid,
            start_time: start_time(pid)?,
            resumable,
            watcher,
        })
    }

    /// `pid start_time resumable watcher`.
    pub fn render(&self) -> String {
        format!(
            "{} {} {} {}\n",
            self.pid,
            self.start_time,
            u8::from(self.resumable),
            self.watcher
        )
    }

    /// Reads a rendered marker.
    pub fn parse(text: &str) -> Option<Marker> {
        let mut it = text.split_whitespace();
        let pid = it.next()?.parse().ok()?;
        let start_time = it.next()?.parse().ok()?;
        let resumable = it.next()? == "1";
        let watcher = it.next().and_then(|w| w.parse().ok()).unwrap_or(0);
        Some(Marker {
            pid,
            start_time,
            resumable,
            watcher,
        })
    }

    /// Whether the process it names is still that master.
    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start_time)
    }

    /// Writes it into `run_dir` (atomically).
    pub fn write(&self, run_dir: &Path) -> std::io::Result<()> {
        let partial = run_dir.join(format!("{MARKER}.partial"));
        std::fs::write(&partial, self.render())?;
        std::fs::rename(partial, run_dir.join(MARKER))
    }

    /// The marker of `run_dir`, if any.
    pub fn read(run_dir: &Path) -> Option<Marker> {
        Marker::parse(&std::fs::read_to_string(run_dir.join(MARKER)).ok()?)
    }
}

/// Start time of process `pid` (`/proc/PID/stat` field 22), `None` if there
/// is no such process.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    // Field 3 is the first after the parenthesis; field 22 the 20th.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Cancels the unfinished work units of `run` and removes its directory
/// (unless `keep_dir`).
pub fn reap_run(project: &Path, db: Option<&Db>, run: &str, keep_dir: bool) -> Result<(), String> {
    if !spool::is_run_id(run) {
        return Err(format!("{run:?} is not a pymw run id"));
    }
    if let (Some(db), Some(sql)) = (db, cancel_run_query(run)) {
        db.query(&sql)
            .map_err(|e| format!("cannot cancel the work units of run {run}: {e}"))?;
    }
    let dir = spool::spool_dir(project).join(run);
    if keep_dir {
        let _ = std::fs::remove_file(dir.join(MARKER));
    } else {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove {}: {e}", dir.display())),
        }
    }
    Ok(())
}

/// Reaps the run directories of dead masters that are not resumable (see
/// the module docs); returns the runs reaped. Directories without a marker (made by older pymw
/// versions) are left alone.
pub fn reap_dead(project: &Path, db: Option<&Db>) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(spool::spool_dir(project)) else {
        return Vec::new();
    };
    let mut reaped = Vec::new();
    for entry in entries.flatten() {
        let Some(run) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !spool::is_run_id(&run) {
            continue;
        }
        let Some(marker) = Marker::read(&entry.path()) else {
            continue;
        };
        if marker.resumable || marker.alive() {
            continue;
        }
        match reap_run(project, db, &run, false) {
            Ok(()) => {
                tracing::info!(run = %run, pid = marker.pid, "reaped the run of a master that is gone");
                reaped.push(run);
            }
            Err(e) => tracing::warn!("{e}"),
        }
    }
    reaped
}

/// The `boinc-reap` role: `BIN __pymw boinc-reap --boinc-project DIR [RUN
/// [--keep-files]]`. With a run: cancel its unfinished work units and
/// remove its directory (what the watcher runs). Without: release the held
/// outputs of retired batches, then [`reap_dead`].
/// The database is reached with `$PYMW_BOINC_MYSQL` (default `mysql`).
pub fn role(args: Vec<String>) -> i32 {
    let mut project = None;
    let mut run = None;
    let mut keep = false;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--boinc-project" => project = it.next().map(PathBuf::from),
            "--keep-files" => keep = true,
            _ if run.is_none() && !arg.starts_with('-') => run = Some(arg),
            _ => {
                eprintln!(
                    "pymw {ROLE}: unexpected {arg:?}; usage: {ROLE} --boinc-project DIR [RUN [--keep-files]]"
                );
                return 2;
            }
        }
    }
    let Some(project) = project else {
        eprintln!("pymw {ROLE}: give the project directory with --boinc-project DIR");
        return 2;
    };
    let db = crate::project_config::ProjectConfig::load(&project)
        .map_err(|e| e.to_string())
        .and_then(|c| Db::new(&c, &Db::program_from_env()).map_err(|e| e.to_string()));
    let db = match db {
        Ok(db) => Some(db),
        Err(e) => {
            eprintln!("pymw {ROLE}: no database access ({e}): work units are not cancelled");
            None
        }
    };
    match run {
        Some(run) => match reap_run(&project, db.as_ref(), &run, keep) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("pymw {ROLE}: {e}");
                1
            }
        },
        None => {
            if let Some(db) = &db
                && let Err(e) = release_outputs(db)
            {
                eprintln!("pymw {ROLE}: cannot release the held outputs of retired batches: {e}");
            }
            for run in reap_dead(&project, db.as_ref()) {
                println!("reaped run {run}");
            }
            0
        }
    }
}

/// The watcher child of a project-host master (see the module docs).
#[derive(Debug)]
pub struct Watcher {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
}

/// The watcher's script: its arguments are the `boinc-reap` command line.
const WATCHER_SCRIPT: &str = r#"IFS= read -r line
[ "$line" = done ] && exit 0
exec "$@" >/dev/null 2>&1"#;

impl Watcher {
    /// Spawns the watcher of run `run` of this binary `exe`.
    pub fn spawn(
        exe: &Path,
        project: &Path,
        run: &str,
        keep_dir: bool,
        mysql: &Path,
    ) -> std::io::Result<Watcher> {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new("/bin/sh");
        command
            .args(["-c", WATCHER_SCRIPT, "pymw-boinc-watcher"])
            .arg(exe)
            .args(["__pymw", ROLE, "--boinc-project"])
            .arg(project)
            .arg(run);
        if keep_dir {
            command.arg("--keep-files");
        }
        command
            .env(crate::db::MYSQL_ENV, mysql)
            .current_dir(project)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Not in the terminal's process group: Ctrl-C must reach only
            // the master, whose death the watcher is waiting for.
            .process_group(0);
        let mut child = command.spawn()?;
        let stdin = child.stdin.take();
        Ok(Watcher { child, stdin })
    }

    /// The watcher's pid.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Everything is cleaned up: the watcher exits without doing anything.
    pub fn dismiss(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"done\n");
        }
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trip_and_liveness() {
        let m = Marker::this_process(false, 42).expect("this process has a start time");
        assert_eq!(Marker::parse(&m.render()), Some(m.clone()));
        assert!(m.alive());
        let reused = Marker {
            start_time: m.start_time + 1,
            ..m.clone()
        };
        assert!(!reused.alive(), "another start time is another process");
        let dir = std::env::temp_dir().join(format!("pymw-reaper-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        m.write(&dir).unwrap();
        assert_eq!(Marker::read(&dir), Some(m));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn queries() {
        assert!(cancel_run_query("bad_run").is_none());
        let q = cancel_run_query("rabc123").unwrap();
        assert!(q.contains("LIKE 'pymw\\_rabc123\\_%'"), "{q}");
        assert!(q.contains("error_mask = error_mask | 16"));
        let h = hold_query(7);
        assert!(h.contains(&format!("file_delete_state = {HELD}")));
        assert!(h.contains("w.id = 7"));
        assert!(release_query().contains(&format!("file_delete_state = {HELD}")));
    }
}
