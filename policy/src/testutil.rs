//! Shared test fixtures: a policy, addresses, operator keys and a manifest listing them.

use crate::{Policy, PolicyError};
use manifest::{Manifest, OperatorKey};
use serde_json::{Value, json};

pub const EXCHANGE: &str = "0x1111111111111111111111111111111111111111";
pub const COLD: &str = "0x2222222222222222222222222222222222222222";
pub const STRANGER: &str = "0x3333333333333333333333333333333333333333";
pub const TOKEN: &str = "0x4444444444444444444444444444444444444444";
pub const DAY: u64 = 86_400;

/// A policy with an allowlist of two ethereum addresses, one bitcoin address and a rule
/// of each kind.
pub fn base() -> Value {
    json!({
        "version": 1,
        "effective_after_secs": DAY,
        "allowlist_delay_secs": DAY,
        "allowlist": [
            {"name": "exchange", "chain": "ethereum:1", "address": EXCHANGE},
            {"name": "cold", "chain": "ethereum:1", "address": COLD},
            {"name": "btc-cold", "chain": "bitcoin:mainnet", "address": "BC1QCOLD"},
        ],
        "rules": [
            {
                "name": "small transfers",
                "keys": ["treasury"],
                "chain": "ethereum:1",
                "asset": "native",
                "to": ["exchange"],
                "max_amount": "500",
                "velocity": {"window_secs": DAY, "max_amount": "2000"},
                "hours_utc": [8, 20],
                "days": ["mon", "tue", "wed", "thu", "fri"],
                "signers_include": ["node-3"],
                "approvals": 1,
                "approvers": ["operator-0", "operator-1", "operator-2"],
                "action": "allow"
            },
            {"name": "no digests", "chain": "digest", "action": "deny"}
        ]
    })
}

pub fn bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

pub fn parse(value: &Value) -> Result<Policy, PolicyError> {
    Policy::parse(&bytes(value))
}

/// Named operator keys and a 2-of-n manifest listing them.
pub struct Ops(pub Vec<(String, OperatorKey)>);

impl Ops {
    pub fn new(n: usize) -> Self {
        Ops((0..n)
            .map(|i| (format!("operator-{i}"), OperatorKey::generate().unwrap()))
            .collect())
    }

    pub fn key(&self, name: &str) -> &OperatorKey {
        &self.0.iter().find(|(n, _)| n == name).unwrap().1
    }

    pub fn manifest(&self, threshold: usize) -> Manifest {
        let pcr = |b: &str| b.repeat(96);
        let operators: Vec<Value> = self
            .0
            .iter()
            .map(|(id, key)| json!({"id": id, "public_key": key.public_key_hex()}))
            .collect();
        let body = json!({
            "version": 1,
            "threshold": threshold,
            "operators": operators,
            "nodes": [{"id": "node-1", "provider": "sim", "address": "127.0.0.1:7101",
                       "measurements": [{"0": pcr("a"), "1": pcr("b"), "2": pcr("c"), "4": pcr("d")}]}],
        });
        Manifest::parse(&bytes(&body)).unwrap()
    }
}
