//! The rules a starting node follows about its data key, and a peer about the escrows it
//! keeps, as pure functions of what the node knows: whether sealed state exists, what
//! each peer answered, which escrow is already held, which manifest the sealed state
//! recorded. [`super::Provisioning`] applies them round by round.

use crate::provisioning::{KEY_LEN, KeyFingerprint, PeerAnswer};
use std::collections::BTreeMap;

/// What a starting node does about its data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Sealed state exists and these peers released keys (one peer per distinct key, in
    /// order): use the first key that opens the sealed index, never one that does not.
    TryKeys { peers: Vec<String> },
    /// No sealed state, but every peer released the same key (the parent lost the
    /// state): start a new store under it and escrow it again with every peer.
    RecoverFresh { from: Vec<String> },
    /// No state here and every peer confirmed it holds no key for this node: first start.
    CreateNew,
    /// Anything else: wait and ask again. The reason is shown on the health endpoint.
    Wait(String),
}

/// Decides from the answers of every peer in the manifest (`answers` must have one entry
/// per peer) and whether sealed state (its index) already exists at the parent.
///
/// No single peer decides which key a node uses: with state, a released key is only a
/// candidate that must open the sealed index; without state, a key is adopted only when
/// every peer released the same one, and a new key is created only when every peer
/// positively holds none.
pub fn decide(has_state: bool, answers: &BTreeMap<String, PeerAnswer>) -> Decision {
    let released: Vec<(&String, KeyFingerprint)> = answers
        .iter()
        .filter_map(|(peer, answer)| match answer {
            PeerAnswer::Released(fingerprint) => Some((peer, *fingerprint)),
            _ => None,
        })
        .collect();
    if has_state {
        let mut seen: Vec<KeyFingerprint> = Vec::new();
        let mut peers = Vec::new();
        for (peer, fingerprint) in &released {
            if !seen.contains(fingerprint) {
                seen.push(*fingerprint);
                peers.push((*peer).clone());
            }
        }
        if peers.is_empty() {
            return Decision::Wait(format!(
                "sealed state exists but no peer released its key ({})",
                summarize(answers)
            ));
        }
        return Decision::TryKeys { peers };
    }
    if answers.values().all(|a| *a == PeerAnswer::NotHeld) {
        return Decision::CreateNew;
    }
    if released.is_empty() {
        return Decision::Wait(format!(
            "first start needs every peer to confirm it holds no key ({})",
            summarize(answers)
        ));
    }
    let names = |list: Vec<&String>| {
        list.iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let keys: Vec<KeyFingerprint> = released.iter().map(|(_, f)| *f).collect();
    let first = keys.first().copied();
    if keys.iter().any(|k| Some(*k) != first) {
        return Decision::Wait(format!(
            "no sealed state here and peers released different keys ({}): \
             not adopting any ({})",
            names(released.iter().map(|(p, _)| *p).collect()),
            summarize(answers)
        ));
    }
    if released.len() == answers.len() {
        return Decision::RecoverFresh {
            from: released.iter().map(|(p, _)| (*p).clone()).collect(),
        };
    }
    Decision::Wait(format!(
        "no sealed state here; {} released a key but recovering it needs the same key \
         from every peer ({})",
        names(released.iter().map(|(p, _)| *p).collect()),
        summarize(answers)
    ))
}

/// Peers whose released key differs from `opened`, the key that opened the sealed
/// state: they released a key that is not this node's.
pub fn mismatched(answers: &BTreeMap<String, PeerAnswer>, opened: &KeyFingerprint) -> Vec<String> {
    answers
        .iter()
        .filter(|(_, answer)| matches!(answer, PeerAnswer::Released(f) if f != opened))
        .map(|(peer, _)| peer.clone())
        .collect()
}

/// What a node does with an `EscrowPut`, given the escrow it already holds for the
/// sender, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscrowVerdict {
    /// Nothing held yet: keep it.
    Store,
    /// The same key again: nothing to do, confirm.
    AlreadyHeld,
    /// Another key is held for this owner: refuse. An escrow is never replaced, or a
    /// node claiming the owner's id could swap the key the owner will get back.
    Conflict,
}

