//! The pure core of the backend: which attempt a job event is about, what it
//! means for the master, and what the backend must do about it (release or
//! remove a job, read a finished job's files).
//!
//! Nothing here touches a file or runs a command, so every decision is
//! unit-tested on the recorded event logs.

use crate::eventlog::{JobEvent, JobEventKind, JobExit};
use crate::submit_output::SubmittedJobs;
use pymw_core::backend::{AttemptKey, Event};
use pymw_core::registry::TaskEntry;
use pymw_core::wire::{self, Outcome};
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

/// An HTCondor job: `cluster.proc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct JobId {
    pub(crate) cluster: u64,
    pub(crate) proc: u64,
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.cluster, self.proc)
    }
}

impl std::str::FromStr for JobId {
    type Err = ();

    /// `46.3`.
    fn from_str(text: &str) -> Result<Self, ()> {
        let (cluster, proc) = text.split_once('.').ok_or(())?;
        Ok(JobId {
            cluster: cluster.parse().map_err(drop)?,
            proc: proc.parse().map_err(drop)?,
        })
    }
}

/// What to do about a job that went on hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HoldDecision {
    /// `condor_release` it: the cause may be gone on the next try.
    Release,
    /// Leave it: a person held it (`condor_hold`, code 1) and is expected to
    /// release it; the master's timeout and cancel still apply.
    Wait,
    /// `condor_rm` it and report the attempt lost with the hold reason.
    Remove,
}

/// HTCondor's `HoldReasonCode` for `condor_hold` by a user.
const HOLD_USER_REQUEST: i64 = 1;
/// `HoldReasonCode` of an output transfer failure.
const HOLD_TRANSFER_OUTPUT: i64 = 12;
/// `HoldReasonCode` of an input transfer failure.
const HOLD_TRANSFER_INPUT: i64 = 13;

/// The hold policy: file transfer failures (codes 12 and 13: a full disk, a
/// file server that went away, a permission fixed meanwhile) are released up
/// to `max_releases` times; a hold a user asked for is left to that user;
/// anything else (a policy hold such as `periodic_hold`, an executable that
/// cannot start, exhausted releases) ends the attempt.
pub(crate) fn hold_decision(code: Option<i64>, releases: u32, max_releases: u32) -> HoldDecision {
    match code {
        Some(HOLD_USER_REQUEST) => HoldDecision::Wait,
        Some(HOLD_TRANSFER_OUTPUT | HOLD_TRANSFER_INPUT) if releases < max_releases => {
            HoldDecision::Release
        }
        _ => HoldDecision::Remove,
    }
}

/// How a job ended, for messages: "exit code 3", "signal 11 (SIGSEGV)".
pub(crate) fn describe_exit(exit: &JobExit) -> String {
    match *exit {
        JobExit::Normal { exit_code } => format!("exit code {exit_code}"),
        JobExit::Signal { signal } => {
            let name = i32::try_from(signal).map_or("unknown signal", pymw_core::sys::signal_name);
            format!("signal {signal} ({name})")
        }
    }
}

/// What the backend has to do after an event: send an event, act on a job,
/// or read an ended job's files.
#[derive(Debug)]
pub(crate) enum Step {
    /// Send this event to the master.
    Event(Event),
    /// `condor_release` this job.
    Release(JobId),
    /// `condor_rm` this job.
    Remove(JobId),
    /// The attempt is over: read its files and tell the master.
    Ended(Ended),
    /// Nothing refers to this task directory any more: delete it.
    Discard(PathBuf),
}

/// An attempt that ended; [`Ended::event`] turns it and its files into the
/// event for the master.
#[derive(Debug)]
pub(crate) struct Ended {
    pub(crate) key: AttemptKey,
    pub(crate) job: JobId,
    pub(crate) task: &'static TaskEntry,
    pub(crate) dir: PathBuf,
    pub(crate) how: EndedHow,
    /// Delete the task directory after reading it (the job has left the
    /// queue; a job being removed keeps it until its `009`).
    pub(crate) discard: bool,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EndedHow {
    /// `005`: the job's process ended; its output file says the rest.
    Exited(JobExit),
    /// `009` by someone else: the reason.
    Removed(String),
    /// `012` the policy gave up on: the reason with its codes.
    Held(String),
}

impl Ended {
    /// Does this end need the output file? (Only a job that exited has one.)
    pub(crate) fn wants_output(&self) -> bool {
        matches!(self.how, EndedHow::Exited(_))
    }

