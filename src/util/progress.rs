//! Progress bars for long work: drawn on a terminal, silent in pipes and CI.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A stage bar ("3/6 writing facts") with optional nested counters.
pub struct Progress {
    multi: Option<MultiProgress>,
    bar: ProgressBar,
}

/// A nested counter (e.g. question templates done); cheap to clone and share across threads.
#[derive(Clone)]
pub struct Sub(ProgressBar);

impl Sub {
    pub fn inc(&self) {
        self.0.inc(1);
    }
}

impl Progress {
    /// Draws only when `wanted`, standard error is a terminal and `CI` is unset.
    pub fn new(wanted: bool, stages: u64, first: &str) -> Progress {
        let show = wanted && super::interactive();
        if !show {
            return Progress {
                multi: None,
                bar: ProgressBar::hidden(),
            };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let bar = multi.add(ProgressBar::new(stages));
        bar.set_style(
            ProgressStyle::with_template("{elapsed:>4} [{bar:20}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(first.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Progress {
            multi: Some(multi),
            bar,
        }
    }

    pub fn step(&self, msg: &str) {
        self.bar.inc(1);
        self.bar.set_message(msg.to_string());
    }

    pub fn sub(&self, len: u64) -> Sub {
        match &self.multi {
            Some(m) => {
                let b = m.add(ProgressBar::new(len));
                b.set_style(
                    ProgressStyle::with_template("     [{bar:20}] {pos}/{len}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                );
                Sub(b)
            }
            None => Sub(ProgressBar::hidden()),
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

/// A bar counting steps, with the latest reward or loss as its message and the ETA; hidden
/// unless `wanted` and interactive.
pub fn steps(wanted: bool, total: u64, label: &str) -> ProgressBar {
    if !wanted || !super::interactive() {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(total);
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{label} {{elapsed:>4}} [{{bar:20}}] step {{pos}}/{{len}} {{msg}} eta {{eta}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    b
}
