//! Chains, assets, addresses and amounts as a policy writes them, and the one normalization
//! both the document and the facts of a request go through, so that an allowlisted address
//! and a transaction's destination compare equal exactly when they are the same account.

use crate::error::Reason;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use std::fmt;
use std::str::FromStr;

/// Longest bitcoin address accepted (bech32 addresses are at most 90 characters).
pub const MAX_BTC_ADDRESS_LEN: usize = 90;

/// A bitcoin network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BtcNetwork {
    Mainnet,
    Testnet,
    Signet,
    Regtest,
}

impl BtcNetwork {
    fn name(self) -> &'static str {
        match self {
            BtcNetwork::Mainnet => "mainnet",
            BtcNetwork::Testnet => "testnet",
            BtcNetwork::Signet => "signet",
            BtcNetwork::Regtest => "regtest",
        }
    }
}

/// What a rule, an allowlist entry or a request is about: `"ethereum:<chain id>"`,
/// `"bitcoin:<network>"` or `"digest"` (a raw 32-byte digest, no transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Chain {
    Ethereum { chain_id: u64 },
    Bitcoin { network: BtcNetwork },
    Digest,
}

impl FromStr for Chain {
    type Err = Reason;

    /// One spelling per chain: the chain id is decimal without sign or leading zero, and
    /// not 0 (EIP-155 chain ids start at 1).
    fn from_str(s: &str) -> Result<Self, Reason> {
        let refuse = || Reason::Chain(s.chars().take(80).collect());
        if s == "digest" {
            return Ok(Chain::Digest);
        }
        if let Some(id) = s.strip_prefix("ethereum:") {
            if id.is_empty()
                || id.len() > 20
                || id.starts_with('0')
                || !id.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(refuse());
            }
            let chain_id = id.parse().map_err(|_| refuse())?;
            return Ok(Chain::Ethereum { chain_id });
        }
        let network = match s.strip_prefix("bitcoin:") {
            Some("mainnet") => BtcNetwork::Mainnet,
            Some("testnet") => BtcNetwork::Testnet,
            Some("signet") => BtcNetwork::Signet,
            Some("regtest") => BtcNetwork::Regtest,
            _ => return Err(refuse()),
        };
        Ok(Chain::Bitcoin { network })
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Chain::Ethereum { chain_id } => write!(f, "ethereum:{chain_id}"),
            Chain::Bitcoin { network } => write!(f, "bitcoin:{}", network.name()),
            Chain::Digest => f.write_str("digest"),
        }
    }
}

impl Serialize for Chain {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Chain {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// What moves: the chain's own coin, or an ERC-20 token named by its contract address
/// (normalized to lowercase).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Asset {
    Native,
    Erc20(String),
}

impl Asset {
    /// `"native"`, or an ERC-20 contract address, which only an ethereum chain has.
    pub fn parse(chain: &Chain, s: &str) -> Result<Self, Reason> {
        if s == "native" {
            return Ok(Asset::Native);
        }
        match chain {
            Chain::Ethereum { .. } => normalize_address(chain, s)
                .map(Asset::Erc20)
                .map_err(|_| Reason::Asset(s.chars().take(80).collect())),
            _ => Err(Reason::Asset(s.chars().take(80).collect())),
        }
    }
}

impl fmt::Display for Asset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Asset::Native => f.write_str("native"),
            Asset::Erc20(contract) => f.write_str(contract),
        }
    }
}

impl Serialize for Asset {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Asset {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        if s == "native" {
            return Ok(Asset::Native);
        }
        normalize_address(&Chain::Ethereum { chain_id: 1 }, &s)
            .map(Asset::Erc20)
            .map_err(de::Error::custom)
    }
}

/// The one form of `address` on `chain` that comparisons use:
/// - ethereum: `0x` and 40 hex digits (either case, EIP-55 checksum not required), kept
///   lowercase;
/// - bitcoin: 1 to [`MAX_BTC_ADDRESS_LEN`] ASCII letters and digits; a bech32 address
///   (`bc1`, `tb1`, `bcrt1`, in either case) is kept lowercase, a base58 one as written
///   (its case is significant);
/// - digest: none.
pub fn normalize_address(chain: &Chain, address: &str) -> Result<String, Reason> {
    let shown = || address.chars().take(100).collect::<String>();
    match chain {
        Chain::Ethereum { .. } => {
            let hex_part = address
                .strip_prefix("0x")
                .or_else(|| address.strip_prefix("0X"));
            match hex_part {
                Some(h) if h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    Ok(format!("0x{}", h.to_ascii_lowercase()))
                }
                _ => Err(Reason::EthereumAddress(shown())),
            }
        }
        Chain::Bitcoin { .. } => {
            if address.is_empty()
                || address.len() > MAX_BTC_ADDRESS_LEN
                || !address.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(Reason::BitcoinAddress(shown()));
            }
            let lower = address.to_ascii_lowercase();
            if ["bc1", "tb1", "bcrt1"].iter().any(|p| lower.starts_with(p)) {
                Ok(lower)
            } else {
                Ok(address.to_owned())
            }
        }
        Chain::Digest => Err(Reason::DigestAddress),
    }
}

