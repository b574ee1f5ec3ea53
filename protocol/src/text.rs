//! Text that came from another party, made safe to relay and to print.

/// A peer's text with control characters replaced, so it cannot break a log line or a
/// terminal; printable text passes through unchanged, so relaying it does not grow it.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_replaced_and_the_rest_kept() {
        assert_eq!(printable("a\\b\nc\x1b[31m"), "a\\b\u{fffd}c\u{fffd}[31m");
        assert_eq!(printable("é ok"), "é ok");
        let once = printable("x\u{7f}\u{9b}y");
        assert_eq!(printable(&once), once);
    }
}
