//! An in-process cluster: nodes on in-memory blob stores, joined by in-memory pipes through
//! one stand-in parent, each with its own simulated Nitro attester under one simulated root, on
//! tokio's clock. Tests pause that clock, so a node's waits (between provisioning rounds,
//! liveness checks, idle channels) pass in virtual time: a boot, a restart or a minute of
//! waiting runs in milliseconds, the same way every time.
//!
//! A node of the manifest can also be played by the test ([`Cluster::impersonate`]): a
//! compromised enclave of the right image on the right host, which attests as that node
//! but sends whatever the test tells it to.
//!
//! What differs from the process-level cluster (`tests/`): no parent process (its blob
//! store is the node's `MemoryBlobs`, its relay is [`Cluster`]'s router, which forwards a
//! node's `CONNECT` to the named peer), and a stopped node's open connections end when
//! their idle timeouts do rather than at once.

use attestation::nsm::sim::{SimCa, SimMeasurements, SimNsm};
use attestation::{Attester, Verifier};
use enclave::channel::client_port::{self, ManifestRule, NodeExpectation};
use enclave::channel::{AttestedChannel, ChannelContext, PeerTrust, TlsIdentity};
use enclave::operator_api::{
    self, Answer, KeyCommand, MAX_REQUEST_LEN, MAX_RESPONSE_LEN, NodeStatus, OperatorRequest,
    SignedCommand,
};
use enclave::provisioning::PeerMessage;
use enclave::runtime::env::{Listen, Network, Stream};
use enclave::runtime::{
    Clock, Environment, MemoryNetwork, Node, NodeConfig, NodeError, PrimeSource, ThresholdConfig,
};
use enclave::sealed::{BlobStore, MemoryBlobs};
use manifest::{AcceptedManifest, OperatorKey, OperatorSignature, SignedManifest};
use protocol::authority::{Action, Approval, Authority, Request};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use transport::frame::{read_frame, write_frame};
use transport::{PARENT_CID, VsockAddr, connect, ports};

/// Where the parent keeps the manifest's plain copy for its node.
pub const MANIFEST_BLOB: &str = "manifest";
/// Pause between provisioning rounds, in virtual time.
pub const RETRY: Duration = Duration::from_secs(5);
/// Pause between liveness checks, in virtual time.
pub const PEER_CHECK: Duration = Duration::from_secs(30);

/// The operators of a test manifest: three, two of whom must approve.
pub struct Operators(Vec<(String, OperatorKey)>);

impl Operators {
    pub fn new() -> Self {
        Operators(
            (0..3)
                .map(|i| (format!("op-{i}"), OperatorKey::generate().unwrap()))
                .collect(),
        )
    }

    /// `command`, signed by the first operator for the connection with `exporter`.
    pub fn command(&self, exporter: &[u8; 32], command: &KeyCommand) -> OperatorRequest {
        let (id, key) = self.0.first().unwrap();
        OperatorRequest::Command(SignedCommand::sign(id, key, exporter, command))
    }

    /// `command`, signed by operator `i` for the connection with `exporter`.
    #[allow(dead_code)] // used by some test crates only
    pub fn command_as(
        &self,
        i: usize,
        exporter: &[u8; 32],
        command: &KeyCommand,
    ) -> OperatorRequest {
        let (id, key) = &self.0[i];
        OperatorRequest::Command(SignedCommand::sign(id, key, exporter, command))
    }

    /// Operator `i`'s approval of the request with id `request`.
    #[allow(dead_code)] // used by some test crates only
    pub fn approval(&self, i: usize, request: &[u8; 32]) -> Approval {
        let (id, key) = &self.0[i];
        Approval::sign(id, key, request)
    }

    /// The policy `body` in its envelope, approved by the first two operators.
    #[allow(dead_code)] // used by some test crates only
    pub fn policy(&self, body: &[u8]) -> Vec<u8> {
        let signatures: Vec<_> = self
            .0
            .iter()
            .take(2)
            .map(|(id, key)| OperatorSignature {
                operator: id.clone(),
                signature: policy::sign(body, key),
            })
            .collect();
        policy::SignedPolicy::assemble(body, &signatures)
            .unwrap()
            .envelope_bytes()
            .to_vec()
    }

