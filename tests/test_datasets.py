"""Every data set of the table, read from small files written in its exact format, traps included."""

import dataclasses
import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets
from helpers.files import write_idx
from jsonargparse import Namespace

from mnist_lit.commands.cli import to_read
from mnist_lit.core.errors import UserError
from mnist_lit.data.datamodule import (
    ImageDataModule,
    has_files,
    load_builtin,
    raw_folder,
)
from mnist_lit.data.sets import DATASETS, pixel_stats

EXPECTED_CLASSES = {
    "mnist": 10, "fashion_mnist": 10, "kmnist": 10, "emnist_balanced": 47, "emnist_letters": 26,
    "emnist_digits": 10, "qmnist": 10, "cifar10": 10,
}


IDX_SETS = sorted(name for name, spec in DATASETS.items() if spec.files.folder is None)


def upright(n: int, rng: np.random.Generator) -> np.ndarray:
    """n pictures that tell up from left: a bright bar across the top, a dimmer one down the left side."""
    pictures = rng.integers(0, 20, (n, 28, 28)).astype(np.uint8)
    pictures[:, 2:5, 2:26] = 255
    pictures[:, 8:26, 2:4] = 100
    return pictures


def write_set(root, name: str, train: int = 40, test: int = 12) -> dict[str, np.ndarray]:
    """The set's four files under ``root`` as its publisher writes them; returns the true classes."""
    spec, rng = DATASETS[name], np.random.default_rng(0)
    raw = raw_folder(root, spec)
    raw.mkdir(parents=True)
    classes = {}
    for split, n, (images_file, labels_file) in (("train", train, spec.files.raw_files[:2]), ("test", test, spec.files.raw_files[2:])):
        pictures = upright(n, rng)
        classes[split] = rng.integers(0, spec.num_classes, n)
        if spec.files.transposed:  # EMNIST's files hold every picture transposed
            pictures = pictures.transpose(0, 2, 1)
        write_idx(raw / images_file, pictures)
        stored = classes[split] + spec.files.label_offset  # EMNIST letters: 1-26
        if labels_file.endswith("idx2-int"):  # QMNIST: class, then 7 more columns (writer, index...)
            columns = np.column_stack([stored] + [rng.integers(0, 100_000, n) for _ in range(7)])
            write_idx(raw / labels_file, columns, int32=True)
        else:
            write_idx(raw / labels_file, stored)
    return classes


def test_the_table_has_every_promised_set_with_its_classes():
    assert {name: spec.num_classes for name, spec in DATASETS.items()} == EXPECTED_CLASSES
    for spec in DATASETS.values():
        assert len(set(spec.classes)) == spec.num_classes and len(spec.mean) == len(spec.std) == spec.channels
        assert all(0 < value < 1 for value in spec.mean + spec.std)
    assert DATASETS["emnist_letters"].classes[:3] == ("a", "b", "c")
    assert DATASETS["fashion_mnist"].classes[6] == "Shirt"
    assert DATASETS["emnist_balanced"].classes[36:] == tuple("abdefghnqrt")


@pytest.mark.parametrize("name", IDX_SETS)
def test_each_set_reads_upright_with_classes_counted_from_zero(tmp_path, name):
    classes = write_set(tmp_path, name)
    # Read as they are: no training picture replaced by a low-resolution copy.
    data = ImageDataModule(dataset=name, data_dir=str(tmp_path), val_size=10, download=False, augment_low_resolution=0)
    data.prepare_data()  # checks every header and length
    data.setup()
    train = torch.cat([data.train_set.images, data.val_set.images])
    assert train.shape == (40, 1, 28, 28) and data.test_set.images.shape == (12, 1, 28, 28)
    for images in (train, data.test_set.images):
        assert (images[:, 0, 3, 2:26] == 255).all() and (images[:, 0, 8:26, 2] == 100).all()  # bars where drawn
    assert torch.equal(data.test_set.labels, torch.as_tensor(classes["test"]))
    assert sorted(torch.cat([data.train_set.labels, data.val_set.labels]).tolist()) == sorted(classes["train"].tolist())
    assert data.classes == list(DATASETS[name].classes)


@pytest.mark.parametrize("name", IDX_SETS)
def test_torchvision_finds_the_files_under_the_names_the_table_gives(tmp_path, name):
    write_set(tmp_path, name)
    spec = DATASETS[name]
    assert has_files(tmp_path, spec)
    dataset = getattr(torchvision.datasets, spec.files.torchvision_class)(tmp_path, train=False, download=False, **spec.files.options)
    assert len(dataset) == 12


