//! The simulated NSM's certificate authority: its root (a P-384 key and a self-signed
//! certificate, stored in a private file shared by a simulated cluster) and the
//! certificates it and each instance's intermediates issue.

use super::super::NsmError;
use super::{crypto_err, der_err, sim_err};
use crate::nitro::chain::{ECDSA_WITH_SHA384, ID_EC_PUBLIC_KEY, SECP384R1};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use der::asn1::{Any, BitString, OctetString};
use der::oid::AssociatedOid;
use der::{Encode, Sequence};
use std::fmt;
use std::io::{Read, Write};
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use x509_cert::certificate::Version;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use zeroize::Zeroizing;

/// Lifetime of the simulated root.
const ROOT_LIFETIME: Duration = Duration::from_secs(20 * 365 * 24 * 3600);
/// Certificates start slightly in the past to tolerate clock differences.
const BACKDATE: Duration = Duration::from_secs(60);
/// Size limit of a stored simulated CA file.
const MAX_CA_FILE_LEN: u64 = 16 * 1024;
const CA_FILE_MAGIC: &str = "tee-custody simulated NSM root v1";
const ROOT_SUBJECT: &str = "CN=tee-custody simulated NSM root,O=tee-custody simulator";

/// The simulator's root certificate authority: a P-384 key and a self-signed certificate.
pub struct SimCa {
    pub(super) key: EcdsaKeyPair,
    pkcs8: Zeroizing<Vec<u8>>,
    pub(super) cert_der: Vec<u8>,
    pub(super) name: Name,
}

impl fmt::Debug for SimCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimCa")
            .field("subject", &ROOT_SUBJECT)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl SimCa {
    /// A new root, valid from `now` (backdated a minute) for twenty years.
    pub fn generate(now: SystemTime) -> Result<Self, NsmError> {
        let key = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_ASN1_SIGNING)
            .map_err(crypto_err("root key generation"))?;
        let pkcs8 = Zeroizing::new(
            key.to_pkcs8v1()
                .map_err(crypto_err("root key export"))?
                .as_ref()
                .to_vec(),
        );
        let name = Name::from_str(ROOT_SUBJECT).map_err(der_err("root name"))?;
        let cert_der = issue(
            &key,
            &name,
            &name,
            key.public_key().as_ref(),
            now,
            ROOT_LIFETIME,
            CertProfile::ca(None),
        )?;
        Ok(SimCa {
            key,
            pkcs8,
            cert_der,
            name,
        })
    }

    /// DER of the root certificate: what a verifier must be told to trust.
    pub fn root_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Loads the root stored in `path`, or creates one there if the file does not exist.
    /// The file holds the root's private key; it is created with mode 0600 and never
    /// replaced, so concurrent starters agree on one root. An existing file is refused if
    /// it is a symbolic link or readable or writable by group or others: anyone who could
    /// have written it could hold the key.
    pub fn load_or_create(path: &Path, now: SystemTime) -> Result<Self, NsmError> {
        load_or_create_private(
            path,
            || Self::generate(now).map(|ca| ca.file_text()),
            |file| Self::read_from(file, path),
        )
    }

    fn read_from(file: std::fs::File, path: &Path) -> Result<Self, NsmError> {
        let mut text = Zeroizing::new(String::new());
        file.take(MAX_CA_FILE_LEN + 1)
            .read_to_string(&mut text)
            .map_err(|e| sim_err("read CA file")(format!("{}: {e}", path.display())))?;
        let bad = || sim_err("CA file")(format!("{} is not a simulated CA file", path.display()));
        if text.len() as u64 > MAX_CA_FILE_LEN {
            return Err(bad());
        }
        let mut lines = text.lines();
        if lines.next() != Some(CA_FILE_MAGIC) {
            return Err(bad());
        }
        let pkcs8 = Zeroizing::new(
            lines
                .next()
                .and_then(|l| hex::decode(l).ok())
                .ok_or_else(bad)?,
        );
        let cert_der = lines
            .next()
            .and_then(|l| hex::decode(l).ok())
            .ok_or_else(bad)?;
        if lines.next().is_some() {
            return Err(bad());
        }
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, &pkcs8).map_err(|_| bad())?;
        let cert = crate::nitro::chain::ParsedCert::parse(&cert_der).map_err(|_| bad())?;
        if cert.public_key().ok() != Some(key.public_key().as_ref()) {
            return Err(sim_err("CA file")(format!(
                "{}: key and certificate do not match",
                path.display()
            )));
        }
        let name = cert.cert.tbs_certificate().subject().clone();
        Ok(SimCa {
            key,
            pkcs8,
            cert_der,
            name,
        })
    }

    fn file_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "{CA_FILE_MAGIC}\n{}\n{}\n",
            hex::encode(self.pkcs8.as_slice()),
            hex::encode(&self.cert_der)
        ))
    }
}

