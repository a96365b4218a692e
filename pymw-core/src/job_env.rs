//! The master's settings that travel with every job.
//!
//! A local worker inherits the master's environment; an HTCondor job does
//! not (it starts with HTCondor's own), so without these a job would apply
//! another message size limit or stack size than the master. Nothing here is
//! HTCondor's: the BOINC backend can pass the same list.

use crate::wire;

/// The environment variables a job gets from the master, in this order:
///
/// - `PYMW_MAX_MESSAGE_BYTES`: the message size limit, always, with the value
///   the master applies ([`wire::max_message_bytes`]), so a job refuses
///   exactly what the master would.
/// - `PYMW_TASK_STACK`: the task thread's stack size, when set.
/// - `RUST_LOG`, `RUST_BACKTRACE`, `RUST_LIB_BACKTRACE`: logging and
///   backtraces, when set, as a local worker would see them.
pub const FORWARDED_VARIABLES: &[&str] = &[
    "PYMW_MAX_MESSAGE_BYTES",
    "PYMW_TASK_STACK",
    "RUST_LOG",
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
];

/// `(NAME, VALUE)` of every [`FORWARDED_VARIABLES`] entry the master has: the
/// effective message size limit, and the others as they are set in its
/// environment (unset or not UTF-8: left out).
pub fn job_environment() -> Vec<(String, String)> {
    job_environment_from(wire::max_message_bytes(), |name| std::env::var(name).ok())
}

/// [`job_environment`] with the limit and the variables given.
fn job_environment_from(
    max_message_bytes: u64,
    var: impl Fn(&str) -> Option<String>,
) -> Vec<(String, String)> {
    FORWARDED_VARIABLES
        .iter()
        .filter_map(|&name| {
            let value = if name == "PYMW_MAX_MESSAGE_BYTES" {
                Some(max_message_bytes.to_string())
            } else {
                var(name)
            };
            value.map(|v| (name.to_owned(), v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_always_travels_the_rest_when_set() {
        let env = job_environment_from(4096, |name| match name {
            "RUST_LOG" => Some("info".into()),
            "PYMW_MAX_MESSAGE_BYTES" => Some("not a number".into()),
            _ => None,
        });
        assert_eq!(
            env,
            vec![
                ("PYMW_MAX_MESSAGE_BYTES".into(), "4096".into()),
                ("RUST_LOG".into(), "info".into()),
            ]
        );
        let all = job_environment_from(1, |name| Some(format!("{name}-value")));
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, FORWARDED_VARIABLES);
        assert_eq!(
            job_environment()[0],
            (
                "PYMW_MAX_MESSAGE_BYTES".to_owned(),
                wire::max_message_bytes().to_string()
            )
        );
    }
}
