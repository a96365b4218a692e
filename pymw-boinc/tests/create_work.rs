//! `bin/create_work` against `create-work/` (and the download hierarchy
//! against every staged path recorded anywhere).

mod common;

use common::{fixtures_dir, text};
use pymw_boinc::create_work::{
    CREATE_WORK, CreateWorkCommand, CreateWorkError, DEFAULT_FANOUT, JobLine, check_output,
    command_line_from_args, download_subdir, md5_companion, render_stdin, split_command_line,
};

/// The command of a `.cmd` file (after `$ `, before a `<` redirection).
fn recorded_command(case: &str) -> String {
    let cmd = text(&format!("create-work/{case}.cmd"));
    let line = cmd.lines().find_map(|l| l.strip_prefix("$ ")).unwrap();
    line.split(" < ").next().unwrap().trim().to_owned()
}

#[test]
fn stdin_command_line() {
    let mut cmd = CreateWorkCommand::new("probe");
    cmd.wu_template = Some("templates/probe_in".into());
    cmd.result_template = Some("templates/probe_out".into());
    let rendered = format!("{CREATE_WORK} {}", cmd.args().join(" "));
    for case in [
        "20-create_work-stdin-3-jobs",
        "21-create_work-stdin-bad-second-line",
        "22-create_work-stdin-duplicate-name",
    ] {
        assert_eq!(rendered, recorded_command(case), "{case}");
    }
}

#[test]
fn stdin_job_lines() {
    let jobs: Vec<JobLine> = (0..3)
        .map(|i| JobLine {
            wu_name: format!("cw_012439_s{i}"),
            command_line: Some(
                command_line_from_args(&["--tag", "cw-stdin", "--job", &i.to_string()]).unwrap(),
            ),
            input_files: vec!["cw_012439_in".into()],
        })
        .collect();
    assert_eq!(
        render_stdin(&jobs).unwrap(),
        text("create-work/20-create_work-stdin-3-jobs.stdin")
    );
    // The app received argv[1..4] = --tag cw-stdin --job 0.
    assert_eq!(
        split_command_line(jobs[0].command_line.as_deref().unwrap()),
        ["--tag", "cw-stdin", "--job", "0"]
    );

    let plain = |name: &str, input: &str| JobLine {
        wu_name: name.into(),
        command_line: None,
        input_files: vec![input.into()],
    };
    let jobs = [
        plain("cw_012439_t0", "cw_012439_in"),
        plain("cw_012439_t1", "cw_012439_not_staged"),
        plain("cw_012439_t2", "cw_012439_in"),
    ];
    assert_eq!(
        render_stdin(&jobs).unwrap(),
        text("create-work/21-create_work-stdin-bad-second-line.stdin")
    );
    let jobs = [
        plain("cw_012439_u0", "cw_012439_in"),
        plain("cw_012439_u0", "cw_012439_in"),
    ];
    assert_eq!(
        render_stdin(&jobs).unwrap(),
        text("create-work/22-create_work-stdin-duplicate-name.stdin")
    );
}

#[test]
fn recorded_command_lines_split_as_the_client_did() {
    // slot-direct: --command_line '--tag slot-direct --sleep 4 "two words" x=1'
    let argv: Vec<String> = text("slot-direct/argv.txt")
        .lines()
        .filter_map(|l| l.split_once("]=").map(|(_, v)| v.to_owned()))
        .skip(1)
        .collect();
    assert_eq!(
        split_command_line("--tag slot-direct --sleep 4 \"two words\" x=1"),
        argv
    );
    assert_eq!(
        command_line_from_args(&argv).unwrap(),
        "--tag slot-direct --sleep 4 \"two words\" x=1"
    );
}

fn run(case: &str) -> Result<(), CreateWorkError> {
    let exit: i32 = text(&format!("create-work/{case}.exit"))
        .trim()
        .parse()
        .unwrap();
    check_output(
        Some(exit),
        &text(&format!("create-work/{case}.stdout")),
        &text(&format!("create-work/{case}.stderr")),
    )
}

