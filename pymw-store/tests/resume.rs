//! What a restarted master takes from the run store: a failure keeps where
//! it ran and its stderr, and results of a task that changed since (another
//! build: another fingerprint) are not reused but counted and run again.

use pymw_core::backend::{AttemptKey, Backend, BackendError, Dispatch, Event, EventSink};
use pymw_core::blocking::Master;
use pymw_core::journal::{Journal, JournalFinished, JournalOutcome, JournalTask, JournalTurn};
use pymw_core::registry::Registry;
use pymw_core::wire::{self, Failure, WorkerStats};
use pymw_core::{JournalHandle, MasterConfig, TaskError};
use pymw_store::{OpenOptions, RunReader, RunStore, StaleResults, StoreJournal};
use std::path::Path;
use std::sync::{Arc, Mutex};

#[pymw_macros::task(crate = "pymw_core", name = "resume::half")]
fn half(x: u64) -> u64 {
    x / 2
}

/// The inputs each life of the run handed to the engine.
type Given = Arc<Mutex<Vec<u64>>>;

/// An engine whose odd inputs fail on host `node-7`, saying so on stderr;
/// even ones end with half their input.
struct Engine {
    given: Given,
    events: Option<EventSink>,
}

impl Backend for Engine {
    fn name(&self) -> &'static str {
        "scripted"
    }

    fn start(&mut self, events: EventSink) -> Result<(), BackendError> {
        self.events = Some(events);
        Ok(())
    }

    fn submit(&mut self, batch: Vec<Dispatch>) -> Result<(), BackendError> {
        let sink = self.events.as_ref().expect("started");
        for d in batch {
            let x: u64 = wire::decode_payload(&d.input).expect("a u64 input");
            self.given.lock().unwrap().push(x);
            let outcome = if x % 2 == 1 {
                Err(Failure::TaskError {
                    message: format!("{x} is odd"),
                })
            } else {
                Ok(wire::encode_payload(&(x / 2)))
            };
            sink.send(vec![Event::Finished {
                key: d.key,
                outcome,
                stats: WorkerStats {
                    host: "node-7".into(),
                    ..WorkerStats::default()
                },
                stderr_tail: format!("odd input {x}\n"),
            }]);
        }
        Ok(())
    }

    fn cancel(&mut self, _: &[AttemptKey]) {}

    fn shutdown(&mut self) {}
}

fn open_run(root: &Path, run: &str, cache: bool) -> RunStore {
    RunStore::open(
        root,
        run,
        OpenOptions::new()
            .create(true)
            .resume(true)
            .cache(cache)
            .binary("bin", Registry::global().listing()),
    )
    .expect("open the run store")
}

fn open(root: &Path) -> RunStore {
    open_run(root, "resumed", false)
}

fn master(root: &Path, given: &Given) -> Master {
    master_of(root, "resumed", false, given)
}

fn master_of(root: &Path, run: &str, cache: bool, given: &Given) -> Master {
    let store = open_run(root, run, cache);
    let config = MasterConfig {
        progress: false,
        journal: Some(JournalHandle(Arc::new(StoreJournal::new(store, cache)))),
        ..MasterConfig::default()
    };
    let engine = Engine {
        given: given.clone(),
        events: None,
    };
    Master::start_with(Box::new(engine), config).expect("start a master")
}

fn run(life: &Master, inputs: &[u64]) -> Vec<Result<u64, TaskError>> {
    life.map(half::task(), inputs.to_vec()).collect()
}

#[test]
fn a_resumed_failure_keeps_its_host_and_stderr_tail() {
    pymw_core::worker::init();
    let root = tempfile::tempdir().unwrap();
    let inputs = [2u64, 3];

    let first: Given = Arc::default();
    let life = master(root.path(), &first);
    let ran = run(&life, &inputs);
    drop(life);
    assert_eq!(first.lock().unwrap().len(), 2);

    let second: Given = Arc::default();
    let life = master(root.path(), &second);
    let resumed = run(&life, &inputs);
    drop(life);
    assert!(second.lock().unwrap().is_empty(), "nothing runs again");
    assert_eq!(resumed, ran, "the same outcomes, failure details included");
    match &resumed[1] {
        Err(TaskError::Failed {
            failure,
            host,
            stderr_tail,
            ..
        }) => {
            assert_eq!(
                failure,
                &Failure::TaskError {
                    message: "3 is odd".into()
                }
            );
            assert_eq!(host, "node-7");
            assert_eq!(stderr_tail, "odd input 3\n");
        }
        other => panic!("expected the recorded failure, got {other:?}"),
    }
}

