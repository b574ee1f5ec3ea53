//! The policies a node holds and when each takes effect: what the node seals.
//!
//! Every time here is the node's own clock when it accepted something, never a date
//! written in a document. A date in the policy would be chosen by whoever wrote it, and
//! the delays exist to give operators time to notice and react to a policy or an address
//! they did not mean to approve (a stolen quorum, a compromised tool): a document that
//! said "effective since last week" would take effect at once and defeat them. Measured
//! from the moment each node accepted the change, the delay holds however the document
//! was written, and a parent that withholds a policy only delays it further.
//!
//! - The first policy a node accepts takes effect at once (there is nothing to protect
//!   yet, and nothing is signed until there is a policy).
//! - A later version takes effect at `accepted_at + max(active.effective_after_secs,
//!   new.effective_after_secs)`: the stricter of the two delays, because the policy in
//!   force is what protects against a hostile replacement, and a replacement must not be
//!   able to shorten the notice period that protects against it.
//! - At most the active and the newest pending version are held: a newer pending one
//!   replaces an older pending one, and its delay is measured from its own acceptance.
//! - `listed_since`: for each allowlist entry (chain, normalized address) held by the
//!   active or the pending version, when the node first accepted a policy listing it. An
//!   entry no held version lists any more is forgotten, so listing it again starts over.
//!
//! Stored as a versioned serde structure: `{"version": 1, "active": {"envelope":
//! "<base64>", "accepted_at", "effective_at"}, "pending": .., "listed_since": [{"chain",
//! "address", "since"}]}`; reading it back parses every envelope again and checks the
//! limits.

use crate::accept::AcceptedPolicy;
use crate::bounded::Bounded;
use crate::chain::{Chain, normalize_address};
use crate::document::{MAX_ALLOWLIST, Policy};
use crate::envelope::SignedPolicy;
use crate::error::PolicyError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// Version of the stored format.
pub const STATE_FORMAT: u32 = 1;
/// Most `listed_since` entries: those of two policies.
const MAX_LISTED: usize = 2 * MAX_ALLOWLIST;

/// One policy version the node holds.
#[derive(Debug, Clone)]
pub struct Held {
    signed: SignedPolicy,
    accepted_at: u64,
    effective_at: u64,
}

impl Held {
    pub fn policy(&self) -> &Policy {
        self.signed.policy()
    }

    pub fn signed(&self) -> &SignedPolicy {
        &self.signed
    }

    /// When the node accepted it (its own clock).
    pub fn accepted_at(&self) -> u64 {
        self.accepted_at
    }

    /// When it takes (or took) effect.
    pub fn effective_at(&self) -> u64 {
        self.effective_at
    }
}

/// The active and pending policies and when allowlisted addresses were first listed.
#[derive(Debug, Clone, Default)]
pub struct PolicyState {
    active: Option<Held>,
    pending: Option<Held>,
    listed_since: BTreeMap<(Chain, String), u64>,
}

impl PolicyState {
    pub fn new() -> Self {
        PolicyState::default()
    }

    /// Holds `accepted`, accepted at `now_secs`; returns when it takes effect. Refuses a
    /// version not newer than every version held (as [`crate::accept`] does given
    /// [`PolicyState::newest_version`]).
    pub fn accept(&mut self, accepted: AcceptedPolicy, now_secs: u64) -> Result<u64, PolicyError> {
        if let Some(current) = self.newest_version()
            && accepted.version() <= current
        {
            return Err(PolicyError::VersionNotNewer {
                current,
                candidate: accepted.version(),
            });
        }
        self.settle(now_secs);
        let signed = accepted.into_signed();
        let effective_at = match &self.active {
            None => now_secs,
            Some(active) => {
                let delay = active
                    .policy()
                    .effective_after_secs()
                    .max(signed.policy().effective_after_secs());
                now_secs.saturating_add(delay)
            }
        };
        for entry in signed.policy().allowlist() {
            self.listed_since
                .entry((*entry.chain(), entry.address().to_owned()))
                .or_insert(now_secs);
        }
        let held = Held {
            signed,
            accepted_at: now_secs,
            effective_at,
        };
        if self.active.is_none() {
            self.active = Some(held);
        } else {
            self.pending = Some(held);
        }
        self.forget_unlisted();
        Ok(effective_at)
    }

    /// Makes a pending version whose time has come the active one, and forgets the
    /// addresses no held version lists any more. [`PolicyState::active`] gives the same
    /// answer before and after; settling only keeps the stored state small.
    pub fn settle(&mut self, now_secs: u64) {
        if self
            .pending
            .as_ref()
            .is_some_and(|p| now_secs >= p.effective_at)
        {
            self.active = self.pending.take();
            self.forget_unlisted();
        }
    }

