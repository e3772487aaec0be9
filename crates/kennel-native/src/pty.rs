//! The sandbox's own terminal (issue 4).
//!
//! Inheriting the user's terminal would let the command push keystrokes into the user's
//! shell with TIOCSTI. Instead the sandbox's init opens a pseudo-terminal from the sandbox's
//! own `devpts` instance, keeps the slave for the command (its controlling terminal, in a new
//! session), and hands the master to the supervisor over a unix socket. The supervisor puts
//! the user's terminal in raw mode and relays bytes both ways ([`Relay`]); keystrokes such as
//! Ctrl-C and Ctrl-Z reach the pseudo-terminal as bytes, and its line discipline turns them
//! into signals for the command's foreground job, exactly as a real terminal would.

use std::io::{IoSlice, IoSliceMut, Stdin, Stdout};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, open, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt, Winsize};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use nix::sys::stat::Mode;
use nix::sys::termios::{
    cfmakeraw, tcgetattr, tcsetattr, SetArg, SpecialCharacterIndices, Termios,
};
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout, isatty, read, write};

use crate::error::NativeError;
use crate::sys::{own_received_fd, set_controlling_terminal, set_window_size, window_size};

/// How much each direction buffers before it stops reading from its source.
const BUFFER: usize = 64 * 1024;
/// Reads of the master between two polls while output flows; a pseudo-terminal hands out a
/// few kilobytes per read. Measured with `bench/pty-throughput.py`: 1 and 1000 are slower.
const READS_PER_WAKE: usize = 16;

/// The user's terminal as it was when kennel started: copied to the sandbox's terminal so
/// that the command starts with the same settings (erase character, UTF-8 input...) and size.
#[derive(Clone)]
pub(crate) struct UserTerminal {
    pub termios: Option<Termios>,
    pub size: Option<Winsize>,
}

impl UserTerminal {
    pub fn read() -> UserTerminal {
        let stdin = std::io::stdin();
        let termios = tcgetattr(&stdin).ok();
        UserTerminal {
            termios,
            size: user_window_size(),
        }
    }
}

/// The window size of the user's terminal: standard input's, or standard output's when
/// only that one is a terminal.
fn user_window_size() -> Option<Winsize> {
    window_size(std::io::stdin().as_fd())
        .or_else(|_| window_size(std::io::stdout().as_fd()))
        .ok()
}

fn setup(what: &'static str) -> impl FnOnce(Errno) -> NativeError {
    move |e| NativeError::Setup(format!("{what}: {e}"))
}

/// Opens a pseudo-terminal in the sandbox's `/dev/ptmx` (its own devpts instance) and
/// gives the slave the user's settings and size. Returns (master, slave).
pub(crate) fn open_in_sandbox(user: &UserTerminal) -> Result<(OwnedFd, OwnedFd), NativeError> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(setup("opening /dev/ptmx"))?;
    grantpt(&master).map_err(setup("grantpt"))?;
    unlockpt(&master).map_err(setup("unlockpt"))?;
    let name = ptsname_r(&master).map_err(setup("ptsname"))?;
    let slave = open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| NativeError::Setup(format!("opening {name}: {e}")))?;
    if let Some(termios) = &user.termios {
        tcsetattr(&slave, SetArg::TCSANOW, termios)
            .map_err(setup("copying the terminal's settings"))?;
    }
    if let Some(size) = &user.size {
        set_window_size(slave.as_fd(), size).map_err(setup("setting the window size"))?;
    }
    Ok((master.into(), slave))
}

/// In the command's process, after `setsid`: makes `slave` its controlling terminal and its
/// standard input and output, and its standard error unless the user redirected kennel's
/// away from the terminal (`2> log`): that file or pipe stays the command's, so that what
/// the command writes there is not lost in the terminal.
pub(crate) fn attach(slave: &OwnedFd) -> nix::Result<()> {
    set_controlling_terminal(slave.as_fd())?;
    dup2_stdin(slave)?;
    dup2_stdout(slave)?;
    if isatty(std::io::stderr()).unwrap_or(true) {
        dup2_stderr(slave)?;
    }
    Ok(())
}

