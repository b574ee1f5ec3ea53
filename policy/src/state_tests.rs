use super::*;
use crate::testutil::{COLD, DAY, EXCHANGE, Ops, STRANGER, base, bytes};
use manifest::OperatorSignature;
use serde_json::{Value, json};

const ETH: Chain = Chain::Ethereum { chain_id: 1 };

struct Signer {
    ops: Ops,
    manifest: manifest::Manifest,
}

impl Signer {
    fn new() -> Self {
        let ops = Ops::new(2);
        let manifest = ops.manifest(2);
        Signer { ops, manifest }
    }

    /// Version `version` of the base policy with `effective_after_secs`, changed by `f`,
    /// approved by both operators.
    fn accepted(
        &self,
        version: u64,
        effective_after: u64,
        f: impl Fn(&mut Value),
    ) -> AcceptedPolicy {
        let mut v = base();
        v["version"] = json!(version);
        v["effective_after_secs"] = json!(effective_after);
        f(&mut v);
        let body = bytes(&v);
        let sigs: Vec<_> = self
            .ops
            .0
            .iter()
            .map(|(id, key)| OperatorSignature {
                operator: id.clone(),
                signature: crate::sign(&body, key),
            })
            .collect();
        crate::accept(
            &self.manifest,
            None,
            SignedPolicy::assemble(&body, &sigs).unwrap(),
        )
        .unwrap()
    }
}

fn same(_: &mut Value) {}

#[test]
fn the_first_policy_takes_effect_at_once() {
    let s = Signer::new();
    let mut state = PolicyState::new();
    assert_eq!(state.active(0), None);
    assert_eq!(state.accept(s.accepted(1, DAY, same), 1000).unwrap(), 1000);
    assert_eq!(state.active_version(1000), Some(1));
    assert_eq!(state.newest_version(), Some(1));
    assert!(state.pending(1000).is_none());
}

#[test]
fn a_later_version_waits_for_the_stricter_delay() {
    let s = Signer::new();
    for (active_delay, new_delay) in [(DAY, 0), (0, 2 * DAY), (DAY, DAY)] {
        let mut state = PolicyState::new();
        state.accept(s.accepted(1, active_delay, same), 0).unwrap();
        let t = 5_000;
        let effective = state.accept(s.accepted(2, new_delay, same), t).unwrap();
        let delay = active_delay.max(new_delay);
        assert_eq!(effective, t + delay);
        assert_eq!(state.active_version(t + delay - 1), Some(1));
        assert_eq!(state.pending(t + delay - 1).unwrap().policy().version(), 2);
        assert_eq!(state.active_version(t + delay), Some(2));
        assert!(state.pending(t + delay).is_none());
        assert_eq!(state.newest_version(), Some(2));
        // Settling changes what is stored, not what is in force.
        let mut settled = state.clone();
        settled.settle(t + delay - 1);
        assert_eq!(settled.active_version(t + delay - 1), Some(1));
        settled.settle(t + delay);
        assert_eq!(settled.active_version(t + delay), Some(2));
    }
}

#[test]
fn a_zero_delay_replacement_is_in_force_at_once_only_if_both_say_so() {
    let s = Signer::new();
    let mut state = PolicyState::new();
    state.accept(s.accepted(1, 0, same), 0).unwrap();
    assert_eq!(state.accept(s.accepted(2, 0, same), 10).unwrap(), 10);
    assert_eq!(state.active_version(10), Some(2));
}

#[test]
fn a_newer_pending_replaces_the_older_one() {
    let s = Signer::new();
    let mut state = PolicyState::new();
    state.accept(s.accepted(1, DAY, same), 0).unwrap();
    state.accept(s.accepted(2, DAY, same), 100).unwrap();
    // Version 3 arrives before 2 took effect: 2 is dropped, 3 waits its own full delay.
    assert_eq!(
        state.accept(s.accepted(3, 0, same), 200).unwrap(),
        200 + DAY
    );
    assert_eq!(state.active_version(100 + DAY), Some(1));
    assert_eq!(state.active_version(200 + DAY), Some(3));
    // A version arriving after the pending one took effect is measured against it.
    assert_eq!(
        state.accept(s.accepted(4, 0, same), 300 + DAY).unwrap(),
        300 + DAY
    );
    assert_eq!(state.active_version(300 + DAY), Some(4));
}

