//! Offline signature checks, with `k256` alone: nothing here trusts the nodes.

use k256::ecdsa::signature::hazmat::PrehashVerifier;
use k256::ecdsa::{Signature, VerifyingKey};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("{what} is not valid hex: {reason}")]
    Hex { what: &'static str, reason: String },
    #[error("{what} must be {expected} bytes")]
    Length { what: &'static str, expected: usize },
    #[error("not a secp256k1 public key")]
    PublicKey,
    #[error("r or s is out of range")]
    Scalars,
    #[error("s is not in the lower half of the order (as Bitcoin and Ethereum require)")]
    HighS,
    #[error("the signature does not match the public key and digest")]
    Invalid,
}

fn bytes<const N: usize>(what: &'static str, hex: &str) -> Result<[u8; N], VerifyError> {
    let decoded = hex::decode(hex.trim_start_matches("0x")).map_err(|e| VerifyError::Hex {
        what,
        reason: e.to_string(),
    })?;
    decoded
        .try_into()
        .map_err(|_| VerifyError::Length { what, expected: N })
}

/// Checks `(r, s)` over the 32-byte `digest` against a SEC1 `public_key` (compressed or
/// not), all hex; a high `s` is refused.
pub fn verify_hex(public_key: &str, digest: &str, r: &str, s: &str) -> Result<(), VerifyError> {
    let key = hex::decode(public_key.trim_start_matches("0x")).map_err(|e| VerifyError::Hex {
        what: "public key",
        reason: e.to_string(),
    })?;
    let key = VerifyingKey::from_sec1_bytes(&key).map_err(|_| VerifyError::PublicKey)?;
    let digest: [u8; 32] = bytes("digest", digest)?;
    let r: [u8; 32] = bytes("r", r)?;
    let s: [u8; 32] = bytes("s", s)?;
    let signature = Signature::from_scalars(r, s).map_err(|_| VerifyError::Scalars)?;
    if signature.normalize_s().is_some() {
        return Err(VerifyError::HighS);
    }
    key.verify_prehash(&digest, &signature)
        .map_err(|_| VerifyError::Invalid)
}

/// Why a signed answer does not check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerCheckError {
    #[error("it says signed but carries no signature")]
    NoSignature,
    #[error("it signed digest {signed}, not the digest asked for ({asked})")]
    OtherDigest { asked: String, signed: String },
    #[error("it carries no signed transaction")]
    NoSignedTx,
    #[error("the PSBT's signatures name no input")]
    NoInputs,
    #[error("the signature of input {index}: {source}")]
    Input {
        index: usize,
        #[source]
        source: VerifyError,
    },
    #[error("the signature: {0}")]
    Signature(#[source] VerifyError),
    #[error("the signed transaction: {0}")]
    Sender(String),
}

/// How far this client checked a signed answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnswerCheck {
    /// Not a signature: nothing to check.
    NotSigned,
    /// Every signature verifies against the public key it names, over the digest asked
    /// for (a digest request) or the digest the nodes say they computed.
    SignaturesVerify,
    /// As [`AnswerCheck::SignaturesVerify`], and the sender recovered from the signed
    /// Ethereum transaction is the key's address.
    SenderChecked,
}

/// Checks a node's answer before anything of it is printed as a success: every
/// signature it carries must verify against the public key it names, over the digest
/// asked for (a digest request) or the digest it names (a transaction's, which the nodes
/// computed); a transaction or a PSBT must come back signed ([`check_eth_sender`] says
/// what is not yet checked of a transaction). `payload` is `None` when this client
/// approved a request it did not make: the signatures are checked all the same.
pub fn check_answer(
    payload: Option<&protocol::authority::Payload>,
    answer: &protocol::operator_api::RequestAnswer,
) -> Result<AnswerCheck, AnswerCheckError> {
    use protocol::authority::Payload;
    use protocol::operator_api::{RequestStatus, SignedDigest};
    if answer.status != RequestStatus::Signed {
        return Ok(AnswerCheck::NotSigned);
    }
    let verify = |s: &SignedDigest| verify_hex(&s.public_key, &s.digest, &s.r, &s.s);
    if let Some(signed) = &answer.signature {
        verify(signed).map_err(AnswerCheckError::Signature)?;
    }
    for (index, input) in answer.inputs.iter().enumerate() {
        verify(input).map_err(|source| AnswerCheckError::Input { index, source })?;
    }
    match payload {
        Some(Payload::Digest(asked)) => {
            let signed = answer
                .signature
                .as_ref()
                .ok_or(AnswerCheckError::NoSignature)?;
            let normal = |d: &str| d.trim_start_matches("0x").to_ascii_lowercase();
            if normal(asked) != normal(&signed.digest) {
                return Err(AnswerCheckError::OtherDigest {
                    asked: asked.clone(),
                    signed: protocol::printable(&signed.digest),
                });
            }
            Ok(AnswerCheck::SignaturesVerify)
        }
        Some(Payload::EthTx(_)) => {
            let signed = answer
                .signature
                .as_ref()
                .ok_or(AnswerCheckError::NoSignature)?;
            let tx = answer
                .signed_tx
                .as_deref()
                .ok_or(AnswerCheckError::NoSignedTx)?;
            check_eth_sender(tx, &signed.public_key)
        }
        Some(Payload::BtcPsbt { .. }) => {
            if answer.inputs.is_empty() {
                return Err(AnswerCheckError::NoInputs);
            }
            if answer.signed_tx.is_none() {
                return Err(AnswerCheckError::NoSignedTx);
            }
            Ok(AnswerCheck::SignaturesVerify)
        }
        None if answer.signature.is_none() && answer.inputs.is_empty() => {
            Err(AnswerCheckError::NoSignature)
        }
        // A transaction (a PSBT names its inputs).
        None => match (
            &answer.signed_tx,
            &answer.signature,
            answer.inputs.is_empty(),
        ) {
            (Some(tx), Some(signed), true) => check_eth_sender(tx, &signed.public_key),
            _ => Ok(AnswerCheck::SignaturesVerify),
        },
    }
}

