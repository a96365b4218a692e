//! Reading run stores: [`RunReader`] (read-only, also while a master
//! writes), [`list_runs`] and [`remove_run`] for the `pymw` command.

use crate::block;
use crate::error::StoreError;
use crate::hash::{IdentityHash, InputHash, TaskIdentity};
use crate::record::{
    AttemptState, FailureKind, InFlight, StoredFailure, StoredOutcome, StoredValue, TaskState,
    now_ns,
};
use crate::schema;
use crate::store::lock_holder;
use crate::writer::ATTEMPT_BITS;
use pymw_core::wire::WorkerStats;
use rusqlite::{Connection, Row, params};
use serde::{Serialize, Serializer};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

fn hex_u64<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&format_args!("{value:016x}"))
}

/// Sequence numbers of block entries replaced by a later record.
pub(crate) fn superseded(conn: &Connection) -> rusqlite::Result<HashSet<u64>> {
    let mut stmt = conn.prepare_cached("SELECT seq FROM superseded")?;
    let rows = stmt.query_map([], |row| row.get::<_, i64>(0).map(|s| s as u64))?;
    rows.collect()
}

fn opt_u64(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<u64>> {
    Ok(row.get::<_, Option<i64>>(index)?.map(|v| v as u64))
}

fn corrupt(dir: &Path, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        path: dir.to_path_buf(),
        detail: format!("a task block does not decode: {error}"),
    }
}

fn failure_from(
    kind: Option<String>,
    message: Option<String>,
    location: Option<String>,
    stderr_tail: Option<String>,
) -> Option<StoredFailure> {
    kind.map(|kind| StoredFailure {
        kind: FailureKind::parse(&kind),
        message: message.unwrap_or_default(),
        location,
        stderr_tail: stderr_tail.unwrap_or_default(),
    })
}

/// See [`crate::RunStore::load_finished`].
pub(crate) fn load_finished(
    conn: &Connection,
    dir: &Path,
) -> Result<HashMap<TaskIdentity, StoredOutcome, IdentityHash>, StoreError> {
    let mut out = HashMap::with_hasher(IdentityHash);
    for_each_finished(
        conn,
        dir,
        &mut out,
        |out, count| out.reserve(count),
        |out, identity, outcome| {
            out.insert(identity, outcome);
        },
    )?;
    Ok(out)
}

/// See [`crate::RunStore::for_each_finished`].
pub(crate) fn for_each_finished<S>(
    conn: &Connection,
    dir: &Path,
    state: &mut S,
    count: impl FnOnce(&mut S, usize),
    mut each: impl FnMut(&mut S, TaskIdentity, StoredOutcome),
) -> Result<(), StoreError> {
    let sql = |e| StoreError::sqlite(dir, e);
    conn.execute_batch("BEGIN").map_err(sql)?;
    let result = (|| {
        let rows: i64 = conn
            .query_row(
                "SELECT count(*) FROM tasks WHERE state IN ('done', 'failed')",
                [],
                |r| r.get(0),
            )
            .map_err(sql)?;
        let in_blocks: Option<i64> = conn
            .query_row("SELECT sum(count) FROM task_blocks", [], |r| r.get(0))
            .map_err(sql)?;
        count(state, (rows + in_blocks.unwrap_or(0)) as usize);
        let mut stmt = conn
            .prepare(&format!(
                "SELECT t.identity, t.state, t.attempts, a.host, a.value, a.value_file, a.wall_ns, a.cpu_ns,
                        a.peak_rss_kib, a.failure_kind, a.message, a.location, a.stderr_tail
                 FROM tasks t LEFT JOIN attempts a ON a.id = (t.seq << {ATTEMPT_BITS}) + t.attempts - 1
                 WHERE t.state IN ('done', 'failed')"
            ))
            .map_err(sql)?;
        let mut query = stmt.query([]).map_err(sql)?;
        while let Some(row) = query.next().map_err(sql)? {
            let read = || -> rusqlite::Result<(TaskIdentity, StoredOutcome)> {
                let identity = TaskIdentity(row.get(0)?);
                let state: String = row.get(1)?;
                let attempts: u32 = row.get(2)?;
                let host: String = row.get::<_, Option<String>>(3)?.unwrap_or_default();
                let outcome = if state == "done" {
                    let value = match (
                        row.get::<_, Option<Vec<u8>>>(4)?,
                        row.get::<_, Option<String>>(5)?,
                    ) {
                        (_, Some(file)) => StoredValue::File(dir.join(file)),
                        (Some(bytes), None) => StoredValue::Inline(bytes),
                        (None, None) => StoredValue::Inline(Vec::new()),
                    };
                    StoredOutcome::Done {
                        value,
                        stats: WorkerStats {
                            wall_ns: opt_u64(row, 6)?.unwrap_or(0),
                            cpu_ns: opt_u64(row, 7)?,
                            peak_rss_kib: opt_u64(row, 8)?.unwrap_or(0),
                            host,
                        },
                    }
                } else {
                    let failure =
                        failure_from(row.get(9)?, row.get(10)?, row.get(11)?, row.get(12)?)
                            .unwrap_or(StoredFailure {
                                kind: FailureKind::Other,
                                message: "no attempt recorded".to_string(),
                                location: None,
                                stderr_tail: String::new(),
                            });
                    StoredOutcome::Failed {
                        failure,
                        attempts,
                        host,
                    }
                };
                Ok((identity, outcome))
            };
            let (identity, outcome) = read().map_err(sql)?;
            each(state, identity, outcome);
        }
        for_each_block_task(conn, dir, |task| {
            each(
                state,
                TaskIdentity(task.identity),
                StoredOutcome::Done {
                    value: StoredValue::Inline(task.value.to_vec()),
                    stats: WorkerStats {
                        wall_ns: task.wall_ns,
                        cpu_ns: task.cpu_ns,
                        peak_rss_kib: task.peak_rss_kib,
                        host: task.host.to_string(),
                    },
                },
            );
        })?;
        Ok(())
    })();
    let _ = conn.execute_batch("COMMIT");
    result
}

