//! A listing's pages as the node reads them (I/O-free): each page bounded, every name
//! checked to be a blob under the node's folder, and the whole listing bounded in names
//! and in pages.

use super::error::Malformed;
use serde::Deserialize;
use std::collections::BTreeSet;
use transport::blob::{CodecError, MAX_LIST_LEN, validate_name};

/// Objects asked for per page.
pub const PAGE_SIZE: usize = 1000;
/// Largest page body read: [`PAGE_SIZE`] entries of the longest object name, JSON-quoted,
/// fit with room to spare.
pub const MAX_PAGE_LEN: usize = 2 * 1024 * 1024;
/// Most pages read for one listing; an honest listing of [`MAX_LIST_LEN`] names needs
/// five.
pub const MAX_PAGES: usize = 64;
/// Longest page token carried to the next request.
pub const MAX_PAGE_TOKEN_LEN: usize = 1024;

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    items: Vec<Item>,
    #[serde(default, rename = "nextPageToken")]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct Item {
    name: String,
}

/// Why a listing stopped.
#[derive(Debug)]
pub enum ListError {
    Malformed(Malformed),
    /// More than [`MAX_LIST_LEN`] blobs.
    TooMany,
}

/// The names gathered so far from the pages of one listing.
#[derive(Debug)]
pub struct Listing {
    /// The node's folder: `prefix/`, or empty.
    folder: String,
    /// The blob-name prefix asked for.
    prefix: String,
    names: BTreeSet<String>,
    pages: usize,
}

impl Listing {
    pub fn new(folder: &str, prefix: &str) -> Self {
        Listing {
            folder: folder.to_owned(),
            prefix: prefix.to_owned(),
            names: BTreeSet::new(),
            pages: 0,
        }
    }

    /// Takes one page's body; returns the token of the next page, if there is one.
    pub fn page(&mut self, body: &[u8]) -> Result<Option<String>, ListError> {
        self.pages += 1;
        if self.pages > MAX_PAGES {
            return Err(ListError::Malformed(Malformed::TooManyPages {
                limit: MAX_PAGES,
            }));
        }
        let page: Page =
            serde_json::from_slice(body).map_err(|e| ListError::Malformed(Malformed::Json(e)))?;
        for item in page.items {
            let name = self.blob_name(item.name)?;
            self.names.insert(name);
            if self.names.len() > MAX_LIST_LEN {
                return Err(ListError::TooMany);
            }
        }
        match page.next_page_token {
            Some(token) if token.len() > MAX_PAGE_TOKEN_LEN => {
                Err(ListError::Malformed(Malformed::PageToken {
                    limit: MAX_PAGE_TOKEN_LEN,
                }))
            }
            Some(token) if token.is_empty() => Ok(None),
            token => Ok(token),
        }
    }

    /// The blob an object of the listing holds: under the folder, starting with the
    /// prefix, and a valid blob name.
    fn blob_name(&self, object: String) -> Result<String, ListError> {
        let foreign =
            |name: String| ListError::Malformed(Malformed::ForeignName { name: shown(name) });
        let Some(name) = object.strip_prefix(&self.folder) else {
            return Err(foreign(object));
        };
        if !name.starts_with(&self.prefix) {
            return Err(foreign(object));
        }
        match validate_name(name) {
            Ok(()) => Ok(name.to_owned()),
            Err(CodecError::Name(reason)) => Err(ListError::Malformed(Malformed::InvalidName {
                name: shown(object),
                reason,
            })),
            Err(_) => Err(ListError::Malformed(Malformed::InvalidName {
                name: shown(object),
                reason: "invalid",
            })),
        }
    }

    /// The names, sorted and without duplicates.
    pub fn finish(self) -> Vec<String> {
        self.names.into_iter().collect()
    }
}

/// Most bytes of a hostile object name shown in an error.
const MAX_SHOWN_NAME_LEN: usize = 256;

fn shown(mut name: String) -> String {
    name.truncate(name.floor_char_boundary(MAX_SHOWN_NAME_LEN));
    name
}
