//! The launcher: one simulated cluster's nodes and the processes that run them. It lays
//! the cluster out, writes the manifest the parents read their address book from, and
//! starts, kills and restarts each node's `parent` and `enclave --sim`. It knows nothing
//! of what the nodes say: waiting for them is [`super::ready`]'s, through a client.
//!
//! A node stands in for a Nitro enclave (an `enclave` beside a `parent`) or for a
//! Confidential Space workload (`gcp-cs`: an `enclave --provider gcp-cs` alone, on the
//! TCP ports a parent would have taken, its blobs in its own directory). Every enclave
//! trusts both simulated roots, so that the two kinds verify each other.
//!
//! Beside what `custody sim` uses, it offers what fault injection needs, none of which is
//! test code: an enclave started from another binary ([`Launcher::use_binary`]), options
//! of `enclave run` for every node or for one ([`Launcher::set_enclave_arg`],
//! [`Launcher::set_node_enclave_arg`]), a parent killed on its own
//! ([`Launcher::kill_parent`]), and each node's socket directory, where a proxy can take
//! the parent's place ([`Node::vsock_dir`]).

use super::SimError;
use super::approve::{self, ListedNode};
use super::layout;
use super::process::{self, EnclaveArgs, Proc};
use crate::cluster_file::{SimCluster, SimNode};
use attestation::Provider;
use attestation::gcp::sim::{SimCsCa, SimWorkload};
use attestation::nsm::sim::{SimCa, SimMeasurements};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// Most nodes a simulated cluster may have.
pub const MAX_NODES: usize = 16;

/// The `enclave` and `parent` binaries a cluster runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    pub enclave: PathBuf,
    pub parent: PathBuf,
}

/// How a launcher runs its processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Every process in its own process group, to outlive the program that started it
    /// (`custody sim up`) whatever happens to that program's terminal.
    pub detached: bool,
    /// Options of every `enclave run`, over [`Options::default_enclave_args`].
    pub enclave_args: EnclaveArgs,
}

impl Options {
    /// What `custody sim` runs: detached processes, default options.
    pub fn detached() -> Self {
        Options {
            detached: true,
            enclave_args: EnclaveArgs::default(),
        }
    }

    /// Processes that stay in the caller's process group, so that they go with it.
    pub fn attached() -> Self {
        Options {
            detached: false,
            enclave_args: EnclaveArgs::default(),
        }
    }

    /// The options of `enclave run` for a simulated node: peers retried every second,
    /// checked every two, rounds given a minute, two presignatures kept per key.
    pub fn default_enclave_args() -> EnclaveArgs {
        EnclaveArgs::of(&[
            ("--retry-secs", "1"),
            ("--peer-check-secs", "2"),
            ("--round-timeout-secs", "60"),
            ("--presign-depth", "2"),
        ])
    }
}

/// One node of a simulated cluster: where it lives and what runs it.
#[derive(Debug)]
pub struct Node {
    pub id: String,
    /// The TEE it stands in: Nitro (with a parent) or Confidential Space (without).
    pub provider: Provider,
    /// Its enclave's CID (unused by a Confidential Space node).
    pub cid: u32,
    /// Its ports on 127.0.0.1, its parent's (or, without a parent, its enclave's): peers,
    /// clients, and `/healthz` and `/metrics`.
    pub peer_port: u16,
    pub client_port: u16,
    pub admin_port: u16,
    /// Everything of this node: the directories below, its primes and its logs.
    pub dir: PathBuf,
    /// The Unix sockets standing in for vsock between its parent and its enclave.
    pub vsock_dir: PathBuf,
    /// Its sealed blobs: its parent's store, or its enclave's own directory.
    pub blob_dir: PathBuf,
    /// Its share of the primes fixture, when it got one.
    pub primes: PathBuf,
    /// The binary its enclave is started from.
    pub enclave_binary: PathBuf,
    /// Its own options of `enclave run`, over the cluster's.
    enclave_args: EnclaveArgs,
    enclave: Option<Proc>,
    parent: Option<Proc>,
}

