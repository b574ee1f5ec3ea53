//! Whether a participant admits a session, decided without I/O.
//!
//! A session request comes from a coordinator the participant checked (the request names
//! it, and it arrived on that node's attested channel). Each admitted session holds a slot
//! until it ends here, so that nothing a coordinator sends grows without bound:
//!
//! - at most [`MAX_SESSIONS`] sessions run here at once, from every coordinator together;
//! - of those, at most [`MAX_SESSIONS_PER_COORDINATOR`] from one coordinator, so that one
//!   peer cannot take every slot;
//! - an auxiliary-info session also passes the safe-prime budget of
//!   [`super::aux_admission`];
//! - a key generation needs room for one more key: at most [`MAX_KEYS`] per node, and a key
//!   id is never reused ([`check_new_key`]).
//!
//! The node an operator asks to create a key admits the request itself first
//! ([`admit_key_creation`]): its party set must obey the manifest's placement rule before
//! the node waits for approvals or starts any session. Every party checks the rule again
//! on its own manifest before it contributes ([`super::authorization::check_create`]).
//!
//! The record of which coordinator started each running session also decides who may
//! abort it ([`Admissions::abort`]): its coordinator only.

use super::aux_admission::{AuxAdmissions, AuxRefusal};
use crate::threshold::request::FailureKind;
use manifest::{Manifest, PlacementError};
use mpc::{KeyId, NodeId, PartySet, SessionId};
use std::collections::BTreeMap;
use std::time::Instant;

/// Sessions one node runs at once; more are refused as busy.
pub const MAX_SESSIONS: usize = 16;
/// Of those, sessions one coordinator may have running here: one peer cannot take every
/// slot.
pub const MAX_SESSIONS_PER_COORDINATOR: usize = 8;
/// Keys one node holds.
pub const MAX_KEYS: usize = 4096;

/// Why a session was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error("{coordinator} already runs {MAX_SESSIONS_PER_COORDINATOR} sessions here")]
    CoordinatorBusy { coordinator: NodeId },
    #[error("too many sessions at once")]
    Busy,
    #[error("session {0} is already running here")]
    Running(SessionId),
    #[error(transparent)]
    AuxInfo(#[from] AuxRefusal),
    #[error("key {0} already exists")]
    KeyExists(KeyId),
    #[error("this node holds {MAX_KEYS} keys already")]
    TooManyKeys,
    #[error("the key's placement is refused: {0}")]
    Placement(#[from] PlacementError),
}

impl Refusal {
    /// How the participant reports it to the coordinator.
    pub fn kind(&self) -> FailureKind {
        match self {
            Refusal::CoordinatorBusy { .. } | Refusal::Busy => FailureKind::Busy,
            Refusal::AuxInfo(AuxRefusal::AlreadyHeld) => FailureKind::AuxInfoHeld,
            Refusal::AuxInfo(_) => FailureKind::Busy,
            Refusal::Running(_)
            | Refusal::KeyExists(_)
            | Refusal::TooManyKeys
            | Refusal::Placement(_) => FailureKind::Refused,
        }
    }
}

/// What an auxiliary-info request asks of this node's safe primes.
#[derive(Debug, Clone, Copy)]
pub struct AuxRequest<'a> {
    pub group: &'a PartySet,
    /// This node holds auxiliary info for `group` already.
    pub held: bool,
    /// The request asks to replace it.
    pub renew: bool,
}

/// What a key-generation request asks of this node's key store: room for one more key,
/// under an id it does not hold.
#[derive(Debug, Clone, Copy)]
pub struct KeyRequest<'a> {
    pub key_id: &'a KeyId,
    /// This node holds a key with this id already.
    pub exists: bool,
    /// How many keys this node holds.
    pub held: usize,
}

/// What an abort from a peer does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Abort {
    /// It came from the session's coordinator: end the session here.
    End,
    /// It came from another node: refused, the session carries on.
    NotCoordinator { coordinator: NodeId },
    /// No such session runs here (it was refused, or has already ended).
    NoSession,
}

#[derive(Debug)]
struct Admitted {
    coordinator: NodeId,
    /// The party set of an auxiliary-info session, whose budget it holds.
    aux: Option<PartySet>,
    /// The key a key-generation session creates, which it holds room for.
    key: Option<KeyId>,
}

/// The sessions running here, and the auxiliary-info budget.
#[derive(Debug, Default)]
pub struct Admissions {
    running: BTreeMap<SessionId, Admitted>,
    aux: AuxAdmissions,
}

