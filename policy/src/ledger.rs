//! The spending ledger velocity limits count: every spend the custodian's keys made in the
//! last [`RETENTION_SECS`], whichever nodes signed it.
//!
//! A node's own signatures are not enough: with 2-of-3, signatures by {1,2}, {1,3} and
//! {2,3} are each seen by two nodes only, so a ledger of what a node itself signed lets
//! three times the limit through. So every party of a key records each spend before any
//! share is contributed, a party that was away catches up from its peers' records with
//! [`Ledger::merge`], and records are keyed by the request's hash, so the same spend seen
//! from several peers counts once.
//!
//! Limits: at most [`MAX_SPENDS`] live spends. Recording one more is an error, never a
//! silent drop (a dropped spend would raise what velocity allows); the node then refuses
//! to sign until [`Ledger::prune`] frees room.
//!
//! Stored as a versioned serde structure (`{"version": 1, "spends": [..]}`) that the node
//! seals; reading it back checks the version, the limits and that no request appears
//! twice.

use crate::bounded::Bounded;
use crate::chain::{Asset, Chain, amount_serde};
use crate::error::LedgerError;
use crate::facts::MAX_TRANSFERS;
use ids::KeyId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// Most spends the ledger holds at once.
pub const MAX_SPENDS: usize = 4096;
/// How long a spend is kept: the longest velocity window (31 days).
pub const RETENTION_SECS: u64 = crate::document::MAX_WINDOW_SECS;
/// Version of the stored format.
pub const LEDGER_FORMAT: u32 = 1;

/// One signed (or about to be signed) request's spending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spend {
    /// The request's hash: what makes recording idempotent.
    #[serde(with = "hex32")]
    pub request: [u8; 32],
    pub key_id: KeyId,
    pub chain: Chain,
    pub asset: Asset,
    /// Normalized destinations.
    pub to: Vec<String>,
    /// Transfers plus fee, base units.
    #[serde(with = "amount_serde")]
    pub amount: u128,
    /// When the node that recorded it first saw it (Unix seconds).
    pub at_secs: u64,
}

/// What [`Ledger::record`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New,
    /// The request was recorded before: nothing counted twice.
    AlreadyRecorded,
}

/// The spends, by request hash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    spends: BTreeMap<[u8; 32], Spend>,
}

impl Ledger {
    pub fn new() -> Self {
        Ledger::default()
    }

    /// Records `spend` unless its request is recorded already.
    pub fn record(&mut self, spend: Spend) -> Result<Recorded, LedgerError> {
        if self.spends.contains_key(&spend.request) {
            return Ok(Recorded::AlreadyRecorded);
        }
        check_spend(&spend)?;
        if self.spends.len() >= MAX_SPENDS {
            return Err(LedgerError::Full { max: MAX_SPENDS });
        }
        self.spends.insert(spend.request, spend);
        Ok(Recorded::New)
    }

    pub fn contains(&self, request: &[u8; 32]) -> bool {
        self.spends.contains_key(request)
    }

    pub fn get(&self, request: &[u8; 32]) -> Option<&Spend> {
        self.spends.get(request)
    }

    pub fn len(&self) -> usize {
        self.spends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spends.is_empty()
    }

    /// The sum of the amounts of the spends with `from_secs <= at_secs <= now_secs` that
    /// `filter` keeps.
    pub fn window_sum(
        &self,
        filter: impl Fn(&Spend) -> bool,
        from_secs: u64,
        now_secs: u64,
    ) -> Result<u128, LedgerError> {
        self.spends
            .values()
            .filter(|s| s.at_secs >= from_secs && s.at_secs <= now_secs && filter(s))
            .try_fold(0u128, |sum, s| sum.checked_add(s.amount))
            .ok_or(LedgerError::Overflow)
    }

    /// Drops the spends older than [`RETENTION_SECS`] at `now_secs`; returns how many.
    pub fn prune(&mut self, now_secs: u64) -> usize {
        let cutoff = now_secs.saturating_sub(RETENTION_SECS);
        let before = self.spends.len();
        self.spends.retain(|_, s| s.at_secs >= cutoff);
        before.saturating_sub(self.spends.len())
    }

    /// Every spend, by request hash: what a node hands a peer that catches up.
    pub fn spends(&self) -> impl Iterator<Item = &Spend> {
        self.spends.values()
    }

    /// Catches up from a peer's spends: the union by request hash, where a request both
    /// hold keeps the earlier time (it was spent since then, whoever saw it first). All
    /// or nothing: when the union would exceed [`MAX_SPENDS`], or a spend is malformed,
    /// the ledger is left as it was and the error returned. Returns how many spends were
    /// added or moved earlier.
    pub fn merge(&mut self, other: impl IntoIterator<Item = Spend>) -> Result<usize, LedgerError> {
        let mut merged = self.spends.clone();
        let mut changed = 0usize;
        for spend in other {
            check_spend(&spend)?;
            match merged.get_mut(&spend.request) {
                Some(held) => {
                    if spend.at_secs < held.at_secs {
                        held.at_secs = spend.at_secs;
                        changed = changed.saturating_add(1);
                    }
                }
                None => {
                    if merged.len() >= MAX_SPENDS {
                        return Err(LedgerError::Full { max: MAX_SPENDS });
                    }
                    merged.insert(spend.request, spend);
                    changed = changed.saturating_add(1);
                }
            }
        }
        self.spends = merged;
        Ok(changed)
    }
}

fn check_spend(spend: &Spend) -> Result<(), LedgerError> {
    if spend.to.len() > MAX_TRANSFERS {
        return Err(LedgerError::TooManyDestinations {
            request: hex::encode(spend.request),
            count: spend.to.len(),
            max: MAX_TRANSFERS,
        });
    }
    Ok(())
}

#[derive(Serialize)]
struct LedgerOut<'a> {
    version: u32,
    spends: Vec<&'a Spend>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerIn {
    version: u32,
    spends: Bounded<Spend, MAX_SPENDS>,
}

impl Serialize for Ledger {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        LedgerOut {
            version: LEDGER_FORMAT,
            spends: self.spends.values().collect(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Ledger {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let wire = LedgerIn::deserialize(deserializer)?;
        if wire.version != LEDGER_FORMAT {
            return Err(D::Error::custom(LedgerError::Format(format!(
                "version {} (this node reads {LEDGER_FORMAT})",
                wire.version
            ))));
        }
        let spends = wire.spends.or_count().map_err(|count| {
            D::Error::custom(LedgerError::Format(format!(
                "{count} spends, at most {MAX_SPENDS}"
            )))
        })?;
        let mut ledger = Ledger::new();
        for spend in spends {
            let request = spend.request;
            if ledger.record(spend).map_err(D::Error::custom)? == Recorded::AlreadyRecorded {
                return Err(D::Error::custom(LedgerError::Format(format!(
                    "request {} recorded twice",
                    hex::encode(request)
                ))));
            }
        }
        Ok(ledger)
    }
}

/// A request hash in stored formats: 64 hex digits.
mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(deserializer)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out).map_err(de::Error::custom)?;
        Ok(out)
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
