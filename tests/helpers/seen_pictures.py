"""A callback for the tests of resuming: which pictures each training step of a run trained on.

Loaded by the `fit` under test with ``--trainer.callbacks helpers.seen_pictures.RecordSeen
--trainer.callbacks.init_args.path FILE`` (tests/ on PYTHONPATH). One JSON line per step, appended
and flushed before the step's checkpoint is written (Lightning runs checkpoint callbacks last), so a
kill at any moment leaves every step a checkpoint holds in the record.
"""

import hashlib
import json

import lightning as L
from lightning.pytorch.callbacks import Callback


def fingerprint(picture) -> str:
    return hashlib.sha1(picture.cpu().numpy().tobytes()).hexdigest()[:16]


class RecordSeen(Callback):
    """Appends {"epoch", "step", "rank", "pictures": fingerprints} to ``path`` after each training step (every
    process of a multi-process run to the same file: one short line per write, so appends do not interleave)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        record = {"epoch": trainer.current_epoch, "step": trainer.global_step, "rank": trainer.global_rank,
                  "pictures": [fingerprint(p) for p in batch[0]]}
        with open(self.path, "a") as file:
            file.write(json.dumps(record) + "\n")
            file.flush()
