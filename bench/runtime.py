#!/usr/bin/env python3
"""What running inside kennel costs a command once it has started: `git status` on a large
repository, bare against inside one kennel session, start-up excluded.

Builds a repository of --files files (25,000 by default: 250 folders of 100 small files,
committed, plus a few untracked ones) under --dir. Each round runs the same small Python
loop twice, in random order: once bare and once as the command of one `kennel run`
session. The loop runs `git status --porcelain` --calls times and prints the median time of
one call, measured inside, so kennel's start and end are not counted. The medians of the
rounds are reported, with their ratio.

    python3 bench/runtime.py [--kennel PATH] [--rounds 15] [--calls 20] [--files 25000] [--dir DIR]

The headline case is an ordinary user with the repository under their home: run it as that
user with --dir in that home (see bench/README.md). --kennel defaults to the newest release
build under target/. Extra arguments after `--` go to `kennel run` (e.g. `-- --backend
landlock`).
"""

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile

from built import release_kennel
from checkpoint import make_repo

LOOP = r"""
import resource, statistics, subprocess, sys, time
def cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
times, cpus = [], []
for _ in range(int(sys.argv[1])):
    start, used = time.perf_counter(), cpu()
    subprocess.run(["git", "status", "--porcelain"], stdout=subprocess.DEVNULL, check=True)
    times.append(time.perf_counter() - start)
    cpus.append(cpu() - used)
print(statistics.median(times), statistics.median(cpus))
"""


def one(argv, cwd, env):
    """The median wall time and the median CPU time (user and system) of one call."""
    out = subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True, text=True)
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def quartiles(values):
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kennel", default=None)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--files", type=int, default=25000)
    parser.add_argument("--dir", default=None,
                        help="where the repository is made (default: a folder in your home)")
    parser.add_argument("extra", nargs="*", help="arguments for `kennel run`, after --")
    args = parser.parse_args()
    kennel = os.path.abspath(args.kennel or release_kennel())
    parent = args.dir or os.path.expanduser("~")
    base = tempfile.mkdtemp(prefix="kennel-runtime-", dir=parent)
    try:
        repo = os.path.join(base, "repo")
        make_repo(repo, args.files)
        env = dict(os.environ)
        python = shutil.which("python3") or sys.executable
        bare = [python, "-c", LOOP, str(args.calls)]
        inside = [kennel, "run", *args.extra, "--", *bare]
        # Warm the page cache and git's own files for both.
        one(bare, repo, env)
        one(inside, repo, env)
        times = {"bare": [], "kennel": []}
        for _ in range(args.rounds):
            order = list(times)
            random.shuffle(order)
            for name in order:
                times[name].append(one(bare if name == "bare" else inside, repo, env))
        print(f"git status --porcelain, {args.files} files, median of {args.rounds} rounds "
              f"of the median of {args.calls} calls")
        for i, what in enumerate(["wall time", "CPU time (user + system)"]):
            b = statistics.median(t[i] for t in times["bare"])
            k = statistics.median(t[i] for t in times["kennel"])
            # Each round's kennel against the same round's bare run: drift of the machine
            # between rounds cancels out.
            paired = [k_[i] / b_[i] - 1 for b_, k_ in zip(times["bare"], times["kennel"])]
            low, high = quartiles(paired) if len(paired) > 1 else (paired[0], paired[0])
            print(f"{what}: bare {b * 1000:.2f} ms, kennel {k * 1000:.2f} ms, "
                  f"kennel costs {100 * (k / b - 1):+.1f}%; per round (paired) median "
                  f"{100 * statistics.median(paired):+.1f}%, quartiles {100 * low:+.1f}% to "
                  f"{100 * high:+.1f}% (target: at most +2%)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