/// The check of a signed Ethereum transaction that its sender, recovered from the
/// signed transaction itself, is the address of `public_key`: whatever the nodes said
/// they signed, the transaction spends from that key or is refused here.
pub fn check_eth_sender(
    signed_tx: &str,
    public_key: &str,
) -> Result<AnswerCheck, AnswerCheckError> {
    let raw = hex::decode(signed_tx.trim_start_matches("0x"))
        .map_err(|_| AnswerCheckError::NoSignedTx)?;
    let sender =
        chains::eth::recover_sender(&raw).map_err(|e| AnswerCheckError::Sender(e.to_string()))?;
    let key = hex::decode(public_key)
        .ok()
        .and_then(|k| k256::PublicKey::from_sec1_bytes(&k).ok())
        .ok_or_else(|| AnswerCheckError::Sender("the answer's public key is invalid".into()))?;
    let expected = chains::eth_address(&key);
    if !sender.eq_ignore_ascii_case(&expected) {
        return Err(AnswerCheckError::Sender(format!(
            "the signed transaction spends from {sender}, not from the key's address {expected}"
        )));
    }
    Ok(AnswerCheck::SenderChecked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::ecdsa::SigningKey;

    #[test]
    fn accepts_valid_low_s_signatures_only() {
        let secret = SigningKey::from_slice(&[9u8; 32]).unwrap();
        let public = hex::encode(secret.verifying_key().to_encoded_point(true).as_bytes());
        let digest = [5u8; 32];
        let (signature, _) = secret.sign_prehash_recoverable(&digest).unwrap();
        let signature = signature.normalize_s().unwrap_or(signature);
        let (r, s) = signature.split_bytes();
        let (r, s) = (hex::encode(r), hex::encode(s));
        assert_eq!(verify_hex(&public, &hex::encode(digest), &r, &s), Ok(()));
        assert_eq!(
            verify_hex(&public, &hex::encode([6u8; 32]), &r, &s),
            Err(VerifyError::Invalid)
        );
        // The same signature with s negated: valid ECDSA, but high s.
        let high = Signature::from_scalars(signature.r().to_bytes(), (-*signature.s()).to_bytes())
            .unwrap();
        assert_eq!(
            verify_hex(
                &public,
                &hex::encode(digest),
                &r,
                &hex::encode(high.s().to_bytes())
            ),
            Err(VerifyError::HighS)
        );
        assert!(matches!(
            verify_hex("zz", &hex::encode(digest), &r, &s),
            Err(VerifyError::Hex { .. })
        ));
        assert_eq!(
            verify_hex(&public, "00", &r, &s),
            Err(VerifyError::Length {
                what: "digest",
                expected: 32
            })
        );
        assert_eq!(
            verify_hex("02", &hex::encode(digest), &r, &s),
            Err(VerifyError::PublicKey)
        );
    }

    fn signed_answer(digest: [u8; 32]) -> protocol::operator_api::RequestAnswer {
        use protocol::operator_api::{RequestAnswer, RequestStatus, SignedDigest};
        let secret = SigningKey::from_slice(&[9u8; 32]).unwrap();
        let (signature, v) = secret.sign_prehash_recoverable(&digest).unwrap();
        let signature = signature.normalize_s().unwrap_or(signature);
        let (r, s) = signature.split_bytes();
        let mut answer = RequestAnswer::new(&[1; 32], RequestStatus::Signed);
        answer.signature = Some(SignedDigest {
            scheme: protocol::SchemeId::EcdsaSecp256k1,
            r: hex::encode(r),
            s: hex::encode(s),
            v: v.to_byte(),
            public_key: hex::encode(secret.verifying_key().to_encoded_point(true).as_bytes()),
            digest: hex::encode(digest),
            signers: vec![],
            presigned: false,
        });
        answer
    }

    /// A signed answer is believed only once its signatures verify over what was asked.
    #[test]
    fn answers_are_checked_before_they_count_as_signed() {
        use protocol::authority::Payload;
        use protocol::operator_api::{RequestAnswer, RequestStatus};
        let asked = Payload::Digest(hex::encode([5u8; 32]));
        let good = signed_answer([5; 32]);
        assert_eq!(
            check_answer(Some(&asked), &good),
            Ok(AnswerCheck::SignaturesVerify)
        );
        assert_eq!(check_answer(None, &good), Ok(AnswerCheck::SignaturesVerify));
        // A valid signature of another digest than the one asked for.
        let other = signed_answer([6; 32]);
        assert!(matches!(
            check_answer(Some(&asked), &other),
            Err(AnswerCheckError::OtherDigest { .. })
        ));
        // A signature that does not match its key, whatever was asked.
        let mut forged = good.clone();
        if let Some(s) = forged.signature.as_mut() {
            s.digest = hex::encode([6u8; 32]);
        }
        assert!(matches!(
            check_answer(None, &forged),
            Err(AnswerCheckError::Signature(VerifyError::Invalid))
        ));
        // "Signed" without a signature.
        let empty = RequestAnswer::new(&[1; 32], RequestStatus::Signed);
        assert_eq!(
            check_answer(Some(&asked), &empty),
            Err(AnswerCheckError::NoSignature)
        );
        assert_eq!(
            check_answer(None, &empty),
            Err(AnswerCheckError::NoSignature)
        );
        // Anything but signed has nothing to check.
        let pending = RequestAnswer::new(&[1; 32], RequestStatus::Pending);
        assert_eq!(
            check_answer(Some(&asked), &pending),
            Ok(AnswerCheck::NotSigned)
        );
        // A transaction comes back signed, and one whose sender cannot be recovered fails.
        let tx = Payload::EthTx("02ef".into());
        assert_eq!(
            check_answer(Some(&tx), &good),
            Err(AnswerCheckError::NoSignedTx)
        );
        let mut with_tx = good.clone();
        with_tx.signed_tx = Some("02f8".into());
        assert!(matches!(
            check_answer(Some(&tx), &with_tx),
            Err(AnswerCheckError::Sender(_))
        ));
        assert!(matches!(
            check_answer(None, &with_tx),
            Err(AnswerCheckError::Sender(_))
        ));
        // A PSBT: every input verifies, and one that does not is named.
        let psbt = Payload::BtcPsbt {
            psbt: "cHNidP8=".into(),
            network: "mainnet".into(),
        };
        let mut inputs = RequestAnswer::new(&[1; 32], RequestStatus::Signed);
        inputs.signed_tx = Some("cHNidP8=".into());
        inputs.inputs = vec![
            good.signature.clone().unwrap(),
            forged.signature.clone().unwrap(),
        ];
        assert!(matches!(
            check_answer(Some(&psbt), &inputs),
            Err(AnswerCheckError::Input { index: 1, .. })
        ));
        inputs.inputs.pop();
        assert_eq!(
            check_answer(Some(&psbt), &inputs),
            Ok(AnswerCheck::SignaturesVerify)
        );
        assert_eq!(
            check_answer(None, &inputs),
            Ok(AnswerCheck::SignaturesVerify)
        );
        inputs.inputs.clear();
        assert_eq!(
            check_answer(Some(&psbt), &inputs),
            Err(AnswerCheckError::NoInputs)
        );
    }

    /// A signed Ethereum transaction is accepted only when the sender recovered from it
    /// is the key's address.
    #[test]
    fn an_ethereum_transaction_must_spend_from_the_keys_address() {
        let unsigned = hex::decode("02ef0103843b9aca008506fc23ac0082ea6094abababababababababababababababababababab87038d7ea4c6800080c0").unwrap();
        let tx = chains::eth::EthTx::parse_unsigned(&unsigned).unwrap();
        let secret = SigningKey::from_slice(&[9u8; 32]).unwrap();
        let (signature, recovery) = secret.sign_prehash_recoverable(&tx.signing_hash()).unwrap();
        assert!(signature.normalize_s().is_none());
        let raw = tx
            .signed_raw(
                signature.r().to_bytes().into(),
                signature.s().to_bytes().into(),
                recovery.is_y_odd(),
            )
            .unwrap();
        let public = hex::encode(secret.verifying_key().to_encoded_point(true).as_bytes());
        assert_eq!(
            check_eth_sender(&hex::encode(&raw), &public),
            Ok(AnswerCheck::SenderChecked)
        );
        let other = SigningKey::from_slice(&[10u8; 32]).unwrap();
        let other = hex::encode(other.verifying_key().to_encoded_point(true).as_bytes());
        assert!(matches!(
            check_eth_sender(&hex::encode(&raw), &other),
            Err(AnswerCheckError::Sender(_))
        ));
    }
}
