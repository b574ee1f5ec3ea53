//! Threshold ECDSA on secp256k1 for the custody node, without any I/O.
//!
//! The engine wraps [`cggmp24`] (pure-Rust `num-bigint` backend, pinned exactly because it is
//! pre-release) behind session objects that take authenticated messages in and return messages
//! to send, so the node decides how bytes travel and the protocols can be tested with every
//! party simulated in one process.
//!
//! - [`party`] (from the `ids` crate): node ids, the party set of a key (sorted ids give the
//!   library's indices), the threshold and the signing set.
//! - [`session_id`] (from the `protocol` crate): session ids derived from the request every
//!   participant verified.
//! - [`envelope`] (from the `protocol` crate): the versioned wire frame of one protocol
//!   message, parsed with size limits.
//! - [`session`]: [`Session`] drives auxiliary-info generation, threshold key generation,
//!   presignature generation and signing (full, or from a presignature); it refuses messages for
//!   another session, from a non-participant, duplicated or out of order without disturbing the
//!   session, and surfaces the parties the library blames when it aborts.
//! - [`primes`]: a pool of safe primes filled by background threads.
//! - [`presign`]: presignatures, which are used at most once and never serialized, and their pool.
//! - [`keys`] and [`signature`]: key shares, public keys, derivation paths, and signatures checked
//!   with `k256` independently of the library.
//! - `sim` (feature `sim`, off in production builds): pre-generated primes and auxiliary info
//!   loaded from fixture files, and an in-process network that runs all parties in one thread.
//!
//! Sessions hold the library's round-based state machine, which is single-threaded (`!Send`);
//! a runtime drives each session on the thread that created it, and calls into a session from a
//! thread that may block, since a call can run seconds of big-integer arithmetic.

#![forbid(unsafe_code)]

mod blame;
pub mod keys;
/// Node ids, party sets, thresholds and signing sets, shared with the wire types.
pub use ids::party;
/// Protocol-message frames and session ids, shared with the wire types.
pub use protocol::{envelope, session_id};
mod payload;
pub mod presign;
pub mod primes;
pub mod session;
pub mod signature;
#[cfg(feature = "sim")]
pub mod sim;

pub use chains::keccak256;
pub use envelope::{Envelope, EnvelopeError, Recipient};
pub use ids::KeyId;
pub use keys::{AuxInfo, DerivationPath, KeyError, KeyShare, PublicKey};
pub use party::{NodeId, PartyError, PartySet, SigningSet, Threshold};
pub use presign::{PoolKey, PresignRefusal, Presignature, PresignaturePool};
pub use primes::{PrimePool, PrimePoolError, SafePrimes};
pub use session::{ConfigError, Refusal, Session, SessionError, SessionState};
pub use session_id::{Protocol, SessionId};
pub use signature::{Signature, ToSign, VerifyError};

/// The curve every key of this engine lives on.
type Curve = cggmp24::supported_curves::Secp256k1;
/// The security level of the Paillier keys and zero-knowledge proofs.
type Level = cggmp24::security_level::SecurityLevel128;
