//! The worker side of the BOINC app protocol, run for real: this test
//! binary is also a pymw binary with tasks, and each case starts it in the
//! `boinc-run` role inside a slot directory laid out exactly as the
//! recorded ones (`slot-direct/`, `slot-copy/`: the slot files, the client's
//! `projects/127.0.0.1_pymw/` next to `slots/`, the recorded environment,
//! `argv[0]` as the client passes it, stdin and stdout `/dev/null`, stderr
//! appended to `stderr.txt`), while the test plays the client's side of the
//! shared memory.
//!
//! Deviations from the recordings, because a test has no client: the
//! `<shm_key>` in `init_data.xml` is replaced by the key of a segment the
//! test creates (or by -1 with a `boinc_mmap_file`, the API-app layout), and
//! the app's file in the client's project directory is a symbolic link to
//! this test binary.

mod common;

use std::fs;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{TempDir, copy_files, fixture, text};
use pymw_boinc::shmem::{AppStatus, Channel, ControlRequest, SHARED_MEM_SIZE, SharedMem};
use pymw_boinc::slot::{FINISH_CALLED_CONTENT, FINISH_CALLED_FILE};
use pymw_core::wire::{self, Failure, InputBody, Outcome};

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

/// Panics.
#[pymw_macros::task(crate = "pymw_core")]
fn boom(_x: u64) -> u64 {
    panic!("boom goes the task")
}

/// Aborts the process (as `panic = "abort"` would).
#[pymw_macros::task(crate = "pymw_core")]
fn abort_process(_x: u64) -> u64 {
    std::process::abort()
}

/// Kills itself with SIGKILL (as the OOM killer would).
#[pymw_macros::task(crate = "pymw_core")]
fn sigkill_self(_x: u64) -> u64 {
    // SAFETY: plain system call.
    unsafe { libc::raise(libc::SIGKILL) };
    0
}

/// Counts to `n`, burning about 20 ms of CPU per step, with a checkpoint
/// after every step and the fraction done reported.
#[pymw_macros::task(crate = "pymw_core")]
fn count_slowly(n: u64) -> u64 {
    let mut i: u64 = pymw_boinc::checkpoint::load().unwrap_or(0);
    eprintln!("count_slowly: starting at {i}");
    while i < n {
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(20) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        i += 1;
        pymw_boinc::checkpoint::fraction_done(i as f64 / n as f64);
        pymw_boinc::checkpoint::save(&i).expect("checkpoint");
    }
    i
}

const PROJECT: &str = "127.0.0.1_pymw";
const APP_FILE: &str = "probe_3.0_x86_64-pc-linux-gnu";

/// A slot laid out as recorded, with the client's project directory.
struct Lab {
    _tmp: TempDir,
    slot: PathBuf,
    project: PathBuf,
    shm: Option<Segment>,
}

/// A System V segment the test created, removed on drop.
struct Segment {
    id: i32,
    key: i32,
}

