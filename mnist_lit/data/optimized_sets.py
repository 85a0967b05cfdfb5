"""A set already written by LitData's ``optimize``, named directly: a local folder or an object-storage URL.

Its parts are the folders ``train/`` and ``val/`` (and ``test/``, which `test` reads), each written by
``litdata.optimize`` with items ``{"image": pixels, "label": class index}``: the pixels a square
uint8 array, (side, side) or (side, side, channels), or a PIL image. The chunk folders mnist-lit
writes for a streamed folder (streaming.py) are such sets. The first run reads every part once, for
the side, the channels, the classes, the mean and std of the training part and each part's labels;
a note of it kept in the cache spares the next runs that reading.
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from mnist_lit.core.atomic_files import replaced_atomically
from mnist_lit.core.errors import UserError
from mnist_lit.core.progress_lines import progress
from mnist_lit.data.decoded_cache import cache_dir
from mnist_lit.data.streaming import as_rgb, count_pixels, open_part

SCHEMES = ("s3://", "gs://", "azure://", "hf://")  # the object stores LitData reads from
PARTS = ("train", "val", "test")


def is_optimized_set(source: str) -> bool:
    """Whether --data.dataset names a set optimized by LitData: a URL, or a folder whose train/ holds an index."""
    return source.startswith(SCHEMES) or (Path(source).expanduser() / "train" / "index.json").is_file()


def location_of(source: str) -> str:
    """A URL as given, a local folder as its absolute path."""
    return source.rstrip("/") if source.startswith(SCHEMES) else str(Path(source).expanduser().resolve())


@dataclass
class Survey:
    """What one reading of an optimized set found: its side and channels, the number of classes, the training
    part's pixel histograms (R, G, B, luminance) and every part's labels."""

    side: int
    channels: int
    num_classes: int
    histograms: np.ndarray
    labels: dict[str, list[int]]


def survey(location: str) -> Survey:
    """The set at ``location`` read once (or its note in the cache, made the first time)."""
    note = cache_dir() / f"optimized-{hashlib.sha256(location.encode()).hexdigest()[:16]}.json"
    sizes = {part: len(dataset) for part in PARTS if (dataset := open_part(location, part, missing_ok=part != "train"))}
    if note.is_file():
        saved = json.loads(note.read_text())
        if saved.get("sizes") == sizes:  # a set rewritten under the same name has other sizes, at least most often
            return Survey(saved["side"], saved["channels"], saved["num_classes"], np.asarray(saved["histograms"]), saved["labels"])
    side, channels, histograms, labels = None, 1, np.zeros((4, 256), np.int64), {}
    with progress(f"Reading {location} once", sum(sizes.values())) as advance:
        for part in sizes:
            labels[part] = []
            for item in open_part(location, part):
                pixels = np.asarray(item["image"])
                if pixels.ndim not in (2, 3) or pixels.shape[0] != pixels.shape[1] or side not in (None, pixels.shape[0]):
                    raise UserError(f"{location}/{part} holds a picture of shape {pixels.shape}; an optimized set's pictures are "
                                    f"squares of one side, (side, side) or (side, side, channels) uint8 pixels.")
                side = pixels.shape[0]
                labels[part].append(int(item["label"]))
                if part == "train":
                    channels = max(channels, 1 if pixels.ndim == 2 or pixels.shape[2] == 1 else 3)
                    count_pixels(histograms, as_rgb(pixels))
                advance(1)
    found = Survey(side, channels, max(max(labels.get(part) or [0]) for part in labels) + 1, histograms, labels)
    try:
        with replaced_atomically(note) as temporary:
            temporary.write_text(json.dumps({**found.__dict__, "histograms": histograms.tolist(), "sizes": sizes}))
    except OSError:
        pass  # the next run reads the set once more
    return found


def class_names(found: Survey, chosen: tuple[str, ...], location: str) -> tuple[str, ...]:
    """--data.classes names the labels 0, 1... in order; without it, they are their numbers."""
    if not chosen:
        return tuple(str(label) for label in range(found.num_classes))
    if len(chosen) != found.num_classes:
        raise UserError(f"{location}'s labels are 0-{found.num_classes - 1}: --data.classes names {found.num_classes} classes "
                        f"in that order, got {len(chosen)}.")
    return chosen


def part_labels(found: Survey, part: str) -> Optional[torch.Tensor]:
    return torch.tensor(found.labels[part], dtype=torch.long) if part in found.labels else None
