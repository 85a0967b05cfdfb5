"""`python -m mnist_lit calibrate` on a checkpoint written before there was a calibration, with the real MNIST files."""

import json
import re
import shutil
from pathlib import Path

import pytest
from helpers.cli import run_cli, run_cli_process
from helpers.files import digit_picture

from mnist_lit.checkpoints.finding import read_checkpoint
from mnist_lit.models.predictor import load_predictor

pytestmark = pytest.mark.slow
OLD_CHECKPOINT = Path(__file__).resolve().parent / "fixtures" / "v0.1.0_mnist.ckpt"


def test_an_old_checkpoint_gains_a_calibration_that_predict_and_export_use(tmp_path, real_mnist):
    checkpoint = shutil.copy(OLD_CHECKPOINT, tmp_path / "old.ckpt")
    assert load_predictor(Path(checkpoint)).confidence is None
    out = run_cli(tmp_path, real_mnist, "calibrate", "--ckpt_path", "old.ckpt", "--accept", "0.9").stdout
    found = re.search(r"on 5,000 validation pictures: temperature ([\d.]+), energy threshold (-?[\d.]+) \(accepts ([\d.]+)%", out)
    assert found and 90 <= float(found.group(3)) <= 92, out
    saved = read_checkpoint(Path(checkpoint))
    assert saved["confidence"]["accept"] == 0.9 and saved["hyper_parameters"]["accept"] == 0.9
    old = read_checkpoint(OLD_CHECKPOINT)["state_dict"]
    assert all(saved["state_dict"][name].equal(value) for name, value in old.items())  # the weights untouched
    predictor = load_predictor(Path(checkpoint))
    assert round(predictor.confidence.temperature, 3) == float(found.group(1))
    # predict answers with it; the export's sidecar says how.
    digit_picture(tmp_path / "seven.png")
    run_cli(tmp_path, real_mnist, "predict", "seven.png", "--ckpt_path", "old.ckpt", "--output", "seven.json")
    [result] = json.loads((tmp_path / "seven.json").read_text())
    assert result["kind"] in ("class", "unsure", "unknown") and result["energy"] < 0
    run_cli(tmp_path, real_mnist, "export", "--format", "torchscript", "--ckpt_path", "old.ckpt", "--output", "old.pt")
    sidecar = json.loads((tmp_path / "old.json").read_text())["calibration"]
    assert sidecar["temperature"] == predictor.confidence.temperature and sidecar["energy_threshold"] == predictor.confidence.threshold


def test_a_share_out_of_range_is_one_line_and_leaves_the_checkpoint_as_it_was(tmp_path, real_mnist):
    checkpoint = shutil.copy(OLD_CHECKPOINT, tmp_path / "old.ckpt")
    before = Path(checkpoint).read_bytes()
    # In a process of its own: the exit status as the shell sees it.
    result = run_cli_process(tmp_path, real_mnist, "calibrate", "--ckpt_path", checkpoint, "--accept", "1.5", check=False)
    assert result.returncode == 1 and result.stderr.strip() == "error: --accept must be more than 0 and at most 1, got 1.5."
    assert Path(checkpoint).read_bytes() == before
