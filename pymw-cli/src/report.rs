//! The HTML report: one self-contained file (inline CSS and SVG, no script,
//! nothing fetched) with a timeline of attempts per host and slot, a
//! histogram of task run times, throughput over time, failures by cause and
//! summary tables.

use anyhow::Result;
use pymw_store::format::{bytes, count, duration_ns, utc};
use pymw_store::{AttemptState, Counts, FailureKind, RunInfo, RunReader, TaskState};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fmt::Write;

/// One attempt on the timeline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    host: u32,
    start: u64,
    end: u64,
    state: AttemptState,
    position: u64,
}

#[derive(Debug, Default, Clone)]
struct HostStats {
    attempts: u64,
    done: u64,
    failed: u64,
    lost: u64,
    busy_ns: u64,
}

#[derive(Debug, Default, Clone)]
struct KindStats {
    tasks: u64,
    done: u64,
    failed: u64,
    wall_ns: u64,
    timed: u64,
}

#[derive(Debug, Clone)]
struct FailureGroup {
    kind: FailureKind,
    message: String,
    count: u64,
    example: u64,
    final_failure: bool,
}

/// What the report shows, gathered in one pass over the store.
#[derive(Debug)]
pub(crate) struct Report {
    info: RunInfo,
    counts: Counts,
    pub(crate) tasks: u64,
    pub(crate) attempts: Vec<Span>,
    hosts: Vec<String>,
    host_stats: Vec<HostStats>,
    kinds: BTreeMap<String, KindStats>,
    finishes: Vec<(u64, bool)>,
    run_times: Vec<u64>,
    failures: Vec<FailureGroup>,
    lost_retried: u64,
    cpu_ns: u64,
    cpu_wall_ns: u64,
    peak_rss_kib: u64,
    cached: u64,
    first_ns: Option<u64>,
    last_ns: Option<u64>,
}

pub(crate) fn build(reader: &RunReader) -> Result<Report> {
    let info = reader.info()?;
    let counts = reader.counts()?;
    let mut report = Report {
        info,
        counts,
        tasks: 0,
        attempts: Vec::new(),
        hosts: Vec::new(),
        host_stats: Vec::new(),
        kinds: BTreeMap::new(),
        finishes: Vec::new(),
        run_times: Vec::new(),
        failures: Vec::new(),
        lost_retried: 0,
        cpu_ns: 0,
        cpu_wall_ns: 0,
        peak_rss_kib: 0,
        cached: 0,
        first_ns: None,
        last_ns: None,
    };
    let mut host_index: HashMap<String, u32> = HashMap::new();
    let mut groups: HashMap<(FailureKind, String, bool), FailureGroup> = HashMap::new();
    reader.scan(|task, attempts| {
        report.tasks += 1;
        let kind = report.kinds.entry(task.task.clone()).or_default();
        kind.tasks += 1;
        if let Some(s) = task.submitted_ns {
            report.first_ns = Some(report.first_ns.map_or(s, |f| f.min(s)));
        }
        if let Some(f) = task.finished_ns {
            report.last_ns = Some(report.last_ns.map_or(f, |l| l.max(f)));
            match task.state {
                TaskState::Done => report.finishes.push((f, true)),
                TaskState::Failed => report.finishes.push((f, false)),
                _ => {}
            }
        }
        match task.state {
            TaskState::Done => kind.done += 1,
            TaskState::Failed => kind.failed += 1,
            _ => {}
        }
        for (i, a) in attempts.iter().enumerate() {
            let last = i + 1 == attempts.len();
            let host_name = a.host.clone().unwrap_or_default();
            let host = match host_index.get(&host_name) {
                Some(&h) => h,
                None => {
                    let h = report.hosts.len() as u32;
                    host_index.insert(host_name.clone(), h);
                    report.hosts.push(host_name);
                    report.host_stats.push(HostStats::default());
                    h
                }
            };
            let stats = &mut report.host_stats[host as usize];
            if a.state == AttemptState::Cached {
                report.cached += 1;
            }
            let ran = !matches!(
                a.state,
                AttemptState::Cached | AttemptState::Cancelled | AttemptState::Queued
            );
            if ran {
                stats.attempts += 1;
            }
            match a.state {
                AttemptState::Done => stats.done += 1,
                AttemptState::Failed | AttemptState::TimedOut => stats.failed += 1,
                AttemptState::Lost => stats.lost += 1,
                _ => {}
            }
            if let (Some(start), true) = (a.started_ns, ran) {
                // Attempts still running end "now"; see below.
                let end = a.finished_ns.or_else(|| a.wall_ns.map(|w| start + w));
                if let Some(end) = end {
                    stats.busy_ns += end.saturating_sub(start);
                    report.last_ns = Some(report.last_ns.map_or(end, |l| l.max(end)));
                }
                report.first_ns = Some(report.first_ns.map_or(start, |f| f.min(start)));
                report.last_ns = Some(report.last_ns.map_or(start, |l| l.max(start)));
                report.attempts.push(Span {
                    host,
                    start,
                    end: end.map_or(u64::MAX, |e| e.max(start)),
                    state: a.state,
                    position: task.position,
                });
            }
            if a.state == AttemptState::Done
                && let Some(wall) = a.wall_ns
            {
                report.run_times.push(wall);
                let kind = report.kinds.get_mut(&task.task).expect("inserted above");
                kind.wall_ns += wall;
                kind.timed += 1;
                if let Some(cpu) = a.cpu_ns {
                    report.cpu_ns += cpu;
                    report.cpu_wall_ns += wall;
                }
            }
            report.peak_rss_kib = report.peak_rss_kib.max(a.peak_rss_kib.unwrap_or(0));
            if let Some(f) = &a.failure {
                if f.kind == FailureKind::Cancelled {
                    continue;
                }
                let final_failure = last && task.state == TaskState::Failed;
                if !final_failure {
                    if a.state == AttemptState::Lost {
                        report.lost_retried += 1;
                    } else {
                        continue;
                    }
                }
                let message = normalise(&f.message);
                groups
                    .entry((f.kind, message.clone(), final_failure))
                    .or_insert_with(|| FailureGroup {
                        kind: f.kind,
                        message,
                        count: 0,
                        example: task.position,
                        final_failure,
                    })
                    .count += 1;
            }
        }
    })?;
    // Attempts without an end run until now while a master runs the run;
    // in a run nobody runs, until its last recorded event.
    let open_end = if report.info.state == pymw_store::RunState::Running {
        let now = pymw_store::now_ns();
        report.last_ns = Some(report.last_ns.map_or(now, |l| l.max(now)));
        now
    } else {
        report.last_ns.unwrap_or(0)
    };
    for span in &mut report.attempts {
        if span.end == u64::MAX {
            span.end = open_end.max(span.start);
            report.host_stats[span.host as usize].busy_ns += span.end - span.start;
        }
    }
    report.failures = groups.into_values().collect();
    report
        .failures
        .sort_by(|a, b| b.count.cmp(&a.count).then(a.message.cmp(&b.message)));
    report.run_times.sort_unstable();
    report.finishes.sort_unstable();
    report.attempts.sort_by_key(|s| (s.host, s.start));
    Ok(report)
}

