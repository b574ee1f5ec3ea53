#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use super::*;
use crate::cluster_file::{NodeEntry, OperatorEntry, SimCluster};
use crate::pin::{PinEntry, PinnedOperator};
use manifest::{OperatorKey, OperatorSignature};
use serde_json::{Value, json};

/// A temporary directory, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("placement-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Dir(path)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A signed envelope of three simulated Nitro nodes with `placement`, by one operator.
fn envelope(key: &OperatorKey, version: u64, placement: Value) -> SignedManifest {
    let pcr = |b: u8| hex::encode([b; 48]);
    let nodes: Vec<Value> = (1..=3u8)
        .map(|i| {
            json!({"id": format!("node-{i}"), "provider": "sim",
                   "address": format!("127.0.0.1:710{i}"),
                   "measurements": [{"0": pcr(1), "1": pcr(2), "2": pcr(3), "4": pcr(3 + i)}]})
        })
        .collect();
    let body = serde_json::to_vec(&json!({
        "version": version, "threshold": 1,
        "operators": [{"id": "operator-0", "public_key": key.public_key_hex()}],
        "nodes": nodes, "placement": placement,
    }))
    .unwrap();
    let signature = OperatorSignature {
        operator: "operator-0".into(),
        signature: manifest::sign(&body, key),
    };
    SignedManifest::assemble(&body, &[signature]).unwrap()
}

/// A cluster file pinning `pinned`.
fn file(key: &OperatorKey, pinned: &SignedManifest) -> ClusterFile {
    ClusterFile {
        max_evidence_age_secs: 300,
        allow_debug: false,
        sim_root: None,
        sim_gcp_root: None,
        operator: OperatorEntry {
            id: "operator-0".into(),
            key_file: "/keys/operator-0.key".into(),
        },
        manifest: PinEntry {
            hash: pinned.hash().to_string(),
            version: pinned.manifest().version(),
            threshold: 1,
            operators: vec![PinnedOperator {
                id: "operator-0".into(),
                public_key: key.public_key_hex(),
            }],
            roots: Default::default(),
        },
        nodes: (1..=3)
            .map(|i| NodeEntry {
                id: format!("node-{i}"),
                client: "127.0.0.1:1".into(),
                measurements: [("0".to_owned(), "ab".repeat(48))].into_iter().collect(),
            })
            .collect(),
        sim: None,
    }
}

fn simulated(file: &mut ClusterFile, manifest: PathBuf) {
    file.sim = Some(SimCluster {
        dir: "/nowhere".into(),
        enclave_binary: "/nowhere/enclave".into(),
        parent_binary: "/nowhere/parent".into(),
        manifest,
        sim_ca: "/nowhere/sim-ca".into(),
        sim_gcp_ca: None,
        nodes: Vec::new(),
    });
}

#[test]
fn the_pinned_manifest_decides_before_anything_is_sent() {
    let dir = Dir::new("pinned");
    let key = OperatorKey::generate().unwrap();
    let strict = envelope(&key, 1, json!({}));
    let path = dir.0.join("manifest.json");
    std::fs::write(&path, strict.envelope_bytes()).unwrap();
    let f = file(&key, &strict);
    let m = pinned_manifest(&f, Some(&path)).unwrap().unwrap();
    let refused = check_key(&m, &[], 2).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "provider nitro would hold 3 of the key's 3 shares, and 2 of them can sign: no \
         provider may hold a signing quorum unless the manifest sets \
         placement.allow_provider_quorum"
    );
    let two = ["node-1".to_owned(), "node-2".to_owned()];
    assert!(check_key(&m, &two, 2).is_err());

    let lax = envelope(&key, 1, json!({"allow_provider_quorum": true}));
    std::fs::write(&path, lax.envelope_bytes()).unwrap();
    let m = pinned_manifest(&file(&key, &lax), Some(&path))
        .unwrap()
        .unwrap();
    check_key(&m, &[], 2).unwrap();
    check_key(&m, &two, 2).unwrap();
}

#[test]
fn an_envelope_named_must_be_the_pinned_one() {
    let dir = Dir::new("named");
    let key = OperatorKey::generate().unwrap();
    let pinned = envelope(&key, 1, json!({}));
    let other = envelope(&key, 2, json!({"allow_provider_quorum": true}));
    let path = dir.0.join("manifest.json");
    std::fs::write(&path, other.envelope_bytes()).unwrap();
    let f = file(&key, &pinned);
    let err = pinned_manifest(&f, Some(&path)).unwrap_err();
    assert!(
        matches!(&err, PinnedManifestError::NotPinned { found, .. } if *found == other.hash().to_string()),
        "{err}"
    );
    // Missing, not an envelope, and over the envelope limit: refused, and named.
    let missing = dir.0.join("missing.json");
    assert!(matches!(
        pinned_manifest(&f, Some(&missing)).unwrap_err(),
        PinnedManifestError::Read { .. }
    ));
    std::fs::write(&path, b"{}").unwrap();
    assert!(matches!(
        pinned_manifest(&f, Some(&path)).unwrap_err(),
        PinnedManifestError::Envelope { .. }
    ));
    std::fs::write(&path, vec![b' '; manifest::MAX_ENVELOPE_LEN + 1]).unwrap();
    assert!(matches!(
        pinned_manifest(&f, Some(&path)).unwrap_err(),
        PinnedManifestError::TooLarge { .. }
    ));
    // At exactly the limit the bytes are read and parsed (and, being spaces, refused as
    // no envelope).
    std::fs::write(&path, vec![b' '; manifest::MAX_ENVELOPE_LEN]).unwrap();
    assert!(matches!(
        pinned_manifest(&f, Some(&path)).unwrap_err(),
        PinnedManifestError::Envelope { .. }
    ));
}

#[test]
fn a_simulated_clusters_copy_is_used_only_while_it_is_the_pinned_one() {
    let dir = Dir::new("sim");
    let key = OperatorKey::generate().unwrap();
    let pinned = envelope(&key, 1, json!({"allow_provider_quorum": true}));
    let path = dir.0.join("manifest.json");
    let mut f = file(&key, &pinned);
    // A real cluster's file names no copy: nothing to check with.
    assert!(pinned_manifest(&f, None).unwrap().is_none());
    simulated(&mut f, path.clone());
    assert!(pinned_manifest(&f, None).unwrap().is_none(), "no file yet");
    std::fs::write(&path, pinned.envelope_bytes()).unwrap();
    let m = pinned_manifest(&f, None).unwrap().unwrap();
    assert_eq!(m, *pinned.manifest());
    // The parents' copy moved on (or was replaced) without the pin: not used.
    let next = envelope(&key, 2, json!({}));
    std::fs::write(&path, next.envelope_bytes()).unwrap();
    assert!(pinned_manifest(&f, None).unwrap().is_none());
}
