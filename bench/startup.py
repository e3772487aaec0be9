#!/usr/bin/env python3
"""Start-up overhead of a kennel sandbox, against running the command bare and against peers.

Runs every variant in one interleaved loop (round-robin, shuffled each round), so that
whatever else the machine does weighs on all of them alike. Prints medians, the time each
adds to a bare run, and ratios. Also samples the supervisor's memory while a command runs.

    python3 bench/startup.py [--kennel target/release/kennel] [--rounds 300]
"""

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time


def variants(kennel, workspace):
    true = shutil.which("true") or "/bin/true"
    out = {
        "bare": [true],
        "kennel": [kennel, "run", "--", true],
    }
    if shutil.which("unshare"):
        out["unshare"] = ["unshare", "--user", "--map-current-user", "--mount", "--pid",
                          "--fork", true]
    if shutil.which("bwrap"):
        home = os.path.expanduser("~")
        # As close to kennel's default policy as bubblewrap's flags allow.
        out["bwrap"] = [
            "bwrap", "--unshare-user", "--unshare-pid", "--unshare-ipc", "--die-with-parent",
            "--ro-bind", "/", "/", "--tmpfs", "/home", "--tmpfs", "/root", "--tmpfs", "/run",
            "--tmpfs", "/tmp", "--tmpfs", "/var/tmp", "--proc", "/proc", "--dev", "/dev",
            "--tmpfs", home, "--bind", workspace, workspace, "--chdir", workspace,
            "--cap-drop", "ALL", "--new-session", true,
        ]
    return out


def time_once(argv):
    start = time.perf_counter()
    subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


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


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kennel", default=os.path.join(root, "target/release/kennel"))
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    if not os.access(args.kennel, os.X_OK):
        sys.exit(f"{args.kennel} is not built: run `cargo build --release` first")

    runs = variants(os.path.abspath(args.kennel), root)
    for argv in runs.values():  # fail early, with the error visible
        subprocess.run(argv, stdin=subprocess.DEVNULL, check=True)
    samples = {name: [] for name in runs}
    names = list(runs)
    for i in range(args.warmup + args.rounds):
        random.shuffle(names)
        for name in names:
            elapsed = time_once(runs[name])
            if i >= args.warmup:
                samples[name].append(elapsed)

    bare = statistics.median(samples["bare"])
    print(f"{'variant':<10} {'median ms':>10} {'added ms':>10} {'x bare':>8}")
    for name in runs:
        med = statistics.median(samples[name])
        print(f"{name:<10} {med * 1e3:>10.2f} {(med - bare) * 1e3:>10.2f} {med / bare:>8.2f}")
    if "bwrap" in samples:
        k = statistics.median(samples["kennel"]) - bare
        b = statistics.median(samples["bwrap"]) - bare
        print(f"kennel adds {k / b:.2f} of what bubblewrap adds (target: at most 0.5)")
    mem = supervisor_memory(os.path.abspath(args.kennel))
    print(f"supervisor memory while the command runs: RSS {mem.get('VmRSS')}, "
          f"peak {mem.get('VmHWM')}")
    print(f"({args.rounds} interleaved rounds after {args.warmup} warm-up rounds)")


if __name__ == "__main__":
    main()
