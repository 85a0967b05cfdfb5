"""Damaged pictures, as a user's broken files and uploads would be: each is a picture, or one line naming it.

Seeded mutations (bytes changed anywhere, bytes changed in the header, truncations) of one real
picture per format the project reads, through the decoding functions, `predict` on a folder and a
running `serve`. A failure names the format and the mutation's index, so it can be made again.
"""

import io
import random
import warnings

import pytest
import requests
from helpers.checkpoints import untrained_checkpoint
from helpers.server_process import healthy, running_server
from PIL import Image, ImageDraw

from mnist_lit.__main__ import main
from mnist_lit.core.errors import UserError
from mnist_lit.data.pictures import load_picture, open_picture

FORMATS = {  # Pillow format: (suffix, save options)
    "PNG": ("png", {}),
    "JPEG": ("jpg", {"quality": 90}),
    "GIF": ("gif", {}),
    "BMP": ("bmp", {}),
    "TIFF": ("tif", {"compression": "tiff_deflate", "description": "a seven"}),
    "WEBP": ("webp", {"quality": 80}),
}
MUTATIONS = 400  # per format, through the decoding functions
MAX_PIXELS = 4_000_000


def original(format: str) -> bytes:
    """A small colour drawing with a stroke and a ring, saved in ``format``."""
    image = Image.new("RGB", (48, 40), "white")
    draw = ImageDraw.Draw(image)
    draw.line([(6, 5), (40, 32)], fill=(160, 0, 0), width=5)
    draw.ellipse([10, 8, 30, 34], outline=(0, 0, 200), width=3)
    file = io.BytesIO()
    image.save(file, format, **FORMATS[format][1])
    return file.getvalue()


def mutations(data: bytes, seed: str, count: int) -> list[bytes]:
    """``count`` damaged copies of ``data``: a third with bytes changed anywhere, a third cut short,
    a third with the header's bytes (sizes, chunk types, offsets) changed."""
    rng = random.Random(seed)
    damaged = []
    for index in range(count):
        copy = bytearray(data)
        if index % 3 == 0:
            for _ in range(rng.randint(1, 8)):
                copy[rng.randrange(len(copy))] = rng.randrange(256)
        elif index % 3 == 1:
            copy = copy[: rng.randrange(len(copy))]
        else:
            for _ in range(rng.randint(1, 4)):
                copy[rng.randrange(min(64, len(copy)))] = rng.randrange(256)
        damaged.append(bytes(copy))
    return damaged


@pytest.mark.parametrize("format", FORMATS)
def test_every_damaged_picture_decodes_or_is_refused_in_one_line(format):
    suffix = FORMATS[format][0]
    for index, damaged in enumerate(mutations(original(format), format, MUTATIONS)):
        name = f"{format}-{index}.{suffix}"
        for pictures, options in (("handwriting", {}), ("photos", {"size": 32, "channels": 3})):
            with warnings.catch_warnings(record=True) as escaped:
                warnings.simplefilter("always")
                try:
                    pixels = load_picture(damaged, pictures, name, MAX_PIXELS, **options)
                    assert pixels.dtype.name == "uint8", name
                except UserError as error:
                    assert str(error).startswith(f"{name}: ") and "\n" not in str(error), str(error)
            assert not escaped, (name, [str(w.message) for w in escaped])


def damaged_tiffs() -> tuple[bytes, bytes]:
    """Two TIFFs whose damage makes Pillow warn: one it still decodes, one it cannot."""
    image = Image.new("L", (32, 32), 255)
    ImageDraw.Draw(image).line([(5, 5), (25, 28)], fill=0, width=4)
    file = io.BytesIO()
    image.save(file, "TIFF", description="a seven " * 10)
    found = {}
    for damaged in mutations(file.getvalue(), "tiff tags", 3000):
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            try:
                with Image.open(io.BytesIO(damaged)) as picture:
                    picture.load()
                decodes = True
            except Exception:  # noqa: BLE001 - any refusal will do
                decodes = False
        if any("Tag data larger than file" in str(w.message) for w in warned):
            found.setdefault(decodes, damaged)
        if len(found) == 2:
            return found[True], found[False]
    raise AssertionError(f"no warning TIFFs among the mutations: {sorted(found)}")


def test_pillows_warnings_are_silent_when_a_picture_decodes_and_part_of_the_line_when_it_does_not():
    decodes, refused = damaged_tiffs()
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        assert open_picture(decodes, "kept.tif").size == (32, 32)
        with pytest.raises(UserError, match=r"^refused.tif: .*; Tag data larger than file\. Skipping tag \d+"):
            open_picture(refused, "refused.tif")
    assert not escaped, [str(w.message) for w in escaped]


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    return untrained_checkpoint(tmp_path_factory.mktemp("fuzz") / "model.ckpt")


def few_damaged(per_format: int) -> dict[str, bytes]:
    """File names and bytes: ``per_format`` damaged pictures of each format."""
    return {f"{format}-{index}.{suffix}": damaged
            for format, (suffix, _) in FORMATS.items()
            for index, damaged in enumerate(mutations(original(format), f"{format} files", per_format))}


def test_predict_on_a_folder_of_damaged_pictures_names_every_file_and_exits_1(untrained, tmp_path, capsys):
    folder = tmp_path / "pictures"
    folder.mkdir()
    files = few_damaged(6)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "good.png").write_bytes(original("PNG"))
    with pytest.raises(SystemExit) as exit_:
        main(["predict", "--ckpt_path", str(untrained), str(folder)])
    out, err = capsys.readouterr()
    assert exit_.value.code == 1 and "Traceback" not in err
    lines = out.splitlines() + err.splitlines()
    for name in [*files, "good.png"]:  # one line for each file, a prediction or an error
        assert sum(f"{folder / name}: " in line for line in lines) == 1, name
    assert any(line.startswith(f"{folder / 'good.png'}: ") for line in out.splitlines())
    assert all(line.startswith("error: ") for line in err.splitlines())


@pytest.mark.slow
def test_serve_answers_every_damaged_upload_with_a_2xx_or_a_4xx_and_stays_healthy(untrained):
    with running_server(untrained) as url:
        for name, data in few_damaged(5).items():
            response = requests.post(f"{url}/predict", data=data, headers={"Content-Type": "application/octet-stream"})
            assert 200 <= response.status_code < 500, (name, response.status_code, response.text)
            if not response.ok:
                detail = response.json()["detail"]
                assert detail and "\n" not in detail, (name, detail)
        assert healthy(url)
