//! `-json` parsing against every recording in `query/`, `history/` and `info/`.

mod common;

use pymw_condor::eventlog::JobExit;
use pymw_condor::query::{JobAd, JobStatus, QueryError, expression, parse_ads, parse_job_ads};

fn job_ads(path: &str) -> Vec<JobAd> {
    parse_job_ads(&common::read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// How each recorded file must parse; every file in the three folders is here.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// Job ads: this many.
    Jobs(usize),
    /// Slot ads from `condor_status -json`: this many; not job ads.
    Slots(usize),
    /// Not JSON (tables, `-af`, messages): rejected with an error, no panic.
    NotJson,
    /// An empty stream: no ads.
    Empty,
}

const FILES: &[(&str, Kind)] = &[
    ("history/condor_history-af-j-text-run.txt", Kind::NotJson),
    ("history/condor_history-json-a-exit0.json", Kind::Jobs(1)),
    (
        "history/condor_history-json-attributes-snapshot-removed.json",
        Kind::Jobs(5),
    ),
    (
        "history/condor_history-json-attributes-text-run.json",
        Kind::Jobs(19),
    ),
    ("history/condor_history-json-b-cluster5.json", Kind::Jobs(5)),
    ("history/condor_history-json-c-exit3.json", Kind::Jobs(1)),
    ("history/condor_history-json-d-sigabrt.json", Kind::Jobs(1)),
    ("history/condor_history-json-d-sigsegv.json", Kind::Jobs(1)),
    (
        "history/condor_history-json-e-hold-release.json",
        Kind::Jobs(1),
    ),
    ("history/condor_history-json-f-hold-rm.json", Kind::Jobs(1)),
    (
        "history/condor_history-json-g-rm-running.json",
        Kind::Jobs(1),
    ),
    ("history/condor_history-json-h-retries.json", Kind::Jobs(1)),
    (
        "history/condor_history-json-i-output-missing.json",
        Kind::Jobs(1),
    ),
    ("history/condor_history-json-j-memory.json", Kind::Jobs(1)),
    (
        "history/condor_history-json-j2-memory-policy.json",
        Kind::Jobs(1),
    ),
    ("history/condor_history-json-k-vacate.json", Kind::Jobs(1)),
    (
        "history/condor_history-json-l-periodic-remove.json",
        Kind::Jobs(1),
    ),
    (
        "history/condor_history-json-m-user-hold-release.json",
        Kind::Jobs(1),
    ),
    ("info/condor_q-l-running-job.txt", Kind::NotJson),
    ("info/condor_status-busy-pool.txt", Kind::NotJson),
    ("info/condor_status-json-busy-pool.json", Kind::Slots(6)),
    ("info/condor_status-json-idle-pool.json", Kind::Slots(1)),
    ("info/condor_version.txt", Kind::NotJson),
    ("query/condor_hold-idle.exitcode", Kind::NotJson),
    ("query/condor_hold-idle.stderr", Kind::Empty),
    ("query/condor_hold-idle.stdout", Kind::NotJson),
    ("query/condor_q-af-j-held-by-user.exitcode", Kind::NotJson),
    ("query/condor_q-af-j-held-by-user.stderr", Kind::Empty),
    ("query/condor_q-af-j-held-by-user.stdout", Kind::NotJson),
    ("query/condor_q-af-j-mixed.txt", Kind::NotJson),
    ("query/condor_q-af-jV-mixed.txt", Kind::NotJson),
    ("query/condor_q-af-jt-mixed.txt", Kind::NotJson),
    ("query/condor_q-batch-mixed.txt", Kind::NotJson),
    ("query/condor_q-empty-queue.txt", Kind::NotJson),
    ("query/condor_q-json-attributes-mixed.json", Kind::Jobs(5)),
    ("query/condor_q-json-empty-queue.exitcode", Kind::NotJson),
    ("query/condor_q-json-empty-queue.stderr", Kind::Empty),
    ("query/condor_q-json-empty-queue.stdout", Kind::Empty),
    ("query/condor_q-json-mixed.json", Kind::Jobs(5)),
    (
        "query/condor_q-json-no-such-cluster.exitcode",
        Kind::NotJson,
    ),
    ("query/condor_q-json-no-such-cluster.stderr", Kind::Empty),
    ("query/condor_q-json-no-such-cluster.stdout", Kind::Empty),
    ("query/condor_q-json-running.json", Kind::Jobs(3)),
    ("query/condor_q-nobatch-mixed.txt", Kind::NotJson),
    ("query/condor_release-not-held.exitcode", Kind::NotJson),
    ("query/condor_release-not-held.stderr", Kind::NotJson),
    ("query/condor_release-not-held.stdout", Kind::Empty),
    ("query/condor_rm-cluster.exitcode", Kind::NotJson),
    ("query/condor_rm-cluster.stderr", Kind::Empty),
    ("query/condor_rm-cluster.stdout", Kind::NotJson),
    (
        "query/condor_rm-no-such-cluster-empty-queue.exitcode",
        Kind::NotJson,
    ),
    (
        "query/condor_rm-no-such-cluster-empty-queue.stderr",
        Kind::NotJson,
    ),
    (
        "query/condor_rm-no-such-cluster-empty-queue.stdout",
        Kind::Empty,
    ),
    (
        "query/condor_rm-no-such-cluster-nonempty-queue.exitcode",
        Kind::NotJson,
    ),
    (
        "query/condor_rm-no-such-cluster-nonempty-queue.stderr",
        Kind::NotJson,
    ),
    (
        "query/condor_rm-no-such-cluster-nonempty-queue.stdout",
        Kind::Empty,
    ),
    (
        "query/condor_rm-no-such-job-empty-queue.exitcode",
        Kind::NotJson,
    ),
    (
        "query/condor_rm-no-such-job-empty-queue.stderr",
        Kind::NotJson,
    ),
    (
        "query/condor_rm-no-such-job-empty-queue.stdout",
        Kind::Empty,
    ),
    (
        "query/condor_rm-no-such-job-nonempty-queue.exitcode",
        Kind::NotJson,
    ),
    (
        "query/condor_rm-no-such-job-nonempty-queue.stderr",
        Kind::NotJson,
    ),
    (
        "query/condor_rm-no-such-job-nonempty-queue.stdout",
        Kind::Empty,
    ),
    (
        "query/condor_rm-removed-cluster-empty-queue.exitcode",
        Kind::NotJson,
    ),
    (
        "query/condor_rm-removed-cluster-empty-queue.stderr",
        Kind::NotJson,
    ),
    (
        "query/condor_rm-removed-cluster-empty-queue.stdout",
        Kind::Empty,
    ),
    ("query/condor_rm-two-clusters.exitcode", Kind::NotJson),
    ("query/condor_rm-two-clusters.stderr", Kind::Empty),
    ("query/condor_rm-two-clusters.stdout", Kind::NotJson),
    ("query/held.sub", Kind::NotJson),
    ("query/idle.sub", Kind::NotJson),
    ("query/running.sub", Kind::NotJson),
];

#[test]
fn every_file_parses_as_expected() {
    let mut on_disk = Vec::new();
    for dir in ["history", "info", "query"] {
        on_disk.extend(common::list(dir).into_iter().map(|f| format!("{dir}/{f}")));
    }
    let listed: Vec<String> = FILES.iter().map(|(f, _)| (*f).to_owned()).collect();
    assert_eq!(on_disk, listed, "a recorded file is missing from FILES");

    for &(path, kind) in FILES {
        let bytes = common::read(path);
        let ads = parse_job_ads(&bytes);
        match kind {
            Kind::Jobs(n) => assert_eq!(ads.unwrap().len(), n, "{path}"),
            Kind::Empty => assert_eq!(ads.unwrap().len(), 0, "{path}"),
            Kind::Slots(n) => {
                assert_eq!(parse_ads(&bytes).unwrap().len(), n, "{path}");
                assert_eq!(
                    ads.unwrap_err(),
                    QueryError::MissingAttribute {
                        index: 0,
                        name: "ClusterId"
                    },
                    "{path}"
                );
            }
            Kind::NotJson => {
                let err = ads.expect_err(path);
                assert!(
                    matches!(
                        err,
                        QueryError::InvalidJson { .. } | QueryError::NotAnArrayOfAds { .. }
                    ),
                    "{path}: {err}"
                );
            }
        }
    }
}

/// The snapshot: 43.0-43.2 running, 44.0 held (code 13), 45.0 idle.
#[test]
fn condor_q_snapshot() {
    for path in [
        "query/condor_q-json-mixed.json",
        "query/condor_q-json-attributes-mixed.json",
    ] {
        let ads = job_ads(path);
        let ids: Vec<(u64, u64, Option<JobStatus>)> =
            ads.iter().map(|a| (a.cluster, a.proc, a.status)).collect();
        assert_eq!(
            ids,
            [
                (43, 0, Some(JobStatus::Running)),
                (43, 1, Some(JobStatus::Running)),
                (43, 2, Some(JobStatus::Running)),
                (44, 0, Some(JobStatus::Held)),
                (45, 0, Some(JobStatus::Idle)),
            ],
            "{path}"
        );
        let held = &ads[3];
        assert_eq!(held.hold_reason_code, Some(13));
        assert_eq!(held.hold_reason_subcode, Some(2));
        assert!(
            held.hold_reason
                .as_deref()
                .unwrap()
                .starts_with("Transfer input files failure at access point condorhost"),
            "{path}"
        );
        for ad in [&ads[0], &ads[1], &ads[2], &ads[4]] {
            assert_eq!(ad.hold_reason, None);
            assert_eq!(ad.hold_reason_code, None);
        }
        for ad in &ads {
            assert_eq!(ad.task_id, None);
            // MemoryUsage is an expression, not a number, and only jobs
            // that ran have it.
            let memory = ad.attribute("MemoryUsage").and_then(expression);
            let ran = ad.status == Some(JobStatus::Running);
            assert_eq!(memory.is_some(), ran, "{path}");
            if ran {
                assert_eq!(memory, Some("((ResidentSetSize + 1023) / 1024)"), "{path}");
            }
        }
    }
    let mixed = job_ads("query/condor_q-json-mixed.json");
    assert_eq!(mixed[0].batch_name.as_deref(), Some("fixture-snapshot"));
    // `null` appears despite "undefined attributes are left out".
    assert!(mixed[0].attributes["JobCurrentReconnectAttempt"].is_null());
    assert_eq!(mixed[0].attribute("JobCurrentReconnectAttempt"), None);
    assert!(
        expression(mixed[0].attribute("requirements").unwrap())
            .unwrap()
            .contains("(TARGET.OpSys == \"LINUX\")")
    );

    let running = job_ads("query/condor_q-json-running.json");
    assert_eq!(running.len(), 3);
    for (proc, ad) in running.iter().enumerate() {
        assert_eq!((ad.cluster, ad.proc as usize), (43, proc));
        assert_eq!(ad.status, Some(JobStatus::Running));
        assert_eq!(ad.batch_name.as_deref(), Some("fixture-snapshot"));
    }
}

/// `-af:jt` prints the same snapshot TAB-separated: the JSON agrees with it.
#[test]
fn json_agrees_with_af_jt() {
    let ads = job_ads("query/condor_q-json-mixed.json");
    let table = common::read_text("query/condor_q-af-jt-mixed.txt");
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), ads.len());
    let undefined = |s: &str| (s != "undefined").then(|| s.to_owned());
    for (row, ad) in rows.iter().zip(&ads) {
        assert_eq!(row[0], format!("{}.{}", ad.cluster, ad.proc));
        assert_eq!(row[3], ad.status.unwrap().code().to_string());
        assert_eq!(undefined(row[4]), ad.hold_reason);
        assert_eq!(
            undefined(row[5]),
            ad.hold_reason_code.map(|c| c.to_string())
        );
    }
}

