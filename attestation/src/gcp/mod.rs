//! Google Cloud Confidential Space, the second provider.
//!
//! - [`CsToken::parse`] decodes a PKI token (compact JWS, RS256, chain in `x5c`) and
//!   enforces this crate's header and claim rules (`token`, `json`).
//! - [`CsEvidence`] is a token alone or a bundle with the values its `eat_nonce` binds
//!   through [`binding_nonce`] (`evidence`).
//! - [`Verifier`] checks the chain up to a pinned root and the token's signature at an
//!   explicit time, producing [`crate::Verified`] evidence; nothing else can (`verify`,
//!   `chain`).
//! - [`MeasurementSet`] is what a Confidential Space node's evidence is expected to
//!   measure (image digest, instance), with its text form and the identity rule
//!   (`measurements`).
//! - [`TrustPolicy`] applies issuer, audience, debug, hardware, secure boot, measurement
//!   sets, times and nonce (`policy`).
//! - [`launcher::Launcher`]: the real attester, the launcher's token endpoint.
//! - [`report`]: a token's contents for people and scripts.
//! - [`sim`] (feature `sim`): a simulated attester issuing tokens in exactly Google's
//!   format under its own root.

#[doc(hidden)]
pub mod bench_support;
mod chain;
mod evidence;
pub(crate) mod json;
pub mod launcher;
mod measurements;
mod policy;
pub mod report;
#[cfg(feature = "sim")]
pub mod sim;
mod token;
mod verify;

pub use evidence::{
    BUNDLE_VERSION, CsEvidence, MAX_BUNDLE_LEN, MAX_NONCE_LEN, MAX_PUBLIC_KEY_LEN,
    MAX_USER_DATA_LEN, binding_nonce, encode_bundle,
};
pub use measurements::{HWMODELS, IDENTITY_KEYS, KEYS, MeasurementSet, Overlap, Unpinned};
pub use policy::{DBGSTAT_PRODUCTION, ISSUER, STABLE, SWNAME, TrustPolicy};
pub use token::{
    CsClaims, CsHeader, CsToken, MAX_CLAIM_LEN, MAX_EAT_NONCE_LEN, MAX_EAT_NONCES,
    MAX_SIGNATURE_LEN, MAX_SUPPORT_ATTRIBUTES, MAX_TOKEN_LEN, MAX_X5C_CERT_LEN, MAX_X5C_CERTS,
    MIN_SIGNATURE_LEN, RS256,
};
pub use verify::{GOOGLE_CS_ROOT_SHA256, Verifier};

/// The audience a node requests for its tokens, and expects of its peers'.
pub const CUSTODY_AUDIENCE: &str = "tee-custody";
/// Where the Confidential Space launcher serves tokens to the workload.
pub const DEFAULT_LAUNCHER_SOCKET: &str = "/run/container_launcher/teeserver.sock";

/// Whether `bytes` look like Confidential Space evidence, by their first bytes alone: a
/// token's header is base64url of `{"` (`eyJ`), a bundle is a JSON object (`{`).
/// Nothing is parsed; [`CsEvidence::parse`] decides the rest.
pub(crate) fn recognises(bytes: &[u8]) -> bool {
    bytes.starts_with(b"eyJ") || bytes.starts_with(b"{")
}
