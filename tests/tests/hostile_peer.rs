//! One compromised node answers `Released` with a data key of its own choosing, through
//! the real parent and enclave processes of the other nodes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use integration_tests::cluster::{Cluster, STARTUP};
use integration_tests::hostile_peer::{Event, HostilePeer, ReleaseAnswer};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const ATTACKER_KEY: [u8; 32] = [0xa7; 32];

fn release_to_node_1(key: [u8; 32]) -> BTreeMap<String, ReleaseAnswer> {
    BTreeMap::from([("node-1".to_owned(), ReleaseAnswer::Key(key))])
}

/// Polls node `id` alone (other nodes may be down or hostile) until `check` holds.
fn wait_for(
    c: &Cluster,
    id: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&protocol::operator_api::NodeStatus) -> bool,
) -> protocol::operator_api::NodeStatus {
    let deadline = Instant::now() + timeout;
    loop {
        let status = c.status(id);
        if let Ok(s) = &status
            && check(s)
        {
            return s.clone();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {id}: {what}; last status {status:#?}\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// First start of node-1: node-2 (compromised) releases a key it chose, node-3 says it
/// holds none. Adopting that key would make node-2 its only holder; node-1 must neither
/// adopt it nor create a key of its own, and must say which peer is in the way.
#[test]
fn a_first_start_does_not_adopt_a_key_one_peer_released() {
    let mut c = Cluster::new(3).unwrap();
    let envelope = c.sign(&c.manifest_body(1, &[]).unwrap(), 2).unwrap();
    c.write_manifest(&envelope).unwrap();
    let hostile =
        HostilePeer::start(&c, "node-2", &envelope, release_to_node_1(ATTACKER_KEY)).unwrap();
    for id in ["node-1", "node-3"] {
        c.start_parent(id).unwrap();
        c.start_enclave(id).unwrap();
    }
    for id in ["node-1", "node-3"] {
        wait_for(&c, id, "waiting for a manifest", STARTUP, |s| {
            s.phase == "waiting_for_manifest"
        });
        c.submit_manifest(id, &envelope).unwrap().unwrap();
    }
    // node-3 has a first start of its own (node-1 and the look-alike hold nothing for it).
    wait_for(&c, "node-3", "running", STARTUP, |s| s.phase == "running");

    // Several rounds of asking: node-1 keeps waiting and names node-2.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut asked = 0;
    while Instant::now() < deadline {
        let s = c.status("node-1").unwrap();
        assert_ne!(
            s.phase,
            "running",
            "node-1 took a key one peer released: {s:#?}\n{}",
            c.logs()
        );
        asked = hostile
            .events()
            .iter()
            .filter(|e| matches!(e, Event::ReleaseAsked { node } if node == "node-1"))
            .count();
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(asked >= 2, "the look-alike was asked {asked} times");
    let s = c.status("node-1").unwrap();
    assert_eq!(s.phase, "waiting_for_provisioning");
    let reason = s.reason.unwrap_or_default();
    assert!(
        reason.contains("node-2 released a key") && reason.contains("node-3: holds none"),
        "{reason}"
    );
    // And no key of node-1's reached the look-alike as an escrow.
    assert!(
        !hostile
            .events()
            .iter()
            .any(|e| matches!(e, Event::EscrowReceived { node, .. } if node == "node-1")),
        "{:?}",
        hostile.events()
    );
}

/// Restart of node-1, whose key node-2 and node-3 hold: node-2 is now compromised and
/// releases a wrong key. node-1 must not be bricked by it: it tries node-3's key too,
/// opens its state with it and runs, and logs node-2's key as not its own.
#[test]
fn a_restart_is_not_bricked_by_a_peer_releasing_a_wrong_key() {
    let (mut c, envelope) = Cluster::running(3).unwrap();
    c.kill_enclave("node-1").unwrap();
    c.kill_enclave("node-2").unwrap();
    c.kill_parent("node-2").unwrap();
    let hostile =
        HostilePeer::start(&c, "node-2", &envelope, release_to_node_1(ATTACKER_KEY)).unwrap();
    c.start_enclave("node-1").unwrap();

    let s = wait_for(&c, "node-1", "running", STARTUP, |s| {
        s.phase == "running" || s.phase == "failed"
    });
    assert_eq!(s.phase, "running", "{s:#?}\n{}", c.logs());
    assert!(
        hostile
            .events()
            .iter()
            .any(|e| matches!(e, Event::ReleaseAsked { node } if node == "node-1")),
        "the look-alike was never asked: {:?}",
        hostile.events()
    );
    let log = c.enclave_log("node-1").unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("does not open the sealed state") && l.contains("node-2")),
        "{log}"
    );
}

/// A channel a peer opened before a manifest update stops serving once the node installs
/// the update: escrow and key release must not go on under the trust the operators just
/// replaced.
#[test]
fn a_channel_opened_before_a_manifest_update_is_closed() {
    let (c, v1) = Cluster::running(3).unwrap();
    let v2 = c.sign(&c.manifest_body(2, &[]).unwrap(), 2).unwrap();
    // A look-alike of node-2 under v1 (the manifest node-1 trusts now).
    let mallory = integration_tests::hostile_peer::look_alike(&c, "node-2", &v1).unwrap();
    let port = c.node("node-1").unwrap().peer_port;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ping = protocol::peer::PeerMessage::Ping.encode();
    let mut channel = runtime.block_on(async {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let mut channel = mallory.connect(stream, "node-1").await.unwrap();
        // Served under v1.
        channel.send(&ping).await.unwrap();
        let pong = channel.recv().await.unwrap().unwrap();
        assert_eq!(
            protocol::peer::PeerMessage::decode(&pong).unwrap(),
            protocol::peer::PeerMessage::Pong
        );
        channel
    });

    c.submit_manifest("node-1", &v2).unwrap().unwrap();
    assert_eq!(c.status("node-1").unwrap().manifest_version, Some(2));

    let after = runtime.block_on(async {
        let asked = channel.send(&ping).await;
        let answer = tokio::time::timeout(Duration::from_secs(5), channel.recv()).await;
        (asked, answer)
    });
    assert!(
        matches!(after, (Err(_), _) | (Ok(()), Ok(Ok(None) | Err(_)))),
        "the channel attested under v1 still answered after v2 was installed: {after:?}"
    );
}

/// A node claiming node-2's id (a compromised node, while evidence cannot tell nodes of
/// one image apart) tries to replace the escrow node-1 holds for node-2 with a key of
/// its choosing: refused, and the escrow node-1 holds is unchanged.
#[test]
fn an_escrow_is_never_replaced_by_another_key() {
    use protocol::peer::PeerMessage;
    let (c, v1) = Cluster::running(3).unwrap();
    let mallory = integration_tests::hostile_peer::look_alike(&c, "node-2", &v1).unwrap();
    let port = c.node("node-1").unwrap().peer_port;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let answer = runtime.block_on(async {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let mut channel = mallory.connect(stream, "node-1").await.unwrap();
        // `EscrowPut` on the wire: version 1, kind 1, the key.
        let put = [&[1u8, 1][..], &ATTACKER_KEY[..]].concat();
        assert!(matches!(
            PeerMessage::decode(&put),
            Ok(PeerMessage::EscrowPut { .. })
        ));
        channel.send(&put).await.unwrap();
        PeerMessage::decode(&channel.recv().await.unwrap().unwrap()).unwrap()
    });
    assert!(
        matches!(&answer, PeerMessage::Refused { reason } if reason.contains("never replaced")),
        "{answer:?}"
    );
    assert!(
        c.enclave_log("node-1")
            .unwrap()
            .contains("escrow refused: another key is already held for this node")
    );
}
