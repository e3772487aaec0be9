//! Moving bytes both ways between two sockets on one thread: each way reads into a buffer of
//! its own and writes it out, without waiting (`MSG_DONTWAIT` on each call, so that a
//! sandbox holding the other end cannot make a call block by changing the socket's flags),
//! and poll(2) waits while neither way can move. When one side ends its writing, the other
//! side is told with a half close, so that protocols which read to the end still work. A
//! side that stops reading stops only the way towards it: its buffer is not read into again
//! until written out.
//!
//! One thread, not one per way: a tunnel then costs kennel no thread start, no duplicated
//! descriptors and no join (bench/README.md, "Network proxy"). Not splice(2): on loopback it
//! reached half of a direct connection's throughput, a buffer of a few MiB about 0.7, with
//! less CPU per byte. A buffer starts small (most tunnels carry requests and answers) and
//! doubles while reads fill it; what the buffers grow beyond that is shared by the whole
//! proxy and bounded ([`SHARED`]), so a sandbox opening many busy tunnels cannot make kennel
//! hold more.

use std::io;
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, MsgFlags};

/// A connected stream socket.
pub trait Duplex: io::Read + io::Write + AsFd + Send + Sized + 'static {
    fn close_half(&self, how: Shutdown);
    /// How long a read may wait (the socket's); None: forever.
    fn limit_reads(&self, limit: Option<Duration>);
}

impl Duplex for TcpStream {
    fn close_half(&self, how: Shutdown) {
        let _ = self.shutdown(how);
    }
    fn limit_reads(&self, limit: Option<Duration>) {
        let _ = self.set_read_timeout(limit);
    }
}

impl Duplex for UnixStream {
    fn close_half(&self, how: Shutdown) {
        let _ = self.shutdown(how);
    }
    fn limit_reads(&self, limit: Option<Duration>) {
        let _ = self.set_read_timeout(limit);
    }
}

/// How long a tunnel may move nothing, either way, before it is closed: an idle tunnel
/// holds a thread and two descriptors in kennel, and a sandbox could open them and let them
/// sit (issue 17, item 8).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// A way's buffer at first.
const FIRST: usize = 64 * 1024;
/// The most a way's buffer grows to: one read then takes what a busy socket holds.
const MOST: usize = 4 << 20;
/// What all ways' buffers may hold together beyond their first [`FIRST`] bytes.
pub const SHARED: usize = 64 << 20;

/// Memory that buffers may grow into, shared by the tunnels.
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

/// What the first bytes from `a` decide, while a [`Tunnel`] has a gate: nothing of them
/// reaches `b` before [`Gate::Pass`].
pub enum Gate {
    /// Not enough to tell: read more.
    More,
    Pass,
    /// The tunnel is cut, for this reason.
    Refuse(String),
}

/// A gate: what it says of the bytes gathered so far.
pub type GateFn<'g> = &'g mut dyn FnMut(&[u8]) -> Gate;

/// How a tunnel ended.
#[derive(Debug)]
pub enum Ended {
    /// Both ways reached their end of file and were written out.
    Done,
    /// Nothing moved for the idle timeout.
    Idle,
    /// The gate refused the first bytes.
    Refused(String),
    /// The gate's first bytes did not come (whole) in time.
    GateLate,
    Failed(io::Error),
}

/// Two sockets relayed both ways, and the limits of it.
pub struct Tunnel<'s> {
    pub a: BorrowedFd<'s>,
    pub b: BorrowedFd<'s>,
    /// How long nothing may move before both are closed.
    pub idle: Duration,
    /// How long `a`'s first bytes may take to satisfy the gate.
    pub gate_within: Duration,
}

/// The bytes a tunnel moved: `a` to `b`, `b` to `a`.
pub type Moved = (u64, u64);

/// One way of a tunnel.
struct Way<'b> {
    buf: Vec<u8>,
    /// What `buf[start..end]` holds is still to be written.
    start: usize,
    end: usize,
    /// The last read filled the buffer: more was waiting.
    full: bool,
    grant: Grant<'b>,
    /// The reading side ended; once written out, the writing side is half closed.
    eof: bool,
    done: bool,
    total: u64,
}

