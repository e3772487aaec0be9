#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! An independent review's attacks, one behaviour test each, run as the unprivileged test
//! user; regression tests now. Each failed on the code it was written against: the sandbox
//! got through a seam (DESIGN.md, "The seams") that issues 17 and 18 did not name.

mod common;

use std::process::{Command, Stdio};

use common::{stderr, stdout, Fixture};

/// The user's other terminals (`/dev/pts/N` of the host: another window, an ssh session)
/// can be neither written (forged prompts, OSC 52 clipboard writes, title changes) nor read
/// (keystrokes typed there, a password). The native backend mounts a devpts of its own and
/// the landlock backend grants only the command's own terminal; the systemd unit got the
/// host's /dev whole, and kennel's step in the unit now grants only the same devices.
fn the_users_other_terminals_are_out_of_reach(backend: &'static str) {
    let fx = Fixture::new("other-terminal").with_backend(backend);
    // A terminal of the user's outside any sandbox: the test holds its master, as a
    // terminal emulator would; its slave belongs to the user, as logind and sshd make it.
    let pty = nix::pty::openpty(None, None).unwrap();
    let name = nix::unistd::ttyname(&pty.slave).unwrap();
    if common::env().setpriv.is_some() {
        let (uid, gid) = (common::env().uid, common::env().gid);
        nix::unistd::chown(
            &name,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .unwrap();
    }
    // Something typed in that other window, waiting to be read by its shell.
    nix::unistd::write(&pty.master, b"typed-password\n").unwrap();
    let script = format!(
        "printf 'FORGED-BY-THE-SANDBOX\\n' > {tty} 2>/dev/null && echo WROTE; \
         timeout 2 head -c 14 {tty} 2>/dev/null; echo; echo done",
        tty = name.display()
    );
    let out = fx.sandboxed(&script);
    let text = stdout(&out);
    assert!(text.contains("done"), "{backend}: {text} {}", stderr(&out));
    // What reached the other terminal's screen.
    nix::fcntl::fcntl(
        &pty.master,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    let mut screen = vec![0u8; 4096];
    let n = nix::unistd::read(&pty.master, &mut screen).unwrap_or(0);
    let screen = String::from_utf8_lossy(&screen[..n]).into_owned();
    assert!(
        !text.contains("WROTE") && !screen.contains("FORGED"),
        "{backend}: the sandbox wrote to another terminal of the user's ({}): {screen:?}",
        name.display()
    );
    assert!(
        !text.contains("typed-password"),
        "{backend}: the sandbox read what was typed in another terminal of the user's: {text}"
    );
    drop(pty);
}

/// The user's other processes are invisible: their command lines carry tokens
/// (`mysql -pPASSWORD`, `curl -H "Authorization: ..."`). The native backend has a PID
/// namespace, and so has the systemd backend (made by kennel's step inside the unit). The
/// landlock backend names the loss.
fn outside_processes_are_invisible(backend: &'static str) {
    let fx = Fixture::new("outside-procs").with_backend(backend);
    let marker = format!("7{}", std::process::id());
    let mut outside = fx
        .user_command("sh")
        .arg("-c")
        .arg(format!("exec sleep {marker}.5"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = fx.sandboxed(&format!(
        "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f 2>/dev/null; echo; done \
         | grep -c 'sleep {marker}[.]5'; echo done"
    ));
    let _ = outside.kill();
    let _ = outside.wait();
    let text = stdout(&out);
    assert!(text.contains("done"), "{backend}: {text} {}", stderr(&out));
    assert!(
        text.lines().next() == Some("0"),
        "{backend}: a process of the user's outside the sandbox, and its command line, were \
         visible inside: {text}"
    );
}

#[test]
fn native_outside_processes_are_invisible() {
    outside_processes_are_invisible("native");
}

/// The systemd backend's step inside the unit makes a PID namespace of its own (it had
/// none, and the loss was only named): the same holds there.
#[test]
fn systemd_outside_processes_are_invisible() {
    if common::skip_without_user_manager() {
        return;
    }
    outside_processes_are_invisible("systemd");
}

/// The launch note ("X runs a command whenever you use git in this repository") prints
/// git config values and hook names as they are: an escape sequence there retitles the
/// window, erases the line and prints a forged `kennel:` line, or conceals (ESC [8m) the
/// rest of the note, the warning about the hook included. The sandbox writes both where
/// git is not read-only (the landlock backend), and a repository unpacked with its `.git`
/// brings them.
#[test]
fn the_launch_note_escapes_git_config_values_and_hook_names() {
    let fx = Fixture::new("git-note-escapes");
    let out = fx.as_user(
        "cd home/project && \
         printf '[core]\\n\\tpager = less\\033]0;retitled\\007\\033[2K\\rkennel: all clear\\n' \
           >> .git/config && \
         touch \".git/hooks/pre-commit$(printf '\\033[8m')\" && echo planted",
    );
    assert!(stdout(&out).contains("planted"), "{}", stderr(&out));
    let out = fx.sandboxed("true");
    let err = stderr(&out);
    assert!(
        err.contains("runs a command"),
        "no launch note at all: {err}"
    );
    assert!(
        !err.contains('\u{1b}') && !err.contains('\u{7}') && !err.contains('\r'),
        "the launch note printed control characters from .git: {err:?}"
    );
}

/// The exit advice suggests keeping what was written to the ephemeral home by binding its
/// folder read-write (or copying the file back): it refuses a deny-list of places that run
/// outside (TRUSTED in home/suggest.rs), and every place that list misses is suggested.
/// Each of these runs code outside the sandbox once the user pastes the advice and the next
/// session writes there: `~/.bash_aliases` (sourced by Debian's and Ubuntu's ~/.bashrc),
/// `~/bin` (put on PATH by their ~/.profile), `~/.local/lib/pythonX/site-packages/*.pth`
/// (run by every Python start), `~/.cargo` (`~/.cargo/bin` on PATH, config aliases and
/// runners), `~/.vim/plugin`, KDE's `~/.config/plasma-workspace/env/*.sh` (run at login).
#[test]
fn the_exit_advice_never_suggests_a_place_that_runs_outside() {
    let fx = Fixture::new("suggest-runs-outside");
    let out = fx.sandboxed(
        "mkdir -p ~/bin ~/.local/lib/python3.11/site-packages ~/.cargo ~/.vim/plugin \
           ~/.config/plasma-workspace/env && \
         echo 'alias ls=x' > ~/.bash_aliases && \
         printf '#!/bin/sh\\n' > ~/bin/git && \
         echo 'import os' > ~/.local/lib/python3.11/site-packages/zz.pth && \
         printf '[alias]\\nb = \"x\"\\n' > ~/.cargo/config.toml && \
         echo '\" x' > ~/.vim/plugin/x.vim && \
         echo 'x' > ~/.config/plasma-workspace/env/x.sh && echo done",
    );
    assert!(stdout(&out).contains("done"), "{}", stderr(&out));
    let err = stderr(&out);
    let advice: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("read-write = [") || l.contains("copy-back = ["))
        .collect();
    for place in [
        "~/.bash_aliases",
        "\"~/bin\"",
        "~/.local/lib",
        "\"~/.cargo\"",
        "\"~/.vim\"",
        "~/.config/plasma-workspace",
    ] {
        assert!(
            advice.iter().all(|l| !l.contains(place)),
            "the exit advice suggests keeping {place}, where what the next session writes runs \
             outside the sandbox: {advice:#?}"
        );
    }
}

/// The ephemeral home is removed at exit whatever the sandbox left in it. A chain of 1,100
/// nested folders (one second of `mkdir d && cd d`) makes the standard library's
/// `remove_dir_all`, which holds a descriptor per level, fail with EMFILE under the usual
/// desktop limit of 1,024 descriptors: the home stays in the temporary folder, every later
/// start calls it the home of a killed kennel, and `kennel homes --remove` fails the same way.
#[test]
fn a_deep_tree_in_the_home_does_not_outlive_the_session() {
    let fx = Fixture::new("deep-home");
    let out = fx.kennel_via_shell(
        r#"ulimit -n 1024; "$0" run -- sh -c 'cd ~; i=0; while [ $i -lt 1100 ]; do mkdir d && cd d || break; i=$((i+1)); done; echo depth=$i'"#,
    );
    assert!(stdout(&out).contains("depth=1100"), "{}", stderr(&out));
    let homes = fx
        .dir
        .join("tmp")
        .join(format!("kennel-{}", common::env().uid));
    let left: Vec<_> = std::fs::read_dir(&homes)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    let _ = Command::new("rm").arg("-rf").arg(&homes).status();
    assert!(
        left.is_empty() && !stderr(&out).contains("cannot remove"),
        "the sandbox's home outlived the session: {left:?}; {}",
        stderr(&out)
    );
}

/// "Piped or redirected, the streams pass through byte for byte and the command has no
/// controlling terminal" (README). On the landlock backend the command stays in kennel's
/// session, whose controlling terminal is the user's, and `/dev/tty` is among the devices it
/// may open: it writes to the user's terminal around the redirection, and (ignoring SIGTTOU,
/// then `tcsetpgrp`) takes the foreground and reads what the user types. Processes that
/// outlive kennel (see above) keep doing so at the user's shell prompt.
#[test]
fn landlock_a_redirected_command_has_no_controlling_terminal() {
    if common::skip_unless(common::have_program("script"), "script is not installed") {
        return;
    }
    let fx = Fixture::new("landlock-dev-tty").with_backend("landlock");
    let line = format!(
        "{} run --backend landlock --no-pty -- sh -c 'echo VIA-DEV-TTY > /dev/tty; echo done' \
         > /dev/null",
        common::env().kennel.display()
    );
    let out = fx
        .user_command("script")
        .args(["-qec", &line, "/dev/null"])
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !seen.contains("VIA-DEV-TTY"),
        "the sandboxed command wrote to the user's terminal through /dev/tty: {seen:?}"
    );
}

/// "When the command ends, every process of the sandbox dies" (DESIGN.md, promise 6). The
/// landlock backend kills what the command left behind in at most 1,000 rounds, one
/// generation of its children per round (`kill_descendants`): a chain of 1,010 processes,
/// each the parent of the next, leaves the last ten running after kennel has returned,
/// still able to write the workspace (and, without a pseudo-terminal, the user's terminal).
#[test]
fn landlock_no_process_of_the_sandbox_outlives_kennel() {
    let fx = Fixture::new("survivors").with_backend("landlock");
    let marker = format!("9{}", std::process::id() % 100_000);
    let out = fx.sandboxed(&format!(
        r#"export S='if [ $1 -gt 0 ]; then sh -c "$S" x $(($1-1)) & fi; exec sleep {marker}'
        sh -c "$S" x 1010 >/dev/null 2>&1 </dev/null &
        sleep 5; echo started"#
    ));
    assert!(stdout(&out).contains("started"), "{}", stderr(&out));
    let left = common::processes_with(&marker);
    for pid in &left {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(
        left.is_empty(),
        "{} processes of the sandbox outlived kennel",
        left.len()
    );
}

/// Persistence through git (DESIGN.md, promise 3: "nested repositories and submodules, new
/// or old, that git status recurses into"). Only the submodules that exist at the start
/// (`.git/modules/*`) are made read-only. The sandbox makes a new repository inside the
/// workspace, sets its `core.fsmonitor`, and stages it in the outer index as a gitlink
/// (`git add inner`; the index must stay writable): the user's next `git status` in the
/// outer repository, outside the sandbox, runs the command. kennel says nothing at exit nor
/// at the next start.
fn a_new_nested_repository_runs_nothing_outside(backend: &'static str) {
    let fx = Fixture::new("nested-repo").with_backend(backend);
    let out = fx.sandboxed(
        r#"cd .. && git init -q inner && git -C inner commit -q --allow-empty -m x &&
        git -C inner config core.fsmonitor 'echo ran > "$HOME/RAN-OUTSIDE"; false' &&
        git add inner 2>/dev/null && echo staged"#,
    );
    assert!(
        stdout(&out).contains("staged"),
        "{backend}: {}",
        stderr(&out)
    );
    // The landlock backend names the loss of read-only git state at the start.
    let told = stderr(&out).contains("inner") || stderr(&out).contains("read-only git hooks");
    // The user's next git command, outside any sandbox.
    let status = fx.as_user("cd home/project && git status --short");
    let ran = fx.home.join("RAN-OUTSIDE").exists();
    assert!(
        !ran || told,
        "{backend}: `git status` outside ran the core.fsmonitor that the sandbox set in a \
         nested repository, and kennel said nothing: {} {}",
        stdout(&status),
        stderr(&out)
    );
}

/// The same door through the user's other linked worktrees: their git directories live in
/// the workspace's `.git/worktrees/NAME/` and only the current worktree's pointers are
/// read-only. The sandbox points `.git/worktrees/NAME/commondir` of a worktree outside the
/// workspace at a clone it made, whose `core.fsmonitor` runs at the user's next
/// `git status` in that worktree.
fn another_worktrees_pointers_stay_read_only(backend: &'static str) {
    let fx = Fixture::new("worktree-commondir").with_backend(backend);
    let setup =
        fx.as_user("cd home/project && git worktree add -q ../feature -b feature && echo made");
    assert!(stdout(&setup).contains("made"), "{}", stderr(&setup));
    let out = fx.sandboxed(
        r#"cd .. && git clone -q . evil && git -C evil branch -q feature origin/feature &&
        git -C evil config core.fsmonitor 'echo ran > "$HOME/RAN-OUTSIDE"; false' &&
        echo "$PWD/evil/.git" > .git/worktrees/feature/commondir && echo planted"#,
    );
    assert!(
        stdout(&out).contains("planted"),
        "{backend}: {}",
        stderr(&out)
    );
    let told = stderr(&out).contains("worktrees") || stderr(&out).contains("read-only git hooks");
    let status = fx.as_user("cd home/feature && git status --short");
    let ran = fx.home.join("RAN-OUTSIDE").exists();
    assert!(
        !ran || told,
        "{backend}: `git status` in another worktree of the user's ran the core.fsmonitor of a \
         repository the sandbox made: {} {}",
        stderr(&status),
        stderr(&out)
    );
}

/// The `.git` folder itself replaced (DESIGN.md, promise 3, names it): the read-only binds
/// are mounts inside `.git`, and renaming `.git` moves them along (only a mount point
/// itself cannot be renamed). A fresh `.git` in its place, copied from the old one, holds
/// whatever config and hooks the sandbox writes: the user's next `git status` runs its
/// `core.fsmonitor`. Nothing is said at exit.
fn a_replaced_git_folder_runs_nothing_outside(backend: &'static str) {
    let fx = Fixture::new("git-replaced").with_backend(backend);
    let out = fx.sandboxed(
        r#"cd .. && mv .git .git-old && cp -r .git-old .git &&
        git config core.fsmonitor 'echo ran > "$HOME/RAN-OUTSIDE"; false' && echo replaced"#,
    );
    if !stdout(&out).contains("replaced") {
        // Prevented: `.git` is a mount point of the sandbox, which cannot be renamed.
        assert!(
            stderr(&out).contains("Device or resource busy"),
            "{backend}: {}",
            stderr(&out)
        );
        return;
    }
    let told = stderr(&out).contains("fsmonitor") || stderr(&out).contains("read-only git hooks");
    let status = fx.as_user("cd home/project && git status --short");
    let ran = fx.home.join("RAN-OUTSIDE").exists();
    assert!(
        !ran || told,
        "{backend}: `git status` outside ran the core.fsmonitor of the .git folder the sandbox \
         put in place of the protected one: {} {}",
        stdout(&status),
        stderr(&out)
    );
}

/// `core.hooksPath` pointing into the work tree (husky's `.husky`, lefthook): DESIGN.md,
/// promise 3, names it, but only `.git/hooks` is made read-only. The sandbox rewrites
/// `.husky/pre-commit` and the user's next `git commit` outside runs it; the launch note
/// only says that `core.hookspath = .husky` exists, nothing is said at exit.
fn hooks_in_the_work_tree_stay_read_only(backend: &'static str) {
    let fx = Fixture::new("husky").with_backend(backend);
    let setup = fx.as_user(
        "cd home/project && git config core.hooksPath .husky && mkdir .husky && \
         printf '#!/bin/sh\\n' > .husky/pre-commit && chmod +x .husky/pre-commit && echo made",
    );
    assert!(stdout(&setup).contains("made"), "{}", stderr(&setup));
    let out = fx.sandboxed(
        r#"cd .. && echo 'echo ran > "$HOME/RAN-OUTSIDE"' >> .husky/pre-commit && echo planted"#,
    );
    let planted = stdout(&out).contains("planted");
    let told =
        stderr(&out).contains(".husky/pre-commit") || stderr(&out).contains("read-only git hooks");
    let commit = fx.as_user("cd home/project && git commit -q --allow-empty -m by-user");
    let ran = fx.home.join("RAN-OUTSIDE").exists();
    assert!(
        !(planted && ran) || told,
        "{backend}: the user's next `git commit` outside ran what the sandbox wrote into \
         .husky/pre-commit (core.hooksPath): {} {}",
        stderr(&commit),
        stderr(&out)
    );
}

on_every_backend!(
    the_users_other_terminals_are_out_of_reach,
    a_new_nested_repository_runs_nothing_outside,
    another_worktrees_pointers_stay_read_only,
    a_replaced_git_folder_runs_nothing_outside,
    hooks_in_the_work_tree_stay_read_only
);

/// A command that ends with the terminal's colours set to conceal (`ESC [8m`) would hide
/// kennel's own lines at exit (what was written to the home, the network summary, git's
/// warnings): kennel resets the colours before them, where standard error is a terminal.
#[test]
fn kennels_exit_lines_are_never_concealed_by_the_commands_colours() {
    if common::skip_unless(common::have_program("script"), "script is not installed") {
        return;
    }
    let fx = Fixture::new("concealed-exit");
    let line = format!(
        "{} run --no-pty -- sh -c 'echo x > ~/left; printf \"\\033[8m\"'",
        common::env().kennel.display()
    );
    let out = fx
        .user_command("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&out.stdout).into_owned();
    let conceal = seen.find("\u{1b}[8m").unwrap_or_else(|| panic!("{seen:?}"));
    let listing = seen
        .find("kennel: 1 file written")
        .unwrap_or_else(|| panic!("{seen:?}"));
    let reset = seen[conceal..listing].find("\u{1b}[0m");
    assert!(
        reset.is_some(),
        "kennel's lines were left concealed: {seen:?}"
    );
}

/// The repository's `.kennel.toml` can only narrow a sandbox, but one the sandbox made
/// where there was none narrows every later session without the user having written it:
/// named at exit.
#[test]
fn a_repository_config_made_by_the_sandbox_is_named() {
    let fx = Fixture::new("made-kennel-toml");
    let out = fx.sandboxed("printf 'version = 1\\nhidden = [\"src\"]\\n' > ../.kennel.toml");
    assert!(
        stderr(&out).contains(".kennel.toml was created in this session"),
        "{}",
        stderr(&out)
    );
}
