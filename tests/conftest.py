import os
import struct
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from mnist_lit.data import DATA_DIR_ENV, ImageDataModule, has_files
from mnist_lit.datasets import DATASETS
from mnist_lit.errors import UserError
from mnist_lit.model import ImageClassifier
from mnist_lit.sources import CACHE_DIR_ENV

REPO = Path(__file__).resolve().parents[1]
MNIST = DATASETS["mnist"].record()  # for models built without a data module
# Where the real MNIST files are looked for when $MNIST_LIT_DATA_DIR is not set: an offline copy
# next to the repository, then data/, where `fit` run from the repository root downloads them.
CANDIDATE_DATA_DIRS = (REPO.parent / "shared" / "mnist", REPO / "data")


def write_idx(path: Path, array: np.ndarray, int32: bool = False) -> None:
    """Write an array in the IDX format of the MNIST files: uint8, or big-endian int32 (QMNIST's labels)."""
    header = struct.pack(">HBB", 0, 0x0C if int32 else 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(">i4" if int32 else np.uint8).tobytes())


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
    os.environ[CACHE_DIR_ENV] = str(folder)  # subprocesses (run_cli) inherit it
    return folder


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


def run_cli(cwd: Path, data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m mnist_lit ARGS`` in its own process in ``cwd``, as a user types it; it must succeed."""
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MNIST_LIT_DATA_DIR": str(data_dir.resolve())}
    result = subprocess.run(
        [sys.executable, "-m", "mnist_lit", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def digit_picture(path: Path) -> Path:
    """A dark 7 on white paper, as a picture file."""
    image = Image.new("L", (120, 160), 255)
    ImageDraw.Draw(image).line([(30, 20), (90, 20), (50, 140)], fill=0, width=12)
    image.save(path)
    return path


def save_checkpoint(path: Path, model: L.LightningModule) -> Path:
    """``model`` saved as Lightning saves checkpoints, without training it."""
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(path)
    return path


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """An untrained ImageClassifier's checkpoint, for tests about files and messages, not accuracy."""
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "model.ckpt", ImageClassifier(hidden_units=32, dataset_info=MNIST))


def onnx_gap(onnx_file: Path, checkpoint: Path, pixels: torch.Tensor) -> float:
    """The largest difference between the logits of an exported ONNX file and of the checkpoint's
    network, on (N, channels, size, size) uint8 pixels normalized as the checkpoint says."""
    import onnxruntime

    from mnist_lit.inference import load_predictor

    predictor = load_predictor(checkpoint)
    images = predictor.normalize(pixels)
    session = onnxruntime.InferenceSession(str(onnx_file))
    with torch.inference_mode():
        return float(np.abs(session.run(None, {"images": images.numpy()})[0] - predictor.net(images).numpy()).max())
