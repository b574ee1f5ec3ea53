//! The custody node: what runs inside the enclave.
//!
//! - [`core`]: the node's decisions without I/O, each taking `now` and returning actions:
//!   its phases and which request each phase serves, provisioning and key release,
//!   session admission and the coordinator's session.
//! - [`runtime`]: the thin asynchronous shell that drives the core, generic over the blob
//!   store, the dialer and the clock: listeners, peer links, key sessions.
//! - [`threshold`]: routing protocol messages to running sessions and driving one session
//!   on a blocking thread.
//! - [`sealed`]: state sealed under the node's data key, kept by the untrusted parent,
//!   with rollback detection.
//! - [`blobs`]: the parent's blob store over vsock, or a directory of the node's own.
//! - [`launch`]: what the binary starts a node with: its provider's attester and the
//!   roots it trusts, and where its sockets and blobs come from.
//! - [`provisioning`]: what the node records of each peer's answer about its data key.
//! - [`hpke`]: HPKE (RFC 9180), to which secret material is sealed for one recipient.
//! - [`gcs`]: sealed blobs in a Cloud Storage bucket, for a node without a parent.
//! - [`channel`] and [`operator_api`]: the attested channel and the operator API, which
//!   live in their own crates, under the names the node uses.
#![forbid(unsafe_code)]

pub mod blobs;
/// The attested channel is its own crate; the node uses it under this name.
pub use ::channel;
pub mod core;
pub mod gcs;
pub mod hpke;
pub mod launch;
/// The operator API lives with the other wire types.
pub use protocol::operator_api;
pub mod provisioning;
pub mod runtime;
pub mod sealed;
pub mod threshold;
