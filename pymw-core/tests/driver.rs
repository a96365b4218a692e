//! The master's driver against a scripted engine: the test sends the
//! engine's events and checks every call the master makes on it (submits
//! with their attempt numbers, cancels, shutdown) and every result it hands
//! back. No processes run.
//!
//! Timeouts are real (short) time: the driver's deadlines are
//! `std::time::Instant`s, which a paused tokio clock does not move.

mod support;

use pymw_core::backend::Event;
use pymw_core::journal::{InFlight, JournalOutcome, Recorded};
use pymw_core::wire::{self, Failure};
use pymw_core::{JournalHandle, Master, MasterConfig, StatusCounts, TaskError, TaskOptions};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use support::{
    Call, Rec, Script, ScriptedJournal, Sent, engine, failed, finished, held, identity, input_hash,
    lost, queued, requeued, started,
};

#[pymw_macros::task(crate = "pymw_core", name = "driver::double")]
fn double(x: u64) -> u64 {
    x * 2
}

const DOUBLE: &str = "driver::double";

fn config() -> MasterConfig {
    MasterConfig {
        progress: false,
        ..MasterConfig::default()
    }
}

fn with_journal(journal: &Arc<ScriptedJournal>) -> MasterConfig {
    MasterConfig {
        journal: Some(JournalHandle(journal.clone())),
        ..config()
    }
}

/// A master on a scripted engine, started.
async fn start(config: MasterConfig) -> (Master, Arc<Script>) {
    pymw_core::worker::init();
    let journaled = config.journal.is_some();
    let (engine, script) = engine();
    let master = Master::start_with(Box::new(engine), config).expect("start a master");
    if journaled {
        assert_eq!(script.next().await, Call::Resumable("scripted-run".into()));
    }
    assert_eq!(script.next().await, Call::Start);
    (master, script)
}

/// What an attempt is, without its key (which is the master's business).
fn shape(sent: &Sent) -> (&'static str, u64, u32, Option<&str>) {
    (
        sent.task,
        sent.input,
        sent.attempt,
        sent.reattach.as_deref(),
    )
}

fn counts(queued: u64, running: u64, done: u64, failed: u64, cancelled: u64) -> StatusCounts {
    StatusCounts {
        queued,
        running,
        done,
        failed,
        cancelled,
    }
}

/// Drops the master and checks that the engine is shut down.
async fn shut_down(master: Master, script: &Script) {
    drop(master);
    assert_eq!(script.next().await, Call::Shutdown);
    script.quiet().await;
}

#[tokio::test]
async fn a_task_is_submitted_once_and_its_value_comes_back() {
    let (master, script) = start(config()).await;
    let handle = master.submit(double::task(), 21);
    let a = script.submitted_one().await;
    assert_eq!(shape(&a), (DOUBLE, 21, 0, None));
    assert_eq!(master.status(), counts(1, 0, 0, 0, 0));

    script.send(vec![queued(a.key, "job-1"), started(a.key)]);
    script.quiet().await;
    assert_eq!(master.status(), counts(0, 1, 0, 0, 0));

    script.send(vec![finished(a.key, 42)]);
    assert_eq!(handle.await, Ok(42));
    assert_eq!(master.status(), counts(0, 0, 1, 0, 0));
    script.quiet().await;
    shut_down(master, &script).await;
}

#[tokio::test]
async fn a_lost_attempt_is_retried_under_a_new_key_until_the_limit() {
    let (master, script) = start(MasterConfig {
        max_retries: 2,
        ..config()
    })
    .await;
    let handle = master.submit(double::task(), 5);
    let mut keys = Vec::new();
    for attempt in 0..3 {
        let a = script.submitted_one().await;
        assert_eq!(shape(&a), (DOUBLE, 5, attempt, None));
        keys.push(a.key);
        script.send(vec![
            started(a.key),
            lost(a.key, &format!("killed {attempt}")),
        ]);
    }
    assert_eq!(
        handle.await,
        Err(TaskError::WorkerLost {
            task: DOUBLE,
            cause: "killed 2".into(),
            attempts: 3,
            stderr_tail: String::new(),
        })
    );
    assert_eq!(
        keys.iter().collect::<HashSet<_>>().len(),
        3,
        "every attempt has its own key: {keys:?}"
    );
    assert_eq!(master.status(), counts(0, 0, 0, 1, 0));
    // Nothing to cancel: a lost attempt is gone.
    script.quiet().await;
    shut_down(master, &script).await;
}