impl Node {
    fn from_record(record: &SimNode, binaries: &Binaries) -> Self {
        Node {
            id: record.id.clone(),
            provider: record.provider,
            cid: record.cid,
            peer_port: record.peer_port,
            client_port: record.client_port,
            admin_port: record.admin_port,
            dir: record.dir.clone(),
            vsock_dir: record.dir.join("vsock"),
            blob_dir: record.dir.join("blobs"),
            primes: record.primes.clone(),
            enclave_binary: binaries.enclave.clone(),
            enclave_args: EnclaveArgs::default(),
            enclave: record
                .enclave_pid
                .map(|pid| Proc::recorded(pid, &binaries.enclave)),
            parent: record
                .parent_pid
                .map(|pid| Proc::recorded(pid, &binaries.parent)),
        }
    }

    fn record(&self) -> SimNode {
        SimNode {
            id: self.id.clone(),
            provider: self.provider,
            cid: self.cid,
            peer_port: self.peer_port,
            client_port: self.client_port,
            admin_port: self.admin_port,
            dir: self.dir.clone(),
            primes: self.primes.clone(),
            enclave_pid: self.enclave_pid(),
            parent_pid: self.parent_pid(),
        }
    }

    /// Whether it runs a parent: a Nitro node does, a Confidential Space node does not.
    pub fn has_parent(&self) -> bool {
        self.provider != Provider::GcpCs
    }

    fn check_parent(&self) -> Result<(), SimError> {
        if self.has_parent() {
            Ok(())
        } else {
            Err(SimError::NoParent {
                node: self.id.clone(),
                provider: self.provider.name(),
            })
        }
    }

    pub fn enclave_log(&self) -> PathBuf {
        self.dir.join("enclave.log")
    }

    pub fn parent_log(&self) -> PathBuf {
        self.dir.join("parent.log")
    }

    /// The id of its enclave process, when one was started and not killed since.
    pub fn enclave_pid(&self) -> Option<u32> {
        self.enclave.as_ref().map(Proc::pid)
    }

    /// The id of its parent process, when one was started and not killed since.
    pub fn parent_pid(&self) -> Option<u32> {
        self.parent.as_ref().map(Proc::pid)
    }
}

/// A simulated cluster on this machine. Dropping it leaves its processes running: they
/// are stopped by [`Launcher::stop_all`] or [`Launcher::kill_all`], here or, through
/// [`Launcher::record`], from another invocation.
#[derive(Debug)]
pub struct Launcher {
    dir: PathBuf,
    binaries: Binaries,
    sim_ca: PathBuf,
    sim_gcp_ca: PathBuf,
    manifest: PathBuf,
    nodes: Vec<Node>,
    options: Options,
}

/// Where the simulated Confidential Space root of the cluster in `dir` is kept.
fn sim_gcp_ca_path(dir: &Path) -> PathBuf {
    dir.join("sim-gcp-ca")
}

impl Launcher {
    /// Lays out `count` Nitro nodes (`node-1` ...) under `dir`; see
    /// [`prepare_with`](Self::prepare_with).
    pub fn prepare(
        dir: &Path,
        count: usize,
        binaries: Binaries,
        options: Options,
    ) -> Result<Self, SimError> {
        Self::prepare_with(dir, &vec![Provider::Nitro; count], binaries, options)
    }

