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
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn h32(s: &str) -> [u8; 32] {
        h(s).try_into().unwrap()
    }

    /// RFC 9180 §7.1.3 `DeriveKeyPair` for X25519, to check the vectors' seeds.
    fn derive_keypair(ikm: &[u8]) -> HpkePrivateKey {
        let dkp_prk = labeled_extract(&[], &KEM_SUITE_ID, b"dkp_prk", ikm);
        let mut sk = [0u8; KEY_LEN];
        labeled_expand(&dkp_prk, &KEM_SUITE_ID, b"sk", &[], &mut sk).unwrap();
        HpkePrivateKey::from_secret(&sk).unwrap()
    }

    struct Vector {
        aead: Aead,
        ikm_e: &'static str,
        sk_em: &'static str,
        pk_em: &'static str,
        ikm_r: &'static str,
        sk_rm: &'static str,
        pk_rm: &'static str,
        shared_secret: &'static str,
        key: &'static str,
        base_nonce: &'static str,
        exporter_secret: &'static str,
        ct: &'static str,
    }

    const INFO: &str = "4f6465206f6e2061204772656369616e2055726e";
    const PT: &str = "4265617574792069732074727574682c20747275746820626561757479";
    const AAD: &str = "436f756e742d30";

    /// RFC 9180 Appendix A.1.1 (base mode), first encryption (sequence number 0).
    const A_1_1: Vector = Vector {
        aead: Aead::Aes128Gcm,
        ikm_e: "7268600d403fce431561aef583ee1613527cff655c1343f29812e66706df3234",
        sk_em: "52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736",
        pk_em: "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431",
        ikm_r: "6db9df30aa07dd42ee5e8181afdb977e538f5e1fec8a06223f33f7013e525037",
        sk_rm: "4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8",
        pk_rm: "3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d",
        shared_secret: "fe0e18c9f024ce43799ae393c7e8fe8fce9d218875e8227b0187c04e7d2ea1fc",
        key: "4531685d41d65f03dc48f6b8302c05b0",
        base_nonce: "56d890e5accaaf011cff4b7d",
        exporter_secret: "45ff1c2e220db587171952c0592d5f5ebe103f1561a2614e38f2ffd47e99e3f8",
        ct: "f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a9\
             6d8770ac83d07bea87e13c512a",
    };

    /// The CFRG test-vectors.json entry mode 0, kem 0x0020, kdf 0x0001, aead 0x0002
    /// (not printed in the RFC's appendix), first encryption.
    const X25519_AES256: Vector = Vector {
        aead: Aead::Aes256Gcm,
        ikm_e: "2cd7c601cefb3d42a62b04b7a9041494c06c7843818e0ce28a8f704ae7ab20f9",
        sk_em: "179d4b53b6365c45b600c4163b61d95cbc2f4d9e36f1695558dce265ab8bab11",
        pk_em: "6c93e09869df3402d7bf231bf540fadd35cd56be14f97178f0954db94b7fc256",
        ikm_r: "dac33b0e9db1b59dbbea58d59a14e7b5896e9bdf98fad6891e99d1686492b9ee",
        sk_rm: "497b4502664cfea5d5af0b39934dac72242a74f8480451e1aee7d6a53320333d",
        pk_rm: "430f4b9859665145a6b1ba274024487bd66f03a2dd577d7753c68d7d7d00c00c",
        shared_secret: "3101c54c3a4f87439eaac080699ed9bbcc726ffe44e860c0424ccb7e3e2ead7b",
        key: "f50b0609186798729ed0564b36ef2ef8044f1f9d05636874d1f46c819c7a669f",
        base_nonce: "151d9929e2449747889bc923",
        exporter_secret: "86017151bbff6a1940e8abae2ac9e0e7032e33df1eaaecc02ca6259b130d62df",
        ct: "e5d84cd531cfb583096e7cfa9641bd3079cf3a91cda813c52deb5f512be99319\
             80a41de125a925cdad859d5b7a",
    };

    fn check_vector(v: &Vector) {
        // DeriveKeyPair reproduces the vector's keys.
        let ephemeral = derive_keypair(&h(v.ikm_e));
        assert_eq!(ephemeral.secret, h32(v.sk_em));
        assert_eq!(ephemeral.public.to_bytes(), h32(v.pk_em));
        let recipient = derive_keypair(&h(v.ikm_r));
        assert_eq!(recipient.secret, h32(v.sk_rm));
        assert_eq!(recipient.public.to_bytes(), h32(v.pk_rm));

        // Keys taken as given (skEm, skRm) give the vector's public keys.
        let ephemeral = HpkePrivateKey::from_secret(&h32(v.sk_em)).unwrap();
        assert_eq!(ephemeral.public.to_bytes(), h32(v.pk_em));
        let recipient = HpkePrivateKey::from_secret(&h32(v.sk_rm)).unwrap();
        let pk_r = HpkePublicKey::from_bytes(&h(v.pk_rm)).unwrap();
        assert_eq!(&pk_r, recipient.public_key());

        // Intermediate values.
        let dh = ephemeral.dh(pk_r.as_bytes()).unwrap();
        let shared_secret =
            extract_and_expand(&dh, ephemeral.public.as_bytes(), pk_r.as_bytes()).unwrap();
        assert_eq!(hex::encode(shared_secret.as_ref()), v.shared_secret);
        let schedule = key_schedule(v.aead, &shared_secret, &h(INFO)).unwrap();
        assert_eq!(hex::encode(schedule.key.as_slice()), v.key);
        assert_eq!(hex::encode(schedule.base_nonce), v.base_nonce);
        assert_eq!(
            hex::encode(schedule.exporter_secret.as_ref()),
            v.exporter_secret
        );

        // The first encryption, both ways.
        let (enc, ct) = seal_from(v.aead, &ephemeral, &pk_r, &h(INFO), &h(AAD), &h(PT)).unwrap();
        assert_eq!(enc, h(v.pk_em));
        assert_eq!(hex::encode(&ct), v.ct);
        let pt = open_with(v.aead, &recipient, &enc, &h(INFO), &h(AAD), &h(v.ct)).unwrap();
        assert_eq!(pt.as_slice(), h(PT).as_slice());
    }

    #[test]
    fn rfc9180_a_1_1_x25519_sha256_aes128gcm() {
        check_vector(&A_1_1);
    }

    #[test]
    fn cfrg_vector_x25519_sha256_aes256gcm() {
        check_vector(&X25519_AES256);
    }

    #[test]
    fn round_trip_with_both_aeads() {
        let (sk, pk) = generate_keypair().unwrap();
        assert_eq!(&pk, sk.public_key());
        let (enc, ct) = seal(&pk, b"info", b"aad", b"a key share").unwrap();
        assert_eq!(enc.len(), KEY_LEN);
        assert_eq!(ct.len(), b"a key share".len() + TAG_LEN);
        let pt = open(&sk, &enc, b"info", b"aad", &ct).unwrap();
        assert_eq!(pt.as_slice(), b"a key share");

        let (enc, ct) = seal_with(Aead::Aes128Gcm, &pk, b"", b"", b"").unwrap();
        let pt = open_with(Aead::Aes128Gcm, &sk, &enc, b"", b"", &ct).unwrap();
        assert!(pt.is_empty());
        // The AEAD is part of the suite: the other one cannot open it.
        assert_eq!(
            open_with(Aead::Aes256Gcm, &sk, &enc, b"", b"", &ct),
            Err(HpkeError::Open)
        );
    }

    #[test]
    fn every_fresh_seal_differs() {
        let (_, pk) = generate_keypair().unwrap();
        let a = seal(&pk, b"i", b"a", b"same").unwrap();
        let b = seal(&pk, b"i", b"a", b"same").unwrap();
        assert_ne!(a.0, b.0);
        assert_ne!(a.1, b.1);
    }

    #[test]
    fn wrong_key_info_aad_or_tampering_fails() {
        let (sk, pk) = generate_keypair().unwrap();
        let (other, _) = generate_keypair().unwrap();
        let (enc, ct) = seal(&pk, b"info", b"aad", b"secret").unwrap();
        assert_eq!(
            open(&other, &enc, b"info", b"aad", &ct),
            Err(HpkeError::Open)
        );
        assert_eq!(open(&sk, &enc, b"inf0", b"aad", &ct), Err(HpkeError::Open));
        assert_eq!(open(&sk, &enc, b"info", b"aaD", &ct), Err(HpkeError::Open));
        for i in 0..ct.len() {
            let mut bad = ct.clone();
            bad[i] ^= 0x01;
            assert_eq!(open(&sk, &enc, b"info", b"aad", &bad), Err(HpkeError::Open));
        }
        for i in 0..enc.len() {
            let mut bad = enc.clone();
            bad[i] ^= 0x01;
            assert!(
                open(&sk, &bad, b"info", b"aad", &ct).is_err(),
                "enc byte {i}"
            );
        }
        assert_eq!(
            open(&sk, &enc, b"info", b"aad", &ct[..ct.len() - 1]),
            Err(HpkeError::Open)
        );
        assert_eq!(
            open(&sk, &enc, b"info", b"aad", &ct[..TAG_LEN - 1]),
            Err(HpkeError::Open)
        );
        assert_eq!(
            open(&sk, &enc[..31], b"info", b"aad", &ct),
            Err(HpkeError::EncLength(31))
        );
    }

    /// Low-order X25519 points (and non-canonical encodings of them): the agreement
    /// output is all zeros whatever the scalar.
    const LOW_ORDER: [&str; 7] = [
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ];

    #[test]
    fn low_order_points_are_refused() {
        let (sk, pk) = generate_keypair().unwrap();
        let (_, ct) = seal(&pk, b"", b"", b"x").unwrap();
        for point in LOW_ORDER {
            assert_eq!(
                HpkePublicKey::from_bytes(&h(point)),
                Err(HpkeError::LowOrderPoint),
                "{point}"
            );
            // As an encapsulated key too.
            assert_eq!(
                open(&sk, &h(point), b"", b"", &ct),
                Err(HpkeError::LowOrderPoint),
                "{point}"
            );
        }
    }

    #[test]
    fn public_key_parsing() {
        let (_, pk) = generate_keypair().unwrap();
        assert_eq!(HpkePublicKey::from_bytes(pk.as_bytes()), Ok(pk.clone()));
        assert_eq!(
            HpkePublicKey::from_bytes(&pk.as_bytes()[..31]),
            Err(HpkeError::PublicKeyLength(31))
        );
        assert_eq!(
            HpkePublicKey::from_bytes(&[7; 33]),
            Err(HpkeError::PublicKeyLength(33))
        );
    }

    #[test]
    fn private_key_debug_is_redacted() {
        let (sk, pk) = generate_keypair().unwrap();
        let shown = format!("{sk:?}");
        assert_eq!(shown, "HpkePrivateKey(<redacted>)");
        assert!(!shown.contains(&hex::encode(sk.secret)));
        assert!(format!("{pk:?}").contains(&hex::encode(pk.as_bytes())));
    }
}
