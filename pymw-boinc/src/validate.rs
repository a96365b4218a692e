//! The validator roles, called by `script_validator` through the shim
//! scripts of [`crate::daemons::PymwDaemons`]:
//!
//! - `boinc-validate-init FILES... RESULT_ID RUNTIME`: exit 0 when the
//!   result's output is a well-formed output envelope of a task this binary
//!   holds, with this binary's fingerprint, carrying a value that decodes
//!   (when the task has a validator function) or the task's own failure (it
//!   returned `Err` or panicked: the app uploads that as the result, see
//!   [`crate::app`]); exit 1 otherwise (the result becomes invalid:
//!   `outcome=6`, `validate_state=2`).
//! - `boinc-validate-compare FILES... FILES2... ID ID2 RUNTIME RUNTIME2`:
//!   exit 0 when both outputs pass the init checks, are of the same task and
//!   agree: two values by [`TaskEntry::replicas_agree`] (the task's
//!   `validate = fn`, else bitwise equality of the encoded values: the
//!   statistics in the envelopes, such as host and times, always differ),
//!   two failures when they are equal; exit 1 otherwise (a value never
//!   agrees with a failure).
//!
//! Outputs come from volunteers' machines: they are read with the size
//! bound of [`pymw_core::wire::read_envelope_file`] and decoded with the
//! bounded decoder; a malformed file is a rejection, never a panic. The
//! reason goes to stderr, which is the validator daemon's log.

use std::ffi::OsString;
use std::path::Path;

use pymw_core::registry::{Registry, TaskEntry};
use pymw_core::wire::{self, Failure, Outcome};

use crate::daemons::{EXIT_INVALID, EXIT_VALID, ValidateCompareCall, ValidateInitCall};

/// An accepted output: the task and its encoded value or its failure.
#[derive(Debug)]
pub struct ValidOutput {
    /// The task (of this binary).
    pub task: &'static TaskEntry,
    /// The encoded value, or the task's own failure.
    pub value: Result<Vec<u8>, Failure>,
}

/// Checks one output file (see the module docs).
pub fn check_output(path: &Path) -> Result<ValidOutput, String> {
    let bytes = wire::read_envelope_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let body = wire::decode_output(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let task = Registry::global().get(body.task).ok_or_else(|| {
        format!(
            "output of task `{}`, which this binary does not hold",
            xml_safe(body.task)
        )
    })?;
    let ours = (task.fingerprint)();
    if body.fingerprint != ours {
        return Err(format!(
            "output made by another build of `{}` (fingerprint {:016x}, this binary has {ours:016x})",
            task.name, body.fingerprint
        ));
    }
    let value = match body.outcome {
        Outcome::Ok(value) => value.to_vec(),
        Outcome::Failed(failure) if crate::app::is_task_failure(&failure) => {
            return Ok(ValidOutput {
                task,
                value: Err(failure),
            });
        }
        Outcome::Failed(failure) => {
            return Err(format!(
                "output carries a failure that is not the task's own: {failure}"
            ));
        }
    };
    if task.validate.is_some() {
        task.replicas_agree(&value, &value)
            .map_err(|e| format!("value of `{}` does not decode: {e}", task.name))?;
    }
    Ok(ValidOutput {
        task,
        value: Ok(value),
    })
}

fn xml_safe(s: &str) -> String {
    crate::xml::excerpt(&s.escape_debug().to_string(), 200)
}

fn single_file<'a>(files: &'a [std::path::PathBuf], what: &str) -> Result<&'a Path, String> {
    match files {
        [one] => Ok(one),
        [] => Err(format!("no output file for {what}")),
        more => Err(format!(
            "{} output files for {what}; pymw jobs have one",
            more.len()
        )),
    }
}

/// Whether the two outputs agree (`Ok(false)`: they differ).
pub fn compare_outputs(a: &Path, b: &Path) -> Result<bool, String> {
    let a = check_output(a)?;
    let b = check_output(b)?;
    if !std::ptr::eq(a.task, b.task) {
        return Ok(false);
    }
    match (&a.value, &b.value) {
        (Ok(x), Ok(y)) => a.task.replicas_agree(x, y),
        (Err(x), Err(y)) => Ok(x == y),
        _ => Ok(false),
    }
}

/// The `boinc-validate-init` role.
pub fn init_role(args: Vec<String>) -> i32 {
    let args: Vec<OsString> = args.into_iter().map(OsString::from).collect();
    let call = match ValidateInitCall::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pymw boinc-validate-init: {e}");
            return EXIT_INVALID;
        }
    };
    let verdict =
        single_file(&call.files, &format!("result {}", call.result_id)).and_then(check_output);
    match verdict {
        Ok(_) => EXIT_VALID,
        Err(e) => {
            eprintln!(
                "pymw boinc-validate-init: result {} invalid: {e}",
                call.result_id
            );
            EXIT_INVALID
        }
    }
}

/// The `boinc-validate-compare` role.
pub fn compare_role(args: Vec<String>) -> i32 {
    let args: Vec<OsString> = args.into_iter().map(OsString::from).collect();
    let call = match ValidateCompareCall::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pymw boinc-validate-compare: {e}");
            return EXIT_INVALID;
        }
    };
    let [ida, idb] = call.result_ids;
    let verdict = single_file(&call.files[0], &format!("result {ida}")).and_then(|a| {
        let b = single_file(&call.files[1], &format!("result {idb}"))?;
        compare_outputs(a, b)
    });
    match verdict {
        Ok(true) => EXIT_VALID,
        Ok(false) => {
            eprintln!("pymw boinc-validate-compare: results {ida} and {idb} differ");
            EXIT_INVALID
        }
        Err(e) => {
            eprintln!("pymw boinc-validate-compare: results {ida} and {idb}: {e}");
            EXIT_INVALID
        }
    }
}
