//! Attested channels between simulated nodes over in-memory streams.

use super::*;
use attestation::gcp::sim::{SimCsAttester, SimCsCa, SimWorkload, TOKEN_LIFETIME};
use attestation::nitro::MeasurementSet;
use attestation::nsm::sim::{SimCa, SimMeasurements, SimNsm};
use attestation::{Measurements, Provider, Verifier};
use std::collections::BTreeMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

const GOOD: &[u8] = b"the audited node image";
const EVIL: &[u8] = b"a modified node image";
const HASH: [u8; 32] = [0x42; 32];

fn measurements(image: &[u8]) -> Measurements {
    let pcrs = SimMeasurements::of_image(image).pcrs();
    MeasurementSet::new((0u8..3).map(|i| (i, pcrs[&i].to_vec())).collect())
        .unwrap()
        .into()
}

/// The manifest's view: node-1..3 all expected to run GOOD.
fn peers() -> BTreeMap<String, Vec<Measurements>> {
    ["node-1", "node-2", "node-3"]
        .iter()
        .map(|id| (id.to_string(), vec![measurements(GOOD)]))
        .collect()
}

struct Node {
    ctx: ChannelContext,
    nsm: Arc<SimNsm>,
}

fn node(ca: &SimCa, id: &str, image: &[u8], hash: [u8; 32]) -> Node {
    let now = SystemTime::now();
    let nsm = Arc::new(SimNsm::new(ca, &SimMeasurements::of_image(image), now).unwrap());
    let trust = PeerTrust {
        manifest_hash: hash,
        peers: peers(),
        verifier: Verifier::aws_nitro()
            .trust_simulated_root(ca.root_der(), now)
            .unwrap(),
        max_evidence_age: Duration::from_secs(60),
        allow_debug: false,
    };
    let identity = Arc::new(TlsIdentity::generate(id, now).unwrap());
    let ctx = ChannelContext::new(id.to_owned(), identity, nsm.clone(), trust).unwrap();
    Node { ctx, nsm }
}

/// Runs `a.connect(.., to)` against `b.accept(..)` over an in-memory pipe.
async fn pair(
    a: &Node,
    b: &Node,
    to: &str,
) -> (
    Result<AttestedChannel<tokio_rustls::client::TlsStream<DuplexStream>>, ChannelError>,
    Result<AttestedChannel<tokio_rustls::server::TlsStream<DuplexStream>>, ChannelError>,
) {
    let (x, y) = tokio::io::duplex(1 << 16);
    tokio::join!(a.ctx.connect(x, to), b.ctx.accept(y))
}

#[tokio::test]
async fn nodes_attest_each_other_then_talk() {
    let ca = SimCa::generate(SystemTime::now()).unwrap();
    let (n1, n2) = (
        node(&ca, "node-1", GOOD, HASH),
        node(&ca, "node-2", GOOD, HASH),
    );
    let (c, s) = pair(&n1, &n2, "node-2").await;
    let (mut c, mut s) = (c.unwrap(), s.unwrap());
    assert_eq!(c.peer().node_id, "node-2");
    assert_eq!(s.peer().node_id, "node-1");
    assert_eq!(c.peer().module_id, n2.nsm.module_id());
    c.send(b"ping").await.unwrap();
    assert_eq!(s.recv().await.unwrap().unwrap(), b"ping");
    s.send(b"pong").await.unwrap();
    assert_eq!(c.recv().await.unwrap().unwrap(), b"pong");
    c.close().await.unwrap();
    assert_eq!(s.recv().await.unwrap(), None);
}

