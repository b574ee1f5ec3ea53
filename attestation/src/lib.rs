//! Evidence for an MPC custody node: what a TEE says about the code it runs, appraised
//! the same way whatever the provider.
//!
//! Provider-neutral, what the crates above this one use:
//! - [`provider`]: [`Provider`] (told apart by the evidence's content), [`Evidence`] and
//!   the [`Binding`] it states (nonce, public key, user data).
//! - [`measurements`]: [`Measurements`], one accepted measurement set tagged by its
//!   provider, with its text form and the identity rule.
//! - [`appraisal`]: [`Verifier`] (each provider's trusted roots), [`Expectation`] (what
//!   a relying party requires) and [`Appraisal`] (what accepted evidence proves).
//! - [`attester`]: the [`Attester`] a node asks for evidence binding an
//!   [`AttestationRequest`].
//! - [`Verified`]: a value only this crate's verifiers construct.
//!
//! Per provider, one module each:
//! - [`nitro`]: AWS Nitro Enclaves (documents, chain, verifier, PCR sets, policy, the
//!   NSM real and simulated), also reachable as [`nsm`] for its attester.
//! - [`gcp`]: Google Cloud Confidential Space (PKI tokens and the bundles carrying them,
//!   chain, verifier, image and instance sets, policy).
//!
//! Helpers for the `attest` tool: [`input`] (raw, hex or base64 files), [`time_fmt`];
//! errors in [`error`].
#![forbid(unsafe_code)]

pub mod appraisal;
pub mod attester;
pub mod error;
pub mod gcp;
pub mod input;
pub mod measurements;
pub mod nitro;
pub mod provider;
pub mod time_fmt;
mod verified;

pub use appraisal::{
    Appraisal, AppraisalError, DEFAULT_MAX_AGE, DEFAULT_MAX_CLOCK_SKEW, Expectation, Verifier,
};
pub use attester::{AttestError, AttestationRequest, Attester};
pub use error::{
    CertProblem, CertSlot, ClaimMismatch, ParseError, PcrMismatch, PolicyError, TokenError,
    VerifyError,
};
pub use measurements::{MeasurementError, Measurements, Overlap, Unhosted, Unpinned};
pub use nitro::nsm;
pub use provider::{Binding, Evidence, MAX_EVIDENCE_LEN, Provider};
pub use verified::Verified;
