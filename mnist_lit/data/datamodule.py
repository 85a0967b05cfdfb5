"""A data set (sets.py) as a LightningDataModule that keeps every picture in memory, or streams a folder set
too large for it from LitData's chunks (streaming.py).

builtin_files.py reads torchvision's sets; layouts.py, decoding.py and decoded_cache.py turn a
folder or CSV file of one's own pictures into uint8 tensors, decoded once and cached; splits.py
splits off the parts a set lacks. After that batches are cut from the tensors by indexing; the
usual per-sample PIL path costs more than the network itself on a small CPU. On a GPU the tensors
live in GPU memory (55 MB for MNIST), so batches are cut there with no copy per step. Batches hold
uint8 pixels: the model normalizes them with its set's mean and std.
"""

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Optional, Union

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from mnist_lit.core.errors import UserError
from mnist_lit.data.augment import (
    AUGMENT_POLICIES,
    RandomStyle,
    augment,
    random_affine,
    random_flip,
    random_policy,
    restyle,
)
from mnist_lit.data.builtin_files import (
    DATA_DIR_ENV,
    REPLACE,
    check_builtin_files,
    has_files,
    load_builtin,
    raw_folder,
    resolve_data_dir,
)
from mnist_lit.data.decoded_cache import cache_key, read_decoded
from mnist_lit.data.decoding import (
    DecodedSet,
    check_classes_have_pictures,
    header_size,
    warn_skipped,
)
from mnist_lit.data.layouts import PARTS, SetListing, is_own_set, list_set
from mnist_lit.data.low_resolution import low_resolution_copies
from mnist_lit.data.optimized_sets import (
    class_names,
    is_optimized_set,
    location_of,
    part_labels,
    survey,
)
from mnist_lit.data.outliers import synthetic_outliers
from mnist_lit.data.sets import (
    DATASETS,
    DEFAULT_DATASET,
    SMALLEST_SIDE,
    DatasetInfo,
    pixel_stats,
)
from mnist_lit.data.splits import (
    Split,
    check_unchanged,
    check_val_size,
    class_counts,
    listing_digest,
    split_indices,
    split_off,
)
from mnist_lit.data.streaming import (
    StreamedPictures,
    budget_bytes,
    chunk_folder,
    is_whole,
    pixel_stats_of,
    read_notes,
    readable_size,
    write_chunks,
)

# A class with more than this many times the pictures of another gets a warning.
IMBALANCE = 5
LARGEST_SIDE = 224  # ImageNet's networks' own size (timm's, --model.net timm/NAME)
OUTLIERS_MADE = 4096
# Pictures of no class are drawn at most this large and scaled up, and no more of them made than fit in
# OUTLIER_BYTES: 4,096 drawn at 224x224 in colour would take minutes and 600 MB.
OUTLIER_SIDE, OUTLIER_BYTES = 64, 2**28


def take(images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The pictures and labels at ``index``. index_select copies rows 2.5x faster than ``images[index]``
    (0.26 s against 0.66 s for the training part of 50,000 colour pictures of 64x64)."""
    return images.index_select(0, index), labels.index_select(0, index)


class InMemoryPictures(Dataset):
    """Pictures (N, C, H, W) uint8 and labels (N,) int64 that hand out whole batches."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]

    # DataLoader calls this with all the indices of a batch at once: one gather instead of
    # batch_size lookups followed by a Python-level collate.
    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, device=self.images.device)
        return self.images[index], self.labels[index]


    def batches(self, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(self.labels), size):
            yield self.images[start : start + size], self.labels[start : start + size]


Pictures = Union[InMemoryPictures, StreamedPictures]  # one part of a set, held either way


def keep_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """collate_fn for InMemoryPictures, whose batches arrive already stacked."""
    return batch