/// Finished results of a task recorded by an earlier build: the task of
/// that name in the current binary has another fingerprint (its types or
/// its code changed), so a resumed run does not reuse them and runs the
/// task again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaleResults {
    /// The task's name.
    pub task: String,
    /// How many finished results (values and failures) it has under other
    /// fingerprints.
    pub results: u64,
}

/// See [`crate::RunStore::stale_results`]. Decodes blocks only when some
/// task has results under another fingerprint.
pub(crate) fn stale_results(
    conn: &Connection,
    dir: &Path,
    current: &[(String, u64)],
) -> Result<Vec<StaleResults>, StoreError> {
    let sql = |e| StoreError::sqlite(dir, e);
    let current: HashMap<&str, u64> = current.iter().map(|(n, f)| (n.as_str(), *f)).collect();
    let stale: HashMap<u32, String> = {
        let mut stmt = conn
            .prepare_cached("SELECT id, name, fingerprint FROM kinds")
            .map_err(sql)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, u32>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)? as u64,
                ))
            })
            .map_err(sql)?;
        let mut stale = HashMap::new();
        for row in rows {
            let (id, name, fingerprint) = row.map_err(sql)?;
            if current
                .get(name.as_str())
                .is_some_and(|&now| now != fingerprint)
            {
                stale.insert(id, name);
            }
        }
        stale
    };
    if stale.is_empty() {
        return Ok(Vec::new());
    }
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    let mut stmt = conn
        .prepare_cached(
            "SELECT kind, count(*) FROM tasks WHERE state IN ('done', 'failed') GROUP BY kind",
        )
        .map_err(sql)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, u32>(0)?, r.get::<_, i64>(1)? as u64))
        })
        .map_err(sql)?;
    for row in rows {
        let (kind, n) = row.map_err(sql)?;
        if let Some(name) = stale.get(&kind) {
            *counts.entry(name.clone()).or_default() += n;
        }
    }
    for_each_block_task(conn, dir, |task| {
        if let Some(name) = stale.get(&task.kind) {
            *counts.entry(name.clone()).or_default() += 1;
        }
    })?;
    Ok(counts
        .into_iter()
        .filter(|&(_, results)| results > 0)
        .map(|(task, results)| StaleResults { task, results })
        .collect())
}

