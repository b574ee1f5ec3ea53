//! Trust policy: what a verified document must also say before its holder is trusted.

use crate::document::NitroDocument;
use crate::error::{PcrMismatch, PolicyError};
use crate::verify::Verified;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far a document's timestamp may be ahead of the checker's clock.
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);
/// How old a document may be unless the policy says otherwise. Evidence for a live
/// peer is requested for the occasion, so minutes are generous.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5 * 60);

/// Expected values for some PCRs. A set names at least one PCR; PCRs it does not name
/// are not checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasurementSet(BTreeMap<u8, Vec<u8>>);

impl MeasurementSet {
    pub fn new(pcrs: BTreeMap<u8, Vec<u8>>) -> Result<Self, PolicyError> {
        if pcrs.is_empty() {
            return Err(PolicyError::EmptyMeasurementSet);
        }
        Ok(MeasurementSet(pcrs))
    }

    pub fn pcrs(&self) -> &BTreeMap<u8, Vec<u8>> {
        &self.0
    }

    /// The first PCR of this set the document disagrees with, if any.
    fn first_mismatch(&self, set: usize, doc: &NitroDocument) -> Option<PcrMismatch> {
        self.0.iter().find_map(|(index, expected)| {
            let found = doc.pcr(*index);
            if found == Some(expected.as_slice()) {
                return None;
            }
            Some(PcrMismatch {
                set,
                index: *index,
                expected: hex::encode(expected),
                found: found.map(hex::encode),
            })
        })
    }
}

#[derive(Debug, Clone)]
enum Measurements {
    /// The document must match at least one of these sets (several during a rollout).
    OneOf(Vec<MeasurementSet>),
    /// PCRs are reported but not checked: for inspection tools only, chosen by name.
    NotChecked,
}

/// What a caller requires of a verified document.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    measurements: Measurements,
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
        Ok(Self::with(Measurements::OneOf(sets)))
    }

    /// A policy that does not check PCR values; every other check still applies. Meant
    /// for auditors' tools that report measurements rather than judge them.
    pub fn without_measurement_checks() -> Self {
        Self::with(Measurements::NotChecked)
    }

    fn with(measurements: Measurements) -> Self {
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
        if doc.is_debug_mode() && !self.allow_debug {
            return Err(PolicyError::DebugMode);
        }
        let matched_set = match &self.measurements {
            Measurements::NotChecked => None,
            Measurements::OneOf(sets) => {
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