    fn forget_unlisted(&mut self) {
        let held: Vec<&Policy> = [&self.active, &self.pending]
            .into_iter()
            .flatten()
            .map(Held::policy)
            .collect();
        self.listed_since.retain(|(chain, address), _| {
            held.iter().any(|p| {
                p.allowlist()
                    .iter()
                    .any(|e| e.chain() == chain && e.address() == address)
            })
        });
    }

    /// The version in force at `now_secs`, if any.
    pub fn active_held(&self, now_secs: u64) -> Option<&Held> {
        match &self.pending {
            Some(p) if now_secs >= p.effective_at => Some(p),
            _ => self.active.as_ref(),
        }
    }

    /// The policy in force at `now_secs`, if any.
    pub fn active(&self, now_secs: u64) -> Option<&Policy> {
        self.active_held(now_secs).map(Held::policy)
    }

    /// The version of the policy in force at `now_secs`.
    pub fn active_version(&self, now_secs: u64) -> Option<u64> {
        self.active(now_secs).map(Policy::version)
    }

    /// The version accepted but not yet in force at `now_secs`.
    pub fn pending(&self, now_secs: u64) -> Option<&Held> {
        self.pending.as_ref().filter(|p| now_secs < p.effective_at)
    }

    /// The newest version held, active or pending: what a candidate must exceed.
    pub fn newest_version(&self) -> Option<u64> {
        [&self.pending, &self.active]
            .into_iter()
            .flatten()
            .map(|h| h.policy().version())
            .max()
    }

    /// When the node first accepted a policy listing `address` on `chain` (normalized),
    /// if a held version lists it.
    pub fn listed_since(&self, chain: &Chain, address: &str) -> Option<u64> {
        self.listed_since
            .get(&(*chain, address.to_owned()))
            .copied()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeldWire {
    envelope: String,
    accepted_at: u64,
    effective_at: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListedWire {
    chain: Chain,
    address: String,
    since: u64,
}

#[derive(Serialize)]
struct StateOut {
    version: u32,
    active: Option<HeldWire>,
    pending: Option<HeldWire>,
    listed_since: Vec<ListedWire>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateIn {
    version: u32,
    active: Option<HeldWire>,
    pending: Option<HeldWire>,
    listed_since: Bounded<ListedWire, MAX_LISTED>,
}

fn held_out(held: &Option<Held>) -> Option<HeldWire> {
    held.as_ref().map(|h| HeldWire {
        envelope: STANDARD.encode(h.signed.envelope_bytes()),
        accepted_at: h.accepted_at,
        effective_at: h.effective_at,
    })
}

fn held_in(wire: Option<HeldWire>) -> Result<Option<Held>, PolicyError> {
    let Some(wire) = wire else {
        return Ok(None);
    };
    let envelope = STANDARD
        .decode(&wire.envelope)
        .map_err(|e| PolicyError::Base64(e.to_string()))?;
    Ok(Some(Held {
        signed: SignedPolicy::parse(&envelope)?,
        accepted_at: wire.accepted_at,
        effective_at: wire.effective_at,
    }))
}

impl Serialize for PolicyState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StateOut {
            version: STATE_FORMAT,
            active: held_out(&self.active),
            pending: held_out(&self.pending),
            listed_since: self
                .listed_since
                .iter()
                .map(|((chain, address), since)| ListedWire {
                    chain: *chain,
                    address: address.clone(),
                    since: *since,
                })
                .collect(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PolicyState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let wire = StateIn::deserialize(deserializer)?;
        state_from(wire).map_err(D::Error::custom)
    }
}

fn state_from(wire: StateIn) -> Result<PolicyState, PolicyError> {
    let refuse = |what: String| PolicyError::State(what);
    if wire.version != STATE_FORMAT {
        return Err(refuse(format!(
            "version {} (this node reads {STATE_FORMAT})",
            wire.version
        )));
    }
    let active = held_in(wire.active)?;
    let pending = held_in(wire.pending)?;
    match (&active, &pending) {
        (None, Some(_)) => return Err(refuse("a pending policy without an active one".into())),
        (Some(a), Some(p)) if p.policy().version() <= a.policy().version() => {
            return Err(refuse(
                "the pending policy is not newer than the active one".into(),
            ));
        }
        _ => {}
    }
    let mut listed_since = BTreeMap::new();
    let listed = wire.listed_since.within("listed addresses")?;
    for entry in listed {
        if normalize_address(&entry.chain, &entry.address).as_deref() != Ok(&entry.address) {
            return Err(refuse(format!(
                "listed address {:?} on {} is not normalized",
                entry.address, entry.chain
            )));
        }
        listed_since.insert((entry.chain, entry.address), entry.since);
    }
    let mut state = PolicyState {
        active,
        pending,
        listed_since,
    };
    state.forget_unlisted();
    Ok(state)
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