/// Attempt keys are never reused, however many retries are asked for (a
/// late event of the first attempt must not answer a later one): a master
/// asked for more than 256 attempts, the number its keys can tell apart,
/// refuses to start.
#[tokio::test]
async fn attempt_keys_stay_unique_whatever_the_retry_limit() {
    // More retries than keys can tell apart are refused, never wrapped.
    let refused = Master::start_with(
        Box::new(engine().0),
        MasterConfig {
            max_retries: pymw_core::master::MAX_RETRIES + 1,
            ..config()
        },
    );
    assert!(matches!(refused, Err(pymw_core::Error::InvalidConfig(_))));
    let (master, script) = start(MasterConfig {
        max_retries: pymw_core::master::MAX_RETRIES,
        ..config()
    })
    .await;
    let handle = master.submit(double::task(), 5);
    let mut keys = HashSet::new();
    for attempt in 0..=pymw_core::master::MAX_RETRIES {
        let a = script.submitted_one().await;
        assert_eq!(a.attempt, attempt);
        assert!(keys.insert(a.key), "attempt {attempt} reuses key {}", a.key);
        script.send(vec![lost(a.key, "killed")]);
    }
    script.quiet().await;
    assert!(matches!(
        handle.await,
        Err(TaskError::WorkerLost { attempts: 256, .. })
    ));
    shut_down(master, &script).await;
}

#[tokio::test]
async fn a_task_s_own_retry_limit_wins_over_the_master_s() {
    let (master, script) = start(config()).await;
    let handle = master.submit_with(double::task(), 5, TaskOptions::default().max_retries(0));
    let a = script.submitted_one().await;
    script.send(vec![lost(a.key, "held")]);
    assert!(matches!(
        handle.await,
        Err(TaskError::WorkerLost { attempts: 1, .. })
    ));
    script.quiet().await;
    shut_down(master, &script).await;
}

#[tokio::test]
async fn a_task_failure_is_final_and_not_retried() {
    let (master, script) = start(config()).await;
    let handle = master.submit(double::task(), 5);
    let a = script.submitted_one().await;
    script.send(vec![started(a.key), failed(a.key, "bad input")]);
    assert_eq!(
        handle.await,
        Err(TaskError::Failed {
            task: DOUBLE,
            failure: Failure::TaskError {
                message: "bad input".into()
            },
            host: "node-1".into(),
            stderr_tail: "tail".into(),
        })
    );
    assert_eq!(master.status(), counts(0, 0, 0, 1, 0));
    script.quiet().await;
    shut_down(master, &script).await;
}

#[tokio::test]
async fn a_timeout_counts_from_the_start_cancels_the_attempt_and_is_not_retried() {
    let timeout = Duration::from_millis(100);
    let (master, script) = start(MasterConfig {
        max_retries: 3,
        timeout: Some(timeout),
        ..config()
    })
    .await;
    let handle = master.submit(double::task(), 5);
    let a = script.submitted_one().await;

    // Queued for longer than the timeout: not timed out, it has not started.
    tokio::time::sleep(2 * timeout).await;
    script.quiet().await;

    let started_at = Instant::now();
    script.send(vec![started(a.key)]);
    assert_eq!(script.cancelled().await, [a.key]);
    assert!(
        started_at.elapsed() >= timeout,
        "{:?}",
        started_at.elapsed()
    );
    assert_eq!(
        handle.await,
        Err(TaskError::TimedOut {
            task: DOUBLE,
            after: timeout
        })
    );
    // The engine's word arriving after the timeout changes nothing.
    script.send(vec![finished(a.key, 10), lost(a.key, "killed")]);
    script.quiet().await;
    assert_eq!(master.status(), counts(0, 0, 0, 1, 0));
    shut_down(master, &script).await;
}

#[tokio::test]
async fn a_task_that_finishes_in_time_leaves_no_timer_behind() {
    let timeout = Duration::from_millis(60);
    let (master, script) = start(config()).await;
    let handle = master.submit_with(double::task(), 5, TaskOptions::default().timeout(timeout));
    let a = script.submitted_one().await;
    script.send(vec![started(a.key), finished(a.key, 10)]);
    assert_eq!(handle.await, Ok(10));
    tokio::time::sleep(2 * timeout).await;
    script.quiet().await;
    assert_eq!(master.status(), counts(0, 0, 1, 0, 0));
    shut_down(master, &script).await;
}

/// A timeout too far off to be a time (`Duration::MAX` as "never") is no
/// timeout, not a panic of the driver.
#[tokio::test]
async fn a_timeout_beyond_any_clock_never_fires() {
    let (master, script) = start(config()).await;
    let century = Duration::from_secs(100 * 365 * 86_400);
    for timeout in [Duration::MAX, century] {
        let handle = master.submit_with(double::task(), 5, TaskOptions::default().timeout(timeout));
        let a = script.submitted_one().await;
        script.send(vec![started(a.key)]);
        script.quiet().await;
        assert_eq!(master.status().running, 1);
        script.send(vec![finished(a.key, 10)]);
        assert_eq!(handle.await, Ok(10));
    }
    shut_down(master, &script).await;
}

