//! Threshold ECDSA on secp256k1, the scheme [`Ecdsa`] (`ecdsa-secp256k1`), over [`cggmp24`]
//! (pure-Rust `num-bigint` backend, pinned exactly because it is pre-release).
//!
//! - `sessions`: [`Ecdsa::aux_info`], and the [`Scheme`](crate::Scheme) sessions of
//!   [`Ecdsa`]: key generation (HD-capable), presigning and signing, full or from a
//!   presignature.
//! - [`keys`]: auxiliary info (Paillier keys, per party set) and key shares.
//! - [`presign`]: presignatures, which are used at most once and never serialized, and their
//!   pool.
//! - [`primes`]: a pool of safe primes filled by background threads, for auxiliary info.
//! - [`signature`]: what gets signed, and `(r, s, v)` signatures checked with `k256`
//!   independently of the library.
//! - `presigned`: the one-round signing from a presignature; `blame`: the parties the library
//!   blamed, read from its errors.
//!
//! Before key generation a party set runs auxiliary-info generation once (one to two minutes
//! of CPU per party for the safe primes, which [`primes`] finds in the background); its output
//! is this scheme's [`Scheme::Setup`](crate::Scheme::Setup).

mod blame;
pub mod keys;
pub mod presign;
mod presigned;
pub mod primes;
mod sessions;
pub mod signature;

pub use keys::{AuxInfo, KeyShare};
pub use presign::{PoolKey, PresignRefusal, Presignature, PresignaturePool};
pub use primes::{PrimePool, PrimePoolError, SafePrimes};
pub use signature::{Signature, ToSign, VerifyError};

/// Threshold ECDSA on secp256k1: the [`Scheme`](crate::Scheme) `ecdsa-secp256k1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ecdsa;

/// The security level of the Paillier keys and zero-knowledge proofs.
pub(crate) type Level = cggmp24::security_level::SecurityLevel128;
