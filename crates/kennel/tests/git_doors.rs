#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! Issue 16: git can never be turned against the user. Each test plants, inside a real
//! sandbox, what a prompt-injected agent would to make the user's next git command run its
//! code outside; then the user's own git runs outside, as the same user, and the test checks
//! that nothing ran (a marker file) and that no later sandbox was widened.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;

use common::{stderr, stdout, Fixture, SECRET};

/// A script in the workspace that, run by git outside, creates `marker`: what the agent
/// points git at. Printed as shell lines for a sandboxed script (run from `sub`).
fn plant_script(marker: &Path) -> String {
    format!(
        "printf '#!/bin/sh\\ntouch {m}\\n' > ../.payload.sh && chmod +x ../.payload.sh",
        m = marker.display()
    )
}

/// The user's plain git commands outside the sandbox, in the repository: status, a
/// commit (hooks), a diff.
fn users_next_git(fx: &Fixture) -> std::process::Output {
    fx.as_user(&format!(
        "cd '{}' && git status >/dev/null 2>&1; echo u >> user.txt && git add user.txt && \
         git commit -q -m by-user >/dev/null 2>&1; git diff HEAD~1 >/dev/null 2>&1; true",
        fx.repo.display()
    ))
}

fn assert_nothing_ran(fx: &Fixture, marker: &Path, out: &std::process::Output) {
    let after = users_next_git(fx);
    assert!(after.status.success(), "{}", stderr(&after));
    assert!(
        !marker.exists(),
        "the agent's code ran outside at the user's next git command\nkennel said: {}",
        stderr(out)
    );
}

/// Door 1: `.git/commondir` created (it does not exist in a plain repository) sends git to
/// a copy of the repository whose config runs the agent's fsmonitor.
fn a_created_commondir_runs_nothing(backend: &'static str) {
    let fx = Fixture::new("git-commondir").with_backend(backend);
    let marker = fx.dir.join("ran");
    let out = fx.sandboxed(&format!(
        r#"{plant}
        cd .. && mkdir evil && cp -r .git/objects .git/refs .git/HEAD evil/
        printf '[core]\n\trepositoryformatversion = 0\n\tfsmonitor = %s/.payload.sh\n[user]\n\tname = x\n\temail = x@x\n' "$PWD" > evil/config
        echo "$PWD/evil" > .git/commondir && echo PLANTED"#,
        plant = plant_script(&marker)
    ));
    assert!(stdout(&out).contains("PLANTED"), "{}", stderr(&out));
    assert!(stderr(&out).contains("commondir"), "{}", stderr(&out));
    assert_nothing_ran(&fx, &marker, &out);
}

/// Door 1 in a linked worktree: a `config.worktree` created in its git dir (git reads it
/// where `extensions.worktreeConfig` is on), and the worktree's git dir pointed elsewhere.
fn a_worktrees_pointers_and_config_run_nothing(backend: &'static str) {
    let fx = Fixture::new("git-wtconfig").with_backend(backend);
    let wt = fx.home.join("wt");
    let setup = fx.as_user(&format!(
        "git -C '{r}' config extensions.worktreeConfig true && git -C '{r}' worktree add -q -b feature '{w}'",
        r = fx.repo.display(),
        w = wt.display()
    ));
    assert!(setup.status.success(), "{}", stderr(&setup));
    let marker = fx.dir.join("ran");
    let gitdir = fx.repo.join(".git/worktrees/wt");
    let out = fx.kennel_in(
        &wt,
        &format!(
            r#"printf '#!/bin/sh
touch {m}
' > .payload.sh && chmod +x .payload.sh
            printf '[core]
	fsmonitor = %s/.payload.sh
' "$PWD" > '{g}/config.worktree' && echo PLANTED
            echo "$HOME/.ssh" > '{g}/commondir' 2>/dev/null; true"#,
            m = marker.display(),
            g = gitdir.display()
        ),
    );
    assert!(stdout(&out).contains("PLANTED"), "{}", stderr(&out));
    let after = fx.as_user(&format!(
        "cd '{}' && git status >/dev/null 2>&1; echo u > u && git add u && git commit -q -m u >/dev/null 2>&1; true",
        wt.display()
    ));
    assert!(after.status.success(), "{}", stderr(&after));
    assert!(!marker.exists(), "kennel said: {}", stderr(&out));
    // And the next session there is not widened.
    let next = fx.kennel_in(&wt, "cat ~/.ssh/id_ed25519; true");
    assert!(!stdout(&next).contains(SECRET), "{}", stdout(&next));
}

