#!/usr/bin/env python3
"""Start-up overhead of a kennel sandbox, against running the command bare and against peers.

Runs every variant in one interleaved loop (round-robin, shuffled each round), so that
whatever else the machine does weighs on all of them alike. Prints medians, the time each
adds to a bare run, and ratios. Also samples the supervisor's memory while a command runs.

    python3 bench/startup.py [--kennel PATH] [--rounds 300] [--workspace DIR]

The headline case (issue 19) is an ordinary user with the repository under their home: run
the script as that user with --workspace pointing there (see bench/README.md).

--kennel defaults to the newest release build under target/.
"""

import argparse
import glob
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from built import SYMBOL_ORDER, release_kennel


def seccomp_program(kennel):
    """The seccomp filter kennel's build compiled (build.rs), for bubblewrap to load too."""
    target = os.path.dirname(os.path.dirname(kennel))
    profile = os.path.basename(os.path.dirname(kennel))
    found = glob.glob(os.path.join(target, profile, "build", "kennel-native-*", "out", "seccomp.bpf"))
    return max(found, key=os.path.getmtime) if found else None


def variants(kennel, workspace, seccomp_fd):
    true = shutil.which("true") or "/bin/true"
    out = {
        "bare": [true],
        "kennel": [kennel, "run", "--", true],
        # kennel's own process alone (exec, the C library's start, the command line): the
        # part of every start that is not the sandbox's (bench/README.md, "Ninth round").
        "kennel-version": [kennel, "--version"],
    }
    if shutil.which("unshare"):
        out["unshare"] = ["unshare", "--user", "--map-current-user", "--mount", "--pid",
                          "--fork", true]
    if shutil.which("bwrap"):
        home = os.path.expanduser("~")
        # As close to kennel's default policy as bubblewrap's flags allow.
        # kennel also binds the git settings that run commands read-only, ~/.gitconfig
        # read-only, and loads its seccomp filter: bubblewrap does the same here.
        extra = []
        for path in [os.path.join(home, ".gitconfig"), os.path.join(home, ".config/git")]:
            if os.path.exists(path):
                extra += ["--ro-bind", path, path]
        git = os.path.join(workspace, ".git")
        for name in ["config", "hooks", "info"]:
            path = os.path.join(git, name)
            if os.path.exists(path):
                extra += ["--ro-bind", path, path]
        if seccomp_fd is not None:
            extra += ["--seccomp", str(seccomp_fd)]
        base = [
            "bwrap", "--unshare-user", "--unshare-pid", "--unshare-ipc", "--die-with-parent",
            "--ro-bind", "/", "/", "--tmpfs", "/home", "--tmpfs", "/root", "--tmpfs", "/run",
            "--tmpfs", "/tmp", "--tmpfs", "/var/tmp", "--proc", "/proc", "--dev", "/dev",
            "--tmpfs", home, "--bind", workspace, workspace,
        ]
        tail = ["--chdir", workspace, "--cap-drop", "ALL", "--new-session", true]
        out["bwrap"] = base + extra + tail
        # The same without the git settings and the seccomp filter, for reference.
        out["bwrap-plain"] = base + tail
    return out


def time_once(argv, seccomp):
    """One run; bubblewrap reads the seccomp filter from a descriptor, opened anew each time
    (it reads it to the end)."""
    fds = ()
    if seccomp is not None and "--seccomp" in argv:
        fd = os.open(seccomp, os.O_RDONLY)
        os.dup2(fd, SECCOMP_FD, inheritable=True)
        os.close(fd)
        fds = (SECCOMP_FD,)
    start = time.perf_counter()
    subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True, pass_fds=fds)
    elapsed = time.perf_counter() - start
    if fds:
        os.close(SECCOMP_FD)
    return elapsed


SECCOMP_FD = 9


