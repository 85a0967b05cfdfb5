"""Digits in the styles users bring, as picture files (PNG or JPEG bytes) to be read through the same
preprocessing as any picture: the positive side of benchmarks/ood.py, built apart from anything `fit`
trains on. Each set comes from its own generator and source:

- ``scan``: MNIST test digits reduced to 9-14 px and scaled back up, as a low-resolution scan
  looks (blurred, thick), half dark on light, some off-centre on a larger sheet;
- ``pen``: pen strokes through hand-placed points of each digit's shape, jittered, slanted and
  blurred on a 280x280 canvas, as the page sends a drawing;
- ``typed``: digits typed in the machine's TrueType fonts (DejaVu, Liberation), any polarity;
- ``photo``: MNIST test digits as dark ink on lit, noisy, uneven paper, turned a little and saved
  as JPEG, as a phone photo of paper looks;
- ``optdigits``: real handwriting of 43 other writers (UCI's optdigits, 8x8 counts of 32x32
  bitmaps, as scikit-learn ships them) scaled up to 160 px: another source altogether;
- ``typeset``: digits set in the fonts matplotlib ships (Computer Modern and STIX: serifs, italics,
  typewriter), dark on uneven paper, blurred a little, PNG or JPEG;
- ``marker``: MNIST test digits (from the other end of the pictures ``scan`` and ``photo`` take)
  in a thick marker on a whiteboard, photographed at a tilt, blurred, PNG or JPEG.
"""

import io
from pathlib import Path
from typing import Callable, Iterator

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SIDE = 280
FONT_DIRS = ("/usr/share/fonts/truetype", "/usr/local/share/fonts", "/Library/Fonts", "C:/Windows/Fonts")
# matplotlib's own fonts, the same on every machine; none of them is among FONT_DIRS' DejaVu and Liberation.
TYPESET_FONTS = tuple(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name for name in (
    "cmr10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmb10.ttf", "cmti10.ttf", "STIXGeneral.ttf", "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf"))

# Each digit's shape as strokes through points in a unit box (x right, y down), one list per stroke.
STROKES: dict[int, list[list[tuple[float, float]]]] = {
    0: [[(0.5 + 0.32 * np.sin(t), 0.5 - 0.42 * np.cos(t)) for t in np.linspace(0, 2 * np.pi, 24)]],
    1: [[(0.35, 0.25), (0.55, 0.08), (0.55, 0.92)]],
    2: [[(0.2, 0.3), (0.35, 0.12), (0.6, 0.1), (0.76, 0.26), (0.7, 0.45), (0.2, 0.9), (0.82, 0.9)]],
    3: [[(0.22, 0.15), (0.72, 0.13), (0.45, 0.43), (0.7, 0.58), (0.72, 0.8), (0.5, 0.92), (0.2, 0.85)]],
    4: [[(0.62, 0.92), (0.62, 0.08), (0.15, 0.65), (0.85, 0.65)]],
    5: [[(0.75, 0.1), (0.32, 0.1), (0.27, 0.45), (0.55, 0.4), (0.76, 0.56), (0.7, 0.82), (0.45, 0.93), (0.2, 0.82)]],
    6: [[(0.7, 0.08), (0.42, 0.28), (0.26, 0.6), (0.3, 0.85), (0.55, 0.93), (0.73, 0.76), (0.62, 0.55), (0.36, 0.57), (0.27, 0.68)]],
    7: [[(0.18, 0.1), (0.82, 0.1), (0.4, 0.92)]],
    8: [[(0.5 + 0.2 * np.sin(t), 0.29 - 0.2 * np.cos(t)) for t in np.linspace(np.pi, 3 * np.pi, 16)]
        + [(0.5 - 0.26 * np.sin(t), 0.71 - 0.21 * np.cos(t)) for t in np.linspace(0, 2 * np.pi, 18)]],
    9: [[(0.72, 0.3)] + [(0.5 + 0.22 * np.cos(t), 0.3 + 0.2 * np.sin(t)) for t in np.linspace(0, 2 * np.pi, 18)]
        + [(0.7, 0.6), (0.64, 0.92)]],
}


