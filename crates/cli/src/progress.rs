//! A terminal progress bar for the core's long computations, shown on stderr only once a stage
//! has run for more than a second (and only when stderr is a terminal).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use embedrank_core::progress::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const DELAY: Duration = Duration::from_secs(1);

/// The current stage.
struct Stage {
    name: String,
    total: u64,
    done: u64,
    since: Instant,
    bar: Option<ProgressBar>,
}

/// A [`Progress`] that draws an `indicatif` bar on stderr for stages longer than a second.
#[derive(Default)]
pub struct Bar {
    stage: Mutex<Option<Stage>>,
}

impl Progress for Bar {
    fn start(&self, stage: &str, total: u64) {
        self.finish();
        let s = Stage {
            name: stage.to_string(),
            total,
            done: 0,
            since: Instant::now(),
            bar: None,
        };
        *self.stage.lock().unwrap_or_else(|e| e.into_inner()) = Some(s);
    }

    fn advance(&self, units: u64) {
        let mut guard = self.stage.lock().unwrap_or_else(|e| e.into_inner());
        let Some(s) = guard.as_mut() else { return };
        s.done += units;
        match &s.bar {
            Some(bar) => bar.set_position(s.done),
            None if s.since.elapsed() > DELAY => {
                let bar = ProgressBar::with_draw_target(Some(s.total), ProgressDrawTarget::stderr());
                let style =
                    ProgressStyle::with_template("{msg:>10} [{elapsed_precise}] {wide_bar} {percent:>3}% eta {eta}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar());
                bar.set_style(style);
                bar.set_message(s.name.clone());
                bar.set_position(s.done);
                s.bar = Some(bar);
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(s) = self.stage.lock().unwrap_or_else(|e| e.into_inner()).take() {
            if let Some(bar) = s.bar {
                bar.finish_and_clear();
            }
        }
    }
}

/// How many skipped-image warnings are printed before they are only counted.
const MAX_WARNINGS: usize = 20;

/// Embedding progress, skipped-image warnings and messages of the torch library, on stderr.
#[derive(Default)]
pub struct Console {
    bar: Bar,
    done: usize,
    /// Images skipped so far.
    pub skipped: usize,
}

impl Console {
    /// Prints a warning for a skipped image (the first [`MAX_WARNINGS`], then only counts them).
    pub fn warn_skipped(&mut self, reason: &str, print: impl Fn(&str)) {
        self.skipped += 1;
        if self.skipped <= MAX_WARNINGS {
            print(&format!("warning: skipped an image: {reason}"));
        }
        if self.skipped == MAX_WARNINGS {
            print("warning: further skipped images are counted, not shown");
        }
    }
}

impl embedrank_torch::Observer for Console {
    fn embedding(&mut self, split: &str, done: usize, total: usize) {
        if done == 0 {
            self.bar.start(&format!("embed {split}"), total as u64);
            self.done = 0;
            return;
        }
        self.bar.advance(done.saturating_sub(self.done) as u64);
        self.done = done;
        if done >= total {
            self.bar.finish();
        }
    }

    fn skipped(&mut self, reason: &str) {
        self.warn_skipped(reason, |m| eprintln!("{m}"));
    }

    fn message(&mut self, text: &str) {
        eprintln!("{text}");
    }
}
