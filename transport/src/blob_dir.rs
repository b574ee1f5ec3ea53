//! A blob store in a directory: one file per blob name. The parent keeps its node's
//! sealed state with it, and a node without a parent (Confidential Space) keeps its own on
//! an attached disk with the same code, so names, limits and crash behaviour are the same
//! in both places. Whoever stores here needs it durable, not trusted: the node seals and
//! checks what it reads back.
//!
//! A write goes to a temporary file (its name starts with `.`, which no blob name may),
//! is synced, renamed over the blob, and the directory is synced: a crash leaves either
//! the old blob or the new one. A lock file keeps a second process out of the directory.

use crate::blob::{CodecError, ErrorKind, MAX_BLOB_LEN, MAX_LIST_LEN, Response, validate_name};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Temporary files start with this; the prefix is not a valid blob name.
const TEMP_PREFIX: &str = ".tmp-";
const LOCK_FILE: &str = ".lock";

const ENOSPC: i32 = 28;
const EDQUOT: i32 = 122;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirError {
    #[error("invalid blob name: {0}")]
    Name(#[from] CodecError),
    #[error("blob of {len} bytes exceeds the limit of {MAX_BLOB_LEN}")]
    TooLarge { len: u64 },
    #[error("more than {MAX_LIST_LEN} names match; use a longer prefix")]
    TooManyNames,
    #[error("disk full: the blob volume has no space left ({what}: {source})")]
    DiskFull { what: String, source: io::Error },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
}

impl DirError {
    /// Classifies an I/O error: out of space or quota is `DiskFull`, the rest `Io`.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        let what = what.into();
        if is_disk_full(&source) {
            DirError::DiskFull { what, source }
        } else {
            DirError::Io { what, source }
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            DirError::Name(_) => ErrorKind::InvalidName,
            DirError::TooLarge { .. } | DirError::TooManyNames => ErrorKind::TooLarge,
            DirError::DiskFull { .. } => ErrorKind::DiskFull,
            DirError::Io { .. } => ErrorKind::Io,
        }
    }

    pub fn to_response(&self) -> Response {
        Response::Error {
            kind: self.kind(),
            message: self.to_string(),
        }
    }
}

/// The response to a request that could not be decoded.
pub fn undecodable(e: &CodecError) -> Response {
    let kind = match e {
        CodecError::Name(_) => ErrorKind::InvalidName,
        CodecError::TooLarge { .. } => ErrorKind::TooLarge,
        _ => ErrorKind::Protocol,
    };
    Response::Error {
        kind,
        message: e.to_string(),
    }
}

/// ENOSPC or EDQUOT, however the standard library classifies them.
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || matches!(e.raw_os_error(), Some(ENOSPC | EDQUOT))
}

#[derive(Debug)]
pub struct DirStore {
    dir: PathBuf,
    counter: AtomicU64,
    _lock: File,
}

