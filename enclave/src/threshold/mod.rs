//! Threshold ECDSA at the node, without I/O: the request that starts a session at every
//! participant ([`request`]), the routing of protocol messages to running sessions
//! ([`router`]), and the loop that drives one session ([`runner`]). Whether a participant
//! admits a session is `crate::core::admission`; the node runtime connects them to
//! attested channels and sealed storage.

/// The session request lives with the other wire types.
pub use protocol::request;
pub mod router;
pub mod runner;
