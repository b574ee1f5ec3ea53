//! Cost of opening an attested channel next to a plain TLS 1.3 mutual-auth handshake with
//! the same rustls configuration, the per-side attestation work, and a channel between a
//! Nitro node and a Confidential Space node next to one between two Nitro nodes, measured
//! interleaved in one run over in-memory pipes.
//!
//! `cargo bench -p enclave --bench channel` runs the full measurement. `BENCH_QUICK=1`,
//! `--quick`, or a run without `--bench` (such as `cargo test --benches`) runs a short
//! smoke version. Each batch checks that every operation succeeded.
//!
//! Both ends run in this process on one current-thread tokio runtime, so a figure is the
//! work of both sides added up. The two NSM calls of a channel run one after the other:
//! the accepting side attests only once it has checked the dialler's hello. Documents come
//! from the simulated NSM (feature `sim`), which generates a P-384 leaf key and signs
//! in-process: a real NSM's cost differs. Confidential Space tokens come from the
//! simulated attester (`attestation::gcp::sim`), which signs an RS256 token in-process
//! under its own RSA chain: the real launcher's cost (a request to Google) differs.
//!
//! - (a) TLS 1.3 handshake, both sides authenticated by self-signed ECDSA P-256
//!   certificates, verifiers that check only the handshake signatures (as the channel's).
//! - (b) `ChannelContext::connect` + `accept`: TLS, then the dialler's document produced,
//!   sent and checked, the acceptor's verdict, its document produced, sent and checked,
//!   and the dialler's verdict.
//! - (c) one `SimNsm::attest` and one `Verifier::verify` of its document: one side's
//!   attestation work; (c') the `SimNsm::attest` alone.
//! - (d) as (b), but the accepting node runs on Confidential Space: the Nitro dialler's
//!   document checked by the Confidential Space node, whose token (in its bundle) the
//!   Nitro node checks.
//! - (e) one `SimCsAttester::attest` and one `Verifier::verify` of its bundle; (e') the
//!   `SimCsAttester::attest` alone.
//!
//! Every handshake is a full one, as in the channel: the configurations of (a) disable
//! session resumption and send no tickets, like the channel's, and (a) checks that both
//! sides completed a full handshake. (b) reuses one pair of contexts for all its
//! connections, which the channel's configuration never resumes.

