//! Messages that must be refused without disturbing the session, and tampered messages that
//! must abort it with the culprit named.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::VecDeque;

use common::*;
use mpc::ecdsa::{Ecdsa, KeyShare, ToSign};
use mpc::envelope::{MAX_ENVELOPE_LEN, MAX_PAYLOAD_LEN};
use mpc::{
    Envelope, EnvelopeError, NodeId, Protocol, Recipient, Refusal, Scheme, Session, SessionError,
    SessionId, SessionState, sim,
};

/// Keygen sessions of three parties, started, with their first messages in flight.
struct Net {
    sessions: Vec<(NodeId, Session<KeyShare>)>,
    in_flight: VecDeque<(NodeId, NodeId, Envelope)>,
}

impl Net {
    fn new(key_id: &str) -> Self {
        Net {
            sessions: keygen_sessions(&group(3), 2, key_id),
            in_flight: VecDeque::new(),
        }
    }

    fn start(key_id: &str) -> Self {
        let mut net = Net::new(key_id);
        net.start_all();
        net
    }

    fn start_one(&mut self, k: usize) {
        let out = self.sessions[k].1.start().unwrap();
        self.queue(k, out);
    }

    fn start_all(&mut self) {
        for k in 0..self.sessions.len() {
            if self.sessions[k].1.state() == SessionState::Created {
                self.start_one(k);
            }
        }
    }

    fn queue(&mut self, k: usize, out: Vec<Envelope>) {
        let (from, session) = &self.sessions[k];
        for envelope in out {
            for to in session.recipients(&envelope) {
                self.in_flight
                    .push_back((from.clone(), to.clone(), envelope.clone()));
            }
        }
    }

    fn session(&mut self, node: &NodeId) -> &mut Session<KeyShare> {
        &mut self.sessions.iter_mut().find(|(n, _)| n == node).unwrap().1
    }

    fn deliver(&mut self, from: &NodeId, to: &NodeId, envelope: &Envelope) {
        let k = self.sessions.iter().position(|(n, _)| n == to).unwrap();
        let out = self.sessions[k].1.handle(from, envelope).unwrap();
        self.queue(k, out);
    }

    fn drain(&mut self) {
        while let Some((from, to, envelope)) = self.in_flight.pop_front() {
            self.deliver(&from, &to, &envelope);
        }
    }

    fn finish(mut self) -> Vec<KeyShare> {
        self.drain();
        self.sessions
            .into_iter()
            .map(|(_, mut s)| s.take_output().unwrap())
            .collect()
    }
}

