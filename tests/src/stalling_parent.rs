//! A hostile parent's blob store that stalls chosen reads.
//!
//! The node reaches its parent's blob store over a socket (a Unix socket in the
//! simulator's directory standing for vsock `PARENT_CID:PARENT_BLOBS`), one request per
//! connection. This proxy takes that socket's place in front of the real parent: the
//! parent's socket file is moved aside and the proxy listens on the original path,
//! relaying every request and response unchanged, except that the response to a `get`
//! of a name the test holds is kept back until the test releases it. The parent itself
//! answers every request as usual; only the timing of chosen answers is the attacker's.
//!
//! A reply is never held longer than [`MAX_HOLD`]: the node gives up on a request after
//! [`enclave::blobs::DEFAULT_TIMEOUT`], and a test that overran that would see the node
//! fail on a timeout rather than the behaviour it means to test. Replies released by that
//! limit are recorded ([`StallingParent::overdue`]).
//!
//! The proxy can also hide chosen names from the parent's listings
//! ([`StallingParent::hide_from_listing`]) and answer `get`s of them as absent
//! ([`StallingParent::hide_from_gets`]) while every blob stays on disk (until the node
//! writes that name again: from then on its new blob is served as usual), hold the
//! reply to a `put` ([`StallingParent::hold_put`]), and take over the parent's outbound
//! relay ([`StallingParent::intercept_outbound`]) to route chosen node ids to addresses
//! of the test's choosing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::watch;
use transport::blob::{MAX_FRAME_LEN, Request, Response};
use transport::connect::{parse_connect, read_line};
use transport::frame::{read_frame, write_frame};
use transport::{Backend, PARENT_CID, VsockAddr, ports};

/// Longest a reply is held, safely under the node's timeout for one blob request.
pub const MAX_HOLD: Duration = Duration::from_secs(8);

/// What the proxy saw and is doing, shared with its connections.
#[derive(Debug, Default)]
struct Seen {
    /// Every request relayed so far, in order (blob contents are not kept).
    requests: Vec<String>,
    /// Names of `get`s whose replies are being held right now.
    stalled: Vec<String>,
    /// Names of `get`s whose replies were released by [`MAX_HOLD`], not by the test.
    overdue: Vec<String>,
    /// Names left out of every listing.
    unlisted: BTreeSet<String>,
    /// Names whose `get`s are answered as absent.
    absent: BTreeSet<String>,
    /// Outbound routes the proxy decides: node id to the address it dials instead.
    routes: BTreeMap<String, String>,
}

/// Hold key of the reply to `put name` (blob names never contain a space).
fn put_key(name: &str) -> String {
    format!("put {name}")
}

/// A running proxy; on drop it stops and puts the parent's socket back in place.
#[derive(Debug)]
pub struct StallingParent {
    hold: watch::Sender<BTreeSet<String>>,
    seen: Arc<Mutex<Seen>>,
    path: PathBuf,
    real: PathBuf,
    /// The outbound relay's socket and where the parent's was moved, once taken over.
    outbound: Option<(PathBuf, PathBuf)>,
    sim_dir: PathBuf,
    runtime: Option<tokio::runtime::Runtime>,
}

