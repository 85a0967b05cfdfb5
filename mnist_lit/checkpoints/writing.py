"""Where and how `fit` writes checkpoints (finding and reading them: finding.py, reading.py).

Each `fit` run writes into ``checkpoints/version_N/``, named after its TensorBoard run in
``logs/version_N/``, so runs never overwrite each other and a checkpoint's logs are easy to find.
"""

import io
from pathlib import Path
from typing import Optional

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from mnist_lit.checkpoints.finding import LAST
from mnist_lit.core.atomic_files import replaced_atomically
from mnist_lit.core.errors import UserError


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that files each run in a subfolder named after the logger's version."""

    say_how_to_resume = True  # on Ctrl-C, print the command that continues the run

    def __init__(self, *args, save_last_every_n_steps: Optional[int] = None, **kwargs) -> None:
        """``save_last_every_n_steps``: also write last.ckpt every this many training steps, so that a run killed in
        the middle of a long epoch continues from there (a streamed set's loader keeps its position in it).
        The best checkpoint is still chosen after each validation."""
        super().__init__(*args, **kwargs)
        if save_last_every_n_steps is not None and save_last_every_n_steps < 1:
            raise UserError(f"--checkpoint.save_last_every_n_steps must be a positive number of steps, got {save_last_every_n_steps}.")
        self.save_last_every_n_steps = save_last_every_n_steps
        self.saved_at_step = -1  # with gradient accumulation, several batches end at the same step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args, **kwargs) -> None:
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        every = self.save_last_every_n_steps
        step = trainer.global_step
        if every and self.save_last and self.dirpath and step % every == 0 and step != self.saved_at_step:
            self.saved_at_step = step
            # Lightning's own trainer.save_checkpoint: it holds the loops' and the loader's positions mid-epoch.
            trainer.save_checkpoint(Path(self.dirpath) / LAST)

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
        interrupted = fitting and isinstance(exception, KeyboardInterrupt) and self.say_how_to_resume
        if interrupted and trainer.is_global_zero and last.is_file():
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
        # Serialized in memory, then written by Python: torch's own file writer reports a full disk
        # as "unexpected pos 1061568 vs 1061460", while a Python write names the operating system's reason.
        serialized = io.BytesIO()
        torch.save(checkpoint, serialized)
        try:
            with replaced_atomically(Path(path)) as temporary:
                temporary.write_bytes(serialized.getbuffer())
        except OSError as error:
            raise UserError(
                f"Could not write the checkpoint {path} ({error.strerror or error}); free some space or choose a "
                "writable folder with --checkpoint.dirpath. The previous checkpoints are intact."
            ) from None

