"""From a checkpoint to class probabilities with torch alone: what `predict`, `export` and a server share.

A checkpoint written by `fit` holds the network's weights and, among its hyperparameters, the
network's name and sizes and the record of the data set it learned (data/sets.py: class names,
channels, picture size, mean/std, the kind of pictures), and the temperature and threshold that
make its answers honest (confidence.py). That is all inference needs, so this module reads it directly instead of
rebuilding the LightningModule: Lightning and torchmetrics take seconds to import, which a
command that reads one picture should not pay.

    predictor = load_predictor(Path("checkpoints/version_0/last.ckpt"))
    images = torch.stack([predictor.load_picture("seven.png")])       # (1, channels, size, size)
    logits = predictor.logits(images)                      # (1, num_classes)
    probabilities = predictor.probabilities(logits)        # calibrated when the checkpoint says how
    answer = predictor.answer(probabilities[0], logits[0])  # a class, "4 or 9?", or "doesn't look like a digit (closest: 4)"
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from mnist_lit.checkpoints.reading import dataset_of, network_weights, read_checkpoint
from mnist_lit.core.errors import UserError
from mnist_lit.data.pictures import load_like
from mnist_lit.data.sets import DatasetInfo, normalize
from mnist_lit.models.confidence import Answer, Confidence, answer
from mnist_lit.models.networks import (
    UNNAMED_NETWORK,
    network_from_hparams,
    network_name,
)


@dataclass(frozen=True)
class Predictor:
    """A trained network in eval mode on the CPU, with what it needs to read pictures and name classes."""

    net: torch.nn.Module
    dataset_info: DatasetInfo
    checkpoint: Path
    network: str = UNNAMED_NETWORK  # its name in networks.py
    confidence: Optional[Confidence] = None  # none in checkpoints written before 0.4.0

    @property
    def dataset(self) -> DatasetInfo:
        """``dataset_info``, by its name before 0.6.0."""
        return self.dataset_info

    @property
    def classes(self) -> list[str]:
        return list(self.dataset_info.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, size, size) of one input picture."""
        return (self.dataset_info.channels, self.dataset_info.size, self.dataset_info.size)

    @property
    def weights_digest(self) -> str:
        """The first 12 hex digits of the SHA-256 of the network's weights: which model is answering."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.net.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:12]

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 pixels -> the float input the network was trained on."""
        return normalize(pixels, self.dataset_info.mean, self.dataset_info.std)

    def pixels(self, source: str | Path | bytes, name: str = "upload", max_pixels: int | None = None) -> torch.Tensor:
        """A picture file, or its bytes, as (channels, size, size) uint8 pixels made like the data set's own pictures."""
        return torch.from_numpy(load_like(source, self.dataset_info, name, max_pixels)).reshape(self.input_shape)

    def load_picture(self, source: str | Path | bytes) -> torch.Tensor:
        """A picture file, or its bytes, as a normalized (channels, size, size) input."""
        return self.normalize(self.pixels(source))

    @torch.inference_mode()
    def logits(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Normalized (N, channels, size, size) inputs -> (N, num_classes) float32 logits."""
        return torch.cat([self.net(images[start : start + batch_size]).float() for start in range(0, len(images), batch_size)])

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits -> class probabilities, calibrated by the checkpoint's temperature when it has one."""
        return logits.softmax(dim=1) if self.confidence is None else self.confidence.probabilities(logits)

    def answer(self, probabilities: torch.Tensor, logits: torch.Tensor, accept_all: bool = False) -> Answer:
        """One picture's answer in words: its class, unsure between two, or not one of the set's kinds."""
        return answer(probabilities, logits, self.classes, self.confidence, self.dataset_info.pictures, accept_all)


def load_predictor(path: Path) -> Predictor:
    """The predictor of a checkpoint written by `fit`; one clear line for any other file."""
    return predictor_of(read_checkpoint(path), path)


def predictor_of(checkpoint: dict, path: Path) -> Predictor:
    """The predictor of a checkpoint already read (``read_checkpoint``) from ``path``, which errors name."""
    hparams = checkpoint.get("hyper_parameters") or {}
    dataset = dataset_of(checkpoint, path)
    net = network_of(checkpoint, dataset, path, load=True)
    try:
        confidence = Confidence.from_record(checkpoint.get("confidence"))
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(f"{path} holds a calibration mnist-lit cannot read ({type(error).__name__}: {error}).") from None
    return Predictor(net.eval(), dataset, path, network_name(hparams), confidence)


def network_of(checkpoint: dict, dataset: DatasetInfo, path: Path, load: bool) -> torch.nn.Module:
    """The network a checkpoint describes, with its weights when ``load``; without, only checked to fit them
    (what `test` and a resumed `fit` do before Lightning loads them). One line for a checkpoint of another network."""
    weights = network_weights(checkpoint)
    try:
        net = network_from_hparams(checkpoint.get("hyper_parameters") or {}, dataset.num_classes, dataset.channels, dataset.size)
        if load:
            net.load_state_dict(weights)
        elif {name: value.shape for name, value in net.state_dict().items()} != {name: value.shape for name, value in weights.items()}:
            raise RuntimeError("another network")
    except (TypeError, KeyError, RuntimeError) as error:
        reasons = {RuntimeError: "its weights do not fit the network", KeyError: f"it has no {error}"}
        reason = reasons.get(type(error), f"{type(error).__name__}: {error}")
        raise UserError(
            f"{path} is not a checkpoint of mnist-lit's ImageClassifier ({reason}); pass a .ckpt written by `fit`."
        ) from None
    return net
