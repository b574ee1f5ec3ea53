//! What the parent's splice costs: latency and throughput through a real `parent`
//! process (TCP -> parent -> Unix socket, as in simulator mode), against a direct TCP
//! connection to the same server code, interleaved in one run.
//!
//!     cargo run --release -p parent --example relay_bench
//!
//! - latency: 64-byte ping-pong on one connection per path, median and p99;
//! - throughput: 256 MiB one way into a sink that answers with the byte count once it
//!   sees the end of stream (so the half-close crosses the relays too).
//!
//! Paths: `direct` (client -> TCP -> server), `parent` (client -> TCP -> parent -> Unix
//! socket -> server) and, for scale, the same hop through two reference relays:
//! `minimal relay`, the simplest there is (two blocking threads per connection copying
//! with a 64 KiB buffer), and `splice relay`, the same threads moving bytes with Linux
//! `splice(2)` through a pipe, so that they never enter the relay's memory (the fastest
//! relay known here). Each runs in its own process: this one is the client, copies of it
//! run the servers (`--serve`) and the reference relays (`--relay`, `--splice-relay`).
//! Client and servers use a single-threaded runtime; the parent runs as in production.
//!
//! `BENCH_QUICK=1` runs a smaller version; `PARENT_BIN` overrides the binary. Run it
//! under `taskset -c 0` to measure CPU cost without cross-CPU wake-up latency.

