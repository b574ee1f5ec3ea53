//! Helpers shared by the session tests: every party of a protocol runs in this process.

#![allow(dead_code)]

use std::sync::Arc;

use mpc::ecdsa::{AuxInfo, Ecdsa, KeyShare, Presignature, Signature, ToSign};
use mpc::{DerivationPath, KeyId, NodeId, PartySet, Scheme, Session, SigningSet, Threshold, sim};

pub fn nodes(n: u16) -> Vec<NodeId> {
    (0..n)
        .map(|i| NodeId::new(format!("node-{i}")).unwrap())
        .collect()
}

pub fn group(n: u16) -> PartySet {
    PartySet::new(nodes(n)).unwrap()
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

pub fn aux_info(group: &PartySet) -> Vec<AuxInfo> {
    sim::load_aux_info(&fixture(&format!("aux-info-{}.json", group.len())), group).unwrap()
}

pub fn keygen_sessions(group: &PartySet, t: u16, key_id: &str) -> Vec<(NodeId, Session<KeyShare>)> {
    let threshold = Threshold::new(t, group).unwrap();
    let request = format!("create key {key_id}");
    group
        .nodes()
        .iter()
        .zip(aux_info(group))
        .map(|(node, aux)| {
            let session = Ecdsa::keygen(
                request.as_bytes(),
                KeyId::new(key_id).unwrap(),
                group,
                node,
                threshold,
                &aux,
            )
            .unwrap();
            (node.clone(), session)
        })
        .collect()
}

/// Every party's share, in index order; all agree on the public key.
pub fn keygen(n: u16, t: u16, key_id: &str) -> Vec<Arc<KeyShare>> {
    let shares: Vec<Arc<KeyShare>> = sim::run(keygen_sessions(&group(n), t, key_id))
        .into_iter()
        .map(|(_, share)| Arc::new(share.unwrap()))
        .collect();
    let public_key = shares[0].public_key().unwrap();
    assert!(shares.iter().all(|s| s.public_key().unwrap() == public_key));
    shares
}

pub fn signing_set(shares: &[Arc<KeyShare>], signers: &[usize]) -> SigningSet {
    shares[0]
        .signing_set(
            signers
                .iter()
                .map(|i| shares[*i].group().nodes()[*i].clone()),
        )
        .unwrap()
}

pub fn sign_sessions(
    shares: &[Arc<KeyShare>],
    signers: &[usize],
    to_sign: &ToSign,
    path: Option<&DerivationPath>,
    request: &str,
) -> Vec<(NodeId, Session<Signature>)> {
    let set = signing_set(shares, signers);
    signers
        .iter()
        .map(|i| {
            let node = shares[*i].group().nodes()[*i].clone();
            let session = Ecdsa::sign(
                request.as_bytes(),
                Arc::clone(&shares[*i]),
                &set,
                &node,
                to_sign.clone(),
                path,
            )
            .unwrap();
            (node, session)
        })
        .collect()
}

/// Runs a full signing; every signer outputs the same signature.
pub fn sign(
    shares: &[Arc<KeyShare>],
    signers: &[usize],
    to_sign: &ToSign,
    path: Option<&DerivationPath>,
) -> Signature {
    let request = format!("sign {to_sign:?} at {path:?} by {signers:?}");
    same_signature(sim::run(sign_sessions(
        shares, signers, to_sign, path, &request,
    )))
}

pub fn presign(
    shares: &[Arc<KeyShare>],
    signers: &[usize],
    path: Option<&DerivationPath>,
    request: &str,
) -> Vec<(NodeId, Presignature)> {
    let set = signing_set(shares, signers);
    let sessions = signers
        .iter()
        .map(|i| {
            let node = shares[*i].group().nodes()[*i].clone();
            let session = Ecdsa::presign(
                request.as_bytes(),
                Arc::clone(&shares[*i]),
                &set,
                &node,
                path,
            )
            .unwrap();
            (node, session)
        })
        .collect();
    sim::run(sessions)
        .into_iter()
        .map(|(node, presignature)| (node, presignature.unwrap()))
        .collect()
}

pub fn same_signature(results: Vec<(NodeId, Result<Signature, mpc::SessionError>)>) -> Signature {
    let signatures: Vec<Signature> = results
        .into_iter()
        .map(|(node, result)| result.unwrap_or_else(|e| panic!("{node}: {e}")))
        .collect();
    assert!(signatures.iter().all(|s| *s == signatures[0]));
    signatures[0]
}

/// Checks a signature with `k256` alone: verification against the compressed public key, low
/// `s`, and recovery of that key from the recovery id.
pub fn check_with_k256(signature: &Signature, public_key: &[u8; 33], prehash: &[u8; 32]) {
    use k256::ecdsa::signature::hazmat::PrehashVerifier;
    use k256::ecdsa::{RecoveryId, VerifyingKey};

    let key = VerifyingKey::from_sec1_bytes(public_key).unwrap();
    let parsed = k256::ecdsa::Signature::from_scalars(signature.r(), signature.s()).unwrap();
    assert!(parsed.normalize_s().is_none(), "s is not low");
    key.verify_prehash(prehash, &parsed).unwrap();
    let recovery_id = RecoveryId::from_byte(signature.recovery_id()).unwrap();
    let recovered = VerifyingKey::recover_from_prehash(prehash, &parsed, recovery_id).unwrap();
    assert_eq!(recovered, key, "recovery gives another key");
}

/// Every subset of `0..n` with `t` elements.
pub fn subsets(n: usize, t: usize) -> Vec<Vec<usize>> {
    (0u32..1 << n)
        .filter(|mask| mask.count_ones() as usize == t)
        .map(|mask| (0..n).filter(|i| mask & (1 << i) != 0).collect())
        .collect()
}
