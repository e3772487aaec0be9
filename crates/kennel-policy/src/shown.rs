//! Text from the sandbox, made safe to print in kennel's own lines.
//!
//! File names, host names and git config values come from what the sandboxed command wrote.
//! Printed raw, an ESC or a BEL in one of them is a terminal command (an OSC 52 clipboard
//! write, a new window title, a line erased), and a CR or LF forges a `kennel:` line of its
//! own. Everything kennel prints that the sandbox could have chosen goes through [`shown`]:
//! control characters (C0, DEL, C1), the Unicode line and paragraph separators and the
//! bidirectional overrides (which reorder what the user reads) become visible escapes.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;

/// Whether `c` must not reach the terminal as it is.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
        || c == '\\'
}

/// `text` with every character that could act on a terminal written as an escape
/// (`\n`, `\t`, `\e`, `\u{9b}`, ...), and a backslash doubled so that an escape cannot be
/// forged. Borrowed when there was nothing to escape.
pub fn shown(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{1b}' => out.push_str("\\e"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`shown`] for a path; bytes that are not UTF-8 are written as `\xNN`.
pub fn shown_path(path: &Path) -> String {
    shown_bytes(path.as_os_str().as_encoded_bytes())
}

/// [`shown`] for bytes that may not be UTF-8 (a host name off the wire, a file name).
pub fn shown_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(&shown(chunk.valid()));
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        assert!(matches!(shown("~/.cache/pip/x.json"), Cow::Borrowed(_)));
        assert_eq!(shown("héllo wörld"), "héllo wörld");
    }

    #[test]
    fn terminal_commands_and_forged_lines_become_visible() {
        assert_eq!(
            shown("a\u{1b}]52;c;ZXZpbA==\u{7}b"),
            "a\\e]52;c;ZXZpbA==\\u{7}b"
        );
        assert_eq!(shown("x\nkennel: all clear\r"), "x\\nkennel: all clear\\r");
        assert_eq!(shown("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(shown("\u{202e}txt.exe"), "\\u{202e}txt.exe");
        assert_eq!(shown("\u{7f}"), "\\u{7f}");
    }

    #[test]
    fn an_escape_cannot_be_forged_with_a_backslash() {
        assert_eq!(shown("\\e"), "\\\\e");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_written_in_hex() {
        assert_eq!(shown_bytes(b"a\xffb\x1b"), "a\\xffb\\e");
        use std::os::unix::ffi::OsStrExt;
        let path = Path::new(std::ffi::OsStr::from_bytes(b"d\n\xfe"));
        assert_eq!(shown_path(path), "d\\n\\xfe");
    }
}
