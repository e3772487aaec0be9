//! The network policy: `on`, `off`, or an allow-list of hosts decided by a proxy outside the
//! sandbox, plus chosen host loopback ports in any mode (issue 8).
//!
//! Precedence of the host rules, written on [`NetRules::decide`]: the deny list first, then
//! the allow list, else denied. A rule is `host`, `*.suffix` (any name below `suffix`, not
//! `suffix` itself) or an IP address, each with an optional `:port`.

use std::fmt;
use std::net::IpAddr;

use serde::{Serialize, Serializer};

/// How the sandbox reaches the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Network {
    /// The host's network, shared.
    On,
    /// A network namespace with only loopback.
    Off,
    /// The same empty namespace; a proxy outside decides each connection by these rules.
    AllowList(NetRules),
}

impl Network {
    /// The mode's name, as `--net` and `network = "..."` spell it.
    pub fn mode_name(&self) -> &'static str {
        match self {
            Network::On => "on",
            Network::Off => "off",
            Network::AllowList(_) => "allow-list",
        }
    }

    /// Whether the sandbox gets its own network namespace.
    pub fn isolated(&self) -> bool {
        !matches!(self, Network::On)
    }
}

/// A mode as configuration names it, before the rules are gathered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetMode {
    #[default]
    On,
    Off,
    AllowList,
}

impl NetMode {
    /// Stricter modes first would be `Off` < `AllowList` < `On`; a repository may only
    /// ask for `Off`.
    pub fn name(self) -> &'static str {
        match self {
            NetMode::On => "on",
            NetMode::Off => "off",
            NetMode::AllowList => "allow-list",
        }
    }
}

/// Named groups of hosts a user adds with one line (`groups = ["github"]`).
pub const BUILTIN_NET_GROUPS: &str = include_str!("../../../profiles/network.toml");

/// Which hosts the allow-list proxy lets through.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NetRules {
    pub allow: Vec<HostRule>,
    pub deny: Vec<HostRule>,
}

/// The name or address part of a [`HostRule`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this name (lower case, no trailing dot).
    Name(String),
    /// Any name below this suffix (`*.example.org` matches `a.example.org`, not
    /// `example.org`).
    Suffix(String),
    /// This address: the only way to let the proxy reach a loopback, link-local or
    /// host-owned address, which it refuses otherwise.
    Addr(IpAddr),
}

/// One entry of an allow or deny list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostRule {
    #[serde(serialize_with = "display")]
    pub pattern: HostPattern,
    /// Any port when `None`.
    pub port: Option<u16>,
    /// Where the rule was written, for `kennel explain` and denial reasons.
    pub source: String,
}

fn display<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            HostPattern::Name(n) => f.write_str(n),
            HostPattern::Suffix(s) => write!(f, "*.{s}"),
            HostPattern::Addr(IpAddr::V6(a)) => write!(f, "[{a}]"),
            HostPattern::Addr(a) => write!(f, "{a}"),
        }
    }
}

impl fmt::Display for HostRule {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.pattern),
            None => write!(f, "{}", self.pattern),
        }
    }
}

/// Normalizes a host name for comparison: lower case, without a trailing dot.
pub fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !label.starts_with('-')
        })
}

impl HostRule {
    /// Parses `host`, `*.suffix`, an address, each with an optional `:port`
    /// (`[v6]:port` for IPv6). The error says what is wrong with `text`.
    pub fn parse(text: &str, source: impl Into<String>) -> Result<HostRule, String> {
        let text = text.trim();
        let (host, port) = split_port(text)?;
        let pattern = if let Some(rest) = host.strip_prefix("*.") {
            let rest = normalize_host(rest);
            if !valid_name(&rest) {
                return Err(format!("`{text}`: `{rest}` is not a host name"));
            }
            HostPattern::Suffix(rest)
        } else if let Ok(addr) = host.parse::<IpAddr>() {
            // 0.0.0.0 and :: are every address of the host (its loopback services
            // included), never one host.
            if addr.is_unspecified() {
                return Err(format!(
                    "`{text}` is every address of this machine, not one host: name the host"
                ));
            }
            HostPattern::Addr(addr)
        } else {
            let name = normalize_host(host);
            if !valid_name(&name) {
                return Err(format!(
                    "`{text}` is not a host name, `*.suffix` or an address (with an optional `:port`)"
                ));
            }
            HostPattern::Name(name)
        };
        Ok(HostRule {
            pattern,
            port,
            source: source.into(),
        })
    }

    /// Whether the rule names `host` (normalized) on `port`.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match &self.pattern {
            HostPattern::Name(n) => n == host,
            HostPattern::Suffix(s) => host
                .strip_suffix(s.as_str())
                .is_some_and(|head| head.ends_with('.') && head.len() > 1),
            HostPattern::Addr(a) => host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|h| h == *a),
        }
    }
}

