//! Arbitrary bytes through the Confidential Space parser (a token as the launcher returns
//! it, or a bundle as a node sends it) and, when they parse, the verifier. Neither may
//! panic, whatever the input.
#![no_main]

use attestation::Evidence;
use attestation::gcp::{CsEvidence, TrustPolicy, Verifier};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, UNIX_EPOCH};

/// 2025-01-01T00:00:00Z: before the real tokens' leaves, so their certificates fail as
/// not yet valid unless the token is checked at its own time too (below).
const FIXED_TIME: Duration = Duration::from_secs(1_735_689_600);

fuzz_target!(|data: &[u8]| {
    // As a peer's bytes arrive: told apart by content, then parsed.
    let _ = Evidence::parse(data);
    let Ok(evidence) = CsEvidence::parse(data) else {
        return;
    };
    let verifier = Verifier::google();
    let _ = verifier.verify_evidence(evidence.clone(), UNIX_EPOCH + FIXED_TIME);
    // At the token's own `iat` a mutated real token gets past the validity checks and
    // into the signature check; one that still verifies goes on to the policy.
    let Some(own) = UNIX_EPOCH.checked_add(evidence.token().claims().issued_at()) else {
        return;
    };
    if let Ok(verified) = verifier.verify_evidence(evidence, own) {
        let _ = TrustPolicy::without_measurement_checks()
            .allow_debug(true)
            .check(&verified, own);
    }
});
