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
    /// The task's submission, when it was not handed to
    /// [`Journal::submitted`] before: the master holds submissions back for
    /// a moment, and records a task that ends meanwhile in one piece.
    pub submission: Option<JournalTask>,
}

/// Submissions the master holds back for a moment (see
/// [`JournalFinished::submission`]), by task id. Task ids grow with
/// submission order, so the table is a queue indexed by id: holding,
/// taking and releasing the oldest cost no hashing.
#[derive(Debug, Default)]
pub(crate) struct HeldSubmissions {
    /// The task id of `slots[0]`.
    base: u64,
    /// Submissions not yet released or taken, with when they were held.
    slots: std::collections::VecDeque<Option<(JournalTask, std::time::Instant)>>,
}

/// How long a submission is held back at most.
const HOLD: std::time::Duration = std::time::Duration::from_millis(100);
/// How many task ids the table spans at most; a submission further out is
/// not held.
const MAX_HELD: u64 = 1 << 16;

impl HeldSubmissions {
    /// Holds the submission of task `id` back; returns it when it cannot be
    /// held (its id is out of the table's range): record it at once.
    pub(crate) fn hold(
        &mut self,
        id: u64,
        task: JournalTask,
        now: std::time::Instant,
    ) -> Option<JournalTask> {
        if self.slots.is_empty() {
            self.base = id;
        }
        let Some(index) = id.checked_sub(self.base).filter(|&i| i < MAX_HELD) else {
            return Some(task);
        };
        let index = index as usize;
        if index >= self.slots.len() {
            self.slots.resize_with(index + 1, || None);
        }
        self.slots[index] = Some((task, now));
        None
    }

    /// Takes the held submission of task `id`, if any.
    pub(crate) fn take(&mut self, id: u64) -> Option<JournalTask> {
        let index = usize::try_from(id.checked_sub(self.base)?).ok()?;
        self.slots.get_mut(index)?.take().map(|(task, _)| task)
    }

    /// Releases the submissions held since before `now - HOLD` (or that
    /// crowd the table) into `out`, oldest first.
    pub(crate) fn release_old(&mut self, now: std::time::Instant, out: &mut Vec<JournalTask>) {
        while let Some(front) = self.slots.front() {
            match front {
                Some((_, held))
                    if now.duration_since(*held) < HOLD
                        && (self.slots.len() as u64) < MAX_HELD / 2 =>
                {
                    break;
                }
                _ => {}
            }
            if let Some((task, _)) = self.slots.pop_front().flatten() {
                out.push(task);
            }
            self.base += 1;
        }
    }

    /// Releases every held submission into `out`.
    pub(crate) fn release_all(&mut self, out: &mut Vec<JournalTask>) {
        out.extend(self.slots.drain(..).flatten().map(|(task, _)| task));
    }
}

/// What an earlier life of the run finished: returned again without running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The task's value.
    Value(Vec<u8>),
    /// The task's (deterministic) failure, with where it ran and what it
    /// wrote to stderr, as the first life reported them.
    Failed {
        /// What failed.
        failure: Failure,
        /// The host it ran on (empty when unknown).
        host: String,
        /// The tail of the worker's stderr.
        stderr_tail: String,
    },
}

/// Finished results of a task from an earlier build, not reused because the
/// task changed (see [`Journal::stale_results`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleResults {
    /// The task's name.
    pub task: String,
    /// How many finished results (values and failures).
    pub results: u64,
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

/// What the master's driver records in one turn, in this order.
#[derive(Debug, Default)]
pub struct JournalTurn {
    /// Tasks accepted.
    pub submitted: Vec<JournalTask>,
    /// Attempts the engine accepted: (task, attempt, the engine's job id).
    /// Written promptly: a master killed a moment later must find them.
    pub queued: Vec<(Identity, u32, String)>,
    /// Attempts seen running: (task, attempt).
    pub started: Vec<(Identity, u32)>,
    /// Attempts ended.
    pub finished: Vec<JournalFinished>,
}

impl JournalTurn {
    /// Whether there is nothing to record.
    pub fn is_empty(&self) -> bool {
        self.submitted.is_empty()
            && self.queued.is_empty()
            && self.started.is_empty()
            && self.finished.is_empty()
    }
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

    /// Finished results that earlier lives of this run recorded for tasks of
    /// the names in `tasks` (this binary's names and fingerprints) under
    /// another fingerprint: the task changed (its types or its code), so they
    /// are not reused and the tasks run again. Called once, when the master
    /// starts, to say so. By default, none.
    fn stale_results(&self, tasks: &[(String, u64)]) -> Result<Vec<StaleResults>, String> {
        let _ = tasks;
        Ok(Vec::new())
    }

    /// The run's name (backends use it to keep what a restart can follow).
    fn run_name(&self) -> &str;

    /// Attempts that earlier lives of this run handed to an engine, under a
    /// job id, and did not see end; called once, when the master starts.
    fn in_flight(&self) -> Result<HashMap<Identity, InFlight>, String>;

    /// A value from the cross-run result cache for this task and input, if
    /// the cache is on and holds one.
    fn cached(&self, fingerprint: u64, input_hash: &[u8; 16]) -> Option<Vec<u8>>;

    /// Records a turn of the master: takes everything out of `turn` (the
    /// master keeps its buffers for the next turn).
    fn record(&self, turn: &mut JournalTurn);

    /// The first write that failed (disk full, read-only store), if any.
    fn error(&self) -> Option<String>;

    /// Writes what is pending and closes; the error of a write that failed.
    fn close(&self) -> Result<(), String>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn task(position: u64) -> JournalTask {
        JournalTask {
            identity: [position as u8; 16],
            task: "t",
            fingerprint: 1,
            position,
            input_hash: [0; 16],
        }
    }

    fn positions(tasks: &[JournalTask]) -> Vec<u64> {
        tasks.iter().map(|t| t.position).collect()
    }

    #[test]
    fn held_submissions_are_taken_or_released_oldest_first() {
        let mut held = HeldSubmissions::default();
        let t0 = Instant::now();
        for id in 10..15 {
            assert!(held.hold(id, task(id), t0).is_none());
        }
        // Out of order and below the table: not held.
        assert_eq!(held.hold(3, task(3), t0).map(|t| t.position), Some(3));
        assert_eq!(held.take(12).map(|t| t.position), Some(12));
        assert!(held.take(12).is_none(), "taken once");
        assert!(held.take(99).is_none());
        let mut out = Vec::new();
        held.release_old(t0 + Duration::from_millis(1), &mut out);
        assert!(out.is_empty(), "young submissions stay held");
        held.release_old(t0 + HOLD, &mut out);
        assert_eq!(positions(&out), [10, 11, 13, 14]);
        // Empty again: a new base.
        assert!(held.hold(1000, task(1000), t0).is_none());
        let mut out = Vec::new();
        held.release_all(&mut out);
        assert_eq!(positions(&out), [1000]);
    }

    #[test]
    fn a_crowded_table_releases_its_oldest_and_refuses_far_ids() {
        let mut held = HeldSubmissions::default();
        let now = Instant::now();
        assert!(held.hold(0, task(0), now).is_none());
        assert_eq!(
            held.hold(MAX_HELD, task(7), now).map(|t| t.position),
            Some(7),
            "beyond the table's span: recorded at once"
        );
        let last = MAX_HELD / 2;
        assert!(held.hold(last, task(8), now).is_none());
        let mut out = Vec::new();
        held.release_old(now, &mut out);
        // The oldest goes to make room, however young.
        assert_eq!(positions(&out), [0]);
        assert_eq!(held.take(last).map(|t| t.position), Some(8));
    }
}
