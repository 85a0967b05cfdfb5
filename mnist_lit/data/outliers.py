"""Pictures of no class, shown to the network while it trains so that it learns to be unsure of them.

Outlier exposure (Hendrycks, Mazeika and Dietterich, 2019): next to each training batch, a batch
of pictures that belong to no class, whose loss pulls the network's answer towards "every class
equally likely". A network trained only on digits is as sure of a scribble as of a 7; after this,
its top probability and the energy of its logits tell them apart (benchmarks/ood.py).

The outliers are made here, by code, so that no other data set is needed, drawn like the set's own
pictures (light on black, anti-aliased, in the middle of the frame): tangled strokes; letters that
look like no digit, written as pen strokes through a few points each; compositions of outlined
boxes with marks inside; faces; filled, textured patches as large as the frame; and noise, plain
and blurred into blobs. For handwriting, things too, which no character is: filled silhouettes
mirrored left to right (garments, bottles, figures) and shoes seen from the side, every other
round of them and of the patches read as `predict` reads a picture file. The drawings
benchmarks/ood.py measures with (letters typed in a font, smileys, squares, scribbles of
tests/helpers/not_digits.py) and its Fashion-MNIST pictures come from elsewhere,
never from this.
"""

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from mnist_lit.data.pictures import handwriting_style

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


