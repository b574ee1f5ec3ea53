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
