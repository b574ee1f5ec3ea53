//! Nodes without a parent, in one process: each listens on loopback TCP itself, dials its
//! peer at the address the manifest lists, and keeps its sealed state in a directory, as
//! a Confidential Space node does. One attests as a simulated Nitro enclave, the other
//! with simulated Confidential Space tokens, so each verifies the other provider's
//! evidence, offline, in both directions of the channel. They provision each other, and a
//! restarted node gets its key back from its peer over a direct dial and reads its state
//! from its directory.
#![cfg(feature = "sim")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use attestation::gcp::sim::{SimCsAttester, SimCsCa, SimWorkload};
use attestation::nsm::sim::{SimCa, SimMeasurements, SimNsm};
use attestation::{Attester, Verifier};
use enclave::blobs::DirBlobs;
use enclave::operator_api::NodeStatus;
use enclave::runtime::{
    DirectListen, Environment, Node, NodeConfig, NodeError, PrimeSource, ThresholdConfig,
};
use enclave::sealed::BlobStore;
use manifest::{AcceptedManifest, OperatorKey, OperatorSignature, SignedManifest};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Where the plain copy of the manifest is kept for a node before its first start.
const MANIFEST_BLOB: &str = "manifest";
/// How long the nodes may take to get where a test expects them, in real time.
const SETTLE: Duration = Duration::from_secs(60);

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("enclave-direct-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// The image every node runs.
const IMAGE: &[u8] = b"direct cluster image";

/// The TEE a simulated node stands in.
#[derive(Clone, Copy)]
enum Tee {
    Nitro,
    GcpCs,
}

/// The measurement set node `id` on `tee` is pinned to, as manifest JSON.
fn measurements(tee: Tee, id: &str) -> serde_json::Value {
    match tee {
        Tee::Nitro => {
            let pcrs = SimMeasurements::of_image(IMAGE)
                .with_pcr4(id.as_bytes().to_vec())
                .pcrs();
            let set: serde_json::Map<String, serde_json::Value> = [0u8, 1, 2, 4]
                .into_iter()
                .map(|i| (i.to_string(), hex::encode(pcrs[&i]).into()))
                .collect();
            serde_json::json!({ "nitro": set })
        }
        Tee::GcpCs => {
            let set = SimWorkload::of_image(IMAGE, id).measurement_set().unwrap();
            let set: serde_json::Map<String, serde_json::Value> = set
                .entries()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.into()))
                .collect();
            serde_json::json!({ "gcp-cs": set })
        }
    }
}

