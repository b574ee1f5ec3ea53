//! Whether a Confidential Space node's sets must say which instance it is, as the
//! identity rule promises ("identity is measured, not claimed").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use manifest::Manifest;
use serde_json::json;

/// Finding: the identity rule (manifest/src/body.rs:470 `check_identities`, and
/// attestation/src/gcp/measurements.rs:193 `distinguishable`) only compares pairs of
/// nodes of one provider. A Confidential Space node that is the only one of its provider
/// (the README's own 2-of-2 shape, 1 Nitro + 1 Confidential Space) may pin nothing but
/// `image_digest`; the policy then accepts a genuine Google token from ANY project and
/// instance running that image (which anyone can rebuild or pull) as that node. Two
/// Confidential Space nodes told apart only by `zone` likewise accept any instance of
/// the image in that zone of any project. Fix: require every `gcp-cs` set to pin
/// `project_id` and `instance_id` (as Google assigns them) and refuse a manifest that
/// does not, whatever the other nodes are.
#[test]
#[ignore = "finding: a Confidential Space node need not pin which instance it is"]
fn a_confidential_space_node_must_pin_its_instance() {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let nitro = json!({"id": "node-1", "provider": "aws-nitro", "address": "10.0.0.1:7100",
        "measurements": [{"nitro": {"0": "01".repeat(48), "1": "02".repeat(48),
            "2": "03".repeat(48), "4": "04".repeat(48)}}]});
    let cs_code_only = json!({"id": "node-2", "provider": "gcp-cs", "address": "10.0.1.2:7100",
        "measurements": [{"gcp-cs": {"image_digest": digest}}]});
    let body = json!({
        "version": 1, "threshold": 1,
        "operators": [{"id": "alice", "public_key": "ab".repeat(32)}],
        "nodes": [nitro, cs_code_only],
    });
    let parsed = Manifest::parse(&serde_json::to_vec(&body).unwrap());
    assert!(
        parsed.is_err(),
        "a manifest whose Confidential Space node pins only its image was accepted: any \
         instance of that image in any project passes as node-2"
    );
}
