#!/usr/bin/env python3
"""What a workspace checkpoint (issue 21) costs: time added to a session's start, and disk.

Builds a repository of --files files (25,000 by default: 250 folders of 100 small files,
committed, plus a few untracked ones) under --dir, then measures, as the user running it:

- warm: `kennel run --checkpoint` against `kennel run --no-checkpoint`, in one interleaved
  loop, after a first checkpoint: the time until the command starts (it prints the clock),
  which is what the start's checkpoint adds, and the whole session's (start and end);
- first: the first checkpoint of the repository (a fresh store each time) against `git add
  -A` of the same tree into a fresh repository (which writes every file's object, as a first
  checkpoint may);
- disk: what the store grows by for a session that changes nothing.

    python3 bench/checkpoint.py [--kennel PATH] [--rounds 30] [--files 25000] [--dir DIR]

The headline case is an ordinary user with the repository under their home: run it as that
user with --dir in that home (see bench/README.md). --kennel defaults to the newest release
build under target/.
"""

import argparse
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time

from built import release_kennel


def make_repo(path, files):
    os.makedirs(path)
    git = ["git", "-C", path, "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run(git + ["init", "-q", "-b", "main"], check=True)
    per = 100
    for d in range((files + per - 1) // per):
        folder = os.path.join(path, f"d{d:04}")
        os.makedirs(folder)
        for f in range(min(per, files - d * per)):
            with open(os.path.join(folder, f"f{f:03}.txt"), "w") as out:
                out.write(f"file {d} {f}\n" * 8)
    with open(os.path.join(path, ".gitignore"), "w") as out:
        out.write("target/\n")
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "tree"], check=True)
    for n in range(5):
        with open(os.path.join(path, f"untracked{n}.txt"), "w") as out:
            out.write("new\n")


def started(argv, env, cwd):
    """Seconds until the command (`date +%s%N`) started, and until kennel returned."""
    before = time.time()
    out = subprocess.run(argv, env=env, cwd=cwd, check=True, capture_output=True, text=True)
    after = time.time()
    return int(out.stdout.strip()) / 1e9 - before, after - before


def timed(argv, env, cwd):
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def du(path):
    """The bytes of the files under `path` (their sizes, not the blocks they take)."""
    total = 0
    for root, _, names in os.walk(path):
        for name in names:
            total += os.lstat(os.path.join(root, name)).st_size
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kennel", default=None)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--files", type=int, default=25000)
    parser.add_argument("--dir", default=None,
                        help="where the repository is made (default: a folder under $HOME)")
    args = parser.parse_args()
    kennel = args.kennel or release_kennel()
    base = tempfile.mkdtemp(prefix="kennel-bench-checkpoint-",
                            dir=args.dir or os.path.expanduser("~"))
    try:
        repo = os.path.join(base, "repo")
        make_repo(repo, args.files)
        env = dict(os.environ)
        env["XDG_STATE_HOME"] = os.path.join(base, "state")

        # First checkpoint against `git add -A` of the same tree, each from nothing.
        first, add = [], []
        for n in range(3):
            env_first = dict(env, XDG_STATE_HOME=os.path.join(base, f"first{n}"))
            first.append(timed([kennel, "run", "--checkpoint", "--", "true"], env_first, repo))
            fresh = os.path.join(base, f"fresh{n}.git")
            subprocess.run(["git", "init", "-q", "--bare", fresh], check=True)
            add.append(timed(["git", "--git-dir", fresh, "--work-tree", repo, "add", "-A"],
                             env, repo))
            shutil.rmtree(os.path.join(base, f"first{n}"))
            shutil.rmtree(fresh)
        bare_start = timed([kennel, "run", "--no-checkpoint", "--", "true"], env, repo)

        # Warm: interleaved, after one checkpoint in this store; the disk a session that
        # changes nothing takes, measured before the store holds more than kennel keeps.
        timed([kennel, "run", "--checkpoint", "--", "true"], env, repo)
        store = os.path.join(env["XDG_STATE_HOME"], "kennel", "checkpoints")
        before = du(store)
        timed([kennel, "run", "--checkpoint", "--", "true"], env, repo)
        grown = du(store) - before
        date = shutil.which("date") or "/bin/date"
        variants = {
            "without": [kennel, "run", "--no-checkpoint", "--", date, "+%s%N"],
            "with": [kennel, "run", "--checkpoint", "--", date, "+%s%N"],
        }
        start = {name: [] for name in variants}
        whole = {name: [] for name in variants}
        for _ in range(args.rounds):
            order = list(variants)
            random.shuffle(order)
            for name in order:
                s, w = started(variants[name], env, repo)
                start[name].append(s)
                whole[name].append(w)

        ms = lambda s: statistics.median(s) * 1000
        print(f"repository: {args.files} files, as uid {os.getuid()}, in {base}")
        print(f"first checkpoint (session start and end): {ms(first) - bare_start * 1000:.0f} ms "
              f"added; git add -A of the tree: {ms(add):.0f} ms "
              f"(ratio {(ms(first) - bare_start * 1000) / ms(add):.2f})")
        print(f"warm start (until the command runs): {ms(start['with']):.1f} ms with a "
              f"checkpoint, {ms(start['without']):.1f} ms without: "
              f"+{ms(start['with']) - ms(start['without']):.1f} ms (median of {args.rounds})")
        print(f"warm session (start to exit): {ms(whole['with']):.1f} ms with, "
              f"{ms(whole['without']):.1f} ms without: "
              f"+{ms(whole['with']) - ms(whole['without']):.1f} ms")
        print(f"disk: a session that changed nothing grew the store by {grown} bytes "
              f"(file sizes; each new file also takes a block of the file system)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
