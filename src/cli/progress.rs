//! Progress on stderr, only when stderr is a terminal (a pipe or a log file gets none): a
//! spinner for waits of unknown length (model load, prompt processing, the first token of a
//! chat answer) and a bar for counted work (quantize, synth, bench rows).

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether progress is drawn at all.
pub fn enabled() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("LODE_NO_PROGRESS").is_none()
}

/// A spinner with elapsed seconds, cleared (no trace left) when dropped or finished.
pub struct Spinner {
    bar: Arc<Mutex<Option<ProgressBar>>>,
}

fn spinner_bar(msg: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(msg.to_string());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

impl Spinner {
    /// Shows at once.
    pub fn new(msg: &str) -> Spinner {
        Spinner::after(msg, Duration::ZERO)
    }

    /// Shows only once `delay` has passed without [`Spinner::finish`], so quick steps stay
    /// silent (a model that loads in 0.2 s draws nothing).
    pub fn after(msg: &str, delay: Duration) -> Spinner {
        let slot = Arc::new(Mutex::new(None));
        if !enabled() {
            return Spinner { bar: slot };
        }
        if delay.is_zero() {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(spinner_bar(msg));
            return Spinner { bar: slot };
        }
        // The slot holds a hidden placeholder until the delay; finish() takes it, so a late
        // timer thread finds it empty and draws nothing.
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(ProgressBar::hidden());
        let weak = Arc::downgrade(&slot);
        let msg = msg.to_string();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            if let Some(slot) = weak.upgrade() {
                let mut g = slot.lock().unwrap_or_else(|e| e.into_inner());
                if g.is_some() {
                    *g = Some(spinner_bar(&msg));
                }
            }
        });
        Spinner { bar: slot }
    }

    /// Removes the spinner from the screen; idempotent.
    pub fn finish(&self) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            b.finish_and_clear();
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A bar of `len` steps with a message; hidden when progress is off.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    if !enabled() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} {elapsed} (eta {eta}) {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    bar
}

/// A [`bar`] made at the first `(done, total, name)` report of work that learns its length
/// as it starts (quantize, synth); cleared when dropped.
pub struct LazyBar {
    what: &'static str,
    bar: Option<ProgressBar>,
}

impl LazyBar {
    pub fn new(what: &'static str) -> LazyBar {
        LazyBar { what, bar: None }
    }

    /// Moves the bar to `done` of `total`, showing `name` (the item being worked on).
    pub fn update(&mut self, done: usize, total: usize, name: &str) {
        let what = self.what;
        let b = self.bar.get_or_insert_with(|| bar(total as u64, what));
        b.set_position(done as u64);
        b.set_message(name.to_string());
    }
}

impl Drop for LazyBar {
    fn drop(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
