"""The session's trained model (conftest.trained_run: `fit` then `test` on the real MNIST files, as a user types
them) and what `predict` makes of digits and drawings in picture files."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers.cli import run_cli
from helpers.not_digits import drawing
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from mnist_lit.checkpoints.finding import read_checkpoint

pytestmark = pytest.mark.slow


@pytest.fixture
def workdir(trained_run) -> Path:
    """The folder of the trained run (read only)."""
    return trained_run.folder


@pytest.fixture
def fit_output(trained_run) -> str:
    return trained_run.fit_output


@pytest.fixture
def evaluation_output(trained_run) -> str:
    # `test` found the run's best checkpoint, with its non-default network size, on its own.
    return trained_run.test_output


@pytest.fixture
def user_folder(trained_run, tmp_path) -> Path:
    """A user's folder holding a copy of the trained run, for commands that write beside it."""
    return trained_run.copy_to(tmp_path / "user")


def test_short_training_really_learns(workdir, fit_output):
    run = workdir / "checkpoints" / "version_0"
    (best,) = [p for p in run.glob("*.ckpt") if p.name != "last.ckpt"]
    assert re.fullmatch(r"epoch=00-val_acc=0\.\d{4}\.ckpt", best.name)
    assert (run / "last.ckpt").is_file()
    states = read_checkpoint(run / "last.ckpt")["callbacks"].values()
    best_score = next(s["best_model_score"] for s in states if "best_model_score" in s)
    assert best_score >= 0.97


def test_the_model_summary_counts_the_network_s_flops(fit_output):
    # Lightning runs the model's example input (one digit) through it: about 5 M FLOPs here.
    assert re.search(r"Total FLOPs: [1-9][\d.]* M", fit_output)


def test_progress_is_one_line_per_epoch_in_a_log_file(fit_output):
    assert "\r" not in fit_output
    assert re.search(r"^Epoch 1/1: train/loss \d\.\d{4}, .*val/acc 0\.9\d{3} \(\d+\.\d s\)$", fit_output, re.M)


def test_test_in_a_fresh_process_evaluates_the_best_checkpoint(workdir, evaluation_output):
    assert "Evaluating checkpoints/version_0/epoch=00-val_acc=" in evaluation_output
    values = {name: float(value) for name, value in re.findall(r"(test/\w+)\s*│\s*([\d.]+)", evaluation_output)}
    assert set(values) == {"test/acc", "test/precision", "test/recall", "test/f1", "test/loss", "test/ece_before",
                           "test/ece_after", "test/coverage", "test/accuracy_accepted", "test/answered",
                           "test/accuracy_answered", "test/shifted_accuracy", "test/shifted_coverage",
                           "test/shifted_accuracy_accepted", "test/shifted_answered", "test/shifted_accuracy_answered"}
    assert values["test/acc"] >= 0.97
    # The checkpoint's own calibration: honest probabilities, and the pictures it accepts answered better.
    assert values["test/ece_after"] < 0.015  # probabilities that mean what they say
    assert values["test/coverage"] >= 0.93 and values["test/accuracy_accepted"] > values["test/acc"]
    # Those answered with one class are the accepted less the "unsure": fewer, and answered better still.
    assert values["test/answered"] < values["test/coverage"] and values["test/accuracy_answered"] > values["test/accuracy_accepted"]
    assert re.search(r"Calibration: expected calibration error [\d.]+% before, [\d.]+%\s+after", evaluation_output)
    assert "Evaluated on mnist, test split (10,000 pictures)" in evaluation_output
    assert "Confusion matrix" in evaluation_output


def read_events(log_dir: Path) -> tuple[EventAccumulator, set, set]:
    """The run's events, its hyperparameter names and the metric names of its HPARAMS entry."""
    events = EventAccumulator(str(log_dir), size_guidance={"images": 0})
    events.Reload()
    content = events.PluginTagToContent("hparams")
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    return events, set(hparams.session_start_info.hparams), {info.name.tag for info in experiment.metric_infos}