/// The long form of 43.0 (`condor_q -l`) agrees with its JSON ad.
#[test]
fn json_agrees_with_long_form() {
    let long = common::read_text("info/condor_q-l-running-job.txt");
    let attr = |name: &str| -> String {
        let prefix = format!("{name} = ");
        let line = long.lines().find_map(|l| l.strip_prefix(prefix.as_str()));
        let value = line.unwrap_or_else(|| panic!("{name} not in the long form"));
        value.trim_matches('"').to_owned()
    };
    let ad = &job_ads("query/condor_q-json-running.json")[0];
    assert_eq!(attr("ClusterId"), ad.cluster.to_string());
    assert_eq!(attr("ProcId"), ad.proc.to_string());
    assert_eq!(attr("JobStatus"), ad.status.unwrap().code().to_string());
    assert_eq!(attr("JobBatchName"), ad.batch_name.clone().unwrap());
    assert_eq!(
        attr("Args"),
        ad.attribute("args").unwrap().as_str().unwrap()
    );
    assert_eq!(
        attr("Requirements"),
        expression(ad.attribute("Requirements").unwrap()).unwrap()
    );
}

struct Expected {
    file: &'static str,
    id: (u64, u64),
    status: JobStatus,
    exit: Option<JobExit>,
    last_hold: Option<(i64, i64)>,
    remove_reason: Option<&'static str>,
}

