//! Errors of the master API.

use crate::wire::Failure;
use std::fmt;
use std::time::Duration;

/// Why the master could not start or go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `pymw::init()` was not called: without it, worker processes started
    /// from this binary would run `main` as masters again.
    #[error(
        "pymw::init() was not called: call it first in main (or put #[pymw::main] on main) \
         so the binary can act as its own worker"
    )]
    NotInitialized,
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
    /// The master needs a tokio runtime to start in.
    #[error(
        "the async master must be started inside a tokio runtime: use #[tokio::main], or pymw::blocking::Master"
    )]
    NoRuntime,
    /// The run store (journal) could not be opened or read; the message
    /// names the store and the fix.
    #[error("{0}")]
    Journal(String),
    /// Creating the runtime of the blocking master failed.
    #[error("could not start the tokio runtime: {0}")]
    Runtime(String),
    /// The blocking master was started inside a tokio runtime, where its
    /// blocking calls would stall the runtime and panic.
    #[error(
        "pymw::blocking::Master cannot run inside a tokio runtime (waiting would block the \
         runtime's thread, and dropping it would panic): in async code use pymw::Master and \
         `.await` its handles, or start the blocking master on a thread of its own \
         (std::thread::spawn), outside the runtime"
    )]
    InsideRuntime,
    /// An environment variable pymw reads has a value it cannot use.
    #[error("{variable}={value:?} cannot be used: {reason}")]
    InvalidEnv {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// Why, and what to write instead.
        reason: String,
    },
    /// A setting of the master (or of its command line) cannot be used.
    #[error("{0}")]
    InvalidConfig(String),
    /// The backend asked for is not compiled into this binary.
    #[error(
        "this binary was built without the `{backend}` backend: enable the `{backend}` feature \
         of pymw (in Cargo.toml: pymw = {{ version = \"...\", features = [\"{backend}\"] }})"
    )]
    BackendNotBuilt {
        /// The backend's name (and the feature's).
        backend: &'static str,
    },
}

/// Why a task has no value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskError {
    /// The task ran and failed: it returned `Err`, panicked, or its input or
    /// output did not decode.
    Failed {
        /// The task's name.
        task: &'static str,
        /// What failed.
        failure: Failure,
        /// The host it ran on.
        host: String,
        /// The tail of the worker's stderr.
        stderr_tail: String,
    },
    /// Every attempt was lost (worker crashed or was killed, job held or
    /// removed) and the retry limit is reached.
    WorkerLost {
        /// The task's name.
        task: &'static str,
        /// Why the last attempt was lost.
        cause: String,
        /// How many attempts were made.
        attempts: u32,
        /// The tail of the worker's stderr.
        stderr_tail: String,
    },
    /// The task ran longer than its timeout and was stopped.
    TimedOut {
        /// The task's name.
        task: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// The task was cancelled.
    Cancelled {
        /// The task's name.
        task: &'static str,
    },
    /// The backend could not take the task, or gave up on it for a reason
    /// that running it again would not change (`Event::Failed`).
    Backend {
        /// The task's name.
        task: &'static str,
        /// The backend's message.
        message: String,
    },
    /// The run store could not record (disk full, read-only): the run
    /// stopped, since results that cannot be kept would be lost on the next
    /// restart. What was committed before is kept.
    NotRecorded {
        /// The task's name.
        task: &'static str,
        /// The store's message, with the fix.
        message: String,
    },
    /// The master shut down before the task finished.
    MasterGone,
    /// The task's argument cannot be sent to a worker: its `Serialize`
    /// failed, or postcard cannot carry its type. Refused at submit; nothing
    /// was sent.
    InvalidArgument {
        /// The task's name.
        task: &'static str,
        /// What stands in the way (the serde feature, or the message the
        /// argument's `Serialize` gave) and what to use instead.
        message: String,
    },
    /// The task's encoded argument is larger than the message size limit
    /// (`PYMW_MAX_MESSAGE_BYTES`). Refused at submit; nothing was sent.
    InputTooLarge {
        /// The task's name.
        task: &'static str,
        /// Bytes the input would take on the wire.
        size: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The task's options cannot be used (a zero timeout, too many
    /// retries). Refused at submit; nothing was sent.
    InvalidOptions {
        /// The task's name.
        task: &'static str,
        /// What is wrong and what to write instead.
        message: String,
    },
}

impl TaskError {
    /// The panic message, if the task panicked.
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            TaskError::Failed {
                failure: Failure::Panic { message, .. },
                ..
            } => Some(message),
            _ => None,
        }
    }

    /// `file:line:column` of the panic, if the task panicked and it is known.
    pub fn panic_location(&self) -> Option<&str> {
        match self {
            TaskError::Failed {
                failure: Failure::Panic { location, .. },
                ..
            } => location.as_deref(),
            _ => None,
        }
    }

    /// The tail of the worker's stderr, when there is one.
    pub fn stderr_tail(&self) -> Option<&str> {
        match self {
            TaskError::Failed { stderr_tail, .. } | TaskError::WorkerLost { stderr_tail, .. } => {
                Some(stderr_tail)
            }
            _ => None,
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Failed {
                task,
                failure,
                host,
                ..
            } => {
                write!(f, "task `{task}` failed")?;
                if !host.is_empty() {
                    write!(f, " on {host}")?;
                }
                write!(f, ": {failure}")
            }
            TaskError::WorkerLost {
                task,
                cause,
                attempts,
                ..
            } => write!(
                f,
                "task `{task}` lost its worker {attempts} time(s), giving up; last cause: {cause}"
            ),
            TaskError::TimedOut { task, after } => {
                write!(f, "task `{task}` timed out after {after:?}")
            }
            TaskError::Cancelled { task } => write!(f, "task `{task}` was cancelled"),
            TaskError::Backend { task, message } => {
                write!(f, "task `{task}` failed in the backend: {message}")
            }
            TaskError::NotRecorded { task, message } => {
                write!(
                    f,
                    "task `{task}` stopped: the run store cannot record: {message}"
                )
            }
            TaskError::MasterGone => write!(f, "the master shut down before the task finished"),
            TaskError::InvalidArgument { task, message } => {
                write!(f, "task `{task}` refused at submit: {message}")
            }
            TaskError::InputTooLarge { task, size, limit } => write!(
                f,
                "task `{task}` refused at submit: its input is {size} bytes, over the limit of \
                 {limit} bytes: pass less (e.g. a path the workers can read), or raise \
                 PYMW_MAX_MESSAGE_BYTES (e.g. 2G) for the master and its workers"
            ),
            TaskError::InvalidOptions { task, message } => {
                write!(f, "task `{task}` refused at submit: {message}")
            }
        }
    }
}

impl std::error::Error for TaskError {}
