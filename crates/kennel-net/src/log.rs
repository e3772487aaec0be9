//! Every decision of the proxy: denials kept for the summary at exit, everything written
//! to `--net-log FILE` when asked.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// Why the proxy refused a connection, with the fix the user can apply.
#[derive(Debug, Clone, PartialEq, Eq)]
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

#[derive(Default)]
struct Inner {
    blocked: Vec<Blocked>,
    allowed: usize,
    file: Option<File>,
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

    pub fn blocked_count(&self) -> usize {
        self.with(|i| i.blocked.len())
    }

    /// The lines printed at exit: nothing when nothing was blocked; else a count, then one
    /// line per blocked host and port (most frequent first, at most `max`).
    pub fn summary(&self, max: usize) -> Vec<String> {
        self.with(|i| {
            if i.blocked.is_empty() {
                return Vec::new();
            }
            let mut groups: BTreeMap<String, usize> = BTreeMap::new();
            for b in &i.blocked {
                *groups.entry(b.line()).or_default() += 1;
            }
            let mut groups: Vec<(String, usize)> = groups.into_iter().collect();
            groups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let n = i.blocked.len();
            let mut lines = vec![format!(
                "blocked {n} connection{}:",
                if n == 1 { "" } else { "s" }
            )];
            for (line, count) in groups.iter().take(max) {
                let times = if *count > 1 {
                    format!(" ({count} times)")
                } else {
                    String::new()
                };
                lines.push(format!("  {line}{times}"));
            }
            if groups.len() > max {
                lines.push(format!(
                    "  and {} more (see --net-log FILE)",
                    groups.len() - max
                ));
            }
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
}
