//! The presignature pools this node fills: for each key, the signing sets this node leads
//! (it is their first member in id order), one presignature session at a time and only
//! while no other session runs here. A presignature is used once, by a signing from a
//! pooled presignature, and destroyed.

use super::lock;
use crate::core::coordination::failures;
use crate::runtime::{Blobs, Node};
use crate::threshold::request::{Operation, Outcome};
use mpc::ecdsa::{KeyShare, PoolKey};
use mpc::{DerivationPath, NodeId, SigningSet};
use std::sync::Arc;

impl<B: Blobs> Node<B> {
    /// Fills the presignature pools this node coordinates: for each key, the signing sets
    /// whose first member is this node and whose other members answered the last check.
    /// One session at a time, and only while no other session runs here.
    pub(in crate::runtime) async fn refill_presignatures(self: &Arc<Self>) {
        if self.keys.presign_depth() == 0 || self.state().phase.is_failed() {
            return;
        }
        let me = self.me.clone();
        let peers = self.state().peers.clone();
        for share in self.keys.shares() {
            let Some(sets) = pooled_signing_sets(&share, &me) else {
                tracing::debug!(key = %share.key_id(), "too many signing sets to keep pools for");
                continue;
            };
            for set in sets {
                let reachable = set
                    .signers()
                    .iter()
                    .filter(|s| **s != me)
                    .all(|s| peers.get(s.as_str()).is_some_and(|p| p.attested));
                let pool_key = PoolKey {
                    key_id: share.key_id().clone(),
                    signers: set.clone(),
                    path: DerivationPath::master(),
                };
                while reachable
                    && self.keys.router().running() == 0
                    && lock(&self.keys.presignatures).missing(&pool_key) > 0
                {
                    let result = self
                        .coordinate(Operation::Presign {
                            key_id: share.key_id().to_string(),
                            signers: set.signers().iter().map(|n| n.to_string()).collect(),
                        })
                        .await;
                    match result {
                        Ok((_, outcomes))
                            if outcomes.values().all(|o| *o == Outcome::Presigned) => {}
                        Ok((_, outcomes)) => {
                            let failed = failures("presignature generation", &outcomes);
                            tracing::warn!(error = %failed, "presignature pool not refilled");
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "presignature pool not refilled");
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// Most signing sets whose pools one node fills per key; a key with more (a large group
/// with a middling threshold has thousands) gets no pools from this node.
pub const MAX_POOLED_SETS: usize = 32;

/// The signing sets of `share`'s key whose first member (in id order) is `me`: `me` and
/// `t - 1` of the parties after it. `None` when there are more than [`MAX_POOLED_SETS`].
fn pooled_signing_sets(share: &KeyShare, me: &NodeId) -> Option<Vec<SigningSet>> {
    let nodes = share.group().nodes();
    let position = nodes.iter().position(|n| n == me)?;
    let after = nodes.get(position + 1..).unwrap_or_default();
    let k = usize::from(share.threshold().get()).checked_sub(1)?;
    if k > after.len() {
        return Some(Vec::new());
    }
    // C(after, k), stopping as soon as it passes the limit.
    let mut count: usize = 1;
    for i in 0..k {
        count = count.saturating_mul(after.len() - i) / (i + 1);
        if count > MAX_POOLED_SETS {
            return None;
        }
    }
    let mut sets = Vec::with_capacity(count);
    let mut chosen: Vec<usize> = (0..k).collect();
    loop {
        let members =
            std::iter::once(me.clone()).chain(chosen.iter().filter_map(|i| after.get(*i).cloned()));
        if let Ok(set) = share.signing_set(members) {
            sets.push(set);
        }
        // Next combination in lexicographic order.
        let Some(pos) = (0..k)
            .rev()
            .find(|&p| chosen.get(p).copied().unwrap_or(usize::MAX) < after.len() - k + p)
        else {
            return Some(sets);
        };
        if let Some(c) = chosen.get_mut(pos) {
            *c += 1;
        }
        let base = chosen.get(pos).copied().unwrap_or_default();
        for (j, c) in chosen.iter_mut().enumerate().skip(pos + 1) {
            *c = base + (j - pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpc::ecdsa::Ecdsa;
    use mpc::{KeyId, PartySet, Scheme};
    use std::collections::BTreeSet;

    #[cfg(feature = "sim")]
    #[test]
    fn each_node_pools_the_signing_sets_it_leads() {
        let group = PartySet::new(
            ["node-1", "node-2", "node-3", "node-4", "node-5"].map(|n| NodeId::new(n).unwrap()),
        )
        .unwrap();
        let json = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../mpc/fixtures/aux-info-5.json"
        ))
        .unwrap();
        let aux = mpc::sim::load_aux_info(&json, &group).unwrap();
        let threshold = mpc::Threshold::new(3, &group).unwrap();
        let sessions = group
            .nodes()
            .iter()
            .zip(&aux)
            .map(|(node, aux)| {
                let key = KeyId::new("k").unwrap();
                let s = Ecdsa::keygen(b"k", key, &group, node, threshold, aux).unwrap();
                (node.clone(), s)
            })
            .collect();
        let shares: Vec<KeyShare> = mpc::sim::run(sessions)
            .into_iter()
            .map(|(_, s)| s.unwrap())
            .collect();
        let mut all = BTreeSet::new();
        for (share, me) in shares.iter().zip(group.nodes()) {
            let sets = pooled_signing_sets(share, me).unwrap();
            for set in &sets {
                assert_eq!(set.signers().first(), Some(me));
                assert_eq!(set.len(), 3);
                assert!(all.insert(set.clone()), "each set is pooled by one node");
            }
        }
        // Every 3-of-5 signing set has exactly one leader: C(5, 3) = 10.
        assert_eq!(all.len(), 10);
    }
}
