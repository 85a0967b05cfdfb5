"""Pictures of no class, shown to the network while it trains so that it learns to be unsure of them.

Outlier exposure (Hendrycks, Mazeika and Dietterich, 2019): next to each training batch, a batch
of pictures that belong to no class, whose loss pulls the network's answer towards "every class
equally likely". A network trained only on digits is as sure of a scribble as of a 7; after this,
its top probability and the energy of its logits tell them apart (benchmarks/ood.py).

The outliers are made here, by code, so that no other data set is needed, drawn like the set's own
pictures (light on black, anti-aliased, in the middle of the frame): tangled strokes; letters that
look like no digit, written as pen strokes through a few points each; compositions of outlined
boxes with marks inside; faces; filled, textured patches as large as the frame; and
noise, plain and blurred into blobs. The drawings benchmarks/ood.py measures with (letters typed
in a font, smileys, squares, scribbles of tests/helpers/not_digits.py) come from other code,
never from this.
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


# Letters no digit is mistaken for, as strokes through points of a unit box (x right, y down).
LETTERS: dict[str, list[list[tuple[float, float]]]] = {
    "A": [[(0.15, 0.95), (0.5, 0.05), (0.85, 0.95)], [(0.3, 0.6), (0.7, 0.6)]],
    "E": [[(0.8, 0.05), (0.2, 0.05), (0.2, 0.95), (0.8, 0.95)], [(0.2, 0.5), (0.65, 0.5)]],
    "F": [[(0.8, 0.05), (0.2, 0.05), (0.2, 0.95)], [(0.2, 0.5), (0.65, 0.5)]],
    "H": [[(0.2, 0.05), (0.2, 0.95)], [(0.8, 0.05), (0.8, 0.95)], [(0.2, 0.5), (0.8, 0.5)]],
    "K": [[(0.2, 0.05), (0.2, 0.95)], [(0.8, 0.05), (0.22, 0.55), (0.8, 0.95)]],
    "M": [[(0.1, 0.95), (0.2, 0.05), (0.5, 0.6), (0.8, 0.05), (0.9, 0.95)]],
    "N": [[(0.2, 0.95), (0.2, 0.05), (0.8, 0.95), (0.8, 0.05)]],
    "R": [[(0.2, 0.95), (0.2, 0.05), (0.7, 0.1), (0.75, 0.35), (0.2, 0.5), (0.8, 0.95)]],
    "W": [[(0.05, 0.05), (0.28, 0.95), (0.5, 0.35), (0.72, 0.95), (0.95, 0.05)]],
    "X": [[(0.15, 0.05), (0.85, 0.95)], [(0.85, 0.05), (0.15, 0.95)]],
    "Y": [[(0.15, 0.05), (0.5, 0.5), (0.85, 0.05)], [(0.5, 0.5), (0.5, 0.95)]],
    "V": [[(0.1, 0.05), (0.5, 0.95), (0.9, 0.05)]],
    "#": [[(0.35, 0.05), (0.3, 0.95)], [(0.7, 0.05), (0.65, 0.95)], [(0.1, 0.35), (0.9, 0.35)], [(0.1, 0.68), (0.9, 0.68)]],
    "+": [[(0.5, 0.1), (0.5, 0.9)], [(0.1, 0.5), (0.9, 0.5)]],
}


def pen(rng: np.random.Generator, size: int) -> tuple[Image.Image, ImageDraw.ImageDraw, int, float]:
    """A black canvas at 4x, a drawer on it, a pen width, and the half side of the box to draw in."""
    big = size * OVERSAMPLE
    image = Image.new("L", (big, big), 0)
    return image, ImageDraw.Draw(image), int(big * rng.uniform(0.05, 0.12)), big * rng.uniform(0.28, 0.38)


def letter(rng: np.random.Generator, size: int) -> Image.Image:
    """A letter no digit looks like, its points moved a little, slanted and turned at random."""
    image, draw, width, reach = pen(rng, size)
    strokes = LETTERS[list(LETTERS)[int(rng.integers(len(LETTERS)))]]
    slant, turn = rng.uniform(-0.3, 0.3), rng.uniform(-0.25, 0.25)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    for stroke in strokes:
        points = np.array(stroke) - 0.5 + rng.normal(0, 0.03, (len(stroke), 2))
        points[:, 0] -= slant * points[:, 1]
        points = points @ rotation.T * 2 * reach + image.width / 2
        draw.line([tuple(point) for point in points.tolist()], fill=int(rng.integers(160, 256)), width=width, joint="curve")
    return image.reduce(OVERSAMPLE)


def composition(rng: np.random.Generator, size: int) -> Image.Image:
    """An outlined box with two to four marks (dots, dashes, arcs) inside: a sign, a form, a face. Never
    a ring, which with a mark inside is still a fair 0 (a slashed or dotted zero), nor a mark outside,
    which could make a 4 or a 9."""
    image, draw, width, reach = pen(rng, size)
    c, ink = image.width / 2, int(rng.integers(160, 256))
    rx, ry = reach * rng.uniform(0.7, 1.0), reach * rng.uniform(0.7, 1.0)
    draw.rectangle((c - rx, c - ry, c + rx, c + ry), outline=ink, width=width)
    for _ in range(int(rng.integers(2, 5))):
        x, y = c + rx * rng.uniform(-0.5, 0.5), c + ry * rng.uniform(-0.5, 0.5)
        mark, r = int(rng.integers(3)), reach * rng.uniform(0.15, 0.3)
        if mark == 0:
            draw.ellipse((x - r / 2, y - r / 2, x + r / 2, y + r / 2), fill=ink)
        elif mark == 1:
            angle = rng.uniform(0, np.pi)
            draw.line((x - r * np.cos(angle), y - r * np.sin(angle), x + r * np.cos(angle), y + r * np.sin(angle)), fill=ink, width=width)
        else:
            start = rng.uniform(0, 360)
            draw.arc((x - r, y - r, x + r, y + r), start, start + rng.uniform(90, 200), fill=ink, width=width)
    return image.reduce(OVERSAMPLE)


def face(rng: np.random.Generator, size: int) -> Image.Image:
    """A face: an outlined head with two eyes, and a mouth or a nose or both. With at least three marks in
    it, a ring is no longer a 0 a hand could have drawn."""
    image, draw, width, reach = pen(rng, size)
    c, ink = image.width / 2, int(rng.integers(160, 256))
    rx, ry = reach * rng.uniform(0.75, 1.0), reach * rng.uniform(0.8, 1.0)
    if rng.random() < 0.75:
        draw.ellipse((c - rx, c - ry, c + rx, c + ry), outline=ink, width=width)
    else:
        draw.rounded_rectangle((c - rx, c - ry, c + rx, c + ry), radius=rx / 2, outline=ink, width=width)
    eye_x, eye_y, eye = rx * rng.uniform(0.3, 0.45), c - ry * rng.uniform(0.2, 0.4), max(width / 2, reach * rng.uniform(0.06, 0.12))
    for x in (c - eye_x, c + eye_x):
        if rng.random() < 0.6:
            draw.ellipse((x - eye, eye_y - eye, x + eye, eye_y + eye), fill=ink)
        else:
            draw.line((x - eye, eye_y, x + eye, eye_y), fill=ink, width=width)
    marks = int(rng.integers(1, 4))  # 1: a mouth, 2: a nose, 3: both
    if marks & 1:
        mouth_y, half = c + ry * rng.uniform(0.25, 0.5), rx * rng.uniform(0.3, 0.6)
        if rng.random() < 0.7:
            bend = ry * rng.uniform(-0.35, 0.35)  # a smile or a frown
            box = (c - half, mouth_y - abs(bend), c + half, mouth_y + abs(bend) + 1)
            draw.arc(box, 0 if bend > 0 else 180, 180 if bend > 0 else 360, fill=ink, width=width)
        else:
            draw.line((c - half, mouth_y, c + half, mouth_y), fill=ink, width=width)
    if marks & 2:
        draw.line((c, c - ry * 0.1, c, c + ry * 0.15), fill=ink, width=width)
    return image.reduce(OVERSAMPLE)


def patch(rng: np.random.Generator, size: int) -> Image.Image:
    """A filled polygon nearly as large as the frame, its inside textured: a silhouette of a thing, not a stroke."""
    big = size * OVERSAMPLE
    angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(4, 9))))
    radii = big * rng.uniform(0.3, 0.48, len(angles))
    points = [(big / 2 + r * np.cos(a), big / 2 + r * np.sin(a)) for r, a in zip(radii, angles)]
    mask = Image.new("L", (big, big), 0)
    ImageDraw.Draw(mask).polygon(points, fill=255)
    texture = rng.uniform(60, 230) + rng.normal(0, rng.uniform(5, 50), (big // 8, big // 8))
    filled = np.asarray(Image.fromarray(texture.astype(np.float32)).resize((big, big), Image.Resampling.BILINEAR))
    pixels = np.clip(filled, 0, 255) * (np.asarray(mask, np.float32) / 255)
    return Image.fromarray(pixels.astype(np.uint8)).reduce(OVERSAMPLE)


def noise(rng: np.random.Generator, size: int) -> Image.Image:
    """Uniform noise, or noise blurred into blobs of random size and brightness."""
    pixels = rng.integers(0, 256, (size, size), dtype=np.uint8)
    image = Image.fromarray(pixels)
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 3)))
        image = Image.fromarray(np.clip((np.asarray(image, np.float32) - 128) * rng.uniform(2, 8) + 128, 0, 255).astype(np.uint8))
    return image


# Each kind of outlier in turn, so that every share is exact: tangles and letters most.
KINDS = (tangle, letter, composition, face, tangle, letter, patch, noise)


def synthetic_outliers(count: int, size: int, channels: int, seed: int = 0) -> torch.Tensor:
    """(count, channels, size, size) uint8 pictures of no class, of every kind in KINDS in turn."""
    rng = np.random.default_rng(seed)
    pictures = [np.asarray(KINDS[i % len(KINDS)](rng, size)) for i in range(count)]
    stacked = torch.from_numpy(np.stack(pictures)).unsqueeze(1)
    return stacked.expand(-1, channels, -1, -1).contiguous()