#[tokio::test]
async fn a_requeued_attempt_gets_its_whole_timeout_again_when_it_restarts() {
    let timeout = Duration::from_millis(600);
    let (master, script) = start(config()).await;
    let handle = master.submit_with(double::task(), 5, TaskOptions::default().timeout(timeout));
    let a = script.submitted_one().await;
    script.send(vec![started(a.key)]);
    tokio::time::sleep(timeout / 2).await;
    // Evicted, then running again from scratch.
    script.send(vec![requeued(a.key)]);
    let restarted = Instant::now();
    script.send(vec![started(a.key)]);
    // Past the first start's deadline, well within the restart's.
    tokio::time::sleep(timeout * 3 / 4).await;
    script.quiet().await;
    assert_eq!(master.status(), counts(0, 1, 0, 0, 0));
    assert_eq!(script.cancelled().await, [a.key]);
    assert!(restarted.elapsed() >= timeout, "{:?}", restarted.elapsed());
    assert!(matches!(handle.await, Err(TaskError::TimedOut { .. })));
    shut_down(master, &script).await;
}

#[tokio::test]
async fn cancelling_a_queued_task_cancels_its_attempt_and_ignores_its_late_events() {
    let (master, script) = start(config()).await;
    let handle = master.submit(double::task(), 5);
    let a = script.submitted_one().await;
    handle.cancel();
    handle.cancel();
    assert_eq!(script.cancelled().await, [a.key]);
    // Cancelled once: the second cancel finds nothing to stop.
    script.quiet().await;
    assert_eq!(handle.await, Err(TaskError::Cancelled { task: DOUBLE }));
    script.send(vec![started(a.key), finished(a.key, 10)]);
    script.quiet().await;
    assert_eq!(master.status(), counts(0, 0, 0, 0, 1));
    shut_down(master, &script).await;
}

#[tokio::test]
async fn cancelling_a_running_task_cancels_its_attempt_and_ignores_its_late_events() {
    let (master, script) = start(config()).await;
    let handle = master.submit(double::task(), 5);
    let a = script.submitted_one().await;
    script.send(vec![started(a.key)]);
    script.quiet().await;
    assert_eq!(master.status(), counts(0, 1, 0, 0, 0));
    handle.cancel();
    assert_eq!(script.cancelled().await, [a.key]);
    assert_eq!(handle.await, Err(TaskError::Cancelled { task: DOUBLE }));
    assert_eq!(master.status(), counts(0, 0, 0, 0, 1));
    script.send(vec![lost(a.key, "killed by the cancel")]);
    script.send(vec![finished(a.key, 10)]);
    script.quiet().await;
    assert_eq!(master.status(), counts(0, 0, 0, 0, 1));
    shut_down(master, &script).await;
}

#[tokio::test]
async fn a_task_cancelled_before_the_driver_sends_it_is_never_submitted() {
    let (master, script) = start(config()).await;
    // Submit and cancel reach the driver in the same turn.
    let handle = master.submit(double::task(), 5);
    handle.cancel();
    assert_eq!(handle.await, Err(TaskError::Cancelled { task: DOUBLE }));
    let calls = script.calls();
    assert!(
        !calls.iter().any(|c| matches!(c, Call::Submit(_))),
        "{calls:?}"
    );
    assert_eq!(master.status(), counts(0, 0, 0, 0, 1));
    drop(master);
    // A cancel of the key may or may not reach the engine (it must ignore
    // keys it never saw); the shutdown does.
    while script.next().await != Call::Shutdown {}
}

#[tokio::test]
async fn cancelling_a_finished_task_does_nothing() {
    let (master, script) = start(config()).await;
    let handle = master.submit(double::task(), 5);
    let id = handle.id();
    let a = script.submitted_one().await;
    script.send(vec![finished(a.key, 10)]);
    assert_eq!(handle.await, Ok(10));
    master.cancel([id]);
    script.quiet().await;
    assert_eq!(master.status(), counts(0, 0, 1, 0, 0));
    shut_down(master, &script).await;
}

#[tokio::test]
async fn events_that_arrive_twice_count_once() {
    let (master, script) = start(config()).await;
    let handle = master.submit(double::task(), 5);
    let a = script.submitted_one().await;
    script.send(vec![queued(a.key, "job-1"), queued(a.key, "job-1")]);
    script.send(vec![started(a.key), started(a.key)]);
    script.quiet().await;
    assert_eq!(master.status(), counts(0, 1, 0, 0, 0));
    script.send(vec![finished(a.key, 10), finished(a.key, 12)]);
    script.send(vec![lost(a.key, "late")]);
    assert_eq!(handle.await, Ok(10));
    script.quiet().await;
    assert_eq!(master.status(), counts(0, 0, 1, 0, 0));
    shut_down(master, &script).await;
}

