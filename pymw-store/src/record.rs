//! What the master records, and what readers get back.

use crate::hash::{InputHash, TaskIdentity};
use pymw_core::wire::{Failure, WorkerStats};
use serde::Serialize;
use std::borrow::Cow;
use std::path::PathBuf;

/// Nanoseconds since the Unix epoch (UTC), the unit of every timestamp in the
/// store.
pub type Nanos = u64;

/// The current time in [`Nanos`].
pub fn now_ns() -> Nanos {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A task the master accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmittedTask {
    /// Its identity ([`TaskIdentity::from_parts`] of the three fields below).
    pub identity: TaskIdentity,
    /// The task's registered name (`module::function`). `Cow` so that the
    /// master's `&'static str` costs no allocation.
    pub task: Cow<'static, str>,
    /// The task's fingerprint (name and types).
    pub fingerprint: u64,
    /// Its position in its map or submission sequence.
    pub position: u64,
    /// The hash of its input bytes.
    pub input_hash: InputHash,
    /// When it was submitted.
    pub submitted_ns: Nanos,
}

/// An attempt handed to the engine ([`crate::RunStore::record_queued`]) or
/// seen running ([`crate::RunStore::record_started`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptEvent {
    /// The task.
    pub identity: TaskIdentity,
    /// 0 for the first attempt, then 1, 2, ...
    pub attempt: u32,
    /// The engine's id for it: an HTCondor `cluster.proc` such as "46.3", a
    /// BOINC work unit name. A recorded job id is committed promptly, so a
    /// restarted master can follow the job instead of submitting it again.
    pub job_id: Option<String>,
    /// The machine it runs on, when known.
    pub host: Option<String>,
    /// When it happened.
    pub at_ns: Nanos,
}

/// A value's bytes, without an allocation when they are few (30 bytes or
/// less: most values of tiny tasks): the master records a million values a
/// second, and each allocation would be freed by the writer thread, which
/// costs more than the rest of the record.
#[derive(Clone, PartialEq, Eq)]
pub struct ValueBytes(Repr);

#[derive(Clone, PartialEq, Eq)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE_BYTES] },
    Heap(Vec<u8>),
}

const INLINE_BYTES: usize = 30;

impl ValueBytes {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Heap(bytes) => bytes,
        }
    }

    /// The bytes as a `Vec`.
    pub fn into_vec(self) -> Vec<u8> {
        match self.0 {
            Repr::Inline { .. } => self.as_slice().to_vec(),
            Repr::Heap(bytes) => bytes,
        }
    }
}

impl std::ops::Deref for ValueBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl From<&[u8]> for ValueBytes {
    /// Copies the bytes (inline when they fit).
    fn from(slice: &[u8]) -> ValueBytes {
        if slice.len() <= INLINE_BYTES {
            let mut bytes = [0u8; INLINE_BYTES];
            bytes[..slice.len()].copy_from_slice(slice);
            ValueBytes(Repr::Inline {
                len: slice.len() as u8,
                bytes,
            })
        } else {
            ValueBytes(Repr::Heap(slice.to_vec()))
        }
    }
}

impl From<Vec<u8>> for ValueBytes {
    /// Takes the `Vec` (small ones are copied inline and the `Vec` freed
    /// here, in the caller's thread).
    fn from(vec: Vec<u8>) -> ValueBytes {
        if vec.len() <= INLINE_BYTES {
            ValueBytes::from(&vec[..])
        } else {
            ValueBytes(Repr::Heap(vec))
        }
    }
}

impl std::fmt::Debug for ValueBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ValueBytes({:?})", self.as_slice())
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The task returned this value (postcard bytes). `Value(bytes.into())`
    /// from a `Vec<u8>` or `&[u8]`; pass a slice to save an allocation.
    Value(ValueBytes),
    /// The value came from the result cache; nothing ran.
    Cached(ValueBytes),
    /// The task ran and failed (returned `Err`, panicked, did not decode).
    /// Final: task failures are deterministic.
    Failed(Failure),
    /// The attempt was lost (worker crashed or killed, job held or removed).
    Lost {
        /// Exit code, signal, hold reason, ...
        cause: String,
        /// Whether the master runs another attempt; if not, the task failed.
        retried: bool,
    },
    /// The task ran longer than its timeout.
    TimedOut {
        /// The timeout, in nanoseconds.
        after_ns: u64,
    },
    /// The task was cancelled.
    Cancelled,
    /// The backend refused the task.
    Backend {
        /// The backend's message.
        message: String,
    },
}

