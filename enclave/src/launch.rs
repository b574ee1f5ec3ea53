//! What the `enclave` binary starts a node with, from its command line: the provider's
//! attester and the roots trusted for peers' evidence ([`open_attester`]), and where the
//! node's sockets and blobs come from ([`placement`]). Each option belongs to a provider
//! or to the simulator; one given where it does not apply is a usage error
//! ([`LaunchError::Usage`]), never silently ignored.
//!
//! - `nitro`: inside a Nitro Enclave beside a parent: vsock (or, in simulator mode, Unix
//!   sockets), the parent's blob store, the NSM (or the simulated NSM).
//! - `gcp-cs`: a Confidential Space workload: no parent, so TCP listeners of its own, its
//!   peers dialled at their manifest addresses and its blobs in a directory; tokens from
//!   the Confidential Space launcher (or the simulated Confidential Space attester).
//!
//! A simulated node of either provider trusts each simulated root it is given, so that
//! Nitro and Confidential Space nodes of one simulated cluster verify each other.

use crate::runtime::DirectListen;
use attestation::{Attester, Provider, Verifier};
use std::net::SocketAddr;
use std::path::PathBuf;
use transport::Backend;

/// The vsock CID of a Nitro node when none is given.
pub const DEFAULT_CID: u32 = 16;

/// Why a node cannot start (or attest) as asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// Options that do not go together, or a required one missing.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Attester(#[from] attestation::AttestError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn usage(message: impl Into<String>) -> LaunchError {
    LaunchError::Usage(message.into())
}

/// What the command line says about the node's sockets and blobs.
#[derive(Debug, Clone, Default)]
pub struct PlacementOptions {
    /// Nitro simulator: the directory of the Unix sockets standing in for vsock.
    pub sim_dir: Option<PathBuf>,
    /// Nitro: the enclave's vsock CID.
    pub cid: Option<u32>,
    /// Confidential Space: where the node listens.
    pub peer_listen: Option<SocketAddr>,
    pub client_listen: Option<SocketAddr>,
    pub status_listen: Option<SocketAddr>,
    /// Confidential Space: the directory of the node's sealed blobs.
    pub blob_dir: Option<PathBuf>,
    /// Confidential Space: the Cloud Storage bucket of the node's sealed blobs, instead
    /// of a directory, with the folder in it, the storage API and the metadata server.
    pub blob_bucket: Option<String>,
    pub blob_prefix: Option<String>,
    pub blob_endpoint: Option<String>,
    pub metadata_endpoint: Option<String>,
}

/// Where a node without a parent keeps its sealed blobs: both are untrusted, as a
/// parent's store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobLocation {
    /// A directory (an attached disk, or the simulator's node directory).
    Dir(PathBuf),
    /// A Cloud Storage bucket: a Confidential Space VM has no persistent disk for its
    /// workload. `None` fields take the defaults (the node id as the folder, Google's
    /// endpoints).
    Bucket {
        bucket: String,
        prefix: Option<String>,
        endpoint: Option<String>,
        metadata_endpoint: Option<String>,
    },
}

/// Where a node's sockets and blobs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Beside a parent: vsock (or its simulator stand-in) and the parent's blob store.
    Parent { backend: Backend, cid: u32 },
    /// Without a parent: TCP listeners of its own and a blob directory.
    Direct {
        listen: DirectListen,
        blobs: BlobLocation,
    },
}

