"""Requests per second and latency of `python -m mnist_lit serve` under 16 concurrent clients.

    python benchmarks/serve_load.py --ckpt_path checkpoints/version_0/last.ckpt
    python benchmarks/serve_load.py --ckpt_path CKPT --compare_with ../other-checkout   # an A/B

Starts a server for each setting (1 and 2 workers, batching off and on), sends every client's
requests one after another (real MNIST test digits as 280x280 PNGs, like the page's canvas), and
prints a Markdown table: requests/s, p50/p95 latency, and the server's memory (PSS of all its
processes) after the run. Then follows the default server's memory through a burst of huge
pictures and three rounds of the same requests. The clients run on the same machine and take
CPU from the server.
"""

import argparse
import http.client
import io
import json
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the server process helper the tests use

from helpers.server_process import server_process, session_processes  # noqa: E402

from mnist_lit.data.builtin_files import load_builtin  # noqa: E402
from mnist_lit.data.sets import DATASETS  # noqa: E402

SETTINGS = [  # (workers, max_batch_size)
    (1, 1),
    (1, 8),
    (2, 1),
    (2, 8),
]


def pictures(data_dir: Path, count: int) -> list[bytes]:
    images, _ = load_builtin(DATASETS["mnist"], data_dir, train=False)  # (N, 1, 28, 28)
    encoded = []
    for image in images[:count]:
        buffer = io.BytesIO()
        Image.fromarray(image[0].numpy()).resize((280, 280)).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    return encoded


def memory_mb(session: int) -> float:
    """Proportional set size of every process of a server's session, in MB: shared pages counted once."""
    total_kb = 0
    for pid in session_processes(session):
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:  # exited meanwhile
            continue
        total_kb += next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
    return total_kb / 1024


def huge_picture() -> bytes:
    """A 7 on a 4000x4000 sheet (16 megapixels, the default limit): 47 kB as a PNG, 220 MB to preprocess."""
    sheet = Image.new("L", (4000, 4000), 255)
    ImageDraw.Draw(sheet).line([(700, 500), (3300, 500), (1700, 3500)], fill=0, width=300)
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()


def memory_over_time(checkpoint: Path, bodies: list[bytes], clients: int) -> None:
    """The default server's memory: idle, during and after a burst of huge pictures, then after rounds of small ones."""
    with server_process(checkpoint) as (process, url):
        print(f"\nserver memory (PSS), default options: {memory_mb(process.pid):.0f} MB idle", flush=True)
        peak, done = 0.0, threading.Event()

        def watch() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, memory_mb(process.pid))
                done.wait(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        seconds, _ = load(url, [huge_picture()] * 2 * clients, clients)
        done.set()
        watcher.join()
        print(f"{2 * clients} pictures of 16 megapixels from {clients} clients ({seconds:.1f} s): peak {peak:.0f} MB, "
              f"then {memory_mb(process.pid):.0f} MB", flush=True)
        for rounds in range(1, 4):
            load(url, bodies, clients)
            print(f"after {rounds * len(bodies)} more requests: {memory_mb(process.pid):.0f} MB", flush=True)


def client(url: str, bodies: list[bytes]) -> list[float]:
    """One client sending ``bodies`` one after another on one connection: each request's latency, in seconds."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port))
    latencies = []
    for body in bodies:
        sent = time.perf_counter()
        connection.request("POST", "/predict", body=body, headers={"Content-Type": "image/png"})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"the server answered {response.status}")
        latencies.append(time.perf_counter() - sent)
    connection.close()
    return latencies


def load(url: str, bodies: list[bytes], clients: int) -> tuple[float, list[float]]:
    """(seconds for all requests, each request's latency in seconds).

    http.client rather than requests: the clients share this process's interpreter, and the lighter
    they are, the more of the machine the server gets.
    """
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        runs = list(pool.map(client, [url] * clients, [bodies[k::clients] for k in range(clients)]))
    return time.perf_counter() - start, [t for run in runs for t in run]


def measure(url: str, bodies: list[bytes], clients: int) -> dict[str, float]:
    """Requests/s and p50/p95 latency (ms) of a running server, after a warm-up (first calls, threads, connections)."""
    load(url, bodies[: 4 * clients], clients)
    seconds, latencies = load(url, bodies, clients)
    return {"requests_per_s": len(latencies) / seconds, "p50_ms": 1000 * statistics.median(latencies),
            "p95_ms": 1000 * statistics.quantiles(latencies, n=20)[18]}


def run_default(checkpoint: Path, bodies: list[bytes], clients: int, tree: Path) -> tuple[float, float]:
    """Requests/s and p95 latency (ms) of the default server of the mnist-lit checkout at ``tree``."""
    os.environ["PYTHONPATH"] = str(tree)  # the server process imports mnist_lit from there
    with server_process(checkpoint) as (_, url):
        measured = measure(url, bodies, clients)
    return measured["requests_per_s"], measured["p95_ms"]


def compare(args: argparse.Namespace, bodies: list[bytes]) -> None:
    """This checkout's default server against another's, alternating, so that the machine's drift lands on both."""
    trees = {"this checkout": ROOT, str(args.compare_with): args.compare_with.resolve()}
    runs = {name: [] for name in trees}
    for round in range(args.rounds):
        # ABBA: each goes first in every other round, so that neither always gets the fresher machine.
        for name, tree in list(trees.items())[:: 1 if round % 2 == 0 else -1]:
            runs[name].append(run_default(args.ckpt_path, bodies, args.clients, tree))
            print(f"{name}: {runs[name][-1][0]:.0f} requests/s, p95 {runs[name][-1][1]:.1f} ms", flush=True)
    (this, other) = ([statistics.median(column) for column in zip(*runs[name])] for name in trees)
    print(f"\nmedians of {args.rounds} rounds: this checkout {this[0]:.0f} requests/s, p95 {this[1]:.1f} ms; "
          f"{args.compare_with}: {other[0]:.0f} requests/s, p95 {other[1]:.1f} ms; "
          f"ratios {this[0] / other[0]:.3f} (requests/s) and {this[1] / other[1]:.3f} (p95)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt_path", type=Path, required=True)
    parser.add_argument("--data_dir", type=Path, default=Path(os.environ.get("MNIST_LIT_DATA_DIR", "data")))
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--output", type=Path, help="also write the rows as JSON")
    parser.add_argument("--compare_with", type=Path, help="another checkout of mnist-lit: only the default server, "
                        "alternating with that checkout's --rounds times, and the ratios")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    bodies = pictures(args.data_dir, args.requests)
    if args.compare_with:
        return compare(args, bodies)
    rows = []
    print("| workers | batching | requests/s | p50 ms | p95 ms | server memory (PSS) |")
    print("|---|---|---|---|---|---|")
    for workers, batch in SETTINGS:
        options = ["--workers", str(workers), "--max_batch_size", str(batch)]
        with server_process(args.ckpt_path, *options) as (process, url):
            measured = measure(url, bodies, args.clients)
            memory = memory_mb(process.pid)
        row = {"workers": workers, "max_batch_size": batch, **measured, "memory_mb": memory}
        rows.append(row)
        batching = f"up to {batch}" if batch > 1 else "off"
        print(f"| {workers} | {batching} | {row['requests_per_s']:.0f} | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} | {memory:.0f} MB |", flush=True)
    if args.output:
        args.output.write_text(json.dumps(rows, indent=2) + "\n")
    memory_over_time(args.ckpt_path, bodies, args.clients)


if __name__ == "__main__":
    main()