impl Segment {
    fn new() -> Segment {
        for attempt in 0..100 {
            let key = 0x7079_0000 + ((std::process::id() as i32 * 131 + attempt) & 0xffff);
            // SAFETY: plain system call creating a segment this test owns.
            let id = unsafe {
                libc::shmget(
                    key,
                    SHARED_MEM_SIZE,
                    libc::IPC_CREAT | libc::IPC_EXCL | 0o600,
                )
            };
            if id >= 0 {
                return Segment { id, key };
            }
        }
        panic!(
            "cannot create a shared-memory segment: {}",
            std::io::Error::last_os_error()
        );
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: removing the segment this test created.
        unsafe { libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}

impl Lab {
    /// `case` is `slot-direct` or `slot-copy`; `mmap` uses the API-app
    /// layout (`boinc_mmap_file`) instead of a System V segment.
    fn new(case: &str, mmap: bool) -> Lab {
        let tmp = TempDir::new(&format!("worker-{case}"));
        let slot = tmp.path().join("slots").join("0");
        copy_files(&fixture(&format!("{case}/slot-files")), &slot);
        make_writable(&slot);
        let project = tmp.path().join("projects").join(PROJECT);
        fs::create_dir_all(&project).unwrap();
        std::os::unix::fs::symlink(std::env::current_exe().unwrap(), project.join(APP_FILE))
            .unwrap();
        let init = text(&format!("{case}/slot-files/init_data.xml"));
        let recorded_key = between(&init, "<shm_key>", "</shm_key>");
        let (init, shm) = if mmap {
            SharedMem::create_file(&slot.join("boinc_mmap_file")).unwrap();
            (
                init.replace(
                    &format!("<shm_key>{recorded_key}</shm_key>"),
                    "<shm_key>-1</shm_key>",
                ),
                None,
            )
        } else {
            let seg = Segment::new();
            (
                init.replace(
                    &format!("<shm_key>{recorded_key}</shm_key>"),
                    &format!("<shm_key>{}</shm_key>", seg.key),
                ),
                Some(seg),
            )
        };
        fs::write(slot.join("init_data.xml"), init).unwrap();
        Lab {
            _tmp: tmp,
            slot,
            project,
            shm,
        }
    }

    /// The client's side of the shared memory.
    fn client_mem(&self) -> SharedMem {
        match &self.shm {
            Some(seg) => SharedMem::attach_sysv_id(seg.id).unwrap(),
            None => SharedMem::map_file(&self.slot.join("boinc_mmap_file")).unwrap(),
        }
    }

    /// Where the soft-link file `name` points, as the recording says.
    fn link_target(&self, name: &str) -> PathBuf {
        let link = fs::read_to_string(self.slot.join(name)).unwrap();
        let target = pymw_boinc::slot::parse_soft_link(link.as_bytes()).unwrap();
        self.slot.join(target)
    }

    /// Starts the app as the client does, with `args` as the work unit's
    /// command line.
    fn start(&self, args: &[&str]) -> std::process::Child {
        let stderr = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.slot.join("stderr.txt"))
            .unwrap();
        let argv0 = format!("../../projects/{PROJECT}/{APP_FILE}");
        // The recorded environment (`env.txt`), with this machine's PATH.
        let mut env: Vec<(String, String)> = text("slot-direct/env.txt")
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        for (k, v) in &mut env {
            if k == "PATH" {
                *v = std::env::var("PATH").unwrap_or_default();
            }
        }
        Command::new(self.slot.join(&argv0))
            .arg0(&argv0)
            .args(args)
            .current_dir(&self.slot)
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap()
    }

    fn stderr(&self) -> String {
        fs::read_to_string(self.slot.join("stderr.txt")).unwrap()
    }

    fn finish_file(&self) -> Option<Vec<u8>> {
        fs::read(self.slot.join(FINISH_CALLED_FILE)).ok()
    }
}

use std::os::unix::process::CommandExt as _;

fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    }
}

fn between<'a>(s: &'a str, a: &str, b: &str) -> &'a str {
    let start = s.find(a).unwrap() + a.len();
    &s[start..start + s[start..].find(b).unwrap()]
}

fn envelope(task: &str, fingerprint: u64, arg: u64) -> Vec<u8> {
    let payload = wire::encode_payload(&arg);
    let mut out = Vec::new();
    wire::encode_input(
        &InputBody {
            task,
            fingerprint,
            payload: &payload,
        },
        &mut out,
    );
    out
}

fn input_for<A, R>(task: pymw_core::Task<A, R>, arg: u64) -> Vec<u8>
where
    A: serde::Serialize,
    R: serde::de::DeserializeOwned,
{
    envelope(task.name(), (task.entry().fingerprint)(), arg)
}