def test_emnist_letters_label_1_is_a(tmp_path):
    write_set(tmp_path, "emnist_letters")
    raw = raw_folder(tmp_path, DATASETS["emnist_letters"])
    write_idx(raw / "emnist-letters-test-labels-idx1-ubyte", np.array([1, 26] + [2] * 10))
    _, labels = load_builtin(DATASETS["emnist_letters"], tmp_path, train=False)
    names = [DATASETS["emnist_letters"].classes[label] for label in labels[:2]]
    assert names == ["a", "z"]


def test_qmnist_test_split_is_its_first_10000_digits(tmp_path):
    write_set(tmp_path, "qmnist", test=10_050)  # QMNIST's real test file holds 60,000
    data = ImageDataModule(dataset="qmnist", data_dir=str(tmp_path), val_size=10, download=False)
    data.setup("test")
    assert len(data.test_set) == 10_000


@pytest.mark.parametrize("name", ["emnist_letters", "qmnist", "kmnist"])
def test_missing_files_say_which_files_go_where(tmp_path, name):
    spec = DATASETS[name]
    with pytest.raises(UserError) as error:
        ImageDataModule(dataset=name, data_dir=str(tmp_path), download=False).prepare_data()
    message = str(error.value)
    assert f"{raw_folder(tmp_path, spec)}/" in message and spec.files.raw_files[0] in message and spec.files.raw_files[3] in message
    assert "\n" not in message and "--data.data_dir" in message


def test_labels_beyond_the_sets_classes_are_refused(tmp_path):
    write_set(tmp_path, "emnist_letters")
    raw = raw_folder(tmp_path, DATASETS["emnist_letters"])
    write_idx(raw / "emnist-letters-test-labels-idx1-ubyte", np.array([0] * 12))  # 0 - 1 = -1: no such letter
    data = ImageDataModule(dataset="emnist_letters", data_dir=str(tmp_path), val_size=10, download=False)
    with pytest.raises(UserError, match="not all classes 0-25 of emnist_letters"):
        data.setup("test")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_the_tables_mean_and_std_are_those_of_the_training_files(name, real_mnist):
    # Checked for every set whose real files are in the data root; `python -m mnist_lit.data.builtin_files` prints them all.
    if not has_files(real_mnist, DATASETS[name]):
        pytest.skip(f"{name}'s training files are not in {real_mnist}")
    images, _ = load_builtin(DATASETS[name], real_mnist, train=True)
    assert pixel_stats(images) == (DATASETS[name].mean, DATASETS[name].std)


def test_pixel_stats_are_each_channels_mean_and_std_in_float64():
    images = torch.randint(0, 256, (70, 3, 9, 9), dtype=torch.uint8)
    images[:, 1] //= 4  # channels that differ
    values = images.double().div(255).transpose(0, 1).reshape(3, -1)
    mean, std = pixel_stats(images)
    assert mean == tuple(round(v, 4) for v in values.mean(1).tolist())
    assert std == tuple(round(v, 4) for v in values.std(1).tolist())
    assert pixel_stats(images[:, :1].squeeze(1)) == ((mean[0],), (std[0],))  # (N, H, W) is one channel


def test_a_checkpoint_is_evaluated_on_its_own_set_unless_another_has_the_same_classes():
    fashion, mnist = DATASETS["fashion_mnist"], DATASETS["mnist"]

    def evaluated(learned, dataset):
        return to_read(learned, Namespace(dataset=dataset, split_seed=1234, val_fraction=0.1))

    assert evaluated(fashion, None) == fashion  # no --data.dataset: the checkpoint's set
    assert evaluated(mnist, "qmnist").name == "qmnist"  # a digit model on other digits
    assert evaluated(mnist, "mnist") == mnist
    with pytest.raises(UserError, match="learned fashion_mnist .* cannot be evaluated on emnist_letters"):
        evaluated(fashion, "emnist_letters")
    # Asked for by name, MNIST is not quietly replaced by the checkpoint's own set.
    with pytest.raises(UserError, match="learned fashion_mnist .* cannot be evaluated on mnist"):
        evaluated(fashion, "mnist")


def test_another_set_is_named_as_fit_names_it(tmp_path):
    learned = dataclasses.replace(DATASETS["mnist"], name="digits", path=str(tmp_path / "digits"))

    def read(dataset: str):
        return to_read(learned, Namespace(dataset=dataset, split_seed=1234, val_fraction=0.1))

    assert read("s3://bucket/sets/digits.v2/").name == "digits.v2"  # an optimized set: its folder's whole name
    (tmp_path / "scans.v2.csv").write_text("path,label\n")
    assert read(str(tmp_path / "scans.v2.csv")).name == "scans.v2"  # a CSV file: its stem