def encoded(image: Image.Image, format: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def on_paper(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """0-1 ink -> uint8 pixels, light on black or (half the time) dark on white."""
    pixels = ink * 255
    return (pixels if rng.integers(2) else 255 - pixels).clip(0, 255).astype(np.uint8)


def picture_file(image: Image.Image, rng: np.random.Generator) -> bytes:
    """PNG, or (half the time) JPEG at a random quality."""
    if rng.random() < 0.5:
        return encoded(image.convert("RGB"), "JPEG", quality=int(rng.integers(40, 90)))
    return encoded(image)


def on_lit_paper(ink: np.ndarray, rng: np.random.Generator, light: tuple[float, float] = (170, 250), slope: float = 30,
                 darkest: tuple[float, float] = (0, 70), grain: tuple[float, float] = (1, 6)) -> Image.Image:
    """0-1 ink -> dark ink on paper lit unevenly (brightness in ``light``, changing by up to ``slope`` across
    it), the ink's darkest in ``darkest``, with noise of a standard deviation in ``grain``."""
    side = ink.shape[0]
    ys, xs = np.mgrid[0:side, 0:side] / side
    lit = rng.uniform(*light) + rng.uniform(-slope, slope) * (xs - 0.5) + rng.uniform(-slope, slope) * (ys - 0.5)
    deepest = rng.uniform(*darkest)
    pixels = lit - ink.clip(0, 1) * (lit - deepest) + rng.normal(0, rng.uniform(*grain), ink.shape)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def scan(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A 28x28 MNIST digit as a low-resolution scan, scaled back up."""
    small = Image.fromarray(digit).resize((int(rng.integers(9, 15)),) * 2, Image.Resampling.BOX)
    big = small.resize((int(rng.integers(120, 281)),) * 2, Image.Resampling.BICUBIC)
    ink = np.asarray(big, np.float32) / 255
    if rng.random() < 0.4:  # off-centre on a sheet half as large again
        sheet = np.zeros((ink.shape[0] * 3 // 2,) * 2, np.float32)
        top, left = rng.integers(0, sheet.shape[0] - ink.shape[0] + 1, 2)
        sheet[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
        ink = sheet
    return encoded(Image.fromarray(on_paper(ink, rng)))


def pen(label: int, rng: np.random.Generator) -> bytes:
    """The digit drawn with a pen through its shape's points, each point moved a little, the whole slanted."""
    image = Image.new("L", (SIDE, SIDE), 0)
    draw = ImageDraw.Draw(image)
    scale = rng.uniform(120, 220)
    width, slant, turn = rng.uniform(0.6, 1.0), rng.uniform(-0.3, 0.3), rng.uniform(-0.2, 0.2)
    centre = SIDE / 2 + rng.uniform(-30, 30, 2)
    pen_width = int(rng.integers(8, 28))
    for stroke in STROKES[label]:
        points = np.array(stroke) - 0.5 + rng.normal(0, 0.025, (len(stroke), 2))
        points[:, 0] = points[:, 0] * width - slant * points[:, 1]
        rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
        points = points @ rotation.T * scale + centre
        draw.line([tuple(p) for p in points.tolist()], fill=255, width=pen_width, joint="curve")
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 4)))
    return encoded(Image.fromarray(on_paper(np.asarray(image, np.float32) / 255, rng)))


def machine_fonts() -> list[Path]:
    """The TrueType fonts installed in the usual places, sorted (empty on a machine with none)."""
    return sorted(font for folder in FONT_DIRS if Path(folder).is_dir() for font in Path(folder).rglob("*.ttf"))


def typed(label: int, rng: np.random.Generator, fonts: list[Path]) -> bytes:
    """The digit typed in one of ``fonts`` at a random size, turned a little."""
    image = Image.new("L", (SIDE, SIDE), 0)
    font = ImageFont.truetype(str(fonts[int(rng.integers(len(fonts)))]), int(rng.integers(90, 220)))
    ImageDraw.Draw(image).text((SIDE / 2, SIDE / 2), str(label), fill=255, font=font, anchor="mm")
    image = image.rotate(rng.uniform(-10, 10), resample=Image.Resampling.BICUBIC)
    return encoded(Image.fromarray(on_paper(np.asarray(image, np.float32) / 255, rng)))


