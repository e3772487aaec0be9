//! Policy -> the `systemd-run --user` command line. Pure: everything it needs comes in
//! as arguments, so that the exact command is snapshot-tested and `--dry-run` prints what
//! would run.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use kennel_policy::{Access, Network, PathRule, Policy};

use crate::error::SystemdError;
use crate::escape::{exec_arg, list_item, shell_word, tmpfs_item, unit_component, utf8, utf8_os};
use crate::limits::Limits;
use crate::verify::{first_components, EmptyDir, VerifySpec};

/// What the caller knows besides the policy.
#[derive(Debug, Clone)]
pub struct Options {
    /// Standard input is a terminal: `--pty`; otherwise `--pipe`.
    pub tty: bool,
    /// Makes the unit name unique among concurrent runs (the caller's pid).
    pub instance: u32,
    /// kennel's own executable, run inside the unit as `internal-verify-exec` to check the
    /// protections and then start the command.
    pub kennel_exe: PathBuf,
    pub limits: Limits,
    /// The kennel that waits for the unit: the unit ends its command when it is gone.
    /// None for a command printed to paste (`--dry-run`).
    pub watch: Option<crate::verify::Watched>,
    /// The proxy the outer kennel runs for the allow-list network or localhost ports. None
    /// for a command printed to paste: nothing would run the proxy beside it.
    pub net: Option<crate::verify::UnitNet>,
}

/// A ready-to-run `systemd-run` invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The unit's name, without `.service`.
    pub unit: String,
    /// `systemd-run` and its arguments.
    pub argv: Vec<String>,
    /// Variables `systemd-run` itself must have: `-E NAME` passes the value from its own
    /// environment, so that values (API keys of a profile) never appear on a command line.
    pub env: Vec<(String, OsString)>,
    pub verify: VerifySpec,
}

