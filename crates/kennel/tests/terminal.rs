#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! Behaviour tests of the terminal (issue 4): kennel runs in a real pseudo-terminal, a tmux
//! pane driven with `send-keys` and read with `capture-pane`, as the unprivileged test user.
//! Each wait polls the screen until the expected text appears, with a timeout.

mod common;

use std::cell::Cell;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{
    env, eventually, have_program, processes_with, sandbox_available, skip_unless, stderr, Fixture,
};

/// The outer shell's prompt, as `capture-pane` shows it (without its trailing space). It
/// is set through the environment, so it never appears as typed text.
const OUTER_PROMPT: &str = "outer$";

/// A tmux server of the test user with one pane running bash, the "user's shell".
struct Tmux<'a> {
    fx: &'a Fixture,
    socket: PathBuf,
    next: Cell<u32>,
}

/// A kennel started in the pane (see [`Tmux::kennel`]).
#[derive(Clone, Copy)]
struct Started(u32);

impl<'a> Tmux<'a> {
    /// None when the test must stop (tmux missing outside CI, no user namespaces).
    fn start(fx: &'a Fixture, cols: u16, rows: u16) -> Option<Tmux<'a>> {
        if skip_unless(have_program("tmux"), "tmux is not installed") || !sandbox_available(fx) {
            return None;
        }
        let tmux = Tmux {
            fx,
            socket: fx.dir.join("tmux.sock"),
            next: Cell::new(0),
        };
        let out = tmux
            .command()
            .args(["new-session", "-d", "-x", &cols.to_string()])
            .args(["-y", &rows.to_string(), "-c"])
            .arg(&fx.repo)
            .arg(format!(
                "exec env PS1='{OUTER_PROMPT} ' TERM=screen bash --norc --noprofile"
            ))
            .args([";", "set-option", "-g", "status", "off"])
            .output()
            .unwrap_or_else(|e| panic!("tmux: {e}"));
        assert!(out.status.success(), "tmux: {}", stderr(&out));
        tmux.wait_for(OUTER_PROMPT);
        Some(tmux)
    }

    fn command(&self) -> Command {
        let mut cmd = self.fx.user_command("tmux");
        cmd.arg("-S").arg(&self.socket).args(["-f", "/dev/null"]);
        cmd
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = self
            .command()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("tmux: {e}"));
        assert!(out.status.success(), "tmux {args:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` literally, then Enter.
    fn type_line(&self, text: &str) {
        self.tmux(&["send-keys", "-l", text]);
        self.tmux(&["send-keys", "Enter"]);
    }

    /// Presses keys by tmux name (`C-c`, `C-z`...).
    fn press(&self, key: &str) {
        self.tmux(&["send-keys", key]);
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p"])
    }

    /// A number no earlier marker used.
    fn unique(&self) -> u32 {
        let n = self.next.get();
        self.next.set(n + 1);
        1000 + n
    }

    /// Runs `line` in the outer shell and waits until it has finished; returns the screen.
    /// The marker is computed by the shell, so the typed text never matches it.
    fn outer(&self, line: &str) -> String {
        let id = self.unique();
        self.type_line(&format!("{line}; echo outer-$(({id}+0))-done"));
        self.wait_for(&format!("outer-{id}-done"))
    }

    /// Waits until the screen contains `text`; returns the screen.
    fn wait_for(&self, text: &str) -> String {
        self.wait_until(text, |s| s.contains(text))
    }

    fn wait_until(&self, what: &str, mut cond: impl FnMut(&str) -> bool) -> String {
        let mut screen = String::new();
        if eventually(15, || {
            screen = self.screen();
            cond(&screen)
        }) {
            return screen;
        }
        panic!("timed out waiting for {what:?}; the screen shows:\n{screen}");
    }

    /// Starts `kennel ARGS` in the pane. On the same line, the outer shell then prints
    /// kennel's exit status, which [`Tmux::wait_kennel`] waits for: what is typed after
    /// that goes to the outer shell, never into a sandbox about to end.
    fn kennel(&self, args: &str) -> Started {
        let id = self.unique();
        self.type_line(&format!(
            "{} {args}; echo kennel-$(({id}+0))-ended:$?",
            env().kennel.display()
        ));
        Started(id)
    }

    /// Waits until kennel started by `run` has ended; returns its exit status.
    fn wait_kennel(&self, run: Started) -> i32 {
        let needle = format!("kennel-{}-ended:", run.0);
        let mut text = String::new();
        if eventually(15, || {
            text = self.tmux(&["capture-pane", "-p", "-S", "-"]);
            text.contains(&needle)
        }) {
            let rest = text.split(&needle).nth(1).unwrap_or_default();
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            return digits
                .parse()
                .unwrap_or_else(|_| panic!("no status after {needle}: {text}"));
        }
        panic!("kennel never ended; the screen shows:\n{}", self.screen());
    }

    /// Starts an interactive bash in the sandbox and waits until it answers.
    fn sandboxed_bash(&self) -> Started {
        let run = self.kennel("run -- bash --norc --noprofile");
        // $$ is 2 only inside the sandbox (its init is 1): the answer is from inside.
        self.type_line("echo inside-$$-$((20+1))");
        self.wait_for("inside-2-21");
        run
    }

    /// The pid of the process that the pane's shell started (kennel).
    fn kennel_pid(&self) -> u32 {
        let shell: u32 = self
            .tmux(&["display-message", "-p", "#{pane_pid}"])
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("pane pid: {e}"));
        let mut found = None;
        eventually(10, || {
            found = children_of(shell).into_iter().next();
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("kennel is not running in the pane"))
    }

    /// Resizes the window, and waits until tmux has resized the pane's terminal (it may
    /// do so a moment later), so that the next keys reach kennel after the SIGWINCH.
    fn resize(&self, cols: u16, rows: u16) {
        let (cols, rows) = (cols.to_string(), rows.to_string());
        self.tmux(&["resize-window", "-x", &cols, "-y", &rows]);
        let tty = self.tmux(&["display-message", "-p", "#{pane_tty}"]);
        let expected = format!("{rows} {cols}");
        let mut size = String::new();
        assert!(
            eventually(10, || {
                let out = Command::new("stty")
                    .args(["-F", tty.trim(), "size"])
                    .output()
                    .unwrap_or_else(|e| panic!("stty: {e}"));
                size = String::from_utf8_lossy(&out.stdout).trim().to_string();
                size == expected
            }),
            "the pane never became {expected}: {size}"
        );
    }
}

impl Drop for Tmux<'_> {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").output();
    }
}