/// Reads the private file at `path` with `read`, or creates it from `create` if it does
/// not exist. The file is created with mode 0600 and never replaced, so concurrent
/// starters agree on one content. An existing file is refused if it is a symbolic link or
/// readable or writable by group or others.
pub(crate) fn load_or_create_private<T>(
    path: &Path,
    create: impl FnOnce() -> Result<Zeroizing<String>, NsmError>,
    read: impl Fn(std::fs::File) -> Result<T, NsmError>,
) -> Result<T, NsmError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => check_private_file(path, &meta)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(sim_err("CA file")(format!("{}: {e}", path.display())));
        }
    }
    match std::fs::File::open(path) {
        Ok(file) => read(file),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            store_new(path, &create()?)?;
            // Another process may have won the race: whatever is on disk is the root.
            let file =
                std::fs::File::open(path).map_err(|e| sim_err("reopen CA file")(e.to_string()))?;
            read(file)
        }
        Err(e) => Err(sim_err("open CA file")(format!("{}: {e}", path.display()))),
    }
}

fn store_new(path: &Path, text: &str) -> Result<(), NsmError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    create_private_dir(dir)
        .map_err(|e| sim_err("create CA directory")(format!("{}: {e}", dir.display())))?;
    let mut nonce = [0u8; 8];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(crypto_err("random"))?;
    let tmp = dir.join(format!(".sim-ca-{}.tmp", hex::encode(nonce)));
    let write = || -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        // Link, not rename: fails instead of replacing a root someone else created.
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    };
    let result = write();
    let _ = std::fs::remove_file(&tmp);
    result.map_err(|e| sim_err("write CA file")(format!("{}: {e}", path.display())))
}

/// Creates `dir` and missing parents, new ones with mode 0700.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn check_private_file(path: &Path, meta: &std::fs::Metadata) -> Result<(), NsmError> {
    let refuse = |why: &str| Err(sim_err("CA file")(format!("{}: {why}", path.display())));
    if meta.file_type().is_symlink() {
        return refuse("is a symbolic link");
    }
    if !meta.is_file() {
        return refuse("is not a regular file");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            return refuse("is accessible to group or others (must be mode 0600)");
        }
    }
    Ok(())
}

/// The extensions a simulated certificate carries.
pub(crate) struct CertProfile {
    pub(crate) basic_constraints: Option<BasicConstraints>,
    pub(crate) key_usage: Option<KeyUsage>,
    pub(crate) extra: Vec<Extension>,
    /// Written instead of ecdsa-with-SHA384, inside and outside the signed part.
    pub(crate) signature_algorithm: Option<AlgorithmIdentifierOwned>,
    /// Written instead of v3.
    pub(crate) version: Option<Version>,
}

impl CertProfile {
    pub(crate) fn ca(path_len: Option<u8>) -> Self {
        CertProfile {
            basic_constraints: Some(BasicConstraints {
                ca: true,
                path_len_constraint: path_len,
            }),
            key_usage: Some(KeyUsage(
                KeyUsages::KeyCertSign | KeyUsages::CRLSign | KeyUsages::DigitalSignature,
            )),
            extra: Vec::new(),
            signature_algorithm: None,
            version: None,
        }
    }

