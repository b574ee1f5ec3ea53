//! The client port's attested TLS, both ends: what operators' tools use to reach a node.
//!
//! 1. TLS 1.3 (rustls on aws-lc-rs) terminating inside the node, with the node's per-boot
//!    key; the client presents no certificate (operators authenticate each command with
//!    their manifest key instead, see [`protocol::operator_api::SignedCommand`]).
//! 2. The node sends a hello: its node id and fresh evidence binding as nonce this
//!    connection's exporter value (label [`CLIENT_EXPORTER_LABEL`], 32 bytes), as public
//!    key its TLS key, as user data the hash of the manifest it runs (absent before it has
//!    one).
//! 3. The client checks it ([`connect`]) with the check nodes apply to each other
//!    ([`super::evidence::check_evidence`]): the evidence verifies under a trusted root,
//!    its measurements are one of the sets the client expects for that node id, it is
//!    fresh and not from a debug-mode TEE, it carries this connection's exporter and binds
//!    the key the node presented in TLS, and the manifest it names is one the client pins
//!    ([`ManifestRule`]). Only then does the client send a request.
//!
//! The manifest check is what keeps an operator out of a look-alike cluster: a hostile
//! parent can start a genuine enclave of the same image on the same host (same
//! measurements) under a manifest of its own that lists the operator's public key, and
//! route the operator's connections to it. Its evidence verifies; only the manifest hash
//! in it differs.

use super::evidence::{Hello, MAX_HELLO_LEN, Requirement, check_evidence};
use super::{ChannelError, TLS_SERVER_NAME, TlsIdentity, peer_spki, verifier};
use attestation::{AttestationRequest, Attester, Measurements, Provider, Verifier};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use transport::frame::{read_frame, write_frame};

/// Label of the TLS exporter whose value the node's client-port document carries as nonce.
pub const CLIENT_EXPORTER_LABEL: &[u8] = b"EXPORTER-tee-custody-client-port-v1";
/// Time allowed for TLS and the node's hello.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// The node's TLS configuration for its client port: TLS 1.3 only, no client certificate,
/// no resumption.
pub fn server_config(identity: &TlsIdentity) -> Result<Arc<ServerConfig>, ChannelError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .with_no_client_auth()
        .with_single_cert(vec![identity.certificate()], identity.private_key())
        .map_err(tls)?;
    server.send_tls13_tickets = 0;
    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(Arc::new(server))
}

/// A client's TLS configuration: the node's certificate is checked only for the handshake
/// signature; the attestation decides whether the node is trusted.
pub fn client_config() -> Result<Arc<ClientConfig>, ChannelError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(verifier::DeferToAttestation::new(provider.clone()));
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    client.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(client))
}

fn tls(e: rustls::Error) -> ChannelError {
    ChannelError::Tls(e.to_string())
}

fn exporter<D>(conn: &rustls::ConnectionCommon<D>) -> Result<[u8; 32], ChannelError> {
    conn.export_keying_material([0u8; 32], CLIENT_EXPORTER_LABEL, None)
        .map_err(|e| ChannelError::Tls(e.to_string()))
}

/// A client-port connection after the handshake, at either end.
#[derive(Debug)]
pub struct ClientPortStream<S> {
    pub stream: S,
    /// This connection's exporter value: operators sign it with each command.
    pub exporter: [u8; 32],
}

/// Node side: TLS, then this node's hello.
pub async fn accept<S>(
    stream: S,
    config: Arc<ServerConfig>,
    node_id: &str,
    identity: &TlsIdentity,
    attester: Arc<dyn Attester>,
    manifest_hash: Option<[u8; 32]>,
) -> Result<ClientPortStream<tokio_rustls::server::TlsStream<S>>, ChannelError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let mut tls = tokio_rustls::TlsAcceptor::from(config)
            .accept(stream)
            .await?;
        let exporter = exporter(tls.get_ref().1)?;
        let request = AttestationRequest {
            user_data: manifest_hash.map(|h| h.to_vec()),
            nonce: Some(exporter.to_vec()),
            public_key: Some(identity.spki_der().to_vec()),
        };
        let document = tokio::task::spawn_blocking(move || attester.attest(&request))
            .await
            .map_err(|e| ChannelError::Io(std::io::Error::other(e.to_string())))??;
        let hello = Hello {
            node_id: node_id.to_owned(),
            document,
        };
        write_frame(&mut tls, &hello.encode()?, MAX_HELLO_LEN).await?;
        Ok(ClientPortStream {
            stream: tls,
            exporter,
        })
    })
    .await
    .map_err(|_| ChannelError::Timeout)?
}

