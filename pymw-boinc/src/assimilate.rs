//! The assimilator role, called by `script_assimilator` through the shim
//! script of [`crate::daemons::PymwDaemons`] once per finished work unit:
//!
//! - `boinc-assimilate WU_ID RUNTIME FILE`: the canonical result's output
//!   is copied into the run directory of the master that created the work
//!   unit, as `<wu name>.out` (the work unit's name comes from the file's
//!   name, see [`crate::spool`]). The copy is made before returning because
//!   `file_deleter` removes the upload about 2 s after assimilation.
//! - `boinc-assimilate --error MASK WU_ID`: the work unit failed. Its name
//!   and its results (exit status, outcome, `stderr_out`) are read from the
//!   project database ([`crate::db::Db`]) and written as a
//!   [`FailureRecord`] to `<wu name>.err` in the run directory.
//!
//! A non-zero exit makes the `script_assimilator` daemon itself exit and
//! leaves the work unit unassimilated until the daemon is started again
//! (recorded in `assimilator/script-runs/e-...`). So the role exits 0
//! whenever trying again cannot help: a work unit of no pymw run, a run
//! whose master is gone (its directory was removed), a missing upload. It
//! exits 1 only when writing into an existing run directory fails (a full
//! disk, say), where a later retry can succeed.
//!
//! The project directory is `$PYMW_BOINC_PROJECT_DIR` if set, else the
//! parent of the working directory when that is the project's
//! `tmp_<host>/` (where the daemons run scripts), else the working
//! directory.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::daemons::AssimilateCall;
use crate::db::Db;
use crate::project_config::ProjectConfig;
use crate::spool::{self, FailureRecord};

/// Environment variable naming the project directory for the daemon roles.
pub const PROJECT_DIR_ENV: &str = "PYMW_BOINC_PROJECT_DIR";

/// The project directory of a daemon role (see the module docs).
pub fn project_dir() -> std::io::Result<PathBuf> {
    if let Some(dir) = std::env::var_os(PROJECT_DIR_ENV) {
        return Ok(PathBuf::from(dir));
    }
    let cwd = std::env::current_dir()?;
    let in_tmp = cwd
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("tmp_"));
    match cwd.parent() {
        Some(parent) if in_tmp && parent.join("config.xml").is_file() => Ok(parent.to_owned()),
        _ => Ok(cwd),
    }
}

/// The `boinc-assimilate` role.
pub fn role(args: Vec<String>) -> i32 {
    let args: Vec<OsString> = args.into_iter().map(OsString::from).collect();
    let call = match AssimilateCall::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            // Retrying the same arguments cannot help.
            eprintln!("pymw boinc-assimilate: {e}");
            return 0;
        }
    };
    let project = match project_dir() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("pymw boinc-assimilate: no working directory: {e}");
            return 1;
        }
    };
    match assimilate(&project, &call, &Db::program_from_env()) {
        Ok(message) => {
            eprintln!("pymw boinc-assimilate: {message}");
            0
        }
        Err(e) => {
            eprintln!("pymw boinc-assimilate: {e}");
            1
        }
    }
}

