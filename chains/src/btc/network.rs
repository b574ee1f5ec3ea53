//! The Bitcoin networks the node knows, by the names the signing policy uses
//! (`"bitcoin:<network>"`), and the address encoding each implies.

use core::fmt;
use core::str::FromStr;

use crate::tx_error::TxError;

/// A Bitcoin network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BtcNetwork {
    /// Mainnet: addresses `bc1...`.
    Mainnet,
    /// Testnet3: addresses `tb1...`.
    Testnet,
    /// Testnet4: addresses `tb1...`.
    Testnet4,
    /// Signet: addresses `tb1...`.
    Signet,
    /// Regtest: addresses `bcrt1...`.
    Regtest,
}

impl BtcNetwork {
    /// Every network, in a fixed order.
    pub const ALL: [Self; 5] = [
        Self::Mainnet,
        Self::Testnet,
        Self::Testnet4,
        Self::Signet,
        Self::Regtest,
    ];

    /// The name the policy uses: `mainnet`, `testnet`, `testnet4`, `signet`, `regtest`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mainnet => "mainnet",
            Self::Testnet => "testnet",
            Self::Testnet4 => "testnet4",
            Self::Signet => "signet",
            Self::Regtest => "regtest",
        }
    }

    pub(crate) fn to_bitcoin(self) -> bitcoin::Network {
        match self {
            Self::Mainnet => bitcoin::Network::Bitcoin,
            Self::Testnet => bitcoin::Network::Testnet,
            Self::Testnet4 => bitcoin::Network::Testnet4,
            Self::Signet => bitcoin::Network::Signet,
            Self::Regtest => bitcoin::Network::Regtest,
        }
    }
}

impl fmt::Display for BtcNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BtcNetwork {
    type Err = TxError;

    /// Exactly one of the names [`BtcNetwork::name`] gives.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|network| network.name() == name)
            .ok_or_else(|| TxError::UnknownNetwork {
                name: name.to_owned(),
            })
    }
}