#[tokio::test]
async fn a_node_running_another_binary_is_refused() {
    let ca = SimCa::generate(SystemTime::now()).unwrap();
    let (n1, n2) = (
        node(&ca, "node-1", GOOD, HASH),
        node(&ca, "node-2", EVIL, HASH),
    );
    // node-2 dials: node-1 refuses it, and node-2 learns why the channel failed.
    let (c, s) = pair(&n2, &n1, "node-1").await;
    match s.unwrap_err() {
        ChannelError::Policy {
            peer,
            source: PolicyError::Measurements(m),
        } => {
            assert_eq!(peer, "node-2");
            assert_eq!(m[0].index, 0);
        }
        other => panic!("expected a measurement refusal, got {other}"),
    }
    let err = c.unwrap_err();
    assert!(
        matches!(&err, ChannelError::PeerRefused(r) if r.contains("node-2")),
        "{err}"
    );
    // And the other way round.
    let (c, s) = pair(&n1, &n2, "node-2").await;
    assert!(matches!(c.unwrap_err(), ChannelError::Policy { .. }));
    assert!(matches!(s.unwrap_err(), ChannelError::PeerRefused(_)));
}

#[tokio::test]
async fn a_node_under_another_root_is_refused() {
    let ca = SimCa::generate(SystemTime::now()).unwrap();
    let other = SimCa::generate(SystemTime::now()).unwrap();
    let (n1, n2) = (
        node(&ca, "node-1", GOOD, HASH),
        node(&other, "node-2", GOOD, HASH),
    );
    let (_, s) = pair(&n2, &n1, "node-1").await;
    assert!(matches!(
        s.unwrap_err(),
        ChannelError::Evidence {
            source: VerifyError::UntrustedRoot { .. },
            ..
        }
    ));
}

#[tokio::test]
async fn a_node_under_another_manifest_is_refused() {
    let ca = SimCa::generate(SystemTime::now()).unwrap();
    let (n1, n2) = (
        node(&ca, "node-1", GOOD, HASH),
        node(&ca, "node-2", GOOD, [7; 32]),
    );
    let (_, s) = pair(&n2, &n1, "node-1").await;
    assert!(matches!(s.unwrap_err(), ChannelError::ManifestMismatch { peer } if peer == "node-2"));
}

#[tokio::test]
async fn identities_are_checked() {
    let ca = SimCa::generate(SystemTime::now()).unwrap();
    let n1 = node(&ca, "node-1", GOOD, HASH);
    // Not in the manifest.
    let stranger = node(&ca, "node-9", GOOD, HASH);
    let (_, s) = pair(&stranger, &n1, "node-1").await;
    assert!(matches!(s.unwrap_err(), ChannelError::UnknownNode(id) if id == "node-9"));
    // Dialled node-3, node-2 answered.
    let n2 = node(&ca, "node-2", GOOD, HASH);
    let (c, _) = pair(&n1, &n2, "node-3").await;
    assert!(matches!(c.unwrap_err(), ChannelError::WrongPeer { .. }));
    // A node talking to itself (a parent looping a connection back).
    let twin = node(&ca, "node-1", GOOD, HASH);
    let (_, s) = pair(&twin, &n1, "node-1").await;
    assert!(matches!(s.unwrap_err(), ChannelError::SelfConnection));
}

/// Plays node-2's TLS endpoint, but sends `make_hello(exporter)` instead of an honest
/// hello, and returns what node-1 decided.
async fn hostile_hello(
    n1: &Node,
    n2: &Node,
    make_hello: impl FnOnce(&[u8; 32]) -> Vec<u8>,
) -> ChannelError {
    let (x, y) = tokio::io::duplex(1 << 16);
    let attacker = async {
        let name = ServerName::try_from(TLS_SERVER_NAME).unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(n2.ctx.client.clone())
            .connect(name, x)
            .await
            .unwrap();
        let exporter = exporter(tls.get_ref().1).unwrap();
        write_frame(&mut tls, &make_hello(&exporter), MAX_HELLO_LEN)
            .await
            .unwrap();
        // Keep the connection open until node-1 has answered.
        let _ = read_frame(&mut tls, MAX_HELLO_LEN).await;
        let _ = read_frame(&mut tls, MAX_VERDICT_LEN).await;
    };
    let (_, result) = tokio::join!(attacker, n1.ctx.accept(y));
    result.unwrap_err()
}