/// What a way needs before it can move again.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Turn {
    Moved,
    Read,
    Write,
    Finished,
}

fn would_block(e: Errno) -> bool {
    e == Errno::EAGAIN || e == Errno::EWOULDBLOCK
}

impl<'b> Way<'b> {
    /// A way whose first bytes to write are `pending`.
    fn new(pending: Vec<u8>, budget: &'b Budget) -> Way<'b> {
        let end = pending.len();
        Way {
            buf: pending,
            start: 0,
            end,
            full: false,
            grant: Grant { budget, bytes: 0 },
            eof: false,
            done: false,
            total: 0,
        }
    }

    /// Writes what is pending, and reads and writes once more when all was written.
    fn turn(&mut self, from: BorrowedFd, to: BorrowedFd) -> io::Result<Turn> {
        let mut moved = false;
        loop {
            if self.start < self.end {
                let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
                match socket::send(to.as_raw_fd(), &self.buf[self.start..self.end], flags) {
                    Ok(n) => {
                        self.start += n;
                        self.total += n as u64;
                        moved = true;
                        if self.start < self.end {
                            // The socket took what it had room for.
                            return Ok(Turn::Moved);
                        }
                    }
                    Err(e) if would_block(e) => {
                        return Ok(if moved { Turn::Moved } else { Turn::Write });
                    }
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            if self.eof {
                if !self.done {
                    let _ = socket::shutdown(to.as_raw_fd(), socket::Shutdown::Write);
                    self.done = true;
                }
                return Ok(Turn::Finished);
            }
            if moved {
                // One read a turn: the other way gets its turn.
                return Ok(Turn::Moved);
            }
            self.make_room();
            match socket::recv(from.as_raw_fd(), &mut self.buf, MsgFlags::MSG_DONTWAIT) {
                Ok(0) => {
                    self.eof = true;
                    moved = true;
                }
                Ok(n) => {
                    (self.start, self.end) = (0, n);
                    self.full = n == self.buf.len();
                    moved = true;
                }
                Err(e) if would_block(e) => return Ok(Turn::Read),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Before a read, all written out: a buffer of at least [`FIRST`] bytes, twice as
    /// large when the last read filled it (and the budget has room).
    fn make_room(&mut self) {
        let len = self.buf.len();
        if len < FIRST {
            self.buf = vec![0u8; FIRST];
        } else if self.full && len < MOST && self.grant.add(len) {
            // The old buffer is written out: nothing to copy.
            self.buf = vec![0u8; len * 2];
        }
        self.full = false;
    }
}

impl Tunnel<'_> {
    /// Relays until both ways end: `to_b` is written to `b` first (bytes already read from
    /// `a`), `to_a` to `a`. With a `gate`, what comes from `a` is held until the gate lets
    /// it pass. Whatever the end, the sockets are shut down when it is not [`Ended::Done`].
    pub fn run(&self, to_b: Vec<u8>, to_a: Vec<u8>, gate: Option<GateFn>) -> (Ended, Moved) {
        self.run_within(to_b, to_a, gate, &GROWTH)
    }

    fn run_within(
        &self,
        to_b: Vec<u8>,
        to_a: Vec<u8>,
        gate: Option<GateFn>,
        budget: &Budget,
    ) -> (Ended, Moved) {
        let mut down = Way::new(to_a, budget);
        // Gated, `a`'s first bytes wait for the gate's word.
        let (to_b, held) = match gate {
            Some(_) => (Vec::new(), to_b),
            None => (to_b, Vec::new()),
        };
        let mut up = Way::new(to_b, budget);
        let ended = self.relay(&mut up, &mut down, held, gate);
        if !matches!(ended, Ended::Done) {
            let _ = socket::shutdown(self.a.as_raw_fd(), socket::Shutdown::Both);
            let _ = socket::shutdown(self.b.as_raw_fd(), socket::Shutdown::Both);
        }
        (ended, (up.total, down.total))
    }

    fn relay(
        &self,
        up: &mut Way,
        down: &mut Way,
        mut held: Vec<u8>,
        mut gate: Option<GateFn>,
    ) -> Ended {
        let start = Instant::now();
        let mut active = start;
        let mut gated = gate.is_some();
        loop {
            let mut up_turn = Turn::Finished;
            if gated {
                let verdict = match gate.as_mut() {
                    Some(g) => g(&held),
                    None => Gate::Pass,
                };
                match verdict {
                    Gate::Pass => gated = false,
                    Gate::Refuse(why) => return Ended::Refused(why),
                    Gate::More => match read_more(self.a, &mut held) {
                        Ok(Some(0)) => {
                            // The client ended before the gate could tell: what came is
                            // all there is, and it is incomplete.
                            gated = false;
                            up.eof = true;
                        }
                        Ok(Some(_)) => {
                            active = Instant::now();
                            continue;
                        }
                        Ok(None) => up_turn = Turn::Read,
                        Err(e) => return Ended::Failed(e),
                    },
                }
                if !gated {
                    let eof = up.eof;
                    *up = Way::new(std::mem::take(&mut held), up.grant.budget);
                    up.eof = eof;
                }
            }
            if !gated {
                up_turn = match up.turn(self.a, self.b) {
                    Ok(t) => t,
                    Err(e) => return Ended::Failed(e),
                };
            }
            let down_turn = match down.turn(self.b, self.a) {
                Ok(t) => t,
                Err(e) => return Ended::Failed(e),
            };
            if up_turn == Turn::Finished && down_turn == Turn::Finished {
                return Ended::Done;
            }
            let now = Instant::now();
            if up_turn == Turn::Moved || down_turn == Turn::Moved {
                active = now;
                continue;
            }
            let mut deadline = active + self.idle;
            if gated {
                deadline = deadline.min(start + self.gate_within);
            }
            if now >= deadline {
                return if gated { Ended::GateLate } else { Ended::Idle };
            }
            let mut a_events = PollFlags::empty();
            let mut b_events = PollFlags::empty();
            match up_turn {
                Turn::Read => a_events |= PollFlags::POLLIN,
                Turn::Write => b_events |= PollFlags::POLLOUT,
                _ => {}
            }
            match down_turn {
                Turn::Read => b_events |= PollFlags::POLLIN,
                Turn::Write => a_events |= PollFlags::POLLOUT,
                _ => {}
            }
            // Only what a way waits for: a socket that hung up is reported as ready even
            // for no event, and would wake this loop forever.
            let mut fds = Vec::with_capacity(2);
            if !a_events.is_empty() {
                fds.push(PollFd::new(self.a, a_events));
            }
            if !b_events.is_empty() {
                fds.push(PollFd::new(self.b, b_events));
            }
            let wait = deadline.saturating_duration_since(now);
            // Rounded up: a wake-up just before the deadline would only poll again.
            let ms = wait.as_millis().saturating_add(1);
            let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Ended::Failed(e.into()),
            }
        }
    }
}

/// Reads what `fd` has into `held`, without waiting: None when nothing is there yet.
fn read_more(fd: BorrowedFd, held: &mut Vec<u8>) -> io::Result<Option<usize>> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match socket::recv(fd.as_raw_fd(), &mut chunk, MsgFlags::MSG_DONTWAIT) {
            Ok(n) => {
                held.extend_from_slice(&chunk[..n]);
                return Ok(Some(n));
            }
            Err(e) if would_block(e) => return Ok(None),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads from a socket, waiting for it only until a deadline. For the request head of a
/// client: a socket handed over from inside may still be held by the sandbox, which can
/// clear the read timeout set on it (`SO_RCVTIMEO` belongs to the socket, not to one
/// descriptor), or set `O_NONBLOCK`; neither counts here.
pub struct ReadBefore<'s> {
    pub fd: BorrowedFd<'s>,
    pub until: Instant,
}

impl io::Read for ReadBefore<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match socket::recv(self.fd.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => return Ok(n),
                Err(e) if would_block(e) => wait_for(self.fd, PollFlags::POLLIN, self.until)?,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Writes all of `bytes` to a socket, waiting for room only until `until` (see
/// [`ReadBefore`]: the sandbox can fill the send queue of a socket it holds too, and never
/// read).
pub fn write_all_before(fd: BorrowedFd, mut bytes: &[u8], until: Instant) -> io::Result<()> {
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
    while !bytes.is_empty() {
        match socket::send(fd.as_raw_fd(), bytes, flags) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if would_block(e) => wait_for(fd, PollFlags::POLLOUT, until)?,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Waits until `fd` may be ready for `events`; an error once `until` has passed.
fn wait_for(fd: BorrowedFd, events: PollFlags, until: Instant) -> io::Result<()> {
    let left = until.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    let ms = left.as_millis().saturating_add(1);
    let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
    match poll(&mut [PollFd::new(fd, events)], timeout) {
        Ok(_) | Err(Errno::EINTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Relays `a` and `b` both ways until both directions end. `to_b` is sent to `b` first
/// (bytes already read from `a`), `to_a` to `a`.
pub fn relay<A: Duplex, B: Duplex>(a: A, b: B, to_a: &[u8], to_b: &[u8]) -> io::Result<Moved> {
    let tunnel = Tunnel {
        a: a.as_fd(),
        b: b.as_fd(),
        idle: IDLE_TIMEOUT,
        gate_within: IDLE_TIMEOUT,
    };
    match tunnel.run(to_b.to_vec(), to_a.to_vec(), None) {
        (Ended::Done, moved) => Ok(moved),
        (Ended::Failed(e), _) => Err(e),
        (ended, _) => Err(io::Error::other(format!("{ended:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::thread;

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
        // A tunnel with no budget at all still moves everything, in its first buffers.
        let none = Budget::new(0);
        let (mut tx, from) = UnixStream::pair().unwrap();
        let (to, mut rx) = UnixStream::pair().unwrap();
        let data = pattern(4 << 20, 3);
        let sent = data.clone();
        let writer = thread::spawn(move || {
            tx.write_all(&sent).unwrap();
        });
        let reader = thread::spawn(move || {
            rx.shutdown(Shutdown::Write).unwrap();
            let mut got = Vec::new();
            rx.read_to_end(&mut got).unwrap();
            got
        });
        let tunnel = Tunnel {
            a: from.as_fd(),
            b: to.as_fd(),
            idle: IDLE_TIMEOUT,
            gate_within: IDLE_TIMEOUT,
        };
        let (ended, moved) = tunnel.run_within(Vec::new(), Vec::new(), None, &none);
        assert!(matches!(ended, Ended::Done), "{ended:?}");
        drop(to);
        writer.join().unwrap();
        assert_eq!(moved, (data.len() as u64, 0));
        assert!(reader.join().unwrap() == data);
        assert_eq!(none.taken(), 0);
    }

    fn tunnel<'s>(a: &'s UnixStream, b: &'s UnixStream, idle_ms: u64) -> Tunnel<'s> {
        Tunnel {
            a: a.as_fd(),
            b: b.as_fd(),
            idle: Duration::from_millis(idle_ms),
            gate_within: Duration::from_millis(300),
        }
    }

    /// A client that sends and never reads what comes back (a prompt-injected tool
    /// holding a tunnel): the way towards it stops, its own way still reaches the server
    /// whole, nothing blocks the thread, and the tunnel is closed once nothing moves.
    #[test]
    fn a_client_that_never_reads_stops_only_its_way_and_the_tunnel_ends_when_idle() {
        let (mut client, a) = UnixStream::pair().unwrap();
        let (b, mut server) = UnixStream::pair().unwrap();
        let mut server_w = server.try_clone().unwrap();
        // The server sends without end; it is stopped only by the tunnel's close.
        let flood = thread::spawn(move || {
            let chunk = vec![7u8; 1 << 20];
            let mut sent = 0usize;
            while server_w.write_all(&chunk).is_ok() {
                sent += chunk.len();
            }
            sent
        });
        let upload = pattern(8 << 20, 5);
        let sent = upload.clone();
        let uploader = thread::spawn(move || {
            client.write_all(&sent).unwrap();
            client.shutdown(Shutdown::Write).unwrap();
            client // held open, never read
        });
        let received = thread::spawn(move || {
            let mut got = Vec::new();
            server.read_to_end(&mut got).unwrap();
            got
        });
        let budget = Budget::new(8 << 20);
        let start = Instant::now();
        let (ended, (up, _)) =
            tunnel(&a, &b, 300).run_within(Vec::new(), Vec::new(), None, &budget);
        assert!(matches!(ended, Ended::Idle), "{ended:?}");
        assert!(start.elapsed() < Duration::from_secs(10));
        assert_eq!(up, upload.len() as u64);
        assert!(
            received.join().unwrap() == upload,
            "the upload arrived changed"
        );
        let flooded = flood.join().unwrap();
        assert!(
            flooded < 64 << 20,
            "the relay read {flooded} bytes it could not pass on"
        );
        assert_eq!(budget.taken(), 0);
        drop(uploader.join().unwrap());
    }

    /// Bytes now and then keep a tunnel open past the idle time; silence closes it.
    #[test]
    fn a_tunnel_moving_bytes_stays_open_and_a_silent_one_is_closed() {
        let (mut client, a) = UnixStream::pair().unwrap();
        let (b, mut server) = UnixStream::pair().unwrap();
        let talker = thread::spawn(move || {
            for _ in 0..8 {
                client.write_all(b"x").unwrap();
                thread::sleep(Duration::from_millis(100));
            }
            client
        });
        let reader = thread::spawn(move || {
            let mut got = Vec::new();
            let _ = server.read_to_end(&mut got);
            got.len()
        });
        let start = Instant::now();
        let (ended, moved) = tunnel(&a, &b, 400).run(Vec::new(), Vec::new(), None);
        let took = start.elapsed();
        assert!(matches!(ended, Ended::Idle), "{ended:?}");
        assert!(
            took >= Duration::from_millis(1100),
            "closed while busy: {took:?}"
        );
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert_eq!(moved, (8, 0));
        assert_eq!(reader.join().unwrap(), 8);
        let mut client = talker.join().unwrap();
        let mut rest = Vec::new();
        assert_eq!(
            client.read_to_end(&mut rest).unwrap(),
            0,
            "closed to the client"
        );
    }

    /// What the gate has not passed never reaches the server, while the server's own
    /// bytes reach the client (server-first protocols); a gate not satisfied in time, or
    /// refusing, ends the tunnel.
    #[test]
    fn the_gate_holds_the_first_bytes_and_ends_a_late_or_refused_hello() {
        let mut gate = |held: &[u8]| {
            if held.starts_with(b"BAD") {
                Gate::Refuse("bad".into())
            } else if held.len() < 5 {
                Gate::More
            } else {
                Gate::Pass
            }
        };
        for (sent, expect) in [
            (&b"HEL"[..], "late"),
            (&b"BAD hello"[..], "refused"),
            (&b"HELLO world"[..], "passed"),
        ] {
            let (mut client, a) = UnixStream::pair().unwrap();
            let (b, mut server) = UnixStream::pair().unwrap();
            server.write_all(b"banner").unwrap();
            server.shutdown(Shutdown::Write).unwrap();
            client.write_all(sent).unwrap();
            if expect != "late" {
                // Late: an incomplete hello, and the client's end never comes.
                client.shutdown(Shutdown::Write).unwrap();
            }
            let start = Instant::now();
            let (ended, _) = tunnel(&a, &b, 60_000).run(Vec::new(), Vec::new(), Some(&mut gate));
            assert!(start.elapsed() < Duration::from_secs(5));
            match expect {
                "late" => assert!(matches!(ended, Ended::GateLate), "{ended:?}"),
                "refused" => assert!(matches!(ended, Ended::Refused(_)), "{ended:?}"),
                _ => assert!(matches!(ended, Ended::Done), "{ended:?}"),
            }
            drop((a, b));
            let mut got = Vec::new();
            let _ = server.read_to_end(&mut got);
            let mut back = Vec::new();
            let _ = client.read_to_end(&mut back);
            if expect != "refused" {
                assert_eq!(back, b"banner", "{expect}");
            }
            if expect == "passed" {
                assert_eq!(got, sent, "{expect}");
            } else {
                assert!(got.is_empty(), "{expect}: the server got {got:?}");
            }
        }
    }
}
