"""Fixtures shared by the test modules; the helpers they use are modules of tests/helpers/."""

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from filelock import FileLock
from helpers.checkpoints import untrained_checkpoint
from helpers.cli import REPO, lightning_levels_kept, run_cli, run_cli_process
from helpers.files import write_idx
from mnist_lit.sources import CACHE_DIR_ENV

from mnist_lit.core.errors import UserError
from mnist_lit.core.hardware import usable_cores
from mnist_lit.data.datamodule import DATA_DIR_ENV, ImageDataModule, has_files

# Where the real MNIST files are looked for when $MNIST_LIT_DATA_DIR is not set: an offline copy
# next to the repository, then data/, where `fit` run from the repository root downloads them.
CANDIDATE_DATA_DIRS = (REPO.parent / "shared" / "mnist", REPO / "data")
QUICK = REPO / "configs" / "quick.yaml"
# pytest-xdist's worker name (gw0, gw1 ...) in its workers, None without it.
WORKER = os.environ.get("PYTEST_XDIST_WORKER")

if WORKER:
    # The workers share the machine's cores, each with its own share for its training and for the processes it
    # starts: more threads than cores, and OpenMP's spinning threads slow every process down several times.
    THREADS = max(1, usable_cores() // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    torch.set_num_threads(THREADS)
    os.environ["OMP_NUM_THREADS"] = str(THREADS)


@pytest.fixture
def tiny_mnist(tmp_path: Path) -> Path:
    """A data dir in torchvision's layout holding 100 training and 30 test random 'digits'."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 100), ("t10k", 30)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    return tmp_path


@pytest.fixture
def hand_made_predictions() -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, labels) of seven digits of four classes, small enough to check by hand.

    Classes have 3, 2, 1 and 1 digits, so macro and weighted averages differ, and class 3 is
    never predicted, so its precision divides by zero.
    """
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 3])
    preds = torch.tensor([0, 0, 1, 1, 2, 2, 0])
    return torch.nn.functional.one_hot(preds, 4).float(), labels


@pytest.fixture(autouse=True, scope="session")
def own_cache_dir(tmp_path_factory) -> Path:
    """Decoded folder sets are cached in a folder of the test session's, not the user's cache."""
    folder = tmp_path_factory.mktemp("cache")
    os.environ[CACHE_DIR_ENV] = str(folder)  # the processes the tests start (run_cli_process) inherit it
    return folder


@pytest.fixture(autouse=True)
def lightning_log_levels() -> None:
    """Each test leaves Lightning's log levels as it found them: `tune`'s functions, called in this process,
    quiet Lightning for good, and a later in-process `fit` would not print what a fresh process prints."""
    with lightning_levels_kept():
        yield


@pytest.fixture(autouse=True)
def no_pytest_argv(monkeypatch):
    # LightningCLI warns when it sees both `args` and command-line arguments (pytest's own).
    monkeypatch.setattr(sys, "argv", ["mnist-lit"])


@pytest.fixture(scope="session")
def real_mnist() -> Path:
    """The folder holding MNIST/raw/ with the four real files, downloaded into data/ if need be.

    A folder named by $MNIST_LIT_DATA_DIR is used as it is and never downloaded into (CI points
    it at an offline copy). Otherwise the candidates above are searched, and when neither has the
    files they are downloaded into data/ the way `fit` does it, with its one-line message offline.
    """
    env = os.environ.get(DATA_DIR_ENV)
    candidates = (Path(env),) if env else CANDIDATE_DATA_DIRS
    for data_dir in candidates:
        if has_files(data_dir):
            return data_dir
    if env:
        pytest.fail(f"{DATA_DIR_ENV}={env} does not hold the four MNIST files under MNIST/raw/.", pytrace=False)
    try:
        ImageDataModule(data_dir=str(candidates[-1])).prepare_data()
        return candidates[-1]
    except UserError as error:
        message = str(error)
    pytest.fail(message, pytrace=False)  # outside the except block: one message, not two chained


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """An untrained ImageClassifier's checkpoint, for tests about files and messages, not accuracy."""
    return untrained_checkpoint(tmp_path / "model.ckpt")


@dataclass(frozen=True)
class TrainedRun:
    """A finished `fit` and `test` on the real MNIST files, in a user's folder of its own."""

    folder: Path  # holds checkpoints/version_0/ and logs/version_0/
    fit_output: str
    test_output: str

    @property
    def last(self) -> Path:
        return self.folder / "checkpoints" / "version_0" / "last.ckpt"

    @property
    def best(self) -> Path:
        (best,) = (self.folder / "checkpoints" / "version_0").glob("epoch=*.ckpt")
        return best

    def copy_to(self, folder: Path) -> Path:
        """The run's checkpoints/ and logs/ copied into ``folder``, for a test that adds to them."""
        for part in ("checkpoints", "logs"):
            shutil.copytree(self.folder / part, folder / part)
        return folder


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, real_mnist) -> TrainedRun:
    """The one model the session trains for every test that needs a trained checkpoint: one epoch of
    configs/quick.yaml with a non-default size (commands must read it back from the checkpoint), then
    `test` on it in a process of its own, as a user runs it after `fit`. Tests read this folder and never
    write into it; ``copy_to`` gives one to write in. The workers of `pytest -n` share it: the first
    trains it, under a lock the others wait on."""
    shared = tmp_path_factory.getbasetemp()
    if WORKER:  # every worker's basetemp is a folder of the session's own
        shared = shared.parent
    folder, outputs = shared / "trained", shared / "trained.json"
    with FileLock(shared / "trained.lock"):
        if not outputs.exists():
            fit = run_cli(folder, real_mnist, "fit", "--config", str(QUICK), "--model.hidden_units", "128")
            test = run_cli_process(folder, real_mnist, "test")
            outputs.write_text(json.dumps({"fit": fit.stdout, "test": test.stdout}))
    printed = json.loads(outputs.read_text())
    return TrainedRun(folder, printed["fit"], printed["test"])


# What needs the real MNIST files, a trained model, a server, a browser or another process is slow:
# `python -m pytest -m "not slow"` must run without any of them.
SLOW_FIXTURES = {"real_mnist", "trained_run"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unmarked = [item.nodeid for item in items if SLOW_FIXTURES & set(item.fixturenames) and not item.get_closest_marker("slow")]
    if unmarked:
        raise pytest.UsageError(f"tests that read the real data files must be marked slow: {', '.join(unmarked)}")
    # The files with slow tests first, each file's tests kept together: the workers hand out whole files in this
    # order, so the quick files fill the end of the run instead of one worker finishing a slow file alone.
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)
