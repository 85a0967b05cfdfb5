"""Folders and CSV files of one's own pictures as data sets: layouts, formats and modes, traps, cache, split."""

import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from helpers.checkpoints import save_checkpoint
from helpers.digit_styles import digit_set
from helpers.picture_sets import (
    SHAPES,
    exif_rotated_jpeg,
    save_as,
    shape_picture,
    write_csv,
    write_folder,
    write_split_folder,
)
from PIL import Image

from mnist_lit.core.errors import UserError
from mnist_lit.data import decoded_cache, decoding
from mnist_lit.data.datamodule import ImageDataModule
from mnist_lit.data.pictures import open_picture, photo_style
from mnist_lit.data.splits import stratified_split
from mnist_lit.models.classifier import ImageClassifier
from mnist_lit.models.predictor import load_predictor


def setup_data(path: Path, stage: str = "fit", **options) -> ImageDataModule:
    data = ImageDataModule(dataset=str(path), **options)
    data.setup(stage)
    return data


def test_class_folders_are_split_stratified_and_seeded(tmp_path):
    write_folder(tmp_path / "set", per_class=20)
    data = setup_data(tmp_path / "set", stage=None, val_fraction=0.25, test_fraction=0.1, split_seed=3)
    assert data.classes == sorted(SHAPES) and data.dataset_info.classes == tuple(sorted(SHAPES))
    val_counts = torch.bincount(data.val_set.labels, minlength=3).tolist()
    test_counts = torch.bincount(data.test_set.labels, minlength=3).tolist()
    assert val_counts == [5, 5, 5] and test_counts == [2, 2, 2] and len(data.train_set) == 39  # a quarter, a tenth of every class
    again = setup_data(tmp_path / "set", stage=None, val_fraction=0.25, test_fraction=0.1, split_seed=3)
    assert torch.equal(again.val_set.images, data.val_set.images)
    other = setup_data(tmp_path / "set", val_fraction=0.25, split_seed=4)
    assert not torch.equal(other.val_set.images, data.val_set.images)


def test_stratified_split_is_disjoint_and_complete_and_keeps_small_classes_in_both():
    labels = torch.tensor([0] * 50 + [1] * 3 + [2] * 2)
    train, val = stratified_split(labels, 0.1, seed=0)
    assert sorted(torch.cat([train, val]).tolist()) == list(range(len(labels)))
    assert torch.bincount(labels[val]).tolist() == [5, 1, 1] and torch.bincount(labels[train]).tolist() == [45, 2, 1]


def test_a_folder_with_train_and_test_is_used_as_given_and_test_reads_its_test_part(tmp_path):
    root = write_split_folder(tmp_path / "set", train=12, test=4)
    with pytest.warns(UserWarning, match=r"skipped 2 file\(s\) that are not readable pictures: .*damaged\.png.*notes\.txt"):
        data = setup_data(root, "fit")
    assert len(data.train_set) + len(data.val_set) == 36  # the two traps skipped, nothing else lost
    with pytest.warns(UserWarning, match="skipped 2"):
        test = setup_data(root, "test")
    assert len(test.test_set) == 12 and test.classes == data.classes


def test_a_val_folder_replaces_the_split(tmp_path):
    root = tmp_path / "set"
    write_folder(root / "train", 6)
    write_folder(root / "val", 2, seed=5)
    write_folder(root / "test", 2, seed=6)
    data = setup_data(root, "fit")
    assert len(data.train_set) == 18 and len(data.val_set) == 6


def test_a_csv_names_pictures_relative_to_itself_with_columns_of_ones_choosing(tmp_path):
    write_folder(tmp_path / "pictures", per_class=6)
    csv = write_csv(tmp_path / "pictures", tmp_path / "labels.csv", "file", "kind")
    data = setup_data(csv, None, path_column="file", label_column="kind", val_fraction=0.5)
    # Of each class's 6: 1 held out for testing (a tenth), then 3 for validation (half of all), 2 left to train on.
    assert data.classes == sorted(SHAPES) and (len(data.train_set), len(data.val_set), len(data.test_set)) == (6, 9, 3)
    with pytest.raises(UserError, match=r"needs a 'path' and a 'label' column, and has 'file', 'kind'; .*--data.path_column"):
        setup_data(csv)


