//! [`Verified`]: a value that passed a verifier of this crate. Its fields are private and
//! its only constructor is crate-private, so a function that takes `&Verified<T>` cannot
//! be handed evidence nobody checked.

use std::ops::Deref;
use std::time::Duration;

/// A value that passed verification. Only this crate's verifiers construct one.
#[derive(Debug, Clone)]
pub struct Verified<T> {
    inner: T,
    verified_at: Duration,
}

impl<T> Verified<T> {
    /// Built by a verifier that checked `inner` at `verified_at` (since the Unix epoch).
    pub(crate) fn new(inner: T, verified_at: Duration) -> Self {
        Verified { inner, verified_at }
    }

    /// The same verification, carried by another view of the value (a provider's
    /// document as provider-neutral evidence).
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Verified<U> {
        Verified {
            inner: f(self.inner),
            verified_at: self.verified_at,
        }
    }

    /// The time, as a duration since the Unix epoch, at which the chain was checked.
    pub fn verified_at(&self) -> Duration {
        self.verified_at
    }

    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T> Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}
