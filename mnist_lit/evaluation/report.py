"""What `test` tells about a model beyond its accuracy: which classes fail, and how.

After `test`: a per-class table (scikit-learn's classification-report layout) and the confusion
matrix in the terminal; report.json, confusion_matrix.png and mistakes.png in the run's folder;
the two pictures in TensorBoard. During `fit`: the validation confusion matrix in TensorBoard
after every epoch. ``EvaluationReport`` owns the torchmetrics behind all of it (metrics.py), fed
with the logits that the LightningModule's validation and test steps return, so it works with
mnist-lit's ImageClassifier (whose data set names the classes) or any LightningModule whose steps return logits,
on mnist-lit's ImageDataModule, which tells which pictures it read.
"""

import json
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassConfusionMatrix

from mnist_lit import __version__
from mnist_lit.core.atomic_files import replaced_atomically
from mnist_lit.core.errors import UserError
from mnist_lit.data.datamodule import ImageDataModule
from mnist_lit.data.style_shift import SHIFT, shifted_style
from mnist_lit.evaluation.figures import (
    confusion_matrix_figure,
    mistakes_figure,
    reliability_figure,
)
from mnist_lit.evaluation.logger import TensorBoardLogger
from mnist_lit.models.classifier import ImageClassifier
from mnist_lit.models.confidence import Confidence
from mnist_lit.models.metrics import (
    ConfidentMistakes,
    Coverage,
    ReliabilityBins,
    evaluation_metrics,
)

REPORT_FILES = ("report.json", "confusion_matrix.png", "mistakes.png", "reliability.png")
# Wider matrices do not fit a terminal; confusion_matrix.png still shows them.
MAX_PRINTED_CLASSES = 20


def classification_report(
    results: dict[str, torch.Tensor], classes: list[str], checkpoint: Optional[str], data: dict[str, Any]
) -> dict:
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
        "classes": list(classes),
        "accuracy": results["accuracy"].item(),
        "per_class": {name: {**scores("none", c), "support": support[c].item()} for c, name in enumerate(classes)},
        "macro_avg": {**scores("macro"), "support": support.sum().item()},
        "weighted_avg": {**scores("weighted"), "support": support.sum().item()},
        "confusion_matrix": confusion.tolist(),  # rows: true class, columns: predicted class, in the order of "classes"
        "most_confused": most_confused(confusion, classes),
    }


def calibration_report(results: dict[str, Any], confidence: Optional[Confidence]) -> dict[str, Any]:
    """Expected calibration error (15 bins) before and after the temperature, and at the stored threshold the
    share of pictures accepted and the accuracy on them, and of those answered with one class; without a calibration, the first alone."""
    if confidence is None:
        return {"calibrated": False, "ece": results["before"]["ece"].item()}
    return {
        "calibrated": True,
        "temperature": confidence.temperature,
        "ece_before": results["before"]["ece"].item(),
        "ece_after": results["after"]["ece"].item(),
        "accept": confidence.accept,
        "threshold": confidence.threshold,
        "coverage": results["coverage"]["coverage"].item(),
        "accuracy_accepted": results["coverage"]["accuracy_accepted"].item(),
        # What a user reads: one class, neither refused nor "3 or 5?".
        "answered": results["coverage"]["answered"].item(),
        "accuracy_answered": results["coverage"]["accuracy_answered"].item(),
    }


def most_confused(confusion: torch.Tensor, classes: list[str], count: int = 5) -> list[dict[str, Any]]:
    """The largest off-diagonal cells of the confusion matrix, largest first (ties in class order)."""
    mistakes = [
        {"true": classes[true], "predicted": classes[predicted], "count": n}
        for true, row in enumerate(confusion.long().tolist())
        for predicted, n in enumerate(row)
        if true != predicted and n > 0
    ]
    return sorted(mistakes, key=lambda cell: -cell["count"])[:count]


