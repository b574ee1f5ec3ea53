//! Provisioning, without I/O: how a starting node gets its data key, round by round, and
//! what it then owes its peers.
//!
//! [`Provisioning`] is driven by the runtime: it says what to do next ([`Step`]: list the
//! parent's blobs, ask every peer, try a released key, create a key, wait, stop, done),
//! the runtime does it and hands back what happened. The rules it applies are the pure
//! functions of [`rules`]: a first start needs `NotHeld` from every peer; with sealed
//! state only a released key that opens the sealed index is used, whoever released it;
//! without state a key is adopted only if every peer released the same one. The key
//! bytes never enter this module: the runtime keeps them and this module sees their
//! fingerprints, in the peers' answers.
//!
//! Once the store is open, [`rules::confirm`] checks the manifest against the sealed copy,
//! and [`EscrowPlan`] tracks the peers that must still be given the key.

pub mod rules;

pub use rules::{
    BootManifest, Confirmation, Decision, EscrowVerdict, check_boot_manifest, confirm, decide,
    escrow_verdict, mismatched,
};

use crate::provisioning::PeerAnswer;
use crate::sealed::{INDEX_NAME, SealError};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// What the runtime does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// List the parent's blobs; then [`Provisioning::listed`] or
    /// [`Provisioning::list_failed`].
    ListBlobs,
    /// Ask every peer of the manifest for this node's key; then
    /// [`Provisioning::answered`].
    AskPeers,
    /// Open the existing sealed state with the key `peer` released; then
    /// [`Provisioning::opened`].
    TryKey { peer: String },
    /// No sealed state, and every peer released the same key: open a new store under the
    /// key the first of `from` released; then [`Provisioning::opened`].
    RecoverFresh { from: Vec<String> },
    /// First start: create a data key and a new store under it; then
    /// [`Provisioning::opened`].
    CreateKey,
    /// Say why the node waits, and start the next round at `until`
    /// ([`Provisioning::next_round`]).
    Wait { reason: String, until: Instant },
    /// Stop: the sealed state is this node's, but altered.
    Fail { reason: String },
    /// The store is open.
    Done(Provisioned),
}

/// Where the data key of an open store came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provisioned {
    /// `peer`'s key opened the existing sealed state; `liars` released other keys.
    Recovered { peer: String, liars: Vec<String> },
    /// No sealed state at the parent, and every peer (`from`) released the same key: a
    /// new store under it, to be escrowed again.
    RecoveredFresh { from: Vec<String> },
    /// First start: a new key, to be escrowed with every peer.
    Created,
}

impl Provisioned {
    /// Whether the key must be escrowed with every peer (again).
    pub fn needs_escrow(&self) -> bool {
        !matches!(self, Provisioned::Recovered { .. })
    }
}

/// How opening a store with a key went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Open {
    Opened,
    /// The key does not open the sealed index: not this node's key (a lying or confused
    /// peer). Never used; other keys are tried, and peers asked again.
    WrongKey(String),
    /// Something transient (the parent unreachable, the index gone since it was listed):
    /// ask again later.
    Retry(String),
    /// The key opened the index, so it is this node's, but the state itself is altered,
    /// swapped or rolled back (or no key could be made at all): stop.
    Fatal(String),
}

impl Open {
    /// A key that fails to authenticate the index is the wrong key; failures of the blob
    /// transport are worth retrying; anything else the sealing layer detected about the
    /// bytes themselves stops the node.
    pub fn classify(error: &SealError) -> Self {
        match error {
            SealError::Store(e) => Open::Retry(format!("parent blob store: {e}")),
            SealError::Tampered { name } if name == INDEX_NAME => {
                Open::WrongKey(format!("sealed state refused: {error}"))
            }
            other => Open::Fatal(format!("sealed state refused: {other}")),
        }
    }
}

/// Whether sealed state exists, from the parent's listing: once its index does. Blobs
/// without an index are left from a first write that never committed, and cannot be read.
pub fn has_state(names: &[String]) -> bool {
    names.iter().any(|n| n == INDEX_NAME)
}

#[derive(Debug)]
enum Round {
    Listing,
    Asking {
        has_state: bool,
    },
    Trying {
        current: String,
        candidates: VecDeque<String>,
        failures: Vec<String>,
        answers: BTreeMap<String, PeerAnswer>,
    },
    Recovering {
        from: Vec<String>,
    },
    Creating,
    Waiting,
    Ended,
}

/// A node's provisioning, from its first round to an open store (or a stop).
#[derive(Debug)]
pub struct Provisioning {
    retry: Duration,
    round: Round,
}

impl Provisioning {
    /// `retry`: the pause between rounds.
    pub fn new(retry: Duration) -> Self {
        Provisioning {
            retry,
            round: Round::Waiting,
        }
    }

