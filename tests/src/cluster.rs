//! A simulated cluster of real processes: per node, one `parent` and one `enclave`,
//! talking over Unix sockets that stand in for vsock, and TCP between parents.

use crate::{TempDir, binary};
use attestation::nsm::sim::SimMeasurements;
use enclave::operator_api::{MAX_RESPONSE_LEN, NodeStatus, OperatorRequest, decode_answer};
use manifest::{OperatorKey, OperatorSignature, SignedManifest};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One node's processes and addresses.
#[derive(Debug)]
pub struct NodeProcs {
    pub id: String,
    pub cid: u32,
    pub peer_port: u16,
    pub client_port: u16,
    pub admin_port: u16,
    pub vsock_dir: PathBuf,
    pub blob_dir: PathBuf,
    pub enclave_binary: PathBuf,
    enclave: Option<Child>,
    parent: Option<Child>,
}

/// Clusters run one at a time: each is a dozen processes on a small machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A cluster under a temporary directory; every process is killed on drop.
#[derive(Debug)]
pub struct Cluster {
    _turn: std::sync::MutexGuard<'static, ()>,
    pub dir: TempDir,
    pub nodes: Vec<NodeProcs>,
    pub operators: Vec<OperatorKey>,
    pub threshold: usize,
    pub manifest_path: PathBuf,
}