    /// The event for the master, from the output file's bytes (`None` when
    /// it is missing, `Err` with the whole reason when it cannot be read) and
    /// a lazily read stderr tail.
    pub(crate) fn event(
        &self,
        output: Result<Option<&[u8]>, String>,
        stderr_tail: impl FnOnce() -> String,
    ) -> Event {
        let key = self.key;
        let job = self.job;
        let exit = match &self.how {
            EndedHow::Exited(exit) => exit,
            EndedHow::Removed(reason) => {
                return Event::Lost {
                    key,
                    cause: format!("removed: {reason} [HTCondor job {job}]"),
                    stderr_tail: stderr_tail(),
                };
            }
            EndedHow::Held(reason) => {
                return Event::Lost {
                    key,
                    cause: format!("held: {reason} [HTCondor job {job}]"),
                    stderr_tail: stderr_tail(),
                };
            }
        };
        let lost = |what: String, stderr_tail: String| Event::Lost {
            key,
            cause: format!(
                "HTCondor job {job} ended with {}; {what}",
                describe_exit(exit)
            ),
            stderr_tail,
        };
        let bytes = match output {
            Ok(Some(bytes)) if !bytes.is_empty() => bytes,
            // The empty placeholder the submitter put there: the worker died
            // before writing its output.
            Ok(_) => return lost("output missing".to_owned(), stderr_tail()),
            Err(reason) => return lost(reason, stderr_tail()),
        };
        let body = match wire::decode_output(bytes) {
            Ok(body) => body,
            Err(e) => return lost(format!("output corrupt: {e}"), stderr_tail()),
        };
        match body.outcome {
            Outcome::Ok(value) => {
                let ours = (self.task.fingerprint)();
                if body.task != self.task.name || body.fingerprint != ours {
                    return lost(
                        format!(
                            "output corrupt: it holds a value of task `{}` (fingerprint {:016x}), not of `{}` ({ours:016x})",
                            body.task, body.fingerprint, self.task.name
                        ),
                        stderr_tail(),
                    );
                }
                Event::Finished {
                    key,
                    outcome: Ok(value.to_vec()),
                    stats: body.stats,
                    stderr_tail: String::new(),
                }
            }
            Outcome::Failed(failure) => Event::Finished {
                key,
                outcome: Err(failure),
                stats: body.stats,
                stderr_tail: stderr_tail(),
            },
        }
    }
}

#[derive(Debug)]
struct Attempt {
    task: &'static TaskEntry,
    dir: PathBuf,
    job: Option<JobId>,
    releases: u32,
    /// Cancelled before its job id was known: remove the job once it is.
    cancelled: bool,
}

/// Every attempt the backend has handed to HTCondor and not yet settled.
#[derive(Debug)]
pub(crate) struct Tracker {
    attempts: HashMap<AttemptKey, Attempt>,
    jobs: HashMap<JobId, AttemptKey>,
    /// Jobs being removed by us: their directories go when they leave.
    removing: HashMap<JobId, PathBuf>,
    max_releases: u32,
}

impl Tracker {
    pub(crate) fn new(max_releases: u32) -> Self {
        Tracker {
            attempts: HashMap::new(),
            jobs: HashMap::new(),
            removing: HashMap::new(),
            max_releases,
        }
    }

    /// An attempt about to be submitted (registered first, so that its `000`
    /// event can name it even before `condor_submit` returns).
    pub(crate) fn add(&mut self, key: AttemptKey, task: &'static TaskEntry, dir: PathBuf) {
        self.attempts.insert(
            key,
            Attempt {
                task,
                dir,
                job: None,
                releases: 0,
                cancelled: false,
            },
        );
    }

    /// `condor_submit` queued `jobs` for `keys`, in proc order. Returns the
    /// jobs of attempts cancelled meanwhile: remove them.
    pub(crate) fn submitted(&mut self, keys: &[AttemptKey], jobs: SubmittedJobs) -> Vec<JobId> {
        let mut remove = Vec::new();
        for (key, proc) in keys.iter().zip(jobs.procs()) {
            let id = JobId {
                cluster: jobs.cluster,
                proc,
            };
            let Some(attempt) = self.attempts.get_mut(key) else {
                continue;
            };
            attempt.job = Some(id);
            if attempt.cancelled {
                let attempt = self.attempts.remove(key).expect("present");
                self.removing.insert(id, attempt.dir);
                remove.push(id);
            } else {
                self.jobs.insert(id, *key);
            }
        }
        remove
    }

