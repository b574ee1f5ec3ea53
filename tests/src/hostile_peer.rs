//! A compromised node, for attack tests: a genuine simulated enclave as far as evidence
//! goes (the cluster's simulated root, the real binary's measurements), listening on
//! another node's peer address from the manifest in place of its stopped parent and
//! enclave. It completes the attested channel like a real node and then answers
//! provisioning requests as the test scripts it, for instance releasing a data key of
//! its own choosing.

use crate::cluster::Cluster;
use attestation::Verifier;
use attestation::nsm::sim::{SimCa, SimMeasurements, SimNsm};
use channel::{ChannelContext, PeerTrust, TlsIdentity};
use manifest::SignedManifest;
use protocol::peer::{PeerMessage, release_info};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// What the hostile peer answers a node that asks for its data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseAnswer {
    /// `Released` with this key, correctly encrypted to the asker's attested HPKE key.
    Key([u8; 32]),
    /// `NotHeld`.
    NotHeld,
}

/// What happened on the hostile peer's channels, for the test to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `node` asked for its key and was answered as scripted.
    ReleaseAsked { node: String },
    /// `node` escrowed a key with it.
    EscrowReceived { node: String, key: [u8; 32] },
}

/// The measurements a look-alike of node `id` presents: those of the binary the node
/// runs, with PCR4 extended from the node id as the simulated instance of node `id`
/// would (manifests that do not pin PCR4 ignore it). Kept in one place so that it
/// follows how the simulator derives per-node values.
pub fn measurements_of(cluster: &Cluster, id: &str) -> Result<SimMeasurements, String> {
    SimMeasurements::of_file(&cluster.node(id)?.enclave_binary)
        .map(|m| m.with_pcr4(id.as_bytes().to_vec()))
        .map_err(|e| e.to_string())
}

/// A running hostile peer; stops when dropped.
#[derive(Debug)]
pub struct HostilePeer {
    events: Arc<Mutex<Vec<Event>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl HostilePeer {
    /// Listens on node `as_id`'s peer address (its parent must be stopped) under the
    /// manifest `envelope`, answering key-release requests: `answers` maps the asking
    /// node to the answer (nodes not listed get `NotHeld`).
    pub fn start(
        cluster: &Cluster,
        as_id: &str,
        envelope: &[u8],
        answers: BTreeMap<String, ReleaseAnswer>,
    ) -> Result<Self, String> {
        let context = look_alike(cluster, as_id, envelope)?;
        let port = cluster.node(as_id)?.peer_port;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
            .map_err(|e| format!("hostile peer cannot listen on {port}: {e}"))?;
        Ok(Self::serve_on(runtime, listener, context, answers))
    }

    /// Like [`start`](Self::start), on a listener the test bound (an address a forged
    /// manifest lists, say), attesting with `measurements` instead of those of a
    /// look-alike of `as_id`.
    pub fn start_on(
        cluster: &Cluster,
        as_id: &str,
        envelope: &[u8],
        measurements: &SimMeasurements,
        listener: std::net::TcpListener,
        answers: BTreeMap<String, ReleaseAnswer>,
    ) -> Result<Self, String> {
        let context = endpoint(cluster, as_id, envelope, measurements)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?
        };
        Ok(Self::serve_on(runtime, listener, context, answers))
    }

    fn serve_on(
        runtime: tokio::runtime::Runtime,
        listener: tokio::net::TcpListener,
        context: Arc<ChannelContext>,
        answers: BTreeMap<String, ReleaseAnswer>,
    ) -> Self {
        let events = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(answers);
        runtime.spawn({
            let events = events.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(
                        context.clone(),
                        stream,
                        answers.clone(),
                        events.clone(),
                    ));
                }
            }
        });
        HostilePeer {
            events,
            runtime: Some(runtime),
        }
    }

    /// Everything that happened so far.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The channel endpoint of a look-alike of node `as_id` under the manifest `envelope`:
/// it attests as a genuine simulated enclave of the binary node `as_id` runs, and checks
/// the other side against the manifest like a real node.
pub fn look_alike(
    cluster: &Cluster,
    as_id: &str,
    envelope: &[u8],
) -> Result<Arc<ChannelContext>, String> {
    endpoint(cluster, as_id, envelope, &measurements_of(cluster, as_id)?)
}