/// Groups messages that differ only in numbers ("after 10017 iterations").
fn normalise(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_number = false;
    for c in message.chars().take(300) {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// Colours of attempt states (and their legend names).
fn colour(state: AttemptState) -> &'static str {
    match state {
        AttemptState::Done => "#2a9d8f",
        AttemptState::Cached => "#8ecae6",
        AttemptState::Failed => "#e63946",
        AttemptState::Lost => "#f4a261",
        AttemptState::TimedOut => "#9b5de5",
        AttemptState::Cancelled => "#adb5bd",
        AttemptState::Running | AttemptState::Queued => "#457b9d",
    }
}

fn kind_colour(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::TaskError => "#e63946",
        FailureKind::Panic => "#b5179e",
        FailureKind::Lost => "#f4a261",
        FailureKind::TimedOut => "#9b5de5",
        FailureKind::Decode | FailureKind::VersionSkew | FailureKind::UnknownTask => "#6d597a",
        FailureKind::Backend => "#457b9d",
        FailureKind::Cancelled | FailureKind::Other => "#adb5bd",
    }
}

/// 1-2-5 steps covering `[0, max]` with about `n` ticks.
fn nice_step(max: f64, n: usize) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let raw = max / n as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let fraction = raw / magnitude;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// A step of a time axis in nanoseconds: a round duration.
fn time_step(span_ns: u64, n: u64) -> u64 {
    const S: u64 = 1_000_000_000;
    const STEPS: [u64; 38] = [
        1_000,
        2_000,
        5_000,
        10_000,
        20_000,
        50_000,
        100_000,
        200_000,
        500_000,
        1_000_000,
        2_000_000,
        5_000_000,
        10_000_000,
        20_000_000,
        50_000_000,
        100_000_000,
        200_000_000,
        500_000_000,
        S,
        2 * S,
        5 * S,
        10 * S,
        15 * S,
        30 * S,
        60 * S,
        120 * S,
        300 * S,
        600 * S,
        900 * S,
        1800 * S,
        3600 * S,
        7200 * S,
        10800 * S,
        21600 * S,
        43200 * S,
        86400 * S,
        172800 * S,
        604800 * S,
    ];
    let target = span_ns / n.max(1);
    let week = 7 * 86400 * S;
    STEPS
        .iter()
        .copied()
        .find(|&s| s >= target)
        .unwrap_or_else(|| target.div_ceil(week) * week)
}

/// "0", "30s", "5m", "1h30m", "2d".
fn elapsed_label(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    if ns == 0 {
        "0".into()
    } else if ns < 1_000_000_000 {
        duration_ns(ns).replace(".0 ", "").replace(' ', "")
    } else if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        if s.is_multiple_of(60) {
            format!("{}m", s / 60)
        } else {
            format!("{}m{:02}s", s / 60, s % 60)
        }
    } else if s < 86400 {
        if s.is_multiple_of(3600) {
            format!("{}h", s / 3600)
        } else {
            format!("{}h{:02}m", s / 3600, s % 3600 / 60)
        }
    } else {
        format!(
            "{}d{}",
            s / 86400,
            if s % 86400 >= 3600 {
                format!("{}h", s % 86400 / 3600)
            } else {
                String::new()
            }
        )
    }
}

fn number_label(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", trim_float(v / 1e6))
    } else if v >= 1e4 {
        format!("{}k", trim_float(v / 1e3))
    } else {
        trim_float(v)
    }
}

