//! The node's lifecycle. Every change goes through [`Phase::advance`], which consults an
//! explicit table; a change the table does not allow is an error, and the node stops
//! rather than carry on in a state nobody designed.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Generating the TLS identity, reaching the NSM and the parent.
    Boot,
    /// No manifest yet: waiting for operators to submit one.
    WaitingForManifest,
    /// Manifest accepted; waiting for peers to release this node's data key (or for
    /// every peer to confirm that none holds one, on a first start).
    WaitingForProvisioning { reason: String },
    /// Data key available: serving peers and operators.
    Running,
    /// Unrecoverable: the node refuses all work and must be restarted.
    Failed { reason: String },
}

impl Phase {
    /// Short name for status endpoints and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Boot => "boot",
            Phase::WaitingForManifest => "waiting_for_manifest",
            Phase::WaitingForProvisioning { .. } => "waiting_for_provisioning",
            Phase::Running => "running",
            Phase::Failed { .. } => "failed",
        }
    }

    /// Why the node is waiting or failed, when it is.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Phase::WaitingForProvisioning { reason } | Phase::Failed { reason } => Some(reason),
            _ => None,
        }
    }

    /// Whether operators may submit a manifest in this phase: not while booting (the
    /// stored manifest is not read yet, and a submission would race it) and not once
    /// failed (the node refuses all work).
    pub fn accepts_manifests(&self) -> bool {
        matches!(
            self,
            Phase::WaitingForManifest | Phase::WaitingForProvisioning { .. } | Phase::Running
        )
    }

    /// The allowed transitions. Everything else is refused.
    fn allows(&self, next: &Phase) -> bool {
        use Phase::*;
        matches!(
            (self, next),
            (Boot, WaitingForManifest)
                | (Boot, WaitingForProvisioning { .. })
                | (WaitingForManifest, WaitingForProvisioning { .. })
                // A newer reason (another round of asking peers) is still waiting.
                | (WaitingForProvisioning { .. }, WaitingForProvisioning { .. })
                | (WaitingForProvisioning { .. }, Running)
                // Any phase but Failed itself may fail.
                | (Boot | WaitingForManifest | WaitingForProvisioning { .. } | Running, Failed { .. })
        )
    }

    /// Moves to `next` if the table allows it.
    pub fn advance(&mut self, next: Phase) -> Result<(), PhaseError> {
        if !self.allows(&next) {
            return Err(PhaseError {
                from: self.name(),
                to: next.name(),
            });
        }
        *self = next;
        Ok(())
    }
}

impl fmt::Display for Phase {
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
        }
    }

    fn failed() -> Phase {
        Phase::Failed { reason: "x".into() }
    }

    #[test]
    fn the_normal_paths_are_allowed() {
        let mut p = Phase::Boot;
        p.advance(Phase::WaitingForManifest).unwrap();
        p.advance(waiting()).unwrap();
        p.advance(waiting()).unwrap();
        p.advance(Phase::Running).unwrap();
        assert_eq!(p, Phase::Running);
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
        let accepting: Vec<&str> = [
            Phase::Boot,
            Phase::WaitingForManifest,
            waiting(),
            Phase::Running,
            failed(),
        ]
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
        let all = [
            Phase::Boot,
            Phase::WaitingForManifest,
            waiting(),
            Phase::Running,
            failed(),
        ];
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
        for from in &all {
            for to in &all {
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
}
