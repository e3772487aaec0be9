//! Test harness: runs the real kennel binary as an unprivileged user, in fixtures with a fake
//! home full of planted secrets and a git repository.
//!
//! As root (as in CI) it creates the user `kennel-test`, stages the binary and the fixtures
//! under `/home/kennel-tests` where that user can reach them, and runs kennel through
//! `setpriv`. As an ordinary user it runs kennel as that user, with a fake home in a
//! temporary folder. A test that needs a kernel feature the machine lacks fails when `CI`
//! is set and is skipped with a printed reason otherwise.
#![allow(dead_code)]

pub mod cgroup;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

pub const TEST_USER: &str = "kennel-test";

pub struct Env {
    /// Where fixtures live: reachable by the test user.
    pub base: PathBuf,
    pub kennel: PathBuf,
    /// uid and gid kennel runs as.
    pub uid: u32,
    pub gid: u32,
    /// Some when kennel runs as another user than the test process.
    pub setpriv: Option<(u32, u32)>,
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn sh(cmd: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"))
}

fn ensure_test_user() -> (u32, u32) {
    let id = |flag: &str| {
        let out = sh(&format!("id {flag} {TEST_USER}"));
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u32>()
            .ok()
    };
    if id("-u").is_none() {
        let out = sh(&format!(
            "useradd --no-create-home --home-dir /nonexistent --shell /bin/sh {TEST_USER}"
        ));
        assert!(
            out.status.success() || id("-u").is_some(),
            "useradd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    match (id("-u"), id("-g")) {
        (Some(u), Some(g)) => (u, g),
        _ => panic!("cannot find the uid of {TEST_USER}"),
    }
}

/// Removes what earlier test runs left in `base`: each stages a copy of kennel (tens of
/// megabytes) and its fixtures in `run-PID`, kept for a look after a failure. A folder is
/// removed once its process is gone, unless something is still mounted inside it (a test
/// that failed before its cleanup): the removal would reach into the mounted tree.
fn remove_stale_runs(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mount_points: Vec<&str> = mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .collect();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("run-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        let inside = format!("{}/", dir.display());
        if Path::new("/proc").join(pid.to_string()).exists()
            || mount_points.iter().any(|m| m.starts_with(&inside))
        {
            continue;
        }
        remove_tree(&dir);
    }
}

/// Removes `path` and what it holds, best effort, without following symbolic links (and
/// making folders writable first, which the sandboxes' read-only ones are not).
fn remove_tree(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
        for entry in fs::read_dir(path).into_iter().flatten().flatten() {
            remove_tree(&entry.path());
        }
        let _ = fs::remove_dir(path);
    } else {
        let _ = fs::remove_file(path);
    }
}

pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let built = PathBuf::from(env!("CARGO_BIN_EXE_kennel"));
        let (base, ids) = if is_root() {
            let ids = ensure_test_user();
            (PathBuf::from("/home/kennel-tests"), Some(ids))
        } else {
            (
                std::env::temp_dir().join(format!("kennel-tests-{}", nix::unistd::getuid())),
                None,
            )
        };
        remove_stale_runs(&base);
        let run_dir = base.join(format!("run-{}", std::process::id()));
        fs::create_dir_all(&run_dir).unwrap_or_else(|e| panic!("{}: {e}", run_dir.display()));
        for dir in [&base, &run_dir] {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
        let kennel = run_dir.join("kennel");
        fs::copy(&built, &kennel).unwrap_or_else(|e| panic!("staging kennel: {e}"));
        fs::set_permissions(&kennel, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{}: {e}", kennel.display()));
        let (uid, gid) = ids.unwrap_or_else(|| {
            (
                nix::unistd::getuid().as_raw(),
                nix::unistd::getgid().as_raw(),
            )
        });
        Env {
            base: run_dir,
            kennel,
            uid,
            gid,
            setpriv: ids,
        }
    })
}