/// A decimal amount of base units: digits only (no sign, space, hex or exponent), at most
/// `u128::MAX`.
pub fn parse_amount(s: &str) -> Result<u128, Reason> {
    // u128::MAX has 39 digits; leading zeros would only pad, so 40 is plenty to refuse
    // early without scanning an arbitrary string.
    if s.is_empty() || s.len() > 40 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Reason::NotAmount);
    }
    s.parse().map_err(|_| Reason::NotAmount)
}

/// Amounts in stored formats: decimal strings, as in the document (JSON numbers cannot
/// carry 128 bits faithfully).
pub(crate) mod amount_serde {
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(amount: &u128, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(amount)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u128, D::Error> {
        let s = String::deserialize(deserializer)?;
        super::parse_amount(&s).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_have_one_spelling() {
        for (s, chain) in [
            ("ethereum:1", Chain::Ethereum { chain_id: 1 }),
            (
                "ethereum:18446744073709551615",
                Chain::Ethereum { chain_id: u64::MAX },
            ),
            (
                "bitcoin:signet",
                Chain::Bitcoin {
                    network: BtcNetwork::Signet,
                },
            ),
            ("digest", Chain::Digest),
        ] {
            assert_eq!(s.parse::<Chain>().unwrap(), chain);
            assert_eq!(chain.to_string(), s);
        }
        for bad in [
            "ethereum:0",
            "ethereum:01",
            "ethereum:+1",
            "ethereum: 1",
            "ethereum:0x1",
            "ethereum:18446744073709551616",
            "ethereum:",
            "Ethereum:1",
            "bitcoin:main",
            "bitcoin:",
            "Digest",
            "solana:1",
        ] {
            assert!(bad.parse::<Chain>().is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_normalize() {
        let eth = Chain::Ethereum { chain_id: 1 };
        let upper = format!("0x{}", "AB".repeat(20));
        assert_eq!(
            normalize_address(&eth, &upper).unwrap(),
            format!("0x{}", "ab".repeat(20))
        );
        for bad in ["", "0x", &"ab".repeat(21), &format!("0x{}", "g".repeat(40))] {
            assert!(normalize_address(&eth, bad).is_err(), "{bad}");
        }
        assert!(normalize_address(&eth, &format!("0x{}", "a".repeat(41))).is_err());
        let btc = Chain::Bitcoin {
            network: BtcNetwork::Mainnet,
        };
        assert_eq!(normalize_address(&btc, "BC1QABC").unwrap(), "bc1qabc");
        assert_eq!(normalize_address(&btc, "1AbC").unwrap(), "1AbC");
        assert!(normalize_address(&btc, &"a".repeat(MAX_BTC_ADDRESS_LEN)).is_ok());
        assert!(normalize_address(&btc, &"a".repeat(MAX_BTC_ADDRESS_LEN + 1)).is_err());
        for bad in ["", "bc1 q", "bc1-q", "bc1é"] {
            assert!(normalize_address(&btc, bad).is_err(), "{bad}");
        }
        assert_eq!(
            normalize_address(&Chain::Digest, "x"),
            Err(Reason::DigestAddress)
        );
    }

    #[test]
    fn amounts_are_plain_decimal() {
        assert_eq!(parse_amount("0").unwrap(), 0);
        assert_eq!(parse_amount(&u128::MAX.to_string()).unwrap(), u128::MAX);
        for bad in [
            "",
            "+1",
            "-1",
            " 1",
            "1 ",
            "0x10",
            "1e3",
            "1.0",
            "340282366920920938463463374607431768211456",
            &"1".repeat(100),
        ] {
            assert_eq!(parse_amount(bad), Err(Reason::NotAmount), "{bad:?}");
        }
    }

    #[test]
    fn assets_only_on_ethereum() {
        let eth = Chain::Ethereum { chain_id: 5 };
        let token = format!("0x{}", "Cd".repeat(20));
        assert_eq!(
            Asset::parse(&eth, &token).unwrap(),
            Asset::Erc20(token.to_ascii_lowercase())
        );
        assert_eq!(Asset::parse(&eth, "native").unwrap(), Asset::Native);
        let btc = Chain::Bitcoin {
            network: BtcNetwork::Regtest,
        };
        assert_eq!(Asset::parse(&btc, "native").unwrap(), Asset::Native);
        assert!(Asset::parse(&btc, &token).is_err());
        assert!(Asset::parse(&eth, "NATIVE").is_err());
    }
}
