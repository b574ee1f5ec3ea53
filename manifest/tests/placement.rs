//! The manifest's placement fields (`roots`, `placement`, each node's `domain`) and the
//! placement rule over them: no provider, and no operator domain when the manifest names
//! them, may hold a signing quorum of a key unless the manifest says so.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use manifest::{Domain, Manifest, ManifestError, PlacementError, check_placement};
use proptest::prelude::*;
use serde_json::{Value, json};

/// A 48-byte PCR value, every byte `b`.
fn v(b: u8) -> String {
    hex::encode([b; 48])
}

/// A simulated Nitro node `node-<i>` with its own PCR4.
fn nitro(i: usize) -> Value {
    json!({"id": format!("node-{i}"), "provider": "sim", "address": format!("10.0.0.{i}:7100"),
           "measurements": [{"nitro": {"0": v(1), "1": v(2), "2": v(3), "4": v(i as u8)}}]})
}

/// A Confidential Space node `node-<i>` with its own instance id.
fn gcp(i: usize) -> Value {
    json!({"id": format!("node-{i}"), "provider": "sim", "address": format!("10.0.1.{i}:7100"),
           "measurements": [{"gcp-cs": {
               "image_digest": format!("sha256:{}", "ab".repeat(32)),
               "project_id": "custody", "zone": "europe-west4-a",
               "instance_id": format!("{}", 1000 + i)}}]})
}

fn with_domain(mut node: Value, domain: &str) -> Value {
    node["domain"] = json!(domain);
    node
}

fn body(nodes: Vec<Value>, extra: Value) -> Vec<u8> {
    let mut body = json!({
        "version": 1,
        "threshold": 1,
        "operators": [{"id": "alice", "public_key": "ab".repeat(32)}],
        "nodes": nodes,
    });
    for (k, value) in extra.as_object().unwrap() {
        body[k] = value.clone();
    }
    serde_json::to_vec(&body).unwrap()
}

fn parse(nodes: Vec<Value>, extra: Value) -> Result<Manifest, ManifestError> {
    Manifest::parse(&body(nodes, extra))
}

fn ids(parties: &[usize]) -> Vec<String> {
    parties.iter().map(|i| format!("node-{i}")).collect()
}

fn one_provider(allow: bool) -> Value {
    json!({"placement": {"allow_provider_quorum": allow}})
}

#[test]
fn manifests_without_the_fields_parse_as_before() {
    let m = parse((1..=3).map(nitro).collect(), json!({})).unwrap();
    assert!(m.roots().is_empty());
    assert!(!m.placement().allow_provider_quorum());
    assert!(!m.placement().allow_domain_quorum());
    for node in m.nodes() {
        assert_eq!(node.domain(), None);
        // A simulated node counts as the provider its sets name.
        assert_eq!(node.tee_provider(), attestation::Provider::Nitro);
    }
    let mut hardware = nitro(1);
    hardware["provider"] = json!("aws-nitro");
    let m = parse(vec![hardware], json!({})).unwrap();
    assert_eq!(m.nodes()[0].tee_provider(), attestation::Provider::Nitro);
}

