#!/usr/bin/env python3
"""What a sandbox adds to each system call: bench/syscalls.c run bare and inside kennel.

Compiles bench/syscalls.c with the C compiler (cc), then per round runs it bare, inside
`kennel run` (native backend) and inside `kennel run --backend landlock`, in random order,
in the current folder (which must be a workspace kennel accepts: a git repository that is
not your home). Each run times N calls of getppid (a call every filter lets through:
the seccomp entry alone), lstat (what `git status` makes per file), open+close of a
folder and open+read+close of a file (Landlock checks each open). Prints the medians of the
rounds in nanoseconds per call and what each backend adds.

    python3 bench/syscalls.py [--kennel PATH] [--rounds 10] [--calls 100000]
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


def run(argv):
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return {name: float(value) for name, value in (line.split() for line in out.splitlines())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kennel", default=None)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=100000)
    args = parser.parse_args()
    kennel = os.path.abspath(args.kennel or release_kennel())
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "syscalls.c")
    # Beside the workspace: the sandbox sees it (not /tmp, which is private inside).
    build = tempfile.mkdtemp(prefix=".kennel-syscalls-", dir=os.getcwd())
    try:
        program = os.path.join(build, "syscalls")
        subprocess.run([shutil.which("cc") or "gcc", "-O2", "-o", program, source], check=True)
        # Started through sh: kennel makes the folders of the program it is given
        # read-only, which the landlock backend cannot do inside the writable workspace.
        command = ["sh", "-c", 'exec "$0" "$@"', program, str(args.calls)]
        variants = {
            "bare": command,
            "native": [kennel, "run", "--", *command],
            "landlock": [kennel, "run", "--backend", "landlock", "--", *command],
        }
        results = {name: [] for name in variants}
        for _ in range(args.rounds):
            names = list(variants)
            random.shuffle(names)
            for name in names:
                results[name].append(run(variants[name]))
        calls = list(results["bare"][0])
        print(f"ns per call, median of {args.rounds} rounds of {args.calls} calls")
        print(f"{'call':<22}" + "".join(f"{n:>10}" for n in variants) +
              "".join(f"{'+' + n:>11}" for n in list(variants)[1:]))
        for call in calls:
            med = {n: statistics.median(r[call] for r in results[n]) for n in variants}
            print(f"{call:<22}" + "".join(f"{med[n]:>10.1f}" for n in variants) +
                  "".join(f"{med[n] - med['bare']:>+11.1f}" for n in list(variants)[1:]))
    finally:
        shutil.rmtree(build, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
