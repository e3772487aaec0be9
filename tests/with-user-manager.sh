#!/bin/sh
# Runs COMMAND... while a systemd user manager runs for the test user, then stops it.
#
#   tests/with-user-manager.sh cargo test --workspace
#
# The systemd backend's behaviour tests need a real `systemd --user` for the unprivileged
# test user (kennel-test, the user the Rust harness runs kennel as).
#
# - As an ordinary user (a developer's laptop), the tests run kennel as you and use your
#   own manager: COMMAND runs unchanged.
# - As root where systemd is PID 1, the test user's manager is started with
#   `systemctl start user@UID.service`.
# - As root where systemd is installed but not PID 1 (containers, CI machines), a manager
#   is started by hand. systemd refuses to run a user instance unless /run/systemd/system
#   exists, so it runs in a private mount namespace with a tmpfs on /run/systemd holding
#   that directory (and /run/systemd/unit-root, without which systemd 252 fails units
#   with PrivateUsers=yes: 226/NAMESPACE). It needs XDG_RUNTIME_DIR owned by the user and
#   a cgroup subtree of its own: one per hierarchy it uses, chowned to the user, with the
#   manager's shell moved in before it starts.
set -eu

user=${KENNEL_TEST_USER:-kennel-test}

if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARG...]" >&2
    exit 2
fi

if [ "$(id -u)" -ne 0 ]; then
    exec "$@"
fi

if ! id -u "$user" >/dev/null 2>&1; then
    useradd --no-create-home --home-dir /nonexistent --shell /bin/sh "$user" 2>/dev/null ||
        id -u "$user" >/dev/null
fi
uid=$(id -u "$user")
gid=$(id -g "$user")
runtime=/run/user/$uid

as_user() {
    setpriv --reuid="$uid" --regid="$gid" --init-groups \
        env -i HOME=/nonexistent USER="$user" LOGNAME="$user" PATH=/usr/bin:/bin \
        XDG_RUNTIME_DIR="$runtime" "$@"
}

manager_ready() {
    [ -S "$runtime/bus" ] &&
        as_user systemctl --user show --property=Version --value >/dev/null 2>&1
}

wait_ready() {
    i=0
    while ! manager_ready; do
        i=$((i + 1))
        if [ "$i" -gt 300 ]; then
            echo "$0: the user manager of $user did not answer within 30 s" >&2
            return 1
        fi
        sleep 0.1
    done
}

if [ -d /run/systemd/system ] && [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
    systemctl start "user@$uid.service"
    status=0
    wait_ready && "$@" || status=$?
    systemctl stop "user@$uid.service" || true
    exit "$status"
fi

systemd_bin=
for candidate in /usr/lib/systemd/systemd /lib/systemd/systemd; do
    if [ -x "$candidate" ]; then
        systemd_bin=$candidate
        break
    fi
done
if [ -z "$systemd_bin" ]; then
    echo "$0: systemd is not installed (apt-get install systemd dbus-user-session)" >&2
    exit 1
fi

# The cgroup directories the manager gets: below our own cgroup in the unified
# hierarchy and, on a hybrid (v1) host, in the name=systemd hierarchy too.
cgroups=
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    own=$(sed -n 's/^0:://p' /proc/self/cgroup)
    cgroups="/sys/fs/cgroup${own%/}/kennel-user-manager-$uid"
else
    if [ -d /sys/fs/cgroup/systemd ]; then
        own=$(sed -n 's/^[0-9]*:name=systemd://p' /proc/self/cgroup)
        cgroups="/sys/fs/cgroup/systemd${own%/}/kennel-user-manager-$uid"
    fi
    if [ -f /sys/fs/cgroup/unified/cgroup.controllers ]; then
        own=$(sed -n 's/^0:://p' /proc/self/cgroup)
        cgroups="$cgroups /sys/fs/cgroup/unified${own%/}/kennel-user-manager-$uid"
    fi
fi
if [ -z "$cgroups" ]; then
    echo "$0: no cgroup hierarchy found under /sys/fs/cgroup" >&2
    exit 1
fi

# Kills what is left in the manager's cgroups and removes them, deepest first.
cleanup_cgroups() {
    for dir in $cgroups; do
        [ -d "$dir" ] || continue
        for _ in 1 2 3 4 5; do
            pids=$(find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null || true)
            [ -z "$pids" ] && break
            # shellcheck disable=SC2086
            kill -KILL $pids 2>/dev/null || true
            sleep 0.2
        done
        find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
}

manager=
stop_manager() {
    if [ -n "$manager" ]; then
        kill -TERM "$manager" 2>/dev/null || true
        i=0
        while kill -0 "$manager" 2>/dev/null && [ "$i" -lt 50 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        kill -KILL "$manager" 2>/dev/null || true
        wait "$manager" 2>/dev/null || true
    fi
    cleanup_cgroups
    rm -rf "$runtime"
}

cleanup_cgroups
for dir in $cgroups; do
    mkdir -p "$dir"
    chown -R "$uid:$gid" "$dir"
done
# Resource limits (MemoryMax=, TasksMax=, CPUQuota=) need the controllers enabled above
# the manager's cgroup. Best effort: the kernel refuses while the parent holds processes
# (other than in the root cgroup), and hybrid hosts have no controllers in cgroup v2;
# the tests then check that kennel refuses the limits instead.
for dir in $cgroups; do
    if [ -f "${dir%/*}/cgroup.subtree_control" ]; then
        for controller in memory pids cpu; do
            echo "+$controller" >"${dir%/*}/cgroup.subtree_control" 2>/dev/null || true
        done
    fi
done
rm -rf "$runtime"
mkdir -p "$runtime"
chown "$uid:$gid" "$runtime"
chmod 700 "$runtime"

trap stop_manager EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck disable=SC2016 # expanded by the inner shell
unshare --mount --propagation private -- sh -c '
    set -e
    mount -t tmpfs -o mode=755 tmpfs /run/systemd
    mkdir -p /run/systemd/system /run/systemd/unit-root
    for dir in '"$cgroups"'; do echo $$ > "$dir/cgroup.procs"; done
    exec setpriv --reuid='"$uid"' --regid='"$gid"' --init-groups \
        env -i HOME=/nonexistent USER='"$user"' LOGNAME='"$user"' PATH=/usr/bin:/bin \
        XDG_RUNTIME_DIR='"$runtime"' '"$systemd_bin"' --user
' </dev/null >"${TMPDIR:-/tmp}/kennel-user-manager-$uid.log" 2>&1 &
manager=$!

if ! wait_ready; then
    cat "${TMPDIR:-/tmp}/kennel-user-manager-$uid.log" >&2 || true
    exit 1
fi
status=0
"$@" || status=$?
exit "$status"
