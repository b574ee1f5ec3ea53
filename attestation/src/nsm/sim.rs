//! A simulated NSM for development and tests, in builds with the `sim` feature only.
//!
//! It keeps its own P-384 root ([`SimCa`]) and three intermediates per instance, issues a
//! fresh leaf certificate for every document, and produces documents in exactly the
//! format of the real NSM: an untagged COSE_Sign1 (ES384) over a CBOR map with the same
//! keys, in the same order, with the same types. The production [`crate::Verifier`]
//! checks them, and accepts them only after the caller explicitly calls
//! [`crate::Verifier::trust_simulated_root`] with this root.
//!
//! PCR0..2 are derived from what the simulator measures (the running binary), PCR3 and
//! PCR4 from its configuration, the others are zero, as on a real enclave.

use super::{AttestationRequest, Nsm, NsmError, PcrDescription};
use crate::chain::{ECDSA_WITH_SHA384, ID_EC_PUBLIC_KEY, SECP384R1};
use aws_lc_rs::digest::{self, SHA384};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{
    ECDSA_P384_SHA384_ASN1_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
};
use coset::{CborSerializable, CoseSign1Builder, HeaderBuilder, iana};
use der::asn1::{Any, BitString, OctetString};
use der::oid::AssociatedOid;
use der::{Encode, Sequence};
use serde::Serialize;
use serde_bytes::Bytes;
use std::collections::BTreeMap;
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

/// PCRs in a document, as the real NSM reports them (0..=15).
pub const SIM_PCR_COUNT: u8 = 16;
/// Lifetime of the simulated root.
const ROOT_LIFETIME: Duration = Duration::from_secs(20 * 365 * 24 * 3600);
/// Lifetime of an instance's intermediate.
const INTERMEDIATE_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// Leaves live about three hours, like the real ones.
const LEAF_LIFETIME: Duration = Duration::from_secs(3 * 3600);
/// Certificates start slightly in the past to tolerate clock differences.
const BACKDATE: Duration = Duration::from_secs(60);
/// Largest `random` request served at once.
pub const MAX_RANDOM_LEN: usize = 64 * 1024;
/// Size limit of a stored simulated CA file.
const MAX_CA_FILE_LEN: u64 = 16 * 1024;
const CA_FILE_MAGIC: &str = "tee-custody simulated NSM root v1";
const ROOT_SUBJECT: &str = "CN=tee-custody simulated NSM root,O=tee-custody simulator";

fn sim_err(what: &str) -> impl Fn(String) -> NsmError + '_ {
    move |detail| NsmError::Simulator(format!("{what}: {detail}"))
}

fn crypto_err(what: &'static str) -> impl Fn(aws_lc_rs::error::Unspecified) -> NsmError {
    move |_| NsmError::Simulator(format!("{what} failed"))
}

fn der_err(what: &'static str) -> impl Fn(der::Error) -> NsmError {
    move |e| NsmError::Simulator(format!("{what}: {e}"))
}

/// The simulator's root certificate authority: a P-384 key and a self-signed certificate.
pub struct SimCa {
    key: EcdsaKeyPair,
    pkcs8: Zeroizing<Vec<u8>>,
    cert_der: Vec<u8>,
    name: Name,
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
        match std::fs::symlink_metadata(path) {
            Ok(meta) => check_private_file(path, &meta)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(sim_err("CA file")(format!("{}: {e}", path.display())));
            }
        }
        match std::fs::File::open(path) {
            Ok(file) => Self::read_from(file, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let ca = Self::generate(now)?;
                ca.store_new(path)?;
                // Another process may have won the race: whatever is on disk is the root.
                let file = std::fs::File::open(path)
                    .map_err(|e| sim_err("reopen CA file")(e.to_string()))?;
                Self::read_from(file, path)
            }
            Err(e) => Err(sim_err("open CA file")(format!("{}: {e}", path.display()))),
        }
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
        let cert = crate::chain::ParsedCert::parse(&cert_der).map_err(|_| bad())?;
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

    fn store_new(&self, path: &Path) -> Result<(), NsmError> {
        let text = Zeroizing::new(format!(
            "{CA_FILE_MAGIC}\n{}\n{}\n",
            hex::encode(self.pkcs8.as_slice()),
            hex::encode(&self.cert_der)
        ));
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

/// What the simulator measures into PCR0..4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimMeasurements {
    /// SHA-384 of the measured image (the running binary, normally).
    pub image_sha384: [u8; 48],
    /// Extended into PCR3 (on Nitro: the parent's IAM role).
    pub pcr3: Option<Vec<u8>>,
    /// Extended into PCR4 (on Nitro: the parent's instance id).
    pub pcr4: Option<Vec<u8>>,
    /// Debug mode: PCR0..2 read as zeros, as on a real enclave started with --debug-mode.
    pub debug_mode: bool,
}

