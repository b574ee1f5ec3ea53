//! What both signature benchmarks share: their settings (a full run under `--bench`, a
//! smoke run otherwise), the timing of raw signature checks, and the statistics over
//! batches.

use std::time::{Duration, Instant};

/// Verification may cost at most this many times its signature checks.
pub const TARGET_RATIO: f64 = 1.3;

pub struct Settings {
    pub quick: bool,
    pub batches: usize,
    pub batch_time: Duration,
    pub warmup: Duration,
}

impl Settings {
    pub fn from_env() -> Self {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = std::env::var_os("BENCH_QUICK").is_some_and(|v| v != "0")
            || args.iter().any(|a| a == "--quick")
            || !args.iter().any(|a| a == "--bench");
        if quick {
            Settings {
                quick,
                batches: 10,
                batch_time: Duration::from_millis(20),
                warmup: Duration::from_millis(20),
            }
        } else {
            Settings {
                quick,
                batches: 41,
                batch_time: Duration::from_millis(50),
                warmup: Duration::from_millis(500),
            }
        }
    }
}

/// One signature check a benchmark times on its own, on inputs extracted beforehand.
pub trait Check {
    /// Runs the check; true when the signature verifies.
    fn holds(&self) -> bool;
}

/// The signature checks alone, `n` rounds; the time per round.
pub fn time_raw<C: Check>(checks: &[C], n: usize) -> Result<Duration, String> {
    let start = Instant::now();
    let mut ok = 0usize;
    for _ in 0..n {
        for c in checks {
            ok += usize::from(c.holds());
        }
    }
    let elapsed = start.elapsed();
    succeeded("signature check", ok, n * checks.len())?;
    Ok(per_op(elapsed, n))
}

pub fn succeeded(what: &str, ok: usize, expected: usize) -> Result<(), String> {
    if ok == expected {
        Ok(())
    } else {
        Err(format!(
            "{what} failed {} of {expected} times",
            expected - ok
        ))
    }
}

pub fn per_op(elapsed: Duration, n: usize) -> Duration {
    elapsed / u32::try_from(n.max(1)).unwrap_or(u32::MAX)
}

/// Iterations that take about `budget` at `per_op` each (at least one).
pub fn iterations(budget: Duration, per_op: Duration) -> usize {
    let n = budget.as_secs_f64() / per_op.as_secs_f64().max(1e-9);
    (n.round() as usize).max(1)
}

pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub fn sorted(values: &mut [f64]) -> &[f64] {
    values.sort_by(f64::total_cmp);
    values
}

pub fn median(values: &mut [f64]) -> f64 {
    quantile(sorted(values), 0.5)
}

pub fn quartiles(values: &mut [f64]) -> (f64, f64) {
    let s = sorted(values);
    (quantile(s, 0.25), quantile(s, 0.75))
}

/// Nearest-rank quantile of sorted values; NaN when there are none.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((sorted.len().saturating_sub(1)) as f64 * q).round() as usize;
    sorted.get(rank).copied().unwrap_or(f64::NAN)
}

pub fn min(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

pub fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}
