//! The run store end to end, through its public API: a synthetic run of 1000
//! tasks over up to 3 attempts with failures, reopened and resumed; the
//! result cache; schema versions; read-only and full disks; a reader while
//! the master writes.

use pymw_store::fixture::{Fixture, TASKS, synthetic_run};
use pymw_store::{
    AttemptEvent, AttemptOutcome, CacheEntry, FailureKind, FinishedTask, OpenOptions, RunReader,
    RunState, RunStore, StoreError, StoredOutcome, SubmittedTask, TaskIdentity, TaskState,
    input_hash, now_ns,
};
use std::path::Path;
use std::time::Instant;

fn submit(identity: TaskIdentity, position: u64, input: &[u8]) -> SubmittedTask {
    SubmittedTask {
        identity,
        task: TASKS[0].0.into(),
        fingerprint: TASKS[0].1,
        position,
        input_hash: input_hash(input),
        submitted_ns: now_ns(),
    }
}

fn finish(identity: TaskIdentity, attempt: u32, outcome: AttemptOutcome) -> FinishedTask {
    FinishedTask {
        identity,
        attempt,
        outcome,
        stats: Default::default(),
        stderr_tail: String::new(),
        started_ns: None,
        finished_ns: now_ns(),
    }
}

/// `count` tiny tasks at positions `from..from + count`, submitted and
/// finished with their position as value.
fn record_tiny(store: &RunStore, from: u64, count: u64) -> Vec<TaskIdentity> {
    let mut ids = Vec::new();
    let mut submitted = Vec::new();
    let mut finished = Vec::new();
    for position in from..from + count {
        let input = position.to_le_bytes();
        let identity = TaskIdentity::new(TASKS[0].1, &input, position);
        ids.push(identity);
        submitted.push(submit(identity, position, &input));
        finished.push(finish(
            identity,
            0,
            AttemptOutcome::Value(position.to_le_bytes()[..].into()),
        ));
    }
    store.record_submitted(submitted);
    store.record_finished(finished);
    ids
}

#[test]
fn synthetic_run_reads_back_exactly() {
    let root = tempfile::tempdir().unwrap();
    let summary = synthetic_run(root.path(), "grid", &Fixture::default()).unwrap();
    assert_eq!(summary.done + summary.failed + summary.cancelled, 1000);
    assert!(summary.lost_retried > 20, "{summary:?}");
    assert!(summary.failed > 10);

    let reader = RunReader::open(root.path(), "grid").unwrap();
    let counts = reader.counts().unwrap();
    assert_eq!(
        (
            counts.done,
            counts.failed,
            counts.cancelled,
            counts.queued,
            counts.running
        ),
        (summary.done, summary.failed, summary.cancelled, 0, 0)
    );
    let info = reader.info().unwrap();
    assert_eq!(info.state, RunState::Finished);
    assert_eq!(info.backend.as_deref(), Some("condor"));
    assert_eq!(info.expected_tasks, Some(1000));
    assert_eq!(info.binary_tasks.len(), 2);
    assert_eq!(reader.lost_attempts().unwrap(), summary.lost_retried);

    // Every attempt is there, with job ids and hosts.
    let mut attempts = 0;
    let mut tasks = 0;
    reader
        .scan(|task, list| {
            tasks += 1;
            attempts += list.len() as u64;
            assert_eq!(list.len() as u32, task.attempts.max(1), "{task:?}");
            if task.state != TaskState::Cancelled {
                assert!(list.iter().all(|a| a.job_id.is_some() && a.host.is_some()));
            }
        })
        .unwrap();
    assert_eq!(tasks, 1000);
    assert_eq!(attempts, 1000 + summary.lost_retried);

    // Failures carry their reason and stderr tail.
    let failed = reader.failed().unwrap();
    assert_eq!(failed.len() as u64, summary.failed);
    for detail in &failed {
        let last = detail.attempt_list.last().unwrap();
        let failure = last.failure.as_ref().unwrap();
        let expected = &summary.failures[&detail.task.identity];
        if failure.kind == FailureKind::TimedOut {
            assert_eq!(expected, "timeout");
        } else {
            assert_eq!(&failure.message, expected);
        }
        if failure.kind == FailureKind::Panic {
            assert!(failure.stderr_tail.contains("panicked at"));
            assert_eq!(
                failure.location.as_deref(),
                Some("examples/src/monte_pi.rs:42:17")
            );
        }
    }

    // Lookup by position and by identity prefix.
    let by_position = reader.find("17").unwrap();
    assert_eq!(by_position.len(), 1);
    assert_eq!(by_position[0].task.identity, summary.identities[17]);
    let prefix = &summary.identities[17].to_hex()[..8];
    assert_eq!(reader.find(prefix).unwrap()[0].task.position, 17);
}

