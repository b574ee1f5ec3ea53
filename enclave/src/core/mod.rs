//! The node's decisions, without I/O. Each piece takes the current time (`now`, passed in,
//! never read inside) and what happened, and says what to do: send a message, store a
//! blob, answer, start a session, wait, stop. The runtime (`crate::runtime`) does it, and
//! nothing here can be reached except through it, so each rule is tested here directly,
//! deterministically, with no socket, thread or clock.
//!
//! - [`phase`]: the node's lifecycle, the transitions it allows, and which request each
//!   phase serves; the data each phase owns lives in it.
//! - [`provisioning`]: getting the data key back (or creating it) at boot, confirming the
//!   manifest against the sealed copy, and escrowing the key with every peer.
//! - [`admission`]: whether a participant admits a session (session caps per coordinator
//!   and in total, the key cap, who may abort), with [`aux_admission`], the safe-prime
//!   budget of auxiliary-info sessions.
//! - [`coordination`]: a coordinator's session (who was asked, outcomes, deadline, abort,
//!   blame) and the answer the operator gets from it.
//! - [`authorization`]: whether this node contributes to what a request asks: the
//!   operators' approvals, the transaction parsed here, this node's policy and ledger.
//! - [`requests`]: the requests a node holds for its operators while approvals arrive.

pub mod admission;
pub mod authorization;
pub mod aux_admission;
pub mod coordination;
pub mod phase;
pub mod provisioning;
pub mod requests;
