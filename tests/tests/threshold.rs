//! Threshold ECDSA through the whole stack: real `enclave` and `parent` processes, attested
//! channels, sealed key shares. Every signature is checked here with `k256` and by recovering
//! the signer's Ethereum address, independently of the nodes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use integration_tests::cluster::{Cluster, STARTUP, all, policy_body, running_and_attested};
use integration_tests::eth;
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use serde_json::{Value, json};
use sha2::Digest as _;
use std::time::{Duration, Instant};

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// Lower-case Ethereum address of a key, computed here.
fn eth_address(key: &VerifyingKey) -> String {
    let point = key.to_encoded_point(false);
    let hash = sha3::Keccak256::digest(&point.as_bytes()[1..]);
    format!("0x{}", hex::encode(&hash[12..]))
}

/// Checks `answer` (a sign answer) against `public_key` (compressed SEC1 hex): the signature
/// verifies, `s` is low, and the recovery id gives back the key and so its address.
fn check_signature(answer: &Value, public_key: &str, expected_digest: &[u8; 32]) {
    assert_eq!(text(answer, "public_key"), public_key, "{answer}");
    assert_eq!(unhex(text(answer, "digest")), expected_digest, "{answer}");
    let key = VerifyingKey::from_sec1_bytes(&unhex(public_key)).unwrap();
    let r: [u8; 32] = unhex(text(answer, "r")).try_into().unwrap();
    let s: [u8; 32] = unhex(text(answer, "s")).try_into().unwrap();
    let signature = Signature::from_scalars(r, s).unwrap();
    assert!(signature.normalize_s().is_none(), "high s: {answer}");
    use k256::ecdsa::signature::hazmat::PrehashVerifier;
    key.verify_prehash(expected_digest, &signature)
        .unwrap_or_else(|e| panic!("signature does not verify: {e}: {answer}"));
    let v = u8::try_from(answer["v"].as_u64().unwrap()).unwrap();
    let recovered = VerifyingKey::recover_from_prehash(
        expected_digest,
        &signature,
        RecoveryId::from_byte(v).unwrap(),
    )
    .unwrap();
    assert_eq!(eth_address(&recovered), eth_address(&key));
}

fn digest(label: &str) -> [u8; 32] {
    sha2::Sha256::digest(label.as_bytes()).into()
}

/// Chooses signing sets the way a custodian does: with the policy. The coordinator signs
/// with itself and the rule's mandatory signers, so each set is one policy version that
/// names the set's other members; a version takes effect at once (no delay).
struct Signing {
    version: u64,
    mandatory: Option<Vec<String>>,
}

impl Signing {
    fn new() -> Self {
        Signing {
            version: 0,
            mandatory: None,
        }
    }

    /// Puts in force, when it is not already, a policy that lets one operator sign any
    /// digest or any ether transfer with `mandatory` among the signers.
    fn require(&mut self, c: &Cluster, mandatory: &[&str]) {
        let mandatory: Vec<String> = mandatory.iter().map(|s| s.to_string()).collect();
        if self.mandatory.as_ref() == Some(&mandatory) {
            return;
        }
        self.version += 1;
        let rule = |name: &str, chain: &str| {
            let mut rule = json!({"name": name, "chain": chain, "approvals": 1, "action": "allow"});
            if !mandatory.is_empty() {
                rule["signers_include"] = json!(mandatory);
            }
            rule
        };
        let rules = json!([rule("digests", "digest"), rule("ether", "ethereum:1")]);
        c.submit_policy(&policy_body(self.version, rules))
            .unwrap_or_else(|e| panic!("policy version {}: {e}", self.version));
        self.mandatory = Some(mandatory);
    }

    /// Makes `signers` (the coordinator among them) the set `coordinator` signs with.
    fn choose(&mut self, c: &Cluster, coordinator: &str, signers: &[&str]) {
        assert!(
            signers.contains(&coordinator),
            "{coordinator} not in {signers:?}"
        );
        let others: Vec<&str> = signers
            .iter()
            .copied()
            .filter(|s| *s != coordinator)
            .collect();
        self.require(c, &others);
    }
}

