//! A memory cgroup delegated to the test user, and commands ended within a time.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::Fixture;

/// Runs `cmd` and returns its output, failing the test when it has not ended after `secs`
/// seconds (kennel must never block on what the sandbox left behind).
pub fn output_within(mut cmd: Command, secs: u64) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (done, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match wait.recv_timeout(Duration::from_secs(secs)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("kennel had not ended after {secs} seconds");
        }
    }
}

/// A memory cgroup delegated to the test user, as root makes one for a user (cgroup v1's
/// `memory` hierarchy): removed when dropped.
pub struct DelegatedMemoryCgroup(pub PathBuf);

impl DelegatedMemoryCgroup {
    pub fn new(name: &str) -> Option<DelegatedMemoryCgroup> {
        let own = fs::read_to_string("/proc/self/cgroup").ok()?;
        let path = own.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            controllers
                .split(',')
                .any(|c| c == "memory")
                .then(|| path.to_string())
        })?;
        let dir = Path::new("/sys/fs/cgroup/memory")
            .join(path.trim_start_matches('/'))
            .join(format!("kennel-review-{name}-{}", std::process::id()));
        fs::create_dir(&dir).ok()?;
        let env = super::env();
        let chowned = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", env.uid, env.gid))
            .arg(&dir)
            .status()
            .ok()?;
        chowned.success().then_some(DelegatedMemoryCgroup(dir))
    }

    /// `kennel run --memory SIZE -- sh -c SCRIPT`, started in this cgroup as the test user.
    pub fn kennel(&self, fx: &Fixture, size: &str, script: &str) -> Output {
        let mut cmd = fx.user_command("sh");
        cmd.arg("-c")
            .arg(format!(
                "echo $$ > '{}/cgroup.procs' && exec \"$0\" run --memory {size} -- sh -c \"$1\"",
                self.0.display()
            ))
            .arg(&super::env().kennel)
            .arg(script)
            .current_dir(&fx.repo);
        output_within(cmd, 120)
    }

    pub fn sandbox_cgroups_left(&self) -> Vec<String> {
        fs::read_dir(&self.0)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("kennel-"))
            .collect()
    }
}

impl Drop for DelegatedMemoryCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub fn delegated(name: &str) -> Option<DelegatedMemoryCgroup> {
    if super::skip_unless_root("delegating a memory cgroup to the test user") {
        return None;
    }
    let delegated = DelegatedMemoryCgroup::new(name);
    if super::skip_unless(
        delegated.is_some(),
        "no cgroup v1 memory hierarchy to delegate a cgroup of (cgroup v2 hosts: not covered)",
    ) {
        return None;
    }
    delegated
}
