"""The same seed on the same machine gives the same run, on the real MNIST files."""

from pathlib import Path

import pytest
import torch
from helpers.cli import run_cli
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mnist_lit.checkpoints.finding import read_checkpoint

pytestmark = pytest.mark.slow
SHORT = ["--trainer.max_epochs", "2", "--trainer.limit_train_batches", "40", "--trainer.log_every_n_steps", "10"]


def short_fit(cwd: Path, data_dir: Path, *args: str) -> tuple[dict, dict, list[int]]:
    """The run's logged scalars {tag: [(step, value), ...]}, its last checkpoint's weights and the steps
    of its validation confusion matrices."""
    run_cli(cwd, data_dir, "fit", *SHORT, *args)
    events = EventAccumulator(str(cwd / "logs" / "version_0"))
    events.Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    pictures = [image.step for image in events.Images("val/confusion_matrix")]
    return scalars, read_checkpoint(cwd / "checkpoints" / "version_0" / "last.ckpt")["state_dict"], pictures


def test_two_runs_with_the_same_seed_are_identical(tmp_path, real_mnist):
    first_scalars, first_weights, pictures = short_fit(tmp_path / "first", real_mnist)
    second_scalars, second_weights, _ = short_fit(tmp_path / "second", real_mnist)
    assert {"train/loss_step", "train/acc", "val/loss", "val/acc"} <= set(first_scalars)
    # Each epoch's confusion matrix (drawn while the next epoch trains) is in the log, on its epoch's step.
    assert pictures == [step for step, _ in first_scalars["val/acc"]] and len(pictures) == 2
    assert second_scalars == first_scalars  # every logged value, bit for bit
    assert all(torch.equal(first_weights[name], second_weights[name]) for name in first_weights)

    other_seed, _, _ = short_fit(tmp_path / "other", real_mnist, "--seed_everything", "7")
    assert other_seed["val/loss"] != first_scalars["val/loss"]  # the seed does decide the run
