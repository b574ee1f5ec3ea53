//! A simulated node's evidence, produced by the `enclave` binary and judged by the
//! `attest` binary, as an auditor would.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use attestation::nsm::sim::SimMeasurements;
use integration_tests::{TempDir, binary};
use std::process::{Command, Output};

fn attest_verify(doc: &std::path::Path, extra: &[&str]) -> Output {
    Command::new(binary("attest").unwrap())
        .arg("verify")
        .arg(doc)
        .args(["--at", "now"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn auditor_checks_a_simulated_node() {
    let dir = TempDir::new("evidence").unwrap();
    let doc = dir.path().join("doc.cose");
    let root = dir.path().join("root.der");
    let out = Command::new(binary("enclave").unwrap())
        .args(["--sim", "attest", "--nonce", "a1b2c3"])
        .arg("--out")
        .arg(&doc)
        .arg("--sim-ca")
        .arg(dir.path().join("ca"))
        .arg("--sim-root-out")
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let pcrs = SimMeasurements::of_file(&binary("enclave").unwrap())
        .unwrap()
        .pcrs();
    let pcr0 = format!("0={}", hex::encode(pcrs[&0]));
    let root_arg = root.to_str().unwrap();

    // Only the AWS root is trusted by default.
    let out = attest_verify(&doc, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a trusted root"));

    // With the simulated root, the right PCR0 and nonce: valid.
    let out = attest_verify(
        &doc,
        &["--sim-root", root_arg, "--pcr", &pcr0, "--nonce", "a1b2c3"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Another binary's PCR0, or another nonce: invalid, and the reason says which.
    let wrong = format!("0={}", hex::encode([0x11u8; 48]));
    let out = attest_verify(&doc, &["--sim-root", root_arg, "--pcr", &wrong]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PCR0"));
    let out = attest_verify(&doc, &["--sim-root", root_arg, "--nonce", "ffff"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonce"));
}
