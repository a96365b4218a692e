//! Daemons against `assimilator/` (and error masks against the rows of
//! `exit-behaviour/`).

mod common;

use std::path::PathBuf;

use common::{argv_after_0, logged_calls, text};
use pymw_boinc::daemons::{
    AssimilateCall, DaemonEntry, DaemonOptions, PymwDaemons, ROLE_MARKER, Role,
    ValidateCompareCall, ValidateInitCall, parse_sample_errors_line, split_role_args,
};
use pymw_boinc::{WuErrorMask, WuErrorReason};

const RUNS: &str = "assimilator/script-runs";

/// The `<daemon>` block of the recorded section whose command starts with
/// `program`.
fn recorded_block(program: &str) -> String {
    let section = text("assimilator/config.xml-daemons-section.xml");
    let start = section
        .find(&format!("        <daemon>\n            <cmd>{program} "))
        .unwrap();
    let end = start + section[start..].find("</daemon>\n").unwrap() + "</daemon>\n".len();
    section[start..end].to_owned()
}

#[test]
fn recorded_daemon_entries_render_byte_for_byte() {
    let opts = DaemonOptions::default();
    let validator = DaemonEntry::script_validator(
        "probescript",
        Some("val_init.sh files result_id runtime"),
        Some("val_cmp.sh files files2 result_id result_id2 runtime runtime2"),
        &opts,
    )
    .unwrap();
    assert_eq!(validator.render(), recorded_block("script_validator"));
    let assimilator = DaemonEntry::script_assimilator(
        "probescript",
        "asm_dump.sh wu_id wu_name result_id runtime files",
        &opts,
    )
    .unwrap();
    assert_eq!(assimilator.render(), recorded_block("script_assimilator"));
    let config = text("lab-config/project-config.xml");
    assert!(config.contains(&validator.render()));
    assert!(config.contains(&assimilator.render()));
}

