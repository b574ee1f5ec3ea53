//! Threshold ECDSA through the whole node stack against the bare library, all figures from
//! one run on this machine.
//!
//! - Bare: `mpc` sessions for a 2-of-3 key, each party on its own thread, envelopes routed in
//!   memory by the node's own router and session driver (no TLS, no parents, no storage).
//! - Stack: three `enclave` and three `parent` processes (simulator mode, release build),
//!   operations asked through a parent's client port; attested links between nodes, key
//!   shares sealed at the parents.
//! - Baseline for signing from a presignature: one plain request/response through the same
//!   kind of connection (a status request to a node through its parent).
//! - Sustained: signatures per second for 60 s from three clients, each asking a different
//!   node with a different signing set, with presignature pools on; against the bound the
//!   library's own CPU cost per signature sets on this machine.
//!
//! Every signature goes through the nodes' request flow under a permissive policy (one
//! operator's approval): a digest for signing without a presignature, an Ethereum
//! transaction at the master path (which the nodes hash themselves, so a pooled
//! presignature signs it) for signing from one. The coordinator chooses its signing set
//! (itself and the first attested party), so in the sustained run node-1 and node-2 both
//! sign with {node-1, node-2} and node-3 with {node-1, node-3}. Each signed transaction's
//! sender is checked to be the key's address.
//!
//! `cargo bench -p integration-tests --bench stack` (about six minutes). With `--smoke`
//! (or `BENCH_QUICK=1`), one or two runs of each and a 5 s sustained window: it checks that
//! the whole path works, and its figures mean nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use enclave::threshold::router::Router;
use enclave::threshold::runner;
use integration_tests::cluster::{Cluster, PERMISSIVE_POLICY, PRIMES_FIXTURE, STARTUP, all};
use integration_tests::eth;
use mpc::ecdsa::{Ecdsa, KeyShare};
use mpc::{KeyId, NodeId, PartySet, Protocol, Scheme, Session, SessionId, Threshold};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Builder<O> = Box<dyn FnOnce() -> Session<O> + Send>;

