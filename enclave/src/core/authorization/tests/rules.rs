//! The policy in force as the node applies it: raw digests only under a digest rule,
//! velocity counted over every signing set's spends, a version that waits for its delay,
//! and mandatory signers.

use super::*;

#[test]
fn a_raw_digest_is_signed_only_under_a_digest_rule() {
    let f = Fixture::new();
    let digest = || Payload::Digest("ab".repeat(32));
    assert_eq!(f.sign(digest(), &[0, 1, 2]).unwrap_err(), no_rule());
    let f = Fixture::with_policy(&policy_with_rules(json!([
        {"name": "any ethereum", "chain": "ethereum:1", "approvals": 1,
         "action": "allow"},
        {"name": "digests", "keys": ["treasury"], "chain": "digest", "approvals": 1,
         "action": "allow"},
    ])));
    let allowed = allowed_by(f.sign(digest(), &[0]), "digests");
    assert_eq!(allowed.spend.chain, Chain::Digest);
    assert_eq!(allowed.spend.amount, 0);
    assert!(allowed.spend.to.is_empty());
    // Not 32 bytes: refused before the policy.
    assert!(matches!(
        f.sign(Payload::Digest("ab".repeat(31)), &[0]).unwrap_err(),
        Denied::Payload {
            what: "digest (32 bytes, hex)",
            ..
        }
    ));
}

// Velocity.

/// 2000 wei a day to the exchange with one approval, more with two.
fn daily_limit() -> Value {
    policy_with_rules(json!([
        {"name": "daily", "chain": "ethereum:1", "asset": "native", "to": ["exchange"],
         "velocity": {"window_secs": DAY, "max_amount": "2000"}, "approvals": 1,
         "action": "allow"},
        {"name": "over daily", "chain": "ethereum:1", "asset": "native", "to": ["exchange"],
         "approvals": 2, "action": "allow"},
    ]))
}

#[test]
fn spends_of_every_signing_set_count_against_one_limit() {
    // Node 3's view. With 2-of-3, {1,2} and {1,3} each spend 1000; as a party of the key,
    // node 3 recorded both, the one it did not sign included.
    let mut f = Fixture::with_policy(&daily_limit());
    let mut recorded = Vec::new();
    for set in [[1, 2], [1, 3]] {
        f.signers = nodes(&set);
        let allowed = allowed_by(f.sign(native(1, EXCHANGE, 1000), &[0]), "daily");
        f.ledger.record(allowed.spend.clone()).unwrap();
        recorded.push(allowed.spend);
    }
    // {2,3} would take the key past its limit: the request falls through to the next rule.
    f.signers = nodes(&[2, 3]);
    let third = f.authority(sign(native(1, EXCHANGE, 1000)), &[0]);
    assert_eq!(f.check(&third).unwrap_err(), pending("over daily", 1, 2));
    let third_twice = f.approved(third.request_bytes().to_vec(), &[0, 1]);
    allowed_by(f.check(&third_twice), "over daily");
    // At the limit exactly, and one wei past it.
    allowed_by(f.sign(native(1, EXCHANGE, 0), &[0]), "daily");
    assert_eq!(
        f.sign(native(1, EXCHANGE, 1), &[0]).unwrap_err(),
        pending("over daily", 1, 2)
    );
    // What only node 3's own signatures would allow: the limit three times over.
    let every_set = std::mem::take(&mut f.ledger);
    f.ledger.record(recorded[1].clone()).unwrap();
    allowed_by(f.check(&third), "daily");
    f.ledger = every_set;
    // A spend just outside the window no longer counts; one at its edge does.
    for (at_secs, counted) in [(NOW - DAY - 1, false), (NOW - DAY, true)] {
        let mut first = recorded[0].clone();
        first.at_secs = at_secs;
        f.ledger = Ledger::new();
        f.ledger.record(first).unwrap();
        f.ledger.record(recorded[1].clone()).unwrap();
        if counted {
            assert_eq!(f.check(&third).unwrap_err(), pending("over daily", 1, 2));
        } else {
            allowed_by(f.check(&third), "daily");
        }
    }
}

#[test]
fn a_request_already_in_the_ledger_is_not_counted_twice() {
    let mut f = Fixture::with_policy(&daily_limit());
    let first = f.authority(sign(native(1, EXCHANGE, 1000)), &[0]);
    let spend = allowed_by(f.check(&first), "daily").spend;
    f.ledger.record(spend).unwrap();
    let second = f.authority(sign(native(1, EXCHANGE, 1000)), &[0]);
    let spend = allowed_by(f.check(&second), "daily").spend;
    f.ledger.record(spend).unwrap();
    // The first request again (another share of it, a retried session): 1000 + 1000.
    allowed_by(f.check(&first), "daily");
    allowed_by(f.check(&second), "daily");
    // A new request of the same amount: 3000.
    let third = f.authority(sign(native(1, EXCHANGE, 1000)), &[0]);
    assert_eq!(f.check(&third).unwrap_err(), pending("over daily", 1, 2));
}

// The policy in force.

#[test]
fn no_policy_in_force_refuses() {
    let f = Fixture::bare();
    assert_eq!(
        f.sign(native(1, EXCHANGE, 10), &[0, 1, 2]).unwrap_err(),
        Denied::NoPolicy
    );
    assert_eq!(
        f.sign(Payload::Digest("ab".repeat(32)), &[0, 1, 2])
            .unwrap_err(),
        Denied::NoPolicy
    );
}

#[test]
fn a_policy_accepted_but_not_yet_effective_is_not_applied() {
    let mut f = Fixture::new();
    let mut next = policy_with_rules(json!([
        {"name": "digests", "chain": "digest", "approvals": 1, "action": "allow"}
    ]));
    next["version"] = json!(2);
    let effective = f.accept_policy(&next, NOW);
    assert_eq!(effective, NOW + DAY);
    f.at(NOW + DAY - 1);
    let digest = || Payload::Digest("ab".repeat(32));
    assert_eq!(f.sign(digest(), &[0, 1, 2]).unwrap_err(), no_rule());
    allowed_by(f.sign(native(1, EXCHANGE, 10), &[0]), "small native");
    f.at(NOW + DAY);
    let allowed = allowed_by(f.sign(digest(), &[0]), "digests");
    assert_eq!(allowed.policy_version, 2);
    assert_eq!(
        f.sign(native(1, EXCHANGE, 10), &[0]).unwrap_err(),
        refused(None, Refusal::NoRule, 2)
    );
}

#[test]
fn a_rule_naming_mandatory_signers_refuses_a_set_without_them() {
    let mut f = Fixture::with_policy(&policy_with_rules(json!([
        {"name": "with node-3", "chain": "ethereum:1", "to": ["exchange"],
         "signers_include": ["node-3"], "approvals": 1, "action": "allow"},
        {"name": "anything", "chain": "ethereum:1", "approvals": 1, "action": "allow"},
    ])));
    // The later rule that would allow it does not get the request: no fall-through.
    assert_eq!(
        f.sign(native(1, EXCHANGE, 10), &[0, 1, 2]).unwrap_err(),
        refused(
            Some("with node-3"),
            Refusal::SignersMissing {
                missing: nodes(&[3])
            },
            1
        )
    );
    for set in [[1, 3], [3, 2]] {
        f.signers = nodes(&set);
        allowed_by(f.sign(native(1, EXCHANGE, 10), &[0]), "with node-3");
    }
}
