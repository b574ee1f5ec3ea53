//! Arbitrary bytes as a sealed blob read back from the parent, which may have written
//! anything there. Opening may not panic, and may succeed only for a blob this key
//! sealed under this name, node and store; a blob sealed from the input round-trips.
#![no_main]

use enclave::sealed::{BlobPlace, DataKey, StoreId, open, seal};
use libfuzzer_sys::fuzz_target;

fn place<'a>(node_id: &'a str, store: &'a StoreId, name: &'a str) -> BlobPlace<'a> {
    BlobPlace {
        node_id,
        store,
        name,
    }
}

fuzz_target!(|data: &[u8]| {
    let key = DataKey::from_bytes(&[7; 32]);
    let store = StoreId::from_bytes([9; 16]);
    let here = place("node-1", &store, "share");
    // Random bytes authenticate with probability 2^-128: treat success as a finding.
    assert!(open(&key, &here, data).is_err());

    let counter = data.len() as u64;
    let blob = seal(&key, &here, counter, data).expect("seals");
    let (found, plaintext) = open(&key, &here, &blob).expect("opens");
    assert_eq!(found, counter);
    assert_eq!(plaintext.as_slice(), data);
    assert!(open(&key, &place("node-1", &store, "other"), &blob).is_err());
    assert!(open(&key, &place("node-2", &store, "share"), &blob).is_err());
    let earlier = StoreId::from_bytes([8; 16]);
    assert!(open(&key, &place("node-1", &earlier, "share"), &blob).is_err());
});
