"""TensorBoard logging with each run's final metrics beside its hyperparameters, and its pictures.

TensorBoard's HPARAMS tab lists the metrics that a run declares together with its
hyperparameters, and fills each with the metric's latest logged value. Lightning's logger
declares only a placeholder, ``hp_metric``; this one declares the validation and test metrics,
so runs can be sorted and compared by them.
"""

from argparse import Namespace
from typing import Any, Optional, Union

from lightning.pytorch import loggers
from lightning.pytorch.utilities import rank_zero_only
from matplotlib.figure import Figure
from torch.utils.tensorboard.summary import hparams

# `test` logs into the folder of the run whose checkpoint it evaluates (cli.py), so one row can
# show both the validation and the test metrics.
HPARAMS_METRICS = (
    "val/acc_best",
    "val/acc",
    "val/loss",
    "test/acc",
    "test/precision",
    "test/recall",
    "test/f1",
    "test/loss",
)


class TensorBoardLogger(loggers.TensorBoardLogger):
    """Lightning's TensorBoardLogger, with HPARAMS_METRICS in the HPARAMS tab instead of ``hp_metric``.

    It never logs the ``hp_metric`` placeholder, whatever ``default_hp_metric`` says.
    """

    last_step: Optional[int] = None

    def log_metrics(self, metrics: dict[str, float], step: Optional[int] = None) -> None:
        # Remembered so that pictures land on the step of the scalars logged with them.
        self.last_step = step
        super().log_metrics(metrics, step)

    @rank_zero_only
    def log_figure(self, tag: str, figure: Figure, step: Optional[int] = None) -> None:
        """A matplotlib figure under IMAGES, at ``step``, else at the step of the latest logged scalars."""
        # close=False: the figure is not pyplot's, and pyplot's global state is not for other threads.
        self.experiment.add_figure(tag, figure, global_step=self.last_step if step is None else step, close=False)

    @rank_zero_only
    def log_hyperparams(
        self, params: Union[dict[str, Any], Namespace], metrics: Optional[dict[str, Any]] = None, step: Optional[int] = None
    ) -> None:
        params = vars(params) if isinstance(params, Namespace) else dict(params)
        # LightningCLI's `_instantiator` is bookkeeping for reloading the model, not a hyperparameter.
        params = {name: value for name, value in params.items() if not name.startswith("_")}
        if metrics is not None:  # an explicit call gets Lightning's behaviour
            return super().log_hyperparams(params, metrics, step)
        super().log_hyperparams(params, metrics={})  # hparams.yaml only: no hp_metric placeholder
        # TensorBoard takes numbers, strings and booleans; anything else is shown as its text.
        shown = {name: value if isinstance(value, (bool, int, float, str)) else str(value) for name, value in params.items()}
        # Only the metric names matter here: TensorBoard reads the values from the logged scalars.
        for summary in hparams(shown, dict.fromkeys(HPARAMS_METRICS, 0.0)):
            self.experiment.file_writer.add_summary(summary)