#[test]
fn outcomes_as_recorded() {
    for ok in [
        "02-create_work-success",
        "09-create_work-cli-vs-template",
        "20-create_work-stdin-3-jobs",
    ] {
        assert_eq!(run(ok), Ok(()), "{ok}");
    }
    assert!(matches!(
        run("01-create_work-help"),
        Err(CreateWorkError::Failed { exit_code: Some(1), ref message, .. })
            if message.starts_with("See http://boinc.berkeley.edu")
    ));
    assert_eq!(
        run("03-create_work-duplicate-wu_name"),
        Err(CreateWorkError::DuplicateName {
            name: "cw_012439".into()
        })
    );
    let missing = Err(CreateWorkError::MissingInput {
        path: "/home/boincadm/projects/pymw/download/338/cw_012439_not_staged".into(),
    });
    assert_eq!(run("04-create_work-missing-input-file"), missing);
    assert_eq!(run("21-create_work-stdin-bad-second-line"), missing);
    assert_eq!(
        run("05-create_work-unknown-app"),
        Err(CreateWorkError::UnknownApp)
    );
    assert_eq!(
        run("06-create_work-wrong-number-of-input-files"),
        Err(CreateWorkError::WrongInputCount {
            given: 2,
            expected: 1
        })
    );
    assert_eq!(
        run("07-create_work-no-input-file"),
        Err(CreateWorkError::TooFewInputs { need: 1 })
    );
    assert!(matches!(
        run("08-create_work-missing-template"),
        Err(CreateWorkError::BadTemplate(_))
    ));
    assert_eq!(
        run("22-create_work-stdin-duplicate-name"),
        Err(CreateWorkError::DuplicateName {
            name: "cw_012439_u0".into()
        })
    );
}

/// Every `download/<dir>/<name>` path in the given fixture files.
fn staged_paths(files: &[&str]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for f in files {
        let t = text(f);
        for piece in t.split("/download/").skip(1) {
            let end = piece
                .find(|c: char| c.is_whitespace() || c == '<' || c == '\'')
                .unwrap_or(piece.len());
            if let Some((dir, name)) = piece[..end].split_once('/')
                && !name.contains('/')
                && !name.ends_with(".md5")
                && !name.ends_with(".gz")
            {
                found.push((dir.to_owned(), name.to_owned()));
            }
        }
    }
    found
}

#[test]
fn download_hierarchy_matches_every_recorded_path() {
    assert!(fixtures_dir().is_dir());
    let paths = staged_paths(&[
        "create-work/18-dir_hier_path.stdout",
        "create-work/14-stage_file-verbose-copy.stdout",
        "create-work/15-stage_file-move-default.stdout",
        "create-work/17-stage_file-gzip.stdout",
        "create-work/04-create_work-missing-input-file.stderr",
        "create-work/02-create_work-success.db",
        "remote-submit/file-modes-workunit-xml_doc.txt",
        "remote-submit/exchanges/64-error-duplicate-job-name.response.xml",
        "remote-submit/exchanges/65-error-local_staged-file-not-staged.response.xml",
    ]);
    assert!(paths.len() >= 10, "{paths:?}");
    for (dir, name) in &paths {
        assert_eq!(&download_subdir(name, DEFAULT_FANOUT), dir, "{name}");
    }
    assert_eq!(download_subdir("cw_012439_in", DEFAULT_FANOUT), "3f7");
}

#[test]
fn md5_companion_shape() {
    // download/1d/cw_012439_v.md5 holds "<md5> <size>\n" (36 bytes for 16).
    let recorded = text("create-work/18-staged-file-md5-companion.txt");
    let line = recorded
        .lines()
        .find(|l| l.len() == 35 && l.ends_with(" 16"))
        .unwrap();
    let ours = md5_companion(b"0123456789abcdef");
    assert_eq!(ours.len(), line.len() + 1);
    assert!(ours.ends_with(" 16\n"));
    assert_eq!(md5_companion(b"1"), "c4ca4238a0b923820dcc509a6f75849b 1\n");
}
