"""Checkpoints written without training, and the comparison of an exported network with its checkpoint."""

from pathlib import Path

import lightning as L
import numpy as np
import torch

from mnist_lit.data.sets import DATASETS
from mnist_lit.models.classifier import ImageClassifier

MNIST = DATASETS["mnist"].record()  # for models built without a data module


def save_checkpoint(path: Path, model: L.LightningModule) -> Path:
    """``model`` saved as Lightning saves checkpoints, without training it."""
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(path)
    return path


def untrained_checkpoint(path: Path) -> Path:
    """A small untrained MNIST classifier's checkpoint, the same weights each time: for tests about files,
    messages and serving, not accuracy."""
    torch.manual_seed(0)
    return save_checkpoint(path, ImageClassifier(hidden_units=32, dataset_info=MNIST))


def onnx_gap(onnx_file: Path, checkpoint: Path, pixels: torch.Tensor) -> float:
    """The largest difference between the logits of an exported ONNX file and of the checkpoint's
    network, on (N, channels, size, size) uint8 pixels normalized as the checkpoint says."""
    import onnxruntime

    from mnist_lit.models.predictor import load_predictor

    predictor = load_predictor(checkpoint)
    images = predictor.normalize(pixels)
    session = onnxruntime.InferenceSession(str(onnx_file))
    with torch.inference_mode():
        return float(np.abs(session.run(None, {"images": images.numpy()})[0] - predictor.net(images).numpy()).max())