/// Pids whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if stat_field(child, 4).and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            found.push(child);
        }
    }
    found
}

/// Field `n` (1-based, as in proc(5)) of /proc/PID/stat.
fn stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; it ends at the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace()
        .nth(n.checked_sub(3)?)
        .map(str::to_string)
}

/// A file in the workspace, owned by the test user.
fn workspace_file(fx: &Fixture, name: &str, text: &str) -> PathBuf {
    let path = fx.repo.join(name);
    fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    fx.chown(&path);
    path
}

const CURSES_PROBE: &str = r#"
import curses

def main(win):
    curses.curs_set(0)
    while True:
        rows, cols = win.getmaxyx()
        win.erase()
        win.addstr(0, 0, "size=%dx%d" % (rows, cols))
        # The bottom right corner (the very last cell cannot be written without scrolling).
        win.addstr(rows - 1, cols - 3, "BR")
        win.refresh()
        key = win.getch()
        if key == ord("q"):
            return

curses.wrapper(main)
"#;

/// The row and column of `text` on the last line of `screen` that contains it.
fn bottom_marker(screen: &str, rows: usize, text: &str) -> Option<(usize, usize)> {
    let lines: Vec<&str> = screen.lines().collect();
    let row = lines.iter().rposition(|l| l.contains(text))?;
    let col = lines[row].find(text)?;
    assert!(lines.len() <= rows, "more lines than rows: {screen}");
    Some((row, col))
}