    /// A request by the first operator under `manifest` at `now_ms` (Unix), approved by
    /// the first `approvals` operators.
    pub fn request(
        &self,
        manifest: &AcceptedManifest,
        key_id: &str,
        action: Action,
        now_ms: u64,
        approvals: usize,
    ) -> Authority {
        let bytes = Request::new(
            manifest.hash().as_bytes(),
            &ids::KeyId::new(key_id).unwrap(),
            action,
            &ids::OperatorId::new(self.0[0].0.as_str()).unwrap(),
            now_ms,
            protocol::authority::DEFAULT_TTL_MS,
            &[7u8; 16],
        )
        .encode()
        .unwrap();
        let id = protocol::authority::request_id(&bytes);
        let mut approvers = self.0.iter().take(approvals.max(1));
        let (first, key) = approvers.next().unwrap();
        let mut authority = Authority::new(bytes, Approval::sign(first, key, &id));
        for (operator, key) in approvers {
            authority.add(Approval::sign(operator, key, &id)).unwrap();
        }
        authority
    }

    /// A manifest of `version` listing `nodes` with their measurements (one Nitro set
    /// each, named by its provider) and the body's other top-level fields from `fields`
    /// (`placement`, `roots`), approved by the first two operators. Every node is of one
    /// provider: a key can be created only where `placement` allows it a quorum.
    pub fn manifest_with(
        &self,
        version: u64,
        nodes: &[(String, BTreeMap<String, String>)],
        fields: serde_json::Value,
    ) -> AcceptedManifest {
        let mut body = serde_json::json!({
            "version": version,
            "threshold": 2,
            "operators": self.0.iter().map(|(id, key)| serde_json::json!({
                "id": id, "public_key": key.public_key_hex(),
            })).collect::<Vec<_>>(),
            "nodes": nodes.iter().enumerate().map(|(i, (id, pcrs))| serde_json::json!({
                "id": id,
                "provider": "sim",
                "address": format!("127.0.0.1:{}", 7000 + i),
                "measurements": [{ "nitro": pcrs }],
            })).collect::<Vec<_>>(),
        });
        if let (Some(body), Some(fields)) = (body.as_object_mut(), fields.as_object()) {
            body.extend(fields.clone());
        }
        let body = serde_json::to_vec(&body).unwrap();
        let signatures: Vec<_> = self
            .0
            .iter()
            .take(2)
            .map(|(id, key)| OperatorSignature {
                operator: id.clone(),
                signature: manifest::sign(&body, key),
            })
            .collect();
        let signed = SignedManifest::assemble(&body, &signatures).unwrap();
        manifest::accept(None, signed).unwrap()
    }
}

/// Tokio's clock, with a wall-clock time that moves with it: what the nodes record (when
/// their state was created, when a peer was checked) follows the paused clock too.
#[derive(Debug)]
struct VirtualClock {
    start: tokio::time::Instant,
    start_ms: u64,
}

impl Clock for VirtualClock {
    fn now(&self) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }

    fn unix_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap();
        self.start_ms + elapsed
    }
}

/// A node of the cluster: its blob store (kept across restarts, as the parent's disk is)
/// and, while it runs, the node.
struct Member {
    cid: u32,
    blobs: MemoryBlobs,
    running: Option<Running>,
}

struct Running {
    node: Arc<Node<MemoryBlobs>>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), NodeError>>,
}

pub struct Cluster {
    pub net: MemoryNetwork,
    clock: Arc<VirtualClock>,
    ca: SimCa,
    verifier: Verifier,
    image: SimMeasurements,
    pub operators: Operators,
    pub manifest: AcceptedManifest,
    members: BTreeMap<String, Member>,
    router: JoinHandle<()>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.router.abort();
        for member in self.members.values_mut() {
            if let Some(running) = member.running.take() {
                running.task.abort();
            }
        }
    }
}

/// The Nitro measurements pinned for simulated node `id`: the image's PCR0..2 and its own
/// PCR4.
pub fn measurements(image: &SimMeasurements, id: &str) -> BTreeMap<String, String> {
    let pcrs = image.clone().with_pcr4(id.as_bytes().to_vec()).pcrs();
    [0u8, 1, 2, 4]
        .into_iter()
        .filter_map(|i| pcrs.get(&i).map(|v| (i.to_string(), hex::encode(v))))
        .collect()
}