/// The end of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedTask {
    /// The task.
    pub identity: TaskIdentity,
    /// Which attempt ended.
    pub attempt: u32,
    /// How.
    pub outcome: AttemptOutcome,
    /// What it cost on the worker (default when unknown).
    pub stats: WorkerStats,
    /// The tail of the worker's stderr (failures; empty otherwise).
    pub stderr_tail: String,
    /// When it started, if [`crate::RunStore::record_started`] was not called
    /// for it; the store otherwise uses that record, or `finished_ns` minus
    /// the wall time.
    pub started_ns: Option<Nanos>,
    /// When it ended.
    pub finished_ns: Nanos,
}

/// Everything a master records in one turn, sent to the store as one
/// message ([`crate::RunStore::record`]). The store handles the parts in
/// this order: submitted, queued, started, finished, completed.
///
/// Get one from [`crate::RunStore::batch`]: it comes with the buffers of
/// batches the store has finished with, so recording allocates nothing in
/// the steady state.
#[derive(Debug, Default)]
pub struct Batch {
    /// Tasks the master accepted.
    pub submitted: Vec<SubmittedTask>,
    /// Attempts handed to the engine.
    pub queued: Vec<AttemptEvent>,
    /// Attempts that started.
    pub started: Vec<AttemptEvent>,
    /// Attempts that ended.
    pub finished: Vec<FinishedTask>,
    /// Tasks whose submission is recorded with their end: a master may hold
    /// a task's submission back for a moment, and a tiny task that ends
    /// meanwhile then costs the store one record instead of two (and no
    /// bookkeeping as an open task).
    pub completed: Vec<(SubmittedTask, FinishedTask)>,
}

impl Batch {
    /// Whether there is nothing in it.
    pub fn is_empty(&self) -> bool {
        self.submitted.is_empty()
            && self.queued.is_empty()
            && self.started.is_empty()
            && self.finished.is_empty()
            && self.completed.is_empty()
    }

    /// Records in it.
    pub fn len(&self) -> usize {
        self.submitted.len()
            + self.queued.len()
            + self.started.len()
            + self.finished.len()
            + self.completed.len()
    }
}

/// A task's state in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Submitted, no attempt running.
    Queued,
    /// An attempt is running.
    Running,
    /// Finished with a value.
    Done,
    /// Finished without a value.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl TaskState {
    /// The name stored in the `tasks.state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Done => "done",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }

    /// The inverse of [`TaskState::as_str`].
    pub fn parse(s: &str) -> Option<TaskState> {
        Some(match s {
            "queued" => TaskState::Queued,
            "running" => TaskState::Running,
            "done" => TaskState::Done,
            "failed" => TaskState::Failed,
            "cancelled" => TaskState::Cancelled,
            _ => return None,
        })
    }

    /// Done, failed or cancelled.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Done | TaskState::Failed | TaskState::Cancelled
        )
    }
}

/// An attempt's state in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptState {
    /// Handed to the engine, not yet running.
    Queued,
    /// Running.
    Running,
    /// Returned a value.
    Done,
    /// Its value came from the result cache.
    Cached,
    /// The task failed.
    Failed,
    /// Lost (worker died, job held or removed).
    Lost,
    /// Stopped at its timeout.
    TimedOut,
    /// Cancelled.
    Cancelled,
}