#[test]
fn a_curses_program_renders_at_the_right_size_and_redraws_after_a_resize() {
    let fx = Fixture::new("curses");
    let Some(tmux) = Tmux::start(&fx, 100, 30) else {
        return;
    };
    let have_curses = fx
        .user_command("python3")
        .args(["-c", "import curses"])
        .status()
        .is_ok_and(|s| s.success());
    if skip_unless(have_curses, "python3 with curses is not installed") {
        return;
    }
    workspace_file(&fx, "curses_probe.py", CURSES_PROBE);
    let run = tmux.kennel("run -- python3 curses_probe.py");
    let screen = tmux.wait_until("a 30x100 drawing", |s| {
        s.contains("size=30x100") && bottom_marker(s, 30, "BR") == Some((29, 97))
    });
    assert!(screen.starts_with("size=30x100"), "{screen}");

    tmux.resize(120, 40);
    tmux.wait_until("a 40x120 redraw", |s| {
        s.contains("size=40x120") && bottom_marker(s, 40, "BR") == Some((39, 117))
    });
    tmux.press("q");
    assert_eq!(tmux.wait_kennel(run), 0);
}

#[test]
fn stty_size_inside_follows_the_outer_terminal() {
    let fx = Fixture::new("stty-size");
    let Some(tmux) = Tmux::start(&fx, 90, 25) else {
        return;
    };
    tmux.sandboxed_bash();
    // The terminal comes from the sandbox's own devpts, where it is the only one.
    tmux.type_line("echo tty=$(tty) pts=$(ls /dev/pts | tr '\\n' ,)");
    tmux.wait_for("tty=/dev/pts/0 pts=0,ptmx,");
    tmux.type_line("echo rows-cols=$(stty size | tr ' ' x)");
    tmux.wait_for("rows-cols=25x90");
    tmux.resize(132, 43);
    tmux.type_line("echo rows-cols=$(stty size | tr ' ' x)");
    tmux.wait_for("rows-cols=43x132");
    // A second change, to be sure every SIGWINCH is followed.
    tmux.resize(80, 24);
    tmux.type_line("echo rows-cols=$(stty size | tr ' ' x) lines=$(tput lines)");
    tmux.wait_for("rows-cols=24x80 lines=24");
}

#[test]
fn ctrl_c_interrupts_a_sleep_and_the_sandboxed_shell_survives() {
    let fx = Fixture::new("ctrl-c");
    let Some(tmux) = Tmux::start(&fx, 100, 30) else {
        return;
    };
    let run = tmux.sandboxed_bash();
    let marker = format!("5151.{}", std::process::id());
    tmux.type_line(&format!("sleep {marker}"));
    assert!(
        eventually(10, || !processes_with(&marker).is_empty()),
        "the sleep never started"
    );
    tmux.press("C-c");
    assert!(
        eventually(10, || processes_with(&marker).is_empty()),
        "Ctrl-C did not stop the sleep"
    );
    tmux.type_line("echo survived-$$-$((40+2))");
    tmux.wait_for("survived-2-42");
    // Ctrl-D at an empty prompt ends the shell, and with it kennel.
    tmux.press("C-d");
    assert_eq!(tmux.wait_kennel(run), 0);
}

/// Waits for the `sleep MARKER` inside, presses Ctrl-Z and checks that the sleep stopped
/// and the shell said so, then types `fg` and checks that it runs again.
fn ctrl_z_then_fg(tmux: &Tmux, marker: &str) {
    let mut pid = None;
    assert!(
        eventually(10, || {
            pid = processes_with(marker).into_iter().next();
            pid.is_some()
        }),
        "the sleep never started"
    );
    let pid = pid.unwrap();
    tmux.press("C-z");
    tmux.wait_for("Stopped");
    assert!(
        eventually(10, || stat_field(pid, 3).as_deref() == Some("T")),
        "Ctrl-Z did not stop the sleep"
    );
    tmux.type_line("fg");
    assert!(
        eventually(10, || matches!(
            stat_field(pid, 3).as_deref(),
            Some("S" | "R")
        )),
        "fg did not continue the sleep"
    );
}

