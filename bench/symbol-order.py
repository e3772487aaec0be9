#!/usr/bin/env python3
"""Writes crates/kennel/symbol-order.txt: the functions a sandbox's start runs, for the linker.

Every start of kennel faults in the pages of code it runs, and the sandbox's init, a fork of
kennel, faults them in again (a fork does not copy the page tables of file-backed code). The
kernel maps up to 64 KiB around each fault, so code spread over the whole 2.5 MB text costs
a fault per 64 KiB window it touches. With the functions of a start laid out together, first
those the init runs, then those only the supervisor runs, both touch fewer windows
(bench/README.md has the figures). kennel's build.rs hands the file to the linker where the
linker takes one (LLD's --symbol-ordering-file).

The list is measured, not written by hand: this script runs `kennel run -- true` from this
repository many times under `perf record` and keeps every function of kennel's binary that a
sample landed in, split by process (the supervisor, the init and the init's child before its
exec); run as root, it also traces the page faults of a few starts of the binary as built and
adds every function whose code faulted in without a sample (too short to be sampled). Run
twice, the second time on the binary the first list built, that catches what the first
layout hid behind its neighbours. Run it again after a change of Rust's version or of a dependency (symbol names carry a
hash of both): names the binary no longer has are skipped by the linker, so a stale list only
costs speed. Needs `perf` (Debian's linux-perf) and a kernel that lets you sample your own
processes (kernel.perf_event_paranoid at most 2).

    cargo build --release && python3 bench/symbol-order.py [--runs 2000]
    cargo build --release   # links with the new list
"""

import argparse
import bisect
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile

from built import ROOT, SYMBOL_ORDER, release_kennel

FORK = re.compile(r"PERF_RECORD_FORK\((\d+):\d+\):\((\d+):\d+\)")
EXEC = re.compile(r"^\s*(\S+)\s+(\d+)/\d+\s+PERF_RECORD_COMM exec:")
SAMPLE = re.compile(r"^\s*(\S+)\s+(\d+)/\d+\s+([0-9a-f]+)\s+(\S+)")


class Processes:
    """Which of kennel's processes each pid is, followed through perf's fork and exec events:
    the supervisor (an exec of kennel), the init (its fork) and the init's child (until its
    exec); and where each maps kennel's code (`text`, inherited on fork)."""

    def __init__(self, comm):
        self.comm = comm
        self.role = {}  # pid -> "supervisor", "init" or "child"
        self.text = {}  # pid -> (start, file offset) of kennel's executable mapping

    def follow(self, line):
        """Follows a fork or an exec; False for any other line."""
        fork = FORK.search(line)
        if fork:
            child, parent = int(fork[1]), int(fork[2])
            if parent in self.text:
                self.text[child] = self.text[parent]
            if self.role.get(parent) == "supervisor":
                self.role[child] = "init"
            elif self.role.get(parent) == "init":
                self.role[child] = "child"
            return True
        exec_ = EXEC.match(line)
        if exec_:
            pid = int(exec_[2])
            self.role.pop(pid, None)  # the command the init started: not kennel's code
            self.text.pop(pid, None)
            if exec_[1] == self.comm:
                self.role[pid] = "supervisor"
            return True
        return False


def starts(kennel, runs):
    """A command that runs `kennel run -- true` `runs` times, one after the other."""
    true = shutil.which("true") or "/bin/true"
    loop = 'i=0; while [ "$i" -lt "$1" ]; do "$0" run -- "$2" >/dev/null || exit 1; i=$((i+1)); done'
    return ["sh", "-c", loop, kennel, str(runs), true]


def record(kennel, runs, data):
    """`kennel run -- true` `runs` times under perf, from this repository."""
    # About every 25 microseconds of user time: a start runs for about a millisecond.
    subprocess.run(["perf", "record", "-q", "-e", "cpu-clock:u", "-F", "40000", "-o", data,
                    "--"] + starts(kennel, runs),
                   cwd=ROOT, check=True, stdin=subprocess.DEVNULL)


def sampled_functions(data, comm):
    """(functions of the init and its child, functions of the supervisor), each a Counter of
    samples by mangled name."""
    script = subprocess.run(
        ["perf", "script", "-i", data, "--no-demangle", "--show-task-events",
         "-F", "comm,pid,tid,ip,sym"],
        check=True, capture_output=True, text=True).stdout
    processes = Processes(comm)
    init, supervisor = collections.Counter(), collections.Counter()
    for line in script.splitlines():
        if processes.follow(line):
            continue
        sample = SAMPLE.match(line)
        if not sample or sample[1] != comm or sample[4] == "[unknown]":
            continue
        who = processes.role.get(int(sample[2]))
        if who == "supervisor":
            supervisor[sample[4]] += 1
        elif who in ("init", "child"):
            init[sample[4]] += 1
    return init, supervisor


