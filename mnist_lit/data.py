"""A data set (datasets.py) as a LightningDataModule that keeps every picture in memory.

sources.py turns the files into uint8 tensors: torchvision's sets, or a folder or CSV file of
one's own pictures, decoded once and cached. After that batches are cut from the tensors by
indexing; the usual per-sample PIL path costs more than the network itself on a small CPU. On a
GPU the tensors live in GPU memory (55 MB for MNIST), so batches are cut there with no copy per
step. Batches hold uint8 pixels: the model normalizes them with its set's mean and std.
"""

import sys
from pathlib import Path
from typing import Literal, Optional

import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from mnist_lit.augment import augment, random_affine, random_flip
from mnist_lit.datasets import DATASETS, DEFAULT_DATASET, DataSet, pixel_stats
from mnist_lit.errors import UserError
from mnist_lit.networks import SMALLEST_SIDE
from mnist_lit.outliers import synthetic_outliers
from mnist_lit.sources import (
    DATA_DIR_ENV,
    REPLACE,
    check_builtin_files,
    has_files,
    is_own_set,
    load_builtin,
    raw_folder,
    read_folder_set,
    resolve_data_dir,
    training_part,
    warn_skipped,
)

# A class with more than this many times the pictures of another gets a warning.
IMBALANCE = 5
LARGEST_SIDE = 128
OUTLIERS_MADE = 4096


def check_val_size(val_size: int, n: int) -> None:
    if not 0 < val_size < n:
        raise UserError(f"val_size must be between 1 and {n - 1} for {n:,} training images, got {val_size}.")


