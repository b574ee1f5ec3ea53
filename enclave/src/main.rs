//! `enclave`: the custody node.
//!
//! - `enclave run`: the node service (production: inside a Nitro Enclave with /dev/nsm
//!   and AF_VSOCK; `--sim`: a normal process with a simulated NSM and Unix sockets).
//! - `enclave attest`: write one attestation document about this node, for auditors.

use attestation::Verifier;
use attestation::nsm::{AttestationRequest, Nsm};
use clap::{Parser, Subcommand};
use enclave::runtime::{Environment, Node, NodeConfig, PrimeSource, ThresholdConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use transport::Backend;

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
    /// Run the node.
    Run {
        /// This node's id in the manifest.
        #[arg(long)]
        node_id: String,
        /// This enclave's vsock CID (in simulator mode: its socket files' CID).
        #[arg(long, default_value_t = 16)]
        cid: u32,
        /// Simulator only: directory of the Unix sockets standing in for vsock.
        #[arg(long)]
        sim_dir: Option<PathBuf>,
        /// Simulator only: the simulated root CA file shared by the cluster (created if
        /// absent); its root is trusted for peers' evidence.
        #[arg(long)]
        sim_ca: Option<PathBuf>,
        /// Simulator only: what the simulated NSM extends into PCR4, standing in for the
        /// parent instance's id on Nitro (default: the node id). Each node of a cluster
        /// needs its own, so that its documents match only its own manifest entry.
        #[arg(long, value_parser = parse_instance)]
        sim_instance: Option<String>,
        /// Accept peers running in debug mode (never in production).
        #[arg(long)]
        allow_debug: bool,
        /// Oldest peer evidence accepted, in seconds.
        #[arg(long, default_value_t = 60)]
        max_evidence_age_secs: u64,
        /// Attested channels are closed and re-attested after this many seconds.
        #[arg(long, default_value_t = 3600)]
        channel_lifetime_secs: u64,
        /// Pause between rounds of asking peers for this node's key.
        #[arg(long, default_value_t = 5)]
        retry_secs: u64,
        /// Pause between liveness checks of every peer.
        #[arg(long, default_value_t = 30)]
        peer_check_secs: u64,
        /// A threshold session ends when no protocol message arrives for this many seconds.
        #[arg(long, default_value_t = 60)]
        round_timeout_secs: u64,
        /// Presignatures kept ready per key and signing set (0: no pool).
        #[arg(long, default_value_t = 4)]
        presign_depth: usize,
        /// Sets of safe primes kept ready for auxiliary-info generation.
        #[arg(long, default_value_t = 2)]
        prime_pool_depth: usize,
        /// Threads searching for safe primes in the background from boot.
        #[arg(long, default_value_t = 1)]
        prime_generators: usize,
        /// Longest auxiliary-info generation waits for safe primes, in seconds.
        #[arg(long, default_value_t = 1800)]
        prime_wait_secs: u64,
        /// Simulator only: take safe primes from this file (written by the `mpc` crate's
        /// `gen-fixtures`) instead of searching; nothing is generated then. Each node of a
        /// simulated cluster needs its own file.
        #[arg(long)]
        sim_primes: Option<PathBuf>,
        /// Log format.
        #[arg(long, value_parser = ["json", "text"], default_value = "text")]
        log_format: String,
    },
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
        /// Simulator only: what the simulated NSM extends into PCR4, standing in for the
        /// parent instance's id on Nitro (default: nothing, PCR4 reads as zeros).
        #[arg(long, value_parser = parse_instance)]
        sim_instance: Option<String>,
    },
}

/// Bytes given on the command line as hex.
#[derive(Clone, Debug)]
struct Hex(Vec<u8>);

fn parse_hex(s: &str) -> Result<Hex, String> {
    hex::decode(s).map(Hex).map_err(|e| format!("not hex: {e}"))
}

/// Longest `--sim-instance`, in bytes (a Nitro instance id is 19 characters).
const MAX_SIM_INSTANCE_LEN: usize = 256;

