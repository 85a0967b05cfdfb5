"""Recipes for folders of one's own pictures, on generated sets they were or were not chosen on.

    python benchmarks/folder_recipes.py --recipes folder [--sets shapes letters] [--train_total 1000] [--held_out]

Each set (tests/helpers/photo_sets.py: shapes, symbols, textures, letters, garments; outlines and
flags, held out, only with --held_out) is written once under --root with 200 training (or
--train_total in all) and 40 test pictures per class. Each recipe (a config name or path, with any
further `fit` options after `--`) runs `fit` then `test` on each set in a fresh folder, one after
the other; the table gives the test accuracy and the wall time of `fit`. A recipe is chosen on some
sets and reported on the others (benchmarks/NOTES.md).
"""

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers.photo_sets import makers, write_photo_set  # noqa: E402

# letters and garments were held out until the first recipe was measured on them (benchmarks/NOTES.md).
CHOICE_SETS = ("shapes", "symbols", "textures", "letters", "garments")
HELD_OUT_SETS = ("outlines", "flags")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=["folder"], help="config names or paths")
    parser.add_argument("--sets", nargs="+", default=list(CHOICE_SETS), choices=CHOICE_SETS + HELD_OUT_SETS)
    parser.add_argument("--held_out", action="store_true", help="also the held-out sets: for a final figure only")
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "mnist-lit-photo-sets")
    parser.add_argument("--train", type=int, default=200, help="training pictures per class")
    parser.add_argument("--train_total", type=int, help="training pictures of each set in all, shared by its classes (instead of --train)")
    parser.add_argument("--test", type=int, default=40, help="test pictures per class")
    args, extra = parser.parse_known_args()
    extra = [option for option in extra if option != "--"]
    sets = list(dict.fromkeys(args.sets + (list(HELD_OUT_SETS) if args.held_out else [])))
    print(f"{platform.processor() or platform.machine()}; `fit` options added to every recipe: {' '.join(extra) or 'none'}")
    print("| recipe | " + " | ".join(sets) + " |")
    print("|---|" + "---:|" * len(sets))
    for recipe in args.recipes:
        cells = []
        for name in sets:
            train = round(args.train_total / len(makers()[name][0])) if args.train_total else args.train
            folder = args.root / f"{name}_{train}_{args.test}"
            if not (folder / "test").is_dir():
                write_photo_set(name, folder, train, args.test)
            with tempfile.TemporaryDirectory() as work:
                start = time.perf_counter()
                fit = subprocess.run([sys.executable, "-m", "mnist_lit", "fit", "--config", recipe, "--data.dataset", str(folder), *extra],
                                     cwd=work, capture_output=True, text=True)
                seconds = time.perf_counter() - start
                if fit.returncode != 0:
                    raise SystemExit(f"fit --config {recipe} on {name} failed:\n{fit.stderr[-2000:]}")
                subprocess.run([sys.executable, "-m", "mnist_lit", "test"], cwd=work, capture_output=True, text=True, check=True)
                report = json.loads(next(Path(work, "logs").glob("version_*/report.json")).read_text())
                cells.append(f"{report['accuracy']:.1%} ({seconds:.0f} s)")
        print(f"| {recipe} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
