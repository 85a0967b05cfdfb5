"""Files in the formats the commands read: MNIST's IDX files and a picture of a digit."""

import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def write_idx(path: Path, array: np.ndarray, int32: bool = False) -> None:
    """Write an array in the IDX format of the MNIST files: uint8, or big-endian int32 (QMNIST's labels)."""
    header = struct.pack(">HBB", 0, 0x0C if int32 else 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(">i4" if int32 else np.uint8).tobytes())


def digit_picture(path: Path) -> Path:
    """A dark 7 on white paper, as a picture file."""
    image = Image.new("L", (120, 160), 255)
    ImageDraw.Draw(image).line([(30, 20), (90, 20), (50, 140)], fill=0, width=12)
    image.save(path)
    return path
