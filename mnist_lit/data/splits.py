"""How the parts a set lacks are split off its training pictures, recorded so that `test` can rebuild them.

A set of class folders has no test part of its own: `fit` holds out a stratified, seeded share of
every class for testing and another for validation. The checkpoint keeps a ``Split``: the seed,
the fractions, and a digest and the per-class counts of the files they were drawn from. `test`,
`validate` and `calibrate` rebuild exactly the same parts from it, so that no training picture is
ever scored; when the files changed since `fit`, the parts cannot be rebuilt and they say what changed.
"""

import hashlib
import os
from dataclasses import dataclass
from typing import Any, Optional

import torch

from mnist_lit.core.errors import UserError


@dataclass(frozen=True)
class Split:
    """The parts split off a set's training pictures (``made``: "val", "test"), and how."""

    seed: int
    val_fraction: float
    test_fraction: float
    made: tuple[str, ...]
    root: str  # the folder or CSV file the files were listed from, absolute
    digest: str  # of the files split: each one's path under ``root`` and its class
    counts: dict[str, int]  # files per class among them

    def record(self) -> dict[str, Any]:
        return {"seed": self.seed, "val_fraction": self.val_fraction, "test_fraction": self.test_fraction,
                "made": list(self.made), "root": self.root, "digest": self.digest, "counts": dict(self.counts)}

    @classmethod
    def from_record(cls, record: Optional[dict[str, Any]]) -> Optional["Split"]:
        if not record:
            return None
        return cls(int(record["seed"]), float(record["val_fraction"]), float(record["test_fraction"]), tuple(record["made"]),
                   str(record["root"]), str(record["digest"]), {str(k): int(v) for k, v in record["counts"].items()})


def legacy_split(root: str, seed: int, val_fraction: float) -> Split:
    """The split of a checkpoint written by 0.5.0 or before, which recorded none: validation split off the
    training pictures with these options, nothing for testing, and no digest (an empty one) to check."""
    return Split(seed, val_fraction, 0.0, ("val",), root, "", {})


def listing_digest(root: str, files: list[str], labels: list[int], classes: tuple[str, ...]) -> str:
    """A digest of which files are in which class, by path relative to ``root``: moving the folder keeps it,
    adding, removing or renaming a file changes it."""
    digest = hashlib.sha256()
    base = root if os.path.isdir(root) else os.path.dirname(root)
    for file, label in zip(files, labels):
        digest.update(f"{os.path.relpath(file, base)}\0{classes[label]}\n".encode())
    return digest.hexdigest()[:24]


def class_counts(labels: list[int], classes: tuple[str, ...]) -> dict[str, int]:
    counts = torch.bincount(torch.tensor(labels, dtype=torch.long), minlength=len(classes)).tolist()
    return dict(zip(classes, counts))


def check_val_size(val_size: int, n: int) -> None:
    if not 0 < val_size < n:
        raise UserError(f"val_size must be between 1 and {n - 1} for {n:,} training images, got {val_size}.")


def split_indices(n: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of range(n) into (train, validation) index tensors: a built-in set's validation part."""
    check_val_size(val_size, n)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[val_size:], order[:val_size]


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded split of the indices of ``labels`` with ``fraction`` of every class (at least one picture of
    each class that has two) held out."""
    generator = torch.Generator().manual_seed(seed)
    kept, held = [torch.zeros(0, dtype=torch.long)], [torch.zeros(0, dtype=torch.long)]
    for label in labels.unique().tolist():
        members = torch.nonzero(labels == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        count = min(max(round(fraction * len(members)), 1), len(members) - 1)
        held.append(members[:count])
        kept.append(members[count:])
    return torch.cat(kept).sort().values, torch.cat(held).sort().values


def split_off(labels: list[int], made: tuple[str, ...], val_fraction: float, test_fraction: float, seed: int) -> dict[str, torch.Tensor]:
    """The positions in ``labels`` of the training part and of each part in ``made``: the test part is drawn
    first (``test_fraction`` of each class), then the validation part (``val_fraction`` of each class)."""
    positions = torch.arange(len(labels))
    tensor = torch.tensor(labels, dtype=torch.long)
    parts = {}
    if "test" in made:
        kept, parts["test"] = stratified_split(tensor, test_fraction, seed)
        positions, tensor = positions[kept], tensor[kept]
    if "val" in made:
        # The share of what is left that makes ``val_fraction`` of the whole; a validation part drawn alone
        # is drawn as mnist-lit 0.5.0 drew it, so that its checkpoints validate on the same pictures.
        share = val_fraction / (1 - test_fraction) if "test" in made else val_fraction
        kept, held = stratified_split(tensor, share, seed + 1 if "test" in made else seed)
        parts["val"], positions = positions[held], positions[kept]
    parts["train"] = positions
    return parts


def check_unchanged(split: Split, digest: str, counts: dict[str, int], part: str) -> None:
    """Refuse, in one line saying what changed, to rebuild ``part`` from files other than those it was split from."""
    if digest == split.digest:
        return
    changes = [
        f"{name!r} {before:,} then, {counts.get(name, 0):,} now"
        for name, before in split.counts.items() if counts.get(name, 0) != before
    ]
    what = "; ".join(changes[:4]) + ("; ..." if len(changes) > 4 else "") if changes else "files were renamed or replaced"
    raise UserError(
        f"{split.root} changed since `fit` split its {part} part off the training pictures ({what}), so that part "
        "cannot be rebuilt and might hold pictures the model trained on. Restore the files, or evaluate on another "
        "labelled folder or CSV file with --data.dataset PATH."
    )
