"""Where checkpoints are written and how `test` finds them again.

Each `fit` run writes into ``checkpoints/version_N/``, named after its TensorBoard run in
``logs/version_N/``, so runs never overwrite each other and a checkpoint's logs are easy to find.
"""

import argparse
import pickle
import re
from pathlib import Path
from typing import Iterable, Optional

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from mnist_lit.errors import UserError
from mnist_lit.files import replaced_atomically
from mnist_lit.model import DigitClassifier

LAST = "last.ckpt"


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that files each run in a subfolder named after the logger's version."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.fitting = stage == "fit"
        self.runs_dir = getattr(self, "runs_dir", self.dirpath)  # the configured dirpath, before any run folder
        # trainer.log_dir, not the logger's: it is broadcast, so every process of a multi-process
        # run agrees on the folder even while rank 0 is creating the next version.
        if self.fitting and self.runs_dir is not None and trainer.logger is not None and trainer.log_dir:
            self.dirpath = str(Path(self.runs_dir) / Path(trainer.log_dir).name)
        super().setup(trainer, pl_module, stage)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        last = Path(self.dirpath or "") / LAST
        fitting = getattr(self, "fitting", False)  # an exception may come before setup
        if fitting and isinstance(exception, KeyboardInterrupt) and trainer.is_global_zero and last.is_file():
            print(f"Interrupted. To continue this run from {last}: python -m mnist_lit fit --ckpt_path last")

    def load_state_dict(self, state_dict: dict) -> None:
        # Only resuming a fit continues this bookkeeping; `test` merely reads the weights, and
        # restoring here would only warn that the checkpoint came from another folder.
        if self.fitting:
            super().load_state_dict(state_dict)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file in its own folder, then renames it into place.

    A kill at any moment leaves the previous file or the new one, never a truncated one. Lightning's
    own save writes into the system's temporary folder and moves the file from there: a copy, not
    a rename, when that folder is on another file system (tmpfs, often), so a kill during the
    copy would leave a truncated checkpoint behind.
    """

    def save_checkpoint(self, checkpoint: dict, path, storage_options: Optional[object] = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options, got {storage_options!r}.")
        try:
            with replaced_atomically(Path(path)) as temporary:
                torch.save(checkpoint, temporary)
        # torch's zip writer reports a failed write (a full disk, a file-size limit) as a RuntimeError.
        except (OSError, RuntimeError) as error:
            raise UserError(
                f"Could not write the checkpoint {path} ({_first_line(error)}); free some space or choose a "
                "writable folder with --checkpoint.dirpath. The previous checkpoints are intact."
            ) from None


def resolve_checkpoint(ckpt_path: Optional[str], checkpoint_dir: str) -> Path:
    """Turn ``None``/"best", "last" or a path into an existing checkpoint file.

    "best" and "last" refer to the most recent run under ``checkpoint_dir``. Whether the file is a
    checkpoint of ours is for ``load_classifier`` to say.
    """
    if ckpt_path not in (None, "best", "last"):
        path = Path(ckpt_path)
        if not path.is_file():
            raise UserError(f"Checkpoint {path} does not exist; pass a .ckpt file written by `fit`, or 'best' or 'last'.")
        return path

    run = _latest_run(Path(checkpoint_dir))
    if ckpt_path == "last":
        path = run / LAST
        if not path.is_file():
            raise UserError(f"No {LAST} in {run}; pass a checkpoint path with --ckpt_path.")
        return path
    best = _best_in_run(run)
    if best is None:
        raise UserError(f"Cannot tell which checkpoint in {run} is the best; pass one with --ckpt_path.")
    return best


def add_checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    """--ckpt_path and --checkpoint_dir, for the commands beside LightningCLI (predict, export)."""
    parser.add_argument("--ckpt_path", default=None, help="a .ckpt file, 'best' (default) or 'last' of the latest run")
    parser.add_argument("--checkpoint_dir", default="checkpoints", help="where `fit` wrote its runs (default: checkpoints)")


def run_name(checkpoint: Path, checkpoint_dir: str) -> Optional[str]:
    """The run folder (``version_N``) of a checkpoint that `fit` wrote under ``checkpoint_dir``, else None."""
    folder = checkpoint.resolve().parent
    return folder.name if folder.parent == Path(checkpoint_dir).resolve() else None


def read_checkpoint(path: Path) -> dict:
    """Load a checkpoint with torch's safe loader: tensors and plain values only, no code run."""
    if path.stat().st_size == 0:
        raise UserError(f"{path} is empty; pass a .ckpt written by `fit`.")
    damaged = f"{path} is not a readable checkpoint: truncated, damaged or another kind of file"
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
        if found is None:  # not a pickle torch could read at all
            raise UserError(f"{damaged}; pass a .ckpt written by `fit`.") from None
        raise UserError(
            f"{path} holds pickled Python objects ({found.group(1)}) besides tensors and plain values; mnist-lit "
            "loads checkpoints with torch's safe loader and runs no code from them. Pass a .ckpt written by `fit`."
        ) from None
    except Exception as error:  # torch raises several unrelated types for a damaged file
        raise UserError(f"{damaged} ({type(error).__name__}); pass a .ckpt written by `fit`.") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserError(f"{path} is not a Lightning checkpoint (no state_dict); pass a .ckpt written by `fit`.")
    return checkpoint


def _latest_run(checkpoint_dir: Path) -> Path:
    """The folder under ``checkpoint_dir`` (or itself) holding the most recently written checkpoint."""
    newest = _newest(checkpoint_dir.glob("**/*.ckpt"))
    if newest is None:
        raise UserError(
            f"No checkpoint found under {checkpoint_dir.resolve()}; train one with `python -m mnist_lit fit` "
            "or pass --ckpt_path PATH."
        )
    return newest.parent


def _best_in_run(run: Path) -> Optional[Path]:
    # Every checkpoint carries ModelCheckpoint's state as it was when the file was written, so the
    # newest file knows which one was best. The path it records may be relative to another
    # working directory, so look the file name up in this folder.
    callbacks = read_checkpoint(_newest(run.glob("*.ckpt"))).get("callbacks", {})
    for state in callbacks.values():
        best = state.get("best_model_path") if isinstance(state, dict) else None
        if best and (run / Path(best).name).is_file():
            return run / Path(best).name
    return None


def _newest(paths: Iterable[Path]) -> Optional[Path]:
    return max(paths, key=lambda path: path.stat().st_mtime, default=None)


def load_classifier(path: Path) -> DigitClassifier:
    """The model, in eval mode on the CPU, of a checkpoint written by `fit`."""
    read_checkpoint(path)  # one clear line for a file that is not a checkpoint at all
    try:
        model = DigitClassifier.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    except (TypeError, KeyError, RuntimeError) as error:
        reasons = {RuntimeError: "its weights do not fit the network", KeyError: f"it has no {error}"}
        reason = reasons.get(type(error), f"{type(error).__name__}: {error}")
        raise UserError(
            f"{path} is not a checkpoint of mnist-lit's DigitClassifier ({reason}); pass a .ckpt written by `fit`."
        ) from None
    return model.eval()


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
