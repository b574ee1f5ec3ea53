//! Key generation, signing by every signing set, derived keys, restored shares, presignatures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::Arc;

use common::*;
use mpc::ecdsa::{Ecdsa, KeyShare, PoolKey, PresignRefusal, PresignaturePool, ToSign};
use mpc::{DerivationPath, Scheme, SessionError, SessionId, sim};

fn message(text: &str) -> ToSign {
    ToSign::Keccak256Message(text.as_bytes().to_vec())
}

/// Signs with every signing set, two sets at a time on their own threads (a 3-of-5 signature
/// costs seconds of CPU).
fn sign_with_every_set(shares: &[Arc<KeyShare>], t: usize) -> usize {
    let public_key = shares[0].public_key().unwrap();
    let sets = subsets(shares.len(), t);
    std::thread::scope(|scope| {
        for chunk in sets.chunks(sets.len().div_ceil(2)) {
            scope.spawn(move || {
                for signers in chunk {
                    let to_sign = if signers[0] == 0 {
                        message(&format!("transfer by {signers:?}"))
                    } else {
                        ToSign::Digest([signers[0] as u8; 32])
                    };
                    let signature = sign(shares, signers, &to_sign, None);
                    signature.verify(&public_key, &to_sign.prehash()).unwrap();
                    assert_eq!(signature.recover(&to_sign.prehash()).unwrap(), public_key);
                    check_with_k256(
                        &signature,
                        &public_key.to_sec1_compressed(),
                        &to_sign.prehash(),
                    );
                }
            });
        }
    });
    sets.len()
}

#[test]
fn two_of_three_every_signing_set() {
    let shares = keygen(3, 2, "key-2-of-3");
    assert_eq!(sign_with_every_set(&shares, 2), 3);
}

#[test]
fn three_of_five_every_signing_set() {
    let shares = keygen(5, 3, "key-3-of-5");
    assert_eq!(sign_with_every_set(&shares, 3), 10);
}

#[test]
fn restored_shares_sign_at_a_derived_path() {
    let shares = keygen(3, 2, "key-hd");
    let path = DerivationPath::new([44, 0, 7]).unwrap();
    let master = shares[0].public_key().unwrap();
    let derived = shares[0].derived_public_key(&path).unwrap();
    assert_ne!(derived, master);

    // A restarted node has only what it sealed.
    let restored: Vec<Arc<KeyShare>> = shares
        .iter()
        .map(|share| {
            let sealed = share.to_sealed_bytes().unwrap();
            Arc::new(KeyShare::from_sealed_bytes(&sealed).unwrap())
        })
        .collect();
    drop(shares);
    assert_eq!(restored[1].key_id().as_str(), "key-hd");
    assert_eq!(restored[1].public_key().unwrap(), master);
    assert!(
        restored
            .iter()
            .all(|s| s.derived_public_key(&path).unwrap() == derived)
    );

    let to_sign = message("withdraw from a derived address");
    let signature = sign(&restored, &[0, 2], &to_sign, Some(&path));
    check_with_k256(
        &signature,
        &derived.to_sec1_compressed(),
        &to_sign.prehash(),
    );
    assert_eq!(signature.recover(&to_sign.prehash()).unwrap(), derived);
    assert!(signature.verify(&master, &to_sign.prehash()).is_err());
}

/// About a minute of CPU (the auxiliary-info proofs of three parties); `gen-fixtures` and the
/// benchmark run the same protocol.
#[test]
#[ignore = "about a minute of CPU; run with --ignored"]
fn auxiliary_info_from_fixture_primes_supports_a_key() {
    let group = group(3);
    let primes = sim::load_primes(&fixture("primes.json")).unwrap();
    let sessions = group
        .nodes()
        .iter()
        .zip(primes)
        .map(|(node, primes)| {
            let session = Ecdsa::aux_info(b"aux info for the test group", &group, node, primes);
            (node.clone(), session.unwrap())
        })
        .collect();
    let aux: Vec<_> = sim::run(sessions)
        .into_iter()
        .map(|(_, aux)| aux.unwrap())
        .collect();
    for (i, aux) in aux.iter().enumerate() {
        assert_eq!(usize::from(aux.index()), i);
        let restored =
            mpc::ecdsa::AuxInfo::from_sealed_bytes(&aux.to_sealed_bytes().unwrap()).unwrap();
        assert_eq!(restored.index(), aux.index());
    }
    let threshold = mpc::Threshold::new(2, &group).unwrap();
    let sessions = group
        .nodes()
        .iter()
        .zip(&aux)
        .map(|(node, aux)| {
            let key_id = mpc::KeyId::new("key-fresh-aux").unwrap();
            let session = Ecdsa::keygen(b"fresh", key_id, &group, node, threshold, aux);
            (node.clone(), session.unwrap())
        })
        .collect();
    let shares: Vec<_> = sim::run(sessions)
        .into_iter()
        .map(|(_, share)| Arc::new(share.unwrap()))
        .collect();
    let to_sign = message("first signature of a fresh group");
    let signature = sign(&shares, &[0, 1], &to_sign, None);
    let public_key = shares[0].public_key().unwrap();
    check_with_k256(
        &signature,
        &public_key.to_sec1_compressed(),
        &to_sign.prehash(),
    );
}

