//! The custody node: what runs inside the enclave.
#![forbid(unsafe_code)]

pub mod blobs;
/// The attested channel is its own crate; the node uses it under this name.
pub use ::channel;
pub mod core;
pub mod hpke;
/// The operator API lives with the other wire types.
pub use protocol::operator_api;
pub mod provisioning;
pub mod runtime;
pub mod sealed;
pub mod threshold;
