//! Tests of the audit log: what the node writes and reads back (`log`), and what an
//! auditor accepts and refuses (`export`).

use crate::*;
use ids::{KeyId, NodeId, OperatorId};

mod export;
mod log;

pub(crate) fn node(id: &str) -> NodeId {
    NodeId::new(id).unwrap()
}

/// The `i`-th event of a log that cycles through every kind.
pub(crate) fn event(i: u64) -> Event {
    let request_id = [u8::try_from(i % 251).unwrap(); 32];
    match i % 8 {
        0 => Event::Request {
            request_id,
            key_id: KeyId::new("treasury").unwrap(),
            requester: OperatorId::new("operator-0").unwrap(),
            summary: Summary {
                chain: "ethereum:1".to_owned(),
                to: Some("0x00000000000000000000000000000000000000aa".to_owned()),
                amount: Some(format!("{}", 1_000_000 + i)),
            },
        },
        1 => Event::Approval {
            request_id,
            operator: OperatorId::new("operator-1").unwrap(),
        },
        2 => Event::Decision {
            request_id,
            outcome: Outcome::Signed,
            rule: Some("small transfers".to_owned()),
            policy_version: Some(3),
            reason: None,
        },
        3 => Event::Signature {
            request_id,
            digest: [7; 32],
            signature: vec![9; 65],
            signers: vec![node("node-1"), node("node-2")],
        },
        4 => Event::PolicyChange {
            version: i,
            policy_hash: [3; 32],
            effective_at_secs: 1_700_000_000,
        },
        5 => Event::ManifestChange {
            version: i,
            hash: [4; 32],
        },
        6 => Event::KeyCreated {
            key_id: KeyId::new("treasury").unwrap(),
            public_key: vec![2; 33],
            parties: vec![node("node-1"), node("node-2"), node("node-3")],
            threshold: 2,
        },
        _ => Event::Boot {
            manifest_version: Some(1),
            manifest_hash: Some([5; 32]),
        },
    }
}

/// A log of node-1 with `n` entries, recorded a second apart.
pub(crate) fn log_of(n: u64, key: AuditKey) -> AuditLog {
    let mut log = AuditLog::new(node("node-1"), key);
    for i in 0..n {
        log.append(event(i), 1_700_000_000_000 + i * 1000).unwrap();
    }
    log
}

pub(crate) fn same_key(key: &AuditKey) -> AuditKey {
    AuditKey::from_pkcs8(&key.to_pkcs8().unwrap()).unwrap()
}