/// Runs one session per party, each on its own thread; returns the outputs in party order.
fn on_threads<O: Send + 'static>(
    parties: &[NodeId],
    request: &[u8],
    protocol: Protocol,
    builders: Vec<Builder<O>>,
) -> Vec<O> {
    let session = SessionId::derive(protocol, request);
    let routers: Arc<Vec<(NodeId, Mutex<Router>)>> = Arc::new(
        parties
            .iter()
            .map(|p| (p.clone(), Mutex::new(Router::new())))
            .collect(),
    );
    let threads: Vec<_> = parties
        .iter()
        .zip(builders)
        .map(|(me, build)| {
            let inbox = routers
                .iter()
                .find(|(p, _)| p == me)
                .unwrap()
                .1
                .lock()
                .unwrap()
                .register(session, Instant::now())
                .unwrap();
            let routers = routers.clone();
            let me = me.clone();
            std::thread::spawn(move || {
                let mut s = build();
                runner::drive(
                    &mut s,
                    &inbox,
                    Duration::from_secs(600),
                    Duration::from_secs(3600),
                    |to, envelope| {
                        let (_, router) = routers.iter().find(|(p, _)| p == to).unwrap();
                        router
                            .lock()
                            .unwrap()
                            .route(me.clone(), envelope.clone(), Instant::now());
                    },
                )
                .unwrap()
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// CPU time of this process (all threads) so far, from /proc.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// How many runs of each measurement.
#[derive(Clone, Copy)]
struct Plan {
    bare_sign: u32,
    bare_presigned: u32,
    sign: u8,
    presigned: u8,
    round_trips: u32,
    window: Duration,
}

impl Plan {
    fn from_args() -> Self {
        let smoke = std::env::args().any(|a| a == "--smoke")
            || std::env::var_os("BENCH_QUICK").is_some_and(|v| v != "0");
        if smoke {
            Plan {
                bare_sign: 1,
                bare_presigned: 1,
                sign: 1,
                presigned: 2,
                round_trips: 5,
                window: Duration::from_secs(5),
            }
        } else {
            Plan {
                bare_sign: 5,
                bare_presigned: 7,
                sign: 5,
                presigned: 11,
                round_trips: 50,
                window: Duration::from_secs(60),
            }
        }
    }
}

struct Bare {
    keygen: Duration,
    sign: Duration,
    presigned: Duration,
    cpu_per_signature: Duration,
}

fn bare(plan: Plan) -> Bare {
    let parties: Vec<NodeId> = ["node-1", "node-2", "node-3"]
        .map(|n| NodeId::new(n).unwrap())
        .to_vec();
    let group = PartySet::new(parties.clone()).unwrap();
    let threshold = Threshold::new(2, &group).unwrap();
    let primes = mpc::sim::load_primes(&std::fs::read(PRIMES_FIXTURE).unwrap()).unwrap();

    let started = Instant::now();
    let builders: Vec<Builder<mpc::ecdsa::AuxInfo>> = parties
        .iter()
        .zip(primes)
        .map(|(me, primes)| {
            let (group, me) = (group.clone(), me.clone());
            Box::new(move || Ecdsa::aux_info(b"aux", &group, &me, primes).unwrap()) as Builder<_>
        })
        .collect();
    let aux = on_threads(&parties, b"aux", Protocol::AuxInfo, builders);
    let builders: Vec<Builder<KeyShare>> = parties
        .iter()
        .zip(aux)
        .map(|(me, aux)| {
            let (group, me) = (group.clone(), me.clone());
            Box::new(move || {
                let key = KeyId::new("bench").unwrap();
                Ecdsa::keygen(b"keygen", key, &group, &me, threshold, &aux).unwrap()
            }) as Builder<_>
        })
        .collect();
    let shares: Vec<Arc<KeyShare>> = on_threads(&parties, b"keygen", Protocol::Keygen, builders)
        .into_iter()
        .map(Arc::new)
        .collect();
    let keygen = started.elapsed();
    println!("bare: aux info + keygen 2-of-3: {}", ms(keygen));

    let signers = &parties[..2];
    let set = shares[0].signing_set(signers.iter().cloned()).unwrap();
    let mut sign_times = Vec::new();
    let cpu_before = cpu_time();
    for run in 0..plan.bare_sign {
        let request = format!("sign {run}");
        let started = Instant::now();
        let builders: Vec<Builder<mpc::ecdsa::Signature>> = signers
            .iter()
            .zip(&shares)
            .map(|(me, share)| {
                let (set, me, share, request) =
                    (set.clone(), me.clone(), share.clone(), request.clone());
                Box::new(move || {
                    Ecdsa::sign(
                        request.as_bytes(),
                        share,
                        &set,
                        &me,
                        mpc::ecdsa::ToSign::Digest([7; 32]),
                        None,
                    )
                    .unwrap()
                }) as Builder<_>
            })
            .collect();
        on_threads(signers, request.as_bytes(), Protocol::Sign, builders);
        sign_times.push(started.elapsed());
    }
    let cpu_full = (cpu_time() - cpu_before) / plan.bare_sign;
    let sign = median(sign_times);
    println!(
        "bare: signing without a presignature: {} (CPU {})",
        ms(sign),
        ms(cpu_full)
    );

    let mut presigned_times = Vec::new();
    let cpu_before = cpu_time();
    for run in 0..plan.bare_presigned {
        let request = format!("presign {run}");
        let builders: Vec<Builder<mpc::ecdsa::Presignature>> = signers
            .iter()
            .zip(&shares)
            .map(|(me, share)| {
                let (set, me, share, request) =
                    (set.clone(), me.clone(), share.clone(), request.clone());
                Box::new(move || {
                    Ecdsa::presign(request.as_bytes(), share, &set, &me, None).unwrap()
                }) as Builder<_>
            })
            .collect();
        let presignatures = on_threads(signers, request.as_bytes(), Protocol::Presign, builders);
        let request = format!("sign presigned {run}");
        let started = Instant::now();
        let builders: Vec<Builder<mpc::ecdsa::Signature>> = signers
            .iter()
            .zip(presignatures)
            .map(|(me, p)| {
                let (me, request) = (me.clone(), request.clone());
                Box::new(move || {
                    let message = mpc::ecdsa::ToSign::Keccak256Message(b"bench".to_vec());
                    Ecdsa::sign_presigned(request.as_bytes(), p, &me, &message, None).unwrap()
                }) as Builder<_>
            })
            .collect();
        on_threads(
            signers,
            request.as_bytes(),
            Protocol::SignPresigned,
            builders,
        );
        presigned_times.push(started.elapsed());
    }
    let cpu_pooled = (cpu_time() - cpu_before) / plan.bare_presigned;
    let presigned = median(presigned_times);
    println!(
        "bare: signing from a presignature: {} (presignature + signature CPU {})",
        ms(presigned),
        ms(cpu_pooled)
    );
    Bare {
        keygen,
        sign,
        presigned,
        cpu_per_signature: cpu_full.min(cpu_pooled),
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let plan = Plan::from_args();
    let bare = bare(plan);

    let (c, _) =
        Cluster::running_with(3, &["--presign-depth", "1", "--round-timeout-secs", "120"]).unwrap();
    let started = Instant::now();
    let created = c.create_key("node-1", "bench", 2, &[]).unwrap().unwrap();
    let keygen = started.elapsed();
    println!("stack: aux info + keygen 2-of-3: {}", ms(keygen));
    let address = created["eth_address"].as_str().unwrap().to_owned();
    c.submit_policy(PERMISSIVE_POLICY).unwrap();

    // Let the pools fill so that nothing runs in the background while timing.
    let pools_full = |c: &Cluster| {
        c.wait_until("presignature pools full", STARTUP * 5, |s| {
            all(s, |s| s.presignatures == 2)
        })
        .unwrap();
    };
    pools_full(&c);

    let mut sign_times = Vec::new();
    for run in 0..plan.sign {
        let started = Instant::now();
        let answer = c
            .sign_with("node-1", "bench", [run; 32], None)
            .unwrap()
            .unwrap();
        sign_times.push(started.elapsed());
        assert_eq!(answer["presigned"], false);
    }
    let sign = median(sign_times);
    println!("stack: signing without a presignature: {}", ms(sign));

    let mut presigned_times = Vec::new();
    for run in 0..plan.presigned {
        pools_full(&c);
        let tx = eth::transfer(u64::from(run), 1);
        let started = Instant::now();
        let answer = c.sign_eth("node-1", "bench", &tx, None).unwrap().unwrap();
        presigned_times.push(started.elapsed());
        assert_eq!(answer["presigned"], true, "{answer}");
        eth::check_signed_tx(&answer, &address).unwrap();
    }
    let presigned = median(presigned_times);
    println!("stack: signing from a presignature: {}", ms(presigned));

    pools_full(&c);
    let mut round_trips = Vec::new();
    for _ in 0..plan.round_trips {
        let started = Instant::now();
        c.status("node-1").unwrap();
        round_trips.push(started.elapsed());
    }
    let round_trip = median(round_trips);
    println!(
        "stack: one status request through a parent (new attested TLS connection each time): {}",
        ms(round_trip)
    );

    // Sustained: three clients, three coordinators.
    let window = plan.window;
    let counts: Vec<(usize, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = ["node-1", "node-2", "node-3"]
            .into_iter()
            .zip(0u64..)
            .map(|(coordinator, client)| {
                let (c, address) = (&c, &address);
                scope.spawn(move || {
                    let end = Instant::now() + window;
                    let (mut done, mut pooled) = (0, 0);
                    let mut n = 0u64;
                    while Instant::now() < end {
                        n += 1;
                        let tx = eth::transfer(client << 32 | n, 1);
                        let answer = c
                            .sign_eth(coordinator, "bench", &tx, None)
                            .unwrap()
                            .unwrap();
                        eth::check_signed_tx(&answer, address).unwrap();
                        done += 1;
                        if answer["presigned"] == true {
                            pooled += 1;
                        }
                    }
                    (done, pooled)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let done: usize = counts.iter().map(|(d, _)| d).sum();
    let pooled: usize = counts.iter().map(|(_, p)| p).sum();
    let rate = done as f64 / window.as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let bound = cores as f64 / bare.cpu_per_signature.as_secs_f64();

    println!();
    println!("| operation | bare library | full stack | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| aux info + keygen, 2-of-3 | {} | {} | {:.2} |",
        ms(bare.keygen),
        ms(keygen),
        keygen.as_secs_f64() / bare.keygen.as_secs_f64()
    );
    println!(
        "| signing, no presignature | {} | {} | {:.2} |",
        ms(bare.sign),
        ms(sign),
        sign.as_secs_f64() / bare.sign.as_secs_f64()
    );
    println!(
        "| signing from a presignature | {} | {} | {:.1} round trips of {} |",
        ms(bare.presigned),
        ms(presigned),
        presigned.as_secs_f64() / round_trip.as_secs_f64(),
        ms(round_trip)
    );
    println!(
        "| sustained, {} s, 3 clients | bound {:.2}/s ({} cores / {} CPU per signature) | {:.2}/s ({done} signatures, {pooled} from presignatures) | {:.2} of the bound |",
        window.as_secs(),
        bound,
        cores,
        ms(bare.cpu_per_signature),
        rate,
        rate / bound
    );
}
