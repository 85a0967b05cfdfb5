"""How people lay out their own pictures, read into lists of files per part before anything is decoded.

A folder or a CSV file is recognised as one of these layouts (docs/data.md has the table):

- ``PATH/<class>/``: class folders (nested folders allowed); mnist-lit splits off validation and test parts.
- ``PATH/{train,training}/`` with any of ``{val,valid,validation}/`` and ``{test,testing}/`` (Keras'
  ``train/`` + ``val/``, fastai's ``train/`` + ``valid/``...), each holding class folders; a missing
  part is split off the training pictures.
- a CSV file with a path and a label column, and optionally a split column (train, val, valid, test...).

A top level that mixes part folders and class folders is refused: either reading would be a guess.
"""

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from mnist_lit.core.errors import UserError

# Folder names (any case) and CSV split values that name a part, as Keras, fastai, Hugging Face and
# torchvision's ImageFolder users name them.
PART_NAMES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val",
    "test": "test", "testing": "test",
}
PARTS = ("train", "val", "test")
WHOLE = "all"  # the one part of a set without parts of its own
# Folders that are no one's pictures: hidden ones (.git, .ipynb_checkpoints) and those tools add
# (__MACOSX in zip files made on a Mac, __pycache__).
IGNORED_PREFIXES = (".", "__")


@dataclass
class Listing:
    """The picture files of one part of a set, with their class indices."""

    files: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)


@dataclass
class SetListing:
    """The files of a folder or CSV set by part: "train", "val" and "test" as the set has them, or "all"."""

    root: Path
    classes: tuple[str, ...]
    parts: dict[str, Listing]
    layout: str  # in words, for `fit`'s first line
    sources: dict[str, str]  # where each part's files are: "train/", "valid/", "rows with split 'test'"...
    left_out: tuple[str, ...] = ()  # classes of the set that --data.classes did not choose

    @property
    def training_part(self) -> str:
        """The part that trains, and that the missing parts are split off: train, else the whole set."""
        return "train" if "train" in self.parts else WHOLE


def is_own_set(dataset: str) -> bool:
    """Whether --data.dataset names a folder or CSV file rather than a built-in set."""
    return dataset.lower().endswith(".csv") or os.sep in dataset or "/" in dataset or Path(dataset).exists()


def list_set(
    path: Path, path_column: str = "path", label_column: str = "label", split_column: str = "split",
    classes: Optional[tuple[str, ...]] = None,
) -> SetListing:
    """The files of the set at ``path`` (a folder or a CSV file) by part, with ``classes`` (all, in name order, by default)."""
    if not path.exists():
        raise UserError(f"{path} does not exist; --data.dataset takes a built-in set's name, a folder of class folders or a CSV file.")
    found = list_csv(path, path_column, label_column, split_column) if path.is_file() else list_folder(path)
    return choose_classes(found, classes) if classes else found


def list_folder(path: Path) -> SetListing:
    folders = sorted((entry for entry in path.iterdir() if entry.is_dir() and not entry.name.startswith(IGNORED_PREFIXES)), key=lambda e: e.name)
    part_folders = {folder: PART_NAMES[folder.name.lower()] for folder in folders if folder.name.lower() in PART_NAMES}
    if not part_folders:
        classes = class_folders(path)
        return SetListing(path, classes, {WHOLE: list_class_folders(path, classes)}, "class folders", {WHOLE: f"the folder {path.name}/"})
    others = [folder.name for folder in folders if folder not in part_folders]
    if others:
        raise UserError(
            f"{path} mixes part folders ({', '.join(f.name + '/' for f in part_folders)}) with other folders "
            f"({', '.join(name + '/' for name in others[:5])}{', ...' if len(others) > 5 else ''}); put every class folder "
            "inside the part folders, or keep only class folders and let mnist-lit split them."
        )
    by_part: dict[str, Path] = {}
    for folder, part in part_folders.items():
        if part in by_part:
            raise UserError(f"{path} has both {by_part[part].name}/ and {folder.name}/, which name the same part; keep one.")
        by_part[part] = folder
    if "train" not in by_part:
        named = ", ".join(folder.name + "/" for folder in by_part.values())
        raise UserError(f"{path} has {named} but no train/ (or training/) folder to train on; add one, or point at a folder of class folders.")
    classes = class_folders(by_part["train"])
    parts = {}
    for part in PARTS:
        if part in by_part:
            extra = sorted(set(class_folders(by_part[part], least=1)) - set(classes))
            if extra:
                raise UserError(f"{by_part[part]} has classes that {by_part['train']} lacks ({', '.join(extra[:5])}); give both the same class folders.")
            parts[part] = list_class_folders(by_part[part], classes)
    layout = " + ".join(folder.name + "/" for part, folder in sorted(by_part.items(), key=lambda item: PARTS.index(item[0])))
    return SetListing(path, classes, parts, f"part folders {layout}", {part: f"the folder {folder.name}/" for part, folder in by_part.items()})


