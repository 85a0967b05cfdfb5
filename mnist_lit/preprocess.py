"""Turn a picture of one thing into a 28x28 input the way the data set's own pictures were made.

Two families (the ``pictures`` of each data set in datasets.py):

- handwriting (MNIST, KMNIST, EMNIST, QMNIST): light strokes on black. Each character was
  scaled, keeping its aspect ratio and with anti-aliasing, so that its longer side is 20
  pixels, then placed in a 28x28 frame with its centre of mass at the centre.
- clothing (Fashion-MNIST): catalogue photos on a light background, trimmed to the object,
  scaled so that the longer side is 28 pixels, sharpened, centred and negated, so the object
  is light on black and fills the frame (Xiao, Rasul and Vollgraf, 2017, section 2).

A photo or a scan skips all of that, which is why models that score 99% on the test set fail
on them; this module redoes those steps. Pixels only: inference.py normalizes them.

    from mnist_lit.preprocess import load_picture
    pixels = load_picture("seven.png")          # (28, 28) uint8, light on black
"""

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, UnidentifiedImageError

from mnist_lit.errors import UserError

FRAME = 28
DIGIT_BOX = 20
# Pixels fainter than this fraction of the darkest ink are noise (paper texture, JPEG
# artefacts) when finding the digit's bounding box; they still count in its pixels.
NOISE_FRACTION = 0.25
# A picture whose ink differs from its background by less than this (of 255) is blank.
MIN_CONTRAST = 32
BLANK = "the image is blank (nothing stands out from the background)"


class ImageTooLarge(UserError):
    """A picture with more pixels than Pillow will decode: a decompression bomb, or a mistake."""


class BlankPicture(UserError):
    """A picture with nothing to recognize in it."""


class NotAnImage(UserError):
    """Bytes that no image format Pillow knows can read."""


def open_image(source: str | Path | bytes, name: str = "upload", max_pixels: int | None = None) -> Image.Image:
    """A picture file, or its bytes, as 8-bit greyscale: the first frame of a GIF, transparency over white.

    Errors name the path, or ``name`` for bytes. A picture of more than ``max_pixels`` (or of more
    than Pillow accepts) is refused from its header, before it is decoded.
    """
    if isinstance(source, bytes):
        file = io.BytesIO(source)
    else:
        file = name = Path(source)
        if not name.is_file():
            raise UserError(f"{name}: no such file.")
    try:
        # Pillow warns from 89 to 179 million pixels and refuses beyond; refuse both.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file) as image:
                if max_pixels is not None and image.width * image.height > max_pixels:
                    raise ImageTooLarge(f"{name}: image too large ({image.width}x{image.height}, over {max_pixels:,} pixels).")
                image.seek(0)
                image.load()
                if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                    white = Image.new("RGBA", image.size, "white")
                    return Image.alpha_composite(white, image.convert("RGBA")).convert("L")
                return image.convert("L")
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageTooLarge(f"{name}: image too large (over {Image.MAX_IMAGE_PIXELS:,} pixels).") from None
    except UnidentifiedImageError:
        raise NotAnImage(f"{name}: not an image Pillow can read (PNG, JPEG, BMP, GIF...).") from None
    except OSError as error:  # truncated or corrupt image data
        raise UserError(f"{name}: unreadable image ({error}).") from None


def grey_pixels(image: Image.Image) -> np.ndarray:
    """The picture's greyscale values as float32, 0-255."""
    pixels = np.asarray(image.convert("L"), dtype=np.float32)
    if pixels.size == 0:
        raise ValueError("the image is empty")
    return pixels


def cropped(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``values`` cut to the bounding box of the True cells of ``keep``."""
    rows, cols = np.flatnonzero(keep.any(axis=1)), np.flatnonzero(keep.any(axis=0))
    return values[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def fitted_size(shape: tuple[int, int], longer_side: int) -> tuple[int, int]:
    """(width, height) of a picture of ``shape`` scaled so that its longer side is ``longer_side``."""
    height, width = shape
    scale = longer_side / max(height, width)
    return max(1, round(width * scale)), max(1, round(height * scale))


def mnist_style(image: Image.Image) -> np.ndarray:
    """A picture of one handwritten character, any size and polarity -> (28, 28) uint8, light on black."""
    pixels = grey_pixels(image)
    # The border is mostly background: a light border means dark ink, so invert.
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if np.median(border) > 127:
        pixels, border = 255 - pixels, 255 - border
    ink = np.clip(pixels - np.median(border), 0, None)
    if ink.max() < MIN_CONTRAST:
        raise ValueError(BLANK)

    digit = cropped(ink, ink > NOISE_FRACTION * ink.max())
    size = fitted_size(digit.shape, DIGIT_BOX)
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


# Fashion-MNIST's trimming: edges within 5% of full intensity of the corners' colour are background.
TRIM_TOLERANCE = 0.05 * 255


def fashion_style(image: Image.Image) -> np.ndarray:
    """A photo of one piece of clothing, any size -> (28, 28) uint8, light object on black."""
    pixels = grey_pixels(image)
    corners = np.array([pixels[0, 0], pixels[0, -1], pixels[-1, 0], pixels[-1, -1]])
    background = float(np.median(corners))
    distance = np.abs(pixels - background)
    # MIN_CONTRAST is above the trimming tolerance, so a picture that passes has something to keep.
    if distance.max() < MIN_CONTRAST:
        raise ValueError(BLANK)
    item = cropped(pixels, distance > TRIM_TOLERANCE)
    # Catalogue photos are shot on white: negate them. A dark background needs no negation.
    item = np.clip(background - item if background > 127 else item - background, 0, 255)

    size = fitted_size(item.shape, FRAME)
    item_image = Image.fromarray(item.round().astype(np.uint8)).resize(size, Image.Resampling.LANCZOS)
    # The paper's Gaussian sharpening of radius and sigma 1.0.
    item_image = item_image.filter(ImageFilter.UnsharpMask(radius=1, percent=100, threshold=0))
    frame = np.zeros((FRAME, FRAME), dtype=np.uint8)
    top, left = (FRAME - size[1]) // 2, (FRAME - size[0]) // 2
    frame[top : top + size[1], left : left + size[0]] = np.asarray(item_image)
    return frame


STYLES = {"handwriting": mnist_style, "clothing": fashion_style}


def load_picture(
    source: str | Path | bytes, pictures: str = "handwriting", name: str = "upload", max_pixels: int | None = None
) -> np.ndarray:
    """A picture file, or its bytes, as (28, 28) uint8 pixels, made like the pictures of a data set of ``pictures``."""
    image = open_image(source, name, max_pixels)
    try:
        return STYLES[pictures](image)
    except ValueError as error:
        raise BlankPicture(f"{name if isinstance(source, bytes) else source}: {error}.") from None
