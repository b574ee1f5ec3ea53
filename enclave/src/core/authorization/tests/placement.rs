//! A new key's party set against the manifest's placement rule, as each participant
//! checks it itself on its own manifest, whatever the coordinator decided: no number of
//! approvals lifts it. (`enclave/tests/in_process.rs` has a coordinator that skipped it.)

use super::*;
use manifest::{Domain, PlacementError};

fn placement_refused(denied: Denied) -> PlacementError {
    match denied {
        Denied::Placement(e) => e,
        other => panic!("not refused by placement: {other}"),
    }
}

#[test]
fn one_provider_holding_the_quorum_is_refused_unless_the_manifest_allows_it() {
    let f = Fixture::placed(json!({}), [None, None, None]);
    // Every operator approved it: approvals do not lift the rule.
    let every = f.authority(create_key(2, &[]), &[0, 1, 2]);
    let denied = f.create(&every, "treasury", &[1, 2, 3], 2).unwrap_err();
    assert!(
        denied.to_string().starts_with(
            "the key's placement is refused: provider nitro would hold 3 of the key's 3 \
             shares, and 2 of them can sign"
        ),
        "{denied}"
    );
    assert_eq!(
        placement_refused(denied),
        PlacementError::ProviderQuorum {
            provider: attestation::Provider::Nitro,
            holds: 3,
            shares: 3,
            threshold: 2,
        }
    );
    // Refused before the approvals are counted: one that could never be created does
    // not wait for more.
    let one = f.authority(create_key(2, &[1, 2]), &[0]);
    assert!(matches!(
        f.create(&one, "treasury", &[1, 2], 2).unwrap_err(),
        Denied::Placement(PlacementError::ProviderQuorum { holds: 2, .. })
    ));
    // The same request under a manifest that allows it.
    let allowed = Fixture::bare();
    let every = allowed.authority(create_key(2, &[]), &[0, 1]);
    allowed.create(&every, "treasury", &[1, 2, 3], 2).unwrap();
}

#[test]
fn an_operator_domain_holding_the_quorum_is_refused() {
    let f = Fixture::placed(
        json!({"allow_provider_quorum": true}),
        [Some("ops-a"), Some("ops-a"), Some("ops-b")],
    );
    let every = f.authority(create_key(2, &[]), &[0, 1]);
    let refused = placement_refused(f.create(&every, "treasury", &[1, 2, 3], 2).unwrap_err());
    assert_eq!(
        refused,
        PlacementError::DomainQuorum {
            domain: Domain::Named("ops-a".into()),
            holds: 2,
            shares: 3,
            threshold: 2,
        }
    );
    // 3-of-3 needs ops-b too; 2-of-2 across the domains needs both.
    let all = f.authority(create_key(3, &[]), &[0, 1]);
    f.create(&all, "treasury", &[1, 2, 3], 3).unwrap();
    let across = f.authority(create_key(2, &[1, 3]), &[0, 1]);
    f.create(&across, "treasury", &[3, 1], 2).unwrap();
    let within = f.authority(create_key(2, &[1, 2]), &[0, 1]);
    assert!(matches!(
        f.create(&within, "treasury", &[1, 2], 2).unwrap_err(),
        Denied::Placement(PlacementError::DomainQuorum { .. })
    ));
    // A node without a domain is its own: 1-of-2 on node-1 and node-3 is refused (either
    // signs alone), naming the first holder in order.
    let f = Fixture::placed(
        json!({"allow_provider_quorum": true}),
        [Some("ops-a"), Some("ops-a"), None],
    );
    let single = f.authority(create_key(1, &[1, 3]), &[0, 1]);
    let refused = placement_refused(f.create(&single, "treasury", &[1, 3], 1).unwrap_err());
    assert!(
        matches!(&refused, PlacementError::DomainQuorum { domain: Domain::Named(d), holds: 1, .. } if d == "ops-a"),
        "{refused}"
    );
    // Allowed by the manifest: accepted.
    let f = Fixture::placed(
        json!({"allow_provider_quorum": true, "allow_domain_quorum": true}),
        [Some("ops-a"), Some("ops-a"), Some("ops-b")],
    );
    let every = f.authority(create_key(2, &[]), &[0, 1]);
    f.create(&every, "treasury", &[1, 2, 3], 2).unwrap();
}
