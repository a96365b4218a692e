//! Names and files shared by the master (project-host mode) and the
//! assimilator role: work unit names, the run directories under the
//! project, and the failure record of a failed work unit.
//!
//! - A work unit of a master run is named `pymw_<run>_<key in hex>`; its
//!   input file is `<wu name>_in` (one file per job: `file_deleter` deletes a
//!   staged input after the first job using it is assimilated).
//! - BOINC names results `<wu name>_<replica>` and their outputs
//!   `<result name>_r<random>_<index>` (recorded in `slot-direct/`), so the
//!   assimilator finds the work unit from the canonical output's file name
//!   alone ([`wu_name_from_output_file`]).
//! - Each run has the directory `<project>/pymw_runs/<run>/`, created by the
//!   master. The assimilator moves a work unit's canonical output there as
//!   `<wu name>.out`, or writes its [`FailureRecord`] as `<wu name>.err`
//!   (each first under a `.partial` name, then renamed), and the master's
//!   follower turns those files into events. Every master life has its own
//!   run id and directory; a master of a resumable run leaves its directory
//!   in place while work units of it are outstanding, and the next master
//!   of the run watches it for the work units it follows
//!   ([`crate::project`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The directory under the project that holds the run directories.
pub const SPOOL_DIR: &str = "pymw_runs";
/// Prefix of every work unit name a pymw master creates.
pub const WU_PREFIX: &str = "pymw_";
/// Suffix of a finished work unit's canonical output in a run directory.
pub const OUT_SUFFIX: &str = ".out";
/// Suffix of a failed work unit's [`FailureRecord`] in a run directory.
pub const ERR_SUFFIX: &str = ".err";
/// Suffix of a file being written.
pub const PARTIAL_SUFFIX: &str = ".partial";
/// Where the assimilator puts what it cannot attribute to a run.
pub const UNMATCHED_DIR: &str = "_unmatched";

/// `<project>/pymw_runs`.
pub fn spool_dir(project_dir: &Path) -> PathBuf {
    project_dir.join(SPOOL_DIR)
}

/// Whether `run` can be a run id: 1 to 40 lowercase letters and digits.
pub fn is_run_id(run: &str) -> bool {
    !run.is_empty()
        && run.len() <= 40
        && run
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A new run id: the time and the process id, base 36.
pub fn new_run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let nanos = u64::from(now.subsec_micros());
    format!(
        "r{}{}{}",
        base36(now.as_secs()),
        base36(nanos),
        base36(u64::from(std::process::id()))
    )
}

/// Most characters of a run name kept at the start of a run id.
const RUN_NAME_CHARS: usize = 16;

/// A new run id for a master that keeps a run store under `run_name`: the
/// name's first letters and digits (lowercased, at most 16) before
/// [`new_run_id`], so that the work units of a run are recognisable on
/// the server. Every master life gets its own id all the same: attempt
/// keys start again in each life, and work unit names must stay unique.
pub fn new_run_id_for(run_name: Option<&str>) -> String {
    let prefix: String = run_name
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(RUN_NAME_CHARS)
        .collect();
    format!("{prefix}{}", new_run_id())
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// The work unit name of attempt `key` of run `run`.
pub fn wu_name(run: &str, key: u64) -> String {
    format!("{WU_PREFIX}{run}_{key:x}")
}

/// The input file name of a work unit.
pub fn input_name(wu_name: &str) -> String {
    format!("{wu_name}_in")
}

/// The run and key of a work unit name made by [`wu_name`].
pub fn parse_wu_name(name: &str) -> Option<(&str, u64)> {
    let rest = name.strip_prefix(WU_PREFIX)?;
    let (run, key) = rest.split_once('_')?;
    if !is_run_id(run) || key.is_empty() || key.len() > 16 || key.starts_with('+') {
        return None;
    }
    Some((run, u64::from_str_radix(key, 16).ok()?))
}

/// The work unit name behind an output file name
/// `<wu name>_<replica>_r<random>_<index>`.
pub fn wu_name_from_output_file(file_name: &str) -> Option<&str> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (rest, index) = file_name.rsplit_once('_')?;
    let (rest, random) = rest.rsplit_once('_')?;
    let (wu, replica) = rest.rsplit_once('_')?;
    let random_ok = random.strip_prefix('r').is_some_and(digits);
    (digits(index) && random_ok && digits(replica) && !wu.is_empty()).then_some(wu)
}

