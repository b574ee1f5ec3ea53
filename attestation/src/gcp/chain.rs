//! X.509 chain checks for a token's `x5c`: the leaf (`x5c[0]`) through "Confidential
//! Space Intermediate CA" to the root (the last), which the caller has already found
//! among its pinned roots. Google's chain is RSA with SHA-256 throughout (PKCS #1 v1.5),
//! with keys of 2048 bits and more; nothing else is accepted.
//!
//! Validity, extensions, CA and leaf constraints are checked as for Nitro's chains.

use crate::error::{CertProblem, CertSlot, VerifyError};
use crate::nitro::chain::{ParsedCert, validity};
use aws_lc_rs::signature::{self, UnparsedPublicKey};
use der::asn1::UintRef;
use der::oid::ObjectIdentifier;
use der::{Decode, Sequence};
use std::time::Duration;
use x509_cert::certificate::Version;

pub(crate) const SHA256_WITH_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
pub(crate) const RSA_ENCRYPTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// RSA moduli accepted, in bits: what the signature algorithm accepts, and no less than
/// current guidance.
pub const MIN_RSA_BITS: usize = 2048;
pub const MAX_RSA_BITS: usize = 8192;

/// PKCS #1 `RSAPublicKey`.
#[derive(Sequence)]
pub(crate) struct RsaPublicKey<'a> {
    pub(crate) modulus: UintRef<'a>,
    pub(crate) public_exponent: UintRef<'a>,
}

/// The RSA key of a certificate: the DER `RSAPublicKey`, which the verifier takes, after
/// checking its size.
pub(crate) fn rsa_public_key<'a>(cert: &'a ParsedCert<'_>) -> Result<&'a [u8], CertProblem> {
    let spki = cert.cert.tbs_certificate().subject_public_key_info();
    // RFC 3279: the parameters are NULL; absent ones are tolerated.
    if spki.algorithm.oid != RSA_ENCRYPTION
        || spki
            .algorithm
            .parameters
            .as_ref()
            .is_some_and(|p| !p.is_null())
    {
        return Err(CertProblem::RsaPublicKey);
    }
    let der = spki
        .subject_public_key
        .as_bytes()
        .ok_or(CertProblem::RsaPublicKey)?;
    let key = RsaPublicKey::from_der(der).map_err(|_| CertProblem::RsaPublicKey)?;
    let bits = bit_length(key.modulus.as_bytes());
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(CertProblem::RsaKeySize {
            bits,
            min: MIN_RSA_BITS,
            max: MAX_RSA_BITS,
        });
    }
    let exponent = key.public_exponent.as_bytes();
    // An odd exponent of at least 3, in at most 64 bits.
    if exponent.len() > 8 || exponent == [1] || exponent.last().is_none_or(|b| b % 2 == 0) {
        return Err(CertProblem::RsaPublicKey);
    }
    Ok(der)
}

/// Bits of a big-endian unsigned integer without leading zero bytes.
fn bit_length(bytes: &[u8]) -> usize {
    match bytes.first() {
        None => 0,
        Some(first) => (bytes.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

fn check_algorithm(cert: &ParsedCert<'_>) -> Result<(), CertProblem> {
    let outer = cert.cert.signature_algorithm();
    let inner = cert.cert.tbs_certificate().signature();
    // RFC 4055: NULL parameters, which verifiers also accept absent.
    if outer.oid != SHA256_WITH_RSA || outer.parameters.as_ref().is_some_and(|p| !p.is_null()) {
        return Err(CertProblem::RsaSignatureAlgorithm(outer.oid.to_string()));
    }
    if outer != inner {
        return Err(CertProblem::AlgorithmMismatch);
    }
    Ok(())
}

fn check_common(cert: &ParsedCert<'_>, at: Duration) -> Result<(), CertProblem> {
    if cert.cert.tbs_certificate().version() != Version::V3 {
        return Err(CertProblem::Version);
    }
    check_algorithm(cert)?;
    rsa_public_key(cert)?;
    cert.check_validity(at)?;
    cert.check_extensions()
}

/// Checks that `issuer` issued and signed `cert`.
fn check_issued_by(cert: &ParsedCert<'_>, issuer: &ParsedCert<'_>) -> Result<(), CertProblem> {
    if cert.cert.tbs_certificate().issuer() != issuer.cert.tbs_certificate().subject() {
        return Err(CertProblem::IssuerMismatch);
    }
    let key = rsa_public_key(issuer)?;
    let sig = cert
        .cert
        .signature()
        .as_bytes()
        .ok_or(CertProblem::BadSignature)?;
    UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, key)
        .verify(cert.tbs(), sig)
        .map_err(|_| CertProblem::BadSignature)
}

/// Checks a root that is about to be trusted: a self-signed RSA CA valid at `at`.
#[cfg(feature = "sim")]
pub(crate) fn check_self_signed_ca(cert: &ParsedCert<'_>, at: Duration) -> Result<(), CertProblem> {
    check_common(cert, at)?;
    cert.check_ca(0)?;
    check_issued_by(cert, cert)
}

/// What a verified chain vouches for: the leaf's key and when the leaf is valid.
#[derive(Debug)]
pub(crate) struct VerifiedLeaf {
    /// DER `RSAPublicKey`.
    pub(crate) public_key: Vec<u8>,
    pub(crate) not_before: Duration,
    pub(crate) not_after: Duration,
}

/// Verifies `x5c` (leaf first, root last) at time `at` and returns what the leaf vouches
/// for. The caller has already checked that the last certificate is a trusted root.
pub(crate) fn verify_chain(x5c: &[Vec<u8>], at: Duration) -> Result<VerifiedLeaf, VerifyError> {
    let fail =
        |slot: CertSlot| move |problem: CertProblem| VerifyError::Certificate { slot, problem };
    let certs = x5c
        .iter()
        .enumerate()
        .map(|(i, der)| ParsedCert::parse(der).map_err(fail(CertSlot::X5c(i))))
        .collect::<Result<Vec<_>, _>>()?;
    // From the root down: each certificate is checked, then checked against its issuer.
    let mut issuer: Option<&ParsedCert<'_>> = None;
    for (i, cert) in certs.iter().enumerate().rev() {
        let slot = CertSlot::X5c(i);
        check_common(cert, at).map_err(fail(slot))?;
        if let Some(parent) = issuer {
            check_issued_by(cert, parent).map_err(fail(slot))?;
        }
        if i > 0 {
            // CAs strictly below this one, not counting the leaf.
            cert.check_ca(i - 1).map_err(fail(slot))?;
        } else {
            cert.check_leaf().map_err(fail(slot))?;
        }
        issuer = Some(cert);
    }
    let leaf = certs.first().ok_or(VerifyError::Certificate {
        slot: CertSlot::X5c(0),
        problem: CertProblem::Malformed("missing".to_owned()),
    })?;
    let (not_before, not_after) = validity(&leaf.cert);
    Ok(VerifiedLeaf {
        public_key: rsa_public_key(leaf)
            .map(<[u8]>::to_vec)
            .map_err(fail(CertSlot::X5c(0)))?,
        not_before,
        not_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[1]), 1);
        assert_eq!(bit_length(&[0x80, 0]), 16);
        assert_eq!(bit_length(&[0x7f; 256]), 2047);
        assert_eq!(bit_length(&[0x80; 256]), 2048);
    }
}