#[test]
fn ctrl_z_and_fg_work_in_a_sandboxed_bash() {
    let fx = Fixture::new("ctrl-z");
    let Some(tmux) = Tmux::start(&fx, 100, 30) else {
        return;
    };
    tmux.sandboxed_bash();
    let marker = format!("5252.{}", std::process::id());
    tmux.type_line(&format!("sleep {marker}"));
    ctrl_z_then_fg(&tmux, &marker);
    tmux.press("C-c");
    assert!(eventually(10, || processes_with(&marker).is_empty()));
    tmux.type_line("echo after-fg-$$-$((6*7))");
    tmux.wait_for("after-fg-2-42");
}

/// Without a pseudo-terminal (`--no-pty`, or output redirected), Ctrl-Z stops the
/// sandbox's job with kennel, and `fg` continues both, as for a command without kennel.
#[test]
fn ctrl_z_and_fg_stop_and_continue_the_job_in_piped_mode() {
    ctrl_z_in_piped_mode("native", "5757");
}

/// The same with the landlock backend, whose command is kennel's own child.
#[test]
fn ctrl_z_and_fg_stop_and_continue_the_job_in_piped_mode_with_landlock() {
    ctrl_z_in_piped_mode("landlock", "5759");
}

/// The same where user namespaces are refused: `--backend auto` falls back to landlock
/// after its native attempt, which must leave the signals as the shell gave them.
#[test]
fn ctrl_z_and_fg_stop_and_continue_the_job_in_piped_mode_after_a_fallback() {
    ctrl_z_in_piped_mode(common::AUTO, "5761");
}

fn ctrl_z_in_piped_mode(backend: &str, tag: &str) {
    let fx = Fixture::new(&format!("piped-ctrl-z-{backend}"));
    let Some(tmux) = Tmux::start(&fx, 160, 40) else {
        return;
    };
    let marker = format!("{tag}.{}", std::process::id());
    let kennel = if backend == common::AUTO {
        format!(
            "{} {}",
            common::deny_userns().display(),
            env().kennel.display()
        )
    } else {
        env().kennel.display().to_string()
    };
    // Typed alone: after a stop, the shell would go on with the rest of a command list.
    tmux.type_line(&format!(
        "{kennel} run --backend {backend} --no-pty -- sleep {marker} 2>/dev/null"
    ));
    ctrl_z_then_fg(&tmux, &marker);
    tmux.press("C-c");
    assert!(eventually(10, || processes_with(&marker).is_empty()));
    let screen = tmux.outer("echo status=$?");
    assert!(screen.contains("status=130"), "{screen}");
}

/// With a pseudo-terminal, a SIGTSTP from outside stops kennel with the user's terminal
/// given back (cooked, for the shell that continues); `fg` makes it raw again.
#[test]
fn a_stopped_kennel_gives_the_terminal_back_and_takes_it_again_on_fg() {
    let fx = Fixture::new("sigtstp");
    let Some(tmux) = Tmux::start(&fx, 160, 40) else {
        return;
    };
    let marker = format!("5858.{}", std::process::id());
    // Typed alone: after a stop, the shell would go on with the rest of a command list.
    tmux.type_line(&format!("{} run -- sleep {marker}", env().kennel.display()));
    assert!(
        eventually(10, || !processes_with(&marker).is_empty()),
        "the sleep never started"
    );
    let kennel = tmux.kennel_pid();
    let tty = tmux.tmux(&["display-message", "-p", "#{pane_tty}"]);
    let tty = tty.trim().to_string();
    let flags = || {
        let out = Command::new("stty")
            .args(["-F", &tty, "-a"])
            .output()
            .unwrap_or_else(|e| panic!("stty: {e}"));
        stty_flags(&String::from_utf8_lossy(&out.stdout))
    };
    assert!(
        eventually(10, || flags().iter().any(|f| f == "-icanon")),
        "kennel never made the terminal raw"
    );
    let pid = nix::unistd::Pid::from_raw(i32::try_from(kennel).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTSTP).unwrap();
    tmux.wait_for("Stopped");
    assert_cooked(&tmux);
    // The sandbox runs on meanwhile.
    assert!(!processes_with(&marker).is_empty());
    tmux.type_line("fg");
    assert!(
        eventually(10, || flags().iter().any(|f| f == "-icanon")),
        "fg did not make the terminal raw again"
    );
    tmux.press("C-c");
    assert!(eventually(10, || processes_with(&marker).is_empty()));
    let screen = tmux.outer("echo status=$?");
    assert!(screen.contains("status=130"), "{screen}");
    assert_cooked(&tmux);
}

