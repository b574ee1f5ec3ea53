//! The `attest` binary on Google Cloud Confidential Space tokens, run as a user would:
//! Google's real tokens (`../shared/fixtures/gcp-cs`) at fixed times, tampered and
//! oversized ones, the options that state expectations, and the JSON it prints.
// Test code: a failed expectation should stop the test with a message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../../attestation/tests/common/mod.rs"]
mod common;
mod support;

use attestation::gcp::{GOOGLE_CS_ROOT_SHA256, MAX_BUNDLE_LEN, MAX_TOKEN_LEN};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{GCP_VALID_IAT, gcp_fixtures};
use serde_json::Value;
use support::{TempDir, attest, code, json, stderr, stdout};

/// Inside the valid token's lifetime (it was issued at 14:22:31 and expires an hour
/// later) and its leaf's validity.
const VALID_AT: &str = "2025-06-23T14:30:00Z";
const DIGEST: &str = "sha256:313b8a83d3c8bfc9abcffee4f538424473e2705383a7e46f16d159faf0e5ef34";
const INSTANCE_ID: &str = "6256007950053693934";
const EAT_NONCE: &str = "a nonce between 10 and 74 characters";

/// The real tokens' paths: valid (debug image), bad signature, self-signed.
struct Paths {
    valid: String,
    bad_signature: String,
    self_signed: String,
}

fn paths() -> Option<Paths> {
    let dir = gcp_fixtures()?;
    let path = |p: &str| dir.join(p).to_str().unwrap().to_owned();
    Some(Paths {
        valid: path("valid/oak_testdata_valid_sev_debug_20250623.jwt"),
        bad_signature: path("invalid/oak_testdata_invalid_signature_20250623.jwt"),
        self_signed: path("invalid/oak_confidential_space_valid_selfsigned.jwt"),
    })
}

fn verify_args<'a>(file: &'a str, at: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["verify", file, "--at", at];
    args.extend_from_slice(extra);
    args
}

#[test]
fn the_real_token_verifies_at_its_time_with_debug_allowed() {
    let Some(p) = paths() else { return };
    let out = attest(&verify_args(&p.valid, VALID_AT, &["--allow-debug"]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let summary = stdout(&out);
    assert!(summary.starts_with("valid: gcp-cs instance "), "{summary}");
    for part in [
        INSTANCE_ID,
        "oak-session-echo-debug",
        "oak-ci",
        "us-west1-b",
        DIGEST,
        "issued 2025-06-23T14:22:31Z",
        "expires 2025-06-23T15:22:31Z",
        "dbgstat enabled",
        "not checked",
    ] {
        assert!(summary.contains(part), "{part}: {summary}");
    }
}

#[test]
fn the_debug_token_is_refused_by_policy_without_allow_debug() {
    let Some(p) = paths() else { return };
    let out = attest(&verify_args(&p.valid, VALID_AT, &[]));
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(err.starts_with("invalid: "), "{err}");
    assert!(err.contains("dbgstat"), "{err}");
    assert!(out.stdout.is_empty());

    let out = attest(&verify_args(&p.valid, VALID_AT, &["--json"]));
    assert_eq!(code(&out), 1);
    let v = json(&out);
    assert_eq!(v["valid"], false);
    assert_eq!(v["stage"], "policy");
    assert_eq!(v["provider"], "gcp-cs");
    assert!(v["error"].as_str().unwrap().contains("dbgstat"), "{v}");
    assert_eq!(v["instance_id"], INSTANCE_ID);
}

#[test]
fn the_real_token_is_expired_today() {
    let Some(p) = paths() else { return };
    let out = attest(&verify_args(&p.valid, "now", &["--allow-debug"]));
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(err.starts_with("invalid: "), "{err}");
    assert!(err.contains("expired"), "{err}");

    let out = attest(&verify_args(&p.valid, "now", &["--allow-debug", "--json"]));
    assert_eq!(code(&out), 1);
    let v = json(&out);
    // Its leaf certificate expired long before today.
    assert_eq!(v["stage"], "verify");
    assert!(v["error"].as_str().unwrap().contains("expired"), "{v}");
}

#[test]
fn token_times_are_checked_at_the_given_time() {
    let Some(p) = paths() else { return };
    // After `exp`, inside the leaf's validity: the token itself has expired.
    let out = attest(&verify_args(
        &p.valid,
        "2025-06-23T16:00:00Z",
        &["--allow-debug", "--json"],
    ));
    assert_eq!(code(&out), 1);
    let v = json(&out);
    assert_eq!(v["stage"], "policy");
    let err = v["error"].as_str().unwrap();
    assert!(err.contains("expired at 2025-06-23T15:22:31Z"), "{err}");

    // Before `nbf` (and `iat`), beyond the allowed clock skew.
    let out = attest(&verify_args(
        &p.valid,
        "2025-06-23T14:00:00Z",
        &["--allow-debug", "--json"],
    ));
    assert_eq!(code(&out), 1);
    let v = json(&out);
    assert_eq!(v["stage"], "policy");
    assert!(
        v["error"].as_str().unwrap().contains("not valid before"),
        "{v}"
    );

    // No age limit unless asked for; then from `iat`.
    let out = attest(&verify_args(
        &p.valid,
        VALID_AT,
        &["--allow-debug", "--max-age", "600"],
    ));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = attest(&verify_args(
        &p.valid,
        VALID_AT,
        &["--allow-debug", "--max-age", "60"],
    ));
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("old"), "{}", stderr(&out));
}

#[test]
fn the_forged_token_fails_verification() {
    let Some(p) = paths() else { return };
    let out = attest(&verify_args(&p.bad_signature, VALID_AT, &["--allow-debug"]));
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("signature"), "{}", stderr(&out));

    let out = attest(&verify_args(
        &p.bad_signature,
        VALID_AT,
        &["--allow-debug", "--json"],
    ));
    assert_eq!(code(&out), 1);
    let v = json(&out);
    assert_eq!(v["stage"], "verify");
    assert!(
        v["error"].as_str().unwrap().contains("JWS signature"),
        "{v}"
    );
}

