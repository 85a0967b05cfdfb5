"""A callback for the tests that interrupt `fit`: it holds the run at a known step until it is killed.

Loaded by the `fit` under test with ``--trainer.callbacks helpers.pause_callback.PauseInEpoch`` (tests/
on PYTHONPATH), so the kill lands where the test says, however fast or loaded the machine is.
"""

import sys

import lightning as L
from lightning.pytorch.callbacks import Callback

PAUSED = "paused in epoch"


class PauseInEpoch(Callback):
    """After training step ``step`` of epoch ``epoch`` (both from 1), say so and wait on stdin."""

    def __init__(self, epoch: int = 2, step: int = 10) -> None:
        self.epoch = epoch
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        if trainer.current_epoch + 1 == self.epoch and batch_idx + 1 == self.step:
            print(f"{PAUSED} {self.epoch}, step {self.step}", flush=True)
            sys.stdin.readline()  # returns only if the test closes stdin instead of signalling
