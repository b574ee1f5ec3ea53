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

/// The P2WPKH address of the compressed SEC1 key `public_key` on `network`: where change
/// paid back to a key goes.
pub fn p2wpkh_address(
    public_key: &[u8; 33],
    network: BtcNetwork,
) -> Result<String, crate::TxError> {
    let key = bitcoin::CompressedPublicKey::from_slice(public_key)
        .map_err(|_| crate::TxError::InvalidPublicKey)?;
    Ok(bitcoin::Address::p2wpkh(&key, network.to_bitcoin()).to_string())
}

#[cfg(test)]
mod address_tests {
    use super::*;

    #[test]
    fn a_keys_address_depends_on_the_network() {
        let key = k256::SecretKey::from_slice(&[7u8; 32])
            .unwrap()
            .public_key();
        let bytes: [u8; 33] =
            k256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&key, true)
                .as_bytes()
                .try_into()
                .unwrap();
        let main = p2wpkh_address(&bytes, BtcNetwork::Mainnet).unwrap();
        assert_eq!(main, crate::btc_p2wpkh_address(&key));
        assert!(
            p2wpkh_address(&bytes, BtcNetwork::Regtest)
                .unwrap()
                .starts_with("bcrt1")
        );
        assert!(p2wpkh_address(&[5u8; 33], BtcNetwork::Mainnet).is_err());
    }
}
