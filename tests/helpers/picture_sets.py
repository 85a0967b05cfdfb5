"""Folder and CSV data sets written by code: filled shapes on noisy coloured backgrounds, in every
format and mode mnist-lit reads, with the traps users' folders hold (a damaged picture, a text file)."""

import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")
# Each picture's format and mode, in turn: every pair mnist-lit promises to read.
STYLES = [
    ("png", "RGB"), ("jpg", "RGB"), ("bmp", "RGB"), ("gif", "P"), ("tiff", "RGB"), ("webp", "RGB"),
    ("png", "RGBA"), ("png", "LA"), ("png", "L"), ("jpg", "CMYK"), ("png", "I;16"), ("PNG", "P"), ("JPEG", "RGB"),
]


def shape_picture(shape: str, rng: np.random.Generator, side: int | None = None) -> Image.Image:
    """One filled shape of a random colour on a noisy background of another colour, 40-100 pixels wide."""
    width = side or int(rng.integers(40, 101))
    height = side or int(width * rng.uniform(0.75, 1.33))
    background = rng.integers(0, 256, 3)
    noise = rng.normal(0, 12, (height, width, 3))
    image = Image.fromarray(np.clip(background + noise, 0, 255).astype(np.uint8))
    # Half the range away from the background in every channel, so that the shape shows in grey too.
    colour = tuple(int(c) for c in ((background + 128 + rng.integers(-30, 31, 3)) % 256))
    r = min(width, height) * rng.uniform(0.28, 0.42)
    cx, cy = width / 2 + rng.uniform(-0.1, 0.1) * width, height / 2 + rng.uniform(-0.1, 0.1) * height
    draw = ImageDraw.Draw(image)
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif shape == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=colour)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=colour)
    return image


def save_as(image: Image.Image, path: Path, mode: str) -> Path:
    """``image`` saved at ``path`` in ``mode`` (the suffix names the format)."""
    if mode == "RGBA":  # a transparent margin around an opaque middle
        alpha = Image.new("L", image.size, 0)
        ImageDraw.Draw(alpha).rectangle((4, 4, image.width - 5, image.height - 5), fill=255)
        image = image.copy()
        image.putalpha(alpha)
    elif mode == "LA":
        image = image.convert("LA")
    elif mode == "I;16":
        image = Image.fromarray(np.asarray(image.convert("L"), dtype=np.uint16) * 257)
    elif mode == "P":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE)
    else:
        image = image.convert(mode)
    image.save(path)
    return path


def write_folder(root: Path, per_class: int, seed: int = 0, shapes=SHAPES) -> Path:
    """``root/<shape>/<n>.<suffix>``: ``per_class`` pictures of each shape in every format and mode in turn."""
    rng = np.random.default_rng(seed)
    for shape in shapes:
        (root / shape).mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            suffix, mode = STYLES[n % len(STYLES)]
            save_as(shape_picture(shape, rng), root / shape / f"{n:03d}.{suffix}", mode)
    return root


def write_split_folder(root: Path, train: int, test: int, seed: int = 0) -> Path:
    """``root/train/<shape>/`` and ``root/test/<shape>/``, and the traps: a damaged PNG and a text file."""
    write_folder(root / "train", train, seed)
    write_folder(root / "test", test, seed + 1)
    good = (root / "train" / "circle" / "000.png").read_bytes()
    (root / "train" / "circle" / "damaged.png").write_bytes(good[: len(good) // 2])
    (root / "train" / "square" / "notes.txt").write_text("not a picture\n")
    return root


def write_noise_folder(root: Path, classes: int, per_class: int) -> Path:
    """``root/c<k>/<n>.png``: 28x28 grey noise, each picture unlike any other, so that a digest names one picture."""
    rng = np.random.default_rng(0)
    for label in range(classes):
        (root / f"c{label}").mkdir(parents=True)
        for n in range(per_class):
            Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(root / f"c{label}" / f"{n}.png")
    return root


def write_csv(folder: Path, csv_path: Path, path_column: str = "path", label_column: str = "label") -> Path:
    """A CSV file listing every picture of ``folder``'s class folders, paths relative to the CSV file."""
    with open(csv_path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([path_column, label_column])
        for picture in sorted(folder.rglob("*.*")):
            writer.writerow([picture.relative_to(csv_path.parent).as_posix(), picture.parent.name])
    return csv_path


def exif_rotated_jpeg(image: Image.Image, path: Path) -> Path:
    """``image`` stored turned a quarter left, with an EXIF orientation (6) that tells viewers to turn it back."""
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    image.rotate(90, expand=True).save(path, exif=exif.tobytes(), quality=95)
    return path
