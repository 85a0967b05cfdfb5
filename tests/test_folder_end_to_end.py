"""A folder of one's own colour pictures through every command: fit, test, predict, export and serve."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
import torch
from helpers.checkpoints import onnx_gap
from helpers.cli import run_cli
from helpers.picture_sets import SHAPES, shape_picture, write_folder, write_split_folder
from helpers.server_process import running_server

from mnist_lit.models.predictor import load_predictor

pytestmark = pytest.mark.slow
FOLDER_RECIPE = Path(__file__).resolve().parents[1] / "configs" / "folder.yaml"


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory, real_mnist) -> Path:
    """`fit --config configs/folder.yaml` (shortened) on 600 shapes in 13 formats and modes (and two traps), then `test`."""
    workdir = tmp_path_factory.mktemp("shapes")
    write_split_folder(workdir / "shapes", train=200, test=60)
    # The recipe's schedule shortened to 30 epochs: its 80 are for sets slower to learn than three shapes.
    shorter = ("--trainer.max_epochs", "30", "--lr_scheduler.T_max", "30")
    fit = run_cli(workdir, real_mnist, "fit", "--config", str(FOLDER_RECIPE), *shorter, "--data.dataset", "shapes")
    (workdir / "fit.out").write_text(fit.stdout + fit.stderr)
    (workdir / "test.out").write_text(run_cli(workdir, real_mnist, "test").stdout)
    return workdir


def test_fit_reports_its_choices_and_the_pictures_it_skipped(shapes_run):
    out = (shapes_run / "fit.out").read_text()
    assert re.search(r"skipped 2 file\(s\) that are not readable pictures: .*damaged\.png.*notes\.txt", out)
    # 600 readable pictures less the stratified 10% for validation; the median side (about 70) capped at 64.
    assert "shapes: part folders train/ + test/\n  training: the folder train/, 540 pictures\n" in out
    assert "  validation: 10% of each class of the training pictures held out at fit (seed 1234), 60 pictures\n" in out
    assert "  `test`: the folder test/, 180 pictures\n" in out
    assert "  64x64, 3 channels (--data.image_size and --data.channels chosen from the training pictures)" in out


def test_it_learns_the_shapes_and_tests_on_the_folders_test_part(shapes_run):
    out = (shapes_run / "test.out").read_text()
    assert "Evaluated on shapes, the folder test/ (180 pictures)" in out
    report = json.loads(next((shapes_run / "logs").glob("version_*/report.json")).read_text())
    print(f"shapes test accuracy: {report['accuracy']:.2%}")
    assert report["classes"] == sorted(SHAPES) and report["accuracy"] >= 0.95


def test_predict_export_and_serve_read_outside_pictures_as_the_sets_own(shapes_run, real_mnist, tmp_path):
    rng = np.random.default_rng(7)
    pictures = tmp_path / "new"
    pictures.mkdir()
    truth = {}
    for n in range(30):
        shape = SHAPES[n % 3]
        path = pictures / f"{n:02d}.{'JPG' if n % 2 else 'png'}"
        shape_picture(shape, rng).save(path)
        truth[path.name] = shape
    lines = run_cli(shapes_run, real_mnist, "predict", str(pictures)).stdout.splitlines()
    right = sum(truth[Path(line.split(":")[0]).name] == line.split(": ")[1].split(" ")[0] for line in lines)
    assert len(lines) == 30 and right >= 27

    run_cli(shapes_run, real_mnist, "export", "--format", "onnx", "--output", "shapes.onnx")
    info = json.loads((shapes_run / "shapes.json").read_text())
    assert info["input"]["shape"] == ["batch", 3, 64, 64] and info["labels"] == sorted(SHAPES)
    assert len(info["normalization"]["mean"]) == 3
    checkpoint = next((shapes_run / "checkpoints" / "version_0").glob("epoch=*.ckpt"))
    predictor = load_predictor(checkpoint)
    pixels = torch.stack([predictor.pixels(path) for path in sorted(pictures.iterdir())])
    assert onnx_gap(shapes_run / "shapes.onnx", checkpoint, pixels) < 1e-4

    with running_server(checkpoint) as url:
        info = requests.get(f"{url}/info").json()["model"]
        answer = requests.post(f"{url}/predict", data=(pictures / "00.png").read_bytes()).json()
    assert info["pictures"] == "photos" and info["input_shape"] == [3, 64, 64]
    assert answer["label"] == truth["00.png"] and np.array(answer["input"]).shape == (3, 64, 64)


def test_test_takes_another_folder_with_the_same_classes_and_refuses_other_classes(shapes_run, real_mnist):
    other = write_folder(shapes_run / "more", per_class=10, seed=11)
    out = run_cli(shapes_run, real_mnist, "test", "--data.dataset", str(other)).stdout
    assert "Evaluated on more, every picture of more (another set than the one trained on) (30 pictures)" in out
    write_folder(shapes_run / "other", per_class=3, shapes=("circle", "star"))
    result = subprocess.run(
        [sys.executable, "-m", "mnist_lit", "test", "--data.dataset", "other"], cwd=shapes_run, capture_output=True, text=True
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1 and len(errors) == 1 and "Traceback" not in result.stderr
    assert "other has classes the model did not learn ('star'); the model knows circle, square, triangle" in errors[0]
