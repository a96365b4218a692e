//! Job ads from `condor_q -json` and `condor_history -json`.
//!
//! Both print a JSON array of ClassAds as `[`, the objects separated by lines
//! holding only `,`, then `]`. The forms a parser must accept, all recorded on
//! HTCondor 23.9.6:
//!
//! - **no output at all** (exit 0) when `condor_q` matches no job, and `[`
//!   `]` on two lines when `condor_history` matches none;
//! - attributes that are undefined are left out (and a few are `null`);
//! - ClassAd expressions come back as strings `"\/Expr(<expression>)\/"`, so
//!   `MemoryUsage` or `Requirements` are not numbers (see [`expression`]);
//! - nested ads and lists are JSON objects and arrays.
//!
//! ClassAd attribute names are case-insensitive; lookups here are too.

use serde_json::{Map, Value};

use crate::TASK_ID_ATTRIBUTE;
use crate::eventlog::{JobExit, value_i64};

/// `JobStatus` of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// 1: waiting to be matched and run.
    Idle,
    /// 2: running.
    Running,
    /// 3: removed (`condor_rm`, `periodic_remove`).
    Removed,
    /// 4: completed, whatever its exit code.
    Completed,
    /// 5: held, see the hold reason.
    Held,
    /// 6: the job exited and its output is being transferred.
    TransferringOutput,
    /// 7: suspended.
    Suspended,
    /// A value HTCondor did not define when this was written.
    Unknown(i64),
}

impl JobStatus {
    /// The status for a `JobStatus` number.
    pub fn from_code(code: i64) -> Self {
        match code {
            1 => Self::Idle,
            2 => Self::Running,
            3 => Self::Removed,
            4 => Self::Completed,
            5 => Self::Held,
            6 => Self::TransferringOutput,
            7 => Self::Suspended,
            other => Self::Unknown(other),
        }
    }

    /// The `JobStatus` number.
    pub fn code(self) -> i64 {
        match self {
            Self::Idle => 1,
            Self::Running => 2,
            Self::Removed => 3,
            Self::Completed => 4,
            Self::Held => 5,
            Self::TransferringOutput => 6,
            Self::Suspended => 7,
            Self::Unknown(code) => code,
        }
    }

    /// Whether the job has left the queue for good (removed or completed).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Removed | Self::Completed)
    }
}

/// One job ad, with the attributes pymw uses decoded and all of them kept.
///
/// A typed field is `None` when the attribute is absent, `null`, an
/// unevaluated expression, or of an unexpected type.
#[derive(Debug, Clone, PartialEq)]
pub struct JobAd {
    /// `ClusterId`.
    pub cluster: u64,
    /// `ProcId`.
    pub proc: u64,
    /// `JobStatus`.
    pub status: Option<JobStatus>,
    /// The pymw task id ([`TASK_ID_ATTRIBUTE`]), on jobs pymw submitted.
    pub task_id: Option<String>,
    /// `JobBatchName`.
    pub batch_name: Option<String>,
    /// `HoldReason`: defined only while the job is held.
    pub hold_reason: Option<String>,
    /// `HoldReasonCode`: defined only while the job is held.
    pub hold_reason_code: Option<i64>,
    /// `HoldReasonSubCode`: defined only while the job is held.
    pub hold_reason_subcode: Option<i64>,
    /// `LastHoldReason`: what history keeps after a release or removal.
    pub last_hold_reason: Option<String>,
    /// `LastHoldReasonCode`.
    pub last_hold_reason_code: Option<i64>,
    /// `LastHoldReasonSubCode`.
    pub last_hold_reason_subcode: Option<i64>,
    /// `RemoveReason` of a removed job.
    pub remove_reason: Option<String>,
    /// `ExitCode`, absent when the job was killed by a signal.
    pub exit_code: Option<i64>,
    /// `ExitBySignal`.
    pub exit_by_signal: Option<bool>,
    /// `ExitSignal`. It can be stale (15 after a vacate, even when the job
    /// later completed normally): use [`JobAd::exit`], which checks
    /// `ExitBySignal` first.
    pub exit_signal: Option<i64>,
    /// Every attribute as HTCondor printed it.
    pub attributes: Map<String, Value>,
}

