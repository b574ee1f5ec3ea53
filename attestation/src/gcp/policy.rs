//! Confidential Space's trust policy: what a verified token must also say before its
//! holder is trusted. Issuer, audience, software, debug state, hardware and secure boot,
//! the accepted measurement sets, `iat`/`nbf`/`exp` against an explicit time, age, and
//! the nonce.

use crate::error::PolicyError;
use crate::gcp::evidence::CsEvidence;
use crate::gcp::measurements::{HWMODELS, MeasurementSet};
use crate::time_fmt::rfc3339;
use crate::{DEFAULT_MAX_AGE, DEFAULT_MAX_CLOCK_SKEW, Verified};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The issuer of every Confidential Space token.
pub const ISSUER: &str = "https://confidentialcomputing.googleapis.com";
/// `swname` of the Confidential Space image.
pub const SWNAME: &str = "CONFIDENTIAL_SPACE";
/// `dbgstat` of a production image: no debugging since boot.
pub const DBGSTAT_PRODUCTION: &str = "disabled-since-boot";
/// The support attribute of a production image still under support.
pub const STABLE: &str = "STABLE";

#[derive(Debug, Clone)]
enum Checked {
    /// The token must match at least one of these sets (several during a rollout).
    OneOf(Vec<MeasurementSet>),
    /// Measurements are reported but not checked: for inspection tools only.
    NotChecked,
}

/// What a caller requires of a verified token.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    measurements: Checked,
    allow_debug: bool,
    audience: Option<String>,
    max_age: Option<Duration>,
    max_clock_skew: Duration,
    nonce: Option<Vec<u8>>,
}

impl TrustPolicy {
    /// A policy that accepts tokens matching any one of `sets`. An empty list is an
    /// error: there is no "accept anything" by omission.
    pub fn new(sets: Vec<MeasurementSet>) -> Result<Self, PolicyError> {
        if sets.is_empty() {
            return Err(PolicyError::NoMeasurementSets);
        }
        Ok(Self::with(Checked::OneOf(sets)))
    }

    /// A policy that does not check the image or the instance; every other check still
    /// applies. Meant for auditors' tools that report measurements rather than judge them.
    pub fn without_measurement_checks() -> Self {
        Self::with(Checked::NotChecked)
    }

    fn with(measurements: Checked) -> Self {
        TrustPolicy {
            measurements,
            allow_debug: false,
            audience: None,
            max_age: Some(DEFAULT_MAX_AGE),
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
            nonce: None,
        }
    }

    /// Accept tokens of debuggable workloads and of images out of support (no STABLE).
    /// Never in production: the operator of a debug image can read its memory.
    pub fn allow_debug(mut self, allow: bool) -> Self {
        self.allow_debug = allow;
        self
    }

    /// Require `aud` to be exactly this.
    pub fn expect_audience(mut self, audience: String) -> Self {
        self.audience = Some(audience);
        self
    }

    /// Refuse tokens issued longer than this before the check (default
    /// [`DEFAULT_MAX_AGE`]).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// No limit on age beyond `exp`: for auditing archived evidence at its own time.
    pub fn without_age_limit(mut self) -> Self {
        self.max_age = None;
        self
    }

    /// How far the token's times may disagree with the checker's clock.
    pub fn max_clock_skew(mut self, skew: Duration) -> Self {
        self.max_clock_skew = skew;
        self
    }

    /// Require the evidence to bind exactly this nonce: a bundle's nonce, or one of a
    /// lone token's `eat_nonce` values.
    pub fn expect_nonce(mut self, nonce: Vec<u8>) -> Self {
        self.nonce = Some(nonce);
        self
    }

    /// Applies the policy at time `now`; returns the index of the matched set when
    /// measurements were checked.
    pub fn check(
        &self,
        evidence: &Verified<CsEvidence>,
        now: SystemTime,
    ) -> Result<Option<usize>, PolicyError> {
        self.check_verified(evidence, now)
    }

