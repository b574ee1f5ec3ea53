//! `enclave`: the custody node.
//!
//! - `enclave run`: the node service. `--provider nitro` (the default): inside a Nitro
//!   Enclave with /dev/nsm and AF_VSOCK beside its parent. `--provider gcp-cs`: a
//!   Confidential Space workload with no parent, listening on TCP and keeping its blobs in
//!   a directory. `--sim`: a normal process with the provider's simulated attester (and,
//!   for Nitro, Unix sockets standing in for vsock).
//! - `enclave attest`: write one piece of evidence about this node, for auditors (a Nitro
//!   attestation document, or a Confidential Space token bundle).
//!
//! Which option belongs to which provider, and to the simulator: [`enclave::launch`].

use attestation::{AttestationRequest, Provider};
use clap::{Parser, Subcommand};
use enclave::blobs::DirBlobs;
use enclave::gcs::{GcsBlobs, GcsConfig, TokenSource};
use enclave::launch::{
    self, AttesterOptions, BlobLocation, LaunchError, Placement, PlacementOptions,
};
use enclave::runtime::{Environment, Node, NodeConfig, PrimeSource, ThresholdConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "enclave", version, about = "MPC custody node (enclave side)")]
struct Cli {
    /// Run as a normal process with a simulated NSM instead of /dev/nsm.
    #[arg(long, global = true)]
    sim: bool,
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start; the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Run the node.
    Run {
        /// This node's id in the manifest.
        #[arg(long)]
        node_id: String,
        /// The TEE the node runs in: nitro (beside a parent, over vsock) or gcp-cs
        /// (Confidential Space: no parent; TCP and a blob directory).
        #[arg(long, value_parser = parse_provider, default_value = "nitro")]
        provider: Provider,
        /// Nitro only: this enclave's vsock CID (in simulator mode: its socket files' CID)
        /// [default: 16].
        #[arg(long)]
        cid: Option<u32>,
        /// Nitro simulator only: directory of the Unix sockets standing in for vsock.
        #[arg(long)]
        sim_dir: Option<PathBuf>,
        /// gcp-cs only: where peers connect [default: 0.0.0.0:9000].
        #[arg(long)]
        peer_listen: Option<SocketAddr>,
        /// gcp-cs only: where operators and tools connect [default: 0.0.0.0:9001].
        #[arg(long)]
        client_listen: Option<SocketAddr>,
        /// gcp-cs only: the health line's port [default: 127.0.0.1:9100].
        #[arg(long)]
        status_listen: Option<SocketAddr>,
        /// gcp-cs only: the directory of the node's sealed blobs (on an attached disk;
        /// untrusted, as a parent is). Created if absent.
        #[arg(long)]
        blob_dir: Option<PathBuf>,
        /// gcp-cs only, instead of --blob-dir: the Cloud Storage bucket of the node's
        /// sealed blobs (a Confidential Space VM has no persistent disk for its workload;
        /// the bucket is untrusted, as a parent is). Tokens come from the VM's metadata
        /// server, for its service account.
        #[arg(long)]
        blob_bucket: Option<String>,
        /// With --blob-bucket: the folder of this node's blobs in the bucket [default:
        /// the node id].
        #[arg(long)]
        blob_prefix: Option<String>,
        /// With --blob-bucket: the storage JSON API [default:
        /// https://storage.googleapis.com]; plain HTTP only to a loopback emulator.
        #[arg(long)]
        blob_endpoint: Option<String>,
        /// With --blob-bucket: the metadata server [default: http://169.254.169.254].
        #[arg(long)]
        metadata_endpoint: Option<String>,
        /// gcp-cs only, not with --sim: the Confidential Space launcher's socket
        /// [default: /run/container_launcher/teeserver.sock].
        #[arg(long)]
        launcher_socket: Option<PathBuf>,
        /// Simulator only: the simulated Nitro root CA file shared by the cluster (created
        /// if absent); its root is trusted for peers' evidence. A Nitro node needs it.
        #[arg(long)]
        sim_ca: Option<PathBuf>,
        /// Simulator only: the simulated Confidential Space root CA file shared by the
        /// cluster (created if absent); its root is trusted for peers' evidence. A gcp-cs
        /// node needs it.
        #[arg(long)]
        sim_gcp_ca: Option<PathBuf>,
        /// Simulator only: the host the simulated attester stands on (default: the node
        /// id): for Nitro, what the simulated NSM extends into PCR4, standing in for the
        /// parent instance's id; for gcp-cs, the instance its tokens name. Each node of a
        /// cluster needs its own, so that its evidence matches only its own manifest entry.
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
    /// Write fresh evidence about this node: a Nitro attestation document (raw COSE
    /// bytes) or a Confidential Space token bundle (JSON).
    Attest {
        /// Where to write the evidence.
        #[arg(long)]
        out: PathBuf,
        /// The TEE the node runs in: nitro or gcp-cs.
        #[arg(long, value_parser = parse_provider, default_value = "nitro")]
        provider: Provider,
        /// gcp-cs only, not with --sim: the Confidential Space launcher's socket
        /// [default: /run/container_launcher/teeserver.sock].
        #[arg(long)]
        launcher_socket: Option<PathBuf>,
        /// Nonce to bind, hex (at most 512 bytes).
        #[arg(long, value_parser = parse_hex)]
        nonce: Option<Hex>,
        /// User data to bind, hex (at most 512 bytes).
        #[arg(long, value_parser = parse_hex)]
        user_data: Option<Hex>,
        /// Public key to bind, hex (1 to 1024 bytes).
        #[arg(long, value_parser = parse_hex)]
        public_key: Option<Hex>,
        /// Simulator only: the simulated Nitro root CA file, created if absent.
        #[arg(long)]
        sim_ca: Option<PathBuf>,
        /// Simulator only: the simulated Confidential Space root CA file, created if
        /// absent.
        #[arg(long)]
        sim_gcp_ca: Option<PathBuf>,
        /// Simulator only: also write the simulated root certificate (DER) the evidence
        /// chains to here, for `attest verify --sim-root`.
        #[arg(long)]
        sim_root_out: Option<PathBuf>,
        /// Simulator only: the host the simulated attester stands on: for Nitro, what it
        /// extends into PCR4 (default: nothing, PCR4 reads as zeros); for gcp-cs, the
        /// instance its token names (default: `sim-instance`).
        #[arg(long, value_parser = parse_instance)]
        sim_instance: Option<String>,
    },
}

fn parse_provider(s: &str) -> Result<Provider, String> {
    Provider::from_name(s).ok_or_else(|| format!("unknown provider {s:?} (nitro or gcp-cs)"))
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

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Attester(#[from] attestation::AttestError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Node(#[from] enclave::runtime::NodeError),
    #[error("{0}")]
    Usage(String),
    #[error("blob directory: {0}")]
    BlobDir(#[from] transport::blob_dir::DirError),
}

impl From<LaunchError> for Error {
    fn from(e: LaunchError) -> Self {
        match e {
            LaunchError::Usage(message) => Error::Usage(message),
            LaunchError::Attester(e) => Error::Attester(e),
            LaunchError::Io { path, source } => Error::Io { path, source },
            other => Error::Usage(other.to_string()),
        }
    }
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
            provider,
            launcher_socket,
            nonce,
            user_data,
            public_key,
            sim_ca,
            sim_gcp_ca,
            sim_root_out,
            sim_instance,
        } => {
            let request = AttestationRequest {
                user_data: user_data.map(|h| h.0),
                nonce: nonce.map(|h| h.0),
                public_key: public_key.map(|h| h.0),
            };
            let options = AttesterOptions {
                sim_ca,
                sim_gcp_ca,
                sim_root_out,
                sim_instance,
                launcher_socket,
            };
            let (attester, _) = launch::open_attester(provider, cli.sim, options)?;
            let evidence = attester.attest(&request)?;
            write_file(&out, &evidence)
        }
        Command::Run {
            node_id,
            provider,
            cid,
            sim_dir,
            peer_listen,
            client_listen,
            status_listen,
            blob_dir,
            blob_bucket,
            blob_prefix,
            blob_endpoint,
            metadata_endpoint,
            launcher_socket,
            sim_ca,
            sim_gcp_ca,
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
            let placement = launch::placement(
                provider,
                cli.sim,
                PlacementOptions {
                    sim_dir,
                    cid,
                    peer_listen,
                    client_listen,
                    status_listen,
                    blob_dir,
                    blob_bucket,
                    blob_prefix,
                    blob_endpoint,
                    metadata_endpoint,
                },
            )?;
            // A simulated node's host is its own unless told otherwise: nodes of one
            // image are then told apart by what they attest, not by the id they claim.
            let instance = match (cli.sim, sim_instance) {
                (true, None) => Some(node_id.clone()),
                (_, given) => given,
            };
            let options = AttesterOptions {
                sim_ca,
                sim_gcp_ca,
                sim_root_out: None,
                sim_instance: instance,
                launcher_socket,
            };
            let (attester, verifier) = launch::open_attester(provider, cli.sim, options)?;
            let cid = match &placement {
                Placement::Parent { cid, .. } => *cid,
                Placement::Direct { .. } => launch::DEFAULT_CID,
            };
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
            let attester = Arc::from(attester);
            let result = runtime.block_on(async {
                match placement {
                    Placement::Parent { backend, .. } => {
                        let env = Environment::parent(backend);
                        Node::new(config, attester, env)?
                            .run(shutdown_signal())
                            .await?;
                    }
                    Placement::Direct {
                        listen,
                        blobs: BlobLocation::Dir(dir),
                    } => {
                        let (blobs, removed) = DirBlobs::open(&dir)?;
                        tracing::info!(dir = %dir.display(), stale_temp_files_removed = removed, "blob directory opened");
                        let env = Environment::direct(listen, blobs);
                        Node::new(config, attester, env)?
                            .run(shutdown_signal())
                            .await?;
                    }
                    Placement::Direct {
                        listen,
                        blobs:
                            BlobLocation::Bucket {
                                bucket,
                                prefix,
                                endpoint,
                                metadata_endpoint,
                            },
                    } => {
                        let prefix = prefix.unwrap_or_else(|| config.node_id.clone());
                        let mut gcs = GcsConfig::new(bucket, prefix);
                        if let Some(endpoint) = endpoint {
                            gcs.endpoint = endpoint;
                        }
                        if let Some(endpoint) = metadata_endpoint {
                            gcs.token_source = TokenSource::Metadata { endpoint };
                        }
                        let blobs = GcsBlobs::new(gcs)
                            .map_err(|e| Error::Usage(format!("--blob-bucket: {e}")))?;
                        tracing::info!(location = %blobs.location(), "sealed blobs in Cloud Storage");
                        let env = Environment::direct(listen, blobs);
                        Node::new(config, attester, env)?
                            .run(shutdown_signal())
                            .await?;
                    }
                }
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
    fn providers_by_name() {
        assert_eq!(parse_provider("nitro").unwrap(), Provider::Nitro);
        assert_eq!(parse_provider("gcp-cs").unwrap(), Provider::GcpCs);
        assert_eq!(
            parse_provider("gcp-confidential-space").unwrap(),
            Provider::GcpCs
        );
        assert!(parse_provider("sev").is_err());
        assert!(parse_provider("").is_err());
    }
}
