//! The requests a node holds for its operators: each one submitted to it, with the
//! approvals gathered so far and where it stands (waiting for approvals, signed, refused,
//! failed). The node that holds a request is only its messenger: whoever takes part in
//! what it asks checks its approvals again. The book is sealed at the parent after every
//! change, so a restart loses no approval.
//!
//! Limits: at most [`MAX_HELD`] requests, at most [`MAX_PER_REQUESTER`] of them by one
//! requester (one stolen operator key cannot crowd the others out); a request is forgotten
//! [`KEEP_AFTER_EXPIRY_MS`] after it expires, its outcome with it.

use protocol::authority::{Approval, Authority, Authorized};
use protocol::operator_api::{RequestAnswer, RequestStatus, RequestView};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most requests held at once.
pub const MAX_HELD: usize = 64;
/// Most requests of one requester held at once.
pub const MAX_PER_REQUESTER: usize = 16;
/// How long a request's outcome stays visible after the request expired.
pub const KEEP_AFTER_EXPIRY_MS: u64 = 3600 * 1000;
const VERSION: u8 = 1;

/// One request and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Held {
    pub authority: Authority,
    pub key_id: String,
    pub requester: String,
    /// `sign eth-tx`, `create-key`...
    pub action: String,
    pub expires_ms: u64,
    pub received_ms: u64,
    /// The latest answer about it.
    pub answer: RequestAnswer,
    /// Being carried out now. Not sealed: after a restart, the next approval (an
    /// operator may approve again) carries it out.
    #[serde(skip)]
    pub running: bool,
}

impl Held {
    /// Whether it may still be carried out: waiting for approvals, not expired.
    pub fn open(&self, now_ms: u64) -> bool {
        self.answer.status == RequestStatus::Pending && !self.running && now_ms <= self.expires_ms
    }

    pub fn view(&self, now_ms: u64) -> RequestView {
        let mut answer = self.answer.clone();
        if answer.status == RequestStatus::Pending && now_ms > self.expires_ms {
            answer.status = RequestStatus::Expired;
        }
        RequestView {
            answer,
            key_id: self.key_id.clone(),
            requester: self.requester.clone(),
            action: self.action.clone(),
            approvers: self
                .authority
                .approvals()
                .iter()
                .map(|a| a.operator.clone())
                .collect(),
            expires_ms: self.expires_ms,
        }
    }
}

/// Why the book refused a request or an approval.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BookError {
    #[error("this node holds {MAX_HELD} requests; wait until some expire")]
    Full,
    #[error("{requester} has {MAX_PER_REQUESTER} requests held here; wait until some expire")]
    RequesterFull { requester: String },
    #[error("no request {0}")]
    Unknown(String),
    #[error("request {id} is {status:?}: it takes no more approvals")]
    Closed { id: String, status: RequestStatus },
    #[error("request {id} is being carried out")]
    Running { id: String },
    #[error("request {id} expired")]
    Expired { id: String },
    #[error("{0}")]
    Approval(#[from] protocol::authority::AuthorityError),
    #[error("stored requests: {0}")]
    Stored(String),
}

/// Every request this node holds, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestBook {
    held: BTreeMap<[u8; 32], Held>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    version: u8,
    held: Vec<Held>,
}

