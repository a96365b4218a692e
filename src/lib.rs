#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
// The docs of `#[pymw::main]` show `fn main` on purpose: it is what the
// attribute is about.
#![allow(clippy::needless_doctest_main)]

mod args;

pub use args::{Args, BackendKind, parse_duration};

/// Makes a free function a pymw task.
///
/// ```
/// #[pymw::task]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() {
///     // Still an ordinary function:
///     assert_eq!(square(7), 49);
///     // And a typed handle for a master, `square::task()`:
///     let handle: pymw::Task<u64, u64> = square::task();
///     assert!(handle.name().ends_with("::square"));
/// }
/// ```
///
/// The function must be an item of a module (not declared inside another
/// function's body): the handle module refers to it through `super`.
/// The attribute emits the function untouched, plus a module of the same
/// name holding `task()` (the typed handle: submitting other argument types,
/// or reading the value as another type, does not compile) and `NAME` (the
/// registered name). One argument travels as itself, several as a tuple
/// `(a, b)`, none as `()`.
///
/// A return type spelled `Result<T, E>` (also `anyhow::Result<T>`,
/// `io::Result<T>`) makes `Err` a task failure carrying `E`'s message; the
/// master receives `T`.
///
/// Options:
/// - `name = "..."`: register under this name instead of
///   `module_path!()::function`. Two tasks with one name are reported when the
///   binary starts.
/// - `validate = path::to::fn`: a `fn(&T, &T) -> bool` that decides whether
///   two replicas' values agree when BOINC runs a task redundantly
///   (`min_quorum >= 2`); without it replicas must be bitwise equal.
/// - `crate = "..."`: the path of the pymw crate, when the dependency is
///   renamed (`my_pymw = { package = "pymw", .. }` → `crate = "my_pymw"`).
#[doc(inline)]
pub use pymw_macros::task;

/// Calls [`init`] first in `main`.
///
/// ```no_run
/// #[pymw::main]
/// fn main() {
///     // the master's code
/// }
/// ```
///
/// expands to exactly
///
/// ```no_run
/// fn main() {
///     pymw::init();
///     // the master's code
/// }
/// ```
///
/// With `#[tokio::main]`, put `#[pymw::main]` below it, so that workers start
/// before any runtime is built. Option: `crate = "..."` as for [`task`].
#[doc(inline)]
pub use pymw_macros::main;

#[doc(inline)]
pub use pymw_core::{
    Backend, BackendError, Bytes, Error, Failure, JournalHandle, MAX_RETRIES, Map, Master,
    MasterConfig, Resources, StatusCounts, Task, TaskError, TaskHandle, TaskId, TaskOptions,
    TaskSet, WorkerStats, blocking,
};

/// Takes a worker role if the process was invoked as one (`BIN __pymw ...`),
/// and exits when it is done; otherwise returns, and `main` goes on as the
/// master. Call it first in `main`, or put [`macro@main`] on `main`.
///
/// Also checks that no two tasks share a name. With the `boinc` feature it
/// adds the roles the BOINC client and daemons call.
pub fn init() {
    #[cfg(feature = "boinc")]
    pymw_core::worker::init_with(&pymw_boinc::ROLES);
    #[cfg(not(feature = "boinc"))]
    pymw_core::worker::init();
}

/// The local backend: worker processes of this binary on this machine.
#[cfg(feature = "local")]
#[cfg_attr(docsrs, doc(cfg(feature = "local")))]
pub mod local {
    #[doc(inline)]
    pub use pymw_local::{LocalBackend, LocalConfig};
}

/// The HTCondor backend: tasks run as jobs of an HTCondor pool, one cluster
/// per batch, with this binary as the executable.
#[cfg(feature = "condor")]
#[cfg_attr(docsrs, doc(cfg(feature = "condor")))]
pub mod condor {
    #[doc(inline)]
    pub use pymw_condor::{CondorArgs, CondorBackend, CondorConfig, ExtraExecutable};
}

/// The BOINC backend: tasks run as work units of a BOINC project; the same
/// binary is the app, the validator and the assimilator.
#[cfg(feature = "boinc")]
#[cfg_attr(docsrs, doc(cfg(feature = "boinc")))]
pub mod boinc {
    #[doc(inline)]
    pub use pymw_boinc::{BoincArgs, BoincBackend, BoincConfig, checkpoint};
}

/// The run store: every task, attempt and outcome of a run in SQLite.
#[cfg(feature = "store")]
#[cfg_attr(docsrs, doc(cfg(feature = "store")))]
pub mod store {
    #[doc(inline)]
    pub use pymw_store::{OpenOptions, RunStore, StoreError, StoreJournal};
}

/// Lower-level pieces for backends and tools: the wire format, the worker
/// roles, the backend contract.
pub mod core {
    #[doc(inline)]
    pub use pymw_core::{backend, journal, registry, wire, worker};

    /// CPU time and peak RSS (KiB) of this process so far.
    pub fn sys_usage() -> (std::time::Duration, u64) {
        pymw_core::sys::process_usage()
    }
}

#[doc(hidden)]
pub use pymw_core::__private;
