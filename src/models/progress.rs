//! Download progress on stderr: a bar redrawn in place on a terminal, a plain line every tenth
//! when stderr is a file or a pipe (logs, CI), nothing when turned off.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Bar,
    Lines,
    Off,
}

impl Style {
    /// A bar when stderr is a terminal, else plain lines.
    pub fn for_stderr() -> Self {
        if std::io::stderr().is_terminal() {
            Self::Bar
        } else {
            Self::Lines
        }
    }
}

/// The progress of one download.
pub struct Progress {
    label: String,
    total: u64,
    style: Style,
    started: Instant,
    start_bytes: u64,
    last_draw: Option<Instant>,
    last_tenth: u64,
}

const MB: f64 = 1_000_000.0;

impl Progress {
    pub fn new(label: &str, total: u64, already: u64, style: Style) -> Self {
        Self {
            label: label.into(),
            total: total.max(1),
            style,
            started: Instant::now(),
            start_bytes: already,
            last_draw: None,
            last_tenth: already.saturating_mul(10) / total.max(1),
        }
    }

    /// `done` bytes of the total are in place.
    pub fn update(&mut self, done: u64) {
        match self.style {
            Style::Off => {}
            Style::Bar => {
                let now = Instant::now();
                if self
                    .last_draw
                    .is_some_and(|t| now.duration_since(t) < Duration::from_millis(100))
                    && done < self.total
                {
                    return;
                }
                self.last_draw = Some(now);
                let pct = done.saturating_mul(100) / self.total;
                let filled = usize::try_from(pct / 5).unwrap_or(20).min(20);
                eprint!(
                    "\r{} [{}{}] {:>3}% {:.1}/{:.1} MB {}",
                    self.label,
                    "#".repeat(filled),
                    " ".repeat(20 - filled),
                    pct,
                    done as f64 / MB,
                    self.total as f64 / MB,
                    self.rate(done)
                );
                let _ = std::io::stderr().flush();
            }
            Style::Lines => {
                let tenth = done.saturating_mul(10) / self.total;
                if tenth > self.last_tenth {
                    self.last_tenth = tenth;
                    eprintln!(
                        "{}: {}% ({:.1} of {:.1} MB, {})",
                        self.label,
                        tenth * 10,
                        done as f64 / MB,
                        self.total as f64 / MB,
                        self.rate(done)
                    );
                }
            }
        }
    }

    /// End the bar's line.
    pub fn finish(&mut self) {
        if self.style == Style::Bar && self.last_draw.is_some() {
            eprintln!();
            self.last_draw = None;
        }
    }

    fn rate(&self, done: u64) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        if secs < 0.001 {
            return "-".into();
        }
        format!(
            "{:.1} MB/s",
            done.saturating_sub(self.start_bytes) as f64 / MB / secs
        )
    }
}