fn hello(id: &str, doc: Vec<u8>) -> Vec<u8> {
    Hello {
        node_id: id.to_owned(),
        document: doc,
    }
    .encode()
    .unwrap()
}

#[tokio::test]
async fn a_document_from_another_connection_is_refused() {
    let ca = SimCa::generate(SystemTime::now()).unwrap();
    let (n1, n2) = (
        node(&ca, "node-1", GOOD, HASH),
        node(&ca, "node-2", GOOD, HASH),
    );
    // A genuine node-2 document, but made for another connection's exporter value.
    let stale = n2
        .nsm
        .attest(&AttestationRequest {
            user_data: Some(HASH.to_vec()),
            nonce: Some(vec![0xee; 32]),
            public_key: Some(n2.ctx.identity.spki_der().to_vec()),
        })
        .unwrap();
    let err = hostile_hello(&n1, &n2, |_| hello("node-2", stale)).await;
    assert!(
        matches!(
            err,
            ChannelError::Policy {
                source: PolicyError::NonceMismatch,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_document_binding_another_tls_key_is_refused() {
    let ca = SimCa::generate(SystemTime::now()).unwrap();
    let (n1, n2) = (
        node(&ca, "node-1", GOOD, HASH),
        node(&ca, "node-2", GOOD, HASH),
    );
    // A relay that terminates TLS with its own key and forwards a genuine document made
    // for this very connection still fails: the document binds another key.
    let elsewhere = TlsIdentity::generate("node-2", SystemTime::now()).unwrap();
    let nsm = n2.nsm.clone();
    let err = hostile_hello(&n1, &n2, move |exporter| {
        let doc = nsm
            .attest(&AttestationRequest {
                user_data: Some(HASH.to_vec()),
                nonce: Some(exporter.to_vec()),
                public_key: Some(elsewhere.spki_der().to_vec()),
            })
            .unwrap();
        hello("node-2", doc)
    })
    .await;
    assert!(matches!(err, ChannelError::KeyBinding { .. }), "{err}");
}

#[tokio::test]
async fn garbage_hellos_are_refused() {
    let ca = SimCa::generate(SystemTime::now()).unwrap();
    let (n1, n2) = (
        node(&ca, "node-1", GOOD, HASH),
        node(&ca, "node-2", GOOD, HASH),
    );
    let err = hostile_hello(&n1, &n2, |_| vec![1, 200, 1, 2]).await;
    assert!(matches!(err, ChannelError::Malformed(_)), "{err}");
    let err = hostile_hello(&n1, &n2, |_| hello("node-2", vec![0x84; 10])).await;
    assert!(matches!(err, ChannelError::Evidence { .. }), "{err}");
}

#[tokio::test]
async fn bytes_altered_in_transit_break_the_connection() {
    let ca = SimCa::generate(SystemTime::now()).unwrap();
    let (n1, n2) = (
        node(&ca, "node-1", GOOD, HASH),
        node(&ca, "node-2", GOOD, HASH),
    );
    for flip_at in [200usize, 3000] {
        // A relay between the nodes that flips one bit once `flip_at` bytes went by.
        let (a, mut relay_a) = tokio::io::duplex(1 << 16);
        let (mut relay_b, b) = tokio::io::duplex(1 << 16);
        let relay = tokio::spawn(async move {
            let (mut ar, mut aw) = tokio::io::split(&mut relay_a);
            let (mut br, mut bw) = tokio::io::split(&mut relay_b);
            let forward = async {
                let mut seen = 0usize;
                let mut buf = [0u8; 1024];
                loop {
                    let n = ar.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    if seen <= flip_at && flip_at < seen + n {
                        buf[flip_at - seen] ^= 0x01;
                    }
                    seen += n;
                    if bw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = bw.shutdown().await;
            };
            let back = async {
                let _ = tokio::io::copy(&mut br, &mut aw).await;
                let _ = aw.shutdown().await;
            };
            tokio::join!(forward, back);
        });
        let (c, s) = tokio::join!(n1.ctx.connect(a, "node-2"), n2.ctx.accept(b));
        assert!(c.is_err() && s.is_err(), "flip at {flip_at}");
        relay.abort();
    }
}

#[tokio::test]
async fn a_channel_past_its_lifetime_stops_carrying_traffic() {
    let ca = SimCa::generate(SystemTime::now()).unwrap();
    let mut n1 = node(&ca, "node-1", GOOD, HASH);
    let n2 = node(&ca, "node-2", GOOD, HASH);
    n1.ctx.lifetime = Duration::ZERO;
    let (c, _s) = pair(&n1, &n2, "node-2").await;
    let mut c = c.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(matches!(
        c.send(b"late").await,
        Err(ChannelError::Expired(_))
    ));
}

#[test]
fn a_channel_ends_before_the_evidence_of_either_side_expires() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let at = |secs_from_now: u64| Some(Duration::from_secs(1_800_000_000 + secs_from_now));
    let hour = Duration::from_secs(3600);
    // Evidence that does not expire leaves the configured lifetime.
    assert_eq!(effective_lifetime(hour, [None, None], now), hour);
    // A token living an hour: the channel ends the margin before it expires.
    assert_eq!(
        effective_lifetime(hour, [None, at(3600)], now),
        hour - EXPIRY_MARGIN
    );
    assert_eq!(
        effective_lifetime(hour, [at(3600), None], now),
        hour - EXPIRY_MARGIN
    );
    // The earlier of the two expiries decides, whichever side showed it.
    assert_eq!(
        effective_lifetime(hour, [at(1000), at(600)], now),
        Duration::from_secs(540)
    );
    assert_eq!(
        effective_lifetime(hour, [at(600), at(1000)], now),
        Duration::from_secs(540)
    );
    // A shorter configured lifetime is kept.
    let short = Duration::from_secs(300);
    assert_eq!(effective_lifetime(short, [at(3600), at(3600)], now), short);
    // At exactly the margin, and within it or past the expiry: no lifetime at all.
    assert_eq!(
        effective_lifetime(hour, [at(60), None], now),
        Duration::ZERO
    );
    assert_eq!(
        effective_lifetime(hour, [at(61), None], now),
        Duration::from_secs(1)
    );
    assert_eq!(
        effective_lifetime(hour, [at(59), None], now),
        Duration::ZERO
    );
    assert_eq!(
        effective_lifetime(hour, [Some(Duration::ZERO), None], now),
        Duration::ZERO
    );
}

#[tokio::test]
async fn a_channel_between_nodes_whose_evidence_does_not_expire_keeps_its_configured_lifetime() {
    let ca = SimCa::generate(SystemTime::now()).unwrap();
    let mut n1 = node(&ca, "node-1", GOOD, HASH);
    let n2 = node(&ca, "node-2", GOOD, HASH);
    n1.ctx.lifetime = Duration::from_secs(1234);
    let (c, s) = pair(&n1, &n2, "node-2").await;
    let (c, s) = (c.unwrap(), s.unwrap());
    assert_eq!(c.peer().expires, None);
    assert_eq!(c.lifetime(), Duration::from_secs(1234));
    assert_eq!(s.lifetime(), n2.ctx.lifetime);
}

/// A Nitro node (node-1) and a Confidential Space node (node-2) whose attester `cs` makes
/// from the simulated Confidential Space CA and node-2's workload, each trusting both
/// simulated roots, with a configured channel lifetime of a day.
fn nitro_and_confidential_space(
    cs: impl FnOnce(&SimCsCa, SimWorkload, SystemTime) -> Arc<dyn Attester>,
) -> (Node, Node) {
    let now = SystemTime::now();
    let ca = SimCa::generate(now).unwrap();
    let cs_ca = SimCsCa::new(now).unwrap();
    let workload = SimWorkload::of_image(GOOD, "node-2");
    let mut peers = peers();
    peers.insert(
        "node-2".to_owned(),
        vec![workload.measurement_set().unwrap().into()],
    );
    let trust = PeerTrust {
        manifest_hash: HASH,
        peers,
        verifier: Verifier::aws_nitro()
            .trust_simulated_root(ca.root_der(), now)
            .unwrap()
            .trust_simulated_gcp_root(cs_ca.root_der(), now)
            .unwrap(),
        max_evidence_age: Duration::from_secs(60),
        allow_debug: false,
    };
    let context = |id: &str, attester: Arc<dyn Attester>| {
        let identity = Arc::new(TlsIdentity::generate(id, now).unwrap());
        let mut ctx =
            ChannelContext::new(id.to_owned(), identity, attester, trust.clone()).unwrap();
        ctx.lifetime = Duration::from_secs(24 * 3600);
        ctx
    };
    let nitro = Arc::new(SimNsm::new(&ca, &SimMeasurements::of_image(GOOD), now).unwrap());
    let n1 = Node {
        ctx: context("node-1", nitro.clone()),
        nsm: nitro,
    };
    let n2 = Node {
        ctx: context("node-2", cs(&cs_ca, workload, now)),
        // Unused: node-2 attests with its Confidential Space attester.
        nsm: Arc::new(SimNsm::new(&ca, &SimMeasurements::of_image(GOOD), now).unwrap()),
    };
    (n1, n2)
}

/// A channel between a Nitro node and a Confidential Space node, whose tokens live an
/// hour: both ends cut the channel's lifetime to end a minute before the token expires,
/// and each verified the other provider's evidence.
#[tokio::test]
async fn a_channel_with_a_confidential_space_node_ends_before_its_token_expires() {
    let (n1, n2) = nitro_and_confidential_space(|ca, workload, now| {
        Arc::new(SimCsAttester::new(ca, workload, now).unwrap())
    });
    let now = SystemTime::now();
    let longest = TOKEN_LIFETIME - EXPIRY_MARGIN;
    for (dialler, acceptor, to) in [(&n1, &n2, "node-2"), (&n2, &n1, "node-1")] {
        let (c, s) = pair(dialler, acceptor, to).await;
        let (mut c, mut s) = (c.unwrap(), s.unwrap());
        let cs_end = if to == "node-2" { c.peer() } else { s.peer() };
        assert_eq!(cs_end.provider, Provider::GcpCs);
        let expires = cs_end.expires.unwrap();
        let since_epoch = now.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        assert!(
            expires > since_epoch
                && expires <= since_epoch + TOKEN_LIFETIME + Duration::from_secs(5)
        );
        let nitro_end = if to == "node-2" { s.peer() } else { c.peer() };
        assert_eq!(nitro_end.provider, Provider::Nitro);
        assert_eq!(nitro_end.expires, None);
        // Both ends: the token's hour less the margin (less the seconds the test took),
        // not the configured day.
        for lifetime in [c.lifetime(), s.lifetime()] {
            assert!(lifetime <= longest, "{lifetime:?}");
            assert!(lifetime > longest - Duration::from_secs(30), "{lifetime:?}");
        }
        c.send(b"ping").await.unwrap();
        assert_eq!(s.recv().await.unwrap().unwrap(), b"ping");
    }
}

/// A Confidential Space attester whose tokens, genuine in every other way, name another
/// relying party as audience.
struct OtherAudience(SimCsAttester);

impl Attester for OtherAudience {
    fn provider(&self) -> Provider {
        Provider::GcpCs
    }

    fn attest(&self, request: &AttestationRequest) -> Result<Vec<u8>, AttestError> {
        let (header, mut claims) = self.0.parts(request, SystemTime::now())?;
        claims.insert("aud".to_owned(), "another-service".into());
        let token = self.0.sign(&header, &claims)?;
        Ok(attestation::gcp::encode_bundle(
            &token,
            request.nonce.as_deref(),
            request.public_key.as_deref(),
            request.user_data.as_deref(),
        ))
    }
}

/// A token the launcher issued for another audience (another service on the same
/// workload asked for it) does not prove a node, in either direction of the channel.
#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let (n1, n2) = nitro_and_confidential_space(|ca, workload, now| {
        Arc::new(OtherAudience(
            SimCsAttester::new(ca, workload, now).unwrap(),
        ))
    });
    let (c, s) = pair(&n1, &n2, "node-2").await;
    let refused = c.err().unwrap();
    assert!(
        matches!(&refused, ChannelError::Policy { peer, .. } if peer == "node-2"),
        "{refused}"
    );
    assert!(refused.to_string().contains("aud"), "{refused}");
    assert!(s.is_err());
    let (c, s) = pair(&n2, &n1, "node-1").await;
    assert!(c.is_err());
    let refused = s.err().unwrap();
    assert!(
        matches!(&refused, ChannelError::Policy { peer, .. } if peer == "node-2"),
        "{refused}"
    );
}

#[tokio::test]
async fn every_connection_is_a_full_handshake() {
    let ca = SimCa::generate(SystemTime::now()).unwrap();
    let (n1, n2) = (
        node(&ca, "node-1", GOOD, HASH),
        node(&ca, "node-2", GOOD, HASH),
    );
    for _ in 0..3 {
        let (x, y) = tokio::io::duplex(1 << 16);
        let name = ServerName::try_from(TLS_SERVER_NAME).unwrap();
        let (c, s) = tokio::join!(
            tokio_rustls::TlsConnector::from(n1.ctx.client.clone()).connect(name, x),
            tokio_rustls::TlsAcceptor::from(n2.ctx.server.clone()).accept(y)
        );
        let (mut c, s) = (c.unwrap(), s.unwrap());
        // Let the client read anything the server sent after the handshake (tickets).
        drop(s);
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest).await;
        assert_eq!(
            c.get_ref().1.handshake_kind(),
            Some(rustls::HandshakeKind::Full)
        );
    }
}