/// Sends `fd` over the unix socket `socket` (SCM_RIGHTS).
pub(crate) fn send_fd(socket: &OwnedFd, fd: BorrowedFd, what: &str) -> Result<(), NativeError> {
    let fds = [fd.as_raw_fd()];
    let payload = [IoSlice::new(b"t")];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(socket.as_raw_fd(), &payload, &cmsg, MsgFlags::empty(), None)
        .map_err(|e| NativeError::Setup(format!("handing {what} to kennel: {e}")))?;
    Ok(())
}

/// Receives the descriptor that [`send_fd`] sent; end of file means none was sent.
pub(crate) fn receive_fd(socket: &OwnedFd, what: &str) -> Result<OwnedFd, NativeError> {
    let mut byte = [0u8; 1];
    let mut payload = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let fail = |why: String| NativeError::Setup(format!("receiving {what}: {why}"));
    let msg = loop {
        match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut payload,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            other => break other.map_err(|e| fail(e.to_string()))?,
        }
    };
    let mut received = None;
    for cmsg in msg.cmsgs().map_err(|e| fail(e.to_string()))? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // Own every descriptor received, so that extra ones get closed.
                let fd = own_received_fd(fd);
                received.get_or_insert(fd);
            }
        }
    }
    received.ok_or_else(|| fail("the sandbox sent none".into()))
}

/// The user's terminal in raw mode, given back its settings when dropped: on every way out
/// of the supervisor, error or not. (Only SIGKILL skips it; the other signals that end
/// kennel are blocked and read from a signalfd, so they end it through a normal return.)
pub(crate) struct RawMode {
    stdin: Stdin,
    saved: Termios,
}

impl RawMode {
    /// Makes standard input raw when it is a terminal (None when it is not). Done before
    /// the sandbox starts, so that keys typed meanwhile are not echoed twice (once by the
    /// user's terminal, once by the sandbox's).
    pub fn enter() -> Result<Option<RawMode>, NativeError> {
        let stdin = std::io::stdin();
        if !isatty(&stdin).unwrap_or(false) {
            return Ok(None);
        }
        let saved = tcgetattr(&stdin).map_err(setup("reading the terminal's settings"))?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).map_err(setup("making the terminal raw"))?;
        Ok(Some(RawMode { stdin, saved }))
    }

    /// Gives the terminal its settings back for a while (kennel is being stopped).
    fn suspend(&self) {
        let _ = tcsetattr(&self.stdin, SetArg::TCSANOW, &self.saved);
    }

    /// Raw again (kennel was continued): from the settings it has now, which the user may
    /// have changed meanwhile.
    fn resume(&self) {
        if let Ok(mut raw) = tcgetattr(&self.stdin) {
            cfmakeraw(&mut raw);
            let _ = tcsetattr(&self.stdin, SetArg::TCSANOW, &raw);
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // TCSANOW: output already written was processed by the settings of its time, and a
        // frozen terminal must not hold kennel's exit.
        let _ = tcsetattr(&self.stdin, SetArg::TCSANOW, &self.saved);
    }
}

/// Adds `fd` to the poll set, if there is one; returns its index.
fn push<'a>(
    fds: &mut Vec<PollFd<'a>>,
    fd: Option<BorrowedFd<'a>>,
    flags: PollFlags,
) -> Option<usize> {
    let fd = fd?;
    fds.push(PollFd::new(fd, flags));
    Some(fds.len() - 1)
}

/// What [`Relay::pump`] saw.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pumped {
    /// Bytes moved, a signal arrived or the timeout passed.
    Continue,
    /// The user's terminal went away (end of file or error on it): the sandbox's terminal
    /// has been hung up, as a closing terminal emulator would.
    HungUp,
}

/// Moves bytes between the user's terminal and the sandbox's pseudo-terminal.
pub(crate) struct Relay {
    /// None once hung up.
    master: Option<OwnedFd>,
    /// False once every slave is closed (reads give EIO).
    master_open: bool,
    stdin: Stdin,
    stdout: Stdout,
    stdin_is_tty: bool,
    stdin_open: bool,
    /// Standard input (not a terminal) ended: send the end-of-file character once the
    /// bytes before it are delivered, so that `echo x | kennel --pty cat` ends.
    eof_pending: bool,
    last_to_master: u8,
    to_master: Vec<u8>,
    to_stdout: Vec<u8>,
    /// Where reads land, allocated once.
    scratch: Vec<u8>,
    /// Held for its Drop, which gives the user's terminal its settings back. Declared last:
    /// the terminal is restored after everything else is dropped.
    _raw: Option<RawMode>,
}

