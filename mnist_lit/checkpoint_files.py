"""Finding and reading checkpoint files, with torch alone (the thin commands import this, not Lightning).

Each `fit` run writes into ``checkpoints/version_N/``, named after its TensorBoard run in
``logs/version_N/``; "best" and "last" name a file of the most recent run.
"""

import argparse
import pickle
import re
import zipfile
from pathlib import Path
from typing import Iterable, Optional

import torch

from mnist_lit.errors import UserError

LAST = "last.ckpt"
# What LightningCLI records about how to rebuild a model (Lightning's load_from_checkpoint imports and
# calls it): the values it writes for mnist-lit's own classes; any other is refused.
BUILDERS = {
    "_instantiator": {"lightning.pytorch.cli.instantiate_module"},
    "_class_path": {"mnist_lit.model.ImageClassifier", "mnist_lit.model.DigitClassifier",
                    "mnist_lit.data.ImageDataModule", "mnist_lit.data.MNISTDataModule"},
}
# The largest tensor a checkpoint may hold: far above any network of networks.py at any supported size.
MAX_MEMBER_BYTES = 2 * 2**30


def resolve_checkpoint(ckpt_path: Optional[str], checkpoint_dir: str) -> Path:
    """Turn ``None``/"best", "last" or a path into an existing checkpoint file.

    "best" and "last" refer to the most recent run under ``checkpoint_dir``. Whether the file is a
    checkpoint of ours is for ``inference.load_predictor`` to say.
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


def resume_point(checkpoint_dir: str, root_dir: str) -> Optional[tuple[Path, Optional[str]]]:
    """What `fit --ckpt_path last` continues from, and the name of that run: None before any checkpoint.

    The latest run's last.ckpt, unless Lightning's SLURM requeue (SIGUSR1) saved a later point of the
    run as ``hpc_ckpt_N.ckpt`` in the trainer's root folder. None lets the same command start a job
    and restart it after every preemption.
    """
    hpc = _newest(Path(root_dir).glob("hpc_ckpt_*.ckpt"))
    if _newest(Path(checkpoint_dir).glob("**/*.ckpt")) is None:
        return None if hpc is None else (hpc, None)
    last = resolve_checkpoint("last", checkpoint_dir)
    if hpc is not None and hpc.stat().st_mtime > last.stat().st_mtime:
        return hpc, last.parent.name
    return last, last.parent.name


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
    refuse_huge_members(path)
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
    for key in ("hyper_parameters", "datamodule_hyper_parameters"):
        options = checkpoint.get(key)
        for name, trusted in BUILDERS.items():
            named = options.get(name) if isinstance(options, dict) else None
            if named is not None and named not in trusted:
                raise UserError(f"{path} names code to build its model or data with ({name} {named!r}); mnist-lit builds "
                                "its own classes from a checkpoint and runs nothing a file names. Pass a .ckpt written by `fit`.")
    return checkpoint


def refuse_huge_members(path: Path) -> None:
    """Refuse a checkpoint whose zip members claim more than a checkpoint of ours could hold.

    torch reads a member into memory of the size its header declares, so a crafted header (or a
    deflated member of zeros) could take all the memory before anything fails.
    """
    if not zipfile.is_zipfile(path):
        return  # torch's message names what else it is
    try:
        with zipfile.ZipFile(path) as archive:
            largest = max(archive.infolist(), key=lambda member: member.file_size, default=None)
    except (zipfile.BadZipFile, OSError):
        return
    if largest is not None and largest.file_size > MAX_MEMBER_BYTES:
        raise UserError(f"{path} holds a member ({largest.filename}) of {largest.file_size / 2**30:.1f} GiB, more than a "
                        f"checkpoint of mnist-lit could ({MAX_MEMBER_BYTES / 2**30:.0f} GiB); it is not read.")


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
