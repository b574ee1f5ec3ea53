//! Whole nodes in one process ([`support::Cluster`]): provisioning, restarts, a parent
//! that lost its node's state, a first start that must wait for a peer, and nodes played
//! by the test that attack a coordinator's session, on a paused clock: minutes of the
//! nodes' time pass in milliseconds.
#![cfg(feature = "sim")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use enclave::operator_api::{Answer, KeyCommand, NodeStatus, OperatorRequest};
use enclave::provisioning::PeerMessage;
use enclave::sealed::BlobStore;
use enclave::threshold::request::{FailureKind, Operation, Outcome, SessionRequest};
use mpc::{Protocol, SessionId};
use protocol::authority::Action;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::Duration;
use support::{Cluster, Impostor, RETRY};

/// How long, in the nodes' time, a cluster may take to get where a test expects it.
const SETTLE: Duration = Duration::from_secs(120);

fn running_and_attested(status: &NodeStatus, peers: usize) -> bool {
    status.phase == "running"
        && status.escrow_pending.is_empty()
        && status.peers.len() == peers
        && status.peers.values().all(|p| p.attested)
}

async fn three_running() -> Cluster {
    let mut c = Cluster::new(3).await;
    for id in ["node-1", "node-2", "node-3"] {
        c.start(id);
    }
    c.wait_until(
        "every node runs, escrowed with both peers",
        SETTLE,
        |_, s| running_and_attested(s, 2),
    )
    .await;
    c
}

#[tokio::test(start_paused = true)]
async fn three_nodes_provision_on_a_first_start_and_escrow_with_each_other() {
    let c = three_running().await;
    let hash = c.manifest.hash().to_string();
    for id in ["node-1", "node-2", "node-3"] {
        let status = c.status(id);
        assert_eq!(status.manifest_version, Some(1));
        assert_eq!(status.manifest_hash.as_deref(), Some(hash.as_str()));
        assert!(status.state_created_ms.is_some());
        // Each holds the other two's escrowed keys, sealed.
        let names = c.blobs(id).list("").await.unwrap();
        for peer in ["node-1", "node-2", "node-3"].iter().filter(|p| **p != id) {
            assert!(
                names.contains(&format!("escrow-{peer}")),
                "{id} holds no escrow for {peer}: {names:?}"
            );
        }
    }
    // An operator reads the status over the client port, attested.
    let answer = c.ask("node-2", |_| OperatorRequest::Status).await.unwrap();
    let Answer::Json(json) = answer else {
        panic!("{answer:?}")
    };
    let status: NodeStatus = serde_json::from_str(&json).unwrap();
    assert_eq!(status.phase, "running");
}

#[tokio::test(start_paused = true)]
async fn a_restarted_node_gets_its_key_back_from_its_peers() {
    let mut c = three_running().await;
    let created = c.status("node-2").state_created_ms;
    c.stop("node-2").await;
    c.start("node-2");
    c.wait_until("node-2 back", SETTLE, |_, s| running_and_attested(s, 2))
        .await;
    // The same sealed state, opened with the key a peer released.
    assert_eq!(c.status("node-2").state_created_ms, created);
}

#[tokio::test(start_paused = true)]
async fn a_node_whose_parent_lost_its_state_adopts_the_key_every_peer_released() {
    let mut c = three_running().await;
    let created = c.status("node-3").state_created_ms;
    c.stop("node-3").await;
    c.wipe("node-3").await;
    // Later on the nodes' clock, which their wall-clock time follows here: the new state
    // is told apart by when it was created.
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.start("node-3");
    c.wait_until("node-3 back in a new store", SETTLE, |_, s| {
        running_and_attested(s, 2)
    })
    .await;
    let recreated = c.status("node-3").state_created_ms;
    assert!(recreated.is_some());
    assert_ne!(recreated, created, "a new store, not the lost one");
    // It escrowed the key with every peer again, and they confirmed they hold it.
    assert!(c.status("node-3").escrow_pending.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_first_start_waits_for_every_peer_and_says_why() {
    let mut c = Cluster::new(3).await;
    c.start("node-1");
    c.start("node-2");
    // Minutes of the nodes' time: rounds of asking, every RETRY, and still no key.
    c.wait_until("node-1 and node-2 wait for node-3", SETTLE, |_, s| {
        s.phase == "waiting_for_provisioning"
            && s.reason
                .as_deref()
                .is_some_and(|r| r.contains("node-3: unreachable"))
    })
    .await;
    tokio::time::sleep(RETRY * 24).await;
    for id in ["node-1", "node-2"] {
        let status = c.status(id);
        assert_eq!(status.phase, "waiting_for_provisioning", "{status:?}");
        assert!(
            c.blobs(id).list("").await.unwrap() == vec![support::MANIFEST_BLOB.to_owned()],
            "{id} created state without hearing from every peer"
        );
    }
    // An operator's key command is refused until the node runs, with the reason it waits;
    // a key's record is answered in any phase (none is held yet).
    let create = KeyCommand::Submit {
        authority: c.operators.request(
            &c.manifest,
            "k",
            Action::CreateKey {
                threshold: 2,
                parties: Vec::new(),
                renew_aux: false,
            },
            c.unix_ms(),
            2,
        ),
    };
    let refused = c
        .ask("node-1", |exporter| c.operators.command(exporter, &create))
        .await
        .unwrap();
    assert!(
        matches!(&refused, Answer::Refused(r) if r.starts_with("node is not running (waiting_for_provisioning") && r.contains("node-3: unreachable")),
        "{refused:?}"
    );
    let record = c
        .ask("node-1", |_| OperatorRequest::Key { key_id: "k".into() })
        .await
        .unwrap();
    assert_eq!(record, Answer::Refused("no key k".into()));
    c.start("node-3");
    c.wait_until("every node runs", SETTLE, |_, s| running_and_attested(s, 2))
        .await;
}

/// How long, in the nodes' time, a test waits for a message a node owes an impostor.
const PROMPT: Duration = Duration::from_secs(60);

/// A five-node manifest with `placement` where only node-1 runs, with the simulator's safe
/// primes; node-2..node-5 are played by the test.
async fn one_node_among_impostors(
    placement: serde_json::Value,
) -> (Cluster, BTreeMap<String, Impostor>) {
    let mut c = Cluster::placed(5, placement).await;
    let mut impostors = BTreeMap::new();
    for id in ["node-2", "node-3", "node-4", "node-5"] {
        impostors.insert(id.to_owned(), c.impersonate(id).await);
    }
    let fixture = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../mpc/fixtures/primes.json"
    ))
    .unwrap();
    c.start_with("node-1", mpc::sim::load_primes(&fixture).unwrap());
    c.wait_until("node-1 runs", SETTLE, |_, s| {
        s.phase == "running" && s.escrow_pending.is_empty()
    })
    .await;
    (c, impostors)
}

