import io

import pytest
import torch
from rich.console import Console

from mnist_lit.metrics import per_class_metrics, print_per_class_report, summary_metrics

# Seven digits of four classes; class 3 is never predicted (its precision divides by zero).
LABELS = torch.tensor([0, 0, 0, 1, 1, 2, 3])
PREDS = torch.tensor([0, 0, 1, 1, 2, 2, 0])
LOGITS = torch.nn.functional.one_hot(PREDS, 4).float()
# By hand, per class:   precision        recall          F1
#   0: TP 2 FP 1 FN 1   2/3              2/3             2/3
#   1: TP 1 FP 1 FN 1   1/2              1/2             1/2
#   2: TP 1 FP 1 FN 0   1/2              1               2/3
#   3: TP 0 FP 0 FN 1   0 (no preds)     0               0
PRECISION = [2 / 3, 1 / 2, 1 / 2, 0]
RECALL = [2 / 3, 1 / 2, 1, 0]
F1 = [2 / 3, 1 / 2, 2 / 3, 0]


def test_summary_is_micro_accuracy_and_macro_precision_recall_f1():
    metrics = summary_metrics(4, prefix="test/")
    metrics.update(LOGITS, LABELS)
    result = {name: value.item() for name, value in metrics.compute().items()}
    assert result == pytest.approx(
        {
            "test/acc": 4 / 7,  # Keras' accuracy: correct digits / all digits (macro would be 0.5417)
            "test/precision": sum(PRECISION) / 4,
            "test/recall": sum(RECALL) / 4,
            "test/f1": sum(F1) / 4,
        }
    )


def test_per_class_metrics_and_confusion_matrix():
    metrics = per_class_metrics(4)
    metrics.update(LOGITS, LABELS)
    result = metrics.compute()
    assert result["precision"].tolist() == pytest.approx(PRECISION)
    assert result["recall"].tolist() == pytest.approx(RECALL)
    assert result["f1"].tolist() == pytest.approx(F1)
    expected = torch.zeros(4, 4, dtype=torch.long)
    for true, pred in zip(LABELS.tolist(), PREDS.tolist()):
        expected[true, pred] += 1
    assert torch.equal(result["confusion_matrix"].long(), expected)


def test_report_prints_one_row_per_class_with_support_and_the_matrix():
    metrics = per_class_metrics(4)
    metrics.update(LOGITS, LABELS)
    console = Console(record=True, width=120, file=io.StringIO())
    print_per_class_report(metrics.compute(), console)
    text = console.export_text()
    rows = [line.replace("│", " ").split() for line in text.splitlines()]
    # digit, precision, recall, f1, support
    assert ["0", "0.6667", "0.6667", "0.6667", "3"] in rows
    assert ["3", "0.0000", "0.0000", "0.0000", "1"] in rows
    assert "Confusion matrix" in text
