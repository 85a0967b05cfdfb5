"""What a data set is to mnist-lit: one ``DatasetInfo``, and the table of the sets torchvision reads.

A set is described by its name (or the folder or CSV file it comes from), its class names, the
shape of its pictures (channels, square side), the mean and standard deviation of each channel
of its training pixels, and the kind of pictures it holds, which picks how outside pictures are
preprocessed (pictures.py), and for a set of one's own pictures how its parts were split
(splits.py). Checkpoints keep that description (``DatasetInfo.record`` and
``DatasetInfo.from_record``, the one way in and out), so `test`, `predict`, `export` and `serve`
need no data option. Reading files lives in builtin_files.py and layouts.py. Plain Python and
torch: the thin commands import this without Lightning or torchvision.

"""

import dataclasses
import string
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import torch

from mnist_lit.data.splits import Split, legacy_split

DIGITS = tuple(string.digits)
# The mean and standard deviation of MNIST's training pixels, scaled to [0, 1].
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
Pictures = Literal["handwriting", "clothing", "photos"]
# The smallest square side the networks take (two 2x2 poolings leave 7x7 of 28), and so the smallest
# side a folder set's pictures are fitted into.
SMALLEST_SIDE = 28


@dataclass(frozen=True)
class TorchvisionFiles:
    """How torchvision reads a built-in set: its class, file names and quirks."""

    torchvision_class: str
    raw_files: tuple[str, ...]  # what must be in <data root>/<torchvision_class>/raw/ (IDX sets)
    options: dict[str, Any] = field(default_factory=dict)
    test_options: dict[str, Any] = field(default_factory=dict)  # torchvision arguments for the test split
    label_offset: int = 0  # subtracted from the stored labels (EMNIST letters store 1-26)
    transposed: bool = False  # EMNIST stores every picture transposed
    train_size: int = 60_000  # checked against the files once they are read
    folder: Optional[str] = None  # where the files are, when not <torchvision_class>/raw/ (CIFAR-10)


@dataclass(frozen=True)
class DatasetInfo:
    """What mnist-lit knows of one data set: a built-in one (``files`` says how torchvision reads it) or a folder
    or CSV file (``path``, and ``split``: how its missing parts were split off its training pictures).

    ``mean`` and ``std`` hold one value per channel, of the training pixels scaled to [0, 1].
    ``pictures`` picks the preprocessing of outside pictures: "handwriting" (MNIST's own steps),
    "clothing" (Fashion-MNIST's) or "photos" (fitted into the square, ``resize`` "pad" or "crop").
    """

    name: str
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channels: int = 1
    size: int = 28
    pictures: Pictures = "handwriting"
    polarity: str = "light on dark"
    path: Optional[str] = None  # the folder or CSV file of a set of one's own pictures, absolute; or a set optimized by LitData (a folder or a URL)
    resize: Literal["pad", "crop"] = "pad"
    files: Optional[TorchvisionFiles] = None
    split: Optional[Split] = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def record(self) -> dict[str, Any]:
        """What a checkpoint keeps of this set: enough to find, read, normalize and name its pictures."""
        return {
            "name": self.name,
            "classes": list(self.classes),
            "mean": list(self.mean),
            "std": list(self.std),
            "channels": self.channels,
            "size": self.size,
            "pictures": self.pictures,
            "polarity": self.polarity,
            "path": self.path,
            "resize": self.resize,
            "split": None if self.split is None else self.split.record(),
        }

    def with_recorded_split(self, seed: int, val_fraction: float) -> "DatasetInfo":
        """This set with the split of its parts; a folder set of a checkpoint of 0.5.0 or before, which recorded
        none, gets the one those options made (validation only)."""
        if self.path is None or self.split is not None:
            return self
        return dataclasses.replace(self, split=legacy_split(self.path, seed, val_fraction))

    @classmethod
    def from_record(cls, record: Optional[dict[str, Any]]) -> "DatasetInfo":
        """The set a checkpoint recorded; checkpoints of 0.1.0 (no record) are MNIST's, those of 0.2.0
        (one mean and std, no shape) are 28x28 greyscale."""
        if not record:
            return DATASETS[DEFAULT_DATASET]
        known = DATASETS.get(record["name"]) if record.get("path") is None else None
        as_tuple = lambda value: tuple(float(v) for v in (value if isinstance(value, (list, tuple)) else [value]))
        return DatasetInfo(
            name=record["name"],
            # jsonargparse may have read MNIST's class names "0".."9" as numbers.
            classes=tuple(str(name) for name in record["classes"]),
            mean=as_tuple(record["mean"]),
            std=as_tuple(record["std"]),
            channels=int(record.get("channels", 1)),
            size=int(record.get("size", 28)),
            pictures=record.get("pictures", "handwriting"),
            polarity=record.get("polarity", "light on dark"),
            path=record.get("path"),
            resize=record.get("resize", "pad"),
            files=known.files if known is not None else None,
            split=Split.from_record(record.get("split")),
        )


