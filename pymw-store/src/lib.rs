//! The run store of pymw: every task, attempt and outcome of a run, in an
//! SQLite database, so that a master that dies can be restarted without
//! redoing finished work, and so that `pymw status`, `pymw errors` and
//! `pymw report` can read a run, also while its master writes.
//!
//! A run lives in `<root>/<name>/` (root default `./pymw-runs`):
//!
//! ```text
//! pymw-runs/
//!   cache.sqlite            result cache shared by the runs (opt-in)
//!   cache-values/           cached values of 64 KiB and more
//!   monte-pi/
//!     run.sqlite            the run (WAL mode: also run.sqlite-wal, -shm)
//!     outputs/              values of 64 KiB and more
//!     lock                  held by the master that has the run open
//! ```
//!
//! The schema is documented in `SCHEMA.md` next to this crate's
//! `Cargo.toml`, and versioned with `PRAGMA user_version`
//! ([`SCHEMA_VERSION`]): opening a store written by a newer pymw is
//! [`StoreError::NewerSchema`], naming both versions and the fix.
//!
//! The master records in batches: a [`Batch`] per turn
//! ([`RunStore::batch`], [`RunStore::record`]), or
//! [`RunStore::record_submitted`], [`RunStore::record_started`],
//! [`RunStore::record_finished`]; a writer thread commits them about every
//! 10 ms, one transaction per batch, so recording costs the master's hot
//! path a channel send per batch.
//!
//! ```
//! use pymw_store::{AttemptOutcome, FinishedTask, OpenOptions, RunStore, SubmittedTask, TaskIdentity, input_hash, now_ns};
//! # let root = tempfile::tempdir().unwrap();
//! let store = RunStore::open(root.path(), "demo", OpenOptions::new())?;
//! let input = [1u8, 2, 3];
//! let identity = TaskIdentity::new(0xfeed, &input, 0);
//! store.record_submitted(vec![SubmittedTask {
//!     identity,
//!     task: "demo::double".into(),
//!     fingerprint: 0xfeed,
//!     position: 0,
//!     input_hash: input_hash(&input),
//!     submitted_ns: now_ns(),
//! }]);
//! store.record_finished(vec![FinishedTask {
//!     identity,
//!     attempt: 0,
//!     outcome: AttemptOutcome::Value(vec![2, 4, 6].into()),
//!     stats: Default::default(),
//!     stderr_tail: String::new(),
//!     started_ns: None,
//!     finished_ns: now_ns(),
//! }]);
//! store.close()?;
//!
//! // Later, a restarted master:
//! let store = RunStore::open(root.path(), "demo", OpenOptions::new().resume(true))?;
//! let finished = store.load_finished()?;
//! assert!(finished.contains_key(&identity));
//! # Ok::<(), pymw_store::StoreError>(())
//! ```

mod block;
mod error;
pub mod format;
mod hash;
mod journal;
mod read;
mod record;
mod schema;
mod store;
mod writer;

#[cfg(feature = "fixture")]
pub mod fixture;

pub use error::StoreError;
pub use hash::{IdentityHash, IdentityHasher, InputHash, ParseHexError, TaskIdentity, input_hash};
pub use journal::StoreJournal;
pub use read::{
    AttemptRecord, Counts, RunInfo, RunListing, RunReader, RunState, StaleResults, TaskDetail,
    TaskRecord, age_ns, dir_size, list_runs, remove_run,
};
pub use record::{
    AttemptEvent, AttemptOutcome, AttemptState, Batch, CacheEntry, FailureKind, FinishedTask,
    InFlight, Nanos, StoredFailure, StoredOutcome, StoredValue, SubmittedTask, TaskState, now_ns,
};
pub use schema::{
    APPLICATION_ID, CACHE_APPLICATION_ID, CACHE_FILE, CACHE_SCHEMA_VERSION, DB_FILE,
    OLDEST_SCHEMA_VERSION, SCHEMA_VERSION,
};
pub use store::{OpenOptions, RunStore, default_root, lock_holder, valid_run_name};

/// The wire types the store records ([`WorkerStats`], [`Failure`]).
pub use pymw_core::wire::{Failure, WorkerStats};
