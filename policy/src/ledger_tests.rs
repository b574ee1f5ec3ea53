use super::*;
use crate::testutil::{DAY, EXCHANGE};
use proptest::prelude::*;

pub(crate) fn spend(n: u32, amount: u128, at_secs: u64) -> Spend {
    let mut request = [0u8; 32];
    request[..4].copy_from_slice(&n.to_be_bytes());
    Spend {
        request,
        key_id: KeyId::new("treasury").unwrap(),
        chain: Chain::Ethereum { chain_id: 1 },
        asset: Asset::Native,
        to: vec![EXCHANGE.to_owned()],
        amount,
        at_secs,
    }
}

#[test]
fn recording_is_idempotent_by_request() {
    let mut ledger = Ledger::new();
    assert_eq!(ledger.record(spend(1, 10, 100)).unwrap(), Recorded::New);
    // The same request again, even claiming another amount or time, counts nothing.
    assert_eq!(
        ledger.record(spend(1, 99, 200)).unwrap(),
        Recorded::AlreadyRecorded
    );
    assert_eq!(ledger.len(), 1);
    assert!(ledger.contains(&spend(1, 0, 0).request));
    assert!(!ledger.contains(&spend(2, 0, 0).request));
    assert_eq!(ledger.window_sum(|_| true, 0, 1000).unwrap(), 10);
    assert_eq!(ledger.get(&spend(1, 0, 0).request).unwrap().at_secs, 100);
}

#[test]
fn window_bounds_are_inclusive() {
    let mut ledger = Ledger::new();
    for (n, at) in [(1, 99), (2, 100), (3, 150), (4, 200), (5, 201)] {
        ledger.record(spend(n, 1, at)).unwrap();
    }
    assert_eq!(ledger.window_sum(|_| true, 100, 200).unwrap(), 3);
    assert_eq!(
        ledger.window_sum(|s| s.at_secs != 150, 100, 200).unwrap(),
        2
    );
    let mut huge = Ledger::new();
    huge.record(spend(1, u128::MAX, 0)).unwrap();
    huge.record(spend(2, 1, 0)).unwrap();
    assert_eq!(huge.window_sum(|_| true, 0, 0), Err(LedgerError::Overflow));
}

#[test]
fn the_cap_is_an_error_never_a_silent_drop() {
    let mut ledger = Ledger::new();
    for n in 0..MAX_SPENDS as u32 {
        ledger.record(spend(n, 1, 10)).unwrap();
    }
    assert_eq!(ledger.len(), MAX_SPENDS);
    assert_eq!(
        ledger.record(spend(MAX_SPENDS as u32, 1, 10)),
        Err(LedgerError::Full { max: MAX_SPENDS })
    );
    // A spend already held is still recognised when full.
    assert_eq!(
        ledger.record(spend(0, 1, 10)).unwrap(),
        Recorded::AlreadyRecorded
    );
    assert_eq!(
        ledger.window_sum(|_| true, 0, 10).unwrap(),
        MAX_SPENDS as u128
    );
    // Pruning frees room.
    assert_eq!(ledger.prune(10 + RETENTION_SECS + 1), MAX_SPENDS);
    assert!(ledger.record(spend(MAX_SPENDS as u32, 1, 10)).is_ok());
}

#[test]
fn destinations_are_bounded() {
    let mut ledger = Ledger::new();
    let mut s = spend(1, 1, 1);
    s.to = vec![EXCHANGE.to_owned(); MAX_TRANSFERS];
    assert!(ledger.record(s.clone()).is_ok());
    s.request[31] = 1;
    s.to.push(EXCHANGE.to_owned());
    assert!(matches!(
        ledger.record(s),
        Err(LedgerError::TooManyDestinations { count, .. }) if count == MAX_TRANSFERS + 1
    ));
}

#[test]
fn prune_keeps_exactly_the_retention() {
    let mut ledger = Ledger::new();
    let now = 100 * DAY;
    ledger.record(spend(1, 1, now - RETENTION_SECS)).unwrap();
    ledger
        .record(spend(2, 1, now - RETENTION_SECS - 1))
        .unwrap();
    ledger.record(spend(3, 1, now)).unwrap();
    assert_eq!(ledger.prune(now), 1);
    assert!(ledger.contains(&spend(1, 0, 0).request));
    assert!(!ledger.contains(&spend(2, 0, 0).request));
    // Early in time nothing underflows.
    assert_eq!(Ledger::new().prune(0), 0);
}

