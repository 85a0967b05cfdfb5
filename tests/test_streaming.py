"""Streaming a folder set from LitData's chunks (data/streaming.py) instead of holding it in memory."""

import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import litdata
import numpy as np
import pytest
import torch
from helpers.cli import run_cli
from helpers.picture_sets import write_folder, write_noise_folder, write_split_folder

from mnist_lit.core.errors import UserError
from mnist_lit.data import datamodule as datamodule_module
from mnist_lit.data import streaming
from mnist_lit.data.datamodule import ImageDataModule, InMemoryPictures
from mnist_lit.data.decoded_cache import CACHE_DIR_ENV, cache_dir
from mnist_lit.data.streaming import StreamedPictures, budget_bytes

TESTS = Path(__file__).resolve().parent


def fingerprints(part) -> list[str]:
    """Each picture of a part as a short digest, sorted: equal lists are the same pictures, whatever their order."""
    return sorted(hashlib.sha1(p.numpy().tobytes()).hexdigest() for images, _ in part.batches(64) for p in images)


def held(folder: Path, stream, **options) -> ImageDataModule:
    data = ImageDataModule(dataset=str(folder), stream=stream, **options)
    data.setup()
    return data


@pytest.mark.parametrize("channels", [None, 1])
def test_a_streamed_folder_has_the_same_parts_pictures_and_statistics_as_in_memory(tmp_path, channels):
    folder = write_split_folder(tmp_path / "shapes", train=20, test=6)  # with a damaged picture and a text file
    in_memory, streamed = held(folder, False, channels=channels), held(folder, True, channels=channels)
    assert isinstance(in_memory.train_set, InMemoryPictures) and isinstance(streamed.train_set, StreamedPictures)
    assert streamed.dataset_info == in_memory.dataset_info  # classes, side, channels, mean and std, split
    for part in ("train", "val", "test"):
        assert sorted(streamed.files[part]) == sorted(in_memory.files[part])
        assert fingerprints(getattr(streamed, f"{part}_set")) == fingerprints(getattr(in_memory, f"{part}_set"))
        labels = getattr(streamed, f"{part}_set").labels
        assert torch.equal(torch.bincount(labels, minlength=3), torch.bincount(getattr(in_memory, f"{part}_set").labels, minlength=3))


def test_auto_streams_only_a_set_above_the_memory_budget(tmp_path, capsys):
    folder = write_folder(tmp_path / "shapes", per_class=4)
    small = held(folder, "auto", image_size=32, memory_budget="1MB")  # 12 pictures of 32x32x3: 36 KB
    assert isinstance(small.train_set, InMemoryPictures)
    assert "held in memory: 36.0 KB decoded, within --data.memory_budget 1.0 MB" in capsys.readouterr().out
    large = held(folder, "auto", image_size=32, memory_budget="20KB")
    assert isinstance(large.train_set, StreamedPictures)
    assert "streamed from LitData chunks: 36.0 KB decoded, above --data.memory_budget 20.0 KB" in capsys.readouterr().out


def test_streamed_training_batches_mix_the_classes(tmp_path, monkeypatch):
    # Small chunks, as a large set has many: written in the folder's order, each would hold one class.
    monkeypatch.setattr(streaming, "CHUNK_BYTES", 32 * 2**10)
    data = held(write_noise_folder(tmp_path / "noise", 3, 200), True, batch_size=16)
    data.trainer = None
    classes_per_batch = [len(set(labels.tolist())) for _, labels in data.train_dataloader()]
    assert len(classes_per_batch) == 480 // 16 and min(classes_per_batch) >= 2, classes_per_batch


def test_a_built_in_set_stays_in_memory_whatever_the_budget(tiny_mnist):
    data = ImageDataModule(data_dir=str(tiny_mnist), val_size=10, memory_budget="1KB")
    data.setup()
    assert isinstance(data.train_set, InMemoryPictures) and isinstance(data.test_set, InMemoryPictures)


@pytest.mark.parametrize("text, expected", [("4GB", 4 * 2**30), ("512 MiB", 512 * 2**20), ("1000", 1000), ("1.5kb", 1536)])
def test_memory_budget_takes_sizes_as_people_write_them(text, expected):
    assert budget_bytes(text) == expected


@pytest.mark.parametrize("options, message", [
    ({"memory_budget": "lots"}, "--data.memory_budget takes a size such as 4GB"),
    ({"memory_budget": "0GB"}, "--data.memory_budget must be above 0"),
    ({"dataset": "mnist", "stream": True}, "the built-in mnist is held in memory"),
])
def test_bad_streaming_options_are_refused_in_one_line(tmp_path, options, message):
    with pytest.raises(UserError, match=message):
        ImageDataModule(**{"dataset": str(write_folder(tmp_path / "shapes", 1)), **options})


def test_a_streamed_set_cannot_be_drawn_from_at_random(tmp_path):
    data = held(write_folder(tmp_path / "shapes", per_class=8), True, balance="sampler")
    with pytest.raises(UserError, match="use --data.balance loss"):
        data.train_dataloader()


