//! AWS Nitro Enclaves, the first provider.
//!
//! - [`NitroDocument::parse`] decodes an attestation document (COSE_Sign1 with a CBOR
//!   payload) and enforces the AWS field rules (`document`, `cbor`).
//! - [`Verifier`] checks the ES384 signature and the certificate chain up to a pinned
//!   root at an explicit time, producing a [`crate::Verified`] document; nothing else can
//!   (`verify`, `chain`).
//! - [`MeasurementSet`] is what a Nitro node's evidence is expected to measure (PCRs),
//!   with its text form and Nitro's half of the identity rule (`measurements`).
//! - [`TrustPolicy`] applies expected measurements, debug-mode refusal, age and nonce
//!   (`policy`).
//! - [`nsm`]: the Nitro Secure Module, Nitro's [`crate::Attester`]: the real one on
//!   `/dev/nsm` (feature `nitro`) and a simulated one that issues documents in the same
//!   format under its own root (feature `sim`).
//! - [`report`]: a document's contents for people and scripts.

#[doc(hidden)]
pub mod bench_support;
mod cbor;
pub(crate) mod chain;
mod document;
mod measurements;
pub mod nsm;
mod policy;
pub mod report;
mod verify;

pub use document::{
    MAX_CABUNDLE_LEN, MAX_CERT_LEN, MAX_DOCUMENT_LEN, MAX_NONCE_LEN, MAX_PCRS, MAX_PUBLIC_KEY_LEN,
    MAX_USER_DATA_LEN, NitroDocument,
};
pub use measurements::{
    CODE_PCRS, MAX_PCR_INDEX, MeasurementSet, Overlap, PCR_LENGTHS, SIGNING_CERT_PCR, Unpinned,
};
pub use policy::{Accepted, TrustPolicy};
pub use verify::{AWS_NITRO_ROOT_G1_SHA256, Verifier};

/// Whether `bytes` look like a Nitro attestation document, by their first byte alone: a
/// COSE_Sign1 is an array of four (`0x84`, as the NSM returns it) or carries tag 18
/// (`0xd2`). Nothing is parsed; [`NitroDocument::parse`] decides the rest.
pub(crate) fn recognises(bytes: &[u8]) -> bool {
    matches!(bytes.first(), Some(0x84 | 0xd2))
}
