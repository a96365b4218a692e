//! The SQL schema of run stores and of the result cache, its version and
//! migrations. `SCHEMA.md` in this crate describes every table and column.

use crate::error::StoreError;
use rusqlite::Connection;
use std::path::Path;

/// The schema version this build writes (`PRAGMA user_version` of
/// `run.sqlite`). Bump it with every change of the schema, and add the
/// migration from the previous version to `MIGRATIONS` in `schema.rs`.
pub const SCHEMA_VERSION: i64 = 1;

/// The oldest version this build can migrate from.
pub const OLDEST_SCHEMA_VERSION: i64 = 1;

/// The schema version of the result cache (`cache.sqlite`).
pub const CACHE_SCHEMA_VERSION: i64 = 1;

/// `PRAGMA application_id` of run stores: "PYMW".
pub const APPLICATION_ID: i64 = 0x5059_4d57;

/// `PRAGMA application_id` of the result cache: "PYMC".
pub const CACHE_APPLICATION_ID: i64 = 0x5059_4d43;

/// The database file's name in a run's directory.
pub const DB_FILE: &str = "run.sqlite";

/// The result cache's file name in the runs directory.
pub const CACHE_FILE: &str = "cache.sqlite";

/// Version 1 of the schema.
const SCHEMA_V1: &str = "
CREATE TABLE run (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    name TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    binary_path TEXT,
    binary_tasks TEXT,
    backend TEXT,
    created_ns INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL,
    closed_ns INTEGER,
    sessions INTEGER NOT NULL DEFAULT 0,
    master_pid INTEGER,
    master_host TEXT,
    live_queued INTEGER NOT NULL DEFAULT 0,
    live_running INTEGER NOT NULL DEFAULT 0,
    expected_tasks INTEGER
);
CREATE TABLE kinds (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    fingerprint INTEGER NOT NULL,
    UNIQUE (name, fingerprint)
);
CREATE TABLE tasks (
    seq INTEGER PRIMARY KEY,
    identity BLOB NOT NULL,
    kind INTEGER NOT NULL REFERENCES kinds (id),
    position INTEGER NOT NULL,
    input_hash BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    attempts INTEGER NOT NULL,
    submitted_ns INTEGER,
    finished_ns INTEGER
);
CREATE INDEX tasks_by_state ON tasks (state);
CREATE TABLE attempts (
    id INTEGER PRIMARY KEY,
    task INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'cached', 'failed', 'lost', 'timed_out', 'cancelled')),
    job_id TEXT,
    host TEXT,
    queued_ns INTEGER,
    started_ns INTEGER,
    finished_ns INTEGER,
    wall_ns INTEGER,
    cpu_ns INTEGER,
    peak_rss_kib INTEGER,
    value BLOB,
    value_file TEXT,
    value_len INTEGER,
    failure_kind TEXT,
    message TEXT,
    location TEXT,
    stderr_tail TEXT
);
CREATE TABLE task_blocks (
    id INTEGER PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    count INTEGER NOT NULL,
    base_ns INTEGER NOT NULL,
    first_finished_ns INTEGER NOT NULL,
    last_finished_ns INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE superseded (
    seq INTEGER PRIMARY KEY
);
";

/// Migrations: `MIGRATIONS[i]` takes version `OLDEST_SCHEMA_VERSION + i` to
/// the next. Empty while there is one version.
const MIGRATIONS: &[&str] = &[];

/// The result cache's schema.
const CACHE_SCHEMA_V1: &str = "
CREATE TABLE cache (
    fingerprint INTEGER NOT NULL,
    input_hash BLOB NOT NULL,
    task TEXT NOT NULL,
    value BLOB,
    value_file TEXT,
    value_len INTEGER NOT NULL,
    run TEXT,
    created_ns INTEGER NOT NULL,
    PRIMARY KEY (fingerprint, input_hash)
);
";

/// Settings of every connection that writes.
pub(crate) fn configure_writer(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let sql = |e| StoreError::sqlite(path, e);
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(sql)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(sql)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Sqlite {
            path: path.to_path_buf(),
            detail: format!(
                "could not switch to WAL mode (journal mode is {mode}); is the file system a network one?"
            ),
        });
    }
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL;
         PRAGMA cache_size = -65536;
         PRAGMA temp_store = MEMORY;
         PRAGMA foreign_keys = OFF;",
    )
    .map_err(sql)?;
    Ok(())
}

/// Creates the tables of a new run store, inside the caller's transaction
/// (which also writes the run's first row: a store is born whole or not at
/// all).
pub(crate) fn create(tx: &rusqlite::Transaction<'_>, path: &Path) -> Result<(), StoreError> {
    tx.execute_batch(SCHEMA_V1)
        .map_err(|e| StoreError::sqlite(path, e))?;
    tx.execute_batch(&format!(
        "PRAGMA user_version = {SCHEMA_VERSION}; PRAGMA application_id = {APPLICATION_ID};"
    ))
    .map_err(|e| StoreError::sqlite(path, e))
}

