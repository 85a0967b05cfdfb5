"""Every layout of one's own pictures (docs/data.md's table): recognised, said aloud, and split so that
`test`, `validate` and `calibrate` never read a picture the model trained on."""

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from helpers.checkpoints import save_checkpoint
from helpers.cli import run_cli
from helpers.picture_sets import SHAPES, write_csv, write_folder

from mnist_lit.checkpoints.reading import read_checkpoint, read_dataset
from mnist_lit.commands.calibrate import validation_pictures
from mnist_lit.core.errors import UserError
from mnist_lit.data.datamodule import ImageDataModule
from mnist_lit.data.layouts import list_set
from mnist_lit.models.classifier import ImageClassifier


def flat(root: Path) -> Path:
    return write_folder(root, 10)


def fastai(root: Path) -> Path:  # fastai's default: train/ and valid/, no test/
    write_folder(root / "train", 10)
    write_folder(root / "valid", 3, seed=1)
    return root


def keras(root: Path) -> Path:  # Keras' image_dataset_from_directory users: train/ and val/
    write_folder(root / "train", 10)
    write_folder(root / "val", 3, seed=1)
    return root


def train_and_test(root: Path) -> Path:  # torchvision ImageFolder users' train/ and test/
    write_folder(root / "train", 10)
    write_folder(root / "test", 3, seed=2)
    return root


def three_parts(root: Path) -> Path:  # Hugging Face's and ImageFolder users': training/, validation/, testing/
    write_folder(root / "training", 8)
    write_folder(root / "validation", 3, seed=1)
    write_folder(root / "testing", 3, seed=2)
    return root


def train_only(root: Path) -> Path:
    write_folder(root / "train", 10)
    return root


def csv_with_split(root: Path) -> Path:
    write_folder(root / "pictures", 10)
    rows = []
    for n, picture in enumerate(sorted((root / "pictures").rglob("*.*"))):
        rows.append([picture.relative_to(root).as_posix(), picture.parent.name, ("train", "valid", "test", "train", "train")[n % 5]])
    with open(root / "labels.csv", "w", newline="") as file:
        csv.writer(file).writerows([["path", "label", "split"], *rows])
    return root / "labels.csv"


def plain_csv(root: Path) -> Path:
    return write_csv(write_folder(root / "pictures", 10), root / "labels.csv")


# Each layout: how to make it, the line `fit` prints, and where each part comes from.
LAYOUTS = {
    "class folders": (flat, "class folders", {"val": "held out", "test": "held out"}),
    "fastai train + valid": (fastai, "part folders train/ + valid/", {"val": "the folder valid/", "test": "held out"}),
    "Keras train + val": (keras, "part folders train/ + val/", {"val": "the folder val/", "test": "held out"}),
    "train + test": (train_and_test, "part folders train/ + test/", {"val": "held out", "test": "the folder test/"}),
    "training + validation + testing": (three_parts, "part folders training/ + validation/ + testing/",
                                        {"val": "the folder validation/", "test": "the folder testing/"}),
    "train alone": (train_only, "part folders train/", {"val": "held out", "test": "held out"}),
    "CSV with a split column": (csv_with_split, "CSV file with a 'split' column", {"val": "split 'val'", "test": "split 'test'"}),
    "CSV without one": (plain_csv, "CSV file", {"val": "held out", "test": "held out"}),
}


def parts_of(data: ImageDataModule) -> dict[str, set[str]]:
    return {part: set(files) for part, files in data.files.items()}


def fitted(path: Path, **options) -> ImageDataModule:
    data = ImageDataModule(dataset=str(path), image_size=28, **options)
    data.setup("fit")
    return data


