//! [`RunStore`]: the master's handle on its run's store.

use crate::error::StoreError;
use crate::hash::{IdentityHash, InputHash, TaskIdentity};
use crate::read::{self, StaleResults};
use crate::record::{
    AttemptEvent, Batch, CacheEntry, FinishedTask, InFlight, StoredOutcome, SubmittedTask, now_ns,
};
use crate::schema;
use crate::writer::{Msg, Shared, Writer};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

/// Messages (batches) the writer's channel holds before `record_*` waits:
/// back-pressure instead of unbounded memory when the disk is slower than
/// the master.
const CHANNEL_CAPACITY: usize = 4096;

/// The default runs directory: `./pymw-runs`, or `$PYMW_RUNS_DIR`.
pub fn default_root() -> PathBuf {
    std::env::var_os("PYMW_RUNS_DIR").map_or_else(|| PathBuf::from("pymw-runs"), PathBuf::from)
}

/// Whether `name` can name a run (and a directory): letters, digits, `-`,
/// `_`, `.`, not starting with `.`, at most 128 characters.
pub fn valid_run_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// How to open a run.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Create the run if it does not exist. Default: true.
    pub create: bool,
    /// Open the run if it exists (finished tasks are kept and returned by
    /// [`RunStore::load_finished`]). Without it, an existing run is an
    /// error ([`StoreError::AlreadyExists`]). Default: false.
    pub resume: bool,
    /// Use the result cache shared by the runs of the directory. Default:
    /// false.
    pub cache: bool,
    /// The master's binary, for `pymw show` and reports.
    pub binary_path: Option<PathBuf>,
    /// The binary's tasks and fingerprints (as `BIN __pymw list` prints).
    pub binary_tasks: Vec<(String, u64)>,
    /// The backend's name.
    pub backend: Option<String>,
    /// Caps the database at this many pages (SQLite `max_page_count`; a page
    /// is 4 KiB): a quota, and how tests make the disk "full".
    pub max_db_pages: Option<u64>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            create: true,
            resume: false,
            cache: false,
            binary_path: None,
            binary_tasks: Vec::new(),
            backend: None,
            max_db_pages: None,
        }
    }
}

impl OpenOptions {
    /// The defaults: create a new run, refuse an existing one.
    pub fn new() -> OpenOptions {
        OpenOptions::default()
    }
    /// Sets [`OpenOptions::create`].
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }
    /// Sets [`OpenOptions::resume`].
    pub fn resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }
    /// Sets [`OpenOptions::cache`].
    pub fn cache(mut self, cache: bool) -> Self {
        self.cache = cache;
        self
    }
    /// Sets [`OpenOptions::backend`].
    pub fn backend(mut self, backend: impl Into<String>) -> Self {
        self.backend = Some(backend.into());
        self
    }
    /// Sets the binary's path and tasks.
    pub fn binary(mut self, path: impl Into<PathBuf>, tasks: Vec<(String, u64)>) -> Self {
        self.binary_path = Some(path.into());
        self.binary_tasks = tasks;
        self
    }
}

/// A run's store, open for writing by its master.
///
/// Recording is batch-oriented and does not wait for the disk: `record_*`
/// hand their batch to a writer thread that commits about every 10 ms, one
/// transaction per batch. [`RunStore::flush`] waits until everything
/// recorded is committed and reports write errors, which
/// [`RunStore::error`] also shows without waiting.
///
/// Durability: a commit survives a crash or kill of the master (WAL,
/// `synchronous=NORMAL`); a power loss may lose the last commits.
///
/// Only one master has a run open at a time (an advisory lock on
/// `<run>/lock`, released by the kernel when the master dies).
#[derive(Debug)]
pub struct RunStore {
    tx: Option<mpsc::SyncSender<Msg>>,
    writer: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    root: PathBuf,
    name: String,
    dir: PathBuf,
    resumed: bool,
    cache: bool,
    reader: Mutex<Connection>,
    cache_reader: Mutex<Option<Connection>>,
    _lock: std::fs::File,
}