/// Decides an `EscrowPut` of `offered` when `held` is already kept for its owner.
pub fn escrow_verdict(held: Option<&[u8]>, offered: &[u8; KEY_LEN]) -> EscrowVerdict {
    match held {
        None => EscrowVerdict::Store,
        Some(held) => {
            if aws_lc_rs::constant_time::verify_slices_are_equal(held, offered).is_ok() {
                EscrowVerdict::AlreadyHeld
            } else {
                EscrowVerdict::Conflict
            }
        }
    }
}

/// How the manifest a node booted with (the parent's plain copy, trusted only
/// provisionally) stands against the one its sealed state recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootManifest {
    /// The sealed state records none yet (a store created just before a stop): record
    /// the boot manifest.
    Unrecorded,
    /// The recorded manifest itself.
    Same,
    /// An approved successor of the recorded one (an update whose parent copy was
    /// stored but whose sealed copy was not): record it.
    Successor,
    /// Older than the recorded one, or not approved through its chain: the parent's copy
    /// is refused and the recorded manifest is installed instead.
    Refused(String),
}

/// Checks the boot manifest against the recorded one. A node that has run under a
/// manifest never goes back to an older or differently-rooted one, whatever the parent
/// stores.
pub fn check_boot_manifest(
    boot: &manifest::AcceptedManifest,
    recorded: Option<&manifest::AcceptedManifest>,
) -> BootManifest {
    let Some(recorded) = recorded else {
        return BootManifest::Unrecorded;
    };
    if boot.hash() == recorded.hash() {
        return BootManifest::Same;
    }
    match manifest::accept(Some(recorded), boot.signed().clone()) {
        Ok(_) => BootManifest::Successor,
        Err(e) => BootManifest::Refused(format!(
            "the parent's manifest (version {}, {}) is not the sealed one (version {}, {}) \
             nor approved by it: {e}",
            boot.version(),
            boot.hash(),
            recorded.version(),
            recorded.hash()
        )),
    }
}

/// What confirming the manifest a node runs against its sealed state decides, once the
/// store is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// The sealed copy is the current manifest: nothing to write.
    Confirmed,
    /// Seal the current manifest: the same as the reference in a store that has no copy
    /// yet, or an approved successor of the reference.
    Seal,
    /// The current manifest is refused: the node runs under the reference instead (the
    /// sealed copy, or in a new store the manifest its peers were asked under), seals it
    /// if the store has no copy (`seal_reference`), and writes it back to the parent.
    Revert {
        reason: String,
        seal_reference: bool,
    },
}

/// Checks `current` (the parent's plain copy, or one submitted meanwhile) against the
/// copy the sealed state holds or, in a store that has none (a new one), against `basis`,
/// the manifest under which the peers were asked for the key. A forged manifest submitted
/// while a new store was being opened is therefore refused like a rolled-back one.
pub fn confirm(
    current: &manifest::AcceptedManifest,
    sealed: Option<&manifest::AcceptedManifest>,
    basis: &manifest::AcceptedManifest,
) -> Confirmation {
    let reference = sealed.unwrap_or(basis);
    match check_boot_manifest(current, Some(reference)) {
        BootManifest::Same if sealed.is_some() => Confirmation::Confirmed,
        BootManifest::Same | BootManifest::Unrecorded | BootManifest::Successor => {
            Confirmation::Seal
        }
        BootManifest::Refused(reason) => Confirmation::Revert {
            reason,
            seal_reference: sealed.is_none(),
        },
    }
}

