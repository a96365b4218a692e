//! Figures of the run store (run it optimised):
//!
//! ```sh
//! cargo run --release -p pymw-store --example store_bench [TASKS [tiny]]
//! ```
//!
//! Records TASKS (default 1,000,000) tiny tasks the way a master does (a
//! batch per driver turn), then resumes the run and loads them all; also
//! records 100,000 grid-like tasks (job ids, one row each). Prints the
//! master's cost per task, the writer's, and the load time.

use pymw_store::{
    AttemptEvent, AttemptOutcome, FinishedTask, OpenOptions, RunStore, SubmittedTask, TaskIdentity,
    input_hash, now_ns,
};
use std::time::Instant;

fn process_cpu_ns() -> u64 {
    let (cpu, _) = pymw_core::sys::process_usage();
    cpu.as_nanos() as u64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let total: u64 = std::env::args()
        .nth(1)
        .map_or(Ok(1_000_000), |a| a.parse())?;
    let root = tempfile::tempdir()?;
    // PYMW_BENCH_KEEP=DIR keeps the runs there (to try `pymw` on them).
    let kept = std::env::var_os("PYMW_BENCH_KEEP").map(std::path::PathBuf::from);
    let root_path = kept.clone().unwrap_or_else(|| root.path().to_path_buf());
    let fingerprint = 0x1234_5678_9abc_def0;
    let batch = 1024;

    // Tiny tasks: submitted and finished within one commit interval.
    let store = RunStore::open(&root_path, "tiny", OpenOptions::new())?;
    let (cpu0, thread0, wall) = (
        process_cpu_ns(),
        pymw_core::sys::thread_cpu_ns(),
        Instant::now(),
    );
    let mut position = 0;
    while position < total {
        let end = (position + batch).min(total);
        let mut records = store.batch();
        let now = now_ns();
        for p in position..end {
            let input = p.to_le_bytes();
            let hash = input_hash(&input);
            let identity = TaskIdentity::from_parts(fingerprint, hash, p);
            records.submitted.push(SubmittedTask {
                identity,
                task: "bench::add_one".into(),
                fingerprint,
                position: p,
                input_hash: hash,
                submitted_ns: now,
            });
            records.finished.push(FinishedTask {
                identity,
                attempt: 0,
                outcome: AttemptOutcome::Value((p + 1).to_le_bytes()[..].into()),
                stats: pymw_store::WorkerStats {
                    wall_ns: 900,
                    cpu_ns: None,
                    peak_rss_kib: 3000,
                    host: String::new(),
                },
                stderr_tail: String::new(),
                started_ns: None,
                finished_ns: now + 1000,
            });
        }
        store.record(records);
        position = end;
    }
    let master_ns = pymw_core::sys::thread_cpu_ns() - thread0;
    let recorded = wall.elapsed();
    store.flush()?;
    let committed = wall.elapsed();
    let writer_ns = (process_cpu_ns() - cpu0).saturating_sub(master_ns);
    store.close()?;
    let size = std::fs::metadata(root_path.join("tiny").join(pymw_store::DB_FILE))?.len();
    println!("tiny tasks: {total}");
    println!(
        "  master side: {:.0} ns CPU per task (hashing, records, channel); all recorded in {:.2} s",
        master_ns as f64 / total as f64,
        recorded.as_secs_f64()
    );
    println!(
        "  writer: {:.0} ns CPU per task; committed {:.0} tasks/s (wall, incl. the master side); {:.1} bytes/task on disk",
        writer_ns as f64 / total as f64,
        total as f64 / committed.as_secs_f64(),
        size as f64 / total as f64
    );

    let started = Instant::now();
    let store = RunStore::open(&root_path, "tiny", OpenOptions::new().resume(true))?;
    let opened = started.elapsed();
    let finished = store.load_finished()?;
    let loaded = started.elapsed();
    assert_eq!(finished.len() as u64, total);
    println!(
        "  resume: open {:.3} s, load_finished of {} tasks {:.3} s (total)",
        opened.as_secs_f64(),
        finished.len(),
        loaded.as_secs_f64()
    );
    drop(finished);
    store.close()?;
    if std::env::args().nth(2).as_deref() == Some("tiny") {
        return Ok(());
    }

    // Grid-like tasks: a job id each, so every task is a row at once.
    let grid = 100_000u64;
    let store = RunStore::open(&root_path, "grid", OpenOptions::new())?;
    let wall = Instant::now();
    let cpu0 = process_cpu_ns();
    for chunk in 0..grid / batch + 1 {
        let range = chunk * batch..((chunk + 1) * batch).min(grid);
        let now = now_ns();
        let mut submitted = Vec::new();
        let mut queued = Vec::new();
        let mut finished = Vec::new();
        for p in range {
            let input = p.to_le_bytes();
            let hash = input_hash(&input);
            let identity = TaskIdentity::from_parts(fingerprint, hash, p);
            submitted.push(SubmittedTask {
                identity,
                task: "bench::add_one".into(),
                fingerprint,
                position: p,
                input_hash: hash,
                submitted_ns: now,
            });
            queued.push(AttemptEvent {
                identity,
                attempt: 0,
                job_id: Some(format!("{chunk}.{p}")),
                host: None,
                at_ns: now,
            });
            finished.push(FinishedTask {
                identity,
                attempt: 0,
                outcome: AttemptOutcome::Value(vec![1, 2, 3].into()),
                stats: Default::default(),
                stderr_tail: String::new(),
                started_ns: None,
                finished_ns: now + 1000,
            });
        }
        store.record_submitted(submitted);
        store.record_queued(queued);
        store.flush()?;
        store.record_finished(finished);
    }
    store.flush()?;
    let elapsed = wall.elapsed();
    println!(
        "grid tasks (rows, two commits each): {grid} in {:.2} s = {:.0} tasks/s, {:.0} ns CPU per task",
        elapsed.as_secs_f64(),
        grid as f64 / elapsed.as_secs_f64(),
        (process_cpu_ns() - cpu0) as f64 / grid as f64
    );
    store.close()?;
    Ok(())
}
