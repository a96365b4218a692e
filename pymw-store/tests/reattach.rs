//! The re-attach contract between the master, the run store and a backend:
//! a master reports each attempt's job id (`Event::Queued`) and the store
//! keeps it; a master started again on the same run hands the attempts that
//! never ended back to the backend with that job id (`Dispatch::reattach`)
//! and the same attempt number, and submits nothing else for them.
//!
//! The engine here is a scripted one: it stands for an engine whose jobs
//! outlive the master (HTCondor's end-to-end test does this on a real pool).

use pymw_core::backend::{AttemptKey, Backend, BackendError, Dispatch, Event, EventSink};
use pymw_core::blocking::Master;
use pymw_core::wire::{self, WorkerStats};
use pymw_core::{JournalHandle, MasterConfig};
use pymw_store::{OpenOptions, RunReader, RunStore, StoreJournal};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[pymw_macros::task(crate = "pymw_core", name = "reattach::double")]
fn double(x: u64) -> u64 {
    x * 2
}

/// What the scripted engine was given: (key, attempt, input, reattach).
type Given = Arc<Mutex<Vec<(AttemptKey, u32, u64, Option<String>)>>>;

/// An engine whose jobs outlive the master. Every new attempt becomes job
/// `job-X` (X its input); jobs of inputs below `finish_below` end at once
/// with `2 X`; a followed job ends with `2 X` too.
struct Engine {
    given: Given,
    finish_below: u64,
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
            self.given
                .lock()
                .unwrap()
                .push((d.key, d.attempt, x, d.reattach.clone()));
            let mut events = Vec::new();
            if d.reattach.is_none() {
                events.push(Event::Queued {
                    key: d.key,
                    job_id: format!("job-{x}"),
                });
            }
            events.push(Event::Started { key: d.key });
            if d.reattach.is_some() || x < self.finish_below {
                events.push(Event::Finished {
                    key: d.key,
                    outcome: Ok(wire::encode_payload(&(2 * x))),
                    stats: WorkerStats::default(),
                    stderr_tail: String::new(),
                });
            }
            sink.send(events);
        }
        Ok(())
    }

    fn cancel(&mut self, _: &[AttemptKey]) {}

    fn shutdown(&mut self) {}
}

fn master(root: &Path, given: &Given, finish_below: u64) -> Master {
    let store = RunStore::open(
        root,
        "followed",
        OpenOptions::new().create(true).resume(true),
    )
    .expect("open the run store");
    let config = MasterConfig {
        progress: false,
        journal: Some(JournalHandle(Arc::new(StoreJournal::new(store, false)))),
        ..MasterConfig::default()
    };
    let engine = Engine {
        given: given.clone(),
        finish_below,
        events: None,
    };
    Master::start_with(Box::new(engine), config).expect("start a master")
}

#[test]
fn a_restarted_master_follows_the_jobs_it_finds_and_submits_nothing_twice() {
    pymw_core::worker::init();
    let root = tempfile::tempdir().unwrap();
    let inputs = [0u64, 1, 2, 3];

    // First life: jobs 0 and 1 end, 2 and 3 are still running when the
    // master goes away.
    let first: Given = Arc::default();
    let life = master(root.path(), &first, 2);
    let handles: Vec<_> = inputs
        .iter()
        .map(|&x| life.submit(double::task(), x))
        .collect();
    let mut handles = handles.into_iter();
    assert_eq!(handles.next().unwrap().wait().unwrap(), 0);
    assert_eq!(handles.next().unwrap().wait().unwrap(), 2);
    // The job ids of the unfinished ones reach the store promptly.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reader = RunReader::open(root.path(), "followed").unwrap();
        let counts = reader.counts().unwrap();
        if counts.done == 2 && counts.running == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{counts:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(handles);
    drop(life);

    // Second life: the same tasks, in the same order.
    let second: Given = Arc::default();
    let life = master(root.path(), &second, 0);
    let results: Vec<u64> = life
        .map(double::task(), inputs)
        .map(|r| r.expect("a value"))
        .collect();
    assert_eq!(results, [0, 2, 4, 6]);
    drop(life);

    let given = second.lock().unwrap().clone();
    let mut followed: Vec<(u32, u64, Option<String>)> =
        given.into_iter().map(|(_, a, x, r)| (a, x, r)).collect();
    followed.sort();
    assert_eq!(
        followed,
        [
            (0, 2, Some("job-2".to_owned())),
            (0, 3, Some("job-3".to_owned()))
        ],
        "the second master must hand back exactly the unfinished jobs, to follow"
    );
    let reader = RunReader::open(root.path(), "followed").unwrap();
    let counts = reader.counts().unwrap();
    assert_eq!((counts.done, counts.running, counts.queued), (4, 0, 0));
}
