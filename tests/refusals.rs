//! What the master refuses, and how it says so: arguments postcard cannot
//! carry, unusable options, a blocking master inside a runtime, and the
//! messages of task errors. The master never panics for any of them, and
//! nothing refused reaches a worker.
//!
//! A fake backend counts what is dispatched and answers each attempt with
//! its own input as the value (an "echo"), so no worker process runs.

use pymw::core::backend::{AttemptKey, Dispatch, Event, EventSink};
use pymw::{Backend, BackendError, Error, Failure, MasterConfig, TaskError, TaskOptions};
use serde::ser::{Error as _, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Counts dispatched attempts; answers each with its input as the value.
struct Echo {
    dispatched: Arc<AtomicUsize>,
    events: Option<EventSink>,
}

impl Echo {
    fn new() -> (Echo, Arc<AtomicUsize>) {
        let dispatched = Arc::new(AtomicUsize::new(0));
        let echo = Echo {
            dispatched: dispatched.clone(),
            events: None,
        };
        (echo, dispatched)
    }
}

impl Backend for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }
    fn start(&mut self, events: EventSink) -> Result<(), BackendError> {
        self.events = Some(events);
        Ok(())
    }
    fn submit(&mut self, batch: Vec<Dispatch>) -> Result<(), BackendError> {
        self.dispatched.fetch_add(batch.len(), Ordering::SeqCst);
        let events = batch
            .into_iter()
            .map(|d| Event::Finished {
                key: d.key,
                outcome: Ok(d.input.to_vec()),
                stats: Default::default(),
                stderr_tail: String::new(),
            })
            .collect();
        self.events.as_ref().expect("started").send(events);
        Ok(())
    }
    fn cancel(&mut self, _keys: &[AttemptKey]) {}
    fn shutdown(&mut self) {}
}

fn quiet() -> MasterConfig {
    MasterConfig {
        progress: false,
        ..MasterConfig::default()
    }
}

fn master() -> (pymw::blocking::Master, Arc<AtomicUsize>) {
    pymw::init();
    let (echo, dispatched) = Echo::new();
    let master = pymw::blocking::Master::start_with(Box::new(echo), quiet()).expect("start");
    (master, dispatched)
}

/// A `Serialize` that fails with a message of its own.
#[derive(Debug, Deserialize)]
struct NotReady;

impl Serialize for NotReady {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(S::Error::custom("the frobnicator is not calibrated"))
    }
}

/// A sequence whose length is not known up front.
#[derive(Debug, Deserialize)]
struct Lazy(Vec<u32>);

