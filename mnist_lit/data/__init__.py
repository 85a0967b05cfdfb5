"""The data layer: what a set is (sets.py), reading its files (builtin_files.py; layouts.py, decoding.py and
decoded_cache.py for one's own pictures), how parts are split off (splits.py), outside pictures made
like a set's own (pictures.py), pictures of no class (outliers.py), augmentation, and the
LightningDataModule that serves them all (datamodule.py).

``mnist_lit.data.ImageDataModule``, the class path of configs and checkpoints written by 0.1.0-0.5.0,
still names the data module; imported on first use, so that the thin commands do not import Lightning.
"""

import importlib
from typing import Any

DATAMODULE = ("ImageDataModule", "MNISTDataModule", "DATA_DIR_ENV", "has_files", "load_builtin", "raw_folder", "resolve_data_dir")


def __getattr__(name: str) -> Any:
    if name in DATAMODULE:
        return getattr(importlib.import_module("mnist_lit.data.datamodule"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