def print_report(report: dict, console: Optional[Console] = None) -> None:
    """The per-class table with its averages, the confusion matrix and the most frequent mistakes."""
    console = console or Console()
    console.print(f"Evaluated on {describe(report['data'])}", soft_wrap=True)
    table = Table(title="Per-class metrics")
    for column in ("class", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="right")

    def add_row(name: str, row: dict) -> None:
        scores = (f"{row[key]:.4f}" for key in ("precision", "recall", "f1"))
        table.add_row(name, *scores, f"{row['support']:,}")

    for name, row in report["per_class"].items():
        add_row(name, row)
    table.add_section()
    table.add_row("accuracy", "", "", f"{report['accuracy']:.4f}", f"{report['macro_avg']['support']:,}")
    add_row("macro avg", report["macro_avg"])
    add_row("weighted avg", report["weighted_avg"])
    console.print(table)

    confusion, classes = report["confusion_matrix"], report["classes"]
    if len(classes) <= MAX_PRINTED_CLASSES:
        matrix = Table(title="Confusion matrix (rows: true class, columns: predicted class)")
        matrix.add_column("true", justify="right", style="bold")
        # Long names ("Ankle boot") would squeeze the columns: head them with the class index instead.
        short = max(len(name) for name in classes) <= 3
        for index, name in enumerate(classes):
            matrix.add_column(name if short else str(index), justify="right")
        for true, row in enumerate(confusion):
            # Off-diagonal counts are the mistakes a reader is looking for; highlight them.
            cells = [
                f"[green]{n}[/]" if true == predicted else (f"[red]{n}[/]" if n else "[dim]0[/]")
                for predicted, n in enumerate(row)
            ]
            matrix.add_row(classes[true] if short else f"{true} {classes[true]}", *cells)
        console.print(matrix)
    pairs = ", ".join(f"{m['true']} as {m['predicted']} ({m['count']})" for m in report["most_confused"])
    console.print(f"Most confused (true as predicted): {pairs or 'none'}")
    calibration = report.get("calibration") or {"calibrated": None}
    if calibration["calibrated"]:
        console.print(
            f"Calibration: expected calibration error {calibration['ece_before']:.2%} before, {calibration['ece_after']:.2%} "
            f"after (temperature {calibration['temperature']:.3f}). At the stored threshold {calibration['coverage']:.2%} of "
            f"the pictures are accepted, with accuracy {calibration['accuracy_accepted']:.2%} on them; "
            f"{calibration['answered']:.2%} are answered with one class (the others accepted are \"unsure\" between two), "
            f"with accuracy {calibration['accuracy_answered']:.2%}."
        )
    elif calibration["calibrated"] is False:
        console.print(f"Calibration: expected calibration error {calibration['ece']:.2%}; this checkpoint has no "
                      "temperature or threshold (`python -m mnist_lit calibrate` fits them).")
    shifted = calibration.get("shifted")
    if shifted:
        console.print(
            f"The same pictures in another style ({shifted['style']}): top class right for {shifted['accuracy']:.2%}; "
            f"{shifted['coverage']:.2%} accepted, with accuracy {shifted['accuracy_accepted']:.2%} on them; "
            f"{shifted['answered']:.2%} answered with one class, with accuracy {shifted['accuracy_answered']:.2%}."
        )


def write_report(folder: Path, report: dict, *figures: Figure) -> list[Path]:
    """report.json, confusion_matrix.png, mistakes.png and reliability.png in ``folder``, each written whole or not at all."""
    paths = [folder / name for name in REPORT_FILES]
    with replaced_atomically(paths[0]) as temporary:
        temporary.write_text(json.dumps(report, indent=2) + "\n")
    for figure, path in zip(figures, paths[1:]):
        with replaced_atomically(path) as temporary:
            figure.savefig(temporary, format="png", dpi=100)
    return paths


def describe(data: dict[str, Any]) -> str:
    """"fashion_mnist, test split (10,000 pictures)", "shapes, 10% of each class of shapes/ held out at fit (seed
    1234) (18 pictures)": which data an evaluation used."""
    split = data["split"] if " " in data["split"] else f"{data['split']} split"
    return f"{data['dataset']}, {split} ({data['images']:,} pictures)"