#[cfg(feature = "sim")]
fn main() -> std::process::ExitCode {
    match bench::run(&bench::Settings::from_env()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("channel bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "sim"))]
fn main() {
    println!("SKIPPED channel bench: it needs the simulated NSM (feature `sim`)");
}

#[cfg(feature = "sim")]
mod bench {
    use attestation::gcp::sim::{SimCsAttester, SimCsCa, SimWorkload};
    use attestation::nitro::MeasurementSet;
    use attestation::nsm::sim::{SimCa, SimMeasurements, SimNsm};
    use attestation::{AttestationRequest, Attester, Measurements, Verifier};
    use enclave::channel::{ChannelContext, PeerTrust, TlsIdentity, tls_configs};
    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, HandshakeKind, ServerConfig};
    use std::collections::BTreeMap;
    use std::hint::black_box;
    use std::sync::Arc;
    use std::time::{Duration, Instant, SystemTime};
    use tokio::runtime::Runtime;

    const SERVER_NAME: &str = "node.tee-custody.internal";
    const IMAGE: &[u8] = b"channel bench image";
    /// The Confidential Space node of (d).
    const CS_NODE: &str = "node-3";
    const MANIFEST_HASH: [u8; 32] = [0x42; 32];
    const PIPE: usize = 1 << 16;

    pub struct Settings {
        quick: bool,
        batches: usize,
        batch_time: Duration,
        warmup: Duration,
    }

    impl Settings {
        pub fn from_env() -> Self {
            let args: Vec<String> = std::env::args().skip(1).collect();
            let quick = std::env::var_os("BENCH_QUICK").is_some_and(|v| v != "0")
                || args.iter().any(|a| a == "--quick")
                || !args.iter().any(|a| a == "--bench");
            if quick {
                Settings {
                    quick,
                    batches: 6,
                    batch_time: Duration::from_millis(20),
                    warmup: Duration::from_millis(50),
                }
            } else {
                Settings {
                    quick,
                    batches: 31,
                    batch_time: Duration::from_millis(100),
                    warmup: Duration::from_millis(1000),
                }
            }
        }
    }

    /// Everything the measurements use, built once.
    struct Setup {
        rt: Runtime,
        plain: Plain,
        /// The two ends of (b), reused for every connection.
        client_ctx: ChannelContext,
        server_ctx: ChannelContext,
        /// The node id the client dials.
        server_id: String,
        /// The accepting end of (d), a Confidential Space node.
        cs_ctx: ChannelContext,
        nsm: Arc<SimNsm>,
        cs_attester: Arc<SimCsAttester>,
        verifier: Verifier,
        spki: Vec<u8>,
    }

    /// The TLS configurations of (a).
    struct Plain {
        client: Arc<ClientConfig>,
        server: Arc<ServerConfig>,
    }

    /// What a node's channel context is built from.
    struct Node<A> {
        id: String,
        identity: Arc<TlsIdentity>,
        attester: Arc<A>,
        trust: PeerTrust,
    }

    impl<A: Attester + 'static> Node<A> {
        fn context(&self) -> Result<ChannelContext, String> {
            ChannelContext::new(
                self.id.clone(),
                self.identity.clone(),
                self.attester.clone(),
                self.trust.clone(),
            )
            .map_err(|e| e.to_string())
        }
    }

    fn setup() -> Result<Setup, String> {
        let err = |e: &dyn std::fmt::Display| e.to_string();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| err(&e))?;
        let now = SystemTime::now();
        let ca = SimCa::generate(now).map_err(|e| err(&e))?;
        let cs_ca = SimCsCa::new(now).map_err(|e| err(&e))?;
        // Every simulated node trusts both simulators' roots.
        let verifier = Verifier::production()
            .trust_simulated_root(ca.root_der(), now)
            .map_err(|e| err(&e))?
            .trust_simulated_gcp_root(cs_ca.root_der(), now)
            .map_err(|e| err(&e))?;
        let pcrs = SimMeasurements::of_image(IMAGE).pcrs();
        let expected = MeasurementSet::new(
            (0u8..3)
                .map(|i| (i, pcrs.get(&i).map(|v| v.to_vec()).unwrap_or_default()))
                .collect(),
        )
        .map_err(|e| err(&e))?;
        // The Confidential Space node is pinned as a manifest pins one: its image, project,
        // zone and instance.
        let workload = SimWorkload::of_image(IMAGE, CS_NODE);
        let cs_expected = workload.measurement_set().map_err(|e| err(&e))?;
        let mut peers: BTreeMap<String, Vec<Measurements>> = ["node-1", "node-2"]
            .iter()
            .map(|id| ((*id).to_owned(), vec![expected.clone().into()]))
            .collect();
        peers.insert(CS_NODE.to_owned(), vec![cs_expected.into()]);
        let trust = PeerTrust {
            manifest_hash: MANIFEST_HASH,
            peers,
            verifier: verifier.clone(),
            max_evidence_age: Duration::from_secs(60),
            allow_debug: false,
        };
        let identity = |id: &str| -> Result<Arc<TlsIdentity>, String> {
            Ok(Arc::new(
                TlsIdentity::generate(id, now).map_err(|e| err(&e))?,
            ))
        };
        let node = |id: &str| -> Result<Node<SimNsm>, String> {
            Ok(Node {
                id: id.to_owned(),
                identity: identity(id)?,
                attester: Arc::new(
                    SimNsm::new(&ca, &SimMeasurements::of_image(IMAGE), now)
                        .map_err(|e| err(&e))?,
                ),
                trust: trust.clone(),
            })
        };
        let (client, server) = (node("node-1")?, node("node-2")?);
        let cs_node = Node {
            id: CS_NODE.to_owned(),
            identity: identity(CS_NODE)?,
            attester: Arc::new(SimCsAttester::new(&cs_ca, workload, now).map_err(|e| err(&e))?),
            trust: trust.clone(),
        };
        Ok(Setup {
            rt,
            plain: plain_configs()?,
            client_ctx: client.context()?,
            server_ctx: server.context()?,
            server_id: server.id,
            cs_ctx: cs_node.context()?,
            spki: client.identity.spki_der().to_vec(),
            nsm: client.attester,
            cs_attester: cs_node.attester,
            verifier,
        })
    }

    /// The channel's own rustls configurations (`enclave::channel::tls_configs`), for two
    /// fresh node identities: the handshake the attested channel runs, without the
    /// attestation.
    fn plain_configs() -> Result<Plain, String> {
        let now = SystemTime::now();
        let identity = |id| TlsIdentity::generate(id, now).map_err(|e| e.to_string());
        let (client, _) = tls_configs(&identity("node-1")?).map_err(|e| e.to_string())?;
        let (_, server) = tls_configs(&identity("node-2")?).map_err(|e| e.to_string())?;
        Ok(Plain { client, server })
    }

    /// One TLS handshake over a fresh pipe. True when both sides completed a full one.
    async fn handshake(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>) -> bool {
        let Ok(name) = ServerName::try_from(SERVER_NAME) else {
            return false;
        };
        let (x, y) = tokio::io::duplex(PIPE);
        let (c, s) = tokio::join!(
            tokio_rustls::TlsConnector::from(client.clone()).connect(name, x),
            tokio_rustls::TlsAcceptor::from(server.clone()).accept(y)
        );
        let (Ok(c), Ok(s)) = (c, s) else {
            return false;
        };
        c.get_ref().1.handshake_kind() == Some(HandshakeKind::Full)
            && s.get_ref().1.handshake_kind() == Some(HandshakeKind::Full)
    }

    async fn channel(client: &ChannelContext, server: &ChannelContext, to: &str) -> bool {
        let (x, y) = tokio::io::duplex(PIPE);
        let (c, s) = tokio::join!(client.connect(x, to), server.accept(y));
        c.is_ok() && s.is_ok()
    }

    fn per_op(elapsed: Duration, n: usize) -> Duration {
        elapsed / u32::try_from(n.max(1)).unwrap_or(u32::MAX)
    }

    fn succeeded(what: &str, ok: usize, n: usize) -> Result<(), String> {
        if ok == n {
            Ok(())
        } else {
            Err(format!("{what} failed {} of {n} times", n - ok))
        }
    }

    impl Setup {
        /// (a): `n` full TLS handshakes; the time per handshake.
        fn time_tls(&self, n: usize) -> Result<Duration, String> {
            let p = &self.plain;
            let start = Instant::now();
            let ok = self.rt.block_on(async {
                let mut ok = 0usize;
                for _ in 0..n {
                    ok += usize::from(handshake(&p.client, &p.server).await);
                }
                ok
            });
            let elapsed = start.elapsed();
            succeeded("full TLS handshake", ok, n)?;
            Ok(per_op(elapsed, n))
        }

        /// (b), or with `to_cs` (d): `n` channels between the same two contexts; the
        /// time per channel.
        fn time_channel(&self, n: usize, to_cs: bool) -> Result<Duration, String> {
            let (server, to) = if to_cs {
                (&self.cs_ctx, CS_NODE)
            } else {
                (&self.server_ctx, self.server_id.as_str())
            };
            let start = Instant::now();
            let ok = self.rt.block_on(async {
                let mut ok = 0usize;
                for _ in 0..n {
                    ok += usize::from(channel(&self.client_ctx, server, to).await);
                }
                ok
            });
            let elapsed = start.elapsed();
            succeeded("attested channel", ok, n)?;
            Ok(per_op(elapsed, n))
        }

        /// (c), or with `verify` false (c'): `n` times one document produced, and
        /// verified; with `cs` a token from the Confidential Space attester, (e) and (e').
        fn time_attest(&self, n: usize, cs: bool, verify: bool) -> Result<Duration, String> {
            let attester: &dyn Attester = if cs {
                self.cs_attester.as_ref()
            } else {
                self.nsm.as_ref()
            };
            let request = AttestationRequest {
                user_data: Some(MANIFEST_HASH.to_vec()),
                nonce: Some(vec![0x5a; 32]),
                public_key: Some(self.spki.clone()),
            };
            let start = Instant::now();
            let mut ok = 0usize;
            for _ in 0..n {
                let done = attester.attest(black_box(&request)).is_ok_and(|doc| {
                    !verify
                        || self
                            .verifier
                            .verify(black_box(&doc), SystemTime::now())
                            .is_ok()
                });
                ok += usize::from(done);
            }
            let elapsed = start.elapsed();
            succeeded("attest + verify", ok, n)?;
            Ok(per_op(elapsed, n))
        }
    }

    /// The measurements, in the order of the report.
    const NAMES: [&str; 7] = [
        "(a)  TLS 1.3 mutual-auth handshake, full",
        "(b)  attested channel, Nitro to Nitro",
        "(c)  SimNsm::attest + Verifier::verify",
        "(c') SimNsm::attest alone",
        "(d)  attested channel, Nitro to Conf. Space",
        "(e)  SimCsAttester::attest + Verifier::verify",
        "(e') SimCsAttester::attest alone",
    ];

    pub fn run(settings: &Settings) -> Result<(), String> {
        let s = setup()?;
        let measure = |which: usize, n: usize| -> Result<Duration, String> {
            match which {
                0 => s.time_tls(n),
                1 => s.time_channel(n, false),
                2 => s.time_attest(n, false, true),
                3 => s.time_attest(n, false, false),
                4 => s.time_channel(n, true),
                5 => s.time_attest(n, true, true),
                _ => s.time_attest(n, true, false),
            }
        };

        let warm_until = Instant::now() + settings.warmup;
        let mut per = [Duration::ZERO; NAMES.len()];
        while Instant::now() < warm_until {
            for (which, slot) in per.iter_mut().enumerate() {
                *slot = measure(which, 2)?;
            }
        }
        for (which, slot) in per.iter_mut().enumerate() {
            *slot = measure(which, 5)?;
        }
        let counts: Vec<usize> = per
            .iter()
            .map(|d| iterations(settings.batch_time, *d))
            .collect();

        let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(settings.batches); NAMES.len()];
        let mut ratios = Vec::with_capacity(settings.batches);
        let mut cs_ratios = Vec::with_capacity(settings.batches);
        for batch in 0..settings.batches {
            // Rotate the order so that drift (frequency scaling, neighbours) is shared.
            let mut this = [0.0f64; NAMES.len()];
            for k in 0..NAMES.len() {
                let which = (k + batch) % NAMES.len();
                let n = counts.get(which).copied().unwrap_or(1);
                if let Some(slot) = this.get_mut(which) {
                    *slot = micros(measure(which, n)?);
                }
            }
            for (which, value) in this.iter().enumerate() {
                if let Some(list) = samples.get_mut(which) {
                    list.push(*value);
                }
            }
            ratios.push(this[1] / this[0]);
            cs_ratios.push(this[4] / this[1]);
        }

        let medians: Vec<f64> = samples.iter_mut().map(|v| median(v)).collect();
        let med = |i: usize| medians.get(i).copied().unwrap_or(f64::NAN);
        let (tls, chan, att, doc) = (med(0), med(1), med(2), med(3));
        let (cs_chan, cs_att, token) = (med(4), med(5), med(6));
        let (ratio_lo, ratio_hi) = quartiles(&mut ratios);
        let (cs_ratio_lo, cs_ratio_hi) = quartiles(&mut cs_ratios);

        println!(
            "batches: {}, interleaved; iterations per batch: {}",
            settings.batches,
            counts
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join("/")
        );
        if cfg!(debug_assertions) {
            println!("unoptimized build: the figures below are not representative");
        }
        if settings.quick {
            println!("quick run: the figures below are indicative only");
        }
        for ((name, values), median) in NAMES.iter().zip(&samples).zip(&medians) {
            println!(
                "{name:<46} median {median:9.1} us/op  (min {:.1}, max {:.1})",
                min(values),
                max(values)
            );
        }
        println!(
            "ratio (b)/(a): {:.2} (per-batch p25..p75 {ratio_lo:.2}..{ratio_hi:.2})",
            chan / tls
        );
        println!(
            "(b) - (a) = {:.1} us: both sides' attestation exchange; 2 x (c) = {:.1} us, \
             of which producing the documents 2 x (c') = {:.1} us",
            chan - tls,
            2.0 * att,
            2.0 * doc
        );
        println!(
            "ratio (d)/(b), Nitro to Confidential Space against Nitro to Nitro: {:.2} \
             (per-batch p25..p75 {cs_ratio_lo:.2}..{cs_ratio_hi:.2})",
            cs_chan / chan
        );
        println!(
            "(d) - (b) = {:.1} us: one side's document replaced by a token; (e) - (c) = {:.1} us, \
             of which producing it (e') - (c') = {:.1} us",
            cs_chan - chan,
            cs_att - att,
            token - doc
        );
        println!(
            "note: (c) and the attestation part of (b) use the simulated NSM, which generates \
             a P-384 key and signs in-process; a real NSM's document costs differ \
             (a device round trip, its own signing). (e) and the token of (d) use the \
             simulated Confidential Space attester, which signs an RS256 token in-process; \
             the real launcher asks Google for each token"
        );
        Ok(())
    }

    /// Iterations that take about `budget` at `per_op` each (at least one).
    fn iterations(budget: Duration, per_op: Duration) -> usize {
        let n = budget.as_secs_f64() / per_op.as_secs_f64().max(1e-9);
        (n.round() as usize).max(1)
    }

    fn micros(d: Duration) -> f64 {
        d.as_secs_f64() * 1e6
    }

    fn sorted(values: &mut [f64]) -> &[f64] {
        values.sort_by(f64::total_cmp);
        values
    }

    fn median(values: &mut [f64]) -> f64 {
        quantile(sorted(values), 0.5)
    }

    fn quartiles(values: &mut [f64]) -> (f64, f64) {
        let s = sorted(values);
        (quantile(s, 0.25), quantile(s, 0.75))
    }

    /// Nearest-rank quantile of sorted values; NaN when there are none.
    fn quantile(sorted: &[f64], q: f64) -> f64 {
        let rank = ((sorted.len().saturating_sub(1)) as f64 * q).round() as usize;
        sorted.get(rank).copied().unwrap_or(f64::NAN)
    }

    fn min(values: &[f64]) -> f64 {
        values.iter().copied().fold(f64::INFINITY, f64::min)
    }

    fn max(values: &[f64]) -> f64 {
        values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }
}