def photo(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A 28x28 MNIST digit as dark ink on paper under uneven light, photographed and saved as JPEG."""
    side = int(rng.integers(150, 300))
    ink = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC), np.float32) / 255
    ink = np.asarray(Image.fromarray(ink).rotate(rng.uniform(-12, 12), resample=Image.Resampling.BICUBIC))
    image = on_lit_paper(ink, rng, light=(150, 235), slope=40, darkest=(10, 80), grain=(2, 10))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 2)))
    return encoded(image.convert("RGB"), "JPEG", quality=int(rng.integers(30, 80)))


def typeset(label: int, rng: np.random.Generator) -> bytes:
    """The digit set in one of matplotlib's fonts, anywhere near the middle, turned a little."""
    image = Image.new("L", (SIDE, SIDE), 0)
    font = ImageFont.truetype(str(TYPESET_FONTS[int(rng.integers(len(TYPESET_FONTS)))]), int(rng.integers(80, 200)))
    centre = (SIDE / 2 + rng.uniform(-30, 30), SIDE / 2 + rng.uniform(-30, 30))
    ImageDraw.Draw(image).text(centre, str(label), fill=255, font=font, anchor="mm")
    image = image.rotate(rng.uniform(-8, 8), resample=Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(rng.uniform(0, 2)))
    return picture_file(on_lit_paper(np.asarray(image, np.float32) / 255, rng), rng)


def marker(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A 28x28 MNIST digit in a thick marker on a whiteboard, photographed at a tilt."""
    side = int(rng.integers(180, 300))
    big = Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC)
    big = big.filter(ImageFilter.MaxFilter(int(rng.integers(2, 7)) * 2 + 1))  # a marker 5-13 px wide
    shift = side * rng.uniform(0, 0.15)
    tilt = [1 + rng.uniform(-0.1, 0.1), rng.uniform(-0.15, 0.15), -shift / 2, rng.uniform(-0.1, 0.1),
            1 + rng.uniform(-0.1, 0.1), 0, rng.uniform(-0.0008, 0.0008), rng.uniform(-0.0008, 0.0008)]
    big = big.transform((side, side), Image.Transform.PERSPECTIVE, tilt, Image.Resampling.BICUBIC)
    board = on_lit_paper(np.asarray(big, np.float32) / 255, rng).filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.5)))
    return picture_file(board, rng)


def optdigits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits (0-16) and their classes; ImportError without scikit-learn."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images, digits.target


def optdigit(counts: np.ndarray, rng: np.random.Generator) -> bytes:
    """One 8x8 optdigit (0-16 ink counts) scaled up to 160 px, in either polarity."""
    small = Image.fromarray((counts * 255 / 16).astype(np.uint8))
    ink = np.asarray(small.resize((160, 160), Image.Resampling.BICUBIC), np.float32) / 255
    return encoded(Image.fromarray(on_paper(ink, rng)))


def digit_set(style: str, count: int, mnist: tuple[np.ndarray, np.ndarray], seed: int = 0) -> Iterator[tuple[bytes, int]]:
    """``count`` (picture bytes, class) of ``style``; ``mnist`` is (28x28 uint8 digits, classes) to draw from."""
    rng = np.random.default_rng(seed)
    if style == "optdigits":
        images, labels = optdigits()
        for i in rng.permutation(len(images))[:count]:
            yield optdigit(images[i], rng), int(labels[i])
        return
    fonts = machine_fonts() if style == "typed" else []
    if style == "typed" and not fonts:
        raise RuntimeError("no TrueType fonts found in " + ", ".join(FONT_DIRS))
    makers: dict[str, Callable[[int], bytes]] = {
        "pen": lambda i: pen(i % 10, rng),
        "typed": lambda i: typed(i % 10, rng, fonts),
        "typeset": lambda i: typeset(i % 10, rng),
    }
    for i in range(count):
        if style in makers:
            yield makers[style](i), i % 10
        elif style == "marker":  # from the other end: not the digits scan and photo redraw
            yield marker(mnist[0][-1 - i], rng), int(mnist[1][-1 - i])
        else:
            digit, label = mnist[0][i], int(mnist[1][i])
            yield {"scan": scan, "photo": photo}[style](digit, rng), label


STYLES = ("scan", "pen", "typed", "photo", "optdigits", "typeset", "marker")