impl Cluster {
    /// `n` nodes, `node-1`..`node-n`, none started, each with the manifest in its parent's
    /// store, as operators leave it before a first start. Every node is simulated Nitro,
    /// and the manifest allows that one provider a key's quorum.
    pub async fn new(n: usize) -> Self {
        Self::placed(n, serde_json::json!({"allow_provider_quorum": true})).await
    }

    /// [`Self::new`] under a manifest with `placement`.
    pub async fn placed(n: usize, placement: serde_json::Value) -> Self {
        Self::with_fields(n, |_| serde_json::json!({ "placement": placement })).await
    }

    /// [`Self::new`] under a manifest whose other top-level fields `fields` gives, from
    /// the DER of the simulated root the nodes' evidence chains to.
    pub async fn with_fields(n: usize, fields: impl FnOnce(&[u8]) -> serde_json::Value) -> Self {
        let now = SystemTime::now();
        let ca = SimCa::generate(now).unwrap();
        let verifier = Verifier::aws_nitro()
            .trust_simulated_root(ca.root_der(), now)
            .unwrap();
        let image = SimMeasurements::of_image(b"in-process cluster image");
        let ids: Vec<String> = (1..=n).map(|i| format!("node-{i}")).collect();
        let operators = Operators::new();
        let nodes: Vec<_> = ids
            .iter()
            .map(|id| (id.clone(), measurements(&image, id)))
            .collect();
        let manifest = operators.manifest_with(1, &nodes, fields(ca.root_der()));
        let mut members = BTreeMap::new();
        for (i, id) in ids.iter().enumerate() {
            let blobs = MemoryBlobs::new();
            blobs
                .put(MANIFEST_BLOB, manifest.envelope_bytes().to_vec())
                .await
                .unwrap();
            let cid = 17 + u32::try_from(i).unwrap();
            members.insert(
                id.clone(),
                Member {
                    cid,
                    blobs,
                    running: None,
                },
            );
        }
        let net = MemoryNetwork::new();
        let cids = members.iter().map(|(id, m)| (id.clone(), m.cid)).collect();
        let listener = net
            .bind(VsockAddr::new(PARENT_CID, ports::PARENT_OUTBOUND))
            .await
            .unwrap();
        let router = tokio::spawn(route(net.clone(), listener, cids));
        let clock = Arc::new(VirtualClock {
            start: tokio::time::Instant::now(),
            start_ms: 1_700_000_000_000,
        });
        Cluster {
            net,
            clock,
            ca,
            verifier,
            image,
            operators,
            manifest,
            members,
            router,
        }
    }

