#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! An independent review of the end check's survey (the work tree listed while the sandbox
//! runs; at the end, a folder whose ctime is still older than the start is taken from it),
//! attacked as a prompt-injected agent inside the sandbox would, run as the unprivileged
//! test user: each test plants, after or while the survey lists the work tree, something
//! git would run, in folders that were there before the session, and checks that the end
//! check still names it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{stderr, stdout, Fixture};

/// Folders older than the session (`paths`, relative to the repository), made as the user
/// and aged past the end check's clock margin, so that the survey keeps their listings.
fn old_folders(fx: &Fixture, paths: &str) {
    let setup = fx.as_user(&format!(
        "set -e; cd '{}' && mkdir -p {paths} && sleep 1.2",
        fx.repo.display()
    ));
    assert!(setup.status.success(), "{}", stderr(&setup));
}

/// The end check named `path` (relative to the repository) in what it said.
fn assert_named(fx: &Fixture, out: &Output, path: &str) {
    let err = stderr(out);
    let full = fx.repo.join(path);
    assert!(
        err.contains(&*full.to_string_lossy()),
        "{path} not named\n{err}"
    );
}

/// Python inside: `exchange(a, b)` is renameat2(RENAME_EXCHANGE); `tmpfile_link(dir, name,
/// text)` writes an unnamed file (O_TMPFILE) and gives it a name with linkat.
const PY: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
def exchange(a, b):
    if libc.syscall(316, -100, a.encode(), -100, b.encode(), 2) != 0:
        raise OSError(ctypes.get_errno(), "renameat2 " + a)
def tmpfile_link(d, name, text):
    fd = os.open(d, os.O_TMPFILE | os.O_WRONLY, 0o644)
    os.write(fd, text.encode())
    src, dst = ("/proc/self/fd/%d" % fd).encode(), os.path.join(d, name).encode()
    if libc.linkat(-100, src, -100, dst, 0x400) != 0:
        raise OSError(ctypes.get_errno(), "linkat " + d)
"#;

/// What changes a folder's entries without the usual create or remove, after the survey,
/// in folders older than the session: an old leaf folder swapped with a new repository
/// (renameat2 RENAME_EXCHANGE, one step), a `.git` file that never had a name until
/// linkat gave it one (O_TMPFILE), a `.git` that is a hard link to a file made elsewhere,
/// a folder removed and made again (ext4 most often gives it the same inode number back).
/// Each changes the ctime of the folder that holds it: all are named. And the sandbox
/// cannot make a mount namespace of its own, where a bind mount could show it another
/// tree (unshare is refused on every backend).
fn exchanged_linked_and_reused_folders_are_found(backend: &'static str) {
    let fx = Fixture::new("survey-exchange").with_backend(backend);
    old_folders(&fx, "old/a/b/leaf old/c/leaf2 old/e/leaf3 old/h/leaf4/x");
    let out = fx.sandboxed(&format!(
        r#"cd .. && sleep 1
        unshare -Urm true 2>/dev/null && echo UNSHARED
        mkdir stage && git init -q stage/leaf && git -C stage/leaf config core.fsmonitor "$PWD/.payload.sh"
        printf 'gitdir: %s/old/a/b/leaf/.git\n' "$PWD" > stage/gitfile
        stat -c %i old/h/leaf4 > ino.before
        python3 -c '{PY}
exchange("old/a/b/leaf", "stage/leaf")
tmpfile_link("old/c/leaf2", ".git", "gitdir: " + os.getcwd() + "/old/a/b/leaf/.git\n")
' && ln stage/gitfile old/e/leaf3/.git
        rm -r old/h/leaf4 && mkdir old/h/leaf4 && stat -c %i old/h/leaf4 > ino.after
        git init -q old/h/leaf4 && git -C old/h/leaf4 config core.fsmonitor "$PWD/.payload.sh"
        echo PLANTED"#
    ));
    assert!(stdout(&out).contains("PLANTED"), "{}", stderr(&out));
    assert!(!stdout(&out).contains("UNSHARED"), "{}", stdout(&out));
    assert_named(&fx, &out, "old/a/b/leaf");
    assert_named(&fx, &out, "old/c/leaf2/.git");
    assert_named(&fx, &out, "old/e/leaf3/.git");
    assert_named(&fx, &out, "old/h/leaf4");
    assert!(stderr(&out).contains("core.fsmonitor"), "{}", stderr(&out));
}

