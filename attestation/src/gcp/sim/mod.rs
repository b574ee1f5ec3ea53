//! A simulated Confidential Space attester for development and tests, in builds with the
//! `sim` feature only.
//!
//! It keeps its own RSA root and intermediate ([`SimCsCa`]), issues each attester a leaf
//! as Google's launcher holds one, and signs tokens in exactly the format of the real
//! ones: a compact RS256 JWS with `x5c` (leaf, intermediate, root) and the claims of a
//! production Confidential Space image. The production [`crate::gcp::Verifier`] checks
//! them, and accepts them only after the caller explicitly trusts this root
//! ([`crate::Verifier::trust_simulated_gcp_root`]).
//!
//! What the simulator measures: the image digest (the running binary's SHA-256, as the
//! image's manifest digest stands for the code) and the instance, from its name.

mod ca;
#[doc(hidden)]
pub mod tamper;

pub use ca::SimCsCa;

use crate::attester::{AttestError, AttestationRequest, Attester};
use crate::gcp::evidence::{binding_nonce, encode_bundle, validate_request};
use crate::gcp::measurements::MeasurementSet;
use crate::gcp::policy::{DBGSTAT_PRODUCTION, ISSUER, STABLE, SWNAME};
use crate::gcp::{CUSTODY_AUDIENCE, RS256};
use crate::nitro::nsm::sim::{der_err, sim_err};
use crate::provider::Provider;
use aws_lc_rs::digest::{self, SHA256};
use aws_lc_rs::signature::{KeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value};
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use x509_cert::name::Name;

/// Tokens live an hour, as the launcher's do.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// An attester's leaf lives a year (Google's about two months, renewed by the launcher).
const LEAF_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// A JSON object, as a token's header or claims.
pub type JsonObject = Map<String, Value>;

const LEAF_SUBJECT: &str =
    "CN=tee-custody simulated Confidential Space Leaf,OU=tee-custody simulator,O=tee-custody";
/// The project and zone every simulated workload claims.
pub const SIM_PROJECT: &str = "sim-project";
pub const SIM_ZONE: &str = "sim-zone-a";

/// What a simulated workload claims: its image, where it runs, and whether it is a
/// debug image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimWorkload {
    /// `sha256:` and 64 lowercase hex digits.
    pub image_digest: String,
    pub project_id: String,
    pub zone: String,
    /// Decimal digits.
    pub instance_id: String,
    pub instance_name: String,
    pub hwmodel: String,
    /// A debug image: `dbgstat` "enabled" and no support attributes.
    pub debug: bool,
}

impl SimWorkload {
    /// The running executable as image, on the instance named `instance`.
    pub fn of_current_exe(instance: &str) -> Result<Self, AttestError> {
        let exe =
            std::env::current_exe().map_err(|e| sim_err("locate running binary")(e.to_string()))?;
        Self::of_file(&exe, instance)
    }

    /// The file at `path` as image (read in chunks), on the instance named `instance`.
    pub fn of_file(path: &Path, instance: &str) -> Result<Self, AttestError> {
        let mut file = std::fs::File::open(path)
            .map_err(|e| sim_err("measure image")(format!("{}: {e}", path.display())))?;
        let mut ctx = digest::Context::new(&SHA256);
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
        Ok(Self::with_digest(ctx.finish().as_ref(), instance))
    }

    /// `image` as image, on the instance named `instance`.
    pub fn of_image(image: &[u8], instance: &str) -> Self {
        Self::with_digest(digest::digest(&SHA256, image).as_ref(), instance)
    }

    fn with_digest(image_sha256: &[u8], instance: &str) -> Self {
        let id = digest::digest(&SHA256, instance.as_bytes());
        let mut first = [0u8; 8];
        for (to, from) in first.iter_mut().zip(id.as_ref()) {
            *to = *from;
        }
        SimWorkload {
            image_digest: format!("sha256:{}", hex::encode(image_sha256)),
            project_id: SIM_PROJECT.to_owned(),
            zone: SIM_ZONE.to_owned(),
            instance_id: u64::from_be_bytes(first).to_string(),
            instance_name: instance.to_owned(),
            hwmodel: "GCP_INTEL_TDX".to_owned(),
            debug: false,
        }
    }