    pub(crate) fn leaf() -> Self {
        CertProfile {
            basic_constraints: Some(BasicConstraints {
                ca: false,
                path_len_constraint: None,
            }),
            key_usage: Some(KeyUsage(KeyUsages::DigitalSignature.into())),
            extra: Vec::new(),
            signature_algorithm: None,
            version: None,
        }
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
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT")]
    extensions: Vec<Extension>,
}

#[derive(Sequence)]
struct SignedCert {
    tbs: Tbs,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
}

/// Issues a certificate for `subject_key` (an uncompressed P-384 point) signed by
/// `issuer_key`, valid from `now` minus a minute for `lifetime`.
pub(crate) fn issue(
    issuer_key: &EcdsaKeyPair,
    issuer: &Name,
    subject: &Name,
    subject_key: &[u8],
    now: SystemTime,
    lifetime: Duration,
    profile: CertProfile,
) -> Result<Vec<u8>, NsmError> {
    let rng = SystemRandom::new();
    let spki = SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: ID_EC_PUBLIC_KEY,
            parameters: Some(Any::encode_from(&SECP384R1).map_err(der_err("curve"))?),
        },
        subject_public_key: BitString::from_bytes(subject_key).map_err(der_err("key"))?,
    };
    let algorithm = AlgorithmIdentifierOwned {
        oid: ECDSA_WITH_SHA384,
        parameters: None,
    };
    issue_signed(
        |tbs| {
            issuer_key
                .sign(&rng, tbs)
                .map(|sig| sig.as_ref().to_vec())
                .map_err(crypto_err("certificate signing"))
        },
        algorithm,
        issuer,
        subject,
        spki,
        now,
        lifetime,
        profile,
    )
}

/// Issues a certificate for the key in `spki`, its body signed by `sign` under
/// `algorithm` (unless the profile writes another), valid from `now` minus a minute for
/// `lifetime`. Whatever the algorithm, simulated certificates share this shape.
#[allow(clippy::too_many_arguments)]
pub(crate) fn issue_signed(
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, NsmError>,
    algorithm: AlgorithmIdentifierOwned,
    issuer: &Name,
    subject: &Name,
    spki: SubjectPublicKeyInfoOwned,
    now: SystemTime,
    lifetime: Duration,
    profile: CertProfile,
) -> Result<Vec<u8>, NsmError> {
    let rng = SystemRandom::new();
    let mut serial = [0u8; 16];
    rng.fill(&mut serial).map_err(crypto_err("random"))?;
    if let Some(first) = serial.first_mut() {
        *first &= 0x7f;
        *first |= 0x01;
    }
    let not_before = now.checked_sub(BACKDATE).unwrap_or(now);
    let not_after = now
        .checked_add(lifetime)
        .ok_or_else(|| NsmError::Simulator("validity end out of range".to_owned()))?;
    let time = |t: SystemTime| {
        // Whole seconds: X.509 times carry no fraction here.
        let secs = t
            .duration_since(UNIX_EPOCH)
            .map(|d| UNIX_EPOCH + Duration::from_secs(d.as_secs()))
            .unwrap_or(UNIX_EPOCH);
        Time::try_from(secs).map_err(der_err("validity"))
    };
    let algorithm = profile.signature_algorithm.unwrap_or(algorithm);
    let extension = |oid, value: Vec<u8>| -> Result<Extension, NsmError> {
        Ok(Extension {
            extn_id: oid,
            critical: true,
            extn_value: OctetString::new(value).map_err(der_err("extension"))?,
        })
    };
    let mut extensions = Vec::new();
    if let Some(bc) = profile.basic_constraints {
        let der = bc.to_der().map_err(der_err("basic constraints"))?;
        extensions.push(extension(<BasicConstraints as AssociatedOid>::OID, der)?);
    }
    if let Some(ku) = profile.key_usage {
        let der = ku.to_der().map_err(der_err("key usage"))?;
        extensions.push(extension(<KeyUsage as AssociatedOid>::OID, der)?);
    }
    extensions.extend(profile.extra);
    let tbs = Tbs {
        version: profile.version.unwrap_or(Version::V3),
        serial_number: SerialNumber::new(&serial).map_err(der_err("serial"))?,
        signature: algorithm.clone(),
        issuer: issuer.clone(),
        validity: Validity::new(time(not_before)?, time(not_after)?),
        subject: subject.clone(),
        subject_public_key_info: spki,
        extensions,
    };
    let tbs_der = tbs.to_der().map_err(der_err("certificate body"))?;
    let signature = sign(&tbs_der)?;
    SignedCert {
        tbs,
        signature_algorithm: algorithm,
        signature: BitString::from_bytes(&signature).map_err(der_err("signature"))?,
    }
    .to_der()
    .map_err(der_err("certificate"))
}