/// A lost attempt is over: the retry is the task's only attempt, and events
/// about the old one (the engine changing its mind, a duplicate report) are
/// ignored, as [`pymw_core::backend::AttemptKey`] promises. Accepting a late
/// value instead would leave the retry running with no one to cancel it.
#[tokio::test]
async fn events_for_a_superseded_attempt_are_ignored() {
    let (master, script) = start(config()).await;
    let mut handle = master.submit(double::task(), 5);
    let first = script.submitted_one().await;
    script.send(vec![started(first.key), lost(first.key, "node down")]);
    let second = script.submitted_one().await;
    assert_eq!(shape(&second), (DOUBLE, 5, 1, None));
    assert_ne!(second.key, first.key);

    script.send(vec![started(first.key)]);
    script.send(vec![finished(first.key, 999)]);
    script.send(vec![lost(first.key, "again"), requeued(first.key)]);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), &mut handle)
            .await
            .is_err(),
        "the old attempt's value must not answer the task"
    );
    script.quiet().await;
    assert_eq!(master.status(), counts(1, 0, 0, 0, 0));

    script.send(vec![started(second.key), finished(second.key, 10)]);
    assert_eq!(handle.await, Ok(10));
    script.quiet().await;
    assert_eq!(master.status(), counts(0, 0, 1, 0, 0));
    shut_down(master, &script).await;
}

#[tokio::test]
async fn events_for_unknown_keys_are_ignored() {
    let (master, script) = start(config()).await;
    let strangers = [0, 1, 0xdead_beef, u64::MAX];
    for key in strangers {
        script.send(vec![queued(key, "job-x"), started(key), held(key)]);
    }
    // Taken in (and dropped) before any task exists: a task that later gets
    // one of these keys does not inherit them.
    script.quiet().await;
    let handle = master.submit(double::task(), 5);
    let a = script.submitted_one().await;
    for key in strangers.into_iter().filter(|&k| k != a.key) {
        script.send(vec![
            started(key),
            finished(key, 1),
            lost(key, "?"),
            requeued(key),
        ]);
    }
    script.quiet().await;
    assert_eq!(master.status(), counts(1, 0, 0, 0, 0));
    script.send(vec![finished(a.key, 10)]);
    assert_eq!(handle.await, Ok(10));
    script.quiet().await;
    shut_down(master, &script).await;
}

#[tokio::test]
async fn a_requeued_attempt_is_not_resubmitted_nor_charged() {
    let (master, script) = start(MasterConfig {
        max_retries: 1,
        ..config()
    })
    .await;
    let handle = master.submit(double::task(), 5);
    let a = script.submitted_one().await;
    script.send(vec![started(a.key)]);
    script.quiet().await;
    assert_eq!(master.status(), counts(0, 1, 0, 0, 0));

    // Evicted twice and held once: the engine keeps the attempt.
    for _ in 0..2 {
        script.send(vec![requeued(a.key)]);
        script.quiet().await;
        assert_eq!(master.status(), counts(1, 0, 0, 0, 0));
        script.send(vec![started(a.key)]);
    }
    script.send(vec![held(a.key)]);
    script.quiet().await;
    assert_eq!(master.status(), counts(0, 1, 0, 0, 0));

    // A loss is the first one charged: one retry is left.
    script.send(vec![lost(a.key, "held too long")]);
    let b = script.submitted_one().await;
    assert_eq!(shape(&b), (DOUBLE, 5, 1, None));
    assert_eq!(master.status(), counts(1, 0, 0, 0, 0));
    script.send(vec![started(b.key), finished(b.key, 10)]);
    assert_eq!(handle.await, Ok(10));
    shut_down(master, &script).await;
}

#[tokio::test]
async fn a_refused_batch_fails_its_tasks() {
    let (master, script) = start(config()).await;
    script.refuse("the pool is down");
    let handle = master.submit(double::task(), 5);
    let a = script.submitted_one().await;
    assert_eq!(
        handle.await,
        Err(TaskError::Backend {
            task: DOUBLE,
            message: "the pool is down".into()
        })
    );
    // A late event for it is ignored.
    script.send(vec![finished(a.key, 10)]);
    script.quiet().await;
    assert_eq!(master.status(), counts(0, 0, 0, 1, 0));
    shut_down(master, &script).await;
}

