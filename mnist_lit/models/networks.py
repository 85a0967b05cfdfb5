"""The networks: plain nn.Modules that know nothing about Lightning, chosen by name with --model.net.

Each maps normalized (N, channels, size, size) pictures to (N, num_classes) logits (softmax lives
in the loss), for any number of channels and any side from 28 to 224, and takes the same sizes:
two stage widths, a dense width and a dropout rate, each with the network's own default.

- ``auto``, the default: ``wide_cnn`` for handwriting, ``keras_cnn`` for every other kind of picture.
- ``keras_cnn`` (``KerasCNN``): the Keras MNIST example this project reimplements.
- ``wide_cnn`` (``wide_cnn``, a ``KerasCNN``): the Keras network twice as wide. A handwriting model learns to refuse
  things (outliers.py); at the Keras widths it then refuses digits scanned at low resolution with
  them, twice as wide it tells the two apart (benchmarks/NOTES.md, "Things among the outliers, on
  a wider network"). Photos and clothing have no such outliers, and at 224x224 its dense layer
  would hold 95 million weights.
- ``batchnorm_cnn`` (``BatchNormCNN``): a deeper stack with batch normalization, for the most
  accuracy a CPU can train in minutes (docs/accuracy.md, "Getting the most accuracy").
- ``lean_cnn`` (``LeanCNN``): three narrow batch-normalized convolutions, for 99% on MNIST in one
  epoch with the least work (configs/speedrun.yaml, docs/speed.md).
- ``timm/<name>``: any of timm's models (timm_networks.py), which takes the dropout rate alone.
"""

from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from mnist_lit.core.errors import UserError
from mnist_lit.models.timm_networks import is_timm, timm_model_name, timm_network


class KerasCNN(nn.Module):
    """Conv(32, 3x3)-ReLU-MaxPool(2) -> Conv(64, 3x3)-ReLU-MaxPool(2) -> Flatten -> Dense(128)-ReLU
    -> Dropout -> Dense(num_classes), the Keras example's network. The dense layer's width follows
    the input side (64 x 5 x 5 inputs at 28x28, 64 x 14 x 14 at 64x64).

    Each ReLU runs after its pooling rather than before: max and ReLU commute (ReLU never
    reorders values), so the function is the same, but the ReLU and its gradient then touch a
    quarter of the values. That saves about a tenth of a training step on a CPU.
    """

    def __init__(
        self,
        num_classes: int,
        conv1_channels: int = 32,
        conv2_channels: int = 64,
        hidden_units: int = 128,
        dropout: float = 0.5,
        channels: int = 1,
        size: int = 28,
    ) -> None:
        super().__init__()
        side = ((size - 2) // 2 - 2) // 2  # after each stage's 3x3 convolution and pooling
        self.features = nn.Sequential(
            nn.Conv2d(channels, conv1_channels, kernel_size=3),  # 28 -> 26
            nn.MaxPool2d(2),  # 26 -> 13
            nn.ReLU(),
            nn.Conv2d(conv1_channels, conv2_channels, kernel_size=3),  # 13 -> 11
            nn.MaxPool2d(2),  # 11 -> 5
            nn.ReLU(),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(conv2_channels * side * side, hidden_units),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_units, num_classes),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


def wide_cnn(num_classes: int, conv1_channels: int = 64, conv2_channels: int = 128, hidden_units: int = 256, **rest) -> KerasCNN:
    """The Keras network with twice its widths: 64 and 128 filters, 256 dense units (four times the arithmetic)."""
    return KerasCNN(num_classes, conv1_channels, conv2_channels, hidden_units, **rest)


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, pool: bool = False) -> nn.Sequential:
    """A convolution, then (with ``pool``) a 2x2 max-pooling, batch normalization and ReLU."""
    padding = kernel_size // 2 if stride > 1 else 0
    return nn.Sequential(
        # No bias: the batch normalization right after it has its own.
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False),
        *([nn.MaxPool2d(2)] if pool else []),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