#[test]
fn the_exit_status_passes_through_the_terminal() {
    let fx = Fixture::new("tty-status");
    let Some(tmux) = Tmux::start(&fx, 100, 30) else {
        return;
    };
    let run = tmux.sandboxed_bash();
    tmux.type_line("exit 42");
    assert_eq!(tmux.wait_kennel(run), 42);
    let run = tmux.kennel("run -- sh -c 'kill -KILL $$'");
    assert_eq!(tmux.wait_kennel(run), 128 + 9);
    // The command was killed, not kennel: the terminal is given back all the same.
    assert_cooked(&tmux);
    // kennel's own failure (after the terminal was made raw) gives it back too.
    let run = tmux.kennel("run -- no-such-program-kennel");
    assert_eq!(tmux.wait_kennel(run), 127);
    assert!(tmux
        .screen()
        .contains("no-such-program-kennel` was not found"));
    assert_cooked(&tmux);
}

/// Asserts that the outer terminal is in its usual cooked mode with echo.
fn assert_cooked(tmux: &Tmux) {
    let screen = tmux.outer("clear; stty -a");
    let flags = stty_flags(&screen);
    for flag in ["icanon", "echo", "isig", "icrnl", "opost"] {
        assert!(
            flags.iter().any(|f| f == flag),
            "{flag} is not on after kennel ended:\n{screen}"
        );
    }
}

/// The words of `stty -a`'s output: "icanon" when set, "-icanon" when not.
fn stty_flags(screen: &str) -> Vec<String> {
    screen
        .split(|c: char| c.is_whitespace() || c == ';')
        .map(str::to_string)
        .collect()
}

#[test]
fn after_kennel_is_killed_by_sigterm_the_terminal_is_cooked_again() {
    let fx = Fixture::new("sigterm");
    let Some(tmux) = Tmux::start(&fx, 160, 40) else {
        return;
    };
    let run = tmux.sandboxed_bash();
    let marker = format!("5353.{}", std::process::id());
    tmux.type_line(&format!("sleep {marker}"));
    assert!(eventually(10, || !processes_with(&marker).is_empty()));
    let kennel = tmux.kennel_pid();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(kennel as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    // The sandboxed bash ignores SIGTERM, but dies of the hang-up of its terminal once its
    // grace period is over.
    assert_eq!(
        tmux.wait_kennel(run),
        128 + 1,
        "kennel did not end after SIGTERM"
    );
    assert!(
        eventually(10, || processes_with(&marker).is_empty()),
        "the sandbox outlived kennel"
    );
    assert_cooked(&tmux);
}

/// An agent saves its state in its TERM handler: SIGTERM to kennel gives it its grace
/// period with its terminal still there (a hang-up at once killed it inside the handler).
#[test]
fn sigterm_lets_the_command_save_its_state_under_a_terminal() {
    let fx = Fixture::new("sigterm-save");
    let Some(tmux) = Tmux::start(&fx, 160, 40) else {
        return;
    };
    let pid = std::process::id();
    let marker = format!("5252.{pid}");
    let run = tmux.kennel(&format!(
        "run -- sh -c 'trap \"sleep 1; echo saved > state-{pid}; exit 0\" TERM; m=5252; \
         sleep $m.{pid} & wait'"
    ));
    assert!(eventually(10, || !processes_with(&marker).is_empty()));
    let kennel = tmux.kennel_pid();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(kennel as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(tmux.wait_kennel(run), 0, "{}", tmux.screen());
    assert_eq!(
        fs::read_to_string(fx.repo.join(format!("state-{pid}"))).unwrap_or_default(),
        "saved\n",
        "the TERM handler did not finish: {}",
        tmux.screen()
    );
    assert_cooked(&tmux);
}

#[test]
fn after_kennel_gets_sigint_or_sighup_the_terminal_is_cooked_again() {
    let fx = Fixture::new("sigint");
    let Some(tmux) = Tmux::start(&fx, 160, 40) else {
        return;
    };
    for (sig, status) in [
        (nix::sys::signal::Signal::SIGINT, 130),
        (nix::sys::signal::Signal::SIGHUP, 129),
    ] {
        let (n, pid) = (5757 + sig as i32, std::process::id());
        let marker = format!("{n}.{pid}");
        // Spelled so that only the sleep's command line contains the marker, not kennel's.
        let run = tmux.kennel(&format!("run -- sh -c 'm={n}; exec sleep $m.{pid}'"));
        assert!(eventually(10, || !processes_with(&marker).is_empty()));
        let kennel = tmux.kennel_pid();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(kennel as i32), sig).unwrap();
        assert_eq!(tmux.wait_kennel(run), status);
        assert!(
            processes_with(&marker).is_empty(),
            "the sandbox outlived kennel"
        );
        assert_cooked(&tmux);
    }
}

#[test]
fn a_sandbox_that_ignores_sigterm_is_killed_after_a_grace_period() {
    let fx = Fixture::new("grace");
    if !sandbox_available(&fx) {
        return;
    }
    let pid = std::process::id();
    let marker = format!("5959.{pid}");
    // Spelled so that only the sleep's command line contains the marker, not kennel's.
    let mut child = fx.spawn_sandboxed(&format!(
        "trap '' HUP INT TERM; m=5959; sleep $m.{pid}; wait"
    ));
    assert!(eventually(10, || !processes_with(&marker).is_empty()));
    let started = std::time::Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 9), "{status:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "kennel took {:?} to end",
        started.elapsed()
    );
    assert!(
        eventually(5, || processes_with(&marker).is_empty()),
        "the sandbox outlived kennel"
    );
}