#[tokio::test]
async fn an_attempt_the_engine_gave_up_on_fails_once_without_a_retry() {
    let (master, script) = start(config()).await;
    let handle = master.submit(double::task(), 5);
    let a = script.submitted_one().await;
    script.send(vec![
        started(a.key),
        Event::Failed {
            key: a.key,
            message: "create_work: no max_error_results given".into(),
        },
    ]);
    assert_eq!(
        handle.await,
        Err(TaskError::Backend {
            task: DOUBLE,
            message: "create_work: no max_error_results given".into()
        })
    );
    // Nothing submitted again, and a late event for it is ignored.
    script.send(vec![finished(a.key, 10)]);
    script.quiet().await;
    assert_eq!(master.status(), counts(0, 0, 0, 1, 0));
    shut_down(master, &script).await;
}

#[tokio::test]
async fn an_attempt_in_flight_in_an_earlier_life_is_followed_under_its_number() {
    let journal = Arc::new(ScriptedJournal {
        in_flight: [
            (
                identity(0),
                InFlight {
                    attempt: 2,
                    job_id: "job-7".into(),
                },
            ),
            (
                identity(2),
                InFlight {
                    attempt: 3,
                    job_id: "job-9".into(),
                },
            ),
        ]
        .into(),
        ..ScriptedJournal::default()
    });
    let (master, script) = start(MasterConfig {
        max_retries: 3,
        ..with_journal(&journal)
    })
    .await;
    let followed = master.submit(double::task(), 5);
    let fresh = master.submit(double::task(), 6);
    let last_chance = master.submit(double::task(), 7);
    let sent = script.submitted().await;
    let shapes: Vec<_> = sent.iter().map(shape).collect();
    assert_eq!(
        shapes,
        [
            (DOUBLE, 5, 2, Some("job-7")),
            (DOUBLE, 6, 0, None),
            (DOUBLE, 7, 3, Some("job-9")),
        ]
    );
    let (a, b, c) = (&sent[0], &sent[1], &sent[2]);

    // The followed job is lost: the retry is attempt 3, a new job.
    script.send(vec![lost(a.key, "the engine forgot it")]);
    let retry = script.submitted_one().await;
    assert_eq!(shape(&retry), (DOUBLE, 5, 3, None));
    script.send(vec![queued(retry.key, "job-10"), finished(retry.key, 10)]);
    assert_eq!(followed.await, Ok(10));

    // Attempt 3 was the last one allowed.
    script.send(vec![lost(c.key, "gone")]);
    assert!(matches!(
        last_chance.await,
        Err(TaskError::WorkerLost { attempts: 4, .. })
    ));

    script.send(vec![finished(b.key, 12)]);
    assert_eq!(fresh.await, Ok(12));
    script.quiet().await;
    shut_down(master, &script).await;

    assert_eq!(
        journal.of(0),
        [
            Rec::Submitted(0),
            Rec::Finished(
                0,
                2,
                JournalOutcome::Lost {
                    cause: "the engine forgot it".into(),
                    retried: true
                }
            ),
            Rec::Queued(0, 3, "job-10".into()),
            Rec::Finished(0, 3, JournalOutcome::Value(wire::encode_payload(&10u64))),
        ]
    );
    assert_eq!(
        journal.of(2),
        [
            Rec::Submitted(2),
            Rec::Finished(
                2,
                3,
                JournalOutcome::Lost {
                    cause: "gone".into(),
                    retried: false
                }
            ),
        ]
    );
    assert!(journal.closed.load(Ordering::SeqCst));
}

#[tokio::test]
async fn outcomes_in_the_journal_answer_without_a_submit() {
    let journal = Arc::new(ScriptedJournal {
        recorded: [
            (identity(0), Recorded::Value(wire::encode_payload(&42u64))),
            (
                identity(1),
                Recorded::Failed {
                    failure: Failure::TaskError {
                        message: "bad".into(),
                    },
                    host: "volunteer-7".into(),
                    stderr_tail: "it went wrong\n".into(),
                },
            ),
        ]
        .into(),
        cache: [(input_hash(7), wire::encode_payload(&14u64))].into(),
        ..ScriptedJournal::default()
    });
    let (master, script) = start(with_journal(&journal)).await;
    let from_value = master.submit(double::task(), 21);
    let from_failure = master.submit(double::task(), 3);
    let from_cache = master.submit(double::task(), 7);
    let ran = master.submit(double::task(), 8);

    let a = script.submitted_one().await;
    assert_eq!(shape(&a), (DOUBLE, 8, 0, None));
    assert_eq!(from_value.await, Ok(42));
    assert_eq!(
        from_failure.await,
        Err(TaskError::Failed {
            task: DOUBLE,
            failure: Failure::TaskError {
                message: "bad".into()
            },
            host: "volunteer-7".into(),
            stderr_tail: "it went wrong\n".into(),
        })
    );
    assert_eq!(from_cache.await, Ok(14));
    assert_eq!(master.status(), counts(1, 0, 2, 1, 0));
    script.send(vec![started(a.key), finished(a.key, 16)]);
    assert_eq!(ran.await, Ok(16));
    script.quiet().await;
    shut_down(master, &script).await;

    // What earlier lives recorded is not recorded again; a cached value is
    // recorded as such.
    assert_eq!(journal.of(0), []);
    assert_eq!(journal.of(1), []);
    assert_eq!(
        journal.of(2),
        [
            Rec::Submitted(2),
            Rec::Finished(2, 0, JournalOutcome::Cached(wire::encode_payload(&14u64))),
        ]
    );
    assert_eq!(
        journal.of(3),
        [
            Rec::Submitted(3),
            Rec::Started(3, 0),
            Rec::Finished(3, 0, JournalOutcome::Value(wire::encode_payload(&16u64))),
        ]
    );
}

