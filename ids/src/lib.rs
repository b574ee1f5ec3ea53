//! Identifiers that every crate of the custody node shares, at the bottom of the
//! dependency graph so that the manifest, the transport, the engine and the wire types
//! name parties and keys with the same types and check them with the same rule.
//!
//! - [`syntax`]: the one identifier rule (1 to 64 characters of `A-Z a-z 0-9 . _ -`),
//!   [`check`] and its errors.
//! - [`party`]: [`NodeId`], the party set of a key, its threshold and a signing set.
//! - [`key`]: [`KeyId`], a key's name.
//! - [`operator`]: [`OperatorId`], an operator's name in the manifest.
//! - [`scheme`]: [`SchemeId`], a signature scheme's name in records, requests and answers.
//! - [`manifest_hash`]: [`ManifestHash`], SHA-256 of a manifest body, as carried and
//!   compared (the `manifest` crate computes it).
#![forbid(unsafe_code)]

pub mod key;
pub mod manifest_hash;
pub mod operator;
pub mod party;
pub mod scheme;
pub mod syntax;

pub use key::KeyId;
pub use manifest_hash::ManifestHash;
pub use operator::OperatorId;
pub use party::{NodeId, PartyError, PartySet, SigningSet, Threshold};
pub use scheme::{SchemeError, SchemeId};
pub use syntax::{IdError, MAX_ID_LEN, SyntaxError, check};
