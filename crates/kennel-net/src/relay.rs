//! Moving bytes both ways at once between two sockets: one thread per direction, each
//! reading into a buffer of its own and writing it out. When one side ends its writing, the
//! other side is told with a half close, so that protocols which read to the end still work.
//!
//! Not splice(2): on loopback it reached half of a direct connection's throughput, a
//! buffer of a few MiB about 0.7, with less CPU per byte (bench/README.md, "Network
//! proxy"). A buffer starts small (most tunnels carry requests and answers) and doubles
//! while reads fill it; what the buffers grow beyond that is shared by the whole proxy and
//! bounded ([`SHARED`]), so a sandbox opening many busy tunnels cannot make kennel hold more.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

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

/// A pump's buffer at first.
const FIRST: usize = 64 * 1024;
/// The most a pump's buffer grows to: one read then takes what a busy socket holds.
const MOST: usize = 4 << 20;
/// What all pumps' buffers may hold together beyond their first [`FIRST`] bytes.
pub const SHARED: usize = 64 << 20;

/// Memory that buffers may grow into, shared by the pumps.
pub struct Budget {
    taken: AtomicUsize,
    limit: usize,
}

impl Budget {
    pub const fn new(limit: usize) -> Budget {
        Budget {
            taken: AtomicUsize::new(0),
            limit,
        }
    }

    pub fn taken(&self) -> usize {
        self.taken.load(Ordering::Acquire)
    }
}

/// The proxy's budget.
static GROWTH: Budget = Budget::new(SHARED);

/// Bytes a buffer took from a [`Budget`]; given back when dropped.
struct Grant<'b> {
    budget: &'b Budget,
    bytes: usize,
}

impl Grant<'_> {
    /// Takes `more` bytes too, if the budget has them.
    fn add(&mut self, more: usize) -> bool {
        let limit = self.budget.limit;
        let ok = self
            .budget
            .taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                t.checked_add(more).filter(|n| *n <= limit)
            })
            .is_ok();
        if ok {
            self.bytes += more;
        }
        ok
    }
}

impl Drop for Grant<'_> {
    fn drop(&mut self) {
        self.budget.taken.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

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
    pump_within(from, to, moved, &GROWTH)
}

/// [`pump_counted`], the buffer growing within `budget`.
fn pump_within<F: Duplex, T: Duplex>(
    from: &mut F,
    to: &mut T,
    moved: &AtomicU64,
    budget: &Budget,
) -> io::Result<u64> {
    let mut buf = vec![0u8; FIRST];
    let mut grant = Grant { budget, bytes: 0 };
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
        // A full read: more was waiting. The old buffer is free (written out), so the
        // new one is allocated afresh rather than resized (nothing to copy).
        if n == buf.len() && buf.len() < MOST && grant.add(buf.len()) {
            buf = vec![0u8; buf.len() * 2];
        }
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

    /// A pattern that a shifted or dropped chunk cannot match by chance.
    fn pattern(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    /// Big transfers both ways at once (the buffers grow) arrive byte for byte, and each
    /// side's end still reaches the other as end of file.
    #[test]
    fn large_transfers_arrive_exact_both_ways_with_half_close() {
        const LEN: usize = 48 << 20;
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let far = thread::spawn(move || {
            let (s, _) = server.accept().unwrap();
            let mut w = s.try_clone().unwrap();
            let sender = thread::spawn(move || {
                w.write_all(&pattern(LEN, 7)).unwrap();
                w.shutdown(Shutdown::Write).unwrap();
            });
            let mut got = Vec::new();
            (&s).read_to_end(&mut got).unwrap();
            sender.join().unwrap();
            got == pattern(LEN, 11)
        });
        let near = TcpListener::bind("127.0.0.1:0").unwrap();
        let near_addr = near.local_addr().unwrap();
        let relay = thread::spawn(move || {
            let (inner, _) = near.accept().unwrap();
            relay(inner, TcpStream::connect(addr).unwrap(), b"", b"")
        });
        let client = TcpStream::connect(near_addr).unwrap();
        let mut w = client.try_clone().unwrap();
        let sender = thread::spawn(move || {
            w.write_all(&pattern(LEN, 11)).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        });
        let mut got = Vec::new();
        (&client).read_to_end(&mut got).unwrap();
        sender.join().unwrap();
        assert!(
            got == pattern(LEN, 7),
            "the far side's bytes arrived changed"
        );
        assert!(far.join().unwrap(), "the near side's bytes arrived changed");
        assert_eq!(relay.join().unwrap().unwrap(), (LEN as u64, LEN as u64));
    }

    #[test]
    fn buffers_grow_only_within_the_shared_budget() {
        let budget = Budget::new(3 * FIRST);
        let mut a = Grant {
            budget: &budget,
            bytes: 0,
        };
        assert!(a.add(FIRST) && a.add(2 * FIRST));
        let mut b = Grant {
            budget: &budget,
            bytes: 0,
        };
        assert!(!b.add(FIRST), "the budget is spent");
        drop(a);
        assert_eq!(budget.taken(), 0);
        assert!(b.add(FIRST));
        drop(b);
        // A pump with no budget at all still moves everything, in its first buffer.
        let none = Budget::new(0);
        let (mut tx, mut from) = UnixStream::pair().unwrap();
        let (mut to, mut rx) = UnixStream::pair().unwrap();
        let data = pattern(4 << 20, 3);
        let sent = data.clone();
        let writer = thread::spawn(move || {
            tx.write_all(&sent).unwrap();
        });
        let reader = thread::spawn(move || {
            let mut got = Vec::new();
            rx.read_to_end(&mut got).unwrap();
            got
        });
        let moved = AtomicU64::new(0);
        let n = pump_within(&mut from, &mut to, &moved, &none).unwrap();
        drop(to);
        writer.join().unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(moved.load(Ordering::Relaxed), n);
        assert!(reader.join().unwrap() == data);
        assert_eq!(none.taken(), 0);
    }
}
