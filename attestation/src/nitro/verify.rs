//! The Nitro verifier: signature, chain and root of an attestation document.

use crate::Verified;
use crate::error::VerifyError;
use crate::nitro::chain::{self, fingerprint};
use crate::nitro::document::NitroDocument;
use aws_lc_rs::signature::{self, UnparsedPublicKey};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// DER SHA-256 of the AWS Nitro Enclaves root certificate (G1).
pub const AWS_NITRO_ROOT_G1_SHA256: [u8; 32] = [
    0x64, 0x1a, 0x03, 0x21, 0xa3, 0xe2, 0x44, 0xef, 0xe4, 0x56, 0x46, 0x31, 0x95, 0xd6, 0x06, 0x31,
    0x7e, 0xd7, 0xcd, 0xcc, 0x3c, 0x17, 0x56, 0xe0, 0x98, 0x93, 0xf3, 0xc6, 0x8f, 0x79, 0xbb, 0x5b,
];

/// Checks documents against a fixed set of pinned roots.
#[derive(Debug, Clone)]
pub struct Verifier {
    roots: Vec<[u8; 32]>,
}

impl Verifier {
    /// A verifier that trusts only the AWS Nitro root G1.
    pub fn aws_nitro() -> Self {
        Verifier {
            roots: vec![AWS_NITRO_ROOT_G1_SHA256],
        }
    }

    /// A verifier that trusts no root: every document fails as untrusted.
    pub fn none() -> Self {
        Verifier { roots: Vec::new() }
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

    /// Additionally trusts a simulated NSM's root certificate (DER). The certificate must
    /// be a self-signed P-384 CA valid at `at`. Exists only in builds with the `sim`
    /// feature: a production build cannot be made to trust a simulated root.
    #[cfg(feature = "sim")]
    pub fn trust_simulated_root(
        mut self,
        root_der: &[u8],
        at: SystemTime,
    ) -> Result<Self, VerifyError> {
        let at = since_epoch(at)?;
        let cert =
            chain::ParsedCert::parse(root_der).map_err(|problem| VerifyError::Certificate {
                slot: crate::error::CertSlot::Bundle(0),
                problem,
            })?;
        cert.check_self_signed_ca(at)
            .map_err(|problem| VerifyError::Certificate {
                slot: crate::error::CertSlot::Bundle(0),
                problem,
            })?;
        self.roots.push(fingerprint(root_der));
        Ok(self)
    }

    /// Parses and verifies a document at time `at`.
    pub fn verify(
        &self,
        bytes: &[u8],
        at: SystemTime,
    ) -> Result<Verified<NitroDocument>, VerifyError> {
        self.verify_document(NitroDocument::parse(bytes)?, at)
    }

    /// Verifies an already parsed document at time `at`: the root is pinned, every
    /// certificate is valid at `at` and signed by the one before it, and the leaf's
    /// key signed the COSE structure.
    pub fn verify_document(
        &self,
        doc: NitroDocument,
        at: SystemTime,
    ) -> Result<Verified<NitroDocument>, VerifyError> {
        let at = since_epoch(at)?;
        let root = doc.cabundle().first().ok_or(VerifyError::Certificate {
            slot: crate::error::CertSlot::Bundle(0),
            problem: crate::error::CertProblem::Malformed("cabundle is empty".to_owned()),
        })?;
        let root_fp = fingerprint(root);
        if !self.roots.contains(&root_fp) {
            return Err(VerifyError::UntrustedRoot {
                fingerprint: hex::encode(root_fp),
            });
        }
        let leaf = chain::verify_chain(doc.cabundle(), doc.certificate(), at)?;
        UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, &leaf.public_key)
            .verify(doc.signed_bytes(), doc.signature())
            .map_err(|_| VerifyError::Signature)?;
        // The NSM signs with a leaf issued for the moment it attests: a timestamp outside
        // the leaf's validity is a lie about when the document was made.
        let ts = Duration::from_millis(doc.timestamp_ms());
        if ts < leaf.not_before || ts >= leaf.not_after + Duration::from_secs(1) {
            return Err(VerifyError::TimestampOutsideLeafValidity {
                timestamp_ms: doc.timestamp_ms(),
            });
        }
        Ok(Verified::new(doc, at))
    }
}

fn since_epoch(at: SystemTime) -> Result<Duration, VerifyError> {
    at.duration_since(UNIX_EPOCH)
        .map_err(|_| VerifyError::TimeBeforeEpoch)
}
