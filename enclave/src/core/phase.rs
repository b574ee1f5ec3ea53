//! The node's lifecycle, and what it accepts in each part of it.
//!
//! Every change goes through [`Phase::advance`], which consults an explicit table; a change
//! the table does not allow is an error, and the node stops rather than carry on in a state
//! nobody designed. Next to it, [`Phase::admits`] is the table of which request (an
//! operator's, a peer's) each phase serves: the runtime asks it before handling anything.
//!
//! Data lives in the phase that owns it: the trust a manifest installs (`T`: the accepted
//! manifest and the channel checks made from it) exists from the moment a manifest is
//! installed, and the open sealed store (`S`) only once the node runs. A handler that
//! needs the store gets it from [`Phase::store`], which is `Some` exactly when the node
//! runs; there is no second copy beside the phase to keep in step with it. The unit
//! types are the defaults, for code (and tests) that look at the lifecycle only.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase<T = (), S = ()> {
    /// Generating the TLS identity, reaching the NSM and the parent.
    Boot,
    /// No manifest yet: waiting for operators to submit one.
    WaitingForManifest,
    /// Manifest accepted (`trust`, provisionally: the sealed copy confirms it); waiting
    /// for peers to release this node's data key (or for every peer to confirm that none
    /// holds one, on a first start).
    WaitingForProvisioning { reason: String, trust: T },
    /// Data key available and the manifest confirmed against the sealed state: serving
    /// peers and operators.
    Running { trust: T, store: S },
    /// Unrecoverable: the node refuses all work and must be restarted. It keeps the trust
    /// it had, so that it can still say, attested, which manifest it ran and why it
    /// stopped.
    Failed { reason: String, trust: Option<T> },
}

/// What a request is, as far as the lifecycle is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Request {
    Operator(OperatorKind),
    Peer(PeerKind),
}

/// The kinds of request operators and tools send to the client port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OperatorKind {
    SubmitManifest,
    Status,
    /// An operator-signed key command (create a key, sign).
    Command,
    Attest,
    /// One key's record.
    Key,
    /// A page of the audit log, which exists once the node runs.
    AuditExport,
}

/// The kinds of message a peer sends on an attested channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PeerKind {
    Ping,
    EscrowPut,
    ReleaseRequest,
    SessionStart,
    SessionDone,
    Protocol,
    SessionAbort,
    /// An answer (`Pong`, `Released`, `Refused`...) sent where a request belongs.
    Answer,
}

impl OperatorKind {
    pub const ALL: [OperatorKind; 6] = [
        OperatorKind::SubmitManifest,
        OperatorKind::Status,
        OperatorKind::Command,
        OperatorKind::Attest,
        OperatorKind::Key,
        OperatorKind::AuditExport,
    ];

    pub fn of(request: &crate::operator_api::OperatorRequest) -> Self {
        use crate::operator_api::OperatorRequest as R;
        match request {
            R::SubmitManifest(_) => OperatorKind::SubmitManifest,
            R::Status => OperatorKind::Status,
            // A policy is only taken while running: it is sealed at once.
            R::Command(_) | R::SubmitPolicy(_) => OperatorKind::Command,
            R::Attest { .. } => OperatorKind::Attest,
            R::Key { .. } => OperatorKind::Key,
            R::AuditExport { .. } => OperatorKind::AuditExport,
        }
    }
}

impl PeerKind {
    pub const ALL: [PeerKind; 8] = [
        PeerKind::Ping,
        PeerKind::EscrowPut,
        PeerKind::ReleaseRequest,
        PeerKind::SessionStart,
        PeerKind::SessionDone,
        PeerKind::Protocol,
        PeerKind::SessionAbort,
        PeerKind::Answer,
    ];

    pub fn of(message: &crate::provisioning::PeerMessage) -> Self {
        use crate::provisioning::PeerMessage as M;
        match message {
            M::Ping => PeerKind::Ping,
            M::EscrowPut { .. } => PeerKind::EscrowPut,
            M::ReleaseRequest { .. } => PeerKind::ReleaseRequest,
            M::SessionStart { .. } => PeerKind::SessionStart,
            M::SessionDone { .. } => PeerKind::SessionDone,
            M::Protocol { .. } => PeerKind::Protocol,
            M::SessionAbort { .. } => PeerKind::SessionAbort,
            M::EscrowStored
            | M::Released { .. }
            | M::NotHeld
            | M::Unavailable { .. }
            | M::Refused { .. }
            | M::Pong => PeerKind::Answer,
        }
    }
}

