//! What nodes exchange right after the TLS handshake, and the one check that decides
//! whether evidence proves a node: a node checking a peer and a client checking a node
//! both call [`check_evidence`]. The check is a pure function of its inputs (no I/O,
//! explicit time) so every refusal can be tested directly.
//!
//! Hello: [`protocol::hello`], a node id and evidence (for Nitro, an attestation
//! document) binding as nonce the connection's TLS exporter value, as public key the DER
//! SubjectPublicKeyInfo of the sender's TLS certificate, and as user data the SHA-256 of
//! the sender's manifest. Verdict: `[1][0]` accepted, or `[1][1][reason]` refused.

use super::ChannelError;
use super::client_port::ManifestRule;
use attestation::{AppraisalError, Expectation, Measurements, Provider, Verifier};
pub(crate) use protocol::hello::Hello;
pub use protocol::hello::MAX_HELLO_LEN;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

const VERSION: u8 = 1;
/// Largest verdict accepted.
pub const MAX_VERDICT_LEN: usize = 2 + MAX_REASON_LEN;
const MAX_REASON_LEN: usize = 256;

/// What a node trusts in its peers, derived from its accepted manifest.
#[derive(Debug, Clone)]
pub struct PeerTrust {
    /// Hash of the manifest this node runs under; peers must attest to the same one.
    pub manifest_hash: [u8; 32],
    /// Node id to the measurement sets accepted for it.
    pub peers: BTreeMap<String, Vec<Measurements>>,
    /// Roots trusted for evidence.
    pub verifier: Verifier,
    /// Oldest evidence accepted.
    pub max_evidence_age: Duration,
    /// Accept debug-mode enclaves (never in production).
    pub allow_debug: bool,
}

/// A peer that proved who it is and what it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPeer {
    pub node_id: String,
    /// The provider whose evidence the peer gave.
    pub provider: Provider,
    /// The attester instance that made the evidence (Nitro: the module id), for logs.
    pub module_id: String,
    /// Hex of the measurement of the peer's code (Nitro: PCR0), for logs and status.
    pub pcr0: String,
    /// When the evidence the peer showed stops being valid, since the Unix epoch (`None`:
    /// never, as for Nitro documents): the channel must be re-attested before then.
    pub expires: Option<Duration>,
}

impl PeerTrust {
    /// What the evidence of the peer `peer` must satisfy.
    fn requirement<'a>(
        &'a self,
        peer: &'a str,
        manifest: &'a ManifestRule,
    ) -> Result<Requirement<'a>, ChannelError> {
        let measurements = self
            .peers
            .get(peer)
            .ok_or_else(|| ChannelError::UnknownNode(peer.to_owned()))?;
        Ok(Requirement {
            node_id: peer,
            measurements,
            verifier: &self.verifier,
            max_evidence_age: self.max_evidence_age,
            allow_debug: self.allow_debug,
            manifest,
        })
    }
}

/// What one end requires of the evidence of the node at the other end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Requirement<'a> {
    /// The node the evidence must prove.
    pub(crate) node_id: &'a str,
    /// The measurement sets accepted for that node (any one must match).
    pub(crate) measurements: &'a [Measurements],
    /// Roots trusted for the evidence.
    pub(crate) verifier: &'a Verifier,
    pub(crate) max_evidence_age: Duration,
    pub(crate) allow_debug: bool,
    /// The manifests the node may run.
    pub(crate) manifest: &'a ManifestRule,
}

/// What accepted evidence established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checked {
    pub(crate) provider: Provider,
    pub(crate) module_id: String,
    /// Hex of the code measurement.
    pub(crate) pcr0: String,
    /// The public key the evidence binds.
    pub(crate) public_key: Option<Vec<u8>>,
    /// The manifest the node runs, if it has one.
    pub(crate) manifest_hash: Option<[u8; 32]>,
    /// When the evidence stops being valid, since the Unix epoch.
    pub(crate) expires: Option<Duration>,
}

pub(crate) fn encode_verdict(result: &Result<VerifiedPeer, ChannelError>) -> Vec<u8> {
    match result {
        Ok(_) => vec![VERSION, 0],
        Err(e) => {
            let mut reason = e.to_string();
            let mut end = reason.len().min(MAX_REASON_LEN);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
            let mut out = vec![VERSION, 1];
            out.extend_from_slice(reason.as_bytes());
            out
        }
    }
}

/// `Ok(())` when the peer accepted us, its reason otherwise.
pub(crate) fn decode_verdict(bytes: &[u8]) -> Result<Result<(), String>, ChannelError> {
    match bytes {
        [VERSION, 0] => Ok(Ok(())),
        [VERSION, 1, reason @ ..] if reason.len() <= MAX_REASON_LEN => {
            Ok(Err(protocol::printable(&String::from_utf8_lossy(reason))))
        }
        _ => Err(ChannelError::Malformed("invalid verdict")),
    }
}

