"""Turn a picture into the pixels the data set's own pictures are made of.

Three families (the ``pictures`` of each data set in sets.py):

- handwriting (MNIST, KMNIST, EMNIST, QMNIST): light strokes on black. Each character was
  scaled, keeping its aspect ratio and with anti-aliasing, so that its longer side is 20
  pixels, then placed in a 28x28 frame with its centre of mass at the centre.
- clothing (Fashion-MNIST): catalogue photos on a light background, trimmed to the object,
  scaled so that the longer side is 28 pixels, sharpened, centred and negated, so the object
  is light on black and fills the frame (Xiao, Rasul and Vollgraf, 2017, section 2).
- photos (CIFAR-10, folders and CSVs of one's own pictures): any mode made RGB (transparency over
  white, 16-bit scaled), fitted into the set's square keeping the aspect ratio and padded with the
  border colour (or centre-cropped), then kept in colour or made greyscale. A folder set's
  training pictures are read by the same function (decoding.py), so outside pictures match them.

A photo or a scan skips all of that, which is why models that score 99% on the test set fail
on them; this module redoes those steps. Pixels only: models/predictor.py normalizes them.

    from mnist_lit.data.pictures import load_picture
    pixels = load_picture("seven.png")          # (28, 28) uint8, light on black
"""

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from mnist_lit.core.errors import UserError
from mnist_lit.data.sets import DatasetInfo

FRAME = 28
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601 weights of red, green and blue
# The picture files `predict` picks out of folders.
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
# The longer side of a handwritten character in its 28x28 frame, as MNIST, EMNIST and KMNIST draw them.
STROKE_BOX = 20
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


def open_picture(source: str | Path | bytes, name: str = "upload", max_pixels: int | None = None) -> Image.Image:
    """A picture file, or its bytes, decoded in its own mode: the first frame, turned upright by its EXIF orientation.

    Errors name the path, or ``name`` for bytes. A picture of more than ``max_pixels`` (or of more
    than Pillow accepts) is refused from its header, before it is decoded.
    """
    if isinstance(source, bytes):
        file = io.BytesIO(source)
    else:
        file = name = Path(source)
        if not name.is_file():
            raise UserError(f"{name}: no such file.")
    # Pillow warns about damaged metadata (a TIFF tag longer than the file, corrupt EXIF...): part of
    # the one line when the picture is refused, silent when it decodes. Decompression bombs: Pillow
    # warns from 89 to 179 million pixels and refuses beyond; both are refused here.
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(file) as image:
                if max_pixels is not None and image.width * image.height > max_pixels:
                    raise ImageTooLarge(f"{name}: image too large ({image.width}x{image.height}, over {max_pixels:,} pixels).")
                image.seek(0)
                image.load()
                return ImageOps.exif_transpose(image)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise ImageTooLarge(f"{name}: image too large (over {Image.MAX_IMAGE_PIXELS:,} pixels).") from None
        except UnidentifiedImageError:
            raise NotAnImage(f"{name}: not an image Pillow can read (PNG, JPEG, BMP, GIF, TIFF, WebP...){_said(warned)}.") from None
        except UserError:
            raise
        except Exception as error:  # noqa: BLE001 - Pillow's decoders raise many types for damaged data
            reason = f"{type(error).__name__}: {' '.join(str(error).split())}"
            raise UserError(f"{name}: unreadable image ({reason}{_said(warned)}).") from None


def _said(warned: list[warnings.WarningMessage]) -> str:
    """What Pillow warned while it read a picture, in order, once each, as the end of a sentence."""
    return "".join(f"; {reason}" for reason in dict.fromkeys(" ".join(str(w.message).split()) for w in warned))


def open_image(source: str | Path | bytes, name: str = "upload", max_pixels: int | None = None) -> Image.Image:
    """A picture file, or its bytes, as 8-bit greyscale, transparency over white (see ``open_picture``)."""
    return as_rgb(open_picture(source, name, max_pixels)).convert("L")


