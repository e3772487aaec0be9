//! Name resolution by the proxy, and the addresses it refuses to reach: the host's own
//! (loopback, its interfaces), link-local, cloud metadata, unspecified and multicast ones,
//! unless the address itself is listed. A name that resolves to such an address is how
//! DNS rebinding would reach the host's services.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

/// Resolves names with the system's resolver, or with fixed answers first (for tests:
/// `kennel` reads them from a debug-build-only variable).
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    overrides: HashMap<String, Vec<IpAddr>>,
    host_addrs: Vec<IpAddr>,
}

/// Parses `name=addr[,addr...]` entries separated by `;` or newlines.
pub fn parse_overrides(text: &str) -> Result<HashMap<String, Vec<IpAddr>>, String> {
    let mut map = HashMap::new();
    for entry in text
        .split([';', '\n'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let (name, addrs) = entry
            .split_once('=')
            .ok_or_else(|| format!("`{entry}`: expected name=address"))?;
        let addrs = addrs
            .split(',')
            .map(|a| {
                a.trim()
                    .parse::<IpAddr>()
                    .map_err(|_| format!("`{a}` is not an address"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        map.insert(kennel_policy::normalize_host(name), addrs);
    }
    Ok(map)
}

impl Resolver {
    pub fn new(overrides: HashMap<String, Vec<IpAddr>>) -> Resolver {
        Resolver {
            overrides,
            host_addrs: host_addresses(),
        }
    }

    /// The addresses of `host` (a name or an address literal), in the resolver's order.
    pub fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        if let Some(list) = self.overrides.get(&kennel_policy::normalize_host(host)) {
            return Ok(list.iter().map(|ip| SocketAddr::new(*ip, port)).collect());
        }
        Ok((bare, port).to_socket_addrs()?.collect())
    }

    /// Why the proxy must not connect to `ip`, or `None` when it may.
    pub fn forbidden(&self, ip: IpAddr) -> Option<&'static str> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if let Some(why) = special(ip) {
            return Some(why);
        }
        self.host_addrs
            .contains(&ip)
            .then_some("an address of this host")
    }
}

fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => {
            if a.is_loopback() {
                Some("a loopback address of the host")
            } else if a.is_unspecified() || a.is_broadcast() || a.is_multicast() {
                Some("not a unicast address")
            } else if a == Ipv4Addr::new(169, 254, 169, 254)
                || a == Ipv4Addr::new(100, 100, 100, 200)
            {
                Some("a cloud metadata service")
            } else if a.is_link_local() {
                Some("a link-local address")
            } else {
                None
            }
        }
        IpAddr::V6(a) => {
            let seg = a.segments();
            if a.is_loopback() {
                Some("a loopback address of the host")
            } else if a.is_unspecified() || a.is_multicast() {
                Some("not a unicast address")
            } else if a == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("a cloud metadata service")
            } else if seg[0] & 0xffc0 == 0xfe80 {
                Some("a link-local address")
            } else {
                None
            }
        }
    }
}

/// The addresses of the host's own interfaces.
fn host_addresses() -> Vec<IpAddr> {
    let Ok(list) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    list.filter_map(|i| {
        let a = i.address?;
        if let Some(v4) = a.as_sockaddr_in() {
            return Some(IpAddr::V4(v4.ip()));
        }
        a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_host_and_metadata_addresses() {
        let r = Resolver::new(HashMap::new());
        for bad in [
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "::ffff:127.0.0.1",
            "169.254.169.254",
            "fe80::1",
            "0.0.0.0",
            "fd00:ec2::254",
        ] {
            let ip: IpAddr = bad.parse().unwrap();
            assert!(r.forbidden(ip).is_some(), "{bad} must be refused");
        }
        assert_eq!(r.forbidden("93.184.215.14".parse().unwrap()), None);
    }

    #[test]
    fn overrides_answer_first() {
        let map = parse_overrides("api.example.test=127.0.0.2; b.test=127.0.0.3,::1").unwrap();
        let r = Resolver::new(map);
        let a = r.resolve("API.example.test", 443).unwrap();
        assert_eq!(a, vec!["127.0.0.2:443".parse().unwrap()]);
        assert_eq!(r.resolve("b.test", 1).unwrap().len(), 2);
        assert!(parse_overrides("nonsense").is_err());
    }
}