fn wait(child: &mut std::process::Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the app did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_output(path: &Path) -> (String, Result<u64, Failure>) {
    let bytes =
        wire::read_envelope_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let body = wire::decode_output(&bytes).unwrap();
    let outcome = match body.outcome {
        Outcome::Ok(v) => Ok(wire::decode_payload::<u64>(v).unwrap()),
        Outcome::Failed(f) => Err(f),
    };
    (body.task.to_owned(), outcome)
}

fn last_status(mem: &SharedMem) -> Option<AppStatus> {
    mem.channel(Channel::AppStatus)
        .get_msg()
        .map(|m| AppStatus::decode(&m))
}

/// The work unit command line the master gives a task.
fn run_args(task: &str) -> Vec<String> {
    pymw_boinc::app::RunArgs::command_line(task)
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

// ------------------------------------------------------------------ cases

fn slot_direct_success() {
    let lab = Lab::new("slot-direct", false);
    let mem = lab.client_mem();
    let input = lab.link_target("in");
    let output = lab.link_target("out");
    assert!(
        !output.exists(),
        "the recorded output target does not exist at start"
    );
    fs::write(&input, input_for(double::task(), 21)).unwrap();
    let links_before = (
        fs::read(lab.slot.join("in")).unwrap(),
        fs::read(lab.slot.join("out")).unwrap(),
    );
    // A heartbeat, as the client sends every second.
    assert!(
        mem.channel(Channel::Heartbeat)
            .send_msg("<heartbeat/><wss>0.000000e+00</wss><max_wss>8.000000e+09</max_wss>")
            .unwrap()
    );
    let args = run_args(double::NAME);
    let mut child = lab.start(&strs(&args));
    let status = wait(&mut child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "stderr: {}", lab.stderr());
    assert_eq!(lab.finish_file().as_deref(), Some(FINISH_CALLED_CONTENT));
    let (task, value) = read_output(&output);
    assert_eq!(task, double::NAME);
    assert_eq!(value, Ok(42));
    // The soft-link files are left alone; nothing else is left in the slot.
    assert_eq!(
        (
            fs::read(lab.slot.join("in")).unwrap(),
            fs::read(lab.slot.join("out")).unwrap()
        ),
        links_before
    );
    let mut names: Vec<String> = fs::read_dir(&lab.slot)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "boinc_finish_called",
            "in",
            "init_data.xml",
            "out",
            APP_FILE,
            "stderr.txt"
        ]
    );
    let leftovers: Vec<_> = fs::read_dir(&lab.project)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // stderr.txt is appended to: the recorded first line is still there.
    assert!(
        lab.stderr()
            .starts_with(&text("slot-direct/slot-files/stderr.txt"))
    );
    // The heartbeat was read and a final status was sent.
    assert!(
        !mem.channel(Channel::Heartbeat).has_msg(),
        "heartbeat not read"
    );
    let st = last_status(&mem).expect("a status message");
    assert!(
        st.current_cpu_time >= 0.0 && st.checkpoint_cpu_time == 0.0,
        "{st:?}"
    );
}

fn slot_copy_success_with_mmap_file() {
    let lab = Lab::new("slot-copy", true);
    let mem = lab.client_mem();
    // `in` is a real copy; `out` is absent and must be created in the slot.
    assert!(!lab.slot.join("out").exists());
    fs::write(lab.slot.join("in"), input_for(double::task(), 5)).unwrap();
    let args = run_args(double::NAME);
    let mut child = lab.start(&strs(&args));
    let status = wait(&mut child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "stderr: {}", lab.stderr());
    assert_eq!(lab.finish_file().as_deref(), Some(FINISH_CALLED_CONTENT));
    assert_eq!(read_output(&lab.slot.join("out")).1, Ok(10));
    assert!(last_status(&mem).is_some());
}

fn recorded_text_input_is_refused() {
    // The recorded `in` of slot-copy is the probe's text, not an envelope.
    let lab = Lab::new("slot-copy", true);
    let args = run_args(double::NAME);
    let mut child = lab.start(&strs(&args));
    let status = wait(&mut child, Duration::from_secs(30));
    assert_eq!(
        status.code(),
        Some(5),
        "input corrupt; stderr: {}",
        lab.stderr()
    );
    assert!(lab.finish_file().is_none());
    let failure = pymw_boinc::app::parse_failure_line(&lab.stderr()).expect("failure line");
    assert!(matches!(failure, Failure::Decode { .. }), "{failure:?}");
}

fn armored_input() {
    let lab = Lab::new("slot-direct", false);
    let text = pymw_boinc::armor::armor("pymw_r1_1", &input_for(double::task(), 100));
    fs::write(lab.link_target("in"), text).unwrap();
    let args = run_args(double::NAME);
    let mut child = lab.start(&strs(&args));
    assert_eq!(
        wait(&mut child, Duration::from_secs(30)).code(),
        Some(0),
        "{}",
        lab.stderr()
    );
    assert_eq!(read_output(&lab.link_target("out")).1, Ok(200));
}

fn task_error_is_a_result_exit_0_with_the_failure() {
    let lab = Lab::new("slot-direct", false);
    fs::write(lab.link_target("in"), input_for(refuse::task(), 7)).unwrap();
    let args = run_args(refuse::NAME);
    let mut child = lab.start(&strs(&args));
    let status = wait(&mut child, Duration::from_secs(30));
    // The task's own error is its result: uploaded like a value, with the
    // finish file, so that BOINC counts no client error.
    assert_eq!(status.code(), Some(0));
    assert_eq!(lab.finish_file().as_deref(), Some(&b"0\n"[..]));
    let out = fs::read(lab.link_target("out")).unwrap();
    match wire::decode_output(&out).unwrap().outcome {
        Outcome::Failed(Failure::TaskError { message }) => assert_eq!(message, "no luck with 7"),
        other => panic!("{other:?}"),
    }
    let stderr = lab.stderr();
    assert!(
        stderr.contains("task returned an error: no luck with 7"),
        "{stderr}"
    );
    assert_eq!(
        pymw_boinc::app::parse_failure_line(&stderr),
        Some(Failure::TaskError {
            message: "no luck with 7".into()
        })
    );
}