fn trim_float(v: f64) -> String {
    let text = format!("{v:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// An SVG drawing with a plot area inside margins.
struct Plot {
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    body: String,
}

impl Plot {
    fn new(width: f64, height: f64, left: f64, right: f64, top: f64, bottom: f64) -> Plot {
        Plot {
            width,
            height,
            left,
            right,
            top,
            bottom,
            body: String::new(),
        }
    }
    fn inner_width(&self) -> f64 {
        self.width - self.left - self.right
    }
    fn inner_height(&self) -> f64 {
        self.height - self.top - self.bottom
    }
    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, extra: &str) {
        let _ = write!(
            self.body,
            r#"<rect x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{h:.2}" fill="{fill}"{extra}/>"#
        );
    }
    fn text(&mut self, x: f64, y: f64, anchor: &str, class: &str, text: &str) {
        let _ = write!(
            self.body,
            r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}" class="{class}">{}</text>"#,
            esc(text)
        );
    }
    fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, class: &str) {
        let _ = write!(
            self.body,
            r#"<line x1="{x1:.2}" y1="{y1:.2}" x2="{x2:.2}" y2="{y2:.2}" class="{class}"/>"#
        );
    }
    /// Horizontal grid lines and labels of a value axis `[0, max]`.
    fn y_axis(&mut self, max: f64, label: &str) -> f64 {
        let step = nice_step(max, 5);
        let top = (max / step).ceil().max(1.0) * step;
        let mut v = 0.0;
        while v <= top + step * 0.01 {
            let y = self.top + self.inner_height() * (1.0 - v / top);
            self.line(self.left, y, self.width - self.right, y, "grid");
            self.text(self.left - 6.0, y + 4.0, "end", "tick", &number_label(v));
            v += step;
        }
        let (x, y) = (14.0, self.top + self.inner_height() / 2.0);
        let _ = write!(
            self.body,
            r#"<text x="{x}" y="{y:.1}" text-anchor="middle" class="axis" transform="rotate(-90 {x} {y:.1})">{}</text>"#,
            esc(label)
        );
        top
    }
    /// A time axis along the bottom for `[0, span]` nanoseconds.
    fn time_axis(&mut self, span: u64, label: &str) {
        let step = time_step(span, 8);
        let mut t = 0;
        let y = self.height - self.bottom;
        while t <= span {
            let x = self.left + self.inner_width() * t as f64 / span.max(1) as f64;
            self.line(x, self.top, x, y, "vgrid");
            self.line(x, y, x, y + 4.0, "axisline");
            self.text(x, y + 16.0, "middle", "tick", &elapsed_label(t));
            t += step;
        }
        self.line(self.left, y, self.width - self.right, y, "axisline");
        self.text(
            self.left + self.inner_width() / 2.0,
            self.height - 4.0,
            "middle",
            "axis",
            label,
        );
    }
    fn finish(self, title: &str) -> String {
        format!(
            r#"<svg viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg">{body}</svg>"#,
            w = self.width,
            h = self.height,
            t = esc(title),
            body = self.body
        )
    }
}

/// Lanes of the timeline: (host, slot) rows, or one row per host when
/// there are too many slots to draw.
struct Lanes {
    /// Each lane's label (empty for a host's later slots) and whether it
    /// starts a host.
    labels: Vec<(String, bool)>,
    /// Lane of each attempt (same order as `report.attempts`).
    of: Vec<u32>,
    per_host: bool,
}

const MAX_LANES: usize = 64;

/// "node2" before "node10".
fn natural_key(name: &str) -> (String, u64, String) {
    let digits_at = name
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(name.len());
    let rest = &name[digits_at..];
    let digits_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let number = rest[..digits_end].parse().unwrap_or(0);
    (
        name[..digits_at].to_string(),
        number,
        rest[digits_end..].to_string(),
    )
}

fn host_label(report: &Report, host: u32) -> String {
    match report.hosts[host as usize].as_str() {
        "" => "local".to_string(),
        name => name.to_string(),
    }
}

fn lanes(report: &Report) -> Lanes {
    // Attempts are sorted by (host, start): pack each host's attempts into
    // slots, greedily (the slot that freed up first, if it is free).
    struct Host {
        host: u32,
        range: std::ops::Range<usize>,
        slots: usize,
        slot_of: Vec<u32>,
        busy: u64,
    }
    let mut hosts: Vec<Host> = Vec::new();
    let mut start = 0;
    while start < report.attempts.len() {
        let host = report.attempts[start].host;
        let mut end = start;
        let mut free: BinaryHeap<Reverse<(u64, u32)>> = BinaryHeap::new();
        let mut slots = 0u32;
        let mut slot_of = Vec::new();
        let mut busy = 0;
        while end < report.attempts.len() && report.attempts[end].host == host {
            let span = &report.attempts[end];
            busy += span.end - span.start;
            let slot = match free.peek() {
                Some(Reverse((at, slot))) if *at <= span.start => {
                    let slot = *slot;
                    free.pop();
                    slot
                }
                _ => {
                    slots += 1;
                    slots - 1
                }
            };
            free.push(Reverse((span.end, slot)));
            slot_of.push(slot);
            end += 1;
        }
        hosts.push(Host {
            host,
            range: start..end,
            slots: slots as usize,
            slot_of,
            busy,
        });
        start = end;
    }
    let total: usize = hosts.iter().map(|h| h.slots).sum();
    let per_host = total > MAX_LANES;
    let mut of = vec![0u32; report.attempts.len()];
    let mut labels = Vec::new();
    // Which hosts get their own rows: all of them, or the busiest.
    let own = if per_host && hosts.len() > MAX_LANES {
        MAX_LANES - 1
    } else {
        hosts.len()
    };
    let mut order: Vec<usize> = (0..hosts.len()).collect();
    order.sort_by_key(|&i| Reverse(hosts[i].busy));
    let (shown, rest) = order.split_at(own);
    let mut shown = shown.to_vec();
    shown.sort_by_key(|&i| natural_key(&host_label(report, hosts[i].host)));
    let mut lane = 0u32;
    for &i in &shown {
        let host = &hosts[i];
        let name = host_label(report, host.host);
        if per_host {
            labels.push((name, true));
            for index in host.range.clone() {
                of[index] = lane;
            }
            lane += 1;
        } else {
            for slot in 0..host.slots {
                labels.push((
                    if slot == 0 {
                        name.clone()
                    } else {
                        String::new()
                    },
                    slot == 0,
                ));
            }
            for (index, slot) in host.range.clone().zip(&host.slot_of) {
                of[index] = lane + slot;
            }
            lane += host.slots as u32;
        }
    }
    if !rest.is_empty() {
        labels.push((format!("{} more hosts", rest.len()), true));
        for &i in rest {
            for index in hosts[i].range.clone() {
                of[index] = lane;
            }
        }
    }
    Lanes {
        labels,
        of,
        per_host,
    }
}

const DRAW_EACH_MAX: usize = 6000;

/// Attempt states as the shaded timeline groups them.
fn state_group(state: AttemptState) -> usize {
    match state {
        AttemptState::Done | AttemptState::Cached => 0,
        AttemptState::Failed => 1,
        AttemptState::Lost => 2,
        AttemptState::TimedOut => 3,
        _ => 4,
    }
}

