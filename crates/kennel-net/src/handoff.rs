//! Handing a connection accepted inside the sandbox to the proxy outside: the listener
//! inside sends the accepted socket itself over the proxy's unix socket (SCM_RIGHTS), so
//! that the proxy moves the bytes between it and the server in one hop, instead of a relay
//! inside and another outside copying every byte twice.
//!
//! A handoff starts with a zero byte (an HTTP request never does) and the socket attached,
//! then one byte saying what it is: [`PROXY`] (the client speaks to the proxy itself, as
//! through `HTTP_PROXY`), or [`TUNNEL`] followed by a `CONNECT host:port` head that the
//! listener wrote for a client which knows nothing of the proxy.
//!
//! The listener of the proxy port does better: at its start it hands over its listening
//! socket itself, once ([`LISTEN`]), and the proxy accepts the connections from it directly
//! (no handoff, no thread inside, per connection). The proxy answers [`ADOPTED`]; without
//! that answer the listener accepts and hands over each connection as before.

use std::io::{self, IoSlice, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};

pub const MARK: u8 = 0;
/// The client speaks HTTP to the proxy.
pub const PROXY: u8 = b'P';
/// The listener asks for a tunnel; the client gets no `200`, and on a refusal nothing (or
/// the `403` itself on port 80, where it speaks HTTP).
pub const TUNNEL: u8 = b'T';
/// The listening socket of the proxy port: the proxy accepts on it from now on.
pub const LISTEN: u8 = b'L';
/// The proxy's answer to [`LISTEN`] when it took the socket.
pub const ADOPTED: u8 = b'A';
/// How long a listener waits for [`ADOPTED`] (the proxy starts with the sandbox).
const ADOPT_WITHIN: Duration = Duration::from_secs(10);

/// Receives the first bytes of a connection to the proxy and, when one is attached, a
/// socket. Given by the caller: turning a received descriptor into an owned one is the one
/// `unsafe` step, and only `kennel-native` has `unsafe`.
pub type ReceiveFd = fn(&UnixStream, &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)>;

/// Sends `conn` to the proxy at `socket`, with `kind` and what follows it.
pub fn send(socket: &Path, conn: impl AsFd, kind: u8, rest: &[u8]) -> io::Result<()> {
    send_on(&UnixStream::connect(socket)?, conn, kind, rest)
}

/// Hands the listening socket `listener` to the proxy at `socket`: true when the proxy
/// accepts on it from now on.
pub fn give_listener(socket: &Path, listener: impl AsFd) -> bool {
    let Ok(unix) = UnixStream::connect(socket) else {
        return false;
    };
    let mut answer = [0u8; 1];
    send_on(&unix, listener, LISTEN, b"").is_ok()
        && unix.set_read_timeout(Some(ADOPT_WITHIN)).is_ok()
        && matches!((&unix).read(&mut answer), Ok(1))
        && answer[0] == ADOPTED
}

fn send_on(unix: &UnixStream, conn: impl AsFd, kind: u8, rest: &[u8]) -> io::Result<()> {
    let mut first = vec![MARK, kind];
    first.extend_from_slice(rest);
    let fds = [conn.as_fd().as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let sent = sendmsg::<UnixAddr>(
        unix.as_raw_fd(),
        &[IoSlice::new(&first)],
        &cmsg,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    if sent != first.len() {
        // The descriptor went with the first byte; the rest is plain data.
        use std::io::Write;
        (&*unix).write_all(&first[sent..])?;
    }
    Ok(())
}
