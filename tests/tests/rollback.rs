//! The parent serves a node an older manifest, a forged one, or a whole older state, with
//! the real parent and enclave processes. A node that has run under a manifest never runs
//! under an older or differently-rooted one again.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use integration_tests::cluster::{Cluster, STARTUP, all};
use manifest::{OperatorKey, OperatorSignature, SignedManifest};
use protocol::operator_api::NodeStatus;
use std::path::Path;
use std::time::{Duration, Instant};

/// Where the parent of node `id` keeps the plain manifest copy.
fn parent_manifest(c: &Cluster, id: &str) -> std::path::PathBuf {
    c.node(id).unwrap().blob_dir.join("manifest")
}

/// Submits `envelope` to every node and waits until each runs under `version`.
fn update_all(c: &Cluster, envelope: &[u8], version: u64) {
    for n in c.nodes() {
        c.submit_manifest(&n.id, envelope).unwrap().unwrap();
    }
    c.wait_until("every node on the new manifest", STARTUP, |s| {
        all(s, |s| {
            s.phase == "running" && s.manifest_version == Some(version)
        })
    })
    .unwrap();
}

/// Polls node `id` until `done` holds, failing at once if `never` holds for any status
/// seen on the way.
fn watch(
    c: &Cluster,
    id: &str,
    timeout: Duration,
    never: impl Fn(&NodeStatus) -> bool,
    done: impl Fn(&NodeStatus) -> bool,
) -> Option<NodeStatus> {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    while Instant::now() < deadline {
        if let Ok(s) = c.status(id) {
            assert!(
                !never(&s),
                "{id} reached a forbidden state: {s:#?}\n{}",
                c.logs()
            );
            if done(&s) {
                return Some(s);
            }
            last = Some(s);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if let Some(s) = &last {
        eprintln!("{id} after {timeout:?}: {s:#?}");
    }
    None
}

/// Watches `id` for 8 s: it must never run, and must then be waiting for provisioning.
fn never_runs(c: &Cluster, id: &str) -> NodeStatus {
    let ran = watch(
        c,
        id,
        Duration::from_secs(8),
        |s| s.phase == "running",
        |_| false,
    );
    assert!(ran.is_none());
    let s = c.status(id).unwrap();
    assert_eq!(s.phase, "waiting_for_provisioning", "{s:#?}");
    s
}

fn copy_blobs(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with('.') && entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

fn remove_blobs(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if !entry.file_name().to_string_lossy().starts_with('.') {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
}

/// During a rollout node-1 already runs v2 while its peers still run v1. Its parent
/// restarts it with v1 stored: the peers accept v1 and release node-1's key, so only the
/// sealed copy can tell that node-1 has run under v2. It must run under v2 again.
#[test]
fn an_older_manifest_from_the_parent_is_not_run() {
    let (mut c, v1) = Cluster::running(3).unwrap();
    let v2 = c.sign(&c.manifest_body(2, &[]).unwrap(), 2).unwrap();
    c.submit_manifest("node-1", &v2).unwrap().unwrap();
    assert_eq!(c.status("node-1").unwrap().manifest_version, Some(2));

    c.kill_enclave("node-1").unwrap();
    std::fs::write(parent_manifest(&c, "node-1"), &v1).unwrap();
    c.start_enclave("node-1").unwrap();

    let s = watch(
        &c,
        "node-1",
        STARTUP,
        |s| s.phase == "running" && s.manifest_version != Some(2),
        |s| s.phase == "running",
    );
    let s = s.unwrap_or_else(|| panic!("node-1 did not run again\n{}", c.logs()));
    assert_eq!(s.manifest_version, Some(2));
    // The parent's copy is the sealed manifest again.
    assert_eq!(std::fs::read(parent_manifest(&c, "node-1")).unwrap(), v2);
    assert!(
        c.enclave_log("node-1")
            .unwrap()
            .contains("parent's manifest refused; running under the sealed one")
    );
}

#[test]
fn a_forged_manifest_from_the_parent_is_undone_by_the_operators() {
    let (mut c, v1) = Cluster::running(3).unwrap();
    let v1_hash = c.status("node-1").unwrap().manifest_hash;

    // The parent's own operators approve a manifest of the same nodes, at a higher
    // version.
    let attackers: Vec<OperatorKey> = (0..3).map(|_| OperatorKey::generate().unwrap()).collect();
    let mut body: serde_json::Value =
        serde_json::from_slice(&c.manifest_body(7, &[]).unwrap()).unwrap();
    body["operators"] = attackers
        .iter()
        .enumerate()
        .map(|(i, k)| serde_json::json!({"id": format!("operator-{i}"), "public_key": k.public_key_hex()}))
        .collect();
    let body = serde_json::to_vec(&body).unwrap();
    let signatures: Vec<_> = attackers
        .iter()
        .enumerate()
        .take(2)
        .map(|(i, k)| OperatorSignature {
            operator: format!("operator-{i}"),
            signature: manifest::sign(&body, k),
        })
        .collect();
    let forged = SignedManifest::assemble(&body, &signatures)
        .unwrap()
        .envelope_bytes()
        .to_vec();

    c.kill_enclave("node-1").unwrap();
    std::fs::write(parent_manifest(&c, "node-1"), &forged).unwrap();
    c.start_enclave("node-1").unwrap();

    // Peers refuse evidence that binds the forged manifest: node-1 never runs under it.
    never_runs(&c, "node-1");

    // The real operators undo it: v1 replaces the provisional forged manifest, although
    // the forged one's operators never approved it.
    c.submit_manifest("node-1", &v1)
        .unwrap()
        .unwrap_or_else(|e| panic!("the real manifest was refused: {e}\n{}", c.logs()));
    let s = watch(
        &c,
        "node-1",
        STARTUP,
        |s| s.phase == "running" && s.manifest_version != Some(1),
        |s| s.phase == "running",
    )
    .unwrap_or_else(|| panic!("node-1 did not run under the real manifest\n{}", c.logs()));
    assert_eq!(s.manifest_hash, v1_hash);

    // Once confirmed, the forged manifest is no successor of the real one.
    let refused = c.submit_manifest("node-1", &forged).unwrap();
    assert!(refused.is_err(), "{refused:?}");
}

#[test]
fn a_whole_older_state_replayed_by_the_parent_is_not_run() {
    let (mut c, _v1) = Cluster::running(3).unwrap();
    let snapshot = c.dir.path().join("node-1-at-v1");
    copy_blobs(&c.node("node-1").unwrap().blob_dir, &snapshot);

    let v2 = c.sign(&c.manifest_body(2, &[]).unwrap(), 2).unwrap();
    update_all(&c, &v2, 2);

    // Old index, old blobs, old manifest: consistent in itself, so the node cannot tell
    // alone. Its peers can: its evidence binds v1, and they run v2.
    c.kill_enclave("node-1").unwrap();
    let blob_dir = c.node("node-1").unwrap().blob_dir.clone();
    remove_blobs(&blob_dir);
    copy_blobs(&snapshot, &blob_dir);
    c.start_enclave("node-1").unwrap();

    let s = never_runs(&c, "node-1");
    let reason = s.reason.unwrap_or_default();
    assert!(
        reason.contains("node-2") && reason.contains("node-3") && reason.contains("manifest"),
        "{reason}"
    );

    // The operators bring it forward: v2 is an approved successor of its sealed v1.
    c.submit_manifest("node-1", &v2).unwrap().unwrap();
    let s = watch(
        &c,
        "node-1",
        STARTUP,
        |s| s.phase == "running" && s.manifest_version != Some(2),
        |s| s.phase == "running",
    )
    .unwrap_or_else(|| panic!("node-1 did not run under v2\n{}", c.logs()));
    assert_eq!(s.manifest_version, Some(2));
}

/// A manifest that drops this node is refused before anything is stored: the parent's
/// copy stays the manifest the node runs under.
#[test]
fn a_manifest_that_omits_the_node_is_refused_before_it_is_stored() {
    let (c, v1) = Cluster::running(3).unwrap();
    let mut body: serde_json::Value =
        serde_json::from_slice(&c.manifest_body(2, &[]).unwrap()).unwrap();
    let nodes: Vec<serde_json::Value> = body["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["id"] != "node-1")
        .cloned()
        .collect();
    body["nodes"] = serde_json::Value::Array(nodes);
    let without = c.sign(&serde_json::to_vec(&body).unwrap(), 2).unwrap();

    let refused = c.submit_manifest("node-1", &without).unwrap();
    assert!(
        matches!(&refused, Err(e) if e.contains("does not list this node")),
        "{refused:?}"
    );
    assert!(
        std::fs::read(parent_manifest(&c, "node-1")).unwrap() == v1,
        "the refused manifest replaced the parent's copy"
    );
    let s = c.status("node-1").unwrap();
    assert_eq!((s.phase.as_str(), s.manifest_version), ("running", Some(1)));
}
