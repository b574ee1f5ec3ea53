//! Waiting for a simulated cluster's nodes: polling their status through a client
//! ([`Probe`]) until they reach a state, and the one sequence that brings a fresh
//! cluster up (every node waits for a manifest, gets it, and runs with every peer
//! attested and its key escrowed).

use super::launcher::Launcher;
use protocol::operator_api::NodeStatus;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a cluster may take to start, or a node to come back, in `custody sim`.
pub const STARTUP: Duration = Duration::from_secs(120);
/// Pause between two polls.
const POLL: Duration = Duration::from_millis(200);

/// How the launcher's caller reaches the nodes: a client that verified each node's
/// attestation (`custody` under its pinned manifest; the tests' harness under whatever
/// manifest the node runs).
pub trait Probe {
    type Error: std::fmt::Display;

    /// The status of each of `ids`, or why it could not be read from a verified node.
    fn statuses(&self, ids: &[String]) -> Statuses<Self::Error>;

    /// Hands node `id` the manifest `envelope`; an error when it refuses.
    fn submit(&self, id: &str, envelope: &[u8]) -> Result<(), Self::Error>;
}

/// Node ids with their status or why it could not be read.
pub type Statuses<E> = Vec<(String, Result<NodeStatus, E>)>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadyError {
    #[error("{node}: not {wanted} after {} s: {seen}; see {}", patience.as_secs(), log.display())]
    NotReady {
        node: String,
        wanted: &'static str,
        patience: Duration,
        /// What the node last said, or why it could not be asked.
        seen: String,
        log: PathBuf,
    },
    #[error("{node}: manifest not accepted: {reason}")]
    Refused { node: String, reason: String },
}

/// Running, every one of its `peers` attested, and its key escrowed with every peer.
pub fn running_and_attested(s: &NodeStatus, peers: usize) -> bool {
    running_with_peers(s, peers) && s.escrow_pending.is_empty()
}

/// Running with every one of its `peers` attested.
pub fn running_with_peers(s: &NodeStatus, peers: usize) -> bool {
    s.phase == "running" && s.peers.len() == peers && s.peers.values().all(|p| p.attested)
}

/// Polls `ids` until `check` accepts their statuses; past `patience`, the last
/// statuses seen.
pub fn wait_until<P: Probe>(
    probe: &P,
    ids: &[String],
    patience: Duration,
    check: impl Fn(&[(String, Result<NodeStatus, P::Error>)]) -> bool,
) -> Result<(), Statuses<P::Error>> {
    let deadline = Instant::now() + patience;
    loop {
        let statuses = probe.statuses(ids);
        if check(&statuses) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(statuses);
        }
        std::thread::sleep(POLL);
    }
}

/// Waits until every node of `ids` answers and is `ready`; past `patience`, names the
/// first that is not, what it last said, and its log.
pub fn wait_each<P: Probe>(
    launcher: &Launcher,
    probe: &P,
    ids: &[String],
    patience: Duration,
    wanted: &'static str,
    ready: impl Fn(&NodeStatus) -> bool,
) -> Result<(), ReadyError> {
    let is_ready = |s: &Result<NodeStatus, P::Error>| s.as_ref().is_ok_and(&ready);
    let last = match wait_until(probe, ids, patience, |s| s.iter().all(|(_, s)| is_ready(s))) {
        Ok(()) => return Ok(()),
        Err(last) => last,
    };
    let (node, seen) = last
        .iter()
        .find(|(_, s)| !is_ready(s))
        .map(|(id, s)| {
            let seen = match s {
                Ok(s) => format!("{} ({})", s.phase, s.reason.as_deref().unwrap_or_default()),
                Err(e) => e.to_string(),
            };
            (id.clone(), seen)
        })
        .unwrap_or_default();
    let log = launcher
        .node(&node)
        .map(|n| n.enclave_log())
        .unwrap_or_default();
    Err(ReadyError::NotReady {
        node,
        wanted,
        patience,
        seen,
        log,
    })
}

