//! What nodes exchange right after the TLS handshake, and the check each side applies to
//! what it receives. The check is a pure function of its inputs (no I/O, explicit time)
//! so every refusal can be tested directly.
//!
//! Hello: [`protocol::hello`], a node id and an attestation document whose `nonce` is the
//! connection's TLS exporter value, its `public_key` the DER SubjectPublicKeyInfo of the
//! sender's TLS certificate, its `user_data` the SHA-256 of the sender's manifest.
//! Verdict: `[1][0]` accepted, or `[1][1][reason]` refused.

use super::ChannelError;
use attestation::{MeasurementSet, TrustPolicy, Verifier};
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
    pub peers: BTreeMap<String, Vec<MeasurementSet>>,
    /// Roots trusted for attestation documents.
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
    pub module_id: String,
    /// Hex of the peer's PCR0, for logs.
    pub pcr0: String,
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

/// Decides whether the sender of `hello` is a peer this node may talk to.
///
/// - the claimed node id is in the manifest, is not this node, and is the one dialled;
/// - the document verifies (signature, chain to a trusted root, at `now`);
/// - its PCRs match one of the measurement sets the manifest accepts for that node, it
///   is not from a debug-mode enclave unless allowed, and it is fresh (the manifest
///   refuses nodes whose sets one document could match, so this also proves that the
///   sender IS that node, not merely another node of the same image claiming its id);
/// - its nonce is this connection's exporter value (a document from another
///   connection cannot be replayed);
/// - its public key is the key of the TLS certificate the peer presented (a genuine
///   document cannot be relayed by someone else's TLS endpoint);
/// - its user data is this node's manifest hash (both run under the same manifest).
pub(crate) fn check_hello(
    trust: &PeerTrust,
    own_id: &str,
    expected_peer: Option<&str>,
    hello: &Hello,
    exporter: &[u8],
    peer_spki: &[u8],
    now: SystemTime,
) -> Result<VerifiedPeer, ChannelError> {
    let peer = hello.node_id.clone();
    if peer == own_id {
        return Err(ChannelError::SelfConnection);
    }
    if let Some(expected) = expected_peer
        && expected != peer
    {
        return Err(ChannelError::WrongPeer {
            expected: expected.to_owned(),
            claimed: peer,
        });
    }
    let (verified, public_key) = check_evidence(trust, &peer, &hello.document, exporter, now)?;
    if public_key.as_deref() != Some(peer_spki) {
        return Err(ChannelError::KeyBinding { peer });
    }
    Ok(verified)
}

/// The checks every document from a peer must pass, whatever it is for: it verifies at
/// `now` under a trusted root, matches a measurement set the manifest accepts for `peer`,
/// is fresh, is not from a debug-mode enclave unless allowed, carries `nonce` and this
/// node's manifest hash. Returns the peer and the public key the document binds.
pub(crate) fn check_evidence(
    trust: &PeerTrust,
    peer: &str,
    document: &[u8],
    nonce: &[u8],
    now: SystemTime,
) -> Result<(VerifiedPeer, Option<Vec<u8>>), ChannelError> {
    let peer = peer.to_owned();
    let sets = trust
        .peers
        .get(&peer)
        .ok_or_else(|| ChannelError::UnknownNode(peer.clone()))?;
    let doc = trust
        .verifier
        .verify(document, now)
        .map_err(|source| ChannelError::Evidence {
            peer: peer.clone(),
            source,
        })?;
    let policy = TrustPolicy::new(sets.clone())
        .map_err(|source| ChannelError::Policy {
            peer: peer.clone(),
            source,
        })?
        .allow_debug(trust.allow_debug)
        .max_age(trust.max_evidence_age)
        .expect_nonce(nonce.to_vec());
    let accepted = policy
        .check(&doc, now)
        .map_err(|source| ChannelError::Policy {
            peer: peer.clone(),
            source,
        })?;
    if accepted.user_data != Some(trust.manifest_hash.as_slice()) {
        return Err(ChannelError::ManifestMismatch { peer });
    }
    let public_key = accepted.public_key.map(<[u8]>::to_vec);
    Ok((
        VerifiedPeer {
            node_id: peer,
            module_id: accepted.module_id.to_owned(),
            pcr0: doc.pcr(0).map(hex::encode).unwrap_or_default(),
        },
        public_key,
    ))
}
