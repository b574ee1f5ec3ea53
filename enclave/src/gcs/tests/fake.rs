//! A tiny Cloud Storage and metadata server on 127.0.0.1, plain HTTP/1.1, one request per
//! connection: just what the client uses, honest by default, and a hook through which a
//! test answers as a hostile or failing server would.

use percent_encoding::percent_decode_str;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

pub const BUCKET: &str = "custody-test";
const TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The raw request target, exactly as sent.
    pub target: String,
    /// Path segments, percent-decoded.
    pub segments: Vec<String>,
    /// Query parameters, percent-decoded.
    pub query: BTreeMap<String, String>,
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn is_token(&self) -> bool {
        self.target == TOKEN_PATH
    }
}

/// An answer to send.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Announce the length (otherwise the body ends when the connection closes).
    pub length: bool,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Answer {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: body.into(),
            length: true,
            delay: Duration::ZERO,
        }
    }

    pub fn json(status: u16, value: serde_json::Value) -> Answer {
        Answer::new(status, value.to_string())
    }

    /// Cloud Storage's error shape.
    pub fn error(status: u16, message: &str) -> Answer {
        Answer::json(
            status,
            serde_json::json!({"error": {"code": status, "message": message}}),
        )
    }
}

type Hook = Box<dyn Fn(&Request) -> Option<Answer> + Send>;

pub struct State {
    /// Objects by full name.
    pub objects: BTreeMap<String, Vec<u8>>,
    /// Largest page a listing answers with.
    pub page_size: usize,
    /// The lifetime of the tokens handed out.
    pub expires_in: u64,
    pub tokens_issued: usize,
    /// The token storage requests must carry.
    pub accepted: Option<String>,
    /// Every request, in order.
    pub requests: Vec<Request>,
    /// Answers instead of the honest server when it returns `Some`.
    pub hook: Option<Hook>,
}

pub struct Fake {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
}

impl Fake {
    pub async fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            objects: BTreeMap::new(),
            page_size: 1000,
            expires_in: 3600,
            tokens_issued: 0,
            accepted: None,
            requests: Vec::new(),
            hook: None,
        }));
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        Fake { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    pub fn hook(&self, hook: impl Fn(&Request) -> Option<Answer> + Send + 'static) {
        self.with(|s| s.hook = Some(Box::new(hook)));
    }

    /// Storage requests made so far (token fetches left out).
    pub fn storage_requests(&self) -> Vec<Request> {
        self.with(|s| {
            s.requests
                .iter()
                .filter(|r| !r.is_token())
                .cloned()
                .collect()
        })
    }
}

async fn serve(stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut reader = BufReader::new(stream);
    let Some(request) = read_request(&mut reader).await else {
        return;
    };
    let answer = {
        let mut state = state.lock().unwrap();
        state.requests.push(request.clone());
        match state.hook.as_ref().and_then(|hook| hook(&request)) {
            Some(answer) => answer,
            None => honest(&mut state, &request),
        }
    };
    tokio::time::sleep(answer.delay).await;
    let mut stream = reader.into_inner();
    let mut head = format!("HTTP/1.1 {} Fake\r\nConnection: close\r\n", answer.status);
    if answer.length {
        head.push_str(&format!("Content-Length: {}\r\n", answer.body.len()));
    }
    for (name, value) in &answer.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&answer.body).await;
    let _ = stream.shutdown().await;
}

async fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).await.ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let len: usize = headers
        .get("content-length")
        .map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0; len];
    reader.read_exact(&mut body).await.ok()?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let decode = |s: &str| percent_decode_str(s).decode_utf8().unwrap().into_owned();
    let segments = path.split('/').skip(1).map(decode).collect();
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    Some(Request {
        method,
        target,
        segments,
        query,
        headers,
        body,
    })
}

fn honest(state: &mut State, request: &Request) -> Answer {
    if request.is_token() {
        if request.headers.get("metadata-flavor").map(String::as_str) != Some("Google") {
            return Answer::new(403, "missing Metadata-Flavor");
        }
        state.tokens_issued += 1;
        let token = format!("tok-{}", state.tokens_issued);
        state.accepted = Some(token.clone());
        return Answer::json(
            200,
            serde_json::json!({"access_token": token, "expires_in": state.expires_in,
                "token_type": "Bearer"}),
        );
    }
    let expected = state.accepted.as_ref().map(|t| format!("Bearer {t}"));
    if expected.is_none() || request.headers.get("authorization") != expected.as_ref() {
        return Answer::error(401, "Invalid Credentials");
    }
    let segments: Vec<&str> = request.segments.iter().map(String::as_str).collect();
    let query = |k: &str| request.query.get(k).map(String::as_str);
    match (request.method.as_str(), segments.as_slice()) {
        ("POST", ["upload", "storage", "v1", "b", BUCKET, "o"])
            if query("uploadType") == Some("media") =>
        {
            let Some(name) = query("name") else {
                return Answer::error(400, "no name");
            };
            state.objects.insert(name.to_owned(), request.body.clone());
            Answer::json(200, serde_json::json!({"name": name, "bucket": BUCKET}))
        }
        ("GET", ["storage", "v1", "b", BUCKET, "o", name]) if query("alt") == Some("media") => {
            match state.objects.get(*name) {
                Some(data) => Answer::new(200, data.clone()),
                None => Answer::error(404, &format!("No such object: {BUCKET}/{name}")),
            }
        }
        ("DELETE", ["storage", "v1", "b", BUCKET, "o", name]) => {
            match state.objects.remove(*name) {
                Some(_) => Answer::new(204, ""),
                None => Answer::error(404, &format!("No such object: {BUCKET}/{name}")),
            }
        }
        ("GET", ["storage", "v1", "b", BUCKET, "o"]) => list(state, request),
        _ => Answer::error(400, "unexpected request"),
    }
}

fn list(state: &State, request: &Request) -> Answer {
    let prefix = request.query.get("prefix").cloned().unwrap_or_default();
    let delimiter = request.query.get("delimiter").cloned();
    let max: usize = request
        .query
        .get("maxResults")
        .map_or(1000, |v| v.parse().unwrap());
    let start: usize = request
        .query
        .get("pageToken")
        .map_or(0, |v| v.strip_prefix("page-").unwrap().parse().unwrap());
    let names: Vec<&String> = state
        .objects
        .keys()
        .filter(|n| n.starts_with(&prefix))
        .filter(|n| {
            delimiter
                .as_deref()
                .is_none_or(|d| !n[prefix.len()..].contains(d))
        })
        .collect();
    let size = max.min(state.page_size);
    let page: Vec<_> = names
        .iter()
        .skip(start)
        .take(size)
        .map(|n| serde_json::json!({"name": n}))
        .collect();
    let mut body = serde_json::json!({"kind": "storage#objects", "items": page});
    if start + size < names.len() {
        body["nextPageToken"] = format!("page-{}", start + size).into();
    }
    Answer::json(200, body)
}
