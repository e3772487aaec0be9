//! Handing a connection accepted inside the sandbox to the proxy outside: the listener
//! inside sends the accepted socket itself over the proxy's unix socket (SCM_RIGHTS), so
//! that the proxy moves the bytes between it and the server in one hop, instead of a relay
//! inside and another outside copying every byte twice.
//!
//! A handoff starts with a zero byte (an HTTP request never does) and the socket attached,
//! then one byte saying what it is: [`PROXY`] (the client speaks to the proxy itself, as
//! through `HTTP_PROXY`), or [`TUNNEL`] followed by a `CONNECT host:port` head that the
//! listener wrote for a client which knows nothing of the proxy.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};

pub const MARK: u8 = 0;
/// The client speaks HTTP to the proxy.
pub const PROXY: u8 = b'P';
/// The listener asks for a tunnel; the client gets no `200`, and on a refusal nothing (or
/// the `403` itself on port 80, where it speaks HTTP).
pub const TUNNEL: u8 = b'T';

/// Receives the first bytes of a connection to the proxy and, when one is attached, a
/// socket. Given by the caller: turning a received descriptor into an owned one is the one
/// `unsafe` step, and only `kennel-native` has `unsafe`.
pub type ReceiveFd = fn(&UnixStream, &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)>;

/// Sends `conn` to the proxy at `socket`, with `kind` and what follows it.
pub fn send(socket: &Path, conn: impl AsFd, kind: u8, rest: &[u8]) -> io::Result<()> {
    let unix = UnixStream::connect(socket)?;
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
        (&unix).write_all(&first[sent..])?;
    }
    Ok(())
}
