//! Quoting for the three readers of kennel's `systemd-run` command line: the shell (for
//! `--dry-run`), `systemd-run`'s property parser, and the manager's `$VAR` expansion of
//! command lines.

use std::ffi::OsStr;
use std::path::Path;

use crate::error::SystemdError;

/// A path as UTF-8: systemd passes it over D-Bus, whose strings must be UTF-8.
pub(crate) fn utf8<'a>(what: &'static str, path: &'a Path) -> Result<&'a str, SystemdError> {
    path.to_str().ok_or_else(|| SystemdError::NotUtf8 {
        what,
        value: path.to_string_lossy().into_owned(),
    })
}

pub(crate) fn utf8_os<'a>(what: &'static str, s: &'a OsStr) -> Result<&'a str, SystemdError> {
    s.to_str().ok_or_else(|| SystemdError::NotUtf8 {
        what,
        value: s.to_string_lossy().into_owned(),
    })
}

/// One item of a space-separated list property (`BindPaths=`, `BindReadOnlyPaths=`,
/// `InaccessiblePaths=`).
///
/// `systemd-run` splits these values at whitespace (and `BindPaths=` also at `:`,
/// between source and destination), honouring quotes; outside quotes a backslash makes the
/// next character literal. Escaping every separator, quote and backslash keeps any path in
/// one piece (systemd.exec(5): "Backslash escapes are interpreted, so `\:` may be used to
/// embed colons").
pub fn list_item(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c.is_whitespace() || matches!(c, ':' | '\\' | '"' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One `PATH:OPTIONS` item of `TemporaryFileSystem=`. `systemd-run` reads it twice: first
/// the list is split at whitespace (quotes and backslashes honoured), then each word at its
/// first unescaped `:`. A colon in the path therefore needs two levels of escaping.
pub fn tmpfs_item(path: &str, options: &str) -> String {
    let mut inner = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, ':' | '\\') {
            inner.push('\\');
        }
        inner.push(c);
    }
    if options.is_empty() {
        list_item(&inner)
    } else {
        format!("{}:{options}", list_item(&inner))
    }
}

/// An argument of the unit's command line. The manager expands `$NAME` and `${NAME}` in
/// `ExecStart=` from the unit's environment (systemd-run(1) `--expand-environment=`, which
/// older versions do not have); `$$` is its escape for a literal `$`.
pub fn exec_arg(arg: &str) -> String {
    arg.replace('$', "$$")
}

/// A word for a POSIX shell: left alone when it is plainly safe, else single-quoted.
pub fn shell_word(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r#"'\''"#))
    }
}

/// A unit name component: systemd allows `[A-Za-z0-9:_.\-]`; anything else becomes `_`.
pub fn unit_component(name: &str, max: usize) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(max)
        .collect();
    if cleaned.is_empty() {
        "_".into()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_items_keep_spaces_and_colons_in_one_piece() {
        assert_eq!(list_item("/home/u/my proj"), r"/home/u/my\ proj");
        assert_eq!(list_item("/a:b"), r"/a\:b");
        assert_eq!(list_item(r#"/q"'\"#), r#"/q\"\'\\"#);
        assert_eq!(list_item("/tab\there"), "/tab\\\there");
        assert_eq!(list_item("/plain/path"), "/plain/path");
    }

    #[test]
    fn tmpfs_items_escape_colons_twice() {
        assert_eq!(tmpfs_item("/run", "ro"), "/run:ro");
        assert_eq!(tmpfs_item("/a b", "mode=0700"), r"/a\ b:mode=0700");
        // Word split removes one level (`\\` -> `\`, `\:` -> `:`), the colon split the other.
        assert_eq!(tmpfs_item("/a:b", "ro"), r"/a\\\:b:ro");
    }

    #[test]
    fn dollars_are_escaped_for_the_manager() {
        assert_eq!(exec_arg("kill -TERM $$"), "kill -TERM $$$$");
        assert_eq!(exec_arg("${HOME}"), "$${HOME}");
        assert_eq!(exec_arg("plain"), "plain");
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("--wait"), "--wait");
        assert_eq!(shell_word("BindPaths=/a/b"), "BindPaths=/a/b");
        assert_eq!(shell_word(r"/my\ proj"), r"'/my\ proj'");
        assert_eq!(shell_word("it's"), r#"'it'\''s'"#);
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("$HOME"), "'$HOME'");
    }

    #[test]
    fn unit_components_are_valid_unit_name_characters() {
        assert_eq!(unit_component("my proj/ä", 64), "my_proj__");
        assert_eq!(unit_component("", 64), "_");
        assert_eq!(unit_component("abcdef", 3), "abc");
    }
}
