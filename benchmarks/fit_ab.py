"""`python -m mnist_lit fit` of this version against another's source, alternating, in one run.

    git worktree add /tmp/v040 9ae0855          # 0.4.0's source, beside this one
    python benchmarks/fit_ab.py --other /tmp/v040 --rounds 2

Each round runs the default `fit` (any extra arguments after ``--`` are passed to both) in a fresh
folder with this checkout's package and then with ``--other``'s (put first on PYTHONPATH), so that
a shared machine's drift lands on both alike. Prints each run's wall time and best validation
accuracy, the medians, and their ratio.
"""

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def fit(source: Path, extra: list[str]) -> tuple[float, float]:
    """Wall seconds of one `fit` with the package at ``source``, and its best validation accuracy."""
    environment = {**os.environ, "PYTHONPATH": str(source)}
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "mnist_lit", "fit", *extra], cwd=folder, env=environment,
                             capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if run.returncode:
        raise SystemExit(f"fit with {source} failed:\n{run.stderr[-2000:]}")
    accuracies = [float(value) for value in re.findall(r"val/acc[ =]([0-9.]+)", run.stdout + run.stderr)]
    return seconds, max(accuracies, default=float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", type=Path, required=True, help="the source folder of the other version")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("extra", nargs="*", help="arguments for both fits, after --")
    args = parser.parse_args()
    sides = {"this": HERE, "other": args.other.resolve()}
    times: dict[str, list[float]] = {side: [] for side in sides}
    for round_ in range(args.rounds):
        for side, source in sides.items():
            seconds, accuracy = fit(source, args.extra)
            times[side].append(seconds)
            print(f"round {round_ + 1}, {side} ({source}): {seconds:.1f} s, best val/acc {accuracy:.4f}", flush=True)
    this, other = (statistics.median(times[side]) for side in sides)
    print(f"{platform.processor() or platform.machine()}: median {this:.1f} s this, {other:.1f} s other ({this / other:.2f}x)")


if __name__ == "__main__":
    main()