#[test]
fn roots_name_known_providers_once_with_a_sha256() {
    let hash = "9a".repeat(32);
    for name in ["nitro", "aws-nitro"] {
        let m = parse(vec![nitro(1)], json!({"roots": {name: hash}})).unwrap();
        assert_eq!(m.roots(), [(attestation::Provider::Nitro, [0x9a; 32])]);
    }
    // Each provider's pin, in document order, under either name of Confidential Space.
    let google = hex::encode(attestation::gcp::GOOGLE_CS_ROOT_SHA256);
    for name in ["gcp-cs", "gcp-confidential-space"] {
        let m = parse(
            vec![nitro(1)],
            json!({"roots": {name: google, "nitro": hash}}),
        )
        .unwrap();
        let (first, second) = (m.roots()[0], m.roots()[1]);
        assert_eq!(first.0, attestation::Provider::GcpCs);
        assert_eq!(first.1, attestation::gcp::GOOGLE_CS_ROOT_SHA256);
        assert_eq!(second.0, attestation::Provider::Nitro);
    }
    // Either case of hex, as operator keys.
    let m = parse(vec![nitro(1)], json!({"roots": {"nitro": "9A".repeat(32)}})).unwrap();
    assert_eq!(m.roots()[0].1, [0x9a; 32]);
    assert!(
        parse(vec![nitro(1)], json!({"roots": {}}))
            .unwrap()
            .roots()
            .is_empty()
    );

    let refused = |roots: Value| parse(vec![nitro(1)], json!({ "roots": roots })).unwrap_err();
    let err = refused(json!({"azure": hash}));
    assert!(
        matches!(&err, ManifestError::RootProvider { name } if name == "azure"),
        "{err}"
    );
    // Exactly 64 hex characters: 63 and 65 are refused, and so is non-hex.
    for bad in [
        "9a".repeat(32)[1..].to_owned(),
        "9a".repeat(32) + "0",
        "zz".repeat(32),
    ] {
        let err = refused(json!({ "nitro": bad }));
        assert!(matches!(err, ManifestError::RootHash { .. }), "{err}");
        assert!(err.to_string().contains("64 hex characters"), "{err}");
    }
    // One provider under two names is one provider twice.
    let err = refused(json!({"nitro": hash, "aws-nitro": "00".repeat(32)}));
    assert!(matches!(err, ManifestError::DuplicateRoot { .. }), "{err}");
    assert_eq!(err.to_string(), "`roots` names the root of nitro twice");
    let err = refused(json!({"gcp-confidential-space": hash, "gcp-cs": hash}));
    assert_eq!(err.to_string(), "`roots` names the root of gcp-cs twice");
    // Not a map of strings.
    for bad in [
        json!([hash]),
        json!({"nitro": 7}),
        json!("nitro"),
        json!(null),
    ] {
        let err = refused(bad);
        assert!(matches!(err, ManifestError::Body(_)), "{err}");
    }
}

#[test]
fn placement_flags_default_false_and_refuse_unknown_fields() {
    let m = parse(vec![nitro(1)], json!({"placement": {}})).unwrap();
    assert_eq!(m.placement(), Default::default());
    let m = parse(
        vec![nitro(1)],
        json!({"placement": {"allow_domain_quorum": true}}),
    )
    .unwrap();
    assert!(m.placement().allow_domain_quorum());
    assert!(!m.placement().allow_provider_quorum());
    for bad in [
        json!({"allow_provider_quorum": true, "allow_any": true}),
        json!({"allow_provider_quorum": "yes"}),
        json!(null),
        json!(true),
    ] {
        let err = parse(vec![nitro(1)], json!({ "placement": bad })).unwrap_err();
        assert!(matches!(err, ManifestError::Body(_)), "{bad}: {err}");
    }
}

#[test]
fn a_domain_is_an_id() {
    let longest = "d".repeat(ids::MAX_ID_LEN);
    let m = parse(vec![with_domain(nitro(1), &longest)], json!({})).unwrap();
    assert_eq!(m.nodes()[0].domain(), Some(longest.as_str()));
    for bad in ["", "ops a", "ops/a", &"d".repeat(ids::MAX_ID_LEN + 1)] {
        let err = parse(vec![with_domain(nitro(1), bad)], json!({})).unwrap_err();
        assert!(
            matches!(&err, ManifestError::Domain { node, domain, .. } if node == "node-1" && domain == bad),
            "{bad:?}: {err}"
        );
    }
    let mut numeric = nitro(1);
    numeric["domain"] = json!(7);
    assert!(matches!(
        parse(vec![numeric], json!({})).unwrap_err(),
        ManifestError::Body(_)
    ));
}

#[test]
fn one_provider_must_say_it_may_hold_a_quorum() {
    let m = parse((1..=3).map(nitro).collect(), json!({})).unwrap();
    let err = check_placement(&m, &ids(&[1, 2, 3]), 2).unwrap_err();
    assert_eq!(
        err,
        PlacementError::ProviderQuorum {
            provider: attestation::Provider::Nitro,
            holds: 3,
            shares: 3,
            threshold: 2,
        }
    );
    assert!(
        err.to_string().starts_with(
            "provider nitro would hold 3 of the key's 3 shares, and 2 of them can sign: "
        ),
        "{err}"
    );
    assert!(err.to_string().contains("placement.allow_provider_quorum"));
    // Even 3-of-3: the provider holds every share.
    assert!(check_placement(&m, &ids(&[1, 2, 3]), 3).is_err());

    let m = parse((1..=3).map(nitro).collect(), one_provider(true)).unwrap();
    for t in 1..=3 {
        check_placement(&m, &ids(&[1, 2, 3]), t).unwrap();
    }
    check_placement(&m, &ids(&[3, 1]), 2).unwrap();
    // Saying false is saying nothing.
    let m = parse((1..=3).map(nitro).collect(), one_provider(false)).unwrap();
    assert!(check_placement(&m, &ids(&[1, 2, 3]), 2).is_err());
}

