//! A restarted node trusts the manifest its parent stored only provisionally, and while it
//! is provisional operators may replace it with any manifest its own operators approve;
//! the sealed copy decides once the data key is back. A hostile parent that stalls the
//! reads of the sealed state must not be able to use that window: a forged manifest
//! submitted meanwhile must never let an attacker's enclave, posing as a peer the forged
//! manifest pins to the attacker's measurements, collect that peer's escrowed data key.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use attestation::Verifier;
use attestation::nsm::sim::{SimCa, SimMeasurements, SimNsm};
use channel::{ChannelContext, PeerTrust, TlsIdentity};
use enclave::hpke;
use enclave::sealed::{DataKey, INDEX_NAME, SealedIndex};
use integration_tests::cluster::{Cluster, STARTUP, all, measurements_json, running_and_attested};
use integration_tests::hostile_peer::forged_manifest;
use integration_tests::stalling_parent::StallingParent;
use manifest::SignedManifest;
use protocol::peer::{PeerMessage, release_info};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// PCR4 of the attacker's own enclave: the genuine binary, another instance.
const ATTACKER_INSTANCE: &str = "attacker";

/// The forged manifest: version 99, its own three operators (two sign), node-1 as it
/// really is and a "node-2" at the real node-2's address but pinned to the attacker's
/// enclave.
fn forged(c: &Cluster) -> Vec<u8> {
    let enclave = c.node("node-1").unwrap().enclave_binary.clone();
    let node = |id: &str, instance: &str| {
        serde_json::json!({
            "id": id,
            "provider": "sim",
            "address": format!("127.0.0.1:{}", c.node(id).unwrap().peer_port),
            "measurements": [measurements_json(&enclave, instance).unwrap()],
        })
    };
    forged_manifest(
        99,
        vec![node("node-1", "node-1"), node("node-2", ATTACKER_INSTANCE)],
    )
    .unwrap()
}

/// The attacker's enclave: the genuine code with its own instance's PCR4 and the
/// cluster's simulated root, checking node-1 against the forged manifest and calling
/// itself node-2.
fn attacker_enclave(c: &Cluster, forged: &[u8]) -> ChannelContext {
    let now = SystemTime::now();
    let signed = SignedManifest::parse(forged).unwrap();
    let peers = signed
        .manifest()
        .nodes()
        .iter()
        .map(|n| (n.id().to_owned(), n.measurement_sets().unwrap()))
        .collect::<BTreeMap<_, _>>();
    let ca = SimCa::load_or_create(&c.dir.path().join("sim-ca"), now).unwrap();
    let measurements = SimMeasurements::of_file(&c.node("node-1").unwrap().enclave_binary)
        .unwrap()
        .with_pcr4(ATTACKER_INSTANCE.as_bytes().to_vec());
    let nsm = SimNsm::new(&ca, &measurements, now).unwrap();
    let trust = PeerTrust {
        manifest_hash: *signed.hash().as_bytes(),
        peers,
        verifier: Verifier::aws_nitro()
            .trust_simulated_root(ca.root_der(), now)
            .unwrap(),
        max_evidence_age: Duration::from_secs(60),
        allow_debug: false,
    };
    let identity = Arc::new(TlsIdentity::generate("node-2", now).unwrap());
    ChannelContext::new("node-2".to_owned(), identity, Arc::new(nsm), trust).unwrap()
}

/// What node-1 answered the attacker's request for node-2's escrowed key.
#[derive(Debug)]
enum Answer {
    /// The key, decrypted with the attacker's one-time HPKE key.
    Released([u8; 32]),
    /// Anything else: another answer, a refused channel, a closed one.
    Other(String),
}

