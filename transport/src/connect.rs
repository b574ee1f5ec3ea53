//! The outbound-connection header. A node that wants a peer opens a connection to its
//! parent and writes one line, `CONNECT <node-id>\n`; the parent answers `OK\n` and
//! splices the connection to that node's address from the manifest, or answers
//! `ERR <reason>\n` and closes. Node ids are 1 to 64 characters of `[A-Za-z0-9._-]`.

use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Longest header line accepted, newline included.
pub const MAX_HEADER_LEN: usize = 128;
/// Longest node id.
pub const MAX_NODE_ID_LEN: usize = ids::MAX_ID_LEN;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    #[error("header line longer than {MAX_HEADER_LEN} bytes")]
    TooLong,
    #[error("connection closed before the header line ended")]
    Truncated,
    #[error("header is not `CONNECT <node-id>`")]
    Malformed,
    #[error("invalid node id: {0}")]
    NodeId(&'static str),
    #[error("parent refused: {0}")]
    Refused(String),
    #[error("I/O error: {0}")]
    Io(String),
}

impl From<io::Error> for HeaderError {
    fn from(e: io::Error) -> Self {
        HeaderError::Io(e.to_string())
    }
}

/// Checks the node-id syntax shared by manifests, headers and blob names: the one
/// identifier rule of [`ids::check`].
pub fn validate_node_id(id: &str) -> Result<(), HeaderError> {
    ids::check(id).map_err(|e| HeaderError::NodeId(e.reason()))
}

/// Reads one `\n`-terminated line of at most `MAX_HEADER_LEN` bytes, byte by byte so
/// that nothing after the line is consumed.
pub async fn read_line<R: AsyncRead + Unpin>(reader: &mut R) -> Result<String, HeaderError> {
    let mut line = Vec::new();
    loop {
        let mut byte = [0u8; 1];
        if reader.read(&mut byte).await? == 0 {
            return Err(HeaderError::Truncated);
        }
        if byte == [b'\n'] {
            break;
        }
        if line.len() + 1 >= MAX_HEADER_LEN {
            return Err(HeaderError::TooLong);
        }
        line.extend_from_slice(&byte);
    }
    String::from_utf8(line).map_err(|_| HeaderError::Malformed)
}

/// Parses a header line (without its newline) into the requested node id.
pub fn parse_connect(line: &str) -> Result<&str, HeaderError> {
    let id = line
        .strip_prefix("CONNECT ")
        .ok_or(HeaderError::Malformed)?;
    validate_node_id(id)?;
    Ok(id)
}

/// Node side: asks the parent for `node_id` and waits for its answer.
pub async fn request<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    node_id: &str,
) -> Result<(), HeaderError> {
    validate_node_id(node_id)?;
    stream
        .write_all(format!("CONNECT {node_id}\n").as_bytes())
        .await?;
    stream.flush().await?;
    let answer = read_line(stream).await?;
    if answer == "OK" {
        return Ok(());
    }
    match answer.strip_prefix("ERR ") {
        Some(reason) => Err(HeaderError::Refused(reason.to_owned())),
        None => Err(HeaderError::Malformed),
    }
}

/// Parent side: answers a request.
pub async fn answer<W: AsyncWrite + Unpin>(
    stream: &mut W,
    result: Result<(), &str>,
) -> Result<(), HeaderError> {
    let line = match result {
        Ok(()) => "OK\n".to_owned(),
        // One line: the reason must not break the framing.
        Err(reason) => format!("ERR {}\n", reason.replace(['\n', '\r'], " ")),
    };
    stream.write_all(line.as_bytes()).await?;
    stream.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids() {
        for ok in ["node-1", "a", "A.b_c-9", &"x".repeat(64)] {
            validate_node_id(ok).unwrap();
        }
        for bad in ["", "a b", "../x", "a/b", "é", &"x".repeat(65), "a\n"] {
            assert!(validate_node_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_connect_lines() {
        assert_eq!(parse_connect("CONNECT node-2"), Ok("node-2"));
        assert_eq!(parse_connect("connect node-2"), Err(HeaderError::Malformed));
        assert_eq!(parse_connect("CONNECT "), Err(HeaderError::NodeId("empty")));
        assert!(parse_connect("CONNECT a b").is_err());
        assert!(parse_connect("CONNECT 10.0.0.1:443").is_err());
    }

    #[tokio::test]
    async fn line_limit_at_exactly_max() {
        // MAX_HEADER_LEN bytes including the newline: accepted.
        let line = format!("{}\n", "a".repeat(MAX_HEADER_LEN - 1));
        let mut input = line.as_bytes();
        assert_eq!(
            read_line(&mut input).await.unwrap().len(),
            MAX_HEADER_LEN - 1
        );
        // One more: refused without reading further.
        let line = format!("{}\n", "a".repeat(MAX_HEADER_LEN));
        let mut input = line.as_bytes();
        assert_eq!(read_line(&mut input).await, Err(HeaderError::TooLong));
        let mut input: &[u8] = b"CONNECT x";
        assert_eq!(read_line(&mut input).await, Err(HeaderError::Truncated));
    }

    #[tokio::test]
    async fn request_and_answer() {
        let (mut node, mut parent) = tokio::io::duplex(1024);
        let server = tokio::spawn(async move {
            let line = read_line(&mut parent).await.unwrap();
            assert_eq!(parse_connect(&line), Ok("node-2"));
            answer(&mut parent, Err("unknown\nnode")).await.unwrap();
        });
        assert_eq!(
            request(&mut node, "node-2").await,
            Err(HeaderError::Refused("unknown node".into()))
        );
        server.await.unwrap();
    }
}
