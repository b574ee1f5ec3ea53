//! Full verification of a real Nitro attestation document next to the raw cost of the
//! P-384 signature checks it performs, measured interleaved in one run.
//!
//! `cargo bench -p attestation --bench verify` runs the full measurement. `BENCH_QUICK=1`,
//! `--quick`, or a run without `--bench` (such as `cargo test --benches`) runs a short
//! smoke version. Each batch checks that every call succeeded, so a failing fast path
//! cannot be timed by mistake.
//!
//! The document is the first non-debug one in `../shared/fixtures/nitro/valid` (sorted by
//! name), verified at its own timestamp. Without that folder, or with `BENCH_SIM=1`, it
//! is a document from the simulated NSM (feature `sim`), whose chain is shorter than a
//! real one (root, one intermediate, leaf); without either the bench says so and stops.

use attestation::nitro::bench_support::{SignatureCheck, signature_checks};
use attestation::nitro::{NitroDocument, Verifier};
use attestation::time_fmt::rfc3339_ms;
use aws_lc_rs::signature::UnparsedPublicKey;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;
use common::{
    Check, Settings, TARGET_RATIO, iterations, max, median, micros, min, per_op, quartiles,
    succeeded, time_raw,
};

/// A document that verifies, with the verifier that accepts it, the time it is checked
/// at and the inputs of the signature checks that verification performs.
struct Sample {
    name: String,
    bytes: Vec<u8>,
    verifier: Verifier,
    at: SystemTime,
    checks: Vec<SignatureCheck>,
}

fn main() -> ExitCode {
    let settings = Settings::from_env();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/nitro/valid");
    let force_sim = std::env::var_os("BENCH_SIM").is_some_and(|v| v != "0");
    let sample = if force_sim {
        Ok(None)
    } else {
        find_sample(&dir)
    };
    let sample = match sample {
        Ok(None) => {
            if !force_sim {
                println!(
                    "no real non-debug Nitro document in {}: trying a simulated one",
                    dir.display()
                );
            }
            simulated_sample()
        }
        found => found,
    };
    let sample = match sample {
        Ok(Some(sample)) => sample,
        Ok(None) => {
            println!("SKIPPED verify bench: no document to measure (feature `sim` is off)");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("verify bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(&sample, &settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("verify bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The first non-debug document in `dir` that verifies at its own timestamp, or `None`
/// when the folder is absent or holds none.
fn find_sample(dir: &Path) -> Result<Option<Sample>, String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(None);
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cose"))
        .collect();
    paths.sort();
    for path in paths {
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let Ok(doc) = NitroDocument::parse(&bytes) else {
            continue;
        };
        if doc.is_debug_mode() {
            continue;
        }
        let at = UNIX_EPOCH + Duration::from_millis(doc.timestamp_ms());
        if Verifier::aws_nitro().verify(&bytes, at).is_err() {
            continue;
        }
        let checks = signature_checks(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        return Ok(Some(Sample {
            name,
            bytes,
            verifier: Verifier::aws_nitro(),
            at,
            checks,
        }));
    }
    Ok(None)
}

/// A fresh document from the simulated NSM, checked now against its root.
#[cfg(feature = "sim")]
fn simulated_sample() -> Result<Option<Sample>, String> {
    use attestation::nsm::AttestationRequest;
    use attestation::nsm::sim::{SimCa, SimMeasurements, SimNsm};

    let at = SystemTime::now();
    let ca = SimCa::generate(at).map_err(|e| e.to_string())?;
    let nsm = SimNsm::new(&ca, &SimMeasurements::of_image(b"verify bench"), at)
        .map_err(|e| e.to_string())?;
    let request = AttestationRequest {
        user_data: Some(vec![7; 32]),
        nonce: Some(vec![9; 32]),
        public_key: Some(vec![4; 97]),
    };
    let bytes = nsm.attest_at(&request, at).map_err(|e| e.to_string())?;
    let verifier = Verifier::aws_nitro()
        .trust_simulated_root(ca.root_der(), at)
        .map_err(|e| e.to_string())?;
    verifier
        .verify(&bytes, at)
        .map_err(|e| format!("simulated document: {e}"))?;
    let checks = signature_checks(&bytes).map_err(|e| e.to_string())?;
    Ok(Some(Sample {
        name: "simulated NSM document".to_owned(),
        bytes,
        verifier,
        at,
        checks,
    }))
}

#[cfg(not(feature = "sim"))]
fn simulated_sample() -> Result<Option<Sample>, String> {
    Ok(None)
}

fn run(sample: &Sample, settings: &Settings) -> Result<(), String> {
    let checks = &sample.checks;
    let verify = |n: usize| time_verify(&sample.verifier, &sample.bytes, sample.at, n);
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
    let certificates = checks.len().saturating_sub(1);
    println!(
        "document: {} ({} bytes, {} certificates after the root, verified at {})",
        sample.name,
        sample.bytes.len(),
        certificates,
        rfc3339_ms(millis_since_epoch(sample.at)),
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
        "verify:                 median {verify_med:9.1} us/op  (min {:.1}, max {:.1})",
        min(&verify_us),
        max(&verify_us)
    );
    println!(
        "signature checks ({}):   median {raw_med:9.1} us/op  (min {:.1}, max {:.1})",
        checks.len(),
        min(&raw_us),
        max(&raw_us)
    );
    println!(
        "  of verify, parsing the document: {parse_med:.1} us; everything else: {:.1} us",
        verify_med - raw_med - parse_med
    );
    println!(
        "verify/raw-signature ratio: {ratio:.2} (verify {verify_med:.1} us, {} signature checks {raw_med:.1} us); \
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

/// Full verification `n` times; the time per call.
fn time_verify(
    verifier: &Verifier,
    bytes: &[u8],
    at: SystemTime,
    n: usize,
) -> Result<Duration, String> {
    let start = Instant::now();
    let mut ok = 0usize;
    for _ in 0..n {
        ok += usize::from(verifier.verify(black_box(bytes), black_box(at)).is_ok());
    }
    let elapsed = start.elapsed();
    succeeded("verify", ok, n)?;
    Ok(per_op(elapsed, n))
}

/// Decoding the document alone, `n` times; the time per call.
fn time_parse(bytes: &[u8], n: usize) -> Result<Duration, String> {
    let start = Instant::now();
    let mut ok = 0usize;
    for _ in 0..n {
        ok += usize::from(NitroDocument::parse(black_box(bytes)).is_ok());
    }
    let elapsed = start.elapsed();
    succeeded("parse", ok, n)?;
    Ok(per_op(elapsed, n))
}

fn millis_since_epoch(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Check for SignatureCheck {
    fn holds(&self) -> bool {
        UnparsedPublicKey::new(self.algorithm, black_box(self.public_key.as_slice()))
            .verify(black_box(&self.message), black_box(&self.signature))
            .is_ok()
    }
}
