//! A JSON array read up to a limit, for untrusted documents and stored state: items past
//! the limit are skipped (their syntax still checked) rather than kept, only counted, and
//! the caller refuses the whole with a typed error naming the count.

use crate::error::PolicyError;
use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::marker::PhantomData;

/// A JSON array read up to `MAX` items: items past it are skipped (their syntax still
/// checked) rather than kept, and only counted.
pub(crate) struct Bounded<T, const MAX: usize> {
    items: Vec<T>,
    count: usize,
}

impl<T, const MAX: usize> Bounded<T, MAX> {
    /// The items, or the error naming `what` and how many there were.
    pub(crate) fn within(self, what: &'static str) -> Result<Vec<T>, PolicyError> {
        self.or_count().map_err(|count| PolicyError::TooMany {
            what,
            count,
            max: MAX,
        })
    }

    /// The items, or how many there were when over `MAX`.
    pub(crate) fn or_count(self) -> Result<Vec<T>, usize> {
        if self.count > MAX {
            return Err(self.count);
        }
        Ok(self.items)
    }
}

impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for Bounded<T, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T, const MAX: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for V<T, MAX> {
            type Value = Bounded<T, MAX>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bounded<T, MAX>, A::Error> {
                let mut items = Vec::new();
                let mut count = 0usize;
                loop {
                    if count < MAX {
                        match seq.next_element::<T>()? {
                            Some(item) => items.push(item),
                            None => break,
                        }
                    } else if seq.next_element::<IgnoredAny>()?.is_none() {
                        break;
                    }
                    count = count.saturating_add(1);
                }
                Ok(Bounded { items, count })
            }
        }
        deserializer.deserialize_seq(V(PhantomData))
    }
}