/// Does what the role does; `Ok` carries a line for the daemon's log.
pub fn assimilate(project: &Path, call: &AssimilateCall, mysql: &Path) -> Result<String, String> {
    let spool = spool::spool_dir(project);
    match call {
        AssimilateCall::Canonical { wu_id, files, .. } => {
            let Some(file) = files.first() else {
                return Ok(format!("work unit {wu_id}: no output file; ignored"));
            };
            let file_name = file
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let Some(wu) = spool::wu_name_from_output_file(file_name) else {
                return Ok(format!(
                    "work unit {wu_id}: output {file_name:?} is not a BOINC output name; ignored"
                ));
            };
            let Some(run_dir) = run_dir(&spool, wu) else {
                return hold_for_submitter(project, *wu_id, wu, mysql);
            };
            let target = run_dir.join(format!("{wu}{}", spool::OUT_SUFFIX));
            if carries_failure(file) {
                // A task's own failure is a result: its stderr (which the
                // output does not hold) goes next to it, written first.
                let stderr = ProjectConfig::load(project)
                    .map_err(|e| e.to_string())
                    .and_then(|config| Db::new(&config, mysql).map_err(|e| e.to_string()))
                    .and_then(|db| db.failed_workunit(*wu_id).map_err(|e| e.to_string()))
                    .map(|(_, results)| canonical_stderr(&results))
                    .unwrap_or_else(|e| format!("(the result's stderr could not be read: {e})"));
                let path = run_dir.join(format!("{wu}{STDERR_SUFFIX}"));
                gone_is_ok(
                    &run_dir,
                    write_atomically(&path, |out| out.write_all(stderr.as_bytes())),
                )?;
            }
            match std::fs::File::open(file) {
                Ok(mut source) => {
                    gone_is_ok(
                        &run_dir,
                        write_atomically(&target, |out| {
                            std::io::copy(&mut source, out).map(|_| ())
                        }),
                    )?;
                    Ok(format!(
                        "work unit {wu} ({wu_id}): output copied to {}",
                        target.display()
                    ))
                }
                Err(e) => {
                    let record = FailureRecord {
                        wu_id: *wu_id,
                        wu_name: Some(wu.to_owned()),
                        error_mask: 0,
                        results: Vec::new(),
                        note: Some(format!(
                            "the canonical output {} could not be read: {e}",
                            file.display()
                        )),
                    };
                    gone_is_ok(&run_dir, write_record(&run_dir, wu, &record))?;
                    Ok(format!(
                        "work unit {wu} ({wu_id}): output unreadable ({e}); failure recorded"
                    ))
                }
            }
        }
        AssimilateCall::Failed { wu_id, error_mask } => {
            let looked_up = ProjectConfig::load(project)
                .map_err(|e| e.to_string())
                .and_then(|config| Db::new(&config, mysql).map_err(|e| e.to_string()))
                .and_then(|db| db.failed_workunit(*wu_id).map_err(|e| e.to_string()));
            match looked_up {
                Ok((wu, results)) => {
                    let Some(run_dir) = run_dir(&spool, &wu) else {
                        return Ok(format!(
                            "failed work unit {wu} ({wu_id}) belongs to no running pymw master; ignored"
                        ));
                    };
                    let record = FailureRecord {
                        wu_id: *wu_id,
                        wu_name: Some(wu.clone()),
                        error_mask: error_mask.0,
                        results,
                        note: None,
                    };
                    gone_is_ok(&run_dir, write_record(&run_dir, &wu, &record))?;
                    Ok(format!(
                        "work unit {wu} ({wu_id}) failed ({error_mask}); recorded"
                    ))
                }
                Err(e) => {
                    // Without the name the run is unknown; keep what is known.
                    let dir = spool.join(spool::UNMATCHED_DIR);
                    let record = FailureRecord {
                        wu_id: *wu_id,
                        wu_name: None,
                        error_mask: error_mask.0,
                        results: Vec::new(),
                        note: Some(format!("database lookup failed: {e}")),
                    };
                    let name = format!("wu_{wu_id}");
                    if std::fs::create_dir_all(&dir).is_ok() {
                        let _ = write_record(&dir, &name, &record);
                    }
                    Ok(format!(
                        "work unit {wu_id} failed ({error_mask}) but its name could not be read ({e}); kept in {}",
                        dir.display()
                    ))
                }
            }
        }
    }
}

