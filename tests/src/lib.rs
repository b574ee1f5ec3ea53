//! Support for tests that run the project's real binaries as separate processes.
//!
//! Binaries are located next to the test executable (`target/<profile>/`); they are
//! built first with the same cargo that runs the tests, so `cargo test -p
//! integration-tests` works on its own.
//!
//! - [`cluster`]: a simulated cluster on `custody sim`'s launcher, with the requests,
//!   waits and log dumps the tests need.
//! - [`eth`]: unsigned Ethereum transactions built here, and the check of a signed one.
//! - [`hostile_peer`]: a compromised node that lies in provisioning (released keys,
//!   escrows) while its evidence is genuine.
//! - [`impostor`]: a compromised node that claims another node's id.
//! - [`stalling_parent`]: a hostile parent whose blob store stalls chosen reads.

pub mod cluster;
pub mod eth;
pub mod hostile_peer;
pub mod impostor;
pub mod stalling_parent;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Path of a workspace binary, built on first use.
pub fn binary(name: &str) -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        // Benchmarks run from target/release and need optimized binaries beside them.
        let release = profile_dir().ends_with("release");
        let status = Command::new(cargo)
            .args([
                "build", "--quiet", "--bins", "-p", "enclave", "-p", "attest", "-p", "client",
                "-p", "parent",
            ])
            .args(release.then_some("--release"))
            .current_dir(workspace_root())
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("building the binaries failed: {status}"))
        }
    });
    built.clone()?;
    let path = profile_dir().join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{} was not built", path.display()))
    }
}

/// The enclave built with the test-only feature `insecure-coordinator` (a coordinator
/// that skips its own policy decision), copied to `into/enclave-insecure`. Cargo puts
/// every build of the `enclave` binary at one path, so the regular one is built first and
/// rebuilt right after (only the `enclave` crate differs, so both builds are quick), and
/// the copy must differ from it.
pub fn insecure_coordinator_binary(into: &Path) -> Result<PathBuf, String> {
    let regular = binary("enclave")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let release = profile_dir().ends_with("release");
    let build = |features: &[&str]| -> Result<(), String> {
        let status = Command::new(&cargo)
            .args(["build", "--quiet", "-p", "enclave", "--bin", "enclave"])
            .args(features)
            .args(release.then_some("--release"))
            .current_dir(workspace_root())
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "building the enclave {features:?} failed: {status}"
            ))
        }
    };
    let copy = into.join("enclave-insecure");
    let built = build(&["--features", "insecure-coordinator"])
        .and_then(|()| std::fs::copy(&regular, &copy).map_err(|e| format!("copy: {e}")));
    // The regular binary goes back in place whatever happened.
    build(&[])?;
    built?;
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    if read(&copy)? == read(&regular)? {
        return Err("the insecure-coordinator build is the regular enclave".to_owned());
    }
    Ok(copy)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `target/<profile>/`: the test executable lives in its `deps/` folder.
fn profile_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| workspace_root().join("target/debug"))
}

/// A temporary directory removed on drop, even when a test fails.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "tee-custody-{name}-{}-{}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