fn split_port(text: &str) -> Result<(&str, Option<u16>), String> {
    let bad_port = |p: &str| format!("`{text}`: `{p}` is not a port (1-65535)");
    // Digits only: `parse` alone would take `+80`.
    let parse_port = |p: &str| match p.parse::<u16>() {
        Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(bad_port(p)),
    };
    if let Some(rest) = text.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return Err(format!("`{text}`: missing `]`"));
        };
        return match after.strip_prefix(':') {
            Some(p) => Ok((addr, Some(parse_port(p)?))),
            None if after.is_empty() => Ok((addr, None)),
            None => Err(format!("`{text}`: unexpected `{after}`")),
        };
    }
    if text.matches(':').count() > 1 {
        // A bare IPv6 address.
        return Ok((text, None));
    }
    match text.split_once(':') {
        Some((host, p)) => Ok((host, Some(parse_port(p)?))),
        None => Ok((text, None)),
    }
}

/// Why the proxy refused a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// A deny rule matched: the rule, and where it was written.
    Denied { rule: String, source: String },
    /// No allow rule matched.
    NotAllowed,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Denial::Denied { rule, source } => write!(f, "denied by `{rule}` ({source})"),
            Denial::NotAllowed => f.write_str("not in the allow-list"),
        }
    }
}

impl NetRules {
    /// The deny list first, then the allow list, else denied.
    pub fn decide(&self, host: &str, port: u16) -> Result<(), Denial> {
        let host = normalize_host(host);
        if let Some(rule) = self.deny.iter().find(|r| r.matches(&host, port)) {
            return Err(Denial::Denied {
                rule: rule.to_string(),
                source: rule.source.clone(),
            });
        }
        if self.allow.iter().any(|r| r.matches(&host, port)) {
            Ok(())
        } else {
            Err(Denial::NotAllowed)
        }
    }

    /// Whether `addr` is itself listed (and not denied): then the proxy may connect to it
    /// even when it is a loopback, link-local or host-owned address.
    pub fn lists_address(&self, addr: IpAddr, port: u16) -> bool {
        let is = |r: &HostRule| {
            matches!(r.pattern, HostPattern::Addr(a) if a == addr)
                && !matches!(r.port, Some(p) if p != port)
        };
        self.allow.iter().any(is) && !self.deny.iter().any(is)
    }

    /// The ports named by allow rules, beyond 80 and 443 (for the listeners inside that
    /// serve tools which ignore the proxy variables).
    pub fn extra_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .allow
            .iter()
            .filter_map(|r| r.port)
            .filter(|p| *p != 80 && *p != 443)
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allow: &[&str], deny: &[&str]) -> NetRules {
        let parse = |l: &[&str]| {
            l.iter()
                .map(|t| HostRule::parse(t, "test").unwrap_or_else(|e| panic!("{e}")))
                .collect()
        };
        NetRules {
            allow: parse(allow),
            deny: parse(deny),
        }
    }

    #[test]
    fn deny_then_allow_then_deny_by_default() {
        let r = rules(
            &["api.example.org", "*.github.com", "git.example.org:22"],
            &["evil.github.com"],
        );
        assert_eq!(r.decide("api.example.org", 443), Ok(()));
        assert_eq!(r.decide("API.Example.org.", 80), Ok(()));
        assert_eq!(r.decide("codeload.github.com", 443), Ok(()));
        assert_eq!(r.decide("github.com", 443), Err(Denial::NotAllowed));
        assert_eq!(r.decide("xgithub.com", 443), Err(Denial::NotAllowed));
        assert!(matches!(
            r.decide("evil.github.com", 443),
            Err(Denial::Denied { .. })
        ));
        assert_eq!(r.decide("git.example.org", 22), Ok(()));
        assert_eq!(r.decide("git.example.org", 443), Err(Denial::NotAllowed));
        assert_eq!(r.decide("example.net", 443), Err(Denial::NotAllowed));
    }

    #[test]
    fn addresses_are_listed_only_explicitly() {
        let r = rules(&["127.0.0.2", "[::1]:8080", "*.example.org"], &[]);
        assert!(r.lists_address("127.0.0.2".parse().unwrap_or(IpAddr::from([0; 4])), 443));
        assert!(!r.lists_address(IpAddr::from([127, 0, 0, 1]), 443));
        assert!(r.lists_address("::1".parse().unwrap_or(IpAddr::from([0; 4])), 8080));
        assert!(!r.lists_address("::1".parse().unwrap_or(IpAddr::from([0; 4])), 80));
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        for bad in ["", "a b", "host:0", "host:99999", "*.", "[::1", "-x.org"] {
            assert!(HostRule::parse(bad, "t").is_err(), "{bad} must be refused");
        }
        let r = HostRule::parse("example.org:8443", "t");
        assert_eq!(r.map(|r| r.to_string()), Ok("example.org:8443".into()));
    }
}