    /// Lays out one node per entry of `providers` (`node-1` ...) under `dir` and creates
    /// the cluster's simulated roots (`dir/sim-ca`, Nitro; `dir/sim-gcp-ca`, Confidential
    /// Space), which every enclave loads and clients trust. Starts nothing.
    pub fn prepare_with(
        dir: &Path,
        providers: &[Provider],
        binaries: Binaries,
        options: Options,
    ) -> Result<Self, SimError> {
        check_count(providers.len())?;
        if let Some(other) = providers.iter().find(|p| !SIMULATED.contains(p)) {
            return Err(SimError::Provider(other.name().to_owned()));
        }
        std::fs::create_dir_all(dir).map_err(super::io(dir))?;
        let dir = dir.canonicalize().map_err(super::io(dir))?;
        let sim_ca = dir.join("sim-ca");
        let sim_gcp_ca = sim_gcp_ca_path(&dir);
        let now = SystemTime::now();
        SimCa::load_or_create(&sim_ca, now)?;
        SimCsCa::load_or_create(&sim_gcp_ca, now)?;
        let nodes = layout::nodes(&dir, providers)?;
        Ok(Launcher {
            nodes: nodes
                .iter()
                .map(|n| Node::from_record(n, &binaries))
                .collect(),
            manifest: dir.join("manifest.json"),
            sim_ca,
            sim_gcp_ca,
            dir,
            binaries,
            options,
        })
    }

    /// The cluster a record (`cluster.toml`'s `[sim]`) describes, with the processes it
    /// lists as running.
    pub fn from_record(record: &SimCluster, options: Options) -> Self {
        let binaries = Binaries {
            enclave: record.enclave_binary.clone(),
            parent: record.parent_binary.clone(),
        };
        Launcher {
            dir: record.dir.clone(),
            sim_ca: record.sim_ca.clone(),
            sim_gcp_ca: record
                .sim_gcp_ca
                .clone()
                .unwrap_or_else(|| sim_gcp_ca_path(&record.dir)),
            manifest: record.manifest.clone(),
            nodes: record
                .nodes
                .iter()
                .map(|n| Node::from_record(n, &binaries))
                .collect(),
            binaries,
            options,
        }
    }

