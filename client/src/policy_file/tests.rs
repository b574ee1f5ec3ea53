#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
use super::*;

const BODY: &[u8] = br#"{"version": 3, "effective_after_secs": 0, "allowlist_delay_secs": 0, "allowlist": [], "rules": []}"#;

fn keys(n: usize) -> Vec<OperatorKey> {
    (0..n).map(|_| OperatorKey::generate().unwrap()).collect()
}

fn operators(keys: &[OperatorKey]) -> Vec<manifest::Operator> {
    keys.iter()
        .enumerate()
        .map(|(i, k)| manifest::Operator::new(&format!("operator-{i}"), k.public_key()).unwrap())
        .collect()
}

fn approve(keys: &[OperatorKey], who: &[usize], body: &[u8]) -> Vec<OperatorSignature> {
    who.iter()
        .map(|&i| OperatorSignature {
            operator: format!("operator-{i}"),
            signature: sign_policy(body, &keys[i]).unwrap(),
        })
        .collect()
}

/// Approvals signed one by one and assembled give the envelope back, which K of the
/// operators approve and fewer do not.
#[test]
fn approvals_assemble_into_an_envelope_that_k_operators_approve() {
    let keys = keys(3);
    let ops = operators(&keys);
    let envelope = assemble_policy(BODY, &approve(&keys, &[0, 2], BODY)).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&envelope).unwrap();
    assert_eq!(json["signatures"][1]["operator"], "operator-2");
    assert!(json["policy"].is_string());

    let parsed = parse_envelope(&envelope).unwrap();
    assert_eq!(parsed.body, BODY);
    assert_eq!(parsed.version, 3);
    assert_eq!(
        verify_policy(&parsed, &ops, 2).unwrap(),
        ["operator-0", "operator-2"]
    );
    assert!(matches!(
        verify_policy(&parsed, &ops, 3),
        Err(PolicyFileError::Approval(
            manifest::ManifestError::NotEnoughSignatures {
                found: 2,
                needed: 3
            }
        ))
    ));
}

/// A signature of the same bytes under another context (a manifest approval) is not a
/// policy approval, nor the other way round; a signature by another key is refused,
/// named; one of another body is refused.
#[test]
fn a_signature_under_another_context_or_of_another_body_fails() {
    let keys = keys(2);
    let ops = operators(&keys);
    let as_manifest = OperatorSignature {
        operator: "operator-0".into(),
        signature: manifest::sign(BODY, &keys[0]),
    };
    let envelope = assemble_policy(BODY, &[as_manifest]).unwrap();
    let err = verify_policy(&parse_envelope(&envelope).unwrap(), &ops, 1).unwrap_err();
    assert!(
        matches!(&err, PolicyFileError::Approval(manifest::ManifestError::BadSignature { operator }) if operator == "operator-0"),
        "{err}"
    );
    // The policy approval does not verify as a manifest approval of the same bytes.
    let policy = sign_policy(BODY, &keys[0]).unwrap();
    let manifest_message = manifest::signed_message(BODY);
    let policy_message = manifest::signed_message_in(POLICY_CONTEXT, BODY);
    assert_ne!(manifest_message, policy_message);
    let as_policy = [OperatorSignature {
        operator: "operator-0".into(),
        signature: policy,
    }];
    assert!(
        manifest::verify_approvals(manifest::SIGNING_CONTEXT, BODY, &as_policy, &ops, 1).is_err()
    );
    // Another operator's key under this operator's name.
    let forged = [OperatorSignature {
        operator: "operator-1".into(),
        signature: policy,
    }];
    let envelope = assemble_policy(BODY, &forged).unwrap();
    assert!(verify_policy(&parse_envelope(&envelope).unwrap(), &ops, 1).is_err());
    // An approval of another body.
    let other = br#"{"version": 4, "effective_after_secs": 0, "allowlist_delay_secs": 0, "allowlist": [], "rules": []}"#;
    let envelope = assemble_policy(BODY, &approve(&keys, &[0], other)).unwrap();
    assert!(verify_policy(&parse_envelope(&envelope).unwrap(), &ops, 1).is_err());
}

/// Bodies that are not JSON with a version, bodies at and over the limit, envelopes that
/// are not one, and too many signatures are refused before anything is signed or sent.
#[test]
fn limits_and_forms_are_checked_first() {
    let keys = keys(1);
    for bad in [&b"not json"[..], b"{}", br#"{"version": "1"}"#, b"[1]"] {
        assert!(
            matches!(sign_policy(bad, &keys[0]), Err(PolicyFileError::Body(_))),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    // A body of exactly the limit is signed; one byte more is refused.
    // Padded with whitespace, which JSON allows anywhere between tokens.
    let head = &BODY[..BODY.len() - 1];
    let tail = b"}";
    let mut at_max = head.to_vec();
    at_max.resize(MAX_POLICY_BODY_LEN - tail.len(), b' ');
    at_max.extend_from_slice(tail);
    assert_eq!(at_max.len(), MAX_POLICY_BODY_LEN);
    sign_policy(&at_max, &keys[0]).unwrap();
    let mut over = head.to_vec();
    over.resize(MAX_POLICY_BODY_LEN + 1 - tail.len(), b' ');
    over.extend_from_slice(tail);
    assert!(matches!(
        sign_policy(&over, &keys[0]),
        Err(PolicyFileError::TooLarge { len, .. }) if len == MAX_POLICY_BODY_LEN + 1
    ));
    // The largest body still fits an envelope with every operator's signature.
    let one = approve(&keys, &[0], &at_max).remove(0);
    let all: Vec<OperatorSignature> = (0..MAX_SIGNATURES)
        .map(|i| OperatorSignature {
            operator: format!("operator-{i}"),
            signature: one.signature,
        })
        .collect();
    let envelope = assemble_policy(&at_max, &all).unwrap();
    assert_eq!(
        parse_envelope(&envelope).unwrap().signatures.len(),
        MAX_SIGNATURES
    );
    let mut too_many = all.clone();
    too_many.push(one.clone());
    assert!(matches!(
        assemble_policy(BODY, &too_many),
        Err(PolicyFileError::TooManySignatures { count }) if count == MAX_SIGNATURES + 1
    ));
    assert!(matches!(
        assemble_policy(BODY, &[]),
        Err(PolicyFileError::NoSignatures)
    ));
    // Envelopes: too large (checked before parsing), unknown fields, bad signatures.
    let huge = vec![b' '; MAX_POLICY_ENVELOPE_LEN + 1];
    assert!(matches!(
        parse_envelope(&huge),
        Err(PolicyFileError::Envelope(
            policy::PolicyError::EnvelopeTooLarge { .. }
        ))
    ));
    let envelope = assemble_policy(BODY, &[one]).unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(&envelope).unwrap();
    json["manifest"] = json["policy"].clone();
    assert!(matches!(
        parse_envelope(&serde_json::to_vec(&json).unwrap()),
        Err(PolicyFileError::Envelope(_))
    ));
    let mut json: serde_json::Value = serde_json::from_slice(&envelope).unwrap();
    json["signatures"][0]["signature"] = "00".into();
    assert!(matches!(
        parse_envelope(&serde_json::to_vec(&json).unwrap()),
        Err(PolicyFileError::Envelope(_))
    ));
}
