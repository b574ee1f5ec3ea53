//! `custody`, the operator's client: reaches nodes through their parents' client ports
//! over attested TLS, signs commands with an operator key, runs simulated clusters.
//!
//! - [`connection`]: one verified request to one node.
//! - [`cluster_file`]: `cluster.toml`, what the client trusts and where nodes are.
//! - [`pin`]: the manifest the client trusts, and how it follows approved successors.
//! - [`placement`]: the manifest's placement rule, checked before a key is asked for.
//! - [`operator`]: operator key files.
//! - [`ops`]: status, key commands, attestation documents.
//! - [`requests`]: requests and approvals: make, submit, approve, show, list.
//! - [`policy_file`]: operators' approvals of a policy and the envelope they make.
//! - [`verify`]: offline signature checks.
//! - [`sim`] (feature `sim`): simulated clusters of real processes.
//! - [`progress`]: progress of long steps on standard error.
#![forbid(unsafe_code)]

pub mod cluster_file;
pub mod connection;
pub mod operator;
pub mod ops;
pub mod pin;
pub mod placement;
pub mod policy_file;
pub mod progress;
pub mod requests;
#[cfg(feature = "sim")]
pub mod sim;
pub mod verify;