/// A manifest forged by an attacker: `version`, approved by two of three operator keys of
/// its own (none of the cluster's), listing `nodes` (manifest body entries).
pub fn forged_manifest(version: u64, nodes: Vec<serde_json::Value>) -> Result<Vec<u8>, String> {
    let operators = (0..3)
        .map(|_| manifest::OperatorKey::generate().map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let body = serde_json::to_vec(&serde_json::json!({
        "version": version,
        "threshold": 2,
        "operators": operators
            .iter()
            .enumerate()
            .map(|(i, k)| serde_json::json!({"id": format!("mallory-{i}"), "public_key": k.public_key_hex()}))
            .collect::<Vec<_>>(),
        "nodes": nodes,
    }))
    .map_err(|e| e.to_string())?;
    let signatures: Vec<manifest::OperatorSignature> = operators
        .iter()
        .take(2)
        .enumerate()
        .map(|(i, k)| manifest::OperatorSignature {
            operator: format!("mallory-{i}"),
            signature: manifest::sign(&body, k),
        })
        .collect();
    SignedManifest::assemble(&body, &signatures)
        .map(|signed| signed.envelope_bytes().to_vec())
        .map_err(|e| e.to_string())
}

/// The channel endpoint of an enclave with `measurements` calling itself `as_id`, under
/// the manifest `envelope`.
pub(crate) fn endpoint(
    cluster: &Cluster,
    as_id: &str,
    envelope: &[u8],
    measurements: &SimMeasurements,
) -> Result<Arc<ChannelContext>, String> {
    let now = SystemTime::now();
    let signed = SignedManifest::parse(envelope).map_err(|e| e.to_string())?;
    let accepted = manifest::accept(None, signed).map_err(|e| e.to_string())?;
    let mut peers = BTreeMap::new();
    for node in accepted.manifest().nodes() {
        let sets = node.measurement_sets().map_err(|e| e.to_string())?;
        peers.insert(node.id().to_owned(), sets);
    }
    let ca = SimCa::load_or_create(&cluster.dir.path().join("sim-ca"), now)
        .map_err(|e| e.to_string())?;
    let nsm = Arc::new(SimNsm::new(&ca, measurements, now).map_err(|e| e.to_string())?);
    let trust = PeerTrust {
        manifest_hash: *accepted.hash().as_bytes(),
        peers,
        verifier: Verifier::aws_nitro()
            .trust_simulated_root(ca.root_der(), now)
            .map_err(|e| e.to_string())?,
        max_evidence_age: Duration::from_secs(60),
        allow_debug: false,
    };
    let identity = Arc::new(TlsIdentity::generate(as_id, now).map_err(|e| e.to_string())?);
    ChannelContext::new(as_id.to_owned(), identity, nsm, trust)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

impl Drop for HostilePeer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn serve(
    context: Arc<ChannelContext>,
    stream: tokio::net::TcpStream,
    answers: Arc<BTreeMap<String, ReleaseAnswer>>,
    events: Arc<Mutex<Vec<Event>>>,
) {
    let Ok(mut channel) = context.accept(stream).await else {
        return;
    };
    let peer = channel.peer().node_id.clone();
    let record = |event| events.lock().unwrap_or_else(|p| p.into_inner()).push(event);
    while let Ok(Some(bytes)) = channel.recv().await {
        let reply = match PeerMessage::decode(&bytes) {
            Ok(PeerMessage::Ping) => PeerMessage::Pong,
            Ok(PeerMessage::EscrowPut { key }) => {
                record(Event::EscrowReceived {
                    node: peer.clone(),
                    key: *key,
                });
                PeerMessage::EscrowStored
            }
            Ok(PeerMessage::ReleaseRequest { document }) => {
                record(Event::ReleaseAsked { node: peer.clone() });
                match answers.get(&peer) {
                    Some(ReleaseAnswer::Key(key)) => {
                        release(&context, &peer, channel.exporter(), &document, key)
                    }
                    _ => PeerMessage::NotHeld,
                }
            }
            Ok(_) => continue,
            Err(e) => PeerMessage::Refused {
                reason: e.to_string(),
            },
        };
        if channel.send(&reply.encode()).await.is_err() {
            return;
        }
    }
}

/// `key` encrypted exactly as an honest peer releases an escrow: to the HPKE key bound in
/// the asker's fresh document, for its id, bound to this channel.
fn release(
    context: &ChannelContext,
    peer: &str,
    exporter: &[u8; 32],
    document: &[u8],
    key: &[u8; 32],
) -> PeerMessage {
    let refused = |reason: String| PeerMessage::Refused { reason };
    let public = match context.check_peer_document(peer, document, exporter) {
        Ok(Some(public)) => public,
        Ok(None) => return refused("no public key".to_owned()),
        Err(e) => return refused(e.to_string()),
    };
    let sealed = enclave::hpke::HpkePublicKey::from_bytes(&public)
        .map_err(|e| e.to_string())
        .and_then(|recipient| {
            enclave::hpke::seal(&recipient, &release_info(peer), exporter, key)
                .map_err(|e| e.to_string())
        });
    match sealed {
        Ok((enc, ciphertext)) => match <[u8; 32]>::try_from(enc.as_slice()) {
            Ok(enc) => PeerMessage::Released { enc, ciphertext },
            Err(_) => refused("encapsulation length".to_owned()),
        },
        Err(e) => refused(e),
    }
}
