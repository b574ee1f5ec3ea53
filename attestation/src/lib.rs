//! Evidence for an MPC custody node: AWS Nitro attestation documents.
//!
//! - [`NitroDocument::parse`] decodes a document (COSE_Sign1 with a CBOR payload) and
//!   enforces the AWS field rules.
//! - [`Verifier`] checks the ES384 signature and the certificate chain up to a pinned
//!   root at an explicit time, producing a [`Verified`] document; nothing else can.
//! - [`TrustPolicy`] applies expected measurements, debug-mode refusal, age and nonce.
//! - [`nsm`] abstracts the Nitro Secure Module: the real one on `/dev/nsm` (feature
//!   `nitro`) and a simulated one that issues documents in the same format under its own
//!   root (feature `sim`).
#![forbid(unsafe_code)]

#[doc(hidden)]
pub mod bench_support;
mod cbor;
mod chain;
mod document;
pub mod error;
pub mod input;
pub mod nsm;
mod policy;
pub mod report;
pub mod time_fmt;
mod verify;

pub use document::{
    MAX_CABUNDLE_LEN, MAX_CERT_LEN, MAX_DOCUMENT_LEN, MAX_NONCE_LEN, MAX_PCRS, MAX_PUBLIC_KEY_LEN,
    MAX_USER_DATA_LEN, NitroDocument,
};
pub use error::{CertProblem, CertSlot, ParseError, PcrMismatch, PolicyError, VerifyError};
pub use policy::{Accepted, DEFAULT_MAX_AGE, DEFAULT_MAX_CLOCK_SKEW, MeasurementSet, TrustPolicy};
pub use verify::{AWS_NITRO_ROOT_G1_SHA256, Verified, Verifier};
