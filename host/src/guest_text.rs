//! Guest text is data: anything a plugin writes that reaches the operator's terminal or log
//! (log messages and fields, failure text, its stderr) has control characters escaped, so a
//! plugin cannot forge log lines or send terminal escape sequences.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every control character (C0, DEL, C1) and every Unicode bidirectional
/// override or isolate escaped as `\n`, `\t`, `\r` or `\u{..}`; other text is unchanged.
///
/// ```
/// use apiary_host::escape_guest_text;
///
/// let forged = "done\n2026-11-28T00:00:00Z  INFO apiary: all secrets rotated\x1b[2J";
/// assert_eq!(
///     escape_guest_text(forged),
///     "done\\n2026-11-28T00:00:00Z  INFO apiary: all secrets rotated\\u{1b}[2J"
/// );
/// assert!(matches!(escape_guest_text("plain text"), std::borrow::Cow::Borrowed(_)));
/// ```
pub fn escape_guest_text(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    // Bidi overrides and isolates reorder what a reader sees ("Trojan Source").
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_are_escaped_and_text_kept() {
        assert_eq!(
            escape_guest_text("a\tb\r\nc\u{7f}\u{9b}31m"),
            "a\\tb\\r\\nc\\u{7f}\\u{9b}31m"
        );
        assert_eq!(escape_guest_text("abc\u{202e}cba"), "abc\\u{202e}cba");
        assert_eq!(escape_guest_text("zürich ✓ 東京"), "zürich ✓ 東京");
    }
}