impl Admissions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sessions running here.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Admits `session` from `coordinator` at `now`, or says why not. An admitted session
    /// holds its slot (its aux-info budget, the room for the key it creates) until
    /// [`Self::finish`]. A key generation is refused when the keys held and those being
    /// generated here would pass [`MAX_KEYS`], or when its id is held or being generated.
    pub fn admit(
        &mut self,
        session: SessionId,
        coordinator: &NodeId,
        aux: Option<AuxRequest<'_>>,
        key: Option<KeyRequest<'_>>,
        now: Instant,
    ) -> Result<(), Refusal> {
        if self.running.contains_key(&session) {
            return Err(Refusal::Running(session));
        }
        let from_coordinator = self
            .running
            .values()
            .filter(|a| a.coordinator == *coordinator)
            .count();
        if from_coordinator >= MAX_SESSIONS_PER_COORDINATOR {
            return Err(Refusal::CoordinatorBusy {
                coordinator: coordinator.clone(),
            });
        }
        if self.running.len() >= MAX_SESSIONS {
            return Err(Refusal::Busy);
        }
        if let Some(key) = key {
            let generating: Vec<&KeyId> = self
                .running
                .values()
                .filter_map(|a| a.key.as_ref())
                .collect();
            let exists = key.exists || generating.contains(&key.key_id);
            check_new_key(
                key.key_id,
                exists,
                key.held.saturating_add(generating.len()),
            )?;
        }
        if let Some(aux) = aux {
            self.aux
                .admit(coordinator, aux.group, aux.held, aux.renew, now)?;
        }
        self.running.insert(
            session,
            Admitted {
                coordinator: coordinator.clone(),
                aux: aux.map(|a| a.group.clone()),
                key: key.map(|k| k.key_id.clone()),
            },
        );
        Ok(())
    }

    /// `session` no longer runs here: its slot, and its aux-info budget's running count,
    /// are free again. Nothing happens for a session that was not admitted.
    pub fn finish(&mut self, session: &SessionId) {
        if let Some(admitted) = self.running.remove(session)
            && let Some(group) = &admitted.aux
        {
            self.aux.finish(&admitted.coordinator, group);
        }
    }

    /// What an abort of `session` from `from` does: only the node that coordinates a
    /// session may end it early.
    pub fn abort(&self, from: &NodeId, session: &SessionId) -> Abort {
        match self.running.get(session) {
            Some(a) if a.coordinator == *from => Abort::End,
            Some(a) => Abort::NotCoordinator {
                coordinator: a.coordinator.clone(),
            },
            None => Abort::NoSession,
        }
    }
}

/// Whether a key generation for `key_id` may run at a node that holds `held` keys, and
/// `exists` says whether `key_id` is one of them: key ids are never reused, and a node
/// holds at most [`MAX_KEYS`].
pub fn check_new_key(key_id: &KeyId, exists: bool, held: usize) -> Result<(), Refusal> {
    if exists {
        return Err(Refusal::KeyExists(key_id.clone()));
    }
    if held >= MAX_KEYS {
        return Err(Refusal::TooManyKeys);
    }
    Ok(())
}

