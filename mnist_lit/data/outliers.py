"""Pictures of no class, shown to the network while it trains so that it learns to be unsure of them.

Outlier exposure (Hendrycks, Mazeika and Dietterich, 2019): next to each training batch, a batch
of pictures that belong to no class, whose loss pulls the network's answer towards "every class
equally likely". A network trained only on digits is as sure of a scribble as of a 7; after this,
its top probability and the energy of its logits tell them apart (benchmarks/ood.py).

The outliers are made here, by code, so that no other data set is needed: tangled strokes drawn
like the set's own pictures (light on black, anti-aliased, in the middle of the frame), and noise,
plain and blurred into blobs. Drawings of other kinds (letters, smileys, squares) are kept for
measuring, never for training.
"""

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

OVERSAMPLE = 4  # strokes are drawn at 4x and reduced, which anti-aliases them as MNIST's were


def tangle(rng: np.random.Generator, size: int) -> Image.Image:
    """Light strokes on black through 5-12 random points: more turns than any digit has."""
    big = size * OVERSAMPLE
    image = Image.new("L", (big, big), 0)
    # MNIST's digits fill a 20x20 box in the 28x28 frame; the strokes stay about that size.
    centre, reach = big / 2, big * rng.uniform(0.2, 0.36)
    points = [tuple(point) for point in (centre + reach * rng.uniform(-1, 1, (int(rng.integers(5, 13)), 2))).tolist()]
    width = int(big * rng.uniform(0.05, 0.12))
    ImageDraw.Draw(image).line(points, fill=int(rng.integers(160, 256)), width=width, joint="curve")
    return image.reduce(OVERSAMPLE)  # each pixel the mean of a 4x4 block


def noise(rng: np.random.Generator, size: int) -> Image.Image:
    """Uniform noise, or noise blurred into blobs of random size and brightness."""
    pixels = rng.integers(0, 256, (size, size), dtype=np.uint8)
    image = Image.fromarray(pixels)
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 3)))
        image = Image.fromarray(np.clip((np.asarray(image, np.float32) - 128) * rng.uniform(2, 8) + 128, 0, 255).astype(np.uint8))
    return image


def synthetic_outliers(count: int, size: int, channels: int, seed: int = 0) -> torch.Tensor:
    """(count, channels, size, size) uint8 pictures of no class: three tangles to each noise picture."""
    rng = np.random.default_rng(seed)
    pictures = [np.asarray(tangle(rng, size) if i % 4 else noise(rng, size)) for i in range(count)]
    stacked = torch.from_numpy(np.stack(pictures)).unsqueeze(1)
    return stacked.expand(-1, channels, -1, -1).contiguous()
