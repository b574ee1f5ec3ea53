//! How the node and its parent reach each other and the world.
//!
//! - [`socket`]: connect to / listen on a `(cid, port)` address, over AF_VSOCK in
//!   production (feature `vsock`) or over Unix-domain sockets in simulator mode, one
//!   socket file per `cid:port` under a directory. Both processes use it the same way.
//! - [`frame`]: length-prefixed frames with a size limit checked before allocation.
//! - [`connect`]: the one-line header with which a node asks its parent for an outbound
//!   connection to a peer named in the manifest.
//! - [`blob`]: the parent's blob-store protocol for the node's sealed state.
//! - [`blob_dir`]: a blob store in a directory (atomic writes): the parent's, and that of
//!   a node without a parent.
#![forbid(unsafe_code)]

pub mod blob;
pub mod blob_dir;
pub mod connect;
pub mod frame;
pub mod socket;

pub use socket::{Backend, Listener, Stream, VsockAddr};

/// Well-known ports. The node listens on the first two; the parent on the others.
pub mod ports {
    /// Node: peer (node-to-node) connections, relayed in by the parent.
    pub const NODE_PEER: u32 = 5000;
    /// Node: operator/client connections, relayed in by the parent.
    pub const NODE_CLIENT: u32 = 5001;
    /// Node: plain-text status for the parent's health endpoint (no secrets).
    pub const NODE_STATUS: u32 = 5002;
    /// Parent: outbound connection requests from the node (CONNECT header).
    pub const PARENT_OUTBOUND: u32 = 6000;
    /// Parent: the blob store.
    pub const PARENT_BLOBS: u32 = 6001;
}

/// The CID at which an enclave reaches its parent instance (Nitro convention).
pub const PARENT_CID: u32 = 3;
