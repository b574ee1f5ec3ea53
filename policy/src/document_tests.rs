use super::*;
use crate::testutil::{EXCHANGE, TOKEN, base, bytes, parse};
use proptest::prelude::*;
use serde_json::{Value, json};

fn rule0(v: &mut Value) -> &mut Value {
    &mut v["rules"][0]
}

fn with_rule(f: impl FnOnce(&mut Value)) -> Result<Policy, PolicyError> {
    let mut v = base();
    f(rule0(&mut v));
    parse(&v)
}

/// The field error of a refused document.
fn field_of(result: Result<Policy, PolicyError>) -> (Place, &'static str, Reason) {
    match result {
        Err(PolicyError::Field {
            place,
            field,
            reason,
        }) => (place, field, reason),
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn the_issue_example_parses() {
    let policy = parse(&base()).unwrap();
    assert_eq!(policy.version(), 1);
    assert_eq!(policy.allowlist().len(), 3);
    assert_eq!(policy.entry("btc-cold").unwrap().address(), "bc1qcold");
    let rule = &policy.rules()[0];
    assert_eq!(rule.name(), "small transfers");
    assert_eq!(rule.chain(), &Chain::Ethereum { chain_id: 1 });
    assert_eq!(rule.asset(), Some(&Asset::Native));
    assert_eq!(rule.max_amount(), Some(500));
    assert_eq!(
        rule.velocity(),
        Some(Velocity {
            window_secs: 86_400,
            max_amount: 2000
        })
    );
    assert_eq!(rule.hours_utc(), Some((8, 20)));
    assert_eq!(rule.days().unwrap().len(), 5);
    assert_eq!(rule.signers_include()[0].as_str(), "node-3");
    assert_eq!(rule.approvals(), 1);
    assert_eq!(rule.action(), Action::Allow);
    let deny = &policy.rules()[1];
    assert_eq!(deny.action(), Action::Deny);
    assert_eq!(deny.approvals(), 1);
}

#[test]
fn body_size_at_max_and_over() {
    let mut b = bytes(&base());
    b.resize(MAX_POLICY_LEN, b' ');
    assert!(Policy::parse(&b).is_ok());
    b.push(b' ');
    assert!(matches!(
        Policy::parse(&b),
        Err(PolicyError::BodyTooLarge { len, max: MAX_POLICY_LEN }) if len == MAX_POLICY_LEN + 1
    ));
}

#[test]
fn rule_count_at_max_and_over() {
    let mut v = base();
    let rules: Vec<Value> = (0..MAX_RULES)
        .map(|i| json!({"name": i.to_string(), "chain": "digest", "action": "deny"}))
        .collect();
    v["rules"] = Value::Array(rules);
    assert_eq!(parse(&v).unwrap().rules().len(), MAX_RULES);
    v["rules"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "one more", "chain": "digest", "action": "deny"}));
    assert!(matches!(
        parse(&v),
        Err(PolicyError::TooMany { what: "rules", count, max: MAX_RULES }) if count == MAX_RULES + 1
    ));
}

#[test]
fn allowlist_count_at_max_and_over() {
    let mut v = base();
    let entries: Vec<Value> = (0..MAX_ALLOWLIST)
        .map(|i| json!({"name": i.to_string(), "chain": "bitcoin:signet", "address": "a"}))
        .collect();
    v["allowlist"] = Value::Array(entries);
    v["rules"] = json!([{"name": "r", "chain": "digest", "action": "deny"}]);
    assert!(bytes(&v).len() < MAX_POLICY_LEN);
    assert_eq!(parse(&v).unwrap().allowlist().len(), MAX_ALLOWLIST);
    v["allowlist"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "x", "chain": "bitcoin:signet", "address": "a"}));
    assert!(matches!(
        parse(&v),
        Err(PolicyError::TooMany { what: "allowlist entries", count, .. }) if count == MAX_ALLOWLIST + 1
    ));
}

#[test]
fn names_at_max_and_over() {
    let at_max = "n".repeat(MAX_NAME_LEN);
    assert!(with_rule(|r| r["name"] = json!(at_max)).is_ok());
    let over = "n".repeat(MAX_NAME_LEN + 1);
    let (place, field, reason) = field_of(with_rule(|r| r["name"] = json!(over)));
    assert!(matches!(place, Place::Rule { index: 0, .. }));
    assert_eq!(field, "name");
    assert_eq!(reason, Reason::TooLong { max: MAX_NAME_LEN });
    for bad in ["", "tab\there", "é"] {
        assert_eq!(field_of(with_rule(|r| r["name"] = json!(bad))).1, "name");
    }
    let mut v = base();
    v["allowlist"][1]["name"] = json!("n".repeat(MAX_NAME_LEN + 1));
    let (place, field, _) = field_of(parse(&v));
    assert!(matches!(place, Place::Entry { index: 1, .. }));
    assert_eq!(field, "name");
}