/// Door 2: `.git` renamed and a `.git` of the agent's put in its place, its hooks and
/// fsmonitor included. On the native and systemd backends `.git` is a mount point and
/// cannot be moved; on the landlock backend the end check puts the original back.
fn a_replaced_dot_git_runs_nothing(backend: &'static str) {
    let fx = Fixture::new("git-replaced").with_backend(backend);
    let marker = fx.dir.join("ran");
    let out = fx.sandboxed(&format!(
        r#"{plant}
        cd .. && mv .git .git-old && echo MOVED
        mkdir .git && cp -r .git-old/objects .git-old/refs .git-old/HEAD .git-old/index .git/ 2>/dev/null
        mkdir -p .git/hooks && cp .payload.sh .git/hooks/pre-commit
        printf '[core]\n\tfsmonitor = %s/.payload.sh\n' "$PWD" > .git/config
        true"#,
        plant = plant_script(&marker)
    ));
    if !common::is_landlock(backend) {
        assert!(
            !stdout(&out).contains("MOVED"),
            "the repository's .git could be renamed"
        );
    } else {
        assert!(stderr(&out).contains("replaced"), "{}", stderr(&out));
    }
    assert_nothing_ran(&fx, &marker, &out);
    let log = fx.as_user(&format!("git -C '{}' log --format=%s", fx.repo.display()));
    assert_eq!(stdout(&log), "by-user\ninitial\n", "{}", stderr(&log));
}

/// Door 3: a nested repository with its own `core.fsmonitor`, staged as a gitlink: the
/// outer `git status` recurses into it.
fn a_nested_repository_runs_nothing(backend: &'static str) {
    let fx = Fixture::new("git-nested").with_backend(backend);
    let marker = fx.dir.join("ran");
    let out = fx.sandboxed(&format!(
        r#"{plant}
        cd .. && git init -q docs/.assets && cd docs/.assets
        git config core.fsmonitor "$PWD/../../.payload.sh"
        echo a > a && git add a && git commit -q -m nested
        cd ../.. && git add docs/.assets && echo PLANTED"#,
        plant = plant_script(&marker)
    ));
    assert!(stdout(&out).contains("PLANTED"), "{}", stderr(&out));
    assert!(stderr(&out).contains("core.fsmonitor"), "{}", stderr(&out));
    assert_nothing_ran(&fx, &marker, &out);
}

/// Door 3 with a config written to look harmless to a line-by-line reader: the setting on
/// the header's line, and a section header git reads as the rest of a continued value.
fn a_nested_config_written_to_fool_a_reader_runs_nothing(backend: &'static str) {
    let fx = Fixture::new("git-fool").with_backend(backend);
    let marker = fx.dir.join("ran");
    let out = fx.sandboxed(&format!(
        r#"{plant}
        cd .. && git init -q vendor/a && git -C vendor/a commit -q --allow-empty -m a
        printf '[core]
	repositoryformatversion = 0
	x = y \
[alias]
	fsmonitor = %s/.payload.sh
' "$PWD" >> vendor/a/.git/config
        git init -q vendor/b && git -C vendor/b commit -q --allow-empty -m b
        printf '[core] fsmonitor = %s/.payload.sh
' "$PWD" >> vendor/b/.git/config
        git add vendor/a vendor/b && echo PLANTED"#,
        plant = plant_script(&marker)
    ));
    assert!(stdout(&out).contains("PLANTED"), "{}", stderr(&out));
    assert_nothing_ran(&fx, &marker, &out);
}

/// A submodule's git directory swapped for one of the agent's (the real one renamed):
/// submodule git dirs are mount points where the backend can make them so; watched
/// elsewhere.
fn a_swapped_submodule_git_dir_runs_nothing(backend: &'static str) {
    let fx = Fixture::new("git-swapmod").with_backend(backend);
    let setup = fx.as_user(&format!(
        r#"set -e
        cd "$HOME" && mkdir lib && cd lib && git init -q -b main . && echo l > l && git add l && git commit -q -m lib
        cd '{repo}' && git -c protocol.file.allow=always submodule -q add "$HOME/lib" lib && git commit -q -m 'add lib'"#,
        repo = fx.repo.display()
    ));
    assert!(setup.status.success(), "{}", stderr(&setup));
    let marker = fx.dir.join("ran");
    let out = fx.sandboxed(&format!(
        r#"{plant}
        cd .. && mv .git/modules/lib .git/modules/lib-old && echo MOVED
        cp -r .git/modules/lib-old .git/modules/lib
        printf '[core]
	fsmonitor = %s/.payload.sh
	worktree = ../../../lib
' "$PWD" > .git/modules/lib/config
        cp .payload.sh .git/modules/lib/hooks/pre-commit
        true"#,
        plant = plant_script(&marker)
    ));
    if !common::is_landlock(backend) {
        assert!(!stdout(&out).contains("MOVED"), "{}", stderr(&out));
    }
    let after = fx.as_user(&format!(
        "cd '{}/lib' && git status >/dev/null 2>&1; echo x >> l && git commit -qam x >/dev/null 2>&1; true",
        fx.repo.display()
    ));
    assert!(after.status.success(), "{}", stderr(&after));
    assert!(!marker.exists(), "kennel said: {}", stderr(&out));
}

