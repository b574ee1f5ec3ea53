//! In-process cost of the engine's protocols. Every party runs in this one thread and
//! envelopes are routed in memory, so each figure is the CPU time of all parties together,
//! with no network: the bare cost the node stack is later compared against.
//!
//! `cargo bench -p mpc --bench engine` runs the full measurement. `BENCH_QUICK=1`, `--quick`,
//! or a run without `--bench` runs one iteration of each. Every iteration checks its output
//! (signatures are verified with `k256`), so a failing run cannot be timed by mistake.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mpc::ecdsa::{Ecdsa, KeyShare, Signature, ToSign};
use mpc::{KeyId, NodeId, PartySet, Scheme, SigningSet, Threshold, sim};

type Error = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = std::env::var_os("BENCH_QUICK").is_some_and(|v| v != "0")
        || args.iter().any(|a| a == "--quick")
        || !args.iter().any(|a| a == "--bench");
    let (heavy, light) = if quick { (1, 1) } else { (3, 7) };

    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let primes = std::fs::read(fixtures.join("primes.json"))?;
    let aux = std::fs::read(fixtures.join("aux-info-3.json"))?;
    let group = PartySet::new(
        (0..3)
            .map(|i| NodeId::new(format!("node-{i}")))
            .collect::<Result<Vec<_>, _>>()?,
    )?;
    let threshold = Threshold::new(2, &group)?;
    let nodes = group.nodes().to_vec();

    println!("mpc engine, in process, all parties in one thread (2-of-3, secp256k1)");
    println!("{:<48} {:>5} {:>12}", "operation", "runs", "median");

    measure("aux info, 3 parties, fixture primes", heavy, |k| {
        let primes = sim::load_primes(&primes)?;
        let request = format!("bench aux {k}");
        let sessions = nodes
            .iter()
            .zip(primes)
            .map(|(node, primes)| {
                Ecdsa::aux_info(request.as_bytes(), &group, node, primes).map(|s| (node.clone(), s))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let started = Instant::now();
        all_ok(sim::run(sessions))?;
        Ok(started.elapsed())
    })?;

    let mut key = None;
    measure("keygen 2-of-3, fixture aux info", light, |k| {
        let aux = sim::load_aux_info(&aux, &group)?;
        let request = format!("bench keygen {k}");
        let sessions = nodes
            .iter()
            .zip(&aux)
            .map(|(node, aux)| {
                Ecdsa::keygen(
                    request.as_bytes(),
                    KeyId::new("bench")?,
                    &group,
                    node,
                    threshold,
                    aux,
                )
                .map(|s| (node.clone(), s))
                .map_err(Error::from)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let started = Instant::now();
        let shares = all_ok(sim::run(sessions))?;
        let elapsed = started.elapsed();
        key = Some(shares.into_iter().map(Arc::new).collect::<Vec<_>>());
        Ok(elapsed)
    })?;
    let shares: Vec<Arc<KeyShare>> = key.ok_or("no key")?;
    let first = shares.first().ok_or("no key")?;
    let public_key = first.public_key()?;
    let signers: Vec<(NodeId, Arc<KeyShare>)> = nodes
        .iter()
        .cloned()
        .zip(shares.iter().cloned())
        .take(2)
        .collect();
    let set = first.signing_set(signers.iter().map(|(node, _)| node.clone()))?;

    measure("sign, 2 signers, no presignature", light, |k| {
        let to_sign = ToSign::Keccak256Message(format!("bench transfer {k}").into_bytes());
        let sessions = signers
            .iter()
            .map(|(node, share)| {
                Ecdsa::sign(
                    format!("bench sign {k}").as_bytes(),
                    Arc::clone(share),
                    &set,
                    node,
                    to_sign.clone(),
                    None,
                )
                .map(|s| (node.clone(), s))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let started = Instant::now();
        let signatures = all_ok(sim::run(sessions))?;
        let elapsed = started.elapsed();
        check(&signatures, &public_key, &to_sign)?;
        Ok(elapsed)
    })?;

    let mut presignatures = Vec::new();
    measure("presignature generation, 2 signers", light, |k| {
        let started = Instant::now();
        presignatures.push(presign(&signers, &set, k)?);
        Ok(started.elapsed())
    })?;

    measure("sign from a presignature, 2 signers", light, |k| {
        let pair = match presignatures.pop() {
            Some(pair) => pair,
            None => presign(&signers, &set, 1000 + k)?,
        };
        let to_sign = ToSign::Keccak256Message(format!("bench presigned {k}").into_bytes());
        let started = Instant::now();
        let sessions = pair
            .into_iter()
            .map(|(node, presignature)| {
                Ecdsa::sign_presigned(
                    format!("bench presigned {k}").as_bytes(),
                    presignature,
                    &node,
                    &to_sign,
                    None,
                )
                .map(|s| (node, s))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let signatures = all_ok(sim::run(sessions))?;
        let elapsed = started.elapsed();
        check(&signatures, &public_key, &to_sign)?;
        Ok(elapsed)
    })?;
    if quick {
        println!(
            "(quick run: one iteration each; `cargo bench -p mpc --bench engine` for medians)"
        );
    }
    Ok(())
}

fn presign(
    signers: &[(NodeId, Arc<KeyShare>)],
    set: &SigningSet,
    k: usize,
) -> Result<Vec<(NodeId, mpc::ecdsa::Presignature)>, Error> {
    let sessions = signers
        .iter()
        .map(|(node, share)| {
            Ecdsa::presign(
                format!("bench presign {k}").as_bytes(),
                Arc::clone(share),
                set,
                node,
                None,
            )
            .map(|s| (node.clone(), s))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let results = sim::run(sessions);
    let nodes: Vec<NodeId> = results.iter().map(|(n, _)| n.clone()).collect();
    Ok(nodes.into_iter().zip(all_ok(results)?).collect())
}

fn all_ok<O>(results: Vec<(NodeId, Result<O, mpc::SessionError>)>) -> Result<Vec<O>, Error> {
    results
        .into_iter()
        .map(|(node, result)| result.map_err(|e| format!("{node}: {e}").into()))
        .collect()
}

fn check(signatures: &[Signature], key: &mpc::PublicKey, to_sign: &ToSign) -> Result<(), Error> {
    for signature in signatures {
        signature.verify(key, &to_sign.prehash())?;
    }
    Ok(())
}

fn measure(
    name: &str,
    runs: usize,
    mut once: impl FnMut(usize) -> Result<Duration, Error>,
) -> Result<Duration, Error> {
    let mut times = (0..runs).map(&mut once).collect::<Result<Vec<_>, _>>()?;
    times.sort();
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    println!("{name:<48} {runs:>5} {:>12}", format!("{median:.3?}"));
    Ok(median)
}
