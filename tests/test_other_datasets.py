"""Real runs on Fashion-MNIST, and a checkpoint from before data sets were recorded, through the same commands."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.checkpoints import onnx_gap
from helpers.cli import run_cli
from PIL import Image, ImageOps
from torchvision.datasets import FashionMNIST

from mnist_lit.data.datamodule import has_files
from mnist_lit.data.sets import DATASETS
from mnist_lit.models.predictor import load_predictor

pytestmark = pytest.mark.slow
QUICK = Path(__file__).resolve().parents[1] / "configs" / "quick.yaml"
# Written by `fit` of mnist-lit 0.1.0 (a small network, one epoch: 92% validation accuracy),
# before checkpoints recorded their data set.
OLD_CHECKPOINT = Path(__file__).resolve().parent / "fixtures" / "v0.1.0_mnist.ckpt"
# Written by `fit --data.dataset fashion_mnist` of mnist-lit 0.2.0 (a small network, 200 steps: 77% test
# accuracy), which recorded one mean and std and no picture shape; its run's config.yaml beside it.
CHECKPOINT_0_2_0 = OLD_CHECKPOINT.parent / "v0.2.0_fashion_mnist.ckpt"
FASHION = DATASETS["fashion_mnist"]


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory, real_mnist) -> Path:
    """A one-epoch Fashion-MNIST run, then `test` with no data set option, in a user's directory."""
    if not has_files(real_mnist, FASHION):
        pytest.skip(f"no Fashion-MNIST under {real_mnist}")
    workdir = tmp_path_factory.mktemp("fashion")
    run_cli(workdir, real_mnist, "fit", "--config", str(QUICK), "--data.dataset", "fashion_mnist")
    (workdir / "test.out").write_text(run_cli(workdir, real_mnist, "test").stdout)
    return workdir


def test_fashion_test_uses_the_checkpoints_data_set_and_class_names(fashion_run):
    out = (fashion_run / "test.out").read_text()
    assert "Evaluated on fashion_mnist, test split (10,000 pictures)" in out
    assert re.search(r"Most confused \(true as predicted\): (Shirt|T-shirt/top|Pullover|Coat) as ", out)
    report = json.loads((fashion_run / "logs" / "version_0" / "report.json").read_text())
    assert report["classes"] == list(FASHION.classes) and list(report["per_class"]) == list(FASHION.classes)
    assert report["data"]["dataset"] == "fashion_mnist" and report["accuracy"] >= 0.8  # one epoch


def catalogue_photos(folder: Path, data_dir: Path, count: int) -> list[int]:
    """Test pictures as a shop shows them: dark on a white page, 8-12 times larger, with margins."""
    test_set = FashionMNIST(data_dir, train=False, download=False)
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(count):
        size = 28 * int(rng.integers(8, 13))
        item = ImageOps.invert(Image.fromarray(test_set.data[i].numpy())).resize((size, size), Image.Resampling.BICUBIC)
        page = Image.new("L", (size + 120, size + 80), 255)
        page.paste(item, (int(rng.integers(0, 120)), int(rng.integers(0, 80))))
        page.convert("RGB").save(folder / f"{i:03d}.jpg", quality=92)
    return test_set.targets[:count].tolist()


def test_predict_and_export_take_names_and_normalization_from_the_checkpoint(fashion_run, real_mnist):
    labels = catalogue_photos(fashion_run / "photos", real_mnist, count=200)
    result = run_cli(fashion_run, real_mnist, "predict", "photos", "--output", "predictions.csv", "--batch_size", "64")
    # The first test picture is a boot: named first, alone or as "Ankle boot or Sneaker?".
    assert re.match(r"photos/000\.jpg: (Ankle boot|Sneaker|Sandal)( or [\w ]+\?)? \(", result.stdout)
    assert len(result.stdout.splitlines()) == 200
    with (fashion_run / "predictions.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    # A refused photo has no class, only its closest one.
    classes = [int(row["class"] or row["closest_class"]) for row in rows]
    assert all(FASHION.classes[int(row["class"])] == row["label"] for row in rows if row["kind"] != "unknown")
    assert all(row["label"] == "" and FASHION.classes[int(row["closest_class"])] == row["closest_label"]
               for row in rows if row["kind"] == "unknown")
    accuracy = np.mean(np.array(classes) == np.array(labels))
    print(f"Fashion-MNIST round trip through catalogue-style photos: {accuracy:.1%}")
    assert accuracy >= 0.75

    run_cli(fashion_run, real_mnist, "export", "--format", "onnx")
    info = json.loads((fashion_run / "fashion_mnist_cnn.json").read_text())
    assert info["labels"] == list(FASHION.classes)
    assert (info["normalization"]["mean"], info["normalization"]["std"]) == (list(FASHION.mean), list(FASHION.std))
    best = next((fashion_run / "checkpoints" / "version_0").glob("epoch=*.ckpt"))
    pixels = FashionMNIST(real_mnist, train=False).data[:256].unsqueeze(1)
    assert onnx_gap(fashion_run / "fashion_mnist_cnn.onnx", best, pixels) < 1e-4


def test_a_checkpoint_from_before_data_sets_were_recorded_is_mnists(tmp_path, real_mnist):
    assert "dataset_info" not in torch.load(OLD_CHECKPOINT, weights_only=True)["hyper_parameters"]
    assert load_predictor(OLD_CHECKPOINT).dataset_info == DATASETS["mnist"]
    out = run_cli(tmp_path, real_mnist, "test", "--ckpt_path", str(OLD_CHECKPOINT)).stdout
    assert "Evaluated on mnist, test split (10,000 pictures)" in out
    (report_file,) = tmp_path.glob("logs/version_*/report.json")
    assert json.loads(report_file.read_text())["accuracy"] >= 0.9
    run_cli(tmp_path, real_mnist, "export", "--format", "torchscript", "--ckpt_path", str(OLD_CHECKPOINT))
    assert json.loads((tmp_path / "mnist_cnn.json").read_text())["labels"] == [str(d) for d in range(10)]


def test_a_checkpoint_of_0_2_0_tests_predicts_and_exports_as_fashion_mnist(tmp_path, real_mnist):
    if not has_files(real_mnist, FASHION):
        pytest.skip(f"no Fashion-MNIST under {real_mnist}")
    predictor = load_predictor(CHECKPOINT_0_2_0)
    assert predictor.dataset_info.classes == FASHION.classes and predictor.input_shape == (1, 28, 28)
    out = run_cli(tmp_path, real_mnist, "test", "--ckpt_path", str(CHECKPOINT_0_2_0)).stdout
    assert "Evaluated on fashion_mnist, test split (10,000 pictures)" in out
    (report_file,) = tmp_path.glob("logs/version_*/report.json")
    assert json.loads(report_file.read_text())["accuracy"] >= 0.7
    catalogue_photos(tmp_path / "photos", real_mnist, count=8)
    lines = run_cli(tmp_path, real_mnist, "predict", "--ckpt_path", str(CHECKPOINT_0_2_0), "photos").stdout.splitlines()
    assert len(lines) == 8 and all(any(name in line for name in FASHION.classes) for line in lines)
    run_cli(tmp_path, real_mnist, "export", "--format", "onnx", "--ckpt_path", str(CHECKPOINT_0_2_0))
    pixels = FashionMNIST(real_mnist, train=False).data[:64].unsqueeze(1)
    assert onnx_gap(tmp_path / "fashion_mnist_cnn.onnx", CHECKPOINT_0_2_0, pixels) < 1e-4