/// One result of a failed work unit, as read from the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultRecord {
    /// Result id.
    pub id: u64,
    /// Result name.
    pub name: String,
    /// `outcome` (1 success, 3 client error, 5 didn't need, 6 validate error).
    pub outcome: i64,
    /// `client_state` (3 compute error, 5 uploaded, 6 aborted).
    pub client_state: i64,
    /// `exit_status` (the app's exit code, a signal number, or a client code).
    pub exit_status: i64,
    /// `validate_state` (1 valid, 2 invalid, 3 no check, 4 inconclusive).
    pub validate_state: i64,
    /// `stderr_out` as stored.
    pub stderr_out: String,
}

impl ResultRecord {
    /// One line: the result's name and what became of it.
    pub fn describe(&self) -> String {
        let outcome = match self.outcome {
            0 => "not reported".to_owned(),
            1 if self.validate_state == 2 => "invalid (rejected by the validator)".to_owned(),
            1 if self.validate_state == 4 => "inconclusive (no replica agreed)".to_owned(),
            1 => "success".to_owned(),
            3 => match self.client_state {
                6 => format!("aborted (exit status {})", self.exit_status),
                _ => format!(
                    "error while computing (exit status {})",
                    describe_exit(self.exit_status)
                ),
            },
            4 => "no reply (deadline passed)".to_owned(),
            5 => "not needed".to_owned(),
            6 => "invalid (rejected by the validator)".to_owned(),
            7 => "timed out".to_owned(),
            n => format!("outcome {n}"),
        };
        // The client's own words (`process exited with code 3 (0x3, -253)`,
        // `process got signal 11`, `too many exit(0)s`) tell an exit code
        // from a signal, which `exit_status` alone does not.
        match crate::remote::parse_stderr_out(&self.stderr_out).message {
            Some(m) if !m.is_empty() => {
                let m = m.split_whitespace().collect::<Vec<_>>().join(" ");
                format!("{}: {outcome}: {}", self.name, crate::xml::excerpt(&m, 300))
            }
            _ => format!("{}: {outcome}", self.name),
        }
    }
}

fn describe_exit(status: i64) -> String {
    match status {
        -226 => "-226: too many exits without boinc_finish_called".to_owned(),
        -177 => "-177: time limit exceeded".to_owned(),
        202 => "202: aborted by the project".to_owned(),
        203 => "203: aborted by the user".to_owned(),
        s => s.to_string(),
    }
}

/// What the assimilator writes for a work unit without canonical result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// Work unit id.
    pub wu_id: u64,
    /// Work unit name (`None` when the database could not be read).
    pub wu_name: Option<String>,
    /// `error_mask`.
    pub error_mask: u32,
    /// The work unit's results, in id order.
    pub results: Vec<ResultRecord>,
    /// Why the results are missing, when they could not be read.
    pub note: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let run = new_run_id();
        assert!(is_run_id(&run), "{run}");
        let wu = wu_name(&run, 0x1f);
        assert_eq!(parse_wu_name(&wu), Some((run.as_str(), 0x1f)));
        assert_eq!(input_name(&wu), format!("{wu}_in"));
        assert_eq!(parse_wu_name("pymw_R1_1"), None);
        let named = new_run_id_for(Some("Nightly_Run-2025 of the big sweep"));
        assert!(is_run_id(&named), "{named}");
        assert!(named.starts_with("nightlyrun2025ofr"), "{named}");
        assert!(is_run_id(&new_run_id_for(Some("_-_"))));
        assert!(is_run_id(&new_run_id_for(None)));
        assert_eq!(parse_wu_name("pymw_r1_"), None);
        assert_eq!(parse_wu_name("other_r1_1"), None);
        assert_eq!(parse_wu_name("pymw_r1_+1"), None);
        // The recorded physical output name (slot-direct/).
        assert_eq!(
            wu_name_from_output_file("slot-direct_010304_0_r1909077172_0"),
            Some("slot-direct_010304")
        );
        assert_eq!(
            wu_name_from_output_file(&format!("{wu}_1_r42_0")),
            Some(wu.as_str())
        );
        assert_eq!(wu_name_from_output_file("a_0_x1_0"), None);
        assert_eq!(wu_name_from_output_file("_0_r1_0"), None);
    }
}
