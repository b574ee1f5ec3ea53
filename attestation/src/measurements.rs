//! What evidence is expected to measure, tagged by provider, and the identity rule over
//! such sets: a node is known by what its evidence proves, never by the id it claims, so
//! every set must pin the code, and no piece of evidence may match the sets of two nodes.
//! Each provider states its half of the rule; sets of two providers never collide (one
//! piece of evidence comes from one provider).

use crate::gcp;
use crate::nitro;
use crate::provider::Provider;

/// Expected measurements of one provider's evidence: one accepted set.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Measurements {
    /// Expected PCR values.
    Nitro(nitro::MeasurementSet),
    /// Expected image digest, instance and hardware model.
    GcpCs(gcp::MeasurementSet),
}

/// A measurement set in text form was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MeasurementError {
    #[error("unknown provider {0:?}")]
    UnknownProvider(String),
    #[error("names nothing to measure")]
    Empty,
    /// One entry (for Nitro, a PCR index and its value; for Confidential Space, a claim
    /// such as `image_digest` and its value).
    #[error("{key:?}: {reason}")]
    Entry { key: String, reason: &'static str },
}

/// A set does not say which code it accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unpinned {
    #[error(transparent)]
    Nitro(nitro::Unpinned),
    #[error(transparent)]
    GcpCs(gcp::Unpinned),
}

/// A set does not say which host it accepts: evidence of its code from anyone's machine
/// would match it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unhosted {
    #[error(
        "does not pin the instance: a Confidential Space set must pin project_id and \
         instance_id; it pins {pinned:?}"
    )]
    GcpCs { pinned: Vec<&'static str> },
}

/// Two sets one piece of evidence could match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Overlap {
    #[error(transparent)]
    Nitro(nitro::Overlap),
    #[error(transparent)]
    GcpCs(gcp::Overlap),
}

impl From<nitro::MeasurementSet> for Measurements {
    fn from(set: nitro::MeasurementSet) -> Self {
        Measurements::Nitro(set)
    }
}

impl From<gcp::MeasurementSet> for Measurements {
    fn from(set: gcp::MeasurementSet) -> Self {
        Measurements::GcpCs(set)
    }
}

impl Measurements {
    pub fn provider(&self) -> Provider {
        match self {
            Measurements::Nitro(_) => Provider::Nitro,
            Measurements::GcpCs(_) => Provider::GcpCs,
        }
    }

    /// A set of `provider` from its text form: key to value, in the order written
    /// (duplicates kept, so that they are refused rather than resolved). For Nitro, PCR
    /// index to hex value; for Confidential Space, claim name to value.
    pub fn from_entries(
        provider: Provider,
        entries: Vec<(String, String)>,
    ) -> Result<Self, MeasurementError> {
        match provider {
            Provider::Nitro => nitro::MeasurementSet::from_entries(entries).map(Self::Nitro),
            Provider::GcpCs => gcp::MeasurementSet::from_entries(entries).map(Self::GcpCs),
        }
    }

    /// `Ok` when the set pins the code it accepts (the first half of the identity rule).
    pub fn pins_code(&self) -> Result<(), Unpinned> {
        match self {
            Measurements::Nitro(set) => set.pins_code().map_err(Unpinned::Nitro),
            Measurements::GcpCs(set) => set.pins_code().map_err(Unpinned::GcpCs),
        }
    }

    /// `Ok` when the set pins a value the hardware binds to one host, so that evidence of
    /// the same code from another machine (anyone can run a published image) matches no
    /// node. Confidential Space: the project and instance id (Google assigns both; a
    /// node that is the only one of its provider would otherwise be matched by any
    /// instance of its image). Nitro sets are held only to the pairwise rule of
    /// [`Self::distinguishable`] (PCR4 or PCR3 per node in practice): manifests written
    /// before this rule pin hosts that way, and requiring it of every set is not done yet.
    pub fn pins_host(&self) -> Result<(), Unhosted> {
        match self {
            Measurements::Nitro(_) => Ok(()),
            Measurements::GcpCs(set) => {
                let entries = set.entries();
                let pins = |key: &str| entries.iter().any(|(k, _)| *k == key);
                if pins("project_id") && pins("instance_id") {
                    Ok(())
                } else {
                    Err(Unhosted::GcpCs {
                        pinned: entries.iter().map(|(k, _)| *k).collect(),
                    })
                }
            }
        }
    }

    /// `Ok` when no piece of evidence can match both sets (the second half): always
    /// for sets of two providers, otherwise as that provider says.
    pub fn distinguishable(&self, other: &Measurements) -> Result<(), Overlap> {
        // Exhaustive over pairs of one provider; any pair of two providers is told apart
        // by the evidence's format alone.
        match (self, other) {
            (Measurements::Nitro(a), Measurements::Nitro(b)) => {
                a.distinguishable(b).map_err(Overlap::Nitro)
            }
            (Measurements::GcpCs(a), Measurements::GcpCs(b)) => {
                a.distinguishable(b).map_err(Overlap::GcpCs)
            }
            (Measurements::Nitro(_), Measurements::GcpCs(_))
            | (Measurements::GcpCs(_), Measurements::Nitro(_)) => Ok(()),
        }
    }
}
