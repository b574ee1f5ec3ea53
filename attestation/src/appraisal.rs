//! Appraising evidence, whatever its provider: the one decision every relying party
//! makes (a node about its peer, an operator's client about a node).
//!
//! [`Verifier::verify`] tells the provider apart by content and checks the evidence's
//! signature and chain to that provider's pinned root at an explicit time;
//! [`Verifier::appraise`] also applies an [`Expectation`]: the measurement sets accepted
//! for the attester, debug mode, age and nonce. The result, an [`Appraisal`], says which
//! provider attested, which accepted set it matched (the identity it proves), what it
//! binds and when it was made; only this module builds one.

use crate::error::{PolicyError, VerifyError};
use crate::gcp;
use crate::measurements::Measurements;
use crate::nitro;
use crate::provider::{Binding, Evidence, Provider};
use crate::verified::Verified;
use std::time::{Duration, SystemTime};

/// How far evidence may be dated ahead of the checker's clock.
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);
/// How old evidence may be unless the policy says otherwise. Evidence for a live peer is
/// requested for the occasion, so minutes are generous.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5 * 60);

/// The roots trusted for each provider's evidence.
#[derive(Debug, Clone)]
pub struct Verifier {
    nitro: nitro::Verifier,
    gcp: gcp::Verifier,
    /// Roots pinned by [`Verifier::restricted_to`], to name in refusals.
    pins: Vec<(Provider, [u8; 32])>,
}