fn hash(request: &[u8]) -> [u8; 32] {
    Sha256::digest(request).into()
}

/// A colluding node that was not asked claims the session failed: dropped. A participant
/// that was asked fails it: every other participant is told to abort (the coordinator's
/// own session included), and the operator gets, typed, each participant's failure (the
/// silent one timed out), and nothing from the node that was not asked.
#[tokio::test(start_paused = true)]
async fn a_coordinator_drops_outcomes_from_nodes_it_did_not_ask_and_names_each_failure() {
    let (c, mut imp) =
        one_node_among_impostors(serde_json::json!({"allow_provider_quorum": true})).await;
    let create = KeyCommand::Submit {
        authority: c.operators.request(
            &c.manifest,
            "k",
            Action::CreateKey {
                threshold: 2,
                parties: vec!["node-1".into(), "node-2".into(), "node-3".into()],
                renew_aux: false,
            },
            c.unix_ms(),
            2,
        ),
    };
    let operator = c.ask("node-1", |exporter| c.operators.command(exporter, &create));
    let attack = async {
        // The parties lack auxiliary info: node-1 starts it at node-2 and node-3.
        let mut requests = Vec::new();
        for id in ["node-2", "node-3"] {
            let impostor = imp.get_mut(id).unwrap();
            let (from, message) = impostor.next(PROMPT).await;
            assert_eq!(from, "node-1");
            let PeerMessage::SessionStart { request } = message else {
                panic!("{id} got {message:?}")
            };
            requests.push(request);
        }
        assert_eq!(
            requests[0], requests[1],
            "every participant gets the same bytes"
        );
        let request = requests.pop().unwrap();
        let session = SessionId::derive(Protocol::AuxInfo, &request);
        let forged = Outcome::Failed {
            kind: FailureKind::Aborted,
            reason: "forged by node-4".into(),
            blamed: vec!["node-2".into()],
        };
        let done = |outcome: &Outcome| PeerMessage::SessionDone {
            request: hash(&request),
            outcome: outcome.encode(),
        };
        let node_4 = imp.get_mut("node-4").unwrap();
        node_4.send("node-1", &done(&forged)).await;
        let refused = Outcome::failed(FailureKind::Refused, "node-2 will not");
        imp.get_mut("node-2")
            .unwrap()
            .send("node-1", &done(&refused))
            .await;
        for id in ["node-2", "node-3"] {
            let (from, message) = imp.get_mut(id).unwrap().next(PROMPT).await;
            assert_eq!(from, "node-1");
            assert_eq!(
                message,
                PeerMessage::SessionAbort {
                    session: *session.as_bytes()
                },
                "{id}"
            );
        }
    };
    let (answer, ()) = tokio::join!(operator, attack);
    let Answer::Failed(failure) = answer.unwrap() else {
        panic!("not a typed failure")
    };
    assert_eq!(failure.step, "auxiliary info");
    let seen: Vec<(&str, FailureKind)> = failure
        .failures
        .iter()
        .map(|f| (f.node.as_str(), f.kind))
        .collect();
    assert_eq!(
        seen,
        [
            ("node-1", FailureKind::Aborted),
            ("node-2", FailureKind::Refused),
            ("node-3", FailureKind::TimedOut),
        ]
    );
    let reasons: Vec<&str> = failure.failures.iter().map(|f| f.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "aborted by the coordinator",
            "node-2 will not",
            "no answer from this participant"
        ]
    );
    assert!(!imp["node-4"].has_received());
}

