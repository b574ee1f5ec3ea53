//! Who takes part: node ids, the party set of a key, its threshold and a signing set.
//!
//! The library identifies parties by index. Indices come from sorting node ids byte-wise, so
//! every participant derives the same mapping from the same set without exchanging anything.

use crate::syntax::IdError;

/// Longest node id, the manifest's limit.
pub const MAX_NODE_ID_LEN: usize = crate::syntax::MAX_ID_LEN;
/// Most parties in one key, the manifest's limit on nodes.
pub const MAX_PARTIES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartyError {
    #[error(transparent)]
    NodeId(#[from] IdError),
    #[error("{count} parties, between 2 and {max} are allowed", max = MAX_PARTIES)]
    PartyCount { count: usize },
    #[error("node {0} is listed twice")]
    Duplicate(NodeId),
    #[error("threshold {t} for {n} parties, it must be between 2 and {n}")]
    Threshold { t: u16, n: u16 },
    #[error("node {0} is not a party of the key")]
    NotInGroup(NodeId),
    #[error("{got} signers for threshold {threshold}, exactly the threshold must sign")]
    SignerCount { threshold: u16, got: usize },
}

crate::syntax::identifier!(
    /// A node id as the manifest spells it: 1 to 64 characters out of `A-Z a-z 0-9 . _ -`.
    NodeId,
    Node
);

/// The parties sharing a key, sorted; a party's position is its index at key generation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartySet {
    nodes: Vec<NodeId>,
}

impl PartySet {
    pub fn new(nodes: impl IntoIterator<Item = NodeId>) -> Result<Self, PartyError> {
        let mut nodes: Vec<NodeId> = nodes.into_iter().take(MAX_PARTIES + 1).collect();
        if nodes.len() < 2 || nodes.len() > MAX_PARTIES {
            return Err(PartyError::PartyCount { count: nodes.len() });
        }
        nodes.sort();
        if let Some(duplicate) = first_duplicate(&nodes) {
            return Err(PartyError::Duplicate(duplicate.clone()));
        }
        Ok(Self { nodes })
    }

    /// Number of parties (at most [`MAX_PARTIES`]).
    pub fn len(&self) -> u16 {
        index(self.nodes.len())
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn index_of(&self, node: &NodeId) -> Option<u16> {
        self.nodes.binary_search(node).ok().map(index)
    }

    pub fn node(&self, index: u16) -> Option<&NodeId> {
        self.nodes.get(usize::from(index))
    }

    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }
}

/// How many parties must cooperate to sign: between 2 and the number of parties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Threshold(u16);

impl Threshold {
    pub fn new(t: u16, group: &PartySet) -> Result<Self, PartyError> {
        let n = group.len();
        if t < 2 || t > n {
            return Err(PartyError::Threshold { t, n });
        }
        Ok(Self(t))
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

/// Exactly `t` parties of a key that sign together, sorted; a signer's position is its index in
/// the signing protocols.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SigningSet {
    signers: Vec<NodeId>,
    keygen_indices: Vec<u16>,
}

impl SigningSet {
    pub fn new(
        group: &PartySet,
        threshold: Threshold,
        signers: impl IntoIterator<Item = NodeId>,
    ) -> Result<Self, PartyError> {
        let t = threshold.get();
        let mut signers: Vec<NodeId> = signers.into_iter().take(MAX_PARTIES + 1).collect();
        if signers.len() != usize::from(t) {
            return Err(PartyError::SignerCount {
                threshold: t,
                got: signers.len(),
            });
        }
        signers.sort();
        if let Some(duplicate) = first_duplicate(&signers) {
            return Err(PartyError::Duplicate(duplicate.clone()));
        }
        let keygen_indices = signers
            .iter()
            .map(|s| {
                group
                    .index_of(s)
                    .ok_or_else(|| PartyError::NotInGroup(s.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            signers,
            keygen_indices,
        })
    }

    pub fn len(&self) -> u16 {
        index(self.signers.len())
    }

    pub fn is_empty(&self) -> bool {
        self.signers.is_empty()
    }

    pub fn signers(&self) -> &[NodeId] {
        &self.signers
    }

    /// `keygen_indices()[i]` is the key-generation index of the `i`-th signer.
    pub fn keygen_indices(&self) -> &[u16] {
        &self.keygen_indices
    }

    pub fn index_of(&self, node: &NodeId) -> Option<u16> {
        self.signers.binary_search(node).ok().map(index)
    }
}

fn first_duplicate(sorted: &[NodeId]) -> Option<&NodeId> {
    sorted.windows(2).find_map(|pair| match pair {
        [a, b] if a == b => Some(a),
        _ => None,
    })
}

/// Positions are below [`MAX_PARTIES`], so they always fit.
fn index(position: usize) -> u16 {
    u16::try_from(position).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<NodeId> {
        names.iter().map(|n| NodeId::new(*n).unwrap()).collect()
    }

    #[test]
    fn node_ids_follow_the_manifest_rule() {
        assert!(NodeId::new("node-1.eu_west").is_ok());
        assert!(NodeId::new("").is_err());
        assert!(NodeId::new("a b").is_err());
        assert!(NodeId::new("x".repeat(MAX_NODE_ID_LEN)).is_ok());
        assert!(NodeId::new("x".repeat(MAX_NODE_ID_LEN + 1)).is_err());
    }

    #[test]
    fn indices_come_from_sorted_ids() {
        let group = PartySet::new(ids(&["carol", "alice", "bob"])).unwrap();
        assert_eq!(group.nodes(), ids(&["alice", "bob", "carol"]).as_slice());
        assert_eq!(group.index_of(&NodeId::new("carol").unwrap()), Some(2));
        let t = Threshold::new(2, &group).unwrap();
        let set = SigningSet::new(&group, t, ids(&["carol", "alice"])).unwrap();
        assert_eq!(set.keygen_indices(), &[0, 2]);
        assert_eq!(set.index_of(&NodeId::new("carol").unwrap()), Some(1));
    }

    #[test]
    fn bad_sets_are_refused() {
        assert!(matches!(
            PartySet::new(ids(&["a"])),
            Err(PartyError::PartyCount { count: 1 })
        ));
        assert!(matches!(
            PartySet::new(ids(&["a", "b", "a"])),
            Err(PartyError::Duplicate(_))
        ));
        let many = (0..=MAX_PARTIES).map(|i| NodeId::new(format!("n{i}")).unwrap());
        assert!(PartySet::new(many).is_err());
        let group = PartySet::new(ids(&["a", "b", "c"])).unwrap();
        assert!(Threshold::new(1, &group).is_err());
        assert!(Threshold::new(4, &group).is_err());
        let t = Threshold::new(2, &group).unwrap();
        assert!(SigningSet::new(&group, t, ids(&["a"])).is_err());
        assert!(SigningSet::new(&group, t, ids(&["a", "a"])).is_err());
        assert!(matches!(
            SigningSet::new(&group, t, ids(&["a", "z"])),
            Err(PartyError::NotInGroup(_))
        ));
    }
}