impl JobAd {
    /// Decode one ad. `ClusterId` and `ProcId` are required.
    pub fn from_attributes(attributes: Map<String, Value>) -> Result<Self, QueryError> {
        let id = |name: &'static str| {
            let value =
                lookup(&attributes, name).ok_or(QueryError::MissingAttribute { index: 0, name })?;
            value_i64(value)
                .and_then(|v| u64::try_from(v).ok())
                .ok_or_else(|| QueryError::InvalidAttribute {
                    index: 0,
                    name,
                    value: value.to_string(),
                })
        };
        let cluster = id("ClusterId")?;
        let proc = id("ProcId")?;
        let int = |name| lookup(&attributes, name).and_then(value_i64);
        let string = |name| {
            lookup(&attributes, name)
                .and_then(Value::as_str)
                .filter(|s| expression_text(s).is_none())
                .map(str::to_owned)
        };
        Ok(Self {
            cluster,
            proc,
            status: int("JobStatus").map(JobStatus::from_code),
            task_id: string(TASK_ID_ATTRIBUTE),
            batch_name: string("JobBatchName"),
            hold_reason: string("HoldReason"),
            hold_reason_code: int("HoldReasonCode"),
            hold_reason_subcode: int("HoldReasonSubCode"),
            last_hold_reason: string("LastHoldReason"),
            last_hold_reason_code: int("LastHoldReasonCode"),
            last_hold_reason_subcode: int("LastHoldReasonSubCode"),
            remove_reason: string("RemoveReason"),
            exit_code: int("ExitCode"),
            exit_by_signal: lookup(&attributes, "ExitBySignal").and_then(Value::as_bool),
            exit_signal: int("ExitSignal"),
            attributes,
        })
    }

    /// An attribute by name, ignoring case as ClassAds do.
    pub fn attribute(&self, name: &str) -> Option<&Value> {
        lookup(&self.attributes, name)
    }

    /// How the job's last run ended, from `ExitBySignal` first, then
    /// `ExitSignal` or `ExitCode`. `None` if the ad does not say.
    pub fn exit(&self) -> Option<JobExit> {
        match self.exit_by_signal? {
            true => self.exit_signal.map(|signal| JobExit::Signal { signal }),
            false => self
                .exit_code
                .map(|exit_code| JobExit::Normal { exit_code }),
        }
    }
}

/// What can go wrong parsing `-json` output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The output is not JSON.
    #[error("HTCondor's -json output is not valid JSON (line {line}, column {column}): {message}")]
    InvalidJson {
        /// What the JSON parser said.
        message: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// The output is JSON but not an array of objects.
    #[error("HTCondor's -json output is not an array of ClassAds: {found}")]
    NotAnArrayOfAds {
        /// What was found instead.
        found: String,
    },
    /// A job ad lacks an attribute every job has.
    #[error("job ad #{index} has no {name} attribute")]
    MissingAttribute {
        /// Position of the ad in the output, from 0.
        index: usize,
        /// The attribute.
        name: &'static str,
    },
    /// A job ad attribute has a value of the wrong kind.
    #[error("job ad #{index} has an invalid {name}: {value}")]
    InvalidAttribute {
        /// Position of the ad in the output, from 0.
        index: usize,
        /// The attribute.
        name: &'static str,
        /// The value, as JSON.
        value: String,
    },
}

impl QueryError {
    fn at(self, index: usize) -> Self {
        match self {
            Self::MissingAttribute { name, .. } => Self::MissingAttribute { index, name },
            Self::InvalidAttribute { name, value, .. } => {
                Self::InvalidAttribute { index, name, value }
            }
            other => other,
        }
    }
}

/// Parse the stdout of `condor_q -json` or `condor_history -json` into job
/// ads, in output order. Empty output means no job matched.
pub fn parse_job_ads(output: &[u8]) -> Result<Vec<JobAd>, QueryError> {
    parse_ads(output)?
        .into_iter()
        .enumerate()
        .map(|(index, ad)| JobAd::from_attributes(ad).map_err(|e| e.at(index)))
        .collect()
}