#[test]
fn a_presignature_signs_once_and_only_once() {
    let shares = keygen(3, 2, "key-presign");
    let public_key = shares[0].public_key().unwrap();
    let signers = [0usize, 2];
    let key = PoolKey {
        key_id: shares[0].key_id().clone(),
        signers: signing_set(&shares, &signers),
        path: DerivationPath::master(),
    };

    let presignatures = presign(&shares, &signers, None, "refill");
    let id = SessionId::derive(mpc::Protocol::Presign, b"refill");
    let mut pools = Vec::new();
    for (node, presignature) in presignatures {
        assert_eq!(presignature.public_key(), &public_key);
        let mut pool = PresignaturePool::new(1);
        assert_eq!(pool.put(id, presignature), 0);
        assert_eq!((pool.available(&key), pool.missing(&key)), (1, 0));
        pools.push((node, pool));
    }

    // A digest with no known preimage is refused before a presignature is spent.
    let digest = ToSign::Digest([9; 32]);
    for (_, pool) in &mut pools {
        assert!(matches!(
            pool.take_for(&key, &digest),
            Err(PresignRefusal::PrehashedDigest)
        ));
        assert_eq!(pool.available(&key), 1);
    }

    let to_sign = message("pay from the pool");
    let sessions = pools
        .iter_mut()
        .map(|(node, pool)| {
            let (taken, presignature) = pool
                .take_for(&key, &to_sign)
                .unwrap()
                .expect("the pool holds one");
            assert_eq!(taken, id);
            let session =
                Ecdsa::sign_presigned(b"pay from the pool", presignature, node, &to_sign, None)
                    .unwrap();
            (node.clone(), session)
        })
        .collect();
    let signature = same_signature(sim::run(sessions));
    check_with_k256(
        &signature,
        &public_key.to_sec1_compressed(),
        &to_sign.prehash(),
    );

    // Nothing is left to sign a second message with.
    for (node, pool) in &mut pools {
        assert_eq!((pool.available(&key), pool.missing(&key)), (0, 1));
        if pool.take(&key, &id).is_some() || pool.take_for(&key, &to_sign).unwrap().is_some() {
            panic!("{node}: a presignature was handed out twice");
        }
    }
}

#[test]
fn presignature_rules_are_enforced() {
    let shares = keygen(3, 2, "key-presign-rules");
    let signers = [0usize, 1];
    let path = DerivationPath::new([5]).unwrap();
    let other_path = DerivationPath::new([6]).unwrap();
    let derived = shares[0].derived_public_key(&path).unwrap();
    let to_sign = message("derived, from a presignature");

    let mut presignatures = presign(&shares, &signers, Some(&path), "refill at m/5");
    let (node_b, b) = presignatures.pop().unwrap();
    let (_, a) = presignatures.pop().unwrap();
    assert_eq!((a.path(), a.public_key()), (&path, &derived));
    assert_eq!(
        a.check(&ToSign::Digest([1; 32]), Some(&path)),
        Err(PresignRefusal::PrehashedDigest)
    );
    assert!(matches!(
        a.check(&to_sign, None),
        Err(PresignRefusal::PathMismatch { .. })
    ));
    assert!(matches!(
        a.check(&to_sign, Some(&other_path)),
        Err(PresignRefusal::PathMismatch { .. })
    ));
    assert_eq!(a.check(&to_sign, Some(&path)), Ok(()));

    let mut pool = PresignaturePool::new(1);
    let key = b.pool_key();
    let (id_a, id_b) = (
        SessionId::from_bytes([1; 32]),
        SessionId::from_bytes([2; 32]),
    );
    assert_eq!(pool.put(id_a, a), 0);
    // A full pool destroys its oldest to make room.
    assert_eq!(pool.put(id_b, b), 1);
    assert_eq!(pool.available(&key), 1);
    assert_eq!(pool.oldest(&key), Some(id_b));
    assert!(pool.take(&key, &id_a).is_none());

    let b = pool.take(&key, &id_b).unwrap();
    let refused = Ecdsa::sign_presigned(b"r", b, &node_b, &ToSign::Digest([1; 32]), Some(&path));
    assert!(matches!(
        refused,
        Err(SessionError::Config(mpc::ConfigError::Presign(
            PresignRefusal::PrehashedDigest
        )))
    ));

    // At the path they were made for, a fresh pair signs for the derived key; a started session
    // cannot issue its partial signature a second time.
    let mut sessions: Vec<_> = presign(&shares, &signers, Some(&path), "refill at m/5 again")
        .into_iter()
        .map(|(node, presignature)| {
            let session =
                Ecdsa::sign_presigned(b"derived", presignature, &node, &to_sign, Some(&path))
                    .unwrap();
            (node, session)
        })
        .collect();
    let (node1, mut session1) = sessions.pop().unwrap();
    let (node0, mut session0) = sessions.pop().unwrap();
    let out0 = session0.start().unwrap();
    assert_eq!(out0.len(), 1);
    assert!(matches!(
        session0.start(),
        Err(SessionError::AlreadyStarted)
    ));
    let out1 = session1.start().unwrap();
    assert!(session0.handle(&node1, &out1[0]).unwrap().is_empty());
    assert!(session1.handle(&node0, &out0[0]).unwrap().is_empty());
    let signature = session0.take_output().unwrap();
    assert_eq!(session1.take_output(), Some(signature));
    check_with_k256(
        &signature,
        &derived.to_sec1_compressed(),
        &to_sign.prehash(),
    );
    assert!(matches!(
        session0.handle(&node1, &out1[0]),
        Err(SessionError::Closed)
    ));
}
