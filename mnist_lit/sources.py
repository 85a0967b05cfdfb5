"""Reading a data set's files into uint8 tensors: torchvision's sets, and folders or CSV files of one's own pictures.

No Lightning here: data.py splits and batches what this returns.

- Built-in sets (datasets.py): torchvision parses the files (and downloads them when asked).
- A folder with one sub-folder per class (nested folders allowed), or with ``train/`` and ``test/``
  (and ``val/``) each holding such class folders; or a CSV file with a path and a label column.
  Every picture is decoded once, in parallel, made RGB, fitted into the square and made greyscale
  or kept in colour (preprocess.py), then cached on disk keyed by the file list, sizes,
  modification times and decoding options, so the next run on the same files decodes nothing.
"""

import csv
import hashlib
import json
import math
import os
import statistics
import sys
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Optional

import numpy as np
import platformdirs
import torch

from mnist_lit.datasets import DATASETS, DEFAULT_DATASET, DataSet
from mnist_lit.errors import UserError
from mnist_lit.files import replaced_atomically
from mnist_lit.hardware import usable_cores
from mnist_lit.networks import SMALLEST_SIDE
from mnist_lit.preprocess import decode_files, read_sizes, to_channels

DATA_DIR_ENV = "MNIST_LIT_DATA_DIR"
CACHE_DIR_ENV = "MNIST_LIT_CACHE_DIR"
REPLACE = "replace it with the data set's original file (or delete it to download it again)."
# IDX element types mnist-lit reads: unsigned bytes (pictures, most labels) and int32 (QMNIST's labels).
IDX_ITEM_SIZES = {0x08: 1, 0x0C: 4}
PARTS = ("train", "val", "test")
LARGEST_DEFAULT = 64  # the cap of the default side
CACHE_VERSION = 1
CHUNK = 256  # pictures decoded per task of a worker process


# --- built-in sets, through torchvision -------------------------------------------------------

def resolve_data_dir(data_dir: Optional[str]) -> Path:
    """The data root (holding MNIST/raw/, FashionMNIST/raw/...): the option, else $MNIST_LIT_DATA_DIR, else ./data."""
    return Path(data_dir or os.environ.get(DATA_DIR_ENV) or "data")


def raw_folder(data_dir: Path, spec: DataSet) -> Path:
    """Where torchvision keeps (and downloads) the set's files: <data_dir>/<class name>/raw, or CIFAR-10's folder."""
    return data_dir / (spec.files.folder or f"{spec.files.torchvision_class}/raw")


def has_files(data_dir: Path, spec: Optional[DataSet] = None) -> bool:
    """Whether ``data_dir`` holds the set's files (MNIST's by default) in torchvision's layout."""
    spec = spec or DATASETS[DEFAULT_DATASET]
    return all((raw_folder(data_dir, spec) / name).is_file() for name in spec.files.raw_files)


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


def check_builtin_files(spec: DataSet, data_dir: Path) -> Optional[int]:
    """The number of training pictures after checking every IDX file's header and length (None for CIFAR-10,
    whose files torchvision checks by their checksums)."""
    raw, names = raw_folder(data_dir, spec), spec.files.raw_files
    if spec.files.folder is not None:
        return None
    counts = []
    for images, labels in zip(names[::2], names[1::2]):
        counts.append(check_idx_file(raw / images))
        if counts[-1] != check_idx_file(raw / labels):
            raise UserError(f"{raw / images} and {raw / labels} hold different numbers of pictures; {REPLACE}")
    return counts[0]


