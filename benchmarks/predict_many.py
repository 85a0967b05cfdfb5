"""`predict` on a folder of 2,000 pictures: this tree against another (an older commit), in one run.

    python benchmarks/predict_many.py OTHER_TREE [--pictures 2000] [--rounds 3]

OTHER_TREE is a checkout of another commit (`git worktree add /tmp/old <commit>`). Both run
`python -m mnist_lit predict FOLDER --ckpt_path MODEL` on the same pictures (photos of a digit,
240x320 JPEGs) and the same untrained MNIST model, alternately, `--rounds` times each; the median
wall time of each is printed with their ratio.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parents[1]


def write_pictures(folder: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for n in range(count):
        image = Image.new("RGB", (240, 320), tuple(int(v) for v in rng.integers(200, 256, 3)))
        points = [tuple(int(v) for v in rng.integers(40, 200, 2)) for _ in range(3)]
        ImageDraw.Draw(image).line(points, fill=(20, 20, 20), width=18)
        image.save(folder / f"{n:05d}.jpg", quality=90)


def write_model(path: Path) -> None:
    sys.path.insert(0, str(HERE))
    import lightning as L

    from mnist_lit.data.sets import DATASETS
    from mnist_lit.models.classifier import ImageClassifier

    torch.manual_seed(0)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(ImageClassifier(dataset_info=DATASETS["mnist"].record()))
    trainer.save_checkpoint(path)


def timed(tree: Path, folder: Path, model: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "mnist_lit", "predict", str(folder), "--ckpt_path", str(model)],
                            cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0 or len(result.stdout.splitlines()) != len(list(folder.iterdir())):
        raise SystemExit(f"{tree}: predict failed ({result.returncode}): {result.stderr[-1000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="a checkout of the commit to compare with")
    parser.add_argument("--pictures", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder, model = Path(scratch) / "pictures", Path(scratch) / "mnist.ckpt"
        write_pictures(folder, args.pictures)
        write_model(model)
        times: dict[str, list[float]] = {"other": [], "this": []}
        for _ in range(args.rounds):
            times["other"].append(timed(args.other.resolve(), folder, model))
            times["this"].append(timed(HERE, folder, model))
    other, this = statistics.median(times["other"]), statistics.median(times["this"])
    print(f"predict on {args.pictures:,} pictures, median of {args.rounds}: {args.other}: {other:.2f} s "
          f"({', '.join(f'{t:.2f}' for t in times['other'])}); this tree: {this:.2f} s "
          f"({', '.join(f'{t:.2f}' for t in times['this'])}); {other / this:.2f}x faster, {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
