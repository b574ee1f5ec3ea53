//! The providers, and what every crate above this one carries instead of a provider's
//! own types: which provider a piece of evidence comes from (told apart by its content),
//! the evidence itself, and what it binds.
//!
//! Every `match` on a provider in this crate is exhaustive and none sits outside it: a
//! new provider's variant makes the compiler list each place that must learn about it.

use crate::error::VerifyError;
use crate::gcp::{self, CsEvidence};
use crate::nitro::{self, NitroDocument};
use std::fmt;
use std::time::Duration;

/// A TEE provider whose evidence this crate appraises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Provider {
    /// AWS Nitro Enclaves: COSE_Sign1 attestation documents from the NSM, PCRs.
    Nitro,
    /// Google Cloud Confidential Space: PKI tokens (RS256 JWT with an `x5c` chain) from
    /// the launcher, container image digest and instance.
    GcpCs,
}

/// Largest evidence of any provider: the bound for a frame that carries evidence.
pub const MAX_EVIDENCE_LEN: usize = if nitro::MAX_DOCUMENT_LEN > gcp::MAX_BUNDLE_LEN {
    nitro::MAX_DOCUMENT_LEN
} else {
    gcp::MAX_BUNDLE_LEN
};

impl Provider {
    /// Every provider.
    pub const ALL: [Provider; 2] = [Provider::Nitro, Provider::GcpCs];

    /// The name in manifests, `cluster.toml` and reports.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Nitro => "nitro",
            Provider::GcpCs => "gcp-cs",
        }
    }

    /// The provider named `name`: its [`Self::name`], or its long name (`"aws-nitro"`, the
    /// name manifests have always given Nitro's hardware; `"gcp-confidential-space"`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "nitro" | "aws-nitro" => Some(Provider::Nitro),
            "gcp-cs" | "gcp-confidential-space" => Some(Provider::GcpCs),
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
            Provider::GcpCs => gcp::recognises(bytes),
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
    GcpCs(CsEvidence),
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
            Some(Provider::GcpCs) => Ok(Evidence::GcpCs(CsEvidence::parse(bytes)?)),
            None => Err(VerifyError::UnrecognisedEvidence),
        }
    }

    pub fn provider(&self) -> Provider {
        match self {
            Evidence::Nitro(_) => Provider::Nitro,
            Evidence::GcpCs(_) => Provider::GcpCs,
        }
    }

    /// When the evidence was made, since the Unix epoch (Confidential Space: `iat`).
    pub fn time(&self) -> Duration {
        match self {
            Evidence::Nitro(doc) => Duration::from_millis(doc.timestamp_ms()),
            Evidence::GcpCs(cs) => cs.token().claims().issued_at(),
        }
    }

    /// When the evidence stops being valid, since the Unix epoch, if it says so itself
    /// (Confidential Space: `exp`; a Nitro document does not).
    pub fn expires(&self) -> Option<Duration> {
        match self {
            Evidence::Nitro(_) => None,
            Evidence::GcpCs(cs) => Some(Duration::from_secs(cs.token().claims().exp)),
        }
    }

    pub fn binding(&self) -> Binding<'_> {
        match self {
            Evidence::Nitro(doc) => Binding {
                nonce: doc.nonce(),
                public_key: doc.public_key(),
                user_data: doc.user_data(),
            },
            Evidence::GcpCs(cs) => cs.binding(),
        }
    }

    /// Which attester instance made it, for logs: Nitro's module id, Confidential
    /// Space's GCE instance id (empty when the token names none).
    pub fn attester_id(&self) -> &str {
        match self {
            Evidence::Nitro(doc) => doc.module_id(),
            Evidence::GcpCs(cs) => cs.token().claims().instance_id.as_deref().unwrap_or(""),
        }
    }

    /// Whether the evidence comes from a TEE whose host can read its memory or change
    /// its workload: Nitro's debug mode (PCR0-2 all zero), or a Confidential Space
    /// workload that is debuggable or runs on an image out of support (no `STABLE`).
    /// Verifiers refuse such evidence unless debug is allowed; an auditor who accepts
    /// any measurement still checks this.
    pub fn is_debug(&self) -> bool {
        match self {
            Evidence::Nitro(doc) => doc.is_debug_mode(),
            Evidence::GcpCs(cs) => cs.token().claims().is_debug(),
        }
    }

    /// The measurement of the code that runs, for logs and status: Nitro's PCR0,
    /// Confidential Space's container image digest (32 bytes).
    pub fn code_measurement(&self) -> Option<&[u8]> {
        match self {
            Evidence::Nitro(doc) => doc.pcr(0),
            Evidence::GcpCs(cs) => cs
                .token()
                .claims()
                .image_digest_bytes()
                .map(|d| d.as_slice()),
        }
    }
}