/// Records, as an earlier build would have, `count` finished tasks of
/// `resume::half` under the fingerprint `fingerprint`, in one turn (so that
/// most go into blocks).
fn record_earlier_build(root: &Path, fingerprint: u64, inputs: &[u64]) {
    record_earlier_build_in(root, "resumed", false, fingerprint, inputs);
}

fn record_earlier_build_in(root: &Path, run: &str, cache: bool, fingerprint: u64, inputs: &[u64]) {
    let journal = StoreJournal::new(open_run(root, run, cache), cache);
    let mut turn = JournalTurn::default();
    for (position, &x) in inputs.iter().enumerate() {
        let input = wire::encode_payload(&x);
        let position = position as u64;
        let identified = journal.identify(fingerprint, &input, position);
        let outcome = if x % 2 == 1 {
            JournalOutcome::Failed(Failure::TaskError {
                message: "old".into(),
            })
        } else {
            JournalOutcome::Value(wire::encode_payload(&999u64))
        };
        turn.finished.push(JournalFinished {
            identity: identified.identity,
            attempt: 0,
            outcome,
            stats: WorkerStats::default(),
            stderr_tail: String::new(),
            submission: Some(JournalTask {
                identity: identified.identity,
                task: "resume::half",
                fingerprint,
                position,
                input_hash: identified.input_hash,
            }),
        });
    }
    journal.record(&mut turn);
    journal.close().unwrap();
}

#[test]
fn results_of_a_changed_task_are_counted_and_not_reused() {
    pymw_core::worker::init();
    let root = tempfile::tempdir().unwrap();
    let inputs: Vec<u64> = (0..100).map(|i| i * 2).chain([1, 3]).collect();
    let ours = (half::task().entry().fingerprint)();
    record_earlier_build(root.path(), ours ^ 1, &inputs);

    let journal = StoreJournal::new(open(root.path()), false);
    let stale = journal
        .stale_results(&Registry::global().listing())
        .unwrap();
    assert_eq!(
        stale,
        [pymw_core::journal::StaleResults {
            task: "resume::half".into(),
            results: 102,
        }]
    );
    assert_eq!(
        journal.stale_results(&[("other::task".into(), 1)]).unwrap(),
        [],
        "only tasks of this binary count"
    );
    journal.close().unwrap();

    // The master runs every task again: the old values (999) are not reused.
    let given: Given = Arc::default();
    let life = master(root.path(), &given);
    let results = run(&life, &inputs);
    drop(life);
    assert_eq!(given.lock().unwrap().len(), inputs.len());
    assert_eq!(results[0].as_ref().ok(), Some(&0));
    assert_eq!(results[1].as_ref().ok(), Some(&1));

    // `pymw status` reads the same count, against the binary that opened
    // the run last.
    let reader = RunReader::open(root.path(), "resumed").unwrap();
    assert_eq!(
        reader.stale_results().unwrap(),
        [StaleResults {
            task: "resume::half".into(),
            results: 102,
        }]
    );

    // A run whose results are all of this build has none.
    let fresh = tempfile::tempdir().unwrap();
    record_earlier_build(fresh.path(), ours, &inputs);
    let reader = RunReader::open(fresh.path(), "resumed").unwrap();
    assert_eq!(reader.stale_results().unwrap(), []);
}

#[test]
fn the_result_cache_holds_no_value_of_a_changed_task() {
    pymw_core::worker::init();
    let root = tempfile::tempdir().unwrap();
    let inputs = [2u64, 4];
    let ours = (half::task().entry().fingerprint)();

    // An earlier build's run filled the cache (its values were 999).
    record_earlier_build_in(root.path(), "earlier", true, ours ^ 1, &inputs);
    let store = open_run(root.path(), "earlier", true);
    let key = pymw_store::input_hash(&wire::encode_payload(&2u64));
    assert_eq!(
        store.cache_get(ours ^ 1, &key).unwrap(),
        Some(wire::encode_payload(&999u64)),
        "the earlier build's value is in the cache"
    );
    store.close().unwrap();
    let given: Given = Arc::default();
    let life = master_of(root.path(), "fixed", true, &given);
    let results: Vec<u64> = run(&life, &inputs)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    drop(life);
    assert_eq!(
        results,
        [1, 2],
        "the fixed task's values, not the cached 999"
    );
    assert_eq!(given.lock().unwrap().len(), 2, "every task ran");

    // The same build again: now the cache answers.
    let given: Given = Arc::default();
    let life = master_of(root.path(), "again", true, &given);
    let results: Vec<u64> = run(&life, &inputs)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    drop(life);
    assert_eq!(results, [1, 2]);
    assert!(given.lock().unwrap().is_empty(), "answered from the cache");
}
