"""Classification metrics, all computed by torchmetrics.

Every metric sets ``average=`` explicitly: torchmetrics' MulticlassAccuracy defaults to a
macro average, while the Keras accuracy this project reproduces is micro (the fraction
of digits classified correctly).
"""

from typing import Optional

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)
from torchmetrics.utilities import dim_zero_cat


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


def evaluation_metrics(num_classes: int) -> MetricCollection:
    """What the test report shows: accuracy, precision/recall/F1 per class and as macro and
    weighted averages, and the confusion matrix (rows: true class)."""
    metrics = {
        "accuracy": MulticlassAccuracy(num_classes, average="micro"),
        "confusion_matrix": MulticlassConfusionMatrix(num_classes),
    }
    for average in ("none", "macro", "weighted"):
        metrics[f"precision_{average}"] = MulticlassPrecision(num_classes, average=average)
        metrics[f"recall_{average}"] = MulticlassRecall(num_classes, average=average)
        metrics[f"f1_{average}"] = MulticlassF1Score(num_classes, average=average)
    return MetricCollection(metrics)  # the nine precision/recall/F1 share one set of counts


class ConfidentMistakes(Metric):
    """The wrongly classified images with true class, predicted class and confidence, most confident first."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        # "cat": in multi-process runs every process's mistakes are gathered.
        for name in ("images", "targets", "preds", "confidences"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, images: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        confidences, preds = logits.float().softmax(dim=1).max(dim=1)
        wrong = preds != targets
        self.images.append(images[wrong])
        self.targets.append(targets[wrong])
        self.preds.append(preds[wrong])
        self.confidences.append(confidences[wrong])

    def compute(self) -> dict[str, torch.Tensor]:
        mistakes = {name: dim_zero_cat(getattr(self, name)) for name in ("images", "targets", "preds", "confidences")}
        order = mistakes["confidences"].argsort(descending=True)
        return {name: values[order] for name, values in mistakes.items()}


class ReliabilityBins(Metric):
    """Calibration: the answers' top probabilities in ``bins`` equal-width bins, with how often each bin's
    answers were right. ``compute()`` gives per bin the count, mean confidence and accuracy, and the
    expected calibration error: the count-weighted mean gap between the two (Guo et al. 2017; the
    same number as torchmetrics' MulticlassCalibrationError with norm "l1")."""

    full_state_update = False

    def __init__(self, bins: int = 15, **kwargs) -> None:
        super().__init__(**kwargs)
        self.bins = bins
        for name in ("count", "confidence", "correct"):
            self.add_state(name, default=torch.zeros(bins, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, probabilities: torch.Tensor, targets: torch.Tensor) -> None:
        confidences, preds = probabilities.double().max(dim=1)
        # Bins are (k/bins, (k+1)/bins]: a confidence of exactly 1 belongs to the last.
        index = (confidences * self.bins).ceil().long().clamp(1, self.bins) - 1
        self.count.index_add_(0, index, torch.ones_like(confidences))
        self.confidence.index_add_(0, index, confidences)
        self.correct.index_add_(0, index, (preds == targets).double())

    def compute(self) -> dict[str, torch.Tensor]:
        count = self.count.clamp(min=1)
        confidence, accuracy = self.confidence / count, self.correct / count
        ece = ((self.count / self.count.sum().clamp(min=1)) * (confidence - accuracy).abs()).sum()
        return {"count": self.count, "confidence": confidence, "accuracy": accuracy, "ece": ece}


class Coverage(Metric):
    """Of the pictures an answer accepts (confidence.py): their share of all, and the accuracy on them; the
    same for those answered with one class (accepted, and not "unsure" between two); and the accuracy of
    the top class on all."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in ("total", "right", "accepted", "accepted_right", "answered", "answered_right"):
            self.add_state(name, default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, accepted: torch.Tensor, right: torch.Tensor, answered: Optional[torch.Tensor] = None) -> None:
        """``answered`` defaults to ``accepted``: where nothing can be unsure, every accepted picture is answered."""
        answered = accepted if answered is None else answered
        self.total += accepted.numel()
        self.right += right.sum()
        self.accepted += accepted.sum()
        self.accepted_right += (accepted & right).sum()
        self.answered += answered.sum()
        self.answered_right += (answered & right).sum()

    def compute(self) -> dict[str, torch.Tensor]:
        return {"coverage": self.accepted / self.total.clamp(min=1),
                "accuracy_accepted": self.accepted_right / self.accepted.clamp(min=1),
                "answered": self.answered / self.total.clamp(min=1),
                "accuracy_answered": self.answered_right / self.answered.clamp(min=1),
                "accuracy": self.right / self.total.clamp(min=1)}
