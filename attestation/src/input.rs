//! Reading evidence from a file: a Nitro document as raw COSE bytes, base64 or hex, or a
//! Confidential Space token or bundle as the text it is.
//!
//! A COSE_Sign1 starts with `0x84` (untagged array) or `0xd2` (tag 18), neither of
//! which is ASCII, so detection is unambiguous: input that is entirely ASCII is text.
//! Text that starts (after whitespace) with `eyJ` or `{` is a Confidential Space token or
//! bundle, whose base64 and hex forms never start so (a document's base64 starts with `h`
//! or `0`), and is passed on with the surrounding whitespace removed; other text is hex
//! when it is an even number of hex digits, base64 otherwise, whitespace ignored.
//! Anything else is taken as raw bytes and left for the provider's parser.

use crate::nitro::MAX_DOCUMENT_LEN;
use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Largest input accepted, checked before it is read: room for a document of
/// [`MAX_DOCUMENT_LEN`] bytes in hex with whitespace between the digits.
pub const MAX_INPUT_LEN: u64 = 4 * MAX_DOCUMENT_LEN as u64;

const PADDING_OPTIONAL: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const BASE64_STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, PADDING_OPTIONAL);
const BASE64_URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, PADDING_OPTIONAL);

/// How a document was encoded in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Raw,
    Hex,
    Base64,
    /// A Confidential Space token or bundle: text that is itself the evidence.
    Text,
}

/// The input could not be read or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    #[error("cannot read input: {0}")]
    Read(#[from] io::Error),
    #[error("input is larger than the limit of {max} bytes")]
    TooLarge { max: u64 },
    #[error("input is empty")]
    Empty,
    #[error("input is text but not valid hex: {0}")]
    Hex(hex::FromHexError),
    #[error("input is text but neither hex nor valid base64: {0}")]
    Base64(base64::DecodeError),
}

/// Reads and decodes the file at `path`, refusing files over [`MAX_INPUT_LEN`].
pub fn read_file(path: &Path) -> Result<Vec<u8>, InputError> {
    let file = File::open(path)?;
    if file.metadata()?.len() > MAX_INPUT_LEN {
        return Err(InputError::TooLarge { max: MAX_INPUT_LEN });
    }
    // The file may grow after the check, or be a pipe with no length: read through a limit.
    read(file)
}

/// Reads at most [`MAX_INPUT_LEN`] bytes from `reader` and decodes them.
pub fn read(reader: impl Read) -> Result<Vec<u8>, InputError> {
    let mut buf = Vec::new();
    reader.take(MAX_INPUT_LEN + 1).read_to_end(&mut buf)?;
    if u64::try_from(buf.len()).map_or(true, |len| len > MAX_INPUT_LEN) {
        return Err(InputError::TooLarge { max: MAX_INPUT_LEN });
    }
    decode(&buf)
}

/// Which encoding `bytes` are in.
pub fn detect(bytes: &[u8]) -> Encoding {
    if !bytes.is_ascii() {
        return Encoding::Raw;
    }
    let text = trim(bytes);
    if text.starts_with(b"eyJ") || text.starts_with(b"{") {
        return Encoding::Text;
    }
    let mut digits = 0usize;
    for b in bytes.iter().filter(|b| !b.is_ascii_whitespace()) {
        if !b.is_ascii_hexdigit() {
            return Encoding::Base64;
        }
        digits += 1;
    }
    if digits.is_multiple_of(2) {
        Encoding::Hex
    } else {
        Encoding::Base64
    }
}

/// Decodes raw, hex or base64 (standard or URL-safe alphabet, padding optional) bytes.
pub fn decode(bytes: &[u8]) -> Result<Vec<u8>, InputError> {
    let encoding = detect(bytes);
    match encoding {
        Encoding::Raw => return Ok(bytes.to_vec()),
        Encoding::Text => return Ok(trim(bytes).to_vec()),
        Encoding::Hex | Encoding::Base64 => {}
    }
    let text: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if text.is_empty() {
        return Err(InputError::Empty);
    }
    if encoding == Encoding::Hex {
        return hex::decode(&text).map_err(InputError::Hex);
    }
    let engine = if text.iter().any(|b| matches!(b, b'-' | b'_')) {
        &BASE64_URL_SAFE
    } else {
        &BASE64_STANDARD
    };
    engine.decode(&text).map_err(InputError::Base64)
}