def split_indices(n: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of range(n) into (train, validation) index tensors."""
    check_val_size(val_size, n)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[val_size:], order[:val_size]


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded split of the indices of ``labels`` with ``fraction`` of every class (at least one picture of
    each class that has two) held out for validation."""
    generator = torch.Generator().manual_seed(seed)
    train, val = [], []
    for label in labels.unique().tolist():
        members = torch.nonzero(labels == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        held = min(max(round(fraction * len(members)), 1), len(members) - 1)
        val.append(members[:held])
        train.append(members[held:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values


def take(images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The pictures and labels at ``index``. index_select copies rows 2.5x faster than ``images[index]``
    (0.26 s against 0.66 s for the training part of 50,000 colour pictures of 64x64)."""
    return images.index_select(0, index), labels.index_select(0, index)


class InMemoryPictures(Dataset):
    """Pictures (N, C, H, W) uint8 and labels (N,) int64 that hand out whole batches."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]

    # DataLoader calls this with all the indices of a batch at once: one gather instead of
    # batch_size lookups followed by a Python-level collate.
    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, device=self.images.device)
        return self.images[index], self.labels[index]


def keep_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """collate_fn for InMemoryPictures, whose batches arrive already stacked."""
    return batch


class ImageDataModule(L.LightningDataModule):
    """A data set's pictures split into training, validation and test parts, held in memory.

    Args:
        data_dir: the data root of the built-in sets, holding ``MNIST/raw/``, ``FashionMNIST/raw/``...
            as torchvision lays them out; null means $MNIST_LIT_DATA_DIR, else ``./data``.
        dataset: a built-in set (mnist, fashion_mnist, kmnist, emnist_balanced, emnist_letters,
            emnist_digits, qmnist, cifar10), or the path of a folder of class folders (or of one with
            train/ and test/, and optionally val/, each holding class folders), or of a CSV file with
            a path and a label column. Null means mnist, or the checkpoint's set for `test`.
        batch_size: training batch size.
        eval_batch_size: batch size for validation and test, which need no gradients. Larger
            is not faster on a CPU: at 1,000 the first layer's activations (43 MB in bf16) are
            too large for the allocator to reuse (hardware.py), so each batch faults in 21,000
            fresh pages and validation takes 30% longer.
        val_size: how many training pictures of a built-in set are held out for validation.
        val_fraction: the share of each class of a folder or CSV set held out for validation
            (stratified), unless the folder has its own val/.
        split_seed: seed of the train/validation split, fixed so runs compare on the same pictures.
        download: fetch a built-in set's files from the internet when they are missing.
        image_size: the square side a folder or CSV set's pictures are fitted into; null picks the
            median longer side, rounded to a multiple of 4, from 28 to 64.
        channels: 1 (greyscale) or 3 (colour) for a folder or CSV set; null picks 1 when every
            training picture is grey, else 3.
        resize: "pad" fits the whole picture into the square and pads with its border colour;
            "crop" keeps the centre square.
        balance: for sets whose classes have unequal numbers of pictures: "sampler" draws training
            pictures so that every class is seen as often, "loss" weighs each class's loss by the
            inverse of its share, "none" (the default) trains on the pictures as they are.
        path_column, label_column: the CSV columns that hold each picture's path (relative to the
            CSV file) and class.
        augment_degrees, augment_shift, augment_scale: training augmentation (augment.py): each
            training picture rotated by up to this many degrees, shifted by up to this fraction
            of its side and zoomed in or out by up to this fraction; all 0 (the default) is off.
        augment_flip: also mirror half the training pictures left to right (never for digits or letters).
            Validation and test pictures are never augmented.
        outliers: pictures of no class for the model to learn to be unsure of (outliers.py; the
            model adds some to each training batch): "synthetic" (tangled strokes and noise), "none",
            or "auto" (the default): synthetic for handwriting and clothing, none for photos.
    """

    def __init__(
        self,
        data_dir: Optional[str] = None,
        dataset: Optional[str] = None,
        batch_size: int = 128,
        eval_batch_size: int = 500,
        val_size: int = 5000,
        split_seed: int = 1234,
        download: bool = True,
        augment_degrees: float = 0.0,
        augment_shift: float = 0.0,
        augment_scale: float = 0.0,
        val_fraction: float = 0.1,
        image_size: Optional[int] = None,
        channels: Optional[Literal[1, 3]] = None,
        resize: Literal["pad", "crop"] = "pad",
        balance: Literal["none", "sampler", "loss"] = "none",
        augment_flip: bool = False,
        path_column: str = "path",
        label_column: str = "label",
        outliers: Literal["auto", "synthetic", "none"] = "auto",
    ) -> None:
        super().__init__()
        dataset = dataset or DEFAULT_DATASET
        self.own_set = dataset not in DATASETS and is_own_set(dataset)
        if not self.own_set and dataset not in DATASETS:
            raise UserError(
                f"Unknown data set {dataset!r}; --data.dataset takes one of {', '.join(DATASETS)}, "
                "or the path of a folder of class folders or of a CSV file."
            )
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value < 1:
                raise UserError(f"{name} must be a positive integer, got {value}.")
        if augment_degrees < 0 or not 0 <= augment_shift < 0.5 or not 0 <= augment_scale < 1:
            raise UserError(
                "Need augment_degrees >= 0, 0 <= augment_shift < 0.5 and 0 <= augment_scale < 1; got "
                f"{augment_degrees}, {augment_shift} and {augment_scale}."
            )
        if not 0 < val_fraction < 1:
            raise UserError(f"val_fraction must be between 0 and 1, got {val_fraction}.")
        if image_size is not None and not SMALLEST_SIDE <= image_size <= LARGEST_SIDE:
            raise UserError(f"image_size must be from {SMALLEST_SIDE} to {LARGEST_SIDE}, got {image_size}.")
        if not self.own_set and (image_size is not None or channels is not None):
            spec = DATASETS[dataset]
            if (image_size or spec.size) != spec.size or (channels or spec.channels) != spec.channels:
                raise UserError(
                    f"{dataset} has {spec.channels}-channel pictures of {spec.size}x{spec.size}; --data.image_size and "
                    "--data.channels apply to folder and CSV sets."
                )
        self.augmentations = [random_affine(augment_degrees, augment_shift, augment_scale)] if (
            augment_degrees or augment_shift or augment_scale
        ) else []
        if augment_flip:
            self.augmentations.append(random_flip())
        self.save_hyperparameters()
        self.hparams.dataset = dataset
        self.data_dir = resolve_data_dir(data_dir)
        if self.own_set:
            self.path = Path(dataset).expanduser().resolve()
            self.dataset: Optional[DataSet] = None  # known once the pictures are read (setup)
            self.classes: list[str] = []
        else:
            self.path = None
            self.dataset = DATASETS[dataset]
            self.classes = list(self.dataset.classes)  # what the report calls each class
            # Checked again against the files themselves in prepare_data; this catches it before anything runs.
            check_val_size(val_size, self.dataset.files.train_size)
        self.train_set: Optional[InMemoryPictures] = None
        self.val_set: Optional[InMemoryPictures] = None
        self.test_set: Optional[InMemoryPictures] = None
        self.loss_weights: Optional[torch.Tensor] = None
        self._outliers: Optional[torch.Tensor] = None

    # --- built-in sets -------------------------------------------------------------------------

    def prepare_data(self) -> None:
        if self.own_set:
            return  # read in setup, on each process, from the cache after the first
        spec, raw = self.dataset, raw_folder(self.data_dir, self.dataset)
        if has_files(self.data_dir, spec):
            # Here, before Lightning creates the run's folders: a damaged file must leave nothing behind.
            count = check_builtin_files(spec, self.data_dir)
            if count is not None:
                check_val_size(self.hparams.val_size, count)
            return
        files = spec.files
        missing_help = (
            f"{files.torchvision_class} files not found: put {', '.join(files.raw_files)} in {raw}/, "
            f"or point at a folder holding {raw.relative_to(self.data_dir)}/ with --data.data_dir DIR or {DATA_DIR_ENV}=DIR."
        )
        if not self.hparams.download:
            raise UserError(missing_help)
        try:
            for train in (True, False):
                load_builtin(spec, self.data_dir, train, download=True)
        except (RuntimeError, OSError) as error:  # torchvision collects every mirror's URLError into one
            raise UserError(f"Could not download {files.torchvision_class} ({_last_line(error)}). {missing_help}") from None

    def _load_builtin(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            images, labels = load_builtin(self.dataset, self.data_dir, train)
        except RuntimeError:
            self.prepare_data()  # setup without prepare_data (plain Python use): same message
            images, labels = load_builtin(self.dataset, self.data_dir, train)
        if len(labels) and not 0 <= labels.min() <= labels.max() < self.dataset.num_classes:
            split = "training" if train else "test"
            raise UserError(
                f"The {split} labels in {raw_folder(self.data_dir, self.dataset)} are not all classes "
                f"0-{self.dataset.num_classes - 1} of {self.dataset.name}; {REPLACE}"
            )
        return images, labels

    # --- every set -----------------------------------------------------------------------------

    def setup(self, stage: Optional[str] = None) -> None:
        # Idempotent: Lightning may call setup once per stage, and the split must not change.
        fitting = stage in ("fit", "validate", None) and self.train_set is None
        testing = stage in ("test", "predict", None) and self.test_set is None
        if not (fitting or testing):
            return
        if self.own_set:
            self._setup_own_set(fitting, testing)
        else:
            if fitting:
                images, labels = self._load_builtin(train=True)
                train_idx, val_idx = split_indices(len(labels), self.hparams.val_size, self.hparams.split_seed)
                self.train_set = InMemoryPictures(*take(images, labels, train_idx))
                self.val_set = InMemoryPictures(*take(images, labels, val_idx))
            if testing:
                self.test_set = InMemoryPictures(*self._load_builtin(train=False))
        device = self._storage_device()
        for part in (self.train_set, self.val_set, self.test_set):
            if part is not None:
                part.images, part.labels = part.images.to(device), part.labels.to(device)
        if fitting and self.hparams.balance == "loss":
            counts = torch.bincount(self.train_set.labels.cpu(), minlength=len(self.classes)).float()
            self.loss_weights = counts.sum() / (len(counts) * counts.clamp(min=1))

    def _setup_own_set(self, fitting: bool, testing: bool) -> None:
        options = self.hparams
        read = read_folder_set(self.path, options.image_size, options.channels, options.resize, options.path_column, options.label_column)
        warn_skipped(read.skipped)
        self.classes = list(read.classes)
        parts = dict(read.parts)
        if "all" in parts and not fitting:  # a folder given to `test` to evaluate on: every picture of it
            parts["test"] = parts.pop("all")
        elif fitting and "val" not in parts:  # held out from the training pictures, stratified
            images, labels = parts.pop(training_part(parts))
            train_idx, val_idx = stratified_split(labels, options.val_fraction, options.split_seed)
            parts["train"], parts["val"] = take(images, labels, train_idx), take(images, labels, val_idx)
        if testing and "test" not in parts:
            raise UserError(
                f"{self.path} has no test part (a test/ folder beside train/); pass --data.dataset PATH of a "
                "folder with the same classes to evaluate on."
            )
        if fitting:
            self.train_set, self.val_set = InMemoryPictures(*parts["train"]), InMemoryPictures(*parts["val"])
            self.print_counts(parts, read.size, read.channels)
        if testing:
            self.test_set = InMemoryPictures(*parts["test"])
        # Those of the training pictures; when only testing, of the pictures tested (the model
        # normalizes with its own training set's).
        mean, std = pixel_stats(parts["train" if fitting else "test"][0])
        self.dataset = DataSet(
            name=self.path.stem, classes=read.classes, mean=mean, std=std, channels=read.channels, size=read.size,
            pictures="photos", polarity="photos", path=str(self.path), resize=options.resize,
        )

    @rank_zero_only
    def print_counts(self, parts: dict[str, tuple[torch.Tensor, torch.Tensor]], size: int, channels: int) -> None:
        """The pictures' shape, the pictures per class and part, and a warning when the classes are far from even."""
        chosen = [name for name in ("image_size", "channels") if self.hparams[name] is None]
        how = f" ({' and '.join(f'--data.{name}' for name in chosen)} chosen from the training pictures)" if chosen else ""
        training = f"{len(parts['train'][0]):,} training pictures"
        print(f"{self.path.name}: {training}, {size}x{size}, {channels} channel{'s' if channels > 1 else ''}{how}")
        table = Table(title="Pictures per class")
        table.add_column("class")
        names = [part for part in ("train", "val", "test") if part in parts]
        for part in names:
            table.add_column(part, justify="right")
        counts = {part: torch.bincount(parts[part][1], minlength=len(self.classes)).tolist() for part in names}
        for index, name in enumerate(self.classes):
            table.add_row(name, *(f"{counts[part][index]:,}" for part in names))
        Console(file=sys.stdout).print(table)
        train = counts["train"]
        if max(train) > IMBALANCE * max(min(train), 1) and self.hparams.balance == "none":
            largest, smallest = self.classes[train.index(max(train))], self.classes[train.index(min(train))]
            rank_zero_warn(
                f"the classes are imbalanced: {largest} has {max(train):,} training pictures, {smallest} {min(train):,}; "
                "consider --data.balance sampler or --data.balance loss."
            )

    def outlier_pictures(self) -> Optional[torch.Tensor]:
        """The pictures of no class to train with (``outliers``), or None. Drawn on first use, so that a
        model trained without them (``--model.outlier_weight 0``) does not wait for them."""
        uses = self.dataset.pictures in ("handwriting", "clothing") if self.hparams.outliers == "auto" else self.hparams.outliers == "synthetic"
        if uses and self._outliers is None:
            spec = self.dataset
            made = synthetic_outliers(OUTLIERS_MADE, spec.size, spec.channels, self.hparams.split_seed)
            self._outliers = made.to(self._storage_device())
        return self._outliers if uses else None

    def _storage_device(self) -> torch.device:
        """The training GPU when there is one, else the CPU."""
        if self.trainer is not None and self.trainer.strategy.root_device.type == "cuda":
            return self.trainer.strategy.root_device
        return torch.device("cpu")

    def train_dataloader(self) -> DataLoader:
        # drop_last keeps every step the same shape; the remainder differs each epoch anyway.
        drop_last = len(self.train_set) > self.hparams.batch_size
        if self.hparams.balance == "sampler":
            labels = self.train_set.labels.cpu()
            weights = 1.0 / torch.bincount(labels, minlength=len(self.classes)).clamp(min=1).double()
            sampler = WeightedRandomSampler(weights[labels], num_samples=len(labels), replacement=True)
            return DataLoader(self.train_set, self.hparams.batch_size, sampler=sampler, drop_last=drop_last, collate_fn=keep_batch)
        return self._loader(self.train_set, self.hparams.batch_size, shuffle=True, drop_last=drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.hparams.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.hparams.eval_batch_size)

    def _loader(self, dataset, batch_size: int, shuffle: bool = False, drop_last: bool = False) -> DataLoader:
        sampler = None
        if not shuffle and self.trainer is not None and self.trainer.world_size > 1:
            # Lightning's DistributedSampler repeats pictures until every process has as many, and
            # the repeats would be counted twice in validation and test metrics. This sampler
            # gives each process every world_size-th picture, once (Lightning's own, for predict).
            sampler = UnrepeatedDistributedSampler(dataset, self.trainer.world_size, self.trainer.global_rank, shuffle=False)
        # No worker processes: the data is already in memory, and workers would copy it.
        return DataLoader(
            dataset, batch_size, shuffle=shuffle, sampler=sampler, drop_last=drop_last, collate_fn=keep_batch
        )

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if isinstance(batch, torch.Tensor):  # pictures alone: the model's example_input_array, for its summary
            return batch
        images, labels = batch
        if self.augmentations and self.trainer is not None and self.trainer.training:
            images = augment(images, *self.augmentations)
        return images, labels


def _last_line(error: Exception) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(error).__name__


MNISTDataModule = ImageDataModule  # its name before 0.3.0: configs that name it keep working
__all__ = ["DATA_DIR_ENV", "ImageDataModule", "MNISTDataModule", "has_files", "load_builtin", "raw_folder", "resolve_data_dir"]