@pytest.mark.parametrize("case, make, message", [
    ("one class", lambda root: write_folder(root, 3, shapes=("circle",)), r"holds 1 class folder; a folder set needs at least two"),
    ("empty class", lambda root: (write_folder(root, 3), (root / "star").mkdir()), r"class folder\(s\) 'star' hold no readable pictures"),
    ("unreadable class", lambda root: (write_folder(root, 3), (root / "star").mkdir(), (root / "star" / "a.png").write_text("x")),
     r"'star' hold no readable pictures \(1 unreadable file\(s\) skipped\)"),
    ("missing", lambda root: None, r"does not exist; --data.dataset takes a built-in set's name, a folder"),
    ("csv missing files", lambda root: (root.mkdir(), (root / "l.csv").write_text("path,label\na.png,x\nb.png,y\n")),
     r"names 2 file\(s\) that do not exist .*relative to the CSV file's folder"),
    ("csv without a label", lambda root: (write_folder(root, 2), (root / "l.csv").write_text("path,label\ncircle/000.png,\n")),
     r"line 2: no label in column 'label'"),
])
def test_bad_folders_give_one_line_that_says_what_to_fix(tmp_path, case, make, message):
    root = tmp_path / "set"
    make(root)
    target = root / "l.csv" if case.startswith("csv") else root
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(UserError, match=message) as error:
            setup_data(target)
    assert "\n" not in str(error.value)


def test_every_format_and_mode_reads_as_the_same_picture(tmp_path):
    # A red square on white, saved in each way; each must come out red on white, or its grey.
    image = Image.new("RGB", (60, 40), "white")
    image.paste((220, 20, 20), (20, 10, 40, 30))
    for suffix, mode in [("png", "RGB"), ("JPG", "RGB"), ("bmp", "RGB"), ("gif", "P"), ("tif", "RGB"), ("webp", "RGB"),
                         ("png", "RGBA"), ("jpg", "CMYK"), ("png", "I;16"), ("png", "LA"), ("png", "L")]:
        path = save_as(image, tmp_path / f"{mode.replace(';', '')}.{suffix}", mode)
        pixels = photo_style(open_picture(path), size=30, channels=3).astype(int)
        grey = mode in ("I;16", "LA", "L")
        centre, corner = pixels[:, 15, 15], pixels[:, 2, 2]
        expected = [np.dot([220, 20, 20], [0.299, 0.587, 0.114])] * 3 if grey else [220, 20, 20]
        assert np.abs(centre - expected).max() < 25, (path.name, centre)
        assert corner.min() > 200, (path.name, corner)  # the padding has the border's colour: white


def test_transparent_pixels_become_white_and_exif_orientation_is_applied(tmp_path):
    transparent = Image.new("RGBA", (40, 40), (0, 0, 0, 0))  # black, but fully transparent
    transparent.paste((0, 0, 255, 255), (10, 10, 30, 30))
    pixels = photo_style(open_picture(save_as(transparent, tmp_path / "t.png", "RGBA")), 40, 3)
    assert (pixels[:, 2, 2] == 255).all() and tuple(pixels[:, 20, 20]) == (0, 0, 255)
    tall = Image.new("RGB", (30, 60), "white")  # upright: taller than wide, dark at the top
    tall.paste((0, 0, 0), (0, 0, 30, 10))
    upright = open_picture(exif_rotated_jpeg(tall, tmp_path / "r.jpg"))
    assert upright.size == (30, 60) and np.asarray(upright.convert("L"))[3, 15] < 50


