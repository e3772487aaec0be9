#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! Network policy, entirely on loopback: with `--net off` only the sandbox's own `lo`
//! exists, and the host's loopback services are out of reach.

mod common;

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
names = sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:])
print("interfaces", " ".join(names))
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