def written(monkeypatch) -> list:
    """The calls to write_chunks from now on (each still writes)."""
    calls, write = [], datamodule_module.write_chunks
    monkeypatch.setattr(datamodule_module, "write_chunks", lambda *args: calls.append(args) or write(*args))
    return calls


def test_chunks_are_written_once_and_a_folder_left_by_a_killed_run_is_written_again(tmp_path, monkeypatch):
    folder = write_folder(tmp_path / "shapes", per_class=8)
    calls = written(monkeypatch)
    first = held(folder, True)
    second = held(folder, True)  # another run on the same files and options
    assert len(calls) == 1 and first.train_set.place == second.train_set.place
    chunks = Path(first.train_set.place).parent
    assert chunks.parent == cache_dir()  # beside the decoded cache, not in the pictures' folder
    assert not any(path.suffix not in (".png", ".jpg", ".bmp", ".gif", ".tiff", ".webp", ".PNG", ".JPEG", "") for path in folder.rglob("*"))

    # A run killed while writing leaves the chunks under a temporary name that says whose they were.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    left = chunks.with_name(f"{chunks.name}.partial-{dead}")
    chunks.rename(left)
    (left / "train" / "index.json").unlink()  # litdata writes the index last
    third = held(folder, True)
    assert len(calls) == 2 and not left.exists()
    assert fingerprints(third.train_set) == fingerprints(first.train_set)


def test_a_disk_that_fills_up_while_writing_chunks_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    folder = write_folder(tmp_path / "shapes", per_class=8)
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    optimize = litdata.optimize

    def fills_up(*args, output_dir: str, **kwargs):
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        (Path(output_dir) / "chunk-0-0.bin").write_bytes(b"half")
        # What litdata raises in this process when a worker's write fails (seen on a 3 MB tmpfs).
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(litdata, "optimize", fills_up)
    with pytest.raises(UserError, match="No space left on device.*free some space there or set MNIST_LIT_CACHE_DIR"):
        held(folder, True)
    assert not list(cache_dir().iterdir())
    monkeypatch.setattr(litdata, "optimize", optimize)
    assert isinstance(held(folder, True).train_set, StreamedPictures)


def test_chunks_written_from_a_script_without_a_main_guard_are_one_line_and_leave_nothing(tmp_path):
    # LitData's workers are new Pythons that import the script that ran: without the guard, each one
    # runs the script again instead of decoding, and litdata still writes an (empty) index.
    folder = write_folder(tmp_path / "shapes", per_class=4)
    script = tmp_path / "train.py"
    script.write_text(f"from mnist_lit.commands.cli import main\nmain(['fit', '--data.dataset', {str(folder)!r}, '--data.stream', 'true'])\n")
    cache = tmp_path / "cache"
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, CACHE_DIR_ENV: str(cache)}, timeout=300)
    assert ran.returncode == 1
    assert "error: writing the train part into chunks stopped" in ran.stderr
    assert 'if __name__ == "__main__":' in ran.stderr.splitlines()[-1]
    assert not list(cache.glob("*.chunks*"))


# --- a set written by litdata.optimize, named directly ---------------------------------------------


def optimized_item(index: int) -> dict:
    # Class k is brighter by 80 * k: a set a network learns in one epoch.
    label = index % 3
    rng = np.random.default_rng(index)
    return {"image": (rng.integers(0, 60, (20, 20, 3)) + 80 * label).astype(np.uint8), "label": label}


def write_optimized_set(root: Path) -> Path:
    for part, count in (("train", 150), ("val", 30), ("test", 24)):
        start = {"train": 0, "val": 1000, "test": 2000}[part]
        litdata.optimize(fn=optimized_item, inputs=list(range(start, start + count)), output_dir=str(root / part),
                         chunk_bytes="1MB", num_workers=1, verbose=False)
    return root


def test_a_set_written_by_litdata_optimize_trains_and_tests_with_no_data_option(tmp_path):
    optimized = write_optimized_set(tmp_path / "optimized")
    run = tmp_path / "run"
    fitted = run_cli(run, tmp_path, "fit", "--data.dataset", str(optimized), "--data.classes", "dark,grey,light",
                     "--trainer.max_epochs", "2", "--data.batch_size", "16")
    assert "a set written by litdata.optimize; train/ 150, val/ 30, test/ 24 pictures; 20x20, 3 channels; streamed" in fitted.stdout
    tested = run_cli(run, tmp_path, "test")
    report = json.loads(next((run / "logs").glob("version_*/report.json")).read_text())
    assert int(torch.tensor(report["confusion_matrix"]).sum()) == 24 and report["accuracy"] > 0.9, tested.stdout
    assert [row for row in report["per_class"]] == ["dark", "grey", "light"]


@pytest.mark.parametrize("environment, message", [
    ({}, "no credentials to read s3://mnist-lit-absent/set/train"),
    # A store that refuses connections (a closed local port): a few tries, then one line, not LitData's thousand.
    ({"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"},
     "cannot read s3://mnist-lit-absent/set/train .*check the URL, the network"),
])
def test_an_object_store_that_cannot_be_read_is_one_line(tmp_path, monkeypatch, environment, message):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    data = ImageDataModule(dataset="s3://mnist-lit-absent/set")
    with pytest.raises(UserError, match=message):
        data.setup("fit")
