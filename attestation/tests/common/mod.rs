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