/// Whether the node an operator asked takes up the creation of a `threshold`-of-n key
/// shared by `parties` (every node of `manifest` when empty): the manifest's placement
/// rule, decided before any approval is waited for or any session started, so that a key
/// no party would create costs neither. A coordinator that skips this convinces no one:
/// each party decides the same rule itself.
pub fn admit_key_creation(
    manifest: &Manifest,
    parties: &[String],
    threshold: u16,
) -> Result<(), Refusal> {
    if parties.is_empty() {
        let every: Vec<&str> = manifest.nodes().iter().map(|n| n.id()).collect();
        manifest::check_placement(manifest, &every, threshold)?;
    } else {
        manifest::check_placement(manifest, parties, threshold)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> NodeId {
        NodeId::new(id).unwrap()
    }

    fn session(i: usize) -> SessionId {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&(i as u64).to_be_bytes());
        SessionId::from_bytes(id)
    }

    fn group() -> PartySet {
        PartySet::new(["node-1", "node-2", "node-3"].map(node)).unwrap()
    }

    #[test]
    fn one_coordinator_gets_at_most_its_share_of_the_slots() {
        let mut admissions = Admissions::new();
        let now = Instant::now();
        let (a, b) = (node("node-1"), node("node-2"));
        // Exactly the cap is admitted...
        for i in 0..MAX_SESSIONS_PER_COORDINATOR {
            admissions.admit(session(i), &a, None, None, now).unwrap();
        }
        // ...and one more is refused as busy, naming the coordinator.
        let refused = admissions
            .admit(session(MAX_SESSIONS_PER_COORDINATOR), &a, None, None, now)
            .unwrap_err();
        assert_eq!(
            refused,
            Refusal::CoordinatorBusy {
                coordinator: a.clone()
            }
        );
        assert_eq!(refused.kind(), FailureKind::Busy);
        assert!(refused.to_string().contains("node-1 already runs 8"));
        // Another coordinator still gets in; once one of a's sessions ends, a does too.
        admissions.admit(session(100), &b, None, None, now).unwrap();
        admissions.finish(&session(0));
        admissions
            .admit(session(MAX_SESSIONS_PER_COORDINATOR), &a, None, None, now)
            .unwrap();
    }

    #[test]
    fn every_coordinator_together_gets_at_most_the_global_slots() {
        let mut admissions = Admissions::new();
        let now = Instant::now();
        let coordinators: Vec<NodeId> = (0..4).map(|i| node(&format!("node-{i}"))).collect();
        // Exactly MAX_SESSIONS, spread so that no coordinator reaches its own cap.
        for i in 0..MAX_SESSIONS {
            let c = &coordinators[i % coordinators.len()];
            admissions.admit(session(i), c, None, None, now).unwrap();
        }
        assert_eq!(admissions.running(), MAX_SESSIONS);
        // The next one, from a coordinator below its cap, is refused: busy.
        let fresh = node("node-9");
        let refused = admissions
            .admit(session(MAX_SESSIONS), &fresh, None, None, now)
            .unwrap_err();
        assert_eq!(refused, Refusal::Busy);
        assert_eq!(refused.kind(), FailureKind::Busy);
        admissions.finish(&session(3));
        admissions
            .admit(session(MAX_SESSIONS), &fresh, None, None, now)
            .unwrap();
        assert_eq!(admissions.running(), MAX_SESSIONS);
    }

    #[test]
    fn a_session_id_is_admitted_once_at_a_time() {
        let mut admissions = Admissions::new();
        let now = Instant::now();
        let a = node("node-1");
        admissions.admit(session(1), &a, None, None, now).unwrap();
        let again = admissions
            .admit(session(1), &a, None, None, now)
            .unwrap_err();
        assert_eq!(again, Refusal::Running(session(1)));
        assert_eq!(again.kind(), FailureKind::Refused);
        // Finishing something never admitted changes nothing.
        admissions.finish(&session(2));
        assert_eq!(admissions.running(), 1);
    }

    #[test]
    fn only_the_coordinator_may_abort_a_session() {
        let mut admissions = Admissions::new();
        let now = Instant::now();
        let (coordinator, other) = (node("node-1"), node("node-2"));
        admissions
            .admit(session(1), &coordinator, None, None, now)
            .unwrap();
        // Another participant of the same session, or any other node: refused, and the
        // session still runs.
        assert_eq!(
            admissions.abort(&other, &session(1)),
            Abort::NotCoordinator {
                coordinator: coordinator.clone()
            }
        );
        assert_eq!(admissions.running(), 1);
        assert_eq!(admissions.abort(&coordinator, &session(1)), Abort::End);
        assert_eq!(
            admissions.abort(&coordinator, &session(2)),
            Abort::NoSession
        );
        admissions.finish(&session(1));
        assert_eq!(
            admissions.abort(&coordinator, &session(1)),
            Abort::NoSession
        );
    }

    #[test]
    fn auxiliary_info_sessions_pass_the_prime_budget_too() {
        let mut admissions = Admissions::new();
        let now = Instant::now();
        let a = node("node-1");
        let group = group();
        let held = AuxRequest {
            group: &group,
            held: true,
            renew: false,
        };
        let refused = admissions
            .admit(session(1), &a, Some(held), None, now)
            .unwrap_err();
        assert_eq!(refused, Refusal::AuxInfo(AuxRefusal::AlreadyHeld));
        assert_eq!(refused.kind(), FailureKind::AuxInfoHeld);
        assert_eq!(admissions.running(), 0, "a refusal holds no slot");
        let renew = AuxRequest {
            renew: true,
            ..held
        };
        admissions
            .admit(session(1), &a, Some(renew), None, now)
            .unwrap();
        // One at a time per coordinator and set: busy until the first one ends.
        let running = admissions
            .admit(session(2), &a, Some(renew), None, now)
            .unwrap_err();
        assert_eq!(running, Refusal::AuxInfo(AuxRefusal::Running));
        assert_eq!(running.kind(), FailureKind::Busy);
        admissions.finish(&session(1));
        admissions
            .admit(session(2), &a, Some(renew), None, now)
            .unwrap();
    }

    /// The cap counts the keys being generated: at exactly MAX_KEYS held and running,
    /// one more is refused at admission, and an id being generated is not generated twice.
    #[test]
    fn key_generations_are_capped_when_admitted() {
        let now = Instant::now();
        let a = node("node-1");
        let mut admissions = Admissions::new();
        let id = |i: usize| KeyId::new(format!("k{i}")).unwrap();
        fn ask(key: &KeyId, held: usize) -> Option<KeyRequest<'_>> {
            Some(KeyRequest {
                key_id: key,
                exists: false,
                held,
            })
        }
        let (k1, k2, k3) = (id(1), id(2), id(3));
        admissions
            .admit(session(1), &a, None, ask(&k1, MAX_KEYS - 2), now)
            .unwrap();
        assert_eq!(
            admissions.admit(session(2), &a, None, ask(&k1, MAX_KEYS - 2), now),
            Err(Refusal::KeyExists(k1.clone()))
        );
        admissions
            .admit(session(3), &a, None, ask(&k2, MAX_KEYS - 2), now)
            .unwrap();
        assert_eq!(
            admissions.admit(session(4), &a, None, ask(&k3, MAX_KEYS - 2), now),
            Err(Refusal::TooManyKeys)
        );
        // A finished generation frees its room (its key, if sealed, is then held).
        admissions.finish(&session(3));
        admissions
            .admit(session(4), &a, None, ask(&k3, MAX_KEYS - 2), now)
            .unwrap();
    }

    fn manifest(placement: serde_json::Value) -> Manifest {
        let pcr = |b: u8| hex::encode([b; 48]);
        let nodes: Vec<serde_json::Value> = (1..=3u8)
            .map(|i| {
                serde_json::json!({
                    "id": format!("node-{i}"), "provider": "sim",
                    "address": format!("127.0.0.1:710{i}"),
                    "measurements": [{"nitro": {"0": pcr(1), "1": pcr(2), "2": pcr(3), "4": pcr(i + 3)}}],
                })
            })
            .collect();
        Manifest::parse(
            &serde_json::to_vec(&serde_json::json!({
                "version": 1,
                "threshold": 1,
                "operators": [{"id": "op", "public_key": "ab".repeat(32)}],
                "nodes": nodes,
                "placement": placement,
            }))
            .unwrap(),
        )
        .unwrap()
    }

    /// The coordinator's own admission of a key creation: the placement rule, for the
    /// parties named or every node of the manifest.
    #[test]
    fn a_key_creation_is_admitted_only_as_the_manifest_places_it() {
        let strict = manifest(serde_json::json!({}));
        let every: [String; 0] = [];
        let refused = admit_key_creation(&strict, &every, 2).unwrap_err();
        assert_eq!(refused.kind(), FailureKind::Refused);
        assert_eq!(
            refused,
            Refusal::Placement(PlacementError::ProviderQuorum {
                provider: attestation::Provider::Nitro,
                holds: 3,
                shares: 3,
                threshold: 2,
            })
        );
        assert!(
            refused.to_string().contains(
                "provider nitro would hold 3 of the key's 3 shares, and 2 of them can sign"
            ),
            "{refused}"
        );
        let two = ["node-1".to_owned(), "node-3".to_owned()];
        assert!(matches!(
            admit_key_creation(&strict, &two, 2),
            Err(Refusal::Placement(PlacementError::ProviderQuorum {
                holds: 2,
                ..
            }))
        ));
        let lax = manifest(serde_json::json!({"allow_provider_quorum": true}));
        admit_key_creation(&lax, &every, 2).unwrap();
        admit_key_creation(&lax, &two, 2).unwrap();
        // What the rule refuses whatever the manifest allows: parties it does not list, or
        // a threshold the parties cannot meet.
        let stranger = ["node-1".to_owned(), "node-9".to_owned()];
        assert!(matches!(
            admit_key_creation(&lax, &stranger, 1),
            Err(Refusal::Placement(PlacementError::UnknownParty { .. }))
        ));
        assert!(matches!(
            admit_key_creation(&lax, &two, 3),
            Err(Refusal::Placement(PlacementError::Threshold { .. }))
        ));
    }

    #[test]
    fn keys_are_capped_and_never_reused() {
        let k = KeyId::new("k").unwrap();
        assert_eq!(check_new_key(&k, false, 0), Ok(()));
        assert_eq!(check_new_key(&k, false, MAX_KEYS - 1), Ok(()));
        // Holding exactly MAX_KEYS, a key number MAX_KEYS + 1 is refused.
        let full = check_new_key(&k, false, MAX_KEYS).unwrap_err();
        assert_eq!(full, Refusal::TooManyKeys);
        assert_eq!(full.kind(), FailureKind::Refused);
        assert!(full.to_string().contains("4096 keys already"));
        let again = check_new_key(&k, true, 1).unwrap_err();
        assert_eq!(again.to_string(), "key k already exists");
    }
}