/// What a phase does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Handle it.
    Serve,
    /// Not in this phase, but in a later one: the sender may ask again (a peer is told
    /// the node is unavailable or not running yet; one-way messages are dropped).
    NotYet,
    /// The node has failed and refuses all work.
    Failed,
    /// Never a request, in any phase.
    Never,
}

impl<T, S> Phase<T, S> {
    /// Short name for status endpoints and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Boot => "boot",
            Phase::WaitingForManifest => "waiting_for_manifest",
            Phase::WaitingForProvisioning { .. } => "waiting_for_provisioning",
            Phase::Running { .. } => "running",
            Phase::Failed { .. } => "failed",
        }
    }

    /// Why the node is waiting or failed, when it is.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Phase::WaitingForProvisioning { reason, .. } | Phase::Failed { reason, .. } => {
                Some(reason)
            }
            _ => None,
        }
    }

    /// The trust installed from the manifest, once there is one.
    pub fn trust(&self) -> Option<&T> {
        match self {
            Phase::WaitingForProvisioning { trust, .. } | Phase::Running { trust, .. } => {
                Some(trust)
            }
            Phase::Failed { trust, .. } => trust.as_ref(),
            Phase::Boot | Phase::WaitingForManifest => None,
        }
    }

    /// The open sealed store: only while running.
    pub fn store(&self) -> Option<&S> {
        match self {
            Phase::Running { store, .. } => Some(store),
            _ => None,
        }
    }

    pub fn is_failed(&self) -> bool {
        matches!(self, Phase::Failed { .. })
    }

    /// The table of requests each phase serves. Peers reach a node only over a channel
    /// checked against an installed manifest, so before one there is nothing a peer can
    /// ask; escrows are stored, and sessions run, only once the node runs, under a
    /// manifest its sealed state confirmed; a release request is answered while waiting
    /// too (a node that holds an escrow can say so without its own key, see
    /// `crate::runtime`); status, attestation and key records are always served, so that
    /// a node can say what it is doing and why; the audit log is exported only while the
    /// node runs, the only phase in which it is restored and checked.
    pub fn admits(&self, request: Request) -> Admit {
        use Admit::*;
        use OperatorKind as O;
        use PeerKind as P;
        let request = match request {
            Request::Operator(O::Status | O::Attest | O::Key) => return Serve,
            Request::Peer(P::Answer) => return Never,
            request => request,
        };
        match self {
            Phase::Failed { .. } => Failed,
            Phase::Boot => NotYet,
            Phase::WaitingForManifest => match request {
                Request::Operator(O::SubmitManifest) => Serve,
                _ => NotYet,
            },
            Phase::WaitingForProvisioning { .. } => match request {
                Request::Operator(O::SubmitManifest)
                | Request::Peer(P::Ping | P::ReleaseRequest) => Serve,
                _ => NotYet,
            },
            Phase::Running { .. } => Serve,
        }
    }

    /// Whether operators may submit a manifest in this phase: not while booting (the
    /// stored manifest is not read yet, and a submission would race it) and not once
    /// failed (the node refuses all work).
    pub fn accepts_manifests(&self) -> bool {
        self.admits(Request::Operator(OperatorKind::SubmitManifest)) == Admit::Serve
    }

    /// The allowed transitions. Everything else is refused.
    fn allows(&self, next: &Phase<T, S>) -> bool {
        use Phase::*;
        matches!(
            (self, next),
            (Boot, WaitingForManifest)
                | (Boot, WaitingForProvisioning { .. })
                | (WaitingForManifest, WaitingForProvisioning { .. })
                // A newer reason (another round of asking peers) is still waiting.
                | (WaitingForProvisioning { .. }, WaitingForProvisioning { .. })
                | (WaitingForProvisioning { .. }, Running { .. })
                // Any phase but Failed itself may fail.
                | (Boot | WaitingForManifest | WaitingForProvisioning { .. } | Running { .. }, Failed { .. })
        )
    }

    /// Moves to `next` if the table allows it.
    pub fn advance(&mut self, next: Phase<T, S>) -> Result<(), PhaseError> {
        if !self.allows(&next) {
            return Err(PhaseError {
                from: self.name(),
                to: next.name(),
            });
        }
        *self = next;
        Ok(())
    }

    /// Replaces the installed trust (an operator submitted a manifest, or the sealed copy
    /// overrode the parent's), staying in the same phase. Only a phase that holds trust
    /// and still works may take a new one.
    pub fn replace_trust(&mut self, new: T) -> Result<T, PhaseError> {
        match self {
            Phase::WaitingForProvisioning { trust, .. } | Phase::Running { trust, .. } => {
                Ok(std::mem::replace(trust, new))
            }
            other => Err(PhaseError {
                from: other.name(),
                to: other.name(),
            }),
        }
    }
}

