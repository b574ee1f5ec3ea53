//! The node's per-boot TLS identity: a P-256 key generated inside the node and a
//! self-signed certificate carrying it. The certificate proves nothing by itself; peers
//! trust the key because the node's attestation document binds it.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use der::asn1::{Any, BitString, ObjectIdentifier};
use der::{Decode, Encode, Sequence};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use x509_cert::certificate::Version;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use zeroize::Zeroizing;

const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const PRIME256V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// The certificate outlives any connection; connections re-attest long before.
const CERT_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    #[error("key generation failed")]
    KeyGeneration,
    #[error("certificate encoding: {0}")]
    Encoding(String),
}

/// A TLS key pair and its self-signed certificate.
pub struct TlsIdentity {
    pkcs8: Zeroizing<Vec<u8>>,
    cert_der: Vec<u8>,
    spki_der: Vec<u8>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("spki", &hex::encode(&self.spki_der))
            .field("key", &"<redacted>")
            .finish()
    }
}

#[derive(Sequence)]
struct Tbs {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    version: Version,
    serial_number: SerialNumber,
    signature: AlgorithmIdentifierOwned,
    issuer: Name,
    validity: Validity,
    subject: Name,
    subject_public_key_info: SubjectPublicKeyInfoOwned,
}

#[derive(Sequence)]
struct Cert {
    tbs: Tbs,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
}

impl TlsIdentity {
    /// A fresh key and certificate for `node_id`, valid from `now` (backdated an hour).
    pub fn generate(node_id: &str, now: SystemTime) -> Result<Self, IdentityError> {
        let encoding = |e: der::Error| IdentityError::Encoding(e.to_string());
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|_| IdentityError::KeyGeneration)?;
        let pkcs8 = Zeroizing::new(
            key.to_pkcs8v1()
                .map_err(|_| IdentityError::KeyGeneration)?
                .as_ref()
                .to_vec(),
        );
        let rng = SystemRandom::new();
        let mut serial = [0u8; 16];
        rng.fill(&mut serial)
            .map_err(|_| IdentityError::KeyGeneration)?;
        serial[0] = (serial[0] & 0x7f) | 0x01;

        let spki = SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned {
                oid: ID_EC_PUBLIC_KEY,
                parameters: Some(Any::encode_from(&PRIME256V1).map_err(encoding)?),
            },
            subject_public_key: BitString::from_bytes(key.public_key().as_ref())
                .map_err(encoding)?,
        };
        let spki_der = spki.to_der().map_err(encoding)?;
        let name = Name::from_str(&format!("CN={node_id},O=tee-custody node")).map_err(encoding)?;
        let whole_seconds = |t: SystemTime| {
            let secs = t
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            Time::try_from(UNIX_EPOCH + Duration::from_secs(secs)).map_err(encoding)
        };
        let not_before = now.checked_sub(Duration::from_secs(3600)).unwrap_or(now);
        let algorithm = AlgorithmIdentifierOwned {
            oid: ECDSA_WITH_SHA256,
            parameters: None,
        };
        let tbs = Tbs {
            version: Version::V3,
            serial_number: SerialNumber::new(&serial).map_err(encoding)?,
            signature: algorithm.clone(),
            issuer: name.clone(),
            validity: Validity::new(
                whole_seconds(not_before)?,
                whole_seconds(now + CERT_LIFETIME)?,
            ),
            subject: name,
            subject_public_key_info: spki,
        };
        let signature = key
            .sign(&rng, &tbs.to_der().map_err(encoding)?)
            .map_err(|_| IdentityError::KeyGeneration)?;
        let cert_der = Cert {
            tbs,
            signature_algorithm: algorithm,
            signature: BitString::from_bytes(signature.as_ref()).map_err(encoding)?,
        }
        .to_der()
        .map_err(encoding)?;
        Ok(TlsIdentity {
            pkcs8,
            cert_der,
            spki_der,
        })
    }

    /// DER SubjectPublicKeyInfo of the TLS key: what attestation documents bind.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    pub(crate) fn certificate(&self) -> CertificateDer<'static> {
        CertificateDer::from(self.cert_der.clone())
    }

    pub(crate) fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.pkcs8.to_vec()))
    }
}

/// The DER SubjectPublicKeyInfo inside a certificate presented by a peer.
pub(crate) fn spki_of(cert: &[u8]) -> Option<Vec<u8>> {
    let cert = x509_cert::Certificate::from_der(cert).ok()?;
    cert.tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_carries_the_key() {
        let id = TlsIdentity::generate("node-1", SystemTime::now()).unwrap();
        assert_eq!(spki_of(&id.cert_der).unwrap(), id.spki_der);
        let other = TlsIdentity::generate("node-1", SystemTime::now()).unwrap();
        assert_ne!(other.spki_der, id.spki_der);
        assert!(!format!("{id:?}").contains(&hex::encode(&id.pkcs8[..8])));
    }
}