impl SimMeasurements {
    /// Measures image bytes.
    pub fn of_image(image: &[u8]) -> Self {
        let mut image_sha384 = [0u8; 48];
        image_sha384.copy_from_slice(digest::digest(&SHA384, image).as_ref());
        SimMeasurements {
            image_sha384,
            pcr3: None,
            pcr4: None,
            debug_mode: false,
        }
    }

    /// Measures a file, reading it in chunks.
    pub fn of_file(path: &Path) -> Result<Self, NsmError> {
        let mut file = std::fs::File::open(path)
            .map_err(|e| sim_err("measure image")(format!("{}: {e}", path.display())))?;
        let mut ctx = digest::Context::new(&SHA384);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| sim_err("measure image")(format!("{}: {e}", path.display())))?;
            match buf.get(..n) {
                Some([]) | None => break,
                Some(chunk) => ctx.update(chunk),
            }
        }
        let mut image_sha384 = [0u8; 48];
        image_sha384.copy_from_slice(ctx.finish().as_ref());
        Ok(SimMeasurements {
            image_sha384,
            pcr3: None,
            pcr4: None,
            debug_mode: false,
        })
    }

    /// Measures the binary of the running process.
    pub fn of_current_exe() -> Result<Self, NsmError> {
        let exe =
            std::env::current_exe().map_err(|e| sim_err("locate running binary")(e.to_string()))?;
        Self::of_file(&exe)
    }

    pub fn with_pcr3(mut self, input: Vec<u8>) -> Self {
        self.pcr3 = Some(input);
        self
    }

    pub fn with_pcr4(mut self, input: Vec<u8>) -> Self {
        self.pcr4 = Some(input);
        self
    }

    pub fn with_debug_mode(mut self, debug: bool) -> Self {
        self.debug_mode = debug;
        self
    }

    /// The PCR values documents will carry, PCR0..=15. Peers compute these to know what
    /// a node running a given binary should report.
    pub fn pcrs(&self) -> BTreeMap<u8, [u8; 48]> {
        let mut pcrs: BTreeMap<u8, [u8; 48]> = (0..SIM_PCR_COUNT).map(|i| (i, [0u8; 48])).collect();
        if !self.debug_mode {
            pcrs.insert(0, extend_labelled(b"pcr0 image", &self.image_sha384));
            pcrs.insert(
                1,
                extend_labelled(b"pcr1 kernel", env!("CARGO_PKG_VERSION").as_bytes()),
            );
            pcrs.insert(2, extend_labelled(b"pcr2 application", &self.image_sha384));
        }
        if let Some(input) = &self.pcr3 {
            pcrs.insert(3, extend_labelled(b"pcr3", input));
        }
        if let Some(input) = &self.pcr4 {
            pcrs.insert(4, extend_labelled(b"pcr4", input));
        }
        pcrs
    }
}

