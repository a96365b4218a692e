//! Remote submission against `remote-submit/exchanges/`.

mod common;

use std::fs;

use common::{bytes, fixtures_dir, text};
use pymw_boinc::remote::*;
use pymw_boinc::{WuErrorMask, WuErrorReason};

const AUTH: &str = "deadbeefdeadbeefdeadbeefdeadbeef";
const PROJECT: &str = "http://127.0.0.1/pymw/";
const EX: &str = "remote-submit/exchanges";

fn req(n: &str) -> String {
    text(&format!("{EX}/{n}.request.xml"))
}

fn resp(n: &str) -> Vec<u8> {
    bytes(&format!("{EX}/{n}.response.xml"))
}

fn find(prefix: &str) -> String {
    let dir = fixtures_dir().join(EX);
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .collect();
    names.sort();
    let name = names
        .first()
        .unwrap_or_else(|| panic!("no exchange {prefix}"));
    name.split('.').next().unwrap().to_owned()
}

#[test]
fn every_request_body_is_form_encoded_as_recorded() {
    let dir = fixtures_dir().join(EX);
    let mut checked = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(stem) = name.strip_suffix(".request.xml") else {
            continue;
        };
        let http = text(&format!("{EX}/{stem}.http-request.txt"));
        let (head, body) = http.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("POST /pymw/submit_rpc_handler.php HTTP/1.1\r\n"));
        assert!(head.contains(&format!("Content-Type: {FORM_CONTENT_TYPE}\r\n")));
        let ours = form_body(&req(stem));
        assert_eq!(ours, body, "{stem}");
        let head = format!("{head}\r\n");
        assert!(
            head.contains(&format!("Content-Length: {}\r\n", ours.len())),
            "{stem}"
        );
        checked += 1;
    }
    assert!(checked >= 54, "{checked}");
    assert_eq!(
        submit_rpc_url(PROJECT),
        "http://127.0.0.1/pymw/submit_rpc_handler.php"
    );
}

fn inline_job(name: &str, cl: &str, sources: &[&str]) -> Job {
    Job {
        name: Some(name.into()),
        command_line: Some(cl.into()),
        input_files: sources
            .iter()
            .map(|s| InputFile::Inline((*s).into()))
            .collect(),
    }
}