use nix::fcntl::{FcntlArg, SpliceFFlags, fcntl, splice};
use std::error::Error;
use std::io::{BufRead, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use transport::ports::{NODE_CLIENT, NODE_PEER};
use transport::{Backend, VsockAddr};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

const ENCLAVE_CID: u32 = 16;
const MESSAGE: usize = 64;

struct Plan {
    blocks: usize,
    rounds_per_block: usize,
    bulk_bytes: u64,
    bulk_runs: usize,
}

/// One way to reach the echo and the sink server.
struct Target {
    name: &'static str,
    echo: SocketAddr,
    sink: SocketAddr,
}

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let role = args.next();
    let sim = args.next().map(PathBuf::from);
    match (role.as_ref().and_then(|r| r.to_str()), sim) {
        (Some("--serve"), Some(sim)) => return serve_role(sim),
        (Some("--relay"), Some(sim)) => return relay_role(&sim, Copying::Buffer),
        (Some("--splice-relay"), Some(sim)) => return relay_role(&sim, Copying::Splice),
        (None, _) => {}
        _ => {
            return Err(
                "usage: relay_bench [--serve DIR | --relay DIR | --splice-relay DIR]".into(),
            );
        }
    }
    let plan = if std::env::var_os("BENCH_QUICK").is_some() {
        Plan {
            blocks: 4,
            rounds_per_block: 500,
            bulk_bytes: 32 << 20,
            bulk_runs: 2,
        }
    } else {
        Plan {
            blocks: 10,
            rounds_per_block: 2_000,
            bulk_bytes: 256 << 20,
            bulk_runs: 5,
        }
    };
    let binary = parent_binary()?;
    runtime()?.block_on(client(&binary, &plan))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

async fn client(binary: &Path, plan: &Plan) -> Result<()> {
    let dir = TempDir::new()?;
    let sim = dir.0.join("sim");
    std::fs::create_dir_all(&sim)?;

    let (_server, ports) = spawn_role("--serve", &sim)?;
    let direct = Target {
        name: "direct TCP",
        echo: local(ports.first())?,
        sink: local(ports.get(1))?,
    };
    let (_relay, ports) = spawn_role("--relay", &sim)?;
    let minimal = Target {
        name: "minimal relay",
        echo: local(ports.first())?,
        sink: local(ports.get(1))?,
    };
    let (_splice_relay, ports) = spawn_role("--splice-relay", &sim)?;
    let splicing = Target {
        name: "splice relay",
        echo: local(ports.first())?,
        sink: local(ports.get(1))?,
    };

    let manifest = dir.0.join("manifest.json");
    std::fs::write(&manifest, manifest_json())?;
    let parent = Target {
        name: "parent",
        echo: local(Some(&free_port()?))?,
        sink: local(Some(&free_port()?))?,
    };
    let _parent = Running(
        Command::new(binary)
            .args(["--node-id", "bench"])
            .args(["--enclave-cid", &ENCLAVE_CID.to_string()])
            .arg("--manifest")
            .arg(&manifest)
            .arg("--blob-dir")
            .arg(dir.0.join("blobs"))
            .arg("--sim-dir")
            .arg(&sim)
            .args(["--peer-listen", &parent.echo.to_string()])
            .args(["--client-listen", &parent.sink.to_string()])
            .args(["--admin-listen", &local(Some(&free_port()?))?.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()?,
    );
    wait_listening(parent.echo).await?;
    wait_listening(parent.sink).await?;
    let paths = [direct, minimal, splicing, parent];

    println!("parent binary: {}", binary.display());
    println!(
        "latency: {MESSAGE}-byte ping-pong, {} blocks of {} round trips per path, interleaved",
        plan.blocks, plan.rounds_per_block
    );
    let mut streams = Vec::new();
    for path in &paths {
        let mut stream = connect(path.echo).await?;
        ping_pong(&mut stream, 1_000, &mut Vec::new()).await?;
        streams.push((stream, Vec::new()));
    }
    for _ in 0..plan.blocks {
        for (stream, rtts) in &mut streams {
            ping_pong(stream, plan.rounds_per_block, rtts).await?;
        }
    }
    let latencies: Vec<Latency> = streams
        .iter_mut()
        .map(|(_, rtts)| Latency::of(rtts))
        .collect();
    for (path, l) in paths.iter().zip(&latencies) {
        println!(
            "  {:<14} median {:7.1} us   p99 {:7.1} us",
            path.name, l.median, l.p99
        );
    }

    let mib = plan.bulk_bytes as f64 / f64::from(1 << 20);
    println!(
        "throughput: {mib:.0} MiB one way, {} runs per path, interleaved, best run",
        plan.bulk_runs
    );
    let mut best = [0f64; 4];
    for path in &paths {
        bulk(path.sink, 16 << 20).await?;
    }
    for _ in 0..plan.bulk_runs {
        for (path, best) in paths.iter().zip(best.iter_mut()) {
            let t = bulk(path.sink, plan.bulk_bytes).await?;
            *best = best.max(mib / t.as_secs_f64());
        }
    }
    for (path, best) in paths.iter().zip(best) {
        println!("  {:<14} {best:8.0} MiB/s", path.name);
    }

    let [direct_l, minimal_l, splice_l, parent_l] = latencies.as_slice() else {
        return Err("missing latencies".into());
    };
    let [direct_t, minimal_t, splice_t, parent_t] = best;
    let (direct, minimal) = ((direct_l, direct_t), (minimal_l, minimal_t));
    let (splicing, parent) = ((splice_l, splice_t), (parent_l, parent_t));
    compare("parent vs direct TCP", parent, direct, "direct");
    compare(
        "parent vs minimal relay",
        parent,
        minimal,
        "the minimal relay",
    );
    let title = "splice relay vs direct TCP (the best a relay does here)";
    compare(title, splicing, direct, "direct");
    Ok(())
}

/// Prints what `path` adds to `base`'s latency and how much of its throughput it keeps;
/// each side is its latency and its throughput in MiB/s.
fn compare(title: &str, path: (&Latency, f64), base: (&Latency, f64), base_name: &str) {
    let ((l, t), (base_l, base_t)) = (path, base);
    println!("{title}:");
    println!(
        "  added latency  median {:+.1}% ({:+.1} us)   p99 {:+.1}%",
        percent(l.median, base_l.median),
        l.median - base_l.median,
        percent(l.p99, base_l.p99)
    );
    println!("  throughput     {:.1}% of {base_name}", 100.0 * t / base_t);
}

fn local(port: Option<&u16>) -> Result<SocketAddr> {
    let port = port.ok_or("a helper process did not report its ports")?;
    Ok(([127, 0, 0, 1], *port).into())
}

/// Starts a copy of this program in `role`; it prints its TCP ports on one line and
/// runs until its stdin closes.
fn spawn_role(role: &str, sim: &Path) -> Result<(Running, Vec<u16>)> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg(role)
        .arg(sim)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let child = Running(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let ports = line
        .split_whitespace()
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()?;
    Ok((child, ports))
}

fn wait_for_stdin_eof() -> std::io::Result<u64> {
    std::io::copy(&mut std::io::stdin(), &mut std::io::sink())
}

/// Echo and sink servers, on TCP (direct path) and on the enclave's Unix sockets.
fn serve_role(sim: PathBuf) -> Result<()> {
    let runtime = runtime()?;
    let ports = runtime.block_on(async {
        let backend = Backend::Unix { dir: sim };
        let echo_tcp = TcpListener::bind("127.0.0.1:0").await?;
        let sink_tcp = TcpListener::bind("127.0.0.1:0").await?;
        let ports = (echo_tcp.local_addr()?.port(), sink_tcp.local_addr()?.port());
        tokio::spawn(accept_tcp(echo_tcp, Server::Echo));
        tokio::spawn(accept_tcp(sink_tcp, Server::Sink));
        let echo_unix = backend.bind(VsockAddr::new(ENCLAVE_CID, NODE_PEER)).await?;
        let sink_unix = backend
            .bind(VsockAddr::new(ENCLAVE_CID, NODE_CLIENT))
            .await?;
        tokio::spawn(accept_unix(echo_unix, Server::Echo));
        tokio::spawn(accept_unix(sink_unix, Server::Sink));
        Ok::<_, Box<dyn Error>>(ports)
    })?;
    println!("{} {}", ports.0, ports.1);
    runtime.block_on(async { tokio::task::spawn_blocking(wait_for_stdin_eof).await })??;
    Ok(())
}

/// How a reference relay moves bytes.
#[derive(Clone, Copy)]
enum Copying {
    /// `read` into a 64 KiB buffer, `write_all` out.
    Buffer,
    /// `splice(2)` from the socket into a pipe and from the pipe into the other socket.
    Splice,
}

/// A reference relay: TCP in, Unix socket out, a blocking thread per direction.
fn relay_role(sim: &Path, copying: Copying) -> Result<()> {
    let mut ports = Vec::new();
    for port in [NODE_PEER, NODE_CLIENT] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        ports.push(listener.local_addr()?.port());
        let target = Backend::unix_path(sim, VsockAddr::new(ENCLAVE_CID, port));
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let Ok(unix) = std::os::unix::net::UnixStream::connect(&target) else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let (Ok(tcp2), Ok(unix2)) = (tcp.try_clone(), unix.try_clone()) else {
                    continue;
                };
                match copying {
                    Copying::Buffer => {
                        std::thread::spawn(move || {
                            pump(tcp, unix2, |s| s.shutdown(Shutdown::Write))
                        });
                        std::thread::spawn(move || {
                            pump(unix, tcp2, |s| s.shutdown(Shutdown::Write))
                        });
                    }
                    Copying::Splice => {
                        std::thread::spawn(move || {
                            splice_pump(tcp, unix2, |s| s.shutdown(Shutdown::Write))
                        });
                        std::thread::spawn(move || {
                            splice_pump(unix, tcp2, |s| s.shutdown(Shutdown::Write))
                        });
                    }
                }
            }
        });
    }
    println!(
        "{} {}",
        ports.first().unwrap_or(&0),
        ports.get(1).unwrap_or(&0)
    );
    wait_for_stdin_eof()?;
    Ok(())
}

