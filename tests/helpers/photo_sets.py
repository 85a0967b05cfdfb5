"""Folder sets of photo-like pictures made by code, each by a generator of its own, to choose a recipe
for folders on some and report it on others (benchmarks/folder_recipes.py):

- ``shapes``: five filled shapes (circle, cross, square, star, triangle) of a random colour on a noisy
  background of another, 40-120 px, JPEG or PNG;
- ``symbols``: ten pictographs (DejaVu Sans' umbrella, plane, anchor, knight...) in colour, turned and
  scaled, on a background lit from one side with a second, fainter pictograph behind;
- ``textures``: six surface patterns (stripes, checks, dots, waves, rings, speckle) at any angle,
  scale and pair of colours, blurred or not;
- ``letters``: twelve capital letters typed in the machine's fonts over a photo-like gradient with
  clutter lines, seen slightly askew;
- ``garments``: Fashion-MNIST's trousers, dresses, sandals, bags and ankle boots (classes a person
  never confuses), each a silhouette of its own from the set's training or test part, dyed and lit,
  on a noisy background, 40-120 px: real pictures rather than drawn ones;
- ``outlines``: six shapes (circle, heart, moon, arrow-head, house, cloud) drawn as wobbly pen
  outlines on lit paper with a faint ruled grid, 48-128 px;
- ``flags``: six layouts of three colours (bands across, bands down, a cross, a diagonal, a disc, a
  corner box), waved and lit, 40-120 px.

``outlines`` and ``flags`` are held out for the final figure of a choice; ``letters`` and ``garments``
were, until the first one (benchmarks/NOTES.md).
"""

from functools import cache
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from helpers.digit_styles import encoded, machine_fonts
from helpers.not_digits import SYMBOL_FONT

SHAPES = ("circle", "cross", "square", "star", "triangle")
SYMBOLS = "☂✈⚓♞✂✉☕⚑☘⚙"
TEXTURES = ("stripes", "checks", "dots", "waves", "rings", "speckle")
LETTERS = "ABDEFGHKMPRT"
OUTLINES = ("circle", "heart", "moon", "arrowhead", "house", "cloud")
FLAGS = ("bands_across", "bands_down", "cross", "diagonal", "disc", "corner_box")
GARMENTS = {"trouser": 1, "dress": 3, "sandal": 5, "bag": 8, "ankle_boot": 9}  # Fashion-MNIST's labels


