"""The MNIST-format data sets mnist-lit trains on: one entry each, and everything known about them.

Every set is 28x28 greyscale pictures, light on dark, in the IDX files torchvision reads and
downloads; the entry says which torchvision class reads it, what its classes are called, how its
pixels are distributed and which picture preprocessing suits it (preprocess.py). Checkpoints
record the entry of the set they were trained on (``DataSet.record``), so `test`, `predict`,
`export` and `serve` need no option to know it. Plain Python and torch: the thin commands import
this without Lightning or torchvision.

    python -m mnist_lit.datasets      # mean and std of every set whose training files are here
"""

import string
import sys
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import torch

DIGITS = tuple(string.digits)
# The mean and standard deviation of MNIST's training pixels, scaled to [0, 1].
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


@dataclass(frozen=True)
class DataSet:
    """One MNIST-format data set.

    ``mean`` and ``std`` are those of its training pixels scaled to [0, 1] (``pixel_stats``).
    ``pictures`` picks the preprocessing of outside pictures: "handwriting" (MNIST's own steps)
    or "clothing" (Fashion-MNIST's). ``test_options`` are torchvision arguments for the test split.
    """

    name: str
    torchvision_class: str
    classes: tuple[str, ...]
    mean: float
    std: float
    raw_files: tuple[str, str, str, str]  # train images, train labels, test images, test labels
    pictures: Literal["handwriting", "clothing"] = "handwriting"
    polarity: str = "light on dark"
    options: dict[str, Any] = field(default_factory=dict)
    test_options: dict[str, Any] = field(default_factory=dict)
    label_offset: int = 0  # subtracted from the stored labels (EMNIST letters store 1-26)
    transposed: bool = False  # EMNIST stores every picture transposed
    train_size: int = 60_000  # checked against the files once they are read

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def record(self) -> dict[str, Any]:
        """What a checkpoint keeps of this set: enough to read, normalize and name its pictures."""
        return {
            "name": self.name,
            "classes": list(self.classes),
            "mean": self.mean,
            "std": self.std,
            "polarity": self.polarity,
            "pictures": self.pictures,
        }


def _idx_files(prefix: str, train: str = "train", test: str = "t10k", labels: str = "labels-idx1-ubyte"):
    return (f"{prefix}{train}-images-idx3-ubyte", f"{prefix}{train}-{labels}", f"{prefix}{test}-images-idx3-ubyte", f"{prefix}{test}-{labels}")


def _emnist(split: str, classes: tuple[str, ...], **facts) -> DataSet:
    return DataSet(
        name=f"emnist_{split}", torchvision_class="EMNIST", classes=classes,
        raw_files=_idx_files(f"emnist-{split}-", test="test"), options={"split": split}, transposed=True, **facts,
    )


# mean/std of MNIST and Fashion-MNIST: `python -m mnist_lit.datasets` on the official training
# files (2026-11-25); tests/test_datasets.py checks every entry whose files are present. KMNIST,
# EMNIST and QMNIST had no copy where this table was written: KMNIST's are the values its users
# publish, EMNIST's and QMNIST's are MNIST's (QMNIST re-creates MNIST's pictures; EMNIST's digits
# are made the same way). Any consistent values train equally well: the checkpoint records the
# ones used, and prediction uses those.
DATASETS: dict[str, DataSet] = {
    spec.name: spec
    for spec in (
        DataSet("mnist", "MNIST", DIGITS, MNIST_MEAN, MNIST_STD, _idx_files("")),
        DataSet(
            "fashion_mnist", "FashionMNIST",
            ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
            0.2860, 0.3530, _idx_files(""), pictures="clothing",
        ),
        # Kuzushiji-MNIST: cursive Japanese hiragana, named by their modern reading.
        DataSet("kmnist", "KMNIST", ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"), 0.1918, 0.3483, _idx_files("")),
        # The 47 classes that stay apart when upper and lower case look alike (c/C, o/O... merged).
        _emnist("balanced", tuple(string.digits + string.ascii_uppercase + "abdefghnqrt"), mean=MNIST_MEAN, std=MNIST_STD, train_size=112_800),
        _emnist("letters", tuple(string.ascii_lowercase), mean=MNIST_MEAN, std=MNIST_STD, label_offset=1, train_size=124_800),
        _emnist("digits", DIGITS, mean=MNIST_MEAN, std=MNIST_STD, train_size=240_000),
        # QMNIST's test file holds 60,000 digits; its first 10,000 ("test10k") are MNIST's test set.
        DataSet(
            "qmnist", "QMNIST", DIGITS, MNIST_MEAN, MNIST_STD,
            _idx_files("qmnist-", test="test", labels="labels-idx2-int"), test_options={"what": "test10k"},
        ),
    )
}
DEFAULT_DATASET = "mnist"


def dataset_record(name: str) -> dict[str, Any]:
    """The checkpoint record of the set called ``name`` (LightningCLI links it into the model)."""
    return DATASETS[name].record()


def normalize(pixels: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 pixels (any shape) -> float32 standardized with the set's training mean and std."""
    return (pixels.float() / 255.0 - mean) / std


def pixel_stats(images: torch.Tensor) -> tuple[float, float]:
    """The mean and standard deviation of uint8 pixels scaled to [0, 1], rounded to 4 places."""
    pixels = images.double() / 255.0
    return round(pixels.mean().item(), 4), round(pixels.std().item(), 4)


def main(data_dir: Optional[str] = None) -> None:
    from mnist_lit.data import load_split, raw_folder, resolve_data_dir

    root = resolve_data_dir(data_dir)
    for spec in DATASETS.values():
        try:
            images, _ = load_split(spec, root, train=True)
        except RuntimeError:  # torchvision's "Dataset not found": reported and skipped
            print(f"{spec.name}: no training files in {raw_folder(root, spec)}/")
            continue
        mean, std = pixel_stats(images)
        print(f"{spec.name}: mean {mean:.4f}, std {std:.4f} over {len(images):,} training pictures (table: {spec.mean}, {spec.std})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