def checkpoint_of(data: ImageDataModule, folder: Path) -> Path:
    """A checkpoint of an untrained model of ``data``'s set, as `fit` writes it (with the data module's options)."""
    model = ImageClassifier(dataset_info=data.dataset_info.record(), hidden_units=8)
    path = save_checkpoint(folder / "model.ckpt", model)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["datamodule_hyper_parameters"] = dict(data.hparams)
    torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_is_recognised_and_test_validate_and_calibrate_read_only_held_out_files(layout, tmp_path, capsys):
    make, line, sources = LAYOUTS[layout]
    path = make(tmp_path / "set")
    data = fitted(path)
    out = capsys.readouterr().out
    assert line in out, out
    for part, source in sources.items():
        assert re.search(rf"{'validation' if part == 'val' else '`test`'}: [^\n]*{re.escape(source)}", out), (part, out)
    found = parts_of(data)
    assert found["train"] and found["val"] and found["test"]
    assert not found["train"] & found["val"] and not found["train"] & found["test"] and not found["val"] & found["test"]

    learned = read_dataset(checkpoint_of(data, tmp_path))
    tested = ImageDataModule(dataset=learned)
    tested.setup("test")
    assert set(tested.files["test"]) == found["test"]  # the very files held out at fit, by path
    assert len(tested.test_set) == len(found["test"])
    validated = ImageDataModule(dataset=learned)
    validated.setup("validate")
    assert set(validated.files["val"]) == found["val"] and set(validated.files["train"]) == found["train"]
    calibrated = validation_pictures(read_checkpoint(tmp_path / "model.ckpt"), learned, None)
    assert set(calibrated.files["val"]) == found["val"]


def test_a_changed_folder_is_refused_in_one_line_that_says_what_changed(tmp_path):
    root = flat(tmp_path / "set")
    learned = read_dataset(checkpoint_of(fitted(root), tmp_path))
    shutil.copy(root / "circle" / "000.png", root / "circle" / "new.png")
    (root / "square" / "001.jpg").unlink()
    with pytest.raises(UserError) as error:
        ImageDataModule(dataset=learned).setup("test")
    message = str(error.value)
    assert "changed since `fit`" in message and "'circle' 10 then, 11 now" in message and "'square' 10 then, 9 now" in message
    assert "\n" not in message


def test_a_moved_copy_is_the_same_set_and_another_folder_is_evaluated_whole_by_class_name(tmp_path):
    root = flat(tmp_path / "set")
    data = fitted(root)
    learned = read_dataset(checkpoint_of(data, tmp_path))
    moved = shutil.copytree(root, tmp_path / "moved")
    copy = ImageDataModule(dataset=type(learned)(**{**learned.__dict__, "path": str(moved)}))
    copy.setup("test")
    assert {Path(f).relative_to(moved) for f in copy.files["test"]} == {Path(f).relative_to(root) for f in data.files["test"]}

    other = write_folder(tmp_path / "other", 2, seed=9, shapes=("triangle", "circle"))  # a subset, any order
    evaluated = ImageDataModule(dataset=type(learned)(**{**learned.__dict__, "path": str(other)}))
    evaluated.setup("test")
    assert len(evaluated.test_set) == 4 and "every picture of other" in evaluated.parts_read["test"]
    names = [Path(file).parent.name for file in evaluated.files["test"]]
    assert [learned.classes[label] for label in evaluated.test_set.labels.tolist()] == names  # labels by name

    unknown = write_folder(tmp_path / "unknown", 2, shapes=("circle", "star"))
    with pytest.raises(UserError, match=r"classes the model did not learn \('star'\)"):
        ImageDataModule(dataset=type(learned)(**{**learned.__dict__, "path": str(unknown)})).setup("test")


@pytest.mark.parametrize("make, message", [
    (lambda root: (write_folder(root / "train", 2), write_folder(root, 2, shapes=("cat",))),
     r"mixes part folders \(train/\) with other folders \(cat/\)"),
    (lambda root: (write_folder(root / "val", 2), write_folder(root / "valid", 2)), r"has both val/ and valid/"),
    (lambda root: (write_folder(root / "valid", 2), write_folder(root / "test", 2)), r"has test/, valid/ but no train/"),
    (lambda root: (write_folder(root / "train", 2), write_folder(root / "test", 2, shapes=("circle", "star"))),
     r"has classes that .*train lacks \(star\)"),
    (lambda root: (write_folder(root / "train", 2), shutil.copytree(root / "train" / "circle", root / "test")),
     r"set/test holds no class folders, so its pictures have no labels"),
])
def test_a_layout_that_cannot_be_read_one_way_is_one_line(tmp_path, make, message):
    make(tmp_path / "set")
    with pytest.raises(UserError, match=message) as error:
        list_set(tmp_path / "set")
    assert "\n" not in str(error.value)