    /// An attempt that follows a job an earlier master of the run submitted
    /// (its events come from that master's event log).
    pub(crate) fn follow(
        &mut self,
        key: AttemptKey,
        task: &'static TaskEntry,
        dir: PathBuf,
        job: JobId,
    ) {
        self.attempts.insert(
            key,
            Attempt {
                task,
                dir,
                job: Some(job),
                releases: 0,
                cancelled: false,
            },
        );
        self.jobs.insert(job, key);
    }

    /// Whether a job still matters: followed, or being removed by us.
    pub(crate) fn is_tracked(&self, job: JobId) -> bool {
        self.jobs.contains_key(&job) || self.removing.contains_key(&job)
    }

    /// A followed job that left the queue without a word in its log: its
    /// attempt is settled as lost.
    pub(crate) fn vanished(&mut self, job: JobId) -> Option<Step> {
        let (key, attempt) = self.settle(job)?;
        Some(Step::Event(Event::Lost {
            key,
            cause: format!(
                "HTCondor job {job} of an earlier master of this run is no longer in the queue, \
                 and its event log does not say how it ended (its files: {})",
                attempt.dir.display()
            ),
            stderr_tail: String::new(),
        }))
    }

    /// Drops an attempt that never became a job (its submit failed).
    pub(crate) fn forget(&mut self, key: AttemptKey) -> Option<PathBuf> {
        let attempt = self.attempts.remove(&key)?;
        if let Some(job) = attempt.job {
            self.jobs.remove(&job);
        }
        Some(attempt.dir)
    }

    /// The master cancelled an attempt: returns its job to remove, if known
    /// (otherwise it is removed as soon as its id is).
    pub(crate) fn cancel(&mut self, key: AttemptKey) -> Option<JobId> {
        let attempt = self.attempts.get_mut(&key)?;
        match attempt.job {
            Some(job) => {
                let attempt = self.attempts.remove(&key).expect("present");
                self.jobs.remove(&job);
                self.removing.insert(job, attempt.dir);
                Some(job)
            }
            None => {
                attempt.cancelled = true;
                None
            }
        }
    }

    /// Whether the master cancelled this attempt before its job id was known.
    pub(crate) fn is_cancelled(&self, key: AttemptKey) -> bool {
        self.attempts.get(&key).is_some_and(|a| a.cancelled)
    }

    /// Jobs still in the queue as far as the log tells: live ones and ones
    /// being removed.
    pub(crate) fn jobs_in_queue(&self) -> usize {
        self.jobs.len() + self.removing.len()
    }

    /// Attempts not yet settled.
    pub(crate) fn attempts(&self) -> usize {
        self.attempts.len()
    }

    fn settle(&mut self, id: JobId) -> Option<(AttemptKey, Attempt)> {
        let key = self.jobs.remove(&id)?;
        let attempt = self.attempts.remove(&key)?;
        Some((key, attempt))
    }

    /// Translates one event of the run's log into steps.
    pub(crate) fn handle(&mut self, event: &JobEvent, steps: &mut Vec<Step>) {
        self.handle_from(event, steps, true);
    }

    /// Translates one event of an earlier master's log into steps. Its task
    /// keys are that master's, so its submit events name nothing here.
    pub(crate) fn handle_earlier(&mut self, event: &JobEvent, steps: &mut Vec<Step>) {
        self.handle_from(event, steps, false);
    }