    fn member(&self, id: &str) -> &Member {
        self.members
            .get(id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// The nodes' wall clock, Unix milliseconds.
    pub fn unix_ms(&self) -> u64 {
        self.clock.unix_ms()
    }

    /// The roots the nodes trust: the production roots and this cluster's simulated CA.
    /// (Not every test binary that shares this module checks evidence itself.)
    #[allow(dead_code)]
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    pub fn blobs(&self, id: &str) -> MemoryBlobs {
        self.member(id).blobs.clone()
    }

    /// Starts node `id` (again) on its blob store, with a fresh simulated attester
    /// that measures its own PCR4, and no safe primes.
    pub fn start(&mut self, id: &str) {
        self.start_with(id, Vec::new());
    }

    /// [`Self::start`], with `primes` for auxiliary info.
    pub fn start_with(&mut self, id: &str, primes: Vec<mpc::ecdsa::SafePrimes>) {
        let attester: Arc<dyn Attester> = Arc::new(
            SimNsm::new(
                &self.ca,
                &self.image.clone().with_pcr4(id.as_bytes().to_vec()),
                SystemTime::now(),
            )
            .unwrap(),
        );
        let verifier = self.verifier.clone();
        let net = self.net.clone();
        let clock: Arc<dyn Clock> = self.clock.clone();
        let member = self.members.get_mut(id).unwrap();
        assert!(member.running.is_none(), "{id} runs already");
        let config = NodeConfig {
            node_id: id.to_owned(),
            cid: member.cid,
            verifier,
            allow_debug: false,
            max_evidence_age: Duration::from_secs(300),
            channel_lifetime: Duration::from_secs(3600),
            retry_interval: RETRY,
            peer_check_interval: PEER_CHECK,
            threshold: ThresholdConfig {
                round_timeout: Duration::from_secs(60),
                prime_wait: Duration::from_secs(1),
                presign_depth: 0,
                primes: PrimeSource::Preloaded(primes),
            },
        };
        let env = Environment {
            blobs: member.blobs.clone(),
            net: Arc::new(net),
            clock,
        };
        let node = Node::new(config, attester, env).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(node.clone().run(async move {
            let _ = stopped.await;
        }));
        member.running = Some(Running { node, stop, task });
    }

    /// Stops node `id` and waits until it has; its blob store stays.
    pub async fn stop(&mut self, id: &str) {
        let running = self.members.get_mut(id).unwrap().running.take().unwrap();
        let _ = running.stop.send(());
        running.task.await.unwrap().unwrap();
    }

    /// The parent of node `id` loses everything but the manifest's plain copy.
    pub async fn wipe(&mut self, id: &str) {
        let blobs = MemoryBlobs::new();
        blobs
            .put(MANIFEST_BLOB, self.manifest.envelope_bytes().to_vec())
            .await
            .unwrap();
        self.members.get_mut(id).unwrap().blobs = blobs;
    }

    pub fn status(&self, id: &str) -> NodeStatus {
        self.member(id)
            .running
            .as_ref()
            .unwrap_or_else(|| panic!("{id} does not run"))
            .node
            .status()
    }

    /// The nodes that run now.
    pub fn running(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|(_, m)| m.running.is_some())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Waits, in virtual time, until `check` holds for every running node's status, at
    /// most `limit`.
    pub async fn wait_until(
        &self,
        what: &str,
        limit: Duration,
        check: impl Fn(&str, &NodeStatus) -> bool,
    ) {
        let start = tokio::time::Instant::now();
        loop {
            let ids = self.running();
            if ids.iter().all(|id| check(id, &self.status(id))) {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "{what}: not within {limit:?}: {:#?}",
                ids.iter().map(|id| self.status(id)).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Plays node `id` (which must not run): it listens on `id`'s peer port and attests as
    /// `id`, answers what provisioning asks (no escrow held, escrows kept, pings), and hands
    /// every other message to the test.
    pub async fn impersonate(&self, id: &str) -> Impostor {
        assert!(self.member(id).running.is_none(), "{id} runs");
        let now = SystemTime::now();
        let attester: Arc<dyn Attester> = Arc::new(
            SimNsm::new(
                &self.ca,
                &self.image.clone().with_pcr4(id.as_bytes().to_vec()),
                now,
            )
            .unwrap(),
        );
        let peers = self
            .manifest
            .manifest()
            .nodes()
            .iter()
            .map(|n| (n.id().to_owned(), n.measurement_sets().unwrap()))
            .collect();
        let trust = PeerTrust {
            manifest_hash: *self.manifest.hash().as_bytes(),
            peers,
            verifier: self.verifier.clone(),
            max_evidence_age: Duration::from_secs(300),
            allow_debug: false,
        };
        let identity = Arc::new(TlsIdentity::generate(id, now).unwrap());
        let channels =
            Arc::new(ChannelContext::new(id.to_owned(), identity, attester, trust).unwrap());
        let listener = self
            .net
            .bind(VsockAddr::new(self.member(id).cid, ports::NODE_PEER))
            .await
            .unwrap();
        let (sender, received) = mpsc::unbounded_channel();
        let task = tokio::spawn(impostor_listens(listener, channels.clone(), sender));
        Impostor {
            id: id.to_owned(),
            net: self.net.clone(),
            channels,
            received,
            outbound: BTreeMap::new(),
            task,
        }
    }

    /// One operator request to node `id` over its client port, its hello checked like the
    /// operator's client checks it; `make` gets the connection's exporter value.
    pub async fn ask(
        &self,
        id: &str,
        make: impl FnOnce(&[u8; 32]) -> OperatorRequest,
    ) -> Result<Answer, String> {
        let expect = NodeExpectation {
            node_id: id.to_owned(),
            measurements: self.manifest.node(id).unwrap().measurement_sets().unwrap(),
            verifier: self.verifier.clone(),
            max_evidence_age: Duration::from_secs(300),
            allow_debug: false,
            manifest: ManifestRule::Unchecked,
        };
        let stream = self
            .net
            .connect(VsockAddr::new(self.member(id).cid, ports::NODE_CLIENT))
            .await
            .map_err(|e| e.to_string())?;
        let (mut port, _) = client_port::connect(stream, &expect)
            .await
            .map_err(|e| e.to_string())?;
        let request = make(&port.exporter).encode();
        write_frame(&mut port.stream, &request, MAX_REQUEST_LEN)
            .await
            .map_err(|e| e.to_string())?;
        let answer = read_frame(&mut port.stream, MAX_RESPONSE_LEN)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no answer")?;
        operator_api::decode(&answer).map_err(|e| e.to_string())
    }
}

/// The parents' relay: a node's outbound connection names a peer (`CONNECT <id>`), and is
/// joined to that peer's peer port, or refused when the peer does not listen.
async fn route(net: MemoryNetwork, listener: Box<dyn Listen>, cids: BTreeMap<String, u32>) {
    while let Ok(mut inbound) = listener.accept().await {
        let net = net.clone();
        let cids = cids.clone();
        tokio::spawn(async move {
            let Ok(line) = connect::read_line(&mut inbound).await else {
                return;
            };
            let cid = connect::parse_connect(&line)
                .ok()
                .and_then(|id| cids.get(id).copied());
            let outbound = match cid {
                Some(cid) => net
                    .connect(VsockAddr::new(cid, ports::NODE_PEER))
                    .await
                    .ok(),
                None => None,
            };
            let Some(mut outbound) = outbound else {
                let _ = connect::answer(&mut inbound, Err("peer not reachable")).await;
                return;
            };
            if connect::answer(&mut inbound, Ok(())).await.is_ok() {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

type Outbound = AttestedChannel<tokio_rustls::client::TlsStream<Stream>>;

/// A manifest node played by the test.
pub struct Impostor {
    pub id: String,
    net: MemoryNetwork,
    channels: Arc<ChannelContext>,
    received: mpsc::UnboundedReceiver<(String, PeerMessage)>,
    outbound: BTreeMap<String, Outbound>,
    task: JoinHandle<()>,
}

impl Drop for Impostor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Impostor {
    /// Sends `message` to node `to` on this impostor's channel to it, dialled through the
    /// parents' relay on first use.
    pub async fn send(&mut self, to: &str, message: &PeerMessage) {
        if !self.outbound.contains_key(to) {
            let mut stream = self
                .net
                .connect(VsockAddr::new(PARENT_CID, ports::PARENT_OUTBOUND))
                .await
                .unwrap();
            connect::request(&mut stream, to).await.unwrap();
            let channel = self.channels.connect(stream, to).await.unwrap();
            self.outbound.insert(to.to_owned(), channel);
        }
        let channel = self.outbound.get_mut(to).unwrap();
        channel.send(&message.encode()).await.unwrap();
    }

    /// The next message a node sent this impostor that provisioning does not answer
    /// (session messages), with the node it came from; at most `limit` of virtual time.
    pub async fn next(&mut self, limit: Duration) -> (String, PeerMessage) {
        tokio::time::timeout(limit, self.received.recv())
            .await
            .unwrap_or_else(|_| panic!("{}: nothing received within {limit:?}", self.id))
            .unwrap()
    }

    /// Whether a message is waiting now.
    pub fn has_received(&self) -> bool {
        !self.received.is_empty()
    }
}

async fn impostor_listens(
    listener: Box<dyn Listen>,
    channels: Arc<ChannelContext>,
    sender: mpsc::UnboundedSender<(String, PeerMessage)>,
) {
    while let Ok(stream) = listener.accept().await {
        let channels = channels.clone();
        let sender = sender.clone();
        tokio::spawn(async move {
            let Ok(mut channel) = channels.accept(stream).await else {
                return;
            };
            let from = channel.peer().node_id.clone();
            while let Ok(Some(bytes)) = channel.recv().await {
                let Ok(message) = PeerMessage::decode(&bytes) else {
                    return;
                };
                let answer = match message {
                    PeerMessage::ReleaseRequest { .. } => PeerMessage::NotHeld,
                    PeerMessage::EscrowPut { .. } => PeerMessage::EscrowStored,
                    PeerMessage::Ping => PeerMessage::Pong,
                    other => {
                        let _ = sender.send((from.clone(), other));
                        continue;
                    }
                };
                if channel.send(&answer.encode()).await.is_err() {
                    return;
                }
            }
        });
    }
}
