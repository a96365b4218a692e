//! A scripted engine and a scripted journal for driving the master without
//! processes: every call the master makes is logged, and the test sends the
//! engine's events itself, when it chooses.

#![allow(dead_code, unreachable_pub)]

use pymw_core::backend::{AttemptKey, Backend, BackendError, Dispatch, Event, EventSink};
use pymw_core::journal::{
    Identified, Identity, InFlight, Journal, JournalOutcome, JournalTurn, Recorded,
};
use pymw_core::wire::{self, Failure, WorkerStats};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How long a test waits for a call it expects before failing.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long the master is given to make a call a test expects it not to.
const SETTLE: Duration = Duration::from_millis(30);

/// One attempt as the engine was given it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub key: AttemptKey,
    pub task: &'static str,
    /// The input, decoded (the tasks here take a `u64`).
    pub input: u64,
    pub attempt: u32,
    pub reattach: Option<String>,
}

/// A call the master made on the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Resumable(String),
    Start,
    Submit(Vec<Sent>),
    Cancel(Vec<AttemptKey>),
    Shutdown,
}

/// The test's side of the engine: the calls made so far and the sink to send
/// events into.
#[derive(Debug, Default)]
pub struct Script {
    calls: Mutex<Vec<Call>>,
    /// How many calls the test has looked at.
    seen: Mutex<usize>,
    sink: Mutex<Option<EventSink>>,
    notify: tokio::sync::Notify,
    /// Makes `submit` fail with this message.
    refuse: Mutex<Option<String>>,
}

impl Script {
    fn log(&self, call: Call) {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(call);
        self.notify.notify_one();
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The next call the test has not looked at; fails the test when none
    /// comes.
    pub async fn next(&self) -> Call {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let notified = self.notify.notified();
            {
                let calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
                let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(call) = calls.get(*seen) {
                    *seen += 1;
                    return call.clone();
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("no call from the master; so far: {:#?}", self.calls());
            }
        }
    }

    /// The next call, which must be a submit; its attempts.
    pub async fn submitted(&self) -> Vec<Sent> {
        match self.next().await {
            Call::Submit(sent) => sent,
            other => panic!("expected a submit, got {other:?}"),
        }
    }

    /// The next call, which must be a submit of one attempt.
    pub async fn submitted_one(&self) -> Sent {
        let mut sent = self.submitted().await;
        assert_eq!(sent.len(), 1, "one attempt expected: {sent:?}");
        sent.pop().unwrap()
    }

    /// The next call, which must be a cancel; its keys.
    pub async fn cancelled(&self) -> Vec<AttemptKey> {
        match self.next().await {
            Call::Cancel(keys) => keys,
            other => panic!("expected a cancel, got {other:?}"),
        }
    }

    /// Gives the master time to act, then checks that it made no call the
    /// test has not looked at.
    pub async fn quiet(&self) {
        tokio::time::sleep(SETTLE).await;
        let calls = self.calls();
        let seen = *self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        assert_eq!(
            calls.len(),
            seen,
            "unexpected calls from the master: {:#?}",
            &calls[seen..]
        );
    }

    /// Sends a batch of events as the engine; false when the master is gone.
    pub fn send(&self, events: Vec<Event>) -> bool {
        let sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        sink.as_ref().expect("the engine was started").send(events)
    }

    /// Makes every later submit fail with `message`.
    pub fn refuse(&self, message: &str) {
        *self.refuse.lock().unwrap_or_else(PoisonError::into_inner) = Some(message.to_owned());
    }
}

/// The engine the master is given: it does nothing but log.
#[derive(Debug)]
pub struct Engine {
    pub script: Arc<Script>,
}

/// A scripted engine and the test's side of it.
pub fn engine() -> (Engine, Arc<Script>) {
    let script = Arc::new(Script::default());
    (
        Engine {
            script: script.clone(),
        },
        script,
    )
}

impl Backend for Engine {
    fn name(&self) -> &'static str {
        "scripted"
    }

    fn start(&mut self, events: EventSink) -> Result<(), BackendError> {
        *self
            .script
            .sink
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(events);
        self.script.log(Call::Start);
        Ok(())
    }

    fn submit(&mut self, batch: Vec<Dispatch>) -> Result<(), BackendError> {
        let sent = batch
            .iter()
            .map(|d| Sent {
                key: d.key,
                task: d.task.name,
                input: wire::decode_payload(&d.input).expect("a u64 input"),
                attempt: d.attempt,
                reattach: d.reattach.clone(),
            })
            .collect();
        self.script.log(Call::Submit(sent));
        match self
            .script
            .refuse
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            Some(message) => Err(BackendError {
                backend: "scripted",
                message,
            }),
            None => Ok(()),
        }
    }

    fn cancel(&mut self, keys: &[AttemptKey]) {
        self.script.log(Call::Cancel(keys.to_vec()));
    }

    fn resumable(&mut self, run: &str) {
        self.script.log(Call::Resumable(run.to_owned()));
    }

    fn shutdown(&mut self) {
        self.script.log(Call::Shutdown);
    }
}