    /// What another invocation needs to find this cluster and its processes again.
    pub fn record(&self) -> SimCluster {
        SimCluster {
            dir: self.dir.clone(),
            enclave_binary: self.binaries.enclave.clone(),
            parent_binary: self.binaries.parent.clone(),
            manifest: self.manifest.clone(),
            sim_ca: self.sim_ca.clone(),
            sim_gcp_ca: Some(self.sim_gcp_ca.clone()),
            nodes: self.nodes.iter().map(Node::record).collect(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn binaries(&self) -> &Binaries {
        &self.binaries
    }

    /// The simulated Nitro root's files.
    pub fn sim_ca(&self) -> &Path {
        &self.sim_ca
    }

    /// The simulated Confidential Space root's files.
    pub fn sim_gcp_ca(&self) -> &Path {
        &self.sim_gcp_ca
    }

    /// The DER SHA-256 of each simulated root, by provider: what a manifest of this
    /// cluster pins (`"roots"`), so that its nodes and clients trust no other root.
    pub fn roots(&self) -> Result<Vec<(Provider, [u8; 32])>, SimError> {
        let now = SystemTime::now();
        let nitro = SimCa::load_or_create(&self.sim_ca, now)?;
        let gcp = SimCsCa::load_or_create(&self.sim_gcp_ca, now)?;
        Ok(vec![
            (Provider::Nitro, sha256(nitro.root_der())),
            (Provider::GcpCs, sha256(gcp.root_der())),
        ])
    }

    /// The manifest the parents read their address book from.
    pub fn manifest_path(&self) -> &Path {
        &self.manifest
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn ids(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.id.clone()).collect()
    }

    /// The nodes that run a parent (the Nitro ones).
    pub fn ids_with_parents(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.has_parent())
            .map(|n| n.id.clone())
            .collect()
    }

    pub fn node(&self, id: &str) -> Result<&Node, SimError> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or_else(|| SimError::UnknownNode(id.to_owned()))
    }

    fn node_mut(&mut self, id: &str) -> Result<&mut Node, SimError> {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .ok_or_else(|| SimError::UnknownNode(id.to_owned()))
    }

    /// What the simulator measures for the cluster's enclave binary (this hashes all of
    /// it).
    pub fn image(&self) -> Result<SimMeasurements, SimError> {
        Ok(SimMeasurements::of_file(&self.binaries.enclave)?)
    }

    /// Every node as a manifest lists it: at its peer address (its parent's, or its
    /// enclave's own), expected to run the cluster's enclave binary as itself (a Nitro
    /// node: `image`, [`approve::node_measurements`]; a Confidential Space node: the
    /// binary's digest on the instance named by its id, [`approve::cs_node_measurements`]),
    /// or with the measurements `overrides` gives it.
    pub fn listed(
        &self,
        image: &SimMeasurements,
        overrides: &[(&str, serde_json::Value)],
    ) -> Result<Vec<ListedNode>, SimError> {
        self.nodes
            .iter()
            .map(|n| {
                let measurements = match (overrides.iter().find(|(id, _)| *id == n.id), n.provider)
                {
                    (Some((_, m)), _) => m.clone(),
                    (None, Provider::GcpCs) => approve::cs_node_measurements(
                        &SimWorkload::of_file(&self.binaries.enclave, &n.id)?,
                    ),
                    (None, _) => serde_json::to_value(approve::node_measurements(image, &n.id))
                        .map_err(SimError::Json)?,
                };
                Ok(ListedNode {
                    id: n.id.clone(),
                    address: format!("127.0.0.1:{}", n.peer_port),
                    measurements,
                })
            })
            .collect()
    }

    /// Writes the manifest the parents read their address book from.
    pub fn write_manifest(&self, envelope: &[u8]) -> Result<(), SimError> {
        std::fs::write(&self.manifest, envelope).map_err(super::io(&self.manifest))
    }

    /// Sets `flag` of `enclave run` to `value` for every enclave started from now on.
    pub fn set_enclave_arg(&mut self, flag: &str, value: &str) {
        self.options.enclave_args.set(flag, value);
    }

    /// Sets `flag` of `enclave run` to `value` for node `id`'s enclave from now on, over
    /// the cluster's options.
    pub fn set_node_enclave_arg(
        &mut self,
        id: &str,
        flag: &str,
        value: &str,
    ) -> Result<(), SimError> {
        self.node_mut(id)?.enclave_args.set(flag, value);
        Ok(())
    }

    /// Starts node `id`'s enclave from `binary` from now on (a build whose measurements
    /// differ from what the manifest pins, say).
    pub fn use_binary(&mut self, id: &str, binary: PathBuf) -> Result<(), SimError> {
        self.node_mut(id)?.enclave_binary = binary;
        Ok(())
    }

    /// The options node `id`'s enclave is started with: its primes when it has some
    /// (and then no prime generation of its own), the defaults, the cluster's, its own.
    pub fn enclave_args(&self, id: &str) -> Result<EnclaveArgs, SimError> {
        let node = self.node(id)?;
        let mut args = Options::default_enclave_args();
        if node.primes.is_file() {
            let primes = node.primes.to_string_lossy();
            args.set("--sim-primes", &primes)
                .set("--prime-generators", "0");
        }
        Ok(args
            .then(&self.options.enclave_args)
            .then(&node.enclave_args))
    }

    /// Starts node `id`'s parent; a Confidential Space node has none.
    pub fn start_parent(&mut self, id: &str) -> Result<(), SimError> {
        let detached = self.options.detached;
        let manifest = self.manifest.clone();
        let binary = self.binaries.parent.clone();
        let node = self.node_mut(id)?;
        node.check_parent()?;
        let mut command = Command::new(binary);
        command
            .args([
                "--node-id",
                &node.id,
                "--enclave-cid",
                &node.cid.to_string(),
            ])
            .arg("--manifest")
            .arg(&manifest)
            .arg("--blob-dir")
            .arg(&node.blob_dir)
            .arg("--sim-dir")
            .arg(&node.vsock_dir)
            .args(["--peer-listen", &format!("127.0.0.1:{}", node.peer_port)])
            .args([
                "--client-listen",
                &format!("127.0.0.1:{}", node.client_port),
            ])
            .args(["--admin-listen", &format!("127.0.0.1:{}", node.admin_port)]);
        node.parent = Some(process::spawn(command, &node.parent_log(), detached)?);
        Ok(())
    }

    /// Starts node `id`'s enclave: a Nitro node's on the sockets its parent serves, a
    /// Confidential Space node's on TCP ports of its own with its blobs in its
    /// directory. Either trusts both simulated roots.
    pub fn start_enclave(&mut self, id: &str) -> Result<(), SimError> {
        let command = self.enclave_command(id)?;
        let detached = self.options.detached;
        let node = self.node_mut(id)?;
        node.enclave = Some(process::spawn(command, &node.enclave_log(), detached)?);
        Ok(())
    }

    /// The command line node `id`'s enclave is started with.
    fn enclave_command(&self, id: &str) -> Result<Command, SimError> {
        let args = self.enclave_args(id)?;
        let node = self.node(id)?;
        let mut command = Command::new(&node.enclave_binary);
        command.args(["--sim", "run", "--node-id", &node.id]);
        match node.provider {
            Provider::GcpCs => {
                let listen = |port: u16| format!("127.0.0.1:{port}");
                command
                    .args(["--provider", Provider::GcpCs.name()])
                    .arg("--blob-dir")
                    .arg(&node.blob_dir)
                    .args(["--peer-listen", &listen(node.peer_port)])
                    .args(["--client-listen", &listen(node.client_port)])
                    .args(["--status-listen", &listen(node.admin_port)]);
            }
            _ => {
                command
                    .args(["--cid", &node.cid.to_string()])
                    .arg("--sim-dir")
                    .arg(&node.vsock_dir);
            }
        }
        command
            .arg("--sim-ca")
            .arg(&self.sim_ca)
            .arg("--sim-gcp-ca")
            .arg(&self.sim_gcp_ca)
            .args(args.words());
        Ok(command)
    }

    /// Starts every parent (of the nodes that have one), then every enclave.
    pub fn start_all(&mut self) -> Result<(), SimError> {
        for id in self.ids_with_parents() {
            self.start_parent(&id)?;
        }
        for id in self.ids() {
            self.start_enclave(&id)?;
        }
        Ok(())
    }

    /// Kills node `id`'s enclave at once (SIGKILL: no chance to clean up).
    pub fn kill_enclave(&mut self, id: &str) -> Result<(), SimError> {
        if let Some(proc) = self.node_mut(id)?.enclave.take() {
            proc.kill();
        }
        Ok(())
    }

    /// Kills node `id`'s parent at once: its relay and its blob store go with it. A
    /// Confidential Space node has no parent to kill.
    pub fn kill_parent(&mut self, id: &str) -> Result<(), SimError> {
        let node = self.node_mut(id)?;
        node.check_parent()?;
        if let Some(proc) = node.parent.take() {
            proc.kill();
        }
        Ok(())
    }

    /// Kills node `id`'s enclave and starts it again.
    pub fn restart_enclave(&mut self, id: &str) -> Result<(), SimError> {
        self.kill_enclave(id)?;
        self.start_enclave(id)
    }

    fn take_all(&mut self) -> Vec<Proc> {
        self.nodes
            .iter_mut()
            .flat_map(|n| [n.enclave.take(), n.parent.take()])
            .flatten()
            .collect()
    }

    /// Stops every process, all at once: SIGTERM, then SIGKILL for any still running
    /// after five seconds. Safe to repeat.
    pub fn stop_all(&mut self) {
        process::stop_all(self.take_all());
    }

    /// Kills every process at once (SIGKILL). Safe to repeat.
    pub fn kill_all(&mut self) {
        for proc in self.take_all() {
            proc.kill();
        }
    }
}

/// The providers a simulated node can stand in.
pub const SIMULATED: [Provider; 2] = [Provider::Nitro, Provider::GcpCs];

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Refuses a cluster of no nodes or of more than [`MAX_NODES`].
pub(super) fn check_count(count: usize) -> Result<(), SimError> {
    if (1..=MAX_NODES).contains(&count) {
        Ok(())
    } else {
        Err(SimError::Nodes { requested: count })
    }
}

#[cfg(test)]
mod tests;
