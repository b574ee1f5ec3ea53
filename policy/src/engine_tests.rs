use super::*;
use crate::testutil::{COLD, DAY, EXCHANGE, STRANGER, TOKEN, base, parse};
use crate::{Recorded, Transfer, Weekday};
use ids::KeyId;
use serde_json::{Value, json};

/// A Monday, 00:00 UTC.
const MONDAY: u64 = 21_004 * DAY;
/// Monday 10:00 UTC: inside the base rule's hours and days.
const NOW: u64 = MONDAY + 10 * 3_600;
/// When the base allowlist was first accepted: long enough ago.
const LISTED: u64 = NOW - 2 * DAY;

fn key(name: &str) -> KeyId {
    KeyId::new(name).unwrap()
}

fn node(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

fn eth(key_id: &str, to: &str, amount: u128, fee: u128) -> Facts {
    Facts::transaction(
        key(key_id),
        Chain::Ethereum { chain_id: 1 },
        Asset::Native,
        vec![Transfer::new(to, amount)],
        fee,
    )
    .unwrap()
}

/// What a test varies; the defaults satisfy the base policy's first rule.
struct Case {
    now: u64,
    facts: Facts,
    approvals: Vec<&'static str>,
    signers: Vec<NodeId>,
    ledger: Ledger,
    listed: Option<u64>,
    request: u8,
}

impl Case {
    fn new(facts: Facts) -> Self {
        Case {
            now: NOW,
            facts,
            approvals: vec!["operator-0"],
            signers: vec![node("node-1"), node("node-3")],
            ledger: Ledger::new(),
            listed: Some(LISTED),
            request: 1,
        }
    }

    fn eval(&self, policy: &Policy) -> Decision {
        let approvals: BTreeSet<String> = self.approvals.iter().map(|s| s.to_string()).collect();
        let listed = self.listed;
        let listed_since = move |_: &Chain, _: &str| listed;
        evaluate(
            policy,
            &Context {
                now_secs: self.now,
                facts: &self.facts,
                approvals: &approvals,
                signers: &self.signers,
                ledger: &self.ledger,
                listed_since: &listed_since,
                request: [self.request; 32],
            },
        )
    }

    /// The spend this request records when signed.
    fn spend(&self) -> Spend {
        Spend {
            request: [self.request; 32],
            key_id: self.facts.key_id().clone(),
            chain: *self.facts.chain(),
            asset: self.facts.asset().clone(),
            to: self.facts.destinations(),
            amount: self.facts.amount().unwrap(),
            at_secs: self.now,
        }
    }
}

fn allow(rule: &str) -> Decision {
    Decision::Allow { rule: rule.into() }
}

fn no_rule() -> Decision {
    Decision::Refused {
        rule: None,
        reason: Refusal::NoRule,
    }
}

fn policy_with(f: impl FnOnce(&mut Value)) -> Policy {
    let mut v = base();
    f(&mut v);
    parse(&v).unwrap()
}

#[test]
fn a_request_within_every_condition_is_allowed() {
    let policy = parse(&base()).unwrap();
    let case = Case::new(eth("treasury", EXCHANGE, 400, 100));
    assert_eq!(case.eval(&policy), allow("small transfers"));
    // The destination compares case-insensitively.
    let case = Case::new(eth("treasury", &EXCHANGE.replace("0x", "0X"), 400, 100));
    assert_eq!(case.eval(&policy), allow("small transfers"));
}

#[test]
fn each_condition_that_fails_makes_the_rule_not_match() {
    let policy = parse(&base()).unwrap();
    // Another key, another destination, over the limit (fee included), another chain.
    for facts in [
        eth("hot", EXCHANGE, 1, 0),
        eth("treasury", COLD, 1, 0),
        eth("treasury", STRANGER, 1, 0),
        eth("treasury", EXCHANGE, 500, 1),
        Facts::transaction(
            key("treasury"),
            Chain::Ethereum { chain_id: 5 },
            Asset::Native,
            vec![Transfer::new(EXCHANGE, 1)],
            0,
        )
        .unwrap(),
        Facts::transaction(
            key("treasury"),
            Chain::Ethereum { chain_id: 1 },
            Asset::Erc20(TOKEN.into()),
            vec![Transfer::new(EXCHANGE, 1)],
            0,
        )
        .unwrap(),
    ] {
        assert_eq!(
            Case::new(facts.clone()).eval(&policy),
            no_rule(),
            "{facts:?}"
        );
    }
    // At the per-transaction limit exactly, fee included.
    assert_eq!(
        Case::new(eth("treasury", EXCHANGE, 499, 1)).eval(&policy),
        allow("small transfers")
    );
    // Every destination must be listed, not just one.
    let two = Facts::transaction(
        key("treasury"),
        Chain::Ethereum { chain_id: 1 },
        Asset::Native,
        vec![Transfer::new(EXCHANGE, 1), Transfer::new(STRANGER, 1)],
        0,
    )
    .unwrap();
    assert_eq!(Case::new(two).eval(&policy), no_rule());
    // A transaction with no transfer does not satisfy a `to` condition.
    let none = Facts::transaction(
        key("treasury"),
        Chain::Ethereum { chain_id: 1 },
        Asset::Native,
        vec![],
        1,
    )
    .unwrap();
    assert_eq!(Case::new(none).eval(&policy), no_rule());
}

#[test]
fn the_allowlist_delay_boundary() {
    let policy = parse(&base()).unwrap();
    let mut case = Case::new(eth("treasury", EXCHANGE, 1, 0));
    case.listed = Some(NOW - DAY + 1);
    assert_eq!(case.eval(&policy), no_rule());
    case.listed = Some(NOW - DAY);
    assert_eq!(case.eval(&policy), allow("small transfers"));
    case.listed = None;
    assert_eq!(case.eval(&policy), no_rule());
    // Listed "in the future" (a clock that went back): not usable, no underflow.
    case.listed = Some(u64::MAX);
    assert_eq!(case.eval(&policy), no_rule());
}

#[test]
fn hours_and_days_boundaries() {
    let policy = parse(&base()).unwrap();
    let mut case = Case::new(eth("treasury", EXCHANGE, 1, 0));
    for (now, ok) in [
        (MONDAY + 8 * 3_600 - 1, false),
        (MONDAY + 8 * 3_600, true),
        (MONDAY + 20 * 3_600 - 1, true),
        (MONDAY + 20 * 3_600, false),
        // Friday 10:00 is in, Saturday and Sunday 10:00 are not.
        (MONDAY + 4 * DAY + 10 * 3_600, true),
        (MONDAY + 5 * DAY + 10 * 3_600, false),
        (MONDAY - DAY + 10 * 3_600, false),
    ] {
        case.now = now;
        let expected = if ok {
            allow("small transfers")
        } else {
            no_rule()
        };
        assert_eq!(
            case.eval(&policy),
            expected,
            "{:?} {}",
            Weekday::of(now),
            now % DAY
        );
    }
}

#[test]
fn a_deny_rule_refuses_by_name() {
    let policy = policy_with(|v| {
        let rules = v["rules"].as_array_mut().unwrap();
        rules.insert(
            0,
            json!({"name": "never to cold", "chain": "ethereum:1", "to": ["cold"], "action": "deny"}),
        );
        rules.push(
            json!({"name": "anything", "chain": "ethereum:1", "approvals": 1, "action": "allow"}),
        );
    });
    assert_eq!(
        Case::new(eth("treasury", COLD, 1, 0)).eval(&policy),
        Decision::Refused {
            rule: Some("never to cold".into()),
            reason: Refusal::Denied
        }
    );
    assert_eq!(
        Case::new(eth("treasury", STRANGER, 1, 0)).eval(&policy),
        allow("anything")
    );
}

#[test]
fn raw_digests_are_refused_by_default() {
    let digest = Facts::digest(key("treasury"));
    // No digest rule: refused, even with a rule that would take any ethereum request.
    let policy = policy_with(|v| {
        v["rules"] =
            json!([{"name": "anything", "chain": "ethereum:1", "approvals": 1, "action": "allow"}]);
    });
    assert_eq!(Case::new(digest.clone()).eval(&policy), no_rule());
    // The base policy's digest rule denies.
    assert_eq!(
        Case::new(digest.clone()).eval(&parse(&base()).unwrap()),
        Decision::Refused {
            rule: Some("no digests".into()),
            reason: Refusal::Denied
        }
    );
    // An allow digest rule for one key.
    let policy = policy_with(|v| {
        v["rules"] = json!([
            {"name": "attest", "keys": ["signer"], "chain": "digest", "approvals": 2, "action": "allow"}
        ]);
    });
    assert_eq!(Case::new(digest).eval(&policy), no_rule());
    let mut case = Case::new(Facts::digest(key("signer")));
    assert!(matches!(
        case.eval(&policy),
        Decision::Pending {
            approvals: 1,
            approvals_needed: 2,
            ..
        }
    ));
    case.approvals = vec!["operator-0", "operator-1"];
    assert_eq!(case.eval(&policy), allow("attest"));
}

#[test]
fn only_listed_approvers_count() {
    let policy = policy_with(|v| v["rules"][0]["approvals"] = json!(2));
    let mut case = Case::new(eth("treasury", EXCHANGE, 1, 0));
    case.approvals = vec!["operator-0", "operator-7", "intruder"];
    assert_eq!(
        case.eval(&policy),
        Decision::Pending {
            rule: "small transfers".into(),
            approvals: 1,
            approvals_needed: 2
        }
    );
    case.approvals = vec!["operator-0", "operator-2"];
    assert_eq!(case.eval(&policy), allow("small transfers"));
    // With no `approvers`, every verified operator counts.
    let policy = policy_with(|v| {
        v["rules"][0]["approvals"] = json!(3);
        v["rules"][0].as_object_mut().unwrap().remove("approvers");
    });
    case.approvals = vec!["operator-0", "operator-7", "operator-9"];
    assert_eq!(case.eval(&policy), allow("small transfers"));
}

#[test]
fn mandatory_signers_refuse_without_falling_through() {
    let policy = policy_with(|v| {
        v["rules"].as_array_mut().unwrap().push(
            json!({"name": "anything", "chain": "ethereum:1", "approvals": 1, "action": "allow"}),
        );
    });
    let mut case = Case::new(eth("treasury", EXCHANGE, 1, 0));
    case.signers = vec![node("node-1"), node("node-2")];
    let decision = case.eval(&policy);
    assert_eq!(
        decision,
        Decision::Refused {
            rule: Some("small transfers".into()),
            reason: Refusal::SignersMissing {
                missing: vec![node("node-3")]
            }
        }
    );
    if let Decision::Refused { reason, .. } = decision {
        assert_eq!(
            reason.to_string(),
            "the signing set lacks the mandatory signers node-3"
        );
    }
}

/// Two rules to the exchange: up to 2000 a day with one approval, beyond with two.
fn tiered() -> Policy {
    policy_with(|v| {
        v["rules"] = json!([
            {"name": "daily", "keys": ["treasury"], "chain": "ethereum:1", "asset": "native",
             "to": ["exchange"], "velocity": {"window_secs": DAY, "max_amount": "2000"},
             "approvals": 1, "action": "allow"},
            {"name": "large", "keys": ["treasury"], "chain": "ethereum:1", "to": ["exchange"],
             "approvals": 2, "action": "allow"}
        ]);
    })
}

#[test]
fn over_velocity_falls_through_to_a_rule_needing_more_approvals() {
    let policy = tiered();
    let mut ledger = Ledger::new();
    let mut first = Case::new(eth("treasury", EXCHANGE, 1500, 0));
    first.now = NOW - DAY;
    ledger.record(first.spend()).unwrap();
    let mut case = Case::new(eth("treasury", EXCHANGE, 500, 0));
    case.ledger = ledger;
    case.request = 2;
    // The window is [now - window, now]: the spend at its start still counts...
    assert_eq!(case.eval(&policy), allow("daily"));
    case.facts = eth("treasury", EXCHANGE, 501, 0);
    assert_eq!(
        case.eval(&policy),
        Decision::Pending {
            rule: "large".into(),
            approvals: 1,
            approvals_needed: 2
        }
    );
    // ...and one second later it has left the window.
    case.now = NOW + 1;
    assert_eq!(case.eval(&policy), allow("daily"));
    // Spends of another key or to a destination outside the rule do not count.
    let mut other = Case::new(eth("hot", EXCHANGE, 1900, 0));
    other.request = 9;
    let mut to_cold = Case::new(eth("treasury", COLD, 1900, 0));
    to_cold.request = 10;
    case.now = NOW;
    case.ledger = Ledger::new();
    case.ledger.record(other.spend()).unwrap();
    case.ledger.record(to_cold.spend()).unwrap();
    case.facts = eth("treasury", EXCHANGE, 2000, 0);
    assert_eq!(case.eval(&policy), allow("daily"));
}

/// With 2-of-3, each signing set is seen by two nodes only; the ledger every party of
/// the key records into (and catches up from) is what counts, so three requests under
/// three different signing sets count once each, and together.
#[test]
fn velocity_holds_across_signing_sets() {
    let policy = tiered();
    let sets = [
        vec![node("node-1"), node("node-2")],
        vec![node("node-1"), node("node-3")],
        vec![node("node-2"), node("node-3")],
    ];
    let mut ledger = Ledger::new();
    let mut decisions = Vec::new();
    for (i, signers) in sets.iter().enumerate() {
        let mut case = Case::new(eth("treasury", EXCHANGE, 800, 0));
        case.now = NOW + i as u64 * 60;
        case.signers = signers.clone();
        case.request = i as u8 + 1;
        case.ledger = ledger.clone();
        let decision = case.eval(&policy);
        if decision == allow("daily") {
            // Recorded at every party before any share is contributed.
            assert_eq!(ledger.record(case.spend()).unwrap(), Recorded::New);
        }
        decisions.push(decision);
    }
    assert_eq!(decisions[0], allow("daily"));
    assert_eq!(decisions[1], allow("daily"));
    // 800 + 800 + 800 > 2000: the third needs the second approval, whoever signs it.
    assert_eq!(
        decisions[2],
        Decision::Pending {
            rule: "large".into(),
            approvals: 1,
            approvals_needed: 2
        }
    );
    // A request already recorded is not counted twice when it is evaluated again (a
    // retry, or another party evaluating it after the record arrived).
    let mut again = Case::new(eth("treasury", EXCHANGE, 800, 0));
    again.now = NOW + 60;
    again.request = 2;
    again.ledger = ledger.clone();
    assert_eq!(again.eval(&policy), allow("daily"));
    // A ledger that is merged from peers in any order reaches the same decision.
    let mut node3 = Ledger::new();
    let spends: Vec<Spend> = ledger.spends().cloned().collect();
    node3.merge(spends.into_iter().rev()).unwrap();
    let mut third = Case::new(eth("treasury", EXCHANGE, 800, 0));
    third.now = NOW + 120;
    third.request = 3;
    third.ledger = node3;
    assert_eq!(third.eval(&policy), decisions[2]);
}

#[test]
fn velocity_counts_the_same_asset_only() {
    let policy = policy_with(|v| {
        v["rules"][0]["asset"] = json!(TOKEN);
        v["rules"][0].as_object_mut().unwrap().remove("max_amount");
        v["rules"][0]["velocity"]["max_amount"] = json!("100");
        v["rules"][0]["max_fee"] = json!("1000");
    });
    let token = |amount, request| {
        let facts = Facts::transaction(
            key("treasury"),
            Chain::Ethereum { chain_id: 1 },
            Asset::Erc20(TOKEN.into()),
            vec![Transfer::new(EXCHANGE, amount)],
            0,
        )
        .unwrap();
        let mut case = Case::new(facts);
        case.request = request;
        case
    };
    let mut native = Case::new(eth("treasury", EXCHANGE, 1_000_000, 0));
    native.request = 50;
    let mut case = token(60, 2);
    case.ledger.record(native.spend()).unwrap();
    case.ledger.record(token(40, 1).spend()).unwrap();
    assert_eq!(case.eval(&policy), allow("small transfers"));
    case.facts = token(61, 2).facts;
    assert_eq!(case.eval(&policy), no_rule());
}

proptest::proptest! {
    /// Whatever amounts are requested, in whatever order and at whatever times within a
    /// day, what the one-approval rule lets through in any window never exceeds its
    /// velocity limit.
    #[test]
    fn velocity_is_never_exceeded(
        requests in proptest::collection::vec((1u128..1500, 0u64..(3 * DAY)), 1..40)
    ) {
        let policy = tiered();
        let mut ledger = Ledger::new();
        let mut requests = requests;
        requests.sort_by_key(|r| r.1);
        for (i, (amount, offset)) in requests.iter().enumerate() {
            let mut case = Case::new(eth("treasury", EXCHANGE, *amount, 0));
            case.now = NOW + offset;
            case.request = i as u8;
            case.ledger = ledger.clone();
            if case.eval(&policy) == allow("daily") {
                ledger.record(case.spend()).unwrap();
            }
        }
        for s in ledger.spends() {
            let window = ledger
                .window_sum(|_| true, s.at_secs.saturating_sub(DAY), s.at_secs)
                .unwrap();
            proptest::prop_assert!(window <= 2000, "{window}");
        }
    }
}

/// Gas is paid in ether whatever a transfer moves: a rule bounds it with `max_fee`, and
/// an allow rule without one never takes a token transfer.
#[test]
fn gas_is_bounded_by_the_rule_that_allows_it() {
    let token_rule = |max_fee: Option<&str>| {
        policy_with(|v| {
            v["rules"] = json!([{"name": "tokens", "chain": "ethereum:1", "asset": TOKEN,
                "max_amount": "100", "approvals": 1, "action": "allow"}]);
            if let Some(fee) = max_fee {
                v["rules"][0]["max_fee"] = json!(fee);
            }
        })
    };
    let transfer = |gas| {
        Case::new(
            Facts::transaction(
                key("treasury"),
                Chain::Ethereum { chain_id: 1 },
                Asset::Erc20(TOKEN.into()),
                vec![Transfer::new(EXCHANGE, 10)],
                0,
            )
            .unwrap()
            .with_network_fee(gas),
        )
    };
    assert_eq!(transfer(1).eval(&token_rule(None)), no_rule());
    assert_eq!(
        transfer(1000).eval(&token_rule(Some("1000"))),
        allow("tokens")
    );
    assert_eq!(transfer(1001).eval(&token_rule(Some("1000"))), no_rule());
}

/// Limits compare base units of one asset, and a key spends on one bitcoin network.
#[test]
fn limits_name_their_asset_and_keys_their_network() {
    let refused = |rules: serde_json::Value| {
        let mut v = json!({"version": 1, "effective_after_secs": 0, "allowlist_delay_secs": 0,
            "allowlist": [], "rules": rules});
        let _ = &mut v;
        Policy::parse(&serde_json::to_vec(&v).unwrap())
            .unwrap_err()
            .to_string()
    };
    assert!(
        refused(
            json!([{"name": "r", "chain": "ethereum:1", "max_amount": "1",
        "approvals": 1, "action": "allow"}])
        )
        .contains("asset")
    );
    assert!(
        refused(json!([{"name": "r", "chain": "bitcoin:mainnet",
        "approvals": 1, "action": "allow"}]))
        .contains("keys")
    );
    assert!(refused(json!([
        {"name": "m", "keys": ["k"], "chain": "bitcoin:mainnet", "approvals": 2, "action": "allow"},
        {"name": "t", "keys": ["k"], "chain": "bitcoin:testnet", "approvals": 1, "action": "allow"}
    ])).contains("another rule names on bitcoin:mainnet"));
    assert!(
        refused(
            json!([{"name": "r", "keys": ["k"], "chain": "bitcoin:mainnet",
        "max_fee": "1", "approvals": 1, "action": "allow"}])
        )
        .contains("ethereum")
    );
}