impl AttemptState {
    /// The name stored in the `attempts.state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptState::Queued => "queued",
            AttemptState::Running => "running",
            AttemptState::Done => "done",
            AttemptState::Cached => "cached",
            AttemptState::Failed => "failed",
            AttemptState::Lost => "lost",
            AttemptState::TimedOut => "timed_out",
            AttemptState::Cancelled => "cancelled",
        }
    }

    /// The inverse of [`AttemptState::as_str`].
    pub fn parse(s: &str) -> Option<AttemptState> {
        Some(match s {
            "queued" => AttemptState::Queued,
            "running" => AttemptState::Running,
            "done" => AttemptState::Done,
            "cached" => AttemptState::Cached,
            "failed" => AttemptState::Failed,
            "lost" => AttemptState::Lost,
            "timed_out" => AttemptState::TimedOut,
            "cancelled" => AttemptState::Cancelled,
            _ => return None,
        })
    }

    /// Whether the attempt is over.
    pub fn is_over(self) -> bool {
        !matches!(self, AttemptState::Queued | AttemptState::Running)
    }
}

/// What kind of failure ended an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The task returned `Err`.
    TaskError,
    /// The task panicked.
    Panic,
    /// Input or output did not decode.
    Decode,
    /// Worker and master were built from different code.
    VersionSkew,
    /// The worker's binary has no such task.
    UnknownTask,
    /// The attempt was lost.
    Lost,
    /// The task hit its timeout.
    TimedOut,
    /// The backend refused it.
    Backend,
    /// Cancelled.
    Cancelled,
    /// A kind this build does not know (written by a newer pymw).
    Other,
}

impl FailureKind {
    /// The name stored in the `attempts.failure_kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::TaskError => "task_error",
            FailureKind::Panic => "panic",
            FailureKind::Decode => "decode",
            FailureKind::VersionSkew => "version_skew",
            FailureKind::UnknownTask => "unknown_task",
            FailureKind::Lost => "lost",
            FailureKind::TimedOut => "timed_out",
            FailureKind::Backend => "backend",
            FailureKind::Cancelled => "cancelled",
            FailureKind::Other => "other",
        }
    }

    /// The inverse of [`FailureKind::as_str`]; unknown names are `Other`.
    pub fn parse(s: &str) -> FailureKind {
        match s {
            "task_error" => FailureKind::TaskError,
            "panic" => FailureKind::Panic,
            "decode" => FailureKind::Decode,
            "version_skew" => FailureKind::VersionSkew,
            "unknown_task" => FailureKind::UnknownTask,
            "lost" => FailureKind::Lost,
            "timed_out" => FailureKind::TimedOut,
            "backend" => FailureKind::Backend,
            "cancelled" => FailureKind::Cancelled,
            _ => FailureKind::Other,
        }
    }

    /// A short human label ("task error", "panic", "worker lost", ...).
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::TaskError => "task error",
            FailureKind::Panic => "panic",
            FailureKind::Decode => "decode error",
            FailureKind::VersionSkew => "version skew",
            FailureKind::UnknownTask => "unknown task",
            FailureKind::Lost => "worker lost",
            FailureKind::TimedOut => "timed out",
            FailureKind::Backend => "backend refused",
            FailureKind::Cancelled => "cancelled",
            FailureKind::Other => "other",
        }
    }
}

/// Why an attempt produced no value, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredFailure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// The message (the error's text, panic message, loss cause, ...).
    pub message: String,
    /// `file:line:column` of a panic.
    pub location: Option<String>,
    /// The tail of the worker's stderr.
    pub stderr_tail: String,
}

impl StoredFailure {
    /// The wire [`Failure`] this was recorded from, for failures of the
    /// task itself; `None` for losses, timeouts, cancellations and backend
    /// refusals (which the master reports with its own error variants).
    pub fn to_failure(&self) -> Option<Failure> {
        let message = self.message.clone();
        Some(match self.kind {
            FailureKind::TaskError => Failure::TaskError { message },
            FailureKind::Panic => Failure::Panic {
                message,
                location: self.location.clone(),
            },
            FailureKind::Decode => Failure::Decode { message },
            FailureKind::VersionSkew => Failure::VersionSkew { message },
            FailureKind::UnknownTask => Failure::UnknownTask { name: message },
            _ => return None,
        })
    }