/// Parse any `-json` ClassAd listing (`condor_status -json` too) into raw
/// attribute maps. Empty output means no ad.
pub fn parse_ads(output: &[u8]) -> Result<Vec<Map<String, Value>>, QueryError> {
    if output.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_slice(output).map_err(|e| QueryError::InvalidJson {
        message: e.to_string(),
        line: e.line(),
        column: e.column(),
    })?;
    let Value::Array(items) = value else {
        return Err(QueryError::NotAnArrayOfAds {
            found: kind_of(&value).to_owned(),
        });
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::Object(ad) => Ok(ad),
            other => Err(QueryError::NotAnArrayOfAds {
                found: format!("item #{index} is {}", kind_of(&other)),
            }),
        })
        .collect()
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The ClassAd expression an attribute holds, if it is one: HTCondor prints
/// `"\/Expr(ResidentSetSize + 1023)\/"`, which JSON decodes to
/// `/Expr(ResidentSetSize + 1023)/`, and this returns
/// `ResidentSetSize + 1023`.
pub fn expression(value: &Value) -> Option<&str> {
    expression_text(value.as_str()?)
}

fn expression_text(s: &str) -> Option<&str> {
    s.strip_prefix("/Expr(")?.strip_suffix(")/")
}

fn lookup<'a>(ad: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    let value = match ad.get(name) {
        Some(value) => value,
        None => ad.iter().find(|(key, _)| key.eq_ignore_ascii_case(name))?.1,
    };
    (!value.is_null()).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ad(json: &str) -> JobAd {
        let ads = parse_job_ads(json.as_bytes()).unwrap();
        assert_eq!(ads.len(), 1);
        ads.into_iter().next().unwrap()
    }

    #[test]
    fn empty_forms() {
        for empty in ["", "\n", "[]", "[]\n", "[\n]\n"] {
            assert!(
                parse_job_ads(empty.as_bytes()).unwrap().is_empty(),
                "{empty:?}"
            );
        }
    }

    #[test]
    fn case_insensitive_nulls_and_expressions() {
        let a = ad(r#"[{"clusterid": 3, "PROCID": 1.0, "HoldReason": null,
                        "JobBatchName": "\/Expr(strcat(\"a\", \"b\"))\/", "PymwTaskId": "t-1"}]"#);
        assert_eq!((a.cluster, a.proc), (3, 1));
        assert_eq!(a.hold_reason, None);
        assert_eq!(a.batch_name, None);
        assert_eq!(
            a.attribute("jobbatchname").and_then(expression),
            Some("strcat(\"a\", \"b\")")
        );
        assert_eq!(a.task_id.as_deref(), Some("t-1"));
        assert_eq!(a.status, None);
        assert_eq!(a.exit(), None);
    }

    #[test]
    fn errors_name_the_ad() {
        let err =
            parse_job_ads(br#"[{"ClusterId": 1, "ProcId": 0}, {"ClusterId": 2}]"#).unwrap_err();
        assert_eq!(
            err,
            QueryError::MissingAttribute {
                index: 1,
                name: "ProcId"
            }
        );
        let err = parse_job_ads(br#"[{"ClusterId": -1, "ProcId": 0}]"#).unwrap_err();
        assert_eq!(err.to_string(), "job ad #0 has an invalid ClusterId: -1");
        let err = parse_job_ads(br#"{"ClusterId": 1}"#).unwrap_err();
        assert!(matches!(err, QueryError::NotAnArrayOfAds { .. }), "{err}");
        let err = parse_job_ads(b"[1]").unwrap_err();
        assert_eq!(
            err.to_string(),
            "HTCondor's -json output is not an array of ClassAds: item #0 is a number"
        );
        let err = parse_job_ads(b"[\n{\n").unwrap_err();
        assert!(
            matches!(err, QueryError::InvalidJson { line: 3, .. }),
            "{err}"
        );
    }

    #[test]
    fn statuses_round_trip() {
        for code in 0..=8 {
            assert_eq!(JobStatus::from_code(code).code(), code);
        }
        assert!(JobStatus::Completed.is_final() && JobStatus::Removed.is_final());
        assert!(!JobStatus::Held.is_final());
    }
}
