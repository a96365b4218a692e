//! The writer thread: owns the run's read-write connection, takes records in
//! batches from a channel and commits them in one transaction per batch
//! (about every 10 ms under load).
//!
//! It keeps unfinished tasks in memory and writes a task only when there is
//! something worth keeping: when it finishes (a tiny task is written once,
//! complete, usually into a task block), when it has been in flight for a
//! second or two (so `pymw status` sees long tasks), or at once when the
//! engine gave its attempt a job id (so a restarted master can re-attach).
//! Anything it could not commit (disk full, read-only) stays in memory and is
//! committed with the next batch.

use crate::block::{self, BLOCK_MAX, BLOCK_MIN, BLOCK_VALUE_MAX, BlockTask, Builder};
use crate::error::StoreError;
use crate::hash::{IdentityHash, InputHash, TaskIdentity};
use crate::record::{
    AttemptEvent, AttemptOutcome, AttemptState, Batch, CacheEntry, FailureKind, FinishedTask,
    StoredFailure, SubmittedTask, TaskState, failure_of, now_ns,
};
use crate::schema;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// Values this large or larger are files under `outputs/`.
pub(crate) const INLINE_MAX: usize = 64 * 1024;

/// The longest a record waits before its transaction commits.
const COMMIT_INTERVAL: Duration = Duration::from_millis(10);

/// Records that make a transaction commit at once.
const COMMIT_RECORDS: usize = 65_536;

/// How often unfinished tasks that changed are written (each is written one
/// to two periods after its change).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Wait between attempts to commit after a failure.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Attempt ids are `seq << ATTEMPT_BITS | attempt`.
pub(crate) const ATTEMPT_BITS: u32 = 16;

// One rule for attempt numbers everywhere: the master bounds retries to
// `MAX_RETRIES`, so attempts are numbered `0..=MAX_RETRIES`, and every
// attempt number fits the store's ids without clamping.
const _: () = assert!((pymw_core::MAX_RETRIES as u64) < 1 << ATTEMPT_BITS);

/// What the store sends its writer.
pub(crate) enum Msg {
    Batch(Batch),
    Submitted(Vec<SubmittedTask>),
    Queued(Vec<AttemptEvent>),
    Started(Vec<AttemptEvent>),
    Finished(Vec<FinishedTask>),
    CachePut(Vec<CacheEntry>),
    Expected(Option<u64>),
    Flush(mpsc::SyncSender<Result<(), StoreError>>),
    Close(mpsc::SyncSender<Result<(), StoreError>>),
    /// Commit, then stop without marking the run closed (a simulated crash).
    #[cfg(feature = "fixture")]
    Abandon(mpsc::SyncSender<Result<(), StoreError>>),
}

/// State shared between the store handle and its writer.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) error: Mutex<Option<StoreError>>,
    pub(crate) failing: AtomicBool,
    /// Records about tasks the writer did not know (see
    /// [`crate::RunStore::ignored_records`]).
    pub(crate) ignored: AtomicU64,
    /// Emptied batches, for [`crate::RunStore::batch`] to hand out again.
    pub(crate) spare: Mutex<Vec<Batch>>,
}

/// Emptied batches kept for reuse.
const SPARE_BATCHES: usize = 8;

impl Shared {
    pub(crate) fn set_error(&self, error: Option<StoreError>) {
        self.failing.store(error.is_some(), Ordering::Release);
        *self.error.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }
}

#[derive(Debug, Clone)]
struct Attempt {
    attempt: u32,
    state: AttemptState,
    dirty: bool,
    job_id: Option<String>,
    host: Option<String>,
    queued_ns: Option<u64>,
    started_ns: Option<u64>,
    finished_ns: Option<u64>,
    wall_ns: Option<u64>,
    cpu_ns: Option<u64>,
    peak_rss_kib: Option<u64>,
    value: Option<Vec<u8>>,
    failure: Option<Box<StoredFailure>>,
}

impl Attempt {
    fn new(attempt: u32) -> Attempt {
        Attempt {
            attempt,
            state: AttemptState::Queued,
            dirty: true,
            job_id: None,
            host: None,
            queued_ns: None,
            started_ns: None,
            finished_ns: None,
            wall_ns: None,
            cpu_ns: None,
            peak_rss_kib: None,
            value: None,
            failure: None,
        }
    }
}

#[derive(Debug)]
struct OpenTask {
    /// Set once the task has (or is about to have) a row.
    seq: Option<u64>,
    kind: u32,
    state: TaskState,
    /// Changed since last written.
    dirty: bool,
    /// The sweep period in which it became dirty.
    dirty_epoch: u64,
    position: u64,
    input_hash: InputHash,
    submitted_ns: Option<u64>,
    finished_ns: Option<u64>,
    /// Its attempts; the last one is the current attempt.
    attempts: Vec<Attempt>,
}

impl OpenTask {
    fn attempt_count(&self) -> u32 {
        self.attempts
            .iter()
            .map(|a| a.attempt + 1)
            .max()
            .unwrap_or(0)
    }

    fn current(&self) -> Option<u32> {
        self.attempts.last().map(|a| a.attempt)
    }

