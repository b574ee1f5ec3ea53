//! A coordinator's session, without I/O: who was asked, what each answered, when to stop
//! waiting, when to abort, and what the operator is told.
//!
//! The coordinator sends one session request to every other participant and takes part
//! itself ([`Coordination::start`]). Each participant answers once with its outcome
//! ([`Coordination::on_outcome`]); an outcome from a node that was not asked, or a second
//! one from a node that already answered, is dropped. The first failure aborts the session
//! at every other participant (they stop and confirm), after which the coordinator waits
//! at most [`ABORT_GRACE`] for the confirmations; it never waits past the session's
//! deadline. When it stops waiting ([`Coordination::finish`]), a participant that never
//! answered is reported as timed out, and the session is aborted everywhere if it was not
//! already.
//!
//! Then [`agreed`] turns the outcomes into the operator's answer: the one value every
//! participant reported, or an [`OperationFailure`] naming, per participant, the kind of
//! failure and the nodes the protocol blamed.

use crate::operator_api::{OperationFailure, ParticipantFailure};
use crate::threshold::request::{FailureKind, Outcome};
use mpc::{NodeId, SessionId};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// After aborting a session, how long the coordinator waits for the other participants to
/// confirm.
pub const ABORT_GRACE: Duration = Duration::from_secs(5);

/// What the runtime does for a coordination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send the session request to this participant.
    Start { to: NodeId },
    /// Take part in the session at this node.
    RunHere,
    /// End the session at this node and send an abort to each of `to`.
    Abort { to: Vec<NodeId> },
}

/// Why an outcome was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    #[error("outcome from a node that was not asked dropped")]
    NotAsked,
    #[error("second outcome from a participant dropped")]
    Duplicate,
}

/// One session this node coordinates.
#[derive(Debug)]
pub struct Coordination {
    session: SessionId,
    me: NodeId,
    /// The other participants, each asked once.
    others: BTreeSet<NodeId>,
    outcomes: BTreeMap<NodeId, Outcome>,
    deadline: Instant,
    aborted: Option<Instant>,
}

impl Coordination {
    /// Starts coordinating `session` among `participants` (this node, `me`, among them) at
    /// `now`, for at most `limit`.
    pub fn start(
        session: SessionId,
        me: NodeId,
        participants: &[NodeId],
        now: Instant,
        limit: Duration,
    ) -> (Self, Vec<Action>) {
        let others: BTreeSet<NodeId> = participants.iter().filter(|p| **p != me).cloned().collect();
        let mut actions: Vec<Action> = others
            .iter()
            .map(|to| Action::Start { to: to.clone() })
            .collect();
        actions.push(Action::RunHere);
        let coordination = Coordination {
            session,
            me,
            others,
            outcomes: BTreeMap::new(),
            deadline: now + limit,
            aborted: None,
        };
        (coordination, actions)
    }

    pub fn session(&self) -> SessionId {
        self.session
    }

    /// The participants that still owe an outcome (this node included).
    pub fn waiting_for(&self) -> BTreeSet<NodeId> {
        self.others
            .iter()
            .chain(std::iter::once(&self.me))
            .filter(|p| !self.outcomes.contains_key(*p))
            .cloned()
            .collect()
    }

    /// Every participant answered.
    pub fn is_complete(&self) -> bool {
        self.outcomes.len() == self.others.len() + 1
    }

    /// When to stop waiting: the deadline, or sooner once aborted.
    pub fn wake_at(&self) -> Instant {
        self.aborted
            .map_or(self.deadline, |at| (at + ABORT_GRACE).min(self.deadline))
    }

    /// Whether the coordinator should stop waiting at `now`.
    pub fn is_over(&self, now: Instant) -> bool {
        self.is_complete() || now >= self.wake_at()
    }

    /// `from`'s outcome at `now`. The first failure aborts the session at every other
    /// participant.
    pub fn on_outcome(
        &mut self,
        from: &NodeId,
        outcome: Outcome,
        now: Instant,
    ) -> Result<Vec<Action>, Dropped> {
        if *from != self.me && !self.others.contains(from) {
            return Err(Dropped::NotAsked);
        }
        if self.outcomes.contains_key(from) {
            return Err(Dropped::Duplicate);
        }
        let mut actions = Vec::new();
        if matches!(outcome, Outcome::Failed { .. }) && self.aborted.is_none() {
            self.aborted = Some(now);
            actions.push(self.abort());
        }
        self.outcomes.insert(from.clone(), outcome);
        Ok(actions)
    }

    fn abort(&self) -> Action {
        Action::Abort {
            to: self.others.iter().cloned().collect(),
        }
    }

