//! The custodian's policy, enforced by every node that signs, on whole nodes in one
//! process ([`support::Cluster`]) on a paused clock: spending limits that hold across
//! every signing set of a key, approvals that complete a request, and signed transactions
//! that spend from the key's own address.
#![cfg(feature = "sim")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[allow(dead_code)] // the harness serves several test crates
mod support;

use enclave::operator_api::{
    Answer, KeyCommand, NodeStatus, OperatorRequest, RequestAnswer, RequestStatus,
};
use enclave::sealed::BlobStore;
use protocol::authority::{Action, Authority, Payload};
use std::time::Duration;
use support::Cluster;

const SETTLE: Duration = Duration::from_secs(120);
const EXCHANGE: &str = "0xabababababababababababababababababababab";
const ETHER: u128 = 1_000_000_000_000_000_000;
/// The most gas a test payment may pay (21 000 gas at 30 gwei), which its amount counts.
const GAS: u128 = 21_000 * 30_000_000_000;

fn running(status: &NodeStatus) -> bool {
    status.phase == "running"
        && status.escrow_pending.is_empty()
        && status.peers.values().all(|p| p.attested)
        && status.peers.len() == 2
}

/// Three running nodes, each with the simulator's safe primes.
async fn three_with_primes() -> Cluster {
    let mut c = Cluster::new(3).await;
    let fixture = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../mpc/fixtures/primes.json"
    ))
    .unwrap();
    for id in ["node-1", "node-2", "node-3"] {
        c.start_with(id, mpc::sim::load_primes(&fixture).unwrap());
    }
    c.wait_until("every node runs", SETTLE, |_, s| running(s))
        .await;
    c
}

/// RLP of an unsigned EIP-1559 transaction on chain 1 paying `value` wei to `to`: test
/// data only (the node parses it with the Ethereum ecosystem's own crates).
fn eip1559(nonce: u64, to: &str, value: u128) -> Vec<u8> {
    fn int(n: u128) -> Vec<u8> {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        string(&bytes)
    }
    fn string(bytes: &[u8]) -> Vec<u8> {
        match bytes {
            [b] if *b < 0x80 => vec![*b],
            _ => [
                vec![0x80 + u8::try_from(bytes.len()).unwrap()],
                bytes.to_vec(),
            ]
            .concat(),
        }
    }
    let to = hex::decode(to.trim_start_matches("0x")).unwrap();
    let fields = [
        int(1),
        int(u128::from(nonce)),
        int(1_000_000_000),
        int(30_000_000_000),
        int(21_000),
        string(&to),
        int(value),
        string(&[]),
        vec![0xc0],
    ]
    .concat();
    assert!(fields.len() < 56);
    [
        vec![0x02, 0xc0 + u8::try_from(fields.len()).unwrap()],
        fields,
    ]
    .concat()
}

fn answer(answer: Answer) -> RequestAnswer {
    match answer {
        Answer::Json(json) => serde_json::from_str(&json).unwrap(),
        other => panic!("{other:?}"),
    }
}

async fn submit(c: &Cluster, node: &str, authority: Authority) -> RequestAnswer {
    let command = KeyCommand::Submit { authority };
    answer(
        c.ask(node, |exporter| c.operators.command(exporter, &command))
            .await
            .unwrap(),
    )
}

async fn approve(c: &Cluster, node: &str, operator: usize, id: &str) -> RequestAnswer {
    let mut request = [0u8; 32];
    hex::decode_to_slice(id, &mut request).unwrap();
    let command = KeyCommand::Approve {
        request_id: id.to_owned(),
        approval: c.operators.approval(operator, &request),
    };
    answer(
        c.ask(node, |exporter| {
            c.operators.command_as(operator, exporter, &command)
        })
        .await
        .unwrap(),
    )
}

/// A 2-of-3 key `treasury`, created through node-1 with two operators' approvals; its
/// Ethereum address.
async fn treasury(c: &Cluster) -> String {
    let create = c.operators.request(
        &c.manifest,
        "treasury",
        Action::CreateKey {
            threshold: 2,
            parties: Vec::new(),
            renew_aux: false,
        },
        c.unix_ms(),
        2,
    );
    let created = submit(c, "node-1", create).await;
    assert_eq!(created.status, RequestStatus::Created, "{created:?}");
    created.key.unwrap().eth_address
}

async fn install_policy(c: &Cluster, body: &serde_json::Value) {
    let envelope = c.operators.policy(&serde_json::to_vec(body).unwrap());
    for id in ["node-1", "node-2", "node-3"] {
        let accepted = c
            .ask(id, |_| OperatorRequest::SubmitPolicy(envelope.clone()))
            .await
            .unwrap();
        assert!(
            matches!(&accepted, Answer::Json(j) if j.contains("accepted_version")),
            "{id}: {accepted:?}"
        );
    }
}