    /// Starts a round: at the beginning, after a wait, or at once when a round's answers
    /// no longer apply (the manifest changed while the peers were asked).
    pub fn next_round(&mut self) -> Step {
        self.round = Round::Listing;
        Step::ListBlobs
    }

    fn wait(&mut self, reason: String, now: Instant) -> Step {
        self.round = Round::Waiting;
        Step::Wait {
            reason,
            until: now + self.retry,
        }
    }

    fn end(&mut self, step: Step) -> Step {
        self.round = Round::Ended;
        step
    }

    /// The parent's listing says whether sealed state exists ([`has_state`]).
    pub fn listed(&mut self, has_state: bool, now: Instant) -> Step {
        if !matches!(self.round, Round::Listing) {
            return self.out_of_order(now);
        }
        self.round = Round::Asking { has_state };
        Step::AskPeers
    }

    /// The parent's blobs could not be listed.
    pub fn list_failed(&mut self, error: &dyn std::fmt::Display, now: Instant) -> Step {
        if !matches!(self.round, Round::Listing) {
            return self.out_of_order(now);
        }
        self.wait(
            format!("cannot reach the parent's blob store: {error}"),
            now,
        )
    }

    /// Every peer's answer. `manifest_unchanged`: the manifest the peers were asked under
    /// is still the one installed; if not, the answers are dropped and a round starts.
    pub fn answered(
        &mut self,
        answers: BTreeMap<String, PeerAnswer>,
        manifest_unchanged: bool,
        now: Instant,
    ) -> Step {
        let Round::Asking { has_state } = self.round else {
            return self.out_of_order(now);
        };
        if !manifest_unchanged {
            return self.next_round();
        }
        match decide(has_state, &answers) {
            Decision::TryKeys { peers } => {
                let mut candidates: VecDeque<String> = peers.into();
                let Some(current) = candidates.pop_front() else {
                    return self.wait("no peer released a key".to_owned(), now);
                };
                self.round = Round::Trying {
                    current: current.clone(),
                    candidates,
                    failures: Vec::new(),
                    answers,
                };
                Step::TryKey { peer: current }
            }
            Decision::RecoverFresh { from } => {
                self.round = Round::Recovering { from: from.clone() };
                Step::RecoverFresh { from }
            }
            Decision::CreateNew => {
                self.round = Round::Creating;
                Step::CreateKey
            }
            Decision::Wait(reason) => self.wait(reason, now),
        }
    }

    /// How opening the store went, for the key of the last [`Step::TryKey`],
    /// [`Step::RecoverFresh`] or [`Step::CreateKey`].
    pub fn opened(&mut self, open: Open, now: Instant) -> Step {
        match std::mem::replace(&mut self.round, Round::Ended) {
            Round::Trying {
                current,
                mut candidates,
                mut failures,
                answers,
            } => {
                match open {
                    Open::Opened => {
                        let liars = match answers.get(&current) {
                            Some(PeerAnswer::Released(opened)) => mismatched(&answers, opened),
                            _ => Vec::new(),
                        };
                        return self.end(Step::Done(Provisioned::Recovered {
                            peer: current,
                            liars,
                        }));
                    }
                    Open::Fatal(reason) => return self.end(Step::Fail { reason }),
                    Open::WrongKey(_) => {
                        failures.push(format!("{current}'s key does not open the sealed state"));
                    }
                    Open::Retry(reason) => failures.push(format!("{current}'s key: {reason}")),
                }
                match candidates.pop_front() {
                    Some(next) => {
                        self.round = Round::Trying {
                            current: next.clone(),
                            candidates,
                            failures,
                            answers,
                        };
                        Step::TryKey { peer: next }
                    }
                    None => self.wait(
                        format!(
                            "no released key opens the sealed state ({})",
                            failures.join("; ")
                        ),
                        now,
                    ),
                }
            }
            Round::Recovering { from } => match open {
                Open::Opened => self.end(Step::Done(Provisioned::RecoveredFresh { from })),
                Open::Fatal(reason) => self.end(Step::Fail { reason }),
                Open::WrongKey(reason) | Open::Retry(reason) => self.wait(reason, now),
            },
            Round::Creating => match open {
                Open::Opened => self.end(Step::Done(Provisioned::Created)),
                Open::Fatal(reason) => self.end(Step::Fail { reason }),
                Open::WrongKey(reason) | Open::Retry(reason) => self.wait(reason, now),
            },
            other => {
                self.round = other;
                self.out_of_order(now)
            }
        }
    }

    /// An input the current round does not expect: the runtime's bug, not a peer's. The
    /// round starts over after a pause rather than act on it.
    fn out_of_order(&mut self, now: Instant) -> Step {
        self.wait(
            "provisioning step out of order; starting over".to_owned(),
            now,
        )
    }
}

