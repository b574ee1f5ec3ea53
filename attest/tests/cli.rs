//! The `attest` binary, run as a user would: exit statuses, messages, JSON output, and
//! the file encodings it accepts.
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

use attestation::time_fmt::rfc3339_ms;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::{Fixture, load_fixtures, nitro_fixtures};
use serde_json::Value;
use std::path::{Path, PathBuf};
use support::{TempDir, attest, code, json, stderr, stdout};

const AWS_ROOT_SHA256: &str = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b";

/// The fixtures and their folder, or `None` (test skipped) when they are absent.
fn fixtures() -> Option<(PathBuf, Vec<Fixture>)> {
    let dir = nitro_fixtures()?;
    let all = load_fixtures(&dir);
    Some((dir, all))
}

fn path_of(dir: &Path, f: &Fixture) -> String {
    dir.join(&f.file).to_str().unwrap().to_owned()
}

/// The document's own timestamp, inside its chain's validity window.
fn own_time(f: &Fixture) -> String {
    rfc3339_ms(f.entry["timestamp_ms"].as_u64().unwrap())
}

fn pcr_hex(f: &Fixture, index: u8) -> String {
    f.entry[format!("pcr{index}")].as_str().unwrap().to_owned()
}

fn valid(all: &[Fixture], debug: bool) -> &Fixture {
    all.iter()
        .find(|f| f.expect_valid && f.is_debug() == debug)
        .expect("a valid fixture of that kind")
}

#[test]
fn usage_errors_exit_2() {
    let pcr = "ab".repeat(48);
    let cases: Vec<Vec<String>> = vec![
        vec![],
        vec!["frobnicate".into()],
        vec!["inspect".into()],
        vec!["verify".into(), "doc.cose".into()],
        vec!["verify".into(), "doc.cose".into(), "--at".into()],
        vec![
            "verify".into(),
            "doc.cose".into(),
            "--at".into(),
            "yesterday".into(),
        ],
        vec![
            "verify".into(),
            "doc.cose".into(),
            "--at".into(),
            "2022-10-12 13:50:06".into(),
        ],
        vec![
            "verify".into(),
            "doc.cose".into(),
            "--at".into(),
            "1969-12-31T00:00:00Z".into(),
        ],
    ];
    let with_at = |extra: &[&str]| {
        let mut args: Vec<String> = ["verify", "doc.cose", "--at", "now"]
            .map(String::from)
            .into();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    };
    let cases = cases.into_iter().chain([
        with_at(&["--pcr", &pcr]),
        with_at(&["--pcr", &format!("x={pcr}")]),
        with_at(&["--pcr", &format!("32={pcr}")]),
        with_at(&["--pcr", &format!("-1={pcr}")]),
        with_at(&["--pcr", "0=zz"]),
        with_at(&["--pcr", "0=abc"]),
        with_at(&["--pcr", "0=abcd"]),
        with_at(&["--pcr", &format!("0={pcr}"), "--pcr", &format!("0={pcr}")]),
        with_at(&["--nonce", "xyz"]),
        with_at(&["--nonce", "0"]),
        with_at(&["--max-age", "-1"]),
        with_at(&["--max-age", "soon"]),
        with_at(&["--unknown"]),
    ]);
    for args in cases {
        let out = attest(&args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}: {}", stdout(&out));
        assert!(!stderr(&out).is_empty(), "{args:?}");
    }

    let out = attest(&with_at(&[
        "--pcr",
        &format!("1={pcr}"),
        "--pcr",
        &format!("1={pcr}"),
    ]));
    assert!(stderr(&out).contains("more than once"), "{}", stderr(&out));
}

#[test]
fn unreadable_files_are_usage_errors() {
    let tmp = TempDir::new("unreadable");
    let missing = tmp.0.join("missing.cose");
    let missing = missing.to_str().unwrap();
    let dir = tmp.0.to_str().unwrap();
    for args in [
        vec!["inspect", missing],
        vec!["inspect", dir],
        vec!["verify", missing, "--at", "now"],
        vec!["verify", missing, "--at", "now", "--json"],
    ] {
        let out = attest(&args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("cannot read"), "{}", stderr(&out));
    }
}

