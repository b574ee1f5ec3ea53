//! Simulated clusters on this machine: per Nitro node one `enclave --sim` and one
//! `parent` process, talking over Unix sockets that stand in for vsock and over TCP
//! between parents; per Confidential Space node one `enclave --sim --provider gcp-cs`,
//! which listens on TCP itself. This is the one launcher of such clusters: `custody sim` and `custody demo`
//! run it, and so does the process-level tests' harness, which adds only what tests need
//! on top (requests, waits, log dumps, kills at chosen moments).
//!
//! It is a module of `client` rather than a crate of its own because `custody` is what
//! ships it: a cluster's record is `cluster.toml`'s `[sim]` table, waiting for nodes
//! goes through the client's own verified requests, and the tests already drive the
//! client. Behind the `sim` feature, like the simulated root it trusts, it is absent
//! from a production build, so that nothing it offers for fault injection (another
//! binary per node, extra enclave options, a parent killed alone) ships there either.
//!
//! - [`launcher`]: the nodes of one cluster and the processes that run them.
//! - [`layout`]: directories, CIDs, free ports and each node's primes.
//! - [`approve`]: the measurements pinned per node, the manifest and its signatures.
//! - [`process`]: starting and stopping one process; options of `enclave run`.
//! - [`ready`]: waiting for nodes through a client; bringing a cluster up.
//! - [`cli`]: `custody sim up/down/kill/restart`, recorded in `cluster.toml`.

pub mod approve;
mod cli;
pub mod launcher;
mod layout;
mod process;
pub mod ready;

pub use cli::{
    DEFAULT_NODES, Operators, binaries, down, kill_enclave, node_providers, operator_cluster_file,
    provider_counts, restart_enclave, up, up_with,
};
pub use launcher::{Binaries, Launcher, MAX_NODES, Node, Options, SIMULATED};
pub use process::EnclaveArgs;
pub use ready::{Probe, ReadyError, STARTUP};

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    #[error(
        "a simulated cluster has 1 to {} operators, of whom 1 to all approve ({count} with {approvals} asked)",
        manifest::MAX_OPERATORS
    )]
    Operators { count: usize, approvals: usize },
    #[error("a simulated cluster has 1 to {MAX_NODES} nodes")]
    Nodes { requested: usize },
    #[error("{dir} already holds a cluster (cluster.toml); choose another directory")]
    Occupied { dir: PathBuf },
    #[error("{path} not found; build every binary first: cargo build --release --bins")]
    MissingBinary { path: PathBuf },
    #[error("cannot locate this program: {0}")]
    CurrentExe(#[source] std::io::Error),
    #[error("cannot locate this program's directory")]
    NoProgramDir,
    #[error("no free TCP port")]
    NoFreePort,
    #[error("primes fixture: {0}")]
    PrimesFixture(#[source] serde_json::Error),
    /// The simulated NSM, or the simulated Confidential Space attester or root.
    #[error("simulated attester: {0}")]
    Nsm(#[from] attestation::nsm::NsmError),
    #[error("a simulated node stands in for nitro or gcp-cs, not {0}")]
    Provider(String),
    #[error("{count} nodes asked, but --providers names {listed}; give one or make them agree")]
    ProviderCount { count: usize, listed: usize },
    #[error("{node} is a {provider} node: it runs no parent (its enclave listens itself)")]
    NoParent {
        node: String,
        provider: &'static str,
    },
    #[error(transparent)]
    OperatorKey(#[from] crate::operator::KeyFileError),
    #[error("manifest: {0}")]
    Manifest(#[source] manifest::ManifestError),
    #[error("JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {binary}: {source}")]
    Start {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("no simulated node {0}")]
    UnknownNode(String),
    #[error("this cluster file describes no simulated cluster")]
    NotSimulated,
    #[error(transparent)]
    Ready(#[from] ReadyError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster_file::ClusterFileError),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> SimError + '_ {
    move |source| SimError::Io {
        path: path.to_owned(),
        source,
    }
}
