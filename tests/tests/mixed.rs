//! A cluster of two providers through the whole stack: two simulated Nitro nodes (an
//! `enclave` beside a `parent`) and two simulated Confidential Space nodes (an `enclave
//! --provider gcp-cs` alone, listening on TCP itself, its sealed blobs in its own
//! directory). `custody` attests every node and names its provider; a key only the two
//! providers together can sign is created and signs with a set spanning both; a
//! Confidential Space node restarts from its directory and signs again; a key one provider
//! could sign alone is refused by the placement rule. Every signature is checked here with
//! `k256`, independently of the nodes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use attestation::Provider;
use integration_tests::binary;
use integration_tests::cluster::{Cluster, PERMISSIVE_POLICY, STARTUP, all, running_and_attested};
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use k256::ecdsa::{Signature, VerifyingKey};
use serde_json::Value;
use sha2::Digest as _;
use std::path::Path;
use std::process::Command;

const SHAPE: [Provider; 4] = [
    Provider::Nitro,
    Provider::Nitro,
    Provider::GcpCs,
    Provider::GcpCs,
];

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
}

fn digest(label: &str) -> [u8; 32] {
    sha2::Sha256::digest(label.as_bytes()).into()
}

/// `custody --json --cluster FILE status`, which must succeed: its one JSON document.
fn custody_status(cluster_file: &Path) -> Value {
    let out = Command::new(binary("custody").unwrap())
        .arg("--json")
        .arg("--cluster")
        .arg(cluster_file)
        .arg("status")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "custody status: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Checks that `answer` is a signature of `d` by `public_key` (compressed SEC1 hex) made
/// by exactly `signers`.
fn check_signed(answer: &Value, public_key: &str, d: &[u8; 32], signers: &[&str]) {
    assert_eq!(text(answer, "public_key"), public_key, "{answer}");
    assert_eq!(hex::decode(text(answer, "digest")).unwrap(), d, "{answer}");
    let key = VerifyingKey::from_sec1_bytes(&hex::decode(public_key).unwrap()).unwrap();
    let r: [u8; 32] = hex::decode(text(answer, "r")).unwrap().try_into().unwrap();
    let s: [u8; 32] = hex::decode(text(answer, "s")).unwrap().try_into().unwrap();
    let signature = Signature::from_scalars(r, s).unwrap();
    key.verify_prehash(d, &signature)
        .unwrap_or_else(|e| panic!("signature does not verify: {e}: {answer}"));
    let mut got: Vec<&str> = answer["signers"]
        .as_array()
        .unwrap_or_else(|| panic!("no signers in {answer}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    got.sort_unstable();
    assert_eq!(got, signers, "{answer}");
}

#[test]
fn two_providers_sign_together_and_neither_alone() {
    let (mut c, envelope) = Cluster::running_on(&SHAPE).unwrap();
    let ids: Vec<String> = c.nodes().iter().map(|n| n.id.clone()).collect();
    assert_eq!(ids, ["node-1", "node-2", "node-3", "node-4"]);
    assert!(
        c.nodes()[2..].iter().all(|n| n.parent_pid().is_none()),
        "a Confidential Space node runs no parent"
    );

    // The operator's client verifies every node under the pinned manifest (which pins
    // both simulated roots) and reports the provider its evidence is from.
    let status = custody_status(&c.custody_file(&envelope).unwrap());
    let nodes = status["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 4, "{status}");
    for (node, provider) in nodes.iter().zip(SHAPE) {
        assert_eq!(node["attested"], true, "{node}");
        assert_eq!(node["phase"], "running", "{node}");
        assert_eq!(node["provider"], provider.name(), "{node}");
    }

    c.submit_policy(PERMISSIVE_POLICY).unwrap();

    // 2-of-4: either provider's two nodes could sign alone. Refused, naming the provider
    // and its count.
    let refusal = c
        .create_key("node-1", "lopsided", 2, &[])
        .unwrap()
        .expect_err("a 2-of-4 key on 2+2 nodes is created");
    assert!(
        refusal.contains("provider nitro would hold 2 of the key's 4 shares")
            || refusal.contains("provider gcp-cs would hold 2 of the key's 4 shares"),
        "{refusal}"
    );

    // 3-of-4: no provider holds a signing quorum.
    let created = c
        .create_key("node-1", "mixed", 3, &[])
        .unwrap()
        .unwrap_or_else(|e| panic!("3-of-4 refused: {e}\n{}", c.logs()));
    let public_key = text(&created, "public_key").to_owned();

    let spanning = ["node-1", "node-3", "node-4"];
    let d = digest("signed by both providers");
    let answer = c
        .sign_by("node-1", "mixed", d, &spanning)
        .unwrap()
        .unwrap_or_else(|e| panic!("signing by {spanning:?} refused: {e}\n{}", c.logs()));
    check_signed(&answer, &public_key, &d, &spanning);

    // A Confidential Space node restarts: its sealed state from its own directory, its
    // key back from its peers.
    c.kill_enclave("node-3").unwrap();
    c.start_enclave("node-3").unwrap();
    c.wait_until("node-3 back, every peer attested", STARTUP, |s| {
        all(s, |s| running_and_attested(s, 3))
    })
    .unwrap();
    let again = ["node-2", "node-3", "node-4"];
    let d = digest("signed again after node-3 restarted");
    let answer = c
        .sign_by("node-3", "mixed", d, &again)
        .unwrap()
        .unwrap_or_else(|e| panic!("signing by {again:?} refused: {e}\n{}", c.logs()));
    check_signed(&answer, &public_key, &d, &again);
}