def test_size_and_channels_default_from_the_training_pictures_and_are_printed_in_the_record(tmp_path):
    rng = np.random.default_rng(0)
    for shape in SHAPES:
        (tmp_path / "grey" / shape).mkdir(parents=True)
        for n in range(4):
            shape_picture(shape, rng, side=int(rng.integers(30, 40))).convert("L").save(tmp_path / "grey" / shape / f"{n}.png")
    data = setup_data(tmp_path / "grey", val_fraction=0.25)
    assert data.dataset_info.channels == 1 and data.dataset_info.size in (32, 36) and data.train_set.images.shape[1:] == (1, data.dataset_info.size, data.dataset_info.size)
    colour = setup_data(write_folder(tmp_path / "colour", 4), val_fraction=0.25)
    assert colour.dataset_info.channels == 3 and colour.dataset_info.size == 64  # median side above 64: capped
    chosen = setup_data(tmp_path / "colour", val_fraction=0.25, image_size=40, channels=1, resize="crop")
    assert chosen.train_set.images.shape[1:] == (1, 40, 40)


def test_a_second_read_comes_from_the_cache_and_a_changed_file_or_damaged_cache_is_read_again(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "set", 4)
    first = setup_data(root, val_fraction=0.25)
    decoded = []
    original = decoding.decode_files
    monkeypatch.setattr(decoding, "decode_files", lambda *args: decoded.append(1) or original(*args))
    second = setup_data(root, val_fraction=0.25)
    assert not decoded and torch.equal(first.train_set.images, second.train_set.images)

    picture = root / "circle" / "000.png"
    shape_picture("circle", np.random.default_rng(9)).save(picture)  # changed: size and modification time
    changed = setup_data(root, val_fraction=0.25)
    assert decoded and not torch.equal(torch.cat([first.train_set.images, first.val_set.images]).sort(0).values,
                                       torch.cat([changed.train_set.images, changed.val_set.images]).sort(0).values)

    decoded.clear()
    (cached,) = decoded_cache.cache_dir().glob(f"{decoded_cache.cache_file(root, 'x').name.split('-')[0]}-*.pt")
    cached.write_bytes(cached.read_bytes()[:1000])  # damaged: never trusted, rebuilt
    setup_data(root, val_fraction=0.25)
    assert decoded


def test_a_run_without_sizes_gets_the_default_sizes_whatever_another_run_cached(tmp_path):
    root = write_folder(tmp_path / "set", 4)  # colour pictures of 64x64
    default = setup_data(root).dataset_info
    asked = setup_data(root, image_size=96, channels=1).dataset_info
    again = setup_data(root).dataset_info  # after the cache was decoded at the sizes asked for
    assert (default.size, default.channels) == (again.size, again.channels) == (64, 3)
    assert (asked.size, asked.channels) == (96, 1)


def test_a_run_without_sizes_reads_each_training_pictures_header_once(tmp_path, monkeypatch):
    # The default side decides both whether to stream and the size to decode at: one pass over the headers
    # serves both (a few seconds on a large folder), on a first decoding and on a run from the cache.
    root = write_folder(tmp_path / "set", 4)
    headers = []
    original = decoding.read_sizes
    monkeypatch.setattr(decoding, "read_sizes", lambda files: headers.extend(files) or original(files))
    files = sorted(str(path) for path in root.rglob("*") if path.is_file())
    for _ in ("decoded", "from the cache"):
        headers.clear()
        setup_data(root, val_fraction=0.25)
        assert sorted(headers) == files


def test_a_read_only_folder_is_read_and_cached_elsewhere(tmp_path):
    root = write_folder(tmp_path / "set", 3)
    for path in [root, *root.iterdir()]:
        path.chmod(0o555)
    try:
        data = setup_data(root, None, val_fraction=0.34)
        assert len(data.train_set) + len(data.val_set) + len(data.test_set) == 9
        assert decoded_cache.cache_file(root, "x").parent == decoded_cache.cache_dir() and not str(decoded_cache.cache_dir()).startswith(str(root))
    finally:
        for path in [root, *root.iterdir()]:
            path.chmod(0o755)


