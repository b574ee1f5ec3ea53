//! `cluster.toml`: everything `custody` needs to reach a cluster and to decide whether to
//! trust its nodes. `custody sim up` writes one; for a real deployment the custodian
//! writes it (node ids, client addresses, expected measurements, the operator key to use).

use attestation::{MeasurementSet, Verifier};
use enclave::channel::client_port::NodeExpectation;
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
    /// The operator whose key signs commands.
    pub operator: OperatorEntry,
    pub nodes: Vec<NodeEntry>,
    /// Simulator only: the processes `custody sim` runs.
    #[serde(default)]
    pub sim: Option<SimCluster>,
}

fn default_max_age() -> u64 {
    300
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
    /// Expected PCRs: index (as a string) to hex.
    pub measurements: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimCluster {
    pub dir: PathBuf,
    pub enclave_binary: PathBuf,
    pub parent_binary: PathBuf,
    pub manifest: PathBuf,
    pub sim_ca: PathBuf,
    pub nodes: Vec<SimNode>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimNode {
    pub id: String,
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
        Ok(file)
    }

    /// Writes the file atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<(), ClusterFileError> {
        let io = |source| ClusterFileError::Io {
            path: path.to_owned(),
            source,
        };
        let text = toml::to_string_pretty(self).map_err(|e| ClusterFileError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let temp = path.with_extension("toml.tmp");
        std::fs::write(&temp, text).map_err(io)?;
        std::fs::rename(&temp, path).map_err(io)
    }

    pub fn node(&self, id: &str) -> Result<&NodeEntry, ClusterFileError> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or_else(|| ClusterFileError::UnknownNode(id.to_owned()))
    }

    /// The roots trusted for node evidence.
    pub fn verifier(&self) -> Result<Verifier, ClusterFileError> {
        match &self.sim_root {
            None => Ok(Verifier::aws_nitro()),
            Some(root) => sim_verifier(root),
        }
    }

    /// What a client requires of node `id`.
    pub fn expectation(&self, id: &str) -> Result<NodeExpectation, ClusterFileError> {
        let node = self.node(id)?;
        let bad = |reason: String| ClusterFileError::Node {
            node: id.to_owned(),
            reason,
        };
        let mut pcrs = BTreeMap::new();
        for (index, value) in &node.measurements {
            let index: u8 = index
                .parse()
                .map_err(|_| bad(format!("PCR index {index:?} is not a number")))?;
            let value = hex::decode(value).map_err(|e| bad(format!("PCR{index}: {e}")))?;
            pcrs.insert(index, value);
        }
        let set = MeasurementSet::new(pcrs).map_err(|e| bad(e.to_string()))?;
        Ok(NodeExpectation {
            node_id: node.id.clone(),
            measurements: vec![set],
            verifier: self.verifier()?,
            max_evidence_age: Duration::from_secs(self.max_evidence_age_secs),
            allow_debug: self.allow_debug,
        })
    }
}

#[cfg(feature = "sim")]
fn sim_verifier(root: &str) -> Result<Verifier, ClusterFileError> {
    let invalid = |reason: String| ClusterFileError::Invalid {
        path: PathBuf::from("sim_root"),
        reason,
    };
    let der = hex::decode(root).map_err(|e| invalid(e.to_string()))?;
    Verifier::aws_nitro()
        .trust_simulated_root(&der, std::time::SystemTime::now())
        .map_err(|e| invalid(e.to_string()))
}

#[cfg(not(feature = "sim"))]
fn sim_verifier(_: &str) -> Result<Verifier, ClusterFileError> {
    Err(ClusterFileError::Invalid {
        path: PathBuf::from("sim_root"),
        reason: "this build cannot trust a simulated root".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ClusterFile {
        ClusterFile {
            max_evidence_age_secs: 300,
            allow_debug: false,
            sim_root: None,
            operator: OperatorEntry {
                id: "operator-0".into(),
                key_file: "/keys/operator-0.key".into(),
            },
            nodes: vec![NodeEntry {
                id: "node-1".into(),
                client: "10.0.0.1:9001".into(),
                measurements: [("0".to_owned(), "ab".repeat(48))].into_iter().collect(),
            }],
            sim: None,
        }
    }

    #[test]
    fn round_trips_and_refuses_what_it_does_not_know() {
        let dir = std::env::temp_dir().join(format!("cluster-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cluster.toml");
        sample().save(&path).unwrap();
        assert_eq!(ClusterFile::load(&path).unwrap(), sample());
        let expect = sample().expectation("node-1").unwrap();
        assert_eq!(expect.node_id, "node-1");
        assert!(sample().expectation("node-9").is_err());

        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{text}\nsurprise = 1\n")).unwrap();
        assert!(matches!(
            ClusterFile::load(&path),
            Err(ClusterFileError::Invalid { .. })
        ));
        let mut twice = sample();
        twice.nodes.push(twice.nodes[0].clone());
        twice.save(&path).unwrap();
        assert!(matches!(
            ClusterFile::load(&path),
            Err(ClusterFileError::Invalid { .. })
        ));
        let mut bad_pcr = sample();
        bad_pcr.nodes[0]
            .measurements
            .insert("x".into(), "00".into());
        assert!(bad_pcr.expectation("node-1").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
