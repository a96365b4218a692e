//! HTCondor backend of pymw: the engine-format layer.
//!
//! This crate holds the pure code that speaks HTCondor's formats, with no
//! process spawning:
//!
//! - [`eventlog`] reads job event logs (the `log =` file), in the classic text
//!   format and in the JSON format (`+UserLogUseXML = 2`), incrementally, so a
//!   log that is still being written can be followed.
//! - [`submit`] renders one submit description for one cluster of pymw tasks.
//! - [`submit_output`] turns what `condor_submit -terse` printed into the
//!   cluster and job ids, or into an error carrying HTCondor's message.
//! - [`query`] parses `condor_q -json` and `condor_history -json` output into
//!   job ads.
//!
//! Every format detail these modules rely on was measured on HTCondor 23.9.6;
//! the recordings live in the shared fixtures and the tests run against them.

pub mod eventlog;
pub mod query;
pub mod submit;
pub mod submit_output;

/// Name of the job ClassAd attribute that carries the pymw task id.
///
/// [`submit`] sets it on every job (`+PymwTaskId = "<task id>"`) and
/// [`query::JobAd::task_id`] reads it back from `condor_q` and
/// `condor_history` output.
pub const TASK_ID_ATTRIBUTE: &str = "PymwTaskId";