fn panic_is_a_result_exit_0_with_the_panic() {
    let lab = Lab::new("slot-direct", false);
    fs::write(lab.link_target("in"), input_for(boom::task(), 1)).unwrap();
    let args = run_args(boom::NAME);
    let mut child = lab.start(&strs(&args));
    assert_eq!(wait(&mut child, Duration::from_secs(30)).code(), Some(0));
    assert!(lab.finish_file().is_some(), "a panic is a result too");
    match pymw_boinc::app::parse_failure_line(&lab.stderr()) {
        Some(Failure::Panic { message, .. }) => assert_eq!(message, "boom goes the task"),
        other => panic!("{other:?}"),
    }
}

fn unknown_task_exits_3() {
    let lab = Lab::new("slot-direct", false);
    fs::write(lab.link_target("in"), envelope("no::such", 1, 1)).unwrap();
    let mut child = lab.start(&["__pymw", "boinc-run", "--task", "no::such"]);
    assert_eq!(wait(&mut child, Duration::from_secs(30)).code(), Some(3));
    assert!(lab.finish_file().is_none());
}

fn usage_error_exits_2() {
    let lab = Lab::new("slot-direct", false);
    let mut child = lab.start(&["__pymw", "boinc-run"]);
    assert_eq!(wait(&mut child, Duration::from_secs(30)).code(), Some(2));
    assert!(lab.stderr().contains("missing `--task NAME`"));
}

fn crash_signal_is_passed_on() {
    let lab = Lab::new("slot-direct", false);
    fs::write(lab.link_target("in"), input_for(abort_process::task(), 1)).unwrap();
    let args = run_args(abort_process::NAME);
    let mut child = lab.start(&strs(&args));
    let status = wait(&mut child, Duration::from_secs(30));
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "{status:?}: {}",
        lab.stderr()
    );
    assert!(
        lab.stderr().contains("killed by signal 6 (SIGABRT)"),
        "{}",
        lab.stderr()
    );
    assert!(lab.finish_file().is_none());
}

fn sigkill_is_an_error_not_a_restart() {
    // An app that dies of SIGKILL is "killed from outside" to the client,
    // which restarts it, forever for a task that kills itself: the app
    // exits 128 + 9 instead, an error that BOINC reports.
    let lab = Lab::new("slot-direct", false);
    fs::write(lab.link_target("in"), input_for(sigkill_self::task(), 1)).unwrap();
    let args = run_args(sigkill_self::NAME);
    let mut child = lab.start(&strs(&args));
    let status = wait(&mut child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(128 + libc::SIGKILL), "{status:?}");
    assert!(lab.finish_file().is_none());
}

