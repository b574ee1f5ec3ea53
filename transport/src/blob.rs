//! The blob-store protocol between a node and its parent. The node stores opaque
//! (sealed) blobs by name; the parent keeps them on disk and can read nothing in them.
//!
//! One request and one response per frame ([`crate::frame`]), each starting with a
//! version byte. Requests: `[1][op][name_len][name][data]` with op 1 put, 2 get, 3 list
//! (name is a prefix, possibly empty), 4 delete. Responses: `[1][status][...]` with
//! status 0 done, 1 data, 2 not found, 3 names (`[count u16][len u8][name]...`),
//! 4 error (`[kind][utf-8 message]`).

use std::fmt;

pub const VERSION: u8 = 1;
/// Largest blob stored.
pub const MAX_BLOB_LEN: usize = 4 * 1024 * 1024;
/// Longest blob name.
pub const MAX_NAME_LEN: usize = 128;
/// Most names one list response carries.
pub const MAX_LIST_LEN: usize = 4096;
/// Largest frame either side sends.
pub const MAX_FRAME_LEN: usize = MAX_BLOB_LEN + 1024;
/// Longest error message carried in a response.
pub const MAX_MESSAGE_LEN: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    #[error("empty message")]
    Empty,
    #[error("unsupported protocol version {0}")]
    Version(u8),
    #[error("unknown operation or status {0}")]
    UnknownCode(u8),
    #[error("message ends early")]
    Truncated,
    #[error("trailing bytes after the message")]
    Trailing,
    #[error("invalid blob name: {0}")]
    Name(&'static str),
    #[error("blob of {len} bytes exceeds the limit of {MAX_BLOB_LEN}")]
    TooLarge { len: usize },
    #[error("list of {0} names exceeds the limit of {MAX_LIST_LEN}")]
    TooManyNames(usize),
    #[error("message text is not UTF-8")]
    Utf8,
}

