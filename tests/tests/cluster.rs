//! Simulated clusters of real processes: per node one `enclave` and one `parent`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use integration_tests::cluster::{Cluster, STARTUP, all, running_and_attested};
use protocol::authority::{Action, DEFAULT_TTL_MS};
use protocol::operator_api::NodeStatus;

fn running_cluster(n: usize) -> (Cluster, Vec<u8>) {
    let (c, envelope) = Cluster::running(n).unwrap();
    assert!(
        c.nodes()
            .iter()
            .all(|n| c.status(&n.id).unwrap().manifest_version == Some(1))
    );
    (c, envelope)
}

#[test]
fn three_nodes_attest_each_other_and_provision_their_keys() {
    let (c, _) = running_cluster(3);
    let expected_pcr0 =
        integration_tests::cluster::measurements_json(&c.nodes()[0].enclave_binary, "node-1")
            .unwrap()["0"]
            .as_str()
            .unwrap()
            .to_owned();
    for node in c.nodes() {
        let s = c.status(&node.id).unwrap();
        assert_eq!(s.manifest_version, Some(1));
        assert!(s.state_created_ms.is_some());
        for (peer, p) in &s.peers {
            assert_eq!(
                p.pcr0.as_deref(),
                Some(expected_pcr0.as_str()),
                "{} -> {peer}",
                node.id
            );
        }
        let (code, health) = c.healthz(&node.id).unwrap();
        assert_eq!(code, 200, "{health}");
        assert_eq!(health["phase"], "running");
    }
}

fn status_of(c: &Cluster, id: &str) -> NodeStatus {
    c.status(id).unwrap()
}

/// A copy of the enclave binary with a few more bytes: a different image, so different
/// PCR0 and PCR2.
fn modified_binary(c: &Cluster) -> std::path::PathBuf {
    let path = c.dir.path().join("enclave-modified");
    let mut bytes = std::fs::read(&c.nodes()[0].enclave_binary).unwrap();
    bytes.extend_from_slice(b"not the audited build");
    std::fs::write(&path, bytes).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    path
}

#[test]
fn manifests_need_k_signatures_and_a_higher_version() {
    let (c, envelope) = running_cluster(3);
    // Version 2 approved by one operator of three (K = 2): refused.
    let v2 = c.manifest_body(2, &[]).unwrap();
    let answer = c
        .submit_manifest("node-1", &c.sign(&v2, 1).unwrap())
        .unwrap();
    assert!(
        answer.as_ref().unwrap_err().contains("signature"),
        "{answer:?}"
    );
    // The same version again: refused.
    let answer = c.submit_manifest("node-1", &envelope).unwrap();
    assert!(
        answer.as_ref().unwrap_err().contains("version"),
        "{answer:?}"
    );
    // Garbage is refused without disturbing the node.
    assert!(c.submit_manifest("node-1", b"{not json").unwrap().is_err());
    assert_eq!(status_of(&c, "node-1").manifest_version, Some(1));
    // Version 2 with K signatures: accepted; then version 1, now lower: refused.
    let answer = c
        .submit_manifest("node-1", &c.sign(&v2, 2).unwrap())
        .unwrap();
    assert_eq!(answer, Ok("{\"accepted_version\":2}".to_owned()));
    assert_eq!(status_of(&c, "node-1").manifest_version, Some(2));
    let answer = c.submit_manifest("node-1", &envelope).unwrap();
    assert!(
        answer.as_ref().unwrap_err().contains("version"),
        "{answer:?}"
    );
    assert_eq!(status_of(&c, "node-1").manifest_version, Some(2));
}

#[test]
fn a_restarted_node_recovers_its_key_and_state_and_a_modified_one_is_refused() {
    let (mut c, _) = running_cluster(3);
    let created = status_of(&c, "node-1").state_created_ms;

    // Kill node-1 and restart it: it gets its key back from its peers and reads its
    // sealed state back.
    c.kill_enclave("node-1").unwrap();
    c.start_enclave("node-1").unwrap();
    c.wait_until("node-1 running again", STARTUP, |s| {
        s.iter()
            .any(|(id, s)| id == "node-1" && s.as_ref().is_ok_and(|s| running_and_attested(s, 2)))
    })
    .unwrap();
    assert_eq!(status_of(&c, "node-1").state_created_ms, created);

    // Restart node-3 from a different binary: every peer refuses it, and it waits.
    let modified = modified_binary(&c);
    c.kill_enclave("node-3").unwrap();
    c.use_binary("node-3", modified).unwrap();
    c.start_enclave("node-3").unwrap();
    c.wait_until("node-3 refused by every peer", STARTUP, |s| {
        s.iter().all(|(id, s)| {
            let Ok(s) = s else { return false };
            match id.as_str() {
                "node-3" => {
                    s.phase == "waiting_for_provisioning"
                        && s.peers.len() == 2
                        && s.peers.values().all(|p| !p.attested)
                }
                _ => s.peers.get("node-3").is_some_and(|p| {
                    !p.attested
                        && p.error
                            .as_deref()
                            .is_some_and(|e| e.contains("measurement"))
                }),
            }
        })
    })
    .unwrap();
    let (code, health) = c.healthz("node-3").unwrap();
    assert_eq!(code, 503);
    assert_eq!(health["phase"], "waiting_for_provisioning");
}