/// Evidence failed verification or appraisal: one of two kinds, whatever the provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppraisalError {
    #[error("evidence does not verify: {0}")]
    Verify(#[from] VerifyError),
    #[error("evidence refused: {0}")]
    Policy(#[from] PolicyError),
}

impl Verifier {
    /// Trusts the pinned production root of every provider.
    pub fn production() -> Self {
        Verifier {
            nitro: nitro::Verifier::aws_nitro(),
            gcp: gcp::Verifier::google(),
            pins: Vec::new(),
        }
    }

    /// Trusts the AWS Nitro root G1 and nothing else.
    pub fn aws_nitro() -> Self {
        Verifier {
            nitro: nitro::Verifier::aws_nitro(),
            gcp: gcp::Verifier::none(),
            pins: Vec::new(),
        }
    }

    /// Trusts Google's Confidential Space root and nothing else.
    pub fn google_cs() -> Self {
        Verifier {
            nitro: nitro::Verifier::none(),
            gcp: gcp::Verifier::google(),
            pins: Vec::new(),
        }
    }

    /// Keeps, for each provider named, only the trusted root whose DER SHA-256 is the
    /// value given (a manifest's `roots`); when none is left, that provider's evidence
    /// fails with an error naming the pin. Providers not named keep their roots.
    pub fn restricted_to(&self, pins: &[(Provider, [u8; 32])]) -> Verifier {
        let mut restricted = self.clone();
        for (provider, pin) in pins {
            match provider {
                Provider::Nitro => restricted.nitro = restricted.nitro.keep_only(pin),
                Provider::GcpCs => restricted.gcp = restricted.gcp.keep_only(pin),
            }
            restricted.pins.push((*provider, *pin));
        }
        restricted
    }

    /// The roots `provider`'s evidence may chain to, as DER SHA-256.
    pub fn roots(&self, provider: Provider) -> &[[u8; 32]] {
        match provider {
            Provider::Nitro => self.nitro.roots(),
            Provider::GcpCs => self.gcp.roots(),
        }
    }

    /// Additionally trusts a simulated attester's root certificate (DER), valid at `at`:
    /// for Nitro, a self-signed P-384 CA. Exists only in builds with the `sim` feature: a
    /// production build cannot be made to trust a simulated root.
    #[cfg(feature = "sim")]
    pub fn trust_simulated_root(
        self,
        root_der: &[u8],
        at: SystemTime,
    ) -> Result<Self, VerifyError> {
        Ok(Verifier {
            nitro: self.nitro.trust_simulated_root(root_der, at)?,
            ..self
        })
    }

    /// Additionally trusts a simulated Confidential Space attester's root certificate
    /// (DER), valid at `at`: a self-signed RSA CA. Exists only in builds with the `sim`
    /// feature.
    #[cfg(feature = "sim")]
    pub fn trust_simulated_gcp_root(
        self,
        root_der: &[u8],
        at: SystemTime,
    ) -> Result<Self, VerifyError> {
        Ok(Verifier {
            gcp: self.gcp.trust_simulated_root(root_der, at)?,
            ..self
        })
    }

    /// The Nitro verifier, for tools that read a Nitro document's own fields.
    pub fn nitro(&self) -> &nitro::Verifier {
        &self.nitro
    }

    /// The Confidential Space verifier, for tools that read a token's own fields.
    pub fn gcp(&self) -> &gcp::Verifier {
        &self.gcp
    }

    /// Parses `bytes` as the evidence of the provider they look like and verifies it at
    /// `at` under that provider's trusted roots.
    pub fn verify(&self, bytes: &[u8], at: SystemTime) -> Result<Verified<Evidence>, VerifyError> {
        let evidence = Evidence::parse(bytes)?;
        let provider = evidence.provider();
        if self.roots(provider).is_empty()
            && let Some((_, pin)) = self.pins.iter().find(|(p, _)| *p == provider)
        {
            return Err(VerifyError::NoRootForPin {
                provider,
                pin: hex::encode(pin),
            });
        }
        match evidence {
            Evidence::Nitro(doc) => Ok(self.nitro.verify_document(doc, at)?.map(Evidence::Nitro)),
            Evidence::GcpCs(cs) => Ok(self.gcp.verify_evidence(cs, at)?.map(Evidence::GcpCs)),
        }
    }

    /// Verifies `bytes` at `now` and applies `expectation`.
    pub fn appraise(
        &self,
        bytes: &[u8],
        expectation: &Expectation,
        now: SystemTime,
    ) -> Result<Appraisal, AppraisalError> {
        let evidence = self.verify(bytes, now)?;
        let provider = evidence.provider();
        // The sets of this provider, with their places in the whole list.
        let ours: Vec<(usize, &Measurements)> = expectation
            .sets
            .iter()
            .enumerate()
            .filter(|(_, set)| set.provider() == provider)
            .collect();
        if ours.is_empty() {
            return Err(PolicyError::NoSetForProvider { provider }.into());
        }
        let place = |i: usize| ours.get(i).map_or(i, |(place, _)| *place);
        let matched_set = match &*evidence {
            Evidence::Nitro(doc) => {
                let sets = ours
                    .iter()
                    .filter_map(|(_, set)| match set {
                        Measurements::Nitro(set) => Some(set.clone()),
                        _ => None,
                    })
                    .collect();
                let mut policy = nitro::TrustPolicy::new(sets)?
                    .allow_debug(expectation.allow_debug)
                    .max_clock_skew(expectation.max_clock_skew);
                policy = match expectation.max_age {
                    Some(max_age) => policy.max_age(max_age),
                    None => policy.without_age_limit(),
                };
                if let Some(nonce) = &expectation.nonce {
                    policy = policy.expect_nonce(nonce.clone());
                }
                match policy.check_verified(doc, now) {
                    Ok(accepted) => accepted.matched_set.map_or(0, place),
                    Err(PolicyError::Measurements(mut mismatches)) => {
                        for m in &mut mismatches {
                            m.set = place(m.set);
                        }
                        return Err(PolicyError::Measurements(mismatches).into());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Evidence::GcpCs(cs) => {
                let sets = ours
                    .iter()
                    .filter_map(|(_, set)| match set {
                        Measurements::GcpCs(set) => Some(set.clone()),
                        _ => None,
                    })
                    .collect();
                let mut policy = gcp::TrustPolicy::new(sets)?
                    .allow_debug(expectation.allow_debug)
                    .max_clock_skew(expectation.max_clock_skew);
                policy = match expectation.max_age {
                    Some(max_age) => policy.max_age(max_age),
                    None => policy.without_age_limit(),
                };
                if let Some(nonce) = &expectation.nonce {
                    policy = policy.expect_nonce(nonce.clone());
                }
                if let Some(audience) = &expectation.audience {
                    policy = policy.expect_audience(audience.clone());
                }
                match policy.check_verified(cs, now) {
                    Ok(matched) => matched.map_or(0, place),
                    Err(PolicyError::Claims(mut mismatches)) => {
                        for m in &mut mismatches {
                            m.set = place(m.set);
                        }
                        return Err(PolicyError::Claims(mismatches).into());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        Ok(Appraisal {
            evidence,
            matched_set,
        })
    }
}

/// What a relying party requires of one attester's evidence, whatever its provider.
#[derive(Debug, Clone)]
pub struct Expectation {
    sets: Vec<Measurements>,
    allow_debug: bool,
    max_age: Option<Duration>,
    max_clock_skew: Duration,
    nonce: Option<Vec<u8>>,
    audience: Option<String>,
}

impl Expectation {
    /// Evidence must match one of `sets` (several during a rollout). An empty list is an
    /// error: there is no "accept anything" by omission.
    pub fn new(sets: Vec<Measurements>) -> Result<Self, PolicyError> {
        if sets.is_empty() {
            return Err(PolicyError::NoMeasurementSets);
        }
        Ok(Expectation {
            sets,
            allow_debug: false,
            max_age: Some(DEFAULT_MAX_AGE),
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
            nonce: None,
            audience: None,
        })
    }

    /// Accept evidence of a debug-mode TEE. Never in production: there the host can read
    /// the TEE's memory.
    pub fn allow_debug(mut self, allow: bool) -> Self {
        self.allow_debug = allow;
        self
    }

    /// Refuse evidence made longer than this before the check (default
    /// [`DEFAULT_MAX_AGE`]).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Accept evidence of any age: for auditing archived evidence, never for a live
    /// peer, whose evidence could otherwise be replayed indefinitely.
    pub fn without_age_limit(mut self) -> Self {
        self.max_age = None;
        self
    }

    /// How far ahead of the checker's clock evidence may be dated.
    pub fn max_clock_skew(mut self, skew: Duration) -> Self {
        self.max_clock_skew = skew;
        self
    }

    /// Require the evidence to carry exactly this nonce.
    pub fn expect_nonce(mut self, nonce: Vec<u8>) -> Self {
        self.nonce = Some(nonce);
        self
    }

    /// Require evidence that names an audience (Confidential Space's `aud`) to name
    /// exactly this one; nodes expect [`gcp::CUSTODY_AUDIENCE`] of their peers.
    pub fn expect_audience(mut self, audience: String) -> Self {
        self.audience = Some(audience);
        self
    }
}

/// Evidence that verified under a trusted root and met an [`Expectation`].
#[derive(Debug, Clone)]
pub struct Appraisal {
    evidence: Verified<Evidence>,
    matched_set: usize,
}

impl Appraisal {
    pub fn provider(&self) -> Provider {
        self.evidence.provider()
    }

    /// The identity the evidence proves: the place, in the expectation's list, of the
    /// measurement set it matched.
    pub fn matched_set(&self) -> usize {
        self.matched_set
    }

    /// What the evidence binds.
    pub fn binding(&self) -> Binding<'_> {
        self.evidence.binding()
    }

    /// When the evidence was made, since the Unix epoch.
    pub fn time(&self) -> Duration {
        self.evidence.time()
    }

    /// The verified evidence itself.
    pub fn evidence(&self) -> &Verified<Evidence> {
        &self.evidence
    }
}