class BatchNormCNN(nn.Module):
    """Two stages of three convolutions with batch normalization, the third of each a strided 5x5
    that halves the picture (a learned pooling), then a 4x4 convolution to ``hidden_units``
    features and the classifier; dropout after each stage. The layout of the best-known
    single-network MNIST results with augmentation (about 15 M multiply-adds per picture at the
    default sizes, six times the Keras network's).

    28 -> 26 -> 24 -> 12 (stage 1) -> 10 -> 8 -> 4 (stage 2) -> 1 (4x4 convolution). Larger
    pictures leave more than one position after the last convolution: they are averaged (at
    28x28 the average of one position, the same function as without it).
    """

    def __init__(
        self,
        num_classes: int,
        conv1_channels: int = 32,
        conv2_channels: int = 64,
        hidden_units: int = 128,
        dropout: float = 0.4,
        channels: int = 1,
        size: int = 28,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(channels, conv1_channels, 3),
            conv_bn_relu(conv1_channels, conv1_channels, 3),
            conv_bn_relu(conv1_channels, conv1_channels, 5, stride=2),
            nn.Dropout(dropout),
            conv_bn_relu(conv1_channels, conv2_channels, 3),
            conv_bn_relu(conv2_channels, conv2_channels, 3),
            conv_bn_relu(conv2_channels, conv2_channels, 5, stride=2),
            nn.Dropout(dropout),
            conv_bn_relu(conv2_channels, hidden_units, 4),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(hidden_units, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


class LeanCNN(nn.Module):
    """Conv(16, 3x3)-MaxPool(2)-BN-ReLU -> Conv(32, 3x3)-MaxPool(2)-BN-ReLU -> Conv(64, 3x3)-BN-ReLU
    -> Flatten -> Dropout -> Dense(num_classes): a third of the Keras network's arithmetic per picture
    (1.65 against 5.3 MFLOP forward at 28x28: 28 -> 26 -> 13 -> 11 -> 5 -> 3), no dense hidden layer,
    and batch normalization so that one epoch at a high rate is enough.

    Narrower still does not train faster on a CPU: at these widths pooling, normalization and the
    optimizer cost as much per picture as the convolutions (benchmarks/NOTES.md, "The op-lean speedrun").
    ``hidden_units`` is the third convolution's width; the pooling follows each convolution of the
    first two stages before its normalization and ReLU, as in KerasCNN.
    """

    def __init__(
        self,
        num_classes: int,
        conv1_channels: int = 16,
        conv2_channels: int = 32,
        hidden_units: int = 64,
        dropout: float = 0.0,
        channels: int = 1,
        size: int = 28,
    ) -> None:
        super().__init__()
        side = ((size - 2) // 2 - 2) // 2 - 2  # after two stages of a 3x3 convolution and pooling, and a third convolution
        self.features = nn.Sequential(
            conv_bn_relu(channels, conv1_channels, 3, pool=True),
            conv_bn_relu(conv1_channels, conv2_channels, 3, pool=True),
            conv_bn_relu(conv2_channels, hidden_units, 3),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(hidden_units * side * side, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


DigitCNN = KerasCNN  # its name before 0.3.0, for code that imports it
NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "wide_cnn": wide_cnn, "keras_cnn": KerasCNN, "batchnorm_cnn": BatchNormCNN, "lean_cnn": LeanCNN,
}
SIZE_OPTIONS = ("conv1_channels", "conv2_channels", "hidden_units", "dropout")
AUTO = "auto"
DEFAULT_NETWORK = AUTO
# The default before 0.13.0, and the network of checkpoints written before --model.net existed (no name).
UNNAMED_NETWORK = "keras_cnn"
NetworkName = str  # a name of the table, or timm/<any timm model>


def check_network_name(name: str) -> None:
    """One line for a --model.net that is neither auto, a network of the table nor timm/<a timm model>."""
    if is_timm(name):
        timm_model_name(name)
    elif name != AUTO and name not in NETWORKS:
        raise UserError(f"No network {name!r}: --model.net takes {AUTO}, {', '.join(NETWORKS)} or timm/NAME for any of "
                        "timm's models (timm.list_models()), e.g. timm/resnet18.")


def chosen_network(name: NetworkName, pictures: str) -> NetworkName:
    """``name``, or for ``auto`` the network for a set of ``pictures`` (DatasetInfo.pictures)."""
    if name != AUTO:
        return name
    return "wide_cnn" if pictures == "handwriting" else "keras_cnn"


def build_network(
    name: str, num_classes: int, channels: int = 1, size: int = 28,
    pretrained: bool = False, weights: Optional[Path] = None, **sizes,
) -> nn.Module:
    """The network called ``name`` for (channels, size, size) inputs; its own defaults for the sizes not given (or None).
    ``pretrained`` and ``weights`` are for timm's networks, which load them as they are built."""
    check_network_name(name)
    given = {key: value for key, value in sizes.items() if value is not None}
    if is_timm(name):
        other = sorted(set(given) - {"dropout"})
        if other:
            raise UserError(f"--model.{other[0]} sizes mnist-lit's own networks; {name} takes --model.dropout alone.")
        return timm_network(name, num_classes, channels, given.get("dropout"), pretrained, weights)
    return NETWORKS[name](num_classes, channels=channels, size=size, **given)


def classifier_of(network: nn.Module) -> nn.Module:
    """The last layer, which maps features to classes: timm's ``get_classifier()``, or the last of ``classifier``."""
    get_classifier = getattr(network, "get_classifier", None)
    return get_classifier() if callable(get_classifier) else network.classifier[-1]


def body_of(network: nn.Module) -> nn.ModuleList:
    """Every innermost layer of ``network`` but its classifier's, as one module (not registered anywhere)."""
    head = set(classifier_of(network).modules())
    return nn.ModuleList([m for m in network.modules() if not any(True for _ in m.children()) and m not in head])


def network_name(hparams: dict) -> NetworkName:
    """The name of the network a checkpoint's hyperparameters describe; checkpoints without ``net`` are the Keras network's."""
    return hparams.get("net", UNNAMED_NETWORK)


def network_from_hparams(hparams: dict, num_classes: int, channels: int = 1, size: int = 28) -> nn.Module:
    """The network a checkpoint's hyperparameters describe, with fresh weights (the checkpoint holds its own:
    nothing is downloaded or read)."""
    return build_network(network_name(hparams), num_classes, channels, size, **{key: hparams.get(key) for key in SIZE_OPTIONS})