#[test]
fn the_self_signed_token_fails_verification() {
    let Some(p) = paths() else { return };
    for at in [VALID_AT, "now"] {
        let out = attest(&verify_args(
            &p.self_signed,
            at,
            &["--allow-debug", "--json"],
        ));
        assert_eq!(code(&out), 1);
        let v = json(&out);
        assert_eq!(v["valid"], false);
        assert_eq!(v["stage"], "verify");
        assert!(
            v["error"].as_str().unwrap().contains("not a trusted root"),
            "{v}"
        );
        assert_eq!(v["chain"].as_array().unwrap().len(), 1);
    }
}

#[test]
fn claims_an_attacker_changes_break_the_signature() {
    let Some(p) = paths() else { return };
    let token = std::fs::read_to_string(&p.valid).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let claims = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let tmp = TempDir::new("tampered");
    for (from, to) in [
        (
            r#""dbgstat":"enabled""#,
            r#""dbgstat":"disabled-since-boot""#,
        ),
        (INSTANCE_ID, "6256007950053693935"),
        ("GCP_AMD_SEV", "GCP_INTEL_TDX"),
        ("1750692151", "1850692151"),
    ] {
        assert!(claims.contains(from), "{from}");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(claims.replace(from, to)),
            parts[2]
        );
        let file = tmp.write("forged.jwt", forged);
        let out = attest(&[
            "verify",
            file.to_str().unwrap(),
            "--at",
            VALID_AT,
            "--allow-debug",
            "--json",
        ]);
        assert_eq!(code(&out), 1, "{to}");
        let v = json(&out);
        assert_eq!(v["stage"], "verify", "{to}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains("JWS signature"),
            "{v}"
        );
    }
}

