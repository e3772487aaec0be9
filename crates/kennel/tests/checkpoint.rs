#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! Issue 21: nothing lost in the workspace. A real agent-like session, in a real sandbox,
//! as the test user, damages the workspace and the repository's history; `kennel diff`
//! shows it, `kennel undo` brings every file and ref back byte for byte, and undoing the
//! undo returns to the damaged state.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Output;

use common::{stderr, stdout, Fixture};

/// The workspace's files (not `.git`), each with its hash, and the repository's refs and
/// HEAD: what an undo must give back exactly.
fn state(fx: &Fixture) -> String {
    let out = fx.as_user(&format!(
        "cd '{}' && find . -path ./.git -prune -o \\( -type f -o -type l \\) -print | LC_ALL=C sort | \
         while read -r f; do if [ -L \"$f\" ]; then echo \"$f -> $(readlink \"$f\")\"; \
         else sha256sum \"$f\"; fi; done; \
         git for-each-ref --format='%(objectname) %(refname)' 2>/dev/null; \
         git symbolic-ref HEAD 2>/dev/null; true",
        fx.repo.display()
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// Only the files, for a repository whose refs git cannot read (its objects are gone).
fn files(fx: &Fixture) -> String {
    state(fx)
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_hexdigit()) && l.contains("  ./"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `kennel run --checkpoint EXTRA... -- sh -c SCRIPT` in the repository, started.
fn session(fx: &Fixture, extra: &[&str], script: &str) -> Output {
    let out = fx
        .kennel()
        .args(["run", "--checkpoint"])
        .args(extra)
        .args(["--", "sh", "-c", script])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    common::assert_kennel_started(&out);
    out
}

/// `kennel ARGS` in the repository, which must succeed.
fn undone(fx: &Fixture, args: &[&str]) -> Output {
    let out = kennel(fx, args);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    out
}

/// A file of the repository, as text.
fn text(fx: &Fixture, rel: &str) -> String {
    std::fs::read_to_string(fx.repo.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn kennel(fx: &Fixture, args: &[&str]) -> Output {
    fx.kennel()
        .args(args)
        .current_dir(&fx.repo)
        .output()
        .unwrap()
}

/// A repository with history beyond one branch: a second branch, a tag, a stash, untracked
/// and ignored files.
fn project(name: &str, backend: &'static str) -> Fixture {
    let fx = Fixture::new(name).with_backend(backend);
    let out = fx.as_user(&format!(
        r#"set -e; cd '{}'
        mkdir -p src build
        printf 'fn main() {{}}\n' > src/main.rs; printf 'one\ntwo\n' > src/lib.rs
        printf 'build/\n*.log\n' > .gitignore
        git add -A && git commit -q -m code
        git checkout -q -b feature && echo f > feature.txt && git add feature.txt && git commit -q -m feature
        git checkout -q main && git tag v1
        echo stashed >> README && git stash -q
        echo notes > notes.txt; printf '\001\002binary' > build/out.bin; echo log > run.log
        chmod +x src/main.rs"#,
        fx.repo.display()
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    fx
}

/// What a careless (or prompt-injected) agent does: commits, resets the branch back, deletes
/// a branch and a tag, edits, deletes and adds files, and deletes the repository's objects.
const DAMAGE: &str = "git commit -q --allow-empty -m by-agent && git reset -q --hard HEAD~1 && \
    git branch -q -D feature 2>/dev/null; git tag -d v1 >/dev/null; git stash drop -q; \
    rm -rf src notes.txt && echo edited >> README && echo new > added.txt && \
    rm -rf .git/objects && echo DAMAGED";

fn a_session_is_undone_byte_for_byte(backend: &'static str) {
    let fx = project("checkpoint-undo", backend);
    let ignored = fx.repo.join("build/out.bin");
    // The default profile takes no checkpoint unless asked.
    let out = fx.kennel_in(&fx.repo, "echo plain >> notes.txt");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("kennel undo"),
        "the default profile took a checkpoint: {}",
        stderr(&out)
    );
    let before = state(&fx);
    let before_files = files(&fx);
    let out = session(&fx, &["--backend", backend], DAMAGE);
    assert!(stdout(&out).contains("DAMAGED"), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("session 1 changed")
            && said.contains("deleted branch feature")
            && said.contains("`kennel undo 1`"),
        "the end line: {said}"
    );
    let damaged = files(&fx);
    assert_ne!(damaged, before_files);

    let diff = undone(&fx, &["diff", "1"]);
    for expected in [
        "deleted refs/heads/feature",
        "deleted refs/tags/v1",
        "deleted refs/stash",
        "added.txt",
        "+edited",
        "src/lib.rs",
    ] {
        assert!(
            stdout(&diff).contains(expected),
            "{expected}: {}",
            stdout(&diff)
        );
    }

    let dry = undone(&fx, &["undo", "--dry-run"]);
    assert!(stdout(&dry).contains("would"), "{}", stdout(&dry));
    assert_eq!(files(&fx), damaged, "--dry-run changed the workspace");

    let undo = kennel(&fx, &["undo", "1"]);
    assert!(
        undo.status.success(),
        "{}\n{}",
        stdout(&undo),
        stderr(&undo)
    );
    assert_eq!(
        state(&fx),
        before,
        "undo did not give back every file and ref"
    );
    let fsck = fx.as_user(&format!("cd '{}' && git fsck 2>&1", fx.repo.display()));
    assert!(fsck.status.success(), "git fsck: {}", stdout(&fsck));
    assert_eq!(
        std::fs::read(&ignored).unwrap(),
        b"\x01\x02binary",
        "an ignored file was touched"
    );
    let stash = fx.as_user(&format!(
        "cd '{}' && git stash show -p | grep -c stashed",
        fx.repo.display()
    ));
    assert_eq!(stdout(&stash).trim(), "1", "the stash is not back");

    // Undoing the undo returns to the damaged files and refs.
    assert!(stdout(&undo).contains("kennel undo 2"), "{}", stdout(&undo));
    undone(&fx, &["undo", "2"]);
    assert_eq!(files(&fx), damaged, "undoing the undo");
    let branches = fx.as_user(&format!(
        "cd '{}' && git for-each-ref --format='%(refname)'",
        fx.repo.display()
    ));
    assert_eq!(
        stdout(&branches).trim(),
        "refs/heads/main",
        "{}",
        stderr(&branches)
    );

    let list = undone(&fx, &["sessions"]);
    let text = stdout(&list);
    assert!(
        text.contains("   1  ") && text.contains("undo of 1") && text.contains("undo of 2"),
        "{text}"
    );
}

on_every_backend!(a_session_is_undone_byte_for_byte);

/// A file the agent replaced by a link to a secret folder: the undo writes the folder back
/// in the workspace, never through the link.
#[test]
fn undo_never_writes_through_a_link_the_agent_made() {
    let fx = project("checkpoint-link", "native");
    let ssh = fx.home.join(".ssh");
    let script = format!("rm -rf src && ln -s '{}' src && echo LINKED", ssh.display());
    let out = fx
        .kennel()
        .args(["run", "--checkpoint", "--", "sh", "-c", &script])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    common::assert_kennel_started(&out);
    assert!(stdout(&out).contains("LINKED"), "{}", stderr(&out));
    undone(&fx, &["undo"]);
    assert!(!ssh.join("main.rs").exists() && !ssh.join("lib.rs").exists());
    let src = fx.repo.join("src");
    assert!(std::fs::symlink_metadata(&src).unwrap().is_dir());
    assert_eq!(
        std::fs::read_to_string(src.join("lib.rs")).unwrap(),
        "one\ntwo\n"
    );
}

/// What the agent writes in `.gitattributes` names a filter of the user's global config:
/// the checkpoint, which runs outside, never runs it.
#[test]
fn a_checkpoint_runs_no_filter_the_workspace_names() {
    let fx = project("checkpoint-filter", "native");
    let marker = fx.dir.join("filter-ran");
    let out = fx.as_user(&format!(
        "printf '[filter \"x\"]\\n\\tclean = touch {m}; cat\\n\\tsmudge = touch {m}; cat\\n' >> '{home}/.gitconfig'",
        m = marker.display(),
        home = fx.home.display()
    ));
    assert!(out.status.success());
    let out = session(
        &fx,
        &[],
        "echo '* filter=x' > .gitattributes && echo changed > notes.txt",
    );
    assert!(stderr(&out).contains("kennel undo 1"), "{}", stderr(&out));
    undone(&fx, &["undo"]);
    assert!(!marker.exists(), "a filter ran outside the sandbox");
    assert_eq!(text(&fx, "notes.txt"), "notes\n");
    assert!(!fx.repo.join(".gitattributes").exists());
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let fx = project("checkpoint-errors", "native");
    // Before any session.
    let out = kennel(&fx, &["undo"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no session recorded"),
        "{}",
        stderr(&out)
    );

    let out = fx
        .kennel()
        .args([
            "run",
            "--checkpoint",
            "--",
            "sh",
            "-c",
            "echo more >> notes.txt",
        ])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let out = kennel(&fx, &["undo", "99"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no session 99") && stderr(&out).contains("kennel sessions"),
        "{}",
        stderr(&out)
    );

    // While a sandbox runs in this workspace.
    let mut child = fx
        .kennel()
        .args([
            "run",
            "--no-checkpoint",
            "--",
            "sh",
            "-c",
            "echo started; sleep 30",
        ])
        .current_dir(&fx.repo)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "started");
    // Any sandbox, with a checkpoint of its own or not.
    let notes = text(&fx, "notes.txt");
    let out = kennel(&fx, &["undo", "1"]);
    let _ = nix_kill(child.id());
    let _ = child.wait();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("a sandbox is running"),
        "{}",
        stderr(&out)
    );
    assert_eq!(text(&fx, "notes.txt"), notes);

    // A corrupt store: a clear error, the workspace left as it is.
    let store = checkpoint_store(&fx);
    let out = fx.as_user(&format!(
        "find '{}/repo.git/objects' -type f -name '*' ! -name '*.idx' -exec sh -c 'chmod u+w \"$1\"; echo garbage > \"$1\"' _ {{}} \\;",
        store.display()
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = kennel(&fx, &["undo", "1"]);
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert!(stderr(&out).starts_with("kennel: "), "{}", stderr(&out));
    assert_eq!(text(&fx, "notes.txt"), notes);
    // A session still runs, said to be without a checkpoint.
    let out = fx
        .kennel()
        .args(["run", "--checkpoint", "--", "sh", "-c", "echo RAN"])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    assert!(stdout(&out).contains("RAN"), "{}", stderr(&out));
}

fn nix_kill(pid: u32) -> std::io::Result<()> {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    assert!(status.success());
    Ok(())
}

fn checkpoint_store(fx: &Fixture) -> std::path::PathBuf {
    let dir = fx.home.join(".local/state/kennel/checkpoints");
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .collect();
    assert_eq!(entries.len(), 1);
    entries[0].path()
}

/// The repository's `.kennel.toml`, which a sandbox can write, cannot turn checkpoints off.
#[test]
fn a_repository_config_cannot_turn_checkpoints_off() {
    let fx = project("checkpoint-repo-config", "native");
    fx.write(
        &fx.repo.join(".kennel.toml"),
        "version = 1\ncheckpoint = false\n",
    );
    let out = kennel(&fx, &["run", "--checkpoint", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(".kennel.toml") && stderr(&out).contains("`checkpoint`"),
        "{}",
        stderr(&out)
    );
}

/// An agent that ignores everything (`*` in `.gitignore`) and breaks `.git/HEAD` hides its
/// changes from the end checkpoint and from git: the undo still brings the files and refs
/// back, and writes over no file it did not first record.
#[test]
fn an_agent_cannot_make_its_changes_unrecoverable() {
    let fx = project("checkpoint-hide", "native");
    let before = state(&fx);
    let out = fx
        .kennel()
        .args([
            "run",
            "--checkpoint",
            "--",
            "sh",
            "-c",
            "echo '*' > .gitignore && echo overwritten > src/lib.rs && echo overwritten > notes.txt && \
             echo new > added.txt && echo garbage > .git/HEAD && echo HIDDEN",
        ])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    common::assert_kennel_started(&out);
    assert!(stdout(&out).contains("HIDDEN"), "{}", stderr(&out));
    let undo = kennel(&fx, &["undo", "1"]);
    assert!(
        undo.status.success(),
        "{}\n{}",
        stdout(&undo),
        stderr(&undo)
    );
    let after = state(&fx);
    // added.txt was hidden by `*` from every checkpoint: never recorded, it is left alone.
    let without_added: String = after
        .lines()
        .filter(|l| !l.ends_with("./added.txt"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(without_added, before, "the files and refs are not back");
    // What the undo overwrote was recorded first: undoing the undo gives it back.
    undone(&fx, &["undo", "2"]);
    assert_eq!(text(&fx, "src/lib.rs"), "overwritten\n");
}

/// A checkpoint store that the sandbox could write (`XDG_STATE_HOME` in a read-write
/// folder) is not used: the session runs without a checkpoint, and says why.
#[test]
fn a_store_the_sandbox_can_write_is_not_used() {
    let fx = project("checkpoint-writable-store", "native");
    let state_dir = fx.home.join("shared-state");
    fx.as_user(&format!("mkdir -p '{}'", state_dir.display()));
    let out = fx
        .kennel()
        .env("XDG_STATE_HOME", &state_dir)
        .args(["run", "--checkpoint", "--rw"])
        .arg(&state_dir)
        .args(["--", "sh", "-c", "echo x >> notes.txt"])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    common::assert_kennel_started(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no checkpoint") && stderr(&out).contains("the sandbox can write"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("kennel undo"), "{}", stderr(&out));
}

/// `kennel diff` to a terminal shows what the sandbox wrote in a file with its escape
/// sequences made visible (an OSC 52 clipboard write, a title); to a pipe, byte for byte.
#[test]
fn diff_to_a_terminal_escapes_what_the_sandbox_wrote() {
    let fx = project("checkpoint-diff-escape", "native");
    let out = session(
        &fx,
        &[],
        "printf 'x\\033]52;c;cHduZWQ=\\007y\\tz\\n' > notes.txt",
    );
    assert!(stderr(&out).contains("kennel undo 1"), "{}", stderr(&out));
    // `script` gives kennel a terminal as its standard output.
    let tty = fx
        .user_command("script")
        .args(["-q", "-e", "-c"])
        .arg(format!("{} diff 1", common::env().kennel.display()))
        .arg("/dev/null")
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    let shown = stdout(&tty);
    assert!(tty.status.success(), "{shown}{}", stderr(&tty));
    assert!(
        !shown.contains('\u{1b}') && !shown.contains('\u{7}'),
        "{shown:?}"
    );
    assert!(shown.contains("+x\\e]52;c;cHduZWQ=\\u{7}y\tz"), "{shown:?}");
    let piped = kennel(&fx, &["diff", "1"]);
    assert!(
        stdout(&piped).contains("+x\u{1b}]52;c;cHduZWQ=\u{7}y\tz"),
        "{}",
        stdout(&piped)
    );
}

/// A full store (a 256 KiB tmpfs as `XDG_STATE_HOME`): the checkpoint fails with a clear
/// warning, the session still runs, and nothing of the workspace is lost.
#[test]
fn a_full_store_is_said_and_loses_nothing() {
    if common::skip_unless_root("mounting a small tmpfs") {
        return;
    }
    let fx = project("checkpoint-full", "native");
    let state_dir = fx.dir.join("full-state");
    std::fs::create_dir_all(&state_dir).unwrap();
    let mount = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs"])
        .arg(&state_dir)
        .status()
        .unwrap();
    assert!(mount.success());
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(state_dir.clone());
    fx.chown(&state_dir);
    // Incompressible content, larger than the store's room.
    let big = fx.as_user(&format!(
        "head -c 1048576 /dev/urandom > '{}/big.bin'",
        fx.repo.display()
    ));
    assert!(big.status.success());
    let before = state(&fx);
    let out = fx
        .kennel()
        .env("XDG_STATE_HOME", &state_dir)
        .args(["run", "--checkpoint", "--", "sh", "-c", "echo RAN"])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    common::assert_kennel_started(&out);
    assert!(stdout(&out).contains("RAN"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no checkpoint of the workspace was taken"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert_eq!(state(&fx), before, "the workspace changed");
    let undo = fx
        .kennel()
        .env("XDG_STATE_HOME", &state_dir)
        .args(["undo"])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    assert_eq!(undo.status.code(), Some(2), "{}", stderr(&undo));
    assert_eq!(state(&fx), before, "a failed undo changed the workspace");
}

/// Attack review, issue 21: what a sandbox leaves in the repository's git folders must not
/// turn an undo into a write elsewhere. A link as `.git/HEAD` (to a file of the home) and
/// a link as `.git/refs` (to another repository's refs): the undo refuses and writes
/// nothing there.
#[test]
fn undo_refuses_links_in_the_git_folders() {
    for (name, plant) in [
        (
            "head",
            "rm .git/HEAD && ln -s \"$VICTIM/victim.txt\" .git/HEAD && rm notes.txt",
        ),
        (
            "refs",
            "mv .git/refs .git/refs.old && ln -s \"$VICTIM/refs\" .git/refs && rm notes.txt",
        ),
    ] {
        let fx = project(&format!("checkpoint-link-{name}"), "native");
        let victim = fx.home.join("victim");
        let out = fx.as_user(&format!(
            "mkdir -p '{v}/refs/heads' && echo precious > '{v}/victim.txt'",
            v = victim.display()
        ));
        assert!(out.status.success());
        let out = fx
            .kennel()
            .env("VICTIM", &victim)
            .args(["run", "--checkpoint", "--rw"])
            .arg(&victim)
            .args(["--", "sh", "-c", plant])
            .current_dir(&fx.repo)
            .output()
            .unwrap();
        common::assert_kennel_started(&out);
        let undo = kennel(&fx, &["undo", "1"]);
        assert_eq!(undo.status.code(), Some(2), "{name}: {}", stderr(&undo));
        assert!(
            stderr(&undo).contains("is a link") && stderr(&undo).contains("nothing was changed"),
            "{name}: {}",
            stderr(&undo)
        );
        assert_eq!(
            std::fs::read_to_string(victim.join("victim.txt")).unwrap(),
            "precious\n",
            "{name}"
        );
        let listed = fx.as_user(&format!("find '{}/refs' -type f", victim.display()));
        assert_eq!(stdout(&listed), "", "{name}: the undo wrote refs elsewhere");
        assert!(
            !fx.repo.join("notes.txt").exists(),
            "{name}: the undo changed files"
        );
    }
}

/// An empty repository made inside the workspace (`git init vendor`) is one path git cannot
/// add: a warning, and every other file is still recorded and undone.
#[test]
fn a_nested_empty_repository_does_not_stop_checkpoints() {
    let fx = project("checkpoint-nested", "native");
    let out = session(&fx, &[], "git init -q vendor && echo changed > notes.txt");
    assert!(stderr(&out).contains("kennel undo 1"), "{}", stderr(&out));
    undone(&fx, &["undo", "1"]);
    assert_eq!(text(&fx, "notes.txt"), "notes\n");
}

/// An ignored file whose name git quotes (a `"`, a tab, bytes that are not UTF-8) is left
/// alone by an undo like any other ignored file.
#[test]
fn ignored_files_with_quoted_names_are_kept() {
    let fx = project("checkpoint-quoted", "native");
    let out = fx.as_user(&format!(
        "cd '{}' && echo '*.env' >> .gitignore && git commit -qam ignore-env && \
         echo a > 'my \"prod\".env' && printf b > \"$(printf 'tab\\there.env')\" && \
         printf c > \"$(printf 'latin\\351.env')\"",
        fx.repo.display()
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    session(&fx, &[], "printf '' > .gitignore");
    undone(&fx, &["undo", "1"]);
    assert_eq!(
        std::fs::read_to_string(fx.repo.join("my \"prod\".env")).unwrap(),
        "a\n"
    );
    assert_eq!(std::fs::read(fx.repo.join("tab\there.env")).unwrap(), b"b");
    let path = fx
        .repo
        .join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"latin\xe9.env"));
    assert_eq!(std::fs::read(path).unwrap(), b"c");
}

/// On the landlock backend the repository's `info/exclude` is writable: a session that
/// changes it (what every later checkpoint leaves out) says so at its end.
#[test]
fn a_changed_info_exclude_is_said() {
    let fx = project("checkpoint-exclude", "landlock");
    let out = session(
        &fx,
        &["--backend", "landlock"],
        "echo '*.txt' >> .git/info/exclude",
    );
    assert!(
        stderr(&out).contains("changed .git/info/exclude"),
        "{}",
        stderr(&out)
    );
}

/// `checkpoint-keep` in the user's config: the sessions past it are dropped at the end of
/// a session; `--prune` frees their space; a repository's `.kennel.toml` cannot set it.
#[test]
fn the_keep_rule_of_the_config_is_applied() {
    let fx = project("checkpoint-keep", "native");
    fx.write(
        &fx.home.join(".config/kennel/config.toml"),
        "[defaults]\ncheckpoint-keep = 2\n",
    );
    for n in 1..=4 {
        let out = session(&fx, &[], &format!("echo {n} >> notes.txt"));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let list = kennel(&fx, &["sessions"]);
    let text = stdout(&list);
    let rows: Vec<&str> = text.lines().map(str::trim_start).collect();
    assert!(
        rows.len() == 2 && rows[0].starts_with("3 ") && rows[1].starts_with("4 "),
        "{text}"
    );
    let prune = undone(&fx, &["sessions", "--prune"]);
    assert!(
        stdout(&prune).contains("kept the newest 2"),
        "{}",
        stdout(&prune)
    );
    let undo = kennel(&fx, &["undo", "1"]);
    assert_eq!(undo.status.code(), Some(2), "{}", stderr(&undo));

    fx.write(
        &fx.repo.join(".kennel.toml"),
        "version = 1\ncheckpoint-keep = 1\n",
    );
    let out = kennel(&fx, &["run", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`checkpoint-keep`"),
        "{}",
        stderr(&out)
    );
}

/// A linked worktree as the workspace: its files, its branch (in the main repository's
/// refs) and its HEAD are recorded and put back; the main worktree's files are not touched.
#[test]
fn a_linked_worktree_is_undone() {
    let fx = project("checkpoint-worktree", "native");
    let wt = fx.home.join("wt");
    let out = fx.as_user(&format!(
        "cd '{}' && git worktree add -q -b side '{}'",
        fx.repo.display(),
        wt.display()
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let main_before = state(&fx);
    let branch = |fx: &Fixture| {
        stdout(&fx.as_user(&format!(
            "git -C '{}' rev-parse refs/heads/side",
            fx.repo.display()
        )))
    };
    let side_before = branch(&fx);
    let out = fx
        .kennel()
        .args([
            "run",
            "--checkpoint",
            "--",
            "sh",
            "-c",
            "echo wt >> README && git commit -qam in-worktree && rm src/lib.rs && echo DONE",
        ])
        .current_dir(&wt)
        .output()
        .unwrap();
    common::assert_kennel_started(&out);
    assert!(stdout(&out).contains("DONE"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("moved branch side"),
        "{}",
        stderr(&out)
    );
    assert_ne!(branch(&fx), side_before);
    let undo = fx
        .kennel()
        .args(["undo"])
        .current_dir(&wt)
        .output()
        .unwrap();
    assert!(
        undo.status.success(),
        "{}\n{}",
        stdout(&undo),
        stderr(&undo)
    );
    assert_eq!(
        branch(&fx),
        side_before,
        "the worktree's branch is not back"
    );
    assert_eq!(
        std::fs::read_to_string(wt.join("README")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        std::fs::read_to_string(wt.join("src/lib.rs")).unwrap(),
        "one\ntwo\n"
    );
    // The main worktree: its files as they were (its refs include `side`, now back too).
    assert_eq!(state(&fx), main_before);
}

/// An agent's profile takes a checkpoint without being asked; `checkpoint = false` in the
/// user's config turns it off; `--checkpoint` turns it back on for one run.
#[test]
fn agent_profiles_checkpoint_unless_the_config_says_not() {
    let fx = project("checkpoint-agent", "native");
    let agent = |extra: &[&str]| {
        let out = fx
            .kennel()
            .args(["run", "--profile", "aider"])
            .args(extra)
            .args(["--", "sh", "-c", "echo agent >> notes.txt"])
            .current_dir(&fx.repo)
            .output()
            .unwrap();
        common::assert_kennel_started(&out);
        assert!(out.status.success(), "{}", stderr(&out));
        stderr(&out)
    };
    assert!(
        agent(&[]).contains("kennel undo 1"),
        "no checkpoint by default"
    );
    fx.write(
        &fx.home.join(".config/kennel/config.toml"),
        "[profile.aider]\ncheckpoint = false\n",
    );
    let said = agent(&[]);
    assert!(!said.contains("kennel undo"), "{said}");
    assert!(agent(&["--checkpoint"]).contains("kennel undo 2"));
}

/// What `kennel undo` lists names files the sandbox made: their control characters are
/// printed as escapes.
#[test]
fn undo_lists_file_names_escaped() {
    let fx = project("checkpoint-names", "native");
    session(&fx, &[], "touch \"$(printf 'evil\\033]0;owned\\007.txt')\"");
    let dry = undone(&fx, &["undo", "--dry-run"]);
    let listed = stdout(&dry);
    assert!(
        !listed.contains('\u{1b}') && !listed.contains('\u{7}'),
        "{listed:?}"
    );
    assert!(
        listed.contains("delete evil\\e]0;owned\\u{7}.txt"),
        "{listed}"
    );
}

/// What kennel's outside git reads in the workspace: a FIFO does not hang the checkpoint,
/// and a link to a secret of the home is recorded as a link, never as the secret.
#[test]
fn a_fifo_and_a_link_to_a_secret_are_recorded_as_what_they_are() {
    let fx = project("checkpoint-fifo-link", "native");
    let key = fx.home.join(".ssh/id_ed25519");
    let out = session(
        &fx,
        &[],
        &format!("mkfifo pipe && ln -s '{}' key && echo DONE", key.display()),
    );
    assert!(stdout(&out).contains("DONE"), "{}", stderr(&out));
    assert!(stderr(&out).contains("kennel undo 1"), "{}", stderr(&out));
    let diff = undone(&fx, &["diff", "1"]);
    let shown = stdout(&diff);
    assert!(
        shown.contains("key") && !shown.contains(common::SECRET),
        "{shown}"
    );
    assert!(shown.contains(&format!("+{}", key.display())), "{shown}");
    let store = checkpoint_store(&fx);
    let grep = fx.as_user(&format!(
        "git --git-dir '{}/repo.git' grep -q {} $(git --git-dir '{}/repo.git' for-each-ref --format='%(objectname)' refs/kennel/) --",
        store.display(),
        common::SECRET,
        store.display()
    ));
    assert_eq!(grep.status.code(), Some(1), "the secret is in the store");
    undone(&fx, &["undo", "1"]);
    // The link is removed; the FIFO, which git does not record, is left as it is.
    assert!(std::fs::symlink_metadata(fx.repo.join("key")).is_err());
    assert!(std::fs::symlink_metadata(fx.repo.join("pipe")).is_ok());
}
