//! Whether a participant runs an auxiliary-info session, decided without I/O.
//!
//! Auxiliary info costs each party a pair of safe primes (minutes of CPU to find), taken
//! from a small pool. A coordinator that asked for aux-info sessions at will could drain
//! every other party's pool and keep it drained, so that no key can be created. A
//! participant therefore:
//!
//! - refuses to run auxiliary info again for a party set it already holds auxiliary info
//!   for, unless the request asks for renewal (`renew`): an honest coordinator asks only
//!   when an operator did, or when a party reported that it lacks the set's auxiliary
//!   info (a party that lacks it accepts a request without the flag);
//! - runs at most [`MAX_RUNNING_PER_SET`] aux-info session at a time for one
//!   (coordinator, party set), at most [`MAX_PER_SET_PER_WINDOW`] per [`WINDOW`] for it,
//!   and at most [`MAX_PER_COORDINATOR_PER_WINDOW`] per [`WINDOW`] for one coordinator
//!   over all party sets, so that a coordinator cannot escape the bound by varying the
//!   set.
//!
//! The renewal flag is the coordinator's word: a compromised coordinator can set it, and
//! the window bounds are then what limits it.

use mpc::{NodeId, PartySet};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Aux-info sessions one (coordinator, party set) may have running here at once.
pub const MAX_RUNNING_PER_SET: usize = 1;
/// The period over which started aux-info sessions are counted.
pub const WINDOW: Duration = Duration::from_secs(60 * 60);
/// Aux-info sessions one (coordinator, party set) may start here per [`WINDOW`]: the
/// first run, a repair after a party reported it lacks the result, and one renewal.
pub const MAX_PER_SET_PER_WINDOW: usize = 3;
/// Aux-info sessions one coordinator may start here per [`WINDOW`], over all party sets.
pub const MAX_PER_COORDINATOR_PER_WINDOW: usize = 6;

/// Why an aux-info request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuxRefusal {
    #[error(
        "this node already holds auxiliary info for this party set, and the request does not ask for renewal"
    )]
    AlreadyHeld,
    #[error(
        "an auxiliary-info session of this coordinator for this party set is already running here"
    )]
    Running,
    #[error(
        "this coordinator started {MAX_PER_SET_PER_WINDOW} auxiliary-info sessions for this party set here within {} s", WINDOW.as_secs()
    )]
    SetBudget,
    #[error(
        "this coordinator started {MAX_PER_COORDINATOR_PER_WINDOW} auxiliary-info sessions here within {} s", WINDOW.as_secs()
    )]
    CoordinatorBudget,
}

/// What the decision looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuxDemand {
    /// This node holds auxiliary info for the request's party set.
    pub held: bool,
    /// The request asks to replace auxiliary info its parties may hold.
    pub renew: bool,
    /// Aux-info sessions of this coordinator for this set running here.
    pub running_for_set: usize,
    /// Aux-info sessions of this coordinator for this set started here within the window.
    pub started_for_set: usize,
    /// Aux-info sessions of this coordinator started here within the window, any set.
    pub started_by_coordinator: usize,
}