def supervisor_memory(kennel):
    """VmRSS and VmHWM of the kennel supervisor while `sleep 1` runs inside."""
    proc = subprocess.Popen([kennel, "run", "--", "sleep", "1"], stdin=subprocess.DEVNULL)
    time.sleep(0.5)
    fields = {}
    with open(f"/proc/{proc.pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = value.strip()
    proc.wait()
    return fields


def symbol_order_found(kennel):
    """How many of the names in crates/kennel/symbol-order.txt the binary has: after an update
    of Rust or of a dependency the names change, and the layout silently goes (see
    bench/symbol-order.py)."""
    if not shutil.which("nm") or not os.path.exists(SYMBOL_ORDER):
        return None
    with open(SYMBOL_ORDER) as f:
        wanted = {line.strip() for line in f if line.strip()}
    nm = subprocess.run(["nm", "--defined-only", kennel], capture_output=True, text=True)
    have = {fields[2] for fields in (line.split() for line in nm.stdout.splitlines())
            if len(fields) == 3}
    return len(wanted & have), len(wanted)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kennel", default=release_kennel())
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--also", action="append", default=[], metavar="NAME=PATH",
                        help="another kennel build to time in the same run (A/B comparisons)")
    parser.add_argument("--workspace", default=None,
                        help="the repository every variant runs in (default: this checkout)")
    args = parser.parse_args()
    if args.workspace:
        root = os.path.abspath(args.workspace)
        os.chdir(root)
    if not os.access(args.kennel, os.X_OK):
        sys.exit(f"{args.kennel} is not built: run `cargo build --release` first")

    kennel = os.path.abspath(args.kennel)
    seccomp = seccomp_program(kennel)
    if seccomp is None:
        print("note: kennel's compiled seccomp filter was not found next to the binary; "
              "bubblewrap runs without one", file=sys.stderr)
    runs = variants(kennel, root, SECCOMP_FD if seccomp else None)
    for also in args.also:
        name, _, path = also.partition("=")
        runs[name] = [os.path.abspath(path), "run", "--", runs["bare"][0]]
    # Every kennel build timed is a copy made here, all in one go: how a file's pages sit in
    # the page cache (the size of the blocks the kernel read or wrote it in) changes how many
    # page faults its start takes, and two byte-identical copies made at different times
    # have measured 0.1 to 0.2 ms apart (bench/README.md). Beside the build, not in /tmp,
    # which may be mounted noexec.
    # Beside the build when this user may write there, else beside the workspace.
    beside = os.path.dirname(kennel)
    if not os.access(beside, os.W_OK):
        beside = os.path.dirname(root)
    copies = tempfile.TemporaryDirectory(prefix="bench-copies-", dir=beside)
    for name in ["kennel"] + [a.partition("=")[0] for a in args.also]:
        copy = os.path.join(copies.name, name)
        shutil.copyfile(runs[name][0], copy)
        os.chmod(copy, 0o755)
        runs[name][0] = copy
    runs["kennel-version"][0] = runs["kennel"][0]
    for argv in runs.values():  # fail early, with the error visible
        time_once(argv, seccomp)
    samples = {name: [] for name in runs}
    names = list(runs)
    for i in range(args.warmup + args.rounds):
        random.shuffle(names)
        for name in names:
            elapsed = time_once(runs[name], seccomp)
            if i >= args.warmup:
                samples[name].append(elapsed)

    bare = statistics.median(samples["bare"])
    width = max(10, *(len(n) for n in runs))
    print(f"{'variant':<{width}} {'median ms':>10} {'added ms':>10} {'x bare':>8}")
    for name in runs:
        med = statistics.median(samples[name])
        print(f"{name:<{width}} {med * 1e3:>10.2f} {(med - bare) * 1e3:>10.2f} "
              f"{med / bare:>8.2f}")
    if "bwrap" in samples:
        k = statistics.median(samples["kennel"]) - bare
        b = statistics.median(samples["bwrap"]) - bare
        print(f"kennel adds {k / b:.2f} of what bubblewrap adds (target: at most 0.5)")
    mem = supervisor_memory(os.path.abspath(args.kennel))
    print(f"supervisor memory while the command runs: RSS {mem.get('VmRSS')}, "
          f"peak {mem.get('VmHWM')}")
    found = symbol_order_found(kennel)
    if found:
        stale = " (few: run bench/symbol-order.py again)" if found[0] < 0.9 * found[1] else ""
        print(f"symbol order: {found[0]} of the {found[1]} functions listed are in the "
              f"binary{stale}")
    print(f"({args.rounds} interleaved rounds after {args.warmup} warm-up rounds)")
    # Which case this was: the headline one is an ordinary user's, with the workspace
    # under that user's home (issue 19); root in kennel's own checkout is not.
    home = os.path.realpath(os.path.expanduser("~"))
    under_home = os.path.realpath(root).startswith(home + os.sep)
    case = ("the headline case (an ordinary user, the workspace under the home)"
            if os.geteuid() != 0 and under_home
            else "not the headline case: run it as an ordinary user with --workspace in "
                 "that user's home (bench/README.md)")
    print(f"measured as uid {os.geteuid()}, workspace {'under' if under_home else 'not under'} "
          f"the home: {case}")


if __name__ == "__main__":
    main()