fn pay(c: &Cluster, nonce: u64, value: u128, signers: &[&str], approvals: usize) -> Authority {
    c.operators.request(
        &c.manifest,
        "treasury",
        Action::Sign {
            path: None,
            payload: Payload::EthTx(hex::encode(eip1559(nonce, EXCHANGE, value))),
            signers: signers.iter().map(|s| s.to_string()).collect(),
        },
        c.unix_ms(),
        approvals,
    )
}

/// Checks a signed transaction independently: the sender recovered from it is the key's.
fn spends_from(answer: &RequestAnswer, address: &str) {
    let raw = hex::decode(answer.signed_tx.as_ref().unwrap()).unwrap();
    let sender = chains::eth::recover_sender(&raw).unwrap();
    assert!(
        sender.eq_ignore_ascii_case(address),
        "{sender} is not {address}"
    );
}

/// With 2-of-3, the signing sets {1,2}, {1,3} and {2,3} are each seen by two nodes only.
/// Every spend is recorded at every party of the key before any share, so the velocity
/// limit (2 ether a day under the one-approval rule) holds across all three: the third
/// payment falls through to the rule that needs two operators, and is signed once the
/// second approves.
#[tokio::test(start_paused = true)]
async fn a_velocity_limit_holds_across_every_signing_set() {
    let c = three_with_primes().await;
    let address = treasury(&c).await;
    install_policy(
        &c,
        &serde_json::json!({
            "version": 1,
            "effective_after_secs": 0,
            "allowlist_delay_secs": 0,
            "allowlist": [{"name": "exchange", "chain": "ethereum:1", "address": EXCHANGE}],
            "rules": [
                {"name": "small", "keys": ["treasury"], "chain": "ethereum:1", "asset": "native",
                 "to": ["exchange"], "max_amount": ETHER.to_string(),
                 "velocity": {"window_secs": 86400, "max_amount": (2 * ETHER).to_string()},
                 "approvals": 1, "action": "allow"},
                {"name": "large", "chain": "ethereum:1", "to": ["exchange"],
                 "approvals": 2, "action": "allow"}
            ]
        }),
    )
    .await;
    let mut paid = Vec::new();
    for (nonce, (node, signers)) in [
        ("node-1", ["node-1", "node-2"]),
        ("node-3", ["node-1", "node-3"]),
    ]
    .into_iter()
    .enumerate()
    {
        // Exactly one ether counted, gas included.
        let authority = pay(&c, nonce as u64, ETHER - GAS, &signers, 1);
        paid.push(authority.clone());
        let signed = submit(&c, node, authority).await;
        assert_eq!(signed.status, RequestStatus::Signed, "{signed:?}");
        assert_eq!(signed.rule.as_deref(), Some("small"));
        assert_eq!(signed.signature.as_ref().unwrap().signers, signers);
        spends_from(&signed, &address);
    }
    // Neither node-2 nor node-3 signed both payments, yet each recorded both.
    let third = submit(
        &c,
        "node-2",
        pay(&c, 2, ETHER - GAS, &["node-2", "node-3"], 1),
    )
    .await;
    assert_eq!(third.status, RequestStatus::Pending, "{third:?}");
    assert_eq!(third.rule.as_deref(), Some("large"));
    assert_eq!(
        (third.approvals, third.approvals_needed),
        (Some(1), Some(2))
    );
    let signed = approve(&c, "node-2", 1, &third.request_id).await;
    assert_eq!(signed.status, RequestStatus::Signed, "{signed:?}");
    assert_eq!(signed.rule.as_deref(), Some("large"));
    spends_from(&signed, &address);
    // A request is carried out once: approving it again changes nothing.
    let again = c
        .ask("node-2", |exporter| {
            let mut id = [0u8; 32];
            hex::decode_to_slice(&third.request_id, &mut id).unwrap();
            c.operators.command_as(
                2,
                exporter,
                &KeyCommand::Approve {
                    request_id: third.request_id.clone(),
                    approval: c.operators.approval(2, &id),
                },
            )
        })
        .await
        .unwrap();
    assert!(
        matches!(&again, Answer::Refused(r) if r.contains("takes no more approvals")),
        "{again:?}"
    );

    // A signed request replayed: at the node that holds it, the answer it had; through
    // another node, the signers that signed it refuse it.
    let replayed = submit(&c, "node-1", paid[0].clone()).await;
    assert_eq!(replayed.status, RequestStatus::Signed);
    // With a second approval, so that the policy allows it again (the limit is used up).
    let mut replay = paid[0].clone();
    replay.add(c.operators.approval(1, &replay.id())).unwrap();
    let command = KeyCommand::Submit { authority: replay };
    let through = c
        .ask("node-2", |exporter| c.operators.command(exporter, &command))
        .await
        .unwrap();
    let Answer::Failed(failure) = &through else {
        panic!("{through:?}")
    };
    assert!(
        failure
            .failures
            .iter()
            .any(|f| f.reason.contains("a replay")),
        "{failure:?}"
    );

    // Raw digests: refused by default, and no rule of this policy takes them.
    let digest = c.operators.request(
        &c.manifest,
        "treasury",
        Action::Sign {
            path: None,
            payload: Payload::Digest("11".repeat(32)),
            signers: Vec::new(),
        },
        c.unix_ms(),
        3,
    );
    let refused = submit(&c, "node-1", digest).await;
    assert_eq!(refused.status, RequestStatus::Refused, "{refused:?}");
    assert_eq!(refused.rule, None);

    // A payment that needs two operators, not approved within its hour: expired.
    let late = submit(&c, "node-1", pay(&c, 9, 5 * ETHER, &[], 1)).await;
    assert_eq!(late.status, RequestStatus::Pending, "{late:?}");
    tokio::time::advance(Duration::from_secs(3601)).await;
    let mut id = [0u8; 32];
    hex::decode_to_slice(&late.request_id, &mut id).unwrap();
    let command = KeyCommand::Approve {
        request_id: late.request_id.clone(),
        approval: c.operators.approval(1, &id),
    };
    let expired = c
        .ask("node-1", |exporter| {
            c.operators.command_as(1, exporter, &command)
        })
        .await
        .unwrap();
    assert!(
        matches!(&expired, Answer::Refused(r) if r.contains("expired")),
        "{expired:?}"
    );

    // Office hours, by the nodes' clock: a digest rule for 08:00-20:00 UTC. Outside it,
    // refused; once the clock reaches it, signed.
    install_policy(
        &c,
        &serde_json::json!({
            "version": 2,
            "effective_after_secs": 0,
            "allowlist_delay_secs": 0,
            "allowlist": [],
            "rules": [{"name": "office hours", "chain": "digest", "hours_utc": [8, 20],
                       "approvals": 1, "action": "allow"}]
        }),
    )
    .await;
    let hour = (c.unix_ms() / 1000 / 3600) % 24;
    let digest = |c: &Cluster| {
        c.operators.request(
            &c.manifest,
            "treasury",
            Action::Sign {
                path: None,
                payload: Payload::Digest("22".repeat(32)),
                signers: Vec::new(),
            },
            c.unix_ms(),
            1,
        )
    };
    if !(8..20).contains(&hour) {
        let night = submit(&c, "node-1", digest(&c)).await;
        assert_eq!(night.status, RequestStatus::Refused, "{night:?}");
        let until_eight = ((8 + 24 - hour) % 24) * 3600;
        tokio::time::advance(Duration::from_secs(until_eight)).await;
        c.wait_until("every node runs", SETTLE, |_, s| running(s))
            .await;
    }
    let day = submit(&c, "node-1", digest(&c)).await;
    assert_eq!(day.status, RequestStatus::Signed, "{day:?}");
    assert_eq!(day.rule.as_deref(), Some("office hours"));
}