#[cfg(feature = "sim")]
#[test]
fn an_unusable_simulated_root_is_a_usage_error() {
    let tmp = TempDir::new("bad-root");
    let doc = tmp.write("doc.cose", [0x84u8, 0x40]);
    let root = tmp.write("root.der", [0x30u8, 0x82, 0x00]);
    let missing = tmp.0.join("missing.der");
    for root in [root, missing] {
        let out = attest(&[
            "verify".as_ref(),
            doc.as_os_str(),
            "--at".as_ref(),
            "now".as_ref(),
            "--sim-root".as_ref(),
            root.as_os_str(),
        ]);
        assert_eq!(code(&out), 2, "{}", stderr(&out));
        assert!(stderr(&out).contains("--sim-root"), "{}", stderr(&out));
    }
}

#[cfg(not(feature = "sim"))]
#[test]
fn a_production_build_refuses_simulated_roots() {
    let tmp = TempDir::new("no-sim");
    let doc = tmp.write("doc.cose", [0x84u8, 0x40]);
    let root = tmp.write("root.der", [0x30u8, 0x82, 0x00]);
    let out = attest(&[
        "verify".as_ref(),
        doc.as_os_str(),
        "--at".as_ref(),
        "now".as_ref(),
        "--sim-root".as_ref(),
        root.as_os_str(),
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot trust simulated roots"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn help_names_the_accepted_encodings() {
    for args in [
        &["--help"][..],
        &["help", "verify"],
        &["verify", "--help"],
        &["inspect", "--help"],
    ] {
        let out = attest(args);
        assert_eq!(code(&out), 0, "{args:?}");
        let help = stdout(&out);
        for word in ["raw COSE", "base64", "hex"] {
            assert!(
                help.contains(word),
                "{args:?} does not mention {word}:\n{help}"
            );
        }
    }
    let help = stdout(&attest(&["verify", "--help"]));
    for option in [
        "--at",
        "--pcr",
        "--allow-debug",
        "--nonce",
        "--max-age",
        "--sim-root",
        "--json",
    ] {
        assert!(help.contains(option), "{option}:\n{help}");
    }
}

#[test]
fn undecodable_files_are_invalid() {
    let tmp = TempDir::new("garbage");
    let too_large = vec![b'a'; 4 * attestation::nitro::MAX_DOCUMENT_LEN + 1];
    let files = [
        tmp.write("empty", b""),
        tmp.write("blank", b" \n\n"),
        tmp.write("text", b"this is not a document\n"),
        tmp.write("odd-hex", b"84a"),
        tmp.write("short-hex", b"8440"),
        tmp.write("binary", [0xffu8, 0x00, 0x13, 0x37]),
        tmp.write("cose-start", [0x84u8, 0x44, 0xa1]),
        tmp.write("other-tag", [0xd8u8, 0x40, 0x84]),
        tmp.write("too-large", &too_large),
    ];
    for file in &files {
        let out = attest(&["inspect".as_ref(), file.as_os_str()]);
        assert_eq!(code(&out), 1, "{}: {}", file.display(), stderr(&out));
        assert!(!stderr(&out).is_empty());

        let verify = [
            "verify".as_ref(),
            file.as_os_str(),
            "--at".as_ref(),
            "now".as_ref(),
        ];
        let out = attest(&verify);
        assert_eq!(code(&out), 1, "{}: {}", file.display(), stderr(&out));
        assert!(stderr(&out).starts_with("invalid: "), "{}", stderr(&out));

        let out = attest(&[&verify[..], &["--json".as_ref()]].concat());
        assert_eq!(code(&out), 1, "{}", file.display());
        let v = json(&out);
        assert_eq!(v["valid"], false);
        assert_eq!(v["stage"], "parse");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()));
        assert!(v.get("module_id").is_none(), "{v}");
    }
}

