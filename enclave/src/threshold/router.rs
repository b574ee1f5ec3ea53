//! Routes protocol messages from peers to the sessions running at this node.
//!
//! A message may arrive before its session has started here (a faster participant's first
//! round can overtake the coordinator's request); such messages wait, within limits, for a
//! short time, and are refused when that passes. A session id can be registered once: a
//! request replayed after its session ended cannot start it again. Nothing here checks
//! protocol content: that is the session's job, which refuses what does not belong to it.

use mpc::{Envelope, NodeId, SessionId};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

/// Messages queued for one running session before it drains them.
pub const SESSION_QUEUE: usize = 256;
/// Messages held for sessions that have not started here yet, in total.
pub const MAX_EARLY_MESSAGES: usize = 512;
/// Bytes held for sessions that have not started here yet, in total.
pub const MAX_EARLY_BYTES: usize = 32 * 1024 * 1024;
/// Of those, what one sender may have held: one peer cannot crowd out the others.
pub const MAX_EARLY_MESSAGES_PER_SENDER: usize = 128;
pub const MAX_EARLY_BYTES_PER_SENDER: usize = 8 * 1024 * 1024;
/// How long a message for a session that has not started may wait.
pub const EARLY_TTL: Duration = Duration::from_secs(30);
/// Ended sessions remembered, so that their ids are never reused.
pub const MAX_ENDED: usize = 16 * 1024;