def _idx_files(prefix: str, train: str = "train", test: str = "t10k", labels: str = "labels-idx1-ubyte") -> tuple[str, ...]:
    return (f"{prefix}{train}-images-idx3-ubyte", f"{prefix}{train}-{labels}", f"{prefix}{test}-images-idx3-ubyte", f"{prefix}{test}-{labels}")


def _emnist(split: str, classes: tuple[str, ...], train_size: int, label_offset: int = 0) -> DatasetInfo:
    files = TorchvisionFiles(
        "EMNIST", _idx_files(f"emnist-{split}-", test="test"), options={"split": split},
        label_offset=label_offset, transposed=True, train_size=train_size,
    )
    return DatasetInfo(f"emnist_{split}", classes, MNIST_MEAN, MNIST_STD, files=files)


# mean/std of MNIST and Fashion-MNIST: `python -m mnist_lit.data.builtin_files` on the official training
# files (2026-11-25); tests/test_datasets.py checks every entry whose files it finds. KMNIST's are
# the values its users publish, EMNIST's and QMNIST's are MNIST's (QMNIST re-creates MNIST's
# pictures; EMNIST's digits are made the same way), CIFAR-10's are the values its users publish.
# Any consistent values train equally well: the checkpoint records the ones used, and prediction
# uses those.
DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("mnist", DIGITS, MNIST_MEAN, MNIST_STD, files=TorchvisionFiles("MNIST", _idx_files(""))),
        DatasetInfo(
            "fashion_mnist",
            ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
            (0.2860,), (0.3530,), pictures="clothing", files=TorchvisionFiles("FashionMNIST", _idx_files("")),
        ),
        # Kuzushiji-MNIST: cursive Japanese hiragana, named by their modern reading.
        DatasetInfo(
            "kmnist", ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"), (0.1918,), (0.3483,),
            files=TorchvisionFiles("KMNIST", _idx_files("")),
        ),
        # The 47 classes that stay apart when upper and lower case look alike (c/C, o/O... merged).
        _emnist("balanced", tuple(string.digits + string.ascii_uppercase + "abdefghnqrt"), train_size=112_800),
        _emnist("letters", tuple(string.ascii_lowercase), train_size=124_800, label_offset=1),
        _emnist("digits", DIGITS, train_size=240_000),
        # QMNIST's test file holds 60,000 digits; its first 10,000 ("test10k") are MNIST's test set.
        DatasetInfo(
            "qmnist", DIGITS, MNIST_MEAN, MNIST_STD,
            files=TorchvisionFiles("QMNIST", _idx_files("qmnist-", test="test", labels="labels-idx2-int"), test_options={"what": "test10k"}),
        ),
        # 32x32 colour photos of ten kinds of object, in the Python pickles torchvision reads.
        DatasetInfo(
            "cifar10",
            ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
            (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), channels=3, size=32, pictures="photos",
            polarity="photos", resize="crop",
            files=TorchvisionFiles(
                "CIFAR10", tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta"),
                train_size=50_000, folder="cifar-10-batches-py",
            ),
        ),
    )
}
DEFAULT_DATASET = "mnist"
DataSet = DatasetInfo  # its name before 0.6.0, for code that imports it


def normalize(pixels: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 (or 0-255 float) pixels (..., C, H, W), or (H, W) for one channel, -> float32 standardized per
    channel. ``mean`` and ``std``: a value per channel, as a sequence or a tensor (a model's buffers)."""
    shape = (-1, 1, 1) if pixels.dim() >= 3 else (-1,)
    mean = torch.as_tensor(mean, dtype=torch.float32, device=pixels.device).reshape(shape)
    std = torch.as_tensor(std, dtype=torch.float32, device=pixels.device).reshape(shape)
    return (pixels.float() / 255.0 - mean) / std


# Beyond this many values a set is measured on evenly spaced pictures: the statistics then move in
# the third decimal at most, and a 50,000-picture colour set takes 0.1 s instead of 0.7 s.
STATS_VALUES = 100_000_000


def pixel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of (N, C, H, W) uint8 pixels scaled to [0, 1], rounded to 4 places.

    (N, H, W) counts as one channel. Counted as a histogram of the 256 values per channel, which is
    exact and several times faster than summing floats; beyond 100 million values, on every k-th picture.
    """
    if images.dim() == 3:
        images = images.unsqueeze(1)
    step = max(1, -(-images.numel() // STATS_VALUES))
    picked = images[::step]
    counts = torch.zeros(picked.shape[1], 256, dtype=torch.int64)
    for start in range(0, len(picked), 1024):
        chunk = picked[start : start + 1024]
        for channel in range(picked.shape[1]):
            counts[channel] += torch.bincount(chunk[:, channel].reshape(-1), minlength=256)
    return histogram_stats(counts)


def histogram_stats(counts: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation, rounded to 4 places, of pixels counted as (C, 256) histograms."""
    values = torch.arange(256, dtype=torch.float64) / 255.0
    count = counts.sum(dim=1).double().clamp(min=2)
    mean = (counts * values).sum(dim=1) / count
    std = (((counts * values**2).sum(dim=1) - count * mean**2) / (count - 1)).clamp(min=0).sqrt()
    return tuple(round(v, 4) for v in mean.tolist()), tuple(round(max(v, 1e-4), 4) for v in std.tolist())
