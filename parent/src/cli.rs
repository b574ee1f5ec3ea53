//! Command line and logging.

use crate::server::Config;
use clap::{Parser, ValueEnum};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tracing_subscriber::EnvFilter;
use transport::Backend;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The host-side relay and sealed-blob store beside a custody node's enclave.
///
/// Inbound TCP connections on the peer and client ports are spliced into the enclave;
/// the enclave's outbound requests reach only nodes listed in the manifest; sealed
/// blobs are stored under the blob directory. The parent holds no key.
#[derive(Debug, Parser)]
#[command(name = "parent", version)]
pub struct Args {
    /// This node's id (as in the manifest); the enclave may not dial it.
    #[arg(long, value_parser = node_id)]
    pub node_id: String,
    /// The enclave's vsock CID.
    #[arg(long)]
    pub enclave_cid: u32,
    /// The manifest file, source of the outbound address book (reloaded on SIGHUP).
    #[arg(long)]
    pub manifest: PathBuf,
    /// Where sealed blobs are stored (created 0700 if missing).
    #[arg(long)]
    pub blob_dir: PathBuf,
    /// Simulator mode: Unix sockets `DIR/vsock-CID-PORT.sock` instead of AF_VSOCK.
    #[arg(long, value_name = "DIR")]
    pub sim_dir: Option<PathBuf>,
    /// TCP address for other nodes' connections.
    #[arg(long, default_value = "0.0.0.0:9000")]
    pub peer_listen: SocketAddr,
    /// TCP address for operators' and applications' connections.
    #[arg(long, default_value = "0.0.0.0:9001")]
    pub client_listen: SocketAddr,
    /// TCP address for GET /healthz and /metrics.
    #[arg(long, default_value = "127.0.0.1:9100")]
    pub admin_listen: SocketAddr,
    /// The enclave's outbound connections (to other nodes) relayed at once. Inbound
    /// connections never draw from this budget.
    #[arg(long, default_value_t = crate::sources::DEFAULT_MAX_OUTBOUND, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_outbound: u32,
    /// Peer-listener connections kept for the hosts of the manifest's nodes (each host
    /// at most an equal share). With --peer-shared at most the enclave's 64 peer slots.
    #[arg(long, default_value_t = crate::sources::DEFAULT_PEER_RESERVED, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub peer_reserved: u32,
    /// Peer-listener connections that all sources not in the manifest share.
    #[arg(long, default_value_t = crate::sources::DEFAULT_PEER_SHARED, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub peer_shared: u32,
    /// Client-listener connections relayed at once (at most the enclave's 32 client slots).
    #[arg(long, default_value_t = crate::sources::DEFAULT_CLIENT_MAX, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub client_max: u32,
    /// Connections one source (an IPv4 address, or an IPv6 /64) may have open at once in
    /// the peer listener's shared pool, and as many on the client listener; more are
    /// closed at once.
    #[arg(long, default_value_t = crate::sources::DEFAULT_MAX_PER_SOURCE, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_per_source: u32,
    /// Seconds without a byte in either direction after which a relayed connection closes.
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout: u64,
    /// Log lines on stderr: `text` for people, `json` (one object per line) for
    /// collectors. `RUST_LOG` sets the level (default `info`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

fn node_id(s: &str) -> Result<String, String> {
    transport::connect::validate_node_id(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

impl Args {
    pub fn into_config(self) -> Config {
        Config {
            node_id: self.node_id,
            enclave_cid: self.enclave_cid,
            manifest: self.manifest,
            blob_dir: self.blob_dir,
            backend: match self.sim_dir {
                Some(dir) => Backend::Unix { dir },
                None => Backend::Vsock,
            },
            peer_listen: self.peer_listen,
            client_listen: self.client_listen,
            admin_listen: self.admin_listen,
            max_outbound: count(self.max_outbound),
            peer_reserved: count(self.peer_reserved),
            peer_shared: count(self.peer_shared),
            client_max: count(self.client_max),
            max_per_source: count(self.max_per_source),
            idle_timeout: Duration::from_secs(self.idle_timeout),
        }
    }
}

fn count(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Args, clap::Error> {
        let base = [
            "parent",
            "--node-id",
            "node-1",
            "--enclave-cid",
            "16",
            "--manifest",
            "m.json",
            "--blob-dir",
            "blobs",
        ];
        Args::try_parse_from(base.iter().chain(extra))
    }

    #[test]
    fn defaults_and_simulator_mode() {
        let config = parse(&[]).unwrap().into_config();
        assert_eq!(config.backend, Backend::Vsock);
        assert_eq!(config.max_outbound, 64);
        assert_eq!(config.peer_reserved, 48);
        assert_eq!(config.peer_shared, 16);
        assert_eq!(config.client_max, 24);
        assert_eq!(config.max_per_source, 4);
        assert_eq!(
            parse(&["--max-per-source", "1"])
                .unwrap()
                .into_config()
                .max_per_source,
            1
        );
        assert_eq!(config.idle_timeout, Duration::from_secs(300));
        assert_eq!(config.admin_listen.to_string(), "127.0.0.1:9100");
        let config = parse(&["--sim-dir", "/tmp/sim"]).unwrap().into_config();
        assert_eq!(
            config.backend,
            Backend::Unix {
                dir: "/tmp/sim".into()
            }
        );
    }

    #[test]
    fn refuses_bad_values() {
        assert!(parse(&["--max-outbound", "0"]).is_err());
        assert!(parse(&["--peer-reserved", "65"]).is_err());
        assert!(parse(&["--peer-shared", "0"]).is_err());
        assert!(parse(&["--client-max", "33"]).is_err());
        assert!(parse(&["--client-max", "32"]).is_ok());
        assert!(parse(&["--max-per-source", "0"]).is_err());
        assert!(parse(&["--idle-timeout", "0"]).is_err());
        assert!(parse(&["--peer-listen", "nowhere"]).is_err());
        assert!(parse(&["--log-format", "xml"]).is_err());
        let bad_id = Args::try_parse_from([
            "parent",
            "--node-id",
            "../node",
            "--enclave-cid",
            "16",
            "--manifest",
            "m",
            "--blob-dir",
            "b",
        ]);
        assert!(bad_id.is_err());
    }
}
