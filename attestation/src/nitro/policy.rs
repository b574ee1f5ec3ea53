//! Nitro's trust policy: what a verified document must also say before its holder is
//! trusted (measurements, debug mode, age, nonce).

use crate::error::PolicyError;
use crate::nitro::document::NitroDocument;
use crate::nitro::measurements::MeasurementSet;
use crate::{DEFAULT_MAX_AGE, DEFAULT_MAX_CLOCK_SKEW, Verified};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone)]
enum Checked {
    /// The document must match at least one of these sets (several during a rollout).
    OneOf(Vec<MeasurementSet>),
    /// PCRs are reported but not checked: for inspection tools only, chosen by name.
    NotChecked,
}

/// What a caller requires of a verified document.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    measurements: Checked,
    allow_debug: bool,
    max_age: Option<Duration>,
    max_clock_skew: Duration,
    nonce: Option<Vec<u8>>,
}

/// What an accepted document binds, handed back to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted<'a> {
    pub module_id: &'a str,
    pub timestamp_ms: u64,
    pub public_key: Option<&'a [u8]>,
    pub user_data: Option<&'a [u8]>,
    /// Index of the measurement set that matched, when measurements were checked.
    pub matched_set: Option<usize>,
}

impl TrustPolicy {
    /// A policy that accepts documents matching any one of `sets`. An empty list is an
    /// error: there is no "accept anything" by omission.
    pub fn new(sets: Vec<MeasurementSet>) -> Result<Self, PolicyError> {
        if sets.is_empty() {
            return Err(PolicyError::NoMeasurementSets);
        }
        Ok(Self::with(Checked::OneOf(sets)))
    }

    /// A policy that does not check PCR values; every other check still applies. Meant
    /// for auditors' tools that report measurements rather than judge them.
    pub fn without_measurement_checks() -> Self {
        Self::with(Checked::NotChecked)
    }

    fn with(measurements: Checked) -> Self {
        TrustPolicy {
            measurements,
            allow_debug: false,
            max_age: Some(DEFAULT_MAX_AGE),
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
            nonce: None,
        }
    }

    /// Accept documents from debug-mode enclaves (PCR0/1/2 all zero). Never in production:
    /// in debug mode the parent can read the enclave's memory.
    pub fn allow_debug(mut self, allow: bool) -> Self {
        self.allow_debug = allow;
        self
    }

    /// Refuse documents whose timestamp is older than this at check time (default
    /// [`DEFAULT_MAX_AGE`]).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Accept documents of any age: for auditing archived evidence, never for a live
    /// peer, whose evidence could otherwise be replayed indefinitely.
    pub fn without_age_limit(mut self) -> Self {
        self.max_age = None;
        self
    }

    /// How far ahead of the checker's clock a document may be dated.
    pub fn max_clock_skew(mut self, skew: Duration) -> Self {
        self.max_clock_skew = skew;
        self
    }

    /// Require the document to carry exactly this nonce.
    pub fn expect_nonce(mut self, nonce: Vec<u8>) -> Self {
        self.nonce = Some(nonce);
        self
    }

    /// Applies the policy at time `now`.
    pub fn check<'a>(
        &self,
        doc: &'a Verified<NitroDocument>,
        now: SystemTime,
    ) -> Result<Accepted<'a>, PolicyError> {
        self.check_verified(doc, now)
    }

    /// [`Self::check`], for a document the caller holds as part of verified evidence.
    pub(crate) fn check_verified<'a>(
        &self,
        doc: &'a NitroDocument,
        now: SystemTime,
    ) -> Result<Accepted<'a>, PolicyError> {
        if doc.is_debug_mode() && !self.allow_debug {
            return Err(PolicyError::DebugMode);
        }
        let matched_set = match &self.measurements {
            Checked::NotChecked => None,
            Checked::OneOf(sets) => {
                let mut mismatches = Vec::new();
                let mut matched = None;
                for (i, set) in sets.iter().enumerate() {
                    match set.first_mismatch(i, doc) {
                        None => {
                            matched = Some(i);
                            break;
                        }
                        Some(m) => mismatches.push(m),
                    }
                }
                match matched {
                    Some(i) => Some(i),
                    None => return Err(PolicyError::Measurements(mismatches)),
                }
            }
        };
        let now_ms = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| PolicyError::TimeBeforeEpoch)?
            .as_millis();
        let now_ms = u64::try_from(now_ms).unwrap_or(u64::MAX);
        let ts = doc.timestamp_ms();
        if ts > now_ms {
            let ahead_ms = ts - now_ms;
            if u128::from(ahead_ms) > self.max_clock_skew.as_millis() {
                return Err(PolicyError::FromTheFuture { ahead_ms });
            }
        }
        if let Some(max_age) = self.max_age {
            let age_ms = now_ms.saturating_sub(ts);
            let max_ms = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
            if age_ms > max_ms {
                return Err(PolicyError::TooOld { age_ms, max_ms });
            }
        }
        if let Some(expected) = &self.nonce {
            match doc.nonce() {
                None => return Err(PolicyError::NonceMissing),
                Some(found) if found != expected.as_slice() => {
                    return Err(PolicyError::NonceMismatch);
                }
                Some(_) => {}
            }
        }
        Ok(Accepted {
            module_id: doc.module_id(),
            timestamp_ms: ts,
            public_key: doc.public_key(),
            user_data: doc.user_data(),
            matched_set,
        })
    }
}