#[tokio::test]
async fn a_journal_that_cannot_record_stops_the_run() {
    let journal = Arc::new(ScriptedJournal::default());
    let (master, script) = start(with_journal(&journal)).await;
    let handle = master.submit(double::task(), 5);
    let a = script.submitted_one().await;
    *journal.error.lock().unwrap() = Some("disk full".into());
    // Any turn of the driver finds the error.
    script.send(vec![started(a.key)]);
    assert_eq!(script.cancelled().await, [a.key]);
    let not_recorded = Err(TaskError::NotRecorded {
        task: DOUBLE,
        message: "disk full".into(),
    });
    assert_eq!(handle.await, not_recorded);
    // Later tasks are refused without a submit.
    assert_eq!(master.submit(double::task(), 6).await, not_recorded);
    script.send(vec![finished(a.key, 10)]);
    script.quiet().await;
    assert_eq!(master.status(), counts(0, 0, 0, 2, 0));
    shut_down(master, &script).await;
}

/// The values of a map's inputs, in the order its results came.
async fn run_map(master: &Master, script: &Script, ordered: bool) -> Vec<(u64, u64)> {
    let map = master.map(double::task(), [0u64, 1, 2, 3]).progress(false);
    let mut map = if ordered { map } else { map.unordered() };
    let collect = async {
        let mut results = Vec::new();
        while let Some((index, result)) = map.next_indexed().await {
            results.push((index, result.expect("a value")));
        }
        results
    };
    let engine = async {
        let sent = script.submitted().await;
        let shapes: Vec<_> = sent.iter().map(shape).collect();
        assert_eq!(
            shapes,
            [0, 1, 2, 3].map(|x| (DOUBLE, x, 0, None)),
            "one batch, in input order"
        );
        for i in [3, 1, 0, 2] {
            let a = &sent[i];
            script.send(vec![started(a.key), finished(a.key, 2 * a.input)]);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::join!(collect, engine).0
}

#[tokio::test]
async fn a_map_answers_in_input_order_whatever_order_results_arrive_in() {
    let (master, script) = start(config()).await;
    let results = run_map(&master, &script, true).await;
    assert_eq!(results, [(0, 0), (1, 2), (2, 4), (3, 6)]);
    script.quiet().await;
    assert_eq!(master.status(), counts(0, 0, 4, 0, 0));
    shut_down(master, &script).await;
}

#[tokio::test]
async fn an_unordered_map_answers_as_results_arrive() {
    let (master, script) = start(config()).await;
    let results = run_map(&master, &script, false).await;
    assert_eq!(results, [(3, 6), (1, 2), (0, 0), (2, 4)]);
    script.quiet().await;
    shut_down(master, &script).await;
}

#[tokio::test]
async fn dropping_a_map_cancels_what_it_has_in_flight() {
    let (master, script) = start(config()).await;
    let mut map = master.map(double::task(), [0u64, 1, 2]).progress(false);
    let sent = {
        let next = map.next();
        tokio::pin!(next);
        tokio::select! {
            _ = &mut next => panic!("no result was sent"),
            sent = script.submitted() => sent,
        }
    };
    script.send(vec![started(sent[1].key), finished(sent[1].key, 2)]);
    script.quiet().await;
    drop(map);
    let mut cancelled = script.cancelled().await;
    cancelled.sort_unstable();
    let mut expected = vec![sent[0].key, sent[2].key];
    expected.sort_unstable();
    assert_eq!(cancelled, expected);
    assert_eq!(master.status(), counts(0, 0, 1, 0, 2));
    shut_down(master, &script).await;
}

#[tokio::test]
async fn dropping_the_master_with_tasks_in_flight_shuts_the_engine_down() {
    let (master, script) = start(config()).await;
    let running = master.submit(double::task(), 5);
    let waiting = master.submit(double::task(), 6);
    let sent = script.submitted().await;
    script.send(vec![started(sent[0].key)]);
    script.quiet().await;
    drop((running, waiting));
    drop(master);
    assert_eq!(script.next().await, Call::Shutdown);
    // The driver is gone: the engine's events have nowhere to go.
    let deadline = Instant::now() + Duration::from_secs(10);
    while script.send(vec![finished(sent[0].key, 10)]) {
        assert!(Instant::now() < deadline, "the driver did not end");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    script.quiet().await;
}

#[tokio::test]
async fn a_handle_keeps_the_master_alive_after_the_master_is_dropped() {
    let (master, script) = start(config()).await;
    let handle = master.submit(double::task(), 5);
    let a = script.submitted_one().await;
    drop(master);
    script.quiet().await;
    script.send(vec![finished(a.key, 10)]);
    assert_eq!(handle.await, Ok(10));
    assert_eq!(script.next().await, Call::Shutdown);
}

#[test]
fn a_runtime_shut_down_under_the_master_resolves_its_handles() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (master, script, handle) = runtime.block_on(async {
        let (master, script) = start(config()).await;
        let handle = master.submit(double::task(), 5);
        let a = script.submitted_one().await;
        script.send(vec![started(a.key)]);
        (master, script, handle)
    });
    drop(runtime);
    assert_eq!(script.calls().last(), Some(&Call::Shutdown));
    let other = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outcome = other.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("the handle resolves")
    });
    assert_eq!(outcome, Err(TaskError::MasterGone));
    drop(master);
}

