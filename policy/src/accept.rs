//! Acceptance: the only way a policy becomes something a node may hold and enforce.

use crate::document::Policy;
use crate::envelope::{SIGNING_CONTEXT, SignedPolicy};
use crate::error::PolicyError;

/// A policy that [`accept`] approved. Cannot be built any other way.
#[derive(Debug, Clone)]
pub struct AcceptedPolicy {
    signed: SignedPolicy,
    signers: Vec<String>,
}

impl AcceptedPolicy {
    pub fn policy(&self) -> &Policy {
        self.signed.policy()
    }

    pub fn version(&self) -> u64 {
        self.signed.policy().version()
    }

    pub fn signed(&self) -> &SignedPolicy {
        &self.signed
    }

    /// The distinct operators whose valid signatures approved it, in envelope order.
    pub fn signers(&self) -> &[String] {
        &self.signers
    }

    pub(crate) fn into_signed(self) -> SignedPolicy {
        self.signed
    }
}

/// Accepts `signed` under `manifest` when:
/// - at least the manifest's threshold of DISTINCT operators it lists signed
///   `SIGNING_CONTEXT || body` validly: a signature naming an operator the manifest does
///   not list is ignored, an operator signing twice counts once, and a listed operator's
///   signature that does not verify refuses the whole envelope (it is evidence of
///   tampering, named in the error);
/// - its version is strictly greater than `current_version`, the newest version the node
///   holds (active or pending), so a parent replaying an older approved policy cannot
///   roll the node back.
pub fn accept(
    manifest: &manifest::Manifest,
    current_version: Option<u64>,
    signed: SignedPolicy,
) -> Result<AcceptedPolicy, PolicyError> {
    let candidate = signed.policy().version();
    if let Some(current) = current_version
        && candidate <= current
    {
        return Err(PolicyError::VersionNotNewer { current, candidate });
    }
    let approval = manifest::verify_approvals(
        SIGNING_CONTEXT,
        signed.body(),
        signed.signatures(),
        manifest.operators(),
        manifest.threshold(),
    )?;
    Ok(AcceptedPolicy {
        signers: approval.signers().to_vec(),
        signed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Ops, base, bytes};
    use manifest::OperatorSignature;
    use serde_json::json;

    fn body(version: u64) -> Vec<u8> {
        let mut v = base();
        v["version"] = json!(version);
        bytes(&v)
    }

    fn signed(body: &[u8], ops: &Ops, signers: &[&str]) -> SignedPolicy {
        let sigs: Vec<_> = signers
            .iter()
            .map(|name| OperatorSignature {
                operator: (*name).to_owned(),
                signature: crate::sign(body, ops.key(name)),
            })
            .collect();
        SignedPolicy::assemble(body, &sigs).unwrap()
    }

    #[test]
    fn a_quorum_of_distinct_listed_operators_accepts() {
        let ops = Ops::new(3);
        let manifest = ops.manifest(2);
        let accepted = accept(
            &manifest,
            None,
            signed(&body(1), &ops, &["operator-0", "operator-2"]),
        )
        .unwrap();
        assert_eq!(accepted.version(), 1);
        assert_eq!(accepted.signers(), ["operator-0", "operator-2"]);
        // The envelope round-trips unchanged.
        let again = SignedPolicy::parse(accepted.signed().envelope_bytes()).unwrap();
        assert_eq!(again.body(), accepted.signed().body());
        assert_eq!(again.hash(), crate::hash_of(&body(1)));
    }

    #[test]
    fn a_duplicate_signature_counts_once() {
        let ops = Ops::new(3);
        let b = body(1);
        let err = accept(
            &ops.manifest(2),
            None,
            signed(&b, &ops, &["operator-1", "operator-1"]),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            PolicyError::NotEnoughSignatures {
                found: 1,
                needed: 2
            }
        ));
    }

    #[test]
    fn an_unlisted_operator_does_not_count() {
        let ops = Ops::new(3);
        let outsiders = Ops::new(3);
        // Signed by a key the manifest does not list, under a listed name and under its
        // own: neither counts (the first is a forgery of operator-1's approval).
        let manifest = Ops(ops.0.into_iter().take(2).collect()).manifest(2);
        let b = body(1);
        let sigs = vec![
            OperatorSignature {
                operator: "operator-0".into(),
                signature: crate::sign(&b, outsiders.key("operator-0")),
            },
            OperatorSignature {
                operator: "operator-2".into(),
                signature: crate::sign(&b, outsiders.key("operator-2")),
            },
        ];
        let err = accept(&manifest, None, SignedPolicy::assemble(&b, &sigs).unwrap()).unwrap_err();
        assert!(
            matches!(err, PolicyError::BadSignature { ref operator } if operator == "operator-0"),
            "{err:?}"
        );
    }

    #[test]
    fn unlisted_signers_alone_are_not_enough() {
        let ops = Ops::new(3);
        let outsiders = Ops::new(4);
        let manifest = ops.manifest(2);
        let b = body(1);
        let sigs = vec![OperatorSignature {
            operator: "operator-3".into(),
            signature: crate::sign(&b, outsiders.key("operator-3")),
        }];
        let mut all = sigs;
        all.push(OperatorSignature {
            operator: "operator-0".into(),
            signature: crate::sign(&b, ops.key("operator-0")),
        });
        assert!(matches!(
            accept(&manifest, None, SignedPolicy::assemble(&b, &all).unwrap()),
            Err(PolicyError::NotEnoughSignatures {
                found: 1,
                needed: 2
            })
        ));
    }

    #[test]
    fn a_forged_or_altered_approval_is_refused() {
        let ops = Ops::new(3);
        let manifest = ops.manifest(2);
        let b = body(1);
        let mut tampered = body(1);
        // Same length, another allowlist address: the signatures no longer verify.
        let at = tampered.windows(4).position(|w| w == b"1111").unwrap();
        tampered[at] = b'9';
        let sigs: Vec<_> = ["operator-0", "operator-1"]
            .iter()
            .map(|n| OperatorSignature {
                operator: (*n).into(),
                signature: crate::sign(&b, ops.key(n)),
            })
            .collect();
        let err = accept(
            &manifest,
            None,
            SignedPolicy::assemble(&tampered, &sigs).unwrap(),
        )
        .unwrap_err();
        assert!(matches!(err, PolicyError::BadSignature { .. }));
    }

    #[test]
    fn a_manifest_approval_is_not_a_policy_approval() {
        let ops = Ops::new(2);
        let b = body(1);
        let sigs: Vec<_> = ["operator-0", "operator-1"]
            .iter()
            .map(|n| OperatorSignature {
                operator: (*n).into(),
                signature: manifest::sign(&b, ops.key(n)),
            })
            .collect();
        let err = accept(
            &ops.manifest(2),
            None,
            SignedPolicy::assemble(&b, &sigs).unwrap(),
        )
        .unwrap_err();
        assert!(matches!(err, PolicyError::BadSignature { .. }));
        // And the reverse: a policy approval does not verify as a manifest approval.
        let policy_sig = crate::sign(&b, ops.key("operator-0"));
        assert_ne!(policy_sig, manifest::sign(&b, ops.key("operator-0")));
    }

    #[test]
    fn rollback_is_refused() {
        let ops = Ops::new(2);
        let manifest = ops.manifest(1);
        for (current, candidate) in [(5, 5), (5, 4), (5, 1)] {
            let err = accept(
                &manifest,
                Some(current),
                signed(&body(candidate), &ops, &["operator-0"]),
            )
            .unwrap_err();
            assert!(matches!(
                err,
                PolicyError::VersionNotNewer { current: c, candidate: v } if c == current && v == candidate
            ));
        }
        assert!(accept(&manifest, Some(5), signed(&body(6), &ops, &["operator-0"])).is_ok());
    }

    #[test]
    fn envelope_limits_and_encoding() {
        let ops = Ops::new(1);
        let big = vec![b' '; crate::MAX_POLICY_ENVELOPE_LEN + 1];
        assert!(matches!(
            SignedPolicy::parse(&big),
            Err(PolicyError::EnvelopeTooLarge { .. })
        ));
        let over = vec![b' '; crate::MAX_POLICY_LEN + 1];
        assert!(matches!(
            SignedPolicy::assemble(&over, &[]),
            Err(PolicyError::BodyTooLarge { .. })
        ));
        // A policy body at the maximum fits an envelope with 64 signatures.
        let mut at_max = body(1);
        at_max.resize(crate::MAX_POLICY_LEN, b' ');
        let sig = OperatorSignature {
            operator: "o".repeat(64),
            signature: crate::sign(&at_max, ops.key("operator-0")),
        };
        assert!(SignedPolicy::assemble(&at_max, &vec![sig; 64]).is_ok());
        let b = body(1);
        let bad = json!({"policy": "not base64!", "signatures": []});
        assert!(matches!(
            SignedPolicy::parse(&bytes(&bad)),
            Err(PolicyError::Base64(_))
        ));
        let bad = json!({"manifest": base64_of(&b), "signatures": []});
        assert!(matches!(
            SignedPolicy::parse(&bytes(&bad)),
            Err(PolicyError::Envelope(_))
        ));
        let bad =
            json!({"policy": base64_of(&b), "signatures": [{"operator": "a", "signature": "00"}]});
        assert!(matches!(
            SignedPolicy::parse(&bytes(&bad)),
            Err(PolicyError::SignatureEntry { index: 0, .. })
        ));
    }

    fn base64_of(b: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(b)
    }
}
