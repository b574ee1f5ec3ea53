//! Whether a Confidential Space node's sets must say which instance it is, as the
//! identity rule promises ("identity is measured, not claimed").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use manifest::Manifest;
use serde_json::json;

/// A Confidential Space node that is the only one of its provider (the 2-of-2 shape,
/// 1 Nitro + 1 Confidential Space) is told apart from no other node, so the pairwise
/// rule asks nothing of it; were it allowed to pin only `image_digest`, a genuine Google
/// token from any project and instance running that image (which anyone can rebuild)
/// would pass as that node. Every `gcp-cs` set must pin `project_id` and `instance_id`.
#[test]
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

/// Two Confidential Space nodes told apart only by `zone` would each accept any instance
/// of the image in its zone, of any project: refused for want of the instance.
#[test]
fn confidential_space_nodes_told_apart_by_zone_alone_are_refused() {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let node = |id: &str, zone: &str| {
        json!({"id": id, "provider": "gcp-cs", "address": "10.0.1.2:7100",
            "measurements": [{"gcp-cs": {"image_digest": digest, "zone": zone}}]})
    };
    let body = json!({
        "version": 1, "threshold": 1,
        "operators": [{"id": "alice", "public_key": "ab".repeat(32)}],
        "nodes": [node("node-1", "us-west1-a"), node("node-2", "us-west1-b")],
    });
    let err = Manifest::parse(&serde_json::to_vec(&body).unwrap()).unwrap_err();
    assert!(
        err.to_string()
            .contains("must pin project_id and instance_id"),
        "{err}"
    );

    // Pinned, they are accepted.
    let pinned = |id: &str, instance: &str| {
        json!({"id": id, "provider": "gcp-cs", "address": "10.0.1.2:7100",
            "measurements": [{"gcp-cs": {"image_digest": digest, "project_id": "custody",
                "instance_id": instance}}]})
    };
    let body = json!({
        "version": 1, "threshold": 1,
        "operators": [{"id": "alice", "public_key": "ab".repeat(32)}],
        "nodes": [pinned("node-1", "101"), pinned("node-2", "102")],
    });
    Manifest::parse(&serde_json::to_vec(&body).unwrap()).unwrap();
}