/// `bytes` without leading and trailing ASCII whitespace.
fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// The start of an untagged COSE_Sign1, as the NSM returns it.
    const RAW: &[u8] = &[0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0, 0x59, 0xfb, 0xff];

    #[test]
    fn raw_bytes_pass_through() {
        assert_eq!(detect(RAW), Encoding::Raw);
        assert_eq!(decode(RAW).unwrap(), RAW);
        let tagged = [0xd2, 0x84, 0x40];
        assert_eq!(decode(&tagged).unwrap(), tagged);
    }

    #[test]
    fn hex_in_either_case_with_whitespace() {
        for text in [
            "8444a10138 22a059fbff",
            "8444A1013822A059FBFF\n",
            "  84 44 a1 01\n38 22 a0 59\r\n\tfb ff\n\n",
        ] {
            assert_eq!(detect(text.as_bytes()), Encoding::Hex, "{text:?}");
            assert_eq!(decode(text.as_bytes()).unwrap(), RAW, "{text:?}");
        }
    }

    #[test]
    fn base64_in_both_alphabets_with_or_without_padding() {
        let standard = BASE64_STANDARD.encode(RAW);
        let url_safe = BASE64_URL_SAFE.encode(RAW);
        assert!(standard.contains('+') || standard.contains('/'));
        assert!(url_safe.contains('-') || url_safe.contains('_'));
        assert!(standard.ends_with('='));
        let wrapped = format!("\n  {}\n{}  \n", &standard[..8], &standard[8..]);
        for text in [
            standard.clone(),
            standard.trim_end_matches('=').to_owned(),
            url_safe.clone(),
            url_safe.trim_end_matches('=').to_owned(),
            wrapped,
        ] {
            assert_eq!(detect(text.as_bytes()), Encoding::Base64, "{text:?}");
            assert_eq!(decode(text.as_bytes()).unwrap(), RAW, "{text:?}");
        }
    }

    #[test]
    fn confidential_space_text_passes_through_trimmed() {
        for (text, evidence) in [
            (
                &b"eyJhbGciOiJSUzI1NiJ9.e30.c2ln\n"[..],
                &b"eyJhbGciOiJSUzI1NiJ9.e30.c2ln"[..],
            ),
            (b"  eyJ.a.b \r\n", b"eyJ.a.b"),
            (
                b"{\"v\":1,\"token\":\"eyJ\"}\n",
                b"{\"v\":1,\"token\":\"eyJ\"}",
            ),
        ] {
            assert_eq!(detect(text), Encoding::Text, "{text:?}");
            assert_eq!(decode(text).unwrap(), evidence, "{text:?}");
        }
        // A Nitro document's text forms never start so.
        assert_eq!(
            detect(BASE64_STANDARD.encode(RAW).as_bytes()),
            Encoding::Base64
        );
        assert_eq!(detect(hex::encode(RAW).as_bytes()), Encoding::Hex);
        // Whitespace alone is still empty.
        assert!(matches!(decode(b"  \n"), Err(InputError::Empty)));
    }

    #[test]
    fn garbage_is_refused() {
        assert!(matches!(decode(b""), Err(InputError::Empty)));
        assert!(matches!(decode(b" \n\t\r\n"), Err(InputError::Empty)));
        // Odd-length hex is not hex, and not base64 either.
        assert!(matches!(decode(b"84a"), Err(InputError::Base64(_))));
        assert!(matches!(
            decode(b"not a document!"),
            Err(InputError::Base64(_))
        ));
        assert!(matches!(decode(b"hEShAT=giAA"), Err(InputError::Base64(_))));
        // Both alphabets at once.
        assert!(matches!(decode(b"ab+c-d"), Err(InputError::Base64(_))));
        // Binary that is not COSE is left for the document parser to refuse.
        assert_eq!(detect(&[0xff, 0x00]), Encoding::Raw);
    }

    #[test]
    fn size_limit_at_exactly_max_and_one_more() {
        let max = usize::try_from(MAX_INPUT_LEN).unwrap();
        let mut at_limit = vec![0x84u8; max];
        assert_eq!(read(at_limit.as_slice()).unwrap().len(), max);
        at_limit.push(0x84);
        assert!(matches!(
            read(at_limit.as_slice()),
            Err(InputError::TooLarge { max: m }) if m == MAX_INPUT_LEN
        ));
        // Hex at the limit decodes to half as many bytes.
        let hex_at_limit = vec![b'a'; max];
        assert_eq!(read(hex_at_limit.as_slice()).unwrap().len(), max / 2);
    }

    #[test]
    fn files_over_the_limit_are_refused_before_reading() {
        let dir = std::env::temp_dir().join(format!("attest-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("doc");
        let max = usize::try_from(MAX_INPUT_LEN).unwrap();
        std::fs::write(&path, vec![0x84u8; max]).unwrap();
        assert_eq!(read_file(&path).unwrap().len(), max);
        std::fs::write(&path, vec![0x84u8; max + 1]).unwrap();
        let too_large = read_file(&path);
        assert!(matches!(too_large, Err(InputError::TooLarge { .. })));
        let missing = read_file(&dir.join("missing"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(missing, Err(InputError::Read(_))));
    }
}