#[test]
fn requests_render_byte_for_byte() {
    assert_eq!(ping_request(AUTH).unwrap(), req("01-ping"));
    let batch_a = Batch {
        app_name: "probebatch".into(),
        batch_name: Some("rsA_012602".into()),
        jobs: vec![
            inline_job(
                "rsA_012602_j0",
                "--tag rs --stderr hello-from-j0",
                &["1 2 3 inline job zero\n"],
            ),
            inline_job(
                "rsA_012602_j1",
                "--tag rs --stderr failing-job-j1 --exit 3",
                &["4 5 6 inline job one\n"],
            ),
            inline_job(
                "rsA_012602_j2",
                "--tag rs --sleep 25",
                &["7 8 9 inline job two\n"],
            ),
        ],
        ..Batch::default()
    };
    assert_eq!(
        submit_batch_request(AUTH, &batch_a).unwrap(),
        req("04-submit_batch-inline")
    );

    let batch_b = Batch {
        app_name: "probebatch".into(),
        batch_name: Some("rsB_012738".into()),
        jobs: vec![
            Job {
                name: Some("rsB_012738_j0".into()),
                command_line: Some("--tag rs2".into()),
                input_files: vec![InputFile::LocalStaged("rsB_012738_staged".into())],
            },
            Job {
                name: Some("rsB_012738_j1".into()),
                command_line: Some("--tag rs2".into()),
                input_files: vec![InputFile::Local(
                    "/srv/boinc-lab/stage/rsB_012738_local".into(),
                )],
            },
            Job {
                name: Some("rsB_012738_j2".into()),
                command_line: Some("--tag rs2".into()),
                input_files: vec![InputFile::Remote {
                    url: "http://127.0.0.1/pymw/download/127/rsB_012738_remote".into(),
                    nbytes: 25,
                    md5: "0f1fda73aa7a6f9078be68733299ccf3".into(),
                }],
            },
        ],
        ..Batch::default()
    };
    assert_eq!(
        submit_batch_request(AUTH, &batch_b).unwrap(),
        req("29-submit_batch-file-modes")
    );

    let two_files = |i: u32| {
        inline_job(
            &format!("rsC_012738_j{i}"),
            "--tag rs3",
            &[
                &format!("{i} first file\n"),
                &format!("{i} {i} second file\n"),
            ],
        )
    };
    let batch_c = Batch {
        app_name: "probebatch".into(),
        batch_name: Some("rsC_012738_x".into()),
        jobs: vec![two_files(0), two_files(1)],
        ..Batch::default()
    };
    assert_eq!(
        submit_batch_request(AUTH, &batch_c).unwrap(),
        req("30-submit_batch-2-files-default-template")
    );
    let batch_c = Batch {
        batch_name: Some("rsC_012738".into()),
        workunit_template_file: Some("probe2_in".into()),
        input_template_filename: Some("probe2_in".into()),
        output_template_filename: Some("probe2_out".into()),
        ..batch_c
    };
    assert_eq!(
        submit_batch_request(AUTH, &batch_c).unwrap(),
        req("31-submit_batch-2-files-batch-templates")
    );
    let batch_d = Batch {
        app_name: "probebatch".into(),
        batch_name: Some("rsD_012738".into()),
        jobs: (0..3)
            .map(|i| {
                inline_job(
                    &format!("rsD_012738_j{i}"),
                    "--tag rs4 --sleep 120",
                    &[&format!("{i} slow job\n")],
                )
            })
            .collect(),
        ..Batch::default()
    };
    assert_eq!(
        submit_batch_request(AUTH, &batch_d).unwrap(),
        req("32-submit_batch-slow-for-abort")
    );
    let batch_e = Batch {
        batch_id: Some(5),
        app_name: "probebatch".into(),
        jobs: vec![Job {
            name: Some("rsE_012738_j0".into()),
            command_line: None,
            input_files: vec![InputFile::Inline("5 5 5".into())],
        }],
        ..Batch::default()
    };
    assert_eq!(
        submit_batch_request(AUTH, &batch_e).unwrap(),
        req("49-submit_batch-into-created-batch")
    );

    assert_eq!(
        query_batches_request(AUTH, true).unwrap(),
        req("05-query_batches-just-submitted")
    );
    assert_eq!(
        query_batches_request(AUTH, false).unwrap(),
        req("13-query_batches-after-done")
    );
    let id = |n| BatchRef::Id(n);
    assert_eq!(
        query_batch_request(AUTH, &id(1), true, true).unwrap(),
        req("06-query_batch-queued")
    );
    assert_eq!(
        query_batch_request(AUTH, &BatchRef::Name("rsA_012602".into()), false, false).unwrap(),
        req("08-query_batch-by-name-no-details")
    );
    assert_eq!(
        query_batch_request(AUTH, &id(1), false, true).unwrap(),
        req("28-query_batch-retired")
    );
    assert_eq!(
        query_batch_request(AUTH, &id(5), false, false).unwrap(),
        req("48-query_batch-created-empty")
    );
    assert_eq!(
        query_batch_request("33333333333333333333333333333333", &id(2), false, false).unwrap(),
        req("58-error-not-owner-of-batch")
    );
    assert_eq!(
        query_job_request(AUTH, 58).unwrap(),
        req("10-query_job-done")
    );
    assert_eq!(
        query_job_request(AUTH, 64).unwrap(),
        req("35-query_job-2-output-files")
    );
    assert_eq!(
        query_completed_job_request(AUTH, "rsA_012602_j0").unwrap(),
        req("16-query_completed_job-success")
    );
    assert_eq!(
        abort_jobs_request(AUTH, &["rsD_012738_j0"]).unwrap(),
        req("41-abort_jobs")
    );
    assert_eq!(abort_batch_request(AUTH, 4).unwrap(), req("43-abort_batch"));
    assert_eq!(
        retire_batch_request(AUTH, 1).unwrap(),
        req("26-retire_batch")
    );
    assert_eq!(
        create_batch_request(AUTH, "probebatch", "rsE_012738", 0).unwrap(),
        req("47-create_batch")
    );
}

