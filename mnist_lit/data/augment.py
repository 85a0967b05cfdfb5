"""Training augmentation: each picture its own small random rotation, shift and scale.

One batched affine warp on the device that trains (kornia.augmentation), with a different
random matrix for every picture; a per-sample PIL path would cost more than the network on a
CPU. Never flips unless asked (``random_flip``, for photos of things that have no handedness): a
mirrored 2 is not a 2, nor is a mirrored letter. The data module applies it
to training batches only, on pixels before normalization, so the space a picture is moved out
of fills with background. Its randomness comes from torch's generator, which `seed_everything`
seeds like everything else.
"""

import torch

# kornia is imported where a transform is made: a run without augmentation does not wait for it
# (a quarter of a second or more of every `fit`'s start).


def random_affine(degrees: float, shift: float, scale: float) -> torch.nn.Module:
    """Rotation by up to ``degrees``, shift by up to ``shift`` of the side, zoom by up to ``scale``, per picture."""
    from kornia.augmentation import RandomAffine

    return RandomAffine(
        degrees=degrees,
        translate=(shift, shift) if shift else None,
        scale=(1 - scale, 1 + scale) if scale else None,
        p=1.0,
        same_on_batch=False,
    )


def random_flip() -> torch.nn.Module:
    """A left-right mirror of half the pictures, chosen at random."""
    from kornia.augmentation import RandomHorizontalFlip

    return RandomHorizontalFlip(p=0.5)


def augment(pixels: torch.Tensor, *transforms: torch.nn.Module) -> torch.Tensor:
    """(N, C, H, W) pixels (uint8 or float, 0-255) -> float pixels, each picture moved at random by each transform."""
    moved = pixels.float()
    for transform in transforms:
        moved = transform(moved)
    return moved
