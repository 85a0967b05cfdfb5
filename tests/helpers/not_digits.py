"""Drawings that are not digits, as a user would draw them on the page or scan them: scribbles,
letters that look like no digit, smileys, squares, single lines and pictographs, as 280x280 PNG
bytes (dark ink on white, or light on black), to be read through the same preprocessing as any
picture.

``symbol``: pictographs of things (an umbrella, a plane, an anchor, a chess knight...) from DejaVu
Sans, filled silhouettes as a photo of an object reads once its background is gone. ``glyph``
(HELD_OUT_KINDS, kept for final figures): mathematical signs and Greek capitals set in STIX, the
font matplotlib ships.
"""

import io
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

SIDE = 280
LETTERS = "AEFHKMNRWX"
KINDS = ("scribble", "letter", "smiley", "square", "line", "symbol")
HELD_OUT_KINDS = ("glyph",)
SYMBOL_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
# The kinds set as characters of a font: (the font, the characters, the range of sizes in pixels).
TYPESET_KINDS = {
    "symbol": (SYMBOL_FONT, "☂☎✈♠♣♥♦★☀⚓✂✉☕♞⚑☘⚙☯♫☁✿❄⚡☃♛♜♝♚⚘", (150, 260)),
    # none of them a digit's shape
    "glyph": (Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "STIXGeneral.ttf", "∑∏∫∮∞∇∂⊕⊗⊂⊃∩∪≠≈≡∀∃¬ΓΔΘΛΞΠΦΨΩ§¶&@%", (120, 220)),
}


def drawing(kind: str, rng: np.random.Generator) -> bytes:
    """One drawing of ``kind`` (KINDS) with a random pen, size, place and polarity, as PNG bytes."""
    light_on_dark = bool(rng.integers(2))
    ink, paper = (255, 0) if light_on_dark else (0, 255)
    image = Image.new("L", (SIDE, SIDE), paper)
    draw = ImageDraw.Draw(image)
    pen = int(rng.integers(12, 26))
    cx, cy, r = SIDE / 2 + rng.uniform(-30, 30), SIDE / 2 + rng.uniform(-30, 30), rng.uniform(60, 100)
    if kind == "scribble":
        points = [(cx + rng.uniform(-r, r), cy + rng.uniform(-r, r)) for _ in range(int(rng.integers(6, 14)))]
        draw.line(points, fill=ink, width=pen, joint="curve")
    elif kind == "letter":
        font = ImageFont.load_default(size=int(rng.integers(160, 230)))
        draw.text((cx, cy), LETTERS[int(rng.integers(len(LETTERS)))], fill=ink, font=font, anchor="mm",
                  stroke_width=pen // 4, stroke_fill=ink)
    elif kind == "smiley":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=ink, width=pen)
        for side in (-1, 1):
            draw.ellipse((cx + side * r / 2.5 - pen, cy - r / 3 - pen, cx + side * r / 2.5 + pen, cy - r / 3 + pen), fill=ink)
        draw.arc((cx - r / 2, cy - r / 3, cx + r / 2, cy + r / 1.6), 20, 160, fill=ink, width=pen)
    elif kind == "square":
        draw.rectangle((cx - r, cy - r * rng.uniform(0.7, 1), cx + r, cy + r * rng.uniform(0.7, 1)), outline=ink, width=pen)
    elif kind in TYPESET_KINDS:
        path, characters, sizes = TYPESET_KINDS[kind]
        font = ImageFont.truetype(str(path), int(rng.integers(*sizes)))
        draw.text((cx, cy), characters[int(rng.integers(len(characters)))], fill=ink, font=font, anchor="mm")
    elif kind == "line":  # across or slanting; an upright line would be a fair 1
        angle = rng.uniform(-0.6, 0.6)
        dx, dy = r * np.cos(angle), r * np.sin(angle)
        draw.line((cx - dx, cy - dy, cx + dx, cy + dy), fill=ink, width=pen)
    else:
        raise ValueError(f"no drawing of kind {kind!r}")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