#[test]
fn resume_returns_finished_tasks_and_in_flight_attempts() {
    let root = tempfile::tempdir().unwrap();
    let fixture = Fixture {
        interrupt_at: Some(0.5),
        ..Fixture::default()
    };
    let summary = synthetic_run(root.path(), "killed", &fixture).unwrap();
    let reader = RunReader::open(root.path(), "killed").unwrap();
    assert_eq!(reader.info().unwrap().state, RunState::Interrupted);
    drop(reader);

    // Without --resume the run is refused; with it, the finished tasks come back.
    let error = RunStore::open(root.path(), "killed", OpenOptions::new()).unwrap_err();
    assert!(matches!(error, StoreError::AlreadyExists { .. }), "{error}");
    assert!(error.to_string().contains("--resume"));
    let store = RunStore::open(root.path(), "killed", OpenOptions::new().resume(true)).unwrap();
    assert!(store.resumed());
    let second =
        RunStore::open(root.path(), "killed", OpenOptions::new().resume(true)).unwrap_err();
    assert!(matches!(second, StoreError::Locked { .. }), "{second}");
    assert!(
        second
            .to_string()
            .contains(&format!("pid {}", std::process::id()))
    );

    let finished = store.load_finished().unwrap();
    let in_flight = store.in_flight().unwrap();
    assert!(!finished.is_empty() && finished.len() < 1000);
    assert!(!in_flight.is_empty());
    assert!(
        in_flight.iter().all(|f| f.job_id.is_some()),
        "condor jobs keep their ids"
    );
    for (identity, outcome) in &finished {
        if let StoredOutcome::Done { value, .. } = outcome {
            assert_eq!(
                value.bytes().unwrap().as_ref(),
                &summary.values[identity][..]
            );
        }
    }
    // No task is both finished and in flight.
    assert!(
        in_flight
            .iter()
            .all(|f| !finished.contains_key(&f.identity))
    );

    // The master submits everything again except finished tasks, and
    // finishes the rest; in-flight ones keep their attempts.
    let mut submitted = Vec::new();
    let mut done = Vec::new();
    for (position, identity) in summary.identities.iter().enumerate() {
        if finished.contains_key(identity) {
            continue;
        }
        let input = &summary.inputs[position];
        let mut task = submit(*identity, position as u64, input);
        task.task = summary.names[identity].into();
        task.fingerprint = TASKS
            .iter()
            .find(|(n, _)| *n == summary.names[identity])
            .unwrap()
            .1;
        submitted.push(task);
        let attempt = in_flight
            .iter()
            .find(|f| f.identity == *identity)
            .map_or(0, |f| f.attempt);
        done.push(finish(
            *identity,
            attempt,
            AttemptOutcome::Value(vec![7].into()),
        ));
    }
    store.record_submitted(submitted);
    store.record_finished(done);
    store.close().unwrap();

    let reader = RunReader::open(root.path(), "killed").unwrap();
    let counts = reader.counts().unwrap();
    assert_eq!(counts.total(), 1000, "{counts:?}");
    assert_eq!(counts.queued + counts.running, 0);
    assert_eq!(reader.info().unwrap().sessions, 2);
    let mut seen = std::collections::HashSet::new();
    reader
        .scan(|t, _| assert!(seen.insert(t.identity), "{t:?} twice"))
        .unwrap();
    assert_eq!(seen.len(), 1000);
}