/// The parent replays the sealed policy a node held before the last one it accepted:
/// the node refuses to run on it, and says why.
#[tokio::test(start_paused = true)]
async fn a_parent_cannot_roll_a_nodes_policy_back() {
    let mut c = three_with_primes().await;
    let policy = |version: u64| {
        serde_json::json!({
            "version": version,
            "effective_after_secs": 0,
            "allowlist_delay_secs": 0,
            "allowlist": [],
            "rules": [{"name": "none", "chain": "digest", "approvals": 1, "action": "deny"}]
        })
    };
    install_policy(&c, &policy(1)).await;
    let blobs = c.blobs("node-1");
    let old = blobs.get("policy").await.unwrap().unwrap();
    install_policy(&c, &policy(2)).await;
    assert_eq!(c.status("node-1").policy_version, Some(2));
    // An older approved policy submitted again is refused too.
    let envelope = c.operators.policy(&serde_json::to_vec(&policy(1)).unwrap());
    let again = c
        .ask("node-2", |_| {
            OperatorRequest::SubmitPolicy(envelope.clone())
        })
        .await
        .unwrap();
    assert!(
        matches!(&again, Answer::Refused(r) if r.contains("version")),
        "{again:?}"
    );
    c.stop("node-1").await;
    blobs.put("policy", old).await.unwrap();
    let fixture = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../mpc/fixtures/primes.json"
    ))
    .unwrap();
    c.start_with("node-1", mpc::sim::load_primes(&fixture).unwrap());
    c.wait_until("node-1 refuses its rolled-back state", SETTLE, |id, s| {
        id != "node-1" || s.phase == "failed"
    })
    .await;
    let status = c.status("node-1");
    assert!(
        status
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("policy")),
        "{status:?}"
    );
}