/// A message from an authenticated peer.
pub type Inbound = (NodeId, Envelope);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routed {
    /// Queued for the running session.
    Delivered,
    /// Held until the session starts here.
    Held,
    Refused(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    #[error("session {0} is already running here")]
    Running(SessionId),
    #[error("session {0} already ran here; a request cannot be replayed")]
    Ended(SessionId),
}

struct Early {
    at: Instant,
    from: NodeId,
    envelope: Envelope,
}

#[derive(Default)]
pub struct Router {
    running: BTreeMap<SessionId, SyncSender<Inbound>>,
    early: VecDeque<Early>,
    early_bytes: usize,
    ended: BTreeSet<SessionId>,
    ended_order: VecDeque<SessionId>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("running", &self.running.len())
            .field("early", &self.early.len())
            .finish_non_exhaustive()
    }
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sessions running here.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Starts routing messages for `session`; returns its queue, with any messages that
    /// arrived early already in it.
    pub fn register(
        &mut self,
        session: SessionId,
        now: Instant,
    ) -> Result<Receiver<Inbound>, RegisterError> {
        if self.running.contains_key(&session) {
            return Err(RegisterError::Running(session));
        }
        if self.ended.contains(&session) {
            return Err(RegisterError::Ended(session));
        }
        self.expire(now);
        let (sender, receiver) = sync_channel(SESSION_QUEUE);
        let (mine, others): (VecDeque<Early>, VecDeque<Early>) = self
            .early
            .drain(..)
            .partition(|e| e.envelope.session() == session);
        self.early = others;
        for early in mine {
            self.early_bytes = self
                .early_bytes
                .saturating_sub(early.envelope.encoded_len());
            // The queue is as large as the early limit for one session is useful; anything
            // beyond it the session would refuse as out of order anyway.
            let _ = sender.try_send((early.from, early.envelope));
        }
        self.running.insert(session, sender);
        Ok(receiver)
    }

    /// Stops routing for `session` (it ended, or was aborted): its queue closes, and its id
    /// can never be registered again.
    pub fn end(&mut self, session: SessionId) {
        self.running.remove(&session);
        if self.ended.insert(session) {
            self.ended_order.push_back(session);
        }
        while self.ended_order.len() > MAX_ENDED {
            if let Some(old) = self.ended_order.pop_front() {
                self.ended.remove(&old);
            }
        }
    }

    pub fn route(&mut self, from: NodeId, envelope: Envelope, now: Instant) -> Routed {
        let session = envelope.session();
        if let Some(queue) = self.running.get(&session) {
            return match queue.try_send((from, envelope)) {
                Ok(()) => Routed::Delivered,
                Err(TrySendError::Full(_)) => {
                    Routed::Refused(format!("session {session} has too many queued messages"))
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.end(session);
                    Routed::Refused(format!("session {session} has ended"))
                }
            };
        }
        if self.ended.contains(&session) {
            return Routed::Refused(format!("session {session} has ended"));
        }
        self.expire(now);
        let len = envelope.encoded_len();
        let (held, held_bytes) = self
            .early
            .iter()
            .filter(|e| e.from == from)
            .fold((0usize, 0usize), |(n, b), e| {
                (n + 1, b + e.envelope.encoded_len())
            });
        if held >= MAX_EARLY_MESSAGES_PER_SENDER || held_bytes + len > MAX_EARLY_BYTES_PER_SENDER {
            return Routed::Refused(format!(
                "unknown session {session}, and {from} already has {held} messages held"
            ));
        }
        if self.early.len() >= MAX_EARLY_MESSAGES || self.early_bytes + len > MAX_EARLY_BYTES {
            return Routed::Refused(format!(
                "unknown session {session}, and no room to hold its message"
            ));
        }
        self.early_bytes += len;
        self.early.push_back(Early {
            at: now,
            from,
            envelope,
        });
        Routed::Held
    }

    /// Drops held messages older than [`EARLY_TTL`]; returns how many, with the sessions
    /// they named, for the log.
    pub fn expire(&mut self, now: Instant) -> Vec<(NodeId, SessionId)> {
        let mut dropped = Vec::new();
        while let Some(first) = self.early.front() {
            if now.saturating_duration_since(first.at) < EARLY_TTL {
                break;
            }
            if let Some(old) = self.early.pop_front() {
                self.early_bytes = self.early_bytes.saturating_sub(old.envelope.encoded_len());
                dropped.push((old.from, old.envelope.session()));
            }
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpc::Recipient;

    fn node(id: &str) -> NodeId {
        NodeId::new(id).unwrap()
    }

    fn envelope(session: u8, round: u16) -> Envelope {
        Envelope::new(
            SessionId::from_bytes([session; 32]),
            round,
            0,
            Recipient::Broadcast,
            vec![session; 10],
        )
        .unwrap()
    }

    #[test]
    fn routes_to_running_sessions_and_holds_early_messages_in_order() {
        let mut router = Router::new();
        let now = Instant::now();
        let s1 = SessionId::from_bytes([1; 32]);
        assert_eq!(router.route(node("b"), envelope(1, 1), now), Routed::Held);
        assert_eq!(router.route(node("c"), envelope(1, 2), now), Routed::Held);
        assert_eq!(router.route(node("c"), envelope(2, 1), now), Routed::Held);
        let queue = router.register(s1, now).unwrap();
        assert_eq!(queue.try_recv().unwrap().1.round(), 1);
        assert_eq!(queue.try_recv().unwrap().1.round(), 2);
        assert!(queue.try_recv().is_err());
        assert_eq!(
            router.route(node("b"), envelope(1, 3), now),
            Routed::Delivered
        );
        assert_eq!(queue.try_recv().unwrap().0, node("b"));
        // Session 2's message is still held.
        let s2 = router
            .register(SessionId::from_bytes([2; 32]), now)
            .unwrap();
        assert_eq!(s2.try_recv().unwrap().0, node("c"));
    }

    #[test]
    fn a_session_id_runs_once() {
        let mut router = Router::new();
        let now = Instant::now();
        let s = SessionId::from_bytes([1; 32]);
        let queue = router.register(s, now).unwrap();
        assert_eq!(
            router.register(s, now).unwrap_err(),
            RegisterError::Running(s)
        );
        router.end(s);
        assert!(
            queue.recv().is_err(),
            "the queue closes when the session ends"
        );
        assert_eq!(
            router.register(s, now).unwrap_err(),
            RegisterError::Ended(s)
        );
        assert!(matches!(
            router.route(node("b"), envelope(1, 1), now),
            Routed::Refused(_)
        ));
    }

    #[test]
    fn early_messages_expire_and_are_bounded() {
        let mut router = Router::new();
        let now = Instant::now();
        // One sender is held to its share; others still get theirs.
        for _ in 0..MAX_EARLY_MESSAGES_PER_SENDER {
            assert_eq!(router.route(node("b"), envelope(9, 1), now), Routed::Held);
        }
        assert!(matches!(
            router.route(node("b"), envelope(9, 1), now),
            Routed::Refused(_)
        ));
        assert_eq!(router.route(node("c"), envelope(9, 1), now), Routed::Held);
        // All senders together are held to the total.
        let senders = MAX_EARLY_MESSAGES / MAX_EARLY_MESSAGES_PER_SENDER;
        for s in 0..senders {
            let sender = node(&format!("n{s}"));
            while router.route(sender.clone(), envelope(9, 1), now) == Routed::Held {}
        }
        assert_eq!(router.early.len(), MAX_EARLY_MESSAGES);
        let later = now + EARLY_TTL;
        let dropped = router.expire(later);
        assert_eq!(dropped.len(), MAX_EARLY_MESSAGES);
        assert_eq!(router.route(node("b"), envelope(9, 1), later), Routed::Held);
        // A session that starts after its messages expired does not see them.
        let queue = router
            .register(SessionId::from_bytes([9; 32]), later + EARLY_TTL)
            .unwrap();
        assert!(queue.try_recv().is_err());
    }

    #[test]
    fn a_full_session_queue_refuses_instead_of_growing() {
        let mut router = Router::new();
        let now = Instant::now();
        let _queue = router
            .register(SessionId::from_bytes([1; 32]), now)
            .unwrap();
        for _ in 0..SESSION_QUEUE {
            assert_eq!(
                router.route(node("b"), envelope(1, 1), now),
                Routed::Delivered
            );
        }
        assert!(matches!(
            router.route(node("b"), envelope(1, 1), now),
            Routed::Refused(_)
        ));
    }

    #[test]
    fn ended_sessions_are_remembered_up_to_a_limit() {
        let mut router = Router::new();
        for i in 0..=MAX_ENDED {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&(i as u64).to_be_bytes());
            router.end(SessionId::from_bytes(id));
        }
        assert_eq!(router.ended.len(), MAX_ENDED);
    }
}
