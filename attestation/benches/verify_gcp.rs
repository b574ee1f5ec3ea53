//! Full verification of a real Confidential Space token (parse, chain, JWS, claims) next
//! to the raw cost of the RSA signature checks it performs, measured interleaved in one
//! run.
//!
//! `cargo bench -p attestation --bench verify_gcp` runs the full measurement.
//! `BENCH_QUICK=1`, `--quick`, or a run without `--bench` (such as `cargo test --benches`)
//! runs a short smoke version. Each batch checks that every call succeeded, so a failing
//! fast path cannot be timed by mistake.
//!
//! The token is Google's in `../shared/fixtures/gcp-cs/valid` (a debug image, so the
//! policy allows debug), checked a minute after it was issued. Without that folder, or
//! with `BENCH_SIM=1`, it is a bundle from the simulated attester (feature `sim`), whose
//! chain has the same shape but RSA-2048 keys throughout (Google's root and intermediate
//! are RSA-4096); without either the bench says so and stops.
//!
//! - verify: `gcp::Verifier::verify` on the token's bytes (parse: base64url, JSON, the
//!   three `x5c` certificates; root pin; chain: validity, constraints, two RSA
//!   signatures; the RS256 signature) then `TrustPolicy::check` with a measurement set
//!   pinning the token's image and instance, its audience and its nonce.
//! - raw: the same three RSA PKCS #1 v1.5 SHA-256 checks with aws-lc-rs, on keys,
//!   messages and signatures extracted beforehand: the root's key over the
//!   intermediate's TBS bytes, the intermediate's over the leaf's, the leaf's over the
//!   JWS signing input.

use attestation::gcp::bench_support::{SignatureCheck, signature_checks};
use attestation::gcp::{CsEvidence, MeasurementSet, TrustPolicy, Verifier};
use attestation::time_fmt::rfc3339;
use aws_lc_rs::signature::UnparsedPublicKey;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;
use common::{
    Check, Settings, TARGET_RATIO, iterations, max, median, micros, min, per_op, quartiles,
    succeeded, time_raw,
};

/// The real token, under the fixtures folder.
const TOKEN: &str = "valid/oak_testdata_valid_sev_debug_20250623.jwt";

/// A token that verifies, the verifier and policy that accept it, the time it is checked
/// at and the inputs of the signature checks that verification performs.
struct Sample {
    name: String,
    bytes: Vec<u8>,
    verifier: Verifier,
    policy: TrustPolicy,
    at: SystemTime,
    checks: Vec<SignatureCheck>,
}

