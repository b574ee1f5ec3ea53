//! The launcher: one simulated cluster's nodes and the processes that run them. It lays
//! the cluster out, writes the manifest the parents read their address book from, and
//! starts, kills and restarts each node's `parent` and `enclave --sim`. It knows nothing
//! of what the nodes say: waiting for them is [`super::ready`]'s, through a client.
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
    /// Its enclave's CID.
    pub cid: u32,
    /// Its parent's ports on 127.0.0.1: peers, clients, and `/healthz` and `/metrics`.
    pub peer_port: u16,
    pub client_port: u16,
    pub admin_port: u16,
    /// Everything of this node: the directories below, its primes and its logs.
    pub dir: PathBuf,
    /// The Unix sockets standing in for vsock between its parent and its enclave.
    pub vsock_dir: PathBuf,
    /// Its parent's blob store.
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
    manifest: PathBuf,
    nodes: Vec<Node>,
    options: Options,
}

impl Launcher {
    /// Lays out `count` nodes (`node-1` ...) under `dir` and creates the cluster's
    /// simulated root (`dir/sim-ca`), which every enclave loads and clients trust.
    /// Starts nothing.
    pub fn prepare(
        dir: &Path,
        count: usize,
        binaries: Binaries,
        options: Options,
    ) -> Result<Self, SimError> {
        check_count(count)?;
        std::fs::create_dir_all(dir).map_err(super::io(dir))?;
        let dir = dir.canonicalize().map_err(super::io(dir))?;
        let sim_ca = dir.join("sim-ca");
        SimCa::load_or_create(&sim_ca, SystemTime::now())?;
        let nodes = layout::nodes(&dir, count)?;
        Ok(Launcher {
            nodes: nodes
                .iter()
                .map(|n| Node::from_record(n, &binaries))
                .collect(),
            manifest: dir.join("manifest.json"),
            sim_ca,
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
            nodes: self.nodes.iter().map(Node::record).collect(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn binaries(&self) -> &Binaries {
        &self.binaries
    }

    /// The simulated root's files.
    pub fn sim_ca(&self) -> &Path {
        &self.sim_ca
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

    /// Every node as a manifest lists it: at its parent's peer address, expected to run
    /// `image` as itself ([`approve::node_measurements`]), or with the measurements
    /// `overrides` gives it.
    pub fn listed(
        &self,
        image: &SimMeasurements,
        overrides: &[(&str, serde_json::Value)],
    ) -> Result<Vec<ListedNode>, SimError> {
        self.nodes
            .iter()
            .map(|n| {
                let measurements = match overrides.iter().find(|(id, _)| *id == n.id) {
                    Some((_, m)) => m.clone(),
                    None => serde_json::to_value(approve::node_measurements(image, &n.id))
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

    /// Starts node `id`'s parent.
    pub fn start_parent(&mut self, id: &str) -> Result<(), SimError> {
        let detached = self.options.detached;
        let manifest = self.manifest.clone();
        let binary = self.binaries.parent.clone();
        let node = self.node_mut(id)?;
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

    /// Starts node `id`'s enclave.
    pub fn start_enclave(&mut self, id: &str) -> Result<(), SimError> {
        let args = self.enclave_args(id)?;
        let detached = self.options.detached;
        let sim_ca = self.sim_ca.clone();
        let node = self.node_mut(id)?;
        let mut command = Command::new(&node.enclave_binary);
        command
            .args(["--sim", "run", "--node-id", &node.id])
            .args(["--cid", &node.cid.to_string()])
            .arg("--sim-dir")
            .arg(&node.vsock_dir)
            .arg("--sim-ca")
            .arg(&sim_ca)
            .args(args.words());
        node.enclave = Some(process::spawn(command, &node.enclave_log(), detached)?);
        Ok(())
    }

    /// Starts every parent, then every enclave.
    pub fn start_all(&mut self) -> Result<(), SimError> {
        for id in self.ids() {
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

    /// Kills node `id`'s parent at once: its relay and its blob store go with it.
    pub fn kill_parent(&mut self, id: &str) -> Result<(), SimError> {
        if let Some(proc) = self.node_mut(id)?.parent.take() {
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

/// Refuses a cluster of no nodes or of more than [`MAX_NODES`].
pub(super) fn check_count(count: usize) -> Result<(), SimError> {
    if (1..=MAX_NODES).contains(&count) {
        Ok(())
    } else {
        Err(SimError::Nodes { requested: count })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn scratch(name: &str) -> Scratch {
        Scratch(
            std::env::temp_dir().join(format!("custody-launcher-{name}-{}", std::process::id())),
        )
    }

    fn binaries() -> Binaries {
        Binaries {
            enclave: PathBuf::from("/nonexistent/enclave"),
            parent: PathBuf::from("/nonexistent/parent"),
        }
    }

    #[test]
    fn a_cluster_has_one_to_max_nodes() {
        let dir = scratch("count");
        for refused in [0, MAX_NODES + 1] {
            let err =
                Launcher::prepare(&dir.0, refused, binaries(), Options::attached()).unwrap_err();
            assert!(
                matches!(err, SimError::Nodes { requested } if requested == refused),
                "{err}"
            );
            assert!(!dir.0.exists(), "nothing is created for {refused} nodes");
        }
        check_count(1).unwrap();
        check_count(MAX_NODES).unwrap();
    }

    #[test]
    fn nodes_get_their_own_cid_ports_directories_and_primes() {
        let dir = scratch("layout");
        let launcher = Launcher::prepare(&dir.0, 3, binaries(), Options::attached()).unwrap();
        assert_eq!(launcher.ids(), ["node-1", "node-2", "node-3"]);
        let mut ports = std::collections::BTreeSet::new();
        for (i, n) in launcher.nodes().iter().enumerate() {
            assert_eq!(n.cid, 17 + u32::try_from(i).unwrap());
            for port in [n.peer_port, n.client_port, n.admin_port] {
                assert!(ports.insert(port), "port {port} given twice");
            }
            assert!(n.vsock_dir.is_dir() && n.blob_dir.is_dir());
            assert!(n.primes.is_file(), "{} has no primes", n.id);
            assert_eq!(
                n.enclave_log(),
                launcher.dir().join(&n.id).join("enclave.log")
            );
        }
        assert!(launcher.sim_ca().exists());
        assert!(launcher.node("node-4").is_err());
    }

    #[test]
    fn enclave_options_layer_defaults_cluster_and_node_without_repeating_a_flag() {
        let dir = scratch("args");
        let mut options = Options::attached();
        options.enclave_args.set("--presign-depth", "0");
        let mut launcher = Launcher::prepare(&dir.0, 2, binaries(), options).unwrap();
        launcher.set_enclave_arg("--round-timeout-secs", "120");
        launcher
            .set_node_enclave_arg("node-2", "--round-timeout-secs", "40")
            .unwrap();
        assert!(launcher.set_node_enclave_arg("node-9", "--x", "1").is_err());

        let one = launcher.enclave_args("node-1").unwrap();
        let two = launcher.enclave_args("node-2").unwrap();
        assert_eq!(one.get("--presign-depth"), Some("0"));
        assert_eq!(one.get("--round-timeout-secs"), Some("120"));
        assert_eq!(two.get("--round-timeout-secs"), Some("40"));
        assert_eq!(one.get("--retry-secs"), Some("1"));
        assert_eq!(one.get("--prime-generators"), Some("0"));
        let primes = launcher.node("node-1").unwrap().primes.clone();
        assert_eq!(one.get("--sim-primes"), primes.to_str());
        let words: Vec<&str> = two.words().collect();
        assert_eq!(
            words
                .iter()
                .filter(|w| **w == "--round-timeout-secs")
                .count(),
            1
        );

        // Without primes a node generates its own: no `--prime-generators 0`, which the
        // enclave would refuse without `--sim-primes`.
        std::fs::remove_file(&primes).unwrap();
        let one = launcher.enclave_args("node-1").unwrap();
        assert_eq!(one.get("--sim-primes"), None);
        assert_eq!(one.get("--prime-generators"), None);
    }

    #[test]
    fn a_record_finds_the_same_cluster_again() {
        let dir = scratch("record");
        let mut launcher = Launcher::prepare(&dir.0, 2, binaries(), Options::detached()).unwrap();
        launcher
            .use_binary("node-2", PathBuf::from("/elsewhere/enclave"))
            .unwrap();
        let record = launcher.record();
        assert_eq!(record.nodes.len(), 2);
        assert!(record.nodes.iter().all(|n| n.enclave_pid.is_none()));
        let again = Launcher::from_record(&record, Options::detached());
        assert_eq!(again.record(), record);
        // What the record cannot carry: a node's own binary.
        assert_eq!(
            again.node("node-2").unwrap().enclave_binary,
            binaries().enclave
        );
        // A missing binary is a typed error naming it, and nothing is recorded as running.
        let err = launcher.start_parent("node-1").unwrap_err();
        assert!(matches!(err, SimError::Start { .. }), "{err}");
        assert_eq!(launcher.node("node-1").unwrap().parent_pid(), None);
    }
}