const GROUP_STATES: [AttemptState; 5] = [
    AttemptState::Done,
    AttemptState::Failed,
    AttemptState::Lost,
    AttemptState::TimedOut,
    AttemptState::Running,
];

fn gantt(report: &Report) -> String {
    let (Some(first), Some(last)) = (report.first_ns, report.last_ns) else {
        return "<p class=\"empty\">No attempt has started yet.</p>".into();
    };
    if report.attempts.is_empty() {
        return "<p class=\"empty\">No attempt has started yet.</p>".into();
    }
    let span = last.saturating_sub(first).max(1);
    let lanes = lanes(report);
    let dense = lanes.labels.len() > 32;
    let lane_h = if dense { 12.0 } else { 16.0 };
    let height = 30.0 + lanes.labels.len() as f64 * lane_h + 36.0;
    let mut plot = Plot::new(1100.0, height, 110.0, 16.0, 24.0, 36.0);
    plot.time_axis(span, "time since the run started");
    let (w, left) = (plot.inner_width(), plot.left);
    let x_of = |t: u64| left + w * (t.saturating_sub(first)) as f64 / span as f64;
    // Lane labels and host separators.
    let label_class = if dense { "lane small" } else { "lane" };
    for (i, (label, first_of_host)) in lanes.labels.iter().enumerate() {
        let y = plot.top + i as f64 * lane_h;
        if *first_of_host && i > 0 && !lanes.per_host {
            plot.line(plot.left - 100.0, y, plot.width - plot.right, y, "sep");
        }
        if !label.is_empty() {
            let label = crate::text::truncate(label, 16);
            plot.text(
                plot.left - 8.0,
                y + lane_h * 0.5 + 3.5,
                "end",
                label_class,
                &label,
            );
        }
    }
    let bar_h = (lane_h - 3.0).max(2.0);
    if report.attempts.len() <= DRAW_EACH_MAX {
        // Rows of a host (per-host mode) may overlap: translucent bars.
        let opacity = if lanes.per_host {
            r#" fill-opacity="0.75""#
        } else {
            ""
        };
        for (span_rec, lane) in report.attempts.iter().zip(&lanes.of) {
            let x = x_of(span_rec.start);
            let width = (x_of(span_rec.end) - x).max(0.8);
            let y = plot.top + *lane as f64 * lane_h + 1.5;
            let title = format!(
                "<title>task {} · {} · {}</title>",
                span_rec.position,
                span_rec.state.as_str(),
                duration_ns(span_rec.end - span_rec.start)
            );
            let _ = write!(
                plot.body,
                r#"<rect x="{x:.2}" y="{y:.2}" width="{width:.2}" height="{bar_h:.1}" rx="1.5" fill="{}"{opacity}>{title}</rect>"#,
                colour(span_rec.state)
            );
        }
    } else {
        // Too many to draw one by one: shade each row by how busy it was in
        // each of 400 time bins, coloured by what took most of that time.
        const BINS: usize = 400;
        let lanes_n = lanes.labels.len();
        let mut busy = vec![[0f64; 5]; lanes_n * BINS];
        let bin_ns = span as f64 / BINS as f64;
        for (s, lane) in report.attempts.iter().zip(&lanes.of) {
            let group = state_group(s.state);
            let a = (s.start - first) as f64;
            let b = (s.end - first) as f64;
            let (first_bin, last_bin) =
                ((a / bin_ns) as usize, ((b / bin_ns) as usize).min(BINS - 1));
            for bin in first_bin.min(BINS - 1)..=last_bin {
                let lo = bin as f64 * bin_ns;
                let overlap = (b.min(lo + bin_ns) - a.max(lo)).max(0.0);
                busy[*lane as usize * BINS + bin][group] += overlap;
            }
        }
        for lane in 0..lanes_n {
            let cells = &busy[lane * BINS..(lane + 1) * BINS];
            // A slot is full when busy all the time; a host row, at its peak.
            let capacity = if lanes.per_host {
                cells
                    .iter()
                    .map(|c| c.iter().sum::<f64>())
                    .fold(bin_ns, f64::max)
            } else {
                bin_ns
            };
            let y = plot.top + lane as f64 * lane_h + 1.5;
            for (bin, cell) in cells.iter().enumerate() {
                let total: f64 = cell.iter().sum();
                if total <= 0.0 {
                    continue;
                }
                let group = (0..5)
                    .max_by(|&a, &b| cell[a].total_cmp(&cell[b]))
                    .unwrap_or(0);
                let fill = (total / capacity).min(1.0);
                let x = plot.left + w * bin as f64 / BINS as f64;
                plot.rect(
                    x,
                    y,
                    w / BINS as f64 + 0.3,
                    bar_h,
                    colour(GROUP_STATES[group]),
                    &format!(r#" fill-opacity="{:.2}""#, 0.15 + 0.85 * fill),
                );
            }
        }
    }
    plot.finish("timeline of attempts per host")
}

fn histogram(report: &Report) -> String {
    let times = &report.run_times;
    if times.is_empty() {
        return "<p class=\"empty\">No task has finished with a value yet.</p>".into();
    }
    let min = times[0].max(1) as f64;
    let max = times[times.len() - 1].max(1) as f64;
    let log = max / min >= 50.0;
    const BINS: usize = 40;
    let (lo, hi) = if log {
        (min.log10(), max.log10() + 1e-9)
    } else {
        (0.0, max * 1.0001)
    };
    let bin_of = |v: f64| {
        let x = if log { v.max(1.0).log10() } else { v };
        (((x - lo) / (hi - lo)) * BINS as f64).clamp(0.0, BINS as f64 - 1.0) as usize
    };
    let mut bins = [0u64; BINS];
    for &t in times {
        bins[bin_of(t as f64)] += 1;
    }
    let mut plot = Plot::new(540.0, 300.0, 56.0, 16.0, 16.0, 44.0);
    let top = plot.y_axis(*bins.iter().max().unwrap_or(&1) as f64, "tasks");
    let w = plot.inner_width() / BINS as f64;
    let h = plot.inner_height();
    for (i, &n) in bins.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let bar = h * n as f64 / top;
        let x = plot.left + i as f64 * w;
        let (a, b) = if log {
            (
                10f64.powf(lo + (hi - lo) * i as f64 / BINS as f64),
                10f64.powf(lo + (hi - lo) * (i + 1) as f64 / BINS as f64),
            )
        } else {
            (
                lo + (hi - lo) * i as f64 / BINS as f64,
                lo + (hi - lo) * (i + 1) as f64 / BINS as f64,
            )
        };
        let title = format!(
            "<title>{} tasks between {} and {}</title>",
            count(n),
            duration_ns(a as u64),
            duration_ns(b as u64)
        );
        let _ = write!(
            plot.body,
            r#"<rect x="{:.2}" y="{:.2}" width="{:.2}" height="{bar:.2}" fill="{}" rx="1">{title}</rect>"#,
            x + 0.5,
            plot.top + h - bar,
            (w - 1.0).max(0.5),
            colour(AttemptState::Done)
        );
    }
    // X ticks.
    let base = plot.height - plot.bottom;
    plot.line(plot.left, base, plot.width - plot.right, base, "axisline");
    let (left, inner) = (plot.left, plot.inner_width());
    let x_of = |v: f64| {
        let x = if log { v.max(1.0).log10() } else { v };
        left + inner * (x - lo) / (hi - lo)
    };
    let mut ticks = Vec::new();
    if log {
        let mut decade = 10f64.powf(lo.floor());
        while decade <= 10f64.powf(hi) {
            for m in [1.0, 2.0, 5.0] {
                let v = decade * m;
                if v >= 10f64.powf(lo) && v <= 10f64.powf(hi) {
                    ticks.push(v);
                }
            }
            decade *= 10.0;
        }
        if ticks.len() > 9 {
            ticks.retain(|v| {
                (v.log10().fract()).abs() < 1e-9 || (v.log10().fract() - 1.0).abs() < 1e-9
            });
        }
    } else {
        let step = time_step(hi as u64, 6) as f64;
        let mut v = 0.0;
        while v <= hi {
            ticks.push(v);
            v += step;
        }
    }
    for v in ticks {
        let x = x_of(v);
        plot.line(x, base, x, base + 4.0, "axisline");
        plot.text(x, base + 16.0, "middle", "tick", &elapsed_label(v as u64));
    }
    // Median and 95th percentile.
    let pick = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    let mut label_end = f64::MIN;
    let mut label_y = plot.top + 10.0;
    for (q, name) in [(0.5, "median"), (0.95, "p95")] {
        let v = pick(q);
        let x = x_of(v as f64);
        plot.line(x, plot.top, x, base, "marker");
        let label = format!("{name} {}", duration_ns(v));
        let width = 6.5 * label.chars().count() as f64;
        // Right of its marker, unless it would leave the plot: then left.
        let left_of_marker = x + 4.0 + width > plot.width - plot.right;
        let (start, anchor, text_x) = if left_of_marker {
            (x - 4.0 - width, "end", x - 4.0)
        } else {
            (x + 4.0, "start", x + 4.0)
        };
        // A label that would run into the previous one goes a line lower.
        if start < label_end + 4.0 {
            label_y += 14.0;
        }
        plot.text(text_x, label_y, anchor, "marker-label", &label);
        label_end = start + width;
    }
    let scale = if log {
        "run time (log scale)"
    } else {
        "run time"
    };
    plot.text(
        plot.left + plot.inner_width() / 2.0,
        plot.height - 4.0,
        "middle",
        "axis",
        scale,
    );
    plot.finish("histogram of task run times")
}