impl<T: Clone, S> Phase<T, S> {
    /// Still waiting for provisioning, now for `reason`, under the trust installed.
    pub fn waiting(&self, reason: String) -> Result<Phase<T, S>, PhaseError> {
        match self.trust() {
            Some(trust) if !self.is_failed() => Ok(Phase::WaitingForProvisioning {
                reason,
                trust: trust.clone(),
            }),
            _ => Err(PhaseError {
                from: self.name(),
                to: "waiting_for_provisioning",
            }),
        }
    }

    /// The failed phase this one would move to, keeping its trust.
    pub fn failed(&self, reason: String) -> Phase<T, S> {
        Phase::Failed {
            reason,
            trust: self.trust().cloned(),
        }
    }
}

impl<T, S> fmt::Display for Phase<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason() {
            Some(reason) => write!(f, "{} ({reason})", self.name()),
            None => f.write_str(self.name()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("phase change from {from} to {to} is not allowed")]
pub struct PhaseError {
    pub from: &'static str,
    pub to: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting() -> Phase {
        Phase::WaitingForProvisioning {
            reason: "no peer reachable".into(),
            trust: (),
        }
    }

    fn running() -> Phase {
        Phase::Running {
            trust: (),
            store: (),
        }
    }

    fn failed() -> Phase {
        Phase::Failed {
            reason: "x".into(),
            trust: None,
        }
    }

    fn all() -> [Phase; 5] {
        [
            Phase::Boot,
            Phase::WaitingForManifest,
            waiting(),
            running(),
            failed(),
        ]
    }

    #[test]
    fn the_normal_paths_are_allowed() {
        let mut p = Phase::Boot;
        p.advance(Phase::WaitingForManifest).unwrap();
        p.advance(waiting()).unwrap();
        p.advance(waiting()).unwrap();
        p.advance(running()).unwrap();
        assert_eq!(p, running());
        let mut restart = Phase::Boot;
        restart.advance(waiting()).unwrap();
        assert_eq!(restart.reason(), Some("no peer reachable"));
        assert_eq!(
            restart.to_string(),
            "waiting_for_provisioning (no peer reachable)"
        );
    }

    #[test]
    fn manifests_are_accepted_only_where_they_make_sense() {
        let accepting: Vec<&str> = all()
            .iter()
            .filter(|p| p.accepts_manifests())
            .map(Phase::name)
            .collect();
        assert_eq!(
            accepting,
            [
                "waiting_for_manifest",
                "waiting_for_provisioning",
                "running"
            ]
        );
    }

    #[test]
    fn everything_else_is_refused() {
        let allowed: &[(&str, &str)] = &[
            ("boot", "waiting_for_manifest"),
            ("boot", "waiting_for_provisioning"),
            ("waiting_for_manifest", "waiting_for_provisioning"),
            ("waiting_for_provisioning", "waiting_for_provisioning"),
            ("waiting_for_provisioning", "running"),
            ("boot", "failed"),
            ("waiting_for_manifest", "failed"),
            ("waiting_for_provisioning", "failed"),
            ("running", "failed"),
        ];
        for from in &all() {
            for to in &all() {
                let mut p = from.clone();
                let ok = p.advance(to.clone()).is_ok();
                let expected = allowed.contains(&(from.name(), to.name()));
                assert_eq!(ok, expected, "{} -> {}", from.name(), to.name());
                if !ok {
                    assert_eq!(&p, from, "a refused change leaves the phase as it was");
                }
            }
        }
    }