    /// The measurement set this workload's tokens match: its image, project, zone and
    /// instance id (what a manifest pins for a node).
    pub fn measurement_set(&self) -> Result<MeasurementSet, crate::MeasurementError> {
        MeasurementSet::from_entries(vec![
            ("image_digest".to_owned(), self.image_digest.clone()),
            ("project_id".to_owned(), self.project_id.clone()),
            ("zone".to_owned(), self.zone.clone()),
            ("instance_id".to_owned(), self.instance_id.clone()),
        ])
    }
}

/// A simulated launcher on one instance: a leaf under the CA's intermediate, and the
/// workload it attests.
pub struct SimCsAttester {
    leaf: RsaKeyPair,
    /// Leaf, intermediate, root: DER.
    x5c: Vec<Vec<u8>>,
    kid: String,
    workload: SimWorkload,
}

impl fmt::Debug for SimCsAttester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimCsAttester")
            .field("workload", &self.workload)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl SimCsAttester {
    /// An attester for `workload` under `ca`, its leaf valid from `now` for a year.
    pub fn new(ca: &SimCsCa, workload: SimWorkload, now: SystemTime) -> Result<Self, AttestError> {
        Self::with_chain(ca, workload, now, tamper::Chain::Genuine)
    }

    pub(crate) fn from_parts(leaf: RsaKeyPair, x5c: Vec<Vec<u8>>, workload: SimWorkload) -> Self {
        // Like Google's: base64url of a SHA-256 that names the signing key.
        let kid = URL_SAFE_NO_PAD.encode(digest::digest(&SHA256, leaf.public_key().as_ref()));
        SimCsAttester {
            leaf,
            x5c,
            kid,
            workload,
        }
    }

    pub fn workload(&self) -> &SimWorkload {
        &self.workload
    }

    /// DER certificates of every token's `x5c`: leaf, intermediate, root.
    pub fn x5c(&self) -> &[Vec<u8>] {
        &self.x5c
    }

    /// The bundle a node sends: a fresh token issued at `now` binding `request`, and the
    /// request's values.
    pub fn attest_at(
        &self,
        request: &AttestationRequest,
        now: SystemTime,
    ) -> Result<Vec<u8>, AttestError> {
        let token = self.token_at(request, now)?;
        Ok(encode_bundle(
            &token,
            request.nonce.as_deref(),
            request.public_key.as_deref(),
            request.user_data.as_deref(),
        ))
    }

    /// A token alone, as the launcher returns it, issued at `now` with `eat_nonce` the
    /// binding digest of `request`.
    pub fn token_at(
        &self,
        request: &AttestationRequest,
        now: SystemTime,
    ) -> Result<String, AttestError> {
        validate_request(request)?;
        let (header, claims) = self.parts(request, now)?;
        self.sign(&header, &claims)
    }

    /// The header and claims of a token issued at `now` binding `request`, before
    /// signing: what tampering tests alter.
    #[doc(hidden)]
    pub fn parts(
        &self,
        request: &AttestationRequest,
        now: SystemTime,
    ) -> Result<(JsonObject, JsonObject), AttestError> {
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| AttestError::Simulator("clock is before 1970".to_owned()))?
            .as_secs();
        let nonce = binding_nonce(
            request.nonce.as_deref(),
            request.public_key.as_deref(),
            request.user_data.as_deref(),
        );
        Ok((self.header(), self.claims(iat, nonce)))
    }

    /// Signs `header` and `claims` with the leaf key, as the launcher signs.
    #[doc(hidden)]
    pub fn sign(
        &self,
        header: &Map<String, Value>,
        claims: &Map<String, Value>,
    ) -> Result<String, AttestError> {
        let json = |v: &Map<String, Value>| {
            serde_json::to_vec(v).map_err(|e| AttestError::Simulator(format!("JSON: {e}")))
        };
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(json(header)?),
            URL_SAFE_NO_PAD.encode(json(claims)?)
        );
        let signature = ca::rsa_sign(&self.leaf, signing_input.as_bytes())?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }

    fn header(&self) -> Map<String, Value> {
        object([
            ("alg", text(RS256)),
            ("kid", text(&self.kid)),
            ("typ", text("JWT")),
            (
                "x5c",
                Value::Array(
                    self.x5c
                        .iter()
                        .map(|der| text(&STANDARD.encode(der)))
                        .collect(),
                ),
            ),
        ])
    }

    fn claims(&self, iat: u64, nonce: String) -> Map<String, Value> {
        let w = &self.workload;
        let mut claims = object([
            ("aud", text(CUSTODY_AUDIENCE)),
            (
                "exp",
                Value::from(iat.saturating_add(TOKEN_LIFETIME.as_secs())),
            ),
            ("iat", Value::from(iat)),
            ("iss", text(ISSUER)),
            ("nbf", Value::from(iat)),
            (
                "sub",
                text(&format!(
                    "https://www.googleapis.com/compute/v1/projects/{}/zones/{}/instances/{}",
                    w.project_id, w.zone, w.instance_name
                )),
            ),
            ("eat_nonce", Value::Array(vec![Value::String(nonce)])),
            (
                "eat_profile",
                text(
                    "https://cloud.google.com/confidential-computing/confidential-space/docs/\
                     reference/token-claims",
                ),
            ),
            ("secboot", Value::Bool(true)),
            ("oemid", Value::from(11129u64)),
            ("hwmodel", text(&w.hwmodel)),
            ("swname", text(SWNAME)),
            ("swversion", Value::Array(vec![text("250301")])),
            (
                "dbgstat",
                text(if w.debug {
                    "enabled"
                } else {
                    DBGSTAT_PRODUCTION
                }),
            ),
        ]);
        if !w.debug {
            claims.insert(
                "support_attributes".to_owned(),
                Value::Array(vec![text("LATEST"), text(STABLE), text("USABLE")]),
            );
        }
        let container = object([
            (
                "image_reference",
                text("sim.invalid/tee-custody/enclave:sim"),
            ),
            ("image_digest", text(&w.image_digest)),
            ("restart_policy", text("Never")),
            ("image_id", text(&w.image_digest)),
            ("env", Value::Object(Map::new())),
            ("args", Value::Array(Vec::new())),
        ]);
        let gce = object([
            ("zone", text(&w.zone)),
            ("project_id", text(&w.project_id)),
            ("project_number", text("0")),
            ("instance_name", text(&w.instance_name)),
            ("instance_id", text(&w.instance_id)),
        ]);
        claims.insert(
            "submods".to_owned(),
            Value::Object(object([
                ("container", Value::Object(container)),
                ("gce", Value::Object(gce)),
            ])),
        );
        claims.insert(
            "google_service_accounts".to_owned(),
            Value::Array(vec![text("sim@sim-project.iam.gserviceaccount.com")]),
        );
        claims
    }
}

impl Attester for SimCsAttester {
    fn provider(&self) -> Provider {
        Provider::GcpCs
    }

    fn attest(&self, request: &AttestationRequest) -> Result<Vec<u8>, AttestError> {
        self.attest_at(request, SystemTime::now())
    }
}

fn text(s: &str) -> Value {
    Value::String(s.to_owned())
}

fn object<const N: usize>(members: [(&str, Value); N]) -> Map<String, Value> {
    members
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// Issues the leaf of an attester under `issuer`.
fn issue_leaf(
    issuer: &ca::Issuer,
    leaf_key: &[u8],
    now: SystemTime,
    profile: crate::nitro::nsm::sim::CertProfile,
) -> Result<Vec<u8>, AttestError> {
    let name = Name::from_str(LEAF_SUBJECT).map_err(der_err("leaf name"))?;
    ca::issue_rsa(
        &issuer.key,
        &issuer.name,
        &name,
        leaf_key,
        now,
        LEAF_LIFETIME,
        profile,
    )
}
