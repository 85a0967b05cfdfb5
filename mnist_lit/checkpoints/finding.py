"""Finding a run's checkpoint files: "best", "last", the point to resume from. Torch alone, no Lightning.

Each `fit` run writes into ``checkpoints/version_N/``, named after its TensorBoard run in
``logs/version_N/``; "best" and "last" name a file of the most recent run.
"""

import argparse
from pathlib import Path
from typing import Iterable, Optional

from mnist_lit.checkpoints.reading import read_checkpoint
from mnist_lit.core.errors import UserError

LAST = "last.ckpt"


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