impl Relay {
    /// Takes the master, and the user's terminal in raw mode when standard input is one.
    pub fn start(master: OwnedFd, raw: Option<RawMode>) -> Result<Relay, NativeError> {
        let flags = fcntl(&master, FcntlArg::F_GETFL).map_err(setup("fcntl"))?;
        let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
        fcntl(&master, FcntlArg::F_SETFL(flags)).map_err(setup("fcntl"))?;
        let stdin = std::io::stdin();
        let stdin_is_tty = isatty(&stdin).unwrap_or(false);
        let relay = Relay {
            master: Some(master),
            master_open: true,
            stdin,
            stdout: std::io::stdout(),
            stdin_is_tty,
            stdin_open: true,
            eof_pending: false,
            last_to_master: b'\n',
            to_master: Vec::with_capacity(BUFFER),
            to_stdout: Vec::with_capacity(BUFFER),
            scratch: vec![0; BUFFER],
            _raw: raw,
        };
        // The size may have changed since the sandbox's terminal was made.
        relay.copy_window_size();
        Ok(relay)
    }

    /// Copies the user's window size to the sandbox's terminal (the kernel then sends
    /// SIGWINCH to the command's foreground job).
    pub fn copy_window_size(&self) {
        if let (Some(master), Some(size)) = (&self.master, user_window_size()) {
            let _ = set_window_size(master.as_fd(), &size);
        }
    }

    /// Before kennel stops (SIGTSTP from outside): the user's terminal gets its settings
    /// back, so that the shell that continues is usable. The sandbox runs on.
    pub fn suspend(&self) {
        if let Some(raw) = &self._raw {
            raw.suspend();
        }
    }

    /// After kennel was continued: raw again, and the window size, which may have changed.
    pub fn resume(&self) {
        if let Some(raw) = &self._raw {
            raw.resume();
        }
        self.copy_window_size();
    }

    /// Hangs up the sandbox's terminal: its session gets SIGHUP, as when a terminal closes.
    pub fn hang_up(&mut self) {
        self.master = None;
        self.to_master.clear();
    }

    /// Waits until one of the relayed descriptors or `signals` is ready (or `timeout`),
    /// then moves what can be moved without blocking.
    /// `wake` is one more descriptor whose readiness ends the wait (the init's report).
    pub fn pump(
        &mut self,
        signals: BorrowedFd,
        wake: Option<BorrowedFd>,
        timeout: PollTimeout,
    ) -> Result<Pumped, NativeError> {
        let want_stdin = self.stdin_open && self.master.is_some() && self.to_master.len() < BUFFER;
        let mut master_flags = PollFlags::empty();
        if self.to_stdout.len() < BUFFER {
            master_flags |= PollFlags::POLLIN;
        }
        if !self.to_master.is_empty() {
            master_flags |= PollFlags::POLLOUT;
        }
        let (stdin_ready, master_ready, stdout_ready) = {
            let mut fds = vec![PollFd::new(signals, PollFlags::POLLIN)];
            push(&mut fds, wake, PollFlags::POLLIN);
            let stdin = want_stdin.then(|| self.stdin.as_fd());
            let stdin_slot = push(&mut fds, stdin, PollFlags::POLLIN);
            let master = self.master.as_ref().filter(|_| self.master_open);
            let master_slot = push(&mut fds, master.map(|m| m.as_fd()), master_flags);
            let stdout = (!self.to_stdout.is_empty()).then(|| self.stdout.as_fd());
            let stdout_slot = push(&mut fds, stdout, PollFlags::POLLOUT);
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => {
                    return Err(NativeError::Sys {
                        what: "waiting for the terminal".into(),
                        source: e,
                    })
                }
            }
            let ready = |slot: Option<usize>| {
                slot.and_then(|i| fds.get(i))
                    .and_then(|fd| fd.revents())
                    .is_some_and(|r| !r.is_empty())
            };
            (ready(stdin_slot), ready(master_slot), ready(stdout_slot))
        };