def test_imbalanced_classes_are_counted_warned_about_and_can_be_balanced(tmp_path, capsys):
    root = tmp_path / "set"
    write_folder(root, 2, shapes=("circle",))
    write_folder(root, 24, shapes=("square",))
    with pytest.warns(UserWarning, match=r"imbalanced: square has 20 training pictures, circle 1; consider --data.balance"):
        setup_data(root, val_fraction=0.1)
    table = capsys.readouterr().out
    assert "circle" in table and "square" in table and "train" in table and "val" in table
    sampled = setup_data(root, val_fraction=0.1, balance="sampler", batch_size=8)
    torch.manual_seed(0)
    drawn = torch.cat([labels for _ in range(20) for _, labels in sampled.train_dataloader()])
    assert abs(drawn.float().mean().item() - 0.5) < 0.1  # each class about as often, though 1 in 22 is a circle
    weighted = setup_data(root, val_fraction=0.1, balance="loss")
    assert weighted.loss_weights[0] > 10 * weighted.loss_weights[1]


def test_augmentation_touches_training_batches_of_a_folder_set_only(tmp_path):
    data = setup_data(write_folder(tmp_path / "set", 4), val_fraction=0.25, augment_degrees=10, augment_flip=True)
    data.trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    batch = (data.val_set.images, data.val_set.labels)
    data.trainer.validating = True
    images, _ = data.on_after_batch_transfer(batch, 0)
    assert torch.equal(images, batch[0])
    data.trainer.training = True
    images, labels = data.on_after_batch_transfer(batch, 0)
    assert not torch.equal(images, batch[0].float()) and torch.equal(labels, batch[1])


def test_an_outside_picture_is_read_exactly_as_the_sets_own(tmp_path):
    root = write_folder(tmp_path / "set", 4)
    data = setup_data(root, None, val_fraction=0.25, image_size=48)
    model = ImageClassifier(dataset_info=data.dataset_info.record(), hidden_units=16)
    predictor = load_predictor(save_checkpoint(tmp_path / "colour.ckpt", model))
    assert predictor.input_shape == (3, 48, 48) and predictor.classes == sorted(SHAPES)
    everything = torch.cat([data.train_set.images, data.val_set.images, data.test_set.images])
    for picture in sorted(root.glob("*/00[0-3].*")):
        pixels = predictor.pixels(picture)
        assert (everything == pixels).all(dim=(1, 2, 3)).any(), picture.name
    assert predictor.probabilities(predictor.logits(predictor.load_picture(picture).unsqueeze(0))).shape == (1, 3)


def test_a_folder_of_handwriting_is_read_as_mnists_digits_and_predicted_the_same_way(tmp_path):
    root = tmp_path / "my_digits"
    for i, (data, label) in enumerate(digit_set("pen", 40, (None, None), seed=3)):  # both polarities, 280x280
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        (root / str(label) / f"{i:03d}.png").write_bytes(data)
    data = setup_data(root, None, val_fraction=0.25, resize="ink")
    info = data.dataset_info
    assert (info.pictures, info.polarity, info.channels, info.size) == ("handwriting", "light on dark", 1, 28)
    images = torch.cat([data.train_set.images, data.val_set.images, data.test_set.images])
    border = torch.cat([images[:, 0, 0], images[:, 0, -1], images[:, 0, :, 0], images[:, 0, :, -1]], dim=1)
    assert border.float().mean() < 1 and (images.amax(dim=(1, 2, 3)) == 255).all()  # light strokes on black
    predictor = load_predictor(save_checkpoint(tmp_path / "digits.ckpt", ImageClassifier(dataset_info=info.record(), hidden_units=16)))
    for picture in sorted(root.glob("*/*.png"))[:8]:  # the same pixels from predict as from the set
        assert (images == predictor.pixels(picture)).all(dim=(1, 2, 3)).any(), picture.name
    with pytest.raises(UserError, match="--data.resize ink reads handwriting as MNIST's: 28x28 greyscale"):
        ImageDataModule(dataset=str(root), resize="ink", image_size=64)
