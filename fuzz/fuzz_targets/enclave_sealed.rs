//! Arbitrary bytes as a sealed blob read back from the parent, which may have written
//! anything there. Opening may not panic, and may succeed only for a blob this key
//! sealed under this name and node; a blob sealed from the input round-trips.
#![no_main]

use enclave::sealed::{DataKey, open, seal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = DataKey::from_bytes(&[7; 32]);
    // Random bytes authenticate with probability 2^-128: treat success as a finding.
    assert!(open(&key, "node-1", "share", data).is_err());

    let counter = data.len() as u64;
    let blob = seal(&key, "node-1", "share", counter, data).expect("seals");
    let (found, plaintext) = open(&key, "node-1", "share", &blob).expect("opens");
    assert_eq!(found, counter);
    assert_eq!(plaintext.as_slice(), data);
    assert!(open(&key, "node-1", "other", &blob).is_err());
    assert!(open(&key, "node-2", "share", &blob).is_err());
});
