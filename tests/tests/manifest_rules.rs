//! A manifest in which one attestation document could match two nodes (or that does not
//! pin the code) is refused with its reason by the operators' `custody manifest approve`
//! and by the nodes themselves.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use base64::Engine;
use integration_tests::cluster::{Cluster, STARTUP, all, measurements_json};
use integration_tests::{TempDir, binary};
use serde_json::{Value, json};
use std::process::Command;

const OVERLAP: &str = "could match the same attestation document";
const NO_CODE: &str = "does not pin the enclave's code";

fn body(operator_key: &str, sets: &[Value]) -> Vec<u8> {
    let nodes: Vec<Value> = sets
        .iter()
        .enumerate()
        .map(|(i, set)| {
            json!({"id": format!("node-{}", i + 1), "provider": "aws-nitro",
                   "address": format!("10.0.0.{}:7100", i + 1), "measurements": [set]})
        })
        .collect();
    serde_json::to_vec(&json!({
        "version": 1, "threshold": 1,
        "operators": [{"id": "operator-0", "public_key": operator_key}],
        "nodes": nodes,
    }))
    .unwrap()
}

#[test]
fn custody_manifest_approve_refuses_with_the_reason() {
    let dir = TempDir::new("approve").unwrap();
    let key_path = dir.path().join("operator-0.key");
    let key = client::operator::create(&key_path).unwrap();
    let code = |c: &str| json!({"0": c.repeat(96), "1": "b".repeat(96), "2": "c".repeat(96)});
    let with_pcr4 = |i: &str| {
        let mut set = code("a");
        set["4"] = json!(i.repeat(96));
        set
    };
    let approve = |name: &str, body: &[u8]| {
        let body_path = dir.path().join(format!("{name}.json"));
        std::fs::write(&body_path, body).unwrap();
        let out_path = dir.path().join(format!("{name}.approval"));
        let out = Command::new(binary("custody").unwrap())
            .args(["manifest", "approve", "--id", "operator-0"])
            .arg("--body")
            .arg(&body_path)
            .arg("--key")
            .arg(&key_path)
            .arg("--out")
            .arg(&out_path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out_path.exists(),
        )
    };
    let operator = key.public_key_hex();

    // One image on two nodes and nothing per node.
    let (ok, stderr, written) = approve("same", &body(&operator, &[code("a"), code("a")]));
    assert!(!ok && !written, "{stderr}");
    assert!(stderr.contains(OVERLAP), "{stderr}");
    assert!(
        stderr.contains("\"node-1\"") && stderr.contains("\"node-2\""),
        "{stderr}"
    );

    // node-2 pins a PCR4, node-1 does not: node-2's document matches node-1's set.
    let (ok, stderr, written) = approve("loose", &body(&operator, &[code("a"), with_pcr4("2")]));
    assert!(!ok && !written, "{stderr}");
    assert!(stderr.contains(OVERLAP), "{stderr}");

    // A set without PCR2 (nor PCR8) does not say which code it accepts.
    let mut partial = with_pcr4("1");
    partial.as_object_mut().unwrap().remove("2");
    let (ok, stderr, written) = approve("no-code", &body(&operator, &[partial]));
    assert!(!ok && !written, "{stderr}");
    assert!(stderr.contains(NO_CODE), "{stderr}");

    // One image, a PCR4 per node: approved.
    let (ok, stderr, written) =
        approve("good", &body(&operator, &[with_pcr4("1"), with_pcr4("2")]));
    assert!(ok && written, "{stderr}");
}

/// An envelope around `body` signed by the cluster's first `signers` operators, built by
/// hand: the library refuses to assemble such a body.
fn envelope(c: &Cluster, body: &[u8], signers: usize) -> Vec<u8> {
    let signatures: Vec<Value> = c
        .operators
        .iter()
        .take(signers)
        .enumerate()
        .map(|(i, k)| {
            json!({"operator": format!("operator-{i}"),
                   "signature": hex::encode(manifest::sign(body, k).as_bytes())})
        })
        .collect();
    serde_json::to_vec(&json!({
        "manifest": base64::engine::general_purpose::STANDARD.encode(body),
        "signatures": signatures,
    }))
    .unwrap()
}

#[test]
fn a_node_refuses_a_manifest_one_document_could_match_twice() {
    let mut c = Cluster::new(3).unwrap();
    let good = c.manifest_body(1, &[]).unwrap();
    c.write_manifest(&c.sign(&good, 2).unwrap()).unwrap();
    c.start_all().unwrap();
    c.wait_until("nodes waiting for a manifest", STARTUP, |s| {
        all(s, |s| s.phase == "waiting_for_manifest")
    })
    .unwrap();

    // Signed by enough operators, but node-3 is given node-1's measurements (PCR4
    // included): a document of either would pass as the other.
    let enclave = binary("enclave").unwrap();
    let stolen = measurements_json(&enclave, "node-1").unwrap();
    let bad = c.manifest_body(1, &[("node-3", stolen)]).unwrap();
    let reason = c
        .submit_manifest("node-1", &envelope(&c, &bad, 2))
        .unwrap()
        .unwrap_err();
    assert!(reason.contains(OVERLAP), "{reason}");
    assert!(
        reason.contains("\"node-1\"") && reason.contains("\"node-3\""),
        "{reason}"
    );
    assert_eq!(c.status("node-1").unwrap().phase, "waiting_for_manifest");

    // The same node takes the manifest that pins each node's own PCR4.
    c.submit_manifest("node-1", &c.sign(&good, 2).unwrap())
        .unwrap()
        .unwrap();
}
