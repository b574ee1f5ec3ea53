//! The placement rule: no TEE provider, and no operator domain, may hold a signing quorum
//! of a key unless the manifest says so.
//!
//! Custodians spread nodes over providers so that a flaw in one vendor's hardware, or
//! one provider's insider, yields fewer than `t` shares of a `t`-of-`n` key. A key's party
//! set is therefore refused when the nodes of one provider ([`crate::Node::tee_provider`])
//! would hold `t` or more of its shares, unless the manifest sets
//! `"placement": {"allow_provider_quorum": true}`; and, when the manifest names operator
//! domains (a node's `"domain"`), likewise for the nodes of one domain, a node without a
//! domain being a domain of its own, unless it sets `"allow_domain_quorum": true`.
//!
//! [`check_placement`] is the one decision: every party of a key generation calls it on
//! its own manifest, the node an operator asked calls it before it starts anything, and
//! `custody key create` before it sends the request.

use crate::body::Manifest;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What the manifest allows of placement: `"placement": {"allow_provider_quorum": bool,
/// "allow_domain_quorum": bool}`, both false when absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    #[serde(default)]
    allow_provider_quorum: bool,
    #[serde(default)]
    allow_domain_quorum: bool,
}

impl Placement {
    /// One provider's nodes may hold `t` or more shares of a key (a cluster on one
    /// provider must say so to create any key).
    pub fn allow_provider_quorum(&self) -> bool {
        self.allow_provider_quorum
    }

    /// One operator domain's nodes may hold `t` or more shares of a key.
    pub fn allow_domain_quorum(&self) -> bool {
        self.allow_domain_quorum
    }
}

/// An operator domain as a refusal names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Domain {
    /// The domain the manifest gives some nodes.
    Named(String),
    /// A node the manifest gives no domain: a domain of its own.
    Own { node: String },
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Domain::Named(name) => write!(f, "operator domain {name}"),
            Domain::Own { node } => write!(f, "node {node} (an operator domain of its own)"),
        }
    }
}

/// Why a key's party set is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementError {
    #[error("party {party} is not a node of the manifest")]
    UnknownParty { party: String },
    #[error("party {party} is named twice")]
    DuplicateParty { party: String },
    #[error(
        "a threshold of {threshold} for {parties} parties: it must be between 1 and the number of parties"
    )]
    Threshold { threshold: u16, parties: usize },
    #[error(
        "provider {provider} would hold {holds} of the key's {shares} shares, and {threshold} \
         of them can sign: no provider may hold a signing quorum unless the manifest sets \
         placement.allow_provider_quorum"
    )]
    ProviderQuorum {
        provider: attestation::Provider,
        holds: usize,
        shares: usize,
        threshold: u16,
    },
    #[error(
        "{domain} would hold {holds} of the key's {shares} shares, and {threshold} of them \
         can sign: no operator domain may hold a signing quorum unless the manifest sets \
         placement.allow_domain_quorum"
    )]
    DomainQuorum {
        domain: Domain,
        holds: usize,
        shares: usize,
        threshold: u16,
    },
}

/// Whether a `threshold`-of-`parties.len()` key shared by `parties` (node ids of
/// `manifest`, each once) may be created under `manifest`: no provider, and, when the
/// manifest names domains, no operator domain, holds `threshold` or more of its shares,
/// unless the manifest allows it. A refusal names the provider or domain, its count and
/// the threshold. Pure: both ends of a key creation call it.
pub fn check_placement<S: AsRef<str>>(
    manifest: &Manifest,
    parties: &[S],
    threshold: u16,
) -> Result<(), PlacementError> {
    let mut seen = BTreeSet::new();
    let mut nodes = Vec::with_capacity(parties.len().min(crate::MAX_NODES));
    for party in parties {
        let party = party.as_ref();
        let node = manifest
            .node(party)
            .ok_or_else(|| PlacementError::UnknownParty {
                party: printable(party),
            })?;
        if !seen.insert(party) {
            return Err(PlacementError::DuplicateParty {
                party: party.to_owned(),
            });
        }
        nodes.push(node);
    }
    let shares = nodes.len();
    if threshold == 0 || usize::from(threshold) > shares {
        return Err(PlacementError::Threshold {
            threshold,
            parties: shares,
        });
    }
    let placement = manifest.placement();
    if !placement.allow_provider_quorum
        && let Some((provider, holds)) = quorum(nodes.iter().map(|n| n.tee_provider()), threshold)
    {
        return Err(PlacementError::ProviderQuorum {
            provider,
            holds,
            shares,
            threshold,
        });
    }
    let names_domains = manifest.nodes().iter().any(|n| n.domain().is_some());
    if names_domains && !placement.allow_domain_quorum {
        let domains = nodes.iter().map(|n| match n.domain() {
            Some(name) => DomainKey::Named(name),
            None => DomainKey::Own(n.id()),
        });
        if let Some((domain, holds)) = quorum(domains, threshold) {
            return Err(PlacementError::DomainQuorum {
                domain: domain.into(),
                holds,
                shares,
                threshold,
            });
        }
    }
    Ok(())
}

