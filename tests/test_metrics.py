import pytest
import torch

from mnist_lit.models.metrics import (
    ConfidentMistakes,
    evaluation_metrics,
    summary_metrics,
)

# By hand, per class, for the `hand_made_predictions` fixture:
#                       precision        recall          F1
#   0: TP 2 FP 1 FN 1   2/3              2/3             2/3
#   1: TP 1 FP 1 FN 1   1/2              1/2             1/2
#   2: TP 1 FP 1 FN 0   1/2              1               2/3
#   3: TP 0 FP 0 FN 1   0 (no preds)     0               0
PRECISION = [2 / 3, 1 / 2, 1 / 2, 0]
RECALL = [2 / 3, 1 / 2, 1, 0]
F1 = [2 / 3, 1 / 2, 2 / 3, 0]
SUPPORT = [3, 2, 1, 1]


def weighted(values: list[float]) -> float:
    return sum(v * n for v, n in zip(values, SUPPORT)) / sum(SUPPORT)


def test_summary_is_micro_accuracy_and_macro_precision_recall_f1(hand_made_predictions):
    metrics = summary_metrics(4, prefix="test/")
    metrics.update(*hand_made_predictions)
    result = {name: value.item() for name, value in metrics.compute().items()}
    assert result == pytest.approx(
        {
            "test/acc": 4 / 7,  # Keras' accuracy: correct digits / all digits (macro would be 0.5417)
            "test/precision": sum(PRECISION) / 4,
            "test/recall": sum(RECALL) / 4,
            "test/f1": sum(F1) / 4,
        }
    )


def test_evaluation_metrics_per_class_macro_weighted_and_confusion_matrix(hand_made_predictions):
    logits, labels = hand_made_predictions
    metrics = evaluation_metrics(4)
    metrics.update(logits, labels)
    result = metrics.compute()
    for name, per_class in (("precision", PRECISION), ("recall", RECALL), ("f1", F1)):
        assert result[f"{name}_none"].tolist() == pytest.approx(per_class)
        assert result[f"{name}_macro"].item() == pytest.approx(sum(per_class) / 4)
        assert result[f"{name}_weighted"].item() == pytest.approx(weighted(per_class))
    assert result["accuracy"].item() == pytest.approx(4 / 7)
    expected = torch.zeros(4, 4, dtype=torch.long)
    for true, pred in zip(labels.tolist(), logits.argmax(1).tolist()):
        expected[true, pred] += 1
    assert torch.equal(result["confusion_matrix"].long(), expected)


def test_mistakes_keep_only_wrong_digits_most_confident_first():
    mistakes = ConfidentMistakes()
    images = torch.arange(5.0).view(5, 1, 1, 1).expand(5, 1, 28, 28)
    # Digits 1, 3 and 4 are wrong, with confidences rising in that order.
    logits = torch.tensor([[5.0, 0, 0], [0, 1, 0], [0, 0, 9], [0, 3, 0], [0, 0, 4]])
    labels = torch.tensor([0, 2, 2, 0, 1])
    mistakes.update(images[:3], logits[:3], labels[:3])  # two batches, as in a test loop
    mistakes.update(images[3:], logits[3:], labels[3:])
    result = mistakes.compute()
    assert result["images"][:, 0, 0, 0].tolist() == [4, 3, 1]
    assert result["targets"].tolist() == [1, 0, 2]
    assert result["preds"].tolist() == [2, 1, 1]
    assert (result["confidences"].diff() < 0).all()
    assert result["confidences"][0] == pytest.approx(torch.softmax(logits[4], 0).max().item())


def test_mistakes_of_a_perfect_model_are_empty():
    mistakes = ConfidentMistakes()
    mistakes.update(torch.zeros(2, 1, 28, 28), torch.eye(2), torch.tensor([0, 1]))
    assert all(len(values) == 0 for values in mistakes.compute().values())