/// `SHA-384(zeros || SHA-384(label || data))`: one extension of an empty PCR.
fn extend_labelled(label: &[u8], data: &[u8]) -> [u8; 48] {
    let mut inner = digest::Context::new(&SHA384);
    inner.update(b"tee-custody sim ");
    inner.update(label);
    inner.update(&[0]);
    inner.update(data);
    let inner = inner.finish();
    let mut outer = digest::Context::new(&SHA384);
    outer.update(&[0u8; 48]);
    outer.update(inner.as_ref());
    let mut out = [0u8; 48];
    out.copy_from_slice(outer.finish().as_ref());
    out
}

/// A simulated NSM instance: three intermediate CAs under the root, fixed PCRs.
pub struct SimNsm {
    intermediate: EcdsaKeyPair,
    intermediate_name: Name,
    cabundle: Vec<Vec<u8>>,
    pcrs: BTreeMap<u8, [u8; 48]>,
    module_id: String,
    rng: SystemRandom,
}

impl fmt::Debug for SimNsm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimNsm")
            .field("module_id", &self.module_id)
            .field("keys", &"<redacted>")
            .finish()
    }
}

impl SimNsm {
    /// A new instance under `ca`, measuring `measurements`, its intermediates valid from
    /// `now` for a year.
    pub fn new(
        ca: &SimCa,
        measurements: &SimMeasurements,
        now: SystemTime,
    ) -> Result<Self, NsmError> {
        let rng = SystemRandom::new();
        let mut id = [0u8; 8];
        rng.fill(&mut id).map_err(crypto_err("random"))?;
        let module_id = format!("sim-{}-enc{}", hex::encode(&id[..4]), hex::encode(&id[4..]));
        // Like the real chain: root, then regional, zonal and instance CAs, each allowing
        // one CA fewer below it, then a fresh leaf per document.
        let mut cabundle = vec![ca.cert_der.clone()];
        let mut keys: Vec<EcdsaKeyPair> = Vec::new();
        let mut issuer_name = ca.name.clone();
        for (level, path_len) in [("regional", 2u8), ("zonal", 1), ("instance", 0)] {
            let key = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_ASN1_SIGNING)
                .map_err(crypto_err("intermediate key generation"))?;
            let name = Name::from_str(&format!(
                "CN={module_id} {level},OU=tee-custody simulator,O=tee-custody"
            ))
            .map_err(der_err("intermediate name"))?;
            cabundle.push(issue(
                keys.last().unwrap_or(&ca.key),
                &issuer_name,
                &name,
                key.public_key().as_ref(),
                now,
                INTERMEDIATE_LIFETIME,
                CertProfile::ca(Some(path_len)),
            )?);
            keys.push(key);
            issuer_name = name;
        }
        let intermediate = keys
            .pop()
            .ok_or_else(|| NsmError::Simulator("no intermediate was issued".to_owned()))?;
        let intermediate_name = issuer_name;
        Ok(SimNsm {
            intermediate,
            intermediate_name,
            cabundle,
            pcrs: measurements.pcrs(),
            module_id,
            rng,
        })
    }

    pub fn module_id(&self) -> &str {
        &self.module_id
    }

    /// A document as the real NSM would produce it at time `now`.
    pub fn attest_at(
        &self,
        request: &AttestationRequest,
        now: SystemTime,
    ) -> Result<Vec<u8>, NsmError> {
        request.validate()?;
        let timestamp_ms = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| NsmError::Simulator("clock is before 1970".to_owned()))?
            .as_millis();
        let timestamp_ms = u64::try_from(timestamp_ms)
            .map_err(|_| NsmError::Simulator("clock out of range".to_owned()))?;

        let leaf = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING)
            .map_err(crypto_err("leaf key generation"))?;
        let leaf_name = Name::from_str(&format!("CN={},O=tee-custody simulator", self.module_id))
            .map_err(der_err("leaf name"))?;
        let leaf_der = issue(
            &self.intermediate,
            &self.intermediate_name,
            &leaf_name,
            leaf.public_key().as_ref(),
            now,
            LEAF_LIFETIME,
            CertProfile::leaf(),
        )?;

        let payload = Payload {
            module_id: &self.module_id,
            digest: "SHA384",
            timestamp: timestamp_ms,
            pcrs: self.pcrs.iter().map(|(i, v)| (*i, Bytes::new(v))).collect(),
            certificate: Bytes::new(&leaf_der),
            cabundle: self.cabundle.iter().map(|c| Bytes::new(c)).collect(),
            public_key: request.public_key.as_deref().map(Bytes::new),
            user_data: request.user_data.as_deref().map(Bytes::new),
            nonce: request.nonce.as_deref().map(Bytes::new),
        };
        let payload = serde_cbor::to_vec(&payload)
            .map_err(|e| NsmError::Simulator(format!("payload encoding: {e}")))?;

        let protected = HeaderBuilder::new()
            .algorithm(iana::Algorithm::ES384)
            .build();
        let mut sign_error = None;
        let sign1 = CoseSign1Builder::new()
            .protected(protected)
            .payload(payload)
            .create_signature(&[], |tbs| match leaf.sign(&self.rng, tbs) {
                Ok(sig) => sig.as_ref().to_vec(),
                Err(_) => {
                    sign_error = Some(NsmError::Simulator("COSE signing failed".to_owned()));
                    Vec::new()
                }
            })
            .build();
        if let Some(e) = sign_error {
            return Err(e);
        }
        sign1
            .to_vec()
            .map_err(|e| NsmError::Simulator(format!("COSE encoding: {e}")))
    }
}

