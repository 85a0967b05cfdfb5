"""TensorBoard logging with each run's final metrics beside its hyperparameters.

TensorBoard's HPARAMS tab lists the metrics that a run declares together with its
hyperparameters, and fills each with the metric's latest logged value. Lightning's logger
declares only a placeholder, ``hp_metric``; this one declares the validation and test metrics,
so runs can be sorted and compared by them.
"""

from argparse import Namespace
from typing import Any, Optional, Union

from lightning.fabric.utilities.logger import _convert_params, _flatten_dict
from lightning.pytorch import loggers
from lightning.pytorch.utilities import rank_zero_only
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

    ``default_hp_metric`` has no effect: there is no placeholder to log.
    """

    @rank_zero_only
    def log_hyperparams(
        self, params: Union[dict[str, Any], Namespace], metrics: Optional[dict[str, Any]] = None, step: Optional[int] = None
    ) -> None:
        # LightningCLI's `_instantiator` is bookkeeping for reloading the model, not a hyperparameter.
        params = {name: value for name, value in _convert_params(params).items() if not name.startswith("_")}
        if metrics is not None:  # an explicit call gets Lightning's behaviour
            return super().log_hyperparams(params, metrics, step)
        super().log_hyperparams(params, metrics={})  # hparams.yaml only: no hp_metric placeholder
        # Only the names matter here: TensorBoard reads the values from the logged scalars.
        summaries = hparams(self._sanitize_params(_flatten_dict(params)), dict.fromkeys(HPARAMS_METRICS, 0.0))
        writer = self.experiment._get_file_writer()
        for summary in summaries:
            writer.add_summary(summary)
