"""The second network on the real MNIST files: it learns, and its checkpoint goes through test, predict and export."""

import json
import re
from pathlib import Path

import pytest
from helpers.checkpoints import onnx_gap
from helpers.cli import run_cli
from helpers.files import digit_picture
from torchvision.datasets import MNIST

from mnist_lit.checkpoints.finding import read_checkpoint

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory, real_mnist) -> Path:
    workdir = tmp_path_factory.mktemp("batchnorm")
    run_cli(
        workdir, real_mnist, "fit", "--model.net", "batchnorm_cnn", "--trainer.max_epochs", "1",
        "--trainer.limit_train_batches", "100", "--data.augment_degrees", "10",
    )
    (workdir / "test.out").write_text(run_cli(workdir, real_mnist, "test").stdout)
    return workdir


def test_a_short_run_of_the_batchnorm_network_learns(run):
    (best,) = (run / "checkpoints" / "version_0").glob("epoch=*.ckpt")
    checkpoint = read_checkpoint(best)
    assert checkpoint["hyper_parameters"]["net"] == "batchnorm_cnn"
    assert float(re.search(r"val_acc=(0\.\d+)", best.name).group(1)) >= 0.9  # 100 steps; chance is 0.1
    report = json.loads((run / "logs" / "version_0" / "report.json").read_text())
    assert report["accuracy"] >= 0.9 and report["data"]["images"] == 10_000


def test_its_checkpoint_predicts_and_exports_with_the_same_numbers(run, real_mnist):
    out = run_cli(run, real_mnist, "predict", str(digit_picture(run / "seven.png"))).stdout
    assert re.fullmatch(r".*seven\.png: 7 \(.*\)\n", out)
    run_cli(run, real_mnist, "export", "--format", "onnx")
    assert json.loads((run / "mnist_cnn.json").read_text())["network"] == "batchnorm_cnn"
    best = next((run / "checkpoints" / "version_0").glob("epoch=*.ckpt"))
    assert onnx_gap(run / "mnist_cnn.onnx", best, MNIST(real_mnist, train=False).data[:256].unsqueeze(1)) < 1e-4