def class_folders(path: Path, least: int = 2) -> tuple[str, ...]:
    classes = tuple(sorted(entry.name for entry in path.iterdir() if entry.is_dir() and not entry.name.startswith(IGNORED_PREFIXES)))
    if not classes and least == 1:  # a part folder of pictures without classes (Kaggle's unlabelled test/)
        raise UserError(
            f"{path} holds no class folders, so its pictures have no labels to evaluate against; sort them into one "
            "folder per class, or move the folder out of the set (`predict` reads unlabelled pictures)."
        )
    if len(classes) < least:
        raise UserError(
            f"{path} holds {len(classes)} class folder{'s' if len(classes) != 1 else ''}; a folder set needs at least two "
            "(one sub-folder per class, named after it, holding its pictures)."
        )
    return classes


def list_class_folders(path: Path, classes: tuple[str, ...]) -> Listing:
    """Every file under each class folder (nested folders included) except hidden ones, in a stable order."""
    listing = Listing()
    for index, name in enumerate(classes):
        files = files_under(path / name) if (path / name).is_dir() else []
        listing.files += files
        listing.labels += [index] * len(files)
    return listing


def files_under(folder: Path) -> list[str]:
    """The files under ``folder`` and its sub-folders (not those behind links), hidden ones left out: each
    folder's files in name order, then its sub-folders in name order. os.walk and plain strings:
    pathlib's rglob took 5 s for 50,000 files."""
    found = []
    for root, folders, files in os.walk(folder):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        found += [root + os.sep + name for name in sorted(files) if not name.startswith(".")]
    return found


def list_csv(path: Path, path_column: str, label_column: str, split_column: str) -> SetListing:
    options = "--data.path_column and --data.label_column"
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            reader = csv.DictReader(file)
            columns = reader.fieldnames or []
            if path_column not in columns or label_column not in columns:
                raise UserError(
                    f"{path} needs a {path_column!r} and a {label_column!r} column, and has {', '.join(map(repr, columns)) or 'none'}; "
                    f"name yours with {options}."
                )
            has_split = split_column in columns
            rows = [(row[path_column], (row[label_column] or "").strip(), (row[split_column] or "").strip().lower() if has_split else WHOLE)
                    for row in reader]
    except (UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"{path} is not a readable CSV file ({error}).") from None
    for line, (_, label, split) in enumerate(rows, start=2):
        if not label:
            raise UserError(f"{path}, line {line}: no label in column {label_column!r}; give every picture its class.")
        if has_split and split not in PART_NAMES:
            raise UserError(
                f"{path}, line {line}: {split!r} in column {split_column!r} is not a part; use train, val (or valid, validation) "
                "or test, or name another column with --data.split_column."
            )
    files = [str((path.parent / name).resolve()) for name, _, _ in rows]
    missing = [file for file in files if not os.path.isfile(file)]
    if missing:
        raise UserError(
            f"{path} names {len(missing):,} file(s) that do not exist ({', '.join(missing[:3])}"
            f"{'...' if len(missing) > 3 else ''}); paths are relative to the CSV file's folder."
        )
    parts_of_rows = [PART_NAMES.get(split, WHOLE) for _, _, split in rows]
    if has_split and "train" not in parts_of_rows:
        raise UserError(f"{path} has no row with 'train' in column {split_column!r}; mark the pictures to train on.")
    training = [label for (_, label, _), part in zip(rows, parts_of_rows) if part in ("train", WHOLE)]
    classes = tuple(sorted(set(training)))
    if len(classes) < 2:
        raise UserError(f"{path} has {len(classes)} class in column {label_column!r}; a data set needs at least two.")
    extra = sorted({label for _, label, _ in rows} - set(classes))
    if extra:
        raise UserError(f"{path} has classes with no training row ({', '.join(extra[:5])}); give every class training pictures.")
    index = {name: i for i, name in enumerate(classes)}
    parts: dict[str, Listing] = {}
    for file, (_, label, _), part in zip(files, rows, parts_of_rows):
        listing = parts.setdefault(part, Listing())
        listing.files.append(file)
        listing.labels.append(index[label])
    layout = f"CSV file with a {split_column!r} column" if has_split else "CSV file"
    sources = {part: (f"rows with {split_column} {part!r}" if has_split else "every row") for part in parts}
    return SetListing(path, classes, {part: parts[part] for part in (*PARTS, WHOLE) if part in parts}, layout, sources)


def choose_classes(found: SetListing, chosen: tuple[str, ...]) -> SetListing:
    """``found`` with only the classes ``chosen`` (--data.classes), in that order."""
    unknown = [name for name in chosen if name not in found.classes]
    if unknown:
        raise UserError(
            f"--data.classes names {', '.join(map(repr, unknown))}, which {found.root} does not have; it has "
            f"{', '.join(found.classes)}."
        )
    if len(set(chosen)) != len(chosen) or len(chosen) < 2:
        raise UserError(f"--data.classes needs at least two classes, each named once; got {', '.join(chosen)}.")
    new_index = {found.classes.index(name): i for i, name in enumerate(chosen)}
    parts = {}
    for part, listing in found.parts.items():
        kept = [(file, new_index[label]) for file, label in zip(listing.files, listing.labels) if label in new_index]
        parts[part] = Listing([file for file, _ in kept], [label for _, label in kept])
    left_out = tuple(name for name in found.classes if name not in chosen)
    return SetListing(found.root, tuple(chosen), parts, found.layout, found.sources, left_out)
