//! `parent`: the host-side process beside a node. It relays the node's vsock traffic
//! and stores its sealed state, and is trusted with neither: it sees only ciphertext.
//! This crate has no functionality yet; see the README's roadmap.
#![forbid(unsafe_code)]