const RM: Option<&str> = Some("via condor_rm (by user tester)");

fn normal(exit_code: i64) -> Option<JobExit> {
    Some(JobExit::Normal { exit_code })
}

fn signal(signal: i64) -> Option<JobExit> {
    Some(JobExit::Signal { signal })
}

#[test]
fn history_of_every_case() {
    use JobStatus::{Completed, Removed};
    let e = |file, id, status, exit, last_hold, remove_reason| Expected {
        file,
        id,
        status,
        exit,
        last_hold,
        remove_reason,
    };
    let periodic = Some(
        "The job attribute PeriodicRemove expression 'JobStatus == 2 && (time() - \
         EnteredCurrentStatus) > 5' evaluated to TRUE",
    );
    let cases = [
        e("a-exit0", (13, 0), Completed, normal(0), None, None),
        e("c-exit3", (15, 0), Completed, normal(3), None, None),
        e("d-sigsegv", (16, 0), Completed, signal(11), None, None),
        e("d-sigabrt", (17, 0), Completed, signal(6), None, None),
        e(
            "e-hold-release",
            (18, 0),
            Completed,
            normal(0),
            Some((13, 2)),
            None,
        ),
        e("f-hold-rm", (19, 0), Removed, None, Some((13, 2)), RM),
        e("g-rm-running", (20, 0), Removed, signal(15), None, RM),
        e("h-retries", (21, 0), Completed, normal(3), None, None),
        e(
            "i-output-missing",
            (22, 0),
            Removed,
            normal(0),
            Some((12, 2)),
            RM,
        ),
        e("j-memory", (23, 0), Completed, normal(0), None, None),
        e(
            "j2-memory-policy",
            (24, 0),
            Removed,
            signal(15),
            Some((3, 42)),
            RM,
        ),
        // Vacated, then completed: ExitSignal 15 lingers but ExitBySignal is false.
        e("k-vacate", (25, 0), Completed, normal(0), None, None),
        e(
            "l-periodic-remove",
            (26, 0),
            Removed,
            signal(15),
            None,
            periodic,
        ),
        e(
            "m-user-hold-release",
            (27, 0),
            Completed,
            normal(0),
            Some((1, 0)),
            None,
        ),
    ];
    for case in &cases {
        let path = format!("history/condor_history-json-{}.json", case.file);
        let ads = job_ads(&path);
        let ad = &ads[0];
        assert_eq!((ad.cluster, ad.proc), case.id, "{path}");
        assert_eq!(ad.status, Some(case.status), "{path}");
        assert_eq!(ad.exit(), case.exit, "{path}");
        // Holds are over: only the LastHold* attributes remain.
        assert_eq!(ad.hold_reason, None, "{path}");
        assert_eq!(ad.hold_reason_code, None, "{path}");
        assert_eq!(
            ad.last_hold_reason_code.zip(ad.last_hold_reason_subcode),
            case.last_hold,
            "{path}"
        );
        assert_eq!(
            ad.last_hold_reason.is_some(),
            case.last_hold.is_some(),
            "{path}"
        );
        assert_eq!(ad.remove_reason.as_deref(), case.remove_reason, "{path}");
        assert_eq!(ad.batch_name, None, "{path}");
    }
    let k = &job_ads("history/condor_history-json-k-vacate.json")[0];
    assert_eq!((k.exit_by_signal, k.exit_signal), (Some(false), Some(15)));
    let h = &job_ads("history/condor_history-json-h-retries.json")[0];
    assert_eq!(
        h.attribute("OnExitRemove").and_then(expression),
        Some("NumJobCompletions > JobMaxRetries || ExitCode is 0")
    );
    assert_eq!(
        h.attribute("NumJobStarts").and_then(|v| v.as_i64()),
        Some(3)
    );
    let m = &job_ads("history/condor_history-json-m-user-hold-release.json")[0];
    assert_eq!(
        m.last_hold_reason.as_deref(),
        Some("via condor_hold (by user tester)")
    );

    // b-cluster5: newest first, all five completed with exit 0, batch name kept.
    let b = job_ads("history/condor_history-json-b-cluster5.json");
    let procs: Vec<u64> = b.iter().map(|a| a.proc).collect();
    assert_eq!(procs, [1, 3, 4, 2, 0]);
    for ad in &b {
        assert_eq!(ad.cluster, 14);
        assert_eq!(ad.status, Some(Completed));
        assert_eq!(ad.exit(), normal(0));
        assert_eq!(ad.batch_name.as_deref(), Some("fixture-batch-b"));
        let notes = ad
            .attribute("SubmitEventNotes")
            .and_then(|v| v.as_str())
            .unwrap();
        assert!(
            notes.starts_with(&format!("item {} args [", ad.proc)),
            "{notes}"
        );
    }
}

