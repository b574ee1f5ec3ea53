//! A node whose parent shows no sealed state recovers its data key from its peers
//! (every peer released the same key) and starts with nothing sealed to check the
//! manifest against. A hostile parent that hides the sealed state (from its listing and
//! its `get`s; the blobs stay on disk) and stalls the node's next blob request must not
//! be able to use that window: after a forged manifest submitted meanwhile, pinning
//! "node-2" and "node-3" to the attacker's enclaves at addresses the parent routes to
//! them, those enclaves must never receive the node's data key in escrow, and the node
//! must end up running under the real manifest.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use attestation::nsm::sim::SimMeasurements;
use enclave::sealed::{DataKey, INDEX_NAME, SealedIndex};
use integration_tests::cluster::{Cluster, STARTUP, measurements_json};
use integration_tests::hostile_peer::forged_manifest;
use integration_tests::hostile_peer::{Event, HostilePeer};
use integration_tests::stalling_parent::StallingParent;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// The ids the forged manifest gives the attacker's enclaves.
const IMPERSONATED: [&str; 2] = ["node-2", "node-3"];

/// How long the attacker's enclaves listen for an escrow once the stall is over.
const ESCROW_WAIT: Duration = Duration::from_secs(20);

/// How long the stalled blob request is held: a few seconds, under the node's timeout.
const STALL: Duration = Duration::from_secs(3);

/// PCR4 of the attacker's enclave posing as `id`: the genuine binary, another instance.
fn attacker_instance(id: &str) -> String {
    id.replace("node", "attacker")
}

/// The forged manifest: version 99, three operators of the attacker's (two sign),
/// node-1 as it really is, and "node-2"/"node-3" pinned to the attacker's enclaves at
/// `addresses`.
fn forged(c: &Cluster, addresses: &BTreeMap<&str, String>) -> Vec<u8> {
    let node1 = c.node("node-1").unwrap();
    let binary = &node1.enclave_binary;
    let mut nodes = vec![serde_json::json!({
        "id": "node-1",
        "provider": "sim",
        "address": format!("127.0.0.1:{}", node1.peer_port),
        "measurements": [measurements_json(binary, "node-1").unwrap()],
    })];
    for id in IMPERSONATED {
        nodes.push(serde_json::json!({
            "id": id,
            "provider": "sim",
            "address": addresses[id],
            "measurements": [measurements_json(binary, &attacker_instance(id)).unwrap()],
        }));
    }
    forged_manifest(99, nodes).unwrap()
}

/// The blobs node-1's parent holds, but for its plain copy of the manifest: the node's
/// sealed state.
fn sealed_blobs(c: &Cluster) -> Vec<String> {
    std::fs::read_dir(&c.node("node-1").unwrap().blob_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| transport::blob::validate_name(n).is_ok() && n != "manifest")
        .collect()
}

/// Escrows the attacker's enclaves received so far: (the id it posed as, the key).
fn escrows(attackers: &BTreeMap<&str, HostilePeer>) -> Vec<(String, [u8; 32])> {
    attackers
        .iter()
        .flat_map(|(posing_as, peer)| {
            peer.events().into_iter().filter_map(move |e| match e {
                Event::EscrowReceived { key, .. } => Some(((*posing_as).to_owned(), key)),
                Event::ReleaseAsked { .. } => None,
            })
        })
        .collect()
}

