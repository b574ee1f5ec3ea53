//! Threshold ECDSA at the node, without I/O: the request that starts a session at every
//! participant ([`request`]), whether a participant runs an auxiliary-info session
//! ([`aux_admission`]), the routing of protocol messages to running sessions
//! ([`router`]), and the loop that drives one session ([`runner`]). The node runtime
//! (`node::keys`) connects them to attested channels and sealed storage.

pub mod aux_admission;
/// The session request lives with the other wire types.
pub use protocol::request;
pub mod router;
pub mod runner;