fn throughput(report: &Report) -> String {
    let finishes = &report.finishes;
    let (Some(first), Some(last)) = (report.first_ns, report.last_ns) else {
        return "<p class=\"empty\">No task has finished yet.</p>".into();
    };
    if finishes.is_empty() {
        return "<p class=\"empty\">No task has finished yet.</p>".into();
    }
    let span = last.saturating_sub(first).max(1);
    const BINS: usize = 60;
    let bin_ns = span as f64 / BINS as f64;
    let mut bins = [[0u64; 2]; BINS];
    for &(t, ok) in finishes {
        let bin = (((t.saturating_sub(first)) as f64 / bin_ns) as usize).min(BINS - 1);
        bins[bin][usize::from(!ok)] += 1;
    }
    let per_s = |n: u64| n as f64 / (bin_ns / 1e9);
    let peak = bins.iter().map(|[a, b]| per_s(a + b)).fold(0.0, f64::max);
    let mut plot = Plot::new(540.0, 300.0, 56.0, 44.0, 16.0, 44.0);
    let top = plot.y_axis(peak, "tasks per second");
    plot.time_axis(span, "time since the run started");
    let w = plot.inner_width() / BINS as f64;
    let h = plot.inner_height();
    let base = plot.top + h;
    for (i, [done, failed]) in bins.iter().enumerate() {
        let x = plot.left + i as f64 * w + 0.5;
        let dh = h * per_s(*done) / top;
        let fh = h * per_s(*failed) / top;
        let title = format!(
            "<title>{} done, {} failed in {}</title>",
            count(*done),
            count(*failed),
            duration_ns(bin_ns as u64)
        );
        if *done > 0 {
            let _ = write!(
                plot.body,
                r#"<rect x="{x:.2}" y="{:.2}" width="{:.2}" height="{dh:.2}" fill="{}">{title}</rect>"#,
                base - dh,
                (w - 1.0).max(0.5),
                colour(AttemptState::Done)
            );
        }
        if *failed > 0 {
            let _ = write!(
                plot.body,
                r#"<rect x="{x:.2}" y="{:.2}" width="{:.2}" height="{fh:.2}" fill="{}">{title}</rect>"#,
                base - dh - fh,
                (w - 1.0).max(0.5),
                colour(AttemptState::Failed)
            );
        }
    }
    // Cumulative share finished, on the right axis.
    let total = finishes.len() as f64;
    let mut points = format!("{:.1},{:.1}", plot.left, base);
    let mut sum = 0u64;
    for (i, [done, failed]) in bins.iter().enumerate() {
        sum += done + failed;
        let x = plot.left + (i + 1) as f64 * w;
        let y = base - h * sum as f64 / total;
        let _ = write!(points, " {x:.1},{y:.1}");
    }
    let _ = write!(
        plot.body,
        r#"<polyline points="{points}" class="cumulative"/>"#
    );
    for percent in [0, 50, 100] {
        let y = base - h * percent as f64 / 100.0;
        plot.text(
            plot.width - plot.right + 6.0,
            y + 4.0,
            "start",
            "tick cum",
            &format!("{percent}%"),
        );
    }
    plot.finish("throughput over time")
}

