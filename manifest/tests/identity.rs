//! A node is known by what its attestation document proves: the manifest refuses sets that
//! do not pin the code, and nodes whose sets could both match one document (a compromised
//! node could then claim to be the other).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use attestation::{Overlap, Unpinned, nitro};
use manifest::{MAX_NODES, Manifest, ManifestError};
use serde_json::{Value, json};

/// A 48-byte PCR value, every byte `b`.
fn v(b: u8) -> String {
    hex::encode([b; 48])
}

/// The code PCRs of one image plus a PCR4 (parent instance).
fn image(code: u8, instance: u8) -> Value {
    json!({"0": v(code), "1": v(code + 1), "2": v(code + 2), "4": v(instance)})
}

fn body(nodes: &[Vec<Value>]) -> Vec<u8> {
    let nodes: Vec<Value> = nodes
        .iter()
        .enumerate()
        .map(|(i, sets)| {
            json!({"id": format!("node-{}", i + 1), "provider": "aws-nitro",
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

fn parse(nodes: &[Vec<Value>]) -> Result<Manifest, ManifestError> {
    Manifest::parse(&body(nodes))
}

/// The refusal for two nodes, as (first, first_set, second, second_set, shared).
fn overlap(err: ManifestError) -> (String, usize, String, usize, Vec<u8>) {
    match err {
        ManifestError::IndistinguishableNodes {
            first,
            first_set,
            second,
            second_set,
            shared,
        } => match shared {
            Overlap::Nitro(overlap) => (first, first_set, second, second_set, overlap.shared),
            other => panic!("expected Nitro's overlap, got {other}"),
        },
        other => panic!("expected an overlap refusal, got {other}"),
    }
}

#[test]
fn identical_sets_refused() {
    // One image on every node and nothing per node: what `custody sim` wrote before.
    let code_only = json!({"0": v(1), "1": v(2), "2": v(3)});
    let err = parse(&[vec![code_only.clone()], vec![code_only.clone()]]).unwrap_err();
    let text = err.to_string();
    assert_eq!(
        overlap(err),
        ("node-1".into(), 0, "node-2".into(), 0, vec![0, 1, 2])
    );
    assert!(
        text.contains("could match the same attestation document"),
        "{text}"
    );
    assert!(text.contains("PCR4"), "{text}");

    // Identical sets with a PCR4 too: the PCR4 is not per node.
    let err = parse(&[vec![image(1, 9)], vec![image(1, 9)]]).unwrap_err();
    assert_eq!(overlap(err).4, vec![0, 1, 2, 4]);
}

#[test]
fn sets_that_differ_only_where_one_does_not_pin_are_refused() {
    // node-2 does not pin PCR4, so node-1's document (its PCR4 included) matches both.
    let loose = json!({"0": v(1), "1": v(2), "2": v(3)});
    let err = parse(&[vec![image(1, 9)], vec![loose.clone()]]).unwrap_err();
    assert_eq!(
        overlap(err),
        ("node-1".into(), 0, "node-2".into(), 0, vec![0, 1, 2])
    );
    // Either order.
    let err = parse(&[vec![loose], vec![image(1, 9)]]).unwrap_err();
    assert_eq!(overlap(err).4, vec![0, 1, 2]);

    // PCR3 on one, PCR4 on the other: no index pinned by both differs.
    let by_role = json!({"0": v(1), "1": v(2), "2": v(3), "3": v(7)});
    let err = parse(&[vec![image(1, 9)], vec![by_role]]).unwrap_err();
    assert_eq!(overlap(err).4, vec![0, 1, 2]);

    // Signed images: PCR8 on one set, PCR0-2 on the other, both with the same PCR4.
    let signed = json!({"8": v(5), "4": v(9)});
    let err = parse(&[vec![image(1, 9)], vec![signed]]).unwrap_err();
    assert_eq!(overlap(err).4, vec![4]);
}

#[test]
fn several_sets_per_node_checked_pairwise() {
    // During a rollout each node accepts the old and the new image. node-2's second set
    // forgot its PCR4: it overlaps node-1's first set.
    let err = parse(&[
        vec![image(1, 10), image(20, 10)],
        vec![image(1, 11), json!({"0": v(20), "1": v(21), "2": v(22)})],
        vec![image(1, 12), image(20, 12)],
    ])
    .unwrap_err();
    assert_eq!(
        overlap(err),
        ("node-1".into(), 1, "node-2".into(), 1, vec![0, 1, 2])
    );

    // The same, third node against the first: named with both set numbers.
    let err = parse(&[
        vec![image(1, 10), image(20, 10)],
        vec![image(1, 11), image(20, 11)],
        vec![image(1, 12), image(20, 10)],
    ])
    .unwrap_err();
    assert_eq!(
        overlap(err),
        ("node-1".into(), 1, "node-3".into(), 1, vec![0, 1, 2, 4])
    );

    // Each node's own sets may overlap each other (one is a subset of the other).
    let m = parse(&[
        vec![image(1, 10), json!({"8": v(30), "4": v(10)}), image(20, 10)],
        vec![image(1, 11), json!({"8": v(30), "4": v(11)}), image(20, 11)],
    ])
    .unwrap();
    assert_eq!(m.nodes().len(), 2);
}

#[test]
fn distinguishable_sets_accepted() {
    // Same image, per-node PCR4.
    parse(&[vec![image(1, 10)], vec![image(1, 11)], vec![image(1, 12)]]).unwrap();
    // Same image, per-node PCR3 (IAM role).
    let role = |r: u8| json!({"0": v(1), "1": v(2), "2": v(3), "3": v(r)});
    parse(&[vec![role(10)], vec![role(11)]]).unwrap();
    // Different images and nothing per node: PCR0 tells them apart.
    let code = |c: u8| json!({"0": v(c), "1": v(2), "2": v(3)});
    parse(&[vec![code(1)], vec![code(100)]]).unwrap();
    // A PCR4 pinned at a different length is a different value.
    let short = json!({"0": v(1), "1": v(2), "2": v(3), "4": hex::encode([10u8; 32])});
    parse(&[vec![image(1, 10)], vec![short]]).unwrap();
}

#[test]
fn exactly_one_differing_index_is_enough_and_none_is_not() {
    // Every index alike except one: accepted.
    let mut a = image(1, 10);
    a["3"] = json!(v(40));
    let mut b = image(1, 10);
    b["3"] = json!(v(41));
    parse(&[vec![a.clone()], vec![b]]).unwrap();
    // Every index alike: refused.
    let err = parse(&[vec![a.clone()], vec![a]]).unwrap_err();
    assert_eq!(overlap(err).4, vec![0, 1, 2, 3, 4]);

    // Hex case is spelling, not value: "AA.." and "aa.." are the same PCR4.
    let upper = json!({"0": v(1), "1": v(2), "2": v(3), "4": v(0xaa).to_uppercase()});
    let err = parse(&[vec![image(1, 0xaa)], vec![upper]]).unwrap_err();
    assert_eq!(overlap(err).4, vec![0, 1, 2, 4]);
}

#[test]
fn every_pair_of_the_most_nodes_checked() {
    let distinct: Vec<Vec<Value>> = (0..MAX_NODES)
        .map(|i| vec![image(1, u8::try_from(i).unwrap())])
        .collect();
    assert_eq!(parse(&distinct).unwrap().nodes().len(), MAX_NODES);
    // The last two nodes collide: found, and named.
    let mut colliding = distinct;
    colliding[MAX_NODES - 1] = vec![image(1, u8::try_from(MAX_NODES - 2).unwrap())];
    let err = parse(&colliding).unwrap_err();
    assert_eq!(
        overlap(err),
        (
            format!("node-{}", MAX_NODES - 1),
            0,
            format!("node-{MAX_NODES}"),
            0,
            vec![0, 1, 2, 4]
        )
    );
}

#[test]
fn sets_that_do_not_pin_the_code_refused() {
    let cases = [
        (json!({"4": v(9)}), vec![4]),
        (json!({"0": v(1), "1": v(2), "4": v(9)}), vec![0, 1, 4]),
        (json!({"0": v(1), "2": v(3), "4": v(9)}), vec![0, 2, 4]),
        (json!({"1": v(2), "2": v(3), "4": v(9)}), vec![1, 2, 4]),
        (json!({"3": v(1), "4": v(9), "7": v(2)}), vec![3, 4, 7]),
    ];
    for (set, pinned) in cases {
        // The set is node-1's second: named by node and set number.
        let err = parse(&[vec![image(1, 9), set.clone()]]).unwrap_err();
        let text = err.to_string();
        match err {
            ManifestError::CodeNotPinned {
                node,
                set: 1,
                pinned: Unpinned::Nitro(nitro::Unpinned { pinned: p }),
            } => {
                assert_eq!(node, "node-1");
                assert_eq!(p, pinned, "{set}");
            }
            other => panic!("{set}: {other}"),
        }
        assert!(text.contains("PCR0, PCR1 and PCR2, or PCR8"), "{text}");
    }
}

#[test]
fn sets_that_pin_the_code_accepted() {
    // Exactly PCR0, PCR1 and PCR2 (one node: nothing to tell apart).
    parse(&[vec![json!({"0": v(1), "1": v(2), "2": v(3)})]]).unwrap();
    // PCR8 alone, for a single node.
    parse(&[vec![json!({"8": v(1)})]]).unwrap();
    // PCR8 with a per-node PCR4: a signed image on every node.
    let signed = |i: u8| json!({"8": v(1), "4": v(i)});
    let m = parse(&[vec![signed(10)], vec![signed(11)], vec![signed(12)]]).unwrap();
    assert_eq!(m.nodes().len(), 3);
    // PCR8 and part of PCR0-2.
    parse(&[vec![json!({"0": v(1), "8": v(2)})]]).unwrap();
}
