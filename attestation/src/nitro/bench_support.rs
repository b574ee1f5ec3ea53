//! The signature checks that [`crate::nitro::Verifier`] performs on a document, exposed so a
//! benchmark can time them on their own and compare them with full verification.
//! Not part of the API.

use crate::error::{CertProblem, CertSlot, VerifyError};
use crate::nitro::chain::ParsedCert;
use crate::nitro::document::NitroDocument;
use aws_lc_rs::signature::{self, EcdsaVerificationAlgorithm};

/// One ECDSA P-384 signature check: `algorithm` verifies `signature` over `message`
/// with `public_key` (an uncompressed point).
#[derive(Debug, Clone)]
pub struct SignatureCheck {
    pub algorithm: &'static EcdsaVerificationAlgorithm,
    pub public_key: Vec<u8>,
    pub message: Vec<u8>,
    pub signature: Vec<u8>,
}

/// The signature checks that verifying `bytes` performs, in order: one per link of
/// `cabundle ++ [certificate]` (issuer key, the certificate's TBS bytes, its DER
/// signature), then the COSE_Sign1 signature (leaf key, Sig_structure, `r || s`).
///
/// Only extracts; nothing is verified here. Fails where the document or one of its
/// certificates cannot be decoded.
pub fn signature_checks(bytes: &[u8]) -> Result<Vec<SignatureCheck>, VerifyError> {
    let doc = NitroDocument::parse(bytes)?;
    let slots: Vec<(CertSlot, &[u8])> = doc
        .cabundle()
        .iter()
        .enumerate()
        .map(|(i, der)| (CertSlot::Bundle(i), der.as_slice()))
        .chain(std::iter::once((CertSlot::Leaf, doc.certificate())))
        .collect();
    let certs = slots
        .iter()
        .map(|&(slot, der)| {
            let cert = ParsedCert::parse(der).map_err(at(slot))?;
            Ok((slot, cert))
        })
        .collect::<Result<Vec<_>, VerifyError>>()?;

    let mut checks = Vec::with_capacity(certs.len());
    for pair in certs.windows(2) {
        let [(_, issuer), (slot, cert)] = pair else {
            continue;
        };
        let signature = cert
            .cert
            .signature()
            .as_bytes()
            .ok_or(CertProblem::BadSignature)
            .map_err(at(*slot))?;
        checks.push(SignatureCheck {
            algorithm: &signature::ECDSA_P384_SHA384_ASN1,
            public_key: issuer.public_key().map_err(at(*slot))?.to_vec(),
            message: cert.tbs().to_vec(),
            signature: signature.to_vec(),
        });
    }
    let (_, leaf) = certs.last().ok_or(VerifyError::Certificate {
        slot: CertSlot::Leaf,
        problem: CertProblem::Malformed("missing".to_owned()),
    })?;
    checks.push(SignatureCheck {
        algorithm: &signature::ECDSA_P384_SHA384_FIXED,
        public_key: leaf.public_key().map_err(at(CertSlot::Leaf))?.to_vec(),
        message: doc.signed_bytes().to_vec(),
        signature: doc.signature().to_vec(),
    });
    Ok(checks)
}

fn at(slot: CertSlot) -> impl Fn(CertProblem) -> VerifyError {
    move |problem| VerifyError::Certificate { slot, problem }
}