fn parse_instance(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("empty".to_owned());
    }
    if s.len() > MAX_SIM_INSTANCE_LEN {
        return Err(format!(
            "{} bytes, at most {MAX_SIM_INSTANCE_LEN} are allowed",
            s.len()
        ));
    }
    Ok(s.to_owned())
}

/// What the simulated NSM is told; each field is refused in a production build.
#[derive(Debug, Default)]
struct SimOptions {
    ca: Option<PathBuf>,
    root_out: Option<PathBuf>,
    instance: Option<String>,
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
    #[error(transparent)]
    Node(#[from] enclave::runtime::NodeError),
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
            sim_instance,
        } => {
            let request = AttestationRequest {
                user_data: user_data.map(|h| h.0),
                nonce: nonce.map(|h| h.0),
                public_key: public_key.map(|h| h.0),
            };
            let options = SimOptions {
                ca: sim_ca,
                root_out: sim_root_out,
                instance: sim_instance,
            };
            let (nsm, _) = open_nsm(cli.sim, options)?;
            let document = nsm.attest(&request)?;
            write_file(&out, &document)
        }
        Command::Run {
            node_id,
            cid,
            sim_dir,
            sim_ca,
            sim_instance,
            allow_debug,
            max_evidence_age_secs,
            channel_lifetime_secs,
            retry_secs,
            peer_check_secs,
            round_timeout_secs,
            presign_depth,
            prime_pool_depth,
            prime_generators,
            prime_wait_secs,
            sim_primes,
            log_format,
        } => {
            transport::connect::validate_node_id(&node_id)
                .map_err(|e| Error::Usage(format!("--node-id: {e}")))?;
            init_logging(&log_format);
            let backend = match (cli.sim, sim_dir) {
                (true, Some(dir)) => Backend::Unix { dir },
                (true, None) => return Err(Error::Usage("--sim needs --sim-dir DIR".into())),
                (false, Some(_)) => {
                    return Err(Error::Usage("--sim-dir only applies with --sim".into()));
                }
                (false, None) => Backend::Vsock,
            };
            // A simulated node's PCR4 is its own unless told otherwise: nodes of one
            // image are then told apart by what they attest, not by the id they claim.
            let instance = match (cli.sim, sim_instance) {
                (true, None) => Some(node_id.clone()),
                (_, given) => given,
            };
            let options = SimOptions {
                ca: sim_ca,
                root_out: None,
                instance,
            };
            let (nsm, verifier) = open_nsm(cli.sim, options)?;
            let config = NodeConfig {
                node_id,
                cid,
                verifier,
                allow_debug,
                max_evidence_age: Duration::from_secs(max_evidence_age_secs),
                channel_lifetime: Duration::from_secs(channel_lifetime_secs),
                retry_interval: Duration::from_secs(retry_secs.max(1)),
                peer_check_interval: Duration::from_secs(peer_check_secs.max(1)),
                threshold: ThresholdConfig {
                    round_timeout: Duration::from_secs(round_timeout_secs.max(1)),
                    prime_wait: Duration::from_secs(prime_wait_secs),
                    presign_depth,
                    primes: prime_source(cli.sim, sim_primes, prime_pool_depth, prime_generators)?,
                },
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|source| Error::Io {
                    path: PathBuf::from("tokio runtime"),
                    source,
                })?;
            let result = runtime.block_on(async {
                let node = Node::new(config, Arc::from(nsm), Environment::parent(backend))?;
                node.run(shutdown_signal()).await?;
                Ok(())
            });
            // A session thread may be deep in big-integer arithmetic or waiting out a round;
            // nothing it holds needs saving (outputs are stored only when a session ends).
            runtime.shutdown_timeout(Duration::from_secs(1));
            result
        }
    }
}

fn prime_source(
    sim: bool,
    file: Option<PathBuf>,
    depth: usize,
    generators: usize,
) -> Result<PrimeSource, Error> {
    match file {
        None if generators == 0 => Err(Error::Usage(
            "--prime-generators 0 needs --sim-primes: nothing would produce safe primes".into(),
        )),
        None => Ok(PrimeSource::Generate {
            depth: depth.max(1),
            generators,
        }),
        Some(_) if !sim => Err(Error::Usage(
            "--sim-primes only applies with --sim".to_owned(),
        )),
        Some(path) => load_sim_primes(&path),
    }
}

