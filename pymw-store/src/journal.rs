//! The run store as the master's [`Journal`]: what the master records goes
//! into the store in one batch per driver turn; what an earlier life of the
//! run finished comes back on resume.

use crate::hash::{TaskIdentity, input_hash};
use crate::record::{
    AttemptEvent, AttemptOutcome, CacheEntry, FinishedTask, SubmittedTask, now_ns,
};
use crate::{InputHash, RunStore, StoredOutcome};
use pymw_core::journal::{
    Identified, Identity, InFlight, Journal, JournalOutcome, JournalTask, JournalTurn, Recorded,
    StaleResults,
};
use std::collections::HashMap;
use std::sync::Mutex;

/// A [`RunStore`] the master records into.
#[derive(Debug)]
pub struct StoreJournal {
    name: String,
    store: Mutex<Option<RunStore>>,
    cache: bool,
    /// Cache keys of the tasks in flight, to store their values when they
    /// finish (only while the cache is on).
    pending_cache: Mutex<HashMap<Identity, (u64, InputHash, &'static str)>>,
}

impl StoreJournal {
    /// Records into `store`; `cache`: look values up in, and add them to, the
    /// cross-run cache.
    pub fn new(store: RunStore, cache: bool) -> Self {
        StoreJournal {
            name: store.name().to_owned(),
            store: Mutex::new(Some(store)),
            cache,
            pending_cache: Mutex::new(HashMap::new()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&RunStore) -> T) -> Option<T> {
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        store.as_ref().map(f)
    }
}

fn outcome(outcome: JournalOutcome) -> AttemptOutcome {
    match outcome {
        JournalOutcome::Value(value) => AttemptOutcome::Value(value.into()),
        JournalOutcome::Cached(value) => AttemptOutcome::Cached(value.into()),
        JournalOutcome::Failed(failure) => AttemptOutcome::Failed(failure),
        JournalOutcome::Lost { cause, retried } => AttemptOutcome::Lost { cause, retried },
        JournalOutcome::TimedOut { after } => AttemptOutcome::TimedOut {
            after_ns: after.as_nanos() as u64,
        },
        JournalOutcome::Cancelled => AttemptOutcome::Cancelled,
        JournalOutcome::Backend { message } => AttemptOutcome::Backend { message },
        _ => AttemptOutcome::Backend {
            message: "an outcome this store does not know".into(),
        },
    }
}

/// The store's record of a task the master accepted.
fn submitted_task(task: JournalTask, submitted_ns: u64) -> SubmittedTask {
    SubmittedTask {
        identity: TaskIdentity(task.identity),
        task: task.task.into(),
        fingerprint: task.fingerprint,
        position: task.position,
        input_hash: InputHash(task.input_hash),
        submitted_ns,
    }
}

impl Journal for StoreJournal {
    fn identify(&self, fingerprint: u64, input: &[u8], position: u64) -> Identified {
        let input_hash = input_hash(input);
        Identified {
            identity: TaskIdentity::from_parts(fingerprint, input_hash, position).0,
            input_hash: input_hash.0,
        }
    }

    fn recorded(&self) -> Result<HashMap<Identity, Recorded>, String> {
        let mut recorded = HashMap::new();
        self.with(|store| {
            store.for_each_finished(
                &mut recorded,
                |recorded, count| recorded.reserve(count),
                |recorded, identity, stored| {
                    let entry = match stored {
                        StoredOutcome::Done { value, .. } => match value.into_bytes() {
                            Ok(bytes) => Recorded::Value(bytes),
                            // A value file that is gone: run the task again.
                            Err(_) => return,
                        },
                        // Only deterministic failures are final; a task lost
                        // or timed out in an earlier life runs again.
                        StoredOutcome::Failed { failure, host, .. } => match failure.to_failure() {
                            Some(value) => Recorded::Failed {
                                failure: value,
                                host,
                                stderr_tail: failure.stderr_tail,
                            },
                            None => return,
                        },
                    };
                    recorded.insert(identity.0, entry);
                },
            )
        })
        .ok_or("the run store is closed")?
        .map_err(|e| e.to_string())?;
        Ok(recorded)
    }