fn failures_chart(report: &Report) -> String {
    if report.failures.is_empty() {
        return "<p class=\"empty good\">No attempt failed.</p>".into();
    }
    let mut by_kind: BTreeMap<(bool, FailureKind), u64> = BTreeMap::new();
    for g in &report.failures {
        *by_kind.entry((!g.final_failure, g.kind)).or_default() += g.count;
    }
    let mut rows: Vec<((bool, FailureKind), u64)> = by_kind.into_iter().collect();
    rows.sort_by_key(|((retried, _), n)| (*retried, Reverse(*n)));
    let row_h = 30.0;
    let mut plot = Plot::new(
        540.0,
        20.0 + rows.len() as f64 * row_h + 10.0,
        150.0,
        60.0,
        10.0,
        10.0,
    );
    let max = rows.iter().map(|(_, n)| *n).max().unwrap_or(1) as f64;
    let w = plot.inner_width();
    for (i, ((retried, kind), n)) in rows.iter().enumerate() {
        let y = plot.top + i as f64 * row_h;
        let label = if *retried {
            format!("{} (retried)", kind.label())
        } else {
            kind.label().to_string()
        };
        plot.text(
            plot.left - 10.0,
            y + row_h / 2.0 + 4.0,
            "end",
            "lane",
            &label,
        );
        let bar = (w * *n as f64 / max).max(2.0);
        let opacity = if *retried {
            r#" fill-opacity="0.45""#
        } else {
            ""
        };
        plot.rect(
            plot.left,
            y + 5.0,
            bar,
            row_h - 10.0,
            kind_colour(*kind),
            &format!(r#" rx="3"{opacity}"#),
        );
        plot.text(
            plot.left + bar + 6.0,
            y + row_h / 2.0 + 4.0,
            "start",
            "value",
            &count(*n),
        );
    }
    plot.finish("failures by cause")
}

fn card(label: &str, value: &str, note: &str, class: &str) -> String {
    format!(
        r#"<div class="card {class}"><div class="label">{}</div><div class="value">{}</div><div class="note">{}</div></div>"#,
        esc(label),
        esc(value),
        esc(note)
    )
}

fn percent(n: u64, of: u64) -> String {
    if of == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * n as f64 / of as f64)
    }
}

