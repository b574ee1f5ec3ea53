//! `custody sim up/down/kill/restart` (and `custody demo`) over the launcher: a cluster
//! whose processes outlive the command that started them, recorded in `cluster.toml`
//! after every change, and watched through the client's own verified requests under the
//! pinned manifest.

use super::SimError;
use super::approve::{self, operator_id};
use super::launcher::{Binaries, Launcher, Options, check_count};
use super::ready::{self, Probe, STARTUP, Statuses};
use crate::cluster_file::{ClusterFile, NodeEntry, OperatorEntry, SimCluster};
use crate::operator;
use crate::ops;
use attestation::nsm::sim::SimCa;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Operators of a simulated cluster, and how many must approve a manifest.
const OPERATORS: usize = 3;
const APPROVALS: usize = 2;

/// The `enclave` and `parent` binaries next to this program.
pub fn binaries() -> Result<Binaries, SimError> {
    let exe = std::env::current_exe().map_err(SimError::CurrentExe)?;
    let dir = exe.parent().ok_or(SimError::NoProgramDir)?;
    let find = |name: &str| {
        let path = dir.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(SimError::MissingBinary { path })
        }
    };
    Ok(Binaries {
        enclave: find("enclave")?,
        parent: find("parent")?,
    })
}

/// A node not yet verified by this client, or a refusal.
#[derive(Debug, thiserror::Error)]
enum ClientError {
    #[error("{phase} ({})", error.as_deref().unwrap_or_default())]
    Unverified {
        phase: String,
        error: Option<String>,
    },
    #[error(transparent)]
    Op(#[from] ops::OpError),
}

/// The nodes as `custody` sees them: through the cluster file's pinned manifest.
struct Client<'a>(&'a ClusterFile);

impl Probe for Client<'_> {
    type Error = ClientError;

    fn statuses(&self, ids: &[String]) -> Statuses<ClientError> {
        ops::status(self.0)
            .into_iter()
            .filter(|r| ids.contains(&r.id))
            .map(|r| {
                let status = match r.status {
                    Some(status) if r.attested => Ok(status),
                    _ => Err(ClientError::Unverified {
                        phase: r.phase,
                        error: r.error,
                    }),
                };
                (r.id, status)
            })
            .collect()
    }

    fn submit(&self, id: &str, envelope: &[u8]) -> Result<(), ClientError> {
        ops::submit_manifest(self.0, id, envelope)?;
        Ok(())
    }
}

/// Starts a cluster of `nodes` nodes under `dir` and waits until every node runs with every
/// peer attested. Returns the cluster file, also written to `dir/cluster.toml`.
/// `progress` receives one line per step.
pub fn up(dir: &Path, nodes: usize, progress: &dyn Fn(&str)) -> Result<ClusterFile, SimError> {
    check_count(nodes)?;
    if dir.join("cluster.toml").exists() {
        return Err(SimError::Occupied {
            dir: dir.to_owned(),
        });
    }
    let mut launcher = Launcher::prepare(dir, nodes, binaries()?, Options::detached())?;
    let dir = launcher.dir().to_owned();

    let operators_dir = dir.join("operators");
    std::fs::create_dir_all(&operators_dir).map_err(super::io(&operators_dir))?;
    let mut keys = Vec::new();
    for i in 0..OPERATORS {
        keys.push(operator::create(&key_file(&operators_dir, i))?);
    }

    let image = launcher.image()?;
    let body = approve::body(1, APPROVALS, &keys, &launcher.listed(&image, &[])?)?;
    let signed = approve::sign(&body, &keys, APPROVALS)?;
    let envelope = signed.envelope_bytes().to_vec();
    launcher.write_manifest(&envelope)?;

    let ca = SimCa::load_or_create(launcher.sim_ca(), SystemTime::now())?;
    let mut file = ClusterFile {
        max_evidence_age_secs: 300,
        allow_debug: false,
        sim_root: Some(hex::encode(ca.root_der())),
        operator: OperatorEntry {
            id: operator_id(0),
            key_file: key_file(&operators_dir, 0),
        },
        // The cluster this operator trusts: the manifest created here.
        manifest: crate::pin::Pin::of(&signed).entry(),
        nodes: launcher
            .nodes()
            .iter()
            .map(|n| NodeEntry {
                id: n.id.clone(),
                client: format!("127.0.0.1:{}", n.client_port),
                measurements: approve::node_measurements(&image, &n.id).into(),
            })
            .collect(),
        sim: Some(launcher.record()),
    };
    let path = dir.join("cluster.toml");
    let result = start_and_provision(&mut launcher, &mut file, &path, &envelope, progress);
    if result.is_err() {
        launcher.stop_all();
        let _ = save(&launcher, &mut file, &path);
    }
    result.map(|()| file)
}

fn key_file(operators_dir: &Path, i: usize) -> PathBuf {
    operators_dir.join(format!("{}.key", operator_id(i)))
}

/// Records the launcher's processes in the cluster file and writes it.
fn save(launcher: &Launcher, file: &mut ClusterFile, path: &Path) -> Result<(), SimError> {
    file.sim = Some(launcher.record());
    file.save(path)?;
    Ok(())
}

fn start_and_provision(
    launcher: &mut Launcher,
    file: &mut ClusterFile,
    path: &Path,
    envelope: &[u8],
    progress: &dyn Fn(&str),
) -> Result<(), SimError> {
    let ids = launcher.ids();
    progress(&format!("starting {} parents and enclaves", ids.len()));
    for id in &ids {
        launcher.start_parent(id)?;
        // Written after every start, so that `sim down` finds whatever was started.
        save(launcher, file, path)?;
    }
    for id in &ids {
        launcher.start_enclave(id)?;
        save(launcher, file, path)?;
    }
    ready::provision(launcher, &Client(file), envelope, STARTUP, progress)?;
    Ok(())
}

fn recorded(file: &ClusterFile) -> Result<&SimCluster, SimError> {
    file.sim.as_ref().ok_or(SimError::NotSimulated)
}

/// Kills node `id`'s enclave at once (SIGKILL: no chance to clean up).
pub fn kill_enclave(file: &mut ClusterFile, path: &Path, id: &str) -> Result<(), SimError> {
    let mut launcher = Launcher::from_record(recorded(file)?, Options::detached());
    launcher.kill_enclave(id)?;
    save(&launcher, file, path)
}

/// Restarts node `id`'s enclave and waits until it runs with every peer attested.
pub fn restart_enclave(file: &mut ClusterFile, path: &Path, id: &str) -> Result<(), SimError> {
    let mut launcher = Launcher::from_record(recorded(file)?, Options::detached());
    launcher.restart_enclave(id)?;
    save(&launcher, file, path)?;
    let peers = file.nodes.len().saturating_sub(1);
    ready::wait_each(
        &launcher,
        &Client(file),
        &[id.to_owned()],
        STARTUP,
        "running with every peer attested",
        |s| ready::running_with_peers(s, peers),
    )?;
    Ok(())
}

/// Stops every process of the cluster, all at once: SIGTERM, then SIGKILL for any still
/// running after five seconds. Safe to repeat.
pub fn down(file: &mut ClusterFile, path: &Path) -> Result<(), SimError> {
    let mut launcher = Launcher::from_record(recorded(file)?, Options::detached());
    launcher.stop_all();
    file.sim = Some(launcher.record());
    if path.exists() {
        file.save(path)?;
    }
    Ok(())
}
