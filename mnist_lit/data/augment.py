"""Training augmentation: each picture its own small random rotation, shift and scale, and for
handwriting its own style.

One batched affine warp on the device that trains (kornia.augmentation), with a different
random matrix for every picture; a per-sample PIL path would cost more than the network on a
CPU. Never flips unless asked (``random_flip``, for photos of things that have no handedness): a
mirrored 2 is not a 2, nor is a mirrored letter. The data module applies it
to training batches only, on pixels before normalization, so the space a picture is moved out
of fills with background. Its randomness comes from torch's generator, which `seed_everything`
seeds like everything else.
"""

from typing import Optional

import torch
import torch.nn.functional as F

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


class OnUnitRange(torch.nn.Module):
    """A transform made for pixels in 0-1 (kornia's colour operations) applied to pixels in 0-255."""

    def __init__(self, transform: torch.nn.Module) -> None:
        super().__init__()
        self.transform = transform

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.transform(pixels / 255).clamp(0, 1) * 255


AUGMENT_POLICIES = ("none", "trivial", "rand")


def random_policy(policy: str) -> torch.nn.Module:
    """An automatic augmentation policy: "trivial" (TrivialAugment: one operation of the colour and geometry
    list at a random strength for each batch, each picture its own strength) or "rand" (RandAugment: two
    operations at 10 of kornia's 30 steps of strength)."""
    from kornia.augmentation.auto import RandAugment, TrivialAugment

    return OnUnitRange(TrivialAugment() if policy == "trivial" else RandAugment(n=2, m=10))


def augment(pixels: torch.Tensor, *transforms: torch.nn.Module) -> torch.Tensor:
    """(N, C, H, W) pixels (uint8 or float, 0-255) -> float pixels, each picture moved at random by each transform."""
    moved = pixels.float()
    for transform in transforms:
        moved = transform(moved)
    return moved


# The sides a restyled picture is reduced to before it is scaled back up: 28 keeps it sharp.
LOW_RESOLUTIONS = (8, 10, 12, 14, 16, 20, 28)


def restyle(pixels: torch.Tensor, share: float = 1.0, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Float pixels (N, C, H, W), 0-255, light strokes on dark -> the same, ``share`` of them redrawn in another style.

    Each redrawn picture gets its own draw of what changes between people, pens and scanners once a
    picture is read like the set's (pictures.py stretches its ink to full brightness): resolution down
    to 8-28 px and back up, strokes a pixel thinner or one or two thicker, a blur, fainter or bolder
    mid-tones. A network that sees only the set's own style takes any of these for "not one of the
    set's kinds"; seen in training, they are answered by shape.
    """
    n, device = len(pixels), pixels.device

    def draw(*size: int) -> torch.Tensor:  # uniform numbers from ``generator``, made on the CPU, used on the device
        return torch.rand(*size, generator=generator).to(device)

    styled = pixels
    side = pixels.shape[-1]
    sizes = torch.randint(len(LOW_RESOLUTIONS), (n,), generator=generator).to(device)
    for index, low in enumerate(LOW_RESOLUTIONS):
        chosen = sizes == index
        if low < side and bool(chosen.any()):
            small = F.interpolate(styled[chosen], size=low, mode="area")
            styled = styled.index_put((chosen,), F.interpolate(small, size=side, mode="bilinear", align_corners=False))
    stroke = draw(n, 1, 1, 1)  # a fifth thinner, two fifths unchanged, a quarter one pixel thicker, the rest two
    thicker = F.max_pool2d(styled, 3, stride=1, padding=1)
    styled = torch.where(stroke < 0.2, -F.max_pool2d(-styled, 3, stride=1, padding=1), styled)
    styled = torch.where((stroke >= 0.6) & (stroke < 0.85), thicker, styled)
    styled = torch.where(stroke >= 0.85, F.max_pool2d(thicker, 3, stride=1, padding=1), styled)
    from kornia.filters import gaussian_blur2d

    sigma = (draw(n, 1) * 1.5 + 0.05).expand(n, 2).contiguous()  # up to 1.5 px
    styled = gaussian_blur2d(styled, (7, 7), sigma)
    # Ink stretched to full brightness as pictures.py does, then mid-tones fainter or bolder.
    brightest = styled.amax(dim=(1, 2, 3), keepdim=True).clamp(min=1)
    gamma = torch.exp((draw(n, 1, 1, 1) * 2 - 1) * 0.5)  # 0.6 to 1.65
    styled = 255 * (styled / brightest).clamp(0, 1) ** gamma
    keep = draw(n, 1, 1, 1) >= share
    return torch.where(keep, pixels, styled)


class RandomStyle(torch.nn.Module):
    """``restyle`` as a training transform: ``share`` of each batch's pictures redrawn, from torch's generator."""

    def __init__(self, share: float) -> None:
        super().__init__()
        self.share = share

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return restyle(pixels, self.share)