#[test]
fn a_task_submitted_again_replaces_its_old_record() {
    let root = tempfile::tempdir().unwrap();
    let store = RunStore::open(root.path(), "again", OpenOptions::new()).unwrap();
    let ids = record_tiny(&store, 0, 500); // a block
    let failing = TaskIdentity::new(TASKS[0].1, b"x", 1000);
    store.record_submitted(vec![submit(failing, 1000, b"x")]);
    store.record_finished(vec![finish(
        failing,
        0,
        AttemptOutcome::Lost {
            cause: "killed".into(),
            retried: false,
        },
    )]);
    store.close().unwrap();

    let store = RunStore::open(root.path(), "again", OpenOptions::new().resume(true)).unwrap();
    // Run one block task and the failed one again.
    store.record_submitted(vec![
        submit(ids[3], 3, &3u64.to_le_bytes()),
        submit(failing, 1000, b"x"),
    ]);
    store.record_finished(vec![
        finish(ids[3], 0, AttemptOutcome::Value(vec![42].into())),
        finish(failing, 0, AttemptOutcome::Value(vec![43].into())),
    ]);
    store.flush().unwrap();
    let finished = store.load_finished().unwrap();
    assert_eq!(finished.len(), 501);
    let value = |id: &TaskIdentity| match &finished[id] {
        StoredOutcome::Done { value, .. } => value.bytes().unwrap().into_owned(),
        other => panic!("{other:?}"),
    };
    assert_eq!(value(&ids[3]), vec![42]);
    assert_eq!(value(&failing), vec![43]);
    store.close().unwrap();
    let counts = RunReader::open(root.path(), "again")
        .unwrap()
        .counts()
        .unwrap();
    assert_eq!((counts.done, counts.failed), (501, 0));
}

#[test]
fn result_cache_is_shared_by_runs() {
    let root = tempfile::tempdir().unwrap();
    let store = RunStore::open(root.path(), "first", OpenOptions::new().cache(true)).unwrap();
    let small = input_hash(b"small");
    let large = input_hash(b"large");
    assert_eq!(store.cache_get(1, &small).unwrap(), None);
    store.cache_put(vec![
        CacheEntry {
            fingerprint: 1,
            input_hash: small,
            task: "t".into(),
            value: vec![1, 2, 3],
        },
        CacheEntry {
            fingerprint: 1,
            input_hash: large,
            task: "t".into(),
            value: vec![9; 200_000],
        },
    ]);
    store.flush().unwrap();
    assert_eq!(store.cache_get(1, &small).unwrap(), Some(vec![1, 2, 3]));
    store.close().unwrap();

    let other = RunStore::open(root.path(), "second", OpenOptions::new().cache(true)).unwrap();
    let got = other
        .cache_get_many(&[(1, small), (1, large), (2, small)])
        .unwrap();
    assert_eq!(got[0].as_deref(), Some(&[1u8, 2, 3][..]));
    assert_eq!(got[1].as_ref().map(Vec::len), Some(200_000));
    assert_eq!(got[2], None, "another fingerprint is another task");
    // Without the option, the cache is neither read nor written.
    let off = RunStore::open(root.path(), "third", OpenOptions::new()).unwrap();
    assert_eq!(off.cache_get(1, &small).unwrap(), None);
}