    fn stale_results(&self, tasks: &[(String, u64)]) -> Result<Vec<StaleResults>, String> {
        let stale = self
            .with(|store| store.stale_results(tasks))
            .ok_or("the run store is closed")?
            .map_err(|e| e.to_string())?;
        Ok(stale
            .into_iter()
            .map(|s| StaleResults {
                task: s.task,
                results: s.results,
            })
            .collect())
    }

    fn run_name(&self) -> &str {
        &self.name
    }

    fn in_flight(&self) -> Result<HashMap<Identity, InFlight>, String> {
        let attempts = self
            .with(|store| store.in_flight())
            .ok_or("the run store is closed")?
            .map_err(|e| e.to_string())?;
        let mut in_flight: HashMap<Identity, InFlight> = HashMap::new();
        for attempt in attempts {
            let Some(job_id) = attempt.job_id else {
                // Never reached an engine that could be asked again.
                continue;
            };
            let newer = in_flight
                .get(&attempt.identity.0)
                .is_none_or(|seen| attempt.attempt >= seen.attempt);
            if newer {
                in_flight.insert(
                    attempt.identity.0,
                    InFlight {
                        attempt: attempt.attempt,
                        job_id,
                    },
                );
            }
        }
        Ok(in_flight)
    }

    fn cached(&self, fingerprint: u64, input_hash: &[u8; 16]) -> Option<Vec<u8>> {
        if !self.cache {
            return None;
        }
        self.with(|store| {
            store
                .cache_get(fingerprint, &InputHash(*input_hash))
                .ok()
                .flatten()
        })
        .flatten()
    }

    fn record(&self, turn: &mut JournalTurn) {
        let now = now_ns();
        let mut guard = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let Some(store) = guard.as_mut() else {
            turn.submitted.clear();
            turn.queued.clear();
            turn.started.clear();
            turn.finished.clear();
            return;
        };
        // The buffers of a batch the writer is done with: no allocation in
        // the steady state.
        let mut batch = store.batch();
        let mut pending = self
            .cache
            .then(|| self.pending_cache.lock().unwrap_or_else(|e| e.into_inner()));
        for task in turn.submitted.drain(..) {
            if let Some(pending) = pending.as_mut() {
                pending.insert(
                    task.identity,
                    (task.fingerprint, InputHash(task.input_hash), task.task),
                );
            }
            batch.submitted.push(submitted_task(task, now));
        }
        let event = |identity: Identity, attempt, job_id| AttemptEvent {
            identity: TaskIdentity(identity),
            attempt,
            job_id,
            host: None,
            at_ns: now,
        };
        batch.queued.extend(
            turn.queued
                .drain(..)
                .map(|(identity, attempt, job_id)| event(identity, attempt, Some(job_id))),
        );
        batch.started.extend(
            turn.started
                .drain(..)
                .map(|(identity, attempt)| event(identity, attempt, None)),
        );
        let mut cache_entries = Vec::new();
        for attempt in turn.finished.drain(..) {
            if let Some(pending) = pending.as_mut()
                && let JournalOutcome::Value(value) = &attempt.outcome
            {
                let key = match &attempt.submission {
                    Some(task) => Some((task.fingerprint, InputHash(task.input_hash), task.task)),
                    None => pending.remove(&attempt.identity),
                };
                if let Some((fingerprint, input_hash, task)) = key {
                    cache_entries.push(CacheEntry {
                        fingerprint,
                        input_hash,
                        task: task.into(),
                        value: value.clone(),
                    });
                }
            }
            let wall_ns = attempt.stats.wall_ns;
            let record = FinishedTask {
                identity: TaskIdentity(attempt.identity),
                attempt: attempt.attempt,
                outcome: outcome(attempt.outcome),
                stats: attempt.stats,
                stderr_tail: attempt.stderr_tail,
                started_ns: None,
                finished_ns: now,
            };
            match attempt.submission {
                // Held back by the master for less than a moment: its
                // submission time is taken as its start.
                Some(task) => batch
                    .completed
                    .push((submitted_task(task, now - wall_ns.min(now)), record)),
                None => batch.finished.push(record),
            }
        }
        drop(pending);
        store.record(batch);
        if !cache_entries.is_empty() {
            store.cache_put(cache_entries);
        }
    }

    fn error(&self) -> Option<String> {
        self.with(|store| store.error().map(|e| e.to_string()))
            .flatten()
    }

    fn close(&self) -> Result<(), String> {
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner()).take();
        match store {
            Some(store) => store.close().map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}
