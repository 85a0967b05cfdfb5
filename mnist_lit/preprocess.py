"""Turn a picture of one handwritten digit into a 28x28 input the way MNIST itself was made.

MNIST digits are light strokes on a black background. Each was scaled, keeping its aspect
ratio and with anti-aliasing, so that its longer side is 20 pixels, then placed in a 28x28
frame with its centre of mass at the centre. A photo or a scan skips all of that, which is
why models that score 99% on the test set fail on them; this module redoes those steps.

    from mnist_lit.preprocess import load_digit
    images = torch.stack([load_digit("seven.png")])   # (1, 1, 28, 28), normalized like training
"""

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from mnist_lit.data import normalize
from mnist_lit.errors import UserError

FRAME = 28
DIGIT_BOX = 20
# Pixels fainter than this fraction of the darkest ink are noise (paper texture, JPEG
# artefacts) when finding the digit's bounding box; they still count in its pixels.
NOISE_FRACTION = 0.25
# A picture whose ink differs from its background by less than this (of 255) is blank.
MIN_CONTRAST = 32


def open_image(path: str | Path) -> Image.Image:
    """The image at ``path`` as 8-bit greyscale: the first frame of a GIF, transparency over white."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file.")
    try:
        # Pillow warns from 89 to 179 million pixels and refuses beyond; refuse both.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.seek(0)
                image.load()
                if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                    white = Image.new("RGBA", image.size, "white")
                    return Image.alpha_composite(white, image.convert("RGBA")).convert("L")
                return image.convert("L")
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise UserError(f"{path}: image too large to be a digit (over {Image.MAX_IMAGE_PIXELS:,} pixels).") from None
    except UnidentifiedImageError:
        raise UserError(f"{path}: not an image Pillow can read (PNG, JPEG, BMP, GIF...).") from None
    except OSError as error:  # truncated or corrupt image data
        raise UserError(f"{path}: unreadable image ({error}).") from None


def mnist_style(image: Image.Image) -> np.ndarray:
    """A greyscale digit picture, any size and polarity -> (28, 28) uint8, light digit on black."""
    pixels = np.asarray(image.convert("L"), dtype=np.float32)
    if pixels.size == 0:
        raise ValueError("the image is empty")
    # The border is mostly background: a light border means dark ink, so invert.
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if np.median(border) > 127:
        pixels, border = 255 - pixels, 255 - border
    ink = np.clip(pixels - np.median(border), 0, None)
    if ink.max() < MIN_CONTRAST:
        raise ValueError("the image is blank (no digit stands out from the background)")

    strokes = ink > NOISE_FRACTION * ink.max()
    rows, cols = np.flatnonzero(strokes.any(axis=1)), np.flatnonzero(strokes.any(axis=0))
    digit = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    height, width = digit.shape
    scale = DIGIT_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    digit = np.asarray(Image.fromarray(digit).resize(size, Image.Resampling.LANCZOS))  # float32 -> mode "F"
    digit = np.clip(digit, 0, None)
    digit *= 255 / digit.max()

    # Shift by whole pixels so that the centre of mass lands where MNIST puts it: on pixel
    # (14, 14) (measured over the test set: 13.99 and 14.00 on average).
    ys, xs = np.indices(digit.shape)
    centre = FRAME / 2
    top = int(round(centre - (ys * digit).sum() / digit.sum()))
    left = int(round(centre - (xs * digit).sum() / digit.sum()))
    top = min(max(top, 0), FRAME - digit.shape[0])
    left = min(max(left, 0), FRAME - digit.shape[1])
    frame = np.zeros((FRAME, FRAME), dtype=np.float32)
    frame[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return frame.round().astype(np.uint8)


def load_digit(path: str | Path) -> torch.Tensor:
    """The digit picture at ``path`` as a (1, 28, 28) tensor, normalized exactly like training."""
    image = open_image(path)
    try:
        pixels = mnist_style(image)
    except ValueError as error:
        raise UserError(f"{path}: {error}.") from None
    return normalize(torch.from_numpy(pixels)).unsqueeze(0)