pub fn queued(key: AttemptKey, job_id: &str) -> Event {
    Event::Queued {
        key,
        job_id: job_id.to_owned(),
    }
}

pub fn started(key: AttemptKey) -> Event {
    Event::Started { key }
}

/// The attempt returned `value`.
pub fn finished(key: AttemptKey, value: u64) -> Event {
    Event::Finished {
        key,
        outcome: Ok(wire::encode_payload(&value)),
        stats: WorkerStats::default(),
        stderr_tail: String::new(),
    }
}

/// The attempt's task returned an error with this message.
pub fn failed(key: AttemptKey, message: &str) -> Event {
    Event::Finished {
        key,
        outcome: Err(Failure::TaskError {
            message: message.to_owned(),
        }),
        stats: WorkerStats {
            host: "node-1".to_owned(),
            ..WorkerStats::default()
        },
        stderr_tail: "tail".to_owned(),
    }
}

pub fn lost(key: AttemptKey, cause: &str) -> Event {
    Event::Lost {
        key,
        cause: cause.to_owned(),
        stderr_tail: String::new(),
    }
}

pub fn requeued(key: AttemptKey) -> Event {
    Event::Requeued {
        key,
        reason: "evicted".to_owned(),
    }
}

pub fn held(key: AttemptKey) -> Event {
    Event::Held {
        key,
        reason: "over its memory".to_owned(),
    }
}

/// A task's identity in the scripted journal: its position.
pub fn identity(position: u64) -> Identity {
    let mut identity = [0; 16];
    identity[..8].copy_from_slice(&position.to_le_bytes());
    identity
}

fn position_of(identity: &Identity) -> u64 {
    u64::from_le_bytes(identity[..8].try_into().unwrap())
}

/// The scripted journal's input hash: the input's bytes.
pub fn input_hash(input: u64) -> [u8; 16] {
    let bytes = wire::encode_payload(&input);
    let mut hash = [0; 16];
    hash[..bytes.len()].copy_from_slice(&bytes);
    hash
}

/// What the master recorded, by task position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rec {
    /// The task was accepted (on its own, or with its first end).
    Submitted(u64),
    Queued(u64, u32, String),
    Started(u64, u32),
    Finished(u64, u32, JournalOutcome),
}

impl Rec {
    fn position(&self) -> u64 {
        match self {
            Rec::Submitted(p) | Rec::Queued(p, ..) | Rec::Started(p, _) | Rec::Finished(p, ..) => {
                *p
            }
        }
    }
}

/// A journal that answers from tables the test fills and logs what the
/// master records. Identities are positions in the submission order.
#[derive(Debug, Default)]
pub struct ScriptedJournal {
    pub recorded: HashMap<Identity, Recorded>,
    pub in_flight: HashMap<Identity, InFlight>,
    /// The result cache, by input hash.
    pub cache: HashMap<[u8; 16], Vec<u8>>,
    /// What [`Journal::error`] answers.
    pub error: Mutex<Option<String>>,
    pub log: Mutex<Vec<Rec>>,
    pub closed: AtomicBool,
}

impl ScriptedJournal {
    /// What was recorded about the task at `position`, in order.
    pub fn of(&self, position: u64) -> Vec<Rec> {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.iter()
            .filter(|r| r.position() == position)
            .cloned()
            .collect()
    }
}

impl Journal for ScriptedJournal {
    fn identify(&self, _fingerprint: u64, input: &[u8], position: u64) -> Identified {
        let mut input_hash = [0; 16];
        input_hash[..input.len()].copy_from_slice(input);
        Identified {
            identity: identity(position),
            input_hash,
        }
    }

    fn recorded(&self) -> Result<HashMap<Identity, Recorded>, String> {
        Ok(self.recorded.clone())
    }

    fn run_name(&self) -> &str {
        "scripted-run"
    }

    fn in_flight(&self) -> Result<HashMap<Identity, InFlight>, String> {
        Ok(self.in_flight.clone())
    }

    fn cached(&self, _fingerprint: u64, input_hash: &[u8; 16]) -> Option<Vec<u8>> {
        self.cache.get(input_hash).cloned()
    }

    fn record(&self, turn: &mut JournalTurn) {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        for task in turn.submitted.drain(..) {
            log.push(Rec::Submitted(task.position));
        }
        for (identity, attempt, job) in turn.queued.drain(..) {
            log.push(Rec::Queued(position_of(&identity), attempt, job));
        }
        for (identity, attempt) in turn.started.drain(..) {
            log.push(Rec::Started(position_of(&identity), attempt));
        }
        for finished in turn.finished.drain(..) {
            let position = position_of(&finished.identity);
            if let Some(task) = finished.submission {
                assert_eq!(task.position, position);
                log.push(Rec::Submitted(position));
            }
            log.push(Rec::Finished(position, finished.attempt, finished.outcome));
        }
    }

    fn error(&self) -> Option<String> {
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn close(&self) -> Result<(), String> {
        self.closed.store(true, Ordering::SeqCst);
        Ok(())
    }
}
