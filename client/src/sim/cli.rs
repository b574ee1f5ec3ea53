//! `custody sim up/down/kill/restart` (and `custody demo`) over the launcher: a cluster
//! whose processes outlive the command that started them, recorded in `cluster.toml`
//! after every change, and watched through the client's own verified requests under the
//! pinned manifest.

use super::SimError;
use super::approve::{self, operator_id};
use super::launcher::{Binaries, Launcher, Options, check_count};
use super::ready::{self, Probe, STARTUP, Statuses};
use crate::cluster_file::{ClusterFile, NodeEntry, NodeMeasurements, OperatorEntry, SimCluster};
use crate::operator;
use crate::ops;
use attestation::Provider;
use attestation::gcp::sim::{SimCsCa, SimWorkload};
use attestation::nsm::sim::{SimCa, SimMeasurements};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The operators of a simulated cluster: how many, and how many of them must approve a
/// manifest, a policy or a key (the manifest's threshold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operators {
    pub count: usize,
    pub approvals: usize,
}

impl Default for Operators {
    /// Three operators, two of whom approve.
    fn default() -> Self {
        Operators {
            count: 3,
            approvals: 2,
        }
    }
}

impl Operators {
    /// 1 to [`manifest::MAX_OPERATORS`] operators, of whom 1 to all approve.
    pub fn check(self) -> Result<Self, SimError> {
        if (1..=manifest::MAX_OPERATORS).contains(&self.count)
            && (1..=self.count).contains(&self.approvals)
        {
            Ok(self)
        } else {
            Err(SimError::Operators {
                count: self.count,
                approvals: self.approvals,
            })
        }
    }
}

/// The cluster file of operator `i` (from 0) of a simulated cluster in `dir`: operator
/// 0's is `cluster.toml`, which also records the cluster's processes; every other
/// operator's, `cluster-operator-<i>.toml`, is the same but for the operator.
pub fn operator_cluster_file(dir: &Path, i: usize) -> PathBuf {
    if i == 0 {
        dir.join("cluster.toml")
    } else {
        dir.join(format!("cluster-{}.toml", operator_id(i)))
    }
}

/// How many nodes a cluster has when neither a count nor a list of providers is given.
pub const DEFAULT_NODES: usize = 3;

/// The provider of each node of a cluster, from `custody sim up`'s `--nodes` and
/// `--providers`: the list when given (its length is the node count, and a count that
/// disagrees is refused), otherwise `nodes` (default [`DEFAULT_NODES`]) Nitro nodes.
pub fn node_providers(
    nodes: Option<usize>,
    providers: Option<&[Provider]>,
) -> Result<Vec<Provider>, SimError> {
    let list = match (nodes, providers) {
        (Some(count), Some(list)) if count != list.len() => {
            return Err(SimError::ProviderCount {
                count,
                listed: list.len(),
            });
        }
        (_, Some(list)) => list.to_vec(),
        (count, None) => vec![Provider::Nitro; count.unwrap_or(DEFAULT_NODES)],
    };
    check_count(list.len())?;
    if let Some(other) = list.iter().find(|p| !super::SIMULATED.contains(p)) {
        return Err(SimError::Provider(other.name().to_owned()));
    }
    Ok(list)
}

/// How many nodes of each provider `providers` has, in [`Provider::ALL`] order, leaving
/// out those with none: `[(nitro, 2), (gcp-cs, 2)]`.
pub fn provider_counts(providers: &[Provider]) -> Vec<(Provider, usize)> {
    Provider::ALL
        .into_iter()
        .map(|p| (p, providers.iter().filter(|q| **q == p).count()))
        .filter(|(_, n)| *n > 0)
        .collect()
}

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

/// Starts a cluster of one node per entry of `providers` under `dir` with the default
/// [`Operators`]; see [`up_with`].
pub fn up(
    dir: &Path,
    providers: &[Provider],
    progress: &dyn Fn(&str),
) -> Result<ClusterFile, SimError> {
    up_with(dir, providers, Operators::default(), progress)
}