#[test]
fn closing_the_outer_terminal_ends_the_sandbox() {
    let fx = Fixture::new("sighup");
    let Some(tmux) = Tmux::start(&fx, 100, 30) else {
        return;
    };
    tmux.sandboxed_bash();
    let marker = format!("5454.{}", std::process::id());
    tmux.type_line(&format!("sleep {marker} & sleep {marker}"));
    assert!(eventually(10, || processes_with(&marker).len() >= 2));
    let kennel = tmux.kennel_pid();
    tmux.tmux(&["kill-server"]);
    assert!(
        eventually(10, || processes_with(&marker).is_empty()),
        "the sandbox outlived its terminal: {:?}",
        processes_with(&marker)
    );
    assert!(
        eventually(10, || !Path::new(&format!("/proc/{kennel}")).exists()
            || stat_field(kennel, 3).as_deref() == Some("Z")),
        "kennel outlived its terminal"
    );
}

/// Pushes `sys.argv[1]` and a newline into the input of every terminal it can reach
/// (standard input and /dev/tty) and says what happened to each.
const INJECTOR: &str = r#"
import fcntl, os, sys, termios

def inject(name, fd):
    try:
        for b in (sys.argv[1] + "\n").encode():
            fcntl.ioctl(fd, termios.TIOCSTI, bytes([b]))
        print("probe", name, "injected")
    except OSError as e:
        print("probe", name, "refused", e.errno)

inject("stdin", 0)
try:
    inject("dev-tty", os.open("/dev/tty", os.O_RDWR))
except OSError as e:
    print("probe dev-tty unopenable", e.errno)
"#;

#[test]
fn tiocsti_from_inside_never_reaches_the_outer_shell() {
    let fx = Fixture::new("tiocsti");
    let Some(tmux) = Tmux::start(&fx, 200, 50) else {
        return;
    };
    if skip_unless(have_program("python3"), "python3 is not installed") {
        return;
    }
    workspace_file(&fx, "inject.py", INJECTOR);
    // Outside the workspace: the outer shell can create it, the sandbox cannot.
    let escaped = fx.dir.join("escaped");
    let control = fx.dir.join("control");
    // Control: outside kennel, the same attempt does reach the shell where the kernel still
    // allows TIOCSTI (dev.tty.legacy_tiocsti); elsewhere this test cannot fail.
    tmux.outer(&format!("python3 inject.py 'touch {}'", control.display()));
    if !eventually(3, || control.exists()) {
        eprintln!("note: this kernel refuses TIOCSTI to everyone; the attempt is harmless here");
    }

    for flags in ["", "--no-pty"] {
        tmux.outer("clear");
        let run = tmux.kennel(&format!(
            "run {flags} -- python3 inject.py 'touch {}'",
            escaped.display()
        ));
        assert_eq!(tmux.wait_kennel(run), 0);
        // Let the outer shell read anything that was pushed into its input.
        let screen = tmux.outer("true");
        assert!(
            screen.contains("probe dev-tty"),
            "the probe did not run ({flags}):\n{screen}"
        );
        assert!(
            !escaped.exists(),
            "keystrokes injected inside the sandbox ({flags}) ran in the outer shell:\n{screen}"
        );
    }
}

