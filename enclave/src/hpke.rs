//! HPKE (RFC 9180), base mode, single-shot: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and
//! AES-128-GCM or AES-256-GCM.
//!
//! Secret material (a sealing key, a share, a backup) is only ever encrypted to a public
//! key that appears in verified attestation evidence: the recipient puts
//! [`HpkePublicKey::to_bytes`] into the document's `public_key` field and keeps the
//! private key, which never leaves the enclave.
//!
//! Built on aws-lc-rs primitives: X25519 agreement, HMAC-SHA256 for `LabeledExtract`
//! (whose output `psk_id_hash` and `info_hash` are needed as bytes), HKDF-Expand for
//! `LabeledExpand`, and AES-GCM. Checked against the RFC 9180 / CFRG test vectors.

use aws_lc_rs::{aead, agreement, hkdf, hmac, rand};
use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length of an X25519 public key, encapsulated key (`enc`) and private key.
pub const KEY_LEN: usize = 32;
/// Length of the AEAD tag appended to every ciphertext.
pub const TAG_LEN: usize = 16;

const KEM_ID: u16 = 0x0020;
const KDF_ID: u16 = 0x0001;
const MODE_BASE: u8 = 0x00;
/// Output length of HKDF-SHA256 (`Nh`).
const NH: usize = 32;
/// AES-GCM nonce length (`Nn`).
const NN: usize = 12;
const HPKE_VERSION: &[u8] = b"HPKE-v1";

/// The AEADs this implementation offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aead {
    /// AES-128-GCM (0x0001).
    Aes128Gcm,
    /// AES-256-GCM (0x0002).
    Aes256Gcm,
}

/// The AEAD [`seal`] and [`open`] use.
pub const DEFAULT_AEAD: Aead = Aead::Aes256Gcm;

impl Aead {
    /// The RFC 9180 `aead_id`.
    pub const fn id(self) -> u16 {
        match self {
            Aead::Aes128Gcm => 0x0001,
            Aead::Aes256Gcm => 0x0002,
        }
    }

    fn algorithm(self) -> &'static aead::Algorithm {
        match self {
            Aead::Aes128Gcm => &aead::AES_128_GCM,
            Aead::Aes256Gcm => &aead::AES_256_GCM,
        }
    }

    fn key_len(self) -> usize {
        match self {
            Aead::Aes128Gcm => 16,
            Aead::Aes256Gcm => 32,
        }
    }

    /// `"HPKE" || kem_id || kdf_id || aead_id`
    fn suite_id(self) -> [u8; 10] {
        let [k0, k1] = KEM_ID.to_be_bytes();
        let [d0, d1] = KDF_ID.to_be_bytes();
        let [a0, a1] = self.id().to_be_bytes();
        [b'H', b'P', b'K', b'E', k0, k1, d0, d1, a0, a1]
    }
}

/// `"KEM" || kem_id`
const KEM_SUITE_ID: [u8; 5] = [b'K', b'E', b'M', 0x00, 0x20];

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HpkeError {
    #[error("public key must be {KEY_LEN} bytes, got {0}")]
    PublicKeyLength(usize),
    #[error("encapsulated key must be {KEY_LEN} bytes, got {0}")]
    EncLength(usize),
    /// The peer's key is a low-order point: X25519 with it yields the all-zero shared
    /// secret (RFC 9180 §7.1.4), or the agreement failed.
    #[error("key agreement refused: low-order or invalid X25519 point")]
    LowOrderPoint,
    /// Wrong private key, `info` or `aad`, or an altered `enc` or ciphertext.
    #[error("decryption failed")]
    Open,
    #[error("cryptographic operation failed")]
    Crypto,
}

/// An X25519 public key: what goes into an attestation document's `public_key`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HpkePublicKey([u8; KEY_LEN]);

impl HpkePublicKey {
    /// Parses a raw 32-byte X25519 key. Low-order points, with which every agreement
    /// gives the all-zero shared secret, are refused here rather than at first use.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, HpkeError> {
        let key: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| HpkeError::PublicKeyLength(bytes.len()))?;
        let probe =
            agreement::PrivateKey::generate(&agreement::X25519).map_err(|_| HpkeError::Crypto)?;
        x25519(&probe, &key)?;
        Ok(HpkePublicKey(key))
    }

    pub fn to_bytes(&self) -> [u8; KEY_LEN] {
        self.0
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for HpkePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HpkePublicKey({})", hex::encode(self.0))
    }
}

/// An X25519 private key. Zeroized on drop; no `Clone`, no serialization, redacted
/// `Debug`.
pub struct HpkePrivateKey {
    secret: [u8; KEY_LEN],
    public: HpkePublicKey,
}