#[test]
fn names_are_unique() {
    let mut v = base();
    v["rules"][1]["name"] = json!("small transfers");
    assert!(matches!(parse(&v), Err(PolicyError::DuplicateRule(n)) if n == "small transfers"));
    let mut v = base();
    v["allowlist"][1]["name"] = json!("exchange");
    assert!(matches!(parse(&v), Err(PolicyError::DuplicateEntry(n)) if n == "exchange"));
}

#[test]
fn a_misspelt_field_is_refused_at_every_level() {
    let mut top = base();
    top["effective_after"] = json!(0);
    let mut entry = base();
    entry["allowlist"][0]["adress"] = json!(EXCHANGE);
    let mut rule = base();
    rule["rules"][0]["aprovers"] = json!(["operator-0"]);
    let mut velocity = base();
    velocity["rules"][0]["velocity"]["window"] = json!(10);
    for v in [top, entry, rule, velocity] {
        assert!(matches!(parse(&v), Err(PolicyError::Body(_))), "{v}");
    }
    // A missing required field too.
    let mut v = base();
    v.as_object_mut().unwrap().remove("allowlist_delay_secs");
    assert!(matches!(parse(&v), Err(PolicyError::Body(_))));
}

#[test]
fn version_zero_and_delays() {
    let mut v = base();
    v["version"] = json!(0);
    assert!(matches!(parse(&v), Err(PolicyError::VersionZero)));
    for field in ["effective_after_secs", "allowlist_delay_secs"] {
        let mut v = base();
        v[field] = json!(MAX_DELAY_SECS);
        assert!(parse(&v).is_ok());
        v[field] = json!(MAX_DELAY_SECS + 1);
        let (place, f, reason) = field_of(parse(&v));
        assert_eq!((place, f), (Place::Document, field));
        assert!(matches!(reason, Reason::OutOfRange { .. }));
    }
}

#[test]
fn amounts_are_decimal_strings() {
    assert_eq!(
        with_rule(|r| r["max_amount"] = json!(u128::MAX.to_string()))
            .unwrap()
            .rules()[0]
            .max_amount(),
        Some(u128::MAX)
    );
    let over = "340282366920920938463463374607431768211456";
    for bad in ["+1", " 1", "0x10", "1e3", "", over] {
        let (_, field, reason) = field_of(with_rule(|r| r["max_amount"] = json!(bad)));
        assert_eq!(
            (field, reason),
            ("max_amount", Reason::NotAmount),
            "{bad:?}"
        );
        let (_, field, _) = field_of(with_rule(|r| r["velocity"]["max_amount"] = json!(bad)));
        assert_eq!(field, "velocity.max_amount");
    }
    // A JSON number is not a decimal string.
    assert!(matches!(
        with_rule(|r| r["max_amount"] = json!(500)),
        Err(PolicyError::Body(_))
    ));
}

#[test]
fn chains_addresses_and_assets() {
    let mut v = base();
    v["allowlist"][0]["chain"] = json!("ethereum:01");
    assert_eq!(field_of(parse(&v)).1, "chain");
    let mut v = base();
    v["allowlist"][0]["address"] = json!("0x1234");
    assert_eq!(field_of(parse(&v)).1, "address");
    let mut v = base();
    v["allowlist"][2]["address"] = json!("bc1 q");
    assert_eq!(field_of(parse(&v)).1, "address");
    let mut v = base();
    v["allowlist"][0]["chain"] = json!("digest");
    assert_eq!(field_of(parse(&v)).2, Reason::DigestAddress);
    assert_eq!(
        field_of(with_rule(|r| r["chain"] = json!("eth"))).1,
        "chain"
    );
    let upper = TOKEN.to_ascii_uppercase().replace("0X", "0x");
    let p = with_rule(|r| r["asset"] = json!(upper)).unwrap();
    assert_eq!(p.rules()[0].asset(), Some(&Asset::Erc20(TOKEN.to_owned())));
    // An ERC-20 asset only on an ethereum chain.
    let (_, field, _) = field_of(with_rule(|r| {
        r["chain"] = json!("bitcoin:mainnet");
        r["to"] = json!(["btc-cold"]);
        r["asset"] = json!(TOKEN);
    }));
    assert_eq!(field, "asset");
}

#[test]
fn destinations_must_be_listed_on_the_rule_chain() {
    let (_, field, reason) = field_of(with_rule(|r| r["to"] = json!(["nobody"])));
    assert_eq!(
        (field, reason),
        ("to", Reason::UnknownEntry("nobody".into()))
    );
    let (_, field, reason) = field_of(with_rule(|r| r["to"] = json!(["btc-cold"])));
    assert_eq!(field, "to");
    assert!(matches!(reason, Reason::WrongChain { .. }));
    let (_, _, reason) = field_of(with_rule(|r| r["to"] = json!(["exchange", "exchange"])));
    assert_eq!(reason, Reason::Duplicate("exchange".into()));
    assert_eq!(
        field_of(with_rule(|r| r["to"] = json!([]))).2,
        Reason::Empty
    );
}