#[test]
fn parties_are_nodes_of_the_manifest_each_once_and_the_threshold_fits() {
    let m = parse((1..=3).map(nitro).collect(), one_provider(true)).unwrap();
    assert_eq!(
        check_placement(&m, &ids(&[1, 4]), 1),
        Err(PlacementError::UnknownParty {
            party: "node-4".into()
        })
    );
    assert_eq!(
        check_placement(&m, &ids(&[1, 2, 1]), 2),
        Err(PlacementError::DuplicateParty {
            party: "node-1".into()
        })
    );
    for (parties, t) in [(vec![1, 2], 0), (vec![1, 2], 3), (vec![], 1)] {
        assert_eq!(
            check_placement(&m, &ids(&parties), t),
            Err(PlacementError::Threshold {
                threshold: t,
                parties: parties.len()
            })
        );
    }
    // A hostile party name is printed cut and escaped.
    let hostile = format!("{}\n", "x".repeat(1000));
    let err = check_placement(&m, &[hostile], 1).unwrap_err();
    assert!(!err.to_string().contains('\n'));
    assert!(err.to_string().len() < 200, "{err}");
}

#[test]
fn no_operator_domain_may_hold_a_quorum_once_the_manifest_names_domains() {
    let nodes = vec![
        with_domain(nitro(1), "ops-a"),
        with_domain(nitro(2), "ops-a"),
        with_domain(nitro(3), "ops-b"),
        with_domain(nitro(4), "ops-b"),
    ];
    let m = parse(nodes.clone(), one_provider(true)).unwrap();
    check_placement(&m, &ids(&[1, 2, 3, 4]), 3).unwrap();
    let err = check_placement(&m, &ids(&[1, 2, 3, 4]), 2).unwrap_err();
    assert_eq!(
        err,
        PlacementError::DomainQuorum {
            domain: Domain::Named("ops-a".into()),
            holds: 2,
            shares: 4,
            threshold: 2,
        }
    );
    assert!(
        err.to_string().starts_with(
            "operator domain ops-a would hold 2 of the key's 4 shares, and 2 of them can sign: "
        ),
        "{err}"
    );
    assert!(err.to_string().contains("placement.allow_domain_quorum"));
    // 2-of-2 across the domains passes; within one it does not.
    check_placement(&m, &ids(&[1, 3]), 2).unwrap();
    assert!(check_placement(&m, &ids(&[3, 4]), 2).is_err());
    // The manifest may lift the rule for domains, and only for what it names.
    let m = parse(
        nodes,
        json!({"placement": {"allow_provider_quorum": true, "allow_domain_quorum": true}}),
    )
    .unwrap();
    check_placement(&m, &ids(&[1, 2, 3, 4]), 2).unwrap();
    let m = parse(
        vec![
            with_domain(nitro(1), "ops-a"),
            with_domain(nitro(2), "ops-b"),
        ],
        json!({"placement": {"allow_domain_quorum": true}}),
    )
    .unwrap();
    assert!(matches!(
        check_placement(&m, &ids(&[1, 2]), 2),
        Err(PlacementError::ProviderQuorum { .. })
    ));
}

#[test]
fn a_node_without_a_domain_is_a_domain_of_its_own() {
    let m = parse(
        vec![
            with_domain(nitro(1), "ops-a"),
            with_domain(nitro(2), "ops-a"),
            nitro(3),
            nitro(4),
        ],
        one_provider(true),
    )
    .unwrap();
    // node-3 and node-4 are not one domain: 2-of-2 on them passes.
    check_placement(&m, &ids(&[3, 4]), 2).unwrap();
    check_placement(&m, &ids(&[1, 3, 4]), 2).unwrap();
    // 1-of-n: any one node signs alone, and it is a domain.
    assert_eq!(
        check_placement(&m, &ids(&[3, 4]), 1),
        Err(PlacementError::DomainQuorum {
            domain: Domain::Own {
                node: "node-3".into()
            },
            holds: 1,
            shares: 2,
            threshold: 1,
        })
    );
    assert!(check_placement(&m, &ids(&[1, 2, 3]), 2).is_err());
    // A domain named like a node is not that node's own.
    let m = parse(
        vec![
            with_domain(nitro(1), "node-2"),
            nitro(2),
            with_domain(nitro(3), "ops"),
        ],
        one_provider(true),
    )
    .unwrap();
    check_placement(&m, &ids(&[1, 2]), 2).unwrap();
    // Without any domain in the manifest, the domain rule does not apply.
    let m = parse((1..=3).map(nitro).collect(), one_provider(true)).unwrap();
    check_placement(&m, &ids(&[1, 2, 3]), 1).unwrap();
}