/// A blob name: 1 to 128 characters of `[A-Za-z0-9._-]`, not starting with `.`. Names
/// become file names on the parent, so nothing else is allowed: no separators, no `..`.
pub fn validate_name(name: &str) -> Result<(), CodecError> {
    if name.is_empty() {
        return Err(CodecError::Name("empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(CodecError::Name("longer than 128 characters"));
    }
    if name.starts_with('.') {
        return Err(CodecError::Name("starts with '.'"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(CodecError::Name("only A-Z a-z 0-9 . _ - are allowed"));
    }
    Ok(())
}

#[derive(Clone, PartialEq, Eq)]
pub enum Request {
    Put { name: String, data: Vec<u8> },
    Get { name: String },
    List { prefix: String },
    Delete { name: String },
}

impl fmt::Debug for Request {
    // Blob contents are sealed, but keep them out of logs all the same.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Put { name, data } => write!(f, "Put({name:?}, {} bytes)", data.len()),
            Request::Get { name } => write!(f, "Get({name:?})"),
            Request::List { prefix } => write!(f, "List({prefix:?})"),
            Request::Delete { name } => write!(f, "Delete({name:?})"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidName = 1,
    TooLarge = 2,
    DiskFull = 3,
    Io = 4,
    Protocol = 5,
}

#[derive(Clone, PartialEq, Eq)]
pub enum Response {
    Done,
    Data(Vec<u8>),
    NotFound,
    Names(Vec<String>),
    Error { kind: ErrorKind, message: String },
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Response::Done => write!(f, "Done"),
            Response::Data(d) => write!(f, "Data({} bytes)", d.len()),
            Response::NotFound => write!(f, "NotFound"),
            Response::Names(n) => write!(f, "Names({n:?})"),
            Response::Error { kind, message } => write!(f, "Error({kind:?}, {message:?})"),
        }
    }
}

/// A cursor that refuses to read past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, CodecError> {
        let (first, rest) = self.0.split_first().ok_or(CodecError::Truncated)?;
        self.0 = rest;
        Ok(*first)
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if n > self.0.len() {
            return Err(CodecError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn name(&mut self, allow_empty: bool) -> Result<String, CodecError> {
        let len = usize::from(self.u8()?);
        let bytes = self.take(len)?;
        let name = std::str::from_utf8(bytes).map_err(|_| CodecError::Name("not UTF-8"))?;
        if !(allow_empty && name.is_empty()) {
            validate_name(name)?;
        }
        Ok(name.to_owned())
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
    fn finish(&self) -> Result<(), CodecError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(CodecError::Trailing)
        }
    }
}

fn header(r: &mut Reader<'_>) -> Result<u8, CodecError> {
    let version = r.u8().map_err(|_| CodecError::Empty)?;
    if version != VERSION {
        return Err(CodecError::Version(version));
    }
    r.u8()
}

fn push_name(out: &mut Vec<u8>, name: &str) -> Result<(), CodecError> {
    let len =
        u8::try_from(name.len()).map_err(|_| CodecError::Name("longer than 128 characters"))?;
    out.push(len);
    out.extend_from_slice(name.as_bytes());
    Ok(())
}

impl Request {
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        let mut out = vec![VERSION];
        match self {
            Request::Put { name, data } => {
                validate_name(name)?;
                if data.len() > MAX_BLOB_LEN {
                    return Err(CodecError::TooLarge { len: data.len() });
                }
                out.push(1);
                push_name(&mut out, name)?;
                out.extend_from_slice(data);
            }
            Request::Get { name } => {
                validate_name(name)?;
                out.push(2);
                push_name(&mut out, name)?;
            }
            Request::List { prefix } => {
                if !prefix.is_empty() {
                    validate_name(prefix)?;
                }
                out.push(3);
                push_name(&mut out, prefix)?;
            }
            Request::Delete { name } => {
                validate_name(name)?;
                out.push(4);
                push_name(&mut out, name)?;
            }
        }
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader(bytes);
        let request = match header(&mut r)? {
            1 => {
                let name = r.name(false)?;
                let data = r.rest();
                if data.len() > MAX_BLOB_LEN {
                    return Err(CodecError::TooLarge { len: data.len() });
                }
                Request::Put {
                    name,
                    data: data.to_vec(),
                }
            }
            2 => Request::Get {
                name: r.name(false)?,
            },
            3 => Request::List {
                prefix: r.name(true)?,
            },
            4 => Request::Delete {
                name: r.name(false)?,
            },
            other => return Err(CodecError::UnknownCode(other)),
        };
        r.finish()?;
        Ok(request)
    }
}

impl Response {
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        let mut out = vec![VERSION];
        match self {
            Response::Done => out.push(0),
            Response::Data(data) => {
                if data.len() > MAX_BLOB_LEN {
                    return Err(CodecError::TooLarge { len: data.len() });
                }
                out.push(1);
                out.extend_from_slice(data);
            }
            Response::NotFound => out.push(2),
            Response::Names(names) => {
                let count = u16::try_from(names.len())
                    .ok()
                    .filter(|n| usize::from(*n) <= MAX_LIST_LEN)
                    .ok_or(CodecError::TooManyNames(names.len()))?;
                out.push(3);
                out.extend_from_slice(&count.to_be_bytes());
                for name in names {
                    validate_name(name)?;
                    push_name(&mut out, name)?;
                }
            }
            Response::Error { kind, message } => {
                out.push(4);
                out.push(*kind as u8);
                let mut end = message.len().min(MAX_MESSAGE_LEN);
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                out.extend_from_slice(message.as_bytes().get(..end).unwrap_or_default());
            }
        }
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader(bytes);
        let response = match header(&mut r)? {
            0 => Response::Done,
            1 => {
                let data = r.rest();
                if data.len() > MAX_BLOB_LEN {
                    return Err(CodecError::TooLarge { len: data.len() });
                }
                Response::Data(data.to_vec())
            }
            2 => Response::NotFound,
            3 => {
                let hi = r.u8()?;
                let lo = r.u8()?;
                let count = usize::from(u16::from_be_bytes([hi, lo]));
                if count > MAX_LIST_LEN {
                    return Err(CodecError::TooManyNames(count));
                }
                let mut names = Vec::new();
                for _ in 0..count {
                    names.push(r.name(false)?);
                }
                Response::Names(names)
            }
            4 => {
                let kind = match r.u8()? {
                    1 => ErrorKind::InvalidName,
                    2 => ErrorKind::TooLarge,
                    3 => ErrorKind::DiskFull,
                    4 => ErrorKind::Io,
                    5 => ErrorKind::Protocol,
                    other => return Err(CodecError::UnknownCode(other)),
                };
                let text = r.rest();
                if text.len() > MAX_MESSAGE_LEN {
                    return Err(CodecError::Trailing);
                }
                let message = std::str::from_utf8(text)
                    .map_err(|_| CodecError::Utf8)?
                    .to_owned();
                Response::Error { kind, message }
            }
            other => return Err(CodecError::UnknownCode(other)),
        };
        r.finish()?;
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "share-key1.v2", "ESCROW_node-2", &"x".repeat(128)] {
            validate_name(ok).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "../etc",
            "a b",
            "a\0",
            &"x".repeat(129),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn requests_round_trip() {
        for req in [
            Request::Put {
                name: "n".into(),
                data: vec![1, 2, 3],
            },
            Request::Put {
                name: "big".into(),
                data: vec![0; MAX_BLOB_LEN],
            },
            Request::Get { name: "n".into() },
            Request::List {
                prefix: String::new(),
            },
            Request::List {
                prefix: "escrow-".into(),
            },
            Request::Delete { name: "n".into() },
        ] {
            assert_eq!(Request::decode(&req.encode().unwrap()).unwrap(), req);
        }
    }

    #[test]
    fn responses_round_trip() {
        for resp in [
            Response::Done,
            Response::Data(vec![9; 10]),
            Response::NotFound,
            Response::Names(vec!["a".into(), "b".into()]),
            Response::Error {
                kind: ErrorKind::DiskFull,
                message: "no space".into(),
            },
        ] {
            assert_eq!(Response::decode(&resp.encode().unwrap()).unwrap(), resp);
        }
    }

    #[test]
    fn limits_at_exactly_max_and_one_more() {
        let too_big = Request::Put {
            name: "n".into(),
            data: vec![0; MAX_BLOB_LEN + 1],
        };
        assert_eq!(
            too_big.encode(),
            Err(CodecError::TooLarge {
                len: MAX_BLOB_LEN + 1
            })
        );
        let mut raw = vec![VERSION, 1, 1, b'n'];
        raw.extend(vec![0; MAX_BLOB_LEN + 1]);
        assert!(matches!(
            Request::decode(&raw),
            Err(CodecError::TooLarge { .. })
        ));
        let names = vec!["n".to_owned(); MAX_LIST_LEN];
        Response::Names(names).encode().unwrap();
        let names = vec!["n".to_owned(); MAX_LIST_LEN + 1];
        assert!(Response::Names(names).encode().is_err());
    }

    #[test]
    fn hostile_bytes_are_refused() {
        assert_eq!(Request::decode(&[]), Err(CodecError::Empty));
        assert_eq!(Request::decode(&[2, 2]), Err(CodecError::Version(2)));
        assert_eq!(Request::decode(&[1, 9]), Err(CodecError::UnknownCode(9)));
        assert_eq!(
            Request::decode(&[1, 2, 5, b'a']),
            Err(CodecError::Truncated)
        );
        assert_eq!(
            Request::decode(&[1, 2, 1, b'a', 0]),
            Err(CodecError::Trailing)
        );
        let traversal = [&[1u8, 2, 5][..], b"../x/"].concat();
        assert!(matches!(
            Request::decode(&traversal),
            Err(CodecError::Name(_))
        ));
        assert_eq!(
            Response::decode(&[1, 3, 0xff, 0xff]),
            Err(CodecError::TooManyNames(65535))
        );
        assert!(Response::decode(&[1, 4, 9]).is_err());
    }
}
