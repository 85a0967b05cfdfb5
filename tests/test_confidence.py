"""Calibration, the threshold for pictures of no class, and the three answers (confidence.py), on synthetic logits."""

import pytest
import torch
from torchmetrics.functional.classification import multiclass_calibration_error

from mnist_lit.data.outliers import (
    HANDWRITING_KINDS,
    KINDS,
    THINGS,
    footwear,
    silhouette,
    synthetic_outliers,
)
from mnist_lit.models.confidence import (
    Confidence,
    answer,
    calibrate,
    energy,
    fit_temperature,
)
from mnist_lit.models.metrics import Coverage, ReliabilityBins

DIGITS = [str(digit) for digit in range(10)]


def overconfident(count: int, temperature: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits whose classes are drawn from softmax(logits / temperature): a network ``temperature`` times too sure."""
    generator = torch.Generator().manual_seed(seed)
    logits = 4 * torch.randn(count, 10, generator=generator)
    labels = torch.multinomial((logits / temperature).softmax(dim=1), 1, generator=generator).squeeze(1)
    return logits, labels


def test_the_fitted_temperature_is_the_one_the_answers_were_drawn_with():
    logits, labels = overconfident(20_000, temperature=2.0)
    assert fit_temperature(logits, labels) == pytest.approx(2.0, rel=0.05)
    # Dividing by it makes the probabilities honest: the calibration error falls.
    before = multiclass_calibration_error(logits.softmax(dim=1), labels, 10, n_bins=15)
    after = multiclass_calibration_error((logits / 2.0).softmax(dim=1), labels, 10, n_bins=15)
    assert after < before / 3


def test_the_temperature_is_fitted_under_inference_mode_as_validate_runs_it():
    logits, labels = overconfident(2_000, temperature=2.0)
    with torch.inference_mode():  # Lightning's `validate` runs the validation hooks so
        logits, labels = logits.clone(), labels.clone()  # inference tensors, as the hooks receive them
        temperature = fit_temperature(logits, labels)
    assert temperature == pytest.approx(fit_temperature(logits.clone(), labels.clone()))


def test_the_threshold_accepts_the_asked_share_of_the_validation_pictures_and_a_little_more():
    logits, labels = overconfident(5_000, temperature=1.0)
    confidence = calibrate(logits, labels, accept=0.9)
    accepted = confidence.accepted(logits).float().mean().item()
    assert 0.9 < accepted < 0.9 + 3 * (0.9 * 0.1 / 5_000) ** 0.5
    # On new pictures of the same kind, at least the asked share is accepted.
    new, _ = overconfident(20_000, temperature=1.0, seed=1)
    assert confidence.accepted(new).float().mean().item() >= 0.9
    assert Confidence.from_record(confidence.record()) == confidence and Confidence.from_record(None) is None


def test_energy_is_low_when_one_class_stands_out():
    assert energy(torch.tensor([[12.0, 0, 0], [1.0, 1, 1]])).tolist() == pytest.approx([-12.0, -1 - torch.log(torch.tensor(3.0)).item()], abs=1e-4)


@pytest.mark.parametrize("logits, pictures, classes, kind, text", [
    ([9.0, 0, 0], "handwriting", ["0", "1", "2"], "class", "0"),
    ([5.0, 4.9, 0], "handwriting", ["4", "9", "1"], "unsure", "4 or 9?"),
    ([0.1, 0, 0], "handwriting", ["0", "1", "2"], "unknown", "doesn't look like a digit (closest: 0)"),
    ([0.1, 0, 0], "handwriting", ["a", "b", "c"], "unknown", "doesn't look like a character (closest: a)"),  # EMNIST letters
    ([0.1, 0, 0], "clothing", ["Shirt", "Coat", "Bag"], "unknown", "doesn't look like clothing (closest: Shirt)"),
    ([0.1, 0, 0], "photos", ["circle", "square", "triangle"], "unknown", "doesn't look like any of: circle, square, triangle (closest: circle)"),
])
def test_each_answer_says_which_of_the_three_it_is(logits, pictures, classes, kind, text):
    confidence = Confidence(temperature=1.0, threshold=-3.0, accept=0.95)
    logits = torch.tensor(logits)
    said = answer(confidence.probabilities(logits[None])[0], logits, classes, confidence, pictures)
    assert (said.kind, said.text) == (kind, text)
    assert said.energy == pytest.approx(energy(logits[None]).item())


def test_accept_all_or_a_checkpoint_without_calibration_never_rejects():
    logits = torch.tensor([0.1, 0, 0])
    probabilities = logits.softmax(dim=0)
    calibrated = Confidence(temperature=1.0, threshold=-3.0, accept=0.95)
    assert answer(probabilities, logits, DIGITS[:3], calibrated, "handwriting", accept_all=True).kind == "unsure"
    assert answer(probabilities, logits, DIGITS[:3], None, "handwriting").kind == "unsure"


def test_reliability_bins_give_torchmetrics_calibration_error_and_honest_bins():
    probabilities = (3 * torch.randn(2_000, 10)).softmax(dim=1)
    labels = torch.randint(0, 10, (2_000,))
    bins = ReliabilityBins()
    bins.update(probabilities[:700], labels[:700])
    bins.update(probabilities[700:], labels[700:])  # counts add up across batches
    result = bins.compute()
    expected = multiclass_calibration_error(probabilities, labels, 10, n_bins=15, norm="l1")
    assert result["ece"].item() == pytest.approx(expected.item(), abs=1e-6)
    assert result["count"].sum() == 2_000
    used = result["count"] > 0
    low, high = torch.arange(15) / 15, torch.arange(1, 16) / 15
    assert ((result["confidence"] > low) & (result["confidence"] <= high))[used].all()  # each bin's mean inside it


def test_coverage_is_the_accepted_share_and_the_accuracy_on_them():
    coverage = Coverage()
    coverage.update(torch.tensor([True, True, False, True]), torch.tensor([True, False, False, True]))
    result = coverage.compute()
    assert result["coverage"].item() == pytest.approx(0.75) and result["accuracy_accepted"].item() == pytest.approx(2 / 3)
    assert result["answered"].item() == pytest.approx(0.75)  # nothing said to be unsure: every accepted one is answered
    coverage.update(torch.tensor([True, True]), torch.tensor([False, True]), answered=torch.tensor([False, True]))
    result = coverage.compute()
    assert result["coverage"].item() == pytest.approx(5 / 6) and result["answered"].item() == pytest.approx(4 / 6)
    assert result["accuracy_answered"].item() == pytest.approx(3 / 4)


def test_answered_are_the_accepted_that_are_not_unsure_as_the_words_say():
    calibrated = Confidence(temperature=1.0, threshold=-3.0, accept=0.98)
    logits = torch.tensor([[9.0, 0, 0], [5.0, 4.9, 0], [0.1, 0, 0], [9.0, 7.0, 0]])
    texts = [answer(calibrated.probabilities(row[None])[0], row, DIGITS[:3], calibrated, "handwriting") for row in logits]
    assert calibrated.answered(logits).tolist() == [text.kind == "class" for text in texts]
    assert [text.kind for text in texts] == ["class", "unsure", "unknown", "class"]


def test_synthetic_outliers_are_seeded_pictures_of_the_asked_shape():
    first = synthetic_outliers(40, 28, 1, seed=3)
    assert first.shape == (40, 1, 28, 28) and first.dtype == torch.uint8
    assert torch.equal(first, synthetic_outliers(40, 28, 1, seed=3))
    colour = synthetic_outliers(8, 32, 3, seed=3)
    assert colour.shape == (8, 3, 32, 32)
    # Light on a black ground, like the handwriting sets' pictures: mostly dark, some ink, every kind drawn.
    drawn = first[[i for i in range(40) if KINDS[i % len(KINDS)].__name__ != "noise"]].float()
    assert ((drawn == 0).float().mean(dim=(1, 2, 3)) > 0.3).all() and (drawn.amax(dim=(1, 2, 3)) > 60).all()


def test_a_handwriting_model_also_learns_things_and_sees_half_of_them_as_predict_reads_a_file():
    rounds = 2 * len(HANDWRITING_KINDS)
    drawn = synthetic_outliers(rounds, 28, 1, seed=5, handwriting=True)
    kinds = [HANDWRITING_KINDS[i % len(HANDWRITING_KINDS)] for i in range(rounds)]
    assert {silhouette, footwear} <= set(kinds)
    for i, kind in enumerate(kinds):
        if kind not in THINGS:
            continue
        ink = drawn[i, 0] > 0
        rows, columns = ink.any(dim=1).nonzero(), ink.any(dim=0).nonzero()
        side = max(int(rows.max() - rows.min()) + 1, int(columns.max() - columns.min()) + 1)
        as_file = i < len(HANDWRITING_KINDS)  # the first round of things is read as a file, the next is not
        if as_file:  # predict fits a picture's ink into MNIST's 20-pixel box and stretches it to full brightness
            assert side == 20 and int(drawn[i].max()) == 255, (kind.__name__, side)
        elif kind is footwear:  # drawn as wide as the frame
            assert side > 20
    # A clothing model's outliers are the old kinds alone: garments and shoes are its own pictures.
    assert torch.equal(synthetic_outliers(rounds, 28, 1, seed=5), synthetic_outliers(rounds, 28, 1, seed=5, handwriting=False))
    assert set(KINDS).isdisjoint({silhouette, footwear})
