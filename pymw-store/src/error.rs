//! Errors of the run store. Each message names the problem and what to do.

use std::path::{Path, PathBuf};

/// Why the run store could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The disk (or the quota) holding the store is full.
    #[error(
        "run store {path}: the disk is full ({detail}); every result committed before this is kept: \
         free some space (or move the runs directory to a bigger disk and point --runs-dir there) and start \
         the program again with the same run name to resume"
    )]
    DiskFull {
        /// The store's directory.
        path: PathBuf,
        /// SQLite's or the system's message.
        detail: String,
    },
    /// The store cannot be written: a read-only file, directory or file
    /// system, or files owned by another user.
    #[error(
        "run store {path} is read-only ({detail}): make the directory and its files writable \
         (chmod u+w, or mount read-write), or copy the runs directory somewhere writable and point --runs-dir \
         there; results committed so far are kept"
    )]
    ReadOnly {
        /// The store's directory (or file).
        path: PathBuf,
        /// SQLite's or the system's message.
        detail: String,
    },
    /// The store was written by a newer pymw with a schema this one does not
    /// know.
    #[error(
        "run store {path} has schema version {found}, but this pymw understands versions up to {supported}: \
         use the newer pymw that wrote it (or upgrade), or start a new run under another name"
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The version in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// The store's schema is older than this pymw can migrate.
    #[error(
        "run store {path} has schema version {found}, which this pymw can no longer migrate (oldest: {oldest}): \
         read it with the pymw that wrote it, or start a new run under another name"
    )]
    OlderSchema {
        /// The database file.
        path: PathBuf,
        /// The version in the file.
        found: i64,
        /// The oldest version this build migrates.
        oldest: i64,
    },
    /// The file is an SQLite database, or something else, but not a run store.
    #[error("{path} is not a pymw run store ({detail}): choose another run name or runs directory")]
    NotAStore {
        /// The database file.
        path: PathBuf,
        /// What was found.
        detail: String,
    },
    /// The run's master was stopped while it created the store: it holds
    /// nothing yet (the next master of the run creates it again).
    #[error(
        "run store {dir} was never completed: its master stopped while creating it; starting the program \
         again with the same run name creates it anew (or remove it: `pymw clean NAME`)"
    )]
    Unborn {
        /// The run's directory.
        dir: PathBuf,
    },
    /// No run of that name.
    #[error("no run named `{name}` in {root} (`pymw runs --root {root}` lists the runs there)")]
    NotFound {
        /// The runs directory.
        root: PathBuf,
        /// The run asked for.
        name: String,
    },
    /// The run exists and the caller did not ask to resume it.
    #[error(
        "run `{name}` already exists in {root}: resume it (--resume), choose another name, or remove it (`pymw clean {name}`)"
    )]
    AlreadyExists {
        /// The runs directory.
        root: PathBuf,
        /// The run.
        name: String,
    },
    /// Another master has the run open.
    #[error(
        "run `{name}` is in use by another master ({holder}): wait for it to finish, stop it, or choose another run name"
    )]
    Locked {
        /// The run.
        name: String,
        /// Who holds it: "pid N on HOST", as that master wrote it.
        holder: String,
    },
    /// The run name cannot be a directory name.
    #[error(
        "`{name}` is not a valid run name: use letters, digits, `-`, `_` and `.` (not starting with `.`), at most 128 characters"
    )]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// The store's writer thread is gone (it panicked, or the store was
    /// closed).
    #[error("the run store's writer thread stopped: {0}")]
    WriterGone(String),
    /// Any other SQLite error.
    #[error("run store {path}: {detail}")]
    Sqlite {
        /// The store's directory or file.
        path: PathBuf,
        /// SQLite's message.
        detail: String,
    },
    /// Any other I/O error.
    #[error("run store {path}: {detail}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The system's message.
        detail: String,
    },
    /// Stored bytes that do not decode (a damaged file).
    #[error("run store {path} is damaged: {detail}")]
    Corrupt {
        /// The store.
        path: PathBuf,
        /// What did not decode.
        detail: String,
    },
}

impl StoreError {
    /// Classifies an SQLite error: disk full and read-only get their own
    /// variants, so callers and users see the fix.
    pub(crate) fn sqlite(path: &Path, error: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode;
        let detail = error.to_string();
        let path = path.to_path_buf();
        match error.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::DiskFull { path, detail },
            Some(ErrorCode::ReadOnly) => StoreError::ReadOnly { path, detail },
            Some(ErrorCode::PermissionDenied) => StoreError::ReadOnly { path, detail },
            Some(ErrorCode::NotADatabase) => StoreError::NotAStore { path, detail },
            Some(ErrorCode::DatabaseCorrupt) => StoreError::Corrupt { path, detail },
            _ => StoreError::Sqlite { path, detail },
        }
    }

    /// Classifies an I/O error: ENOSPC and EDQUOT are disk full; EROFS and
    /// EACCES are read-only.
    pub(crate) fn io(path: &Path, error: std::io::Error) -> StoreError {
        let detail = error.to_string();
        let path = path.to_path_buf();
        match error.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => StoreError::DiskFull { path, detail },
            Some(libc::EROFS) | Some(libc::EACCES) | Some(libc::EPERM) => {
                StoreError::ReadOnly { path, detail }
            }
            _ => StoreError::Io { path, detail },
        }
    }

    /// Whether retrying later could succeed (disk full, read-only): the
    /// writer keeps what it could not commit and tries again.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::DiskFull { .. }
                | StoreError::ReadOnly { .. }
                | StoreError::Io { .. }
                | StoreError::Sqlite { .. }
        )
    }
}