/// A domain while counting: named ones and a domainless node's own never coincide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum DomainKey<'a> {
    Named(&'a str),
    Own(&'a str),
}

impl From<DomainKey<'_>> for Domain {
    fn from(key: DomainKey<'_>) -> Self {
        match key {
            DomainKey::Named(name) => Domain::Named(name.to_owned()),
            DomainKey::Own(node) => Domain::Own {
                node: node.to_owned(),
            },
        }
    }
}

/// The holder with the most shares (the first in order among equals) and its count, when
/// that count reaches `threshold`: one share per item, each item naming its holder.
fn quorum<K: Ord>(holders: impl IntoIterator<Item = K>, threshold: u16) -> Option<(K, usize)> {
    let mut counts: BTreeMap<K, usize> = BTreeMap::new();
    for holder in holders {
        *counts.entry(holder).or_default() += 1;
    }
    let mut largest: Option<(K, usize)> = None;
    for (holder, count) in counts {
        if largest.as_ref().is_none_or(|(_, most)| count > *most) {
            largest = Some((holder, count));
        }
    }
    largest.filter(|(_, count)| *count >= usize::from(threshold))
}

/// A party name from a request, as an error may print it: at most 64 characters, control
/// characters escaped.
fn printable(text: &str) -> String {
    text.chars()
        .take(ids::MAX_ID_LEN)
        .flat_map(char::escape_debug)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// Every assignment of `n` shares to `labels` holders, as holder indices.
    fn assignments(n: usize, labels: usize) -> Vec<Vec<usize>> {
        let mut all = vec![Vec::new()];
        for _ in 0..n {
            all = all
                .into_iter()
                .flat_map(|a| {
                    (0..labels).map(move |l| {
                        let mut next = a.clone();
                        next.push(l);
                        next
                    })
                })
                .collect();
        }
        all
    }

    fn counts(assignment: &[usize], labels: usize) -> Vec<usize> {
        (0..labels)
            .map(|l| assignment.iter().filter(|a| **a == l).count())
            .collect()
    }

    /// Over every shape up to 7 shares on up to 3 holders and every threshold: refused
    /// exactly when some holder has `t` or more shares, naming the largest holder and its
    /// count.
    #[test]
    fn refused_exactly_when_one_holder_reaches_the_threshold() {
        for labels in 1..=3 {
            for n in 1..=7 {
                for assignment in assignments(n, labels) {
                    let counts = counts(&assignment, labels);
                    let max = *counts.iter().max().unwrap();
                    for t in 1..=n as u16 {
                        let found = quorum(assignment.iter().copied(), t);
                        if max >= usize::from(t) {
                            let (holder, holds) = found.unwrap();
                            assert_eq!(holds, max, "{assignment:?} t={t}");
                            assert_eq!(counts[holder], max);
                            // The first among equals.
                            assert!(counts[..holder].iter().all(|c| *c < max));
                        } else {
                            assert_eq!(found, None, "{assignment:?} t={t}");
                        }
                    }
                }
            }
        }
    }

    /// With two holders, an accepted key needs `t` above what either holds, so losing a
    /// whole holder always leaves fewer than `t` shares: the price of the rule.
    #[test]
    fn across_two_holders_an_accepted_key_never_survives_losing_one() {
        for n in 1..=8 {
            for a in 0..=n {
                let b = n - a;
                for t in 1..=n as u16 {
                    let shape = std::iter::repeat_n(0, a).chain(std::iter::repeat_n(1, b));
                    if quorum(shape, t).is_none() {
                        assert!(a.max(b) < usize::from(t));
                        assert!(a < usize::from(t) && b < usize::from(t), "{a}+{b} t={t}");
                    }
                }
            }
        }
        // The shapes the README names: 2-of-2 (1+1), 3-of-4 (2+2), 4-of-6 (3+3) pass;
        // 2-of-4 (2+2) and 3-of-6 (3+3) do not.
        let two = |a: usize, b: usize| std::iter::repeat_n(0, a).chain(std::iter::repeat_n(1, b));
        assert_eq!(quorum(two(1, 1), 2), None);
        assert_eq!(quorum(two(2, 2), 3), None);
        assert_eq!(quorum(two(3, 3), 4), None);
        assert_eq!(quorum(two(2, 2), 2), Some((0, 2)));
        assert_eq!(quorum(two(3, 3), 3), Some((0, 3)));
        // Uneven: 3+1 refuses 3-of-4, names the larger holder.
        assert_eq!(quorum(two(1, 3), 3), Some((1, 3)));
    }

    #[test]
    fn a_refusal_names_the_domain() {
        let named = Domain::Named("ops-a".to_owned());
        assert_eq!(named.to_string(), "operator domain ops-a");
        let own = Domain::from(DomainKey::Own("node-3"));
        assert_eq!(
            own.to_string(),
            "node node-3 (an operator domain of its own)"
        );
        // A domain named like a node is still another domain than that node's own.
        assert_ne!(DomainKey::Named("node-3"), DomainKey::Own("node-3"));
    }

    #[test]
    fn a_hostile_party_name_is_cut_and_escaped() {
        let long = "x".repeat(10_000) + "\n";
        let shown = printable(&long);
        assert_eq!(shown.len(), ids::MAX_ID_LEN);
        assert_eq!(printable("a\nb"), "a\\nb");
    }
}