class EvaluationReport(Callback):
    """Computes, writes, logs and prints the evaluation report (see the module docstring).

    Args:
        mistakes_shown: how many of the most confident mistakes mistakes.png shows.
    """

    def __init__(self, mistakes_shown: int = 32) -> None:
        self.mistakes_shown = mistakes_shown
        self.classes: list[str] = []
        # Created in setup, once the number of classes is known.
        self.val_confusion: Optional[MulticlassConfusionMatrix] = None
        self.test_metrics: Optional[MetricCollection] = None
        self.mistake_finder: Optional[ConfidentMistakes] = None
        self.calibration_metrics: dict[str, Metric] = {}
        self.shifted: Optional[Coverage] = None
        self.test_calibration: dict[str, Any] = {}
        self.test_bins: dict[str, dict[str, torch.Tensor]] = {}
        self.val_confusion_matrix: Optional[torch.Tensor] = None
        self.test_results: dict[str, torch.Tensor] = {}
        self.test_mistakes: dict[str, torch.Tensor] = {}
        self.report: Optional[dict] = None
        self.paths: list[Path] = []
        # The validation confusion matrices, drawn on a thread of their own (on_validation_end).
        self.painter: Optional[ThreadPoolExecutor] = None
        self.paintings: list[Future] = []

    def prepare(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The metrics for the classes of the set the model learned, known once Lightning configured the model
        (after every `setup`): the ImageClassifier's, else those of the ImageDataModule it runs on."""
        if isinstance(pl_module, ImageClassifier) and pl_module.dataset_info is not None:
            classes = list(pl_module.dataset_info.classes)
        elif isinstance(trainer.datamodule, ImageDataModule) and trainer.datamodule.dataset_info is not None:
            classes = trainer.datamodule.classes
        else:
            raise UserError("The evaluation report needs the class names: use it with mnist-lit's ImageClassifier or ImageDataModule.")
        if self.classes == classes and self.test_metrics is not None:
            return
        self.classes = classes
        num_classes = len(self.classes)
        # The callback's own metrics, not the module's: moved to the module's device when a loop starts.
        self.val_confusion = MulticlassConfusionMatrix(num_classes)
        self.test_metrics = evaluation_metrics(num_classes)
        self.mistake_finder = ConfidentMistakes()
        self.calibration_metrics = {"before": ReliabilityBins(), "after": ReliabilityBins(), "coverage": Coverage()}
        # Handwriting and clothing in another style than the set's own (data/style_shift.py): answered as often?
        classifier = isinstance(pl_module, ImageClassifier)
        self.shifted = Coverage() if classifier and pl_module.dataset_info.pictures != "photos" else None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.prepare(trainer, pl_module)
        self.val_confusion.to(pl_module.device).reset()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.val_confusion.update(outputs, batch[1])

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # On every process: computing syncs the counts of all of them.
        self.val_confusion_matrix = self.val_confusion.compute().cpu()
        self.val_confusion.reset()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Here, after Lightning logged the epoch's validation scalars: the picture lands on their step.
        if trainer.sanity_checking or not trainer.is_global_zero or self.val_confusion_matrix is None:
            return
        if not isinstance(trainer.logger, TensorBoardLogger):  # mnist-lit's, which knows the step of the scalars
            return
        # Drawing and encoding take 0.15-0.5 s, which the next epoch's training would wait for; on a
        # thread of its own the drawing runs while the training steps compute. One thread, so
        # matplotlib never draws two pictures at once.
        if self.painter is None:
            self.painter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="confusion-matrix")
        title = f"Validation, epoch {trainer.current_epoch + 1}"
        self.paintings.append(self.painter.submit(
            _draw_and_log, trainer.logger, trainer.logger.last_step, self.val_confusion_matrix, title, self.classes
        ))

    def finish_paintings(self, raise_errors: bool = True) -> None:
        """Wait for the validation pictures still being drawn, before the logger closes."""
        if self.painter is not None:
            self.painter.shutdown(wait=True)
            self.painter = None
        paintings, self.paintings = self.paintings, []
        for painting in paintings:
            if raise_errors:
                painting.result()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.finish_paintings(raise_errors=False)  # the exception that stopped the run is the one to tell

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.prepare(trainer, pl_module)
        for metric in (self.test_metrics, self.mistake_finder, *self.calibration_metrics.values(), *([self.shifted] if self.shifted else [])):
            metric.to(pl_module.device).reset()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        images, labels = batch
        self.test_metrics.update(outputs, labels)
        self.mistake_finder.update(images, outputs, labels)
        metrics = self.calibration_metrics
        metrics["before"].update(outputs.float().softmax(dim=1), labels)
        confidence = pl_module.confidence if isinstance(pl_module, ImageClassifier) else None  # the checkpoint's
        if confidence is not None:
            metrics["after"].update(confidence.probabilities(outputs), labels)
            metrics["coverage"].update(confidence.accepted(outputs), outputs.argmax(dim=1) == labels, confidence.answered(outputs))
        if self.shifted is not None:
            shifted = pl_module(shifted_style(images)).float()
            right = shifted.argmax(dim=1) == labels
            if confidence is None:
                self.shifted.update(torch.ones_like(right), right)
            else:
                self.shifted.update(confidence.accepted(shifted), right, confidence.answered(shifted))

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.test_results = {name: value.cpu() for name, value in self.test_metrics.compute().items()}
        mistakes = {name: value.cpu() for name, value in self.mistake_finder.compute().items()}
        # torchmetrics squeezes a result of one element to 0-d: a single mistake is still a row.
        count = len(mistakes["images"])
        self.test_mistakes = {name: value.reshape(count, *value.shape[1:]) if name == "images" else value.reshape(count)
                              for name, value in mistakes.items()}
        confidence = pl_module.confidence if isinstance(pl_module, ImageClassifier) else None
        computed = ("before", "after", "coverage") if confidence is not None else ("before",)
        self.test_bins = {name: {key: value.cpu() for key, value in self.calibration_metrics[name].compute().items()}
                          for name in computed}
        self.test_calibration = calibration_report(self.test_bins, confidence)
        if self.shifted is not None:
            shifted = {name: float(value) for name, value in self.shifted.compute().items()}
            self.test_calibration["shifted"] = {"style": SHIFT, **shifted}
            for name, value in shifted.items():
                pl_module.log(f"test/shifted_{name}", value)
        # Scalars beside test/acc, in Lightning's table and TensorBoard.
        for name in ("ece_before", "ece_after", "coverage", "accuracy_accepted", "answered", "accuracy_answered"):
            if name in self.test_calibration:
                pl_module.log(f"test/{name}", float(self.test_calibration[name]))

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Here, not after Lightning's summary table, because the logger closes before then.
        folder = Path(trainer.log_dir or trainer.default_root_dir)  # on every process: log_dir is a broadcast
        if not trainer.is_global_zero or not self.test_results:
            return
        datamodule = trainer.datamodule
        evaluated = datamodule.evaluated("test") if isinstance(datamodule, ImageDataModule) else {"dataset": "unnamed", "split": "test"}
        data = {**evaluated, "images": int(self.test_results["confusion_matrix"].sum())}
        self.report = classification_report(self.test_results, self.classes, trainer.ckpt_path, data)
        self.report["calibration"] = self.test_calibration
        confusion = confusion_matrix_figure(self.test_results["confusion_matrix"], "Test", self.classes)
        light_on_dark = isinstance(datamodule, ImageDataModule) and datamodule.dataset_info.polarity == "light on dark"
        mistakes = mistakes_figure(self.test_mistakes, self.mistakes_shown, self.classes, light_on_dark=light_on_dark)
        reliability = reliability_figure(self.test_bins["before"], self.test_bins.get("after"))
        self.paths = write_report(folder, self.report, confusion, mistakes, reliability)
        _log_figure(trainer, "test/confusion_matrix", confusion)
        _log_figure(trainer, "test/mistakes", mistakes)
        _log_figure(trainer, "test/reliability", reliability)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.finish_paintings()  # Lightning closes the logger after this
        # After Lightning's own summary table, which is printed once the test loop has ended.
        if stage == "test" and self.report is not None:
            print_report(self.report)
            print(f"Report written to {self.paths[0].parent}: {', '.join(path.name for path in self.paths)}")
            self.report = None


def _draw_and_log(logger: TensorBoardLogger, step: Optional[int], confusion: torch.Tensor, title: str, classes: list[str]) -> None:
    logger.log_figure("val/confusion_matrix", confusion_matrix_figure(confusion, title, classes), step=step)


def _log_figure(trainer: L.Trainer, tag: str, figure: Figure) -> None:
    if isinstance(trainer.logger, TensorBoardLogger):  # mnist-lit's, which knows the step of the scalars
        trainer.logger.log_figure(tag, figure)
