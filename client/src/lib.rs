//! `custody`: the operator's client. It will talk to nodes over attested TLS, sign
//! requests with an operator key and run the simulated cluster. This crate has no
//! functionality yet; see the README's roadmap.
#![forbid(unsafe_code)]
