//! Arbitrary bytes as an HPKE encapsulated key and ciphertext from a peer (a released
//! data key). Opening may not panic and may not succeed; a message sealed from the
//! input round-trips.
#![no_main]

use enclave::hpke::{HpkePrivateKey, HpkePublicKey, generate_keypair, open, seal};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn recipient() -> &'static (HpkePrivateKey, HpkePublicKey) {
    static KEYS: OnceLock<(HpkePrivateKey, HpkePublicKey)> = OnceLock::new();
    KEYS.get_or_init(|| generate_keypair().expect("key pair"))
}

fuzz_target!(|data: &[u8]| {
    let (secret, public) = recipient();
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let (enc, ciphertext) = data.split_at(split);
    assert!(open(secret, enc, b"info", b"aad", ciphertext).is_err());
    // Any 32 bytes as a public key: refused or usable, never a panic.
    if let Some(bytes) = data.get(..32) {
        let _ = HpkePublicKey::from_bytes(bytes);
    }

    let (enc, ciphertext) = seal(public, b"info", b"aad", data).expect("seals");
    let plaintext = open(secret, &enc, b"info", b"aad", &ciphertext).expect("opens");
    assert_eq!(plaintext.as_slice(), data);
    assert!(open(secret, &enc, b"other info", b"aad", &ciphertext).is_err());
});
