"""The command line: LightningCLI with mnist-lit's defaults, callbacks and checkpoint lookup.

    python -m mnist_lit fit                      # train with the defaults below
    python -m mnist_lit test                     # evaluate the best checkpoint of the latest run
    python -m mnist_lit fit --print_config       # every option, as YAML
    python -m mnist_lit predict digit.png        # read digits from pictures (predict.py)
    python -m mnist_lit export --format onnx     # the network for other programs (export.py)
    python -m mnist_lit calibrate                # fit a checkpoint's temperature and threshold again (calibrate.py)
    python -m mnist_lit serve                    # HTTP and a page to draw on (serve.py)
    python -m mnist_lit tune                     # search for better fit options with Optuna (tune.py)

All defaults live in code (the __init__ signatures plus the values set here), so `fit` with no
arguments works from any directory and from an installed wheel; configs/default.yaml mirrors them.
"""

import dataclasses
import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from jsonargparse import ArgumentError, Namespace
from jsonargparse.typing import register_type
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor
from lightning.pytorch.cli import (
    LightningArgumentParser,
    LightningCLI,
    LRSchedulerTypeTuple,
)
from lightning.pytorch.utilities import rank_zero_only
from torch.optim import Optimizer

from mnist_lit.checkpoints.finding import resolve_checkpoint, resume_point, run_name
from mnist_lit.checkpoints.reading import dataset_of, read_checkpoint
from mnist_lit.checkpoints.writing import RunCheckpoint
from mnist_lit.commands import recipes
from mnist_lit.commands.progress_bar import ProgressBar
from mnist_lit.core.atomic_files import cannot_write
from mnist_lit.core.errors import UserError
from mnist_lit.core.hardware import fast_precision
from mnist_lit.data.datamodule import ImageDataModule
from mnist_lit.data.layouts import is_own_set
from mnist_lit.data.optimized_sets import SCHEMES, is_optimized_set, location_of
from mnist_lit.data.sets import DATASETS, DatasetInfo
from mnist_lit.evaluation.report import EvaluationReport, describe
from mnist_lit.models.classifier import ImageClassifier, check_schedule_for_finetuning
from mnist_lit.models.predictor import network_of

TRAINER_DEFAULTS = {
    "max_epochs": 5,
    "plugins": {"class_path": "mnist_lit.checkpoints.AtomicCheckpointIO"},
    "logger": {
        "class_path": "mnist_lit.evaluation.logger.TensorBoardLogger",
        # This logger never logs Lightning's hp_metric placeholder (logger.py); false says so in
        # the printed configuration.
        "init_args": {"save_dir": "logs", "name": "", "default_hp_metric": False},
    },
}
CALLBACK_DEFAULTS = {
    "checkpoint.dirpath": "checkpoints",
    "checkpoint.filename": "epoch={epoch:02d}-val_acc={val/acc:.4f}",
    # Metric names contain "/", which would otherwise become folders in the file name.
    "checkpoint.auto_insert_metric_name": False,
    "checkpoint.monitor": "val/acc",
    "checkpoint.mode": "max",
    "checkpoint.save_top_k": 1,
    "checkpoint.save_last": True,
    "early_stopping.monitor": "val/acc",
    "early_stopping.mode": "max",
    "early_stopping.patience": 3,
    # Keras-style "stop once accuracy is high enough".
    "early_stopping.stopping_threshold": 0.995,
    "lr_monitor.logging_interval": "epoch",
}
EVALUATION_SUBCOMMANDS = ("test", "validate")


def dataset_from_config(value: object) -> DatasetInfo:
    """--data.dataset as a saved config writes a checkpoint's set: its record (a mapping)."""
    if isinstance(value, DatasetInfo):
        return value
    if not isinstance(value, dict):
        raise ValueError("a data set's record is a mapping")
    return DatasetInfo.from_record(value)


# --data.dataset is a name or a path, or the set a checkpoint learned, which the configs that `test` and
# `validate` save hold as its record. A type of its own for jsonargparse (not a dataclass, whose path
# values it would read as config files: a CSV set's file among them).
register_type(DatasetInfo, serializer=DatasetInfo.record, deserializer=dataset_from_config)