#[test]
fn newer_schema_and_foreign_files_are_refused_clearly() {
    let root = tempfile::tempdir().unwrap();
    let store = RunStore::open(root.path(), "future", OpenOptions::new()).unwrap();
    record_tiny(&store, 0, 10);
    store.close().unwrap();
    let db = root.path().join("future").join(pymw_store::DB_FILE);
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let error = RunStore::open(root.path(), "future", OpenOptions::new().resume(true)).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(
            error,
            StoreError::NewerSchema {
                found: 99,
                supported: 1,
                ..
            }
        ),
        "{message}"
    );
    assert!(
        message.contains("schema version 99")
            && message.contains("up to 1")
            && message.contains("newer pymw")
    );
    let error = RunReader::open(root.path(), "future").unwrap_err();
    assert!(matches!(error, StoreError::NewerSchema { .. }), "{error}");
    // Older than this build can migrate: refused, also clearly.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA user_version = 0")
        .unwrap();
    let error = RunStore::open(root.path(), "future", OpenOptions::new().resume(true)).unwrap_err();
    assert!(
        matches!(error, StoreError::OlderSchema { found: 0, .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("can no longer migrate"),
        "{error}"
    );

    std::fs::create_dir(root.path().join("foreign")).unwrap();
    let foreign = root.path().join("foreign").join(pymw_store::DB_FILE);
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let error =
        RunStore::open(root.path(), "foreign", OpenOptions::new().resume(true)).unwrap_err();
    assert!(matches!(error, StoreError::NotAStore { .. }), "{error}");

    let error = RunStore::open(root.path(), "../escape", OpenOptions::new()).unwrap_err();
    assert!(matches!(error, StoreError::InvalidName { .. }), "{error}");
}

/// Runs `f` with a fresh tmpfs of `size` mounted at a temporary directory.
fn with_tmpfs(size: &str, f: impl FnOnce(&Path)) {
    struct Mount(tempfile::TempDir);
    impl Drop for Mount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.0.path())
                .status();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "pymw-test"])
        .arg(dir.path())
        .status()
        .expect("run mount");
    assert!(
        status.success(),
        "mounting a tmpfs failed: this test needs root"
    );
    let mount = Mount(dir);
    f(mount.0.path());
}