fn pump<R: Read, W: Write>(mut from: R, mut to: W, close: impl FnOnce(&W) -> std::io::Result<()>) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        let Some(data) = buf.get(..n).filter(|d| !d.is_empty()) else {
            break;
        };
        if to.write_all(data).is_err() {
            return;
        }
    }
    let _ = close(&to);
}

/// Like `pump`, but the bytes go socket -> pipe -> socket inside the kernel.
fn splice_pump<R: AsFd, W: AsFd>(from: R, to: W, close: impl FnOnce(&W) -> std::io::Result<()>) {
    const CHUNK: usize = 1 << 20;
    let Ok((pipe_out, pipe_in)) = nix::unistd::pipe() else {
        return;
    };
    // A larger pipe moves more per call; the default (64 KiB) also works.
    let _ = fcntl(&pipe_in, FcntlArg::F_SETPIPE_SZ(CHUNK as i32));
    let flags = SpliceFFlags::SPLICE_F_MOVE;
    while let Ok(n) = splice(&from, None, &pipe_in, None, CHUNK, flags) {
        if n == 0 {
            break;
        }
        let mut left = n;
        while left > 0 {
            match splice(&pipe_out, None, &to, None, left, flags) {
                Ok(m) if m > 0 => left -= m,
                _ => return,
            }
        }
    }
    let _ = close(&to);
}