class ImageDataModule(L.LightningDataModule):
    """A data set's pictures split into training, validation and test parts, held in memory or streamed.

    Args:
        data_dir: the data root of the built-in sets, holding ``MNIST/raw/``, ``FashionMNIST/raw/``...
            as torchvision lays them out; null means $MNIST_LIT_DATA_DIR, else ``./data``.
        dataset: a built-in set (mnist, fashion_mnist, kmnist, emnist_balanced, emnist_letters,
            emnist_digits, qmnist, cifar10), or the path of a folder or CSV file of one's own pictures
            in any layout of layouts.py (docs/data.md), or a set written by litdata.optimize (a folder or an
            s3://, gs://... URL: optimized_sets.py), or a ``DatasetInfo``: the set a checkpoint learned, to
            evaluate or resume it on exactly its parts. Null means mnist.
        batch_size: training batch size.
        eval_batch_size: batch size for validation and test, which need no gradients. Larger
            is not faster on a CPU: at 1,000 the first layer's activations (43 MB in bf16) are
            too large for the allocator to reuse (hardware.py), so each batch faults in 21,000
            fresh pages and validation takes 30% longer.
        val_size: how many training pictures of a built-in set are held out for validation.
        val_fraction, test_fraction: the share of each class of a folder or CSV set held out for
            validation and for testing (stratified), where the set has no such part of its own.
        split_seed: seed of the splits, fixed so runs compare on the same pictures.
        download: fetch a built-in set's files from the internet when they are missing.
        image_size: the square side (28-224) a folder or CSV set's pictures are fitted into; null picks the
            median longer side, rounded to a multiple of 4, from 28 to 64.
        channels: 1 (greyscale) or 3 (colour) for a folder or CSV set; null picks 1 when every
            training picture is grey, else 3.
        resize: "pad" fits the whole picture into the square and pads with its border colour;
            "crop" keeps the centre square; "ink" reads pictures of handwriting as MNIST's digits are
            made and as `predict` reads them for MNIST's model: cropped to the ink, fitted into 20 px,
            centred by mass in 28x28, light on dark, greyscale.
        balance: for sets whose classes have unequal numbers of pictures: "sampler" draws training
            pictures so that every class is seen as often, "loss" weighs each class's loss by the
            inverse of its share, "none" (the default) trains on the pictures as they are.
        path_column, label_column, split_column: the CSV columns that hold each picture's path
            (relative to the CSV file), class and part (train, val or valid, test; optional).
        classes: the classes of a folder or CSV set to use, in this order ("cat,dog" or a list);
            null uses them all, in name order.
        augment_degrees, augment_shift, augment_scale: training augmentation (augment.py): each
            training picture rotated by up to this many degrees, shifted by up to this fraction
            of its side and zoomed in or out by up to this fraction; all 0 (the default) is off.
        augment_flip: also mirror half the training pictures left to right (never for digits or letters).
        augment_policy: an automatic augmentation policy on top (augment.py): "trivial" (TrivialAugment),
            "rand" (RandAugment) or "none" (the default). Both change colours, contrast and geometry:
            for photos, not for handwriting, whose outliers and styles are drawn to its own look.
            Validation and test pictures are never augmented.
        augment_style: the share of training pictures redrawn in another style (augment.py's
            ``restyle``: lower resolution, thinner or thicker strokes, blur, fainter ink), so that
            digits scanned, photographed or drawn otherwise than the set's are recognized and
            accepted. Null (the default): a quarter for handwriting and clothing, none for photos.
        augment_low_resolution: the share of training pictures of handwriting replaced, once, by themselves
            as a low-resolution scan read as a picture file (low_resolution.py: the ink reduced to 8-16 px
            and scaled up smoothly), so that digits of collections kept small are accepted while things
            read the same way are refused. Null (the default): an eighth for handwriting, none otherwise.
            Pictures held in memory only: a streamed set is read as it is.
        outliers: pictures of no class for the model to learn to be unsure of (outliers.py; the
            model adds some to each training batch): "synthetic" (tangles, letters, faces, boxes, patches, noise,
            and for handwriting things: garments, bottles, figures, shoes), "none", or "auto" (the default):
            synthetic for handwriting and clothing, none for photos.
        stream: how a folder or CSV set is held (streaming.py): true decodes it once into LitData's chunks beside
            the decoded cache and streams batches from them, for sets larger than memory; false holds it in
            memory; "auto" (the default) streams when the decoded pictures would take more than ``memory_budget``.
            Built-in sets are always held in memory.
        memory_budget: the most memory a folder or CSV set's decoded pictures may take before "auto" streams
            it: "4GB", "512MB" or a number of bytes; null is a quarter of the machine's memory.
    """

    def __init__(
        self,
        data_dir: Optional[str] = None,
        dataset: Union[str, DatasetInfo, None] = None,
        batch_size: int = 128,
        eval_batch_size: int = 500,
        val_size: int = 5000,
        split_seed: int = 1234,
        download: bool = True,
        augment_degrees: float = 0.0,
        augment_shift: float = 0.0,
        augment_scale: float = 0.0,
        val_fraction: float = 0.1,
        image_size: Optional[int] = None,
        channels: Optional[Literal[1, 3]] = None,
        resize: Literal["pad", "crop", "ink"] = "pad",
        balance: Literal["none", "sampler", "loss"] = "none",
        augment_flip: bool = False,
        path_column: str = "path",
        label_column: str = "label",
        outliers: Literal["auto", "synthetic", "none"] = "auto",
        test_fraction: float = 0.1,
        split_column: str = "split",
        classes: Union[str, list[str], None] = None,
        augment_style: Optional[float] = None,
        augment_policy: Literal["none", "trivial", "rand"] = "none",
        stream: Union[bool, Literal["auto"]] = "auto",
        memory_budget: Optional[str] = None,
        augment_low_resolution: Optional[float] = None,
    ) -> None:
        super().__init__()
        # The set a checkpoint learned: its pictures are read as the model learned them, and its parts rebuilt.
        self.learned = dataset if isinstance(dataset, DatasetInfo) else None
        source = (self.learned.path or self.learned.name) if self.learned else (dataset or DEFAULT_DATASET)
        # A set optimized by LitData (optimized_sets.py) is read as it is; a folder or CSV set is decoded first.
        self.optimized = source not in DATASETS and is_optimized_set(source)
        self.own_set = not self.optimized and source not in DATASETS and is_own_set(source)
        if not (self.own_set or self.optimized) and source not in DATASETS:
            raise UserError(
                f"Unknown data set {source!r}; --data.dataset takes one of {', '.join(DATASETS)}, the path of a "
                "folder of class folders or of a CSV file, or a set written by litdata.optimize (a folder or a URL)."
            )
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value < 1:
                raise UserError(f"{name} must be a positive integer, got {value}.")
        if augment_degrees < 0 or not 0 <= augment_shift < 0.5 or not 0 <= augment_scale < 1:
            raise UserError(
                "Need augment_degrees >= 0, 0 <= augment_shift < 0.5 and 0 <= augment_scale < 1; got "
                f"{augment_degrees}, {augment_shift} and {augment_scale}."
            )
        self.budget = budget_bytes(memory_budget)  # a bad size is refused before anything is read
        if stream is True and source in DATASETS:
            raise UserError(f"--data.stream true streams a folder or CSV set; the built-in {source} is held in memory.")
        if stream is False and self.optimized:
            raise UserError(f"{source} is a set written by litdata.optimize, which is always streamed; leave out --data.stream.")
        for name, share in (("augment_style", augment_style), ("augment_low_resolution", augment_low_resolution)):
            if share is not None and not 0 <= share <= 1:
                raise UserError(f"{name} is a share of the training pictures, from 0 to 1; got {share}.")
        if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
            raise UserError(f"val_fraction and test_fraction must be above 0 and add up to less than 1, got {val_fraction} and {test_fraction}.")
        if image_size is not None and not SMALLEST_SIDE <= image_size <= LARGEST_SIDE:
            raise UserError(f"image_size must be from {SMALLEST_SIDE} to {LARGEST_SIDE}, got {image_size}.")
        if resize == "ink" and (image_size not in (None, SMALLEST_SIDE) or channels not in (None, 1)):
            raise UserError(f"--data.resize ink reads handwriting as MNIST's: 28x28 greyscale; leave out --data.image_size "
                            f"and --data.channels (got {image_size} and {channels}).")
        known = self.learned or DATASETS.get(source)
        if known is not None and (image_size is not None or channels is not None):
            if (image_size or known.size) != known.size or (channels or known.channels) != known.channels:
                whose = "The checkpoint's model takes" if self.learned else f"{source} has"
                raise UserError(
                    f"{whose} {known.channels}-channel pictures of {known.size}x{known.size}; --data.image_size and "
                    "--data.channels apply to a new folder or CSV set."
                )
        self.chosen = tuple(name.strip() for name in classes.split(",") if name.strip()) if isinstance(classes, str) else tuple(classes or ())
        self.augmentations = [random_affine(augment_degrees, augment_shift, augment_scale)] if (
            augment_degrees or augment_shift or augment_scale
        ) else []
        if augment_flip:
            self.augmentations.append(random_flip())
        if augment_policy not in AUGMENT_POLICIES:
            raise UserError(f"augment_policy is one of {', '.join(AUGMENT_POLICIES)}; got {augment_policy!r}.")
        if augment_policy != "none":
            self.augmentations.append(random_policy(augment_policy))
        # The checkpoint keeps these options; a DatasetInfo is kept as the name or path it describes.
        self.save_hyperparameters(ignore=["dataset"])
        self.hparams.dataset = source
        self.data_dir = resolve_data_dir(data_dir)
        self.path = Path(source).expanduser().resolve() if self.own_set else None
        if self.optimized:
            self.hparams.dataset = source = location_of(source)
        if self.own_set or self.optimized:
            self.dataset_info: Optional[DatasetInfo] = self.learned  # a new set's is known once its pictures are read (setup)
        else:
            self.dataset_info = self.learned or DATASETS[source]
            # Checked again against the files themselves in prepare_data; this catches it before anything runs.
            check_val_size(val_size, DATASETS[source].files.train_size)
        self.parts_read: dict[str, str] = {}  # each part in words: where its pictures come from
        self.files: dict[str, list[str]] = {}  # a folder or CSV set's files of each part, in the order of its pictures
        self.train_set: Optional[Pictures] = None
        self.val_set: Optional[Pictures] = None
        self.test_set: Optional[Pictures] = None
        self.holding = ""  # how a folder or CSV set is held, in words: in memory or streamed, and why
        self.loss_weights: Optional[torch.Tensor] = None
        self._outliers: Optional[torch.Tensor] = None

    @property
    def classes(self) -> list[str]:
        """The class names, in the order of the labels (known for a folder or CSV set once it is set up)."""
        return list(self.dataset_info.classes) if self.dataset_info else []

    # --- built-in sets -------------------------------------------------------------------------

    def prepare_data(self) -> None:
        if self.own_set or self.optimized:
            return  # read in setup, on each process, from the cache after the first
        info, raw = self.builtin, raw_folder(self.data_dir, self.builtin)
        if has_files(self.data_dir, info):
            # Here, before Lightning creates the run's folders: a damaged file must leave nothing behind.
            count = check_builtin_files(info, self.data_dir)
            evaluating = self.trainer is not None and self.trainer.state.fn == "test"
            if count is not None and not evaluating:  # `test` reads no validation part
                check_val_size(self.hparams.val_size, count)
            return
        files = info.files
        missing_help = (
            f"{files.torchvision_class} files not found: put {', '.join(files.raw_files)} in {raw}/, "
            f"or point at a folder holding {raw.relative_to(self.data_dir)}/ with --data.data_dir DIR or {DATA_DIR_ENV}=DIR."
        )
        if not self.hparams.download:
            raise UserError(missing_help)
        try:
            for train in (True, False):
                load_builtin(info, self.data_dir, train, download=True)
        except (RuntimeError, OSError) as error:  # torchvision collects every mirror's URLError into one
            raise UserError(f"Could not download {files.torchvision_class} ({_last_line(error)}). {missing_help}") from None

    @property
    def builtin(self) -> DatasetInfo:
        """The table's entry of the built-in set read: how torchvision reads it, and its own class order."""
        return DATASETS[self.hparams.dataset]

    def _load_builtin(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        info = self.builtin
        try:
            images, labels = load_builtin(info, self.data_dir, train)
        except RuntimeError:
            self.prepare_data()  # setup without prepare_data (plain Python use): same message
            images, labels = load_builtin(info, self.data_dir, train)
        if len(labels) and not 0 <= labels.min() <= labels.max() < info.num_classes:
            split = "training" if train else "test"
            raise UserError(
                f"The {split} labels in {raw_folder(self.data_dir, info)} are not all classes "
                f"0-{info.num_classes - 1} of {info.name}; {REPLACE}"
            )
        return images, in_order(labels, info.classes, self.dataset_info.classes, info.name)

    # --- every set -----------------------------------------------------------------------------

    def setup(self, stage: Optional[str] = None) -> None:
        # Idempotent: Lightning may call setup once per stage, and the split must not change.
        fitting = stage in ("fit", "validate", None) and self.train_set is None
        testing = stage in ("test", "predict", None) and self.test_set is None
        if not (fitting or testing):
            return
        if self.own_set or self.optimized:
            parts = self._own_set_parts(stage, fitting, testing) if self.own_set else self._optimized_parts(fitting, testing)
            if fitting:
                self.train_set, self.val_set = parts["train"], parts["val"]
            if testing:
                self.test_set = parts["test"]
        else:
            if fitting:
                images, labels = self._load_builtin(train=True)
                train_idx, val_idx = split_indices(len(labels), self.hparams.val_size, self.hparams.split_seed)
                self.train_set = InMemoryPictures(*take(images, labels, train_idx))
                self.val_set = InMemoryPictures(*take(images, labels, val_idx))
                self.parts_read["val"] = f"{self.hparams.val_size:,} training pictures held out (seed {self.hparams.split_seed})"
            if testing:
                self.test_set = InMemoryPictures(*self._load_builtin(train=False))
                self.parts_read["test"] = self.builtin.files.test_options.get("what", "test")
        if fitting and self.low_resolution_share and isinstance(self.train_set, InMemoryPictures):
            self.train_set.images = low_resolution_copies(self.train_set.images, self.low_resolution_share, self.hparams.split_seed)
        device = self._storage_device()
        for part in (self.train_set, self.val_set, self.test_set):
            if isinstance(part, InMemoryPictures):
                part.images, part.labels = part.images.to(device), part.labels.to(device)
        if fitting and self.hparams.balance == "loss":
            counts = torch.bincount(self.train_set.labels.cpu(), minlength=len(self.classes)).float()
            self.loss_weights = counts.sum() / (len(counts) * counts.clamp(min=1))

    def _own_set_parts(self, stage: Optional[str], fitting: bool, testing: bool) -> dict[str, Pictures]:
        """The parts of a folder or CSV set: a new set's, split as this data module's options say; or those of the
        set a checkpoint learned, rebuilt from its record; or, to evaluate on another set, all its pictures."""
        options, learned = self.hparams, self.learned
        columns = (options.path_column, options.label_column, options.split_column)
        split = learned.split if learned else None
        same_place = split is not None and Path(split.root) == self.path
        new_set = learned is None or (stage == "fit" and not same_place)
        ink = options.resize == "ink"  # handwriting: MNIST's frame, one channel
        everything = False
        if new_set:  # a new set, or another set to go on training on
            listing = list_set(self.path, *columns, classes=(learned.classes if learned else self.chosen) or None)
            (size, channels), resize = (SMALLEST_SIDE, 1) if ink else (options.image_size, options.channels), options.resize
            split = self._new_split(listing)
        else:
            listing = list_set(self.path, *columns, classes=learned.classes if same_place else None)
            size, channels, resize = learned.size, learned.channels, learned.resize
            # Another labelled set: all of it is new to the model.
            everything = not same_place and (split is None or self._digest(listing) != split.digest)
            if not everything and not split.digest:  # a checkpoint of 0.5.0 or before: validation split off unless the set has its own
                split = dataclasses.replace(split, made=("val",) if "val" not in listing.parts else ())
        # A new set is split whole, for its mean and std and its counts; a checkpoint's only as far as asked.
        needed = PARTS if new_set else (("train", "val") if fitting else ()) + (("test",) if testing else ())
        # The side the pictures default to, from every training file's header: read once, where it is needed
        # (to choose whether to stream, and to stream), and handed to a first decoding instead of reading again.
        header_side = header_size(listing.parts[listing.training_part].files) if size is None and options.stream is not False else None
        streamed = self._streams(listing, size or header_side, channels)
        if streamed:
            size = size or header_side
            parts, channels, histograms = self._streamed_parts(listing, split, size, channels, resize, everything)
            if everything:
                return {part: parts["all"] for part in PARTS}
        else:
            decoded = read_decoded(listing, size, channels, resize, header_side)
            warn_skipped(decoded.skipped)
            if everything:
                whole = InMemoryPictures(*self._everything(listing, decoded))
                return {part: whole for part in PARTS}
            parts = {part: InMemoryPictures(*pictures) for part, pictures in self._split_parts(listing, decoded, split, needed).items()}
            size, channels = decoded.size, decoded.channels
        if new_set:
            if streamed:  # the notes' histograms: of R, G and B, or of the luminance a greyscale reading takes
                mean, std = pixel_stats_of(histograms, channels)
            else:
                mean, std = pixel_stats(parts["train"].images)
            self.dataset_info = DatasetInfo(
                name=self.path.stem, classes=listing.classes, mean=mean, std=std, channels=channels, size=size,
                pictures="handwriting" if ink else "photos", polarity="light on dark" if ink else "photos", path=str(self.path),
                resize=options.resize, split=split,
            )
            self.print_counts(listing, parts, size, channels)
        return parts

    def _optimized_parts(self, fitting: bool, testing: bool) -> dict[str, StreamedPictures]:
        """The parts of a set written by litdata.optimize: its own train/, val/ and test/ folders, streamed."""
        location, learned = self.hparams.dataset, self.learned
        found = survey(location)
        if learned is None:
            mean, std = pixel_stats_of(found.histograms, found.channels)
            self.dataset_info = DatasetInfo(
                name=Path(location).name, classes=class_names(found, self.chosen, location), mean=mean, std=std,
                channels=found.channels, size=found.side, pictures="photos", polarity="photos", path=location,
            )
        parts = {}
        for part in (("train", "val") if fitting else ()) + (("test",) if testing else ()):
            labels = part_labels(found, part)
            if labels is None:
                raise UserError(f"{location} has no {part}/ part written by litdata.optimize; `fit` needs train/ and val/, `test` test/.")
            parts[part] = StreamedPictures(f"{location}/{part}", labels, [], self.dataset_info.channels)
            self.parts_read[part] = f"{part}/ of the set written by litdata.optimize"
        if learned is None:
            self.holding = "streamed (a set written by litdata.optimize)"
            rank_zero_only(print)(f"{location}: a set written by litdata.optimize; {', '.join(f'{part}/ {len(found.labels[part]):,}' for part in found.labels)} "
                  f"pictures; {found.side}x{found.side}, {found.channels} channel{'s' if found.channels > 1 else ''}; streamed")
        return parts

    def _streams(self, listing: SetListing, side: Optional[int], channels: Optional[int]) -> bool:
        """Whether to stream the set: as --data.stream says, or for "auto" when its decoded pictures, ``side`` pixels
        square (given, or the headers' default), would take more than the memory budget (three channels when not yet known)."""
        stream = self.hparams.stream
        if stream != "auto":
            self.holding = "streamed from LitData chunks (--data.stream true)" if stream else "held in memory (--data.stream false)"
            return bool(stream)
        count = sum(len(part.files) for part in listing.parts.values())
        estimate = count * side * side * (channels or 3)
        streamed = estimate > self.budget
        self.holding = (
            f"{'streamed from LitData chunks' if streamed else 'held in memory'}: {readable_size(estimate)} decoded, "
            f"{'above' if streamed else 'within'} --data.memory_budget {readable_size(self.budget)}"
        )
        return streamed

    def _streamed_parts(
        self, listing: SetListing, split: Optional[Split], size: int, channels: Optional[int], resize: str, everything: bool,
    ) -> tuple[dict[str, StreamedPictures], int, np.ndarray]:
        """Each part's chunks, written on the first run and found by their key after; the channels (``channels``, else 1
        where every picture the training part was split from is grey), and the training pictures' histograms
        (streaming.py's notes)."""
        training = listing.training_part
        if everything:  # evaluated only: the order does not matter
            files = [file for part in listing.parts.values() for file in part.files]
            labels = in_order(torch.tensor([label for part in listing.parts.values() for label in part.labels], dtype=torch.long),
                              listing.classes, self.learned.classes, str(listing.root)).tolist()
            lists = {"all": (files, labels)}
            said = f"every picture of {listing.root.name} (another set than the one trained on)"
            self.parts_read.update({"val": said, "test": said})
        else:
            if split.made and self.learned is not None and split.digest:
                counts = class_counts(listing.parts[training].labels, listing.classes)
                check_unchanged(split, self._digest(listing), counts, " and ".join(split.made))
            drawn = split_off(listing.parts[training].labels, split.made, split.val_fraction, split.test_fraction, split.seed)
            lists = {}
            # In a random order (seeded): LitData shuffles chunk by chunk and within a window, and chunks written in
            # the listing's order would each hold one class, so that a batch held one class too.
            order = torch.Generator().manual_seed(split.seed)
            for part in PARTS:
                source = listing.parts[training if part in drawn else part]
                positions = drawn[part] if part in drawn else torch.arange(len(source.files))
                positions = positions[torch.randperm(len(positions), generator=order)].tolist()
                lists[part] = ([source.files[i] for i in positions], [source.labels[i] for i in positions])
                share = {"val": split.val_fraction, "test": split.test_fraction}.get(part)
                self.parts_read[part] = (
                    f"{share:.0%} of each class of the training pictures held out at fit (seed {split.seed})"
                    if part in split.made else listing.sources[part if part in listing.sources else training]
                )
        folder = chunk_folder(listing.root, cache_key(listing.root, listing.parts, resize), size, lists)
        self._write_once(folder, lists, size, resize)
        notes = {part: read_notes(folder, part) for part in lists}
        warn_skipped([error for note in notes.values() for error in note.skipped])
        trained = "all" if everything else "train"
        split_from = [notes[part] for part in lists if part == trained or part in (split.made if split else ())]
        channels = channels or (1 if all(note.grey for note in split_from) else 3)
        labels = torch.tensor([label for note in split_from for label in note.labels], dtype=torch.long)
        check_classes_have_pictures(listing.classes, labels, [error for note in split_from for error in note.skipped])
        parts = {}
        for part, (files, _) in lists.items():
            self.files[part] = [files[i] for i in notes[part].positions]
            parts[part] = StreamedPictures(folder / part, torch.tensor(notes[part].labels, dtype=torch.long), self.files[part], channels)
        if everything:
            self.files.update({part: self.files["all"] for part in PARTS})
        return parts, channels, notes[trained].histograms

    def _new_split(self, listing: SetListing) -> Split:
        made = tuple(part for part in ("val", "test") if part not in listing.parts)
        training = listing.parts[listing.training_part]
        return Split(self.hparams.split_seed, self.hparams.val_fraction, self.hparams.test_fraction, made, str(self.path),
                     self._digest(listing), class_counts(training.labels, listing.classes))

    def _digest(self, listing: SetListing) -> str:
        training = listing.parts[listing.training_part]
        return listing_digest(str(listing.root), training.files, training.labels, listing.classes)

    def _split_parts(self, listing: SetListing, decoded: DecodedSet, split: Split, needed: tuple[str, ...]) -> dict[str, tuple]:
        training = listing.training_part
        parts = {part: decoded.parts[part] for part in PARTS if part in listing.parts and part not in split.made}
        if any(part in needed for part in ("train", *split.made)):  # the parts split off, and what is left to train on
            if self.learned is not None and split.digest:
                counts = class_counts(listing.parts[training].labels, listing.classes)
                check_unchanged(split, self._digest(listing), counts, " and ".join(split.made))
            drawn = split_off(listing.parts[training].labels, split.made, split.val_fraction, split.test_fraction, split.seed)
            parts.update({part: decoded.parts[training].at(positions) for part, positions in drawn.items()})
        if "test" in needed and "test" not in parts:
            raise UserError(
                f"{listing.root} has no test part: the checkpoint was written by mnist-lit 0.5.0 or before, which held no "
                "pictures out of a set of class folders for testing. Evaluate on another labelled folder or CSV file "
                "with --data.dataset PATH."
            )
        for part in PARTS:
            if part in parts:
                listed = listing.parts[training if part in split.made or part not in listing.parts else part].files
                self.files[part] = [listed[i] for i in parts[part].positions.tolist()]
                share = {"val": split.val_fraction, "test": split.test_fraction}.get(part)
                self.parts_read[part] = (
                    f"{share:.0%} of each class of the training pictures held out at fit (seed {split.seed})"
                    if part in split.made else listing.sources[part if part in listing.sources else training]
                )
        return {part: (picked.images, picked.labels) for part, picked in parts.items()}

    def _everything(self, listing: SetListing, decoded: DecodedSet) -> tuple[torch.Tensor, torch.Tensor]:
        """Every picture of another labelled set, labelled in the order of the classes the model learned."""
        images = torch.cat([part.images for part in decoded.parts.values()])
        labels = torch.cat([part.labels for part in decoded.parts.values()])
        files = [listing.parts[name].files[i] for name, part in decoded.parts.items() for i in part.positions.tolist()]
        self.files.update({"train": files, "val": files, "test": files})
        said = f"every picture of {listing.root.name} (another set than the one trained on)"
        self.parts_read.update({"val": said, "test": said})
        return images, in_order(labels, listing.classes, self.learned.classes, str(listing.root))

    def _write_once(self, folder: Path, lists: dict[str, tuple[list[str], list[int]]], size: int, resize: str) -> None:
        """The chunks, written by the first process of each machine while its other processes wait (DDP)."""
        trainer = self.trainer
        several = trainer is not None and trainer.world_size > 1
        if not several or trainer.local_rank == 0:
            if not is_whole(folder, lists):
                write_chunks(folder, lists, size, resize)
        if several:  # every process, whether or not it wrote: they all pass the same barrier
            trainer.strategy.barrier("streamed chunks written")

    @rank_zero_only
    def print_counts(self, listing: SetListing, parts: dict[str, "Pictures"], size: int, channels: int) -> None:
        """The layout found and what each part is used for, the pictures' shape, the pictures per class and part,
        and a warning when the classes are far from even."""
        print(f"{self.path.name}: {listing.layout}")
        for part, use in (("train", "training"), ("val", "validation"), ("test", "`test`")):
            print(f"  {use}: {self.parts_read[part]}, {len(parts[part]):,} pictures")
        if listing.left_out:
            print(f"  left out by --data.classes: {', '.join(listing.left_out)}")
        chosen = [name for name in ("image_size", "channels") if self.hparams[name] is None]
        how = f" ({' and '.join(f'--data.{name}' for name in chosen)} chosen from the training pictures)" if chosen else ""
        if self.hparams.resize == "ink":
            how = " (handwriting read as MNIST's digits: --data.resize ink)"
        print(f"  {size}x{size}, {channels} channel{'s' if channels > 1 else ''}{how}; {self.holding}")
        table = Table(title="Pictures per class")
        table.add_column("class")
        for part in PARTS:
            table.add_column(part, justify="right")
        counts = {part: torch.bincount(parts[part].labels.cpu(), minlength=len(listing.classes)).tolist() for part in PARTS}
        for index, name in enumerate(listing.classes):
            table.add_row(name, *(f"{counts[part][index]:,}" for part in PARTS))
        Console(file=sys.stdout).print(table)
        train = counts["train"]
        if max(train) > IMBALANCE * max(min(train), 1) and self.hparams.balance == "none":
            largest, smallest = listing.classes[train.index(max(train))], listing.classes[train.index(min(train))]
            rank_zero_warn(
                f"the classes are imbalanced: {largest} has {max(train):,} training pictures, {smallest} {min(train):,}; "
                "consider --data.balance sampler or --data.balance loss."
            )

    def evaluated(self, part: str) -> dict[str, Any]:
        """Which pictures a `test` or `validate` read: the set, the part in words, and where the files are."""
        if self.optimized:
            return {"dataset": Path(self.hparams.dataset).name, "split": self.parts_read.get(part, part), "data_dir": self.hparams.dataset}
        name = self.path.stem if self.own_set else self.hparams.dataset
        place = self.path if self.own_set else self.data_dir
        return {"dataset": name, "split": self.parts_read.get(part, part), "data_dir": str(Path(place).resolve())}

    def own_pictures(self, count: int) -> list[torch.Tensor]:
        """Up to ``count`` training pictures as they are read (no augmentation, no other styles), in batches
        of the training batch size, the last one smaller: the same pictures on every call and in every process."""
        generator = torch.Generator().manual_seed(self.hparams.split_seed)
        chosen = torch.randperm(len(self.train_set), generator=generator)[:count]
        size = self.hparams.batch_size
        if isinstance(self.train_set, StreamedPictures):
            return [self.train_set.pictures(chosen[start : start + size]) for start in range(0, len(chosen), size)]
        chosen = chosen.to(self.train_set.images.device)
        return [self.train_set.images[chosen[start : start + size]] for start in range(0, len(chosen), size)]

    def outlier_pictures(self) -> Optional[torch.Tensor]:
        """The pictures of no class to train with (``outliers``), or None. Drawn on first use, so that a
        model trained without them (``--model.outlier_weight 0``) does not wait for them."""
        info = self.dataset_info
        uses = info.pictures in ("handwriting", "clothing") if self.hparams.outliers == "auto" else self.hparams.outliers == "synthetic"
        if uses and self._outliers is None:
            count = min(OUTLIERS_MADE, OUTLIER_BYTES // (info.size * info.size * info.channels))
            made = synthetic_outliers(count, min(info.size, OUTLIER_SIDE), info.channels, self.hparams.split_seed,
                                      handwriting=info.pictures == "handwriting")
            if made.shape[-1] < info.size:
                made = F.interpolate(made.float(), size=info.size, mode="bilinear").round().to(torch.uint8)
            if self.style_share:  # in the same styles as the pictures: style alone must not tell them apart
                made = self._restyled(made, self.style_share, self.hparams.split_seed + 1)
            self._outliers = made.to(self._storage_device())
        return self._outliers if uses else None

    @property
    def style_share(self) -> float:
        """The share of training pictures redrawn in another style (``augment_style``, or its default for the set)."""
        if self.hparams.augment_style is not None:
            return self.hparams.augment_style
        styled = ("handwriting", "clothing")  # pictures of strokes or silhouettes, which styles change; not photos
        return 0.25 if self.dataset_info is not None and self.dataset_info.pictures in styled else 0.0

    @property
    def low_resolution_share(self) -> float:
        """The share of training pictures replaced by low-resolution copies (``augment_low_resolution``, or its default)."""
        if self.hparams.augment_low_resolution is not None:
            return self.hparams.augment_low_resolution
        return 0.125 if self.dataset_info is not None and self.dataset_info.pictures == "handwriting" else 0.0

    @staticmethod
    def _restyled(pictures: torch.Tensor, share: float, seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        parts = [restyle(pictures[start : start + 4096].float(), share, generator) for start in range(0, len(pictures), 4096)]
        return torch.cat(parts).round().to(torch.uint8)

    def _storage_device(self) -> torch.device:
        """The training GPU when there is one, else the CPU."""
        if self.trainer is not None and self.trainer.strategy.root_device.type == "cuda":
            return self.trainer.strategy.root_device
        return torch.device("cpu")

    def train_dataloader(self) -> DataLoader:
        # drop_last keeps every step the same shape; the remainder differs each epoch anyway.
        drop_last = len(self.train_set) > self.hparams.batch_size
        if isinstance(self.train_set, StreamedPictures):
            if self.hparams.balance == "sampler":
                raise UserError("--data.balance sampler draws pictures at random from memory; a streamed set is read chunk by "
                                "chunk: use --data.balance loss, or --data.stream false.")
            # Shuffled chunk by chunk with the run's seed (seed_everything), as every process draws it, and again each epoch.
            return self.train_set.loader(self.hparams.batch_size, shuffle=True, seed=torch.initial_seed() % 2**31, drop_last=drop_last)
        if self.hparams.balance == "sampler":
            labels = self.train_set.labels.cpu()
            weights = 1.0 / torch.bincount(labels, minlength=len(self.classes)).clamp(min=1).double()
            sampler = WeightedRandomSampler(weights[labels], num_samples=len(labels), replacement=True)
            return DataLoader(self.train_set, self.hparams.batch_size, sampler=sampler, drop_last=drop_last, collate_fn=keep_batch)
        return self._loader(self.train_set, self.hparams.batch_size, shuffle=True, drop_last=drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.hparams.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.hparams.eval_batch_size)

    def _loader(self, dataset, batch_size: int, shuffle: bool = False, drop_last: bool = False) -> DataLoader:
        if isinstance(dataset, StreamedPictures):
            # litdata gives each process its share itself: whole batches each, the remainder to the last process
            # (so every picture is evaluated once). Batches no larger than a process's share give each one at least one.
            processes = self.trainer.world_size if self.trainer is not None else 1
            return dataset.loader(min(batch_size, max(1, len(dataset) // processes)))
        sampler = None
        if not shuffle and self.trainer is not None and self.trainer.world_size > 1:
            # Lightning's DistributedSampler repeats pictures until every process has as many, and
            # the repeats would be counted twice in validation and test metrics. This sampler
            # gives each process every world_size-th picture, once (Lightning's own, for predict).
            sampler = UnrepeatedDistributedSampler(dataset, self.trainer.world_size, self.trainer.global_rank, shuffle=False)
        # No worker processes: the data is already in memory, and workers would copy it.
        return DataLoader(
            dataset, batch_size, shuffle=shuffle, sampler=sampler, drop_last=drop_last, collate_fn=keep_batch
        )

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if isinstance(batch, torch.Tensor):  # pictures alone: the model's example_input_array, for its summary
            return batch
        images, labels = batch
        if self.trainer is not None and self.trainer.training:
            transforms = self.augmentations + ([RandomStyle(self.style_share)] if self.style_share else [])
            if transforms:
                images = augment(images, *transforms)
        return images, labels


def in_order(labels: torch.Tensor, read: tuple[str, ...], wanted: tuple[str, ...], source: str) -> torch.Tensor:
    """Labels numbered in the order of classes ``read`` renumbered in the order ``wanted``, matched by name."""
    if tuple(read) == tuple(wanted):
        return labels
    unknown = [name for name in read if name not in wanted]
    if unknown:
        raise UserError(
            f"{source} has classes the model did not learn ({', '.join(map(repr, unknown[:5]))}); the model knows "
            f"{', '.join(wanted)}. Evaluate on a set with those classes (any order, any subset)."
        )
    mapping = torch.tensor([list(wanted).index(name) for name in read], dtype=torch.long)
    return mapping[labels] if len(labels) else labels


def _last_line(error: Exception) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(error).__name__


MNISTDataModule = ImageDataModule  # its name before 0.3.0: configs that name it keep working
__all__ = ["DATA_DIR_ENV", "ImageDataModule", "MNISTDataModule", "has_files", "load_builtin", "raw_folder", "resolve_data_dir"]
