//! Arbitrary bytes through the input decoder (raw, hex or base64) and then the document
//! parser. Neither may panic, whatever the input.
#![no_main]

use attestation::input::decode;
use attestation::nitro::NitroDocument;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bytes) = decode(data) {
        let _ = NitroDocument::parse(&bytes);
    }
});