    /// Stops waiting: each participant's outcome, the silent ones reported as timed out,
    /// and an abort if one is still owed (someone did not answer and nothing failed).
    pub fn finish(mut self) -> (BTreeMap<NodeId, Outcome>, Vec<Action>) {
        let silent: Vec<NodeId> = self
            .others
            .iter()
            .filter(|p| !self.outcomes.contains_key(*p))
            .cloned()
            .collect();
        let mut actions = Vec::new();
        if !silent.is_empty() || !self.outcomes.contains_key(&self.me) {
            if self.aborted.is_none() {
                actions.push(self.abort());
            }
            for peer in silent {
                self.outcomes.insert(
                    peer,
                    Outcome::failed(FailureKind::TimedOut, "no answer from this participant"),
                );
            }
        }
        (self.outcomes, actions)
    }
}

/// The failures among `outcomes`, as the operator sees them.
pub fn failures(step: &str, outcomes: &BTreeMap<NodeId, Outcome>) -> OperationFailure {
    OperationFailure {
        step: step.to_owned(),
        failures: outcomes
            .iter()
            .filter_map(|(node, o)| match o {
                Outcome::Failed {
                    kind,
                    reason,
                    blamed,
                } => Some(ParticipantFailure {
                    node: node.to_string(),
                    kind: *kind,
                    reason: reason.clone(),
                    blamed: blamed.clone(),
                }),
                _ => None,
            })
            .collect(),
    }
}

/// Whether some participant failed for this reason.
pub fn any_failed(outcomes: &BTreeMap<NodeId, Outcome>, reason: FailureKind) -> bool {
    outcomes
        .values()
        .any(|o| matches!(o, Outcome::Failed { kind, .. } if *kind == reason))
}

/// Why the participants' outcomes give no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgreementError {
    #[error(transparent)]
    Failed(OperationFailure),
    #[error("{step}: no result")]
    NoResult { step: String },
    #[error("{step}: {node} reported a different result")]
    Disagreed { step: String, node: NodeId },
}

