"""What `test` tells about a model beyond its accuracy: which digits fail, and how.

After `test`: a per-class table (scikit-learn's classification-report layout) and the confusion
matrix in the terminal; report.json, confusion_matrix.png and mistakes.png in the run's folder;
the two pictures in TensorBoard. During `fit`: the validation confusion matrix in TensorBoard
after every epoch. The numbers come from the model's torchmetrics (model.py, metrics.py).
"""

import json
from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from mnist_lit import __version__
from mnist_lit.figures import confusion_matrix_figure, mistakes_figure
from mnist_lit.files import replaced_atomically
from mnist_lit.logger import TensorBoardLogger

REPORT_FILES = ("report.json", "confusion_matrix.png", "mistakes.png")


def classification_report(results: dict[str, torch.Tensor], checkpoint: Optional[str], data: dict[str, Any]) -> dict:
    """The numbers of ``evaluation_metrics`` (metrics.py) as plain JSON-ready values, with their provenance."""
    confusion = results["confusion_matrix"].long()
    support = confusion.sum(dim=1)

    def scores(average: str, index: Optional[int] = None) -> dict[str, float]:
        values = {name: results[f"{name}_{average}"] for name in ("precision", "recall", "f1")}
        return {name: (value if index is None else value[index]).item() for name, value in values.items()}

    return {
        "checkpoint": str(Path(checkpoint).resolve()) if checkpoint else None,
        "data": data,
        "mnist_lit_version": __version__,
        "accuracy": results["accuracy"].item(),
        "per_class": {str(c): {**scores("none", c), "support": support[c].item()} for c in range(len(support))},
        "macro_avg": {**scores("macro"), "support": support.sum().item()},
        "weighted_avg": {**scores("weighted"), "support": support.sum().item()},
        "confusion_matrix": confusion.tolist(),  # rows: true digit, columns: predicted digit
        "most_confused": most_confused(confusion),
    }


def most_confused(confusion: torch.Tensor, count: int = 5) -> list[dict[str, int]]:
    """The largest off-diagonal cells of the confusion matrix, largest first (ties by digit)."""
    mistakes = [
        {"true": true, "predicted": predicted, "count": n}
        for true, row in enumerate(confusion.long().tolist())
        for predicted, n in enumerate(row)
        if true != predicted and n > 0
    ]
    return sorted(mistakes, key=lambda cell: -cell["count"])[:count]


def print_report(report: dict, console: Optional[Console] = None) -> None:
    """The per-class table with its averages, the confusion matrix and the most frequent mistakes."""
    console = console or Console()
    table = Table(title="Per-class test metrics")
    for column in ("digit", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="right")

    def add_row(name: str, row: dict) -> None:
        scores = (f"{row[key]:.4f}" for key in ("precision", "recall", "f1"))
        table.add_row(name, *scores, f"{row['support']:,}")

    for digit, row in report["per_class"].items():
        add_row(digit, row)
    table.add_section()
    table.add_row("accuracy", "", "", f"{report['accuracy']:.4f}", f"{report['macro_avg']['support']:,}")
    add_row("macro avg", report["macro_avg"])
    add_row("weighted avg", report["weighted_avg"])
    console.print(table)

    confusion = report["confusion_matrix"]
    matrix = Table(title="Confusion matrix (rows: true digit, columns: predicted digit)")
    matrix.add_column("true", justify="right", style="bold")
    for digit in range(len(confusion)):
        matrix.add_column(str(digit), justify="right")
    for true, row in enumerate(confusion):
        # Off-diagonal counts are the mistakes a reader is looking for; highlight them.
        cells = [
            f"[green]{n}[/]" if true == predicted else (f"[red]{n}[/]" if n else "[dim]0[/]")
            for predicted, n in enumerate(row)
        ]
        matrix.add_row(str(true), *cells)
    console.print(matrix)
    pairs = ", ".join(f"{m['true']} as {m['predicted']} ({m['count']})" for m in report["most_confused"])
    console.print(f"Most confused (true as predicted): {pairs or 'none'}")


def write_report(folder: Path, report: dict, confusion: Figure, mistakes: Figure) -> list[Path]:
    """report.json, confusion_matrix.png and mistakes.png in ``folder``, each written whole or not at all."""
    paths = [folder / name for name in REPORT_FILES]
    with replaced_atomically(paths[0]) as temporary:
        temporary.write_text(json.dumps(report, indent=2) + "\n")
    for figure, path in zip((confusion, mistakes), paths[1:]):
        with replaced_atomically(path) as temporary:
            figure.savefig(temporary, format="png", dpi=100)
    return paths


class EvaluationReport(Callback):
    """Writes, logs and prints the evaluation report (see the module docstring).

    Args:
        mistakes_shown: how many of the most confident mistakes mistakes.png shows.
    """

    def __init__(self, mistakes_shown: int = 32) -> None:
        self.mistakes_shown = mistakes_shown
        self.report: Optional[dict] = None
        self.paths: list[Path] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or pl_module.val_confusion_matrix is None:
            return
        # Drawing and encoding take about 0.15 s (measured), against an epoch of several seconds on a CPU.
        figure = confusion_matrix_figure(pl_module.val_confusion_matrix, f"Validation, epoch {trainer.current_epoch + 1}")
        _log_figure(trainer, "val/confusion_matrix", figure)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Here, not after Lightning's summary table, because the logger closes before then.
        folder = Path(trainer.log_dir or trainer.default_root_dir)  # on every process: log_dir is a broadcast
        if not trainer.is_global_zero or not pl_module.test_results:
            return
        datamodule = trainer.datamodule
        data = {
            "dataset": "MNIST test set",
            "data_dir": str(Path(datamodule.data_dir).resolve()) if datamodule is not None else None,
            "images": int(pl_module.test_results["confusion_matrix"].sum()),
        }
        self.report = classification_report(pl_module.test_results, trainer.ckpt_path, data)
        confusion = confusion_matrix_figure(pl_module.test_results["confusion_matrix"], "Test")
        mistakes = mistakes_figure(pl_module.test_mistake_results, self.mistakes_shown)
        self.paths = write_report(folder, self.report, confusion, mistakes)
        _log_figure(trainer, "test/confusion_matrix", confusion)
        _log_figure(trainer, "test/mistakes", mistakes)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # After Lightning's own summary table, which is printed once the test loop has ended.
        if stage == "test" and self.report is not None:
            print_report(self.report)
            print(f"Report written to {self.paths[0].parent}: {', '.join(path.name for path in self.paths)}")
            self.report = None


def _log_figure(trainer: L.Trainer, tag: str, figure: Figure) -> None:
    if isinstance(trainer.logger, TensorBoardLogger):  # mnist-lit's, which knows the step of the scalars
        trainer.logger.log_figure(tag, figure)
