//! The job ids the BOINC backend reports in `Event::Queued`, which a
//! restarted master hands back in `Dispatch::reattach` so that the backend
//! follows the work unit instead of creating it again.
//!
//! The run store keeps them as text; the two forms are:
//!
//! - `boinc-host <wu name> <run dir>` (project-host mode): the work unit's
//!   name, and the absolute path of the run directory where the assimilator
//!   role delivers its output (`<wu name>.out`) or failure record
//!   (`<wu name>.err`). That directory is `<project>/pymw_runs/<run>/`, with
//!   `<run>` the run id inside the work unit name ([`crate::spool`]); the
//!   path is the last field and may hold spaces.
//! - `boinc-remote <batch id> <job name>` (remote mode): the id of the batch
//!   that `submit_batch` returned, which `query_batch` reports the job in,
//!   and the job's name.
//!
//! Names are plain work unit names (ASCII letters, digits, `_`, `-`, `.`).
//! Anything else (another backend's id, a damaged record) does not parse,
//! and the attempt is run again as a new one.

use std::fmt;
use std::path::PathBuf;

const HOST: &str = "boinc-host";
const REMOTE: &str = "boinc-remote";

/// Where an earlier master left a BOINC job.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobId {
    /// A work unit created on the project host.
    Host {
        /// The work unit's name.
        wu: String,
        /// The run directory its output and failure record go to.
        run_dir: PathBuf,
    },
    /// A job submitted through remote job submission.
    Remote {
        /// The batch id `submit_batch` returned.
        batch: u64,
        /// The job's name.
        job: String,
    },
}

/// Whether `name` is a plain work unit name (the only names pymw creates,
/// and the only ones passed to the database or the server).
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 254
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl JobId {
    /// Reads an id written by [`JobId`]'s `Display`; `None` for anything
    /// else.
    pub fn parse(text: &str) -> Option<JobId> {
        let (kind, rest) = text.split_once(' ')?;
        match kind {
            HOST => {
                let (wu, dir) = rest.split_once(' ')?;
                let run_dir = PathBuf::from(dir);
                (is_plain_name(wu) && run_dir.is_absolute()).then(|| JobId::Host {
                    wu: wu.to_owned(),
                    run_dir,
                })
            }
            REMOTE => {
                let (batch, job) = rest.split_once(' ')?;
                if batch.is_empty() || !batch.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let batch = batch.parse().ok()?;
                is_plain_name(job).then(|| JobId::Remote {
                    batch,
                    job: job.to_owned(),
                })
            }
            _ => None,
        }
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobId::Host { wu, run_dir } => write!(f, "{HOST} {wu} {}", run_dir.display()),
            JobId::Remote { batch, job } => write!(f, "{REMOTE} {batch} {job}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let host = JobId::Host {
            wu: "pymw_nightlyr1a2b_1f".into(),
            run_dir: "/home/boincadm/projects/my project/pymw_runs/nightlyr1a2b".into(),
        };
        let text = host.to_string();
        assert_eq!(
            text,
            "boinc-host pymw_nightlyr1a2b_1f /home/boincadm/projects/my project/pymw_runs/nightlyr1a2b"
        );
        assert_eq!(JobId::parse(&text), Some(host));
        let remote = JobId::Remote {
            batch: 12,
            job: "pymw_r1_2".into(),
        };
        assert_eq!(remote.to_string(), "boinc-remote 12 pymw_r1_2");
        assert_eq!(JobId::parse("boinc-remote 12 pymw_r1_2"), Some(remote));
    }

    #[test]
    fn other_ids_do_not_parse() {
        for bad in [
            "",
            "12.0",
            "boinc-host pymw_r1_1",
            "boinc-host pymw_r1_1 relative/dir",
            "boinc-host pymw'r1 /p/pymw_runs/r1",
            "boinc-remote x pymw_r1_2",
            "boinc-remote +1 pymw_r1_2",
            "boinc-remote 1 pymw r1",
            "boinc-remote 1 ",
            "condor 12.0",
        ] {
            assert_eq!(JobId::parse(bad), None, "{bad:?}");
        }
    }
}
