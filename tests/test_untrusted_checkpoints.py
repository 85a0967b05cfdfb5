"""Checkpoints from strangers: every command refuses a crafted file in one line, and runs nothing from it.

Crafted files: hyperparameters naming an `_instantiator` and a `_class_path` (which
load_from_checkpoint imported and called before lightning 2.6.6), a pickled object whose unpickling
calls a function, a zip member whose header claims gigabytes, a timm network named by a hub address
and an optimizer outside torch.optim. The function they name writes
a marker file (tests/helpers/payload.py); it must never appear.
"""

import re
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from helpers.checkpoints import untrained_checkpoint
from helpers.cli import REPO
from helpers.files import digit_picture
from helpers.payload import Evil

from mnist_lit.__main__ import main
from mnist_lit.models.classifier import ImageClassifier

COMMANDS = {  # name: arguments after the checkpoint's path
    "fit --ckpt_path": ["fit", "--trainer.max_epochs", "1", "--data.val_size", "20", "--data.batch_size", "16", "--ckpt_path"],
    "validate": ["validate", "--ckpt_path"],
    "test": ["test", "--ckpt_path"],
    "predict": ["predict", "{picture}", "--ckpt_path"],
    "export": ["export", "--format", "torchscript", "--ckpt_path"],
    "calibrate": ["calibrate", "--ckpt_path"],
    "serve": ["serve", "--ckpt_path"],  # started in a process of its own
}


def instantiator(good: Path, path: Path) -> Path:
    checkpoint = torch.load(good, weights_only=True)
    for key in ("hyper_parameters", "datamodule_hyper_parameters"):
        checkpoint.setdefault(key, {}).update({"_instantiator": "helpers.payload.ran", "_class_path": "helpers.payload.Evil"})
    torch.save(checkpoint, path)
    return path


def pickled(good: Path, path: Path) -> Path:
    checkpoint = torch.load(good, weights_only=True)
    checkpoint["hyper_parameters"]["note"] = Evil()
    torch.save(checkpoint, path)
    return path


def huge_member(good: Path, path: Path) -> Path:
    """The checkpoint with the first tensor's member declared 3 GiB long in the zip's central directory."""
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as archive:
        member = next(m for m in archive.infolist() if "/data/" in m.filename)
    # Find this member's central directory record by its name, and set its uncompressed size (offset 24).
    name = member.filename.encode()
    entry = data.find(b"PK\x01\x02")
    while data[entry + 46:entry + 46 + len(name)] != name:
        entry = data.find(b"PK\x01\x02", entry + 4)
    data[entry + 24:entry + 28] = struct.pack("<I", 3 * 2**30)
    path.write_bytes(bytes(data))
    return path


def hub_network(good: Path, path: Path) -> Path:
    """A timm network named by a hub address, which timm.create_model would download and build."""
    checkpoint = torch.load(good, weights_only=True)
    checkpoint["hyper_parameters"]["net"] = "timm/hf-hub:someone/evil"
    torch.save(checkpoint, path)
    return path


def optimizer_elsewhere(good: Path, path: Path) -> Path:
    """An optimizer by a class path outside torch.optim, which resuming would import and build."""
    checkpoint = torch.load(good, weights_only=True)
    checkpoint["hyper_parameters"]["optimizer"] = {"class_path": "helpers.payload.Evil", "init_args": {}}
    torch.save(checkpoint, path)
    return path


CRAFTED = {"_instantiator": instantiator, "pickled object": pickled, "huge zip member": huge_member,
           "timm hub name": hub_network, "optimizer of elsewhere": optimizer_elsewhere}
EXPECTED = {  # what each command's one line says
    "_instantiator": r"names code to build its model or data with \(_instantiator 'helpers.payload.ran'\)",
    "pickled object": r"holds pickled Python objects \(helpers.payload.ran\)",
    "huge zip member": r"holds a member .* of 3.0 GiB, more than a checkpoint of mnist-lit could",
    "timm hub name": r"timm has no model 'hf-hub:someone/evil'",
    "optimizer of elsewhere": r"names code to train its model with \('helpers.payload.Evil', not a class of torch.optim\)",
}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("untrusted")
    good = untrained_checkpoint(folder / "good.ckpt")
    return {name: craft(good, folder / f"{name.replace(' ', '_')}.ckpt") for name, craft in CRAFTED.items()}


@pytest.mark.parametrize("crafted", CRAFTED)
@pytest.mark.parametrize("command", [name for name in COMMANDS if name != "serve"])
def test_no_command_runs_what_a_checkpoint_names(command, crafted, files, tmp_path, tiny_mnist, monkeypatch, capsys):
    marker = tmp_path / "ran.txt"
    monkeypatch.setenv("PAYLOAD_MARKER", str(marker))
    monkeypatch.setenv("MNIST_LIT_DATA_DIR", str(tiny_mnist))
    args = [arg.format(picture=digit_picture(tmp_path / "seven.png")) for arg in COMMANDS[command]]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    try:
        main([*args, str(files[crafted])])
        status = 0
    except SystemExit as exit_:
        status = exit_.code
    stderr = capsys.readouterr().err
    assert not marker.exists()
    check_refused(crafted, status, stderr)


def check_refused(crafted: str, status: int, stderr: str) -> None:
    """Refused in one line that says why."""
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert status != 0 and len(errors) == 1, stderr[-3000:]
    assert re.search(EXPECTED[crafted], errors[0]), errors[0]


@pytest.mark.slow
@pytest.mark.parametrize("crafted", CRAFTED)
def test_serve_runs_nothing_a_checkpoint_names(crafted, files, tmp_path, monkeypatch):
    marker = tmp_path / "ran.txt"
    monkeypatch.setenv("PAYLOAD_MARKER", str(marker))
    monkeypatch.setenv("PYTHONPATH", str(REPO / "tests"))  # the payload importable by the server
    run = subprocess.run([sys.executable, "-m", "mnist_lit", "serve", "--ckpt_path", str(files[crafted])],
                         capture_output=True, text=True, timeout=300)
    check_refused(crafted, run.returncode, run.stderr)
    assert not marker.exists()


@pytest.mark.parametrize("crafted", ["_instantiator", "pickled object", "timm hub name", "optimizer of elsewhere"])
def test_lightnings_own_load_from_checkpoint_runs_nothing(crafted, files, tmp_path, monkeypatch):
    marker = tmp_path / "ran.txt"
    monkeypatch.setenv("PAYLOAD_MARKER", str(marker))
    with pytest.raises(Exception):  # lightning's ValueError (an instantiator off its allowlist), torch's UnpicklingError
        ImageClassifier.load_from_checkpoint(files[crafted])
    assert not marker.exists()