@pytest.mark.parametrize("name, attribute, value", [
    ("emnist_letters", "url", "http://127.0.0.1:9/gzip.zip"),  # one archive for every EMNIST split
    ("kmnist", "mirrors", ["http://127.0.0.1:9/"]),
])
def test_an_offline_download_of_any_set_fails_in_one_line(tmp_path, monkeypatch, name, attribute, value):
    spec = DATASETS[name]
    monkeypatch.setattr(getattr(torchvision.datasets, spec.files.torchvision_class), attribute, value)  # nothing listens there
    with pytest.raises(UserError) as error:
        ImageDataModule(dataset=name, data_dir=str(tmp_path)).prepare_data()
    message = str(error.value)
    assert message.startswith(f"Could not download {spec.files.torchvision_class} (") and "\n" not in message
    assert spec.files.raw_files[0] in message and f"{raw_folder(tmp_path, spec)}/" in message


def write_cifar10(root: Path, monkeypatch, train_per_batch: int = 8, test: int = 6) -> dict[str, np.ndarray]:
    """CIFAR-10's Python pickles laid out as its publisher's (a dict per batch, rows of 3072 bytes: the red
    plane, then green, then blue, each row by row), with torchvision's checksums set to theirs; returns the
    true classes."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng, classes, checksums = np.random.default_rng(0), {"train": [], "test": None}, {}

    def write(name: str, n: int) -> np.ndarray:
        pictures = rng.integers(0, 40, (n, 32, 32, 3)).astype(np.uint8)
        pictures[:, 2:5, :, 0] = 250  # a red bar across the top: tells the channels and up from left
        pictures[:, 8:30, 2:4, 2] = 200  # a blue bar down the left side
        labels = rng.integers(0, 10, n)
        data = pictures.transpose(0, 3, 1, 2).reshape(n, 3072)  # planes, as the files hold them
        (folder / name).write_bytes(pickle.dumps({"batch_label": name, "labels": labels.tolist(), "data": data}))
        checksums[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()
        return labels

    for i in range(1, 6):
        classes["train"].append(write(f"data_batch_{i}", train_per_batch))
    classes["train"], classes["test"] = np.concatenate(classes["train"]), write("test_batch", test)
    names = list(DATASETS["cifar10"].classes)
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names, "num_cases_per_batch": train_per_batch}))
    checksums["batches.meta"] = hashlib.md5((folder / "batches.meta").read_bytes()).hexdigest()
    cifar = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cifar, "train_list", [[f"data_batch_{i}", checksums[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(cifar, "test_list", [["test_batch", checksums["test_batch"]]])
    monkeypatch.setattr(cifar, "meta", {**cifar.meta, "md5": checksums["batches.meta"]})
    return classes


def test_cifar10_reads_as_colour_pictures_channel_first_with_its_classes(tmp_path, monkeypatch):
    classes = write_cifar10(tmp_path, monkeypatch)
    data = ImageDataModule(dataset="cifar10", data_dir=str(tmp_path), val_size=8, download=False)
    data.prepare_data()
    data.setup()
    train = torch.cat([data.train_set.images, data.val_set.images])
    assert train.shape == (40, 3, 32, 32) and data.test_set.images.shape == (6, 3, 32, 32)
    for images in (train, data.test_set.images):
        assert (images[:, 0, 3, :] == 250).all() and (images[:, 1:, 3, :] < 40).all()  # red, at the top
        assert (images[:, 2, 8:30, 2] == 200).all()  # blue, on the left
    assert torch.equal(data.test_set.labels, torch.as_tensor(classes["test"]))
    assert sorted(torch.cat([data.train_set.labels, data.val_set.labels]).tolist()) == sorted(classes["train"].tolist())
    assert data.classes[:2] == ["airplane", "automobile"] and data.dataset_info.channels == 3 and data.dataset_info.size == 32


def test_cifar10_missing_offline_says_where_its_files_go(tmp_path):
    with pytest.raises(UserError) as error:
        ImageDataModule(dataset="cifar10", data_dir=str(tmp_path), download=False).prepare_data()
    message = str(error.value)
    assert f"{tmp_path / 'cifar-10-batches-py'}/" in message and "data_batch_1" in message and "test_batch" in message
    assert "\n" not in message
