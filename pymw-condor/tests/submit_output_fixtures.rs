//! `condor_submit` output parsing against every recording in `submit/` and
//! the submit transcripts of the event log cases.

mod common;

use pymw_condor::submit_output::{SubmitOutputError, SubmittedJobs, parse_submit_output};

fn jobs(cluster: u64, last_proc: u64) -> Result<SubmittedJobs, SubmitOutputError> {
    Ok(SubmittedJobs {
        cluster,
        first_proc: 0,
        last_proc,
    })
}

fn rejected(message: &str) -> Result<SubmittedJobs, SubmitOutputError> {
    Err(SubmitOutputError::Rejected {
        exit_code: Some(1),
        message: message.to_owned(),
    })
}

#[test]
fn every_recorded_condor_submit_run() {
    let syntax = "ERROR: on Line 4 of submit file:\nERROR: Failed to parse command file (line 4).";
    let missing_exe = "ERROR: Executable file no-such-program does not exist";
    let expected = [
        ("terse-single", jobs(46, 0)),
        ("terse-cluster5", jobs(47, 4)),
        ("plain-single", jobs(48, 0)),
        ("plain-cluster5", jobs(49, 4)),
        ("error-syntax", rejected(syntax)),
        ("error-syntax-terse", rejected(syntax)),
        (
            "error-bad-queue",
            rejected(
                "ERROR: on Line 5 of submit file: invalid Queue statement\n\
                 ERROR: Failed to parse command file (line 5).",
            ),
        ),
        (
            "error-unterminated-quote",
            rejected(
                "ERROR: Unterminated double-quote.\n\
                 The full arguments you specified were: \"in.txt out.txt",
            ),
        ),
        ("error-missing-executable", rejected(missing_exe)),
        ("error-missing-executable-terse", rejected(missing_exe)),
        (
            "error-no-such-submit-file",
            rejected(
                "ERROR: Failed to open command file (no-such-file.sub) (No such file or directory)",
            ),
        ),
    ];
    // Every recorded run is in the table above.
    let mut recorded: Vec<String> = common::list("submit")
        .into_iter()
        .filter_map(|f| {
            f.strip_prefix("condor_submit-")?
                .strip_suffix(".exitcode")
                .map(str::to_owned)
        })
        .collect();
    recorded.sort();
    let mut names: Vec<String> = expected.iter().map(|(n, _)| (*n).to_owned()).collect();
    names.sort();
    assert_eq!(recorded, names);

    for (name, want) in expected {
        let base = format!("submit/condor_submit-{name}");
        let code: i32 = common::read_text(&format!("{base}.exitcode"))
            .trim()
            .parse()
            .unwrap();
        let stdout = common::read(&format!("{base}.stdout"));
        let stderr = common::read(&format!("{base}.stderr"));
        let got = parse_submit_output(Some(code), &stdout, &stderr);
        assert_eq!(got, want, "{name}");
        if let Err(err) = got {
            assert!(
                err.to_string()
                    .starts_with("condor_submit failed (exit code 1): ERROR: "),
                "{err}"
            );
        }
    }
}

/// The plain `condor_submit` output recorded in each case's `commands.txt`.
#[test]
fn submit_transcripts_of_the_event_log_cases() {
    let mut seen = 0;
    for format in ["text", "json"] {
        for case in common::list(&format!("eventlog/{format}")) {
            let text = common::read_text(&format!("eventlog/{format}/{case}/commands.txt"));
            // Blocks are separated by blank lines; `#` lines are notes.
            let lines: Vec<&str> = text
                .split("\n\n")
                .map(|b| {
                    b.lines()
                        .filter(|l| !l.starts_with('#'))
                        .collect::<Vec<_>>()
                })
                .find(|b| b.first().is_some_and(|l| l.starts_with("$ condor_submit")))
                .unwrap_or_else(|| panic!("{format}/{case}: no condor_submit"));
            let stdout: String = lines[1..lines.len() - 1]
                .iter()
                .map(|l| format!("{l}\n"))
                .collect();
            assert_eq!(lines[lines.len() - 1], "[exit 0]");
            let jobs = parse_submit_output(Some(0), stdout.as_bytes(), b"").unwrap();
            let expected_count = if case == "b-cluster5" { 5 } else { 1 };
            assert_eq!(jobs.job_count(), expected_count, "{format}/{case}");
            assert!((13..=42).contains(&jobs.cluster), "{format}/{case}");
            seen += 1;
        }
    }
    assert_eq!(seen, 30);
}