def colours(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A background colour and a foreground colour half the range away from it in every channel."""
    background = rng.integers(0, 256, 3)
    foreground = (background + 128 + rng.integers(-40, 41, 3)) % 256
    return tuple(int(c) for c in background), tuple(int(c) for c in foreground)


def noisy(size: tuple[int, int], colour: tuple[int, ...], rng: np.random.Generator, spread: float = 12) -> Image.Image:
    return Image.fromarray(np.clip(np.array(colour) + rng.normal(0, spread, (size[1], size[0], 3)), 0, 255).astype(np.uint8))


def side_light(side: int, rng: np.random.Generator, base: float, spread: float) -> np.ndarray:
    """(side, side, 1) brightness factors of a light from one side: ``base`` at the centre, ``spread`` across at most."""
    ys, xs = np.mgrid[0:side, 0:side] / side
    return (base + spread * (rng.uniform(-0.5, 0.5) * (xs - 0.5) + rng.uniform(-0.5, 0.5) * (ys - 0.5)))[..., None]


def shape(label: int, rng: np.random.Generator) -> Image.Image:
    width = int(rng.integers(40, 121))
    height = int(width * rng.uniform(0.75, 1.33))
    background, colour = colours(rng)
    image = noisy((width, height), background, rng)
    r = min(width, height) * rng.uniform(0.28, 0.42)
    cx, cy = width / 2 + rng.uniform(-0.1, 0.1) * width, height / 2 + rng.uniform(-0.1, 0.1) * height
    draw = ImageDraw.Draw(image)
    kind = SHAPES[label]
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif kind == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif kind == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=colour)
    elif kind == "cross":
        arm = r * rng.uniform(0.25, 0.4)
        draw.rectangle((cx - r, cy - arm, cx + r, cy + arm), fill=colour)
        draw.rectangle((cx - arm, cy - r, cx + arm, cy + r), fill=colour)
    else:  # a five-pointed star
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, r * rng.uniform(0.38, 0.5))
        draw.polygon(list(zip(cx + radii * np.cos(angles), cy + radii * np.sin(angles))), fill=colour)
    return image


def symbol(label: int, rng: np.random.Generator) -> Image.Image:
    side = int(rng.integers(64, 141))
    background, colour = colours(rng)
    light = np.array(background) * side_light(side, rng, 0.7, 0.6)
    image = Image.fromarray(np.clip(light + rng.normal(0, 8, (side, side, 3)), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    behind = SYMBOLS[int(rng.integers(len(SYMBOLS)))]  # a faint other thing, as photos have
    faint = tuple(int((b * 3 + c) / 4) for b, c in zip(background, colour))
    draw.text((rng.uniform(0, side), rng.uniform(0, side)), behind, fill=faint, font=ImageFont.truetype(str(SYMBOL_FONT), side // 3), anchor="mm")
    glyph = Image.new("L", (side, side), 0)
    ImageDraw.Draw(glyph).text((side / 2, side / 2), SYMBOLS[label], fill=255, anchor="mm",
                                font=ImageFont.truetype(str(SYMBOL_FONT), int(side * rng.uniform(0.45, 0.8))))
    glyph = glyph.rotate(rng.uniform(-25, 25), resample=Image.Resampling.BICUBIC,
                         translate=tuple(rng.uniform(-0.1, 0.1, 2) * side))
    image.paste(Image.new("RGB", (side, side), colour), mask=glyph)
    return image


def texture(label: int, rng: np.random.Generator) -> Image.Image:
    side = int(rng.integers(48, 129))
    one, two = (np.array(c, np.float32) for c in colours(rng))
    ys, xs = np.mgrid[0:side, 0:side].astype(np.float32)
    turn = rng.uniform(0, np.pi)
    u, v = xs * np.cos(turn) + ys * np.sin(turn), -xs * np.sin(turn) + ys * np.cos(turn)
    period = rng.uniform(6, 16)
    kind = TEXTURES[label]
    if kind == "stripes":
        mask = (u // (period / 2)) % 2
    elif kind == "checks":
        mask = ((u // period) + (v // period)) % 2
    elif kind == "dots":
        mask = (((u % period) - period / 2) ** 2 + ((v % period) - period / 2) ** 2 < (period * 0.3) ** 2).astype(np.float32)
    elif kind == "waves":
        mask = ((v + period * 0.6 * np.sin(u * 2 * np.pi / (period * 2.5))) // (period / 2)) % 2
    elif kind == "rings":
        cx, cy = rng.uniform(0, side, 2)
        mask = (np.hypot(xs - cx, ys - cy) // (period / 2)) % 2
    else:  # speckle: blobs of noise at the period's scale
        small = rng.random((max(2, int(side / period * 2)),) * 2)
        mask = np.asarray(Image.fromarray((small * 255).astype(np.uint8)).resize((side, side), Image.Resampling.BICUBIC)) > 127
    mask = mask.astype(np.float32)[..., None]
    pixels = one * (1 - mask) + two * mask + rng.normal(0, 6, (side, side, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.2)))


def letter(label: int, rng: np.random.Generator, fonts: list[Path]) -> Image.Image:
    side = int(rng.integers(56, 129))
    background, colour = colours(rng)
    ys, xs = np.mgrid[0:side, 0:side] / side
    gradient = np.array(background) * (0.6 + 0.8 * ys[..., None] * rng.uniform(0, 1))
    image = Image.fromarray(np.clip(gradient + rng.normal(0, 10, (side, side, 3)), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(1, 4))):  # clutter: lines across
        draw.line([tuple(rng.uniform(0, side, 2)), tuple(rng.uniform(0, side, 2))], fill=tuple(int(c) for c in rng.integers(0, 256, 3)),
                  width=int(rng.integers(1, 4)))
    font = ImageFont.truetype(str(fonts[int(rng.integers(len(fonts)))]), int(side * rng.uniform(0.5, 0.8)))
    draw.text((side / 2 + rng.uniform(-0.08, 0.08) * side, side / 2), LETTERS[label], fill=colour, font=font, anchor="mm")
    coefficients = (1, rng.uniform(-0.15, 0.15), 0, rng.uniform(-0.15, 0.15), 1, 0)  # seen a little askew
    return image.transform(image.size, Image.Transform.AFFINE, coefficients, resample=Image.Resampling.BICUBIC)


@cache
def fashion_silhouettes(train: bool) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST's pictures (N, 28, 28) and labels of one part, from the data root `fit` reads."""
    from mnist_lit.data.builtin_files import load_builtin, resolve_data_dir
    from mnist_lit.data.sets import DATASETS

    images, labels = load_builtin(DATASETS["fashion_mnist"], resolve_data_dir(None), train)
    return images.squeeze(1).numpy(), labels.numpy()


def garment(label: int, rng: np.random.Generator, train: bool) -> Image.Image:
    images, labels = fashion_silhouettes(train)
    pool = np.flatnonzero(labels == list(GARMENTS.values())[label])
    side = int(rng.integers(40, 121))
    silhouette = Image.fromarray(images[int(rng.choice(pool))]).resize((side, side), Image.Resampling.BICUBIC)
    shade = np.asarray(silhouette.rotate(rng.uniform(-15, 15), resample=Image.Resampling.BICUBIC), np.float32)[..., None] / 255
    background, dye = (np.array(c, np.float32) for c in colours(rng))
    light = side_light(side, rng, 0.75, 0.5)
    # The garment's own shading (Fashion-MNIST's grey levels) modulates its dye, as folds and seams do.
    pixels = (background * (1 - np.minimum(shade * 2, 1)) + dye * np.minimum(shade * 2, 1) * (0.6 + 0.4 * shade)) * light
    return Image.fromarray(np.clip(pixels + rng.normal(0, 8, pixels.shape), 0, 255).astype(np.uint8))


def outline_points(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A closed outline of ``kind`` around the origin, about 1 across, as (N, 2) points."""
    t = np.linspace(0, 2 * np.pi, 120, endpoint=False)
    if kind == "circle":
        return np.stack([np.cos(t), np.sin(t)], 1) * 0.5
    if kind == "heart":
        x, y = 16 * np.sin(t) ** 3, 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
        return np.stack([x, -y], 1) / 34
    if kind == "moon":  # a crescent: an outer arc and an inner one
        outer = np.stack([np.cos(t[:60] * 2 - np.pi / 2), np.sin(t[:60] * 2 - np.pi / 2)], 1)[:40]
        inner = outer[::-1] * 0.8 + [0.35, 0]
        return np.concatenate([outer, inner]) * 0.5
    corners = {
        "arrowhead": [(-0.5, -0.45), (0.5, 0), (-0.5, 0.45), (-0.2, 0)],
        "house": [(-0.4, 0.5), (-0.4, -0.05), (0, -0.5), (0.4, -0.05), (0.4, 0.5)],
    }
    if kind in corners:
        return np.array(corners[kind], float)
    bumps = 1 + 0.3 * np.abs(np.sin(t * 3.5 + rng.uniform(0, 6)))  # a cloud: an oval of seven scallops
    return np.stack([np.cos(t) * 0.45, np.sin(t) * 0.32], 1) * bumps[:, None]


def outline(label: int, rng: np.random.Generator) -> Image.Image:
    side = int(rng.integers(48, 129))
    paper = np.array([rng.integers(200, 256), rng.integers(190, 250), rng.integers(170, 240)], np.float32)
    lit = paper * side_light(side, rng, 0.75, 0.35)
    image = Image.fromarray(np.clip(lit + rng.normal(0, 5, (side, side, 3)), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    gap = rng.uniform(8, 16)
    for y in np.arange(gap / 2, side, gap):  # ruled paper, faint
        draw.line([(0, y), (side, y)], fill=tuple(int(c * 0.85) for c in paper), width=1)
    points = outline_points(OUTLINES[label], rng)
    turn = rng.uniform(-0.4, 0.4)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    points = points @ rotation.T * side * rng.uniform(0.55, 0.8) + side / 2 + rng.uniform(-0.08, 0.08, 2) * side
    points = points + rng.normal(0, side * 0.01, points.shape)  # a hand's wobble
    ink = tuple(int(c) for c in rng.integers(0, 90, 3))
    draw.line([tuple(p) for p in np.concatenate([points, points[:1]])], fill=ink, width=max(1, int(side * rng.uniform(0.02, 0.05))),
              joint="curve")
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.8)))


def flag(label: int, rng: np.random.Generator) -> Image.Image:
    width = int(rng.integers(40, 121))
    height = int(width * rng.uniform(0.6, 0.8))
    palette = rng.permutation(np.array([[200, 30, 40], [250, 250, 245], [20, 60, 160], [250, 200, 20], [20, 130, 60], [15, 15, 15]]))[:3]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    wave = np.sin(xs / width * np.pi * rng.uniform(1.5, 3) + rng.uniform(0, 6)) * height * 0.04
    u, v = xs / width, (ys + wave) / height
    kind = FLAGS[label]
    if kind == "bands_across":
        index = np.minimum((v * 3).astype(int), 2)
    elif kind == "bands_down":
        index = np.minimum((u * 3).astype(int), 2)
    elif kind == "cross":
        index = ((np.abs(u - 0.35) < 0.08) | (np.abs(v - 0.5) < 0.12)).astype(int)
    elif kind == "diagonal":
        index = np.where(np.abs(u - v) < 0.12, 2, (u > v).astype(int))
    elif kind == "disc":
        index = (np.hypot((u - 0.5) * width / height, v - 0.5) < 0.28).astype(int)
    else:  # a box in the upper left corner, bands elsewhere
        index = np.where((u < 0.4) & (v < 0.5), 2, (v * 2).astype(int) % 2)
    shade = 0.8 + 0.3 * np.cos(xs / width * np.pi * rng.uniform(1.5, 3) + rng.uniform(0, 6))[..., None]  # folds
    pixels = palette[np.clip(index, 0, 2)] * shade
    sky = np.array(colours(rng)[0], np.float32)
    framed = np.clip(sky + rng.normal(0, 10, (height + height // 3, width + width // 4, 3)), 0, 255)
    top, left = int(rng.integers(0, height // 3 + 1)), int(rng.integers(0, width // 4 + 1))
    framed[top : top + height, left : left + width] = pixels + rng.normal(0, 6, pixels.shape)
    return Image.fromarray(np.clip(framed, 0, 255).astype(np.uint8))


def makers(train: bool = True) -> dict[str, tuple[tuple[str, ...], Callable[[int, np.random.Generator], Image.Image]]]:
    """Each set's class names and the function that draws a picture of class ``label`` for the ``train`` or test part."""
    fonts = machine_fonts()
    return {
        "shapes": (SHAPES, shape),
        "symbols": (tuple(f"symbol_{i}" for i in range(len(SYMBOLS))), symbol),
        "textures": (TEXTURES, texture),
        "letters": (tuple(LETTERS), lambda label, rng: letter(label, rng, fonts)),
        "garments": (tuple(GARMENTS), lambda label, rng: garment(label, rng, train)),
        "outlines": (OUTLINES, outline),
        "flags": (FLAGS, flag),
    }


def write_photo_set(name: str, root: Path, train: int, test: int, seed: int = 0) -> Path:
    """``root/train/<class>/`` and ``root/test/<class>/``: ``train`` and ``test`` pictures per class, JPEG or PNG."""
    rng = np.random.default_rng(seed)
    for part, count in (("train", train), ("test", test)):
        classes, draw = makers(train=part == "train")[name]
        for label, cls in enumerate(classes):
            folder = root / part / cls
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(count):
                image = draw(label, rng)
                data = encoded(image, "JPEG", quality=int(rng.integers(60, 95))) if n % 2 else encoded(image)
                (folder / f"{n:04d}.{'jpg' if n % 2 else 'png'}").write_bytes(data)
    return root