    /// One line: "panic at src/lib.rs:3:5: boom".
    pub fn summary(&self) -> String {
        match &self.location {
            Some(location) => format!("{} at {location}: {}", self.kind.label(), self.message),
            None => format!("{}: {}", self.kind.label(), self.message),
        }
    }
}

/// Splits an attempt outcome into its stored parts.
pub(crate) fn failure_of(outcome: &AttemptOutcome, stderr_tail: &str) -> Option<StoredFailure> {
    let (kind, message, location) = match outcome {
        AttemptOutcome::Value(_) | AttemptOutcome::Cached(_) => return None,
        AttemptOutcome::Failed(failure) => match failure {
            Failure::TaskError { message } => (FailureKind::TaskError, message.clone(), None),
            Failure::Panic { message, location } => {
                (FailureKind::Panic, message.clone(), location.clone())
            }
            Failure::Decode { message } => (FailureKind::Decode, message.clone(), None),
            Failure::VersionSkew { message } => (FailureKind::VersionSkew, message.clone(), None),
            Failure::UnknownTask { name } => (FailureKind::UnknownTask, name.clone(), None),
            other => (FailureKind::Other, other.to_string(), None),
        },
        AttemptOutcome::Lost { cause, .. } => (FailureKind::Lost, cause.clone(), None),
        AttemptOutcome::TimedOut { after_ns } => (
            FailureKind::TimedOut,
            format!(
                "stopped after its timeout of {}",
                crate::format::duration_ns(*after_ns)
            ),
            None,
        ),
        AttemptOutcome::Cancelled => (FailureKind::Cancelled, "cancelled".to_string(), None),
        AttemptOutcome::Backend { message } => (FailureKind::Backend, message.clone(), None),
    };
    Some(StoredFailure {
        kind,
        message,
        location,
        stderr_tail: stderr_tail.to_string(),
    })
}

/// A stored value: inline in the database, or a file under `outputs/` for
/// values of 64 KiB and more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredValue {
    /// The value's bytes.
    Inline(Vec<u8>),
    /// The file holding them.
    File(PathBuf),
}

impl StoredValue {
    /// The value's bytes (reads the file of a large value).
    pub fn bytes(&self) -> std::io::Result<Cow<'_, [u8]>> {
        match self {
            StoredValue::Inline(bytes) => Ok(Cow::Borrowed(bytes)),
            StoredValue::File(path) => std::fs::read(path).map(Cow::Owned),
        }
    }

    /// Takes the bytes (reads the file of a large value).
    pub fn into_bytes(self) -> std::io::Result<Vec<u8>> {
        match self {
            StoredValue::Inline(bytes) => Ok(bytes),
            StoredValue::File(path) => std::fs::read(path),
        }
    }
}

/// A finished task as a restarted master gets it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredOutcome {
    /// It returned a value.
    Done {
        /// The value.
        value: StoredValue,
        /// What its last attempt cost.
        stats: WorkerStats,
    },
    /// It failed (task error, panic, lost too often, timed out, refused).
    Failed {
        /// Why its last attempt failed.
        failure: StoredFailure,
        /// How many attempts were made.
        attempts: u32,
        /// The host of the last attempt.
        host: String,
    },
}

/// An attempt that was queued or running when the store was last written:
/// what a restarted master re-attaches to (or runs again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InFlight {
    /// The task.
    pub identity: TaskIdentity,
    /// Its position.
    pub position: u64,
    /// The task's name.
    pub task: String,
    /// The attempt.
    pub attempt: u32,
    /// Queued or running.
    pub state: AttemptState,
    /// The engine's id for it, if it was recorded.
    pub job_id: Option<String>,
    /// The host, if known.
    pub host: Option<String>,
}

/// One entry of the result cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The task's fingerprint.
    pub fingerprint: u64,
    /// The hash of its input.
    pub input_hash: InputHash,
    /// The task's name (for people inspecting the cache).
    pub task: Cow<'static, str>,
    /// The value's bytes.
    pub value: Vec<u8>,
}
