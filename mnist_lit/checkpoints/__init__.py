"""Checkpoint files: finding a run's, reading one safely (torch alone), and writing them whole (Lightning).

``mnist_lit.checkpoints.AtomicCheckpointIO`` and ``RunCheckpoint``, the class paths of configs written
by 0.1.0-0.5.0, still name the classes of writing.py; imported on first use, so that the commands
that read checkpoints do not import Lightning.
"""

import importlib
from typing import Any

WRITING = ("AtomicCheckpointIO", "RunCheckpoint")


def __getattr__(name: str) -> Any:
    if name in WRITING:
        return getattr(importlib.import_module("mnist_lit.checkpoints.writing"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
