//! Bitcoin transactions parsed inside the enclave: a PSBT spending P2WPKH inputs, its
//! inputs, outputs and fee as the policy sees them, the BIP143 sighashes the node signs, and
//! the finalized PSBT it returns.
//!
//! - [`psbt`]: [`BtcPsbt`], every refusal, the sighashes, the key check and finalization.
//! - [`network`]: [`BtcNetwork`], the networks by the names the policy uses.

pub mod network;
pub mod psbt;

pub use network::{BtcNetwork, p2wpkh_address};
pub use psbt::{
    BtcDestination, BtcInput, BtcOutput, BtcPsbt, MAX_PSBT_INPUTS, MAX_PSBT_LEN, MAX_PSBT_OUTPUTS,
    extract_tx_hex,
};

#[cfg(test)]
mod tests;
