//! The wire types that two parties of a custody cluster share, with their codecs and
//! limits, and nothing else: no runtime, no I/O, no keys. A node, the `custody` client,
//! the tests and the fuzz targets all speak through these types.
//!
//! - [`authority`]: a request that changes what the cluster signs and the operators'
//!   approvals of it, which every node that contributes a share checks itself.
//! - [`operator_api`]: what operators and tools send to a node's client port and what it
//!   answers (status, key commands signed by an operator, created keys, signatures).
//! - [`peer`]: what nodes send each other over an attested channel: data-key escrow and
//!   release, liveness, and the one-way messages of threshold sessions.
//! - [`request`]: the request that starts one threshold session at every participant,
//!   checked by each, and the outcome each participant answers.
//! - [`envelope`]: the frame of one threshold-protocol message between nodes.
//! - [`hello`]: what each side of an attested channel sends after the TLS handshake.
//! - [`session_id`]: the protocols a session can run and the session id every
//!   participant derives from the request it verified.
//! - [`path`]: non-hardened derivation paths.
//! - [`to_sign`]: what a signing request asks the nodes to sign.
//! - [`text`]: text from another party, made safe to relay and print.
#![forbid(unsafe_code)]

pub mod authority;
pub mod envelope;
pub mod hello;
pub mod operator_api;
pub mod path;
pub mod peer;
pub mod request;
pub mod session_id;
pub mod text;
pub mod to_sign;

pub use envelope::{Envelope, EnvelopeError, Recipient};
/// The scheme a key, request or answer names.
pub use ids::SchemeId;
pub use path::{DerivationPath, PathError};
pub use session_id::{Protocol, SessionId};
pub use text::printable;
pub use to_sign::ToSign;