#[test]
fn when_every_node_restarts_they_wait_for_provisioning_and_say_so() {
    let (mut c, _) = running_cluster(3);
    let ids: Vec<String> = c.nodes().iter().map(|n| n.id.clone()).collect();
    for id in &ids {
        c.kill_enclave(id).unwrap();
    }
    for id in &ids {
        c.start_enclave(id).unwrap();
    }
    // No node has its own key, so none can open the escrow it holds for the others.
    c.wait_until("every node waiting for provisioning", STARTUP, |s| {
        all(s, |s| {
            s.phase == "waiting_for_provisioning"
                && s.reason
                    .as_deref()
                    .is_some_and(|r| r.contains("unavailable"))
        })
    })
    .unwrap();
    for id in &ids {
        let (code, health) = c.healthz(id).unwrap();
        assert_eq!(code, 503, "{health}");
        assert_eq!(health["enclave_reachable"], true);
        assert_eq!(health["phase"], "waiting_for_provisioning");
        // It never created a new key over its existing state.
        assert_eq!(status_of(&c, id).state_created_ms, None);
    }
}

#[test]
fn sealed_state_altered_on_the_parents_disk_is_detected() {
    let (mut c, _) = running_cluster(3);
    c.kill_enclave("node-2").unwrap();
    let blob = c.node("node-2").unwrap().blob_dir.join("node-info");
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&blob, bytes).unwrap();
    c.start_enclave("node-2").unwrap();
    c.wait_until("node-2 refusing its altered state", STARTUP, |s| {
        s.iter().any(|(id, s)| {
            id == "node-2"
                && s.as_ref().is_ok_and(|s| {
                    s.phase == "failed"
                        && s.reason.as_deref().is_some_and(|r| r.contains("node-info"))
                })
        })
    })
    .unwrap();
    // It stays up to say so, refuses work, and its parent's health endpoint reports it.
    let (code, health) = c.healthz("node-2").unwrap();
    assert_eq!(code, 503);
    assert_eq!(health["phase"], "failed");
    let envelope = c.sign(&c.manifest_body(2, &[]).unwrap(), 2).unwrap();
    assert!(c.submit_manifest("node-2", &envelope).unwrap().is_err());
}

#[test]
fn a_manifest_entry_with_other_measurements_is_refused() {
    let mut c = Cluster::new(3).unwrap();
    let other =
        serde_json::json!({"0": "11".repeat(48), "1": "22".repeat(48), "2": "33".repeat(48)});
    let envelope = c
        .sign(&c.manifest_body(1, &[("node-3", other)]).unwrap(), 2)
        .unwrap();
    c.write_manifest(&envelope).unwrap();
    c.start_all().unwrap();
    c.wait_until("nodes waiting for a manifest", STARTUP, |s| {
        all(s, |s| s.phase == "waiting_for_manifest")
    })
    .unwrap();
    for id in ["node-1", "node-2", "node-3"] {
        assert!(c.submit_manifest(id, &envelope).unwrap().is_ok());
    }
    c.wait_until("node-3 refused by node-1 and node-2", STARTUP, |s| {
        s.iter().filter(|(id, _)| id != "node-3").all(|(_, s)| {
            s.as_ref().is_ok_and(|s| {
                s.peers.get("node-3").is_some_and(|p| {
                    !p.attested
                        && p.error
                            .as_deref()
                            .is_some_and(|e| e.contains("measurement"))
                })
            })
        })
    })
    .unwrap();
    // A first start needs every peer: with node-3 refused, nobody creates a key.
    for id in ["node-1", "node-2"] {
        assert_eq!(status_of(&c, id).phase, "waiting_for_provisioning");
    }
}

#[test]
fn a_node_started_before_its_parent_waits_for_it() {
    let mut c = Cluster::new(1).unwrap();
    let envelope = c.sign(&c.manifest_body(1, &[]).unwrap(), 2).unwrap();
    c.write_manifest(&envelope).unwrap();
    c.start_enclave("node-1").unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    c.start_parent("node-1").unwrap();
    c.wait_until("node-1 waiting for a manifest", STARTUP, |s| {
        all(s, |s| s.phase == "waiting_for_manifest")
    })
    .unwrap();
    // A key command before the node runs is refused, and leaves the node answering.
    // (It runs no manifest, so the request names none the node could know.)
    let action = Action::CreateKey {
        threshold: 1,
        parties: Vec::new(),
        renew_aux: false,
    };
    let request = c
        .request_under(&[0; 32], 0, "k", action, DEFAULT_TTL_MS)
        .unwrap();
    let refused = c.submit_as("node-1", 0, request).unwrap().unwrap_err();
    assert!(refused.contains("not running"), "{refused}");
    assert_eq!(c.status("node-1").unwrap().phase, "waiting_for_manifest");
}