fn main() -> ExitCode {
    let settings = Settings::from_env();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/gcp-cs")
        .join(TOKEN);
    let force_sim = std::env::var_os("BENCH_SIM").is_some_and(|v| v != "0");
    let real = if force_sim {
        None
    } else {
        std::fs::read(&path).ok()
    };
    let sample = match real {
        Some(bytes) => {
            let name = path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            real_sample(name, bytes).map(Some)
        }
        None => {
            if !force_sim {
                println!(
                    "no real Confidential Space token at {}: trying a simulated one",
                    path.display()
                );
            }
            simulated_sample()
        }
    };
    let outcome = match sample {
        Ok(Some(sample)) => run(&sample, &settings),
        Ok(None) => {
            println!("SKIPPED verify_gcp bench: no token to measure (feature `sim` is off)");
            return ExitCode::SUCCESS;
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("verify_gcp bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Google's token, checked a minute after its `iat` with Google's root pinned.
fn real_sample(name: String, bytes: Vec<u8>) -> Result<Sample, String> {
    let evidence = CsEvidence::parse(&bytes).map_err(|e| format!("{name}: {e}"))?;
    let at = UNIX_EPOCH + evidence.token().claims().issued_at() + Duration::from_secs(60);
    let policy = policy_for(&evidence, true)?;
    sample(name, bytes, Verifier::google(), policy, at)
}

/// A fresh bundle from the simulated attester, checked now against its root.
#[cfg(feature = "sim")]
fn simulated_sample() -> Result<Option<Sample>, String> {
    use attestation::AttestationRequest;
    use attestation::gcp::sim::{SimCsAttester, SimCsCa, SimWorkload};

    let at = SystemTime::now();
    let ca = SimCsCa::new(at).map_err(|e| e.to_string())?;
    let workload = SimWorkload::of_image(b"verify bench", "node-1");
    let attester = SimCsAttester::new(&ca, workload, at).map_err(|e| e.to_string())?;
    let request = AttestationRequest {
        user_data: Some(vec![7; 32]),
        nonce: Some(vec![9; 32]),
        public_key: Some(vec![4; 91]),
    };
    let bytes = attester
        .attest_at(&request, at)
        .map_err(|e| e.to_string())?;
    let verifier = Verifier::google()
        .trust_simulated_root(ca.root_der(), at)
        .map_err(|e| e.to_string())?;
    let evidence = CsEvidence::parse(&bytes).map_err(|e| e.to_string())?;
    let policy = policy_for(&evidence, false)?;
    sample(
        "simulated attester's bundle".to_owned(),
        bytes,
        verifier,
        policy,
        at,
    )
    .map(Some)
}

#[cfg(not(feature = "sim"))]
fn simulated_sample() -> Result<Option<Sample>, String> {
    Ok(None)
}

/// The policy a node would apply to this token's sender: its image and instance pinned,
/// its audience and its (first) nonce expected.
fn policy_for(evidence: &CsEvidence, allow_debug: bool) -> Result<TrustPolicy, String> {
    let claims = evidence.token().claims();
    let entries = [
        ("image_digest", &claims.image_digest),
        ("project_id", &claims.project_id),
        ("zone", &claims.zone),
        ("instance_id", &claims.instance_id),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.clone().map(|v| (k.to_owned(), v)))
    .collect();
    let set = MeasurementSet::from_entries(entries).map_err(|e| e.to_string())?;
    let mut policy = TrustPolicy::new(vec![set])
        .map_err(|e| e.to_string())?
        .allow_debug(allow_debug);
    if let Some(aud) = &claims.aud {
        policy = policy.expect_audience(aud.clone());
    }
    if let Some(nonce) = evidence.binding().nonce {
        policy = policy.expect_nonce(nonce.to_vec());
    }
    Ok(policy)
}

/// Checks that the whole path accepts the token, and extracts the signature checks.
fn sample(
    name: String,
    bytes: Vec<u8>,
    verifier: Verifier,
    policy: TrustPolicy,
    at: SystemTime,
) -> Result<Sample, String> {
    let verified = verifier
        .verify(&bytes, at)
        .map_err(|e| format!("{name}: {e}"))?;
    policy
        .check(&verified, at)
        .map_err(|e| format!("{name}: {e}"))?;
    let checks = signature_checks(&bytes).map_err(|e| format!("{name}: {e}"))?;
    Ok(Sample {
        name,
        bytes,
        verifier,
        policy,
        at,
        checks,
    })
}

fn run(sample: &Sample, settings: &Settings) -> Result<(), String> {
    let checks = &sample.checks;
    let verify = |n: usize| time_verify(sample, n);
    let raw = |n: usize| time_raw(checks, n);
    let parse = |n: usize| time_parse(&sample.bytes, n);

    // Warm up, then size batches so that one verify batch takes about `batch_time`.
    let warm_until = Instant::now() + settings.warmup;
    let mut rounds = 0usize;
    while Instant::now() < warm_until {
        verify(1)?;
        raw(1)?;
        parse(1)?;
        rounds += 1;
    }
    let per_verify = verify(rounds.clamp(1, 50))?;
    let per_parse = parse(rounds.clamp(1, 50) * 10)?;
    let n = iterations(settings.batch_time, per_verify);
    let n_parse = iterations(settings.batch_time / 4, per_parse);

    let mut verify_us = Vec::with_capacity(settings.batches);
    let mut raw_us = Vec::with_capacity(settings.batches);
    let mut parse_us = Vec::with_capacity(settings.batches);
    let mut ratios = Vec::with_capacity(settings.batches);
    for batch in 0..settings.batches {
        // Alternate the order so that drift (frequency scaling, neighbours) is shared.
        let (v, r) = if batch % 2 == 0 {
            let v = verify(n)?;
            (v, raw(n)?)
        } else {
            let r = raw(n)?;
            (verify(n)?, r)
        };
        parse_us.push(micros(parse(n_parse)?));
        verify_us.push(micros(v));
        raw_us.push(micros(r));
        ratios.push(micros(v) / micros(r));
    }

    let verify_med = median(&mut verify_us);
    let raw_med = median(&mut raw_us);
    let parse_med = median(&mut parse_us);
    let ratio = verify_med / raw_med;
    let (ratio_lo, ratio_hi) = quartiles(&mut ratios);
    println!(
        "evidence: {} ({} bytes, {} certificates below the root, checked at {})",
        sample.name,
        sample.bytes.len(),
        checks.len().saturating_sub(1),
        rfc3339(sample.at.duration_since(UNIX_EPOCH).unwrap_or_default()),
    );
    println!(
        "batches: {} x {n} iterations per measurement, interleaved",
        settings.batches
    );
    if cfg!(debug_assertions) {
        println!("unoptimized build: the figures below are not representative");
    }
    if settings.quick {
        println!("quick run: the figures below are indicative only");
    }
    println!(
        "verify + policy:        median {verify_med:9.1} us/op  (min {:.1}, max {:.1})",
        min(&verify_us),
        max(&verify_us)
    );
    println!(
        "RSA checks ({}):         median {raw_med:9.1} us/op  (min {:.1}, max {:.1})",
        checks.len(),
        min(&raw_us),
        max(&raw_us)
    );
    println!(
        "  of verify, parsing the token: {parse_med:.1} us; everything else: {:.1} us",
        verify_med - raw_med - parse_med
    );
    println!(
        "verify/raw-signature ratio: {ratio:.2} (verify {verify_med:.1} us, {} RSA checks {raw_med:.1} us); \
         per-batch ratio p25..p75 {ratio_lo:.2}..{ratio_hi:.2}; target <= {TARGET_RATIO}: {}",
        checks.len(),
        if ratio <= TARGET_RATIO {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

/// Verification and policy `n` times; the time per call.
fn time_verify(sample: &Sample, n: usize) -> Result<Duration, String> {
    let start = Instant::now();
    let mut ok = 0usize;
    for _ in 0..n {
        let accepted = sample
            .verifier
            .verify(black_box(&sample.bytes), black_box(sample.at))
            .is_ok_and(|verified| sample.policy.check(&verified, sample.at).is_ok());
        ok += usize::from(accepted);
    }
    let elapsed = start.elapsed();
    succeeded("verify", ok, n)?;
    Ok(per_op(elapsed, n))
}

/// Decoding the token alone, `n` times; the time per call.
fn time_parse(bytes: &[u8], n: usize) -> Result<Duration, String> {
    let start = Instant::now();
    let mut ok = 0usize;
    for _ in 0..n {
        ok += usize::from(CsEvidence::parse(black_box(bytes)).is_ok());
    }
    let elapsed = start.elapsed();
    succeeded("parse", ok, n)?;
    Ok(per_op(elapsed, n))
}

impl Check for SignatureCheck {
    fn holds(&self) -> bool {
        UnparsedPublicKey::new(self.algorithm, black_box(self.public_key.as_slice()))
            .verify(black_box(&self.message), black_box(&self.signature))
            .is_ok()
    }
}
