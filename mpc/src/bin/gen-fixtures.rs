//! Generates the simulator fixtures in `mpc/fixtures/` (or the directory given as the only
//! argument) with this crate's own code: safe primes for five parties, and auxiliary info for
//! party sets of three and five, each from its own fresh primes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use mpc::ecdsa::{Ecdsa, SafePrimes};
use mpc::{NodeId, PartySet, sim};

const PRIME_SETS: usize = 5;
const AUX_GROUPS: [u16; 2] = [3, 5];

fn main() -> ExitCode {
    match generate() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen-fixtures: {e}");
            ExitCode::FAILURE
        }
    }
}

fn generate() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures"));
    std::fs::create_dir_all(&dir)?;

    let needed = PRIME_SETS + AUX_GROUPS.iter().map(|n| usize::from(*n)).sum::<usize>();
    let mut primes = generate_primes(needed);
    if primes.len() != needed {
        return Err(format!("generated {} sets of primes, needed {needed}", primes.len()).into());
    }

    let for_fixture: Vec<SafePrimes> = primes.drain(..PRIME_SETS).collect();
    write(&dir, "primes.json", &sim::primes_to_json(&for_fixture)?)?;

    for n in AUX_GROUPS {
        let started = Instant::now();
        let group = PartySet::new(
            (0..n)
                .map(|i| NodeId::new(format!("fixture-{i}")))
                .collect::<Result<Vec<_>, _>>()?,
        )?;
        let request = format!("gen-fixtures aux info for {n} parties");
        let sessions = group
            .nodes()
            .iter()
            .zip(primes.drain(..usize::from(n)))
            .map(|(node, primes)| {
                Ecdsa::aux_info(request.as_bytes(), &group, node, primes)
                    .map(|session| (node.clone(), session))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let aux = sim::run(sessions)
            .into_iter()
            .map(|(_, result)| result)
            .collect::<Result<Vec<_>, _>>()?;
        eprintln!("aux info for {n} parties in {:.1?}", started.elapsed());
        write(
            &dir,
            &format!("aux-info-{n}.json"),
            &sim::aux_info_to_json(&aux)?,
        )?;
    }
    Ok(())
}

fn generate_primes(count: usize) -> Vec<SafePrimes> {
    let started = Instant::now();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(count);
    let primes: Vec<SafePrimes> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let share = count / threads + usize::from(t < count % threads);
                scope.spawn(move || {
                    (0..share)
                        .map(|_| SafePrimes::generate())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    eprintln!(
        "{} sets of safe primes in {:.1?} on {threads} threads",
        primes.len(),
        started.elapsed()
    );
    primes
}

fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, bytes)?;
    eprintln!("wrote {} ({} bytes)", path.display(), bytes.len());
    Ok(())
}