def as_rgb(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Any mode (L, LA, P, RGB, RGBA, CMYK, 16-bit...) as RGB, transparent pixels composited on ``background``."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and 32-bit greyscale: Pillow's own conversion clips at 255 instead of scaling.
        values = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        image = Image.fromarray(np.clip(values * (255.0 / scale), 0, 255).round().astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        canvas = Image.new("RGBA", image.size, (*background, 255))
        return Image.alpha_composite(canvas, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


def is_grey(pixels: np.ndarray) -> bool:
    """Whether (H, W, 3) pixels have the same value in every channel."""
    return bool((pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all())


def fit_square(image: Image.Image, size: int, resize: str = "pad") -> np.ndarray:
    """An RGB picture as (size, size, 3) uint8: its longer side fitted and the rest padded with its
    border colour ("pad"), or its centre square kept ("crop")."""
    width, height = image.size
    if resize == "crop":
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        return np.asarray(image.resize((size, size), Image.Resampling.LANCZOS, box=(left, top, left + side, top + side)))
    fitted = image.resize(fitted_size((height, width), size), Image.Resampling.LANCZOS)
    pixels = np.asarray(fitted)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    frame = np.empty((size, size, 3), dtype=np.uint8)
    frame[:] = np.median(border, axis=0).round().astype(np.uint8)
    top, left = (size - pixels.shape[0]) // 2, (size - pixels.shape[1]) // 2
    frame[top : top + pixels.shape[0], left : left + pixels.shape[1]] = pixels
    return frame


def photo_style(image: Image.Image, size: int, channels: int, resize: str = "pad") -> np.ndarray:
    """Any picture -> (channels, size, size) uint8, as a folder set's own pictures are read (decoding.py)."""
    pixels = fit_square(as_rgb(image), size, resize)
    return to_channels(pixels, channels)


def to_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """RGB pixels (..., H, W, 3) -> (..., channels, H, W): as they are, or their luminance (ITU-R 601, as
    Pillow's "L") for one channel. A slice at a time: float copies of 50,000 pictures would be large."""
    if channels == 3:
        return np.ascontiguousarray(np.moveaxis(pixels, -1, -3))
    grey = np.empty(pixels.shape[:-1], dtype=np.uint8)
    rows, out = pixels.reshape(-1, *pixels.shape[-3:]), grey.reshape(-1, *grey.shape[-2:])
    for start in range(0, len(rows), 4096):
        out[start : start + 4096] = (rows[start : start + 4096].astype(np.float32) @ LUMA).round().clip(0, 255)
    return grey[..., None, :, :]


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


def handwriting_style(image: Image.Image) -> np.ndarray:
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
    size = fitted_size(digit.shape, STROKE_BOX)
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


STYLES = {"handwriting": handwriting_style, "clothing": fashion_style}
mnist_style, DIGIT_BOX = handwriting_style, STROKE_BOX  # their names before 0.6.0, for code that imports them


def load_picture(
    source: str | Path | bytes, pictures: str = "handwriting", name: str = "upload", max_pixels: int | None = None,
    size: int = FRAME, channels: int = 1, resize: str = "pad",
) -> np.ndarray:
    """A picture file, or its bytes, as the pixels a data set of ``pictures`` holds: (28, 28) uint8 for
    handwriting and clothing, (channels, size, size) uint8 for photos."""
    if pictures == "photos":
        return photo_style(open_picture(source, name, max_pixels), size, channels, resize)
    image = open_image(source, name, max_pixels)
    try:
        return STYLES[pictures](image)
    except ValueError as error:
        raise BlankPicture(f"{name if isinstance(source, bytes) else source}: {error}.") from None


def load_like(source: str | Path | bytes, dataset: DatasetInfo, name: str = "upload", max_pixels: int | None = None) -> np.ndarray:
    """A picture file, or its bytes, as ``load_picture`` makes it for ``dataset``: like that set's own pictures."""
    return load_picture(source, dataset.pictures, name, max_pixels, dataset.size, dataset.channels, dataset.resize)


# The two functions below run in worker processes when a folder set is read (decoding.py): they take
# and return plain values and import nothing beyond numpy and Pillow.

def read_sizes(paths: list[str]) -> list[int | None]:
    """The longer side of each picture, upright, from its header alone (None where Pillow cannot read it)."""
    sides = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # damaged metadata is reported when the picture itself is decoded
        for path in paths:
            try:
                with Image.open(path) as image:
                    sides.append(max(image.size))
            except Exception:  # noqa: BLE001 - likewise
                sides.append(None)
    return sides


def decode_files(paths: list[str], size: int, resize: str) -> tuple[list, list[bool], list[str | None]]:
    """Each picture as (size, size, 3) uint8 RGB, whether it is grey, and why it was not read (None where it was).
    ``resize`` "ink": as handwriting (``handwriting_style``), grey, the frame's side whatever ``size``."""
    pixels, grey, errors = [], [], []
    for path in paths:
        try:
            if resize == "ink":
                try:
                    image = np.repeat(handwriting_style(open_image(path))[..., None], 3, axis=-1)
                except ValueError as error:  # nothing but background
                    raise UserError(f"{path}: {error}") from None
            else:
                image = fit_square(as_rgb(open_picture(path)), size, resize)
            pixels.append(image)
            grey.append(is_grey(image))
            errors.append(None)
        except UserError as error:
            pixels.append(None)
            grey.append(False)
            errors.append(str(error).rstrip("."))
    return pixels, grey, errors