/// Every node here is simulated Nitro, and this manifest does not let one provider hold a
/// key's signing quorum. The node an operator asks refuses such a key at once, naming the
/// provider and its count, and asks no peer anything. node-2, a coordinator that skipped
/// that check, asks node-1 to take part in the key generation anyway: node-1 checks the
/// request against its own manifest and refuses, with the same reason.
#[tokio::test(start_paused = true)]
async fn a_key_one_provider_could_sign_alone_is_refused_by_the_node_asked_and_by_each_party() {
    let (c, mut imp) = one_node_among_impostors(serde_json::json!({})).await;
    let placement = "provider nitro would hold 3 of the key's 3 shares, and 2 of them can sign";
    let create = |key_id: &str, parties: &[&str]| {
        c.operators.request(
            &c.manifest,
            key_id,
            Action::CreateKey {
                threshold: 2,
                parties: parties.iter().map(|p| (*p).to_owned()).collect(),
                renew_aux: false,
            },
            c.unix_ms(),
            2,
        )
    };
    let command = KeyCommand::Submit {
        authority: create("k", &["node-1", "node-2", "node-3"]),
    };
    let answer = c
        .ask("node-1", |exporter| c.operators.command(exporter, &command))
        .await
        .unwrap();
    let Answer::Json(json) = answer else {
        panic!("{answer:?}")
    };
    let answer: protocol::operator_api::RequestAnswer = serde_json::from_str(&json).unwrap();
    assert_eq!(
        answer.status,
        protocol::operator_api::RequestStatus::Refused,
        "{answer:?}"
    );
    let reason = answer.reason.unwrap_or_default();
    assert!(reason.contains(placement), "{reason}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    for (id, impostor) in &imp {
        assert!(!impostor.has_received(), "{id} was asked something");
    }

    // node-2 coordinates the same kind of key itself, skipping the rule.
    let authority = create("k2", &["node-1", "node-2", "node-3"]);
    let coordinator = mpc::NodeId::new("node-2").unwrap();
    let request = SessionRequest::new(
        &coordinator,
        c.manifest.hash().as_bytes(),
        &[9; 32],
        Operation::Keygen {
            key_id: "k2".into(),
            group: vec!["node-1".into(), "node-2".into(), "node-3".into()],
            threshold: 2,
            aux_info: hex::encode([1u8; 32]),
            authority,
        },
    )
    .encode()
    .unwrap();
    let node_2 = imp.get_mut("node-2").unwrap();
    node_2
        .send(
            "node-1",
            &PeerMessage::SessionStart {
                request: request.clone(),
            },
        )
        .await;
    let (from, message) = node_2.next(PROMPT).await;
    assert_eq!(from, "node-1");
    let PeerMessage::SessionDone {
        request: done,
        outcome,
    } = message
    else {
        panic!("{message:?}")
    };
    assert_eq!(done, hash(&request));
    match Outcome::decode(&outcome).unwrap() {
        Outcome::Failed { kind, reason, .. } => {
            assert_eq!(kind, FailureKind::Refused);
            assert!(reason.contains(placement), "{reason}");
        }
        other => panic!("node-1 took part: {other:?}"),
    }
}

/// The manifest pins the root each provider's evidence must chain to (`"roots"`). Pinned
/// to the simulated root the nodes' evidence chains to, they attest each other and run;
/// pinned to another root, which this node trusts no longer for that provider, no node
/// accepts a peer, and each says why.
#[tokio::test(start_paused = true)]
async fn peers_must_chain_to_the_root_the_manifest_pins() {
    let allow = serde_json::json!({"allow_provider_quorum": true});
    let pinned = |pin: Option<[u8; 32]>| {
        let allow = allow.clone();
        move |root: &[u8]| {
            let pin: [u8; 32] = pin.unwrap_or_else(|| Sha256::digest(root).into());
            serde_json::json!({"placement": allow, "roots": {"nitro": hex::encode(pin)}})
        }
    };
    let mut c = Cluster::with_fields(3, pinned(None)).await;
    for id in ["node-1", "node-2", "node-3"] {
        c.start(id);
    }
    c.wait_until("every node runs under its pinned root", SETTLE, |_, s| {
        running_and_attested(s, 2)
    })
    .await;
    drop(c);

    let other = [0x7a; 32];
    let mut c = Cluster::with_fields(3, pinned(Some(other))).await;
    for id in ["node-1", "node-2", "node-3"] {
        c.start(id);
    }
    tokio::time::sleep(RETRY * 6).await;
    for id in ["node-1", "node-2", "node-3"] {
        let status = c.status(id);
        assert_eq!(status.phase, "waiting_for_provisioning", "{status:?}");
        assert!(status.peers.values().all(|p| !p.attested), "{status:?}");
        let why = format!(
            "no trusted root has the pinned SHA-256 {}",
            hex::encode(other)
        );
        assert!(
            status.reason.as_deref().is_some_and(|r| r.contains(&why)),
            "{status:?}"
        );
    }
}