#[test]
fn a_document_verifies_at_its_own_timestamp() {
    let Some((dir, all)) = fixtures() else { return };
    let f = valid(&all, false);
    let out = attest(&["verify", &path_of(&dir, f), "--at", &own_time(f)]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let summary = stdout(&out);
    assert!(summary.starts_with("valid: "), "{summary}");
    assert!(
        summary.contains(f.entry["module_id"].as_str().unwrap()),
        "{summary}"
    );
    assert!(summary.contains(&pcr_hex(f, 0)), "{summary}");
}

#[test]
fn debug_mode_documents_need_allow_debug() {
    let Some((dir, all)) = fixtures() else { return };
    let f = valid(&all, true);
    let (path, at) = (path_of(&dir, f), own_time(f));
    let out = attest(&["verify", &path, "--at", &at]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("debug"), "{}", stderr(&out));

    let out = attest(&["verify", &path, "--at", &at, "--allow-debug"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("debug mode"), "{}", stdout(&out));
}

#[test]
fn every_valid_document_is_expired_now() {
    let Some((dir, all)) = fixtures() else { return };
    for f in all.iter().filter(|f| f.expect_valid) {
        let out = attest(&["verify", &path_of(&dir, f), "--at", "now", "--allow-debug"]);
        assert_eq!(code(&out), 1, "{}", f.file);
        let err = stderr(&out);
        assert!(err.starts_with("invalid: "), "{}: {err}", f.file);
        assert!(err.contains("expired"), "{}: {err}", f.file);
    }
}

#[test]
fn the_invalid_document_is_refused() {
    let Some((dir, all)) = fixtures() else { return };
    let f = all.iter().find(|f| !f.expect_valid).unwrap();
    let out = attest(&[
        "verify",
        &path_of(&dir, f),
        "--at",
        &own_time(f),
        "--allow-debug",
    ]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("signature"), "{}", stderr(&out));
}

#[test]
fn expected_pcrs_are_checked() {
    let Some((dir, all)) = fixtures() else { return };
    let f = valid(&all, false);
    let (path, at) = (path_of(&dir, f), own_time(f));
    let pcr0 = pcr_hex(f, 0);
    let pcr1 = pcr_hex(f, 1);

    let right = format!("0={pcr0}");
    let out = attest(&["verify", &path, "--at", &at, "--pcr", &right]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // Hex in upper case is the same value.
    let both = [
        "--pcr".to_owned(),
        format!("0={}", pcr0.to_uppercase()),
        "--pcr".to_owned(),
        format!("1={pcr1}"),
    ];
    let out = attest(
        &[
            &[
                "verify".to_owned(),
                path.clone(),
                "--at".to_owned(),
                at.clone(),
            ][..],
            &both,
        ]
        .concat(),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    let wrong = "5a".repeat(48);
    let out = attest(&[
        "verify",
        &path,
        "--at",
        &at,
        "--pcr",
        &right,
        "--pcr",
        &format!("2={wrong}"),
    ]);
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(err.contains("PCR2"), "{err}");
    assert!(err.contains(&wrong), "{err}");

    // A PCR the document does not have.
    let out = attest(&[
        "verify",
        &path,
        "--at",
        &at,
        "--pcr",
        &format!("31={wrong}"),
    ]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("PCR31"), "{}", stderr(&out));
}

#[test]
fn nonce_and_max_age_are_checked() {
    let Some((dir, all)) = fixtures() else { return };
    let f = valid(&all, false);
    let path = path_of(&dir, f);
    let ts = f.entry["timestamp_ms"].as_u64().unwrap();
    let later = rfc3339_ms(ts + 120_000);

    let out = attest(&["verify", &path, "--at", &later, "--max-age", "300"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = attest(&["verify", &path, "--at", &later, "--max-age", "60"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("old"), "{}", stderr(&out));

    let nonce = "00".repeat(32);
    let out = attest(&["verify", &path, "--at", &later, "--nonce", &nonce]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("nonce"), "{}", stderr(&out));
}

#[test]
fn json_output_reports_the_outcome() {
    let Some((dir, all)) = fixtures() else { return };
    let f = valid(&all, false);
    let path = path_of(&dir, f);

    let out = attest(&["verify", &path, "--at", "now", "--json"]);
    assert_eq!(code(&out), 1);
    let v = json(&out);
    assert_eq!(v["valid"], false);
    assert_eq!(v["stage"], "verify");
    assert!(v["error"].as_str().unwrap().contains("expired"), "{v}");
    assert_eq!(v["module_id"], f.entry["module_id"]);

    let out = attest(&["verify", &path, "--at", &own_time(f), "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["valid"], true);
    assert_eq!(v["error"], Value::Null);
    assert_eq!(v["stage"], Value::Null);
    assert_eq!(v["provider"], "nitro");
    assert_eq!(stdout(&out).matches("\"provider\"").count(), 1);
    assert_eq!(v["module_id"], f.entry["module_id"]);
    assert_eq!(v["timestamp_ms"], f.entry["timestamp_ms"]);
    assert_eq!(v["pcrs"]["0"].as_str().unwrap(), pcr_hex(f, 0));
    for field in ["public_key", "user_data", "nonce"] {
        assert!(v[field].is_null() || v[field].is_string(), "{field}: {v}");
    }

    let wrong = format!("0={}", "5a".repeat(48));
    let out = attest(&[
        "verify",
        &path,
        "--at",
        &own_time(f),
        "--json",
        "--pcr",
        &wrong,
    ]);
    assert_eq!(code(&out), 1);
    let v = json(&out);
    assert_eq!(v["valid"], false);
    assert_eq!(v["stage"], "policy");
    assert!(v["error"].as_str().unwrap().contains("PCR0"), "{v}");
}

#[test]
fn inspect_prints_the_document_fields() {
    let Some((dir, all)) = fixtures() else { return };
    for f in &all {
        let out = attest(&["inspect", &path_of(&dir, f)]);
        assert_eq!(code(&out), 0, "{}: {}", f.file, stderr(&out));
        let v = json(&out);
        assert_eq!(v["provider"], "nitro", "{}", f.file);
        assert_eq!(v["module_id"], f.entry["module_id"], "{}", f.file);
        assert_eq!(v["timestamp_ms"], f.entry["timestamp_ms"], "{}", f.file);
        assert_eq!(v["digest"], "SHA384");
        assert_eq!(
            v["debug_mode"], f.entry["debug_mode_all_zero_pcr0"],
            "{}",
            f.file
        );
        for i in 0..3 {
            assert_eq!(
                v["pcrs"][i.to_string()].as_str().unwrap(),
                pcr_hex(f, i),
                "{}",
                f.file
            );
        }
        let chain = v["chain"].as_array().unwrap();
        assert!(chain.len() >= 2, "{}", f.file);
        assert_eq!(chain[0]["slot"], "cabundle[0]");
        assert_eq!(chain[0]["sha256"], AWS_ROOT_SHA256);
        assert!(
            chain[0]["subject"]
                .as_str()
                .unwrap()
                .contains("aws.nitro-enclaves")
        );
        let leaf = chain.last().unwrap();
        assert_eq!(leaf["slot"], "leaf");
        assert_eq!(leaf["error"], Value::Null);
        let window = &f.entry["chain"];
        // The chain window is the intersection of the certificates' windows.
        let not_afters: Vec<&str> = chain
            .iter()
            .map(|c| c["not_after"].as_str().unwrap())
            .collect();
        assert!(
            not_afters.contains(&window["chain_valid_to"].as_str().unwrap()),
            "{}",
            f.file
        );
    }
}

#[test]
fn raw_hex_and_base64_files_read_the_same() {
    let Some((_, all)) = fixtures() else { return };
    let f = valid(&all, false);
    let tmp = TempDir::new("encodings");
    let wrap = |text: &str, width: usize| -> String {
        text.as_bytes()
            .chunks(width)
            .map(|line| format!("{}\n", String::from_utf8_lossy(line)))
            .collect()
    };
    let mut tagged = vec![0xd2u8];
    tagged.extend_from_slice(&f.bytes);
    let files = [
        tmp.write("doc.cose", &f.bytes),
        tmp.write("tagged.cose", &tagged),
        tmp.write("doc.hex", hex::encode(&f.bytes)),
        tmp.write(
            "doc-upper.hex",
            format!("  {}\n", wrap(&hex::encode_upper(&f.bytes), 64)),
        ),
        tmp.write("doc.b64", STANDARD.encode(&f.bytes)),
        tmp.write("doc-wrapped.b64", wrap(&STANDARD.encode(&f.bytes), 76)),
        tmp.write(
            "doc-url.b64",
            format!("{}\n", URL_SAFE_NO_PAD.encode(&f.bytes)),
        ),
    ];
    let reference = attest(&["inspect".as_ref(), files[0].as_os_str()]);
    assert_eq!(code(&reference), 0, "{}", stderr(&reference));
    for file in &files[1..] {
        let out = attest(&["inspect".as_ref(), file.as_os_str()]);
        assert_eq!(code(&out), 0, "{}: {}", file.display(), stderr(&out));
        assert_eq!(stdout(&out), stdout(&reference), "{}", file.display());

        let out = attest(&[
            "verify".as_ref(),
            file.as_os_str(),
            "--at".as_ref(),
            own_time(f).as_ref(),
        ]);
        assert_eq!(code(&out), 0, "{}: {}", file.display(), stderr(&out));
    }
}

#[cfg(feature = "sim")]
#[test]
fn simulated_documents_verify_only_with_their_root() {
    use attestation::nsm::sim::{SimCa, SimMeasurements, SimNsm};
    use attestation::nsm::{AttestationRequest, Nsm};
    use std::time::SystemTime;

    let now = SystemTime::now();
    let ca = SimCa::generate(now).unwrap();
    let measurements = SimMeasurements::of_image(b"enclave image");
    let nsm = SimNsm::new(&ca, &measurements, now).unwrap();
    let doc = nsm
        .attest(&AttestationRequest {
            user_data: Some(b"manifest".to_vec()),
            nonce: Some(vec![9; 16]),
            public_key: None,
        })
        .unwrap();
    let tmp = TempDir::new("sim");
    let doc = tmp.write("sim.b64", STANDARD.encode(&doc));
    let root = tmp.write("root.der", ca.root_der());
    let root_hex = tmp.write("root.hex", hex::encode(ca.root_der()));
    let base = [
        "verify".as_ref(),
        doc.as_os_str(),
        "--at".as_ref(),
        "now".as_ref(),
    ];

    let out = attest(&base);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("not a trusted root"),
        "{}",
        stderr(&out)
    );

    let pcr0 = format!("0={}", hex::encode(measurements.pcrs()[&0]));
    let nonce = hex::encode([9u8; 16]);
    for root in [&root, &root_hex] {
        let trusting = [&base[..], &["--sim-root".as_ref(), root.as_os_str()]].concat();
        let out = attest(&trusting);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert!(stdout(&out).contains(nsm.module_id()), "{}", stdout(&out));

        let checked = [
            &trusting[..],
            &[
                "--pcr".as_ref(),
                pcr0.as_ref(),
                "--nonce".as_ref(),
                nonce.as_ref(),
                "--json".as_ref(),
            ],
        ]
        .concat();
        let out = attest(&checked);
        assert_eq!(code(&out), 0, "{}", stdout(&out));
        let v = json(&out);
        assert_eq!(v["valid"], true);
        assert_eq!(v["provider"], "nitro");
        assert_eq!(v["user_data"], hex::encode(b"manifest"));
        assert_eq!(v["nonce"], nonce);
        assert_eq!(v["public_key"], Value::Null);
    }
}
