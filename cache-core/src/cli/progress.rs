//! Progress of a SCAN pass on stderr: an indicatif bar when stderr is a terminal, plain lines
//! otherwise (every `--progress-every` keys scanned, and one at the end), or nothing.
//!
//! How far SCAN got is read from its cursor: Redis walks its hash table in reverse-binary order,
//! so the cursor's bits reversed, as a fraction of 2^64, is the share of the table visited.
//! Times DBSIZE, that is the keys scanned so far, and the rate and ETA follow from it. The count
//! is an estimate (the table may be resized or hold more buckets than keys); the matching keys
//! are counted exactly.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Mode {
    /// A bar when stderr is a terminal, plain lines otherwise.
    Auto,
    /// Always the bar (drawn only if stderr is a terminal).
    Bar,
    /// Always plain lines, terminal or not.
    Plain,
    /// Nothing.
    None,
}

/// The share of the keyspace a SCAN has visited once its next cursor is `cursor`.
pub(crate) fn scanned_share(cursor: Option<&str>, more: bool) -> f64 {
    if !more {
        return 1.0;
    }
    match cursor.and_then(|c| c.parse::<u64>().ok()) {
        Some(cursor) => cursor.reverse_bits() as f64 / 2f64.powi(64),
        None => 0.0,
    }
}

/// One SCAN pass being shown.
pub(crate) struct Progress {
    show: Show,
    /// DBSIZE when the pass started.
    total: u64,
    started: Instant,
    /// A plain line every this many keys scanned.
    every: u64,
    next_line: u64,
    /// What the pass does with a matching key: `matching`, `deleted`.
    verb: &'static str,
}

enum Show {
    Bar(ProgressBar),
    Plain,
    Quiet,
}

impl Progress {
    /// Starts showing a pass over `total` keys.
    pub(crate) fn start(mode: Mode, total: u64, every: u64, verb: &'static str) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let show = match mode {
            Mode::Auto if terminal => Show::Bar(bar(total)),
            Mode::Bar => Show::Bar(bar(total)),
            Mode::Auto | Mode::Plain => Show::Plain,
            Mode::None => Show::Quiet,
        };
        Progress {
            show,
            total,
            started: Instant::now(),
            every: every.max(1),
            next_line: every.max(1),
            verb,
        }
    }

    /// After a page: `share` of the keyspace visited, `matched` keys so far.
    pub(crate) fn update(&mut self, share: f64, matched: u64) {
        let scanned = self.scanned(share, matched);
        match &self.show {
            Show::Bar(bar) => {
                bar.set_position(scanned);
                bar.set_message(format!("{matched} {}", self.verb));
            }
            Show::Plain if scanned >= self.next_line => {
                while self.next_line <= scanned {
                    self.next_line = self.next_line.saturating_add(self.every);
                }
                eprintln!("{}", self.line(scanned, matched));
            }
            Show::Plain | Show::Quiet => {}
        }
    }

    /// The pass is over: `matched` keys in all.
    pub(crate) fn finish(&self, matched: u64) {
        let elapsed = self.started.elapsed();
        match &self.show {
            Show::Bar(bar) => {
                bar.set_position(self.total.max(matched));
                bar.finish_and_clear();
            }
            Show::Plain => eprintln!(
                "progress: scan complete in {:.2} s: {matched} {}; {} keys in the database (DBSIZE)",
                elapsed.as_secs_f64(),
                self.verb,
                self.total
            ),
            Show::Quiet => {}
        }
    }

    /// Keys scanned so far, estimated from the share of the table visited.
    fn scanned(&self, share: f64, matched: u64) -> u64 {
        let estimate = (share * self.total as f64) as u64;
        estimate.max(matched).min(self.total.max(matched))
    }

    /// A plain progress line.
    fn line(&self, scanned: u64, matched: u64) -> String {
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 {
            scanned as f64 / elapsed
        } else {
            0.0
        };
        let percent = if self.total > 0 {
            scanned as f64 * 100.0 / self.total as f64
        } else {
            100.0
        };
        let eta = if rate > 0.0 {
            match self.total.saturating_sub(scanned) as f64 / rate {
                left if left < 1.0 => "<1 s".to_owned(),
                left => format!("{:.0} s", left.ceil()),
            }
        } else {
            "unknown".to_owned()
        };
        format!(
            "progress: ~{scanned} of {} keys scanned ({percent:.0}%), {matched} {}, {:.0} keys/s, ETA {eta}",
            self.total, self.verb, rate
        )
    }
}

/// The indicatif bar on stderr.
fn bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} ~{human_pos}/{human_len} keys scanned \
         ({per_sec}, ETA {eta}) {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reversed_cursor_is_the_share_visited() {
        assert_eq!(scanned_share(Some("0"), false), 1.0);
        assert_eq!(scanned_share(Some("0"), true), 0.0);
        // In a table of 8 buckets, cursor 0b001 (bucket 4 of 8 in reverse order) is half way.
        assert_eq!(scanned_share(Some("1"), true), 0.5);
        assert_eq!(scanned_share(Some("2"), true), 0.25);
        assert_eq!(scanned_share(Some("3"), true), 0.75);
        assert_eq!(scanned_share(Some("junk"), true), 0.0);
    }

    #[test]
    fn plain_lines_say_scanned_rate_and_eta() {
        let progress = Progress::start(Mode::Plain, 1000, 100, "matching");
        let line = progress.line(250, 40);
        assert!(
            line.starts_with("progress: ~250 of 1000 keys scanned (25%), 40 matching, "),
            "{line}"
        );
        assert!(line.contains("keys/s, ETA "), "{line}");
        assert_eq!(progress.scanned(0.5, 10), 500);
        assert_eq!(progress.scanned(0.0, 10), 10);
    }
}