#[test]
fn submit_and_success_replies() {
    assert_eq!(
        parse_submit_batch(&resp("04-submit_batch-inline")).unwrap(),
        1
    );
    assert_eq!(
        parse_submit_batch(&resp("29-submit_batch-file-modes")).unwrap(),
        2
    );
    assert_eq!(
        parse_submit_batch(&resp("31-submit_batch-2-files-batch-templates")).unwrap(),
        3
    );
    assert_eq!(
        parse_submit_batch(&resp("32-submit_batch-slow-for-abort")).unwrap(),
        4
    );
    assert_eq!(parse_create_batch(&resp("47-create_batch")).unwrap(), 5);
    assert_eq!(
        parse_submit_batch(&resp("49-submit_batch-into-created-batch")).unwrap(),
        5
    );
    parse_success(&resp("01-ping"), "ping").unwrap();
    parse_success(&resp("26-retire_batch"), "retire_batch").unwrap();
    parse_success(&resp("43-abort_batch"), "abort_batch").unwrap();
    parse_success(&resp("50-set_expire_time"), "set_expire_time").unwrap();
    assert!(matches!(
        parse_success(&resp("01-ping"), "retire_batch"),
        Err(RemoteError::UnexpectedReply { .. })
    ));
}

#[test]
fn batch_queries() {
    let b = parse_query_batches(&resp("05-query_batches-just-submitted")).unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(
        (b[0].id, b[0].njobs, b[0].state),
        (1, 3, BatchState::InProgress)
    );
    assert_eq!(b[0].name, "rsA_012602");
    assert_eq!(b[0].app_name, "probebatch");
    assert_eq!(b[0].total_cpu_time, Some(0.0));
    assert!(b[0].jobs.is_empty());
    let b = parse_query_batches(&resp("13-query_batches-after-done")).unwrap();
    assert_eq!(b[0].state, BatchState::Complete);
    assert_eq!(b[0].nerror_jobs, 1);
    assert!((b[0].fraction_done - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(b[0].total_cpu_time, None);
    assert!(
        parse_query_batches(&resp("27-query_batches-after-retire"))
            .unwrap()
            .is_empty()
    );
    let ids: Vec<u64> = parse_query_batches(&resp("46-query_batches-all"))
        .unwrap()
        .iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(ids, [2, 3, 4]);

    let q = parse_query_batch(&resp("06-query_batch-queued")).unwrap();
    assert_eq!(q.jobs.len(), 3);
    assert!(
        q.jobs
            .iter()
            .all(|j| j.status == Some(JobState::Queued) && j.canonical_instance_id.is_none())
    );
    assert_eq!(q.jobs[0].id, 58);

    let q = parse_query_batch(&resp("07-query_batch-in-progress")).unwrap();
    let states: Vec<_> = q.jobs.iter().map(|j| j.status.clone().unwrap()).collect();
    assert_eq!(
        states,
        [JobState::Done, JobState::Queued, JobState::InProgress]
    );
    assert_eq!(q.jobs[0].canonical_instance_id, Some(63));
    assert_eq!(q.jobs[0].cpu_time, Some(0.0));

    let q = parse_query_batch(&resp("08-query_batch-by-name-no-details")).unwrap();
    assert!(q.jobs.iter().all(|j| j.status.is_none()));

    for n in ["12-query_batch-done", "28-query_batch-retired"] {
        let q = parse_query_batch(&resp(n)).unwrap();
        let j1 = &q.jobs[1];
        assert_eq!(j1.status, Some(JobState::Error));
        assert_eq!(
            j1.errors,
            ["too_many_error_results", "too_many_total_results"]
        );
        assert_eq!(j1.error_mask(), WuErrorMask(10));
        assert_eq!(j1.exit_statuses, [3, 3]);
        assert_eq!(q.jobs[2].canonical_instance_id, Some(65));
    }
    assert_eq!(
        parse_query_batch(&resp("12-query_batch-done"))
            .unwrap()
            .state,
        BatchState::Complete
    );
    assert_eq!(
        parse_query_batch(&resp("28-query_batch-retired"))
            .unwrap()
            .state,
        BatchState::Retired
    );

    let q = parse_query_batch(&resp("42-query_batch-after-abort_jobs")).unwrap();
    assert_eq!(q.jobs[0].error_mask(), WuErrorMask(16));
    assert!(q.jobs[0].error_mask().contains(WuErrorReason::Cancelled));
    assert_eq!(q.jobs[1].status, Some(JobState::InProgress));
    let q = parse_query_batch(&resp("45-query_batch-aborted-later")).unwrap();
    assert_eq!(q.state, BatchState::Aborted);
    assert!(q.jobs.iter().all(|j| j.exit_statuses == [202]));
    let q = parse_query_batch(&resp("48-query_batch-created-empty")).unwrap();
    assert_eq!((q.state, q.njobs, q.jobs.len()), (BatchState::Init, 0, 0));
    for n in [
        "33-query_batch-file-modes-done",
        "34-query_batch-2-files-done",
        "40-query_batch-slow-running",
        "44-query_batch-after-abort_batch",
    ] {
        let q = parse_query_batch(&resp(n)).unwrap();
        assert_eq!(q.jobs.len(), 3.min(q.njobs as usize), "{n}");
    }
}

#[test]
fn job_queries() {
    let i = parse_query_job(&resp("10-query_job-done")).unwrap();
    assert_eq!(
        i,
        [JobInstance {
            name: "rsA_012602_j0_0".into(),
            id: 63,
            state: "Completed and validated".into(),
            outfile_sizes: vec![34],
        }]
    );
    let i = parse_query_job(&resp("11-query_job-in-progress")).unwrap();
    assert_eq!(
        (i[0].state.as_str(), i[0].outfile_sizes.len()),
        ("In progress", 0)
    );
    let i = parse_query_job(&resp("15-query_job-error")).unwrap();
    assert_eq!(i.len(), 2);
    assert!(i.iter().all(|x| x.state == "Error while computing"));
    let i = parse_query_job(&resp("35-query_job-2-output-files")).unwrap();
    assert_eq!(i[0].outfile_sizes, [25, 28]);
}

#[test]
fn completed_jobs_including_the_php_fatal_error() {
    let ok = parse_query_completed_job(&resp("16-query_completed_job-success")).unwrap();
    assert_eq!(ok.error_mask, WuErrorMask(0));
    assert_eq!(ok.canonical_resultid, Some(63));
    assert_eq!(
        (ok.exit_status, ok.elapsed_time, ok.cpu_time),
        (Some(0), Some(0.0), Some(0.0))
    );
    assert!(!ok.truncated_by_server);
    let stderr_out = ok.stderr_out.unwrap();
    assert!(
        stderr_out.starts_with("<core_client_version>7.20.5</core_client_version>\n<![CDATA[\n")
    );
    let parts = parse_stderr_out(&stderr_out);
    assert_eq!(parts.core_client_version.as_deref(), Some("7.20.5"));
    assert_eq!(parts.message, None);
    assert_eq!(
        parts.stderr_txt.as_deref(),
        Some(
            "probe: pid=5120 started, argc=5\nhello-from-j0\nprobe: wrote boinc_finish_called, exit(0)\n"
        )
    );

    let failed = parse_query_completed_job(&resp("17-query_completed_job-error")).unwrap();
    assert!(failed.truncated_by_server);
    assert_eq!(failed.error_mask, WuErrorMask(10));
    assert_eq!(failed.canonical_resultid, None);
    // The same job's errors in query_batch give the same mask.
    let q = parse_query_batch(&resp("12-query_batch-done")).unwrap();
    assert_eq!(q.jobs[1].error_mask(), failed.error_mask);
    // Any other call meeting a PHP fatal error reports it.
    assert!(matches!(
        parse_query_batch(&resp("17-query_completed_job-error")),
        Err(RemoteError::PhpFatal { ref excerpt }) if excerpt.starts_with("Fatal error")
    ));
}

#[test]
fn stderr_out_of_recorded_results() {
    let c = text("exit-behaviour/c-exit-code-3/result.stderr_out.exit-c-code3_010509_0.txt");
    let p = parse_stderr_out(&c);
    assert_eq!(
        p.message.as_deref(),
        Some("process exited with code 3 (0x3, -253)")
    );
    assert!(p.stderr_txt.unwrap().contains("about to exit with code 3"));
    let e =
        text("exit-behaviour/e-stderr-200KB/result.stderr_out.exit-e-stderr-large_011810_0.txt");
    let p = parse_stderr_out(&e);
    let txt = p.stderr_txt.unwrap();
    assert!(txt.len() <= 64512, "{}", txt.len());
    assert!(txt.contains("\nlast line written by the app\n"));
    assert!(txt.ends_with("probe: wrote boinc_finish_called, exit(0)\n"));
}

#[test]
fn abort_jobs_reply_is_read_as_text() {
    assert_eq!(
        parse_abort_jobs(&resp("41-abort_jobs")).unwrap(),
        ["rsD_012738_j0"]
    );
    let err = parse_abort_jobs(&resp("63-error-abort_jobs-no-such-job")).unwrap_err();
    let RemoteError::Server(e) = err else {
        panic!("{err:?}")
    };
    assert_eq!(e.kind(), ServerErrorKind::NoSuchJob);
    assert_eq!(e.message, "no job nosuchjob");
}

fn server_error(r: Result<impl std::fmt::Debug, RemoteError>) -> ServerError {
    match r {
        Err(RemoteError::Server(e)) => e,
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[test]
fn error_replies() {
    use ServerErrorKind as K;
    let cases: Vec<(&str, ServerError, K)> = vec![
        (
            "51",
            server_error(parse_query_batches(&resp(&find("51")))),
            K::BadAuthenticator,
        ),
        (
            "52",
            server_error(parse_query_batches(&resp(&find("52")))),
            K::NoAuthenticator,
        ),
        (
            "53",
            server_error(parse_submit_batch(&resp(&find("53")))),
            K::UnknownApp,
        ),
        (
            "54",
            server_error(parse_submit_batch(&resp(&find("54")))),
            K::CantParseRequest,
        ),
        (
            "55",
            server_error(parse_query_batches(&resp(&find("55")))),
            K::BadCommand,
        ),
        (
            "56",
            server_error(parse_query_batches(&resp(&find("56")))),
            K::NoSubmitAccess,
        ),
        (
            "57",
            server_error(parse_submit_batch(&resp(&find("57")))),
            K::NoAppSubmitAccess,
        ),
        (
            "58",
            server_error(parse_query_batch(&resp(&find("58")))),
            K::NotOwner,
        ),
        (
            "59",
            server_error(parse_query_batch(&resp(&find("59")))),
            K::NoSuchBatch,
        ),
        (
            "60",
            server_error(parse_query_batch(&resp(&find("60")))),
            K::BatchNotSpecified,
        ),
        (
            "61",
            server_error(parse_query_job(&resp(&find("61")))),
            K::NoSuchJob,
        ),
        (
            "62",
            server_error(parse_query_completed_job(&resp(&find("62")))),
            K::NoSuchJob,
        ),
        (
            "64",
            server_error(parse_submit_batch(&resp(&find("64")))),
            K::CreateWorkFailed,
        ),
        (
            "65",
            server_error(parse_submit_batch(&resp(&find("65")))),
            K::CreateWorkFailed,
        ),
        (
            "66",
            server_error(parse_submit_batch(&resp(&find("66")))),
            K::UnsupportedFileMode,
        ),
        (
            "67",
            server_error(parse_submit_batch(&resp(&find("67")))),
            K::CantParseRequest,
        ),
        (
            "30",
            server_error(parse_submit_batch(&resp(&find("30")))),
            K::WrongInputCount,
        ),
    ];
    for (n, e, kind) in &cases {
        assert_eq!(e.kind(), *kind, "{n}: {e}");
        assert_eq!(e.num, -1, "{n}");
        assert!(
            !e.to_string().contains(AUTH),
            "{n} leaks the authenticator: {e}"
        );
    }
    let by = |n: &str| &cases.iter().find(|c| c.0 == n).unwrap().1;
    assert_eq!(by("51").command.as_deref(), Some("query_batches"));
    assert_eq!(by("55").command, None, "top-level error");
    assert_eq!(by("55").message, "bad command: frobnicate");
    assert_eq!(by("54").command, None);
    assert!(
        by("54")
            .message
            .contains("<authenticator>***</authenticator>")
    );
    assert_eq!(by("53").message, "no app named nosuchapp was found");
    assert!(
        by("64")
            .message
            .contains("Duplicate entry 'rsA_012602_j0' for key 'name'")
    );
    assert!(
        by("64")
            .message
            .ends_with("MySQL error: Duplicate entry 'rsA_012602_j0' for key 'name'")
    );
    assert!(by("65").message.contains(
        "md5_file: can't open /home/boincadm/projects/pymw/download/3/never_staged_file"
    ));
    assert_eq!(
        by("30").message,
        "wrong # of input files for job 0: need 1, got 2"
    );
    assert_eq!(by("67").message, "can't parse request message:");
}

fn get_request_url(n: &str) -> String {
    let http = text(&format!("{EX}/{n}.http-request.txt"));
    let path = http
        .lines()
        .next()
        .unwrap()
        .strip_prefix("GET ")
        .unwrap()
        .strip_suffix(" HTTP/1.1")
        .unwrap()
        .to_owned();
    format!("http://127.0.0.1{path}")
}

fn content_type(n: &str) -> Option<String> {
    text(&format!("{EX}/{n}.http-response-headers.txt"))
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: ").map(str::to_owned))
}

fn body(n: &str) -> Vec<u8> {
    bytes(&format!("{EX}/{n}.response-body.bin"))
}

#[test]
fn get_output_urls_and_replies() {
    assert_eq!(
        result_file_url(PROJECT, AUTH, "rsA_012602_j0_0", 0),
        get_request_url(&find("18"))
    );
    assert_eq!(
        result_file_url(PROJECT, AUTH, "rsA_012602_j0_0", 1),
        get_request_url(&find("19"))
    );
    assert_eq!(
        result_file_url(PROJECT, AUTH, "rsC_012738_j0_0", 0),
        get_request_url(&find("36"))
    );
    assert_eq!(
        result_file_url(PROJECT, AUTH, "rsC_012738_j0_0", 1),
        get_request_url(&find("37"))
    );
    assert_eq!(
        batch_files_url(PROJECT, AUTH, 1),
        get_request_url(&find("21"))
    );
    assert_eq!(
        batch_files_url("http://127.0.0.1/pymw", AUTH, 3),
        get_request_url(&find("38"))
    );

    for n in ["18", "21", "36", "37", "38"] {
        let n = find(n);
        check_get_output(content_type(&n).as_deref(), &body(&n)).unwrap();
    }
    assert_eq!(body(&find("18")), b"sum=6\nupper=1 2 3 INLINE JOB ZERO\n");
    for (n, msg) in [
        ("19", "bad file num: 1 > 1"),
        ("20", "bad authenticator"),
        ("24", "no canonical result for wu rsA_012602_j1"),
        ("25", "bad command"),
        ("68", "no job instance nosuchresult"),
    ] {
        let n = find(n);
        assert_eq!(
            check_get_output(content_type(&n).as_deref(), &body(&n)),
            Err(RemoteError::GetOutput(msg.into())),
            "{n}"
        );
    }
}

#[test]
fn auth_str_as_recomputed_in_the_fixtures() {
    let computation = text("remote-submit/auth_str-computation.txt");
    let mut checked = 0;
    for line in computation.lines() {
        // ... = md5("AUTH" + "NAME") = HEX -> MATCHES
        let Some(rest) = line.split_once("md5(\"").map(|(_, r)| r) else {
            continue;
        };
        let Some((auth, rest)) = rest.split_once("\" + \"") else {
            continue;
        };
        let (name, rest) = rest.split_once("\")").unwrap();
        let hex = rest
            .trim_start_matches(" = ")
            .split_whitespace()
            .next()
            .unwrap()
            .trim_end_matches('.');
        assert_eq!(auth_str(auth, name), hex, "{line}");
        checked += 1;
    }
    assert!(checked >= 8, "{checked}");
}

#[test]
fn inline_files_are_named_by_content() {
    // Case 64: the inline source "1" became jf_c4ca4238a0b923820dcc509a6f75849b.
    let reply = String::from_utf8(resp(&find("64"))).unwrap();
    assert!(reply.contains(&format!("<name>{}</name>", inline_physical_name(b"1"))));
}