def test_test_reports_into_the_folder_of_the_run_it_evaluates(workdir, evaluation_output):
    run = workdir / "logs" / "version_0"
    assert [p.name for p in (workdir / "logs").iterdir()] == ["version_0"]  # no new run for `test`
    assert "Report written to logs/version_0: report.json, confusion_matrix.png, mistakes.png, reliability.png" in evaluation_output
    report = json.loads((run / "report.json").read_text())
    assert report["checkpoint"].startswith(str(workdir / "checkpoints" / "version_0" / "epoch=00-val_acc="))
    assert report["data"]["images"] == 10_000 and report["accuracy"] >= 0.97
    assert report["data"]["dataset"] == "mnist" and report["data"]["split"] == "test"
    assert report["classes"] == [str(digit) for digit in range(10)]
    assert sum(map(sum, report["confusion_matrix"])) == 10_000
    calibration = report["calibration"]
    assert calibration["calibrated"] and calibration["accept"] == 0.98 and calibration["temperature"] > 0
    # Probabilities that mean what they say (the temperature's own fit is tests/test_confidence.py's).
    assert calibration["ece_after"] < 0.015 and calibration["coverage"] >= 0.96
    assert f"{calibration['answered']:.2%} are answered with one class" in evaluation_output
    # The same digits in another style: the top class still mostly right, the share accepted reported beside it.
    shifted = calibration["shifted"]
    assert shifted["style"].startswith("down to 14 px") and 0.5 <= shifted["accuracy"] < report["accuracy"]
    assert 0 <= shifted["coverage"] <= 1 and f"top class right for {shifted['accuracy']:.2%}" in evaluation_output
    assert shifted["answered"] <= shifted["coverage"]
    assert "Most confused (true as predicted): " in evaluation_output
    # `test` saves its own configuration beside the one `fit` saved, not over it.
    assert "max_epochs: 1" in (run / "config.yaml").read_text()
    assert (run / "test_config.yaml").is_file()


def test_tensorboard_shows_training_testing_pictures_and_hyperparameters(workdir, evaluation_output):
    events, hparams, hparams_metrics = read_events(workdir / "logs" / "version_0")
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss_step", "train/loss_epoch", "train/acc", "val/loss", "val/acc", "lr-Adam"} <= scalars
    assert {"test/acc", "test/precision", "test/recall", "test/f1", "test/loss", "test/ece_after", "test/coverage",
            "test/answered", "test/accuracy_answered"} <= scalars
    assert {"test/shifted_accuracy", "test/shifted_coverage", "test/shifted_accuracy_accepted"} <= scalars
    assert {"lr", "lr_decay", "hidden_units", "batch_size"} <= hparams
    assert "_instantiator" not in hparams
    # The HPARAMS tab's columns: the final validation and test metrics, all logged as scalars.
    assert {"val/acc_best", "val/acc", "test/acc", "test/f1"} <= hparams_metrics <= scalars
    assert set(events.Tags()["images"]) == {"val/confusion_matrix", "test/confusion_matrix", "test/mistakes", "test/reliability"}
    (last_epoch,) = events.Images("val/confusion_matrix")  # one per epoch; quick.yaml trains one
    assert last_epoch.step == events.Scalars("val/acc")[-1].step
    for tag in ("test/confusion_matrix", "test/mistakes", "test/reliability"):
        (image,) = events.Images(tag)
        assert image.width >= 500 and image.height >= 200