impl RunStore {
    /// Opens the run `name` under `root` (created as needed) for writing.
    pub fn open(
        root: impl AsRef<Path>,
        name: &str,
        options: OpenOptions,
    ) -> Result<RunStore, StoreError> {
        let root = root.as_ref().to_path_buf();
        if !valid_run_name(name) {
            return Err(StoreError::InvalidName {
                name: name.to_string(),
            });
        }
        let dir = root.join(name);
        let db = dir.join(schema::DB_FILE);
        if !db.exists() && !options.create {
            return Err(StoreError::NotFound {
                root,
                name: name.to_string(),
            });
        }
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let lock = lock_run(&dir, name)?;

        // Decided under the lock: no other master is creating it now.
        let exists = db.exists();
        let conn = Connection::open(&db).map_err(|e| StoreError::sqlite(&db, e))?;
        if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
            return Err(StoreError::ReadOnly {
                path: db,
                detail: "the database file is not writable".to_string(),
            });
        }
        // A store whose creation was cut short (its master killed while it
        // made it) holds nothing: it is made again.
        let exists = exists && !schema::is_unborn(&conn, &db)?;
        if exists && !options.resume {
            return Err(StoreError::AlreadyExists {
                root,
                name: name.to_string(),
            });
        }
        if !exists && !options.create {
            return Err(StoreError::NotFound {
                root,
                name: name.to_string(),
            });
        }
        let version = if exists {
            Some(schema::check(&conn, &db)?)
        } else {
            None
        };
        schema::configure_writer(&conn, &db)?;
        let sql = |e| StoreError::sqlite(&db, e);
        if let Some(pages) = options.max_db_pages {
            conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
                .map_err(sql)?;
        }
        let now = now_ns() as i64;
        let tasks_listing: Option<String> = if options.binary_tasks.is_empty() {
            None
        } else {
            Some(
                options
                    .binary_tasks
                    .iter()
                    .map(|(name, fingerprint)| format!("{name}\t{fingerprint:016x}\n"))
                    .collect(),
            )
        };
        let binary_path = options
            .binary_path
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned());
        let pid = i64::from(std::process::id());
        let host = pymw_core::sys::host_name();
        match version {
            None => {
                let tx = conn.unchecked_transaction().map_err(sql)?;
                schema::create(&tx, &db)?;
                tx.execute(
                    "INSERT INTO run (id, name, schema_version, binary_path, binary_tasks, backend, created_ns, updated_ns,
                                      sessions, master_pid, master_host)
                     VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?6, 1, ?7, ?8)",
                    params![name, schema::SCHEMA_VERSION, binary_path, tasks_listing, options.backend, now, pid, host],
                )
                .map_err(sql)?;
                tx.commit().map_err(sql)?;
            }
            Some(version) => {
                schema::migrate(&conn, &db, version)?;
                conn.execute(
                    "UPDATE run SET binary_path = coalesce(?1, binary_path), binary_tasks = coalesce(?2, binary_tasks),
                         backend = coalesce(?3, backend), updated_ns = ?4, closed_ns = NULL, sessions = sessions + 1,
                         master_pid = ?5, master_host = ?6",
                    params![binary_path, tasks_listing, options.backend, now, pid, host],
                )
                .map_err(sql)?;
            }
        }
        let reader = schema::open_reader(&db)?;
        let shared = Arc::new(Shared::default());
        let writer = Writer::new(
            conn,
            dir.clone(),
            root.clone(),
            name.to_string(),
            shared.clone(),
        )?;
        let (tx, rx) = mpsc::sync_channel(CHANNEL_CAPACITY);
        let handle = std::thread::Builder::new()
            .name(format!("pymw-store {name}"))
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::io(&dir, e))?;
        Ok(RunStore {
            tx: Some(tx),
            writer: Some(handle),
            shared,
            root,
            name: name.to_string(),
            dir,
            resumed: exists,
            cache: options.cache,
            reader: Mutex::new(reader),
            cache_reader: Mutex::new(None),
            _lock: lock,
        })
    }

    /// The run's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The run's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The runs directory it lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the run existed before this open (a resumed run).
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    fn send(&self, msg: Msg) {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(msg).is_ok());
        if !sent {
            self.shared.set_error(Some(StoreError::WriterGone(
                "records can no longer be written".to_string(),
            )));
        }
    }

    /// An empty batch to fill and give to [`RunStore::record`], with the
    /// buffers of an earlier batch when the writer has one to spare.
    pub fn batch(&self) -> Batch {
        self.shared
            .spare
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default()
    }

    /// Records a turn's worth of records in one message: the cheapest way
    /// for a master (see [`Batch`]).
    pub fn record(&self, batch: Batch) {
        if !batch.is_empty() {
            self.send(Msg::Batch(batch));
        }
    }

    /// Records tasks the master accepted. A task submitted again after a
    /// restart keeps its record if it was unfinished; if it had finished,
    /// its old record is replaced by the new one.
    pub fn record_submitted(&self, tasks: Vec<SubmittedTask>) {
        if !tasks.is_empty() {
            self.send(Msg::Submitted(tasks));
        }
    }

    /// Records attempts handed to the engine (with the engine's job id, when
    /// it has one: such records are committed at once).
    pub fn record_queued(&self, attempts: Vec<AttemptEvent>) {
        if !attempts.is_empty() {
            self.send(Msg::Queued(attempts));
        }
    }

    /// Records attempts that started running.
    pub fn record_started(&self, attempts: Vec<AttemptEvent>) {
        if !attempts.is_empty() {
            self.send(Msg::Started(attempts));
        }
    }

    /// Records attempts that ended: values, failures, losses, timeouts,
    /// cancellations.
    pub fn record_finished(&self, tasks: Vec<FinishedTask>) {
        if !tasks.is_empty() {
            self.send(Msg::Finished(tasks));
        }
    }

    /// Records how many tasks the run will have, when the master knows
    /// (`pymw status` shows an ETA then).
    pub fn set_expected_tasks(&self, total: Option<u64>) {
        self.send(Msg::Expected(total));
    }

    /// Waits until what a restart depends on is committed: every finished
    /// task and every attempt with a job id recorded so far. (Unfinished
    /// tasks without a job id are written within two seconds, or by
    /// [`RunStore::close`]; a restarted master runs them again anyway.)
    /// Returns the store's error if a commit failed: what could not be
    /// committed is kept in memory and retried with the next commit.
    ///
    /// Cheap enough for checkpoints (the end of a map), but the hot path
    /// should not call it: `record_*` commit on their own every 10 ms.
    pub fn flush(&self) -> Result<(), StoreError> {
        let (reply, wait) = mpsc::sync_channel(1);
        self.send(Msg::Flush(reply));
        match wait.recv() {
            Ok(result) => result,
            Err(_) => Err(self
                .error()
                .unwrap_or_else(|| StoreError::WriterGone("it exited".to_string()))),
        }
    }

    /// The last write error, if the latest commit failed; `None` when all is
    /// well. Does not wait: the master can check it every turn.
    pub fn error(&self) -> Option<StoreError> {
        if !self.shared.failing.load(Ordering::Acquire) {
            return None;
        }
        self.shared
            .error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many records named a task that was not open (never submitted,
    /// or already finished: the same identity submitted twice in one
    /// session) and were ignored. Identities must be unique within a run;
    /// a non-zero count points at a master bug.
    pub fn ignored_records(&self) -> u64 {
        self.shared.ignored.load(Ordering::Relaxed)
    }

    /// Commits everything, marks the run closed and stops the writer.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.shutdown()
    }

    /// Commits what is pending, then stops without marking the run closed,
    /// as if the master had been killed right after a commit (for tests of
    /// resume and of readers).
    #[cfg(feature = "fixture")]
    pub fn abandon(mut self) -> Result<(), StoreError> {
        self.stop(Msg::Abandon)
    }

    fn shutdown(&mut self) -> Result<(), StoreError> {
        self.stop(Msg::Close)
    }

    fn stop(
        &mut self,
        msg: fn(mpsc::SyncSender<Result<(), StoreError>>) -> Msg,
    ) -> Result<(), StoreError> {
        let Some(tx) = self.tx.take() else {
            return Ok(());
        };
        let (reply, wait) = mpsc::sync_channel(1);
        let result = match tx.send(msg(reply)) {
            Ok(()) => wait.recv().unwrap_or_else(|_| {
                Err(StoreError::WriterGone(
                    "it exited while closing".to_string(),
                ))
            }),
            Err(_) => Err(StoreError::WriterGone(
                "it exited before closing".to_string(),
            )),
        };
        drop(tx);
        if let Some(handle) = self.writer.take()
            && handle.join().is_err()
        {
            return Err(StoreError::WriterGone("it panicked".to_string()));
        }
        result
    }

    /// Every finished task of the run (done or failed; not cancelled, which
    /// a resumed master runs again), by identity, as committed. Reads large
    /// values lazily ([`crate::StoredValue::File`]).
    pub fn load_finished(
        &self,
    ) -> Result<HashMap<TaskIdentity, StoredOutcome, IdentityHash>, StoreError> {
        let conn = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        read::load_finished(&conn, &self.dir)
    }

    /// Every finished task of the run, as [`RunStore::load_finished`] finds
    /// them, handed to `each` one by one without a map of them all (a
    /// master resuming a million tasks keeps only what it needs). `count`
    /// first gets how many there are at most (to reserve room in `state`),
    /// then `each` gets every one.
    pub fn for_each_finished<S>(
        &self,
        state: &mut S,
        count: impl FnOnce(&mut S, usize),
        each: impl FnMut(&mut S, TaskIdentity, StoredOutcome),
    ) -> Result<(), StoreError> {
        let conn = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        read::for_each_finished(&conn, &self.dir, state, count, each)
    }

    /// Finished results recorded under another fingerprint than the one
    /// `tasks` (this binary's names and fingerprints) gives their task's
    /// name: results of an earlier build that a resumed run does not reuse,
    /// because the task changed.
    pub fn stale_results(&self, tasks: &[(String, u64)]) -> Result<Vec<StaleResults>, StoreError> {
        let conn = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        conn.execute_batch("BEGIN")
            .map_err(|e| StoreError::sqlite(&self.dir, e))?;
        let result = read::stale_results(&conn, &self.dir, tasks);
        let _ = conn.execute_batch("COMMIT");
        result
    }

    /// Attempts that were queued or running when last committed: after a
    /// restart, what the backend can re-attach to (attempts with a job id)
    /// or what runs again. Call it right after [`RunStore::open`], before
    /// recording anything. The master should end each with
    /// [`RunStore::record_finished`] (re-attached jobs when they finish;
    /// others as lost with `retried: true`) so that no attempt stays
    /// "running" forever.
    pub fn in_flight(&self) -> Result<Vec<InFlight>, StoreError> {
        let conn = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        read::in_flight(&conn, &self.dir)
    }

    /// Adds values to the result cache (`<root>/cache.sqlite`), committed
    /// with the next batch. Ignored unless the store was opened with
    /// [`OpenOptions::cache`].
    pub fn cache_put(&self, entries: Vec<CacheEntry>) {
        if self.cache && !entries.is_empty() {
            self.send(Msg::CachePut(entries));
        }
    }

    /// The cached value of a task, if any run of this directory stored one
    /// for the same fingerprint and input. `None` when the cache is off.
    pub fn cache_get(
        &self,
        fingerprint: u64,
        input: &InputHash,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .cache_get_many(&[(fingerprint, *input)])?
            .pop()
            .flatten())
    }

    /// [`RunStore::cache_get`] for many tasks at once (one lock, one
    /// prepared statement).
    pub fn cache_get_many(
        &self,
        keys: &[(u64, InputHash)],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if !self.cache {
            return Ok(vec![None; keys.len()]);
        }
        let path = self.root.join(schema::CACHE_FILE);
        let mut guard = self.cache_reader.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            if !path.exists() {
                return Ok(vec![None; keys.len()]);
            }
            let conn = schema::open_reader(&path)?;
            schema::check_cache(&conn, &path)?;
            *guard = Some(conn);
        }
        let conn = guard.as_ref().expect("just opened");
        let sql = |e| StoreError::sqlite(&path, e);
        let mut stmt = conn
            .prepare_cached(
                "SELECT value, value_file FROM cache WHERE fingerprint = ?1 AND input_hash = ?2",
            )
            .map_err(sql)?;
        let mut out = Vec::with_capacity(keys.len());
        for (fingerprint, input) in keys {
            let found: Option<(Option<Vec<u8>>, Option<String>)> = stmt
                .query_row(params![*fingerprint as i64, &input.0[..]], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()
                .map_err(sql)?;
            out.push(match found {
                Some((Some(value), _)) => Some(value),
                Some((None, Some(file))) => {
                    let file = self.root.join(file);
                    // A cache file that went missing is a miss, not an error.
                    std::fs::read(&file).ok()
                }
                _ => None,
            });
        }
        Ok(out)
    }
}

