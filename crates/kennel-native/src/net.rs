//! The network of a native sandbox beyond `on` and `off` (issue 8): the allow-list proxy
//! outside and the helpers inside, and the relays of listed host loopback ports.
//!
//! Before the clone (single-threaded): a private per-session directory (0700) with the
//! proxy's unix socket, bound read-only into the sandbox's own `/tmp`; for the
//! allow-list, a `resolv.conf` naming the DNS stub bound over `/etc/resolv.conf` and
//! kennel's own executable bound into the directory for `kennel net-connect`. In the child,
//! while it still has its capabilities in the new network namespace: the listeners are
//! bound ([`bind_inside`]); once it is confined like the command, a process of their own
//! serves them ([`start_inside`]). After the clone the proxy gets its thread; at exit the
//! summary of what it blocked.

use std::collections::HashMap;
use std::fs;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use kennel_net::inside::{InsideConfig, Listeners};
use kennel_net::log::NetLog;
use kennel_net::proxy::{Proxy, ProxyConfig};
use kennel_policy::{EnvVar, Network, Policy};
use nix::unistd::{fork, ForkResult};

use crate::error::NativeError;
use crate::landlock::{LandlockAccess, LandlockRule};
use crate::plan::{MountOp, Plan};

/// What the caller adds to the network policy.
#[derive(Debug, Clone, Default)]
pub struct NetOptions {
    /// `--net-log FILE`: every decision of the proxy.
    pub log_file: Option<PathBuf>,
    /// Fixed answers of the proxy's resolver (tests, through a debug-build-only variable).
    pub resolver_overrides: HashMap<String, Vec<IpAddr>>,
    /// The user's config file as shown to the user: the fix of a refusal names it.
    pub config_name: String,
    /// The user's own proxy, which the allowed connections go through.
    pub upstream: Option<kennel_net::proxy::Upstream>,
    /// kennel's own private folder (`$TMPDIR/kennel-UID`), where the session's folder is
    /// made (a folder left there by a killed kennel is removed by the next one); the
    /// temporary folder itself when None.
    pub scratch: Option<PathBuf>,
}

/// One sandbox's network session.
pub struct Session {
    /// On the host.
    dir: PathBuf,
    /// Where the sandbox sees it: under its own fresh `/tmp`, wherever `TMPDIR` is outside.
    inside_dir: PathBuf,
    proxy: Option<Proxy>,
    log: NetLog,
    pub inside: InsideConfig,
    env: Vec<(String, String)>,
    resolv_conf: Option<PathBuf>,
    exe: Option<(PathBuf, PathBuf)>,
}

fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> NativeError {
    let message = format!("{what} {}", path.display());
    move |e| NativeError::Setup(format!("{message}: {e}"))
}

