//! Progress bars in one style for every long step, and plain output that tolerates a closed
//! pipe.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `len` steps labelled `what`; hidden when stderr is not a terminal, so logs stay
/// clean in CI.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{prefix:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_prefix(what.to_string());
    pb
}

/// Shows the stages of a library run ([`condense::Observer`]) as progress bars on
/// stderr, one bar per stage.
#[derive(Default)]
pub struct BarObserver {
    bar: Option<ProgressBar>,
}

impl BarObserver {
    /// Clears the last bar.
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl condense::Observer for BarObserver {
    fn stage(&mut self, name: &str, total: usize) {
        self.finish();
        eprintln!("== {name}");
        self.bar = Some(bar(total as u64, name));
    }
    fn progress(&mut self, done: usize, message: &str) {
        if let Some(b) = &self.bar {
            b.set_position(done as u64);
            b.set_message(message.to_string());
        }
    }
    fn note(&mut self, text: &str) {
        // A hidden bar (stderr not a terminal: a log file) drops `println`.
        match &self.bar {
            Some(b) if !b.is_hidden() => b.println(text),
            _ => eprintln!("{text}"),
        }
    }
}

/// Prints to stdout, ending quietly when the reader has gone (e.g. `| head`).
pub fn print_out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