    /// [`Self::check`], for evidence the caller holds as part of verified evidence.
    pub(crate) fn check_verified(
        &self,
        evidence: &CsEvidence,
        now: SystemTime,
    ) -> Result<Option<usize>, PolicyError> {
        let claims = evidence.token().claims();
        expect("iss", claims.iss.as_deref(), ISSUER)?;
        if let Some(audience) = &self.audience {
            expect("aud", claims.aud.as_deref(), audience)?;
        }
        expect("swname", claims.swname.as_deref(), SWNAME)?;
        if !self.allow_debug {
            let dbgstat = claims
                .dbgstat
                .as_deref()
                .ok_or(PolicyError::ClaimMissing { claim: "dbgstat" })?;
            if dbgstat != DBGSTAT_PRODUCTION {
                return Err(PolicyError::DebugToken {
                    dbgstat: dbgstat.to_owned(),
                });
            }
            if !claims.support_attributes.iter().any(|a| a == STABLE) {
                return Err(PolicyError::NotStable);
            }
        }
        let hwmodel = claims
            .hwmodel
            .as_deref()
            .ok_or(PolicyError::ClaimMissing { claim: "hwmodel" })?;
        if !HWMODELS.contains(&hwmodel) {
            return Err(PolicyError::HardwareModel {
                hwmodel: hwmodel.to_owned(),
            });
        }
        if claims.secboot != Some(true) {
            return Err(PolicyError::SecureBootOff);
        }
        let matched_set = match &self.measurements {
            Checked::NotChecked => None,
            Checked::OneOf(sets) => {
                let mut mismatches = Vec::new();
                let mut matched = None;
                for (i, set) in sets.iter().enumerate() {
                    match set.first_mismatch(i, claims) {
                        None => {
                            matched = Some(i);
                            break;
                        }
                        Some(m) => mismatches.push(m),
                    }
                }
                match matched {
                    Some(i) => Some(i),
                    None => return Err(PolicyError::Claims(mismatches)),
                }
            }
        };
        self.check_times(evidence, now)?;
        if let Some(expected) = &self.nonce {
            match evidence.nonce_matches(expected) {
                None => return Err(PolicyError::NonceMissing),
                Some(false) => return Err(PolicyError::NonceMismatch),
                Some(true) => {}
            }
        }
        Ok(matched_set)
    }

    fn check_times(&self, evidence: &CsEvidence, now: SystemTime) -> Result<(), PolicyError> {
        let claims = evidence.token().claims();
        let now = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| PolicyError::TimeBeforeEpoch)?;
        let skew = self.max_clock_skew;
        let iat = Duration::from_secs(claims.iat);
        let exp = Duration::from_secs(claims.exp);
        // Valid while now < exp, give or take the skew.
        if now >= exp.saturating_add(skew) {
            return Err(PolicyError::Expired { exp: rfc3339(exp) });
        }
        if let Some(nbf) = claims.nbf.map(Duration::from_secs)
            && now.saturating_add(skew) < nbf
        {
            return Err(PolicyError::NotYetValid { nbf: rfc3339(nbf) });
        }
        if iat > now {
            let ahead = iat - now;
            if ahead > skew {
                return Err(PolicyError::FromTheFuture {
                    ahead_ms: millis(ahead),
                });
            }
        }
        if let Some(max_age) = self.max_age {
            let age = now.saturating_sub(iat);
            if age > max_age {
                return Err(PolicyError::TooOld {
                    age_ms: millis(age),
                    max_ms: millis(max_age),
                });
            }
        }
        Ok(())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn expect(claim: &'static str, found: Option<&str>, expected: &str) -> Result<(), PolicyError> {
    match found {
        None => Err(PolicyError::ClaimMissing { claim }),
        Some(found) if found != expected => Err(PolicyError::ClaimValue {
            claim,
            expected: expected.to_owned(),
            found: crate::gcp::json::shorten(found),
        }),
        Some(_) => Ok(()),
    }
}
