//! The master's journal: where a run's tasks, attempts and outcomes are
//! recorded so that a restarted master finds what was finished (`pymw-store`
//! implements it over SQLite; the master itself knows only this trait).

use crate::wire::{Failure, WorkerStats};
use std::collections::HashMap;
use std::time::Duration;

/// A task's identity within a run: a hash of its fingerprint, its input and
/// its position in the run's submission order. The same program submitting
/// the same inputs in the same order gets the same identities after a
/// restart; a changed input is a new task, never a stale result.
pub type Identity = [u8; 16];

/// A task the master accepted.
#[derive(Debug, Clone)]
pub struct JournalTask {
    /// Its identity.
    pub identity: Identity,
    /// The task's registered name.
    pub task: &'static str,
    /// The task's fingerprint.
    pub fingerprint: u64,
    /// Its position in the run's submission order.
    pub position: u64,
    /// The hash of its input, as [`Journal::identify`] computed it.
    pub input_hash: [u8; 16],
}

/// A task's identity and the hash of its input (from which the identity is
/// made; the result cache is keyed by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identified {
    /// The task's identity in the run.
    pub identity: Identity,
    /// The hash of its input bytes.
    pub input_hash: [u8; 16],
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JournalOutcome {
    /// The task returned this value (postcard bytes).
    Value(Vec<u8>),
    /// The value came from the cross-run result cache; nothing ran.
    Cached(Vec<u8>),
    /// The task ran and failed; final.
    Failed(Failure),
    /// The attempt was lost.
    Lost {
        /// Exit code, signal, hold reason.
        cause: String,
        /// Whether another attempt follows.
        retried: bool,
    },
    /// The task ran longer than its timeout.
    TimedOut {
        /// The timeout.
        after: Duration,
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
#[derive(Debug, Clone)]
pub struct JournalFinished {
    /// The task.
    pub identity: Identity,
    /// Which attempt (0 for the first).
    pub attempt: u32,
    /// How it ended.
    pub outcome: JournalOutcome,
    /// What it cost on the worker.
    pub stats: WorkerStats,
    /// The tail of the worker's stderr, for failures.
    pub stderr_tail: String,
}

/// What an earlier life of the run finished: returned again without running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The task's value.
    Value(Vec<u8>),
    /// The task's (deterministic) failure.
    Failed(Failure),
}

/// An attempt an earlier life of the run handed to an engine and did not
/// see end: the restarted master gives it back to the backend to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// Which attempt (0 for the first).
    pub attempt: u32,
    /// The engine's id for its job, as the backend reported it.
    pub job_id: String,
}

/// Where the master records a run. Recording methods are called from the
/// master's driver in batches and must not block (hand the writing to a
/// thread); a write that fails is reported by [`Journal::error`].
pub trait Journal: Send + Sync + 'static {
    /// The identity of a task (see [`Identity`]), with its input's hash:
    /// computed once per task, on the master's hot path.
    fn identify(&self, fingerprint: u64, input: &[u8], position: u64) -> Identified;

    /// Outcomes finished in earlier lives of this run; called once, when the
    /// master starts.
    fn recorded(&self) -> Result<HashMap<Identity, Recorded>, String>;

    /// The run's name (backends use it to keep what a restart can follow).
    fn run_name(&self) -> &str;

    /// Attempts that earlier lives of this run handed to an engine, under a
    /// job id, and did not see end; called once, when the master starts.
    fn in_flight(&self) -> Result<HashMap<Identity, InFlight>, String>;

    /// A value from the cross-run result cache for this task and input, if
    /// the cache is on and holds one.
    fn cached(&self, fingerprint: u64, input_hash: &[u8; 16]) -> Option<Vec<u8>>;

    /// Tasks accepted.
    fn submitted(&self, tasks: Vec<JournalTask>);

    /// Attempts the engine accepted: (task, attempt, the engine's job id).
    /// Written promptly: a master killed a moment later must find them.
    fn queued(&self, attempts: Vec<(Identity, u32, String)>);

    /// Attempts seen running: (task, attempt).
    fn started(&self, attempts: Vec<(Identity, u32)>);

    /// Attempts ended.
    fn finished(&self, attempts: Vec<JournalFinished>);

    /// The first write that failed (disk full, read-only store), if any.
    fn error(&self) -> Option<String>;

    /// Writes what is pending and closes; the error of a write that failed.
    fn close(&self) -> Result<(), String>;
}
