#!/usr/bin/env python3
"""Cost of the allow-list network: a connection through kennel's proxy against a direct one.

Servers run outside the sandbox on 127.0.0.2 (a bulk sender and a one-byte answerer). The
same client runs inside a kennel sandbox twice per round: with `--net on`, connecting to
127.0.0.2 directly, and with `--net allow-list`, connecting to 127.0.0.1:3128, whose
listener hands the socket to the proxy outside (`CONNECT 127.0.0.2:PORT`, the address listed
in a temporary config). Rounds alternate the two; the medians of the rounds are reported, with
ratios. Loopback only: nothing leaves the machine.

    python3 bench/proxy.py [--kennel PATH] [--bytes 1G] [--connections 1000] [--parallel 100]

Run it as an ordinary user from inside a git repository (the workspace must not be your home).
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from built import release_kennel

HOST = "127.0.0.2"
CHUNK = 1 << 20


def parse_size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text[-1].upper() in units:
        return int(float(text[:-1]) * units[text[-1].upper()])
    return int(text)


# ---- servers (outside) ----

def serve(listener, handler):
    def loop():
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=handler, args=(conn,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()


def bulk_sender(size):
    block = b"k" * CHUNK

    def handle(conn):
        left = size
        with conn:
            while left > 0:
                n = min(left, CHUNK)
                conn.sendall(block[:n])
                left -= n
    return handle


def one_byte(conn):
    with conn:
        conn.sendall(b"x")


def listener():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((HOST, 0))
    s.listen(512)
    return s


# ---- client (inside) ----

def open_conn(mode, port):
    """A connected socket and the bytes of the stream already read (with the proxy's answer)."""
    if mode == "direct":
        s = socket.create_connection((HOST, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s, b""
    s = socket.create_connection(("127.0.0.1", 3128))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(f"CONNECT {HOST}:{port} HTTP/1.1\r\n\r\n".encode())
    # Read as a client with a buffer does: the server's first bytes may come along.
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(4096)
        if not b:
            raise SystemExit("the proxy closed the connection")
        head += b
    head, _, early = head.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n")[0] + b" ":
        raise SystemExit(f"the proxy refused: {head!r}")
    return s, early


def short_connection(mode, port):
    """Seconds for one short connection: connect (and CONNECT), read the one byte, close."""
    t = time.perf_counter()
    s, early = open_conn(mode, port)
    if (early or s.recv(1)) != b"x":
        raise SystemExit("short answer")
    s.close()
    return time.perf_counter() - t


def parallel(mode, port, clients, bursts=20):
    """`clients` threads opening a short connection at the same moment, `bursts` times:
    the time each took, from the burst's start (a connection waits for the others)."""
    import threading
    times = []
    lock = threading.Lock()
    for _ in range(bursts):
        barrier = threading.Barrier(clients + 1)

        def one():
            barrier.wait()
            took = short_connection(mode, port)
            with lock:
                times.append(took)
        threads = [threading.Thread(target=one) for _ in range(clients)]
        for t in threads:
            t.start()
        barrier.wait()
        for t in threads:
            t.join()
    return times


def client(mode, bulk_port, small_port, connections, clients=0):
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    start = time.perf_counter()
    s, early = open_conn(mode, bulk_port)
    total = len(early)
    while True:
        n = s.recv_into(view)
        if n == 0:
            break
        total += n
    s.close()
    bulk = time.perf_counter() - start
    times = [short_connection(mode, small_port) for _ in range(connections)]
    result = {
        "bytes": total,
        "seconds": bulk,
        "conn_median_ms": statistics.median(times) * 1000,
        "conn_mean_ms": statistics.mean(times) * 1000,
    }
    if clients:
        burst = sorted(parallel(mode, small_port, clients))
        result["parallel_p50_ms"] = burst[len(burst) // 2] * 1000
        result["parallel_p90_ms"] = burst[len(burst) * 9 // 10] * 1000
    print(json.dumps(result))


# ---- orchestration ----

def main():
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        mode, bulk_port, small_port, connections, clients = sys.argv[2:7]
        client(mode, int(bulk_port), int(small_port), int(connections), int(clients))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kennel", default=release_kennel())
    ap.add_argument("--bytes", default="1G")
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--parallel", type=int, default=0, metavar="N",
                    help="also N clients connecting at once, 20 bursts (issue 19 measured 100)")
    args = ap.parse_args()
    size = parse_size(args.bytes)
    bulk, small = listener(), listener()
    serve(bulk, bulk_sender(size))
    serve(small, one_byte)
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as cfg:
        cfg.write(f'version = 1\n[defaults.network]\nallow = ["{HOST}"]\n')
    script = os.path.abspath(__file__)
    results = {"direct": [], "proxy": []}
    try:
        for _ in range(args.rounds):
            for mode, net in (("direct", "on"), ("proxy", "allow-list")):
                out = subprocess.run(
                    [args.kennel, "--config", cfg.name, "run", "--net", net, "--",
                     sys.executable if os.path.exists(sys.executable) else "python3", script,
                     "client", mode, str(bulk.getsockname()[1]), str(small.getsockname()[1]),
                     str(args.connections), str(args.parallel)],
                    check=True, capture_output=True, text=True)
                results[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        os.unlink(cfg.name)

    def med(mode, key):
        return statistics.median(r[key] for r in results[mode])

    rate = {m: size / med(m, "seconds") / 1e6 for m in results}
    conn = {m: med(m, "conn_median_ms") for m in results}
    mean = {m: med(m, "conn_mean_ms") for m in results}
    print(f"{args.rounds} rounds, {size / (1 << 20):.0f} MiB through one connection, "
          f"{args.connections} short connections")
    print(f"{'':8} {'MB/s':>9} {'conn median ms':>15} {'conn mean ms':>13}")
    for m in ("direct", "proxy"):
        print(f"{m:8} {rate[m]:9.0f} {conn[m]:15.3f} {mean[m]:13.3f}")
    print(f"throughput ratio proxy/direct: {rate['proxy'] / rate['direct']:.2f}")
    print(f"added per connection: {conn['proxy'] - conn['direct']:.3f} ms (median), "
          f"{mean['proxy'] - mean['direct']:.3f} ms (mean)")
    if args.parallel:
        p50 = {m: med(m, "parallel_p50_ms") for m in results}
        p90 = {m: med(m, "parallel_p90_ms") for m in results}
        print(f"{args.parallel} clients at once: p50 direct {p50['direct']:.2f} ms, proxy "
              f"{p50['proxy']:.2f} ms; p90 direct {p90['direct']:.2f} ms, proxy "
              f"{p90['proxy']:.2f} ms")


if __name__ == "__main__":
    main()
