"""Validation accuracy per epoch of `fit` runs, read from their TensorBoard logs, as one PNG.

    python benchmarks/accuracy_plot.py default=logs/version_0 accurate=logs/version_1 \\
        --output benchmarks/accuracy.png

Each argument is NAME=LOG_DIR (a run folder that `fit` wrote). The curve is `val/acc`, logged
once per epoch; the legend gives each run's best value and its number of epochs.
"""

import argparse
from pathlib import Path

from matplotlib.figure import Figure
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def validation_accuracy(log_dir: Path) -> list[float]:
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [event.value for event in events.Scalars("val/acc")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="NAME=LOG_DIR of each run")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/accuracy.png"))
    args = parser.parse_args()

    figure = Figure(figsize=(8, 4.5), layout="constrained")
    axes = figure.add_subplot()
    for run in args.runs:
        name, _, log_dir = run.partition("=")
        accuracy = validation_accuracy(Path(log_dir))
        epochs = range(1, len(accuracy) + 1)
        axes.plot(epochs, [100 * a for a in accuracy], marker="o", markersize=3,
                  label=f"{name}: best {100 * max(accuracy):.2f}% in {len(accuracy)} epochs")
    axes.set_xlabel("epoch")
    axes.set_ylabel("validation accuracy (%), 5,000 held-out training digits")
    axes.set_ylim(97.5, 100.0)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left")
    figure.savefig(args.output, dpi=100)
    print(f"Wrote {args.output}")


if __name__ == "__main__":
    main()
