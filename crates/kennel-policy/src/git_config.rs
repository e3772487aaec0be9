//! A reader of git's config format, as strict as git where it matters to kennel: where git
//! sees a setting (`core.fsmonitor`), kennel must see it too, or a sandbox could write a
//! config that runs a command at the user's next `git status` and looks harmless to kennel.
//!
//! What git accepts and a line-by-line reader gets wrong: a setting on the same line as its
//! section header (`[core] fsmonitor = x`), a value continued on the next line by a trailing
//! backslash (the next line, even `[alias]`, is then part of the value), comments after a
//! value, quotes and escapes, a byte order mark. Where git would refuse the file (a bad
//! line), reading stops: git runs nothing from a config it refuses. Read from git's
//! documentation (git-config(1), "CONFIGURATION FILE").

/// One `section[.subsection].key = value` of a config text. Section and key are lowercased,
/// as git compares them; the subsection is kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub section: String,
    pub subsection: Option<String>,
    pub key: String,
    pub value: String,
}

impl Entry {
    /// `section.subsection.key`, as `git config --list` prints it.
    pub fn name(&self) -> String {
        match &self.subsection {
            Some(sub) => format!("{}.{sub}.{}", self.section, self.key),
            None => format!("{}.{}", self.section, self.key),
        }
    }
}

/// Every setting of `text`, in order, up to the first line git would refuse.
pub fn entries(text: &str) -> Vec<Entry> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut r = Reader {
        chars: text.chars().collect(),
        pos: 0,
    };
    let mut out = Vec::new();
    let mut section = String::new();
    let mut subsection: Option<String> = None;
    loop {
        r.skip_blank();
        let Some(c) = r.peek() else { break };
        match c {
            '\n' => r.pos += 1,
            '#' | ';' => r.skip_line(),
            '[' => {
                r.pos += 1;
                match r.header() {
                    Some((s, sub)) => {
                        section = s;
                        subsection = sub;
                    }
                    None => break,
                }
            }
            c if c.is_ascii_alphabetic() => {
                let key = r.key();
                r.skip_blank();
                let value = match r.peek() {
                    Some('=') => {
                        r.pos += 1;
                        match r.value() {
                            Some(v) => v,
                            None => break,
                        }
                    }
                    None | Some('\n' | '#' | ';') => {
                        r.skip_line();
                        "true".to_string()
                    }
                    Some(_) => break,
                };
                out.push(Entry {
                    section: section.clone(),
                    subsection: subsection.clone(),
                    key,
                    value,
                });
            }
            _ => break,
        }
    }
    out
}

struct Reader {
    chars: Vec<char>,
    pos: usize,
}