/// The agent plants while the survey lists the tree, from its first instant: 1,200 `.git`
/// files, one in each of 1,200 old folders, in the order the survey goes and against it,
/// so that some folders are listed before their plant and some after. None is left where
/// git would read it: each is named and moved, whichever side of the survey it fell.
fn plants_racing_the_survey_are_found(backend: &'static str) {
    let fx = Fixture::new("survey-race").with_backend(backend);
    let setup = fx.as_user(&format!(
        "set -e; cd '{}' && for i in $(seq 1 40); do for j in $(seq 1 30); do \
         echo old/d$i/e$j; done; done | xargs mkdir -p && sleep 1.2",
        fx.repo.display()
    ));
    assert!(setup.status.success(), "{}", stderr(&setup));
    let out = fx.sandboxed(
        r#"cd .. && python3 -c '
import os
dirs = [("old/d%d/e%d" % (i, j)) for i in range(1, 41) for j in range(1, 31)]
order = [d for pair in zip(dirs[:600], reversed(dirs[600:])) for d in pair]
for d in order:
    with open(d + "/.git", "w") as f:
        f.write("gitdir: " + os.getcwd() + "/.git\n")
' && echo PLANTED"#,
    );
    assert!(stdout(&out).contains("PLANTED"), "{}", stderr(&out));
    let left = fx.as_user(&format!(
        "cd '{}' && find old -name .git | head -5",
        fx.repo.display()
    ));
    assert!(
        stdout(&left).trim().is_empty(),
        "planted .git files left in place: {}\nkennel said: {}",
        stdout(&left),
        stderr(&out)
    );
}

/// Deeper than the walk goes (64 folders), in an old tree: the survey stops at the same
/// depth as the walk, and the end check says it could not look there; a plant just above
/// that depth is named.
fn plants_deep_in_an_old_tree_are_found_or_said(backend: &'static str) {
    let fx = Fixture::new("survey-deep").with_backend(backend);
    let deep: Vec<String> = (0..70).map(|i| format!("l{i}")).collect();
    old_folders(&fx, &format!("old/{}", deep.join("/")));
    let at60 = format!("old/{}", deep[..60].join("/"));
    let at66 = format!("old/{}", deep[..66].join("/"));
    let out = fx.sandboxed(&format!(
        r#"cd .. && sleep 1 && git init -q {at60}/r && git -C {at60}/r config core.fsmonitor "$PWD/.payload.sh"
        git init -q {at66}/r && echo PLANTED"#
    ));
    assert!(stdout(&out).contains("PLANTED"), "{}", stderr(&out));
    assert_named(&fx, &out, &format!("{at60}/r"));
    assert!(
        stderr(&out).contains("folders deep"),
        "no word of the folders too deep: {}",
        stderr(&out)
    );
}

/// The survey's thread runs beside the command; kennel takes the signals it forwards to
/// the command from a descriptor, which sees only those no thread of kennel takes. A
/// thread started with them unblocked (as they are while kennel records the workspace,
/// when Ctrl-C must end kennel at once) took a SIGTERM meant for the command and kennel
/// died of it, the command killed and the end check skipped; on the landlock backend it
/// took the SIGCHLD of the command's end too, and kennel waited for ever. In a work tree
/// of 30,000 old folders (the survey lists them for about 0.1 s), kennel is sent SIGTERM as
/// soon as the command has started: the command gets it and kennel ends with its status.
fn signals_while_the_survey_runs_reach_the_command(backend: &'static str) {
    let fx = Fixture::new("survey-signals").with_backend(backend);
    if !common::sandbox_available(&fx) {
        return;
    }
    fx.old_tree(300);
    for round in 0..3 {
        let _ = std::fs::remove_file(fx.repo.join("got"));
        let child = fx.spawn_sandboxed(
            "trap 'echo TERM > ../got; exit 7' TERM; echo READY; while :; do sleep 0.01; done",
        );
        let common::Terminated { ready, ended, out } = common::terminate_when_ready(child);
        assert!(ready, "round {round}: {}", stderr(&out));
        assert!(ended, "round {round}: kennel did not end: {}", stderr(&out));
        assert_eq!(
            out.status.code(),
            Some(7),
            "round {round}: {:?} {}",
            out.status,
            stderr(&out)
        );
        assert!(
            fx.repo.join("got").exists(),
            "round {round}: the command got no SIGTERM"
        );
    }
}