/// Decides whether the sender of `hello` is a peer this node may talk to: the claimed node
/// id is in the manifest, is not this node, and is the one dialled; then
/// [`check_evidence`], with this connection's exporter value as nonce, the TLS key the
/// peer presented as the key it must bind, and exactly this node's manifest.
pub(crate) fn check_hello(
    trust: &PeerTrust,
    own_id: &str,
    expected_peer: Option<&str>,
    hello: &Hello,
    exporter: &[u8],
    peer_spki: &[u8],
    now: SystemTime,
) -> Result<VerifiedPeer, ChannelError> {
    let peer = hello.node_id.as_str();
    if peer == own_id {
        return Err(ChannelError::SelfConnection);
    }
    if let Some(expected) = expected_peer
        && expected != peer
    {
        return Err(ChannelError::WrongPeer {
            expected: expected.to_owned(),
            claimed: peer.to_owned(),
        });
    }
    let same = ManifestRule::Same(trust.manifest_hash);
    let checked = check_evidence(
        trust.requirement(peer, &same)?,
        &hello.document,
        exporter,
        Some(peer_spki),
        now,
    )?;
    Ok(VerifiedPeer {
        node_id: peer.to_owned(),
        provider: checked.provider,
        module_id: checked.module_id,
        pcr0: checked.pcr0,
        expires: checked.expires,
    })
}

/// A further document from `peer` (bound to a channel by `nonce`, its exporter value), for
/// whatever it is for: [`check_evidence`] with this node's manifest. Returns the public
/// key the document binds.
pub(crate) fn check_peer_document(
    trust: &PeerTrust,
    peer: &str,
    document: &[u8],
    nonce: &[u8],
    now: SystemTime,
) -> Result<Option<Vec<u8>>, ChannelError> {
    let same = ManifestRule::Same(trust.manifest_hash);
    check_evidence(trust.requirement(peer, &same)?, document, nonce, None, now)
        .map(|checked| checked.public_key)
}

/// The one decision about a node's evidence, made the same way by a node about its peer
/// and by a client about a node:
///
/// - the evidence verifies at `now` under a root `required` trusts for its provider;
/// - it matches one of the measurement sets accepted for `required.node_id` (the manifest
///   and a client's file both refuse nodes whose sets one piece of evidence could match,
///   so this also proves that the sender IS that node, not merely another node of the
///   same image claiming its id), it is not from a debug-mode TEE unless allowed, and it
///   is fresh;
/// - it binds `nonce`, the connection's exporter value (evidence from another
///   connection cannot be replayed), and evidence that names an audience (a Confidential
///   Space token) names this system's, [`attestation::gcp::CUSTODY_AUDIENCE`];
/// - it binds `tls_key` when one is given, the key of the TLS certificate the node
///   presented (genuine evidence cannot be relayed by someone else's TLS endpoint);
/// - the manifest it names (its user data) is one `required.manifest` accepts.
pub(crate) fn check_evidence(
    required: Requirement<'_>,
    evidence: &[u8],
    nonce: &[u8],
    tls_key: Option<&[u8]>,
    now: SystemTime,
) -> Result<Checked, ChannelError> {
    let peer = || required.node_id.to_owned();
    let expectation = Expectation::new(required.measurements.to_vec())
        .map_err(|source| ChannelError::Policy {
            peer: peer(),
            source,
        })?
        .allow_debug(required.allow_debug)
        .max_age(required.max_evidence_age)
        .expect_nonce(nonce.to_vec())
        .expect_audience(attestation::gcp::CUSTODY_AUDIENCE.to_owned());
    let appraisal = required
        .verifier
        .appraise(evidence, &expectation, now)
        .map_err(|e| match e {
            AppraisalError::Verify(source) => ChannelError::Evidence {
                peer: peer(),
                source,
            },
            AppraisalError::Policy(source) => ChannelError::Policy {
                peer: peer(),
                source,
            },
        })?;
    let binding = appraisal.binding();
    if let Some(key) = tls_key
        && binding.public_key != Some(key)
    {
        return Err(ChannelError::KeyBinding { peer: peer() });
    }
    let manifest_hash = match binding.user_data {
        None => None,
        Some(bytes) => Some(
            <[u8; 32]>::try_from(bytes)
                .map_err(|_| ChannelError::ManifestMismatch { peer: peer() })?,
        ),
    };
    required
        .manifest
        .check(required.node_id, manifest_hash.as_ref())?;
    let evidence = appraisal.evidence();
    Ok(Checked {
        provider: appraisal.provider(),
        module_id: evidence.attester_id().to_owned(),
        pcr0: evidence
            .code_measurement()
            .map(hex::encode)
            .unwrap_or_default(),
        public_key: binding.public_key.map(<[u8]>::to_vec),
        manifest_hash,
        expires: evidence.expires(),
    })
}