#[test]
fn merge_is_a_union_where_the_earlier_time_wins() {
    let mut mine = Ledger::new();
    mine.record(spend(1, 10, 500)).unwrap();
    mine.record(spend(2, 20, 300)).unwrap();
    let theirs = vec![spend(1, 10, 400), spend(2, 20, 600), spend(3, 30, 700)];
    assert_eq!(mine.merge(theirs.clone()).unwrap(), 2);
    assert_eq!(mine.len(), 3);
    assert_eq!(mine.get(&spend(1, 0, 0).request).unwrap().at_secs, 400);
    assert_eq!(mine.get(&spend(2, 0, 0).request).unwrap().at_secs, 300);
    // Merging the same again changes nothing and counts nothing twice.
    assert_eq!(mine.merge(theirs).unwrap(), 0);
    assert_eq!(mine.window_sum(|_| true, 0, 1000).unwrap(), 60);
    // Two peers' ledgers merged into each other agree.
    let mut other = Ledger::new();
    other.merge(mine.spends().cloned()).unwrap();
    assert_eq!(other, mine);
}

#[test]
fn merge_beyond_the_cap_changes_nothing() {
    let mut mine = Ledger::new();
    for n in 0..(MAX_SPENDS - 1) as u32 {
        mine.record(spend(n, 1, 10)).unwrap();
    }
    let before = mine.clone();
    // Exactly reaching the cap is fine...
    let mut at_cap = mine.clone();
    assert_eq!(
        at_cap
            .merge(vec![spend(0, 1, 5), spend(MAX_SPENDS as u32, 1, 10)])
            .unwrap(),
        2
    );
    assert_eq!(at_cap.len(), MAX_SPENDS);
    // ...one more refuses the whole merge, including the time update before it.
    let err = mine
        .merge(vec![
            spend(0, 1, 5),
            spend(MAX_SPENDS as u32, 1, 10),
            spend(MAX_SPENDS as u32 + 1, 1, 10),
        ])
        .unwrap_err();
    assert_eq!(err, LedgerError::Full { max: MAX_SPENDS });
    assert_eq!(mine, before);
}

#[test]
fn stored_form_is_versioned_and_checked() {
    let mut ledger = Ledger::new();
    ledger.record(spend(1, u128::MAX, 5)).unwrap();
    ledger.record(spend(2, 7, 6)).unwrap();
    let json = serde_json::to_value(&ledger).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["spends"][0]["amount"], u128::MAX.to_string());
    assert_eq!(json["spends"][0]["chain"], "ethereum:1");
    let back: Ledger = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, ledger);
    let mut wrong = json.clone();
    wrong["version"] = 2.into();
    assert!(serde_json::from_value::<Ledger>(wrong).is_err());
    let mut twice = json.clone();
    let first = twice["spends"][0].clone();
    twice["spends"].as_array_mut().unwrap().push(first);
    assert!(serde_json::from_value::<Ledger>(twice).is_err());
    let mut unknown = json;
    unknown["spends"][0]["note"] = "x".into();
    assert!(serde_json::from_value::<Ledger>(unknown).is_err());
}

#[test]
fn stored_form_at_cap_and_over() {
    let mut ledger = Ledger::new();
    for n in 0..MAX_SPENDS as u32 {
        ledger.record(spend(n, 1, 10)).unwrap();
    }
    let mut json = serde_json::to_value(&ledger).unwrap();
    assert_eq!(
        serde_json::from_value::<Ledger>(json.clone())
            .unwrap()
            .len(),
        MAX_SPENDS
    );
    let extra = serde_json::to_value(spend(MAX_SPENDS as u32, 1, 10)).unwrap();
    json["spends"].as_array_mut().unwrap().push(extra);
    let err = serde_json::from_value::<Ledger>(json).unwrap_err();
    assert!(err.to_string().contains("4097 spends"), "{err}");
}

proptest! {
    /// Whatever order and repetition peers' records arrive in, every spend counts once.
    #[test]
    fn merge_counts_each_request_once(
        records in proptest::collection::vec((0u32..20, 1u128..1000, 0u64..100), 0..60)
    ) {
        let spends: Vec<Spend> = records.iter().map(|(n, a, t)| spend(*n, *a, *t)).collect();
        let mut merged = Ledger::new();
        merged.merge(spends.clone()).unwrap();
        let mut one_by_one = Ledger::new();
        for s in spends.iter().rev() {
            one_by_one.merge(vec![s.clone()]).unwrap();
        }
        // The first record seen of each request decides its amount; times take the
        // earliest. So compare requests and times only.
        let key = |l: &Ledger| l.spends().map(|s| (s.request, s.at_secs)).collect::<Vec<_>>();
        prop_assert_eq!(key(&merged), key(&one_by_one));
        let distinct: std::collections::BTreeSet<u32> = records.iter().map(|r| r.0).collect();
        prop_assert_eq!(merged.len(), distinct.len());
    }
}
