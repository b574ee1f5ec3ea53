//! Drives one [`Session`] to its end: messages in from the router's queue, messages out
//! through `post`, a deadline on every round.
//!
//! Runs on a thread that may block (a session call can take seconds of big-integer
//! arithmetic, and the library's state machine cannot move between threads). A message the
//! session refuses (wrong session, not a participant, duplicate, out of order) is logged and
//! dropped; the session carries on. The session ends when it has its output, when the
//! library aborts, when no message is accepted for `round_timeout` (refused messages do not
//! count, so a peer cannot keep a session alive with junk), when it has run for `limit`, or
//! when its queue closes (the coordinator aborted it).

use super::router::Inbound;
use mpc::{Envelope, NodeId, Session, SessionError};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Why a session produced no output.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("session aborted by its coordinator")]
    Cancelled,
}

/// Runs `session` until it ends. `post` sends an envelope to one participant.
pub fn drive<O: 'static>(
    session: &mut Session<O>,
    inbox: &Receiver<Inbound>,
    round_timeout: Duration,
    limit: Duration,
    mut post: impl FnMut(&NodeId, &Envelope),
) -> Result<O, RunError> {
    let started = Instant::now();
    let mut progress = started;
    let mut send = |session: &Session<O>, envelopes: Vec<Envelope>| {
        for envelope in &envelopes {
            for to in session.recipients(envelope) {
                post(to, envelope);
            }
        }
    };
    let first = session.start()?;
    send(session, first);
    loop {
        if let Some(output) = session.take_output() {
            return Ok(output);
        }
        let now = Instant::now();
        let wait = round_timeout
            .saturating_sub(now.duration_since(progress))
            .min(limit.saturating_sub(now.duration_since(started)));
        if wait.is_zero() {
            return Err(session.time_out().into());
        }
        let (from, envelope) = match inbox.recv_timeout(wait) {
            Ok(message) => message,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => {
                let _ = session.time_out();
                return Err(RunError::Cancelled);
            }
        };
        match session.handle(&from, &envelope) {
            Ok(out) => {
                progress = Instant::now();
                send(session, out);
            }
            Err(e) if e.is_refusal() => {
                tracing::warn!(session = %session.id(), from = %from, error = %e, "protocol message refused");
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
#[cfg(feature = "sim")]
mod tests {
    use super::*;
    use crate::threshold::router::Router;
    use mpc::ecdsa::Ecdsa;
    use mpc::{PartySet, Recipient, Scheme, SessionId};
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    fn node(id: &str) -> NodeId {
        NodeId::new(id).unwrap()
    }

    fn aux_fixture(group: &PartySet) -> Vec<mpc::ecdsa::AuxInfo> {
        let json = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../mpc/fixtures/aux-info-3.json"
        ))
        .unwrap();
        mpc::sim::load_aux_info(&json, group).unwrap()
    }

    /// Three parties on three threads, wired through one router each: keygen finishes, and
    /// a stray message for the session is refused without disturbing it.
    #[test]
    fn parties_on_threads_finish_keygen_through_routers() {
        let group = PartySet::new(["a", "b", "c"].map(node)).unwrap();
        let mut aux: Vec<Option<mpc::ecdsa::AuxInfo>> =
            aux_fixture(&group).into_iter().map(Some).collect();
        let request = b"keygen request".to_vec();
        let session = SessionId::derive(mpc::Protocol::Keygen, &request);
        let routers: BTreeMap<NodeId, Arc<Mutex<Router>>> = group
            .nodes()
            .iter()
            .map(|n| (n.clone(), Arc::new(Mutex::new(Router::new()))))
            .collect();
        // A message from someone outside the session is held, then refused by the session.
        let stray = Envelope::new(session, 1, 0, Recipient::Broadcast, vec![1, 2, 3]).unwrap();
        routers[&node("b")]
            .lock()
            .unwrap()
            .route(node("z"), stray, Instant::now());
        let mut threads = Vec::new();
        for (i, me) in group.nodes().iter().enumerate() {
            let inbox = routers[me]
                .lock()
                .unwrap()
                .register(session, Instant::now())
                .unwrap();
            let routers = routers.clone();
            let me = me.clone();
            let group = group.clone();
            let aux = aux[i].take().unwrap();
            let request = request.clone();
            threads.push(std::thread::spawn(move || {
                let key_id = mpc::KeyId::new("k").unwrap();
                let threshold = mpc::Threshold::new(2, &group).unwrap();
                let mut s = Ecdsa::keygen(&request, key_id, &group, &me, threshold, &aux).unwrap();
                drive(
                    &mut s,
                    &inbox,
                    Duration::from_secs(60),
                    Duration::from_secs(600),
                    |to, envelope| {
                        routers[to].lock().unwrap().route(
                            me.clone(),
                            envelope.clone(),
                            Instant::now(),
                        );
                    },
                )
            }));
        }
        let keys: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().unwrap().unwrap().public_key().unwrap())
            .collect();
        assert!(keys.windows(2).all(|w| w[0] == w[1]));
    }

    /// Party "a"'s 2-of-3 keygen session for `request`.
    fn keygen_at_a(
        request: &[u8],
        group: &PartySet,
        aux: &mpc::ecdsa::AuxInfo,
    ) -> Session<mpc::ecdsa::KeyShare> {
        let threshold = mpc::Threshold::new(2, group).unwrap();
        let key = mpc::KeyId::new("k").unwrap();
        Ecdsa::keygen(request, key, group, &node("a"), threshold, aux).unwrap()
    }

    #[test]
    fn a_silent_party_times_the_session_out_and_is_named() {
        let group = PartySet::new(["a", "b", "c"].map(node)).unwrap();
        let aux = aux_fixture(&group);
        let mut router = Router::new();
        let request = b"r".to_vec();
        let session = SessionId::derive(mpc::Protocol::Keygen, &request);
        let inbox = router.register(session, Instant::now()).unwrap();
        let mut s = keygen_at_a(&request, &group, &aux[0]);
        let error = drive(
            &mut s,
            &inbox,
            Duration::from_millis(50),
            Duration::from_secs(600),
            |_, _| {},
        )
        .unwrap_err();
        match error {
            RunError::Session(SessionError::TimedOut { waiting_for }) => {
                assert_eq!(waiting_for, vec![node("b"), node("c")]);
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        // Refused messages do not keep a session alive.
        let request = b"r1".to_vec();
        let session = SessionId::derive(mpc::Protocol::Keygen, &request);
        let inbox = router.register(session, Instant::now()).unwrap();
        let router = Arc::new(Mutex::new(router));
        let junk = {
            let router = router.clone();
            std::thread::spawn(move || {
                for _ in 0..40 {
                    let stray =
                        Envelope::new(session, 1, 0, Recipient::Broadcast, vec![0]).unwrap();
                    router
                        .lock()
                        .unwrap()
                        .route(node("z"), stray, Instant::now());
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        let mut s = keygen_at_a(&request, &group, &aux[0]);
        let started = Instant::now();
        let error = drive(
            &mut s,
            &inbox,
            Duration::from_millis(100),
            Duration::from_secs(600),
            |_, _| {},
        )
        .unwrap_err();
        assert!(matches!(
            error,
            RunError::Session(SessionError::TimedOut { .. })
        ));
        assert!(
            started.elapsed() < Duration::from_millis(350),
            "{:?}",
            started.elapsed()
        );
        junk.join().unwrap();
        let mut router = Arc::try_unwrap(router).unwrap().into_inner().unwrap();

        // Closing the queue cancels a session.
        let request = b"r2".to_vec();
        let session = SessionId::derive(mpc::Protocol::Keygen, &request);
        let inbox = router.register(session, Instant::now()).unwrap();
        router.end(session);
        let mut s = keygen_at_a(&request, &group, &aux[0]);
        assert!(matches!(
            drive(
                &mut s,
                &inbox,
                Duration::from_secs(60),
                Duration::from_secs(600),
                |_, _| {}
            ),
            Err(RunError::Cancelled)
        ));
    }
}