/// A nested repository whose git directory is elsewhere in the work tree
/// (`git init --separate-git-dir`), its `.git` file older than the session: the session
/// changes the config it points to.
fn a_separate_git_dir_in_the_work_tree_runs_nothing(backend: &'static str) {
    let fx = Fixture::new("git-separate").with_backend(backend);
    let setup = fx.as_user(&format!(
        r#"set -e; cd '{}' && git init -q --separate-git-dir="$PWD/.vendor-git" vendor/x
        git -C vendor/x commit -q --allow-empty -m x && git add vendor/x && git commit -q -m vendor
        sleep 1.2"#,
        fx.repo.display()
    ));
    assert!(setup.status.success(), "{}", stderr(&setup));
    let marker = fx.dir.join("ran");
    let out = fx.sandboxed(&format!(
        r#"{plant}
        cd .. && git -C vendor/x config core.fsmonitor "$PWD/.payload.sh" && echo PLANTED"#,
        plant = plant_script(&marker)
    ));
    assert!(stdout(&out).contains("PLANTED"), "{}", stderr(&out));
    assert_nothing_ran(&fx, &marker, &out);
}

/// A sibling of door 3: a nested `.git` *file* pointing to a git directory of the agent's.
fn a_nested_git_file_runs_nothing(backend: &'static str) {
    let fx = Fixture::new("git-nestedfile").with_backend(backend);
    let marker = fx.dir.join("ran");
    let out = fx.sandboxed(&format!(
        r#"{plant}
        cd .. && git init -q .hidden/real && git -C .hidden/real config core.fsmonitor "$PWD/.payload.sh"
        git -C .hidden/real commit -q --allow-empty -m x
        mkdir -p vendor/lib && cp -r .hidden/real/* vendor/lib/ 2>/dev/null
        printf 'gitdir: %s/.hidden/real/.git\n' "$PWD" > vendor/lib/.git
        git add vendor/lib && echo PLANTED"#,
        plant = plant_script(&marker)
    ));
    assert!(stdout(&out).contains("PLANTED"), "{}", stderr(&out));
    assert_nothing_ran(&fx, &marker, &out);
}

/// Door 4: hooks that live in the work tree (`core.hooksPath = .githooks`, as husky and
/// lefthook set): the folder is read-only where the backend can make it so, watched where
/// it cannot.
fn hooks_in_the_work_tree_run_nothing(backend: &'static str) {
    let fx = Fixture::new("git-hookspath").with_backend(backend);
    let setup = fx.as_user(&format!(
        "cd '{}' && mkdir .githooks && git config core.hooksPath .githooks",
        fx.repo.display()
    ));
    assert!(setup.status.success(), "{}", stderr(&setup));
    let marker = fx.dir.join("ran");
    let out = fx.sandboxed(&format!(
        r#"{plant}
        cd .. && cp .payload.sh .githooks/pre-commit 2>/dev/null && echo WROTE-HOOK
        true"#,
        plant = plant_script(&marker)
    ));
    if !common::is_landlock(backend) {
        assert!(!stdout(&out).contains("WROTE-HOOK"), "{}", stdout(&out));
    }
    assert_nothing_ran(&fx, &marker, &out);
}

/// Door 4 again, the folder absent at start: the agent creates it.
fn a_hooks_folder_created_in_the_session_runs_nothing(backend: &'static str) {
    let fx = Fixture::new("git-hookspath-new").with_backend(backend);
    let setup = fx.as_user(&format!(
        "cd '{}' && git config core.hooksPath .husky",
        fx.repo.display()
    ));
    assert!(setup.status.success(), "{}", stderr(&setup));
    let marker = fx.dir.join("ran");
    let out = fx.sandboxed(&format!(
        r#"{plant}
        cd .. && mkdir .husky && cp .payload.sh .husky/pre-commit && echo PLANTED"#,
        plant = plant_script(&marker)
    ));
    assert!(stdout(&out).contains("PLANTED"), "{}", stderr(&out));
    assert!(stderr(&out).contains("pre-commit"), "{}", stderr(&out));
    assert_nothing_ran(&fx, &marker, &out);
}

/// A sibling: the repository's config includes a file of the work tree
/// (`include.path = ../.gitconfig.shared`, a common way to share settings).
fn an_included_config_in_the_work_tree_runs_nothing(backend: &'static str) {
    let fx = Fixture::new("git-include").with_backend(backend);
    let setup = fx.as_user(&format!(
        "cd '{}' && printf '[alias]\\n\\tst = status\\n' > .gitconfig.shared && \
         git config include.path ../.gitconfig.shared",
        fx.repo.display()
    ));
    assert!(setup.status.success(), "{}", stderr(&setup));
    let marker = fx.dir.join("ran");
    let out = fx.sandboxed(&format!(
        r#"{plant}
        cd .. && printf '[core]\n\tfsmonitor = %s/.payload.sh\n' "$PWD" >> .gitconfig.shared 2>/dev/null && echo WROTE
        true"#,
        plant = plant_script(&marker)
    ));
    if !common::is_landlock(backend) {
        assert!(!stdout(&out).contains("WROTE"), "{}", stdout(&out));
    }
    assert_nothing_ran(&fx, &marker, &out);
}

/// The repository's own hooks and config: read-only where the backend can; on the landlock
/// backend the hook is moved away and the config put back as it was, while a change that
/// runs nothing (an upstream set by `git branch`) stays.
fn the_repositorys_own_hooks_and_config_run_nothing(backend: &'static str) {
    let fx = Fixture::new("git-own").with_backend(backend);
    let marker = fx.dir.join("ran");
    let out = fx.sandboxed(&format!(
        r#"{plant}
        cd .. && cp .payload.sh .git/hooks/pre-commit 2>/dev/null; cp .payload.sh .git/hooks/post-commit 2>/dev/null
        git config core.fsmonitor "$PWD/.payload.sh" 2>/dev/null
        echo '[alias]' >> .git/config 2>/dev/null
        true"#,
        plant = plant_script(&marker)
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_nothing_ran(&fx, &marker, &out);
    let config = fs::read_to_string(fx.repo.join(".git/config")).unwrap();
    assert!(!config.contains("fsmonitor"), "{config}");
}

/// Door 5, planted by a session: pointers to `~/.ssh` (the one of the issue with a leading
/// space, which git reads as a harmless relative path and old kennel trimmed into the real
/// one) do not widen the next session.
fn a_pointer_to_a_secret_folder_does_not_widen_the_next_session(backend: &'static str) {
    let fx = Fixture::new("git-pointer").with_backend(backend);
    let out = fx.sandboxed(
        r#"cd .. && printf '%s\n' "$HOME/.ssh" > .git/commondir 2>/dev/null; echo done"#,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let next = fx.sandboxed("cat ~/.ssh/id_ed25519; echo next-ran");
    assert!(!stdout(&next).contains(SECRET), "{}", stdout(&next));
    // The user's git works as before.
    let status = fx.as_user(&format!("git -C '{}' status --short", fx.repo.display()));
    assert!(status.status.success(), "{}", stderr(&status));
}

/// A link planted where kennel binds a git file read-only (a new submodule's config ->
/// the SSH key, relative or absolute): the next session must not see the key through it.
fn a_link_planted_where_kennel_binds_shows_nothing(backend: &'static str) {
    let fx = Fixture::new("git-link").with_backend(backend);
    let out = fx.sandboxed(
        r#"cd .. && mkdir -p .git/modules/evil/hooks && ln -s ../../../../.ssh/id_ed25519 .git/modules/evil/config && echo PLANTED"#,
    );
    assert!(stdout(&out).contains("PLANTED"), "{}", stderr(&out));
    // As if the check had not run (a kennel killed without a record): planted by hand.
    let fx2 = Fixture::new("git-link2").with_backend(backend);
    let setup = fx2.as_user(&format!(
        r#"cd '{}' && mkdir -p .git/modules/evil/hooks && ln -s ../../../../.ssh/id_ed25519 .git/modules/evil/config
        mkdir -p .git/modules/evil2 && ln -s "$HOME/.ssh/id_ed25519" .git/modules/evil2/config"#,
        fx2.repo.display()
    ));
    assert!(setup.status.success(), "{}", stderr(&setup));
    for f in [&fx, &fx2] {
        let next =
            f.sandboxed("cat ../.git/modules/evil/config ../.git/modules/evil2/config; true");
        assert!(!stdout(&next).contains(SECRET), "{}", stdout(&next));
    }
}

/// Door 5, the pointer left where kennel's check did not see it (written outside, or by a
/// session whose record was lost): the next session refuses, says why, and reads nothing.
fn a_pointer_left_outside_is_refused(backend: &'static str) {
    let fx = Fixture::new("git-pointer-left").with_backend(backend);
    let home = fx.home.display().to_string();
    fx.write(&fx.repo.join(".git/commondir"), &format!("{home}/.ssh\n"));
    let out = fx.sandboxed("cat ~/.ssh/id_ed25519; echo ran");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("commondir"), "{}", stderr(&out));
    assert!(!stdout(&out).contains(SECRET));
    // A linked worktree whose `.git` file points to `~/.ssh`, and to " ~/.ssh" (a leading
    // space: a relative path to git).
    let wt = fx.home.join("wt");
    for pointer in [format!("{home}/.ssh"), format!(" {home}/.ssh")] {
        fx.write(&wt.join(".git"), &format!("gitdir: {pointer}\n"));
        let out = fx.kennel_in(&wt, "cat ~/.ssh/id_ed25519; echo ran");
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(!stdout(&out).contains(SECRET));
        assert!(stderr(&out).contains("refusing"), "{}", stderr(&out));
    }
}

/// A session whose kennel is killed never reaches the end check: the next session in the
/// workspace runs it first.
fn a_killed_sessions_plant_is_found_by_the_next(backend: &'static str) {
    let fx = Fixture::new("git-killed").with_backend(backend);
    let marker = fx.dir.join("ran");
    let mut child = fx.spawn_sandboxed(&format!(
        r#"{plant}
        cd .. && git init -q nested && git -C nested config core.fsmonitor "$PWD/.payload.sh"
        echo READY; exec sleep 100"#,
        plant = plant_script(&marker)
    ));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.any(|l| l.is_ok_and(|l| l == "READY"));
    child.kill().unwrap();
    let _ = child.wait();
    assert!(ready, "the sandbox did not start");
    let next = fx.sandboxed("true");
    let err = stderr(&next);
    assert!(err.contains("earlier session"), "{err}");
    assert!(err.contains("core.fsmonitor"), "{err}");
    assert_nothing_ran(&fx, &marker, &next);
}

/// A hook that is a link to a script of the work tree: the script is the hook.
fn a_hook_linked_to_a_work_tree_script_runs_nothing(backend: &'static str) {
    let fx = Fixture::new("git-hooklink").with_backend(backend);
    let setup = fx.as_user(&format!(
        r#"set -e; cd '{}' && mkdir scripts && printf '#!/bin/sh
true
' > scripts/pre-commit
        chmod +x scripts/pre-commit && ln -s ../../scripts/pre-commit .git/hooks/pre-commit
        git add scripts && git commit -q -m scripts"#,
        fx.repo.display()
    ));
    assert!(setup.status.success(), "{}", stderr(&setup));
    let marker = fx.dir.join("ran");
    let out = fx.sandboxed(&format!(
        r#"{plant}
        cd .. && cat .payload.sh > scripts/pre-commit 2>/dev/null && echo WROTE
        true"#,
        plant = plant_script(&marker)
    ));
    if !common::is_landlock(backend) {
        assert!(!stdout(&out).contains("WROTE"), "{}", stdout(&out));
    }
    assert_nothing_ran(&fx, &marker, &out);
}

/// Outside any repository the workspace is the current folder: a repository the agent
/// creates there, with its own fsmonitor and hooks, is found when the session ends.
fn a_repository_created_in_a_plain_folder_runs_nothing(backend: &'static str) {
    let fx = Fixture::new("git-plain").with_backend(backend);
    let plain = fx.home.join("plain");
    fx.write(&plain.join("notes.txt"), "notes\n");
    let marker = fx.dir.join("ran");
    let out = fx.kennel_in(
        &plain,
        &format!(
            r#"printf '#!/bin/sh
touch {m}
' > .payload.sh && chmod +x .payload.sh
            git init -q . && git config core.fsmonitor "$PWD/.payload.sh" && cp .payload.sh .git/hooks/pre-commit
            echo PLANTED"#,
            m = marker.display()
        ),
    );
    assert!(stdout(&out).contains("PLANTED"), "{}", stderr(&out));
    let after = fx.as_user(&format!(
        "cd '{}' && git status >/dev/null 2>&1; git add notes.txt && git commit -q -m x >/dev/null 2>&1; true",
        plain.display()
    ));
    assert!(after.status.success(), "{}", stderr(&after));
    assert!(!marker.exists(), "kennel said: {}", stderr(&out));
}

/// A repository whose files are older than the session, moved into place during it (from a
/// folder the check does not look into, or from elsewhere in the workspace): its config
/// did not change, so kennel cannot tell it is the agent's; it names what it runs.
fn a_repository_moved_in_whole_is_named(backend: &'static str) {
    let fx = Fixture::new("git-moved").with_backend(backend);
    let setup = fx.as_user(&format!(
        r#"set -e; cd '{}' && mkdir -p attic && git init -q attic/inner
        git -C attic/inner config core.fsmonitor ./watch.sh
        git -C attic/inner commit -q --allow-empty -m x && sleep 1.2"#,
        fx.repo.display()
    ));
    assert!(setup.status.success(), "{}", stderr(&setup));
    let out = fx.sandboxed("cd .. && mkdir docs && mv attic docs/ && echo MOVED");
    assert!(stdout(&out).contains("MOVED"), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("moved in?"), "{err}");
    assert!(err.contains("core.fsmonitor = ./watch.sh"), "{err}");
}

/// A nested repository deeper than a path can name (PATH_MAX): the check cannot look at it
/// by path, and must say so rather than stay quiet.
fn a_repository_too_deep_to_name_is_not_passed_over(backend: &'static str) {
    let fx = Fixture::new("git-deep").with_backend(backend);
    // Built one folder at a time relative to the last (a shell's `cd` keeps the whole path).
    let out = fx.sandboxed(
        r#"cd .. && python3 -c '
import os
for _ in range(24):
    os.mkdir("d" * 200)
    os.chdir("d" * 200)
for d in (".git", ".git/objects", ".git/refs"):
    os.mkdir(d)
open(".git/HEAD", "w").write("ref: refs/heads/main\n")
open(".git/config", "w").write("[core]\n\tfsmonitor = ./x\n")
print("PLANTED")'"#,
    );
    assert!(stdout(&out).contains("PLANTED"), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("core.fsmonitor") || err.contains("could not look everywhere"),
        "{err}"
    );
}

/// What the end check reads was left by the sandbox: FIFOs where git looks must not hang
/// kennel (nor a huge file fill its memory).
fn fifos_where_git_looks_do_not_hang_kennel(backend: &'static str) {
    let fx = Fixture::new("git-fifo").with_backend(backend);
    let mut child = fx.spawn_sandboxed(
        "cd .. && mkfifo .git/commondir 2>/dev/null; mkdir -p n/m && mkfifo n/.git && \
         git init -q m2 && rm -f m2/.git/config && mkfifo m2/.git/config; echo done",
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    assert!(status.is_some(), "kennel hung: {}", stderr(&out));
    assert!(stderr(&out).contains("n/.git"), "{}", stderr(&out));
    let git = fx.as_user(&format!("git -C '{}' status --short", fx.repo.display()));
    assert!(git.status.success(), "{}", stderr(&git));
}

/// The launch note looks at submodules and included configs too, and prints what it found
/// escaped: a config value cannot forge kennel's lines or drive the terminal.
fn the_launch_note_shows_submodules_and_escapes_values(backend: &'static str) {
    let fx = Fixture::new("git-note").with_backend(backend);
    let setup = fx.as_user(&format!(
        r#"set -e
        cd "$HOME" && mkdir lib && cd lib && git init -q -b main . && echo l > l && git add l && git commit -q -m lib
        cd '{repo}' && git -c protocol.file.allow=always submodule -q add "$HOME/lib" lib && git commit -q -m 'add lib'
        git -C lib config core.fsmonitor ./lib-watch.sh
        git config alias.x "$(printf '!echo \033]52;c;aGk=\007\nkennel: forged')"
        printf '[core]
	pager = ./pager.sh
' > shared.config && git config include.path ../shared.config"#,
        repo = fx.repo.display()
    ));
    assert!(setup.status.success(), "{}", stderr(&setup));
    let out = fx.sandboxed("true");
    let err = stderr(&out);
    assert!(err.contains("core.fsmonitor = ./lib-watch.sh"), "{err}");
    assert!(err.contains("core.pager = ./pager.sh"), "{err}");
    assert!(err.contains("alias.x"), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "an escape reached the terminal: {err:?}"
    );
    assert!(!err.contains("\nkennel: forged"), "{err}");
}

/// The launch note does not walk the workspace (that would cost every start): it names what
/// the nested repositories the last session's check found run.
fn the_launch_note_names_nested_repositories_found_before(backend: &'static str) {
    let fx = Fixture::new("git-note-nested").with_backend(backend);
    let setup = fx.as_user(&format!(
        r#"set -e; cd '{}' && git init -q tools/x && git -C tools/x config core.fsmonitor ./w.sh
        sleep 1.2"#,
        fx.repo.display()
    ));
    assert!(setup.status.success(), "{}", stderr(&setup));
    let first = fx.sandboxed("true");
    assert!(!stderr(&first).contains("WARNING"), "{}", stderr(&first));
    let second = fx.sandboxed("true");
    let err = stderr(&second);
    assert!(err.contains("core.fsmonitor = ./w.sh"), "{err}");
    assert!(err.contains("a nested repository"), "{err}");
}

/// Normal work keeps working inside, and the end check says nothing about it: branches,
/// stash, rebase, a linked worktree inside the workspace, gc.
fn normal_git_work_is_not_reported(backend: &'static str) {
    let fx = Fixture::new("git-normal").with_backend(backend);
    let out = fx.sandboxed(
        r#"set -e; cd ..
        git branch topic && git checkout -q topic && echo t > t && git add t && git commit -q -m topic
        git checkout -q main && echo m > m && git add m && git commit -q -m main
        echo s >> README && git stash -q && git stash pop -q && git checkout -q README
        git checkout -q topic && git rebase -q main && git checkout -q main
        git worktree add -q sub/wt -b wt-branch && (cd sub/wt && echo w > w && git add w && git commit -q -m in-wt)
        git gc -q && echo ALL-DONE"#,
    );
    assert!(stdout(&out).contains("ALL-DONE"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("WARNING"), "{}", stderr(&out));
    let log = fx.as_user(&format!(
        "git -C '{}' log --format=%s wt-branch && git -C '{}/sub/wt' status --short",
        fx.repo.display(),
        fx.repo.display()
    ));
    assert!(log.status.success(), "{}", stderr(&log));
    assert!(stdout(&log).starts_with("in-wt\n"), "{}", stdout(&log));
    // A second session in the same repository starts as before.
    let again = fx.sandboxed("git status --short >/dev/null && echo OK");
    assert!(stdout(&again).contains("OK"), "{}", stderr(&again));
}

/// The end check lists again only the folders the session changed, taking the others from
/// a listing of the work tree made while the session ran (issue 19). What the agent plants
/// after that listing, in folders older than the session, is found all the same: a nested
/// repository in a leaf folder, a repository moved in from a folder the check does not
/// enter, a folder replaced by another of its name.
fn plants_after_the_survey_are_found(backend: &'static str) {
    let fx = Fixture::new("git-survey").with_backend(backend);
    let setup = fx.as_user(&format!(
        r#"set -e; cd '{}' && mkdir -p old/a/b/leaf old/c/leaf2 old/e/sub
        git init -q node_modules/pkg && git -C node_modules/pkg config core.fsmonitor ./watch.sh
        git -C node_modules/pkg commit -q --allow-empty -m x && sleep 1.2"#,
        fx.repo.display()
    ));
    assert!(setup.status.success(), "{}", stderr(&setup));
    let marker = fx.dir.join("ran");
    let out = fx.sandboxed(&format!(
        r#"{plant}
        cd .. && sleep 1
        git init -q old/a/b/leaf/inner && cd old/a/b/leaf/inner
        git config core.fsmonitor "$PWD/../../../../.payload.sh"
        echo a > a && git add a && git commit -q -m nested && cd ../../../../..
        git add old/a/b/leaf/inner
        mv node_modules/pkg old/c/leaf2/
        rm -r old/e && mkdir -p old/e/sub && git init -q old/e/sub/r
        git -C old/e/sub/r config core.hooksPath /tmp && echo PLANTED"#,
        plant = plant_script(&marker)
    ));
    assert!(stdout(&out).contains("PLANTED"), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("old/a/b/leaf/inner"), "{err}");
    assert!(err.contains("core.fsmonitor"), "{err}");
    assert!(err.contains("old/c/leaf2/pkg"), "{err}");
    assert!(err.contains("moved in?"), "{err}");
    assert!(err.contains("old/e/sub/r"), "{err}");
    assert_nothing_ran(&fx, &marker, &out);
}

on_every_backend!(
    a_created_commondir_runs_nothing,
    plants_after_the_survey_are_found,
    a_worktrees_pointers_and_config_run_nothing,
    a_replaced_dot_git_runs_nothing,
    a_nested_repository_runs_nothing,
    the_repositorys_own_hooks_and_config_run_nothing,
    a_nested_git_file_runs_nothing,
    a_separate_git_dir_in_the_work_tree_runs_nothing,
    a_swapped_submodule_git_dir_runs_nothing,
    a_nested_config_written_to_fool_a_reader_runs_nothing,
    hooks_in_the_work_tree_run_nothing,
    a_hooks_folder_created_in_the_session_runs_nothing,
    an_included_config_in_the_work_tree_runs_nothing,
    a_pointer_to_a_secret_folder_does_not_widen_the_next_session,
    a_pointer_left_outside_is_refused,
    a_link_planted_where_kennel_binds_shows_nothing,
    a_killed_sessions_plant_is_found_by_the_next,
    fifos_where_git_looks_do_not_hang_kennel,
    a_repository_too_deep_to_name_is_not_passed_over,
    the_launch_note_shows_submodules_and_escapes_values,
    the_launch_note_names_nested_repositories_found_before,
    a_hook_linked_to_a_work_tree_script_runs_nothing,
    a_repository_created_in_a_plain_folder_runs_nothing,
    a_repository_moved_in_whole_is_named,
    normal_git_work_is_not_reported,
);

/// Door 4's sibling the issue names: a hook manager (the pre-commit framework, lefthook)
/// whose hook, read-only, runs what a file of the work tree lists. The agent adds its
/// command there; the user's next commit would run it. Where the repository's hooks are a
/// manager's, its config is read-only too (native and systemd backends; the landlock
/// backend cannot make a file of the workspace read-only).
fn a_hook_managers_config_runs_nothing(backend: &'static str) {
    let fx = Fixture::new("git-hook-manager").with_backend(backend);
    let setup = fx.as_user(&format!(
        "cd '{}' && printf 'true\\n' > .pre-commit-config.yaml && \
         printf '#!/bin/sh\\n# File generated by pre-commit: https://pre-commit.com\\nsh \"$(git rev-parse --show-toplevel)/.pre-commit-config.yaml\"\\n' > .git/hooks/pre-commit && \
         chmod +x .git/hooks/pre-commit && git add .pre-commit-config.yaml && \
         git commit -q -m manager && sleep 1.2",
        fx.repo.display()
    ));
    assert!(setup.status.success(), "{}", stderr(&setup));
    let marker = fx.dir.join("ran");
    let out = fx.sandboxed(&format!(
        "echo 'touch {}' >> ../.pre-commit-config.yaml && echo WROTE-CONFIG; true",
        marker.display()
    ));
    if common::is_landlock(backend) {
        // Landlock cannot make a file of the workspace read-only: the change is named
        // before the user's next commit, with the look to take.
        assert!(
            stderr(&out).contains(".pre-commit-config.yaml changed in this session")
                && stderr(&out).contains("git diff -- '.pre-commit-config.yaml'"),
            "{}",
            stderr(&out)
        );
        return;
    }
    assert!(!stdout(&out).contains("WROTE-CONFIG"), "{}", stdout(&out));
    assert_nothing_ran(&fx, &marker, &out);
}

#[test]
fn landlock_a_hook_managers_config_changed_is_named() {
    a_hook_managers_config_runs_nothing("landlock");
}

#[test]
fn auto_without_user_namespaces_a_hook_managers_config_changed_is_named() {
    a_hook_managers_config_runs_nothing(common::AUTO);
}

#[test]
fn native_a_hook_managers_config_runs_nothing() {
    a_hook_managers_config_runs_nothing("native");
}

#[test]
fn systemd_a_hook_managers_config_runs_nothing() {
    if common::skip_without_user_manager() {
        return;
    }
    a_hook_managers_config_runs_nothing("systemd");
}

/// Door 3 in a folder the end-of-session walk does not enter (dependencies, build output):
/// the nested repository, staged as a gitlink (`git add -f`), is found through the index.
fn a_nested_repository_in_node_modules_runs_nothing(backend: &'static str) {
    let fx = Fixture::new("git-nested-deps").with_backend(backend);
    let marker = fx.dir.join("ran");
    let out = fx.sandboxed(&format!(
        r#"{plant}
        cd .. && printf 'node_modules/\n' > .gitignore && mkdir -p node_modules/pkg &&
        git init -q node_modules/pkg/inner && cd node_modules/pkg/inner &&
        git config core.fsmonitor "$PWD/../../../.payload.sh" &&
        echo a > a && git add a && git commit -q -m nested &&
        cd ../../.. && git add -f node_modules/pkg/inner && echo PLANTED"#,
        plant = plant_script(&marker)
    ));
    assert!(stdout(&out).contains("PLANTED"), "{}", stderr(&out));
    assert!(stderr(&out).contains("core.fsmonitor"), "{}", stderr(&out));
    assert_nothing_ran(&fx, &marker, &out);
}

#[test]
fn native_a_nested_repository_in_node_modules_runs_nothing() {
    a_nested_repository_in_node_modules_runs_nothing("native");
}

#[test]
fn landlock_a_nested_repository_in_node_modules_runs_nothing() {
    a_nested_repository_in_node_modules_runs_nothing("landlock");
}

#[test]
fn auto_without_user_namespaces_a_nested_repository_in_node_modules_runs_nothing() {
    a_nested_repository_in_node_modules_runs_nothing(common::AUTO);
}

#[test]
fn systemd_a_nested_repository_in_node_modules_runs_nothing() {
    if common::skip_without_user_manager() {
        return;
    }
    a_nested_repository_in_node_modules_runs_nothing("systemd");
}