/// Brings up a cluster whose processes were just started: waits until every node
/// attests and waits for a manifest, hands each the `envelope`, and waits until every
/// node runs with every peer attested and its key escrowed (each wait at most
/// `patience`). `progress` receives one line per step.
pub fn provision<P: Probe>(
    launcher: &Launcher,
    probe: &P,
    envelope: &[u8],
    patience: Duration,
    progress: &dyn Fn(&str),
) -> Result<(), ReadyError> {
    let ids = launcher.ids();
    progress("waiting for every node to attest to this client");
    wait_each(
        launcher,
        probe,
        &ids,
        patience,
        "waiting for a manifest",
        |s| s.phase == "waiting_for_manifest",
    )?;
    progress("submitting the signed manifest");
    for id in &ids {
        probe
            .submit(id, envelope)
            .map_err(|e| ReadyError::Refused {
                node: id.clone(),
                reason: e.to_string(),
            })?;
    }
    progress("waiting until every node runs with every peer attested");
    let peers = ids.len().saturating_sub(1);
    wait_each(
        launcher,
        probe,
        &ids,
        patience,
        "running with every peer attested",
        |s| running_and_attested(s, peers),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use std::cell::RefCell;

    fn status(phase: &str, peers: &[(&str, bool)], escrow_pending: &[&str]) -> NodeStatus {
        serde_json::from_value(serde_json::json!({
            "node_id": "node-1",
            "phase": phase,
            "reason": null,
            "manifest_version": 1,
            "manifest_hash": null,
            "state_created_ms": null,
            "peers": peers.iter().map(|(id, attested)| (id.to_string(), serde_json::json!({
                "attested": attested, "checked_ms": 0,
            }))).collect::<serde_json::Map<_, _>>(),
            "escrow_pending": escrow_pending,
        }))
        .unwrap()
    }

    #[test]
    fn running_and_attested_needs_every_peer_and_every_escrow() {
        let two = [("node-2", true), ("node-3", true)];
        assert!(running_and_attested(&status("running", &two, &[]), 2));
        assert!(!running_and_attested(
            &status("running", &two, &["node-2"]),
            2
        ));
        assert!(running_with_peers(&status("running", &two, &["node-2"]), 2));
        assert!(!running_with_peers(
            &status("running", &[("node-2", true), ("node-3", false)], &[]),
            2
        ));
        assert!(!running_with_peers(
            &status("running", &[("node-2", true)], &[]),
            2
        ));
        assert!(!running_with_peers(
            &status("waiting_for_provisioning", &two, &[]),
            2
        ));
    }

    /// Nodes whose phases follow a script, and that refuse manifests when told to.
    struct Scripted {
        phases: RefCell<Vec<&'static str>>,
        refuse: bool,
        submitted: RefCell<Vec<String>>,
    }

    impl Probe for Scripted {
        type Error = String;
        fn statuses(&self, ids: &[String]) -> Statuses<String> {
            let mut phases = self.phases.borrow_mut();
            let phase = if phases.len() > 1 {
                phases.remove(0)
            } else {
                phases.first().copied().unwrap_or("unreachable")
            };
            ids.iter()
                .map(|id| {
                    let s = if phase == "unreachable" {
                        Err("connection refused".to_owned())
                    } else {
                        let peers: Vec<(&str, bool)> = ids
                            .iter()
                            .filter(|p| *p != id)
                            .map(|p| (p.as_str(), true))
                            .collect();
                        Ok(status(phase, &peers, &[]))
                    };
                    (id.clone(), s)
                })
                .collect()
        }
        fn submit(&self, id: &str, _: &[u8]) -> Result<(), String> {
            self.submitted.borrow_mut().push(id.to_owned());
            if self.refuse {
                Err("signature threshold not met".to_owned())
            } else {
                Ok(())
            }
        }
    }

    fn launcher(dir: &std::path::Path) -> Launcher {
        let binaries = super::super::Binaries {
            enclave: PathBuf::from("/nonexistent/enclave"),
            parent: PathBuf::from("/nonexistent/parent"),
        };
        Launcher::prepare(dir, 2, binaries, super::super::Options::attached()).unwrap()
    }

    #[test]
    fn provisioning_submits_to_every_node_once_all_wait_for_it() {
        let dir = std::env::temp_dir().join(format!("custody-ready-{}", std::process::id()));
        let launcher = launcher(&dir);
        let probe = Scripted {
            phases: RefCell::new(vec!["unreachable", "waiting_for_manifest", "running"]),
            refuse: false,
            submitted: RefCell::default(),
        };
        let lines = RefCell::new(Vec::new());
        provision(
            &launcher,
            &probe,
            b"envelope",
            Duration::from_secs(5),
            &|l| {
                lines.borrow_mut().push(l.to_owned());
            },
        )
        .unwrap();
        assert_eq!(*probe.submitted.borrow(), ["node-1", "node-2"]);
        assert_eq!(lines.borrow().len(), 3);

        // A refusal names the node and the reason, and nothing is sent after it.
        let probe = Scripted {
            phases: RefCell::new(vec!["waiting_for_manifest"]),
            refuse: true,
            submitted: RefCell::default(),
        };
        let err = provision(
            &launcher,
            &probe,
            b"envelope",
            Duration::from_secs(5),
            &|_| {},
        )
        .unwrap_err();
        assert!(
            matches!(&err, ReadyError::Refused { node, reason } if node == "node-1" && reason.contains("threshold")),
            "{err}"
        );
        assert_eq!(*probe.submitted.borrow(), ["node-1"]);

        // A node that never answers: the wait ends, naming it, why, and its log.
        let probe = Scripted {
            phases: RefCell::new(vec!["unreachable"]),
            refuse: false,
            submitted: RefCell::default(),
        };
        let err = provision(&launcher, &probe, b"envelope", Duration::ZERO, &|_| {}).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(
                "node-1: not waiting for a manifest after 0 s: connection refused; see "
            ) && text.ends_with("node-1/enclave.log"),
            "{text}"
        );
        assert!(probe.submitted.borrow().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