/// Calls `f` with every task packed in a block that has not been superseded
/// by a later record of the same task.
fn for_each_block_task(
    conn: &Connection,
    dir: &Path,
    mut f: impl FnMut(&block::BlockTask<'_>),
) -> Result<(), StoreError> {
    let sql = |e| StoreError::sqlite(dir, e);
    let superseded = superseded(conn).map_err(sql)?;
    let mut stmt = conn
        .prepare("SELECT first_seq, data FROM task_blocks ORDER BY id")
        .map_err(sql)?;
    let mut query = stmt.query([]).map_err(sql)?;
    while let Some(row) = query.next().map_err(sql)? {
        let first = row.get::<_, i64>(0).map_err(sql)? as u64;
        let data = row.get_ref(1).and_then(|v| Ok(v.as_blob()?)).map_err(sql)?;
        let tasks = block::decode(data).map_err(|e| corrupt(dir, e))?;
        for (i, task) in tasks.iter().enumerate() {
            if superseded.is_empty() || !superseded.contains(&(first + i as u64)) {
                f(task);
            }
        }
    }
    Ok(())
}

/// See [`crate::RunStore::in_flight`].
pub(crate) fn in_flight(conn: &Connection, dir: &Path) -> Result<Vec<InFlight>, StoreError> {
    let sql = |e| StoreError::sqlite(dir, e);
    let mut stmt = conn
        .prepare(
            "SELECT t.identity, t.position, k.name, a.attempt, a.state, a.job_id, a.host
             FROM attempts a JOIN tasks t ON a.task = t.seq JOIN kinds k ON k.id = t.kind
             WHERE a.state IN ('queued', 'running') AND t.state IN ('queued', 'running')
             ORDER BY a.id",
        )
        .map_err(sql)?;
    let rows = stmt
        .query_map([], |row| {
            Ok(InFlight {
                identity: TaskIdentity(row.get(0)?),
                position: row.get::<_, i64>(1)? as u64,
                task: row.get(2)?,
                attempt: row.get(3)?,
                state: AttemptState::parse(&row.get::<_, String>(4)?)
                    .unwrap_or(AttemptState::Queued),
                job_id: row.get(5)?,
                host: row.get(6)?,
            })
        })
        .map_err(sql)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql)
}

/// A task as the reader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskRecord {
    /// Its sequence number in the store (order of first write).
    pub seq: u64,
    /// Its identity.
    pub identity: TaskIdentity,
    /// The task's name.
    pub task: String,
    /// The task's fingerprint.
    #[serde(serialize_with = "hex_u64")]
    pub fingerprint: u64,
    /// Its position in its map or submission sequence.
    pub position: u64,
    /// The hash of its input.
    pub input_hash: InputHash,
    /// Its state.
    pub state: TaskState,
    /// Attempts made (the last attempt's number + 1).
    pub attempts: u32,
    /// When it was submitted.
    pub submitted_ns: Option<u64>,
    /// When it finished.
    pub finished_ns: Option<u64>,
}

/// An attempt as the reader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptRecord {
    /// The attempt's number (0 first).
    pub attempt: u32,
    /// Its state.
    pub state: AttemptState,
    /// The engine's id for it.
    pub job_id: Option<String>,
    /// Where it ran.
    pub host: Option<String>,
    /// When it was handed to the engine.
    pub queued_ns: Option<u64>,
    /// When it started.
    pub started_ns: Option<u64>,
    /// When it ended.
    pub finished_ns: Option<u64>,
    /// Wall time on the worker.
    pub wall_ns: Option<u64>,
    /// CPU time on the worker.
    pub cpu_ns: Option<u64>,
    /// Peak RSS of the worker, KiB.
    pub peak_rss_kib: Option<u64>,
    /// Length of its value in bytes.
    pub value_len: Option<u64>,
    /// The file of a large value, relative to the run's directory.
    pub value_file: Option<String>,
    /// Why it failed.
    pub failure: Option<StoredFailure>,
    /// The value itself (only from [`RunReader::find`]).
    #[serde(skip)]
    pub value: Option<StoredValue>,
}

/// Everything about one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskDetail {
    /// The task.
    #[serde(flatten)]
    pub task: TaskRecord,
    /// Its attempts, first to last.
    pub attempt_list: Vec<AttemptRecord>,
}