def load_builtin(spec: DataSet, data_dir: Path, train: bool, download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """A split as pictures (N, C, H, W) uint8, upright, and labels (N,) int64 counted from 0.

    torchvision reads the files; the set's quirks are undone here: EMNIST's transposed pictures,
    EMNIST letters' labels that start at 1, QMNIST's eight label columns (the first is the class,
    as torchvision's ``compat`` reads it), CIFAR-10's (N, H, W, C) arrays.
    """
    import torchvision.datasets

    files = spec.files
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


# --- folders and CSV files of one's own pictures ---------------------------------------------

@dataclass
class Listing:
    """The picture files of one part of a set, with their class indices."""

    files: list[str]
    labels: list[int]


@dataclass
class FolderSet:
    """A folder or CSV set decoded: uint8 pictures (N, C, S, S) and labels per part ("train", "val", "test"
    or, for a folder without them, "all"), its class names, and the files that could not be read."""

    classes: tuple[str, ...]
    parts: dict[str, tuple[torch.Tensor, torch.Tensor]]
    size: int
    channels: int
    skipped: list[str]


def training_part(parts: dict) -> str:
    """The part that trains (and gives a folder set its default size and channels): train/, else the whole set."""
    return "train" if "train" in parts else "all"


def is_own_set(dataset: str) -> bool:
    """Whether --data.dataset names a folder or CSV file rather than a built-in set."""
    return dataset.lower().endswith(".csv") or os.sep in dataset or "/" in dataset or Path(dataset).exists()


def list_set(path: Path, path_column: str = "path", label_column: str = "label") -> tuple[tuple[str, ...], dict[str, Listing]]:
    """The class names and the parts of the set at ``path`` (a folder or a CSV file), before decoding."""
    if not path.exists():
        raise UserError(f"{path} does not exist; --data.dataset takes a built-in set's name, a folder of class folders or a CSV file.")
    if path.is_file():
        return list_csv(path, path_column, label_column)
    if (path / "train").is_dir() and (path / "test").is_dir():
        classes = class_folders(path / "train")
        parts = {}
        for part in PARTS:
            if (path / part).is_dir():
                found = class_folders(path / part)
                if part != "train" and not set(found) <= set(classes):
                    extra = sorted(set(found) - set(classes))
                    raise UserError(f"{path / part} has classes that {path / 'train'} lacks ({', '.join(extra[:5])}); give both the same class folders.")
                parts[part] = list_class_folders(path / part, classes)
        return classes, parts
    classes = class_folders(path)
    return classes, {"all": list_class_folders(path, classes)}


def class_folders(path: Path) -> tuple[str, ...]:
    classes = tuple(sorted(entry.name for entry in path.iterdir() if entry.is_dir() and not entry.name.startswith(".")))
    if len(classes) < 2:
        raise UserError(
            f"{path} holds {len(classes)} class folder{'s' if len(classes) != 1 else ''}; a folder set needs at least two "
            "(one sub-folder per class, named after it, holding its pictures)."
        )
    return classes


def list_class_folders(path: Path, classes: tuple[str, ...]) -> Listing:
    """Every file under each class folder (nested folders included) except hidden ones, in a stable order."""
    listing = Listing([], [])
    for index, name in enumerate(classes):
        files = files_under(path / name)
        listing.files += files
        listing.labels += [index] * len(files)
    return listing


def files_under(folder: Path) -> list[str]:
    """The files under ``folder`` and its sub-folders (not those behind links), hidden ones left out: each
    folder's files in name order, then its sub-folders in name order. os.walk and plain strings:
    pathlib's rglob took 5 s for 50,000 files."""
    found = []
    for root, folders, files in os.walk(folder):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        found += [root + os.sep + name for name in sorted(files) if not name.startswith(".")]
    return found


def list_csv(path: Path, path_column: str, label_column: str) -> tuple[tuple[str, ...], dict[str, Listing]]:
    options = "--data.path_column and --data.label_column"
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            reader = csv.DictReader(file)
            columns = reader.fieldnames or []
            if path_column not in columns or label_column not in columns:
                raise UserError(
                    f"{path} needs a {path_column!r} and a {label_column!r} column, and has {', '.join(map(repr, columns)) or 'none'}; "
                    f"name yours with {options}."
                )
            rows = [(row[path_column], (row[label_column] or "").strip()) for row in reader]
    except (UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"{path} is not a readable CSV file ({error}).") from None
    if any(not label for _, label in rows):
        line = next(i for i, (_, label) in enumerate(rows, start=2) if not label)
        raise UserError(f"{path}, line {line}: no label in column {label_column!r}; give every picture its class.")
    files = [str((path.parent / name).resolve()) for name, _ in rows]
    missing = [file for file in files if not os.path.isfile(file)]
    if missing:
        raise UserError(
            f"{path} names {len(missing):,} file(s) that do not exist ({', '.join(missing[:3])}"
            f"{'...' if len(missing) > 3 else ''}); paths are relative to the CSV file's folder."
        )
    classes = tuple(sorted({label for _, label in rows}))
    if len(classes) < 2:
        raise UserError(f"{path} has {len(classes)} class in column {label_column!r}; a data set needs at least two.")
    index = {name: i for i, name in enumerate(classes)}
    return classes, {"all": Listing(files, [index[label] for _, label in rows])}


def default_size(sides: list[int]) -> int:
    """The median longer side rounded to a multiple of 4, from 28 to 64."""
    median = statistics.median(sides) if sides else LARGEST_DEFAULT
    return int(min(max(4 * round(median / 4), SMALLEST_SIDE), LARGEST_DEFAULT))


@contextmanager
def workers(files: int) -> Iterator[Callable[..., list]]:
    """A function that runs ``function(chunk, *args)`` for every chunk, on every core when there are
    more than ``CHUNK`` files to read: one pool of processes for all the reading of a set."""
    count = min(usable_cores(), -(-files // CHUNK))
    if count <= 1:
        yield lambda function, chunks, *args: [function(chunk, *args) for chunk in chunks]
        return
    # On Linux, forks of this process, as torch's DataLoader makes its workers: they start at once and
    # work from a notebook, from standard input or from a script without a __main__ guard, where fresh
    # ("spawn") processes cannot. The workers use only numpy and Pillow, never torch's threads. Elsewhere
    # fork is unsafe (macOS) or missing (Windows): fresh processes.
    context = get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ProcessPoolExecutor(count, mp_context=context) as pool:
        yield lambda function, chunks, *args: list(pool.map(function, chunks, *([arg] * len(chunks) for arg in args)))


def chunked(items: list, size: int = CHUNK) -> list[list]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def read_folder_set(
    path: Path, image_size: Optional[int], channels: Optional[int], resize: str, path_column: str, label_column: str
) -> FolderSet:
    """The set at ``path`` decoded, from the cache when the files and options are those it was made from."""
    classes, listings = list_set(path, path_column, label_column)
    key = cache_key(path, listings, resize)
    cached = load_cache(path, key)
    # The cache holds one decoding per folder; null options accept whatever it was decoded with
    # (the same files give the same default size and channels).
    if cached is not None and image_size in (None, cached.size) and channels in (None, cached.channels):
        return cached
    del cached  # mapped from the file about to be replaced, which Windows would refuse
    decoded = decode_set(classes, listings, image_size, channels, resize)
    save_cache(path, key, decoded)
    return decoded


def decode_set(
    classes: tuple[str, ...], listings: dict[str, Listing], image_size: Optional[int], channels: Optional[int], resize: str
) -> FolderSet:
    training = training_part(listings)
    skipped: list[str] = []
    parts, grey = {}, {}
    with workers(sum(len(listing.files) for listing in listings.values())) as run:
        if image_size is None:  # from the training pictures' headers, which Pillow reads without decoding
            sides = [side for chunk in run(read_sizes, chunked(listings[training].files, 4 * CHUNK)) for side in chunk if side]
            image_size = default_size(sides)
        results = {part: run(decode_files, chunked(listing.files), image_size, resize) for part, listing in listings.items()}
    for part, listing in listings.items():
        pixels = [array for result in results[part] for array in result[0]]
        greys = [flag for result in results[part] for flag in result[1]]
        errors = [error for result in results[part] for error in result[2]]
        kept = [i for i, array in enumerate(pixels) if array is not None]
        skipped += [errors[i] for i in range(len(pixels)) if pixels[i] is None]
        images = np.stack([pixels[i] for i in kept]) if kept else np.zeros((0, image_size, image_size, 3), np.uint8)
        labels = torch.tensor([listing.labels[i] for i in kept], dtype=torch.long)
        parts[part], grey[part] = (images, labels), all(greys[i] for i in kept)
    if channels is None:
        channels = 1 if grey[training] else 3
    for part, (images, labels) in parts.items():
        parts[part] = (torch.from_numpy(to_channels(images, channels)), labels)
    check_classes_have_pictures(classes, parts[training][1], skipped)
    return FolderSet(classes, parts, image_size, channels, skipped)


def check_classes_have_pictures(classes: tuple[str, ...], training_labels: torch.Tensor, skipped: list[str]) -> None:
    counts = torch.bincount(training_labels, minlength=len(classes)).tolist()
    empty = [name for name, count in zip(classes, counts) if count == 0]
    if empty:
        hint = f" ({len(skipped):,} unreadable file(s) skipped)" if skipped else ""
        raise UserError(
            f"class folder(s) {', '.join(map(repr, empty[:5]))} hold no readable pictures{hint}; add pictures "
            "(PNG, JPEG, BMP, GIF, TIFF, WebP) or remove the folder."
        )


def warn_skipped(skipped: list[str]) -> None:
    if skipped:
        shown = "; ".join(skipped[:3])
        warnings.warn(f"skipped {len(skipped):,} file(s) that are not readable pictures: {shown}{'; ...' if len(skipped) > 3 else ''}", stacklevel=2)


# --- the decoded-pictures cache ----------------------------------------------------------------

def cache_dir() -> Path:
    """$MNIST_LIT_CACHE_DIR, else the operating system's cache folder for mnist-lit ($XDG_CACHE_HOME/mnist-lit or
    ~/.cache/mnist-lit on Linux, ~/Library/Caches/mnist-lit on macOS, %LOCALAPPDATA%\\mnist-lit\\Cache on
    Windows): never the data set's own folder, which may be read-only or shared."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    return Path(platformdirs.user_cache_dir("mnist-lit", appauthor=False))


def cache_key(path: Path, listings: dict[str, Listing], resize: str) -> str:
    """A digest of every file's path, class, size and modification time, and of how they are fitted."""
    digest = hashlib.sha256(json.dumps([CACHE_VERSION, str(path.resolve()), resize]).encode())
    for part, listing in sorted(listings.items()):
        digest.update(part.encode())
        for file, label in zip(listing.files, listing.labels):
            stat = os.stat(file)
            digest.update(f"{file}\0{label}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def cache_file(path: Path, key: str) -> Path:
    return cache_dir() / f"{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]}-{key}.pt"


def load_cache(path: Path, key: str) -> Optional[FolderSet]:
    """The cached decoding, or None when there is none or it does not hold what its key promises (then rebuilt)."""
    file = cache_file(path, key)
    if not file.is_file():
        return None
    try:
        # Mapped, not read: the pages come from the operating system's file cache as batches touch them,
        # and processes training on one machine (DDP) share them. The file is replaced, never rewritten
        # in place, so the mapping stays valid.
        saved = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        folder_set = FolderSet(
            tuple(saved["classes"]), {part: (images, labels) for part, (images, labels) in saved["parts"].items()},
            int(saved["size"]), int(saved["channels"]), list(saved["skipped"]),
        )
        shape = (folder_set.channels, folder_set.size, folder_set.size)
        for images, labels in folder_set.parts.values():
            if images.dtype != torch.uint8 or tuple(images.shape[1:]) != shape or len(images) != len(labels):
                raise ValueError("inconsistent shapes")
        if saved["key"] != key:
            raise ValueError("another key")
        return folder_set
    except Exception:  # noqa: BLE001 - a damaged or foreign cache file is rebuilt, never trusted
        return None


def save_cache(path: Path, key: str, folder_set: FolderSet) -> None:
    """Write the decoding for next time and drop older ones of the same folder; a cache that cannot be
    written only costs the next run its decoding time."""
    file = cache_file(path, key)
    try:
        with replaced_atomically(file) as temporary:
            torch.save({
                "key": key, "classes": list(folder_set.classes), "parts": {k: list(v) for k, v in folder_set.parts.items()},
                "size": folder_set.size, "channels": folder_set.channels, "skipped": folder_set.skipped,
            }, temporary)
        for old in file.parent.glob(f"{file.name.split('-')[0]}-*.pt"):
            if old != file:
                old.unlink(missing_ok=True)
    except OSError as error:
        warnings.warn(f"could not cache the decoded pictures in {file.parent} ({error.strerror}); set {CACHE_DIR_ENV} to a writable folder", stacklevel=2)
