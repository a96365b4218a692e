//! A synthetic run for tests of the store and of the tools that read it
//! (feature `fixture`): a simulated HTCondor-like pool of hosts and slots
//! running a map of tasks, with lost attempts that are retried (up to three
//! attempts), task errors, panics, timeouts, cancellations and two large
//! values, recorded through the public API exactly as a master would.
//! Deterministic for a given seed.

use crate::{
    AttemptEvent, AttemptOutcome, FinishedTask, OpenOptions, RunStore, StoreError, SubmittedTask,
    TaskIdentity, input_hash,
};
use pymw_core::wire::{Failure, WorkerStats, encode_payload};
use std::collections::HashMap;
use std::path::Path;

/// 2026-01-01 00:00:00 UTC: when the synthetic run starts.
pub const START_NS: u64 = 1_767_225_600_000_000_000;

/// The fixture's task names and fingerprints.
pub const TASKS: [(&str, u64); 2] = [
    ("monte_pi::throw_darts", 0x6d6f_6e74_655f_7069),
    ("prime_finder::count_primes", 0x7072_696d_6573_2121),
];

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// Tasks in the map. Default 1000.
    pub tasks: u64,
    /// Hosts. Default 4.
    pub hosts: usize,
    /// Slots per host. Default 4.
    pub slots: usize,
    /// Seed of the pseudo-random choices.
    pub seed: u64,
    /// Tiny tasks (microseconds, local backend, no job ids, batched like a
    /// busy master: they end up in task blocks) instead of slow grid tasks.
    pub tiny: bool,
    /// Stop after this fraction of the events, without closing the run (as
    /// if the master had been killed). `None`: the whole run, closed.
    pub interrupt_at: Option<f64>,
}

impl Default for Fixture {
    fn default() -> Self {
        Fixture {
            tasks: 1000,
            hosts: 4,
            slots: 4,
            seed: 42,
            tiny: false,
            interrupt_at: None,
        }
    }
}

/// What the fixture recorded, for assertions.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Tasks that finished with a value.
    pub done: u64,
    /// Tasks that failed.
    pub failed: u64,
    /// Tasks cancelled.
    pub cancelled: u64,
    /// Attempts lost and retried.
    pub lost_retried: u64,
    /// Every task's identity, by position.
    pub identities: Vec<TaskIdentity>,
    /// Values of the tasks that finished with one.
    pub values: HashMap<TaskIdentity, Vec<u8>>,
    /// Failed tasks with their final failure's message.
    pub failures: HashMap<TaskIdentity, String>,
    /// Task names by identity.
    pub names: HashMap<TaskIdentity, &'static str>,
    /// Each task's input bytes.
    pub inputs: Vec<Vec<u8>>,
}

/// splitmix64: small, deterministic, good enough for a simulation.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-12), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

enum Event {
    Submitted(SubmittedTask),
    Queued(AttemptEvent),
    Started(AttemptEvent),
    Finished(FinishedTask),
}

const STDERR_PANIC: &str = "thread 'main' panicked at examples/src/monte_pi.rs:42:17:\n\
index out of bounds: the len is 3 but the index is 7\n\
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace";

