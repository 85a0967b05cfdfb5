"""The pictures benchmarks/ood.py measures with: every style of digit and kind of drawing reads through
`predict`'s preprocessing, so that a run with or without --held_out never stops halfway."""

import io

import numpy as np
import pytest
from helpers.digit_styles import STYLES, digit_set
from helpers.not_digits import HELD_OUT_KINDS, KINDS, drawing
from PIL import Image

from mnist_lit.data.pictures import handwriting_style


@pytest.mark.parametrize("style", STYLES)
def test_every_style_of_digit_reads_as_a_digit_fitted_like_mnists(style):
    if style == "optdigits":
        pytest.importorskip("sklearn")
    bar = np.zeros((28, 28), np.uint8)
    bar[4:24, 12:16] = 255  # a 1, for the styles that redraw MNIST's pictures
    mnist = (np.stack([bar] * 4), np.ones(4, int))
    for data, label in digit_set(style, 3, mnist, seed=0):
        pixels = handwriting_style(Image.open(io.BytesIO(data)))
        ink = np.argwhere(pixels > 127)
        assert 0 <= label <= 9 and len(ink), style
        # The ink's longer side fitted into MNIST's 20-pixel box, whatever the picture's size.
        assert 17 <= max(np.ptp(ink, axis=0)) + 1 <= 21, (style, np.ptp(ink, axis=0))


@pytest.mark.parametrize("kind", KINDS + HELD_OUT_KINDS)
def test_every_drawing_of_no_digit_reads_as_a_picture_with_ink(kind):
    rng = np.random.default_rng(0)
    for _ in range(3):
        pixels = handwriting_style(Image.open(io.BytesIO(drawing(kind, rng))))
        assert pixels.shape == (28, 28) and pixels.max() == 255, kind