#[test]
fn an_older_or_equal_version_is_refused_even_against_the_pending_one() {
    let s = Signer::new();
    let mut state = PolicyState::new();
    state.accept(s.accepted(5, DAY, same), 0).unwrap();
    state.accept(s.accepted(7, DAY, same), 10).unwrap();
    for v in [7, 6, 5, 1] {
        assert!(matches!(
            state.accept(s.accepted(v, 0, same), 20),
            Err(PolicyError::VersionNotNewer { current: 7, .. })
        ));
    }
    assert_eq!(state.active_version(10 + DAY), Some(7));
}

#[test]
fn addresses_are_listed_from_when_the_node_first_accepted_them() {
    let s = Signer::new();
    let mut state = PolicyState::new();
    state.accept(s.accepted(1, DAY, same), 100).unwrap();
    assert_eq!(state.listed_since(&ETH, EXCHANGE), Some(100));
    assert_eq!(state.listed_since(&ETH, STRANGER), None);
    let btc = Chain::Bitcoin {
        network: crate::BtcNetwork::Mainnet,
    };
    assert_eq!(state.listed_since(&btc, "bc1qcold"), Some(100));
    // Version 2 adds STRANGER and drops EXCHANGE.
    let v2 = |v: &mut Value| {
        v["allowlist"][0]["address"] = json!(STRANGER);
    };
    state.accept(s.accepted(2, DAY, v2), 1000).unwrap();
    assert_eq!(state.listed_since(&ETH, STRANGER), Some(1000));
    assert_eq!(state.listed_since(&ETH, COLD), Some(100));
    // Still listed while version 1, which lists it, is in force.
    assert_eq!(state.listed_since(&ETH, EXCHANGE), Some(100));
    // Version 2 in force: EXCHANGE is forgotten once the state settles; listing it again
    // starts over.
    state.settle(1000 + DAY);
    assert_eq!(state.listed_since(&ETH, EXCHANGE), None);
    state.accept(s.accepted(3, DAY, same), 5000 + DAY).unwrap();
    assert_eq!(state.listed_since(&ETH, EXCHANGE), Some(5000 + DAY));
    assert_eq!(state.listed_since(&ETH, STRANGER), Some(1000));
}

#[test]
fn a_replaced_pending_version_takes_its_new_addresses_with_it() {
    let s = Signer::new();
    let mut state = PolicyState::new();
    state.accept(s.accepted(1, DAY, same), 0).unwrap();
    let adds = |v: &mut Value| {
        v["allowlist"][1]["address"] = json!(STRANGER);
    };
    state.accept(s.accepted(2, DAY, adds), 10).unwrap();
    assert_eq!(state.listed_since(&ETH, STRANGER), Some(10));
    state.accept(s.accepted(3, DAY, same), 20).unwrap();
    assert_eq!(state.listed_since(&ETH, STRANGER), None);
}

#[test]
fn stored_form_round_trips_and_is_checked() {
    let s = Signer::new();
    let mut state = PolicyState::new();
    state.accept(s.accepted(1, DAY, same), 100).unwrap();
    state.accept(s.accepted(2, DAY, same), 200).unwrap();
    let json = serde_json::to_value(&state).unwrap();
    assert_eq!(json["version"], 1);
    let back: PolicyState = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back.active_version(200), Some(1));
    assert_eq!(back.active_version(200 + DAY), Some(2));
    assert_eq!(back.listed_since(&ETH, EXCHANGE), Some(100));
    assert_eq!(back.pending(200).unwrap().accepted_at(), 200);

    let mut wrong = json.clone();
    wrong["version"] = json!(2);
    assert!(serde_json::from_value::<PolicyState>(wrong).is_err());
    let mut swapped = json.clone();
    swapped["pending"] = json["active"].clone();
    assert!(serde_json::from_value::<PolicyState>(swapped).is_err());
    let mut orphan = json.clone();
    orphan["active"] = Value::Null;
    assert!(serde_json::from_value::<PolicyState>(orphan).is_err());
    let mut upper = json.clone();
    upper["listed_since"][0]["address"] = json!(EXCHANGE.replace("0x", "0X"));
    assert!(serde_json::from_value::<PolicyState>(upper).is_err());
    let mut extra = json;
    extra["note"] = json!(1);
    assert!(serde_json::from_value::<PolicyState>(extra).is_err());
}
