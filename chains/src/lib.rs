//! What the custody node knows of the blockchains it signs for, as pure functions without
//! any I/O or key material: hashes the chains define, the addresses of a public key, and the
//! transactions the signing policy evaluates, parsed with the ecosystems' own libraries.
//!
//! - [`address`]: Keccak-256, and the Ethereum (EIP-55) and Bitcoin P2WPKH (BIP-173)
//!   addresses of a secp256k1 public key.
//! - [`eth`]: unsigned legacy (EIP-155) and EIP-1559 transactions, their signing hash and
//!   the signed raw transaction.
//! - [`btc`]: PSBTs spending P2WPKH inputs, their BIP143 sighashes and the signed PSBT.
//! - [`TxError`]: why either was refused.
#![forbid(unsafe_code)]

pub mod address;
pub mod btc;
pub mod eth;
mod tx_error;

pub use address::{btc_p2wpkh_address, eip55, eth_address, keccak256};
pub use tx_error::TxError;
