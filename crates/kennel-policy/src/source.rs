//! Configuration text with a name, and errors that point into it (file, line, column).

use std::fmt;
use std::ops::Range;
use std::sync::OnceLock;

use crate::shown::shown;

/// A configuration file's name (as the user should read it) and its text. The caller reads
/// the file; the policy crate only parses.
#[derive(Debug)]
pub struct SourceFile {
    /// How errors and `kennel explain` name the file, e.g. `~/.config/kennel/config.toml`.
    pub name: String,
    pub text: String,
    /// Where each line starts, found once: every rule records its line, and counting the
    /// newlines before each one made loading a profile quadratic in its length.
    line_starts: OnceLock<Vec<usize>>,
    /// The last column found: (line start, offset, characters from the line start).
    last_column: std::sync::Mutex<(usize, usize, usize)>,
}

impl Clone for SourceFile {
    fn clone(&self) -> Self {
        SourceFile::new(self.name.clone(), self.text.clone())
    }
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        SourceFile {
            name: name.into(),
            text: text.into(),
            line_starts: OnceLock::new(),
            last_column: std::sync::Mutex::new((0, 0, 0)),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let starts = self.line_starts.get_or_init(|| {
            std::iter::once(0)
                .chain(self.text.match_indices('\n').map(|(i, _)| i + 1))
                .collect()
        });
        // The last line start at or before the offset.
        let line = starts.partition_point(|&start| start <= offset);
        let line_start = starts.get(line - 1).copied().unwrap_or(0);
        // Counted on from the last offset asked for on the same line, when it was before
        // this one: rules are located in order, and counting from the line's start each
        // time was quadratic on a long line (thousands of paths in one array).
        let mut last = self
            .last_column
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (from, counted) = match *last {
            (start, at, n) if start == line_start && at <= offset => (at, n),
            _ => (line_start, 0),
        };
        let column = counted + self.text.get(from..offset).unwrap_or("").chars().count();
        *last = (line_start, offset, column);
        (line, column + 1)
    }

    pub fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ConfigError {
        let (line, column) = span.map_or((1, 1), |s| self.line_col(s.start));
        ConfigError {
            file: self.name.clone(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// One precise configuration error: `FILE:LINE:COLUMN: what is wrong and what to do`
/// (`command line: ...` for a flag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    /// Escaped for the terminal: a repository's `.kennel.toml` is anyone's text, and its keys
    /// and values reach the message (`unknown field ...`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (file, message) = (shown(&self.file), shown(&self.message));
        // Line 0: a source without lines (the command line).
        if self.line == 0 {
            return write!(f, "{file}: {message}");
        }
        write!(f, "{file}:{}:{}: {message}", self.line, self.column)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_from_a_file_are_escaped_for_the_terminal() {
        let s = SourceFile::new("repo/.kennel.toml", "\"\u{1b}]0;x\u{7}\" = 1\n");
        let e = s.error(
            Some(0..1),
            "unknown field `\u{1b}]0;x\u{7}`\nkennel: forged",
        );
        assert_eq!(
            e.to_string(),
            "repo/.kennel.toml:1:1: unknown field `\\e]0;x\\u{7}`\\nkennel: forged"
        );
    }

    #[test]
    fn line_and_column_are_one_based() {
        let s = SourceFile::new("f", "a = 1\nbb = 2\n");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(6), (2, 1));
        assert_eq!(s.line_col(8), (2, 3));
        // On a newline: still the line it ends; past the end: the end.
        assert_eq!(s.line_col(5), (1, 6));
        assert_eq!(s.line_col(13), (3, 1));
        assert_eq!(s.line_col(99), (3, 1));
        // Columns count characters, not bytes.
        let s = SourceFile::new("f", "x\né = [1]\n");
        assert_eq!(s.line_col(6), (2, 4));
    }
}

#[cfg(test)]
mod line_col_tests {
    use super::SourceFile;

    /// Columns are characters, whatever order offsets are asked in (they are counted on
    /// from the last one on the same line).
    #[test]
    fn columns_are_characters_in_any_order() {
        let src = SourceFile::new("f", "ab\nxé[1, 2, \"ü\", 3]\nz");
        let at = |needle: &str| src.text.find(needle).unwrap_or(0);
        assert_eq!(src.line_col(at("3")), (2, 15));
        assert_eq!(src.line_col(at("1")), (2, 4));
        assert_eq!(src.line_col(at("2")), (2, 7));
        assert_eq!(src.line_col(at("3")), (2, 15));
        assert_eq!(src.line_col(at("z")), (3, 1));
        assert_eq!(src.line_col(at("b")), (1, 2));
        assert_eq!(src.clone().line_col(at("3")), (2, 15));
    }
}