fn is_root() -> bool {
    // SAFETY: no arguments, no side effects.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn read_only_store_is_a_clear_error_and_stays_readable() {
    if is_root() {
        // Root ignores file modes: a read-only mount is read-only for root too.
        with_tmpfs("16m", |mount| {
            let store = RunStore::open(mount, "kept", OpenOptions::new()).unwrap();
            let ids = record_tiny(&store, 0, 100);
            store.close().unwrap();
            let status = std::process::Command::new("mount")
                .args(["-o", "remount,ro"])
                .arg(mount)
                .status()
                .unwrap();
            assert!(status.success());
            let error = RunStore::open(mount, "kept", OpenOptions::new().resume(true)).unwrap_err();
            assert!(matches!(error, StoreError::ReadOnly { .. }), "{error}");
            assert!(error.to_string().contains("read-only"), "{error}");
            let error = RunStore::open(mount, "new", OpenOptions::new()).unwrap_err();
            assert!(matches!(error, StoreError::ReadOnly { .. }), "{error}");
            // Nothing committed is lost, and readers still work.
            let reader = RunReader::open(mount, "kept").unwrap();
            assert_eq!(reader.counts().unwrap().done, 100);
            assert_eq!(reader.find(&ids[5].to_hex()).unwrap().len(), 1);
        });
    } else {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let store = RunStore::open(root.path(), "kept", OpenOptions::new()).unwrap();
        record_tiny(&store, 0, 100);
        store.close().unwrap();
        let db = root.path().join("kept").join(pymw_store::DB_FILE);
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
        let error =
            RunStore::open(root.path(), "kept", OpenOptions::new().resume(true)).unwrap_err();
        assert!(matches!(error, StoreError::ReadOnly { .. }), "{error}");
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
        let error = RunStore::open(root.path(), "new", OpenOptions::new()).unwrap_err();
        assert!(matches!(error, StoreError::ReadOnly { .. }), "{error}");
        assert_eq!(
            RunReader::open(root.path(), "kept")
                .unwrap()
                .counts()
                .unwrap()
                .done,
            100
        );
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn full_database_keeps_what_was_committed_and_recovers() {
    // A quota in pages makes SQLite report SQLITE_FULL, as a full disk does.
    let root = tempfile::tempdir().unwrap();
    let options = OpenOptions {
        max_db_pages: Some(64),
        ..OpenOptions::new()
    };
    let store = RunStore::open(root.path(), "full", options).unwrap();
    record_tiny(&store, 0, 100);
    store.flush().unwrap();
    record_tiny(&store, 100, 50_000);
    let error = store.flush().unwrap_err();
    assert!(matches!(error, StoreError::DiskFull { .. }), "{error}");
    assert!(error.to_string().contains("disk is full") && error.to_string().contains("resume"));
    assert!(matches!(store.error(), Some(StoreError::DiskFull { .. })));
    assert!(store.close().is_err());
    let reader = RunReader::open(root.path(), "full").unwrap();
    assert_eq!(
        reader.counts().unwrap().done,
        100,
        "the committed tasks are intact"
    );
    assert_eq!(reader.info().unwrap().state, RunState::Interrupted);
}

/// A real full disk needs a tmpfs (root): left out of a plain `cargo test`
/// (the page-quota test covers SQLITE_FULL there), run by the CI test command.
#[test]
#[ignore = "mounts a tmpfs: needs root (scripts/test-all.sh runs it)"]
fn full_disk_is_reported_and_recovers_when_space_is_freed() {
    with_tmpfs("4m", |mount| {
        let store = RunStore::open(mount, "disk", OpenOptions::new()).unwrap();
        record_tiny(&store, 0, 1000);
        store.flush().unwrap();
        // Fill the disk.
        let filler = mount.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while std::io::Write::write_all(&mut file, &chunk).is_ok() {}
        drop(file);
        record_tiny(&store, 1000, 30_000);
        // A large value needs a file too.
        let big = TaskIdentity::new(TASKS[0].1, b"big", 99_999);
        store.record_submitted(vec![submit(big, 99_999, b"big")]);
        store.record_finished(vec![finish(
            big,
            0,
            AttemptOutcome::Value(vec![5; 300_000].into()),
        )]);
        let error = store.flush().unwrap_err();
        assert!(matches!(error, StoreError::DiskFull { .. }), "{error}");
        assert_eq!(
            RunReader::open(mount, "disk")
                .unwrap()
                .counts()
                .unwrap()
                .done,
            1000
        );
        // Free the space: the pending records are committed, nothing lost.
        std::fs::remove_file(&filler).unwrap();
        store.flush().unwrap();
        assert!(store.error().is_none());
        store.close().unwrap();
        let reader = RunReader::open(mount, "disk").unwrap();
        assert_eq!(reader.counts().unwrap().done, 31_001);
        let found = reader.find(&big.to_hex()).unwrap();
        let value = found[0].attempt_list[0].value.clone().unwrap();
        assert_eq!(value.bytes().unwrap().len(), 300_000);
    });
}

#[test]
fn readers_work_while_the_master_writes() {
    let root = tempfile::tempdir().unwrap();
    let store = RunStore::open(root.path(), "live", OpenOptions::new()).unwrap();
    record_tiny(&store, 0, 1);
    store.flush().unwrap();
    let path = root.path().to_path_buf();
    let reading = std::thread::spawn(move || {
        let reader = RunReader::open(&path, "live").unwrap();
        let mut last = 0;
        let mut reads = 0;
        loop {
            let counts = reader.counts().unwrap();
            assert!(counts.done >= last, "counts went back");
            last = counts.done;
            reads += 1;
            assert_eq!(reader.info().unwrap().state, RunState::Running);
            if last == 200_001 {
                return reads;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    });
    for chunk in 0..100 {
        record_tiny(&store, 1 + chunk * 2000, 2000);
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    store.flush().unwrap();
    let reads = reading.join().unwrap();
    assert!(reads > 3, "the reader saw the run grow ({reads} reads)");
    store.close().unwrap();
}

#[test]
fn long_tasks_and_job_ids_are_visible_before_they_finish() {
    let root = tempfile::tempdir().unwrap();
    let store = RunStore::open(root.path(), "slow", OpenOptions::new()).unwrap();
    let a = TaskIdentity::new(TASKS[0].1, b"a", 0);
    let b = TaskIdentity::new(TASKS[0].1, b"b", 1);
    store.record_submitted(vec![submit(a, 0, b"a"), submit(b, 1, b"b")]);
    store.record_queued(vec![AttemptEvent {
        identity: a,
        attempt: 0,
        job_id: Some("46.0".into()),
        host: None,
        at_ns: now_ns(),
    }]);
    // A job id is committed within a commit interval, without a flush.
    let started = Instant::now();
    loop {
        let reader = RunReader::open(root.path(), "slow").unwrap();
        if reader.find(&a.to_hex()).unwrap().len() == 1 {
            break;
        }
        assert!(started.elapsed().as_secs() < 5, "job id not committed");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let reader = RunReader::open(root.path(), "slow").unwrap();
    let counts = reader.counts().unwrap();
    assert_eq!(
        (counts.queued, counts.running),
        (2, 0),
        "live counts include unwritten tasks"
    );
    store.close().unwrap();
    // Closed with tasks unfinished: both are in the store, queued.
    let reader = RunReader::open(root.path(), "slow").unwrap();
    assert_eq!(reader.info().unwrap().state, RunState::Stopped);
    assert_eq!(reader.counts().unwrap().queued, 2);
}

/// A master killed while it created the store leaves an empty file (or an
/// SQLite file without tables): the next master of the run creates the
/// store anew, and readers say what happened instead of "not a store".
#[test]
fn a_store_whose_creation_was_cut_short_is_created_again() {
    let root = tempfile::tempdir().unwrap();
    for (name, make) in [("empty-file", 0), ("wal-only", 1), ("hot-journal", 2)] {
        let dir = root.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join(pymw_store::DB_FILE);
        match make {
            0 => std::fs::write(&db, b"").unwrap(),
            1 => {
                let conn = rusqlite::Connection::open(&db).unwrap();
                let _: String = conn
                    .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                    .unwrap();
            }
            _ => {
                std::fs::write(&db, b"").unwrap();
                std::fs::write(dir.join("run.sqlite-journal"), [0u8; 512]).unwrap();
            }
        }
        let err = RunReader::open(root.path(), name).unwrap_err();
        assert!(
            matches!(err, StoreError::Unborn { .. }),
            "{name}: the reader said {err}"
        );
        assert!(err.to_string().contains("same run name"), "{err}");
        let store = RunStore::open(
            root.path(),
            name,
            OpenOptions::new().create(true).resume(true),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!store.resumed(), "{name}: an unborn store is new");
        record_tiny(&store, 0, 3);
        store.close().unwrap();
        let reader = RunReader::open(root.path(), name).unwrap();
        assert_eq!(reader.counts().unwrap().done, 3, "{name}");
        assert_eq!(reader.info().unwrap().sessions, 1, "{name}");
    }
}

#[test]
fn a_job_id_that_arrives_after_the_start_is_no_step_back() {
    let root = tempfile::tempdir().unwrap();
    let store = RunStore::open(root.path(), "late-id", OpenOptions::new()).unwrap();
    let a = TaskIdentity::new(TASKS[0].1, b"a", 0);
    store.record_submitted(vec![submit(a, 0, b"a")]);
    let event = |job_id: Option<&str>| AttemptEvent {
        identity: a,
        attempt: 0,
        job_id: job_id.map(str::to_owned),
        host: None,
        at_ns: now_ns(),
    };
    // HTCondor's log can show the job running before condor_submit returns.
    store.record_started(vec![event(None)]);
    store.record_queued(vec![event(Some("46.0@/runs/r/tasks/0"))]);
    store.flush().unwrap();
    let reader = RunReader::open(root.path(), "late-id").unwrap();
    let counts = reader.counts().unwrap();
    assert_eq!((counts.queued, counts.running), (0, 1));
    let in_flight = store.in_flight().unwrap();
    assert_eq!(in_flight.len(), 1);
    assert_eq!(in_flight[0].job_id.as_deref(), Some("46.0@/runs/r/tasks/0"));
    assert_eq!(in_flight[0].state, pymw_store::AttemptState::Running);
    store.close().unwrap();
}

/// Resume must load 1,000,000 finished tiny tasks in well under 10 s: checked
/// in an optimised build (`cargo test --release -p pymw-store --test store
/// a_million`; `cargo run --release -p pymw-store --example store_bench`
/// prints the figures). An unoptimised build (SQLite at -O0 too) checks
/// 100,000 for correctness only.
#[test]
fn a_million_finished_tasks_load_quickly() {
    let root = tempfile::tempdir().unwrap();
    let store = RunStore::open(root.path(), "million", OpenOptions::new()).unwrap();
    let total: u64 = if cfg!(debug_assertions) {
        100_000
    } else {
        1_000_000
    };
    let fingerprint = TASKS[0].1;
    let started = Instant::now();
    for chunk in 0..total / 10_000 {
        let mut submitted = Vec::with_capacity(10_000);
        let mut finished = Vec::with_capacity(10_000);
        for position in chunk * 10_000..(chunk + 1) * 10_000 {
            let input = position.to_le_bytes();
            let hash = input_hash(&input);
            let identity = TaskIdentity::from_parts(fingerprint, hash, position);
            submitted.push(SubmittedTask {
                identity,
                task: TASKS[0].0.into(),
                fingerprint,
                position,
                input_hash: hash,
                submitted_ns: 1,
            });
            finished.push(FinishedTask {
                identity,
                attempt: 0,
                outcome: AttemptOutcome::Value(input[..].into()),
                stats: Default::default(),
                stderr_tail: String::new(),
                started_ns: Some(2),
                finished_ns: 3,
            });
        }
        store.record_submitted(submitted);
        store.record_finished(finished);
    }
    store.close().unwrap();
    let recorded = started.elapsed();

    let started = Instant::now();
    let store = RunStore::open(root.path(), "million", OpenOptions::new().resume(true)).unwrap();
    let finished = store.load_finished().unwrap();
    let loaded = started.elapsed();
    eprintln!("recorded {total} tasks in {recorded:?}; opened and loaded them in {loaded:?}");
    assert_eq!(finished.len() as u64, total);
    if !cfg!(debug_assertions) {
        assert!(loaded.as_secs_f64() < 10.0, "{loaded:?}");
    }
}

const CRASH_CHILD: &str = "PYMW_STORE_CRASH_CHILD";
const CRASH_TASKS: u64 = 60_000;

/// Not a test on its own: the process `killed_masters_lose_nothing_they_flushed`
/// starts and kills. Records tiny tasks (every 7th with a job id, so rows
/// and blocks mix) and prints how far it has flushed.
#[test]
fn crash_child() {
    let Some(root) = std::env::var_os(CRASH_CHILD) else {
        return;
    };
    let store = RunStore::open(&root, "crash", OpenOptions::new().resume(true)).unwrap();
    let finished = store.load_finished().unwrap();
    let fingerprint = TASKS[0].1;
    // Go on from the first task not finished (tasks after it may be).
    let mut position = (0..CRASH_TASKS)
        .find(|&p| !finished.contains_key(&TaskIdentity::new(fingerprint, &p.to_le_bytes(), p)))
        .unwrap_or(CRASH_TASKS);
    let mut batches = 0;
    while position < CRASH_TASKS {
        let (mut submitted, mut queued, mut done) = (Vec::new(), Vec::new(), Vec::new());
        let end = (position + 500).min(CRASH_TASKS);
        for p in position..end {
            let input = p.to_le_bytes();
            let identity = TaskIdentity::new(fingerprint, &input, p);
            if finished.contains_key(&identity) {
                continue;
            }
            submitted.push(submit(identity, p, &input));
            if p % 7 == 0 {
                queued.push(AttemptEvent {
                    identity,
                    attempt: 0,
                    job_id: Some(format!("1.{p}")),
                    host: Some("node1".into()),
                    at_ns: now_ns(),
                });
            }
            done.push(finish(
                identity,
                0,
                AttemptOutcome::Value((p * 3).to_le_bytes()[..].into()),
            ));
        }
        store.record_submitted(submitted);
        store.record_queued(queued);
        store.record_finished(done);
        position = end;
        batches += 1;
        if batches % 4 == 0 {
            store.flush().unwrap();
            println!("flushed {position}");
        }
    }
    store.close().unwrap();
    println!("flushed {CRASH_TASKS}");
}

/// A master killed (SIGKILL) at several points keeps everything it flushed,
/// the database stays intact, and a restart finishes the rest without
/// duplicates.
#[test]
fn killed_masters_lose_nothing_they_flushed() {
    use std::io::BufRead;
    let root = tempfile::tempdir().unwrap();
    let fingerprint = TASKS[0].1;
    let mut seed = 0x5eed_u64;
    for round in 0..5 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CRASH_CHILD, root.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let kill_after = 2 + (seed >> 33) % 6;
        let mut flushed = 0;
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        while let Some(Ok(line)) = lines.next() {
            if let Some(n) = line.strip_prefix("flushed ") {
                flushed = n.parse::<u64>().unwrap();
                seen += 1;
                if seen == kill_after || round == 4 {
                    break;
                }
            }
        }
        if round < 4 {
            // Somewhere in the middle of the next batches and commits.
            std::thread::sleep(std::time::Duration::from_millis((seed >> 40) % 150));
            child.kill().unwrap();
        } else {
            for _ in lines.by_ref() {}
        }
        child.wait().unwrap();

        // The database is intact and holds every flushed task, once.
        let db = root.path().join("crash").join(pymw_store::DB_FILE);
        let check: String =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap()
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
        assert_eq!(check, "ok", "round {round}");
        let reader = RunReader::open(root.path(), "crash").unwrap();
        let mut seen = std::collections::HashSet::new();
        let mut done = std::collections::HashMap::new();
        reader
            .scan(|task, attempts| {
                assert!(
                    seen.insert(task.identity),
                    "round {round}: {} twice",
                    task.position
                );
                if task.state == TaskState::Done {
                    done.insert(task.position, attempts.len());
                }
            })
            .unwrap();
        eprintln!(
            "round {round}: killed after {flushed} flushed tasks; {} done in the store",
            done.len()
        );
        for p in 0..flushed {
            assert!(
                done.contains_key(&p),
                "round {round}: flushed task {p} is missing"
            );
        }
        let store = RunStore::open(root.path(), "crash", OpenOptions::new().resume(true)).unwrap();
        let finished = store.load_finished().unwrap();
        for p in (0..flushed).step_by(997) {
            let identity = TaskIdentity::new(fingerprint, &p.to_le_bytes(), p);
            match &finished[&identity] {
                StoredOutcome::Done { value, .. } => {
                    assert_eq!(value.bytes().unwrap().as_ref(), &(p * 3).to_le_bytes())
                }
                other => panic!("{other:?}"),
            }
        }
        drop(store);
        if round == 4 {
            assert_eq!(finished.len() as u64, CRASH_TASKS);
            assert_eq!(reader.counts().unwrap().done, CRASH_TASKS);
        }
    }
}
