//! Simulator mode only (feature `sim`): pre-generated primes and auxiliary info from fixture
//! files, and an in-process network that runs every party's session in one thread.
//!
//! The fixtures in `mpc/fixtures/` are produced by this crate's `gen-fixtures` binary. They hold
//! secret Paillier primes in the clear and must never be used outside tests and simulation.

use std::collections::VecDeque;

use cggmp24::PregeneratedPrimes;
use serde::{Deserialize, Serialize};

use crate::Envelope;
use crate::ecdsa::{AuxInfo, Level, SafePrimes};
use crate::party::{NodeId, PartySet};
use crate::session::{Session, SessionError};

/// Largest fixture file accepted.
pub const MAX_FIXTURE_LEN: usize = 4 * 1024 * 1024;
const FIXTURE_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FixtureError {
    #[error("fixture of {len} bytes exceeds the limit of {max}", max = MAX_FIXTURE_LEN)]
    TooLarge { len: usize },
    #[error("fixture version {0}, expected {FIXTURE_VERSION}")]
    Version(u8),
    #[error("fixture encoding: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error("fixture content: {0}")]
    Content(String),
}

#[derive(Serialize, Deserialize)]
struct PrimesFixture {
    version: u8,
    primes: Vec<PregeneratedPrimes<Level>>,
}

#[derive(Serialize, Deserialize)]
struct AuxInfoFixture {
    version: u8,
    /// `aux_info[i]` belongs to the party of index `i`.
    aux_info: Vec<cggmp24::key_share::AuxInfo<Level>>,
}

pub fn load_primes(json: &[u8]) -> Result<Vec<SafePrimes>, FixtureError> {
    let fixture: PrimesFixture = parse(json)?;
    check_version(fixture.version)?;
    fixture
        .primes
        .into_iter()
        .map(|p| {
            PregeneratedPrimes::try_from(p.into_primes())
                .map(SafePrimes::from_library)
                .map_err(|_| FixtureError::Content("primes too small".into()))
        })
        .collect()
}

/// Auxiliary info for `group`, one per party in index order.
pub fn load_aux_info(json: &[u8], group: &PartySet) -> Result<Vec<AuxInfo>, FixtureError> {
    let fixture: AuxInfoFixture = parse(json)?;
    check_version(fixture.version)?;
    if fixture.aux_info.len() != usize::from(group.len()) {
        return Err(FixtureError::Content(format!(
            "auxiliary info for {} parties, the group has {}",
            fixture.aux_info.len(),
            group.len()
        )));
    }
    (0..group.len())
        .zip(fixture.aux_info)
        .map(|(i, aux)| {
            AuxInfo::new(group.clone(), i, aux).map_err(|e| FixtureError::Content(e.to_string()))
        })
        .collect()
}

pub fn primes_to_json(primes: &[SafePrimes]) -> Result<Vec<u8>, FixtureError> {
    let fixture = PrimesFixture {
        version: FIXTURE_VERSION,
        primes: primes.iter().map(|p| p.library().clone()).collect(),
    };
    Ok(serde_json::to_vec_pretty(&fixture)?)
}

/// `aux` must hold one auxiliary info per party of one group, in index order.
pub fn aux_info_to_json(aux: &[AuxInfo]) -> Result<Vec<u8>, FixtureError> {
    if aux
        .iter()
        .enumerate()
        .any(|(i, a)| usize::from(a.index()) != i || usize::from(a.group().len()) != aux.len())
    {
        return Err(FixtureError::Content(
            "auxiliary info out of index order".into(),
        ));
    }
    let fixture = AuxInfoFixture {
        version: FIXTURE_VERSION,
        aux_info: aux.iter().map(|a| a.inner().clone()).collect(),
    };
    Ok(serde_json::to_vec_pretty(&fixture)?)
}

fn parse<T: serde::de::DeserializeOwned>(json: &[u8]) -> Result<T, FixtureError> {
    if json.len() > MAX_FIXTURE_LEN {
        return Err(FixtureError::TooLarge { len: json.len() });
    }
    Ok(serde_json::from_slice(json)?)
}

fn check_version(version: u8) -> Result<(), FixtureError> {
    if version != FIXTURE_VERSION {
        return Err(FixtureError::Version(version));
    }
    Ok(())
}

/// What the in-process network does with an envelope in flight from one node to another.
pub type Tamper<'a> = dyn FnMut(&NodeId, &NodeId, Envelope) -> Option<Envelope> + 'a;

