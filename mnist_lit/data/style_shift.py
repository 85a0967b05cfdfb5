"""Handwriting in another style than the set's own: what a scan, a phone photo of paper or an upscaled
low-resolution picture does to a character. `test` reports how the model answers such a copy of the
test pictures (evaluation/report.py), beside the set's own: the trade-off between accepting pictures
and being right on them, where users' pictures differ from the training set's.
"""

import torch
import torch.nn.functional as F

# Each step, as report.json and the terminal name it.
SHIFT = "down to 14 px and back up, strokes 2 px thicker, blurred, contrast restored"
LOW_RESOLUTION = 14


def shifted_style(images: torch.Tensor) -> torch.Tensor:
    """uint8 pictures (N, C, H, W), light on dark -> the same in the shifted style (uint8, same shape)."""
    pixels = images.float()
    pixels = F.interpolate(F.interpolate(pixels, size=LOW_RESOLUTION, mode="area"), size=images.shape[-2:], mode="bilinear")
    pixels = F.max_pool2d(pixels, kernel_size=3, stride=1, padding=1)  # light strokes on a dark ground, a pixel wider each side
    pixels = F.avg_pool2d(pixels, kernel_size=3, stride=1, padding=1, count_include_pad=False)
    # A scan keeps its ink dark: each picture's brightest pixel as bright as the original's.
    brightest = images.float().amax(dim=(1, 2, 3), keepdim=True)
    pixels = pixels * brightest / pixels.amax(dim=(1, 2, 3), keepdim=True).clamp(min=1)
    return pixels.round().clamp(0, 255).to(torch.uint8)