fn legend(items: &[(&str, &str)]) -> String {
    let mut out = String::from(r#"<div class="legend">"#);
    for (colour, name) in items {
        let _ = write!(
            out,
            r#"<span><i style="background:{colour}"></i>{}</span>"#,
            esc(name)
        );
    }
    out.push_str("</div>");
    out
}

const CSS: &str = r#"
:root { --ink: #1d2330; --muted: #5c6677; --line: #e3e7ee; --bg: #f5f7fa; --card: #fff; --accent: #2a9d8f; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 28px 48px; }
header { display: flex; align-items: baseline; gap: 16px; flex-wrap: wrap; margin-bottom: 4px; }
h1 { font-size: 26px; margin: 0; letter-spacing: -0.01em; }
h1 small { color: var(--muted); font-weight: 500; font-size: 15px; margin-left: 8px; }
.pill { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 12px; font-weight: 600;
  text-transform: uppercase; letter-spacing: .04em; }
.pill.finished { background: #d8f3ee; color: #1b6e64; } .pill.running { background: #dbe9f6; color: #2c5d86; }
.pill.interrupted { background: #fde2e4; color: #a4161a; } .pill.stopped { background: #fff1d6; color: #8a5a00; }
.meta { color: var(--muted); margin: 6px 0 22px; font-size: 13px; }
.meta code { background: #e9edf3; padding: 1px 5px; border-radius: 4px; font-size: 12px; }
.cards { display: grid; grid-template-columns: repeat(6, 1fr); gap: 12px; margin-bottom: 22px; }
.card { background: var(--card); border-radius: 10px; padding: 12px 14px; box-shadow: 0 1px 2px rgba(16,24,40,.06), 0 1px 3px rgba(16,24,40,.08); }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .05em; }
.card .value { font-size: 22px; font-weight: 650; margin-top: 2px; font-variant-numeric: tabular-nums; }
.card .note { color: var(--muted); font-size: 12px; }
.card.good .value { color: #1b6e64; } .card.bad .value { color: #c1121f; }
section { background: var(--card); border-radius: 12px; padding: 18px 20px 14px; margin-bottom: 20px;
  box-shadow: 0 1px 2px rgba(16,24,40,.06), 0 1px 3px rgba(16,24,40,.08); }
section h2 { font-size: 16px; margin: 0 0 2px; }
section p.caption { color: var(--muted); margin: 0 0 10px; font-size: 13px; }
.row { display: grid; grid-template-columns: 1fr 1fr; gap: 20px; }
.row section { margin-bottom: 0; }
.rowwrap { margin-bottom: 20px; }
.legend { display: flex; gap: 16px; flex-wrap: wrap; font-size: 12px; color: var(--muted); margin: 0 0 6px; }
.legend i { display: inline-block; width: 11px; height: 11px; border-radius: 3px; margin-right: 5px; vertical-align: -1px; }
svg { display: block; }
svg text { font-family: inherit; }
svg .tick { font-size: 11px; fill: #6b7485; font-variant-numeric: tabular-nums; }
svg .tick.cum { fill: #1d2330; }
svg .axis { font-size: 12px; fill: #5c6677; }
svg .lane { font-size: 11.5px; fill: #1d2330; }
svg .lane.small { font-size: 9.5px; }
svg .value { font-size: 12px; fill: #1d2330; font-weight: 600; }
svg .grid { stroke: #edf0f4; stroke-width: 1; }
svg .vgrid { stroke: #f1f3f7; stroke-width: 1; }
svg .sep { stroke: #d5dae2; stroke-width: 1; }
svg .axisline { stroke: #9aa3b2; stroke-width: 1; }
svg .marker { stroke: #1d2330; stroke-width: 1.2; stroke-dasharray: 4 3; }
svg .marker-label { font-size: 11px; fill: #1d2330; }
svg .cumulative { fill: none; stroke: #1d2330; stroke-width: 1.8; stroke-linejoin: round; }
table { border-collapse: collapse; width: 100%; font-size: 13px; font-variant-numeric: tabular-nums; }
th { text-align: left; color: var(--muted); font-weight: 600; font-size: 12px; text-transform: uppercase;
  letter-spacing: .04em; border-bottom: 1px solid var(--line); padding: 6px 8px; }
td { border-bottom: 1px solid var(--line); padding: 6px 8px; vertical-align: top; }
td.n, th.n { text-align: right; }
td.msg { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: 12px; word-break: break-word; }
.kind { display: inline-block; padding: 1px 7px; border-radius: 6px; color: #fff; font-size: 11px; font-weight: 600; white-space: nowrap; }
.empty { color: var(--muted); font-style: italic; margin: 10px 0 14px; }
.empty.good { color: #1b6e64; font-style: normal; font-weight: 600; }
footer { color: var(--muted); font-size: 12px; text-align: center; margin-top: 26px; }
@media (max-width: 900px) { .cards { grid-template-columns: repeat(3, 1fr); } .row { grid-template-columns: 1fr; } }
"#;

pub(crate) fn render(report: &Report) -> String {
    let info = &report.info;
    let c = &report.counts;
    let total = info.expected_tasks.unwrap_or(0).max(c.total());
    let span = report
        .first_ns
        .zip(report.last_ns)
        .map(|(f, l)| l.saturating_sub(f))
        .unwrap_or(0);
    let finished = c.finished();
    let rate = if span > 0 {
        finished as f64 / (span as f64 / 1e9)
    } else {
        0.0
    };
    let rate_text = if rate >= 1.0 {
        format!("{} /s", number_label((rate * 10.0).round() / 10.0))
    } else {
        format!("{} /min", number_label((rate * 600.0).round() / 10.0))
    };
    let pick = |q: f64| {
        let t = &report.run_times;
        (!t.is_empty()).then(|| t[((t.len() - 1) as f64 * q).round() as usize])
    };
    let mean = (!report.run_times.is_empty())
        .then(|| report.run_times.iter().sum::<u64>() / report.run_times.len() as u64);

    let mut html = String::with_capacity(256 * 1024);
    let _ = write!(
        html,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>pymw run {name}</title><style>{CSS}</style></head><body><main>"#,
        name = esc(&info.name)
    );
    let _ = write!(
        html,
        r#"<header><h1>{}<small>pymw run report</small></h1><span class="pill {state}">{state}</span></header>"#,
        esc(&info.name),
        state = info.state.as_str()
    );
    let mut meta = vec![
        format!(
            "backend <code>{}</code>",
            esc(info.backend.as_deref().unwrap_or("?"))
        ),
        format!("created {} UTC", utc(info.created_ns)),
        format!("last update {} UTC", utc(info.updated_ns)),
    ];
    if info.sessions > 1 {
        meta.push(format!(
            "{} sessions (resumed {} times)",
            info.sessions,
            info.sessions - 1
        ));
    }
    if let Some(binary) = &info.binary_path {
        meta.push(format!("binary <code>{}</code>", esc(binary)));
    }
    let _ = write!(html, r#"<p class="meta">{}</p>"#, meta.join(" · "));

    // Summary cards.
    html.push_str(r#"<div class="cards">"#);
    html.push_str(&card(
        "tasks",
        &count(total),
        &if c.queued + c.running > 0 {
            format!("{} queued, {} running", count(c.queued), count(c.running))
        } else {
            format!("{} attempts", count(report.attempts.len() as u64))
        },
        "",
    ));
    html.push_str(&card(
        "done",
        &count(c.done),
        &percent(c.done, total),
        "good",
    ));
    html.push_str(&card(
        "failed",
        &count(c.failed),
        &format!(
            "{} · {} lost attempts retried",
            percent(c.failed, total),
            count(report.lost_retried)
        ),
        if c.failed > 0 { "bad" } else { "" },
    ));
    html.push_str(&card(
        "elapsed",
        &duration_ns(span),
        &format!("{} finished", rate_text),
        "",
    ));
    html.push_str(&card(
        "task time",
        &pick(0.5).map_or("-".into(), duration_ns),
        &format!(
            "median · mean {} · p95 {}",
            mean.map_or("-".into(), duration_ns),
            pick(0.95).map_or("-".into(), duration_ns)
        ),
        "",
    ));
    let efficiency = if report.cpu_wall_ns > 0 {
        format!(
            "{:.0}% of wall time",
            100.0 * report.cpu_ns as f64 / report.cpu_wall_ns as f64
        )
    } else {
        "not measured".to_string()
    };
    html.push_str(&card(
        "CPU time",
        &if report.cpu_ns > 0 {
            duration_ns(report.cpu_ns)
        } else {
            "-".into()
        },
        &format!(
            "{efficiency} · peak RSS {}",
            bytes(report.peak_rss_kib * 1024)
        ),
        "",
    ));
    html.push_str("</div>");

    // Timeline.
    let hosts_named = report.hosts.iter().filter(|h| !h.is_empty()).count();
    let _ = write!(
        html,
        r#"<section><h2>Timeline</h2><p class="caption">Every attempt from start to end, {} ({} hosts{}). Hover a bar for its task.</p>"#,
        if lanes(report).per_host {
            "one row per host"
        } else {
            "one row per slot of each host"
        },
        hosts_named.max(1),
        if report.attempts.len() > DRAW_EACH_MAX {
            format!(
                "; {} attempts, drawn as how busy each row was",
                count(report.attempts.len() as u64)
            )
        } else {
            String::new()
        }
    );
    html.push_str(&legend(&[
        (colour(AttemptState::Done), "done"),
        (colour(AttemptState::Failed), "failed"),
        (colour(AttemptState::Lost), "lost (retried or failed)"),
        (colour(AttemptState::TimedOut), "timed out"),
        (colour(AttemptState::Running), "running"),
    ]));
    html.push_str(&gantt(report));
    html.push_str("</section>");

    // Histogram and throughput side by side.
    html.push_str(r#"<div class="row rowwrap">"#);
    let _ = write!(
        html,
        r#"<section><h2>Task run times</h2><p class="caption">Wall time of the {} attempts that returned a value.</p>{}</section>"#,
        count(report.run_times.len() as u64),
        histogram(report)
    );
    let _ = write!(
        html,
        r#"<section><h2>Throughput</h2><p class="caption">Tasks finished per second; the line is the share of all finished tasks (right axis).</p>{}{}</section>"#,
        legend(&[
            (colour(AttemptState::Done), "done"),
            (colour(AttemptState::Failed), "failed"),
            ("#1d2330", "cumulative")
        ]),
        throughput(report)
    );
    html.push_str("</div>");

    // Failures.
    html.push_str(r#"<div class="row rowwrap">"#);
    let _ = write!(
        html,
        r#"<section><h2>Failures by cause</h2><p class="caption">Tasks that failed, by the cause of their last attempt; lighter bars are lost attempts that were retried.</p>{}</section>"#,
        failures_chart(report)
    );
    html.push_str(r#"<section><h2>Most frequent errors</h2><p class="caption">Messages with numbers folded together (N); <code>pymw errors</code> lists every failed task with its stderr tail.</p>"#);
    if report.failures.is_empty() {
        html.push_str(r#"<p class="empty good">No attempt failed.</p>"#);
    } else {
        html.push_str(r#"<table><tr><th class="n">count</th><th>cause</th><th>message</th><th class="n">e.g. task</th></tr>"#);
        for g in report.failures.iter().take(10) {
            let _ = write!(
                html,
                r#"<tr><td class="n">{}</td><td><span class="kind" style="background:{}">{}</span></td><td class="msg">{}</td><td class="n">#{}</td></tr>"#,
                count(g.count),
                kind_colour(g.kind),
                esc(if g.final_failure {
                    g.kind.label()
                } else {
                    "lost, retried"
                }),
                esc(&crate::text::truncate(&g.message, 160)),
                g.example
            );
        }
        html.push_str("</table>");
    }
    html.push_str("</section></div>");

    // Hosts and tasks tables.
    html.push_str(r#"<div class="row rowwrap"><section><h2>Hosts</h2><p class="caption">Attempts per host, busiest first.</p><table><tr><th>host</th><th class="n">attempts</th><th class="n">done</th><th class="n">failed</th><th class="n">lost</th><th class="n">busy</th></tr>"#);
    let mut hosts: Vec<(usize, &HostStats)> = report
        .host_stats
        .iter()
        .enumerate()
        .filter(|(_, s)| s.attempts > 0)
        .collect();
    hosts.sort_by_key(|(_, s)| Reverse(s.busy_ns));
    for (i, s) in hosts.iter().take(20) {
        let name = match report.hosts[*i].as_str() {
            "" => "local",
            name => name,
        };
        let _ = write!(
            html,
            r#"<tr><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            esc(name),
            count(s.attempts),
            count(s.done),
            count(s.failed),
            count(s.lost),
            duration_ns(s.busy_ns)
        );
    }
    if hosts.len() > 20 {
        let _ = write!(
            html,
            r#"<tr><td colspan="6" class="empty">… and {} more hosts</td></tr>"#,
            hosts.len() - 20
        );
    }
    html.push_str(r#"</table></section><section><h2>Tasks</h2><p class="caption">Each registered task of the run.</p><table><tr><th>task</th><th class="n">tasks</th><th class="n">done</th><th class="n">failed</th><th class="n">mean time</th></tr>"#);
    for (name, k) in &report.kinds {
        let _ = write!(
            html,
            r#"<tr><td class="msg">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            esc(name),
            count(k.tasks),
            count(k.done),
            count(k.failed),
            k.wall_ns
                .checked_div(k.timed)
                .map_or_else(|| "-".into(), duration_ns)
        );
    }
    html.push_str("</table></section></div>");
    let _ = write!(
        html,
        r#"<footer>Written by <code>pymw report</code> from {} at {} UTC · {} tasks{}</footer></main></body></html>"#,
        esc(&info.dir.display().to_string()),
        utc(pymw_store::now_ns()),
        count(report.tasks),
        if report.cached > 0 {
            format!(" · {} from the result cache", count(report.cached))
        } else {
            String::new()
        }
    );
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_are_round() {
        assert_eq!(nice_step(97.0, 5), 20.0);
        assert_eq!(time_step(3_600_000_000_000, 8), 600_000_000_000);
        assert_eq!(elapsed_label(5_400_000_000_000), "1h30m");
        assert_eq!(elapsed_label(0), "0");
        assert_eq!(normalise("after 10017 iterations"), "after N iterations");
        assert_eq!(esc("<a&b>"), "&lt;a&amp;b&gt;");
    }
}
