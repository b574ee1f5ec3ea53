//! Threshold signatures for the custody node, without any I/O: a scheme-neutral session driver,
//! and threshold ECDSA on secp256k1 as its first scheme.
//!
//! Sessions take authenticated messages in and return messages to send, so the node decides
//! how bytes travel and the protocols can be tested with every party simulated in one process.
//!
//! Scheme-neutral:
//! - [`scheme`]: [`Scheme`], what a signature scheme supplies (key generation, signing,
//!   optional presigning, and its types); [`SchemeId`], the name of a scheme on the wire and
//!   in records; [`Epoch`], the generation of a key's shares. Why a trait and not an enum is
//!   argued there.
//! - [`session`]: [`Session`] drives one protocol at one party, whatever the scheme; it
//!   refuses messages for another session, from a non-participant, duplicated or out of order
//!   without disturbing the session, and surfaces the parties the protocol blames when it
//!   aborts.
//! - [`party`] (from the `ids` crate): node ids, the party set of a key (sorted ids give the
//!   library's indices), the threshold and the signing set.
//! - [`session_id`] (from the `protocol` crate): session ids derived from the request every
//!   participant verified.
//! - [`envelope`] (from the `protocol` crate): the versioned wire frame of one protocol
//!   message, parsed with size limits.
//! - [`keys`]: key ids, derivation paths, secp256k1 public keys, errors of key material.
//! - [`record`]: the versioned stored form of a key share, naming its scheme and epoch.
//! - [`signature`]: [`Signature`], a signature of any scheme, tagged with it.
//! - `sim` (feature `sim`, off in production builds): pre-generated primes and auxiliary info
//!   loaded from fixture files, and an in-process network that runs all parties in one thread.
//!
//! Schemes:
//! - [`ecdsa`]: threshold ECDSA over `cggmp24` ([`ecdsa::Ecdsa`]): auxiliary info, key
//!   shares, presignatures and their pool, safe primes, `(r, s, v)` signatures.
//!
//! Sessions of the ECDSA scheme hold the library's round-based state machine, which is
//! single-threaded (`!Send`); a runtime drives each session on the thread that created it, and
//! calls into a session from a thread that may block, since a call can run seconds of
//! big-integer arithmetic.

#![forbid(unsafe_code)]

pub mod ecdsa;
pub mod keys;
/// Node ids, party sets, thresholds and signing sets, shared with the wire types.
pub use ids::party;
/// Protocol-message frames and session ids, shared with the wire types.
pub use protocol::{envelope, session_id};
mod payload;
pub mod record;
pub mod scheme;
pub mod session;
pub mod signature;
#[cfg(feature = "sim")]
pub mod sim;

pub use chains::keccak256;
pub use envelope::{Envelope, EnvelopeError, Recipient};
pub use keys::{DerivationPath, KeyError, KeyId, PublicKey};
pub use party::{NodeId, PartyError, PartySet, SigningSet, Threshold};
pub use record::ShareRecord;
pub use scheme::{Epoch, Scheme, SchemeError, SchemeId, Share};
pub use session::{ConfigError, Refusal, Session, SessionError, SessionState};
pub use session_id::{Protocol, SessionId};
pub use signature::{Signature, VerifyError};

/// The curve of every secp256k1 key here.
type Curve = cggmp24::supported_curves::Secp256k1;