/// `program` run as the user kennel is tested as (through setpriv when the tests run as
/// root), with the test process's environment: callers clear and set it.
pub fn as_test_user(program: impl AsRef<OsStr>) -> Command {
    match env().setpriv {
        Some((uid, gid)) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg("--")
                .arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Fails in CI, skips with a printed reason elsewhere. Returns true when the test must stop.
pub fn skip_unless(available: bool, reason: &str) -> bool {
    if available {
        return false;
    }
    if std::env::var_os("CI").is_some() {
        panic!("required kernel feature missing in CI: {reason}");
    }
    eprintln!("SKIP: {reason}");
    true
}

/// For a test that changes the host itself (`what`): as `skip_unless`, for root, which CI
/// runs the tests as.
pub fn skip_unless_root(what: &str) -> bool {
    skip_unless(
        nix::unistd::geteuid().is_root(),
        &format!("{what} needs root (CI runs the tests as root)"),
    )
}

/// One test's world: a fake home with secrets and a git repository `project` inside it.
pub struct Fixture {
    pub dir: PathBuf,
    pub home: PathBuf,
    pub repo: PathBuf,
    /// The backend `sandboxed` and friends ask for.
    pub backend: &'static str,
    /// kennel runs where creating a user namespace is refused (see [`deny_userns`]): the
    /// `auto` backend as an Ubuntu user meets it.
    pub userns_refused: bool,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub const SECRET: &str = "TOP-SECRET-CONTENT";

impl Fixture {
    pub fn new(name: &str) -> Fixture {
        let env = env();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = env.base.join(format!("{name}-{n}"));
        let home = dir.join("home");
        let repo = home.join("project");
        let fx = Fixture {
            dir,
            home,
            repo,
            backend: "native",
            userns_refused: false,
        };
        fs::create_dir_all(&fx.home).unwrap_or_else(|e| panic!("{e}"));
        fx.chown(&fx.dir);
        let out = fx.as_user(&format!(
            r#"set -e
            cd "$HOME"
            mkdir -p .ssh .aws .config/kennel-test project/sub
            echo {SECRET} > .ssh/id_ed25519
            echo {SECRET} > .aws/credentials
            echo 'echo {SECRET}' > .bashrc
            printf '[user]\n\tname = Kennel Test\n\temail = test@kennel.invalid\n' > .gitconfig
            cd project
            git init -q -b main .
            echo hello > README
            git add README
            git commit -q -m initial
            "#
        ));
        assert!(
            out.status.success(),
            "fixture setup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        fx
    }

    /// The same fixture, run with another backend. [`AUTO`] is `--backend auto` where user
    /// namespaces are refused: every kennel this fixture starts runs under [`deny_userns`].
    pub fn with_backend(mut self, backend: &'static str) -> Fixture {
        self.backend = backend;
        self.userns_refused = backend == AUTO;
        self
    }

    pub fn chown(&self, path: &Path) {
        let env = env();
        if env.setpriv.is_some() {
            let out = sh(&format!(
                "chown -R {}:{} '{}'",
                env.uid,
                env.gid,
                path.display()
            ));
            assert!(out.status.success());
        }
    }

    /// A command run as the test user, with a clean environment and the fake home.
    pub fn user_command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = as_test_user(program);
        // A temporary folder of the fixture's own: kennel keeps the sandbox's home there,
        // and one left behind by a test that kills kennel must not reach the other tests.
        let tmp = self.dir.join("tmp");
        let _ = fs::create_dir(&tmp);
        let _ = fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777));
        cmd.env_clear()
            .env("HOME", &self.home)
            .env("TMPDIR", &tmp)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("USER", TEST_USER)
            .env("LANG", "C.UTF-8")
            .current_dir(&self.repo)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs a shell script as the test user outside any sandbox (fixture setup, checks).
    pub fn as_user(&self, script: &str) -> Output {
        self.user_command("sh")
            .arg("-c")
            .arg(script)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `hundreds` x 100 folders under `t/` in the repository, made as the user and older
    /// than a session started now by more than the end check's clock margin: a work tree the
    /// end check's survey lists for a while (about 0.1 s for 30,000 folders here).
    pub fn old_tree(&self, hundreds: usize) {
        let setup = self.as_user(&format!(
            r#"set -e; cd '{}' && python3 -c '
import os
for i in range({hundreds}):
    for j in range(100):
        os.makedirs("t/a%d/b%d" % (i, j))' && sleep 1.2"#,
            self.repo.display()
        ));
        assert!(setup.status.success(), "{}", stderr(&setup));
    }

    /// `kennel ARGS` as the test user (under [`deny_userns`] for the [`AUTO`] backend).
    pub fn kennel(&self) -> Command {
        if self.userns_refused {
            let mut cmd = self.user_command(deny_userns());
            cmd.arg(&env().kennel);
            return cmd;
        }
        self.user_command(&env().kennel)
    }

    /// `kennel run -- sh -c SCRIPT` in the repository's `sub` folder.
    pub fn sandboxed(&self, script: &str) -> Output {
        self.kennel_in(&self.repo.join("sub"), script)
    }

    pub fn kennel_in(&self, cwd: &Path, script: &str) -> Output {
        let out = self
            .kennel()
            .args(["run", "--backend", self.backend, "--", "sh", "-c", script])
            .current_dir(cwd)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_kennel_started(&out);
        out
    }

    /// `sh -c SCRIPT` as the test user in the repository's `sub` folder, with kennel's path
    /// as `$0`: for what a shell sets up before it starts kennel (a umask, a closed stream).
    pub fn kennel_via_shell(&self, script: &str) -> Output {
        self.user_command("sh")
            .arg("-c")
            .arg(script)
            .arg(&env().kennel)
            .current_dir(self.repo.join("sub"))
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn spawn_sandboxed(&self, script: &str) -> Child {
        self.kennel()
            .args(["run", "--backend", self.backend, "--", "sh", "-c", script])
            .current_dir(self.repo.join("sub"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn owner(&self, path: &Path) -> u32 {
        fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .uid()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Kennel's own setup failure (exit 125) because the kernel lacks a feature is a skip
/// outside CI and a failure in it; any other 125 is a bug and fails the test.
pub fn assert_kennel_started(out: &Output) {
    if out.status.code() == Some(125) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("user namespaces") && !skip_unless(false, &stderr) {
            return;
        }
        panic!("kennel could not set up the sandbox: {stderr}");
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Whether the `SigIgn:` line of a `/proc/PID/status` text says SIGPIPE is ignored.
pub fn ignores_sigpipe(status: &str) -> bool {
    let ignored = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or_else(|| panic!("no SigIgn in {status}"));
    ignored & (1u64 << (nix::sys::signal::Signal::SIGPIPE as u32 - 1)) != 0
}

/// Pids of the `sleep` processes with an argument containing `marker`: only the marked
/// programs themselves, not kennel, setpriv or `sh -c` whose command lines merely mention it.
pub fn processes_with(marker: &str) -> Vec<u32> {
    processes_where(|program, args| {
        let is_sleep = program == "sleep" || program.ends_with("/sleep");
        is_sleep && args.iter().any(|a| a.contains(marker))
    })
}

/// Pids of the processes with an argument containing `marker`, whatever the program.
pub fn processes_with_argument(marker: &str) -> Vec<u32> {
    processes_where(|_, args| args.iter().any(|a| a.contains(marker)))
}

/// Pids of the processes whose program and arguments (from /proc/PID/cmdline) match.
fn processes_where(matches: impl Fn(&str, &[String]) -> bool) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let cmdline = fs::read(entry.path().join("cmdline")).ok()?;
            let mut words = cmdline
                .split(|b| *b == 0)
                .map(|w| String::from_utf8_lossy(w).into_owned());
            let program = words.next().unwrap_or_default();
            let args: Vec<String> = words.collect();
            matches(&program, &args).then_some(pid)
        })
        .collect()
}

/// What became of kennel sent SIGTERM once its command said it was ready.
pub struct Terminated {
    /// The command's first line was `READY` (else kennel never started it).
    pub ready: bool,
    /// kennel ended by itself within 30 s of the signal (else it was killed).
    pub ended: bool,
    pub out: Output,
}

/// Waits for `child` (kennel, its output piped) to print `READY` first, sends kennel
/// SIGTERM, and waits up to 30 s for it to end.
pub fn terminate_when_ready(mut child: Child) -> Terminated {
    use std::io::{BufRead, BufReader};
    let first = child
        .stdout
        .take()
        .and_then(|out| BufReader::new(out).lines().next())
        .and_then(Result::ok);
    let ready = first.as_deref() == Some("READY");
    let mut ended = false;
    if ready {
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        ended = eventually(30, || child.try_wait().is_ok_and(|s| s.is_some()));
    }
    if !ended {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    Terminated { ready, ended, out }
}

/// Polls `cond` for up to `secs` seconds.
pub fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    cond()
}

impl Fixture {
    /// `kennel ARGS...` as the test user in the repository's `sub` folder.
    pub fn kennel_with(&self, args: &[&str]) -> Output {
        let out = self
            .kennel()
            .args(args)
            .current_dir(self.repo.join("sub"))
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_kennel_started(&out);
        out
    }

    /// Writes a file of the fake home (or anywhere in the fixture), owned by the test user.
    pub fn write(&self, path: &Path, text: &str) {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        self.chown(&self.dir);
    }
}

/// The backend name that stands for `--backend auto` where creating a user namespace is
/// refused (Ubuntu 23.10 and later): kennel falls back to the landlock backend, and every
/// promise the landlock backend keeps must hold there too.
pub const AUTO: &str = "auto";

/// Whether `backend` runs the landlock backend: itself, or `auto` where user namespaces are
/// refused.
pub fn is_landlock(backend: &str) -> bool {
    backend == "landlock" || backend == AUTO
}

/// The helper that refuses user namespaces to what it runs (`examples/deny_userns.rs`, a
/// seccomp filter standing in for Ubuntu's AppArmor rule, whose sysctl is read-only on the
/// test machines), staged beside kennel where the test user can run it.
pub fn deny_userns() -> &'static PathBuf {
    static STAGED: OnceLock<PathBuf> = OnceLock::new();
    STAGED.get_or_init(|| {
        let built = PathBuf::from(env!("CARGO_BIN_EXE_kennel"))
            .parent()
            .unwrap_or_else(|| panic!("kennel's build folder"))
            .join("examples/deny_userns");
        let staged = env().base.join("deny_userns");
        // Staged once per test binary, under a name of its own, then moved into place: a
        // test binary never runs a copy another one is still writing.
        let part = env()
            .base
            .join(format!("deny_userns.{}", std::process::id()));
        fs::copy(&built, &part).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (built by `cargo test`, which builds the examples)",
                built.display()
            )
        });
        fs::set_permissions(&part, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        fs::rename(&part, &staged).unwrap_or_else(|e| panic!("{e}"));
        staged
    })
}

/// Runs each named test function (taking the backend's name) once per backend, and once
/// more as `--backend auto` where user namespaces are refused ([`AUTO`]); the systemd
/// backend's runs need a user manager (see `skip_without_user_manager`).
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod native {
            $( #[test] fn $name() { super::$name("native") } )*
        }
        mod landlock {
            $( #[test] fn $name() { super::$name("landlock") } )*
        }
        mod auto_without_user_namespaces {
            $( #[test] fn $name() { super::$name($crate::common::AUTO) } )*
        }
        mod systemd {
            $( #[test] fn $name() {
                if $crate::common::skip_without_user_manager() {
                    return;
                }
                super::$name("systemd")
            } )*
        }
    };
}

/// Whether the test user's systemd user manager answers: `Err(why)` when it does not.
/// As root, `tests/with-user-manager.sh` starts one (see there); as an ordinary user
/// the tests use your own.
pub fn user_manager() -> Result<String, String> {
    static MANAGER: OnceLock<Result<String, String>> = OnceLock::new();
    MANAGER
        .get_or_init(|| {
            let env = env();
            let fx_home = env.base.clone();
            let mut cmd = as_test_user("systemctl");
            cmd.args(["--user", "show", "--property=Version", "--value"])
                .env_clear()
                .env("HOME", fx_home)
                .env("PATH", "/usr/local/bin:/usr/bin:/bin")
                .env("XDG_RUNTIME_DIR", format!("/run/user/{}", env.uid));
            match cmd.output() {
                Ok(out) if out.status.success() && !out.stdout.is_empty() => {
                    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
                }
                Ok(out) => Err(format!(
                    "no systemd user manager for uid {} ({}); as root, run the tests through \
                     tests/with-user-manager.sh",
                    env.uid,
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
                Err(e) => Err(format!("cannot run systemctl: {e}")),
            }
        })
        .clone()
}

/// True when the test must stop because no user manager is reachable: a failure in CI,
/// a printed `SKIP` elsewhere.
pub fn skip_without_user_manager() -> bool {
    match user_manager() {
        Ok(_) => false,
        Err(why) => skip_unless(false, &why),
    }
}

impl Fixture {
    /// `kennel run --backend systemd EXTRA... -- sh -c SCRIPT` in `cwd`, as the test user.
    pub fn systemd_in(&self, cwd: &Path, extra: &[&str], script: &str) -> Output {
        self.kennel()
            .args(["run", "--backend", "systemd"])
            .args(extra)
            .args(["--", "sh", "-c", script])
            .current_dir(cwd)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `kennel run --backend systemd -- sh -c SCRIPT` in the repository's `sub` folder;
    /// kennel's own setup failure (125) fails the test.
    pub fn systemd(&self, script: &str) -> Output {
        let out = self.systemd_in(&self.repo.join("sub"), &[], script);
        assert_ne!(
            out.status.code(),
            Some(125),
            "kennel could not set up the systemd sandbox: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// Whether `program` is found in the PATH the test user gets.
pub fn have_program(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v '{program}'"))
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether kennel can start a sandbox here. False (after printing SKIP) when the kernel
/// refuses user namespaces outside CI; panics in CI and on any other setup failure.
pub fn sandbox_available(fx: &Fixture) -> bool {
    let out = fx
        .kennel()
        .args(["run", "--", "true"])
        .current_dir(&fx.repo)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    if out.status.code() == Some(125) && stderr(&out).contains("user namespaces") {
        return !skip_unless(false, &stderr(&out));
    }
    assert!(out.status.success(), "kennel failed: {}", stderr(&out));
    true
}

// ---- The network tests' fake internet: hosts on 127.0.0.2 and 127.0.0.3 only. ----

/// Servers on host loopback addresses standing in for internet hosts: plain HTTP on
/// 127.0.0.2, a TCP echo with an ssh-like banner on 127.0.0.3, and (when openssl is
/// installed) TLS on 127.0.0.3 with a certificate for `secure.example.test` from a test CA.
pub struct FakeInternet {
    pub http_port: u16,
    pub echo_port: u16,
    pub tls_port: Option<u16>,
    /// The test CA's certificate, readable inside the sandbox (in the workspace).
    pub ca: Option<PathBuf>,
    tls_server: Option<Child>,
}

/// A plain HTTP server: answers every request with `fake:<Host header>`.
pub fn serve_http(listener: std::net::TcpListener, tag: &'static str) {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head);
                let host = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Host: ").or(l.strip_prefix("host: ")))
                    .unwrap_or("none")
                    .trim()
                    .to_string();
                let body = format!("{tag}:{host}\n");
                let _ = conn.write_all(
                    format!(
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            });
        }
    });
}

/// Something listening on a host loopback port; returns the port.
pub fn host_service(addr: &str, tag: &'static str) -> u16 {
    let listener = std::net::TcpListener::bind(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    serve_http(listener, tag);
    port
}

fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{ip}: {e}"))
}

impl FakeInternet {
    pub fn start(fx: &Fixture) -> FakeInternet {
        use std::io::{Read, Write};
        let http_port = host_service("127.0.0.2:0", "fake-internet");
        let echo = std::net::TcpListener::bind("127.0.0.3:0").unwrap_or_else(|e| panic!("{e}"));
        let echo_port = echo.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
        std::thread::spawn(move || {
            for conn in echo.incoming() {
                let Ok(mut conn) = conn else { continue };
                std::thread::spawn(move || {
                    let _ = conn.write_all(b"SSH-2.0-kennel-test-echo\r\n");
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 || conn.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let mut net = FakeInternet {
            http_port,
            echo_port,
            tls_port: None,
            ca: None,
            tls_server: None,
        };
        if sh("command -v openssl").status.success() {
            net.start_tls(fx);
        }
        net
    }

    fn start_tls(&mut self, fx: &Fixture) {
        let dir = fx.dir.join("tls");
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let out = sh(&format!(
            r#"set -e; cd '{}'
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                -keyout ca.key -out ca.pem -days 2 -subj /CN=kennel-test-ca 2>/dev/null
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                -keyout srv.key -out srv.csr -subj /CN=secure.example.test 2>/dev/null
            printf 'subjectAltName=DNS:secure.example.test\n' > ext
            openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
                -out srv.pem -days 2 -extfile ext 2>/dev/null"#,
            dir.display()
        ));
        assert!(
            out.status.success(),
            "making the test CA: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port("127.0.0.3");
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.3:{port}"))
            .arg("-cert")
            .arg(dir.join("srv.pem"))
            .arg("-key")
            .arg(dir.join("srv.key"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("openssl s_server: {e}"));
        assert!(
            eventually(10, || std::net::TcpStream::connect(("127.0.0.3", port))
                .is_ok()),
            "openssl s_server did not start"
        );
        let ca = fx.repo.join("test-ca.pem");
        fs::copy(dir.join("ca.pem"), &ca).unwrap_or_else(|e| panic!("{e}"));
        fx.chown(&ca);
        self.tls_port = Some(port);
        self.ca = Some(ca);
        self.tls_server = Some(child);
    }
}

impl Drop for FakeInternet {
    fn drop(&mut self) {
        if let Some(child) = &mut self.tls_server {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A Python probe for the network tests, written into the workspace: each argument is
/// `COMMAND:ARG,ARG`, each prints one line.
pub const NET_PROBE: &str = r#"
import os, socket, ssl, sys, urllib.request, urllib.error

def http(url, ca=None):
    ctx = ssl.create_default_context(cafile=ca) if ca else None
    try:
        with urllib.request.urlopen(url, timeout=10, context=ctx) as r:
            print("HTTP", r.status, r.read().decode(errors="replace").strip().splitlines()[0])
    except urllib.error.HTTPError as e:
        print("HTTP", e.code, e.read().decode(errors="replace").strip())
    except Exception as e:
        print("HTTP-ERROR", type(e).__name__, e)

def raw(host, port):
    try:
        s = socket.create_connection((host, int(port)), timeout=10)
        s.sendall(b"GET / HTTP/1.0\r\nHost: " + host.encode() + b"\r\n\r\n")
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        body = data.decode(errors="replace").split("\r\n\r\n", 1)[-1].strip()
        print("RAW", body or "EMPTY")
    except OSError as e:
        print("RAW-ERROR", e)

def resolve(name):
    try:
        print("RESOLVE", name, socket.gethostbyname(name))
    except OSError as e:
        print("RESOLVE-ERROR", name, e)

def direct(ip, port):
    try:
        socket.create_connection((ip, int(port)), timeout=3)
        print("DIRECT reached", ip)
    except OSError as e:
        print("DIRECT refused", ip)

def udp(ip, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.sendto(b"x", (ip, int(port)))
        print("UDP sent")
    except OSError as e:
        print("UDP fails", e.errno)

def interfaces():
    names = sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:])
    print("INTERFACES", " ".join(names))

def sni(host, port, name, ca):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(("CONNECT %s:%s HTTP/1.1\r\n\r\n" % (host, port)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(1)
        if not d:
            break
        head += d
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        t = ctx.wrap_socket(s, server_hostname=name)
        t.sendall(b"GET / HTTP/1.0\r\n\r\n")
        print("SNI", name, "answered", t.recv(100)[:12])
    except (OSError, ssl.SSLError) as e:
        print("SNI", name, "cut")

for arg in sys.argv[1:]:
    cmd, _, rest = arg.partition(":")
    args = rest.split(",") if rest else []
    globals()[cmd](*args)
    sys.stdout.flush()
"#;

impl Fixture {
    /// Writes the user's kennel config (in the fake home's default place).
    pub fn user_config(&self, text: &str) {
        self.write(&self.home.join(".config/kennel/config.toml"), text);
    }

    /// `kennel run [ARGS...] -- python3 netprobe.py PROBES...` with the proxy's resolver
    /// answering `hosts` (`name=addr;...`).
    pub fn net_probe(&self, args: &[&str], hosts: &str, probes: &[String]) -> Output {
        let probe = self.repo.join("netprobe.py");
        if !probe.exists() {
            self.write(&probe, NET_PROBE);
        }
        let out = self
            .kennel()
            .env("KENNEL_DEBUG_NET_HOSTS", hosts)
            .arg("run")
            .args(args)
            .args(["--", "python3", "netprobe.py"])
            .args(probes)
            .current_dir(&self.repo)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_kennel_started(&out);
        out
    }
}