impl StallingParent {
    /// Takes the place of the blob store of the parent serving `sim_dir`. The parent
    /// must be running (its socket file appears within `patience`).
    pub fn start(sim_dir: &Path, patience: Duration) -> Result<Self, String> {
        let path = Backend::unix_path(sim_dir, VsockAddr::new(PARENT_CID, ports::PARENT_BLOBS));
        let real = sim_dir.join("parent-blobs-behind-proxy.sock");
        let deadline = Instant::now() + patience;
        while !path.exists() {
            if Instant::now() > deadline {
                return Err(format!("the parent never created {}", path.display()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // A bound Unix socket keeps working under a new name: the parent still accepts
        // on it, and only the proxy connects to it there.
        std::fs::rename(&path, &real).map_err(|e| format!("move {} aside: {e}", path.display()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let listener = match runtime.block_on(async { UnixListener::bind(&path) }) {
            Ok(listener) => listener,
            Err(e) => {
                let _ = std::fs::rename(&real, &path);
                return Err(format!("listen on {}: {e}", path.display()));
            }
        };
        let (hold, _) = watch::channel(BTreeSet::new());
        let seen = Arc::new(Mutex::new(Seen::default()));
        runtime.spawn({
            let hold = hold.subscribe();
            let seen = seen.clone();
            let real = real.clone();
            async move {
                while let Ok((node, _)) = listener.accept().await {
                    tokio::spawn(relay(node, real.clone(), hold.clone(), seen.clone()));
                }
            }
        });
        Ok(StallingParent {
            hold,
            seen,
            path,
            real,
            outbound: None,
            sim_dir: sim_dir.to_owned(),
            runtime: Some(runtime),
        })
    }

    /// From now on, replies to `put name` (the parent has stored the blob) are held until
    /// [`release_put`](Self::release_put); [`wait_stalled`](Self::wait_stalled) and
    /// [`overdue`](Self::overdue) name them `put <name>`.
    pub fn hold_put(&self, name: &str) {
        self.hold(&put_key(name));
    }

    /// Sends the held replies to `put name`, and stops holding new ones.
    pub fn release_put(&self, name: &str) {
        self.release(&put_key(name));
    }

    /// From now on, `name` is left out of every listing the parent answers. The blob
    /// stays on disk and a `get` of it is served as usual.
    pub fn hide_from_listing(&self, name: &str) {
        self.lock().unlisted.insert(name.to_owned());
    }

    /// From now on, a `get name` is answered as if the parent held no such blob (it stays
    /// on disk).
    pub fn hide_from_gets(&self, name: &str) {
        self.lock().absent.insert(name.to_owned());
    }

    /// Takes the place of the parent's outbound relay: every `CONNECT <id>` is passed to
    /// the parent unchanged unless [`route`](Self::route) chose an address for `id`.
    pub fn intercept_outbound(&mut self) -> Result<(), String> {
        if self.outbound.is_some() {
            return Ok(());
        }
        let path = Backend::unix_path(
            &self.sim_dir,
            VsockAddr::new(PARENT_CID, ports::PARENT_OUTBOUND),
        );
        let real = self.sim_dir.join("parent-outbound-behind-proxy.sock");
        let runtime = self.runtime.as_ref().ok_or("the proxy has stopped")?;
        std::fs::rename(&path, &real).map_err(|e| format!("move {} aside: {e}", path.display()))?;
        let listener = match runtime.block_on(async { UnixListener::bind(&path) }) {
            Ok(listener) => listener,
            Err(e) => {
                let _ = std::fs::rename(&real, &path);
                return Err(format!("listen on {}: {e}", path.display()));
            }
        };
        runtime.spawn({
            let seen = self.seen.clone();
            let real = real.clone();
            async move {
                while let Ok((node, _)) = listener.accept().await {
                    tokio::spawn(outbound(node, real.clone(), seen.clone()));
                }
            }
        });
        self.outbound = Some((path, real));
        Ok(())
    }

    /// From now on, the node's connections to `node_id` go to `address` (needs
    /// [`intercept_outbound`](Self::intercept_outbound)).
    pub fn route(&self, node_id: &str, address: &str) {
        self.lock()
            .routes
            .insert(node_id.to_owned(), address.to_owned());
    }

    /// From now on, the node's connections to `node_id` go to the parent's relay again.
    pub fn unroute(&self, node_id: &str) {
        self.lock().routes.remove(node_id);
    }

    /// From now on, replies to `get name` are held until [`release`](Self::release).
    pub fn hold(&self, name: &str) {
        self.hold.send_modify(|names| {
            names.insert(name.to_owned());
        });
    }

    /// Sends the held replies to `get name`, and stops holding new ones.
    pub fn release(&self, name: &str) {
        self.hold.send_modify(|names| {
            names.remove(name);
        });
    }

    /// Waits until a reply to `get name` is being held; fails after `patience`.
    pub fn wait_stalled(&self, name: &str, patience: Duration) -> Result<(), String> {
        let deadline = Instant::now() + patience;
        loop {
            if self.lock().stalled.iter().any(|n| n == name) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no `get {name}` reached the stalling parent within {patience:?}; requests \
                     seen: {:?}",
                    self.requests()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every request relayed so far.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    /// Names whose replies were released by [`MAX_HOLD`] rather than by the test.
    pub fn overdue(&self) -> Vec<String> {
        self.lock().overdue.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for StallingParent {
    fn drop(&mut self) {
        self.hold.send_modify(BTreeSet::clear);
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::rename(&self.real, &self.path);
        if let Some((path, real)) = self.outbound.take() {
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::rename(&real, &path);
        }
    }
}

/// Relays one outbound connection of the node: to the address the test routed its
/// node id to, or else to the parent's own relay.
async fn outbound(mut node: UnixStream, real: PathBuf, seen: Arc<Mutex<Seen>>) {
    let Ok(line) = read_line(&mut node).await else {
        return;
    };
    let routed = parse_connect(&line).ok().and_then(|id| {
        seen.lock()
            .unwrap_or_else(|p| p.into_inner())
            .routes
            .get(id)
            .cloned()
    });
    match routed {
        Some(address) => {
            let Ok(mut remote) = TcpStream::connect(&address).await else {
                let _ = node.write_all(b"ERR dial failed\n").await;
                return;
            };
            if node.write_all(b"OK\n").await.is_err() {
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut node, &mut remote).await;
        }
        None => {
            let Ok(mut parent) = UnixStream::connect(&real).await else {
                return;
            };
            if parent
                .write_all(format!("{line}\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut node, &mut parent).await;
        }
    }
}

/// Relays one node connection to the parent, frame by frame, holding chosen replies.
async fn relay(
    mut node: UnixStream,
    real: PathBuf,
    hold: watch::Receiver<BTreeSet<String>>,
    seen: Arc<Mutex<Seen>>,
) {
    let Ok(mut parent) = UnixStream::connect(&real).await else {
        // The node sees the connection close, as if the parent were not there.
        return;
    };
    let record = |f: &dyn Fn(&mut Seen)| f(&mut seen.lock().unwrap_or_else(|p| p.into_inner()));
    while let Ok(Some(request)) = read_frame(&mut node, MAX_FRAME_LEN).await {
        let decoded = Request::decode(&request);
        let described = match &decoded {
            Ok(r) => format!("{r:?}"),
            Err(e) => format!("undecodable request ({e})"),
        };
        record(&|s| s.requests.push(described.clone()));
        if write_frame(&mut parent, &request, MAX_FRAME_LEN)
            .await
            .is_err()
        {
            return;
        }
        let Ok(Some(mut response)) = read_frame(&mut parent, MAX_FRAME_LEN).await else {
            return;
        };
        if let Ok(Request::List { .. }) = decoded {
            // Unchanged bytes unless a name is hidden.
            let unlisted = seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .unlisted
                .clone();
            if !unlisted.is_empty()
                && let Ok(Response::Names(names)) = Response::decode(&response)
            {
                let kept = names
                    .into_iter()
                    .filter(|n| !unlisted.contains(n))
                    .collect();
                match Response::Names(kept).encode() {
                    Ok(filtered) => response = filtered,
                    Err(_) => return,
                }
            }
        }
        if let Ok(Request::Get { name }) = &decoded {
            let absent = seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .absent
                .contains(name);
            if absent {
                match Response::NotFound.encode() {
                    Ok(not_found) => response = not_found,
                    Err(_) => return,
                }
            }
        }
        if let Ok(Request::Put { name, .. }) = &decoded {
            // The node wrote it: its new blob is what the parent holds now.
            record(&|s| {
                s.unlisted.remove(name);
                s.absent.remove(name);
            });
        }
        let held = match decoded {
            Ok(Request::Get { name }) => Some(name),
            Ok(Request::Put { name, .. }) => Some(put_key(&name)),
            _ => None,
        };
        if let Some(name) = held {
            let mut hold = hold.clone();
            if hold.borrow().contains(&name) {
                record(&|s| s.stalled.push(name.clone()));
                let released =
                    tokio::time::timeout(MAX_HOLD, hold.wait_for(|names| !names.contains(&name)))
                        .await;
                record(&|s| {
                    if let Some(i) = s.stalled.iter().position(|n| *n == name) {
                        s.stalled.remove(i);
                    }
                    if released.is_err() {
                        s.overdue.push(name.clone());
                    }
                });
            }
        }
        if write_frame(&mut node, &response, MAX_FRAME_LEN)
            .await
            .is_err()
        {
            return;
        }
    }
}
