//! A compromised coordinator, at process level. node-1 runs a test-only build of the
//! enclave (feature `insecure-coordinator`) that skips its own policy decision and starts
//! the signing sessions for requests its policy does not allow; node-2 and node-3 run the
//! regular build. Every participant gets the request and its approvals inside the session,
//! checks them against its own manifest and policy, and refuses: no signature comes out,
//! and the typed failure names each refusing participant with its policy's reason. The
//! same request at an honest node waits for its second approval.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use integration_tests::cluster::{Cluster, measurements_json, policy_body};
use integration_tests::insecure_coordinator_binary;
use protocol::authority::{Action, Approval, DEFAULT_TTL_MS, Payload};
use protocol::operator_api::{OperationFailure, RequestAnswer, RequestStatus};
use protocol::request::FailureKind;
use serde_json::json;

/// The only rule that allows anything: a digest with two operators' approvals. Before it,
/// a rule that denies every digest with key `frozen`.
fn policy() -> String {
    policy_body(
        1,
        json!([
            {"name": "frozen", "keys": ["frozen"], "chain": "digest", "action": "deny"},
            {"name": "two operators", "chain": "digest", "approvals": 2, "action": "allow"},
        ]),
    )
}

fn digest_request(label: u8) -> Action {
    Action::Sign {
        path: None,
        payload: Payload::Digest(hex::encode([label; 32])),
        signers: Vec::new(),
    }
}

/// Sends `authority` to node-1, whose coordinator starts the sessions anyway: the
/// participants' typed failure. Every participant but node-1 failed by refusing, with
/// `reason` in its reason, and at least one did.
fn refused_by_participants(
    c: &Cluster,
    authority: protocol::authority::Authority,
    reason: &[&str],
) -> OperationFailure {
    let answer = c.submit_typed("node-1", 0, authority).unwrap();
    assert!(
        answer.answer.is_err(),
        "signed or answered without the participants: {:?}\n{}",
        answer.answer,
        c.logs()
    );
    let failure = answer.failure.unwrap_or_else(|| {
        panic!(
            "no participant was asked (is node-1 the insecure build?): {:?}\n{}",
            answer.answer,
            c.logs()
        )
    });
    let honest: Vec<_> = failure
        .failures
        .iter()
        .filter(|f| f.node != "node-1")
        .collect();
    assert!(
        !honest.is_empty(),
        "no honest participant refused: {failure}"
    );
    for f in honest {
        assert_eq!(f.kind, FailureKind::Refused, "{failure}");
        for part in reason {
            assert!(f.reason.contains(part), "{}: {failure}", f.node);
        }
    }
    failure
}

#[test]
fn participants_refuse_what_a_coordinator_that_skips_its_check_asks() {
    let mut c = Cluster::new(3).unwrap();
    let insecure = insecure_coordinator_binary(c.dir.path()).unwrap();
    c.use_binary("node-1", insecure.clone()).unwrap();
    let node_1 = measurements_json(&insecure, "node-1").unwrap();
    let envelope = c
        .sign(&c.manifest_body(1, &[("node-1", node_1)]).unwrap(), 2)
        .unwrap();
    c.start_under(&envelope).unwrap();
    for key in ["vault", "frozen"] {
        c.create_key("node-2", key, 2, &[])
            .unwrap()
            .unwrap_or_else(|e| panic!("{key}: {e}\n{}", c.logs()));
    }
    c.submit_policy(&policy()).unwrap();

    // One approval where the policy needs two: node-1 starts the sessions anyway, and
    // its peers refuse, each naming the rule and the approvals missing.
    let one = c
        .request_as("node-1", 0, "vault", digest_request(1), DEFAULT_TTL_MS)
        .unwrap();
    let failure = refused_by_participants(&c, one, &["two operators", "1 of 2 approvals"]);
    eprintln!("one approval: {failure}");
    let log = c.enclave_log("node-1").unwrap();
    assert!(
        log.contains("insecure coordinator: its own decision ignored"),
        "node-1 did not skip its check"
    );
    for id in ["node-2", "node-3"] {
        if failure.failures.iter().any(|f| f.node == id) {
            let log = c.enclave_log(id).unwrap();
            assert!(
                log.contains("signature refused by this node's policy"),
                "{id}: {log}"
            );
        }
    }

    // A digest under the deny rule, even with every approval the allow rule wants.
    let mut denied = c
        .request_as("node-1", 0, "frozen", digest_request(2), DEFAULT_TTL_MS)
        .unwrap();
    let operator_1 = integration_tests::cluster::operator_id(1);
    denied
        .add(Approval::sign(&operator_1, &c.operators[1], &denied.id()))
        .unwrap();
    let failure = refused_by_participants(&c, denied, &["frozen", "deny rule"]);
    eprintln!("deny rule: {failure}");

    // The same kind of request at honest node-2 waits for a second approval, and the
    // second approval signs it: the policy is what refused above, not the cluster.
    let one = c
        .request_as("node-2", 0, "vault", digest_request(3), DEFAULT_TTL_MS)
        .unwrap();
    let pending: RequestAnswer = c.submit_as("node-2", 0, one).unwrap().unwrap();
    assert_eq!(pending.status, RequestStatus::Pending, "{pending:?}");
    assert_eq!(
        pending.rule.as_deref(),
        Some("two operators"),
        "{pending:?}"
    );
    assert_eq!(
        (pending.approvals, pending.approvals_needed),
        (Some(1), Some(2)),
        "{pending:?}"
    );
    let signed = c
        .approve_as("node-2", 1, &pending.request_id)
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}\n{}", c.logs()));
    assert_eq!(signed.status, RequestStatus::Signed, "{signed:?}");
    let signature = signed.signature.unwrap();
    assert_eq!(signature.digest, hex::encode([3u8; 32]));
    use k256::ecdsa::signature::hazmat::PrehashVerifier as _;
    let key =
        k256::ecdsa::VerifyingKey::from_sec1_bytes(&hex::decode(&signature.public_key).unwrap())
            .unwrap();
    let r: [u8; 32] = hex::decode(&signature.r).unwrap().try_into().unwrap();
    let s: [u8; 32] = hex::decode(&signature.s).unwrap().try_into().unwrap();
    key.verify_prehash(
        &[3u8; 32],
        &k256::ecdsa::Signature::from_scalars(r, s).unwrap(),
    )
    .unwrap();
}
