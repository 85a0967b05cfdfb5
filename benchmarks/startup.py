"""How long `predict` of one picture takes from a cold process, beside `python -c "import torch"`.

    python benchmarks/startup.py --ckpt_path checkpoints/version_0/last.ckpt      # about a minute

Runs, alternating so that a shared machine's drift lands on every command alike, ``--rounds``
times each: ``import torch`` alone; ``import lightning, torchmetrics`` (what a command built on
the LightningModule would pay on top); and ``python -m mnist_lit predict one.png``. Reports the
median wall time and the peak memory (max RSS) of each, and predict minus import torch.
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MB) of a command run to completion."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed: {process.stderr.read().decode()[-2000:]}")
    process.stderr.close()
    return elapsed, usage.ru_maxrss / 1024  # Linux reports kilobytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint written by `fit`")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        picture = Path(folder) / "one.png"
        image = Image.new("L", (120, 160), 255)
        ImageDraw.Draw(image).line([(30, 20), (90, 20), (50, 140)], fill=0, width=12)
        image.save(picture)
        commands = {
            "import torch": [sys.executable, "-c", "import torch"],
            "import torch, lightning, torchmetrics": [sys.executable, "-c", "import torch, lightning, torchmetrics"],
            "predict one.png": [sys.executable, "-m", "mnist_lit", "predict", str(picture), "--ckpt_path", args.ckpt_path],
        }
        for command in commands.values():  # warm the file cache before anything is timed
            timed(command)
        runs = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, command in commands.items():
                runs[name].append(timed(command))

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"median of {args.rounds} alternating rounds")
    medians = {name: statistics.median(wall for wall, _ in values) for name, values in runs.items()}
    for name, values in runs.items():
        memory = statistics.median(rss for _, rss in values)
        print(f"  {name:40s} {medians[name]:5.2f} s  {memory:6.0f} MB")
    print(f"  predict one.png minus import torch: {medians['predict one.png'] - medians['import torch']:.2f} s")


if __name__ == "__main__":
    main()
