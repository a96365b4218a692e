//! The contract between the master and an engine (local processes,
//! HTCondor, BOINC).
//!
//! The master owns what is common to every engine: task identity, ordering,
//! retries with limits, timeouts, progress, statistics and cancellation. A
//! backend owns only its engine: it takes batches of prepared attempts and
//! reports what happens to them as [`Event`]s.

use crate::registry::TaskEntry;
use crate::wire::{Failure, WorkerStats};
use std::sync::Arc;

/// Identifies one attempt of one task within a master. The master never
/// reuses a key, so an event about an old attempt cannot be mistaken for the
/// current one.
pub type AttemptKey = u64;

/// Resources a task asks of the engine. Engines ignore what they cannot honour
/// (the local backend runs one task per worker process).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Resources {
    /// CPU cores (HTCondor `request_cpus`).
    pub cpus: Option<u32>,
    /// Memory in MiB (HTCondor `request_memory`, BOINC `rsc_memory_bound`).
    pub memory_mib: Option<u64>,
    /// Disk in MiB (HTCondor `request_disk`, BOINC `rsc_disk_bound`).
    pub disk_mib: Option<u64>,
    /// Engine-specific settings passed through unchanged, such as HTCondor
    /// submit commands (`+AccountingGroup`, `requirements`).
    pub extra: Vec<(String, String)>,
}

/// One attempt of a task, ready for an engine.
#[derive(Debug, Clone)]
pub struct Dispatch {
    /// The attempt's key; every event about it carries it.
    pub key: AttemptKey,
    /// The task to run.
    pub task: &'static TaskEntry,
    /// The task's arguments, postcard-encoded (not an envelope: backends
    /// that need files wrap it with [`crate::wire::encode_input`]).
    pub input: Arc<[u8]>,
    /// 0 for the first attempt, then 1, 2, ... after each charged loss.
    pub attempt: u32,
    /// What the task asks of the engine; `None` for the engine's defaults.
    pub resources: Option<Arc<Resources>>,
    /// The engine's id of this attempt's job, as an earlier master of the
    /// same run reported it in [`Event::Queued`]: a restarted master hands
    /// the attempt back so that the backend follows that job (it may be
    /// running, or even finished) instead of submitting it again. A backend
    /// that cannot follow it (the engine no longer knows the job, or the
    /// backend cannot re-attach at all, like the local one) runs the attempt
    /// as a new one, after making sure the old job will not run too.
    pub reattach: Option<String>,
}

/// What happened to an attempt.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// The engine accepted the attempt under this id (an HTCondor job, a
    /// BOINC work unit). Recorded in the run store at once, so that a
    /// restarted master can follow the job ([`Dispatch::reattach`]); the
    /// string is the backend's own and must let it find the job again.
    Queued {
        /// Which attempt.
        key: AttemptKey,
        /// The engine's id for it.
        job_id: String,
    },
    /// The attempt started running.
    Started {
        /// Which attempt.
        key: AttemptKey,
    },
    /// The attempt ended with an output: a value or a task failure.
    Finished {
        /// Which attempt.
        key: AttemptKey,
        /// The value bytes, or why there is none.
        outcome: Result<Vec<u8>, Failure>,
        /// What it cost.
        stats: WorkerStats,
        /// The tail of the worker's stderr, for failures.
        stderr_tail: String,
    },
    /// The attempt was lost without an output (worker crashed or was killed,
    /// job held past its policy, output missing or corrupt). The master counts
    /// it against the task's retry limit.
    Lost {
        /// Which attempt.
        key: AttemptKey,
        /// Why: exit code or signal, hold reason, ...
        cause: String,
        /// The tail of the worker's stderr.
        stderr_tail: String,
    },
    /// The attempt ended for a reason that running it again would not
    /// change: the engine refused the job as it was asked (a BOINC
    /// `create_work` rejecting an option), or the engine ran it and gave up
    /// on it for good (BOINC replicas that never agreed). The task fails at
    /// once with [`crate::TaskError::Backend`] carrying `message`; it is not
    /// retried, unlike [`Event::Lost`].
    Failed {
        /// Which attempt.
        key: AttemptKey,
        /// The engine's whole reason, and what to do about it.
        message: String,
    },
    /// The attempt went back to the engine's queue (evicted, requeued); not
    /// counted against the retry limit.
    Requeued {
        /// Which attempt.
        key: AttemptKey,
        /// Why.
        reason: String,
    },
    /// The engine put the attempt on hold; the backend's policy will end it
    /// with a later event.
    Held {
        /// Which attempt.
        key: AttemptKey,
        /// The engine's reason.
        reason: String,
    },
}

/// Where a backend sends its events, in batches.
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: tokio::sync::mpsc::UnboundedSender<Vec<Event>>,
}

impl EventSink {
    /// A sink and the receiver the master reads.
    pub fn channel() -> (EventSink, tokio::sync::mpsc::UnboundedReceiver<Vec<Event>>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (EventSink { tx }, rx)
    }

    /// Sends a batch of events. Returns false when the master is gone.
    pub fn send(&self, events: Vec<Event>) -> bool {
        events.is_empty() || self.tx.send(events).is_ok()
    }
}

/// Why a backend could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[error("{backend} backend: {message}")]
pub struct BackendError {
    /// Which backend.
    pub backend: &'static str,
    /// What went wrong, and what to do about it.
    pub message: String,
}

/// An engine that runs attempts. Methods must not block for long: a backend
/// hands slow work (spawning processes, running `condor_submit`) to threads of
/// its own.
pub trait Backend: Send + 'static {
    /// A short name for messages: "local", "condor", "boinc".
    fn name(&self) -> &'static str;

    /// Starts the engine; events go to `events` from now on.
    fn start(&mut self, events: EventSink) -> Result<(), BackendError>;

    /// Takes a batch of attempts (one engine call per batch where the engine
    /// allows it: one HTCondor cluster, one BOINC batch).
    fn submit(&mut self, batch: Vec<Dispatch>) -> Result<(), BackendError>;

    /// Stops these attempts if they are queued or running. No further event
    /// about them is needed.
    fn cancel(&mut self, keys: &[AttemptKey]);

    /// The master keeps a run store under this name, so a later master may
    /// resume the run ([`Dispatch::reattach`]). Called before
    /// [`Backend::start`]. A backend whose jobs outlive the master keeps
    /// them when this master dies instead of removing them, so that the
    /// next master finds them; the default does nothing.
    fn resumable(&mut self, run: &str) {
        let _ = run;
    }

    /// How many attempts in flight keep this engine busy; the default of
    /// `map`'s window is derived from it.
    fn capacity_hint(&self) -> usize {
        1024
    }

    /// Stops the engine and everything it started. Called once, when the
    /// master shuts down or is dropped.
    fn shutdown(&mut self);
}
