//! The facts the engine evaluates: what a request would sign, as the node read it from the
//! transaction it parsed itself (never as the requester describes it). The constructors
//! normalize every address the way the policy's allowlist is normalized, so a destination
//! written in another case still matches its entry, and refuse what cannot be a request.
//!
//! The node lists as transfers every output that leaves the key's control; change paid
//! back to the key's own address is not a transfer (the fee still counts).

use crate::chain::{Asset, Chain, normalize_address};
use crate::error::FactsError;
use ids::KeyId;

/// Most transfers (outputs, recipients) one request may carry.
pub const MAX_TRANSFERS: usize = 256;

/// A payment to one destination, in base units of the request's asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    to: String,
    amount: u128,
}

impl Transfer {
    /// A destination as the transaction names it; normalized by the [`Facts`]
    /// constructor, which knows the chain.
    pub fn new(to: impl Into<String>, amount: u128) -> Self {
        Transfer {
            to: to.into(),
            amount,
        }
    }

    /// Normalized (see [`crate::normalize_address`]) once inside [`Facts`].
    pub fn to(&self) -> &str {
        &self.to
    }

    pub fn amount(&self) -> u128 {
        self.amount
    }
}

/// What one signing request would sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    key_id: KeyId,
    chain: Chain,
    asset: Asset,
    transfers: Vec<Transfer>,
    fee: u128,
    /// The most an Ethereum transaction may pay for gas, in wei, whatever its asset.
    network_fee: u128,
}

impl Facts {
    /// A transaction on `chain` (ethereum or bitcoin) moving `asset`. Every destination is
    /// normalized; an ERC-20 asset is only possible on ethereum.
    pub fn transaction(
        key_id: KeyId,
        chain: Chain,
        asset: Asset,
        transfers: Vec<Transfer>,
        fee: u128,
    ) -> Result<Facts, FactsError> {
        if chain == Chain::Digest {
            return Err(FactsError::DigestWithTransfers);
        }
        if transfers.len() > MAX_TRANSFERS {
            return Err(FactsError::TooManyTransfers {
                count: transfers.len(),
                max: MAX_TRANSFERS,
            });
        }
        let asset = match asset {
            Asset::Native => Asset::Native,
            Asset::Erc20(contract) => Asset::parse(&chain, &contract).map_err(FactsError::Asset)?,
        };
        let transfers = transfers
            .into_iter()
            .enumerate()
            .map(|(index, t)| {
                normalize_address(&chain, &t.to)
                    .map(|to| Transfer {
                        to,
                        amount: t.amount,
                    })
                    .map_err(|reason| FactsError::Destination { index, reason })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let facts = Facts {
            key_id,
            chain,
            asset,
            transfers,
            fee,
            network_fee: 0,
        };
        facts.amount()?;
        Ok(facts)
    }

    /// A raw digest to sign with `key_id`: chain [`Chain::Digest`], no transfers, no fee.
    pub fn digest(key_id: KeyId) -> Facts {
        Facts {
            key_id,
            chain: Chain::Digest,
            asset: Asset::Native,
            transfers: Vec::new(),
            fee: 0,
            network_fee: 0,
        }
    }

    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    pub fn asset(&self) -> &Asset {
        &self.asset
    }

    pub fn transfers(&self) -> &[Transfer] {
        &self.transfers
    }

    pub fn fee(&self) -> u128 {
        self.fee
    }

    /// The same facts, paying at most `wei` for gas (an Ethereum transaction): what a
    /// rule's `max_fee` bounds. For a native transfer the caller also counts it in `fee`.
    pub fn with_network_fee(mut self, wei: u128) -> Facts {
        self.network_fee = wei;
        self
    }

    pub fn network_fee(&self) -> u128 {
        self.network_fee
    }

    /// What the request spends: every transfer plus the fee. Never overflows for facts a
    /// constructor returned, which checked it.
    pub fn amount(&self) -> Result<u128, FactsError> {
        self.transfers
            .iter()
            .try_fold(self.fee, |sum, t| sum.checked_add(t.amount))
            .ok_or(FactsError::AmountOverflow)
    }

    /// The normalized destinations, in order.
    pub fn destinations(&self) -> Vec<String> {
        self.transfers.iter().map(|t| t.to.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BtcNetwork;

    fn key() -> KeyId {
        KeyId::new("treasury").unwrap()
    }

    #[test]
    fn destinations_are_normalized() {
        let facts = Facts::transaction(
            key(),
            Chain::Ethereum { chain_id: 1 },
            Asset::Erc20(format!("0x{}", "AA".repeat(20))),
            vec![Transfer::new(format!("0X{}", "Bb".repeat(20)), 5)],
            1,
        )
        .unwrap();
        assert_eq!(facts.transfers()[0].to(), format!("0x{}", "bb".repeat(20)));
        assert_eq!(
            facts.asset(),
            &Asset::Erc20(format!("0x{}", "aa".repeat(20)))
        );
        assert_eq!(facts.amount().unwrap(), 6);
        let btc = Facts::transaction(
            key(),
            Chain::Bitcoin {
                network: BtcNetwork::Testnet,
            },
            Asset::Native,
            vec![Transfer::new("TB1QXYZ", 1)],
            0,
        )
        .unwrap();
        assert_eq!(btc.destinations(), vec!["tb1qxyz".to_owned()]);
    }

    #[test]
    fn refused_facts() {
        let eth = Chain::Ethereum { chain_id: 1 };
        let to = format!("0x{}", "11".repeat(20));
        assert_eq!(
            Facts::transaction(
                key(),
                eth,
                Asset::Native,
                vec![Transfer::new(&to, u128::MAX)],
                1
            ),
            Err(FactsError::AmountOverflow)
        );
        assert!(matches!(
            Facts::transaction(key(), eth, Asset::Native, vec![Transfer::new("0x12", 1)], 0),
            Err(FactsError::Destination { index: 0, .. })
        ));
        let btc = Chain::Bitcoin {
            network: BtcNetwork::Mainnet,
        };
        assert!(matches!(
            Facts::transaction(key(), btc, Asset::Erc20(to.clone()), vec![], 0),
            Err(FactsError::Asset(_))
        ));
        assert_eq!(
            Facts::transaction(key(), Chain::Digest, Asset::Native, vec![], 0),
            Err(FactsError::DigestWithTransfers)
        );
        let at_max = vec![Transfer::new(&to, 1); MAX_TRANSFERS];
        assert!(Facts::transaction(key(), eth, Asset::Native, at_max, 0).is_ok());
        let over = vec![Transfer::new(&to, 1); MAX_TRANSFERS + 1];
        assert_eq!(
            Facts::transaction(key(), eth, Asset::Native, over, 0),
            Err(FactsError::TooManyTransfers {
                count: MAX_TRANSFERS + 1,
                max: MAX_TRANSFERS
            })
        );
        let digest = Facts::digest(key());
        assert_eq!(digest.chain(), &Chain::Digest);
        assert!(digest.transfers().is_empty());
        assert_eq!(digest.amount().unwrap(), 0);
    }
}
