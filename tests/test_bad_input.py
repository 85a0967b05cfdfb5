"""Every kind of bad input gets one `error:` line, a non-zero exit status and leaves nothing half-written.

Each case runs the command line as a user would, in an empty working directory, on tiny
synthetic MNIST files (except where the real file sizes matter), and lists what it left behind.
"""

import os
import re
import resource
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytest
import torch
from helpers.checkpoints import untrained_checkpoint
from helpers.files import digit_picture

from mnist_lit.__main__ import main

UNWRITABLE = r"\((Permission denied|Operation not permitted)\)"
TINY_FIT = ["fit", "--data.val_size", "20", "--data.batch_size", "16", "--trainer.max_epochs", "1"]


class Pickled:
    """An object that torch's safe loader refuses to rebuild."""


@pytest.fixture
def inputs(tmp_path, tiny_mnist) -> dict[str, Path]:
    """Bad files of every kind, outside the working directory."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    good = untrained_checkpoint(folder / "good.ckpt")
    (folder / "empty.ckpt").touch()
    (folder / "truncated.ckpt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (folder / "text.ckpt").write_text("not a checkpoint\n")
    checkpoint = torch.load(good, weights_only=True)
    checkpoint["state_dict"]["net.extra.weight"] = torch.zeros(3)
    torch.save(checkpoint, folder / "other_model.ckpt")
    checkpoint = torch.load(good, weights_only=True)
    checkpoint["hyper_parameters"]["note"] = Pickled()
    torch.save(checkpoint, folder / "pickled.ckpt")
    (folder / "broken.yaml").write_text("model:\n  lr: [0.1\n")
    digit_picture(folder / "seven.png")

    def damaged_data(name: str, damage) -> Path:
        data_dir = folder / name
        shutil.copytree(tiny_mnist / "MNIST", data_dir / "MNIST")
        damage(data_dir / "MNIST" / "raw")
        return data_dir

    def truncate(raw: Path) -> None:
        path = raw / "train-images-idx3-ubyte"
        path.write_bytes(path.read_bytes()[:5000])

    def wrong_magic(raw: Path) -> None:  # an images file with the labels' magic number
        path = raw / "t10k-images-idx3-ubyte"
        path.write_bytes(b"\x00\x00\x08\x01" + path.read_bytes()[4:])

    return {
        **{path.stem: path for path in folder.iterdir()},
        "tiny": tiny_mnist,
        "truncated_data": damaged_data("truncated_data", truncate),
        "corrupt_data": damaged_data("corrupt_data", lambda raw: (raw / "train-labels-idx1-ubyte").write_bytes(b"junk")),
        "wrong_magic_data": damaged_data("wrong_magic_data", wrong_magic),
    }


CASES = {
    # Checkpoints
    "missing checkpoint": (["test", "--ckpt_path", "{inputs}/missing.ckpt"], r"missing.ckpt does not exist"),
    "empty checkpoint": (["test", "--ckpt_path", "{empty}"], r"empty.ckpt is empty"),
    "truncated checkpoint": (["test", "--ckpt_path", "{truncated}"], r"truncated.ckpt is not a readable checkpoint: truncated"),
    "not a checkpoint": (["test", "--ckpt_path", "{text}"], r"text.ckpt is not a readable checkpoint"),
    "another model": (["test", "--ckpt_path", "{other_model}"], r"not a checkpoint of mnist-lit's ImageClassifier \(its weights do not fit"),
    "pickled objects": (["test", "--ckpt_path", "{pickled}"], r"pickled.ckpt holds pickled Python objects \(test_bad_input.Pickled\)"),
    "resume from another model": (["fit", "--ckpt_path", "{other_model}"], r"not a checkpoint of mnist-lit's ImageClassifier"),
    # Configuration
    "unknown option": (["fit", "--model.lr_typo", "1"], r"unrecognized arguments: --model.lr_typo 1"),
    "wrong type": (["fit", "--model.lr", "fast"], r'Parser key "model.lr": Expected a <class .float.>. Got value: fast'),
    "negative learning rate": (["fit", "--model.lr", "-0.1"], r"Need lr > 0"),
    "batch size 0": (["fit", "--data.batch_size", "0"], r"batch_size must be a positive integer, got 0"),
    "share to accept over 1": (["fit", "--model.accept", "1.5"], r"0 < accept <= 1; got .*accept=1.5"),
    "unknown kind of outliers": (["fit", "--data.outliers", "fashion"], r'Parser key "data.outliers":.*synthetic.*Got value: fashion'),
    "validation split too large": (["fit", "--data.val_size", "60000"], r"val_size must be between 1 and 59999"),
    "unknown network": (["fit", "--model.net", "resnet"], r"No network 'resnet': --model.net takes auto, wide_cnn, keras_cnn, batchnorm_cnn, lean_cnn or timm/NAME"),
    "one-cycle with BackboneFinetuning": (["fit", "--model.lr_schedule", "one_cycle", "--trainer.callbacks+=BackboneFinetuning",
                                           "--data.val_size", "20"],
                                          r"OneCycleLR keeps a rate for each parameter group it starts with"),
    "unknown timm network": (["fit", "--model.net", "timm/resnet_typo"], r"timm has no model 'resnet_typo': --model.net timm/NAME takes a name of timm.list_models\(\)"),
    "unknown data set": (["fit", "--data.dataset", "cifar100"], r"Unknown data set 'cifar100'; --data.dataset takes one of mnist, .*cifar10, the path of a folder.*or a set written by litdata"),
    "two starting weights": (["fit", "--model.weights", "a.safetensors", "--model.init_from", "b.ckpt"],
                             r"--model.weights and --model.init_from each name where the network starts; give one of them"),
    "label smoothing of every label": (["fit", "--model.label_smoothing", "1"], r"0 <= label_smoothing < 1.*label_smoothing=1.0"),
    "unknown augmentation policy": (["fit", "--data.augment_policy", "auto"], r'Parser key "data.augment_policy":.*trivial.*Got value: auto'),
    "augmentation too strong": (["fit", "--data.augment_shift", "0.9"], r"Need augment_degrees >= 0, 0 <= augment_shift < 0.5"),
    "validation split of the whole tiny set": (["fit", "--data.val_size", "100"], r"val_size must be between 1 and 99 for 100 training images"),
    "YAML that does not parse": (["fit", "--config", "{broken}"], r"broken.yaml: Problems parsing config"),
    # Data
    "truncated data file": ([*TINY_FIT, "--data.data_dir", "{truncated_data}"], r"train-images-idx3-ubyte is truncated or damaged"),
    "corrupt data file": ([*TINY_FIT, "--data.data_dir", "{corrupt_data}"], r"train-labels-idx1-ubyte is not an MNIST-format labels file"),
    "wrong magic number": ([*TINY_FIT, "--data.data_dir", "{wrong_magic_data}"], r"t10k-images-idx3-ubyte is not an MNIST-format images file"),
    # Output
    "a file where the logs folder goes": (TINY_FIT, r"cannot write .*logs \(File exists\)"),
    "read-only working directory": (TINY_FIT, rf"cannot write .* {UNWRITABLE}.* --trainer.logger.init_args.save_dir and --checkpoint.dirpath"),
    "predict into a read-only folder": (["predict", "{seven}", "--ckpt_path", "{good}", "--output", "out.csv"], rf"cannot write out\.csv {UNWRITABLE}; choose a writable place with --output,"),
    "export into a read-only folder": (["export", "--format", "torchscript", "--ckpt_path", "{good}"], rf"cannot write mnist_cnn\.pt {UNWRITABLE}; choose a writable place with --output,"),
    "full disk": (TINY_FIT, r"Could not write the checkpoint .* \(File too large\); .*The previous checkpoints are intact"),
    # Training
    "non-finite loss": ([*TINY_FIT, "--model.lr", "1e30", "--trainer.log_every_n_steps", "1"], r"loss became nan or inf in epoch 1"),
}
READ_ONLY = {"read-only working directory", "predict into a read-only folder", "export into a read-only folder"}
# Failures during training leave the run's record (config, hparams, events), never a checkpoint.
DURING_TRAINING = {"full disk", "non-finite loss"}


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` unwritable for the block, also for root (which ignores permissions) where chattr works."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        undo = ["chmod", "755", str(folder)]
    elif subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0:
        undo = ["chattr", "-i", str(folder)]
    else:
        pytest.skip("root writes into read-only folders, and chattr +i does not work here")
    try:
        yield
    finally:
        subprocess.run(undo, check=True)


def files_under(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


# The full disk needs a process of its own, whose file-size limit the test sets.
@pytest.mark.parametrize("case", [pytest.param(case, marks=pytest.mark.slow) if case == "full disk" else case for case in CASES])
def test_bad_input_gets_one_clear_line(case, inputs, tmp_path, monkeypatch, capsys):
    args, message = CASES[case]
    args = [arg.format(inputs=tmp_path / "inputs", **inputs) for arg in args]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("MNIST_LIT_DATA_DIR", str(inputs["tiny"]))
    if case == "a file where the logs folder goes":
        (work / "logs").write_text("mine\n")
    if case == "full disk":  # a file-size limit makes writes fail as a full disk does
        limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))  # noqa: E731
        run = subprocess.run([sys.executable, "-m", "mnist_lit", *args], preexec_fn=limit, capture_output=True, text=True)
        status, stderr = run.returncode, run.stderr
    else:
        with read_only(work) if case in READ_ONLY else nullcontext():
            with pytest.raises(SystemExit) as exit_info:
                main(args)
        status, stderr = exit_info.value.code, capsys.readouterr().err

    assert status != 0
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-2000:]
    assert re.search(message, errors[0]), errors[0]
    left = files_under(work)
    if case in DURING_TRAINING:
        assert left and all(name.startswith("logs/version_0/") for name in left), left
    elif case == "a file where the logs folder goes":
        assert left == {"logs"} and (work / "logs").read_text() == "mine\n"
    else:
        assert left == set()