MMAP = re.compile(r"PERF_RECORD_MMAP2 (\d+)/\d+: \[0x([0-9a-f]+)\(0x[0-9a-f]+\) @ 0x([0-9a-f]+) .*\]: r-xp (.*)$")
FAULT = re.compile(r"^\s*(\S+)\s+(\d+)/\d+\s+address=0x[0-9a-f]+ ip=0x([0-9a-f]+) error_code=0x([0-9a-f]+)")


def text_faults(kennel, runs, data):
    """Functions whose first instruction on a page not yet mapped faulted, by process:
    those sampling missed (too short to be sampled) that still cost a fault each. Needs the
    kernel's page fault tracepoint (root); None where perf may not use it."""
    recorded = subprocess.run(
        ["perf", "record", "-q", "-e", "exceptions:page_fault_user", "-o", data,
         "--"] + starts(kennel, runs),
        cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True)
    if recorded.returncode != 0:
        return None
    symbols = []
    nm = subprocess.run(["nm", "-n", "--defined-only", kennel], check=True,
                        capture_output=True, text=True).stdout
    for line in nm.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] in "tTwW":
            symbols.append((int(fields[0], 16), fields[2]))
    addresses = [address for address, _ in symbols]
    # The executable segment's place in the file and in memory differ by a constant.
    segment = re.search(r"LOAD\s+0x([0-9a-f]+)\s+0x([0-9a-f]+).*R E",
                        subprocess.run(["readelf", "-lW", kennel], check=True,
                                       capture_output=True, text=True).stdout)
    delta = int(segment[2], 16) - int(segment[1], 16)
    script = subprocess.run(
        ["perf", "script", "-i", data, "--no-demangle", "--show-task-events",
         "--show-mmap-events", "-F", "comm,pid,tid,trace"],
        check=True, capture_output=True, text=True).stdout
    processes = Processes(os.path.basename(kennel))
    faults = {"init": set(), "supervisor": set()}
    for line in script.splitlines():
        if processes.follow(line):
            continue
        mmap = MMAP.search(line)
        if mmap and mmap[4] == kennel:
            processes.text[int(mmap[1])] = (int(mmap[2], 16), int(mmap[3], 16))
            continue
        fault = FAULT.match(line)
        if not fault or not int(fault[4], 16) & 0x10:  # instruction fetches only
            continue
        pid = int(fault[2])
        if pid not in processes.text or pid not in processes.role:
            continue
        start, offset = processes.text[pid]
        address = int(fault[3], 16) - start + offset + delta
        i = bisect.bisect_right(addresses, address) - 1
        if i >= 0:
            who = "supervisor" if processes.role[pid] == "supervisor" else "init"
            faults[who].add(symbols[i][1])
    return faults


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kennel", default=release_kennel())
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--out", default=SYMBOL_ORDER)
    args = parser.parse_args()
    if not shutil.which("perf"):
        sys.exit("perf is not installed (Debian: apt-get install linux-perf)")
    if not os.access(args.kennel, os.X_OK):
        sys.exit(f"{args.kennel} is not built: run `cargo build --release` first")
    kennel = os.path.abspath(args.kennel)
    with tempfile.TemporaryDirectory(prefix="kennel-symbol-order-") as tmp:
        # perf names a process by the first 15 bytes of its executable's name.
        copy = os.path.join(tmp, "kennel")
        shutil.copyfile(kennel, copy)
        os.chmod(copy, 0o755)
        data = os.path.join(tmp, "perf.data")
        record(copy, args.runs, data)
        init, supervisor = sampled_functions(data, "kennel")
        faults = text_faults(copy, 20, data)
    if not supervisor:
        sys.exit("no sample landed in kennel's code: is perf allowed to sample here?")
    if faults is None:
        print("note: the page fault tracepoint is not available (it needs root): the list "
              "has the sampled functions only", file=sys.stderr)
    else:
        added = (faults["init"] - set(init)) | (faults["supervisor"] - set(supervisor) - set(init))
        init.update(faults["init"])
        supervisor.update(faults["supervisor"])
        print(f"{len(added)} functions that faulted without a sample added")
    # Within each group by name: every function of a group is run at every start, so their
    # order within it matters little, and a list sampled again differs only where the set
    # of functions does.
    names = sorted(init)
    names += sorted(name for name in supervisor if name not in init)
    with open(args.out, "w") as out:
        out.write("".join(name + "\n" for name in names))
    print(f"{os.path.relpath(args.out)}: {len(init)} functions of the init first, then "
          f"{len(names) - len(init)} of the supervisor ({args.runs} starts sampled)")


if __name__ == "__main__":
    main()
