//! The placement rule as `custody key create` checks it before it sends a request: the
//! same function every node decides it with ([`manifest::check_placement`]), on the
//! pinned manifest's body, so that a key no node would create is refused here, with the
//! provider (or operator domain) and its count, rather than after the operators approved
//! it.
//!
//! The cluster file pins the manifest by its hash and keeps no copy of its body: the
//! client checks with the envelope the operator names (`--manifest FILE`), or, for a
//! simulated cluster, the one its parents read, each only if it is the pinned manifest.
//! Without either, the nodes alone decide.

use crate::cluster_file::ClusterFile;
use manifest::{Manifest, ManifestError, PlacementError, SignedManifest};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Why the pinned manifest could not be read where the operator said it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PinnedManifestError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: larger than {max} bytes", max = manifest::MAX_ENVELOPE_LEN)]
    TooLarge { path: PathBuf },
    #[error("{path}: {source}")]
    Envelope {
        path: PathBuf,
        source: ManifestError,
    },
    #[error("{path} is manifest {found}, not the pinned {pinned}")]
    NotPinned {
        path: PathBuf,
        found: String,
        pinned: String,
    },
    #[error(transparent)]
    Pin(#[from] crate::cluster_file::ClusterFileError),
}

/// The pinned manifest's body: from `explicit`, an envelope that must be the pinned
/// manifest; otherwise, for a simulated cluster, from the envelope its parents read, when
/// that is the pinned one. `None` when neither is at hand.
pub fn pinned_manifest(
    file: &ClusterFile,
    explicit: Option<&Path>,
) -> Result<Option<Manifest>, PinnedManifestError> {
    let pinned = file.pin()?.hash();
    if let Some(path) = explicit {
        let signed = read_envelope(path)?;
        if signed.hash().as_bytes() != &pinned {
            return Err(PinnedManifestError::NotPinned {
                path: path.to_owned(),
                found: signed.hash().to_string(),
                pinned: hex::encode(pinned),
            });
        }
        return Ok(Some(signed.manifest().clone()));
    }
    // A simulated cluster's copy is a convenience: one that is missing, unreadable or
    // not (or no longer) the pinned manifest is not used.
    Ok(file
        .sim
        .as_ref()
        .and_then(|sim| read_envelope(&sim.manifest).ok())
        .filter(|signed| signed.hash().as_bytes() == &pinned)
        .map(|signed| signed.manifest().clone()))
}

/// Whether a `threshold`-of-n key shared by `parties` (every node of `manifest` when
/// empty) obeys the manifest's placement rule.
pub fn check_key(
    manifest: &Manifest,
    parties: &[String],
    threshold: u16,
) -> Result<(), PlacementError> {
    if parties.is_empty() {
        let every: Vec<&str> = manifest.nodes().iter().map(|n| n.id()).collect();
        manifest::check_placement(manifest, &every, threshold)
    } else {
        manifest::check_placement(manifest, parties, threshold)
    }
}

/// A signed manifest envelope from `path`, read up to its size limit.
fn read_envelope(path: &Path) -> Result<SignedManifest, PinnedManifestError> {
    let read = |source| PinnedManifestError::Read {
        path: path.to_owned(),
        source,
    };
    let limit = u64::try_from(manifest::MAX_ENVELOPE_LEN).unwrap_or(u64::MAX);
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(read)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() > manifest::MAX_ENVELOPE_LEN {
        return Err(PinnedManifestError::TooLarge {
            path: path.to_owned(),
        });
    }
    SignedManifest::parse(&bytes).map_err(|source| PinnedManifestError::Envelope {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests;
