//! The Confidential Space verifier: root, chain and signature of a token.

use crate::Verified;
use crate::error::{CertProblem, CertSlot, VerifyError};
use crate::gcp::chain;
use crate::gcp::evidence::CsEvidence;
use crate::nitro::chain::fingerprint;
use crate::time_fmt::rfc3339;
use aws_lc_rs::signature::{self, UnparsedPublicKey};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// DER SHA-256 of Google's "Confidential Space Root CA" (RSA-4096, valid 2024-01-19 to
/// 2034-01-16), the root every PKI token's `x5c` ends in.
pub const GOOGLE_CS_ROOT_SHA256: [u8; 32] = [
    0x14, 0x8b, 0x29, 0x38, 0x21, 0xbb, 0x0c, 0x6a, 0x31, 0x7f, 0x41, 0x3c, 0x8b, 0xa4, 0x75, 0x81,
    0x40, 0x91, 0xcb, 0x22, 0xd4, 0x9b, 0x9e, 0x3c, 0x94, 0x19, 0x8d, 0xb8, 0xe8, 0xf8, 0x6c, 0x39,
];

/// Checks tokens against a fixed set of pinned roots.
#[derive(Debug, Clone)]
pub struct Verifier {
    roots: Vec<[u8; 32]>,
}

impl Verifier {
    /// A verifier that trusts only Google's Confidential Space root.
    pub fn google() -> Self {
        Verifier {
            roots: vec![GOOGLE_CS_ROOT_SHA256],
        }
    }

    /// A verifier that trusts no root: every token fails as untrusted.
    pub fn none() -> Self {
        Verifier { roots: Vec::new() }
    }

    /// Additionally trusts a simulated attester's root certificate (DER), which must be a
    /// self-signed RSA CA valid at `at`. Exists only in builds with the `sim` feature: a
    /// production build cannot be made to trust a simulated root.
    #[cfg(feature = "sim")]
    pub fn trust_simulated_root(
        mut self,
        root_der: &[u8],
        at: SystemTime,
    ) -> Result<Self, VerifyError> {
        let at = since_epoch(at)?;
        let cert =
            crate::nitro::chain::ParsedCert::parse(root_der).map_err(VerifyError::SimulatedRoot)?;
        chain::check_self_signed_ca(&cert, at).map_err(VerifyError::SimulatedRoot)?;
        let fp = fingerprint(root_der);
        if !self.roots.contains(&fp) {
            self.roots.push(fp);
        }
        Ok(self)
    }

    /// The DER SHA-256 of each trusted root.
    pub fn roots(&self) -> &[[u8; 32]] {
        &self.roots
    }

    /// Keeps only the trusted root whose DER SHA-256 is `pin`, if any.
    pub(crate) fn keep_only(mut self, pin: &[u8; 32]) -> Self {
        self.roots.retain(|root| root == pin);
        self
    }

    /// Parses and verifies a token or bundle at time `at`.
    pub fn verify(
        &self,
        bytes: &[u8],
        at: SystemTime,
    ) -> Result<Verified<CsEvidence>, VerifyError> {
        self.verify_evidence(CsEvidence::parse(bytes)?, at)
    }

    /// Verifies parsed evidence at time `at`: the last certificate of `x5c` is a trusted
    /// root, every certificate is valid at `at` and signed by the one after it, the
    /// leaf's key signed the token, and the token was issued while its leaf was valid.
    /// A bundle's values were checked against the token's `eat_nonce` when it was parsed.
    pub fn verify_evidence(
        &self,
        evidence: CsEvidence,
        at: SystemTime,
    ) -> Result<Verified<CsEvidence>, VerifyError> {
        let at = since_epoch(at)?;
        let token = evidence.token();
        let x5c = token.x5c();
        let root = x5c.last().ok_or(VerifyError::Certificate {
            slot: CertSlot::X5c(0),
            problem: CertProblem::Malformed("x5c is empty".to_owned()),
        })?;
        let root_fp = fingerprint(root);
        if !self.roots.contains(&root_fp) {
            return Err(VerifyError::UntrustedRoot {
                fingerprint: hex::encode(root_fp),
            });
        }
        let leaf = chain::verify_chain(x5c, at)?;
        UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &leaf.public_key)
            .verify(token.signing_input(), token.signature())
            .map_err(|_| VerifyError::TokenSignature)?;
        // A token issued outside its leaf's validity is a lie about when it was made.
        let iat = token.claims().issued_at();
        if iat < leaf.not_before || iat >= leaf.not_after + Duration::from_secs(1) {
            return Err(VerifyError::IssuedOutsideLeafValidity { iat: rfc3339(iat) });
        }
        Ok(Verified::new(evidence, at))
    }
}

pub(crate) fn since_epoch(at: SystemTime) -> Result<Duration, VerifyError> {
    at.duration_since(UNIX_EPOCH)
        .map_err(|_| VerifyError::TimeBeforeEpoch)
}