/// What a client requires of one node.
#[derive(Debug, Clone)]
pub struct NodeExpectation {
    pub node_id: String,
    /// Measurement sets accepted for this node (any one must match).
    pub measurements: Vec<Measurements>,
    /// Roots trusted for the node's evidence.
    pub verifier: Verifier,
    pub max_evidence_age: Duration,
    pub allow_debug: bool,
    /// The manifests the node may run for this request.
    pub manifest: ManifestRule,
}

/// Which manifest (by the hash the node's attestation carries) a client accepts a node to
/// run, decided before anything is sent to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestRule {
    /// Exactly the pinned manifest: every command.
    Pinned([u8; 32]),
    /// The pinned manifest, or none yet: a status question, which carries nothing.
    PinnedOrNone([u8; 32]),
    /// Submitting the manifest `submitted` (the pinned one or an approved successor): the
    /// node runs the pinned manifest, the submitted one, or none yet.
    Submitting {
        pinned: [u8; 32],
        submitted: [u8; 32],
    },
    /// A peer node: exactly the manifest this node runs (a refusal is
    /// [`ChannelError::ManifestMismatch`]).
    Same([u8; 32]),
    /// Simulator test instruments only, never the operator's client: any manifest, or
    /// none.
    #[cfg(feature = "sim")]
    Unchecked,
}

/// A manifest hash in short form: its first 8 bytes, hex.
pub fn short_hash(hash: &[u8; 32]) -> String {
    hex::encode(hash.get(..8).unwrap_or_default())
}

impl ManifestRule {
    /// Whether a node `peer` whose attestation names `runs` may be sent the request.
    pub fn check(&self, peer: &str, runs: Option<&[u8; 32]>) -> Result<(), ChannelError> {
        let (pinned, also, none_ok) = match self {
            ManifestRule::Same(ours) if runs == Some(ours) => return Ok(()),
            ManifestRule::Same(_) => {
                return Err(ChannelError::ManifestMismatch {
                    peer: peer.to_owned(),
                });
            }
            ManifestRule::Pinned(pinned) => (pinned, None, false),
            ManifestRule::PinnedOrNone(pinned) => (pinned, None, true),
            ManifestRule::Submitting { pinned, submitted } => (pinned, Some(submitted), true),
            #[cfg(feature = "sim")]
            ManifestRule::Unchecked => return Ok(()),
        };
        let accepted = match runs {
            None => none_ok,
            Some(hash) => hash == pinned || also == Some(hash),
        };
        if accepted {
            return Ok(());
        }
        Err(ChannelError::ManifestNotPinned {
            peer: peer.to_owned(),
            runs: runs.map_or("none (no manifest yet)".to_owned(), short_hash),
            pinned: match also {
                Some(submitted) => format!(
                    "{} (or the submitted {})",
                    short_hash(pinned),
                    short_hash(submitted)
                ),
                None => short_hash(pinned),
            },
        })
    }
}

impl NodeExpectation {
    fn requirement(&self) -> Requirement<'_> {
        Requirement {
            node_id: &self.node_id,
            measurements: &self.measurements,
            verifier: &self.verifier,
            max_evidence_age: self.max_evidence_age,
            allow_debug: self.allow_debug,
            manifest: &self.manifest,
        }
    }
}

/// What the client learned from a node's verified hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedNode {
    pub node_id: String,
    /// The provider whose evidence the node gave.
    pub provider: Provider,
    /// The attester instance that made the evidence (Nitro: the module id).
    pub module_id: String,
    /// The measurement of the node's code (Nitro: PCR0), hex.
    pub pcr0: String,
    /// The manifest the node runs, if it has one.
    pub manifest_hash: Option<[u8; 32]>,
}

/// Client side: TLS over `stream`, then the node's hello, checked against `expect`.
pub async fn connect<S>(
    stream: S,
    expect: &NodeExpectation,
) -> Result<
    (
        ClientPortStream<tokio_rustls::client::TlsStream<S>>,
        VerifiedNode,
    ),
    ChannelError,
