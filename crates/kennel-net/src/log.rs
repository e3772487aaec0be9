//! Every decision of the proxy: denials kept for the summary at exit, everything written
//! to `--net-log FILE` when asked.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// Why the proxy refused a connection, with the fix the user can apply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Blocked {
    pub host: String,
    pub port: u16,
    pub reason: String,
    /// What to add to the configuration, when the fix is a line of it.
    pub fix: Option<String>,
}

impl Blocked {
    /// One line: `host:port — reason; fix`.
    pub fn line(&self) -> String {
        let mut s = format!("{} — {}", host_port(&self.host, self.port), self.reason);
        if let Some(fix) = &self.fix {
            s.push_str("; ");
            s.push_str(fix);
        }
        s
    }
}

pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Opens `--net-log FILE` to append to: created 0600 if missing, never through a symbolic
/// link, and only a regular file with no other name (the path may be in a folder that an
/// earlier sandbox wrote to, which may have left a link to `~/.bashrc` or a FIFO there).
pub fn open_file(path: &Path) -> io::Result<File> {
    use nix::fcntl::OFlag;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(code) if code == nix::errno::Errno::ELOOP as i32 => io::Error::other(
                "it is a symbolic link, which kennel does not follow for the network log: \
                 remove it or name another file",
            ),
            // A FIFO (or device) that nobody reads: O_NONBLOCK made the open fail.
            Some(code) if code == nix::errno::Errno::ENXIO as i32 => {
                io::Error::other("it is not a regular file: name a regular file (or a new one)")
            }
            _ => e,
        })?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other(
            "it is not a regular file: name a regular file (or a new one)",
        ));
    }
    if meta.nlink() > 1 {
        return Err(io::Error::other(
            "it has other names (hard links), which kennel would append to as well: \
             name another file",
        ));
    }
    Ok(file)
}

/// A field of a log line that came from the sandbox (a host name, a CONNECT target): no
/// character of it can end the line or the field, nor act on a terminal showing the log.
fn field(text: &str) -> String {
    kennel_policy::shown(text).replace(' ', "\\u{20}")
}

/// The most refusals told apart in the summary: the sandbox chooses the names, as many as it
/// likes (10,000 refusals with long names once took kennel to 1.3 GB, issue 17 item 8).
pub const MAX_KEPT: usize = 1_000;
/// The most bytes of a host name, a reason or a fix kept for the summary (a DNS name has at
/// most 253; a reason quotes a TLS server name).
pub const MAX_TEXT: usize = 300;

/// `text` cut to at most [`MAX_TEXT`] bytes, at a character boundary, marked when cut.
fn bounded(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        return text.to_string();
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

/// Refusals counted per distinct one, in bounded memory: at most [`MAX_KEPT`] kept apart,
/// each with bounded text; those beyond are only counted.
#[derive(Default)]
struct Refusals {
    counts: HashMap<Blocked, usize>,
    total: usize,
    /// Refusals not kept apart (beyond [`MAX_KEPT`] distinct ones).
    others: usize,
}

impl Refusals {
    fn push(&mut self, b: Blocked) {
        self.total += 1;
        let b = Blocked {
            host: bounded(&b.host),
            port: b.port,
            reason: bounded(&b.reason),
            fix: b.fix.as_deref().map(bounded),
        };
        if let Some(n) = self.counts.get_mut(&b) {
            *n += 1;
        } else if self.counts.len() < MAX_KEPT {
            self.counts.insert(b, 1);
        } else {
            self.others += 1;
        }
    }

    fn len(&self) -> usize {
        self.total
    }

    fn is_empty(&self) -> bool {
        self.total == 0
    }
}

#[derive(Default)]
struct Inner {
    blocked: Refusals,
    /// Connections the policy allowed but that could not be made (no such name, refused,
    /// TLS name mismatch): the agent got a 502, the user is told why at exit.
    failed: Refusals,
    allowed: usize,
    /// Connections closed unserved: more than the proxy serves at once were open.
    over_limit: usize,
    /// That limit, for the summary.
    limit: usize,
    file: Option<File>,
}

/// The summary's lines for `refusals`: `{verb} N {what}`, then one line per distinct one,
/// most frequent first, at most `max`. Escaped: these lines reach the user's terminal.
fn grouped(refusals: &Refusals, verb: &str, what: &str, max: usize) -> Vec<String> {
    if refusals.is_empty() {
        return Vec::new();
    }
    let mut groups: Vec<(String, usize)> = refusals
        .counts
        .iter()
        .map(|(b, n)| (kennel_policy::shown(&b.line()).into_owned(), *n))
        .collect();
    groups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let n = refusals.len();
    let mut lines = vec![format!(
        "{verb} {n} {}",
        what.replace("{}", if n == 1 { "" } else { "s" })
    )];
    for (line, count) in groups.iter().take(max) {
        let times = if *count > 1 {
            format!(" ({count} times)")
        } else {
            String::new()
        };
        lines.push(format!("  {line}{times}"));
    }
    let hidden: usize = groups.iter().skip(max).map(|(_, n)| n).sum::<usize>() + refusals.others;
    if hidden > 0 {
        lines.push(format!("  and {hidden} more (see --net-log FILE)"));
    }
    lines
}

/// Shared by the proxy's threads.
#[derive(Clone, Default)]
pub struct NetLog {
    inner: Arc<Mutex<Inner>>,
}

fn now() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    format!("{t:.3}")
}