impl RequestBook {
    /// The request with this id.
    pub fn get(&self, id: &[u8; 32]) -> Option<&Held> {
        self.held.get(id)
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Forgets requests whose outcome has been visible long enough.
    pub fn prune(&mut self, now_ms: u64) {
        self.held
            .retain(|_, h| now_ms <= h.expires_ms.saturating_add(KEEP_AFTER_EXPIRY_MS));
    }

    /// Takes in a request whose authority this node checked (`authorized`). A request
    /// already held keeps what it has: the same bytes always have the same id.
    pub fn submit(
        &mut self,
        authorized: &Authorized,
        authority: Authority,
        action: &str,
        now_ms: u64,
    ) -> Result<&Held, BookError> {
        self.prune(now_ms);
        let id = *authorized.id();
        if !self.held.contains_key(&id) {
            let request = authorized.request();
            if self.held.len() >= MAX_HELD {
                return Err(BookError::Full);
            }
            let mine = self
                .held
                .values()
                .filter(|h| h.requester == request.requester)
                .count();
            if mine >= MAX_PER_REQUESTER {
                return Err(BookError::RequesterFull {
                    requester: request.requester.clone(),
                });
            }
            self.held.insert(
                id,
                Held {
                    authority,
                    key_id: request.key_id.clone(),
                    requester: request.requester.clone(),
                    action: action.to_owned(),
                    expires_ms: request.expires_ms,
                    received_ms: now_ms,
                    answer: RequestAnswer::new(&id, RequestStatus::Pending),
                    running: false,
                },
            );
        }
        self.held
            .get(&id)
            .ok_or(BookError::Unknown(hex::encode(id)))
    }

    /// Adds `approval` to the open request `id` and returns its authority, to be checked
    /// again whole by the caller (and by everyone who acts on it).
    pub fn approve(
        &mut self,
        id: &[u8; 32],
        approval: Approval,
        now_ms: u64,
    ) -> Result<Authority, BookError> {
        let shown = hex::encode(id);
        let held = self
            .held
            .get_mut(id)
            .ok_or_else(|| BookError::Unknown(shown.clone()))?;
        if now_ms > held.expires_ms {
            return Err(BookError::Expired { id: shown });
        }
        if held.running {
            return Err(BookError::Running { id: shown });
        }
        if held.answer.status != RequestStatus::Pending {
            return Err(BookError::Closed {
                id: shown,
                status: held.answer.status,
            });
        }
        let mut authority = held.authority.clone();
        authority.add(approval)?;
        Ok(authority)
    }

    /// Records what the request now carries and where it stands; it is no longer
    /// being carried out.
    pub fn update(&mut self, id: &[u8; 32], authority: Authority, answer: RequestAnswer) {
        if let Some(held) = self.held.get_mut(id) {
            held.authority = authority;
            held.answer = answer;
            held.running = false;
        }
    }

    /// Marks the open request `id` as being carried out, so that a second approval
    /// arriving meanwhile does not start it twice. `false` if it is not open.
    pub fn start(&mut self, id: &[u8; 32], now_ms: u64) -> bool {
        match self.held.get_mut(id) {
            Some(held) if held.open(now_ms) => {
                held.running = true;
                true
            }
            _ => false,
        }
    }

    /// The requests held, newest first, at most `max`.
    pub fn list(&self, now_ms: u64, max: usize) -> Vec<RequestView> {
        let mut held: Vec<&Held> = self.held.values().collect();
        held.sort_by_key(|h| std::cmp::Reverse(h.received_ms));
        held.into_iter().take(max).map(|h| h.view(now_ms)).collect()
    }

    /// The sealed form.
    pub fn encode(&self) -> Result<Vec<u8>, BookError> {
        serde_json::to_vec(&Stored {
            version: VERSION,
            held: self.held.values().cloned().collect(),
        })
        .map_err(|e| BookError::Stored(e.to_string()))
    }

    /// Reads the sealed form back; ids are recomputed from each request's bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, BookError> {
        let stored: Stored =
            serde_json::from_slice(bytes).map_err(|e| BookError::Stored(e.to_string()))?;
        if stored.version != VERSION {
            return Err(BookError::Stored(format!(
                "version {} is not supported",
                stored.version
            )));
        }
        if stored.held.len() > MAX_HELD {
            return Err(BookError::Stored(format!(
                "{} requests; at most {MAX_HELD}",
                stored.held.len()
            )));
        }
        Ok(RequestBook {
            held: stored
                .held
                .into_iter()
                .map(|h| (h.authority.id(), h))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests;