impl DirStore {
    /// Opens (creating it 0700 if needed) and locks the blob directory, and removes
    /// temporary files a crash left behind. Returns the store and how many it removed.
    pub fn open(dir: &Path) -> Result<(DirStore, usize), DirError> {
        let ctx = |what: &str| format!("{what} {}", dir.display());
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| DirError::io(ctx("create"), e))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(dir.join(LOCK_FILE))
            .map_err(|e| DirError::io(ctx("open the lock file in"), e))?;
        lock.try_lock().map_err(|e| {
            let source = match e {
                fs::TryLockError::Error(e) => e,
                fs::TryLockError::WouldBlock => io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    "another process holds the blob directory's lock",
                ),
            };
            DirError::io(ctx("lock"), source)
        })?;
        let mut removed = 0;
        for entry in fs::read_dir(dir).map_err(|e| DirError::io(ctx("read"), e))? {
            let entry = entry.map_err(|e| DirError::io(ctx("read"), e))?;
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                fs::remove_file(entry.path())
                    .map_err(|e| DirError::io(format!("remove {}", entry.path().display()), e))?;
                removed += 1;
            }
        }
        if removed > 0 {
            sync_dir(dir).map_err(|e| DirError::io(ctx("sync"), e))?;
        }
        let store = DirStore {
            dir: dir.to_path_buf(),
            counter: AtomicU64::new(0),
            _lock: lock,
        };
        Ok((store, removed))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> Result<PathBuf, DirError> {
        validate_name(name)?;
        Ok(self.dir.join(name))
    }

    /// Stores `data` under `name`, replacing any previous blob atomically.
    pub fn put(&self, name: &str, data: &[u8]) -> Result<(), DirError> {
        let target = self.path(name)?;
        if data.len() > MAX_BLOB_LEN {
            return Err(DirError::TooLarge {
                len: data.len() as u64,
            });
        }
        let temp = self.dir.join(format!(
            "{TEMP_PREFIX}{}-{}",
            std::process::id(),
            self.counter.fetch_add(1, Ordering::Relaxed)
        ));
        let write = || -> io::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)?;
            file.write_all(data)?;
            file.sync_all()?;
            drop(file);
            fs::rename(&temp, &target)?;
            sync_dir(&self.dir)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&temp);
            DirError::io(format!("write {name}"), e)
        })
    }

    /// The blob's bytes as they are on disk, or `None`.
    pub fn get(&self, name: &str) -> Result<Option<Vec<u8>>, DirError> {
        let path = self.path(name)?;
        let what = || format!("read {name}");
        let file = match open_regular(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(DirError::io(what(), e)),
        };
        let meta = file.metadata().map_err(|e| DirError::io(what(), e))?;
        if !meta.is_file() {
            return Err(DirError::io(
                what(),
                io::Error::new(io::ErrorKind::InvalidData, "not a regular file"),
            ));
        }
        let limit = MAX_BLOB_LEN as u64;
        if meta.len() > limit {
            return Err(DirError::TooLarge { len: meta.len() });
        }
        let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        file.take(limit + 1)
            .read_to_end(&mut data)
            .map_err(|e| DirError::io(what(), e))?;
        if data.len() > MAX_BLOB_LEN {
            return Err(DirError::TooLarge {
                len: data.len() as u64,
            });
        }
        Ok(Some(data))
    }

    /// Sorted names of the blobs starting with `prefix` (empty: all).
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, DirError> {
        if !prefix.is_empty() {
            validate_name(prefix)?;
        }
        let what = || format!("list {}", self.dir.display());
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| DirError::io(what(), e))? {
            let entry = entry.map_err(|e| DirError::io(what(), e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !name.starts_with(prefix) || validate_name(&name).is_err() {
                continue;
            }
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            if names.len() == MAX_LIST_LEN {
                return Err(DirError::TooManyNames);
            }
            names.push(name);
        }
        names.sort_unstable();
        Ok(names)
    }

    /// Removes a blob; `false` if there was none.
    pub fn delete(&self, name: &str) -> Result<bool, DirError> {
        let path = self.path(name)?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(DirError::io(format!("delete {name}"), e)),
        }
        sync_dir(&self.dir).map_err(|e| DirError::io(format!("delete {name}"), e))?;
        Ok(true)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Opens `path` for reading without following a symbolic link and without waiting on a
/// FIFO: the directory is the host's, and a blob that is a link (to another file of the
/// container) or a pipe (that never answers) is refused, not read. What is opened is
/// still checked to be a regular file.
fn open_regular(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::Request;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static N: AtomicU64 = AtomicU64::new(0);
            let dir = std::env::temp_dir().join(format!(
                "blob-dir-{name}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn put_get_overwrite_delete() {
        let tmp = TempDir::new("basic");
        let (store, removed) = DirStore::open(&tmp.0).unwrap();
        assert_eq!(removed, 0);
        assert_eq!(store.get("share").unwrap(), None);
        store.put("share", b"v1").unwrap();
        assert_eq!(store.get("share").unwrap().as_deref(), Some(&b"v1"[..]));
        store.put("share", b"version two").unwrap();
        assert_eq!(
            store.get("share").unwrap().as_deref(),
            Some(&b"version two"[..])
        );
        store.put("empty", b"").unwrap();
        assert_eq!(store.get("empty").unwrap(), Some(vec![]));
        // Only the blobs and the lock file: no temporary file is left behind.
        assert_eq!(entries(&tmp.0), [".lock", "empty", "share"]);
        assert!(store.delete("share").unwrap());
        assert!(!store.delete("share").unwrap());
        assert_eq!(store.get("share").unwrap(), None);
    }

    #[test]
    fn list_by_prefix_sorted_without_temp_files() {
        let tmp = TempDir::new("list");
        let (store, _) = DirStore::open(&tmp.0).unwrap();
        for name in ["share-b", "share-a", "escrow-1", "share-c"] {
            store.put(name, name.as_bytes()).unwrap();
        }
        fs::write(tmp.0.join(".tmp-123-0"), b"partial").unwrap();
        fs::create_dir(tmp.0.join("share-dir")).unwrap();
        assert_eq!(
            store.list("share-").unwrap(),
            ["share-a", "share-b", "share-c"]
        );
        assert_eq!(
            store.list("").unwrap(),
            ["escrow-1", "share-a", "share-b", "share-c"]
        );
        assert!(store.list("none").unwrap().is_empty());
        assert!(matches!(store.list("../"), Err(DirError::Name(_))));
    }

    #[test]
    fn names_that_could_escape_are_refused() {
        let tmp = TempDir::new("names");
        let (store, _) = DirStore::open(&tmp.0).unwrap();
        for bad in [
            "../x",
            "a/b",
            "/etc/passwd",
            ".",
            "..",
            ".lock",
            ".tmp-1-1",
            "",
        ] {
            assert!(
                matches!(store.put(bad, b"x"), Err(DirError::Name(_))),
                "{bad}"
            );
            assert!(matches!(store.get(bad), Err(DirError::Name(_))), "{bad}");
            assert!(matches!(store.delete(bad), Err(DirError::Name(_))), "{bad}");
        }
        assert_eq!(entries(&tmp.0), [".lock"]);
        let refusal = store.get("../x").unwrap_err();
        assert!(matches!(
            refusal.to_response(),
            Response::Error {
                kind: ErrorKind::InvalidName,
                ..
            }
        ));
    }

    #[test]
    fn links_and_pipes_are_refused_not_followed() {
        let tmp = TempDir::new("links");
        let (store, _) = DirStore::open(&tmp.0).unwrap();
        store.put("real", b"sealed").unwrap();
        std::os::unix::fs::symlink(tmp.0.join("real"), tmp.0.join("link")).unwrap();
        assert!(matches!(store.get("link"), Err(DirError::Io { .. })));
        let fifo = tmp.0.join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            // Opened without waiting for a writer, then refused as not a regular file.
            assert!(matches!(store.get("pipe"), Err(DirError::Io { .. })));
        }
        assert_eq!(store.get("real").unwrap().as_deref(), Some(&b"sealed"[..]));
    }

    #[test]
    fn size_limit_at_exactly_max_and_one_more() {
        let tmp = TempDir::new("size");
        let (store, _) = DirStore::open(&tmp.0).unwrap();
        let max = vec![0xa5; MAX_BLOB_LEN];
        store.put("max", &max).unwrap();
        assert_eq!(store.get("max").unwrap().as_deref(), Some(&max[..]));
        let over = vec![0xa5; MAX_BLOB_LEN + 1];
        assert!(matches!(
            store.put("over", &over),
            Err(DirError::TooLarge { .. })
        ));
        assert_eq!(store.get("over").unwrap(), None);
        // A file grown on disk past the limit is refused, not read.
        fs::write(tmp.0.join("grown"), &over).unwrap();
        let refusal = store.get("grown").unwrap_err();
        assert!(matches!(refusal, DirError::TooLarge { .. }), "{refusal}");
        assert!(matches!(
            refusal.to_response(),
            Response::Error {
                kind: ErrorKind::TooLarge,
                ..
            }
        ));
        assert_eq!(entries(&tmp.0), [".lock", "grown", "max"]);
    }

    #[test]
    fn stale_temp_files_are_removed_at_open() {
        let tmp = TempDir::new("stale");
        fs::create_dir_all(&tmp.0).unwrap();
        fs::write(tmp.0.join(".tmp-99-0"), b"half written").unwrap();
        fs::write(tmp.0.join(".tmp-99-1"), b"").unwrap();
        fs::write(tmp.0.join("share"), b"kept").unwrap();
        let (store, removed) = DirStore::open(&tmp.0).unwrap();
        assert_eq!(removed, 2);
        assert_eq!(entries(&tmp.0), [".lock", "share"]);
        assert_eq!(store.get("share").unwrap().as_deref(), Some(&b"kept"[..]));
    }

    #[test]
    fn a_second_store_cannot_open_a_locked_directory() {
        let tmp = TempDir::new("lock");
        let (first, _) = DirStore::open(&tmp.0).unwrap();
        let err = DirStore::open(&tmp.0).unwrap_err();
        assert!(err.to_string().contains("lock"), "{err}");
        drop(first);
        DirStore::open(&tmp.0).unwrap();
    }

    #[test]
    fn out_of_space_maps_to_disk_full() {
        for e in [
            io::Error::from_raw_os_error(ENOSPC),
            io::Error::from_raw_os_error(EDQUOT),
            io::Error::from(io::ErrorKind::StorageFull),
            io::Error::from(io::ErrorKind::QuotaExceeded),
        ] {
            let err = DirError::io("write share", e);
            assert_eq!(err.kind(), ErrorKind::DiskFull);
            let Response::Error { kind, message } = err.to_response() else {
                panic!("not an error response");
            };
            assert_eq!(kind, ErrorKind::DiskFull);
            assert!(message.starts_with("disk full"), "{message}");
            assert!(message.contains("write share"), "{message}");
        }
        let other = DirError::io("write share", io::Error::from_raw_os_error(5));
        assert_eq!(other.kind(), ErrorKind::Io);
    }

    #[test]
    fn undecodable_requests_say_why() {
        let traversal = [&[1u8, 2, 4][..], b"../x"].concat();
        let mut oversize = vec![1u8, 1, 1, b'n'];
        oversize.resize(4 + MAX_BLOB_LEN + 1, 0);
        for (bytes, expected) in [
            (traversal, ErrorKind::InvalidName),
            (oversize, ErrorKind::TooLarge),
            (vec![1, 9], ErrorKind::Protocol),
            (vec![7, 1], ErrorKind::Protocol),
        ] {
            let e = Request::decode(&bytes).unwrap_err();
            let Response::Error { kind, .. } = undecodable(&e) else {
                panic!("not an error response");
            };
            assert_eq!(kind, expected, "{e}");
        }
    }
}
