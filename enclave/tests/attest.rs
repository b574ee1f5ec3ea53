//! The `enclave` binary's evidence, checked with the production verifier.
#![cfg(feature = "sim")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use attestation::PolicyError;
use attestation::nitro::{MeasurementSet, TrustPolicy, Verifier};
use attestation::nsm::sim::SimMeasurements;
use std::path::PathBuf;
use std::process::Command;
use std::time::SystemTime;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("enclave-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn enclave() -> Command {
    Command::new(env!("CARGO_BIN_EXE_enclave"))
}

#[test]
fn simulated_node_attests_to_its_own_binary() {
    let dir = TempDir::new("attest");
    let doc_path = dir.0.join("doc.cose");
    let root_path = dir.0.join("root.der");
    let status = enclave()
        .args(["--sim", "attest", "--nonce", "0011", "--user-data", "cafe"])
        .arg("--out")
        .arg(&doc_path)
        .arg("--sim-ca")
        .arg(dir.0.join("ca"))
        .arg("--sim-root-out")
        .arg(&root_path)
        .status()
        .unwrap();
    assert!(status.success());

    let now = SystemTime::now();
    let root = std::fs::read(&root_path).unwrap();
    let doc = std::fs::read(&doc_path).unwrap();
    assert!(Verifier::aws_nitro().verify(&doc, now).is_err());
    let verified = Verifier::aws_nitro()
        .trust_simulated_root(&root, now)
        .unwrap()
        .verify(&doc, now)
        .unwrap();
    assert_eq!(verified.nonce(), Some(&[0x00, 0x11][..]));
    assert_eq!(verified.user_data(), Some(&[0xca, 0xfe][..]));

    // PCR0 is the measurement of this very binary; another binary's is refused.
    let expected = SimMeasurements::of_file(env!("CARGO_BIN_EXE_enclave").as_ref())
        .unwrap()
        .pcrs();
    let set = |v: &[u8; 48]| MeasurementSet::new([(0u8, v.to_vec())].into()).unwrap();
    TrustPolicy::new(vec![set(&expected[&0])])
        .unwrap()
        .check(&verified, now)
        .unwrap();
    let other = SimMeasurements::of_image(b"some other build").pcrs();
    assert!(matches!(
        TrustPolicy::new(vec![set(&other[&0])])
            .unwrap()
            .check(&verified, now),
        Err(PolicyError::Measurements(_))
    ));

    // A second run reuses the same simulated root.
    let status = enclave()
        .args(["--sim", "attest"])
        .arg("--out")
        .arg(dir.0.join("doc2.cose"))
        .arg("--sim-ca")
        .arg(dir.0.join("ca"))
        .status()
        .unwrap();
    assert!(status.success());
    Verifier::aws_nitro()
        .trust_simulated_root(&root, now)
        .unwrap()
        .verify(&std::fs::read(dir.0.join("doc2.cose")).unwrap(), now)
        .unwrap();
}

#[test]
fn bad_requests_are_refused() {
    let dir = TempDir::new("bad");
    // Nonce over the 512-byte limit: refused by the NSM layer, exit 1, nothing written.
    let out = enclave()
        .args(["--sim", "attest", "--nonce", &"00".repeat(513)])
        .arg("--out")
        .arg(dir.0.join("doc"))
        .arg("--sim-ca")
        .arg(dir.0.join("ca"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonce"));
    assert!(!dir.0.join("doc").exists());
    // Usage errors exit 2.
    for args in [
        vec!["--sim", "attest", "--out", "x", "--nonce", "zz"],
        vec!["--sim", "attest", "--out", "x"],
        vec!["attest", "--out", "x", "--sim-ca", "ca"],
    ] {
        let out = enclave().current_dir(&dir.0).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}