impl Nsm for SimNsm {
    fn attest(&self, request: &AttestationRequest) -> Result<Vec<u8>, NsmError> {
        self.attest_at(request, SystemTime::now())
    }

    fn random(&self, len: usize) -> Result<Vec<u8>, NsmError> {
        if len > MAX_RANDOM_LEN {
            return Err(NsmError::InvalidRequest {
                field: "random length",
                len,
                max: MAX_RANDOM_LEN,
            });
        }
        let mut out = vec![0u8; len];
        self.rng.fill(&mut out).map_err(crypto_err("random"))?;
        Ok(out)
    }

    fn describe_pcr(&self, index: u16) -> Result<PcrDescription, NsmError> {
        let value = u8::try_from(index)
            .ok()
            .and_then(|i| self.pcrs.get(&i))
            .ok_or(NsmError::NoSuchPcr(index))?;
        Ok(PcrDescription {
            // PCR0..4 are locked by the time an enclave's application runs.
            locked: index <= 4,
            value: value.to_vec(),
        })
    }
}

/// The payload, with the real NSM's keys in the real NSM's order and types.
#[derive(Serialize)]
struct Payload<'a> {
    module_id: &'a str,
    digest: &'static str,
    timestamp: u64,
    pcrs: BTreeMap<u8, &'a Bytes>,
    certificate: &'a Bytes,
    cabundle: Vec<&'a Bytes>,
    public_key: Option<&'a Bytes>,
    user_data: Option<&'a Bytes>,
    nonce: Option<&'a Bytes>,
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
    let algorithm = profile
        .signature_algorithm
        .unwrap_or(AlgorithmIdentifierOwned {
            oid: ECDSA_WITH_SHA384,
            parameters: None,
        });
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
        subject_public_key_info: SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned {
                oid: ID_EC_PUBLIC_KEY,
                parameters: Some(Any::encode_from(&SECP384R1).map_err(der_err("curve"))?),
            },
            subject_public_key: BitString::from_bytes(subject_key).map_err(der_err("key"))?,
        },
        extensions,
    };
    let tbs_der = tbs.to_der().map_err(der_err("certificate body"))?;
    let signature = issuer_key
        .sign(&rng, &tbs_der)
        .map_err(crypto_err("certificate signing"))?;
    SignedCert {
        tbs,
        signature_algorithm: algorithm,
        signature: BitString::from_bytes(signature.as_ref()).map_err(der_err("signature"))?,
    }
    .to_der()
    .map_err(der_err("certificate"))
}
