"""Classification metrics (torchmetrics) and the per-class report printed after `test`.

Every metric sets ``average=`` explicitly: torchmetrics' MulticlassAccuracy defaults to a
macro average, while the Keras accuracy this project reproduces is micro (the fraction
of digits classified correctly).
"""

import torch
from rich.console import Console
from rich.table import Table
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)


def summary_metrics(num_classes: int, prefix: str) -> MetricCollection:
    """Accuracy (micro) and macro precision, recall and F1, named ``{prefix}acc`` and so on."""
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "precision": MulticlassPrecision(num_classes, average="macro"),
            "recall": MulticlassRecall(num_classes, average="macro"),
            "f1": MulticlassF1Score(num_classes, average="macro"),
        },
        prefix=prefix,
    )


def per_class_metrics(num_classes: int) -> MetricCollection:
    """Precision, recall and F1 for each class, and the confusion matrix (rows: true class)."""
    return MetricCollection(
        {
            "precision": MulticlassPrecision(num_classes, average="none"),
            "recall": MulticlassRecall(num_classes, average="none"),
            "f1": MulticlassF1Score(num_classes, average="none"),
            "confusion_matrix": MulticlassConfusionMatrix(num_classes),
        }
    )


def print_per_class_report(results: dict[str, torch.Tensor], console: Console | None = None) -> None:
    """Print the per-class table and the confusion matrix computed by ``per_class_metrics``."""
    console = console or Console()
    confusion = results["confusion_matrix"].long()
    support = confusion.sum(dim=1)
    classes = range(len(support))

    report = Table(title="Per-class test metrics")
    for column in ("digit", "precision", "recall", "f1", "support"):
        report.add_column(column, justify="right")
    for c in classes:
        scores = (f"{results[name][c].item():.4f}" for name in ("precision", "recall", "f1"))
        report.add_row(str(c), *scores, str(support[c].item()))
    console.print(report)

    matrix = Table(title="Confusion matrix (rows: true digit, columns: predicted digit)")
    matrix.add_column("true", justify="right", style="bold")
    for c in classes:
        matrix.add_column(str(c), justify="right")
    for true in classes:
        # Off-diagonal counts are the mistakes a reader is looking for; highlight them.
        cells = [
            f"[green]{n}[/]" if true == pred else (f"[red]{n}[/]" if n else "[dim]0[/]")
            for pred, n in enumerate(confusion[true].tolist())
        ]
        matrix.add_row(str(true), *cells)
    console.print(matrix)