/// kennel's lines before the command (here the note of a repository's first session) are
/// printed while the user's terminal is still as the user left it: each begins a line of
/// its own, and so does the command's first output after them (in raw mode a newline would
/// not return the cursor, and the command's output would start mid-line).
#[test]
fn lines_before_the_command_end_where_the_commands_output_begins() {
    let fx = Fixture::new("notes-cooked");
    let Some(tmux) = Tmux::start(&fx, 200, 40) else {
        return;
    };
    let run = tmux.kennel("run -- sh -c 'echo FIRST-OUTPUT'");
    assert_eq!(tmux.wait_kennel(run), 0);
    let screen = tmux.screen();
    assert!(
        screen.contains("kennel: note: inside, the repository's .git/config"),
        "the first session's note was not printed:\n{screen}"
    );
    assert!(
        screen.lines().any(|l| l.starts_with("FIRST-OUTPUT")),
        "the command's output does not begin a line:\n{screen}"
    );
}

#[test]
fn the_users_terminal_is_out_of_reach_through_proc() {
    let fx = Fixture::new("proc-fd");
    let Some(tmux) = Tmux::start(&fx, 200, 40) else {
        return;
    };
    // kennel's sandbox init is a clone of kennel: it must not keep kennel's streams (the
    // user's terminal), which the command could open through /proc/1/fd. (The init is
    // non-dumpable too, so that /proc/1/fd is refused altogether: an empty answer.)
    let run = tmux.kennel(
        "run -- sh -c 'for fd in 0 1 2; do echo init-fd$fd=$(readlink /proc/1/fd/$fd); done'",
    );
    assert_eq!(tmux.wait_kennel(run), 0);
    let screen = tmux.screen();
    for fd in 0..3 {
        let line = screen
            .lines()
            .find_map(|l| l.strip_prefix(&format!("init-fd{fd}=")))
            .unwrap_or_else(|| panic!("fd {fd} not probed:\n{screen}"));
        assert!(
            matches!(line.trim(), "" | "/dev/null"),
            "fd {fd} of the init is {line}:\n{screen}"
        );
    }
}