/// Runs every party's session to the end in one thread, delivering envelopes first in, first
/// out; returns each node's output or error, in the order given.
pub fn run<O: 'static>(
    sessions: Vec<(NodeId, Session<O>)>,
) -> Vec<(NodeId, Result<O, SessionError>)> {
    run_with(sessions, &mut |_, _, envelope| Some(envelope))
}

/// Like [`run`], passing every envelope in flight through `tamper` (which may change or drop
/// it). A session that refuses a message keeps running; one that fails receives nothing more.
pub fn run_with<O: 'static>(
    sessions: Vec<(NodeId, Session<O>)>,
    tamper: &mut Tamper<'_>,
) -> Vec<(NodeId, Result<O, SessionError>)> {
    let mut parties: Vec<(NodeId, Session<O>, Option<SessionError>)> = sessions
        .into_iter()
        .map(|(node, session)| (node, session, None))
        .collect();
    let mut in_flight = VecDeque::new();
    for (node, session, failed) in &mut parties {
        match session.start() {
            Ok(out) => queue(&mut in_flight, node, session, out),
            Err(e) => *failed = Some(e),
        }
    }
    while let Some((from, to, envelope)) = in_flight.pop_front() {
        let Some(envelope) = tamper(&from, &to, envelope) else {
            continue;
        };
        let Some((node, session, failed)) = parties.iter_mut().find(|(n, _, _)| *n == to) else {
            continue;
        };
        if failed.is_some() {
            continue;
        }
        match session.handle(&from, &envelope) {
            Ok(out) => queue(&mut in_flight, node, session, out),
            Err(e) if e.is_refusal() => {}
            Err(e) => *failed = Some(e),
        }
    }
    parties
        .into_iter()
        .map(|(node, mut session, failed)| {
            let result = match failed {
                Some(e) => Err(e),
                None => session.take_output().ok_or(SessionError::Internal(format!(
                    "{node}: no output, the session is {:?}",
                    session.state()
                ))),
            };
            (node, result)
        })
        .collect()
}

fn queue<O: 'static>(
    in_flight: &mut VecDeque<(NodeId, NodeId, Envelope)>,
    from: &NodeId,
    session: &Session<O>,
    out: Vec<Envelope>,
) {
    for envelope in out {
        for to in session.recipients(&envelope) {
            in_flight.push_back((from.clone(), to.clone(), envelope.clone()));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const PRIMES: &[u8] = include_bytes!("../fixtures/primes.json");

    /// The three shares of a 2-of-3 ECDSA key of nodes `a`, `b` and `c`, in index order.
    pub(crate) fn ecdsa_shares(key_id: &str) -> Vec<crate::ecdsa::KeyShare> {
        use crate::Scheme;
        use crate::ecdsa::Ecdsa;
        use crate::keys::KeyId;
        use crate::party::Threshold;

        let nodes = ["a", "b", "c"].map(|n| NodeId::new(n).unwrap());
        let group = PartySet::new(nodes.clone()).unwrap();
        let aux = load_aux_info(include_bytes!("../fixtures/aux-info-3.json"), &group).unwrap();
        let threshold = Threshold::new(2, &group).unwrap();
        let sessions = nodes
            .iter()
            .zip(&aux)
            .map(|(node, aux)| {
                let key_id = KeyId::new(key_id).unwrap();
                let request = format!("create {key_id}");
                let session =
                    Ecdsa::keygen(request.as_bytes(), key_id, &group, node, threshold, aux);
                (node.clone(), session.unwrap())
            })
            .collect();
        run(sessions)
            .into_iter()
            .map(|(_, share)| share.unwrap())
            .collect()
    }

    #[test]
    fn fixtures_load_and_are_checked() {
        assert_eq!(load_primes(PRIMES).unwrap().len(), 5);
        assert!(matches!(
            load_primes(br#"{"version": 2, "primes": []}"#),
            Err(FixtureError::Version(2))
        ));
        assert!(matches!(
            load_primes(&vec![b' '; MAX_FIXTURE_LEN + 1]),
            Err(FixtureError::TooLarge { .. })
        ));
        let group = PartySet::new(["a", "b"].map(|n| NodeId::new(n).unwrap())).unwrap();
        let three = include_bytes!("../fixtures/aux-info-3.json");
        assert!(matches!(
            load_aux_info(three, &group),
            Err(FixtureError::Content(_))
        ));
    }
}