impl Drop for RunStore {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown() {
            tracing::error!(%error, "run store: closing failed");
        }
    }
}

/// Takes the run's lock, or says who holds it.
fn lock_run(dir: &Path, name: &str) -> Result<std::fs::File, StoreError> {
    use std::os::fd::AsRawFd;
    let path = dir.join("lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| StoreError::io(dir, e))?;
    // SAFETY: flock on a descriptor we own.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if !locked {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        return Err(StoreError::Locked {
            name: name.to_string(),
            holder: if holder.is_empty() {
                "another process".to_string()
            } else {
                holder.to_string()
            },
        });
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(
        file,
        "pid {} on {}",
        std::process::id(),
        pymw_core::sys::host_name()
    );
    let _ = file.flush();
    Ok(file)
}

/// Who holds the run's lock ("pid N on HOST"), or `None` when no master has
/// it open.
pub fn lock_holder(dir: &Path) -> Option<String> {
    use std::os::fd::AsRawFd;
    let mut file = std::fs::File::open(dir.join("lock")).ok()?;
    // SAFETY: flock on a descriptor we own.
    let free = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0;
    if free {
        // SAFETY: as above.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        return None;
    }
    let mut holder = String::new();
    let _ = file.read_to_string(&mut holder);
    Some(if holder.trim().is_empty() {
        "another process".to_string()
    } else {
        holder.trim().to_string()
    })
}
