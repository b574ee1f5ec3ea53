//! The rule engine: one pure function from a policy and a request's context to a decision.
//! Every node that would contribute a share runs it on facts it parsed itself; it reads
//! no clock and does no I/O (the time is `Context::now_secs`).
//!
//! Semantics:
//! - Rules are tried in order; the first rule that MATCHES decides. No rule matches: the
//!   request is refused ([`Refusal::NoRule`]). So a raw digest is refused unless a
//!   `"chain": "digest"` rule takes it, and digest facts match no other rule.
//! - A rule matches when every condition it states holds:
//!   - `keys`: the request's key is listed;
//!   - `chain`: the request is on that chain;
//!   - `asset`: the request moves that asset;
//!   - `to`: the request has at least one transfer, and every transfer's destination is
//!     the address of one of the rule's allowlist entries that is usable, i.e. `now >=
//!     listed_since + allowlist_delay_secs` (the time the node first accepted a policy
//!     listing it, see [`crate::state`]);
//!   - `max_amount`: the request's amount (transfers plus fee) is at most this;
//!   - `velocity`: the spends in the ledger with `now - window_secs <= at_secs <= now`
//!     that this rule's `keys`, `chain`, `asset` and `to` conditions would cover (by
//!     address, without the allowlist delay), plus this request's amount, add up to at
//!     most `max_amount`. This request is not counted twice when it is in the ledger
//!     already. The ledger holds the spends of every signing set (see [`crate::ledger`]),
//!     so what counts is what the key spent, not what this node signed;
//!   - `max_fee` (Ethereum): the transaction pays at most this for gas (gas limit times
//!     the highest price it offers, in wei). An `allow` rule without it never matches an
//!     ERC-20 transfer, whose gas no amount of the rule counts; a native transfer's gas
//!     counts in its amount;
//!   - `hours_utc` `[from, to)`: the UTC hour of `now` is in it;
//!   - `days`: the UTC day of the week of `now` is listed.
//!
//!   A condition that fails only makes the rule not match: a request over a rule's
//!   velocity falls through to a later rule, for example one needing more approvals.
//! - The deciding rule:
//!   - `deny`: refused, naming the rule;
//!   - `allow`: every node in `signers_include` must be in the signing set, else refused
//!     naming the rule (the request does NOT fall through: a rule that names mandatory
//!     signers means this kind of request is only signed with them); then the approvals
//!     (distinct verified operators, the requester included) that count, those in
//!     `approvers` or all when it is absent, must reach `approvals`, else the request is
//!     pending; else allowed.

use crate::chain::{Asset, Chain};
use crate::document::{Action, Policy, Rule, Weekday};
use crate::facts::Facts;
use crate::ledger::{Ledger, Spend};
use ids::NodeId;
use std::collections::BTreeSet;
use std::fmt;

/// Everything besides the policy that a decision depends on.
pub struct Context<'a> {
    /// The node's clock, Unix seconds.
    pub now_secs: u64,
    pub facts: &'a Facts,
    /// Distinct operator ids whose approvals of this request verified, the requester's
    /// included.
    pub approvals: &'a BTreeSet<String>,
    /// The nodes of the signing set.
    pub signers: &'a [NodeId],
    pub ledger: &'a Ledger,
    /// When the node first accepted a policy listing an address (see
    /// [`crate::PolicyState::listed_since`]).
    pub listed_since: &'a dyn Fn(&Chain, &str) -> Option<u64>,
    /// The request's hash, as recorded in the ledger.
    pub request: [u8; 32],
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("now_secs", &self.now_secs)
            .field("facts", &self.facts)
            .field("approvals", &self.approvals)
            .field("signers", &self.signers)
            .field("request", &hex::encode(self.request))
            .finish_non_exhaustive()
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error("no rule allows this request")]
    NoRule,
    #[error("a deny rule matches this request")]
    Denied,
    #[error("the signing set lacks the mandatory signers {}", names(.missing))]
    SignersMissing { missing: Vec<NodeId> },
    #[error("the transfers and the fee add up to more than 2^128 - 1 base units")]
    AmountOverflow,
}