#[test]
fn piped_mode_passes_every_byte_value_unchanged() {
    let fx = Fixture::new("binary");
    if !sandbox_available(&fx) {
        return;
    }
    let data: Vec<u8> = (0..4096u32).map(|i| (i % 256) as u8).collect();
    let mut child = fx
        .kennel()
        .args(["run", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = data.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let mut output = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut output)
        .unwrap();
    writer.join().unwrap().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_eq!(output.len(), data.len(), "bytes were added or lost");
    assert!(output == data, "the bytes changed on the way");
}

#[test]
fn a_broken_pipe_ends_a_command_quietly_as_without_kennel() {
    let fx = Fixture::new("sigpipe");
    if !sandbox_available(&fx) {
        return;
    }
    let out = fx.sandboxed("yes | head -n 1; grep SigIgn /proc/self/status");
    assert_eq!(
        common::stderr(&out),
        "",
        "SIGPIPE must not be ignored inside"
    );
    let text = common::stdout(&out);
    assert!(
        !common::ignores_sigpipe(&text),
        "SIGPIPE is ignored inside: {text}"
    );
}

#[test]
fn piped_mode_has_no_controlling_terminal_even_from_a_terminal() {
    let fx = Fixture::new("no-ctty");
    let Some(tmux) = Tmux::start(&fx, 160, 40) else {
        return;
    };
    let probe = "echo tty_nr=$(cut -d' ' -f7 /proc/self/stat)
if (: </dev/tty) 2>/dev/null; then echo dev-tty=open; else echo dev-tty=none; fi
";
    workspace_file(&fx, "probe.sh", probe);
    // Standard input is a pipe, but kennel's (and the probe's) parents have a terminal.
    let screen = tmux.outer(&format!(
        "echo | {} run -- sh probe.sh",
        env().kennel.display()
    ));
    assert!(screen.contains("tty_nr=0"), "{screen}");
    assert!(screen.contains("dev-tty=none"), "{screen}");
    // --no-pty from a terminal: the streams are the terminal, but not a controlling one.
    tmux.outer("clear");
    let run = tmux.kennel("run --no-pty -- sh probe.sh");
    assert_eq!(tmux.wait_kennel(run), 0);
    let screen = tmux.screen();
    assert!(screen.contains("tty_nr=0"), "{screen}");
    assert!(screen.contains("dev-tty=none"), "{screen}");
}

#[test]
fn ctrl_c_reaches_the_whole_job_in_piped_mode() {
    let fx = Fixture::new("piped-ctrl-c");
    let Some(tmux) = Tmux::start(&fx, 160, 40) else {
        return;
    };
    let marker = format!("5656.{}", std::process::id());
    // Without a pty the command is not in the terminal's foreground group: kennel must pass
    // Ctrl-C on, to the whole job as a terminal would. The shell only runs its trap once
    // the sleep is gone, so both must get it.
    workspace_file(
        &fx,
        "job.sh",
        &format!("trap 'echo trapped-$((3*3))' INT\nsleep {marker}\necho after-$((4*4))\n"),
    );
    let run = tmux.kennel("run -- sh job.sh </dev/null");
    assert!(
        eventually(10, || !processes_with(&marker).is_empty()),
        "the sleep never started"
    );
    tmux.press("C-c");
    assert_eq!(tmux.wait_kennel(run), 0);
    let screen = tmux.wait_for("after-16");
    assert!(screen.contains("trapped-9"), "{screen}");
    assert!(processes_with(&marker).is_empty());
}

/// From a terminal, output redirected to a file is passed through as written (a terminal
/// would have turned each newline into CR LF), and a standard error redirected to a file
/// stays that file while the command still gets a terminal.
#[test]
fn redirected_output_and_errors_reach_their_files_unchanged() {
    let fx = Fixture::new("redirect");
    let Some(tmux) = Tmux::start(&fx, 160, 40) else {
        return;
    };
    let run = tmux.kennel("run -- printf 'a\\nb\\n' > out.txt");
    assert_eq!(tmux.wait_kennel(run), 0);
    assert_eq!(fs::read(fx.repo.join("out.txt")).unwrap(), b"a\nb\n");
    // The marker is computed inside, so the typed line never matches it.
    let run = tmux.kennel("run -- sh -c 'tty; echo to-err-$((6*7)) >&2' 2> err.txt");
    assert_eq!(tmux.wait_kennel(run), 0);
    assert_eq!(fs::read(fx.repo.join("err.txt")).unwrap(), b"to-err-42\n");
    let screen = tmux.screen();
    assert!(screen.contains("/dev/pts/"), "no terminal inside: {screen}");
    assert!(!screen.contains("to-err-42"), "{screen}");
}

#[test]
fn pty_flag_gives_a_terminal_to_piped_input() {
    let fx = Fixture::new("pty-flag");
    if !sandbox_available(&fx) {
        return;
    }
    let mut child = fx
        .kennel()
        .args(["run", "--pty", "--", "sh", "-c", "tty; cat; echo done"])
        .current_dir(&fx.repo)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"line\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("/dev/pts/"), "{text}");
    // The terminal translates newlines (and echoes the input): it is a real one.
    assert!(text.contains("line\r\n"), "{text:?}");
    assert!(text.ends_with("done\r\n"), "{text:?}");
}

#[test]
fn pty_and_no_pty_together_are_refused() {
    let fx = Fixture::new("pty-conflict");
    let out = fx
        .kennel()
        .args(["run", "--pty", "--no-pty", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
}