fn refusal(result: Result<Vec<Envelope>, SessionError>) -> Refusal {
    match result {
        Err(SessionError::Refused(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn with(
    envelope: &Envelope,
    change: impl FnOnce(&mut (SessionId, u16, u16, Recipient, Vec<u8>)),
) -> Envelope {
    let mut parts = (
        envelope.session(),
        envelope.round(),
        envelope.sender(),
        envelope.recipient(),
        envelope.payload().to_vec(),
    );
    change(&mut parts);
    Envelope::new(parts.0, parts.1, parts.2, parts.3, parts.4).unwrap()
}

#[test]
fn refused_messages_leave_the_session_intact() {
    let mut net = Net::start("key-refusals");
    let nodes = nodes(3);
    let (alice, bob, carol) = (&nodes[0], &nodes[1], &nodes[2]);
    let position = net
        .in_flight
        .iter()
        .position(|(from, to, _)| from == alice && to == bob)
        .unwrap();
    let (_, _, first) = net.in_flight.remove(position).unwrap();
    let bob_session = net.session(bob);

    let other = SessionId::derive(Protocol::Keygen, b"another request");
    assert!(matches!(
        refusal(bob_session.handle(alice, &with(&first, |e| e.0 = other))),
        Refusal::WrongSession { .. }
    ));
    let aux_id = SessionId::derive(Protocol::AuxInfo, b"create key key-refusals");
    assert!(matches!(
        refusal(bob_session.handle(alice, &with(&first, |e| e.0 = aux_id))),
        Refusal::WrongSession { .. }
    ));
    let mallory = NodeId::new("mallory").unwrap();
    assert!(matches!(
        refusal(bob_session.handle(&mallory, &first)),
        Refusal::NotAParticipant { .. }
    ));
    assert!(matches!(
        refusal(bob_session.handle(carol, &first)),
        Refusal::SenderMismatch { claimed: 0, .. }
    ));
    assert!(matches!(
        refusal(bob_session.handle(bob, &with(&first, |e| e.2 = 1))),
        Refusal::SenderMismatch { claimed: 1, .. }
    ));
    assert!(matches!(
        refusal(bob_session.handle(alice, &with(&first, |e| e.3 = Recipient::Party(2)))),
        Refusal::NotForMe { recipient: 2, .. }
    ));
    assert!(matches!(
        refusal(bob_session.handle(alice, &with(&first, |e| e.3 = Recipient::Party(1)))),
        Refusal::WrongDelivery { .. }
    ));
    assert!(matches!(
        refusal(bob_session.handle(alice, &with(&first, |e| e.1 = 99))),
        Refusal::UnknownRound { round: 99, .. }
    ));
    let later = first.round() + 1;
    assert!(matches!(
        refusal(bob_session.handle(alice, &with(&first, |e| e.1 = later))),
        Refusal::OutOfOrder { expected, .. } if expected == first.round()
    ));
    assert!(matches!(
        refusal(bob_session.handle(alice, &with(&first, |e| e.4 = vec![0xff, 0x00]))),
        Refusal::Malformed { .. }
    ));
    let mut trailing = first.payload().to_vec();
    trailing.push(0);
    assert!(matches!(
        refusal(bob_session.handle(alice, &with(&first, |e| e.4 = trailing))),
        Refusal::Malformed { .. }
    ));
    let at_limit = with(&first, |e| e.4 = vec![0x41; MAX_PAYLOAD_LEN]);
    assert_eq!(at_limit.encode().len(), MAX_ENVELOPE_LEN);
    let decoded = Envelope::decode(&at_limit.encode()).unwrap();
    assert!(matches!(
        refusal(bob_session.handle(alice, &decoded)),
        Refusal::Malformed { .. }
    ));
    let mut over = at_limit.encode();
    over.push(0);
    assert_eq!(
        Envelope::decode(&over),
        Err(EnvelopeError::Oversized {
            len: MAX_ENVELOPE_LEN + 1
        })
    );

    // The genuine message is still accepted, exactly once.
    net.deliver(alice, bob, &first);
    assert!(matches!(
        refusal(net.session(bob).handle(alice, &first)),
        Refusal::Duplicate { .. }
    ));

    let shares = net.finish();
    let public_key = shares[0].public_key().unwrap();
    assert!(shares.iter().all(|s| s.public_key().unwrap() == public_key));
}

#[test]
fn messages_before_start_and_after_the_end_are_refused() {
    let mut net = Net::new("key-lifecycle");
    let nodes = nodes(3);
    net.start_one(0);
    let (from, to, early) = net.in_flight.front().cloned().unwrap();
    assert!(matches!(
        refusal(net.session(&to).handle(&from, &early)),
        Refusal::NotStarted
    ));
    net.start_all();
    net.drain();
    for node in &nodes {
        let session = net.session(node);
        assert_eq!(session.state(), SessionState::Finished);
        assert!(session.awaiting().is_empty());
        assert!(matches!(
            session.handle(&from, &early),
            Err(SessionError::Closed)
        ));
    }
    let shares = net.finish();
    assert_eq!(shares.len(), 3);
}

#[test]
fn a_tampered_keygen_share_aborts_naming_its_sender() {
    use cggmp24::keygen::msg::threshold::Msg;
    type KeygenMsg = Msg<
        cggmp24::supported_curves::Secp256k1,
        cggmp24::security_level::SecurityLevel128,
        sha2::Sha256,
    >;

    let nodes = nodes(3);
    let (cheater, victim) = (nodes[2].clone(), nodes[0].clone());
    let results = sim::run_with(
        keygen_sessions(&group(3), 2, "key-tampered"),
        &mut |from, to, envelope| {
            if *from != cheater || *to != victim || envelope.recipient() == Recipient::Broadcast {
                return Some(envelope);
            }
            let mut msg: KeygenMsg = ciborium::from_reader(envelope.payload()).unwrap();
            if let Msg::Round2Uni(share) = &mut msg {
                share.sigma += generic_ec::Scalar::one();
            }
            let mut payload = Vec::new();
            ciborium::into_writer(&msg, &mut payload).unwrap();
            Some(
                Envelope::new(
                    envelope.session(),
                    envelope.round(),
                    envelope.sender(),
                    envelope.recipient(),
                    payload,
                )
                .unwrap(),
            )
        },
    );
    let (_, victim_result) = results.iter().find(|(n, _)| *n == victim).unwrap();
    match victim_result {
        Err(SessionError::Aborted { culprits, .. }) => assert_eq!(culprits, &vec![cheater]),
        other => panic!("expected an abort blaming {cheater}, got {other:?}"),
    }
}

#[test]
fn a_tampered_signing_proof_aborts_naming_its_sender() {
    use cggmp24::signing::msg::Msg;
    type SignMsg = Msg<cggmp24::supported_curves::Secp256k1, sha2::Sha256>;

    let shares = keygen(3, 2, "key-bad-proof");
    let nodes = nodes(3);
    let (cheater, victim) = (nodes[1].clone(), nodes[2].clone());
    let to_sign = ToSign::Keccak256Message(b"tampered".to_vec());
    let sessions = sign_sessions(&shares, &[1, 2], &to_sign, None, "sign tampered");
    let results = sim::run_with(sessions, &mut |from, to, envelope| {
        if *from != cheater || *to != victim {
            return Some(envelope);
        }
        let mut msg: SignMsg = ciborium::from_reader(envelope.payload()).unwrap();
        if let Msg::Round1b(proofs) = &mut msg {
            std::mem::swap(&mut proofs.psi0, &mut proofs.psi1);
        }
        let mut payload = Vec::new();
        ciborium::into_writer(&msg, &mut payload).unwrap();
        Some(
            Envelope::new(
                envelope.session(),
                envelope.round(),
                envelope.sender(),
                envelope.recipient(),
                payload,
            )
            .unwrap(),
        )
    });
    let (_, victim_result) = results.iter().find(|(n, _)| *n == victim).unwrap();
    match victim_result {
        Err(SessionError::Aborted { culprits, .. }) => assert_eq!(culprits, &vec![cheater.clone()]),
        other => panic!("expected an abort blaming {cheater}, got {other:?}"),
    }
}

#[test]
fn a_tampered_partial_signature_aborts_naming_its_sender() {
    let shares = keygen(3, 2, "key-bad-partial");
    let signers = [0usize, 1];
    let nodes = nodes(3);
    let (cheater, victim) = (nodes[1].clone(), nodes[0].clone());
    let to_sign = ToSign::Keccak256Message(b"pay".to_vec());
    let sessions = presign(&shares, &signers, None, "refill")
        .into_iter()
        .map(|(node, presignature)| {
            let session =
                Ecdsa::sign_presigned(b"pay", presignature, &node, &to_sign, None).unwrap();
            (node, session)
        })
        .collect();
    let results = sim::run_with(sessions, &mut |from, to, envelope| {
        if *from != cheater || *to != victim {
            return Some(envelope);
        }
        let mut partial: cggmp24::PartialSignature<cggmp24::supported_curves::Secp256k1> =
            ciborium::from_reader(envelope.payload()).unwrap();
        partial.sigma += generic_ec::Scalar::one();
        let mut payload = Vec::new();
        ciborium::into_writer(&partial, &mut payload).unwrap();
        Some(
            Envelope::new(
                envelope.session(),
                envelope.round(),
                envelope.sender(),
                envelope.recipient(),
                payload,
            )
            .unwrap(),
        )
    });
    let (_, victim_result) = results.iter().find(|(n, _)| *n == victim).unwrap();
    match victim_result {
        Err(SessionError::Aborted { culprits, .. }) => assert_eq!(culprits, &vec![cheater.clone()]),
        other => panic!("expected an abort blaming {cheater}, got {other:?}"),
    }
    let (_, honest_result) = results.iter().find(|(n, _)| *n == cheater).unwrap();
    assert!(
        honest_result.is_ok(),
        "the cheater's own view is unaffected"
    );
}

#[test]
fn a_silent_party_is_named_when_the_round_times_out() {
    let mut net = Net::start("key-silent");
    let nodes = nodes(3);
    let carol = &nodes[2];
    while let Some((from, to, envelope)) = net.in_flight.pop_front() {
        if from != *carol {
            net.deliver(&from, &to, &envelope);
        }
    }
    for node in &nodes[..2] {
        let session = net.session(node);
        assert_eq!(session.awaiting(), vec![carol]);
        match session.time_out() {
            SessionError::TimedOut { waiting_for } => assert_eq!(waiting_for, vec![carol.clone()]),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert_eq!(session.state(), SessionState::Failed);
        assert!(session.awaiting().is_empty());
    }
}
