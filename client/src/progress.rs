//! Progress of long steps on standard error: a running counter on a terminal, one line at
//! the start and one at the end otherwise. Standard output stays for results.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A step being timed; [`Step::done`] reports its duration.
#[derive(Debug)]
pub struct Step {
    name: String,
    started: Instant,
    running: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
    quiet: bool,
}

impl Step {
    /// Starts reporting `name`; `quiet` reports nothing at all.
    pub fn start(name: &str, quiet: bool) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let started = Instant::now();
        let terminal = std::io::stderr().is_terminal();
        let ticker = if quiet {
            None
        } else if terminal {
            let (name, running) = (name.to_owned(), running.clone());
            Some(std::thread::spawn(move || {
                while running.load(Ordering::Relaxed) {
                    eprint!("\r{name}... {} s", started.elapsed().as_secs());
                    let _ = std::io::stderr().flush();
                    std::thread::sleep(Duration::from_millis(250));
                }
            }))
        } else {
            eprintln!("{name}...");
            None
        };
        Step {
            name: name.to_owned(),
            started,
            running,
            ticker,
            quiet,
        }
    }

    /// Stops the counter; returns the step's duration and reports it.
    pub fn done(mut self, ok: bool) -> Duration {
        let elapsed = self.finish();
        if !self.quiet {
            let outcome = if ok { "done" } else { "failed" };
            eprintln!(
                "\r{}: {outcome} in {:.1} s",
                self.name,
                elapsed.as_secs_f64()
            );
        }
        elapsed
    }

    fn finish(&mut self) -> Duration {
        self.running.store(false, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        self.started.elapsed()
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Runs `f` as step `name`, reporting its outcome and duration.
pub fn step<T, E>(
    name: &str,
    quiet: bool,
    f: impl FnOnce() -> Result<T, E>,
) -> (Result<T, E>, Duration) {
    let step = Step::start(name, quiet);
    let result = f();
    let elapsed = step.done(result.is_ok());
    (result, elapsed)
}
