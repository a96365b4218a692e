//! Project-host mode against a fake project laid out as the recorded one.
//!
//! No BOINC server can run in CI (see `shared/notes/boinc.md`), so the
//! project directory is a copy of the recorded layout (`config.xml` of
//! `lab-config/`, the `apps/` tree of `app-versions/project-apps-tree.txt`,
//! `download/`, `upload/`, `templates/`, `tmp_boinchost/`) in which
//! `bin/create_work`, `bin/update_versions` and the `mysql` client are
//! **recorded-output stubs**: small shell scripts that log their argv, cwd
//! and stdin and answer with output recorded from the real programs (or, for
//! `mysql`, rows in the form `mysql --batch --skip-column-names` prints). The
//! test asserts that what the backend gives them is what the real programs
//! were given in the recordings, and drives the rest of the pipeline by
//! hand exactly as the daemons would: the app runs in a recorded-layout
//! slot, the validator and assimilator shims are run with `sh -c` from
//! `tmp_boinchost/` with the recorded argv forms (as `system()` does).
//!
//! This test binary is also a pymw binary: the backend installs it as the
//! app version, and the shims run that installed copy in its roles.

mod common;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TempDir, argv_after_0, copy_files, fixture, logged_calls, text};
use pymw_boinc::create_work::{download_subdir, split_command_line};
use pymw_boinc::daemons::PymwDaemons;
use pymw_boinc::templates::WorkunitParams;
use pymw_boinc::{BoincBackend, BoincConfig};
use pymw_core::backend::{Backend, Dispatch, Event, EventSink};
use pymw_core::wire::{self, Failure, Outcome, OutputBody, WorkerStats};

/// Doubles a number.
#[pymw_macros::task(crate = "pymw_core")]
fn double(x: u64) -> u64 {
    x * 2
}

/// Always fails.
#[pymw_macros::task(crate = "pymw_core")]
fn refuse(x: u64) -> Result<u64, String> {
    Err(format!("no luck with {x}"))
}

/// Agrees when the two values are within 10 of each other.
fn close_enough(a: &u64, b: &u64) -> bool {
    a.abs_diff(*b) <= 10
}

/// A task validated by a function, not bitwise.
#[pymw_macros::task(crate = "pymw_core", validate = close_enough)]
fn noisy(x: u64) -> u64 {
    x
}

const RECORDED_PROJECT: &str = "/home/boincadm/projects/pymw";
const APP: &str = "probe";

struct Project {
    _tmp: TempDir,
    root: PathBuf,
    dir: PathBuf,
    logs: PathBuf,
    answers: PathBuf,
    mysql: PathBuf,
}

