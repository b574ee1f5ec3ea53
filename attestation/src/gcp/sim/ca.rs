//! The simulated Confidential Space certificate authority: a root and an intermediate,
//! both RSA-2048 with SHA-256 and the extensions Google's carry, stored with their keys
//! in a private file shared by a simulated cluster; and the leaves they issue.

use crate::attester::AttestError;
use crate::gcp::chain::{RSA_ENCRYPTION, SHA256_WITH_RSA};
use crate::nitro::chain::ParsedCert;
use crate::nitro::nsm::sim::{
    CertProfile, crypto_err, der_err, issue_signed, load_or_create_private, sim_err,
};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use der::asn1::{Any, BitString, Null};
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
use x509_cert::name::Name;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use zeroize::Zeroizing;

/// Lifetime of the simulated root and of its intermediate.
const ROOT_LIFETIME: Duration = Duration::from_secs(20 * 365 * 24 * 3600);
const INTERMEDIATE_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Size limit of a stored simulated CA file.
const MAX_CA_FILE_LEN: u64 = 32 * 1024;
const CA_FILE_MAGIC: &str = "tee-custody simulated Confidential Space CA v1";
pub(crate) const ROOT_SUBJECT: &str =
    "CN=tee-custody simulated Confidential Space Root CA,OU=tee-custody simulator,O=tee-custody";
pub(crate) const INTERMEDIATE_SUBJECT: &str = "CN=tee-custody simulated Confidential Space \
     Intermediate CA,OU=tee-custody simulator,O=tee-custody";

/// One RSA key of the simulator and its certificate.
pub(crate) struct Issuer {
    pub(crate) key: RsaKeyPair,
    pkcs8: Zeroizing<Vec<u8>>,
    pub(crate) cert_der: Vec<u8>,
    pub(crate) name: Name,
}

/// The simulator's root and intermediate certificate authorities.
pub struct SimCsCa {
    pub(crate) root: Issuer,
    pub(crate) intermediate: Issuer,
}

impl fmt::Debug for SimCsCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimCsCa")
            .field("root", &ROOT_SUBJECT)
            .field("keys", &"<redacted>")
            .finish()
    }
}

impl SimCsCa {
    /// A new root and intermediate, valid from `now` (backdated a minute) for twenty and
    /// ten years.
    pub fn new(now: SystemTime) -> Result<Self, AttestError> {
        let root_key = generate_key()?;
        let root_name = Name::from_str(ROOT_SUBJECT).map_err(der_err("root name"))?;
        let root_der = issue_rsa(
            &root_key,
            &root_name,
            &root_name,
            root_key.public_key().as_ref(),
            now,
            ROOT_LIFETIME,
            ca_profile(),
        )?;
        let root = Issuer::new(root_key, root_der, root_name)?;
        let intermediate = root.issue_intermediate(INTERMEDIATE_SUBJECT, now, ca_profile())?;
        Ok(SimCsCa { root, intermediate })
    }

    /// DER of the root certificate: what a verifier must be told to trust.
    pub fn root_der(&self) -> &[u8] {
        &self.root.cert_der
    }

    /// DER of the intermediate certificate, the second-to-last of every token's `x5c`.
    pub fn intermediate_der(&self) -> &[u8] {
        &self.intermediate.cert_der
    }

    /// Loads the CA stored in `path`, or creates one there if the file does not exist.
    /// The file holds both private keys; it is created with mode 0600 and never
    /// replaced, so concurrent starters agree on one root. An existing file is refused if
    /// it is a symbolic link or readable or writable by group or others: anyone who could
    /// have written it could hold the keys.
    pub fn load_or_create(path: &Path, now: SystemTime) -> Result<Self, AttestError> {
        load_or_create_private(
            path,
            || Self::new(now).map(|ca| ca.file_text()),
            |file| Self::read_from(file, path),
        )
    }