/// The run's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunInfo {
    /// The run's name.
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Schema version of its database.
    pub schema_version: i64,
    /// The master's binary.
    pub binary_path: Option<String>,
    /// The binary's tasks: (name, fingerprint as 16 hex digits).
    pub binary_tasks: Vec<(String, String)>,
    /// The backend.
    pub backend: Option<String>,
    /// When the run was created.
    pub created_ns: u64,
    /// Last commit.
    pub updated_ns: u64,
    /// When its last master closed it; `None` while open or after a crash.
    pub closed_ns: Option<u64>,
    /// How many times a master opened it.
    pub sessions: u64,
    /// Who has it open now ("pid N on HOST"), if anyone.
    pub master: Option<String>,
    /// The total the master announced.
    pub expected_tasks: Option<u64>,
    /// Running, finished, stopped or interrupted.
    pub state: RunState,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// A master has it open.
    Running,
    /// Closed with nothing left to run.
    Finished,
    /// Closed by its master with tasks unfinished (cancelled or dropped).
    Stopped,
    /// Its master died without closing it: resume it.
    Interrupted,
}

impl RunState {
    /// "running", "finished", ...
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Finished => "finished",
            RunState::Stopped => "stopped",
            RunState::Interrupted => "interrupted",
        }
    }
}

/// How many tasks are where.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Waiting to run.
    pub queued: u64,
    /// Running.
    pub running: u64,
    /// Finished with a value.
    pub done: u64,
    /// Finished without one.
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
}

impl Counts {
    /// Done, failed or cancelled.
    pub fn finished(&self) -> u64 {
        self.done + self.failed + self.cancelled
    }
    /// Everything.
    pub fn total(&self) -> u64 {
        self.finished() + self.queued + self.running
    }
}

/// A run opened for reading.
#[derive(Debug)]
pub struct RunReader {
    conn: Connection,
    dir: PathBuf,
    name: String,
}

impl RunReader {
    /// Opens run `name` under `root` read-only.
    pub fn open(root: impl AsRef<Path>, name: &str) -> Result<RunReader, StoreError> {
        let root = root.as_ref();
        let dir = root.join(name);
        if !crate::store::valid_run_name(name) || !dir.join(schema::DB_FILE).exists() {
            return Err(StoreError::NotFound {
                root: root.to_path_buf(),
                name: name.to_string(),
            });
        }
        RunReader::open_dir(&dir)
    }

    /// Opens the run in `dir` read-only.
    pub fn open_dir(dir: &Path) -> Result<RunReader, StoreError> {
        let db = dir.join(schema::DB_FILE);
        let conn = schema::open_reader(&db)?;
        if schema::is_unborn(&conn, &db)? {
            return Err(StoreError::Unborn {
                dir: dir.to_path_buf(),
            });
        }
        schema::check(&conn, &db)?;
        let name = dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        Ok(RunReader {
            conn,
            dir: dir.to_path_buf(),
            name,
        })
    }

