//! Helpers shared by the attestation integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `../shared/fixtures/nitro` beside the project root, or `None` (with a message) when
/// the folder is absent.
pub fn nitro_fixtures() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/nitro");
    if dir.join("index.json").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: real Nitro documents not found at {} (see README, Testing)",
            dir.display()
        );
        None
    }
}

pub struct Fixture {
    pub file: String,
    pub bytes: Vec<u8>,
    pub expect_valid: bool,
    pub entry: serde_json::Value,
}

impl Fixture {
    /// A time inside the document's chain window: its own timestamp.
    pub fn valid_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.entry["timestamp_ms"].as_u64().unwrap())
    }
    pub fn window(&self) -> (SystemTime, SystemTime) {
        let parse = |k: &str| {
            attestation::time_fmt::parse_time(self.entry["chain"][k].as_str().unwrap()).unwrap()
        };
        (parse("chain_valid_from"), parse("chain_valid_to"))
    }
    pub fn is_debug(&self) -> bool {
        self.entry["debug_mode_all_zero_pcr0"].as_bool().unwrap()
    }
}

pub fn load_fixtures(dir: &std::path::Path) -> Vec<Fixture> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    index
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let file = entry["file"].as_str().unwrap().to_owned();
            Fixture {
                bytes: std::fs::read(dir.join(&file)).unwrap(),
                expect_valid: entry["expect"].as_str().unwrap() == "valid",
                file,
                entry: entry.clone(),
            }
        })
        .collect()
}

/// `../shared/fixtures/gcp-cs` beside the project root, or `None` (with a message) when
/// the folder is absent.
pub fn gcp_fixtures() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/gcp-cs");
    if dir.join("valid").is_dir() && dir.join("root").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: real Confidential Space tokens not found at {} (see README, Testing)",
            dir.display()
        );
        None
    }
}

/// The real Confidential Space tokens, read from `dir`.
pub struct GcpFixtures {
    /// Genuine, debug image, AMD SEV, issued at [`GCP_VALID_IAT`].
    pub valid: Vec<u8>,
    /// The same with its signature altered.
    pub bad_signature: Vec<u8>,
    /// Signed by a self-signed certificate.
    pub self_signed: Vec<u8>,
    /// PEM of Google's Confidential Space root.
    pub root_pem: String,
}

/// `iat` of the valid token: 2025-06-23T14:22:31Z; `exp` is an hour later.
pub const GCP_VALID_IAT: u64 = 1_750_688_551;

pub fn load_gcp_fixtures(dir: &std::path::Path) -> GcpFixtures {
    let read = |p: &str| std::fs::read(dir.join(p)).unwrap();
    GcpFixtures {
        valid: read("valid/oak_testdata_valid_sev_debug_20250623.jwt"),
        bad_signature: read("invalid/oak_testdata_invalid_signature_20250623.jwt"),
        self_signed: read("invalid/oak_confidential_space_valid_selfsigned.jwt"),
        root_pem: String::from_utf8(read("root/confidential_space_root.pem")).unwrap(),
    }
}

/// A time as seconds since the Unix epoch.
pub fn at_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}
