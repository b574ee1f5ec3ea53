//! Acceptance: the only way a manifest takes effect inside a node.

use crate::body::{Manifest, Node};
use crate::envelope::{Approval, ManifestHash, SignedManifest};
use crate::error::ManifestError;

/// A manifest that [`accept`] approved. Cannot be built any other way.
#[derive(Debug, Clone)]
pub struct AcceptedManifest {
    signed: SignedManifest,
    approval: Approval,
}

impl AcceptedManifest {
    pub fn manifest(&self) -> &Manifest {
        self.signed.manifest()
    }

    pub fn version(&self) -> u64 {
        self.signed.manifest().version()
    }

    pub fn hash(&self) -> ManifestHash {
        self.signed.hash()
    }

    pub fn signed(&self) -> &SignedManifest {
        &self.signed
    }

    /// The envelope as received, to store and to hand to peers.
    pub fn envelope_bytes(&self) -> &[u8] {
        self.signed.envelope_bytes()
    }

    pub fn node(&self, id: &str) -> Option<&Node> {
        self.signed.manifest().node(id)
    }

    /// The operators whose signatures approved this manifest.
    pub fn approval(&self) -> &Approval {
        &self.approval
    }
}

/// Decides whether `candidate` replaces `current`.
///
/// With a current manifest, the candidate's version must be strictly higher and its
/// signatures are counted against the CURRENT operators and threshold: a candidate
/// cannot approve itself by listing new operators, and operator changes take effect
/// only once the operators they replace have approved them.
///
/// With no current manifest (first boot) the candidate is checked against its own
/// operators and threshold: trust on first use. Whoever supplies the first manifest
/// therefore chooses the operators. This is tolerable because the manifest hash is in
/// every attestation the node produces, and peers and clients refuse a node whose
/// manifest hash differs from theirs, so a node bootstrapped from a forged manifest is
/// isolated rather than trusted.
pub fn accept(
    current: Option<&AcceptedManifest>,
    candidate: SignedManifest,
) -> Result<AcceptedManifest, ManifestError> {
    let approvers = match current {
        Some(current) => {
            if candidate.manifest().version() <= current.version() {
                return Err(ManifestError::VersionNotNewer {
                    current: current.version(),
                    candidate: candidate.manifest().version(),
                });
            }
            check_no_node_moves(current.manifest(), candidate.manifest())?;
            current.manifest()
        }
        None => candidate.manifest(),
    };
    let approval = candidate.verify_signatures(approvers.operators(), approvers.threshold())?;
    Ok(AcceptedManifest {
        signed: candidate,
        approval,
    })
}

/// Every node the candidate keeps stays with its provider and its operator domain: the
/// placement rule is checked when a key is created, against the assignment then in
/// force, and a successor that moved a node could give one provider or domain a quorum
/// of shares of a key that already exists.
fn check_no_node_moves(current: &Manifest, candidate: &Manifest) -> Result<(), ManifestError> {
    for node in candidate.nodes() {
        let Some(before) = current.node(node.id()) else {
            continue;
        };
        if before.tee_provider() != node.tee_provider() {
            return Err(ManifestError::NodeMoved {
                node: node.id().to_owned(),
                what: "provider",
                from: before.tee_provider().to_string(),
                to: node.tee_provider().to_string(),
            });
        }
        if before.domain() != node.domain() {
            let name = |d: Option<&str>| d.map_or_else(|| "(none)".to_owned(), str::to_owned);
            return Err(ManifestError::NodeMoved {
                node: node.id().to_owned(),
                what: "domain",
                from: name(before.domain()),
                to: name(node.domain()),
            });
        }
    }
    Ok(())
}