/// A finished work unit of no running project-host master: if it belongs
/// to a submitted batch that is not retired, its outputs are held for the
/// remote submitter's `get_output.php` ([`crate::reaper`]), else it is
/// ignored. Held outputs of retired batches are released on the way. A
/// database failure is an error (exit 1): assimilating the work unit
/// without holding its outputs would let `file_deleter` remove them before
/// the submitter has them.
fn hold_for_submitter(
    project: &Path,
    wu_id: u64,
    wu: &str,
    mysql: &Path,
) -> Result<String, String> {
    let db = ProjectConfig::load(project)
        .map_err(|e| e.to_string())
        .and_then(|config| Db::new(&config, mysql).map_err(|e| e.to_string()))
        .map_err(|e| format!("work unit {wu} ({wu_id}): no database access: {e}"))?;
    if let Err(e) = crate::reaper::release_outputs(&db) {
        eprintln!("pymw boinc-assimilate: cannot release held outputs of retired batches: {e}");
    }
    match crate::reaper::hold_outputs(&db, wu_id) {
        Ok(true) => Ok(format!(
            "work unit {wu} ({wu_id}) belongs to a submitted batch: its outputs are kept until the batch is retired"
        )),
        Ok(false) => Ok(format!(
            "work unit {wu} ({wu_id}) belongs to no running pymw master and no submitted batch; ignored"
        )),
        Err(e) => Err(format!(
            "work unit {wu} ({wu_id}): cannot hold its outputs for a remote submitter: {e}"
        )),
    }
}

/// The suffix of the stderr written next to an output that carries the
/// task's own failure (`<wu name>.stderr`).
pub const STDERR_SUFFIX: &str = ".stderr";

/// Whether an output file is a pymw output carrying a failure.
fn carries_failure(path: &Path) -> bool {
    pymw_core::wire::read_envelope_file(path)
        .ok()
        .and_then(|bytes| {
            pymw_core::wire::decode_output(&bytes)
                .ok()
                .map(|body| matches!(body.outcome, pymw_core::wire::Outcome::Failed(_)))
        })
        .unwrap_or(false)
}

/// The app's stderr of the work unit's first successful result (the
/// canonical one agrees with it), else of the first with any.
fn canonical_stderr(results: &[spool::ResultRecord]) -> String {
    let text = |r: &spool::ResultRecord| {
        crate::remote::parse_stderr_out(&r.stderr_out)
            .stderr_txt
            .unwrap_or_else(|| r.stderr_out.clone())
    };
    results
        .iter()
        .find(|r| r.outcome == 1 && !r.stderr_out.is_empty())
        .or_else(|| results.iter().find(|r| !r.stderr_out.is_empty()))
        .map(text)
        .unwrap_or_default()
}

/// A write into a run directory that failed because the master removed the
/// directory meanwhile (it ended) is not an error: there is no one to tell.
fn gone_is_ok(run_dir: &Path, result: Result<(), String>) -> Result<(), String> {
    match result {
        Err(_) if !run_dir.is_dir() => Ok(()),
        other => other,
    }
}

/// The existing run directory of a pymw work unit.
fn run_dir(spool: &Path, wu: &str) -> Option<PathBuf> {
    let (run, _) = spool::parse_wu_name(wu)?;
    let dir = spool.join(run);
    dir.is_dir().then_some(dir)
}

fn write_record(dir: &Path, wu: &str, record: &FailureRecord) -> Result<(), String> {
    let json = serde_json::to_vec_pretty(record).map_err(|e| e.to_string())?;
    write_atomically(&dir.join(format!("{wu}{}", spool::ERR_SUFFIX)), |out| {
        out.write_all(&json)
    })
}

fn write_atomically(
    target: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<(), String> {
    let mut partial = target.as_os_str().to_owned();
    partial.push(spool::PARTIAL_SUFFIX);
    let partial = PathBuf::from(partial);
    let result = std::fs::File::create(&partial).and_then(|mut f| {
        write(&mut f)?;
        f.sync_all()
    });
    let result = result.and_then(|()| std::fs::rename(&partial, target));
    result.map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        format!("cannot write {}: {e}", target.display())
    })
}