/// Starts a cluster of one node per entry of `providers` (`node-1` is the first) under
/// `dir`, whose manifest lists `operators` and pins both simulated roots, and waits until
/// every node runs with every peer attested. Returns operator 0's cluster file, also
/// written to `dir/cluster.toml`; every other operator's is written beside it
/// ([`operator_cluster_file`]). `progress` receives one line per step.
pub fn up_with(
    dir: &Path,
    providers: &[Provider],
    operators: Operators,
    progress: &dyn Fn(&str),
) -> Result<ClusterFile, SimError> {
    let providers = node_providers(None, Some(providers))?;
    let operators = operators.check()?;
    if dir.join("cluster.toml").exists() {
        return Err(SimError::Occupied {
            dir: dir.to_owned(),
        });
    }
    let mut launcher = Launcher::prepare_with(dir, &providers, binaries()?, Options::detached())?;
    let dir = launcher.dir().to_owned();

    let operators_dir = dir.join("operators");
    std::fs::create_dir_all(&operators_dir).map_err(super::io(&operators_dir))?;
    let mut keys = Vec::new();
    for i in 0..operators.count {
        keys.push(operator::create(&key_file(&operators_dir, i))?);
    }

    let image = launcher.image()?;
    let listed = launcher.listed(&image, &[])?;
    let body = approve::body(1, operators.approvals, &keys, &listed, &launcher.roots()?)?;
    let signed = approve::sign(&body, &keys, operators.approvals)?;
    let envelope = signed.envelope_bytes().to_vec();
    launcher.write_manifest(&envelope)?;

    let now = SystemTime::now();
    let ca = SimCa::load_or_create(launcher.sim_ca(), now)?;
    let gcp_ca = SimCsCa::load_or_create(launcher.sim_gcp_ca(), now)?;
    let mut file = ClusterFile {
        max_evidence_age_secs: 300,
        allow_debug: false,
        sim_root: Some(hex::encode(ca.root_der())),
        sim_gcp_root: Some(hex::encode(gcp_ca.root_der())),
        operator: OperatorEntry {
            id: operator_id(0),
            key_file: key_file(&operators_dir, 0),
        },
        // The cluster this operator trusts: the manifest created here.
        manifest: crate::pin::Pin::of(&signed).entry(),
        nodes: launcher
            .nodes()
            .iter()
            .map(|n| {
                Ok(NodeEntry {
                    id: n.id.clone(),
                    client: format!("127.0.0.1:{}", n.client_port),
                    measurements: expected(&launcher, &image, n)?,
                })
            })
            .collect::<Result<_, SimError>>()?,
        sim: Some(launcher.record()),
    };
    let path = dir.join("cluster.toml");
    let result = start_and_provision(&mut launcher, &mut file, &path, &envelope, progress);
    if result.is_err() {
        launcher.stop_all();
        let _ = save(&launcher, &mut file, &path);
    }
    result?;
    for i in 1..operators.count {
        operator_file(&file, &operators_dir, i).save(&operator_cluster_file(&dir, i))?;
    }
    Ok(file)
}

/// What the cluster file expects of node `node`'s evidence, as the manifest does: a Nitro
/// node's PCRs (written as files always had them), a Confidential Space node's image
/// and instance under `[nodes.measurements.gcp-cs]`.
fn expected(
    launcher: &Launcher,
    image: &SimMeasurements,
    node: &super::Node,
) -> Result<NodeMeasurements, SimError> {
    Ok(match node.provider {
        Provider::GcpCs => {
            let workload = SimWorkload::of_file(&launcher.binaries().enclave, &node.id)?;
            NodeMeasurements::tagged(Provider::GcpCs, approve::cs_node_values(&workload))
        }
        _ => approve::node_measurements(image, &node.id).into(),
    })
}

