//! What the custody node knows of the blockchains it signs for, as pure functions without
//! any I/O or key material: hashes the chains define, and the addresses of a public key.
//! Transaction parsing for the signing policy belongs here too.
//!
//! - [`address`]: Keccak-256, and the Ethereum (EIP-55) and Bitcoin P2WPKH (BIP-173)
//!   addresses of a secp256k1 public key.
#![forbid(unsafe_code)]

pub mod address;

pub use address::{btc_p2wpkh_address, eip55, eth_address, keccak256};
