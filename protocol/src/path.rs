//! Derivation paths: which child of a threshold key signs. Only non-hardened
//! BIP32/SLIP-10 derivation is possible for a key no one holds, so a path is a list of
//! indices below 2^31, at most [`MAX_DERIVATION_DEPTH`] deep, with one text spelling.

use std::fmt;

/// Deepest derivation path accepted.
pub const MAX_DERIVATION_DEPTH: usize = 32;
/// The first hardened index (2^31).
const HARDENED: u32 = 0x8000_0000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    #[error("derivation index {0} is hardened; only non-hardened derivation is possible")]
    HardenedIndex(u32),
    #[error("derivation path of depth {0}, at most {max} is allowed", max = MAX_DERIVATION_DEPTH)]
    TooDeep(usize),
    #[error("derivation path {text:?}: {reason}")]
    Syntax { text: String, reason: &'static str },
}

/// A non-hardened BIP32/SLIP-10 derivation path; empty is the master key.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DerivationPath(Vec<u32>);

impl DerivationPath {
    pub fn new(indices: impl IntoIterator<Item = u32>) -> Result<Self, PathError> {
        let indices: Vec<u32> = indices.into_iter().take(MAX_DERIVATION_DEPTH + 1).collect();
        if indices.len() > MAX_DERIVATION_DEPTH {
            return Err(PathError::TooDeep(indices.len()));
        }
        if let Some(hardened) = indices.iter().find(|i| **i >= HARDENED) {
            return Err(PathError::HardenedIndex(*hardened));
        }
        Ok(Self(indices))
    }

    /// Parses the one spelling of a path that [`Display`](fmt::Display) writes: `m`, or
    /// `m` followed by `/index` components, each index in decimal without sign, leading
    /// zeros (`0` itself is fine), or hardened marker, below 2^31, and at most
    /// [`MAX_DERIVATION_DEPTH`] of them. Aliases such as `m/+1`, `m/007` or `m/1/` are
    /// refused, so that one path has exactly one text, whatever compares or logs it.
    pub fn parse(text: &str) -> Result<Self, PathError> {
        let syntax = |reason| PathError::Syntax {
            text: text.chars().take(64).collect(),
            reason,
        };
        // Longest canonical text: "m" and MAX_DERIVATION_DEPTH times "/2147483647".
        if text.len() > 1 + MAX_DERIVATION_DEPTH * 11 {
            return Err(PathError::TooDeep(
                text.split('/').count().saturating_sub(1),
            ));
        }
        let mut parts = text.split('/');
        if parts.next() != Some("m") {
            return Err(syntax("must start with m"));
        }
        let mut indices = Vec::new();
        for part in parts {
            if indices.len() == MAX_DERIVATION_DEPTH {
                return Err(PathError::TooDeep(MAX_DERIVATION_DEPTH + 1));
            }
            indices.push(parse_index(part).map_err(syntax)?);
        }
        Self::new(indices)
    }

    pub fn master() -> Self {
        Self::default()
    }

    pub fn is_master(&self) -> bool {
        self.0.is_empty()
    }

    pub fn indices(&self) -> &[u32] {
        &self.0
    }
}

impl fmt::Display for DerivationPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("m")?;
        self.0.iter().try_for_each(|i| write!(f, "/{i}"))
    }
}

impl fmt::Debug for DerivationPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DerivationPath({self})")
    }
}

/// One canonical decimal index: digits only, no leading zero unless it is `0`, not
/// hardened.
fn parse_index(part: &str) -> Result<u32, &'static str> {
    if part.is_empty() {
        return Err("empty component");
    }
    if part.ends_with(['\'', 'h', 'H']) {
        return Err("hardened indices cannot be derived");
    }
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err("an index is decimal digits only");
    }
    if part.len() > 1 && part.starts_with('0') {
        return Err("an index has no leading zeros");
    }
    let index: u32 = part.parse().map_err(|_| "index out of range")?;
    if index >= HARDENED {
        return Err("index is in the hardened range");
    }
    Ok(index)
}

impl std::str::FromStr for DerivationPath {
    type Err = PathError;

    fn from_str(text: &str) -> Result<Self, PathError> {
        Self::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_non_hardened_and_bounded() {
        assert_eq!(
            DerivationPath::new([0, 1, 0x7fff_ffff])
                .unwrap()
                .to_string(),
            "m/0/1/2147483647"
        );
        assert_eq!(
            DerivationPath::new([1, 0x8000_0000]),
            Err(PathError::HardenedIndex(0x8000_0000))
        );
        assert!(DerivationPath::new(vec![1; MAX_DERIVATION_DEPTH]).is_ok());
        assert_eq!(
            DerivationPath::new(vec![1; MAX_DERIVATION_DEPTH + 1]),
            Err(PathError::TooDeep(MAX_DERIVATION_DEPTH + 1))
        );
        assert!(DerivationPath::master().is_master());
    }

    #[test]
    fn paths_have_one_spelling() {
        let parse = DerivationPath::parse;
        assert_eq!(parse("m").unwrap(), DerivationPath::master());
        assert_eq!(parse("m/0/1").unwrap().indices(), &[0, 1]);
        assert_eq!(parse("m/10/0").unwrap().indices(), &[10, 0]);
        // The largest non-hardened index, and one past it.
        assert_eq!(parse("m/2147483647").unwrap().indices(), &[0x7fff_ffff]);
        assert!(matches!(
            parse("m/2147483648"),
            Err(PathError::Syntax { .. })
        ));
        assert!(matches!(
            parse("m/4294967296"),
            Err(PathError::Syntax { .. })
        ));
        // Every canonical text parses back to itself.
        for text in ["m", "m/0", "m/44/0/7", "m/2147483647/0"] {
            assert_eq!(parse(text).unwrap().to_string(), text);
        }
        for alias in [
            "", "M", "m/", "/", "m//1", "m/1/", "m/+1", "m/-1", "m/007", "m/00", "m/01", "m/ 1",
            "m/1 ", " m/1", "m/1'", "m/1h", "m/1H", "m/0x1", "m/1e3", "m/１", "0/1", "m/1/m",
        ] {
            assert!(
                matches!(parse(alias), Err(PathError::Syntax { .. })),
                "{alias:?} accepted"
            );
        }
        // Depth: exactly the limit, and one past it.
        let deepest = format!("m{}", "/2147483647".repeat(MAX_DERIVATION_DEPTH));
        assert_eq!(
            parse(&deepest).unwrap().indices().len(),
            MAX_DERIVATION_DEPTH
        );
        let deeper = format!("m{}", "/1".repeat(MAX_DERIVATION_DEPTH + 1));
        assert_eq!(
            parse(&deeper),
            Err(PathError::TooDeep(MAX_DERIVATION_DEPTH + 1))
        );
        let too_long = format!("m{}", "/2147483647".repeat(MAX_DERIVATION_DEPTH + 1));
        assert!(matches!(parse(&too_long), Err(PathError::TooDeep(_))));
    }
}
