//! Chains that break one rule each, for tests, benchmarks and fuzz seeds: a simulated
//! attester whose tokens are signed as usual but whose `x5c` a verifier must refuse.
//! Not part of the API.

use super::ca::{self, Issuer, SimCsCa, ca_profile, generate_key, leaf_profile};
use super::{SimCsAttester, SimWorkload, issue_leaf};
use crate::attester::AttestError;
use crate::gcp::chain::RsaPublicKey;
use crate::nitro::nsm::sim::{CertProfile, der_err};
use aws_lc_rs::signature::KeyPair;
use der::Encode;
use der::asn1::UintRef;
use der::oid::ObjectIdentifier;
use std::time::SystemTime;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
use x509_cert::spki::AlgorithmIdentifierOwned;

/// sha1WithRSAEncryption, which no chain may use.
const SHA1_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");

/// How the attester's chain differs from Google's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chain {
    /// Leaf, intermediate, root, as Google's.
    Genuine,
    /// The intermediate is marked as no CA.
    IntermediateNotCa,
    /// The intermediate may not sign certificates (key usage CRL signing only).
    IntermediateWithoutCertSign,
    /// The leaf is marked as a CA.
    LeafIsCa,
    /// The leaf's key usage excludes digital signatures.
    LeafWithoutDigitalSignature,
    /// The leaf names the intermediate as issuer but another key signed it.
    LeafSignedByAnotherKey,
    /// The leaf's certificate carries a 1024-bit RSA key (tokens are still signed with
    /// the attester's 2048-bit key: the chain check must refuse first).
    LeafKey1024,
    /// The leaf's certificate says sha1WithRSAEncryption.
    LeafSha1,
    /// A second intermediate between the first and the leaf: four certificates.
    ExtraIntermediate,
}

impl SimCsAttester {
    /// An attester whose chain is shaped as `chain` says.
    pub fn with_chain(
        ca: &SimCsCa,
        workload: SimWorkload,
        now: SystemTime,
        chain: Chain,
    ) -> Result<Self, AttestError> {
        let leaf = generate_key()?;
        let leaf_public = leaf.public_key().as_ref().to_vec();
        let root = ca.root.cert_der.clone();
        let reissued = |profile: CertProfile| {
            ca.root
                .issue_intermediate(ca::INTERMEDIATE_SUBJECT, now, profile)
        };
        let under = |issuer: &Issuer, profile: CertProfile, key: &[u8]| {
            issue_leaf(issuer, key, now, profile)
        };
        let mut x5c = match chain {
            Chain::Genuine => vec![
                under(&ca.intermediate, leaf_profile(), &leaf_public)?,
                ca.intermediate.cert_der.clone(),
            ],
            Chain::IntermediateNotCa | Chain::IntermediateWithoutCertSign => {
                let mut profile = ca_profile();
                if chain == Chain::IntermediateNotCa {
                    profile.basic_constraints = Some(BasicConstraints {
                        ca: false,
                        path_len_constraint: None,
                    });
                } else {
                    profile.key_usage = Some(KeyUsage(KeyUsages::CRLSign.into()));
                }
                let intermediate = reissued(profile)?;
                vec![
                    under(&intermediate, leaf_profile(), &leaf_public)?,
                    intermediate.cert_der,
                ]
            }
            Chain::LeafIsCa | Chain::LeafWithoutDigitalSignature | Chain::LeafSha1 => {
                let mut profile = leaf_profile();
                match chain {
                    Chain::LeafIsCa => profile = ca_profile(),
                    Chain::LeafWithoutDigitalSignature => {
                        profile.key_usage = Some(KeyUsage(KeyUsages::KeyEncipherment.into()));
                    }
                    _ => {
                        profile.signature_algorithm = Some(AlgorithmIdentifierOwned {
                            oid: SHA1_WITH_RSA,
                            parameters: None,
                        });
                    }
                }
                vec![
                    under(&ca.intermediate, profile, &leaf_public)?,
                    ca.intermediate.cert_der.clone(),
                ]
            }
            Chain::LeafSignedByAnotherKey => {
                // An impostor CA with the intermediate's name and its own key.
                let impostor = reissued(ca_profile())?;
                vec![
                    under(&impostor, leaf_profile(), &leaf_public)?,
                    ca.intermediate.cert_der.clone(),
                ]
            }
            Chain::LeafKey1024 => vec![
                under(&ca.intermediate, leaf_profile(), &rsa_1024_public_key()?)?,
                ca.intermediate.cert_der.clone(),
            ],
            Chain::ExtraIntermediate => {
                let second = ca.intermediate.issue_intermediate(
                    "CN=tee-custody simulated second intermediate,O=tee-custody",
                    now,
                    ca_profile(),
                )?;
                vec![
                    under(&second, leaf_profile(), &leaf_public)?,
                    second.cert_der,
                    ca.intermediate.cert_der.clone(),
                ]
            }
        };
        x5c.push(root);
        Ok(SimCsAttester::from_parts(leaf, x5c, workload))
    }
}

/// A DER `RSAPublicKey` with a 1024-bit modulus. Only its size matters: nothing is ever
/// verified with it.
fn rsa_1024_public_key() -> Result<Vec<u8>, AttestError> {
    let mut modulus = vec![0xc5u8; 128];
    if let Some(last) = modulus.last_mut() {
        *last = 0x01;
    }
    let exponent = [0x01, 0x00, 0x01];
    RsaPublicKey {
        modulus: UintRef::new(&modulus).map_err(der_err("modulus"))?,
        public_exponent: UintRef::new(&exponent).map_err(der_err("exponent"))?,
    }
    .to_der()
    .map_err(der_err("RSA public key"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_small_key_has_1024_bits() {
        let der = rsa_1024_public_key().unwrap();
        let key = <RsaPublicKey<'_> as der::Decode>::from_der(&der).unwrap();
        assert_eq!(key.modulus.as_bytes().len(), 128);
        assert_eq!(key.modulus.as_bytes().first(), Some(&0xc5));
    }
}
