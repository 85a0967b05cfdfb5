import json
import re
import textwrap
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from helpers.checkpoints import MNIST, save_checkpoint

from mnist_lit.__main__ import main
from mnist_lit.data.sets import DATASETS
from mnist_lit.models.classifier import ImageClassifier
from mnist_lit.models.predictor import load_predictor

PREDICT_DOC = Path(__file__).resolve().parents[1] / "docs" / "predict.md"


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    """256 digit-like uint8 images: dark background, a light bar in a random place."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 40, (256, 1, 28, 28), dtype=np.uint8)
    for image, (row, column) in zip(images, rng.integers(4, 18, (256, 2))):
        image[0, row : row + 10, column : column + 4] = 255
    return images


def run_export(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit:
        main(["export", *map(str, args)])
    captured = capsys.readouterr()
    return exit.value.code, captured.out, captured.err


@pytest.fixture(params=["keras_cnn", "batchnorm_cnn", "lean_cnn"])
def any_checkpoint(request, tmp_path) -> Path:
    """An untrained checkpoint of each network (the batch-normalized one with non-trivial statistics)."""
    torch.manual_seed(0)
    model = ImageClassifier(net=request.param, hidden_units=32, dataset_info=MNIST)
    with torch.no_grad():  # a few training-mode passes, so that evaluation uses real running statistics
        for _ in range(3):
            model(torch.randn(16, 1, 28, 28))
    return save_checkpoint(tmp_path / f"{request.param}.ckpt", model.eval())


@pytest.mark.parametrize("format, suffix", [("onnx", ".onnx"), ("torchscript", ".pt")])
def test_export_matches_the_checkpoints_network(capsys, tmp_path, any_checkpoint, pixels, format, suffix):
    checkpoint = any_checkpoint
    output = tmp_path / "out" / f"digits{suffix}"
    code, out, _ = run_export(capsys, "--format", format, "--ckpt_path", checkpoint, "--output", output)
    assert code == 0 and str(output) in out
    # The model file and its sidecar, nothing else (no temporary or external-data files).
    assert sorted(p.name for p in output.parent.iterdir()) == sorted([output.name, "digits.json"])

    predictor = load_predictor(checkpoint)
    images = predictor.normalize(torch.from_numpy(pixels))
    with torch.inference_mode():
        expected = predictor.net(images).numpy()
    if format == "onnx":
        session = onnxruntime.InferenceSession(str(output))
        run = lambda batch: session.run(None, {"images": batch.numpy()})[0]  # noqa: E731
    else:
        loaded = torch.jit.load(str(output))
        run = lambda batch: loaded(batch).detach().numpy()  # noqa: E731
    for size in (256, 1):  # any batch size
        assert np.abs(run(images[:size]) - expected[:size]).max() < 1e-4

    info = json.loads((output.parent / "digits.json").read_text())
    mnist = DATASETS["mnist"]
    assert info["normalization"]["mean"] == list(mnist.mean) and info["normalization"]["std"] == list(mnist.std)
    assert info["labels"] == [str(d) for d in range(10)] and info["format"] == format and info["dataset"] == "mnist"
    assert info["checkpoint"] == str(checkpoint) and info["network"] == checkpoint.stem
    assert info["calibration"] is None  # a checkpoint without one: the logits alone


def test_the_documented_lines_run_the_onnx_file_without_mnist_lit(capsys, tmp_path, checkpoint, pixels, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_export(capsys, "--format", "onnx", "--ckpt_path", checkpoint)[0] == 0
    block = re.search(r"\n(    import numpy as np, onnxruntime\n(?:    .*\n){2})", PREDICT_DOC.read_text()).group(1)
    namespace = {"pixels": pixels}
    exec(textwrap.dedent(block), namespace)
    predictor = load_predictor(checkpoint)
    with torch.inference_mode():
        expected = predictor.net(predictor.normalize(torch.from_numpy(pixels))).numpy()
    assert np.abs(namespace["logits"] - expected).max() < 1e-4


def test_onnx_without_its_packages_says_what_to_install(capsys, tmp_path, checkpoint, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else find_spec(name, *a))
    code, _, err = run_export(capsys, "--format", "onnx", "--ckpt_path", checkpoint, "--output", tmp_path / "m.onnx")
    assert code == 1 and "pip install 'mnist-lit[onnx]'" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == [checkpoint]