#[test]
fn expected_claims_are_checked() {
    let Some(p) = paths() else { return };
    let ok = |extra: &[&str]| {
        let args = [
            &verify_args(&p.valid, VALID_AT, &["--allow-debug"])[..],
            extra,
        ]
        .concat();
        let out = attest(&args);
        assert_eq!(code(&out), 0, "{extra:?}: {}", stderr(&out));
        stdout(&out)
    };
    let summary = ok(&[
        "--image-digest",
        DIGEST,
        "--project-id",
        "oak-ci",
        "--zone",
        "us-west1-b",
        "--instance-id",
        INSTANCE_ID,
        "--hwmodel",
        "GCP_AMD_SEV",
        "--audience",
        "https://echo.oak.dev",
    ]);
    assert!(!summary.contains("not checked"), "{summary}");
    ok(&["--instance-id", INSTANCE_ID]);
    ok(&["--nonce", &hex::encode(EAT_NONCE)]);

    let other_digest = DIGEST.replace("313b", "413b");
    for (extra, named) in [
        (vec!["--image-digest", &other_digest], "image_digest"),
        (vec!["--project-id", "other-project"], "project_id"),
        (vec!["--zone", "europe-west2-a"], "zone"),
        (vec!["--instance-id", "1"], "instance_id"),
        (vec!["--hwmodel", "GCP_INTEL_TDX"], "hwmodel"),
        (
            vec!["--image-digest", DIGEST, "--instance-id", "1"],
            "instance_id",
        ),
        (vec!["--audience", "tee-custody"], "aud"),
        (vec!["--nonce", &hex::encode("another nonce")], "nonce"),
    ] {
        let args = [
            &verify_args(&p.valid, VALID_AT, &["--allow-debug", "--json"])[..],
            &extra,
        ]
        .concat();
        let out = attest(&args);
        assert_eq!(code(&out), 1, "{extra:?}");
        let v = json(&out);
        assert_eq!(v["stage"], "policy", "{extra:?}: {v}");
        let err = v["error"].as_str().unwrap();
        assert!(err.contains(named), "{extra:?}: {err}");
    }
}

#[test]
fn json_output_reports_the_token() {
    let Some(p) = paths() else { return };
    let out = attest(&verify_args(
        &p.valid,
        VALID_AT,
        &["--allow-debug", "--json"],
    ));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["valid"], true);
    assert_eq!(v["error"], Value::Null);
    assert_eq!(v["stage"], Value::Null);
    assert_eq!(v["provider"], "gcp-cs");
    assert_eq!(stdout(&out).matches("\"provider\"").count(), 1);
    assert_eq!(v["form"], "token");
    assert_eq!(v["alg"], "RS256");
    assert_eq!(v["iss"], "https://confidentialcomputing.googleapis.com");
    assert_eq!(v["aud"], "https://echo.oak.dev");
    assert_eq!(v["iat"], GCP_VALID_IAT);
    assert_eq!(v["exp"], GCP_VALID_IAT + 3600);
    assert_eq!(v["nbf"], GCP_VALID_IAT);
    assert_eq!(v["issued_at"], "2025-06-23T14:22:31Z");
    assert_eq!(v["expires_at"], "2025-06-23T15:22:31Z");
    assert_eq!(v["hwmodel"], "GCP_AMD_SEV");
    assert_eq!(v["swname"], "CONFIDENTIAL_SPACE");
    assert_eq!(v["dbgstat"], "enabled");
    assert_eq!(v["debug"], true);
    assert_eq!(v["secboot"], true);
    assert_eq!(v["support_attributes"], Value::Array(vec![]));
    assert_eq!(v["image_digest"], DIGEST);
    assert_eq!(v["project_id"], "oak-ci");
    assert_eq!(v["zone"], "us-west1-b");
    assert_eq!(v["instance_id"], INSTANCE_ID);
    assert_eq!(v["instance_name"], "oak-session-echo-debug");
    assert_eq!(v["eat_nonce"][0], EAT_NONCE);
    // A token alone carries no bound values beside its `eat_nonce`.
    assert_eq!(v["nonce"], Value::Null);
    assert_eq!(v["public_key"], Value::Null);
    assert_eq!(v["user_data"], Value::Null);
    // Every claim, including those the policy does not read.
    assert_eq!(
        v["claims"]["submods"]["gce"]["project_number"],
        "691249393555"
    );
    assert_eq!(v["claims"]["oemid"], 11129);
}

