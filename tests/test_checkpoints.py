import errno
import os
from pathlib import Path

import pytest
import torch

from mnist_lit.checkpoints.finding import resolve_checkpoint, resume_point, run_name
from mnist_lit.checkpoints.writing import AtomicCheckpointIO
from mnist_lit.core.errors import UserError
from mnist_lit.models.predictor import load_predictor


def fake_checkpoint(path: Path, best: str, mtime: float) -> Path:
    """A file shaped like a Lightning checkpoint whose ModelCheckpoint state names `best`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"best_model_path": best, "best_model_score": torch.tensor(0.99)}
    torch.save({"state_dict": {}, "callbacks": {"RunCheckpoint{'monitor': 'val/acc'}": state}}, path)
    os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def two_runs(tmp_path: Path) -> Path:
    root = tmp_path / "checkpoints"
    # version_0 is older; in version_1 the best is epoch 1, recorded relative to another directory.
    fake_checkpoint(root / "version_0" / "epoch=00-val_acc=0.9000.ckpt", "x", 100)
    fake_checkpoint(root / "version_0" / "last.ckpt", "checkpoints/version_0/epoch=00-val_acc=0.9000.ckpt", 101)
    fake_checkpoint(root / "version_1" / "epoch=01-val_acc=0.9900.ckpt", "x", 200)
    fake_checkpoint(root / "version_1" / "epoch=02-val_acc=0.9800.ckpt", "x", 201)
    fake_checkpoint(root / "version_1" / "last.ckpt", "/elsewhere/version_1/epoch=01-val_acc=0.9900.ckpt", 202)
    return root


@pytest.mark.parametrize("spec", [None, "best"])
def test_best_is_the_best_recorded_by_the_latest_run(two_runs, spec):
    assert resolve_checkpoint(spec, str(two_runs)) == two_runs / "version_1" / "epoch=01-val_acc=0.9900.ckpt"


def test_last_is_last_ckpt_of_the_latest_run(two_runs):
    assert resolve_checkpoint("last", str(two_runs)) == two_runs / "version_1" / "last.ckpt"


def test_an_explicit_path_is_taken_as_is(two_runs):
    path = two_runs / "version_0" / "last.ckpt"
    assert resolve_checkpoint(str(path), str(two_runs)) == path


def test_a_checkpoint_belongs_to_the_run_folder_fit_wrote_it_in(two_runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative and absolute spellings of the same folders
    assert run_name(two_runs / "version_1" / "last.ckpt", "checkpoints") == "version_1"
    assert run_name(Path("checkpoints/version_0/last.ckpt"), str(two_runs)) == "version_0"
    # Anywhere else it belongs to no run: `test` then starts a new one.
    assert run_name(tmp_path / "model.ckpt", "checkpoints") is None
    assert run_name(two_runs / "version_1" / "last.ckpt", str(tmp_path / "other")) is None


def test_no_checkpoint_at_all_says_how_to_get_one(tmp_path):
    with pytest.raises(UserError, match="No checkpoint found under .*mnist_lit fit"):
        resolve_checkpoint(None, str(tmp_path / "checkpoints"))


def test_a_missing_path_is_named(tmp_path):
    with pytest.raises(UserError, match="nope.ckpt does not exist"):
        resolve_checkpoint(str(tmp_path / "nope.ckpt"), str(tmp_path))


def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path):
    path = tmp_path / "notes.ckpt"
    path.write_text("hello")
    with pytest.raises(UserError, match="notes.ckpt is not a readable checkpoint"):
        load_predictor(resolve_checkpoint(str(path), str(tmp_path)))


def test_a_full_disk_is_named_and_the_previous_checkpoint_stays(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 1, "w": torch.ones(3)}, path)

    def disk_full(self, data):  # what a write on a full file system raises
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    with pytest.raises(UserError, match=r"Could not write the checkpoint .*last.ckpt \(No space left on device\); free some space"):
        AtomicCheckpointIO().save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    assert torch.load(path)["step"] == 1 and [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_last_before_any_checkpoint_means_a_new_run_and_a_later_requeue_checkpoint_wins(two_runs, tmp_path):
    assert resume_point(str(tmp_path / "none_yet"), str(tmp_path)) is None
    last, run = resume_point(str(two_runs), str(tmp_path))
    assert last == resolve_checkpoint("last", str(two_runs)) and run == last.parent.name
    requeue = tmp_path / "hpc_ckpt_1.ckpt"
    requeue.write_bytes(last.read_bytes())
    os.utime(requeue, (last.stat().st_mtime + 5, last.stat().st_mtime + 5))
    assert resume_point(str(two_runs), str(tmp_path)) == (requeue, last.parent.name)