/// Where a node of `provider` gets its sockets and blobs, from `options`.
pub fn placement(
    provider: Provider,
    sim: bool,
    options: PlacementOptions,
) -> Result<Placement, LaunchError> {
    let PlacementOptions {
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
    } = options;
    let bucket_options =
        blob_prefix.is_some() || blob_endpoint.is_some() || metadata_endpoint.is_some();
    match provider {
        Provider::GcpCs => {
            if sim_dir.is_some() || cid.is_some() {
                return Err(usage(
                    "--sim-dir and --cid only apply with --provider nitro (a Confidential Space \
                     node has no parent and no vsock)",
                ));
            }
            let blobs = match (blob_dir, blob_bucket) {
                (Some(dir), None) if !bucket_options => BlobLocation::Dir(dir),
                (Some(_), None) => {
                    return Err(usage(
                        "--blob-prefix, --blob-endpoint and --metadata-endpoint only apply \
                         with --blob-bucket",
                    ));
                }
                (None, Some(bucket)) => BlobLocation::Bucket {
                    bucket,
                    prefix: blob_prefix,
                    endpoint: blob_endpoint,
                    metadata_endpoint,
                },
                (None, None) => {
                    return Err(usage(
                        "--provider gcp-cs needs --blob-dir DIR or --blob-bucket NAME for its \
                         blobs",
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(usage(
                        "give --blob-dir or --blob-bucket, not both: a node keeps its blobs in \
                         one place",
                    ));
                }
            };
            let default = DirectListen::default();
            Ok(Placement::Direct {
                listen: DirectListen {
                    peer: peer_listen.unwrap_or(default.peer),
                    client: client_listen.unwrap_or(default.client),
                    status: status_listen.unwrap_or(default.status),
                },
                blobs,
            })
        }
        Provider::Nitro => {
            if peer_listen.is_some()
                || client_listen.is_some()
                || status_listen.is_some()
                || blob_dir.is_some()
                || blob_bucket.is_some()
                || bucket_options
            {
                return Err(usage(
                    "--peer-listen, --client-listen, --status-listen, --blob-dir and \
                     --blob-bucket (and its options) only apply with --provider gcp-cs (a Nitro \
                     node's parent listens and keeps its blobs)",
                ));
            }
            let backend = match (sim, sim_dir) {
                (true, Some(dir)) => Backend::Unix { dir },
                (true, None) => return Err(usage("--sim needs --sim-dir DIR")),
                (false, Some(_)) => return Err(usage("--sim-dir only applies with --sim")),
                (false, None) => Backend::Vsock,
            };
            Ok(Placement::Parent {
                backend,
                cid: cid.unwrap_or(DEFAULT_CID),
            })
        }
        other => Err(unsupported(other)),
    }
}

fn unsupported(provider: Provider) -> LaunchError {
    usage(format!("provider {provider} is not supported by this node"))
}

/// What the command line says about the attester and the roots trusted.
#[derive(Debug, Clone, Default)]
pub struct AttesterOptions {
    /// Simulator: the simulated Nitro root CA file (created if absent). A Nitro node's
    /// documents are issued under it; any node trusts its root.
    pub sim_ca: Option<PathBuf>,
    /// Simulator: the simulated Confidential Space root CA file (created if absent). A
    /// Confidential Space node's tokens are issued under it; any node trusts its root.
    pub sim_gcp_ca: Option<PathBuf>,
    /// Simulator: also write the root this node's evidence chains to (DER) here.
    pub sim_root_out: Option<PathBuf>,
    /// Simulator: the host the simulated attester stands on (Nitro: what it extends into
    /// PCR4; Confidential Space: the instance its tokens name).
    pub sim_instance: Option<String>,
    /// Confidential Space: the launcher's socket.
    pub launcher_socket: Option<PathBuf>,
}

/// The attester of a node of `provider` and the roots it trusts for peers' evidence.
pub fn open_attester(
    provider: Provider,
    sim: bool,
    options: AttesterOptions,
) -> Result<(Box<dyn Attester>, Verifier), LaunchError> {
    if sim {
        if options.launcher_socket.is_some() {
            return Err(usage(
                "--launcher-socket does not apply with --sim (the simulated attester has none)",
            ));
        }
        return sim::open(provider, options);
    }
    if options.sim_ca.is_some()
        || options.sim_gcp_ca.is_some()
        || options.sim_root_out.is_some()
        || options.sim_instance.is_some()
    {
        return Err(usage(
            "--sim-ca, --sim-gcp-ca, --sim-root-out and --sim-instance only apply with --sim",
        ));
    }
    match provider {
        Provider::Nitro => {
            if options.launcher_socket.is_some() {
                return Err(usage(
                    "--launcher-socket only applies with --provider gcp-cs",
                ));
            }
            open_nitro()
        }
        Provider::GcpCs => {
            let socket = options
                .launcher_socket
                .unwrap_or_else(|| PathBuf::from(attestation::gcp::DEFAULT_LAUNCHER_SOCKET));
            Ok((
                Box::new(attestation::gcp::launcher::Launcher::new(socket)),
                Verifier::production(),
            ))
        }
        other => Err(unsupported(other)),
    }
}

#[cfg(feature = "nitro")]
fn open_nitro() -> Result<(Box<dyn Attester>, Verifier), LaunchError> {
    Ok((
        Box::new(attestation::nsm::NitroNsm::open()?),
        Verifier::production(),
    ))
}

#[cfg(not(feature = "nitro"))]
fn open_nitro() -> Result<(Box<dyn Attester>, Verifier), LaunchError> {
    Err(usage(
        "this build has no Nitro NSM support (build with --features nitro), use --sim",
    ))
}

#[cfg(feature = "sim")]
mod sim {
    use super::{AttesterOptions, LaunchError, unsupported, usage};
    use attestation::gcp::sim::{SimCsAttester, SimCsCa, SimWorkload};
    use attestation::nsm::sim::{SimCa, SimMeasurements, SimNsm};
    use attestation::{Attester, Provider, Verifier};
    use std::path::Path;
    use std::time::SystemTime;

    /// The instance a simulated Confidential Space attester names when none is given.
    const DEFAULT_CS_INSTANCE: &str = "sim-instance";
    const NEEDS_SIM_CA: &str = "--sim needs --sim-ca FILE";
    const NEEDS_SIM_GCP_CA: &str = "--sim with --provider gcp-cs needs --sim-gcp-ca FILE";

    fn write(path: &Path, bytes: &[u8]) -> Result<(), LaunchError> {
        std::fs::write(path, bytes).map_err(|source| LaunchError::Io {
            path: path.to_owned(),
            source,
        })
    }

    fn bad_root(what: &str, e: impl std::fmt::Display) -> LaunchError {
        usage(format!("{what}: {e}"))
    }

    /// The simulated attester of `provider`, under the simulated root given for it, and a
    /// verifier trusting the production roots and every simulated root given.
    pub(super) fn open(
        provider: Provider,
        options: AttesterOptions,
    ) -> Result<(Box<dyn Attester>, Verifier), LaunchError> {
        let AttesterOptions {
            sim_ca,
            sim_gcp_ca,
            sim_root_out,
            sim_instance,
            launcher_socket: _,
        } = options;
        // Nothing is created for a node that cannot start.
        match provider {
            Provider::Nitro if sim_ca.is_none() => return Err(usage(NEEDS_SIM_CA)),
            Provider::GcpCs if sim_gcp_ca.is_none() => return Err(usage(NEEDS_SIM_GCP_CA)),
            _ => {}
        }
        let now = SystemTime::now();
        let nitro_ca = sim_ca
            .map(|path| SimCa::load_or_create(&path, now))
            .transpose()?;
        let cs_ca = sim_gcp_ca
            .map(|path| SimCsCa::load_or_create(&path, now))
            .transpose()?;
        let mut verifier = Verifier::production();
        if let Some(ca) = &nitro_ca {
            verifier = verifier
                .trust_simulated_root(ca.root_der(), now)
                .map_err(|e| bad_root("simulated Nitro root", e))?;
        }
        if let Some(ca) = &cs_ca {
            verifier = verifier
                .trust_simulated_gcp_root(ca.root_der(), now)
                .map_err(|e| bad_root("simulated Confidential Space root", e))?;
        }
        let (attester, root): (Box<dyn Attester>, &[u8]) = match provider {
            Provider::Nitro => {
                let ca = nitro_ca.as_ref().ok_or_else(|| usage(NEEDS_SIM_CA))?;
                let mut measurements = SimMeasurements::of_current_exe()?;
                if let Some(instance) = sim_instance {
                    measurements = measurements.with_pcr4(instance.into_bytes());
                }
                (
                    Box::new(SimNsm::new(ca, &measurements, now)?),
                    ca.root_der(),
                )
            }
            Provider::GcpCs => {
                let ca = cs_ca.as_ref().ok_or_else(|| usage(NEEDS_SIM_GCP_CA))?;
                let instance = sim_instance.as_deref().unwrap_or(DEFAULT_CS_INSTANCE);
                let workload = SimWorkload::of_current_exe(instance)?;
                (
                    Box::new(SimCsAttester::new(ca, workload, now)?),
                    ca.root_der(),
                )
            }
            other => return Err(unsupported(other)),
        };
        if let Some(path) = sim_root_out {
            write(&path, root)?;
        }
        Ok((attester, verifier))
    }
}

#[cfg(not(feature = "sim"))]
mod sim {
    use super::{AttesterOptions, LaunchError, usage};
    use attestation::{Attester, Provider, Verifier};

    pub(super) fn open(
        _: Provider,
        _: AttesterOptions,
    ) -> Result<(Box<dyn Attester>, Verifier), LaunchError> {
        Err(usage(
            "this is a production build: it has no simulated attester",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage_text<T>(result: Result<T, LaunchError>) -> String {
        match result {
            Err(LaunchError::Usage(message)) => message,
            Err(other) => panic!("not a usage error: {other}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn a_nitro_node_is_placed_beside_its_parent() {
        let sim = PlacementOptions {
            sim_dir: Some("/tmp/sim".into()),
            ..PlacementOptions::default()
        };
        assert_eq!(
            placement(Provider::Nitro, true, sim).unwrap(),
            Placement::Parent {
                backend: Backend::Unix {
                    dir: "/tmp/sim".into()
                },
                cid: DEFAULT_CID,
            }
        );
        let production = PlacementOptions {
            cid: Some(21),
            ..PlacementOptions::default()
        };
        assert_eq!(
            placement(Provider::Nitro, false, production).unwrap(),
            Placement::Parent {
                backend: Backend::Vsock,
                cid: 21,
            }
        );
        let text = usage_text(placement(
            Provider::Nitro,
            true,
            PlacementOptions::default(),
        ));
        assert!(text.contains("--sim needs --sim-dir"), "{text}");
        let stray = PlacementOptions {
            sim_dir: Some("/tmp/sim".into()),
            ..PlacementOptions::default()
        };
        let text = usage_text(placement(Provider::Nitro, false, stray));
        assert!(text.contains("--sim-dir only applies with --sim"), "{text}");
    }

    #[test]
    fn a_nitro_node_refuses_what_only_a_node_without_a_parent_uses() {
        let listen: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        for options in [
            PlacementOptions {
                blob_dir: Some("/data".into()),
                ..PlacementOptions::default()
            },
            PlacementOptions {
                peer_listen: Some(listen),
                ..PlacementOptions::default()
            },
            PlacementOptions {
                client_listen: Some(listen),
                ..PlacementOptions::default()
            },
            PlacementOptions {
                status_listen: Some(listen),
                ..PlacementOptions::default()
            },
            PlacementOptions {
                blob_bucket: Some("custody-blobs".into()),
                ..PlacementOptions::default()
            },
            PlacementOptions {
                metadata_endpoint: Some("http://127.0.0.1:8080".into()),
                ..PlacementOptions::default()
            },
        ] {
            let text = usage_text(placement(Provider::Nitro, false, options));
            assert!(text.contains("only apply with --provider gcp-cs"), "{text}");
        }
    }

    #[test]
    fn a_confidential_space_node_keeps_its_blobs_in_one_place() {
        let bucket = PlacementOptions {
            blob_bucket: Some("custody-blobs".into()),
            blob_prefix: Some("node-3".into()),
            ..PlacementOptions::default()
        };
        assert_eq!(
            placement(Provider::GcpCs, false, bucket).unwrap(),
            Placement::Direct {
                listen: DirectListen::default(),
                blobs: BlobLocation::Bucket {
                    bucket: "custody-blobs".into(),
                    prefix: Some("node-3".into()),
                    endpoint: None,
                    metadata_endpoint: None,
                },
            }
        );
        let both = PlacementOptions {
            blob_dir: Some("/data".into()),
            blob_bucket: Some("custody-blobs".into()),
            ..PlacementOptions::default()
        };
        let text = usage_text(placement(Provider::GcpCs, false, both));
        assert!(text.contains("not both"), "{text}");
        let stray = PlacementOptions {
            blob_dir: Some("/data".into()),
            blob_endpoint: Some("http://127.0.0.1:4443".into()),
            ..PlacementOptions::default()
        };
        let text = usage_text(placement(Provider::GcpCs, false, stray));
        assert!(text.contains("only apply with --blob-bucket"), "{text}");
    }

    #[test]
    fn a_confidential_space_node_listens_itself_and_keeps_a_blob_directory() {
        let given = PlacementOptions {
            blob_dir: Some("/data/blobs".into()),
            client_listen: Some("10.0.0.5:443".parse().unwrap()),
            ..PlacementOptions::default()
        };
        assert_eq!(
            placement(Provider::GcpCs, false, given).unwrap(),
            Placement::Direct {
                listen: DirectListen {
                    client: "10.0.0.5:443".parse().unwrap(),
                    ..DirectListen::default()
                },
                blobs: BlobLocation::Dir("/data/blobs".into()),
            }
        );
        let text = usage_text(placement(
            Provider::GcpCs,
            true,
            PlacementOptions::default(),
        ));
        assert!(text.contains("needs --blob-dir"), "{text}");
        for options in [
            PlacementOptions {
                sim_dir: Some("/tmp/sim".into()),
                blob_dir: Some("/data".into()),
                ..PlacementOptions::default()
            },
            PlacementOptions {
                cid: Some(16),
                blob_dir: Some("/data".into()),
                ..PlacementOptions::default()
            },
        ] {
            let text = usage_text(placement(Provider::GcpCs, true, options));
            assert!(text.contains("only apply with --provider nitro"), "{text}");
        }
    }

    #[test]
    fn simulator_options_are_refused_without_sim() {
        for options in [
            AttesterOptions {
                sim_instance: Some("i-0123456789abcdef0".to_owned()),
                ..AttesterOptions::default()
            },
            AttesterOptions {
                sim_gcp_ca: Some("/tmp/gcp-ca".into()),
                ..AttesterOptions::default()
            },
            AttesterOptions {
                sim_ca: Some("/tmp/ca".into()),
                ..AttesterOptions::default()
            },
        ] {
            for provider in [Provider::Nitro, Provider::GcpCs] {
                let text = usage_text(open_attester(provider, false, options.clone()));
                assert!(
                    text.contains("--sim-instance only apply with --sim"),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn the_launcher_socket_is_for_a_confidential_space_node_in_production_only() {
        let options = AttesterOptions {
            launcher_socket: Some("/run/launcher.sock".into()),
            ..AttesterOptions::default()
        };
        let text = usage_text(open_attester(Provider::Nitro, false, options.clone()));
        assert!(
            text.contains("only applies with --provider gcp-cs"),
            "{text}"
        );
        let text = usage_text(open_attester(Provider::GcpCs, true, options.clone()));
        assert!(text.contains("does not apply with --sim"), "{text}");
        let (attester, _) = open_attester(Provider::GcpCs, false, options).unwrap();
        assert_eq!(attester.provider(), Provider::GcpCs);
    }

    /// A simulated Nitro node and a simulated Confidential Space node, each given both
    /// simulated roots, verify each other's evidence; a node given only its own root does
    /// not trust the other's.
    #[cfg(feature = "sim")]
    #[test]
    fn simulated_nodes_of_both_providers_trust_each_other() {
        let dir = std::env::temp_dir().join(format!("enclave-launch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let options = |instance: &str| AttesterOptions {
            sim_ca: Some(dir.join("ca")),
            sim_gcp_ca: Some(dir.join("gcp-ca")),
            sim_instance: Some(instance.to_owned()),
            ..AttesterOptions::default()
        };
        let (nitro, nitro_trusts) =
            open_attester(Provider::Nitro, true, options("node-1")).unwrap();
        let root_out = dir.join("gcp-root.der");
        let (cs, cs_trusts) = open_attester(
            Provider::GcpCs,
            true,
            AttesterOptions {
                sim_root_out: Some(root_out.clone()),
                ..options("node-2")
            },
        )
        .unwrap();
        assert_eq!(
            (nitro.provider(), cs.provider()),
            (Provider::Nitro, Provider::GcpCs)
        );
        let request = attestation::AttestationRequest {
            nonce: Some(vec![7; 32]),
            ..attestation::AttestationRequest::default()
        };
        let now = std::time::SystemTime::now();
        let from_nitro = nitro.attest(&request).unwrap();
        let from_cs = cs.attest(&request).unwrap();
        for verifier in [&nitro_trusts, &cs_trusts] {
            assert_eq!(
                verifier.verify(&from_nitro, now).unwrap().provider(),
                Provider::Nitro
            );
            assert_eq!(
                verifier.verify(&from_cs, now).unwrap().provider(),
                Provider::GcpCs
            );
        }
        // The root written is the one the token chains to.
        let written = std::fs::read(&root_out).unwrap();
        let only_written = Verifier::production()
            .trust_simulated_gcp_root(&written, now)
            .unwrap();
        only_written.verify(&from_cs, now).unwrap();
        // Given only the Nitro root, a node does not trust the Confidential Space one.
        let (_, nitro_only) = open_attester(
            Provider::Nitro,
            true,
            AttesterOptions {
                sim_gcp_ca: None,
                ..options("node-1")
            },
        )
        .unwrap();
        assert!(nitro_only.verify(&from_cs, now).is_err());
        nitro_only.verify(&from_nitro, now).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(feature = "sim")]
    #[test]
    fn a_simulated_node_needs_the_root_of_its_own_provider() {
        let text = usage_text(open_attester(
            Provider::Nitro,
            true,
            AttesterOptions::default(),
        ));
        assert!(text.contains("--sim needs --sim-ca"), "{text}");
        let text = usage_text(open_attester(
            Provider::GcpCs,
            true,
            AttesterOptions::default(),
        ));
        assert!(text.contains("needs --sim-gcp-ca"), "{text}");
    }
}
