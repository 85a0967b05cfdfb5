import io
import json

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from rich.console import Console

from mnist_lit import __version__
from mnist_lit.data.datamodule import ImageDataModule
from mnist_lit.evaluation.figures import (
    confusion_matrix_figure,
    mistakes_figure,
    reliability_figure,
)
from mnist_lit.evaluation.report import (
    EvaluationReport,
    classification_report,
    most_confused,
    print_report,
    write_report,
)
from mnist_lit.models.metrics import (
    ConfidentMistakes,
    ReliabilityBins,
    evaluation_metrics,
)

DATA = {"dataset": "animals", "split": "test", "data_dir": "/data", "images": 7}
CLASSES = ["ant", "bee", "cat", "dog"]  # names, not numbers: every output must use them


@pytest.fixture
def report_files(tmp_path, hand_made_predictions):
    """The report files of the hand-made example, written as `test` writes them."""
    logits, labels = hand_made_predictions
    metrics, mistakes = evaluation_metrics(4), ConfidentMistakes()
    metrics.update(logits, labels)
    mistakes.update(torch.rand(7, 1, 28, 28), logits, labels)
    results = metrics.compute()
    before, after = ReliabilityBins(), ReliabilityBins()
    before.update(logits.softmax(dim=1), labels)
    after.update((logits / 2).softmax(dim=1), labels)
    report = classification_report(results, CLASSES, str(tmp_path / "model.ckpt"), DATA)
    figures = (
        confusion_matrix_figure(results["confusion_matrix"], "Test", CLASSES),
        mistakes_figure(mistakes.compute(), 32, CLASSES),
        reliability_figure(before.compute(), after.compute()),
    )
    return write_report(tmp_path / "run", report, *figures)


def scores_from_confusion(confusion: np.ndarray) -> dict:
    """Precision, recall and F1 per class and averaged, straight from their definitions."""
    true_positives = np.diag(confusion).astype(float)
    predicted, support = confusion.sum(axis=0), confusion.sum(axis=1)
    # A class never predicted (or never present) scores 0, as in scikit-learn and torchmetrics.
    precision = np.divide(true_positives, predicted, out=np.zeros(len(confusion)), where=predicted > 0)
    recall = np.divide(true_positives, support, out=np.zeros(len(confusion)), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros(len(confusion)), where=both > 0)
    per_class = {"precision": precision, "recall": recall, "f1": f1}
    return {
        "per_class": per_class,
        "macro_avg": {name: values.mean() for name, values in per_class.items()},
        "weighted_avg": {name: (values * support).sum() / support.sum() for name, values in per_class.items()},
    }


def test_report_json_agrees_with_the_confusion_matrix(report_files, hand_made_predictions):
    report = json.loads(report_files[0].read_text())
    logits, labels = hand_made_predictions
    confusion = np.zeros((4, 4), dtype=int)
    np.add.at(confusion, (labels.numpy(), logits.argmax(1).numpy()), 1)
    assert report["confusion_matrix"] == confusion.tolist()

    expected = scores_from_confusion(confusion)
    for name in ("precision", "recall", "f1"):
        assert [report["per_class"][c][name] for c in CLASSES] == pytest.approx(expected["per_class"][name])
        assert report["macro_avg"][name] == pytest.approx(expected["macro_avg"][name])
        assert report["weighted_avg"][name] == pytest.approx(expected["weighted_avg"][name])
    # The example is chosen so that swapping the two averages would be caught.
    assert report["macro_avg"]["precision"] != pytest.approx(report["weighted_avg"]["precision"])
    assert report["per_class"]["dog"]["precision"] == 0  # never predicted: 0, not NaN
    assert [report["per_class"][c]["support"] for c in CLASSES] == [3, 2, 1, 1]
    assert list(report["per_class"]) == report["classes"] == CLASSES  # in class order
    assert report["accuracy"] == pytest.approx(4 / 7)


def test_report_json_says_what_was_evaluated(report_files, tmp_path):
    report = json.loads(report_files[0].read_text())
    assert report["checkpoint"] == str(tmp_path / "model.ckpt")
    assert report["data"] == DATA
    assert report["mnist_lit_version"] == __version__