#[tokio::test]
async fn the_journal_hears_how_each_attempt_ended() {
    let journal = Arc::new(ScriptedJournal::default());
    let timeout = Duration::from_millis(50);
    let (master, script) = start(MasterConfig {
        max_retries: 1,
        ..with_journal(&journal)
    })
    .await;
    let cancelled = master.submit(double::task(), 0);
    let timed_out = master.submit_with(double::task(), 1, TaskOptions::default().timeout(timeout));
    let failing = master.submit(double::task(), 2);
    let sent = script.submitted().await;
    script.send(vec![
        queued(sent[1].key, "job-1"),
        started(sent[1].key),
        lost(sent[2].key, "node down"),
    ]);
    let retry = script.submitted_one().await;
    assert_eq!(shape(&retry), (DOUBLE, 2, 1, None));
    script.send(vec![started(retry.key), failed(retry.key, "bad")]);
    cancelled.cancel();
    let mut stopped = script.cancelled().await;
    stopped.extend(script.cancelled().await);
    stopped.sort_unstable();
    let mut expected = vec![sent[0].key, sent[1].key];
    expected.sort_unstable();
    assert_eq!(stopped, expected, "the cancel and the timeout");
    assert!(cancelled.await.is_err());
    assert!(timed_out.await.is_err());
    assert!(failing.await.is_err());
    // Late events change nothing in the journal either.
    script.send(vec![finished(sent[0].key, 0), finished(sent[1].key, 2)]);
    script.send(vec![
        queued(sent[2].key, "job-old"),
        finished(sent[2].key, 4),
    ]);
    script.quiet().await;
    shut_down(master, &script).await;

    assert_eq!(
        journal.of(0),
        [
            Rec::Submitted(0),
            Rec::Finished(0, 0, JournalOutcome::Cancelled)
        ]
    );
    assert_eq!(
        journal.of(1),
        [
            Rec::Submitted(1),
            Rec::Queued(1, 0, "job-1".into()),
            Rec::Started(1, 0),
            Rec::Finished(1, 0, JournalOutcome::TimedOut { after: timeout }),
        ]
    );
    assert_eq!(
        journal.of(2),
        [
            Rec::Submitted(2),
            Rec::Finished(
                2,
                0,
                JournalOutcome::Lost {
                    cause: "node down".into(),
                    retried: true
                }
            ),
            Rec::Started(2, 1),
            Rec::Finished(
                2,
                1,
                JournalOutcome::Failed(Failure::TaskError {
                    message: "bad".into()
                })
            ),
        ]
    );
    assert!(journal.closed.load(Ordering::SeqCst));
}

#[tokio::test]
async fn an_ordered_map_keeps_its_window_until_the_oldest_result_is_in() {
    let (master, script) = start(config()).await;
    let mut map = master
        .map(double::task(), [0u64, 1, 2, 3])
        .window(2)
        .progress(false);
    let collect = async {
        let mut results = Vec::new();
        while let Some(result) = map.next().await {
            results.push(result.expect("a value"));
        }
        results
    };
    let engine = async {
        let first = script.submitted().await;
        assert_eq!(first.iter().map(|a| a.input).collect::<Vec<_>>(), [0, 1]);
        // The second result is in, but the first is not: no room yet.
        script.send(vec![finished(first[1].key, 2)]);
        script.quiet().await;
        script.send(vec![finished(first[0].key, 0)]);
        let mut rest = Vec::new();
        while rest.len() < 2 {
            rest.extend(script.submitted().await);
        }
        assert_eq!(rest.iter().map(|a| a.input).collect::<Vec<_>>(), [2, 3]);
        for a in rest.iter().rev() {
            script.send(vec![finished(a.key, 2 * a.input)]);
        }
    };
    let (results, ()) = tokio::join!(collect, engine);
    assert_eq!(results, [0, 2, 4, 6]);
    drop(map);
    script.quiet().await;
    shut_down(master, &script).await;
}