/// The peers that must still be given this node's data key: every peer of the manifest
/// the node runs under, until each confirmed it holds the key. A peer dropped from the
/// manifest is dropped from the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EscrowPlan {
    pending: BTreeSet<String>,
}

impl EscrowPlan {
    pub fn new(peers: impl IntoIterator<Item = String>) -> Self {
        EscrowPlan {
            pending: peers.into_iter().collect(),
        }
    }

    /// Keeps only the peers of the manifest the node runs now.
    pub fn retain(&mut self, current: &BTreeSet<String>) {
        self.pending.retain(|peer| current.contains(peer));
    }

    /// `peer` confirmed it holds the key.
    pub fn stored(&mut self, peer: &str) {
        self.pending.remove(peer);
    }

    pub fn pending(&self) -> &BTreeSet<String> {
        &self.pending
    }

    /// Every peer holds the key: the node need not keep it outside its sealed store.
    pub fn is_done(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provisioning::{KEY_LEN, KeyFingerprint};

    const RETRY: Duration = Duration::from_secs(5);

    fn key(byte: u8) -> KeyFingerprint {
        KeyFingerprint::of(&[byte; KEY_LEN])
    }

    fn answers(list: &[(&str, PeerAnswer)]) -> BTreeMap<String, PeerAnswer> {
        list.iter()
            .map(|(p, a)| (p.to_string(), a.clone()))
            .collect()
    }

    /// A machine that listed the parent's blobs (`has_state`) and asked its peers.
    fn asked(has_state: bool) -> (Provisioning, Instant) {
        let now = Instant::now();
        let mut p = Provisioning::new(RETRY);
        assert_eq!(p.next_round(), Step::ListBlobs);
        assert_eq!(p.listed(has_state, now), Step::AskPeers);
        (p, now)
    }

    fn is_wait(step: &Step, now: Instant, needle: &str) -> bool {
        matches!(step, Step::Wait { reason, until } if *until == now + RETRY && reason.contains(needle))
    }

    #[test]
    fn a_first_start_creates_a_key_only_when_every_peer_holds_none() {
        use PeerAnswer::*;
        let (mut p, now) = asked(false);
        let step = p.answered(answers(&[("b", NotHeld), ("c", NotHeld)]), true, now);
        assert_eq!(step, Step::CreateKey);
        let done = p.opened(Open::Opened, now);
        assert_eq!(done, Step::Done(Provisioned::Created));
        assert!(Provisioned::Created.needs_escrow());

        // One peer unreachable: wait, naming it, and ask again after the pause.
        let (mut p, now) = asked(false);
        let step = p.answered(
            answers(&[("b", NotHeld), ("c", Unreachable("down".into()))]),
            true,
            now,
        );
        assert!(is_wait(&step, now, "c: unreachable"), "{step:?}");
        assert_eq!(p.next_round(), Step::ListBlobs);

        // A peer releasing a key of its choosing to a node without state: never adopted.
        let (mut p, now) = asked(false);
        let step = p.answered(
            answers(&[("b", Released(key(6))), ("c", NotHeld)]),
            true,
            now,
        );
        assert!(is_wait(&step, now, "b released"), "{step:?}");
    }

    #[test]
    fn with_sealed_state_only_a_key_that_opens_it_is_used() {
        use PeerAnswer::*;
        // A liar answers first: its key is tried, refused by the sealed index, and the
        // honest peer's key opens the state. The liar is named.
        let (mut p, now) = asked(true);
        let step = p.answered(
            answers(&[("b", Released(key(9))), ("c", Released(key(1)))]),
            true,
            now,
        );
        assert_eq!(step, Step::TryKey { peer: "b".into() });
        let step = p.opened(Open::WrongKey("index refused".into()), now);
        assert_eq!(step, Step::TryKey { peer: "c".into() });
        let done = p.opened(Open::Opened, now);
        let recovered = Provisioned::Recovered {
            peer: "c".into(),
            liars: vec!["b".into()],
        };
        assert_eq!(done, Step::Done(recovered.clone()));
        assert!(!recovered.needs_escrow());

        // Only liars: wait, saying whose key did not open the state; never create.
        let (mut p, now) = asked(true);
        p.answered(
            answers(&[("b", Released(key(9))), ("c", NotHeld)]),
            true,
            now,
        );
        let step = p.opened(Open::WrongKey("index refused".into()), now);
        assert!(
            is_wait(&step, now, "b's key does not open the sealed state"),
            "{step:?}"
        );

        // Nobody releases: wait, never create over existing state.
        let (mut p, now) = asked(true);
        let step = p.answered(answers(&[("b", NotHeld), ("c", NotHeld)]), true, now);
        assert!(is_wait(&step, now, "no peer released"), "{step:?}");

        // A key that opens the index of altered state stops the node.
        let (mut p, now) = asked(true);
        p.answered(answers(&[("b", Released(key(1)))]), true, now);
        let step = p.opened(Open::Fatal("rolled back".into()), now);
        assert_eq!(
            step,
            Step::Fail {
                reason: "rolled back".into()
            }
        );
        // A transient failure moves on to the next key, and then waits.
        let (mut p, now) = asked(true);
        p.answered(answers(&[("b", Released(key(1)))]), true, now);
        let step = p.opened(Open::Retry("parent blob store: down".into()), now);
        assert!(
            is_wait(&step, now, "b's key: parent blob store"),
            "{step:?}"
        );
    }

    #[test]
    fn without_state_a_key_is_adopted_only_from_every_peer() {
        use PeerAnswer::*;
        let (mut p, now) = asked(false);
        let step = p.answered(
            answers(&[("b", Released(key(1))), ("c", Released(key(1)))]),
            true,
            now,
        );
        let from = vec!["b".to_owned(), "c".to_owned()];
        assert_eq!(step, Step::RecoverFresh { from: from.clone() });
        assert_eq!(
            p.opened(Open::Opened, now),
            Step::Done(Provisioned::RecoveredFresh { from })
        );
        // The index appeared since the listing: the key is unproven; ask again.
        let (mut p, now) = asked(false);
        p.answered(
            answers(&[("b", Released(key(1))), ("c", Released(key(1)))]),
            true,
            now,
        );
        let step = p.opened(Open::Retry("index appeared".into()), now);
        assert!(is_wait(&step, now, "index appeared"), "{step:?}");
    }

    #[test]
    fn answers_given_under_a_replaced_manifest_are_not_used() {
        use PeerAnswer::*;
        let (mut p, now) = asked(false);
        let step = p.answered(answers(&[("b", NotHeld), ("c", NotHeld)]), false, now);
        assert_eq!(step, Step::ListBlobs, "a new round starts at once");
        assert_eq!(p.listed(false, now), Step::AskPeers);
    }

    #[test]
    fn an_unreachable_parent_is_waited_for() {
        let now = Instant::now();
        let mut p = Provisioning::new(RETRY);
        p.next_round();
        let step = p.list_failed(&"connection refused", now);
        assert!(is_wait(&step, now, "cannot reach the parent's blob store"));
    }

    #[test]
    fn inputs_out_of_order_are_not_acted_on() {
        use PeerAnswer::*;
        let now = Instant::now();
        let mut p = Provisioning::new(RETRY);
        // Answers before any listing, an open before any key: wait and start over.
        let step = p.answered(answers(&[("b", NotHeld)]), true, now);
        assert!(is_wait(&step, now, "out of order"), "{step:?}");
        let step = p.opened(Open::Opened, now);
        assert!(is_wait(&step, now, "out of order"), "{step:?}");
        assert_eq!(p.next_round(), Step::ListBlobs);
        // A finished provisioning takes nothing more.
        let (mut p, now) = asked(false);
        p.answered(answers(&[("b", NotHeld)]), true, now);
        assert_eq!(
            p.opened(Open::Opened, now),
            Step::Done(Provisioned::Created)
        );
        assert!(matches!(p.opened(Open::Opened, now), Step::Wait { .. }));
    }

    #[test]
    fn the_index_decides_whether_state_exists() {
        let names = |list: &[&str]| list.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert!(has_state(&names(&[INDEX_NAME, "key-a"])));
        assert!(!has_state(&names(&["key-a", "node-info"])));
        assert!(!has_state(&[]));
    }

    #[test]
    fn only_a_wrong_index_key_is_a_wrong_key() {
        let tampered = |name: &str| SealError::Tampered {
            name: name.to_owned(),
        };
        assert!(matches!(
            Open::classify(&tampered(INDEX_NAME)),
            Open::WrongKey(_)
        ));
        assert!(matches!(
            Open::classify(&tampered("node-info")),
            Open::Fatal(r) if r.contains("node-info")
        ));
    }

    #[test]
    fn the_escrow_plan_ends_when_every_current_peer_holds_the_key() {
        let mut plan = EscrowPlan::new(["b".to_owned(), "c".to_owned(), "d".to_owned()]);
        assert!(!plan.is_done());
        plan.stored("b");
        // "d" left the manifest.
        plan.retain(&["b", "c"].iter().map(|p| p.to_string()).collect());
        assert_eq!(plan.pending().iter().collect::<Vec<_>>(), ["c"]);
        plan.stored("c");
        assert!(plan.is_done());
    }
}