def write_varied_digits(folder: Path, data_dir: Path, count: int) -> list[int]:
    """The first `count` test digits as picture files in the forms users have: upscaled x4 to
    x10, dark on light, off-centre on a larger sheet, PNG and JPEG. Returns their labels."""
    from PIL import Image, ImageOps
    from torchvision.datasets import MNIST

    test_set = MNIST(data_dir, train=False, download=False)
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(count):
        scale = int(rng.integers(4, 11))
        image = Image.fromarray(test_set.data[i].numpy()).resize((28 * scale, 28 * scale), Image.Resampling.BICUBIC)
        dark_on_light = i % 2 == 1
        if dark_on_light:
            image = ImageOps.invert(image)
        if i % 4 >= 2:  # pasted off-centre on a sheet twice as wide
            sheet = Image.new("L", (image.width * 2, image.height * 3 // 2), 255 if dark_on_light else 0)
            sheet.paste(image, (int(rng.integers(0, image.width)), int(rng.integers(0, image.height // 2))))
            image = sheet
        image.save(folder / f"{i:03d}.{'jpg' if i % 3 == 0 else 'png'}", quality=90)
    return test_set.targets[:count].tolist()


def test_predict_reads_digits_from_picture_files(user_folder, real_mnist):
    workdir = user_folder
    labels = write_varied_digits(workdir / "pictures", real_mnist, count=500)
    result = run_cli(workdir, real_mnist, "predict", "pictures", "--output", "predictions.json")
    predictions = json.loads((workdir / "predictions.json").read_text())
    assert [Path(p["path"]).name for p in predictions] == sorted(f.name for f in (workdir / "pictures").iterdir())
    # The top class, answered or not (a refusal names it only as the closest).
    accuracy = sum(p["top"][0]["class"] == label for p, label in zip(predictions, labels)) / len(labels)
    print(f"round-trip accuracy on 500 varied pictures: {accuracy:.1%}")
    assert accuracy >= 0.97
    # Digits of other forms than MNIST's own are mostly answered with a digit, not rejected.
    answered = [p for p in predictions if p["kind"] == "class"]
    assert len(answered) >= 0.85 * len(predictions)
    assert sum(p["class"] == label for p, label in zip(predictions, labels) if p["kind"] == "class") >= 0.99 * len(answered)
    # One line per picture on stdout: path, answer, top probability and the top three.
    lines = result.stdout.splitlines()
    assert len(lines) == 500
    top3 = r"\(\d+\.\d%; top 3: \d \d\.\d{3}, \d \d\.\d{3}, \d \d\.\d{3}\)"
    # A refusal names its closest class without a percentage, which would read as an answer.
    assert all(re.fullmatch(rf"pictures/\d{{3}}\.(jpg|png): ((\d|\d or \d\?) {top3}|doesn't look like a digit \(closest: \d\))", line)
               for line in lines)


def test_drawings_that_are_not_digits_are_said_not_to_look_like_one(user_folder, real_mnist):
    workdir = user_folder
    rng = np.random.default_rng(7)
    folder = workdir / "not_digits"
    folder.mkdir()
    for kind in ("scribble", "letter", "square"):
        for i in range(20):
            (folder / f"{kind}_{i:02d}.png").write_bytes(drawing(kind, rng))
    run_cli(workdir, real_mnist, "predict", "not_digits", "--output", "not_digits.json")
    predictions = json.loads((workdir / "not_digits.json").read_text())
    rejected = [p for p in predictions if p["answer"].startswith("doesn't look like a digit (closest: ")]
    assert all(p["kind"] == "unknown" and p["label"] is None and p["closest"]["label"] in p["answer"] for p in rejected)
    # After one epoch of a smaller network: nearly every scribble, and most of the rest (the default
    # `fit` rejects more: README, "Knowing when it does not know").
    assert sum("scribble" in p["path"] for p in rejected) >= 16 and len(rejected) >= 30
    assert all(p["energy"] is not None and len(p["top"]) == 3 for p in predictions)  # the numbers stay there
    run_cli(workdir, real_mnist, "predict", "not_digits", "--accept_all", "--output", "all.csv")
    rows = list(csv.DictReader((workdir / "all.csv").open()))
    assert len(rows) == 60 and all(row["kind"] in ("class", "unsure") for row in rows)
