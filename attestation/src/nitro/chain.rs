//! X.509 chain checks for attestation documents: `cabundle[0]` (a pinned root) through
//! the intermediates to the leaf. Nitro chains use ECDSA P-384 with SHA-384 throughout,
//! and nothing else is accepted. The checks that do not depend on the algorithm
//! (validity, extensions, CA and leaf constraints) also serve Confidential Space's RSA
//! chains (`crate::gcp`).

use crate::error::{CertProblem, CertSlot, VerifyError};
use crate::time_fmt::rfc3339;
use aws_lc_rs::signature::{self, UnparsedPublicKey};
use der::oid::ObjectIdentifier;
use der::{Decode, Header, Reader, SliceReader};
use std::time::Duration;
use x509_cert::Certificate;
use x509_cert::certificate::Version;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};

pub(crate) const ECDSA_WITH_SHA384: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
pub(crate) const ID_EC_PUBLIC_KEY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
pub(crate) const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
const SUBJECT_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
const AUTHORITY_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.35");
const CRL_DISTRIBUTION_POINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.31");
/// Extensions this verifier understands; any other marked critical is refused.
const KNOWN_EXTENSIONS: [ObjectIdentifier; 5] = [
    BASIC_CONSTRAINTS,
    KEY_USAGE,
    SUBJECT_KEY_ID,
    AUTHORITY_KEY_ID,
    CRL_DISTRIBUTION_POINTS,
];
/// Uncompressed P-384 point: 0x04 || x || y.
const P384_POINT_LEN: usize = 97;

/// One decoded certificate, with the exact bytes its issuer signed.
#[derive(Debug)]
pub(crate) struct ParsedCert<'a> {
    pub(crate) cert: Certificate,
    tbs: &'a [u8],
}

impl<'a> ParsedCert<'a> {
    pub(crate) fn parse(der: &'a [u8]) -> Result<Self, CertProblem> {
        let malformed = |e: der::Error| CertProblem::Malformed(e.to_string());
        let cert = Certificate::from_der(der).map_err(malformed)?;
        // The signed bytes are the first element of the outer SEQUENCE, as they appear
        // on the wire (DER is canonical, so re-encoding would agree, but costs time).
        let mut reader = SliceReader::new(der).map_err(malformed)?;
        Header::decode(&mut reader).map_err(malformed)?;
        let tbs = reader.tlv_bytes().map_err(malformed)?;
        Ok(ParsedCert { cert, tbs })
    }

    /// The `tbsCertificate` bytes exactly as they appear on the wire: what the issuer signed.
    pub(crate) fn tbs(&self) -> &'a [u8] {
        self.tbs
    }

    pub(crate) fn public_key(&self) -> Result<&[u8], CertProblem> {
        let spki = self.cert.tbs_certificate().subject_public_key_info();
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        if spki.algorithm.oid != ID_EC_PUBLIC_KEY || curve != Some(SECP384R1) {
            return Err(CertProblem::PublicKey);
        }
        match spki.subject_public_key.as_bytes() {
            Some(point) if point.len() == P384_POINT_LEN && point.first() == Some(&4) => Ok(point),
            _ => Err(CertProblem::PublicKey),
        }
    }

    fn check_algorithm(&self) -> Result<(), CertProblem> {
        let outer = self.cert.signature_algorithm();
        let inner = self.cert.tbs_certificate().signature();
        // RFC 5758: ecdsa-with-SHA384 has no parameters, not even NULL.
        if outer.oid != ECDSA_WITH_SHA384 || outer.parameters.is_some() {
            return Err(CertProblem::SignatureAlgorithm(outer.oid.to_string()));
        }
        if outer != inner {
            return Err(CertProblem::AlgorithmMismatch);
        }
        Ok(())
    }

    pub(crate) fn check_validity(&self, at: Duration) -> Result<(), CertProblem> {
        let validity = self.cert.tbs_certificate().validity();
        let not_before = validity.not_before.to_unix_duration();
        let not_after = validity.not_after.to_unix_duration();
        if at < not_before {
            return Err(CertProblem::NotYetValid {
                not_before: rfc3339(not_before),
            });
        }
        if at > not_after {
            return Err(CertProblem::Expired {
                not_after: rfc3339(not_after),
            });
        }
        Ok(())
    }

    /// Refuses duplicated extensions and critical ones this verifier does not know.
    pub(crate) fn check_extensions(&self) -> Result<(), CertProblem> {
        let extensions: &[x509_cert::ext::Extension] = self
            .cert
            .tbs_certificate()
            .extensions()
            .map_or(&[], |e| e.as_slice());
        for (i, ext) in extensions.iter().enumerate() {
            if extensions
                .iter()
                .skip(i + 1)
                .any(|later| later.extn_id == ext.extn_id)
            {
                return Err(CertProblem::DuplicateExtension(ext.extn_id.to_string()));
            }
            if ext.critical && !KNOWN_EXTENSIONS.contains(&ext.extn_id) {
                return Err(CertProblem::UnknownCriticalExtension(
                    ext.extn_id.to_string(),
                ));
            }
        }
        Ok(())
    }

    fn basic_constraints(&self) -> Result<Option<BasicConstraints>, CertProblem> {
        self.cert
            .tbs_certificate()
            .get_extension::<BasicConstraints>()
            .map(|found| found.map(|(_, bc)| bc))
            .map_err(|e| CertProblem::Malformed(format!("basic constraints: {e}")))
    }

    fn key_usage(&self) -> Result<Option<KeyUsage>, CertProblem> {
        self.cert
            .tbs_certificate()
            .get_extension::<KeyUsage>()
            .map(|found| found.map(|(_, ku)| ku))
            .map_err(|e| CertProblem::Malformed(format!("key usage: {e}")))
    }

    /// This certificate acts as a CA with `below` CA certificates under it.
    pub(crate) fn check_ca(&self, below: usize) -> Result<(), CertProblem> {
        let bc = self.basic_constraints()?.ok_or(CertProblem::NotCa)?;
        if !bc.ca {
            return Err(CertProblem::NotCa);
        }
        if let Some(limit) = bc.path_len_constraint
            && below > usize::from(limit)
        {
            return Err(CertProblem::PathLength { limit, below });
        }
        match self.key_usage()? {
            Some(ku) if ku.key_cert_sign() => Ok(()),
            _ => Err(CertProblem::KeyUsage("certificate signing")),
        }
    }

    pub(crate) fn check_leaf(&self) -> Result<(), CertProblem> {
        if self.basic_constraints()?.is_some_and(|bc| bc.ca) {
            return Err(CertProblem::LeafIsCa);
        }
        match self.key_usage()? {
            Some(ku) if !ku.digital_signature() => Err(CertProblem::KeyUsage("digital signatures")),
            _ => Ok(()),
        }
    }

    /// Checks that `issuer` issued and signed this certificate.
    fn check_issued_by(&self, issuer: &ParsedCert<'_>) -> Result<(), CertProblem> {
        if self.cert.tbs_certificate().issuer() != issuer.cert.tbs_certificate().subject() {
            return Err(CertProblem::IssuerMismatch);
        }
        let key = issuer.public_key()?;
        let sig = self
            .cert
            .signature()
            .as_bytes()
            .ok_or(CertProblem::BadSignature)?;
        UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_ASN1, key)
            .verify(self.tbs, sig)
            .map_err(|_| CertProblem::BadSignature)
    }

    /// Checks that this certificate signed itself; for roots that are being pinned.
    #[cfg(feature = "sim")]
    pub(crate) fn check_self_signed_ca(&self, at: Duration) -> Result<(), CertProblem> {
        self.check_common(at)?;
        self.check_ca(0)?;
        self.check_issued_by(self)
    }

    fn check_common(&self, at: Duration) -> Result<(), CertProblem> {
        if self.cert.tbs_certificate().version() != Version::V3 {
            return Err(CertProblem::Version);
        }
        self.check_algorithm()?;
        self.public_key()?;
        self.check_validity(at)?;
        self.check_extensions()
    }
}