def quiet_irrelevant_messages() -> None:
    """Silence library messages that say nothing about this run."""
    # The data is held in memory and cut into batches by indexing; worker processes would only copy it.
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    # A streamed set's loader has no worker processes, so its length, which the warning doubts, is exact.
    warnings.filterwarnings("ignore", message=".*`IterableDataset` has `__len__` defined.*")
    # Lightning 2.6 calls a torch.utils._pytree function that newer torch deprecates; the warning is
    # addressed to Lightning, not to users. A filter on the text: a no-op once Lightning changes.
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    # The summary's size estimate assumes 32-bit weights, which they are: only activations are bf16.
    warnings.filterwarnings("ignore", message=".*is not supported by the model summary.*")
    # A named function, so that calling main() again (tests do) does not stack up filters.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(not_an_advertisement)


def not_an_advertisement(record: logging.LogRecord) -> bool:
    """Drop the tip about a hosted logging service that Lightning prints on every run."""
    return "litlogger" not in record.getMessage()


class ImageCLI(LightningCLI):
    """LightningCLI with mnist-lit's callbacks, recipes by name, and the checkpoint's data set for `test`,
    `validate` and resuming."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        # `predict` reads picture files, not a datamodule: mnist-lit's own command (predict.py).
        return {name: skip for name, skip in LightningCLI.subcommands().items() if name != "predict"}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Always-present callbacks, configurable as --checkpoint.*, --early_stopping.* ...
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.add_lightning_class_args(EarlyStopping, "early_stopping")
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.add_lightning_class_args(ProgressBar, "progress_bar")
        parser.add_lightning_class_args(EvaluationReport, "report")
        parser.set_defaults(CALLBACK_DEFAULTS)
        # --optimizer and --lr_scheduler by class path (AdamW, SGD; CosineAnnealingLR, OneCycleLR...), as LightningCLI
        # offers them, handed to the model to build (before_instantiate_classes): its network exists only once
        # training starts, after LightningCLI would have built them.
        parser.add_optimizer_args((Optimizer,))
        parser.add_lr_scheduler_args(LRSchedulerTypeTuple)
        # The model learns the data module's set (its classes, pictures and normalization) when training
        # starts, and records it in the checkpoint (models/classifier.py: configure_model).

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        if args is None or isinstance(args, list):
            # A shipped recipe by name (`--config speedrun`), from any folder and from an installed wheel.
            self.config = parser.parse_args(recipes.config_options_resolved(sys.argv[1:] if args is None else args))
        else:
            super().parse_arguments(parser, args)
        # Runs before LightningCLI reads the checkpoint's hyperparameters, so those come from
        # the file this resolves to. Without it, `test` alone would evaluate untrained weights.
        subcommand = self.config.get("subcommand")
        if subcommand is None:
            return
        config = self.config[subcommand]
        run = None
        if subcommand == "fit" and config.ckpt_path == "last":
            found = resume_point(config.checkpoint.dirpath, config.trainer.default_root_dir or ".")
            if found is None:
                rank_zero_only(print)(f"No checkpoint under {config.checkpoint.dirpath}/ yet: starting a new run.")
            config.ckpt_path, run = (str(found[0]), found[1]) if found else (None, None)
        if subcommand in EVALUATION_SUBCOMMANDS or config.ckpt_path is not None:
            config.ckpt_path = str(resolve_checkpoint(config.ckpt_path, config.checkpoint.dirpath))
            # A checkpoint of another model fails here, in one line. The data module gets the set itself, as a
            # DatasetInfo: its pictures are read as the model learned them, and its parts rebuilt from the record.
            path = Path(config.ckpt_path)
            checkpoint = read_checkpoint(path)
            learned = dataset_of(checkpoint, path)
            network_of(checkpoint, learned, path, load=False)  # a checkpoint of another network: one line, before any run
            config.data.dataset = to_read(learned, config.data)
        # Lightning then loads the checkpoint again: with torch's safe loader too, whatever torch's default.
        if config.get("weights_only", False) is None:
            config.weights_only = True
        # Resuming a fit, or testing a run's checkpoint, logs into that run's folder: a resumed run
        # continues its own curves and checkpoints, and `test` puts its report beside them, so
        # TensorBoard shows the run's validation and test metrics in one row. (`validate` does
        # not: its step-0 values would land on the run's validation curves.)
        if run is None and config.ckpt_path:
            run = run_name(Path(config.ckpt_path), config.checkpoint.dirpath)
        logger = config.trainer.logger
        if subcommand in ("fit", "test") and run and isinstance(logger, Namespace) and "init_args" in logger:
            if logger.init_args.get("version") is None:
                logger.init_args.version = run

    def before_instantiate_classes(self) -> None:
        # Every command saves its configuration in the run's folder, none over the first `fit`'s.
        if self.subcommand != "fit":
            self.save_config_kwargs["config_filename"] = f"{self.subcommand}_config.yaml"
        elif self.config.fit.ckpt_path is not None:
            self.save_config_kwargs["config_filename"] = "resume_config.yaml"
        config = self.config[self.subcommand] if self.subcommand else self.config
        for key in ("optimizer", "lr_scheduler"):  # the model's own options, as plain values the checkpoint keeps
            if config.get(key) is not None:
                config.model[key] = config[key].as_dict() if isinstance(config[key], Namespace) else config[key]
        callbacks = config.trainer.get("callbacks") or []  # one callback, or a list of them
        callbacks = [callbacks] if isinstance(callbacks, Namespace) else [c for c in callbacks if isinstance(c, Namespace)]
        if any(str(callback.get("class_path", "")).endswith("Finetuning") for callback in callbacks):
            check_schedule_for_finetuning(config.model.lr_schedule, config.model.get("lr_scheduler"))  # before any file
        # precision null (the default) means the fastest one this hardware computes accurately.
        trainer = config.trainer
        if trainer.precision is None:
            trainer.precision = fast_precision(trainer.accelerator)

    def before_test(self) -> None:
        print(f"Evaluating {self.config.test.ckpt_path}")

    def after_validate(self) -> None:
        evaluated = self.datamodule.evaluated("val")
        rank_zero_only(print)(f"Validated on {describe({**evaluated, 'images': len(self.datamodule.val_set)})}")


LIGHTNING_SUBCOMMANDS = tuple(ImageCLI.subcommands())  # fit, validate, test
MNISTLitCLI = ImageCLI  # its name before 0.6.0, for code that imports it


def to_read(learned: DatasetInfo, data: Namespace) -> DatasetInfo:
    """The set to evaluate (or resume) a checkpoint on: the one it learned, unless --data.dataset names another
    whose classes are among the model's (MNIST's model on QMNIST, a folder's model on another folder, matched
    by class name; a folder's classes are compared once it is read). ``data``: the data module's options."""
    configured = data.dataset
    if configured is None or isinstance(configured, DatasetInfo):  # none given, or the record of a saved config
        if learned.path is None and learned.name not in DATASETS:
            raise UserError(f"The checkpoint learned a data set mnist-lit does not know ({learned.name!r}).")
        if learned.path is not None and not learned.path.startswith(SCHEMES) and not Path(learned.path).exists():
            raise UserError(
                f"The checkpoint learned the pictures in {learned.path}, which no longer exists; pass the set's "
                "new place, or another labelled set with the same classes, with --data.dataset PATH."
            )
        return learned.with_recorded_split(data.split_seed, data.val_fraction)
    if configured in DATASETS:
        other = DATASETS[configured]
        if not set(other.classes) <= set(learned.classes) or (other.channels, other.size) != (learned.channels, learned.size):
            raise UserError(
                f"The checkpoint learned {learned.name} ({learned.num_classes} classes, {learned.channels}x{learned.size}x"
                f"{learned.size} pictures) and cannot be evaluated on {configured}; leave out --data.dataset, or pass a set "
                "with the same classes."
            )
        return dataclasses.replace(other, classes=learned.classes)
    if not is_own_set(configured):
        raise UserError(f"Unknown data set {configured!r}; --data.dataset takes one of {', '.join(DATASETS)}, or a folder or CSV file.")
    # A folder or CSV file by its absolute path; a set written by litdata.optimize as a URL or an absolute path.
    optimized = is_optimized_set(configured)
    place = location_of(configured) if optimized else str(Path(configured).expanduser().resolve())
    if learned.path is not None and (learned.path == place or Path(learned.path) == Path(place)):
        unnamed = data.clone()
        unnamed.dataset = None
        return to_read(learned, unnamed)
    # Named as `fit` names it (data module): an optimized set by its folder's whole name, a folder or CSV file by its stem.
    name = Path(place).name if optimized else Path(place).stem
    if learned.resize == "ink":  # another folder of handwriting, read as the model's was
        return dataclasses.replace(learned, name=name, path=place)
    return dataclasses.replace(learned, name=name, path=place, pictures="photos", polarity="photos")


def build_cli(args: list[str], run: bool = True) -> ImageCLI:
    """The LightningCLI of `fit`/`validate`/`test` (``run=True``), or, with ``run=False``, the objects of a
    `fit` configured by ``args`` (no command name), not yet started: what `tune` trains in each trial."""
    return ImageCLI(
        ImageClassifier,
        ImageDataModule,
        seed_everything_default=42,
        trainer_defaults=TRAINER_DEFAULTS,
        auto_configure_optimizers=False,  # added by add_arguments_to_parser, for the model to build
        # Each logged run saves config.yaml in its own folder; only a logger-less run reuses one.
        save_config_kwargs={"overwrite": True},
        parser_kwargs={
            "prog": "python -m mnist_lit",
            "description": "Train, test and inspect a CNN on MNIST, another built-in set or a folder of your own "
            "pictures (--data.dataset). Also `predict` (classes of picture files), `export` (ONNX, TorchScript), "
            "`serve` (HTTP and a page to draw or upload on), `calibrate` (a checkpoint's temperature and threshold) "
            "and `tune` (a search for better options); add --help to any.",
            # Raise instead of printing the 100-line usage text before the one line that matters.
            "exit_on_error": False,
        },
        args=args,
        run=run,
    )


@contextmanager
def one_line_errors(argv: list[str], command: str = "") -> Iterator[None]:
    """Turn the errors addressed to the user (a bad option, an impossible combination, an unwritable
    folder) into one `error:` line and exit status, naming ``command``'s help."""
    try:
        yield
    except ArgumentError as error:  # an unknown option, a wrong type, a config file that does not parse
        message = " ".join(str(error).split())  # jsonargparse's messages span lines
        if message.startswith("Problems parsing config"):  # it does not say which file
            configs = [value for option, value in zip(argv, argv[1:]) if option in ("--config", "-c")]
            message = f"{', '.join(configs)}: {message}"
        help_line = " ".join(("python -m mnist_lit", command, "--help")).replace("  ", " ")
        print(f"error: {message} (`{help_line}` lists the options)", file=sys.stderr)
        raise SystemExit(2) from None
    # Lightning's MisconfigurationException is also addressed to the user (an impossible
    # combination of options), so it gets the same one-line treatment.
    except (UserError, MisconfigurationException) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except OSError as error:  # a run folder that cannot be created or written: read-only, full, a file in the way
        options = "--trainer.logger.init_args.save_dir and --checkpoint.dirpath"
        print(f"error: {cannot_write(error, options)}", file=sys.stderr)
        raise SystemExit(1) from None


def main(args: Optional[list[str]] = None) -> None:
    """`fit`, `validate` and `test` (``args``: the command line after `python -m mnist_lit`); __main__.py runs the others."""
    quiet_irrelevant_messages()
    argv = sys.argv[1:] if args is None else args
    command = argv[0] if argv[:1] and argv[0] in ImageCLI.subcommands() else ""
    with one_line_errors(argv, command):
        build_cli(args)


if __name__ == "__main__":
    main()