fn summarize(answers: &BTreeMap<String, PeerAnswer>) -> String {
    if answers.is_empty() {
        return "no peers".to_owned();
    }
    answers
        .iter()
        .map(|(peer, answer)| match answer {
            PeerAnswer::Released(_) => format!("{peer}: released a key"),
            PeerAnswer::NotHeld => format!("{peer}: holds none"),
            PeerAnswer::Unavailable(r) => format!("{peer}: unavailable: {r}"),
            PeerAnswer::Unreachable(r) => format!("{peer}: unreachable: {r}"),
            PeerAnswer::Refused(r) => format!("{peer}: refused: {r}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(list: &[(&str, PeerAnswer)]) -> BTreeMap<String, PeerAnswer> {
        list.iter()
            .map(|(p, a)| (p.to_string(), a.clone()))
            .collect()
    }

    fn key(byte: u8) -> KeyFingerprint {
        KeyFingerprint::of(&[byte; KEY_LEN])
    }

    #[test]
    fn with_state_every_distinct_released_key_is_a_candidate() {
        use PeerAnswer::*;
        let down = || Unreachable("connection refused".into());
        assert_eq!(
            decide(true, &answers(&[("b", down()), ("c", Released(key(1)))])),
            Decision::TryKeys {
                peers: vec!["c".into()]
            }
        );
        // A liar first in order does not hide the honest key: both are tried.
        assert_eq!(
            decide(
                true,
                &answers(&[("b", Released(key(9))), ("c", Released(key(1)))])
            ),
            Decision::TryKeys {
                peers: vec!["b".into(), "c".into()]
            }
        );
        // The same key from two peers is tried once.
        assert_eq!(
            decide(
                true,
                &answers(&[
                    ("b", Released(key(1))),
                    ("c", Released(key(1))),
                    ("d", Released(key(2)))
                ])
            ),
            Decision::TryKeys {
                peers: vec!["b".into(), "d".into()]
            }
        );
        // Existing state and nobody releases: wait, never create.
        for list in [
            vec![("b", NotHeld), ("c", NotHeld)],
            vec![("b", Unavailable("waiting".into())), ("c", down())],
        ] {
            assert!(matches!(decide(true, &answers(&list)), Decision::Wait(_)));
        }
        assert!(matches!(decide(true, &BTreeMap::new()), Decision::Wait(_)));
    }

    #[test]
    fn a_first_start_needs_not_held_from_every_peer() {
        use PeerAnswer::*;
        let down = || Unreachable("connection refused".into());
        assert_eq!(
            decide(false, &answers(&[("b", NotHeld), ("c", NotHeld)])),
            Decision::CreateNew
        );
        let wait = decide(false, &answers(&[("b", NotHeld), ("c", down())]));
        assert!(matches!(&wait, Decision::Wait(r) if r.contains("c: unreachable")));
        assert!(matches!(
            decide(
                false,
                &answers(&[("b", NotHeld), ("c", Unavailable("x".into()))])
            ),
            Decision::Wait(_)
        ));
        // One peer releasing a key of its choosing while the other holds none: neither
        // create nor adopt, and say who released it.
        let wait = decide(false, &answers(&[("b", Released(key(6))), ("c", NotHeld)]));
        assert!(
            matches!(&wait, Decision::Wait(r) if r.contains("b released") && r.contains("c: holds none")),
            "{wait:?}"
        );
        // A single-node cluster.
        assert_eq!(decide(false, &BTreeMap::new()), Decision::CreateNew);
    }

    #[test]
    fn without_state_a_key_is_recovered_only_from_every_peer_agreeing() {
        use PeerAnswer::*;
        assert_eq!(
            decide(
                false,
                &answers(&[("b", Released(key(1))), ("c", Released(key(1)))])
            ),
            Decision::RecoverFresh {
                from: vec!["b".into(), "c".into()]
            }
        );
        // Disagreement: wait, naming both.
        let wait = decide(
            false,
            &answers(&[("b", Released(key(1))), ("c", Released(key(2)))]),
        );
        assert!(
            matches!(&wait, Decision::Wait(r) if r.contains("different keys") && r.contains("b, c")),
            "{wait:?}"
        );
        // One peer missing: wait, even if the others agree.
        let wait = decide(
            false,
            &answers(&[
                ("b", Released(key(1))),
                ("c", Released(key(1))),
                ("d", Unreachable("down".into())),
            ]),
        );
        assert!(
            matches!(&wait, Decision::Wait(r) if r.contains("every peer") && r.contains("d: unreachable")),
            "{wait:?}"
        );
    }

    #[test]
    fn peers_that_released_another_key_are_named() {
        use PeerAnswer::*;
        let list = answers(&[
            ("b", Released(key(9))),
            ("c", Released(key(1))),
            ("d", NotHeld),
        ]);
        assert_eq!(mismatched(&list, &key(1)), ["b"]);
        assert!(mismatched(&list, &key(9)).contains(&"c".to_owned()));
    }

    #[test]
    fn an_escrow_is_never_replaced() {
        let held = [5u8; KEY_LEN];
        assert_eq!(escrow_verdict(None, &held), EscrowVerdict::Store);
        assert_eq!(
            escrow_verdict(Some(&held), &held),
            EscrowVerdict::AlreadyHeld
        );
        let mut other = held;
        other[KEY_LEN - 1] ^= 1;
        assert_eq!(escrow_verdict(Some(&held), &other), EscrowVerdict::Conflict);
        // A held value of another length (a damaged escrow) is not the same key.
        assert_eq!(
            escrow_verdict(Some(&held[..31]), &held),
            EscrowVerdict::Conflict
        );
    }

    mod boot_manifest {
        use super::super::*;
        use manifest::{OperatorKey, OperatorSignature, SignedManifest};

        struct Operators(Vec<OperatorKey>);

        impl Operators {
            fn new() -> Self {
                Operators((0..3).map(|_| OperatorKey::generate().unwrap()).collect())
            }

            /// A manifest of `version` listing these operators, signed by the first two
            /// of `signers`, accepted on its own (as at a first boot).
            fn manifest(&self, version: u64, signers: &Operators) -> manifest::AcceptedManifest {
                let operators: Vec<_> = self
                    .0
                    .iter()
                    .enumerate()
                    .map(|(i, k)| serde_json::json!({"id": format!("op-{i}"), "public_key": k.public_key_hex()}))
                    .collect();
                let body = serde_json::to_vec(&serde_json::json!({
                    "version": version,
                    "threshold": 2,
                    "operators": operators,
                    "nodes": [{
                        "id": "node-1",
                        "provider": "sim",
                        "address": "127.0.0.1:1",
                        "measurements": [{"0": "00".repeat(48), "1": "11".repeat(48), "2": "22".repeat(48)}],
                    }],
                    "placement": {"allow_provider_quorum": true},
                }))
                .unwrap();
                let signatures: Vec<_> = signers
                    .0
                    .iter()
                    .take(2)
                    .enumerate()
                    .map(|(i, k)| OperatorSignature {
                        operator: format!("op-{i}"),
                        signature: manifest::sign(&body, k),
                    })
                    .collect();
                let signed = SignedManifest::assemble(&body, &signatures).unwrap();
                manifest::accept(None, signed).unwrap()
            }
        }

        #[test]
        fn the_boot_manifest_must_be_the_sealed_one_or_its_successor() {
            let real = Operators::new();
            let v1 = real.manifest(1, &real);
            let v2 = real.manifest(2, &real);
            assert_eq!(check_boot_manifest(&v1, None), BootManifest::Unrecorded);
            assert_eq!(check_boot_manifest(&v2, Some(&v2)), BootManifest::Same);
            assert_eq!(check_boot_manifest(&v2, Some(&v1)), BootManifest::Successor);
            // Rolled back.
            assert!(matches!(
                check_boot_manifest(&v1, Some(&v2)),
                BootManifest::Refused(r) if r.contains("version 1") && r.contains("version 2")
            ));
            // Forged: newer, but approved only by operators of its own.
            let attacker = Operators::new();
            let forged = attacker.manifest(9, &attacker);
            assert!(matches!(
                check_boot_manifest(&forged, Some(&v2)),
                BootManifest::Refused(_)
            ));
        }

        #[test]
        fn the_manifest_is_confirmed_against_the_sealed_copy_or_the_basis() {
            let real = Operators::new();
            let v1 = real.manifest(1, &real);
            let v2 = real.manifest(2, &real);
            let attacker = Operators::new();
            let forged = attacker.manifest(9, &attacker);
            // Sealed copy present: the same one needs nothing, a successor is sealed, an
            // older one or a forgery is reverted without sealing anything new.
            assert_eq!(confirm(&v2, Some(&v2), &v1), Confirmation::Confirmed);
            assert_eq!(confirm(&v2, Some(&v1), &v1), Confirmation::Seal);
            assert!(matches!(
                confirm(&v1, Some(&v2), &v1),
                Confirmation::Revert {
                    seal_reference: false,
                    ..
                }
            ));
            assert!(matches!(
                confirm(&forged, Some(&v2), &forged),
                Confirmation::Revert {
                    seal_reference: false,
                    ..
                }
            ));
            // A new store: checked against the manifest the peers were asked under, which
            // is sealed when the current one is refused.
            assert_eq!(confirm(&v1, None, &v1), Confirmation::Seal);
            assert_eq!(confirm(&v2, None, &v1), Confirmation::Seal);
            assert!(matches!(
                confirm(&forged, None, &v1),
                Confirmation::Revert { seal_reference: true, reason } if reason.contains("version 9")
            ));
            assert!(matches!(
                confirm(&v1, None, &v2),
                Confirmation::Revert {
                    seal_reference: true,
                    ..
                }
            ));
        }
    }
}