on_every_backend!(
    exchanged_linked_and_reused_folders_are_found,
    signals_while_the_survey_runs_reach_the_command,
    plants_racing_the_survey_are_found,
    plants_deep_in_an_old_tree_are_found_or_said,
);

/// fscrypt's ioctls, as any user may make them on an ext4 with the `encrypt` feature:
/// `python3 FILE make|add|rm DIR` sets a v2 policy on the empty DIR with a fixed key,
/// adds the key, or removes it.
const FSCRYPT_PY: &str = r#"
import fcntl, os, struct, sys
ADD, SETP, RM = 0xC0506617, 0x800C6613, 0xC0406618
KEY = b"agent-key-".ljust(64, b"!")
cmd, d = sys.argv[1], sys.argv[2]
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
arg = bytearray(struct.pack("II32sII32x", 2, 0, b"\0" * 32, len(KEY), 0) + KEY)
fcntl.ioctl(fd, ADD, arg)
ident = bytes(arg[8:24])
if cmd == "make":
    fcntl.ioctl(fd, SETP, struct.pack("BBBB4x16s", 2, 1, 4, 2, ident))
elif cmd == "rm":
    for _ in range(2):
        fcntl.ioctl(fd, RM, bytearray(struct.pack("II16s16xI20x", 2, 0, ident, 0)))
"#;

/// `sh -c CMD` as the tests' own user (root, for what changes the host).
fn root_sh(cmd: &str) -> Output {
    std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .unwrap()
}

/// An ext4 of its own with the `encrypt` feature, mounted (loop) at `at`; unmounted when
/// dropped.
struct EncryptedFs {
    at: PathBuf,
}

impl EncryptedFs {
    fn mount(fx: &Fixture, at: &Path) -> Option<EncryptedFs> {
        let image = fx.dir.join("encrypt.img");
        std::fs::create_dir_all(at).unwrap();
        let made = root_sh(&format!(
            "truncate -s 64M '{img}' && mkfs.ext4 -q -F -O encrypt '{img}' && \
             mount -o loop '{img}' '{at}'",
            img = image.display(),
            at = at.display()
        ));
        if common::skip_unless(
            made.status.success(),
            &format!(
                "an ext4 with encryption, on a loop device: {}",
                stderr(&made)
            ),
        ) {
            return None;
        }
        fx.chown(at);
        Some(EncryptedFs {
            at: at.to_path_buf(),
        })
    }
}

impl Drop for EncryptedFs {
    fn drop(&mut self) {
        let _ = root_sh(&format!("umount -l '{}'", self.at.display()));
    }
}