        let mut user_gone = false;
        if stdin_ready {
            user_gone |= self.read_stdin();
        }
        if master_ready {
            // Pass each chunk on at once (the next stage starts sooner), and read a few before
            // polling again, but not so many that keystrokes and signals wait on a flood.
            for _ in 0..READS_PER_WAKE {
                if !self.read_master() {
                    break;
                }
                user_gone |= self.write_stdout();
                if user_gone || !self.to_stdout.is_empty() {
                    break;
                }
            }
            self.write_master();
        }
        if stdout_ready || !self.to_stdout.is_empty() {
            user_gone |= self.write_stdout();
        }
        if !self.to_master.is_empty() {
            self.write_master();
        }
        self.send_pending_eof();
        if user_gone {
            self.hang_up();
            return Ok(Pumped::HungUp);
        }
        Ok(Pumped::Continue)
    }

    /// Returns true when the user's terminal is gone.
    fn read_stdin(&mut self) -> bool {
        let room = BUFFER.saturating_sub(self.to_master.len());
        match read(&self.stdin, &mut self.scratch[..room]) {
            Ok(0) | Err(Errno::EIO) if self.stdin_is_tty => true,
            Ok(0) => {
                self.stdin_open = false;
                self.eof_pending = true;
                false
            }
            Ok(n) => {
                self.to_master.extend_from_slice(&self.scratch[..n]);
                false
            }
            Err(Errno::EAGAIN | Errno::EINTR) => false,
            Err(_) if self.stdin_is_tty => true,
            Err(_) => {
                self.stdin_open = false;
                false
            }
        }
    }

    /// Reads one chunk from the master (the pseudo-terminal hands out a few kilobytes at a
    /// time); returns whether it got bytes.
    fn read_master(&mut self) -> bool {
        let Some(master) = &self.master else {
            return false;
        };
        let room = BUFFER.saturating_sub(self.to_stdout.len());
        loop {
            match read(master, &mut self.scratch[..room]) {
                Ok(0) | Err(Errno::EIO) => {
                    // Every slave is closed: the sandbox is ending.
                    self.master_open = false;
                    return false;
                }
                Ok(n) => {
                    self.to_stdout.extend_from_slice(&self.scratch[..n]);
                    return true;
                }
                Err(Errno::EINTR) => {}
                Err(_) => return false,
            }
        }
    }

    fn write_master(&mut self) {
        let Some(master) = &self.master else {
            return;
        };
        while !self.to_master.is_empty() {
            match write(master, &self.to_master) {
                Ok(n) => {
                    if let Some(&last) = self.to_master[..n].last() {
                        self.last_to_master = last;
                    }
                    self.to_master.drain(..n);
                }
                Err(Errno::EINTR) => {}
                Err(_) => return,
            }
        }
    }

    fn send_pending_eof(&mut self) {
        if !self.eof_pending || !self.to_master.is_empty() {
            return;
        }
        let Some(master) = &self.master else {
            return;
        };
        self.eof_pending = false;
        let Ok(termios) = tcgetattr(master) else {
            return;
        };
        let eof = termios.control_chars[SpecialCharacterIndices::VEOF as usize];
        // In canonical mode a first EOF only ends a partial line.
        if self.last_to_master != b'\n' {
            self.to_master.push(eof);
        }
        self.to_master.push(eof);
        self.write_master();
    }

    /// Writes what it can to standard output; returns true when the user's side is gone.
    fn write_stdout(&mut self) -> bool {
        while !self.to_stdout.is_empty() {
            match write(&self.stdout, &self.to_stdout) {
                Ok(n) => {
                    self.to_stdout.drain(..n);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return false,
                Err(_) => {
                    self.to_stdout.clear();
                    return true;
                }
            }
        }
        false
    }

    /// After the sandbox ended: delivers the last bytes it wrote.
    pub fn finish(&mut self) {
        if self.master_open {
            self.read_master_to_end();
        }
        let stdout = self.stdout.as_fd();
        while !self.to_stdout.is_empty() {
            match write(stdout, &self.to_stdout) {
                Ok(n) => {
                    self.to_stdout.drain(..n);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    let mut fds = [PollFd::new(stdout, PollFlags::POLLOUT)];
                    if !matches!(poll(&mut fds, PollTimeout::from(1000u16)), Ok(1..)) {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    }

    fn read_master_to_end(&mut self) {
        let Some(master) = &self.master else {
            return;
        };
        loop {
            match read(master, &mut self.scratch) {
                Ok(0) => return,
                // What is left is at most the pseudo-terminal's own buffer.
                Ok(n) => self.to_stdout.extend_from_slice(&self.scratch[..n]),
                Err(Errno::EINTR) => {}
                // EIO: no slave is left and everything was read. EAGAIN: nothing more now.
                Err(_) => return,
            }
        }
    }
}
