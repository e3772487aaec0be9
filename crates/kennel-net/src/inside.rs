//! The helpers inside the sandbox, started before the command: the listener of the proxy
//! port, the DNS stub with the listeners of its fake addresses, and a listener per listed
//! host loopback port. Each hands what it accepts to the proxy through the proxy's unix
//! socket ([`crate::handoff`]), the only way out; the listener of the proxy port hands over
//! itself, and the proxy accepts its connections.
//!
//! [`bind`] runs while the sandbox's init still holds its capabilities in the new network
//! namespace (ports 53, 80 and 443 are privileged); [`serve`] runs in a process of its own,
//! confined like the command.

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use crate::dns::FakeNames;
use crate::handoff;

/// What to start inside.
#[derive(Debug, Clone, Default)]
pub struct InsideConfig {
    /// The proxy's unix socket, as the sandbox sees it.
    pub socket: PathBuf,
    /// The allow-list helpers: the proxy port, the DNS stub, the fake-address listeners.
    pub allow_list: bool,
    /// Ports of the fake-address listeners (80, 443 and each port an allow rule names).
    pub fake_ports: Vec<u16>,
    /// The DNS stub on 127.0.0.1:53 (with the allow-list). Off where port 53 cannot be
    /// bound (the systemd backend's unit has no capability in its network namespace): only
    /// programs that use the proxy variables reach the network there.
    pub dns_stub: bool,
    /// Host loopback ports relayed to the same port inside.
    pub localhost_ports: Vec<u16>,
}

/// The sockets, bound; nothing runs yet.
pub struct Listeners {
    socket: PathBuf,
    proxy: Vec<TcpListener>,
    dns: Option<UdpSocket>,
    fake: Vec<TcpListener>,
    localhost: Vec<(TcpListener, u16)>,
}

fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("listening on {addr} in the sandbox: {e}")))
}

/// Binds a listener on 127.0.0.1, and on ::1 when the namespace has IPv6.
fn bind_loopback(port: u16) -> io::Result<Vec<TcpListener>> {
    let mut v = vec![bind_tcp(SocketAddr::from(([127, 0, 0, 1], port)))?];
    if let Ok(l) = TcpListener::bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port)) {
        v.push(l);
    }
    Ok(v)
}

pub fn bind(config: &InsideConfig) -> io::Result<Listeners> {
    let mut l = Listeners {
        socket: config.socket.clone(),
        proxy: Vec::new(),
        dns: None,
        fake: Vec::new(),
        localhost: Vec::new(),
    };
    for port in &config.localhost_ports {
        for listener in bind_loopback(*port)? {
            l.localhost.push((listener, *port));
        }
    }
    if config.allow_list {
        l.proxy = bind_loopback(crate::PROXY_PORT)?;
        if !config.dns_stub {
            return Ok(l);
        }
        l.dns =
            Some(UdpSocket::bind("127.0.0.1:53").map_err(|e| {
                io::Error::new(e.kind(), format!("the DNS stub on 127.0.0.1:53: {e}"))
            })?);
        for port in &config.fake_ports {
            if config.localhost_ports.contains(port) || *port == crate::PROXY_PORT {
                continue;
            }
            l.fake
                .push(bind_tcp(SocketAddr::from(([0, 0, 0, 0], *port)))?);
        }
    }
    Ok(l)
}

/// Serves every listener on threads; returns only when the DNS stub fails (never, in
/// practice): the sandbox's end ends this process.
pub fn serve(l: Listeners) {
    let socket: Arc<Path> = Arc::from(l.socket.as_path());
    let names = FakeNames::default();
    for listener in l.proxy {
        let socket = Arc::clone(&socket);
        let _ = thread::Builder::new().spawn(move || {
            // Accepted by the proxy itself from now on, or else here, each connection
            // handed over.
            if !handoff::give_listener(&socket, &listener) {
                accept_loop(listener, move |conn| {
                    let _ = handoff::send(&socket, &conn, handoff::PROXY, b"");
                });
            }
        });
    }
    for (listener, port) in l.localhost {
        let socket = Arc::clone(&socket);
        accept_loop(listener, move |conn| {
            through_proxy(conn, &socket, crate::LOCALHOST, port);
        });
    }
    for listener in l.fake {
        let socket = Arc::clone(&socket);
        let names = names.clone();
        accept_loop(listener, move |conn| {
            let Ok(local) = conn.local_addr() else { return };
            let IpAddr::V4(ip) = local.ip() else { return };
            // A connection to an address the stub never gave out (127.0.0.1:443, say)
            // names no host: it is closed.
            if let Some(name) = names.name_of(ip) {
                through_proxy(conn, &socket, &name, local.port());
            }
        });
    }
    if let Some(dns) = l.dns {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, peer)) = dns.recv_from(&mut buf) else {
                continue;
            };
            if let Some(reply) = crate::dns::answer(&buf[..n], &names) {
                let _ = dns.send_to(&reply, peer);
            }
        }
    }
    loop {
        thread::park();
    }
}

fn accept_loop(listener: TcpListener, handle: impl Fn(TcpStream) + Send + Sync + 'static) {
    let handle = Arc::new(handle);
    let _ = thread::Builder::new().spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let handle = Arc::clone(&handle);
            let _ = thread::Builder::new().spawn(move || handle(conn));
        }
    });
}

/// Hands `conn` to the proxy with a request for a tunnel to `host:port`; the proxy
/// answers a refusal on port 80 itself (plain HTTP clients read why) and closes the others.
fn through_proxy(conn: TcpStream, socket: &Path, host: &str, port: u16) {
    let target = crate::log::host_port(host, port);
    let head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    let _ = handoff::send(socket, &conn, handoff::TUNNEL, head.as_bytes());
}
