//! Progress of a `map`: an indicatif bar when stderr is a terminal, a plain
//! line every few seconds when it is not (CI logs, files).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How often a plain progress line is printed.
const LINE_EVERY: Duration = Duration::from_secs(5);

pub(crate) struct Progress {
    name: &'static str,
    total: Option<u64>,
    done: u64,
    failed: u64,
    in_flight: u64,
    started: Instant,
    mode: Mode,
}

enum Mode {
    Off,
    Bar(ProgressBar),
    Lines { next: Instant, printed: bool },
}

impl Progress {
    pub(crate) fn new(name: &'static str, total: Option<u64>, enabled: bool) -> Self {
        let mut progress = Progress {
            name,
            total,
            done: 0,
            failed: 0,
            in_flight: 0,
            started: Instant::now(),
            mode: Mode::Off,
        };
        progress.set_enabled(enabled);
        progress
    }

    pub(crate) fn set_enabled(&mut self, on: bool) {
        if let Mode::Bar(bar) = &self.mode {
            bar.finish_and_clear();
        }
        self.mode = if !on {
            Mode::Off
        } else if std::io::stderr().is_terminal() {
            let bar = match self.total {
                Some(total) => ProgressBar::new(total),
                None => ProgressBar::new_spinner(),
            };
            bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
            let template = if self.total.is_some() {
                "{prefix} [{bar:30}] {pos}/{len} {msg} {per_sec} ETA {eta}"
            } else {
                "{prefix} {spinner} {pos} {msg} {per_sec}"
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("static template is valid")
                    .progress_chars("=> "),
            );
            bar.set_prefix(short_name(self.name).to_owned());
            Mode::Bar(bar)
        } else {
            Mode::Lines {
                next: Instant::now() + LINE_EVERY,
                printed: false,
            }
        };
    }

    pub(crate) fn set_in_flight(&mut self, in_flight: u64) {
        self.in_flight = in_flight;
    }

    pub(crate) fn record(&mut self, ok: bool) {
        if ok {
            self.done += 1;
        } else {
            self.failed += 1;
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        match &mut self.mode {
            Mode::Off => {}
            Mode::Bar(bar) => {
                bar.inc(1);
                // Formatting a message per task would cost more than a tiny
                // task; refresh it every 1024 results.
                if (self.done + self.failed) % 1024 == 1 || !ok {
                    bar.set_message(format!("failed {} running {}", self.failed, self.in_flight));
                }
            }
            Mode::Lines { next, printed } => {
                let now = Instant::now();
                if now >= *next {
                    *next = now + LINE_EVERY;
                    *printed = true;
                    eprintln!("{}", self.line());
                }
            }
        }
    }

    fn line(&self) -> String {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        let finished = self.done + self.failed;
        let rate = finished as f64 / elapsed;
        let mut line = format!(
            "pymw: {}: {} done, {} failed, {} running",
            short_name(self.name),
            self.done,
            self.failed,
            self.in_flight
        );
        if let Some(total) = self.total {
            line.push_str(&format!(" of {total}"));
            if rate > 0.0 && total > finished {
                line.push_str(&format!(", ETA {:.0}s", (total - finished) as f64 / rate));
            }
        }
        line.push_str(&format!(", {rate:.0} tasks/s"));
        line
    }

    pub(crate) fn finish(&mut self) {
        match std::mem::replace(&mut self.mode, Mode::Off) {
            Mode::Bar(bar) => bar.finish_and_clear(),
            Mode::Lines { printed: true, .. } => eprintln!("{} (finished)", self.line()),
            _ => {}
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Mode::Bar(bar) = &self.mode {
            bar.finish_and_clear();
        }
    }
}

fn short_name(name: &str) -> &str {
    name.rsplit("::").next().unwrap_or(name)
}
