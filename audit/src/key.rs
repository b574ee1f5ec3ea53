//! The node's audit key: Ed25519, generated inside the enclave, kept sealed, never shown.
//! Its public half is what the node's attestation binds when it exports the log.

use crate::error::KeyError;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use std::fmt;
use zeroize::Zeroizing;

/// The context every entry signature starts with, before the entry's hash.
pub const SIGNATURE_CONTEXT: &[u8] = b"tee-custody audit v1\0";

/// The node's audit signing key. Not `Clone`, not `Serialize`; its `Debug` shows only the
/// public key. The key pair lives in aws-lc, which wipes it when it is freed.
pub struct AuditKey(Ed25519KeyPair);

impl AuditKey {
    pub fn generate() -> Result<Self, KeyError> {
        Ed25519KeyPair::generate()
            .map(AuditKey)
            .map_err(|_| KeyError::Generate)
    }

    /// Loads an unencrypted PKCS#8 (v1 or v2) Ed25519 private key, as unsealed.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, KeyError> {
        Ed25519KeyPair::from_pkcs8(der)
            .map(AuditKey)
            .map_err(|e| KeyError::Rejected(e.to_string()))
    }

    /// PKCS#8 v2 of the key pair, to be sealed; wiped when dropped.
    pub fn to_pkcs8(&self) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let document = self.0.to_pkcs8().map_err(|_| KeyError::Export)?;
        Ok(Zeroizing::new(document.as_ref().to_vec()))
    }

    pub fn public_key(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        let public = self.0.public_key().as_ref();
        if public.len() == out.len() {
            out.copy_from_slice(public);
        }
        out
    }

    /// Signs `SIGNATURE_CONTEXT || hash`.
    pub(crate) fn sign(&self, hash: &[u8; 32]) -> [u8; 64] {
        let signature = self.0.sign(&signed_message(hash));
        let mut out = [0u8; 64];
        let bytes = signature.as_ref();
        if bytes.len() == out.len() {
            out.copy_from_slice(bytes);
        }
        out
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditKey")
            .field("public_key", &hex::encode(self.public_key()))
            .field("secret", &"<redacted>")
            .finish()
    }
}

fn signed_message(hash: &[u8; 32]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNATURE_CONTEXT.len() + hash.len());
    message.extend_from_slice(SIGNATURE_CONTEXT);
    message.extend_from_slice(hash);
    message
}

/// A signature that does not verify.
#[derive(Debug)]
pub(crate) struct BadSignature;

/// Checks that `signature` is `public_key`'s over `SIGNATURE_CONTEXT || hash`.
pub(crate) fn check(
    public_key: &[u8; 32],
    hash: &[u8; 32],
    signature: &[u8; 64],
) -> Result<(), BadSignature> {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(&signed_message(hash), signature)
        .map_err(|_| BadSignature)
}
