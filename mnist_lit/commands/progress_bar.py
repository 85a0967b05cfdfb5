"""Progress display: rich bars on a terminal, one plain line per epoch anywhere else.

A redrawn bar written to a log file (CI, nohup, `> train.log`) turns into thousands of
carriage-return fragments; a line per epoch stays readable.
"""

import sys
import time

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar

# What the bar and the per-epoch line show, in order, under these short names. Everything
# else is in TensorBoard; a narrow terminal has room for only a few numbers.
BAR_METRICS = {"train/loss_step": "train/loss", "val/loss": "val/loss", "val/acc": "val/acc"}
EPOCH_LINE_METRICS = {
    "train/loss_epoch": "train/loss",
    "train/acc": "train/acc",
    "val/loss": "val/loss",
    "val/acc": "val/acc",
}


class ProgressBar(RichProgressBar):
    """RichProgressBar that falls back to printing one line per epoch when stdout is not a terminal."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        # refresh_rate 0 means silent in both forms.
        self.plain = not sys.stdout.isatty() and self.refresh_rate > 0
        # A run resumed in the middle of an epoch starts without on_train_epoch_start.
        self.epoch_started = time.monotonic()
        if self.plain:
            self.disable()

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        return _chosen(trainer, BAR_METRICS)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        self.epoch_started = time.monotonic()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self.plain and trainer.is_global_zero:
            shown = [f"{name} {value:.4f}" for name, value in _chosen(trainer, EPOCH_LINE_METRICS).items()]
            seconds = time.monotonic() - self.epoch_started
            print(f"Epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: {', '.join(shown)} ({seconds:.1f} s)", flush=True)


def _chosen(trainer: L.Trainer, names: dict[str, str]) -> dict[str, float]:
    """The logged metrics named in ``names`` that exist so far, under their short names."""
    metrics = trainer.callback_metrics
    return {short: metrics[key].item() for key, short in names.items() if key in metrics}
