//! `cluster.toml`: everything `custody` needs to reach a cluster and to decide whether to
//! trust its nodes. `custody sim up` writes one; for a real deployment the custodian
//! writes it (node ids, client addresses, expected measurements, the operator key to use,
//! and `[manifest]`, the pin of the manifest the operator trusts: see [`crate::pin`]).
//!
//! A node's expected measurements name their provider, as the manifest's sets do:
//! `[nodes.measurements.nitro]`, PCR index to hex. A file written before they did has the
//! PCRs directly under `[nodes.measurements]`, which means Nitro.

use crate::pin::{Pin, PinEntry};
use attestation::{Measurements, Provider, Verifier};
use channel::client_port::{ManifestRule, NodeExpectation};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest cluster file read.
pub const MAX_CLUSTER_FILE_LEN: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: larger than {MAX_CLUSTER_FILE_LEN} bytes")]
    TooLarge { path: PathBuf },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("no node {0} in the cluster file")]
    UnknownNode(String),
    #[error("node {node}: {reason}")]
    Node { node: String, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// Oldest node evidence accepted, in seconds.
    #[serde(default = "default_max_age")]
    pub max_evidence_age_secs: u64,
    /// Accept nodes in debug mode (never for real assets).
    #[serde(default)]
    pub allow_debug: bool,
    /// Simulator only: the simulated root certificate (DER, hex) trusted for evidence.
    /// Absent for a real cluster: the AWS Nitro root is trusted.
    #[serde(default)]
    pub sim_root: Option<String>,
    /// Simulator only: the simulated Confidential Space root certificate (DER, hex)
    /// trusted for evidence. Absent for a real cluster, or one written before a
    /// simulated cluster could have Confidential Space nodes.
    #[serde(default)]
    pub sim_gcp_root: Option<String>,
    /// The operator whose key signs commands.
    pub operator: OperatorEntry,
    /// The manifest this operator trusts: nodes that run another are refused.
    pub manifest: PinEntry,
    pub nodes: Vec<NodeEntry>,
    /// Simulator only: the processes `custody sim` runs.
    #[serde(default)]
    pub sim: Option<SimCluster>,
}

fn default_max_age() -> u64 {
    300
}

/// What a request to a node is for: it decides which manifests the node may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A command or an attestation document: the pinned manifest only.
    Command,
    /// A status question (it carries nothing): the pinned manifest, or none yet.
    Status,
    /// Submitting the manifest with this hash (the pinned one or an approved successor):
    /// a node running the pinned one, that one, or none yet.
    Submit { manifest: [u8; 32] },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorEntry {
    pub id: String,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    pub id: String,
    /// The parent's client port, `host:port`.
    pub client: String,
    /// What the node's evidence must measure.
    pub measurements: NodeMeasurements,
}

/// A node's expected measurements as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NodeMeasurements {
    /// `[nodes.measurements.<provider>]`: the provider's name, then its values (for
    /// Nitro, PCR index to hex). Exactly one provider.
    Tagged(BTreeMap<String, BTreeMap<String, String>>),
    /// `[nodes.measurements]` with PCR index to hex directly: Nitro, as files were written
    /// before providers were named.
    Untagged(BTreeMap<String, String>),
}

impl NodeMeasurements {
    /// `values` under the name of `provider`.
    pub fn tagged(provider: Provider, values: BTreeMap<String, String>) -> Self {
        NodeMeasurements::Tagged([(provider.name().to_owned(), values)].into())
    }

    /// The provider-tagged set this entry stands for, checked as the manifest checks its
    /// sets' form.
    pub fn measurements(&self) -> Result<Measurements, String> {
        let (provider, values) = match self {
            NodeMeasurements::Untagged(values) => (Provider::Nitro, values),
            NodeMeasurements::Tagged(by_provider) => {
                let mut entries = by_provider.iter();
                let (Some((name, values)), None) = (entries.next(), entries.next()) else {
                    return Err(format!(
                        "measurements must name exactly one provider, found {}",
                        by_provider.len()
                    ));
                };
                let provider = Provider::from_name(name)
                    .ok_or_else(|| format!("measurements name an unknown provider {name:?}"))?;
                (provider, values)
            }
        };
        let entries = values.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        Measurements::from_entries(provider, entries).map_err(|e| format!("measurements: {e}"))
    }
}