def silhouette(rng: np.random.Generator, size: int) -> Image.Image:
    """A filled thing mirrored left to right (a garment, a bottle, a lamp, a figure), 60-98% of the frame
    tall, sometimes on two legs or with arms, textured and sometimes printed or striped."""
    big = size * OVERSAMPLE
    height = big * rng.uniform(0.6, 0.98)
    top = (big - height) / 2
    knots = int(rng.integers(3, 7))
    ys = np.linspace(0, 1, knots)
    half = big * rng.uniform(0.1, 0.4) * rng.uniform(0.5, 1.3, knots)
    if rng.random() < 0.4:  # arms or sleeves: wide at the shoulders
        half[1] = max(half[1], big * rng.uniform(0.35, 0.48))
    rows = np.linspace(0, 1, 24)
    widths = np.interp(rows, ys, half)
    c = big / 2 + big * rng.uniform(-0.05, 0.05)
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    left = [(c - w, top + r * height) for w, r in zip(widths, rows)]
    right = [(c + w, top + r * height) for w, r in zip(widths, rows)][::-1]
    draw.polygon(left + right, fill=255)
    if rng.random() < 0.3:  # two legs: a gap up the lower part
        split = rng.uniform(0.3, 0.6)
        gap = big * rng.uniform(0.02, 0.1)
        draw.polygon([(c - gap, top + height * 1.01), (c, top + height * split), (c + gap, top + height * 1.01)], fill=0)
    texture = rng.uniform(60, 255) + rng.normal(0, rng.uniform(5, 40), (big // 8, big // 8))
    filled = np.asarray(Image.fromarray(texture.astype(np.float32)).resize((big, big), Image.Resampling.BILINEAR)).copy()
    if rng.random() < 0.3:  # stripes
        period = int(big * rng.uniform(0.05, 0.15))
        filled[(np.arange(big) // period) % 2 == 1] *= rng.uniform(0.2, 0.7)
    for _ in range(int(rng.integers(0, 3))):  # a print: a darker or lighter patch in the middle
        x0, y0 = c + big * rng.uniform(-0.15, 0.05), top + height * rng.uniform(0.2, 0.6)
        filled[int(y0):int(y0 + big * rng.uniform(0.05, 0.2)), int(x0):int(x0 + big * rng.uniform(0.05, 0.2))] *= rng.uniform(0.1, 1.5)
    pixels = np.clip(filled, 0, 255) * (np.asarray(mask, np.float32) / 255)
    return Image.fromarray(pixels.astype(np.uint8)).reduce(OVERSAMPLE)


def footwear(rng: np.random.Generator, size: int) -> Image.Image:
    """A shoe seen from the side, as wide as the frame: a sole, a heel or none, and straps over the foot or
    a filled upper; facing left or right."""
    big = size * OVERSAMPLE
    image = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(image)
    ink = int(rng.integers(120, 256))
    width = int(big * rng.uniform(0.03, 0.08))
    left, right = big * rng.uniform(0.02, 0.12), big * rng.uniform(0.88, 0.98)
    ground = big * rng.uniform(0.7, 0.9)
    lift = big * rng.uniform(0, 0.4)  # how high the heel raises the back of the foot
    arch = left + (right - left) * rng.uniform(0.25, 0.4)
    sole = [(left, ground - lift), (arch, ground - lift * 0.5), (right - big * 0.15, ground), (right, ground - big * 0.03)]
    draw.line(sole, fill=ink, width=width, joint="curve")
    if lift > big * 0.08:  # a heel: a post from the back of the sole down to the ground
        post = big * rng.uniform(0.03, 0.09)
        draw.polygon([(left, ground - lift), (left + post * 1.5, ground - lift), (left + post, ground), (left + post * 0.3, ground)], fill=ink)
    top = ground - lift - big * rng.uniform(0.2, 0.45)
    if rng.random() < 0.4:  # a filled upper: a sneaker, a boot
        back = [(left + big * 0.02, top), (left + big * rng.uniform(0.2, 0.35), top)]
        upper = back + [(right - big * 0.05, ground - big * rng.uniform(0.08, 0.2)), (right, ground - big * 0.03)] + sole[::-1][1:]
        draw.polygon(upper, fill=int(ink * rng.uniform(0.5, 1)))
    else:  # straps from the sole over the foot, and round the ankle
        for _ in range(int(rng.integers(2, 5))):
            a = left + (right - left) * rng.uniform(0.05, 0.5)
            b = min(right, a + (right - left) * rng.uniform(0.25, 0.5))
            peak = top + (ground - top) * rng.uniform(0, 0.4)
            shoulder = peak + (ground - peak) * 0.2  # an arch, not a tent
            arch_points = [(a, ground - lift * 0.6), (a + (b - a) * 0.25, shoulder), ((a + b) / 2, peak),
                           (b - (b - a) * 0.25, shoulder), (b, ground - lift * 0.2)]
            draw.line(arch_points, fill=ink, width=max(1, width // 2), joint="curve")
        if rng.random() < 0.6:
            draw.ellipse((left, top, left + big * 0.25, top + big * 0.15), outline=ink, width=max(1, width // 2))
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image.reduce(OVERSAMPLE)


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
# For handwriting, things too: garments, bottles, figures and shoes are what a photo that is no
# character shows. Never for clothing, whose own pictures they are.
HANDWRITING_KINDS = (tangle, letter, composition, face, silhouette, letter, patch, footwear, noise)
# A photo of a thing reaches a handwriting model as `predict` reads a file: cropped to its ink,
# fitted into MNIST's 20-pixel box and stretched to full brightness, a T-shirt is then a blob of a
# digit's size. Every other round of these kinds is drawn that way.
THINGS = (silhouette, patch, footwear)


def synthetic_outliers(count: int, size: int, channels: int, seed: int = 0, handwriting: bool = False) -> torch.Tensor:
    """(count, channels, size, size) uint8 pictures of no class, of every kind in KINDS in turn, or in
    HANDWRITING_KINDS with the things among them read as picture files every other round."""
    rng = np.random.default_rng(seed)
    kinds = HANDWRITING_KINDS if handwriting else KINDS
    pictures = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        picture = kind(rng, size)
        if handwriting and kind in THINGS and (i // len(kinds)) % 2 == 0:
            picture = Image.fromarray(handwriting_style(picture))
            picture = picture if picture.width == size else picture.resize((size, size), Image.Resampling.BILINEAR)
        pictures.append(np.asarray(picture))
    stacked = torch.from_numpy(np.stack(pictures)).unsqueeze(1)
    return stacked.expand(-1, channels, -1, -1).contiguous()