#[test]
fn a_recovery_without_sealed_state_escrows_no_key_under_a_forged_manifest() {
    let (mut c, _) = Cluster::running(3).unwrap();

    // The attacker's enclaves listen at addresses of the attacker's choosing, which the
    // forged manifest lists; everything that hashes the enclave binary is done before
    // the clock starts.
    let listeners: BTreeMap<&str, TcpListener> = IMPERSONATED
        .iter()
        .map(|id| (*id, TcpListener::bind(("127.0.0.1", 0)).unwrap()))
        .collect();
    let addresses: BTreeMap<&str, String> = listeners
        .iter()
        .map(|(id, l)| (*id, l.local_addr().unwrap().to_string()))
        .collect();
    let forged = forged(&c, &addresses);
    let binary = c.node("node-1").unwrap().enclave_binary.clone();
    let attackers: BTreeMap<&str, HostilePeer> = listeners
        .into_iter()
        .map(|(id, listener)| {
            let measurements = SimMeasurements::of_file(&binary)
                .unwrap()
                .with_pcr4(attacker_instance(id).into_bytes());
            let peer =
                HostilePeer::start_on(&c, id, &forged, &measurements, listener, BTreeMap::new())
                    .unwrap();
            (id, peer)
        })
        .collect();
    c.status("node-1").unwrap();

    // (1) node-1's parent turns hostile: its blob store answers through the proxy, which
    // shows the node none of its sealed blobs (left out of listings, `get`s answered as
    // absent; they stay on disk) but still serves the parent's plain copy of manifest v1,
    // and holds the node's next blob request after the listing; node-1 restarts and sees
    // no sealed state.
    let mut parent = StallingParent::start(&c.node("node-1").unwrap().vsock_dir, STARTUP).unwrap();
    parent.intercept_outbound().unwrap();
    for name in sealed_blobs(&c) {
        parent.hide_from_listing(&name);
        parent.hide_from_gets(&name);
    }
    parent.hold(INDEX_NAME);
    parent.hold_put("node-info");
    let sealed_index = std::fs::read(c.node("node-1").unwrap().blob_dir.join(INDEX_NAME)).unwrap();
    c.kill_enclave("node-1").unwrap();
    c.start_enclave("node-1").unwrap();

    // (2) Honest node-2 and node-3 released node-1's key; its next blob request is
    // stalled.
    let deadline = Instant::now() + STARTUP;
    let stalled = loop {
        let found = [INDEX_NAME, "put node-info"]
            .into_iter()
            .find(|name| parent.wait_stalled(name, Duration::ZERO).is_ok());
        if let Some(name) = found {
            break name;
        }
        assert!(
            Instant::now() < deadline,
            "node-1 never reached its sealed store; requests seen: {:?}\n{}",
            parent.requests(),
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let stalled_at = Instant::now();

    // (3) Meanwhile the forged manifest goes in through node-1's client port, and the
    // parent routes "node-2" and "node-3" to the attacker's enclaves. (4) The stall ends
    // after a few seconds, under the node's blob timeout, whether or not the node has
    // answered the submission by then.
    for (id, address) in &addresses {
        parent.route(id, address);
    }
    let submitted = std::thread::scope(|s| {
        let submission = s.spawn(|| c.submit_manifest("node-1", &forged));
        std::thread::sleep(STALL.saturating_sub(stalled_at.elapsed()));
        parent.release(INDEX_NAME);
        parent.release_put("node-info");
        submission.join().unwrap()
    });
    eprintln!("node-1 answered the forged manifest (stalled at {stalled}): {submitted:?}");
    assert!(
        parent.overdue().is_empty(),
        "a stall outlasted the node's blob timeout ({:?}): the test ran too slowly to show \
         anything\n{}",
        parent.overdue(),
        c.logs()
    );

    let waited = Instant::now() + ESCROW_WAIT;
    while Instant::now() < waited && escrows(&attackers).is_empty() {
        std::thread::sleep(Duration::from_millis(200));
    }
    if let Some((posing_as, key)) = escrows(&attackers).into_iter().next() {
        let opens = SealedIndex::open(&DataKey::from_bytes(&key), "node-1", &sealed_index).is_ok();
        panic!(
            "node-1 escrowed its data key with an enclave listed only by a forged manifest \
             (version 99, approved only by the attacker's operators): the attacker's \
             enclave posing as {posing_as} received a key that {} node-1's sealed state \
             from before the restart\n{}",
            if opens { "opens" } else { "does not open" },
            c.logs()
        );
    }

    // The parent routes the node's connections honestly again (a node that asks its
    // peers before it runs may do so now); node-1 runs under the real manifest,
    // whatever became of the forged one.
    for id in addresses.keys() {
        parent.unroute(id);
    }
    c.wait_until("node-1 running under manifest v1", STARTUP, |statuses| {
        statuses.iter().any(|(id, s)| {
            id == "node-1"
                && s.as_ref()
                    .is_ok_and(|s| s.phase == "running" && s.manifest_version == Some(1))
        })
    })
    .unwrap();
}
