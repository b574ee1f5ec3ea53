//! Ethereum transactions parsed inside the enclave: what an unsigned transaction asks for
//! (chain, destination, value, an ERC-20 transfer), the hash the node signs, and the signed
//! raw transaction it returns.
//!
//! - [`tx`]: [`EthTx`], the accepted transaction types and every refusal, the signing hash,
//!   the signed raw transaction, and [`recover_sender`] to check a signed one independently.
//! - [`erc20`]: the one contract call the node understands, ERC-20 `transfer`.

pub mod erc20;
pub mod tx;

pub use erc20::{CalldataKind, ERC20_TRANSFER_SELECTOR, Erc20Transfer};
pub use tx::{EthTx, EthTxType, MAX_ETH_TX_LEN, Transfer, recover_sender, unsigned_transfer};

#[cfg(test)]
mod tests;