/// Dials node-1's peer port through its parent as "node-2", then asks for node-2's
/// escrowed key with a fresh document binding a one-time HPKE key. `sent` is told once
/// the request is on its way.
async fn ask_for_node2_key(
    attacker: Arc<ChannelContext>,
    port: u16,
    sent: tokio::sync::oneshot::Sender<()>,
) -> Answer {
    let stream = match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
        Ok(stream) => stream,
        Err(e) => return Answer::Other(format!("cannot reach node-1's parent: {e}")),
    };
    let mut channel = match attacker.connect(stream, "node-1").await {
        Ok(channel) => channel,
        Err(e) => return Answer::Other(format!("channel refused: {e}")),
    };
    let (secret, public) = hpke::generate_keypair().unwrap();
    let exporter = *channel.exporter();
    let document = attacker
        .attest(&exporter, public.to_bytes().to_vec())
        .await
        .unwrap();
    if let Err(e) = channel
        .send(&PeerMessage::ReleaseRequest { document }.encode())
        .await
    {
        return Answer::Other(format!("request not sent: {e}"));
    }
    let _ = sent.send(());
    let reply = match channel.recv().await {
        Ok(Some(reply)) => reply,
        Ok(None) => return Answer::Other("node-1 closed the channel".to_owned()),
        Err(e) => return Answer::Other(format!("channel failed: {e}")),
    };
    match PeerMessage::decode(&reply) {
        Ok(PeerMessage::Released { enc, ciphertext }) => {
            let key = hpke::open(
                &secret,
                &enc,
                &release_info("node-2"),
                &exporter,
                &ciphertext,
            )
            .unwrap();
            Answer::Released(<[u8; 32]>::try_from(key.as_slice()).unwrap())
        }
        Ok(other) => Answer::Other(format!("{other:?}")),
        Err(e) => Answer::Other(format!("undecodable answer: {e}")),
    }
}