impl HpkePrivateKey {
    fn from_secret(secret: &[u8; KEY_LEN]) -> Result<Self, HpkeError> {
        let mut key = HpkePrivateKey {
            secret: *secret,
            public: HpkePublicKey([0; KEY_LEN]),
        };
        let public = key
            .agreement_key()?
            .compute_public_key()
            .map_err(|_| HpkeError::Crypto)?;
        let public: [u8; KEY_LEN] = public.as_ref().try_into().map_err(|_| HpkeError::Crypto)?;
        key.public = HpkePublicKey(public);
        Ok(key)
    }

    pub fn public_key(&self) -> &HpkePublicKey {
        &self.public
    }

    fn agreement_key(&self) -> Result<agreement::PrivateKey, HpkeError> {
        agreement::PrivateKey::from_private_key(&agreement::X25519, &self.secret)
            .map_err(|_| HpkeError::Crypto)
    }

    fn dh(&self, peer: &[u8; KEY_LEN]) -> Result<Zeroizing<[u8; KEY_LEN]>, HpkeError> {
        x25519(&self.agreement_key()?, peer)
    }
}

impl Drop for HpkePrivateKey {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl ZeroizeOnDrop for HpkePrivateKey {}

impl fmt::Debug for HpkePrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HpkePrivateKey(<redacted>)")
    }
}

/// X25519, refusing the all-zero output (RFC 9180 §7.1.4).
fn x25519(
    private: &agreement::PrivateKey,
    peer: &[u8; KEY_LEN],
) -> Result<Zeroizing<[u8; KEY_LEN]>, HpkeError> {
    let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, peer);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    agreement::agree(private, peer, HpkeError::LowOrderPoint, |secret| {
        if secret.len() != KEY_LEN {
            return Err(HpkeError::Crypto);
        }
        out.iter_mut().zip(secret).for_each(|(o, s)| *o = *s);
        Ok(())
    })?;
    if out.iter().fold(0u8, |acc, b| acc | b) == 0 {
        return Err(HpkeError::LowOrderPoint);
    }
    Ok(out)
}

/// A fresh key pair for this boot.
pub fn generate_keypair() -> Result<(HpkePrivateKey, HpkePublicKey), HpkeError> {
    let mut secret = Zeroizing::new([0u8; KEY_LEN]);
    rand::fill(secret.as_mut()).map_err(|_| HpkeError::Crypto)?;
    let key = HpkePrivateKey::from_secret(&secret)?;
    let public = key.public.clone();
    Ok((key, public))
}

/// Encrypts `plaintext` to `recipient` with [`DEFAULT_AEAD`]: returns `(enc, ct)`.
pub fn seal(
    recipient: &HpkePublicKey,
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), HpkeError> {
    seal_with(DEFAULT_AEAD, recipient, info, aad, plaintext)
}

