//! The custodian's signing policy, enforced by every node that contributes a share: a
//! versioned JSON document approved by K of the manifest's N operators, the rules it
//! holds, and the spending they count. Pure and I/O-free: no clock (every function that
//! needs the time takes `now_secs`, Unix seconds), no storage (the node seals the
//! serializable [`PolicyState`] and [`Ledger`]), no network.
//!
//! - [`document`]: the policy body, [`Policy::parse`], its limits and validation.
//! - [`chain`]: chains, assets, address normalization and amounts, shared by the document
//!   and the facts of requests.
//! - [`envelope`]: [`SignedPolicy`], the body plus operator signatures under the policy's
//!   own signing context.
//! - [`accept`]: [`accept`], the only way to an [`AcceptedPolicy`]: a quorum of the
//!   manifest's operators and a version newer than any held.
//! - [`state`]: [`PolicyState`], the active and pending versions and when allowlisted
//!   addresses were first listed, all by the node's own clock.
//! - [`facts`]: [`Facts`], what a request would sign, as the node parsed it.
//! - [`ledger`]: [`Ledger`], the spends velocity limits count, shared across signing sets.
//! - [`engine`]: [`evaluate`], the decision: allow, pending approvals, or refused with a
//!   typed [`Refusal`].
//! - [`error`]: typed errors naming the rule, entry, field or operator at fault.

#![forbid(unsafe_code)]

pub mod accept;
mod bounded;
pub mod chain;
pub mod document;
pub mod engine;
pub mod envelope;
pub mod error;
pub mod facts;
pub mod ledger;
pub mod state;
#[cfg(test)]
mod testutil;

pub use accept::{AcceptedPolicy, accept};
pub use chain::{Asset, BtcNetwork, Chain, MAX_BTC_ADDRESS_LEN, normalize_address, parse_amount};
pub use document::{
    Action, AllowlistEntry, MAX_ALLOWLIST, MAX_DELAY_SECS, MAX_NAME_LEN, MAX_POLICY_LEN, MAX_RULES,
    MAX_WINDOW_SECS, Policy, Rule, Velocity, Weekday,
};
pub use engine::{Context, Decision, Refusal, evaluate};
pub use envelope::{MAX_POLICY_ENVELOPE_LEN, SIGNING_CONTEXT, SignedPolicy, hash_of, sign};
pub use error::{FactsError, LedgerError, Place, PolicyError, Reason};
pub use facts::{Facts, MAX_TRANSFERS, Transfer};
pub use ledger::{LEDGER_FORMAT, Ledger, MAX_SPENDS, RETENTION_SECS, Recorded, Spend};
pub use state::{Held, PolicyState, STATE_FORMAT};
