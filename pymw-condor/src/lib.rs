//! HTCondor backend of pymw.
//!
//! [`CondorBackend`] runs a master's tasks as HTCondor jobs: one cluster per
//! batch, the binary itself as the executable, progress read from the run's
//! job event log (see [`backend`]). [`CondorArgs`] are its command-line
//! options, flattened into `pymw::Args`.
//!
//! Below it lies the pure code that speaks HTCondor's formats, with no
//! process spawning:
//!
//! - [`eventlog`] reads job event logs (the `log =` file), in the classic text
//!   format and in the JSON format (`+UserLogUseXML = 2`), incrementally, so a
//!   log that is still being written can be followed.
//! - [`submit`] renders one submit description for one cluster of pymw tasks.
//! - [`submit_output`] turns what `condor_submit -terse` printed into the
//!   cluster and job ids, or into an error carrying HTCondor's message.
//! - [`environment`] lists the master's settings every job gets.
//! - [`query`] parses `condor_q -json` and `condor_history -json` output into
//!   job ads.
//!
//! Every format detail these modules rely on was measured on HTCondor 23.9.6;
//! the recordings live in the shared fixtures and the tests run against them.

pub mod backend;
pub mod eventlog;
pub mod query;
pub mod submit;
pub mod submit_output;
mod tracker;

pub use backend::{CondorArgs, CondorBackend, CondorConfig, ExtraExecutable};

/// Name of the job ClassAd attribute that carries the pymw task id.
///
/// [`submit`] sets it on every job (`+PymwTaskId = "<task id>"`) and
/// [`query::JobAd::task_id`] reads it back from `condor_q` and
/// `condor_history` output.
pub const TASK_ID_ATTRIBUTE: &str = "PymwTaskId";
