//! Every decision of the proxy: denials kept for the summary at exit, everything written
//! to `--net-log FILE` when asked.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
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
                let _ = writeln!(f, "{} allowed {} ({via})", now(), host_port(host, port));
            }
        });
    }

    /// A connection the policy allowed but that could not be made.
    pub fn failed(&self, host: &str, port: u16, why: &str) {
        self.with(|i| {
            if let Some(f) = &mut i.file {
                let _ = writeln!(f, "{} failed {}: {why}", now(), host_port(host, port));
            }
        });
    }

    pub fn blocked(&self, b: Blocked) {
        self.with(|i| {
            if let Some(f) = &mut i.file {
                let _ = writeln!(f, "{} blocked {}", now(), b.line());
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
