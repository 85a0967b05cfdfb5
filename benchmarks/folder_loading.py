"""How long `fit` takes to start on a folder of pictures: decoding them the first time, and from the cache after.

    python benchmarks/folder_loading.py --pictures 50000          # a few minutes on 2 cores

Writes ``--pictures`` pictures of 64x64 (filled shapes on noise, 10 class folders, half PNG and half
JPEG) into a temporary folder, then times, in fresh processes and alternating ``--rounds`` times:
``fit --trainer.fast_dev_run true`` on MNIST (one training and one validation batch: start-up
alone), and the same on the folder with an empty cache (the first `fit`, which decodes every
picture) and with the cache it left (every later `fit`). Needs MNIST's files where `fit` finds them.
"""

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def write_pictures(args: tuple[Path, int, int]) -> None:
    folder, start, count = args
    rng = np.random.default_rng(start)
    for n in range(start, start + count):
        label = n % 10
        pixels = np.clip(rng.integers(0, 256, 3) + rng.normal(0, 12, (64, 64, 3)), 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        r = int(rng.integers(10, 28))
        ImageDraw.Draw(image).regular_polygon((32, 32, r), 3 + label, fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        image.save(folder / f"class_{label}" / f"{n:06d}.{'png' if n % 2 else 'jpg'}")


def timed(command: list[str], env: dict) -> float:
    os.sync()  # the cache the previous run wrote goes to disk before, not during, this run
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="folder-loading-"))
    folder, cache = work / "pictures", work / "cache"
    try:
        for label in range(10):
            (folder / f"class_{label}").mkdir(parents=True)
        chunk = 1000
        with ProcessPoolExecutor() as pool:
            list(pool.map(write_pictures, [(folder, s, min(chunk, args.pictures - s)) for s in range(0, args.pictures, chunk)]))
        env = {**os.environ, "MNIST_LIT_CACHE_DIR": str(cache)}
        fit = [sys.executable, "-m", "mnist_lit", "fit", "--trainer.fast_dev_run", "true"]
        times: dict[str, list[float]] = {"mnist": [], "folder, first fit (decoding)": [], "folder, cached": []}
        for _ in range(args.rounds):
            times["mnist"].append(timed(fit, env))
            shutil.rmtree(cache, ignore_errors=True)
            times["folder, first fit (decoding)"].append(timed([*fit, "--data.dataset", str(folder)], env))
            times["folder, cached"].append(timed([*fit, "--data.dataset", str(folder)], env))
        print(f"{args.pictures:,} pictures of 64x64 on {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
              f"`fit --trainer.fast_dev_run true`, median of {args.rounds} (all runs):")
        for name, values in times.items():
            print(f"  {name:30s} {statistics.median(values):6.1f} s  ({', '.join(f'{v:.1f}' for v in values)})")
        extra = statistics.median(times["folder, cached"]) - statistics.median(times["mnist"])
        paired = [cached - mnist for cached, mnist in zip(times["folder, cached"], times["mnist"])]
        print(f"  cached start minus MNIST start: {extra:+.1f} s by the medians; per round: {', '.join(f'{d:+.1f}' for d in paired)}"
              f" (median {statistics.median(paired):+.1f} s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