#[test]
fn hours_and_days() {
    assert!(with_rule(|r| r["hours_utc"] = json!([0, 24])).is_ok());
    assert!(with_rule(|r| r["hours_utc"] = json!([23, 24])).is_ok());
    for bad in [json!([8, 8]), json!([20, 8]), json!([0, 25])] {
        assert_eq!(
            field_of(with_rule(|r| r["hours_utc"] = bad.clone())).2,
            Reason::Hours,
            "{bad}"
        );
    }
    for bad in [
        json!([8]),
        json!([8, 9, 10]),
        json!([-1, 8]),
        json!([8, 300]),
    ] {
        assert!(matches!(
            with_rule(|r| r["hours_utc"] = bad.clone()),
            Err(PolicyError::Body(_))
        ));
    }
    assert_eq!(
        field_of(with_rule(|r| r["days"] = json!(["mon", "mon"]))).2,
        Reason::Duplicate("Mon".into())
    );
    assert!(matches!(
        with_rule(|r| r["days"] = json!(["monday"])),
        Err(PolicyError::Body(_))
    ));
    // 1970-01-01 was a Thursday; 1970-01-05 a Monday.
    assert_eq!(Weekday::of(0), Weekday::Thu);
    assert_eq!(Weekday::of(4 * 86_400 - 1), Weekday::Sun);
    assert_eq!(Weekday::of(4 * 86_400), Weekday::Mon);
}

#[test]
fn approvals_and_approvers() {
    assert_eq!(
        with_rule(|r| r["approvals"] = json!(3)).unwrap().rules()[0].approvals(),
        3
    );
    let (_, field, reason) = field_of(with_rule(|r| r["approvals"] = json!(4)));
    assert_eq!(field, "approvals");
    assert_eq!(
        reason,
        Reason::Approvals {
            approvals: 4,
            approvers: 3
        }
    );
    assert_eq!(
        field_of(with_rule(|r| r["approvals"] = json!(0))).1,
        "approvals"
    );
    let no_list = with_rule(|r| {
        r.as_object_mut().unwrap().remove("approvers");
        r["approvals"] = json!(7);
    });
    assert_eq!(no_list.unwrap().rules()[0].approvals(), 7);
    let (_, field, reason) = field_of(with_rule(|r| {
        r.as_object_mut().unwrap().remove("approvals");
    }));
    assert_eq!((field, reason), ("approvals", Reason::Missing));
    let (_, field, reason) = field_of(with_rule(|r| {
        r["approvers"] = json!(["operator 0", "operator-1"])
    }));
    assert_eq!(field, "approvers");
    assert!(matches!(reason, Reason::Id(_)));
    let (_, _, reason) = field_of(with_rule(|r| {
        r["approvers"] = json!(["operator-0", "operator-0"]);
    }));
    assert_eq!(reason, Reason::Duplicate("operator-0".into()));
    assert_eq!(
        field_of(with_rule(|r| r["signers_include"] = json!(["node/3"]))).1,
        "signers_include"
    );
    assert_eq!(
        field_of(with_rule(|r| r["keys"] = json!(["a b"]))).1,
        "keys"
    );
    assert_eq!(
        field_of(with_rule(|r| r["keys"] = json!([]))).2,
        Reason::Empty
    );
    assert!(matches!(
        with_rule(|r| r["action"] = json!("allow ")),
        Err(PolicyError::Body(_))
    ));
}

#[test]
fn velocity_window_bounds() {
    for (window, ok) in [
        (0, false),
        (1, true),
        (MAX_WINDOW_SECS, true),
        (MAX_WINDOW_SECS + 1, false),
    ] {
        let result = with_rule(|r| r["velocity"]["window_secs"] = json!(window));
        if ok {
            assert!(result.is_ok(), "{window}");
        } else {
            assert_eq!(field_of(result).1, "velocity.window_secs", "{window}");
        }
    }
}

#[test]
fn a_digest_rule_has_no_transfer_conditions() {
    for (field, value) in [
        ("asset", json!("native")),
        ("to", json!(["exchange"])),
        ("max_amount", json!("1")),
        ("velocity", json!({"window_secs": 1, "max_amount": "1"})),
    ] {
        let mut v = base();
        v["rules"][1][field] = value;
        let (place, f, reason) = field_of(parse(&v));
        assert!(matches!(place, Place::Rule { index: 1, .. }));
        assert_eq!((f, reason), (field, Reason::NotOnDigest));
    }
    let mut v = base();
    v["rules"][1]["keys"] = json!(["signer"]);
    v["rules"][1]["approvals"] = json!(2);
    v["rules"][1]["action"] = json!("allow");
    assert!(parse(&v).is_ok());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Policy::parse(&data);
    }

    #[test]
    fn arbitrary_rule_values_never_panic(
        name in ".{0,80}",
        chain in "(ethereum|bitcoin|digest)(:[a-z0-9]{0,22})?",
        amount in "[+0-9a-f ]{0,45}",
        from in 0u8..=30,
        to in 0u8..=30,
    ) {
        let _ = with_rule(|r| {
            r["name"] = json!(name);
            r["chain"] = json!(chain);
            r["max_amount"] = json!(amount);
            r["hours_utc"] = json!([from, to]);
        });
    }
}