>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let name =
            ServerName::try_from(TLS_SERVER_NAME).map_err(|e| ChannelError::Tls(e.to_string()))?;
        let mut tls = tokio_rustls::TlsConnector::from(client_config()?)
            .connect(name, stream)
            .await?;
        let (exporter, spki) = {
            let (_, conn) = tls.get_ref();
            (exporter(conn)?, peer_spki(conn.peer_certificates())?)
        };
        let hello = read_frame(&mut tls, MAX_HELLO_LEN)
            .await?
            .ok_or(ChannelError::Closed)?;
        let hello = Hello::decode(&hello)?;
        let node = check_node(expect, &hello, &exporter, &spki, SystemTime::now())?;
        Ok((
            ClientPortStream {
                stream: tls,
                exporter,
            },
            node,
        ))
    })
    .await
    .map_err(|_| ChannelError::Timeout)?
}

/// Every check a client makes of a node's hello before trusting the connection: the node
/// id is the one dialled, then [`check_evidence`], with this connection's exporter as
/// nonce and the node's TLS key as the key it must bind.
pub(crate) fn check_node(
    expect: &NodeExpectation,
    hello: &Hello,
    exporter: &[u8; 32],
    spki: &[u8],
    now: SystemTime,
) -> Result<VerifiedNode, ChannelError> {
    if hello.node_id != expect.node_id {
        return Err(ChannelError::WrongPeer {
            expected: expect.node_id.clone(),
            claimed: hello.node_id.clone(),
        });
    }
    let checked = check_evidence(
        expect.requirement(),
        &hello.document,
        exporter,
        Some(spki),
        now,
    )?;
    Ok(VerifiedNode {
        node_id: expect.node_id.clone(),
        provider: checked.provider,
        module_id: checked.module_id,
        pcr0: checked.pcr0,
        manifest_hash: checked.manifest_hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use attestation::nitro::MeasurementSet;
    use attestation::nsm::sim::{SimCa, SimMeasurements, SimNsm};

    const GOOD: &[u8] = b"the audited node image";
    const EVIL: &[u8] = b"a modified node image";

    fn measurements(image: &[u8]) -> Measurements {
        let pcrs = SimMeasurements::of_image(image).pcrs();
        MeasurementSet::new((0u8..3).map(|i| (i, pcrs[&i].to_vec())).collect())
            .unwrap()
            .into()
    }

    fn expectation(ca: &SimCa, id: &str) -> NodeExpectation {
        NodeExpectation {
            node_id: id.to_owned(),
            measurements: vec![measurements(GOOD)],
            verifier: Verifier::aws_nitro()
                .trust_simulated_root(ca.root_der(), SystemTime::now())
                .unwrap(),
            max_evidence_age: Duration::from_secs(60),
            allow_debug: false,
            manifest: ManifestRule::Pinned([7; 32]),
        }
    }

    async fn run(
        ca: &SimCa,
        image: &[u8],
        node_id: &str,
        expect: &NodeExpectation,
    ) -> Result<VerifiedNode, ChannelError> {
        let now = SystemTime::now();
        let nsm: Arc<dyn Attester> =
            Arc::new(SimNsm::new(ca, &SimMeasurements::of_image(image), now).unwrap());
        let identity = TlsIdentity::generate(node_id, now).unwrap();
        let config = server_config(&identity).unwrap();
        let (x, y) = tokio::io::duplex(1 << 16);
        let (client, server) = tokio::join!(
            connect(x, expect),
            accept(y, config, node_id, &identity, nsm, Some([7; 32]))
        );
        let (mut client, node) = client?;
        let mut server = server.unwrap();
        assert_eq!(client.exporter, server.exporter);
        write_frame(&mut client.stream, b"request", 64)
            .await
            .unwrap();
        assert_eq!(
            read_frame(&mut server.stream, 64).await.unwrap().unwrap(),
            b"request"
        );
        Ok(node)
    }

    #[tokio::test]
    async fn a_client_trusts_only_the_node_it_expects() {
        let ca = SimCa::generate(SystemTime::now()).unwrap();
        let node = run(&ca, GOOD, "node-1", &expectation(&ca, "node-1"))
            .await
            .unwrap();
        assert_eq!(node.node_id, "node-1");
        assert_eq!(node.manifest_hash, Some([7; 32]));
        assert_eq!(node.pcr0.len(), 96);

        // A modified image: its measurements are not the expected ones.
        let err = run(&ca, EVIL, "node-1", &expectation(&ca, "node-1"))
            .await
            .unwrap_err();
        assert!(matches!(err, ChannelError::Policy { .. }), "{err}");
        // Another node id than the one dialled.
        let err = run(&ca, GOOD, "node-2", &expectation(&ca, "node-1"))
            .await
            .unwrap_err();
        assert!(matches!(err, ChannelError::WrongPeer { .. }), "{err}");
        // A document from another simulated root.
        let other = SimCa::generate(SystemTime::now()).unwrap();
        let err = run(&other, GOOD, "node-1", &expectation(&ca, "node-1"))
            .await
            .unwrap_err();
        assert!(matches!(err, ChannelError::Evidence { .. }), "{err}");
    }

    #[test]
    fn a_document_from_another_connection_or_key_is_refused() {
        let ca = SimCa::generate(SystemTime::now()).unwrap();
        let now = SystemTime::now();
        let nsm = SimNsm::new(&ca, &SimMeasurements::of_image(GOOD), now).unwrap();
        let spki = b"the node's TLS key".to_vec();
        let document = nsm
            .attest(&AttestationRequest {
                user_data: None,
                nonce: Some([1u8; 32].to_vec()),
                public_key: Some(spki.clone()),
            })
            .unwrap();
        let hello = Hello {
            node_id: "node-1".into(),
            document,
        };
        let mut expect = expectation(&ca, "node-1");
        expect.manifest = ManifestRule::PinnedOrNone([7; 32]);
        let node = check_node(&expect, &hello, &[1; 32], &spki, now).unwrap();
        assert_eq!(node.manifest_hash, None);
        let replayed = check_node(&expect, &hello, &[2; 32], &spki, now).unwrap_err();
        assert!(
            matches!(replayed, ChannelError::Policy { .. }),
            "{replayed}"
        );
        let other_key = check_node(&expect, &hello, &[1; 32], b"another key", now).unwrap_err();
        assert!(
            matches!(other_key, ChannelError::KeyBinding { .. }),
            "{other_key}"
        );
    }

    /// A genuine node of the right image under another manifest (what a hostile parent's
    /// look-alike is): refused by every rule that does not name that manifest, and a node
    /// without a manifest only where a rule allows it.
    #[test]
    fn only_the_pinned_manifest_is_accepted() {
        let ca = SimCa::generate(SystemTime::now()).unwrap();
        let now = SystemTime::now();
        let nsm = SimNsm::new(&ca, &SimMeasurements::of_image(GOOD), now).unwrap();
        let spki = b"the node's TLS key".to_vec();
        let hello = |runs: Option<[u8; 32]>| Hello {
            node_id: "node-1".into(),
            document: nsm
                .attest(&AttestationRequest {
                    user_data: runs.map(|h| h.to_vec()),
                    nonce: Some([1u8; 32].to_vec()),
                    public_key: Some(spki.clone()),
                })
                .unwrap(),
        };
        let (pinned, other, submitted) = ([7u8; 32], [8u8; 32], [9u8; 32]);
        let check = |rule: ManifestRule, runs: Option<[u8; 32]>| {
            let mut expect = expectation(&ca, "node-1");
            expect.manifest = rule;
            check_node(&expect, &hello(runs), &[1; 32], &spki, now)
        };
        let refused = |result: Result<VerifiedNode, ChannelError>| match result {
            Err(ChannelError::ManifestNotPinned { peer, runs, pinned }) => {
                assert_eq!(peer, "node-1");
                format!("{runs} / {pinned}")
            }
            other => panic!("expected a manifest refusal, got {other:?}"),
        };

        // Commands: exactly the pinned manifest.
        let node = check(ManifestRule::Pinned(pinned), Some(pinned)).unwrap();
        assert_eq!(node.manifest_hash, Some(pinned));
        let reason = refused(check(ManifestRule::Pinned(pinned), Some(other)));
        assert_eq!(
            reason,
            format!("{} / {}", short_hash(&other), short_hash(&pinned))
        );
        let reason = refused(check(ManifestRule::Pinned(pinned), None));
        assert!(reason.starts_with("none"), "{reason}");
        let err = check(ManifestRule::Pinned(pinned), Some(other)).unwrap_err();
        assert!(err.to_string().contains("0808080808080808"), "{err}");

        // Status: the pinned manifest or none, never another.
        check(ManifestRule::PinnedOrNone(pinned), Some(pinned)).unwrap();
        check(ManifestRule::PinnedOrNone(pinned), None).unwrap();
        refused(check(ManifestRule::PinnedOrNone(pinned), Some(other)));

        // Submitting: the pinned one, the submitted one, or none; never a third.
        let rule = ManifestRule::Submitting { pinned, submitted };
        check(rule.clone(), Some(pinned)).unwrap();
        check(rule.clone(), Some(submitted)).unwrap();
        check(rule.clone(), None).unwrap();
        let reason = refused(check(rule, Some(other)));
        assert!(reason.contains(&short_hash(&submitted)), "{reason}");
    }
}