/// A session when the policy needs one: `allow-list`, or listed localhost ports.
pub fn prepare(policy: &Policy, opts: &NetOptions) -> Result<Option<Session>, NativeError> {
    let ports = &policy.localhost_ports;
    let rules =
        match &policy.network {
            Network::On if ports.is_empty() => return Ok(None),
            Network::On => {
                return Err(NativeError::Plan(format!(
                "the network is `on` (the host's, shared) but localhost ports ({}) are listed: \
                 giving only those needs an isolated namespace with user-mode networking, which \
                 kennel does not do yet; use `network = \"allow-list\"` or `\"off\"` with them, \
                 or drop the list (with `on`, every host loopback port is reachable)",
                ports.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
            )))
            }
            Network::Off if ports.is_empty() => return Ok(None),
            Network::Off => None,
            Network::AllowList(rules) => Some(rules),
        };
    // Short: a unix socket's path has room for 107 bytes.
    let dir = opts
        .scratch
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!(
            "kennel-net-{}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        ));
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(io_err("creating", &dir))?;
    let socket = dir.join("proxy.sock");
    let inside_dir = Path::new("/tmp").join(dir.file_name().unwrap_or_default());
    let inside_socket = inside_dir.join("proxy.sock");
    let log_file = match &opts.log_file {
        Some(path) => Some(
            kennel_net::log::open_file(path).map_err(io_err("opening the network log", path))?,
        ),
        None => None,
    };
    let log = NetLog::with_file(log_file);
    let config = ProxyConfig {
        rules: rules.cloned().unwrap_or_default(),
        localhost_ports: ports.clone(),
        resolver: kennel_net::addr::Resolver::new(opts.resolver_overrides.clone()),
        log: log.clone(),
        receive_fd: Some(receive_fd),
        upstream: opts.upstream.clone(),
        hint: kennel_net::proxy::FixHint {
            profile: policy.profile.clone(),
            config: opts.config_name.clone(),
            groups: kennel_policy::net_groups()
                .map(|g| g.into_iter().collect())
                .unwrap_or_default(),
        },
    };
    let proxy = Proxy::bind(&socket, config).map_err(io_err("listening on", &socket))?;
    let mut session = Session {
        dir: dir.clone(),
        inside_dir: inside_dir.clone(),
        proxy: Some(proxy),
        log,
        inside: InsideConfig {
            socket: inside_socket.clone(),
            allow_list: rules.is_some(),
            fake_ports: Vec::new(),
            dns_stub: rules.is_some(),
            localhost_ports: ports.clone(),
        },
        env: Vec::new(),
        resolv_conf: None,
        exe: None,
    };
    if let Some(rules) = rules {
        let mut fake = vec![80, 443];
        fake.extend(rules.extra_ports());
        session.inside.fake_ports = fake;
        let resolv = dir.join("resolv.conf");
        fs::write(
            &resolv,
            "# kennel: the DNS stub of the sandbox (every name gets a fake loopback address; the proxy decides)\nnameserver 127.0.0.1\n",
        )
        .map_err(io_err("writing", &resolv))?;
        session.resolv_conf = Some(resolv);
        let proxy_url = format!("http://127.0.0.1:{}", kennel_net::PROXY_PORT);
        for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
            session.env.push((name.into(), proxy_url.clone()));
            session
                .env
                .push((name.to_ascii_lowercase(), proxy_url.clone()));
        }
        let no_proxy = "localhost,127.0.0.1,::1".to_string();
        session.env.push(("NO_PROXY".into(), no_proxy.clone()));
        session.env.push(("no_proxy".into(), no_proxy));
        session.env.push((
            "KENNEL_NET_SOCKET".into(),
            inside_socket.to_string_lossy().into_owned(),
        ));
        if let Ok(exe) = std::env::current_exe() {
            let placeholder = dir.join("kennel");
            fs::write(&placeholder, b"").map_err(io_err("creating", &placeholder))?;
            let inside = inside_dir.join("kennel");
            session.env.push((
                "GIT_SSH_COMMAND".into(),
                format!(
                    "ssh -o ProxyCommand='{} net-connect %h %p'",
                    inside.display()
                ),
            ));
            session.exe = Some((exe, inside));
        }
    }
    Ok(Some(session))
}

impl Session {
    /// The session's binds and Landlock rules; they come after the plan's own, so that they
    /// land on the fresh `/tmp` and the read-only `/etc`.
    pub fn add_to_plan(&self, plan: &mut Plan) {
        let bind = |source: &Path, target: &Path| MountOp::Bind {
            source: source.to_path_buf(),
            target: target.to_path_buf(),
            writable: false,
            optional: false,
            placeholder: None,
        };
        plan.ops.push(bind(&self.dir, &self.inside_dir));
        if let Some((exe, inside)) = &self.exe {
            plan.ops.push(bind(exe, inside));
        }
        // Without a resolv.conf, the C library asks 127.0.0.1 anyway: the stub.
        let etc_resolv = Path::new("/etc/resolv.conf");
        if let (Some(resolv), true) = (&self.resolv_conf, etc_resolv.exists()) {
            plan.ops.push(bind(resolv, etc_resolv));
        }
        // Full rights where the mount is read-only: what matters is connecting to the
        // socket (Landlock ABI 9 checks it) and executing kennel.
        plan.landlock.push(LandlockRule {
            path: self.inside_dir.clone(),
            access: LandlockAccess::Full,
        });
    }

    /// The policy with the proxy's variables in the command's environment.
    pub fn policy_with_env(&self, policy: &Policy) -> Policy {
        let mut p = policy.clone();
        for (name, value) in &self.env {
            p.env.retain(|v| &v.name != name);
            p.env.push(EnvVar {
                name: name.clone(),
                value: value.into(),
            });
        }
        p.env.sort_by(|a, b| a.name.cmp(&b.name));
        p
    }

    /// The session's folder on the host, which holds the proxy's socket.
    pub fn host_dir(&self) -> &Path {
        &self.dir
    }

