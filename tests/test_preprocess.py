import numpy as np
import pytest
from PIL import Image, ImageDraw

from mnist_lit.core.errors import UserError
from mnist_lit.data.pictures import (
    STYLES,
    fashion_style,
    handwriting_style,
    load_picture,
    open_image,
)


def drawing(dark_on_light: bool, size=(400, 300)) -> Image.Image:
    """A thick '7'-like stroke drawn far from the centre of a large canvas."""
    paper, ink = (255, 20) if dark_on_light else (0, 235)
    image = Image.new("L", size, paper)
    draw = ImageDraw.Draw(image)
    draw.line([(40, 30), (140, 30), (90, 220)], fill=ink, width=16)
    return image


def bounding_box(pixels: np.ndarray) -> tuple[int, int]:
    rows = np.flatnonzero((pixels > 0).any(axis=1))
    cols = np.flatnonzero((pixels > 0).any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def centre_of_mass(pixels: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(pixels.shape)
    mass = pixels.astype(np.float64)
    return (ys * mass).sum() / mass.sum(), (xs * mass).sum() / mass.sum()


@pytest.mark.parametrize("dark_on_light", [True, False], ids=["dark-on-light", "light-on-dark"])
def test_digit_is_scaled_to_20_pixels_and_centred_by_mass(dark_on_light):
    pixels = handwriting_style(drawing(dark_on_light))
    assert pixels.shape == (28, 28) and pixels.dtype == np.uint8
    assert max(bounding_box(pixels)) in (19, 20, 21)
    y, x = centre_of_mass(pixels)
    # MNIST's convention, pixel (14, 14), is within 1 px of the frame's geometric centre (13.5).
    assert abs(y - 14) <= 0.5 and abs(x - 14) <= 0.5
    # Light digit on black, like MNIST: the corners are background.
    assert pixels[0, 0] == pixels[-1, -1] == 0 and pixels.max() == 255


def test_both_polarities_give_the_same_digit():
    light, dark = handwriting_style(drawing(True)), handwriting_style(drawing(False))
    assert np.abs(light.astype(int) - dark.astype(int)).mean() < 3


def test_aspect_ratio_is_kept():
    image = Image.new("L", (300, 300), 0)
    ImageDraw.Draw(image).rectangle([140, 50, 154, 250], fill=255)  # a '1': 15 wide, 201 tall
    height, width = bounding_box(handwriting_style(image))
    assert height in (19, 20, 21) and width <= 3


def test_faint_noise_does_not_move_the_bounding_box():
    clean = drawing(False)
    noisy = np.asarray(clean).copy()
    noisy[-5:, -5:] = 30  # a faint smudge in the far corner
    assert np.array_equal(handwriting_style(Image.fromarray(noisy)), handwriting_style(clean))


def test_load_picture_takes_the_steps_of_the_data_sets_pictures(tmp_path):
    path = tmp_path / "seven.png"
    drawing(True).save(path)
    assert np.array_equal(load_picture(path), handwriting_style(drawing(True)))
    assert np.array_equal(load_picture(path, "clothing"), fashion_style(drawing(True)))


def test_colour_gif_and_transparent_png_are_read(tmp_path):
    reference = handwriting_style(drawing(True))
    colour = drawing(True).convert("RGB")
    colour.save(tmp_path / "digit.jpg", quality=95)
    colour.save(tmp_path / "digit.bmp")
    frames = [drawing(True).convert("P"), Image.new("P", (400, 300), 0)]
    frames[0].save(tmp_path / "digit.gif", save_all=True, append_images=frames[1:])
    ink_only = Image.new("RGBA", (400, 300), (0, 0, 0, 0))  # black ink on a transparent sheet
    ImageDraw.Draw(ink_only).line([(40, 30), (140, 30), (90, 220)], fill=(0, 0, 0, 255), width=16)
    ink_only.save(tmp_path / "digit.png")
    for name in ("digit.jpg", "digit.bmp", "digit.gif", "digit.png"):
        pixels = handwriting_style(open_image(tmp_path / name))
        assert np.abs(pixels.astype(int) - reference.astype(int)).mean() < 6, name


@pytest.mark.parametrize("pictures", sorted(STYLES))
def test_bad_files_give_one_line_naming_the_file(tmp_path, monkeypatch, pictures):
    (tmp_path / "notes.png").write_text("not a picture")
    (tmp_path / "empty.png").write_bytes(b"")
    Image.new("L", (64, 64), 200).save(tmp_path / "blank.png")
    drawing(True).save(tmp_path / "whole.png")
    (tmp_path / "truncated.png").write_bytes((tmp_path / "whole.png").read_bytes()[:200])
    Image.new("L", (2000, 2000), 255).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)  # 2000x2000 is then bomb-sized
    cases = {
        "missing.png": "no such file",
        "notes.png": "not an image",
        "empty.png": "not an image",
        "blank.png": "blank",
        "truncated.png": "unreadable",
        "huge.png": "too large",
    }
    for name, problem in cases.items():
        with pytest.raises(UserError) as error:
            load_picture(tmp_path / name, pictures)
        message = str(error.value)
        assert name in message and problem in message and "\n" not in message
