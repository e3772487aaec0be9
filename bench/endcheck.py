#!/usr/bin/env python3
"""What the end-of-session git check costs in a repository of many folders.

Builds a repository of FOLDERS folders (a tree of 100 folders each holding FOLDERS/100
folders with a file, committed) under the home of the user who runs it, then times, in one
interleaved loop, `sleep SECONDS` bare and as the command of `kennel run` (and of each
`--also` build). The session is long enough for the work tree to be listed while it runs
(the survey), so what kennel adds is its start plus the end check of folders the session did
not change. `--short` times `true` instead: a session too short for the survey to finish.

    python3 bench/endcheck.py [--kennel PATH] [--folders 20000] [--rounds 20] [--also NAME=PATH]

Run it as an ordinary user (see bench/README.md); the repository is made once and kept in
~/src/kennel-bench-endcheck-FOLDERS.
"""

import argparse
import os
import random
import statistics
import subprocess
import sys
import time

from built import release_kennel


def repository(folders):
    path = os.path.expanduser(f"~/src/kennel-bench-endcheck-{folders}")
    if os.path.isdir(os.path.join(path, ".git")):
        return path
    os.makedirs(path)
    for i in range(100):
        for j in range(max(1, folders // 100)):
            d = os.path.join(path, f"a{i}", f"b{j}")
            os.makedirs(d)
            with open(os.path.join(d, "f.txt"), "w") as f:
                f.write("x")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.org"]
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    subprocess.run(git + ["add", "-A"], cwd=path, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "tree"], cwd=path, check=True)
    # Older than the session by more than kennel's clock margin (1 s).
    time.sleep(1.5)
    return path


def time_once(argv):
    start = time.perf_counter()
    subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kennel", default=release_kennel())
    parser.add_argument("--folders", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--short", action="store_true",
                        help="run `true`: a session too short for the survey to finish")
    parser.add_argument("--also", action="append", default=[], metavar="NAME=PATH",
                        help="another kennel build to time in the same run (A/B comparisons)")
    args = parser.parse_args()
    if not os.access(args.kennel, os.X_OK):
        sys.exit(f"{args.kennel} is not built: run `cargo build --release` first")
    path = repository(args.folders)
    os.chdir(path)
    command = ["true"] if args.short else ["sleep", str(args.seconds)]
    runs = {"bare": command, "kennel": [os.path.abspath(args.kennel), "run", "--"] + command}
    for also in args.also:
        name, _, build = also.partition("=")
        runs[name] = [os.path.abspath(build), "run", "--"] + command
    for argv in runs.values():  # fail early, with the error visible
        subprocess.run(argv, stdin=subprocess.DEVNULL, check=True)
    samples = {name: [] for name in runs}
    names = list(runs)
    for _ in range(args.rounds):
        random.shuffle(names)
        for name in names:
            samples[name].append(time_once(runs[name]))
    bare = statistics.median(samples["bare"])
    print(f"{path}: {args.folders} folders, `{' '.join(command)}`, {args.rounds} rounds")
    print(f"{'variant':<12} {'median ms':>10} {'added ms':>10}")
    for name in runs:
        med = statistics.median(samples[name])
        print(f"{name:<12} {med * 1e3:>10.1f} {(med - bare) * 1e3:>10.1f}")


if __name__ == "__main__":
    main()