/// SHA-256 of a certificate's DER.
pub(crate) fn fingerprint(der: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// What a verified chain vouches for: the leaf's key and when the leaf is valid.
#[derive(Debug)]
pub(crate) struct VerifiedLeaf {
    /// Uncompressed P-384 point.
    pub(crate) public_key: Vec<u8>,
    pub(crate) not_before: Duration,
    pub(crate) not_after: Duration,
}

/// Verifies `cabundle ++ [leaf]` at time `at` and returns what the leaf vouches for.
/// The caller has already checked that `cabundle[0]` is a trusted root.
pub(crate) fn verify_chain(
    cabundle: &[Vec<u8>],
    leaf: &[u8],
    at: Duration,
) -> Result<VerifiedLeaf, VerifyError> {
    let fail =
        |slot: CertSlot| move |problem: CertProblem| VerifyError::Certificate { slot, problem };
    let slots: Vec<(CertSlot, &[u8])> = cabundle
        .iter()
        .enumerate()
        .map(|(i, der)| (CertSlot::Bundle(i), der.as_slice()))
        .chain(std::iter::once((CertSlot::Leaf, leaf)))
        .collect();
    let certs = slots
        .iter()
        .map(|(slot, der)| ParsedCert::parse(der).map_err(fail(*slot)))
        .collect::<Result<Vec<_>, _>>()?;

    let cas = certs.len().saturating_sub(1);
    let mut issuer: Option<&ParsedCert<'_>> = None;
    for (position, ((slot, _), cert)) in slots.iter().zip(&certs).enumerate() {
        cert.check_common(at).map_err(fail(*slot))?;
        if let Some(parent) = issuer {
            cert.check_issued_by(parent).map_err(fail(*slot))?;
        }
        if position < cas {
            // CAs strictly below this one, not counting the leaf.
            cert.check_ca(cas - position - 1).map_err(fail(*slot))?;
        } else {
            cert.check_leaf().map_err(fail(*slot))?;
        }
        issuer = Some(cert);
    }
    let leaf_cert = certs.last().ok_or(VerifyError::Certificate {
        slot: CertSlot::Leaf,
        problem: CertProblem::Malformed("missing".to_owned()),
    })?;
    let (not_before, not_after) = validity(&leaf_cert.cert);
    Ok(VerifiedLeaf {
        public_key: leaf_cert
            .public_key()
            .map(<[u8]>::to_vec)
            .map_err(fail(CertSlot::Leaf))?,
        not_before,
        not_after,
    })
}

/// A certificate's subject as an RFC 4514 string, for display.
pub(crate) fn subject_string(cert: &Certificate) -> String {
    cert.tbs_certificate().subject().to_string()
}

/// Validity window of a certificate, as Unix durations.
pub(crate) fn validity(cert: &Certificate) -> (Duration, Duration) {
    let v = cert.tbs_certificate().validity();
    (
        v.not_before.to_unix_duration(),
        v.not_after.to_unix_duration(),
    )
}

#[cfg(test)]
#[cfg(feature = "sim")]
mod tests;
