//! A simulated NSM for development and tests, in builds with the `sim` feature only.
//!
//! It keeps its own P-384 root ([`SimCa`]) and three intermediates per instance, issues a
//! fresh leaf certificate for every document, and produces documents in exactly the
//! format of the real NSM: an untagged COSE_Sign1 (ES384) over a CBOR map with the same
//! keys, in the same order, with the same types. The production [`crate::nitro::Verifier`]
//! checks them, and accepts them only after the caller explicitly calls
//! [`crate::nitro::Verifier::trust_simulated_root`] with this root.
//!
//! PCR0..2 are derived from what the simulator measures (the running binary), PCR3 and
//! PCR4 from its configuration, the others are zero, as on a real enclave.

mod ca;

pub use ca::SimCa;
pub(crate) use ca::{CertProfile, issue, issue_signed, load_or_create_private};

use super::{AttestationRequest, NsmError, PcrDescription};
use crate::{Attester, Provider};
use aws_lc_rs::digest::{self, SHA384};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{
    ECDSA_P384_SHA384_ASN1_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
};
use coset::{CborSerializable, CoseSign1Builder, HeaderBuilder, iana};
use serde::Serialize;
use serde_bytes::Bytes;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use x509_cert::name::Name;

/// PCRs in a document, as the real NSM reports them (0..=15).
pub const SIM_PCR_COUNT: u8 = 16;
/// Lifetime of an instance's intermediate.
const INTERMEDIATE_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// Leaves live about three hours, like the real ones.
const LEAF_LIFETIME: Duration = Duration::from_secs(3 * 3600);
/// Largest `random` request served at once.
pub const MAX_RANDOM_LEN: usize = 64 * 1024;

pub(crate) fn sim_err(what: &str) -> impl Fn(String) -> NsmError + '_ {
    move |detail| NsmError::Simulator(format!("{what}: {detail}"))
}

pub(crate) fn crypto_err(what: &'static str) -> impl Fn(aws_lc_rs::error::Unspecified) -> NsmError {
    move |_| NsmError::Simulator(format!("{what} failed"))
}

pub(crate) fn der_err(what: &'static str) -> impl Fn(der::Error) -> NsmError {
    move |e| NsmError::Simulator(format!("{what}: {e}"))
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
        super::validate(request)?;
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

impl Attester for SimNsm {
    fn provider(&self) -> Provider {
        Provider::Nitro
    }

    fn attest(&self, request: &AttestationRequest) -> Result<Vec<u8>, NsmError> {
        self.attest_at(request, SystemTime::now())
    }
}

impl SimNsm {
    /// `len` bytes from the simulated NSM's random number generator.
    pub fn random(&self, len: usize) -> Result<Vec<u8>, NsmError> {
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

    /// The current value of PCR `index`.
    pub fn describe_pcr(&self, index: u16) -> Result<PcrDescription, NsmError> {
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
