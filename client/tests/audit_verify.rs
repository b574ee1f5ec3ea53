//! `custody audit verify` as an auditor runs it: an export attested by a simulated NSM
//! verifies (exit 0); without its last line, or with one byte edited, it does not
//! (exit 1).
#![cfg(feature = "sim")]
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use attestation::Provider;
use attestation::nsm::sim::{SimCa, SimMeasurements, SimNsm};
use audit::{AuditKey, AuditLog, Event, Outcome};
use client::cluster_file::{ClusterFile, NodeEntry, NodeMeasurements, OperatorEntry};
use client::pin::{PinEntry, PinnedOperator};
use ids::{ManifestHash, NodeId};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

const IMAGE: &[u8] = b"the audited node image";

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn custody(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custody"))
        .args(args)
        .output()
        .unwrap()
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap()
}

fn text(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

/// A cluster file naming node-1 with `image`'s code measurements and `pcr4`.
fn cluster_file(dir: &Path, root: &[u8], image: &[u8]) -> PathBuf {
    let pcrs = SimMeasurements::of_image(image).pcrs();
    let values = (0u8..3)
        .map(|i| (i.to_string(), hex::encode(pcrs[&i])))
        .collect();
    let file = ClusterFile {
        max_evidence_age_secs: 300,
        allow_debug: false,
        sim_root: Some(hex::encode(root)),
        sim_gcp_root: None,
        operator: OperatorEntry {
            id: "operator-0".into(),
            key_file: dir.join("operator-0.key"),
        },
        manifest: PinEntry {
            hash: "42".repeat(32),
            version: 1,
            threshold: 1,
            operators: vec![PinnedOperator {
                id: "operator-0".into(),
                public_key: hex::encode([1u8; 32]),
            }],
            roots: Default::default(),
        },
        nodes: vec![NodeEntry {
            id: "node-1".into(),
            client: "127.0.0.1:1".into(),
            measurements: NodeMeasurements::tagged(Provider::Nitro, values),
        }],
        sim: None,
    };
    let path = dir.join(format!("cluster-{}.toml", image.len()));
    file.save(&path).unwrap();
    path
}

#[test]
fn an_export_verifies_and_a_changed_one_does_not() {
    let dir = Dir(std::env::temp_dir().join(format!("custody-audit-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let now = SystemTime::now();
    let ca = SimCa::generate(now).unwrap();
    let nsm = SimNsm::new(&ca, &SimMeasurements::of_image(IMAGE), now).unwrap();
    let root = dir.0.join("sim-root.hex");
    std::fs::write(&root, hex::encode(ca.root_der())).unwrap();

    let mut log = AuditLog::new(
        NodeId::new("node-1").unwrap(),
        AuditKey::generate().unwrap(),
    );
    for i in 0..40u64 {
        let event = Event::Decision {
            request_id: [u8::try_from(i).unwrap(); 32],
            outcome: Outcome::Refused,
            rule: None,
            policy_version: Some(1),
            reason: Some(format!("refusal {i}")),
        };
        log.append(event, 1_700_000_000_000 + i).unwrap();
    }
    let manifest = ManifestHash([0x42; 32]);
    let document = nsm
        .attest_at(&log.attestation_request(&manifest), now)
        .unwrap();
    let export = log.export(&manifest, &document).unwrap();
    let good = dir.0.join("good.jsonl");
    std::fs::write(&good, &export).unwrap();
    let (good, root) = (text(&good), text(&root));

    let output = custody(&["audit", "verify", &good, "--sim", "--sim-root", &root]);
    assert_eq!(
        code(&output),
        0,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let shown = String::from_utf8(output.stdout).unwrap();
    assert!(
        shown.contains("audit log verified: 40 entries of node node-1"),
        "{shown}"
    );

    let output = custody(&[
        "--json",
        "audit",
        "verify",
        &good,
        "--sim",
        "--sim-root",
        &root,
    ]);
    assert_eq!(code(&output), 0);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["count"], 40);
    assert_eq!(report["head"], hex::encode(log.head().hash));
    assert_eq!(report["manifest_hash"], "42".repeat(32));

    // The last line removed.
    let mut lines: Vec<&str> = export.lines().collect();
    lines.pop();
    let cut = dir.0.join("cut.jsonl");
    std::fs::write(&cut, lines.join("\n") + "\n").unwrap();
    let output = custody(&["audit", "verify", &text(&cut), "--sim", "--sim-root", &root]);
    assert_eq!(code(&output), 1);
    let error = String::from_utf8(output.stderr).unwrap();
    assert!(error.contains("line 41: entry 39 is missing"), "{error}");
    let output = custody(&[
        "--json",
        "audit",
        "verify",
        &text(&cut),
        "--sim",
        "--sim-root",
        &root,
    ]);
    assert_eq!(code(&output), 1);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["valid"], false);
    assert!(report["error"].as_str().unwrap().starts_with("line 41: "));

    // One byte edited: a digit of one refusal's reason.
    let edited = dir.0.join("edited.jsonl");
    std::fs::write(&edited, export.replacen("refusal 17", "refusal 18", 1)).unwrap();
    let output = custody(&[
        "audit",
        "verify",
        &text(&edited),
        "--sim",
        "--sim-root",
        &root,
    ]);
    assert_eq!(code(&output), 1);
    let error = String::from_utf8(output.stderr).unwrap();
    assert!(
        error.contains("line 19: entry 17: the signature does not verify"),
        "{error}"
    );

    // The simulated root is trusted only when asked, and --sim needs a root.
    let output = custody(&["audit", "verify", &good]);
    assert_eq!(code(&output), 1);
    assert!(
        String::from_utf8(output.stderr)
            .unwrap()
            .contains("not a trusted root")
    );
    assert_eq!(code(&custody(&["audit", "verify", &good, "--sim"])), 2);

    // With the cluster file: its simulated root, and node-1's measurements.
    let cluster = text(&cluster_file(&dir.0, ca.root_der(), IMAGE));
    let output = custody(&["--cluster", &cluster, "audit", "verify", &good, "--sim"]);
    assert_eq!(
        code(&output),
        0,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8(output.stdout)
            .unwrap()
            .contains("matches node node-1's measurements")
    );
    let other = text(&cluster_file(&dir.0, ca.root_der(), b"another image"));
    let output = custody(&["--cluster", &other, "audit", "verify", &good, "--sim"]);
    assert_eq!(code(&output), 1);
    assert!(
        String::from_utf8(output.stderr)
            .unwrap()
            .contains("match no accepted set")
    );
}
