//! `PYMW_MAX_MESSAGE_BYTES`: an input over it is refused at submit, a value
//! over it fails the task on the worker, and a value that does not parse
//! stops the master at start.
//!
//! The limit is read once per process, so each test runs again as a child
//! of itself with the variable set (`child` below), and checks there.

use pymw::core::backend::{AttemptKey, Dispatch, EventSink};
use pymw::core::wire;
use pymw::core::worker::{WorkerArgs, WorkerExit, run_worker};
use pymw::{Backend, BackendError, Error, Failure, MasterConfig, TaskError};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const CHILD: &str = "PYMW_LIMITS_TEST_CHILD";

/// In the parent: runs this test again in a child with
/// `PYMW_MAX_MESSAGE_BYTES=limit` and asserts it passed; returns false. In
/// the child: returns true, and the test goes on.
fn child(test: &str, limit: &str) -> bool {
    if std::env::var_os(CHILD).is_some() {
        return true;
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD, "1")
        .env("PYMW_MAX_MESSAGE_BYTES", limit)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child {test} failed:\n{stdout}\n{stderr}"
    );
    false
}

/// Counts what is dispatched; never answers.
struct Count(Arc<AtomicUsize>);

impl Backend for Count {
    fn name(&self) -> &'static str {
        "count"
    }
    fn start(&mut self, _: EventSink) -> Result<(), BackendError> {
        Ok(())
    }
    fn submit(&mut self, batch: Vec<Dispatch>) -> Result<(), BackendError> {
        self.0.fetch_add(batch.len(), Ordering::SeqCst);
        Ok(())
    }
    fn cancel(&mut self, _: &[AttemptKey]) {}
    fn shutdown(&mut self) {}
}

fn quiet() -> MasterConfig {
    MasterConfig {
        progress: false,
        ..MasterConfig::default()
    }
}

#[pymw::task]
fn length(bytes: Vec<u8>) -> u64 {
    bytes.len() as u64
}

#[pymw::task]
fn zeros(n: u64) -> Vec<u8> {
    vec![0; n as usize]
}

#[test]
fn input_over_the_limit_is_refused_at_submit() {
    if !child("input_over_the_limit_is_refused_at_submit", "4K") {
        return;
    }
    assert_eq!(wire::max_message_bytes(), 4096);
    pymw::init();
    let dispatched = Arc::new(AtomicUsize::new(0));
    let master =
        pymw::blocking::Master::start_with(Box::new(Count(dispatched.clone())), quiet()).unwrap();
    let result = master.submit(length::task(), vec![7; 5000]).wait();
    match &result {
        Err(error @ TaskError::InputTooLarge { size, limit, .. }) => {
            assert!(*size > 5000, "{size}");
            assert_eq!(*limit, 4096);
            let message = error.to_string();
            assert!(message.contains("PYMW_MAX_MESSAGE_BYTES"), "{message}");
        }
        other => panic!("expected InputTooLarge, got {other:?}"),
    }
    // A small one goes out.
    let _small = master.submit(length::task(), vec![7; 100]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while dispatched.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(dispatched.load(Ordering::SeqCst), 1);
}

#[test]
fn value_over_the_limit_fails_the_task_on_the_worker() {
    if !child("value_over_the_limit_fails_the_task_on_the_worker", "4KiB") {
        return;
    }
    pymw::init();
    let dir = std::env::temp_dir().join(format!("pymw-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in");
    let output = dir.join("out");
    for (n, exit) in [(100, WorkerExit::Ok), (8000, WorkerExit::TaskFailed)] {
        std::fs::write(&input, zeros::task().input_envelope(&n)).unwrap();
        let args = WorkerArgs {
            task: zeros::NAME.to_owned(),
            input: input.clone(),
            output: output.clone(),
        };
        assert_eq!(run_worker(&args), exit);
        let bytes = std::fs::read(&output).unwrap();
        let body = wire::decode_output(&bytes).unwrap();
        match (n, body.outcome) {
            (100, wire::Outcome::Ok(_)) => {}
            (8000, wire::Outcome::Failed(Failure::TaskError { message })) => {
                assert!(message.contains("over the limit of 4096"), "{message}");
                assert!(message.contains("PYMW_MAX_MESSAGE_BYTES"), "{message}");
            }
            (n, other) => panic!("{n}: unexpected {other:?}"),
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_limit_that_does_not_parse_stops_the_master_at_start() {
    if !child(
        "a_limit_that_does_not_parse_stops_the_master_at_start",
        "lots",
    ) {
        return;
    }
    pymw::init();
    let dispatched = Arc::new(AtomicUsize::new(0));
    match pymw::blocking::Master::start_with(Box::new(Count(dispatched)), quiet()) {
        Err(error @ Error::InvalidEnv { .. }) => {
            let message = error.to_string();
            assert!(message.contains("PYMW_MAX_MESSAGE_BYTES"), "{message}");
            assert!(message.contains("lots"), "{message}");
        }
        other => panic!("expected InvalidEnv, got {other:?}"),
    }
}