    /// For a sandbox that sees the session's folder where the host has it (the systemd
    /// backend binds it at the same path): its helpers' configuration, without the DNS
    /// stub and the fake addresses (their ports cannot be bound there), and the command's
    /// variables, with `kennel net-connect` run as `exe`.
    pub fn at_host_path(&self, exe: &Path) -> (InsideConfig, Vec<(String, String)>) {
        let socket = self.dir.join("proxy.sock");
        let config = InsideConfig {
            socket: socket.clone(),
            allow_list: self.inside.allow_list,
            fake_ports: Vec::new(),
            dns_stub: false,
            localhost_ports: self.inside.localhost_ports.clone(),
        };
        let env = self
            .env
            .iter()
            .map(|(name, value)| match name.as_str() {
                "KENNEL_NET_SOCKET" => (name.clone(), socket.to_string_lossy().into_owned()),
                "GIT_SSH_COMMAND" => (
                    name.clone(),
                    format!("ssh -o ProxyCommand='{} net-connect %h %p'", exe.display()),
                ),
                _ => (name.clone(), value.clone()),
            })
            .collect();
        (config, env)
    }

    /// Starts the proxy's thread: only after the clone.
    pub fn start(&mut self) -> Result<(), NativeError> {
        if let Some(proxy) = self.proxy.take() {
            proxy
                .start()
                .map_err(|e| NativeError::Setup(format!("starting the network proxy: {e}")))?;
        }
        Ok(())
    }

    /// The summary of what was blocked, for the user.
    pub fn summary(&self) -> Vec<String> {
        let mut lines = self.log.summary(8);
        if !lines.is_empty() {
            lines.push(
                "  (an HTTP client got 403 with the same reason; --net-log FILE keeps every decision)"
                    .into(),
            );
        }
        lines
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Reads the first bytes of a connection to the proxy, and the socket handed over with
/// them, if any (see `kennel_net::handoff`).
fn receive_fd(
    sock: &std::os::unix::net::UnixStream,
    buf: &mut [u8],
) -> std::io::Result<(usize, Option<OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{FromRawFd, RawFd};
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; 2]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut first = None;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for raw in fds {
                // SAFETY: SCM_RIGHTS just installed `raw` in this process's descriptor table
                // and nothing else refers to it: this is its only owner (extra ones are
                // dropped, hence closed, at once).
                let fd = unsafe { OwnedFd::from_raw_fd(raw) };
                if first.is_none() {
                    first = Some(fd);
                }
            }
        }
    }
    Ok((msg.bytes, first))
}

/// In the child, before the capabilities are dropped: binds the listeners.
pub(crate) fn bind_inside(config: &InsideConfig) -> Result<Listeners, String> {
    kennel_net::inside::bind(config).map_err(|e| format!("network helpers: {e}"))
}

/// In the child, once confined: a process of its own serves the listeners until the
/// sandbox ends (the end of its PID namespace ends it).
pub(crate) fn start_inside(
    listeners: Listeners,
    status: &OwnedFd,
    report: &OwnedFd,
    gate: &OwnedFd,
) -> Result<(), String> {
    // SAFETY: the sandbox's init is single-threaded (a clone of the single-threaded
    // supervisor), so the forked child may allocate, start threads and call anything.
    match unsafe { fork() } {
        Err(e) => Err(format!("fork of the network helpers: {e}")),
        Ok(ForkResult::Child) => {
            let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
            // The supervisor reads the status pipe to its end: this process must not hold it.
            let _ = nix::unistd::close(status.as_raw_fd());
            // Nor the init's report of the command's status (the init alone writes it).
            let _ = nix::unistd::close(report.as_raw_fd());
            // Nor the supervisor's gate, whose byte lets the init start the command.
            let _ = nix::unistd::close(gate.as_raw_fd());
            // Nor the terminal: a session of its own, standard streams on /dev/null.
            let _ = nix::unistd::setsid();
            if let Ok(null) = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                let _ = nix::unistd::dup2_stdin(&null);
                let _ = nix::unistd::dup2_stdout(&null);
                let _ = nix::unistd::dup2_stderr(&null);
            }
            kennel_net::inside::serve(listeners);
            crate::sys::exit_now(0)
        }
        Ok(ForkResult::Parent { .. }) => Ok(()),
    }
}
