"""A built-in set's files (sets.py), read by torchvision into uint8 tensors, after checking them.

torchvision parses the files, and downloads them when asked; this checks every IDX file's header
and length first, so that a damaged file is one line rather than a numpy error.

    python -m mnist_lit.data.builtin_files   # mean and std of every built-in set whose training files are here
"""

import math
import os
import sys
from pathlib import Path
from typing import Optional

import torch

from mnist_lit.core.errors import UserError
from mnist_lit.data.sets import DATASETS, DEFAULT_DATASET, DatasetInfo, pixel_stats

DATA_DIR_ENV = "MNIST_LIT_DATA_DIR"
REPLACE = "replace it with the data set's original file (or delete it to download it again)."
# IDX element types mnist-lit reads: unsigned bytes (pictures, most labels) and int32 (QMNIST's labels).
IDX_ITEM_SIZES = {0x08: 1, 0x0C: 4}


def resolve_data_dir(data_dir: Optional[str]) -> Path:
    """The data root (holding MNIST/raw/, FashionMNIST/raw/...): the option, else $MNIST_LIT_DATA_DIR, else ./data."""
    return Path(data_dir or os.environ.get(DATA_DIR_ENV) or "data")


def raw_folder(data_dir: Path, info: DatasetInfo) -> Path:
    """Where torchvision keeps (and downloads) the set's files: <data_dir>/<class name>/raw, or CIFAR-10's folder."""
    return data_dir / (info.files.folder or f"{info.files.torchvision_class}/raw")


def has_files(data_dir: Path, info: Optional[DatasetInfo] = None) -> bool:
    """Whether ``data_dir`` holds the set's files (MNIST's by default) in torchvision's layout."""
    info = info or DATASETS[DEFAULT_DATASET]
    return all((raw_folder(data_dir, info) / name).is_file() for name in info.files.raw_files)


def check_idx_file(path: Path) -> int:
    """The number of pictures or labels in an IDX file, after checking its header and length."""
    images = "images" in path.name
    kind = "images" if images else "labels"
    with open(path, "rb") as file:
        magic = file.read(4)
        ndim = magic[3] if len(magic) == 4 else 0
        dims = [int.from_bytes(file.read(4), "big") for _ in range(ndim if ndim <= 3 else 0)]
    item_size = IDX_ITEM_SIZES.get(magic[2]) if len(magic) == 4 else None
    expected_shape = dims[1:] == [28, 28] if images else len(dims) in (1, 2)
    if magic[:2] != b"\0\0" or item_size is None or not 1 <= ndim <= 3 or not expected_shape:
        raise UserError(f"{path} is not an MNIST-format {kind} file (wrong header); {REPLACE}")
    expected = 4 + 4 * ndim + item_size * math.prod(dims)
    if path.stat().st_size != expected:
        raise UserError(
            f"{path} is truncated or damaged ({path.stat().st_size:,} bytes, its header says {expected:,}); {REPLACE}"
        )
    return dims[0]


def check_builtin_files(info: DatasetInfo, data_dir: Path) -> Optional[int]:
    """The number of training pictures after checking every IDX file's header and length (None for CIFAR-10,
    whose files torchvision checks by their checksums)."""
    raw, names = raw_folder(data_dir, info), info.files.raw_files
    if info.files.folder is not None:
        return None
    counts = []
    for images, labels in zip(names[::2], names[1::2]):
        counts.append(check_idx_file(raw / images))
        if counts[-1] != check_idx_file(raw / labels):
            raise UserError(f"{raw / images} and {raw / labels} hold different numbers of pictures; {REPLACE}")
    return counts[0]


def load_builtin(info: DatasetInfo, data_dir: Path, train: bool, download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """A split as pictures (N, C, H, W) uint8, upright, and labels (N,) int64 counted from 0.

    torchvision reads the files; the set's quirks are undone here: EMNIST's transposed pictures,
    EMNIST letters' labels that start at 1, QMNIST's eight label columns (the first is the class,
    as torchvision's ``compat`` reads it), CIFAR-10's (N, H, W, C) arrays.
    """
    import torchvision.datasets

    files = info.files
    options = {**files.options, **({} if train else files.test_options)}
    data = getattr(torchvision.datasets, files.torchvision_class)(data_dir, train=train, download=download, **options)
    images, labels = torch.as_tensor(data.data), torch.as_tensor(data.targets)
    if labels.ndim == 2:
        labels = labels[:, 0]
    if images.ndim == 4:  # CIFAR-10: (N, H, W, C)
        images = images.permute(0, 3, 1, 2)
    else:
        images = (images.transpose(1, 2) if files.transposed else images).unsqueeze(1)
    return images.contiguous(), labels.long() - files.label_offset


def main(data_dir: Optional[str] = None) -> None:
    root = resolve_data_dir(data_dir)
    for info in DATASETS.values():
        try:
            images, _ = load_builtin(info, root, train=True)
        except RuntimeError:  # torchvision's "Dataset not found": reported and skipped
            print(f"{info.name}: no training files in {raw_folder(root, info)}/")
            continue
        mean, std = pixel_stats(images)
        print(f"{info.name}: mean {mean}, std {std} over {len(images):,} training pictures (table: {info.mean}, {info.std})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