/// An encrypted folder's entries are listed under made-up names while its key is missing
/// (after a reboot), and adding the key back is an ioctl any user may make that changes no
/// ctime (refused inside the sandbox since this review; the user may still add it while a
/// session runs). An earlier session leaves a
/// `.git` file (sending git to a repository with `core.fsmonitor` in `node_modules`, where
/// the walk does not look) in an encrypted folder, staged in the outer index; the key is
/// gone when the next session starts. That session's survey lists the folder without its
/// key, so its `.git` is a random name there; the key comes back and the agent moves the
/// folder's (unencrypted, older) parent elsewhere. A walk that lists every folder at the
/// end names the `.git` as moved in, with what it runs; with the survey's listing standing
/// for the encrypted folder (its ctime is old), the end check said nothing and the user's
/// next `git status` ran the agent's command. The survey now keeps no encrypted folder.
#[test]
fn a_key_added_after_the_survey_does_not_hide_a_moved_repository() {
    if common::skip_unless_root("mounting an ext4 with encryption")
        || common::skip_unless(
            Path::new("/sys/fs/ext4/features/encryption").exists(),
            "ext4 encryption",
        )
    {
        return;
    }
    let fx = Fixture::new("survey-fscrypt");
    let Some(fs) = EncryptedFs::mount(&fx, &fx.home.join("enc")) else {
        return;
    };
    let repo = fs.at.join("project");
    let marker = fx.dir.join("ran");
    std::fs::write(fs.at.join("fscrypt.py"), FSCRYPT_PY).unwrap();
    fx.chown(&fs.at);
    // The earlier session's work, then its key removed and the kernel's caches of the
    // folder dropped, as after a reboot.
    let setup = fx.as_user(&format!(
        r#"set -e; mkdir '{repo}' && cd '{repo}' && cp ../fscrypt.py .fscrypt.py && P="$PWD/.fscrypt.py"
        git init -q -b main . && echo hi > README && git add README && git commit -q -m init
        printf '#!/bin/sh\ntouch {marker}\n' > .payload.sh && chmod +x .payload.sh
        mkdir -p old/p/enc old/q node_modules
        git init -q node_modules/wt && mv node_modules/wt/.git node_modules/evil && rmdir node_modules/wt
        git -C node_modules/evil config core.fsmonitor "$PWD/.payload.sh"
        python3 "$P" make old/p/enc
        echo "gitdir: $PWD/node_modules/evil" > old/p/enc/.git && echo a > old/p/enc/a
        (cd old/p/enc && git add a && git commit -q -m n)
        git update-index --add --cacheinfo "160000,$(git -C old/p/enc rev-parse HEAD),old/p/enc"
        python3 "$P" rm old/p/enc"#,
        repo = repo.display(),
        marker = marker.display()
    ));
    assert!(setup.status.success(), "{}", stderr(&setup));
    let dropped = root_sh("sync && echo 2 > /proc/sys/vm/drop_caches && sleep 1.2");
    assert!(dropped.status.success(), "{}", stderr(&dropped));
    let hidden = fx.as_user(&format!("ls -a '{}/old/p/enc'", repo.display()));
    assert!(
        !stdout(&hidden).lines().any(|l| l == ".git"),
        "the key is still there: {}",
        stdout(&hidden)
    );
    // Inside, the agent can neither add the key nor remove it (seccomp refuses fscrypt's
    // ioctls). The user adds it outside while the session runs, after the survey listed the
    // folder under its made-up names; then the agent moves the folder's parent.
    let script = r#"python3 .fscrypt.py add old/p/enc 2>&1 | grep -q 'Operation not permitted' && echo REFUSED
        while [ ! -e keyed ]; do sleep 0.05; done
        mv old/p old/q/ && git update-index --force-remove old/p/enc &&
        git update-index --add --cacheinfo "160000,$(git -C old/q/p/enc rev-parse HEAD),old/q/p/enc" &&
        echo PLANTED"#;
    let child = fx
        .kennel()
        .args(["run", "--", "sh", "-c", script])
        .current_dir(&repo)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let keyed = fx.as_user(&format!(
        "cd '{}' && python3 .fscrypt.py add old/p/enc && touch keyed",
        repo.display()
    ));
    assert!(keyed.status.success(), "{}", stderr(&keyed));
    let out = child.wait_with_output().unwrap();
    assert!(stdout(&out).contains("REFUSED"), "{}", stdout(&out));
    assert!(stdout(&out).contains("PLANTED"), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("old/q/p/enc/.git"), "{err}");
    assert!(err.contains("core.fsmonitor"), "{err}");
    // The key stays for the tests' lifetime of the mount only: removed before it goes.
    let _ = fx.as_user(&format!(
        "cd '{}' && python3 .fscrypt.py rm old/q/p/enc",
        repo.display()
    ));
}