/// Decrypts what [`seal`] produced.
pub fn open(
    recipient: &HpkePrivateKey,
    enc: &[u8],
    info: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, HpkeError> {
    open_with(DEFAULT_AEAD, recipient, enc, info, aad, ciphertext)
}

/// [`seal`] with an explicit AEAD.
pub fn seal_with(
    aead: Aead,
    recipient: &HpkePublicKey,
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), HpkeError> {
    let (ephemeral, _) = generate_keypair()?;
    seal_from(aead, &ephemeral, recipient, info, aad, plaintext)
}

/// [`open`] with an explicit AEAD.
pub fn open_with(
    aead: Aead,
    recipient: &HpkePrivateKey,
    enc: &[u8],
    info: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, HpkeError> {
    let enc: &[u8; KEY_LEN] = enc
        .try_into()
        .map_err(|_| HpkeError::EncLength(enc.len()))?;
    let dh = recipient.dh(enc)?;
    let shared_secret = extract_and_expand(&dh, enc, recipient.public.as_bytes())?;
    let schedule = key_schedule(aead, &shared_secret, info)?;
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let len = schedule
        .aead_key(aead)?
        .open_in_place(schedule.nonce(), aead::Aad::from(aad), buf.as_mut_slice())
        .map_err(|_| HpkeError::Open)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

/// Encap with a given ephemeral key, then the single-shot seal (sequence number 0).
fn seal_from(
    aead: Aead,
    ephemeral: &HpkePrivateKey,
    recipient: &HpkePublicKey,
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), HpkeError> {
    let dh = ephemeral.dh(recipient.as_bytes())?;
    let enc = ephemeral.public.to_bytes();
    let shared_secret = extract_and_expand(&dh, &enc, recipient.as_bytes())?;
    let schedule = key_schedule(aead, &shared_secret, info)?;
    let mut ct = Vec::with_capacity(plaintext.len().saturating_add(TAG_LEN));
    ct.extend_from_slice(plaintext);
    schedule
        .aead_key(aead)?
        .seal_in_place_append_tag(schedule.nonce(), aead::Aad::from(aad), &mut ct)
        .map_err(|_| HpkeError::Crypto)?;
    Ok((enc.to_vec(), ct))
}

/// DHKEM `ExtractAndExpand(dh, enc || pkRm)`.
fn extract_and_expand(
    dh: &[u8; KEY_LEN],
    enc: &[u8; KEY_LEN],
    pk_rm: &[u8; KEY_LEN],
) -> Result<Zeroizing<[u8; NH]>, HpkeError> {
    let eae_prk = labeled_extract(&[], &KEM_SUITE_ID, b"eae_prk", dh);
    let mut shared_secret = Zeroizing::new([0u8; NH]);
    labeled_expand(
        &eae_prk,
        &KEM_SUITE_ID,
        b"shared_secret",
        &[enc, pk_rm],
        shared_secret.as_mut(),
    )?;
    Ok(shared_secret)
}

struct KeySchedule {
    key: Zeroizing<Vec<u8>>,
    base_nonce: [u8; NN],
    #[cfg(test)]
    exporter_secret: Zeroizing<[u8; NH]>,
}

impl KeySchedule {
    fn aead_key(&self, aead: Aead) -> Result<aead::LessSafeKey, HpkeError> {
        let key =
            aead::UnboundKey::new(aead.algorithm(), &self.key).map_err(|_| HpkeError::Crypto)?;
        Ok(aead::LessSafeKey::new(key))
    }

    /// `base_nonce XOR 0`: single-shot use only ever has sequence number 0.
    fn nonce(&self) -> aead::Nonce {
        aead::Nonce::assume_unique_for_key(self.base_nonce)
    }
}

/// `KeySchedule` for mode_base (empty `psk` and `psk_id`).
fn key_schedule(
    aead: Aead,
    shared_secret: &[u8; NH],
    info: &[u8],
) -> Result<KeySchedule, HpkeError> {
    let suite_id = aead.suite_id();
    let psk_id_hash = labeled_extract(&[], &suite_id, b"psk_id_hash", &[]);
    let info_hash = labeled_extract(&[], &suite_id, b"info_hash", info);
    let context: [&[u8]; 3] = [&[MODE_BASE], psk_id_hash.as_ref(), info_hash.as_ref()];
    let secret = labeled_extract(shared_secret, &suite_id, b"secret", &[]);

    let mut key = Zeroizing::new(vec![0u8; aead.key_len()]);
    labeled_expand(&secret, &suite_id, b"key", &context, &mut key)?;
    let mut base_nonce = [0u8; NN];
    labeled_expand(&secret, &suite_id, b"base_nonce", &context, &mut base_nonce)?;
    #[cfg(test)]
    let exporter_secret = {
        let mut exp = Zeroizing::new([0u8; NH]);
        labeled_expand(&secret, &suite_id, b"exp", &context, exp.as_mut())?;
        exp
    };
    Ok(KeySchedule {
        key,
        base_nonce,
        #[cfg(test)]
        exporter_secret,
    })
}

/// `LabeledExtract(salt, label, ikm) = HMAC(salt, "HPKE-v1" || suite_id || label || ikm)`.
/// An empty salt is HKDF's string of `Nh` zeros: HMAC pads its key with zeros.
fn labeled_extract(salt: &[u8], suite_id: &[u8], label: &[u8], ikm: &[u8]) -> Zeroizing<[u8; NH]> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, salt);
    let mut ctx = hmac::Context::with_key(&key);
    for part in [HPKE_VERSION, suite_id, label, ikm] {
        ctx.update(part);
    }
    let tag = ctx.sign();
    let mut prk = Zeroizing::new([0u8; NH]);
    prk.iter_mut().zip(tag.as_ref()).for_each(|(o, t)| *o = *t);
    prk
}

/// `LabeledExpand(prk, label, info, L)` with `info` given as the parts it concatenates.
fn labeled_expand(
    prk: &[u8; NH],
    suite_id: &[u8],
    label: &[u8],
    info: &[&[u8]],
    out: &mut [u8],
) -> Result<(), HpkeError> {
    let len = u16::try_from(out.len())
        .map_err(|_| HpkeError::Crypto)?
        .to_be_bytes();
    let mut parts: Vec<&[u8]> = vec![&len[..], HPKE_VERSION, suite_id, label];
    parts.extend_from_slice(info);
    let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, prk);
    prk.expand(&parts, OutLen(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| HpkeError::Crypto)
}

struct OutLen(usize);

impl hkdf::KeyType for OutLen {
    fn len(&self) -> usize {
        self.0
    }
}

#[cfg(test)]
mod tests;
