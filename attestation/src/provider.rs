//! The providers, and what every crate above this one carries instead of a provider's
//! own types: which provider a piece of evidence comes from (told apart by its content),
//! the evidence itself, and what it binds.
//!
//! Every `match` on a provider in this crate is exhaustive and none sits outside it: a
//! new provider's variant makes the compiler list each place that must learn about it.

use crate::error::VerifyError;
use crate::nitro::{self, NitroDocument};
use std::fmt;
use std::time::Duration;

/// A TEE provider whose evidence this crate appraises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Provider {
    /// AWS Nitro Enclaves: COSE_Sign1 attestation documents from the NSM, PCRs.
    Nitro,
}

/// Largest evidence of any provider: the bound for a frame that carries evidence.
pub const MAX_EVIDENCE_LEN: usize = nitro::MAX_DOCUMENT_LEN;

impl Provider {
    /// Every provider.
    pub const ALL: [Provider; 1] = [Provider::Nitro];

    /// The name in manifests, `cluster.toml` and reports.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Nitro => "nitro",
        }
    }

    /// The provider named `name`: its [`Self::name`], or the name manifests have always
    /// given its hardware (`"aws-nitro"`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "nitro" | "aws-nitro" => Some(Provider::Nitro),
            _ => None,
        }
    }

    /// The provider whose evidence `bytes` are, by content alone (nothing is parsed), or
    /// `None` when they look like no provider's.
    pub fn of_evidence(bytes: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.recognises(bytes))
    }

    fn recognises(self, bytes: &[u8]) -> bool {
        match self {
            Provider::Nitro => nitro::recognises(bytes),
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parsed evidence of some provider: its shape is checked, its signature and chain are
/// not (see [`crate::Verifier::verify`], which alone produces [`crate::Verified`]
/// evidence).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Evidence {
    Nitro(NitroDocument),
}

/// What evidence binds, as it states it: in the attested channel, the connection's TLS
/// exporter value (nonce), the sender's TLS key (public key) and the hash of the manifest
/// it runs (user data). Evidence that commits to a digest of these carries them beside
/// it, and its verifier checks the digest before they are read here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding<'a> {
    pub nonce: Option<&'a [u8]>,
    pub public_key: Option<&'a [u8]>,
    pub user_data: Option<&'a [u8]>,
}

impl Evidence {
    /// Decodes `bytes` as the evidence of the provider they look like; that provider's
    /// parser checks its size limit before it decodes anything.
    pub fn parse(bytes: &[u8]) -> Result<Self, VerifyError> {
        match Provider::of_evidence(bytes) {
            Some(Provider::Nitro) => Ok(Evidence::Nitro(NitroDocument::parse(bytes)?)),
            None => Err(VerifyError::UnrecognisedEvidence),
        }
    }

    pub fn provider(&self) -> Provider {
        match self {
            Evidence::Nitro(_) => Provider::Nitro,
        }
    }

    /// When the evidence was made, since the Unix epoch.
    pub fn time(&self) -> Duration {
        match self {
            Evidence::Nitro(doc) => Duration::from_millis(doc.timestamp_ms()),
        }
    }

    pub fn binding(&self) -> Binding<'_> {
        match self {
            Evidence::Nitro(doc) => Binding {
                nonce: doc.nonce(),
                public_key: doc.public_key(),
                user_data: doc.user_data(),
            },
        }
    }

    /// Which attester instance made it, for logs: Nitro's module id.
    pub fn attester_id(&self) -> &str {
        match self {
            Evidence::Nitro(doc) => doc.module_id(),
        }
    }

    /// The measurement of the code that runs, for logs and status: Nitro's PCR0.
    pub fn code_measurement(&self) -> Option<&[u8]> {
        match self {
            Evidence::Nitro(doc) => doc.pcr(0),
        }
    }
}
