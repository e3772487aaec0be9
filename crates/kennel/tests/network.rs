#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! Network policy, entirely on loopback: with `--net off` only the sandbox's own `lo`
//! exists, and the host's loopback services are out of reach.

mod common;

use std::fs;
use std::net::TcpListener;

use common::{stderr, stdout, Fixture};

#[test]
fn net_off_leaves_only_loopback_and_no_host_service() {
    let fx = Fixture::new("netoff");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let probe = format!(
        r#"python3 - <<'PY'
import socket
import os
names = sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:])
print("interfaces", " ".join(names))
print("sys-interfaces", " ".join(sorted(os.listdir("/sys/class/net"))))
print("cgroups", "yes" if os.listdir("/sys/fs/cgroup") else "no")
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2); print("host-service reached")
except OSError as e:
    print("host-service refused")
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen()
client = socket.create_connection(server.getsockname(), timeout=2)
print("own-loopback works")
PY"#
    );
    let out = fx
        .kennel()
        .args(["run", "--net", "off", "--", "sh", "-c", &probe])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    common::assert_kennel_started(&out);
    let text = stdout(&out);
    assert!(text.contains("interfaces lo\n"), "{text} {}", stderr(&out));
    // /sys lists the sandbox's own interfaces too (the host's, with their MAC addresses,
    // stay out of sight), and still has the cgroup tree.
    assert!(text.contains("sys-interfaces lo\n"), "{text}");
    assert!(text.contains("cgroups yes"), "{text}");
    assert!(text.contains("host-service refused"), "{text}");
    assert!(
        text.contains("own-loopback works"),
        "{text} {}",
        stderr(&out)
    );
    // The same probe with the host network reaches the service: the test can fail.
    let on = fx.sandboxed(&probe);
    assert!(
        stdout(&on).contains("host-service reached"),
        "{}",
        stdout(&on)
    );
    assert!(
        !stdout(&on).contains("sys-interfaces lo\n"),
        "the host's interfaces are listed with the host's network: {}",
        stdout(&on)
    );
}

/// Where the host's own /sys is partly covered (a container masking /sys/firmware), the
/// kernel refuses a sysfs of the sandbox's own: kennel still runs, with the host's /sys,
/// and says what that shows.
#[test]
fn net_off_where_sysfs_cannot_be_mounted_says_so_and_runs() {
    if common::skip_unless_root("covering part of /sys") {
        return;
    }
    let fx = Fixture::new("netoff-covered-sys");
    let inner = fx.kennel();
    // The same command, in a mount namespace of its own where /sys/firmware is covered.
    let mut covered = std::process::Command::new("unshare");
    covered
        .args(["--mount", "sh", "-c"])
        .arg("mount -t tmpfs none /sys/firmware && exec \"$@\"")
        .arg("sh")
        .arg(inner.get_program())
        .args(inner.get_args())
        .args(["run", "--net", "off", "--", "ls", "/sys/class/net"])
        .env_clear()
        .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .current_dir(&fx.repo);
    let out = covered.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not let the sandbox mount a /sys of its own"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("lo\n"), "{}", stdout(&out));
}

#[test]
fn landlock_backend_refuses_net_off_instead_of_ignoring_it() {
    let fx = Fixture::new("netll");
    let out = fx
        .kennel()
        .args(["run", "--backend", "landlock", "--net", "off", "--", "true"])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot cut the network"),
        "{}",
        stderr(&out)
    );
}

// ---- The allow-list network and localhost ports (issue 8). Every server is on a host
// loopback address (127.0.0.1, .2, .3); the proxy's resolver answers from a fixed table
// (KENNEL_DEBUG_NET_HOSTS), so no test sends a packet anywhere else.

use common::{host_service, FakeInternet};

const HOSTS: &str = "api.example.test=127.0.0.2;secure.example.test=127.0.0.3;\
                     echo.example.test=127.0.0.3;rebind.example.test=127.0.0.1;\
                     denied.example.test=127.0.0.2;blocked.example.test=127.0.0.2";