impl Serialize for Lazy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        for x in &self.0 {
            seq.serialize_element(x)?;
        }
        seq.end()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Inner {
    b: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Flattened {
    a: u32,
    #[serde(flatten)]
    inner: Inner,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    Number(u32),
    Text(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct Skipping {
    #[serde(skip_serializing_if = "Option::is_none")]
    a: Option<u32>,
    b: u32,
}

#[pymw::task]
fn calibrate(x: NotReady) -> u32 {
    let _ = x;
    0
}

#[pymw::task]
fn lazy(x: Lazy) -> u32 {
    x.0.len() as u32
}

#[pymw::task]
fn flattened(x: Flattened) -> u32 {
    x.a + x.inner.b
}

#[pymw::task]
fn untagged(x: Untagged) -> u32 {
    matches!(x, Untagged::Number(_)) as u32
}

#[pymw::task]
fn skipping(x: Skipping) -> u32 {
    x.b
}

#[pymw::task]
fn json(x: serde_json::Value) -> u32 {
    x.as_u64().unwrap_or(0) as u32
}

/// Its value type is untagged: the worker's bytes cannot decode.
#[pymw::task]
fn untagged_value(x: u32) -> Untagged {
    Untagged::Number(x)
}

#[pymw::task]
fn echo(x: u32) -> u32 {
    x
}

fn invalid_argument(result: Result<u32, TaskError>, task: &str) -> String {
    match result {
        Err(error @ TaskError::InvalidArgument { task: name, .. }) => {
            assert!(name.ends_with(task), "{name}");
            println!("{error}");
            error.to_string()
        }
        other => panic!("expected InvalidArgument for {task}, got {other:?}"),
    }
}

#[test]
fn failing_serialize_is_refused_with_its_own_message() {
    let (master, dispatched) = master();
    let message = invalid_argument(
        master.submit(calibrate::task(), NotReady).wait(),
        "calibrate",
    );
    assert!(
        message.contains("the frobnicator is not calibrated"),
        "{message}"
    );
    assert!(message.contains("refused at submit"), "{message}");
    assert_eq!(dispatched.load(Ordering::SeqCst), 0);
}

#[test]
fn unknown_length_and_flatten_are_refused_with_the_fix() {
    let (master, dispatched) = master();
    let message = invalid_argument(master.submit(lazy::task(), Lazy(vec![1])).wait(), "lazy");
    assert!(message.contains("collect into a `Vec`"), "{message}");
    let message = invalid_argument(
        master
            .submit(
                flattened::task(),
                Flattened {
                    a: 1,
                    inner: Inner { b: 2 },
                },
            )
            .wait(),
        "flattened",
    );
    assert!(message.contains("#[serde(flatten)]"), "{message}");
    assert!(message.contains("nest the struct"), "{message}");
    assert_eq!(dispatched.load(Ordering::SeqCst), 0);
}

#[test]
fn types_postcard_cannot_read_are_refused_in_the_master() {
    let (master, dispatched) = master();
    let message = invalid_argument(
        master.submit(untagged::task(), Untagged::Number(1)).wait(),
        "untagged",
    );
    assert!(message.contains("#[serde(untagged)]"), "{message}");
    assert!(message.contains("externally tagged"), "{message}");
    let message = invalid_argument(
        master.submit(json::task(), serde_json::json!(3)).wait(),
        "json",
    );
    assert!(message.contains("serde_json::Value"), "{message}");
    let message = invalid_argument(
        master
            .submit(skipping::task(), Skipping { a: None, b: 7 })
            .wait(),
        "skipping",
    );
    assert!(message.contains("skip_serializing_if"), "{message}");
    assert_eq!(dispatched.load(Ordering::SeqCst), 0);
}

#[test]
fn a_refused_input_of_a_map_is_answered_at_its_position() {
    let (master, dispatched) = master();
    let inputs = vec![Lazy(vec![]), Lazy(vec![1, 2])];
    let results: Vec<_> = {
        let mut map = master.map(lazy::task(), inputs);
        std::iter::from_fn(|| map.next_indexed()).collect()
    };
    assert_eq!(results.len(), 2);
    for (i, (position, result)) in results.into_iter().enumerate() {
        assert_eq!(position, i as u64);
        invalid_argument(result, "lazy");
    }
    // A map checks its own first input against what postcard can read.
    let mut map = master.map(untagged::task(), [Untagged::Number(1), Untagged::Number(2)]);
    invalid_argument(map.next().unwrap(), "untagged");
    invalid_argument(map.next().unwrap(), "untagged");
    assert!(map.next().is_none());
    drop(map);
    // The good ones around a refused one still run, in order.
    let good: Vec<_> = master
        .map(echo::task(), [1u32, 2, 3])
        .collect_values()
        .unwrap();
    assert_eq!(good, [1, 2, 3]);
    assert_eq!(dispatched.load(Ordering::SeqCst), 3);

    let mut set = master.task_set::<u32>();
    let id = set.submit(calibrate::task(), NotReady);
    let (got, result) = set.next_finished().expect("one result");
    assert_eq!(got, id);
    invalid_argument(result, "calibrate");
    assert!(set.next_finished().is_none());
}

#[test]
fn a_value_postcard_cannot_read_names_the_attribute() {
    let (master, _) = master();
    match master.submit(untagged_value::task(), 5).wait() {
        Err(TaskError::Failed {
            failure: Failure::Decode { message },
            ..
        }) => {
            assert!(message.contains("#[serde(untagged)]"), "{message}");
            assert!(message.contains("Untagged"), "{message}");
        }
        other => panic!("expected a decode failure, got {other:?}"),
    }
}

#[test]
fn zero_timeout_and_too_many_retries_are_refused() {
    let (master, dispatched) = master();
    let result = master
        .submit_with(
            echo::task(),
            1,
            TaskOptions::default().timeout(Duration::ZERO),
        )
        .wait();
    match result {
        Err(TaskError::InvalidOptions { message, .. }) => {
            assert!(message.contains("timeout of zero"), "{message}")
        }
        other => panic!("expected InvalidOptions, got {other:?}"),
    }
    let bound = pymw::MAX_RETRIES;
    let at_bound = master
        .submit_with(echo::task(), 2, TaskOptions::default().max_retries(bound))
        .wait();
    assert_eq!(at_bound, Ok(2));
    let over = master
        .submit_with(
            echo::task(),
            3,
            TaskOptions::default().max_retries(bound + 1),
        )
        .wait();
    match over {
        Err(TaskError::InvalidOptions { message, .. }) => {
            assert!(message.contains("255"), "{message}")
        }
        other => panic!("expected InvalidOptions, got {other:?}"),
    }
    assert_eq!(dispatched.load(Ordering::SeqCst), 1);

    pymw::init();
    for config in [
        MasterConfig {
            timeout: Some(Duration::ZERO),
            ..quiet()
        },
        MasterConfig {
            max_retries: bound + 1,
            ..quiet()
        },
    ] {
        let started = pymw::blocking::Master::start_with(Box::new(Echo::new().0), config);
        assert!(
            matches!(started, Err(Error::InvalidConfig(_))),
            "{started:?}"
        );
    }
}

#[tokio::test]
async fn blocking_master_inside_a_runtime_is_refused_at_start() {
    pymw::init();
    let started = pymw::blocking::Master::start(Echo::new().0);
    match started {
        Err(error @ Error::InsideRuntime) => {
            let message = error.to_string();
            assert!(message.contains("pymw::Master"), "{message}");
        }
        other => panic!("expected InsideRuntime, got {other:?}"),
    }
    // The async master is the one to use there.
    let master = pymw::Master::start_with(Box::new(Echo::new().0), quiet()).unwrap();
    assert_eq!(master.submit(echo::task(), 4).await, Ok(4));
}

#[derive(Debug, thiserror::Error)]
enum ConfigError {
    #[error("cannot read the configuration")]
    Read(#[from] std::io::Error),
}

#[pymw::task]
fn read_config(path: String) -> Result<String, ConfigError> {
    Ok(std::fs::read_to_string(path)?)
}

#[pymw::task]
fn read_config_anyhow(path: String) -> anyhow::Result<String> {
    use anyhow::Context;
    std::fs::read_to_string(&path).context("cannot read the configuration")
}

#[pymw::task]
fn read_config_boxed(path: String) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    Ok(std::fs::read_to_string(path).map_err(ConfigError::from)?)
}

#[pymw::task]
fn plain_string_error(x: u32) -> Result<u32, String> {
    Err(format!("{x} is odd"))
}

fn failure_message<A: Serialize, R: serde::de::DeserializeOwned>(
    task: pymw::Task<A, R>,
    args: &A,
) -> String {
    let input = pymw::core::wire::encode_payload(args);
    match (task.entry().invoke)(&input, &mut Vec::new()) {
        Err(Failure::TaskError { message }) => message,
        other => panic!("expected a task error, got {other:?}"),
    }
}

#[test]
fn task_errors_keep_their_sources() {
    let missing = "/nonexistent/pymw/config.toml".to_owned();
    let message = failure_message(read_config::task(), &missing);
    assert!(
        message.starts_with("cannot read the configuration: No such file or directory"),
        "{message}"
    );
    // anyhow keeps its own `{:#}` chain, each cause once.
    let message = failure_message(read_config_anyhow::task(), &missing);
    assert_eq!(
        message.matches("No such file or directory").count(),
        1,
        "{message}"
    );
    assert!(
        message.starts_with("cannot read the configuration: No such file"),
        "{message}"
    );
    // A boxed error shows its chain too; a plain message stays as it is.
    let message = failure_message(read_config_boxed::task(), &missing);
    assert!(
        message.starts_with("cannot read the configuration: No such file or directory"),
        "{message}"
    );
    assert_eq!(failure_message(plain_string_error::task(), &3), "3 is odd");
}

/// The API-level decision for zero workers: `LocalConfig::workers(0)` is a
/// clamp to one worker (the command line refuses `--workers 0`).
#[cfg(feature = "local")]
#[test]
fn zero_local_workers_is_one_worker() {
    let config = pymw::local::LocalConfig::default().workers(0);
    assert_eq!(config.workers, 1);
}
