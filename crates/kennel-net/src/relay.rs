//! Moving bytes both ways at once between two sockets: one thread per direction, data
//! moved by splice(2) through a pipe (no copy through user space), a plain copy when a
//! socket cannot splice. When one side ends its writing, the other side is told with a
//! half close, so that protocols which read to the end still work.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};

/// A connected stream socket.
pub trait Duplex: Read + Write + AsFd + Send + Sized + 'static {
    fn duplicate(&self) -> io::Result<Self>;
    fn close_half(&self, how: Shutdown);
    /// How long a read may wait (the socket's, shared by its duplicates); None: forever.
    fn limit_reads(&self, limit: Option<Duration>);
}

impl Duplex for TcpStream {
    fn duplicate(&self) -> io::Result<Self> {
        self.try_clone()
    }
    fn close_half(&self, how: Shutdown) {
        let _ = self.shutdown(how);
    }
    fn limit_reads(&self, limit: Option<Duration>) {
        let _ = self.set_read_timeout(limit);
    }
}

impl Duplex for UnixStream {
    fn duplicate(&self) -> io::Result<Self> {
        self.try_clone()
    }
    fn close_half(&self, how: Shutdown) {
        let _ = self.shutdown(how);
    }
    fn limit_reads(&self, limit: Option<Duration>) {
        let _ = self.set_read_timeout(limit);
    }
}

const CHUNK: usize = 1 << 20;

/// Relays `a` and `b` both ways until both directions end. `to_b` is sent to `b` first
/// (bytes already read from `a`), `to_a` to `a`.
pub fn relay<A: Duplex, B: Duplex>(a: A, b: B, to_a: &[u8], to_b: &[u8]) -> io::Result<(u64, u64)> {
    let (a2, b2) = (a.duplicate()?, b.duplicate()?);
    let to_a = to_a.to_vec();
    let back = thread::spawn(move || {
        let mut a2 = a2;
        let mut b2 = b2;
        let r = a2.write_all(&to_a).and_then(|()| pump(&mut b2, &mut a2));
        finish(&b2, &a2, r.is_ok());
        r
    });
    let mut a = a;
    let mut b = b;
    let r = b.write_all(to_b).and_then(|()| pump(&mut a, &mut b));
    finish(&a, &b, r.is_ok());
    let forward = r.unwrap_or(0);
    let backward = back
        .join()
        .map_err(|_| io::Error::other("relay thread panicked"))?
        .unwrap_or(0);
    Ok((forward, backward))
}

/// After `from` ended: tell `to` that no more comes; on an error, end both.
fn finish<F: Duplex, T: Duplex>(from: &F, to: &T, clean: bool) {
    to.close_half(Shutdown::Write);
    if !clean {
        from.close_half(Shutdown::Both);
        to.close_half(Shutdown::Both);
    }
}

/// Copies `from` to `to` until end of file; returns the bytes moved.
pub fn pump<F: Duplex, T: Duplex>(from: &mut F, to: &mut T) -> io::Result<u64> {
    pump_counted(from, to, &AtomicU64::new(0))
}

/// [`pump`], adding the bytes to `moved` as they go (for a watch on idle tunnels).
pub fn pump_counted<F: Duplex, T: Duplex>(
    from: &mut F,
    to: &mut T,
    moved: &AtomicU64,
) -> io::Result<u64> {
    match splice_pump(from, to, moved) {
        Ok(n) => Ok(n),
        Err(Fallback(n)) => Ok(n + copy_pump(from, to, moved)?),
    }
}

/// splice(2) is not possible here; `.0` bytes were moved before that was known.
struct Fallback(u64);

fn splice_pump<F: Duplex, T: Duplex>(from: &F, to: &T, moved: &AtomicU64) -> Result<u64, Fallback> {
    let Ok((pr, pw)) = nix::unistd::pipe2(OFlag::O_CLOEXEC) else {
        return Err(Fallback(0));
    };
    // A bigger pipe means fewer calls; the default (64 KiB) is kept when refused.
    let _ = fcntl(&pw, FcntlArg::F_SETPIPE_SZ(CHUNK as i32));
    splice_loop(from, to, &pr, &pw, moved)
}

fn splice_loop<F: Duplex, T: Duplex>(
    from: &F,
    to: &T,
    pr: &OwnedFd,
    pw: &OwnedFd,
    moved: &AtomicU64,
) -> Result<u64, Fallback> {
    let mut total = 0u64;
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_MORE;
    loop {
        let n = match splice(from.as_fd(), None, pw, None, CHUNK, flags) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(Errno::EINVAL) if total == 0 => return Err(Fallback(0)),
            Err(_) => return Ok(total),
        };
        let mut left = n;
        while left > 0 {
            match splice(pr, None, to.as_fd(), None, left, flags) {
                Ok(0) => return Ok(total),
                Ok(m) => {
                    left -= m;
                    total += m as u64;
                    moved.fetch_add(m as u64, Ordering::Relaxed);
                }
                Err(Errno::EINTR) => continue,
                Err(_) => return Ok(total),
            }
        }
    }
}

fn copy_pump<F: Duplex, T: Duplex>(from: &mut F, to: &mut T, moved: &AtomicU64) -> io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        total += n as u64;
        moved.fetch_add(n as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn relays_both_ways_with_half_close() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let echo = thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            s.write_all(b"hello first\n").unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            s.write_all(&got).unwrap();
        });
        let (mut client, inner) = UnixStream::pair().unwrap();
        let upstream = TcpStream::connect(addr).unwrap();
        let relay = thread::spawn(move || relay(inner, upstream, b"", b"pre-"));
        let mut first = [0u8; 12];
        client.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"hello first\n");
        client.write_all(b"data").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).unwrap();
        assert_eq!(back, b"pre-data");
        echo.join().unwrap();
        relay.join().unwrap().unwrap();
    }
}
