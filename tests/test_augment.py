"""Training augmentation: per picture, training only, labels kept, never a mirror image."""

import lightning as L
import pytest
import torch

from mnist_lit.core.errors import UserError
from mnist_lit.data.augment import augment, random_affine
from mnist_lit.data.datamodule import ImageDataModule


def an_l_shape(n: int) -> torch.Tensor:
    """n copies of one asymmetric uint8 picture: an L, whose mirror image is a J."""
    pixels = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    pixels[:, 0, 6:22, 9:12] = 255
    pixels[:, 0, 19:22, 9:20] = 255
    return pixels


def test_identical_pictures_in_a_batch_come_out_different():
    torch.manual_seed(0)
    moved = augment(an_l_shape(8), random_affine(degrees=10, shift=0.1, scale=0.1))
    assert moved.shape == (8, 1, 28, 28) and moved.dtype == torch.float32
    assert all(not torch.equal(moved[0], moved[i]) for i in range(1, 8))
    assert 0 <= moved.min() and moved.max() <= 255 + 1e-3  # still pixels, background stays black
    assert moved[:, 0, 0, 0].abs().max() < 1e-3


def test_it_never_mirrors_and_stays_within_its_strength():
    torch.manual_seed(0)
    affine = random_affine(degrees=15, shift=0.1, scale=0.2)
    augment(an_l_shape(512), affine)
    linear = affine.transform_matrix[:, :2, :2]
    # A mirror image has a negative determinant; rotation and zoom keep it at zoom**2.
    determinants = torch.linalg.det(linear)
    assert (determinants > 0).all() and determinants.min() >= 0.8**2 - 1e-4 and determinants.max() <= 1.2**2 + 1e-4
    zoom = determinants.sqrt()
    angles = torch.rad2deg(torch.atan2(linear[:, 1, 0], linear[:, 0, 0])).abs()
    assert angles.max() <= 15 + 1e-3 and angles.max() > 10  # the whole range is used
    assert (zoom.max() - zoom.min()) > 0.3


def test_the_same_seed_moves_the_pictures_the_same_way():
    affine = random_affine(degrees=10, shift=0.1, scale=0.1)
    runs = []
    for _ in range(2):
        torch.manual_seed(42)
        runs.append(augment(an_l_shape(4), affine))
    assert torch.equal(*runs)


def datamodule(tiny_mnist, **augmentation) -> ImageDataModule:
    data = ImageDataModule(data_dir=str(tiny_mnist), batch_size=16, eval_batch_size=16, val_size=20, download=False, **augmentation)
    data.trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    data.setup()
    return data


@pytest.mark.parametrize("stage", ["training", "validating", "testing", "predicting"])
def test_only_training_batches_are_augmented_and_labels_are_kept(tiny_mnist, stage):
    plain, augmented = datamodule(tiny_mnist), datamodule(tiny_mnist, augment_degrees=10, augment_shift=0.1, augment_scale=0.1)
    batch = (an_l_shape(16), torch.arange(16) % 10)
    for data in (plain, augmented):
        setattr(data.trainer, stage, True)
    images, labels = augmented.on_after_batch_transfer(batch, 0)
    expected, _ = plain.on_after_batch_transfer(batch, 0)
    assert torch.equal(labels, batch[1])
    assert torch.equal(images, expected) == (stage != "training")


def test_augmentation_strengths_are_checked(tiny_mnist):
    with pytest.raises(UserError, match="augment_shift"):
        ImageDataModule(data_dir=str(tiny_mnist), augment_shift=0.7)
    with pytest.raises(UserError, match="augment_policy is one of none, trivial, rand"):
        ImageDataModule(data_dir=str(tiny_mnist), augment_policy="auto")


@pytest.mark.parametrize("policy", ["trivial", "rand"])
def test_a_policy_changes_colour_or_geometry_of_training_pictures_within_the_pixel_range(tiny_mnist, policy):
    torch.manual_seed(0)
    data = datamodule(tiny_mnist, augment_policy=policy)
    data.trainer.training = True
    photos = torch.randint(0, 256, (32, 3, 24, 24), dtype=torch.uint8)
    changed = 0
    for _ in range(8):  # one operation a batch: some (identity, a weak one) may change nothing
        images, _ = data.on_after_batch_transfer((photos, torch.zeros(32, dtype=torch.long)), 0)
        assert images.shape == photos.shape and images.min() >= 0 and images.max() <= 255
        changed += int((images - photos.float()).abs().mean() > 1)
    assert changed >= 4


def test_the_shifted_style_blurs_and_thickens_strokes_and_keeps_the_ink_as_bright():
    from mnist_lit.data.style_shift import shifted_style

    pictures = torch.zeros(3, 1, 28, 28, dtype=torch.uint8)
    pictures[0, 0, 6:22, 13:15] = 255  # a stroke two pixels wide
    pictures[1, 0, 10:12, 4:24] = 180
    pictures[2, 0, 8:20, 8:20] = 90
    shifted = shifted_style(pictures)
    assert shifted.shape == pictures.shape and shifted.dtype == torch.uint8
    assert torch.equal(shifted, shifted_style(pictures))  # a fixed copy, the same on every run
    assert (shifted.amax(dim=(1, 2, 3)) == pictures.amax(dim=(1, 2, 3))).all()
    lit = lambda images: (images > 40).sum(dim=(1, 2, 3))
    assert (lit(shifted) > lit(pictures)).all()  # thicker, and blurred at the edges
    assert not torch.equal(shifted, pictures)


def test_restyled_pictures_keep_their_place_and_full_ink_but_change_resolution_stroke_and_blur():
    from mnist_lit.data.augment import restyle

    pictures = an_l_shape(64).float()
    styled = restyle(pictures, 1.0, torch.Generator().manual_seed(0))
    assert styled.shape == pictures.shape and styled.min() >= 0
    assert torch.allclose(styled.amax(dim=(1, 2, 3)), torch.full((64,), 255.0))  # read like a picture: ink at full brightness
    lit = (styled > 64).sum(dim=(1, 2, 3))
    assert lit.min() < (pictures > 64).sum() // 64 < lit.max()  # some thinner, some thicker
    assert len({tuple(picture.flatten().round().tolist()) for picture in styled}) == 64  # each its own style
    # The ink stays where it was: its centre of mass moves by under a pixel.
    rows = torch.arange(28.0).view(1, 1, 28, 1)
    centre = lambda images: (images * rows).sum(dim=(1, 2, 3)) / images.sum(dim=(1, 2, 3))
    assert (centre(styled) - centre(pictures)).abs().max() < 1
    # The same generator, the same styles; a share of none changes nothing.
    assert torch.equal(styled, restyle(pictures, 1.0, torch.Generator().manual_seed(0)))
    assert torch.equal(restyle(pictures, 0.0), pictures)


def test_handwriting_and_clothing_are_restyled_by_default_and_the_share_is_checked(tiny_mnist):
    data = ImageDataModule(data_dir=str(tiny_mnist), batch_size=10, val_size=20, download=False)
    assert data.style_share == 0.25
    assert ImageDataModule(dataset="fashion_mnist").style_share == 0.25
    assert ImageDataModule(dataset="cifar10").style_share == 0 == ImageDataModule(augment_style=0).style_share
    with pytest.raises(UserError, match="augment_style is a share"):
        ImageDataModule(data_dir=str(tiny_mnist), augment_style=1.5)