/// A fixture whose user config gives the allow-list for the fake internet.
fn allow_list_fixture(name: &str, localhost: &[u16]) -> (Fixture, FakeInternet) {
    let fx = Fixture::new(name);
    let net = FakeInternet::start(&fx);
    let tls = net
        .tls_port
        .map(|p| format!("\"secure.example.test:{p}\", "))
        .unwrap_or_default();
    let ports: Vec<String> = localhost.iter().map(|p| p.to_string()).collect();
    fx.user_config(&format!(
        r#"version = 1
[defaults.network]
mode = "allow-list"
allow = ["api.example.test:{http}", {tls}"echo.example.test:{echo}", "rebind.example.test",
         "blocked.example.test", "127.0.0.2", "127.0.0.3"]
deny = ["blocked.example.test"]
localhost = [{ports}]
"#,
        http = net.http_port,
        echo = net.echo_port,
        ports = ports.join(", "),
    ));
    (fx, net)
}

fn lines_with<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn allow_list_reaches_listed_hosts_through_the_proxy_variables_and_fake_addresses() {
    let (fx, net) = allow_list_fixture("netallow", &[]);
    let http = net.http_port;
    let mut probes = vec![
        format!("http:http://api.example.test:{http}/"),
        format!("raw:api.example.test,{http}"),
    ];
    if let (Some(tls), Some(ca)) = (net.tls_port, &net.ca) {
        let ca = ca.file_name().unwrap().to_string_lossy().into_owned();
        probes.push(format!("http:https://secure.example.test:{tls}/,{ca}"));
    } else if common::skip_unless(false, "openssl is not installed: no TLS host") {
        // Outside CI the plain-HTTP part still runs.
    }
    let out = fx.net_probe(&[], HOSTS, &probes);
    let text = stdout(&out);
    assert!(
        text.contains("HTTP 200 fake-internet:api.example.test"),
        "through HTTP_PROXY: {text} {}",
        stderr(&out)
    );
    assert!(
        text.contains("RAW fake-internet:api.example.test"),
        "through the DNS stub's fake address: {text} {}",
        stderr(&out)
    );
    if net.tls_port.is_some() {
        assert!(
            lines_with(&text, "HTTP 200").len() == 2,
            "TLS through CONNECT, certificate checked: {text} {}",
            stderr(&out)
        );
    }
    assert!(!stderr(&out).contains("blocked"), "{}", stderr(&out));
}

#[test]
fn allow_list_denies_with_403_explains_at_exit_and_logs() {
    let (fx, net) = allow_list_fixture("netdeny", &[]);
    let log = fx.dir.join("net.log");
    let log_arg = log.to_string_lossy().into_owned();
    let out = fx.net_probe(
        &["--net-log", &log_arg],
        HOSTS,
        &[
            "http:http://denied.example.test/".into(),
            format!("http:http://blocked.example.test:{}/", net.http_port),
            "raw:unlisted.example.test,443".into(),
        ],
    );
    let text = stdout(&out);
    let err = stderr(&out);
    assert!(
        text.contains("HTTP 403 kennel: blocked denied.example.test:80 — not in the allow-list; add it to [profile.default.network] in ~/.config/kennel/config.toml: `allow = [\"denied.example.test\"]`"),
        "{text} {err}"
    );
    assert!(
        text.contains("HTTP 403 kennel: blocked blocked.example.test")
            && text.contains("denied by `blocked.example.test` (config"),
        "the deny list wins over the allow list: {text}"
    );
    assert!(
        text.contains("RAW EMPTY") || text.contains("RAW-ERROR"),
        "fake-address path refused: {text}"
    );
    assert!(err.contains("kennel: blocked 3 connections:"), "{err}");
    assert!(
        err.contains("denied.example.test:80 — not in the allow-list; add it to [profile.default.network] in ~/.config/kennel/config.toml: `allow = [\"denied.example.test\"]`"),
        "{err}"
    );
    assert!(
        err.contains("unlisted.example.test:443 — not in the allow-list"),
        "a tool ignoring the proxy variables is explained by name: {err}"
    );
    let logged = fs::read_to_string(&log).unwrap_or_default();
    assert!(
        logged.contains("blocked denied.example.test:80"),
        "--net-log keeps every decision: {logged}"
    );
}

