"""Any MNIST-format data set (datasets.py) as a LightningDataModule that keeps every image in memory.

torchvision parses the files (and downloads them when asked); after that the pictures live in
two tensors and batches are cut from them by indexing. The usual per-sample PIL path costs
more than the network itself on a small CPU. On a GPU the tensors live in GPU memory (55 MB
for MNIST), so batches are cut there with no copy per step. Normalization happens on the
device that runs the model, with the set's own mean and std.
"""

import math
import os
from pathlib import Path
from typing import Literal, Optional

import lightning as L
import torch
import torchvision.datasets
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset

from mnist_lit.augment import augment, random_affine
from mnist_lit.datasets import DATASETS, DEFAULT_DATASET, DataSet, normalize
from mnist_lit.errors import UserError

DATA_DIR_ENV = "MNIST_LIT_DATA_DIR"
DatasetName = Literal[tuple(DATASETS)]  # the choices of --data.dataset, from the table


def check_val_size(val_size: int, n: int) -> None:
    if not 0 < val_size < n:
        raise UserError(f"val_size must be between 1 and {n - 1} for {n:,} training images, got {val_size}.")


def split_indices(n: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of range(n) into (train, validation) index tensors."""
    check_val_size(val_size, n)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[val_size:], order[:val_size]


REPLACE = "replace it with the data set's original file (or delete it to download it again)."
# IDX element types mnist-lit reads: unsigned bytes (pictures, most labels) and int32 (QMNIST's labels).
IDX_ITEM_SIZES = {0x08: 1, 0x0C: 4}


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


def raw_folder(data_dir: Path, spec: DataSet) -> Path:
    """Where torchvision keeps (and downloads) the set's files: <data_dir>/<class name>/raw."""
    return data_dir / spec.torchvision_class / "raw"


def has_files(data_dir: Path, spec: DataSet = DATASETS[DEFAULT_DATASET]) -> bool:
    """Whether ``data_dir`` holds the set's four files in torchvision's layout."""
    return all((raw_folder(data_dir, spec) / name).is_file() for name in spec.raw_files)


def resolve_data_dir(data_dir: Optional[str]) -> Path:
    """The data root (holding MNIST/raw/, FashionMNIST/raw/...): the option, else $MNIST_LIT_DATA_DIR, else ./data."""
    return Path(data_dir or os.environ.get(DATA_DIR_ENV) or "data")


def load_split(spec: DataSet, data_dir: Path, train: bool, download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """A split as pictures (N, 28, 28) uint8, upright, and labels (N,) int64 counted from 0.

    torchvision reads the files; the set's quirks are undone here: EMNIST's transposed pictures,
    EMNIST letters' labels that start at 1, QMNIST's eight label columns (the first is the class,
    as torchvision's ``compat`` reads it).
    """
    options = {**spec.options, **({} if train else spec.test_options)}
    data = getattr(torchvision.datasets, spec.torchvision_class)(data_dir, train=train, download=download, **options)
    images, labels = data.data, data.targets
    if labels.ndim == 2:
        labels = labels[:, 0]
    if spec.transposed:
        images = images.transpose(1, 2)
    return images.contiguous(), labels.long() - spec.label_offset


class InMemoryDigits(Dataset):
    """Images (N, 1, 28, 28) uint8 and labels (N,) int64 that hand out whole batches."""

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
    """collate_fn for InMemoryDigits, whose batches arrive already stacked."""
    return batch


class MNISTDataModule(L.LightningDataModule):
    """An MNIST-format data set: its training pictures split into train/validation, and its test pictures.

    Args:
        data_dir: the data root, holding ``MNIST/raw/``, ``FashionMNIST/raw/``... as torchvision
            lays them out; null means $MNIST_LIT_DATA_DIR, else ``./data``.
        dataset: which set (datasets.py): mnist, fashion_mnist, kmnist, emnist_balanced,
            emnist_letters, emnist_digits or qmnist.
        batch_size: training batch size.
        eval_batch_size: batch size for validation and test, which need no gradients. Larger
            is not faster on a CPU: at 1,000 the first layer's activations (43 MB in bf16) are
            too large for the allocator to reuse (hardware.py), so each batch faults in 21,000
            fresh pages and validation takes 30% longer.
        val_size: how many training pictures are held out for validation.
        split_seed: seed of the train/validation split, fixed so runs compare on the same pictures.
        download: fetch the files from the internet when they are missing.
        augment_degrees, augment_shift, augment_scale: training augmentation (augment.py): each
            training picture rotated by up to this many degrees, shifted by up to this fraction
            of its side and zoomed in or out by up to this fraction; all 0 (the default) is off.
            Validation and test pictures are never augmented.
    """

    def __init__(
        self,
        data_dir: Optional[str] = None,
        dataset: DatasetName = DEFAULT_DATASET,
        batch_size: int = 128,
        eval_batch_size: int = 500,
        val_size: int = 5000,
        split_seed: int = 1234,
        download: bool = True,
        augment_degrees: float = 0.0,
        augment_shift: float = 0.0,
        augment_scale: float = 0.0,
    ) -> None:
        super().__init__()
        if dataset not in DATASETS:
            raise UserError(f"Unknown data set {dataset!r}; --data.dataset takes one of {', '.join(DATASETS)}.")
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value < 1:
                raise UserError(f"{name} must be a positive integer, got {value}.")
        if augment_degrees < 0 or not 0 <= augment_shift < 0.5 or not 0 <= augment_scale < 1:
            raise UserError(
                "Need augment_degrees >= 0, 0 <= augment_shift < 0.5 and 0 <= augment_scale < 1; got "
                f"{augment_degrees}, {augment_shift} and {augment_scale}."
            )
        self.spec = DATASETS[dataset]
        self.affine = random_affine(augment_degrees, augment_shift, augment_scale) if (
            augment_degrees or augment_shift or augment_scale
        ) else None
        # Checked again against the files themselves in prepare_data; this catches it before anything runs.
        check_val_size(val_size, self.spec.train_size)
        self.save_hyperparameters()
        self.data_dir = resolve_data_dir(data_dir)
        self.classes = list(self.spec.classes)  # what the report calls each class
        self.train_set: Optional[InMemoryDigits] = None
        self.val_set: Optional[InMemoryDigits] = None
        self.test_set: Optional[InMemoryDigits] = None

    def prepare_data(self) -> None:
        spec, raw = self.spec, raw_folder(self.data_dir, self.spec)
        if has_files(self.data_dir, spec):
            # Here, before Lightning creates the run's folders: a damaged file must leave nothing behind.
            counts = []
            for images, labels in zip(spec.raw_files[::2], spec.raw_files[1::2]):
                counts.append(check_idx_file(raw / images))
                if counts[-1] != check_idx_file(raw / labels):
                    raise UserError(f"{raw / images} and {raw / labels} hold different numbers of pictures; {REPLACE}")
            check_val_size(self.hparams.val_size, counts[0])
            return
        missing_help = (
            f"{spec.torchvision_class} files not found: put {', '.join(spec.raw_files)} in {raw}/, "
            f"or point at a folder holding {spec.torchvision_class}/raw/ with --data.data_dir DIR or {DATA_DIR_ENV}=DIR."
        )
        if not self.hparams.download:
            raise UserError(missing_help)
        try:
            for train in (True, False):
                load_split(spec, self.data_dir, train, download=True)
        except (RuntimeError, OSError) as error:  # torchvision collects every mirror's URLError into one
            raise UserError(f"Could not download {spec.torchvision_class} ({_last_line(error)}). {missing_help}") from None

    def setup(self, stage: Optional[str] = None) -> None:
        # Idempotent: Lightning may call setup once per stage, and the split must not change.
        if stage in ("fit", "validate", None) and self.train_set is None:
            images, labels = self._load(train=True)
            train_idx, val_idx = split_indices(len(labels), self.hparams.val_size, self.hparams.split_seed)
            self.train_set = InMemoryDigits(images[train_idx], labels[train_idx])
            self.val_set = InMemoryDigits(images[val_idx], labels[val_idx])
        if stage in ("test", "predict", None) and self.test_set is None:
            self.test_set = InMemoryDigits(*self._load(train=False))

    def _load(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            images, labels = load_split(self.spec, self.data_dir, train)
        except RuntimeError:
            self.prepare_data()  # setup without prepare_data (plain Python use): same message
            images, labels = load_split(self.spec, self.data_dir, train)
        if len(labels) and not 0 <= labels.min() <= labels.max() < self.spec.num_classes:
            split = "training" if train else "test"
            raise UserError(
                f"The {split} labels in {raw_folder(self.data_dir, self.spec)} are not all classes "
                f"0-{self.spec.num_classes - 1} of {self.spec.name}; {REPLACE}"
            )
        device = self._storage_device()
        return images.unsqueeze(1).to(device), labels.to(device)

    def _storage_device(self) -> torch.device:
        """The training GPU when there is one, else the CPU."""
        if self.trainer is not None and self.trainer.strategy.root_device.type == "cuda":
            return self.trainer.strategy.root_device
        return torch.device("cpu")

    def train_dataloader(self) -> DataLoader:
        # drop_last keeps every step the same shape; the remainder differs each epoch anyway.
        return self._loader(self.train_set, self.hparams.batch_size, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.hparams.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.hparams.eval_batch_size)

    def _loader(self, dataset, batch_size: int, shuffle: bool = False, drop_last: bool = False) -> DataLoader:
        sampler = None
        if not shuffle and self.trainer is not None and self.trainer.world_size > 1:
            # Lightning's DistributedSampler repeats digits until every process has as many, and
            # the repeats would be counted twice in validation and test metrics. This sampler
            # gives each process every world_size-th digit, once (Lightning's own, for predict).
            sampler = UnrepeatedDistributedSampler(dataset, self.trainer.world_size, self.trainer.global_rank, shuffle=False)
        # No worker processes: the data is already in memory, and workers would copy it.
        return DataLoader(
            dataset, batch_size, shuffle=shuffle, sampler=sampler, drop_last=drop_last, collate_fn=keep_batch
        )

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        mean, std = self.spec.mean, self.spec.std
        if isinstance(batch, torch.Tensor):  # images alone: the model's example_input_array, for its summary
            return normalize(batch, mean, std)
        images, labels = batch
        if self.affine is not None and self.trainer is not None and self.trainer.training:
            images = augment(images, self.affine)
        return normalize(images, mean, std), labels


def _last_line(error: Exception) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(error).__name__