    /// The whole acceptance table, every phase against every request: what is not listed
    /// as served is refused, and why (not yet, failed, never a request) is listed too.
    #[test]
    fn each_phase_serves_exactly_what_its_table_says() {
        use Admit::*;
        use OperatorKind as O;
        use PeerKind as P;
        let requests: Vec<Request> = O::ALL
            .iter()
            .map(|k| Request::Operator(*k))
            .chain(P::ALL.iter().map(|k| Request::Peer(*k)))
            .collect();
        let served: &[(&str, Request)] = &[
            ("boot", Request::Operator(O::Status)),
            ("boot", Request::Operator(O::Attest)),
            ("boot", Request::Operator(O::Key)),
            ("waiting_for_manifest", Request::Operator(O::Status)),
            ("waiting_for_manifest", Request::Operator(O::Attest)),
            ("waiting_for_manifest", Request::Operator(O::Key)),
            ("waiting_for_manifest", Request::Operator(O::SubmitManifest)),
            ("waiting_for_provisioning", Request::Operator(O::Status)),
            ("waiting_for_provisioning", Request::Operator(O::Attest)),
            ("waiting_for_provisioning", Request::Operator(O::Key)),
            (
                "waiting_for_provisioning",
                Request::Operator(O::SubmitManifest),
            ),
            ("waiting_for_provisioning", Request::Peer(P::Ping)),
            ("waiting_for_provisioning", Request::Peer(P::ReleaseRequest)),
            ("running", Request::Operator(O::Status)),
            ("running", Request::Operator(O::Attest)),
            ("running", Request::Operator(O::Key)),
            ("running", Request::Operator(O::SubmitManifest)),
            ("running", Request::Operator(O::Command)),
            ("running", Request::Operator(O::AuditExport)),
            ("running", Request::Peer(P::Ping)),
            ("running", Request::Peer(P::EscrowPut)),
            ("running", Request::Peer(P::ReleaseRequest)),
            ("running", Request::Peer(P::SessionStart)),
            ("running", Request::Peer(P::SessionDone)),
            ("running", Request::Peer(P::Protocol)),
            ("running", Request::Peer(P::SessionAbort)),
            ("failed", Request::Operator(O::Status)),
            ("failed", Request::Operator(O::Attest)),
            ("failed", Request::Operator(O::Key)),
        ];
        for phase in &all() {
            for request in &requests {
                let admit = phase.admits(*request);
                let expected = if served.contains(&(phase.name(), *request)) {
                    Serve
                } else if *request == Request::Peer(P::Answer) {
                    Never
                } else if phase.is_failed() {
                    Failed
                } else {
                    NotYet
                };
                assert_eq!(admit, expected, "{} / {request:?}", phase.name());
            }
        }
        // Every listed pair names a phase and a request that exist.
        for (name, request) in served {
            assert!(all().iter().any(|p| p.name() == *name), "{name}");
            assert!(requests.contains(request), "{request:?}");
        }
    }

    #[test]
    fn data_lives_in_the_phase_that_owns_it() {
        let mut p: Phase<u8, &str> = Phase::Boot;
        assert_eq!(p.trust(), None);
        // Booting or waiting for a manifest holds no trust to replace or wait under.
        assert!(p.replace_trust(1).is_err());
        assert!(p.waiting("x".into()).is_err());
        p.advance(Phase::WaitingForProvisioning {
            reason: "asking".into(),
            trust: 1,
        })
        .unwrap();
        assert_eq!((p.trust(), p.store()), (Some(&1), None));
        assert_eq!(p.replace_trust(2), Ok(1));
        let next = p.waiting("asking again".into()).unwrap();
        p.advance(next).unwrap();
        assert_eq!((p.trust(), p.reason()), (Some(&2), Some("asking again")));
        p.advance(Phase::Running {
            trust: 2,
            store: "store",
        })
        .unwrap();
        assert_eq!((p.trust(), p.store()), (Some(&2), Some(&"store")));
        let back = p.waiting("x".into()).unwrap();
        assert!(p.advance(back).is_err(), "a running node never waits again");
        let failed = p.failed("stopped".into());
        p.advance(failed).unwrap();
        // A failed node keeps saying which manifest it ran, but holds no store and takes
        // no new trust.
        assert_eq!((p.trust(), p.store()), (Some(&2), None));
        assert!(p.replace_trust(3).is_err());
        assert_eq!(p.trust(), Some(&2));
    }
}
