//! kennel's network policy at run time (issue 8).
//!
//! Outside the sandbox, in the supervisor: a [`proxy`] on a unix socket in a private
//! per-session directory, the only way out of the sandbox's empty network namespace. It
//! speaks HTTP `CONNECT` and absolute-form plain HTTP, decides by the policy's
//! [`kennel_policy::NetRules`], resolves names itself and refuses addresses of the host,
//! and logs every denial ([`log`]).
//!
//! Inside, before the command starts ([`inside`]): a listener on `127.0.0.1:3128` (and
//! `[::1]:3128`) for tools that read `HTTP_PROXY`; for tools that do not, a DNS stub
//! ([`dns`]) that answers every name with a fake loopback address, and listeners that map
//! such an address back to its name; a listener per listed host loopback port. Each hands
//! the connection it accepts to the proxy through the unix socket ([`handoff`]), so bytes
//! take one hop, not two; the proxy port's listener hands over its listening socket once,
//! and the proxy accepts on it. [`client`] is `kennel net-connect HOST PORT`, the ProxyCommand of
//! git over ssh.
//!
//! No async runtime: a thread per connection, reused for the next one, relaying both ways
//! with poll(2), each way with a buffer that grows while the tunnel is busy ([`relay`]).
#![forbid(unsafe_code)]

pub mod addr;
pub mod client;
pub mod dns;
pub mod handoff;
pub mod http;
pub mod inside;
pub mod log;
#[cfg(test)]
mod mutations;
pub mod proxy;
pub mod relay;
pub mod sni;

/// The port of the proxy relay inside the sandbox, on 127.0.0.1 and ::1.
pub const PROXY_PORT: u16 = 3128;

/// The name by which the relays of listed localhost ports ask the proxy for a host
/// loopback port; only ports of the policy's `localhost` list are granted.
pub const LOCALHOST: &str = "localhost";
