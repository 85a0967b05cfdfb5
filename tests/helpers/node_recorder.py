"""A callback for the multi-node test: what each process of a run did, one JSON line per event.

Loaded by the `fit` under test with ``--trainer.callbacks helpers.node_recorder.RecordNode
--trainer.callbacks.init_args.path FILE`` (tests/ on PYTHONPATH). Every process appends to FILE.
"""

import json
import os

import lightning as L
from lightning.pytorch.callbacks import Callback

from mnist_lit.data.datamodule import ImageDataModule


class RecordNode(Callback):
    """Records each call of the data module's prepare_data, and the training pictures each process is dealt."""

    def __init__(self, path: str) -> None:
        self.path = path
        # prepare_data runs before any callback hook; this process's data module is wrapped instead.
        prepare = ImageDataModule.prepare_data

        def recorded_prepare(module: ImageDataModule) -> None:
            self.write(event="prepare_data", node=int(os.environ.get("NODE_RANK", 0)))
            prepare(module)

        ImageDataModule.prepare_data = recorded_prepare

    def write(self, **record) -> None:
        with open(self.path, "a") as file:  # one short line per write: appends do not interleave
            file.write(json.dumps(record) + "\n")

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loader = trainer.train_dataloader
        steps = min(len(loader), int(trainer.limit_train_batches))
        dealt = list(loader.sampler)[: steps * loader.batch_size]  # the indices of the pictures this process trains on
        self.write(event="train", rank=trainer.global_rank, world_size=trainer.world_size, indices=dealt)