    /// The attempt numbered `n`, created if new. A number above the current
    /// attempt's makes a new current attempt.
    fn attempt_mut(&mut self, n: u32) -> &mut Attempt {
        let index = match self.attempts.iter().rposition(|a| a.attempt == n) {
            Some(index) => index,
            None => {
                let at = self.attempts.partition_point(|a| a.attempt < n);
                self.attempts.insert(at, Attempt::new(n));
                at
            }
        };
        &mut self.attempts[index]
    }

    fn live(&self) -> (u64, u64) {
        match self.state {
            TaskState::Queued => (1, 0),
            TaskState::Running => (0, 1),
            _ => (0, 0),
        }
    }
}

/// A task that ended and does not fit a block, waiting for its commit.
#[derive(Debug)]
struct Ended {
    identity: TaskIdentity,
    task: OpenTask,
}

/// A terminal record already in the store (for tasks a resumed master
/// submits again).
#[derive(Debug, Clone, Copy)]
struct Terminal {
    seq: u64,
    in_block: bool,
}

pub(crate) struct Writer {
    conn: Connection,
    dir: PathBuf,
    root: PathBuf,
    run_name: String,
    shared: Arc<Shared>,
    cache: Option<Connection>,
    open: HashMap<TaskIdentity, OpenTask, IdentityHash>,
    terminal: HashMap<TaskIdentity, Terminal, IdentityHash>,
    /// Open tasks to write with the next commit (their attempt has a job id).
    urgent: Vec<TaskIdentity>,
    /// Ended tasks that are rows.
    ended: Vec<Ended>,
    /// Ended tasks that fit a block: full blocks, and the one being filled.
    full_blocks: Vec<Builder>,
    block: Builder,
    kinds: HashMap<u64, Vec<(String, u32)>>,
    /// The kind of the last submitted task: a map's tasks are all one kind.
    last_kind: Option<(u64, String, u32)>,
    new_kinds: Vec<(u32, String, u64)>,
    next_kind: u32,
    next_seq: u64,
    /// Old records of tasks submitted again: deleted (rows) or marked
    /// superseded (block entries) with the next commit.
    replaced: Vec<Terminal>,
    cache_pending: Vec<CacheEntry>,
    live_queued: u64,
    live_running: u64,
    expected: Option<Option<u64>>,
    /// Records since the last commit.
    pending: usize,
    pending_since: Option<Instant>,
    epoch: u64,
    last_sweep: Instant,
    /// An open task changed since the last sweep.
    changed_since_sweep: bool,
    /// Set after a failed commit: the next one writes every open task.
    write_all_open: bool,
    last_failure: Option<Instant>,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        dir: PathBuf,
        root: PathBuf,
        run_name: String,
        shared: Arc<Shared>,
    ) -> Result<Writer, StoreError> {
        let mut writer = Writer {
            conn,
            dir,
            root,
            run_name,
            shared,
            cache: None,
            open: HashMap::default(),
            terminal: HashMap::default(),
            urgent: Vec::new(),
            ended: Vec::new(),
            full_blocks: Vec::new(),
            block: Builder::default(),
            kinds: HashMap::new(),
            last_kind: None,
            new_kinds: Vec::new(),
            next_kind: 1,
            next_seq: 1,
            replaced: Vec::new(),
            cache_pending: Vec::new(),
            live_queued: 0,
            live_running: 0,
            expected: None,
            pending: 0,
            pending_since: None,
            epoch: 0,
            last_sweep: Instant::now(),
            changed_since_sweep: false,
            write_all_open: false,
            last_failure: None,
        };
        writer
            .load()
            .map_err(|e| StoreError::sqlite(&writer.dir, e))?;
        Ok(writer)
    }

    /// Loads what a resumed run needs: kinds, the next sequence number,
    /// unfinished tasks and the identities of finished ones.
    fn load(&mut self) -> rusqlite::Result<()> {
        {
            let mut stmt = self
                .conn
                .prepare("SELECT id, name, fingerprint FROM kinds")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let id: u32 = row.get(0)?;
                let name: String = row.get(1)?;
                let fingerprint = row.get::<_, i64>(2)? as u64;
                self.kinds.entry(fingerprint).or_default().push((name, id));
                self.next_kind = self.next_kind.max(id + 1);
            }
        }
        let max_row: Option<i64> = self
            .conn
            .query_row("SELECT max(seq) FROM tasks", [], |r| r.get(0))?;
        let max_block: Option<i64> = self.conn.query_row(
            "SELECT max(first_seq + count - 1) FROM task_blocks",
            [],
            |r| r.get(0),
        )?;
        self.next_seq = max_row.unwrap_or(0).max(max_block.unwrap_or(0)) as u64 + 1;

        // Unfinished tasks, with their attempts.
        let mut by_seq: HashMap<u64, TaskIdentity> = HashMap::new();
        {
            let mut stmt = self.conn.prepare(
                "SELECT seq, identity, kind, position, input_hash, state, submitted_ns FROM tasks
                 WHERE state IN ('queued', 'running')",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let seq = row.get::<_, i64>(0)? as u64;
                let identity = TaskIdentity(row.get(1)?);
                let task = OpenTask {
                    seq: Some(seq),
                    kind: row.get(2)?,
                    state: TaskState::parse(&row.get::<_, String>(5)?).unwrap_or(TaskState::Queued),
                    dirty: false,
                    dirty_epoch: 0,
                    position: row.get::<_, i64>(3)? as u64,
                    input_hash: InputHash(row.get(4)?),
                    submitted_ns: row.get::<_, Option<i64>>(6)?.map(|n| n as u64),
                    finished_ns: None,
                    attempts: Vec::new(),
                };
                by_seq.insert(seq, identity);
                self.open.insert(identity, task);
            }
        }
        if !self.open.is_empty() {
            let mut stmt = self.conn.prepare(
                "SELECT a.task, a.attempt, a.state, a.job_id, a.host, a.queued_ns, a.started_ns, a.finished_ns,
                        a.wall_ns, a.cpu_ns, a.peak_rss_kib, a.failure_kind, a.message, a.location, a.stderr_tail
                 FROM attempts a JOIN tasks t ON a.task = t.seq WHERE t.state IN ('queued', 'running')
                 ORDER BY a.id",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let seq = row.get::<_, i64>(0)? as u64;
                let Some(task) = by_seq.get(&seq).and_then(|id| self.open.get_mut(id)) else {
                    continue;
                };
                let opt = |i: usize| -> rusqlite::Result<Option<u64>> {
                    Ok(row.get::<_, Option<i64>>(i)?.map(|v| v as u64))
                };
                let failure = match row.get::<_, Option<String>>(11)? {
                    Some(kind) => Some(Box::new(StoredFailure {
                        kind: FailureKind::parse(&kind),
                        message: row.get::<_, Option<String>>(12)?.unwrap_or_default(),
                        location: row.get(13)?,
                        stderr_tail: row.get::<_, Option<String>>(14)?.unwrap_or_default(),
                    })),
                    None => None,
                };
                task.attempts.push(Attempt {
                    attempt: row.get(1)?,
                    state: AttemptState::parse(&row.get::<_, String>(2)?)
                        .unwrap_or(AttemptState::Queued),
                    dirty: false,
                    job_id: row.get(3)?,
                    host: row.get(4)?,
                    queued_ns: opt(5)?,
                    started_ns: opt(6)?,
                    finished_ns: opt(7)?,
                    wall_ns: opt(8)?,
                    cpu_ns: opt(9)?,
                    peak_rss_kib: opt(10)?,
                    value: None,
                    failure,
                });
            }
        }
        // Tasks of the previous session count as queued or running until
        // the master settles them.
        for task in self.open.values() {
            let (q, r) = task.live();
            self.live_queued += q;
            self.live_running += r;
        }

        // Identities of finished tasks, in case the master submits one again.
        {
            let mut stmt = self.conn.prepare(
                "SELECT seq, identity FROM tasks WHERE state IN ('done', 'failed', 'cancelled')",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let seq = row.get::<_, i64>(0)? as u64;
                self.terminal.insert(
                    TaskIdentity(row.get(1)?),
                    Terminal {
                        seq,
                        in_block: false,
                    },
                );
            }
        }
        Ok(())
    }

    /// Identities of the tasks in blocks, for tasks submitted again. Done
    /// by the writer thread when it starts, while the master loads the
    /// finished tasks.
    fn load_blocks(&mut self) -> rusqlite::Result<()> {
        let superseded = crate::read::superseded(&self.conn)?;
        let mut stmt = self
            .conn
            .prepare("SELECT first_seq, data FROM task_blocks")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let first = row.get::<_, i64>(0)? as u64;
            let data = row.get_ref(1)?.as_blob()?;
            let Ok(tasks) = block::decode(data) else {
                continue;
            };
            self.terminal.reserve(tasks.len());
            for (i, task) in tasks.iter().enumerate() {
                let seq = first + i as u64;
                if superseded.is_empty() || !superseded.contains(&seq) {
                    self.terminal.insert(
                        TaskIdentity(task.identity),
                        Terminal {
                            seq,
                            in_block: true,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// The writer's loop; returns when the store is closed or dropped.
    pub(crate) fn run(mut self, rx: mpsc::Receiver<Msg>) {
        if let Err(error) = self.load_blocks() {
            self.shared
                .set_error(Some(StoreError::sqlite(&self.dir, error)));
        }
        loop {
            let msg = match self.next_wakeup() {
                Some(timeout) => match rx.recv_timeout(timeout) {
                    Ok(msg) => Some(msg),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                },
                None => match rx.recv() {
                    Ok(msg) => Some(msg),
                    Err(_) => break,
                },
            };
            if let Some(msg) = msg {
                if self.handle(msg) {
                    return;
                }
                // Take whatever else is waiting, up to a transaction's worth.
                while self.pending < COMMIT_RECORDS {
                    match rx.try_recv() {
                        Ok(msg) => {
                            if self.handle(msg) {
                                return;
                            }
                        }
                        Err(_) => break,
                    }
                }
            }
            if self.commit_due() {
                let _ = self.commit(false);
            }
        }
        // Every handle is gone without `close`: keep what there is.
        if let Err(error) = self.close() {
            tracing::error!(%error, "run store: could not write the last records");
        }
    }

    fn next_sweep(&self) -> Option<Instant> {
        self.changed_since_sweep
            .then(|| self.last_sweep + SWEEP_INTERVAL)
    }

    fn next_wakeup(&self) -> Option<Duration> {
        let mut wake = self.next_sweep();
        if let Some(since) = self.pending_since {
            let mut at = since + COMMIT_INTERVAL;
            if let Some(failed) = self.last_failure {
                at = at.max(failed + RETRY_INTERVAL);
            }
            wake = Some(wake.map_or(at, |w| w.min(at)));
        }
        wake.map(|at| at.saturating_duration_since(Instant::now()))
    }

    fn commit_due(&self) -> bool {
        let now = Instant::now();
        if self
            .last_failure
            .is_some_and(|at| now < at + RETRY_INTERVAL)
        {
            return false;
        }
        let pending = self
            .pending_since
            .is_some_and(|since| self.pending >= COMMIT_RECORDS || now >= since + COMMIT_INTERVAL);
        pending || self.next_sweep().is_some_and(|at| at <= now)
    }

    fn touch(&mut self, records: usize) {
        self.pending += records;
        if self.pending_since.is_none() {
            self.pending_since = Some(Instant::now());
        }
    }

    /// Handles one message; true when the writer is done.
    fn handle(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Batch(mut batch) => {
                self.touch(batch.len());
                self.open.reserve(batch.submitted.len());
                for task in batch.submitted.drain(..) {
                    self.submitted(task);
                }
                for event in batch.queued.drain(..) {
                    self.attempt_event(event, false);
                }
                for event in batch.started.drain(..) {
                    self.attempt_event(event, true);
                }
                for task in batch.finished.drain(..) {
                    self.finished(task);
                }
                for (task, finished) in batch.completed.drain(..) {
                    self.completed(task, finished);
                }
                let mut spare = self.shared.spare.lock().unwrap_or_else(|e| e.into_inner());
                if spare.len() < SPARE_BATCHES {
                    spare.push(batch);
                }
            }
            Msg::Submitted(tasks) => {
                self.touch(tasks.len());
                self.open.reserve(tasks.len());
                for task in tasks {
                    self.submitted(task);
                }
            }
            Msg::Queued(events) => {
                self.touch(events.len());
                for event in events {
                    self.attempt_event(event, false);
                }
            }
            Msg::Started(events) => {
                self.touch(events.len());
                for event in events {
                    self.attempt_event(event, true);
                }
            }
            Msg::Finished(tasks) => {
                self.touch(tasks.len());
                for task in tasks {
                    self.finished(task);
                }
            }
            Msg::CachePut(entries) => {
                self.touch(entries.len());
                self.cache_pending.extend(entries);
            }
            Msg::Expected(expected) => {
                self.touch(1);
                self.expected = Some(expected);
            }
            Msg::Flush(reply) => {
                let _ = reply.send(self.commit(false));
            }
            Msg::Close(reply) => {
                let _ = reply.send(self.close());
                return true;
            }
            #[cfg(feature = "fixture")]
            Msg::Abandon(reply) => {
                let _ = reply.send(self.commit(false));
                return true;
            }
        }
        false
    }

    fn kind_id(&mut self, name: &str, fingerprint: u64) -> u32 {
        if let Some((f, n, id)) = &self.last_kind
            && *f == fingerprint
            && n == name
        {
            return *id;
        }
        let id = self.kind_id_slow(name, fingerprint);
        self.last_kind = Some((fingerprint, name.to_string(), id));
        id
    }

    fn kind_id_slow(&mut self, name: &str, fingerprint: u64) -> u32 {
        let entries = self.kinds.entry(fingerprint).or_default();
        if let Some((_, id)) = entries.iter().find(|(n, _)| n == name) {
            return *id;
        }
        let id = self.next_kind;
        self.next_kind += 1;
        entries.push((name.to_string(), id));
        self.new_kinds.push((id, name.to_string(), fingerprint));
        id
    }

    fn submitted(&mut self, task: SubmittedTask) {
        if self.open.contains_key(&task.identity) {
            // Submitted again while unfinished (a resumed master, or the
            // same task twice): one record.
            return;
        }
        let open_task = self.new_task(&task);
        self.open.insert(task.identity, open_task);
        self.live_queued += 1;
    }

    /// The record of a task just submitted; one that was finished before
    /// (a resumed master running it again) is superseded.
    fn new_task(&mut self, task: &SubmittedTask) -> OpenTask {
        if !self.terminal.is_empty()
            && let Some(old) = self.terminal.remove(&task.identity)
        {
            self.replaced.push(old);
        }
        self.changed_since_sweep = true;
        OpenTask {
            seq: None,
            kind: self.kind_id(&task.task, task.fingerprint),
            state: TaskState::Queued,
            dirty: true,
            dirty_epoch: self.epoch,
            position: task.position,
            input_hash: task.input_hash,
            submitted_ns: Some(task.submitted_ns),
            finished_ns: None,
            attempts: Vec::new(),
        }
    }

    /// A task submitted and finished in one record. A tiny one done on its
    /// first attempt goes straight into the block being filled, never
    /// becoming an open task; anything else takes the general way.
    fn completed(&mut self, task: SubmittedTask, finished: FinishedTask) {
        let small_value = match &finished.outcome {
            AttemptOutcome::Value(v) | AttemptOutcome::Cached(v) => v.len() <= BLOCK_VALUE_MAX,
            _ => false,
        };
        let open = !self.open.is_empty() && self.open.contains_key(&task.identity);
        if !small_value || finished.attempt != 0 || open {
            self.submitted(task);
            self.finished(finished);
            return;
        }
        let open_task = self.new_task(&task);
        self.push_block(task.identity, open_task, finished);
    }

    fn ignore(&self, identity: TaskIdentity) {
        let before = self.shared.ignored.fetch_add(1, Ordering::Relaxed);
        if before < 3 {
            tracing::warn!(
                %identity,
                "run store: a record about a task that is not open (never submitted, or already finished) was ignored"
            );
        }
    }

    fn set_state(&mut self, identity: TaskIdentity, state: TaskState) {
        let Some(task) = self.open.get_mut(&identity) else {
            return;
        };
        let (q, r) = task.live();
        task.state = state;
        let (q2, r2) = task.live();
        self.live_queued = (self.live_queued + q2).saturating_sub(q);
        self.live_running = (self.live_running + r2).saturating_sub(r);
    }

    fn mark_dirty(&mut self, identity: TaskIdentity, urgent: bool) {
        if let Some(task) = self.open.get_mut(&identity) {
            if !task.dirty {
                task.dirty = true;
                task.dirty_epoch = self.epoch;
            }
            self.changed_since_sweep = true;
            if urgent {
                self.urgent.push(identity);
            }
        }
    }

    fn attempt_event(&mut self, event: AttemptEvent, started: bool) {
        let Some(task) = self.open.get_mut(&event.identity) else {
            self.ignore(event.identity);
            return;
        };
        let is_current = task.current().is_none_or(|c| event.attempt >= c);
        let attempt = task.attempt_mut(event.attempt);
        attempt.dirty = true;
        if started {
            attempt.started_ns = Some(event.at_ns);
            if !attempt.state.is_over() {
                attempt.state = AttemptState::Running;
            }
        } else {
            attempt.queued_ns = Some(event.at_ns);
        }
        let urgent = event.job_id.is_some();
        if event.job_id.is_some() {
            attempt.job_id = event.job_id;
        }
        if event.host.is_some() {
            attempt.host = event.host;
        }
        // A job id can arrive after the job was seen running (HTCondor's
        // log is read while condor_submit returns): that is no step back.
        let already_running = !started && attempt.state != AttemptState::Queued;
        if is_current && !already_running {
            let state = if started {
                TaskState::Running
            } else {
                TaskState::Queued
            };
            self.set_state(event.identity, state);
        }
        self.mark_dirty(event.identity, urgent);
    }

    fn finished(&mut self, finished: FinishedTask) {
        let identity = finished.identity;
        let Some(task) = self.open.get_mut(&identity) else {
            self.ignore(identity);
            return;
        };
        // The common case of tiny tasks: done on the first attempt, small
        // value, never written: straight into the block being filled.
        let small_value = match &finished.outcome {
            AttemptOutcome::Value(v) | AttemptOutcome::Cached(v) => v.len() <= BLOCK_VALUE_MAX,
            _ => false,
        };
        if small_value
            && finished.attempt == 0
            && task.seq.is_none()
            && task.attempts.iter().all(|a| a.attempt == 0)
        {
            let task = self.open.remove(&identity).expect("found above");
            let (q, r) = task.live();
            self.live_queued -= q;
            self.live_running -= r;
            self.push_block(identity, task, finished);
            return;
        }

        let failure = failure_of(&finished.outcome, &finished.stderr_tail).map(Box::new);
        let is_current = task.current().is_none_or(|c| finished.attempt >= c);
        let attempt = task.attempt_mut(finished.attempt);
        attempt.dirty = true;
        attempt.finished_ns = Some(finished.finished_ns);
        let wall = finished.stats.wall_ns;
        if let Some(started) = finished.started_ns {
            attempt.started_ns = Some(started);
        } else if attempt.started_ns.is_none() {
            attempt.started_ns = Some(finished.finished_ns.saturating_sub(wall));
        }
        attempt.wall_ns = Some(wall);
        attempt.cpu_ns = finished.stats.cpu_ns;
        attempt.peak_rss_kib = Some(finished.stats.peak_rss_kib);
        if !finished.stats.host.is_empty() {
            attempt.host = Some(finished.stats.host);
        }
        let (attempt_state, task_state) = match finished.outcome {
            AttemptOutcome::Value(value) => {
                attempt.value = Some(value.into_vec());
                (AttemptState::Done, TaskState::Done)
            }
            AttemptOutcome::Cached(value) => {
                attempt.value = Some(value.into_vec());
                (AttemptState::Cached, TaskState::Done)
            }
            AttemptOutcome::Failed(_) | AttemptOutcome::Backend { .. } => {
                (AttemptState::Failed, TaskState::Failed)
            }
            AttemptOutcome::Lost { retried: true, .. } => (AttemptState::Lost, TaskState::Queued),
            AttemptOutcome::Lost { retried: false, .. } => (AttemptState::Lost, TaskState::Failed),
            AttemptOutcome::TimedOut { .. } => (AttemptState::TimedOut, TaskState::Failed),
            AttemptOutcome::Cancelled => (AttemptState::Cancelled, TaskState::Cancelled),
        };
        attempt.state = attempt_state;
        attempt.failure = failure;
        if !is_current {
            // A late event about an old attempt: history only.
            self.mark_dirty(identity, false);
            return;
        }
        self.set_state(identity, task_state);
        if task_state.is_terminal() {
            let mut task = self.open.remove(&identity).expect("found above");
            task.finished_ns = Some(finished.finished_ns);
            self.ended.push(Ended { identity, task });
        } else {
            self.mark_dirty(identity, false);
        }
    }

    fn push_block(&mut self, identity: TaskIdentity, task: OpenTask, finished: FinishedTask) {
        let earlier = task.attempts.first();
        let (value, cached) = match &finished.outcome {
            AttemptOutcome::Value(v) => (&v[..], false),
            AttemptOutcome::Cached(v) => (&v[..], true),
            _ => unreachable!("checked by the caller"),
        };
        let end = finished.finished_ns;
        let started = finished
            .started_ns
            .or_else(|| earlier.and_then(|a| a.started_ns))
            .unwrap_or_else(|| end.saturating_sub(finished.stats.wall_ns));
        let host = if finished.stats.host.is_empty() {
            earlier.and_then(|a| a.host.as_deref()).unwrap_or("")
        } else {
            &finished.stats.host
        };
        let mut record = BlockTask {
            identity: identity.0,
            kind: task.kind,
            position: task.position,
            input_hash: task.input_hash.0,
            submitted: 0,
            started: 0,
            finished: 0,
            wall_ns: finished.stats.wall_ns,
            cpu_ns: finished.stats.cpu_ns,
            peak_rss_kib: finished.stats.peak_rss_kib,
            host,
            job_id: earlier.and_then(|a| a.job_id.as_deref()),
            cached,
            value,
        };
        self.block.push(
            &mut record,
            task.submitted_ns.unwrap_or(started),
            started,
            end,
        );
        if self.block.count >= BLOCK_MAX {
            self.full_blocks.push(std::mem::take(&mut self.block));
        }
    }

    /// Commits everything pending; with `everything`, also every unfinished
    /// task not yet written. Errors are also left in the shared slot.
    fn commit(&mut self, everything: bool) -> Result<(), StoreError> {
        let everything = everything || self.write_all_open;
        let result = self
            .try_commit(everything)
            .and_then(|()| self.commit_cache());
        match &result {
            Ok(()) => {
                self.last_failure = None;
                self.write_all_open = false;
                if self.shared.failing.load(Ordering::Acquire) {
                    tracing::info!("run store: commits succeed again");
                    self.shared.set_error(None);
                }
            }
            Err(error) => {
                tracing::error!(%error, "run store: commit failed; will retry");
                self.last_failure = Some(Instant::now());
                self.write_all_open = true;
                self.shared.set_error(Some(error.clone()));
            }
        }
        result
    }

    fn try_commit(&mut self, everything: bool) -> Result<(), StoreError> {
        // Unfinished tasks to write now: with a job id, changed a sweep
        // period ago, or all of them.
        let now = Instant::now();
        let sweep = everything || now >= self.last_sweep + SWEEP_INTERVAL;
        let mut to_write: Vec<TaskIdentity> = Vec::new();
        if sweep {
            let epoch = self.epoch;
            for (identity, task) in &self.open {
                if task.dirty && (everything || task.dirty_epoch < epoch) {
                    to_write.push(*identity);
                }
            }
        }
        for identity in self.urgent.drain(..) {
            if self.open.get(&identity).is_some_and(|t| t.dirty) {
                to_write.push(identity);
            }
        }
        to_write.sort_unstable();
        to_write.dedup();
        let idle = to_write.is_empty()
            && self.ended.is_empty()
            && self.block.count == 0
            && self.full_blocks.is_empty()
            && self.new_kinds.is_empty()
            && self.replaced.is_empty()
            && self.expected.is_none()
            && self.pending == 0;
        if !idle {
            let dir = self.dir.clone();
            let sql = |e| StoreError::sqlite(&dir, e);
            self.conn.execute_batch("BEGIN IMMEDIATE").map_err(sql)?;
            if let Err(error) = self.write(&to_write) {
                let _ = self.conn.execute_batch("ROLLBACK");
                return Err(error);
            }
            if let Err(error) = self.conn.execute_batch("COMMIT") {
                let _ = self.conn.execute_batch("ROLLBACK");
                return Err(sql(error));
            }
        }

        // Committed: forget what is now on disk.
        for identity in &to_write {
            if let Some(task) = self.open.get_mut(identity) {
                task.dirty = false;
                for attempt in &mut task.attempts {
                    attempt.dirty = false;
                    attempt.value = None;
                }
            }
        }
        for ended in self.ended.drain(..) {
            if let Some(seq) = ended.task.seq
                && !self.terminal.is_empty()
            {
                self.terminal.insert(
                    ended.identity,
                    Terminal {
                        seq,
                        in_block: false,
                    },
                );
            }
        }
        self.full_blocks.clear();
        self.block.clear();
        self.new_kinds.clear();
        self.replaced.clear();
        self.expected = None;
        self.pending = 0;
        self.pending_since = None;
        if sweep {
            self.epoch += 1;
            self.last_sweep = now;
            self.changed_since_sweep = self.open.values().any(|t| t.dirty);
        }
        Ok(())
    }

    fn next_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// The body of a transaction.
    fn write(&mut self, to_write: &[TaskIdentity]) -> Result<(), StoreError> {
        let dir = self.dir.clone();
        let sql = |e| StoreError::sqlite(&dir, e);
        if !self.new_kinds.is_empty() {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO kinds (id, name, fingerprint) VALUES (?1, ?2, ?3)",
                )
                .map_err(sql)?;
            for (id, name, fingerprint) in &self.new_kinds {
                stmt.execute(params![id, name, *fingerprint as i64])
                    .map_err(sql)?;
            }
        }
        for old in &self.replaced {
            if old.in_block {
                self.conn
                    .prepare_cached("INSERT OR IGNORE INTO superseded (seq) VALUES (?1)")
                    .and_then(|mut s| s.execute([old.seq as i64]))
                    .map_err(sql)?;
            } else {
                self.conn
                    .prepare_cached("DELETE FROM tasks WHERE seq = ?1")
                    .and_then(|mut s| s.execute([old.seq as i64]))
                    .map_err(sql)?;
                self.conn
                    .prepare_cached("DELETE FROM attempts WHERE id >= ?1 AND id < ?2")
                    .and_then(|mut s| {
                        s.execute([
                            (old.seq << ATTEMPT_BITS) as i64,
                            ((old.seq + 1) << ATTEMPT_BITS) as i64,
                        ])
                    })
                    .map_err(sql)?;
            }
        }

        // Tasks that fit a block: blocks when there are enough, else rows.
        let in_blocks = self.full_blocks.len() * BLOCK_MAX + self.block.count;
        if in_blocks >= BLOCK_MIN {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "INSERT INTO task_blocks (first_seq, count, base_ns, first_finished_ns, last_finished_ns, data)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(sql)?;
            let current = (self.block.count > 0).then_some(&mut self.block);
            for block in self.full_blocks.iter_mut().chain(current) {
                let first_seq = self.next_seq;
                self.next_seq += block.count as u64;
                let (count, base, first, last) = (
                    block.count,
                    block.base_ns,
                    block.first_finished_ns,
                    block.last_finished_ns,
                );
                stmt.execute(params![
                    first_seq as i64,
                    count as i64,
                    base as i64,
                    first as i64,
                    last as i64,
                    block.bytes()
                ])
                .map_err(sql)?;
            }
        } else if in_blocks > 0 {
            let base = self.block.base_ns as i64;
            let bytes = self.block.bytes().to_vec();
            let tasks = block::decode(&bytes).map_err(|e| StoreError::Corrupt {
                path: dir.clone(),
                detail: format!("a block being written does not decode: {e}"),
            })?;
            for t in tasks {
                let seq = self.next_seq();
                let task = OpenTask {
                    seq: Some(seq),
                    kind: t.kind,
                    state: TaskState::Done,
                    dirty: true,
                    dirty_epoch: 0,
                    position: t.position,
                    input_hash: InputHash(t.input_hash),
                    submitted_ns: Some((base + t.submitted) as u64),
                    finished_ns: Some((base + t.finished) as u64),
                    attempts: vec![Attempt {
                        attempt: 0,
                        state: if t.cached {
                            AttemptState::Cached
                        } else {
                            AttemptState::Done
                        },
                        dirty: true,
                        job_id: t.job_id.map(str::to_string),
                        host: (!t.host.is_empty()).then(|| t.host.to_string()),
                        queued_ns: None,
                        started_ns: Some((base + t.started) as u64),
                        finished_ns: Some((base + t.finished) as u64),
                        wall_ns: Some(t.wall_ns),
                        cpu_ns: t.cpu_ns,
                        peak_rss_kib: Some(t.peak_rss_kib),
                        value: Some(t.value.to_vec()),
                        failure: None,
                    }],
                };
                write_task(&self.conn, &dir, &TaskIdentity(t.identity), seq, &task)?;
            }
        }

        for index in 0..self.ended.len() {
            let seq = match self.ended[index].task.seq {
                Some(seq) => seq,
                None => {
                    let seq = self.next_seq();
                    self.ended[index].task.seq = Some(seq);
                    seq
                }
            };
            let ended = &self.ended[index];
            write_task(&self.conn, &dir, &ended.identity, seq, &ended.task)?;
        }

        for identity in to_write {
            let seq = match self.open.get(identity).map(|t| t.seq) {
                None => continue,
                Some(Some(seq)) => seq,
                Some(None) => {
                    let seq = self.next_seq();
                    self.open.get_mut(identity).expect("found").seq = Some(seq);
                    seq
                }
            };
            write_task(&self.conn, &dir, identity, seq, &self.open[identity])?;
        }

        self.conn
            .prepare_cached("UPDATE run SET updated_ns = ?1, live_queued = ?2, live_running = ?3")
            .and_then(|mut s| {
                s.execute(params![
                    now_ns() as i64,
                    self.live_queued as i64,
                    self.live_running as i64
                ])
            })
            .map_err(sql)?;
        if let Some(expected) = self.expected {
            self.conn
                .execute(
                    "UPDATE run SET expected_tasks = ?1",
                    [expected.map(|n| n as i64)],
                )
                .map_err(sql)?;
        }
        Ok(())
    }

    fn commit_cache(&mut self) -> Result<(), StoreError> {
        if self.cache_pending.is_empty() {
            return Ok(());
        }
        let path = self.root.join(schema::CACHE_FILE);
        if self.cache.is_none() {
            self.cache = Some(schema::open_cache_writer(&path)?);
        }
        let conn = self.cache.as_ref().expect("just opened");
        let sql = |e| StoreError::sqlite(&path, e);
        conn.execute_batch("BEGIN IMMEDIATE").map_err(sql)?;
        let result = (|| -> Result<(), StoreError> {
            let mut stmt = conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO cache (fingerprint, input_hash, task, value, value_file, value_len, run, created_ns)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(sql)?;
            let now = now_ns() as i64;
            for entry in &self.cache_pending {
                let (inline, file) = if entry.value.len() >= INLINE_MAX {
                    let name = format!("{:016x}-{}.bin", entry.fingerprint, entry.input_hash);
                    write_file(&self.root.join("cache-values"), &name, &entry.value)?;
                    (None, Some(format!("cache-values/{name}")))
                } else {
                    (Some(&entry.value[..]), None)
                };
                stmt.execute(params![
                    entry.fingerprint as i64,
                    &entry.input_hash.0[..],
                    entry.task.as_ref(),
                    inline,
                    file,
                    entry.value.len() as i64,
                    self.run_name,
                    now
                ])
                .map_err(sql)?;
            }
            Ok(())
        })();
        match result.and_then(|()| conn.execute_batch("COMMIT").map_err(sql)) {
            Ok(()) => {
                self.cache_pending.clear();
                Ok(())
            }
            Err(error) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(error)
            }
        }
    }

    /// Writes everything, marks the run closed and folds the WAL into the
    /// database.
    fn close(&mut self) -> Result<(), StoreError> {
        self.commit(true)?;
        self.conn
            .execute(
                "UPDATE run SET closed_ns = ?1, updated_ns = ?1, master_pid = NULL",
                [now_ns() as i64],
            )
            .map_err(|e| StoreError::sqlite(&self.dir, e))?;
        // Best effort: readers may hold the WAL.
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .optional();
        Ok(())
    }
}

/// Writes (or rewrites) a task's row and its changed attempts.
fn write_task(
    conn: &Connection,
    dir: &Path,
    identity: &TaskIdentity,
    seq: u64,
    task: &OpenTask,
) -> Result<(), StoreError> {
    let sql = |e| StoreError::sqlite(dir, e);
    let mut stmt = conn
        .prepare_cached(
            "INSERT OR REPLACE INTO tasks (seq, identity, kind, position, input_hash, state, attempts, submitted_ns, finished_ns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .map_err(sql)?;
    stmt.execute(params![
        seq as i64,
        &identity.0[..],
        task.kind,
        task.position as i64,
        &task.input_hash.0[..],
        task.state.as_str(),
        task.attempt_count(),
        task.submitted_ns.map(|n| n as i64),
        task.finished_ns.map(|n| n as i64),
    ])
    .map_err(sql)?;
    let mut stmt = conn
        .prepare_cached(
            "INSERT OR REPLACE INTO attempts (id, task, attempt, state, job_id, host, queued_ns, started_ns, finished_ns,
                 wall_ns, cpu_ns, peak_rss_kib, value, value_file, value_len, failure_kind, message, location, stderr_tail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
        )
        .map_err(sql)?;
    for attempt in &task.attempts {
        if !attempt.dirty {
            continue;
        }
        let number = attempt.attempt.min((1 << ATTEMPT_BITS) - 1);
        let (inline, file) = match &attempt.value {
            Some(value) if value.len() >= INLINE_MAX => {
                let name = format!("{identity}.{number}.bin");
                write_file(&dir.join("outputs"), &name, value)?;
                (None, Some(format!("outputs/{name}")))
            }
            Some(value) => (Some(&value[..]), None),
            None => (None, None),
        };
        let failure = attempt.failure.as_deref();
        let opt = |v: Option<u64>| v.map(|n| n as i64);
        stmt.execute(params![
            ((seq << ATTEMPT_BITS) | u64::from(number)) as i64,
            seq as i64,
            number,
            attempt.state.as_str(),
            attempt.job_id,
            attempt.host,
            opt(attempt.queued_ns),
            opt(attempt.started_ns),
            opt(attempt.finished_ns),
            opt(attempt.wall_ns),
            opt(attempt.cpu_ns),
            opt(attempt.peak_rss_kib),
            inline,
            file,
            attempt.value.as_ref().map(|v| v.len() as i64),
            failure.map(|f| f.kind.as_str()),
            failure.map(|f| f.message.as_str()),
            failure.and_then(|f| f.location.as_deref()),
            failure.map(|f| f.stderr_tail.as_str()),
        ])
        .map_err(sql)?;
    }
    Ok(())
}

/// Writes a file atomically (temporary name, then rename).
fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    let path = dir.join(name);
    let temporary = dir.join(format!(".{name}.tmp"));
    let result =
        std::fs::write(&temporary, bytes).and_then(|()| std::fs::rename(&temporary, &path));
    if let Err(error) = result {
        let _ = std::fs::remove_file(&temporary);
        return Err(StoreError::io(&path, error));
    }
    Ok(())
}
