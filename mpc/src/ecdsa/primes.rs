//! Safe primes for the Paillier keys of auxiliary-info generation.
//!
//! Finding them takes one to two minutes of CPU per set, so a node fills a [`PrimePool`] in the
//! background from boot and auxiliary-info generation only takes from it.

use std::fmt;
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::thread;
use std::time::Duration;

use cggmp24::PregeneratedPrimes;
use rand_core::OsRng;

use super::Level;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrimePoolError {
    #[error("no safe primes became ready in time")]
    Timeout,
    #[error("the prime generators stopped")]
    Stopped,
    #[error("cannot start a prime generator: {0}")]
    Spawn(#[source] std::io::Error),
}

/// The four safe primes one party's auxiliary info needs. Secret: no `Clone`, no `Serialize`,
/// redacted `Debug`; the big integers cannot be zeroized (`num-bigint` does not expose them).
pub struct SafePrimes(PregeneratedPrimes<Level>);

impl SafePrimes {
    /// Searches for safe primes with the operating system's randomness; takes minutes.
    pub fn generate() -> Self {
        Self(PregeneratedPrimes::generate(&mut OsRng))
    }

    #[cfg(feature = "sim")]
    pub(crate) fn from_library(primes: PregeneratedPrimes<Level>) -> Self {
        Self(primes)
    }

    pub(crate) fn into_library(self) -> PregeneratedPrimes<Level> {
        self.0
    }

    #[cfg(feature = "sim")]
    pub(crate) fn library(&self) -> &PregeneratedPrimes<Level> {
        &self.0
    }
}

impl fmt::Debug for SafePrimes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SafePrimes(<redacted>)")
    }
}

/// A bounded pool of [`SafePrimes`], filled by background threads.
///
/// Each generator thread searches, then waits until the pool has room; dropping the pool stops
/// them after their current search (a search cannot be interrupted).
pub struct PrimePool {
    ready: Mutex<Receiver<SafePrimes>>,
    depth: usize,
}

impl PrimePool {
    /// Starts `generators` threads that keep up to `depth` sets ready (`depth` and `generators`
    /// are at least 1).
    pub fn spawn(depth: usize, generators: usize) -> Result<Self, PrimePoolError> {
        let depth = depth.max(1);
        let (sender, ready) = mpsc::sync_channel(depth);
        for n in 0..generators.max(1) {
            let sender = sender.clone();
            thread::Builder::new()
                .name(format!("safe-primes-{n}"))
                .spawn(move || generate_until_dropped(&sender))
                .map_err(PrimePoolError::Spawn)?;
        }
        Ok(Self {
            ready: Mutex::new(ready),
            depth,
        })
    }

    /// A pool holding `primes` and generating nothing: for tests and simulator mode, with
    /// primes loaded from fixtures.
    #[cfg(feature = "sim")]
    pub fn preloaded(primes: Vec<SafePrimes>) -> Self {
        let depth = primes.len().max(1);
        let (sender, ready) = mpsc::sync_channel(depth);
        for set in primes {
            let _ = sender.try_send(set);
        }
        Self {
            ready: Mutex::new(ready),
            depth,
        }
    }

    pub fn depth(&self) -> usize {
        self.depth
    }

    /// A set of primes if one is ready.
    pub fn try_take(&self) -> Option<SafePrimes> {
        self.receiver().try_recv().ok()
    }

    /// Waits up to `timeout` for a set of primes.
    pub fn take_timeout(&self, timeout: Duration) -> Result<SafePrimes, PrimePoolError> {
        self.receiver().recv_timeout(timeout).map_err(|e| match e {
            RecvTimeoutError::Timeout => PrimePoolError::Timeout,
            RecvTimeoutError::Disconnected => PrimePoolError::Stopped,
        })
    }

    fn receiver(&self) -> std::sync::MutexGuard<'_, Receiver<SafePrimes>> {
        self.ready
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for PrimePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrimePool")
            .field("depth", &self.depth)
            .finish_non_exhaustive()
    }
}

/// Blocks while the pool is full; returns once the pool is dropped.
fn generate_until_dropped(pool: &SyncSender<SafePrimes>) {
    while pool.send(SafePrimes::generate()).is_ok() {}
}

#[cfg(all(test, feature = "sim"))]
mod tests {
    use super::*;

    #[test]
    fn preloaded_pool_hands_each_set_out_once() {
        let primes = crate::sim::load_primes(crate::sim::tests::PRIMES).unwrap();
        let count = primes.len();
        let pool = PrimePool::preloaded(primes);
        for _ in 0..count {
            assert!(pool.try_take().is_some());
        }
        assert!(pool.try_take().is_none());
        assert!(matches!(
            pool.take_timeout(Duration::from_millis(1)),
            Err(PrimePoolError::Stopped)
        ));
    }
}
