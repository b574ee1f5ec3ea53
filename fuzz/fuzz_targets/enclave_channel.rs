//! Arbitrary bytes where a node's attested-channel handshake reads them: a real TLS 1.3
//! connection to a simulated node that accepts it, then either the fuzz input as the
//! dialling peer's hello, or a genuine hello, the node's verdict and hello, and the fuzz
//! input as the peer's verdict. This reaches `Hello::decode` and the crate-private
//! `decode_verdict` through `ChannelContext::accept`.
//! An arbitrary hello is never accepted; a verdict is accepted only as exactly `[1, 0]`.
#![no_main]

use attestation::Verifier;
use attestation::nitro::MeasurementSet;
use attestation::nsm::sim::{SimCa, SimMeasurements, SimNsm};
use attestation::nsm::{AttestationRequest, Nsm};
use channel::{ChannelContext, ChannelError, EXPORTER_LABEL, PeerTrust, TlsIdentity};
use libfuzzer_sys::fuzz_target;
use rcgen::PublicKeyData;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::error::Error;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::runtime::Runtime;
use tokio_rustls::TlsConnector;
use transport::frame::{read_frame, write_frame};

const IMAGE: &[u8] = b"fuzzed node image";
const MANIFEST_HASH: [u8; 32] = [0x42; 32];
const NODE: &str = "node-1";
const PEER: &str = "node-2";
const ANY_LEN: usize = 1 << 20;

/// The fuzzer's side of TLS: it checks nothing about the node.
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

struct Harness {
    runtime: Runtime,
    node: ChannelContext,
    peer_nsm: SimNsm,
    peer_spki: Vec<u8>,
    connector: TlsConnector,
}

fn setup() -> Result<Harness, Box<dyn Error>> {
    let now = SystemTime::now();
    let ca = SimCa::generate(now)?;
    let measurements = SimMeasurements::of_image(IMAGE);
    let pcrs = measurements.pcrs();
    let set = MeasurementSet::new(
        (0u8..3)
            .filter_map(|i| Some((i, pcrs.get(&i)?.to_vec())))
            .collect(),
    )?;
    let trust = PeerTrust {
        manifest_hash: MANIFEST_HASH,
        peers: [NODE, PEER]
            .into_iter()
            .map(|id| (id.to_owned(), vec![set.clone().into()]))
            .collect(),
        verifier: Verifier::aws_nitro().trust_simulated_root(ca.root_der(), now)?,
        max_evidence_age: Duration::from_secs(600),
        allow_debug: false,
    };
    let node = ChannelContext::new(
        NODE.to_owned(),
        Arc::new(TlsIdentity::generate(NODE, now)?),
        Arc::new(SimNsm::new(&ca, &measurements, now)?),
        trust,
    )?;

    let peer = rcgen::generate_simple_self_signed(vec![PEER.to_owned()])?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_client_auth_cert(
            vec![peer.cert.der().clone()],
            PrivateKeyDer::Pkcs8(peer.signing_key.serialize_der().into()),
        )?;
    Ok(Harness {
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        node,
        peer_nsm: SimNsm::new(&ca, &measurements, now)?,
        peer_spki: peer.signing_key.subject_public_key_info(),
        connector: TlsConnector::from(Arc::new(client)),
    })
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| setup().expect("harness setup"))
}

impl Harness {
    /// The dialling peer, which speaks first. With `genuine_hello`, it attests properly,
    /// reads the node's verdict and hello, and sends `input` as its verdict; otherwise
    /// `input` is its hello, after which it reads the node's verdict.
    async fn peer(
        &self,
        stream: DuplexStream,
        genuine_hello: bool,
        input: &[u8],
    ) -> Result<(), Box<dyn Error>> {
        let name = ServerName::try_from("node.tee-custody.internal")?;
        let mut tls = self.connector.connect(name, stream).await?;
        let exporter = tls
            .get_ref()
            .1
            .export_keying_material([0u8; 32], EXPORTER_LABEL, None)?;
        if genuine_hello {
            let document = self.peer_nsm.attest(&AttestationRequest {
                user_data: Some(MANIFEST_HASH.to_vec()),
                nonce: Some(exporter.to_vec()),
                public_key: Some(self.peer_spki.clone()),
            })?;
            let id_len = u8::try_from(PEER.len())?;
            let hello = [&[1, id_len][..], PEER.as_bytes(), &document].concat();
            write_frame(&mut tls, &hello, ANY_LEN).await?;
            read_frame(&mut tls, ANY_LEN).await?;
            read_frame(&mut tls, ANY_LEN).await?;
            write_frame(&mut tls, input, ANY_LEN).await?;
        } else {
            write_frame(&mut tls, input, ANY_LEN).await?;
            read_frame(&mut tls, ANY_LEN).await?;
        }
        tls.shutdown().await?;
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let genuine_hello = mode & 1 == 1;
    let h = harness();
    let accepted = h.runtime.block_on(async {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let (accepted, _) = tokio::join!(h.node.accept(theirs), h.peer(ours, genuine_hello, input));
        accepted
    });
    if !genuine_hello {
        assert!(accepted.is_err(), "an arbitrary hello was accepted");
        return;
    }
    match accepted {
        Ok(channel) => {
            assert_eq!(input, [1, 0]);
            assert_eq!(channel.peer().node_id, PEER);
        }
        Err(ChannelError::PeerRefused(reason)) => {
            assert!(input.starts_with(&[1, 1]));
            assert!(!reason.chars().any(char::is_control));
        }
        Err(e) => assert_ne!(input, [1, 0], "a genuine peer was refused: {e}"),
    }
});