#[cfg(feature = "sim")]
fn load_sim_primes(path: &std::path::Path) -> Result<PrimeSource, Error> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > mpc::sim::MAX_FIXTURE_LEN as u64 {
        return Err(Error::Usage(format!(
            "{}: larger than {} bytes",
            path.display(),
            mpc::sim::MAX_FIXTURE_LEN
        )));
    }
    let json = std::fs::read(path).map_err(io)?;
    let primes = mpc::sim::load_primes(&json)
        .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    Ok(PrimeSource::Preloaded(primes))
}

#[cfg(not(feature = "sim"))]
fn load_sim_primes(_: &std::path::Path) -> Result<PrimeSource, Error> {
    Err(Error::Usage(
        "this is a production build: it cannot load simulator primes".to_owned(),
    ))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.with_ansi(false).init();
    }
}

fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), Error> {
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(feature = "sim")]
fn open_sim(options: SimOptions) -> Result<(Box<dyn Nsm>, Verifier), Error> {
    use attestation::nsm::sim::{SimCa, SimMeasurements, SimNsm};
    let SimOptions {
        ca,
        root_out,
        instance,
    } = options;
    let ca_path = ca.ok_or_else(|| Error::Usage("--sim needs --sim-ca FILE".to_owned()))?;
    let now = std::time::SystemTime::now();
    let ca = SimCa::load_or_create(&ca_path, now)?;
    if let Some(path) = root_out {
        write_file(&path, ca.root_der())?;
    }
    let verifier = Verifier::aws_nitro()
        .trust_simulated_root(ca.root_der(), now)
        .map_err(|e| Error::Usage(format!("simulated root: {e}")))?;
    let mut measurements = SimMeasurements::of_current_exe()?;
    if let Some(instance) = instance {
        measurements = measurements.with_pcr4(instance.into_bytes());
    }
    Ok((Box::new(SimNsm::new(&ca, &measurements, now)?), verifier))
}

#[cfg(not(feature = "sim"))]
fn open_sim(_: SimOptions) -> Result<(Box<dyn Nsm>, Verifier), Error> {
    Err(Error::Usage(
        "this is a production build: it has no simulated NSM".to_owned(),
    ))
}

fn open_nsm(sim: bool, options: SimOptions) -> Result<(Box<dyn Nsm>, Verifier), Error> {
    if sim {
        return open_sim(options);
    }
    if options.ca.is_some() || options.root_out.is_some() || options.instance.is_some() {
        return Err(Error::Usage(
            "--sim-ca, --sim-root-out and --sim-instance only apply with --sim".to_owned(),
        ));
    }
    open_nitro()
}

#[cfg(feature = "nitro")]
fn open_nitro() -> Result<(Box<dyn Nsm>, Verifier), Error> {
    Ok((
        Box::new(attestation::nsm::NitroNsm::open()?),
        Verifier::production(),
    ))
}

#[cfg(not(feature = "nitro"))]
fn open_nitro() -> Result<(Box<dyn Nsm>, Verifier), Error> {
    Err(Error::Usage(
        "this build has no Nitro NSM support (build with --features nitro), use --sim".to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sim_instance_bounded() {
        let longest = "i".repeat(MAX_SIM_INSTANCE_LEN);
        assert_eq!(parse_instance(&longest).unwrap(), longest);
        assert!(parse_instance(&"i".repeat(MAX_SIM_INSTANCE_LEN + 1)).is_err());
        assert!(parse_instance("").is_err());
        assert_eq!(parse_instance("node-1").unwrap(), "node-1");
    }

    #[test]
    fn sim_options_refused_without_sim() {
        let instance = SimOptions {
            instance: Some("i-0123456789abcdef0".to_owned()),
            ..SimOptions::default()
        };
        let err = open_nsm(false, instance).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("--sim-instance only apply with --sim")),
            "{err:?}"
        );
    }
}