/// The projected history of the text run agrees with `-af:j` of the same
/// jobs (whose last column, RemoveReason, may contain spaces).
#[test]
fn projected_history_agrees_with_af_j() {
    let ads = job_ads("history/condor_history-json-attributes-text-run.json");
    let table = common::read_text("history/condor_history-af-j-text-run.txt");
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), ads.len());
    let show = |v: Option<String>| v.unwrap_or_else(|| "undefined".to_owned());
    for (row, ad) in rows.iter().zip(&ads) {
        let expected = [
            format!("{}.{}", ad.cluster, ad.proc),
            ad.status.unwrap().code().to_string(),
            show(ad.exit_code.map(|v| v.to_string())),
            show(ad.exit_by_signal.map(|v| v.to_string())),
            show(ad.exit_signal.map(|v| v.to_string())),
            show(ad.hold_reason_code.map(|v| v.to_string())),
            show(ad.remove_reason.clone()),
        ]
        .join(" ");
        assert_eq!(*row, expected);
    }
}

#[test]
fn history_of_the_removed_snapshot() {
    let ads = job_ads("history/condor_history-json-attributes-snapshot-removed.json");
    let ids: Vec<(u64, u64)> = ads.iter().map(|a| (a.cluster, a.proc)).collect();
    assert_eq!(ids, [(43, 2), (43, 1), (43, 0), (44, 0), (45, 0)]);
    for ad in &ads {
        assert_eq!(ad.status, Some(JobStatus::Removed));
        assert_eq!(ad.remove_reason.as_deref(), RM);
    }
    assert_eq!(ads[0].exit(), signal(15));
    assert_eq!(ads[3].last_hold_reason_code, Some(13));
    assert_eq!(ads[4].exit(), None);
}

#[test]
fn empty_outputs_and_their_exit_codes() {
    for name in ["condor_q-json-empty-queue", "condor_q-json-no-such-cluster"] {
        let stdout = common::read(&format!("query/{name}.stdout"));
        assert!(stdout.is_empty(), "{name}: recorded as empty output");
        assert!(parse_job_ads(&stdout).unwrap().is_empty());
        assert_eq!(
            common::read_text(&format!("query/{name}.exitcode")).trim(),
            "0"
        );
    }
    // condor_history's no-match form.
    assert!(parse_job_ads(b"[\n]\n").unwrap().is_empty());
}

#[test]
fn slot_ads() {
    let idle = parse_ads(&common::read("info/condor_status-json-idle-pool.json")).unwrap();
    assert_eq!(idle[0]["SlotType"], "Partitionable");
    assert_eq!(idle[0]["Cpus"], 8);
    assert_eq!(idle[0]["DetectedCpus"], 2);
    let busy = parse_ads(&common::read("info/condor_status-json-busy-pool.json")).unwrap();
    let dynamic = busy.iter().filter(|ad| ad["SlotType"] == "Dynamic").count();
    assert_eq!(dynamic, 5);
}