/// Records a synthetic run named `name` under `root` and returns what it
/// recorded.
pub fn synthetic_run(root: &Path, name: &str, fixture: &Fixture) -> Result<Summary, StoreError> {
    let store = RunStore::open(
        root,
        name,
        OpenOptions::new()
            .backend(if fixture.tiny { "local" } else { "condor" })
            .binary(
                "/home/user/monte_pi/target/release/monte_pi",
                TASKS.iter().map(|(n, f)| (n.to_string(), *f)).collect(),
            ),
    )?;
    let mut rng = Rng(fixture.seed);
    let mut summary = Summary::default();
    let mut events: Vec<(u64, Event)> = Vec::new();
    let slots = fixture.hosts.max(1) * fixture.slots.max(1);
    let mut free_at = vec![START_NS; slots];
    let hosts: Vec<String> = (0..fixture.hosts.max(1))
        .map(|h| format!("node{:02}", h + 1))
        .collect();
    let cancelled_from = fixture.tasks.saturating_sub(3);

    for position in 0..fixture.tasks {
        let (task, fingerprint) = TASKS[usize::from(position % 5 == 4)];
        let input = encode_payload(&(position, fixture.seed));
        let hash = input_hash(&input);
        let identity = TaskIdentity::from_parts(fingerprint, hash, position);
        let submitted_ns = START_NS + position * if fixture.tiny { 12_000 } else { 2_000_000 };
        summary.identities.push(identity);
        summary.names.insert(identity, task);
        summary.inputs.push(input);
        events.push((
            submitted_ns,
            Event::Submitted(SubmittedTask {
                identity,
                task: task.into(),
                fingerprint,
                position,
                input_hash: hash,
                submitted_ns,
            }),
        ));
        if !fixture.tiny && position >= cancelled_from {
            events.push((
                submitted_ns + 1,
                Event::Finished(FinishedTask {
                    identity,
                    attempt: 0,
                    outcome: AttemptOutcome::Cancelled,
                    stats: WorkerStats::default(),
                    stderr_tail: String::new(),
                    started_ns: None,
                    finished_ns: submitted_ns + 5_000_000_000,
                }),
            ));
            summary.cancelled += 1;
            continue;
        }
        let mut attempt = 0u32;
        let mut not_before = submitted_ns;
        loop {
            let slot = (0..slots).min_by_key(|&s| free_at[s]).expect("a slot");
            let host = if fixture.tiny {
                String::new()
            } else {
                hosts[slot / fixture.slots.max(1)].clone()
            };
            let queued_ns = not_before.max(free_at[slot].saturating_sub(30_000_000_000));
            let start =
                free_at[slot].max(queued_ns + if fixture.tiny { 2_000 } else { 1_500_000_000 });
            let base = if fixture.tiny {
                (20_000.0 * (0.4 * rng.normal()).exp()) as u64
            } else {
                let heavy = if task.starts_with("prime") { 1.6 } else { 1.0 };
                (heavy * 7.0e9 * (0.55 * rng.normal()).exp()) as u64
            };
            let roll = rng.unit();
            let (outcome, duration, stderr_tail) = if fixture.tiny {
                let value = encode_payload(&(position as f64 * 0.5));
                (AttemptOutcome::Value(value.into()), base, String::new())
            } else if roll < 0.07 {
                let duration = (base as f64 * rng.unit()) as u64;
                let cause = if rng.unit() < 0.5 {
                    "worker killed by signal 9 (SIGKILL)".to_string()
                } else {
                    "job held: memory usage exceeded request_memory (2048 MiB)".to_string()
                };
                let retried = attempt < 2;
                (
                    AttemptOutcome::Lost { cause, retried },
                    duration,
                    "Loading 2.1 GiB lookup table...\n".to_string(),
                )
            } else if roll < 0.09 {
                (
                    AttemptOutcome::Failed(Failure::TaskError {
                        message: format!("no convergence after {} iterations", 10_000 + position),
                    }),
                    base / 2,
                    "warning: step size below 1e-12\n".to_string(),
                )
            } else if roll < 0.10 {
                (
                    AttemptOutcome::Failed(Failure::Panic {
                        message: "index out of bounds: the len is 3 but the index is 7".to_string(),
                        location: Some("examples/src/monte_pi.rs:42:17".to_string()),
                    }),
                    base / 3,
                    STDERR_PANIC.to_string(),
                )
            } else if roll < 0.105 {
                (
                    AttemptOutcome::TimedOut {
                        after_ns: 30_000_000_000,
                    },
                    30_000_000_000,
                    String::new(),
                )
            } else {
                let value = if position == 4 || position == 9 {
                    vec![position as u8; 100 * 1024]
                } else {
                    encode_payload(&(std::f64::consts::PI + position as f64 * 1e-6))
                };
                (AttemptOutcome::Value(value.into()), base, String::new())
            };
            let end = start + duration.max(1);
            free_at[slot] = end + if fixture.tiny { 0 } else { 200_000_000 };
            let job_id = (!fixture.tiny).then(|| format!("{}.{}", 100 + attempt, position));
            events.push((
                queued_ns,
                Event::Queued(AttemptEvent {
                    identity,
                    attempt,
                    job_id: job_id.clone(),
                    host: None,
                    at_ns: queued_ns,
                }),
            ));
            if !fixture.tiny {
                events.push((
                    start,
                    Event::Started(AttemptEvent {
                        identity,
                        attempt,
                        job_id: None,
                        host: Some(host.clone()),
                        at_ns: start,
                    }),
                ));
            }
            let stats = WorkerStats {
                wall_ns: duration,
                cpu_ns: Some(duration / 10 * 9),
                peak_rss_kib: 20_000 + rng.next() % 200_000,
                host: host.clone(),
            };
            let retry = matches!(outcome, AttemptOutcome::Lost { retried: true, .. });
            match &outcome {
                AttemptOutcome::Value(v) => {
                    summary.done += 1;
                    summary.values.insert(identity, v.to_vec());
                }
                AttemptOutcome::Lost { retried: true, .. } => summary.lost_retried += 1,
                AttemptOutcome::Lost { cause, .. } => {
                    summary.failed += 1;
                    summary.failures.insert(identity, cause.clone());
                }
                AttemptOutcome::Failed(f) => {
                    summary.failed += 1;
                    let message = match f {
                        Failure::TaskError { message } | Failure::Panic { message, .. } => {
                            message.clone()
                        }
                        other => other.to_string(),
                    };
                    summary.failures.insert(identity, message);
                }
                AttemptOutcome::TimedOut { .. } => {
                    summary.failed += 1;
                    summary.failures.insert(identity, "timeout".to_string());
                }
                _ => {}
            }
            events.push((
                end,
                Event::Finished(FinishedTask {
                    identity,
                    attempt,
                    outcome,
                    stats,
                    stderr_tail,
                    started_ns: Some(start),
                    finished_ns: end,
                }),
            ));
            if !retry {
                break;
            }
            not_before = end + 1;
            attempt += 1;
        }
    }

    store.set_expected_tasks(Some(fixture.tasks));
    // Stable: a task's submission comes before its attempts at the same time.
    events.sort_by_key(|(at, _)| *at);
    let stop = fixture
        .interrupt_at
        .map_or(events.len(), |f| (events.len() as f64 * f) as usize);
    // Slow runs commit a few tasks at a time, as a real master would; tiny
    // ones in big batches.
    let chunk = if fixture.tiny { 8192 } else { 40 };
    let mut batch = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let send = |batch: &mut (Vec<_>, Vec<_>, Vec<_>, Vec<_>)| {
        store.record_submitted(std::mem::take(&mut batch.0));
        store.record_queued(std::mem::take(&mut batch.1));
        store.record_started(std::mem::take(&mut batch.2));
        store.record_finished(std::mem::take(&mut batch.3));
    };
    let mut last_kind = 0;
    for (index, (_, event)) in events.into_iter().take(stop).enumerate() {
        // A batch goes out kind by kind (submitted, queued, started,
        // finished): send it before an event of an earlier kind, so that
        // the store sees every event in time order. (Tiny tasks have no
        // retries: a chunk at a time, as a busy master sends them.)
        let kind = match &event {
            Event::Submitted(_) => 0,
            Event::Queued(_) => 1,
            Event::Started(_) => 2,
            Event::Finished(_) => 3,
        };
        if kind < last_kind && !fixture.tiny {
            send(&mut batch);
        }
        last_kind = kind;
        match event {
            Event::Submitted(t) => batch.0.push(t),
            Event::Queued(e) => batch.1.push(e),
            Event::Started(e) => batch.2.push(e),
            Event::Finished(f) => batch.3.push(f),
        }
        if (index + 1) % chunk == 0 {
            send(&mut batch);
            store.flush()?;
        }
    }
    send(&mut batch);
    if fixture.interrupt_at.is_some() {
        store.abandon()?;
    } else {
        store.close()?;
    }
    Ok(summary)
}