fn names(nodes: &[NodeId]) -> String {
    nodes
        .iter()
        .map(NodeId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the policy decides for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow {
        rule: String,
    },
    /// Allowed once `approvals_needed` operators that count have approved.
    Pending {
        rule: String,
        approvals: usize,
        approvals_needed: usize,
    },
    Refused {
        rule: Option<String>,
        reason: Refusal,
    },
}

/// Decides `ctx` under `policy`; see the module documentation.
pub fn evaluate(policy: &Policy, ctx: &Context<'_>) -> Decision {
    let Ok(amount) = ctx.facts.amount() else {
        return Decision::Refused {
            rule: None,
            reason: Refusal::AmountOverflow,
        };
    };
    let Some(rule) = policy
        .rules()
        .iter()
        .find(|rule| matches(policy, rule, ctx, amount))
    else {
        return Decision::Refused {
            rule: None,
            reason: Refusal::NoRule,
        };
    };
    let name = rule.name().to_owned();
    if rule.action() == Action::Deny {
        return Decision::Refused {
            rule: Some(name),
            reason: Refusal::Denied,
        };
    }
    let missing: Vec<NodeId> = rule
        .signers_include()
        .iter()
        .filter(|node| !ctx.signers.contains(node))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Decision::Refused {
            rule: Some(name),
            reason: Refusal::SignersMissing { missing },
        };
    }
    let approvals = ctx
        .approvals
        .iter()
        .filter(|op| {
            rule.approvers()
                .is_none_or(|list| list.iter().any(|a| a.as_str() == op.as_str()))
        })
        .count();
    if approvals < rule.approvals() {
        return Decision::Pending {
            rule: name,
            approvals,
            approvals_needed: rule.approvals(),
        };
    }
    Decision::Allow { rule: name }
}

fn matches(policy: &Policy, rule: &Rule, ctx: &Context<'_>, amount: u128) -> bool {
    let facts = ctx.facts;
    if !covers(rule, facts.key_id(), facts.chain(), facts.asset()) {
        return false;
    }
    if let Chain::Ethereum { .. } = facts.chain() {
        match rule.max_fee() {
            Some(max) if facts.network_fee() > max => return false,
            Some(_) => {}
            // Gas is paid in ether whatever a transfer moves: a token transfer's gas is
            // bounded by the rule that allows it, or no rule allows it.
            None if rule.action() == Action::Allow && matches!(facts.asset(), Asset::Erc20(_)) => {
                return false;
            }
            None => {}
        }
    }
    if let Some(names) = rule.to() {
        let usable = |address: &str| {
            names.iter().any(|name| {
                policy.entry(name).is_some_and(|entry| {
                    entry.address() == address
                        && (ctx.listed_since)(entry.chain(), entry.address()).is_some_and(|since| {
                            ctx.now_secs >= since.saturating_add(policy.allowlist_delay_secs())
                        })
                })
            })
        };
        if facts.transfers().is_empty() || !facts.transfers().iter().all(|t| usable(t.to())) {
            return false;
        }
    }
    if rule.max_amount().is_some_and(|max| amount > max) {
        return false;
    }
    if let Some(velocity) = rule.velocity() {
        let from = ctx.now_secs.saturating_sub(velocity.window_secs);
        let counted = |s: &Spend| {
            s.request != ctx.request
                && covers(rule, &s.key_id, &s.chain, &s.asset)
                && destinations_covered(policy, rule, &s.to)
        };
        let within = ctx
            .ledger
            .window_sum(counted, from, ctx.now_secs)
            .ok()
            .and_then(|sum| sum.checked_add(amount))
            .is_some_and(|total| total <= velocity.max_amount);
        if !within {
            return false;
        }
    }
    if let Some((from, to)) = rule.hours_utc() {
        let hour = (ctx.now_secs % 86_400) / 3_600;
        if hour < u64::from(from) || hour >= u64::from(to) {
            return false;
        }
    }
    if let Some(days) = rule.days()
        && !days.contains(&Weekday::of(ctx.now_secs))
    {
        return false;
    }
    true
}

/// The rule's `keys`, `chain` and `asset` conditions.
fn covers(rule: &Rule, key: &ids::KeyId, chain: &Chain, asset: &Asset) -> bool {
    rule.keys().is_none_or(|keys| keys.contains(key))
        && rule.chain() == chain
        && rule.asset().is_none_or(|a| a == asset)
}

/// The rule's `to` condition on a recorded spend's destinations, by address only.
fn destinations_covered(policy: &Policy, rule: &Rule, to: &[String]) -> bool {
    let Some(names) = rule.to() else {
        return true;
    };
    !to.is_empty()
        && to.iter().all(|address| {
            names
                .iter()
                .any(|name| policy.entry(name).is_some_and(|e| e.address() == address))
        })
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
