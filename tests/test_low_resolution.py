"""Training digits as low-resolution scans read as files: a share of them, their shapes kept, handwriting only."""

import numpy as np
import pytest
import torch

from mnist_lit.core.errors import UserError
from mnist_lit.data.datamodule import ImageDataModule
from mnist_lit.data.low_resolution import (
    LOW_SIDES,
    low_resolution_copies,
    low_resolution_copy,
)
from mnist_lit.data.pictures import STROKE_BOX


def rings(n: int) -> torch.Tensor:
    """n uint8 pictures of a 0: a ring 2 px thick, light on black, in MNIST's 20-pixel box."""
    rows, columns = np.indices((28, 28))
    radius = np.hypot(rows - 14, (columns - 14) * 1.4)  # taller than wide, as a written 0
    ring = ((radius > 6.5) & (radius < 9)).astype(np.uint8) * 255
    return torch.from_numpy(ring).expand(n, 1, 28, 28).contiguous()


def test_each_copy_keeps_its_hole_and_is_read_as_a_file_reads_it():
    rng = np.random.default_rng(0)
    for _ in range(4 * len(LOW_SIDES)):
        copy = low_resolution_copy(rings(1)[0, 0].numpy(), rng)
        assert copy.shape == (28, 28) and copy.max() == 255  # stretched to full brightness, as predict does
        ink = np.nonzero(copy > 0)
        assert max(np.ptp(ink[0]), np.ptp(ink[1])) + 1 == STROKE_BOX  # fitted into MNIST's box
        assert copy[14, 14] < 128 and copy[13:16, 13:16].mean() < copy.max() / 2  # the 0 is still open


def test_a_share_of_the_pictures_is_copied_the_same_way_on_every_call():
    pictures = rings(40).expand(40, 3, 28, 28).contiguous()
    copied = low_resolution_copies(pictures, 0.25, seed=7)
    changed = (copied != pictures).flatten(1).any(dim=1)
    assert int(changed.sum()) == 10 and copied.shape == pictures.shape and copied.dtype == torch.uint8
    assert torch.equal(copied[:, 0], copied[:, 2])  # every channel of a copy the same, as greys are
    assert torch.equal(copied, low_resolution_copies(pictures, 0.25, seed=7))
    assert not torch.equal(changed, (low_resolution_copies(pictures, 0.25, seed=8) != pictures).flatten(1).any(dim=1))
    assert torch.equal(low_resolution_copies(pictures, 0.0, seed=7), pictures)


def test_a_picture_without_ink_is_kept_and_other_sides_are_kept():
    blank = torch.zeros(4, 1, 28, 28, dtype=torch.uint8)
    assert torch.equal(low_resolution_copies(blank, 1.0, seed=0), blank)
    larger = torch.nn.functional.pad(rings(4), (2, 2, 2, 2))  # 32x32
    assert low_resolution_copies(larger, 1.0, seed=0).shape == (4, 1, 32, 32)


def test_handwriting_sets_get_an_eighth_by_default_and_the_share_is_checked(tiny_mnist):
    data = ImageDataModule(data_dir=str(tiny_mnist), batch_size=10, val_size=20, download=False)
    assert data.low_resolution_share == 0.125
    assert ImageDataModule(dataset="fashion_mnist").low_resolution_share == 0
    assert ImageDataModule(dataset="cifar10").low_resolution_share == 0
    assert ImageDataModule(augment_low_resolution=0).low_resolution_share == 0
    with pytest.raises(UserError, match="augment_low_resolution is a share"):
        ImageDataModule(data_dir=str(tiny_mnist), augment_low_resolution=-0.1)
    data.setup("fit")
    read = ImageDataModule(data_dir=str(tiny_mnist), batch_size=10, val_size=20, download=False, augment_low_resolution=0)
    read.setup("fit")
    changed = (data.train_set.images != read.train_set.images).flatten(1).any(dim=1)
    assert int(changed.sum()) == round(0.125 * 80)
    assert torch.equal(data.val_set.images, read.val_set.images)  # validation pictures are never changed