/// A free TCP port below the kernel's ephemeral range (32768 and up on Linux), so that
/// no outgoing connection can take it between this check and the parent binding it.
fn free_port() -> Result<u16, String> {
    use std::sync::atomic::{AtomicU16, Ordering};
    const FIRST: u16 = 20000;
    const COUNT: u16 = 12000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Start from a per-process offset so concurrent test processes rarely collide.
    let offset = u16::try_from(std::process::id() % u32::from(COUNT)).unwrap_or(0);
    for _ in 0..COUNT {
        let step = NEXT.fetch_add(7, Ordering::Relaxed);
        let port = FIRST + (offset.wrapping_add(step) % COUNT);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err("no free port below the ephemeral range".to_owned())
}

/// PCR0..2 of a binary as the simulator measures it, as manifest JSON.
pub fn measurements_json(binary: &Path) -> Result<serde_json::Value, String> {
    let pcrs = SimMeasurements::of_file(binary)
        .map_err(|e| e.to_string())?
        .pcrs();
    let mut set = serde_json::Map::new();
    for i in 0u8..3 {
        let value = pcrs.get(&i).ok_or("missing PCR")?;
        set.insert(i.to_string(), serde_json::Value::String(hex::encode(value)));
    }
    Ok(serde_json::Value::Object(set))
}

/// How long a cluster may take to reach a state.
pub const STARTUP: Duration = Duration::from_secs(60);

/// True when every status was read and satisfies `f`.
pub fn all(
    statuses: &[(String, Result<NodeStatus, String>)],
    f: impl Fn(&NodeStatus) -> bool,
) -> bool {
    statuses.iter().all(|(_, s)| s.as_ref().is_ok_and(&f))
}

/// Running, every peer attested, and this node's key escrowed with every peer.
pub fn running_and_attested(s: &NodeStatus, peers: usize) -> bool {
    s.phase == "running"
        && s.peers.len() == peers
        && s.peers.values().all(|p| p.attested)
        && s.escrow_pending.is_empty()
}

impl Cluster {
    /// Starts `n` nodes, submits a 2-of-3-signed manifest to each, and waits until every
    /// node runs, has attested every peer and has its key escrowed. Returns the cluster
    /// and the manifest envelope.
    pub fn running(n: usize) -> Result<(Cluster, Vec<u8>), String> {
        let mut c = Cluster::new(n)?;
        let envelope = c.sign(&c.manifest_body(1, &[])?, 2)?;
        c.write_manifest(&envelope)?;
        c.start_all()?;
        c.wait_until("nodes waiting for a manifest", STARTUP, |s| {
            all(s, |s| s.phase == "waiting_for_manifest")
        })?;
        let ids: Vec<String> = c.nodes.iter().map(|n| n.id.clone()).collect();
        for id in &ids {
            c.submit_manifest(id, &envelope)?
                .map_err(|e| format!("{id} refused the manifest: {e}"))?;
        }
        c.wait_until(
            "every node running with every peer attested",
            STARTUP,
            |s| all(s, |s| running_and_attested(s, n - 1)),
        )?;
        Ok((c, envelope))
    }

    /// Prepares `n` nodes (ids node-1..n) and three operators with threshold 2; starts
    /// nothing yet.
    pub fn new(n: usize) -> Result<Self, String> {
        // A test that failed while holding the turn does not stop the others.
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let dir = TempDir::new("cluster").map_err(|e| e.to_string())?;
        let enclave_binary = binary("enclave")?;
        let mut nodes = Vec::new();
        for i in 1..=n {
            let id = format!("node-{i}");
            let vsock_dir = dir.path().join(&id).join("vsock");
            let blob_dir = dir.path().join(&id).join("blobs");
            std::fs::create_dir_all(&vsock_dir).map_err(|e| e.to_string())?;
            std::fs::create_dir_all(&blob_dir).map_err(|e| e.to_string())?;
            nodes.push(NodeProcs {
                id,
                cid: 16 + u32::try_from(i).map_err(|e| e.to_string())?,
                peer_port: free_port()?,
                client_port: free_port()?,
                admin_port: free_port()?,
                vsock_dir,
                blob_dir,
                enclave_binary: enclave_binary.clone(),
                enclave: None,
                parent: None,
            });
        }
        let operators = (0..3)
            .map(|_| OperatorKey::generate().map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let manifest_path = dir.path().join("manifest.json");
        Ok(Cluster {
            _turn: turn,
            dir,
            nodes,
            operators,
            threshold: 2,
            manifest_path,
        })
    }

    pub fn node(&self, id: &str) -> Result<&NodeProcs, String> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or_else(|| format!("no node {id}"))
    }

    fn node_mut(&mut self, id: &str) -> Result<&mut NodeProcs, String> {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .ok_or_else(|| format!("no node {id}"))
    }

    /// The manifest body: every node expected to run the enclave binary it was given
    /// (or `expect` overrides per node), at its parent's peer address.
    pub fn manifest_body(
        &self,
        version: u64,
        expect: &[(&str, serde_json::Value)],
    ) -> Result<Vec<u8>, String> {
        let mut nodes = Vec::new();
        for n in &self.nodes {
            let measurements = match expect.iter().find(|(id, _)| *id == n.id) {
                Some((_, m)) => m.clone(),
                None => measurements_json(&binary("enclave")?)?,
            };
            nodes.push(serde_json::json!({
                "id": n.id,
                "provider": "sim",
                "address": format!("127.0.0.1:{}", n.peer_port),
                "measurements": [measurements],
            }));
        }
        let operators: Vec<_> = self
            .operators
            .iter()
            .enumerate()
            .map(|(i, k)| serde_json::json!({"id": format!("operator-{i}"), "public_key": k.public_key_hex()}))
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "version": version,
            "threshold": self.threshold,
            "operators": operators,
            "nodes": nodes,
        }))
        .map_err(|e| e.to_string())
    }

    /// Signs `body` with the first `signers` operators.
    pub fn sign(&self, body: &[u8], signers: usize) -> Result<Vec<u8>, String> {
        let signatures: Vec<OperatorSignature> = self
            .operators
            .iter()
            .enumerate()
            .take(signers)
            .map(|(i, k)| OperatorSignature {
                operator: format!("operator-{i}"),
                signature: manifest::sign(body, k),
            })
            .collect();
        SignedManifest::assemble(body, &signatures)
            .map(|m| m.envelope_bytes().to_vec())
            .map_err(|e| e.to_string())
    }

    /// Writes the manifest the parents read their address book from.
    pub fn write_manifest(&self, envelope: &[u8]) -> Result<(), String> {
        std::fs::write(&self.manifest_path, envelope).map_err(|e| e.to_string())
    }

    pub fn start_parent(&mut self, id: &str) -> Result<(), String> {
        let manifest = self.manifest_path.clone();
        let n = self.node_mut(id)?;
        let child = Command::new(binary("parent")?)
            .args(["--node-id", &n.id, "--enclave-cid", &n.cid.to_string()])
            .arg("--manifest")
            .arg(&manifest)
            .arg("--blob-dir")
            .arg(&n.blob_dir)
            .arg("--sim-dir")
            .arg(&n.vsock_dir)
            .args(["--peer-listen", &format!("127.0.0.1:{}", n.peer_port)])
            .args(["--client-listen", &format!("127.0.0.1:{}", n.client_port)])
            .args(["--admin-listen", &format!("127.0.0.1:{}", n.admin_port)])
            .stdout(Stdio::null())
            .stderr(log_file(&n.vsock_dir, "parent.log")?)
            .spawn()
            .map_err(|e| format!("start parent {id}: {e}"))?;
        n.parent = Some(child);
        Ok(())
    }

    pub fn start_enclave(&mut self, id: &str) -> Result<(), String> {
        let ca = self.dir.path().join("sim-ca");
        let n = self.node_mut(id)?;
        let child = Command::new(&n.enclave_binary)
            .args([
                "--sim",
                "run",
                "--node-id",
                &n.id,
                "--cid",
                &n.cid.to_string(),
            ])
            .arg("--sim-dir")
            .arg(&n.vsock_dir)
            .arg("--sim-ca")
            .arg(&ca)
            .args(["--retry-secs", "1", "--peer-check-secs", "1"])
            .stdout(Stdio::null())
            .stderr(log_file(&n.vsock_dir, "enclave.log")?)
            .spawn()
            .map_err(|e| format!("start enclave {id}: {e}"))?;
        n.enclave = Some(child);
        Ok(())
    }

    /// Starts every parent, then every enclave.
    pub fn start_all(&mut self) -> Result<(), String> {
        let ids: Vec<String> = self.nodes.iter().map(|n| n.id.clone()).collect();
        for id in &ids {
            self.start_parent(id)?;
        }
        for id in &ids {
            self.start_enclave(id)?;
        }
        Ok(())
    }

    /// Kills a node's enclave (SIGKILL: no chance to clean up).
    pub fn kill_enclave(&mut self, id: &str) -> Result<(), String> {
        let n = self.node_mut(id)?;
        if let Some(mut child) = n.enclave.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        Ok(())
    }

    /// Runs `node`'s enclave from another binary from now on.
    pub fn use_binary(&mut self, id: &str, path: PathBuf) -> Result<(), String> {
        self.node_mut(id)?.enclave_binary = path;
        Ok(())
    }

    /// One request to a node's client port, through its parent.
    pub fn request(
        &self,
        id: &str,
        request: &OperatorRequest,
    ) -> Result<Result<String, String>, String> {
        let port = self.node(id)?.client_port;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let mut stream = tokio::time::timeout(
                Duration::from_secs(5),
                tokio::net::TcpStream::connect(("127.0.0.1", port)),
            )
            .await
            .map_err(|_| "connect timed out".to_owned())?
            .map_err(|e| e.to_string())?;
            transport::frame::write_frame(
                &mut stream,
                &request.encode(),
                enclave::operator_api::MAX_REQUEST_LEN,
            )
            .await
            .map_err(|e| e.to_string())?;
            let answer = tokio::time::timeout(
                Duration::from_secs(10),
                transport::frame::read_frame(&mut stream, MAX_RESPONSE_LEN),
            )
            .await
            .map_err(|_| "answer timed out".to_owned())?
            .map_err(|e| e.to_string())?
            .ok_or("connection closed without an answer")?;
            decode_answer(&answer).map_err(|e| e.to_string())
        })
    }

    pub fn submit_manifest(
        &self,
        id: &str,
        envelope: &[u8],
    ) -> Result<Result<String, String>, String> {
        self.request(id, &OperatorRequest::SubmitManifest(envelope.to_vec()))
    }

    pub fn status(&self, id: &str) -> Result<NodeStatus, String> {
        let json = self.request(id, &OperatorRequest::Status)??;
        serde_json::from_str(&json).map_err(|e| e.to_string())
    }

    /// The parent's health endpoint: HTTP status code and JSON body.
    pub fn healthz(&self, id: &str) -> Result<(u16, serde_json::Value), String> {
        use std::io::{Read, Write};
        let port = self.node(id)?.admin_port;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut text = String::new();
        s.read_to_string(&mut text).map_err(|e| e.to_string())?;
        let code = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or("no status code")?;
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        let json = serde_json::from_str(body).map_err(|e| format!("{e}: {body}"))?;
        Ok((code, json))
    }

    /// Polls until `check` accepts the statuses of all nodes, or fails with the last
    /// statuses seen.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&[(String, Result<NodeStatus, String>)]) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let statuses: Vec<_> = self
                .nodes
                .iter()
                .map(|n| (n.id.clone(), self.status(&n.id)))
                .collect();
            if check(&statuses) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "timed out waiting for {what}; last statuses: {statuses:#?}\n{}",
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The tail of every process's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            for name in ["enclave.log", "parent.log"] {
                let text = std::fs::read_to_string(n.vsock_dir.join(name)).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                out.push_str(&format!("--- {} {name}\n", n.id));
                for line in tail.iter().rev() {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }
}

fn log_file(dir: &Path, name: &str) -> Result<std::fs::File, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .map_err(|e| e.to_string())
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            for child in [n.enclave.take(), n.parent.take()].into_iter().flatten() {
                let mut child = child;
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
