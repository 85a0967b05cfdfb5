"""Batch normalization that the outliers of a training batch do not move.

The outliers (data/outliers.py) go through the network in one pass with the real pictures. A
batch-normalization layer would normalize the batch with the mean and variance of both, and keep
a running average of those for evaluation; with noise and scribbles in a fifth of every batch,
evaluation normalized real pictures with statistics they never had (validation accuracy of the
accurate recipe swung between 89% and 98.7%). Within ``real_statistics``, every layer normalizes
the whole batch, outliers included, with the statistics of the real pictures alone, and updates
its running statistics from them: what evaluation does to any picture.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import torch
from torch import nn

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)  # timm's and torchvision's layers subclass these


@contextmanager
def real_statistics(network: nn.Module, real: int) -> Iterator[None]:
    """Within: each training batch-norm layer of ``network`` normalizes its input with the statistics of its
    first ``real`` rows, and averages only those into its running statistics."""
    layers = [m for m in network.modules() if isinstance(m, BATCH_NORMS) and m.training and m.track_running_stats]
    for layer in layers:
        # An instance attribute is what nn.Module.__call__ finds first: the class's forward, replaced for this block.
        layer.forward = partial(normalized_with_real_rows, layer, real)
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward


def normalized_with_real_rows(layer: nn.Module, real: int, features: torch.Tensor) -> torch.Tensor:
    """What a batch-norm layer in training computes, with the mean and variance of the first ``real`` rows.

    The gradient flows through those statistics from every row, the outliers' included: with the
    statistics held fixed for the outliers, the accurate recipe's validation accuracy after one epoch
    was 30% instead of 97%.
    """
    rows, others = features[:real], features[real:]
    normalized = type(layer).forward(layer, rows)  # the layer's own step (and running statistics) on the real rows
    channels = features.shape[1]
    # The same statistics again, for the outliers, as a (pictures x places, channels) matrix whichever the
    # layout: sums down its rows vectorize across the channels (torch.var_mean's reduction is 20x slower).
    flat = rows.movedim(1, -1).reshape(-1, channels).float()
    mean = flat.mean(dim=0)
    variance = ((flat * flat).mean(dim=0) - mean * mean).clamp(min=0)
    scale = torch.rsqrt(variance + layer.eps)
    if layer.affine:
        scale = scale * layer.weight
    shift = (layer.bias if layer.affine else 0) - mean * scale
    shape = [1, channels] + [1] * (features.dim() - 2)
    rest = torch.addcmul(shift.view(shape), others.float(), scale.view(shape)).to(normalized.dtype)
    for after in ("drop", "act"):  # timm's BatchNormAct layers go on, in this order, after the normalization
        if hasattr(layer, after):
            rest = getattr(layer, after)(rest)
    return torch.cat([normalized, rest])
