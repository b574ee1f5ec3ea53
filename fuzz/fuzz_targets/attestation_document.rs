//! Arbitrary bytes through the document parser and, when they parse, the verifier.
//! Neither may panic, whatever the input.
#![no_main]

use attestation::nitro::{NitroDocument, Verifier};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, UNIX_EPOCH};

/// 2023-01-01T00:00:00Z: inside no real chain's window, so certificates fail as expired
/// or not yet valid unless the document is checked at its own time too (below).
const FIXED_TIME: Duration = Duration::from_secs(1_672_531_200);

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = NitroDocument::parse(data) else {
        return;
    };
    let verifier = Verifier::aws_nitro();
    let _ = verifier.verify_document(doc.clone(), UNIX_EPOCH + FIXED_TIME);
    // At the document's own timestamp a mutated real document gets past the validity
    // checks and into the signature checks.
    if let Some(own) = UNIX_EPOCH.checked_add(Duration::from_millis(doc.timestamp_ms())) {
        let _ = verifier.verify_document(doc, own);
    }
});