/// The database's `application_id` and `user_version`.
fn id_and_version(conn: &Connection, path: &Path) -> Result<(i64, i64), StoreError> {
    let sql = |e| StoreError::sqlite(path, e);
    let id: i64 = conn
        .query_row("PRAGMA application_id", [], |row| row.get(0))
        .map_err(sql)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(sql)?;
    Ok((id, version))
}

/// Whether the database is one a master began to create and never finished
/// (it was killed before the schema was committed): no application id, no
/// version, no table. Such a store holds nothing and is created again.
pub(crate) fn is_unborn(conn: &Connection, path: &Path) -> Result<bool, StoreError> {
    let sql = |e| StoreError::sqlite(path, e);
    let (id, version) = id_and_version(conn, path)?;
    let objects: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
        .map_err(sql)?;
    Ok(id == 0 && version == 0 && objects == 0)
}

/// Reads the application id and schema version: `Ok(version)` for a run
/// store this build can read or migrate, a clear error otherwise.
pub(crate) fn check(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    check_versions(
        conn,
        path,
        APPLICATION_ID,
        SCHEMA_VERSION,
        OLDEST_SCHEMA_VERSION,
        "run store",
    )
}

fn check_versions(
    conn: &Connection,
    path: &Path,
    application_id: i64,
    supported: i64,
    oldest: i64,
    what: &str,
) -> Result<i64, StoreError> {
    let (id, version) = id_and_version(conn, path)?;
    if id != application_id {
        let detail = if id == 0 && version == 0 {
            "an empty or foreign SQLite database".to_string()
        } else {
            format!("SQLite application id {id:#x}, not a pymw {what}")
        };
        return Err(StoreError::NotAStore {
            path: path.to_path_buf(),
            detail,
        });
    }
    if version > supported {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported,
        });
    }
    if version < oldest {
        return Err(StoreError::OlderSchema {
            path: path.to_path_buf(),
            found: version,
            oldest,
        });
    }
    Ok(version)
}

/// Brings a store of an older (migratable) version to [`SCHEMA_VERSION`], in
/// one transaction.
pub(crate) fn migrate(conn: &Connection, path: &Path, from: i64) -> Result<(), StoreError> {
    if from == SCHEMA_VERSION {
        return Ok(());
    }
    let sql = |e| StoreError::sqlite(path, e);
    let tx = conn.unchecked_transaction().map_err(sql)?;
    for version in from..SCHEMA_VERSION {
        let step = MIGRATIONS[(version - OLDEST_SCHEMA_VERSION) as usize];
        tx.execute_batch(step).map_err(sql)?;
    }
    tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
        .map_err(sql)?;
    tx.execute("UPDATE run SET schema_version = ?1", [SCHEMA_VERSION])
        .map_err(sql)?;
    tx.commit().map_err(sql)
}

/// Opens (creating if needed) the result cache of a runs directory for
/// writing.
pub(crate) fn open_cache_writer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| StoreError::sqlite(path, e))?;
    configure_writer(&conn, path)?;
    let sql = |e| StoreError::sqlite(path, e);
    let tx = conn.unchecked_transaction().map_err(sql)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(sql)?;
    let id: i64 = tx
        .query_row("PRAGMA application_id", [], |row| row.get(0))
        .map_err(sql)?;
    if version == 0 && id == 0 {
        tx.execute_batch(CACHE_SCHEMA_V1).map_err(sql)?;
        tx.execute_batch(&format!(
            "PRAGMA user_version = {CACHE_SCHEMA_VERSION}; PRAGMA application_id = {CACHE_APPLICATION_ID};"
        ))
        .map_err(sql)?;
    }
    tx.commit().map_err(sql)?;
    check_cache(&conn, path)?;
    Ok(conn)
}

/// Checks the result cache's version.
pub(crate) fn check_cache(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    check_versions(
        conn,
        path,
        CACHE_APPLICATION_ID,
        CACHE_SCHEMA_VERSION,
        CACHE_SCHEMA_VERSION,
        "result cache",
    )
}

/// Opens a database for reading only; works while a master writes (WAL).
/// A store on a read-only medium without its `-shm` file is opened as
/// immutable.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    use rusqlite::OpenFlags;
    if !path.exists() {
        return Err(StoreError::Io {
            path: path.to_path_buf(),
            detail: "no such file".to_string(),
        });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let attempt = |uri: String| -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(uri, flags)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // Touch the schema so that WAL set-up errors surface here.
        conn.query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0))?;
        Ok(conn)
    };
    let uri = file_uri(path);
    match attempt(uri.clone()) {
        Ok(conn) => Ok(conn),
        Err(first) => {
            attempt(format!("{uri}?immutable=1")).map_err(|_| StoreError::sqlite(path, first))
        }
    }
}

/// `file:` URI of a path, percent-encoding what URIs reserve.
fn file_uri(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut uri = String::from("file:");
    for byte in absolute.to_string_lossy().bytes() {
        match byte {
            b'?' | b'#' | b'%' | 0x80.. => uri.push_str(&format!("%{byte:02X}")),
            _ => uri.push(byte as char),
        }
    }
    uri
}