#[derive(Clone, Copy)]
enum Server {
    /// Sends back every byte.
    Echo,
    /// Reads to the end of stream, then answers with the count (8 bytes, big endian).
    Sink,
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, server: Server) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        total += n as u64;
        if let Server::Echo = server
            && let Some(data) = buf.get(..n)
            && stream.write_all(data).await.is_err()
        {
            return;
        }
    }
    if let Server::Sink = server {
        let _ = stream.write_all(&total.to_be_bytes()).await;
    }
    let _ = stream.shutdown().await;
}

async fn accept_tcp(listener: TcpListener, server: Server) {
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve(stream, server));
    }
}

async fn accept_unix(listener: transport::Listener, server: Server) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(serve(stream, server));
    }
}

async fn connect(addr: SocketAddr) -> Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn ping_pong(stream: &mut TcpStream, rounds: usize, rtts: &mut Vec<Duration>) -> Result<()> {
    let message = [0x5au8; MESSAGE];
    let mut back = [0u8; MESSAGE];
    for _ in 0..rounds {
        let started = Instant::now();
        stream.write_all(&message).await?;
        stream.read_exact(&mut back).await?;
        rtts.push(started.elapsed());
        if back != message {
            return Err("echo changed the bytes".into());
        }
    }
    Ok(())
}

async fn bulk(addr: SocketAddr, bytes: u64) -> Result<Duration> {
    let chunk = vec![0xa5u8; 256 * 1024];
    let started = Instant::now();
    let mut stream = connect(addr).await?;
    let mut sent = 0u64;
    while sent < bytes {
        let n = usize::try_from(bytes - sent).map_or(chunk.len(), |left| left.min(chunk.len()));
        stream.write_all(chunk.get(..n).unwrap_or_default()).await?;
        sent += n as u64;
    }
    stream.shutdown().await?;
    let mut count = [0u8; 8];
    stream.read_exact(&mut count).await?;
    let elapsed = started.elapsed();
    if u64::from_be_bytes(count) != bytes {
        return Err("the sink did not receive every byte".into());
    }
    Ok(elapsed)
}

struct Latency {
    median: f64,
    p99: f64,
}

impl Latency {
    fn of(samples: &mut [Duration]) -> Latency {
        samples.sort_unstable();
        let at = |q: f64| {
            let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
        };
        Latency {
            median: at(0.5),
            p99: at(0.99),
        }
    }
}

fn percent(value: f64, base: f64) -> f64 {
    100.0 * (value - base) / base
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_listening(addr: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    // A probe connection is relayed like any other; the server sees it close at once.
    while TcpStream::connect(addr).await.is_err() {
        if Instant::now() > deadline {
            return Err(format!("parent not listening on {addr}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The `parent` binary of the same profile, built first (a no-op when up to date).
fn parent_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("PARENT_BIN") {
        return Ok(path.into());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "-p", "parent", "--bin", "parent"]);
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    if !build.status()?.success() {
        return Err("building the parent binary failed".into());
    }
    // This example runs from target/<profile>/examples/.
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot locate the target directory")?;
    Ok(profile_dir.join("parent"))
}

/// A structurally valid manifest (the parent checks no signature).
fn manifest_json() -> String {
    let body = serde_json::json!({
        "version": 1,
        "threshold": 1,
        "operators": [{ "id": "op-1", "public_key": "11".repeat(32) }],
        "nodes": [{
            "id": "bench", "provider": "sim", "address": "127.0.0.1:1",
            "measurements": [{ "8": "00".repeat(48) }],
        }],
    });
    serde_json::json!({ "manifest": base64(body.to_string().as_bytes()), "signatures": [] })
        .to_string()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..4 {
            let c = if i <= chunk.len() {
                let sextet = (n >> (18 - 6 * i)) & 63;
                ALPHABET
                    .get(sextet as usize)
                    .copied()
                    .map_or('=', char::from)
            } else {
                '='
            };
            out.push(c);
        }
    }
    out
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let dir = std::env::temp_dir().join(format!("relay-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
