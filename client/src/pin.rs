//! The cluster pin: which manifest the operator trusts, and what it takes to follow the
//! cluster to a later manifest.
//!
//! `custody` refuses every node whose attestation names another manifest than the pinned
//! one (see `channel::client_port::ManifestRule`): a genuine enclave of the same
//! image that a hostile parent started under a manifest of its own is not the operator's
//! cluster, even when that manifest lists the operator's key. The pin moves only to a
//! successor approved by K of the PINNED operators ([`Pin::successor`]), and only once
//! every node of the cluster file runs it ([`decide`]).

use attestation::Provider;
use manifest::{ManifestError, ManifestHash, Operator, SignedManifest};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[manifest]` in `cluster.toml`, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinEntry {
    /// SHA-256 of the manifest body, hex (64 characters).
    pub hash: String,
    pub version: u64,
    /// Approvals of the pinned operators a successor needs.
    pub threshold: usize,
    /// The pinned manifest's operators.
    pub operators: Vec<PinnedOperator>,
    /// The pinned manifest's `roots`: per provider name, the SHA-256 (hex) of the root
    /// its evidence must chain to. Absent when the manifest pins none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roots: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedOperator {
    pub id: String,
    /// Ed25519 public key, hex (64 characters).
    pub public_key: String,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    #[error("[manifest] {field}: {reason}")]
    Malformed { field: &'static str, reason: String },
    #[error(
        "the envelope's version {candidate} is not higher than the pinned version {pinned}, and it is not the pinned manifest"
    )]
    VersionNotNewer { pinned: u64, candidate: u64 },
    #[error("not approved by enough of the pinned manifest's operators: {0}")]
    Approval(#[source] ManifestError),
}

/// A validated pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    hash: [u8; 32],
    version: u64,
    threshold: usize,
    operators: Vec<Operator>,
    roots: Vec<(Provider, [u8; 32])>,
}

/// What an envelope is to the pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Successor {
    /// The pinned manifest itself (for a node that has none yet).
    Same,
    /// A later version approved by K of the pinned operators.
    Newer,
}

impl Pin {
    /// The pin of `manifest` (one its own operators approve: a first manifest).
    pub fn of(manifest: &SignedManifest) -> Self {
        let body = manifest.manifest();
        Pin {
            hash: *manifest.hash().as_bytes(),
            version: body.version(),
            threshold: body.threshold(),
            operators: body.operators().to_vec(),
            roots: sorted_roots(body.roots().to_vec()),
        }
    }

    pub fn parse(entry: &PinEntry) -> Result<Self, PinError> {
        let malformed = |field: &'static str, reason: String| PinError::Malformed { field, reason };
        let hash = hex32(&entry.hash).map_err(|r| malformed("hash", r))?;
        if entry.version == 0 {
            return Err(malformed("version", "must be at least 1".to_owned()));
        }
        let count = entry.operators.len();
        if count == 0 || count > manifest::MAX_OPERATORS {
            return Err(malformed(
                "operators",
                format!(
                    "{count} listed, between 1 and {} are allowed",
                    manifest::MAX_OPERATORS
                ),
            ));
        }
        if entry.threshold == 0 || entry.threshold > count {
            return Err(malformed(
                "threshold",
                format!(
                    "{} must be between 1 and the {count} operators",
                    entry.threshold
                ),
            ));
        }
        let mut operators: Vec<Operator> = Vec::with_capacity(count);
        for op in &entry.operators {
            let key = hex32(&op.public_key)
                .map_err(|r| malformed("operators", format!("{}: public_key {r}", op.id)))?;
            let operator =
                Operator::new(&op.id, key).map_err(|e| malformed("operators", e.to_string()))?;
            // One key under two names would let one signer count twice.
            if operators
                .iter()
                .any(|o| o.id() == op.id || o.public_key() == &key)
            {
                return Err(malformed(
                    "operators",
                    format!("{} repeats an id or a key", op.id),
                ));
            }
            operators.push(operator);
        }
        let mut roots: Vec<(Provider, [u8; 32])> = Vec::with_capacity(entry.roots.len());
        for (name, hash) in &entry.roots {
            let provider = Provider::from_name(name)
                .ok_or_else(|| malformed("roots", format!("unknown provider {name:?}")))?;
            let root = hex32(hash).map_err(|r| malformed("roots", format!("{name}: {r}")))?;
            if roots.iter().any(|(p, _)| *p == provider) {
                return Err(malformed("roots", format!("{provider} is named twice")));
            }
            roots.push((provider, root));
        }
        Ok(Pin {
            hash,
            version: entry.version,
            threshold: entry.threshold,
            operators,
            roots: sorted_roots(roots),
        })
    }

    pub fn entry(&self) -> PinEntry {
        PinEntry {
            hash: hex::encode(self.hash),
            version: self.version,
            threshold: self.threshold,
            operators: self
                .operators
                .iter()
                .map(|o| PinnedOperator {
                    id: o.id().to_owned(),
                    public_key: hex::encode(o.public_key()),
                })
                .collect(),
            roots: self
                .roots
                .iter()
                .map(|(provider, root)| (provider.name().to_owned(), hex::encode(root)))
                .collect(),
        }
    }

    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// The pinned manifest's operators.
    pub fn operators(&self) -> &[Operator] {
        &self.operators
    }

    /// How many of them approve what they approve together.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// The roots the pinned manifest pins, per provider: node evidence of a provider
    /// named here must chain to that root.
    pub fn roots(&self) -> &[(Provider, [u8; 32])] {
        &self.roots
    }

    /// Whether `candidate` is the pinned manifest or a successor the pinned operators
    /// approve: a higher version signed by `threshold` of them (signatures by operators
    /// that only the candidate lists do not count), as a node decides with
    /// `manifest::accept`.
    pub fn successor(&self, candidate: &SignedManifest) -> Result<Successor, PinError> {
        if candidate.hash().as_bytes() == &self.hash {
            return Ok(Successor::Same);
        }
        let version = candidate.manifest().version();
        if version <= self.version {
            return Err(PinError::VersionNotNewer {
                pinned: self.version,
                candidate: version,
            });
        }
        candidate
            .verify_signatures(&self.operators, self.threshold)
            .map_err(PinError::Approval)?;
        Ok(Successor::Newer)
    }
}

/// Roots in provider order: one pin, one value, whatever order the manifest or the file
/// named them in.
fn sorted_roots(mut roots: Vec<(Provider, [u8; 32])>) -> Vec<(Provider, [u8; 32])> {
    roots.sort_unstable_by_key(|(provider, _)| *provider);
    roots
}

fn hex32(text: &str) -> Result<[u8; 32], String> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return Err(format!("must be 64 hex characters, not {}", text.len()));
    }
    hex::decode_to_slice(text, &mut out).map_err(|e| format!("is not hex: {e}"))?;
    Ok(out)
}

/// What one node did with a submitted envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    Accepted,
    /// Refused by the node, but its attestation shows it already runs the envelope's
    /// manifest.
    AlreadyRuns {
        reason: String,
    },
    /// Refused, unreachable, or not asked.
    NotAccepted {
        reason: String,
    },
}

/// Whether `custody manifest submit` succeeded and where the pin goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The pin to save, when it moves.
    pub new_pin: Option<Pin>,
    /// Nodes of the cluster file that do not run the envelope's manifest afterwards (or
    /// were not asked).
    pub behind: Vec<String>,
    /// Exit 0?
    pub success: bool,
}

/// Decides the outcome of submitting `candidate` (already checked with
/// [`Pin::successor`]): `nodes` are every node of the cluster file, `outcomes` what each
/// node asked did. The pin moves to a newer manifest only when every node of the cluster
/// file accepted it or runs it already: a node still on the pinned manifest could not be
/// reached under a moved pin. Submitting the pinned manifest itself succeeds only where
/// every node asked accepted it (a node that runs it already refuses it as not newer).
pub fn decide(
    pin: &Pin,
    candidate: &SignedManifest,
    nodes: &[String],
    outcomes: &[(String, Submitted)],
) -> Decision {
    let outcome = |id: &String| outcomes.iter().find(|(n, _)| n == id).map(|(_, o)| o);
    let behind: Vec<String> = nodes
        .iter()
        .filter(|id| matches!(outcome(id), None | Some(Submitted::NotAccepted { .. })))
        .cloned()
        .collect();
    let newer = candidate.hash().as_bytes() != &pin.hash;
    let new_pin = (newer && behind.is_empty()).then(|| Pin::of(candidate));
    let success = if newer {
        new_pin.is_some()
    } else {
        outcomes
            .iter()
            .all(|(_, o)| matches!(o, Submitted::Accepted))
    };
    Decision {
        new_pin,
        behind,
        success,
    }
}

/// The hash of an envelope's manifest, for messages.
pub fn short(hash: &ManifestHash) -> String {
    channel::client_port::short_hash(hash.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use manifest::{OperatorKey, OperatorSignature};

    fn keys(n: usize) -> Vec<OperatorKey> {
        (0..n).map(|_| OperatorKey::generate().unwrap()).collect()
    }

    fn body(version: u64, threshold: usize, operators: &[&OperatorKey]) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "version": version,
            "threshold": threshold,
            "operators": operators.iter().enumerate().map(|(i, k)| serde_json::json!({
                "id": format!("operator-{i}"), "public_key": k.public_key_hex(),
            })).collect::<Vec<_>>(),
            "nodes": [{"id": "node-1", "provider": "sim", "address": "127.0.0.1:1",
                "measurements": [{"8": "00".repeat(48)}]}],
        }))
        .unwrap()
    }

    /// `body` signed by `signers` (operator id, key).
    fn signed(body: &[u8], signers: &[(&str, &OperatorKey)]) -> SignedManifest {
        let signatures: Vec<OperatorSignature> = signers
            .iter()
            .map(|(id, k)| OperatorSignature {
                operator: (*id).to_owned(),
                signature: manifest::sign(body, k),
            })
            .collect();
        SignedManifest::assemble(body, &signatures).unwrap()
    }

    fn first() -> (Vec<OperatorKey>, SignedManifest) {
        let k = keys(3);
        let b = body(1, 2, &[&k[0], &k[1], &k[2]]);
        let m = signed(&b, &[("operator-0", &k[0]), ("operator-1", &k[1])]);
        (k, m)
    }

    #[test]
    fn a_successor_needs_a_higher_version_and_k_pinned_operators() {
        let (k, v1) = first();
        let pin = Pin::of(&v1);
        assert_eq!(pin.successor(&v1).unwrap(), Successor::Same);
        let all = [&k[0], &k[1], &k[2]];

        // Version 2, approved by 2 of the 3 pinned operators: a successor.
        let b2 = body(2, 2, &all);
        let v2 = signed(&b2, &[("operator-1", &k[1]), ("operator-2", &k[2])]);
        assert_eq!(pin.successor(&v2).unwrap(), Successor::Newer);

        // One pinned approval is not enough, even counted twice.
        let short = signed(&b2, &[("operator-0", &k[0]), ("operator-0", &k[0])]);
        assert!(matches!(
            pin.successor(&short),
            Err(PinError::Approval(ManifestError::NotEnoughSignatures {
                found: 1,
                needed: 2
            }))
        ));

        // A lower or equal version (another body), even well signed.
        let pin2 = Pin::of(&v2);
        for version in [1, 2] {
            let b = body(version, 1, &[&k[0], &k[1]]);
            let m = signed(&b, &[("operator-0", &k[0]), ("operator-1", &k[1])]);
            let err = pin2.successor(&m).unwrap_err();
            assert!(
                matches!(err, PinError::VersionNotNewer { pinned: 2, candidate } if candidate == version),
                "{err}"
            );
        }
        // One past the pinned version is enough.
        let b3 = body(3, 1, &[&k[0], &k[1]]);
        let v3 = signed(&b3, &[("operator-0", &k[0]), ("operator-1", &k[1])]);
        assert_eq!(pin2.successor(&v3).unwrap(), Successor::Newer);

        // A manifest that replaces the operators and approves itself: its signers are
        // not pinned operators, so they do not count.
        let strangers = keys(2);
        let hostile = body(9, 2, &[&strangers[0], &strangers[1], &k[0]]);
        let takeover = signed(
            &hostile,
            &[("operator-0", &strangers[0]), ("operator-1", &strangers[1])],
        );
        assert!(matches!(
            pin.successor(&takeover),
            Err(PinError::Approval(ManifestError::BadSignature { .. }))
        ));
        let renamed = signed(
            &hostile,
            &[("intruder-a", &strangers[0]), ("intruder-b", &strangers[1])],
        );
        assert!(matches!(
            pin.successor(&renamed),
            Err(PinError::Approval(ManifestError::NotEnoughSignatures {
                found: 0,
                needed: 2
            }))
        ));
        // One pinned operator plus one the new manifest adds: still one.
        let mixed = signed(
            &hostile,
            &[("operator-2", &k[2]), ("intruder-a", &strangers[0])],
        );
        // operator-2 is pinned, and its key signed: 1 of 2.
        assert!(matches!(
            pin.successor(&mixed),
            Err(PinError::Approval(ManifestError::NotEnoughSignatures {
                found: 1,
                needed: 2
            }))
        ));
    }

    /// The pin keeps the pinned manifest's roots, in `cluster.toml` as provider name to
    /// hex; a pin without any writes no `roots` (files written before parse unchanged).
    #[test]
    fn the_pin_keeps_the_manifests_roots() {
        let (_, v1) = first();
        let bare = Pin::of(&v1);
        assert!(bare.roots().is_empty());
        let entry = bare.entry();
        assert!(entry.roots.is_empty());
        assert!(!toml::to_string(&entry).unwrap().contains("roots"));

        let k = keys(1);
        let mut with_roots: serde_json::Value =
            serde_json::from_slice(&body(1, 1, &[&k[0]])).unwrap();
        with_roots["roots"] =
            serde_json::json!({"aws-nitro": "11".repeat(32), "gcp-cs": "22".repeat(32)});
        let m = signed(
            &serde_json::to_vec(&with_roots).unwrap(),
            &[("operator-0", &k[0])],
        );
        let pin = Pin::of(&m);
        // In provider order, whatever the manifest's.
        assert_eq!(
            pin.roots(),
            [(Provider::Nitro, [0x11; 32]), (Provider::GcpCs, [0x22; 32])]
        );
        let entry = pin.entry();
        assert_eq!(entry.roots["nitro"], "11".repeat(32));
        let text = toml::to_string(&entry).unwrap();
        let back: PinEntry = toml::from_str(&text).unwrap();
        assert_eq!(Pin::parse(&back).unwrap(), pin);

        // What a hand-written pin may not say.
        for (roots, why) in [
            (vec![("azure", "11".repeat(32))], "unknown provider"),
            (vec![("nitro", "11".repeat(31))], "64 hex characters"),
            (vec![("nitro", "zz".repeat(32))], "not hex"),
            (
                vec![("nitro", "11".repeat(32)), ("aws-nitro", "22".repeat(32))],
                "named twice",
            ),
        ] {
            let mut bad = entry.clone();
            bad.roots = roots
                .into_iter()
                .map(|(name, hash)| (name.to_owned(), hash))
                .collect();
            let err = Pin::parse(&bad).unwrap_err();
            assert!(err.to_string().contains(why), "{err}");
        }
    }

    #[test]
    fn the_pin_moves_only_once_every_node_runs_the_successor() {
        let (k, v1) = first();
        let pin = Pin::of(&v1);
        let b2 = body(2, 2, &[&k[0], &k[1], &k[2]]);
        let v2 = signed(&b2, &[("operator-0", &k[0]), ("operator-1", &k[1])]);
        let nodes: Vec<String> = ["node-1", "node-2", "node-3"].map(String::from).to_vec();
        let refused = || Submitted::NotAccepted {
            reason: "refused".into(),
        };
        let already = || Submitted::AlreadyRuns {
            reason: "not higher".into(),
        };
        let with = |o: [Submitted; 3]| -> Vec<(String, Submitted)> {
            nodes.iter().cloned().zip(o).collect()
        };

        let all = decide(
            &pin,
            &v2,
            &nodes,
            &with([Submitted::Accepted, Submitted::Accepted, already()]),
        );
        assert!(all.success && all.behind.is_empty());
        let moved = all.new_pin.unwrap();
        assert_eq!((moved.version(), moved.hash()), (2, *v2.hash().as_bytes()));
        assert_eq!(moved, Pin::of(&v2));

        // Partial acceptance: the pin stays, and the node behind is named.
        let partial = decide(
            &pin,
            &v2,
            &nodes,
            &with([Submitted::Accepted, refused(), Submitted::Accepted]),
        );
        assert_eq!(partial.new_pin, None);
        assert!(!partial.success);
        assert_eq!(partial.behind, ["node-2"]);
        // Submitted to one node only: the others were not asked.
        let one = decide(
            &pin,
            &v2,
            &nodes,
            &[("node-2".to_owned(), Submitted::Accepted)],
        );
        assert_eq!(one.new_pin, None);
        assert_eq!(one.behind, ["node-1", "node-3"]);

        // The pinned manifest again: never a new pin; a node that has it already refuses.
        let same = decide(
            &pin,
            &v1,
            &nodes,
            &with([Submitted::Accepted, already(), Submitted::Accepted]),
        );
        assert_eq!(same.new_pin, None);
        assert!(!same.success);
        let fresh = decide(
            &pin,
            &v1,
            &nodes[..1],
            &[("node-1".into(), Submitted::Accepted)],
        );
        assert!(fresh.success && fresh.new_pin.is_none());
    }

    #[test]
    fn malformed_pins_are_refused() {
        let (_, v1) = first();
        let good = Pin::of(&v1).entry();
        assert_eq!(Pin::parse(&good).unwrap(), Pin::of(&v1));
        let bad = |edit: &dyn Fn(&mut PinEntry)| {
            let mut e = good.clone();
            edit(&mut e);
            Pin::parse(&e).unwrap_err()
        };
        for hash in [
            "ab".repeat(31),
            "ab".repeat(33),
            format!("{}zz", "ab".repeat(31)),
            String::new(),
        ] {
            let err = bad(&|e| e.hash = hash.clone());
            assert!(
                matches!(err, PinError::Malformed { field: "hash", .. }),
                "{err}"
            );
        }
        assert!(matches!(
            bad(&|e| e.version = 0),
            PinError::Malformed {
                field: "version",
                ..
            }
        ));
        for t in [0, 4] {
            assert!(matches!(
                bad(&|e| e.threshold = t),
                PinError::Malformed {
                    field: "threshold",
                    ..
                }
            ));
        }
        assert!(matches!(
            bad(&|e| e.operators.clear()),
            PinError::Malformed {
                field: "operators",
                ..
            }
        ));
        let dup_key = bad(&|e| {
            let key = e.operators[0].public_key.clone();
            e.operators[1].public_key = key;
        });
        assert!(dup_key.to_string().contains("repeats"), "{dup_key}");
        let dup_id = bad(&|e| e.operators[1].id = "operator-0".into());
        assert!(dup_id.to_string().contains("repeats"), "{dup_id}");
        let short_key = bad(&|e| e.operators[0].public_key.truncate(62));
        assert!(short_key.to_string().contains("public_key"), "{short_key}");
        let bad_id = bad(&|e| e.operators[0].id = "has space".into());
        assert!(matches!(bad_id, PinError::Malformed { .. }), "{bad_id}");

        // At the limit of operators and one past it.
        let many = |n: usize| {
            let mut e = good.clone();
            e.operators = (0..n)
                .map(|i| PinnedOperator {
                    id: format!("op-{i}"),
                    public_key: hex::encode([u8::try_from(i).unwrap(); 32]),
                })
                .collect();
            Pin::parse(&e)
        };
        assert!(many(manifest::MAX_OPERATORS).is_ok());
        assert!(many(manifest::MAX_OPERATORS + 1).is_err());
    }
}