/// Operator `i`'s cluster file: operator 0's but for the operator, and without the
/// record of the processes, which only `cluster.toml` keeps up to date.
fn operator_file(file: &ClusterFile, operators_dir: &Path, i: usize) -> ClusterFile {
    ClusterFile {
        operator: OperatorEntry {
            id: operator_id(i),
            key_file: key_file(operators_dir, i),
        },
        sim: None,
        ..file.clone()
    }
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
    let with_parents = launcher.ids_with_parents();
    progress(&format!(
        "starting {} parents and {} enclaves",
        with_parents.len(),
        ids.len()
    ));
    for id in &with_parents {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn operators_and_approvals_are_checked() {
        assert_eq!(Operators::default().check().unwrap(), Operators::default());
        let ok = |count, approvals| Operators { count, approvals }.check().is_ok();
        assert!(ok(1, 1));
        assert!(ok(3, 3));
        assert!(ok(manifest::MAX_OPERATORS, 1));
        assert!(!ok(0, 0));
        assert!(!ok(3, 0));
        assert!(!ok(3, 4));
        assert!(!ok(manifest::MAX_OPERATORS + 1, 2));
    }

    /// `--providers` gives the node count; a `--nodes` that disagrees is refused rather
    /// than one of them silently winning. Without a list, Nitro nodes, 3 by default.
    #[test]
    fn the_provider_list_is_the_node_count() {
        use Provider::{GcpCs, Nitro};
        let mixed = [Nitro, Nitro, GcpCs, GcpCs];
        assert_eq!(node_providers(None, Some(&mixed)).unwrap(), mixed);
        assert_eq!(node_providers(Some(4), Some(&mixed)).unwrap(), mixed);
        let err = node_providers(Some(3), Some(&mixed)).unwrap_err();
        assert!(
            matches!(
                err,
                SimError::ProviderCount {
                    count: 3,
                    listed: 4
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("--providers names 4"), "{err}");
        assert_eq!(node_providers(None, None).unwrap(), [Nitro; DEFAULT_NODES]);
        assert_eq!(node_providers(Some(2), None).unwrap(), [Nitro; 2]);
        // The node limits hold for a list as for a count: 1 and MAX, not 0 or MAX + 1.
        for refused in [0, super::super::MAX_NODES + 1] {
            let list = vec![GcpCs; refused];
            let err = node_providers(None, Some(&list)).unwrap_err();
            assert!(matches!(err, SimError::Nodes { requested } if requested == refused));
        }
        let max = vec![GcpCs; super::super::MAX_NODES];
        assert_eq!(node_providers(None, Some(&max)).unwrap(), max);
        assert_eq!(node_providers(None, Some(&[GcpCs])).unwrap(), [GcpCs]);

        assert_eq!(provider_counts(&mixed), [(Nitro, 2), (GcpCs, 2)]);
        assert_eq!(
            provider_counts(&[GcpCs, Nitro, GcpCs]),
            [(Nitro, 1), (GcpCs, 2)]
        );
        assert_eq!(provider_counts(&[Nitro; 3]), [(Nitro, 3)]);
    }

    #[test]
    fn each_operator_has_a_cluster_file_of_its_own() {
        let dir = Path::new("/sim");
        assert_eq!(operator_cluster_file(dir, 0), dir.join("cluster.toml"));
        assert_eq!(
            operator_cluster_file(dir, 2),
            dir.join("cluster-operator-2.toml")
        );
        let file = crate::ops::tests::file();
        let two = operator_file(&file, Path::new("/sim/operators"), 2);
        assert_eq!(two.operator.id, "operator-2");
        assert_eq!(
            two.operator.key_file,
            Path::new("/sim/operators/operator-2.key")
        );
        assert_eq!(two.manifest, file.manifest);
        assert_eq!(two.nodes, file.nodes);
        assert!(two.sim.is_none());
    }
}
