"""Two-process training and testing with Lightning's DDP on the CPU (gloo), on the real MNIST files."""

import json
from pathlib import Path

import pytest

from conftest import run_cli
from mnist_lit.checkpoint_files import read_checkpoint

pytestmark = pytest.mark.e2e
TWO_PROCESSES = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, real_mnist) -> Path:
    run = tmp_path_factory.mktemp("ddp")
    run_cli(run, real_mnist, "fit", *TWO_PROCESSES, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "150")
    return run


def test_two_processes_train_and_write_each_checkpoint_once(ddp_run):
    assert [p.name for p in (ddp_run / "logs").iterdir()] == ["version_0"]
    checkpoints = sorted(p.name for p in (ddp_run / "checkpoints" / "version_0").iterdir())
    assert len(checkpoints) == 2 and checkpoints[-1] == "last.ckpt", checkpoints
    state = read_checkpoint(ddp_run / "checkpoints" / "version_0" / "last.ckpt")
    # 150 steps per process, each on its own half of every batch of digits.
    assert state["global_step"] == 150
    score = next(s["best_model_score"] for s in state["callbacks"].values() if "best_model_score" in s)
    assert score >= 0.95


def evaluate(cwd: Path, data_dir: Path, checkpoint: str, *options: str) -> dict:
    run_cli(cwd, data_dir, "test", "--ckpt_path", checkpoint, *options)
    return json.loads((cwd / "logs" / "version_0" / "report.json").read_text())


@pytest.fixture(scope="module")
def one_process_report(ddp_run, real_mnist, tmp_path_factory) -> dict:
    return evaluate(tmp_path_factory.mktemp("one"), real_mnist, str(ddp_run / "checkpoints" / "version_0" / "last.ckpt"))


@pytest.mark.parametrize("processes", [2, 3])
def test_multi_process_test_metrics_equal_the_single_process_ones(ddp_run, real_mnist, tmp_path, one_process_report, processes):
    checkpoint = str(ddp_run / "checkpoints" / "version_0" / "last.ckpt")
    several = [*TWO_PROCESSES[:2], "--trainer.devices", str(processes), *TWO_PROCESSES[4:]]
    report = evaluate(tmp_path, real_mnist, checkpoint, *several)
    # Every test digit counted exactly once. 10,000 digits do not split evenly in three: a
    # sampler that padded them would count two digits twice; unsynced metrics would count a third.
    assert sum(map(sum, report["confusion_matrix"])) == 10_000
    for key in ("accuracy", "per_class", "macro_avg", "weighted_avg", "confusion_matrix"):
        assert report[key] == one_process_report[key], key
