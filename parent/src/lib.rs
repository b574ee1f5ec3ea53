//! `parent`: the host-side process beside a node. It relays the node's vsock traffic
//! and stores its sealed state, and is trusted with neither: it sees only ciphertext.
//!
//! - [`relay`]: inbound TCP connections spliced byte for byte into the enclave.
//! - [`outbound`]: the enclave's `CONNECT <node-id>` requests, allowed only towards
//!   nodes the manifest lists.
//! - [`blobs`]: the blob store for the node's sealed state (atomic writes).
//! - [`admin`] and [`http`]: `/healthz` and `/metrics`.
//! - [`sources`]: who may take the enclave's slots: a reserved budget for the manifest's
//!   nodes on the peer listener, a small shared pool and a cap per source for others.
//! - [`server`]: binds everything, handles signals and graceful shutdown.
//!
//! The decisions (routing a CONNECT header, parsing HTTP, rendering metrics, naming
//! blob files) are plain functions; the async modules only move bytes around them.
#![forbid(unsafe_code)]

pub mod admin;
pub mod blobs;
pub mod cli;
pub mod http;
pub mod metrics;
pub mod outbound;
pub mod relay;
pub mod server;
pub mod sources;