impl NetLog {
    /// A log that also writes every line to `file`.
    pub fn with_file(file: Option<File>) -> NetLog {
        NetLog {
            inner: Arc::new(Mutex::new(Inner {
                file,
                ..Inner::default()
            })),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }

    pub fn allowed(&self, host: &str, port: u16, via: &str) {
        self.with(|i| {
            i.allowed += 1;
            if let Some(f) = &mut i.file {
                let _ = writeln!(
                    f,
                    "{} allowed {} ({})",
                    now(),
                    field(&host_port(host, port)),
                    field(via)
                );
            }
        });
    }

    /// A connection the policy allowed but that could not be made.
    pub fn failed(&self, host: &str, port: u16, why: &str) {
        self.with(|i| {
            if let Some(f) = &mut i.file {
                let _ = writeln!(
                    f,
                    "{} failed {}: {}",
                    now(),
                    field(&host_port(host, port)),
                    kennel_policy::shown(why)
                );
            }
            i.failed.push(Blocked {
                host: host.to_string(),
                port,
                reason: why.to_string(),
                fix: None,
            });
        });
    }

    pub fn blocked(&self, b: Blocked) {
        self.with(|i| {
            if let Some(f) = &mut i.file {
                let mut line = format!(
                    "{} blocked {} — {}",
                    now(),
                    field(&host_port(&b.host, b.port)),
                    kennel_policy::shown(&b.reason)
                );
                if let Some(fix) = &b.fix {
                    line.push_str("; ");
                    line.push_str(&kennel_policy::shown(fix));
                }
                let _ = writeln!(f, "{line}");
            }
            i.blocked.push(b);
        });
    }

    /// A connection closed unserved because `limit` were open already.
    pub fn over_limit(&self, limit: usize) {
        self.with(|i| {
            i.over_limit += 1;
            i.limit = limit;
        });
    }

    pub fn blocked_count(&self) -> usize {
        self.with(|i| i.blocked.len())
    }

    /// The lines printed at exit: nothing when nothing was blocked; else a count, then one
    /// line per blocked host and port (most frequent first, at most `max`). What came from
    /// the sandbox (host names, TLS server names) is escaped: these lines reach the user's
    /// terminal.
    pub fn summary(&self, max: usize) -> Vec<String> {
        self.with(|i| {
            let mut lines = Vec::new();
            if i.over_limit > 0 {
                lines.push(format!(
                    "closed {} connection{} unserved: the sandbox had {} open through the \
                     proxy already",
                    i.over_limit,
                    if i.over_limit == 1 { "" } else { "s" },
                    i.limit
                ));
            }
            lines.extend(grouped(
                &i.failed,
                "failed",
                "connection{} to allowed hosts (the command got 502 Bad Gateway):",
                max,
            ));
            lines.extend(grouped(&i.blocked, "blocked", "connection{}:", max));
            lines
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_line_cannot_be_split_or_forged_by_a_host_name() {
        let dir = std::env::temp_dir().join(format!("kennel-net-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("log");
        let log = NetLog::with_file(Some(open_file(&path).unwrap()));
        log.blocked(Blocked {
            host: "evil\necho pwned >> ~/.bashrc\tx y".into(),
            port: 443,
            reason: "not in the allow-list".into(),
            fix: None,
        });
        log.allowed("a\rb", 443, "connect\n1");
        log.failed("c d", 443, "refused\nforged");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.contains("evil\\necho\\u{20}pwned"), "{text}");
        assert!(!text.contains('\t') && !text.contains('\r'), "{text}");
        // Links, FIFOs and files with other names are refused.
        let target = dir.join("bashrc");
        std::fs::write(&target, "").unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(open_file(&link).is_err());
        let hard = dir.join("hard");
        std::fs::hard_link(&target, &hard).unwrap();
        assert!(open_file(&hard).is_err());
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(open_file(&fifo).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn summary_groups_and_counts() {
        let log = NetLog::default();
        assert!(log.summary(5).is_empty());
        for _ in 0..2 {
            log.blocked(Blocked {
                host: "example.org".into(),
                port: 443,
                reason: "not in the allow-list".into(),
                fix: Some("add it with `[network] allow = [\"example.org\"]`".into()),
            });
        }
        let s = log.summary(5);
        assert_eq!(s[0], "blocked 2 connections:");
        assert!(s[1].contains("example.org:443 — not in the allow-list; add it with"));
        assert!(s[1].ends_with("(2 times)"));
    }

    fn refusal(host: &str) -> Blocked {
        Blocked {
            host: host.into(),
            port: 443,
            reason: "not in the allow-list".into(),
            fix: Some(format!("add it with `[network] allow = [\"{host}\"]`")),
        }
    }

    /// What the sandbox sends is only counted past the first MAX_KEPT distinct refusals,
    /// and no name is kept longer than MAX_TEXT bytes (issue 17, item 8).
    #[test]
    fn bookkeeping_is_bounded_whatever_the_sandbox_sends() {
        let log = NetLog::default();
        let long = "x".repeat(100_000);
        log.blocked(refusal("0.example"));
        log.blocked(refusal("0.example"));
        for i in 0..(MAX_KEPT + 500) {
            log.blocked(refusal(&format!("{i}.{long}")));
        }
        log.with(|i| {
            assert_eq!(i.blocked.counts.len(), MAX_KEPT);
            assert_eq!(i.blocked.others, 501);
            assert!(i.blocked.counts.keys().all(|b| b.host.len() < MAX_TEXT + 40
                && b.fix.as_ref().is_some_and(|f| f.len() < MAX_TEXT + 40)));
        });
        assert_eq!(log.blocked_count(), MAX_KEPT + 502);
        let s = log.summary(8);
        assert_eq!(s[0], format!("blocked {} connections:", MAX_KEPT + 502));
        assert_eq!(s.len(), 10, "{s:?}");
        assert!(
            s[1].contains("0.example:443") && s[1].ends_with("(2 times)"),
            "{s:?}"
        );
        // The 992 kept but not shown, and the 501 only counted.
        assert_eq!(s[9], "  and 1493 more (see --net-log FILE)");
        assert!(s.iter().all(|l| l.len() < 2 * MAX_TEXT + 200), "{s:?}");
    }

    /// Host names come from the sandbox: the summary reaches the terminal with each control
    /// character escaped (issue 17, item 6).
    #[test]
    fn summary_escapes_control_characters() {
        let log = NetLog::default();
        log.blocked(refusal("evil\u{1b}]52;c;cHduZWQ=\u{7}\nkennel: forged\r"));
        let s = log.summary(8);
        assert_eq!(s.len(), 2);
        assert!(
            s.iter().all(|l| !l.chars().any(|c| c.is_control())),
            "{s:?}"
        );
        assert!(
            s[1].contains("evil\\e]52;c;cHduZWQ=\\u{7}\\nkennel: forged\\r"),
            "{s:?}"
        );
    }
}