    fn file_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "{CA_FILE_MAGIC}\n{}\n{}\n{}\n{}\n",
            hex::encode(self.root.pkcs8.as_slice()),
            hex::encode(&self.root.cert_der),
            hex::encode(self.intermediate.pkcs8.as_slice()),
            hex::encode(&self.intermediate.cert_der),
        ))
    }

    fn read_from(file: std::fs::File, path: &Path) -> Result<Self, AttestError> {
        let mut text = Zeroizing::new(String::new());
        file.take(MAX_CA_FILE_LEN + 1)
            .read_to_string(&mut text)
            .map_err(|e| sim_err("read CA file")(format!("{}: {e}", path.display())))?;
        let bad = || {
            sim_err("CA file")(format!(
                "{} is not a simulated Confidential Space CA file",
                path.display()
            ))
        };
        if text.len() as u64 > MAX_CA_FILE_LEN {
            return Err(bad());
        }
        let mut lines = text.lines();
        if lines.next() != Some(CA_FILE_MAGIC) {
            return Err(bad());
        }
        let mut next_hex = || {
            lines
                .next()
                .and_then(|l| hex::decode(l).ok())
                .ok_or_else(bad)
        };
        let root_pkcs8 = Zeroizing::new(next_hex()?);
        let root_der = next_hex()?;
        let intermediate_pkcs8 = Zeroizing::new(next_hex()?);
        let intermediate_der = next_hex()?;
        if lines.next().is_some() {
            return Err(bad());
        }
        let mismatch = || {
            sim_err("CA file")(format!(
                "{}: a key and its certificate do not match",
                path.display()
            ))
        };
        let load = |pkcs8: Zeroizing<Vec<u8>>, der: Vec<u8>| -> Result<Issuer, AttestError> {
            let key = RsaKeyPair::from_pkcs8(&pkcs8).map_err(|_| bad())?;
            let cert = ParsedCert::parse(&der).map_err(|_| bad())?;
            if crate::gcp::chain::rsa_public_key(&cert).ok() != Some(key.public_key().as_ref()) {
                return Err(mismatch());
            }
            let name = cert.cert.tbs_certificate().subject().clone();
            Ok(Issuer {
                key,
                pkcs8,
                cert_der: der,
                name,
            })
        };
        Ok(SimCsCa {
            root: load(root_pkcs8, root_der)?,
            intermediate: load(intermediate_pkcs8, intermediate_der)?,
        })
    }
}

impl Issuer {
    fn new(key: RsaKeyPair, cert_der: Vec<u8>, name: Name) -> Result<Self, AttestError> {
        let pkcs8 = Zeroizing::new(
            key.as_der()
                .map_err(crypto_err("key export"))?
                .as_ref()
                .to_vec(),
        );
        Ok(Issuer {
            key,
            pkcs8,
            cert_der,
            name,
        })
    }

    /// A fresh intermediate CA named `subject` under this one, with `profile`'s
    /// extensions.
    pub(crate) fn issue_intermediate(
        &self,
        subject: &str,
        now: SystemTime,
        profile: CertProfile,
    ) -> Result<Issuer, AttestError> {
        let key = generate_key()?;
        let name = Name::from_str(subject).map_err(der_err("intermediate name"))?;
        let der = issue_rsa(
            &self.key,
            &self.name,
            &name,
            key.public_key().as_ref(),
            now,
            INTERMEDIATE_LIFETIME,
            profile,
        )?;
        Issuer::new(key, der, name)
    }
}

pub(crate) fn generate_key() -> Result<RsaKeyPair, AttestError> {
    RsaKeyPair::generate(KeySize::Rsa2048).map_err(crypto_err("RSA key generation"))
}

/// Google's CA extensions: CA, certificate and CRL signing.
pub(crate) fn ca_profile() -> CertProfile {
    CertProfile {
        basic_constraints: Some(BasicConstraints {
            ca: true,
            path_len_constraint: None,
        }),
        key_usage: Some(KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)),
        extra: Vec::new(),
        signature_algorithm: None,
        version: None,
    }
}

/// Google's leaf extensions: not a CA, and no key usage.
pub(crate) fn leaf_profile() -> CertProfile {
    CertProfile {
        basic_constraints: Some(BasicConstraints {
            ca: false,
            path_len_constraint: None,
        }),
        key_usage: None,
        extra: Vec::new(),
        signature_algorithm: None,
        version: None,
    }
}

/// Issues a certificate for `subject_key` (DER `RSAPublicKey`) signed by `issuer_key`
/// with sha256WithRSAEncryption, valid from `now` minus a minute for `lifetime`.
pub(crate) fn issue_rsa(
    issuer_key: &RsaKeyPair,
    issuer: &Name,
    subject: &Name,
    subject_key: &[u8],
    now: SystemTime,
    lifetime: Duration,
    profile: CertProfile,
) -> Result<Vec<u8>, AttestError> {
    let null = || Any::encode_from(&Null).map_err(der_err("NULL"));
    let spki = SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: RSA_ENCRYPTION,
            parameters: Some(null()?),
        },
        subject_public_key: BitString::from_bytes(subject_key).map_err(der_err("key"))?,
    };
    let algorithm = AlgorithmIdentifierOwned {
        oid: SHA256_WITH_RSA,
        parameters: Some(null()?),
    };
    issue_signed(
        |tbs| rsa_sign(issuer_key, tbs),
        algorithm,
        issuer,
        subject,
        spki,
        now,
        lifetime,
        profile,
    )
}

/// An RS256 (PKCS #1 v1.5, SHA-256) signature.
pub(crate) fn rsa_sign(key: &RsaKeyPair, message: &[u8]) -> Result<Vec<u8>, AttestError> {
    let mut signature = vec![0u8; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        message,
        &mut signature,
    )
    .map_err(crypto_err("RSA signing"))?;
    Ok(signature)
}