/// A manifest of `nodes` (id, TEE, peer address), approved by its one operator.
fn manifest(nodes: &[(&str, Tee, SocketAddr)]) -> AcceptedManifest {
    let key = OperatorKey::generate().unwrap();
    let body = serde_json::to_vec(&serde_json::json!({
        "version": 1,
        "threshold": 1,
        "operators": [{"id": "op", "public_key": key.public_key_hex()}],
        "nodes": nodes.iter().map(|(id, tee, address)| serde_json::json!({
            "id": id,
            "provider": "sim",
            "address": address.to_string(),
            "measurements": [measurements(*tee, id)],
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    let signature = OperatorSignature {
        operator: "op".into(),
        signature: manifest::sign(&body, &key),
    };
    let signed = SignedManifest::assemble(&body, &[signature]).unwrap();
    manifest::accept(None, signed).unwrap()
}

struct Member {
    id: &'static str,
    tee: Tee,
    listen: DirectListen,
    blobs: DirBlobs,
    _dir: TempDir,
}

struct Running {
    node: Arc<Node<DirBlobs>>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), NodeError>>,
}

struct Cluster {
    ca: SimCa,
    cs_ca: SimCsCa,
    verifier: Verifier,
    members: Vec<Member>,
}

impl Cluster {
    async fn new(nodes: &[(&'static str, Tee)]) -> Self {
        let now = SystemTime::now();
        let ca = SimCa::generate(now).unwrap();
        let cs_ca = SimCsCa::new(now).unwrap();
        // What every simulated node trusts: the production roots and both simulated ones.
        let verifier = Verifier::production()
            .trust_simulated_root(ca.root_der(), now)
            .unwrap()
            .trust_simulated_gcp_root(cs_ca.root_der(), now)
            .unwrap();
        let listens: Vec<DirectListen> = nodes
            .iter()
            .map(|_| DirectListen {
                peer: free_port(),
                client: free_port(),
                status: free_port(),
            })
            .collect();
        let book: Vec<(&str, Tee, SocketAddr)> = nodes
            .iter()
            .zip(&listens)
            .map(|((id, tee), l)| (*id, *tee, l.peer))
            .collect();
        let manifest = manifest(&book);
        let mut members = Vec::new();
        for ((id, tee), listen) in nodes.iter().zip(listens) {
            let dir = TempDir::new(id);
            let (blobs, _) = DirBlobs::open(&dir.0).unwrap();
            blobs
                .put(MANIFEST_BLOB, manifest.envelope_bytes().to_vec())
                .await
                .unwrap();
            members.push(Member {
                id,
                tee: *tee,
                listen,
                blobs,
                _dir: dir,
            });
        }
        Cluster {
            ca,
            cs_ca,
            verifier,
            members,
        }
    }

    fn start(&self, i: usize) -> Running {
        let member = &self.members[i];
        let now = SystemTime::now();
        let attester: Arc<dyn Attester> = match member.tee {
            Tee::Nitro => {
                let image =
                    SimMeasurements::of_image(IMAGE).with_pcr4(member.id.as_bytes().to_vec());
                Arc::new(SimNsm::new(&self.ca, &image, now).unwrap())
            }
            Tee::GcpCs => {
                let workload = SimWorkload::of_image(IMAGE, member.id);
                Arc::new(SimCsAttester::new(&self.cs_ca, workload, now).unwrap())
            }
        };
        let config = NodeConfig {
            node_id: member.id.to_owned(),
            cid: 16,
            verifier: self.verifier.clone(),
            allow_debug: false,
            max_evidence_age: Duration::from_secs(300),
            channel_lifetime: Duration::from_secs(3600),
            retry_interval: Duration::from_millis(200),
            peer_check_interval: Duration::from_millis(500),
            threshold: ThresholdConfig {
                round_timeout: Duration::from_secs(60),
                prime_wait: Duration::from_secs(1),
                presign_depth: 0,
                primes: PrimeSource::Preloaded(Vec::new()),
            },
        };
        let env = Environment::direct(member.listen, member.blobs.clone());
        let node = Node::new(config, attester, env).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(node.clone().run(async move {
            let _ = stopped.await;
        }));
        Running { node, stop, task }
    }
}

async fn wait_until(what: &str, nodes: &[&Running], check: impl Fn(&NodeStatus) -> bool) {
    let start = std::time::Instant::now();
    loop {
        if nodes.iter().all(|r| check(&r.node.status())) {
            return;
        }
        assert!(
            start.elapsed() < SETTLE,
            "{what}: not within {SETTLE:?}: {:#?}",
            nodes.iter().map(|r| r.node.status()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn running_and_attested(status: &NodeStatus) -> bool {
    status.phase == "running"
        && status.escrow_pending.is_empty()
        && status.peers.len() == 1
        && status.peers.values().all(|p| p.attested)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_without_a_parent_provision_each_other_over_tcp_and_restart_from_their_directory() {
    let cluster = Cluster::new(&[("node-1", Tee::Nitro), ("node-2", Tee::GcpCs)]).await;
    let one = cluster.start(0);
    let two = cluster.start(1);
    wait_until("both run, escrowed with each other", &[&one, &two], |s| {
        running_and_attested(s)
    })
    .await;
    let created = two.node.status().state_created_ms;
    assert!(created.is_some());
    // Each checked the other's evidence, of the other provider: node-1 saw node-2's
    // image digest, node-2 saw node-1's PCR0.
    let digest = SimWorkload::of_image(IMAGE, "node-2").image_digest;
    let seen = one.node.status().peers["node-2"].pcr0.clone().unwrap();
    assert_eq!(format!("sha256:{seen}"), digest);
    let pcr0 = hex::encode(SimMeasurements::of_image(IMAGE).pcrs()[&0]);
    assert_eq!(
        two.node.status().peers["node-1"].pcr0.as_deref(),
        Some(pcr0.as_str())
    );

    // The status port is a TCP port of its own.
    let mut line = String::new();
    tokio::net::TcpStream::connect(cluster.members[1].listen.status)
        .await
        .unwrap()
        .read_to_string(&mut line)
        .await
        .unwrap();
    assert!(line.contains("\"running\""), "{line}");

    // The sealed state is in node-2's directory: a file per blob, sealed.
    let names = cluster.members[1].blobs.list("").await.unwrap();
    assert!(names.iter().any(|n| n == "index"), "{names:?}");
    assert!(names.iter().any(|n| n == "escrow-node-1"), "{names:?}");

    // Restarted on the same directory, node-2 gets its key back from node-1 and reads the
    // state it created.
    let _ = two.stop.send(());
    two.task.await.unwrap().unwrap();
    drop(two.node);
    let two = cluster.start(1);
    wait_until("node-2 runs again", &[&two], running_and_attested).await;
    assert_eq!(two.node.status().state_created_ms, created);

    for running in [one, two] {
        let _ = running.stop.send(());
        running.task.await.unwrap().unwrap();
    }
}