impl Reader {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// Spaces and tabs (and a carriage return, which git also takes as space).
    fn skip_blank(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\r')) {
            self.pos += 1;
        }
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.peek() {
            self.pos += 1;
            if c == '\n' {
                break;
            }
        }
    }

    /// After `[`: `name]`, `name "sub"]`, or the old `name.sub]`; what follows on the line
    /// is read as the next setting.
    fn header(&mut self) -> Option<(String, Option<String>)> {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                name.push(c.to_ascii_lowercase());
                self.pos += 1;
            } else {
                break;
            }
        }
        match self.peek()? {
            ']' => {
                self.pos += 1;
                // The old form `[section.sub]`.
                Some(match name.split_once('.') {
                    Some((s, sub)) => (s.to_string(), Some(sub.to_string())),
                    None => (name, None),
                })
            }
            ' ' | '\t' => {
                self.skip_blank();
                if self.peek()? != '"' {
                    return None;
                }
                self.pos += 1;
                let mut sub = String::new();
                loop {
                    match self.peek()? {
                        '\n' => return None,
                        '"' => {
                            self.pos += 1;
                            break;
                        }
                        '\\' => {
                            self.pos += 1;
                            let c = self.peek()?;
                            if c == '\n' {
                                return None;
                            }
                            sub.push(c);
                            self.pos += 1;
                        }
                        c => {
                            sub.push(c);
                            self.pos += 1;
                        }
                    }
                }
                (self.peek()? == ']').then_some(())?;
                self.pos += 1;
                Some((name, Some(sub)))
            }
            _ => None,
        }
    }

    fn key(&mut self) -> String {
        let mut key = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '-' {
                key.push(c.to_ascii_lowercase());
                self.pos += 1;
            } else {
                break;
            }
        }
        key
    }

    /// After `=`: to the end of the line, a comment outside quotes, or on across a newline
    /// that a backslash escapes. `None` where git would refuse the line.
    fn value(&mut self) -> Option<String> {
        let mut value = String::new();
        let mut quoted = false;
        // Spaces at the end are dropped, unless quoted: `kept` is the length to keep.
        let mut kept = 0;
        self.skip_blank();
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                '\n' if quoted => return None,
                '\n' => break,
                '"' => {
                    quoted = !quoted;
                    kept = value.len();
                }
                '#' | ';' if !quoted => {
                    self.skip_line();
                    break;
                }
                '\\' => {
                    let next = self.peek()?;
                    self.pos += 1;
                    match next {
                        '\n' => {}
                        'n' => value.push('\n'),
                        't' => value.push('\t'),
                        'b' => value.push('\u{8}'),
                        '\\' | '"' => value.push(next),
                        _ => return None,
                    }
                    kept = value.len();
                }
                ' ' | '\t' | '\r' if !quoted => {
                    if !value.is_empty() {
                        value.push(c);
                    }
                }
                c => {
                    value.push(c);
                    kept = value.len();
                }
            }
        }
        if quoted {
            return None;
        }
        value.truncate(kept);
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<(String, String)> {
        entries(text)
            .into_iter()
            .map(|e| (e.name(), e.value))
            .collect()
    }

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn a_setting_on_the_header_line_is_read() {
        assert_eq!(
            names("[core] fsmonitor = ./x\n"),
            vec![pair("core.fsmonitor", "./x")]
        );
        assert_eq!(
            names("[a] [core]fsMonitor=./x"),
            vec![pair("core.fsmonitor", "./x")]
        );
    }

    #[test]
    fn a_continued_value_swallows_the_next_line() {
        // git reads `[alias]` as the rest of core.a's value: fsmonitor is under [core].
        assert_eq!(
            names("[core]\n\ta = b \\\n[alias]\n\tfsmonitor = ./evil\n"),
            vec![
                pair("core.a", "b [alias]"),
                pair("core.fsmonitor", "./evil")
            ]
        );
    }

    #[test]
    fn comments_quotes_and_escapes() {
        assert_eq!(
            names("\u{feff}[filter \"a\\\"b\"] ; c\n\tclean = \"x # y\" # z\n\tsmudge\n"),
            vec![
                pair("filter.a\"b.clean", "x # y"),
                pair("filter.a\"b.smudge", "true")
            ]
        );
        assert_eq!(
            names("[gpg.ssh]\n program = ./s\n"),
            vec![pair("gpg.ssh.program", "./s")]
        );
    }

    #[test]
    fn reading_stops_where_git_would_refuse() {
        assert_eq!(
            names("[core]\n\ta = \"open\n\tfsmonitor = x\n"),
            Vec::<(String, String)>::new()
        );
        assert_eq!(
            names("[core\n\tfsmonitor = x\n"),
            Vec::<(String, String)>::new()
        );
    }

    /// The same texts read by git itself, where it is installed: every setting git sees,
    /// this reader sees too (with the same value).
    #[test]
    fn agrees_with_git() {
        let texts = [
            "[core] fsmonitor = ./x\n",
            "[core]\n\ta = b \\\n[alias]\n\tfsmonitor = ./evil\n",
            "\u{feff}[filter \"a\\\"b\"] ; c\n\tclean = \"x # y\" # z\n\tsmudge\n",
            "[gpg.SSH]\n program = ./s\n[Core]HooksPath=\"a b\" \n",
            "[alias]\r\n\tx = \"!echo \\\"hi\\\"\"\r\n\ty = a\\tb ;c\r\n",
            "[include]\n\tpath = ../x\n[includeIf \"gitdir:~/w/\"]\n\tpath = y\n",
        ];
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        for (i, text) in texts.iter().enumerate() {
            let file = dir.path().join(format!("c{i}"));
            std::fs::write(&file, text).unwrap_or_else(|e| unreachable!("{e}"));
            let Ok(out) = std::process::Command::new("git")
                .args(["config", "--no-includes", "--file"])
                .arg(&file)
                .args(["--list", "-z"])
                .output()
            else {
                eprintln!("SKIP: no git");
                return;
            };
            assert!(out.status.success(), "git refused text {i}: {text:?}");
            let from_git: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
                .split('\0')
                .filter(|r| !r.is_empty())
                .map(|r| match r.split_once('\n') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (r.to_string(), "true".to_string()),
                })
                .collect();
            assert_eq!(names(text), from_git, "text {i}: {text:?}");
        }
    }
}