/// The value every participant reported; an error naming who failed or disagreed.
pub fn agreed<T: PartialEq>(
    step: &str,
    outcomes: &BTreeMap<NodeId, Outcome>,
    value: impl Fn(&Outcome) -> Option<T>,
) -> Result<T, AgreementError> {
    let failed = failures(step, outcomes);
    if !failed.failures.is_empty() {
        return Err(AgreementError::Failed(failed));
    }
    let mut values = outcomes.iter().map(|(n, o)| (n, value(o)));
    let Some((_, Some(first))) = values.next() else {
        return Err(AgreementError::NoResult {
            step: step.to_owned(),
        });
    };
    for (node, v) in values {
        if v.as_ref() != Some(&first) {
            return Err(AgreementError::Disagreed {
                step: step.to_owned(),
                node: node.clone(),
            });
        }
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> NodeId {
        NodeId::new(id).unwrap()
    }

    fn nodes(ids: &[&str]) -> Vec<NodeId> {
        ids.iter().map(|i| node(i)).collect()
    }

    const LIMIT: Duration = Duration::from_secs(480);

    fn started() -> (Coordination, Instant) {
        let now = Instant::now();
        let session = SessionId::from_bytes([7; 32]);
        let (c, actions) =
            Coordination::start(session, node("a"), &nodes(&["a", "b", "c"]), now, LIMIT);
        assert_eq!(
            actions,
            [
                Action::Start { to: node("b") },
                Action::Start { to: node("c") },
                Action::RunHere
            ]
        );
        (c, now)
    }

    fn signature() -> Outcome {
        Outcome::Signature {
            r: "01".into(),
            s: "02".into(),
            v: 0,
        }
    }

    #[test]
    fn every_participant_answers_once() {
        let (mut c, now) = started();
        assert_eq!(c.wake_at(), now + LIMIT);
        for p in ["a", "b"] {
            assert_eq!(c.on_outcome(&node(p), signature(), now), Ok(vec![]));
        }
        assert!(!c.is_complete());
        assert_eq!(c.waiting_for(), [node("c")].into());
        // A second answer from b is not taken, whatever it says.
        let failure = Outcome::failed(FailureKind::Aborted, "late");
        assert_eq!(
            c.on_outcome(&node("b"), failure, now),
            Err(Dropped::Duplicate)
        );
        c.on_outcome(&node("c"), signature(), now).unwrap();
        assert!(c.is_over(now));
        let (outcomes, actions) = c.finish();
        assert!(actions.is_empty(), "nothing to abort");
        assert_eq!(
            agreed("signing", &outcomes, |o| Some(o.clone())),
            Ok(signature())
        );
    }

    #[test]
    fn an_outcome_from_a_node_that_was_not_asked_is_dropped() {
        let (mut c, now) = started();
        // A node outside the session claims a failure: it neither aborts the session nor
        // counts as an answer.
        let forged = Outcome::failed(FailureKind::Aborted, "I say it failed");
        assert_eq!(
            c.on_outcome(&node("z"), forged, now),
            Err(Dropped::NotAsked)
        );
        assert_eq!(c.wake_at(), now + LIMIT, "not aborted");
        assert_eq!(c.waiting_for().len(), 3);
        for p in ["a", "b", "c"] {
            c.on_outcome(&node(p), signature(), now).unwrap();
        }
        let (outcomes, actions) = c.finish();
        assert!(actions.is_empty());
        assert!(!outcomes.contains_key(&node("z")));
        assert_eq!(outcomes.len(), 3);
    }

    #[test]
    fn the_first_failure_aborts_the_others_and_shortens_the_wait() {
        let (mut c, now) = started();
        let later = now + Duration::from_secs(10);
        let failure = Outcome::Failed {
            kind: FailureKind::Aborted,
            reason: "bad proof".into(),
            blamed: vec!["c".into()],
        };
        let actions = c.on_outcome(&node("b"), failure, later).unwrap();
        assert_eq!(
            actions,
            [Action::Abort {
                to: nodes(&["b", "c"])
            }]
        );
        assert_eq!(c.wake_at(), later + ABORT_GRACE);
        // A second failure does not abort again.
        let actions = c
            .on_outcome(
                &node("a"),
                Outcome::failed(FailureKind::Aborted, "x"),
                later,
            )
            .unwrap();
        assert!(actions.is_empty());
        assert!(!c.is_over(later + ABORT_GRACE - Duration::from_millis(1)));
        assert!(c.is_over(later + ABORT_GRACE));
        // c never confirms: reported as timed out; no second abort.
        let (outcomes, actions) = c.finish();
        assert!(actions.is_empty());
        let failed = failures("signing", &outcomes);
        let kinds: Vec<_> = failed
            .failures
            .iter()
            .map(|f| (f.node.as_str(), f.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("a", FailureKind::Aborted),
                ("b", FailureKind::Aborted),
                ("c", FailureKind::TimedOut)
            ]
        );
        // The blame survives, typed, per participant, and in the text.
        assert_eq!(failed.failures[1].blamed, ["c"]);
        let text = failed.to_string();
        assert!(text.starts_with("signing failed:"), "{text}");
        assert!(
            text.contains("[b: Aborted: bad proof; blamed: c]"),
            "{text}"
        );
    }

    #[test]
    fn the_grace_after_an_abort_never_outlasts_the_deadline() {
        let (mut c, now) = started();
        let late = now + LIMIT - Duration::from_secs(1);
        c.on_outcome(&node("b"), Outcome::failed(FailureKind::Busy, "busy"), late)
            .unwrap();
        assert_eq!(c.wake_at(), now + LIMIT);
    }

    #[test]
    fn silent_participants_time_out_and_the_session_is_aborted() {
        let (mut c, now) = started();
        c.on_outcome(&node("a"), signature(), now).unwrap();
        c.on_outcome(&node("b"), signature(), now).unwrap();
        assert!(!c.is_over(now + LIMIT - Duration::from_millis(1)));
        assert!(c.is_over(now + LIMIT));
        let (outcomes, actions) = c.finish();
        assert_eq!(
            actions,
            [Action::Abort {
                to: nodes(&["b", "c"])
            }]
        );
        assert_eq!(
            outcomes.get(&node("c")),
            Some(&Outcome::failed(
                FailureKind::TimedOut,
                "no answer from this participant"
            ))
        );
        let refused = agreed("signing", &outcomes, |o| Some(o.clone())).unwrap_err();
        assert!(refused.to_string().contains("c: TimedOut"), "{refused}");
    }

    #[test]
    fn this_node_not_answering_aborts_the_session_too() {
        let (mut c, now) = started();
        c.on_outcome(&node("b"), signature(), now).unwrap();
        c.on_outcome(&node("c"), signature(), now).unwrap();
        let (outcomes, actions) = c.finish();
        assert_eq!(actions.len(), 1);
        assert_eq!(outcomes.len(), 2);
    }

    #[test]
    fn disagreement_and_no_result_are_named() {
        let mut outcomes = BTreeMap::new();
        assert_eq!(
            agreed("signing", &outcomes, |o| Some(o.clone())).unwrap_err(),
            AgreementError::NoResult {
                step: "signing".into()
            }
        );
        outcomes.insert(node("a"), signature());
        outcomes.insert(
            node("b"),
            Outcome::Signature {
                r: "ff".into(),
                s: "02".into(),
                v: 0,
            },
        );
        let refused = agreed("signing", &outcomes, |o| Some(o.clone())).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "signing: b reported a different result"
        );
        assert!(any_failed(
            &[(node("a"), Outcome::failed(FailureKind::AuxInfoMissing, "x"))].into(),
            FailureKind::AuxInfoMissing
        ));
        assert!(!any_failed(&outcomes, FailureKind::AuxInfoMissing));
    }
}
