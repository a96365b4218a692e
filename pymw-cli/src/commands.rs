//! The commands.

use crate::text::{Align, Table, WIDTH, ago, bar, truncate, wrap};
use anyhow::{Context, Result, bail};
use pymw_store::format::{bytes, count, duration_ns, utc};
use pymw_store::{
    AttemptRecord, Counts, FailureKind, RunInfo, RunReader, RunState, StaleResults, StoredValue,
    TaskDetail, list_runs, now_ns, remove_run,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

fn open(root: &Path, run: &str) -> Result<RunReader> {
    Ok(RunReader::open(root, run)?)
}

fn print_json(value: &impl Serialize) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

pub(crate) fn runs(root: &Path, json: bool) -> Result<()> {
    let runs = list_runs(root)?;
    if json {
        return print_json(&runs);
    }
    if runs.is_empty() {
        return emit(&format!(
            "no runs in {} (a master started with --run NAME creates one; --root DIR looks elsewhere)\n",
            root.display()
        ));
    }
    let mut table = Table::new(&[
        ("RUN", Align::Left),
        ("STATE", Align::Left),
        ("DONE", Align::Right),
        ("FAILED", Align::Right),
        ("TOTAL", Align::Right),
        ("UPDATED", Align::Right),
        ("SIZE", Align::Right),
    ]);
    for run in &runs {
        match (&run.info, &run.counts) {
            (Some(info), Some(counts)) => table.row(vec![
                run.name.clone(),
                info.state.as_str().to_string(),
                count(counts.done),
                count(counts.failed),
                count(info.expected_tasks.unwrap_or(0).max(counts.total())),
                ago(info.updated_ns),
                bytes(run.size_bytes),
            ]),
            _ => table.row(vec![
                run.name.clone(),
                "unreadable".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                bytes(run.size_bytes),
            ]),
        }
    }
    let mut text = table.render();
    for run in &runs {
        if let Some(error) = &run.error {
            text.push_str(&format!("\n{}:\n", run.name));
            for line in wrap(error, WIDTH - 2) {
                text.push_str(&format!("  {line}\n"));
            }
        }
    }
    emit(&text)
}

/// A run's status, as printed and as JSON.
#[derive(Debug, Serialize)]
struct Status {
    info: RunInfo,
    counts: Counts,
    /// Tasks per second over the last 30 s (while running).
    recent_rate: Option<f64>,
    /// Finished tasks per second from the first submission to the last finish.
    overall_rate: Option<f64>,
    elapsed_ns: Option<u64>,
    eta_ns: Option<u64>,
    lost_attempts: u64,
    /// Finished results of tasks that changed since (another build): not
    /// reused when the run resumes.
    stale_results: Vec<StaleResults>,
}

const RECENT_WINDOW_NS: u64 = 30_000_000_000;

fn status_of(reader: &RunReader) -> Result<Status> {
    let info = reader.info()?;
    let counts = reader.counts()?;
    let (first, last) = reader.time_span()?;
    let now = now_ns();
    let running = info.state == RunState::Running;
    let end = if running { Some(now) } else { last };
    let elapsed_ns = first.zip(end).map(|(f, e)| e.saturating_sub(f));
    let overall_rate = elapsed_ns
        .filter(|&e| e > 0)
        .map(|e| counts.finished() as f64 / (e as f64 / 1e9));
    let recent_rate = if running {
        let window = RECENT_WINDOW_NS
            .min(elapsed_ns.unwrap_or(RECENT_WINDOW_NS))
            .max(1_000_000_000);
        Some(reader.finished_since(now - window)? as f64 / (window as f64 / 1e9))
    } else {
        None
    };
    let total = info.expected_tasks.unwrap_or(0).max(counts.total());
    let remaining = total.saturating_sub(counts.finished());
    // Without an announced total, the ETA covers the tasks submitted so far
    // (a lower bound), and there is none when they are all done.
    let eta_ns = match recent_rate.or(overall_rate) {
        _ if !running => Some(0),
        _ if remaining == 0 && info.expected_tasks.is_none() => None,
        Some(rate) if rate > 0.0 => Some((remaining as f64 / rate * 1e9) as u64),
        _ => None,
    };
    Ok(Status {
        lost_attempts: reader.lost_attempts()?,
        stale_results: reader.stale_results()?,
        info,
        counts,
        recent_rate,
        overall_rate,
        elapsed_ns,
        eta_ns,
    })
}

fn rate(r: f64) -> String {
    if r >= 100.0 {
        format!("{} tasks/s", count(r.round() as u64))
    } else if r >= 1.0 {
        format!("{r:.1} tasks/s")
    } else if r > 0.0 {
        format!("{:.1} tasks/min", r * 60.0)
    } else {
        "0 tasks/s".to_string()
    }
}

fn render_status(status: &Status) -> String {
    let info = &status.info;
    let c = &status.counts;
    let mut out = String::new();
    let backend = info.backend.as_deref().unwrap_or("?");
    out.push_str(&truncate(&format!("run {} ({backend})", info.name), WIDTH));
    out.push('\n');
    let state = match (&info.state, &info.master) {
        (RunState::Running, Some(master)) => format!("running, master {master}"),
        (RunState::Interrupted, _) => {
            "interrupted: its master died; start it again with the same run name to resume".into()
        }
        (RunState::Stopped, _) => "stopped: its master closed it with tasks unfinished".into(),
        (state, _) => state.as_str().to_string(),
    };
    indent(&mut out, "state       ", &state, WIDTH);
    let total = info.expected_tasks.unwrap_or(0).max(c.total());
    let fraction = |n: u64| {
        if total == 0 {
            0.0
        } else {
            n as f64 / total as f64
        }
    };
    let width = count(total).len().max(5);
    let line = |out: &mut String, label: &str, n: u64, with_bar: bool| {
        let percent = format!("{:5.1}%", 100.0 * fraction(n));
        if with_bar {
            out.push_str(&format!(
                "  {label:<10}{:>width$}  {}  {percent}\n",
                count(n),
                bar(fraction(n), 40)
            ));
        } else if n > 0 || label == "failed" {
            out.push_str(&format!("  {label:<10}{:>width$}  {percent}\n", count(n)));
        }
    };
    line(&mut out, "done", c.done, true);
    line(&mut out, "failed", c.failed, false);
    line(&mut out, "running", c.running, false);
    line(&mut out, "queued", c.queued, false);
    line(&mut out, "cancelled", c.cancelled, false);
    let expected = match info.expected_tasks {
        Some(e) if e > c.total() && info.state == RunState::Running => {
            format!(" ({} not yet submitted)", count(e - c.total()))
        }
        Some(e) if e > c.total() => format!(" ({} were waiting to start)", count(e - c.total())),
        _ => String::new(),
    };
    out.push_str(&format!(
        "  {:<10}{:>width$}{expected}\n",
        "total",
        count(total)
    ));
    if status.lost_attempts > 0 {
        out.push_str(&format!(
            "  {} lost attempts were retried\n",
            count(status.lost_attempts)
        ));
    }
    for stale in &status.stale_results {
        indent(
            &mut out,
            "  ",
            &format!(
                "{} results of task {} from an earlier build were not reused: the task changed",
                count(stale.results),
                stale.task
            ),
            WIDTH,
        );
    }
    let mut rates = Vec::new();
    if let Some(r) = status.recent_rate {
        rates.push(format!("{} (last 30 s)", rate(r)));
    }
    if let Some(r) = status.overall_rate {
        rates.push(format!("{} overall", rate(r)));
    }
    if !rates.is_empty() {
        indent(&mut out, "throughput  ", &rates.join(", "), WIDTH);
    }
    let mut times = Vec::new();
    if let Some(e) = status.elapsed_ns {
        times.push(format!("elapsed {}", duration_ns(e)));
    }
    match (info.state, status.eta_ns) {
        (RunState::Running, Some(eta)) if info.expected_tasks.is_some() => {
            times.push(format!("ETA {}", duration_ns(eta)))
        }
        (RunState::Running, Some(eta)) => times.push(format!("ETA at least {}", duration_ns(eta))),
        (RunState::Running, None) if info.expected_tasks.is_none() => {
            times.push("ETA unknown (the master did not say how many tasks)".into())
        }
        (RunState::Running, None) => times.push("ETA unknown (nothing finished recently)".into()),
        _ => {}
    }
    times.push(format!("updated {}", ago(info.updated_ns)));
    indent(&mut out, "time        ", &times.join(", "), WIDTH);
    out
}

pub(crate) fn status(root: &Path, run: &str, watch: bool, json: bool) -> Result<()> {
    let reader = open(root, run)?;
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    loop {
        let status = status_of(&reader)?;
        if json {
            if watch {
                let mut out = std::io::stdout().lock();
                serde_json::to_writer(&mut out, &status)?;
                writeln!(out)?;
                out.flush()?;
            } else {
                print_json(&status)?;
            }
        } else {
            let text = render_status(&status);
            if watch && tty {
                // Home, clear to the end: no flicker.
                emit(&format!("\x1b[H\x1b[2J{text}"))?;
            } else {
                emit(&text)?;
                if watch {
                    emit("\n")?;
                }
            }
        }
        if !watch || status.info.state != RunState::Running {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// Wraps `text` after `prefix`; continuation lines are indented as far.
fn indent(out: &mut String, prefix: &str, text: &str, width: usize) {
    let blank = " ".repeat(prefix.chars().count());
    for (i, line) in wrap(text, width - prefix.chars().count())
        .iter()
        .enumerate()
    {
        out.push_str(if i == 0 { prefix } else { &blank });
        out.push_str(line);
        out.push('\n');
    }
}

fn tail_lines(out: &mut String, tail: &str, lines: usize) {
    let all: Vec<&str> = tail.lines().filter(|l| !l.trim().is_empty()).collect();
    let skip = all.len().saturating_sub(lines);
    if skip > 0 {
        out.push_str(&format!("     │ … {skip} earlier lines\n"));
    }
    for line in &all[skip..] {
        out.push_str("     │ ");
        out.push_str(&truncate(line.trim_end(), WIDTH - 7));
        out.push('\n');
    }
}

fn short_id(detail: &TaskDetail) -> String {
    detail.task.identity.to_hex()[..8].to_string()
}

pub(crate) fn errors(
    root: &Path,
    run: &str,
    lines: usize,
    limit: Option<usize>,
    json: bool,
) -> Result<()> {
    let reader = open(root, run)?;
    let mut failed = reader.failed()?;
    failed.sort_by_key(|d| (d.task.position, d.task.seq));
    let lost = reader.lost_attempts()?;
    if json {
        #[derive(Serialize)]
        struct Errors<'a> {
            failed: &'a [TaskDetail],
            lost_attempts_retried: u64,
        }
        return print_json(&Errors {
            failed: &failed,
            lost_attempts_retried: lost,
        });
    }
    let mut out = String::new();
    if failed.is_empty() {
        out.push_str(&format!("no failed tasks in {run}"));
        if lost > 0 {
            out.push_str(&format!(" ({} lost attempts were retried)", count(lost)));
        }
        out.push('\n');
        return emit(&out);
    }
    let mut by_kind: BTreeMap<FailureKind, u64> = BTreeMap::new();
    for detail in &failed {
        if let Some(f) = detail.attempt_list.last().and_then(|a| a.failure.as_ref()) {
            *by_kind.entry(f.kind).or_default() += 1;
        }
    }
    let mut kinds: Vec<(FailureKind, u64)> = by_kind.into_iter().collect();
    kinds.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let causes: Vec<String> = kinds
        .iter()
        .map(|(k, n)| format!("{n} {}", k.label()))
        .collect();
    out.push_str(&format!(
        "{} failed tasks in {run}",
        count(failed.len() as u64)
    ));
    if lost > 0 {
        out.push_str(&format!("; {} lost attempts were retried", count(lost)));
    }
    out.push('\n');
    indent(&mut out, "by cause: ", &causes.join(", "), WIDTH);
    let shown = limit.unwrap_or(usize::MAX).min(failed.len());
    for detail in &failed[..shown] {
        let last = detail.attempt_list.last();
        let host = last.and_then(|a| a.host.as_deref()).unwrap_or("?");
        out.push('\n');
        let attempts = match detail.task.attempts {
            0 | 1 => String::new(),
            n => format!(" after {n} attempts"),
        };
        out.push_str(&truncate(
            &format!(
                "#{:<5} {}  {}  on {host}{attempts}",
                detail.task.position,
                detail.task.task,
                short_id(detail),
            ),
            WIDTH,
        ));
        out.push('\n');
        match last.and_then(|a| a.failure.as_ref()) {
            Some(failure) => {
                indent(&mut out, "     ", &failure.summary(), WIDTH);
                if lines > 0 && !failure.stderr_tail.trim().is_empty() {
                    tail_lines(&mut out, &failure.stderr_tail, lines);
                }
            }
            None => out.push_str("     (no failure recorded)\n"),
        }
    }
    if shown < failed.len() {
        out.push_str(&format!(
            "\n… and {} more (--limit, or --json)\n",
            failed.len() - shown
        ));
    }
    emit(&out)
}

fn clock(ns: Option<u64>) -> String {
    ns.map_or_else(|| "-".to_string(), |ns| utc(ns)[11..].to_string())
}

fn opt_duration(ns: Option<u64>) -> String {
    ns.map_or_else(|| "-".to_string(), duration_ns)
}

fn value_preview(attempt: &AttemptRecord) -> Option<String> {
    let len = attempt.value_len?;
    Some(match &attempt.value {
        Some(StoredValue::Inline(bytes)) => {
            let head: Vec<String> = bytes.iter().take(16).map(|b| format!("{b:02x}")).collect();
            let more = if bytes.len() > 16 { " …" } else { "" };
            format!("{} (postcard): {}{more}", bytes_label(len), head.join(" "))
        }
        Some(StoredValue::File(path)) => format!("{} in {}", bytes_label(len), path.display()),
        None => bytes_label(len),
    })
}

fn bytes_label(len: u64) -> String {
    if len < 1024 {
        format!("{len} bytes")
    } else {
        bytes(len)
    }
}

pub(crate) fn show(root: &Path, run: &str, task: &str, json: bool) -> Result<()> {
    let reader = open(root, run)?;
    let found = reader.find(task)?;
    if found.is_empty() {
        bail!(
            "no task `{task}` in run {run}: give its position (digits) or the start of its identity (4+ hex digits; `pymw errors {run}` shows some)"
        );
    }
    if json {
        return print_json(&found);
    }
    if found.len() > 1 {
        let mut out = format!(
            "`{task}` matches {} tasks; give more of the identity:\n",
            found.len()
        );
        let mut table = Table::new(&[
            ("IDENTITY", Align::Left),
            ("POSITION", Align::Right),
            ("TASK", Align::Left),
            ("STATE", Align::Left),
        ]);
        for d in &found {
            table.row(vec![
                d.task.identity.to_hex(),
                d.task.position.to_string(),
                d.task.task.clone(),
                d.task.state.as_str().into(),
            ]);
        }
        out.push_str(&table.render());
        return emit(&out);
    }
    let d = &found[0];
    let t = &d.task;
    let mut out = String::new();
    out.push_str(&format!("task {} of run {run}\n", t.position));
    out.push_str(&format!("  identity    {}\n", t.identity));
    out.push_str(&truncate(
        &format!(
            "  task        {} (fingerprint {:016x})",
            t.task, t.fingerprint
        ),
        WIDTH,
    ));
    out.push('\n');
    out.push_str(&format!("  input hash  {}\n", t.input_hash));
    let attempts = if t.attempts == 1 {
        "1 attempt".to_string()
    } else {
        format!("{} attempts", t.attempts)
    };
    out.push_str(&format!(
        "  state       {} after {attempts}\n",
        t.state.as_str()
    ));
    if let Some(s) = t.submitted_ns {
        out.push_str(&format!("  submitted   {} UTC\n", utc(s)));
    }
    if let Some(f) = t.finished_ns {
        let after = t
            .submitted_ns
            .map(|s| format!(" ({} after submission)", duration_ns(f.saturating_sub(s))))
            .unwrap_or_default();
        out.push_str(&format!("  finished    {} UTC{after}\n", utc(f)));
    }
    if let Some(preview) = d.attempt_list.last().and_then(value_preview) {
        indent(&mut out, "  value       ", &preview, WIDTH);
    }
    if !d.attempt_list.is_empty() {
        out.push_str("attempts\n");
        let mut table = Table::new(&[
            ("  #", Align::Right),
            ("STATE", Align::Left),
            ("JOB", Align::Left),
            ("HOST", Align::Left),
            ("STARTED", Align::Left),
            ("WALL", Align::Right),
            ("CPU", Align::Right),
            ("RSS", Align::Right),
        ]);
        for a in &d.attempt_list {
            table.row(vec![
                format!("  {}", a.attempt),
                a.state.as_str().into(),
                a.job_id.clone().unwrap_or_else(|| "-".into()),
                a.host.clone().unwrap_or_else(|| "-".into()),
                clock(a.started_ns),
                opt_duration(a.wall_ns),
                opt_duration(a.cpu_ns),
                a.peak_rss_kib
                    .map_or_else(|| "-".into(), |k| bytes(k * 1024)),
            ]);
        }
        let rendered = table.render();
        let mut rows = rendered.lines();
        out.push_str(rows.next().unwrap_or_default());
        out.push('\n');
        for (a, row) in d.attempt_list.iter().zip(rows) {
            out.push_str(row);
            out.push('\n');
            if let Some(f) = &a.failure {
                indent(&mut out, "     ", &f.summary(), WIDTH);
                if !f.stderr_tail.trim().is_empty() {
                    tail_lines(&mut out, &f.stderr_tail, 10);
                }
            }
        }
    }
    emit(&out)
}

pub(crate) fn report(root: &Path, run: &str, output: &Path, json: bool) -> Result<()> {
    let reader = open(root, run)?;
    let report = crate::report::build(&reader)?;
    let html = crate::report::render(&report);
    std::fs::write(output, &html).with_context(|| format!("writing {}", output.display()))?;
    if json {
        #[derive(Serialize)]
        struct Written<'a> {
            path: &'a Path,
            bytes: usize,
            tasks: u64,
            attempts: u64,
        }
        return print_json(&Written {
            path: output,
            bytes: html.len(),
            tasks: report.tasks,
            attempts: report.attempts.len() as u64,
        });
    }
    emit(&format!(
        "wrote {}\n  {}: {} tasks, {} attempts\n",
        output.display(),
        bytes(html.len() as u64),
        count(report.tasks),
        count(report.attempts.len() as u64)
    ))
}

/// What `pymw clean` was asked.
#[derive(Debug)]
pub(crate) struct CleanArgs {
    pub(crate) runs: Vec<String>,
    pub(crate) all: bool,
    pub(crate) older_than: Option<String>,
    pub(crate) cache: bool,
    pub(crate) force: bool,
    pub(crate) dry_run: bool,
}

pub(crate) fn clean(root: &Path, args: &CleanArgs, json: bool) -> Result<()> {
    if args.runs.is_empty() && !args.all && args.older_than.is_none() && !args.cache {
        bail!("say what to remove: `pymw clean RUN...`, `--all`, `--older-than 7d` or `--cache`");
    }
    let min_age = match &args.older_than {
        Some(text) => Some(pymw_store::format::parse_age(text).with_context(|| {
            format!("`{text}` is not an age: use a number and s, m, h, d or w (7d)")
        })?),
        None => None,
    };
    let mut targets: Vec<String> = args.runs.clone();
    if args.all || min_age.is_some() {
        for listing in list_runs(root)? {
            let old_enough = match (min_age, &listing.info) {
                (Some(age), Some(info)) => pymw_store::age_ns(info.updated_ns) >= age,
                (Some(_), None) => false,
                (None, _) => true,
            };
            if old_enough && !targets.contains(&listing.name) {
                targets.push(listing.name);
            }
        }
    }
    #[derive(Serialize)]
    struct Removed {
        run: String,
        bytes: u64,
        removed: bool,
        error: Option<String>,
    }
    let mut results = Vec::new();
    for run in &targets {
        let dir = root.join(run);
        let outcome = if args.dry_run {
            match pymw_store::lock_holder(&dir) {
                Some(holder) if !args.force => Err(format!("in use by {holder}")),
                _ if !dir.join(pymw_store::DB_FILE).exists() => {
                    Err(format!("no run named `{run}`"))
                }
                _ => Ok(pymw_store::dir_size(&dir)),
            }
        } else {
            remove_run(root, run, args.force).map_err(|e| e.to_string())
        };
        results.push(match outcome {
            Ok(bytes) => Removed {
                run: run.clone(),
                bytes,
                removed: !args.dry_run,
                error: None,
            },
            Err(error) => Removed {
                run: run.clone(),
                bytes: 0,
                removed: false,
                error: Some(error),
            },
        });
    }
    if args.cache {
        let mut bytes_freed = 0;
        let mut error = None;
        for name in [
            pymw_store::CACHE_FILE,
            "cache.sqlite-wal",
            "cache.sqlite-shm",
            "cache-values",
        ] {
            let path: PathBuf = root.join(name);
            if !path.exists() {
                continue;
            }
            bytes_freed += if path.is_dir() {
                pymw_store::dir_size(&path)
            } else {
                path.metadata().map_or(0, |m| m.len())
            };
            if !args.dry_run {
                let removed = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                if let Err(e) = removed {
                    error = Some(format!("{}: {e}", path.display()));
                }
            }
        }
        results.push(Removed {
            run: "(result cache)".into(),
            bytes: bytes_freed,
            removed: !args.dry_run && error.is_none(),
            error,
        });
    }
    let failures = results.iter().filter(|r| r.error.is_some()).count();
    if json {
        print_json(&results)?;
    } else {
        let mut out = String::new();
        if results.is_empty() {
            out.push_str("nothing to remove\n");
        }
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        let mut total = 0;
        for r in &results {
            match &r.error {
                None => {
                    total += r.bytes;
                    out.push_str(&truncate(
                        &format!("{verb} {} ({})", r.run, bytes(r.bytes)),
                        WIDTH,
                    ));
                    out.push('\n');
                }
                Some(e) => {
                    indent(&mut out, "", &format!("kept {}: {e}", r.run), WIDTH);
                }
            }
        }
        if results.len() > 1 {
            out.push_str(&format!("{verb} {} in all\n", bytes(total)));
        }
        emit(&out)?;
    }
    if failures > 0 {
        bail!("{failures} could not be removed (see above)");
    }
    Ok(())
}