    fn handle_from(&mut self, event: &JobEvent, steps: &mut Vec<Step>, own_log: bool) {
        let id = JobId {
            cluster: event.cluster,
            proc: event.proc,
        };
        let Some(&key) = self.jobs.get(&id) else {
            match &event.kind {
                // The task key rides in submit_event_notes: a job can be
                // followed before condor_submit has even returned its id.
                JobEventKind::Submitted { notes: Some(notes) } if own_log => self.learn(id, notes),
                // A job we removed has left the queue.
                JobEventKind::Aborted { .. } | JobEventKind::Terminated { .. } => {
                    if let Some(dir) = self.removing.remove(&id) {
                        steps.push(Step::Discard(dir));
                    }
                }
                _ => {}
            }
            return;
        };
        match &event.kind {
            JobEventKind::Executing { .. } => steps.push(Step::Event(Event::Started { key })),
            JobEventKind::Evicted { reason } => steps.push(Step::Event(Event::Requeued {
                key,
                reason: reason.clone().unwrap_or_else(|| {
                    format!("HTCondor job {id} was evicted (vacated, preempted, held or removed)")
                }),
            })),
            JobEventKind::Requeued { exit, reason } => steps.push(Step::Event(Event::Requeued {
                key,
                reason: format!(
                    "HTCondor job {id} ended{} and its own policy requeued it{}",
                    exit.as_ref()
                        .map(|e| format!(" with {}", describe_exit(e)))
                        .unwrap_or_default(),
                    reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
            })),
            JobEventKind::Terminated { exit, .. } => {
                let (key, attempt) = self.settle(id).expect("tracked");
                steps.push(Step::Ended(Ended {
                    key,
                    job: id,
                    task: attempt.task,
                    dir: attempt.dir,
                    how: EndedHow::Exited(*exit),
                    discard: true,
                }));
            }
            JobEventKind::Aborted { reason } => {
                let (key, attempt) = self.settle(id).expect("tracked");
                steps.push(Step::Ended(Ended {
                    key,
                    job: id,
                    task: attempt.task,
                    dir: attempt.dir,
                    how: EndedHow::Removed(
                        reason
                            .clone()
                            .unwrap_or_else(|| "no reason given".to_owned()),
                    ),
                    discard: true,
                }));
            }
            JobEventKind::Held {
                reason,
                code,
                subcode,
            } => {
                let codes = |c: &Option<i64>| c.map_or_else(|| "?".to_owned(), |c| c.to_string());
                let reason = format!("{reason} (code {} subcode {})", codes(code), codes(subcode));
                steps.push(Step::Event(Event::Held {
                    key,
                    reason: reason.clone(),
                }));
                let attempt = self.attempts.get_mut(&key).expect("tracked");
                match hold_decision(*code, attempt.releases, self.max_releases) {
                    HoldDecision::Release => {
                        attempt.releases += 1;
                        steps.push(Step::Release(id));
                    }
                    HoldDecision::Wait => {}
                    HoldDecision::Remove => {
                        let (key, attempt) = self.settle(id).expect("tracked");
                        self.removing.insert(id, attempt.dir.clone());
                        steps.push(Step::Remove(id));
                        let releases = attempt.releases;
                        let reason = if releases > 0 {
                            format!("{reason}, after {releases} release(s)")
                        } else {
                            reason
                        };
                        steps.push(Step::Ended(Ended {
                            key,
                            job: id,
                            task: attempt.task,
                            dir: attempt.dir,
                            how: EndedHow::Held(reason),
                            discard: false,
                        }));
                    }
                }
            }
            _ => {}
        }
    }

    fn learn(&mut self, id: JobId, notes: &str) {
        let Ok(key) = notes.trim().parse::<AttemptKey>() else {
            return;
        };
        let Some(attempt) = self.attempts.get_mut(&key) else {
            return;
        };
        if attempt.job.is_some() || attempt.cancelled {
            // Known already, or condor_submit's answer will remove it.
            return;
        }
        attempt.job = Some(id);
        self.jobs.insert(id, key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventlog::EventLogReader;
    use pymw_core::wire::{Failure, OutputBody, WorkerStats};
    use std::path::Path;

    /// The task of these tests: `square::task()`.
    #[pymw_macros::task(crate = "pymw_core", name = "sim::square")]
    fn square(x: u64) -> u64 {
        x * x
    }

    fn task() -> &'static TaskEntry {
        square::task().entry()
    }

    fn fingerprint() -> u64 {
        (task().fingerprint)()
    }

    /// The `condor` folder of the shared fixtures (`$PYMW_FIXTURES_DIR/condor`).
    fn fixtures() -> PathBuf {
        let dir = match std::env::var_os("PYMW_FIXTURES_DIR") {
            Some(dir) => PathBuf::from(dir).join("condor"),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/condor"),
        };
        assert!(
            dir.is_dir(),
            "HTCondor fixtures not found at {} (set PYMW_FIXTURES_DIR)",
            dir.display()
        );
        dir
    }

    fn events(format: &str, case: &str) -> Vec<JobEvent> {
        let path = fixtures().join(format!("eventlog/{format}/{case}/{case}.log"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut reader = EventLogReader::detecting();
        let mut events = reader.feed(&bytes).expect("a readable log");
        events.extend(reader.finish().expect("a complete log"));
        events
    }

    fn summary(step: &Step) -> String {
        match step {
            Step::Event(Event::Started { key }) => format!("{key} started"),
            Step::Event(Event::Requeued { key, .. }) => format!("{key} requeued"),
            Step::Event(Event::Held { key, reason }) => {
                let codes = reason.rsplit_once(" (code ").map_or("", |(_, c)| c);
                format!("{key} held (code {codes}")
            }
            Step::Event(other) => format!("{other:?}"),
            // Clusters differ between the text and JSON recordings.
            Step::Release(job) => format!("release C.{}", job.proc),
            Step::Remove(job) => format!("remove C.{}", job.proc),
            Step::Discard(dir) => format!("discard {}", dir.display()),
            Step::Ended(ended) => {
                let how = match &ended.how {
                    EndedHow::Exited(exit) => format!("exited with {}", describe_exit(exit)),
                    EndedHow::Removed(reason) => format!("removed: {reason}"),
                    EndedHow::Held(reason) => format!(
                        "held: {}",
                        reason.split(" (code").next().unwrap_or_default()
                    ),
                };
                format!(
                    "{} ended ({}) {how}",
                    ended.key,
                    if ended.discard { "gone" } else { "leaving" }
                )
            }
        }
    }

    /// Runs a recorded log through a tracker whose key 7 is the log's first
    /// job (keys 7, 8, ... for a cluster of several).
    fn replay(format: &str, case: &str, max_releases: u32) -> Vec<String> {
        let events = events(format, case);
        let cluster = events[0].cluster;
        let procs = events.iter().map(|e| e.proc).max().unwrap_or(0);
        let mut tracker = Tracker::new(max_releases);
        let keys: Vec<AttemptKey> = (0..=procs).map(|p| 7 + p).collect();
        for &key in &keys {
            tracker.add(key, task(), PathBuf::from(format!("/t/{key}")));
        }
        let removed = tracker.submitted(
            &keys,
            SubmittedJobs {
                cluster,
                first_proc: 0,
                last_proc: procs,
            },
        );
        assert!(removed.is_empty());
        let mut steps = Vec::new();
        for event in &events {
            tracker.handle(event, &mut steps);
        }
        assert_eq!(
            tracker.attempts(),
            0,
            "{case}: an attempt was never settled"
        );
        steps.iter().map(summary).collect()
    }

    fn check(case: &str, max_releases: u32, expected: &[&str]) {
        for format in ["text", "json"] {
            let got = replay(format, case, max_releases);
            assert_eq!(
                got, expected,
                "{format}/{case} with max_releases {max_releases}"
            );
        }
    }

    #[test]
    fn a_job_that_exits_is_started_then_ended() {
        check(
            "a-exit0",
            2,
            &["7 started", "7 ended (gone) exited with exit code 0"],
        );
        check(
            "c-exit3",
            2,
            &["7 started", "7 ended (gone) exited with exit code 3"],
        );
        check(
            "d-sigsegv",
            2,
            &[
                "7 started",
                "7 ended (gone) exited with signal 11 (SIGSEGV)",
            ],
        );
        check(
            "d-sigabrt",
            2,
            &["7 started", "7 ended (gone) exited with signal 6 (SIGABRT)"],
        );
        check(
            "j-memory",
            2,
            &["7 started", "7 ended (gone) exited with exit code 0"],
        );
    }

    #[test]
    fn jobs_of_an_earlier_master_are_followed_under_new_keys() {
        for format in ["text", "json"] {
            let events = events(format, "b-cluster5");
            let cluster = events[0].cluster;
            let followed = JobId { cluster, proc: 2 };
            let mut tracker = Tracker::new(2);
            // This master's attempt 2, not submitted yet, and attempt 40,
            // which follows the earlier master's job C.2.
            tracker.add(2, task(), PathBuf::from("/t/2"));
            tracker.follow(40, task(), PathBuf::from("/old/tasks/2"), followed);
            let mut steps = Vec::new();
            for event in &events {
                let mut event = event.clone();
                // The earlier master's keys ride in its submit notes.
                if let JobEventKind::Submitted { notes } = &mut event.kind {
                    *notes = Some(event.proc.to_string());
                }
                tracker.handle_earlier(&event, &mut steps);
            }
            let got: Vec<String> = steps.iter().map(summary).collect();
            assert_eq!(
                got,
                ["40 started", "40 ended (gone) exited with exit code 0"],
                "{format}"
            );
            let Step::Ended(ended) = &steps[1] else {
                panic!("{format}: {got:?}")
            };
            assert_eq!(ended.dir, Path::new("/old/tasks/2"), "{format}");
            // Attempt 2 was not bound to an earlier master's job by its notes.
            assert_eq!(tracker.attempts(), 1, "{format}");
            assert!(!tracker.is_tracked(followed), "{format}");
        }
    }

    #[test]
    fn a_followed_job_that_vanished_is_lost_with_its_files_named() {
        let mut tracker = Tracker::new(2);
        let job = JobId {
            cluster: 46,
            proc: 3,
        };
        tracker.follow(5, task(), PathBuf::from("/old/tasks/9"), job);
        let Some(Step::Event(Event::Lost { key, cause, .. })) = tracker.vanished(job) else {
            panic!("no lost attempt")
        };
        assert_eq!(key, 5);
        assert!(
            cause.contains("46.3") && cause.contains("/old/tasks/9"),
            "{cause}"
        );
        assert_eq!(tracker.attempts(), 0);
        assert!(tracker.vanished(job).is_none());
    }

    #[test]
    fn job_ids_parse() {
        assert_eq!(
            "46.3".parse(),
            Ok(JobId {
                cluster: 46,
                proc: 3
            })
        );
        for bad in ["46", "46.", ".3", "a.b", "46.3.1", ""] {
            assert!(bad.parse::<JobId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_job_of_a_cluster_finds_its_attempt() {
        for format in ["text", "json"] {
            let mut got = replay(format, "b-cluster5", 2);
            got.sort();
            let mut expected: Vec<String> = (7..12)
                .flat_map(|k| {
                    [
                        format!("{k} started"),
                        format!("{k} ended (gone) exited with exit code 0"),
                    ]
                })
                .collect();
            expected.sort();
            assert_eq!(got, expected, "{format}");
        }
    }

    #[test]
    fn transfer_holds_are_released_then_given_up() {
        // Missing input: 021, 004, 012 code 13; released, it then runs.
        check(
            "e-hold-release",
            2,
            &[
                "7 requeued",
                "7 held (code 13 subcode 2)",
                "release C.0",
                "7 started",
                "7 ended (gone) exited with exit code 0",
            ],
        );
        // No releases allowed: removed at once, lost with the reason; the
        // rest of the log is about a job being removed.
        let text = replay("text", "e-hold-release", 0);
        assert_eq!(
            text,
            [
                "7 requeued",
                "7 held (code 13 subcode 2)",
                "remove C.0",
                "7 ended (leaving) held: Transfer input files failure at access point condorhost while sending files to execution point slot1_1@condorhost. Details: reading from file /home/tester/work/ev-text/e-hold-release/needed.txt: (errno 2) No such file or directory",
                "discard /t/7",
            ]
        );
        // Output transfer failure (code 12) is transient too; the log's
        // condor_rm by hand then ends it as removed.
        check(
            "i-output-missing",
            2,
            &[
                "7 started",
                "7 requeued",
                "7 held (code 12 subcode 2)",
                "release C.0",
                "7 ended (gone) removed: via condor_rm (by user tester)",
            ],
        );
    }

    #[test]
    fn policy_holds_end_the_attempt_and_user_holds_wait() {
        let j2 = replay("text", "j2-memory-policy", 2);
        assert_eq!(j2[0], "7 started");
        assert_eq!(j2[1], "7 held (code 3 subcode 42)");
        assert_eq!(j2[2], "remove C.0");
        assert!(j2[3].starts_with("7 ended (leaving) held: "), "{j2:?}");
        assert_eq!(j2[4], "discard /t/7");
        assert_eq!(j2.len(), 5);
        check(
            "m-user-hold-release",
            2,
            &[
                "7 started",
                "7 requeued",
                "7 held (code 1 subcode 0)",
                "7 started",
                "7 ended (gone) exited with exit code 0",
            ],
        );
    }

    #[test]
    fn removal_and_requeues_by_others() {
        check(
            "f-hold-rm",
            2,
            &[
                "7 requeued",
                "7 held (code 13 subcode 2)",
                "release C.0",
                "7 ended (gone) removed: via condor_rm (by user tester)",
            ],
        );
        check(
            "g-rm-running",
            2,
            &[
                "7 started",
                "7 requeued",
                "7 ended (gone) removed: via condor_rm (by user tester)",
            ],
        );
        let l = replay("text", "l-periodic-remove", 2);
        assert_eq!(l[0], "7 started");
        assert!(
            l[1].starts_with("7 ended (gone) removed: The job attribute PeriodicRemove expression"),
            "{l:?}"
        );
        check(
            "k-vacate",
            2,
            &[
                "7 started",
                "7 requeued",
                "7 started",
                "7 ended (gone) exited with exit code 0",
            ],
        );
        check(
            "h-retries",
            2,
            &[
                "7 started",
                "7 requeued",
                "7 started",
                "7 requeued",
                "7 started",
                "7 ended (gone) exited with exit code 3",
            ],
        );
    }

    #[test]
    fn requeue_reasons_say_what_happened() {
        let events = events("text", "h-retries");
        let mut tracker = Tracker::new(2);
        tracker.add(7, task(), "/t/7".into());
        let jobs = SubmittedJobs {
            cluster: events[0].cluster,
            first_proc: 0,
            last_proc: 0,
        };
        tracker.submitted(&[7], jobs);
        let mut steps = Vec::new();
        for event in &events {
            tracker.handle(event, &mut steps);
        }
        let Some(Step::Event(Event::Requeued { reason, .. })) = steps.get(1) else {
            panic!("{steps:?}")
        };
        assert!(
            reason.contains("exit code 3") && reason.contains("OnExitRemove"),
            "{reason}"
        );
    }

    const NOTES_LOG: &str = "000 (042.000.000) 2026-11-24 01:00:19 Job submitted from host: <h>\n    7\n...\n\
        001 (042.000.000) 2026-11-24 01:00:20 Job executing on host: <h>\n...\n\
        000 (042.001.000) 2026-11-24 01:00:19 Job submitted from host: <h>\n    999\n...\n\
        001 (042.001.000) 2026-11-24 01:00:20 Job executing on host: <h>\n...\n";

    #[test]
    fn the_task_key_in_the_notes_names_the_attempt() {
        let mut tracker = Tracker::new(2);
        tracker.add(7, task(), "/t/7".into());
        let events = EventLogReader::detecting()
            .feed(NOTES_LOG.as_bytes())
            .unwrap();
        let mut steps = Vec::new();
        for event in &events {
            tracker.handle(event, &mut steps);
        }
        // Key 999 is not ours: its events are ignored.
        let got: Vec<String> = steps.iter().map(summary).collect();
        assert_eq!(got, ["7 started"]);
        assert_eq!(tracker.jobs_in_queue(), 1);
    }

    #[test]
    fn cancel_before_and_after_the_job_id_is_known() {
        let mut tracker = Tracker::new(2);
        tracker.add(7, task(), "/t/7".into());
        tracker.add(8, task(), "/t/8".into());
        // 7 is cancelled while condor_submit runs: removed when its id comes.
        assert_eq!(tracker.cancel(7), None);
        assert!(tracker.is_cancelled(7));
        let removed = tracker.submitted(
            &[7, 8],
            SubmittedJobs {
                cluster: 5,
                first_proc: 0,
                last_proc: 1,
            },
        );
        assert_eq!(
            removed,
            [JobId {
                cluster: 5,
                proc: 0
            }]
        );
        assert_eq!(
            tracker.cancel(8),
            Some(JobId {
                cluster: 5,
                proc: 1
            })
        );
        assert_eq!(tracker.attempts(), 0);
        assert_eq!(tracker.jobs_in_queue(), 2);
        // Their 009s only clean up.
        let log = "009 (005.000.000) 2026-11-24 01:00:19 Job was aborted.\n\tvia condor_rm (by user x)\n...\n\
                   009 (005.001.000) 2026-11-24 01:00:19 Job was aborted.\n\tvia condor_rm (by user x)\n...\n";
        let mut steps = Vec::new();
        for event in EventLogReader::detecting().feed(log.as_bytes()).unwrap() {
            tracker.handle(&event, &mut steps);
        }
        let got: Vec<String> = steps.iter().map(summary).collect();
        assert_eq!(got, ["discard /t/7", "discard /t/8"]);
        assert_eq!(tracker.jobs_in_queue(), 0);
    }

    #[test]
    fn hold_policy() {
        use HoldDecision::*;
        assert_eq!(hold_decision(Some(13), 0, 2), Release);
        assert_eq!(hold_decision(Some(12), 1, 2), Release);
        assert_eq!(hold_decision(Some(13), 2, 2), Remove);
        assert_eq!(hold_decision(Some(12), 0, 0), Remove);
        assert_eq!(hold_decision(Some(1), 5, 0), Wait);
        assert_eq!(hold_decision(Some(3), 0, 2), Remove);
        assert_eq!(hold_decision(Some(6), 0, 2), Remove);
        assert_eq!(hold_decision(None, 0, 2), Remove);
    }

    fn ended(how: EndedHow) -> Ended {
        Ended {
            key: 7,
            job: JobId {
                cluster: 12,
                proc: 3,
            },
            task: task(),
            dir: "/t/7".into(),
            how,
            discard: true,
        }
    }

    fn envelope(task: &str, fingerprint: u64, outcome: Outcome<'_>) -> Vec<u8> {
        let mut bytes = Vec::new();
        wire::encode_output(
            &OutputBody {
                task,
                fingerprint,
                outcome,
                stats: WorkerStats {
                    wall_ns: 5,
                    host: "node1".into(),
                    ..WorkerStats::default()
                },
            },
            &mut bytes,
        );
        bytes
    }

    fn tail() -> String {
        "the tail".to_owned()
    }

    #[test]
    fn an_exited_job_is_read_from_its_output() {
        let exited = ended(EndedHow::Exited(JobExit::Normal { exit_code: 0 }));
        let ok = envelope("sim::square", fingerprint(), Outcome::Ok(&[42]));
        match exited.event(Ok(Some(&ok)), || panic!("no tail for a value")) {
            Event::Finished {
                key: 7,
                outcome: Ok(value),
                stats,
                stderr_tail,
            } => {
                assert_eq!(value, [42]);
                assert_eq!(stats.host, "node1");
                assert!(stderr_tail.is_empty());
            }
            other => panic!("{other:?}"),
        }
        let failed = envelope(
            "sim::square",
            fingerprint(),
            Outcome::Failed(Failure::TaskError {
                message: "no".into(),
            }),
        );
        let exited1 = ended(EndedHow::Exited(JobExit::Normal { exit_code: 1 }));
        match exited1.event(Ok(Some(&failed)), tail) {
            Event::Finished {
                outcome: Err(Failure::TaskError { message }),
                stderr_tail,
                ..
            } => assert_eq!((message.as_str(), stderr_tail.as_str()), ("no", "the tail")),
            other => panic!("{other:?}"),
        }
    }

    fn lost_cause(event: Event) -> String {
        match event {
            Event::Lost {
                cause, stderr_tail, ..
            } => {
                assert_eq!(stderr_tail, "the tail");
                cause
            }
            other => panic!("expected lost, got {other:?}"),
        }
    }

    #[test]
    fn missing_or_corrupt_output_is_lost_never_a_value() {
        let segv = ended(EndedHow::Exited(JobExit::Signal { signal: 11 }));
        assert_eq!(
            lost_cause(segv.event(Ok(Some(&[])), tail)),
            "HTCondor job 12.3 ended with signal 11 (SIGSEGV); output missing"
        );
        let exit3 = ended(EndedHow::Exited(JobExit::Normal { exit_code: 3 }));
        assert_eq!(
            lost_cause(exit3.event(Ok(None), tail)),
            "HTCondor job 12.3 ended with exit code 3; output missing"
        );
        let exit0 = ended(EndedHow::Exited(JobExit::Normal { exit_code: 0 }));
        let mut ok = envelope("sim::square", fingerprint(), Outcome::Ok(&[42]));
        *ok.last_mut().unwrap() ^= 1;
        let cause = lost_cause(exit0.event(Ok(Some(&ok)), tail));
        assert!(
            cause.contains("exit code 0; output corrupt: checksum mismatch"),
            "{cause}"
        );
        let cause = lost_cause(exit0.event(Ok(Some(b"garbage")), tail));
        assert!(
            cause.contains("output corrupt: not a pymw output envelope"),
            "{cause}"
        );
        let other = envelope("sim::cube", fingerprint(), Outcome::Ok(&[42]));
        let cause = lost_cause(exit0.event(Ok(Some(&other)), tail));
        assert!(
            cause.contains("output corrupt: it holds a value of task `sim::cube`"),
            "{cause}"
        );
        let stale = envelope("sim::square", 0xbeef, Outcome::Ok(&[42]));
        let cause = lost_cause(exit0.event(Ok(Some(&stale)), tail));
        assert!(cause.contains("fingerprint 000000000000beef"), "{cause}");
        let cause = lost_cause(exit0.event(Err("output unreadable: EIO".into()), tail));
        assert!(
            cause.ends_with("exit code 0; output unreadable: EIO"),
            "{cause}"
        );
    }

    #[test]
    fn removal_and_holds_are_lost_with_their_reason() {
        let removed = ended(EndedHow::Removed("via condor_rm (by user bob)".into()));
        assert!(!removed.wants_output());
        assert_eq!(
            lost_cause(removed.event(Ok(None), tail)),
            "removed: via condor_rm (by user bob) [HTCondor job 12.3]"
        );
        let held = ended(EndedHow::Held(
            "Transfer input files failure (code 13 subcode 13)".into(),
        ));
        assert_eq!(
            lost_cause(held.event(Ok(None), tail)),
            "held: Transfer input files failure (code 13 subcode 13) [HTCondor job 12.3]"
        );
    }
}