#[test]
fn inspect_prints_every_token_without_verifying() {
    let Some(p) = paths() else { return };
    for file in [&p.valid, &p.bad_signature] {
        let out = attest(&["inspect", file]);
        assert_eq!(code(&out), 0, "{file}: {}", stderr(&out));
        let v = json(&out);
        assert_eq!(v["provider"], "gcp-cs");
        assert_eq!(v["form"], "token");
        assert_eq!(v["instance_id"], INSTANCE_ID);
        assert!(v.get("valid").is_none(), "{v}");
        let chain = v["chain"].as_array().unwrap();
        assert_eq!(chain.len(), 3);
        let slots: Vec<&str> = chain.iter().map(|c| c["slot"].as_str().unwrap()).collect();
        assert_eq!(slots, ["x5c[0]", "x5c[1]", "x5c[2]"]);
        assert!(
            chain[0]["subject"]
                .as_str()
                .unwrap()
                .contains("Confidential Space Leaf Certificate")
        );
        assert!(
            chain[1]["subject"]
                .as_str()
                .unwrap()
                .contains("Confidential Space Intermediate CA")
        );
        assert_eq!(chain[2]["sha256"], hex::encode(GOOGLE_CS_ROOT_SHA256));
        assert_eq!(chain[2]["not_after"], "2034-01-16T22:10:49Z");
        for c in chain {
            assert_eq!(c["error"], Value::Null);
        }
    }
    let out = attest(&["inspect", &p.self_signed]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["chain"].as_array().unwrap().len(), 1);
    assert_eq!(v["iss"], Value::Null);
    assert_eq!(v["debug"], true);
}

#[test]
fn whitespace_around_a_token_is_ignored() {
    let Some(p) = paths() else { return };
    let token = std::fs::read_to_string(&p.valid).unwrap();
    let tmp = TempDir::new("whitespace");
    let reference = attest(&["inspect", &p.valid]);
    assert_eq!(code(&reference), 0);
    for (name, text) in [
        ("newline.jwt", format!("{token}\n")),
        ("spaced.jwt", format!("  \n{token}\r\n\n")),
    ] {
        let file = tmp.write(name, text);
        let out = attest(&["inspect".as_ref(), file.as_os_str()]);
        assert_eq!(code(&out), 0, "{name}: {}", stderr(&out));
        assert_eq!(stdout(&out), stdout(&reference), "{name}");
        let out = attest(&[
            "verify",
            file.to_str().unwrap(),
            "--at",
            VALID_AT,
            "--allow-debug",
        ]);
        assert_eq!(code(&out), 0, "{name}: {}", stderr(&out));
    }
    // Whitespace inside is not a token's.
    let (head, tail) = token.split_at(100);
    let file = tmp.write("inside.jwt", format!("{head}\n{tail}"));
    let out = attest(&["inspect".as_ref(), file.as_os_str()]);
    assert_eq!(code(&out), 1);
}