/// The admission rule itself.
pub fn decide(demand: &AuxDemand) -> Result<(), AuxRefusal> {
    if demand.held && !demand.renew {
        return Err(AuxRefusal::AlreadyHeld);
    }
    if demand.running_for_set >= MAX_RUNNING_PER_SET {
        return Err(AuxRefusal::Running);
    }
    if demand.started_for_set >= MAX_PER_SET_PER_WINDOW {
        return Err(AuxRefusal::SetBudget);
    }
    if demand.started_by_coordinator >= MAX_PER_COORDINATOR_PER_WINDOW {
        return Err(AuxRefusal::CoordinatorBudget);
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Record {
    running: usize,
    started: VecDeque<Instant>,
}

/// The aux-info sessions this node admitted, per (coordinator, party set). Only admitted
/// sessions leave a record, and records older than the window are dropped, so its size
/// is bounded by the per-coordinator budget times the number of manifest nodes.
#[derive(Debug, Default)]
pub struct AuxAdmissions {
    records: BTreeMap<(NodeId, PartySet), Record>,
}

impl AuxAdmissions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Admits an aux-info session of `coordinator` for `group` at `now`, or says why not.
    /// An admitted session counts as running until [`Self::finish`].
    pub fn admit(
        &mut self,
        coordinator: &NodeId,
        group: &PartySet,
        held: bool,
        renew: bool,
        now: Instant,
    ) -> Result<(), AuxRefusal> {
        self.forget_before(now);
        let key = (coordinator.clone(), group.clone());
        let (running_for_set, started_for_set) = self
            .records
            .get(&key)
            .map_or((0, 0), |r| (r.running, r.started.len()));
        let started_by_coordinator = self
            .records
            .iter()
            .filter(|((c, _), _)| c == coordinator)
            .map(|(_, r)| r.started.len())
            .sum();
        decide(&AuxDemand {
            held,
            renew,
            running_for_set,
            started_for_set,
            started_by_coordinator,
        })?;
        let record = self.records.entry(key).or_default();
        record.running += 1;
        record.started.push_back(now);
        Ok(())
    }

    /// An admitted session of `coordinator` for `group` ended.
    pub fn finish(&mut self, coordinator: &NodeId, group: &PartySet) {
        if let Some(record) = self.records.get_mut(&(coordinator.clone(), group.clone())) {
            record.running = record.running.saturating_sub(1);
        }
    }

    /// Drops starts older than the window, and records with nothing left.
    fn forget_before(&mut self, now: Instant) {
        for record in self.records.values_mut() {
            while record
                .started
                .front()
                .is_some_and(|at| now.saturating_duration_since(*at) >= WINDOW)
            {
                record.started.pop_front();
            }
        }
        self.records
            .retain(|_, r| r.running > 0 || !r.started.is_empty());
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.records.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn node(id: &str) -> NodeId {
        NodeId::new(id).unwrap()
    }

    fn set(ids: &[&str]) -> PartySet {
        PartySet::new(ids.iter().map(|id| node(id))).unwrap()
    }

    fn demand() -> AuxDemand {
        AuxDemand {
            held: false,
            renew: false,
            running_for_set: 0,
            started_for_set: 0,
            started_by_coordinator: 0,
        }
    }

    #[test]
    fn a_held_set_is_rerun_only_on_renewal() {
        assert_eq!(decide(&demand()), Ok(()));
        let held = AuxDemand {
            held: true,
            ..demand()
        };
        assert_eq!(decide(&held), Err(AuxRefusal::AlreadyHeld));
        assert_eq!(
            decide(&AuxDemand {
                renew: true,
                ..held
            }),
            Ok(())
        );
        // A party lacking it accepts with or without the flag.
        assert_eq!(
            decide(&AuxDemand {
                renew: true,
                ..demand()
            }),
            Ok(())
        );
    }

    #[test]
    fn limits_hold_at_the_limit_and_one_past() {
        let at = |running, per_set, per_coordinator| {
            decide(&AuxDemand {
                running_for_set: running,
                started_for_set: per_set,
                started_by_coordinator: per_coordinator,
                ..demand()
            })
        };
        assert_eq!(at(MAX_RUNNING_PER_SET - 1, 0, 0), Ok(()));
        assert_eq!(at(MAX_RUNNING_PER_SET, 0, 0), Err(AuxRefusal::Running));
        assert_eq!(at(0, MAX_PER_SET_PER_WINDOW - 1, 0), Ok(()));
        assert_eq!(at(0, MAX_PER_SET_PER_WINDOW, 0), Err(AuxRefusal::SetBudget));
        assert_eq!(at(0, 0, MAX_PER_COORDINATOR_PER_WINDOW - 1), Ok(()));
        assert_eq!(
            at(0, 0, MAX_PER_COORDINATOR_PER_WINDOW),
            Err(AuxRefusal::CoordinatorBudget)
        );
    }

    #[test]
    fn one_session_at_a_time_per_coordinator_and_set() {
        let mut admissions = AuxAdmissions::new();
        let now = Instant::now();
        let (a, b) = (node("node-1"), node("node-2"));
        let group = set(&["node-1", "node-2", "node-3"]);
        admissions.admit(&a, &group, false, false, now).unwrap();
        assert_eq!(
            admissions.admit(&a, &group, false, true, now),
            Err(AuxRefusal::Running)
        );
        // Another coordinator, or another set, is counted apart.
        admissions.admit(&b, &group, false, false, now).unwrap();
        admissions
            .admit(&a, &set(&["node-1", "node-2"]), false, false, now)
            .unwrap();
        admissions.finish(&a, &group);
        admissions.admit(&a, &group, false, true, now).unwrap();
    }

    #[test]
    fn a_coordinator_cannot_drain_the_pool_by_repeating_or_varying_sets() {
        let mut admissions = AuxAdmissions::new();
        let start = Instant::now();
        let a = node("node-1");
        let group = set(&["node-1", "node-2", "node-3"]);
        // Exactly the per-set budget within the window, then refused.
        for _ in 0..MAX_PER_SET_PER_WINDOW {
            admissions.admit(&a, &group, true, true, start).unwrap();
            admissions.finish(&a, &group);
        }
        assert_eq!(
            admissions.admit(&a, &group, true, true, start),
            Err(AuxRefusal::SetBudget)
        );
        // Other sets share the coordinator's budget.
        let others = [
            set(&["node-1", "node-2"]),
            set(&["node-1", "node-3"]),
            set(&["node-1", "node-4"]),
            set(&["node-1", "node-5"]),
        ];
        let mut admitted = MAX_PER_SET_PER_WINDOW;
        for other in &others {
            match admissions.admit(&a, other, false, false, start) {
                Ok(()) => {
                    admissions.finish(&a, other);
                    admitted += 1;
                }
                Err(e) => {
                    assert_eq!(e, AuxRefusal::CoordinatorBudget);
                    break;
                }
            }
        }
        assert_eq!(admitted, MAX_PER_COORDINATOR_PER_WINDOW);
        // Just inside the window: still refused. Once the window has passed: admitted again,
        // and the old records are gone.
        let almost = start + WINDOW - Duration::from_millis(1);
        assert_eq!(
            admissions.admit(&a, &group, true, true, almost),
            Err(AuxRefusal::SetBudget)
        );
        let later = start + WINDOW;
        admissions.admit(&a, &group, true, true, later).unwrap();
        assert_eq!(admissions.len(), 1);
    }
}