/// The fix kennel prints for a blocked host is config that kennel takes: pasted where it
/// says, the next run gets through.
#[test]
fn the_printed_fix_for_a_blocked_host_pasted_into_the_config_lets_it_through() {
    let (fx, net) = allow_list_fixture("netfix", &[]);
    let url = format!("http:http://unlisted.example.test:{}/", net.http_port);
    let hosts = format!("{HOSTS};unlisted.example.test=127.0.0.2");
    let out = fx.net_probe(&["--profile", "claude"], &hosts, std::slice::from_ref(&url));
    let err = stderr(&out);
    let fix = err
        .lines()
        .find_map(|l| l.split("add it to ").nth(1))
        .unwrap_or_else(|| panic!("no fix printed: {err}"));
    let (table, line) = fix
        .split_once(" in ~/.config/kennel/config.toml: `")
        .unwrap_or_else(|| panic!("{fix}"));
    assert_eq!(table, "[profile.claude.network]", "{fix}");
    let line = line.trim_end_matches('`');
    let config = fx.home.join(".config/kennel/config.toml");
    let mut text = fs::read_to_string(&config).unwrap();
    text.push_str(&format!("\n{table}\n{line}\n"));
    fx.write(&config, &text);
    let out = fx.net_probe(&["--profile", "claude"], &hosts, &[url]);
    assert!(
        stdout(&out).contains("HTTP 200 fake-internet"),
        "the pasted fix did not let the host through: {} {}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn allow_list_has_only_loopback_no_direct_route_no_udp_and_dns_stays_inside() {
    let (fx, _net) = allow_list_fixture("netiso", &[]);
    let unlisted = host_service("127.0.0.2:0", "unlisted-port");
    let out = fx.net_probe(
        &[],
        HOSTS,
        &[
            "interfaces".into(),
            format!("direct:127.0.0.2,{unlisted}"),
            "udp:192.0.2.1,53".into(),
            "resolve:anything.example.org".into(),
            "resolve:another.example.org".into(),
        ],
    );
    let text = stdout(&out);
    assert!(text.contains("INTERFACES lo\n"), "{text} {}", stderr(&out));
    assert!(
        text.contains("DIRECT refused 127.0.0.2"),
        "the host's 127.0.0.2 is not the sandbox's: {text}"
    );
    assert!(text.contains("UDP fails"), "{text}");
    let resolved = lines_with(&text, "RESOLVE ");
    assert_eq!(resolved.len(), 2, "{text}");
    for line in &resolved {
        assert!(line.contains(" 127.1"), "a fake loopback address: {line}");
    }
    assert_ne!(
        resolved[0].split(' ').nth(2),
        resolved[1].split(' ').nth(2),
        "each name its own address: {text}"
    );
}

#[test]
fn allow_list_refuses_a_name_that_resolves_to_the_hosts_loopback() {
    let (fx, _net) = allow_list_fixture("netrebind", &[]);
    let port = host_service("127.0.0.1:0", "host-private-service");
    let out = fx.net_probe(
        &[],
        HOSTS,
        &[format!("http:http://rebind.example.test:{port}/")],
    );
    let text = stdout(&out);
    assert!(!text.contains("host-private-service"), "{text}");
    assert!(
        text.contains("HTTP 403") && text.contains("resolves to 127.0.0.1, a loopback address"),
        "{text} {}",
        stderr(&out)
    );
}

#[test]
fn listed_localhost_port_works_and_an_unlisted_one_does_not() {
    let listed = host_service("127.0.0.1:0", "listed-service");
    let unlisted = host_service("127.0.0.1:0", "unlisted-service");
    let (fx, _net) = allow_list_fixture("netlocal", &[listed]);
    for mode in ["allow-list", "off"] {
        let out = fx.net_probe(
            &["--net", mode],
            HOSTS,
            &[
                format!("raw:127.0.0.1,{listed}"),
                format!("direct:127.0.0.1,{unlisted}"),
            ],
        );
        let text = stdout(&out);
        assert!(
            text.contains("RAW listed-service"),
            "{mode}: {text} {}",
            stderr(&out)
        );
        assert!(
            text.contains(&"DIRECT refused 127.0.0.1".to_string()),
            "{mode}: {text}"
        );
    }
}

#[test]
fn ssh_like_exchange_through_net_connect_only_when_allowed() {
    let (fx, net) = allow_list_fixture("netssh", &[]);
    let script = format!(
        r#"case "$GIT_SSH_COMMAND" in *"net-connect %h %p"*) echo git-ssh-set;; esac
        k="$(dirname "$KENNEL_NET_SOCKET")/kennel"
        (echo ping-through-proxy; sleep 1) | "$k" net-connect echo.example.test {echo}
        echo allowed-status=$?
        echo x | "$k" net-connect echo.example.test 2222
        echo other-port-status=$?
        "#,
        echo = net.echo_port
    );
    let out = fx
        .kennel()
        .env("KENNEL_DEBUG_NET_HOSTS", HOSTS)
        .args(["run", "--", "sh", "-c", &script])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    common::assert_kennel_started(&out);
    let text = stdout(&out);
    let err = stderr(&out);
    assert!(text.contains("git-ssh-set"), "{text}");
    assert!(
        text.contains("SSH-2.0-kennel-test-echo"),
        "server-first banner: {text} {err}"
    );
    assert!(text.contains("ping-through-proxy"), "echoed: {text} {err}");
    assert!(text.contains("allowed-status=0"), "{text}");
    assert!(text.contains("other-port-status=1"), "{text}");
    assert!(
        err.contains("net-connect echo.example.test:2222: blocked echo.example.test:2222 — not in the allow-list"),
        "{err}"
    );
}

#[test]
fn tls_for_another_name_than_the_connect_host_is_cut() {
    let (fx, net) = allow_list_fixture("netsni", &[]);
    let (Some(tls), Some(ca)) = (net.tls_port, &net.ca) else {
        common::skip_unless(false, "openssl is not installed: no TLS host");
        return;
    };
    let ca = ca.file_name().unwrap().to_string_lossy().into_owned();
    let out = fx.net_probe(
        &[],
        HOSTS,
        &[
            format!("sni:secure.example.test,{tls},secure.example.test,{ca}"),
            format!("sni:secure.example.test,{tls},elsewhere.example.org,{ca}"),
        ],
    );
    let text = stdout(&out);
    assert!(
        text.contains("SNI secure.example.test answered"),
        "{text} {}",
        stderr(&out)
    );
    assert!(text.contains("SNI elsewhere.example.org cut"), "{text}");
    assert!(
        stderr(&out).contains("TLS server name `elsewhere.example.org`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn refusals_instead_of_a_silent_on() {
    let fx = Fixture::new("netrefuse");
    fx.user_config("version = 1\n[defaults.network]\nlocalhost = [5432]\n");
    let out = fx
        .kennel()
        .args(["run", "--net", "on", "--", "true"])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("localhost ports (5432)"),
        "{}",
        stderr(&out)
    );
    let out = fx
        .kennel()
        .args([
            "run",
            "--backend",
            "landlock",
            "--net",
            "allow-list",
            "--",
            "true",
        ])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("allow-list"), "{}", stderr(&out));
}

#[test]
fn explain_shows_the_mode_and_the_list() {
    let fx = Fixture::new("netexplain");
    let out = fx
        .kennel()
        .args(["explain", "claude"])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(text.contains("network    allow-list"), "{text}");
    assert!(text.contains("allow    api.anthropic.com"), "{text}");
}

#[test]
fn git_over_ssh_reaches_the_echo_host_through_the_proxy_command_only_when_allowed() {
    if common::skip_unless(
        std::process::Command::new("sh")
            .args(["-c", "command -v ssh"])
            .output()
            .is_ok_and(|o| o.status.success()),
        "no ssh client (Debian: openssh-client)",
    ) {
        return;
    }
    let (fx, net) = allow_list_fixture("netgitssh", &[]);
    // The echo host is no ssh server: what shows that git's ssh got there through kennel's
    // ProxyCommand is the banner it read (ssh -v prints the remote software version).
    let script = format!(
        r#"export GIT_SSH_COMMAND="$GIT_SSH_COMMAND -v -o StrictHostKeyChecking=no -o BatchMode=yes"
        git ls-remote ssh://git@echo.example.test:{echo}/repo.git 2>&1 | grep -E 'remote software version|blocked' | head -n 3
        git ls-remote ssh://git@echo.example.test:2222/repo.git 2>&1 | grep -E 'remote software version|blocked' | head -n 3
        "#,
        echo = net.echo_port
    );
    let out = fx
        .kennel()
        .env("KENNEL_DEBUG_NET_HOSTS", HOSTS)
        .args(["run", "--", "sh", "-c", &script])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    common::assert_kennel_started(&out);
    let text = stdout(&out);
    assert!(
        text.contains("remote software version kennel-test-echo"),
        "{text} {}",
        stderr(&out)
    );
    assert!(
        text.contains("blocked echo.example.test:2222 — not in the allow-list"),
        "{text}"
    );
    assert_eq!(
        text.matches("remote software version").count(),
        1,
        "the unlisted port is not reached: {text}"
    );
}

// ---- The same network on the systemd backend (issue 18): the proxy runs in the outer
// kennel, the inner kennel relays to it from inside the unit's own network namespace.

#[test]
fn systemd_allow_list_reaches_listed_hosts_through_the_proxy_and_refuses_the_rest() {
    if common::skip_without_user_manager() {
        return;
    }
    let (fx, net) = allow_list_fixture("netsystemd", &[]);
    let http = net.http_port;
    let out = fx.net_probe(
        &["--backend", "systemd"],
        HOSTS,
        &[
            format!("http:http://api.example.test:{http}/"),
            "http:http://denied.example.test/".into(),
            format!("direct:127.0.0.2,{http}"),
        ],
    );
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(
        text.contains("HTTP 200 fake-internet:api.example.test"),
        "through HTTP_PROXY: {text} {err}"
    );
    assert!(
        text.contains("HTTP 403 kennel: blocked denied.example.test:80"),
        "{text} {err}"
    );
    assert!(
        text.contains("DIRECT refused 127.0.0.2"),
        "a direct connection left the unit's network: {text}"
    );
    assert!(err.contains("kennel: blocked 1 connection"), "{err}");
}

#[test]
fn systemd_listed_localhost_port_works_and_an_unlisted_one_does_not() {
    if common::skip_without_user_manager() {
        return;
    }
    let listed = host_service("127.0.0.1:0", "listed-service");
    let unlisted = host_service("127.0.0.1:0", "unlisted-service");
    let (fx, _net) = allow_list_fixture("netlocal-systemd", &[listed]);
    for mode in ["allow-list", "off"] {
        let out = fx.net_probe(
            &["--backend", "systemd", "--net", mode],
            HOSTS,
            &[
                format!("raw:127.0.0.1,{listed}"),
                format!("direct:127.0.0.1,{unlisted}"),
            ],
        );
        let text = stdout(&out);
        assert!(
            text.contains("RAW listed-service"),
            "{mode}: {text} {}",
            stderr(&out)
        );
        assert!(text.contains("DIRECT refused 127.0.0.1"), "{mode}: {text}");
    }
}

/// Host names come from the sandbox: the summary at exit escapes their control characters
/// (no terminal command, no forged `kennel:` line) and keeps a bounded part of a long one
/// (issue 17, items 6 and 8).
#[test]
fn blocked_host_names_reach_the_terminal_escaped_and_bounded() {
    let (fx, _net) = allow_list_fixture("netescape", &[]);
    let probe = r#"python3 -c '
import socket
def connect(target):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(b"CONNECT " + target + b" HTTP/1.1\r\n\r\n")
    print(s.recv(200)[:12])
connect(b"evil\x1b]52;c;cHduZWQ=\x07\xc2\x9b2K\x1b[8m:443")
connect(b"long" + b"x" * 60000 + b".example.test:443")
connect(b"forged\nkennel:ok\r.test:443")
'"#;
    let out = fx.sandboxed(probe);
    let err = stderr(&out);
    let text = stdout(&out);
    assert_eq!(text.matches("403").count(), 2, "{text} {err}");
    // A bare LF or CR in the head is refused before any decision.
    assert!(text.contains("400"), "{text} {err}");
    assert!(err.contains("kennel: blocked 2 connections:"), "{err}");
    assert!(
        err.contains(r"evil\e]52;c;chduzwq=\u{7}\u{9b}2k\e[8m:443 — not in the allow-list"),
        "{err}"
    );
    // No line to paste for a name no host has: its quotes would be TOML of the sandbox's.
    assert!(!err.contains("allow = [\"evil"), "{err}");
    assert!(!err.contains("forged"), "{err}");
    assert!(
        !err.chars().any(|c| c.is_control() && c != '\n'),
        "a raw control character reached kennel's lines: {err:?}"
    );
    assert!(
        err.lines().all(|l| l.len() < 2_000),
        "a host name is kept whole: {} bytes",
        err.len()
    );
}

/// Connections the sandbox opens to the proxy and leaves silent cost kennel a thread each:
/// at most 256 are served at once, the rest are closed and counted (issue 17, item 8; 5,000
/// held tunnels once made 5,718 threads in kennel).
#[test]
fn the_proxy_serves_a_bounded_number_of_connections_at_once() {
    let (fx, _net) = allow_list_fixture("netmany", &[]);
    let mut child = fx.spawn_sandboxed(
        r#"python3 -c '
import socket, time
held = []
for i in range(320):
    try:
        held.append(socket.create_connection(("127.0.0.1", 3128), timeout=5))
    except OSError as e:
        print("refused", e)
time.sleep(4)
print("held", len(held))
'"#,
    );
    let pid = child.id();
    let mut most = 0;
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() && start.elapsed().as_secs() < 60 {
        let threads = fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| d.count())
            .unwrap_or(0);
        most = most.max(threads);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(stdout(&out).contains("held"), "{} {err}", stdout(&out));
    assert!(
        err.contains("connections unserved: the sandbox had 256 open"),
        "{err}"
    );
    assert!(
        most > 200,
        "the probe did not reach the proxy: {most} threads"
    );
    assert!(most < 256 + 40, "kennel ran {most} threads");
}

/// The proxy accepts on the listening socket of the proxy port that the listener inside
/// hands over (issue 19). The sandbox can hand over sockets the same way: only listening
/// TCP sockets are taken, four in all with the listener's own, and their clients get the
/// proxy's policy, nothing more than by connecting to the proxy port.
#[test]
fn sockets_the_sandbox_hands_to_the_proxy_as_listeners_get_only_the_policy() {
    let (fx, net) = allow_list_fixture("netlisten", &[]);
    let probe = format!(
        r#"python3 -c '
import os, socket
path = os.environ["KENNEL_NET_SOCKET"]
def give(sock):
    u = socket.socket(socket.AF_UNIX)
    u.connect(path)
    socket.send_fds(u, [b"\0L"], [sock.fileno()])
    u.settimeout(5)
    try:
        return u.recv(1).decode() or "-"
    except OSError:
        return "?"
def ask(addr, target):
    c = socket.create_connection(addr, timeout=10)
    c.sendall(b"CONNECT " + target + b" HTTP/1.1\r\n\r\n")
    return c.recv(12).decode()
held = socket.create_connection(("127.0.0.1", 3128))
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
unix = socket.socket(socket.AF_UNIX)
unix.bind("/tmp/l.sock")
unix.listen()
print("not listeners", "".join(give(s) for s in (held, udp, unix)))
mine = []
for _ in range(4):
    l = socket.socket()
    l.bind(("127.0.0.1", 0))
    l.listen()
    mine.append((l, give(l)))
print("listeners", "".join(a for _, a in mine))
taken = [l.getsockname() for l, a in mine if a == "A"]
print("denied", ask(taken[0], b"denied.example.test:80"))
print("allowed", ask(taken[-1], b"127.0.0.2:{http}"))
print("proxy port", ask(("127.0.0.1", 3128), b"127.0.0.2:{http}"))
'"#,
        http = net.http_port
    );
    let out = fx.sandboxed(&probe);
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(text.contains("not listeners ---"), "{text} {err}");
    let listeners = text
        .lines()
        .find_map(|l| l.strip_prefix("listeners "))
        .unwrap_or_else(|| panic!("{text} {err}"));
    // The listener inside gave 127.0.0.1's, and ::1's when the namespace has IPv6.
    let taken = listeners.matches('A').count();
    assert!(
        (2..=3).contains(&taken) && listeners.ends_with('-'),
        "{text} {err}"
    );
    assert!(text.contains("denied HTTP/1.1 403"), "{text} {err}");
    assert!(text.contains("allowed HTTP/1.1 200"), "{text} {err}");
    assert!(text.contains("proxy port HTTP/1.1 200"), "{text} {err}");
    assert!(err.contains("denied.example.test:80"), "{err}");
}

/// `--allow HOST` and `--localhost PORT` open a host or a loopback port for one run, with
/// nothing in the config; `--allow` without the allow-list network is refused, not ignored.
#[test]
fn allow_and_localhost_flags_open_a_host_or_a_port_for_one_run() {
    let (fx, net) = allow_list_fixture("netflags", &[]);
    let service = host_service("127.0.0.1:0", "flag-service");
    let url = format!("http:http://unlisted.example.test:{}/", net.http_port);
    let hosts = format!("{HOSTS};unlisted.example.test=127.0.0.2");
    let probes = [url.clone(), format!("raw:127.0.0.1,{service}")];
    let out = fx.net_probe(&[], &hosts, &probes);
    assert!(stdout(&out).contains("HTTP 403"), "{}", stdout(&out));
    assert!(
        !stdout(&out).contains("RAW flag-service"),
        "{}",
        stdout(&out)
    );
    let allow = format!("unlisted.example.test:{}", net.http_port);
    let port = service.to_string();
    let out = fx.net_probe(&["--allow", &allow, "--localhost", &port], &hosts, &probes);
    let text = stdout(&out);
    assert!(
        text.contains("HTTP 200 fake-internet"),
        "{text} {}",
        stderr(&out)
    );
    assert!(text.contains("RAW flag-service"), "{text} {}", stderr(&out));
    let out = fx
        .kennel()
        .args(["run", "--net", "on", "--allow", "example.org", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--allow needs the allow-list network"));
}

/// A host the allow-list lets through but that cannot be reached: the command gets 502,
/// and kennel says at exit which host failed and why (before, only --net-log said it).
#[test]
fn an_allowed_host_that_fails_is_summarised_with_its_cause() {
    let (fx, _net) = allow_list_fixture("netfail", &[]);
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let hosts = format!("{HOSTS};dead.example.test=127.0.0.2");
    let allow = format!("dead.example.test:{closed}");
    let out = fx.net_probe(
        &["--allow", &allow],
        &hosts,
        &[format!("http:http://dead.example.test:{closed}/")],
    );
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(text.contains("502"), "{text} {err}");
    assert!(
        err.contains("kennel: failed 1 connection to allowed hosts"),
        "{err}"
    );
    assert!(
        err.contains(&format!("dead.example.test:{closed} — ")),
        "the host and its cause: {err}"
    );
}

/// kennel killed with SIGKILL leaves its network session's folder (the proxy's socket, a
/// resolv.conf); the next kennel removes it. It lives in kennel's own private folder.
#[test]
fn a_network_session_left_by_a_killed_kennel_is_removed_by_the_next() {
    let (fx, _net) = allow_list_fixture("netleft", &[]);
    let mut child = fx.spawn_sandboxed("echo started; sleep 30");
    let mut first = [0u8; 8];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    let uid = common::env()
        .setpriv
        .map_or_else(|| nix::unistd::getuid().as_raw(), |(uid, _)| uid);
    let scratch = fx.dir.join("tmp").join(format!("kennel-{uid}"));
    let sessions = || -> Vec<std::path::PathBuf> {
        fs::read_dir(&scratch)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with("kennel-net-"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        sessions().len(),
        1,
        "the session's folder is in kennel's own folder"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    common::eventually(10, || {
        // The init dies with kennel; once it is gone, the folder is left.
        fx.sandboxed("true");
        sessions().is_empty()
    });
    assert!(sessions().is_empty(), "left: {:?}", sessions());
    let _ = fx.kennel_with(&["homes", "--remove"]);
}

/// A company's proxy: kennel's proxy goes through the user's HTTPS_PROXY (by CONNECT, with
/// the credentials of its URL) for the hosts it allows, and says so; what it refuses never
/// reaches the company's proxy.
#[test]
fn the_allowed_hosts_are_reached_through_the_users_own_proxy() {
    use std::io::{Read, Write};
    let (fx, net) = allow_list_fixture("netupstream", &[]);
    let company = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let company_port = company.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = std::sync::Arc::clone(&seen);
    let http_port = net.http_port;
    std::thread::spawn(move || {
        for conn in company.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let text = String::from_utf8_lossy(&head).into_owned();
            log.lock().unwrap().push(text.clone());
            // Only the fake internet's web host, whatever name was asked for.
            let Ok(mut origin) = std::net::TcpStream::connect(("127.0.0.2", http_port)) else {
                continue;
            };
            let _ = conn.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
            let (mut a, mut b) = (conn.try_clone().unwrap(), origin.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut a, &mut origin);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut b, &mut conn);
            });
        }
    });
    // net_probe writes netprobe.py into the repository (and probes nothing here).
    let _ = fx.net_probe(&[], HOSTS, &[]);
    let out = fx
        .kennel()
        .env("KENNEL_DEBUG_NET_HOSTS", HOSTS)
        .env(
            "HTTPS_PROXY",
            format!("http://alice:s3cret@127.0.0.1:{company_port}"),
        )
        .args(["run", "--", "python3", "netprobe.py"])
        .arg(format!("http:http://api.example.test:{http_port}/"))
        .arg("http:http://denied.example.test/")
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(text.contains("HTTP 200 fake-internet"), "{text} {err}");
    assert!(text.contains("HTTP 403"), "{text} {err}");
    assert!(
        err.contains(&format!(
            "through your proxy 127.0.0.1:{company_port} (HTTPS_PROXY"
        )),
        "{err}"
    );
    assert!(
        !err.contains("s3cret"),
        "the proxy's password was printed: {err}"
    );
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(
            |h| h.starts_with(&format!("CONNECT api.example.test:{http_port} "))
                && h.contains("Proxy-Authorization: Basic YWxpY2U6czNjcmV0")
        ),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|h| h.contains("denied.example.test")),
        "a refused host reached the company's proxy: {seen:?}"
    );
}