impl From<BTreeMap<String, String>> for NodeMeasurements {
    /// PCR index to hex, in the form files were written before providers were named.
    fn from(values: BTreeMap<String, String>) -> Self {
        NodeMeasurements::Untagged(values)
    }
}

impl FromIterator<(String, String)> for NodeMeasurements {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        NodeMeasurements::Untagged(iter.into_iter().collect())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimCluster {
    pub dir: PathBuf,
    pub enclave_binary: PathBuf,
    pub parent_binary: PathBuf,
    pub manifest: PathBuf,
    pub sim_ca: PathBuf,
    /// The simulated Confidential Space root's files; absent in a file written before
    /// a simulated cluster had one (it is then `sim-gcp-ca` in `dir`).
    #[serde(default)]
    pub sim_gcp_ca: Option<PathBuf>,
    pub nodes: Vec<SimNode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimNode {
    pub id: String,
    /// The TEE the node stands in: a Nitro node runs an enclave beside a parent, a
    /// Confidential Space node (`gcp-cs`) an enclave alone. A file written before nodes
    /// named theirs lists Nitro nodes only.
    #[serde(default = "nitro", with = "provider_name")]
    pub provider: Provider,
    pub cid: u32,
    pub peer_port: u16,
    pub client_port: u16,
    pub admin_port: u16,
    pub dir: PathBuf,
    pub primes: PathBuf,
    #[serde(default)]
    pub enclave_pid: Option<u32>,
    #[serde(default)]
    pub parent_pid: Option<u32>,
}

fn nitro() -> Provider {
    Provider::Nitro
}

/// A provider as its name ([`Provider::name`]) in the file.
mod provider_name {
    use attestation::Provider;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(
        provider: &Provider,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(provider.name())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Provider, D::Error> {
        let name = String::deserialize(deserializer)?;
        Provider::from_name(&name)
            .ok_or_else(|| D::Error::custom(format!("unknown provider {name:?}")))
    }
}

impl ClusterFile {
    pub fn load(path: &Path) -> Result<Self, ClusterFileError> {
        let io = |source| ClusterFileError::Io {
            path: path.to_owned(),
            source,
        };
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > MAX_CLUSTER_FILE_LEN {
            return Err(ClusterFileError::TooLarge {
                path: path.to_owned(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let file: ClusterFile = toml::from_str(&text).map_err(|e| ClusterFileError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let mut seen = std::collections::BTreeSet::new();
        for node in &file.nodes {
            if !seen.insert(node.id.as_str()) {
                return Err(ClusterFileError::Invalid {
                    path: path.to_owned(),
                    reason: format!("node {} listed twice", node.id),
                });
            }
        }
        if file.nodes.is_empty() {
            return Err(ClusterFileError::Invalid {
                path: path.to_owned(),
                reason: "no nodes".to_owned(),
            });
        }
        Pin::parse(&file.manifest).map_err(|e| ClusterFileError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        file.check_identities()
            .map_err(|reason| ClusterFileError::Invalid {
                path: path.to_owned(),
                reason,
            })?;
        Ok(file)
    }

    /// The manifest's identity rule, for the measurements this file expects: a client
    /// knows a node by what its evidence proves, so each entry must pin the code (for
    /// Nitro, PCR0, PCR1 and PCR2, or PCR8) and no evidence may match two entries (for
    /// Nitro, every two nodes differ at some PCR both pin). Otherwise a node of a shared
    /// image, compromised, could answer a connection meant for another.
    pub fn check_identities(&self) -> Result<(), String> {
        let sets = self
            .nodes
            .iter()
            .map(|node| {
                let set = node
                    .measurements
                    .measurements()
                    .map_err(|reason| format!("node {}: {reason}", node.id))?;
                set.pins_code().map_err(|unpinned| {
                    format!(
                        "node {}: its measurements do not pin the code it runs: {unpinned}",
                        node.id
                    )
                })?;
                Ok((node.id.as_str(), set))
            })
            .collect::<Result<Vec<_>, String>>()?;
        for (i, (first, a)) in sets.iter().enumerate() {
            for (second, b) in sets.iter().skip(i + 1) {
                if let Err(overlap) = a.distinguishable(b) {
                    return Err(format!(
                        "nodes {first} and {second}: one attestation document could match \
                         both: {overlap}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The pinned manifest.
    pub fn pin(&self) -> Result<Pin, ClusterFileError> {
        Pin::parse(&self.manifest).map_err(|e| ClusterFileError::Invalid {
            path: PathBuf::from("cluster.toml"),
            reason: e.to_string(),
        })
    }

    /// Writes the file atomically: a temporary file, synced, renamed over the old one,
    /// and the directory synced (a crash leaves the old file or the new one, never a mix:
    /// the pin in it decides which cluster this operator trusts).
    pub fn save(&self, path: &Path) -> Result<(), ClusterFileError> {
        use std::io::Write;
        let io = |source| ClusterFileError::Io {
            path: path.to_owned(),
            source,
        };
        let text = toml::to_string_pretty(self).map_err(|e| ClusterFileError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let temp = path.with_extension("toml.tmp");
        let mut file = std::fs::File::create(&temp).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&temp, path).map_err(io)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)
    }

    pub fn node(&self, id: &str) -> Result<&NodeEntry, ClusterFileError> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or_else(|| ClusterFileError::UnknownNode(id.to_owned()))
    }

    /// The roots trusted for node evidence: the production roots (and a simulated
    /// cluster's root), narrowed to the root the pinned manifest pins for each provider it
    /// names, as the nodes narrow theirs.
    pub fn verifier(&self) -> Result<Verifier, ClusterFileError> {
        let trusted = match (&self.sim_root, &self.sim_gcp_root) {
            (None, None) => Verifier::production(),
            (nitro, gcp) => sim_verifier(nitro.as_deref(), gcp.as_deref())?,
        };
        Ok(trusted.restricted_to(self.pin()?.roots()))
    }

    /// What a client requires of node `id` for a request made for `purpose`: its
    /// measurements, the trusted roots, and the manifest it must run.
    pub fn expectation(
        &self,
        id: &str,
        purpose: Purpose,
    ) -> Result<NodeExpectation, ClusterFileError> {
        let node = self.node(id)?;
        let pinned = self.pin()?.hash();
        let manifest = match purpose {
            Purpose::Command => ManifestRule::Pinned(pinned),
            Purpose::Status => ManifestRule::PinnedOrNone(pinned),
            Purpose::Submit { manifest } => ManifestRule::Submitting {
                pinned,
                submitted: manifest,
            },
        };
        let bad = |reason: String| ClusterFileError::Node {
            node: id.to_owned(),
            reason,
        };
        let set = node.measurements.measurements().map_err(bad)?;
        Ok(NodeExpectation {
            node_id: node.id.clone(),
            measurements: vec![set],
            verifier: self.verifier()?,
            max_evidence_age: Duration::from_secs(self.max_evidence_age_secs),
            allow_debug: self.allow_debug,
            manifest,
        })
    }
}

/// The production roots and the simulated roots given: the Nitro one (`sim_root`) and
/// the Confidential Space one (`sim_gcp_root`).
#[cfg(feature = "sim")]
fn sim_verifier(nitro: Option<&str>, gcp: Option<&str>) -> Result<Verifier, ClusterFileError> {
    let invalid = |field: &str, reason: String| ClusterFileError::Invalid {
        path: PathBuf::from(field),
        reason,
    };
    let now = std::time::SystemTime::now();
    let mut verifier = Verifier::production();
    if let Some(root) = nitro {
        let der = hex::decode(root).map_err(|e| invalid("sim_root", e.to_string()))?;
        verifier = verifier
            .trust_simulated_root(&der, now)
            .map_err(|e| invalid("sim_root", e.to_string()))?;
    }
    if let Some(root) = gcp {
        let der = hex::decode(root).map_err(|e| invalid("sim_gcp_root", e.to_string()))?;
        verifier = verifier
            .trust_simulated_gcp_root(&der, now)
            .map_err(|e| invalid("sim_gcp_root", e.to_string()))?;
    }
    Ok(verifier)
}

#[cfg(not(feature = "sim"))]
fn sim_verifier(_: Option<&str>, _: Option<&str>) -> Result<Verifier, ClusterFileError> {
    Err(ClusterFileError::Invalid {
        path: PathBuf::from("sim_root"),
        reason: "this build cannot trust a simulated root".to_owned(),
    })
}

#[cfg(test)]
mod tests;
