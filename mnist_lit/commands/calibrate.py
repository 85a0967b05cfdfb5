"""`python -m mnist_lit calibrate`: fit a checkpoint's temperature and threshold again, and keep them in it.

    python -m mnist_lit calibrate --ckpt_path checkpoints/version_0/last.ckpt --accept 0.99

`fit` already does this after every epoch (models/classifier.py), on the validation pictures of that epoch's
weights. This command is for checkpoints written before there was a calibration, and for another
--accept: it reads the same validation pictures as `fit` did (the split the checkpoint records),
fits on them (confidence.py) and rewrites the checkpoint whole or not at all.
"""

import argparse
import inspect
from typing import Optional

import torch

from mnist_lit.checkpoints.finding import (
    add_checkpoint_arguments,
    read_checkpoint,
    resolve_checkpoint,
)
from mnist_lit.core.atomic_files import cannot_write, replaced_atomically
from mnist_lit.core.errors import UserError
from mnist_lit.data.datamodule import ImageDataModule
from mnist_lit.data.sets import DatasetInfo
from mnist_lit.models.confidence import DEFAULT_ACCEPT, calibrate
from mnist_lit.models.predictor import predictor_of


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_lit calibrate",
        description="Fit a checkpoint's temperature and 'not one of the set's kinds' threshold on its validation pictures.",
    )
    add_checkpoint_arguments(parser)
    parser.add_argument("--accept", type=float, default=None,
                        help=f"share of the set's pictures to accept (default: the checkpoint's own, else {DEFAULT_ACCEPT})")
    parser.add_argument("--data_dir", default=None, help="data root of a built-in set (default: as `fit` finds it)")
    args = parser.parse_args(argv)
    path = resolve_checkpoint(args.ckpt_path, args.checkpoint_dir)
    checkpoint = read_checkpoint(path)
    predictor = predictor_of(checkpoint, path)  # one line for a file that is not a checkpoint of ours
    hparams = checkpoint.setdefault("hyper_parameters", {})
    accept = args.accept if args.accept is not None else hparams.get("accept", DEFAULT_ACCEPT)
    if not 0 < accept <= 1:
        raise UserError(f"--accept must be more than 0 and at most 1, got {accept}.")
    data = validation_pictures(checkpoint, predictor.dataset_info, args.data_dir)
    # Batch by batch: a streamed set's validation part is read from its chunks, never whole.
    batches = [(predictor.logits(predictor.normalize(images)), labels) for images, labels in data.val_set.batches(1000)]
    logits, labels = torch.cat([logits for logits, _ in batches]), torch.cat([labels for _, labels in batches])
    confidence = calibrate(logits, labels, accept)
    checkpoint["confidence"] = confidence.record()
    hparams["accept"] = accept
    try:
        with replaced_atomically(path) as temporary:
            torch.save(checkpoint, temporary)
    except OSError as error:
        raise cannot_write(error, "--ckpt_path (a copy of the checkpoint in a writable folder)") from None
    accepted = float(confidence.accepted(logits).float().mean())
    print(f"Calibrated {path} on {len(logits):,} validation pictures: temperature {confidence.temperature:.3f}, "
          f"energy threshold {confidence.threshold:.3f} (accepts {accepted:.1%} of them; asked {accept:.0%}). "
          f"The validation pictures: {data.evaluated('val')['split']}.")
    return 0


def validation_pictures(checkpoint: dict, learned: DatasetInfo, data_dir: Optional[str]) -> ImageDataModule:
    """The data module `fit` used, set up on the checkpoint's set: the same validation part as `fit` (its record
    says how a folder's was split; a built-in set's comes from the options the checkpoint keeps)."""
    # The options by name, never through load_from_checkpoint: a checkpoint's `_instantiator` or
    # `_class_path` would have it import and call what the file names.
    accepted = inspect.signature(ImageDataModule).parameters
    options = {name: value for name, value in (checkpoint.get("datamodule_hyper_parameters") or {}).items() if name in accepted}
    if data_dir is not None:
        options["data_dir"] = data_dir
    learned = learned.with_recorded_split(*(options.get(name, accepted[name].default) for name in ("split_seed", "val_fraction")))
    data = ImageDataModule(**{**options, "dataset": learned})
    data.setup("validate")
    return data
