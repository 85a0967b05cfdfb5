"""MNIST as a LightningDataModule that keeps every image in memory.

torchvision parses the files (and downloads them when asked); after that the 70,000 digits
live in two uint8 tensors and batches are cut from them by indexing. The usual per-sample
PIL path costs more than the network itself on a small CPU. On a GPU the tensors live in
GPU memory (55 MB), so batches are cut there with no copy per step. Normalization happens
on the device that runs the model.
"""

import os
from pathlib import Path
from typing import Optional

import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets import MNIST

from mnist_lit.errors import UserError

# The mean and standard deviation of the MNIST training pixels, scaled to [0, 1].
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
MNIST_TRAIN_SIZE = 60_000
DATA_DIR_ENV = "MNIST_LIT_DATA_DIR"
RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (any shape) -> float32 standardized with the MNIST mean and std."""
    return (images.float() / 255.0 - MNIST_MEAN) / MNIST_STD


def check_val_size(val_size: int, n: int) -> None:
    if not 0 < val_size < n:
        raise UserError(f"val_size must be between 1 and {n - 1} for {n:,} training images, got {val_size}.")


def split_indices(n: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of range(n) into (train, validation) index tensors."""
    check_val_size(val_size, n)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[val_size:], order[:val_size]


REPLACE = "replace the file with the original MNIST file (or delete it to download it again)."


def check_idx_file(path: Path) -> int:
    """The number of digits in an MNIST file (IDX format), after checking its header and length."""
    images = "images" in path.name
    magic, header_size, item_size = (2051, 16, 28 * 28) if images else (2049, 8, 1)
    with open(path, "rb") as file:
        header = file.read(header_size)
    fields = [int.from_bytes(header[i : i + 4], "big") for i in range(0, len(header) - 3, 4)]
    if len(header) < header_size or fields[0] != magic or (images and fields[2:] != [28, 28]):
        raise UserError(f"{path} is not an MNIST {'images' if images else 'labels'} file (wrong header); {REPLACE}")
    expected = header_size + fields[1] * item_size
    if path.stat().st_size != expected:
        raise UserError(
            f"{path} is truncated or damaged ({path.stat().st_size:,} bytes, its header says {expected:,}); {REPLACE}"
        )
    return fields[1]


def has_mnist_files(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds the four MNIST files in torchvision's layout (MNIST/raw/)."""
    return all((data_dir / "MNIST" / "raw" / name).is_file() for name in RAW_FILES)


def resolve_data_dir(data_dir: Optional[str]) -> Path:
    """The folder that holds MNIST/raw/: the option, else $MNIST_LIT_DATA_DIR, else ./data."""
    return Path(data_dir or os.environ.get(DATA_DIR_ENV) or "data")


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
    """The 60,000 MNIST training digits split into train/validation, and the 10,000 test digits.

    Args:
        data_dir: folder holding ``MNIST/raw/``; null means $MNIST_LIT_DATA_DIR, else ``./data``.
        batch_size: training batch size.
        eval_batch_size: batch size for validation and test, which need no gradients. Larger
            is not faster on a CPU: at 1,000 the first layer's activations (43 MB in bf16) are
            too large for the allocator to reuse (hardware.py), so each batch faults in 21,000
            fresh pages and validation takes 30% longer.
        val_size: how many training digits are held out for validation.
        split_seed: seed of the train/validation split, fixed so runs compare on the same digits.
        download: fetch the files from the internet when they are missing.
    """

    def __init__(
        self,
        data_dir: Optional[str] = None,
        batch_size: int = 128,
        eval_batch_size: int = 500,
        val_size: int = 5000,
        split_seed: int = 1234,
        download: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value < 1:
                raise UserError(f"{name} must be a positive integer, got {value}.")
        # Checked again against the files themselves in prepare_data; this catches it before anything runs.
        check_val_size(val_size, MNIST_TRAIN_SIZE)
        self.save_hyperparameters()
        self.data_dir = resolve_data_dir(data_dir)
        self.train_set: Optional[InMemoryDigits] = None
        self.val_set: Optional[InMemoryDigits] = None
        self.test_set: Optional[InMemoryDigits] = None

    def prepare_data(self) -> None:
        raw = self.data_dir / "MNIST" / "raw"
        if has_mnist_files(self.data_dir):
            # Here, before Lightning creates the run's folders: a damaged file must leave nothing behind.
            counts = []
            for images, labels in zip(RAW_FILES[::2], RAW_FILES[1::2]):
                counts.append(check_idx_file(raw / images))
                if counts[-1] != check_idx_file(raw / labels):
                    raise UserError(f"{raw / images} and {raw / labels} hold different numbers of digits; {REPLACE}")
            check_val_size(self.hparams.val_size, counts[0])
            return
        missing_help = (
            f"MNIST files not found: put {', '.join(RAW_FILES)} in {raw}/, "
            f"or point at a folder holding MNIST/raw/ with --data.data_dir DIR or {DATA_DIR_ENV}=DIR."
        )
        if not self.hparams.download:
            raise UserError(missing_help)
        try:
            for train in (True, False):
                MNIST(self.data_dir, train=train, download=True)
        except RuntimeError as error:  # torchvision collects every mirror's URLError into one
            raise UserError(f"Could not download MNIST ({_last_line(error)}). {missing_help}") from None

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
            mnist = MNIST(self.data_dir, train=train, download=False)
        except RuntimeError:
            self.prepare_data()  # setup without prepare_data (plain Python use): same message
            mnist = MNIST(self.data_dir, train=train, download=False)
        if len(mnist.targets) and not 0 <= mnist.targets.min() <= mnist.targets.max() <= 9:
            raise UserError(f"The {'training' if train else 'test'} labels in {mnist.raw_folder} are not all digits 0-9; {REPLACE}")
        device = self._storage_device()
        return mnist.data.unsqueeze(1).contiguous().to(device), mnist.targets.long().to(device)

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
        if isinstance(batch, torch.Tensor):  # images alone: the model's example_input_array, for its summary
            return normalize(batch)
        images, labels = batch
        return normalize(images), labels


def _last_line(error: Exception) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(error).__name__
