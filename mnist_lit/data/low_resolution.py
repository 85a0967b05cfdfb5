"""Handwriting as a low-resolution scan shows it, read as `predict` reads a picture file.

Other collections of digits are often kept small: 8x8 counts of a 32x32 bitmap (UCI's optdigits),
16x16 greys (USPS). Scaled up, their strokes are thick and soft-edged, the ink fills its box, and
`predict` crops that ink and fits it into MNIST's 20-pixel box (pictures.py). A network that learns
to refuse things read the same way (outliers.py) then takes these digits for things unless it has
seen digits like them. ``low_resolution_copies`` makes them from the set's own training pictures:
each one's ink, perhaps a pixel bolder, reduced until its longer side is 8-16 pixels, scaled up
again smoothly, and read as a file. Unlike augment.py's ``restyle`` (the whole frame blurred), the
digit keeps its shape: holes stay open, strokes stay apart.
"""

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

from mnist_lit.data.pictures import handwriting_style

LOW_SIDES = (8, 10, 12, 16)  # the longer side of the ink, in pixels, once reduced
BOLDER = 0.5  # the share of pictures made a pixel bolder each side before they are reduced
MIN_INK = 64  # a picture whose brightest pixel is fainter is kept as it is: there is no stroke to reduce
SCALE_UP = 10  # the reduced picture is scaled up this many times before it is read, as a viewer shows it


def low_resolution_copy(picture: np.ndarray, rng: np.random.Generator) -> Optional[np.ndarray]:
    """A (side, side) uint8 character, light on black -> the same as a low-resolution scan read as a file
    (28x28); None for a picture without ink enough to read."""
    if picture.max() < MIN_INK:
        return None
    if rng.random() < BOLDER:
        picture = np.asarray(Image.fromarray(picture).filter(ImageFilter.MaxFilter(3)))
    rows, columns = np.nonzero(picture > picture.max() / 4)
    ink = picture[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    side = int(rng.choice(LOW_SIDES))
    scale = side / max(ink.shape)
    width, height = max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale))
    small = np.zeros((side + 4, side + 4), np.uint8)  # a margin of background, as a scan has
    top, left = 2 + (side - height) // 2, 2 + (side - width) // 2
    small[top : top + height, left : left + width] = Image.fromarray(ink).resize((width, height), Image.Resampling.BOX)
    smooth = Image.Resampling.BICUBIC if rng.random() < 0.5 else Image.Resampling.BILINEAR
    try:
        return handwriting_style(Image.fromarray(small).resize(((side + 4) * SCALE_UP,) * 2, smooth))
    except ValueError:  # too faint once reduced: kept as it is
        return None


def low_resolution_copies(images: torch.Tensor, share: float, seed: int) -> torch.Tensor:
    """uint8 pictures (N, C, H, W) of handwriting -> a copy with ``share`` of them, chosen with ``seed``, as
    ``low_resolution_copy`` makes them (the first channel read, every channel written); the same on every call."""
    chosen = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[: round(share * len(images))]
    if not len(chosen):
        return images
    rng = np.random.default_rng(seed)
    made = [low_resolution_copy(picture, rng) for picture in images[chosen.to(images.device), 0].cpu().numpy()]
    kept = [i for i, copy in enumerate(made) if copy is not None]
    if not kept:
        return images
    copies = torch.from_numpy(np.stack([made[i] for i in kept]))[:, None].float()
    if copies.shape[-2:] != images.shape[-2:]:
        copies = F.interpolate(copies, size=images.shape[-2:], mode="bilinear")
    copied = images.clone()
    where = chosen[kept].to(images.device)
    copied[where] = copies.round().clamp(0, 255).to(images.dtype).expand(-1, images.shape[1], -1, -1).to(images.device)
    return copied