/// An NSM that counts the documents asked of it.
struct CountingNsm {
    inner: Arc<SimNsm>,
    documents: std::sync::atomic::AtomicUsize,
}

impl CountingNsm {
    fn documents(&self) -> usize {
        self.documents.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Attester for CountingNsm {
    fn provider(&self) -> Provider {
        self.inner.provider()
    }

    fn attest(&self, request: &AttestationRequest) -> Result<Vec<u8>, AttestError> {
        self.documents
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.attest(request)
    }
}

/// `node(..)` whose channel context asks its NSM through a [`CountingNsm`].
fn counted_node(ca: &SimCa, id: &str) -> (Node, Arc<CountingNsm>) {
    let plain = node(ca, id, GOOD, HASH);
    let counting = Arc::new(CountingNsm {
        inner: plain.nsm.clone(),
        documents: Default::default(),
    });
    let ctx = ChannelContext::new(
        id.to_owned(),
        plain.ctx.identity.clone(),
        counting.clone(),
        plain.ctx.trust.clone(),
    )
    .unwrap();
    (
        Node {
            ctx,
            nsm: plain.nsm,
        },
        counting,
    )
}

#[tokio::test]
async fn an_unproven_dialler_gets_no_document() {
    let ca = SimCa::generate(SystemTime::now()).unwrap();
    let (n1, counter) = counted_node(&ca, "node-1");
    let n2 = node(&ca, "node-2", GOOD, HASH);

    // A hello that does not parse, and one whose document does not verify.
    let err = hostile_hello(&n1, &n2, |_| vec![1, 200, 1, 2]).await;
    assert!(matches!(err, ChannelError::Malformed(_)), "{err}");
    let err = hostile_hello(&n1, &n2, |_| hello("node-2", vec![0x84; 10])).await;
    assert!(matches!(err, ChannelError::Evidence { .. }), "{err}");
    // A genuine document, but of a node running another image.
    let evil = node(&ca, "node-2", EVIL, HASH);
    let (c, s) = pair(&evil, &n1, "node-1").await;
    assert!(matches!(s.unwrap_err(), ChannelError::Policy { .. }));
    assert!(matches!(c.unwrap_err(), ChannelError::PeerRefused(_)));
    // Bytes that are not even TLS.
    let (mut x, y) = tokio::io::duplex(1 << 16);
    x.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    x.shutdown().await.unwrap();
    assert!(n1.ctx.accept(y).await.is_err());
    // TLS, then the connection closes without a hello.
    let (x, y) = tokio::io::duplex(1 << 16);
    let name = ServerName::try_from(TLS_SERVER_NAME).unwrap();
    let connector = tokio_rustls::TlsConnector::from(n2.ctx.client.clone());
    let dialler = async move {
        let mut tls = connector.connect(name, x).await.unwrap();
        tls.shutdown().await.unwrap();
    };
    let (_, s) = tokio::join!(dialler, n1.ctx.accept(y));
    assert!(matches!(s.unwrap_err(), ChannelError::Closed));

    assert_eq!(
        counter.documents(),
        0,
        "the acceptor attested to an unproven dialler"
    );
}

#[tokio::test]
async fn a_silent_connection_holds_a_slot_only_for_the_hello_timeout() {
    let ca = SimCa::generate(SystemTime::now()).unwrap();
    let (mut n1, counter) = counted_node(&ca, "node-1");
    let n2 = node(&ca, "node-2", GOOD, HASH);
    n1.ctx.handshake_timeout = Duration::from_secs(30);
    n1.ctx.hello_timeout = Duration::from_millis(300);

    // Nothing at all: not even a TLS ClientHello.
    let (_x, y) = tokio::io::duplex(1 << 16);
    let started = Instant::now();
    assert!(matches!(n1.ctx.accept(y).await, Err(ChannelError::Timeout)));
    assert!(started.elapsed() < Duration::from_secs(5));

    // TLS completes, then the dialler says nothing and keeps the connection open.
    let (x, y) = tokio::io::duplex(1 << 16);
    let name = ServerName::try_from(TLS_SERVER_NAME).unwrap();
    let connector = tokio_rustls::TlsConnector::from(n2.ctx.client.clone());
    let (done, wait) = tokio::sync::oneshot::channel::<()>();
    let dialler = async move {
        let _tls = connector.connect(name, x).await.unwrap();
        let _ = wait.await;
    };
    let started = Instant::now();
    let acceptor = async {
        let result = n1.ctx.accept(y).await;
        let _ = done.send(());
        result
    };
    let (_, s) = tokio::join!(dialler, acceptor);
    assert!(matches!(s, Err(ChannelError::Timeout)));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(counter.documents(), 0);

    // A dialler that sends its hello in time is served as before.
    let (c, s) = pair(&n2, &n1, "node-1").await;
    assert!(c.is_ok() && s.is_ok());
}

#[tokio::test]
async fn a_proven_dialler_gets_the_acceptors_evidence() {
    let ca = SimCa::generate(SystemTime::now()).unwrap();
    let (n1, counter) = counted_node(&ca, "node-1");
    let n2 = node(&ca, "node-2", GOOD, HASH);
    let (c, s) = pair(&n2, &n1, "node-1").await;
    let (c, s) = (c.unwrap(), s.unwrap());
    // The acceptor attested exactly once, for this connection, and the dialler checked
    // that document: it knows the acceptor's module.
    assert_eq!(counter.documents(), 1);
    assert_eq!(c.peer().node_id, "node-1");
    assert_eq!(c.peer().module_id, n1.nsm.module_id());
    assert_eq!(s.peer().node_id, "node-2");
    assert_eq!(c.exporter(), s.exporter());
}

/// A node judging a peer and a client judging a node make one decision
/// ([`evidence::check_evidence`]): the same evidence gets the same verdict at both ends.
/// Only the manifest refusal is worded for each (a peer must run this node's manifest, a
/// client names the one it pins).
#[test]
fn both_ends_judge_evidence_alike() {
    use super::client_port::{ManifestRule, NodeExpectation, check_node};
    let ca = SimCa::generate(SystemTime::now()).unwrap();
    let now = SystemTime::now();
    let n1 = node(&ca, "node-1", GOOD, HASH);
    let genuine = node(&ca, "node-2", GOOD, HASH);
    let evil = node(&ca, "node-2", EVIL, HASH);
    let foreign = node(&SimCa::generate(now).unwrap(), "node-2", GOOD, HASH);
    let expect = NodeExpectation {
        node_id: "node-2".into(),
        measurements: peers()["node-2"].clone(),
        verifier: n1.ctx.trust.verifier.clone(),
        max_evidence_age: n1.ctx.trust.max_evidence_age,
        allow_debug: false,
        manifest: ManifestRule::Pinned(HASH),
    };
    let exporter = [9u8; 32];
    let spki = genuine.ctx.identity.spki_der().to_vec();
    let evidence = |n: &Node, nonce: &[u8], key: &[u8], manifest: Option<Vec<u8>>| Hello {
        node_id: "node-2".into(),
        document: n
            .nsm
            .attest(&AttestationRequest {
                user_data: manifest,
                nonce: Some(nonce.to_vec()),
                public_key: Some(key.to_vec()),
            })
            .unwrap(),
    };
    let ours = Some(HASH.to_vec());
    let cases = [
        (
            "genuine",
            evidence(&genuine, &exporter, &spki, ours.clone()),
        ),
        (
            "another image",
            evidence(&evil, &exporter, &spki, ours.clone()),
        ),
        (
            "another root",
            evidence(&foreign, &exporter, &spki, ours.clone()),
        ),
        (
            "another connection",
            evidence(&genuine, &[8; 32], &spki, ours.clone()),
        ),
        (
            "another key",
            evidence(&genuine, &exporter, b"a relay's key", ours.clone()),
        ),
        (
            "another manifest",
            evidence(&genuine, &exporter, &spki, Some(vec![7; 32])),
        ),
        ("no manifest", evidence(&genuine, &exporter, &spki, None)),
        (
            "a short manifest hash",
            evidence(&genuine, &exporter, &spki, Some(vec![0x42; 31])),
        ),
        (
            "not evidence",
            Hello {
                node_id: "node-2".into(),
                document: vec![0x84; 10],
            },
        ),
        (
            "no provider's",
            Hello {
                node_id: "node-2".into(),
                document: b"{\"alg\":\"none\"}".to_vec(),
            },
        ),
    ];
    let kind = |r: &Result<(), ChannelError>| match r {
        Ok(()) => "accepted",
        Err(ChannelError::Evidence { .. }) => "evidence",
        Err(ChannelError::Policy { .. }) => "policy",
        Err(ChannelError::KeyBinding { .. }) => "key",
        Err(ChannelError::ManifestMismatch { .. } | ChannelError::ManifestNotPinned { .. }) => {
            "manifest"
        }
        Err(other) => panic!("unexpected refusal {other}"),
    };
    for (what, hello) in cases {
        let by_node = check_hello(
            &n1.ctx.trust,
            "node-1",
            Some("node-2"),
            &hello,
            &exporter,
            &spki,
            now,
        );
        let by_client = check_node(&expect, &hello, &exporter, &spki, now);
        let (node_kind, client_kind) = (kind(&by_node.map(|_| ())), kind(&by_client.map(|_| ())));
        assert_eq!(node_kind, client_kind, "{what}");
        let expected = match what {
            "genuine" => "accepted",
            "another image" | "another connection" => "policy",
            "another root" | "not evidence" | "no provider's" => "evidence",
            "another key" => "key",
            _ => "manifest",
        };
        assert_eq!(node_kind, expected, "{what}");
    }
    // The same refusal for the peer's further documents (a key-release request's).
    let stale = evidence(&genuine, &[8; 32], &spki, ours);
    let err = n1
        .ctx
        .check_peer_document("node-2", &stale.document, &exporter)
        .unwrap_err();
    assert!(
        matches!(
            err,
            ChannelError::Policy {
                source: PolicyError::NonceMismatch,
                ..
            }
        ),
        "{err}"
    );
}