    /// The run's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |e| StoreError::sqlite(&self.dir, e)
    }

    /// Runs `f` inside one read transaction: a consistent snapshot.
    fn snapshot<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.conn.execute_batch("BEGIN").map_err(self.sql())?;
        let result = f();
        let _ = self.conn.execute_batch("COMMIT");
        result
    }

    /// The run's metadata and state.
    pub fn info(&self) -> Result<RunInfo, StoreError> {
        self.snapshot(|| {
            let counts = self.counts_inner()?;
            self.info_inner(&counts)
        })
    }

    fn info_inner(&self, counts: &Counts) -> Result<RunInfo, StoreError> {
        let master = lock_holder(&self.dir);
        let row = self
            .conn
            .query_row(
                "SELECT name, schema_version, binary_path, binary_tasks, backend, created_ns, updated_ns, closed_ns,
                        sessions, expected_tasks FROM run WHERE id = 1",
                [],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, Option<String>>(2)?,
                        row.get::<_, Option<String>>(3)?,
                        row.get::<_, Option<String>>(4)?,
                        row.get::<_, i64>(5)? as u64,
                        row.get::<_, i64>(6)? as u64,
                        opt_u64(row, 7)?,
                        row.get::<_, i64>(8)? as u64,
                        opt_u64(row, 9)?,
                    ))
                },
            )
            .map_err(self.sql())?;
        let (
            name,
            schema_version,
            binary_path,
            tasks,
            backend,
            created_ns,
            updated_ns,
            closed_ns,
            sessions,
            expected,
        ) = row;
        let binary_tasks = tasks
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .map(|(n, f)| (n.to_string(), f.to_string()))
            .collect();
        let state = if master.is_some() {
            RunState::Running
        } else if closed_ns.is_none() {
            RunState::Interrupted
        } else if counts.queued + counts.running == 0 {
            RunState::Finished
        } else {
            RunState::Stopped
        };
        Ok(RunInfo {
            name: if name.is_empty() {
                self.name.clone()
            } else {
                name
            },
            dir: self.dir.clone(),
            schema_version,
            binary_path,
            binary_tasks,
            backend,
            created_ns,
            updated_ns,
            closed_ns,
            sessions,
            master,
            expected_tasks: expected,
            state,
        })
    }

    /// Finished results that the run's current binary (the one that opened
    /// it last) does not reuse because their task changed: see
    /// [`StaleResults`]. Empty when the run does not know its binary's
    /// tasks.
    pub fn stale_results(&self) -> Result<Vec<StaleResults>, StoreError> {
        self.snapshot(|| {
            let listing: Option<String> = self
                .conn
                .query_row("SELECT binary_tasks FROM run WHERE id = 1", [], |r| {
                    r.get(0)
                })
                .map_err(self.sql())?;
            let current: Vec<(String, u64)> = listing
                .unwrap_or_default()
                .lines()
                .filter_map(|line| line.split_once('\t'))
                .filter_map(|(n, f)| Some((n.to_string(), u64::from_str_radix(f, 16).ok()?)))
                .collect();
            stale_results(&self.conn, &self.dir, &current)
        })
    }

    /// How many tasks are where. Cheap (no block is decoded): fit for
    /// `status --watch`. While a master runs, queued and running are its
    /// live counts (including tasks not yet written).
    pub fn counts(&self) -> Result<Counts, StoreError> {
        self.snapshot(|| self.counts_inner())
    }

    fn counts_inner(&self) -> Result<Counts, StoreError> {
        let mut counts = Counts::default();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT state, count(*) FROM tasks GROUP BY state")
            .map_err(self.sql())?;
        let mut rows = stmt.query([]).map_err(self.sql())?;
        while let Some(row) = rows.next().map_err(self.sql())? {
            let n = row.get::<_, i64>(1).map_err(self.sql())? as u64;
            match TaskState::parse(&row.get::<_, String>(0).map_err(self.sql())?) {
                Some(TaskState::Queued) => counts.queued += n,
                Some(TaskState::Running) => counts.running += n,
                Some(TaskState::Done) => counts.done += n,
                Some(TaskState::Failed) => counts.failed += n,
                Some(TaskState::Cancelled) => counts.cancelled += n,
                None => {}
            }
        }
        let (in_blocks, superseded): (Option<i64>, i64) = self
            .conn
            .query_row(
                "SELECT (SELECT sum(count) FROM task_blocks), (SELECT count(*) FROM superseded)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(self.sql())?;
        counts.done += (in_blocks.unwrap_or(0) - superseded).max(0) as u64;
        if lock_holder(&self.dir).is_some() {
            let (queued, running): (i64, i64) = self
                .conn
                .query_row(
                    "SELECT live_queued, live_running FROM run WHERE id = 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(self.sql())?;
            counts.queued = queued as u64;
            counts.running = running as u64;
        }
        Ok(counts)
    }

    /// Tasks finished in `[since_ns, now]` (for throughput).
    pub fn finished_since(&self, since_ns: u64) -> Result<u64, StoreError> {
        self.snapshot(|| {
            let rows: i64 = self
                .conn
                .query_row(
                    "SELECT count(*) FROM tasks WHERE finished_ns >= ?1",
                    [since_ns as i64],
                    |r| r.get(0),
                )
                .map_err(self.sql())?;
            let mut total = rows as u64;
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT count, first_finished_ns, base_ns, data FROM task_blocks WHERE last_finished_ns >= ?1",
                )
                .map_err(self.sql())?;
            let mut query = stmt.query([since_ns as i64]).map_err(self.sql())?;
            while let Some(row) = query.next().map_err(self.sql())? {
                let count = row.get::<_, i64>(0).map_err(self.sql())? as u64;
                let first = row.get::<_, i64>(1).map_err(self.sql())? as u64;
                if first >= since_ns {
                    total += count;
                    continue;
                }
                let base = row.get::<_, i64>(2).map_err(self.sql())? as u64;
                let data = row.get_ref(3).and_then(|v| Ok(v.as_blob()?)).map_err(self.sql())?;
                let tasks = block::decode(data).map_err(|e| corrupt(&self.dir, e))?;
                total += tasks
                    .iter()
                    .filter(|t| (base as i64 + t.finished) as u64 >= since_ns)
                    .count() as u64;
            }
            Ok(total)
        })
    }

    /// The first submission and the last finish of the run.
    pub fn time_span(&self) -> Result<(Option<u64>, Option<u64>), StoreError> {
        self.conn
            .query_row(
                "SELECT min(x), max(y) FROM (
                    SELECT min(coalesce(submitted_ns, finished_ns)) AS x, max(finished_ns) AS y FROM tasks
                    UNION ALL SELECT min(base_ns), max(last_finished_ns) FROM task_blocks)",
                [],
                |r| Ok((opt_u64(r, 0)?, opt_u64(r, 1)?)),
            )
            .map_err(self.sql())
    }

    /// Calls `visit` with every task and its attempts (rows, then blocks),
    /// in one consistent snapshot. Values are not loaded.
    pub fn scan(
        &self,
        mut visit: impl FnMut(&TaskRecord, &[AttemptRecord]),
    ) -> Result<(), StoreError> {
        self.snapshot(|| {
            self.scan_rows("1", params![], false, &mut visit)?;
            self.scan_blocks(&mut |_| true, false, &mut visit)
        })
    }

    /// Every failed task with its attempts.
    pub fn failed(&self) -> Result<Vec<TaskDetail>, StoreError> {
        let mut out = Vec::new();
        self.snapshot(|| {
            self.scan_rows("t.state = 'failed'", params![], false, &mut |t, a| {
                out.push(TaskDetail {
                    task: t.clone(),
                    attempt_list: a.to_vec(),
                })
            })
        })?;
        Ok(out)
    }

    /// Attempts that were lost and retried (the task went on), as
    /// (task, attempt) pairs.
    pub fn lost_attempts(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM attempts WHERE state = 'lost'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(self.sql())
    }

    /// Tasks matching `query`: a position (digits), or a prefix of the
    /// identity (hex digits, at least 4), with their attempts and values.
    pub fn find(&self, query: &str) -> Result<Vec<TaskDetail>, StoreError> {
        let query = query.trim().to_ascii_lowercase();
        let mut out = Vec::new();
        let mut push = |t: &TaskRecord, a: &[AttemptRecord]| {
            out.push(TaskDetail {
                task: t.clone(),
                attempt_list: a.to_vec(),
            })
        };
        self.snapshot(|| {
            if !query.is_empty() && query.bytes().all(|b| b.is_ascii_digit()) {
                let Ok(position) = query.parse::<u64>() else {
                    return Ok(());
                };
                self.scan_rows("t.position = ?1", params![position as i64], true, &mut push)?;
                self.scan_blocks(&mut |t| t.position == position, true, &mut push)?;
            }
            if query.len() >= 4 && query.len() <= 32 && query.bytes().all(|b| b.is_ascii_hexdigit())
            {
                let like = format!("{}%", query.to_ascii_uppercase());
                self.scan_rows("hex(t.identity) LIKE ?1", params![like], true, &mut push)?;
                let prefix = query.clone();
                self.scan_blocks(
                    &mut |t| TaskIdentity(t.identity).to_hex().starts_with(&prefix),
                    true,
                    &mut push,
                )?;
            }
            Ok(())
        })?;
        out.sort_by_key(|d| d.task.seq);
        out.dedup_by_key(|d| d.task.seq);
        Ok(out)
    }

    fn scan_rows(
        &self,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
        values: bool,
        visit: &mut dyn FnMut(&TaskRecord, &[AttemptRecord]),
    ) -> Result<(), StoreError> {
        let sql = self.sql();
        let mut tasks = self
            .conn
            .prepare(&format!(
                "SELECT t.seq, t.identity, k.name, k.fingerprint, t.position, t.input_hash, t.state, t.attempts,
                        t.submitted_ns, t.finished_ns
                 FROM tasks t LEFT JOIN kinds k ON k.id = t.kind WHERE {filter} ORDER BY t.seq"
            ))
            .map_err(&sql)?;
        let mut attempts = self
            .conn
            .prepare_cached(
                "SELECT attempt, state, job_id, host, queued_ns, started_ns, finished_ns, wall_ns, cpu_ns,
                        peak_rss_kib, value_len, value_file, failure_kind, message, location, stderr_tail, id,
                        CASE WHEN ?3 THEN value END
                 FROM attempts WHERE id >= ?1 AND id < ?2 ORDER BY id",
            )
            .map_err(&sql)?;
        let mut rows = tasks.query(args).map_err(&sql)?;
        let mut list = Vec::new();
        while let Some(row) = rows.next().map_err(&sql)? {
            let task = (|| -> rusqlite::Result<TaskRecord> {
                Ok(TaskRecord {
                    seq: row.get::<_, i64>(0)? as u64,
                    identity: TaskIdentity(row.get(1)?),
                    task: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    fingerprint: row.get::<_, Option<i64>>(3)?.unwrap_or(0) as u64,
                    position: row.get::<_, i64>(4)? as u64,
                    input_hash: InputHash(row.get(5)?),
                    state: TaskState::parse(&row.get::<_, String>(6)?).unwrap_or(TaskState::Queued),
                    attempts: row.get(7)?,
                    submitted_ns: opt_u64(row, 8)?,
                    finished_ns: opt_u64(row, 9)?,
                })
            })()
            .map_err(&sql)?;
            list.clear();
            let low = (task.seq << ATTEMPT_BITS) as i64;
            let high = ((task.seq + 1) << ATTEMPT_BITS) as i64;
            let mut arows = attempts.query(params![low, high, values]).map_err(&sql)?;
            while let Some(a) = arows.next().map_err(&sql)? {
                let record = (|| -> rusqlite::Result<AttemptRecord> {
                    let value_file: Option<String> = a.get(11)?;
                    let value = if values {
                        match (&value_file, a.get::<_, Option<Vec<u8>>>(17)?) {
                            (Some(file), _) => Some(StoredValue::File(self.dir.join(file))),
                            (None, Some(bytes)) => Some(StoredValue::Inline(bytes)),
                            (None, None) => None,
                        }
                    } else {
                        None
                    };
                    Ok(AttemptRecord {
                        attempt: a.get(0)?,
                        state: AttemptState::parse(&a.get::<_, String>(1)?)
                            .unwrap_or(AttemptState::Queued),
                        job_id: a.get(2)?,
                        host: a.get(3)?,
                        queued_ns: opt_u64(a, 4)?,
                        started_ns: opt_u64(a, 5)?,
                        finished_ns: opt_u64(a, 6)?,
                        wall_ns: opt_u64(a, 7)?,
                        cpu_ns: opt_u64(a, 8)?,
                        peak_rss_kib: opt_u64(a, 9)?,
                        value_len: opt_u64(a, 10)?,
                        value_file,
                        failure: failure_from(a.get(12)?, a.get(13)?, a.get(14)?, a.get(15)?),
                        value,
                    })
                })()
                .map_err(&sql)?;
                list.push(record);
            }
            visit(&task, &list);
        }
        Ok(())
    }

    fn scan_blocks(
        &self,
        keep: &mut dyn FnMut(&block::BlockTask<'_>) -> bool,
        values: bool,
        visit: &mut dyn FnMut(&TaskRecord, &[AttemptRecord]),
    ) -> Result<(), StoreError> {
        let sql = self.sql();
        let kinds: HashMap<u32, (String, u64)> = {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT id, name, fingerprint FROM kinds")
                .map_err(&sql)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((r.get::<_, u32>(0)?, (r.get(1)?, r.get::<_, i64>(2)? as u64)))
                })
                .map_err(&sql)?;
            rows.collect::<rusqlite::Result<_>>().map_err(&sql)?
        };
        let superseded = superseded(&self.conn).map_err(&sql)?;
        let mut stmt = self
            .conn
            .prepare("SELECT first_seq, base_ns, data FROM task_blocks ORDER BY id")
            .map_err(&sql)?;
        let mut rows = stmt.query([]).map_err(&sql)?;
        let unknown = (String::new(), 0);
        while let Some(row) = rows.next().map_err(&sql)? {
            let first = row.get::<_, i64>(0).map_err(&sql)? as u64;
            let base = row.get::<_, i64>(1).map_err(&sql)?;
            let data = row
                .get_ref(2)
                .and_then(|v| Ok(v.as_blob()?))
                .map_err(&sql)?;
            let tasks = block::decode(data).map_err(|e| corrupt(&self.dir, e))?;
            for (i, t) in tasks.iter().enumerate() {
                let seq = first + i as u64;
                if (!superseded.is_empty() && superseded.contains(&seq)) || !keep(t) {
                    continue;
                }
                let (name, fingerprint) = kinds.get(&t.kind).unwrap_or(&unknown);
                let record = TaskRecord {
                    seq,
                    identity: TaskIdentity(t.identity),
                    task: name.clone(),
                    fingerprint: *fingerprint,
                    position: t.position,
                    input_hash: InputHash(t.input_hash),
                    state: TaskState::Done,
                    attempts: 1,
                    submitted_ns: Some((base + t.submitted) as u64),
                    finished_ns: Some((base + t.finished) as u64),
                };
                let attempt = AttemptRecord {
                    attempt: 0,
                    state: if t.cached {
                        AttemptState::Cached
                    } else {
                        AttemptState::Done
                    },
                    job_id: t.job_id.map(str::to_string),
                    host: (!t.host.is_empty()).then(|| t.host.to_string()),
                    queued_ns: None,
                    started_ns: Some((base + t.started) as u64),
                    finished_ns: Some((base + t.finished) as u64),
                    wall_ns: Some(t.wall_ns),
                    cpu_ns: t.cpu_ns,
                    peak_rss_kib: Some(t.peak_rss_kib),
                    value_len: Some(t.value.len() as u64),
                    value_file: None,
                    failure: None,
                    value: values.then(|| StoredValue::Inline(t.value.to_vec())),
                };
                visit(&record, std::slice::from_ref(&attempt));
            }
        }
        Ok(())
    }
}