/// Steps 1 to 3 of the attack, common to the tests below: node-1's parent turns
/// hostile, node-1 restarts, and while the read of its sealed node-info is stalled the
/// forged manifest goes in; then node-info goes through and the read of the sealed
/// manifest copy (which would revert the forgery) is stalled. Returns the proxy, still
/// stalling, and the attacker's enclave.
fn stalled_under_forged_manifest(c: &mut Cluster) -> (StallingParent, Arc<ChannelContext>) {
    // Everything that hashes the enclave binary is done before the clock starts: each
    // stall must end before the node's blob request times out.
    let forged = forged(c);
    let attacker = Arc::new(attacker_enclave(c, &forged));
    c.status("node-1").unwrap();

    // node-1's parent turns hostile: its blob store now answers through the proxy.
    let parent = StallingParent::start(&c.node("node-1").unwrap().vsock_dir, STARTUP).unwrap();
    parent.hold("node-info");
    c.kill_enclave("node-1").unwrap();
    c.start_enclave("node-1").unwrap();

    // (1) Peers released node-1's key and the sealed index opened; the read of the
    // sealed node-info is stalled. (2) The forged manifest goes in while v1 is still
    // provisional.
    parent
        .wait_stalled("node-info", STARTUP)
        .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
    let submitted = c.submit_manifest("node-1", &forged).unwrap();
    assert_eq!(
        submitted.as_deref(),
        Ok("{\"accepted_version\":99}"),
        "{}",
        c.logs()
    );

    // (3) node-info goes through; the read of the sealed manifest copy is stalled.
    parent.hold("accepted-manifest");
    parent.release("node-info");
    parent
        .wait_stalled("accepted-manifest", Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
    (parent, attacker)
}

/// Fails the test when `key`, which node-1 released to the attacker, is node-2's.
fn leaked(c: &Cluster, key: &[u8], how: &str) -> ! {
    let index = std::fs::read(c.node("node-2").unwrap().blob_dir.join(INDEX_NAME)).unwrap();
    let opens = <[u8; 32]>::try_from(key)
        .is_ok_and(|key| SealedIndex::open(&DataKey::from_bytes(&key), "node-2", &index).is_ok());
    panic!(
        "node-1 released node-2's escrowed key under a forged manifest (version 99, \
         approved only by the attacker's operators) {how}; the key {} node-2's sealed \
         state\n{}",
        if opens { "opens" } else { "does not open" },
        c.logs()
    );
}

/// After the attack: node-1 reverted to the sealed v1 and every node runs with every
/// After the attack: node-1 reverted to the sealed v1 and every node runs with every
/// peer attested.
fn reverted_to_v1(c: &Cluster, parent: &StallingParent) {
    parent.release("accepted-manifest");
    assert!(
        parent.overdue().is_empty(),
        "a stall outlasted the node's blob timeout ({:?}): the test ran too slowly to \
         show anything\n{}",
        parent.overdue(),
        c.logs()
    );
    c.wait_until(
        "node-1 back under manifest v1, every node running with every peer attested",
        STARTUP,
        |s| {
            all(s, |s| {
                running_and_attested(s, 2) && s.manifest_version == Some(1)
            })
        },
    )
    .unwrap();
    let log = c.enclave_log("node-1").unwrap();
    assert!(
        log.contains("parent's manifest refused; running under the sealed one"),
        "{log}"
    );
}

#[test]
fn a_stalled_confirmation_releases_no_key_under_a_forged_manifest() {
    let (mut c, _) = Cluster::running(3).unwrap();
    let node1_port = c.node("node-1").unwrap().peer_port;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (parent, attacker) = stalled_under_forged_manifest(&mut c);

    // (4) The attacker's enclave, trusted as node-2 by the forged manifest, asks node-1
    // for node-2's escrowed key. A node that serves the request from its sealed store
    // may answer only once the stalled read is over; give it time to receive the request
    // first, then let the read through.
    let (sent, was_sent) = tokio::sync::oneshot::channel();
    let mut request = runtime.spawn(ask_for_node2_key(attacker, node1_port, sent));
    let answer = runtime.block_on(async {
        let early = tokio::time::timeout(Duration::from_secs(5), async {
            let _ = was_sent.await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        });
        tokio::select! {
            answer = &mut request => return answer.unwrap(),
            _ = early => {}
        }
        parent.release("accepted-manifest");
        tokio::time::timeout(Duration::from_secs(30), request)
            .await
            .unwrap_or_else(|_| panic!("node-1 never answered\n{}", c.logs()))
            .unwrap()
    });
    let refusal = match answer {
        Answer::Released(key) => leaked(
            &c,
            &key,
            "while a stalled read kept it from confirming its manifest",
        ),
        Answer::Other(refusal) => refusal,
    };
    eprintln!("node-1 answered the attacker: {refusal}");
    reverted_to_v1(&c, &parent);
}

/// Requests the attacker keeps queued on its channel while the stalled read completes.
const QUEUED: usize = 30;

/// The same window, from the other side: the attacker's channel to node-1, attested
/// under the forged manifest during the stall, stays busy with release requests while
/// the stalled read completes and node-1 reverts to v1. No request on that channel may be
/// served with the forged trust once the sealed store is in use.
#[test]
fn requests_queued_under_a_forged_manifest_are_not_served_after_the_revert() {
    let (mut c, _) = Cluster::running(3).unwrap();
    let node1_port = c.node("node-1").unwrap().peer_port;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (parent, attacker) = stalled_under_forged_manifest(&mut c);

    let (answers, released) = runtime.block_on(async {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", node1_port))
            .await
            .unwrap();
        let mut channel = match attacker.connect(stream, "node-1").await {
            Ok(channel) => channel,
            // Refusing the forged trust outright also defeats the attack.
            Err(e) => return (vec![format!("channel refused: {e}")], None),
        };
        let (secret, public) = hpke::generate_keypair().unwrap();
        let exporter = *channel.exporter();
        let document = attacker
            .attest(&exporter, public.to_bytes().to_vec())
            .await
            .unwrap();
        let request = PeerMessage::ReleaseRequest { document }.encode();
        let mut answers = Vec::new();
        let mut released = None;
        let mut in_flight = 0;
        let mut stalled = true;
        // Keep QUEUED requests in flight; let the read through once they are queued,
        // and go on until node-1 closes the channel.
        loop {
            while in_flight < QUEUED {
                if channel.send(&request).await.is_err() {
                    break;
                }
                in_flight += 1;
            }
            if stalled {
                parent.release("accepted-manifest");
                stalled = false;
            }
            let reply = match tokio::time::timeout(Duration::from_secs(30), channel.recv()).await {
                Ok(Ok(Some(reply))) => reply,
                end => {
                    answers.push(format!("channel ended: {end:?}"));
                    break;
                }
            };
            in_flight -= 1;
            match PeerMessage::decode(&reply) {
                Ok(PeerMessage::Released { enc, ciphertext }) => {
                    let key = hpke::open(
                        &secret,
                        &enc,
                        &release_info("node-2"),
                        &exporter,
                        &ciphertext,
                    )
                    .unwrap();
                    released = Some(key.to_vec());
                    break;
                }
                other => answers.push(format!("{other:?}")),
            }
        }
        (answers, released)
    });
    if let Some(key) = released {
        leaked(
            &c,
            &key,
            &format!(
                "on a channel attested under it, to a request queued while the stalled read \
                 completed and node-1 reverted to v1 (after {} other answers)",
                answers.len()
            ),
        );
    }
    eprintln!("node-1 answered the attacker: {answers:?}");
    reverted_to_v1(&c, &parent);
}