/// Files that look like Confidential Space evidence and are not, at and beyond the
/// limits: invalid (exit 1) at the parse stage, named as Confidential Space's.
#[test]
fn undecodable_tokens_and_bundles_are_invalid() {
    let tmp = TempDir::new("cs-garbage");
    let pad = |prefix: &str, len: usize, suffix: &str| {
        let fill = len - prefix.len() - suffix.len();
        format!("{prefix}{}{suffix}", "A".repeat(fill))
    };
    let files = [
        ("token-start", "eyJ".to_owned(), None),
        ("two-parts", "eyJhbGciOiJSUzI1NiJ9.e30".to_owned(), None),
        ("alg-none", "eyJhbGciOiJub25lIn0.e30.".to_owned(), None),
        ("token-at-max", pad("eyJ", MAX_TOKEN_LEN, ""), None),
        (
            "token-over-max",
            pad("eyJ", MAX_TOKEN_LEN + 1, ""),
            Some(format!("the limit is {MAX_TOKEN_LEN}")),
        ),
        ("brace", "{".to_owned(), None),
        ("empty-object", "{}".to_owned(), None),
        ("bundle-v2", r#"{"v":2,"token":"eyJ.a.b"}"#.to_owned(), None),
        (
            "bundle-at-max",
            pad(r#"{"v":1,"token":"eyJ.a.b","x":""#, MAX_BUNDLE_LEN, r#""}"#),
            None,
        ),
        (
            "bundle-over-max",
            pad(
                r#"{"v":1,"token":"eyJ.a.b","x":""#,
                MAX_BUNDLE_LEN + 1,
                r#""}"#,
            ),
            Some(format!("the limit is {MAX_BUNDLE_LEN}")),
        ),
    ];
    for (name, text, limit) in &files {
        let file = tmp.write(name, text);
        let out = attest(&["inspect".as_ref(), file.as_os_str()]);
        assert_eq!(code(&out), 1, "{name}: {}", stderr(&out));

        let out = attest(&["verify", file.to_str().unwrap(), "--at", "now", "--json"]);
        assert_eq!(code(&out), 1, "{name}");
        let v = json(&out);
        assert_eq!(v["valid"], false, "{name}");
        assert_eq!(v["stage"], "parse", "{name}");
        assert_eq!(v["provider"], "gcp-cs", "{name}");
        assert!(v.get("iat").is_none(), "{name}: {v}");
        let err = v["error"].as_str().unwrap();
        match limit {
            Some(limit) => assert!(err.contains(limit.as_str()), "{name}: {err}"),
            None => assert!(!err.contains("the limit is"), "{name}: {err}"),
        }
    }
}

/// Times no calendar holds are reported as numbers, and refused, not a crash.
#[test]
fn times_past_any_calendar_are_reported_not_fatal() {
    let max = u64::MAX;
    let claims = format!(r#"{{"iat":{max},"nbf":{max},"exp":{max}}}"#);
    let token = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","x5c":["MAA="]}"#),
        URL_SAFE_NO_PAD.encode(claims),
        "A".repeat(342)
    );
    let tmp = TempDir::new("far-future");
    let file = tmp.write("token.jwt", token);
    let out = attest(&["inspect".as_ref(), file.as_os_str()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["iat"], max);
    assert_eq!(v["issued_at"], format!("{max}s after the Unix epoch"));

    let out = attest(&["verify", file.to_str().unwrap(), "--at", "now", "--json"]);
    assert_eq!(code(&out), 1);
    assert_eq!(json(&out)["stage"], "verify");
}

#[test]
fn options_for_the_other_provider_are_usage_errors() {
    let tmp = TempDir::new("mismatch");
    // A Nitro document by its first byte: the options are refused before it is parsed.
    let doc = tmp.write("doc.cose", [0x84u8, 0x40]);
    let doc = doc.to_str().unwrap();
    for extra in [
        &["--image-digest", DIGEST][..],
        &["--instance-id", "1", "--zone", "z"],
        &["--audience", "tee-custody"],
    ] {
        let out = attest(&[&["verify", doc, "--at", "now", "--json"][..], extra].concat());
        assert_eq!(code(&out), 2, "{extra:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{}", stdout(&out));
        let err = stderr(&out);
        assert!(err.contains(extra[0]), "{err}");
        assert!(err.contains("Nitro document"), "{err}");
    }

    let token = tmp.write("token.jwt", "eyJhbGciOiJSUzI1NiJ9.e30.AA");
    let pcr = format!("0={}", "ab".repeat(48));
    let out = attest(&[
        "verify",
        token.to_str().unwrap(),
        "--at",
        "now",
        "--pcr",
        &pcr,
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--pcr"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Confidential Space"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_claim_options_are_usage_errors_named_by_option() {
    for (option, value) in [
        ("--image-digest", "sha256:313b"),
        ("--image-digest", &DIGEST.to_uppercase()),
        ("--project-id", "has space"),
        ("--zone", ""),
        ("--instance-id", "0123"),
        ("--instance-id", "-1"),
        ("--hwmodel", "GCP_SHIELDED_VM"),
        ("--audience", ""),
    ] {
        let arg = format!("{option}={value}");
        let out = attest(&["verify", "token.jwt", "--at", "now", &arg]);
        assert_eq!(code(&out), 2, "{option} {value}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
        assert!(
            stderr(&out).contains(&format!("{option}: ")),
            "{option}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn help_names_the_confidential_space_options() {
    let help = stdout(&attest(&["verify", "--help"]));
    for word in [
        "--image-digest",
        "--project-id",
        "--zone",
        "--instance-id",
        "--hwmodel",
        "--audience",
        "--sim-gcp-root",
        "Confidential Space",
        "eyJ",
        "dbgstat",
    ] {
        assert!(help.contains(word), "{word}:\n{help}");
    }
    let help = stdout(&attest(&["--help"]));
    assert!(help.contains("Confidential Space"), "{help}");
}

#[cfg(feature = "sim")]
#[test]
fn an_unusable_simulated_gcp_root_is_a_usage_error() {
    use attestation::nsm::sim::SimCa;
    use std::path::PathBuf;

    let tmp = TempDir::new("bad-gcp-root");
    let token = tmp.write("token.jwt", "eyJhbGciOiJSUzI1NiJ9.e30.AA");
    // Garbage, a missing file, and the simulated NSM's root: a CA, but P-384, not RSA.
    let nitro_root = SimCa::generate(std::time::SystemTime::now()).unwrap();
    let roots: [PathBuf; 3] = [
        tmp.write("root.der", [0x30u8, 0x82, 0x00]),
        tmp.0.join("missing.der"),
        tmp.write("nitro-root.der", nitro_root.root_der()),
    ];
    for root in &roots {
        let out = attest(&[
            "verify".as_ref(),
            token.as_os_str(),
            "--at".as_ref(),
            "now".as_ref(),
            "--sim-gcp-root".as_ref(),
            root.as_os_str(),
        ]);
        assert_eq!(code(&out), 2, "{}", stderr(&out));
        assert!(stderr(&out).contains("--sim-gcp-root"), "{}", stderr(&out));
    }
}

#[cfg(not(feature = "sim"))]
#[test]
fn a_production_build_refuses_simulated_gcp_roots() {
    let tmp = TempDir::new("no-sim-gcp");
    let token = tmp.write("token.jwt", "eyJhbGciOiJSUzI1NiJ9.e30.AA");
    let root = tmp.write("root.der", [0x30u8, 0x82, 0x00]);
    let out = attest(&[
        "verify".as_ref(),
        token.as_os_str(),
        "--at".as_ref(),
        "now".as_ref(),
        "--sim-gcp-root".as_ref(),
        root.as_os_str(),
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot trust simulated roots"),
        "{}",
        stderr(&out)
    );
}

/// Tokens from the simulated attester: the production verifier, told to trust its root.
#[cfg(feature = "sim")]
mod simulated {
    use super::*;
    use attestation::AttestationRequest;
    use attestation::gcp::binding_nonce;
    use attestation::gcp::sim::{SimCsAttester, SimCsCa, SimWorkload};
    use attestation::time_fmt::rfc3339;
    use std::path::PathBuf;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    const IMAGE: &[u8] = b"custody node image";
    const INSTANCE: &str = "node-3";

    /// One simulated launcher, its root in a file, and a bundle it made.
    struct Sim {
        tmp: TempDir,
        attester: SimCsAttester,
        root: PathBuf,
        request: AttestationRequest,
        bundle: PathBuf,
        issued: SystemTime,
    }

    fn sim(debug: bool) -> Sim {
        let issued = SystemTime::now();
        let ca = SimCsCa::new(issued).unwrap();
        let mut workload = SimWorkload::of_image(IMAGE, INSTANCE);
        workload.debug = debug;
        let attester = SimCsAttester::new(&ca, workload, issued).unwrap();
        let request = AttestationRequest {
            user_data: Some(b"manifest hash".to_vec()),
            nonce: Some(vec![9; 32]),
            public_key: Some(vec![4; 65]),
        };
        let tmp = TempDir::new("sim-gcp");
        let bundle = tmp.write("bundle.json", attester.attest_at(&request, issued).unwrap());
        let root = tmp.write("root.der", ca.root_der());
        Sim {
            tmp,
            attester,
            root,
            request,
            bundle,
            issued,
        }
    }

    fn s(path: &std::path::Path) -> &str {
        path.to_str().unwrap()
    }

    #[test]
    fn a_simulated_bundle_verifies_only_with_its_root() {
        let sim = sim(false);
        let bundle = s(&sim.bundle);
        let out = attest(&["verify", bundle, "--at", "now", "--json"]);
        assert_eq!(code(&out), 1);
        let v = json(&out);
        assert_eq!(v["stage"], "verify");
        assert!(
            v["error"].as_str().unwrap().contains("not a trusted root"),
            "{v}"
        );

        // Nitro's simulated root is not Confidential Space's.
        let nitro = attestation::nsm::sim::SimCa::generate(sim.issued).unwrap();
        let nitro_root = sim.tmp.write("nitro-root.der", nitro.root_der());
        let out = attest(&[
            "verify",
            bundle,
            "--at",
            "now",
            "--sim-root",
            s(&nitro_root),
        ]);
        assert_eq!(code(&out), 1);
        assert!(
            stderr(&out).contains("not a trusted root"),
            "{}",
            stderr(&out)
        );

        let root_hex = sim
            .tmp
            .write("root.hex", hex::encode(std::fs::read(&sim.root).unwrap()));
        let workload = sim.attester.workload();
        for root in [&sim.root, &root_hex] {
            let out = attest(&["verify", bundle, "--at", "now", "--sim-gcp-root", s(root)]);
            assert_eq!(code(&out), 0, "{}", stderr(&out));
            let summary = stdout(&out);
            assert!(summary.starts_with("valid: gcp-cs instance "), "{summary}");
            for part in [
                workload.instance_id.as_str(),
                INSTANCE,
                "sim-project",
                "sim-zone-a",
                workload.image_digest.as_str(),
                "not checked",
            ] {
                assert!(summary.contains(part), "{part}: {summary}");
            }
            assert!(!summary.contains("debug"), "{summary}");
        }
    }

    #[test]
    fn a_simulated_bundle_reports_what_it_binds() {
        let sim = sim(false);
        let workload = sim.attester.workload().clone();
        let nonce = hex::encode([9u8; 32]);
        let out = attest(&[
            "verify",
            s(&sim.bundle),
            "--at",
            "now",
            "--sim-gcp-root",
            s(&sim.root),
            "--image-digest",
            &workload.image_digest,
            "--project-id",
            &workload.project_id,
            "--zone",
            &workload.zone,
            "--instance-id",
            &workload.instance_id,
            "--hwmodel",
            "GCP_INTEL_TDX",
            "--audience",
            attestation::gcp::CUSTODY_AUDIENCE,
            "--nonce",
            &nonce,
            "--max-age",
            "300",
            "--json",
        ]);
        assert_eq!(code(&out), 0, "{}", stdout(&out));
        let v = json(&out);
        assert_eq!(v["valid"], true);
        assert_eq!(v["provider"], "gcp-cs");
        assert_eq!(v["form"], "bundle");
        assert_eq!(v["alg"], "RS256");
        assert_eq!(v["aud"], "tee-custody");
        assert_eq!(v["iss"], "https://confidentialcomputing.googleapis.com");
        assert_eq!(v["swname"], "CONFIDENTIAL_SPACE");
        assert_eq!(v["dbgstat"], "disabled-since-boot");
        assert_eq!(v["debug"], false);
        assert_eq!(v["secboot"], true);
        assert_eq!(
            v["support_attributes"],
            serde_json::json!(["LATEST", "STABLE", "USABLE"])
        );
        assert_eq!(v["hwmodel"], "GCP_INTEL_TDX");
        assert_eq!(v["image_digest"], workload.image_digest);
        assert_eq!(v["instance_id"], workload.instance_id);
        assert_eq!(v["instance_name"], INSTANCE);
        assert_eq!(
            v["exp"].as_u64().unwrap(),
            v["iat"].as_u64().unwrap() + 3600
        );
        assert_eq!(v["nonce"], nonce);
        assert_eq!(v["public_key"], hex::encode([4u8; 65]));
        assert_eq!(v["user_data"], hex::encode(b"manifest hash"));
        let r = &sim.request;
        let digest = binding_nonce(
            r.nonce.as_deref(),
            r.public_key.as_deref(),
            r.user_data.as_deref(),
        );
        assert_eq!(v["eat_nonce"], serde_json::json!([digest]));
        let chain = v["chain"].as_array().unwrap();
        assert_eq!(chain.len(), 3);
        assert_eq!(chain[2]["sha256"], root_sha256(&sim));

        // What it does not bind, or not match, is refused by the policy.
        for (extra, named) in [
            (vec!["--nonce", "00"], "nonce"),
            (vec!["--instance-id", "1"], "instance_id"),
            (vec!["--image-digest", DIGEST], "image_digest"),
            (vec!["--hwmodel", "GCP_AMD_SEV_SNP"], "hwmodel"),
            (vec!["--audience", "someone-else"], "aud"),
        ] {
            let args = [
                &["verify", s(&sim.bundle), "--at", "now", "--json"][..],
                &["--sim-gcp-root", s(&sim.root)],
                &extra,
            ]
            .concat();
            let out = attest(&args);
            assert_eq!(code(&out), 1, "{extra:?}");
            let v = json(&out);
            assert_eq!(v["stage"], "policy", "{extra:?}: {v}");
            assert!(v["error"].as_str().unwrap().contains(named), "{v}");
        }
    }

    /// The simulated root's DER SHA-256, as a verifier trusting it pins it.
    fn root_sha256(sim: &Sim) -> String {
        let der = std::fs::read(&sim.root).unwrap();
        let verifier = attestation::Verifier::production()
            .trust_simulated_gcp_root(&der, sim.issued)
            .unwrap();
        let roots = verifier.roots(attestation::Provider::GcpCs);
        assert_eq!(roots.len(), 2);
        hex::encode(roots[1])
    }

    #[test]
    fn a_simulated_token_alone_binds_its_eat_nonce() {
        let sim = sim(false);
        let token = sim.attester.token_at(&sim.request, sim.issued).unwrap();
        let file = sim.tmp.write("token.jwt", format!("{token}\n"));
        let r = &sim.request;
        let digest = binding_nonce(
            r.nonce.as_deref(),
            r.public_key.as_deref(),
            r.user_data.as_deref(),
        );
        let base = [
            "verify",
            s(&file),
            "--at",
            "now",
            "--sim-gcp-root",
            s(&sim.root),
        ];
        // A token alone carries the digest, not the values: `--nonce` names the string.
        let out = attest(&[&base[..], &["--nonce", &hex::encode(&digest), "--json"]].concat());
        assert_eq!(code(&out), 0, "{}", stdout(&out));
        let v = json(&out);
        assert_eq!(v["form"], "token");
        assert_eq!(v["eat_nonce"][0], digest.as_str());
        assert_eq!(v["nonce"], Value::Null);
        assert_eq!(v["public_key"], Value::Null);

        let out = attest(&[&base[..], &["--nonce", &hex::encode([9u8; 32])]].concat());
        assert_eq!(code(&out), 1);
        assert!(stderr(&out).contains("nonce"), "{}", stderr(&out));
    }

    #[test]
    fn a_simulated_debug_workload_needs_allow_debug() {
        let sim = sim(true);
        let base = [
            "verify",
            s(&sim.bundle),
            "--at",
            "now",
            "--sim-gcp-root",
            s(&sim.root),
        ];
        let out = attest(&[&base[..], &["--json"]].concat());
        assert_eq!(code(&out), 1);
        let v = json(&out);
        assert_eq!(v["stage"], "policy");
        assert!(v["error"].as_str().unwrap().contains("dbgstat"), "{v}");
        assert_eq!(v["debug"], true);

        let out = attest(&[&base[..], &["--allow-debug"]].concat());
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert!(
            stdout(&out).contains("(debug: dbgstat "),
            "{}",
            stdout(&out)
        );
    }

    #[test]
    fn a_simulated_token_expires_after_an_hour() {
        let sim = sim(false);
        let since = |d: Duration| rfc3339(sim.issued.duration_since(UNIX_EPOCH).unwrap() + d);
        let base = ["verify", s(&sim.bundle), "--sim-gcp-root", s(&sim.root)];
        let out = attest(&[&base[..], &["--at", &since(Duration::from_secs(3500))]].concat());
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let out = attest(
            &[
                &base[..],
                &["--json", "--at", &since(Duration::from_secs(7200))],
            ]
            .concat(),
        );
        assert_eq!(code(&out), 1);
        let v = json(&out);
        assert_eq!(v["stage"], "policy");
        assert!(v["error"].as_str().unwrap().contains("expired"), "{v}");
    }

    #[test]
    fn bundle_values_an_attacker_changes_are_refused() {
        let sim = sim(false);
        let bundle = std::fs::read_to_string(&sim.bundle).unwrap();
        let user_data = hex::encode(b"manifest hash");
        let public_key = hex::encode([4u8; 65]);
        for (from, to) in [
            (user_data.clone(), hex::encode(b"other manifest")),
            (public_key.clone(), hex::encode([5u8; 65])),
            (format!(",\"user_data\":\"{user_data}\""), String::new()),
        ] {
            assert!(bundle.contains(&from), "{from}");
            let file = sim.tmp.write("forged.json", bundle.replace(&from, &to));
            let out = attest(&[
                "verify",
                s(&file),
                "--at",
                "now",
                "--sim-gcp-root",
                s(&sim.root),
                "--json",
            ]);
            assert_eq!(code(&out), 1, "{to}");
            let v = json(&out);
            assert_eq!(v["stage"], "parse", "{v}");
            assert_eq!(v["provider"], "gcp-cs", "{v}");
            assert!(v["error"].as_str().unwrap().contains("binding"), "{v}");
        }
    }
}