/// What `script_assimilator`/`script_validator` 7.20.5 make of a spec
/// (unknown tokens dropped), as the recorded calls show.
fn simulate(spec: &str, values: &[(&str, Vec<String>)]) -> Vec<String> {
    spec.split(' ')
        .skip(1)
        .flat_map(|token| {
            values
                .iter()
                .find(|(t, _)| *t == token)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn assimilator_calls_as_recorded() {
    // a: wu 46 with one output file.
    let log = text(&format!("{RUNS}/a-valid-quorum1/assimilator_calls.log"));
    let calls = logged_calls(&log, "script_assimilator call");
    assert_eq!(calls.len(), 1);
    let args = argv_after_0(&calls[0]);
    let path = "/home/boincadm/projects/pymw/upload/3d9/script-valid_012040_0_r1956895125_0";
    assert_eq!(
        AssimilateCall::parse(&args).unwrap(),
        AssimilateCall::Canonical {
            wu_id: 46,
            runtime: 0.0,
            files: vec![PathBuf::from(path)],
        }
    );
    assert!(text(&format!("{RUNS}/a-valid-quorum1/db.txt")).contains("id: 46\n"));
    // The recorded spec, with wu_name and result_id dropped, gives that argv;
    // pymw's token order gives the same.
    let values = [
        ("wu_id", vec!["46".to_owned()]),
        ("runtime", vec!["0.000000".to_owned()]),
        ("files", vec![path.to_owned()]),
    ];
    assert_eq!(
        simulate("asm_dump.sh wu_id wu_name result_id runtime files", &values),
        args
    );
    assert_eq!(
        simulate(&format!("x {}", Role::Assimilate.tokens()), &values),
        args
    );

    // c, d: failed work units: --error <mask> <wu_id>.
    for (run, mask, wu) in [
        ("c-init_script-exit1-invalid-then-wu-error", 10, 47),
        ("d-compare_script-exit1-inconclusive-then-wu-error", 12, 48),
    ] {
        let log = text(&format!("{RUNS}/{run}/assimilator_calls.log"));
        let calls = logged_calls(&log, "script_assimilator call");
        let call = AssimilateCall::parse(&argv_after_0(&calls[0])).unwrap();
        assert_eq!(
            call,
            AssimilateCall::Failed {
                wu_id: wu,
                error_mask: WuErrorMask(mask)
            },
            "{run}"
        );
        assert!(text(&format!("{RUNS}/{run}/db.txt")).contains(&format!("error_mask: {mask}\n")));
    }
    assert_eq!(
        WuErrorMask(12).reasons(),
        [
            WuErrorReason::TooManySuccessResults,
            WuErrorReason::TooManyTotalResults
        ]
    );

    // e: the same call is repeated after the daemon restart.
    let e = format!("{RUNS}/e-assimilator-script-exit3-daemon-exits");
    let before = logged_calls(
        &text(&format!("{e}/assimilator_calls.log")),
        "script_assimilator call",
    );
    let after = logged_calls(
        &text(&format!("{e}/assimilator_calls_after_restart.log")),
        "script_assimilator call",
    );
    let b = AssimilateCall::parse(&argv_after_0(&before[0])).unwrap();
    let a = AssimilateCall::parse(&argv_after_0(&after[0])).unwrap();
    assert_eq!(a, b);
    assert!(matches!(b, AssimilateCall::Canonical { wu_id: 49, .. }));
}

#[test]
fn validator_calls_as_recorded() {
    let log = text(&format!(
        "{RUNS}/b-valid-quorum2-compare/validator_calls.log"
    ));
    let inits: Vec<ValidateInitCall> = logged_calls(&log, "init_script call")
        .iter()
        .map(|c| ValidateInitCall::parse(&argv_after_0(c)).unwrap())
        .collect();
    let p48 = PathBuf::from(
        "/home/boincadm/projects/pymw/upload/281/script-quorum2_012010_0_r2143455446_0",
    );
    let p49 = PathBuf::from(
        "/home/boincadm/projects/pymw/upload/202/script-quorum2_012010_1_r1265189199_0",
    );
    assert_eq!(
        inits,
        [
            ValidateInitCall {
                result_id: 48,
                runtime: 0.0,
                files: vec![p48.clone()]
            },
            ValidateInitCall {
                result_id: 49,
                runtime: 1.005077,
                files: vec![p49.clone()]
            },
        ]
    );
    let compares = logged_calls(&log, "compare_script call");
    assert_eq!(compares.len(), 1);
    assert_eq!(
        ValidateCompareCall::parse(&argv_after_0(&compares[0])).unwrap(),
        ValidateCompareCall {
            result_ids: [48, 49],
            runtimes: [0.0, 1.005077],
            files: [vec![p48], vec![p49]],
        }
    );

    // d: every ordered pair is compared; all calls parse.
    let log = text(&format!(
        "{RUNS}/d-compare_script-exit1-inconclusive-then-wu-error/validator_calls.log"
    ));
    let compares = logged_calls(&log, "compare_script call");
    assert_eq!(compares.len(), 20);
    for c in &compares {
        let call = ValidateCompareCall::parse(&argv_after_0(c)).unwrap();
        assert_ne!(call.result_ids[0], call.result_ids[1]);
    }
    assert_eq!(logged_calls(&log, "init_script call").len(), 9);
}

#[test]
fn pymw_registration() {
    let reg = PymwDaemons::new("pymwapp", "/opt/pymw/bin/my master");
    let assimilator = reg.assimilator_entry().unwrap();
    assert_eq!(
        assimilator.cmd,
        "script_assimilator -d 3 --app pymwapp --sleep_interval 1 --script \"pymw_pymwapp_assimilate wu_id runtime files\""
    );
    assert_eq!(assimilator.output, "script_assimilator_pymwapp.log");
    let validator = reg.validator_entry().unwrap();
    assert_eq!(
        validator.cmd,
        "script_validator -d 3 --app pymwapp --sleep_interval 1 \
         --init_script \"pymw_pymwapp_validate_init files result_id runtime\" \
         --compare_script \"pymw_pymwapp_validate_compare files files2 result_id result_id2 runtime runtime2\""
    );
    // Every token of pymw's specs is one the 7.20.5 daemons substitute.
    for role in Role::ALL {
        for t in role.tokens().split(' ') {
            assert!(
                [
                    "files",
                    "files2",
                    "wu_id",
                    "runtime",
                    "runtime2",
                    "result_id",
                    "result_id2"
                ]
                .contains(&t),
                "{t}"
            );
        }
    }
    let shims = reg.shim_scripts().unwrap();
    assert_eq!(shims.len(), 3);
    let (name, content) = &shims[0];
    assert_eq!(name, "pymw_pymwapp_assimilate");
    assert!(content.starts_with("#!/bin/sh\n"));
    assert!(content.ends_with("exec '/opt/pymw/bin/my master' __pymw boinc-assimilate \"$@\"\n"));

    // What the binary then sees: BIN __pymw boinc-assimilate <recorded argv>.
    let recorded = argv_after_0(
        &logged_calls(
            &text(&format!(
                "{RUNS}/c-init_script-exit1-invalid-then-wu-error/assimilator_calls.log"
            )),
            "script_assimilator call",
        )[0],
    );
    let mut argv = vec![
        "/opt/pymw/bin/my master".to_owned(),
        ROLE_MARKER.to_owned(),
        Role::Assimilate.name().to_owned(),
    ];
    argv.extend(recorded);
    let (role, rest) = split_role_args(&argv).unwrap();
    assert_eq!(role, Role::Assimilate);
    assert!(matches!(
        AssimilateCall::parse(rest).unwrap(),
        AssimilateCall::Failed { wu_id: 47, .. }
    ));
}

#[test]
fn install_shims_writes_executables() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = common::TempDir::new("shims");
    std::fs::create_dir_all(tmp.path().join("bin")).unwrap();
    let written = PymwDaemons::new("a", "/x/y")
        .install_shims(tmp.path())
        .unwrap();
    assert_eq!(written.len(), 3);
    for p in written {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{}", p.display());
    }
}

#[test]
fn error_masks_as_recorded() {
    let errors = text("assimilator/sample_assimilator/sample_results-errors-file.txt");
    let parsed: Vec<(String, WuErrorMask)> = errors
        .lines()
        .map(|l| parse_sample_errors_line(l).unwrap())
        .collect();
    assert_eq!(parsed.len(), 10);
    assert_eq!(parsed[0], ("slot-copy_010015".to_owned(), WuErrorMask(10)));
    assert!(parsed.iter().all(|(_, m)| m.0 == 8 || m.0 == 10));

    // summary.tsv: a failed result under probe_once_in gives error_mask 8.
    let summary = text("exit-behaviour/summary.tsv");
    let header: Vec<&str> = summary.lines().next().unwrap().split('\t').collect();
    let col = header.iter().position(|h| *h == "wu_error_mask").unwrap();
    for row in summary.lines().skip(1) {
        let mask: u32 = row.split('\t').nth(col).unwrap().parse().unwrap();
        let m = WuErrorMask(mask);
        assert_eq!(m.unknown_bits(), 0);
        if mask != 0 {
            assert!(m.contains(WuErrorReason::TooManyTotalResults), "{row}");
        }
    }
    assert!(parse_sample_errors_line("garbage").is_none());
    assert!(parse_sample_errors_line("x: 0xzz").is_none());
}