/// Checks that `answer` was signed by exactly `signers`.
fn check_signers(answer: &Value, signers: &[&str]) {
    let mut got: Vec<&str> = answer["signers"]
        .as_array()
        .unwrap_or_else(|| panic!("no signers in {answer}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    got.sort_unstable();
    let mut expected = signers.to_vec();
    expected.sort_unstable();
    assert_eq!(got, expected, "{answer}");
}

fn sign_ok(
    c: &Cluster,
    signing: &mut Signing,
    coordinator: &str,
    key: &str,
    d: [u8; 32],
    path: Option<&str>,
    signers: &[&str],
) -> Value {
    signing.choose(c, coordinator, signers);
    let answer = c
        .sign_with(coordinator, key, d, path)
        .unwrap()
        .unwrap_or_else(|e| {
            panic!(
                "signing at {coordinator} by {signers:?} refused: {e}\n{}",
                c.logs()
            )
        });
    check_signers(&answer, signers);
    answer
}

fn create_ok(c: &Cluster, coordinator: &str, key: &str, t: u16) -> Value {
    let started = Instant::now();
    let created = c
        .create_key(coordinator, key, t, &[])
        .unwrap()
        .unwrap_or_else(|e| panic!("key creation refused: {e}\n{}", c.logs()));
    eprintln!("key {key} created in {:?}: {created}", started.elapsed());
    let public = text(&created, "public_key");
    assert_eq!(public.len(), 66);
    let key = VerifyingKey::from_sec1_bytes(&unhex(public)).unwrap();
    assert_eq!(
        text(&created, "eth_address").to_lowercase(),
        eth_address(&key)
    );
    assert!(text(&created, "btc_address").starts_with("bc1q"));
    created
}

/// Every `t`-subset of `ids`, in order.
fn subsets<'a>(ids: &[&'a str], t: usize) -> Vec<Vec<&'a str>> {
    if t == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for (i, first) in ids.iter().enumerate() {
        for mut rest in subsets(&ids[i + 1..], t - 1) {
            rest.insert(0, first);
            out.push(rest);
        }
    }
    out
}