impl Invocation {
    /// The command as one shell line, ready to paste (the `-E` values come from the shell).
    pub fn shell_line(&self) -> String {
        self.argv
            .iter()
            .map(|a| shell_word(a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The manager mounts a read-only tmpfs on these with `ProtectHome=tmpfs`.
const PROTECT_HOME_DIRS: &[&str] = &["/home", "/root", "/run/user"];
/// `PrivateTmp=yes` gives the unit its own, empty, writable copies of these.
const PRIVATE_TMP_DIRS: &[&str] = &["/tmp", "/var/tmp"];
/// `ProtectSystem=strict` makes the whole file system read-only; these are checked.
const SYSTEM_DIRS: &[&str] = &["/usr", "/etc"];

/// The properties of every kennel unit, whatever the policy.
///
/// `PrivateUsers=yes` comes first because the others depend on it: an unprivileged user
/// manager can only build the unit's mount namespace inside a user namespace, and
/// systemd 252 (Debian 12) accepts `ProtectHome=`, `ProtectSystem=`, `PrivateTmp=`... in
/// a user unit without it and silently does not apply them (systemd issue 25014). Later
/// versions imply it; stating it costs nothing. The inner check still verifies the result.
///
/// `ProtectHome=tmpfs` and `PrivateTmp=yes` may hide more than a policy asks (a policy that
/// leaves `/home` visible), never less; the policy's own rules re-expose what it names.
const FIXED_PROPERTIES: &[&str] = &[
    "PrivateUsers=yes",
    "PrivateTmp=yes",
    "ProtectHome=tmpfs",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    // Not ProtectKernelTunables=: its read-only mounts over parts of /proc would forbid
    // the /proc of the PID namespace that kennel's step inside the unit makes (the kernel
    // mounts a new /proc only where the old one is not partly covered); the step makes
    // /proc/sys and /sys read-only itself.
    "ProtectControlGroups=yes",
    "ProtectKernelModules=yes",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
    // The native backend's seccomp deny-list, as far as systemd can say it (ioctl
    // arguments such as TIOCSTI cannot be named here; the unit gets its own terminal or
    // none). ptrace stays allowed for debuggers. Denied calls fail with EPERM.
    // kennel's step makes its own user, mount, PID and IPC namespaces (System V shared
    // memory, semaphores and message queues of the user's stay outside), then forbids any
    // new user namespace (and so any other) with its own system call filter.
    "RestrictNamespaces=user mnt pid ipc",
    // As the native backend: a sandbox that ignores SIGTERM is killed 5 s after it was asked
    // to stop (Ctrl-C, its terminal closed, kennel terminated, `systemctl --user stop`),
    // not after the manager's default of 90 s.
    "TimeoutStopSec=5s",
    "SystemCallErrorNumber=EPERM",
    // Not @mount: kennel's step mounts the /proc of its PID namespace, then installs the
    // native backend's filter, which refuses every mount call (and a new user namespace)
    // to the command.
    "SystemCallFilter=~@keyring @module @reboot @swap @raw-io @cpu-emulation @obsolete \
     bpf perf_event_open userfaultfd setns open_by_handle_at kexec_load kexec_file_load acct \
     io_uring_setup io_uring_enter io_uring_register",
];

fn unsupported(feature: &'static str, detail: String) -> SystemdError {
    SystemdError::Unsupported { feature, detail }
}

fn is_one_of(path: &Path, list: &[&str]) -> bool {
    list.iter().any(|p| path == Path::new(p))
}

fn optional(rule: &PathRule) -> &'static str {
    if rule.optional {
        "-"
    } else {
        ""
    }
}

/// The mounts the policy's rules become.
#[derive(Default)]
struct Mounts {
    bind_rw: Vec<String>,
    bind_ro: Vec<String>,
    tmpfs: Vec<String>,
    inaccessible: Vec<String>,
    /// Directories the unit sees as fresh and empty (but for the mount points below).
    emptied: Vec<PathBuf>,
    read_only: Vec<PathBuf>,
    inaccessible_paths: Vec<PathBuf>,
}

fn map_rules(policy: &Policy) -> Result<Mounts, SystemdError> {
    let mut m = Mounts::default();
    match policy.paths.iter().find(|r| r.path == Path::new("/")) {
        Some(r) if r.access == Access::ReadOnly => {}
        Some(r) => {
            return Err(unsupported(
                "a root file system that is not read-only",
                format!("the policy makes / {}", r.access.describe()),
            ))
        }
        None => {
            return Err(unsupported(
                "a policy without a rule for /",
                "ProtectSystem=strict always makes / read-only".into(),
            ))
        }
    }
    m.emptied
        .extend(PROTECT_HOME_DIRS.iter().map(PathBuf::from));
    m.emptied.extend(PRIVATE_TMP_DIRS.iter().map(PathBuf::from));
    m.read_only.extend(SYSTEM_DIRS.iter().map(PathBuf::from));

    for rule in policy.paths.iter().filter(|r| r.path != Path::new("/")) {
        let path = utf8("a path of the policy", &rule.path)?;
        let above = rule
            .path
            .parent()
            .and_then(|parent| policy.rule_for(parent))
            .map_or(Access::ReadOnly, |r| r.access);
        let private_tmp = is_one_of(&rule.path, PRIVATE_TMP_DIRS);
        match rule.access {
            _ if private_tmp && rule.access != Access::Tmpfs => {
                return Err(unsupported(
                    "a /tmp or /var/tmp other than a private one",
                    format!(
                        "the policy makes {path} {}, PrivateTmp=yes always gives the unit its own",
                        rule.access.describe()
                    ),
                ))
            }
            // PrivateTmp=yes.
            Access::Tmpfs if private_tmp => {}
            Access::ReadWrite => m
                .bind_rw
                .push(format!("{}{}", optional(rule), list_item(path))),
            Access::ReadOnly => {
                m.bind_ro
                    .push(format!("{}{}", optional(rule), list_item(path)));
                m.read_only.push(rule.path.clone());
            }
            // The home backed by a private host folder (listed at exit, or kept): bound.
            Access::Tmpfs if rule.path == policy.home && policy.home_source.is_some() => {
                if let Some(source) = &policy.home_source {
                    let source = utf8("the sandbox's home", source)?;
                    // Not checked as empty: a persistent home, or copied-back files,
                    // are there by design.
                    m.bind_rw
                        .push(format!("{}:{}", list_item(source), list_item(path)));
                }
            }
            Access::Tmpfs => {
                let mode = if rule.path == policy.home {
                    "mode=0700"
                } else {
                    "mode=0755"
                };
                // Bounded like the native backend's (`tmpfs-size`): the manager's tmpfs
                // pages are the host's RAM.
                let options = format!("{mode},{}", policy.tmpfs.mount_options());
                m.tmpfs.push(tmpfs_item(path, &options));
                m.emptied.push(rule.path.clone());
            }
            // Already empty: a tmpfs of ProtectHome=tmpfs, or of a rule above.
            Access::Hidden if is_one_of(&rule.path, PROTECT_HOME_DIRS) => {}
            Access::Hidden if matches!(above, Access::Hidden | Access::Tmpfs) => {}
            Access::Hidden => {
                let reexposed = policy
                    .paths
                    .iter()
                    .any(|r| r.path != rule.path && r.path.starts_with(&rule.path));
                if reexposed {
                    // An empty read-only directory that deeper rules can bind into
                    // (InaccessiblePaths= would make those unreachable).
                    m.tmpfs.push(tmpfs_item(path, "ro"));
                    m.emptied.push(rule.path.clone());
                } else {
                    m.inaccessible
                        .push(format!("{}{}", optional(rule), list_item(path)));
                    m.inaccessible_paths.push(rule.path.clone());
                }
            }
        }
    }
    Ok(m)
}

/// The exact `systemd-run` command that runs `policy` as a transient user unit.
pub fn command(policy: &Policy, opts: &Options) -> Result<Invocation, SystemdError> {
    let mut mounts = map_rules(policy)?;
    // The host's /dev/shm is shared memory of every program of the user's (ProtectSystem=
    // leaves it writable): the unit gets an empty one of its own, as the native backend.
    // Bounded like every writable tmpfs of the sandbox (`tmpfs-size`).
    mounts.tmpfs.push(tmpfs_item(
        "/dev/shm",
        &format!("mode=1777,{}", policy.tmpfs.mount_options()),
    ));
    mounts.emptied.push(PathBuf::from("/dev/shm"));

    // kennel itself must be reachable inside to verify; when it lives somewhere the policy
    // hides (~/.cargo/bin), only the binary is bound, read-only.
    let exe_visible = policy
        .rule_for(&opts.kennel_exe)
        .is_some_and(|r| matches!(r.access, Access::ReadOnly | Access::ReadWrite));
    let exe = utf8("kennel's executable", &opts.kennel_exe)?;
    if !exe_visible {
        mounts.bind_ro.push(list_item(exe));
    }

    let unit = format!(
        "kennel-{}-{}-{}",
        unit_component(&policy.profile, 32),
        unit_component(
            &policy
                .workspace
                .file_name()
                .map_or_else(|| "root".into(), |n| n.to_string_lossy().into_owned()),
            64
        ),
        opts.instance
    );
    let workspace = utf8("the workspace", &policy.workspace)?;
    let cwd = utf8("the working directory", &policy.cwd)?;

    let mut argv: Vec<String> = vec![
        "systemd-run".into(),
        "--user".into(),
        format!("--unit={unit}"),
        format!(
            "--description=kennel {} sandbox for {workspace}",
            policy.profile
        ),
        if opts.tty { "--pty" } else { "--pipe" }.into(),
        "--wait".into(),
        "--collect".into(),
        "--quiet".into(),
    ];
    let mut property = |p: String| {
        argv.push("-p".into());
        argv.push(p);
    };
    for p in FIXED_PROPERTIES {
        property((*p).into());
    }
    let relayed = matches!(policy.network, Network::AllowList(_))
        || (policy.network == Network::Off && !policy.localhost_ports.is_empty());
    match (&policy.network, &opts.net) {
        (Network::On, _) if !policy.localhost_ports.is_empty() => {
            return Err(unsupported(
                "localhost ports with the host's network",
                "with `on` every host loopback port is reachable already; list ports with \
                 `off` or `allow-list`"
                    .into(),
            ))
        }
        (Network::On, _) => {}
        // The proxy runs in the outer kennel, its socket bound into the unit, and the
        // inner kennel relays to it (see `UnitNet`).
        (_, Some(net)) if relayed => {
            property("PrivateNetwork=yes".into());
            mounts
                .bind_ro
                .push(list_item(utf8("the network session", &net.dir)?));
        }
        (_, None) if relayed => {
            return Err(unsupported(
                "the allow-list network and localhost ports in a command to paste",
                "they need kennel's proxy running beside the unit; run without --dry-run".into(),
            ))
        }
        _ => property("PrivateNetwork=yes".into()),
    }
    for (name, list) in [
        ("BindPaths", &mounts.bind_rw),
        ("BindReadOnlyPaths", &mounts.bind_ro),
        ("TemporaryFileSystem", &mounts.tmpfs),
        ("InaccessiblePaths", &mounts.inaccessible),
    ] {
        if !list.is_empty() {
            property(format!("{name}={}", list.join(" ")));
        }
    }
    // Not escaped: systemd-run takes WorkingDirectory= verbatim.
    property(format!("WorkingDirectory={cwd}"));
    for (name, value) in [
        ("MemoryMax", &opts.limits.memory),
        ("TasksMax", &opts.limits.tasks),
        ("CPUQuota", &opts.limits.cpu),
    ] {
        if let Some(v) = value {
            property(format!("{name}={v}"));
        }
    }

    let mut env = Vec::new();
    for var in &policy.env {
        if var.name.is_empty() || var.name.contains('=') {
            return Err(unsupported(
                "an environment variable with this name",
                format!("{:?}", var.name),
            ));
        }
        if var.value.to_str().is_none() {
            return Err(SystemdError::NotUtf8 {
                what: "an environment variable",
                value: format!("the value of {}", var.name),
            });
        }
        argv.push("-E".into());
        argv.push(var.name.clone());
        env.push((var.name.clone(), var.value.clone()));
    }

    // What the unit must look like from inside.
    let mut visible: Vec<PathBuf> = policy
        .paths
        .iter()
        .filter(|r| r.access != Access::Hidden)
        .map(|r| r.path.clone())
        .chain(mounts.emptied.iter().cloned())
        .collect();
    if !exe_visible {
        visible.push(opts.kennel_exe.clone());
    }
    let net = opts.net.clone().filter(|_| relayed);
    if let Some(net) = &net {
        visible.push(net.dir.clone());
    }
    let verify = VerifySpec {
        empty: mounts
            .emptied
            .iter()
            .map(|dir| EmptyDir {
                path: dir.clone(),
                allowed: first_components(dir, &visible),
            })
            .collect(),
        read_only: mounts.read_only,
        inaccessible: mounts.inaccessible_paths,
        no_network: policy.network != Network::On,
        keep_env: policy.env.iter().map(|v| v.name.clone()).collect(),
        limits: opts.limits.clone(),
        watch: opts.watch,
        net,
    };

    argv.push("--".into());
    argv.push(exe.into());
    argv.push("internal-verify-exec".into());
    for arg in verify.to_args() {
        argv.push(exec_arg(utf8_os("a path of the policy", &arg)?));
    }
    argv.push("--".into());
    if policy.command.is_empty() {
        return Err(unsupported("an empty command", "name a command".into()));
    }
    for arg in &policy.command {
        argv.push(exec_arg(utf8_os("an argument of the command", arg)?));
    }
    Ok(Invocation {
        unit,
        argv,
        env,
        verify,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kennel_policy::{EnvVar, RuleOrigin};

    fn rule(path: &str, access: Access, optional: bool) -> PathRule {
        PathRule::new(path, access, optional, RuleOrigin::builtin("test"))
    }

    fn policy(extra: Vec<PathRule>) -> Policy {
        let mut paths = vec![
            rule("/", Access::ReadOnly, false),
            rule("/home", Access::Hidden, true),
            rule("/tmp", Access::Tmpfs, false),
            rule("/home/u", Access::Tmpfs, false),
            rule("/home/u/p", Access::ReadWrite, false),
        ];
        paths.extend(extra);
        let mut p = Policy::with_rules(Path::new("/home/u/p"), Path::new("/home/u"), paths);
        p.env = vec![EnvVar {
            name: "PATH".into(),
            value: "/usr/bin".into(),
        }];
        p.backend = kennel_policy::Backend::Systemd;
        p.profile = "test".into();
        p
    }

    fn opts() -> Options {
        Options {
            tty: false,
            instance: 7,
            kennel_exe: "/usr/bin/kennel".into(),
            limits: Limits::default(),
            watch: None,
            net: None,
        }
    }

    fn property<'a>(inv: &'a Invocation, name: &str) -> Option<&'a str> {
        inv.argv
            .iter()
            .filter_map(|a| a.strip_prefix(name)?.strip_prefix('='))
            .next()
    }

    #[test]
    fn the_original_wrappers_properties_are_all_there() -> Result<(), SystemdError> {
        let inv = command(&policy(vec![]), &opts())?;
        for p in [
            "PrivateTmp=yes",
            "ProtectHome=tmpfs",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectControlGroups=yes",
            "PrivateUsers=yes",
        ] {
            assert!(inv.argv.iter().any(|a| a == p), "{p} missing");
        }
        // The wrapper's ProtectKernelTunables= is done by kennel's step inside the unit
        // (/proc/sys and /sys read-only, with a /proc of the sandbox's PID namespace).
        assert!(!inv
            .argv
            .iter()
            .any(|a| a.starts_with("ProtectKernelTunables")));
        assert_eq!(property(&inv, "BindPaths"), Some("/home/u/p"));
        assert_eq!(
            property(&inv, "TemporaryFileSystem"),
            Some("/home/u:mode=0700,size=1073741824,nr_inodes=131072 /dev/shm:mode=1777,size=1073741824,nr_inodes=131072")
        );
        assert_eq!(property(&inv, "WorkingDirectory"), Some("/home/u/p"));
        assert!(inv.argv.iter().any(|a| a == "--pipe"));
        assert_eq!(inv.unit, "kennel-test-p-7");
        assert_eq!(
            inv.env,
            vec![("PATH".to_string(), OsString::from("/usr/bin"))]
        );
        Ok(())
    }

    #[test]
    fn a_terminal_gets_a_pty() -> Result<(), SystemdError> {
        let mut o = opts();
        o.tty = true;
        let inv = command(&policy(vec![]), &o)?;
        assert!(inv.argv.iter().any(|a| a == "--pty"));
        assert!(!inv.argv.iter().any(|a| a == "--pipe"));
        Ok(())
    }

    #[test]
    fn hidden_paths_become_inaccessible_or_an_empty_tmpfs() -> Result<(), SystemdError> {
        let p = policy(vec![
            rule("/srv/secret", Access::Hidden, true),
            rule("/run", Access::Hidden, true),
            rule("/run/current-system", Access::ReadOnly, true),
            // Below an empty home: nothing to do.
            rule("/home/u/.ssh", Access::Hidden, true),
        ]);
        let inv = command(&p, &opts())?;
        assert_eq!(property(&inv, "InaccessiblePaths"), Some("-/srv/secret"));
        assert_eq!(
            property(&inv, "TemporaryFileSystem"),
            Some("/run:ro /home/u:mode=0700,size=1073741824,nr_inodes=131072 /dev/shm:mode=1777,size=1073741824,nr_inodes=131072")
        );
        assert_eq!(
            property(&inv, "BindReadOnlyPaths"),
            Some("-/run/current-system")
        );
        assert!(!inv.argv.iter().any(|a| a.contains(".ssh")));
        assert_eq!(inv.verify.inaccessible, vec![PathBuf::from("/srv/secret")]);
        let run = inv
            .verify
            .empty
            .iter()
            .find(|e| e.path == Path::new("/run"));
        let allowed = run.map(|e| e.allowed.clone()).unwrap_or_default();
        assert_eq!(
            allowed,
            vec![OsString::from("current-system"), "user".into()]
        );
        Ok(())
    }

    #[test]
    fn paths_with_spaces_and_colons_are_escaped() -> Result<(), SystemdError> {
        let mut p = policy(vec![rule("/home/u/my proj:1", Access::ReadWrite, true)]);
        p.cwd = "/home/u/my proj:1".into();
        let inv = command(&p, &opts())?;
        assert_eq!(
            property(&inv, "BindPaths"),
            Some(r"-/home/u/my\ proj\:1 /home/u/p")
        );
        assert_eq!(
            property(&inv, "WorkingDirectory"),
            Some("/home/u/my proj:1")
        );
        Ok(())
    }

    #[test]
    fn network_off_is_a_private_network_and_checked() -> Result<(), SystemdError> {
        let mut p = policy(vec![]);
        p.network = Network::Off;
        let inv = command(&p, &opts())?;
        assert!(inv.argv.iter().any(|a| a == "PrivateNetwork=yes"));
        assert!(inv.verify.no_network);
        Ok(())
    }

    #[test]
    fn what_systemd_cannot_express_is_an_error_naming_it() {
        let mut host_tmp = policy(vec![]);
        for r in host_tmp
            .paths
            .iter_mut()
            .filter(|r| r.path == Path::new("/tmp"))
        {
            r.access = Access::ReadWrite;
        }
        let cases = [
            policy(vec![rule("/", Access::ReadWrite, false)]),
            host_tmp,
            policy(vec![rule("/var/tmp", Access::Hidden, false)]),
        ];
        for p in cases {
            match command(&p, &opts()) {
                Err(SystemdError::Unsupported { feature, .. }) => assert!(!feature.is_empty()),
                other => panic!("expected Unsupported, got {other:?}"),
            }
        }
        // The allow-list network needs kennel's proxy beside the unit: not in a command to
        // paste (no `net` in the options); with one, the unit gets its own network and
        // the proxy's folder, and the inner kennel relays to it.
        let mut allow_list = policy(vec![]);
        allow_list.network = Network::AllowList(Default::default());
        assert!(matches!(
            command(&allow_list, &opts()),
            Err(SystemdError::Unsupported { .. })
        ));
        let net = crate::verify::UnitNet {
            dir: "/tmp/kennel-net-1".into(),
            socket: "/tmp/kennel-net-1/proxy.sock".into(),
            proxy: true,
            localhost_ports: vec![8080],
        };
        let with_proxy = Options {
            net: Some(net.clone()),
            ..opts()
        };
        let inv = command(&allow_list, &with_proxy).unwrap_or_else(|e| panic!("{e}"));
        assert!(inv.argv.iter().any(|a| a == "PrivateNetwork=yes"));
        assert!(
            property(&inv, "BindReadOnlyPaths").is_some_and(|b| b.contains("/tmp/kennel-net-1"))
        );
        assert_eq!(inv.verify.net, Some(net));
        assert!(inv.verify.no_network);
        let mut no_root = policy(vec![]);
        no_root.paths.retain(|r| r.path != Path::new("/"));
        assert!(matches!(
            command(&no_root, &opts()),
            Err(SystemdError::Unsupported { .. })
        ));
    }

    #[test]
    fn non_utf8_is_an_error_and_values_are_never_printed() {
        use std::os::unix::ffi::OsStringExt;
        let mut p = policy(vec![]);
        p.env.push(EnvVar {
            name: "KEY".into(),
            value: OsString::from_vec(vec![b's', 0xff]),
        });
        let err = command(&p, &opts()).err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(err.contains("the value of KEY"), "{err}");
        let mut p = policy(vec![]);
        p.command = vec![OsString::from_vec(vec![0xff])];
        assert!(matches!(
            command(&p, &opts()),
            Err(SystemdError::NotUtf8 { .. })
        ));
    }

    #[test]
    fn kennel_is_bound_only_when_the_policy_hides_it() -> Result<(), SystemdError> {
        let mut o = opts();
        o.kennel_exe = "/home/u/.cargo/bin/kennel".into();
        let inv = command(&policy(vec![]), &o)?;
        assert_eq!(
            property(&inv, "BindReadOnlyPaths"),
            Some("/home/u/.cargo/bin/kennel")
        );
        let home = inv
            .verify
            .empty
            .iter()
            .find(|e| e.path == Path::new("/home/u"));
        let allowed = home.map(|e| e.allowed.clone()).unwrap_or_default();
        assert_eq!(allowed, vec![OsString::from(".cargo"), "p".into()]);
        let inv = command(&policy(vec![]), &opts())?;
        assert_eq!(property(&inv, "BindReadOnlyPaths"), None);
        Ok(())
    }

    #[test]
    fn limits_become_cgroup_properties() -> Result<(), SystemdError> {
        let mut o = opts();
        o.limits = Limits::parse(Some("2G"), Some("100"), Some("1.5"))?;
        let inv = command(&policy(vec![]), &o)?;
        assert_eq!(property(&inv, "MemoryMax"), Some("2G"));
        assert_eq!(property(&inv, "TasksMax"), Some("100"));
        assert_eq!(property(&inv, "CPUQuota"), Some("150%"));
        Ok(())
    }

    #[test]
    fn the_command_is_protected_from_the_managers_expansion() -> Result<(), SystemdError> {
        let mut p = policy(vec![]);
        p.command = vec!["sh".into(), "-c".into(), "echo $HOME $$".into()];
        let inv = command(&p, &opts())?;
        assert_eq!(
            inv.argv.last().map(String::as_str),
            Some("echo $$HOME $$$$")
        );
        Ok(())
    }
}
