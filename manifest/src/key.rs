//! Operator signing keys, for operators' tooling and tests.

use crate::envelope::{Signature, signed_message, signed_message_in, to_array};
use crate::error::KeyError;
use aws_lc_rs::pkcs8;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use std::fmt;

/// An operator's Ed25519 key pair. Neither `Clone` nor a `Debug` that shows the secret.
pub struct OperatorKey(Ed25519KeyPair);

impl OperatorKey {
    pub fn generate() -> Result<Self, KeyError> {
        Ed25519KeyPair::generate()
            .map(OperatorKey)
            .map_err(|_| KeyError::Generate)
    }

    /// Loads an unencrypted PKCS#8 (v1 or v2) Ed25519 private key.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, KeyError> {
        Ed25519KeyPair::from_pkcs8(der)
            .map(OperatorKey)
            .map_err(|e| KeyError::Rejected(e.to_string()))
    }

    /// PKCS#8 v2 encoding of the key pair; the document is zeroed when dropped.
    pub fn to_pkcs8(&self) -> Result<pkcs8::Document, KeyError> {
        self.0.to_pkcs8().map_err(|_| KeyError::Export)
    }

    pub fn public_key(&self) -> [u8; 32] {
        to_array(self.0.public_key().as_ref())
    }

    /// Signs `message` as it is; callers put their own signing context in front.
    pub(crate) fn sign_raw(&self, message: &[u8]) -> aws_lc_rs::signature::Signature {
        self.0.sign(message)
    }

    /// The public key as it appears in a manifest's `public_key`.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.public_key())
    }
}

impl fmt::Debug for OperatorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperatorKey")
            .field("public_key", &self.public_key_hex())
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Signs `SIGNING_CONTEXT || body` with `key`.
pub fn sign(body: &[u8], key: &OperatorKey) -> Signature {
    Signature::from(to_array(key.0.sign(&signed_message(body)).as_ref()))
}

/// Signs `context || body` with `key`: an approval of a document other than a manifest.
pub fn sign_in(context: &[u8], body: &[u8], key: &OperatorKey) -> Signature {
    Signature::from(to_array(
        key.0.sign(&signed_message_in(context, body)).as_ref(),
    ))
}