/// A recorded-output stub: logs argv, cwd and stdin, answers with the files
/// `answers/<name>.{stdout,stderr,exit}`.
fn stub(path: &Path, name: &str, logs: &Path, answers: &Path) {
    let script = format!(
        "#!/bin/sh\n\
         # Recorded-output stub of BOINC 7.20.5's {name}, for tests only (no BOINC\n\
         # server can run in CI): logs its argv, cwd and stdin, answers with output\n\
         # recorded from the real program.\n\
         n=$(ls '{logs}' | grep -c '^{name}\\..*\\.cwd$')\n\
         log='{logs}/{name}.'$n\n\
         pwd > \"$log.cwd\"\n\
         for a in \"$@\"; do case \"$a\" in --defaults-extra-file=*) cp \"${{a#*=}}\" \"$log.cnf\";; esac; done\n\
         cat > \"$log.stdin\"\n\
         # The argv file last, renamed into place: a reader that sees it sees\n\
         # the whole call (stdin included).\n\
         printf '%s\\n' \"$@\" > \"$log.argv.partial\" && mv \"$log.argv.partial\" \"$log.argv\"\n\
         cat '{answers}/{name}.stdout' 2>/dev/null\n\
         cat '{answers}/{name}.stderr' >&2 2>/dev/null\n\
         exit $(cat '{answers}/{name}.exit' 2>/dev/null || echo 0)\n",
        logs = logs.display(),
        answers = answers.display(),
    );
    fs::write(path, script).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

impl Project {
    fn new() -> Project {
        let tmp = TempDir::new("project-host");
        let root = tmp.path().to_owned();
        let dir = root.join("projects").join("pymw");
        let logs = root.join("logs");
        let answers = root.join("answers");
        for d in [&dir, &logs, &answers] {
            fs::create_dir_all(d).unwrap();
        }
        for d in [
            "bin",
            "download",
            "upload",
            "templates",
            "tmp_boinchost",
            "log_boinchost",
        ] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        let config =
            text("lab-config/project-config.xml").replace(RECORDED_PROJECT, dir.to_str().unwrap());
        fs::write(dir.join("config.xml"), config).unwrap();
        // The recorded apps/ tree (placeholders for the binaries) as it was
        // when `update_versions-output-new-version-5.0.txt` was recorded:
        // the end-of-session listing without the 5.0 versions added then
        // and the later `probebatch` app.
        for line in text("app-versions/project-apps-tree.txt").lines() {
            let mut f = line.splitn(4, ' ');
            let (Some(kind), Some(_), Some(_), Some(path)) =
                (f.next(), f.next(), f.next(), f.next())
            else {
                continue;
            };
            if path.starts_with("apps/probe/5.0")
                || path.starts_with("apps/probescript/5.0")
                || path.starts_with("apps/probebatch")
            {
                continue;
            }
            match kind {
                "d" => fs::create_dir_all(dir.join(path)).unwrap(),
                "f" => fs::write(dir.join(path), b"recorded app file placeholder\n").unwrap(),
                _ => {}
            }
        }
        copy_files(
            &fixture("templates/project-templates"),
            &dir.join("templates"),
        );
        stub(&dir.join("bin/create_work"), "create_work", &logs, &answers);
        stub(
            &dir.join("bin/update_versions"),
            "update_versions",
            &logs,
            &answers,
        );
        let mysql = root.join("mysql");
        stub(&mysql, "mysql", &logs, &answers);
        Project {
            _tmp: tmp,
            root,
            dir,
            logs,
            answers,
            mysql,
        }
    }

    /// Makes a stub answer with a recorded output (`stdout`, `stderr`,
    /// `exit` files of a `create-work/` case, or literal text).
    fn answer(&self, name: &str, stdout: &[u8], stderr: &[u8], exit: i32) {
        fs::write(self.answers.join(format!("{name}.stdout")), stdout).unwrap();
        fs::write(self.answers.join(format!("{name}.stderr")), stderr).unwrap();
        fs::write(self.answers.join(format!("{name}.exit")), exit.to_string()).unwrap();
    }

    fn answer_recorded(&self, name: &str, case: &str) {
        let read = |ext: &str| fs::read(fixture(&format!("{case}.{ext}"))).unwrap();
        let exit: i32 = String::from_utf8(read("exit"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        self.answer(name, &read("stdout"), &read("stderr"), exit);
    }

    /// The logged calls of a stub, in order: (argv, cwd, stdin).
    fn calls(&self, name: &str) -> Vec<(Vec<String>, String, String)> {
        let mut calls = Vec::new();
        for n in 0.. {
            let read = |ext: &str| fs::read_to_string(self.logs.join(format!("{name}.{n}.{ext}")));
            let Ok(argv) = read("argv") else { break };
            let cwd = read("cwd").unwrap_or_default();
            let stdin = read("stdin").unwrap_or_default();
            // `printf '%s\n'` with no argument prints one empty line.
            let argv = if argv == "\n" {
                Vec::new()
            } else {
                argv.lines().map(str::to_owned).collect()
            };
            calls.push((argv, cwd.trim().to_owned(), stdin));
        }
        calls
    }

    fn log_file(&self, name: &str, n: usize, ext: &str) -> String {
        fs::read_to_string(self.logs.join(format!("{name}.{n}.{ext}"))).unwrap_or_default()
    }

    fn config(&self) -> BoincConfig {
        let mut config = BoincConfig::project_host(&self.dir, APP);
        // The recorded `probe_in`/`probe_out` values, so that the templates
        // written can be compared with the recorded ones byte for byte.
        config.workunit = WorkunitParams::default();
        config.max_output_bytes = 10_000_000;
        config.mysql = self.mysql.clone();
        config.poll = Some(Duration::from_millis(50));
        config
    }

    /// Runs a daemon's script call as `system()` does, from `tmp_boinchost/`.
    /// Runs the shim of one of pymw's daemon roles as the BOINC daemon
    /// would, and checks that it succeeded.
    fn run_role(&self, daemons: &PymwDaemons, role: pymw_boinc::daemons::Role, args: &[String]) {
        let out = self.run_script(&daemons.shim_name(role), args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{role:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn run_script(&self, script: &str, args: &[String]) -> std::process::Output {
        let mut line = format!("../bin/{script}");
        for a in args {
            line.push(' ');
            line.push_str(a);
        }
        Command::new("sh")
            .arg("-c")
            .arg(&line)
            .current_dir(self.dir.join("tmp_boinchost"))
            .env(pymw_boinc::db::MYSQL_ENV, &self.mysql)
            .output()
            .unwrap()
    }
}

fn dispatch(
    key: u64,
    task: &'static pymw_core::registry::TaskEntry,
    arg: u64,
    extra: &[(&str, &str)],
) -> Dispatch {
    let resources = if extra.is_empty() {
        None
    } else {
        let mut r = pymw_core::Resources::default();
        r.extra = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Some(Arc::new(r))
    };
    Dispatch {
        key,
        task,
        input: wire::encode_payload(&arg).into(),
        attempt: 0,
        resources,
        reattach: None,
    }
}

type Rx = tokio::sync::mpsc::UnboundedReceiver<Vec<Event>>;

/// Collects events until `done` says enough, or panics after `limit`.
fn events_until(
    rx: &mut Rx,
    limit: Duration,
    mut done: impl FnMut(&[Event]) -> bool,
) -> Vec<Event> {
    let deadline = Instant::now() + limit;
    let mut all = Vec::new();
    while !done(&all) {
        match rx.try_recv() {
            Ok(batch) => all.extend(batch),
            Err(_) => {
                assert!(
                    Instant::now() < deadline,
                    "timed out; events so far: {all:?}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    all
}

fn key_of(e: &Event) -> u64 {
    match e {
        Event::Started { key } | Event::Finished { key, .. } | Event::Lost { key, .. } => *key,
        Event::Queued { key, .. } => *key,
        Event::Requeued { key, .. } | Event::Held { key, .. } | Event::Failed { key, .. } => *key,
        _ => u64::MAX,
    }
}

/// An output envelope as a worker writes it.
fn output_envelope(
    task: &pymw_core::registry::TaskEntry,
    outcome: Outcome<'_>,
    host: &str,
) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode_output(
        &OutputBody {
            task: task.name,
            fingerprint: (task.fingerprint)(),
            outcome,
            stats: WorkerStats {
                wall_ns: 1000,
                cpu_ns: Some(900),
                peak_rss_kib: 1,
                host: host.to_owned(),
            },
        },
        &mut out,
    );
    out
}

/// Puts a result's output where the upload handler would.
fn upload(project: &Project, name: &str, bytes: &[u8]) -> PathBuf {
    let path = project
        .dir
        .join("upload")
        .join(download_subdir(name, 1024))
        .join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, bytes).unwrap();
    path
}

/// The recorded argv of a daemon's script call, with the recorded upload
/// paths replaced, in order, by `files`.
fn recorded_call(log: &str, kind: &str, index: usize, files: &[&Path]) -> Vec<String> {
    let calls = logged_calls(&text(log), kind);
    let mut files = files.iter();
    argv_after_0(&calls[index])
        .into_iter()
        .map(|a| {
            if a.starts_with(RECORDED_PROJECT) {
                files
                    .next()
                    .expect("a file for each recorded path")
                    .display()
                    .to_string()
            } else {
                a
            }
        })
        .collect()
}

/// The work unit name the backend gave attempt `key` (from create_work's
/// stdin).
fn wu_names(project: &Project) -> HashMap<u64, String> {
    let mut names = HashMap::new();
    for (_, _, stdin) in project.calls("create_work") {
        for line in stdin.lines() {
            let tokens = split_command_line(line);
            let (_, key) = pymw_boinc::spool::parse_wu_name(&tokens[1]).unwrap();
            names.insert(key, tokens[1].clone());
        }
    }
    names
}

/// The rows `mysql --batch --skip-column-names` prints for
/// `db::failed_workunit_query`: HEX() text columns, tab-separated.
fn mysql_rows(wu: &str, results: &[(u64, &str, i64, i64, i64, i64, &str)]) -> String {
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02X}")).collect::<String>();
    let mut out = String::new();
    for (id, name, outcome, client_state, exit_status, validate_state, stderr) in results {
        out.push_str(&format!(
            "{}\t{id}\t{}\t{outcome}\t{client_state}\t{exit_status}\t{validate_state}\t{}\n",
            hex(wu),
            hex(name),
            hex(stderr)
        ));
    }
    out
}

/// The recorded `stderr_out` of exit-behaviour case c (exit code 3), with
/// the app's stderr replaced by `stderr`.
fn stderr_out_like_recorded(stderr: &str) -> String {
    let recorded = text("exit-behaviour/c-exit-code-3/result.stderr_out.exit-c-code3_010509_0.txt");
    let start = recorded.find("<stderr_txt>\n").unwrap() + "<stderr_txt>\n".len();
    let end = recorded.find("\n</stderr_txt>").unwrap();
    format!("{}{}{}", &recorded[..start], stderr, &recorded[end..])
}

/// Runs the installed app in a slot laid out as `slot-direct/`, with
/// `input` staged where the client would have downloaded it; returns the
/// exit code, the output (if any) and stderr.txt.
fn run_app_in_slot(
    project: &Project,
    wu: &str,
    task: &str,
) -> (Option<i32>, Option<Vec<u8>>, String) {
    let client = project.root.join("client");
    let slot = client.join("slots").join("0");
    let _ = fs::remove_dir_all(&client);
    copy_files(&fixture("slot-direct/slot-files"), &slot);
    for e in fs::read_dir(&slot).unwrap() {
        fs::set_permissions(e.unwrap().path(), fs::Permissions::from_mode(0o644)).unwrap();
    }
    let client_project = client.join("projects").join("127.0.0.1_pymw");
    fs::create_dir_all(&client_project).unwrap();
    // The client downloads the input under its physical name and links it.
    let input_name = pymw_boinc::spool::input_name(wu);
    let staged = project
        .dir
        .join("download")
        .join(download_subdir(&input_name, 1024))
        .join(&input_name);
    fs::copy(&staged, client_project.join(&input_name)).unwrap();
    fs::write(
        slot.join("in"),
        format!("<soft_link>../../projects/127.0.0.1_pymw/{input_name}</soft_link>\n"),
    )
    .unwrap();
    let out_name = format!("{wu}_0_r1909077172_0");
    fs::write(
        slot.join("out"),
        format!("<soft_link>../../projects/127.0.0.1_pymw/{out_name}</soft_link>\n"),
    )
    .unwrap();
    // The installed app version is what the client runs.
    let installed = fs::read_dir(project.dir.join("apps/probe/5.0/x86_64-pc-linux-gnu"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("probe_5.0_")
        })
        .unwrap();
    let physical = installed.file_name().unwrap().to_str().unwrap().to_owned();
    fs::copy(&installed, client_project.join(&physical)).unwrap();
    let argv0 = format!("../../projects/127.0.0.1_pymw/{physical}");
    let stderr = fs::File::create(slot.join("stderr.txt")).unwrap();
    let mut args = pymw_boinc::app::RunArgs::command_line(task);
    // The command line goes through create_work's and the client's split.
    args = split_command_line(&pymw_boinc::create_work::command_line_from_args(&args).unwrap());
    use std::os::unix::process::CommandExt as _;
    let status = Command::new(slot.join(&argv0))
        .arg0(&argv0)
        .args(&args)
        .current_dir(&slot)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .status()
        .unwrap();
    (
        status.code(),
        fs::read(client_project.join(out_name)).ok(),
        fs::read_to_string(slot.join("stderr.txt")).unwrap(),
    )
}

fn daemon_entries_missing_then_added() -> (Project, PymwDaemons) {
    let project = Project::new();
    // Recorded as `yes y | bin/update_versions`, stdout and stderr together.
    let recorded = fs::read(fixture(
        "app-versions/update_versions-output-new-version-5.0.txt",
    ))
    .unwrap();
    project.answer("update_versions", &recorded, b"", 0);
    let (sink, _rx) = EventSink::channel();
    let mut backend = BoincBackend::new(project.config());
    let err = backend
        .start(sink)
        .expect_err("no daemon entries yet")
        .message;

    // The app version was installed as recorded: probe had 1.0 ... 4.0.
    let dir = project.dir.join("apps/probe/5.0/x86_64-pc-linux-gnu");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files[1].ends_with("version.xml"), "{files:?}");
    let physical = files[0].file_name().unwrap().to_str().unwrap().to_owned();
    // A stripped copy of this binary (volunteers download it), named by its
    // own content hash, served gzip-compressed, listing the same tasks.
    let installed = fs::read(&files[0]).unwrap();
    let exe = fs::read(std::env::current_exe().unwrap()).unwrap();
    assert!(
        installed.len() < exe.len(),
        "{} >= {}",
        installed.len(),
        exe.len()
    );
    let hash = pymw_boinc::app_version::content_hash(&installed);
    assert_eq!(physical, format!("probe_5.0_{hash}_x86_64-pc-linux-gnu"));
    assert_eq!(
        fs::read_to_string(&files[1]).unwrap(),
        format!(
            "<version>\n    <file><physical_name>{physical}</physical_name><main_program/><gzip/></file>\n</version>\n"
        )
    );
    assert_eq!(
        fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let list = |bin: &Path| {
        Command::new(bin)
            .args(["__pymw", "list"])
            .output()
            .unwrap()
            .stdout
    };
    assert_eq!(list(&files[0]), list(&std::env::current_exe().unwrap()));
    // update_versions: run once from the project root, fed `y` answers.
    let calls = project.calls("update_versions");
    assert_eq!(calls.len(), 1);
    let (argv, cwd, stdin) = &calls[0];
    assert!(argv.is_empty(), "{argv:?}");
    assert_eq!(Path::new(cwd), project.dir);
    assert!(
        !stdin.is_empty() && stdin.lines().all(|l| l == "y"),
        "{stdin:?}"
    );
    assert!(project.dir.join("reread_db").exists());

    // The shims, and the exact entries to add.
    let daemons = PymwDaemons::new(APP, files[0].clone());
    for (name, content) in daemons.shim_scripts().unwrap() {
        assert_eq!(
            fs::read_to_string(project.dir.join("bin").join(&name)).unwrap(),
            content
        );
    }
    let entries = daemons.assimilator_entry().unwrap().render()
        + &daemons.validator_entry().unwrap().render();
    assert!(err.contains(&entries), "{err}");
    drop(backend);

    // The administrator adds them.
    let config_path = project.dir.join("config.xml");
    let config = fs::read_to_string(&config_path).unwrap();
    fs::write(
        &config_path,
        config.replace("    </daemons>", &format!("{entries}    </daemons>")),
    )
    .unwrap();
    (project, daemons)
}

fn end_to_end() {
    let (project, daemons) = daemon_entries_missing_then_added();
    project.answer_recorded("create_work", "create-work/20-create_work-stdin-3-jobs");
    project.answer("mysql", b"", b"", 0);
    let (sink, mut rx) = EventSink::channel();
    let mut backend = BoincBackend::new(project.config());
    backend.start(sink).unwrap();
    assert_eq!(
        project.calls("update_versions").len(),
        1,
        "the version is registered once"
    );
    let run_dir = backend.run_dir().unwrap().to_owned();
    assert!(run_dir.starts_with(project.dir.join("pymw_runs")));

    // One batch: three default jobs and two quorum-2 jobs.
    let q2 = [
        ("boinc.min_quorum", "2"),
        ("boinc.target_nresults", "2"),
        ("boinc.max_error_results", "2"),
        ("boinc.max_total_results", "4"),
        ("boinc.max_success_results", "3"),
    ];
    backend
        .submit(vec![
            dispatch(1, double::task().entry(), 1, &[]),
            dispatch(2, refuse::task().entry(), 5, &[]),
            dispatch(3, double::task().entry(), 3, &[]),
            dispatch(4, double::task().entry(), 4, &q2),
            dispatch(5, noisy::task().entry(), 50, &q2),
        ])
        .unwrap();
    let accepted = events_until(&mut rx, Duration::from_secs(30), |e| e.len() >= 10);
    // Each attempt: `Queued` with the job id a later master follows, then
    // `Started`.
    let mut queued = HashMap::new();
    for pair in accepted.chunks(2) {
        match pair {
            [Event::Queued { key, job_id }, Event::Started { key: k2 }] if key == k2 => {
                queued.insert(*key, job_id.clone());
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(queued.len(), 5);

    // create_work: one --stdin run per template, argv as recorded.
    let calls = project.calls("create_work");
    assert_eq!(calls.len(), 2, "{calls:?}");
    let recorded_cmd = text("create-work/20-create_work-stdin-3-jobs.cmd");
    let recorded_line = recorded_cmd
        .lines()
        .find_map(|l| l.strip_prefix("$ bin/create_work "))
        .unwrap();
    let recorded_argv: Vec<&str> = recorded_line
        .split(" < ")
        .next()
        .unwrap()
        .split(' ')
        .collect();
    let recorded_stdin = text("create-work/20-create_work-stdin-3-jobs.stdin");
    let recorded_job = split_command_line(recorded_stdin.lines().next().unwrap());
    let mut templates = HashMap::new();
    for (argv, cwd, stdin) in &calls {
        assert_eq!(Path::new(cwd), project.dir);
        assert_eq!(argv.len(), recorded_argv.len());
        for (i, (ours, theirs)) in argv.iter().zip(&recorded_argv).enumerate() {
            if theirs.starts_with("templates/") {
                assert!(ours.starts_with("templates/pymw_probe_"), "{ours}");
            } else {
                assert_eq!(ours, theirs, "argument {i}");
            }
        }
        // Every job line has the recorded shape; the command line splits
        // back into the role's arguments.
        for line in stdin.lines() {
            let job = split_command_line(line);
            assert_eq!(job.len(), recorded_job.len(), "{line}");
            assert_eq!(
                (job[0].as_str(), job[2].as_str()),
                (recorded_job[0].as_str(), recorded_job[2].as_str())
            );
            let (_, key) = pymw_boinc::spool::parse_wu_name(&job[1]).unwrap();
            let task = match key {
                2 => refuse::NAME,
                5 => noisy::NAME,
                _ => double::NAME,
            };
            assert_eq!(
                split_command_line(&job[3]),
                pymw_boinc::app::RunArgs::command_line(task)
            );
            assert_eq!(job[4], pymw_boinc::spool::input_name(&job[1]));
        }
        templates.insert(stdin.lines().count(), (argv[3].clone(), argv[5].clone()));
    }
    // The templates: byte for byte the recorded ones with the same values.
    let (default_in, default_out) = &templates[&3];
    let (q2_in, q2_out) = &templates[&2];
    let read = |rel: &str| fs::read_to_string(project.dir.join(rel)).unwrap();
    assert_eq!(
        read(default_in),
        text("templates/project-templates/probe_in")
    );
    assert_eq!(read(q2_in), text("templates/project-templates/probe_q2_in"));
    assert_eq!(
        read(default_out),
        text("templates/project-templates/probe_out")
    );
    assert_eq!(default_out, q2_out);

    // Inputs staged as `stage_file --copy` does: download/<dir>/<name> + .md5.
    let names = wu_names(&project);
    for (key, wu) in &names {
        assert_eq!(
            queued[key],
            format!("boinc-host {wu} {}", run_dir.display()),
            "the job id names the work unit and where its output is delivered"
        );
    }
    let md5_line = text("create-work/18-staged-file-md5-companion.txt")
        .lines()
        .skip_while(|l| *l != "# the same as text:")
        .nth(1)
        .unwrap()
        .to_owned();
    for (key, wu) in &names {
        let name = pymw_boinc::spool::input_name(wu);
        let path = project
            .dir
            .join("download")
            .join(download_subdir(&name, 1024))
            .join(&name);
        let bytes = fs::read(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let body = wire::decode_input(&bytes).unwrap();
        assert_eq!(
            wire::decode_payload::<u64>(body.payload).unwrap(),
            [1, 5, 3, 4, 50][*key as usize - 1]
        );
        let companion = fs::read_to_string(path.with_file_name(format!("{name}.md5"))).unwrap();
        assert_eq!(companion, pymw_boinc::create_work::md5_companion(&bytes));
        // Same shape as the recorded companion: `<32 hex> <size>\n`.
        let (hex, size) = companion.trim_end().split_once(' ').unwrap();
        let (rhex, _) = md5_line.split_once(' ').unwrap();
        assert_eq!(hex.len(), rhex.len());
        assert_eq!(size, bytes.len().to_string());
    }

    // Job 1: the installed app runs it in a recorded-layout slot; the
    // output is uploaded, validated and assimilated through the shims with
    // the recorded argv forms.
    let (code, output, stderr) = run_app_in_slot(&project, &names[&1], double::NAME);
    assert_eq!(code, Some(0), "{stderr}");
    let output = output.unwrap();
    let up1 = upload(&project, &format!("{}_0_r1956895125_0", names[&1]), &output);
    let init = recorded_call(
        "assimilator/script-runs/a-valid-quorum1/validator_calls.log",
        "init_script",
        0,
        &[&up1],
    );
    project.run_role(&daemons, pymw_boinc::daemons::Role::ValidateInit, &init);
    let asm = recorded_call(
        "assimilator/script-runs/a-valid-quorum1/assimilator_calls.log",
        "script_assimilator",
        0,
        &[&up1],
    );
    project.run_role(&daemons, pymw_boinc::daemons::Role::Assimilate, &asm);
    // The file deleter may now remove the upload: the run has its copy.
    fs::remove_file(&up1).unwrap();
    let got = events_until(&mut rx, Duration::from_secs(10), |e| !e.is_empty());
    match &got[..] {
        [
            Event::Finished {
                key: 1,
                outcome: Ok(v),
                stats,
                ..
            },
        ] => {
            assert_eq!(wire::decode_payload::<u64>(v).unwrap(), 2);
            assert!(!stats.host.is_empty());
        }
        other => panic!("{other:?}"),
    }

    // Job 4 (quorum 2): two replicas from different hosts agree; a tampered
    // or malformed replica is rejected.
    let vb = wire::encode_payload(&8u64);
    let r0 = upload(
        &project,
        &format!("{}_0_r2143455446_0", names[&4]),
        &output_envelope(double::task().entry(), Outcome::Ok(&vb), "host-a"),
    );
    let r1 = upload(
        &project,
        &format!("{}_1_r1265189199_0", names[&4]),
        &output_envelope(double::task().entry(), Outcome::Ok(&vb), "host-b"),
    );
    let bad_value = wire::encode_payload(&999u64);
    let tampered = upload(
        &project,
        &format!("{}_2_r1_0", names[&4]),
        &output_envelope(double::task().entry(), Outcome::Ok(&bad_value), "evil"),
    );
    let mut truncated_bytes = fs::read(&r0).unwrap();
    truncated_bytes.truncate(truncated_bytes.len() - 3);
    let truncated = upload(&project, &format!("{}_3_r2_0", names[&4]), &truncated_bytes);
    let failure = upload(
        &project,
        &format!("{}_4_r3_0", names[&4]),
        &output_envelope(
            double::task().entry(),
            Outcome::Failed(Failure::TaskError {
                message: "x".into(),
            }),
            "h",
        ),
    );
    let foreign = upload(
        &project,
        &format!("{}_5_r4_0", names[&4]),
        &output_envelope(refuse::task().entry(), Outcome::Ok(&vb), "h"),
    );
    let vlog = "assimilator/script-runs/b-valid-quorum2-compare/validator_calls.log";
    let init_shim = daemons.shim_name(pymw_boinc::daemons::Role::ValidateInit);
    let cmp_shim = daemons.shim_name(pymw_boinc::daemons::Role::ValidateCompare);
    for (file, valid) in [
        (&r0, true),
        (&r1, true),
        (&tampered, true),
        (&truncated, false),
        // The task's own failure is a result (the app exits 0 with it).
        (&failure, true),
        (&foreign, true),
    ] {
        let args = recorded_call(vlog, "init_script", 0, &[file]);
        let out = project.run_script(&init_shim, &args);
        assert_eq!(
            out.status.code(),
            Some(if valid { 0 } else { 1 }),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (a, b, agree) in [
        (&r0, &r1, true),
        (&r1, &r0, true),
        (&r0, &tampered, false),
        (&r0, &truncated, false),
        (&r0, &foreign, false),
        // A value never agrees with a failure; two equal failures agree.
        (&r0, &failure, false),
        (&failure, &failure, true),
    ] {
        let args = recorded_call(vlog, "compare_script", 0, &[a, b]);
        let out = project.run_script(&cmp_shim, &args);
        assert_eq!(
            out.status.code(),
            Some(if agree { 0 } else { 1 }),
            "{} vs {}",
            a.display(),
            b.display()
        );
    }
    // Job 5: the task's validator function decides, not the bytes.
    let v50 = wire::encode_payload(&50u64);
    let v55 = wire::encode_payload(&55u64);
    let v90 = wire::encode_payload(&90u64);
    let n0 = upload(
        &project,
        &format!("{}_0_r5_0", names[&5]),
        &output_envelope(noisy::task().entry(), Outcome::Ok(&v50), "a"),
    );
    let n1 = upload(
        &project,
        &format!("{}_1_r6_0", names[&5]),
        &output_envelope(noisy::task().entry(), Outcome::Ok(&v55), "b"),
    );
    let n2 = upload(
        &project,
        &format!("{}_2_r7_0", names[&5]),
        &output_envelope(noisy::task().entry(), Outcome::Ok(&v90), "c"),
    );
    let garbage = upload(
        &project,
        &format!("{}_3_r8_0", names[&5]),
        &output_envelope(noisy::task().entry(), Outcome::Ok(&[0xff; 11]), "d"),
    );
    for (a, b, agree) in [(&n0, &n1, true), (&n0, &n2, false)] {
        let out = project.run_script(
            &cmp_shim,
            &recorded_call(vlog, "compare_script", 0, &[a, b]),
        );
        assert_eq!(out.status.code(), Some(if agree { 0 } else { 1 }));
    }
    let out = project.run_script(
        &init_shim,
        &recorded_call(vlog, "init_script", 0, &[&garbage]),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a value that does not decode is invalid"
    );
    // Both canonical outputs are assimilated.
    for file in [&r0, &n1] {
        let args = recorded_call(
            "assimilator/script-runs/a-valid-quorum1/assimilator_calls.log",
            "script_assimilator",
            0,
            &[file],
        );
        project.run_role(&daemons, pymw_boinc::daemons::Role::Assimilate, &args);
    }
    let got = events_until(&mut rx, Duration::from_secs(10), |e| e.len() >= 2);
    let mut values: Vec<(u64, u64)> = got
        .iter()
        .map(|e| match e {
            Event::Finished {
                key,
                outcome: Ok(v),
                ..
            } => (*key, wire::decode_payload::<u64>(v).unwrap()),
            other => panic!("{other:?}"),
        })
        .collect();
    values.sort();
    assert_eq!(values, [(4, 8), (5, 55)]);

    // Job 2 (`refuse`): the app exits 1 on every host; the work unit fails
    // and the assimilator is called with the recorded `--error 10 47`. The
    // database (the mysql stub) has the results with the app's real stderr.
    // Since the task's own error became a result, the app exits 0 with
    // the failure envelope as its output (and `boinc_finish_called`); the
    // work unit's failure path below stays for results of older builds.
    let (code, out, app_stderr) = run_app_in_slot(&project, &names[&2], refuse::NAME);
    assert_eq!(code, Some(0), "{app_stderr}");
    let out = out.expect("the failure envelope is the output");
    match wire::decode_output(&out).unwrap().outcome {
        Outcome::Failed(Failure::TaskError { message }) => assert_eq!(message, "no luck with 5"),
        other => panic!("{other:?}"),
    }
    assert!(
        project
            .root
            .join("client/slots/0/boinc_finish_called")
            .is_file()
    );
    let stderr_out = stderr_out_like_recorded(&app_stderr);
    let wu2 = &names[&2];
    let r0name = format!("{wu2}_0");
    let r1name = format!("{wu2}_1");
    let rows = mysql_rows(
        wu2,
        &[
            (51, &r0name, 3, 3, 1, 2, &stderr_out),
            (52, &r1name, 3, 3, 1, 2, &stderr_out),
        ],
    );
    project.answer("mysql", rows.as_bytes(), b"", 0);
    let error_call = argv_after_0(
        &logged_calls(
            &text(
                "assimilator/script-runs/c-init_script-exit1-invalid-then-wu-error/assimilator_calls.log",
            ),
            "script_assimilator",
        )[0],
    );
    assert_eq!(error_call, ["--error", "10", "47"]);
    project.run_role(&daemons, pymw_boinc::daemons::Role::Assimilate, &error_call);
    let got = events_until(&mut rx, Duration::from_secs(10), |e| !e.is_empty());
    match &got[..] {
        [
            Event::Finished {
                key: 2,
                outcome: Err(Failure::TaskError { message }),
                stderr_tail,
                ..
            },
        ] => {
            assert_eq!(message, "no luck with 5");
            assert!(
                stderr_tail.contains("task returned an error: no luck with 5"),
                "{stderr_tail}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The lookup: the recorded config's database, credentials in an option
    // file (never on the command line), the query on stdin.
    let mysql_calls = project.calls("mysql");
    let (argv, _, stdin) = mysql_calls.last().unwrap();
    let n = mysql_calls.len() - 1;
    assert!(argv[0].starts_with("--defaults-extra-file="), "{argv:?}");
    assert_eq!(&argv[1..], ["--batch", "--skip-column-names", "pymw"]);
    assert_eq!(stdin, &pymw_boinc::db::failed_workunit_query(47));
    let cnf = project.log_file("mysql", n, "cnf");
    assert_eq!(
        cnf,
        "[client]\nuser=\"boincadm\"\npassword=\"REDACTED\"\nhost=\"localhost\"\n"
    );
    assert!(
        !Path::new(argv[0].trim_start_matches("--defaults-extra-file=")).exists(),
        "option file removed"
    );

    // Job 3 crashes everywhere (the recorded Rust panic, exit 101): lost,
    // with the error mask, the client's message and the stderr.
    let recorded =
        text("exit-behaviour/f-rust-panic-exit-101/result.stderr_out.slot-copy_010204_0.txt");
    let wu3 = &names[&3];
    let rows = mysql_rows(
        wu3,
        &[
            (61, &format!("{wu3}_0"), 3, 3, 101, 2, &recorded),
            (62, &format!("{wu3}_1"), 3, 3, 101, 2, &recorded),
        ],
    );
    project.answer("mysql", rows.as_bytes(), b"", 0);
    project.run_role(&daemons, pymw_boinc::daemons::Role::Assimilate, &error_call);
    let got = events_until(&mut rx, Duration::from_secs(10), |e| !e.is_empty());
    match &got[..] {
        [
            Event::Lost {
                key: 3,
                cause,
                stderr_tail,
            },
        ] => {
            assert!(
                cause.contains("error_mask 0xa (too_many_error_results, too_many_total_results)"),
                "{cause}"
            );
            assert!(
                cause.contains("process exited with code 101 (0x65, -155)"),
                "{cause}"
            );
            assert!(
                stderr_tail.contains("called `Option::unwrap()` on a `None` value"),
                "{stderr_tail}"
            );
        }
        other => panic!("{other:?}"),
    }

    // A cancelled job: the database gets BOINC's cancel updates, and the
    // later `--error 16` is dropped without an event.
    backend
        .submit(vec![dispatch(6, double::task().entry(), 6, &[])])
        .unwrap();
    events_until(&mut rx, Duration::from_secs(10), |e| {
        e.iter().any(|e| key_of(e) == 6)
    });
    let wu6 = wu_names(&project)[&6].clone();
    let before = project.calls("mysql").len();
    backend.cancel(&[6]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while project
        .calls("mysql")
        .get(before)
        .is_none_or(|(_, _, stdin)| stdin.is_empty())
    {
        assert!(Instant::now() < deadline, "no cancel query");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, _, cancel_sql) = project.calls("mysql").pop().unwrap();
    assert_eq!(
        cancel_sql,
        pymw_boinc::db::cancel_query(std::slice::from_ref(&wu6)).unwrap()
    );
    project.answer(
        "mysql",
        mysql_rows(&wu6, &[(70, &format!("{wu6}_0"), 5, 0, 0, 0, "")]).as_bytes(),
        b"",
        0,
    );
    project.run_role(
        &daemons,
        pymw_boinc::daemons::Role::Assimilate,
        &["--error".into(), "16".into(), "70".into()],
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(rx.try_recv().is_err(), "no event for a cancelled job");
    assert!(
        // The master's marker (pymw_boinc::reaper) is all that is left.
        fs::read_dir(&run_dir)
            .unwrap()
            .all(|e| e.unwrap().file_name() == pymw_boinc::reaper::MARKER),
        "its record was removed"
    );

    // A work unit of no pymw run, and a malformed call, are acknowledged
    // (exit 0) so that the daemon goes on.
    let other = upload(&project, "script-valid_012040_0_r1956895125_0", b"sum=3\n");
    let args = recorded_call(
        "assimilator/script-runs/a-valid-quorum1/assimilator_calls.log",
        "script_assimilator",
        0,
        &[&other],
    );
    project.run_role(&daemons, pymw_boinc::daemons::Role::Assimilate, &args);
    project.run_role(
        &daemons,
        pymw_boinc::daemons::Role::Assimilate,
        &["x".into()],
    );

    // create_work failing (the recorded duplicate-name error): the batch's
    // attempts are lost with the reason.
    project.answer_recorded(
        "create_work",
        "create-work/22-create_work-stdin-duplicate-name",
    );
    backend
        .submit(vec![
            dispatch(7, double::task().entry(), 7, &[]),
            dispatch(8, double::task().entry(), 8, &[]),
        ])
        .unwrap();
    let got = events_until(&mut rx, Duration::from_secs(10), |e| e.len() >= 2);
    for e in &got {
        match e {
            Event::Lost { cause, .. } => assert!(cause.contains("already exists"), "{cause}"),
            other => panic!("{other:?}"),
        }
    }

    // Shutdown: what is still pending is cancelled, the run directory goes.
    project.answer("mysql", b"", b"", 0);
    backend
        .submit(vec![dispatch(9, double::task().entry(), 9, &[])])
        .unwrap();
    project.answer_recorded("create_work", "create-work/20-create_work-stdin-3-jobs");
    events_until(&mut rx, Duration::from_secs(10), |e| !e.is_empty());
    let before = project.calls("mysql").len();
    backend.shutdown();
    let calls = project.calls("mysql");
    assert_eq!(calls.len(), before + 1);
    assert!(calls.last().unwrap().2.contains(&wu_names(&project)[&9]));
    assert!(!run_dir.exists());
}

/// The rows `mysql --batch --skip-column-names` prints for
/// `db::workunits_query`: (name, id, assimilate_state, error_mask).
fn workunit_rows(rows: &[(&str, u64, i64, u32)]) -> String {
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02X}")).collect::<String>();
    rows.iter()
        .map(|(name, id, state, mask)| format!("{}\t{id}\t{state}\t{mask}\n", hex(name)))
        .collect()
}

/// Runs the assimilator shim for the canonical output `bytes` of `wu`, as
/// `script_assimilator` does with the recorded argv.
fn assimilate_output(project: &Project, daemons: &PymwDaemons, wu: &str, bytes: &[u8]) {
    let upload = upload(project, &format!("{wu}_0_r1956895125_0"), bytes);
    let args = recorded_call(
        "assimilator/script-runs/a-valid-quorum1/assimilator_calls.log",
        "script_assimilator",
        0,
        &[&upload],
    );
    project.run_role(daemons, pymw_boinc::daemons::Role::Assimilate, &args);
    fs::remove_file(&upload).unwrap();
}

fn value_of(e: &Event) -> Option<(u64, u64)> {
    match e {
        Event::Finished {
            key,
            outcome: Ok(v),
            ..
        } => Some((*key, wire::decode_payload::<u64>(v).unwrap())),
        _ => None,
    }
}

/// A master of a resumable run is killed with work units in flight; while
/// no master is alive some finish; the next master of the run gets the
/// attempts back with their job ids and new keys, follows what can be
/// followed (reporting what finished meanwhile under the new keys, without
/// `create_work`), and creates again only what cannot be followed.
fn a_restarted_master_follows_the_work_units_of_a_killed_one() {
    let (project, daemons) = daemon_entries_missing_then_added();
    project.answer_recorded("create_work", "create-work/20-create_work-stdin-3-jobs");
    project.answer("mysql", b"", b"", 0);

    // The first master. Its follower looks at the run directory once an
    // hour: once "killed" below, it must take no file.
    let mut config = project.config();
    config.poll = Some(Duration::from_secs(3600));
    let (sink, mut rx) = EventSink::channel();
    let mut first = BoincBackend::new(config);
    first.resumable("Nightly-Sweep");
    first.start(sink).unwrap();
    let first_dir = first.run_dir().unwrap().to_owned();
    first
        .submit(
            (1..=7)
                .map(|k| dispatch(k, double::task().entry(), k, &[]))
                .collect(),
        )
        .unwrap();
    let accepted = events_until(&mut rx, Duration::from_secs(30), |e| e.len() >= 14);
    let job_ids: HashMap<u64, String> = accepted
        .iter()
        .filter_map(|e| match e {
            Event::Queued { key, job_id } => Some((*key, job_id.clone())),
            _ => None,
        })
        .collect();
    let names = wu_names(&project);
    assert_eq!(names.len(), 7);
    for (key, wu) in &names {
        assert!(wu.starts_with("pymw_nightlysweepr"), "{wu}");
        assert_eq!(
            job_ids[key],
            format!("boinc-host {wu} {}", first_dir.display())
        );
    }
    // Killed: no shutdown runs, nothing is cancelled or removed.
    std::mem::forget(first);
    drop(rx);

    // While no master is alive: 1 and 7 are assimilated with an output, 2
    // fails everywhere (the recorded Rust panic).
    let output = |x: u64| {
        let v = wire::encode_payload(&(x * 2));
        output_envelope(double::task().entry(), Outcome::Ok(&v), "volunteer")
    };
    assimilate_output(&project, &daemons, &names[&1], &output(1));
    assimilate_output(&project, &daemons, &names[&7], &output(7));
    let recorded =
        text("exit-behaviour/f-rust-panic-exit-101/result.stderr_out.slot-copy_010204_0.txt");
    let wu2 = &names[&2];
    project.answer(
        "mysql",
        mysql_rows(wu2, &[(61, &format!("{wu2}_0"), 3, 3, 101, 2, &recorded)]).as_bytes(),
        b"",
        0,
    );
    project.run_role(
        &daemons,
        pymw_boinc::daemons::Role::Assimilate,
        &["--error".into(), "10".into(), "102".into()],
    );
    for k in [1, 2, 7] {
        assert!(
            fs::read_dir(&first_dir).unwrap().any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(&names[&k])),
            "delivered into the dead master's run directory"
        );
    }

    // The project database as the next master finds it: 3 and 6 still in
    // progress, 4 unknown (purged), 5 assimilated but its output taken.
    project.answer(
        "mysql",
        workunit_rows(&[
            (&names[&1], 101, 2, 0),
            (&names[&2], 102, 2, 10),
            (&names[&3], 103, 0, 0),
            (&names[&5], 105, 2, 0),
            (&names[&6], 106, 0, 0),
        ])
        .as_bytes(),
        b"",
        0,
    );
    let mysql_before = project.calls("mysql").len();
    let (sink, mut rx) = EventSink::channel();
    let mut second = BoincBackend::new(project.config());
    second.resumable("Nightly-Sweep");
    second.start(sink).unwrap();
    let second_dir = second.run_dir().unwrap().to_owned();
    assert_ne!(first_dir, second_dir, "each master has its own run id");
    let again = |key: u64, earlier: u64| Dispatch {
        reattach: Some(job_ids[&earlier].clone()),
        ..dispatch(key, double::task().entry(), earlier, &[])
    };
    second
        .submit(vec![
            again(11, 1),
            again(12, 2),
            again(13, 3),
            again(14, 4),
            again(15, 5),
            again(16, 6),
            Dispatch {
                reattach: Some("12.0".into()),
                ..dispatch(18, double::task().entry(), 8, &[])
            },
        ])
        .unwrap();
    let got = events_until(&mut rx, Duration::from_secs(30), |e| {
        e.iter().any(|e| matches!(e, Event::Lost { key: 12, .. }))
            && e.iter().any(|e| value_of(e) == Some((11, 2)))
            && [14, 15, 18].iter().all(|k| {
                e.iter()
                    .any(|e| matches!(e, Event::Started { key } if key == k))
            })
    });
    let queued: HashMap<u64, String> = got
        .iter()
        .filter_map(|e| match e {
            Event::Queued { key, job_id } => Some((*key, job_id.clone())),
            _ => None,
        })
        .collect();
    // Followed under the new keys, with the same job ids.
    for (key, earlier) in [(11, 1), (12, 2), (13, 3), (16, 6)] {
        assert_eq!(queued[&key], job_ids[&earlier], "key {key}");
    }
    match got
        .iter()
        .find(|e| key_of(e) == 12 && matches!(e, Event::Lost { .. }))
    {
        Some(Event::Lost { cause, .. }) => assert!(
            cause.contains(&format!(
                "BOINC work unit {wu2} (102) failed: error_mask 0xa"
            )),
            "{cause}"
        ),
        other => panic!("{other:?}"),
    }
    // One question to the database about every work unit it may follow.
    let asked = project.calls("mysql")[mysql_before].2.clone();
    assert_eq!(
        asked,
        pymw_boinc::db::workunits_query(&(1..=6).map(|k| names[&k].clone()).collect::<Vec<_>>())
            .unwrap()
    );
    // create_work ran once more, for exactly 14, 15 and 18, under the new
    // master's run id; no earlier work unit was created again.
    let calls = project.calls("create_work");
    assert_eq!(calls.len(), 2, "{calls:?}");
    let mut created: Vec<(String, u64)> = calls[1]
        .2
        .lines()
        .map(|line| {
            let wu = split_command_line(line)[1].clone();
            let (run, key) = pymw_boinc::spool::parse_wu_name(&wu).unwrap();
            assert_eq!(Some(run), second_dir.file_name().unwrap().to_str());
            (wu.clone(), key)
        })
        .collect();
    created.sort_by_key(|(_, k)| *k);
    assert_eq!(
        created.iter().map(|(_, k)| *k).collect::<Vec<_>>(),
        [14, 15, 18]
    );
    for (wu, key) in &created {
        assert_eq!(
            queued[key],
            format!("boinc-host {wu} {}", second_dir.display())
        );
    }
    // The file of a work unit that this master does not follow (yet) is
    // left where a later dispatch can take it.
    std::thread::sleep(Duration::from_millis(300));
    assert!(first_dir.join(format!("{}.out", names[&7])).is_file());

    // 3 finishes now: reported under its new key.
    assimilate_output(&project, &daemons, &names[&3], &output(3));
    let got = events_until(&mut rx, Duration::from_secs(10), |e| !e.is_empty());
    assert_eq!(
        got.iter().filter_map(value_of).collect::<Vec<_>>(),
        [(13, 6)],
        "{got:?}"
    );

    // Cancelling a followed attempt cancels the earlier master's work unit.
    let before = project.calls("mysql").len();
    second.cancel(&[16]);
    let deadline = Instant::now() + Duration::from_secs(10);
    // The stub logs the call before its stdin: wait for both.
    while project
        .calls("mysql")
        .get(before)
        .is_none_or(|call| call.2.is_empty())
    {
        assert!(Instant::now() < deadline, "no cancel query");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        project.calls("mysql")[before].2,
        pymw_boinc::db::cancel_query(std::slice::from_ref(&names[&6])).unwrap()
    );

    // A clean shutdown of a resumable run with work outstanding (14, 15,
    // 18): nothing cancelled, both run directories kept.
    let before = project.calls("mysql").len();
    second.shutdown();
    assert_eq!(project.calls("mysql").len(), before, "nothing cancelled");
    assert!(second_dir.is_dir() && first_dir.is_dir());

    // A third master follows 7, delivered before it started; with nothing
    // left pending at shutdown it removes its run directory, and the first
    // master's, now empty.
    project.answer(
        "mysql",
        workunit_rows(&[(&names[&7], 107, 2, 0)]).as_bytes(),
        b"",
        0,
    );
    let (sink, mut rx) = EventSink::channel();
    let mut third = BoincBackend::new(project.config());
    third.resumable("Nightly-Sweep");
    third.start(sink).unwrap();
    let third_dir = third.run_dir().unwrap().to_owned();
    third.submit(vec![again(21, 7)]).unwrap();
    let got = events_until(&mut rx, Duration::from_secs(10), |e| {
        e.iter().any(|e| value_of(e).is_some())
    });
    assert_eq!(
        got.iter().filter_map(value_of).collect::<Vec<_>>(),
        [(21, 14)]
    );
    third.shutdown();
    assert!(!third_dir.exists() && !first_dir.exists());
    assert!(second_dir.is_dir(), "14, 15 and 18 still deliver there");
    assert_eq!(project.calls("create_work").len(), 2);
}

fn bad_resources_are_reported_per_attempt() {
    let (project, _) = daemon_entries_missing_then_added();
    project.answer_recorded("create_work", "create-work/20-create_work-stdin-3-jobs");
    let (sink, mut rx) = EventSink::channel();
    let mut backend = BoincBackend::new(project.config());
    backend.start(sink).unwrap();
    backend
        .submit(vec![
            dispatch(1, double::task().entry(), 1, &[("boinc.min_quorum", "two")]),
            dispatch(2, double::task().entry(), 2, &[("boinc.frobnicate", "1")]),
            dispatch(
                3,
                double::task().entry(),
                3,
                &[("condor.requirements", "x")],
            ),
        ])
        .unwrap();
    let got = events_until(&mut rx, Duration::from_secs(10), |e| e.len() >= 3);
    let mut by_key: HashMap<u64, &Event> = got.iter().map(|e| (key_of(e), e)).collect();
    assert!(
        matches!(by_key.remove(&1), Some(Event::Failed { message, .. }) if message.contains("boinc.min_quorum")),
        "bad resources fail the task once (not retried): {got:?}"
    );
    assert!(
        matches!(by_key.remove(&2), Some(Event::Failed { message, .. }) if message.contains("boinc.frobnicate"))
    );
    assert!(
        matches!(by_key.remove(&3), Some(Event::Started { .. })),
        "other engines' keys are ignored"
    );
    backend.shutdown();
}

fn install_role_for_administrators() {
    let project = Project::new();
    let recorded = fs::read(fixture(
        "app-versions/update_versions-output-new-version-5.0.txt",
    ))
    .unwrap();
    project.answer("update_versions", &recorded, b"", 0);
    for t in ["probe_in", "probe_out"] {
        fs::remove_file(project.dir.join("templates").join(t)).unwrap();
    }
    // The options that give the recorded `probe_in` and `probe_out`.
    let options = [
        "--boinc-max-error-results",
        "1",
        "--boinc-max-total-results",
        "2",
        "--boinc-max-success-results",
        "1",
        "--boinc-fpops-est",
        "1e9",
        "--boinc-fpops-bound",
        "1e13",
        "--boinc-memory-bound",
        "100000000",
        "--boinc-disk-bound",
        "100000000",
        "--boinc-delay-bound",
        "3600",
        "--boinc-max-output",
        "10000000",
    ];
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["__pymw", "boinc-install", "--boinc-project"])
        .arg(&project.dir)
        .args(["--boinc-app", APP])
        .args(options)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("app `probe` version 5.0 for x86_64-pc-linux-gnu"),
        "{stdout}"
    );
    assert!(
        stdout.contains("<cmd>script_assimilator -d 3 --app probe"),
        "{stdout}"
    );
    let read = |t: &str| fs::read_to_string(project.dir.join("templates").join(t)).unwrap();
    assert_eq!(
        read("probe_in"),
        text("templates/project-templates/probe_in")
    );
    assert_eq!(
        read("probe_out"),
        text("templates/project-templates/probe_out")
    );
    assert!(project.dir.join("bin/pymw_probe_assimilate").exists());
    // A second run changes nothing and leaves the templates alone.
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["__pymw", "boinc-install", "--boinc-project"])
        .arg(&project.dir)
        .args(["--boinc-app", APP])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("(already installed)") && stdout.contains("exists, left as it is"),
        "{stdout}"
    );
    assert_eq!(project.calls("update_versions").len(), 1);
}

fn main() {
    pymw_core::worker::init_with(&pymw_boinc::ROLES);
    common::run_cases(&[
        ("end_to_end", end_to_end),
        (
            "a_restarted_master_follows_the_work_units_of_a_killed_one",
            a_restarted_master_follows_the_work_units_of_a_killed_one,
        ),
        (
            "bad_resources_are_reported_per_attempt",
            bad_resources_are_reported_per_attempt,
        ),
        (
            "install_role_for_administrators",
            install_role_for_administrators,
        ),
    ]);
}
