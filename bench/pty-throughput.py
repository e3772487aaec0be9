#!/usr/bin/env python3
"""Terminal relay throughput: `cat` of a large file in a pseudo-terminal, bare and inside
kennel (which relays its own pseudo-terminal to this one), under the same harness.

The harness opens a pseudo-terminal, runs the command with the slave as its controlling
terminal and standard streams, and reads the master as fast as it can. The rate counts
from the first byte to the last, so that kennel's start-up time (measured elsewhere) does
not count. Prints each run, then the median and the best rates and their ratios kennel/bare
(the best is less disturbed by other load on the machine).

Usage: bench/pty-throughput.py [--kennel PATH] [--mb 100] [--runs 5]
Run it from inside a git repository that is not your home folder (the data file is written
there, in a temporary folder that is removed afterwards: the sandbox's /tmp is private).
"""

import argparse
import fcntl
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time

from built import release_kennel


def run_in_pty(argv):
    """Runs argv on a fresh pseudo-terminal; returns (bytes read, seconds first-to-last, wall)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        # Makes the slave (fd 0 in the child) its controlling terminal.
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )
    os.close(slave)
    total = 0
    first = last = None
    while True:
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # EIO: every slave is closed
            break
        if not chunk:
            break
        now = time.perf_counter()
        if first is None:
            first = now
        last = now
        total += len(chunk)
    proc.wait()
    os.close(master)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{argv[0]} exited with {proc.returncode}")
    return total, (last - first) if first is not None else 0.0, wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kennel", default=shutil.which("kennel") or release_kennel())
    parser.add_argument("--mb", type=int, default=100, help="megabytes of text to cat")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    kennel = os.path.abspath(args.kennel)
    if not os.access(kennel, os.X_OK):
        sys.exit(f"no kennel binary at {kennel} (build with `cargo build --release` or pass --kennel)")

    line = b"".join(bytes([33 + (i % 94)]) for i in range(79)) + b"\n"
    size = args.mb * 1000 * 1000
    with tempfile.TemporaryDirectory(prefix=".kennel-bench-", dir=os.getcwd()) as tmp:
        data = os.path.join(tmp, "data.txt")
        with open(data, "wb") as f:
            f.write(line * (size // len(line)))
        commands = {
            "bare": ["cat", data],
            "kennel": [kennel, "run", "--", "cat", data],
        }
        rates = {name: [] for name in commands}
        for run in range(args.runs):
            # Alternate, so that both see the same machine state.
            for name, argv in commands.items():
                total, seconds, wall = run_in_pty(argv)
                rate = total / seconds / 1e6 if seconds > 0 else float("inf")
                rates[name].append(rate)
                print(f"run {run + 1} {name:6} {total / 1e6:7.1f} MB  {rate:7.1f} MB/s  wall {wall:.3f} s")
    for label, pick in (("median", statistics.median), ("best", max)):
        bare, inside = pick(rates["bare"]), pick(rates["kennel"])
        print(f"{label}: bare {bare:.1f} MB/s, kennel {inside:.1f} MB/s, ratio {inside / bare:.2f}")


if __name__ == "__main__":
    main()
