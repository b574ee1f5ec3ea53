//! The export: the log as JSON Lines with the node's attestation, and its offline check.
//!
//! Line 1 is the header, written by `serde_json` in this field order with no spaces:
//! `{"format":"tee-custody-audit-v1","node":..,"public_key":"<hex>","count":N,
//! "head":"<hex>","manifest_hash":"<hex>","attestation":"<hex>"}`; then one entry per
//! line, entry 0 first, each in its canonical form (see [`crate::entry`]); every line
//! ends with `\n`.
//!
//! The attestation document binds the log to the enclave: its `public_key` is the audit
//! key, its `nonce` is [`head_nonce`] of the header's count and head, and its
//! `user_data` is the hash of the manifest the node runs. [`ExportVerifier`] checks the
//! document at its own timestamp under the caller's trusted roots, then every entry as
//! the chain requires, then that the entries end exactly at the attested head: an
//! edited, removed, swapped or duplicated line, and a removed last line, are refused
//! with the line at fault.

use crate::entry::{Chain, Entry, Head};
use crate::error::{AuditError, ExportProblem};
use crate::hex_serde;
use crate::log::{AuditLog, MAX_ENTRIES};
use attestation::{
    AttestationRequest, Evidence, Expectation, MAX_EVIDENCE_LEN, Measurements, Verified, Verifier,
};
use aws_lc_rs::digest::{self, SHA256};
use ids::{ManifestHash, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

/// The header's `format`.
pub const EXPORT_FORMAT: &str = "tee-custody-audit-v1";
/// What the attested nonce's hash input starts with.
pub const HEAD_NONCE_CONTEXT: &[u8] = b"tee-custody audit head v1\0";
/// Longest entry line.
pub const MAX_LINE_LEN: usize = 32 * 1024;
/// Longest header line: the largest attestation document in hex, and the rest.
pub const MAX_HEADER_LEN: usize = 2 * MAX_EVIDENCE_LEN + 1024;
/// Most lines in an export, the header included.
pub const MAX_LINES: u64 = 1_000_000;

/// The nonce the export's attestation document carries: SHA-256 of
/// [`HEAD_NONCE_CONTEXT`], `count` as a big-endian u64, and `head`.
pub fn head_nonce(count: u64, head: &[u8; 32]) -> [u8; 32] {
    let mut context = digest::Context::new(&SHA256);
    context.update(HEAD_NONCE_CONTEXT);
    context.update(&count.to_be_bytes());
    context.update(head);
    let mut out = [0u8; 32];
    let digest = context.finish();
    out.iter_mut()
        .zip(digest.as_ref())
        .for_each(|(o, d)| *o = *d);
    out
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderWire {
    format: String,
    node: NodeId,
    #[serde(with = "hex_serde::array")]
    public_key: [u8; 32],
    count: u64,
    #[serde(with = "hex_serde::array")]
    head: [u8; 32],
    #[serde(with = "hex_serde::array")]
    manifest_hash: [u8; 32],
    attestation: String,
}

/// The header line of an export for `node`'s log at `head`, signed by the audit key
/// `public_key`, under the manifest `manifest_hash`, with the attestation document the
/// node obtained for [`attestation_request`] (the line has no line break).
pub fn export_header(
    node: &NodeId,
    public_key: &[u8; 32],
    head: Head,
    manifest_hash: &ManifestHash,
    attestation: &[u8],
) -> Result<String, AuditError> {
    let wire = HeaderWire {
        format: EXPORT_FORMAT.to_owned(),
        node: node.clone(),
        public_key: *public_key,
        count: head.count,
        head: head.hash,
        manifest_hash: *manifest_hash.as_bytes(),
        attestation: hex::encode(attestation),
    };
    serde_json::to_string(&wire).map_err(|e| AuditError::Encoding {
        what: "export header",
        reason: e.to_string(),
    })
}

/// What the node asks its attester for to export its log at `head`: the audit key as
/// the public key, [`head_nonce`] as the nonce, the manifest hash as user data.
pub fn attestation_request(
    public_key: &[u8; 32],
    head: Head,
    manifest_hash: &ManifestHash,
) -> AttestationRequest {
    AttestationRequest {
        user_data: Some(manifest_hash.as_bytes().to_vec()),
        nonce: Some(head_nonce(head.count, &head.hash).to_vec()),
        public_key: Some(public_key.to_vec()),
    }
}

impl AuditLog {
    /// What to ask the attester for to export the log as it stands.
    pub fn attestation_request(&self, manifest_hash: &ManifestHash) -> AttestationRequest {
        attestation_request(&self.public_key(), self.head(), manifest_hash)
    }

    /// The whole log as an export, with `attestation`, the document obtained for
    /// [`Self::attestation_request`] while the log stood where it stands now.
    pub fn export(
        &self,
        manifest_hash: &ManifestHash,
        attestation: &[u8],
    ) -> Result<String, AuditError> {
        let mut out = export_header(
            self.node(),
            &self.public_key(),
            self.head(),
            manifest_hash,
            attestation,
        )?;
        out.push('\n');
        for entry in self.entries_from(0) {
            out.push_str(&entry.to_line()?);
            out.push('\n');
        }
        Ok(out)
    }
}

/// An export's header, parsed and in canonical form; nothing in it is trusted yet.
#[derive(Debug, Clone)]
pub struct ExportHeader {
    wire: HeaderWire,
    attestation: Vec<u8>,
}

fn header_error(problem: ExportProblem) -> AuditError {
    AuditError::Export { line: 1, problem }
}

impl ExportHeader {
    /// Parses line 1 of an export (without its line break).
    pub fn parse(line: &str) -> Result<Self, AuditError> {
        let malformed = |reason: String| header_error(ExportProblem::Header { reason });
        if line.is_empty() {
            return Err(header_error(ExportProblem::Empty));
        }
        if line.len() > MAX_HEADER_LEN {
            return Err(header_error(ExportProblem::LineTooLong {
                len: line.len(),
                max: MAX_HEADER_LEN,
            }));
        }
        let wire: HeaderWire = serde_json::from_str(line).map_err(|e| malformed(e.to_string()))?;
        if wire.format != EXPORT_FORMAT {
            return Err(header_error(ExportProblem::Format { found: wire.format }));
        }
        if serde_json::to_string(&wire).map_err(|e| malformed(e.to_string()))? != line {
            return Err(malformed(
                "not in the canonical form the node writes".to_owned(),
            ));
        }
        if wire.count > MAX_ENTRIES {
            return Err(malformed(format!(
                "count {} is more than the {MAX_ENTRIES} entries a log may hold",
                wire.count
            )));
        }
        if wire.attestation.len() > 2 * MAX_EVIDENCE_LEN {
            return Err(malformed(format!(
                "the attestation document is more than {MAX_EVIDENCE_LEN} bytes"
            )));
        }
        let attestation =
            hex::decode(&wire.attestation).map_err(|e| malformed(format!("attestation: {e}")))?;
        Ok(ExportHeader { wire, attestation })
    }

    /// The node the export claims to be from (the attestation's measurements are what
    /// prove which node it is).
    pub fn node(&self) -> &NodeId {
        &self.wire.node
    }

    pub fn head(&self) -> Head {
        Head {
            count: self.wire.count,
            hash: self.wire.head,
        }
    }
}

/// A verified export: what the attestation document proves and what the entries are.
/// Only [`ExportVerifier::finish`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedExport {
    node: NodeId,
    public_key: [u8; 32],
    head: Head,
    manifest_hash: ManifestHash,
    evidence: Verified<Evidence>,
    matched_set: Option<usize>,
}

impl VerifiedExport {
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    pub fn count(&self) -> u64 {
        self.head.count
    }

    pub fn head(&self) -> Head {
        self.head
    }

    pub fn manifest_hash(&self) -> &ManifestHash {
        &self.manifest_hash
    }

    /// When the node attested its head, since the Unix epoch.
    pub fn attested_at(&self) -> Duration {
        self.evidence.time()
    }

    /// The verified attestation document.
    pub fn evidence(&self) -> &Verified<Evidence> {
        &self.evidence
    }

    /// Which of the given measurement sets the document matched, when sets were given.
    pub fn matched_set(&self) -> Option<usize> {
        self.matched_set
    }

    /// The evidence's measurements by name: Nitro's PCRs (`"pcr0"`, ..) in hex,
    /// Confidential Space's image digest and instance (`"image_digest"`, `"instance_id"`,
    /// ..) as the token states them.
    pub fn measurements(&self) -> BTreeMap<String, String> {
        match &*self.evidence {
            Evidence::Nitro(doc) => doc
                .pcrs()
                .iter()
                .map(|(index, value)| (format!("pcr{index}"), hex::encode(value)))
                .collect(),
            Evidence::GcpCs(cs) => {
                let claims = cs.token().claims();
                [
                    ("image_digest", &claims.image_digest),
                    ("project_id", &claims.project_id),
                    ("zone", &claims.zone),
                    ("instance_id", &claims.instance_id),
                ]
                .into_iter()
                .filter_map(|(name, value)| Some((name.to_owned(), value.clone()?)))
                .collect()
            }
            _ => BTreeMap::new(),
        }
    }
}

/// Checks an export one line at a time, keeping only the chain's head in memory.
#[derive(Debug, Clone)]
pub struct ExportVerifier {
    header: ExportHeader,
    evidence: Verified<Evidence>,
    matched_set: Option<usize>,
    chain: Chain,
    /// The number of the next line, the header being line 1.
    next_line: u64,
}

impl ExportVerifier {
    /// Checks the header's attestation document under `verifier`'s roots at the
    /// document's own timestamp, and that it binds the header's key, head and manifest.
    /// With `measurements`, the document must match one of them (the node's entries in
    /// the manifest); without, any measurement is accepted but debug mode is not.
    pub fn new(
        header: ExportHeader,
        verifier: &Verifier,
        measurements: Option<&[Measurements]>,
    ) -> Result<Self, AuditError> {
        let bytes = header.attestation.as_slice();
        let parsed = Evidence::parse(bytes).map_err(|e| header_error(e.into()))?;
        // Nothing is verified yet: a time past the calendar's end is refused, not added.
        let at = UNIX_EPOCH.checked_add(parsed.time()).ok_or_else(|| {
            header_error(ExportProblem::Header {
                reason: "the attestation's time is out of range".to_owned(),
            })
        })?;
        let (evidence, matched_set) = match measurements {
            Some(sets) => {
                let expectation = Expectation::new(sets.to_vec())
                    .map_err(|e| header_error(ExportProblem::Attestation(e.into())))?
                    .without_age_limit();
                let appraisal = verifier
                    .appraise(bytes, &expectation, at)
                    .map_err(|e| header_error(e.into()))?;
                (appraisal.evidence().clone(), Some(appraisal.matched_set()))
            }
            None => {
                let evidence = verifier
                    .verify(bytes, at)
                    .map_err(|e| header_error(e.into()))?;
                if evidence.is_debug() {
                    return Err(header_error(ExportProblem::DebugMode));
                }
                (evidence, None)
            }
        };
        let binding = evidence.binding();
        let wire = &header.wire;
        if binding.public_key != Some(wire.public_key.as_slice()) {
            return Err(header_error(ExportProblem::AttestedKey));
        }
        if binding.nonce != Some(head_nonce(wire.count, &wire.head).as_slice()) {
            return Err(header_error(ExportProblem::AttestedHead));
        }
        if binding.user_data != Some(wire.manifest_hash.as_slice()) {
            return Err(header_error(ExportProblem::AttestedManifest));
        }
        let chain = Chain::new(wire.node.clone(), wire.public_key);
        Ok(ExportVerifier {
            header,
            evidence,
            matched_set,
            chain,
            next_line: 2,
        })
    }

    /// Checks the next entry line (without its line break).
    pub fn entry(&mut self, line: &str) -> Result<(), AuditError> {
        let number = self.next_line;
        let fail = |problem| AuditError::Export {
            line: number,
            problem,
        };
        if number > MAX_LINES {
            return Err(fail(ExportProblem::TooManyLines { max: MAX_LINES }));
        }
        if line.is_empty() {
            return Err(fail(ExportProblem::EmptyLine));
        }
        if line.len() > MAX_LINE_LEN {
            return Err(fail(ExportProblem::LineTooLong {
                len: line.len(),
                max: MAX_LINE_LEN,
            }));
        }
        let count = self.header.wire.count;
        let seq = self.chain.head().count;
        if seq >= count {
            return Err(fail(ExportProblem::Extra { seq, count }));
        }
        let entry = Entry::parse(line).map_err(|p| fail(p.into()))?;
        self.chain.accept(&entry).map_err(|p| fail(p.into()))?;
        self.next_line = number.saturating_add(1);
        Ok(())
    }

    /// Checks that the entries ended exactly at the attested head.
    pub fn finish(self) -> Result<VerifiedExport, AuditError> {
        let head = self.chain.head();
        let count = self.header.wire.count;
        if head.count < count {
            return Err(AuditError::Export {
                line: self.next_line,
                problem: ExportProblem::Missing {
                    seq: head.count,
                    count,
                },
            });
        }
        if head.hash != self.header.wire.head {
            return Err(AuditError::Export {
                line: self.next_line.saturating_sub(1),
                problem: ExportProblem::Head,
            });
        }
        Ok(VerifiedExport {
            node: self.header.wire.node.clone(),
            public_key: self.header.wire.public_key,
            head,
            manifest_hash: ManifestHash::from(self.header.wire.manifest_hash),
            evidence: self.evidence,
            matched_set: self.matched_set,
        })
    }
}

/// Verifies a whole export held in memory: the header, then each line, then the end.
/// One line break may end the text; any other empty line is refused.
pub fn verify_export(
    text: &str,
    verifier: &Verifier,
    measurements: Option<&[Measurements]>,
) -> Result<VerifiedExport, AuditError> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    let mut lines = text.split('\n');
    let header = ExportHeader::parse(lines.next().unwrap_or_default())?;
    let mut verifier = ExportVerifier::new(header, verifier, measurements)?;
    for line in lines {
        verifier.entry(line)?;
    }
    verifier.finish()
}