/// Two providers: the shapes the issue and the README name.
#[test]
fn across_two_providers_only_a_threshold_above_either_share_count_passes() {
    let m = parse(vec![nitro(1), nitro(2), gcp(3), gcp(4)], json!({})).unwrap();
    assert_eq!(m.nodes()[2].tee_provider(), attestation::Provider::GcpCs);
    check_placement(&m, &ids(&[1, 2, 3, 4]), 3).unwrap();
    let err = check_placement(&m, &ids(&[1, 2, 3, 4]), 2).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "provider nitro would hold 2 of the key's 4 shares, and 2 of them can sign: "
        ),
        "{err}"
    );
    check_placement(&m, &ids(&[1, 3]), 2).unwrap();
    assert!(check_placement(&m, &ids(&[1, 3]), 1).is_err());
    assert!(check_placement(&m, &ids(&[1, 2, 3]), 2).is_err());
    check_placement(&m, &ids(&[1, 2, 3]), 3).unwrap();

    let m = parse(
        vec![nitro(1), nitro(2), nitro(3), gcp(4), gcp(5), gcp(6)],
        json!({}),
    )
    .unwrap();
    check_placement(&m, &ids(&[1, 2, 3, 4, 5, 6]), 4).unwrap();
    let err = check_placement(&m, &ids(&[1, 2, 3, 4, 5, 6]), 3).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("provider nitro would hold 3 of the key's 6 shares"),
        "{err}"
    );
    // Uneven, 2 Nitro and 1 Confidential Space: 2-of-3 is refused, 3-of-3 passes.
    assert!(check_placement(&m, &ids(&[1, 2, 4]), 2).is_err());
    check_placement(&m, &ids(&[1, 2, 4]), 3).unwrap();
}

proptest! {
    /// Any assignment of up to 8 Nitro nodes to up to 3 domains (or none), any party set
    /// and threshold: with the provider rule lifted, refused exactly when one domain (a
    /// domainless node being its own) holds `t` or more of the parties; with the domain
    /// rule lifted too, never.
    #[test]
    fn the_domain_rule_counts_each_domain(
        domains in proptest::collection::vec(proptest::option::of(0u8..3), 1..=8),
        chosen in proptest::collection::vec(any::<bool>(), 8),
        t in 1u16..=8,
    ) {
        let nodes: Vec<Value> = domains
            .iter()
            .enumerate()
            .map(|(i, d)| match d {
                Some(d) => with_domain(nitro(i + 1), &format!("ops-{d}")),
                None => nitro(i + 1),
            })
            .collect();
        let parties: Vec<usize> = (1..=domains.len()).filter(|i| chosen[i - 1]).collect();
        prop_assume!(!parties.is_empty() && usize::from(t) <= parties.len());
        let m = parse(nodes.clone(), one_provider(true)).unwrap();
        let names_domains = domains.iter().any(Option::is_some);
        let largest = if names_domains {
            let mut counts = std::collections::BTreeMap::new();
            for p in &parties {
                let key = match domains[p - 1] {
                    Some(d) => format!("ops-{d}"),
                    None => format!("own node-{p}"),
                };
                *counts.entry(key).or_insert(0usize) += 1;
            }
            counts.into_values().max().unwrap()
        } else {
            0
        };
        let decided = check_placement(&m, &ids(&parties), t);
        if largest >= usize::from(t) {
            match decided {
                Err(PlacementError::DomainQuorum { holds, shares, threshold, .. }) => {
                    prop_assert_eq!(holds, largest);
                    prop_assert_eq!(shares, parties.len());
                    prop_assert_eq!(threshold, t);
                }
                other => prop_assert!(false, "not refused: {:?}", other),
            }
        } else {
            prop_assert_eq!(decided, Ok(()));
        }
        let lifted = parse(
            nodes,
            json!({"placement": {"allow_provider_quorum": true, "allow_domain_quorum": true}}),
        )
        .unwrap();
        prop_assert_eq!(check_placement(&lifted, &ids(&parties), t), Ok(()));
    }
}
