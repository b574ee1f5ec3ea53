//! Measurement sets name their provider: `{"nitro": {"<pcr>": "<hex>"}}`. Sets written
//! before they did, `{"<pcr>": "<hex>"}`, still parse and mean Nitro: sealed copies of
//! such manifests exist on running nodes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use attestation::{Measurements, nitro};
use manifest::{Manifest, ManifestError, Provider};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A 48-byte PCR value, every byte `b`.
fn v(b: u8) -> String {
    hex::encode([b; 48])
}

/// The code PCRs of one image plus a per-node PCR4, untagged.
fn pcrs(instance: u8) -> Value {
    json!({"0": v(1), "1": v(2), "2": v(3), "4": v(instance)})
}

fn body_with(provider: &str, sets: &[Vec<Value>]) -> Vec<u8> {
    let nodes: Vec<Value> = sets
        .iter()
        .enumerate()
        .map(|(i, sets)| {
            json!({"id": format!("node-{}", i + 1), "provider": provider,
                   "address": format!("10.0.0.{}:7100", i + 1), "measurements": sets})
        })
        .collect();
    serde_json::to_vec(&json!({
        "version": 1,
        "threshold": 1,
        "operators": [{"id": "alice", "public_key": "ab".repeat(32)}],
        "nodes": nodes,
    }))
    .unwrap()
}

fn parse(sets: &[Vec<Value>]) -> Result<Manifest, ManifestError> {
    Manifest::parse(&body_with("aws-nitro", sets))
}

fn nitro_pcrs(set: &Measurements) -> BTreeMap<u8, Vec<u8>> {
    match set {
        Measurements::Nitro(set) => set.pcrs().clone(),
        other => panic!("not a Nitro set: {other:?}"),
    }
}

#[test]
fn an_untagged_set_is_nitro_and_equals_its_tagged_form() {
    let old = parse(&[vec![pcrs(10)]]).unwrap();
    for tag in ["nitro", "aws-nitro"] {
        let new = parse(&[vec![json!({ tag: pcrs(10) })]]).unwrap();
        let (a, b) = (&old.nodes()[0], &new.nodes()[0]);
        assert_eq!(a.measurements(), b.measurements(), "{tag}");
        assert_eq!(b.measurements()[0].provider(), attestation::Provider::Nitro);
    }
    let set = &old.nodes()[0].measurement_sets().unwrap()[0];
    assert_eq!(set.provider(), attestation::Provider::Nitro);
    assert_eq!(nitro_pcrs(set)[&4], vec![10; 48]);
    // Both forms in one manifest, and in one node during a rollout.
    let m = parse(&[
        vec![pcrs(10), json!({"nitro": {"8": v(7), "4": v(10)}})],
        vec![json!({"nitro": pcrs(11)})],
    ])
    .unwrap();
    assert_eq!(m.nodes()[0].measurements().len(), 2);
    assert_eq!(
        nitro_pcrs(&m.nodes()[0].measurements()[1])
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        [4, 8]
    );
}

#[test]
fn the_node_provider_names_hardware_or_the_simulator() {
    for (name, expected) in [
        ("aws-nitro", Provider::Tee(attestation::Provider::Nitro)),
        ("nitro", Provider::Tee(attestation::Provider::Nitro)),
        ("sim", Provider::Sim),
    ] {
        let m = Manifest::parse(&body_with(name, &[vec![json!({"nitro": pcrs(1)})]])).unwrap();
        assert_eq!(m.nodes()[0].provider(), expected, "{name}");
    }
    for name in ["gcp", "Nitro", "", "aws-nitro "] {
        let err = Manifest::parse(&body_with(name, &[vec![pcrs(1)]])).unwrap_err();
        assert!(
            matches!(&err, ManifestError::Body(msg) if msg.contains("unknown provider")),
            "{name:?}: {err}"
        );
    }
}

#[test]
fn a_tagged_set_obeys_the_same_rules() {
    // An unknown provider is named in the refusal.
    let err = parse(&[vec![pcrs(1), json!({"tdx": pcrs(1)})]]).unwrap_err();
    assert!(
        matches!(&err, ManifestError::MeasurementProvider { node, set: 1, name }
            if node == "node-1" && name == "tdx"),
        "{err}"
    );
    // Empty, a bad entry, a PCR named twice, the code not pinned: as untagged.
    let err = parse(&[vec![json!({"nitro": {}})]]).unwrap_err();
    assert!(
        matches!(err, ManifestError::EmptyMeasurementSet { set: 0, .. }),
        "{err}"
    );
    let err = parse(&[vec![json!({"nitro": {"0": v(1), "1": v(2), "2": "zz"}})]]).unwrap_err();
    assert!(
        matches!(&err, ManifestError::Pcr { index, .. } if index == "2"),
        "{err}"
    );
    let body =
        String::from_utf8(body_with("aws-nitro", &[vec![json!({"nitro": pcrs(1)})]])).unwrap();
    let doubled = body.replacen(
        &format!("\"4\":\"{}\"", v(1)),
        &format!("\"4\":\"{}\",\"4\":\"{}\"", v(1), v(2)),
        1,
    );
    assert_ne!(body, doubled);
    let err = Manifest::parse(doubled.as_bytes()).unwrap_err();
    assert!(
        matches!(&err, ManifestError::Pcr { index, reason, .. } if index == "4" && reason.contains("twice")),
        "{err}"
    );
    let err = parse(&[vec![json!({"nitro": {"4": v(1)}})]]).unwrap_err();
    assert!(
        matches!(err, ManifestError::CodeNotPinned { set: 0, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("PCR0, PCR1 and PCR2, or PCR8"),
        "{err}"
    );
}

#[test]
fn a_set_names_one_provider_or_none() {
    for set in [
        // Two providers' entries in one set.
        json!({"nitro": pcrs(1), "aws-nitro": pcrs(1)}),
        // A tag beside untagged entries, either way round.
        json!({"nitro": pcrs(1), "0": v(1)}),
        json!({"0": v(1), "nitro": pcrs(1)}),
        // Values that are neither text nor a set.
        json!({"nitro": [v(1)]}),
        json!({"0": 1}),
        json!({"nitro": {"0": {"1": v(1)}}}),
    ] {
        let err = parse(&[vec![set.clone()]]).unwrap_err();
        assert!(matches!(err, ManifestError::Body(_)), "{set}: {err}");
    }
}

/// The identity rule does not care how a set was written: a tagged and an untagged
/// Nitro set that one document could match collide, and tell apart when they differ.
#[test]
fn the_identity_rule_spans_both_forms() {
    let err = parse(&[vec![pcrs(10)], vec![json!({"nitro": pcrs(10)})]]).unwrap_err();
    match err {
        ManifestError::IndistinguishableNodes {
            first,
            second,
            shared: attestation::Overlap::Nitro(nitro::Overlap { shared }),
            ..
        } => {
            assert_eq!((first.as_str(), second.as_str()), ("node-1", "node-2"));
            assert_eq!(shared, vec![0, 1, 2, 4]);
        }
        other => panic!("expected an overlap, got {other}"),
    }
    parse(&[vec![pcrs(10)], vec![json!({"nitro": pcrs(11)})]]).unwrap();
}
