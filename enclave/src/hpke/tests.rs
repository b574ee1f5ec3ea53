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
    assert_eq!(
        hex::encode::<&[u8]>(shared_secret.as_ref()),
        v.shared_secret
    );
    let schedule = key_schedule(v.aead, &shared_secret, &h(INFO)).unwrap();
    assert_eq!(hex::encode(schedule.key.as_slice()), v.key);
    assert_eq!(hex::encode(schedule.base_nonce), v.base_nonce);
    assert_eq!(
        hex::encode::<&[u8]>(schedule.exporter_secret.as_ref()),
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
