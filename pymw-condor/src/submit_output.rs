//! What `condor_submit` printed, turned into the jobs it queued or the error
//! HTCondor gave.
//!
//! Run `condor_submit -terse FILE`: on success it prints one line
//! `CLUSTER.FIRST - CLUSTER.LAST` (`46.0 - 46.0` for one job, `47.0 - 47.4`
//! for five) and exits 0. On failure it exits 1, queues nothing, and writes
//! `ERROR: ...` lines to stderr. The plain (non-terse) form,
//! `N job(s) submitted to cluster C.`, is understood too.

use std::ops::RangeInclusive;

/// The jobs one `condor_submit` call queued: one cluster, consecutive procs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubmittedJobs {
    /// The new cluster id.
    pub cluster: u64,
    /// The first proc id (0 for a new cluster).
    pub first_proc: u64,
    /// The last proc id.
    pub last_proc: u64,
}

impl SubmittedJobs {
    /// How many jobs were queued.
    pub fn job_count(&self) -> u64 {
        self.last_proc - self.first_proc + 1
    }

    /// The proc ids queued, in order.
    pub fn procs(&self) -> RangeInclusive<u64> {
        self.first_proc..=self.last_proc
    }
}

/// Why a `condor_submit` call did not queue jobs, or its output was not
/// understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitOutputError {
    /// `condor_submit` failed; `message` is what it wrote to stderr (its
    /// `ERROR: ...` lines), such as
    /// `ERROR: Executable file no-such-program does not exist`.
    #[error("condor_submit failed ({}): {message}", exit_description(*exit_code))]
    Rejected {
        /// The exit code, `None` if it was killed by a signal.
        exit_code: Option<i32>,
        /// HTCondor's message, blank lines removed.
        message: String,
    },
    /// `condor_submit` exited 0 but its output was not a job id range.
    #[error("condor_submit succeeded but its output is not understood: {output:?}")]
    UnexpectedOutput {
        /// The stdout that could not be parsed.
        output: String,
    },
}

fn exit_description(code: Option<i32>) -> String {
    match code {
        Some(code) => format!("exit code {code}"),
        None => "killed by a signal".to_owned(),
    }
}

/// Interpret one `condor_submit` run from its exit code (`None` when killed
/// by a signal), stdout and stderr.
///
/// Warnings on stderr of a successful run are ignored (logged at debug level).
pub fn parse_submit_output(
    exit_code: Option<i32>,
    stdout: &[u8],
    stderr: &[u8],
) -> Result<SubmittedJobs, SubmitOutputError> {
    let stderr = String::from_utf8_lossy(stderr);
    if exit_code != Some(0) {
        let mut message = clean_message(&stderr);
        if message.is_empty() {
            message = clean_message(&String::from_utf8_lossy(stdout));
        }
        if message.is_empty() {
            message = "no error message".to_owned();
        }
        return Err(SubmitOutputError::Rejected { exit_code, message });
    }
    if !stderr.trim().is_empty() {
        tracing::debug!(stderr = %stderr.trim(), "condor_submit succeeded with messages on stderr");
    }
    let stdout = String::from_utf8_lossy(stdout);
    parse_stdout(&stdout).ok_or_else(|| SubmitOutputError::UnexpectedOutput {
        output: stdout.into_owned(),
    })
}

fn clean_message(text: &str) -> String {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The terse line, or the plain form's `N job(s) submitted to cluster C.`.
fn parse_stdout(stdout: &str) -> Option<SubmittedJobs> {
    let lines: Vec<&str> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if let [line] = lines.as_slice()
        && let Some(jobs) = parse_terse_line(line)
    {
        return Some(jobs);
    }
    // Plain form: "Submitting job(s)....." then the summary line.
    let summaries: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains(" job(s) submitted to cluster "))
        .collect();
    let [summary] = summaries.as_slice() else {
        return None;
    };
    let (count, cluster) = summary
        .strip_suffix('.')?
        .split_once(" job(s) submitted to cluster ")?;
    let count: u64 = digits(count)?;
    Some(SubmittedJobs {
        cluster: digits(cluster)?,
        first_proc: 0,
        last_proc: count.checked_sub(1)?,
    })
}

/// `47.0 - 47.4`.
fn parse_terse_line(line: &str) -> Option<SubmittedJobs> {
    let (first, last) = line.split_once(" - ")?;
    let (cluster, first_proc) = job_id(first)?;
    let (last_cluster, last_proc) = job_id(last)?;
    (cluster == last_cluster && first_proc <= last_proc).then_some(SubmittedJobs {
        cluster,
        first_proc,
        last_proc,
    })
}

fn job_id(text: &str) -> Option<(u64, u64)> {
    let (cluster, proc) = text.trim().split_once('.')?;
    Some((digits(cluster)?, digits(proc)?))
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terse_lines() {
        assert_eq!(
            parse_submit_output(Some(0), b"47.0 - 47.4\n", b""),
            Ok(SubmittedJobs {
                cluster: 47,
                first_proc: 0,
                last_proc: 4
            })
        );
        for bad in [
            "47.0 - 48.4",
            "47.4 - 47.0",
            "47.0 -47.4",
            "47 - 47",
            "x.0 - x.0",
            "",
            "47.0 - 47.4\n48.0 - 48.0",
            "0 job(s) submitted to cluster 3.",
            "-1.0 - -1.0",
        ] {
            let err = parse_submit_output(Some(0), bad.as_bytes(), b"").unwrap_err();
            assert!(
                matches!(err, SubmitOutputError::UnexpectedOutput { .. }),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn counts_and_ranges() {
        let jobs = SubmittedJobs {
            cluster: 5,
            first_proc: 2,
            last_proc: 4,
        };
        assert_eq!(jobs.job_count(), 3);
        assert_eq!(jobs.procs().collect::<Vec<_>>(), [2, 3, 4]);
    }

    #[test]
    fn failures_keep_the_message() {
        let err = parse_submit_output(None, b"", b"").unwrap_err();
        assert_eq!(
            err.to_string(),
            "condor_submit failed (killed by a signal): no error message"
        );
        let err = parse_submit_output(Some(2), b"ERROR: from stdout\n", b"\n").unwrap_err();
        assert_eq!(
            err,
            SubmitOutputError::Rejected {
                exit_code: Some(2),
                message: "ERROR: from stdout".into()
            }
        );
    }
}
