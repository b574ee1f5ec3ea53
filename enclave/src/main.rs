//! `enclave`: the custody node. This release implements its evidence: the node asks the
//! NSM (real, or simulated with `--sim`) for an attestation document that measures the
//! running binary and binds the caller's nonce, user data and public key.

use attestation::nsm::{AttestationRequest, Nsm};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "enclave", version, about = "MPC custody node (enclave side)")]
struct Cli {
    /// Run as a normal process with a simulated NSM instead of /dev/nsm.
    #[arg(long, global = true)]
    sim: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a fresh attestation document about this node (raw COSE bytes).
    Attest {
        /// Where to write the document.
        #[arg(long)]
        out: PathBuf,
        /// Nonce to bind, hex (at most 512 bytes).
        #[arg(long, value_parser = parse_hex)]
        nonce: Option<Hex>,
        /// User data to bind, hex (at most 512 bytes).
        #[arg(long, value_parser = parse_hex)]
        user_data: Option<Hex>,
        /// Public key to bind, hex (1 to 1024 bytes).
        #[arg(long, value_parser = parse_hex)]
        public_key: Option<Hex>,
        /// Simulator only: the simulated root CA file, created if absent.
        #[arg(long)]
        sim_ca: Option<PathBuf>,
        /// Simulator only: also write the simulated root certificate (DER) here, for
        /// `attest verify --sim-root`.
        #[arg(long)]
        sim_root_out: Option<PathBuf>,
    },
}

/// Bytes given on the command line as hex.
#[derive(Clone, Debug)]
struct Hex(Vec<u8>);

fn parse_hex(s: &str) -> Result<Hex, String> {
    hex::decode(s).map(Hex).map_err(|e| format!("not hex: {e}"))
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Nsm(#[from] attestation::nsm::NsmError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Usage(msg)) => {
            eprintln!("enclave: {msg}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("enclave: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Attest {
            out,
            nonce,
            user_data,
            public_key,
            sim_ca,
            sim_root_out,
        } => {
            let request = AttestationRequest {
                user_data: user_data.map(|h| h.0),
                nonce: nonce.map(|h| h.0),
                public_key: public_key.map(|h| h.0),
            };
            let nsm = open_nsm(cli.sim, sim_ca, sim_root_out)?;
            let document = nsm.attest(&request)?;
            write_file(&out, &document)
        }
    }
}

fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), Error> {
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(feature = "sim")]
fn open_sim(ca: Option<PathBuf>, root_out: Option<PathBuf>) -> Result<Box<dyn Nsm>, Error> {
    use attestation::nsm::sim::{SimCa, SimMeasurements, SimNsm};
    let ca_path = ca.ok_or_else(|| Error::Usage("--sim needs --sim-ca FILE".to_owned()))?;
    let now = std::time::SystemTime::now();
    let ca = SimCa::load_or_create(&ca_path, now)?;
    if let Some(path) = root_out {
        write_file(&path, ca.root_der())?;
    }
    let measurements = SimMeasurements::of_current_exe()?;
    Ok(Box::new(SimNsm::new(&ca, &measurements, now)?))
}

#[cfg(not(feature = "sim"))]
fn open_sim(_: Option<PathBuf>, _: Option<PathBuf>) -> Result<Box<dyn Nsm>, Error> {
    Err(Error::Usage(
        "this is a production build: it has no simulated NSM".to_owned(),
    ))
}

fn open_nsm(
    sim: bool,
    ca: Option<PathBuf>,
    root_out: Option<PathBuf>,
) -> Result<Box<dyn Nsm>, Error> {
    if sim {
        return open_sim(ca, root_out);
    }
    if ca.is_some() || root_out.is_some() {
        return Err(Error::Usage(
            "--sim-ca and --sim-root-out only apply with --sim".to_owned(),
        ));
    }
    open_nitro()
}

#[cfg(feature = "nitro")]
fn open_nitro() -> Result<Box<dyn Nsm>, Error> {
    Ok(Box::new(attestation::nsm::NitroNsm::open()?))
}

#[cfg(not(feature = "nitro"))]
fn open_nitro() -> Result<Box<dyn Nsm>, Error> {
    Err(Error::Usage(
        "this build has no Nitro NSM support (build with --features nitro), use --sim".to_owned(),
    ))
}