/// The child process of the app (the task), if `/proc` lists it.
fn task_pid(app_pid: u32) -> Option<u32> {
    let children = fs::read_to_string(format!("/proc/{app_pid}/task/{app_pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

fn process_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn suspend_resume_quit_then_restart_from_checkpoint() {
    let lab = Lab::new("slot-direct", false);
    let mem = lab.client_mem();
    fs::write(lab.link_target("in"), input_for(count_slowly::task(), 100)).unwrap();
    let args = run_args(count_slowly::NAME);
    let mut child = lab.start(&strs(&args));
    let checkpoint = lab.slot.join(pymw_boinc::checkpoint::CHECKPOINT_FILE);
    wait_for("a checkpoint", Duration::from_secs(20), || {
        checkpoint.exists()
    });
    // Progress and a checkpoint reach the client.
    let mut status = None;
    wait_for(
        "a status with progress and a checkpoint",
        Duration::from_secs(20),
        || {
            if let Some(s) = last_status(&mem) {
                let ok = s.fraction_done.is_some_and(|f| f > 0.0) && s.checkpoint_cpu_time > 0.0;
                status = Some(s);
                ok
            } else {
                false
            }
        },
    );
    let status = status.unwrap();
    assert!(
        status.current_cpu_time >= status.checkpoint_cpu_time,
        "{status:?}"
    );

    // Suspend: the task process stops.
    let control = |r: ControlRequest| {
        assert!(
            mem.channel(Channel::ProcessControlRequest)
                .send_msg(r.as_xml())
                .unwrap()
        );
    };
    control(ControlRequest::Suspend);
    wait_for("the request to be read", Duration::from_secs(5), || {
        !mem.channel(Channel::ProcessControlRequest).has_msg()
    });
    if let Some(pid) = task_pid(child.id()) {
        wait_for("the task to stop", Duration::from_secs(5), || {
            process_state(pid) == Some('T')
        });
    }
    std::thread::sleep(Duration::from_millis(200));
    let frozen = fs::read(&checkpoint).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        fs::read(&checkpoint).unwrap(),
        frozen,
        "no progress while suspended"
    );

    // Resume: it goes on.
    control(ControlRequest::Resume);
    wait_for("progress after resume", Duration::from_secs(10), || {
        fs::read(&checkpoint).unwrap() != frozen
    });

    // Quit: exit 0 without the finish file, so that the client restarts it.
    control(ControlRequest::Quit);
    let status = wait(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert!(
        lab.finish_file().is_none(),
        "quit must not write the finish file"
    );
    assert!(!lab.link_target("out").exists(), "no output yet");
    assert!(lab.stderr().contains("the client asked the task to quit"));

    // The client restarts the task in the same slot: it resumes from its
    // checkpoint and finishes.
    let mut child = lab.start(&strs(&args));
    let status = wait(&mut child, Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{}", lab.stderr());
    assert_eq!(lab.finish_file().as_deref(), Some(FINISH_CALLED_CONTENT));
    assert_eq!(read_output(&lab.link_target("out")).1, Ok(100));
    let starts: Vec<u64> = lab
        .stderr()
        .lines()
        .filter_map(|l| l.strip_prefix("count_slowly: starting at "))
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert_eq!(starts[0], 0);
    assert!(
        starts[1] > 0 && starts[1] < 100,
        "resumed from the checkpoint: {starts:?}"
    );
}

fn abort_stops_at_once() {
    let lab = Lab::new("slot-direct", false);
    let mem = lab.client_mem();
    fs::write(
        lab.link_target("in"),
        input_for(count_slowly::task(), 10_000),
    )
    .unwrap();
    let args = run_args(count_slowly::NAME);
    let mut child = lab.start(&strs(&args));
    let checkpoint = lab.slot.join(pymw_boinc::checkpoint::CHECKPOINT_FILE);
    wait_for("the task to run", Duration::from_secs(20), || {
        checkpoint.exists()
    });
    let task = task_pid(child.id());
    let t = Instant::now();
    assert!(
        mem.channel(Channel::ProcessControlRequest)
            .send_msg("<abort/>")
            .unwrap()
    );
    let status = wait(&mut child, Duration::from_secs(5));
    assert!(t.elapsed() < Duration::from_secs(3));
    assert_eq!(status.code(), Some(pymw_boinc::app::EXIT_ABORTED));
    assert!(lab.finish_file().is_none());
    if let Some(pid) = task {
        wait_for("the task process to go", Duration::from_secs(5), || {
            !Path::new(&format!("/proc/{pid}")).exists() || process_state(pid) == Some('Z')
        });
    }
}

fn main() {
    // The roles: `boinc-run` and the `worker` it starts. Exits when taken.
    pymw_core::worker::init_with(&pymw_boinc::ROLES);
    let cases: &[(&str, fn())] = &[
        ("slot_direct_success", slot_direct_success),
        (
            "slot_copy_success_with_mmap_file",
            slot_copy_success_with_mmap_file,
        ),
        (
            "recorded_text_input_is_refused",
            recorded_text_input_is_refused,
        ),
        ("armored_input", armored_input),
        (
            "task_error_is_a_result_exit_0_with_the_failure",
            task_error_is_a_result_exit_0_with_the_failure,
        ),
        (
            "panic_is_a_result_exit_0_with_the_panic",
            panic_is_a_result_exit_0_with_the_panic,
        ),
        ("unknown_task_exits_3", unknown_task_exits_3),
        ("usage_error_exits_2", usage_error_exits_2),
        ("crash_signal_is_passed_on", crash_signal_is_passed_on),
        (
            "sigkill_is_an_error_not_a_restart",
            sigkill_is_an_error_not_a_restart,
        ),
        (
            "suspend_resume_quit_then_restart_from_checkpoint",
            suspend_resume_quit_then_restart_from_checkpoint,
        ),
        ("abort_stops_at_once", abort_stops_at_once),
    ];
    common::run_cases(cases);
}