#[tokio::test]
async fn a_map_s_options_apply_to_its_tasks() {
    let timeout = Duration::from_millis(50);
    let (master, script) = start(config()).await;
    let mut map = master
        .map(double::task(), [0u64])
        .options(TaskOptions::default().timeout(timeout).max_retries(0))
        .progress(false);
    let (result, ()) = tokio::join!(map.next(), async {
        let a = script.submitted_one().await;
        script.send(vec![started(a.key)]);
        assert_eq!(script.cancelled().await, [a.key]);
    });
    assert_eq!(
        result,
        Some(Err(TaskError::TimedOut {
            task: DOUBLE,
            after: timeout
        }))
    );
    assert!(map.next().await.is_none());
    drop(map);
    script.quiet().await;
    shut_down(master, &script).await;
}

#[tokio::test]
async fn a_task_set_answers_as_tasks_finish_and_cancels_the_rest_when_dropped() {
    let (master, script) = start(config()).await;
    let mut set = pymw_core::TaskSet::new(&master);
    let ids = [set.submit(double::task(), 1), set.submit(double::task(), 2)];
    set.submit(double::task(), 3);
    let mut sent = Vec::new();
    while sent.len() < 3 {
        sent.extend(script.submitted().await);
    }
    assert_eq!(sent.iter().map(|a| a.input).collect::<Vec<_>>(), [1, 2, 3]);
    script.send(vec![finished(sent[1].key, 4)]);
    assert_eq!(set.next_finished().await, Some((ids[1], Ok(4))));
    script.send(vec![finished(sent[0].key, 2), finished(sent[0].key, 2)]);
    assert_eq!(set.next_finished().await, Some((ids[0], Ok(2))));
    assert_eq!(set.len(), 1);
    drop(set);
    assert_eq!(script.cancelled().await, [sent[2].key]);
    script.send(vec![finished(sent[2].key, 6)]);
    script.quiet().await;
    assert_eq!(master.status(), counts(0, 0, 2, 0, 1));
    shut_down(master, &script).await;
}

/// A master whose runtime shuts down under a map or a task set answers
/// what they have in flight with `MasterGone`, as it does a handle, instead
/// of ending them as if every input had been answered.
#[test]
fn a_runtime_shut_down_under_a_map_or_a_task_set_answers_them() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (master, script, mut map, mut set, ids) = runtime.block_on(async {
        let (master, script) = start(config()).await;
        let mut map = master.map(double::task(), [1u64, 2, 3]).progress(false);
        let sent = {
            let next = map.next();
            tokio::pin!(next);
            tokio::select! {
                _ = &mut next => panic!("no result was sent"),
                sent = script.submitted() => sent,
            }
        };
        assert_eq!(sent.len(), 3);
        script.send(vec![finished(sent[1].key, 4)]);
        let mut set = pymw_core::TaskSet::<u64>::new(&master);
        let ids = [set.submit(double::task(), 4), set.submit(double::task(), 5)];
        let mut in_set = Vec::new();
        while in_set.len() < 2 {
            in_set.extend(script.submitted().await);
        }
        script.send(vec![finished(in_set[0].key, 8)]);
        script.quiet().await;
        (master, script, map, set, ids)
    });
    drop(runtime);
    assert_eq!(script.calls().last(), Some(&Call::Shutdown));
    let other = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    other.block_on(async {
        let patience = Duration::from_secs(10);
        let mut results = Vec::new();
        while let Some(result) = tokio::time::timeout(patience, map.next()).await.unwrap() {
            results.push(result);
        }
        assert_eq!(
            results,
            [
                Err(TaskError::MasterGone),
                Ok(4),
                Err(TaskError::MasterGone)
            ]
        );
        let mut answers = Vec::new();
        while let Some(answer) = tokio::time::timeout(patience, set.next_finished())
            .await
            .unwrap()
        {
            answers.push(answer);
        }
        answers.sort_by_key(|(id, _)| *id);
        assert_eq!(
            answers,
            [(ids[0], Ok(8)), (ids[1], Err(TaskError::MasterGone))]
        );
    });
    drop((map, set, master));
}