/// One run of a runs directory, for `pymw runs`.
#[derive(Debug, Clone, Serialize)]
pub struct RunListing {
    /// The run's name.
    pub name: String,
    /// Its metadata, unless it could not be read.
    pub info: Option<RunInfo>,
    /// Its counts, unless it could not be read.
    pub counts: Option<Counts>,
    /// Why it could not be read.
    pub error: Option<String>,
    /// Bytes on disk.
    pub size_bytes: u64,
}

/// Bytes of every file under `path` (0 for what cannot be read).
pub fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_size(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Every run under `root`, newest first. A run that cannot be read is
/// listed with its error.
pub fn list_runs(root: &Path) -> Result<Vec<RunListing>, StoreError> {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(root, e)),
    };
    let mut runs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.join(schema::DB_FILE).is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let read = RunReader::open_dir(&path).and_then(|r| {
            r.snapshot(|| {
                let counts = r.counts_inner()?;
                Ok((r.info_inner(&counts)?, counts))
            })
        });
        let size_bytes = dir_size(&path);
        runs.push(match read {
            Ok((info, counts)) => RunListing {
                name,
                info: Some(info),
                counts: Some(counts),
                error: None,
                size_bytes,
            },
            Err(error) => RunListing {
                name,
                info: None,
                counts: None,
                error: Some(error.to_string()),
                size_bytes,
            },
        });
    }
    runs.sort_by_key(|r| std::cmp::Reverse(r.info.as_ref().map_or(0, |i| i.updated_ns)));
    Ok(runs)
}

/// Removes a run's directory. Refuses a run a master has open unless
/// `force`. Returns the bytes freed.
pub fn remove_run(root: &Path, name: &str, force: bool) -> Result<u64, StoreError> {
    let dir = root.join(name);
    if !crate::store::valid_run_name(name) || !dir.join(schema::DB_FILE).exists() {
        return Err(StoreError::NotFound {
            root: root.to_path_buf(),
            name: name.to_string(),
        });
    }
    if !force && let Some(holder) = lock_holder(&dir) {
        return Err(StoreError::Locked {
            name: name.to_string(),
            holder,
        });
    }
    let size = dir_size(&dir);
    std::fs::remove_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
    Ok(size)
}

/// Seconds since `ns`, for ages.
pub fn age_ns(ns: u64) -> u64 {
    now_ns().saturating_sub(ns)
}
