//! Turning what comes back from BOINC into the master's events.

use pymw_core::backend::{AttemptKey, Event};
use pymw_core::registry::TaskEntry;
use pymw_core::wire::{self, Failure, Outcome, WorkerStats};

use crate::WuErrorMask;
use crate::daemons::WuErrorReason;
use crate::remote::parse_stderr_out;
use crate::spool::FailureRecord;

/// Most of one result's stderr kept in an event.
const STDERR_PER_RESULT: usize = 8 * 1024;
/// Most stderr kept in an event in all.
const STDERR_TOTAL: usize = 32 * 1024;

/// The event for an output envelope of attempt `key` of `task`: `Finished`
/// with its value or failure, or `Lost` when it is malformed or of another
/// task or build. Decoding is bounded by the process's message limit.
pub(crate) fn output_event(key: AttemptKey, task: &'static TaskEntry, bytes: &[u8]) -> Event {
    let body = match wire::decode_output(bytes) {
        Ok(body) => body,
        Err(e) => {
            return Event::Lost {
                key,
                cause: format!("the output returned by BOINC is not a valid pymw output: {e}"),
                stderr_tail: String::new(),
            };
        }
    };
    if body.task != task.name || body.fingerprint != (task.fingerprint)() {
        return Event::Lost {
            key,
            cause: format!(
                "the output returned by BOINC is of task `{}` (fingerprint {:016x}), not `{}` ({:016x})",
                body.task.escape_debug(),
                body.fingerprint,
                task.name,
                (task.fingerprint)()
            ),
            stderr_tail: String::new(),
        };
    }
    let outcome = match body.outcome {
        Outcome::Ok(value) => Ok(value.to_vec()),
        Outcome::Failed(failure) => Err(failure),
    };
    Event::Finished {
        key,
        outcome,
        stats: body.stats,
        stderr_tail: String::new(),
    }
}

/// Says a result's end as the other backends do: names the signal of the
/// client's "process got signal N" (`signal 11 (SIGSEGV)`); for "process
/// exited with code N", says "exit code N" rather than "exit status N",
/// and names the signal of 128 + N, which the app exits with when its task
/// process died of a signal the client would restart it after.
fn with_signal_name(text: &str) -> String {
    const EXITED: &str = "process exited with code ";
    if let Some(at) = text.find(EXITED) {
        let start = at + EXITED.len();
        let digits = text[start..].bytes().take_while(u8::is_ascii_digit).count();
        let Ok(code) = text[start..start + digits].parse::<i32>() else {
            return text.to_owned();
        };
        let mut out = text.replacen(
            &format!("(exit status {code})"),
            &format!("(exit code {code})"),
            1,
        );
        if (129..160).contains(&code) {
            let name = pymw_core::sys::signal_name(code - 128);
            if name.starts_with("SIG") {
                out.push_str(&format!(
                    " (128 + {}: the task process died of {name})",
                    code - 128
                ));
            }
        }
        return out;
    }
    const AT: &str = "got signal ";
    let Some(at) = text.find(AT) else {
        return text.to_owned();
    };
    let start = at + AT.len();
    let digits = text[start..].bytes().take_while(u8::is_ascii_digit).count();
    let Ok(signal) = text[start..start + digits].parse::<i32>() else {
        return text.to_owned();
    };
    let name = pymw_core::sys::signal_name(signal);
    format!(
        "{} ({name}){}",
        &text[..start + digits],
        &text[start + digits..]
    )
}

/// The stderr of a `stderr_out`: the app's own text when the client's
/// wrapper is there, else the whole text.
fn app_stderr(stderr_out: &str) -> String {
    parse_stderr_out(stderr_out)
        .stderr_txt
        .unwrap_or_else(|| stderr_out.to_owned())
}

fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// The event for a failed work unit: `Failed` when its valid results
/// never agreed (`too_many_success_results`: a nondeterministic task;
/// another work unit would not agree either); `Finished` with the task's
/// failure when every result that reported one agrees on it (results of
/// builds before task failures became results; a task that returned `Err`
/// or panicked fails the same way everywhere); else `Lost` with the error
/// mask, what became of each result and their stderr.
pub(crate) fn failure_event(key: AttemptKey, record: &FailureRecord) -> Event {
    let mask = WuErrorMask(record.error_mask);
    let wu = record.wu_name.as_deref().unwrap_or("?");
    let mut cause = if mask.is_empty() {
        format!("BOINC work unit {wu} ({}) returned no output", record.wu_id)
    } else {
        format!(
            "BOINC work unit {wu} ({}) failed: error_mask {mask}",
            record.wu_id
        )
    };
    if mask.contains(WuErrorReason::TooManySuccessResults) {
        // Valid results that never agreed: another work unit would do the
        // same. A failure of its own, said plainly, and not retried.
        let replicas = record
            .results
            .iter()
            .filter(|r| r.outcome == 1 && r.validate_state != 2)
            .count();
        let mut message = format!(
            "BOINC work unit {wu} ({}): {replicas} replicas, none agreed: the task is not \
             deterministic; give it a `validate` function (`#[pymw::task(validate = close_enough)]`) \
             that accepts replicas differing only in what does not matter",
            record.wu_id
        );
        for r in &record.results {
            message.push_str("; ");
            message.push_str(&r.describe());
        }
        return Event::Failed { key, message };
    }
    if mask.contains(WuErrorReason::NoCanonicalResult) {
        cause.push_str(
            " (results were returned but did not agree or were rejected by the validator)",
        );
    }
    if let Some(note) = &record.note {
        cause.push_str("; ");
        cause.push_str(note);
    }
    for r in &record.results {
        cause.push_str("; ");
        cause.push_str(&with_signal_name(&r.describe()));
    }
    let mut stderr_tail = String::new();
    let mut failures: Vec<Failure> = Vec::new();
    for r in &record.results {
        if r.stderr_out.is_empty() {
            continue;
        }
        let text = app_stderr(&r.stderr_out);
        if r.outcome == 3
            && let Some(f) = crate::app::parse_failure_line(&text)
        {
            failures.push(f);
        }
        if stderr_tail.len() < STDERR_TOTAL {
            stderr_tail.push_str(&format!("--- stderr of {} ---\n", r.name));
            stderr_tail.push_str(tail(&text, STDERR_PER_RESULT));
            if !stderr_tail.ends_with('\n') {
                stderr_tail.push('\n');
            }
        }
    }
    let agreed = failures.first().filter(|f| {
        matches!(f, Failure::TaskError { .. } | Failure::Panic { .. })
            && failures.iter().all(|g| g == *f)
    });
    if let Some(failure) = agreed {
        return Event::Finished {
            key,
            outcome: Err(failure.clone()),
            stats: WorkerStats::default(),
            stderr_tail,
        };
    }
    Event::Lost {
        key,
        cause,
        stderr_tail,
    }
}

/// The stderr of a failed remote job (from `query_completed_job`, when the
/// server can answer it), with the same failure decoding as
/// [`failure_event`].
pub(crate) fn remote_failure_event(
    key: AttemptKey,
    job: &str,
    errors: &[String],
    exit_statuses: &[i64],
    stderr_out: Option<&str>,
) -> Event {
    let mut cause = format!("BOINC job {job} failed");
    if !errors.is_empty() {
        cause.push_str(": ");
        cause.push_str(&errors.join(", "));
    }
    if !exit_statuses.is_empty() {
        let statuses: Vec<String> = exit_statuses.iter().map(i64::to_string).collect();
        cause.push_str(&format!(
            "; exit status of each failed result: {}",
            statuses.join(", ")
        ));
    }
    let stderr_tail = match stderr_out {
        Some(s) => tail(&app_stderr(s), STDERR_TOTAL).to_owned(),
        None => "(the server did not return the failed results' stderr: BOINC 7.20.5's \
                 query_completed_job fails for jobs without a canonical result)"
            .to_owned(),
    };
    if let Some(failure @ (Failure::TaskError { .. } | Failure::Panic { .. })) =
        crate::app::parse_failure_line(&stderr_tail)
    {
        return Event::Finished {
            key,
            outcome: Err(failure),
            stats: WorkerStats::default(),
            stderr_tail,
        };
    }
    Event::Lost {
        key,
        cause,
        stderr_tail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::ResultRecord;

    fn result(id: u64, outcome: i64, validate_state: i64, exit_status: i64) -> ResultRecord {
        ResultRecord {
            id,
            name: format!("wu_{id}"),
            outcome,
            client_state: if outcome == 3 { 3 } else { 5 },
            exit_status,
            validate_state,
            stderr_out: String::new(),
        }
    }

    #[test]
    fn replicas_that_never_agree_fail_once_and_say_why() {
        let record = FailureRecord {
            wu_id: 7,
            wu_name: Some("pymw_r_7".into()),
            error_mask: WuErrorReason::TooManySuccessResults.bit(),
            results: vec![result(1, 1, 4, 0), result(2, 1, 4, 0), result(3, 1, 4, 0)],
            note: None,
        };
        match failure_event(9, &record) {
            Event::Failed { key: 9, message } => {
                assert!(
                    message.contains("3 replicas, none agreed: the task is not deterministic"),
                    "{message}"
                );
                assert!(message.contains("`validate` function"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            with_signal_name("error (exit status 11): process got signal 11; next"),
            "error (exit status 11): process got signal 11 (SIGSEGV); next"
        );
        assert_eq!(
            with_signal_name(
                "error while computing (exit status 3): process exited with code 3 (0x3, -253)"
            ),
            "error while computing (exit code 3): process exited with code 3 (0x3, -253)"
        );
        assert!(
            with_signal_name("(exit status 137): process exited with code 137 (0x89, -119)")
                .ends_with("(128 + 9: the task process died of SIGKILL)")
        );
        // Crashes everywhere are still a lost attempt (retried).
        let record = FailureRecord {
            error_mask: WuErrorReason::TooManyErrorResults.bit(),
            results: vec![result(1, 3, 0, 139), result(2, 3, 0, 139)],
            ..record
        };
        assert!(matches!(
            failure_event(9, &record),
            Event::Lost { key: 9, .. }
        ));
    }
}