def test_folders_that_tools_add_are_no_class_or_part(tmp_path):
    root = fastai(tmp_path / "set")
    for extra in ("__MACOSX/train", ".ipynb_checkpoints", "train/.thumbnails", "train/__pycache__"):
        (root / extra).mkdir(parents=True)
    listing = list_set(root)
    assert listing.layout == "part folders train/ + valid/" and listing.classes == tuple(sorted(SHAPES))


def test_a_bad_split_value_names_its_line(tmp_path):
    write_folder(tmp_path / "p", 2)
    (tmp_path / "l.csv").write_text("path,label,split\np/circle/000.png,circle,train\np/square/000.png,square,holdout\n")
    with pytest.raises(UserError, match=r"l.csv, line 3: 'holdout' in column 'split' is not a part"):
        list_set(tmp_path / "l.csv")


def test_classes_are_chosen_and_ordered_and_the_others_named(tmp_path, capsys):
    root = flat(tmp_path / "set")
    data = fitted(root, classes="triangle, circle")
    assert data.classes == ["triangle", "circle"]
    assert "left out by --data.classes: square" in capsys.readouterr().out
    names = {Path(file).parent.name for part in data.files.values() for file in part}
    assert names == {"triangle", "circle"}
    assert all(data.classes[label] == "circle" for label, file in zip(data.train_set.labels.tolist(), data.files["train"])
               if Path(file).parent.name == "circle")
    with pytest.raises(UserError, match=r"--data.classes names 'star', which .* does not have; it has circle, square, triangle"):
        fitted(root, classes=["circle", "star"])


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["class folders", "fastai train + valid", "Keras train + val", "CSV with a split column"])
def test_fit_then_a_plain_test_scores_only_held_out_pictures(layout, tmp_path, real_mnist):
    make = LAYOUTS[layout][0]
    path = make(tmp_path / "set")
    fit = run_cli(tmp_path, real_mnist, "fit", "--data.dataset", str(path), "--data.image_size", "28", "--trainer.max_epochs", "1",
                  "--model.hidden_units", "8", "--data.batch_size", "16")
    assert fit.returncode == 0, fit.stderr[-2000:]
    held_out = ImageDataModule(dataset=read_dataset(next((tmp_path / "checkpoints").glob("version_0/last.ckpt"))))
    held_out.setup("test")
    trained = fitted(path)
    assert not set(held_out.files["test"]) & (set(trained.files["train"]) | set(trained.files["val"]))
    test = run_cli(tmp_path, real_mnist, "test")
    assert test.returncode == 0, test.stderr[-2000:]
    report = json.loads(next((tmp_path / "logs").glob("version_0/report.json")).read_text())
    assert report["macro_avg"]["support"] == len(held_out.files["test"]) == len(held_out.test_set)
    said = re.search(r"Evaluated on (?:set|labels), (.*) \((\d+) pictures\)", test.stdout)
    assert said and int(said.group(2)) == len(held_out.files["test"]), test.stdout
    assert said.group(1) == held_out.parts_read["test"] and said.group(1) != "test split"
    assert sorted(report["classes"]) == sorted(SHAPES)
    if layout != "class folders":
        return
    # validate and calibrate read the validation part held out at fit: as many pictures, and said so.
    validated = run_cli(tmp_path, real_mnist, "validate")
    said = re.search(r"Validated on set, (.*) \((\d+) pictures\)", validated.stdout)
    assert said and int(said.group(2)) == len(trained.files["val"]), validated.stdout[-2000:]
    assert said.group(1).startswith("10% of each class of the training pictures held out at fit")
    calibrated = run_cli(tmp_path, real_mnist, "calibrate")
    assert f"on {len(trained.files['val'])} validation pictures" in calibrated.stdout, calibrated.stdout + calibrated.stderr
    assert "The validation pictures: 10% of each class of the training pictures held out at fit" in calibrated.stdout
