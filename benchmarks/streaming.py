"""A folder set streamed from LitData's chunks against the same set held in memory.

    python benchmarks/streaming.py memory   # 20,001 generated pictures of 224x224 (2.8 GB decoded), a 1 GB budget
    python benchmarks/streaming.py speed    # 10,000 of MNIST's digits as PNG files, which fit either way

``memory``: one `fit` epoch (batches of 16) with ``--data.memory_budget 1GB``, so that "auto"
streams; the same `fit` held in memory (``--data.stream false``) for five steps; and the same `fit`
on 600 of the pictures, which says what the network, its optimizer and the libraries take without
the set. For each, the peak resident memory of the run's largest process (os.wait4's rusage).
``speed``: `fit` in memory and streamed, alternating, over several seeds, on a set the default
network learns steadily but not perfectly: training pictures per second (the median epoch) and
best validation accuracy. The chunks are written once, before the timed runs.
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

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers.picture_sets import SHAPES, shape_picture  # noqa: E402

from mnist_lit.data.builtin_files import load_builtin, resolve_data_dir  # noqa: E402
from mnist_lit.data.sets import DATASETS  # noqa: E402


def write_set(root: Path, per_class: int, side: int) -> Path:
    """``root/<shape>/<n>.jpg``: shapes on noisy backgrounds, ``side`` pixels square, as JPEG like most photo folders."""
    if root.exists():
        return root
    rng = np.random.default_rng(0)
    for shape in SHAPES:
        (root / shape).mkdir(parents=True)
        for n in range(per_class):
            shape_picture(shape, rng, side).save(root / shape / f"{n:05d}.jpg", quality=90)
    return root


def fit(folder: Path, cwd: Path, cache: Path, *options: str) -> tuple[float, str, float]:
    """Wall seconds, what `fit` printed, and the peak resident memory in GB of its largest process (os.wait4's
    rusage of the child: it and the processes it waited for, such as the workers that write chunks)."""
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MNIST_LIT_CACHE_DIR": str(cache)}
    command = [sys.executable, "-m", "mnist_lit", "fit", "--data.dataset", str(folder), *options]
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as printed:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=printed, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        printed.seek(0)
        output = printed.read()
    if process.returncode:
        raise SystemExit(f"fit failed:\n{output[-4000:]}")
    return seconds, output, usage.ru_maxrss / 2**20  # KB on Linux


def epoch_line(output: str) -> str:
    return next((line for line in output.splitlines() if line.startswith("Epoch 1/")), "")


def write_digits(root: Path, count: int) -> Path:
    """``root/<digit>/<n>.png``: the first ``count`` of MNIST's training digits (from $MNIST_LIT_DATA_DIR)."""
    if root.exists():
        return root
    images, labels = load_builtin(DATASETS["mnist"], resolve_data_dir(None), train=True)[:2]
    for n, (image, label) in enumerate(zip(images[:count], labels[:count].tolist())):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[0].numpy()).save(root / str(label) / f"{n:05d}.png")
    return root


def memory(args: argparse.Namespace) -> None:
    work = Path(args.work)
    folder = write_set(work / "set224", args.pictures // len(SHAPES), 224)
    common = ["--data.image_size", "224", "--data.batch_size", "16", "--data.eval_batch_size", "16", "--trainer.max_epochs", "1", "--data.memory_budget", "1GB"]
    seconds, output, peak = fit(folder, work / "streamed", work / "cache", *common)
    print(f"streamed (--data.memory_budget 1GB, auto): {seconds:.0f} s, peak RSS {peak:.2f} GB")
    print("  " + next(line.strip() for line in output.splitlines() if "decoded" in line))
    print("  " + epoch_line(output))
    limited = ["--trainer.limit_train_batches", "5", "--trainer.limit_val_batches", "2", "--data.stream", "false"]
    seconds, output, peak = fit(folder, work / "in_memory", work / "cache", *common, *limited)
    print(f"in memory (--data.stream false), 5 steps: {seconds:.0f} s, peak RSS {peak:.2f} GB")
    # What the network, its optimizer, the batches' activations and the libraries take without the set.
    small = write_subset(folder, work / "set224_small", 200)
    seconds, output, peak = fit(small, work / "small", work / "cache", *common, "--data.stream", "false")
    print(f"the same fit on 600 of the pictures, in memory (what the set does not take): peak RSS {peak:.2f} GB")


def write_subset(folder: Path, root: Path, per_class: int) -> Path:
    """The first ``per_class`` pictures of each class of ``folder``, linked into ``root``."""
    for shape in SHAPES:
        (root / shape).mkdir(parents=True, exist_ok=True)
        for picture in sorted((folder / shape).iterdir())[:per_class]:
            if not (root / shape / picture.name).exists():
                (root / shape / picture.name).symlink_to(picture)
    return root


def speed(args: argparse.Namespace) -> None:
    work = Path(args.work)
    # MNIST's first training digits as PNG files in class folders: a set the default network learns steadily, but
    # not perfectly in a few epochs, so that the accuracies of the two ways can differ.
    folder = write_digits(work / "digits", args.pictures)
    common = ["--trainer.max_epochs", str(args.epochs)]
    rates: dict[str, list[float]] = {"memory": [], "streamed": []}
    accuracies: dict[str, list[float]] = {"memory": [], "streamed": []}
    cache = Path(tempfile.mkdtemp(dir=work))
    # Written once before timing: the first streamed run would otherwise also time the writing of the chunks.
    fit(folder, work / "warm", cache, *common, "--data.stream", "true", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1")
    for seed in range(args.seeds):
        for mode, stream in (("memory", "false"), ("streamed", "true")):
            _, output, _ = fit(folder, work / f"{mode}{seed}", cache, *common, "--data.stream", stream, "--seed_everything", str(seed))
            pictures = int(re.search(r"training: .*?([\d,]+) pictures", output).group(1).replace(",", ""))
            epochs = [float(s) for s in re.findall(r"^Epoch \d+/\d+: .*\(([\d.]+) s\)", output, re.MULTILINE)]
            accuracy = max(float(value) for value in re.findall(r"val/acc ([0-9.]+)", output))
            rates[mode].append(pictures / statistics.median(epochs))
            accuracies[mode].append(accuracy)
            print(f"seed {seed}, {mode}: {rates[mode][-1]:,.0f} training pictures/s (median epoch), best val/acc {accuracy:.4f}", flush=True)
    ratio = statistics.median(rates["streamed"]) / statistics.median(rates["memory"])
    print(f"{platform.processor() or platform.machine()}: streamed / in memory {ratio:.2f}x pictures per second; "
          f"val/acc in memory {min(accuracies['memory']):.4f}-{max(accuracies['memory']):.4f}, "
          f"streamed {min(accuracies['streamed']):.4f}-{max(accuracies['streamed']):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("memory", "speed"))
    parser.add_argument("--work", default="/tmp/streaming-benchmark", help="where the sets, runs and chunks go")
    parser.add_argument("--pictures", type=int, default=None, help="pictures in the set (20,000 or 10,000)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    args.pictures = args.pictures or (20_001 if args.what == "memory" else 9_999)
    memory(args) if args.what == "memory" else speed(args)


if __name__ == "__main__":
    main()
