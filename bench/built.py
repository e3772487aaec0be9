"""Where `cargo build --release` puts kennel, for the benchmarks' default `--kennel`."""

import glob
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The functions a start runs, in the order the linker lays them out (bench/symbol-order.py).
SYMBOL_ORDER = os.path.join(ROOT, "crates", "kennel", "symbol-order.txt")


def release_kennel():
    """The newest release build: target/<host tuple>/release/kennel, as this repository's
    .cargo/config.toml builds it, or target/release/kennel without that configuration."""
    found = glob.glob(os.path.join(ROOT, "target", "*", "release", "kennel"))
    found.append(os.path.join(ROOT, "target", "release", "kennel"))
    built = [path for path in found if os.access(path, os.X_OK)]
    if not built:
        return os.path.join(ROOT, "target", "release", "kennel")
    return max(built, key=os.path.getmtime)