def test_pictures_are_pngs_of_a_readable_size(report_files):
    names = [path.name for path in report_files]
    assert names == ["report.json", "confusion_matrix.png", "mistakes.png", "reliability.png"]
    for path in report_files[1:]:
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert 500 <= image.width <= 2000 and 200 <= image.height <= 2000
            image.load()  # decodes in full
    assert sorted(path.name for path in report_files[0].parent.iterdir()) == sorted(names)  # no temporary files


def test_most_confused_lists_the_largest_mistakes_first():
    confusion = torch.tensor([[5, 1, 0], [4, 5, 0], [0, 2, 5]])
    names = ["Shirt", "T-shirt/top", "Coat"]
    assert most_confused(confusion, names, count=2) == [
        {"true": "T-shirt/top", "predicted": "Shirt", "count": 4},
        {"true": "Coat", "predicted": "T-shirt/top", "count": 2},
    ]
    assert most_confused(torch.eye(3, dtype=torch.long) * 7, names) == []  # no mistakes, nothing listed


def test_terminal_report_has_classes_averages_and_the_matrix(report_files):
    report = json.loads(report_files[0].read_text())
    console = Console(record=True, width=120, file=io.StringIO())
    print_report(report, console)
    text = console.export_text()
    rows = [line.replace("│", " ").replace("┃", " ").split() for line in text.splitlines()]
    # class, precision, recall, f1, support
    assert ["ant", "0.6667", "0.6667", "0.6667", "3"] in rows
    assert ["dog", "0.0000", "0.0000", "0.0000", "1"] in rows
    assert ["macro", "avg", "0.4167", "0.5417", "0.4583", "7"] in rows
    assert ["weighted", "avg", "0.5000", "0.5714", "0.5238", "7"] in rows
    assert ["accuracy", "0.5714", "7"] in rows
    assert ["ant", "2", "1", "0", "0"] in rows  # the confusion matrix's first row
    assert ["true", *CLASSES] in rows  # and its columns
    assert "Most confused (true as predicted): ant as bee (1), bee as cat (1), dog as ant (1)" in text
    assert "Evaluated on animals, test split (7 pictures)" in text


def test_mistakes_picture_with_no_mistakes_still_draws():
    empty = {name: torch.zeros(0) for name in ("targets", "preds", "confidences")}
    figure = mistakes_figure({**empty, "images": torch.zeros(0, 1, 28, 28)}, shown=32, classes=CLASSES)
    assert "0 most confident of 0 mistakes" in figure._suptitle.get_text()


class Minimal(L.LightningModule):
    """Not ImageClassifier: one linear layer whose evaluation steps return logits, and nothing else."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(28 * 28, 10)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:  # batches hold uint8 pixels
        return self.layer(pixels.flatten(1).float() / 255)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return F.cross_entropy(self(batch[0]), batch[1])

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self(batch[0])

    def test_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self(batch[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_the_report_works_with_any_module_whose_steps_return_logits(tiny_mnist, tmp_path):
    report = EvaluationReport(mistakes_shown=4)
    trainer = L.Trainer(
        max_epochs=2, default_root_dir=tmp_path, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[report],
    )
    data = ImageDataModule(data_dir=str(tiny_mnist), batch_size=16, eval_batch_size=7, val_size=20, download=False)
    module = Minimal()
    trainer.fit(module, data)
    # The last epoch's validation matrix, counted afresh each epoch (not 2 x 20, nor the sanity check's too).
    assert report.val_confusion_matrix.sum() == 20

    trainer.test(module, data, verbose=False)
    confusion = report.test_results["confusion_matrix"]
    assert confusion.sum() == 30  # every test picture counted once
    with torch.inference_mode():  # the same predictions as the module makes on the same pictures
        images, labels = data.on_after_batch_transfer((data.test_set.images, data.test_set.labels), 0)
        predictions = module(images).argmax(1)
    assert (confusion.diag().sum() == (predictions == labels).sum()).item()
    mistakes = report.test_mistakes
    assert len(mistakes["targets"]) == confusion.sum() - confusion.trace()
    assert (mistakes["preds"] != mistakes["targets"]).all() and (mistakes["confidences"].diff() <= 0).all()
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["classes"] == data.classes and written["data"]["dataset"] == "mnist"
    assert written["accuracy"] == pytest.approx((predictions == labels).float().mean().item())