#[test]
fn two_of_three_signs_with_every_set_at_derived_paths_across_restarts_and_aborts() {
    let (mut c, _) =
        Cluster::running_with(3, &["--presign-depth", "1", "--round-timeout-secs", "40"]).unwrap();
    let created = create_ok(&c, "node-1", "treasury", 2);
    let public = text(&created, "public_key").to_owned();
    let address = text(&created, "eth_address").to_owned();

    // Every node holds a share of it.
    c.wait_until("every node lists the key", STARTUP, |s| {
        all(s, |s| {
            s.keys.len() == 1
                && s.keys.iter().all(|k| {
                    k.key_id == "treasury"
                        && k.public_key == public
                        && k.threshold == 2
                        && k.parties == ["node-1", "node-2", "node-3"]
                })
        })
    })
    .unwrap();

    // Until a policy is in force, nothing is signed.
    let refused = c
        .sign_with("node-1", "treasury", digest("too early"), None)
        .unwrap()
        .unwrap_err();
    assert!(refused.contains("no policy"), "{refused}");
    let mut signing = Signing::new();

    // Every signing set, each coordinated by its second member.
    for (i, signers) in subsets(&["node-1", "node-2", "node-3"], 2)
        .iter()
        .enumerate()
    {
        let d = digest(&format!("payment {i}"));
        let answer = sign_ok(&c, &mut signing, signers[1], "treasury", d, None, signers);
        check_signature(&answer, &public, &d);
        assert_eq!(
            answer["presigned"], false,
            "a digest is never signed from a presignature"
        );
    }

    // An Ethereum transaction is hashed with Keccak-256 by the nodes; once the pool has a
    // presignature for the signing set, it is used, and the signed transaction's sender is
    // the key's address.
    c.wait_until("a presignature ready at node-1", STARTUP, |s| {
        s.iter()
            .any(|(id, s)| id == "node-1" && s.as_ref().is_ok_and(|s| s.presignatures >= 1))
    })
    .unwrap();
    let tx = eth::transfer(0, 1_000_000_000_000_000_000);
    // node-1 fills the pool of {node-1, node-2} first (sets in order, first member coordinates).
    signing.choose(&c, "node-1", &["node-1", "node-2"]);
    let answer = c
        .sign_eth("node-1", "treasury", &tx, None)
        .unwrap()
        .unwrap_or_else(|e| panic!("transaction refused: {e}\n{}", c.logs()));
    check_signers(&answer, &["node-1", "node-2"]);
    assert_eq!(answer["presigned"], true, "{answer}");
    check_signature(&answer, &public, &eth::keccak(&tx));
    eth::check_signed_tx(&answer, &address).unwrap();

    // A derived path: the same derived key whichever set signs.
    let d = digest("derived");
    let a = sign_ok(
        &c,
        &mut signing,
        "node-1",
        "treasury",
        d,
        Some("m/0/1"),
        &["node-1", "node-2"],
    );
    let b = sign_ok(
        &c,
        &mut signing,
        "node-3",
        "treasury",
        d,
        Some("m/0/1"),
        &["node-2", "node-3"],
    );
    let derived = text(&a, "public_key").to_owned();
    assert_ne!(derived, public);
    check_signature(&a, &derived, &d);
    check_signature(&b, &derived, &d);
    let other = sign_ok(
        &c,
        &mut signing,
        "node-2",
        "treasury",
        d,
        Some("m/0/2"),
        &["node-1", "node-2"],
    );
    assert_ne!(text(&other, "public_key"), derived);
    check_signature(&other, text(&other, "public_key"), &d);

    // Requests the nodes must refuse, each with a reason.
    let refused = c
        .sign_with("node-1", "treasury", d, Some("m/1'"))
        .unwrap()
        .unwrap_err();
    assert!(refused.contains("hardened"), "{refused}");
    let unknown = c.sign_with("node-1", "nope", d, None).unwrap().unwrap_err();
    assert!(unknown.contains("not held"), "{unknown}");
    let again = c
        .create_key("node-2", "treasury", 2, &[])
        .unwrap()
        .unwrap_err();
    assert!(again.contains("already exists"), "{again}");

    // A node restarted after keygen recovers its share from sealed storage and signs.
    c.kill_enclave("node-2").unwrap();
    c.start_enclave("node-2").unwrap();
    c.wait_until("node-2 back with every peer attested", STARTUP, |s| {
        all(s, |s| running_and_attested(s, 2))
    })
    .unwrap();
    let d = digest("after restart");
    let answer = sign_ok(
        &c,
        &mut signing,
        "node-2",
        "treasury",
        d,
        None,
        &["node-2", "node-3"],
    );
    check_signature(&answer, &public, &d);

    // A signer killed in the middle of a session: the session aborts with a reason naming
    // it, and once it is back the next session succeeds.
    let log_count = |c: &Cluster| {
        c.enclave_log("node-3")
            .unwrap()
            .matches("session started")
            .count()
    };
    signing.choose(&c, "node-1", &["node-1", "node-3"]);
    let before = log_count(&c);
    let d = digest("interrupted");
    let outcome = std::thread::scope(|scope| {
        let signing = scope.spawn(|| c.sign_with("node-1", "treasury", d, None).unwrap());
        let deadline = Instant::now() + Duration::from_secs(60);
        while log_count(&c) == before {
            assert!(
                Instant::now() < deadline,
                "node-3 never started the session"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        c.kill_enclave_now("node-3").unwrap();
        signing.join().unwrap()
    });
    let error = outcome.expect_err("a session without one of its signers cannot succeed");
    assert!(error.contains("node-3"), "{error}");
    c.kill_enclave("node-3").unwrap();
    c.start_enclave("node-3").unwrap();
    c.wait_until("node-3 back with every peer attested", STARTUP, |s| {
        all(s, |s| running_and_attested(s, 2))
    })
    .unwrap();
    let d = digest("after the abort");
    let answer = sign_ok(
        &c,
        &mut signing,
        "node-1",
        "treasury",
        d,
        None,
        &["node-1", "node-3"],
    );
    check_signature(&answer, &public, &d);
}

#[test]
fn three_of_five_signs_with_every_signing_set() {
    let (c, _) = Cluster::running(5).unwrap();
    let created = create_ok(&c, "node-3", "cold", 3);
    let public = text(&created, "public_key").to_owned();
    let mut signing = Signing::new();
    let ids = ["node-1", "node-2", "node-3", "node-4", "node-5"];
    let sets = subsets(&ids, 3);
    assert_eq!(sets.len(), 10);
    for (i, signers) in sets.iter().enumerate() {
        let d = digest(&format!("cold payment {i}"));
        let coordinator = signers[i % 3];
        let started = Instant::now();
        let answer = sign_ok(&c, &mut signing, coordinator, "cold", d, None, signers);
        eprintln!("{signers:?} signed in {:?}", started.elapsed());
        check_signature(&answer, &public, &d);
    }
    let d = digest("cold derived");
    let answer = sign_ok(
        &c,
        &mut signing,
        "node-5",
        "cold",
        d,
        Some("m/7/8/9"),
        &["node-1", "node-4", "node-5"],
    );
    check_signature(&answer, text(&answer, "public_key"), &d);
    assert_ne!(text(&answer, "public_key"), public);
}
